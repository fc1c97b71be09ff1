"""
test_xenapi_npm_ha.py - Xen Orchestra's `xen-api` npm client (installed as
test_xenapi_npm.py does) through an HA failover on a 3-host devpool: it
enables HA with Async.pool.enable_ha, and while host3 dies it sees, through
its event loop, the HA_HOST_FAILED message and the protected VM running
again on another host. Driven by xenapi_ha.mjs.

Without node/npm or without a reachable registry the test FAILS, unless
POOLD_SKIP_NPM=1 is set, in which case it is skipped.
"""
import time
import unittest

from tests.integration import test_xenapi_npm_pool as base
from tests.integration.harness import SLOW
from tests.integration.hatest import kill_host, make_vm

TOTAL = base.TOTAL


class XenApiNpmHaTest(base.XenApiNpmPoolTest):
    script = "xenapi_ha.mjs"

    def test_client_sees_host_failed_and_vm_restarted(self):
        p = self.pool
        h3 = p.host_ref(3)
        vm = make_vm(p, "npm-protected", 128, "restart")
        p.rpc("VM.start_on", vm, h3, False, False)
        proc, lines = self.start_client(p.port, p.password, vm, h3)
        deadline = time.monotonic() + TOTAL + 5
        enabled = self.next_message(lines, deadline, "enabled")["enabled"]
        self.assertIs(enabled["ha_enabled"], True)
        self.next_message(lines, deadline, "READY")
        killed = kill_host(p, 3)
        msg = self.next_message(lines, deadline, "message")["message"]
        self.assertEqual(msg["obj_uuid"], p.host_uuid(3))
        self.assertIn("host3", msg["body"])
        upd = self.next_message(lines, deadline, "restarted")["restarted"]
        self.assertLess(time.monotonic() - killed, 20 * SLOW)
        self.assertIn(upd["host_name"], ("host1", "host2"))
        self.assertEqual(upd["resident_on"], p.rpc("VM.get_resident_on", vm))
        self.next_message(lines, deadline, "done")
        self.assertEqual(proc.wait(timeout=30), 0, "\n".join(self.stderr_lines[-30:]))
        p.rpc("VM.hard_shutdown", vm)

    test_client_sees_hosts_running_vms_and_a_start = None


if __name__ == "__main__":
    unittest.main()
