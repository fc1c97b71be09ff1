/* test_vm_rules.c - the pure VM rules (poold/vm_rules.c): the suspend
 * SR's order, free device numbers, the live balloon target, the live vCPU
 * bound, the records of a snapshot and of a revert, the <provision> XML;
 * and the sim suspend image's trailer check (agent/sim_save.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "sim_save.h"
#include "vm_rules.h"
#include "xerr.h"

static void test_suspend_sr_order(void **state)
{
	(void)state;
	json_t *plugged = json_pack("[s, s]", "OpaqueRef:pool", "OpaqueRef:dflt");
	const char *want[4] = {"OpaqueRef:NULL", "OpaqueRef:pool", "", "OpaqueRef:dflt"};
	assert_string_equal(vm_suspend_sr_choose(want, 4, plugged), "OpaqueRef:pool");
	want[0] = "OpaqueRef:vm"; /* the VM's own, but not plugged on its host */
	assert_string_equal(vm_suspend_sr_choose(want, 4, plugged), "OpaqueRef:pool");
	json_array_append_new(plugged, json_string("OpaqueRef:vm"));
	assert_string_equal(vm_suspend_sr_choose(want, 4, plugged), "OpaqueRef:vm");
	const char *none[2] = {"OpaqueRef:NULL", "OpaqueRef:other"};
	assert_null(vm_suspend_sr_choose(none, 2, plugged));
	json_decref(plugged);
}

static void test_devices(void **state)
{
	(void)state;
	json_t *used = json_pack("[s, s, s]", "0", "2", "xvdz");
	json_t *a = vm_allowed_devices(used, 0, VM_VIF_DEVICES_MAX);
	assert_int_equal(json_array_size(a), 14);
	assert_string_equal(json_string_value(json_array_get(a, 0)), "1");
	assert_string_equal(json_string_value(json_array_get(a, 1)), "3");
	assert_string_equal(json_string_value(json_array_get(a, 13)), "15");
	json_decref(a);
	a = vm_allowed_devices(used, 0, VM_VBD_DEVICES_MAX);
	assert_int_equal(json_array_size(a), 253);
	json_decref(a);
	json_decref(used);
}

static void test_live_target(void **state)
{
	(void)state;
	json_int_t t;
	json_t *e = vm_live_target(100, 400, 200, 1000, &t); /* room: up to max */
	assert_null(e);
	assert_int_equal(t, 400);
	assert_null(vm_live_target(100, 400, 200, 50, &t)); /* as far as the host has room */
	assert_int_equal(t, 250);
	assert_null(vm_live_target(100, 150, 200, 0, &t)); /* giving back needs no room */
	assert_int_equal(t, 150);
	e = vm_live_target(300, 400, 200, 50, &t); /* not even min fits */
	assert_non_null(e);
	assert_string_equal(xerr_code_of(e), "HOST_NOT_ENOUGH_FREE_MEMORY");
	assert_string_equal(json_string_value(json_array_get(e, 1)), "100");
	assert_string_equal(json_string_value(json_array_get(e, 2)), "50");
	json_decref(e);
	e = vm_live_target(300, 400, 200, -5, &t);
	assert_string_equal(json_string_value(json_array_get(e, 2)), "0");
	json_decref(e);
}

static void test_vcpus(void **state)
{
	(void)state;
	assert_null(vm_vcpus_live_check(1, 4));
	assert_null(vm_vcpus_live_check(4, 4));
	json_int_t bad[] = {0, -1, 5};
	for (size_t i = 0; i < 3; i++) {
		json_t *e = vm_vcpus_live_check(bad[i], 4);
		assert_string_equal(xerr_code_of(e), "INVALID_VALUE");
		json_decref(e);
	}
}

static void test_snapshot_and_revert_records(void **state)
{
	(void)state;
	json_t *vm = json_pack("{s:s, s:s, s:s, s:s, s:[s], s:{s:s}, s:s, s:I, s:s, s:{s:s}, s:b}", "uuid", "u",
			       "name_label", "web", "power_state", "Running", "resident_on", "OpaqueRef:h", "VBDs",
			       "OpaqueRef:b", "other_config", "default_template", "true", "parent", "OpaqueRef:p0",
			       "memory_static_max", (json_int_t)1024, "suspend_VDI", "OpaqueRef:img", "platform",
			       "acpi", "1", "is_a_template", 0);
	json_t *s = vm_snapshot_record(vm, "OpaqueRef:vm", "web-1", "20260101T00:00:00Z", "Halted");
	assert_true(json_is_true(json_object_get(s, "is_a_snapshot")));
	assert_true(json_is_true(json_object_get(s, "is_a_template")));
	assert_string_equal(json_string_value(json_object_get(s, "snapshot_of")), "OpaqueRef:vm");
	assert_string_equal(json_string_value(json_object_get(s, "name_label")), "web-1");
	assert_string_equal(json_string_value(json_object_get(s, "power_state")), "Halted");
	assert_string_equal(json_string_value(json_object_get(s, "parent")), "OpaqueRef:p0");
	assert_string_equal(json_string_value(json_object_get(json_object_get(s, "snapshot_info"),
							      "power-state-at-snapshot")),
			    "Running");
	assert_null(json_object_get(s, "uuid"));
	assert_null(json_object_get(s, "resident_on"));
	assert_null(json_object_get(s, "VBDs"));
	assert_null(json_object_get(s, "suspend_VDI"));
	assert_null(json_object_get(json_object_get(s, "other_config"), "default_template"));
	assert_int_equal(json_integer_value(json_object_get(s, "memory_static_max")), 1024);
	/* the VM's record is not touched */
	assert_string_equal(json_string_value(json_object_get(vm, "uuid")), "u");
	json_t *f = vm_revert_fields(s);
	assert_null(json_object_get(f, "is_a_snapshot"));
	assert_null(json_object_get(f, "is_a_template"));
	assert_null(json_object_get(f, "name_label"));
	assert_null(json_object_get(f, "snapshot_of"));
	assert_null(json_object_get(f, "power_state"));
	assert_true(json_is_false(json_object_get(f, "ha_always_run")));
	assert_int_equal(json_integer_value(json_object_get(f, "memory_static_max")), 1024);
	assert_string_equal(json_string_value(json_object_get(json_object_get(f, "platform"), "acpi")), "1");
	json_decref(f);
	json_decref(s);
	json_decref(vm);
}

static void test_provision_xml(void **state)
{
	(void)state;
	json_t *e;
	json_t *d = vm_provision_disks("<provision><disk device=\"0\" size=\"8589934592\" sr=\"abc\" bootable=\"true\" "
				       "type=\"system\"/><disk device=\"1\" size=\"1024\" sr=\"def\" bootable=\"false\"/>"
				       "</provision>",
				       &e);
	assert_null(e);
	assert_int_equal(json_array_size(d), 2);
	json_t *d0 = json_array_get(d, 0), *d1 = json_array_get(d, 1);
	assert_string_equal(json_string_value(json_object_get(d0, "device")), "0");
	assert_int_equal(json_integer_value(json_object_get(d0, "size")), 8589934592LL);
	assert_true(json_is_true(json_object_get(d0, "bootable")));
	assert_string_equal(json_string_value(json_object_get(d1, "type")), "system"); /* XAPI's default */
	assert_string_equal(json_string_value(json_object_get(d1, "sr")), "def");
	json_decref(d);
	d = vm_provision_disks("", &e);
	assert_int_equal(json_array_size(d), 0);
	json_decref(d);
	static const char *const bad[] = {"<oops", "<other/>", "<provision><disk device=\"0\"/></provision>",
					  "<provision><disk device=\"0\" size=\"x\" sr=\"a\" bootable=\"true\"/></provision>",
					  "<provision><cdrom/></provision>"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_null(vm_provision_disks(bad[i], &e));
		assert_string_equal(xerr_code_of(e), "INVALID_VALUE");
		json_decref(e);
	}
}

static void test_image_trailer(void **state)
{
	(void)state;
	char err[256];
	struct sim_image_trailer t;
	sim_image_trailer_init(&t, 1 << 20, 1 << 19, "vm-1");
	uint64_t size = (1 << 20) + t.si_vcpu_len + sizeof t;
	assert_int_equal(sim_image_trailer_check(&t, size, "vm-1", 1 << 20, err, sizeof err), 0);
	assert_int_equal(sim_image_trailer_check(&t, size, NULL, 0, err, sizeof err), 0);
	assert_int_equal(sim_image_trailer_check(&t, size, "vm-2", 0, err, sizeof err), -1);
	assert_non_null(strstr(err, "vm-1"));
	assert_int_equal(sim_image_trailer_check(&t, size - 1, "vm-1", 0, err, sizeof err), -1);
	assert_int_equal(sim_image_trailer_check(&t, size, "vm-1", 2 << 20, err, sizeof err), -1);
	assert_non_null(strstr(err, "memory_static_max"));
	struct sim_image_trailer bad = t;
	bad.si_magic[0] = 'X';
	assert_int_equal(sim_image_trailer_check(&bad, size, "vm-1", 0, err, sizeof err), -1);
	bad = t;
	bad.si_held = bad.si_ram_len + 1;
	assert_int_equal(sim_image_trailer_check(&bad, size, "vm-1", 0, err, sizeof err), -1);
	bad = t;
	bad.si_version = 99;
	assert_int_equal(sim_image_trailer_check(&bad, size, "vm-1", 0, err, sizeof err), -1);
	assert_int_equal(sim_image_size(1 << 20), size);
	assert_int_equal(sim_image_size((1 << 20) - 1), size); /* rounded to pages */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_suspend_sr_order), cmocka_unit_test(test_devices),
		cmocka_unit_test(test_live_target),	 cmocka_unit_test(test_vcpus),
		cmocka_unit_test(test_snapshot_and_revert_records), cmocka_unit_test(test_provision_xml),
		cmocka_unit_test(test_image_trailer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
