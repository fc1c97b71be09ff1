"""
test_honest.py - poold says what is true about its own state:

- tasks that were running when poold was killed end as failures that say
  so, finished tasks are collected after task-retention;
- an operation on a host that is not live fails at once with HOST_OFFLINE
  (not after a 120 s timeout);
- memory limits out of range are INVALID_VALUE, static ones change only
  while the VM is halted;
- sessions are credentials: none is listed, none reads another's record,
  none appears in event.from;
- a stored record that is not JSON is set aside at start and every answer
  stays parseable.
"""
import os
import sqlite3
import time
import unittest

from tests.integration.harness import PASSWORD, SLOW, Pool, PoolTest, XapiError
from tests.integration.pooltest import DevPool, wait_until


def refused(test, code, fn, *a):
    with test.assertRaises(XapiError) as cm:
        fn(*a)
    test.assertEqual(cm.exception.code, code, cm.exception.params)
    return cm.exception.params


class ApiState(PoolTest):
    pool_sets = {"task-retention": "2s"}

    def test_finished_tasks_collected(self):
        rpc = self.pool.rpc
        task = rpc("Async.VM.create", {"name_label": "t", "memory_static_max": 64 << 20})
        self.assertEqual(self.pool.wait_task(task)["status"], "success")
        wait_until(lambda: task not in rpc("task.get_all"), 10, "the finished task is collected", 0.2)

    def test_memory_limits(self):
        rpc = self.pool.rpc
        vm = rpc("VM.create", {"name_label": "m", "memory_static_max": 256 << 20})
        for bad in (-1, 2 ** 63 - 1):
            params = refused(self, "INVALID_VALUE", rpc, "VM.set_memory_limits", vm, 64 << 20, bad, 64 << 20,
                             128 << 20)
            self.assertEqual(params, ["memory_static_max", str(bad)])
            refused(self, "INVALID_VALUE", rpc, "VM.set_memory_static_max", vm, bad)
        self.assertEqual(rpc("VM.get_memory_static_max", vm), 256 << 20)
        rpc("VM.set_memory_limits", vm, 64 << 20, 512 << 20, 128 << 20, 512 << 20)
        self.assertEqual(rpc("VM.get_memory_static_max", vm), 512 << 20)

    def test_sessions_are_private(self):
        pool = self.pool
        mine, other = pool.session, pool.login()
        refused(self, "MESSAGE_METHOD_UNKNOWN", pool.rpc, "session.get_all")
        refused(self, "MESSAGE_METHOD_UNKNOWN", pool.rpc, "session.get_all_records")
        self.assertNotIn("session.get_all_records", pool.call("system.listMethods"))
        self.assertEqual(pool.rpc("session.get_uuid", mine), pool.rpc("session.get_record", mine)["uuid"])
        refused(self, "HANDLE_INVALID", pool.rpc, "session.get_record", other)
        refused(self, "HANDLE_INVALID", pool.rpc, "session.get_other_config", other)
        events = pool.rpc("event.from", ["*"], "", 1.0)
        self.assertFalse([e for e in events["events"] if e["class"] == "session"])
        self.assertNotIn("session", events["valid_ref_counts"])

    def test_bad_record_set_aside(self):
        pool = self.pool
        rpc = pool.rpc
        good = rpc("VM.create", {"name_label": "good", "memory_static_max": 64 << 20})
        bad = rpc("VM.create", {"name_label": "bad", "memory_static_max": 64 << 20})
        pool.stop()
        db = sqlite3.connect(os.path.join(pool.dir, "pool.db"))
        db.execute("UPDATE objects SET rec = '{\"name_label\": \"ba' WHERE ref = ?", (bad,))
        db.commit()
        db.close()
        pool.start()
        pool._session = None
        recs = pool.rpc("VM.get_all_records")
        self.assertIn(good, recs)
        self.assertNotIn(bad, recs)
        self.assertTrue(pool.rpc("event.from", ["vm"], "", 1.0)["events"])
        self.assertIn("moved to table objects_bad", pool.read_log())


class Hosts(unittest.TestCase):
    def test_killed_poold_tasks_and_offline_host(self):
        p = DevPool(2, host_memory_mib=3072, extra=("--no-sr",))
        try:
            rpc = p.rpc
            h1, h2 = p.host_ref(1), p.host_ref(2)
            vm = rpc("VM.create", {"name_label": "big", "memory_static_max": 1536 << 20,
                                   "memory_dynamic_max": 1536 << 20, "memory_dynamic_min": 1536 << 20,
                                   "memory_static_min": 64 << 20,
                                   "other_config": {"sim-touch-mib": "1450", "sim-heartbeat-ms": "10"}})
            small = rpc("VM.create", {"name_label": "small", "memory_static_max": 64 << 20,
                                      "memory_dynamic_max": 64 << 20, "memory_dynamic_min": 64 << 20,
                                      "memory_static_min": 64 << 20})
            rpc("VM.start_on", vm, h1, False, False)
            rpc("VM.start_on", small, h2, False, False)
            # static limits change only while halted
            refused(self, "VM_BAD_POWER_STATE", rpc, "VM.set_memory_limits", small, 64 << 20, 128 << 20,
                    64 << 20, 64 << 20)
            refused(self, "VM_BAD_POWER_STATE", rpc, "VM.set_memory_static_max", small, 128 << 20)
            # poold killed while a migration's task runs
            task = rpc("Async.VM.pool_migrate", vm, h2, {})
            wait_until(lambda: rpc("VM.get_current_operations", vm), 20 * SLOW, "the migration runs", 0.005)
            p.restart_poold(pause=3)
            wait_until(lambda: rpc("task.get_status", task), 30 * SLOW, "poold answers again")
            rec = rpc("task.get_record", task)
            self.assertEqual(rec["status"], "failure")
            self.assertIn("poold stopped while this task ran", rec["error_info"][1])
            wait_until(lambda: not rpc("VM.get_current_operations", vm), 10, "no operation left")
            # a host that is not live: its operations fail at once
            p.kill_agent(2)
            wait_until(lambda: not p.host_metrics(2)["live"], 20 * SLOW, "host2 not live")
            for call in (("VM.hard_shutdown", small), ("VM.pool_migrate", small, h1, {}),
                         ("host.evacuate", h2)):
                t0 = time.monotonic()
                params = refused(self, "HOST_OFFLINE", rpc, *call)
                self.assertEqual(params, [h2], call)
                self.assertLess(time.monotonic() - t0, 5 * SLOW, call)
            self.assertEqual(rpc("VM.get_power_state", small), "Running")
            p.start_agent(2)
            wait_until(lambda: rpc("VM.get_resident_on", vm) in (h1, h2) and not rpc("VM.get_current_operations", vm),
                       20, "the VM is settled")
            for v in (vm, small):
                rpc("VM.hard_shutdown", v)
        finally:
            p.close()


if __name__ == "__main__":
    unittest.main()
