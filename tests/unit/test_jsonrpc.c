/* test_jsonrpc.c - unit tests for lib/jsonrpc.c (XAPI JSON-RPC framing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "jsonrpc.h"
#include "xerr.h"

/* ------------------------------------------------------------ server side */

static void test_parse_v2(void **state)
{
	(void)state;
	const char *body = "{\"jsonrpc\":\"2.0\",\"method\":\"VM.get_record\","
			   "\"params\":[\"OpaqueRef:s\",\"OpaqueRef:v\"],\"id\":7}";
	struct jrpc_req r;
	char *err = NULL;
	assert_int_equal(jrpc_parse(body, strlen(body), &r, &err), 0);
	assert_null(err);
	assert_string_equal(r.jr_method, "VM.get_record");
	assert_true(r.jr_v2);
	assert_true(json_is_array(r.jr_params));
	assert_int_equal(json_array_size(r.jr_params), 2);
	assert_string_equal(json_string_value(json_array_get(r.jr_params, 1)), "OpaqueRef:v");
	assert_true(json_is_integer(r.jr_id));
	assert_int_equal(json_integer_value(r.jr_id), 7);
	jrpc_req_clear(&r);
	assert_null(r.jr_method);
	assert_null(r.jr_params);
	assert_null(r.jr_id);
	jrpc_req_clear(&r); /* clearing twice is harmless */
}

static void test_parse_v1_and_ids(void **state)
{
	(void)state;
	struct jrpc_req r;
	char *err = NULL;
	const char *v1 = "{\"method\":\"session.login_with_password\",\"params\":[\"root\",\"pw\"],\"id\":\"abc\"}";
	assert_int_equal(jrpc_parse(v1, strlen(v1), &r, &err), 0);
	assert_false(r.jr_v2);
	assert_string_equal(json_string_value(r.jr_id), "abc");
	assert_int_equal(json_array_size(r.jr_params), 2);
	/* the answer echoes the id and speaks v1 */
	char *ok = jrpc_ok(r.jr_id, r.jr_v2, "\"OpaqueRef:s\"");
	assert_string_equal(ok, "{\"result\":\"OpaqueRef:s\",\"error\":null,\"id\":\"abc\"}");
	free(ok);
	jrpc_req_clear(&r);

	/* a big integer id and a float id survive */
	const char *big = "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":[],\"id\":9007199254740993}";
	assert_int_equal(jrpc_parse(big, strlen(big), &r, &err), 0);
	ok = jrpc_ok(r.jr_id, true, NULL);
	assert_string_equal(ok, "{\"jsonrpc\":\"2.0\",\"result\":\"\",\"id\":9007199254740993}");
	free(ok);
	jrpc_req_clear(&r);

	const char *fl = "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1.5}";
	assert_int_equal(jrpc_parse(fl, strlen(fl), &r, &err), 0);
	assert_true(json_is_real(r.jr_id));
	jrpc_req_clear(&r);

	/* the body need not be NUL-terminated: only len bytes count */
	const char *tail = "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":[1],\"id\":2}GARBAGE";
	assert_int_equal(jrpc_parse(tail, strlen(tail) - 7, &r, &err), 0);
	assert_int_equal(json_integer_value(r.jr_id), 2);
	jrpc_req_clear(&r);
}

static void test_parse_params_shapes(void **state)
{
	(void)state;
	struct jrpc_req r;
	char *err = NULL;
	const char *absent = "{\"jsonrpc\":\"2.0\",\"method\":\"system.listMethods\",\"id\":1}";
	assert_int_equal(jrpc_parse(absent, strlen(absent), &r, &err), 0);
	assert_true(json_is_array(r.jr_params));
	assert_int_equal(json_array_size(r.jr_params), 0);
	jrpc_req_clear(&r);

	const char *obj = "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":{\"a\":1,\"b\":\"x\"},\"id\":1}";
	assert_int_equal(jrpc_parse(obj, strlen(obj), &r, &err), 0);
	assert_int_equal(json_array_size(r.jr_params), 1);
	json_t *want = json_pack("{s:i, s:s}", "a", 1, "b", "x");
	assert_true(json_equal(json_array_get(r.jr_params, 0), want));
	json_decref(want);
	jrpc_req_clear(&r);

	const char *empty = "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":[],\"id\":1}";
	assert_int_equal(jrpc_parse(empty, strlen(empty), &r, &err), 0);
	assert_int_equal(json_array_size(r.jr_params), 0);
	jrpc_req_clear(&r);

	/* whitespace and key order do not matter */
	const char *ws = " \n{ \"id\" : 3 , \"params\" : [ null , true , 1.0 ] , \"method\" : \"m\" ,"
			 " \"jsonrpc\" : \"2.0\" }\n";
	assert_int_equal(jrpc_parse(ws, strlen(ws), &r, &err), 0);
	assert_int_equal(json_array_size(r.jr_params), 3);
	assert_true(json_is_null(json_array_get(r.jr_params, 0)));
	jrpc_req_clear(&r);
}

/* Checks a framing-fault answer: valid JSON-RPC v2 error with id null,
 * integer code, string message, data = [one string]. Returns data[0]. */
static char *check_fault(const char *answer, int code)
{
	assert_non_null(answer);
	json_error_t je;
	json_t *o = json_loads(answer, JSON_REJECT_DUPLICATES, &je);
	if (!o)
		fail_msg("fault answer is not JSON: %s (%s)", answer, je.text);
	assert_true(json_is_object(o));
	assert_int_equal(json_object_size(o), 3);
	assert_string_equal(json_string_value(json_object_get(o, "jsonrpc")), "2.0");
	assert_true(json_is_null(json_object_get(o, "id")));
	assert_null(json_object_get(o, "result"));
	json_t *e = json_object_get(o, "error");
	assert_true(json_is_object(e));
	assert_true(json_is_integer(json_object_get(e, "code")));
	assert_int_equal(json_integer_value(json_object_get(e, "code")), code);
	assert_true(json_is_string(json_object_get(e, "message")));
	assert_string_equal(json_string_value(json_object_get(e, "message")),
			    code == -32700 ? "Parse error" : "Invalid Request");
	json_t *d = json_object_get(e, "data");
	assert_true(json_is_array(d));
	assert_int_equal(json_array_size(d), 1);
	assert_true(json_is_string(json_array_get(d, 0)));
	char *detail = strdup(json_string_value(json_array_get(d, 0)));
	assert_true(strlen(detail) > 0);
	/* key order jsonrpc, error, id as XAPI's envelope */
	const char *pj = strstr(answer, "\"jsonrpc\""), *pe = strstr(answer, "\"error\""),
		   *pi = strstr(answer, "\"id\"");
	assert_true(pj && pe && pi && pj < pe && pe < pi);

	/* and our own client reads it as an error */
	json_t *res = NULL, *xe = NULL;
	assert_int_equal(jrpc_parse_answer(answer, strlen(answer), &res, &xe), 1);
	assert_null(res);
	assert_true(json_is_array(xe));
	json_decref(xe);
	json_decref(o);
	return detail;
}

static char *fault_of(const char *body, size_t len, int code)
{
	struct jrpc_req r;
	char *err = NULL;
	memset(&r, 0x5a, sizeof r);
	if (jrpc_parse(body, len, &r, &err) != -1) {
		jrpc_req_clear(&r);
		fail_msg("accepted as a valid request: %.*s", (int)len, body);
	}
	/* nothing half-filled is left for the caller to free */
	assert_null(r.jr_method);
	assert_null(r.jr_params);
	assert_null(r.jr_id);
	char *detail = check_fault(err, code);
	free(err);
	return detail;
}

static void expect_fault(const char *body, int code, const char *detail_has)
{
	char *d = fault_of(body, strlen(body), code);
	if (detail_has && !strstr(d, detail_has))
		fail_msg("body %s: detail \"%s\" lacks \"%s\"", body, d, detail_has);
	free(d);
}

static void test_parse_not_json(void **state)
{
	(void)state;
	/* not JSON: -32700 with the line and column of the fault */
	expect_fault("{\"method\":", -32700, "line 1 column");
	expect_fault("not json at all", -32700, "line 1");
	expect_fault("{\"jsonrpc\":\"2.0\",\n\"method\":\"m\",\n\"id\":1,,}", -32700, "line 3");
	expect_fault("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1} trailing", -32700, "line 1 column");
	expect_fault("{'method':'m','id':1}", -32700, "column");
	/* empty body */
	char *d = fault_of("", 0, -32700);
	assert_non_null(strstr(d, "line"));
	free(d);
	/* truncated by len */
	const char *b = "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1}";
	d = fault_of(b, strlen(b) - 1, -32700);
	free(d);
	/* invalid UTF-8 in a string */
	expect_fault("{\"jsonrpc\":\"2.0\",\"method\":\"m\xff\",\"id\":1}", -32700, NULL);
	/* an embedded NUL byte */
	const char nul[] = "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\0\"id\":1}";
	d = fault_of(nul, sizeof nul - 1, -32700);
	free(d);
}

static void test_parse_invalid_requests(void **state)
{
	(void)state;
	/* not an object */
	expect_fault("[1,2,3]", -32600, "object");
	expect_fault("[]", -32600, "object");
	/* method missing / not a string */
	expect_fault("{\"jsonrpc\":\"2.0\",\"params\":[],\"id\":1}", -32600, "method");
	expect_fault("{\"jsonrpc\":\"2.0\",\"method\":5,\"params\":[],\"id\":1}", -32600, "method");
	expect_fault("{\"jsonrpc\":\"2.0\",\"method\":null,\"params\":[],\"id\":1}", -32600, "method");
	expect_fault("{\"jsonrpc\":\"2.0\",\"method\":[\"m\"],\"params\":[],\"id\":1}", -32600, "method");
	/* params neither list nor struct */
	expect_fault("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":\"s\",\"id\":1}", -32600, "params");
	expect_fault("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":3,\"id\":1}", -32600, "params");
	expect_fault("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":true,\"id\":1}", -32600, "params");
	expect_fault("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":null,\"id\":1}", -32600, "params");
	/* id missing or of a wrong type */
	expect_fault("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":[]}", -32600, "id");
	expect_fault("{\"method\":\"m\",\"params\":[]}", -32600, "id");
	expect_fault("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":[],\"id\":{}}", -32600, "id");
	expect_fault("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":[],\"id\":[1]}", -32600, "id");
	expect_fault("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":[],\"id\":true}", -32600, "id");
	/* jsonrpc present but not "2.0" */
	expect_fault("{\"jsonrpc\":\"1.0\",\"method\":\"m\",\"params\":[],\"id\":1}", -32600, "jsonrpc");
	expect_fault("{\"jsonrpc\":2.0,\"method\":\"m\",\"params\":[],\"id\":1}", -32600, "jsonrpc");
	expect_fault("{\"jsonrpc\":null,\"method\":\"m\",\"params\":[],\"id\":1}", -32600, "jsonrpc");
	expect_fault("{\"jsonrpc\":\"\",\"method\":\"m\",\"params\":[],\"id\":1}", -32600, "jsonrpc");
}

static void test_parse_null_id(void **state)
{
	(void)state;
	/* wire.md §1: id is REQUIRED, a number or a string; null is refused like
	 * a missing id (XAPI: Malformed_method_request). */
	expect_fault("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":[],\"id\":null}", -32600, "id");
}

static void test_parse_duplicate_keys(void **state)
{
	(void)state;
	/* a request with a key twice is ambiguous: refused, never half-read */
	char *d = fault_of("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"method\":\"b\",\"params\":[],\"id\":1}",
			   strlen("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"method\":\"b\",\"params\":[],\"id\":1}"),
			   -32700);
	assert_non_null(strstr(d, "duplicate"));
	free(d);
	d = fault_of("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":1,\"id\":2}",
		     strlen("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":1,\"id\":2}"), -32700);
	free(d);
}

/* ---------------------------------------------------------------- answers */

static void test_ok_envelopes(void **state)
{
	(void)state;
	json_t *id = json_integer(12);
	char *t = jrpc_ok(id, true, "\"OpaqueRef:abc\"");
	assert_string_equal(t, "{\"jsonrpc\":\"2.0\",\"result\":\"OpaqueRef:abc\",\"id\":12}");
	free(t);
	t = jrpc_ok(id, true, NULL); /* void */
	assert_string_equal(t, "{\"jsonrpc\":\"2.0\",\"result\":\"\",\"id\":12}");
	free(t);
	t = jrpc_ok(id, false, NULL);
	assert_string_equal(t, "{\"result\":\"\",\"error\":null,\"id\":12}");
	free(t);
	t = jrpc_ok(id, false, "{\"a\":[1,2]}");
	assert_string_equal(t, "{\"result\":{\"a\":[1,2]},\"error\":null,\"id\":12}");
	free(t);
	json_decref(id);

	id = json_string("x\"y");
	t = jrpc_ok(id, true, "null");
	assert_string_equal(t, "{\"jsonrpc\":\"2.0\",\"result\":null,\"id\":\"x\\\"y\"}");
	free(t);
	json_decref(id);

	t = jrpc_ok(NULL, true, "1");
	assert_string_equal(t, "{\"jsonrpc\":\"2.0\",\"result\":1,\"id\":null}");
	free(t);
}

static void test_err_envelopes(void **state)
{
	(void)state;
	json_t *id = json_integer(3);
	json_t *e = xerr_new(XE_SESSION_INVALID, "OpaqueRef:s", NULL);
	char *t = jrpc_err(id, true, e);
	assert_string_equal(t, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":\"SESSION_INVALID\","
			       "\"data\":[\"OpaqueRef:s\"]},\"id\":3}");
	free(t);
	t = jrpc_err(id, false, e);
	assert_string_equal(t, "{\"result\":null,\"error\":[\"SESSION_INVALID\",\"OpaqueRef:s\"],\"id\":3}");
	free(t);
	/* the error value is not consumed */
	assert_int_equal(e->refcount, 1);
	assert_int_equal(json_array_size(e), 2);
	json_decref(e);

	e = xerr_new(XE_EVENTS_LOST, NULL);
	t = jrpc_err(id, true, e);
	assert_string_equal(t, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":\"EVENTS_LOST\",\"data\":[]},\"id\":3}");
	free(t);
	t = jrpc_err(id, false, e);
	assert_string_equal(t, "{\"result\":null,\"error\":[\"EVENTS_LOST\"],\"id\":3}");
	free(t);
	json_decref(e);

	e = xerr_new(XE_VM_BAD_POWER_STATE, "OpaqueRef:v", "halted", "running", NULL);
	t = jrpc_err(NULL, true, e);
	assert_string_equal(t, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":\"VM_BAD_POWER_STATE\","
			       "\"data\":[\"OpaqueRef:v\",\"halted\",\"running\"]},\"id\":null}");
	free(t);
	json_decref(e);
	json_decref(id);

	id = json_string("req-1");
	e = xerr_new(XE_HANDLE_INVALID, "VM", "OpaqueRef:<&>", NULL);
	t = jrpc_err(id, false, e);
	assert_string_equal(t, "{\"result\":null,\"error\":[\"HANDLE_INVALID\",\"VM\",\"OpaqueRef:<&>\"],\"id\":\"req-1\"}");
	free(t);
	assert_int_equal(id->refcount, 1);
	json_decref(e);
	json_decref(id);
}

/* ------------------------------------------------------------ client side */

static void test_request(void **state)
{
	(void)state;
	json_t *p = json_pack("[s,s]", "root", "secret");
	char *t = jrpc_request("session.login_with_password", p, 42);
	assert_string_equal(t, "{\"jsonrpc\":\"2.0\",\"method\":\"session.login_with_password\","
			       "\"params\":[\"root\",\"secret\"],\"id\":42}");
	struct jrpc_req r;
	char *err = NULL;
	assert_int_equal(jrpc_parse(t, strlen(t), &r, &err), 0);
	assert_true(r.jr_v2);
	assert_string_equal(r.jr_method, "session.login_with_password");
	assert_true(json_equal(r.jr_params, p));
	assert_int_equal(json_integer_value(r.jr_id), 42);
	jrpc_req_clear(&r);
	free(t);
	assert_int_equal(p->refcount, 1);
	json_decref(p);

	p = json_array();
	t = jrpc_request("system.listMethods", p, -1);
	assert_string_equal(t, "{\"jsonrpc\":\"2.0\",\"method\":\"system.listMethods\",\"params\":[],\"id\":-1}");
	free(t);
	json_decref(p);
}

static void test_parse_answer_success(void **state)
{
	(void)state;
	json_t *res, *xe;
	const char *v2 = "{\"jsonrpc\":\"2.0\",\"result\":{\"OpaqueRef:a\":{\"uuid\":\"u\"}},\"id\":1}";
	assert_int_equal(jrpc_parse_answer(v2, strlen(v2), &res, &xe), 0);
	assert_null(xe);
	assert_string_equal(json_string_value(json_object_get(json_object_get(res, "OpaqueRef:a"), "uuid")), "u");
	json_decref(res);

	const char *v1 = "{\"result\":\"OpaqueRef:s\",\"error\":null,\"id\":1}";
	assert_int_equal(jrpc_parse_answer(v1, strlen(v1), &res, &xe), 0);
	assert_null(xe);
	assert_string_equal(json_string_value(res), "OpaqueRef:s");
	json_decref(res);

	const char *voidr = "{\"jsonrpc\":\"2.0\",\"result\":\"\",\"id\":1}";
	assert_int_equal(jrpc_parse_answer(voidr, strlen(voidr), &res, &xe), 0);
	assert_string_equal(json_string_value(res), "");
	json_decref(res);

	const char *nullr = "{\"jsonrpc\":\"2.0\",\"result\":null,\"id\":1}";
	assert_int_equal(jrpc_parse_answer(nullr, strlen(nullr), &res, &xe), 0);
	assert_true(json_is_null(res));
	json_decref(res);

	/* our own server's answers round-trip */
	json_t *id = json_integer(5);
	char *t = jrpc_ok(id, true, "[1,\"two\",{\"three\":3}]");
	assert_int_equal(jrpc_parse_answer(t, strlen(t), &res, &xe), 0);
	json_t *want = json_pack("[i,s,{s:i}]", 1, "two", "three", 3);
	assert_true(json_equal(res, want));
	json_decref(want);
	json_decref(res);
	free(t);
	json_decref(id);
}

static void test_parse_answer_errors(void **state)
{
	(void)state;
	json_t *res, *xe;
	const char *v2 = "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":\"HANDLE_INVALID\","
			 "\"data\":[\"VM\",\"OpaqueRef:x\"]},\"id\":1}";
	assert_int_equal(jrpc_parse_answer(v2, strlen(v2), &res, &xe), 1);
	assert_null(res);
	json_t *want = json_pack("[s,s,s]", "HANDLE_INVALID", "VM", "OpaqueRef:x");
	assert_true(json_equal(xe, want));
	json_decref(want);
	json_decref(xe);

	const char *v2nodata = "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":\"EVENTS_LOST\"},\"id\":1}";
	assert_int_equal(jrpc_parse_answer(v2nodata, strlen(v2nodata), &res, &xe), 1);
	assert_int_equal(json_array_size(xe), 1);
	assert_string_equal(xerr_code_of(xe), "EVENTS_LOST");
	json_decref(xe);

	const char *v2nomsg = "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1},\"id\":1}";
	assert_int_equal(jrpc_parse_answer(v2nomsg, strlen(v2nomsg), &res, &xe), 1);
	assert_string_equal(xerr_code_of(xe), "INTERNAL_ERROR");
	json_decref(xe);

	const char *v1 = "{\"result\":null,\"error\":[\"SESSION_INVALID\",\"OpaqueRef:s\"],\"id\":1}";
	assert_int_equal(jrpc_parse_answer(v1, strlen(v1), &res, &xe), 1);
	assert_null(res);
	want = json_pack("[s,s]", "SESSION_INVALID", "OpaqueRef:s");
	assert_true(json_equal(xe, want));
	json_decref(want);
	json_decref(xe);

	/* our own server's error answers round-trip in both versions */
	json_t *e = xerr_new(XE_VM_BAD_POWER_STATE, "OpaqueRef:v", "halted", "running", NULL);
	for (int v2flag = 0; v2flag < 2; v2flag++) {
		char *t = jrpc_err(NULL, v2flag, e);
		assert_int_equal(jrpc_parse_answer(t, strlen(t), &res, &xe), 1);
		assert_true(json_equal(xe, e));
		json_decref(xe);
		free(t);
	}
	json_decref(e);
}

static void expect_bad_answer(const char *body)
{
	json_t *res = (json_t *)1, *xe = NULL;
	assert_int_equal(jrpc_parse_answer(body, strlen(body), &res, &xe), -1);
	assert_null(res);
	assert_non_null(xe);
	assert_string_equal(xerr_code_of(xe), "INTERNAL_ERROR");
	assert_int_equal(json_array_size(xe), 2);
	assert_true(strlen(json_string_value(json_array_get(xe, 1))) > 0);
	json_decref(xe);
}

static void test_parse_answer_garbage(void **state)
{
	(void)state;
	expect_bad_answer("");
	expect_bad_answer("<html>502 Bad Gateway</html>");
	expect_bad_answer("{\"result\":");
	expect_bad_answer("[\"result\"]");
	expect_bad_answer("{}");
	expect_bad_answer("{\"jsonrpc\":\"2.0\",\"id\":1}");
	expect_bad_answer("{\"error\":null,\"id\":1}");
	expect_bad_answer("{\"error\":\"oops\",\"id\":1}");
}

/* ------------------------------------------------------------------- size */

static void test_huge_params(void **state)
{
	(void)state;
	/* ~1 MB of parameters */
	json_t *p = json_array();
	char s[101];
	size_t total = 0;
	for (int i = 0; total < (1u << 20); i++) {
		snprintf(s, sizeof s, "%08d-%s", i, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
		json_array_append_new(p, json_string(s));
		total += strlen(s) + 3;
	}
	char *t = jrpc_request("VM.set_other_config", p, 1);
	assert_non_null(t);
	assert_true(strlen(t) >= (1u << 20));
	struct jrpc_req r;
	char *err = NULL;
	assert_int_equal(jrpc_parse(t, strlen(t), &r, &err), 0);
	assert_true(json_equal(r.jr_params, p));

	/* and back as a result */
	char *res_text = json_dumps(r.jr_params, JSON_COMPACT);
	char *ans = jrpc_ok(r.jr_id, r.jr_v2, res_text);
	json_t *res, *xe;
	assert_int_equal(jrpc_parse_answer(ans, strlen(ans), &res, &xe), 0);
	assert_true(json_equal(res, p));
	json_decref(res);
	free(ans);
	free(res_text);
	jrpc_req_clear(&r);
	free(t);
	json_decref(p);
}


static char *nested(int depth, const char *open, const char *inner, const char *close)
{
	size_t lo = strlen(open), lc = strlen(close), li = strlen(inner);
	char *s = malloc((size_t)depth * (lo + lc) + li + 1), *p = s;
	for (int i = 0; i < depth; i++, p += lo)
		memcpy(p, open, lo);
	memcpy(p, inner, li);
	p += li;
	for (int i = 0; i < depth; i++, p += lc)
		memcpy(p, close, lc);
	*p = '\0';
	return s;
}

static void test_depth(void **state)
{
	(void)state;
	const char *flat = "{\"a\":[1,2,{\"b\":3}]}";
	assert_true(jrpc_depth_ok(flat, strlen(flat), 3));
	assert_false(jrpc_depth_ok(flat, strlen(flat), 2));
	/* brackets inside strings, escaped quotes included, do not count */
	const char *str = "[\"[[[[\\\"[[[[\", \"}}}\"]";
	assert_true(jrpc_depth_ok(str, strlen(str), 1));
	const char *esc = "[\"\\\\\", [[1]]]"; /* an escaped backslash ends the escape */
	assert_true(jrpc_depth_ok(esc, strlen(esc), 3));
	assert_false(jrpc_depth_ok(esc, strlen(esc), 2));
	/* unbalanced text is the parser's to refuse */
	assert_true(jrpc_depth_ok("]]]]{", 5, 1));
	for (int d = JRPC_MAX_DEPTH - 1; d <= JRPC_MAX_DEPTH + 1; d++) {
		char *deep = nested(d, "[", "1", "]");
		char *body = NULL;
		assert_true(asprintf(&body, "{\"method\":\"m\",\"params\":%s,\"id\":1}", deep) > 0);
		struct jrpc_req r;
		char *err = NULL;
		int rc = jrpc_parse(body, strlen(body), &r, &err); /* the envelope is one level more */
		if (d + 1 <= JRPC_MAX_DEPTH) {
			assert_int_equal(rc, 0);
			jrpc_req_clear(&r);
		} else {
			assert_int_equal(rc, -1);
			assert_non_null(strstr(err, "-32700"));
			assert_non_null(strstr(err, "deeper"));
			free(err);
		}
		free(body);
		free(deep);
	}
	/* 200,000 levels: refused by the scan, nothing built */
	char *deep = nested(200000, "{\"a\":", "1", "}");
	struct jrpc_req r;
	char *err = NULL;
	assert_int_equal(jrpc_parse(deep, strlen(deep), &r, &err), -1);
	free(err);
	free(deep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_v2),
		cmocka_unit_test(test_parse_v1_and_ids),
		cmocka_unit_test(test_parse_params_shapes),
		cmocka_unit_test(test_parse_not_json),
		cmocka_unit_test(test_parse_invalid_requests),
		cmocka_unit_test(test_parse_null_id),
		cmocka_unit_test(test_parse_duplicate_keys),
		cmocka_unit_test(test_ok_envelopes),
		cmocka_unit_test(test_err_envelopes),
		cmocka_unit_test(test_request),
		cmocka_unit_test(test_parse_answer_success),
		cmocka_unit_test(test_parse_answer_errors),
		cmocka_unit_test(test_parse_answer_garbage),
		cmocka_unit_test(test_huge_params),
		cmocka_unit_test(test_depth),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
