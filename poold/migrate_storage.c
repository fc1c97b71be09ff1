/*
 * migrate_storage.c - VM.migrate_send and VDI.pool_migrate once admitted:
 * the steps, each journaled before it is taken (sxm_journal.c).
 *
 * 1. Per disk, one after the other (earlier mirrors stay ready meanwhile):
 *    the destination's agent makes the copy's VDI and opens an endpoint
 *    (agent.vdi_mirror_receive; its record follows the answer); the
 *    source's agent clears the disk's dirty-block log, snapshots it (the
 *    temporary snapshot's record follows the first status that shows it),
 *    copies the snapshot, then the blocks written meanwhile in rounds,
 *    until it is ready (agent.vdi_mirror_send, polled every 0.5 s).
 * 2. The memory migration (api_migrate.c, migrate_start_ext): the VM is
 *    placed as it will be, the destination's domain opens the copies, the
 *    disks' last blocks go inside its pause. Its GO is the commit point:
 *    the transaction that records the move switches the VBDs.
 *    VDI.pool_migrate has no memory to move: agent.vdi_pivot switches the
 *    running domain's disk instead.
 * 3. Decided, one way or the other (sxm_roll_forward / sxm_roll_back), the
 *    task ends; what is left to remove is a cleanup list (sxm_cleanup.c).
 * When the memory migration fails, or poold restarts in its middle, the
 * hosts are asked where the VM runs and sxm_recover says which way
 * (settle): a destination disk is never removed while the VM may use it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>

#include "log.h"
#include "ops.h"
#include "poold.h"
#include "sxm.h"
#include "util.h"
#include "xerr.h"

#define POLL_MS 50   /* the disk being copied: its readiness is seen within this */
#define NOTE_MS 250  /* the task's progress and phase are written at most this often */
#define SETTLE_MS 1000
#define UNREACHABLE_POLLS 6 /* 3 s of a source that does not answer */

static json_t *rows(struct sxm_job *job)
{
	return json_object_get(job->sj_j, "vdis");
}

static struct sxm_job *job_of(void *ctx)
{
	struct sxm_job *job = *(struct sxm_job **)ctx;
	if (job)
		job->sj_cell = NULL;
	return job;
}

static void set_str(json_t *o, const char *k, const char *v)
{
	json_object_set_new(o, k, json_string(v));
}

static void next_step(struct sxm_job *job);

/* ---- the timer: polls, settling ---- */

static bool cancelling(struct sxm_job *job)
{
	json_t *t = job->sj_task[0] ? db_obj_get(job->sj_pd->pd_db, job->sj_task) : NULL;
	bool yes = t && strcmp(jstr(t, "status"), "cancelling") == 0;
	json_decref(t);
	return yes;
}

/* ---- progress: the disks 2%..80% by size, the memory 80%..97% ---- */

static void progress(struct sxm_job *job, size_t cur, json_t *st)
{
	double total = 0, done = 0;
	size_t i, n = json_array_size(rows(job));
	json_t *r;
	json_array_foreach(rows(job), i, r) {
		double w = (double)json_integer_value(json_object_get(r, "virtual_size")) + 1;
		double f = strcmp(jstr(r, "state"), "ready") == 0 ? 1 : 0;
		if (i == cur && st) {
			double t = (double)json_integer_value(json_object_get(st, "total"));
			double c = (double)json_integer_value(json_object_get(st, "copied"));
			f = strcmp(jstr(st, "state"), "copy") == 0 && t > 0 ? 0.9 * c / t
			    : strcmp(jstr(st, "state"), "rounds") == 0 ? 0.95 : f;
		}
		total += w;
		done += w * f;
	}
	if (job->sj_task[0])
		api_task_progress(job->sj_pd, job->sj_task, 0.02 + 0.78 * (total > 0 ? done / total : 1));
	if (!st)
		return;
	json_t *row = json_array_get(rows(job), cur);
	double rate = json_number_value(json_object_get(st, "rate_mb_s"));
	double left = (double)(json_integer_value(json_object_get(st, "total")) -
			       json_integer_value(json_object_get(st, "copied")));
	if (strcmp(jstr(st, "state"), "copy") == 0)
		sxm_note(job, "phase", "disk %zu of %zu (%s): copying %.0f of %.0f MB  %.0f MB/s  ETA %.1f s", cur + 1, n,
			 jstr(row, "device"), (double)json_integer_value(json_object_get(st, "copied")) / 1e6,
			 (double)json_integer_value(json_object_get(st, "total")) / 1e6, rate,
			 rate > 0 ? left / 1e6 / rate : 0.0);
	else
		sxm_note(job, "phase", "disk %zu of %zu (%s): %s, round %d, %.1f MB written meanwhile", cur + 1, n,
			 jstr(row, "device"), jstr(st, "state"), (int)json_integer_value(json_object_get(st, "round")),
			 (double)json_integer_value(json_object_get(st, "dirty")) / 1e6);
}

/* ---- step 1: the disks ---- */

static json_t *mirror_failed(struct sxm_job *job, json_t *row, const char *why)
{
	sxm_note(job, "mirror_error", "VDI %s: %s", jstr(row, "uuid"), why);
	log_warn("storage migration %s: the mirror of VDI %s failed: %s", job->sj_id, jstr(row, "uuid"), why);
	return xerr_new(XE_MIRROR_FAILED, jstr(row, "vdi"), NULL);
}

struct rec_ctx {
	struct sxm_job *job;
	json_t *row, *answer;
	bool snapshot;
};

/* A copy or a snapshot exists: its record and the journal, together. */
static json_t *record_txn(struct db *db, void *ctx)
{
	struct rec_ctx *x = ctx;
	char ref[64];
	json_t *row = x->row;
	json_t *e = sxm_vdi_record(db, x->job->sj_id, jstr(row, "vdi"), jstr(row, x->snapshot ? "snap_uuid" : "dest_uuid"),
				   jstr(row, x->snapshot ? "sr" : "dest_sr"), x->snapshot, x->answer, ref);
	if (e)
		return e;
	set_str(row, x->snapshot ? "snap_ref" : "dest_ref", ref);
	return sxm_journal_put(db, x->job->sj_id, x->job->sj_j);
}

static bool record(struct sxm_job *job, json_t *row, json_t *answer, bool snapshot)
{
	struct rec_ctx x = {job, row, answer, snapshot};
	json_t *e = db_txn(job->sj_pd->pd_db, record_txn, &x);
	if (e) {
		json_object_del(row, snapshot ? "snap_ref" : "dest_ref");
		char *t = xerr_to_text(e);
		log_error("storage migration %s: a VDI record was not written: %s", job->sj_id, t ? t : "?");
		free(t);
		json_decref(e);
	}
	return !e;
}

static json_t *sent(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err, json_t **result);

static void send_start(struct sxm_job *job, size_t i, json_t *row, json_t *answer)
{
	struct poold *pd = job->sj_pd;
	json_t *opts = json_object_get(job->sj_j, "mirror_opts");
	set_str(row, "state", "sending");
	if (!sxm_save(job)) {
		sxm_roll_back(job, xerr_newf(XE_INTERNAL_ERROR, "the journal cannot be written"));
		return;
	}
	json_t *mo = json_pack("{s:s, s:s, s:b, s:b, s:I}", "mirror", jstr(row, "dest_uuid"), "destination_host",
			       jstr(job->sj_j, "dst_uuid"), "compress", json_is_true(json_object_get(opts, "compress")),
			       "verify", json_is_true(json_object_get(opts, "verify")), "bandwidth_mb_s",
			       json_integer_value(json_object_get(opts, "bandwidth_mb_s")));
	(void)i;
	agent_call_done(pd, NULL, jstr(job->sj_j, "src"), AGENT_VDI_MIRROR_SEND,
			json_pack("[s,s,s,s,s,O,s,o]", jstr(job->sj_j, "vm_uuid"), jstr(row, "sr_uuid"), jstr(row, "uuid"),
				  jstr(row, "snap_uuid"), jstr(job->sj_j, "address"), json_object_get(answer, "port"),
				  jstr(row, "token"), mo),
			sent, sxm_cell(job));
}

static json_t *received(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err,
			json_t **result)
{
	(void)c, (void)pd, (void)result;
	struct sxm_job *job = job_of(ctx);
	if (!job)
		return NULL;
	size_t i;
	json_t *row = NULL, *r;
	json_array_foreach(rows(job), i, r) if (!row && strcmp(jstr(r, "state"), "receiving") == 0) row = r;
	if (err) {
		char *t = xerr_to_text(err);
		sxm_roll_back(job, mirror_failed(job, row, t ? t : "the destination refused"));
		free(t);
		return NULL;
	}
	if (!record(job, row, answer, false))
		return sxm_roll_back(job, xerr_newf(XE_INTERNAL_ERROR, "the copy's record was not written")), NULL;
	send_start(job, i, row, answer);
	return NULL;
}

static void poll_tick(evutil_socket_t fd, short what, void *arg);

static json_t *sent(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err, json_t **result)
{
	(void)c, (void)pd, (void)answer, (void)result;
	struct sxm_job *job = job_of(ctx);
	if (!job)
		return NULL;
	if (err) {
		json_t *row = NULL, *r;
		size_t i;
		json_array_foreach(rows(job), i, r) if (!row && strcmp(jstr(r, "state"), "sending") == 0) row = r;
		char *t = xerr_to_text(err);
		sxm_roll_back(job, mirror_failed(job, row, t ? t : "the source refused"));
		free(t);
		return NULL;
	}
	sxm_job_timer(job, POLL_MS, poll_tick);
	return NULL;
}

static void receive_start(struct sxm_job *job, json_t *row)
{
	unsigned char raw[16];
	char token[40], uuid[48], snap[48];
	RAND_bytes(raw, sizeof raw);
	for (int k = 0; k < 16; k++)
		sprintf(token + 2 * k, "%02x", raw[k]);
	model_new_uuid(uuid);
	model_new_uuid(snap);
	set_str(row, "token", token);
	set_str(row, "dest_uuid", uuid);
	set_str(row, "snap_uuid", snap);
	set_str(row, "state", "receiving"); /* journaled before it is asked: its file may exist from now on */
	if (!sxm_save(job)) {
		sxm_roll_back(job, xerr_newf(XE_INTERNAL_ERROR, "the journal cannot be written"));
		return;
	}
	json_t *opts = json_pack("{s:s, s:s, s:s}", "source_host", jstr(job->sj_j, "src_uuid"), "address",
				 jstr(job->sj_j, "address"), "vm", jstr(job->sj_j, "vm_uuid"));
	agent_call_done(job->sj_pd, NULL, jstr(job->sj_j, "dst"), AGENT_VDI_MIRROR_RECEIVE,
			json_pack("[s,s,O,s,o]", jstr(row, "dest_sr_uuid"), uuid, json_object_get(row, "virtual_size"),
				  token, opts),
			received, sxm_cell(job));
}

/* The status of the disk being copied. */
static json_t *status_done(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err,
			   json_t **result)
{
	(void)c, (void)pd, (void)result;
	struct sxm_job *job = job_of(ctx);
	if (!job)
		return NULL;
	size_t i, cur = 0;
	json_t *row = NULL, *r;
	json_array_foreach(rows(job), i, r) if (!row && strcmp(jstr(r, "state"), "sending") == 0) row = r, cur = i;
	if (!row)
		return NULL;
	if (err && ++job->sj_unreachable >= UNREACHABLE_POLLS) {
		char *t = xerr_to_text(err);
		sxm_roll_back(job, mirror_failed(job, row, t ? t : "the source does not answer"));
		free(t);
		return NULL;
	}
	if (err)
		return sxm_job_timer(job, POLL_MS, poll_tick), NULL;
	job->sj_unreachable = 0;
	json_t *snap = json_object_get(answer, "snapshot");
	if (snap && !*jstr(row, "snap_ref") && !record(job, row, snap, true))
		return sxm_roll_back(job, xerr_newf(XE_INTERNAL_ERROR, "the snapshot's record was not written")), NULL;
	const char *st = jstr(answer, "state");
	if (strcmp(st, "failed") == 0)
		return sxm_roll_back(job, mirror_failed(job, row, jstr(answer, "error"))), NULL;
	int64_t now = now_ms();
	if (now - job->sj_noted_ms >= NOTE_MS || strcmp(st, "ready") == 0) {
		progress(job, cur, answer);
		job->sj_noted_ms = now;
	}
	if (strcmp(st, "ready") == 0) {
		set_str(row, "state", "ready");
		log_info("storage migration %s: disk %zu (VDI %s) ready: %.1f MB sent in %.0f ms, %d round(s)", job->sj_id,
			 cur + 1, jstr(row, "uuid"), (double)json_integer_value(json_object_get(answer, "sent")) / 1e6,
			 json_number_value(json_object_get(answer, "copy_ms")),
			 (int)json_integer_value(json_object_get(answer, "round")));
		if (!sxm_save(job))
			return sxm_roll_back(job, xerr_newf(XE_INTERNAL_ERROR, "the journal cannot be written")), NULL;
		next_step(job);
		return NULL;
	}
	sxm_job_timer(job, POLL_MS, poll_tick);
	return NULL;
}

static void poll_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct sxm_job *job = arg;
	if (job->sj_cell) {
		sxm_job_timer(job, POLL_MS, poll_tick);
		return;
	}
	if (cancelling(job)) {
		sxm_roll_back(job, xerr_new(XE_TASK_CANCELLED, job->sj_task, NULL));
		return;
	}
	json_t *row = NULL, *r;
	size_t i;
	json_array_foreach(rows(job), i, r) if (!row && strcmp(jstr(r, "state"), "sending") == 0) row = r;
	if (!row)
		return;
	agent_call_done(job->sj_pd, NULL, jstr(job->sj_j, "src"), AGENT_VDI_MIRROR_STATUS,
			json_pack("[s]", jstr(row, "dest_uuid")), status_done, sxm_cell(job));
}

/* ---- step 2: the memory (VM.migrate_send) or the pivot (VDI.pool_migrate) ---- */

/* Without a released callback, this comes once the source's paused copy
 * is gone (agent.vm_released), or could not be confirmed gone: the source
 * disks' removal (roll forward) never races the domain that used them. */
static void memory_done(struct poold *pd, void *arg, json_t *err, json_t *stats)
{
	(void)stats;
	struct sxm_job *job = arg;
	json_t *j = sxm_journal_get(pd->pd_db, job->sj_id);
	bool committed = j && sxm_phase_from_name(jstr(j, "phase")) == SXM_PH_COMMITTED;
	json_decref(j);
	if (committed) { /* GO happened and the move is recorded, VBDs and all */
		set_str(job->sj_j, "phase", sxm_phase_name(SXM_PH_COMMITTED));
		sxm_roll_forward(job, err ? json_incref(err) : NULL);
		return;
	}
	json_decref(job->sj_error);
	job->sj_error = err ? json_incref(err) : NULL;
	job->sj_waited_ms = 0;
	sxm_settle(job); /* failed: where does the VM run? */
}

/* The memory migration's view of the moved VM. */
static json_t *disk_copies(struct sxm_job *job, json_t **mirrors)
{
	json_t *map = json_object();
	*mirrors = json_array();
	size_t i;
	json_t *r;
	json_array_foreach(rows(job), i, r) {
		json_object_set_new(map, jstr(r, "uuid"),
				    json_pack("{s:s, s:s}", "vdi_uuid", jstr(r, "dest_uuid"), "sr", jstr(r, "dest_sr_uuid")));
		json_array_append_new(*mirrors, json_string(jstr(r, "dest_uuid")));
	}
	return map;
}

static void memory_start(struct sxm_job *job)
{
	struct poold *pd = job->sj_pd;
	json_t *mirrors, *disks = disk_copies(job, &mirrors);
	json_t *srcopts = json_pack("{s:o}", "mirrors", mirrors);
	struct migrate_ext x = {.x_op_id = jstr(job->sj_j, "op"), .x_srs = json_object_get(job->sj_j, "srs"),
				.x_nets = json_object_get(job->sj_j, "nets"), .x_disks = disks, .x_source_opts = srcopts,
				.x_prog_lo = 0.80, .x_prog_hi = 0.97, .x_phase_prefix = "memory: ",
				.x_commit = sxm_commit_txn, .x_commit_arg = job->sj_id};
	sxm_note(job, "phase", "disks ready; memory: starting");
	json_t *e = migrate_start_ext(pd, NULL, jstr(job->sj_j, "vm"), jstr(job->sj_j, "dst"),
				      json_object_get(job->sj_j, "opts"), job->sj_task, &x, memory_done, NULL, job);
	json_decref(disks);
	json_decref(srcopts);
	if (e != API_PENDING) /* refused before anything moved (memory, a host gone): back */
		sxm_roll_back(job, e ? e : xerr_newf(XE_INTERNAL_ERROR, "the memory migration did not start"));
}


static json_t *pivoted(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err,
		       json_t **result)
{
	(void)c, (void)result;
	struct sxm_job *job = job_of(ctx);
	if (!job)
		return NULL;
	if (!err) { /* the domain writes the new VDI: commit */
		json_t *e = db_txn(pd->pd_db, sxm_commit_txn, job->sj_id);
		json_decref(e); /* not written: the journal still says memory; settling finds the disk in use */
		if (!e) {
			vm_changed_stamp(pd, jstr(job->sj_j, "vm"), jstr(job->sj_j, "src"), answer, false);
			set_str(job->sj_j, "phase", sxm_phase_name(SXM_PH_COMMITTED));
			sxm_roll_forward(job, NULL);
			return NULL;
		}
	}
	json_decref(job->sj_error);
	job->sj_error = err ? json_incref(err) : NULL;
	job->sj_waited_ms = 0;
	sxm_settle(job);
	return NULL;
}

static void pivot_start(struct sxm_job *job)
{
	json_t *r = json_array_get(rows(job), 0);
	sxm_note(job, "phase", "disk ready; switching the VM to it");
	agent_call_done(job->sj_pd, NULL, jstr(job->sj_j, "src"), AGENT_VDI_PIVOT,
			json_pack("[s,s,s,s]", jstr(job->sj_j, "vm_uuid"), jstr(r, "dest_uuid"), jstr(r, "device"),
				  jstr(r, "dest_sr_uuid")),
			pivoted, sxm_cell(job));
}

static void next_step(struct sxm_job *job)
{
	size_t i;
	json_t *r;
	json_array_foreach(rows(job), i, r) {
		if (strcmp(jstr(r, "state"), "planned") == 0) {
			receive_start(job, r);
			return;
		}
		if (strcmp(jstr(r, "state"), "ready"))
			return; /* its answer or its status comes */
	}
	set_str(job->sj_j, "phase", sxm_phase_name(SXM_PH_MEMORY)); /* before: GO may happen from now on */
	if (!sxm_save(job)) {
		sxm_roll_back(job, xerr_newf(XE_INTERNAL_ERROR, "the journal cannot be written"));
		return;
	}
	if (strcmp(jstr(job->sj_j, "kind"), "vdi") == 0)
		pivot_start(job);
	else
		memory_start(job);
}

/* ---- start ---- */

void sxm_start(struct poold *pd, struct sxm_job *job)
{
	if (job->sj_queued) { /* its turn: the space again (others took some meanwhile), then the journal */
		json_t *reserve = json_object();
		json_t *e = sxm_space_again(pd, job->sj_j, reserve);
		job->sj_queued = false;
		json_object_set_new(job->sj_j, "reserve", reserve);
		if (e || !sxm_save(job)) {
			sxm_roll_back(job, e ? e : xerr_newf(XE_INTERNAL_ERROR, "the journal cannot be written"));
			return;
		}
		log_info("storage migration %s: its turn came (VM %s)", job->sj_id, jstr(job->sj_j, "vm"));
	}
	if (sxm_phase_from_name(jstr(job->sj_j, "phase")) == SXM_PH_MEMORY) {
		job->sj_waited_ms = 0;
		sxm_settle(job);
	} else {
		next_step(job);
	}
}

