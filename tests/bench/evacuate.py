#!/usr/bin/env python3
"""
bench/evacuate - host.evacuate of 40 VMs of 256 MiB (25% of their memory
touched) from one host of a 3-host pool (scripts/devpool on 127.0.0.x, real
agents and sim domains), with batch sizes 1, 2, 4 and 10.

Per case: total_ms (Async.host.evacuate to the task's end), bound_ms (the
bytes the migrations put on the wire divided by the raw TLS rate between
two endpoints on the same loopback, measured in the same run by
bench/migrate --tls-baseline), ratio (total_ms / bound_ms: 1.0 would be
the link's speed), max_in_flight (as poold counted it; the integration
tests observe it from outside), downtime_ms_median / _max over the VMs,
failed (VMs left behind); per_vm_overhead_ms (batch size 1: total minus
the sum of the VMs' own stream times, per VM: what a VM costs beyond its
memory stream), single_stream_mb_s (the streams' own rate at batch size 1),
stream_bound_ms (wire bytes at that rate) and stream_ratio (total_ms /
stream_bound_ms). `--json` prints one object per case. `--quick`: 12 VMs,
batch sizes 1 and 4.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
BIN = os.environ.get("POOLD_BIN") or os.path.join(ROOT, os.environ.get("BINDIR", "bin"))
os.environ["POOLD_BIN"] = BIN
BUILD = os.environ.get("BUILD", "build/rel")
from tests.bench.hosts import connect, up, devpool  # noqa: E402

NULL = "OpaqueRef:NULL"
MiB = 1 << 20


def tls_baseline(mb):
    exe = os.path.join(ROOT, BUILD, "bench", "migrate")
    if not os.access(exe, os.X_OK):
        sys.exit("bench/evacuate: %s not built (make bench builds it)" % exe)
    out = subprocess.run([exe, "--tls-baseline", str(mb)], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, BINDIR=BIN))
    if out.returncode:
        sys.exit("bench/evacuate: tls baseline failed: " + out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])["baseline_mb_s"]


def start_all(r, vms, host):
    for vm in vms:
        r.rpc("VM.start_on", vm, host, False, False)


def run_case(r, vms, h1, batch):
    start_all(r, vms, h1)
    time.sleep(1)
    t0 = time.monotonic()
    task = r.rpc("Async.host.evacuate", h1, NULL, batch)
    while r.rpc("task.get_status", task) in ("pending", "cancelling"):
        time.sleep(0.02)
    total_ms = (time.monotonic() - t0) * 1000
    rec = r.rpc("task.get_record", task)
    state = json.loads(rec["other_config"].get("evacuation", "{}"))
    r.rpc("task.destroy", task)
    for vm in vms:
        if r.rpc("VM.get_power_state", vm) != "Halted":
            r.rpc("VM.hard_shutdown", vm)
    vs = state.get("vms", [])
    downs = [v["downtime_ms"] for v in vs if "downtime_ms" in v]
    wire = sum(v.get("wire_bytes", 0) for v in vs)
    streams = sum(v.get("stream_ms", 0) for v in vs)
    return {"vms": len(vms), "batch_size": batch, "total_ms": round(total_ms, 1), "wire_bytes": wire,
            "stream_ms_sum": round(streams, 1),
            "max_in_flight": state.get("max_in_flight", 0),
            "downtime_ms_median": round(statistics.median(downs), 2) if downs else None,
            "downtime_ms_max": round(max(downs), 2) if downs else None,
            "failed": sum(1 for v in vs if v["state"] != "done"), "status": rec["status"]}


def main():
    as_json = "--json" in sys.argv
    quick = "--quick" in sys.argv or os.environ.get("BENCH_QUICK")
    nvms, batches = (12, (1, 4)) if quick else (40, (1, 2, 4, 10))
    base = tempfile.mkdtemp(prefix="bench_evacuate.")
    d = os.path.join(base, "pool")
    try:
        up(d, "--hosts", "3", "--host-memory-mib", "12288", "--no-sr")
        r = connect(d)
        h1, h2, h3 = sorted(r.rpc("host.get_all"), key=lambda h: r.rpc("host.get_name_label", h))
        vms = []
        for i in range(nvms):
            vms.append(r.rpc("VM.create", {"name_label": "e%02d" % i, "memory_static_max": 256 * MiB,
                                           "memory_dynamic_max": 256 * MiB, "memory_dynamic_min": 256 * MiB,
                                           "memory_static_min": 16 * MiB,
                                           # a 10 ms guest tick: 40 guests at 1 ms would eat
                                           # half of the 2 cores before anything migrates
                                           "other_config": {"sim-touch-mib": "64", "sim-heartbeat-ms": "10"}}))
        rows = []
        single = None  # one migration stream's own rate (MB/s), from batch size 1 of this run
        for b in batches:
            row = run_case(r, vms, h1, b)
            rate = tls_baseline(max(100, row["wire_bytes"] / 1e6))
            row["baseline_mb_s"] = rate
            row["bound_ms"] = round(row["wire_bytes"] / 1e3 / rate, 1)
            row["ratio"] = round(row["total_ms"] / row["bound_ms"], 2) if row["bound_ms"] else None
            if b == 1 and row["stream_ms_sum"]:
                # what a VM costs beyond its own stream (calls, domain set-up
                # and teardown, bookkeeping), and the streams' own rate
                row["per_vm_overhead_ms"] = round((row["total_ms"] - row["stream_ms_sum"]) / row["vms"], 1)
                single = row["wire_bytes"] / 1e3 / row["stream_ms_sum"]
            if single:
                row["single_stream_mb_s"] = round(single, 1)
                row["stream_bound_ms"] = round(row["wire_bytes"] / 1e3 / single, 1)
                row["stream_ratio"] = round(row["total_ms"] / row["stream_bound_ms"], 2)
            rows.append(row)
            if as_json:
                print(json.dumps(row))
            sys.stdout.flush()
        if not as_json:
            print("%5s %6s %9s %9s %6s %11s %8s %10s %9s %7s" % (
                "batch", "VMs", "total ms", "bound ms", "ratio", "strm ratio", "in-fly", "down med", "down max",
                "failed"))
            for x in rows:
                print("%5d %6d %9.0f %9.0f %6.2f %11s %8d %10s %9s %7d" % (
                    x["batch_size"], x["vms"], x["total_ms"], x["bound_ms"], x["ratio"] or 0,
                    x.get("stream_ratio", "-"), x["max_in_flight"], x["downtime_ms_median"], x["downtime_ms_max"],
                    x["failed"]))
            one = [x for x in rows if "per_vm_overhead_ms" in x]
            if one:
                print("per VM beyond its stream, batch size 1: %.1f ms; one stream's own rate: %.0f MB/s"
                      % (one[0]["per_vm_overhead_ms"], one[0]["single_stream_mb_s"]))
            print("bound = wire bytes / raw TLS rate on the same loopback, measured in this run; "
                  "ratio = total / bound; strm ratio = total / (wire bytes / one stream's rate)")
    finally:
        devpool("down", "--dir", d)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
