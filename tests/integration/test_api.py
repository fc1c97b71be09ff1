"""
test_api.py - the XAPI JSON-RPC surface of poold as a client sees it.

Every test runs against a fresh pool (harness.Pool: `poold init` + `poold
--dir` on 127.0.0.1). Expected values are XAPI's (see research/wire.md and
research/errors.md): a client written for XAPI must not notice the difference.
"""
import json
import re
import threading
import time
import unittest

from tests.integration.harness import PASSWORD, SLOW, PoolTest, XapiError

REF_RE = re.compile(r"^OpaqueRef:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TOKEN_RE = re.compile(r"^\d{20},\d{20}$")
NULL = "OpaqueRef:NULL"
BAD_REF = "OpaqueRef:00000000-0000-0000-0000-0000000000ff"


class ApiTest(PoolTest):
    # -- helpers
    def template(self):
        refs = self.pool.rpc("VM.get_by_name_label", "Generic VM")
        self.assertEqual(len(refs), 1, "exactly one built-in 'Generic VM' template")
        return refs[0]

    def clone(self, name="test-vm"):
        ref = self.pool.rpc("VM.clone", self.template(), name)
        self.assertRegex(ref, REF_RE)
        return ref

    def vm_record(self, **changes):
        """A VM.create argument built from the template's record."""
        rec = self.pool.rpc("VM.get_record", self.template())
        rec.update({"name_label": "created", "is_a_template": False, "other_config": {}})
        rec.update(changes)
        return rec

    def assertInt(self, value, what):
        self.assertTrue(isinstance(value, int) and not isinstance(value, bool),
                        "%s must be a JSON number, got %r" % (what, value))

    def event_from(self, classes, token, timeout, conn_timeout=None):
        return self.pool.rpc("event.from", classes, token, timeout,
                             timeout=conn_timeout if conn_timeout else timeout + 30)

    def current_token(self, classes=("vm",)):
        """A token past every existing event of these classes."""
        return self.pool.rpc("event.from", list(classes), "", 0.0)["token"]

    # -- sessions
    def test_login_with_2_3_and_4_params_returns_a_session_ref(self):
        for params in (("root", PASSWORD), ("root", PASSWORD, "2.21"), ("root", PASSWORD, "2.21", "tests")):
            s = self.pool.call("session.login_with_password", *params)
            self.assertRegex(s, REF_RE, "login with %d params" % len(params))
            self.assertIsInstance(self.pool.call("VM.get_all", s), list)

    def test_logout_invalidates_the_session(self):
        s = self.pool.login()
        self.assertEqual(self.pool.call("session.logout", s), "")
        params = self.assertXapiError("SESSION_INVALID", self.pool.call, "VM.get_all", s)
        self.assertEqual(params, [s])
        # another session is not affected
        self.assertIsInstance(self.pool.rpc("VM.get_all"), list)

    def test_sessions_survive_a_restart(self):
        s = self.pool.login()
        vms = self.pool.call("VM.get_all", s)
        self.pool.stop()
        self.pool.start()
        self.assertEqual(sorted(self.pool.call("VM.get_all", s)), sorted(vms))

    # -- getters and setters
    def test_vm_name_label_round_trip(self):
        vm = self.clone("before")
        self.assertEqual(self.pool.rpc("VM.set_name_label", vm, "after \u00e9\u00e8 \"quoted\""), "")
        self.assertEqual(self.pool.rpc("VM.get_name_label", vm), "after \u00e9\u00e8 \"quoted\"")
        self.assertEqual(self.pool.rpc("VM.get_record", vm)["name_label"], "after \u00e9\u00e8 \"quoted\"")

    def test_pool_name_label_round_trip(self):
        pools = self.pool.rpc("pool.get_all")
        self.assertEqual(len(pools), 1)
        self.assertEqual(self.pool.rpc("pool.set_name_label", pools[0], "renamed pool"), "")
        self.assertEqual(self.pool.rpc("pool.get_name_label", pools[0]), "renamed pool")
        self.assertEqual(self.pool.rpc("pool.get_record", pools[0])["name_label"], "renamed pool")

    def test_other_config_add_to_and_remove_from(self):
        vm = self.clone()
        self.assertEqual(self.pool.rpc("VM.add_to_other_config", vm, "k1", "v1"), "")
        self.pool.rpc("VM.add_to_other_config", vm, "k2", "v2")
        self.assertEqual(self.pool.rpc("VM.get_other_config", vm), {"k1": "v1", "k2": "v2"})
        params = self.assertXapiError("MAP_DUPLICATE_KEY", self.pool.rpc, "VM.add_to_other_config", vm, "k1", "x")
        self.assertEqual(len(params), 4, params)
        self.assertEqual(params[0], "VM")
        self.assertEqual(params[1], "other_config")
        self.assertEqual(params[3], "k1")
        self.assertEqual(self.pool.rpc("VM.get_other_config", vm)["k1"], "v1", "a refused add changes nothing")
        self.assertEqual(self.pool.rpc("VM.remove_from_other_config", vm, "k1"), "")
        self.assertEqual(self.pool.rpc("VM.get_other_config", vm), {"k2": "v2"})

    # -- records
    def test_vm_records_share_one_full_field_set(self):
        self.clone("one")
        self.pool.rpc("VM.create", self.vm_record(name_label="two"))
        records = self.pool.rpc("VM.get_all_records")
        self.assertGreaterEqual(len(records), 3)
        keysets = {frozenset(r.keys()) for r in records.values()}
        self.assertEqual(len(keysets), 1, "VM records differ in fields: %s" %
                         [sorted(a ^ b) for a in keysets for b in keysets if a != b][:1])
        keys = next(iter(keysets))
        for f in ("uuid", "name_label", "power_state", "resident_on", "scheduled_to_be_resident_on",
                  "memory_static_max", "memory_static_min", "memory_dynamic_min", "memory_dynamic_max",
                  "VCPUs_max", "VCPUs_at_startup", "platform", "other_config", "last_boot_CPU_flags",
                  "ha_restart_priority", "order", "is_a_template", "is_control_domain", "metrics",
                  "VBDs", "VIFs", "blocked_operations", "allowed_operations", "current_operations"):
            self.assertIn(f, keys)
        for ref, rec in records.items():
            for f in ("memory_static_max", "memory_static_min", "memory_dynamic_min", "memory_dynamic_max",
                      "VCPUs_max", "VCPUs_at_startup", "order"):
                self.assertInt(rec[f], "%s.%s" % (ref, f))
            self.assertIsInstance(rec["platform"], dict)
            self.assertIsInstance(rec["other_config"], dict)
            self.assertIsInstance(rec["last_boot_CPU_flags"], dict)
            self.assertIsInstance(rec["is_a_template"], bool)
            self.assertIn(rec["power_state"], ("Halted", "Paused", "Running", "Suspended"))
            self.assertRegex(rec["resident_on"], r"^OpaqueRef:")
            self.assertRegex(rec["scheduled_to_be_resident_on"], r"^OpaqueRef:")

    def test_host_record(self):
        hosts = self.pool.rpc("host.get_all_records")
        self.assertEqual(len(hosts), 1)
        rec = next(iter(hosts.values()))
        for f in ("uuid", "name_label", "cpu_info", "software_version", "enabled", "address",
                  "API_version_major", "API_version_minor", "hostname", "metrics"):
            self.assertIn(f, rec)
        self.assertIsInstance(rec["cpu_info"], dict)
        self.assertIsInstance(rec["software_version"], dict)
        self.assertIsInstance(rec["enabled"], bool)
        self.assertInt(rec["API_version_major"], "API_version_major")
        self.assertInt(rec["API_version_minor"], "API_version_minor")
        self.assertEqual(rec["API_version_major"], 2)
        self.assertIsInstance(rec["address"], str)

    def test_get_all_records_maps_refs_to_records(self):
        self.clone()
        recs = self.pool.rpc("VM.get_all_records")
        self.assertEqual(sorted(recs), sorted(self.pool.rpc("VM.get_all")))
        for ref, rec in recs.items():
            self.assertRegex(ref, REF_RE)
            self.assertEqual(rec, self.pool.rpc("VM.get_record", ref))

    def test_get_by_uuid_and_by_name_label(self):
        vm = self.clone("find-me")
        uuid = self.pool.rpc("VM.get_uuid", vm)
        self.assertRegex(uuid, r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
        self.assertEqual(self.pool.rpc("VM.get_by_uuid", uuid), vm)
        self.assertEqual(self.pool.rpc("VM.get_by_name_label", "find-me"), [vm])
        self.assertEqual(self.pool.rpc("VM.get_by_name_label", "nobody has this name"), [])

    def test_uuid_invalid(self):
        params = self.assertXapiError("UUID_INVALID", self.pool.rpc, "VM.get_by_uuid",
                                      "00000000-1111-2222-3333-444444444444")
        self.assertEqual(params, ["VM", "00000000-1111-2222-3333-444444444444"])

    def test_handle_invalid_for_unknown_ref_and_ref_of_another_class(self):
        params = self.assertXapiError("HANDLE_INVALID", self.pool.rpc, "VM.get_record", BAD_REF)
        self.assertEqual(params, ["VM", BAD_REF])
        host = self.pool.rpc("host.get_all")[0]
        params = self.assertXapiError("HANDLE_INVALID", self.pool.rpc, "VM.get_record", host)
        self.assertEqual(params, ["VM", host])
        params = self.assertXapiError("HANDLE_INVALID", self.pool.rpc, "VM.set_name_label", host, "x")
        self.assertEqual(params, ["VM", host])
        self.assertNotEqual(self.pool.rpc("host.get_name_label", host), "x")

    # -- VM lifecycle
    def test_generic_vm_template_exists(self):
        rec = self.pool.rpc("VM.get_record", self.template())
        self.assertIs(rec["is_a_template"], True)
        self.assertEqual(rec["name_label"], "Generic VM")
        self.assertEqual(rec["power_state"], "Halted")

    def test_clone_and_destroy(self):
        before = set(self.pool.rpc("VM.get_all"))
        vm = self.clone("my clone")
        self.assertEqual(set(self.pool.rpc("VM.get_all")), before | {vm})
        rec = self.pool.rpc("VM.get_record", vm)
        self.assertEqual(rec["name_label"], "my clone")
        self.assertEqual(rec["power_state"], "Halted")
        self.assertNotEqual(rec["uuid"], self.pool.rpc("VM.get_uuid", self.template()))
        self.assertEqual(rec["memory_static_max"],
                         self.pool.rpc("VM.get_memory_static_max", self.template()))
        self.assertEqual(self.pool.rpc("VM.destroy", vm), "")
        self.assertEqual(set(self.pool.rpc("VM.get_all")), before)
        params = self.assertXapiError("HANDLE_INVALID", self.pool.rpc, "VM.get_record", vm)
        self.assertEqual(params, ["VM", vm])

    def test_create_from_a_record(self):
        gib = 1 << 30
        vm = self.pool.rpc("VM.create", self.vm_record(
            name_label="from record", memory_static_max=2 * gib, memory_dynamic_max=2 * gib,
            memory_dynamic_min=gib, memory_static_min=gib // 2, VCPUs_max=2, VCPUs_at_startup=2,
            other_config={"made-by": "test"}))
        self.assertRegex(vm, REF_RE)
        rec = self.pool.rpc("VM.get_record", vm)
        self.assertEqual(rec["name_label"], "from record")
        self.assertIs(rec["is_a_template"], False)
        self.assertEqual(rec["power_state"], "Halted")
        self.assertEqual((rec["memory_static_min"], rec["memory_dynamic_min"], rec["memory_dynamic_max"],
                          rec["memory_static_max"]), (gib // 2, gib, 2 * gib, 2 * gib))
        self.assertEqual(rec["VCPUs_max"], 2)
        self.assertEqual(rec["other_config"], {"made-by": "test"})
        self.assertEqual(set(rec), set(self.pool.rpc("VM.get_record", self.template())))

    def test_memory_constraint_violation(self):
        gib = 1 << 30
        before = sorted(self.pool.rpc("VM.get_all"))
        for bad in ({"memory_static_min": 2 * gib, "memory_static_max": gib},
                    {"memory_dynamic_min": 2 * gib, "memory_dynamic_max": gib, "memory_static_max": 4 * gib},
                    {"memory_dynamic_max": 8 * gib, "memory_static_max": gib}):
            params = self.assertXapiError("MEMORY_CONSTRAINT_VIOLATION", self.pool.rpc, "VM.create",
                                          self.vm_record(**bad))
            self.assertEqual(len(params), 1, params)
        self.assertEqual(sorted(self.pool.rpc("VM.get_all")), before, "a refused create leaves no VM behind")

    def test_destroying_the_default_template_is_refused(self):
        t = self.template()
        with self.assertRaises(XapiError):
            self.pool.rpc("VM.destroy", t)
        self.assertIs(self.pool.rpc("VM.get_is_a_template", t), True)
        self.assertEqual(self.pool.rpc("VM.get_name_label", t), "Generic VM")

    # -- Async and tasks
    def test_async_clone_task_succeeds_with_xmlrpc_result(self):
        task = self.pool.rpc("Async.VM.clone", self.template(), "async clone")
        self.assertRegex(task, REF_RE)
        self.assertIn(task, self.pool.rpc("task.get_all"))
        rec = self.pool.wait_task(task)
        self.assertEqual(rec["status"], "success", rec)
        self.assertEqual(rec["error_info"], [])
        self.assertEqual(rec["progress"], 1.0)
        self.assertEqual(rec["name_label"], "Async.VM.clone")
        m = re.match(r"^<value>(OpaqueRef:[^<]+)</value>$", rec["result"])
        self.assertTrue(m, "task result %r is not XML-RPC <value>OpaqueRef:...</value>" % rec["result"])
        vm = m.group(1)
        self.assertRegex(vm, REF_RE)
        self.assertEqual(self.pool.rpc("VM.get_name_label", vm), "async clone")
        self.assertEqual(self.pool.rpc("task.destroy", task), "")
        self.assertNotIn(task, self.pool.rpc("task.get_all"))
        self.assertXapiError("HANDLE_INVALID", self.pool.rpc, "task.get_record", task)

    def test_async_failure_sets_error_info(self):
        task = self.pool.rpc("Async.VM.clone", BAD_REF, "never")
        rec = self.pool.wait_task(task)
        self.assertEqual(rec["status"], "failure", rec)
        self.assertEqual(rec["error_info"], ["HANDLE_INVALID", "VM", BAD_REF])
        self.assertEqual(rec["result"], "")
        self.pool.rpc("task.destroy", task)

    def test_cancel_of_a_finished_task_is_not_allowed(self):
        task = self.pool.rpc("Async.VM.clone", self.template(), "x")
        self.assertEqual(self.pool.wait_task(task)["status"], "success")
        params = self.assertXapiError("OPERATION_NOT_ALLOWED", self.pool.rpc, "task.cancel", task)
        self.assertEqual(len(params), 1, params)
        self.assertEqual(self.pool.rpc("task.get_status", task), "success")

    def test_parameter_count_mismatch(self):
        vm = self.template()
        params = self.assertXapiError("MESSAGE_PARAMETER_COUNT_MISMATCH", self.pool.rpc, "VM.get_record")
        self.assertEqual(params, ["VM.get_record", "1", "0"])
        params = self.assertXapiError("MESSAGE_PARAMETER_COUNT_MISMATCH", self.pool.rpc, "VM.clone", vm)
        self.assertEqual(params, ["VM.clone", "2", "1"])
        params = self.assertXapiError("MESSAGE_PARAMETER_COUNT_MISMATCH", self.pool.rpc, "VM.set_name_label",
                                      vm, "a", "b")
        self.assertEqual(params, ["VM.set_name_label", "2", "3"])
        params = self.assertXapiError("MESSAGE_PARAMETER_COUNT_MISMATCH", self.pool.call,
                                      "session.login_with_password", "root")
        self.assertEqual(params, ["session.login_with_password", "2", "1"])

    def test_async_parameter_count_mismatch_creates_no_task(self):
        before = self.pool.rpc("task.get_all")
        params = self.assertXapiError("MESSAGE_PARAMETER_COUNT_MISMATCH", self.pool.rpc, "Async.VM.clone",
                                      self.template())
        self.assertEqual(sorted(self.pool.rpc("task.get_all")), sorted(before), "a task was created")
        # XAPI names the method without its Async. prefix (gen_server: __call after remove_async_prefix)
        self.assertEqual(params, ["VM.clone", "2", "1"])

    def test_unknown_method(self):
        params = self.assertXapiError("MESSAGE_METHOD_UNKNOWN", self.pool.rpc, "VM.no_such_method", "x")
        self.assertEqual(params, ["VM.no_such_method"])
        params = self.assertXapiError("MESSAGE_METHOD_UNKNOWN", self.pool.call, "nonsense")
        self.assertEqual(params, ["nonsense"])

    # -- events
    def test_event_from_empty_token_returns_every_vm_as_add(self):
        self.clone("a")
        self.clone("b")
        ev = self.pool.rpc("event.from", ["vm"], "", 5.0)
        self.assertRegex(ev["token"], TOKEN_RE)
        vms = self.pool.rpc("VM.get_all_records")
        adds = {e["ref"]: e for e in ev["events"] if e["class"] == "vm" and e["operation"] == "add"}
        self.assertEqual(set(adds), set(vms))
        for e in ev["events"]:
            self.assertEqual(e["class"], "vm")
            self.assertIsInstance(e["id"], str)
            self.assertIsInstance(e["timestamp"], str)
        for ref, e in adds.items():
            self.assertEqual(e["snapshot"], vms[ref])

    def test_event_from_blocks_until_a_change_and_returns_mod(self):
        vm = self.clone("watched")
        token = self.current_token()
        out = {}

        def waiter():
            try:
                out["ev"] = self.event_from(["vm"], token, 30.0)
            except Exception as e:  # reported by the main thread
                out["err"] = e
            out["at"] = time.monotonic()

        t = threading.Thread(target=waiter, daemon=True)
        t.start()
        time.sleep(0.7)
        self.assertTrue(t.is_alive(), "event.from returned before any change: %r" % out)
        changed = time.monotonic()
        self.pool.rpc("VM.set_name_label", vm, "renamed while watched")
        t.join(10 * SLOW)
        self.assertFalse(t.is_alive(), "event.from not woken by the change")
        self.assertNotIn("err", out)
        self.assertLess(out["at"] - changed, 2.0 * SLOW)
        mods = [e for e in out["ev"]["events"] if e["ref"] == vm]
        self.assertEqual(len(mods), 1, out["ev"]["events"])
        self.assertEqual(mods[0]["operation"], "mod")
        self.assertEqual(mods[0]["class"], "vm")
        self.assertEqual(mods[0]["snapshot"]["name_label"], "renamed while watched")
        self.assertEqual(mods[0]["snapshot"], self.pool.rpc("VM.get_record", vm))
        self.assertRegex(out["ev"]["token"], TOKEN_RE)
        self.assertGreater(out["ev"]["token"], token)

    def test_event_from_times_out_empty(self):
        token = self.current_token()
        t0 = time.monotonic()
        ev = self.event_from(["vm"], token, 1.0)
        took = time.monotonic() - t0
        self.assertEqual(ev["events"], [])
        self.assertRegex(ev["token"], TOKEN_RE)
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 4.0 * SLOW)

    def test_valid_ref_counts(self):
        task = self.pool.rpc("Async.VM.clone", self.template(), "counted")
        self.pool.wait_task(task)
        ev = self.pool.rpc("event.from", ["vm"], "", 0.0)
        counts = ev["valid_ref_counts"]
        self.assertIn("vm", counts)
        self.assertIn("task", counts)
        self.assertEqual(counts["vm"], len(self.pool.rpc("VM.get_all")))
        self.assertEqual(counts["task"], len(self.pool.rpc("task.get_all")))
        self.assertGreaterEqual(counts["task"], 1)
        self.assertEqual(counts.get("host"), 1)
        self.assertEqual(counts.get("pool"), 1)
        for k, v in counts.items():
            self.assertEqual(k, k.lower())
            self.assertInt(v, "valid_ref_counts." + k)

    def test_event_inject(self):
        pool_ref = self.pool.rpc("pool.get_all")[0]
        token = self.pool.rpc("event.inject", "pool", pool_ref)
        self.assertRegex(token, TOKEN_RE)
        t0 = time.monotonic()
        ev = self.event_from(["pool"], token, 10.0)
        self.assertLess(time.monotonic() - t0, 2.0 * SLOW, "the injected event must be returned at once")
        mods = [e for e in ev["events"] if e["ref"] == pool_ref]
        self.assertEqual([e["operation"] for e in mods], ["mod"])
        self.assertEqual(mods[0]["class"], "pool")
        self.assertEqual(mods[0]["snapshot"], self.pool.rpc("pool.get_record", pool_ref))
        # also for a VM, subscribed through "*"
        vm = self.template()
        token = self.pool.rpc("event.inject", "VM", vm)
        ev = self.event_from(["*"], token, 10.0)
        self.assertIn((vm, "mod"), [(e["ref"], e["operation"]) for e in ev["events"]])
        params = self.assertXapiError("HANDLE_INVALID", self.pool.rpc, "event.inject", "VM", pool_ref)
        self.assertEqual(params, ["VM", pool_ref])

    def test_event_coalescing_of_create_destroy_and_del(self):
        old = self.clone("old")
        token = self.current_token()
        short = self.clone("short-lived")
        self.pool.rpc("VM.destroy", short)
        self.pool.rpc("VM.destroy", old)
        ev = self.event_from(["vm"], token, 5.0)
        byref = {}
        for e in ev["events"]:
            byref.setdefault(e["ref"], []).append(e)
        self.assertNotIn(short, byref, "a VM created and destroyed since the token yields no event")
        self.assertEqual([e["operation"] for e in byref.get(old, [])], ["del"])
        self.assertNotIn("snapshot", byref[old][0])
        self.assertEqual(byref[old][0]["class"], "vm")

    def test_many_concurrent_event_from_waiters(self):
        n = 200
        vm = self.clone("hot")
        session = self.pool.session
        token = self.current_token()
        body = json.dumps({"jsonrpc": "2.0", "method": "event.from",
                           "params": [session, ["vm"], token, 30.0], "id": 7})
        sent = threading.Semaphore(0)
        results = [None] * n

        def waiter(i):
            try:
                conn = self.pool.connection(timeout=60)
                conn.request("POST", "/jsonrpc", body=body, headers={"Content-Type": "application/json"})
                sent.release()
                r = conn.getresponse()
                results[i] = (r.status, json.loads(r.read()), time.monotonic())
                conn.close()
            except Exception as e:
                results[i] = e
                sent.release()

        threads = [threading.Thread(target=waiter, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30 * SLOW
        for _ in range(n):
            self.assertTrue(sent.acquire(timeout=max(0.1, deadline - time.monotonic())),
                            "could not send %d event.from requests" % n)
        time.sleep(0.5)
        early = [r for r in results if r is not None]
        self.assertEqual(early, [], "waiters answered before any change")
        changed = time.monotonic()
        self.pool.rpc("VM.set_name_label", vm, "wake up")
        for t in threads:
            t.join(max(0.1, changed + 15 * SLOW - time.monotonic()))
        self.assertFalse(any(t.is_alive() for t in threads), "some waiters were not woken")
        errors = [r for r in results if isinstance(r, Exception)]
        self.assertEqual(errors, [])
        for status, answer, at in results:
            self.assertEqual(status, 200)
            self.assertNotIn("error", answer)
            evs = [e for e in answer["result"]["events"] if e["ref"] == vm]
            self.assertEqual([e["operation"] for e in evs], ["mod"])
            self.assertEqual(evs[0]["snapshot"]["name_label"], "wake up")
        slowest = max(at for _, _, at in results) - changed
        self.assertLess(slowest, 5.0 * SLOW, "all waiters must be woken promptly")

    # -- HTTP
    def test_content_type_is_exactly_application_json(self):
        ok = json.dumps({"jsonrpc": "2.0", "method": "VM.get_all", "params": [self.pool.session], "id": 1})
        bad = json.dumps({"jsonrpc": "2.0", "method": "VM.get_all", "params": ["OpaqueRef:nope"], "id": 2})
        for body in (ok, bad):
            status, headers, data = self.pool.raw(body)
            self.assertEqual(status, 200)
            self.assertEqual(headers.get("content-type"), "application/json")
        status, headers, data = self.pool.raw(bad)
        answer = json.loads(data)
        self.assertEqual(answer["error"], {"code": 1, "message": "SESSION_INVALID", "data": ["OpaqueRef:nope"]})
        self.assertEqual(answer["id"], 2)
        self.assertEqual(answer["jsonrpc"], "2.0")

    def test_keep_alive(self):
        conn = self.pool.connection()
        try:
            self.pool.call("VM.get_all", self.pool.session, conn=conn)
            sock = conn.sock
            self.assertIsNotNone(sock, "the server closed the connection after one call")
            for i in range(5):
                self.pool.call("VM.get_all", self.pool.session, conn=conn)
                self.assertIs(conn.sock, sock, "call %d needed a new connection" % (i + 2))
        finally:
            conn.close()

    # -- storage records (no SR can be created yet)
    def test_vdi_create_with_a_bad_sr(self):
        rec = {"name_label": "disk", "name_description": "", "SR": BAD_REF, "virtual_size": 1 << 30,
               "type": "user", "sharable": False, "read_only": False, "other_config": {},
               "xenstore_data": {}, "sm_config": {}, "tags": []}
        params = self.assertXapiError("HANDLE_INVALID", self.pool.rpc, "VDI.create", rec)
        self.assertEqual(params, ["SR", BAD_REF])
        self.assertEqual(self.pool.rpc("VDI.get_all"), [])

    def test_empty_cd_vbd_create_and_destroy(self):
        vm = self.clone("with cd")
        rec = {"VM": vm, "VDI": NULL, "userdevice": "3", "bootable": False, "mode": "RO", "type": "CD",
               "unpluggable": True, "empty": True, "other_config": {}, "qos_algorithm_type": "",
               "qos_algorithm_params": {}}
        vbd = self.pool.rpc("VBD.create", rec)
        self.assertRegex(vbd, REF_RE)
        got = self.pool.rpc("VBD.get_record", vbd)
        self.assertEqual(got["VM"], vm)
        self.assertEqual(got["VDI"], NULL)
        self.assertIs(got["empty"], True)
        self.assertEqual(got["type"], "CD")
        self.assertEqual(got["mode"], "RO")
        self.assertEqual(got["userdevice"], "3")
        self.assertIs(got["currently_attached"], False)
        self.assertEqual(self.pool.rpc("VM.get_VBDs", vm), [vbd])
        params = self.assertXapiError("DEVICE_ALREADY_EXISTS", self.pool.rpc, "VBD.create", rec)
        self.assertEqual(params, ["3"])
        self.assertEqual(self.pool.rpc("VM.get_VBDs", vm), [vbd])
        self.assertEqual(self.pool.rpc("VBD.destroy", vbd), "")
        self.assertEqual(self.pool.rpc("VM.get_VBDs", vm), [])
        self.assertXapiError("HANDLE_INVALID", self.pool.rpc, "VBD.get_record", vbd)


if __name__ == "__main__":
    unittest.main()
