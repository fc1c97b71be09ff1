"""
test_records.py - the records Xen Orchestra reads besides VMs and hosts, on
a two-host devpool: each host's control domain, the guest metrics a sim
guest reports (its OS and an address, kept while it runs, gone when it
halts), software_version, and the message class's calls.
"""
import time
import unittest

from tests.integration.harness import SLOW, XapiError
from tests.integration.pooltest import DevPool, wait_until


class RecordsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = DevPool(2, host_memory_mib=1024, extra=("--no-sr",))

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    def vm(self, name):
        return self.p.rpc("VM.create", {"name_label": name, "memory_static_max": 64 << 20,
                                        "memory_dynamic_max": 64 << 20, "memory_dynamic_min": 64 << 20,
                                        "memory_static_min": 16 << 20})

    def test_a_control_domain_per_host(self):
        rpc = self.p.rpc
        for i in (1, 2):
            h = self.p.host_ref(i)
            dom0 = wait_until(lambda: rpc("host.get_control_domain", h) != "OpaqueRef:NULL" and
                              rpc("host.get_control_domain", h), 10, "host%d's control domain" % i)
            rec = rpc("VM.get_record", dom0)
            self.assertTrue(rec["is_control_domain"])
            self.assertEqual((rec["power_state"], rec["resident_on"], rec["domid"]), ("Running", h, 0))
            self.assertEqual(rec["name_label"], "Control domain on host: host%d" % i)
            self.assertIn(dom0, rpc("host.get_resident_VMs", h))
            self.assertGreater(rpc("VM_metrics.get_VCPUs_number", rec["metrics"]), 0)
            # nothing may start, stop or destroy it
            with self.assertRaises(XapiError):
                rpc("VM.hard_shutdown", dom0)
            with self.assertRaises(XapiError):
                rpc("VM.destroy", dom0)
        # heartbeats leave it running (no agent lists dom0 as a domain of its own)
        time.sleep(2 * SLOW)
        dom0 = rpc("host.get_control_domain", self.p.host_ref(1))
        self.assertEqual(rpc("VM.get_power_state", dom0), "Running")
        # xe lists them as real xe does, and is-control-domain=false leaves them out
        self.assertIn("Control domain on host: host1", self.p.xe("vm-list", "params=name-label", "--minimal").stdout)
        self.assertNotIn("Control domain",
                         self.p.xe("vm-list", "is-control-domain=false", "params=name-label", "--minimal").stdout)
        out = self.p.xe("vm-list", "is-control-domain=true", "params=name-label", "--minimal").stdout
        self.assertEqual(sorted(out.strip().split(",")), ["Control domain on host: host1",
                                                           "Control domain on host: host2"])
        # the pool's truth still holds (close() checks it too)
        self.p.assert_consistent()

    def test_guest_metrics_follow_the_guest(self):
        rpc = self.p.rpc
        vm = self.vm("guest1")
        uuid = rpc("VM.get_uuid", vm)
        self.assertEqual(rpc("VM.get_guest_metrics", vm), "OpaqueRef:NULL")
        rpc("VM.start_on", vm, self.p.host_ref(1), False, False)
        gm = wait_until(lambda: rpc("VM.get_guest_metrics", vm) != "OpaqueRef:NULL" and
                        rpc("VM.get_guest_metrics", vm), 10, "the guest's metrics")
        rec = rpc("VM_guest_metrics.get_record", gm)
        self.assertEqual(rec["os_version"]["name"], "Simulated guest (pool-simdom)")
        addr = rec["networks"]["0/ip"]
        octets = [int(x) for x in addr.split(".")]
        self.assertEqual(octets[:3], [10, int(uuid[0:2], 16), int(uuid[2:4], 16)])
        self.assertEqual(rec["networks"]["0/ipv4/0"], addr)
        self.assertTrue(rec["live"])
        self.assertTrue(rec["PV_drivers_detected"])
        self.assertTrue(rec["last_updated"])
        self.assertIn(gm, rpc("VM_guest_metrics.get_all"))
        # a migration keeps the guest and its address
        rpc("VM.pool_migrate", vm, self.p.host_ref(2), {"live": "true"}, timeout=120)
        time.sleep(1.5 * SLOW)
        gm2 = rpc("VM.get_guest_metrics", vm)
        self.assertEqual(rpc("VM_guest_metrics.get_networks", gm2)["0/ip"], addr)
        # halted: gone, as XAPI blanks them
        rpc("VM.hard_shutdown", vm)
        self.assertEqual(rpc("VM.get_guest_metrics", vm), "OpaqueRef:NULL")
        with self.assertRaises(XapiError) as cm:
            rpc("VM_guest_metrics.get_record", gm2)
        self.assertEqual(cm.exception.code, "HANDLE_INVALID")
        time.sleep(1.5 * SLOW)  # and the next heartbeats do not bring them back
        self.assertEqual(rpc("VM.get_guest_metrics", vm), "OpaqueRef:NULL")

    def test_guest_metrics_go_when_the_domain_ends_by_itself(self):
        rpc = self.p.rpc
        vm = self.vm("guest2")
        rpc("VM.start_on", vm, self.p.host_ref(2), False, False)
        wait_until(lambda: rpc("VM.get_guest_metrics", vm) != "OpaqueRef:NULL", 10, "the guest's metrics")
        import os
        import signal
        os.kill(self.p.domain_pid(2, rpc("VM.get_domid", vm)), signal.SIGKILL)
        wait_until(lambda: rpc("VM.get_power_state", vm) == "Halted", 15, "the VM recorded halted")
        self.assertEqual(rpc("VM.get_guest_metrics", vm), "OpaqueRef:NULL")

    def test_software_version(self):
        for i in (1, 2):
            sv = self.p.rpc("host.get_software_version", self.p.host_ref(i))
            self.assertEqual(sv["platform_version"], "3.4.0")
            self.assertTrue(sv["build_number"])
            self.assertEqual(sv["product_brand"], "poold")

    def test_message_calls(self):
        rpc = self.p.rpc
        vm = self.vm("noted")
        uuid = rpc("VM.get_uuid", vm)
        before = time.strftime("%Y%m%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
        token = rpc("event.from", ["message"], "", 0.0)["token"]
        m1 = rpc("message.create", "TEST_ALERT", 3, "VM", uuid, "body one")
        m2 = rpc("message.create", "OTHER", 5, "Host", rpc("host.get_uuid", self.p.host_ref(1)), "body two")
        self.assertEqual(rpc("message.get_record", m1)["body"], "body one")
        since = rpc("message.get_since", before)
        self.assertLessEqual({m1, m2}, set(since))
        self.assertEqual(since[m1]["name"], "TEST_ALERT")
        self.assertEqual(set(rpc("message.get", "VM", uuid, before)), {m1})
        self.assertEqual(rpc("message.get_since", "20991231T00:00:00Z"), {})
        ev = rpc("event.from", ["message"], token, 5.0)["events"]
        self.assertLessEqual({m1, m2}, {e["ref"] for e in ev if e["operation"] == "add"})
        # destroy_many: all or none
        with self.assertRaises(XapiError) as cm:
            rpc("message.destroy_many", [m1, vm])
        self.assertEqual(cm.exception.code, "HANDLE_INVALID")
        self.assertIn(m1, rpc("message.get_all"))
        rpc("message.destroy_many", [m1, m2])
        self.assertFalse({m1, m2} & set(rpc("message.get_all")))


if __name__ == "__main__":
    unittest.main()
