/* test_agent_proto.c - the poold <-> agent protocol table (lib/agent_proto.c)
 * and the domain configuration's wire form (lib/domain_config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "agent_proto.h"
#include "xerr.h"

static void expect_err(json_t *e, const char *code, const char *p1)
{
	assert_non_null(e);
	assert_string_equal(xerr_code_of(e), code);
	if (p1)
		assert_string_equal(json_string_value(json_array_get(e, 1)), p1);
	json_decref(e);
}

static struct be_domain_config sample(void)
{
	struct be_domain_config c;
	memset(&c, 0, sizeof c);
	snprintf(c.dc_uuid, sizeof c.dc_uuid, "11111111-2222-3333-4444-555555555555");
	snprintf(c.dc_name, sizeof c.dc_name, "web1");
	c.dc_memory = 256 << 20;
	c.dc_vcpus = 2;
	snprintf(c.dc_cpu_vendor, sizeof c.dc_cpu_vendor, "AuthenticAMD");
	snprintf(c.dc_featureset, sizeof c.dc_featureset, "1fcbfbff-f7fa3223");
	snprintf(c.dc_guest_type, sizeof c.dc_guest_type, "pvh");
	c.dc_start_paused = true;
	c.dc_ndisks = 2;
	snprintf(c.dc_disks[0].bd_vdi_uuid, BE_UUID_LEN, "aaaa");
	snprintf(c.dc_disks[0].bd_sr_uuid, BE_UUID_LEN, "srsr");
	snprintf(c.dc_disks[0].bd_device, sizeof c.dc_disks[0].bd_device, "0");
	snprintf(c.dc_disks[0].bd_path, sizeof c.dc_disks[0].bd_path, "/etc/shadow");
	snprintf(c.dc_disks[1].bd_vdi_uuid, BE_UUID_LEN, "bbbb");
	snprintf(c.dc_disks[1].bd_sr_uuid, BE_UUID_LEN, "srsr");
	snprintf(c.dc_disks[1].bd_device, sizeof c.dc_disks[1].bd_device, "3");
	c.dc_disks[1].bd_readonly = true;
	c.dc_workload = (struct be_workload){100, 2000, 50, 30, 50, 20, 4096, false, 10};
	return c;
}

static void test_table(void **state)
{
	(void)state;
	for (int i = 0; i < AGENT_NMETHODS; i++) {
		const struct aproto_method *m = aproto_method((enum agent_method)i);
		assert_non_null(m);
		assert_int_equal(m->am_id, i);
		assert_memory_equal(m->am_name, "agent.", 6);
		assert_ptr_equal(aproto_find(m->am_name), m);
		for (size_t p = 0; p < m->am_nparams; p++)
			assert_true(m->am_params[p].ap_name[0]);
	}
	assert_null(aproto_find("agent.nonesuch"));
	assert_null(aproto_find(NULL));
	const struct aproto_method *sd = aproto_method(AGENT_VM_SHUTDOWN);
	assert_int_equal(sd->am_nparams, 2);
	assert_string_equal(sd->am_params[1].ap_name, "hard");
	assert_int_equal(sd->am_params[1].ap_type, AP_BOOL);
	assert_true(aproto_method(AGENT_MIGRATE_SEND)->am_later);
	assert_false(aproto_method(AGENT_REPORT)->am_later);
	assert_int_equal(aproto_method(AGENT_REPORT)->am_nparams, 0);
}

static void test_check(void **state)
{
	(void)state;
	const struct aproto_method *sd = aproto_method(AGENT_VM_SHUTDOWN);
	json_t *ok = json_pack("[s,b]", "uuid", 1);
	assert_null(aproto_check(sd, ok));
	json_decref(ok);
	json_t *few = json_pack("[s]", "uuid");
	json_t *e = aproto_check(sd, few);
	assert_string_equal(xerr_code_of(e), "MESSAGE_PARAMETER_COUNT_MISMATCH");
	assert_string_equal(json_string_value(json_array_get(e, 2)), "2");
	assert_string_equal(json_string_value(json_array_get(e, 3)), "1");
	json_decref(e);
	json_decref(few);
	json_t *typed = json_pack("[s,s]", "uuid", "yes");
	expect_err(aproto_check(sd, typed), "FIELD_TYPE_ERROR", "hard");
	json_decref(typed);
	expect_err(aproto_check(sd, NULL), "MESSAGE_PARAMETER_COUNT_MISMATCH", "agent.vm_shutdown");
	/* a domain config is checked as one, whole */
	const struct aproto_method *st = aproto_method(AGENT_VM_START);
	json_t *bad = json_pack("[{s:s}]", "uuid", "x");
	expect_err(aproto_check(st, bad), "INVALID_VALUE", "config");
	json_decref(bad);
	struct be_domain_config c = sample();
	json_t *good = json_pack("[o]", dcfg_to_json(&c));
	assert_null(aproto_check(st, good));
	json_decref(good);
}

static void test_callers(void **state)
{
	(void)state;
	const struct aproto_method *st = aproto_method(AGENT_VM_START);
	assert_true(aproto_caller_allowed(st, "pool-master"));
	assert_false(aproto_caller_allowed(st, "master.pool.example"));
	assert_false(aproto_caller_allowed(st, "pool-master2"));
	/* a host's certificate (its uuid as CN) drives no agent */
	assert_false(aproto_caller_allowed(st, "0b5f9c3e-1111-4222-8333-444455556666"));
	assert_false(aproto_caller_allowed(st, "0B5F9C3E-1111-4222-8333-444455556666"));
	assert_false(aproto_caller_allowed(st, ""));
	assert_false(aproto_caller_allowed(st, NULL));
	assert_false(aproto_peer_is_master("0b5f9c3e-1111-4222-8333-44445555666"));
}

static void test_config_round_trip(void **state)
{
	(void)state;
	struct be_domain_config c = sample(), back;
	json_t *j = dcfg_to_json(&c);
	/* no path leaves poold: the agent finds the file in its plugged SR */
	assert_null(json_object_get(json_array_get(json_object_get(j, "disks"), 0), "path"));
	assert_null(dcfg_from_json(j, &back));
	json_decref(j);
	memset(c.dc_disks[0].bd_path, 0, sizeof c.dc_disks[0].bd_path);
	assert_memory_equal(&c, &back, sizeof c);
}

static void refuse(const char *why, json_t *j)
{
	struct be_domain_config c;
	json_t *e = dcfg_from_json(j, &c);
	if (!e)
		fail_msg("accepted: %s", why);
	json_decref(e);
	json_decref(j);
}

static void test_config_refusals(void **state)
{
	(void)state;
	struct be_domain_config c = sample();
	json_t *base = dcfg_to_json(&c);
	struct {
		const char *why, *key;
		json_t *value;
	} cases[] = {
		{"no uuid", "uuid", json_string("")},
		{"no memory", "memory", json_integer(0)},
		{"negative memory", "memory", json_integer(-1)},
		{"no vcpu", "vcpus", json_integer(0)},
		{"vcpus as text", "vcpus", json_string("2")},
		{"a name too long", "name", json_string("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
							"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")},
		{"paused as text", "start_paused", json_string("true")},
		{"disks not a list", "disks", json_object()},
		{"a disk without SR", "disks", json_pack("[{s:s, s:s}]", "vdi_uuid", "a", "device", "0")},
		{"a disk as a path", "disks", json_pack("[{s:s}]", "path", "/etc/shadow")},
		{"nine disks", "disks", json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s},"
						  "{s:s,s:s},{s:s,s:s},{s:s,s:s}]",
						  "vdi_uuid", "1", "sr", "s", "vdi_uuid", "2", "sr", "s", "vdi_uuid", "3",
						  "sr", "s", "vdi_uuid", "4", "sr", "s", "vdi_uuid", "5", "sr", "s",
						  "vdi_uuid", "6", "sr", "s", "vdi_uuid", "7", "sr", "s", "vdi_uuid", "8",
						  "sr", "s", "vdi_uuid", "9", "sr", "s")},
		{"a percentage over 100", "workload", json_pack("{s:i}", "pct_zero", 101)},
		{"a negative rate", "workload", json_pack("{s:i}", "dirty_pages_per_s", -5)},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *j = json_deep_copy(base);
		json_object_set_new(j, cases[i].key, cases[i].value);
		refuse(cases[i].why, j);
	}
	refuse("not an object", json_string("x"));
	json_decref(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),		 cmocka_unit_test(test_check),
		cmocka_unit_test(test_callers),		 cmocka_unit_test(test_config_round_trip),
		cmocka_unit_test(test_config_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
