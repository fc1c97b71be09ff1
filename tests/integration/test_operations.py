"""
test_operations.py - what an object may do, as clients read it
(allowed_operations, current_operations) and as poold enforces it, on a
3-host devpool with a shared SR:

- a running VM's disk is attached (VBD.currently_attached, device xvda)
  from its start, through a migration and an agent restart, until it stops;
  meanwhile its VDI cannot be destroyed (VDI_IN_USE) and its file stays;
- allowed_operations follow the power state, and a migration in flight is
  a current operation that blocks the others;
- a shared SR created on one host is plugged on every host.
"""
import os
import time
import unittest

from tests.integration.harness import SLOW, XapiError
from tests.integration.pooltest import HEARTBEAT, DevPool, wait_until


class Operations(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = DevPool(3, host_memory_mib=3072)
        cls.rpc = cls.p.rpc
        cls.sr = next(r for r, v in cls.rpc("SR.get_all_records").items() if v["shared"])

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    def vm_with_disk(self, name, mib=256, **oc):
        rpc = self.rpc
        vm = rpc("VM.create", {"name_label": name, "memory_static_max": mib << 20, "memory_dynamic_max": mib << 20,
                               "memory_dynamic_min": mib << 20, "memory_static_min": 64 << 20, "VCPUs_max": 1,
                               "VCPUs_at_startup": 1, "other_config": dict({"sim-heartbeat-ms": "10"}, **oc)})
        vdi = rpc("VDI.create", {"SR": self.sr, "virtual_size": 8 << 20, "name_label": name + "-disk", "type": "user"})
        vbd = rpc("VBD.create", {"VM": vm, "VDI": vdi, "userdevice": "0", "mode": "RW", "type": "Disk",
                                 "bootable": True})
        return vm, vdi, vbd

    def refused(self, code, *call):
        with self.assertRaises(XapiError) as cm:
            self.rpc(*call)
        self.assertEqual(cm.exception.code, code, cm.exception.params)
        return cm.exception.params

    def attached(self, vbd):
        r = self.rpc("VBD.get_record", vbd)
        return r["currently_attached"], r["device"]

    def test_disk_attached_while_running(self):
        rpc = self.rpc
        vm, vdi, vbd = self.vm_with_disk("d1")
        path = rpc("VDI.get_location", vdi)
        self.assertEqual(self.attached(vbd), (False, ""))
        self.assertEqual(sorted(rpc("VM.get_allowed_operations", vm)),
                         sorted(["start", "start_on", "clone", "copy", "snapshot", "destroy", "changing_static_range",
                                 "changing_dynamic_range"]))
        self.assertIn("destroy", rpc("VDI.get_allowed_operations", vdi))
        rpc("VM.start_on", vm, self.p.host_ref(1), False, False)
        self.assertEqual(self.attached(vbd), (True, "xvda"))
        self.assertIn("pool_migrate", rpc("VM.get_allowed_operations", vm))
        self.assertNotIn("start", rpc("VM.get_allowed_operations", vm))
        self.assertNotIn("destroy", rpc("VDI.get_allowed_operations", vdi))
        self.assertEqual(self.refused("VDI_IN_USE", "VDI.destroy", vdi), [vdi, "destroy"])
        r = self.p.xe("vdi-destroy", "uuid=" + rpc("VDI.get_uuid", vdi), check=False)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("This operation cannot be performed because this VDI is in use by some other operation\n"
                      "vdi: %s (d1-disk)\noperation: destroy\n" % rpc("VDI.get_uuid", vdi), r.stderr)
        self.assertTrue(os.path.exists(path))
        self.assertIn(vbd, rpc("VM.get_VBDs", vm))
        # through a migration and an agent restart
        rpc("VM.pool_migrate", vm, self.p.host_ref(2), {})
        self.assertEqual(self.attached(vbd), (True, "xvda"))
        self.p.kill_agent(2)
        self.p.start_agent(2)
        time.sleep(3 * HEARTBEAT)
        self.assertEqual(self.attached(vbd), (True, "xvda"))
        self.refused("VDI_IN_USE", "VDI.destroy", vdi)
        # until it stops
        rpc("VM.hard_shutdown", vm)
        self.assertEqual(self.attached(vbd), (False, ""))
        self.assertIn("destroy", rpc("VDI.get_allowed_operations", vdi))
        rpc("VM.destroy", vm)
        rpc("VDI.destroy", vdi)
        self.assertFalse(os.path.exists(path))

    def test_migration_is_a_current_operation(self):
        rpc = self.rpc
        vm, vdi, vbd = self.vm_with_disk("m1", mib=1280, **{"sim-touch-mib": "1200"})
        rpc("VM.start_on", vm, self.p.host_ref(1), False, False)
        task = rpc("Async.VM.pool_migrate", vm, self.p.host_ref(3), {})
        seen = wait_until(lambda: rpc("VM.get_current_operations", vm) or rpc("task.get_status", task) != "pending",
                          30 * SLOW, "the migration shows as a current operation", 0.005)
        self.assertEqual(list(seen.values()), ["pool_migrate"], seen)
        self.assertEqual(rpc("VM.get_allowed_operations", vm), [])
        self.refused("OTHER_OPERATION_IN_PROGRESS", "VM.hard_shutdown", vm)
        wait_until(lambda: rpc("task.get_status", task) != "pending", 60 * SLOW, "the migration ends", 0.05)
        self.assertEqual(rpc("task.get_status", task), "success", rpc("task.get_error_info", task))
        self.assertEqual(rpc("VM.get_current_operations", vm), {})
        self.assertIn("pool_migrate", rpc("VM.get_allowed_operations", vm))
        rpc("VM.hard_shutdown", vm)
        rpc("VM.destroy", vm)
        rpc("VDI.destroy", vdi)

    def test_shared_sr_plugged_everywhere(self):
        rpc = self.rpc
        path = os.path.join(self.p.dir, "sr-shared-2")
        sr = rpc("SR.create", self.p.host_ref(2), {"path": path}, 0, "shared2", "", "file", "user", True, {})
        pbds = [rpc("PBD.get_record", p) for p in rpc("SR.get_PBDs", sr)]
        self.assertEqual(sorted(p["host"] for p in pbds), sorted(self.p.host_ref(i) for i in (1, 2, 3)))
        self.assertTrue(all(p["currently_attached"] for p in pbds), pbds)
        self.refused("SR_HAS_PBD", "SR.forget", sr)
        for p in rpc("SR.get_PBDs", sr):
            rpc("PBD.unplug", p)
        rpc("SR.destroy", sr)
        self.assertFalse(os.path.exists(path))


if __name__ == "__main__":
    unittest.main()
