"""
test_dos.py - denial of service without credentials.

Each test attacks a real poold (or agent) the way a stranger on the network
could, from a loopback address of its own (127.0.0.5, 127.0.0.6), and checks
what a user would notice: the attacker's connections are cut, poold's memory
and CPU stay small, and a client from another address (127.0.0.1) is served
on time. Limits are set low per test so that each runs in seconds.
"""
import http.client
import json
import os
import socket
import ssl
import threading
import time
import unittest

from tests.integration.harness import PASSWORD, SLOW, Pool, PoolTest, XapiError
from tests.integration.pooltest import DevPool, wait_until

ATTACKER = "127.0.0.5"
ATTACKER2 = "127.0.0.6"


def tls_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    return ctx


def tcp_from(src, port, timeout=10):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW, source_address=(src, 0))


def closed_by_server(sock, wait=0.0):
    """True when the server has closed sock (within wait seconds)."""
    sock.settimeout(max(wait, 0.001))
    try:
        return sock.recv(1) == b""
    except (socket.timeout, BlockingIOError, ssl.SSLWantReadError):
        return False
    except OSError:
        return True


def count_closed(socks, within):
    """How many of socks the server closes within `within` seconds."""
    deadline = time.monotonic() + within
    closed = set()
    while time.monotonic() < deadline and len(closed) < len(socks):
        for i, s in enumerate(socks):
            if i not in closed and closed_by_server(s):
                closed.add(i)
        time.sleep(0.05)
    return len(closed)


def rpc_body(method, params):
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1})


class Client:
    """JSON-RPC calls to a Pool from a chosen source address."""

    def __init__(self, pool, src):
        self.pool, self.src = pool, src

    def call(self, method, *params, timeout=30):
        conn = http.client.HTTPSConnection("127.0.0.1", self.pool.port, timeout=timeout * SLOW,
                                           context=tls_context(os.path.join(self.pool.dir, "ca.pem")),
                                           source_address=(self.src, 0))
        try:
            conn.request("POST", "/jsonrpc", body=rpc_body(method, list(params)),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
        finally:
            conn.close()
        if r.status != 200:
            raise RuntimeError("HTTP %d: %r" % (r.status, data[:200]))
        answer = json.loads(data)
        if "error" in answer:
            raise XapiError(answer["error"].get("message"), answer["error"].get("data"))
        return answer["result"]

    def login(self, password=PASSWORD):
        return self.call("session.login_with_password", "root", password, "2.21", "test_dos")

    def outcome(self, password):
        """(session ref or error code, seconds the answer took)."""
        t0 = time.monotonic()
        try:
            out = self.login(password)
        except XapiError as e:
            out = e.code
        except (OSError, RuntimeError, http.client.HTTPException) as e:
            out = e
        return out, time.monotonic() - t0


class DosTest(PoolTest):
    def assertServing(self, src="127.0.0.1"):
        c = Client(self.pool, src)
        self.assertIsInstance(c.call("VM.get_all", c.login()), list)

    def tls_from(self, src):
        ctx = tls_context(os.path.join(self.pool.dir, "ca.pem"))
        return ctx.wrap_socket(tcp_from(src, self.pool.port), server_hostname="127.0.0.1")


class DeadlineTest(DosTest):
    """A request must arrive whole within request-timeout, however slowly it trickles."""
    # limits in a file, not --set: a poold without them (before this test
    # existed) still starts, and fails the test on what it does
    pool_conf = "request-timeout: 2s\nconnection-timeout: 60s\n"

    def trickle(self, sock, data, every=0.25, limit=12.0):
        """Send data a byte at a time; seconds until the server closed sock (None: it did not)."""
        t0 = time.monotonic()
        for b in data:
            try:
                sock.sendall(bytes([b]))
            except OSError:
                return time.monotonic() - t0
            if closed_by_server(sock, every):
                return time.monotonic() - t0
            if time.monotonic() - t0 > limit * SLOW:
                return None
        return None

    def test_trickled_headers_are_cut_at_the_deadline(self):
        sock = self.tls_from(ATTACKER)
        head = b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slow: " + b"a" * 200
        took = self.trickle(sock, head)
        sock.close()
        self.assertIsNotNone(took, "a request trickling a byte every 0.25 s was never cut")
        self.assertGreaterEqual(took, 1.5)
        self.assertLess(took, 5 * SLOW)
        self.assertServing()

    def test_trickled_tls_handshake_is_cut_at_the_deadline(self):
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = tls_context(os.path.join(self.pool.dir, "ca.pem")).wrap_bio(incoming, outgoing,
                                                                          server_hostname="127.0.0.1")
        with self.assertRaises(ssl.SSLWantReadError):
            obj.do_handshake()
        hello = outgoing.read()
        sock = tcp_from(ATTACKER, self.pool.port)
        took = self.trickle(sock, hello)
        sock.close()
        self.assertIsNotNone(took, "a ClientHello trickling a byte every 0.25 s was never cut")
        self.assertLess(took, 5 * SLOW)
        self.assertServing()

    def test_a_slow_but_steady_client_still_gets_its_answer(self):
        # the deadline is per request: a kept-alive connection idle between
        # requests for longer than it is not cut
        c = Client(self.pool, "127.0.0.1")
        s = c.login()
        conn = http.client.HTTPSConnection("127.0.0.1", self.pool.port, timeout=30 * SLOW,
                                           context=tls_context(os.path.join(self.pool.dir, "ca.pem")))
        for _ in range(2):
            conn.request("POST", "/jsonrpc", body=rpc_body("VM.get_all", [s]),
                         headers={"Content-Type": "application/json"})
            self.assertEqual(conn.getresponse().read()[:1], b"{")
            time.sleep(2.5)
        conn.close()


class CapsTest(DosTest):
    """Connections in all and from one address are capped; more are closed at once."""
    pool_conf = "max-connections-per-address: 8\nmax-connections: 12\n"

    def test_connections_from_one_address_are_capped(self):
        socks = [tcp_from(ATTACKER, self.pool.port) for _ in range(30)]
        self.assertEqual(count_closed(socks, 2.0 * SLOW), 22, "8 of 30 connections from one address stay")
        self.assertServing()  # from another address, meanwhile
        for s in socks:
            s.close()
        wait_until(lambda: Client(self.pool, ATTACKER).login(), 5, "the address is served again")

    def test_connections_in_all_are_capped(self):
        a = [tcp_from(ATTACKER, self.pool.port) for _ in range(8)]
        b = [tcp_from(ATTACKER2, self.pool.port) for _ in range(8)]
        self.assertEqual(count_closed(a + b, 2.0 * SLOW), 4, "12 connections in all stay")
        for s in a + b:
            s.close()
        wait_until(lambda: Client(self.pool, "127.0.0.1").login(), 5, "served once they are gone")


class FdLimitTest(unittest.TestCase):
    """At the file descriptor limit poold neither spins nor stops serving for good."""

    def test_no_busy_loop_at_the_descriptor_limit(self):
        pool = Pool(conf="max-connections: 100000\nmax-connections-per-address: 100000\n", nofile=128)
        self.addCleanup(pool.close)
        socks = []
        for _ in range(300):  # without waiting: a poold that stops accepting fills its backlog
            s = socket.socket()
            s.bind((ATTACKER, 0))
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", pool.port))
            socks.append(s)
        time.sleep(1.0)
        cpu0, t0 = pool.cpu_seconds(), time.monotonic()
        time.sleep(2.0)
        share = (pool.cpu_seconds() - cpu0) / (time.monotonic() - t0)
        self.assertLess(share, 0.25, "poold used %.0f%% of a CPU holding 300 idle connections" % (100 * share))
        self.assertRegex(pool.read_log(), r"at most \d+ connections \(the file descriptor limit is 128\)")
        for s in socks:
            s.close()
        wait_until(lambda: Client(pool, "127.0.0.1").login(), 10, "poold serves again")


class AgentFdLimitTest(unittest.TestCase):
    """An agent flooded with connections up to its descriptor limit keeps its host live."""

    @classmethod
    def setUpClass(cls):
        cls.p = DevPool(1, host_memory_mib=1024, extra=("--no-sr",))

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    @staticmethod
    def cpu(pid):
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def flood(self, seconds):
        """300 connections to the agent's API from one address, held for
        seconds: the times the host looked dead, and the agent's CPU share."""
        p = self.p
        pid = p.agent_pid(1)
        with open(os.path.join(p.state_dir(1), "agent.port")) as f:
            port = int(f.read())
        metrics = p.rpc("host.get_metrics", p.host_ref(1))
        socks = []
        for _ in range(300):  # without waiting: once the agent stops accepting, the backlog fills
            s = socket.socket()
            s.bind((ATTACKER, 0))
            s.setblocking(False)
            s.connect_ex(("127.0.0.2", port))
            socks.append(s)
        cpu0, t0 = self.cpu(pid), time.monotonic()
        dead = []
        while time.monotonic() - t0 < seconds:
            if not p.rpc("host_metrics.get_live", metrics):
                dead.append(round(time.monotonic() - t0, 1))
            time.sleep(0.5)
        share = (self.cpu(pid) - cpu0) / (time.monotonic() - t0)
        for s in socks:
            s.close()
        return dead, share

    def test_agent_started_at_a_low_limit_keeps_room_for_its_work(self):
        self.p.kill_agent(1)
        self.p.start_agent(1, nofile=128)
        dead, share = self.flood(6)
        self.assertEqual(dead, [], "the host looked dead while its agent was flooded")
        self.assertLess(share, 0.3, "the agent used %.0f%% of a CPU" % (100 * share))
        self.assertRegex(self.p.agent_log(1, 50000), r"at most \d+ connections \(the file descriptor limit is 128\)")

    def test_agent_out_of_descriptors_pauses_accepting(self):
        # the limit lowered under a running agent: its cap no longer fits, accept() fails
        import resource
        resource.prlimit(self.p.agent_pid(1), resource.RLIMIT_NOFILE, (128, 128))
        dead, share = self.flood(4)
        self.assertLess(share, 0.3, "the agent used %.0f%% of a CPU out of descriptors" % (100 * share))
        self.assertIn("out of file descriptors", self.p.agent_log(1, 50000), "it paused accepting")
        metrics = self.p.rpc("host.get_metrics", self.p.host_ref(1))
        wait_until(lambda: self.p.rpc("host_metrics.get_live", metrics), 10, "the host is live again")


class LoginTest(DosTest):
    """Password checks run on two threads, one per address at most; failures back off."""
    pool_sets = {"login-failure-delay": "200ms"}
    pool_conf = "login-failure-delay-max: 1s\nmax-connections-per-address: 1000\n"

    def test_a_flood_of_guesses_does_not_delay_a_correct_login(self):
        good = Client(self.pool, "127.0.0.1")
        cpu0 = self.pool.cpu_seconds()
        good.login()
        one_check = self.pool.cpu_seconds() - cpu0
        flood = Client(self.pool, ATTACKER)
        results = []
        threads = [threading.Thread(target=lambda: results.append(flood.outcome("guess"))) for _ in range(60)]
        cpu0 = self.pool.cpu_seconds()
        for t in threads:
            t.start()
        time.sleep(0.8)  # the guesses are all in by now
        session, took = good.outcome(PASSWORD)
        for t in threads:
            t.join(60 * SLOW)
        cpu = self.pool.cpu_seconds() - cpu0
        self.assertTrue(session.startswith("OpaqueRef:"), session)
        self.assertLess(took, 1.0 * SLOW, "a correct login waited behind someone else's guesses")
        self.assertEqual(len(results), 60)
        self.assertEqual({r for r, _ in results}, {"SESSION_AUTHENTICATION_FAILED"})
        self.assertLess(cpu, 10 * one_check + 0.5,
                        "60 guesses cost %.2f s of CPU; one password check costs %.2f s" % (cpu, one_check))

    def test_guesses_from_one_address_slow_down(self):
        bad = Client(self.pool, ATTACKER)
        t0 = time.monotonic()
        for _ in range(6):  # waits 0.2, 0.4, 0.8, 1, 1, 1 s
            self.assertEqual(bad.outcome("guess")[0], "SESSION_AUTHENTICATION_FAILED")
        self.assertGreaterEqual(time.monotonic() - t0, 4.0, "six guesses in a row were not slowed down")
        # an attempt made while the address waits is refused, right password or not
        out = []
        t1 = threading.Thread(target=lambda: out.append(bad.outcome("guess")))
        t1.start()
        time.sleep(0.2 * SLOW)
        out.append(bad.outcome(PASSWORD))
        t1.join(30)
        self.assertEqual([r for r, _ in out], ["SESSION_AUTHENTICATION_FAILED"] * 2)
        # the owner, from an address that has not failed, is not locked out
        session, took = Client(self.pool, "127.0.0.1").outcome(PASSWORD)
        self.assertTrue(session.startswith("OpaqueRef:"), session)
        self.assertLess(took, 1.0 * SLOW)


class BigBodyTest(DosTest):
    """A stranger's big request is refused unparsed; a session's is parsed."""

    def test_unauthenticated_big_body_is_not_parsed(self):
        empties = (8 * 1024 * 1024 - 200) // 3
        body = ('{"jsonrpc":"2.0","method":"session.login_with_password","params":[' + "{}," * empties +
                '{}],"id":1}').encode()
        before = self.pool.status("VmHWM")
        t0 = time.monotonic()
        status, headers, data = self.pool.raw(body)
        self.assertEqual(status, 413, data[:200])
        self.assertLess(time.monotonic() - t0, 5 * SLOW)
        grew = self.pool.status("VmHWM") - before
        self.assertLess(grew, 80 * 1024, "an 8 MiB request took poold's memory up by %d MiB" % (grew // 1024))
        # naming a session that is not one does not help
        forged = rpc_body("VM.get_all", ["OpaqueRef:00000000-0000-0000-0000-000000000000", "x" * 100000])
        status, headers, data = self.pool.raw(forged)
        self.assertEqual(json.loads(data)["error"]["message"], "SESSION_INVALID")
        # with a session, a big request is parsed as before
        vm = self.pool.rpc("VM.get_by_name_label", "Generic VM")[0]
        big = "d" * 300000
        clone = self.pool.rpc("VM.clone", vm, "big")
        self.pool.rpc("VM.set_name_description", clone, big)
        self.assertEqual(self.pool.rpc("VM.get_name_description", clone), big)
        self.assertServing()


if __name__ == "__main__":
    unittest.main()
