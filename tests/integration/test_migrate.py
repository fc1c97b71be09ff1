"""
test_migrate.py - VM.pool_migrate between real agents on loopback: the VM
moves with its memory (the guest's heartbeat counter goes on where it left
off), poold's records follow, the checks refuse what must not move, and a
migration cut in the middle leaves the VM running where it was.
"""
import json
import os
import signal
import socket
import ssl
import struct
import time
import unittest

from tests.integration.harness import SLOW, XapiError
from tests.integration.pooltest import DevPool, pid_alive, wait_until
from tests.integration.test_pool import guest_heartbeat

LOW = "1fcbfbff-f7fa3223-2d93fbff-00000003"


class MigrateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = DevPool(3, host_memory_mib=2048, extra=("--no-sr", "--cpu-featureset", "host3=" + LOW,
                                                        "--migration-address", "host2=127.0.1.3"))

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    def vm(self, name, mib=128, **oc):
        return self.p.rpc("VM.create", {"name_label": name, "memory_static_max": mib << 20,
                                        "memory_dynamic_max": mib << 20, "memory_dynamic_min": mib << 20,
                                        "memory_static_min": 16 << 20, "other_config": oc})

    def refused(self, code, *a):
        with self.assertRaises(XapiError) as cm:
            self.p.rpc(*a)
        self.assertEqual(cm.exception.code, code, cm.exception.params)
        return cm.exception.params

    def domain_pid(self, vm):
        host = self.p.host_index(self.p.rpc("VM.get_resident_on", vm))
        return host, self.p.domain_pid(host, self.p.rpc("VM.get_domid", vm))

    def test_moves_with_its_memory(self):
        rpc = self.p.rpc
        vm = self.vm("mover", **{"sim-dirty-pages-per-s": "2000"})
        h1, h2 = self.p.host_ref(1), self.p.host_ref(2)
        rpc("VM.start_on", vm, h1, False, False)
        _, src_pid = self.domain_pid(vm)
        wait_until(lambda: guest_heartbeat(src_pid) > 100, 5 * SLOW, "the guest runs")
        before = guest_heartbeat(src_pid)
        metrics = rpc("VM.get_metrics", vm)
        history = rpc("VM_metrics.get_record", metrics)
        rpc("VM.pool_migrate", vm, h2, {"live": "true", "verify": "true"}, timeout=120 * SLOW)
        # same identity, same metrics history
        self.assertEqual(rpc("VM.get_metrics", vm), metrics)
        self.assertEqual(rpc("VM_metrics.get_record", metrics), history)
        rec = rpc("VM.get_record", vm)
        self.assertEqual((rec["power_state"], rec["resident_on"]), ("Running", h2))
        host, dst_pid = self.domain_pid(vm)
        self.assertEqual(host, 2)
        # the guest's own counter went on from where it was: its memory came along
        hb = guest_heartbeat(dst_pid)
        self.assertGreaterEqual(hb, before)
        wait_until(lambda: guest_heartbeat(dst_pid) > hb, 5 * SLOW, "the guest runs on the destination")
        # the call returned once the source's copy was destroyed (agent.vm_released)
        self.assertFalse(pid_alive(src_pid), "the source's copy outlived VM.pool_migrate")
        # a heartbeat later poold still agrees
        time.sleep(1.5)
        self.assertEqual(rpc("VM.get_resident_on", vm), h2)
        # and back, compressed, as an Async task
        task = rpc("Async.VM.pool_migrate", vm, h1, {"compress": "true"})
        deadline = time.time() + 60 * SLOW
        while rpc("task.get_status", task) == "pending" and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(rpc("task.get_status", task), "success", rpc("task.get_error_info", task))
        self.assertEqual(rpc("VM.get_resident_on", vm), h1)
        rpc("VM.hard_shutdown", vm)

    def test_progress_network_and_settings(self):
        rpc = self.p.rpc
        h1, h2 = self.p.host_ref(1), self.p.host_ref(2)
        pool = rpc("pool.get_all")[0]
        # big enough that the stream outlasts several of poold's progress
        # polls (every 500 ms) at ~800 MB/s
        vm = self.vm("progress", 1536, **{"sim-touch-mib": "1450"})
        rpc("VM.start_on", vm, h1, False, False)
        # bad values refused before anything moves, each with its name
        params = self.refused("INVALID_VALUE", "VM.pool_migrate", vm, h2, {"max_downtime_ms": "soon"})
        self.assertEqual(params, ["max_downtime_ms", "soon"])
        self.refused("INVALID_VALUE", "VM.pool_migrate", vm, h2, {"max_rounds": "-3"})
        self.refused("HANDLE_INVALID", "VM.pool_migrate", vm, h2, {"network": "OpaqueRef:nonesuch"})
        rpc("pool.add_to_other_config", pool, "migration-max-rounds", "many")
        try:
            params = self.refused("INVALID_VALUE", "VM.pool_migrate", vm, h2, {})
            self.assertEqual(params, ["migration-max-rounds", "many"])
        finally:
            rpc("pool.remove_from_other_config", pool, "migration-max-rounds")
        self.assertEqual(rpc("VM.get_scheduled_to_be_resident_on", vm), "OpaqueRef:NULL")
        # host2's second address is a PIF on the eth1 network: the stream goes there
        pifs = rpc("PIF.get_all_records")
        eth1 = [p for p in pifs.values() if p["host"] == h2 and p["device"] == "eth1"]
        self.assertEqual([p["IP"] for p in eth1], ["127.0.1.3"])
        # the task's progress only rises, with a phase a person can read
        task = rpc("Async.VM.pool_migrate", vm, h2, {"network": eth1[0]["network"], "verify": "true"})
        seen, phases = [], set()
        deadline = time.time() + 60 * SLOW
        while time.time() < deadline:
            rec = rpc("task.get_record", task)
            seen.append(rec["progress"])
            phases.add(rec["other_config"].get("phase", ""))
            if rec["status"] != "pending":
                break
            time.sleep(0.02)
        self.assertEqual(rec["status"], "success", rec["error_info"])
        self.assertEqual(seen, sorted(seen))
        self.assertTrue(any(0 < x < 1 for x in seen), seen)
        # the phase comes from poold's polls (every 500 ms): a stream that
        # lasted several polls was seen in a round
        stats = json.loads(rec["other_config"].get("migration_stats", "{}"))
        if stats.get("total_ms", 0) > 2000:
            self.assertTrue(any("round" in ph for ph in phases), (phases, stats.get("total_ms")))
        self.assertIn("127.0.1.3", self.p.agent_log(1))
        self.assertEqual(rpc("VM.get_resident_on", vm), h2)
        rpc("VM.hard_shutdown", vm)

    def test_checks(self):
        rpc = self.p.rpc
        h1, h2, h3 = self.p.host_ref(1), self.p.host_ref(2), self.p.host_ref(3)
        vm = self.vm("checked")
        self.refused("VM_BAD_POWER_STATE", "VM.pool_migrate", vm, h2, {})
        rpc("VM.start_on", vm, h1, False, False)
        self.refused("OPERATION_NOT_ALLOWED", "VM.pool_migrate", vm, h1, {})
        # booted with the pool level of hosts 1-2-3 (the lowest): fits host3
        big = self.vm("big", mib=4096)
        self.refused("HOST_NOT_ENOUGH_FREE_MEMORY", "VM.start_on", big, h2, False, False)
        rpc("VM.add_to_platform", vm, "nomigrate", "true")
        self.assertEqual(self.refused("VM_IS_IMMOBILE", "VM.pool_migrate", vm, h2, {}), [vm])
        rpc("VM.remove_from_platform", vm, "nomigrate")
        rpc("host.disable", h2)
        self.refused("HOST_DISABLED", "VM.pool_migrate", vm, h2, {})
        rpc("host.enable", h2)
        rpc("VM.hard_shutdown", vm)

    def test_booted_with_the_pool_level_it_fits_every_host(self):
        rpc = self.p.rpc
        h1, h3 = self.p.host_ref(1), self.p.host_ref(3)
        vm = self.vm("cpu")
        rpc("VM.start_on", vm, h1, False, False)
        flags = rpc("VM.get_last_boot_CPU_flags", vm)
        self.assertTrue(flags["features"].startswith(LOW), flags)
        rpc("VM.pool_migrate", vm, h3, {}, timeout=120 * SLOW)  # host3 has the fewest features
        self.assertEqual(rpc("VM.get_resident_on", vm), h3)
        rpc("VM.hard_shutdown", vm)

    def test_cut_connection_leaves_the_vm_where_it_was(self):
        rpc = self.p.rpc
        h1, h2 = self.p.host_ref(1), self.p.host_ref(2)
        conf = os.path.join(self.p.host_dir(1), "agent.conf")
        with open(conf) as f:
            text = f.read()
        with open(conf, "a") as f:
            f.write("fault-migration-cut-bytes: 3MiB\n")
        self.p.kill_agent(1, signal.SIGTERM)
        self.p.start_agent(1)
        try:
            vm = self.vm("cut")
            rpc("VM.start_on", vm, h1, False, False)
            _, pid = self.domain_pid(vm)
            params = self.refused("VM_MIGRATE_FAILED", "VM.pool_migrate", vm, h2, {})
            self.assertEqual(params[:3], [vm, h1, h2])
            rec = rpc("VM.get_record", vm)
            self.assertEqual((rec["power_state"], rec["resident_on"]), ("Running", h1))
            self.assertEqual(rec["scheduled_to_be_resident_on"], "OpaqueRef:NULL")
            hb = guest_heartbeat(pid)
            wait_until(lambda: guest_heartbeat(pid) > hb, 5 * SLOW, "the guest still runs on its source")
            # nothing was left on the destination
            wait_until(lambda: not self.p.domains(2) or all(not pid_alive(int(d["pid"]))
                                                          for d in self.p.domains(2).values()),
                       10 * SLOW, "no domain left on the destination")
            rpc("VM.hard_shutdown", vm)
        finally:
            with open(conf, "w") as f:
                f.write(text)
            self.p.kill_agent(1, signal.SIGTERM)
            self.p.start_agent(1)


if __name__ == "__main__":
    unittest.main()


class MasterRestartTest(unittest.TestCase):
    """poold stopped in the middle of a migration and started again: the VM
    runs on exactly one host, and poold's records say which."""

    def test_poold_restart_mid_migration(self):
        p = DevPool(2, host_memory_mib=2048, extra=("--no-sr",))
        try:
            rpc = p.rpc
            h1, h2 = p.host_ref(1), p.host_ref(2)
            vm = rpc("VM.create", {"name_label": "m", "memory_static_max": 512 << 20,
                                   "memory_dynamic_max": 512 << 20, "memory_dynamic_min": 512 << 20,
                                   "memory_static_min": 16 << 20, "other_config": {"sim-touch-mib": "400"}})
            rpc("VM.start_on", vm, h1, False, False)
            rpc("Async.VM.pool_migrate", vm, h2, {"verify": "true"})
            time.sleep(0.15)
            p.restart_poold(pause=2)
            def settled():
                try:  # sessions outlive a restart of poold
                    rec = rpc("VM.get_record", vm)
                except Exception:
                    return False
                running = [i for i in (1, 2) if any(pid_alive(int(d["pid"])) and d.get("uuid") == rec["uuid"]
                                                   for d in p.domains(i).values())]
                return (rec["scheduled_to_be_resident_on"] == "OpaqueRef:NULL" and rec["power_state"] == "Running"
                        and len(running) == 1 and p.host_ref(running[0]) == rec["resident_on"])
            wait_until(settled, 20 * SLOW, "one running copy, and poold agrees where")
        finally:
            p.close()


class AgentDeathTest(unittest.TestCase):
    """A migration whose destination agent dies mid-stream: the VM keeps
    running on its source; the restarted agent clears the half-made copy."""

    def test_destination_agent_killed(self):
        p = DevPool(2, host_memory_mib=2048, extra=("--no-sr",))
        try:
            rpc = p.rpc
            h1, h2 = p.host_ref(1), p.host_ref(2)
            vm = rpc("VM.create", {"name_label": "m", "memory_static_max": 512 << 20,
                                   "memory_dynamic_max": 512 << 20, "memory_dynamic_min": 512 << 20,
                                   "memory_static_min": 16 << 20, "other_config": {"sim-touch-mib": "400"}})
            rpc("VM.start_on", vm, h1, False, False)
            pid = p.domain_pid(1, rpc("VM.get_domid", vm))
            task = rpc("Async.VM.pool_migrate", vm, h2, {"verify": "true"})
            wait_until(lambda: p.domains(2), 10 * SLOW, "the destination domain exists")
            p.kill_agent(2)
            deadline = time.time() + 60 * SLOW
            while rpc("task.get_status", task) == "pending" and time.time() < deadline:
                time.sleep(0.05)
            self.assertEqual(rpc("task.get_status", task), "failure")
            self.assertEqual(rpc("task.get_error_info", task)[0], "VM_MIGRATE_FAILED")
            rec = rpc("VM.get_record", vm)
            self.assertEqual((rec["power_state"], rec["resident_on"]), ("Running", h1))
            hb = guest_heartbeat(pid)
            wait_until(lambda: guest_heartbeat(pid) > hb, 5 * SLOW, "the guest still runs on its source")
            p.start_agent(2)
            wait_until(lambda: not any(pid_alive(int(d["pid"])) for d in p.domains(2).values()),
                       10 * SLOW, "the half-made copy is gone")
            time.sleep(1.5)
            self.assertEqual(rpc("VM.get_resident_on", vm), h1)
            self.assertEqual(rpc("VM.get_power_state", vm), "Running")
        finally:
            p.close()

    def test_source_agent_killed(self):
        """The source's agent dies mid-stream: its domain lives on (domains
        outlive their agent), the destination clears its half-made copy,
        poold asks the destination before deciding and records the VM where
        it runs."""
        p = DevPool(2, host_memory_mib=2048, extra=("--no-sr",))
        try:
            rpc = p.rpc
            h1, h2 = p.host_ref(1), p.host_ref(2)
            # a guest that keeps dirtying, and a downtime it cannot reach: the stream goes
            # round after round, so the kill lands in the middle of it
            vm = rpc("VM.create", {"name_label": "m", "memory_static_max": 768 << 20,
                                   "memory_dynamic_max": 768 << 20, "memory_dynamic_min": 768 << 20,
                                   "memory_static_min": 16 << 20,
                                   "other_config": {"sim-touch-mib": "700", "sim-dirty-pages-per-s": "40000",
                                                    "sim-working-set-mib": "256"}})
            rpc("VM.start_on", vm, h1, False, False)
            pid = p.domain_pid(1, rpc("VM.get_domid", vm))
            task = rpc("Async.VM.pool_migrate", vm, h2, {"verify": "true", "max_downtime_ms": "1"})
            wait_until(lambda: rpc("task.get_progress", task) > 0.05 or rpc("task.get_status", task) != "pending",
                       20 * SLOW, "the stream runs", 0.01)
            p.kill_agent(1)
            deadline = time.time() + 60 * SLOW
            while rpc("task.get_status", task) == "pending" and time.time() < deadline:
                time.sleep(0.05)
            status = rpc("task.get_status", task)
            if status == "success":  # it finished before the kill landed: nothing to see
                self.skipTest("the migration ended before the agent died")
            self.assertEqual(rpc("task.get_error_info", task)[0], "VM_MIGRATE_FAILED")
            rec = rpc("VM.get_record", vm)
            self.assertEqual((rec["resident_on"], rec["scheduled_to_be_resident_on"]), (h1, "OpaqueRef:NULL"))
            hb = guest_heartbeat(pid)
            wait_until(lambda: guest_heartbeat(pid) > hb, 5 * SLOW, "the guest still runs on its source")
            wait_until(lambda: not any(pid_alive(int(d["pid"])) for d in p.domains(2).values()),
                       10 * SLOW, "the destination holds nothing")
            p.start_agent(1)
            time.sleep(1.5)
            rec = rpc("VM.get_record", vm)
            self.assertEqual((rec["power_state"], rec["resident_on"]), ("Running", h1))
            # and it can go now
            rpc("VM.pool_migrate", vm, h2, {"verify": "true"}, timeout=180 * SLOW)
            self.assertEqual(rpc("VM.get_resident_on", vm), h2)
        finally:
            p.close()


class MigrateEndpointTest(unittest.TestCase):
    """A migration endpoint is closed by nothing but its source or its deadline."""

    @classmethod
    def setUpClass(cls):
        # heartbeats every 2 s (dead after 6 s): the source agent is stopped
        # for a moment and must not be declared dead meanwhile
        cls.p = DevPool(2, host_memory_mib=1024, heartbeat=2, extra=("--no-sr",))

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    @staticmethod
    def listening(addr):
        """Ports in LISTEN on addr (IPv4), from /proc/net/tcp."""
        want = "%08X" % struct.unpack("<I", socket.inet_aton(addr))[0]
        ports = set()
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                ip, port = fields[1].split(":")
                if ip == want and fields[3] == "0A":
                    ports.add(int(port, 16))
        return ports

    def read_all(self, sock):
        data = b""
        sock.settimeout(3 * SLOW)
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (OSError, ssl.SSLError):
            pass
        return data

    def strays(self, addr, port):
        # a port scan: connect and go
        socket.create_connection((addr, port)).close()
        # not TLS at all
        s = socket.create_connection((addr, port))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        self.read_all(s)
        s.close()
        # a pool member with the wrong token
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(self.p.cafile)
        state = self.p.state_dir(1)
        ctx.load_cert_chain(os.path.join(state, "agent.pem"), os.path.join(state, "agent.key"))
        tls = ctx.wrap_socket(socket.create_connection((addr, port)))
        tls.sendall(struct.pack("<IIQ", 1, 0, 40) + struct.pack("<II32s", 0x3147494D, 2, b"stray"))  # HELLO
        token = b"not-the-token"
        tls.sendall(struct.pack("<IIQ", 2, 0, len(token)) + token)  # TOKEN
        self.assertIn(b"token refused", self.read_all(tls))
        tls.close()
        # a pool member that is not the source poold chose: refused in the handshake
        state = self.p.state_dir(2)
        ctx.load_cert_chain(os.path.join(state, "agent.pem"), os.path.join(state, "agent.key"))
        raw = socket.create_connection((addr, port))
        try:
            tls = ctx.wrap_socket(raw)
            tls.sendall(struct.pack("<IIQ", 1, 0, 40) + struct.pack("<II32s", 0x3147494D, 2, b"other"))
            self.assertNotIn(b"token refused", self.read_all(tls))
            tls.close()
        except (ssl.SSLError, ConnectionError):
            raw.close()

    def test_stray_connections_do_not_close_the_endpoint(self):
        p, rpc = self.p, self.p.rpc
        h1, h2 = p.host_ref(1), p.host_ref(2)
        vm = rpc("VM.create", {"name_label": "target", "memory_static_max": 128 << 20, "memory_dynamic_max": 128 << 20,
                               "memory_dynamic_min": 128 << 20, "memory_static_min": 16 << 20})
        rpc("VM.start_on", vm, h1, False, False)
        dst = "127.0.0.3"
        before = self.listening(dst)
        src = p.agent_pid(1)
        os.kill(src, signal.SIGSTOP)  # the source's connection comes after the strays
        silent = None
        try:
            task = rpc("Async.VM.pool_migrate", vm, h2, {"live": "true"})
            port = wait_until(lambda: sorted(self.listening(dst) - before), 10, "the endpoint listens", 0.02)[0]
            self.strays(dst, port)
            silent = socket.create_connection((dst, port))  # says nothing at all
        finally:
            os.kill(src, signal.SIGCONT)
        deadline = time.time() + 60 * SLOW
        while rpc("task.get_status", task) == "pending" and time.time() < deadline:
            time.sleep(0.05)
        if silent:
            silent.close()
        self.assertEqual(rpc("task.get_status", task), "success", rpc("task.get_error_info", task))
        self.assertEqual(rpc("VM.get_resident_on", vm), h2)
        log = p.agent_log(2, 20000)
        # the port scan, the plain text, the other pool member and the silent one
        self.assertGreaterEqual(log.count("dropped a connection"), 4, log)
        self.assertIn("refused a connection", log)
        rpc("VM.hard_shutdown", vm)
