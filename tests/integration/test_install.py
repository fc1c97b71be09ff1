"""
test_install.py - `make install DESTDIR=...` as an operator (or a Debian
package) would use it: the layout, the systemd units (systemd-analyze
verify), the man pages (groff with every warning on), xe's bash completion,
--version on every binary; then the installed binaries run a pool of their
own (poold under a fake systemd: READY=1 on $NOTIFY_SOCKET, journald
priorities on stderr; an agent that finds pool-simdom in libexec and whose
listen-address alone says where poold reaches it), pool.db is backed up
with sqlite3 while poold serves, and the copy restores the pool.
"""
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.request

from tests.integration.harness import ROOT, SLOW
from tests.integration.pooltest import wait_until

PREFIX = "/usr"
VERSION = re.search(r'POOLD_VERSION "([^"]+)"', open(os.path.join(ROOT, "lib", "version.h")).read()).group(1)
FILES = {  # path under DESTDIR: mode
    "usr/sbin/poold": 0o755, "usr/sbin/pool-agent": 0o755, "usr/bin/xe": 0o755,
    "usr/libexec/poold/pool-simdom": 0o755,
    "usr/lib/systemd/system/poold.service": 0o644, "usr/lib/systemd/system/pool-agent.service": 0o644,
    "usr/share/man/man8/poold.8": 0o644, "usr/share/man/man8/pool-agent.8": 0o644,
    "usr/share/man/man1/xe.1": 0o644, "usr/share/man/man5/xapi.conf.5": 0o644,
    "usr/share/man/man5/pool-agent.conf.5": 0o644,
    "usr/share/bash-completion/completions/xe": 0o644,
    "usr/share/poold/xapi.conf.sample": 0o644, "usr/share/poold/pool-agent.conf.sample": 0o644,
    "etc/poold/xapi.conf": 0o644, "etc/pool-agent.conf": 0o600,  # join-token lives there
}


def make(*args):
    san = ["SAN=1"] if os.environ.get("SAN") == "1" else []
    r = subprocess.run(["make", "--no-print-directory", "-C", ROOT] + san + list(args), capture_output=True,
                       text=True, timeout=900)
    if r.returncode:
        raise AssertionError("make %s failed:\n%s%s" % (" ".join(args), r.stdout[-3000:], r.stderr[-3000:]))
    return r


class InstallLayoutTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dest = tempfile.mkdtemp(prefix="poold-install-")
        make("install", "DESTDIR=" + cls.dest, "PREFIX=" + PREFIX)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dest, ignore_errors=True)

    def path(self, rel):
        return os.path.join(self.dest, rel)

    def test_layout(self):
        for rel, mode in FILES.items():
            st = os.stat(self.path(rel))
            self.assertEqual(st.st_mode & 0o777, mode, rel)
        # the daemons are not on a user's PATH; pool-simdom on nobody's
        self.assertFalse(os.path.exists(self.path("usr/bin/poold")))
        self.assertFalse(os.path.exists(self.path("usr/bin/pool-simdom")))
        self.assertFalse(os.path.exists(self.path("usr/sbin/pool-simdom")))

    def test_every_binary_has_version(self):
        for rel, name in (("usr/sbin/poold", "poold"), ("usr/sbin/pool-agent", "pool-agent"), ("usr/bin/xe", "xe"),
                          ("usr/libexec/poold/pool-simdom", "pool-simdom")):
            r = subprocess.run([self.path(rel), "--version"], capture_output=True, text=True, timeout=30)
            self.assertEqual((r.returncode, r.stdout), (0, "%s %s\n" % (name, VERSION)), rel)
        for rel in ("usr/sbin/poold", "usr/sbin/pool-agent"):
            r = subprocess.run([self.path(rel), "--help"], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0)
            self.assertIn("usage:", r.stdout)

    def test_units(self):
        for name in ("poold", "pool-agent"):
            text = open(self.path("usr/lib/systemd/system/%s.service" % name)).read()
            self.assertIn("Type=notify", text)
            self.assertIn("ExecStart=/usr/sbin/%s " % name, text)
            self.assertIn("/etc/", text)
            self.assertNotIn("@", text.replace("man:", ""), "a template placeholder left")
            self.assertIn("StateDirectory=%s" % name, text)
        self.assertIn("KillMode=process", open(self.path("usr/lib/systemd/system/pool-agent.service")).read(),
                      "stopping the agent must leave its VMs running")
        if not shutil.which("systemd-analyze"):
            self.skipTest("no systemd-analyze")
        for name in ("poold", "pool-agent"):
            # verify the unit as installed, its binaries found under DESTDIR
            text = open(self.path("usr/lib/systemd/system/%s.service" % name)).read()
            unit = os.path.join(self.dest, "%s.service" % name)
            with open(unit, "w") as f:
                f.write(text.replace("/usr/sbin/", self.path("usr/sbin") + "/"))
            r = subprocess.run(["systemd-analyze", "verify", "--man=no", unit], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""), name)

    def test_man_pages(self):
        pages = [p for p in FILES if "/man/" in p]
        for rel in pages:
            r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", self.path(rel)], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual((r.returncode, r.stderr), (0, ""), rel)
            if shutil.which("man"):
                r = subprocess.run(["man", "-l", self.path(rel)], capture_output=True, text=True, timeout=60,
                                   env=dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="80"))
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("NAME", r.stdout)
        # the configuration pages say what the samples say: every key, its default
        for page, sample in (("xapi.conf.5", "xapi.conf.sample"), ("pool-agent.conf.5", "pool-agent.conf.sample")):
            text = open(self.path("usr/share/man/man5/" + page)).read()
            keys = re.findall(r"^([a-z][a-z0-9-]*): (.*)$", open(os.path.join(ROOT, "etc", sample)).read(), re.M)
            self.assertGreater(len(keys), 10)
            for k, v in keys:
                self.assertIn("\\fB%s\\fR: %s" % (k, v.replace("\\", "\\e")), text, page)

    def test_bash_completion(self):
        bindir = self.path("usr/bin")
        env = dict(os.environ, PATH=bindir + ":" + os.environ["PATH"], HOME=self.dest)
        for k in list(env):
            if k.startswith("XE_"):
                del env[k]

        def complete(line):
            script = ('source %s && complete -p xe && COMP_LINE=%s; COMP_POINT=${#COMP_LINE}; _xe; '
                      'printf "%%s\\n" "${COMPREPLY[@]}"' % (self.path("usr/share/bash-completion/completions/xe"),
                                                            "'" + line + "'"))
            r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            lines = r.stdout.splitlines()
            self.assertEqual(lines[0], "complete -F _xe xe")
            return lines[1:]
        # commands and parameters need no server: xe help answers them
        self.assertEqual(complete("xe vm-mi"), ["vm-migrate"])
        self.assertIn("vm-start", complete("xe vm-"))
        params = complete("xe vm-migrate ")
        for p in ("live=", "host=", "vm=", "uuid=", "--multiple"):
            self.assertIn(p, params)
        self.assertEqual(complete("xe vm-migrate live="), ["true", "false"])
        self.assertEqual(complete("xe --mini"), ["--minimal"])

    def test_reinstall_keeps_configuration_and_uninstall_keeps_it_too(self):
        dest = tempfile.mkdtemp(prefix="poold-reinstall-")
        try:
            make("install", "DESTDIR=" + dest, "PREFIX=" + PREFIX)
            conf = os.path.join(dest, "etc/pool-agent.conf")
            with open(conf, "a") as f:
                f.write('master: "10.0.0.1:443"\n')
            edited = open(conf).read()
            make("install", "DESTDIR=" + dest, "PREFIX=" + PREFIX)
            self.assertEqual(open(conf).read(), edited, "a reinstall overwrote the operator's configuration")
            make("uninstall", "DESTDIR=" + dest, "PREFIX=" + PREFIX)
            left = sorted(os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs)
            self.assertEqual(left, ["etc/pool-agent.conf", "etc/poold/xapi.conf"])
        finally:
            shutil.rmtree(dest, ignore_errors=True)


class InstalledPoolTest(unittest.TestCase):
    """The installed binaries run a pool of their own, as the units would."""

    def setUp(self):
        self.dest = tempfile.mkdtemp(prefix="poold-installed-")
        make("install", "DESTDIR=" + self.dest, "PREFIX=" + PREFIX)
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        # the agent's domains outlive it: stop ours, found by their state dir
        for e in os.listdir("/proc"):
            try:
                with open("/proc/%s/cmdline" % e, "rb") as f:
                    args = [x.decode(errors="replace") for x in f.read().split(b"\0") if x]
            except OSError:
                continue
            opt = dict(zip(args[1::2], args[2::2]))
            if args and os.path.basename(args[0]) == "pool-simdom" and \
                    opt.get("--state-dir", "").startswith(self.dest + os.sep):
                os.kill(int(e), 9)
        shutil.rmtree(self.dest, ignore_errors=True)

    def sbin(self, name):
        return os.path.join(self.dest, "usr/sbin", name)

    def spawn(self, args, log, env=None):
        out = open(log, "ab")
        p = subprocess.Popen(args, stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env,
                             start_new_session=True)
        out.close()
        self.procs.append(p)
        return p

    def call(self, port, ca, method, *params):
        ctx = ssl.create_default_context(cafile=ca)
        ctx.check_hostname = False
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1}).encode()
        req = urllib.request.Request("https://127.0.0.1:%d/jsonrpc" % port, body,
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=ctx, timeout=60 * SLOW) as r:
            answer = json.loads(r.read())
        if "error" in answer:
            raise AssertionError("%s: %s" % (method, answer["error"]))
        return answer["result"]

    def start_poold(self, pdir, log, sets=()):
        """poold as systemd would run it: NOTIFY_SOCKET, stderr the journal."""
        notify = os.path.join(self.dest, "notify-%d" % len(self.procs))
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(notify)
        sock.settimeout(30 * SLOW)
        open(log, "ab").close()
        st = os.stat(log)
        env = dict(os.environ, NOTIFY_SOCKET=notify, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
        args = [self.sbin("poold"), "--dir", pdir, "--set", "listen-address=127.0.0.1", "--set", "port=0",
                "--set", "host-heartbeat-timeout=3s"]
        for s in sets:
            args += ["--set", s]
        self.spawn(args, log, env)
        msg = sock.recv(100)  # sent once the port is bound
        sock.close()
        self.assertEqual(msg, b"READY=1")
        port = int(open(os.path.join(pdir, "poold.port")).read())
        return port

    def test_installed_pool_runs_a_vm_and_its_database_backs_up_live(self):
        pdir = os.path.join(self.dest, "var/lib/poold")
        os.makedirs(os.path.dirname(pdir))
        init = subprocess.run([self.sbin("poold"), "init", "--dir", pdir], input="install-secret\n",
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(init.returncode, 0, init.stderr)
        fingerprint = init.stdout.split("SHA-256): ")[1].strip()
        log = os.path.join(self.dest, "poold.log")
        port = self.start_poold(pdir, log)
        ca = os.path.join(pdir, "ca.pem")
        s = self.call(port, ca, "session.login_with_password", "root", "install-secret", "2.21", "t")
        # journald's priorities, no timestamps: the journal adds them
        lines = open(log).read().splitlines()
        self.assertTrue(lines and all(re.match(r"<[3467]>(DEBUG|INFO|WARN|ERROR): ", x) for x in lines), lines[:5])
        self.assertTrue([x for x in lines if x.startswith("<6>INFO: serving XAPI")], lines)
        # an agent from the installed tree, configured as the README says, with
        # a single listen-address and no address: poold reaches it there
        state = os.path.join(self.dest, "var/lib/pool-agent")
        conf = os.path.join(self.dest, "etc/pool-agent.conf")
        settings = {"master": '"127.0.0.1:%d"' % port, "ca-fingerprint": '"%s"' % fingerprint,
                    "join-token": '"%s"' % self.call(port, ca, "pool.create_join_token", s), "state-dir": state,
                    "listen-address": "127.0.0.42", "port": "0", "name": "inst1", "sim-memory": "1GiB",
                    "heartbeat-interval": "0.5s"}
        text = open(conf).read()
        for k, v in settings.items():  # the installed sample, edited as an operator would
            text, n = re.subn(r"^%s: .*$" % re.escape(k), "%s: %s" % (k, v), text, flags=re.M)
            self.assertEqual(n, 1, k)
        with open(conf, "w") as f:
            f.write(text)
        self.spawn([self.sbin("pool-agent"), "--config", conf], os.path.join(self.dest, "agent.log"))
        host = wait_until(lambda: self.call(port, ca, "host.get_by_name_label", s, "inst1"), 30, "the host joins")[0]
        self.assertEqual(self.call(port, ca, "host.get_address", s, host), "127.0.0.42")
        vm = self.call(port, ca, "VM.create", s, {"name_label": "inst-vm", "memory_static_max": 64 << 20,
                                                  "memory_dynamic_max": 64 << 20, "memory_dynamic_min": 64 << 20,
                                                  "memory_static_min": 16 << 20})
        wait_until(lambda: self.call(port, ca, "host_metrics.get_live", s,
                                     self.call(port, ca, "host.get_metrics", s, host)), 20, "the host live")
        self.call(port, ca, "VM.start_on", s, vm, host, False, False)  # pool-simdom from libexec
        self.assertEqual(self.call(port, ca, "VM.get_power_state", s, vm), "Running")
        # a backup while poold serves (WAL): sqlite3's online backup
        backup = os.path.join(self.dest, "pool-backup.db")
        r = subprocess.run(["sqlite3", os.path.join(pdir, "pool.db"), ".backup '%s'" % backup], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        r = subprocess.run(["sqlite3", backup, "PRAGMA integrity_check;"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.stdout.strip(), "ok")
        self.call(port, ca, "VM.hard_shutdown", s, vm)
        # restore: the pool directory's keys with the copy as pool.db
        restored = os.path.join(self.dest, "restored")
        os.makedirs(restored, mode=0o700)
        for f in ("ca.pem", "ca.key", "server.pem", "server.key"):
            shutil.copy2(os.path.join(pdir, f), restored)
        shutil.copy2(backup, os.path.join(restored, "pool.db"))
        os.chmod(os.path.join(restored, "pool.db"), 0o600)
        port2 = self.start_poold(restored, os.path.join(self.dest, "restored.log"))
        s2 = self.call(port2, ca, "session.login_with_password", "root", "install-secret", "2.21", "t")
        self.assertEqual(self.call(port2, ca, "VM.get_by_name_label", s2, "inst-vm"), [vm])
        self.assertEqual(self.call(port2, ca, "VM.get_power_state", s2, vm), "Running",
                         "the copy is the pool as it was when backed up")


if __name__ == "__main__":
    unittest.main()
