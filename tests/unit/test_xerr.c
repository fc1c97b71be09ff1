/* test_xerr.c - unit tests for lib/xerr.c and the error list in lib/xapi_errors.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "xerr.h"

static const struct {
	enum xapi_err code;
	const char *name;
	const char *params;
} rows[] = {
#define ROW(c, p, d) {XE_##c, #c, p},
	XAPI_ERROR_LIST(ROW)
#undef ROW
};
#define NROWS (sizeof rows / sizeof rows[0])

static int comma_count(const char *s)
{
	if (!*s)
		return 0;
	int n = 1;
	for (; *s; s++)
		n += *s == ',';
	return n;
}

/* Calls xerr_new(code, p0, ..., p(n-1), NULL). */
static json_t *new_with_n(enum xapi_err code, int n)
{
	static const char *const p[] = {"p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"};
	switch (n) {
	case 0: return xerr_new(code, NULL);
	case 1: return xerr_new(code, p[0], NULL);
	case 2: return xerr_new(code, p[0], p[1], NULL);
	case 3: return xerr_new(code, p[0], p[1], p[2], NULL);
	case 4: return xerr_new(code, p[0], p[1], p[2], p[3], NULL);
	case 5: return xerr_new(code, p[0], p[1], p[2], p[3], p[4], NULL);
	case 6: return xerr_new(code, p[0], p[1], p[2], p[3], p[4], p[5], NULL);
	case 7: return xerr_new(code, p[0], p[1], p[2], p[3], p[4], p[5], p[6], NULL);
	default: fail_msg("too many parameters: %d", n);
	}
	return NULL;
}

static void test_table_matches_enum(void **state)
{
	(void)state;
	assert_int_equal(NROWS, XE__COUNT);
	for (size_t i = 0; i < NROWS; i++) {
		assert_int_equal((int)rows[i].code, (int)i);
		assert_string_equal(xerr_code_name(rows[i].code), rows[i].name);
		assert_int_equal(xerr_code_from_name(rows[i].name), (int)rows[i].code);
		assert_string_equal(xerr_param_names(rows[i].code), rows[i].params);
		/* names are upper-case identifiers, declared once */
		for (const char *c = rows[i].name; *c; c++)
			assert_true((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_');
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(rows[i].name, rows[j].name);
		/* parameter names: lower-case words, no spaces, no empty names */
		const char *p = rows[i].params;
		if (*p) {
			assert_true(p[0] != ',' && p[strlen(p) - 1] != ',');
			assert_null(strstr(p, ",,"));
			assert_null(strchr(p, ' '));
		}
	}
}

static void test_lookup_errors(void **state)
{
	(void)state;
	assert_int_equal(xerr_code_from_name("NO_SUCH_ERROR"), -1);
	assert_int_equal(xerr_code_from_name(""), -1);
	assert_int_equal(xerr_code_from_name("handle_invalid"), -1); /* codes are case-sensitive */
	assert_int_equal(xerr_code_from_name("HANDLE_INVALID "), -1);
	assert_string_equal(xerr_code_name(XE__COUNT), "INTERNAL_ERROR");
	assert_string_equal(xerr_code_name((enum xapi_err)-1), "INTERNAL_ERROR");
	assert_string_equal(xerr_param_names(XE__COUNT), "");
	assert_int_equal(xerr_param_count(XE__COUNT), 0);
}

static void test_param_counts(void **state)
{
	(void)state;
	for (size_t i = 0; i < NROWS; i++)
		assert_int_equal(xerr_param_count(rows[i].code), comma_count(rows[i].params));
	assert_int_equal(xerr_param_count(XE_EVENTS_LOST), 0);
	assert_int_equal(xerr_param_count(XE_INTERNAL_ERROR), 1);
}

static void test_new_every_code(void **state)
{
	(void)state;
	for (size_t i = 0; i < NROWS; i++) {
		int n = xerr_param_count(rows[i].code);
		json_t *e = new_with_n(rows[i].code, n);
		assert_non_null(e);
		assert_true(json_is_array(e));
		assert_int_equal(json_array_size(e), (size_t)n + 1);
		assert_string_equal(json_string_value(json_array_get(e, 0)), rows[i].name);
		assert_string_equal(xerr_code_of(e), rows[i].name);
		for (int k = 0; k < n; k++) {
			char want[16];
			snprintf(want, sizeof want, "p%d", k);
			assert_string_equal(json_string_value(json_array_get(e, (size_t)k + 1)), want);
		}
		json_decref(e);
	}
}

/* Runs xerr_new(code) with n parameters in a child; returns its wait status. */
static int child_status(enum xapi_err code, int n, int use_newf)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0)
			dup2(fd, 2);
		signal(SIGABRT, SIG_DFL);
		json_t *e = use_newf ? xerr_newf(code, "message %d", n) : new_with_n(code, n);
		json_decref(e);
		_exit(0);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static void expect_abort(int st)
{
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGABRT);
}

static void test_wrong_count_aborts(void **state)
{
	(void)state;
	/* a few representative codes: 0, 1, 2, 3 and 4 declared parameters */
	const enum xapi_err codes[] = {XE_EVENTS_LOST, XE_SESSION_INVALID, XE_HANDLE_INVALID,
				       XE_VM_BAD_POWER_STATE, XE_VM_MIGRATE_FAILED};
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		int n = xerr_param_count(codes[i]);
		expect_abort(child_status(codes[i], n + 1, 0));
		if (n > 0)
			expect_abort(child_status(codes[i], n - 1, 0));
		if (n != 0)
			expect_abort(child_status(codes[i], 0, 0));
		/* the right count does not abort */
		int st = child_status(codes[i], n, 0);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	/* xerr_newf needs a code with exactly one parameter */
	expect_abort(child_status(XE_HANDLE_INVALID, 0, 1));
	expect_abort(child_status(XE_EVENTS_LOST, 0, 1));
	int st = child_status(XE_OPERATION_NOT_ALLOWED, 0, 1);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_newf(void **state)
{
	(void)state;
	json_t *e = xerr_newf(XE_INTERNAL_ERROR, "disk %s is %d%% full", "sda", 93);
	assert_int_equal(json_array_size(e), 2);
	assert_string_equal(xerr_code_of(e), "INTERNAL_ERROR");
	assert_string_equal(json_string_value(json_array_get(e, 1)), "disk sda is 93% full");
	json_decref(e);

	/* a very long message is bounded but still a valid prefix */
	char *big = malloc(5001);
	memset(big, 'x', 5000);
	big[5000] = '\0';
	e = xerr_newf(XE_OPERATION_NOT_ALLOWED, "%s", big);
	const char *m = json_string_value(json_array_get(e, 1));
	assert_non_null(m);
	assert_true(strlen(m) > 0 && strlen(m) <= 5000);
	assert_memory_equal(m, big, strlen(m));
	json_decref(e);
	free(big);
}

static void test_to_text(void **state)
{
	(void)state;
	json_t *e = xerr_new(XE_HANDLE_INVALID, "VM", "OpaqueRef:x", NULL);
	char *t = xerr_to_text(e);
	assert_string_equal(t, "HANDLE_INVALID: VM, OpaqueRef:x");
	free(t);
	json_decref(e);

	e = xerr_new(XE_EVENTS_LOST, NULL);
	t = xerr_to_text(e);
	assert_string_equal(t, "EVENTS_LOST");
	free(t);
	json_decref(e);

	e = xerr_new(XE_SESSION_INVALID, "", NULL);
	t = xerr_to_text(e);
	assert_string_equal(t, "SESSION_INVALID: ");
	free(t);
	json_decref(e);

	e = xerr_new(XE_VM_BAD_POWER_STATE, "OpaqueRef:v", "halted", "running", NULL);
	t = xerr_to_text(e);
	assert_string_equal(t, "VM_BAD_POWER_STATE: OpaqueRef:v, halted, running");
	free(t);
	json_decref(e);

	/* an error from the wire may carry non-string parameters */
	e = json_pack("[s, i, n, [s]]", "SOME_CODE", 42, "x");
	t = xerr_to_text(e);
	assert_string_equal(t, "SOME_CODE: 42, null, [\"x\"]");
	free(t);
	json_decref(e);

	/* long parameters force the buffer to grow */
	char big[2000];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	e = xerr_new(XE_VDI_IN_USE, big, big, NULL);
	t = xerr_to_text(e);
	assert_int_equal(strlen(t), strlen("VDI_IN_USE: ") + 2 * strlen(big) + 2);
	assert_memory_equal(t, "VDI_IN_USE: aaa", 15);
	free(t);
	json_decref(e);

	e = json_array();
	t = xerr_to_text(e);
	assert_string_equal(t, "");
	free(t);
	json_decref(e);
}

static void test_code_of_odd_values(void **state)
{
	(void)state;
	assert_string_equal(xerr_code_of(NULL), "INTERNAL_ERROR");
	json_t *v = json_array();
	assert_string_equal(xerr_code_of(v), "INTERNAL_ERROR");
	json_decref(v);
	v = json_pack("[i]", 3);
	assert_string_equal(xerr_code_of(v), "INTERNAL_ERROR");
	json_decref(v);
	v = json_string("SESSION_INVALID");
	assert_string_equal(xerr_code_of(v), "INTERNAL_ERROR");
	json_decref(v);
}

static void test_xapi_parameter_lists(void **state)
{
	(void)state;
	/* as XAPI's datamodel declares them (ocaml/idl/datamodel_errors.ml) */
	assert_string_equal(xerr_param_names(XE_HANDLE_INVALID), "class,handle");
	assert_string_equal(xerr_param_names(XE_VM_BAD_POWER_STATE), "vm,expected,actual");
	assert_string_equal(xerr_param_names(XE_HOST_NOT_ENOUGH_FREE_MEMORY), "needed,available");
	assert_string_equal(xerr_param_names(XE_MESSAGE_PARAMETER_COUNT_MISMATCH), "method,expected,received");
	assert_string_equal(xerr_param_names(XE_SESSION_INVALID), "handle");
	assert_string_equal(xerr_param_names(XE_SESSION_AUTHENTICATION_FAILED), "username,message");
	assert_string_equal(xerr_param_names(XE_UUID_INVALID), "type,uuid");
	assert_string_equal(xerr_param_names(XE_MESSAGE_METHOD_UNKNOWN), "method");
	assert_string_equal(xerr_param_names(XE_INVALID_VALUE), "field,value");
	assert_string_equal(xerr_param_names(XE_EVENTS_LOST), "");
	assert_string_equal(xerr_param_names(XE_HOST_IS_SLAVE), "master_address");
	assert_string_equal(xerr_param_names(XE_EVENT_FROM_TOKEN_PARSE_FAILURE), "token");

	json_t *e = xerr_new(XE_MESSAGE_PARAMETER_COUNT_MISMATCH, "VM.start", "3", "1", NULL);
	json_t *want = json_pack("[s,s,s,s]", "MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.start", "3", "1");
	assert_true(json_equal(e, want));
	json_decref(e);
	json_decref(want);

	e = xerr_new(XE_HOST_NOT_ENOUGH_FREE_MEMORY, "4294967296", "1073741824", NULL);
	char *t = xerr_to_text(e);
	assert_string_equal(t, "HOST_NOT_ENOUGH_FREE_MEMORY: 4294967296, 1073741824");
	free(t);
	json_decref(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_matches_enum),
		cmocka_unit_test(test_lookup_errors),
		cmocka_unit_test(test_param_counts),
		cmocka_unit_test(test_new_every_code),
		cmocka_unit_test(test_wrong_count_aborts),
		cmocka_unit_test(test_newf),
		cmocka_unit_test(test_to_text),
		cmocka_unit_test(test_code_of_odd_values),
		cmocka_unit_test(test_xapi_parameter_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
