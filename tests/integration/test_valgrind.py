"""
test_valgrind.py - poold under valgrind (memcheck) through a working
session: logins (right and wrong), reads, writes, Async tasks, event.from
(answered, timed out, and abandoned by its client), a bad request, then
SIGTERM. valgrind exits 99 on any error or definite leak, so the test fails
on either. Skipped in sanitizer builds (valgrind and ASan do not mix).
"""
import json
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
