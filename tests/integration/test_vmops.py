"""
test_vmops.py - the VM power operations clients call every day, on a
3-host devpool with a shared SR (seed 003, issue 17 part B):

- VM.clean_reboot / hard_reboot: a new domain on the same host, the guest
  boots again (its heartbeat counter starts anew);
- VM.suspend / resume / resume_on: the guest's memory goes into a suspend
  VDI on the SR (a real file holding what the guest wrote) and comes back
  from it: the heartbeat counter goes on from where it stopped, on the
  same host or another;
- VM.power_state_reset: refused while the VM's host is live, accepted when
  it is dead;
- each with XAPI's refusals (VM_BAD_POWER_STATE, OTHER_OPERATION_IN_PROGRESS,
  VM_NO_SUSPEND_SR, HOST_IS_LIVE) and through Async.* and xe.

DevPool.close() checks at the end that every VM record agrees with the
domains that run and every VDI with its file.
"""
import os
import time
import unittest

from tests.integration.harness import SLOW, XapiError
from tests.integration.pooltest import DevPool, pid_alive, wait_until
from tests.integration.test_pool import guest_heartbeat


class VmOps(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = DevPool(3, host_memory_mib=2048)
        cls.rpc = cls.p.rpc
        cls.sr = next(r for r, v in cls.rpc("SR.get_all_records").items() if v["shared"])

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    # -- helpers
    def vm(self, name, mib=128, disk=True, **oc):
        rpc = self.rpc
        vm = rpc("VM.create", {"name_label": name, "memory_static_max": mib << 20, "memory_dynamic_max": mib << 20,
                               "memory_dynamic_min": mib << 20, "memory_static_min": 16 << 20, "VCPUs_max": 2,
                               "VCPUs_at_startup": 1,
                               "other_config": dict({"sim-heartbeat-ms": "2", "sim-touch-mib": "16"}, **oc)})
        if disk:
            vdi = rpc("VDI.create", {"SR": self.sr, "virtual_size": 8 << 20, "name_label": name + "-disk",
                                     "type": "user"})
            rpc("VBD.create", {"VM": vm, "VDI": vdi, "userdevice": "0", "mode": "RW", "type": "Disk",
                               "bootable": True})
        return vm

    def refused(self, code, *call):
        with self.assertRaises(XapiError) as cm:
            self.rpc(*call)
        self.assertEqual(cm.exception.code, code, cm.exception.params)
        return cm.exception.params

    def pid_of(self, vm):
        host = self.p.host_index(self.rpc("VM.get_resident_on", vm))
        return host, self.p.domain_pid(host, self.rpc("VM.get_domid", vm))

    def running_guest(self, vm, host=1):
        self.rpc("VM.start_on", vm, self.p.host_ref(host), False, False)
        _, pid = self.pid_of(vm)
        wait_until(lambda: guest_heartbeat(pid) > 50, 10, "the guest runs")
        return pid

    def task_result(self, task):
        wait_until(lambda: self.rpc("task.get_status", task) != "pending", 60, "the task ends", 0.05)
        status = self.rpc("task.get_status", task)
        return status, self.rpc("task.get_error_info", task)

    def cleanup(self, vm):
        rpc = self.rpc
        if rpc("VM.get_power_state", vm) != "Halted":
            rpc("VM.hard_shutdown", vm)
        vdis = [rpc("VBD.get_VDI", b) for b in rpc("VM.get_VBDs", vm)]
        rpc("VM.destroy", vm)
        for v in vdis:
            if v != "OpaqueRef:NULL":
                rpc("VDI.destroy", v)

    # -- reboot
    def test_reboot(self):
        rpc = self.rpc
        vm = self.vm("rb")
        self.refused("VM_BAD_POWER_STATE", "VM.clean_reboot", vm)
        self.assertEqual(self.refused("VM_BAD_POWER_STATE", "VM.hard_reboot", vm)[1:], ["paused, running", "halted"])
        pid = self.running_guest(vm)
        domid = rpc("VM.get_domid", vm)
        self.assertIn("clean_reboot", rpc("VM.get_allowed_operations", vm))
        rpc("VM.clean_reboot", vm)
        rec = rpc("VM.get_record", vm)
        self.assertEqual((rec["power_state"], rec["resident_on"]), ("Running", self.p.host_ref(1)))
        self.assertNotEqual(rec["domid"], domid)
        self.assertEqual(rec["current_operations"], {})
        self.assertFalse(pid_alive(pid), "the old domain is gone")
        _, pid2 = self.pid_of(vm)
        wait_until(lambda: guest_heartbeat(pid2) > 0, 10, "the new guest runs")
        # disks attached to the new domain
        vbd = rpc("VM.get_VBDs", vm)[0]
        self.assertTrue(rpc("VBD.get_currently_attached", vbd))
        # hard, of a paused VM, as an Async task
        rpc("VM.pause", vm)
        status, err = self.task_result(rpc("Async.VM.hard_reboot", vm))
        self.assertEqual(status, "success", err)
        self.assertEqual(rpc("VM.get_power_state", vm), "Running")
        self.assertFalse(pid_alive(pid2))
        # xe
        self.p.xe("vm-reboot", "vm=rb")
        self.p.xe("vm-reboot", "vm=rb", "force=true")
        self.assertEqual(rpc("VM.get_power_state", vm), "Running")
        self.cleanup(vm)

    # -- suspend / resume
    def suspend_image(self, vm):
        img = self.rpc("VM.get_suspend_VDI", vm)
        self.assertNotEqual(img, "OpaqueRef:NULL")
        return img, self.rpc("VDI.get_record", img)

    def test_suspend_resume(self):
        rpc = self.rpc
        vm = self.vm("sus", mib=96, **{"sim-dirty-pages-per-s": "500"})
        self.refused("VM_BAD_POWER_STATE", "VM.suspend", vm)
        self.refused("VM_BAD_POWER_STATE", "VM.resume", vm, False, False)
        pid = self.running_guest(vm, host=1)
        before = guest_heartbeat(pid)
        rpc("VM.suspend", vm)
        rec = rpc("VM.get_record", vm)
        self.assertEqual((rec["power_state"], rec["resident_on"], rec["domid"]), ("Suspended", "OpaqueRef:NULL", -1))
        self.assertFalse(pid_alive(pid), "the domain went with the suspend")
        img, vdi = self.suspend_image(vm)
        self.assertEqual((vdi["type"], vdi["SR"]), ("suspend", self.sr))
        # a real image: the guest's RAM and its state, what it wrote really on disk
        self.assertTrue(os.path.exists(vdi["location"]))
        self.assertGreaterEqual(os.path.getsize(vdi["location"]), 96 << 20)
        self.assertGreater(vdi["physical_utilisation"], 1 << 20)
        self.assertFalse(rpc("VBD.get_currently_attached", rpc("VM.get_VBDs", vm)[0]))
        self.assertEqual(sorted(rpc("VM.get_allowed_operations", vm)),
                         sorted(["hard_shutdown", "resume", "resume_on", "snapshot", "checkpoint", "destroy"]))
        self.refused("VM_BAD_POWER_STATE", "VM.start", vm, False, False)
        self.refused("VM_BAD_POWER_STATE", "VM.suspend", vm)
        # resume on another host: the guest goes on from where it stopped
        rpc("VM.resume_on", vm, self.p.host_ref(2), False, False)
        rec = rpc("VM.get_record", vm)
        self.assertEqual((rec["power_state"], rec["resident_on"], rec["suspend_VDI"]),
                         ("Running", self.p.host_ref(2), "OpaqueRef:NULL"))
        host, pid2 = self.pid_of(vm)
        self.assertEqual(host, 2)
        hb = guest_heartbeat(pid2)
        self.assertGreaterEqual(hb, before, "the counter went on from the saved memory")
        wait_until(lambda: guest_heartbeat(pid2) > hb, 10, "the resumed guest runs")
        self.assertFalse(os.path.exists(vdi["location"]), "the image is used up")
        self.refused("HANDLE_INVALID", "VDI.get_record", img)
        self.assertTrue(rpc("VBD.get_currently_attached", rpc("VM.get_VBDs", vm)[0]))
        # Async, then resume paused on any host
        status, err = self.task_result(rpc("Async.VM.suspend", vm))
        self.assertEqual(status, "success", err)
        rpc("VM.resume", vm, True, False)
        self.assertEqual(rpc("VM.get_power_state", vm), "Paused")
        rpc("VM.unpause", vm)
        # xe
        self.p.xe("vm-suspend", "vm=sus")
        self.assertEqual(rpc("VM.get_power_state", vm), "Suspended")
        self.p.xe("vm-resume", "vm=sus", "on=" + self.p.host_uuid(3))
        self.assertEqual(self.pid_of(vm)[0], 3)
        self.cleanup(vm)

    def test_suspended_vm_shutdown_and_destroy(self):
        rpc = self.rpc
        vm = self.vm("sus2", disk=False)
        self.running_guest(vm)
        rpc("VM.suspend", vm)
        img, vdi = self.suspend_image(vm)
        rpc("VM.hard_shutdown", vm)
        self.assertEqual((rpc("VM.get_power_state", vm), rpc("VM.get_suspend_VDI", vm)), ("Halted", "OpaqueRef:NULL"))
        self.assertFalse(os.path.exists(vdi["location"]))
        self.running_guest(vm)
        rpc("VM.suspend", vm)
        img, vdi = self.suspend_image(vm)
        rpc("VM.destroy", vm)
        self.refused("HANDLE_INVALID", "VM.get_record", vm)
        self.assertFalse(os.path.exists(vdi["location"]))

    def test_no_suspend_sr(self):
        rpc = self.rpc
        pool = rpc("pool.get_all")[0]
        vm = self.vm("nosr", disk=False)
        self.running_guest(vm)
        rpc("pool.set_default_SR", pool, "OpaqueRef:NULL")
        try:
            self.refused("VM_NO_SUSPEND_SR", "VM.suspend", vm)
            self.assertEqual(rpc("VM.get_power_state", vm), "Running")
            self.assertEqual(rpc("VM.get_current_operations", vm), {})
            # the VM's own suspend_SR wins
            rpc("VM.set_suspend_SR", vm, self.sr)
            rpc("VM.suspend", vm)
            self.assertEqual(rpc("VDI.get_SR", rpc("VM.get_suspend_VDI", vm)), self.sr)
            rpc("VM.resume", vm, False, False)
        finally:
            rpc("pool.set_default_SR", pool, self.sr)
        self.cleanup(vm)

    def test_busy(self):
        rpc = self.rpc
        vm = self.vm("busy", mib=256, disk=False, **{"sim-touch-mib": "200"})
        self.running_guest(vm)
        task = rpc("Async.VM.suspend", vm)
        seen = wait_until(lambda: rpc("VM.get_current_operations", vm) or rpc("task.get_status", task) != "pending",
                          30, "the suspend shows as a current operation", 0.002)
        if isinstance(seen, dict):
            self.assertEqual(list(seen.values()), ["suspend"])
            try:
                rpc("VM.clean_reboot", vm)
            except XapiError as e:
                self.assertIn(e.code, ("OTHER_OPERATION_IN_PROGRESS", "VM_BAD_POWER_STATE"))
        status, err = self.task_result(task)
        self.assertEqual(status, "success", err)
        rpc("VM.resume", vm, False, False)
        self.cleanup(vm)

    # -- power_state_reset
    def test_power_state_reset(self):
        rpc = self.rpc
        vm = self.vm("reset", disk=False)
        self.running_guest(vm, host=3)
        self.assertEqual(self.refused("HOST_IS_LIVE", "VM.power_state_reset", vm), [self.p.host_ref(3)])
        r = self.p.xe("vm-reset-powerstate", "vm=reset", "--force", check=False)
        self.assertEqual(r.returncode, 1)
        self.p.kill_agent(3)
        m = rpc("host.get_metrics", self.p.host_ref(3))
        wait_until(lambda: not rpc("host_metrics.get_live", m), 20, "host3 is not live")
        self.p.xe("vm-reset-powerstate", "vm=reset", "--force")
        rec = rpc("VM.get_record", vm)
        self.assertEqual((rec["power_state"], rec["resident_on"]), ("Halted", "OpaqueRef:NULL"))
        # the host comes back with the domain still there: it is adopted again
        self.p.start_agent(3)
        wait_until(lambda: rpc("VM.get_power_state", vm) == "Running", 20, "the running domain is adopted again")
        self.assertEqual(rpc("VM.get_resident_on", vm), self.p.host_ref(3))
        self.cleanup(vm)


if __name__ == "__main__":
    unittest.main()
