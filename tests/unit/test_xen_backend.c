/* test_xen_backend.c - choosing the backend (agent/xen_choose.c) and the
 * xen backend's start on a machine without Xen (agent/backend_xen.c): auto
 * picks xen only when the hypervisor device exists and the build has Xen
 * support; xen without Xen fails with ONE line saying what is missing and
 * what to install. The device path is a parameter, so a temp file plays
 * /dev/xen/privcmd. (No hypervisor runs here: nothing past start-up.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "backend.h"
#include "log.h"

static char present[64];
static const char *absent = "/nonexistent/xen/privcmd";

static int setup(void **state)
{
	(void)state;
	snprintf(present, sizeof present, "/tmp/test-xen-privcmd-XXXXXX");
	int fd = mkstemp(present);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(present);
	return 0;
}

static void test_auto(void **state)
{
	(void)state;
	char err[512] = "";
	assert_string_equal(backend_choose("auto", present, true, err, sizeof err), "xen");
	assert_string_equal(backend_choose("auto", absent, true, err, sizeof err), "sim");
	assert_string_equal(backend_choose("auto", present, false, err, sizeof err), "sim");
	assert_string_equal(backend_choose("auto", NULL, true, err, sizeof err), "sim");
	assert_string_equal(err, ""); /* auto never fails */
}

static void test_sim_always(void **state)
{
	(void)state;
	char err[512] = "";
	assert_string_equal(backend_choose("sim", present, true, err, sizeof err), "sim");
	assert_string_equal(backend_choose("sim", absent, false, err, sizeof err), "sim");
	assert_string_equal(backend_choose(NULL, absent, false, err, sizeof err), "sim");
}

static void test_xen_asked(void **state)
{
	(void)state;
	char err[512] = "";
	assert_string_equal(backend_choose("xen", present, true, err, sizeof err), "xen");
	assert_null(backend_choose("xen", absent, true, err, sizeof err));
	assert_string_equal(err, "backend xen: /nonexistent/xen/privcmd not found: this host does not run Xen "
				 "(install xen-hypervisor-4.17-amd64 and boot into Xen), or use backend: sim");
	assert_null(backend_choose("xen", present, false, err, sizeof err));
	assert_string_equal(err, "backend xen: this build has no Xen support (install libxen-dev and rebuild), or "
				 "use backend: sim");
	assert_null(backend_choose("kvm", present, true, err, sizeof err));
	assert_string_equal(err, "backend 'kvm' is not known: use auto, xen or sim");
}

static void test_built(void **state)
{
	(void)state;
#ifdef HAVE_XEN
	assert_true(backend_xen_built());
#else
	assert_false(backend_xen_built());
#endif
}

/* The real constructor on this machine: no privcmd -> the one line. */
static void test_new_without_privcmd(void **state)
{
	(void)state;
	char err[512] = "";
	struct backend *be = backend_xen_new("/tmp", absent, err, sizeof err);
	assert_null(be);
	assert_null(strchr(err, '\n'));
#ifdef HAVE_XEN
	assert_string_equal(err, "backend xen: /nonexistent/xen/privcmd not found: this host does not run Xen "
				 "(install xen-hypervisor-4.17-amd64 and boot into Xen), or use backend: sim");
#else
	assert_non_null(strstr(err, "no Xen support"));
#endif
}

/* privcmd "exists" (a plain file) but no hypervisor answers: libxl fails,
 * and the agent still says one line, naming what to check. */
static void test_new_without_hypervisor(void **state)
{
	(void)state;
#ifdef HAVE_XEN
	if (access("/dev/xen/privcmd", F_OK) == 0)
		skip(); /* a real Xen host: the constructor would succeed */
	char dir[] = "/tmp/test-xen-state-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char err[512] = "";
	struct backend *be = backend_xen_new(dir, present, err, sizeof err);
	assert_null(be);
	assert_null(strchr(err, '\n'));
	assert_true(strncmp(err, "backend xen: ", 13) == 0);
	assert_non_null(strstr(err, "or use backend: sim"));
	rmdir(dir);
#else
	skip();
#endif
}

int main(void)
{
	log_init("test_xen_backend", LOG_LVL_WARN); /* libxl's own messages are debug while probing */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_auto),
		cmocka_unit_test(test_sim_always),
		cmocka_unit_test(test_xen_asked),
		cmocka_unit_test(test_built),
		cmocka_unit_test(test_new_without_privcmd),
		cmocka_unit_test(test_new_without_hypervisor),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
