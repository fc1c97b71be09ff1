"""
test_xenapi_npm_master.py - Xen Orchestra's `xen-api` npm client (installed
as test_xenapi_npm.py does) through a master failover (docs/MASTER.md): a
3-host devpool where every host runs a poold (--standby-masters), HA on
(T = 5 s), the client connected to host1's master. Host1 dies at once (its
poold, agent, watchdog and domains); the client sees its event loop fail,
connects to the other hosts it learnt from its own cache until one lets it
in (a standby answers HOST_IS_SLAVE with the new master's address and the
client follows it), and its new event loop shows host1's protected VM
running again on host2 or host3. Driven by xenapi_master.mjs.

Without node/npm or without a reachable registry the test FAILS, unless
POOLD_SKIP_NPM=1 is set, in which case it is skipped.
"""
import os
import time
import unittest

from tests.integration import test_xenapi_npm as npm
from tests.integration import test_xenapi_npm_pool as base
from tests.integration.harness import SLOW
from tests.integration.hatest import enable, make_vm
from tests.integration.pooltest import DevPool, wait_until
from tests.integration.test_master import kill_master_host, standbys_know


class XenApiNpmMasterTest(base.XenApiNpmPoolTest):
    script, total = "xenapi_master.mjs", 90 * SLOW

    def setUp(self):
        if os.environ.get("POOLD_SKIP_NPM") == "1":
            self.skipTest("POOLD_SKIP_NPM=1")
        why = npm.ensure_xen_api()
        if why:
            self.fail(why + " -- set POOLD_SKIP_NPM=1 to skip this test")
        self.pool = DevPool(3, host_memory_mib=2048, masters=True)
        self.addCleanup(self.pool.close)

    def test_client_follows_the_new_master(self):
        p = self.pool
        vm = make_vm(p, "npm-protected", 128, "restart")
        p.rpc("VM.start_on", vm, p.host_ref(1), False, False)
        enable(p)
        wait_until(lambda: "master lease: holding the lease" in p.poold_log(100000, 1), 10, "the master's lease")
        standbys_know(p)
        proc, lines = self.start_client(p.port, p.password, p.addresses[1], vm)
        deadline = time.monotonic() + self.total + 5
        ready = self.next_message(lines, deadline, "READY")["READY"]
        self.assertEqual(ready["hosts"], 3)
        self.assertEqual(sorted(ready["others"]), sorted([p.addresses[2], p.addresses[3]]))
        kill_master_host(p, 1)
        self.next_message(lines, deadline, "lost")
        again = self.next_message(lines, deadline, "reconnected")["reconnected"]
        self.assertNotEqual(again["master"], again["old_master"])
        self.assertIn(again["url"], (p.addresses[2], p.addresses[3]))
        up = self.next_message(lines, deadline, "restarted")["restarted"]
        self.assertIn(up["host_name"], ("host2", "host3"))
        self.next_message(lines, deadline, "done")
        self.assertEqual(proc.wait(timeout=30), 0, "\n".join(self.stderr_lines[-30:]))
        new = 2 if again["url"] == p.addresses[2] else 3
        p.env["XE_SERVER"] = p.addresses[new]
        wait_until(lambda: p.rpc("VM.get_power_state", vm) == "Running", 10, "the VM running, as poold says")
        p.rpc("VM.hard_shutdown", vm)

    test_client_sees_hosts_running_vms_and_a_start = None


if __name__ == "__main__":
    unittest.main()
