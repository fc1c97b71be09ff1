#!/usr/bin/env python3
"""
dom0_test.py - the nested-Xen test, run in a real Xen 4.17 dom0 by dom0-init.

The pool's own daemons drive a real hypervisor: poold, two pool-agents with
`backend: xen` (both in this dom0, as `xl migrate localhost` puts both ends
of a migration on one host; each sees only the domains it made, see
agent/xen_owner.c) and xe. A PV guest (pvgrub2 from its disk, then a
busybox /init that prints "GUEST-TICK n uptime" every 0.1 s on its console)
is started, paused, resized, migrated both ways, migrated to a destination
killed mid-stream, suspended and resumed on the other host, checkpointed and
reverted, and shut down clean and hard; the backend's refusals are checked. `xl` and xenstore are read only to observe; the xen-probe helper
makes the backend calls poold has no request for yet (memory target,
vCPUs, disk hot-plug) through the agent's own code.

Prints, on the console the host reads:
  XENTEST PASS <test> <seconds>       XENTEST FAIL <test>: <why>
  XENTEST TIME <what> <seconds>       (timings for docs/PERFORMANCE.md)
and exits non-zero on any failure.
"""
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from dom0_pool import (CONSOLE, Ctx, Fail, GUEST_MIB, Guest, OPT, PORT, Pool, WORK, XL, owner_of, probe, probe_list, run,
                       say, timing, wait, xen_cpuid_dynamic, xl_domains, xl_info, xs_read)


def t_join(c):
    """The hosts join and report Xen's real memory, CPUs and PV feature set."""
    t0 = time.time()
    c.pool.start_poold()
    for i in (1, 2):
        c.pool.start_agent(i)
    rpc = c.pool.rpc

    def live():
        hosts = rpc("host.get_all_records")
        return len(hosts) == 2 and all(rpc("host_metrics.get_live", h["metrics"]) for h in hosts.values())
    wait("both hosts live", live, 90)
    timing("pool_up", time.time() - t0)
    info = xl_info()
    total = int(info["total_memory"]) << 20
    for ref, h in rpc("host.get_all_records").items():
        m = rpc("host_metrics.get_record", h["metrics"])
        if abs(int(m["memory_total"]) - total) >= 1 << 20:
            raise Fail("%s reports memory_total %s, Xen has %d" % (h["name_label"], m["memory_total"], total))
        if not 0 < int(m["memory_free"]) <= total:
            raise Fail("%s reports memory_free %s of %d" % (h["name_label"], m["memory_free"], total))
        cpu = h["cpu_info"]
        if int(cpu.get("cpu_count", 0)) != int(info["nr_cpus"]):
            raise Fail("%s reports %s CPUs, Xen has %s" % (h["name_label"], cpu.get("cpu_count"), info["nr_cpus"]))
        sets = xen_cpuid_dynamic()
        want = sets["PV Default"]
        if cpu.get("features") != want:
            raise Fail("%s reports features %s, Xen's PV default set is %s" % (h["name_label"], cpu.get("features"), want))
    if " hvm" in " " + info.get("virt_caps", ""):
        raise Fail("this run expects Xen without HVM (virt_caps: %s)" % info.get("virt_caps"))
    say("hosts: memory %d MiB, %s CPUs, features %s; Xen's sets: %s" % (total >> 20, info["nr_cpus"], want, sets))


def t_setup_vm(c):
    """A shared file SR, the guest's disk (pvgrub2's grub.cfg, kernel, initrd) and a PV VM."""
    xe = c.pool.xe
    srdir = os.path.join(WORK, "sr")
    os.makedirs(srdir, exist_ok=True)
    c.sr = xe("sr-create", "name-label=local", "type=file", "device-config:path=" + srdir, "shared=true").stdout.strip()
    for pbd in filter(None, xe("pbd-list", "sr-uuid=" + c.sr, "--minimal").stdout.strip().split(",")):
        if xe("pbd-param-get", "uuid=" + pbd, "param-name=currently-attached").stdout.strip() != "true":
            xe("pbd-plug", "uuid=" + pbd)
    c.vdi = xe("vdi-create", "sr-uuid=" + c.sr, "name-label=boot", "virtual-size=64MiB").stdout.strip()
    shutil.copyfile(os.path.join(OPT, "guest.img"), os.path.join(srdir, c.vdi + ".img"))
    c.vm = xe("vm-install", "template=Generic VM", "new-name-label=tick").stdout.strip()
    mib = "%dMiB" % GUEST_MIB
    xe("vm-param-set", "uuid=" + c.vm, "memory-static-min=" + mib, "memory-dynamic-min=" + mib,
       "memory-dynamic-max=" + mib,
       "memory-static-max=" + mib, "domain-type=pv", "VCPUs-max=2", "VCPUs-at-startup=2",
       "suspend-SR-uuid=" + c.sr)
    xe("vbd-create", "vm-uuid=" + c.vm, "vdi-uuid=" + c.vdi, "device=0", "bootable=true")
    c.ref = c.pool.rpc("VM.get_by_uuid", c.vm)
    c.h1, c.h2 = c.pool.host("host1"), c.pool.host("host2")


def expect_vm(c, power, host):
    v = c.pool.vm(c.ref)
    if v["power_state"] != power or (host and v["resident_on"] != host):
        raise Fail("VM is %s on %s, expected %s on %s" % (v["power_state"], v["resident_on"], power, host))


def start_on(c, i, what):
    c.guest.clear_logs()
    t0 = time.time()
    c.pool.xe("vm-start", "vm=tick", "on=" + c.pool.rpc("host.get_uuid", (c.h1, c.h2)[i - 1]), timeout=300)
    timing(what + "_vm_start", time.time() - t0)
    expect_vm(c, "Running", (c.h1, c.h2)[i - 1])
    # pvgrub2 reads the kernel through blkfront at 30 KiB/s-1 MiB/s under emulation, slower under load
    wait("GUEST-UP on the guest's console", lambda: c.guest.read()[0] >= 1, 420)
    timing(what + "_guest_up", time.time() - t0)
    c.guest.wait_ticks(0, 5, 60)


def t_start(c):
    """xe vm-start boots the PV guest on host1 (pvgrub2 from its disk, through blkback)."""
    start_on(c, 1, "first")
    d = probe_list(c.pool, 1)
    if len(d) != 1 or d[0]["uuid"] != c.vm or d[0]["state"] != "running" or d[0]["vcpus"] != "2":
        raise Fail("host1's backend lists %s" % d)
    if probe_list(c.pool, 2):
        raise Fail("host2's backend lists host1's domain: %s" % probe_list(c.pool, 2))
    domid = int(d[0]["domid"])
    if xs_read("/local/domain/%d/pool-agent-owner" % domid) != owner_of(c.pool, 1):
        raise Fail("domain %d does not carry host1's owner id" % domid)


def t_pause(c):
    """xe vm-pause stops the guest's ticks; xe vm-unpause lets them go on."""
    t0 = time.time()
    c.pool.xe("vm-pause", "vm=tick")
    timing("vm_pause", time.time() - t0)
    expect_vm(c, "Paused", c.h1)
    time.sleep(1)
    n1 = c.guest.last()
    time.sleep(3)
    if c.guest.last() != n1:
        raise Fail("the guest ticked while paused (%d -> %d)" % (n1, c.guest.last()))
    t0 = time.time()
    c.pool.xe("vm-unpause", "vm=tick")
    timing("vm_unpause", time.time() - t0)
    expect_vm(c, "Running", c.h1)
    c.guest.wait_ticks(n1, 5, 30)


def t_memory_vcpus(c):
    """The backend's memory target (the guest balloons down and up) and vCPU hot-unplug, on the live guest."""
    t0 = time.time()
    probe(c.pool, 1, "memory", c.vm, "96")

    def mem_mib():
        return int(probe_list(c.pool, 1)[0]["memory"]) >> 20
    wait("the guest ballooning to 96 MiB (at %s)" % mem_mib(), lambda: mem_mib() <= 97, 60, 1)
    timing("balloon_down", time.time() - t0)
    probe(c.pool, 1, "memory", c.vm, str(GUEST_MIB))
    wait("the guest ballooning back to %d MiB" % GUEST_MIB, lambda: mem_mib() >= GUEST_MIB - 1, 60, 1)
    probe(c.pool, 1, "vcpus", c.vm, "1")
    wait("one vCPU online", lambda: probe_list(c.pool, 1)[0]["vcpus"] == "1", 60, 1)
    probe(c.pool, 1, "vcpus", c.vm, "2")
    wait("two vCPUs online", lambda: probe_list(c.pool, 1)[0]["vcpus"] == "2", 60, 1)
    r = probe(c.pool, 1, "vcpus", c.vm, "3", check=False)
    if r.returncode == 0 or "1..2" not in r.stderr:
        raise Fail("3 vCPUs of 2 were not refused: %s" % r.stderr.strip())
    c.guest.wait_ticks(c.guest.last(), 3, 30)


def t_disk_hotplug(c):
    """A second disk hot-plugged (the guest's blkfront connects) and unplugged."""
    xe = c.pool.xe
    vdi = xe("vdi-create", "sr-uuid=" + c.sr, "name-label=data", "virtual-size=16MiB").stdout.strip()
    path = os.path.join(WORK, "sr", vdi + ".img")
    domid = int(probe_list(c.pool, 1)[0]["domid"])
    t0 = time.time()
    probe(c.pool, 1, "disk-add", c.vm, path, "xvdb")
    state = "/local/domain/0/backend/vbd/%d/51728/state" % domid  # xvdb
    try:
        wait("xvdb connected (backend state 4)", lambda: xs_read(state) == "4", 60, 0.5)
    except Fail as e:
        for p in ("/local/domain/0/backend/vbd/%d" % domid, "/local/domain/%d/device/vbd" % domid):
            say("%s:\n%s" % (p, run(["xenstore-ls", "-f", p], check=False).stdout[-1500:]))
        raise e
    timing("disk_hotplug", time.time() - t0)
    probe(c.pool, 1, "disk-remove", c.vm, "xvdb")
    wait("xvdb gone", lambda: xs_read(state) is None, 60, 0.5)
    xe("vdi-destroy", "uuid=" + vdi)


def migrate(c, to, what, *opts):
    """Live-migrate the guest to host `to`; the tick gap is the downtime."""
    frm = 2 if to == 1 else 1
    n0 = c.guest.last()
    t0 = time.time()
    c.pool.xe("vm-migrate", "vm=tick", "host=host%d" % to, "live=true", "--minimal", *opts, timeout=600)
    timing(what + "_migrate", time.time() - t0)
    expect_vm(c, "Running", (c.h1, c.h2)[to - 1])
    c.guest.wait_ticks(n0, 30, 60)
    ups = c.guest.read()[0]
    if ups != 1:
        raise Fail("the guest booted again (%d GUEST-UP): the migration did not carry it" % ups)
    gap, median = c.guest.max_gap(max(n0 - 5, 1))
    timing(what + "_downtime_tick_gap", gap)
    timing(what + "_tick_period", median)
    d = probe_list(c.pool, to)
    if len(d) != 1 or d[0]["state"] != "running" or probe_list(c.pool, frm):
        raise Fail("after the migration host%d lists %s, host%d %s" % (to, d, frm, probe_list(c.pool, frm)))
    names = xl_domains()
    if names.get("tick") != int(d[0]["domid"]) or any(n.startswith("tick-") for n in names):
        raise Fail("Xen's domains after the migration: %s (the guest should be 'tick', domain %s)" % (names, d[0]["domid"]))
    if xs_read("/local/domain/%s/pool-agent-owner" % d[0]["domid"]) != owner_of(c.pool, to):
        raise Fail("the migrated domain does not carry host%d's owner id" % to)
    say("%s: %.1f s, downtime (tick gap) %.2f s, tick period %.2f s" % (what, time.time() - t0, gap, median))


def t_migrate(c):
    """Live migration host1 -> host2 through mig_xen (libxl's stream in the pool's TLS connection)."""
    migrate(c, 2, "live")


def t_migrate_back_compressed(c):
    """Live migration back, zstd-compressed; verify=true is refused and the guest runs on."""
    r = c.pool.xe("vm-migrate", "vm=tick", "host=host1", "live=true", "verify=true", "--minimal", check=False,
                  timeout=300)
    if r.returncode == 0 or "verify is not available" not in r.stderr:
        raise Fail("verify=true was not refused: rc %d, %s" % (r.returncode, r.stderr.strip()))
    expect_vm(c, "Running", c.h2)
    c.guest.wait_ticks(c.guest.last(), 5, 30)
    migrate(c, 1, "compressed", "compress=true")


def t_dest_killed(c):
    """The destination's agent killed mid-stream: the guest runs on at its source; the restarted
    destination destroys the half-restored domain it left."""
    n0 = c.guest.last()
    mig = subprocess.Popen([OPT + "/xe", "vm-migrate", "vm=tick", "host=host2", "live=true", "--minimal"],
                           env=c.pool.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait("the destination's tick--incoming domain", lambda: "tick--incoming" in xl_domains(), 120, 0.1)
    time.sleep(1.0)  # libxl's stream is flowing
    c.pool.stop("host2", signal.SIGKILL)
    try:
        _, err = mig.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        mig.kill()
        raise Fail("xe vm-migrate did not end after its destination died")
    if mig.returncode == 0:
        raise Fail("the migration succeeded although its destination was killed")
    say("migration to a killed destination: %s" % err.strip()[-200:])
    expect_vm(c, "Running", c.h1)
    c.guest.wait_ticks(max(n0, c.guest.last()), 20, 60)
    if c.guest.read()[0] != 1:
        raise Fail("the guest booted again")
    d = probe_list(c.pool, 1)
    if len(d) != 1 or d[0]["state"] != "running" or xl_domains().get("tick") != int(d[0]["domid"]):
        raise Fail("the source is not running as 'tick': %s, Xen: %s" % (d, xl_domains()))
    c.pool.start_agent(2, join=False)
    wait("host2's agent destroying the half-restored domain", lambda: "tick--incoming" not in xl_domains(), 60, 0.5)
    c.pool.xe("host-list")  # poold still answers
    wait("host2 live again", lambda: c.pool.rpc("host_metrics.get_live", c.pool.rpc("host.get_metrics", c.h2)), 60, 1)


def t_agent_restart(c):
    """With its agent stopped, the guest is saved and restored behind the pool's back (libxl's own save and
    restore, timed); the restarted agent finds the restored domain as its own (the owner id travels in
    libxl's saved config)."""
    c.pool.stop("host1")
    n0 = c.guest.last()
    c.guest.wait_ticks(n0, 5, 30)  # the guest does not care
    t0 = time.time()
    run([XL, "save", "tick", "/var/tmp/tick.save"], timeout=300)
    timing("xl_save", time.time() - t0)
    timing("xl_save_mib", os.path.getsize("/var/tmp/tick.save") / 2**20)
    t0 = time.time()
    run([XL, "restore", "/var/tmp/tick.save"], timeout=300)
    timing("xl_restore", time.time() - t0)
    os.unlink("/var/tmp/tick.save")
    n1 = c.guest.last()
    c.guest.wait_ticks(n1, 10, 60)
    if c.guest.read()[0] != 1:
        raise Fail("the restored guest booted again")
    domid = xl_domains().get("tick")
    if domid is None or xs_read("/local/domain/%d/pool-agent-owner" % domid) != owner_of(c.pool, 1):
        raise Fail("the restored domain %s does not carry host1's owner id" % domid)
    c.pool.start_agent(1, join=False)
    d = probe_list(c.pool, 1)
    if len(d) != 1 or d[0]["uuid"] != c.vm or int(d[0]["domid"]) != domid:
        raise Fail("host1's backend lists %s after the restart (domain %d expected)" % (d, domid))
    wait("poold recording the restored domain", lambda: c.pool.vm(c.ref)["domid"] == domid, 30, 0.5)
    expect_vm(c, "Running", c.h1)


def image_of(c, vdi_ref):
    """A suspend VDI's file: (path, MiB, its first 8 bytes)."""
    loc = c.pool.rpc("VDI.get_record", vdi_ref)["location"]
    with open(loc, "rb") as f:
        return loc, os.path.getsize(loc) / 2**20, f.read(8)


def host_uuid(c, i):
    return c.pool.rpc("host.get_uuid", (c.h1, c.h2)[i - 1])


def t_suspend_resume(c):
    """xe vm-suspend: libxl saves the guest into a suspend VDI and its domain goes; xe vm-resume on the other
    host restores it there (libxl_domain_create_restore): the guest counts on, it does not boot again."""
    c.guest.wait_ticks(c.guest.last(), 5, 30)
    t0 = time.time()
    c.pool.xe("vm-suspend", "vm=tick", timeout=300)
    timing("vm_suspend", time.time() - t0)
    expect_vm(c, "Suspended", None)
    if probe_list(c.pool, 1) or "tick" in xl_domains():
        raise Fail("a domain is left after the suspend: %s" % xl_domains())
    loc, mib, magic = image_of(c, c.pool.vm(c.ref)["suspend_VDI"])
    if magic != b"XENSAVE1":
        raise Fail("the suspend image %s starts with %r, not XENSAVE1" % (loc, magic))
    timing("suspend_image_mib", mib)
    n1 = c.guest.last()
    t0 = time.time()
    c.pool.xe("vm-resume", "vm=tick", "on=" + host_uuid(c, 2), timeout=300)
    timing("vm_resume", time.time() - t0)
    expect_vm(c, "Running", c.h2)
    c.guest.wait_ticks(n1, 10, 60)
    if c.guest.read()[0] != 1:
        raise Fail("the resumed guest booted again")
    d = probe_list(c.pool, 2)
    if len(d) != 1 or d[0]["state"] != "running" or probe_list(c.pool, 1):
        raise Fail("after the resume host2 lists %s, host1 %s" % (d, probe_list(c.pool, 1)))
    if xs_read("/local/domain/%s/pool-agent-owner" % d[0]["domid"]) != owner_of(c.pool, 2):
        raise Fail("the resumed domain does not carry host2's owner id")
    if os.path.exists(loc):
        raise Fail("the suspend image %s is left after the resume" % loc)


def t_checkpoint_revert(c):
    """xe vm-checkpoint: the guest's memory (libxl's save, the guest suspended for it) and disk, then it runs
    on; snapshot-revert and vm-resume take it back to that instant: its tick counter goes back."""
    t0 = time.time()
    ck = c.pool.xe("vm-checkpoint", "vm=tick", "new-name-label=tick-ck", timeout=300).stdout.strip()
    timing("vm_checkpoint", time.time() - t0)
    at = c.guest.last()
    expect_vm(c, "Running", c.h2)
    c.guest.wait_ticks(at, 20, 60)
    later = c.guest.last()
    s = c.pool.vm(c.pool.rpc("VM.get_by_uuid", ck))
    loc, mib, magic = image_of(c, s["suspend_VDI"])
    if s["power_state"] != "Suspended" or magic != b"XENSAVE1":
        raise Fail("the checkpoint is %s with image %s starting %r" % (s["power_state"], loc, magic))
    t0 = time.time()
    c.pool.xe("snapshot-revert", "snapshot-uuid=" + ck, timeout=300)
    expect_vm(c, "Suspended", None)
    c.guest.clear_logs()
    c.pool.xe("vm-resume", "vm=tick", "on=" + host_uuid(c, 1), timeout=300)
    timing("revert_and_resume", time.time() - t0)
    expect_vm(c, "Running", c.h1)
    wait("ticks of the reverted guest", lambda: len(c.guest.read()[1]) >= 10, 60)
    ups, ticks = c.guest.read()
    first = min(ticks)
    if ups or first > at + 2 or first >= later:
        raise Fail("after the revert the guest ticks from %d (booted %d times); checkpoint at %d, later %d"
                   % (first, ups, at, later))
    say("checkpoint at tick %d, %d later; reverted guest ticks on from %d" % (at, later, first))
    c.pool.xe("snapshot-uninstall", "uuid=" + ck, "force=true", timeout=120)


def t_shutdown_clean(c):
    """xe vm-shutdown: the guest powers itself off (control/shutdown); the domain is gone."""
    t0 = time.time()
    c.pool.xe("vm-shutdown", "vm=tick", timeout=300)
    timing("clean_shutdown", time.time() - t0)
    expect_vm(c, "Halted", None)
    if probe_list(c.pool, 1) or "tick" in xl_domains():
        raise Fail("a domain is left after the shutdown: %s" % xl_domains())


def t_shutdown_hard_and_death(c):
    """Started on host2, destroyed with force=true; started again, a domain that dies behind the pool's back
    is recorded halted at once (the @releaseDomain watch, not the 30 s heartbeat). Neither waits for the
    guest's boot (pvgrub2 reads its kernel at a few hundred KiB/s under emulation)."""
    t0 = time.time()
    c.pool.xe("vm-start", "vm=tick", "on=" + c.pool.rpc("host.get_uuid", c.h2), timeout=300)
    timing("second_vm_start", time.time() - t0)
    expect_vm(c, "Running", c.h2)
    t0 = time.time()
    c.pool.xe("vm-shutdown", "vm=tick", "force=true", timeout=120)
    timing("hard_shutdown", time.time() - t0)
    expect_vm(c, "Halted", None)
    if probe_list(c.pool, 2) or "tick" in xl_domains():
        raise Fail("a domain is left after the hard shutdown: %s" % xl_domains())
    c.guest.clear_logs()
    c.pool.xe("vm-start", "vm=tick", "on=" + c.pool.rpc("host.get_uuid", c.h2), timeout=300)
    domid = xl_domains()["tick"]
    time.sleep(2)
    run([XL, "destroy", str(domid)])
    t0 = time.time()
    wait("poold recording the VM halted", lambda: c.pool.vm(c.ref)["power_state"] == "Halted", 12, 0.2)
    timing("death_noticed", time.time() - t0)


def t_xlcfg(c):
    """The xl.cfg the agent keeps is one `xl create` accepts (levelling, pvgrub2, disk); the domain it makes
    is not the pool's, and no agent lists it."""
    cfg = os.path.join(c.pool.xen_state(1), c.vm + ".xl.cfg")
    t0 = time.time()
    run([XL, "create", "-p", cfg, 'name="xlcheck"', 'uuid="0a0b0c0d-0000-4000-8000-000000000001"'], timeout=300)
    timing("xl_create_paused", time.time() - t0)
    try:
        if "xlcheck" not in xl_domains():
            raise Fail("xl create made no domain: %s" % xl_domains())
        if probe_list(c.pool, 1) or probe_list(c.pool, 2):
            raise Fail("a domain made with xl is listed by an agent's backend")
    finally:
        run([XL, "destroy", "xlcheck"], check=False)


def t_refuse_hvm(c):
    """An HVM VM on this host without hardware virtualisation: refused in one line, nothing left."""
    xe = c.pool.xe
    vm = xe("vm-install", "template=Generic VM", "new-name-label=hvm1").stdout.strip()
    mib = "%dMiB" % GUEST_MIB
    xe("vm-param-set", "uuid=" + vm, "memory-static-min=" + mib, "memory-dynamic-min=" + mib,
       "memory-dynamic-max=" + mib, "memory-static-max=" + mib)
    before = xl_domains()
    r = xe("vm-start", "vm=hvm1", check=False, timeout=120)
    if r.returncode == 0 or "no hardware virtualisation" not in r.stderr:
        raise Fail("the HVM guest was not refused as it should be: rc %d: %s" % (r.returncode, r.stderr.strip()))
    say("HVM refused: %s" % r.stderr.strip()[-240:])
    if xl_domains() != before or c.pool.vm(c.pool.rpc("VM.get_by_uuid", vm))["power_state"] != "Halted":
        raise Fail("the refused HVM start left something: %s" % xl_domains())
    xe("vm-uninstall", "uuid=" + vm, "force=true")


def t_refuse_no_privcmd(c):
    """backend: xen where /dev/xen/privcmd is missing: the agent stops with one line."""
    d = os.path.join(WORK, "noxen")
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "agent.conf")
    with open(conf, "w") as f:
        f.write("master: 127.0.0.1:%d\nstate-dir: %s/state\nbackend: xen\n" % (PORT, d))
    r = run(["unshare", "-m", "sh", "-c", "mount -t tmpfs none /dev/xen && exec %s/pool-agent --config %s" % (OPT, conf)],
            check=False, timeout=60)
    lines = r.stderr.strip().splitlines()
    if r.returncode != 1 or len(lines) != 1 or "/dev/xen/privcmd not found" not in lines[0]:
        raise Fail("without privcmd: rc %d, stderr %r" % (r.returncode, r.stderr))
    say("without privcmd: %s" % lines[0])


TESTS = [t_join, t_setup_vm, t_start, t_pause, t_memory_vcpus, t_disk_hotplug, t_migrate,
         t_migrate_back_compressed, t_dest_killed, t_agent_restart, t_suspend_resume, t_checkpoint_revert,
         t_shutdown_clean,
         t_shutdown_hard_and_death, t_xlcfg, t_refuse_hvm, t_refuse_no_privcmd]
# a failure of these leaves nothing for the rest to test
ESSENTIAL = {"t_join", "t_setup_vm", "t_start"}


def diagnose(c):
    for i in (0, 1, 2):
        print("---- %s (last lines)" % ("poold.log" if i == 0 else "host%d agent.log" % i), flush=True)
        print(c.pool.tail(i, 8), flush=True)
    print("---- xl list\n" + run([XL, "list"], check=False).stdout, flush=True)
    for path in sorted(glob.glob(os.path.join(CONSOLE, "guest-*.log"))):
        with open(path, errors="replace") as f:
            print("---- %s (last lines)\n%s" % (path, "".join(f.readlines()[-5:])), flush=True)


def main():
    only = set(filter(None, re.split(r"[,+]", os.environ.get("XENTEST_ONLY", ""))))
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    c = Ctx()
    c.pool = Pool()
    c.guest = Guest("tick")
    failed = 0
    for t in TESTS:
        if only and t.__name__ not in only and t.__name__ not in ESSENTIAL:
            continue
        say("---- %s: %s" % (t.__name__, t.__doc__.split("\n")[0]))
        t0 = time.time()
        try:
            t(c)
            print("XENTEST PASS %s %.1f" % (t.__name__, time.time() - t0), flush=True)
        except Exception as e:  # noqa: BLE001 - any failure is the test's
            failed += 1
            print("XENTEST FAIL %s: %s" % (t.__name__, str(e).replace("\n", " ")[:600]), flush=True)
            diagnose(c)
            if t.__name__ in ESSENTIAL:
                break
    for name in list(c.pool.procs):
        c.pool.stop(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
