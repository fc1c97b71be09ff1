#!/usr/bin/env python3
"""
bench/sxm - storage live migration on two hosts with local SRs
(scripts/devpool --local-srs on 127.0.0.x: real agents, sim domains): a VM
of 512 MiB RAM (256 MiB touched, mixed content) with a 2 GiB disk, half of
it allocated with mixed content (random, text-like, zero blocks; the rest
holes), moved from host1's local SR to host2's while the guest is idle, and
while it writes its disk at 20 MB/s. In the same run, the same VM with its
disk on the shared SR moves by VM.pool_migrate: the downtime to compare
with.

Per case: disk_bytes (data the disk mirror sent), wire_bytes (disk mirror
and memory stream), total_ms (Async.VM.migrate_send to the task's end, as
the client sees it), disk_phase_ms (to the memory migration's start:
snapshot, copy, rounds), memory_phase_ms (the memory stream), downtime_ms
(source paused to RUNNING, the disks' last round inside it), guest_gap_ms
(the longest gap between two of the guest's own heartbeat ticks, from its
RAM), disk_mb_s (the disk's wire bytes over disk_phase_ms), baseline_mb_s
(raw TLS between two loopback endpoints, the mean of a measure just
before and one just after the case: bench/migrate --tls-baseline), ratio
(disk_mb_s / baseline_mb_s, per run),
copy_mb_s (the mirror's own bulk copy rate) and copy_ratio, snapshot_ms,
shared_downtime_ms (VM.pool_migrate of the same VM, shared SR, same run),
downtime_vs_shared, verified (both verifies: memory and every disk).
Targets: ratio >= 0.6; downtime_ms <= 2 x shared_downtime_ms; verified.
`--json` prints one object per case; `--runs N` repeats (medians).
"""
import json
import os
import random
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
from tests.bench.hosts import connect, devpool, up  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
RAM_NAME = "/memfd:simdom-ram"


def fill(path, size):
    """Half the disk in 64 KiB blocks (every other one), a third each random,
    text-like and zero; the other half holes."""
    rnd = random.Random(42)
    text = (b"storage live migration moves the disks of a running VM while it writes them. " * 900)[:64 * 1024]
    rblk = [rnd.randbytes(64 * 1024) for _ in range(16)]
    with open(path, "r+b") as f:
        for off in range(0, size, 128 * 1024):
            k = rnd.randrange(3)
            f.seek(off)
            f.write(rblk[rnd.randrange(16)][:32 * 1024] + rnd.randbytes(32 * 1024) if k == 0 else
                    text if k == 1 else bytes(64 * 1024))


def ram_fd(pid):
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith(RAM_NAME):
                return "/proc/%d/fd/%s" % (pid, fd)
        except OSError:
            pass
    return None


def gap_reset(pid):
    with open(ram_fd(pid), "r+b") as f:
        f.seek(32)
        f.write(bytes(8))


def gap_ms(pid):
    with open(ram_fd(pid), "rb") as f:
        f.seek(32)
        return int.from_bytes(f.read(8), "little") / 1e6


def domain_pid(d, host, domid):
    with open(os.path.join(d, "host%d" % host, "state", "domains", "dom-%d.json" % domid)) as f:
        return int(json.load(f)["pid"])


def tls_baseline(mb):
    exe = os.path.join(ROOT, BUILD, "bench", "migrate")
    out = subprocess.run([exe, "--tls-baseline", str(mb)], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, BINDIR=BIN))
    if out.returncode:
        sys.exit("bench/sxm: tls baseline failed: " + out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])["baseline_mb_s"]


class Pool:
    def __init__(self, d):
        self.d = d
        self.r = connect(d)
        self.hosts = {h["name_label"]: ref for ref, h in self.r.rpc("host.get_all_records").items()}
        self.srs = {s["name_label"]: ref for ref, s in self.r.rpc("SR.get_all_records").items()}
        self.net = [n for n, r in self.r.rpc("network.get_all_records").items() if "eth0" in r["name_label"]][0]

    def vm(self, name, sr, writes_kib):
        r = self.r
        vm = r.rpc("VM.create", {"name_label": name, "memory_static_max": 512 * MiB,
                                 "memory_dynamic_max": 512 * MiB, "memory_dynamic_min": 512 * MiB,
                                 "memory_static_min": 16 * MiB,
                                 "other_config": {"sim-touch-mib": "256", "sim-disk-write-kib-per-s": str(writes_kib),
                                                  "sim-dirty-pages-per-s": "2000", "sim-working-set-mib": "64"}})
        vdi = r.rpc("VDI.create", {"name_label": name + "-disk", "SR": sr, "virtual_size": 2 * GiB, "type": "user",
                                   "sharable": False, "read_only": False, "other_config": {}})
        fill(r.rpc("VDI.get_location", vdi), 2 * GiB)
        os.sync()  # the writeback of the fill must not stall the pool (heartbeats) while it runs
        self.live()
        r.rpc("VBD.create", {"VM": vm, "VDI": vdi, "userdevice": "0", "bootable": True, "mode": "RW",
                             "type": "Disk", "empty": False, "other_config": {}, "qos_algorithm_type": "",
                             "qos_algorithm_params": {}})
        r.rpc("VM.start_on", vm, self.hosts["host1"], False, False)
        time.sleep(2)  # booted, writing
        return vm, vdi

    def live(self):
        deadline = time.monotonic() + 30
        while not all(m["live"] for m in self.r.rpc("host_metrics.get_all_records").values()):
            if time.monotonic() > deadline:
                sys.exit("bench/sxm: a host is not live")
            time.sleep(0.2)

    def drop(self, vm):
        r = self.r
        r.rpc("VM.hard_shutdown", vm)
        for vbd in r.rpc("VM.get_VBDs", vm):
            r.rpc("VDI.destroy", r.rpc("VBD.get_VDI", vbd))
        r.rpc("VM.destroy", vm)


def wait(r, task, on_phase=None):
    while True:
        rec = r.rpc("task.get_record", task)
        if on_phase:
            on_phase(rec["other_config"].get("phase", ""))
        if rec["status"] not in ("pending", "cancelling"):
            return rec
        time.sleep(0.01)


def shared_downtime(pool, writes_kib):
    """The same VM on the shared SR: VM.pool_migrate's downtime and gap."""
    r = pool.r
    vm, _ = pool.vm("shared", pool.srs["devpool shared SR"], writes_kib)
    pid = domain_pid(pool.d, 1, r.rpc("VM.get_domid", vm))
    gap_reset(pid)
    rec = wait(r, r.rpc("Async.VM.pool_migrate", vm, pool.hosts["host2"], {"verify": "true"}))
    stats = json.loads(rec["other_config"]["migration_stats"])
    gap = gap_ms(domain_pid(pool.d, 2, r.rpc("VM.get_domid", vm)))
    pool.drop(vm)
    return stats["downtime_ms"], gap


def sxm_case(pool, writes_kib):
    r = pool.r
    vm, vdi = pool.vm("sxm", pool.srs["host1 local SR"], writes_kib)
    pid = domain_pid(pool.d, 1, r.rpc("VM.get_domid", vm))
    gap_reset(pid)
    dest = r.rpc("host.migrate_receive", pool.hosts["host2"], pool.net, {})
    marks = {}
    t0 = time.monotonic()
    task = r.rpc("Async.VM.migrate_send", vm, dest, True, {vdi: pool.srs["host2 local SR"]}, {}, {"verify": "true"})

    def on_phase(ph):
        if "memory:" in ph and "memory" not in marks:
            marks["memory"] = time.monotonic()
    rec = wait(r, task, on_phase)
    total = (time.monotonic() - t0) * 1000
    if rec["status"] != "success":
        sys.exit("bench/sxm: the migration failed: %r" % rec["error_info"])
    mem = json.loads(rec["other_config"]["migration_stats"])
    disks = json.loads(rec["other_config"]["disk_stats"])
    gap = gap_ms(domain_pid(pool.d, 2, r.rpc("VM.get_domid", vm)))
    pool.drop(vm)
    disk_wire = sum(d.get("wire_bytes", 0) for d in disks)
    disk_phase = (marks.get("memory", t0) - t0) * 1000
    copy_ms = sum(d.get("copy_ms", 0) for d in disks)
    total_data = sum(d.get("sent", 0) for d in disks)
    mem_wire = mem.get("memory_wire_bytes", mem["wire_bytes"])
    return {"disk_bytes": total_data, "wire_bytes": disk_wire + mem_wire, "total_ms": round(total, 1),
            "disk_phase_ms": round(disk_phase, 1), "memory_phase_ms": round(mem["total_ms"], 1),
            "downtime_ms": round(mem["downtime_ms"], 2), "guest_gap_ms": round(gap, 2),
            "disk_mb_s": round(disk_wire / 1e6 / (disk_phase / 1000), 1) if disk_phase > 0 else 0,
            "copy_mb_s": round(disks[0].get("wire_bytes", 0) / 1e6 / (copy_ms / 1000), 1) if copy_ms else 0,
            "snapshot_ms": round(sum(d.get("snapshot_ms", 0) for d in disks), 1),
            "final_ms": round(sum(d.get("final_ms", 0) for d in disks), 2),
            "verified": bool(mem.get("verified")) and all(d.get("verified") for d in disks)}


def one_run(pool, kib):
    # the raw TLS rate just before and just after the case: the machine's load drifts
    before = tls_baseline(800)
    row = sxm_case(pool, kib)
    after = tls_baseline(max(100, row["disk_bytes"] / 1e6))
    row["baseline_mb_s"] = round((before + after) / 2)
    row["ratio"] = round(row["disk_mb_s"] / row["baseline_mb_s"], 2)
    row["copy_ratio"] = round(row["copy_mb_s"] / row["baseline_mb_s"], 2)
    row["shared_downtime_ms"], row["shared_guest_gap_ms"] = shared_downtime(pool, kib)
    row["downtime_vs_shared"] = round(row["downtime_ms"] / row["shared_downtime_ms"], 2)
    return row


def report(name, rows, runs, as_json):
    out = {"case": name}
    for k in rows[0]:
        vals = [x[k] for x in rows]
        out[k] = all(vals) if isinstance(vals[0], bool) else statistics.median(vals)
    out["runs"] = runs  # each figure the median of the runs' (ratios per run, then the median)
    if as_json:
        print(json.dumps(out), flush=True)
        return
    print("%-16s total %7.0f ms  disk %6.0f ms (%5.0f MB/s, %.2f of raw TLS %5.0f)  memory %5.0f ms  "
          "downtime %5.1f ms (shared %5.1f: x%.2f)  guest gap %5.1f ms  verified %s"
          % (name, out["total_ms"], out["disk_phase_ms"], out["disk_mb_s"], out["ratio"], out["baseline_mb_s"],
             out["memory_phase_ms"], out["downtime_ms"], out["shared_downtime_ms"], out["downtime_vs_shared"],
             out["guest_gap_ms"], out["verified"]), flush=True)


def main():
    as_json = "--json" in sys.argv
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 1
    d = tempfile.mkdtemp(prefix="bench-sxm-")
    try:
        up(d, "--hosts", "2", "--local-srs", "--host-memory-mib", "4096", "--heartbeat", "1")
        pool = Pool(d)
        cases = (("idle", 0), ("writing 20 MB/s", 20480))
        rows = {name: [] for name, _ in cases}
        for _ in range(runs):  # the cases interleaved: the machine's load drifts
            for name, kib in cases:
                rows[name].append(one_run(pool, kib))
        for name, _ in cases:
            report(name, rows[name], runs, as_json)
    finally:
        devpool("down", "--dir", d)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
