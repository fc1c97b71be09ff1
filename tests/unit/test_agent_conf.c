/* test_agent_conf.c - the agent's key table: the sample documents every
 * key and loads cleanly; a bad value is refused with its line. */
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "agent.h"

static void test_sample_documents_every_key(void **state)
{
	(void)state;
	static char text[65536];
	FILE *f = fopen("etc/pool-agent.conf.sample", "r");
	assert_non_null(f);
	size_t n = fread(text, 1, sizeof text - 1, f);
	text[n] = '\0';
	fclose(f);
	for (size_t i = 0; i < agent_nconf_keys; i++) {
		char line[128];
		snprintf(line, sizeof line, "\n%s:", agent_conf_keys[i].name);
		if (!strstr(text, line))
			fail_msg("etc/pool-agent.conf.sample does not document %s", agent_conf_keys[i].name);
	}
	struct conf *c = conf_new(agent_conf_keys, agent_nconf_keys);
	char err[512] = "";
	assert_int_equal(conf_load(c, "etc/pool-agent.conf.sample", err, sizeof err), 0);
	assert_int_equal(conf_warnings(c), 0);
	assert_string_equal(conf_str(c, "backend"), "auto");
	assert_int_equal(conf_duration_ms(c, "heartbeat-interval"), 2000);
	conf_free(c);
}

static void test_bad_vendor_refused(void **state)
{
	(void)state;
	char path[] = "/tmp/agent-conf-XXXXXX";
	int fd = mkstemp(path);
	const char *text = "master: 127.0.0.1:443\nsim-cpu-vendor: Cyrix\n";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct conf *c = conf_new(agent_conf_keys, agent_nconf_keys);
	char err[512] = "";
	assert_int_equal(conf_load(c, path, err, sizeof err), -1);
	assert_non_null(strstr(err, ":2: sim-cpu-vendor: 'Cyrix'"));
	assert_non_null(strstr(err, "GenuineIntel"));
	conf_free(c);
	unlink(path);
}

/* Where poold reaches the agent (the README's trap: listen-address set,
 * address empty, and the agent joined from another local address). */
static void test_address_choice(void **state)
{
	(void)state;
	const struct {
		const char *address, *listen, *local, *want;
		bool odd;
	} cases[] = {
		/* listening on one address: that is where poold finds us */
		{"", "127.0.0.10", "127.0.0.1", "127.0.0.10", false},
		{"", "192.0.2.7", "", "192.0.2.7", false},
		{"", "2001:db8::7", "2001:db8::1", "2001:db8::7", false},
		/* listening everywhere: the address that routes to the master */
		{"", "0.0.0.0", "192.0.2.1", "192.0.2.1", false},
		{"", "::", "2001:db8::1", "2001:db8::1", false},
		{"", "", "192.0.2.1", "192.0.2.1", false},
		/* nothing at all: "" (the agent refuses to start) */
		{"", "0.0.0.0", "", "", false},
		/* the operator's address wins; another IP than the listened one is odd */
		{"192.0.2.9", "0.0.0.0", "192.0.2.1", "192.0.2.9", false},
		{"192.0.2.9", "192.0.2.9", "192.0.2.1", "192.0.2.9", false},
		{"198.51.100.9", "192.0.2.9", "192.0.2.1", "198.51.100.9", true},
		{"host9.example", "192.0.2.9", "", "host9.example", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		bool odd = !cases[i].odd;
		const char *got = agent_address_choose(cases[i].address, cases[i].listen, cases[i].local, &odd);
		if (strcmp(got, cases[i].want) || odd != cases[i].odd)
			fail_msg("address '%s' listen '%s' local '%s': got '%s' (odd %d), want '%s' (odd %d)",
				 cases[i].address, cases[i].listen, cases[i].local, got, odd, cases[i].want, cases[i].odd);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sample_documents_every_key),
		cmocka_unit_test(test_bad_vendor_refused),
		cmocka_unit_test(test_address_choice),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
