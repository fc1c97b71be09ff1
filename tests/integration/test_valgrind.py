"""
test_valgrind.py - poold under valgrind (memcheck) through a working
session: logins (right and wrong), reads, writes, Async tasks, event.from
(answered, timed out, and abandoned by its client), a bad request, then
SIGTERM. valgrind exits 99 on any error or definite leak, so the test fails
on either. Skipped in sanitizer builds (valgrind and ASan do not mix).
"""
import json
import signal
import os
import shutil
import socket
import threading
import time
import unittest

from tests.integration.harness import Pool, XapiError


@unittest.skipIf(os.environ.get("SAN") == "1", "sanitizer build: valgrind does not run ASan binaries")
@unittest.skipIf(shutil.which("valgrind") is None, "valgrind is not installed")
class ValgrindTest(unittest.TestCase):
    def test_poold_is_valgrind_clean(self):
        pool = Pool(valgrind=True, sets={"login-failure-delay": "100ms"})
        try:
            s = pool.login()
            with self.assertRaises(XapiError):
                pool.call("session.login_with_password", "root", "wrong")
            vms = pool.call("VM.get_all_records", s)
            template = next(r for r, v in vms.items() if v["name_label"] == "Generic VM")
            task = pool.call("Async.VM.clone", s, template, "vg-clone")
            rec = pool.wait_task(task, timeout=120)
            self.assertEqual(rec["status"], "success", rec)
            clone = rec["result"].replace("<value>", "").replace("</value>", "")
            pool.call("VM.add_to_other_config", s, clone, "k", "v")
            tok = pool.call("event.from", s, ["vm"], "", 0.0)["token"]
            # a long-poll answered by a change
            got = {}
            t = threading.Thread(target=lambda: got.update(
                r=pool.call("event.from", s, ["vm"], tok, 30.0, timeout=120)))
            t.start()
            time.sleep(1.0)
            pool.call("VM.set_name_label", s, clone, "renamed")
            t.join(120)
            self.assertTrue(got.get("r", {}).get("events"))
            # a long-poll that times out, and one whose client goes away
            pool.call("event.from", s, ["vm"], got["r"]["token"], 0.2, timeout=120)
            conn = pool.connection(120)
            conn.connect()
            body = json.dumps({"jsonrpc": "2.0", "method": "event.from",
                               "params": [s, ["vm"], got["r"]["token"], 60.0], "id": 1})
            conn.request("POST", "/jsonrpc", body=body, headers={"Content-Type": "application/json"})
            time.sleep(0.5)
            conn.sock.shutdown(socket.SHUT_RDWR)
            conn.close()
            status, _, _ = pool.raw(b"{not json")
            self.assertEqual(status, 200)
            pool.call("task.destroy", s, task)
            pool.call("VM.destroy", s, clone)
            pool.call("session.logout", s)
            rc = pool.stop()
            with open(os.path.join(pool.dir, "valgrind.log")) as f:
                report = f.read()
            self.assertEqual(rc, 0, "valgrind reported errors or leaks:\n" + report[-6000:])
        finally:
            pool.close()


if __name__ == "__main__":
    unittest.main()


@unittest.skipIf(os.environ.get("SAN") == "1", "sanitizer build: valgrind does not run ASan binaries")
@unittest.skipIf(shutil.which("valgrind") is None, "valgrind is not installed")
class AgentValgrindTest(unittest.TestCase):
    """pool-agent under valgrind: it joins, heartbeats, plugs an SR, makes a
    VDI, starts, pauses and stops a VM, and exits clean on SIGTERM."""

    def test_agent_is_valgrind_clean(self):
        import subprocess
        from tests.integration.harness import BIN
        pool = Pool(sets={"host-heartbeat-timeout": "60s"})
        agent = None
        try:
            s = pool.login()
            d = os.path.join(pool.dir, "vg-host")
            os.makedirs(d)
            fp = pool.init_output.split("SHA-256): ")[1].strip()
            conf = os.path.join(d, "agent.conf")
            with open(conf, "w") as f:
                f.write("master: 127.0.0.1:%d\nstate-dir: %s/state\nname: vg-host\nlisten-address: 127.0.0.9\n"
                        "address: 127.0.0.9\nport: 0\nsim-memory: 1GiB\nheartbeat-interval: 0.5s\n"
                        'ca-fingerprint: "%s"\njoin-token: "%s"\n'
                        % (pool.port, d, fp, pool.call("pool.create_join_token", s)))
            log = os.path.join(d, "valgrind.log")
            with open(os.path.join(d, "agent.log"), "w") as agent_log:
                agent = subprocess.Popen(["valgrind", "--leak-check=full", "--error-exitcode=99",
                                          "--child-silent-after-fork=yes",
                                          "--errors-for-leak-kinds=definite", "--log-file=" + log,
                                          os.path.join(BIN, "pool-agent"), "--config", conf],
                                         stdout=subprocess.DEVNULL, stderr=agent_log)
            deadline = time.time() + 120
            host = None
            while time.time() < deadline and not host:
                hosts = [h for h, r in pool.call("host.get_all_records", s).items() if r["name_label"] == "vg-host"]
                host = hosts[0] if hosts else None
                time.sleep(0.2)
            self.assertTrue(host, "the agent did not join")
            sr = pool.call("SR.create", s, host, {"path": os.path.join(d, "sr")}, 0, "vg sr", "", "file", "user",
                           False, {}, timeout=120)
            vdi = pool.call("VDI.create", s, {"SR": sr, "virtual_size": 1 << 20, "name_label": "d"}, timeout=120)
            vm = pool.call("VM.create", s, {"name_label": "vg-vm", "memory_static_max": 64 << 20,
                                             "memory_dynamic_max": 64 << 20, "memory_dynamic_min": 64 << 20,
                                             "memory_static_min": 16 << 20}, timeout=120)
            pool.call("VM.start_on", s, vm, host, False, False, timeout=120)
            pool.call("VM.pause", s, vm, timeout=120)
            pool.call("VM.hard_shutdown", s, vm, timeout=120)
            pool.call("VDI.destroy", s, vdi, timeout=120)
            time.sleep(1.5)  # a few heartbeats
            agent.send_signal(signal.SIGTERM)
            rc = agent.wait(120)
            agent = None
            with open(log) as f:
                report = f.read()
            self.assertEqual(rc, 0, "valgrind reported errors or leaks in pool-agent:\n" + report[-6000:])
        finally:
            if agent and agent.poll() is None:
                agent.kill()
                agent.wait()
            pool.close()


@unittest.skipIf(os.environ.get("SAN") == "1", "sanitizer build: valgrind does not run ASan binaries")
@unittest.skipIf(shutil.which("valgrind") is None, "valgrind is not installed")
class MigrationValgrindTest(unittest.TestCase):
    """poold and one agent under valgrind through a live migration (that
    agent sending, with progress polled from it) and a host evacuation (that
    agent receiving): the migration and evacuation paths are clean too."""

    def start_agent(self, pool, s, fp, name, addr, vg):
        import subprocess
        from tests.integration.harness import BIN
        d = os.path.join(pool.dir, name)
        os.makedirs(d)
        conf = os.path.join(d, "agent.conf")
        with open(conf, "w") as f:
            f.write("master: 127.0.0.1:%d\nstate-dir: %s/state\nname: %s\nlisten-address: %s\n"
                    "address: %s\nport: 0\nsim-memory: 1GiB\nheartbeat-interval: 0.5s\n"
                    'ca-fingerprint: "%s"\njoin-token: "%s"\n'
                    % (pool.port, d, name, addr, addr, fp, pool.call("pool.create_join_token", s)))
        cmd = [os.path.join(BIN, "pool-agent"), "--config", conf]
        if vg:
            cmd = ["valgrind", "--leak-check=full", "--error-exitcode=99", "--child-silent-after-fork=yes",
                   "--errors-for-leak-kinds=definite", "--log-file=" + os.path.join(d, "valgrind.log")] + cmd
        with open(os.path.join(d, "agent.log"), "w") as log:
            return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True), d

    def test_migration_and_evacuation_are_valgrind_clean(self):
        pool = Pool(valgrind=True, sets={"host-heartbeat-timeout": "60s"})
        agents = []
        try:
            s = pool.login()
            fp = pool.init_output.split("SHA-256): ")[1].strip()
            a, da = self.start_agent(pool, s, fp, "vg-a", "127.0.0.11", True)
            agents.append(a)
            b, db = self.start_agent(pool, s, fp, "vg-b", "127.0.0.12", False)
            agents.append(b)
            deadline = time.time() + 180
            hosts = {}
            while time.time() < deadline and len(hosts) < 2:
                recs = pool.call("host.get_all_records", s, timeout=120)
                hosts = {r["name_label"]: h for h, r in recs.items() if r["name_label"] in ("vg-a", "vg-b")}
                time.sleep(0.5)
            self.assertEqual(len(hosts), 2, "the agents did not join")
            vm = pool.call("VM.create", s, {"name_label": "vg-mig", "memory_static_max": 64 << 20,
                                             "memory_dynamic_max": 64 << 20, "memory_dynamic_min": 64 << 20,
                                             "memory_static_min": 16 << 20,
                                             "other_config": {"sim-touch-mib": "8", "sim-heartbeat-ms": "10"}},
                           timeout=120)
            pool.call("VM.start_on", s, vm, hosts["vg-a"], False, False, timeout=300)
            task = pool.call("Async.VM.pool_migrate", s, vm, hosts["vg-b"], {"verify": "true"}, timeout=120)
            rec = pool.wait_task(task, timeout=600)
            self.assertEqual(rec["status"], "success", rec)
            pool.call("task.destroy", s, task, timeout=120)
            pool.call("host.evacuate", s, hosts["vg-b"], timeout=600)
            self.assertEqual(pool.call("VM.get_resident_on", s, vm, timeout=120), hosts["vg-a"])
            pool.call("VM.hard_shutdown", s, vm, timeout=300)
            time.sleep(1.5)
            a.send_signal(signal.SIGTERM)
            rc_a = a.wait(300)
            with open(os.path.join(da, "valgrind.log")) as f:
                report = f.read()
            self.assertEqual(rc_a, 0, "valgrind reported errors or leaks in pool-agent:\n" + report[-6000:])
            b.send_signal(signal.SIGTERM)
            b.wait(60)
            rc = pool.stop()
            with open(os.path.join(pool.dir, "valgrind.log")) as f:
                report = f.read()
            self.assertEqual(rc, 0, "valgrind reported errors or leaks in poold:\n" + report[-6000:])
        finally:
            for p in agents:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            pool.close()
