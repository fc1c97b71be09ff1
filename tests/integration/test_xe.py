"""
test_xe.py - bin/xe against a real poold: list/param commands and their
record layout, vm-install/clone/uninstall, --minimal, params=, errors on
stderr with exit 1, event-wait, help. VDI/VBD commands need an SR; a fresh
pool has none and there is no SR.create yet, so those tests skip then.
"""
import os
import re
import subprocess
import threading
import time
import unittest
import uuid as uuidlib

UUID_INVALID = "The uuid you supplied was invalid.\n"
BAD_POWER = ("You attempted an operation on a VM that was not in an appropriate power state at the time; for "
             "example, you attempted to start a VM that was already running. The parameters returned are the VM's "
             "handle, and the expected and actual VM state at the time of the call.\n")

try:
    from . import harness
except ImportError:  # run as a script from tests/integration
    import harness

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def records(text):
    """Parse xe's record output into a list of {label: value} dicts."""
    out = []
    for block in text.split("\n\n\n"):
        if not block.strip():
            continue
        rec = {}
        for line in block.split("\n"):
            label, _, value = line.partition(": ")
            rec[label.strip()] = value
        out.append(rec)
    return out


class XeTest(harness.PoolTest):
    def xe(self, *args, **kw):
        return self.pool.xe(*args, **kw)

    # -- whom xe gives the password to
    def host_cert(self, ip):
        """A certificate as poold gives a host: from the pool CA, its uuid as CN,
        its address as its name."""
        d = self.pool.dir
        key, csr, crt, ext = (os.path.join(d, "h." + n) for n in ("key", "csr", "pem", "ext"))
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:%s\nextendedKeyUsage=serverAuth,clientAuth\n" % ip)
        for args in (["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", key, "-out", csr, "-subj", "/CN=%s" % uuidlib.uuid4()],
                     ["x509", "-req", "-in", csr, "-CA", os.path.join(d, "ca.pem"), "-CAkey", os.path.join(d, "ca.key"),
                      "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext]):
            r = subprocess.run(["openssl"] + args, capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
        return crt, key

    def xe_at(self, fake, addr):
        fake_env = {"XE_SERVER": addr, "XE_PORT": str(fake.port)}
        r = self.xe("vm-list", check=False, env=fake_env)
        time.sleep(0.3)
        return r

    def test_a_pool_member_posing_as_the_master_gets_no_password(self):
        fake = harness.FakeServer("127.0.0.70", *self.host_cert("127.0.0.70"))
        self.addCleanup(fake.close)
        r = self.xe_at(fake, "127.0.0.70")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertNotIn(harness.PASSWORD.encode(), fake.received)
        self.assertEqual(fake.received, b"")

    def test_a_certificate_that_does_not_name_the_server_is_refused(self):
        # the master's own certificate, at an address it does not name
        fake = harness.FakeServer("127.0.0.71", os.path.join(self.pool.dir, "server.pem"),
                                  os.path.join(self.pool.dir, "server.key"))
        self.addCleanup(fake.close)
        r = self.xe_at(fake, "127.0.0.71")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("127.0.0.71", r.stderr)
        self.assertEqual(fake.received, b"")
        # the names it has work, and without a CA file nothing is checked (as XAPI's xe)
        self.assertIn("Generic VM", self.xe("template-list", env={"XE_SERVER": "localhost"}).stdout)
        self.assertIn("Generic VM", self.xe("template-list", env={"XE_CACERT": ""}).stdout)

    def install(self, name="vm1"):
        r = self.xe("vm-install", "template=Generic VM", "new-name-label=" + name)
        uuid = r.stdout.strip()
        self.assertRegex(uuid, "^" + UUID + "$")
        return uuid

    def test_pool_list(self):
        r = self.xe("pool-list")
        recs = records(r.stdout)
        self.assertEqual(len(recs), 1)
        self.assertEqual(list(recs[0]), ["uuid ( RO)", "name-label ( RW)", "name-description ( RW)",
                                         "master ( RO)", "default-SR ( RW)"])
        host = self.xe("host-list", "--minimal").stdout.strip()
        self.assertEqual(recs[0]["master ( RO)"], host)
        self.assertEqual(recs[0]["default-SR ( RW)"], "<not in database>")
        self.assertTrue(r.stdout.endswith("\n\n\n"))

    def test_host_list(self):
        r = self.xe("host-list")
        lines = r.stdout.split("\n")
        self.assertRegex(lines[0], r"^uuid \( RO\)                : " + UUID + "$")
        self.assertRegex(lines[1], r"^          name-label \( RW\): ")
        self.assertRegex(lines[2], r"^    name-description \( RW\): ")
        total = self.xe("host-param-get", "uuid=" + lines[0].split(": ")[1], "param-name=memory-total")
        self.assertGreater(int(total.stdout.strip()), 0)

    def test_template_list(self):
        r = self.xe("template-list")
        recs = records(r.stdout)
        self.assertIn("Generic VM", [x["name-label ( RW)"] for x in recs])
        self.assertEqual(list(recs[0]), ["uuid ( RO)", "name-label ( RW)", "name-description ( RW)"])
        self.assertEqual(self.xe("vm-list").stdout, "")

    def test_install_and_list(self):
        uuid = self.install("vm1")
        r = self.xe("vm-list")
        self.assertEqual(r.stdout, "uuid ( RO)           : %s\n"
                                   "     name-label ( RW): vm1\n"
                                   "    power-state ( RO): halted\n\n\n" % uuid)
        desc = self.xe("vm-param-get", "uuid=" + uuid, "param-name=name-description").stdout
        self.assertEqual(desc, "Installed via xe CLI\n")
        tmpl = self.xe("vm-param-get", "uuid=" + uuid, "param-name=is-a-template").stdout
        self.assertEqual(tmpl, "false\n")

    def test_param_get_set(self):
        uuid = self.install("vm1")
        self.assertEqual(self.xe("vm-param-get", "uuid=" + uuid, "param-name=name-label").stdout, "vm1\n")
        self.xe("vm-param-set", "uuid=" + uuid, "name-label=renamed")
        self.assertEqual(self.xe("vm-param-get", "uuid=" + uuid, "param-name=name-label").stdout, "renamed\n")
        self.xe("vm-param-set", "uuid=" + uuid, "other-config:k=v", "VCPUs-max=2")
        r = self.xe("vm-param-get", "uuid=" + uuid, "param-name=other-config", "param-key=k")
        self.assertEqual(r.stdout, "v\n")
        self.assertEqual(self.xe("vm-param-get", "uuid=" + uuid, "param-name=VCPUs-max").stdout, "2\n")
        rec = self.pool.rpc("VM.get_record", self.pool.rpc("VM.get_by_uuid", uuid))
        self.assertEqual(rec["other_config"]["k"], "v")
        self.assertEqual(rec["VCPUs_max"], 2)
        plist = self.xe("vm-param-list", "uuid=" + uuid).stdout
        self.assertIn("other-config (MRW): k: v\n", plist)
        self.assertIn("power-state ( RO): halted\n", plist)
        self.assertIn("dom-id ( RO): -1\n", plist)
        r = self.xe("vm-param-set", "uuid=" + uuid, "power-state=running", check=False)
        self.assertEqual(r.returncode, 1)

    def test_clone_uninstall(self):
        uuid = self.install("orig")
        r = self.xe("vm-clone", "vm=orig", "new-name-label=copy")
        clone = r.stdout.strip()
        self.assertRegex(clone, "^" + UUID + "$")
        names = self.xe("vm-list", "params=name-label", "--minimal").stdout.strip().split(",")
        self.assertEqual(sorted(names), ["copy", "orig"])
        r = self.xe("vm-uninstall", "uuid=" + clone, "force=true")
        self.assertIn("All objects destroyed", r.stdout)
        self.assertEqual(self.xe("vm-list", "--minimal").stdout, uuid + "\n")

    def test_minimal_and_params(self):
        a = self.install("a,b")
        r = self.xe("vm-list", "params=name-label", "--minimal")
        self.assertEqual(r.stdout, "a\\,b\n")
        r = self.xe("vm-list", "params=uuid,VCPUs-max")
        self.assertEqual(records(r.stdout), [{"uuid ( RO)": a, "VCPUs-max ( RW)": "1"}])
        r = self.xe("vm-list", "params=all")
        self.assertIn("memory-static-max ( RW)", r.stdout)
        self.assertEqual(self.xe("vm-list", "name-label=nope").stdout, "")
        self.assertEqual(self.xe("vm-list", "power-state=halted", "--minimal").stdout, a + "\n")

    def test_task_list(self):
        r = self.xe("task-list")
        self.assertEqual(r.returncode, 0)

    def test_task_list_async(self):
        # an async call leaves a task behind (NB: at the time of writing poold
        # exits 1 on SIGTERM after any Async.VM.clone: a poold bug, not xe's)
        vm = self.pool.rpc("VM.get_by_uuid", self.install("t"))
        task = self.pool.rpc("Async.VM.clone", vm, "x")
        self.pool.wait_task(task)
        tuuid = self.pool.rpc("task.get_uuid", task)
        recs = records(self.xe("task-list").stdout)
        mine = [x for x in recs if x["uuid ( RO)"] == tuuid]
        self.assertEqual(len(mine), 1)
        self.assertEqual(list(mine[0]), ["uuid ( RO)", "name-label ( RO)", "name-description ( RO)",
                                         "status ( RW)", "progress ( RW)"])
        self.assertEqual(mine[0]["status ( RW)"], "success")
        self.assertEqual(mine[0]["progress ( RW)"], "1.000")

    def test_filters_debug_confirm(self):
        uuid = self.install("f1")
        # an unknown field is an error, not an empty list (XAPI's get_field_type)
        r = self.xe("vm-list", "bogus-field=1", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith("The server failed to handle your request, due to an internal error."),
                        r.stderr)
        self.assertIn("message: Failure: Unknown field 'bogus-field'\n", r.stderr)
        r = self.xe("vm-list", "tags:bogus=1", check=False)
        self.assertIn("Invalid syntax for set filtering", r.stderr)
        # set membership
        self.xe("vm-param-add", "uuid=" + uuid, "param-name=tags", "param-key=prod")
        r = self.xe("vm-list", "tags:contains=prod", "--minimal")
        self.assertEqual(r.stdout.strip(), uuid)
        r = self.xe("vm-list", "tags:contains=dev", "--minimal")
        self.assertEqual(r.stdout.strip(), "")
        # --debug: each call on stderr, no password or session in it
        r = self.xe("--debug", "vm-list", "--minimal")
        self.assertIn("xe: -> session.login_with_password", r.stderr)
        self.assertIn("xe: -> VM.get_all_records", r.stderr)
        self.assertNotIn(harness.PASSWORD, r.stderr)
        self.assertNotIn("OpaqueRef", r.stderr.split("login_with_password")[1].split("\n", 1)[1])
        r = self.xe("--debug-on-fail", "vm-list")
        self.assertEqual(r.stderr, "")
        r = self.xe("--debug-on-fail", "vm-shutdown", "vm=f1", check=False)
        self.assertIn("xe: <- VM.clean_shutdown failed", r.stderr)
        # vm-uninstall asks, and nobody answers here: nothing is destroyed
        r = self.xe("vm-uninstall", "vm=f1", check=False, input="")
        self.assertEqual((r.returncode, r.stderr), (1, "Aborted\n"))
        self.assertIn("Type 'yes' to continue", r.stdout)
        self.xe("vm-param-get", "uuid=" + uuid, "param-name=name-label")
        self.xe("vm-uninstall", "vm=f1", "--force")

    def test_errors(self):
        r = self.xe("vm-param-get", "uuid=00000000-0000-0000-0000-000000000000", "param-name=name-label",
                    check=False)
        self.assertEqual(r.returncode, 1)
        # as real xe: the error's description, then its parameters
        self.assertEqual(r.stderr, "%stype: VM\nuuid: 00000000-0000-0000-0000-000000000000\n" % UUID_INVALID)
        r = self.xe("vm-list", env={"XE_PASSWORD": "wrong"}, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "Authentication failed\n")
        r = self.xe("no-such-command", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("Unknown command: no-such-command", r.stderr)
        r = self.xe("vm-param-get", "param-name=name-label", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "Required parameter not found: uuid\n")
        r = self.xe("vm-install", "template=Generic VM", check=False)
        self.assertEqual(r.stderr, "Required parameter not found: new-name-label\n")
        r = self.xe("vm-install", "template=nope", "new-name-label=x", check=False)
        self.assertEqual((r.returncode, r.stderr), (1, "No templates matched\n"))
        r = self.xe("vm-list", env={"XE_PORT": str(harness.free_port())}, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"^Error: cannot connect to 127\.0\.0\.1:\d+: Connection refused\n$")
        self.assertEqual(r.stdout, "")

    def test_options_override_env(self):
        r = self.xe("-u", "root", "-pw", harness.PASSWORD, "-p", str(self.pool.port), "host-list",
                    env={"XE_PASSWORD": "wrong", "XE_PORT": "1"})
        self.assertEqual(len(records(r.stdout)), 1)

    def test_dot_xe(self):
        import os
        with open(os.path.join(self.pool.dir, ".xe"), "w") as f:
            f.write("server=127.0.0.1\nport=%d\nusername=root\npassword=%s\n" % (self.pool.port, harness.PASSWORD))
        r = self.xe("host-list", "--minimal", env={"XE_PASSWORD": "", "XE_PORT": "", "XE_SERVER": ""})
        self.assertRegex(r.stdout, "^" + UUID + "\n$")

    def test_event_wait(self):
        uuid = self.install("before")
        # already true: returns at once
        self.xe("event-wait", "class=vm", "name-label=before", "uuid=" + uuid)
        ref = self.pool.rpc("VM.get_by_uuid", uuid)

        def rename():
            time.sleep(1.0 * harness.SLOW)
            self.pool.call("VM.set_name_label", self.pool.login(), ref, "after")
        t = threading.Thread(target=rename)
        start = time.time()
        t.start()
        r = self.xe("event-wait", "class=vm", "name-label=after", "power-state=/=running")
        t.join()
        self.assertEqual((r.returncode, r.stdout), (0, ""))
        self.assertGreater(time.time() - start, 0.9 * harness.SLOW)
        r = self.xe("event-wait", "class=vm", "name-label=never", "timeout=1", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("Timed out", r.stderr)
        r = self.xe("event-wait", "class=vm", "bogus=1", check=False)
        self.assertEqual((r.returncode, r.stderr), (1, "key missing: bogus\n"))

    def test_help(self):
        r = self.xe("help")
        self.assertTrue(r.stdout.startswith("Usage:\n  xe <command>\n"))
        self.assertIn("Common command list\n-------------------\n", r.stdout)
        self.assertIn("vm-install", r.stdout)
        for line in r.stdout.split("Common command list\n-------------------\n")[1].splitlines():
            self.assertTrue(line.startswith("    "))
        r = self.xe("help", "vm-install")
        self.assertEqual(r.stdout, "command name            : vm-install\n"
                                   "        reqd params     : new-name-label\n"
                                   "        optional params : sr-name-label, sr-uuid, template\n"
                                   "        description     : Install a new VM from a template. The template "
                                   "parameter can match either the template name or the uuid.\n\n\n")
        r = self.xe("help", "--all")
        self.assertTrue(r.stdout.startswith("Full command list\n-----------------\n    host-"))

    def sr_uuid(self):
        srs = self.pool.rpc("SR.get_all")
        if not srs:
            self.skipTest("a fresh pool has no SR and there is no SR.create yet")
        return self.pool.rpc("SR.get_uuid", srs[0])

    def test_sr_list_params(self):
        r = self.xe("sr-list", "params=physical-size,physical-utilisation")
        self.assertEqual(r.returncode, 0)

    def test_vdi_vbd(self):
        sr = self.sr_uuid()
        vm = self.install("disks")
        vdi = self.xe("vdi-create", "sr-uuid=" + sr, "name-label=d0", "virtual-size=1GiB").stdout.strip()
        self.assertRegex(vdi, "^" + UUID + "$")
        recs = records(self.xe("vdi-list", "uuid=" + vdi).stdout)
        self.assertEqual(recs[0]["virtual-size ( RO)"], str(1 << 30))
        vbd = self.xe("vbd-create", "vm-uuid=" + vm, "vdi-uuid=" + vdi, "device=0").stdout.strip()
        self.assertRegex(vbd, "^" + UUID + "$")
        recs = records(self.xe("vbd-list", "vm-uuid=" + vm).stdout)
        self.assertEqual(recs[0]["vdi-uuid ( RO)"], vdi)
        self.assertEqual(recs[0]["vm-name-label ( RO)"], "disks")
        self.xe("vbd-destroy", "uuid=" + vbd)
        self.xe("vdi-destroy", "uuid=" + vdi)
        self.assertEqual(self.xe("vdi-list", "uuid=" + vdi).stdout, "")

    def test_join_token(self):
        a = self.xe("pool-join-token-create").stdout
        self.assertRegex(a, r"^\S+\n$")
        b = self.xe("pool-join-token-create", "expiry=600").stdout
        self.assertRegex(b, r"^\S+\n$")
        self.assertNotEqual(a, b)
        r = self.xe("pool-join-token-create", "expiry=soon", check=False)
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        self.assertIn("expiry", r.stderr)

    def test_power_errors(self):
        uuid = self.install("p1")
        # no host agent is live: VM.start's XAPI error, exit 1
        r = self.xe("vm-start", "vm=p1", check=False)
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        self.assertRegex(r.stderr, r"^[A-Z][^\n]+[.]\n")
        r = self.xe("vm-shutdown", "uuid=" + uuid, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "%svm: %s (p1)\nexpected: running\nactual: halted\n" % (BAD_POWER, uuid))
        r = self.xe("vm-shutdown", "vm=p1", "force=true", check=False)
        self.assertTrue(r.stderr.startswith(BAD_POWER), r.stderr)
        r = self.xe("vm-pause", "uuid=" + uuid, check=False)
        self.assertTrue(r.stderr.startswith(BAD_POWER), r.stderr)
        # selectors: field filters, no match, several without --multiple
        r = self.xe("vm-shutdown", "power-state=halted", "name-label=p1", check=False)
        self.assertTrue(r.stderr.startswith(BAD_POWER), r.stderr)
        r = self.xe("vm-start", "vm=nope", check=False)
        self.assertEqual((r.returncode, r.stderr), (1, "No VMs matched\n"))
        r = self.xe("vm-start", "name-label=nope", check=False)
        self.assertEqual((r.returncode, r.stderr), (1, "No matching VMs found\n"))
        self.install("p2")
        r = self.xe("vm-pause", "power-state=halted", check=False)
        self.assertEqual((r.returncode, r.stderr),
                         (1, "Multiple matches VMs found. --multiple required to complete the operation\n"))
        r = self.xe("vm-pause", "bogus=1", check=False)
        self.assertEqual((r.returncode, r.stderr), (1, "Parameter 'bogus' is not a field of the VM class. "
                                                       "Failed to select VM for operation.\n"))
        r = self.xe("vm-start", "vm=p1", "on=no-such-host", check=False)
        self.assertEqual((r.returncode, r.stderr), (1, "Host no-such-host not found\n"))
        r = self.xe("vm-start", "vm=p1", "paused=maybe", check=False)
        self.assertEqual((r.returncode, r.stderr),
                         (1, "Failed to parse parameter 'paused': expecting 'true' or 'false'\n"))

    def test_sr_pbd_errors(self):
        bad = "00000000-0000-0000-0000-000000000000"
        r = self.xe("pbd-plug", "uuid=" + bad, check=False)
        self.assertEqual((r.returncode, r.stderr), (1, "%stype: PBD\nuuid: %s\n" % (UUID_INVALID, bad)))
        r = self.xe("pbd-unplug", "uuid=" + bad, check=False)
        self.assertEqual((r.returncode, r.stderr), (1, "%stype: PBD\nuuid: %s\n" % (UUID_INVALID, bad)))
        for cmd in ("sr-destroy", "sr-forget"):
            r = self.xe(cmd, "uuid=" + bad, check=False)
            self.assertEqual((r.returncode, r.stderr), (1, "%stype: SR\nuuid: %s\n" % (UUID_INVALID, bad)))
        r = self.xe("sr-create", "name-label=s", "type=file", "host-uuid=" + bad, "device-config:path=/x",
                    check=False)
        self.assertEqual((r.returncode, r.stderr), (1, "%stype: host\nuuid: %s\n" % (UUID_INVALID, bad)))
        r = self.xe("sr-create", "name-label=s", check=False)
        self.assertEqual((r.returncode, r.stderr), (1, "Required parameter not found: type\n"))

    def test_help_new_commands(self):
        listing = self.xe("help").stdout
        for cmd in ("pool-join-token-create", "vm-start", "vm-shutdown", "vm-pause", "vm-unpause",
                    "sr-create", "sr-destroy", "sr-forget", "pbd-plug", "pbd-unplug", "host-enable",
                    "host-disable"):
            self.assertRegex(listing, r"[ ,]%s(,|\n)" % cmd)
        r = self.xe("help", "vm-shutdown")
        self.assertIn("        optional params : force, <vm-selectors>\n", r.stdout)


if __name__ == "__main__":
    unittest.main()
