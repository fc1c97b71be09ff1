"""
test_xmlrpc.py - XAPI's XML-RPC at POST / and /RPC2, as XenAPI.py, Ansible's
xenserver modules and most admin scripts speak it (Python's xmlrpc.client).

XenSession below is what XenAPI.py's Session does on the wire (written
here, not copied): an xmlrpc.client.ServerProxy whose `xenapi.CLASS.METHOD`
calls put the session first and unwrap XAPI's {Status, Value} envelope,
raising Failure(ErrorDescription) otherwise. The pool tests run it against
one poold; MigrateOverXmlRpcTest logs in to a two-host devpool, lists the
VMs, starts one and migrates it, as the acceptance of issue 17 asks.
"""
import json
import os
import re
import ssl
import time
import unittest
import xmlrpc.client

from tests.integration.harness import PASSWORD, SLOW, PoolTest
from tests.integration.pooltest import DevPool, wait_until


class Failure(Exception):
    def __init__(self, details):
        super().__init__(details)
        self.details = details


def unwrap(answer):
    if not isinstance(answer, dict) or "Status" not in answer:
        raise AssertionError("no Status in %r" % (answer,))
    if answer["Status"] == "Success":
        return answer["Value"]
    raise Failure(answer["ErrorDescription"])


class _Method:
    def __init__(self, call, name):
        self._call, self._name = call, name

    def __getattr__(self, part):
        return _Method(self._call, "%s.%s" % (self._name, part) if self._name else part)

    def __call__(self, *args):
        return self._call(self._name, args)


class XenSession(xmlrpc.client.ServerProxy):
    """session.xenapi.VM.get_all() as XenAPI.py offers it."""

    def __init__(self, uri, cafile, **kw):
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.check_hostname = False
        super().__init__(uri, context=ctx, allow_none=True, **kw)
        self.handle = None

    def login_with_password(self, user, password, version="2.21", originator="test_xmlrpc"):
        self.handle = unwrap(getattr(self, "session.login_with_password")(user, password, version, originator))
        return self.handle

    def logout(self):
        unwrap(getattr(self, "session.logout")(self.handle))
        self.handle = None

    def _xenapi(self, name, args):
        return unwrap(getattr(self, name)(self.handle, *args))

    @property
    def xenapi(self):
        return _Method(self._xenapi, "")


def wait_task(x, task, timeout=60):
    deadline = time.time() + timeout * SLOW
    while x.xenapi.task.get_status(task) == "pending":
        if time.time() > deadline:
            raise AssertionError("task %s still pending" % task)
        time.sleep(0.05)
    return x.xenapi.task.get_record(task)


class XmlRpcTest(PoolTest):
    def session(self, path="/"):
        x = XenSession("https://127.0.0.1:%d%s" % (self.pool.port, path), os.path.join(self.pool.dir, "ca.pem"))
        x.login_with_password("root", PASSWORD)
        return x

    def raw(self, body, path="/"):
        return self.pool.raw(body, path=path, headers={"Content-Type": "text/xml"})

    def failure_of(self, data):
        answer = xmlrpc.client.loads(data)[0][0]
        self.assertEqual(answer["Status"], "Failure", answer)
        self.assertEqual(sorted(answer), ["ErrorDescription", "Status"])
        return answer["ErrorDescription"]

    def assertServing(self):
        x = self.session()
        self.assertIn("Generic VM", [r["name_label"] for r in x.xenapi.VM.get_all_records().values()])

    def test_login_list_logout_on_both_paths(self):
        for path in ("/", "/RPC2"):
            x = self.session(path)
            self.assertTrue(x.handle.startswith("OpaqueRef:"))
            vms = x.xenapi.VM.get_all()
            self.assertEqual(len(vms), 1)
            self.assertEqual(x.xenapi.VM.get_name_label(vms[0]), "Generic VM")
            x.logout()
            with self.assertRaises(Failure) as cm:
                x.xenapi.VM.get_all()
            self.assertEqual(cm.exception.details[0], "SESSION_INVALID")

    def test_sessions_are_shared_with_json_rpc(self):
        x = self.session()
        tmpl = self.pool.call("VM.get_by_name_label", x.handle, "Generic VM")[0]
        vm = x.xenapi.VM.clone(tmpl, "shared")
        self.assertEqual(self.pool.call("VM.get_name_label", x.handle, vm), "shared")
        x.handle = self.pool.login()
        self.assertEqual(x.xenapi.VM.get_name_label(vm), "shared")

    def test_xapi_typing(self):
        """int64 as digits, booleans, doubles, datetimes, sets, maps, refs."""
        x = self.session()
        tmpl = x.xenapi.VM.get_by_name_label("Generic VM")[0]
        rec = x.xenapi.VM.get_record(tmpl)
        self.assertEqual(rec["memory_static_max"], str(1 << 30))  # int64: a string of digits
        self.assertIs(rec["is_a_template"], True)
        self.assertIsInstance(rec["HVM_shadow_multiplier"], float)
        self.assertIsInstance(rec["snapshot_time"], xmlrpc.client.DateTime)  # <dateTime.iso8601>
        self.assertIsInstance(rec["VBDs"], list)
        self.assertIsInstance(rec["platform"], dict)
        self.assertEqual(rec["power_state"], "Halted")  # enums: strings
        self.assertTrue(rec["metrics"].startswith("OpaqueRef:"))
        # the same typing in get_all_records and in a field's getter
        self.assertIsInstance(x.xenapi.VM.get_all_records()[tmpl]["snapshot_time"], xmlrpc.client.DateTime)
        self.assertIsInstance(x.xenapi.VM.get_snapshot_time(tmpl), xmlrpc.client.DateTime)
        self.assertEqual(x.xenapi.VM.get_VCPUs_max(tmpl), "1")
        # on the wire: no <i4>, <int>, <string> (XAPI writes plain values)
        status, headers, data = self.raw(xmlrpc.client.dumps((x.handle, tmpl), "VM.get_record"))
        self.assertEqual((status, headers["content-type"]), (200, "text/xml"))
        self.assertNotRegex(data, rb"<(i4|int|i8|string)>")
        self.assertIn(b"<member><name>memory_static_max</name><value>1073741824</value></member>", data)

    def test_ints_sent_as_strings_are_read_as_ints(self):
        """XenAPI.py users send int64 as strings: xmlrpc.client refuses ints above 2^31."""
        x = self.session()
        vm = x.xenapi.VM.create({"name_label": "strs", "memory_static_max": str(3 << 30),
                                 "memory_dynamic_max": str(3 << 30), "memory_dynamic_min": str(2 << 30),
                                 "memory_static_min": str(1 << 28), "VCPUs_max": "2", "VCPUs_at_startup": "2"})
        self.assertEqual(self.pool.rpc("VM.get_memory_static_max", vm), 3 << 30)  # stored as an int
        x.xenapi.VM.set_memory_static_max(vm, str(4 << 30))
        self.assertEqual(self.pool.rpc("VM.get_memory_static_max", vm), 4 << 30)
        x.xenapi.VM.set_memory_limits(vm, str(1 << 28), str(4 << 30), str(1 << 30), str(2 << 30))
        self.assertEqual(self.pool.rpc("VM.get_memory_dynamic_min", vm), 1 << 30)
        x.xenapi.VM.set_HVM_shadow_multiplier(vm, "1.5")
        self.assertEqual(self.pool.rpc("VM.get_HVM_shadow_multiplier", vm), 1.5)
        # not a number: the field's type error, as over JSON-RPC
        with self.assertRaises(Failure) as cm:
            x.xenapi.VM.set_VCPUs_max(vm, "two")
        self.assertEqual(cm.exception.details, ["FIELD_TYPE_ERROR", "VCPUs_max"])

    def test_async_task_and_its_xml_result(self):
        x = self.session()
        tmpl = x.xenapi.VM.get_by_name_label("Generic VM")[0]
        task = x.xenapi.Async.VM.clone(tmpl, "async")
        self.assertTrue(task.startswith("OpaqueRef:"))
        rec = wait_task(x, task)
        self.assertEqual(rec["status"], "success", rec["error_info"])
        self.assertIsInstance(rec["created"], xmlrpc.client.DateTime)
        self.assertIsInstance(rec["progress"], float)
        vm = xmlrpc.client.loads("<params><param>%s</param></params>" % rec["result"])[0][0]
        self.assertEqual(x.xenapi.VM.get_name_label(vm), "async")
        # a task that fails: its error_info, and no result
        task = x.xenapi.Async.VM.destroy(tmpl)
        rec = wait_task(x, task)
        self.assertEqual(rec["status"], "failure")
        self.assertEqual(rec["error_info"][0], "VM_CANNOT_DELETE_DEFAULT_TEMPLATE")

    def test_get_all_records_streams_in_pieces(self):
        """Thousands of records go out in pieces (1024 per piece), as over JSON-RPC."""
        conn = self.pool.connection()
        s = self.pool.session
        for i in range(2100):  # three pieces
            self.pool.call("VM.create", s, {"name_label": "r%d" % i, "memory_static_max": 1 << 28,
                                            "memory_dynamic_max": 1 << 28, "memory_dynamic_min": 1 << 28,
                                            "memory_static_min": 1 << 27}, conn=conn)
        conn.close()
        x = self.session()
        recs = x.xenapi.VM.get_all_records()
        by_json = self.pool.rpc("VM.get_all_records")
        self.assertEqual(set(recs), set(by_json))
        self.assertEqual(len(recs), 2101)
        for ref, r in recs.items():
            self.assertEqual(r["name_label"], by_json[ref]["name_label"])
            self.assertEqual(r["memory_static_max"], str(by_json[ref]["memory_static_max"]))
            self.assertIsInstance(r["snapshot_time"], xmlrpc.client.DateTime)
        status, headers, data = self.raw(xmlrpc.client.dumps((x.handle,), "VM.get_all_records"))
        self.assertEqual(headers.get("transfer-encoding"), "chunked")
        self.assertTrue(data.endswith(b"</member></struct></value></param></params></methodResponse>"))

    def test_list_methods_as_xapi(self):
        status, headers, data = self.raw(xmlrpc.client.dumps((), "system.listMethods"))
        methods = xmlrpc.client.loads(data)[0][0]
        self.assertIsInstance(methods, list)  # bare, no envelope (as XAPI)
        self.assertIn("VM.get_all_records", methods)
        self.assertIn("VM.pool_migrate", methods)
        # sessions are never listed: the xen-api npm client would cache them and warn
        self.assertNotIn("session.get_all_records", methods)
        self.assertNotIn("session.get_all", methods)
        self.assertFalse([m for m in methods if m.startswith("Async.") or m.startswith("system.")])

    def test_event_from_snapshots_are_typed(self):
        x = self.session()
        token = getattr(x.xenapi.event, "from")(["vm"], "", 0.0)["token"]
        tmpl = x.xenapi.VM.get_by_name_label("Generic VM")[0]
        x.xenapi.VM.clone(tmpl, "evented")
        got = getattr(x.xenapi.event, "from")(["vm"], token, 5.0)
        snaps = [e["snapshot"] for e in got["events"] if e["operation"] == "add"]
        self.assertEqual([s["name_label"] for s in snaps], ["evented"])
        self.assertIsInstance(snaps[0]["snapshot_time"], xmlrpc.client.DateTime)

    def test_failures_in_xapi_envelope(self):
        x = self.session()
        call = lambda *a: self.failure_of(self.raw(xmlrpc.client.dumps(a[1:], a[0]))[2])
        self.assertEqual(call("no.such_method", x.handle), ["MESSAGE_METHOD_UNKNOWN", "no.such_method"])
        self.assertEqual(call("Async.VM.get_all", x.handle), ["MESSAGE_METHOD_UNKNOWN", "Async.VM.get_all"])
        bogus = "OpaqueRef:00000000-0000-0000-0000-000000000000"
        self.assertEqual(call("VM.get_all", bogus), ["SESSION_INVALID", bogus])
        self.assertEqual(call("VM.get_all", x.handle, "extra"),
                         ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.get_all", "0", "1"])
        self.assertEqual(call("VM.get_record", x.handle, bogus), ["HANDLE_INVALID", "VM", bogus])
        self.assertEqual(call("session.login_with_password", "root", "wrong")[0], "SESSION_AUTHENTICATION_FAILED")
        # XenAPI.py's own reading of a failure
        with self.assertRaises(Failure) as cm:
            x.xenapi.VM.start(x.xenapi.VM.get_by_name_label("Generic VM")[0], False, False)
        self.assertEqual(cm.exception.details[0], "VM_IS_TEMPLATE")
        self.assertServing()

    def test_bad_xml_is_refused_in_the_envelope(self):
        head = "<?xml version='1.0'?><methodCall><methodName>VM.get_all</methodName><params>"
        bad = [
            ("", "no element found"),
            ("this is not XML", "syntax error"),
            ("<methodCall><methodName>VM.get_all</methodName><params><param><value>",
             "no element found"),
            (head + "<param><value><float>1</float></value></param></params></methodCall>", "<float>"),
            (head + "<param><value><int>x</int></value></param></params></methodCall>", "<int>x"),
            ("<?xml version='1.0'?><!DOCTYPE m [<!ENTITY a 'aaaa'><!ENTITY b '&a;&a;&a;&a;'>]>"
             "<methodCall><methodName>&b;</methodName></methodCall>", "<!DOCTYPE>"),
            ("<methodCall><methodName>x</methodName><params><param><value>a&unknown;</value></param>"
             "</params></methodCall>", "undefined entity"),
        ]
        for body, why in bad:
            status, headers, data = self.raw(body)
            self.assertEqual(status, 200, data[:200])
            err = self.failure_of(data)
            self.assertEqual(err[0], "XMLRPC_UNMARSHAL_FAILURE", err)
            self.assertEqual(len(err), 3)
            self.assertIn(why, err[2])
        self.assertServing()

    def test_deep_nesting_is_refused_cheaply(self):
        x = self.session()
        for depth in (65, 5000, 150000):  # 150000: 6.5 MB, under max-request-size
            deep = "<value><array><data>" * depth + "<value>x</value>" + "</data></array></value>" * depth
            body = ("<?xml version='1.0'?><methodCall><methodName>VM.get_all</methodName><params>"
                    "<param><value>%s</value></param><param>%s</param></params></methodCall>" % (x.handle, deep))
            status, headers, data = self.raw(body)
            self.assertIn(status, (200, 413), data[:200])
            if status == 200:
                err = self.failure_of(data)
                self.assertEqual(err[:2], ["XMLRPC_UNMARSHAL_FAILURE", "values nested at most 64 deep"])
        # 64 deep is fine: the call gets as far as its parameter count
        deep = "<value><array><data>" * 62 + "<value>x</value>" + "</data></array></value>" * 62
        body = ("<?xml version='1.0'?><methodCall><methodName>VM.get_all</methodName><params>"
                "<param><value>%s</value></param><param>%s</param></params></methodCall>" % (x.handle, deep))
        self.assertEqual(self.failure_of(self.raw(body)[2])[0], "MESSAGE_PARAMETER_COUNT_MISMATCH")
        self.assertServing()

    def test_unauthenticated_big_body_is_not_parsed(self):
        big = ("<?xml version='1.0'?><methodCall><methodName>session.login_with_password</methodName><params>" +
               "<param><value>x</value></param>" * 200000 + "</params></methodCall>")
        status, headers, data = self.raw(big)
        self.assertEqual(status, 413, data[:200])
        # naming a session that is not one: SESSION_INVALID, in XML-RPC
        forged = ("<?xml version='1.0'?><methodCall><methodName>VM.get_all</methodName><params>"
                  "<param><value><string>OpaqueRef:00000000-0000-0000-0000-000000000000</string></value></param>" +
                  "<param><value>x</value></param>" * 10000 + "</params></methodCall>")
        status, headers, data = self.raw(forged)
        self.assertEqual(self.failure_of(data)[0], "SESSION_INVALID")
        # with a session, a big request is parsed as before
        x = self.session()
        tmpl = x.xenapi.VM.get_by_name_label("Generic VM")[0]
        vm = x.xenapi.VM.clone(tmpl, "big")
        x.xenapi.VM.set_name_description(vm, "d" * 300000)
        self.assertEqual(len(x.xenapi.VM.get_name_description(vm)), 300000)
        self.assertServing()

    def test_json_keeps_its_paths(self):
        s = self.pool.session
        body = json.dumps({"jsonrpc": "2.0", "method": "VM.get_all", "params": [s], "id": 7})
        for path in ("/", "/RPC2", "/jsonrpc"):
            status, headers, data = self.pool.raw(body, path=path)
            self.assertEqual((status, headers["content-type"]), (200, "application/json"))
            self.assertEqual(len(json.loads(data)["result"]), 1)
        # /jsonrpc is JSON only: XML there is a JSON parse error
        status, headers, data = self.pool.raw(xmlrpc.client.dumps((s,), "VM.get_all"), path="/jsonrpc")
        self.assertEqual(json.loads(data)["error"]["code"], -32700)


class MigrateOverXmlRpcTest(unittest.TestCase):
    """The acceptance: XenAPI.py's way logs in, lists VMs, starts and migrates one."""

    @classmethod
    def setUpClass(cls):
        cls.p = DevPool(2, host_memory_mib=1024, extra=("--no-sr",))

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    def test_login_list_start_migrate(self):
        x = XenSession("https://127.0.0.1:%d/" % self.p.port, self.p.cafile)
        x.login_with_password("root", self.p.password)
        hosts = {x.xenapi.host.get_name_label(h): h for h in x.xenapi.host.get_all()}
        self.assertEqual(sorted(hosts), ["host1", "host2"])
        vm = x.xenapi.VM.create({"name_label": "xml1", "memory_static_max": str(128 << 20),
                                 "memory_dynamic_max": str(128 << 20), "memory_dynamic_min": str(128 << 20),
                                 "memory_static_min": str(16 << 20)})
        listed = {r["name_label"]: ref for ref, r in x.xenapi.VM.get_all_records().items()
                  if not r["is_a_template"] and not r["is_control_domain"]}
        self.assertEqual(listed, {"xml1": vm})
        x.xenapi.VM.start_on(vm, hosts["host1"], False, False)
        self.assertEqual(x.xenapi.VM.get_power_state(vm), "Running")
        self.assertEqual(x.xenapi.VM.get_resident_on(vm), hosts["host1"])
        x.xenapi.VM.pool_migrate(vm, hosts["host2"], {"live": "true"})
        self.assertEqual(x.xenapi.VM.get_resident_on(vm), hosts["host2"])
        # and back as a task, followed over XML-RPC
        rec = wait_task(x, x.xenapi.Async.VM.pool_migrate(vm, hosts["host1"], {"live": "true"}), 120)
        self.assertEqual(rec["status"], "success", rec["error_info"])
        self.assertEqual(x.xenapi.VM.get_resident_on(vm), hosts["host1"])
        wait_until(lambda: self.p.domains(1), 10, "the domain runs on host1")
        x.xenapi.VM.hard_shutdown(vm)
        self.assertEqual(x.xenapi.VM.get_power_state(vm), "Halted")
        x.logout()


if __name__ == "__main__":
    unittest.main()
