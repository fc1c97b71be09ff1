"""
test_hostops.py - a host's own life on a 3-host devpool: host.reboot and
host.shutdown (disabled and empty first, as XAPI: HOST_NOT_DISABLED,
HOST_IN_USE), host.restart_agent (guests run on), pool.eject (the host
leaves: its records go, its agent stops with its identity put aside) and
xe host-forget of a dead host.
"""
import fcntl
import glob
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
import unittest

from tests.integration.harness import SLOW, XapiError
from tests.integration.pooltest import DevPool, HEARTBEAT_TIMEOUT, pid_alive, wait_until
from tests.integration.test_pool import guest_heartbeat

MiB = 1 << 20


class HostOps(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = DevPool(3, host_memory_mib=1024)
        cls.rpc = cls.p.rpc

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    def refused(self, code, *call):
        with self.assertRaises(XapiError) as cm:
            self.rpc(*call)
        self.assertEqual(cm.exception.code, code, cm.exception.params)
        return cm.exception.params

    def vm(self, name):
        return self.rpc("VM.create", {"name_label": name, "memory_static_max": 64 * MiB, "memory_dynamic_max": 64 * MiB,
                                      "memory_dynamic_min": 64 * MiB, "memory_static_min": 16 * MiB,
                                      "other_config": {"sim-heartbeat-ms": "5"}})

    def boot(self, i):
        r = self.rpc("host.get_other_config", self.p.host_ref(i))
        return r.get("agent_port")

    def xe_in_tty(self, cols, rows, *args):
        """xe on a terminal of cols x rows; everything it wrote."""
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = dict(os.environ, **self.p.env, HOME=self.p.dir)
        proc = subprocess.Popen([os.path.join(os.environ.get("POOLD_BIN", "bin"), "xe")] + list(args), stdin=slave,
                                stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        out = b""
        while True:
            r, _, _ = select.select([master], [], [], 1)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        proc.wait(timeout=60 * SLOW)
        os.close(master)
        return proc.returncode, out.decode(errors="replace")

    def test_evacuate_display_fits(self):
        """The evacuation's table on a small terminal: no line wider than it,
        the cursor never moved up further than it is high (a redraw that
        reaches into the scrollback leaves copies there)."""
        rpc = self.rpc
        h2 = self.p.host_ref(2)
        vms = [self.vm("evac-display-with-a-long-name-%d" % i) for i in range(8)]
        for v in vms:
            rpc("VM.start_on", v, h2, False, False)
        cols, rows = 40, 6
        rc, out = self.xe_in_tty(cols, rows, "host-evacuate", "uuid=" + self.p.host_uuid(2), "batch-size=2")
        self.assertEqual(rc, 0, out)
        ups = [int(n) for n in re.findall(r"\x1b\[(\d+)A", out)]
        self.assertTrue(ups, out)
        self.assertLessEqual(max(ups), rows - 1, out)
        plain = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", out).replace("\r", "")
        for line in plain.split("\n"):
            self.assertLess(len(line), cols, repr(line))
        self.assertIn("and ", plain)  # eight VMs do not fit: the rest are counted
        self.assertIn(" GiB", plain)  # the bar counts the memory moved, not only VMs
        rpc("host.enable", h2)
        for v in vms:
            rpc("VM.hard_shutdown", v)
            rpc("VM.destroy", v)

    def test_reboot(self):
        rpc = self.rpc
        h = self.p.host_ref(1)
        vm = self.vm("onh1")
        rpc("VM.start_on", vm, h, False, False)
        self.refused("HOST_NOT_DISABLED", "host.reboot", h)
        self.assertNotIn("reboot", rpc("host.get_allowed_operations", h))
        rpc("host.disable", h)
        self.assertEqual(self.refused("HOST_IN_USE", "host.reboot", h), [h, "vm", vm])
        r = self.p.xe("host-reboot", "uuid=" + self.p.host_uuid(1), check=False)
        self.assertEqual(r.returncode, 1)
        rpc("host.evacuate", h)
        self.assertNotEqual(rpc("VM.get_resident_on", vm), h)
        self.assertIn("reboot", rpc("host.get_allowed_operations", h))
        pid, port = self.p.agent_pid(1), self.boot(1)
        rpc("host.reboot", h)
        # the agent comes back (same process, a new run) and the host is enabled again
        wait_until(lambda: rpc("host.get_enabled", h), 30, "host1 enabled after its reboot")
        self.assertEqual(rpc("host.get_current_operations", h), {})
        self.assertTrue(pid_alive(pid))
        self.assertEqual(self.p.agent_pid(1), pid)
        self.assertNotEqual(self.boot(1), port, "a new run of the agent listens on a new port")
        rpc("VM.pool_migrate", vm, h, {})  # it takes VMs again
        self.assertEqual(rpc("VM.get_resident_on", vm), h)
        rpc("VM.hard_shutdown", vm)
        rpc("VM.destroy", vm)

    def test_restart_agent(self):
        rpc = self.rpc
        h = self.p.host_ref(2)
        vm = self.vm("onh2")
        rpc("VM.start_on", vm, h, False, False)
        dpid = self.p.domain_pid(2, rpc("VM.get_domid", vm))
        port = self.boot(2)
        rpc("host.restart_agent", h)
        wait_until(lambda: self.boot(2) != port, 30, "host2's agent restarted")
        self.assertTrue(pid_alive(dpid), "the guest runs on through the agent's restart")
        hb = guest_heartbeat(dpid)
        wait_until(lambda: guest_heartbeat(dpid) > hb, 5, "the guest runs")
        rpc("VM.hard_shutdown", vm)
        rpc("VM.destroy", vm)

    def test_shutdown_forget_and_eject(self):
        rpc = self.rpc
        h3 = self.p.host_ref(3)
        rpc("host.disable", h3)
        pid = self.p.agent_pid(3)
        self.p.xe("host-shutdown", "uuid=" + self.p.host_uuid(3))
        wait_until(lambda: not pid_alive(pid), 20, "host3's agent stops")
        m = rpc("host.get_metrics", h3)
        wait_until(lambda: not rpc("host_metrics.get_live", m), 20, "host3 is not live")
        self.assertFalse(rpc("host.get_enabled", h3))
        # forgotten: asked first; without anybody to answer it is aborted
        r = self.p.xe("host-forget", "uuid=" + self.p.host_uuid(3), check=False)
        self.assertEqual((r.returncode, r.stderr.strip()), (1, "Aborted"))
        self.assertIn("WARNING: This operation is irreversible.", r.stdout)
        # it comes back: ejected cleanly instead
        self.p.start_agent(3)
        wait_until(lambda: rpc("host_metrics.get_live", m), 20, "host3 live again")
        vm = self.vm("onh3")
        rpc("host.enable", h3)
        rpc("VM.start_on", vm, h3, False, False)
        self.assertEqual(self.refused("OPERATION_NOT_ALLOWED", "pool.eject", h3), ["VM resident on host"])
        self.refused("HOST_CANNOT_DESTROY_SELF", "pool.eject", rpc("pool.get_master", rpc("pool.get_all")[0]))
        rpc("VM.hard_shutdown", vm)
        pbds = rpc("host.get_PBDs", h3)
        pid, nhosts = self.p.agent_pid(3), len(rpc("host.get_all"))
        self.p.xe("pool-eject", "host-uuid=" + self.p.host_uuid(3), "--force")
        self.refused("HANDLE_INVALID", "host.get_record", h3)
        for pb in pbds:
            self.refused("HANDLE_INVALID", "PBD.get_record", pb)
        wait_until(lambda: not pid_alive(pid), 20, "the ejected host's agent stops")
        aside = glob.glob(os.path.join(self.p.state_dir(3), "ejected-*", "agent.pem"))
        self.assertEqual(len(aside), 1, "its pool identity is kept aside")
        self.assertFalse(os.path.exists(os.path.join(self.p.state_dir(3), "agent.pem")))
        self.assertEqual(len(rpc("host.get_all")), nhosts - 1)
        rpc("VM.start", vm, False, False)
        self.assertIn(rpc("VM.get_resident_on", vm), (self.p.host_ref(1), self.p.host_ref(2)))
        rpc("VM.hard_shutdown", vm)
        rpc("VM.destroy", vm)


if __name__ == "__main__":
    unittest.main()
