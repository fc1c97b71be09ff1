"""
test_xenapi_npm.py - a real XAPI client nobody here wrote: Xen Orchestra's
`xen-api` npm package (4.7.6) driven by xenapi_client.mjs.

The package is installed at test time into tests/integration/.npm/ (ignored
by git). Without node/npm or without a reachable registry the test FAILS,
unless POOLD_SKIP_NPM=1 is set, in which case it is skipped.
"""
import json
import os
import queue
import shutil
import subprocess
import threading
import time
import unittest

from tests.integration.harness import PASSWORD, SLOW, PoolTest

HERE = os.path.dirname(os.path.abspath(__file__))
NPM_DIR = os.path.join(HERE, ".npm")
PACKAGE = "xen-api"
VERSION = "4.7.6"
SCRIPT = "xenapi_client.mjs"
TOTAL = 60 * SLOW  # seconds for the whole client run


def installed_version():
    try:
        with open(os.path.join(NPM_DIR, "node_modules", PACKAGE, "package.json")) as f:
            return json.load(f).get("version")
    except (OSError, ValueError):
        return None


def ensure_xen_api():
    """Returns None when xen-api is usable, else the reason it is not."""
    if not shutil.which("node") or not shutil.which("npm"):
        return "node and npm are needed for the xen-api client test (not found in PATH)"
    if installed_version() == VERSION:
        return None
    os.makedirs(NPM_DIR, exist_ok=True)
    try:
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", NPM_DIR,
                            "%s@%s" % (PACKAGE, VERSION)], capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        return "npm install %s@%s timed out (registry unreachable?)" % (PACKAGE, VERSION)
    if r.returncode != 0 or installed_version() != VERSION:
        return "npm install %s@%s failed (registry unreachable?): %s" % (
            PACKAGE, VERSION, (r.stderr or r.stdout)[-1500:])
    return None


class XenApiNpmTest(PoolTest):
    def setUp(self):
        skip = os.environ.get("POOLD_SKIP_NPM") == "1"
        why = None if skip else ensure_xen_api()
        if skip:
            self.skipTest("POOLD_SKIP_NPM=1")
        if why:
            self.fail(why + " -- set POOLD_SKIP_NPM=1 to skip this test")
        super().setUp()

    def start_client(self, *args):
        # ESM resolves bare imports from the script's own directory: run a
        # copy that sits next to .npm/node_modules
        script = os.path.join(NPM_DIR, SCRIPT)
        shutil.copyfile(os.path.join(HERE, SCRIPT), script)
        env = dict(os.environ, XENAPI_TEST_TIMEOUT_MS=str(int(TOTAL * 1000)), NODE_NO_WARNINGS="1")
        proc = subprocess.Popen(["node", script] + [str(a) for a in args], cwd=NPM_DIR, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        self.addCleanup(self.stop_client, proc)
        lines = queue.Queue()

        def reader(stream, tag):
            for line in stream:
                lines.put((tag, line.rstrip("\n")))
            lines.put((tag, None))

        self.stderr_lines = []
        self.stdout_lines = []
        proc.readers = [threading.Thread(target=reader, args=(proc.stdout, "out"), daemon=True),
                        threading.Thread(target=reader, args=(proc.stderr, "err"), daemon=True)]
        for t in proc.readers:
            t.start()
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
        """The next stdout JSON object; fails on {"error":...}, EOF or timeout."""
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
                continue  # a stray log line
            if "error" in msg:
                self.fail("xen-api client error while waiting for %s: %s\nstderr: %s\npoold log:\n%s" %
                          (want, json.dumps(msg, indent=1), "\n".join(self.stderr_lines[-30:]),
                           self.pool.read_log()[-2000:]))
            if want in msg:
                return msg

    def test_xen_orchestra_client(self):
        template = self.pool.rpc("VM.get_by_name_label", "Generic VM")[0]
        watched = self.pool.rpc("VM.clone", template, "npm-watched")
        tasks_before = set(self.pool.rpc("task.get_all"))
        proc, lines = self.start_client(self.pool.port, PASSWORD, watched, "renamed-by-python")
        deadline = time.monotonic() + TOTAL + 5

        self.next_message(lines, deadline, "connected")
        counts = self.next_message(lines, deadline, "counts")["counts"]
        self.assertEqual(counts.get("pool"), 1, counts)
        self.assertEqual(counts.get("host"), 1, counts)
        self.assertEqual(counts.get("VM"), len(self.pool.rpc("VM.get_all")), counts)
        info = self.next_message(lines, deadline, "template")
        self.assertEqual(info["pool"], self.pool.rpc("pool.get_all")[0])
        self.assertEqual(info["template"], template)

        self.next_message(lines, deadline, "READY")
        changed = time.monotonic()
        self.pool.rpc("VM.set_name_label", watched, "renamed-by-python")
        upd = self.next_message(lines, deadline, "update")["update"]
        self.assertEqual(upd, {"ref": watched, "type": "VM", "name_label": "renamed-by-python",
                               "uuid": self.pool.rpc("VM.get_uuid", watched)})
        # xen-api polls with a 200 ms debounce; the change is pushed through a parked event.from
        self.assertLess(time.monotonic() - changed, 5 * SLOW)

        clone = self.next_message(lines, deadline, "clone")["clone"]
        self.assertRegex(clone, r"^OpaqueRef:[0-9a-f-]{36}$")
        self.assertEqual(self.pool.rpc("VM.get_name_label", clone), "npm-clone")
        self.assertIs(self.pool.rpc("VM.get_is_a_template", clone), True)

        left = self.next_message(lines, deadline, "tasks_left")["tasks_left"]
        self.assertEqual(left, [], "the client still sees its Async.VM.clone task after task.destroy")
        self.next_message(lines, deadline, "done")
        try:
            rc = proc.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.fail("the xen-api client did not exit after disconnect")
        self.assertEqual(rc, 0, "\n".join(self.stderr_lines[-30:]))
        # system.listMethods lists no session.get_all_records (as XAPI): the
        # client no longer warns "session.*() methods are disabled" at connect
        for t in proc.readers:
            t.join(5)
        while not lines.empty():
            tag, line = lines.get()
            if tag == "err" and line is not None:
                self.stderr_lines.append(line)
        self.assertFalse([x for x in self.stderr_lines if "methods are disabled" in x], self.stderr_lines[-30:])

        # callAsync destroys its task once settled; logout ends the session
        end = time.monotonic() + 5 * SLOW
        while set(self.pool.rpc("task.get_all")) - tasks_before and time.monotonic() < end:
            time.sleep(0.05)
        self.assertEqual(set(self.pool.rpc("task.get_all")) - tasks_before, set(),
                         "the Async.VM.clone task was not destroyed by the client")
        self.assertTrue(self.pool.alive())


if __name__ == "__main__":
    unittest.main()
