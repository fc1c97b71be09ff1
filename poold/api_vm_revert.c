/*
 * api_vm_revert.c - VM.revert(snapshot): the VM becomes what it was when
 * the snapshot was taken (XAPI's xapi_vm_snapshot.revert).
 *
 * In order: a running VM is stopped (hard); the snapshot's disks (and its
 * memory image, for a checkpoint) are cloned; then one transaction puts
 * the clones in place of the disks they are snapshots of, gives the VM
 * the snapshot's devices and fields, makes the snapshot its parent and
 * leaves it halted, or suspended on the cloned image. Only then are the
 * replaced disks and an old suspend image removed. A disk added after the
 * snapshot is detached and kept; a failed clone leaves the VM's disks as
 * they were (XAPI deletes them first to make room; here nothing is lost
 * before its replacement exists).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "ops.h"
#include "poold.h"
#include "util.h"
#include "vm_rules.h"
#include "xerr.h"

struct revert {
	char rv_snap[64], rv_vm[64], rv_snap_id[64], rv_vm_id[64];
	char rv_host[64];     /* where the VM ran (it is stopped first) */
	json_t *rv_disks;     /* the snapshot's VDIs cloned, in order */
	char rv_image[64];    /* the snapshot's suspend VDI, or "" */
	json_t *rv_old;       /* the VM's VDIs (and image) to remove after */
};

static struct revert *revert_dup(const struct revert *r)
{
	struct revert *d = xcalloc(1, sizeof *d);
	*d = *r;
	return d;
}

static void revert_free(void *p)
{
	struct revert *r = p;
	json_decref(r->rv_disks);
	json_decref(r->rv_old);
	free(r);
}

static json_t *begin_txn(struct db *db, void *ctx)
{
	struct revert *r = ctx;
	json_t *e = ops_begin(db, r->rv_snap, "revert", r->rv_snap_id);
	if (!e && (e = ops_begin(db, r->rv_vm, "reverting", r->rv_vm_id)))
		json_decref(ops_end(db, r->rv_snap, r->rv_snap_id)); /* the transaction is rolled back anyway */
	return e;
}

static json_t *end_txn(struct db *db, void *ctx)
{
	struct revert *r = ctx;
	json_t *e = ops_end(db, r->rv_snap, r->rv_snap_id);
	return e ? e : ops_end(db, r->rv_vm, r->rv_vm_id);
}

static void revert_failed(struct poold *pd, void *ctx, json_t **err)
{
	struct revert *r = ctx;
	json_decref(db_txn(pd->pd_db, end_txn, r));
	if (*err && !xerr_is(*err, XE_VM_REVERT_FAILED)) {
		char *t = xerr_to_text(*err);
		log_warn("VM %s: revert to %s failed: %s", r->rv_vm, r->rv_snap, t ? t : "?");
		free(t);
		json_decref(*err);
		*err = xerr_new(XE_VM_REVERT_FAILED, r->rv_vm, r->rv_snap, NULL);
	}
}

/* The VM's disks the snapshot has copies of (replaced), its disks without
 * (detached, kept), and its image. */
static void old_disks(struct db *db, struct revert *r)
{
	r->rv_old = json_array();
	json_t *vbds = db_find(db, "VBD", "VM", r->rv_vm);
	const char *k;
	json_t *b;
	json_object_foreach(vbds, k, b) {
		const char *vdi = jstr(b, "VDI");
		bool copied = false;
		size_t i;
		json_t *s;
		json_array_foreach(r->rv_disks, i, s) {
			json_t *sv = db_obj_get(db, json_string_value(s));
			copied = copied || strcmp(jstr(sv, "snapshot_of"), vdi) == 0;
			json_decref(sv);
		}
		if (copied && strcmp(jstr(b, "type"), "Disk") == 0)
			json_array_append_new(r->rv_old, json_string(vdi));
	}
	json_decref(vbds);
}

/* In one transaction: the clones in place (made[i] for rv_disks[i], the
 * image's after them), the snapshot's devices and fields, its power state. */
struct switch_ctx {
	struct revert *sw_r;
	json_t *sw_made;
};

static json_t *destroy_devices(struct db *db, const char *cls, const char *vm)
{
	json_t *devs = db_find(db, cls, "VM", vm), *e = NULL;
	const char *k;
	json_t *d;
	json_object_foreach(devs, k, d) if (!e) e = db_obj_destroy(db, k);
	json_decref(devs);
	return e;
}

/* Older snapshots of a replaced disk are snapshots of its clone now. */
static json_t *repoint(struct db *db, const char *old, const char *clone)
{
	json_t *snaps = db_find(db, "VDI", "snapshot_of", old), *e = NULL;
	const char *k;
	json_t *s;
	json_object_foreach(snaps, k, s) if (!e) e = db_obj_set(db, k, "snapshot_of", json_string(clone));
	json_decref(snaps);
	return e;
}

static json_t *switch_txn(struct db *db, void *ctx)
{
	struct switch_ctx *sw = ctx;
	struct revert *r = sw->sw_r;
	json_t *snap, *e = db_obj_get_checked(db, "VM", r->rv_snap, &snap);
	if (e)
		return e;
	json_t *map = json_object();
	size_t i;
	json_t *s;
	json_array_foreach(r->rv_disks, i, s) {
		json_t *sv = db_obj_get(db, json_string_value(s));
		json_object_set(map, json_string_value(s), json_array_get(sw->sw_made, i));
		if (!e)
			e = repoint(db, jstr(sv, "snapshot_of"), json_string_value(json_array_get(sw->sw_made, i)));
		json_decref(sv);
	}
	const char *image = *r->rv_image ? json_string_value(json_array_get(sw->sw_made, json_array_size(r->rv_disks)))
					 : MODEL_NULL_REF;
	json_t *f = vm_revert_fields(snap);
	json_object_set_new(f, "power_state", json_string(*r->rv_image ? "Suspended" : "Halted"));
	json_object_set_new(f, "suspend_VDI", json_string(image));
	json_object_set_new(f, "parent", json_string(r->rv_snap));
	if (!e)
		e = destroy_devices(db, "VBD", r->rv_vm);
	if (!e)
		e = destroy_devices(db, "VIF", r->rv_vm);
	if (!e)
		e = vm_devices_copy(db, "VBD", "VM", r->rv_snap, r->rv_vm, map);
	if (!e)
		e = vm_devices_copy(db, "VIF", "VM", r->rv_snap, r->rv_vm, NULL);
	if (!e)
		e = db_obj_update(db, r->rv_vm, f);
	if (!e)
		e = end_txn(db, r);
	json_decref(f);
	json_decref(map);
	json_decref(snap);
	return e;
}

static json_t *cloned(struct api_call *c, struct poold *pd, void *ctx, json_t *made, json_t **result)
{
	(void)c, (void)result;
	struct revert *r = ctx;
	struct switch_ctx sw = {r, made};
	json_t *e = db_txn(pd->pd_db, switch_txn, &sw);
	if (e)
		return e;
	vdijob_undo(pd, r->rv_old); /* the replaced disks and the old image go, now */
	log_info("VM %s reverted to snapshot %s", r->rv_vm, r->rv_snap);
	return NULL;
}

static json_t *clone_all(struct api_call *c, struct poold *pd, struct revert *r)
{
	json_t *items = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(r->rv_disks, i, v) json_array_append_new(items, json_pack("{s:O, s:s, s:b}", "vdi", v, "sr", "",
										     "snapshot", 0));
	if (*r->rv_image)
		json_array_append_new(items, json_pack("{s:s, s:s, s:b}", "vdi", r->rv_image, "sr", "", "snapshot", 0));
	json_t *result = NULL;
	return vdijob_run(pd, c, items, cloned, revert_failed, r, revert_free, &result);
}

/* The VM stopped: recorded halted, then the clones. */
static json_t *halted_txn(struct db *db, void *ctx)
{
	struct revert *r = ctx;
	return db_obj_update_new(db, r->rv_vm,
				 json_pack("{s:s, s:s, s:s, s:I}", "power_state", "Halted", "resident_on", MODEL_NULL_REF,
					   "scheduled_to_be_resident_on", MODEL_NULL_REF, "domid", (json_int_t)-1));
}

static json_t *stopped(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err, json_t **result)
{
	(void)result;
	struct revert *r = revert_dup(ctx); /* ctx is freed after this callback */
	json_t *e = err ? json_incref(err) : NULL;
	if (!e) {
		vm_changed_stamp(pd, r->rv_vm, r->rv_host, answer, true);
		e = db_txn(pd->pd_db, halted_txn, r);
	}
	if (e) {
		revert_failed(pd, r, &e);
		revert_free(r);
		return e;
	}
	return clone_all(c, pd, r);
}

/* VM.revert(snapshot) */
json_t *vm_revert(struct api_call *c)
{
	struct poold *pd = c->ac_pd;
	const char *snap;
	json_t *srec, *vrec = NULL, *e = api_arg_ref(c, 0, "VM", &snap);
	if (e || (e = db_obj_get_checked(pd->pd_db, "VM", snap, &srec)))
		return e;
	struct revert *r = xcalloc(1, sizeof *r);
	snprintf(r->rv_snap, sizeof r->rv_snap, "%s", snap);
	snprintf(r->rv_vm, sizeof r->rv_vm, "%s", jstr(srec, "snapshot_of"));
	snprintf(r->rv_image, sizeof r->rv_image, "%s", strcmp(jstr(srec, "suspend_VDI"), MODEL_NULL_REF) ? jstr(srec, "suspend_VDI") : "");
	json_decref(srec);
	r->rv_disks = json_array();
	if ((e = ops_assert(pd->pd_db, snap, "revert")) || (e = db_obj_get_checked(pd->pd_db, "VM", r->rv_vm, &vrec))) {
		revert_free(r);
		return e;
	}
	json_t *vbds = db_find(pd->pd_db, "VBD", "VM", snap);
	const char *k;
	json_t *b;
	json_object_foreach(vbds, k, b) if (strcmp(jstr(b, "type"), "Disk") == 0 && !json_is_true(json_object_get(b, "empty")))
		json_array_append_new(r->rv_disks, json_string(jstr(b, "VDI")));
	json_decref(vbds);
	old_disks(pd->pd_db, r);
	const char *ps = jstr(vrec, "power_state"), *img = jstr(vrec, "suspend_VDI");
	if (strcmp(ps, "Suspended") == 0 && strcmp(img, MODEL_NULL_REF))
		json_array_append_new(r->rv_old, json_string(img));
	snprintf(r->rv_host, sizeof r->rv_host, "%s", jstr(vrec, "resident_on"));
	bool live = strcmp(ps, "Running") == 0 || strcmp(ps, "Paused") == 0;
	json_t *uuid = json_incref(json_object_get(vrec, "uuid"));
	json_decref(vrec);
	if ((e = db_txn(pd->pd_db, begin_txn, r))) {
		json_decref(uuid);
		revert_free(r);
		return e;
	}
	if (!live) {
		json_decref(uuid);
		return clone_all(c, pd, r);
	}
	/* XAPI stops a VM that runs before it reverts it */
	struct revert *step = revert_dup(r);
	free(r);
	return agent_call_done(pd, c, step->rv_host, AGENT_VM_SHUTDOWN, json_pack("[o,b]", uuid, 1), stopped, step);
}
