"""
test_domain_exit.py - a domain that ends by itself is reported as it
happens, not at the next heartbeat: the agent watches each domain's process
(pidfd) and reports at once. The heartbeat interval here is 5 s; the VM
must be recorded halted well before that.
"""
import os
import signal
import time
import unittest

from tests.integration.harness import SLOW
from tests.integration.pooltest import DevPool, wait_until


class DomainExitTest(unittest.TestCase):
    def test_reported_as_it_happens(self):
        p = DevPool(1, host_memory_mib=1024, heartbeat=5, extra=("--no-sr",))
        try:
            rpc = p.rpc
            vm = rpc("VM.create", {"name_label": "x", "memory_static_max": 64 << 20, "memory_dynamic_max": 64 << 20,
                                   "memory_dynamic_min": 64 << 20, "memory_static_min": 16 << 20})
            rpc("VM.start", vm, False, False)
            domid = rpc("VM.get_domid", vm)
            pid = p.domain_pid(1, domid)
            time.sleep(0.5)
            t0 = time.time()
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: rpc("VM.get_power_state", vm) == "Halted", 4 * SLOW, "VM recorded halted")
            self.assertLess(time.time() - t0, 4 * SLOW)
            self.assertEqual(rpc("VM.get_resident_on", vm), "OpaqueRef:NULL")
            # and it starts again on the same host
            rpc("VM.start", vm, False, False)
            self.assertEqual(rpc("VM.get_power_state", vm), "Running")
            rpc("VM.hard_shutdown", vm)
        finally:
            p.close()


if __name__ == "__main__":
    unittest.main()
