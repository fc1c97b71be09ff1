/*
 * test_conf.c - unit tests for lib/conf.c: both file forms (YAML and XAPI
 * legacy "key = value"), sections, every value type with its bounds and
 * suffixes, every error message (file:line, key, value, expected form),
 * warnings for unknown and repeated keys, conf_set, defaults, getters.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "conf.h"
#include "log.h"

#define KiB 1024LL
#define MiB (1024LL * KiB)
#define GiB (1024LL * MiB)
#define TiB (1024LL * GiB)

static const struct conf_key test_keys[] = {
	{"evacuation-batch-size", CONF_INT, "4", 1, 1000, NULL, "VMs moved at once"},
	{"offset", CONF_INT, "-3", 0, 0, NULL, "unbounded integer"},
	{"ha.enabled", CONF_BOOL, "false", 0, 0, NULL, "HA on"},
	{"ha.timeout", CONF_DURATION, "30s", 1000, 86400000, NULL, "HA timeout"},
	{"retry-delay", CONF_DURATION, "250ms", 0, 0, NULL, "unbounded duration"},
	{"db.cache-size", CONF_SIZE, "64MiB", KiB, GiB, NULL, "db cache"},
	{"max-upload", CONF_SIZE, "0", 0, 0, NULL, "unbounded size"},
	{"log-level", CONF_ENUM, "info", 0, 0, "debug|info|warn|error", "log level"},
	{"pool-name", CONF_STRING, "pool", 0, 0, NULL, "pool name"},
	{"motd", CONF_STRING, "", 0, 0, NULL, "may be empty"},
};
#define NKEYS (sizeof test_keys / sizeof test_keys[0])

/* ---- helpers ---- */

/* What one conf_load() of some text gave. */
struct result {
	int rc;
	char path[64];
	char err[1024];
	char log[8192]; /* what was written on stderr (the logger's warnings) */
};

struct capture {
	int saved, fd;
	char path[64];
};

static void capture_start(struct capture *cap)
{
	strcpy(cap->path, "/tmp/test_conf_err.XXXXXX");
	cap->fd = mkstemp(cap->path);
	assert_true(cap->fd >= 0);
	fflush(stderr);
	cap->saved = dup(STDERR_FILENO);
	assert_true(cap->saved >= 0);
	assert_true(dup2(cap->fd, STDERR_FILENO) >= 0);
}

static void capture_stop(struct capture *cap, char *out, size_t outlen)
{
	fflush(stderr);
	assert_true(dup2(cap->saved, STDERR_FILENO) >= 0);
	close(cap->saved);
	ssize_t n = pread(cap->fd, out, outlen - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(cap->fd);
	unlink(cap->path);
}

static void write_tmp_n(char *path, const char *text, size_t len)
{
	strcpy(path, "/tmp/test_conf.XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static struct result load_n(struct conf *c, const char *text, size_t len)
{
	struct result r;
	struct capture cap;
	write_tmp_n(r.path, text, len);
	strcpy(r.err, "untouched");
	capture_start(&cap);
	r.rc = conf_load(c, r.path, r.err, sizeof r.err);
	capture_stop(&cap, r.log, sizeof r.log);
	unlink(r.path);
	return r;
}

static struct result load(struct conf *c, const char *text)
{
	return load_n(c, text, strlen(text));
}

static struct conf *new_conf(void)
{
	struct conf *c = conf_new(test_keys, NKEYS);
	assert_non_null(c);
	return c;
}

/* r failed with exactly "PATH" followed by SUFFIX. */
static void assert_err(const struct result *r, const char *suffix)
{
	char want[1200];
	snprintf(want, sizeof want, "%s%s", r->path, suffix);
	assert_int_equal(r->rc, -1);
	assert_string_equal(r->err, want);
}

static void assert_ok(const struct result *r)
{
	if (r->rc != 0)
		print_error("unexpected error: %s\n", r->err);
	assert_int_equal(r->rc, 0);
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 4);
	assert_int_equal(conf_int(c, "offset"), -3);
	assert_false(conf_bool(c, "ha.enabled"));
	assert_int_equal(conf_duration_ms(c, "ha.timeout"), 30000);
	assert_int_equal(conf_duration_ms(c, "retry-delay"), 250);
	assert_int_equal(conf_int(c, "db.cache-size"), 64 * MiB);
	assert_int_equal(conf_int(c, "max-upload"), 0);
	assert_string_equal(conf_str(c, "log-level"), "info");
	assert_string_equal(conf_str(c, "pool-name"), "pool");
	assert_string_equal(conf_str(c, "motd"), "");
	assert_int_equal(conf_warnings(c), 0);
	conf_free(c);
}

static void test_defaults_kept_for_absent_keys(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "evacuation-batch-size: 9\n");
	assert_ok(&r);
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 9);
	assert_int_equal(conf_duration_ms(c, "ha.timeout"), 30000);
	assert_string_equal(conf_str(c, "log-level"), "info");
	assert_int_equal(conf_int(c, "db.cache-size"), 64 * MiB);
	conf_free(c);
}

static void test_empty_and_comment_only_files(void **state)
{
	(void)state;
	const char *texts[] = {"", "\n\n", "# only a comment\n   # another\n", "---\n", "---\n...\n"};
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		struct conf *c = new_conf();
		struct result r = load(c, texts[i]);
		assert_ok(&r);
		assert_int_equal(conf_int(c, "evacuation-batch-size"), 4);
		assert_int_equal(conf_warnings(c), 0);
		conf_free(c);
	}
}

/* ---- YAML form ---- */

static void test_yaml_all_types(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "# xapi.conf\n"
				  "evacuation-batch-size: 8\n"
				  "offset: -42\n"
				  "retry-delay: 2m\n"
				  "db.cache-size: 128MiB\n"
				  "max-upload: 2TiB\n"
				  "log-level: debug\n"
				  "pool-name: my pool\n"
				  "motd: hello world\n");
	assert_ok(&r);
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 8);
	assert_int_equal(conf_int(c, "offset"), -42);
	assert_int_equal(conf_duration_ms(c, "retry-delay"), 120000);
	assert_int_equal(conf_int(c, "db.cache-size"), 128 * MiB);
	assert_int_equal(conf_int(c, "max-upload"), 2 * TiB);
	assert_string_equal(conf_str(c, "log-level"), "debug");
	assert_string_equal(conf_str(c, "pool-name"), "my pool");
	assert_string_equal(conf_str(c, "motd"), "hello world");
	assert_int_equal(conf_warnings(c), 0);
	assert_string_equal(r.err, "");
	conf_free(c);
}

static void test_yaml_sections(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "ha:\n"
				  "  enabled: true\n"
				  "  timeout: 45s   # comment after a value\n"
				  "db:\n"
				  "  cache-size: 1GiB\n"
				  "evacuation-batch-size: 2\n");
	assert_ok(&r);
	assert_true(conf_bool(c, "ha.enabled"));
	assert_int_equal(conf_duration_ms(c, "ha.timeout"), 45000);
	assert_int_equal(conf_int(c, "db.cache-size"), GiB);
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 2);
	assert_int_equal(conf_warnings(c), 0);
	conf_free(c);
}

static void test_yaml_flow_section_and_dotted_key(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "ha: {enabled: yes, timeout: 1m}\nha.timeout: 2m\n");
	assert_ok(&r);
	assert_true(conf_bool(c, "ha.enabled"));
	assert_int_equal(conf_duration_ms(c, "ha.timeout"), 120000);
	assert_int_equal(conf_warnings(c), 1); /* ha.timeout set twice */
	conf_free(c);
}

static void test_yaml_nested_sections_unknown(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "a:\n  b:\n    c: 1\n  d: 2\n");
	assert_ok(&r);
	assert_int_equal(conf_warnings(c), 2);
	char want[256];
	snprintf(want, sizeof want, "%s:3: unknown key 'a.b.c' ignored", r.path);
	assert_non_null(strstr(r.log, want));
	snprintf(want, sizeof want, "%s:4: unknown key 'a.d' ignored", r.path);
	assert_non_null(strstr(r.log, want));
	conf_free(c);
}

static void test_yaml_too_deep(void **state)
{
	(void)state;
	char text[2048] = "";
	size_t n = 0;
	for (int i = 0; i < 20; i++)
		n += (size_t)snprintf(text + n, sizeof text - n, "%*sk%d:\n", 2 * i, "", i);
	snprintf(text + n, sizeof text - n, "%*sx: 1\n", 40, "");
	struct conf *c = new_conf();
	struct result r = load(c, text);
	assert_int_equal(r.rc, -1);
	assert_non_null(strstr(r.err, "nested too deeply"));
	conf_free(c);
}

static void test_yaml_comments_and_quotes(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "# header\n"
				  "\n"
				  "pool-name: \"quoted # not a comment\"   # a comment\n"
				  "motd: 'single: quoted'\n"
				  "evacuation-batch-size: \"12\"\n"
				  "ha:\n"
				  "  # comment inside a section\n"
				  "  timeout: '90s'\n");
	assert_ok(&r);
	assert_string_equal(conf_str(c, "pool-name"), "quoted # not a comment");
	assert_string_equal(conf_str(c, "motd"), "single: quoted");
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 12);
	assert_int_equal(conf_duration_ms(c, "ha.timeout"), 90000);
	conf_free(c);
}

static void test_yaml_document_markers_and_crlf(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "---\r\nevacuation-batch-size: 7\r\nha:\r\n  timeout: 2h\r\n...\r\n");
	assert_ok(&r);
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 7);
	assert_int_equal(conf_duration_ms(c, "ha.timeout"), 2 * 3600000);
	conf_free(c);
}

static void test_yaml_anchor_on_scalar_is_fine(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "evacuation-batch-size: &n 5\n");
	assert_ok(&r);
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 5);
	conf_free(c);
}

static void test_yaml_sequence_is_error(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "pool-name: x\nevacuation-batch-size:\n  - 1\n  - 2\n");
	assert_err(&r, ":2: evacuation-batch-size: expected a single value");
	r = load(c, "ha:\n  timeout: [1s, 2s]\n");
	assert_err(&r, ":2: ha.timeout: expected a single value");
	assert_string_equal(conf_str(c, "pool-name"), "pool"); /* nothing committed */
	conf_free(c);
}

static void test_yaml_alias_is_error(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "offset: &x 3\nevacuation-batch-size: *x\n");
	assert_err(&r, ":2: evacuation-batch-size: expected a single value");
	conf_free(c);
}

static void test_yaml_syntax_error(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "evacuation-batch-size: 4\nha:\n  timeout: 1s\n bad: [\n");
	assert_int_equal(r.rc, -1);
	char want[128];
	snprintf(want, sizeof want, "%s:", r.path);
	assert_ptr_equal(strstr(r.err, want), r.err);
	assert_non_null(strstr(r.err, ": YAML syntax error: "));
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 4);

	r = load(c, "a: 1\nb: 2\nc: \"unterminated\n");
	assert_int_equal(r.rc, -1);
	assert_non_null(strstr(r.err, ": YAML syntax error: "));
	snprintf(want, sizeof want, "%s:4: YAML syntax error: found unexpected end of stream",
		 r.path);
	assert_string_equal(r.err, want);

	r = load(c, "a: 1\n\tb: 2\n");
	assert_int_equal(r.rc, -1);
	snprintf(want, sizeof want, "%s:2: YAML syntax error: ", r.path);
	assert_ptr_equal(strstr(r.err, want), r.err);
	conf_free(c);
}

static void test_yaml_top_level_not_mapping(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "# comment\njust a scalar\n");
	assert_err(&r, ":2: expected 'key: value' lines");
	r = load(c, "- a\n- b\n");
	assert_err(&r, ":1: expected 'key: value' lines");
	r = load(c, "? [a, b]\n: 1\n");
	assert_err(&r, ":1: expected a plain key");
	conf_free(c);
}

static void test_yaml_null_value(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "evacuation-batch-size:\n");
	assert_err(&r, ":1: evacuation-batch-size: '' is not valid: "
		       "expected an integer from 1 to 1000");
	r = load(c, "motd:\n");
	assert_ok(&r);
	assert_string_equal(conf_str(c, "motd"), "");
	r = load(c, "pool-name: ''\n");
	assert_err(&r, ":1: pool-name: '' is not valid: expected a non-empty string");
	conf_free(c);
}

/* ---- legacy form ---- */

static void test_legacy_basic(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "evacuation-batch-size = 4\n"
				  "offset=-1\n"
				  "ha.enabled = on\n"
				  "ha.timeout\t=\t5m\n"
				  "db.cache-size = 512KiB\n"
				  "log-level = warn\n"
				  "pool-name = my pool  \n");
	assert_ok(&r);
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 4);
	assert_int_equal(conf_int(c, "offset"), -1);
	assert_true(conf_bool(c, "ha.enabled"));
	assert_int_equal(conf_duration_ms(c, "ha.timeout"), 300000);
	assert_int_equal(conf_int(c, "db.cache-size"), 512 * KiB);
	assert_string_equal(conf_str(c, "log-level"), "warn");
	assert_string_equal(conf_str(c, "pool-name"), "my pool");
	assert_int_equal(conf_warnings(c), 0);
	conf_free(c);
}

static void test_legacy_comments_and_quotes(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "# XAPI configuration\n"
				  "   # indented comment\n"
				  "\n"
				  "evacuation-batch-size = 16 # trailing comment\n"
				  "pool-name = \"a # inside quotes\"  # after\n"
				  "motd = 'it said \"hi\"'\n"
				  "log-level = \"error\"\n"
				  "ha.timeout = \"1d\"\r\n");
	assert_ok(&r);
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 16);
	assert_string_equal(conf_str(c, "pool-name"), "a # inside quotes");
	assert_string_equal(conf_str(c, "motd"), "it said \"hi\"");
	assert_string_equal(conf_str(c, "log-level"), "error");
	assert_int_equal(conf_duration_ms(c, "ha.timeout"), 86400000);
	conf_free(c);
}

static void test_legacy_escapes_and_empty(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "motd = \"a \\\"b\\\" \\\\ c\"\npool-name = x\n");
	assert_ok(&r);
	assert_string_equal(conf_str(c, "motd"), "a \"b\" \\ c");
	r = load(c, "motd =\n");
	assert_ok(&r);
	assert_string_equal(conf_str(c, "motd"), "");
	r = load(c, "motd = x\npool-name = \"\"\n");
	assert_err(&r, ":2: pool-name: '' is not valid: expected a non-empty string");
	r = load(c, "pool-name =   # only a comment\n");
	assert_err(&r, ":1: pool-name: '' is not valid: expected a non-empty string");
	conf_free(c);
}

static void test_legacy_bad_lines(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "evacuation-batch-size = 4\nthis is not a setting\n");
	assert_err(&r, ":2: expected 'key = value'");
	r = load(c, "evacuation-batch-size = 4\n= 5\n");
	assert_err(&r, ":2: expected 'key = value'");
	r = load(c, "evacuation-batch-size = 4\npool-name = \"open\n");
	assert_err(&r, ":2: pool-name: unterminated quoted value");
	r = load(c, "pool-name = \"a\" b\n");
	assert_err(&r, ":1: pool-name: unexpected text after the quoted value");
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 4);
	conf_free(c);
}

static void test_form_detection(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	/* comments first, then "key = value": legacy */
	struct result r = load(c, "# a: 1\n\n   \nevacuation-batch-size = 3\n");
	assert_ok(&r);
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 3);
	/* a YAML value holding '=' stays YAML */
	r = load(c, "pool-name: a=b\n");
	assert_ok(&r);
	assert_string_equal(conf_str(c, "pool-name"), "a=b");
	/* a byte order mark does not hide the legacy form */
	r = load(c, "\xEF\xBB\xBFpool-name = bom\n");
	assert_ok(&r);
	assert_string_equal(conf_str(c, "pool-name"), "bom");
	/* legacy keys may carry a section prefix */
	r = load(c, "ha.timeout = 10s\n");
	assert_ok(&r);
	assert_int_equal(conf_duration_ms(c, "ha.timeout"), 10000);
	conf_free(c);
}

/* ---- warnings ---- */

static void test_unknown_key_warns_yaml(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "evacuation-batch-size: 5\nno-such-key: 1\nha:\n  bogus: x\n");
	assert_ok(&r);
	assert_int_equal(conf_warnings(c), 2);
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 5);
	char want[256];
	snprintf(want, sizeof want, "WARN: %s:2: unknown key 'no-such-key' ignored", r.path);
	assert_non_null(strstr(r.log, want));
	snprintf(want, sizeof want, "WARN: %s:4: unknown key 'ha.bogus' ignored", r.path);
	assert_non_null(strstr(r.log, want));
	conf_free(c);
}

static void test_unknown_key_warns_legacy(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "# x\nevacuation-batch-size = 5\nmystery = 1\n");
	assert_ok(&r);
	assert_int_equal(conf_warnings(c), 1);
	char want[256];
	snprintf(want, sizeof want, "%s:3: unknown key 'mystery' ignored", r.path);
	assert_non_null(strstr(r.log, want));
	/* the count accumulates across loads */
	r = load(c, "other = 2\n");
	assert_ok(&r);
	assert_int_equal(conf_warnings(c), 2);
	conf_free(c);
}

static void test_duplicate_key_later_wins(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "pool-name: first\nevacuation-batch-size: 2\npool-name: second\n");
	assert_ok(&r);
	assert_string_equal(conf_str(c, "pool-name"), "second");
	assert_int_equal(conf_warnings(c), 1);
	char want[256];
	snprintf(want, sizeof want, "%s:3: key 'pool-name' repeated (first set at line 1)", r.path);
	assert_non_null(strstr(r.log, want));

	r = load(c, "evacuation-batch-size = 2\nevacuation-batch-size = 3\n");
	assert_ok(&r);
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 3);
	assert_int_equal(conf_warnings(c), 2);
	/* repeating across files is not a warning: later files override */
	r = load(c, "evacuation-batch-size = 9\n");
	assert_ok(&r);
	assert_int_equal(conf_warnings(c), 2);
	conf_free(c);
}

/* ---- bad values: one table, three ways in (YAML, legacy, conf_set) ---- */

struct bad_case {
	const char *key, *value, *form;
};

#define FORM_BATCH "an integer from 1 to 1000"
#define FORM_TIMEOUT "a duration such as 30s or 5m (from 1s to 1d)"
#define FORM_CACHE "a size such as 64MiB (from 1KiB to 1GiB)"

static const struct bad_case bad_cases[] = {
	{"evacuation-batch-size", "abc", FORM_BATCH},
	{"evacuation-batch-size", "0", FORM_BATCH},
	{"evacuation-batch-size", "1001", FORM_BATCH},
	{"evacuation-batch-size", "-1", FORM_BATCH},
	{"evacuation-batch-size", "12abc", FORM_BATCH},
	{"evacuation-batch-size", "1.5", FORM_BATCH},
	{"evacuation-batch-size", "", FORM_BATCH},
	{"evacuation-batch-size", "0x10", FORM_BATCH},
	{"evacuation-batch-size", "1 2", FORM_BATCH},
	{"offset", "99999999999999999999", "an integer"},
	{"offset", "-99999999999999999999", "an integer"},
	{"offset", "+", "an integer"},
	{"offset", "-", "an integer"},
	{"ha.enabled", "maybe", "true or false"},
	{"ha.enabled", "", "true or false"},
	{"ha.enabled", "2", "true or false"},
	{"ha.enabled", "truee", "true or false"},
	{"ha.timeout", "999ms", FORM_TIMEOUT},
	{"ha.timeout", "0", FORM_TIMEOUT},
	{"ha.timeout", "1441m", FORM_TIMEOUT},
	{"ha.timeout", "86401", FORM_TIMEOUT},
	{"ha.timeout", "-1s", FORM_TIMEOUT},
	{"ha.timeout", "5x", FORM_TIMEOUT},
	{"ha.timeout", "s", FORM_TIMEOUT},
	{"ha.timeout", "1.s", FORM_TIMEOUT},
	{"ha.timeout", ".5s", FORM_TIMEOUT},
	{"ha.timeout", "1s2", FORM_TIMEOUT},
	{"ha.timeout", "", FORM_TIMEOUT},
	{"retry-delay", "106751991168d", "a duration such as 30s or 5m"},
	{"retry-delay", "99999999999999999999ms", "a duration such as 30s or 5m"},
	{"retry-delay", "9223372036854775808ms", "a duration such as 30s or 5m"},
	{"db.cache-size", "1023", FORM_CACHE},
	{"db.cache-size", "1073741825", FORM_CACHE},
	{"db.cache-size", "2GiB", FORM_CACHE},
	{"db.cache-size", "-1KiB", FORM_CACHE},
	{"db.cache-size", "1.5MiB", FORM_CACHE},
	{"db.cache-size", "10XB", FORM_CACHE},
	{"db.cache-size", "MiB", FORM_CACHE},
	{"db.cache-size", "64MiBs", FORM_CACHE},
	{"db.cache-size", "", FORM_CACHE},
	{"max-upload", "8388608TiB", "a size such as 64MiB"},
	{"max-upload", "9999999999999999999", "a size such as 64MiB"},
	{"max-upload", "9007199254740992K", "a size such as 64MiB"},
	{"log-level", "verbose", "one of debug, info, warn, error"},
	{"log-level", "INFO", "one of debug, info, warn, error"},
	{"log-level", "", "one of debug, info, warn, error"},
	{"log-level", "debug|info", "one of debug, info, warn, error"},
	{"pool-name", "", "a non-empty string"},
};

static void test_bad_values_yaml(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		const struct bad_case *b = &bad_cases[i];
		char text[256], suffix[512];
		snprintf(text, sizeof text, "# bad value\nmotd: fine\n%s: '%s'\n", b->key, b->value);
		snprintf(suffix, sizeof suffix, ":3: %s: '%s' is not valid: expected %s", b->key,
			 b->value, b->form);
		struct result r = load(c, text);
		assert_err(&r, suffix);
		assert_string_equal(conf_str(c, "motd"), ""); /* nothing committed */
	}
	conf_free(c);
}

static void test_bad_values_yaml_section(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "ha:\n  enabled: true\n  timeout: forever\n");
	assert_err(&r, ":3: ha.timeout: 'forever' is not valid: expected " FORM_TIMEOUT);
	assert_false(conf_bool(c, "ha.enabled"));
	conf_free(c);
}

static void test_bad_values_legacy(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		const struct bad_case *b = &bad_cases[i];
		char text[256], suffix[512];
		snprintf(text, sizeof text, "motd = fine\n\n%s = \"%s\"\n", b->key, b->value);
		snprintf(suffix, sizeof suffix, ":3: %s: '%s' is not valid: expected %s", b->key,
			 b->value, b->form);
		struct result r = load(c, text);
		assert_err(&r, suffix);
		assert_string_equal(conf_str(c, "motd"), "");
	}
	conf_free(c);
}

static void test_bad_values_conf_set(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		const struct bad_case *b = &bad_cases[i];
		char err[512], want[512];
		snprintf(want, sizeof want, "--set: %s: '%s' is not valid: expected %s", b->key,
			 b->value, b->form);
		assert_int_equal(conf_set(c, b->key, b->value, "--set", err, sizeof err), -1);
		assert_string_equal(err, want);
	}
	conf_free(c);
}

static void test_first_error_wins_with_its_line(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "a = 1\nb = 2\nc = 3\nd = 4\nlog-level = loud\noffset = x\n");
	assert_err(&r, ":5: log-level: 'loud' is not valid: expected one of debug, info, warn, error");
	conf_free(c);
}

static void test_large_file_line_numbers(void **state)
{
	(void)state;
	size_t cap = 64 * 1024, n = 0;
	char *text = malloc(cap);
	assert_non_null(text);
	for (int i = 0; i < 999; i++)
		n += (size_t)snprintf(text + n, cap - n, "# comment line %d, padded padded padded\n", i);
	snprintf(text + n, cap - n, "offset: nope\n");
	struct conf *c = new_conf();
	struct result r = load(c, text);
	assert_err(&r, ":1000: offset: 'nope' is not valid: expected an integer");
	text[n] = '\0';
	snprintf(text + n, cap - n, "offset: 77\n");
	r = load(c, text);
	assert_ok(&r);
	assert_int_equal(conf_int(c, "offset"), 77);
	free(text);
	conf_free(c);
}

static void test_nul_byte_refused(void **state)
{
	(void)state;
	static const char text[] = "pool-name = a\npool-name = b\0c\n";
	struct conf *c = new_conf();
	struct result r = load_n(c, text, sizeof text - 1);
	assert_err(&r, ":2: NUL byte in file");
	assert_string_equal(conf_str(c, "pool-name"), "pool");
	conf_free(c);
}

static void test_failed_load_changes_nothing(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	struct result r = load(c, "pool-name: kept\nevacuation-batch-size: 10\n");
	assert_ok(&r);
	r = load(c, "pool-name: changed\nlog-level: debug\nevacuation-batch-size: 0\n");
	assert_int_equal(r.rc, -1);
	assert_string_equal(conf_str(c, "pool-name"), "kept");
	assert_string_equal(conf_str(c, "log-level"), "info");
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 10);
	conf_free(c);
}

/* ---- bounds and suffixes ---- */

static void test_int_bounds_inclusive(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	char err[256];
	assert_int_equal(conf_set(c, "evacuation-batch-size", "1", "t", err, sizeof err), 0);
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 1);
	assert_int_equal(conf_set(c, "evacuation-batch-size", "1000", "t", err, sizeof err), 0);
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 1000);
	assert_int_equal(conf_set(c, "evacuation-batch-size", "+7", "t", err, sizeof err), 0);
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 7);
	assert_int_equal(conf_set(c, "evacuation-batch-size", "0", "t", err, sizeof err), -1);
	assert_int_equal(conf_set(c, "evacuation-batch-size", "1001", "t", err, sizeof err), -1);
	assert_int_equal(conf_int(c, "evacuation-batch-size"), 7);
	assert_int_equal(conf_set(c, "offset", "9223372036854775807", "t", err, sizeof err), 0);
	assert_int_equal(conf_int(c, "offset"), INT64_MAX);
	assert_int_equal(conf_set(c, "offset", "-9223372036854775808", "t", err, sizeof err), 0);
	assert_int_equal(conf_int(c, "offset"), INT64_MIN);
	assert_int_equal(conf_set(c, "offset", "9223372036854775808", "t", err, sizeof err), -1);
	conf_free(c);
}

static void test_bool_spellings(void **state)
{
	(void)state;
	static const struct { const char *text; bool v; } cases[] = {
		{"true", true}, {"yes", true}, {"on", true}, {"1", true}, {"True", true},
		{"YES", true}, {"false", false}, {"no", false}, {"off", false}, {"0", false},
		{"FALSE", false}, {"Off", false},
	};
	struct conf *c = new_conf();
	char err[256];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(conf_set(c, "ha.enabled", cases[i].text, "t", err, sizeof err), 0);
		assert_int_equal(conf_bool(c, "ha.enabled"), cases[i].v);
	}
	conf_free(c);
}

static void test_size_suffixes(void **state)
{
	(void)state;
	static const struct { const char *text; long long v; } cases[] = {
		{"0", 0}, {"1048576", MiB}, {"1b", 1}, {"10B", 10},
		{"1k", KiB}, {"1K", KiB}, {"1KB", KiB}, {"1kb", KiB}, {"1KiB", KiB}, {"1kib", KiB},
		{"3M", 3 * MiB}, {"3MB", 3 * MiB}, {"3MiB", 3 * MiB}, {"64 MiB", 64 * MiB},
		{"2G", 2 * GiB}, {"2GB", 2 * GiB}, {"2GiB", 2 * GiB},
		{"1T", TiB}, {"1TB", TiB}, {"1TiB", TiB}, {"8388607TiB", 8388607 * TiB},
		{"9223372036854775807", INT64_MAX}, {"9007199254740991K", 9007199254740991 * KiB},
	};
	struct conf *c = new_conf();
	char err[256];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (conf_set(c, "max-upload", cases[i].text, "t", err, sizeof err) != 0)
			fail_msg("%s: %s", cases[i].text, err);
		assert_int_equal(conf_int(c, "max-upload"), cases[i].v);
	}
	conf_free(c);
}

static void test_size_bounds_inclusive(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	char err[256];
	assert_int_equal(conf_set(c, "db.cache-size", "1KiB", "t", err, sizeof err), 0);
	assert_int_equal(conf_int(c, "db.cache-size"), KiB);
	assert_int_equal(conf_set(c, "db.cache-size", "1024", "t", err, sizeof err), 0);
	assert_int_equal(conf_set(c, "db.cache-size", "1GiB", "t", err, sizeof err), 0);
	assert_int_equal(conf_int(c, "db.cache-size"), GiB);
	assert_int_equal(conf_set(c, "db.cache-size", "1048576K", "t", err, sizeof err), 0);
	assert_int_equal(conf_set(c, "db.cache-size", "1023", "t", err, sizeof err), -1);
	assert_int_equal(conf_set(c, "db.cache-size", "1048577K", "t", err, sizeof err), -1);
	assert_int_equal(conf_int(c, "db.cache-size"), GiB);
	conf_free(c);
}

static void test_duration_suffixes(void **state)
{
	(void)state;
	static const struct { const char *text; long long ms; } cases[] = {
		{"0", 0}, {"30", 30000}, {"30s", 30000}, {"30S", 30000}, {"5m", 300000},
		{"2h", 7200000}, {"1d", 86400000}, {"250ms", 250}, {"250 ms", 250},
		{"1.5s", 1500}, {"0.25", 250}, {"1.5m", 90000}, {"0.0004s", 0},
		{"0.0005s", 1}, {"1.0004", 1000}, {"0.5ms", 1}, {"0.4ms", 0},
		{"2.123456789123s", 2123}, {"106751991167d", 106751991167LL * 86400000},
		{"9223372036854775807ms", INT64_MAX},
	};
	struct conf *c = new_conf();
	char err[256];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (conf_set(c, "retry-delay", cases[i].text, "t", err, sizeof err) != 0)
			fail_msg("%s: %s", cases[i].text, err);
		assert_int_equal(conf_duration_ms(c, "retry-delay"), cases[i].ms);
	}
	conf_free(c);
}

static void test_duration_bounds_inclusive(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	char err[256];
	assert_int_equal(conf_set(c, "ha.timeout", "1s", "t", err, sizeof err), 0);
	assert_int_equal(conf_duration_ms(c, "ha.timeout"), 1000);
	assert_int_equal(conf_set(c, "ha.timeout", "1000ms", "t", err, sizeof err), 0);
	assert_int_equal(conf_set(c, "ha.timeout", "1d", "t", err, sizeof err), 0);
	assert_int_equal(conf_duration_ms(c, "ha.timeout"), 86400000);
	assert_int_equal(conf_set(c, "ha.timeout", "24h", "t", err, sizeof err), 0);
	assert_int_equal(conf_set(c, "ha.timeout", "1440m", "t", err, sizeof err), 0);
	assert_int_equal(conf_set(c, "ha.timeout", "86400", "t", err, sizeof err), 0);
	assert_int_equal(conf_set(c, "ha.timeout", "999ms", "t", err, sizeof err), -1);
	assert_int_equal(conf_set(c, "ha.timeout", "0.9995s", "t", err, sizeof err), 0);
	assert_int_equal(conf_duration_ms(c, "ha.timeout"), 1000); /* rounded up to 1s */
	assert_int_equal(conf_set(c, "ha.timeout", "86400001ms", "t", err, sizeof err), -1);
	assert_int_equal(conf_duration_ms(c, "ha.timeout"), 1000);
	conf_free(c);
}

static void test_enum_and_string(void **state)
{
	(void)state;
	const char *levels[] = {"debug", "info", "warn", "error"};
	struct conf *c = new_conf();
	char err[256];
	for (int i = 0; i < 4; i++) {
		assert_int_equal(conf_set(c, "log-level", levels[i], "t", err, sizeof err), 0);
		assert_string_equal(conf_str(c, "log-level"), levels[i]);
	}
	assert_int_equal(conf_set(c, "log-level", "inf", "t", err, sizeof err), -1);
	assert_int_equal(conf_set(c, "log-level", "infos", "t", err, sizeof err), -1);
	assert_int_equal(conf_set(c, "pool-name", " spaces kept ", "t", err, sizeof err), 0);
	assert_string_equal(conf_str(c, "pool-name"), " spaces kept ");
	assert_int_equal(conf_set(c, "motd", "", "t", err, sizeof err), 0);
	assert_string_equal(conf_str(c, "motd"), "");
	conf_free(c);
}

/* ---- conf_set ---- */

static void test_conf_set(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	char err[256] = "stale";
	assert_int_equal(conf_set(c, "ha.timeout", "5m", "command line", err, sizeof err), 0);
	assert_string_equal(err, "");
	assert_int_equal(conf_duration_ms(c, "ha.timeout"), 300000);
	assert_int_equal(conf_set(c, "evacuation-batch-size", "x", "command line", err, sizeof err), -1);
	assert_string_equal(err, "command line: evacuation-batch-size: 'x' is not valid: "
				 "expected an integer from 1 to 1000");
	assert_int_equal(conf_set(c, "nope", "1", "command line", err, sizeof err), -1);
	assert_string_equal(err, "command line: unknown key 'nope'");
	assert_int_equal(conf_warnings(c), 0);
	assert_int_equal(conf_set(c, "pool-name", "x", NULL, err, sizeof err), 0);
	assert_int_equal(conf_set(c, "pool-name", NULL, "o", err, sizeof err), -1);
	assert_int_equal(conf_set(c, "pool-name", "y", "o", NULL, 0), 0);
	assert_int_equal(conf_set(c, "pool-name", "", "o", NULL, 0), -1);
	assert_string_equal(conf_str(c, "pool-name"), "y");
	/* a file loaded after --set overrides it (the caller orders them) */
	struct result r = load(c, "pool-name: from-file\n");
	assert_ok(&r);
	assert_string_equal(conf_str(c, "pool-name"), "from-file");
	conf_free(c);
}

/* ---- files ---- */

static void test_missing_file(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	char err[256];
	assert_int_equal(conf_load(c, "/tmp/test_conf.does-not-exist", err, sizeof err), -1);
	assert_string_equal(err, "/tmp/test_conf.does-not-exist: cannot open: No such file or directory");
	assert_int_equal(conf_load(c, "/tmp/test_conf.does-not-exist", NULL, 0), -1);
	conf_free(c);
}

static void test_directory_is_unreadable(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_conf_dir.XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct conf *c = new_conf();
	char err[256], want[256];
	assert_int_equal(conf_load(c, dir, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s: cannot read: %s", dir, strerror(EISDIR));
	assert_string_equal(err, want);
	rmdir(dir);
	conf_free(c);
}

static void test_small_error_buffer(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	char err[8];
	assert_int_equal(conf_set(c, "offset", "x", "origin", err, sizeof err), -1);
	assert_string_equal(err, "origin:");
	conf_free(c);
}

/* ---- the key table ---- */

static void test_expected_forms(void **state)
{
	(void)state;
	static const struct { struct conf_key k; const char *form; } cases[] = {
		{{"a", CONF_INT, "1", 1, 1000}, "an integer from 1 to 1000"},
		{{"a", CONF_INT, "1", 0, 0}, "an integer"},
		{{"a", CONF_INT, "1", 1, INT64_MAX}, "an integer of at least 1"},
		{{"a", CONF_INT, "1", INT64_MIN, 5}, "an integer of at most 5"},
		{{"a", CONF_INT, "1", -5, 5}, "an integer from -5 to 5"},
		{{"a", CONF_BOOL, "no"}, "true or false"},
		{{"a", CONF_STRING, "x"}, "a non-empty string"},
		{{"a", CONF_STRING, ""}, "a string"},
		{{"a", CONF_SIZE, "1K", KiB, GiB}, "a size such as 64MiB (from 1KiB to 1GiB)"},
		{{"a", CONF_SIZE, "1K", 0, 0}, "a size such as 64MiB"},
		{{"a", CONF_SIZE, "1K", 1000, 2 * TiB}, "a size such as 64MiB (from 1000 to 2TiB)"},
		{{"a", CONF_SIZE, "1K", MiB, INT64_MAX}, "a size such as 64MiB (at least 1MiB)"},
		{{"a", CONF_SIZE, "1K", 0, 512 * MiB}, "a size such as 64MiB (at most 512MiB)"},
		{{"a", CONF_DURATION, "1s", 1000, 86400000},
		 "a duration such as 30s or 5m (from 1s to 1d)"},
		{{"a", CONF_DURATION, "1s", 250, 90 * 60000},
		 "a duration such as 30s or 5m (from 250ms to 90m)"},
		{{"a", CONF_DURATION, "1s", 0, 7200000}, "a duration such as 30s or 5m (at most 2h)"},
		{{"a", CONF_DURATION, "1s", 0, 0}, "a duration such as 30s or 5m"},
		{{"a", CONF_ENUM, "x", 0, 0, "x"}, "one of x"},
		{{"a", CONF_ENUM, "x", 0, 0, "debug|info|warn|error"},
		 "one of debug, info, warn, error"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char buf[128];
		assert_ptr_equal(conf_expected_form(&cases[i].k, buf, sizeof buf), buf);
		assert_string_equal(buf, cases[i].form);
	}
	char tiny[10];
	conf_expected_form(&cases[0].k, tiny, sizeof tiny);
	assert_string_equal(tiny, "an intege");
	conf_expected_form(&cases[18].k, tiny, sizeof tiny);
	assert_int_equal(strlen(tiny), sizeof tiny - 1);
}

static struct conf *new_conf_quiet(const struct conf_key *keys, size_t n, char *log, size_t loglen)
{
	struct capture cap;
	capture_start(&cap);
	struct conf *c = conf_new(keys, n);
	capture_stop(&cap, log, loglen);
	return c;
}

static void test_bad_default_is_a_bug(void **state)
{
	(void)state;
	static const struct conf_key bad_int[] = {{"n", CONF_INT, "5000", 1, 1000}};
	static const struct conf_key bad_size[] = {{"s", CONF_SIZE, "lots"}};
	static const struct conf_key no_choices[] = {{"e", CONF_ENUM, "x"}};
	static const struct conf_key no_dflt[] = {{"n", CONF_INT, NULL}};
	static const struct conf_key twice[] = {{"n", CONF_INT, "1"}, {"n", CONF_INT, "2"}};
	static const struct conf_key empty_str[] = {{"ok", CONF_STRING, "x"}, {"s", CONF_STRING, ""}};
	char log[1024];
	assert_null(new_conf_quiet(bad_int, 1, log, sizeof log));
	assert_non_null(strstr(log, "key 'n': default '5000' is not valid: "
				    "expected an integer from 1 to 1000"));
	assert_null(new_conf_quiet(bad_size, 1, log, sizeof log));
	assert_non_null(strstr(log, "key 's': default 'lots' is not valid"));
	assert_null(new_conf_quiet(no_choices, 1, log, sizeof log));
	assert_non_null(strstr(log, "'e'"));
	assert_null(new_conf_quiet(no_dflt, 1, log, sizeof log));
	assert_null(new_conf_quiet(twice, 2, log, sizeof log));
	assert_non_null(strstr(log, "key 'n' declared twice"));
	struct conf *c = new_conf_quiet(empty_str, 2, log, sizeof log);
	assert_non_null(c);
	assert_string_equal(conf_str(c, "s"), "");
	conf_free(c);
	c = conf_new(NULL, 0);
	assert_non_null(c);
	conf_free(c);
	conf_free(NULL);
}

/* ---- getters abort on a program bug ---- */

static void get_undeclared(struct conf *c) { (void)conf_int(c, "no-such-key"); }
static void get_int_as_str(struct conf *c) { (void)conf_str(c, "offset"); }
static void get_str_as_int(struct conf *c) { (void)conf_int(c, "pool-name"); }
static void get_bool_as_int(struct conf *c) { (void)conf_int(c, "ha.enabled"); }
static void get_size_as_ms(struct conf *c) { (void)conf_duration_ms(c, "db.cache-size"); }
static void get_ms_as_int(struct conf *c) { (void)conf_int(c, "ha.timeout"); }
static void get_enum_as_bool(struct conf *c) { (void)conf_bool(c, "log-level"); }

static void expect_abort(void (*fn)(struct conf *), struct conf *c)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, STDERR_FILENO);
		fn(c);
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGABRT);
}

static void test_getters_abort_on_bugs(void **state)
{
	(void)state;
	struct conf *c = new_conf();
	expect_abort(get_undeclared, c);
	expect_abort(get_int_as_str, c);
	expect_abort(get_str_as_int, c);
	expect_abort(get_bool_as_int, c);
	expect_abort(get_size_as_ms, c);
	expect_abort(get_ms_as_int, c);
	expect_abort(get_enum_as_bool, c);
	/* CONF_SIZE reads through conf_int, CONF_ENUM through conf_str */
	assert_int_equal(conf_int(c, "db.cache-size"), 64 * MiB);
	assert_string_equal(conf_str(c, "log-level"), "info");
	conf_free(c);
}

int main(void)
{
	log_init("test_conf", LOG_LVL_DEBUG);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_defaults_kept_for_absent_keys),
		cmocka_unit_test(test_empty_and_comment_only_files),
		cmocka_unit_test(test_yaml_all_types),
		cmocka_unit_test(test_yaml_sections),
		cmocka_unit_test(test_yaml_flow_section_and_dotted_key),
		cmocka_unit_test(test_yaml_nested_sections_unknown),
		cmocka_unit_test(test_yaml_too_deep),
		cmocka_unit_test(test_yaml_comments_and_quotes),
		cmocka_unit_test(test_yaml_document_markers_and_crlf),
		cmocka_unit_test(test_yaml_anchor_on_scalar_is_fine),
		cmocka_unit_test(test_yaml_sequence_is_error),
		cmocka_unit_test(test_yaml_alias_is_error),
		cmocka_unit_test(test_yaml_syntax_error),
		cmocka_unit_test(test_yaml_top_level_not_mapping),
		cmocka_unit_test(test_yaml_null_value),
		cmocka_unit_test(test_legacy_basic),
		cmocka_unit_test(test_legacy_comments_and_quotes),
		cmocka_unit_test(test_legacy_escapes_and_empty),
		cmocka_unit_test(test_legacy_bad_lines),
		cmocka_unit_test(test_form_detection),
		cmocka_unit_test(test_unknown_key_warns_yaml),
		cmocka_unit_test(test_unknown_key_warns_legacy),
		cmocka_unit_test(test_duplicate_key_later_wins),
		cmocka_unit_test(test_bad_values_yaml),
		cmocka_unit_test(test_bad_values_yaml_section),
		cmocka_unit_test(test_bad_values_legacy),
		cmocka_unit_test(test_bad_values_conf_set),
		cmocka_unit_test(test_first_error_wins_with_its_line),
		cmocka_unit_test(test_large_file_line_numbers),
		cmocka_unit_test(test_nul_byte_refused),
		cmocka_unit_test(test_failed_load_changes_nothing),
		cmocka_unit_test(test_int_bounds_inclusive),
		cmocka_unit_test(test_bool_spellings),
		cmocka_unit_test(test_size_suffixes),
		cmocka_unit_test(test_size_bounds_inclusive),
		cmocka_unit_test(test_duration_suffixes),
		cmocka_unit_test(test_duration_bounds_inclusive),
		cmocka_unit_test(test_enum_and_string),
		cmocka_unit_test(test_conf_set),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_directory_is_unreadable),
		cmocka_unit_test(test_small_error_buffer),
		cmocka_unit_test(test_expected_forms),
		cmocka_unit_test(test_bad_default_is_a_bug),
		cmocka_unit_test(test_getters_abort_on_bugs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
