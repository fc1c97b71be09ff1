"""
test_badinput.py - hostile or broken clients and bad configuration.

Whatever a client sends, poold answers it (or drops that one connection) and
goes on serving everyone else: each test ends by checking that a valid call
still works. The command-line tests check that `poold init` and `poold
--dir` refuse bad situations with a clear message instead of a half-started
daemon.
"""
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from tests.integration.harness import BIN, PASSWORD, SLOW, Pool, PoolTest, XapiError, decode_cert

POOLD = os.path.join(BIN, "poold")


def rpc_body(method, params, id_=1):
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": id_})


class BadInputTest(PoolTest):
    def assertServing(self):
        """A fresh connection, a fresh login and a real call all work."""
        self.assertTrue(self.pool.alive(), "poold exited")
        s = self.pool.login()
        vms = self.pool.call("VM.get_all_records", s, timeout=10)
        self.assertTrue(any(r["name_label"] == "Generic VM" for r in vms.values()))

    def tls_socket(self, timeout=10):
        ctx = ssl.create_default_context(cafile=os.path.join(self.pool.dir, "ca.pem"))
        ctx.check_hostname = False
        raw = socket.create_connection(("127.0.0.1", self.pool.port), timeout=timeout * SLOW)
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")

    @staticmethod
    def read_until_closed(sock, limit=5.0):
        """Everything the server sends until it closes (or LIMIT seconds)."""
        data = b""
        deadline = time.monotonic() + limit
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except (ConnectionError, ssl.SSLError, OSError):
                return data, True
            if not chunk:
                return data, True
            data += chunk
        return data, False

    def json_answer(self, body, **kw):
        status, headers, data = self.pool.raw(body, **kw)
        self.assertEqual(headers.get("content-type"), "application/json", (status, data[:200]))
        return status, json.loads(data)

    # -- JSON-RPC level
    def test_malformed_json(self):
        for body in ('{"jsonrpc": "2.0", "method": ', "not json at all", "", "\x00\xff\xfe", "[1, 2,]"):
            status, answer = self.json_answer(body)
            self.assertEqual(status, 200, body)
            self.assertIn("error", answer, body)
            self.assertEqual(answer["error"]["code"], -32700, (body, answer))
            self.assertIsInstance(answer["error"]["message"], str)
        self.assertServing()

    def test_wrong_json_types(self):
        params = self.assertXapiError("FIELD_TYPE_ERROR", self.pool.rpc, "VM.get_record", 42)
        self.assertEqual(len(params), 1, params)
        self.assertXapiError("FIELD_TYPE_ERROR", self.pool.rpc, "VM.set_name_label",
                             self.pool.rpc("VM.get_all")[0], {"not": "a string"})
        self.assertXapiError("FIELD_TYPE_ERROR", self.pool.rpc, "VM.create", "not a record")
        self.assertXapiError("SESSION_INVALID", self.pool.call, "VM.get_all", 12345)
        self.assertXapiError("SESSION_INVALID", self.pool.call, "VM.get_all", None)
        self.assertServing()

    def test_wrong_argument_count(self):
        params = self.assertXapiError("MESSAGE_PARAMETER_COUNT_MISMATCH", self.pool.rpc, "VM.get_name_label")
        self.assertEqual(params, ["VM.get_name_label", "1", "0"])
        self.assertXapiError("MESSAGE_PARAMETER_COUNT_MISMATCH", self.pool.rpc, "VM.get_all", *range(50))
        self.assertServing()

    def test_unknown_method(self):
        params = self.assertXapiError("MESSAGE_METHOD_UNKNOWN", self.pool.rpc, "VM.explode")
        self.assertEqual(params, ["VM.explode"])
        params = self.assertXapiError("MESSAGE_METHOD_UNKNOWN", self.pool.rpc, "Async.VM.explode")
        self.assertEqual(params[0][-len("VM.explode"):], "VM.explode")
        self.assertXapiError("MESSAGE_METHOD_UNKNOWN", self.pool.call, "")
        # a big request is parsed for a client with a session (without one: test_dos)
        self.assertXapiError("MESSAGE_METHOD_UNKNOWN", self.pool.rpc, "x" * 100000)
        self.assertServing()

    def test_missing_session(self):
        with self.assertRaises(XapiError) as cm:
            self.pool.call("VM.get_all")
        self.assertIn(cm.exception.code, ("MESSAGE_PARAMETER_COUNT_MISMATCH", "SESSION_INVALID"))
        vm = self.pool.rpc("VM.get_all")[0]
        # the VM ref where the session belongs
        with self.assertRaises(XapiError) as cm:
            self.pool.call("VM.get_record", vm)
        self.assertIn(cm.exception.code, ("MESSAGE_PARAMETER_COUNT_MISMATCH", "SESSION_INVALID"))
        self.assertServing()

    def test_invalid_session(self):
        for s in ("OpaqueRef:00000000-0000-0000-0000-000000000000", "OpaqueRef:NULL", "", "garbage"):
            params = self.assertXapiError("SESSION_INVALID", self.pool.call, "VM.get_all", s)
            self.assertEqual(params, [s])
        # a ref of another class is not a session
        vm = self.pool.rpc("VM.get_all")[0]
        self.assertXapiError("SESSION_INVALID", self.pool.call, "VM.get_all", vm)
        self.assertServing()

    def test_bogus_envelopes(self):
        s = self.pool.session
        bodies = [
            json.dumps({"jsonrpc": "2.0", "params": [s], "id": 1}),                       # no method
            json.dumps({"jsonrpc": "2.0", "method": 42, "params": [s], "id": 1}),        # method not a string
            json.dumps({"jsonrpc": "2.0", "method": "VM.get_all", "params": "x", "id": 1}),  # params not a list
            json.dumps({"jsonrpc": "2.0", "method": "VM.get_all", "params": 7, "id": 1}),
            json.dumps({"jsonrpc": "2.0", "method": "VM.get_all", "params": [s]}),        # id missing
            json.dumps({"jsonrpc": "2.0", "method": "VM.get_all", "params": [s], "id": [1]}),
            json.dumps([{"jsonrpc": "2.0", "method": "VM.get_all", "params": [s], "id": 1}]),  # a batch
            json.dumps("VM.get_all"),
            "null",
        ]
        for body in bodies:
            status, answer = self.json_answer(body)
            self.assertEqual(status, 200, body)
            self.assertIn("error", answer, body)
            self.assertNotIn("result", answer, body)
        self.assertServing()

    def test_extremely_deep_nesting(self):
        s = self.pool.session
        for depth in (5000, 200000):
            deep = "[" * depth + "]" * depth
            body = '{"jsonrpc": "2.0", "method": "VM.get_all", "params": ["%s", %s], "id": 1}' % (s, deep)
            status, headers, data = self.pool.raw(body)
            self.assertIn(status, (200, 400, 413), data[:200])
            if status == 200:
                self.assertIn("error", json.loads(data))
        deep = '{"a":' * 100000 + "1" + "}" * 100000
        status, headers, data = self.pool.raw(deep)
        self.assertIn(status, (200, 400, 413))
        self.assertServing()

    # -- HTTP level
    def test_get_is_405_unknown_path_404_xmlrpc_served(self):
        status, headers, data = self.pool.raw(None, method="GET")
        self.assertEqual(status, 405)
        status, headers, data = self.pool.raw(rpc_body("VM.get_all", [self.pool.session]), path="/no/such/path")
        self.assertEqual(status, 404)
        # XML-RPC at / is XAPI's own protocol (tests/integration/test_xmlrpc.py)
        xml = ("<?xml version='1.0'?><methodCall><methodName>session.login_with_password</methodName>"
               "<params><param><value><string>root</string></value></param>"
               "<param><value><string>%s</string></value></param></params></methodCall>" % PASSWORD)
        status, headers, data = self.pool.raw(xml, path="/", headers={"Content-Type": "text/xml"})
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/xml")
        self.assertIn(b"<name>Status</name><value>Success</value>", data)
        self.assertServing()

    def test_truncated_body(self):
        for _ in range(3):
            sock = self.tls_socket()
            body = rpc_body("VM.get_all", [self.pool.session]).encode()
            sock.sendall(b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % (len(body) + 1000) + body[:10])
            time.sleep(0.1)
            sock.close()
        self.assertServing()

    def test_huge_header(self):
        sock = self.tls_socket()
        body = rpc_body("VM.get_all", [self.pool.session]).encode()
        try:
            sock.sendall(b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (4 << 20) +
                         b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        except (ConnectionError, ssl.SSLError, OSError):
            pass  # the server may hang up before it has read everything
        data, closed = self.read_until_closed(sock)
        sock.close()
        self.assertFalse(data.startswith(b"HTTP/1.1 200"), data[:200])
        self.assertServing()

    def test_client_disconnecting_while_event_from_is_parked(self):
        s = self.pool.session
        vm = self.pool.rpc("VM.clone", self.pool.rpc("VM.get_by_name_label", "Generic VM")[0], "w")
        token = self.pool.rpc("event.from", ["vm"], "", 0.0)["token"]
        body = rpc_body("event.from", [s, ["vm"], token, 30.0]).encode()
        for i in range(5):
            socks = []
            for _ in range(4):
                sock = self.tls_socket()
                sock.sendall(b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body) + body)
                socks.append(sock)
            time.sleep(0.2)
            for j, sock in enumerate(socks):
                if j % 2:
                    sock.shutdown(socket.SHUT_RDWR)  # abrupt, no TLS close_notify
                sock.close()
            time.sleep(0.1)
            # a change now must not reach the departed waiters
            self.pool.rpc("VM.set_name_label", vm, "change %d" % i)
            self.assertServing()
        # and a live waiter still gets woken
        token = self.pool.rpc("event.from", ["vm"], "", 0.0)["token"]
        out = {}
        t = threading.Thread(target=lambda: out.update(ev=self.pool.rpc("event.from", ["vm"], token, 20.0)))
        t.start()
        time.sleep(0.3)
        self.pool.rpc("VM.set_name_label", vm, "final")
        t.join(10)
        self.assertIn(vm, [e["ref"] for e in out["ev"]["events"]])

    def test_no_cross_origin_headers(self):
        # XAPI sends none: a web page elsewhere may not read poold's answers
        answers = [self.pool.raw(rpc_body("VM.get_all", [self.pool.session])),
                   self.pool.raw(rpc_body("VM.get_all", [self.pool.session]), path="/nope"),
                   self.pool.raw(None, method="GET"),
                   self.pool.raw(None, method="OPTIONS", headers={"Origin": "https://evil.example"})]
        for status, headers, data in answers:
            self.assertNotIn("access-control-allow-origin", headers, (status, headers))
            self.assertNotIn("access-control-allow-headers", headers, (status, headers))

    def raw_exchange(self, head, body):
        """Send head + body on a fresh connection; the answer's status line and whether it closed."""
        sock = self.tls_socket()
        sock.sendall(head + body)
        data, closed = self.read_until_closed(sock, limit=3.0 * SLOW)
        sock.close()
        return data.split(b"\r\n", 1)[0], closed, data

    def test_conflicting_content_lengths_are_refused(self):
        body = rpc_body("VM.get_all", [self.pool.session]).encode()
        smuggled = b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
        head = (b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(body), len(body) + len(smuggled)))
        line, closed, data = self.raw_exchange(head, body + smuggled)
        self.assertEqual(line, b"HTTP/1.1 400 Bad Request", data[:300])
        self.assertTrue(closed, "the connection stayed open after conflicting Content-Length headers")
        self.assertEqual(data.count(b"HTTP/1.1"), 1, "the rest of the body was read as a second request")
        # Content-Length and Transfer-Encoding together: refused the same way
        head = (b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % (len(body) + 10))
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        line, closed, data = self.raw_exchange(head, chunked)
        self.assertEqual(line, b"HTTP/1.1 400 Bad Request", data[:300])
        # the same length twice is one length
        head = (b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
                b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(body), len(body)))
        line, closed, data = self.raw_exchange(head, body)
        self.assertEqual(line, b"HTTP/1.1 200 OK", data[:300])
        self.assertServing()

    # -- login
    def test_wrong_password(self):
        params = self.assertXapiError("SESSION_AUTHENTICATION_FAILED", self.pool.call,
                                      "session.login_with_password", "root", "wrong")
        self.assertEqual(params[0], "root")
        params = self.assertXapiError("SESSION_AUTHENTICATION_FAILED", self.pool.call,
                                      "session.login_with_password", "nobody", PASSWORD)
        self.assertEqual(params[0], "nobody")
        self.assertServing()


class ConfigLimitsTest(PoolTest):
    pool_sets = {"max-request-size": "64KiB", "connection-timeout": "1s", "login-failure-delay": "500ms"}

    def tls_socket(self):
        return BadInputTest.tls_socket(self)

    def assertServing(self):
        BadInputTest.assertServing(self)

    def test_body_over_max_request_size_gets_413(self):
        big = rpc_body("VM.set_name_label", [self.pool.session, "OpaqueRef:x", "a" * (1 << 20)]).encode()
        sock = self.tls_socket()
        try:
            sock.sendall(b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(big) + big)
        except (ConnectionError, ssl.SSLError, OSError):
            pass  # the server may answer and hang up before reading it all
        data, closed = BadInputTest.read_until_closed(sock)
        sock.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 413"), data[:200])
        # a body just under the limit is still fine
        ok = rpc_body("VM.get_all", [self.pool.session]) + " " * (60 * 1024)
        status, headers, answer = self.pool.raw(ok)
        self.assertEqual(status, 200)
        self.assertServing()

    def test_silent_tls_client_is_closed_after_connection_timeout(self):
        sock = self.tls_socket()
        t0 = time.monotonic()
        data, closed = BadInputTest.read_until_closed(sock, limit=6.0 * SLOW)
        took = time.monotonic() - t0
        sock.close()
        self.assertTrue(closed, "a silent connection was kept open for %.1f s" % took)
        self.assertEqual(data, b"")
        self.assertGreaterEqual(took, 0.5)
        self.assertServing()

    def test_silent_tcp_client_is_closed(self):
        sock = socket.create_connection(("127.0.0.1", self.pool.port), timeout=10)
        t0 = time.monotonic()
        data, closed = BadInputTest.read_until_closed(sock, limit=6.0 * SLOW)
        sock.close()
        self.assertTrue(closed, "a TCP connection without a TLS handshake was kept open for %.1f s"
                        % (time.monotonic() - t0))
        self.assertServing()

    def test_plain_http_gets_no_http_answer(self):
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", self.pool.port), timeout=10)
            body = rpc_body("session.login_with_password", ["root", PASSWORD]).encode()
            sock.sendall(b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
            data, closed = BadInputTest.read_until_closed(sock, limit=5.0 * SLOW)
            sock.close()
            self.assertFalse(data.startswith(b"HTTP/"), data[:200])
            self.assertNotIn(b"OpaqueRef", data)
            self.assertTrue(closed, "the server kept a plain-HTTP connection open")
        self.assertServing()

    def test_failed_login_is_delayed_without_blocking_others(self):
        s = self.pool.login()
        out = {}

        def bad():
            t0 = time.monotonic()
            try:
                self.pool.call("session.login_with_password", "root", "wrong")
            except XapiError as e:
                out["err"] = e
            out["took"] = time.monotonic() - t0

        t = threading.Thread(target=bad)
        t.start()
        time.sleep(0.1)
        t0 = time.monotonic()
        self.pool.call("VM.get_all", s)
        fast = time.monotonic() - t0
        t.join(10)
        self.assertEqual(out["err"].code, "SESSION_AUTHENTICATION_FAILED")
        self.assertEqual(out["err"].params[0], "root")
        self.assertGreaterEqual(out["took"], 0.4)
        self.assertLess(fast, 0.3 * SLOW, "a valid call waited for someone else's failed login")
        self.assertServing()


class CommandLineTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="poold-cli-test-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_poold(self, *args, input=None, timeout=15):
        try:
            return subprocess.run([POOLD] + list(args), input=input, capture_output=True, text=True,
                                  timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.fail("poold %s did not exit (it should refuse at once)" % " ".join(args))

    def init(self):
        d = os.path.join(self.tmp, "pool")
        r = self.run_poold("init", "--dir", d, input=PASSWORD + "\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        return d

    def test_init_over_an_existing_pool_is_refused(self):
        d = self.init()
        with open(os.path.join(d, "pool.db"), "rb") as f:
            before = f.read()
        r = self.run_poold("init", "--dir", d, input="other-password\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(d, r.stderr)
        self.assertIn("already", r.stderr)
        with open(os.path.join(d, "pool.db"), "rb") as f:
            self.assertEqual(f.read(), before, "the existing pool database was touched")

    def test_master_certificate_names(self):
        d = os.path.join(self.tmp, "named")
        r = self.run_poold("init", "--dir", d, "--name", "pool.example", "--address", "10.1.2.3", "--address",
                           "fd00::7", input=PASSWORD + "\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        cert = decode_cert(os.path.join(d, "server.pem"))
        self.assertEqual(cert["subject"], ((("commonName", "pool-master"),),))
        names = [v for _, v in cert["subjectAltName"]]
        for name in ("localhost", "127.0.0.1", "pool.example", "10.1.2.3", "FD00:0:0:0:0:0:0:7"):
            self.assertIn(name, names)
        for bad in (["--address", "pool.example"], ["--name", "10.1.2.3"], ["--name", "a,DNS:evil"],
                    ["--address", "10.1.2.3,IP:10.9.9.9"]):
            r = self.run_poold("init", "--dir", os.path.join(self.tmp, "bad"), *bad, input=PASSWORD + "\n")
            self.assertNotEqual(r.returncode, 0, bad)
            self.assertIn(bad[1], r.stderr)
            self.assertFalse(os.path.exists(os.path.join(self.tmp, "bad", "ca.pem")))

    @staticmethod
    def serving(d):
        """A harness Pool for the pool directory d (not started)."""
        p = Pool.__new__(Pool)
        p.dir, p.sets, p.conf, p.valgrind, p.nofile, p.proc, p._session = d, {
            "listen-address": "127.0.0.1", "port": "0", "login-failure-delay": "0"}, None, False, None, None, None
        return p

    def test_a_master_certificate_from_before_is_reissued(self):
        d = self.init()
        # poold's certificate as poold init made it before the master had a CN of its own
        key, csr, crt, ext = (os.path.join(self.tmp, n) for n in ("old.key", "old.csr", "old.pem", "old.ext"))
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:oldhost\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n")
        for args in (["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", key, "-out", csr, "-subj", "/CN=oldhost"],
                     ["x509", "-req", "-in", csr, "-CA", os.path.join(d, "ca.pem"), "-CAkey", os.path.join(d, "ca.key"),
                      "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext]):
            r = subprocess.run(["openssl"] + args, capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
        shutil.copy(crt, os.path.join(d, "server.pem"))
        shutil.copy(key, os.path.join(d, "server.key"))
        p = self.serving(d)
        p.start()
        try:
            self.assertTrue(p.login())
        finally:
            p.stop()
        cert = decode_cert(os.path.join(d, "server.pem"))
        self.assertEqual(cert["subject"], ((("commonName", "pool-master"),),))
        self.assertEqual(cert["subjectAltName"], (("DNS", "localhost"), ("IP Address", "127.0.0.1"), ("DNS", "oldhost")))
        self.assertEqual(os.stat(os.path.join(d, "server.key")).st_mode & 0o777, 0o600)

    def test_pool_database_is_private(self):
        d = self.init()
        self.assertEqual(os.stat(os.path.join(d, "pool.db")).st_mode & 0o777, 0o600)
        p = self.serving(d)
        p.start()
        try:
            p.login()  # writes: the WAL files exist now
            for name in ("pool.db", "pool.db-wal", "pool.db-shm"):
                self.assertEqual(os.stat(os.path.join(d, name)).st_mode & 0o777, 0o600, name)
        finally:
            p.stop()
        # a pool made before this rule: fixed when poold starts
        for name in ("pool.db", "pool.db-wal", "pool.db-shm"):
            if os.path.exists(os.path.join(d, name)):
                os.chmod(os.path.join(d, name), 0o644)
        p.start()
        try:
            self.assertEqual(os.stat(os.path.join(d, "pool.db")).st_mode & 0o777, 0o600)
        finally:
            p.stop()

    def test_serving_a_directory_without_a_pool_fails_clearly(self):
        empty = os.path.join(self.tmp, "empty")
        os.mkdir(empty)
        for d in (empty, os.path.join(self.tmp, "does-not-exist")):
            r = self.run_poold("--dir", d, "--set", "port=0", "--set", "listen-address=127.0.0.1")
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(d, r.stderr)
            self.assertIn("poold init", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(empty, "poold.port")))

    def test_bad_config_value_names_file_line_key_value_and_form(self):
        d = self.init()
        conf = os.path.join(self.tmp, "bad.conf")
        with open(conf, "w") as f:
            f.write("# poold settings\nlisten-address: 127.0.0.1\nport: notanumber\n")
        r = self.run_poold("--dir", d, "--config", conf)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(conf + ":3", r.stderr)
        self.assertIn("port", r.stderr)
        self.assertIn("notanumber", r.stderr)
        self.assertIn("integer", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(d, "poold.port")))

    def test_bad_set_value_is_refused(self):
        d = self.init()
        r = self.run_poold("--dir", d, "--set", "max-request-size=huge", "--set", "port=0")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("max-request-size", r.stderr)
        self.assertIn("huge", r.stderr)


class ConfigFileTest(unittest.TestCase):
    def start(self, conf):
        p = Pool(conf=conf)
        self.addCleanup(p.close)
        return p

    def test_legacy_key_equals_value_file_is_accepted(self):
        p = self.start("# legacy xapi.conf form\nevacuation-batch-size = 4\n")
        self.assertTrue(p.alive())
        self.assertIsInstance(p.rpc("VM.get_all"), list)

    def test_unknown_key_only_warns(self):
        p = self.start("no-such-setting: 12\n")
        self.assertTrue(p.alive())
        self.assertIsInstance(p.rpc("VM.get_all"), list)
        self.assertIn("no-such-setting", p.read_log())


if __name__ == "__main__":
    unittest.main()


class ExpiryTest(PoolTest):
    """A session idle for longer than session-timeout is gone."""
    pool_sets = {"session-timeout": "1s"}

    def test_a_session_in_use_does_not_expire(self):
        s = self.pool.login()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 4.0:  # four timeouts, used every 0.3 s
            self.assertEqual(len(self.pool.call("VM.get_all", s)), 1)
            time.sleep(0.3)
        time.sleep(2.5)
        self.assertXapiError("SESSION_INVALID", self.pool.call, "VM.get_all", s)

    def test_expired_session_is_invalid(self):
        s = self.pool.login()
        self.assertEqual(len(self.pool.call("VM.get_all", s)), 1)
        time.sleep(2.5)  # activity is kept to the second: more than 1 s + 1 s
        params = self.assertXapiError("SESSION_INVALID", self.pool.call, "VM.get_all", s)
        self.assertEqual(params, [s])
        # a new login works
        self.assertTrue(self.pool.call("VM.get_all", self.pool.login()))
