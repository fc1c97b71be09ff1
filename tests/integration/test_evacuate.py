"""
test_evacuate.py - host.evacuate with real agents on loopback: a plan first,
then a sliding window of at most batch_size migrations (observed from the
outside: VMs with a reservation are the migrations in flight, and the one
prepared ahead), VMs that cannot move reported while the others move, a
destination agent killed and poold killed (or stopped) in the middle,
cancelling (a destination prepared ahead is taken back), and the dry run.
"""
import json
import signal
import socket
import time
import unittest

from tests.integration.harness import SLOW, XapiError
from tests.integration.pooltest import DevPool, pid_alive, wait_until

NULL = "OpaqueRef:NULL"


def make_vms(p, n, prefix, host, mib=128, touch=96, **oc):
    vms = []
    for i in range(n):
        other = {"sim-touch-mib": str(touch)}
        other.update(oc)
        vm = p.rpc("VM.create", {"name_label": "%s%d" % (prefix, i), "memory_static_max": mib << 20,
                                 "memory_dynamic_max": mib << 20, "memory_dynamic_min": mib << 20,
                                 "memory_static_min": 16 << 20, "other_config": other})
        p.rpc("VM.start_on", vm, host, False, False)
        vms.append(vm)
    return vms


def follow(p, task, timeout, on_sample=None):
    """Poll until the task ends; on_sample() runs between polls."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if on_sample:
            on_sample()
        if p.rpc("task.get_status", task) not in ("pending", "cancelling"):
            break
        time.sleep(0.01)
    return p.rpc("task.get_record", task)


def running_copies(p, vm_uuid, hosts):
    return [i for i in hosts if any(pid_alive(int(d["pid"])) and d.get("uuid") == vm_uuid
                                    for d in p.domains(i).values())]


class EvacuateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = DevPool(3, host_memory_mib=2560, extra=("--no-sr",))

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    def tearDown(self):
        # every VM off, the next test starts from an empty pool
        for vm, rec in self.p.rpc("VM.get_all_records").items():
            if rec["is_control_domain"] or rec["is_a_template"]:
                continue
            if rec["power_state"] != "Halted":
                self.p.rpc("VM.hard_shutdown", vm)
            self.p.rpc("VM.destroy", vm)

    def test_sliding_window(self):
        rpc = self.p.rpc
        h1, h2, h3 = (self.p.host_ref(i) for i in (1, 2, 3))
        vms = make_vms(self.p, 12, "w", h1, **{"sim-dirty-pages-per-s": "500"})
        halted = rpc("VM.create", {"name_label": "latecomer", "memory_static_max": 64 << 20,
                                   "memory_dynamic_max": 64 << 20, "memory_dynamic_min": 64 << 20,
                                   "memory_static_min": 16 << 20})
        task = rpc("Async.host.evacuate", h1, NULL, 4)
        in_flight, refused = [], []

        def sample():
            recs = rpc("VM.get_all_records")
            in_flight.append(sum(1 for r in recs.values() if r["scheduled_to_be_resident_on"] != NULL))
            if not refused and rpc("host.get_current_operations", h1):
                try:
                    rpc("VM.start_on", halted, h1, False, False)
                    refused.append("started")
                except XapiError as e:
                    refused.append(e.code)
        rec = follow(self.p, task, 120 * SLOW, sample)
        self.assertEqual(rec["status"], "success", rec["error_info"])
        # never more streams than the window (poold's count), and one more
        # reservation at most: the next VM, prepared while the window is full
        self.assertLessEqual(max(in_flight), 4 + 1)
        self.assertIn("prepared ahead", self.p.poold_log(200000))
        state = json.loads(rec["other_config"]["evacuation"])
        self.assertEqual(state["max_in_flight"], 4)
        self.assertEqual(state["batch_size"], 4)
        self.assertTrue(all(v["state"] == "done" for v in state["vms"]), state)
        # while it ran, the host took no new VM
        self.assertEqual(refused[:1], ["HOST_EVACUATE_IN_PROGRESS"])
        # every VM runs elsewhere, once; the load is spread over both hosts
        where = [rpc("VM.get_resident_on", vm) for vm in vms]
        self.assertNotIn(h1, where)
        self.assertEqual(set(where), {h2, h3})
        for vm in vms:
            self.assertEqual(rpc("VM.get_power_state", vm), "Running")
            self.assertEqual(len(running_copies(self.p, rpc("VM.get_uuid", vm), (1, 2, 3))), 1)
        self.assertEqual(rpc("host.get_current_operations", h1), {})
        # and the host takes VMs again
        rpc("VM.start_on", halted, h1, False, False)

    def test_what_cannot_move_is_reported_and_the_rest_moves(self):
        rpc = self.p.rpc
        h1 = self.p.host_ref(1)
        movers = make_vms(self.p, 3, "m", h1)
        stuck = make_vms(self.p, 1, "stuck", h1)[0]
        rpc("VM.add_to_platform", stuck, "nomigrate", "true")
        # the dry run: nothing moves, every VM has a target or a reason
        plan = rpc("host.compute_evacuation_plan", h1)
        self.assertEqual(set(plan), set(movers) | {stuck})
        self.assertEqual(plan[stuck]["error"], ["VM_IS_IMMOBILE", stuck])
        for vm in movers:
            self.assertIn(plan[vm]["target"], (self.p.host_ref(2), self.p.host_ref(3)))
        self.assertEqual(rpc("host.get_vms_which_prevent_evacuation", h1), {stuck: ["VM_IS_IMMOBILE", stuck]})
        with self.assertRaises(XapiError) as cm:
            rpc("host.assert_can_evacuate", h1)
        self.assertEqual(cm.exception.code, "CANNOT_EVACUATE_HOST")
        self.assertEqual([rpc("VM.get_resident_on", vm) for vm in movers], [h1] * 3)
        # the real thing: the others move, the task says which stayed and why
        with self.assertRaises(XapiError) as cm:
            rpc("host.evacuate", h1, timeout=120 * SLOW)
        self.assertEqual(cm.exception.code, "CANNOT_EVACUATE_HOST")
        self.assertEqual(json.loads(cm.exception.params[0]), {stuck: ["VM_IS_IMMOBILE", stuck]})
        self.assertNotIn(h1, [rpc("VM.get_resident_on", vm) for vm in movers])
        self.assertEqual(rpc("VM.get_resident_on", stuck), h1)
        self.assertEqual(rpc("host.get_current_operations", h1), {})

    def test_xe(self):
        rpc = self.p.rpc
        h1, h2, h3 = (self.p.host_ref(i) for i in (1, 2, 3))
        u1 = self.p.host_uuid(1)
        vms = make_vms(self.p, 3, "x", h1)
        stuck = make_vms(self.p, 1, "xstuck", h1)[0]
        rpc("VM.add_to_platform", stuck, "nomigrate", "true")
        out = self.p.xe("host-evacuate", "uuid=" + u1, "dry-run=true").stdout
        self.assertIn("xstuck", out)
        self.assertIn("cannot move: VM_IS_IMMOBILE", out)
        self.assertIn("3 would move, 1 cannot", out)
        self.assertEqual([rpc("VM.get_resident_on", vm) for vm in vms], [h1] * 3)  # nothing moved
        out = self.p.xe("host-get-vms-which-prevent-evacuation", "uuid=" + u1).stdout
        self.assertIn(rpc("VM.get_uuid", stuck), out)
        self.assertIn("VM_IS_IMMOBILE", out)
        r = self.p.xe("host-evacuate", "uuid=" + u1, "batch-size=two", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("batch-size", r.stderr + r.stdout)
        rpc("VM.remove_from_platform", stuck, "nomigrate")
        r = self.p.xe("host-evacuate", "uuid=" + u1, "batch-size=2", "--minimal")
        self.assertEqual(r.stdout, "")
        for vm in vms + [stuck]:
            self.assertIn(rpc("VM.get_resident_on", vm), (h2, h3))

    def test_bad_arguments(self):
        rpc = self.p.rpc
        h1 = self.p.host_ref(1)
        for args, code in (((NULL,), "HANDLE_INVALID"), ((h1, "OpaqueRef:nope"), "HANDLE_INVALID"),
                           ((h1, NULL, -1), "INVALID_VALUE"), ((h1, NULL, "four"), "FIELD_TYPE_ERROR")):
            with self.assertRaises(XapiError) as cm:
                rpc("host.evacuate", *args)
            self.assertEqual(cm.exception.code, code, args)
        self.assertEqual(rpc("host.get_current_operations", h1), {})


class EvacuateFaultTest(unittest.TestCase):
    def finishes_after_restart(self, p, task, vms, sig):
        """poold stopped with sig and started again: the evacuation ends
        well, every VM runs once, off host1, where poold records it."""
        rpc, h1 = p.rpc, p.host_ref(1)
        p.restart_poold(sig=sig, pause=1)

        def ended():
            try:
                return rpc("task.get_status", task) != "pending"
            except Exception:
                return False
        wait_until(ended, 120 * SLOW, "the evacuation ends after the restart", 0.1)
        rec = rpc("task.get_record", task)
        self.assertEqual(rec["status"], "success", rec["error_info"])
        for vm in vms:
            where = rpc("VM.get_resident_on", vm)
            self.assertNotEqual(where, h1)
            copies = running_copies(p, rpc("VM.get_uuid", vm), (1, 2, 3))
            self.assertEqual([p.host_ref(i) for i in copies], [where], vm)
        self.assertEqual(rpc("host.get_current_operations", h1), {})

    def test_destination_agent_killed(self):
        """A destination dies mid-evacuation: its VMs are re-placed on the
        host that is left, and the evacuation completes."""
        p = DevPool(3, host_memory_mib=2560, extra=("--no-sr",))
        try:
            rpc = p.rpc
            h1, h3 = p.host_ref(1), p.host_ref(3)
            vms = make_vms(p, 8, "d", h1, touch=110)
            task = rpc("Async.host.evacuate", h1, NULL, 2)
            wait_until(lambda: any(rpc("VM.get_scheduled_to_be_resident_on", vm) == p.host_ref(2) for vm in vms)
                       or rpc("task.get_status", task) != "pending", 30 * SLOW, "a migration to host2 runs", 0.01)
            p.kill_agent(2)
            rec = follow(p, task, 180 * SLOW)
            self.assertEqual(rec["status"], "success", rec["error_info"])
            for vm in vms:
                where = rpc("VM.get_resident_on", vm)
                self.assertNotEqual(where, h1)
                if where == h3:
                    self.assertEqual(running_copies(p, rpc("VM.get_uuid", vm), (1, 3)), [3])
            state = json.loads(rec["other_config"]["evacuation"])
            self.assertTrue(any(v["tries"] > 0 for v in state["vms"]), state)
            # host2 comes back and clears the incoming domain it left paused
            # (the consistency check at close finds none then)
            p.start_agent(2)
        finally:
            p.close()

    def test_poold_restarted_mid_evacuation(self):
        """poold killed in the middle: started again, it finds the plan in
        its database and finishes the evacuation; no VM runs twice."""
        p = DevPool(3, host_memory_mib=2560, extra=("--no-sr",))
        try:
            rpc = p.rpc
            h1 = p.host_ref(1)
            vms = make_vms(p, 10, "r", h1, touch=110)
            task = rpc("Async.host.evacuate", h1, NULL, 2)
            wait_until(lambda: sum(1 for vm in vms if rpc("VM.get_resident_on", vm) != h1) >= 2
                       or rpc("task.get_status", task) != "pending", 60 * SLOW, "some VMs moved", 0.01)
            self.finishes_after_restart(p, task, vms, signal.SIGKILL)
            self.assertIn("resumed after a restart", p.poold_log(20000))
        finally:
            p.close()

    def test_poold_stopped_mid_evacuation(self):
        """poold stopped (SIGTERM) in the middle, with a VM prepared ahead:
        it ends cleanly (its migrations go on without it, the one prepared
        ahead is taken back), and the next poold finishes the evacuation."""
        p = DevPool(3, host_memory_mib=2560, extra=("--no-sr",))
        try:
            rpc = p.rpc
            h1 = p.host_ref(1)
            vms = make_vms(p, 8, "t", h1, touch=110)
            task = rpc("Async.host.evacuate", h1, NULL, 1)
            wait_until(lambda: "prepared ahead" in p.poold_log(20000) or rpc("task.get_status", task) != "pending",
                       60 * SLOW, "a VM prepared ahead", 0.01)
            self.finishes_after_restart(p, task, vms, signal.SIGTERM)
        finally:
            p.close()

    def test_prepared_endpoint_taken_back(self):
        """agent.migrate_receive_cancel: a destination prepared for a VM
        whose source never came gives its endpoint and empty domain back;
        one that is not waiting is left alone."""
        p = DevPool(2, host_memory_mib=2048, extra=("--no-sr",))
        try:
            uuid = "0e7a11e5-0000-4000-8000-00000000c0de"
            cfg = {"uuid": uuid, "name": "ahead", "memory": 64 << 20, "vcpus": 1}
            ans = p.agent_call(2, "agent.migrate_receive", cfg, "a" * 32, {})
            self.assertIn("result", ans, ans)
            self.assertGreater(ans["result"]["port"], 0)
            self.assertEqual([i for i, _ in p.simdoms().get(uuid, [])], [2])
            self.assertEqual(p.agent_call(2, "agent.migrate_receive_cancel", uuid)["result"], {"cancelled": True})
            wait_until(lambda: uuid not in p.simdoms(), 10 * SLOW, "the prepared domain is gone", 0.05)
            self.assertEqual(p.agent_call(2, "agent.migrate_receive_cancel", uuid)["result"], {"cancelled": False})
            self.assertEqual(p.agent_call(1, "agent.migrate_receive_cancel", uuid)["result"], {"cancelled": False})
            # the endpoint is closed: nothing listens on its port any more
            with self.assertRaises(OSError):
                addr = p.rpc("host.get_other_config", p.host_ref(2))["agent_address"]
                socket.create_connection((addr, ans["result"]["port"]), timeout=2).close()
            bad = p.agent_call(2, "agent.migrate_receive_cancel")
            self.assertIn("error", bad, bad)
        finally:
            p.close()

    def test_cancel(self):
        """Cancelling stops new migrations; those in flight end cleanly."""
        p = DevPool(2, host_memory_mib=3072, extra=("--no-sr",))
        try:
            rpc = p.rpc
            h1, h2 = p.host_ref(1), p.host_ref(2)
            vms = make_vms(p, 8, "c", h1, touch=110)
            task = rpc("Async.host.evacuate", h1, NULL, 1)
            wait_until(lambda: any(rpc("VM.get_resident_on", vm) == h2 for vm in vms)
                       or rpc("task.get_status", task) != "pending", 60 * SLOW, "one VM moved", 0.01)
            rpc("task.cancel", task)
            rec = follow(p, task, 60 * SLOW)
            if rec["status"] == "success":
                self.skipTest("the evacuation ended before the cancel landed")
            self.assertEqual(rec["status"], "cancelled", rec)
            time.sleep(1)
            where = [rpc("VM.get_resident_on", vm) for vm in vms]
            self.assertIn(h1, where)  # not all moved
            for vm in vms:
                self.assertEqual(rpc("VM.get_scheduled_to_be_resident_on", vm), NULL)
                self.assertEqual(rpc("VM.get_power_state", vm), "Running")
            self.assertEqual(rpc("host.get_current_operations", h1), {})
            # one copy of each VM, where poold says: the destination prepared
            # ahead for the next VM was taken back with its empty domain
            uuids = {rpc("VM.get_uuid", vm): vm for vm in vms}

            def one_copy_each():
                live = p.simdoms()
                return all([i for i, _ in live.get(u, [])] == [p.host_index(rpc("VM.get_resident_on", vm))]
                           for u, vm in uuids.items())
            wait_until(one_copy_each, 20 * SLOW, "each VM runs once, where it is recorded", 0.1)
        finally:
            p.close()


if __name__ == "__main__":
    unittest.main()
