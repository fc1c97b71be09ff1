/*
 * vm_limits.c - the memory and vCPU limits a VM record must keep, checked
 * wherever they change (VM.create, VM.set_memory_limits, the generated
 * setters): each value in range (INVALID_VALUE, never clamped), XAPI's
 * ordering (static_min <= dynamic_min <= dynamic_max <= static_max,
 * 1 <= VCPUs_at_startup <= VCPUs_max), and static limits changed only
 * while the VM is halted, as XAPI requires.
 */
#include <stdio.h>
#include <string.h>
#include "poold.h"
#include "xerr.h"

#define MEMORY_MAX (1LL << 50) /* 1 PiB: beyond any host */
#define VCPUS_MAX 4096

static json_int_t ival(const json_t *rec, const char *k)
{
	return json_integer_value(json_object_get(rec, k));
}

static const struct {
	const char *field;
	json_int_t lo, hi;
	bool is_static; /* changes only while halted */
} limits[] = {
	{"memory_static_min", 0, MEMORY_MAX, true},
	{"memory_static_max", 1, MEMORY_MAX, true},
	{"memory_dynamic_min", 0, MEMORY_MAX, false},
	{"memory_dynamic_max", 1, MEMORY_MAX, false},
	{"VCPUs_max", 1, VCPUS_MAX, true},
	{"VCPUs_at_startup", 1, VCPUS_MAX, false},
};

json_t *vm_check_limits(const char *ref, const json_t *before, const json_t *after)
{
	const char *ps = json_string_value(json_object_get(before, "power_state"));
	for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
		json_int_t v = ival(after, limits[i].field);
		if (v < limits[i].lo || v > limits[i].hi) {
			char s[32];
			snprintf(s, sizeof s, "%lld", (long long)v);
			return xerr_new(XE_INVALID_VALUE, limits[i].field, s, NULL);
		}
		if (limits[i].is_static && before && ps && strcmp(ps, "Halted") && v != ival(before, limits[i].field)) {
			char actual[32];
			snprintf(actual, sizeof actual, "%s", strcmp(ps, "Running") == 0 ? "running"
							     : strcmp(ps, "Paused") == 0  ? "paused"
											  : "suspended");
			return xerr_new(XE_VM_BAD_POWER_STATE, ref, "halted", actual, NULL);
		}
	}
	if (!(ival(after, "memory_static_min") <= ival(after, "memory_dynamic_min") &&
	      ival(after, "memory_dynamic_min") <= ival(after, "memory_dynamic_max") &&
	      ival(after, "memory_dynamic_max") <= ival(after, "memory_static_max")))
		return xerr_new(XE_MEMORY_CONSTRAINT_VIOLATION,
				"Memory limits must satisfy: static_min <= dynamic_min <= dynamic_max <= static_max", NULL);
	if (ival(after, "VCPUs_at_startup") < 1 || ival(after, "VCPUs_at_startup") > ival(after, "VCPUs_max"))
		return xerr_new(XE_VCPU_CONSTRAINT_VIOLATION, "1 <= VCPUs_at_startup <= VCPUs_max", NULL);
	return NULL;
}
