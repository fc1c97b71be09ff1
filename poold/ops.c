/* ops.c - allowed and current operations of VM, VBD, VIF, VDI, SR and host (see ops.h). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include "db.h"
#include "model.h"
#include "ops.h"
#include "xerr.h"
#include "util.h"

static bool busy(const json_t *rec)
{
	return json_object_size(json_object_get(rec, "current_operations")) > 0;
}

static bool flag(const json_t *rec, const char *k)
{
	return json_is_true(json_object_get(rec, k));
}

static bool is(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

static bool one_of(const char *op, const char *const *list)
{
	for (; *list; list++)
		if (is(op, *list))
			return true;
	return false;
}

static void lower(char *out, size_t n, const char *s)
{
	snprintf(out, n, "%s", s);
	for (char *p = out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
}

/* ---------------------------------------------------------------- VM */

/* XAPI's power states, in its order (the order of "expected" lists). */
enum { PS_H = 1u, PS_P = 2u, PS_S = 4u, PS_R = 8u, PS_ALL = 15u };
static const char *const ps_names[] = {"Halted", "Paused", "Suspended", "Running"};

/* allowed_power_states (xapi_vm_lifecycle.ml) of every operation poold
 * implements; listed: shown in allowed_operations (XAPI's ignored_ops are
 * checked when asked for but never listed). */
static const struct vm_rule {
	const char *vr_op;
	unsigned vr_states;
	bool vr_listed;
} vm_rules[] = {
	{"start", PS_H, true},
	{"start_on", PS_H, true},
	{"clean_shutdown", PS_R, true},
	{"hard_shutdown", PS_P | PS_S | PS_R, true},
	{"shutdown", PS_P | PS_S | PS_R, false},
	{"clean_reboot", PS_R, true},
	{"hard_reboot", PS_P | PS_R, true},
	{"pause", PS_R, true},
	{"unpause", PS_P, true},
	{"suspend", PS_R, true},
	{"resume", PS_S, true},
	{"resume_on", PS_S, true},
	{"pool_migrate", PS_R, true},
	{"migrate_send", PS_R, true}, /* storage migration: a running VM and its disks */
	{"clone", PS_H, true},
	{"copy", PS_H, true},
	{"provision", PS_H, true},
	{"snapshot", PS_ALL, true},
	{"checkpoint", PS_P | PS_S | PS_R, true},
	{"revert", PS_ALL, true},
	{"reverting", PS_ALL, false},
	{"destroy", PS_H | PS_S, true},
	{"changing_memory_limits", PS_H, false},
	{"changing_static_range", PS_H, true},
	{"changing_dynamic_range", PS_H | PS_R, true},
	{"changing_memory_live", PS_R, false},
	{"changing_VCPUs_live", PS_R, true},
	{"changing_VCPUs", PS_H, false},
	{"power_state_reset", PS_ALL, false},
};
#define N_VM_RULES (sizeof vm_rules / sizeof vm_rules[0])

/* ------------------------------------------------- rolling upgrade */

/* What a rolling upgrade lets through, and why not (XAPI refuses with
 * NOT_SUPPORTED_DURING_UPGRADE [] and no reason). VM and VDI operations
 * are allowed only when listed without a reason (XAPI's
 * rpu_allowed_vm_operations and its pre-Ely VDI operations, the ones every
 * version knows); SR and pool operations are refused only when listed. */
static const struct {
	const char *cls, *op, *reason; /* reason NULL: allowed */
} upgrade_ops[] = {
	{"VM", "start", NULL},
	{"VM", "start_on", NULL},
	{"VM", "clean_shutdown", NULL},
	{"VM", "hard_shutdown", NULL},
	{"VM", "clean_reboot", NULL},
	{"VM", "hard_reboot", NULL},
	{"VM", "suspend", NULL},
	{"VM", "resume", NULL},
	{"VM", "resume_on", NULL},
	{"VM", "pause", NULL},
	{"VM", "unpause", NULL},
	{"VM", "pool_migrate", NULL},
	{"VM", "migrate_send", NULL},
	{"VM", "clone", NULL},
	{"VM", "copy", NULL},
	{"VM", "export", NULL},
	{"VM", "import", NULL},
	{"VM", "destroy", NULL},
	{"VM", "make_into_template", NULL},
	{"VM", "provision", NULL},
	{"VM", "power_state_reset", NULL},
	{"VM", "changing_memory_live", NULL},
	{"VM", "changing_VCPUs_live", NULL},
	{"VM", "shutdown", "only clean_shutdown and hard_shutdown are allowed while the pool is upgraded (XAPI's set)"},
	{"VM", "changing_memory_limits",
	 "a halted VM's memory limits stay as they are while hosts of two versions may start it"},
	{"VM", "changing_static_range", "a VM's static memory stays as it is while hosts of two versions may run it"},
	{"VM", "changing_dynamic_range", "a VM's dynamic memory stays as it is while hosts of two versions may run it"},
	{"VM", "changing_VCPUs", "a VM's vCPUs stay as they are while hosts of two versions may run it"},
	{"VM", "snapshot", "a snapshot taken now might not be readable by the hosts of the older version"},
	{"VM", "checkpoint", "a checkpoint taken now might not be readable by the hosts of the older version"},
	{"VM", "revert", "a snapshot is not reverted while hosts of two versions may run the VM"},
	{"VM", "reverting", "a snapshot is not reverted while hosts of two versions may run the VM"},
	{"VDI", "clone", NULL},
	{"VDI", "copy", NULL},
	{"VDI", "resize", NULL},
	{"VDI", "resize_online", NULL},
	{"VDI", "snapshot", NULL},
	{"VDI", "destroy", NULL},
	{"VDI", "forget", NULL},
	{"VDI", "update", NULL},
	{"VDI", "force_unlock", NULL},
	{"VDI", "generate_config", NULL},
	{"VDI", "blocked", NULL},
	{"VDI", "mirror", "storage migration waits until every host runs the same version"},
	{"VDI", "enable_cbt", "changed block tracking is not turned on or off while hosts of two versions share the disk"},
	{"VDI", "disable_cbt", "changed block tracking is not turned on or off while hosts of two versions share the disk"},
	{"SR", "vdi_mirror", "storage migration waits until every host runs the same version"},
	{"SR", "vdi_enable_cbt", "changed block tracking is not turned on or off while hosts of two versions share the disk"},
	{"SR", "vdi_disable_cbt", "changed block tracking is not turned on or off while hosts of two versions share the disk"},
	{"SR", "create", "a new SR waits until every host runs the same version"},
	{"pool", "enable_ha", "HA plans across hosts of two versions; the rolling upgrade restores HA when it ends"},
};

json_t *ops_upgrade_check(const char *cls, const char *op)
{
	bool by_default = strcmp(cls, "VM") == 0 || strcmp(cls, "VDI") == 0;
	const char *reason = by_default ? "not one of the operations allowed while the pool is upgraded" : NULL;
	for (size_t i = 0; i < sizeof upgrade_ops / sizeof upgrade_ops[0]; i++)
		if (strcmp(upgrade_ops[i].cls, cls) == 0 && strcmp(upgrade_ops[i].op, op) == 0)
			reason = upgrade_ops[i].reason;
	if (!reason)
		return NULL;
	char name[96];
	snprintf(name, sizeof name, "%s.%s", cls, op);
	return xerr_new(XE_NOT_SUPPORTED_DURING_UPGRADE, name, reason, NULL);
}

const char *ops_vm_field_op(const char *field)
{
	static const struct {
		const char *field, *op;
	} setters[] = {
		{"memory_static_min", "changing_static_range"},	  {"memory_static_max", "changing_static_range"},
		{"memory_dynamic_min", "changing_dynamic_range"}, {"memory_dynamic_max", "changing_dynamic_range"},
		{"VCPUs_max", "changing_VCPUs"},		  {"VCPUs_at_startup", "changing_VCPUs"},
	};
	for (size_t i = 0; i < sizeof setters / sizeof setters[0]; i++)
		if (is(setters[i].field, field))
			return setters[i].op;
	return NULL;
}

static const struct vm_rule *vm_rule(const char *op)
{
	for (size_t i = 0; i < N_VM_RULES; i++)
		if (is(vm_rules[i].vr_op, op))
			return &vm_rules[i];
	return NULL;
}

bool ops_vm_known(const char *op)
{
	return vm_rule(op) != NULL;
}

static unsigned ps_bit(const char *ps)
{
	for (unsigned i = 0; i < 4; i++)
		if (is(ps, ps_names[i]))
			return 1u << i;
	return 0;
}

static json_t *vm_bad_power(const char *ref, unsigned states, const char *ps)
{
	char expected[64] = "", actual[32], one[16];
	for (unsigned i = 0; i < 4; i++) {
		if (!(states & (1u << i)))
			continue;
		lower(one, sizeof one, ps_names[i]);
		snprintf(expected + strlen(expected), sizeof expected - strlen(expected), "%s%s", *expected ? ", " : "",
			 one);
	}
	lower(actual, sizeof actual, ps);
	return xerr_new(XE_VM_BAD_POWER_STATE, ref, expected, actual, NULL);
}

/* is_allowed_concurrently: long copies go together, snapshots go together;
 * nothing else runs beside another operation (hard_shutdown is not let
 * through a migration here: poold cannot cancel one half-way). */
static bool vm_concurrent_ok(const json_t *rec, const char *op)
{
	static const char *const copies[] = {"clone", "copy", NULL}, *const snaps[] = {"snapshot", "checkpoint", NULL};
	const char *const *set = one_of(op, copies) ? copies : one_of(op, snaps) ? snaps : NULL;
	if (!set)
		return false;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)json_object_get(rec, "current_operations"), k, v) if (
		!json_is_string(v) || !one_of(json_string_value(v), set)) return false;
	/* a start or migration reservation is no copy */
	return is(jstr(rec, "scheduled_to_be_resident_on"), MODEL_NULL_REF);
}

/* check_template and check_snapshot: what templates and snapshots may do. */
static json_t *vm_kind_check(const char *ref, const json_t *rec, const char *op)
{
	static const char *const tmpl_ok[] = {"changing_dynamic_range", "changing_static_range", "changing_memory_limits",
					      "changing_VCPUs", "clone", "copy", "provision", NULL};
	static const char *const snap_ok[] = {"revert", "clone", "copy", "destroy", "hard_shutdown", NULL};
	bool snapshot = flag(rec, "is_a_snapshot");
	if (flag(rec, "is_a_template") && !snapshot) {
		if (is(op, "destroy") && flag(rec, "is_default_template"))
			return xerr_new(XE_VM_CANNOT_DELETE_DEFAULT_TEMPLATE, ref, NULL);
		if (!one_of(op, tmpl_ok) && !is(op, "destroy"))
			return xerr_new(XE_VM_IS_TEMPLATE, ref, NULL);
	}
	if (snapshot && !one_of(op, snap_ok))
		return xerr_new(XE_VM_IS_SNAPSHOT, ref, op, NULL);
	if (is(op, "provision") && !flag(rec, "is_a_template"))
		return xerr_new(XE_PROVISION_ONLY_ALLOWED_ON_TEMPLATE, NULL);
	if (is(op, "revert") && !snapshot)
		return xerr_new(XE_REVERT_ONLY_ALLOWED_ON_SNAPSHOT, NULL);
	return NULL;
}

/* check_operation_error, in XAPI's order: power state, operations in
 * flight, template and snapshot rules, control domain, rolling upgrade. */
static json_t *vm_check(const char *ref, const json_t *rec, const struct ops_facts *f, const char *op)
{
	const struct vm_rule *r = vm_rule(op);
	if (!r)
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "VM operation %s is not known", op);
	const char *ps = jstr(rec, "power_state");
	unsigned states = r->vr_states;
	/* clone and copy of a checkpoint (suspended) are allowed */
	if ((is(op, "clone") || is(op, "copy")) && flag(rec, "is_a_snapshot"))
		states |= PS_S;
	if (!(states & ps_bit(ps)))
		return vm_bad_power(ref, states, ps);
	bool reserved = !is(jstr(rec, "scheduled_to_be_resident_on"), MODEL_NULL_REF);
	if (!is(op, "power_state_reset") && (busy(rec) || reserved) && !vm_concurrent_ok(rec, op))
		return xerr_new(XE_OTHER_OPERATION_IN_PROGRESS, "VM", ref, NULL);
	json_t *e = vm_kind_check(ref, rec, op);
	if (e)
		return e;
	if (flag(rec, "is_control_domain"))
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "VM %s is a control domain", ref);
	return f->of_rolling ? ops_upgrade_check("VM", op) : NULL; /* last, as XAPI */
}

/* -------------------------------------------------------- VBD and VIF */

static const char *const vbd_ops[] = {"attach", "eject", "insert", "plug", "unplug", "unplug_force", NULL};
static const char *const vif_ops[] = {"attach", "plug", "unplug", "unplug_force", NULL};

/* The rules VBDs and VIFs share: one operation at a time, hot-plug only
 * while the VM runs and not during its shutdown, suspend or pause. */
static json_t *device_check(const char *cls, const char *ref, const json_t *rec, const struct ops_facts *f,
			    const char *op)
{
	bool plug = is(op, "plug"), unplug = is(op, "unplug") || is(op, "unplug_force");
	if (busy(rec))
		return xerr_new(XE_OTHER_OPERATION_IN_PROGRESS, cls, ref, NULL);
	if (is(cls, "VBD") && unplug && !flag(rec, "unpluggable"))
		return xerr_new(XE_VBD_NOT_UNPLUGGABLE, ref, NULL);
	if (!plug && !unplug)
		return NULL;
	if (is(f->of_vm_power, "Running")) {
		if (plug && flag(rec, "currently_attached"))
			return xerr_new(XE_DEVICE_ALREADY_ATTACHED, ref, NULL);
		if (unplug && !flag(rec, "currently_attached"))
			return xerr_new(XE_DEVICE_ALREADY_DETACHED, ref, NULL);
	} else {
		return vm_bad_power(f->of_vm, PS_R, f->of_vm_power);
	}
	if (*f->of_vm_blocking && !is(op, "unplug_force"))
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "Current operation on VM:%s is %s", f->of_vm,
				 f->of_vm_blocking);
	return NULL;
}

/* xapi_vbd_helpers.valid_operations for the operations poold implements. */
static json_t *vbd_check(const char *ref, const json_t *rec, const struct ops_facts *f, const char *op)
{
	if (!one_of(op, vbd_ops))
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "VBD operation %s is not known", op);
	bool media = is(op, "insert") || is(op, "eject"), empty = flag(rec, "empty");
	if (media && !busy(rec)) {
		if (!is(jstr(rec, "type"), "CD"))
			return xerr_new(XE_VBD_NOT_REMOVABLE_MEDIA, ref, NULL);
		if (is(op, "eject") && empty)
			return xerr_new(XE_VBD_IS_EMPTY, ref, NULL);
		if (is(op, "insert") && !empty)
			return xerr_new(XE_VBD_NOT_EMPTY, ref, NULL);
		if (is(f->of_vm_power, "Suspended"))
			return vm_bad_power(f->of_vm, PS_H | PS_R, f->of_vm_power);
	}
	json_t *e = device_check("VBD", ref, rec, f, op);
	if (e || empty || !(is(op, "attach") || is(op, "plug") || is(op, "insert")))
		return e;
	const char *vdi = jstr(rec, "VDI");
	if (f->of_vdi_busy)
		return xerr_new(XE_OTHER_OPERATION_IN_PROGRESS, "VDI", vdi, NULL);
	bool rw = is(jstr(rec, "mode"), "RW");
	if (!flag(rec, "currently_attached") && (f->of_vdi_rw_elsewhere || (rw && f->of_vdi_used_elsewhere)))
		return xerr_new(XE_VDI_IN_USE, vdi, op, NULL);
	if (rw && f->of_vdi_read_only)
		return xerr_new(XE_VDI_READ_ONLY, vdi, NULL);
	return NULL;
}

static json_t *vif_check(const char *ref, const json_t *rec, const struct ops_facts *f, const char *op)
{
	if (!one_of(op, vif_ops))
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "VIF operation %s is not known", op);
	return device_check("VIF", ref, rec, f, op);
}

/* --------------------------------------------------------------- VDI */

/* mirror: storage migration copies it (VM.migrate_send, VDI.pool_migrate) */
static const char *const vdi_ops[] = {"destroy", "resize", "resize_online", "snapshot", "clone", "copy", "forget",
				      "mirror", NULL};

static json_t *vdi_check(const char *ref, const json_t *rec, const struct ops_facts *f, const char *op)
{
	if (!one_of(op, vdi_ops))
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "VDI operation %s is not known", op);
	bool in_use_matters = is(op, "destroy") || is(op, "resize") || is(op, "forget");
	if (in_use_matters && f->of_attached > 0)
		return xerr_new(XE_VDI_IN_USE, ref, op, NULL);
	/* resizing online needs the disk attached to a running VM */
	if (is(op, "resize_online") && f->of_attached == 0)
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "VDI %s is not attached to a running VM: use VDI.resize", ref);
	if (busy(rec))
		return xerr_new(XE_OTHER_OPERATION_IN_PROGRESS, "VDI", ref, NULL);
	return f->of_rolling ? ops_upgrade_check("VDI", op) : NULL;
}

/* ---------------------------------------------------------------- SR */

static const char *const sr_ops[] = {"destroy",	   "forget",	  "plug",	  "unplug",	  "vdi_create",
				     "vdi_destroy", "vdi_resize", "vdi_clone", "vdi_snapshot", NULL};

static json_t *sr_check(const char *ref, const json_t *rec, const struct ops_facts *f, const char *op)
{
	if (!one_of(op, sr_ops))
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "SR operation %s is not known", op);
	bool gone = is(op, "destroy") || is(op, "forget");
	if (gone && f->of_plugged > 0)
		return xerr_new(XE_SR_HAS_PBD, ref, NULL);
	if (is(op, "destroy") && f->of_pbds == 0)
		return xerr_new(XE_SR_NO_PBDS, ref, NULL);
	if (is(op, "destroy") && f->of_vdis > 0)
		return xerr_new(XE_SR_NOT_EMPTY, NULL);
	/* plugging on more hosts goes on in parallel; nothing else does */
	if (busy(rec) && !is(op, "plug"))
		return xerr_new(XE_OTHER_OPERATION_IN_PROGRESS, "SR", ref, NULL);
	return f->of_rolling ? ops_upgrade_check("SR", op) : NULL;
}

/* -------------------------------------------------------------- host */

static const char *const host_ops[] = {"evacuate", "vm_start", "vm_resume", "vm_migrate", "reboot", "shutdown", NULL};

static json_t *host_check(const char *ref, const json_t *rec, const struct ops_facts *f, const char *op)
{
	bool evacuating = false;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)json_object_get(rec, "current_operations"), k, v) evacuating =
		evacuating || is(json_string_value(v) ? json_string_value(v) : "", "evacuate");
	if (is(op, "evacuate"))
		return busy(rec) ? xerr_new(XE_OTHER_OPERATION_IN_PROGRESS, "host", ref, NULL) : NULL;
	if (is(op, "reboot") || is(op, "shutdown")) {
		/* XAPI's assert_bacon_mode: disabled and empty first */
		if (flag(rec, "enabled"))
			return xerr_new(XE_HOST_NOT_DISABLED, NULL);
		if (*f->of_vm)
			return xerr_new(XE_HOST_IN_USE, ref, "vm", f->of_vm, NULL);
		return busy(rec) ? xerr_new(XE_OTHER_OPERATION_IN_PROGRESS, "host", ref, NULL) : NULL;
	}
	if (!one_of(op, host_ops))
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "host operation %s is not known", op);
	if (!flag(rec, "enabled"))
		return xerr_new(XE_HOST_DISABLED, ref, NULL);
	if (evacuating)
		return xerr_new(XE_HOST_EVACUATE_IN_PROGRESS, ref, NULL);
	return NULL;
}

/* ------------------------------------------------------------ common */

static const struct ops_facts no_facts;

json_t *ops_check(const char *cls, const char *ref, const json_t *rec, const struct ops_facts *f, const char *op)
{
	if (!f)
		f = &no_facts;
	if (is(cls, "VM"))
		return vm_check(ref, rec, f, op);
	if (is(cls, "VBD"))
		return vbd_check(ref, rec, f, op);
	if (is(cls, "VIF"))
		return vif_check(ref, rec, f, op);
	if (is(cls, "VDI"))
		return vdi_check(ref, rec, f, op);
	if (is(cls, "SR"))
		return sr_check(ref, rec, f, op);
	if (is(cls, "host"))
		return host_check(ref, rec, f, op);
	return xerr_newf(XE_OPERATION_NOT_ALLOWED, "%s has no operations", cls);
}

static void allow(json_t *out, const char *cls, const char *ref, const json_t *rec, const struct ops_facts *f,
		  const char *op)
{
	json_t *e = ops_check(cls, ref, rec, f, op);
	if (!e)
		json_array_append_new(out, json_string(op));
	json_decref(e);
}

json_t *ops_allowed(const char *cls, const char *ref, const json_t *rec, const struct ops_facts *f)
{
	const char *const *all = is(cls, "VBD")	 ? vbd_ops
				 : is(cls, "VIF")	 ? vif_ops
				 : is(cls, "VDI")	 ? vdi_ops
				 : is(cls, "SR")	 ? sr_ops
				 : is(cls, "host") ? host_ops
						   : NULL;
	if (!all && !is(cls, "VM"))
		return NULL;
	json_t *out = json_array();
	for (size_t i = 0; !all && i < N_VM_RULES; i++)
		if (vm_rules[i].vr_listed)
			allow(out, cls, ref, rec, f, vm_rules[i].vr_op);
	for (; all && *all; all++)
		allow(out, cls, ref, rec, f, *all);
	return out;
}
