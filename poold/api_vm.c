/*
 * api_vm.c - VM.create, VM.clone, VM.destroy.
 *
 * A VM record always comes with its VM_metrics object. Power-state rules
 * are XAPI's: clone and destroy need a halted VM.
 */
#include <ctype.h>
#include <stdio.h>
#include <strings.h>
#include <string.h>
#include "ops.h"
#include "poold.h"
#include "xerr.h"
#include "util.h"

json_t *api_ctor_record(const struct model_class *cls, const json_t *given);

static json_t *vm_power_check(const char *ref, const json_t *rec, const char *want)
{
	const char *ps = json_string_value(json_object_get(rec, "power_state"));
	if (ps && strcasecmp(ps, want) == 0)
		return NULL;
	char lw[32], lp[32];
	snprintf(lw, sizeof lw, "%s", want);
	snprintf(lp, sizeof lp, "%s", ps ? ps : "");
	for (char *p = lw; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	for (char *p = lp; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return xerr_new(XE_VM_BAD_POWER_STATE, ref, lw, lp, NULL);
}

static json_int_t ival(const json_t *rec, const char *k)
{
	return json_integer_value(json_object_get(rec, k));
}

json_t *vm_record_insert(struct db *db, json_t *rec, char *ref_out)
{
	char mref[64];
	/* the limits are checked on what will be stored: defaults included */
	json_t *full = model_new_record(model_class_find("VM"));
	json_object_update(full, rec);
	json_t *e = vm_check_limits("", NULL, full);
	json_decref(full);
	if (e)
		return e;
	json_t *m = json_object();
	e = db_obj_create(db, "VM_metrics", m, mref);
	json_decref(m);
	if (e)
		return e;
	json_object_set_new(rec, "metrics", json_string(mref));
	json_object_set_new(rec, "power_state", json_string("Halted"));
	return db_obj_create(db, "VM", rec, ref_out);
}

struct vm_create_ctx {
	json_t *rec;
	char ref[64];
};

static json_t *vm_create_txn(struct db *db, void *ctx)
{
	struct vm_create_ctx *v = ctx;
	json_t *rec = json_deep_copy(v->rec);
	/* a record without memory limits gets consistent ones from static_max */
	json_int_t smax = ival(rec, "memory_static_max");
	const char *dflt[] = {"memory_dynamic_max", "memory_dynamic_min"};
	for (int i = 0; i < 2; i++)
		if (!json_object_get(rec, dflt[i]))
			json_object_set_new(rec, dflt[i], json_integer(smax));
	json_t *e = vm_record_insert(db, rec, v->ref);
	json_decref(rec);
	return e;
}

json_t *vm_create(struct api_call *c)
{
	const struct model_class *cls = model_class_find("VM");
	json_t *given, *e = api_arg_obj(c, 0, "args", &given);
	if (e || (e = api_record_check(cls, given)))
		return e;
	struct vm_create_ctx v = {api_ctor_record(cls, given), ""};
	e = db_txn(c->ac_pd->pd_db, vm_create_txn, &v);
	json_decref(v.rec);
	if (!e)
		c->ac_result = json_string(v.ref);
	return e;
}

/* Fields a copy does not inherit: identity, runtime state, relations. */
static const char *const vm_clone_reset[] = {
	"uuid", "power_state", "resident_on", "scheduled_to_be_resident_on", "domid", "metrics",
	"guest_metrics", "VBDs", "VIFs", "consoles", "snapshots", "children", "snapshot_of",
	"is_a_snapshot", "allowed_operations", "current_operations", "last_boot_CPU_flags",
	"last_booted_record", "is_default_template", "memory_overhead", "memory_target",
	"generation_id", "suspend_VDI",
};

json_t *vm_devices_copy(struct db *db, const char *cls, const char *parent_field, const char *from, const char *to,
			const json_t *vdi_map)
{
	json_t *kids = db_find(db, cls, parent_field, from);
	const char *ref;
	json_t *rec;
	json_t *e = NULL;
	json_object_foreach(kids, ref, rec) {
		json_t *copy = json_deep_copy(rec);
		json_object_del(copy, "uuid");
		json_object_set_new(copy, parent_field, json_string(to));
		json_object_set_new(copy, "currently_attached", json_false());
		if (strcmp(cls, "VBD") == 0)
			json_object_set_new(copy, "device", json_string(""));
		json_t *moved = json_object_get(vdi_map, json_string_value(json_object_get(rec, "VDI")));
		if (moved)
			json_object_set(copy, "VDI", moved);
		char nref[64];
		e = db_obj_create(db, cls, copy, nref);
		json_decref(copy);
		if (e)
			break;
	}
	json_decref(kids);
	return e;
}

struct vm_clone_ctx {
	const char *vm, *name, *op_id;
	json_t *disk_map; /* source VDI ref -> its copy's ref (writable disks) */
	char ref[64];
};

static json_t *vm_clone_txn(struct db *db, void *ctx)
{
	struct vm_clone_ctx *v = ctx;
	json_t *rec, *e = db_obj_get_checked(db, "VM", v->vm, &rec);
	if (e)
		return e;
	for (size_t i = 0; i < sizeof vm_clone_reset / sizeof vm_clone_reset[0]; i++)
		json_object_del(rec, vm_clone_reset[i]);
	json_object_set_new(rec, "name_label", json_string(v->name));
	/* CA-52668: a clone or copy is a new top-level VM */
	json_object_set_new(rec, "parent", json_string(MODEL_NULL_REF));
	/* a copy of a built-in template is the user's own, as in XAPI */
	json_object_del(json_object_get(rec, "other_config"), "default_template");
	e = vm_record_insert(db, rec, v->ref);
	json_decref(rec);
	/* disks: the clone shares no writable VDI with its parent; its VBDs
	 * point at the copies made before (CDs and read-only disks are shared) */
	if (!e)
		e = vm_devices_copy(db, "VBD", "VM", v->vm, v->ref, v->disk_map);
	if (!e)
		e = vm_devices_copy(db, "VIF", "VM", v->vm, v->ref, NULL);
	return e ? e : ops_end(db, v->vm, v->op_id);
}

struct limits_ctx {
	const char *vm;
	json_int_t v[4];
};

static json_t *limits_txn(struct db *db, void *ctx)
{
	struct limits_ctx *l = ctx;
	json_t *rec, *e = db_obj_get_checked(db, "VM", l->vm, &rec);
	if (e)
		return e;
	json_t *f = json_pack("{s:I, s:I, s:I, s:I}", "memory_static_min", l->v[0], "memory_static_max", l->v[1],
			      "memory_dynamic_min", l->v[2], "memory_dynamic_max", l->v[3]);
	json_t *after = json_deep_copy(rec);
	json_object_update(after, f);
	e = ops_assert(db, l->vm, "changing_memory_limits"); /* with its facts: the upgrade blocks it */
	if (!e)
		e = vm_check_limits(l->vm, rec, after);
	json_decref(after);
	json_decref(rec);
	if (!e)
		e = db_obj_update(db, l->vm, f);
	json_decref(f);
	return e;
}

/* VM.set_memory_limits(vm, static_min, static_max, dynamic_min, dynamic_max):
 * all four at once, so a change of size never passes through an invalid
 * combination. */
json_t *vm_set_memory_limits(struct api_call *c)
{
	struct limits_ctx l = {0};
	static const char *names[4] = {"static_min", "static_max", "dynamic_min", "dynamic_max"};
	json_t *e = api_arg_ref(c, 0, "VM", &l.vm);
	for (int i = 0; i < 4 && !e; i++)
		e = api_arg_int(c, (size_t)i + 1, names[i], &l.v[i]);
	return e ? e : db_txn(c->ac_pd->pd_db, limits_txn, &l);
}

/* The disks a clone copies: the writable, unshared ones (read-only disks
 * and CDs are shared); a copy takes every disk (XAPI's full copy). */
static json_t *disks_to_copy(struct db *db, const char *vm, bool all)
{
	json_t *vbds = db_find(db, "VBD", "VM", vm), *out = json_array();
	const char *k;
	json_t *vbd;
	json_object_foreach(vbds, k, vbd) {
		const char *mode = json_string_value(json_object_get(vbd, "mode"));
		json_t *vdi = json_is_true(json_object_get(vbd, "empty")) ? NULL
			      : db_obj_get(db, json_string_value(json_object_get(vbd, "VDI")));
		bool disk = strcmp(jstr(vbd, "type"), "Disk") == 0;
		if (vdi && mode && ((all && disk) || (strcmp(mode, "RW") == 0 && !json_is_true(json_object_get(vdi, "sharable")))))
			json_array_append(out, json_object_get(vbd, "VDI"));
		json_decref(vdi);
	}
	json_decref(vbds);
	return out;
}

/* A clone with disks: each writable disk is copied by an agent with its SR
 * plugged, one after the other (vdijob.c); the VM's records come last, in
 * one transaction. If a copy fails, the copies already made are removed. */
struct clone_job {
	char cj_vm[64], cj_id[64];
	char *cj_name;
	json_t *cj_disks; /* VDI refs copied, in items' order */
};

static void clone_job_free(void *p)
{
	struct clone_job *j = p;
	free(j->cj_name);
	json_decref(j->cj_disks);
	free(j);
}

static json_t *clone_end_txn(struct db *db, void *ctx)
{
	struct clone_job *j = ctx;
	return ops_end(db, j->cj_vm, j->cj_id);
}

static void clone_failed(struct poold *pd, void *ctx, json_t **err)
{
	(void)err;
	json_decref(db_txn(pd->pd_db, clone_end_txn, ctx));
}

static json_t *clone_done(struct api_call *c, struct poold *pd, void *ctx, json_t *made, json_t **result)
{
	(void)c;
	struct clone_job *j = ctx;
	json_t *map = json_object();
	size_t i;
	json_t *v;
	json_array_foreach(j->cj_disks, i, v) json_object_set(map, json_string_value(v), json_array_get(made, i));
	struct vm_clone_ctx x = {j->cj_vm, j->cj_name, j->cj_id, map, ""};
	json_t *e = db_txn(pd->pd_db, vm_clone_txn, &x);
	json_decref(map);
	if (!e)
		*result = json_string(x.ref);
	return e;
}

static json_t *begin_txn(struct db *db, void *ctx)
{
	const char **a = ctx; /* [vm, op, id out] */
	return ops_begin(db, a[0], a[1], (char *)a[2]);
}

/* VM.clone (op "clone", dst_sr NULL) and VM.copy (op "copy"): the disks
 * copied (into dst_sr, or each in its own SR), then the VM's records. */
static json_t *clone_common(struct api_call *c, const char *op, const char *dst_sr)
{
	const char *vm, *name;
	json_t *e = api_arg_ref(c, 0, "VM", &vm);
	if (e || (e = api_arg_str(c, 1, "new_name", &name)))
		return e;
	struct clone_job *j = xcalloc(1, sizeof *j);
	snprintf(j->cj_vm, sizeof j->cj_vm, "%s", vm);
	const char *b[3] = {vm, op, j->cj_id};
	if ((e = db_txn(c->ac_pd->pd_db, begin_txn, b))) {
		free(j);
		return e;
	}
	j->cj_name = xstrdup(name);
	j->cj_disks = disks_to_copy(c->ac_pd->pd_db, vm, dst_sr != NULL);
	json_t *items = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(j->cj_disks, i, v) json_array_append_new(
		items, json_pack("{s:O, s:s, s:b}", "vdi", v, "sr", dst_sr ? dst_sr : "", "snapshot", 0));
	json_t *result = NULL;
	e = vdijob_run(c->ac_pd, c, items, clone_done, clone_failed, j, clone_job_free, &result);
	if (!e)
		c->ac_result = result;
	return e;
}

json_t *vm_clone(struct api_call *c)
{
	return clone_common(c, "clone", NULL);
}

/* VM.copy(vm, new_name, sr): full copies of every disk into sr (a null or
 * unknown sr: each disk in its own SR, as XAPI). */
json_t *vm_copy(struct api_call *c)
{
	const char *sr;
	json_t *e = api_arg_str(c, 2, "sr", &sr);
	if (e)
		return e;
	char cls[32];
	if (!db_obj_class(c->ac_pd->pd_db, sr, cls, sizeof cls) || strcmp(cls, "SR"))
		sr = "";
	json_t *rec = *sr ? db_obj_get(c->ac_pd->pd_db, sr) : NULL;
	bool iso = rec && strcmp(jstr(rec, "content_type"), "iso") == 0;
	json_decref(rec);
	if (iso)
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "Cannot copy a VM's disks to an ISO SR");
	return clone_common(c, "copy", sr);
}

static json_t *destroy_children(struct db *db, const char *cls, const char *field, const char *parent)
{
	json_t *kids = db_find(db, cls, field, parent);
	const char *ref;
	json_t *rec, *e = NULL;
	json_object_foreach(kids, ref, rec) if (!e) e = db_obj_destroy(db, ref);
	json_decref(kids);
	return e;
}

static json_t *vm_destroy_txn(struct db *db, void *ctx)
{
	const char *vm = ctx;
	json_t *rec, *e = db_obj_get_checked(db, "VM", vm, &rec);
	if (e)
		return e;
	if (json_is_true(json_object_get(rec, "is_default_template")))
		e = xerr_new(XE_VM_CANNOT_DELETE_DEFAULT_TEMPLATE, vm, NULL);
	else if (json_is_true(json_object_get(rec, "is_control_domain")))
		e = xerr_newf(XE_OPERATION_NOT_ALLOWED, "VM %s is a control domain", vm);
	if (!e)
		e = vm_power_check(vm, rec, "Halted");
	const char *metrics = json_string_value(json_object_get(rec, "metrics"));
	if (!e)
		e = destroy_children(db, "VBD", "VM", vm);
	if (!e)
		e = destroy_children(db, "VIF", "VM", vm);
	if (!e && metrics && strcmp(metrics, MODEL_NULL_REF)) {
		char have[64];
		if (db_obj_class(db, metrics, have, sizeof have))
			e = db_obj_destroy(db, metrics);
	}
	if (!e)
		e = db_obj_destroy(db, vm);
	json_decref(rec);
	return e;
}

json_t *vm_destroy(struct api_call *c)
{
	const char *vm;
	json_t *e = api_arg_ref(c, 0, "VM", &vm);
	return e ? e : db_txn(c->ac_pd->pd_db, vm_destroy_txn, (void *)vm);
}
