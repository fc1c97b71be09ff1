/* test_log.c - unit tests for lib/log.c (journald priorities) and
 * lib/sdnotify.c (systemd's readiness datagram). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"
#include "sdnotify.h"

static void test_is_journal(void **state)
{
	(void)state;
	assert_true(log_is_journal("8:12345", 8, 12345));
	assert_false(log_is_journal("8:12345", 8, 12346)); /* stderr was redirected since */
	assert_false(log_is_journal("9:12345", 8, 12345));
	assert_false(log_is_journal(NULL, 8, 12345));
	assert_false(log_is_journal("", 8, 12345));
	assert_false(log_is_journal("8", 8, 12345));
	assert_false(log_is_journal("8:12345x", 8, 12345));
	assert_false(log_is_journal("x:y", 0, 0));
}

static void test_format(void **state)
{
	(void)state;
	char line[256];
	struct timeval tv = {1795409874, 123456}; /* 2026-11-23T04:57:54.123Z */
	const struct {
		enum log_level lvl;
		const char *journal, *plain;
	} cases[] = {
		{LOG_LVL_DEBUG, "<7>DEBUG: ", "2026-11-23T04:57:54.123Z poold[42] DEBUG: "},
		{LOG_LVL_INFO, "<6>INFO: ", "2026-11-23T04:57:54.123Z poold[42] INFO: "},
		{LOG_LVL_WARN, "<4>WARN: ", "2026-11-23T04:57:54.123Z poold[42] WARN: "},
		{LOG_LVL_ERROR, "<3>ERROR: ", "2026-11-23T04:57:54.123Z poold[42] ERROR: "},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int n = log_format(line, sizeof line, true, cases[i].lvl, "poold", 42, &tv);
		assert_int_equal(n, (int)strlen(cases[i].journal));
		assert_string_equal(line, cases[i].journal);
		n = log_format(line, sizeof line, false, cases[i].lvl, "poold", 42, &tv);
		assert_int_equal(n, (int)strlen(cases[i].plain));
		assert_string_equal(line, cases[i].plain);
	}
}

/* A socket standing for systemd's; what sdnotify sends arrives there. */
static void test_sdnotify(void **state)
{
	(void)state;
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(sdnotify("READY=1"), 0); /* not under systemd: nothing to do */
	char path[] = "/tmp/test-sdnotify-XXXXXX";
	int tmp = mkstemp(path);
	close(tmp);
	unlink(path);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(sdnotify("READY=1"), 0);
	char buf[64] = "";
	assert_int_equal(recv(fd, buf, sizeof buf - 1, 0), 7);
	assert_string_equal(buf, "READY=1");
	/* an abstract socket, written with '@' */
	int afd = socket(AF_UNIX, SOCK_DGRAM, 0);
	struct sockaddr_un aa = {.sun_family = AF_UNIX};
	char name[64];
	snprintf(name, sizeof name, "@test-sdnotify-%d", (int)getpid());
	memcpy(aa.sun_path, name, strlen(name));
	aa.sun_path[0] = '\0';
	assert_int_equal(bind(afd, (struct sockaddr *)&aa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name))), 0);
	setenv("NOTIFY_SOCKET", name, 1);
	assert_int_equal(sdnotify("STOPPING=1"), 0);
	memset(buf, 0, sizeof buf);
	assert_int_equal(recv(afd, buf, sizeof buf - 1, 0), 10);
	assert_string_equal(buf, "STOPPING=1");
	/* nobody listening, or no valid name: -1 */
	unlink(path);
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(sdnotify("READY=1"), -1);
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(sdnotify("READY=1"), -1);
	unsetenv("NOTIFY_SOCKET");
	close(fd);
	close(afd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_is_journal),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_sdnotify),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
