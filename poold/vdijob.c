/*
 * vdijob.c - VDIs made one after the other by agents for one API call:
 * copies (VM.clone, VM.copy, snapshots of a halted VM, revert, VDI.copy)
 * and new disks (VM.provision). Each made VDI is recorded as soon as its
 * agent answers; when all are made, the caller's done() writes the rest
 * (the VM's records) in one transaction. If a step or done() fails, every
 * VDI the job made goes again, file and record: a failed call leaves no
 * disk behind, and never touches the disks it copied from.
 *
 * A step runs on a live host that has the SRs it needs plugged: the
 * source's for a copy within an SR, both for a copy between SRs (on the
 * sim's file SRs, a shared SR is plugged everywhere).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "poold.h"
#include "util.h"
#include "xerr.h"

struct vdijob {
	json_t *vj_items; /* [{vdi, sr, snapshot} | {create: size, sr, name, ...}] */
	size_t vj_next;
	json_t *vj_made;  /* item index (as text) -> the new VDI's ref */
	vdijob_done_fn vj_done;
	vdijob_fail_fn vj_fail;
	void *vj_ctx;
	void (*vj_ctx_free)(void *);
};

struct vdijob_step {
	struct vdijob *vs_job;
	char vs_uuid[48];
	json_t *vs_rec; /* the new VDI's record, but its location and sizes */
};

static void job_free(struct vdijob *j)
{
	json_decref(j->vj_items);
	json_decref(j->vj_made);
	if (j->vj_ctx_free)
		j->vj_ctx_free(j->vj_ctx);
	free(j);
}

static json_t *forget_txn(struct db *db, void *ctx)
{
	char cls[32];
	return db_obj_class(db, ctx, cls, sizeof cls) ? db_obj_destroy(db, ctx) : NULL;
}

void vdijob_undo(struct poold *pd, const json_t *refs)
{
	size_t i;
	json_t *r;
	json_array_foreach(refs, i, r) {
		const char *ref = json_string_value(r);
		json_t *rec = db_obj_get(pd->pd_db, ref);
		json_t *sr = rec ? db_obj_get(pd->pd_db, jstr(rec, "SR")) : NULL;
		char host[64];
		if (sr && sr_worker(pd->pd_db, jstr(rec, "SR"), host))
			agent_tell(pd, host, AGENT_VDI_DESTROY, json_pack("[s,s]", jstr(sr, "uuid"), jstr(rec, "uuid")));
		else if (rec)
			log_warn("VDI %s (%s) made for a failed call could not be removed: no host has SR %s plugged",
				 jstr(rec, "uuid"), ref, jstr(rec, "SR"));
		json_decref(db_txn(pd->pd_db, forget_txn, (void *)ref));
		json_decref(sr);
		json_decref(rec);
	}
}

static json_t *made_refs(const struct vdijob *j)
{
	json_t *out = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(j->vj_made, k, v) json_array_append(out, v);
	return out;
}

static void job_abort(struct poold *pd, struct vdijob *j, json_t **err)
{
	json_t *refs = made_refs(j);
	vdijob_undo(pd, refs);
	json_decref(refs);
	if (j->vj_fail)
		j->vj_fail(pd, j->vj_ctx, err);
	job_free(j);
}

static json_t *insert_txn(struct db *db, void *ctx)
{
	json_t **a = ctx; /* [rec, answer, out ref] */
	char ref[64];
	json_t *e = vdi_record_insert(db, a[0], a[1], ref);
	if (!e)
		a[2] = json_string(ref);
	return e;
}

static json_t *job_next(struct api_call *c, struct poold *pd, struct vdijob *j, json_t **result);

static json_t *step_done(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err, json_t **result)
{
	struct vdijob_step *st = ctx;
	struct vdijob *j = st->vs_job;
	json_t *e = err ? json_incref(err) : NULL;
	if (!e) {
		json_t *a[3] = {st->vs_rec, answer, NULL};
		e = db_txn(pd->pd_db, insert_txn, a);
		if (!e) {
			char k[32];
			snprintf(k, sizeof k, "%zu", j->vj_next++);
			json_object_set_new(j->vj_made, k, a[2]);
		}
	}
	json_decref(st->vs_rec);
	if (e) {
		job_abort(pd, j, &e);
		return e;
	}
	return job_next(c, pd, j, result);
}

static bool host_live(struct db *db, const char *host)
{
	json_t *h = db_obj_get(db, host), *m = h ? db_obj_get(db, jstr(h, "metrics")) : NULL;
	bool live = json_is_true(json_object_get(m, "live"));
	json_decref(m);
	json_decref(h);
	return live;
}

static bool plugged_on(struct db *db, const char *sr, const char *host)
{
	json_t *pbds = db_find(db, "PBD", "host", host);
	bool yes = false;
	const char *k;
	json_t *p;
	json_object_foreach(pbds, k, p) yes = yes || (strcmp(jstr(p, "SR"), sr) == 0 &&
						      json_is_true(json_object_get(p, "currently_attached")));
	json_decref(pbds);
	return yes;
}

/* A live host with both SRs plugged (the copy's agent), or NULL. */
static const char *host_with_both(struct db *db, const char *a, const char *b, char *host)
{
	json_t *pbds = db_find(db, "PBD", "SR", a);
	const char *k, *found = NULL;
	json_t *p;
	json_object_foreach(pbds, k, p) {
		const char *h = jstr(p, "host");
		if (!found && json_is_true(json_object_get(p, "currently_attached")) && host_live(db, h) &&
		    plugged_on(db, b, h)) {
			snprintf(host, 64, "%s", h);
			found = host;
		}
	}
	json_decref(pbds);
	return found;
}

/* The agent call of item it: where and what; NULL with *host and *params,
 * or the error. st->vs_rec gets the new VDI's record. */
static json_t *step_plan(struct db *db, json_t *it, struct vdijob_step *st, char *host, enum agent_method *m,
			 json_t **params)
{
	const char *sr = jstr(it, "sr");
	json_t *srrec = db_obj_get(db, sr), *e = NULL;
	if (json_object_get(it, "create")) { /* a new disk (provision) */
		st->vs_rec = json_deep_copy(json_object_get(it, "record"));
		json_object_set_new(st->vs_rec, "uuid", json_string(st->vs_uuid));
		if (!srrec || !sr_worker(db, sr, host))
			e = xerr_new(XE_SR_HAS_NO_PBDS, sr, NULL);
		*m = AGENT_VDI_CREATE;
		*params = e ? NULL
			    : json_pack("[s,s,I]", jstr(srrec, "uuid"), st->vs_uuid,
					json_integer_value(json_object_get(it, "create")));
		json_decref(srrec);
		return e;
	}
	const char *vdi = jstr(it, "vdi");
	json_t *src = db_obj_get(db, vdi), *srcsr = db_obj_get(db, jstr(src, "SR"));
	bool snap = json_is_true(json_object_get(it, "snapshot"));
	bool same = !*sr || strcmp(sr, jstr(src, "SR")) == 0;
	st->vs_rec = vdi_copy_record(db, vdi, st->vs_uuid, snap);
	if (!same)
		json_object_set_new(st->vs_rec, "SR", json_string(sr));
	if (!src || !srcsr || (!same && !srrec))
		e = xerr_new(XE_HANDLE_INVALID, "VDI", vdi, NULL);
	else if (same && !sr_worker(db, jstr(src, "SR"), host))
		e = xerr_new(XE_SR_HAS_NO_PBDS, jstr(src, "SR"), NULL);
	else if (!same && !host_with_both(db, jstr(src, "SR"), sr, host))
		e = xerr_newf(XE_OPERATION_NOT_ALLOWED, "no live host has both SR %s and SR %s plugged", jstr(src, "SR"), sr);
	*m = same ? AGENT_VDI_COPY : AGENT_VDI_COPY_TO;
	if (!e)
		*params = same ? json_pack("[s,s,s,b]", jstr(srcsr, "uuid"), jstr(src, "uuid"), st->vs_uuid, snap)
			       : json_pack("[s,s,s,s]", jstr(srcsr, "uuid"), jstr(src, "uuid"), jstr(srrec, "uuid"),
					   st->vs_uuid);
	json_decref(src);
	json_decref(srcsr);
	json_decref(srrec);
	return e;
}

static json_t *job_next(struct api_call *c, struct poold *pd, struct vdijob *j, json_t **result)
{
	if (j->vj_next < json_array_size(j->vj_items)) {
		struct vdijob_step *st = xcalloc(1, sizeof *st);
		st->vs_job = j;
		model_new_uuid(st->vs_uuid);
		char host[64];
		enum agent_method m;
		json_t *params = NULL;
		json_t *e = step_plan(pd->pd_db, json_array_get(j->vj_items, j->vj_next), st, host, &m, &params);
		if (e) {
			json_decref(st->vs_rec);
			free(st);
			job_abort(pd, j, &e);
			return e;
		}
		return agent_call_done(pd, c, host, m, params, step_done, st);
	}
	/* made[i] for item i, in order */
	json_t *made = json_array();
	for (size_t i = 0; i < json_array_size(j->vj_items); i++) {
		char k[32];
		snprintf(k, sizeof k, "%zu", i);
		json_array_append(made, json_object_get(j->vj_made, k));
	}
	json_t *e = j->vj_done(c, pd, j->vj_ctx, made, result);
	json_decref(made);
	if (e) {
		job_abort(pd, j, &e);
		return e;
	}
	job_free(j);
	return NULL;
}

json_t *vdijob_run(struct poold *pd, struct api_call *c, json_t *items, vdijob_done_fn done, vdijob_fail_fn fail,
		   void *ctx, void (*ctx_free)(void *), json_t **result)
{
	struct vdijob *j = xcalloc(1, sizeof *j);
	*j = (struct vdijob){items, 0, json_object(), done, fail, ctx, ctx_free};
	return job_next(c, pd, j, result);
}
