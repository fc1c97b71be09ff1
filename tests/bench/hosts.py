#!/usr/bin/env python3
"""
bench/hosts - the cost of hosts: an idle agent's memory, starting 20 VMs of
256 MiB on one host, and poold's CPU while 64 agents heartbeat every second.

Each figure comes with its baseline from the same run: poold's CPU with the
64 agents is shown next to the same poold idle with none. Pools are real
(scripts/devpool on 127.0.0.x). `--json` prints one JSON object.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
BIN = os.environ.get("POOLD_BIN") or os.path.join(ROOT, os.environ.get("BINDIR", "bin"))
os.environ["POOLD_BIN"] = BIN
import importlib.machinery  # noqa: E402
import importlib.util  # noqa: E402

_loader = importlib.machinery.SourceFileLoader("devpool", os.path.join(ROOT, "scripts", "devpool"))
_devpool = importlib.util.module_from_spec(importlib.util.spec_from_loader("devpool", _loader))
_loader.exec_module(_devpool)
Rpc = _devpool.Rpc  # devpool's JSON-RPC client

TICK = os.sysconf("SC_CLK_TCK")


def devpool(*args):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "devpool")] + list(args),
                         capture_output=True, text=True, timeout=600)
    if out.returncode:
        sys.exit("bench: devpool %s failed: %s" % (args[0], out.stderr or out.stdout))
    return out.stdout


def connect(d):
    env = devpool_env(d)
    r = Rpc(int(env["XE_PORT"]), env["XE_CACERT"])
    r.session = r.call("session.login_with_password", "root", env["XE_PASSWORD"])
    return r


def devpool_env(d):
    line = open(os.path.join(d, "env")).read()
    return dict(kv.split("=", 1) for kv in line.split()[1:])


def up(d, *args):
    out = devpool("up", "--dir", d, *args)
    with open(os.path.join(d, "env"), "w") as f:
        f.write(out.strip().splitlines()[-1])


def pid_of(path):
    return int(open(path).read().strip())


def rss_mib(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def cpu_seconds(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def cpu_share(pid, seconds):
    c0, t0 = cpu_seconds(pid), time.time()
    time.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - c0) / (time.time() - t0)


def bench_agent_and_starts(base):
    d = os.path.join(base, "one")
    up(d, "--hosts", "1", "--host-memory-mib", "8192", "--no-sr")
    try:
        time.sleep(3)
        agent_rss = rss_mib(pid_of(os.path.join(d, "host1", "devpool.pid")))
        r = connect(d)
        host = r.rpc("host.get_all")[0]
        template = r.rpc("VM.get_by_name_label", "Generic VM")[0]
        vms = []
        for i in range(20):
            vm = r.rpc("VM.clone", template, "bench-%02d" % i)
            r.rpc("VM.set_is_a_template", vm, False)
            r.rpc("VM.set_memory_limits", vm, 128 << 20, 256 << 20, 256 << 20, 256 << 20)
            vms.append(vm)
        t0 = time.time()
        tasks = [r.rpc("Async.VM.start_on", vm, host, False, False) for vm in vms]
        failed = 0
        for t in tasks:
            while True:
                rec = r.rpc("task.get_record", t)
                if rec["status"] != "pending":
                    failed += rec["status"] != "success"
                    break
                time.sleep(0.01)
        start_ms = (time.time() - t0) * 1000
        running = sum(1 for vm in vms if r.rpc("VM.get_power_state", vm) == "Running")
        return agent_rss, start_ms, running, failed
    finally:
        devpool("down", "--dir", d)


def bench_heartbeats(base, n):
    d = os.path.join(base, "many")
    up(d, "--hosts", str(n), "--host-memory-mib", "1024", "--no-sr", "--heartbeat", "1")
    poold = pid_of(os.path.join(d, "master", "devpool.pid"))
    try:
        time.sleep(2)
        return cpu_share(poold, 15)
    finally:
        devpool("down", "--dir", d)


def bench_idle_poold(base):
    d = os.path.join(base, "idle")
    up(d, "--hosts", "1", "--no-sr", "--heartbeat", "3600")
    try:
        poold = pid_of(os.path.join(d, "master", "devpool.pid"))
        time.sleep(1)
        return cpu_share(poold, 15)
    finally:
        devpool("down", "--dir", d)


def main():
    as_json = "--json" in sys.argv
    base = tempfile.mkdtemp(prefix="bench-hosts-")
    try:
        agent_rss, start_ms, running, failed = bench_agent_and_starts(base)
        idle = bench_idle_poold(base)
        busy = bench_heartbeats(base, 64)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    res = {"bench": "hosts", "agent_rss_idle_mib": round(agent_rss, 1), "start_20x256mib_ms": round(start_ms),
           "started": running, "start_failed": failed, "poold_cpu_pct_64_agents_1s": round(busy, 2),
           "poold_cpu_pct_idle": round(idle, 2)}
    if as_json:
        print(json.dumps(res))
    else:
        print("hosts bench")
        print("  agent RSS, idle                       %6.1f MiB   (target <= 10)" % agent_rss)
        print("  start 20 VMs of 256 MiB on one host   %6d ms    (target <= 2000; %d running, %d failed)"
              % (start_ms, running, failed))
        print("  poold CPU, 64 agents beating at 1/s   %6.2f %%    (target < 5; idle poold: %.2f %%)" % (busy, idle))


if __name__ == "__main__":
    main()
