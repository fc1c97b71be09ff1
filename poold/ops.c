/* ops.c - allowed and current operations of VM, VDI, SR and host (see ops.h). */
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

/* ---------------------------------------------------------------- VM */

static const char *const vm_ops[] = {"start", "start_on", "clean_shutdown", "hard_shutdown", "shutdown", "pause",
				     "unpause", "pool_migrate", "clone", "destroy", "changing_memory_limits", NULL};

/* The power states an operation needs, and how XAPI names them in
 * VM_BAD_POWER_STATE's "expected". */
static const struct {
	const char *op, *states, *expected;
} vm_power[] = {
	{"start", "Halted", "halted"},
	{"start_on", "Halted", "halted"},
	{"clone", "Halted", "halted"},
	{"destroy", "Halted", "halted"},
	{"changing_memory_limits", "Halted", "halted"},
	{"clean_shutdown", "Running", "running"},
	{"shutdown", "Running", "running"},
	{"pause", "Running", "running"},
	{"pool_migrate", "Running", "running"},
	{"hard_shutdown", "Running Paused Suspended", "running, paused, suspended"},
	{"unpause", "Paused", "paused"},
};

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

static json_t *vm_check(const char *ref, const json_t *rec, const struct ops_facts *f, const char *op)
{
	bool template = json_is_true(json_object_get(rec, "is_a_template"));
	if (template && strcmp(op, "clone") && strcmp(op, "destroy"))
		return xerr_new(XE_VM_IS_TEMPLATE, ref, NULL);
	if (strcmp(op, "destroy") == 0 && json_is_true(json_object_get(rec, "is_default_template")))
		return xerr_new(XE_VM_CANNOT_DELETE_DEFAULT_TEMPLATE, ref, NULL);
	if (json_is_true(json_object_get(rec, "is_control_domain")))
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "VM %s is a control domain", ref);
	const char *ps = jstr(rec, "power_state");
	for (size_t i = 0; i < sizeof vm_power / sizeof vm_power[0]; i++) {
		if (strcmp(vm_power[i].op, op))
			continue;
		/* a word match: "Paused" must not match inside another name */
		const char *at = strstr(vm_power[i].states, ps);
		size_t n = strlen(ps);
		if (!*ps || !at || (at[n] != ' ' && at[n] != '\0')) {
			char actual[32];
			snprintf(actual, sizeof actual, "%s", ps);
			for (char *p = actual; *p; p++)
				*p = (char)tolower((unsigned char)*p);
			return xerr_new(XE_VM_BAD_POWER_STATE, ref, vm_power[i].expected, actual, NULL);
		}
		if (busy(rec) || strcmp(jstr(rec, "scheduled_to_be_resident_on"), MODEL_NULL_REF))
			return xerr_new(XE_OTHER_OPERATION_IN_PROGRESS, "VM", ref, NULL);
		return f->of_rolling ? ops_upgrade_check("VM", op) : NULL; /* last, as XAPI */
	}
	return xerr_newf(XE_OPERATION_NOT_ALLOWED, "VM operation %s is not known", op);
}

/* --------------------------------------------------------------- VDI */

static const char *const vdi_ops[] = {"destroy", "resize", "snapshot", "clone", "forget", NULL};

static json_t *vdi_check(const char *ref, const json_t *rec, const struct ops_facts *f, const char *op)
{
	bool in_use_matters = strcmp(op, "destroy") == 0 || strcmp(op, "resize") == 0 || strcmp(op, "forget") == 0;
	if (!in_use_matters && strcmp(op, "snapshot") && strcmp(op, "clone"))
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "VDI operation %s is not known", op);
	if (in_use_matters && f->of_attached > 0)
		return xerr_new(XE_VDI_IN_USE, ref, op, NULL);
	if (busy(rec))
		return xerr_new(XE_OTHER_OPERATION_IN_PROGRESS, "VDI", ref, NULL);
	return f->of_rolling ? ops_upgrade_check("VDI", op) : NULL;
}

/* ---------------------------------------------------------------- SR */

static const char *const sr_ops[] = {"destroy",	   "forget",	  "plug",	  "unplug",	  "vdi_create",
				     "vdi_destroy", "vdi_resize", "vdi_clone", "vdi_snapshot", NULL};

static json_t *sr_check(const char *ref, const json_t *rec, const struct ops_facts *f, const char *op)
{
	bool known = false;
	for (const char *const *o = sr_ops; *o; o++)
		known = known || strcmp(*o, op) == 0;
	if (!known)
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "SR operation %s is not known", op);
	bool gone = strcmp(op, "destroy") == 0 || strcmp(op, "forget") == 0;
	if (gone && f->of_plugged > 0)
		return xerr_new(XE_SR_HAS_PBD, ref, NULL);
	if (strcmp(op, "destroy") == 0 && f->of_pbds == 0)
		return xerr_new(XE_SR_NO_PBDS, ref, NULL);
	if (strcmp(op, "destroy") == 0 && f->of_vdis > 0)
		return xerr_new(XE_SR_NOT_EMPTY, NULL);
	/* plugging on more hosts goes on in parallel; nothing else does */
	if (busy(rec) && strcmp(op, "plug"))
		return xerr_new(XE_OTHER_OPERATION_IN_PROGRESS, "SR", ref, NULL);
	return f->of_rolling ? ops_upgrade_check("SR", op) : NULL;
}

/* -------------------------------------------------------------- host */

static const char *const host_ops[] = {"evacuate", "vm_start", "vm_migrate", NULL};

static json_t *host_check(const char *ref, const json_t *rec, const char *op)
{
	bool evacuating = false;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)json_object_get(rec, "current_operations"), k, v) evacuating =
		evacuating || strcmp(json_string_value(v) ? json_string_value(v) : "", "evacuate") == 0;
	if (strcmp(op, "evacuate") == 0)
		return busy(rec) ? xerr_new(XE_OTHER_OPERATION_IN_PROGRESS, "host", ref, NULL) : NULL;
	if (strcmp(op, "vm_start") && strcmp(op, "vm_migrate"))
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "host operation %s is not known", op);
	if (!json_is_true(json_object_get(rec, "enabled")))
		return xerr_new(XE_HOST_DISABLED, ref, NULL);
	if (evacuating)
		return xerr_new(XE_HOST_EVACUATE_IN_PROGRESS, ref, NULL);
	return NULL;
}

/* ------------------------------------------------------------ common */

static const char *const *ops_of(const char *cls)
{
	if (strcmp(cls, "VM") == 0)
		return vm_ops;
	if (strcmp(cls, "VDI") == 0)
		return vdi_ops;
	if (strcmp(cls, "SR") == 0)
		return sr_ops;
	if (strcmp(cls, "host") == 0)
		return host_ops;
	return NULL;
}

json_t *ops_check(const char *cls, const char *ref, const json_t *rec, const struct ops_facts *f, const char *op)
{
	static const struct ops_facts none;
	if (!f)
		f = &none;
	if (strcmp(cls, "VM") == 0)
		return vm_check(ref, rec, f, op);
	if (strcmp(cls, "VDI") == 0)
		return vdi_check(ref, rec, f, op);
	if (strcmp(cls, "SR") == 0)
		return sr_check(ref, rec, f, op);
	if (strcmp(cls, "host") == 0)
		return host_check(ref, rec, op);
	return xerr_newf(XE_OPERATION_NOT_ALLOWED, "%s has no operations", cls);
}

json_t *ops_allowed(const char *cls, const char *ref, const json_t *rec, const struct ops_facts *f)
{
	const char *const *all = ops_of(cls);
	if (!all)
		return NULL;
	json_t *out = json_array();
	for (; *all; all++) {
		json_t *e = ops_check(cls, ref, rec, f, *all);
		if (!e)
			json_array_append_new(out, json_string(*all));
		json_decref(e);
	}
	return out;
}
