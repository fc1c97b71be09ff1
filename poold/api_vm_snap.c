/*
 * api_vm_snap.c - VM.snapshot and VM.checkpoint: a new VM record marked
 * is_a_snapshot (a template, snapshot_of the VM, its disks copied as VDI
 * snapshots, its VIFs with the same MACs) and, for a checkpoint, the
 * guest's memory as the snapshot's suspend VDI.
 *
 * A running (or paused) VM's disks are copied by its host's agent while
 * the guest is paused for the instant of the copy (agent.vm_checkpoint),
 * so disks and memory are one moment. Meanwhile the VM is held on its
 * host (scheduled_to_be_resident_on, as a suspend): a report made while
 * the guest is stopped for the copies (a Xen guest suspends itself and
 * its domain is listed paused) decides nothing about it. A halted or suspended VM's disks are
 * copied by any host with the SR plugged (vdijob.c). Either way the new
 * records are written in one transaction once every copy exists; a failure
 * removes the copies. The VM's parent becomes the snapshot, as XAPI.
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

/* What a snapshot remembers while its copies are made. */
struct snapjob {
	char sj_vm[64], sj_id[64], sj_host[64];
	char *sj_name;
	bool sj_checkpoint;
	json_t *sj_disks;  /* VDI refs snapshotted, in order */
	json_t *sj_uuids;  /* their copies' uuids (agent path) */
	char sj_image_sr[64], sj_image_uuid[48]; /* checkpoint of a running VM */
	char sj_image_src[64]; /* checkpoint of a suspended VM: its image, copied */
	bool sj_live;	       /* the agent copies: the VM is held */
};

static void snapjob_free(void *p)
{
	struct snapjob *j = p;
	free(j->sj_name);
	json_decref(j->sj_disks);
	json_decref(j->sj_uuids);
	free(j);
}

/* The operation ends; a live VM's hold goes. */
static json_t *snap_end(struct db *db, struct snapjob *j)
{
	json_t *e = j->sj_live ? db_obj_set(db, j->sj_vm, "scheduled_to_be_resident_on", json_string(MODEL_NULL_REF))
			       : NULL;
	return e ? e : ops_end(db, j->sj_vm, j->sj_id);
}

static json_t *end_txn(struct db *db, void *ctx)
{
	return snap_end(db, ctx);
}

static void snap_failed(struct poold *pd, void *ctx, json_t **err)
{
	(void)err;
	json_decref(db_txn(pd->pd_db, end_txn, ctx));
}

/* The disks a snapshot copies: Disk VBDs with a VDI, not in ignore. */
static json_t *snap_disks(struct db *db, const char *vm, const json_t *ignore)
{
	json_t *vbds = db_find(db, "VBD", "VM", vm), *out = json_array();
	const char *k;
	json_t *b;
	json_object_foreach(vbds, k, b) {
		const char *vdi = jstr(b, "VDI");
		bool skip = json_is_true(json_object_get(b, "empty")) || strcmp(jstr(b, "type"), "Disk") ||
			    !*vdi || strcmp(vdi, MODEL_NULL_REF) == 0;
		size_t i;
		json_t *x;
		json_array_foreach(ignore, i, x) skip = skip || strcmp(json_string_value(x) ?: "", vdi) == 0;
		if (!skip)
			json_array_append_new(out, json_string(vdi));
	}
	json_decref(vbds);
	return out;
}

/* In one transaction: the snapshot VM, its devices on the copies (map:
 * source VDI -> copy), its image, the VM's new parent. */
struct snap_records {
	struct snapjob *sr_job;
	json_t *sr_map;
	const char *sr_image;  /* the snapshot's suspend VDI, or NULL */
	char sr_ref[64];
};

static json_t *records_txn(struct db *db, void *ctx)
{
	struct snap_records *r = ctx;
	struct snapjob *j = r->sr_job;
	json_t *vm, *e = db_obj_get_checked(db, "VM", j->sj_vm, &vm);
	if (e)
		return e;
	char now[32];
	model_now(now);
	bool memory = r->sr_image != NULL;
	json_t *rec = vm_snapshot_record(vm, j->sj_vm, j->sj_name, now, "Halted");
	json_decref(vm);
	e = vm_record_insert(db, rec, r->sr_ref);
	json_decref(rec);
	if (!e && memory)
		e = db_obj_update_new(db, r->sr_ref,
				      json_pack("{s:s, s:s}", "power_state", "Suspended", "suspend_VDI", r->sr_image));
	if (!e)
		e = vm_devices_copy(db, "VBD", "VM", j->sj_vm, r->sr_ref, r->sr_map);
	if (!e)
		e = vm_devices_copy(db, "VIF", "VM", j->sj_vm, r->sr_ref, NULL);
	if (!e)
		e = db_obj_set(db, j->sj_vm, "parent", json_string(r->sr_ref));
	return e ? e : snap_end(db, j);
}

/* ------------------------------------------ a halted or suspended VM */

static json_t *copied(struct api_call *c, struct poold *pd, void *ctx, json_t *made, json_t **result)
{
	(void)c;
	struct snapjob *j = ctx;
	struct snap_records r = {j, json_object(), NULL, ""};
	size_t i;
	json_t *v;
	json_array_foreach(j->sj_disks, i, v) json_object_set(r.sr_map, json_string_value(v), json_array_get(made, i));
	if (*j->sj_image_src)
		r.sr_image = json_string_value(json_array_get(made, json_array_size(j->sj_disks)));
	json_t *e = db_txn(pd->pd_db, records_txn, &r);
	json_decref(r.sr_map);
	if (!e)
		*result = json_string(r.sr_ref);
	return e;
}

static json_t *snap_offline(struct api_call *c, struct snapjob *j)
{
	json_t *items = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(j->sj_disks, i, v) json_array_append_new(items, json_pack("{s:O, s:s, s:b}", "vdi", v, "sr", "",
										     "snapshot", 1));
	if (*j->sj_image_src)
		json_array_append_new(items, json_pack("{s:s, s:s, s:b}", "vdi", j->sj_image_src, "sr", "", "snapshot", 0));
	json_t *result = NULL, *e = vdijob_run(c->ac_pd, c, items, copied, snap_failed, j, snapjob_free, &result);
	if (!e)
		c->ac_result = result;
	return e;
}

/* ------------------------------------------------- a running VM */

static json_t *insert_txn(struct db *db, void *ctx)
{
	json_t **a = ctx; /* [record, answer, ref out] */
	char ref[64];
	json_t *e = vdi_record_insert(db, a[0], a[1], ref);
	if (!e)
		a[2] = json_string(ref);
	return e;
}

/* The copies the agent made, recorded; their refs appended to made. */
static json_t *record_copies(struct poold *pd, struct snapjob *j, json_t *answer, json_t *made, json_t **image)
{
	json_t *e = NULL;
	size_t i;
	json_t *v;
	json_array_foreach(j->sj_disks, i, v) {
		json_t *rec = vdi_copy_record(pd->pd_db, json_string_value(v), json_string_value(json_array_get(j->sj_uuids, i)),
					      true);
		json_t *a[3] = {rec, json_array_get(json_object_get(answer, "disks"), i), NULL};
		e = e ? e : db_txn(pd->pd_db, insert_txn, a);
		json_decref(rec);
		if (a[2])
			json_array_append_new(made, a[2]);
	}
	json_t *img = json_object_get(answer, "image");
	if (json_is_object(img)) {
		json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:O, s:s}", "uuid", j->sj_image_uuid, "name_label",
					"Suspend image", "name_description", "", "SR", j->sj_image_sr, "virtual_size",
					json_object_get(img, "virtual_size"), "type", "suspend");
		json_t *a[3] = {rec, img, NULL};
		json_t *ie = db_txn(pd->pd_db, insert_txn, a);
		e = e ? (json_decref(ie), e) : ie;
		json_decref(rec);
		*image = a[2];
		if (a[2])
			json_array_append(made, a[2]);
	}
	return e;
}

static json_t *taken(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err, json_t **result)
{
	(void)c;
	struct snapjob *j = ctx;
	if (answer) /* reports from the copies' moment cannot undo what follows */
		vm_changed_stamp(pd, j->sj_vm, j->sj_host, answer, true);
	json_t *made = json_array(), *image = NULL, *e = err ? json_incref(err) : NULL;
	if (!e)
		e = record_copies(pd, j, answer, made, &image);
	struct snap_records r = {j, json_object(), json_string_value(image), ""};
	for (size_t i = 0; !e && i < json_array_size(j->sj_disks); i++)
		json_object_set(r.sr_map, json_string_value(json_array_get(j->sj_disks, i)), json_array_get(made, i));
	if (!e)
		e = db_txn(pd->pd_db, records_txn, &r);
	if (e) {
		vdijob_undo(pd, made);
		snap_failed(pd, j, &e);
	} else {
		*result = json_string(r.sr_ref);
		log_info("VM %s: %s %s taken", j->sj_vm, j->sj_checkpoint ? "checkpoint" : "snapshot", r.sr_ref);
	}
	json_decref(r.sr_map);
	json_decref(image);
	json_decref(made);
	free(j->sj_name);
	json_decref(j->sj_disks);
	json_decref(j->sj_uuids);
	return e;
}

/* agent.vm_checkpoint's options: each disk's SR, VDI and copy's uuid, and
 * the image's place for a checkpoint. */
static json_t *live_options(struct db *db, struct snapjob *j)
{
	json_t *disks = json_array();
	j->sj_uuids = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(j->sj_disks, i, v) {
		json_t *vdi = db_obj_get(db, json_string_value(v)), *sr = db_obj_get(db, jstr(vdi, "SR"));
		char uuid[48];
		model_new_uuid(uuid);
		json_array_append_new(j->sj_uuids, json_string(uuid));
		json_array_append_new(disks, json_pack("{s:s, s:s, s:s}", "sr", jstr(sr, "uuid"), "vdi", jstr(vdi, "uuid"),
						       "new_vdi", uuid));
		json_decref(sr);
		json_decref(vdi);
	}
	json_t *opts = json_pack("{s:o}", "disks", disks);
	if (*j->sj_image_sr) {
		json_t *sr = db_obj_get(db, j->sj_image_sr);
		model_new_uuid(j->sj_image_uuid);
		json_object_set_new(opts, "image", json_pack("{s:s, s:s}", "sr", jstr(sr, "uuid"), "vdi", j->sj_image_uuid));
		json_decref(sr);
	}
	return opts;
}

/* ---------------------------------------------------------- the calls */

static json_t *begin_txn(struct db *db, void *ctx)
{
	struct snapjob *j = ctx;
	json_t *e = ops_begin(db, j->sj_vm, j->sj_checkpoint ? "checkpoint" : "snapshot", j->sj_id);
	return e || !j->sj_live ? e : db_obj_set(db, j->sj_vm, "scheduled_to_be_resident_on", json_string(j->sj_host));
}

static json_t *snapshot_common(struct api_call *c, bool checkpoint)
{
	struct poold *pd = c->ac_pd;
	const char *vm, *name;
	json_t *ignore = NULL, *rec, *e = api_arg_ref(c, 0, "VM", &vm);
	if (e || (e = api_arg_str(c, 1, "new_name", &name)) ||
	    (json_array_size(c->ac_args) > 2 && !json_is_array(ignore = json_array_get(c->ac_args, 2)) &&
	     (e = xerr_new(XE_FIELD_TYPE_ERROR, "ignore_vdis", NULL))) ||
	    (e = db_obj_get_checked(pd->pd_db, "VM", vm, &rec)))
		return e;
	struct snapjob *j = xcalloc(1, sizeof *j);
	snprintf(j->sj_vm, sizeof j->sj_vm, "%s", vm);
	snprintf(j->sj_host, sizeof j->sj_host, "%s", jstr(rec, "resident_on"));
	j->sj_name = xstrdup(name);
	j->sj_checkpoint = checkpoint;
	j->sj_disks = snap_disks(pd->pd_db, vm, ignore);
	const char *ps = jstr(rec, "power_state");
	bool live = strcmp(ps, "Running") == 0 || strcmp(ps, "Paused") == 0;
	j->sj_live = live;
	if (checkpoint && live)
		e = vm_suspend_sr(pd->pd_db, pd->pd_pool_ref, rec, j->sj_host, j->sj_image_sr);
	if (checkpoint && strcmp(ps, "Suspended") == 0)
		snprintf(j->sj_image_src, sizeof j->sj_image_src, "%s", jstr(rec, "suspend_VDI"));
	json_decref(rec);
	if (!e)
		e = db_txn(pd->pd_db, begin_txn, j);
	if (e) {
		snapjob_free(j);
		return e;
	}
	if (!live)
		return snap_offline(c, j);
	json_t *opts = live_options(pd->pd_db, j);
	json_t *v = db_obj_get(pd->pd_db, vm);
	e = agent_call_done(pd, c, j->sj_host, AGENT_VM_CHECKPOINT, json_pack("[s,o]", jstr(v, "uuid"), opts), taken, j);
	json_decref(v);
	return e;
}

/* VM.snapshot(vm, new_name[, ignore_vdis]) */
json_t *vm_snapshot(struct api_call *c)
{
	return snapshot_common(c, false);
}

/* VM.checkpoint(vm, new_name) */
json_t *vm_checkpoint(struct api_call *c)
{
	return snapshot_common(c, true);
}
