"""scripts/check-cycles on tiny synthetic trees compiled with cc: the cycles
it must find, the ones it must not invent, and the allowlist's two rules."""
import os
import subprocess
import tempfile
import time
import unittest
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "check-cycles")
_spec = spec_from_loader("check_cycles", SourceFileLoader("check_cycles", SCRIPT))
cycles = module_from_spec(_spec)
_spec.loader.exec_module(cycles)

# d/a.c and d/b.c call each other; d/c.c calls a.c only; statics of the same
# name in a.c and c.c; comments and strings that mention other files' symbols
# and headers; p.h <-> q.h include each other (after a string holding "/*"),
# x.h's include of y.h is commented out.
TREE = {
    "d/a.c": '#include "p.h"\nstatic int helper(void) { return 1; }\n'
             'int b_fn(void);\nint a_fn(void) { return b_fn() + helper(); }\n',
    "d/b.c": 'int a_fn(void);\nint b_fn(void) { return 0; }\nint b_other(void) { return a_fn(); }\n',
    "d/c.c": '#include "x.h"\nstatic int helper(void) { return 2; }\n'
             'int a_fn(void);\nconst char *s = "/* #include \\"y.h\\"";\n'
             '/* c_fn(): not b_fn() */\nint c_fn(void) { return a_fn() + helper(); }\n',
    "d/p.h": '#ifndef P_H\n#define P_H\nstatic const char *p_s = "/*";\n#include "q.h"\n#endif\n',
    "d/q.h": '#ifndef Q_H\n#define Q_H\n#include "p.h"\n#endif\n',
    "d/x.h": '/* no longer:\n#include "y.h"\n */\n',
    "d/y.h": '#include "x.h"\n',
}

# x.c -> l.c -> (cb, only in program p2) y.c -> m.c -> (cb2, only in p1) x.c:
# a cycle only if the two programs' symbols were mixed up.
TWO_PROGRAMS = {
    "lib/l.c": 'void cb(void);\nvoid l_fn(void) { cb(); }\n',
    "lib/m.c": 'void cb2(void);\nvoid m_fn(void) { cb2(); }\n',
    "p1/x.c": 'void l_fn(void);\nvoid cb2(void) { l_fn(); }\n',
    "p2/y.c": 'void m_fn(void);\nvoid cb(void) { m_fn(); }\n',
}


def make_tree(top, files):
    for path, text in files.items():
        os.makedirs(os.path.join(top, os.path.dirname(path)), exist_ok=True)
        with open(os.path.join(top, path), "w") as f:
            f.write(text)
    for path in files:
        if path.endswith(".c"):
            obj = os.path.join(top, "build", path[:-2] + ".o")
            os.makedirs(os.path.dirname(obj), exist_ok=True)
            subprocess.run(["cc", "-c", "-o", obj, os.path.join(top, path)], check=True)


class CheckCycles(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.top = self.tmp.name
        self.allow = os.path.join(self.top, "allow")

    def tearDown(self):
        self.tmp.cleanup()

    def run_script(self, groups, allow_lines=(), build="build"):
        with open(self.allow, "w") as f:
            f.write("# comment\n" + "".join(line + "\n" for line in allow_lines))
        args = [SCRIPT, "--root", self.top, "--build", os.path.join(self.top, build), "--allow", self.allow]
        for g in groups:
            args += ["--group", g]
        p = subprocess.run(args, capture_output=True, text=True)
        return p.returncode, p.stdout

    def test_finds_call_and_include_cycles_and_nothing_else(self):
        make_tree(self.top, TREE)
        found, unbuilt, problems = cycles.find_cycles(self.top, os.path.join(self.top, "build"), ["d=d"])
        self.assertEqual((unbuilt, problems), ([], []))
        self.assertEqual(sorted(found), [("d/a.c", "d/b.c"), ("d/p.h", "d/q.h")])
        self.assertEqual(found[("d/a.c", "d/b.c")], ("call", "d/a.c -> d/b.c (b_fn) -> d/a.c (a_fn)"))
        self.assertEqual(found[("d/p.h", "d/q.h")][0], "include")

    def test_new_cycle_fails_and_names_it(self):
        make_tree(self.top, TREE)
        rc, out = self.run_script(["d=d"], ["d/p.h d/q.h"])
        self.assertEqual(rc, 1)
        self.assertIn("call cycle, 2 files (NEW", out)
        self.assertIn("e.g. d/a.c -> d/b.c (b_fn) -> d/a.c (a_fn)", out)

    def test_allowlisted_cycles_pass_in_any_order(self):
        make_tree(self.top, TREE)
        rc, out = self.run_script(["d=d"], ["d/q.h   d/p.h", "d/a.c d/b.c  # today's"])
        self.assertEqual(rc, 0, out)
        self.assertIn("2 cycles, 0 new, 0 allowlisted that no longer exist", out)

    def test_allowlisted_cycle_that_is_gone_fails(self):
        make_tree(self.top, TREE)
        rc, out = self.run_script(["d=d"], ["d/a.c d/b.c", "d/p.h d/q.h", "d/b.c d/c.c"])
        self.assertEqual(rc, 1)
        self.assertIn("gone, remove from the allowlist: d/b.c d/c.c", out)

    def test_a_grown_cycle_is_new_and_the_old_line_gone(self):
        tree = dict(TREE)
        tree["d/c.c"] = "int a_fn(void);\nint b_other(void);\nint c_fn(void) { return a_fn(); }\n"
        tree["d/b.c"] = "int c_fn(void);\nint b_fn(void) { return c_fn(); }\n"
        make_tree(self.top, tree)
        rc, out = self.run_script(["d=d"], ["d/a.c d/b.c", "d/p.h d/q.h"])
        self.assertEqual(rc, 1)
        self.assertIn("(NEW, not in allow): d/a.c d/b.c d/c.c", out)
        self.assertIn("gone, remove from the allowlist: d/a.c d/b.c", out)

    def test_no_false_cycle_across_programs(self):
        make_tree(self.top, TWO_PROGRAMS)
        rc, out = self.run_script(["p1=p1,lib", "p2=p2,lib"])
        self.assertEqual(rc, 0, out)
        self.assertIn("0 cycles", out)
        # the same files as one program do form the cycle
        rc, out = self.run_script(["all=p1,p2,lib"])
        self.assertEqual(rc, 1)
        self.assertIn("call cycle, 4 files", out)

    def test_a_source_not_built_has_no_call_edges(self):
        make_tree(self.top, TREE)
        os.unlink(os.path.join(self.top, "build", "d", "b.o"))
        rc, out = self.run_script(["d=d"], ["d/p.h d/q.h"])
        self.assertEqual(rc, 0, out)
        self.assertIn("not built, so no call edges: d/b.c", out)

    def test_no_or_stale_objects_stop_the_check(self):
        make_tree(self.top, TREE)
        rc, out = self.run_script(["d=d"], build="nothing")
        self.assertEqual(rc, 2)
        self.assertIn("no objects in ", out)
        later = time.time() + 10
        os.utime(os.path.join(self.top, "d", "b.c"), (later, later))
        rc, out = self.run_script(["d=d"])
        self.assertEqual(rc, 2)
        self.assertIn("older than its source: ", out)

    def test_strip_comments_keeps_strings_and_lines(self):
        text = 'a /* x\ny */ b // z\n"/* not a comment */" \'"\' c "\\"//"\n'
        self.assertEqual(cycles.strip_comments(text), 'a \n b \n"/* not a comment */" \'"\' c "\\"//"\n')


if __name__ == "__main__":
    unittest.main()
