/* test_xmlrpc.c - unit tests for lib/xmlrpc.c (XML-RPC text of task results). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "xmlrpc.h"

/* xmlrpc_value of the JSON text j equals want. */
static void expect_xml(const char *j, const char *want)
{
	json_error_t je;
	json_t *v = json_loads(j, JSON_DECODE_ANY, &je);
	if (!v)
		fail_msg("bad test JSON %s: %s", j, je.text);
	char *x = xmlrpc_value(v);
	assert_non_null(x);
	if (strcmp(x, want) != 0)
		fail_msg("xmlrpc_value(%s)\n  got  %s\n  want %s", j, x, want);
	free(x);
	json_decref(v);
}

static void test_scalars(void **state)
{
	(void)state;
	expect_xml("\"OpaqueRef:0b4a1c1e-1111-2222-3333-444455556666\"",
		   "<value>OpaqueRef:0b4a1c1e-1111-2222-3333-444455556666</value>");
	/* void: the empty string */
	expect_xml("\"\"", "<value></value>");
	expect_xml("\"plain text\"", "<value>plain text</value>");
	/* ints are untyped (XAPI emits no <i8>) */
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
		char *x = xmlrpc_value(v);
		double back = 0;
		assert_int_equal(sscanf(x, "<value><double>%lf</double></value>", &back), 1);
		assert_true(back == ds[i]);
		free(x);
		json_decref(v);
	}
}

static void test_null(void **state)
{
	(void)state;
	char *x = xmlrpc_value(NULL);
	assert_non_null(x);
	assert_string_equal(x, "");
	free(x);
	json_t *n = json_null();
	x = xmlrpc_value(n);
	assert_string_equal(x, "");
	free(x);
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
	/* null inside a container is an empty value */
	expect_xml("[null]", "<value><array><data><value></value></data></array></value>");
}

static void test_big_value(void **state)
{
	(void)state;
	/* forces the buffer to grow many times */
	json_t *a = json_array();
	for (int i = 0; i < 20000; i++)
		json_array_append_new(a, json_string("<&>"));
	char *x = xmlrpc_value(a);
	assert_non_null(x);
	size_t per = strlen("<value>&lt;&amp;&gt;</value>");
	assert_int_equal(strlen(x), strlen("<value><array><data></data></array></value>") + 20000 * per);
	assert_memory_equal(x, "<value><array><data><value>&lt;&amp;&gt;</value>", 48);
	free(x);
	json_decref(a);
}

static void check_string(const char *text, const char *want)
{
	char *s = xmlrpc_string(text);
	char got[256];
	snprintf(got, sizeof got, "%s", s ? s : "(NULL)");
	bool same = want ? (s && strcmp(s, want) == 0) : !s;
	free(s);
	if (!same)
		fail_msg("xmlrpc_string(%s) = \"%s\", want \"%s\"", text, got, want ? want : "(NULL)");
}

static void test_parse_string(void **state)
{
	(void)state;
	check_string("<value>OpaqueRef:x</value>", "OpaqueRef:x");
	check_string("<value><string>a&amp;b</string></value>", "a&b");
	check_string("<value></value>", "");
	check_string("<value><string></string></value>", "");
	check_string("<value>&lt;&gt;&amp;&quot;&apos;</value>", "<>&\"'");
	/* an unknown entity is kept as written */
	check_string("<value>a&nbsp;b</value>", "a&nbsp;b");
	check_string("<value>a & b</value>", "a & b");
	/* surrounding text (as in a whole XML-RPC response) is skipped */
	check_string("<?xml version=\"1.0\"?><value>OpaqueRef:y</value>\n", "OpaqueRef:y");
}

static void test_parse_rejects(void **state)
{
	(void)state;
	check_string("", NULL);
	check_string("OpaqueRef:x", NULL);
	check_string("<string>x</string>", NULL);
	check_string("<valu>x</valu>", NULL);
	check_string("<value>unterminated", NULL);
}

static void test_parse_rejects_non_strings(void **state)
{
	(void)state;
	/* xmlrpc.h: NULL when the text is not a simple string value */
	check_string("<value><array><data><value>x</value></data></array></value>", NULL);
	check_string("<value><struct><member><name>k</name><value>v</value></member></struct></value>", NULL);
	check_string("<value><boolean>1</boolean></value>", NULL);
	check_string("<value><string>x</value>", NULL);
}

static void test_round_trip(void **state)
{
	(void)state;
	const char *ss[] = {"", "OpaqueRef:NULL", "a<b>c&d\"e'f", "&amp;&lt;", "tab\tnewline\n", "caf\xc3\xa9"};
	for (size_t i = 0; i < sizeof ss / sizeof ss[0]; i++) {
		json_t *v = json_string(ss[i]);
		char *x = xmlrpc_value(v);
		check_string(x, ss[i]);
		free(x);
		json_decref(v);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalars),
		cmocka_unit_test(test_double_round_trip),
		cmocka_unit_test(test_null),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_containers),
		cmocka_unit_test(test_big_value),
		cmocka_unit_test(test_parse_string),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_parse_rejects_non_strings),
		cmocka_unit_test(test_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
