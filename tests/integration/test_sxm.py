"""
test_sxm.py - storage live migration between real agents on loopback,
each host with a local SR (devpool --local-srs): a running VM moves with
its disks while the guest writes them (the progress rising through each
disk and then the memory), the copies equal the sources, a write the
datapath did not track is caught, every check refuses with its error and
leaves nothing behind, VDI.pool_migrate moves one disk under a running VM,
R-13's queue, and xe. The crash matrix is test_sxm_crash.py.
"""
import os
import time
import unittest

from tests.integration.harness import SLOW, XapiError
from tests.integration.hatest import enable
from tests.integration.pooltest import DevPool, wait_until
from tests.integration.sxmtest import MiB, Sxm, file_hash
from tests.integration.test_pool import guest_heartbeat


class SxmTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = DevPool(3, host_memory_mib=2048, extra=("--local-srs",))
        cls.s = Sxm(cls.p)

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    def tearDown(self):
        self.s.wait_clean()

    def refused(self, code, *a):
        with self.assertRaises(XapiError) as cm:
            self.p.rpc(*a)
        self.assertEqual(cm.exception.code, code, cm.exception.params)
        return cm.exception.params

    def test_moves_with_its_disks(self):
        rpc, s = self.p.rpc, self.s
        vm = s.vm("mover", 1, disks=(32 * MiB, 16 * MiB), **{"sim-disk-write-kib-per-s": "2048",
                                                               "sim-dirty-pages-per-s": "2000"})
        old = s.disks(vm)
        pid = self.p.domain_pid(1, rpc("VM.get_domid", vm))
        wait_until(lambda: guest_heartbeat(pid) > 100, 5 * SLOW, "the guest runs")
        before = guest_heartbeat(pid)
        seen = []
        task = s.send(vm, 2, opts={"bandwidth_mb_s": "10"})
        rec = s.wait_task(task, seen=seen)
        self.assertEqual(rec["status"], "success", rec["error_info"])
        self.assertIn(vm, rec["result"])
        # the progress only rose, through each disk and then the memory
        progress = [p for p, _ in seen]
        self.assertEqual(progress, sorted(progress))
        phases = " | ".join(ph for _, ph in seen)
        self.assertIn("disk 1 of 2", phases)
        self.assertIn("disk 2 of 2", phases)
        self.assertIn("memory:", phases)
        self.assertEqual(rec["progress"], 1.0)
        # the VM runs on host2, on copies of its disks in host2's local SR
        self.assertEqual(s.runs_once(vm), 2)
        new = s.disks(vm)
        self.assertEqual(len(new), 2)
        for (ov, orec), (nv, nrec) in zip(old, new):
            self.assertNotEqual(ov, nv)
            self.assertEqual(nrec["SR"], s.local(2))
            self.assertEqual(nrec["virtual_size"], orec["virtual_size"])
            self.assertNotIn("storage_migration", nrec["other_config"])
            self.assertTrue(os.path.exists(nrec["location"]))
        # both disks were verified after the hand-over
        stats = rec["other_config"]["disk_stats"]
        self.assertEqual(stats.count('"verified":true'), 2, stats)
        # the guest went on where it was
        dst = self.p.domain_pid(2, rpc("VM.get_domid", vm))
        hb = guest_heartbeat(dst)
        self.assertGreaterEqual(hb, before)
        wait_until(lambda: guest_heartbeat(dst) > hb, 5 * SLOW, "the guest runs on the destination")
        # the sources and the temporary snapshots are gone, records and files
        s.wait_clean()
        for ov, orec in old:
            self.assertFalse(os.path.exists(orec["location"]))
            self.refused("HANDLE_INVALID", "VDI.get_record", ov)
        rpc("VM.hard_shutdown", vm)

    def test_copy_equals_the_source(self):
        """copy=true keeps the source disks: with the guest not writing, the
        copy's bytes are the source's, holes and zero blocks included."""
        rpc, s = self.p.rpc, self.s
        vm = s.vm("copy", 1, disks=(48 * MiB,))
        (ov, orec), = s.disks(vm)
        want = file_hash(orec["location"])
        rec = s.wait_task(s.send(vm, 3, opts={"copy": "true", "compress": "true"}))
        self.assertEqual(rec["status"], "success", rec["error_info"])
        (nv, nrec), = s.disks(vm)
        self.assertEqual(file_hash(nrec["location"]), want)
        self.assertEqual(file_hash(orec["location"]), want)  # kept, untouched
        self.assertEqual(rpc("VDI.get_VBDs", ov), [])
        s.wait_clean()
        rpc("VM.hard_shutdown", vm)
        rpc("VDI.destroy", ov)

    def test_untracked_write_is_caught(self):
        """A write that does not go through the guest's datapath (a tracking
        bug, simulated by writing the source file behind the guest's back)
        fails the task after the hand-over: the VM runs on the destination,
        and the task says which disk differs."""
        rpc, s = self.p.rpc, self.s
        vm = s.vm("sneaky", 1, disks=(16 * MiB,), mib=512,
                  **{"sim-touch-mib": "400", "sim-dirty-pages-per-s": "30000", "sim-working-set-mib": "200"})
        (ov, orec), = s.disks(vm)
        task = s.send(vm, 2, opts={"max_downtime_ms": "1", "max_rounds": "12"})
        s.wait_phase(task, "memory:")
        with open(orec["location"], "r+b") as f:  # behind the datapath's back
            f.seek(15 * MiB)
            f.write(os.urandom(4096))
        rec = s.wait_task(task)
        self.assertEqual(rec["status"], "failure")
        self.assertEqual(rec["error_info"][0], "VM_MIGRATE_FAILED")
        self.assertIn("tracking bug", rec["error_info"][4])
        self.assertIn(orec["uuid"], rec["error_info"][4])
        self.assertEqual(s.runs_once(vm), 2)
        rpc("VM.hard_shutdown", vm)

    def test_checks(self):
        rpc, s, p = self.p.rpc, self.s, self.p
        vm = s.vm("checked", 1, disks=(8 * MiB,))
        (vdi, vrec), = s.disks(vm)
        dest, h2 = s.dest(2), p.host_ref(2)
        count = len(rpc("VDI.get_all"))
        # a local disk not in the map
        self.assertEqual(self.refused("VDI_NOT_IN_MAP", "VM.migrate_send", vm, dest, True, {}, {}, {}), [vdi])
        self.refused("VDI_NOT_IN_MAP", "VM.assert_can_migrate", vm, dest, True, {}, {}, {})
        # a map to an SR the destination does not have
        self.assertEqual(self.refused("VM_REQUIRES_SR", "VM.migrate_send", vm, dest, True, {vdi: s.local(1)}, {},
                                      {}), [vm, s.local(1)])
        # keys that are not the VM's, values of the wrong class
        other = rpc("VDI.create", {"name_label": "x", "SR": s.local(1), "virtual_size": MiB, "type": "user",
                                   "sharable": False, "read_only": False, "other_config": {}})
        self.assertEqual(self.refused("INVALID_VALUE", "VM.migrate_send", vm, dest, True,
                                      {vdi: s.local(2), other: s.local(2)}, {}, {}), ["vdi_map", other])
        self.refused("HANDLE_INVALID", "VM.migrate_send", vm, dest, True, {vdi: vm}, {}, {})
        rpc("VDI.destroy", other)
        # on_boot=reset: refused by both (XAPI's assert_can_migrate forgets it)
        rpc("VDI.set_on_boot", vdi, "reset")
        for m in ("VM.migrate_send", "VM.assert_can_migrate"):
            self.assertEqual(self.refused("VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION", m, vm, dest, True,
                                          {vdi: s.local(2)}, {}, {}), [vdi])
        rpc("VDI.set_on_boot", vdi, "persist")
        # another pool, the same host
        self.assertEqual(self.refused("VALUE_NOT_SUPPORTED", "VM.migrate_send", vm, {"master": "http://10.9.9.9"},
                                      True, {}, {}, {})[0], "dest")
        self.refused("OPERATION_NOT_ALLOWED", "VM.migrate_send", vm, s.dest(1), True, {vdi: s.local(2)}, {}, {})
        # a dry run passes and changes nothing
        self.assertEqual(rpc("VM.assert_can_migrate", vm, dest, True, {vdi: s.local(2)}, {}, {}), "")
        self.assertEqual(rpc("VM.get_current_operations", vm), {})
        self.assertEqual(len(rpc("VDI.get_all")), count)
        rpc("VM.hard_shutdown", vm)
        # a halted VM does not move live
        self.assertEqual(self.refused("VM_BAD_POWER_STATE", "VM.migrate_send", vm, dest, True, {vdi: s.local(2)},
                                      {}, {}), [vm, "running", "halted"])

    def test_space_and_network_checks(self):
        rpc, s, p = self.p.rpc, self.s, self.p
        # 5 TiB (sparse) needs 15 TiB on the destination: SR_FULL [needed, available, sr]
        vm = rpc("VM.create", {"name_label": "huge", "memory_static_max": 64 * MiB, "memory_dynamic_max": 64 * MiB,
                               "memory_dynamic_min": 64 * MiB, "memory_static_min": 16 * MiB, "other_config": {}})
        big = rpc("VDI.create", {"name_label": "big", "SR": s.local(1), "virtual_size": 5 << 40, "type": "user",
                                 "sharable": False, "read_only": False, "other_config": {}})
        rpc("VBD.create", {"VM": vm, "VDI": big, "userdevice": "0", "bootable": True, "mode": "RW", "type": "Disk",
                           "empty": False, "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
        # an internal network: it reaches only where the VMs on it run
        net = rpc("network.create", {"name_label": "internal", "name_description": "", "other_config": {}})
        vif = rpc("VIF.create", {"VM": vm, "network": net, "device": "0", "MAC": "", "MTU": 1500,
                                 "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
        rpc("VM.start_on", vm, p.host_ref(1), False, False)
        dest = s.dest(2)
        self.assertEqual(self.refused("VIF_NOT_IN_MAP", "VM.migrate_send", vm, dest, True, {big: s.local(2)}, {}, {}),
                         [vif])
        eth0 = [n for n, r in rpc("network.get_all_records").items() if "eth0" in r["name_label"]][0]
        e = self.refused("SR_FULL", "VM.migrate_send", vm, dest, True, {big: s.local(2)}, {vif: eth0}, {})
        self.assertEqual(int(e[0]), 3 * (5 << 40))
        self.assertLess(int(e[1]), int(e[0]))
        self.assertEqual(e[2], s.local(2))
        self.assertEqual(rpc("VM.get_current_operations", vm), {})
        rpc("VM.hard_shutdown", vm)
        rpc("VDI.destroy", big)
        rpc("VIF.destroy", vif)
        rpc("VM.destroy", vm)

    def test_vdi_pool_migrate(self):
        """One disk of a running VM to another SR of its host, the VM running on."""
        rpc, s = self.p.rpc, self.s
        vm = s.vm("pivot", 1, disks=(16 * MiB, 8 * MiB), **{"sim-disk-write-kib-per-s": "1024"})
        (v0, r0), (v1, r1) = s.disks(vm)
        # local disks: the VM cannot pool_migrate
        self.assertEqual(self.refused("VM_REQUIRES_SR", "VM.pool_migrate", vm, self.p.host_ref(2), {})[0], vm)
        shared = s.sr("devpool shared SR")
        new = rpc("VDI.pool_migrate", v0, shared, {"verify": "true"}, timeout=120 * SLOW)
        self.assertEqual(rpc("VDI.get_SR", new), shared)
        (n0, _), (n1, _) = s.disks(vm)
        self.assertEqual((n0, n1), (new, v1))
        self.assertEqual(s.runs_once(vm), 1)
        # a disk the running domain has open is never removed, whoever asks
        sr1 = rpc("SR.get_uuid", s.local(1))
        ans = s.agent_call(1, "agent.vdi_remove", sr1, r1["uuid"])
        self.assertEqual((ans.get("error", {}).get("message"), ans.get("error", {}).get("data")),
                         ("VDI_IN_USE", [r1["uuid"], "destroy"]), ans)
        self.assertTrue(os.path.exists(r1["location"]))
        pid = self.p.domain_pid(1, rpc("VM.get_domid", vm))
        hb = guest_heartbeat(pid)
        wait_until(lambda: guest_heartbeat(pid) > hb, 5 * SLOW, "the guest runs on")
        s.wait_clean()
        self.assertFalse(os.path.exists(r0["location"]))
        # the guest writes its new disk now: the file grows its allocation
        size0 = os.stat(rpc("VDI.get_location", new)).st_blocks
        wait_until(lambda: os.stat(rpc("VDI.get_location", new)).st_blocks > size0, 10 * SLOW,
                   "the guest writes the new VDI")
        # a disk of no running VM
        lone = rpc("VDI.create", {"name_label": "lone", "SR": s.local(1), "virtual_size": MiB, "type": "user",
                                  "sharable": False, "read_only": False, "other_config": {}})
        self.assertEqual(self.refused("VDI_NEEDS_VM_FOR_MIGRATE", "VDI.pool_migrate", lone, shared, {}), [lone])
        rpc("VDI.destroy", lone)
        rpc("VM.hard_shutdown", vm)

    def test_queue(self):
        """R-13: three storage migrations from one host at once; a fourth
        waits (its task says so) or, with queue=false, is refused."""
        rpc, s = self.p.rpc, self.s
        vms = [s.vm("q%d" % i, 1, disks=(16 * MiB,)) for i in range(5)]
        tasks = [s.send(v, 2, opts={"bandwidth_mb_s": "4"}) for v in vms[:3]]
        for t in tasks:
            s.wait_phase(t, "disk 1 of 1")
        (vdi, _), = s.disks(vms[3])
        e = self.refused("TOO_MANY_STORAGE_MIGRATES", "VM.migrate_send", vms[3], s.dest(2), True,
                         {vdi: s.local(2)}, {}, {"queue": "false"})
        self.assertEqual(e, ["3"])
        self.assertEqual(rpc("VM.get_current_operations", vms[3]), {})
        queued = s.send(vms[4], 2)
        self.assertIn("queued", s.wait_phase(queued, "queued"))
        for t in tasks + [queued]:
            rec = s.wait_task(t)
            self.assertEqual(rec["status"], "success", rec["error_info"])
        self.assertEqual(s.runs_once(vms[4]), 2)
        for v in vms:
            rpc("VM.hard_shutdown", v)

    def test_xe(self):
        s, p = self.s, self.p
        vm = s.vm("xe-sxm", 1, disks=(8 * MiB,))
        (vdi, rec), = s.disks(vm)
        uuid = p.rpc("VM.get_uuid", vm)
        sr2 = p.rpc("SR.get_uuid", s.local(2))
        p.xe("vm-migrate", "uuid=" + uuid, "host=host2", "vdi:%s=%s" % (rec["uuid"], sr2))
        self.assertEqual(s.runs_once(vm), 2)
        (vdi2, rec2), = s.disks(vm)
        self.assertEqual(rec2["SR"], s.local(2))
        # one disk back... to the shared SR of the same host, the VM running
        shared = p.rpc("SR.get_uuid", s.sr("devpool shared SR"))
        out = p.xe("vdi-pool-migrate", "uuid=" + rec2["uuid"], "sr-uuid=" + shared).stdout.strip()
        (vdi3, rec3), = s.disks(vm)
        self.assertEqual(out, rec3["uuid"])
        self.assertEqual(rec3["SR"], s.sr("devpool shared SR"))
        # the SR list shows whose SR it is and its space
        out = p.xe("sr-list", "params=name-label,host,physical-size,physical-utilisation").stdout
        self.assertIn("host2 local SR", out)
        self.assertIn("host: host2", out.replace("host ( RO)", "host").replace("  ", " ")
                      if "host: host2" not in out else out)
        self.assertIn("<shared>", out)
        r = p.xe("vm-migrate", "uuid=" + uuid, "remote-master=10.0.0.9", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("another pool", r.stderr + r.stdout)
        s.wait_clean()
        p.rpc("VM.hard_shutdown", vm)



class SxmHaTest(unittest.TestCase):
    """R-15 under HA: a storage migration that would leave a protected VM
    restartable nowhere (its disk on the destination's local SR) is
    refused, by the dry run too; the same move keeping its disk on the
    shared SR is admitted."""

    def test_failover_plan(self):
        p = DevPool(3, host_memory_mib=2048, extra=("--local-srs",))
        try:
            s = Sxm(p)
            vm = s.vm("guarded", 1, disks=(8 * MiB,), sr=s.sr("devpool shared SR"))
            p.rpc("VM.set_ha_restart_priority", vm, "restart")
            enable(p, tolerate=1)
            vdi = s.disks(vm)[0][0]
            dest = s.dest(2)
            for m in ("VM.assert_can_migrate", "VM.migrate_send"):
                with self.assertRaises(XapiError) as cm:
                    p.rpc(m, vm, dest, True, {vdi: s.local(2)}, {}, {})
                self.assertEqual(cm.exception.code, "HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN", m)
            p.rpc("VM.assert_can_migrate", vm, dest, True, {}, {}, {})
            self.assertEqual(s.leftovers(), [])
            self.assertEqual(p.rpc("VM.get_resident_on", vm), p.host_ref(1))
            p.rpc("pool.disable_ha")
        finally:
            p.close()



if __name__ == "__main__":
    unittest.main()
