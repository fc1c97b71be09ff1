/*
 * sxm_journal.c - storage migrations' journal: every step of each one, in
 * the database (meta key "storage_migrations"), written before the step
 * is taken and in the same transaction as the records it changes.
 *
 * An entry (docs/SXM.md has the whole picture):
 *   kind         "vm" (VM.migrate_send) or "vdi" (VDI.pool_migrate)
 *   vm, vm_uuid, src, dst, task, op (the VM's current operation)
 *   phase        copy | memory | committed | rollback (sxm.h)
 *   copy         keep the source VDIs
 *   opts         the call's options
 *   reserve      {SR ref: bytes} the space checks counted (until decided)
 *   vdis         per disk: vdi, uuid, sr, sr_uuid, device, dest_sr,
 *                dest_sr_uuid, dest_uuid, dest_ref, snap_uuid, snap_ref,
 *                token, op (its "mirror" operation), state
 *                (planned | receiving | sending | ready)
 *   vifs         {VIF ref: network ref}
 *   cleanup      what is still to be removed: {host, sr_uuid, vdi_uuid,
 *                vdi (ref or ""), mirror (to end first, or "")}
 * The commit point is the memory migration's GO; the transaction that
 * records the move also runs sxm_commit_txn (VBDs to the new VDIs), so
 * after it the journal only ever goes forward.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "poold.h"
#include "sxm.h"
#include "util.h"
#include "xerr.h"

#define META "storage_migrations"

json_t *sxm_journal_all(struct db *db)
{
	char *text = db_meta_get(db, META);
	json_t *all = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	if (!json_is_object(all)) {
		json_decref(all);
		all = json_object();
	}
	return all;
}

json_t *sxm_journal_get(struct db *db, const char *id)
{
	json_t *all = sxm_journal_all(db);
	json_t *e = json_incref(json_object_get(all, id));
	json_decref(all);
	return e;
}

json_t *sxm_journal_put(struct db *db, const char *id, json_t *entry)
{
	json_t *all = sxm_journal_all(db);
	if (entry)
		json_object_set(all, id, entry);
	else
		json_object_del(all, id);
	char *text = json_dumps(all, JSON_COMPACT);
	json_t *e = db_meta_set(db, META, text ? text : "{}");
	free(text);
	json_decref(all);
	return e;
}

/* A job still deciding the VM's fate (it counts for R-13 and reserves space). */
static bool deciding(json_t *job)
{
	int p = sxm_phase_from_name(jstr(job, "phase"));
	return p == SXM_PH_COPY || p == SXM_PH_MEMORY;
}

int sxm_journal_running_from(struct db *db, const char *host)
{
	json_t *all = sxm_journal_all(db);
	const char *k;
	json_t *j;
	int n = 0;
	json_object_foreach(all, k, j) n += deciding(j) && strcmp(jstr(j, "src"), host) == 0;
	json_decref(all);
	return n;
}

json_t *sxm_journal_reserved(struct db *db)
{
	json_t *all = sxm_journal_all(db), *out = json_object();
	const char *k, *sr;
	json_t *j, *b;
	json_object_foreach(all, k, j) {
		if (!deciding(j))
			continue;
		json_object_foreach(json_object_get(j, "reserve"), sr, b) {
			json_int_t before = json_integer_value(json_object_get(out, sr));
			json_object_set_new(out, sr, json_integer(before + json_integer_value(b)));
		}
	}
	json_decref(all);
	return out;
}

/* ---- the records a storage migration makes ---- */

json_t *sxm_vdi_record(struct db *db, const char *job, const char *src_vdi, const char *uuid, const char *sr,
		       bool snapshot, json_t *answer, char *ref_out)
{
	json_t *rec = vdi_copy_record(db, src_vdi, uuid, snapshot);
	json_object_set_new(rec, "SR", json_string(sr));
	json_t *oc = json_deep_copy(json_object_get(rec, "other_config"));
	if (!json_is_object(oc)) {
		json_decref(oc);
		oc = json_object();
	}
	/* a temporary snapshot, or a copy not yet the VM's: XAPI marks its own alike */
	json_object_set_new(oc, "storage_migration", json_string(job));
	json_object_set_new(rec, "other_config", oc);
	if (!snapshot)
		json_object_set_new(rec, "name_description", json_string("storage migration: the copy of a disk"));
	json_t *e = vdi_record_insert(db, rec, answer, ref_out);
	json_decref(rec);
	return e;
}

json_t *sxm_vdi_forget(struct db *db, const char *vdi, json_t *space)
{
	char cls[32];
	json_t *e = NULL;
	if (*vdi && db_obj_class(db, vdi, cls, sizeof cls) && strcmp(cls, "VDI") == 0) {
		json_t *vbds = db_find(db, "VBD", "VDI", vdi);
		const char *k;
		json_t *v;
		json_object_foreach(vbds, k, v) if (!e) e = db_obj_destroy(db, k); /* detached drives go with it */
		json_decref(vbds);
		if (!e)
			e = db_obj_destroy(db, vdi);
	}
	return e || !space ? e : sr_space_update(db, space);
}

/* Derive again (allowed_operations follow a VBD that moved). */
static json_t *touch(struct db *db, const char *ref)
{
	char cls[32];
	if (!*ref || !db_obj_class(db, ref, cls, sizeof cls))
		return NULL;
	json_t *none = json_object();
	json_t *e = db_obj_update(db, ref, none);
	json_decref(none);
	return e;
}

/* One disk: the VM's drives of it name its copy now. */
static json_t *switch_vbds(struct db *db, const char *vm, json_t *v)
{
	json_t *vbds = db_find(db, "VBD", "VM", vm), *e = NULL;
	const char *k;
	json_t *b;
	json_object_foreach(vbds, k, b) {
		if (!e && strcmp(jstr(b, "VDI"), jstr(v, "vdi")) == 0)
			e = db_obj_set(db, k, "VDI", json_string(jstr(v, "dest_ref")));
	}
	json_decref(vbds);
	json_t *dest = e ? NULL : db_obj_get(db, jstr(v, "dest_ref"));
	if (dest) { /* the copy is the VM's disk now, no longer the migration's */
		json_t *oc = json_deep_copy(json_object_get(dest, "other_config"));
		json_object_del(oc, "storage_migration");
		e = db_obj_set(db, jstr(v, "dest_ref"), "other_config", oc);
		json_decref(dest);
	}
	if (!e)
		e = touch(db, jstr(v, "vdi"));
	return e ? e : touch(db, jstr(v, "dest_ref"));
}

json_t *sxm_commit_txn(struct db *db, void *ctx)
{
	const char *id = ctx;
	json_t *j = sxm_journal_get(db, id), *e = NULL;
	if (!j || sxm_phase_from_name(jstr(j, "phase")) != SXM_PH_MEMORY) {
		json_decref(j); /* gone, or committed already: nothing to do twice */
		return NULL;
	}
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(j, "vdis"), i, v) {
		if (!e && *jstr(v, "dest_ref"))
			e = switch_vbds(db, jstr(j, "vm"), v);
	}
	const char *vif;
	json_t *net;
	json_object_foreach(json_object_get(j, "vifs"), vif, net) {
		if (!e)
			e = db_obj_set(db, vif, "network", json_incref(net));
	}
	if (!e)
		e = ops_end(db, jstr(j, "vm"), jstr(j, "op"));
	if (!e) {
		json_object_set_new(j, "phase", json_string(sxm_phase_name(SXM_PH_COMMITTED)));
		e = sxm_journal_put(db, id, j);
	}
	json_decref(j);
	return e;
}
