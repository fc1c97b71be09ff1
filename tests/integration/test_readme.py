"""
test_readme.py - the README's examples work as written: its VMs section's
vm-install and vm-param-set lines run as a newcomer would paste them (the
memory example once failed with MEMORY_CONSTRAINT_VIOLATION: fields apply
in the order given).
"""
import os
import re
import subprocess
import unittest

from tests.integration.harness import BIN, PASSWORD, ROOT, PoolTest


def readme_block(heading):
    """The first indented code block after a README heading, as lines."""
    text = open(os.path.join(ROOT, "README.md")).read()
    after = text.split("\n" + heading + "\n", 1)[1]
    m = re.search(r"\n((?:    .*\n)+)", after)
    return [line[4:] for line in m.group(1).splitlines()]


class ReadmeTest(PoolTest):
    def test_vm_section_install_and_memory_example(self):
        lines = [x for x in readme_block("### VMs") if "vm-install" in x or "vm-param-set" in x]
        self.assertEqual(len(lines), 2, lines)
        env = dict(os.environ, PATH=BIN + ":" + os.environ["PATH"], XE_SERVER="127.0.0.1",
                   XE_PORT=str(self.pool.port), XE_USERNAME="root", XE_PASSWORD=PASSWORD,
                   XE_CACERT=os.path.join(self.pool.dir, "ca.pem"), HOME=self.pool.dir)
        script = "set -e\n" + "\n".join(lines) + "\necho $u\n"
        r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        uuid = r.stdout.split()[-1]
        vm = self.pool.rpc("VM.get_by_uuid", uuid)
        rec = self.pool.rpc("VM.get_record", vm)
        self.assertEqual(rec["name_label"], "web1")
        for f in ("memory_static_max", "memory_dynamic_max", "memory_dynamic_min"):
            self.assertEqual(rec[f], 512 << 20, f)


if __name__ == "__main__":
    unittest.main()
