"""
sxmtest.py - what the storage migration tests share: a VM with disks on a
host's local SR (filled with mixed content: random, text, zero blocks and
holes), following an Async task, the hash of a VDI's file, poold killed
and started again, an agent restarted with a fault setting, and the check
that nothing of a storage migration is left behind.
"""
import hashlib
import os
import signal
import subprocess
import time

from tests.integration.harness import BIN, SLOW, XapiError
from tests.integration.pooltest import pid_alive, wait_until

MiB = 1 << 20


def fill(path, size, seed=1):
    """Half of the disk written, mixed: random, text-like and zero 64 KiB
    blocks; the rest left as holes."""
    import random
    rnd = random.Random(seed)
    text = (b"the quick brown fox jumps over the lazy dog; storage migration moves disks. " * 1000)
    with open(path, "r+b") as f:
        for off in range(0, size, 128 * 1024):  # every other 64 KiB block
            kind = rnd.randrange(3)
            blk = (rnd.randbytes(64 * 1024) if kind == 0 else
                   text[:64 * 1024] if kind == 1 else bytes(64 * 1024))
            f.seek(off)
            f.write(blk)


def file_hash(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


class Sxm:
    """Helpers on a DevPool made with --local-srs."""

    def __init__(self, p):
        self.p = p
        self.rpc = p.rpc

    def sr(self, name):
        for ref, r in self.rpc("SR.get_all_records").items():
            if r["name_label"] == name:
                return ref
        raise AssertionError("no SR %s" % name)

    def local(self, i):
        return self.sr("host%d local SR" % i)

    def vm(self, name, host, disks=(32 * MiB,), sr=None, mib=128, **oc):
        """A running VM on host with disks (filled) on sr (default: the host's local SR)."""
        rpc = self.rpc
        sr = sr or self.local(host)
        vm = rpc("VM.create", {"name_label": name, "memory_static_max": mib * MiB,
                               "memory_dynamic_max": mib * MiB, "memory_dynamic_min": mib * MiB,
                               "memory_static_min": 16 * MiB, "other_config": oc})
        for n, size in enumerate(disks):
            vdi = rpc("VDI.create", {"name_label": "%s-disk%d" % (name, n), "SR": sr, "virtual_size": size,
                                     "type": "user", "sharable": False, "read_only": False, "other_config": {}})
            fill(rpc("VDI.get_location", vdi), size, seed=n + 7)
            rpc("VBD.create", {"VM": vm, "VDI": vdi, "userdevice": str(n), "bootable": n == 0, "mode": "RW",
                               "type": "Disk", "empty": False, "other_config": {}, "qos_algorithm_type": "",
                               "qos_algorithm_params": {}})
        rpc("VM.start_on", vm, self.p.host_ref(host), False, False)
        return vm

    def disks(self, vm):
        """[(VBD, VDI record)] of the VM, by device."""
        out = []
        for vbd in self.rpc("VM.get_VBDs", vm):
            vdi = self.rpc("VBD.get_VDI", vbd)
            out.append((self.rpc("VBD.get_userdevice", vbd), vdi, self.rpc("VDI.get_record", vdi)))
        return [(v, r) for _, v, r in sorted(out)]

    def dest(self, host):
        net = [n for n, r in self.rpc("network.get_all_records").items() if "eth0" in r["name_label"]]
        return self.rpc("host.migrate_receive", self.p.host_ref(host), net[0] if net else
                        self.rpc("network.get_all")[0], {})

    def send(self, vm, host, sr=None, opts=None, vif_map=None):
        """Async.VM.migrate_send of every disk of vm to sr (default: host's local SR): the task."""
        sr = sr or self.local(host)
        vdi_map = {v: sr for v, _ in self.disks(vm)}
        return self.rpc("Async.VM.migrate_send", vm, self.dest(host), True, vdi_map, vif_map or {},
                        dict({"verify": "true"}, **(opts or {})))

    def wait_task(self, task, timeout=120, seen=None):
        """Until it ends: its status; seen (a list) gets every (progress, phase) observed."""
        deadline = time.time() + timeout * SLOW
        while True:
            try:
                rec = self.rpc("task.get_record", task)
            except (OSError, XapiError):
                rec = None
            if rec and seen is not None:
                seen.append((rec["progress"], rec["other_config"].get("phase", "")))
            if rec and rec["status"] not in ("pending", "cancelling"):
                return rec
            if time.time() > deadline:
                raise AssertionError("task %s did not end within %ds: %r" % (task, timeout, rec))
            time.sleep(0.05)

    def wait_phase(self, task, words, timeout=60):
        """Until the task's phase note contains words (or it ends)."""
        def phase():
            rec = self.rpc("task.get_record", task)
            ph = rec["other_config"].get("phase", "")
            return ph if words in ph or rec["status"] != "pending" else None
        return wait_until(phase, timeout, "the task's phase says %r" % words, 0.02)

    def leftovers(self):
        """VDIs a storage migration made and nobody owns yet (temporary
        snapshots, copies not committed)."""
        return [r["location"] for r in self.rpc("VDI.get_all_records").values()
                if "storage_migration" in r["other_config"]]

    def wait_clean(self, timeout=30):
        wait_until(lambda: not self.leftovers(), timeout, "nothing of the storage migration is left")
        self.p.assert_consistent()

    def runs_once(self, vm):
        """The one host (index) whose domain runs vm; poold agrees."""
        uuid = self.rpc("VM.get_uuid", vm)
        def one():
            where = [i for i, _ in self.p.simdoms().get(uuid, [])]
            rec = self.rpc("VM.get_record", vm)
            if len(where) == 1 and rec["power_state"] == "Running" and \
                    self.p.host_ref(where[0]) == rec["resident_on"]:
                return where[0]
            return None
        return wait_until(one, 30, "the VM runs on exactly one host and poold agrees")

    def agent_call(self, i, method, *params):
        return self.p.agent_call(i, method, *params)

    # -- faults
    def agent_with(self, i, line):
        """Restart host i's agent with one more setting (None: as it was)."""
        conf = os.path.join(self.p.host_dir(i), "agent.conf")
        with open(conf) as f:
            text = f.read()
        base = text.split("# fault\n")[0]
        with open(conf, "w") as f:
            f.write(base + ("# fault\n" + line + "\n" if line else ""))
        if pid_alive(self.p.agent_pid(i)):
            self.p.kill_agent(i, signal.SIGTERM)
        self.p.start_agent(i)

    def kill_poold(self):
        master = os.path.join(self.p.dir, "master")
        with open(os.path.join(master, "devpool.pid")) as f:
            pid = int(f.read())
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), 10, "poold gone", 0.02)

    def start_poold(self):
        master = os.path.join(self.p.dir, "master")
        os.unlink(os.path.join(master, "poold.port"))
        log = open(os.path.join(master, "poold.log"), "ab")
        np = subprocess.Popen([os.path.join(BIN, "poold"), "--dir", master], stdout=log, stderr=log,
                              start_new_session=True, stdin=subprocess.DEVNULL)
        log.close()
        self.p.started.append(np)
        with open(os.path.join(master, "devpool.pid"), "w") as f:
            f.write("%d\n" % np.pid)
        wait_until(lambda: os.path.exists(os.path.join(master, "poold.port")), 20, "poold started again")
        wait_until(lambda: self.rpc("pool.get_all"), 20, "poold answers")
        return np
