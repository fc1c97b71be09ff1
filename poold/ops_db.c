/*
 * ops_db.c - the operations decision (ops.c) applied to stored records:
 * facts gathered from the database, operations begun and ended inside
 * transactions, and the store's derive hook that keeps allowed_operations
 * and VBD attachment true at every change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "db.h"
#include "model.h"
#include "ops.h"
#include "poold.h"
#include "upgrade.h"
#include "xerr.h"
#include "util.h"

static int count_where(struct db *db, const char *cls, const char *field, const char *ref, const char *flag)
{
	json_t *all = db_find(db, cls, field, ref);
	int n = 0;
	const char *k;
	json_t *v;
	json_object_foreach(all, k, v) n += !flag || json_is_true(json_object_get(v, flag));
	json_decref(all);
	return n;
}

/* The VM of a VBD or VIF: its power state and an operation that forbids
 * hot-plug now (XAPI: clean_shutdown, hard_shutdown, suspend, pause). */
static void device_vm_facts(struct db *db, const json_t *dev, struct ops_facts *f)
{
	static const char *const blocking[] = {"clean_shutdown", "hard_shutdown", "suspend", "pause"};
	snprintf(f->of_vm, sizeof f->of_vm, "%s", jstr(dev, "VM"));
	json_t *vm = db_obj_get(db, f->of_vm);
	snprintf(f->of_vm_power, sizeof f->of_vm_power, "%s", jstr(vm, "power_state"));
	const char *k;
	json_t *op;
	json_object_foreach(json_object_get(vm, "current_operations"), k, op) {
		for (size_t i = 0; i < sizeof blocking / sizeof blocking[0]; i++)
			if (json_is_string(op) && strcmp(json_string_value(op), blocking[i]) == 0)
				snprintf(f->of_vm_blocking, sizeof f->of_vm_blocking, "%s", blocking[i]);
	}
	json_decref(vm);
}

/* A VBD's VDI: busy, read-only, attached through other VBDs. */
static void vbd_vdi_facts(struct db *db, const char *vbd, const json_t *rec, struct ops_facts *f)
{
	const char *vdi = jstr(rec, "VDI");
	json_t *v = json_is_true(json_object_get(rec, "empty")) ? NULL : db_obj_get(db, vdi);
	if (!v)
		return;
	f->of_vdi_busy = json_object_size(json_object_get(v, "current_operations")) > 0;
	f->of_vdi_read_only = json_is_true(json_object_get(v, "read_only"));
	bool sharable = json_is_true(json_object_get(v, "sharable"));
	json_t *others = db_find(db, "VBD", "VDI", vdi);
	const char *k;
	json_t *b;
	json_object_foreach(others, k, b) {
		if (strcmp(k, vbd) == 0 || sharable || !json_is_true(json_object_get(b, "currently_attached")))
			continue;
		f->of_vdi_used_elsewhere = true;
		f->of_vdi_rw_elsewhere |= strcmp(jstr(b, "mode"), "RW") == 0;
	}
	json_decref(others);
	json_decref(v);
}

/* A guest running on the host (XAPI's HOST_IN_USE names the first). */
static int running_guest(void *ctx, const char *ref, const json_t *v)
{
	struct ops_facts *f = ctx;
	const char *ps = jstr(v, "power_state");
	if (json_is_true(json_object_get(v, "is_control_domain")) || (strcmp(ps, "Running") && strcmp(ps, "Paused")))
		return 0;
	snprintf(f->of_vm, sizeof f->of_vm, "%s", ref);
	return 1;
}

static void host_vm_facts(struct db *db, const char *host, struct ops_facts *f)
{
	db_each(db, "VM", "resident_on", host, running_guest, f);
}

static void facts_load(struct db *db, const char *cls, const char *ref, const json_t *rec, struct ops_facts *f)
{
	memset(f, 0, sizeof *f);
	if (strcmp(cls, "VDI") == 0) {
		f->of_attached = count_where(db, "VBD", "VDI", ref, "currently_attached");
	} else if (strcmp(cls, "SR") == 0) {
		f->of_pbds = count_where(db, "PBD", "SR", ref, NULL);
		f->of_plugged = count_where(db, "PBD", "SR", ref, "currently_attached");
		f->of_vdis = count_where(db, "VDI", "SR", ref, NULL);
	} else if (strcmp(cls, "VBD") == 0 || strcmp(cls, "VIF") == 0) {
		device_vm_facts(db, rec, f);
		if (strcmp(cls, "VBD") == 0)
			vbd_vdi_facts(db, ref, rec, f);
	} else if (strcmp(cls, "host") == 0) {
		host_vm_facts(db, ref, f);
	}
	if (strcmp(cls, "VM") == 0 || strcmp(cls, "VDI") == 0 || strcmp(cls, "SR") == 0)
		f->of_rolling = snap_rolling(db);
}

void ops_facts_load(struct db *db, const char *cls, const char *ref, struct ops_facts *f)
{
	json_t *rec = db_obj_get(db, ref);
	facts_load(db, cls, ref, rec, f);
	json_decref(rec);
}

json_t *ops_assert(struct db *db, const char *ref, const char *op)
{
	char cls[64];
	if (!db_obj_class(db, ref, cls, sizeof cls))
		return xerr_new(XE_HANDLE_INVALID, "object", ref, NULL);
	json_t *rec = db_obj_get(db, ref);
	struct ops_facts f;
	ops_facts_load(db, cls, ref, &f);
	json_t *e = ops_check(cls, ref, rec, &f, op);
	json_decref(rec);
	return e;
}

json_t *ops_begin(struct db *db, const char *ref, const char *op, char *id)
{
	json_t *e = ops_assert(db, ref, op);
	if (e)
		return e;
	json_t *rec = db_obj_get(db, ref);
	json_t *cur = json_deep_copy(json_object_get(rec, "current_operations"));
	json_decref(rec);
	if (!json_is_object(cur)) {
		json_decref(cur);
		cur = json_object();
	}
	model_new_ref(id);
	json_object_set_new(cur, id, json_string(op));
	return db_obj_set(db, ref, "current_operations", cur);
}

json_t *ops_end(struct db *db, const char *ref, const char *id)
{
	json_t *rec = db_obj_get(db, ref);
	json_t *cur = json_object_get(rec, "current_operations");
	json_t *e = NULL;
	if (rec && id && *id && json_object_get(cur, id)) {
		cur = json_deep_copy(cur);
		json_object_del(cur, id);
		e = db_obj_set(db, ref, "current_operations", cur);
	}
	json_decref(rec);
	return e;
}

/* ------------------------------------------------------------- derive */

/* XAPI names a PV disk by its position: userdevice 0 is xvda. */
static void device_name(const char *userdevice, char *out, size_t n)
{
	int d = *userdevice ? atoi(userdevice) : -1;
	if (d >= 0 && d < 26)
		snprintf(out, n, "xvd%c", 'a' + d);
	else
		snprintf(out, n, "%s", "");
}

static bool vm_on(const json_t *rec)
{
	const char *ps = jstr(rec, "power_state");
	return rec && (strcmp(ps, "Running") == 0 || strcmp(ps, "Paused") == 0);
}

/* A VM that started or stopped: its disks and network devices are
 * attached or detached (empty drives stay detached). */
static json_t *vm_devices_follow(struct db *db, const char *vm, bool on)
{
	json_t *e = NULL;
	const char *classes[2] = {"VBD", "VIF"};
	for (int i = 0; i < 2 && !e; i++) {
		json_t *devs = db_find(db, classes[i], "VM", vm);
		const char *k;
		json_t *b;
		json_object_foreach(devs, k, b) {
			if (e)
				break;
			bool attach = on && !json_is_true(json_object_get(b, "empty"));
			json_t *f = json_pack("{s:b}", "currently_attached", attach);
			if (i == 0) {
				char dev[16];
				device_name(attach ? jstr(b, "userdevice") : "", dev, sizeof dev);
				json_object_set_new(f, "device", json_string(dev));
			}
			e = db_obj_update_new(db, k, f);
		}
		json_decref(devs);
	}
	return e;
}

/* Derive ref again (no change of its own: allowed_operations follow). */
static json_t *again(struct db *db, const char *ref)
{
	char cls[64];
	if (!ref || !*ref || strcmp(ref, MODEL_NULL_REF) == 0 || !db_obj_class(db, ref, cls, sizeof cls))
		return NULL;
	json_t *none = json_object();
	json_t *e = db_obj_update(db, ref, none);
	json_decref(none);
	return e;
}

static json_t *devices_again(struct db *db, const char *vm)
{
	json_t *e = NULL;
	const char *classes[2] = {"VBD", "VIF"};
	for (int i = 0; i < 2 && !e; i++) {
		json_t *devs = db_find(db, classes[i], "VM", vm);
		const char *k;
		json_t *b;
		json_object_foreach(devs, k, b) if (!e) e = again(db, k);
		json_decref(devs);
	}
	return e;
}

static bool changed(const json_t *old, const json_t *rec, const char *field)
{
	return !old || !rec || !json_equal(json_object_get(old, field), json_object_get(rec, field));
}

/* A VM's change reaches its devices (attachment, hot-plug rules) and the
 * hosts it leaves or reaches (their reboot and shutdown read where guests
 * run). */
static json_t *vm_propagate(struct db *db, const char *ref, const json_t *old, const json_t *rec)
{
	json_t *e = NULL;
	if (rec && old && vm_on(old) != vm_on(rec))
		e = vm_devices_follow(db, ref, vm_on(rec));
	else if (rec && old && (changed(old, rec, "power_state") || changed(old, rec, "current_operations")))
		e = devices_again(db, ref);
	if (!e && (changed(old, rec, "resident_on") || changed(old, rec, "power_state"))) {
		e = again(db, jstr(old, "resident_on"));
		if (!e && (!old || strcmp(jstr(old, "resident_on"), jstr(rec, "resident_on"))))
			e = again(db, jstr(rec, "resident_on"));
	}
	return e;
}

/* Objects whose operations depend on this change. */
static json_t *propagate(struct db *db, const char *cls, const char *ref, const json_t *old, const json_t *rec)
{
	const json_t *any = rec ? rec : old;
	if (strcmp(cls, "VM") == 0)
		return vm_propagate(db, ref, old, rec);
	if (strcmp(cls, "VBD") == 0 && changed(old, rec, "currently_attached"))
		return again(db, jstr(any, "VDI"));
	if (strcmp(cls, "PBD") == 0 && changed(old, rec, "currently_attached"))
		return again(db, jstr(any, "SR"));
	if (strcmp(cls, "VDI") == 0 && (!old || !rec))
		return again(db, jstr(any, "SR"));
	return NULL;
}

/* A running VM that arrived on a host offering only newer virtual
 * hardware runs there at the host's lowest version: its own is raised
 * (seed 000: old to new, one way; upgrade_hw_fit). */
static void vm_hw_follow(struct db *db, const json_t *old, json_t *rec)
{
	const char *host = jstr(rec, "resident_on");
	if (!vm_on(rec) || (old && vm_on(old) && strcmp(jstr(old, "resident_on"), host) == 0) ||
	    strcmp(host, MODEL_NULL_REF) == 0)
		return;
	json_t *h = db_obj_get(db, host);
	int64_t set[64], at;
	size_t n = snap_hw_set(json_object_get(h, "virtual_hardware_platform_versions"), set, 64);
	json_decref(h);
	json_int_t v = json_integer_value(json_object_get(rec, "hardware_platform_version"));
	if (upgrade_hw_fit(v, set, n, &at) == UPGRADE_HW_RAISED)
		json_object_set_new(rec, "hardware_platform_version", json_integer(at));
}

json_t *ops_rederive(struct db *db, const char *cls)
{
	json_t *all = db_find(db, cls, NULL, NULL), *e = NULL;
	const char *k;
	json_t *v;
	json_object_foreach(all, k, v) if (!e) e = again(db, k);
	json_decref(all);
	return e;
}

json_t *ops_derive(struct db *db, const char *cls, const char *ref, const json_t *old, json_t *rec, bool after,
		   void *ctx)
{
	(void)ctx;
	if (after)
		return propagate(db, cls, ref, old, rec);
	if (rec && strcmp(cls, "VM") == 0)
		vm_hw_follow(db, old, rec);
	if (rec) {
		struct ops_facts f;
		facts_load(db, cls, ref, rec, &f);
		json_t *allowed = ops_allowed(cls, ref, rec, &f);
		if (allowed)
			json_object_set_new(rec, "allowed_operations", allowed);
	}
	return NULL;
}
