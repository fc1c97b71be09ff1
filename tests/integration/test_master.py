"""
test_master.py - the pool master's role moves (docs/MASTER.md): 3-host
devpools where every host runs a poold (devpool --standby-masters), host1's
the first master.

- HA on (T = 5 s), the master's host dies (its poold, agent, watchdog and
  domains killed at once): another host is master within T plus a few
  seconds; every change acknowledged before the kill is there (names set
  one after the other until the kill: the last acknowledged one at least);
  the dead host's protected VMs run elsewhere, never twice; a migration in
  flight between the other two hosts ends, its task failed with the reason
  when the master changed under it; `xe -s <another host>` is sent on to
  the new master (HOST_IS_SLAVE); the old master's host, started again,
  comes back as a standby;
- the new master's poold killed while it takes over: the third host takes
  over instead;
- HA off: pool.designate_new_master while VMs run and migrations are in
  flight: the database moves to the default SR, the migrations end first
  (under the sanitizers a hand-over in the middle of one left its VM
  paused: the new master took the destination's copy for a double), the
  designated host is master, each VM runs on exactly one host; the old
  master is a standby; the agents follow;
- HA off, the master gone: a standby stays a standby (no one decides for
  the operator); pool-emergency-transition-to-master on host2 (a local
  login), refused while the old master still holds the database;
  pool-emergency-reset-master tells host3 where the master is; the old
  master, started again, finds its database taken and follows.

The partition (the master's host cut off with a minority) is in
test_ha_net.py, on network namespaces. Every test ends with the pool-wide
consistency check (DevPool.close).
"""
import json
import os
import signal
import subprocess
import time
import unittest

from tests.integration.harness import BIN, SLOW, XapiError
from tests.integration.hatest import TIMEOUT, DoubleWatch, enable, make_vm, where
from tests.integration.pooltest import MiB, DevPool, pid_alive, wait_until


def kill_master_host(p, i):
    """Host i dies at once: its poold, agent, watchdog and domains."""
    pids = [p.poold_pid(i), p.agent_pid(i)] + [int(d["pid"]) for d in p.domains(i).values()]
    try:
        with open(os.path.join(p.state_dir(i), "ha-watchdog.pid")) as f:
            pids.append(int(f.read()))
    except (OSError, ValueError):
        pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    t = time.monotonic()
    wait_until(lambda: not any(pid_alive(x) for x in pids), 10, "host%d's processes gone" % i, 0.02)
    return t


def mstate(p, i):
    """Host i's poold's master.json."""
    with open(os.path.join(p.poold_dir(i), "master.json")) as f:
        return json.load(f)


def standbys_know(p):
    """Every standby has kept up since HA moved the database (it syncs every 2 s) and is a candidate
    in the master's lease: until then a standby cannot take over (it does not know where the
    database is, or the lease does not name it)."""
    wait_until(lambda: all(mstate(p, i).get("database") and mstate(p, i).get("ha") for i in (2, 3)), 10,
               "the standbys know where the database is and HA's statefile")
    # and the master has written them into its lease as candidates since (a standby's verdict
    # says "current" only once it ranks): a master killed before that has no successor
    wait_until(lambda: all("master's lease is current" in p.poold_log(100000, i) for i in (2, 3)), 15,
               "the standbys candidates in the master's lease")


def touch(p, vm, mib):
    """The guest writes mib MiB at boot (a migration then has that much to move)."""
    p.rpc("VM.remove_from_other_config", vm, "sim-touch-mib")
    p.rpc("VM.add_to_other_config", vm, "sim-touch-mib", str(mib))


def master_now(p, skip=()):
    """The index of the host whose poold answers a login now, or None."""
    for i in range(1, p.hosts + 1):
        if i in skip:
            continue
        try:
            p.call("session.login_with_password", "root", p.password, "2.21", "t", address=p.addresses[i], timeout=3)
            return i
        except Exception:  # refused, HOST_IS_SLAVE, timeout
            continue
    return None


def xe_on(p, i, *args, check=True):
    """xe against host i's address (-s): a standby sends the login on."""
    env = dict(os.environ)
    env.update(p.env)
    env["XE_SERVER"] = p.addresses[i]
    env["HOME"] = p.dir
    r = subprocess.run([os.path.join(BIN, "xe")] + list(args), capture_output=True, text=True, env=env,
                       timeout=60 * SLOW)
    if check and r.returncode:
        raise AssertionError("xe -s host%d %s: %s%s" % (i, " ".join(args), r.stdout, r.stderr))
    return r


class HaMasterDeath(unittest.TestCase):
    def setUp(self):
        self.p = DevPool(3, host_memory_mib=2048, masters=True)

    def tearDown(self):
        self.p.close()

    def test_master_host_dies(self):
        p = self.p
        h1, h2, h3 = p.host_ref(1), p.host_ref(2), p.host_ref(3)
        on1 = [make_vm(p, "on1-%d" % k, 128, "restart") for k in range(2)]
        for vm in on1:
            p.rpc("VM.start_on", vm, h1, False, False)
        mover = make_vm(p, "mover", 768, "")
        mover_rec = p.rpc("VM.get_record", mover)
        touch(p, mover, 600)
        p.rpc("VM.start_on", mover, h2, False, False)
        enable(p, tolerate=1)
        wait_until(lambda: "moved to" in p.poold_log(100000, 1), 10, "the database on the HA SR")
        wait_until(lambda: "master lease: holding the lease" in p.poold_log(100000, 1), 10, "the master's lease")
        standbys_know(p)
        watch = DoubleWatch(p, ignore=[mover_rec["uuid"]])  # migrating: two processes on purpose
        # changes acknowledged up to the kill, and a migration in flight between host2 and host3
        names = []
        task = p.rpc("Async.VM.pool_migrate", mover, h3, {"live": "true"})
        for k in range(20):
            name = "ack-%d" % k
            p.rpc("VM.set_name_label", on1[1], name)
            names.append(name)
        died = kill_master_host(p, 1)
        try:
            new = wait_until(lambda: master_now(p, skip=(1,)), TIMEOUT + 10, "another host is master")
            took = time.monotonic() - died
            self.assertLessEqual(took, (TIMEOUT + 4) * SLOW, "a new master after %.2f s" % took)
            p.env["XE_SERVER"] = p.addresses[new]
            self.assertEqual(p.rpc("VM.get_name_label", on1[1]), names[-1], "an acknowledged change is lost")
            wait_until(lambda: all(where(p, vm)[0] == "Running" and where(p, vm)[1] in (2, 3) for vm in on1), 30,
                       "host1's protected VMs running on host2 or host3")
            time.sleep(0.3)
        finally:
            doubles = watch.stop()
        self.assertEqual(doubles, [], "a VM ran twice")
        # the migration's task ended, and said so if the master changed under it
        t = wait_until(lambda: (lambda r: r if r["status"] != "pending" else None)(p.rpc("task.get_record", task)),
                       60, "the migration's task ended")
        if t["status"] == "failure":
            self.assertIn("master changed", " ".join(t["error_info"]))
        self.assertEqual(where(p, mover)[0], "Running")
        # xe at another host is sent to the master
        other = 2 if new == 3 else 3
        r = xe_on(p, other, "vm-list", "name-label=mover", "params=power-state", "--minimal")
        self.assertEqual(r.stdout.strip(), "running")
        # the old master's host comes back a standby
        p.start_poold(1)
        wait_until(lambda: "standby" in p.poold_log(3000, 1), 20, "host1's poold a standby")
        self.assertEqual(master_now(p), new)
        # until the lease tells it who is master now, host1's poold sends no one on (not to itself)
        wait_until(lambda: xe_on(p, 1, "pool-list", "params=uuid", "--minimal", check=False).returncode == 0, 20,
                   "xe -s host1 sent on to the new master")
        self.assertEqual(mover_rec["uuid"], p.rpc("VM.get_uuid", mover))

    def test_new_master_killed_during_takeover(self):
        p = self.p
        enable(p)
        wait_until(lambda: "master lease: holding the lease" in p.poold_log(100000, 1), 10, "the master's lease")
        standbys_know(p)
        p.rpc("pool.set_name_label", p.rpc("pool.get_all")[0], "before")
        kill_master_host(p, 1)
        # whoever starts taking over is killed at once
        def taking():
            for i in (2, 3):
                if "the master's lease expired" in p.poold_log(100000, i):
                    return i
            return None
        first = wait_until(taking, TIMEOUT + 10, "a standby taking over", 0.01)
        os.kill(p.poold_pid(first), signal.SIGKILL)
        t = time.monotonic()
        third = 5 - first
        new = wait_until(lambda: master_now(p, skip=(1, first)), 2 * TIMEOUT + 10, "the third host is master")
        self.assertEqual(new, third)
        self.assertLessEqual(time.monotonic() - t, (TIMEOUT + 6) * SLOW)
        p.env["XE_SERVER"] = p.addresses[new]
        self.assertEqual(p.rpc("pool.get_name_label", p.rpc("pool.get_all")[0]), "before")
        p.start_poold(first)
        wait_until(lambda: "standby" in p.poold_log(2000, first), 20, "the killed poold back as a standby")


class ByHand(unittest.TestCase):
    """HA off: the role moves only when someone says so."""

    def setUp(self):
        self.p = DevPool(3, host_memory_mib=2048, masters=True)

    def tearDown(self):
        self.p.close()

    def test_designate_with_vms_and_migrations(self):
        p = self.p
        h1, h2, h3 = p.host_ref(1), p.host_ref(2), p.host_ref(3)
        vms = []
        for k, h in enumerate((h1, h2, h2, h3)):
            vm = make_vm(p, "d%d" % k, 256, "")
            touch(p, vm, 200)
            p.rpc("VM.start_on", vm, h, False, False)
            vms.append(vm)
        halted = make_vm(p, "halted", 128, "")
        # two migrations in flight, one towards the host that becomes master
        tasks = [p.rpc("Async.VM.pool_migrate", vms[1], h3, {"live": "true"}),
                 p.rpc("Async.VM.pool_migrate", vms[3], h2, {"live": "true"})]
        watch = DoubleWatch(p, ignore=[p.rpc("VM.get_uuid", vms[1]), p.rpc("VM.get_uuid", vms[3])])
        try:
            r = p.xe("pool-designate-new-master", "host-uuid=" + p.host_uuid(3))
            self.assertEqual(r.returncode, 0)
            new = wait_until(lambda: master_now(p), 30, "a master")
            self.assertEqual(new, 3)
            p.env["XE_SERVER"] = p.addresses[3]
            pool = p.rpc("pool.get_all")[0]
            self.assertEqual(p.rpc("pool.get_master", pool), h3)
            self.assertTrue(p.rpc("pool.get_redo_log_enabled", pool))
            for t in tasks:
                rec = wait_until(lambda: (lambda x: x if x["status"] != "pending" else None)(p.rpc("task.get_record", t)),
                                 60, "the migration's task ended")
                if rec["status"] == "failure":
                    self.assertIn("master changed", " ".join(rec["error_info"]))
            for vm in vms:
                wait_until(lambda: where(p, vm)[0] == "Running", 30, "VM running after the hand-over")
            # the new master works: a start, and the agents follow it
            p.rpc("VM.start", halted, False, False)
            self.assertEqual(where(p, halted)[0], "Running")
            wait_until(lambda: all(p.host_metrics(i)["live"] for i in (1, 2, 3)), 20, "every host live")
            time.sleep(0.3)
        finally:
            doubles = watch.stop()
        self.assertEqual(doubles, [])
        self.assertIn("standby", p.poold_log(3000, 1))
        # the old master sends xe on
        self.assertEqual(xe_on(p, 1, "vm-list", "name-label=halted", "params=power-state", "--minimal").stdout.strip(),
                         "running")
        # and back: the designated host hands it to host1 again
        p.xe("pool-designate-new-master", "host-uuid=" + p.host_uuid(1))
        self.assertEqual(wait_until(lambda: master_now(p), 30, "a master"), 1)

    def test_emergency_transition_and_reset(self):
        p = self.p
        # the database on shared storage first (as a designate does), then the master is lost
        p.xe("pool-designate-new-master", "host-uuid=" + p.host_uuid(2))
        self.assertEqual(wait_until(lambda: master_now(p), 30, "a master"), 2)
        p.env["XE_SERVER"] = p.addresses[2]
        vm = make_vm(p, "survivor", 128, "")
        p.rpc("VM.start_on", vm, p.host_ref(3), False, False)
        # host3's standby knows where the database is now (it keeps up every 2 s)
        wait_until(lambda: mstate(p, 3)["database"], 10, "host3 knows the database")
        # refused while the master holds the database
        r = xe_on(p, 3, "pool-emergency-transition-to-master", check=False)
        self.assertNotEqual(r.returncode, 0)
        # xe renders the code as XAPI's xe does: its description, then its parameters
        self.assertIn("You attempted an operation that was not allowed", r.stderr)
        self.assertIn("the pool database is held by another poold", r.stderr)
        os.kill(p.poold_pid(2), signal.SIGKILL)
        time.sleep(3)
        self.assertIsNone(master_now(p), "a standby took over without HA")
        # a wrong password is refused
        env_pw = p.env["XE_PASSWORD"]
        p.env["XE_PASSWORD"] = "wrong"
        self.assertNotEqual(xe_on(p, 3, "pool-emergency-transition-to-master", check=False).returncode, 0)
        p.env["XE_PASSWORD"] = env_pw
        xe_on(p, 3, "pool-emergency-transition-to-master")
        self.assertEqual(wait_until(lambda: master_now(p), 20, "a master"), 3)
        p.env["XE_SERVER"] = p.addresses[3]
        self.assertEqual(where(p, vm), ("Running", 3))
        xe_on(p, 1, "pool-emergency-reset-master", "master-address=" + p.addresses[3])
        self.assertEqual(mstate(p, 1)["master_address"], p.addresses[3])
        # the old master starts again: its database is taken, it follows
        p.start_poold(2)
        wait_until(lambda: xe_on(p, 2, "pool-list", "params=uuid", "--minimal", check=False).returncode == 0, 30,
                   "host2 sends xe on to the new master")
        wait_until(lambda: all(p.host_metrics(i)["live"] for i in (1, 3)), 20, "the agents follow")
        self.assertEqual(master_now(p), 3)


if __name__ == "__main__":
    unittest.main()
