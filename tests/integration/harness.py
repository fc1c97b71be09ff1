"""
harness.py - real poold processes on loopback for the integration tests.

Pool(): `poold init` in a fresh temporary directory, then `poold --dir`
with port 0 (the kernel picks a free port, poold writes it to poold.port),
listen-address 127.0.0.1. rpc() speaks JSON-RPC over HTTPS with the Python
standard library only; xe() runs bin/xe against the pool. Every process is
stopped and every directory removed when the test ends.
"""
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# make check points POOLD_BIN at the build being tested (bin/ or build/san/bin)
BIN = os.environ.get("POOLD_BIN") or os.path.join(ROOT, "bin")
PASSWORD = "integration-secret"
# Under the sanitizers everything is slower: give daemons more time.
SLOW = 3 if os.environ.get("SAN") == "1" else 1


class XapiError(Exception):
    def __init__(self, code, params):
        super().__init__("%s %s" % (code, params))
        self.code = code
        self.params = params


class Pool:
    def __init__(self, conf=None, sets=None, valgrind=False, nofile=None):
        self.dir = tempfile.mkdtemp(prefix="poold-test-")
        self.sets = {"listen-address": "127.0.0.1", "port": "0", "login-failure-delay": "0",
                     "log-level": "debug"}
        self.sets.update(sets or {})
        self.conf = conf
        self.valgrind = valgrind
        self.nofile = nofile  # RLIMIT_NOFILE (soft and hard) of poold, or None
        self.proc = None
        self.port = None
        self._session = None
        init = subprocess.run([os.path.join(BIN, "poold"), "init", "--dir", self.dir],
                              input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
        if init.returncode != 0:
            raise RuntimeError("poold init failed: " + init.stderr)
        self.init_output = init.stdout
        self.start()

    # -- process
    def start(self):
        args = [os.path.join(BIN, "poold"), "--dir", self.dir]
        if self.conf is not None:
            path = os.path.join(self.dir, "test.conf")
            with open(path, "w") as f:
                f.write(self.conf)
            args += ["--config", path]
        for k, v in self.sets.items():
            args += ["--set", "%s=%s" % (k, v)]
        if self.valgrind:
            args = ["valgrind", "--leak-check=full", "--error-exitcode=99", "--errors-for-leak-kinds=definite",
                    "--log-file=" + os.path.join(self.dir, "valgrind.log")] + args
        portfile = os.path.join(self.dir, "poold.port")
        if os.path.exists(portfile):
            os.unlink(portfile)
        self.log = open(os.path.join(self.dir, "poold.log"), "ab")
        limit = None
        if self.nofile:
            def limit():
                resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log, preexec_fn=limit)
        deadline = time.time() + 20 * SLOW * (5 if self.valgrind else 1)
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("poold exited with %d: %s" % (self.proc.returncode, self.read_log()))
            if os.path.exists(portfile):
                with open(portfile) as f:
                    text = f.read().strip()
                if text:
                    self.port = int(text)
                    return
            time.sleep(0.02)
        raise RuntimeError("poold did not start: " + self.read_log())

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else 0
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None
        return rc

    def cpu_seconds(self):
        """CPU time poold has used so far (user + system)."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def status(self, key):
        """A line of /proc/PID/status, e.g. VmHWM, as an int (kB)."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise AssertionError("no %s in /proc/%d/status" % (key, self.proc.pid))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def read_log(self):
        try:
            with open(os.path.join(self.dir, "poold.log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- wire
    def connection(self, timeout=30):
        ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.pem"))
        ctx.check_hostname = False
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=timeout * SLOW)

    def raw(self, body, conn=None, headers=None, path="/jsonrpc", method="POST"):
        """One HTTP exchange; returns (status, headers dict, body bytes)."""
        own = conn is None
        conn = conn or self.connection()
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        out = (r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        if own:
            conn.close()
        return out

    def call(self, method, *params, conn=None, timeout=None):
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1})
        c = conn
        if c is None and timeout is not None:
            c = self.connection(timeout)
        status, headers, data = self.raw(body, conn=c)
        if c is not None and conn is None:
            c.close()
        if status != 200:
            raise RuntimeError("HTTP %d: %r" % (status, data[:200]))
        answer = json.loads(data)
        if "error" in answer:
            e = answer["error"]
            raise XapiError(e.get("message"), e.get("data"))
        return answer["result"]

    def login(self):
        return self.call("session.login_with_password", "root", PASSWORD, "2.21", "tests")

    @property
    def session(self):
        if self._session is None:
            self._session = self.login()
        return self._session

    def rpc(self, method, *params, **kw):
        """A call with the pool's session as first parameter."""
        return self.call(method, self.session, *params, **kw)

    def wait_task(self, task, timeout=30):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            rec = self.rpc("task.get_record", task)
            if rec["status"] != "pending":
                return rec
            time.sleep(0.02)
        raise AssertionError("task %s still pending" % task)

    # -- the CLI
    def xe(self, *args, check=True, env=None, input=None):
        e = dict(os.environ)
        e.update({"XE_SERVER": "127.0.0.1", "XE_PORT": str(self.port), "XE_USERNAME": "root",
                  "XE_PASSWORD": PASSWORD, "XE_CACERT": os.path.join(self.dir, "ca.pem"),
                  "HOME": self.dir})
        e.update(env or {})
        r = subprocess.run([os.path.join(BIN, "xe")] + list(args), capture_output=True, text=True,
                           env=e, input=input, timeout=60 * SLOW)
        if check and r.returncode != 0:
            raise AssertionError("xe %s failed (%d): %s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r


class FakeServer:
    """A TLS server on addr:port(0) with the certificate and key given (a pool
    member posing as the master, say). It answers nothing; it counts the
    handshakes that completed and keeps every byte received after them."""

    def __init__(self, addr, certfile, keyfile, cafile=None):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(certfile, keyfile)
        if cafile:  # ask for a client certificate, as poold does
            self.ctx.load_verify_locations(cafile)
            self.ctx.verify_mode = ssl.CERT_OPTIONAL
        self.sock = socket.socket()
        self.sock.bind((addr, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.handshakes = 0
        self.received = b""
        self.stopped = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(2)
            try:
                tls = self.ctx.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError):
                conn.close()
                continue
            self.handshakes += 1
            try:
                while True:
                    data = tls.recv(65536)
                    if not data:
                        break
                    self.received += data
            except (OSError, ssl.SSLError):
                pass
            tls.close()

    def close(self):
        self.stopped = True
        self.thread.join(5)
        self.sock.close()


def decode_cert(path):
    """A PEM certificate's subject and names, as the ssl module shows a peer's."""
    return ssl._ssl._test_decode_cert(path)


class PoolTest(unittest.TestCase):
    """A test case with one running pool in self.pool."""
    pool_sets = None
    pool_conf = None

    def setUp(self):
        self.pool = Pool(conf=self.pool_conf, sets=self.pool_sets)

    def tearDown(self):
        alive = self.pool.alive()
        rc = self.pool.stop()
        log = self.pool.read_log()
        self.pool.close()
        if getattr(self, "expect_stopped", False):
            return
        if not alive:
            self.fail("poold died during the test:\n" + log)
        # a clean exit: no sanitizer report, no leak (LeakSanitizer exits non-zero)
        self.assertEqual(rc, 0, "poold exited with %d on SIGTERM:\n%s" % (rc, log))

    def assertXapiError(self, code, fn, *args, **kw):
        with self.assertRaises(XapiError) as cm:
            fn(*args, **kw)
        self.assertEqual(cm.exception.code, code, cm.exception.params)
        return cm.exception.params


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p
