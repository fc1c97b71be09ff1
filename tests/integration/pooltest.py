"""
pooltest.py - a whole pool on loopback for the integration tests: poold and
N pool-agents started by scripts/devpool in a fresh temporary directory.

DevPool(hosts=3) runs `scripts/devpool up` (POOLD_BIN selects the binaries,
as for harness.Pool), parses the `export XE_...` line it prints, and offers
rpc() (JSON-RPC over HTTPS, XapiError on a XAPI error), xe(), and what the
tests need to act on hosts from outside: an agent's pid, killing and
restarting it with its own command line, its domains' records and pids.
close() first checks the pool's truth (assert_consistent: every VM record
against the domain processes that really run, every VDI against the files
in its SR; no double, no loss, no orphan), then runs `scripts/devpool down`
(by pid: poold, the agents, their domains), stops whatever else it started,
and removes the directory; it is also run when `up` fails half-way, so no
process outlives a test.

Heartbeats every 0.5 s; devpool then writes host-heartbeat-timeout: 3s.
"""
import glob
import http.client
import json
import os
import resource
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time

from tests.integration.harness import BIN, ROOT, SLOW, XapiError

DEVPOOL = os.path.join(ROOT, "scripts", "devpool")
MiB = 1 << 20
GiB = 1 << 30
HEARTBEAT = 0.5
HEARTBEAT_TIMEOUT = 3  # what devpool writes for --heartbeat 0.5: max(3, 3 * 0.5)


def pid_alive(pid):
    """True while pid is a process that has not exited (zombies count as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/%d/status" % pid)


def shmem_kib(pid):
    """A domain process's resident shared memory (its RAM memfd), KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssShmem:"):
                return int(line.split()[1])
    return 0


def wait_until(fn, timeout, what, interval=0.1):
    """fn() until it returns a true value (returned); AssertionError after timeout s."""
    deadline = time.monotonic() + timeout * SLOW
    last = None
    while True:
        try:
            last = fn()
        except (OSError, XapiError, http.client.HTTPException) as e:
            last = e
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %g s (last: %r)" % (what, timeout * SLOW, last))
        time.sleep(interval)


class DevPool:
    def __init__(self, hosts=3, host_memory_mib=2048, heartbeat=HEARTBEAT, extra=(), masters=False):
        """masters: every host runs a poold (devpool --standby-masters), host1's the master."""
        self.dir = tempfile.mkdtemp(prefix="devpool-test-")
        self.hosts = hosts
        self.heartbeat = heartbeat
        self.masters = masters
        if masters:
            extra = list(extra) + ["--standby-masters"]
        self.env = None
        self._session = None
        self.started = []  # Popen of agents this object (re)started
        try:
            args = [sys.executable, DEVPOOL, "up", "--hosts", str(hosts), "--dir", self.dir,
                    "--host-memory-mib", str(host_memory_mib), "--heartbeat", str(heartbeat)] + list(extra)
            env = dict(os.environ, POOLD_BIN=BIN)
            r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=90 * SLOW)
            if r.returncode != 0:
                raise RuntimeError("devpool up failed (%d): %s%s\n%s" % (r.returncode, r.stdout, r.stderr,
                                                                        self.logs()))
            line = [x for x in r.stdout.splitlines() if x.startswith("export ")]
            if not line:
                raise RuntimeError("devpool up printed no export line: %r" % r.stdout)
            self.env = dict(kv.split("=", 1) for kv in line[-1][len("export "):].split())
            self.port = int(self.env["XE_PORT"])
            self.password = self.env["XE_PASSWORD"]
            self.cafile = self.env["XE_CACERT"]
            self.addresses = self._addresses(list(extra))
        except BaseException:
            self.close(check=False)
            raise

    def _addresses(self, extra):
        """host index -> the address devpool gave it (its agent's, and its poold's with masters)."""
        given = {}
        self.netns = {}
        for k, v in zip(extra, extra[1:]):
            if k in ("--host-address", "--host-netns"):
                h, val = v.split("=", 1)
                (given if k == "--host-address" else self.netns)[int(h[4:])] = val
        return {i: given.get(i, "127.0.0.%d" % (i + 1)) for i in range(1, self.hosts + 1)}

    def netns_wrap(self, i):
        return ["ip", "netns", "exec", self.netns[i]] if i in self.netns else []

    # -- wire
    def connection(self, timeout=60, address=None):
        ctx = ssl.create_default_context(cafile=self.cafile)
        ctx.check_hostname = False
        return http.client.HTTPSConnection(address or self.env.get("XE_SERVER", "127.0.0.1"), self.port, context=ctx,
                                           timeout=timeout * SLOW)

    def call(self, method, *params, timeout=60, address=None):
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1})
        conn = self.connection(timeout, address)
        try:
            conn.request("POST", "/jsonrpc", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise RuntimeError("HTTP %d: %r" % (resp.status, data[:200]))
        answer = json.loads(data)
        if "error" in answer:
            e = answer["error"]
            raise XapiError(e.get("message"), e.get("data"))
        return answer["result"]

    @property
    def session(self):
        if self._session is None:
            self._session = self.call("session.login_with_password", "root", self.password, "2.21", "pooltest")
        return self._session

    def rpc(self, method, *params, **kw):
        return self.call(method, self.session, *params, **kw)

    # -- the master's role (masters=True)
    def poold_dir(self, i):
        return os.path.join(self.host_dir(i), "poold")

    def poold_pid(self, i):
        with open(os.path.join(self.poold_dir(i), "devpool.pid")) as f:
            return int(f.read())

    def master_index(self, timeout=30):
        """The host whose poold answers a login (the others say HOST_IS_SLAVE); XE_SERVER follows it."""
        def find():
            for i in range(1, self.hosts + 1):
                try:
                    self.call("session.login_with_password", "root", self.password, "2.21", "pooltest",
                              address=self.addresses[i], timeout=5)
                    return i
                except (OSError, XapiError, http.client.HTTPException, RuntimeError):
                    continue
            return None
        i = wait_until(find, timeout, "a poold answering as the pool master")
        self.env["XE_SERVER"] = self.addresses[i]
        return i

    def start_poold(self, i):
        """Host i's poold again, as devpool starts it (pid in its pid file)."""
        pdir = self.poold_dir(i)
        portfile = os.path.join(pdir, "poold.port")
        if os.path.exists(portfile):
            os.unlink(portfile)
        log = open(os.path.join(pdir, "poold.log"), "ab")
        np = subprocess.Popen(self.netns_wrap(i) + [os.path.join(BIN, "poold"), "--dir", pdir], stdout=log, stderr=log,
                              stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.started.append(np)
        with open(os.path.join(pdir, "devpool.pid"), "w") as f:
            f.write("%d\n" % np.pid)
        wait_until(lambda: os.path.exists(portfile) or np.poll() is not None, 30, "host%d's poold started" % i, 0.02)
        return np

    def xe(self, *args, check=True):
        e = dict(os.environ)
        e.update(self.env)
        e["HOME"] = self.dir
        # nobody answers a question xe asks (stdin at its end)
        r = subprocess.run([os.path.join(BIN, "xe")] + list(args), capture_output=True, text=True, env=e,
                           stdin=subprocess.DEVNULL, timeout=60 * SLOW)
        if check and r.returncode != 0:
            raise AssertionError("xe %s failed (%d): %s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    # -- hosts (i = 1..N, as devpool numbers them)
    def host_dir(self, i):
        return os.path.join(self.dir, "host%d" % i)

    def state_dir(self, i):
        return os.path.join(self.host_dir(i), "state")

    def host_uuid(self, i):
        with open(os.path.join(self.state_dir(i), "host.json")) as f:
            return json.load(f)["host_uuid"]

    def agent_call(self, i, method, *params):
        """Call host i's agent as poold does (its client certificate): the JSON-RPC answer."""
        oc = self.rpc("host.get_other_config", self.host_ref(i))
        master = os.path.join(self.dir, "master")
        ctx = ssl.create_default_context(cafile=self.cafile)
        ctx.check_hostname = False
        ctx.load_cert_chain(os.path.join(master, "server.pem"), os.path.join(master, "server.key"))
        conn = http.client.HTTPSConnection(oc["agent_address"], int(oc["agent_port"]), context=ctx,
                                           timeout=20 * SLOW)
        try:
            conn.request("POST", "/jsonrpc", json.dumps({"jsonrpc": "2.0", "method": method,
                                                         "params": list(params), "id": 1}),
                         {"Content-Type": "application/json"})
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def host_ref(self, i):
        return self.rpc("host.get_by_uuid", self.host_uuid(i))

    def host_metrics(self, i):
        return self.rpc("host_metrics.get_record", self.rpc("host.get_metrics", self.host_ref(i)))

    def agent_pid(self, i):
        with open(os.path.join(self.host_dir(i), "devpool.pid")) as f:
            return int(f.read())

    def kill_agent(self, i, sig=signal.SIGKILL):
        pid = self.agent_pid(i)
        os.kill(pid, sig)
        # devpool's agents are its children, gone with it: wait for the pid to disappear
        wait_until(lambda: not pid_alive(pid), 10, "agent of host%d (pid %d) gone" % (i, pid), 0.02)
        for p in self.started:
            if p.pid == pid:
                p.wait()
        return pid

    def restart_poold(self, sig=signal.SIGKILL, pause=0.0):
        """Stop the master's poold with sig, wait pause seconds, and start it
        again on the same directory (its pid goes to devpool's pid file, so
        `devpool down` stops it; close() waits for it). Sessions outlive it."""
        master = os.path.join(self.dir, "master")
        with open(os.path.join(master, "devpool.pid")) as f:
            os.kill(int(f.read()), sig)
        time.sleep(pause)
        log = open(os.path.join(master, "poold.log"), "ab")
        np = subprocess.Popen([os.path.join(BIN, "poold"), "--dir", master], stdout=log, stderr=log,
                              start_new_session=True)
        log.close()
        self.started.append(np)
        with open(os.path.join(master, "devpool.pid"), "w") as f:
            f.write("%d\n" % np.pid)
        self._session = None
        return np

    def start_agent(self, i, nofile=None):
        """Start host i's agent again with devpool's command line (nofile: its
        RLIMIT_NOFILE, soft and hard); its pid goes to devpool's pid file, so
        `devpool down` stops it."""
        portfile = os.path.join(self.state_dir(i), "agent.port")
        if os.path.exists(portfile):
            os.unlink(portfile)
        log = open(os.path.join(self.host_dir(i), "agent.log"), "ab")
        limit = None
        if nofile:
            def limit():
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        p = subprocess.Popen([os.path.join(BIN, "pool-agent"), "--config", os.path.join(self.host_dir(i), "agent.conf")],
                             stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                             preexec_fn=limit)
        log.close()
        self.started.append(p)
        with open(os.path.join(self.host_dir(i), "devpool.pid"), "w") as f:
            f.write("%d\n" % p.pid)
        def settled():
            if p.poll() is not None:
                return True
            if os.path.exists(portfile):
                with open(portfile) as f:
                    return bool(f.read().strip())
            return False
        wait_until(settled, 30, "agent of host%d restarted" % i, 0.02)
        if p.poll() is not None:
            raise AssertionError("agent of host%d exited with %d on restart:\n%s" % (i, p.returncode, self.agent_log(i)))
        # it listens on a new port: poold learns it from the first heartbeat
        with open(portfile) as f:
            port = f.read().strip()
        ref = self.host_ref(i)
        wait_until(lambda: self.rpc("host.get_other_config", ref).get("agent_port") == port, 30,
                   "poold knows host%d's new port" % i, 0.05)
        return p

    def domains(self, i):
        """{domid: record} of dom-N.json in host i's state dir."""
        out = {}
        for f in glob.glob(os.path.join(self.state_dir(i), "domains", "dom-*.json")):
            try:
                with open(f) as fh:
                    rec = json.load(fh)
                out[int(rec["domid"])] = rec
            except (OSError, ValueError, KeyError):
                pass
        return out

    def domain_pid(self, i, domid):
        rec = self.domains(i).get(domid)
        if rec is None:
            raise AssertionError("host%d has no dom-%d.json (domains: %s)" % (i, domid, sorted(self.domains(i))))
        return int(rec["pid"])

    def host_index(self, host_ref):
        uuid = self.rpc("host.get_uuid", host_ref)
        for i in range(1, self.hosts + 1):
            if self.host_uuid(i) == uuid:
                return i
        raise AssertionError("host %s is none of the devpool's" % host_ref)

    # -- logs
    def agent_log(self, i, tail=3000):
        try:
            with open(os.path.join(self.host_dir(i), "agent.log"), errors="replace") as f:
                return f.read()[-tail:]
        except OSError:
            return ""

    def poold_log(self, tail=3000, i=None):
        paths = [os.path.join(self.dir, "master", "poold.log")]
        if self.masters:
            paths = [os.path.join(self.poold_dir(k), "poold.log") for k in ([i] if i else range(1, self.hosts + 1))]
        out = []
        for path in paths:
            try:
                with open(path, errors="replace") as f:
                    out.append(("--- %s\n" % path if len(paths) > 1 else "") + f.read()[-tail:])
            except OSError:
                pass
        return "\n".join(out)

    read_log = poold_log

    def logs(self):
        out = ["--- poold.log\n" + self.poold_log()]
        for i in range(1, self.hosts + 1):
            out.append("--- host%d/agent.log\n%s" % (i, self.agent_log(i, 1500)))
        return "\n".join(out)

    # -- the pool's truth: records against processes and files
    def simdoms(self):
        """{vm uuid: [(host index, pid)]} of the live pool-simdom processes of this pool."""
        out = {}
        for e in os.listdir("/proc"):
            if not e.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % e, "rb") as f:
                    args = [x.decode(errors="replace") for x in f.read().split(b"\0") if x]
            except OSError:
                continue
            if not args or os.path.basename(args[0]) != "pool-simdom" or not pid_alive(int(e)):
                continue
            opt = dict(zip(args[1::2], args[2::2]))
            sd = opt.get("--state-dir", "")
            for i in range(1, self.hosts + 1):
                if sd.startswith(self.host_dir(i) + os.sep):
                    out.setdefault(opt.get("--uuid", "?"), []).append((i, int(e)))
        return out

    def inconsistencies(self):
        """What is wrong, as sentences: a VM whose record does not match the
        processes that really run (none, two, or on another host), a domain
        no VM owns, a VDI without its file, a file no VDI owns."""
        try:
            vms = self.rpc("VM.get_all_records", timeout=10)
            hosts = self.rpc("host.get_all_records", timeout=10)
            vdis = self.rpc("VDI.get_all_records", timeout=10)
            pbds = self.rpc("PBD.get_all_records", timeout=10)
        except (OSError, XapiError, http.client.HTTPException, RuntimeError):
            return []  # poold is not running: nothing to compare with
        index = {}
        for i in range(1, self.hosts + 1):
            try:
                uuid = self.host_uuid(i)
            except (OSError, ValueError, KeyError):
                continue
            for ref, h in hosts.items():
                if h["uuid"] == uuid:
                    index[ref] = i
        procs = self.simdoms()
        bad = []
        for ref, v in vms.items():
            if v["is_a_template"] or v["is_a_snapshot"] or v["is_control_domain"]:
                continue  # a control domain is the host itself, no simdom
            where = procs.pop(v["uuid"], [])
            if v["power_state"] in ("Running", "Paused"):
                want = index.get(v["resident_on"])
                if [i for i, _ in where] != [want]:
                    bad.append("VM %s is recorded %s on host%s but runs on %s" % (
                        v["name_label"], v["power_state"], want, ["host%d (pid %d)" % w for w in where]))
            elif where:
                bad.append("VM %s is recorded %s but runs on %s" % (
                    v["name_label"], v["power_state"], ["host%d (pid %d)" % w for w in where]))
        for uuid, where in procs.items():
            bad.append("a domain of no VM (%s) runs on %s" % (uuid, ["host%d (pid %d)" % w for w in where]))
        dirs = {}
        for p in pbds.values():
            path = p.get("device_config", {}).get("path")
            if path:
                dirs[p["SR"]] = path
        for sr, path in dirs.items():
            have = set(os.path.realpath(f) for f in glob.glob(os.path.join(path, "*")))
            owned = set(os.path.realpath(v["location"]) for v in vdis.values() if v["SR"] == sr)
            # the pool database (a redo_log VDI) is SQLite: its write-ahead log sits beside it
            companions = set(os.path.realpath(v["location"]) + "-wal" for v in vdis.values()
                             if v["SR"] == sr and v["type"] == "redo_log")
            for f in sorted(have - owned - companions):
                bad.append("file %s belongs to no VDI" % f)
            for f in sorted(owned - have):
                bad.append("VDI %s has no file" % f)
        return bad

    def assert_consistent(self, timeout=20):
        """Wait (bounded) until every record agrees with what runs and what is
        on disk; AssertionError naming each difference otherwise."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            bad = self.inconsistencies()
            if not bad:
                return
            if time.monotonic() > deadline:
                raise AssertionError("the pool is not consistent:\n  " + "\n  ".join(bad) + "\n" + self.logs())
            time.sleep(0.25)

    # -- the end
    def close(self, check=True):
        """Stop everything; first (check) wait until the pool is consistent
        and raise AssertionError after the cleanup when it never is."""
        if not self.dir:
            return
        problem = None
        if check:
            try:
                if self.masters:
                    self.master_index()
                self.assert_consistent()
            except AssertionError as e:
                problem = e
        if os.environ.get("KEEP_DIR"):
            shutil.copytree(self.dir, "/tmp/keep-" + os.path.basename(self.dir), ignore_dangling_symlinks=True,
                            ignore=shutil.ignore_patterns("*.img", "local-sr", "sr"), dirs_exist_ok=True)
        try:
            subprocess.run([sys.executable, DEVPOOL, "down", "--dir", self.dir], capture_output=True,
                           env=dict(os.environ, POOLD_BIN=BIN), timeout=60)
        except subprocess.TimeoutExpired:
            pass
        for p in self.started:
            if p.poll() is None:
                p.kill()
            p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
        if problem:
            raise problem
