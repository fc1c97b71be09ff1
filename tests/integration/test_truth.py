"""
test_truth.py - the pool's truth against a careful operator and an
attacker holding one host's certificate, on a 3-host devpool:

- an agent whose state directory is deleted under it keeps its VMs recorded
  running (its domains are processes, found without those files), refuses
  work that would write there, and a restarted agent on the restored
  directory adopts them; no VM can be started twice meanwhile;
- a report signed by host1 cannot halt or move host2's VM: a forged "halted"
  changes nothing, a forged "running" is a double that is alarmed (a
  message) and paused on host1, never moving the record;
- host1's certificate drives nothing on host2's agent, and a disk cannot
  point a guest at a file outside the SRs.

Every test ends with the pool-wide consistency check (DevPool.close).
"""
import http.client
import json
import os
import shutil
import ssl
import subprocess
import time
import unittest

from tests.integration.harness import SLOW, XapiError
from tests.integration.pooltest import HEARTBEAT, DevPool, pid_alive, wait_until


def cert_call(pool, i, host, port, method, params, path="/jsonrpc"):
    """A JSON-RPC call over mutual TLS with host i's own certificate."""
    sd = pool.state_dir(i)
    ctx = ssl.create_default_context(cafile=os.path.join(sd, "ca.pem"))
    ctx.check_hostname = False
    ctx.load_cert_chain(os.path.join(sd, "agent.pem"), os.path.join(sd, "agent.key"))
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=30 * SLOW)
    try:
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1})
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        answer = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    if "error" in answer:
        e = answer["error"]
        raise XapiError(e.get("message"), e.get("data"))
    return answer["result"]


class Truth(unittest.TestCase):
    def setUp(self):
        self.p = DevPool(3, host_memory_mib=2048)
        self.rpc = self.p.rpc

    def tearDown(self):
        self.p.close()

    def vm(self, name, mib=256):
        return self.rpc("VM.create", {"name_label": name, "memory_static_max": mib << 20,
                                      "memory_dynamic_max": mib << 20, "memory_dynamic_min": mib << 20,
                                      "memory_static_min": 64 << 20, "VCPUs_max": 1, "VCPUs_at_startup": 1,
                                      "other_config": {"sim-heartbeat-ms": "10"}})

    def running_pids(self, vm):
        uuid = self.rpc("VM.get_uuid", vm)
        return self.p.simdoms().get(uuid, [])

    def messages(self, name):
        return [m for m in self.rpc("message.get_all_records").values() if m["name"] == name]

    def test_lost_state_dir(self):
        h3 = self.p.host_ref(3)
        vms = [self.vm("lost%d" % k) for k in range(2)]
        for v in vms:
            self.rpc("VM.start_on", v, h3, False, False)
        before = {v: self.running_pids(v) for v in vms}
        state = self.p.state_dir(3)
        saved = state + ".saved"
        shutil.copytree(state, saved, symlinks=True)
        shutil.rmtree(state)
        # several heartbeats later: still running, still on host3, same processes
        time.sleep(6 * HEARTBEAT)
        for v in vms:
            self.assertEqual(self.rpc("VM.get_power_state", v), "Running")
            self.assertEqual(self.rpc("VM.get_resident_on", v), h3)
            self.assertEqual(self.running_pids(v), before[v])
            # and nobody can start it a second time
            with self.assertRaises(XapiError) as cm:
                self.rpc("VM.start_on", v, self.p.host_ref(1), False, False)
            self.assertEqual(cm.exception.code, "VM_BAD_POWER_STATE")
        self.assertIn("is gone or was replaced", self.p.agent_log(3))
        # the agent refuses work that would write into the lost directory
        other = self.vm("new")
        with self.assertRaises(XapiError) as cm:
            self.rpc("VM.start_on", other, h3, False, False)
        self.assertEqual(cm.exception.code, "OPERATION_NOT_ALLOWED")
        self.assertEqual(self.rpc("VM.get_power_state", other), "Halted")
        # restored and restarted: the same domains, adopted, none "crashed"
        os.rename(saved, state)
        self.p.kill_agent(3)
        self.p.start_agent(3)
        time.sleep(4 * HEARTBEAT)
        for v in vms:
            self.assertEqual(self.rpc("VM.get_power_state", v), "Running")
            self.assertEqual(self.running_pids(v), before[v])
        self.assertNotIn("crashed", self.p.agent_log(3, 100000))
        for v in vms:
            self.rpc("VM.hard_shutdown", v)

    def forged_beat(self, vm_uuid, power_state):
        """Host1's own report, signed with its certificate, plus a domain of host2's VM."""
        rec = self.rpc("host.get_record", self.p.host_ref(1))
        m = self.p.host_metrics(1)
        report = {"name_label": rec["name_label"], "hostname": rec["hostname"], "address": rec["address"],
                  "port": int(rec["other_config"]["agent_port"]),
                  "migration_address": rec["other_config"].get("migration_address", ""),
                  "backend": "sim", "product_version": rec["software_version"]["product_version"],
                  "memory_total": m["memory_total"], "memory_free": m["memory_free"],
                  "cpu_info": {"vendor": rec["cpu_info"]["vendor"], "features": rec["cpu_info"]["features"],
                               "cpu_count": 4},
                  "domains": [{"uuid": vm_uuid, "domid": 99, "power_state": power_state, "memory": 1, "vcpus": 1}],
                  "domains_complete": True, "srs": [], "boot": "forged", "seq": 1}
        return cert_call(self.p, 1, "127.0.0.1", self.p.port, "host.heartbeat", [report])

    def test_forged_reports(self):
        h2, h3 = self.p.host_ref(2), self.p.host_ref(3)
        vm = self.vm("victim")
        self.rpc("VM.start_on", vm, h2, False, False)
        uuid = self.rpc("VM.get_uuid", vm)
        [(host, pid)] = self.running_pids(vm)
        self.assertEqual(host, 2)
        time.sleep(3 * HEARTBEAT)  # host2 has reported it since
        # "it stopped" from host1: nothing changes, so it cannot be started elsewhere
        self.forged_beat(uuid, "Halted")
        self.assertEqual(self.rpc("VM.get_power_state", vm), "Running")
        self.assertEqual(self.rpc("VM.get_resident_on", vm), h2)
        with self.assertRaises(XapiError) as cm:
            self.rpc("VM.start_on", vm, h3, False, False)
        self.assertEqual(cm.exception.code, "VM_BAD_POWER_STATE")
        # "I run it" from host1: a double, alarmed once, the record stays
        for _ in range(3):
            self.forged_beat(uuid, "Running")
            self.assertEqual(self.rpc("VM.get_resident_on", vm), h2)
        msgs = self.messages("VM_RUNNING_ON_TWO_HOSTS")
        self.assertEqual(len(msgs), 1, msgs)
        self.assertEqual(msgs[0]["obj_uuid"], uuid)
        # host1's real heartbeats take over again; the VM never stopped on host2
        time.sleep(4 * HEARTBEAT)
        self.assertEqual(self.rpc("VM.get_resident_on", vm), h2)
        self.assertTrue(pid_alive(pid))
        self.assertEqual(self.running_pids(vm), [(2, pid)])
        self.rpc("VM.hard_shutdown", vm)

    def test_host_cert_drives_no_agent(self):
        rec = self.rpc("host.get_record", self.p.host_ref(2))
        addr, port = rec["address"], int(rec["other_config"]["agent_port"])
        sr = self.rpc("SR.get_all_records")
        sr_uuid = [s["uuid"] for s in sr.values() if s["type"] == "file"][0]
        victim = os.path.join(self.p.dir, "victim.txt")
        with open(victim, "w") as f:
            f.write("precious\n")
        cfg = {"uuid": "11111111-2222-3333-4444-555555555555", "name": "evil", "memory": 64 << 20, "vcpus": 1,
               "disks": [{"vdi_uuid": "../victim.txt", "sr": sr_uuid, "device": "0", "path": victim}]}
        for method, params in (("agent.vm_start", [cfg]), ("agent.report", []),
                               ("agent.vdi_destroy", [sr_uuid, "x"])):
            # refused in the TLS handshake (only the master's certificate is
            # a client of an agent), or else by the method's declared caller
            try:
                cert_call(self.p, 1, addr, port, method, params)
                self.fail("%s with host1's certificate was accepted" % method)
            except ssl.SSLError:
                pass
            except XapiError as e:
                self.assertEqual(e.code, "PERMISSION_DENIED", method)
        with open(victim) as f:
            self.assertEqual(f.read(), "precious\n")
        self.assertEqual(self.running_pids_uuid(cfg["uuid"]), [])

    def running_pids_uuid(self, uuid):
        return self.p.simdoms().get(uuid, [])


if __name__ == "__main__":
    unittest.main()


class LockedDatabase(unittest.TestCase):
    """Another process holds pool.db's write lock (a backup tool, an
    operator's sqlite3 shell): poold keeps answering, hosts stay live, a
    write is refused at once with the reason, and what an agent did
    meanwhile is recorded once the lock is gone."""

    def test_locked_database(self):
        import sqlite3
        import threading
        p = DevPool(2, host_memory_mib=3072, extra=("--no-sr",))
        try:
            rpc = p.rpc
            vm = rpc("VM.create", {"name_label": "big", "memory_static_max": 1536 << 20,
                                   "memory_dynamic_max": 1536 << 20, "memory_dynamic_min": 1536 << 20,
                                   "memory_static_min": 64 << 20, "VCPUs_max": 1, "VCPUs_at_startup": 1,
                                   "other_config": {"sim-touch-mib": "1450", "sim-heartbeat-ms": "10"}})
            other = rpc("VM.create", {"name_label": "small", "memory_static_max": 64 << 20,
                                      "memory_dynamic_max": 64 << 20, "memory_dynamic_min": 64 << 20,
                                      "memory_static_min": 64 << 20})
            h1, h2 = p.host_ref(1), p.host_ref(2)
            rpc("VM.start_on", vm, h1, False, False)
            held, release = threading.Event(), threading.Event()

            def hold():
                db = sqlite3.connect(os.path.join(p.dir, "master", "pool.db"), isolation_level=None, timeout=30)
                db.execute("BEGIN IMMEDIATE")
                held.set()
                release.wait(60)
                db.execute("ROLLBACK")
                db.close()
            task = rpc("Async.VM.pool_migrate", vm, h2, {})
            wait_until(lambda: rpc("VM.get_current_operations", vm), 20 * SLOW, "the migration holds the VM", 0.005)
            t = threading.Thread(target=hold)
            t.start()
            try:
                self.assertTrue(held.wait(10))
                locked_at = time.monotonic()
                # reads and the transport are not held up
                t0 = time.monotonic()
                rpc("VM.get_record", vm)
                self.assertLess(time.monotonic() - t0, 2 * SLOW)
                # a write is refused at once, nothing changed
                t0 = time.monotonic()
                with self.assertRaises(XapiError) as cm:
                    rpc("VM.start_on", other, h2, False, False)
                self.assertLess(time.monotonic() - t0, 2 * SLOW)
                self.assertIn("locked by another process", cm.exception.params[0])
                # longer than the heartbeat timeout: both hosts stay live
                while time.monotonic() - locked_at < 6:
                    time.sleep(0.5)
                for i in (1, 2):
                    self.assertTrue(p.host_metrics(i)["live"])
                # the agents finish the migration meanwhile; poold cannot record it yet
                wait_until(lambda: "migration out: VM %s done" % rpc("VM.get_uuid", vm) in p.agent_log(1, 100000),
                           60 * SLOW, "the source agent finished the migration", 0.1)
                time.sleep(1)
                self.assertEqual(rpc("task.get_status", task), "pending")
            finally:
                release.set()
                t.join()
            # the migration ended during the lock: its record follows
            wait_until(lambda: rpc("task.get_status", task) != "pending", 60 * SLOW, "the migration's task ends", 0.1)
            self.assertEqual(rpc("task.get_status", task), "success", rpc("task.get_error_info", task))
            wait_until(lambda: rpc("VM.get_resident_on", vm) == h2, 10 * SLOW, "the move is recorded")
            self.assertEqual(rpc("VM.get_current_operations", vm), {})
            self.assertEqual(rpc("VM.get_scheduled_to_be_resident_on", vm), "OpaqueRef:NULL")
            self.assertEqual(rpc("VM.get_power_state", other), "Halted")
            self.assertIn("recorded after", p.poold_log(100000))
            rpc("VM.hard_shutdown", vm)
        finally:
            p.close()
