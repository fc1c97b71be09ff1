"""
test_stream.py - get_all_records answers that span many pieces: complete
and valid JSON, identical to get_all + get_record, and a client that leaves
in the middle of one does not hurt the server.
"""
import json
import socket
import ssl
import threading
import time

from tests.integration.harness import PoolTest


class StreamTest(PoolTest):
    def make_vms(self, n):
        def work(k):
            conn = self.pool.connection()
            for i in range(k, n, 4):
                self.pool.call("VM.create", self.pool.session,
                               {"name_label": "s%04d" % i, "memory_static_max": 1 << 30}, conn=conn)
            conn.close()
        ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        [t.start() for t in ts]
        [t.join() for t in ts]

    def test_many_records_in_one_answer(self):
        self.make_vms(2100)  # pieces are 1024 records
        recs = self.pool.rpc("VM.get_all_records")
        refs = self.pool.rpc("VM.get_all")
        self.assertEqual(len(recs), 2101)
        self.assertEqual(sorted(recs), sorted(refs))
        some = refs[1500]
        self.assertEqual(recs[some], self.pool.rpc("VM.get_record", some))
        names = {r["name_label"] for r in recs.values()}
        self.assertIn("s0000", names)
        self.assertIn("s2099", names)
        # an empty class still answers {}
        self.assertEqual(self.pool.rpc("VIF.get_all_records"), {})

    def test_client_leaving_mid_answer(self):
        self.make_vms(600)
        body = json.dumps({"jsonrpc": "2.0", "method": "VM.get_all_records",
                           "params": [self.pool.session], "id": 1}).encode()
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        for _ in range(5):
            raw = socket.create_connection(("127.0.0.1", self.pool.port))
            s = ctx.wrap_socket(raw)
            s.sendall(b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body)
            got = s.recv(4096)
            self.assertIn(b"200 OK", got)
            s.close()  # gone after the first bytes
        time.sleep(0.2)
        self.assertEqual(len(self.pool.rpc("VM.get_all")), 601)
        self.assertEqual(len(self.pool.rpc("VM.get_all_records")), 601)
