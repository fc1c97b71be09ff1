"""
test_rpu.py - the rolling pool upgrade on real pools (scripts/devpool): 3
hosts at version 0.1.0 with running VMs are upgraded to 0.2.0 by
pool.rolling_upgrade with the dev pool's upgrade command, which restarts
each host's agent as the newer version (and poold with the master's). The
guests' heartbeats are read from their processes throughout: no VM stops,
none runs twice. Also: what the upgrade blocks, refused mid-way; poold
killed mid-run; a failing command (a clean stop, a report, then a run that
finishes the job); HA enabled before and after with the same settings; a
member newer than the master refused; the dry run and the precheck.
"""
import signal
import subprocess
import sys
import unittest

from tests.integration import hatest
from tests.integration.pooltest import DevPool, HEARTBEAT_TIMEOUT
from tests.integration.rputest import (DEVPOOL, NEW, SLOW, BeatWatch, XapiError, assert_every_vm_ran, follow, hook, make_vm,
                                       phase_of, rolling, start_vms, state, versions, wait_until)

OLD = "0.1.0"


class RpuTest(unittest.TestCase):
    def setUp(self):
        self.p = DevPool(3, host_memory_mib=1024)
        self.addCleanup(self.p.close)

    def expect_refused(self, code, fn, *args, first=None):
        with self.assertRaises(XapiError) as cm:
            fn(*args)
        self.assertEqual(cm.exception.code, code, cm.exception.params)
        if first is not None:
            self.assertEqual(cm.exception.params[0], first, cm.exception.params)
        return cm.exception.params

    def vms_home(self, homes):
        for vm, host in homes.items():
            self.assertEqual(self.p.rpc("VM.get_power_state", vm), "Running")
            self.assertEqual(self.p.rpc("VM.get_resident_on", vm), host, self.p.rpc("VM.get_name_label", vm))

    # ---- the whole run

    def mid_run(self, halted):
        """What the upgrade refuses while the pool is mixed, and where starts go."""
        p = self.p
        pool = p.rpc("pool.get_all")[0]
        old = [r for r, h in p.rpc("host.get_all_records").items() if h["software_version"]["product_version"] != NEW]
        self.assertTrue(old, "the pool is mixed: some host is still at the old version")
        params = self.expect_refused("NOT_SUPPORTED_DURING_UPGRADE", p.rpc, "VM.set_memory_limits", halted, 16 << 20,
                                     64 << 20, 64 << 20, 64 << 20, first="VM.changing_memory_limits")
        self.assertIn("two versions", params[1])
        # the field setters XAPI runs as those operations, as xe vm-param-set calls them
        self.expect_refused("NOT_SUPPORTED_DURING_UPGRADE", p.rpc, "VM.set_VCPUs_max", halted, 2,
                            first="VM.changing_VCPUs")
        self.expect_refused("NOT_SUPPORTED_DURING_UPGRADE", p.rpc, "VM.set_memory_static_max", halted, 96 << 20,
                            first="VM.changing_static_range")
        p.rpc("VM.set_name_description", halted, "not an operation: allowed mid-run")
        # XAPI never lists changing_memory_limits; its static range is listed outside the mode only
        self.assertNotIn("changing_static_range", p.rpc("VM.get_allowed_operations", halted))
        self.assertIn("start", p.rpc("VM.get_allowed_operations", halted))
        self.expect_refused("NOT_SUPPORTED_DURING_UPGRADE", p.rpc, "SR.create", old[0], {"path": p.dir + "/sr2"}, 0,
                            "mid-run", "", "file", "user", True, {}, first="SR.create")
        self.expect_refused("NOT_SUPPORTED_DURING_UPGRADE", p.rpc, "pool.enable_ha", [], {"timeout": "5"},
                            first="pool.enable_ha")
        self.expect_refused("NOT_SUPPORTED_DURING_UPGRADE", p.rpc, "VM.start_on", halted, old[0], False, False,
                            first="VM.start")
        # a start goes to a host of the newest version; from there, not back to an old one
        p.rpc("VM.start", halted, False, False)
        on = p.rpc("VM.get_resident_on", halted)
        self.assertEqual(p.rpc("host.get_software_version", on)["product_version"], NEW)
        self.expect_refused("VM_HOST_INCOMPATIBLE_VERSION_MIGRATE", p.rpc, "VM.pool_migrate", halted, old[0], {},
                            first=old[0])
        p.rpc("VM.hard_shutdown", halted)
        self.assertEqual(p.rpc("pool.get_other_config", pool)["auto_poweron"], "false", "suspended meanwhile")

    def test_upgrade_every_host_without_stopping_a_vm(self):
        p = self.p
        homes = start_vms(p, 2)
        halted = make_vm(p, "rpu-halted", 64)
        pool = p.rpc("pool.get_all")[0]
        p.rpc("pool.add_to_other_config", pool, "auto_poweron", "true")
        self.assertEqual(set(versions(p).values()), {OLD})
        w = BeatWatch(p, [p.rpc("VM.get_uuid", v) for v in homes])
        self.addCleanup(w.stop)
        # the sleep leaves time to look at the mixed pool between hosts
        task = p.rpc("Async.pool.rolling_upgrade", {"command": hook(p, "--hardware-platform-versions 1-3", "sleep 2; "),
                                                    "host_timeout": "60", "command_timeout": "60"})
        wait_until(lambda: rolling(p) == "true", 90, "rolling-upgrade mode on once the master is upgraded")
        wait_until(lambda: phase_of(state(p, task), "host1") == "done", 60, "the master back and enabled")
        self.mid_run(halted)
        rec = follow(p, task)
        w.stop()
        self.assertEqual(rec["status"], "success", rec["error_info"])
        assert_every_vm_ran(self, w)
        self.assertEqual(set(versions(p).values()), {NEW})
        wait_until(lambda: rolling(p) is None, 5, "rolling-upgrade mode off")
        st = state(p, task)
        self.assertEqual([h["phase"] for h in st["hosts"]], ["done"] * 3)
        self.assertEqual(st["hosts"][0]["name"], "host1", "the master first")
        self.assertEqual(st["home"]["stuck"], {})
        self.vms_home(homes)
        for vm in homes:  # each met a host offering 1-3: version 0 raised to 1 on arrival
            self.assertEqual(p.rpc("VM.get_hardware_platform_version", vm), 1)
        self.assertEqual(p.rpc("pool.get_other_config", pool)["auto_poweron"], "true", "put back")
        for h in p.rpc("host.get_all_records").values():
            self.assertTrue(h["enabled"], h["name_label"])
            self.assertEqual(h["virtual_hardware_platform_versions"], ["1", "2", "3"])
        # blocked while mixed, listed again once the pool agrees
        self.assertIn("changing_static_range", p.rpc("VM.get_allowed_operations", halted))

    def test_poold_killed_mid_run_goes_on(self):
        p = self.p
        homes = start_vms(p, 2)
        w = BeatWatch(p, [p.rpc("VM.get_uuid", v) for v in homes])
        self.addCleanup(w.stop)
        task = p.rpc("Async.pool.rolling_upgrade", {"command": hook(p, before="sleep 1; ")})
        wait_until(lambda: phase_of(state(p, task), "host2") in ("evacuating", "upgrading"), 120,
                   "host2's turn")
        p.restart_poold(signal.SIGKILL)
        rec = follow(p, task)
        w.stop()
        self.assertEqual(rec["status"], "success", rec["error_info"])
        assert_every_vm_ran(self, w)
        self.assertEqual(set(versions(p).values()), {NEW})
        self.vms_home(homes)
        self.assertIn("it goes on", p.poold_log(200000))

    def test_failing_command_stops_cleanly_then_a_new_run_finishes(self):
        p = self.p
        homes = start_vms(p, 2)
        pool = p.rpc("pool.get_all")[0]
        p.rpc("pool.add_to_other_config", pool, "auto_poweron", "true")
        h1, h2, h3 = (p.host_ref(i) for i in (1, 2, 3))
        w = BeatWatch(p, [p.rpc("VM.get_uuid", v) for v in homes])
        self.addCleanup(w.stop)
        failing = "if [ {name} = host2 ]; then echo the installer failed; exit 3; fi; " + hook(p)
        task = p.rpc("Async.pool.rolling_upgrade", {"command": failing})
        rec = follow(p, task)
        self.assertEqual(rec["status"], "failure")
        self.assertEqual(rec["error_info"][:3], ["ROLLING_UPGRADE_FAILED", h2, "the upgrade command failed"])
        st = state(p, task)
        self.assertEqual([h["phase"] for h in st["hosts"]], ["done", "failed", "pending"])
        self.assertIn("the installer failed", st["failure"]["output"])
        self.assertEqual(st["hosts"][1]["exit_status"], 3)
        # that host is left disabled; nothing else is half-done
        self.assertFalse(p.rpc("host.get_enabled", h2))
        self.assertTrue(p.rpc("host.get_enabled", h1) and p.rpc("host.get_enabled", h3))
        for h in (h1, h2, h3):
            self.assertEqual(p.rpc("host.get_current_operations", h), {})
        self.assertEqual(versions(p), {"host1": NEW, "host2": OLD, "host3": OLD})
        self.assertEqual(rolling(p), "true")
        self.assertEqual(p.rpc("pool.get_other_config", pool)["auto_poweron"], "true")
        stuck = st["home"]["stuck"]
        for vm, host in homes.items():
            self.assertEqual(p.rpc("VM.get_power_state", vm), "Running")
            if host == h2:  # its home is disabled, and older than the master it may be on
                self.assertIn(stuck[vm][0], ("HOST_DISABLED", "VM_HOST_INCOMPATIBLE_VERSION_MIGRATE"))
            else:
                self.assertEqual(p.rpc("VM.get_resident_on", vm), host)
        # a second run goes on from there: the master is skipped
        plan = p.rpc("pool.rolling_upgrade_plan", {"command": hook(p)})
        self.assertEqual([(h["name"], h["skip"]) for h in plan["hosts"]],
                         [("host1", True), ("host2", False), ("host3", False)])
        self.assertEqual(plan["blocks"], [])
        rec = follow(p, p.rpc("Async.pool.rolling_upgrade", {"command": hook(p)}))
        w.stop()
        self.assertEqual(rec["status"], "success", rec["error_info"])
        assert_every_vm_ran(self, w)
        self.assertEqual(set(versions(p).values()), {NEW})
        self.assertTrue(p.rpc("host.get_enabled", h2))

    def test_ha_on_before_is_on_after_with_the_same_settings(self):
        p = self.p
        homes = start_vms(p, 1)
        pool = hatest.enable(p, timeout=5, tolerate=1)
        sr = p.rpc("VDI.get_SR", p.rpc("pool.get_ha_statefiles", pool)[0])
        config = p.rpc("pool.get_ha_configuration", pool)
        task = p.rpc("Async.pool.rolling_upgrade", {"command": hook(p)})
        wait_until(lambda: not p.rpc("pool.get_ha_enabled", pool), 30, "HA suspended for the run")
        rec = follow(p, task)
        self.assertEqual(rec["status"], "success", rec["error_info"])
        self.assertTrue(p.rpc("pool.get_ha_enabled", pool))
        self.assertEqual(p.rpc("VDI.get_SR", p.rpc("pool.get_ha_statefiles", pool)[0]), sr)
        self.assertEqual(p.rpc("pool.get_ha_configuration", pool)["timeout"], config["timeout"])
        self.assertEqual(p.rpc("pool.get_ha_host_failures_to_tolerate", pool), 1)
        wait_until(lambda: p.rpc("pool.get_ha_plan_exists_for", pool) == 1, 10, "the failover plan again")
        self.vms_home(homes)
        p.rpc("pool.disable_ha")

    def test_a_member_newer_than_the_master_is_refused(self):
        p = self.p
        upgrade = [sys.executable, DEVPOOL, "upgrade-host", "--dir", p.dir, "--version", NEW, "--host-uuid"]
        subprocess.run(upgrade + [p.host_uuid(3)], check=True, capture_output=True, timeout=60 * SLOW)
        h3 = p.host_ref(3)
        wait_until(lambda: not p.host_metrics(3)["live"], 4 * HEARTBEAT_TIMEOUT, "host3's reports refused")
        msgs = hatest.messages(p, "XAPI_STARTUP_BLOCKED_AS_VERSION_HIGHER_THAN_COORDINATOR")
        self.assertEqual([m["obj_uuid"] for m in msgs], [p.host_uuid(3)])
        self.assertEqual(p.rpc("host.get_software_version", h3)["product_version"], OLD, "nothing recorded")
        self.assertIsNone(rolling(p))
        # the master goes: host3 is heard again, host2 is now behind
        subprocess.run(upgrade + [p.host_uuid(1)], check=True, capture_output=True, timeout=60 * SLOW)
        wait_until(lambda: p.host_metrics(3)["live"], 10 * HEARTBEAT_TIMEOUT, "host3 live again")
        wait_until(lambda: rolling(p) == "true", 10, "rolling-upgrade mode on")
        subprocess.run(upgrade + [p.host_uuid(2)], check=True, capture_output=True, timeout=60 * SLOW)
        wait_until(lambda: rolling(p) is None, 10, "rolling-upgrade mode off")
        self.assertEqual(set(versions(p).values()), {NEW})

    def test_dry_run_and_precheck_change_nothing(self):
        p = self.p
        start_vms(p, 1)
        pinned = make_vm(p, "rpu-pinned", 64, platform={"nomigrate": "true"})
        p.rpc("VM.start_on", pinned, p.host_ref(2), False, False)
        r = p.xe("pool-rolling-upgrade", "dry-run=true", "upgrade-command=" + hook(p), check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(" 1. host1", r.stdout)
        self.assertIn("rpu-pinned", r.stdout)
        self.assertIn("cannot move: VM_IS_IMMOBILE", r.stdout)
        self.assertIn("Refused: CANNOT_EVACUATE_HOST", r.stdout)
        self.expect_refused("CANNOT_EVACUATE_HOST", p.rpc, "pool.rolling_upgrade", {"command": hook(p)})
        self.expect_refused("INVALID_VALUE", p.rpc, "pool.rolling_upgrade_plan", {"color": "blue"}, first="color")
        self.expect_refused("INVALID_VALUE", p.rpc, "pool.rolling_upgrade_plan", {"batch_size": "-1"})
        # nothing changed
        for h in p.rpc("host.get_all_records").values():
            self.assertTrue(h["enabled"])
            self.assertEqual(h["current_operations"], {})
        self.assertEqual(set(versions(p).values()), {OLD})
        pool = p.rpc("pool.get_all")[0]
        self.assertNotIn("auto_poweron", p.rpc("pool.get_other_config", pool))
        self.assertEqual([t for t in p.rpc("task.get_all_records").values() if t["status"] == "pending"], [])
        p.rpc("VM.hard_shutdown", pinned)
        r = p.xe("pool-rolling-upgrade", "dry-run=true", check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("Nothing blocks it", r.stdout)
        self.assertIn("waits for each host to be upgraded by hand", r.stdout)


if __name__ == "__main__":
    unittest.main()
