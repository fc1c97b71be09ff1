"""
test_join.py - joining the pool, and what is refused: a token used twice, an
expired token, an unknown token, a master whose CA does not have the
fingerprint the operator gave, a host of another CPU vendor, and agent calls
with no client certificate or one from another CA. Each refusal says why
(the agent exits non-zero with the reason in its log; the API answers a XAPI
error) and leaves nothing half-registered: the pool has as many hosts as
before, no host record of that name, no certificate in the agent's state
directory.

The pool is a devpool of one host; the agents under test are started here
directly (agent.conf written as devpool writes it) in subdirectories of the
devpool's directory, with a devpool.pid file each, so `devpool down` stops
them too.
"""
import http.client
import json
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import time
import unittest

from tests.integration.harness import BIN, SLOW, FakeServer, XapiError, decode_cert
from tests.integration.pooltest import DevPool, wait_until

HEARTBEAT = 0.5


def norm_fp(fp):
    return fp.replace(":", "").lower()


class JoinTest(unittest.TestCase):
    pool = None

    @classmethod
    def setUpClass(cls):
        cls.pool = DevPool(1, host_memory_mib=1024, heartbeat=HEARTBEAT, extra=("--no-sr",))
        with open(os.path.join(cls.pool.dir, "fingerprint")) as f:
            cls.fingerprint = f.read().strip()
        cls.next_ip = 10

    @classmethod
    def tearDownClass(cls):
        if cls.pool:
            cls.pool.close()

    def setUp(self):
        self.agents = []
        self.ips = {}

    def tearDown(self):
        for p in self.agents:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    # -- helpers
    def rpc(self, *a):
        return self.pool.rpc(*a)

    def host_names(self):
        return sorted(r["name_label"] for r in self.rpc("host.get_all_records").values())

    def new_agent(self, name, token, fingerprint=None, extra=(), address=None):
        """Write the agent.conf devpool would write for a new host (address: what it
        reports, if not its own); returns its directory."""
        ip = "127.0.0.%d" % JoinTest.next_ip
        JoinTest.next_ip += 1
        d = os.path.join(self.pool.dir, name)
        os.makedirs(d)
        self.ips[d] = ip
        conf = ["master: 127.0.0.1:%d" % self.pool.port, "state-dir: %s" % os.path.join(d, "state"),
                "name: %s" % name, "listen-address: %s" % ip, 'address: "%s"' % (address or ip), "port: 0",
                "sim-memory: 1024MiB", "heartbeat-interval: %gs" % HEARTBEAT, "log-level: info",
                'ca-fingerprint: "%s"' % (fingerprint or self.fingerprint), 'join-token: "%s"' % token]
        conf += list(extra)
        with open(os.path.join(d, "agent.conf"), "w") as f:
            f.write("\n".join(conf) + "\n")
        return d

    def run_agent(self, d, timeout=20):
        """Start the agent of directory d; returns (process, exit code or None
        when it is up and serving, its log)."""
        log = open(os.path.join(d, "agent.log"), "ab")
        p = subprocess.Popen([os.path.join(BIN, "pool-agent"), "--config", os.path.join(d, "agent.conf")],
                             stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.agents.append(p)
        with open(os.path.join(d, "devpool.pid"), "w") as f:
            f.write("%d\n" % p.pid)
        portfile = os.path.join(d, "state", "agent.port")

        def settled():
            if p.poll() is not None:
                return True
            if os.path.exists(portfile):
                with open(portfile) as f:
                    return bool(f.read().strip())
            return False
        wait_until(settled, timeout, "agent in %s exits or serves" % d, 0.02)
        with open(os.path.join(d, "agent.log"), errors="replace") as f:
            text = f.read()
        return p, p.poll(), text

    def assertRefused(self, d, name, hosts_before, why_re):
        """The agent of d exits non-zero with a message matching why_re, and
        nothing is registered."""
        p, rc, log = self.run_agent(d)
        self.assertIsNotNone(rc, "the agent was not refused; it serves:\n" + log)
        self.assertNotEqual(rc, 0, log)
        self.assertRegex(log, why_re)
        self.assertEqual(self.host_names(), hosts_before, "a refused join adds no host")
        self.assertEqual(self.rpc("host.get_by_name_label", name), [])
        self.assertFalse(os.path.exists(os.path.join(d, "state", "agent.pem")), "no certificate after a refusal")
        self.assertFalse(os.path.exists(os.path.join(d, "state", "host.json")))
        self.assertFalse(os.path.exists(os.path.join(d, "state", "agent.key")), "no key kept after a refusal")
        return log

    def assertJoins(self, d, name):
        p, rc, log = self.run_agent(d)
        self.assertIsNone(rc, "the agent exited with %s:\n%s" % (rc, log))
        refs = self.rpc("host.get_by_name_label", name)
        self.assertEqual(len(refs), 1)
        self.assertTrue(os.path.exists(os.path.join(d, "state", "agent.pem")))
        wait_until(lambda: self.rpc("host_metrics.get_live", self.rpc("host.get_metrics", refs[0])), 5,
                   "%s live" % name)
        return refs[0], p

    def leave(self, p, ref):
        """Stop a test agent (its host stays in the pool, not live)."""
        p.send_signal(signal.SIGTERM)
        p.wait(10)

    # -- tokens
    def test_token_is_one_time(self):
        token = self.rpc("pool.create_join_token")
        first = self.new_agent("first", token)
        ref, p = self.assertJoins(first, "first")
        before = self.host_names()
        second = self.new_agent("second", token)
        log = self.assertRefused(second, "second", before, r"(?i)used already|one-time")
        self.assertIn("PERMISSION_DENIED", log)
        self.assertEqual(self.host_names(), before)
        # the first host is unaffected
        self.assertTrue(self.rpc("host_metrics.get_live", self.rpc("host.get_metrics", ref)))
        self.leave(p, ref)

    def test_expired_token(self):
        token = self.rpc("pool.create_join_token", 1)
        time.sleep(2.1)
        before = self.host_names()
        self.assertRefused(self.new_agent("late", token), "late", before, r"(?i)expired")

    def test_unknown_token(self):
        before = self.host_names()
        self.assertRefused(self.new_agent("stranger", secrets.token_urlsafe(24)), "stranger", before,
                           r"(?i)unknown")

    def test_wrong_fingerprint_stops_before_the_token_is_sent(self):
        token = self.rpc("pool.create_join_token")
        wrong = ":".join("%02X" % b for b in secrets.token_bytes(32))
        before = self.host_names()
        log = self.assertRefused(self.new_agent("mitm", token, fingerprint=wrong), "mitm", before,
                                 r"(?i)fingerprint")
        found = {norm_fp(x) for x in re.findall(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31}|[0-9A-Fa-f]{64}", log)}
        self.assertIn(norm_fp(wrong), found, "the log names the fingerprint it was given:\n" + log)
        self.assertIn(norm_fp(self.fingerprint), found, "the log names the fingerprint the master shows:\n" + log)
        # the token never left the agent: a correct agent can still use it
        ref, p = self.assertJoins(self.new_agent("honest", token), "honest")
        self.leave(p, ref)

    # -- CPU
    def test_other_cpu_vendor_is_not_homogeneous(self):
        token = self.rpc("pool.create_join_token")
        before = self.host_names()
        pool = self.rpc("pool.get_all")[0]
        level = self.rpc("pool.get_cpu_info", pool)
        log = self.assertRefused(self.new_agent("amd", token, extra=("sim-cpu-vendor: AuthenticAMD",)), "amd",
                                 before, r"HOSTS_NOT_HOMOGENEOUS")
        self.assertIn("AuthenticAMD", log, "the message names the vendors")
        self.assertIn("GenuineIntel", log, "the message names the vendors")
        self.assertEqual(self.rpc("pool.get_cpu_info", pool), level, "the pool level is unchanged")
        self.assertEqual(len(self.rpc("host_metrics.get_all")), len(before), "no host_metrics left behind")
        # all or nothing: the refused join did not use the token up
        ref, p = self.assertJoins(self.new_agent("intel", token), "intel")
        self.leave(p, ref)

    # -- identities: certificate names only from a valid address; no host is the master
    def test_listen_address_without_address_is_where_poold_reaches_it(self):
        """The README's trap: listen-address set, address empty. The agent
        joins from 127.0.0.1 (its route to the master) but listens on its own
        address only: poold must be told that one, at the join and after a
        restart, or every VM call fails while the host looks live."""
        token = self.rpc("pool.create_join_token")
        d = self.new_agent("lonely", token)
        ip = self.ips[d]
        path = os.path.join(d, "agent.conf")
        with open(path) as f:
            conf = f.read().replace('address: "%s"\n' % ip, 'address: ""\n')
        with open(path, "w") as f:
            f.write(conf)
        self.assertIn("listen-address: %s" % ip, conf)
        ref, p = self.assertJoins(d, "lonely")
        self.assertEqual(self.rpc("host.get_address", ref), ip)
        vm = self.rpc("VM.create", {"name_label": "on-lonely", "memory_static_max": 64 << 20,
                                    "memory_dynamic_max": 64 << 20, "memory_dynamic_min": 64 << 20,
                                    "memory_static_min": 16 << 20})
        self.rpc("VM.start_on", vm, ref, False, False)
        self.assertEqual(self.rpc("VM.get_power_state", vm), "Running")
        # restarted, it says the same: the address is decided at every start
        self.leave(p, ref)
        p, rc, log = self.run_agent(d)
        self.assertIsNone(rc, log)
        self.assertRegex(log, r"listening on %s port \d+, reached by poold at %s," % (re.escape(ip), re.escape(ip)))
        time.sleep(2 * HEARTBEAT)
        self.assertEqual(self.rpc("host.get_address", ref), ip)
        self.rpc("VM.hard_shutdown", vm)
        self.assertEqual(self.rpc("VM.get_power_state", vm), "Halted")
        self.rpc("VM.destroy", vm)
        self.leave(p, ref)

    def test_forged_address_is_refused(self):
        token = self.rpc("pool.create_join_token")
        before = self.host_names()
        forged = "127.0.0.50,DNS:localhost,IP:127.0.0.1"
        log = self.assertRefused(self.new_agent("forger", token, address=forged), "forger", before,
                                 r"INVALID_VALUE")
        self.assertIn(forged, log)
        # the token is still good: an honest agent's certificate has its uuid
        # as CN and its address as its only name
        d = self.new_agent("honest2", token)
        ref, p = self.assertJoins(d, "honest2")
        cert = decode_cert(os.path.join(d, "state", "agent.pem"))
        self.assertEqual(cert["subject"], ((("commonName", self.rpc("host.get_uuid", ref)),),))
        self.assertEqual(cert["subjectAltName"], (("IP Address", self.ips[d]),))
        self.leave(p, ref)

    def agent_call(self, d, certfile, keyfile, method="agent.report"):
        """Call the agent of directory d with the client certificate given."""
        with open(os.path.join(d, "state", "agent.port")) as f:
            port = int(f.read())
        ctx = ssl.create_default_context(cafile=self.pool.cafile)
        ctx.check_hostname = False
        ctx.load_cert_chain(certfile, keyfile)
        conn = http.client.HTTPSConnection(self.ips[d], port, context=ctx, timeout=20 * SLOW)
        try:
            conn.request("POST", "/jsonrpc", json.dumps({"jsonrpc": "2.0", "method": method, "params": [], "id": 1}),
                         {"Content-Type": "application/json"})
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def test_a_pool_member_cannot_pose_as_the_master(self):
        token = self.rpc("pool.create_join_token")
        a = self.new_agent("poser", token)
        ref_a, pa = self.assertJoins(a, "poser")
        token = self.rpc("pool.create_join_token")
        b = self.new_agent("victim", token)
        ref_b, pb = self.assertJoins(b, "victim")
        # the victim's API answers the master only: not another pool member
        master = os.path.join(self.pool.dir, "master")
        ans = self.agent_call(b, os.path.join(master, "server.pem"), os.path.join(master, "server.key"))
        self.assertIn("result", ans)
        poser_cert = (os.path.join(a, "state", "agent.pem"), os.path.join(a, "state", "agent.key"))
        with self.assertRaises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            self.agent_call(b, *poser_cert)
        # the poser's certificate where the victim looks for the master
        fake = FakeServer("127.0.0.60", *poser_cert, cafile=self.pool.cafile)
        self.addCleanup(fake.close)
        pb.send_signal(signal.SIGTERM)
        pb.wait(10)
        conf = os.path.join(b, "agent.conf")
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(re.sub(r"(?m)^master: .*$", "master: 127.0.0.60:%d" % fake.port, text))
        p, rc, log = self.run_agent(b)
        self.assertIsNone(rc, log)

        def refused():
            with open(os.path.join(b, "agent.log"), errors="replace") as f:
                return "heartbeat failed" in f.read()
        wait_until(refused, 10, "the victim's heartbeat to the poser fails")
        time.sleep(1.0)
        self.assertEqual(fake.received, b"", "the victim sent its heartbeat to another pool member")
        p.send_signal(signal.SIGTERM)
        p.wait(10)
        self.leave(pa, ref_a)

    # -- agent calls: the certificate is the credential
    def heartbeat(self, certfile=None, keyfile=None, report=None):
        ctx = ssl.create_default_context(cafile=self.pool.cafile)
        ctx.check_hostname = False
        if certfile:
            ctx.load_cert_chain(certfile, keyfile)
        report = report or {"name_label": "impostor", "address": "127.0.0.2", "port": 4444,
                            "memory_total": 1 << 30, "memory_free": 1 << 30, "product_version": "0.1.0",
                            "backend": "sim",
                            "cpu_info": {"vendor": "GenuineIntel", "cpu_count": 8,
                                         "features": "1fcbfbff-f7fa3223-2d93fbff-00000023-00000001-000007ab-"
                                                     "00000000-00000000-001000c8"},
                            "domains": [], "srs": []}
        conn = http.client.HTTPSConnection("127.0.0.1", self.pool.port, context=ctx, timeout=20 * SLOW)
        try:
            body = json.dumps({"jsonrpc": "2.0", "method": "host.heartbeat", "params": [report], "id": 1})
            conn.request("POST", "/jsonrpc", body, {"Content-Type": "application/json"})
            ans = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        if "error" in ans:
            raise XapiError(ans["error"].get("message"), ans["error"].get("data"))
        return ans["result"]

    def test_heartbeat_without_a_client_certificate(self):
        with self.assertRaises(XapiError) as cm:
            self.heartbeat()
        self.assertEqual(cm.exception.code, "PERMISSION_DENIED", cm.exception.params)
        self.assertEqual(self.rpc("host.get_name_label", self.pool.host_ref(1)), "host1")

    def test_heartbeat_with_the_agents_own_certificate_is_accepted(self):
        # the positive control for the two refusals: the real host1 certificate,
        # its own report
        state = self.pool.state_dir(1)
        host = self.pool.host_ref(1)
        rec = self.rpc("host.get_record", host)
        m = self.rpc("host_metrics.get_record", rec["metrics"])
        report = {"name_label": "host1", "address": rec["address"], "port": int(rec["other_config"]["agent_port"]),
                  "memory_total": m["memory_total"], "memory_free": m["memory_free"],
                  "product_version": rec["software_version"]["product_version"], "backend": "sim",
                  "cpu_info": {"vendor": rec["cpu_info"]["vendor"], "features": rec["cpu_info"]["features"],
                               "cpu_count": int(rec["cpu_info"]["cpu_count"])},
                  "domains": [], "srs": []}
        ans = self.heartbeat(os.path.join(state, "agent.pem"), os.path.join(state, "agent.key"), report)
        self.assertEqual(ans, {"host": host})

    def test_certificate_from_another_ca_is_refused(self):
        other = os.path.join(self.pool.dir, "other-pool")
        r = subprocess.run([os.path.join(BIN, "poold"), "init", "--dir", other], input="another-secret\n",
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        # 1. the other pool's own server certificate
        # 2. a certificate that claims to be host1 (its uuid as CN), signed by the other CA
        uuid = self.pool.host_uuid(1)
        key, csr, crt = (os.path.join(other, n) for n in ("forged.key", "forged.csr", "forged.pem"))
        for args in (["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", key, "-out", csr, "-subj", "/CN=" + uuid],
                     ["x509", "-req", "-in", csr, "-CA", os.path.join(other, "ca.pem"), "-CAkey",
                      os.path.join(other, "ca.key"), "-CAcreateserial", "-out", crt, "-days", "2"]):
            r = subprocess.run(["openssl"] + args, capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
        name_before = self.rpc("host.get_name_label", self.pool.host_ref(1))
        for cert, k in ((os.path.join(other, "server.pem"), os.path.join(other, "server.key")), (crt, key)):
            try:
                ans = self.heartbeat(cert, k)
                self.fail("host.heartbeat with a certificate of another CA (%s) answered %r" % (cert, ans))
            except XapiError as e:
                self.assertEqual(e.code, "PERMISSION_DENIED", e.params)
            except (ssl.SSLError, ConnectionError, http.client.HTTPException, socket.error):
                pass  # the TLS handshake refused it: as good
        self.assertEqual(self.rpc("host.get_name_label", self.pool.host_ref(1)), name_before,
                         "the forged heartbeat changed nothing")
        self.assertNotIn("impostor", self.host_names())


if __name__ == "__main__":
    unittest.main()
