"""
test_pool.py - a pool of 3 real hosts on loopback (scripts/devpool: poold and
3 pool-agents with the sim hypervisor, heartbeats every 0.5 s, a host is not
live after 3 s without one), seen the way an operator sees it: hosts that
joined and describe themselves, a shared SR, VMs whose memory really exists
in their domain's process, power operations, an agent that crashes and comes
back without taking its VMs down, a domain that dies, and xe.

One devpool for the whole class (about 1.5 s to bring up); every test puts
the pool back as it found it (no VM running, its VMs destroyed).
"""
import functools
import os
import signal
import time
import unittest

from tests.integration.harness import SLOW, XapiError
from tests.integration.pooltest import (GiB, HEARTBEAT, HEARTBEAT_TIMEOUT, MiB, DevPool, pid_alive, vm_rss_kib,
                                        wait_until)

HOST_MEMORY_MIB = 2048
DEFAULT_SET = "1fcbfbff-f7fa3223-2d93fbff-00000023-00000001-000007ab-00000000-00000000-001000c8"
# host3 is an older CPU: a few features fewer, so the pool level is below host1's and host2's
OLDER_SET = "1fc3fbff-f7f83223-2d93fbff-00000021-00000001-000007ab-00000000-00000000-001000c8"
RAM_NAME = "/memfd:simdom-ram"


def featureset_and(*sets):
    words = [[int(w, 16) for w in s.split("-")] for s in sets]
    return "-".join("%08x" % functools.reduce(lambda a, b: a & b, col) for col in zip(*words))


def guest_heartbeat(pid):
    """The guest's heartbeat counter (page 0 of its RAM memfd, second 64-bit word)."""
    fddir = "/proc/%d/fd" % pid
    for fd in os.listdir(fddir):
        try:
            target = os.readlink(os.path.join(fddir, fd))
        except OSError:
            continue
        if target.startswith(RAM_NAME):
            with open(os.path.join(fddir, fd), "rb") as f:
                page = f.read(32)
            return int.from_bytes(page[8:16], "little")
    raise AssertionError("domain process %d holds no %s memfd" % (pid, RAM_NAME))


class PoolOf3(unittest.TestCase):
    pool = None

    @classmethod
    def setUpClass(cls):
        cls.pool = DevPool(3, host_memory_mib=HOST_MEMORY_MIB,
                           extra=("--cpu-featureset", "host3=" + OLDER_SET))
        cls.hosts = {i: cls.pool.host_ref(i) for i in (1, 2, 3)}
        cls.template = cls.pool.rpc("VM.get_by_name_label", "Generic VM")[0]
        cls.template_rec = cls.pool.rpc("VM.get_record", cls.template)
        # as the pool looks right after the hosts joined (tests run in any order)
        cls.metrics_at_join = {i: cls.pool.host_metrics(i) for i in (1, 2, 3)}

    @classmethod
    def tearDownClass(cls):
        if cls.pool:
            cls.pool.close()

    def setUp(self):
        self.vms = []
        self.restart_agents = set()

    def tearDown(self):
        p = self.pool
        for i in self.restart_agents:
            if not pid_alive(p.agent_pid(i)):
                p.start_agent(i)
        for i in (1, 2, 3):
            wait_until(lambda: p.host_metrics(i)["live"], 10, "host%d live again" % i)
        for vm in self.vms:
            try:
                if p.rpc("VM.get_power_state", vm) != "Halted":
                    p.rpc("VM.hard_shutdown", vm)
                p.rpc("VM.destroy", vm)
            except XapiError:
                pass
        # the next test starts from idle hosts as poold sees them
        for i in (1, 2, 3):
            wait_until(lambda: (lambda m: m["memory_free"] == m["memory_total"])(p.host_metrics(i)), 5,
                       "host%d: all its memory free again once its VMs are halted" % i)

    # -- helpers
    def rpc(self, *a, **kw):
        return self.pool.rpc(*a, **kw)

    def make_vm(self, name, mem=256 * MiB):
        rec = dict(self.template_rec)
        rec.update({"name_label": name, "is_a_template": False, "other_config": {}, "memory_static_max": mem,
                    "memory_dynamic_max": mem, "memory_dynamic_min": mem, "memory_static_min": min(mem, 128 * MiB)})
        vm = self.rpc("VM.create", rec)
        self.vms.append(vm)
        return vm

    def assertXapiError(self, code, fn, *args, **kw):
        with self.assertRaises(XapiError) as cm:
            fn(*args, **kw)
        self.assertEqual(cm.exception.code, code, cm.exception.params)
        return cm.exception.params

    def domain_of(self, vm):
        """(host index, domid, pid) of a resident VM's domain."""
        i = self.pool.host_index(self.rpc("VM.get_resident_on", vm))
        domid = self.rpc("VM.get_domid", vm)
        return i, domid, self.pool.domain_pid(i, domid)

    def available(self, i):
        """What poold may still give on host i: min(total - static_max of the
        VMs resident or scheduled there, the free memory its agent reported)."""
        m = self.pool.host_metrics(i)
        used = sum(r["memory_static_max"] for r in self.rpc("VM.get_all_records").values()
                   if self.hosts[i] in (r["resident_on"], r["scheduled_to_be_resident_on"]))
        return min(m["memory_total"] - used, m["memory_free"])

    # -- hosts
    def test_hosts_joined_live_and_described(self):
        recs = self.rpc("host.get_all_records")
        self.assertEqual(len(recs), 3, [r["name_label"] for r in recs.values()])
        self.assertEqual(len({r["uuid"] for r in recs.values()}), 3)
        by_name = {r["name_label"]: (ref, r) for ref, r in recs.items()}
        self.assertEqual(sorted(by_name), ["host1", "host2", "host3"])
        for i in (1, 2, 3):
            ref, r = by_name["host%d" % i]
            self.assertEqual(ref, self.hosts[i])
            self.assertEqual(r["uuid"], self.pool.host_uuid(i), "host.json of the agent names its host")
            self.assertEqual(r["address"], "127.0.0.%d" % (i + 1))
            self.assertTrue(r["enabled"])
            self.assertEqual(r["cpu_info"]["vendor"], "GenuineIntel")
            self.assertEqual(r["cpu_info"]["features"], OLDER_SET if i == 3 else DEFAULT_SET)
            sv = r["software_version"]
            self.assertTrue(sv.get("product_version"), sv)
            self.assertEqual(sv.get("backend"), "sim", sv)
            m = self.rpc("host_metrics.get_record", r["metrics"])
            self.assertIs(m["live"], True, "host%d" % i)
            self.assertNotEqual(self.metrics_at_join[i]["last_updated"], "19700101T00:00:00Z",
                                "host%d: host_metrics.last_updated is set once the host joined and reported" % i)
            self.assertEqual(m["memory_total"], HOST_MEMORY_MIB * MiB, "host%d: the agent's sim-memory" % i)
            self.assertGreater(m["memory_free"], 0)
            self.assertLessEqual(m["memory_free"], m["memory_total"])
        level = self.rpc("pool.get_cpu_info", self.rpc("pool.get_all")[0])
        self.assertEqual(level.get("vendor"), "GenuineIntel", level)
        self.assertEqual(level.get("features"), featureset_and(DEFAULT_SET, OLDER_SET), level)
        self.assertNotEqual(level.get("features"), DEFAULT_SET, "the pool level is the AND of the hosts' sets")

    # -- storage
    def test_shared_sr_plugged_everywhere_with_real_space(self):
        sr = self.rpc("pool.get_default_SR", self.rpc("pool.get_all")[0])
        rec = self.rpc("SR.get_record", sr)
        self.assertTrue(rec["shared"])
        self.assertEqual(rec["type"], "file")
        pbds = [self.rpc("PBD.get_record", p) for p in rec["PBDs"]]
        self.assertEqual(sorted(p["host"] for p in pbds), sorted(self.hosts.values()))
        self.assertTrue(all(p["currently_attached"] for p in pbds), pbds)
        path = os.path.join(self.pool.dir, "sr")
        st = os.statvfs(path)
        size = st.f_blocks * st.f_frsize
        self.assertEqual(rec["physical_size"], size, "physical_size is the file system's size (statvfs)")
        # in use: between what statvfs counts used and size less what is
        # available to users (the file driver counts reserved blocks as used)
        used_lo = (st.f_blocks - st.f_bfree) * st.f_frsize
        used_hi = (st.f_blocks - st.f_bavail) * st.f_frsize
        slack = 512 * MiB  # the file system is not ours alone
        self.assertGreater(rec["physical_utilisation"], 0)
        self.assertTrue(used_lo - slack <= rec["physical_utilisation"] <= used_hi + slack,
                        "physical_utilisation %d is what statvfs says is in use (%d..%d)"
                        % (rec["physical_utilisation"], used_lo, used_hi))

        vdi = self.rpc("VDI.create", {"SR": sr, "virtual_size": GiB, "name_label": "scratch", "type": "user",
                                      "sharable": False, "read_only": False, "other_config": {}})
        try:
            uuid = self.rpc("VDI.get_uuid", vdi)
            files = [f for f in os.listdir(path) if uuid in f]
            self.assertEqual(len(files), 1, os.listdir(path))
            f = os.path.join(path, files[0])
            self.assertEqual(self.rpc("VDI.get_location", vdi), f)
            self.assertEqual(os.stat(f).st_size, GiB, "the file has the VDI's virtual size")
            self.assertLess(os.stat(f).st_blocks * 512, GiB // 100, "a new VDI is a sparse file")
            self.assertEqual(self.rpc("VDI.get_virtual_size", vdi), GiB)
            self.assertIn(vdi, self.rpc("SR.get_VDIs", sr))
        finally:
            self.rpc("VDI.destroy", vdi)
        self.assertFalse(os.path.exists(f), "VDI.destroy removes its file")
        self.assertNotIn(vdi, self.rpc("SR.get_VDIs", sr))

    def test_vm_requires_sr_plugged_on_the_host(self):
        path = os.path.join(self.pool.dir, "local1")
        os.makedirs(path)
        sr = self.rpc("SR.create", self.hosts[1], {"path": path}, 0, "host1 local", "", "file", "user", False, {})
        try:
            pbds = self.rpc("SR.get_PBDs", sr)
            self.assertEqual([self.rpc("PBD.get_host", p) for p in pbds], [self.hosts[1]], "a local SR: one PBD")
            self.assertTrue(self.rpc("PBD.get_currently_attached", pbds[0]))
            vdi = self.rpc("VDI.create", {"SR": sr, "virtual_size": 64 * MiB, "name_label": "local disk",
                                          "type": "user", "sharable": False, "read_only": False, "other_config": {}})
            vm = self.make_vm("needs-local-sr")
            vbd = self.rpc("VBD.create", {"VM": vm, "VDI": vdi, "userdevice": "0", "bootable": True, "mode": "RW",
                                          "type": "Disk", "empty": False, "other_config": {},
                                          "qos_algorithm_type": "", "qos_algorithm_params": {}})
            for i in (2, 3):
                params = self.assertXapiError("VM_REQUIRES_SR", self.rpc, "VM.start_on", vm, self.hosts[i],
                                              False, False)
                self.assertEqual(params, [vm, sr])
                self.assertEqual(self.rpc("VM.get_power_state", vm), "Halted")
                self.assertEqual(self.rpc("VM.get_scheduled_to_be_resident_on", vm), "OpaqueRef:NULL",
                                 "a refused start leaves no reservation")
            # without a host poold picks the only one that sees the disk
            self.rpc("VM.start", vm, False, False)
            self.assertEqual(self.rpc("VM.get_resident_on", vm), self.hosts[1])
            self.rpc("VM.hard_shutdown", vm)
            self.rpc("VBD.destroy", vbd)
            self.rpc("VDI.destroy", vdi)
        finally:
            for pbd in self.rpc("SR.get_PBDs", sr):
                try:
                    self.rpc("PBD.unplug", pbd)
                except XapiError:
                    pass

    # -- VMs
    def test_vms_start_on_each_host_with_real_memory(self):
        pool_level = self.rpc("pool.get_cpu_info", self.rpc("pool.get_all")[0])
        vms = {}
        for i in (1, 2, 3):
            free_before = self.pool.host_metrics(i)["memory_free"]
            vm = self.make_vm("mem-%d" % i)
            self.assertIsNone(self.rpc("VM.start_on", vm, self.hosts[i], False, False) or None)
            vms[i] = (vm, free_before)
        for i, (vm, free_before) in vms.items():
            rec = self.rpc("VM.get_record", vm)
            self.assertEqual(rec["power_state"], "Running")
            self.assertEqual(rec["resident_on"], self.hosts[i])
            self.assertEqual(rec["scheduled_to_be_resident_on"], "OpaqueRef:NULL")
            self.assertGreater(rec["domid"], 0)
            self.assertEqual(rec["last_boot_CPU_flags"].get("vendor"), "GenuineIntel", rec["last_boot_CPU_flags"])
            self.assertEqual(rec["last_boot_CPU_flags"].get("features"), pool_level["features"],
                             "host%d: the guest boots with the pool level, not the host's own set" % i)
            dom = self.pool.domains(i).get(rec["domid"])
            self.assertIsNotNone(dom, "host%d has dom-%d.json" % (i, rec["domid"]))
            self.assertEqual(dom["uuid"], rec["uuid"])
            self.assertEqual(dom["memory"], 256 * MiB)
            self.assertEqual(dom["featureset"], pool_level["features"])
            pid = int(dom["pid"])
            self.assertTrue(pid_alive(pid), "domain process %d of host%d" % (pid, i))
            # the default workload touches 1/4 of memory_static_max
            touched_kib = 256 * 1024 // 4
            rss = wait_until(lambda: (lambda r: r if r >= touched_kib else 0)(vm_rss_kib(pid)), 10,
                             "domain %d RSS >= %d KiB" % (pid, touched_kib))
            self.assertGreaterEqual(rss, touched_kib)
            # its host's agent reports the memory as used
            wait_until(lambda: self.pool.host_metrics(i)["memory_free"] <= free_before - 256 * MiB, 5,
                       "host%d memory_free down by 256 MiB" % i)
        for i, (vm, _) in vms.items():
            self.rpc("VM.clean_shutdown", vm)

    def test_vm_start_spreads_over_the_hosts(self):
        # two VMs already on host1, one on host2: host3 has the most free memory
        for n, i in (("pre-a", 1), ("pre-b", 1), ("pre-c", 2)):
            self.rpc("VM.start_on", self.make_vm(n), self.hosts[i], False, False)
        vm = self.make_vm("spread-1")
        self.rpc("VM.start", vm, False, False)
        self.assertEqual(self.rpc("VM.get_resident_on", vm), self.hosts[3])
        # now host1 holds 2, host2 and host3 one each: host1 is not chosen, and
        # the next one goes to the other of host2/host3
        vm2 = self.make_vm("spread-2")
        self.rpc("VM.start", vm2, False, False)
        first = self.rpc("VM.get_resident_on", vm2)
        self.assertIn(first, (self.hosts[2], self.hosts[3]))
        vm3 = self.make_vm("spread-3")
        self.rpc("VM.start", vm3, False, False)
        self.assertIn(self.rpc("VM.get_resident_on", vm3), (self.hosts[2], self.hosts[3]))
        self.assertNotEqual(self.rpc("VM.get_resident_on", vm3), first)
        for v in self.vms:
            self.rpc("VM.hard_shutdown", v)

    def test_not_enough_free_memory_says_needed_and_available(self):
        small = self.make_vm("small")
        self.rpc("VM.start_on", small, self.hosts[2], False, False)
        big = self.make_vm("bigger-than-any-host", 4 * GiB)
        for i in (1, 2):
            for _ in range(3):  # a heartbeat may change memory_free between read and call
                want = self.available(i)
                try:
                    self.rpc("VM.start_on", big, self.hosts[i], False, False)
                    self.fail("a 4 GiB VM started on a %d MiB host" % HOST_MEMORY_MIB)
                except XapiError as e:
                    err = e
                if self.available(i) == want:
                    break
            self.assertEqual(err.code, "HOST_NOT_ENOUGH_FREE_MEMORY", err.params)
            self.assertEqual([int(x) for x in err.params], [4 * GiB, want], "host%d" % i)
        self.assertEqual([int(x) for x in err.params][1], HOST_MEMORY_MIB * MiB - 256 * MiB,
                         "host2: its memory less the 256 MiB VM running there")
        self.assertEqual(self.rpc("VM.get_power_state", big), "Halted")
        self.assertEqual(self.rpc("VM.get_scheduled_to_be_resident_on", big), "OpaqueRef:NULL")
        self.rpc("VM.clean_shutdown", small)

    def test_power_states_pause_unpause_shutdown(self):
        vm = self.make_vm("power")
        self.rpc("VM.start_on", vm, self.hosts[1], False, False)
        params = self.assertXapiError("VM_BAD_POWER_STATE", self.rpc, "VM.start", vm, False, False)
        self.assertEqual(params, [vm, "halted", "running"])
        self.assertXapiError("VM_BAD_POWER_STATE", self.rpc, "VM.start_on", vm, self.hosts[2], False, False)
        self.assertXapiError("VM_BAD_POWER_STATE", self.rpc, "VM.unpause", vm)
        i, domid, pid = self.domain_of(vm)
        self.assertEqual(i, 1)
        wait_until(lambda: guest_heartbeat(pid) > 0, 5, "the guest's heartbeat runs")

        self.rpc("VM.pause", vm)
        self.assertEqual(self.rpc("VM.get_power_state", vm), "Paused")
        self.assertTrue(pid_alive(pid), "a paused domain keeps its process")
        hb = guest_heartbeat(pid)
        time.sleep(0.3)
        self.assertEqual(guest_heartbeat(pid), hb, "the guest's heartbeat stands still while paused")
        self.assertXapiError("VM_BAD_POWER_STATE", self.rpc, "VM.pause", vm)
        params = self.assertXapiError("VM_BAD_POWER_STATE", self.rpc, "VM.clean_shutdown", vm)
        self.assertEqual(params[1:], ["running", "paused"])
        # a heartbeat later poold still agrees
        time.sleep(2 * HEARTBEAT)
        self.assertEqual(self.rpc("VM.get_power_state", vm), "Paused")

        self.rpc("VM.unpause", vm)
        self.assertEqual(self.rpc("VM.get_power_state", vm), "Running")
        wait_until(lambda: guest_heartbeat(pid) > hb, 5, "the guest's heartbeat moves again")
        self.assertEqual(self.domain_of(vm), (1, domid, pid), "same domain after unpause")

        free_running = self.pool.host_metrics(1)["memory_free"]
        self.rpc("VM.clean_shutdown", vm)
        rec = self.rpc("VM.get_record", vm)
        self.assertEqual((rec["power_state"], rec["resident_on"], rec["domid"]), ("Halted", "OpaqueRef:NULL", -1))
        wait_until(lambda: not pid_alive(pid), 5, "the domain's process ends with a clean shutdown")
        wait_until(lambda: self.pool.host_metrics(1)["memory_free"] >= free_running + 256 * MiB,
                   3 * HEARTBEAT + 2, "host1 memory_free rises by 256 MiB after the shutdown")
        self.assertXapiError("VM_BAD_POWER_STATE", self.rpc, "VM.clean_shutdown", vm)
        self.assertXapiError("VM_BAD_POWER_STATE", self.rpc, "VM.pause", vm)

        # hard_shutdown of a paused VM
        self.rpc("VM.start_on", vm, self.hosts[2], False, False)
        _, _, pid2 = self.domain_of(vm)
        self.rpc("VM.pause", vm)
        self.rpc("VM.hard_shutdown", vm)
        self.assertEqual(self.rpc("VM.get_power_state", vm), "Halted")
        wait_until(lambda: not pid_alive(pid2), 5, "the paused domain's process ends with hard_shutdown")

        # start paused, then VM.shutdown of a paused VM is a hard one
        self.rpc("VM.start_on", vm, self.hosts[3], True, False)
        self.assertEqual(self.rpc("VM.get_power_state", vm), "Paused")
        _, _, pid3 = self.domain_of(vm)
        self.rpc("VM.shutdown", vm)
        self.assertEqual(self.rpc("VM.get_power_state", vm), "Halted")
        wait_until(lambda: not pid_alive(pid3), 5, "VM.shutdown of a paused VM ends its domain")

    # -- crashes
    def test_agent_killed_and_restarted_keeps_its_vms(self):
        p = self.pool
        vms = [self.make_vm("survivor-%d" % n) for n in range(2)]
        for vm in vms:
            self.rpc("VM.start_on", vm, self.hosts[2], False, False)
        doms = {vm: self.domain_of(vm) for vm in vms}
        self.restart_agents.add(2)
        killed = p.kill_agent(2, signal.SIGKILL)
        t0 = time.monotonic()
        # the domains outlive their agent
        for vm, (_, _, pid) in doms.items():
            self.assertTrue(pid_alive(pid), "domain %d died with its agent" % pid)
        wait_until(lambda: p.host_metrics(2)["live"] is False, HEARTBEAT_TIMEOUT + 3,
                   "host2 not live after its agent was killed")
        self.assertGreaterEqual(time.monotonic() - t0, HEARTBEAT_TIMEOUT - 1.5,
                                "host2 marked not live before the timeout")
        for i in (1, 3):
            self.assertIs(p.host_metrics(i)["live"], True, "host%d stays live" % i)
        for vm, (_, domid, pid) in doms.items():
            rec = self.rpc("VM.get_record", vm)
            self.assertEqual((rec["power_state"], rec["resident_on"], rec["domid"]), ("Running", self.hosts[2], domid),
                             "poold keeps a VM of a host that is not live as it was")
            self.assertTrue(pid_alive(pid))
        other = self.make_vm("to-offline-host")
        params = self.assertXapiError("HOST_OFFLINE", self.rpc, "VM.start_on", other, self.hosts[2], False, False)
        self.assertEqual(params, [self.hosts[2]])

        agent = p.start_agent(2)
        self.assertNotEqual(agent.pid, killed)
        wait_until(lambda: p.host_metrics(2)["live"] is True, 3 + 4 * HEARTBEAT, "host2 live again after restart")
        time.sleep(3 * HEARTBEAT)  # a few heartbeats of the restarted agent: poold reconciles
        for vm, (_, domid, pid) in doms.items():
            rec = self.rpc("VM.get_record", vm)
            self.assertEqual((rec["power_state"], rec["resident_on"], rec["domid"]), ("Running", self.hosts[2], domid))
            self.assertTrue(pid_alive(pid), "domain %d alive after the agent restart" % pid)
            self.assertEqual(self.domain_of(vm)[2], pid, "the same domain process, re-adopted")
        # the restarted agent drives the domains it re-adopted
        self.rpc("VM.pause", vms[0])
        self.rpc("VM.unpause", vms[0])
        for vm, (_, _, pid) in doms.items():
            self.rpc("VM.clean_shutdown", vm)
            wait_until(lambda: not pid_alive(pid), 5, "domain %d ends on clean_shutdown after the restart" % pid)

    def test_domain_killed_is_recorded_halted_and_can_start_again(self):
        vm = self.make_vm("doomed")
        self.rpc("VM.start_on", vm, self.hosts[3], False, False)
        _, _, pid = self.domain_of(vm)
        keep = self.make_vm("bystander")
        self.rpc("VM.start_on", keep, self.hosts[3], False, False)
        time.sleep(2 * HEARTBEAT)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        limit = (4 * HEARTBEAT + 1) * SLOW  # a few heartbeats
        problems = []
        # how long poold takes (up to 15 s, for the report), judged against the limit
        late = None
        while time.monotonic() < killed + max(15, limit):
            if self.rpc("VM.get_power_state", vm) == "Halted":
                late = time.monotonic() - killed
                break
            time.sleep(0.1)
        if late is None:
            self.fail("the VM whose domain was killed is still recorded %s 15 s later"
                      % self.rpc("VM.get_power_state", vm))
        if late > limit:
            problems.append("the VM whose domain was killed was recorded Halted only %.1f s later, not within a "
                            "few heartbeats (%.1f s; heartbeat every %g s)" % (late, limit, HEARTBEAT))
        rec = self.rpc("VM.get_record", vm)
        self.assertEqual((rec["resident_on"], rec["domid"]), ("OpaqueRef:NULL", -1))
        self.assertEqual(self.rpc("VM.get_power_state", keep), "Running", "the other VM of the host is left alone")
        self.assertTrue(pid_alive(self.domain_of(keep)[2]))
        # the VM can start again, on the host where it crashed too
        try:
            self.rpc("VM.start_on", vm, self.hosts[3], False, False)
            self.assertEqual(self.rpc("VM.get_power_state", vm), "Running")
            _, _, pid2 = self.domain_of(vm)
            self.assertNotEqual(pid2, pid)
            self.assertTrue(pid_alive(pid2))
        except XapiError as e:
            problems.append("VM.start_on the host where its domain crashed (and poold recorded it Halted) "
                            "fails: %s %s" % (e.code, e.params))
        if problems:
            self.fail("\n".join(problems))

    # -- the CLI
    def test_xe_start_on_list_and_shutdown(self):
        p = self.pool
        out = p.xe("host-list", "params=uuid,name-label", "--minimal").stdout.strip()
        self.assertEqual(sorted(out.split(",")), sorted(p.host_uuid(i) for i in (1, 2, 3)), out)
        out = p.xe("host-list").stdout
        for i in (1, 2, 3):
            self.assertIn(p.host_uuid(i), out)
            self.assertIn("host%d" % i, out)
        self.make_vm("xe-vm")
        p.xe("vm-start", "vm=xe-vm", "on=host2")
        out = p.xe("vm-list", "name-label=xe-vm", "params=name-label,power-state,resident-on").stdout
        self.assertRegex(out, r"name-label[^:]*:\s*xe-vm")
        self.assertRegex(out, r"power-state[^:]*:\s*running")
        self.assertRegex(out, r"resident-on[^:]*:\s*%s" % p.host_uuid(2))
        p.xe("vm-shutdown", "vm=xe-vm")
        out = p.xe("vm-list", "name-label=xe-vm", "params=power-state", "--minimal").stdout.strip()
        self.assertEqual(out, "halted")
        r = p.xe("vm-shutdown", "vm=xe-vm", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not in an appropriate power state", r.stderr)


if __name__ == "__main__":
    unittest.main()
