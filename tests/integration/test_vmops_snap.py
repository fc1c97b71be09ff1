"""
test_vmops_snap.py - snapshots and copies on a 3-host devpool with a
shared SR (issue 17 part B):

- VM.snapshot of a running and of a halted VM: a snapshot VM record
  (is_a_snapshot, snapshot_of, in the VM's snapshots, the VM's parent) with
  copies of its disks holding the bytes the disk had at that instant;
- VM.checkpoint: the disks and the memory (a suspend VDI): reverting to it
  leaves the VM suspended, and resuming it continues the guest from the
  checkpoint (its heartbeat counter below the one it had later);
- VM.revert: the disks come back as they were (bytes written after the
  snapshot are gone), a disk added later is detached and kept, the replaced
  disks are removed; refusals (REVERT_ONLY_ALLOWED_ON_SNAPSHOT,
  VM_IS_SNAPSHOT);
- VM.copy (full copies into an SR), VDI.copy, VM.provision (XO's New VM:
  clone a template, write other_config:disks, provision, start);
- xe vm-snapshot, vm-checkpoint, snapshot-list, snapshot-revert,
  snapshot-uninstall, vm-copy.
"""
import os
import time
import unittest

from tests.integration.harness import SLOW, XapiError
from tests.integration.pooltest import DevPool, pid_alive, wait_until
from tests.integration.test_pool import guest_heartbeat

MiB = 1 << 20


def read_at(path, off, n):
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(n)


def write_at(path, off, data):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, off)
        os.fsync(fd)
    finally:
        os.close(fd)


class Snapshots(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = DevPool(3, host_memory_mib=2048)
        cls.rpc = cls.p.rpc
        cls.sr = next(r for r, v in cls.rpc("SR.get_all_records").items() if v["shared"])

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    def vm(self, name, mib=96, **oc):
        rpc = self.rpc
        vm = rpc("VM.create", {"name_label": name, "memory_static_max": mib * MiB, "memory_dynamic_max": mib * MiB,
                               "memory_dynamic_min": mib * MiB, "memory_static_min": 16 * MiB, "VCPUs_max": 2,
                               "VCPUs_at_startup": 1,
                               "other_config": dict({"sim-heartbeat-ms": "2", "sim-touch-mib": "8"}, **oc)})
        vdi = rpc("VDI.create", {"SR": self.sr, "virtual_size": 4 * MiB, "name_label": name + "-disk", "type": "user"})
        rpc("VBD.create", {"VM": vm, "VDI": vdi, "userdevice": "0", "mode": "RW", "type": "Disk", "bootable": True})
        return vm, vdi

    def refused(self, code, *call):
        with self.assertRaises(XapiError) as cm:
            self.rpc(*call)
        self.assertEqual(cm.exception.code, code, cm.exception.params)
        return cm.exception.params

    def pid_of(self, vm):
        host = self.p.host_index(self.rpc("VM.get_resident_on", vm))
        return self.p.domain_pid(host, self.rpc("VM.get_domid", vm))

    def location(self, vdi):
        return self.rpc("VDI.get_location", vdi)

    def disk_of(self, vm):
        for b in self.rpc("VM.get_VBDs", vm):
            r = self.rpc("VBD.get_record", b)
            if r["type"] == "Disk":
                return r["VDI"]
        return None

    def uninstall(self, vm):
        rpc = self.rpc
        if rpc("VM.get_power_state", vm) != "Halted":
            rpc("VM.hard_shutdown", vm)
        vdis = [rpc("VBD.get_VDI", b) for b in rpc("VM.get_VBDs", vm)]
        rpc("VM.destroy", vm)
        for v in vdis:
            if v != "OpaqueRef:NULL":
                rpc("VDI.destroy", v)

    def test_snapshot_and_revert_running(self):
        rpc = self.rpc
        vm, vdi = self.vm("snapr")
        path = self.location(vdi)
        write_at(path, 0, b"BEFORE-SNAPSHOT")
        rpc("VM.start_on", vm, self.p.host_ref(1), False, False)
        self.refused("REVERT_ONLY_ALLOWED_ON_SNAPSHOT", "VM.revert", vm)
        snap = rpc("VM.snapshot", vm, "snapr-1")
        s = rpc("VM.get_record", snap)
        self.assertTrue(s["is_a_snapshot"] and s["is_a_template"])
        self.assertEqual((s["snapshot_of"], s["power_state"], s["name_label"]), (vm, "Halted", "snapr-1"))
        self.assertEqual(s["snapshot_info"]["power-state-at-snapshot"], "Running")
        self.assertIn(snap, rpc("VM.get_snapshots", vm))
        self.assertEqual(rpc("VM.get_parent", vm), snap)
        self.assertEqual(rpc("VM.get_power_state", vm), "Running", "the VM runs on")
        sdisk = self.disk_of(snap)
        sv = rpc("VDI.get_record", sdisk)
        self.assertTrue(sv["is_a_snapshot"] and sv["read_only"])
        self.assertEqual(sv["snapshot_of"], vdi)
        self.assertEqual(read_at(sv["location"], 0, 15), b"BEFORE-SNAPSHOT")
        # a snapshot only reverts, clones, copies, is destroyed
        self.assertEqual(self.refused("VM_IS_SNAPSHOT", "VM.start", snap, False, False)[1], "start")
        self.assertIn("revert", rpc("VM.get_allowed_operations", snap))
        # later writes, then the revert of the running VM: stopped, the disk as it was
        rpc("VM.hard_shutdown", vm)
        write_at(path, 0, b"AFTER--SNAPSHOT")
        rpc("VM.start_on", vm, self.p.host_ref(2), False, False)
        rpc("VM.revert", snap)
        rec = rpc("VM.get_record", vm)
        self.assertEqual((rec["power_state"], rec["parent"], rec["current_operations"]), ("Halted", snap, {}))
        newdisk = self.disk_of(vm)
        self.assertNotEqual(newdisk, vdi)
        self.assertEqual(read_at(self.location(newdisk), 0, 15), b"BEFORE-SNAPSHOT")
        self.assertEqual(rpc("VDI.get_snapshot_of", sdisk), newdisk, "the snapshot's disk follows the new one")
        wait_until(lambda: not os.path.exists(path), 10, "the replaced disk is removed")
        self.refused("HANDLE_INVALID", "VDI.get_record", vdi)
        # xe: snapshot-list, snapshot-uninstall
        r = self.p.xe("snapshot-list", "snapshot-of=" + rpc("VM.get_uuid", vm), "--minimal")
        self.assertEqual(r.stdout.strip(), rpc("VM.get_uuid", snap))
        self.p.xe("snapshot-uninstall", "snapshot-uuid=" + rpc("VM.get_uuid", snap), "--force")
        self.refused("HANDLE_INVALID", "VM.get_record", snap)
        self.assertFalse(os.path.exists(sv["location"]))
        self.uninstall(vm)

    def test_checkpoint_and_revert(self):
        rpc = self.rpc
        vm, vdi = self.vm("ckpt", **{"sim-dirty-pages-per-s": "300"})
        rpc("VM.start_on", vm, self.p.host_ref(1), False, False)
        pid = self.pid_of(vm)
        wait_until(lambda: guest_heartbeat(pid) > 200, 10, "the guest runs")
        ck = rpc("VM.checkpoint", vm, "ckpt-1")
        at_ckpt = guest_heartbeat(pid)
        s = rpc("VM.get_record", ck)
        self.assertEqual(s["power_state"], "Suspended")
        img = rpc("VDI.get_record", s["suspend_VDI"])
        self.assertEqual(img["type"], "suspend")
        self.assertGreater(img["physical_utilisation"], MiB)
        self.assertEqual(rpc("VM.get_power_state", vm), "Running")
        wait_until(lambda: guest_heartbeat(pid) > at_ckpt + 500, 10, "the guest goes on after its checkpoint")
        later = guest_heartbeat(pid)
        rpc("VM.revert", ck)
        self.assertFalse(pid_alive(pid))
        rec = rpc("VM.get_record", vm)
        self.assertEqual(rec["power_state"], "Suspended")
        self.assertNotEqual(rec["suspend_VDI"], s["suspend_VDI"], "the VM resumes from a clone of the image")
        rpc("VM.resume", vm, False, False)
        pid2 = self.pid_of(vm)
        hb = guest_heartbeat(pid2)
        # back to its checkpoint: nearer the counter at the checkpoint than the one it
        # had later (>= 500 ticks apart), whatever ticks ran since the resume under load
        self.assertLess(hb, at_ckpt + (later - at_ckpt) // 2, "the guest went back to its checkpoint")
        wait_until(lambda: guest_heartbeat(pid2) > hb, 10, "the reverted guest runs")
        # the checkpoint can be reverted to again: its image is still there
        self.assertTrue(os.path.exists(img["location"]))
        self.p.xe("snapshot-revert", "snapshot-uuid=" + s["uuid"])
        self.assertEqual(rpc("VM.get_power_state", vm), "Suspended")
        self.p.xe("snapshot-uninstall", "uuid=" + s["uuid"], "force=true")
        self.uninstall(vm)

    def test_snapshot_halted_added_disk_and_xe(self):
        rpc = self.rpc
        vm, vdi = self.vm("snaph")
        r = self.p.xe("vm-snapshot", "vm=snaph", "new-name-label=snaph-1", "new-name-description=first")
        snap = rpc("VM.get_by_uuid", r.stdout.strip())
        self.assertEqual(rpc("VM.get_name_description", snap), "first")
        extra = rpc("VDI.create", {"SR": self.sr, "virtual_size": MiB, "name_label": "extra", "type": "user"})
        rpc("VBD.create", {"VM": vm, "VDI": extra, "userdevice": "1", "mode": "RW", "type": "Disk"})
        rpc("VM.revert", snap)
        # the disk added after the snapshot is kept, no longer the VM's
        self.assertEqual(rpc("VDI.get_VBDs", extra), [])
        self.assertEqual(len(rpc("VM.get_VBDs", vm)), 1)
        rpc("VDI.destroy", extra)
        # a checkpoint of a halted VM is refused
        self.refused("VM_BAD_POWER_STATE", "VM.checkpoint", vm, "no")
        r = self.p.xe("vm-checkpoint", "vm=snaph", "new-name-label=x", check=False)
        self.assertEqual(r.returncode, 1)
        self.rpc("VM.destroy", snap)  # the record only: its disk stays
        self.uninstall(vm)
        for v, rec in rpc("VDI.get_all_records").items():
            if rec["name_label"] == "snaph-disk":
                rpc("VDI.destroy", v)

    def test_copy_and_vdi_copy(self):
        rpc = self.rpc
        vm, vdi = self.vm("copysrc")
        write_at(self.location(vdi), MiB, b"COPY-ME")
        other = rpc("SR.create", self.p.host_ref(1), {"path": os.path.join(self.p.dir, "sr-copy")}, 0, "copy-sr", "",
                    "file", "user", True, {})
        try:
            cp = rpc("VM.copy", vm, "copydst", other)
            d = rpc("VDI.get_record", self.disk_of(cp))
            self.assertEqual(d["SR"], other)
            self.assertEqual(read_at(d["location"], MiB, 7), b"COPY-ME")
            self.assertEqual(rpc("VM.get_parent", cp), "OpaqueRef:NULL")
            v2 = rpc("VDI.copy", vdi, other)
            self.assertEqual(read_at(rpc("VDI.get_location", v2), MiB, 7), b"COPY-ME")
            self.refused("VALUE_NOT_SUPPORTED", "VDI.copy", vdi, other, vdi, "OpaqueRef:NULL")
            r = self.p.xe("vm-copy", "vm=copysrc", "new-name-label=copy2", "sr-uuid=" + rpc("SR.get_uuid", other))
            cp2 = rpc("VM.get_by_uuid", r.stdout.strip())
            self.assertEqual(rpc("VDI.get_SR", self.disk_of(cp2)), other)
            r = self.p.xe("vdi-copy", "uuid=" + rpc("VDI.get_uuid", vdi), "sr-uuid=" + rpc("SR.get_uuid", other))
            v3 = rpc("VDI.get_by_uuid", r.stdout.strip())
            for x in (cp, cp2):
                self.uninstall(x)
            rpc("VDI.destroy", v2)
            rpc("VDI.destroy", v3)
        finally:
            for p in rpc("SR.get_PBDs", other):
                rpc("PBD.unplug", p)
            rpc("SR.destroy", other)
        self.uninstall(vm)

    def test_provision_new_vm(self):
        """Xen Orchestra's New VM: clone the template, give it disks, provision, start."""
        rpc = self.rpc
        tmpl = rpc("VM.get_by_name_label", "Generic VM")[0]
        self.refused("PROVISION_ONLY_ALLOWED_ON_TEMPLATE", "VM.provision", self.vm("notatemplate")[0])
        vm = rpc("VM.clone", tmpl, "xo-new")
        self.assertTrue(rpc("VM.get_is_a_template", vm))
        rpc("VM.add_to_other_config", vm, "disks",
            '<provision><disk device="0" size="%d" sr="%s" bootable="true" type="system"/>'
            '<disk device="1" size="%d" sr="%s" bootable="false" type="user"/></provision>'
            % (8 * MiB, rpc("SR.get_uuid", self.sr), 2 * MiB, rpc("SR.get_uuid", self.sr)))
        rpc("VM.provision", vm)
        rec = rpc("VM.get_record", vm)
        self.assertFalse(rec["is_a_template"])
        self.assertNotIn("disks", rec["other_config"])
        vbds = sorted((rpc("VBD.get_record", b) for b in rec["VBDs"]), key=lambda b: b["userdevice"])
        self.assertEqual([(b["userdevice"], b["bootable"], b["unpluggable"]) for b in vbds],
                         [("0", True, False), ("1", False, True)])
        disks = [rpc("VDI.get_record", b["VDI"]) for b in vbds]
        self.assertEqual([d["virtual_size"] for d in disks], [8 * MiB, 2 * MiB])
        self.assertTrue(all(os.path.exists(d["location"]) for d in disks))
        rpc("VM.set_memory", vm, 128 * MiB)
        rpc("VM.start", vm, False, False)
        self.assertEqual(rpc("VM.get_power_state", vm), "Running")
        # a bad SR: nothing is left behind
        vm2 = rpc("VM.clone", tmpl, "xo-bad")
        rpc("VM.add_to_other_config", vm2, "disks",
            '<provision><disk device="0" size="1048576" sr="%s" bootable="true" type="system"/>'
            '<disk device="1" size="1048576" sr="nosuchsr" bootable="false" type="user"/></provision>'
            % rpc("SR.get_uuid", self.sr))
        self.assertEqual(self.refused("UUID_INVALID", "VM.provision", vm2), ["sr", "nosuchsr"])
        self.assertEqual(rpc("VM.get_VBDs", vm2), [])
        rpc("VM.add_to_other_config", vm2, "x", "y")
        rpc("VM.remove_from_other_config", vm2, "disks")
        rpc("VM.add_to_other_config", vm2, "disks", "<oops")
        self.refused("INVALID_VALUE", "VM.provision", vm2)
        rpc("VM.destroy", vm2)
        self.uninstall(vm)


if __name__ == "__main__":
    unittest.main()
