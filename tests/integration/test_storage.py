"""
test_storage.py - disks through the agents: VDI.create / resize / snapshot /
clone / destroy on a shared file SR (real sparse files, real content), and
host.destroy of a host that is gone (the pool's CPU level recomputed).
"""
import os
import unittest

from tests.integration.harness import XapiError
from tests.integration.pooltest import DevPool, wait_until


class StorageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pool = DevPool(2, host_memory_mib=1024,
                           extra=("--cpu-featureset", "host2=1fcbfbff-f7fa3223-2d93fbff-00000003"))
        cls.sr = next(r for r, v in cls.pool.rpc("SR.get_all_records").items() if v["shared"])
        cls.srdir = os.path.join(cls.pool.dir, "sr")

    @classmethod
    def tearDownClass(cls):
        cls.pool.close()

    def path(self, vdi):
        return os.path.join(self.srdir, self.pool.rpc("VDI.get_uuid", vdi) + ".img")

    def test_vdi_life(self):
        rpc = self.pool.rpc
        vdi = rpc("VDI.create", {"SR": self.sr, "virtual_size": 64 << 20, "name_label": "data", "type": "user"})
        p = self.path(vdi)
        self.assertEqual(os.path.getsize(p), 64 << 20)
        self.assertLess(os.stat(p).st_blocks * 512, 1 << 20, "a new VDI allocates nothing")
        with open(p, "r+b") as f:  # the guest writes something
            f.seek(5 << 20)
            f.write(b"payload" * 1000)
        # grow, never shrink
        rpc("VDI.resize", vdi, 128 << 20)
        self.assertEqual(rpc("VDI.get_virtual_size", vdi), 128 << 20)
        self.assertEqual(os.path.getsize(p), 128 << 20)
        with self.assertRaises(XapiError) as cm:
            rpc("VDI.resize", vdi, 1 << 20)
        self.assertEqual(cm.exception.code, "VALUE_NOT_SUPPORTED")
        # snapshot: read-only copy of the content, holes kept
        snap = rpc("VDI.snapshot", vdi, {})
        srec = rpc("VDI.get_record", snap)
        self.assertTrue(srec["is_a_snapshot"])
        self.assertEqual(srec["snapshot_of"], vdi)
        self.assertTrue(srec["read_only"])
        self.assertIn(snap, rpc("VDI.get_snapshots", vdi))
        sp = self.path(snap)
        with open(sp, "rb") as f:
            f.seek(5 << 20)
            self.assertEqual(f.read(7000), b"payload" * 1000)
        self.assertLess(os.stat(sp).st_blocks * 512, 4 << 20, "the copy keeps the holes")
        # clone: writable and independent
        clone = rpc("VDI.clone", vdi, {})
        self.assertFalse(rpc("VDI.get_read_only", clone))
        with open(self.path(clone), "r+b") as f:
            f.seek(5 << 20)
            f.write(b"changed")
        with open(p, "rb") as f:
            f.seek(5 << 20)
            self.assertEqual(f.read(7), b"payload")
        # the SR's accounting follows
        alloc = rpc("SR.get_virtual_allocation", self.sr)
        self.assertGreaterEqual(alloc, 3 * (128 << 20))
        for v in (clone, snap, vdi):
            vp = self.path(v)
            rpc("VDI.destroy", v)
            self.assertFalse(os.path.exists(vp))
        self.assertXapi("HANDLE_INVALID", rpc, "VDI.get_record", vdi)

    def assertXapi(self, code, fn, *a):
        with self.assertRaises(XapiError) as cm:
            fn(*a)
        self.assertEqual(cm.exception.code, code)

    def test_host_destroy_relevels_the_pool(self):
        rpc = self.pool.rpc
        low = rpc("pool.get_cpu_info", rpc("pool.get_all")[0])["features"]
        self.assertTrue(low.startswith("1fcbfbff-f7fa3223-2d93fbff-00000003"), low)
        h2 = self.pool.host_ref(2)
        # a live host is not forgotten
        self.assertXapi("OPERATION_NOT_ALLOWED", rpc, "host.destroy", h2)
        self.pool.kill_agent(2)
        wait_until(lambda: not self.pool.host_metrics(2)["live"], 15, "host2 not live")
        rpc("host.destroy", h2)
        self.assertNotIn(h2, rpc("host.get_all"))
        self.assertFalse([p for p in rpc("PBD.get_all_records").values() if p["host"] == h2])
        high = rpc("pool.get_cpu_info", rpc("pool.get_all")[0])["features"]
        self.assertTrue(high.startswith("1fcbfbff-f7fa3223-2d93fbff-00000023"), high)


if __name__ == "__main__":
    unittest.main()


class CloneTest(unittest.TestCase):
    """VM.clone copies a VM's writable disks through the agents: the clone's
    disk is a new VDI with the same content, the parent's disk untouched."""

    def test_clone_copies_disks(self):
        p = DevPool(1, host_memory_mib=1024)
        try:
            rpc = p.rpc
            sr = next(r for r, v in rpc("SR.get_all_records").items() if v["shared"])
            vm = rpc("VM.create", {"name_label": "withdisk", "memory_static_max": 64 << 20,
                                   "memory_dynamic_max": 64 << 20, "memory_dynamic_min": 64 << 20,
                                   "memory_static_min": 16 << 20})
            vdi = rpc("VDI.create", {"SR": sr, "virtual_size": 16 << 20, "name_label": "root", "type": "user"})
            rpc("VBD.create", {"VM": vm, "VDI": vdi, "userdevice": "0", "mode": "RW", "type": "Disk",
                               "bootable": True})
            cd = rpc("VBD.create", {"VM": vm, "VDI": "OpaqueRef:NULL", "userdevice": "3", "mode": "RO",
                                    "type": "CD", "empty": True})
            src = os.path.join(p.dir, "sr", rpc("VDI.get_uuid", vdi) + ".img")
            with open(src, "r+b") as f:
                f.seek(1 << 20)
                f.write(b"bootloader")
            clone = rpc("VM.clone", vm, "copy")
            vbds = [rpc("VBD.get_record", b) for b in rpc("VM.get_VBDs", clone)]
            disk = next(b for b in vbds if b["type"] == "Disk")
            self.assertNotEqual(disk["VDI"], vdi, "the clone has its own disk")
            self.assertTrue(any(b["type"] == "CD" and b["empty"] for b in vbds), "the CD drive is cloned too")
            dst = os.path.join(p.dir, "sr", rpc("VDI.get_uuid", disk["VDI"]) + ".img")
            with open(dst, "r+b") as f:
                f.seek(1 << 20)
                self.assertEqual(f.read(10), b"bootloader")
                f.seek(1 << 20)
                f.write(b"changed!!!")
            with open(src, "rb") as f:
                f.seek(1 << 20)
                self.assertEqual(f.read(10), b"bootloader")
            # an Async clone works the same way and its task says which VM it made
            task = rpc("Async.VM.clone", vm, "copy2")
            deadline = __import__("time").time() + 30
            while rpc("task.get_status", task) == "pending" and __import__("time").time() < deadline:
                __import__("time").sleep(0.05)
            self.assertEqual(rpc("task.get_status", task), "success")
            self.assertIn("OpaqueRef:", rpc("task.get_result", task))
            del cd
        finally:
            p.close()


class SrLifeTest(unittest.TestCase):
    """SR.destroy removes an empty SR and its directory; SR.forget drops the
    records of an unplugged SR and leaves its data."""

    def test_destroy_and_forget(self):
        p = DevPool(1, host_memory_mib=1024, extra=("--no-sr",))
        try:
            rpc = p.rpc
            host = p.host_ref(1)
            d1, d2 = os.path.join(p.dir, "sr-a"), os.path.join(p.dir, "sr-b")
            a = rpc("SR.create", host, {"path": d1}, 0, "a", "", "file", "user", False, {})
            b = rpc("SR.create", host, {"path": d2}, 0, "b", "", "file", "user", False, {})
            self.assertTrue(os.path.isdir(d1) and os.path.isdir(d2))
            vdi = rpc("VDI.create", {"SR": a, "virtual_size": 1 << 20, "name_label": "x", "type": "user"})
            # as XAPI: refused while a PBD is plugged, then while it holds a VDI
            with self.assertRaises(XapiError) as cm:
                rpc("SR.destroy", a)
            self.assertEqual((cm.exception.code, cm.exception.params), ("SR_HAS_PBD", [a]))
            self.assertNotIn("destroy", rpc("SR.get_allowed_operations", a))
            pbds = rpc("SR.get_PBDs", a)
            for pbd in pbds:
                rpc("PBD.unplug", pbd)
            with self.assertRaises(XapiError) as cm:
                rpc("SR.destroy", a)
            self.assertEqual(cm.exception.code, "SR_NOT_EMPTY")
            for pbd in pbds:
                rpc("PBD.plug", pbd)
            rpc("VDI.destroy", vdi)
            for pbd in pbds:
                rpc("PBD.unplug", pbd)
            self.assertIn("destroy", rpc("SR.get_allowed_operations", a))
            rpc("SR.destroy", a)
            self.assertFalse(os.path.exists(d1))
            self.assertNotIn(a, rpc("SR.get_all"))
            # forget: refused while plugged, then the records go and the data stays
            vdi = rpc("VDI.create", {"SR": b, "virtual_size": 1 << 20, "name_label": "y", "type": "user"})
            loc = rpc("VDI.get_location", vdi)
            with self.assertRaises(XapiError) as cm:
                rpc("SR.forget", b)
            self.assertEqual(cm.exception.code, "SR_HAS_PBD")
            for pbd in rpc("SR.get_PBDs", b):
                rpc("PBD.unplug", pbd)
            rpc("SR.forget", b)
            self.assertNotIn(b, rpc("SR.get_all"))
            self.assertNotIn(vdi, rpc("VDI.get_all"))
            self.assertFalse([x for x in rpc("PBD.get_all_records").values() if x["SR"] == b])
            self.assertTrue(os.path.exists(loc), "forget leaves the data")
        finally:
            p.close()
