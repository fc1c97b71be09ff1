"""
hatest.py - what the HA tests share: VMs of a given size and HA settings,
enabling HA, killing a host the way a power cut does (its agent, its
domains and its watchdog, all at once), and a watcher that samples every
host's domain processes while a test runs and remembers any VM found
running twice (checked against the processes, not the database).
"""
import os
import signal
import threading
import time

from tests.integration.harness import SLOW, XapiError
from tests.integration.pooltest import MiB, pid_alive, wait_until

TIMEOUT = 5  # HA's T in these tests


def make_vm(p, name, mib, priority="", order=0, start_delay=0):
    vm = p.rpc("VM.create", {"name_label": name, "memory_static_max": mib * MiB, "memory_dynamic_max": mib * MiB,
                             "memory_dynamic_min": mib * MiB, "memory_static_min": 16 * MiB, "VCPUs_max": 1,
                             "VCPUs_at_startup": 1, "other_config": {"sim-heartbeat-ms": "10",
                                                                     "sim-touch-mib": "4"}})
    p.rpc("VM.set_ha_restart_priority", vm, priority)
    p.rpc("VM.set_order", vm, order)
    p.rpc("VM.set_start_delay", vm, start_delay)
    return vm


def enable(p, timeout=TIMEOUT, tolerate=None):
    p.rpc("pool.enable_ha", [], {"timeout": str(timeout)}, timeout=120)
    pool = p.rpc("pool.get_all")[0]
    if tolerate is not None:
        p.rpc("pool.set_ha_host_failures_to_tolerate", pool, tolerate)
        wait_until(lambda: p.rpc("pool.get_ha_plan_exists_for", pool) == tolerate, 10,
                   "a plan for %d failure(s)" % tolerate)
    return pool


def messages(p, name):
    return [m for m in p.rpc("message.get_all_records").values() if m["name"] == name]


def watchdog_pid(p, i):
    try:
        with open(os.path.join(p.state_dir(i), "ha-watchdog.pid")) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def kill_host(p, i):
    """Host i dies at once: its agent, its watchdog and its domains."""
    pids = [p.agent_pid(i)] + [int(d["pid"]) for d in p.domains(i).values()]
    wd = watchdog_pid(p, i)
    if wd:
        pids.append(wd)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    t = time.monotonic()
    wait_until(lambda: not any(pid_alive(x) for x in pids), 10, "host%d's processes gone" % i, 0.02)
    for pr in p.started:
        if pr.pid == pids[0]:
            pr.wait()
    return t


def where(p, vm):
    """(power state, host index or None)."""
    rec = p.rpc("VM.get_record", vm)
    host = rec["resident_on"]
    return rec["power_state"], (p.host_index(host) if host != "OpaqueRef:NULL" else None)


class DoubleWatch:
    """Samples the live pool-simdom processes every 50 ms: any VM seen
    running in two processes at once is a failure of HA's promise."""

    def __init__(self, p):
        self.p = p
        self.doubles = []
        self.samples = 0
        self.first_seen = {}  # vm uuid -> {host index: monotonic time first seen there}
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_ev.is_set():
            now = time.monotonic()
            for uuid, where_ in self.p.simdoms().items():
                for host, _pid in where_:
                    self.first_seen.setdefault(uuid, {}).setdefault(host, now)
                if len(where_) > 1:
                    self.doubles.append((uuid, where_))
            self.samples += 1
            self.stop_ev.wait(0.05)

    def stop(self):
        self.stop_ev.set()
        self.thread.join(10)
        return self.doubles


def retry_start(p, vm, host=None):
    """A start that may meet HA admission: returns the XAPI error code or None."""
    try:
        if host:
            p.rpc("VM.start_on", vm, host, False, False)
        else:
            p.rpc("VM.start", vm, False, False)
        return None
    except XapiError as e:
        return e.code if hasattr(e, "code") else str(e)


__all__ = ["TIMEOUT", "SLOW", "make_vm", "enable", "messages", "kill_host", "where", "DoubleWatch", "watchdog_pid",
           "retry_start"]
