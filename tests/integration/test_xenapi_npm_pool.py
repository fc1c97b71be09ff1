"""
test_xenapi_npm_pool.py - Xen Orchestra's `xen-api` npm client (the version
test_xenapi_npm.py pins, installed the same way into tests/integration/.npm/)
connected to a pool of 3 real hosts (scripts/devpool): it sees the 3 hosts
and the VMs running on them, and sees a VM that Python starts become Running
through its event loop. Driven by xenapi_pool.mjs.

Without node/npm or without a reachable registry the test FAILS, unless
POOLD_SKIP_NPM=1 is set, in which case it is skipped.
"""
import json
import os
import queue
import shutil
import subprocess
import threading
import time
import unittest

from tests.integration import test_xenapi_npm as npm
from tests.integration.harness import SLOW
from tests.integration.pooltest import MiB, DevPool

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = "xenapi_pool.mjs"
TOTAL = 60 * SLOW  # seconds for the whole client run


class XenApiNpmPoolTest(unittest.TestCase):
    script, total = SCRIPT, TOTAL  # a subclass drives another script

    def setUp(self):
        if os.environ.get("POOLD_SKIP_NPM") == "1":
            self.skipTest("POOLD_SKIP_NPM=1")
        why = npm.ensure_xen_api()
        if why:
            self.fail(why + " -- set POOLD_SKIP_NPM=1 to skip this test")
        self.pool = DevPool(3, host_memory_mib=2048)
        self.addCleanup(self.pool.close)

    # -- the client process
    def start_client(self, *args):
        script = os.path.join(npm.NPM_DIR, self.script)
        shutil.copyfile(os.path.join(HERE, self.script), script)
        env = dict(os.environ, XENAPI_TEST_TIMEOUT_MS=str(int(self.total * 1000)), NODE_NO_WARNINGS="1")
        proc = subprocess.Popen(["node", script] + [str(a) for a in args], cwd=npm.NPM_DIR, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = queue.Queue()

        def reader(stream, tag):
            for line in stream:
                lines.put((tag, line.rstrip("\n")))
            lines.put((tag, None))

        proc.readers = [threading.Thread(target=reader, args=(proc.stdout, "out"), daemon=True),
                        threading.Thread(target=reader, args=(proc.stderr, "err"), daemon=True)]
        for t in proc.readers:
            t.start()
        self.addCleanup(self.stop_client, proc)
        self.stdout_lines, self.stderr_lines = [], []
        return proc, lines

    @staticmethod
    def stop_client(proc):
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for t in proc.readers:
            t.join(5)
        proc.stdout.close()
        proc.stderr.close()

    def next_message(self, lines, deadline, want):
        """The next stdout JSON object holding want; fails on {"error":...}, EOF or timeout."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail("no %s from the xen-api client within its time\nstdout: %s\nstderr: %s" %
                          (want, "\n".join(self.stdout_lines), "\n".join(self.stderr_lines[-30:])))
            try:
                tag, line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if tag == "err":
                if line is not None:
                    self.stderr_lines.append(line)
                continue
            if line is None:
                self.fail("the xen-api client exited before %s\nstdout: %s\nstderr: %s" %
                          (want, "\n".join(self.stdout_lines), "\n".join(self.stderr_lines[-30:])))
            self.stdout_lines.append(line)
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "error" in msg:
                self.fail("xen-api client error while waiting for %s: %s\nstderr: %s\n%s" %
                          (want, json.dumps(msg, indent=1), "\n".join(self.stderr_lines[-30:]), self.pool.logs()))
            if want in msg:
                return msg

    # -- the test
    def make_vm(self, name, mem=256 * MiB):
        rec = self.pool.rpc("VM.get_record", self.pool.rpc("VM.get_by_name_label", "Generic VM")[0])
        rec.update({"name_label": name, "is_a_template": False, "other_config": {}, "memory_static_max": mem,
                    "memory_dynamic_max": mem, "memory_dynamic_min": mem, "memory_static_min": min(mem, 128 * MiB)})
        return self.pool.rpc("VM.create", rec)

    def test_client_sees_hosts_running_vms_and_a_start(self):
        p = self.pool
        hosts = {i: p.host_ref(i) for i in (1, 2, 3)}
        running = {}
        for i in (1, 2):
            vm = self.make_vm("npm-running-%d" % i)
            p.rpc("VM.start_on", vm, hosts[i], False, False)
            running[vm] = hosts[i]
        watched = self.make_vm("npm-watched")
        proc, lines = self.start_client(p.port, p.password, watched, hosts[1])
        deadline = time.monotonic() + TOTAL + 5

        self.next_message(lines, deadline, "connected")
        counts = self.next_message(lines, deadline, "counts")["counts"]
        self.assertEqual(counts.get("host"), 3, counts)
        self.assertEqual(counts.get("pool"), 1, counts)
        seen_hosts = self.next_message(lines, deadline, "hosts")["hosts"]
        self.assertEqual(sorted(h["ref"] for h in seen_hosts), sorted(hosts.values()))
        by_ref = {h["ref"]: h for h in seen_hosts}
        for i, ref in hosts.items():
            self.assertEqual(by_ref[ref]["uuid"], p.host_uuid(i))
            self.assertEqual(by_ref[ref]["name_label"], "host%d" % i)
            self.assertEqual(by_ref[ref]["address"], "127.0.0.%d" % (i + 1))
            self.assertIs(by_ref[ref]["live"], True, "host%d's metrics through the client's cache" % i)
        seen_running = self.next_message(lines, deadline, "running")["running"]
        self.assertEqual({v["ref"]: v["resident_on"] for v in seen_running}, running)
        for v in seen_running:
            self.assertEqual(v["domid"], p.rpc("VM.get_domid", v["ref"]))

        self.next_message(lines, deadline, "READY")
        started = time.monotonic()
        p.rpc("VM.start_on", watched, hosts[3], False, False)
        upd = self.next_message(lines, deadline, "update")["update"]
        self.assertLess(time.monotonic() - started, 5 * SLOW, "the start reached the client late")
        self.assertEqual(upd["ref"], watched)
        self.assertEqual(upd["type"], "VM")
        self.assertEqual(upd["power_state"], "Running")
        self.assertEqual(upd["resident_on"], hosts[3])
        self.assertEqual(upd["host_name"], "host3")
        self.assertEqual(upd["domid"], p.rpc("VM.get_domid", watched))
        ev = self.next_message(lines, deadline, "evacuated")["evacuated"]
        self.assertIs(ev["enabled"], True)
        for vm, host in running.items():
            where = p.rpc("VM.get_resident_on", vm)
            if host == hosts[1]:
                self.assertIn(where, (hosts[2], hosts[3]), "host1's VM left it")
                running[vm] = where
            else:
                self.assertEqual(where, host)
            self.assertEqual(p.rpc("VM.get_power_state", vm), "Running")
        self.next_message(lines, deadline, "done")
        try:
            rc = proc.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.fail("the xen-api client did not exit after disconnect")
        self.assertEqual(rc, 0, "\n".join(self.stderr_lines[-30:]))
        for vm in list(running) + [watched]:
            p.rpc("VM.hard_shutdown", vm)


if __name__ == "__main__":
    unittest.main()
