"""
test_xenapi_npm_vmops.py - Xen Orchestra's `xen-api` npm client (the version
test_xenapi_npm.py pins) doing XO's everyday VM operations on a 2-host
devpool, every call through Async and its task watched through events:
New VM (clone of a template, provision, start), snapshot and revert,
reboot, suspend and resume, hot-plug of a disk and a NIC, and what the
client's cache shows while the VM migrates (current_operations holds
pool_migrate, allowed_operations what may run meanwhile). Driven by
xenapi_vmops.mjs. POOLD_SKIP_NPM=1 skips it where no registry is reachable.
"""
import os
import time
import unittest

from tests.integration import test_xenapi_npm as npm
from tests.integration import test_xenapi_npm_pool as base
from tests.integration.harness import SLOW
from tests.integration.pooltest import DevPool

TOTAL = 90 * SLOW


class XenApiNpmVmOps(base.XenApiNpmPoolTest):
    script, total = "xenapi_vmops.mjs", TOTAL
    test_client_sees_hosts_running_vms_and_a_start = None  # the pool test's own

    def setUp(self):
        if os.environ.get("POOLD_SKIP_NPM") == "1":
            self.skipTest("POOLD_SKIP_NPM=1")
        why = npm.ensure_xen_api()
        if why:
            self.fail(why + " -- set POOLD_SKIP_NPM=1 to skip this test")
        self.pool = DevPool(2, host_memory_mib=4096)
        self.addCleanup(self.pool.close)

    def test_xo_vm_operations(self):
        p = self.pool
        sr = next(v["uuid"] for v in p.rpc("SR.get_all_records").values() if v["shared"])
        net = next(r for r, n in p.rpc("network.get_all_records").items() if n["PIFs"])
        h1, h2 = p.host_ref(1), p.host_ref(2)
        proc, lines = self.start_client(p.port, p.password, sr, h1, h2, net)
        deadline = time.monotonic() + TOTAL + 5
        created = self.next_message(lines, deadline, "created")["created"]
        self.assertEqual((created["vbds"], created["template"]), (1, False))
        vm = created["vm"]
        snap = self.next_message(lines, deadline, "snapshot")["snapshot"]
        self.assertEqual((snap["reverted_state"], snap["parent"]), ("Halted", snap["snap"]))
        rb = self.next_message(lines, deadline, "rebooted")["rebooted"]
        self.assertNotEqual(rb["domid_before"], rb["after"])
        res = self.next_message(lines, deadline, "resumed")["resumed"]
        self.assertEqual((res["suspended"], res["state"]), ("Suspended", "Running"))
        hp = self.next_message(lines, deadline, "hotplug")["hotplug"]
        self.assertEqual(hp["vbd"], {"attached": True, "device": "xvdb"})
        self.assertIs(hp["vif"]["attached"], True)
        mig = self.next_message(lines, deadline, "migrating")["migrating"]
        self.assertEqual(mig["current"], ["pool_migrate"])
        self.assertNotIn("pool_migrate", mig["allowed"])
        self.assertNotIn("suspend", mig["allowed"])
        done = self.next_message(lines, deadline, "migrated")["migrated"]
        self.assertEqual(done["resident_on"], h2)
        self.assertIn("pool_migrate", done["allowed"])
        self.assertIn("suspend", done["allowed"])
        self.next_message(lines, deadline, "done")
        self.assertEqual(proc.wait(timeout=30), 0, "\n".join(self.stderr_lines[-30:]))
        self.assertEqual(p.rpc("VM.get_resident_on", vm), h2)
        p.rpc("VM.hard_shutdown", vm)


if __name__ == "__main__":
    unittest.main()
