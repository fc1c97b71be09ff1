"""
rputest.py - what the rolling-upgrade tests share: VMs whose guests beat
every 10 ms, the dev pool's upgrade command (scripts/devpool upgrade-host),
following a run through its task, and a watcher that reads every guest's
domain processes while a run goes on: its heartbeat counter (page 0 of its
RAM) and the state the domain publishes about itself (its SHARED memfd,
struct simdom_shared's ss_state). A VM whose counter stands still for
STALL_S stopped; a VM with two processes that both say they run runs twice
(a migration's destination is paused until the source has paused: never
both).
"""
import json
import os
import sys
import threading
import time

from tests.integration.harness import ROOT, SLOW, XapiError
from tests.integration.pooltest import MiB, wait_until
from tests.integration.test_pool import guest_heartbeat

DEVPOOL = os.path.join(ROOT, "scripts", "devpool")
SHARED_NAME = "/memfd:simdom-shared"
BE_STATE_RUNNING = 1  # agent/backend.h
NEW = "0.2.0"
STALL_S = 2.0  # far above a migration's downtime (ms), below anything a stop looks like


def domain_running(pid):
    """The domain's own word (ss_state, after two 32-bit fields) that it runs."""
    fddir = "/proc/%d/fd" % pid
    for fd in os.listdir(fddir):
        try:
            if os.readlink(os.path.join(fddir, fd)).startswith(SHARED_NAME):
                with open(os.path.join(fddir, fd), "rb") as f:
                    head = f.read(12)
                return int.from_bytes(head[8:12], "little") == BE_STATE_RUNNING
        except OSError:
            continue
    raise OSError("domain process %d holds no %s memfd" % (pid, SHARED_NAME))


def make_vm(p, name, mib=128, **fields):
    rec = {"name_label": name, "memory_static_max": mib * MiB, "memory_dynamic_max": mib * MiB,
           "memory_dynamic_min": mib * MiB, "memory_static_min": 16 * MiB, "VCPUs_max": 1, "VCPUs_at_startup": 1,
           "other_config": {"sim-heartbeat-ms": "10", "sim-touch-mib": "8"}}
    rec.update(fields)
    return p.rpc("VM.create", rec)


def start_vms(p, per_host, mib=128):
    """per_host VMs started on each host: {vm ref: host ref}."""
    homes = {}
    for i in range(1, p.hosts + 1):
        h = p.host_ref(i)
        for k in range(per_host):
            vm = make_vm(p, "rpu-h%d-%d" % (i, k), mib)
            p.rpc("VM.start_on", vm, h, False, False)
            homes[vm] = h
    return homes


def hook(p, extra="", before=""):
    """The dev pool's upgrade command (before: shell run first, e.g. a sleep)."""
    return "%s%s %s upgrade-host --dir %s --host-uuid {uuid} --version %s %s" % (
        before, sys.executable, DEVPOOL, p.dir, NEW, extra)


def state(p, task):
    """The run's journal as its task shows it ({} before the first save)."""
    t = p.rpc("task.get_other_config", task).get("rolling_upgrade", "")
    return json.loads(t) if t else {}


def phase_of(st, name):
    for h in st.get("hosts", []):
        if h["name"] == name:
            return h["phase"]
    return None


def follow(p, task, timeout=240):
    """The task's record once it ended; poold may restart meanwhile."""
    def ended():
        rec = p.rpc("task.get_record", task)
        return rec if rec["status"] not in ("pending", "cancelling") else None
    return wait_until(ended, timeout, "the rolling upgrade ends", 0.5)


def versions(p):
    return {r["name_label"]: r["software_version"]["product_version"] for r in p.rpc("host.get_all_records").values()}


def rolling(p):
    pool = p.rpc("pool.get_all")[0]
    return p.rpc("pool.get_other_config", pool).get("rolling_upgrade_in_progress")


class BeatWatch:
    """Every guest's heartbeat counter, sampled every 200 ms from /proc."""

    def __init__(self, p, vm_uuids):
        self.p = p
        self.uuids = set(vm_uuids)
        self.doubles, self.stalls, self.gone = [], [], []
        self.samples = 0
        self.moved_at = {}  # vm uuid -> (monotonic, highest counter)
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def sample(self):
        if not self.p.dir:
            return  # the pool is gone (a test that failed before stop())
        now = time.monotonic()
        procs = self.p.simdoms()
        for uuid in self.uuids:
            beats, running = {}, []
            for host, pid in procs.get(uuid, []):
                try:
                    beats[pid] = guest_heartbeat(pid)
                    if domain_running(pid):
                        running.append((host, pid))
                except (OSError, AssertionError):
                    pass  # gone between the listing and the read
            if not beats:
                self.gone.append((uuid, now))
                continue
            if len(running) > 1:
                self.doubles.append((uuid, running))
            top = max(beats.values())
            t0, seen = self.moved_at.get(uuid, (now, -1))
            if top > seen:
                self.moved_at[uuid] = (now, top)
            elif now - t0 > STALL_S * SLOW:
                self.stalls.append((uuid, now - t0))
                self.moved_at[uuid] = (now, top)
        self.samples += 1

    def run(self):
        while not self.stop_ev.is_set():
            self.sample()
            self.stop_ev.wait(0.2)

    def stop(self):
        self.stop_ev.set()
        self.thread.join(20)
        return self


def assert_every_vm_ran(test, w):
    test.assertGreater(w.samples, 20, "the watcher sampled the run")
    test.assertEqual(w.doubles, [], "a VM ran twice")
    test.assertEqual(w.stalls, [], "a VM stopped (its heartbeat stood still)")
    test.assertEqual(w.gone, [], "a VM had no process at all")


__all__ = ["DEVPOOL", "make_vm", "start_vms", "hook", "state", "phase_of", "follow", "versions", "rolling", "BeatWatch",
           "assert_every_vm_ran", "NEW", "XapiError", "SLOW", "wait_until"]
