"""
dom0_pool.py - what the nested-Xen test (dom0_test.py) drives and observes
in dom0: poold and two agents (Pool), poold's JSON-RPC (Rpc), the guest's
console ticks (Guest), Xen's own view (xl, xenstore, xen-cpuid) and the
xen-probe helper; and the test's output lines (say, timing).
"""
import glob
import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import time

OPT = "/opt/pool"
WORK = "/var/lib/pool-test"
CONSOLE = "/var/log/xen/console"
XL = "/usr/lib/xen-4.17/bin/xl"
PORT = 4443
GUEST_MIB = 128  # pvgrub2 runs out of memory loading the kernel in 96


class Fail(Exception):
    pass


def up():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def say(msg):
    print("[%7.1f] %s" % (up(), msg), flush=True)


def timing(what, secs):
    print("XENTEST TIME %s %.2f" % (what, secs), flush=True)


def run(args, timeout=120, check=True, env=None):
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise Fail("%s: no answer within %d s" % (" ".join(args[:3]), timeout))
    if check and p.returncode != 0:
        raise Fail("%s: exit %d: %s" % (" ".join(args[:4]), p.returncode, (p.stderr or p.stdout).strip()[-400:]))
    return p


def wait(what, cond, timeout, every=0.2):
    end = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() > end:
            raise Fail("%s: not within %d s" % (what, timeout))
        time.sleep(every)


class Rpc:
    """JSON-RPC to poold, for assertions (actions go through xe)."""

    def __init__(self, cafile, password):
        self.ctx = ssl.create_default_context(cafile=cafile)
        self.ctx.check_hostname = False
        self.conn = None
        self.session = self.call("session.login_with_password", "root", password, "2.21", "xentest")

    def post(self, body):
        if not self.conn:
            self.conn = http.client.HTTPSConnection("127.0.0.1", PORT, context=self.ctx, timeout=60)
        self.conn.request("POST", "/jsonrpc", body, {"Content-Type": "application/json"})
        return json.loads(self.conn.getresponse().read())

    def call(self, method, *params):
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1})
        try:
            ans = self.post(body)
        except (OSError, http.client.HTTPException):  # poold closed the idle connection
            self.conn = None
            ans = self.post(body)
        if "error" in ans:
            raise Fail("%s: %s %s" % (method, ans["error"].get("message"), ans["error"].get("data")))
        return ans["result"]

    def __call__(self, method, *params):
        return self.call(method, self.session, *params)


class Pool:
    """poold and the agents of host1 and host2 in this dom0."""

    def __init__(self):
        self.master = os.path.join(WORK, "master")
        self.procs = {}
        self.env = dict(os.environ)
        self.rpc = None

    def xe(self, *args, timeout=300, check=True):
        return run([OPT + "/xe"] + list(args), timeout=timeout, check=check, env=self.env)

    def start_poold(self):
        os.makedirs(self.master, exist_ok=True)
        pw = os.path.join(WORK, "password")
        with open(pw, "w") as f:
            f.write("xentest-password\n")
        out = run([OPT + "/poold", "init", "--dir", self.master, "--password-file", pw]).stdout
        self.fingerprint = out.split("SHA-256): ")[1].strip()
        with open(os.path.join(self.master, "xapi.conf"), "w") as f:
            f.write("listen-address: 127.0.0.1\nport: %d\nhost-heartbeat-timeout: 120s\n" % PORT)
        self.spawn("poold", [OPT + "/poold", "--dir", self.master], os.path.join(self.master, "poold.log"))
        wait("poold listening", lambda: os.path.exists(os.path.join(self.master, "poold.port")), 60)
        self.env.update(XE_SERVER="127.0.0.1", XE_PORT=str(PORT), XE_USERNAME="root",
                        XE_PASSWORD="xentest-password", XE_CACERT=os.path.join(self.master, "ca.pem"))
        self.rpc = Rpc(os.path.join(self.master, "ca.pem"), "xentest-password")

    def spawn(self, name, args, log):
        f = open(log, "ab")
        self.procs[name] = subprocess.Popen(args, stdout=f, stderr=f, stdin=subprocess.DEVNULL)

    def host_dir(self, i):
        return os.path.join(WORK, "host%d" % i)

    def xen_state(self, i):
        return os.path.join(self.host_dir(i), "state", "xen")

    def start_agent(self, i, join=True):
        d = self.host_dir(i)
        conf = os.path.join(d, "agent.conf")
        if join:
            os.makedirs(d, exist_ok=True)
            token = self.xe("pool-join-token-create").stdout.strip()
            with open(conf, "w") as f:
                f.write("master: 127.0.0.1:%d\nstate-dir: %s/state\nname: host%d\nlisten-address: 127.0.0.%d\n"
                        "address: 127.0.0.%d\nport: 0\nbackend: xen\nheartbeat-interval: 30s\nlog-level: debug\n"
                        'ca-fingerprint: "%s"\njoin-token: "%s"\n'
                        % (PORT, d, i, i + 1, i + 1, self.fingerprint, token))
        port = os.path.join(d, "state", "agent.port")
        if os.path.exists(port):
            os.unlink(port)
        cmd = [OPT + "/pool-agent", "--config", conf]
        if os.environ.get("XENTEST_STRACE"):  # debugging: every fd the agent touches, for the host to read
            cmd = ["strace", "-f", "-tt", "-s", "0", "-o", os.path.join(d, "strace.%d" % time.time()), "-e",
                   "trace=read,write,readv,writev,sendto,recvfrom,sendmsg,recvmsg,close,socketpair,accept4,connect,"
                   "clone,clone3,fork,vfork,execve,dup2,dup3,fcntl,shutdown,pipe2,openat,socket"] + cmd
        self.spawn("host%d" % i, cmd, os.path.join(d, "agent.log"))
        p = self.procs["host%d" % i]
        wait("agent of host%d listening" % i, lambda: os.path.exists(port) or p.poll() is not None, 90)
        if p.poll() is not None:
            raise Fail("the agent of host%d exited with %d: %s" % (i, p.returncode, self.tail(i, 5)))

    def stop(self, name, sig=signal.SIGTERM):
        p = self.procs.pop(name, None)
        if p and p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def tail(self, i, n=40):
        path = os.path.join(self.host_dir(i), "agent.log") if i else os.path.join(self.master, "poold.log")
        try:
            with open(path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError as e:
            return str(e)

    def host(self, name):
        return next(r for r, h in self.rpc("host.get_all_records").items() if h["name_label"] == name)

    def vm(self, ref):
        return self.rpc("VM.get_record", ref)


class Guest:
    """The PV guest's ticks, read from xenconsoled's logs. The destination of
    a migration is "<name>--incoming" when xenconsoled first sees it, so its
    log has that name: every guest-<name>*.log is read."""

    def __init__(self, name):
        self.name = name

    def clear_logs(self):
        for f in glob.glob(os.path.join(CONSOLE, "guest-%s*.log" % self.name)):
            os.unlink(f)

    def read(self):
        ups, ticks = 0, {}
        for path in glob.glob(os.path.join(CONSOLE, "guest-%s*.log" % self.name)):
            with open(path, errors="replace") as f:
                for line in f:
                    # pvgrub2's screen control codes may precede the first line
                    if "GUEST-UP" in line:
                        ups += 1
                    m = re.search(r"GUEST-TICK (\d+) ([\d.]+)", line)
                    if m:
                        ticks[int(m.group(1))] = float(m.group(2))
        return ups, ticks

    def last(self):
        ticks = self.read()[1]
        return max(ticks) if ticks else 0

    def wait_ticks(self, after, count=10, timeout=60):
        return wait("the guest's tick counter passing %d" % (after + count),
                    lambda: self.last() >= after + count, timeout)

    def max_gap(self, since):
        """(largest uptime gap between consecutive ticks from tick `since` on, the median gap)."""
        ticks = self.read()[1]
        gaps = sorted(ticks[n + 1] - ticks[n] for n in ticks if n >= since and n + 1 in ticks)
        if not gaps:
            raise Fail("no consecutive ticks after tick %d" % since)
        return gaps[-1], gaps[len(gaps) // 2]


def xl_domains():
    """name -> domid, as Xen has them (observation only)."""
    p = run([XL, "list"], check=False)
    out = {}
    for line in p.stdout.splitlines()[1:]:
        f = line.split()
        if len(f) >= 2 and f[1].isdigit():
            out[f[0]] = int(f[1])
    return out


def xs_read(path):
    p = run(["xenstore-read", path], check=False)
    return p.stdout.strip() if p.returncode == 0 else None


def owner_of(pool, i):
    with open(os.path.join(pool.xen_state(i), "owner")) as f:
        return f.read().strip()


def probe(pool, i, *args, check=True):
    cmd = [OPT + "/xen-probe", pool.xen_state(i)] + list(args)
    if os.environ.get("XENTEST_STRACE") and args[0].startswith("disk"):
        cmd = ["strace", "-f", "-tt", "-o", os.path.join(WORK, "host%d" % i, "strace.probe.%d" % time.time())] + cmd
    return run(cmd, check=check)


def probe_list(pool, i):
    out = []
    for line in probe(pool, i, "list").stdout.splitlines():
        out.append(dict(kv.split("=", 1) for kv in line.split()))
    return out


# ------------------------------------------------------------ observation

class Ctx:
    pass


def xl_info():
    info = {}
    for line in run([XL, "info"]).stdout.splitlines():
        k, _, v = line.partition(":")
        info[k.strip()] = v.strip()
    return info


def xen_cpuid_dynamic():
    """Xen's own dynamic feature sets (xen-cpuid), in XAPI's form: name -> set."""
    out = run(["/usr/lib/xen-4.17/bin/xen-cpuid"]).stdout
    sets = {}
    for line in out.split("Dynamic sets:")[-1].splitlines():
        m = re.match(r"(\S.*?)\s{2,}([0-9a-f:]+)$", line.strip())
        if m:
            sets[m.group(1)] = m.group(2).replace(":", "-")
    if "PV Default" not in sets:
        raise Fail("xen-cpuid printed no dynamic PV Default set: %s" % out[-400:])
    return sets
