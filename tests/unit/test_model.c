/* test_model.c - unit tests for lib/model.c and the class tables in lib/model_classes.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "model.h"

static void test_classes_well_formed(void **state)
{
	(void)state;
	assert_true(model_nclasses > 0);
	for (size_t i = 0; i < model_nclasses; i++) {
		const struct model_class *c = &model_classes[i];
		assert_non_null(c->mc_name);
		assert_non_null(c->mc_cli);
		assert_true(c->mc_nfields > 0);
		/* every class has a uuid, a plain string */
		const struct model_field *u = model_field_find(c, "uuid");
		if (!u)
			fail_msg("class %s has no uuid", c->mc_name);
		assert_int_equal(u->fld_type, FT_STRING);
		/* class names and cli names are unique */
		for (size_t j = 0; j < i; j++) {
			assert_string_not_equal(c->mc_name, model_classes[j].mc_name);
			assert_string_not_equal(c->mc_cli, model_classes[j].mc_cli);
		}
		assert_ptr_equal(model_class_find(c->mc_name), c);
		assert_ptr_equal(model_class_by_cli(c->mc_cli), c);
		/* a named class has name_label and name_description */
		if (c->mc_name_label) {
			assert_non_null(model_field_find(c, "name_label"));
			assert_non_null(model_field_find(c, "name_description"));
		}
		for (size_t k = 0; k < c->mc_nfields; k++) {
			const struct model_field *f = &c->mc_fields[k];
			assert_non_null(f->fld_name);
			assert_true(f->fld_since >= 1 && f->fld_since <= model_schema_version());
			for (size_t m = 0; m < k; m++)
				if (strcmp(f->fld_name, c->mc_fields[m].fld_name) == 0)
					fail_msg("%s.%s declared twice", c->mc_name, f->fld_name);
			assert_ptr_equal(model_field_find(c, f->fld_name), f);
			if (f->fld_type == FT_ENUM)
				assert_true(f->fld_target && *f->fld_target);
			if (f->fld_dflt) {
				json_t *d = json_loads(f->fld_dflt, JSON_DECODE_ANY, NULL);
				if (!d)
					fail_msg("%s.%s: default %s is not JSON", c->mc_name, f->fld_name, f->fld_dflt);
				json_decref(d);
			}
		}
	}
	assert_null(model_field_find(model_class_find("VM"), "no_such_field"));
	assert_null(model_field_find(model_class_find("VM"), "UUID"));
}

static void test_new_record_complete_and_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < model_nclasses; i++) {
		const struct model_class *c = &model_classes[i];
		json_t *r = model_new_record(c);
		assert_true(json_is_object(r));
		assert_int_equal(json_object_size(r), c->mc_nfields);
		for (size_t k = 0; k < c->mc_nfields; k++) {
			const struct model_field *f = &c->mc_fields[k];
			json_t *v = json_object_get(r, f->fld_name);
			if (!v)
				fail_msg("%s record lacks %s", c->mc_name, f->fld_name);
			if (!model_value_ok(f, v)) {
				char *t = json_dumps(v, JSON_ENCODE_ANY);
				fail_msg("%s.%s default %s fails model_value_ok", c->mc_name, f->fld_name, t);
			}
			json_t *d = model_default(f);
			assert_true(json_equal(d, v));
			json_decref(d);
		}
		json_decref(r);
	}
}

static void test_some_defaults(void **state)
{
	(void)state;
	const struct model_class *vm = model_class_find("VM");
	json_t *r = model_new_record(vm);
	assert_string_equal(json_string_value(json_object_get(r, "power_state")), "Halted");
	assert_int_equal(json_integer_value(json_object_get(r, "user_version")), 1);
	assert_int_equal(json_integer_value(json_object_get(r, "domid")), -1);
	assert_string_equal(json_string_value(json_object_get(r, "resident_on")), MODEL_NULL_REF);
	assert_true(json_is_array(json_object_get(r, "VBDs")));
	assert_true(json_is_object(json_object_get(r, "other_config")));
	assert_true(json_is_real(json_object_get(r, "HVM_shadow_multiplier")));
	assert_string_equal(json_string_value(json_object_get(r, "snapshot_time")), "19700101T00:00:00Z");
	assert_string_equal(json_string_value(json_object_get(r, "name_label")), "");
	assert_true(json_is_true(json_object_get(r, "has_vendor_device")));
	json_decref(r);

	r = model_new_record(model_class_find("task"));
	assert_string_equal(json_string_value(json_object_get(r, "status")), "pending");
	assert_string_equal(json_string_value(json_object_get(r, "backtrace")), "()");
	assert_string_equal(json_string_value(json_object_get(r, "result")), "");
	assert_true(json_is_real(json_object_get(r, "progress")));
	json_decref(r);
}

static void test_setref_pairs(void **state)
{
	(void)state;
	int pairs = 0;
	for (size_t i = 0; i < model_nclasses; i++) {
		const struct model_class *c = &model_classes[i];
		for (size_t k = 0; k < c->mc_nfields; k++) {
			const struct model_field *f = &c->mc_fields[k];
			if (f->fld_type != FT_SET_REF || !f->fld_inverse)
				continue;
			assert_non_null(f->fld_target);
			const struct model_class *t = model_class_find(f->fld_target);
			if (!t)
				fail_msg("%s.%s: target class %s unknown", c->mc_name, f->fld_name, f->fld_target);
			const struct model_field *inv = model_field_find(t, f->fld_inverse);
			if (!inv)
				fail_msg("%s.%s: %s.%s missing", c->mc_name, f->fld_name, t->mc_name, f->fld_inverse);
			if (inv->fld_type != FT_REF || !inv->fld_target || strcmp(inv->fld_target, c->mc_name))
				fail_msg("%s.%s: inverse %s.%s is not a ref to %s", c->mc_name, f->fld_name,
					 t->mc_name, inv->fld_name, c->mc_name);
			/* reverse sets are maintained by poold: not writable */
			assert_int_equal(f->fld_qual, QUAL_RO_RUN);
			pairs++;
		}
	}
	assert_true(pairs >= 5);
	/* the pairs clients rely on */
	const struct model_field *f = model_field_find(model_class_find("VM"), "VBDs");
	assert_int_equal(f->fld_type, FT_SET_REF);
	assert_string_equal(f->fld_target, "VBD");
	assert_string_equal(f->fld_inverse, "VM");
	f = model_field_find(model_class_find("SR"), "VDIs");
	assert_string_equal(f->fld_target, "VDI");
	assert_string_equal(f->fld_inverse, "SR");
}

static void test_ref_targets_plausible(void **state)
{
	(void)state;
	/* a FT_REF whose target class is served must name it exactly */
	for (size_t i = 0; i < model_nclasses; i++) {
		const struct model_class *c = &model_classes[i];
		for (size_t k = 0; k < c->mc_nfields; k++) {
			const struct model_field *f = &c->mc_fields[k];
			if (f->fld_type != FT_REF)
				continue;
			assert_non_null(f->fld_target);
			const struct model_class *t = model_class_find_ci(f->fld_target);
			if (t && strcmp(t->mc_name, f->fld_target))
				fail_msg("%s.%s targets %s, the class is spelled %s", c->mc_name, f->fld_name,
					 f->fld_target, t->mc_name);
		}
	}
}

static void check_value(const struct model_field *f, const char *json, bool ok)
{
	json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
	assert_non_null(v);
	bool got = model_value_ok(f, v);
	json_decref(v);
	if (got != ok)
		fail_msg("field %s (type %d): %s should be %s", f->fld_name, f->fld_type, json,
			 ok ? "accepted" : "rejected");
}

static void test_value_ok_types(void **state)
{
	(void)state;
	const struct model_field fs = {"s", FT_STRING, QUAL_RW, NULL, NULL, NULL, 1};
	check_value(&fs, "\"x\"", true);
	check_value(&fs, "\"\"", true);
	check_value(&fs, "1", false);
	check_value(&fs, "null", false);
	check_value(&fs, "[\"x\"]", false);
	check_value(&fs, "true", false);

	const struct model_field fi = {"i", FT_INT, QUAL_RW, NULL, NULL, NULL, 1};
	check_value(&fi, "1", true);
	check_value(&fi, "-9223372036854775808", true);
	check_value(&fi, "\"1\"", false);
	check_value(&fi, "1.5", false);
	check_value(&fi, "true", false);
	check_value(&fi, "null", false);

	const struct model_field ff = {"f", FT_FLOAT, QUAL_RW, NULL, NULL, NULL, 1};
	check_value(&ff, "1.5", true);
	check_value(&ff, "1", true);
	check_value(&ff, "\"1.5\"", false);
	check_value(&ff, "false", false);

	const struct model_field fb = {"b", FT_BOOL, QUAL_RW, NULL, NULL, NULL, 1};
	check_value(&fb, "true", true);
	check_value(&fb, "false", true);
	check_value(&fb, "\"true\"", false);
	check_value(&fb, "0", false);
	check_value(&fb, "null", false);

	const struct model_field fd = {"d", FT_DATETIME, QUAL_RW, NULL, NULL, NULL, 1};
	check_value(&fd, "\"20261123T04:58:14Z\"", true);
	check_value(&fd, "\"19700101T00:00:00Z\"", true);
	check_value(&fd, "\"20261123T04:58:14\"", true);
	check_value(&fd, "\"garbage\"", false);
	check_value(&fd, "\"\"", false);
	check_value(&fd, "\"20261123\"", false);
	check_value(&fd, "\"20261123T04:58\"", false);
	check_value(&fd, "\"2026/11/23 04:58:14\"", false);
	check_value(&fd, "\"T04:58:14Z\"", false);
	check_value(&fd, "1700000000", false);
	check_value(&fd, "null", false);

	const struct model_field fe = {"e", FT_ENUM, QUAL_RW, "Halted|Paused|Running|Suspended", NULL, NULL, 1};
	check_value(&fe, "\"Halted\"", true);
	check_value(&fe, "\"Suspended\"", true);
	check_value(&fe, "\"Running\"", true);
	check_value(&fe, "\"halted\"", false);
	check_value(&fe, "\"Halt\"", false);
	check_value(&fe, "\"Haltedx\"", false);
	check_value(&fe, "\"\"", false);
	check_value(&fe, "\"Halted|Paused\"", false);
	check_value(&fe, "\"|\"", false);
	check_value(&fe, "0", false);

	const struct model_field fr = {"r", FT_REF, QUAL_RW, "VM", NULL, NULL, 1};
	check_value(&fr, "\"OpaqueRef:1c2d\"", true);
	check_value(&fr, "\"OpaqueRef:NULL\"", true);
	check_value(&fr, "\"OpaqueRef:\"", false);
	check_value(&fr, "\"opaqueref:abc\"", false);
	check_value(&fr, "\"1c2d\"", false);
	check_value(&fr, "\"\"", false);
	check_value(&fr, "null", false);
	check_value(&fr, "[\"OpaqueRef:a\"]", false);

	const struct model_field fsr = {"sr", FT_SET_REF, QUAL_RO_RUN, "VBD", NULL, NULL, 1};
	check_value(&fsr, "[]", true);
	check_value(&fsr, "[\"OpaqueRef:a\",\"OpaqueRef:b\"]", true);
	check_value(&fsr, "[\"OpaqueRef:a\",\"b\"]", false);
	check_value(&fsr, "[\"OpaqueRef:a\",1]", false);
	check_value(&fsr, "\"OpaqueRef:a\"", false);
	check_value(&fsr, "{}", false);

	const struct model_field fss = {"ss", FT_SET_STRING, QUAL_RW, NULL, NULL, NULL, 1};
	check_value(&fss, "[]", true);
	check_value(&fss, "[\"a\",\"\"]", true);
	check_value(&fss, "[\"a\",1]", false);
	check_value(&fss, "[null]", false);
	check_value(&fss, "\"a\"", false);

	const struct model_field fm = {"m", FT_MAP, QUAL_RW, NULL, NULL, NULL, 1};
	check_value(&fm, "{}", true);
	check_value(&fm, "{\"a\":\"b\",\"c\":\"\"}", true);
	check_value(&fm, "{\"a\":1}", false);
	check_value(&fm, "{\"a\":\"b\",\"c\":{\"d\":\"e\"}}", false);
	check_value(&fm, "{\"a\":null}", false);
	check_value(&fm, "[]", false);
	check_value(&fm, "\"{}\"", false);

	const struct model_field fma = {"ma", FT_MAP_ANY, QUAL_RO_RUN, NULL, NULL, NULL, 1};
	check_value(&fma, "{}", true);
	check_value(&fma, "{\"a\":1,\"b\":[true],\"c\":{\"d\":null}}", true);
	check_value(&fma, "[]", false);
	check_value(&fma, "\"x\"", false);

	/* NULL is never a value */
	const struct model_field *all[] = {&fs, &fi, &ff, &fb, &fd, &fe, &fr, &fsr, &fss, &fm, &fma};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		assert_false(model_value_ok(all[i], NULL));
}

static void test_value_ok_real_fields(void **state)
{
	(void)state;
	const struct model_class *vm = model_class_find("VM");
	check_value(model_field_find(vm, "power_state"), "\"Running\"", true);
	check_value(model_field_find(vm, "power_state"), "\"running\"", false);
	check_value(model_field_find(vm, "VCPUs_max"), "\"4\"", false);
	check_value(model_field_find(vm, "VBDs"), "[\"vbd\"]", false);
	check_value(model_field_find(vm, "other_config"), "{\"k\":5}", false);
	check_value(model_field_find(vm, "blocked_operations"), "{\"start\":\"no\"}", true);
	const struct model_class *vbd = model_class_find("VBD");
	check_value(model_field_find(vbd, "mode"), "\"RO\"", true);
	check_value(model_field_find(vbd, "mode"), "\"ro\"", false);
	check_value(model_field_find(vbd, "type"), "\"CD\"", true);
	check_value(model_field_find(vbd, "type"), "\"DVD\"", false);
	check_value(model_field_find(vbd, "VM"), "\"OpaqueRef:x\"", true);
	check_value(model_field_find(model_class_find("task"), "status"), "\"cancelled\"", true);
	check_value(model_field_find(model_class_find("task"), "status"), "\"canceled\"", false);
}

static void test_is_uuid(void **state)
{
	(void)state;
	assert_true(model_is_uuid("0b4a1c1e-1111-4222-8333-444455556666"));
	assert_true(model_is_uuid("0B4A1C1E-ABCD-4EF0-8333-444455556666"));
	assert_true(model_is_uuid("00000000-0000-0000-0000-000000000000"));
	assert_false(model_is_uuid(""));
	assert_false(model_is_uuid("0b4a1c1e-1111-4222-8333-44445555666"));   /* short */
	assert_false(model_is_uuid("0b4a1c1e-1111-4222-8333-4444555566667")); /* long */
	assert_false(model_is_uuid("0b4a1c1e11114222833344445555666600000")); /* no dashes */
	assert_false(model_is_uuid("0b4a1c1e-1111-4222-8333_444455556666"));
	assert_false(model_is_uuid("0b4a1c1-e1111-4222-8333-444455556666"));  /* dash misplaced */
	assert_false(model_is_uuid("0b4a1c1g-1111-4222-8333-444455556666"));  /* not hex */
	assert_false(model_is_uuid("0b4a1c1e-1111-4222-8333-44445555666 "));
	assert_false(model_is_uuid("OpaqueRef:0b4a1c1e-1111-4222-8333-4444"));
	assert_false(model_is_uuid("{b4a1c1e-1111-4222-8333-444455556666}"));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static void check_uuid_v4(const char *u)
{
	assert_int_equal(strlen(u), 36);
	assert_true(model_is_uuid(u));
	assert_int_equal(u[14], '4');
	assert_non_null(strchr("89ab", u[19]));
	for (const char *c = u; *c; c++)
		assert_true(*c == '-' || (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'));
}

#define DRAWS 10000

static void test_uuid_and_ref_unique(void **state)
{
	(void)state;
	char (*u)[48] = calloc(DRAWS, 48);
	char (*r)[48] = calloc(DRAWS, 48);
	assert_non_null(u);
	assert_non_null(r);
	for (int i = 0; i < DRAWS; i++) {
		model_new_uuid(u[i]);
		check_uuid_v4(u[i]);
		model_new_ref(r[i]);
		assert_int_equal(strlen(r[i]), 46);
		assert_memory_equal(r[i], "OpaqueRef:", 10);
		check_uuid_v4(r[i] + 10);
		assert_string_not_equal(r[i], MODEL_NULL_REF);
	}
	qsort(u, DRAWS, 48, cmp_str);
	qsort(r, DRAWS, 48, cmp_str);
	for (int i = 1; i < DRAWS; i++) {
		assert_string_not_equal(u[i - 1], u[i]);
		assert_string_not_equal(r[i - 1], r[i]);
	}
	free(u);
	free(r);
}

static void test_now(void **state)
{
	(void)state;
	char buf[32];
	memset(buf, 'x', sizeof buf);
	time_t before = time(NULL);
	model_now(buf);
	time_t after = time(NULL);
	assert_int_equal(strlen(buf), 18);
	/* YYYYMMDDTHH:MM:SSZ */
	for (int i = 0; i < 18; i++) {
		char c = buf[i];
		if (i == 8)
			assert_int_equal(c, 'T');
		else if (i == 11 || i == 14)
			assert_int_equal(c, ':');
		else if (i == 17)
			assert_int_equal(c, 'Z');
		else
			assert_true(c >= '0' && c <= '9');
	}
	struct tm tm = {0};
	assert_non_null(strptime(buf, "%Y%m%dT%H:%M:%SZ", &tm));
	time_t t = timegm(&tm);
	assert_true(t >= before && t <= after);
	/* it is a valid datetime for the model */
	const struct model_field fd = {"d", FT_DATETIME, QUAL_RW, NULL, NULL, NULL, 1};
	json_t *v = json_string(buf);
	assert_true(model_value_ok(&fd, v));
	json_decref(v);
}

static void test_class_lookups(void **state)
{
	(void)state;
	const struct model_class *vm = model_class_find("VM");
	assert_non_null(vm);
	assert_string_equal(vm->mc_name, "VM");
	assert_null(model_class_find("vm")); /* exact */
	assert_ptr_equal(model_class_find_ci("vm"), vm);
	assert_ptr_equal(model_class_find_ci("Vm"), vm);
	assert_ptr_equal(model_class_find_ci("VM"), vm);
	assert_ptr_equal(model_class_find_ci("vm_metrics"), model_class_find("VM_metrics"));
	assert_ptr_equal(model_class_find_ci("sr"), model_class_find("SR"));
	assert_ptr_equal(model_class_find_ci("POOL"), model_class_find("pool"));
	assert_null(model_class_find_ci("vms"));
	assert_null(model_class_find_ci(""));
	assert_null(model_class_find(""));
	assert_null(model_class_find("Nope"));

	const struct model_class *vdi = model_class_by_cli("vdi");
	assert_non_null(vdi);
	assert_string_equal(vdi->mc_name, "VDI");
	assert_string_equal(model_class_by_cli("vm")->mc_name, "VM");
	assert_string_equal(model_class_by_cli("host-metrics")->mc_name, "host_metrics");
	assert_string_equal(model_class_by_cli("vm-metrics")->mc_name, "VM_metrics");
	assert_null(model_class_by_cli("VDI"));
	assert_null(model_class_by_cli("host_metrics"));
	assert_null(model_class_by_cli(""));
}

static void test_schema_version(void **state)
{
	(void)state;
	int v = model_schema_version();
	assert_true(v >= 1);
	int maxv = 1;
	for (size_t i = 0; i < model_nclasses; i++)
		for (size_t k = 0; k < model_classes[i].mc_nfields; k++)
			if (model_classes[i].mc_fields[k].fld_since > maxv)
				maxv = model_classes[i].mc_fields[k].fld_since;
	assert_int_equal(v, maxv);
}

/* Arguments read as XAPI reads them: int64 and floats given as text. */
static void test_coerce(void **state)
{
	(void)state;
	const struct model_class *vm = model_class_find("VM");
	const struct model_field *mem = model_field_find(vm, "memory_static_max"),
				 *mult = model_field_find(vm, "HVM_shadow_multiplier"),
				 *name = model_field_find(vm, "name_label");
	const struct {
		const struct model_field *f;
		const char *in, *out;
	} cases[] = {
		{mem, "\"1073741824\"", "1073741824"},
		{mem, "\"-5\"", "-5"},
		{mem, "\"9223372036854775807\"", "9223372036854775807"},
		{mem, "\"9223372036854775808\"", "\"9223372036854775808\""}, /* out of range: left for the check */
		{mem, "\"12abc\"", "\"12abc\""},
		{mem, "\"\"", "\"\""},
		{mem, "7", "7"},
		{mem, "true", "true"},
		{mult, "\"1.5\"", "1.5"},
		{mult, "2", "2.0"},
		{mult, "\"nan\"", "\"nan\""},
		{mult, "\"x\"", "\"x\""},
		{name, "\"123\"", "\"123\""}, /* a string field keeps its digits */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *in = json_loads(cases[i].in, JSON_DECODE_ANY, NULL), *want = json_loads(cases[i].out, JSON_DECODE_ANY, NULL);
		json_t *got = model_coerce(cases[i].f, in);
		if (!json_equal(got, want) || json_typeof(got) != json_typeof(want))
			fail_msg("model_coerce(%s, %s) is not %s", cases[i].f->fld_name, cases[i].in, cases[i].out);
		json_decref(got);
		json_decref(in);
		json_decref(want);
	}
	json_t *rec = json_pack("{s:s, s:s, s:s, s:{s:s}}", "memory_static_max", "1024", "name_label", "42", "nosuch", "7",
				"other_config", "a", "1");
	model_record_coerce(vm, rec);
	json_t *want = json_pack("{s:I, s:s, s:s, s:{s:s}}", "memory_static_max", (json_int_t)1024, "name_label", "42",
				 "nosuch", "7", "other_config", "a", "1");
	assert_true(json_equal(rec, want));
	json_decref(rec);
	json_decref(want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classes_well_formed),
		cmocka_unit_test(test_new_record_complete_and_valid),
		cmocka_unit_test(test_some_defaults),
		cmocka_unit_test(test_setref_pairs),
		cmocka_unit_test(test_ref_targets_plausible),
		cmocka_unit_test(test_value_ok_types),
		cmocka_unit_test(test_value_ok_real_fields),
		cmocka_unit_test(test_is_uuid),
		cmocka_unit_test(test_uuid_and_ref_unique),
		cmocka_unit_test(test_now),
		cmocka_unit_test(test_class_lookups),
		cmocka_unit_test(test_schema_version),
		cmocka_unit_test(test_coerce),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
