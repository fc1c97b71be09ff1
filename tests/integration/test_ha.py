"""
test_ha.py - HA failover on a 3-host devpool on loopback, timeout 5 s:

- a host dies (its agent, watchdog and domains killed at once): poold
  declares it failed within T + 1 s (HA_HOST_FAILED), its protected VMs run
  on the other hosts in their order groups (start_delay between groups),
  the best-effort VM after them, the unprotected one stays halted, and no
  VM ever runs twice (every host's processes sampled every 50 ms); the host
  restarted rejoins HA;
- admission control: starts, placements, host.disable, a higher
  failures-to-tolerate and a VM made protected that would break the plan
  are refused with HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN, VM.start is
  steered to a host that keeps it, ha_allow_overcommit lets them through
  and the pool then says it is overcommitted; host.evacuate names the
  unprotected VMs (HOST_EVACUATE_VM_NOT_HA_PROTECTED);
- errors: HA_IS_ENABLED, HA_NOT_ENABLED, INVALID_VALUE for priorities,
  orders, delays and timeouts, SR_HAS_NO_PBDS, HOST_OFFLINE,
  CANNOT_CREATE_STATE_FILE;
- HA disabled cleanly (hosts disarmed, watchdogs gone, the statefile VDI
  kept and reused), and xe's commands.

Every test ends with the pool-wide consistency check (DevPool.close).
"""
import os
import time
import unittest

from tests.integration.harness import SLOW, XapiError
from tests.integration.hatest import (TIMEOUT, DoubleWatch, enable, kill_host, make_vm, messages, retry_start,
                                      watchdog_pid, where)
from tests.integration.pooltest import DevPool, pid_alive, wait_until


def code_of(fn, *args):
    try:
        fn(*args)
    except XapiError as e:
        return e.code
    return None


class HostDeath(unittest.TestCase):
    def setUp(self):
        self.p = DevPool(3, host_memory_mib=2048)

    def tearDown(self):
        self.p.close()

    def test_host_death_restarts_protected_vms(self):
        p = self.p
        h2, h3 = p.host_ref(2), p.host_ref(3)
        first = [make_vm(p, "first%d" % k, 128, "restart", order=1, start_delay=2) for k in range(2)]
        second = make_vm(p, "second", 128, "restart", order=2)
        best = make_vm(p, "best", 128, "best-effort")
        plain = make_vm(p, "plain", 128, "")
        stays = make_vm(p, "stays", 128, "restart")
        for vm in first + [second, best, plain]:
            p.rpc("VM.start_on", vm, h3, False, False)
        p.rpc("VM.start_on", stays, h2, False, False)
        enable(p, tolerate=1)
        self.assertTrue(p.rpc("VM.get_ha_always_run", first[0]))
        uuid = {vm: p.rpc("VM.get_uuid", vm) for vm in first + [second, best, plain]}
        watch = DoubleWatch(p)
        try:
            died = kill_host(p, 3)
            wait_until(lambda: messages(p, "HA_HOST_FAILED"), TIMEOUT + 5, "HA_HOST_FAILED")
            detect = time.monotonic() - died
            self.assertLessEqual(detect, (TIMEOUT + 1) * SLOW + 0.5, "detected after %.2f s" % detect)
            self.assertFalse(p.host_metrics(3)["live"])
            wait_until(lambda: all(where(p, vm)[0] == "Running" for vm in first + [second, best]), 20,
                       "protected and best-effort VMs running again")
            time.sleep(0.3)  # the watcher's next sample sees them too
        finally:
            doubles = watch.stop()
        self.assertEqual(doubles, [], "a VM ran twice")
        self.assertGreater(watch.samples, 20)
        for vm in first + [second, best]:
            self.assertIn(where(p, vm)[1], (1, 2))
        self.assertEqual(where(p, plain), ("Halted", None))
        self.assertEqual(where(p, stays), ("Running", 2))
        seen = {vm: min(t for h, t in watch.first_seen[uuid[vm]].items() if h != 3) for vm in uuid if vm != plain}
        # order groups: the second starts only after the first group plus its start_delay (2 s)
        self.assertGreaterEqual(seen[second] - max(seen[v] for v in first), 2.0 - 0.2)
        self.assertGreaterEqual(seen[best], seen[second])
        self.assertLessEqual(max(seen.values()) - died, (TIMEOUT + 1 + 2 + 3) * SLOW)
        # the host comes back: a new run of its agent rejoins HA
        p.start_agent(3)
        wait_until(lambda: p.host_metrics(3)["live"], 10, "host3 live again")
        self.assertEqual(p.rpc("host.get_ha_network_peers", p.host_ref(3)), [])
        # its agent listens on a new port: the others are told, and the new run joins the liveset
        wait_until(lambda: p.agent_log(3, 200000).count("joined the liveset (3 host(s))") == 2, 30,
                   "host3's new run joined HA")
        wait_until(lambda: len(p.rpc("host.get_ha_network_peers", p.host_ref(3))) == 3, 20, "host3 hears everyone")
        wait_until(lambda: len(p.rpc("host.get_ha_network_peers", p.host_ref(1))) == 3, 20, "host1 hears host3")


class Admission(unittest.TestCase):
    """Hosts of 2 GiB. Protected VMs a (host1) and b (host2) of 1 GiB: one
    failure is survived as long as some other host has 1 GiB free."""

    def setUp(self):
        self.p = DevPool(3, host_memory_mib=2048)

    def tearDown(self):
        self.p.close()

    def test_admission_control(self):
        p = self.p
        h1, h2, h3 = p.host_ref(1), p.host_ref(2), p.host_ref(3)
        a, b = make_vm(p, "a", 1024, "restart"), make_vm(p, "b", 1024, "restart")
        p.rpc("VM.start_on", a, h1, False, False)
        p.rpc("VM.start_on", b, h2, False, False)
        pool = enable(p, tolerate=1)
        # a big unprotected VM on host3: host1's or host2's failure still finds 1 GiB
        u = make_vm(p, "u", 1536)
        self.assertIsNone(retry_start(p, u, h3))
        # made protected, host3's failure would find no place for it
        self.assertEqual(code_of(p.rpc, "VM.set_ha_restart_priority", u, "restart"),
                         "HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN")
        # another VM on host2 would leave a's failure nowhere to go
        v = make_vm(p, "v", 512)
        self.assertEqual(retry_start(p, v, h2), "HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN")
        self.assertEqual(retry_start(p, v, h1), "HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN")
        # VM.start is steered to the host that keeps the plan
        self.assertIsNone(retry_start(p, v))
        self.assertEqual(where(p, v), ("Running", 3))
        # disabling host2 (a's only refuge now) or asking for two failures: refused
        self.assertEqual(code_of(p.rpc, "host.disable", h2), "HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN")
        self.assertTrue(p.rpc("host.get_enabled", h2))
        self.assertEqual(code_of(p.rpc, "pool.set_ha_host_failures_to_tolerate", pool, 2),
                         "HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN")
        self.assertEqual(p.rpc("pool.ha_compute_max_host_failures_to_tolerate"), 1)
        self.assertFalse(p.rpc("pool.ha_failover_plan_exists", 2))
        # what-if: with u protected the pool tolerates nothing
        self.assertEqual(p.rpc("pool.ha_compute_hypothetical_max_host_failures_to_tolerate", {u: "restart"}), 0)
        # evacuating host3 under HA: its unprotected VMs are named
        prevent = p.rpc("host.get_vms_which_prevent_evacuation", h3)
        self.assertEqual(prevent[u][0], "HOST_EVACUATE_VM_NOT_HA_PROTECTED")
        self.assertEqual(prevent[v][0], "HOST_EVACUATE_VM_NOT_HA_PROTECTED")
        # overcommit allowed: the start goes through, the pool says it is overcommitted
        w = make_vm(p, "w", 512)
        p.rpc("pool.set_ha_allow_overcommit", pool, True)
        self.assertIsNone(retry_start(p, w, h2))
        wait_until(lambda: p.rpc("pool.get_ha_overcommitted", pool), 10, "the pool overcommitted")
        self.assertEqual(p.rpc("pool.get_ha_plan_exists_for", pool), 0)
        wait_until(lambda: messages(p, "HA_POOL_OVERCOMMITTED"), 10, "HA_POOL_OVERCOMMITTED")
        # the failover plan, explained
        plan = p.rpc("pool.ha_plan", h1)
        self.assertEqual(plan["tolerates"], 0)
        why = plan["failures"][h1]["vms"][a]
        self.assertEqual(why["error_code"], "HOST_NOT_ENOUGH_FREE_MEMORY")
        for vm in (w, v, u):
            p.rpc("VM.hard_shutdown", vm)
        wait_until(lambda: not p.rpc("pool.get_ha_overcommitted", pool), 10, "no longer overcommitted")
        plan = p.rpc("pool.ha_plan", "")
        self.assertEqual(plan["tolerates"], 2)
        self.assertIn(plan["failures"][h1]["vms"][a]["host"], (h2, h3))
        p.rpc("pool.disable_ha")


class Errors(unittest.TestCase):
    def setUp(self):
        self.p = DevPool(3, host_memory_mib=1024)

    def tearDown(self):
        self.p.close()

    def test_errors_and_disable(self):
        p = self.p
        vm = make_vm(p, "e", 128)
        self.assertEqual(code_of(p.rpc, "pool.disable_ha"), "HA_NOT_ENABLED")
        for bad in ("always", "Restart", "restart "):
            self.assertEqual(code_of(p.rpc, "VM.set_ha_restart_priority", vm, bad), "INVALID_VALUE")
        self.assertEqual(code_of(p.rpc, "VM.set_order", vm, -1), "INVALID_VALUE")
        self.assertEqual(code_of(p.rpc, "VM.set_start_delay", vm, -5), "INVALID_VALUE")
        for t in ("x", "1", "100000", ""):
            self.assertEqual(code_of(p.rpc, "pool.enable_ha", [], {"timeout": t}), "INVALID_VALUE")
        # an SR only host1 has plugged cannot hold the statefile
        local = os.path.join(p.dir, "local1")
        os.makedirs(local)
        sr = p.rpc("SR.create", p.host_ref(1), {"path": local}, 0, "local", "", "file", "user", False, {})
        err = None
        try:
            p.rpc("pool.enable_ha", [sr], {"timeout": "5"})
        except XapiError as e:
            err = e
        self.assertEqual((err.code, err.params), ("SR_HAS_NO_PBDS", [sr]))
        # a host down: HOST_OFFLINE naming it
        import signal
        p.kill_agent(3, signal.SIGTERM)
        wait_until(lambda: not p.host_metrics(3)["live"], 15, "host3 not live")
        try:
            p.rpc("pool.enable_ha", [], {"timeout": "5"})
            self.fail("enabled with a host down")
        except XapiError as e:
            self.assertEqual((e.code, e.params), ("HOST_OFFLINE", [p.host_ref(3)]))
        p.start_agent(3)
        wait_until(lambda: p.host_metrics(3)["live"], 15, "host3 live")
        # enabled, then again; then disabled cleanly
        pool = enable(p)
        self.assertTrue(p.rpc("pool.get_ha_enabled", pool))
        self.assertEqual(code_of(p.rpc, "pool.enable_ha", [], {}), "HA_IS_ENABLED")
        statefiles = p.rpc("pool.get_ha_statefiles", pool)
        self.assertEqual(len(statefiles), 1)
        self.assertEqual(p.rpc("VDI.get_type", statefiles[0]), "ha_statefile")
        wds = [watchdog_pid(p, i) for i in (1, 2, 3)]
        self.assertTrue(all(w and pid_alive(w) for w in wds))
        p.rpc("pool.disable_ha")
        self.assertFalse(p.rpc("pool.get_ha_enabled", pool))
        self.assertEqual(p.rpc("pool.get_ha_statefiles", pool), [])
        wait_until(lambda: not any(pid_alive(w) for w in wds), 10, "the watchdogs gone")
        for i in (1, 2, 3):
            self.assertIn("HA disarmed", p.agent_log(i, 100000))
        # hosts disarmed do not fence: host3's agent stopped cleanly keeps its domain
        h3 = p.host_ref(3)
        p.rpc("VM.start_on", vm, h3, False, False)
        time.sleep(TIMEOUT + 1)
        self.assertEqual(where(p, vm), ("Running", 3))
        self.assertEqual(messages(p, "HA_HOST_FAILED"), [])
        # enabled again: the statefile VDI is reused
        enable(p)
        self.assertEqual(p.rpc("pool.get_ha_statefiles", pool), statefiles)
        p.rpc("VM.hard_shutdown", vm)


class SmallPools(unittest.TestCase):
    def test_no_statefile(self):
        p = DevPool(2, host_memory_mib=512, extra=["--no-sr"])
        try:
            self.assertEqual(code_of(p.rpc, "pool.enable_ha", [], {"timeout": "5"}), "CANNOT_CREATE_STATE_FILE")
        finally:
            p.close()

    def test_one_host(self):
        p = DevPool(1, host_memory_mib=512)
        try:
            self.assertEqual(code_of(p.rpc, "pool.enable_ha", [], {"timeout": "5"}), "HA_TOO_FEW_HOSTS")
        finally:
            p.close()


class Xe(unittest.TestCase):
    def setUp(self):
        self.p = DevPool(2, host_memory_mib=1024)

    def tearDown(self):
        self.p.close()

    def test_xe_commands(self):
        p = self.p
        vm = make_vm(p, "xe1", 128)
        u = p.rpc("VM.get_uuid", vm)
        p.xe("vm-param-set", "uuid=" + u, "ha-restart-priority=restart", "order=3", "start-delay=7")
        self.assertEqual(p.xe("vm-param-get", "uuid=" + u, "param-name=ha-restart-priority").stdout.strip(), "restart")
        self.assertEqual(p.xe("vm-param-get", "uuid=" + u, "param-name=order").stdout.strip(), "3")
        r = p.xe("vm-param-set", "uuid=" + u, "ha-restart-priority=sometimes", check=False)
        self.assertNotEqual(r.returncode, 0)
        # xe renders a known code as XAPI's xe does: its description, then its parameters
        self.assertIn("The value given is invalid", r.stderr)
        self.assertIn("value: sometimes", r.stderr)
        sr = p.xe("sr-list", "name-label=devpool shared SR", "--minimal").stdout.strip()
        p.xe("pool-ha-enable", "heartbeat-sr-uuids=" + sr, "ha-config:timeout=5")
        self.assertEqual(p.xe("pool-param-get", "uuid=" + p.xe("pool-list", "--minimal").stdout.strip(),
                              "param-name=ha-enabled").stdout.strip(), "true")
        p.xe("vm-start", "uuid=" + u)
        self.assertEqual(p.xe("pool-ha-compute-max-host-failures-to-tolerate").stdout.strip(), "1")
        out = p.xe("pool-ha-plan").stdout
        self.assertIn("failures tolerated: 1", out)
        self.assertIn("xe1", out)
        r = p.xe("pool-ha-enable", check=False)
        self.assertIn("because HA is enabled on the Pool", r.stderr)
        p.xe("pool-ha-prevent-restarts-for", "seconds=0")
        p.xe("vm-shutdown", "uuid=" + u, "force=true")
        p.xe("pool-ha-disable")
        r = p.xe("pool-ha-disable", check=False)
        self.assertIn("because HA is not enabled on the Pool", r.stderr)


if __name__ == "__main__":
    unittest.main()
