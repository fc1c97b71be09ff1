"""
test_vmops_live.py - a running VM changed without stopping it (seed 003),
on a 2-host devpool with a shared SR:

- memory: VM.set_memory_dynamic_range lowers and raises the balloon and the
  guest's resident memory follows (the pages it gives back leave its
  process); set_memory_target_live; the refusals (MEMORY_CONSTRAINT_
  VIOLATION, static changes while running: VM_BAD_POWER_STATE);
- vCPUs: set_VCPUs_number_live (the guest's vCPUs online follow; INVALID_VALUE
  above VCPUs_max);
- disks: VBD.plug of a new disk into a running VM (the guest's disk writer
  starts writing to it), unplug (it stops), DEVICE_ALREADY_ATTACHED /
  DETACHED, VBD_NOT_UNPLUGGABLE; a CD's media inserted and ejected;
  VDI.resize_online;
- network devices: VIF.create / plug / unplug / destroy, DEVICE_ALREADY_EXISTS;
- the questions: get_allowed_VBD/VIF_devices, assert_can_boot_here,
  assert_operation_valid;
- the same through xe (vm-memory-*, vm-vcpu-hotplug, vm-disk-*, vm-cd-*,
  vbd-*, vif-*, vdi-resize).
"""
import os
import struct
import time
import unittest

from tests.integration.harness import SLOW, XapiError
from tests.integration.pooltest import DevPool, vm_rss_kib, wait_until
from tests.integration.test_pool import guest_heartbeat

MiB = 1 << 20
SHARED_NAME = "/memfd:simdom-shared"
HELD_OFF, VCPUS_OFF, DISK_BYTES_OFF = 24, 120, 40  # struct simdom_shared


def shared_u(pid, off, size):
    """A field of the domain's shared state (its SHARED memfd)."""
    fddir = "/proc/%d/fd" % pid
    for fd in os.listdir(fddir):
        try:
            target = os.readlink(os.path.join(fddir, fd))
        except OSError:
            continue
        if target.startswith(SHARED_NAME):
            with open(os.path.join(fddir, fd), "rb") as f:
                f.seek(off)
                return struct.unpack("<Q" if size == 8 else "<I", f.read(size))[0]
    raise AssertionError("domain process %d holds no %s memfd" % (pid, SHARED_NAME))


def allocated(path):
    return os.stat(path).st_blocks * 512


class Live(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = DevPool(2, host_memory_mib=2048)
        cls.rpc = cls.p.rpc
        cls.sr = next(r for r, v in cls.rpc("SR.get_all_records").items() if v["shared"])

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    def vm(self, name, mib=256, vcpus_max=4, **oc):
        return self.rpc("VM.create", {
            "name_label": name, "memory_static_max": mib * MiB, "memory_dynamic_max": mib * MiB,
            "memory_dynamic_min": mib * MiB, "memory_static_min": 16 * MiB, "VCPUs_max": vcpus_max,
            "VCPUs_at_startup": 1, "other_config": dict({"sim-heartbeat-ms": "5"}, **oc)})

    def refused(self, code, *call):
        with self.assertRaises(XapiError) as cm:
            self.rpc(*call)
        self.assertEqual(cm.exception.code, code, cm.exception.params)
        return cm.exception.params

    def start(self, vm, host=1):
        self.rpc("VM.start_on", vm, self.p.host_ref(host), False, False)
        return self.p.domain_pid(host, self.rpc("VM.get_domid", vm))

    def disk(self, name, mib=8, sr=None):
        return self.rpc("VDI.create", {"SR": sr or self.sr, "virtual_size": mib * MiB, "name_label": name,
                                       "type": "user"})

    def metrics(self, vm):
        return self.rpc("VM_metrics.get_record", self.rpc("VM.get_metrics", vm))

    def test_memory_follows(self):
        rpc = self.rpc
        vm = self.vm("balloon", **{"sim-touch-mib": "200"})
        pid = self.start(vm)
        wait_until(lambda: vm_rss_kib(pid) > 180 * 1024, 20, "the guest touched its memory")
        self.assertEqual(shared_u(pid, HELD_OFF, 8) * 4096, 256 * MiB)
        self.assertIn("changing_dynamic_range", rpc("VM.get_allowed_operations", vm))
        # the guest gives memory back: its process holds less
        rpc("VM.set_memory_dynamic_range", vm, 64 * MiB, 96 * MiB)
        self.assertEqual(shared_u(pid, HELD_OFF, 8) * 4096, 96 * MiB)
        self.assertLess(vm_rss_kib(pid), 120 * 1024)
        m = self.metrics(vm)
        self.assertEqual(m["memory_actual"], 96 * MiB)
        rec = rpc("VM.get_record", vm)
        self.assertEqual((rec["memory_dynamic_min"], rec["memory_dynamic_max"]), (64 * MiB, 96 * MiB))
        self.assertEqual(rpc("VM.get_current_operations", vm), {})
        # and takes more again
        rpc("VM.set_memory_dynamic_range", vm, 64 * MiB, 224 * MiB)
        self.assertEqual(shared_u(pid, HELD_OFF, 8) * 4096, 224 * MiB)
        self.assertGreater(vm_rss_kib(pid), 200 * 1024)
        # the deprecated target call moves the balloon within the range
        rpc("VM.set_memory_target_live", vm, 128 * MiB)
        self.assertEqual(shared_u(pid, HELD_OFF, 8) * 4096, 128 * MiB)
        self.refused("MEMORY_CONSTRAINT_VIOLATION", "VM.set_memory_target_live", vm, 32 * MiB)
        # the refusals
        self.refused("MEMORY_CONSTRAINT_VIOLATION", "VM.set_memory_dynamic_range", vm, 128 * MiB, 64 * MiB)
        self.refused("MEMORY_CONSTRAINT_VIOLATION", "VM.set_memory_dynamic_range", vm, 64 * MiB, 512 * MiB)
        self.refused("VM_BAD_POWER_STATE", "VM.set_memory_static_range", vm, 16 * MiB, 512 * MiB)
        self.refused("VM_BAD_POWER_STATE", "VM.set_memory", vm, 128 * MiB)
        # the generated setter of dynamic_max goes through the same path
        rpc("VM.set_memory_dynamic_max", vm, 160 * MiB)
        self.assertEqual(shared_u(pid, HELD_OFF, 8) * 4096, 160 * MiB)
        # xe
        self.p.xe("vm-memory-dynamic-range-set", "vm=balloon", "min=64MiB", "max=80MiB")
        self.assertEqual(shared_u(pid, HELD_OFF, 8) * 4096, 80 * MiB)
        self.p.xe("vm-memory-target-set", "vm=balloon", "target=100MiB")
        self.assertEqual(shared_u(pid, HELD_OFF, 8) * 4096, 100 * MiB)
        # the guest still runs
        hb = guest_heartbeat(pid)
        wait_until(lambda: guest_heartbeat(pid) > hb, 5, "the guest runs on")
        rpc("VM.hard_shutdown", vm)
        self.p.xe("vm-memory-limits-set", "vm=balloon", "static-min=32MiB", "static-max=128MiB", "dynamic-min=64MiB",
                  "dynamic-max=128MiB")
        self.p.xe("vm-memory-set", "vm=balloon", "memory=192MiB")
        self.p.xe("vm-memory-static-range-set", "vm=balloon", "min=16MiB", "max=256MiB")
        rec = rpc("VM.get_record", vm)
        self.assertEqual((rec["memory_static_min"], rec["memory_static_max"], rec["memory_dynamic_max"]),
                         (16 * MiB, 256 * MiB, 192 * MiB))
        rpc("VM.destroy", vm)

    def test_vcpus_follow(self):
        rpc = self.rpc
        vm = self.vm("vcpus", mib=64, vcpus_max=4)
        self.refused("VM_BAD_POWER_STATE", "VM.set_VCPUs_number_live", vm, 2)
        pid = self.start(vm)
        self.assertEqual(shared_u(pid, VCPUS_OFF, 4), 1)
        rpc("VM.set_VCPUs_number_live", vm, 3)
        self.assertEqual(shared_u(pid, VCPUS_OFF, 4), 3)
        self.assertEqual((rpc("VM.get_VCPUs_at_startup", vm), self.metrics(vm)["VCPUs_number"]), (3, 3))
        self.assertEqual(self.refused("INVALID_VALUE", "VM.set_VCPUs_number_live", vm, 5)[1], "5")
        self.refused("INVALID_VALUE", "VM.set_VCPUs_number_live", vm, 0)
        self.p.xe("vm-vcpu-hotplug", "vm=vcpus", "new-vcpus=2")
        self.assertEqual(shared_u(pid, VCPUS_OFF, 4), 2)
        rpc("VM.hard_shutdown", vm)
        rpc("VM.destroy", vm)

    def test_disk_hotplug(self):
        rpc = self.rpc
        vm = self.vm("hot", mib=64, **{"sim-disk-write-kib-per-s": "2048"})
        pid = self.start(vm)
        self.assertEqual(rpc("VM.get_allowed_VBD_devices", vm)[:3], ["0", "1", "2"])
        vdi = self.disk("hot-disk")
        path = rpc("VDI.get_location", vdi)
        vbd = rpc("VBD.create", {"VM": vm, "VDI": vdi, "userdevice": "1", "mode": "RW", "type": "Disk"})
        self.assertEqual(rpc("VBD.get_currently_attached", vbd), False)
        self.assertNotIn("1", rpc("VM.get_allowed_VBD_devices", vm))
        self.refused("DEVICE_ALREADY_EXISTS", "VBD.create",
                     {"VM": vm, "VDI": vdi, "userdevice": "1", "mode": "RW", "type": "Disk"})
        self.refused("DEVICE_ALREADY_DETACHED", "VBD.unplug", vbd)
        self.assertIn("plug", rpc("VBD.get_allowed_operations", vbd))
        before = allocated(path)
        rpc("VBD.plug", vbd)
        r = rpc("VBD.get_record", vbd)
        self.assertEqual((r["currently_attached"], r["device"]), (True, "xvdb"))
        self.assertEqual(self.refused("DEVICE_ALREADY_ATTACHED", "VBD.plug", vbd), [vbd])
        self.refused("VDI_IN_USE", "VDI.destroy", vdi)
        # the guest's disk writer writes to its new disk
        wait_until(lambda: shared_u(pid, DISK_BYTES_OFF, 8) > 256 * 1024, 10, "the guest writes to the new disk")
        wait_until(lambda: allocated(path) > before, 10, "the disk's file fills")
        # unplugged: the writes stop
        rpc("VBD.unplug", vbd)
        self.assertEqual(rpc("VBD.get_currently_attached", vbd), False)
        written = shared_u(pid, DISK_BYTES_OFF, 8)
        time.sleep(0.5)
        self.assertEqual(shared_u(pid, DISK_BYTES_OFF, 8), written, "no writes once unplugged")
        # a drive marked not unpluggable stays
        rpc("VBD.plug", vbd)
        rpc("VBD.set_unpluggable", vbd, False)
        self.refused("VBD_NOT_UNPLUGGABLE", "VBD.unplug", vbd)
        rpc("VBD.set_unpluggable", vbd, True)
        # grown online: the VDI and its file
        self.refused("VDI_IN_USE", "VDI.resize", vdi, 16 * MiB)
        rpc("VDI.resize_online", vdi, 16 * MiB)
        self.assertEqual((rpc("VDI.get_virtual_size", vdi), os.path.getsize(path)), (16 * MiB, 16 * MiB))
        self.refused("VALUE_NOT_SUPPORTED", "VDI.resize_online", vdi, 8 * MiB)
        self.p.xe("vdi-resize", "uuid=" + rpc("VDI.get_uuid", vdi), "disk-size=20MiB", "online=true")
        self.assertEqual(os.path.getsize(path), 20 * MiB)
        # xe
        self.p.xe("vbd-unplug", "uuid=" + rpc("VBD.get_uuid", vbd))
        self.p.xe("vbd-plug", "uuid=" + rpc("VBD.get_uuid", vbd))
        self.p.xe("vm-disk-add", "vm=hot", "disk-size=4MiB", "device=2")
        out = self.p.xe("vm-disk-list", "vm=hot").stdout
        self.assertIn("Disk 1 VBD:", out)
        self.assertIn("userdevice ( RW): 2", out)
        two = [b for b in rpc("VM.get_VBDs", vm) if rpc("VBD.get_userdevice", b) == "2"][0]
        self.assertTrue(rpc("VBD.get_currently_attached", two), "vm-disk-add plugs into a running VM")
        rpc("VBD.unplug", two)
        self.p.xe("vm-disk-remove", "vm=hot", "device=2")
        rpc("VM.hard_shutdown", vm)
        self.refused("VM_BAD_POWER_STATE", "VBD.plug", vbd)
        self.refused("OPERATION_NOT_ALLOWED", "VDI.resize_online", vdi, 32 * MiB)
        rpc("VBD.destroy", vbd)
        rpc("VDI.destroy", vdi)
        rpc("VM.destroy", vm)

    def test_cd(self):
        rpc = self.rpc
        iso_sr = rpc("SR.create", self.p.host_ref(1), {"path": os.path.join(self.p.dir, "isos")}, 0, "isos", "",
                     "file", "iso", True, {})
        iso = self.disk("tools.iso", mib=1, sr=iso_sr)
        vm = self.vm("cdvm", mib=64)
        cd = rpc("VBD.create", {"VM": vm, "VDI": "OpaqueRef:NULL", "userdevice": "3", "mode": "RO", "type": "CD",
                                "empty": True})
        self.refused("VBD_IS_EMPTY", "VBD.eject", cd)
        self.start(vm)
        rpc("VBD.insert", cd, iso)
        r = rpc("VBD.get_record", cd)
        self.assertEqual((r["empty"], r["VDI"], r["currently_attached"]), (False, iso, True))
        self.refused("VBD_NOT_EMPTY", "VBD.insert", cd, iso)
        rpc("VBD.eject", cd)
        r = rpc("VBD.get_record", cd)
        self.assertEqual((r["empty"], r["VDI"]), (True, "OpaqueRef:NULL"))
        # xe
        self.p.xe("vm-cd-insert", "vm=cdvm", "cd-name=tools.iso")
        self.assertFalse(rpc("VBD.get_empty", cd))
        out = self.p.xe("vm-cd-list", "vm=cdvm").stdout
        self.assertIn("CD 0 VDI:", out)
        self.assertIn("tools.iso", out)
        self.p.xe("vm-cd-eject", "vm=cdvm")
        self.assertTrue(rpc("VBD.get_empty", cd))
        r = self.p.xe("vm-cd-insert", "vm=cdvm", "cd-name=nosuch.iso", check=False)
        self.assertEqual((r.returncode, r.stderr.strip()), (1, "CD nosuch.iso not found"))
        self.refused("VBD_NOT_REMOVABLE_MEDIA", "VBD.eject",
                     rpc("VBD.create", {"VM": vm, "VDI": iso, "userdevice": "4", "mode": "RO", "type": "Disk"}))
        rpc("VM.hard_shutdown", vm)
        for b in rpc("VM.get_VBDs", vm):
            rpc("VBD.destroy", b)
        rpc("VM.destroy", vm)
        rpc("VDI.destroy", iso)
        for p in rpc("SR.get_PBDs", iso_sr):
            rpc("PBD.unplug", p)
        rpc("SR.destroy", iso_sr)

    def test_vif(self):
        rpc = self.rpc
        net = next(r for r, n in rpc("network.get_all_records").items() if n["PIFs"])
        vm = self.vm("nic", mib=64)
        self.assertEqual(len(rpc("VM.get_allowed_VIF_devices", vm)), 16)
        vif = rpc("VIF.create", {"VM": vm, "network": net, "device": "0", "MAC": ""})
        r = rpc("VIF.get_record", vif)
        self.assertRegex(r["MAC"], r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
        self.assertTrue(r["MAC_autogenerated"])
        self.refused("DEVICE_ALREADY_EXISTS", "VIF.create", {"VM": vm, "network": net, "device": "0", "MAC": ""})
        self.refused("INVALID_VALUE", "VIF.create", {"VM": vm, "network": net, "device": "1", "MAC": "nope"})
        self.assertNotIn("0", rpc("VM.get_allowed_VIF_devices", vm))
        self.refused("VM_BAD_POWER_STATE", "VIF.plug", vif)
        self.start(vm)
        self.assertTrue(rpc("VIF.get_currently_attached", vif), "a VM's VIFs attach when it starts")
        rpc("VIF.unplug", vif)
        self.assertFalse(rpc("VIF.get_currently_attached", vif))
        self.refused("DEVICE_ALREADY_DETACHED", "VIF.unplug", vif)
        rpc("VIF.plug", vif)
        self.assertTrue(rpc("VIF.get_currently_attached", vif))
        self.refused("OPERATION_NOT_ALLOWED", "VIF.destroy", vif)
        # xe
        r = self.p.xe("vif-create", "vm-uuid=" + rpc("VM.get_uuid", vm), "network-uuid=" + rpc("network.get_uuid", net),
                      "device=1", "mac=aa:bb:cc:dd:ee:01")
        v2 = rpc("VIF.get_by_uuid", r.stdout.strip())
        self.assertEqual(rpc("VIF.get_MAC", v2), "aa:bb:cc:dd:ee:01")
        self.p.xe("vif-plug", "uuid=" + r.stdout.strip())
        self.assertTrue(rpc("VIF.get_currently_attached", v2))
        self.p.xe("vif-unplug", "uuid=" + r.stdout.strip(), "--force")
        self.p.xe("vif-destroy", "uuid=" + r.stdout.strip())
        self.assertIn(rpc("VIF.get_uuid", vif), self.p.xe("vm-vif-list", "vm=nic").stdout)
        rpc("VM.hard_shutdown", vm)
        self.assertFalse(rpc("VIF.get_currently_attached", vif))
        rpc("VIF.destroy", vif)
        rpc("VM.destroy", vm)
        # networks through xe; one with PIFs or an attached VIF stays (XAPI)
        self.refused("NETWORK_CONTAINS_PIF", "network.destroy", net)
        r = self.p.xe("network-create", "name-label=private", "MTU=9000")
        priv = rpc("network.get_by_uuid", r.stdout.strip())
        self.assertEqual(rpc("network.get_MTU", priv), 9000)
        vm2 = self.vm("nic2", mib=64)
        v3 = rpc("VIF.create", {"VM": vm2, "network": priv, "device": "0", "MAC": ""})
        self.start(vm2)
        self.assertEqual(self.refused("NETWORK_CONTAINS_VIF", "network.destroy", priv), [v3])
        rpc("VM.hard_shutdown", vm2)
        self.p.xe("network-destroy", "uuid=" + r.stdout.strip())
        self.refused("HANDLE_INVALID", "VIF.get_record", v3)
        rpc("VM.destroy", vm2)

    def test_questions(self):
        rpc = self.rpc
        big = self.vm("big", mib=4096)
        h1 = self.p.host_ref(1)
        self.refused("HOST_NOT_ENOUGH_FREE_MEMORY", "VM.assert_can_boot_here", big, h1)
        small = self.vm("small", mib=64)
        self.assertEqual(rpc("VM.assert_can_boot_here", small, h1), "")
        rpc("host.disable", h1)
        try:
            self.refused("HOST_DISABLED", "VM.assert_can_boot_here", small, h1)
        finally:
            rpc("host.enable", h1)
        self.assertEqual(rpc("VM.assert_operation_valid", small, "start"), "")
        self.refused("VM_BAD_POWER_STATE", "VM.assert_operation_valid", small, "suspend")
        self.refused("OPERATION_NOT_ALLOWED", "VM.assert_operation_valid", small, "fly")
        rpc("VM.destroy", big)
        rpc("VM.destroy", small)


if __name__ == "__main__":
    unittest.main()
