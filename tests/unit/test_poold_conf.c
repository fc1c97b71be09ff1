/* test_poold_conf.c - poold's key table: defaults load, the sample file
 * documents every key and parses, legacy lines work, bad values refuse. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "conf.h"
#include "poold.h"

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void test_defaults(void **state)
{
	(void)state;
	struct conf *c = conf_new(poold_conf_keys, poold_nconf_keys);
	assert_non_null(c);
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 10);
	assert_int_equal(conf_int(c, "port"), 443);
	assert_int_equal(conf_int(c, "max-request-size"), 8 * 1024 * 1024);
	assert_int_equal(conf_duration_ms(c, "session-timeout"), 24LL * 3600 * 1000);
	assert_string_equal(conf_str(c, "log-level"), "info");
	conf_free(c);
}

static void test_sample_documents_every_key(void **state)
{
	(void)state;
	const char *text = slurp("etc/xapi.conf.sample");
	for (size_t i = 0; i < poold_nconf_keys; i++) {
		char line[128];
		snprintf(line, sizeof line, "\n%s:", poold_conf_keys[i].name);
		if (!strstr(text, line))
			fail_msg("etc/xapi.conf.sample does not document %s", poold_conf_keys[i].name);
	}
	struct conf *c = conf_new(poold_conf_keys, poold_nconf_keys);
	char err[512] = "";
	assert_int_equal(conf_load(c, "etc/xapi.conf.sample", err, sizeof err), 0);
	assert_int_equal(conf_warnings(c), 0);
	/* the sample states the defaults */
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 10);
	conf_free(c);
}

static const char *write_tmp(const char *text)
{
	static char path[64];
	snprintf(path, sizeof path, "/tmp/poold-conf-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_legacy_batch_size(void **state)
{
	(void)state;
	const char *p = write_tmp("# an operator's xapi.conf\nevacuation-batch-size = 4\n");
	struct conf *c = conf_new(poold_conf_keys, poold_nconf_keys);
	char err[512] = "";
	assert_int_equal(conf_load(c, p, err, sizeof err), 0);
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 4);
	conf_free(c);
	unlink(p);
}

static void test_bad_batch_size_refused(void **state)
{
	(void)state;
	const char *p = write_tmp("port: 4443\nevacuation-batch-size: 0\n");
	struct conf *c = conf_new(poold_conf_keys, poold_nconf_keys);
	char err[512] = "";
	assert_int_equal(conf_load(c, p, err, sizeof err), -1);
	assert_non_null(strstr(err, ":2: evacuation-batch-size: '0'"));
	assert_non_null(strstr(err, "from 1 to 1000"));
	/* nothing of a refused file is applied */
	assert_int_equal(conf_int(c, "port"), 443);
	conf_free(c);
	unlink(p);
}

static void test_set_args(void **state)
{
	(void)state;
	struct conf *c = conf_new(poold_conf_keys, poold_nconf_keys);
	char err[512] = "";
	char *good[] = {"port=4443", "log-level=debug"};
	assert_int_equal(conf_set_args(c, good, 2, err, sizeof err), 0);
	assert_int_equal(conf_int(c, "port"), 4443);
	assert_string_equal(conf_str(c, "log-level"), "debug");
	char *nokey[] = {"port"};
	assert_int_equal(conf_set_args(c, nokey, 1, err, sizeof err), -1);
	assert_string_equal(err, "--set port: expected KEY=VALUE");
	char *bad[] = {"port=99999"};
	assert_int_equal(conf_set_args(c, bad, 1, err, sizeof err), -1);
	assert_non_null(strstr(err, "port"));
	assert_int_equal(conf_int(c, "port"), 4443);
	conf_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_sample_documents_every_key),
		cmocka_unit_test(test_legacy_batch_size),
		cmocka_unit_test(test_bad_batch_size_refused),
		cmocka_unit_test(test_set_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
