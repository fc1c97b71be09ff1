/* test_xmlrpc.c - unit tests for lib/xmlrpc.c (the encoder, XAPI's
 * envelopes) and lib/xmlrpc_parse.c (calls and values read with expat). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util.h"
#include "xerr.h"
#include "xmlrpc.h"

static json_t *J(const char *text)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
	if (!v)
		fail_msg("bad test JSON %s: %s", text, je.text);
	return v;
}

/* xmlrpc_value of the JSON text j, typed t, equals want. */
static void expect_typed(const char *j, const struct xr_type *t, const char *want)
{
	json_t *v = J(j);
	char *x = xmlrpc_value(v, t);
	assert_non_null(x);
	if (strcmp(x, want) != 0)
		fail_msg("xmlrpc_value(%s)\n  got  %s\n  want %s", j, x, want);
	free(x);
	json_decref(v);
}

static void expect_xml(const char *j, const char *want)
{
	expect_typed(j, NULL, want);
}

/* ------------------------------------------------------------ encoding */

static void test_scalars(void **state)
{
	(void)state;
	expect_xml("\"OpaqueRef:0b4a1c1e-1111-2222-3333-444455556666\"",
		   "<value>OpaqueRef:0b4a1c1e-1111-2222-3333-444455556666</value>");
	/* void: the empty string */
	expect_xml("\"\"", "<value></value>");
	expect_xml("\"plain text\"", "<value>plain text</value>");
	/* int64 is its digits, untyped (XAPI emits no <i4>/<i8>) */
	expect_xml("42", "<value>42</value>");
	expect_xml("0", "<value>0</value>");
	expect_xml("-17", "<value>-17</value>");
	expect_xml("9223372036854775807", "<value>9223372036854775807</value>");
	expect_xml("-9223372036854775808", "<value>-9223372036854775808</value>");
	expect_xml("true", "<value><boolean>1</boolean></value>");
	expect_xml("false", "<value><boolean>0</boolean></value>");
	expect_xml("1.5", "<value><double>1.5</double></value>");
	expect_xml("0.0", "<value><double>0</double></value>");
	expect_xml("-2.25", "<value><double>-2.25</double></value>");
	expect_xml("4294967296.0", "<value><double>4294967296</double></value>");
}

static void test_double_round_trip(void **state)
{
	(void)state;
	const double ds[] = {0.1, 1.0 / 3.0, 1e300, -1e-300, 123456.789};
	for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
		json_t *v = json_real(ds[i]);
		char *x = xmlrpc_value(v, NULL);
		json_t *back = xmlrpc_parse_value(x, strlen(x));
		assert_true(json_is_real(back));
		assert_true(json_real_value(back) == ds[i]);
		free(x);
		json_decref(back);
		json_decref(v);
	}
}

static void test_null(void **state)
{
	(void)state;
	char *x = xmlrpc_value(NULL, NULL);
	assert_string_equal(x, "");
	free(x);
	json_t *n = json_null();
	x = xmlrpc_value(n, NULL);
	assert_string_equal(x, "");
	free(x);
	/* inside a container: an empty value */
	expect_xml("[null]", "<value><array><data><value></value></data></array></value>");
}

static void test_escaping(void **state)
{
	(void)state;
	expect_xml("\"a<b>c&d\\\"e\"", "<value>a&lt;b&gt;c&amp;d&quot;e</value>");
	expect_xml("\"&amp;\"", "<value>&amp;amp;</value>");
	expect_xml("\"<value>\"", "<value>&lt;value&gt;</value>");
	/* UTF-8 passes through */
	expect_xml("\"caf\\u00e9 \\u2603\"", "<value>caf\xc3\xa9 \xe2\x98\x83</value>");
	/* struct member names are escaped too */
	expect_xml("{\"k<&>\":\"v\\\"\"}",
		   "<value><struct><member><name>k&lt;&amp;&gt;</name><value>v&quot;</value></member></struct></value>");
	/* control characters cannot be written in XML 1.0: dropped, as XAPI does;
	 * tab and line ends stay */
	expect_xml("\"a\\u0001b\\u001fc\\td\\ne\\rf\"", "<value>abc\td\ne\rf</value>");
}

static void test_containers(void **state)
{
	(void)state;
	expect_xml("[]", "<value><array><data></data></array></value>");
	expect_xml("{}", "<value><struct></struct></value>");
	expect_xml("[\"OpaqueRef:a\",\"OpaqueRef:b\"]",
		   "<value><array><data><value>OpaqueRef:a</value><value>OpaqueRef:b</value></data></array></value>");
	expect_xml("{\"a\":1,\"b\":true}",
		   "<value><struct><member><name>a</name><value>1</value></member>"
		   "<member><name>b</name><value><boolean>1</boolean></value></member></struct></value>");
	expect_xml("[[1,[2]],{\"x\":[\"y\",{\"z\":\"\"}]}]",
		   "<value><array><data>"
		   "<value><array><data><value>1</value><value><array><data><value>2</value></data></array></value></data></array></value>"
		   "<value><struct><member><name>x</name><value><array><data><value>y</value>"
		   "<value><struct><member><name>z</name><value></value></member></struct></value>"
		   "</data></array></value></member></struct></value>"
		   "</data></array></value>");
}

static void test_big_value(void **state)
{
	(void)state;
	/* forces the buffer to grow many times */
	json_t *a = json_array();
	for (int i = 0; i < 20000; i++)
		json_array_append_new(a, json_string("<&>"));
	char *x = xmlrpc_value(a, NULL);
	size_t per = strlen("<value>&lt;&amp;&gt;</value>");
	assert_int_equal(strlen(x), strlen("<value><array><data></data></array></value>") + 20000 * per);
	assert_memory_equal(x, "<value><array><data><value>&lt;&amp;&gt;</value>", 48);
	free(x);
	json_decref(a);
}

/* Datetimes and whole floats are typed from the model: JSON alone cannot. */
static void test_typed_by_the_model(void **state)
{
	(void)state;
	const struct model_class *vm = model_class_find("VM"), *ev_cls = model_class_find("task");
	struct xr_type rec = {XR_RECORD, vm}, recs = {XR_RECORDS, vm}, when = {XR_DATETIME, NULL};
	/* snapshot_time is a datetime, HVM_shadow_multiplier a float stored whole,
	 * memory_target an int: digits; an unknown field: by its JSON type */
	expect_typed("{\"snapshot_time\":\"19700101T00:00:00Z\",\"HVM_shadow_multiplier\":1,"
		     "\"memory_target\":5,\"zz\":\"19700101T00:00:00Z\"}",
		     &rec,
		     "<value><struct>"
		     "<member><name>snapshot_time</name><value><dateTime.iso8601>19700101T00:00:00Z</dateTime.iso8601></value></member>"
		     "<member><name>HVM_shadow_multiplier</name><value><double>1</double></value></member>"
		     "<member><name>memory_target</name><value>5</value></member>"
		     "<member><name>zz</name><value>19700101T00:00:00Z</value></member>"
		     "</struct></value>");
	/* a map of records: each one typed; a map inside a record is not */
	expect_typed("{\"OpaqueRef:a\":{\"snapshot_time\":\"x\",\"other_config\":{\"snapshot_time\":\"y\"}}}", &recs,
		     "<value><struct><member><name>OpaqueRef:a</name><value><struct>"
		     "<member><name>snapshot_time</name><value><dateTime.iso8601>x</dateTime.iso8601></value></member>"
		     "<member><name>other_config</name><value><struct><member><name>snapshot_time</name>"
		     "<value>y</value></member></struct></value></member>"
		     "</struct></value></member></struct></value>");
	expect_typed("\"20261123T04:58:14Z\"", &when, "<value><dateTime.iso8601>20261123T04:58:14Z</dateTime.iso8601></value>");
	/* event.from: each snapshot typed by its event's class (case as sent) */
	struct xr_type evs = {XR_EVENTS, NULL};
	(void)ev_cls;
	expect_typed("{\"events\":[{\"class\":\"task\",\"snapshot\":{\"created\":\"c\",\"name_label\":\"n\"}},"
		     "{\"class\":\"nosuch\",\"snapshot\":{\"created\":\"c\"}}],\"token\":\"t\"}",
		     &evs,
		     "<value><struct><member><name>events</name><value><array><data>"
		     "<value><struct><member><name>class</name><value>task</value></member>"
		     "<member><name>snapshot</name><value><struct>"
		     "<member><name>created</name><value><dateTime.iso8601>c</dateTime.iso8601></value></member>"
		     "<member><name>name_label</name><value>n</value></member></struct></value></member></struct></value>"
		     "<value><struct><member><name>class</name><value>nosuch</value></member>"
		     "<member><name>snapshot</name><value><struct><member><name>created</name><value>c</value></member>"
		     "</struct></value></member></struct></value>"
		     "</data></array></value></member><member><name>token</name><value>t</value></member></struct></value>");
}

#define HEAD "<?xml version=\"1.0\"?><methodResponse><params><param>"
#define TAIL "</param></params></methodResponse>"
#define STATUS(s) "<member><name>Status</name><value>" s "</value></member>"

static void test_envelopes(void **state)
{
	(void)state;
	json_t *v = J("[\"OpaqueRef:a\"]");
	char *x = xmlrpc_ok(v, NULL);
	assert_string_equal(x, HEAD "<value><struct>" STATUS("Success") "<member><name>Value</name>"
				 "<value><array><data><value>OpaqueRef:a</value></data></array></value></member></struct></value>" TAIL);
	free(x);
	/* system.listMethods: the array bare */
	x = xmlrpc_bare(v);
	assert_string_equal(x, HEAD "<value><array><data><value>OpaqueRef:a</value></data></array></value>" TAIL);
	free(x);
	json_decref(v);
	/* void: "" */
	x = xmlrpc_ok(NULL, NULL);
	assert_string_equal(x, HEAD "<value><struct>" STATUS("Success") "<member><name>Value</name><value></value>"
				 "</member></struct></value>" TAIL);
	free(x);
	/* a struct written in pieces is the struct written whole */
	const struct model_class *vm = model_class_find("VM");
	struct xr_type recs = {XR_RECORDS, vm};
	json_t *all = J("{\"OpaqueRef:a\":{\"snapshot_time\":\"t\"},\"OpaqueRef:b\":{\"name_label\":\"b\"}}");
	json_t *p1 = J("{\"OpaqueRef:a\":{\"snapshot_time\":\"t\"}}"), *p2 = J("{\"OpaqueRef:b\":{\"name_label\":\"b\"}}");
	char *m1 = xmlrpc_members(p1, &recs), *m2 = xmlrpc_members(p2, &recs), *whole = xmlrpc_ok(all, &recs), *pieces;
	assert_true(asprintf(&pieces, "%s%s%s%s", xmlrpc_ok_struct_head(), m1, m2, xmlrpc_ok_struct_tail()) > 0);
	assert_string_equal(pieces, whole);
	assert_non_null(strstr(whole, "<dateTime.iso8601>t</dateTime.iso8601>"));
	free(m1), free(m2), free(whole), free(pieces);
	json_decref(all), json_decref(p1), json_decref(p2);
	/* a failure: every parameter a string */
	json_t *e = J("[\"MAP_DUPLICATE_KEY\",\"Customer\",\"a<b\",3,{\"k\":1}]");
	x = xmlrpc_fail(e);
	assert_string_equal(x, HEAD "<value><struct>" STATUS("Failure") "<member><name>ErrorDescription</name>"
				 "<value><array><data><value>MAP_DUPLICATE_KEY</value><value>Customer</value>"
				 "<value>a&lt;b</value><value>3</value><value>{&quot;k&quot;:1}</value>"
				 "</data></array></value></member></struct></value>" TAIL);
	free(x);
	json_decref(e);
}

/* -------------------------------------------------------------- parsing */

#define CALL(name, params) "<?xml version='1.0'?>\n<methodCall>\n<methodName>" name "</methodName>\n" params "</methodCall>\n"
#define P(v) "<param>\n<value>" v "</value>\n</param>\n"

/* Parse a call; its params must equal the JSON text want. */
static void expect_call(const char *xml, const char *method, const char *want)
{
	char *m = NULL;
	json_t *params = NULL, *err = NULL;
	if (xmlrpc_parse_call(xml, strlen(xml), &m, &params, &err) < 0) {
		char *t = xerr_to_text(err);
		fail_msg("refused %s: %s", xml, t);
	}
	assert_string_equal(m, method);
	json_t *w = J(want);
	if (!json_equal(params, w)) {
		char *got = json_dumps(params, JSON_COMPACT);
		fail_msg("%s\n  got  %s\n  want %s", xml, got, want);
	}
	json_decref(w);
	json_decref(params);
	free(m);
}

/* Parse a call that must be refused with XMLRPC_UNMARSHAL_FAILURE whose
 * "received" holds part (when given). */
static void expect_refused(const char *xml, size_t len, const char *part)
{
	char *m = NULL;
	json_t *params = NULL, *err = NULL;
	if (xmlrpc_parse_call(xml, len, &m, &params, &err) == 0)
		fail_msg("accepted %.200s", xml);
	assert_null(m);
	assert_null(params);
	assert_true(xerr_is(err, XE_XMLRPC_UNMARSHAL_FAILURE));
	assert_int_equal(json_array_size(err), 3);
	const char *received = json_string_value(json_array_get(err, 2));
	if (part && !strstr(received, part))
		fail_msg("%.200s: received is \"%s\", want it to hold \"%s\"", xml, received, part);
	json_decref(err);
}

static void test_parse_calls(void **state)
{
	(void)state;
	/* what Python's xmlrpc.client sends for a login */
	expect_call(CALL("session.login_with_password", "<params>\n" P("<string>root</string>") P("<string>pw</string>")
							 P("<string>1.0</string>") "</params>\n"),
		    "session.login_with_password", "[\"root\",\"pw\",\"1.0\"]");
	/* untyped strings, every scalar type, nil, whitespace around children */
	expect_call(CALL("m", "<params>" P("plain") P("") P("<int>42</int>") P("<i4>-7</i4>") P("<i8>9223372036854775807</i8>")
				  P("<boolean>1</boolean>") P("<boolean>0</boolean>") P("<double>2.5</double>")
				  P("<double>-1e3</double>") P("<dateTime.iso8601>20261123T04:58:14Z</dateTime.iso8601>")
				  P("<base64>aGVsbG8g\nd29ybGQ=</base64>") P("<nil/>") P("  <int> 5 </int>  ")
				  P("<string></string>") P("<string/>") "</params>"),
		    "m",
		    "[\"plain\",\"\",42,-7,9223372036854775807,true,false,2.5,-1000.0,\"20261123T04:58:14Z\","
		    "\"hello world\",null,5,\"\",\"\"]");
	/* <value/> is an empty string; text keeps its spaces */
	expect_call(CALL("m", "<params><param><value/></param>" P("  a b  ") "</params>"), "m", "[\"\",\"  a b  \"]");
	/* containers, empty and nested; a struct keeps its members */
	expect_call(CALL("VM.create", "<params>" P("<string>OpaqueRef:s</string>")
					P("<struct><member><name>name_label</name><value>web</value></member>"
					  "<member><name>memory_static_max</name><value><string>1073741824</string></value></member>"
					  "<member><name>other_config</name><value><struct></struct></value></member>"
					  "<member><name>tags</name><value><array><data><value>a</value><value><i4>1</i4></value>"
					  "</data></array></value></member></struct>")
					P("<array><data/></array>") P("<array/>") P("<struct/>") "</params>"),
		    "VM.create",
		    "[\"OpaqueRef:s\",{\"name_label\":\"web\",\"memory_static_max\":\"1073741824\",\"other_config\":{},"
		    "\"tags\":[\"a\",1]},[],[],{}]");
	/* no params at all, empty params */
	expect_call(CALL("system.listMethods", ""), "system.listMethods", "[]");
	expect_call(CALL("system.listMethods", "<params/>"), "system.listMethods", "[]");
	/* entities, character references and CDATA are XML's, read by expat */
	expect_call(CALL("m", "<params>" P("a&amp;b&lt;&#x2603;&#65;") P("<string><![CDATA[<x>&]]></string>") "</params>"),
		    "m", "[\"a&b<\\u2603A\",\"<x>&\"]");
	/* another declared encoding is converted to UTF-8 */
	const char *latin1 = "<?xml version='1.0' encoding='ISO-8859-1'?><methodCall><methodName>m</methodName>"
			     "<params><param><value>caf\xe9</value></param></params></methodCall>";
	expect_call(latin1, "m", "[\"caf\\u00e9\"]");
}

static void test_parse_refusals(void **state)
{
	(void)state;
	const char *bad[][2] = {
		{"", "no element"},
		{"not xml at all", "syntax error"},
		{"{\"method\":\"x\"}", "not well-formed"},
		{"<methodCall><methodName>m</methodName><params>", "no element found"},
		{"<methodResponse/>", "<methodResponse>"},
		{"<methodCall><params/></methodCall>", "<params>"},
		{"<methodCall><methodName>m</methodName></methodCall><x/>", "junk after document element"},
		{CALL("m", "<params>" P("<float>1</float>") "</params>"), "<float>"},
		{CALL("m", "<params>" P("<int>1.5</int>") "</params>"), "<int>1.5"},
		{CALL("m", "<params>" P("<int></int>") "</params>"), "<int>"},
		{CALL("m", "<params>" P("<int>99999999999999999999</int>") "</params>"), "<int>"},
		{CALL("m", "<params>" P("<boolean>true</boolean>") "</params>"), "<boolean>true"},
		{CALL("m", "<params>" P("<double>inf</double>") "</params>"), "<double>inf"},
		{CALL("m", "<params>" P("<double>nan</double>") "</params>"), "<double>nan"},
		{CALL("m", "<params>" P("<base64>!!</base64>") "</params>"), "<base64>"},
		{CALL("m", "<params>" P("<base64>/w==</base64>") "</params>"), "<base64>"}, /* 0xff: not UTF-8 */
		{CALL("m", "<params>" P("text<int>1</int>") "</params>"), "text before <int>"},
		{CALL("m", "<params>" P("<int>1</int>text") "</params>"), "text in <value>"},
		{CALL("m", "<params>" P("<int>1</int><int>2</int>") "</params>"), "<int>"},
		{CALL("m", "<params><param></param></params>"), "</param>"},
		{CALL("m", "<params><param><value>a</value><value>b</value></param></params>"), "<value>"},
		{CALL("m", "<params>" P("<struct><member><name>k</name></member></struct>") "</params>"), "</member>"},
		{CALL("m", "<params>" P("<struct><member><value>v</value></member></struct>") "</params>"), "<value>"},
		{CALL("m", "<params>" P("<array><value>v</value></array>") "</params>"), "<value>"},
		{CALL("m", "<params>junk</params>"), "text"},
		{CALL("m", "<params>" P("<string><b>x</b></string>") "</params>"), "<b>"},
		{CALL("m", "<params>" P("a&nbsp;b") "</params>"), "undefined entity"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		expect_refused(bad[i][0], strlen(bad[i][0]), bad[i][1]);
}

/* A DTD could declare entities that expand a small body into gigabytes:
 * any document type declaration is refused before it is read. */
static void test_parse_refuses_dtds(void **state)
{
	(void)state;
	const char *laughs = "<?xml version='1.0'?><!DOCTYPE methodCall [<!ENTITY a 'aaaaaaaaaa'>"
			     "<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'><!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'>]>"
			     "<methodCall><methodName>&c;</methodName></methodCall>";
	expect_refused(laughs, strlen(laughs), "<!DOCTYPE>");
	const char *external = "<?xml version='1.0'?><!DOCTYPE methodCall SYSTEM 'file:///etc/passwd'>"
			       "<methodCall><methodName>m</methodName></methodCall>";
	expect_refused(external, strlen(external), "<!DOCTYPE>");
}

static char *nested_call(int depth)
{
	size_t cap = (size_t)depth * 50 + 200, n = 0;
	char *s = xmalloc(cap);
	n += (size_t)sprintf(s + n, "<methodCall><methodName>m</methodName><params><param>");
	for (int i = 0; i < depth; i++)
		n += (size_t)sprintf(s + n, "<value><array><data>");
	n += (size_t)sprintf(s + n, "<value>x</value>");
	for (int i = 0; i < depth; i++)
		n += (size_t)sprintf(s + n, "</data></array></value>");
	sprintf(s + n, "</param></params></methodCall>");
	return s;
}

static void test_parse_nesting_is_bounded(void **state)
{
	(void)state;
	/* the deepest allowed: XMLRPC_MAX_DEPTH values in all */
	char *ok = nested_call(XMLRPC_MAX_DEPTH - 1);
	char *m = NULL;
	json_t *params = NULL, *err = NULL;
	assert_int_equal(xmlrpc_parse_call(ok, strlen(ok), &m, &params, &err), 0);
	json_t *v = json_array_get(params, 0);
	int depth = 1;
	while (json_is_array(v))
		v = json_array_get(v, 0), depth++;
	assert_int_equal(depth, XMLRPC_MAX_DEPTH);
	assert_string_equal(json_string_value(v), "x");
	json_decref(params);
	free(m);
	free(ok);
	/* one deeper, and far deeper (no recursion: one refusal, no stack) */
	const int deeper[] = {XMLRPC_MAX_DEPTH, 100000};
	for (size_t i = 0; i < 2; i++) {
		char *bad = nested_call(deeper[i]);
		expect_refused(bad, strlen(bad), "deeper nesting");
		free(bad);
	}
}

static void test_parse_value(void **state)
{
	(void)state;
	const char *ok[][2] = {
		{"<value>OpaqueRef:x</value>", "\"OpaqueRef:x\""},
		{"<value><string>a&amp;b</string></value>", "\"a&b\""},
		{"<value></value>", "\"\""},
		{"<value>&lt;&gt;&amp;&quot;&apos;</value>", "\"<>&\\\"'\""},
		{"<?xml version=\"1.0\"?><value>OpaqueRef:y</value>\n", "\"OpaqueRef:y\""},
		{"<value><array><data><value>x</value></data></array></value>", "[\"x\"]"},
		{"<value><boolean>1</boolean></value>", "true"},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		json_t *v = xmlrpc_parse_value(ok[i][0], strlen(ok[i][0])), *w = J(ok[i][1]);
		if (!json_equal(v, w))
			fail_msg("xmlrpc_parse_value(%s) is not %s", ok[i][0], ok[i][1]);
		json_decref(v);
		json_decref(w);
	}
	const char *bad[] = {"", "OpaqueRef:x", "<string>x</string>", "<valu>x</valu>", "<value>unterminated",
			     "<value><string>x</value>", "<value>a</value><value>b</value>", "<value>a&nbsp;b</value>"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *v = xmlrpc_parse_value(bad[i], strlen(bad[i]));
		if (v)
			fail_msg("xmlrpc_parse_value(%s) accepted", bad[i]);
	}
}

/* What a value becomes on the XML-RPC wire, read back: ints are their
 * digits (untyped strings), null an empty string, the rest the same. */
static json_t *wire_form(const json_t *v)
{
	size_t i;
	const char *k;
	json_t *e, *out;
	switch (json_typeof(v)) {
	case JSON_INTEGER:
		return json_sprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	case JSON_NULL:
		return json_string("");
	case JSON_ARRAY:
		out = json_array();
		json_array_foreach(v, i, e) json_array_append_new(out, wire_form(e));
		return out;
	case JSON_OBJECT:
		out = json_object();
		json_object_foreach((json_t *)v, k, e) json_object_set_new(out, k, wire_form(e));
		return out;
	default:
		return json_deep_copy(v);
	}
}

static unsigned rnd_state = 12345;
static unsigned rnd(unsigned n)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return (rnd_state >> 16) % n;
}

static json_t *random_value(int depth)
{
	static const char *const strs[] = {"", "a", "OpaqueRef:NULL", "<&>\"'", "caf\xc3\xa9", " lead", "x\ny\tz",
					   "]]>", "&amp;"};
	unsigned kind = depth > 5 ? rnd(5) : rnd(7);
	json_t *v;
	switch (kind) {
	case 0: return json_string(strs[rnd(sizeof strs / sizeof strs[0])]);
	case 1: return json_integer((json_int_t)rnd(1000000) * (rnd(2) ? -1 : 1) * 1000003LL);
	case 2: return json_real((double)rnd(100000) / 7.0);
	case 3: return json_boolean(rnd(2));
	case 4: return json_null();
	case 5:
		v = json_array();
		for (unsigned i = rnd(4); i > 0; i--)
			json_array_append_new(v, random_value(depth + 1));
		return v;
	default:
		v = json_object();
		for (unsigned i = rnd(4); i > 0; i--) {
			char k[16];
			snprintf(k, sizeof k, "%s%u", rnd(2) ? "k<" : "k", rnd(100));
			json_object_set_new(v, k, random_value(depth + 1));
		}
		return v;
	}
}

/* Whatever the encoder writes, the parser reads back as its wire form. */
static void test_round_trip(void **state)
{
	(void)state;
	for (int i = 0; i < 2000; i++) {
		json_t *v = random_value(0), *want = wire_form(v);
		json_t *call = json_pack("[O]", v);
		char *x = xmlrpc_value(v, NULL), *doc = NULL;
		if (asprintf(&doc, "<methodCall><methodName>m</methodName><params><param>%s</param></params></methodCall>",
			     *x ? x : "<value></value>") < 0)
			fail();
		char *m = NULL;
		json_t *params = NULL, *err = NULL;
		assert_int_equal(xmlrpc_parse_call(doc, strlen(doc), &m, &params, &err), 0);
		json_t *w = json_pack("[O]", want);
		if (!json_equal(params, w)) {
			char *a = json_dumps(v, JSON_ENCODE_ANY), *b = json_dumps(params, 0);
			fail_msg("round trip of %s gave %s", a, b);
		}
		json_decref(w);
		json_decref(params);
		json_decref(call);
		free(m);
		free(doc);
		free(x);
		json_decref(want);
		json_decref(v);
	}
}

int main(void)
{
	util_json_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalars),
		cmocka_unit_test(test_double_round_trip),
		cmocka_unit_test(test_null),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_containers),
		cmocka_unit_test(test_big_value),
		cmocka_unit_test(test_typed_by_the_model),
		cmocka_unit_test(test_envelopes),
		cmocka_unit_test(test_parse_calls),
		cmocka_unit_test(test_parse_refusals),
		cmocka_unit_test(test_parse_refuses_dtds),
		cmocka_unit_test(test_parse_nesting_is_bounded),
		cmocka_unit_test(test_parse_value),
		cmocka_unit_test(test_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
