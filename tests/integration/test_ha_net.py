"""
test_ha_net.py - HA when the network or the statefile fails, not the host:
a 3-host devpool whose agents each run in a network namespace of their own
(on a bridge in another namespace; poold in the test's namespace on a veth
into that bridge), timeout 5 s.

- host3's link taken down: it still sees the statefile but is the minority,
  so it fences (its agent exits, its domains end) and the majority restarts
  its protected VMs; no VM ever runs twice (every host's processes sampled
  every 50 ms, not only the database);
- host3 alone loses the statefile (an empty tmpfs mounted over the SR's
  directory in its mount namespace) while hearing everyone: it fences, as
  the others still see the statefile;
- every host loses it: all still hear each other (rule 2), nobody fences.

The namespaces, bridge and veths are created here and always deleted;
traffic goes only to addresses inside them. Needs root and iproute2.
"""
import os
import random
import shutil
import subprocess
import time
import unittest

from tests.integration.hatest import TIMEOUT, DoubleWatch, enable, make_vm, messages, where
from tests.integration.pooltest import DevPool, pid_alive, wait_until


def sh(*args, check=True):
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=30)


class Net:
    """A bridge in a namespace of its own, a veth from this namespace into it
    (poold's address .254), and one namespace per host with its address."""

    def __init__(self, hosts):
        self.tag = "%04x" % random.randrange(0x10000)
        self.nets = []
        used = sh("ip", "-4", "route").stdout
        third = next(y for y in random.sample(range(1, 250), 249) if "10.213.%d." % y not in used)
        self.prefix = "10.213.%d." % third
        self.br = "hab" + self.tag
        self.root_if = "hv%sm" % self.tag
        try:
            self._make(hosts)
        except BaseException:
            self.close()
            raise

    def ns(self, i):
        return "ha%sh%d" % (self.tag, i)

    def _make(self, hosts):
        b = self.br
        sh("ip", "netns", "add", b)
        self.nets.append(b)
        sh("ip", "-n", b, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", b, "link", "set", "br0", "up")
        sh("ip", "link", "add", self.root_if, "type", "veth", "peer", "name", "m0", "netns", b)
        sh("ip", "-n", b, "link", "set", "m0", "master", "br0", "up")
        sh("ip", "addr", "add", self.prefix + "254/24", "dev", self.root_if)
        sh("ip", "link", "set", self.root_if, "up")
        for i in range(1, hosts + 1):
            n = self.ns(i)
            sh("ip", "netns", "add", n)
            self.nets.append(n)
            sh("ip", "-n", n, "link", "set", "lo", "up")
            sh("ip", "-n", b, "link", "add", "h%d" % i, "type", "veth", "peer", "name", "eth0", "netns", n)
            sh("ip", "-n", b, "link", "set", "h%d" % i, "master", "br0", "up")
            sh("ip", "-n", n, "addr", "add", "%s%d/24" % (self.prefix, i), "dev", "eth0")
            sh("ip", "-n", n, "link", "set", "eth0", "up")

    def devpool_args(self, hosts):
        args = ["--master-address", self.prefix + "254"]
        for i in range(1, hosts + 1):
            args += ["--host-address", "host%d=%s%d" % (i, self.prefix, i), "--host-netns", "host%d=%s" % (i, self.ns(i))]
        return args

    def cut(self, i):
        sh("ip", "-n", self.br, "link", "set", "h%d" % i, "down")

    def close(self):
        sh("ip", "link", "del", self.root_if, check=False)
        for n in reversed(self.nets):
            sh("ip", "netns", "del", n, check=False)
        self.nets = []


def can_run():
    return os.geteuid() == 0 and shutil.which("ip") and shutil.which("nsenter")


@unittest.skipUnless(can_run(), "needs root, ip and nsenter")
class NetFailures(unittest.TestCase):
    def setUp(self):
        self.net = Net(3)
        try:
            self.p = DevPool(3, host_memory_mib=2048, extra=self.net.devpool_args(3))
        except BaseException:
            self.net.close()
            raise
        self.mounted = []

    def tearDown(self):
        try:
            for pid, path in self.mounted:
                if pid_alive(pid):
                    sh("nsenter", "-t", str(pid), "-m", "umount", path, check=False)
            self.p.close()
        finally:
            self.net.close()

    def sr_dir(self):
        return os.path.join(self.p.dir, "sr")

    def lose_statefile(self, i):
        """An empty tmpfs over the SR's directory, in host i's mount
        namespace only: its agent can no longer open the statefile."""
        pid = self.p.agent_pid(i)
        sh("nsenter", "-t", str(pid), "-m", "mount", "-t", "tmpfs", "none", self.sr_dir())
        self.mounted.append((pid, self.sr_dir()))

    def setup_vms(self):
        p = self.p
        h1, h3 = p.host_ref(1), p.host_ref(3)
        on3 = [make_vm(p, "on3-%d" % k, 128, "restart") for k in range(2)]
        on1 = make_vm(p, "on1", 128, "restart")
        for vm in on3:
            p.rpc("VM.start_on", vm, h3, False, False)
        p.rpc("VM.start_on", on1, h1, False, False)
        enable(p, tolerate=1)
        return on3, on1

    def assert_fenced_and_restarted(self, on3, on1, watch):
        p = self.p
        agent3 = p.agent_pid(3)
        doms3 = [int(d["pid"]) for d in p.domains(3).values()]
        try:
            wait_until(lambda: not pid_alive(agent3), 3 * TIMEOUT + 10, "host3's agent fenced and gone")
            self.assertFalse(any(pid_alive(d) for d in doms3), "host3's domains still run after it fenced")
            self.assertIn("fencing this host", p.agent_log(3, 100000))
            wait_until(lambda: messages(p, "HA_HOST_FAILED"), 20, "HA_HOST_FAILED")
            wait_until(lambda: all(where(p, vm)[0] == "Running" and where(p, vm)[1] in (1, 2) for vm in on3), 20,
                       "host3's VMs running on the majority")
            time.sleep(0.3)
        finally:
            doubles = watch.stop()
        self.assertEqual(doubles, [], "a VM ran twice")
        self.assertEqual(where(p, on1), ("Running", 1))
        failed = messages(p, "HA_HOST_FAILED")
        self.assertEqual([m["obj_uuid"] for m in failed], [p.host_uuid(3)])

    def test_partition_minority_fences(self):
        on3, on1 = self.setup_vms()
        watch = DoubleWatch(self.p)
        self.net.cut(3)
        self.assert_fenced_and_restarted(on3, on1, watch)

    def test_statefile_lost_by_one_host(self):
        on3, on1 = self.setup_vms()
        watch = DoubleWatch(self.p)
        self.lose_statefile(3)
        self.assert_fenced_and_restarted(on3, on1, watch)

    def test_statefile_lost_by_every_host(self):
        p = self.p
        on3, on1 = self.setup_vms()
        agents = [p.agent_pid(i) for i in (1, 2, 3)]
        for i in (1, 2, 3):
            self.lose_statefile(i)
        # rule 2: nobody sees the statefile, everyone hears everyone: all stay up
        time.sleep(3 * TIMEOUT)
        self.assertTrue(all(pid_alive(a) for a in agents))
        self.assertEqual(messages(p, "HA_HOST_FAILED"), [])
        for vm in on3:
            self.assertEqual(where(p, vm), ("Running", 3))
        for i in (1, 2, 3):
            self.assertNotIn("fencing this host", p.agent_log(i, 100000))
        # the statefile back: still up, and on rule 1 again
        for pid, path in self.mounted:
            sh("nsenter", "-t", str(pid), "-m", "umount", path)
        self.mounted = []
        time.sleep(TIMEOUT)
        self.assertTrue(all(pid_alive(a) for a in agents))
        self.assertEqual(where(p, on1), ("Running", 1))


if __name__ == "__main__":
    unittest.main()
