/* test_ops.c - what an object may do (poold/ops.c): XAPI's allowed power
 * states of every VM operation in every power state, the order of its
 * checks (power state, operations in flight, templates and snapshots),
 * which operations are listed, and the hot-plug rules of VBDs and VIFs,
 * VDIs and hosts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "ops.h"
#include "xerr.h"

static const char *const states[] = {"Halted", "Paused", "Suspended", "Running"};

static json_t *vm(const char *ps)
{
	return json_pack("{s:s, s:b, s:b, s:b, s:b, s:s, s:{}}", "power_state", ps, "is_a_template", 0,
			 "is_a_snapshot", 0, "is_default_template", 0, "is_control_domain", 0,
			 "scheduled_to_be_resident_on", "OpaqueRef:NULL", "current_operations");
}

/* The code of ops_check's answer ("" when allowed). */
static const char *code(const char *cls, const json_t *rec, const struct ops_facts *f, const char *op)
{
	static char buf[64];
	json_t *e = ops_check(cls, "OpaqueRef:x", rec, f, op);
	snprintf(buf, sizeof buf, "%s", e ? xerr_code_of(e) : "");
	json_decref(e);
	return buf;
}

static const char *param(const json_t *rec, const char *op, size_t i)
{
	static char buf[128];
	json_t *e = ops_check("VM", "OpaqueRef:x", rec, NULL, op);
	snprintf(buf, sizeof buf, "%s", json_string_value(json_array_get(e, i)) ?: "");
	json_decref(e);
	return buf;
}

static bool listed(const json_t *allowed, const char *op)
{
	size_t i;
	json_t *v;
	json_array_foreach(allowed, i, v) if (strcmp(json_string_value(v), op) == 0) return true;
	return false;
}

/* XAPI's allowed_power_states, written out again as the table a reader
 * of xapi_vm_lifecycle.ml would: H P S R. */
static const struct {
	const char *op, *ok;
} power[] = {
	{"start", "H"},		      {"start_on", "H"},	 {"clean_shutdown", "R"},  {"hard_shutdown", "PSR"},
	{"shutdown", "PSR"},	      {"clean_reboot", "R"},	 {"hard_reboot", "PR"},	   {"pause", "R"},
	{"unpause", "P"},	      {"suspend", "R"},		 {"resume", "S"},	   {"resume_on", "S"},
	{"pool_migrate", "R"},	      {"clone", "H"},		 {"copy", "H"},		   {"snapshot", "HPSR"},
	{"checkpoint", "PSR"},	      {"destroy", "HS"},	 {"changing_static_range", "H"},
	{"changing_dynamic_range", "HR"}, {"changing_VCPUs_live", "R"}, {"changing_memory_limits", "H"},
	{"changing_memory_live", "R"}, {"power_state_reset", "HPSR"},
};

static void test_power_states(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof power / sizeof power[0]; i++)
		for (int s = 0; s < 4; s++) {
			json_t *r = vm(states[s]);
			bool ok = strchr(power[i].ok, states[s][0]) != NULL;
			const char *c = code("VM", r, NULL, power[i].op);
			if (ok && *c)
				fail_msg("%s in %s: refused with %s", power[i].op, states[s], c);
			if (!ok && strcmp(c, "VM_BAD_POWER_STATE"))
				fail_msg("%s in %s: %s, not VM_BAD_POWER_STATE", power[i].op, states[s], c);
			json_decref(r);
		}
}

static void test_expected_text(void **state)
{
	(void)state;
	json_t *r = vm("Halted");
	assert_string_equal(param(r, "hard_shutdown", 2), "paused, suspended, running");
	assert_string_equal(param(r, "hard_shutdown", 3), "halted");
	assert_string_equal(param(r, "hard_reboot", 2), "paused, running");
	json_decref(r);
	r = vm("Running");
	assert_string_equal(param(r, "destroy", 2), "halted, suspended");
	assert_string_equal(param(r, "start", 3), "running");
	json_decref(r);
}

static void test_unknown_op(void **state)
{
	(void)state;
	json_t *r = vm("Halted");
	assert_string_equal(code("VM", r, NULL, "fly"), "OPERATION_NOT_ALLOWED");
	assert_false(ops_vm_known("fly"));
	assert_true(ops_vm_known("suspend"));
	json_decref(r);
}

static void test_concurrency(void **state)
{
	(void)state;
	json_t *r = vm("Halted");
	json_object_set_new(json_object_get(r, "current_operations"), "OpaqueRef:t", json_string("clone"));
	assert_string_equal(code("VM", r, NULL, "copy"), "");
	assert_string_equal(code("VM", r, NULL, "clone"), "");
	assert_string_equal(code("VM", r, NULL, "start"), "OTHER_OPERATION_IN_PROGRESS");
	assert_string_equal(code("VM", r, NULL, "snapshot"), "OTHER_OPERATION_IN_PROGRESS");
	assert_string_equal(code("VM", r, NULL, "power_state_reset"), "");
	json_decref(r);
	r = vm("Running");
	json_object_set_new(json_object_get(r, "current_operations"), "OpaqueRef:t", json_string("checkpoint"));
	assert_string_equal(code("VM", r, NULL, "snapshot"), "");
	assert_string_equal(code("VM", r, NULL, "suspend"), "OTHER_OPERATION_IN_PROGRESS");
	assert_string_equal(code("VM", r, NULL, "hard_shutdown"), "OTHER_OPERATION_IN_PROGRESS");
	json_decref(r);
	/* a reservation (a start or migration in flight) is busy too */
	r = vm("Running");
	json_object_set_new(r, "scheduled_to_be_resident_on", json_string("OpaqueRef:h"));
	assert_string_equal(code("VM", r, NULL, "snapshot"), "OTHER_OPERATION_IN_PROGRESS");
	/* the power state is checked first, as XAPI */
	assert_string_equal(code("VM", r, NULL, "start"), "VM_BAD_POWER_STATE");
	json_decref(r);
}

static void test_templates_and_snapshots(void **state)
{
	(void)state;
	json_t *t = vm("Halted");
	json_object_set_new(t, "is_a_template", json_true());
	assert_string_equal(code("VM", t, NULL, "start"), "VM_IS_TEMPLATE");
	assert_string_equal(code("VM", t, NULL, "snapshot"), "VM_IS_TEMPLATE");
	assert_string_equal(code("VM", t, NULL, "clone"), "");
	assert_string_equal(code("VM", t, NULL, "provision"), "");
	assert_string_equal(code("VM", t, NULL, "destroy"), "");
	json_object_set_new(t, "is_default_template", json_true());
	assert_string_equal(code("VM", t, NULL, "destroy"), "VM_CANNOT_DELETE_DEFAULT_TEMPLATE");
	json_decref(t);
	json_t *v = vm("Halted");
	assert_string_equal(code("VM", v, NULL, "provision"), "PROVISION_ONLY_ALLOWED_ON_TEMPLATE");
	assert_string_equal(code("VM", v, NULL, "revert"), "REVERT_ONLY_ALLOWED_ON_SNAPSHOT");
	json_decref(v);
	json_t *s = vm("Suspended");
	json_object_set_new(s, "is_a_snapshot", json_true());
	json_object_set_new(s, "is_a_template", json_true());
	assert_string_equal(code("VM", s, NULL, "revert"), "");
	assert_string_equal(code("VM", s, NULL, "clone"), ""); /* a checkpoint clones */
	assert_string_equal(code("VM", s, NULL, "destroy"), "");
	assert_string_equal(code("VM", s, NULL, "resume"), "VM_IS_SNAPSHOT");
	assert_string_equal(param(s, "resume", 2), "resume");
	json_decref(s);
}

static void test_allowed_lists(void **state)
{
	(void)state;
	static const struct {
		const char *ps, *want;
	} want[] = {
		{"Halted", "start start_on clone copy snapshot destroy changing_static_range changing_dynamic_range"},
		{"Running", "clean_shutdown hard_shutdown clean_reboot hard_reboot pause suspend pool_migrate migrate_send "
			    "snapshot checkpoint changing_dynamic_range changing_VCPUs_live"},
		{"Paused", "hard_shutdown hard_reboot unpause snapshot checkpoint"},
		{"Suspended", "hard_shutdown resume resume_on snapshot checkpoint destroy"},
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		json_t *r = vm(want[i].ps), *a = ops_allowed("VM", "OpaqueRef:x", r, NULL);
		char got[512] = "";
		size_t k;
		json_t *o;
		json_array_foreach(a, k, o) snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", k ? " " : "",
						      json_string_value(o));
		assert_string_equal(got, want[i].want);
		/* never listed, though accepted */
		assert_false(listed(a, "power_state_reset"));
		assert_false(listed(a, "changing_memory_limits"));
		json_decref(a);
		json_decref(r);
	}
}

static json_t *dev(const char *type, bool attached, bool empty)
{
	return json_pack("{s:s, s:s, s:b, s:b, s:b, s:s, s:s, s:{}}", "type", type, "mode", "RW", "currently_attached",
			 attached, "empty", empty, "unpluggable", 1, "VDI", "OpaqueRef:d", "VM", "OpaqueRef:v",
			 "current_operations");
}

static struct ops_facts vmfacts(const char *ps)
{
	struct ops_facts f;
	memset(&f, 0, sizeof f);
	snprintf(f.of_vm, sizeof f.of_vm, "OpaqueRef:v");
	snprintf(f.of_vm_power, sizeof f.of_vm_power, "%s", ps);
	return f;
}

static void test_vbd(void **state)
{
	(void)state;
	struct ops_facts run = vmfacts("Running"), halted = vmfacts("Halted");
	json_t *d = dev("Disk", false, false);
	assert_string_equal(code("VBD", d, &run, "plug"), "");
	assert_string_equal(code("VBD", d, &run, "unplug"), "DEVICE_ALREADY_DETACHED");
	assert_string_equal(code("VBD", d, &halted, "plug"), "VM_BAD_POWER_STATE");
	assert_string_equal(code("VBD", d, &run, "insert"), "VBD_NOT_REMOVABLE_MEDIA");
	struct ops_facts other = run;
	other.of_vdi_rw_elsewhere = other.of_vdi_used_elsewhere = true;
	assert_string_equal(code("VBD", d, &other, "plug"), "VDI_IN_USE");
	other = run;
	other.of_vdi_read_only = true;
	assert_string_equal(code("VBD", d, &other, "plug"), "VDI_READ_ONLY");
	other = run;
	other.of_vdi_busy = true;
	assert_string_equal(code("VBD", d, &other, "plug"), "OTHER_OPERATION_IN_PROGRESS");
	other = run;
	snprintf(other.of_vm_blocking, sizeof other.of_vm_blocking, "suspend");
	assert_string_equal(code("VBD", d, &other, "plug"), "OPERATION_NOT_ALLOWED");
	json_decref(d);
	d = dev("Disk", true, false);
	assert_string_equal(code("VBD", d, &run, "plug"), "DEVICE_ALREADY_ATTACHED");
	assert_string_equal(code("VBD", d, &run, "unplug"), "");
	json_object_set_new(d, "unpluggable", json_false());
	assert_string_equal(code("VBD", d, &run, "unplug"), "VBD_NOT_UNPLUGGABLE");
	json_decref(d);
	json_t *cd = dev("CD", false, true);
	assert_string_equal(code("VBD", cd, &run, "eject"), "VBD_IS_EMPTY");
	assert_string_equal(code("VBD", cd, &run, "insert"), "");
	assert_string_equal(code("VBD", cd, &halted, "insert"), "");
	struct ops_facts susp = vmfacts("Suspended");
	assert_string_equal(code("VBD", cd, &susp, "insert"), "VM_BAD_POWER_STATE");
	json_decref(cd);
	cd = dev("CD", true, false);
	assert_string_equal(code("VBD", cd, &run, "insert"), "VBD_NOT_EMPTY");
	assert_string_equal(code("VBD", cd, &run, "eject"), "");
	json_object_set_new(json_object_get(cd, "current_operations"), "OpaqueRef:t", json_string("eject"));
	assert_string_equal(code("VBD", cd, &run, "eject"), "OTHER_OPERATION_IN_PROGRESS");
	json_decref(cd);
}

static void test_vif(void **state)
{
	(void)state;
	struct ops_facts run = vmfacts("Running"), halted = vmfacts("Halted");
	json_t *v = dev("Disk", false, false);
	assert_string_equal(code("VIF", v, &run, "plug"), "");
	assert_string_equal(code("VIF", v, &run, "unplug"), "DEVICE_ALREADY_DETACHED");
	assert_string_equal(code("VIF", v, &halted, "unplug"), "VM_BAD_POWER_STATE");
	assert_string_equal(code("VIF", v, &run, "insert"), "OPERATION_NOT_ALLOWED");
	json_object_set_new(v, "currently_attached", json_true());
	assert_string_equal(code("VIF", v, &run, "plug"), "DEVICE_ALREADY_ATTACHED");
	assert_string_equal(code("VIF", v, &run, "unplug"), "");
	json_decref(v);
}

static void test_vdi_and_host(void **state)
{
	(void)state;
	struct ops_facts f;
	memset(&f, 0, sizeof f);
	json_t *d = json_pack("{s:{}}", "current_operations");
	assert_string_equal(code("VDI", d, &f, "resize_online"), "OPERATION_NOT_ALLOWED");
	assert_string_equal(code("VDI", d, &f, "resize"), "");
	f.of_attached = 1;
	assert_string_equal(code("VDI", d, &f, "resize_online"), "");
	assert_string_equal(code("VDI", d, &f, "resize"), "VDI_IN_USE");
	assert_string_equal(code("VDI", d, &f, "copy"), "");
	json_decref(d);
	memset(&f, 0, sizeof f);
	json_t *h = json_pack("{s:b, s:{}}", "enabled", 1, "current_operations");
	assert_string_equal(code("host", h, &f, "reboot"), "HOST_NOT_DISABLED");
	json_object_set_new(h, "enabled", json_false());
	assert_string_equal(code("host", h, &f, "shutdown"), "");
	snprintf(f.of_vm, sizeof f.of_vm, "OpaqueRef:v");
	assert_string_equal(code("host", h, &f, "reboot"), "HOST_IN_USE");
	assert_string_equal(code("host", h, &f, "vm_resume"), "HOST_DISABLED");
	json_decref(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_power_states),	    cmocka_unit_test(test_expected_text),
		cmocka_unit_test(test_unknown_op),	    cmocka_unit_test(test_concurrency),
		cmocka_unit_test(test_templates_and_snapshots), cmocka_unit_test(test_allowed_lists),
		cmocka_unit_test(test_vbd),		    cmocka_unit_test(test_vif),
		cmocka_unit_test(test_vdi_and_host),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
