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
