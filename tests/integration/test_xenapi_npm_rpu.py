"""
test_xenapi_npm_rpu.py - Xen Orchestra's `xen-api` npm client (installed as
test_xenapi_npm.py does) connected through a whole rolling pool upgrade of
a 3-host devpool: it starts Async.pool.rolling_upgrade itself with the dev
pool's upgrade command and follows the task through its own event loop,
across poold's restart by the master's upgrade (R-25: an old client keeps
working). Driven by xenapi_rpu.mjs.

Without node/npm or without a reachable registry the test FAILS, unless
POOLD_SKIP_NPM=1 is set, in which case it is skipped.
"""
import time
import unittest

from tests.integration import test_xenapi_npm_pool as base
from tests.integration.rputest import NEW, SLOW, BeatWatch, assert_every_vm_ran, hook, start_vms

TOTAL = 240 * SLOW


class XenApiNpmRpuTest(base.XenApiNpmPoolTest):
    script, total = "xenapi_rpu.mjs", TOTAL

    def test_client_connected_through_the_upgrade(self):
        p = self.pool
        homes = start_vms(p, 1)
        w = BeatWatch(p, [p.rpc("VM.get_uuid", v) for v in homes])
        self.addCleanup(w.stop)
        proc, lines = self.start_client(p.port, p.password, int(TOTAL * 1000), hook(p))
        deadline = time.monotonic() + TOTAL + 5
        seen = self.next_message(lines, deadline, "connected")["connected"]
        self.assertEqual(set(seen["versions"].values()), {"0.1.0"})
        done = self.next_message(lines, deadline, "done")["done"]
        self.assertTrue(done["result_is_text"])
        self.assertTrue(done["mode_on"] and done["mode_off"], "the client saw the mode come and go: %s" % done)
        self.assertEqual(set(done["versions"].values()), {NEW}, done)
        self.assertGreater(done["ok_after_error"], 0, "its event loop went on after poold restarted: %s" % done)
        self.assertEqual(proc.wait(timeout=30), 0, "\n".join(self.stderr_lines[-30:]))
        w.stop()
        assert_every_vm_ran(self, w)
        for vm, host in homes.items():
            self.assertEqual(p.rpc("VM.get_resident_on", vm), host)

    test_client_sees_hosts_running_vms_and_a_start = None


if __name__ == "__main__":
    unittest.main()
