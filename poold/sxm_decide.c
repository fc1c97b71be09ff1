/*
 * sxm_decide.c - a storage migration decided: back to the source, or
 * forward to the destination. Either way the decision, what is left to
 * remove and the end of the operations are one transaction; then the
 * task ends and the cleanup list is worked through (sxm_cleanup.c).
 *
 * Back (before the commit): the VM runs on its source with its disks as
 * they were; the copies, their records and the temporary snapshots go.
 * Forward (after it): the temporary snapshots go, and the source's disks
 * unless the call said copy; a copy is never removed. With verify, the
 * source's mirrors hash the source disks again once the VM has left and
 * compare with what they sent; a difference fails the task (the VM runs on
 * the destination all the same) - a tracking bug cannot pass unnoticed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ops.h"
#include "poold.h"
#include "sxm.h"
#include "util.h"
#include "xerr.h"

#define VERIFY_POLL_MS 250
#define VERIFY_WAIT_MS 120000

/* An item of the cleanup list (sxm_cleanup.c): on host, the mirror to end
 * (after it finished, with await: the destination's copy synced), then
 * the VDI to remove, file and record. */
static void add_item(json_t *list, const char *host, const char *sr_uuid, const char *vdi_uuid, const char *vdi,
		     const char *mirror, bool await)
{
	json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "host", host, "sr_uuid", sr_uuid,
					      "vdi_uuid", vdi_uuid, "vdi", vdi, "mirror", mirror, "await", await));
}

struct decide_ctx {
	struct sxm_job *job;
	bool forward;
};

/* The decision: its cleanup list, the operations ended, in one transaction. */
static json_t *decide_txn(struct db *db, void *ctx)
{
	struct decide_ctx *x = ctx;
	json_t *j = x->job->sj_j, *list = json_array(), *e = NULL;
	const char *src = jstr(j, "src"), *dst = jstr(j, "dst");
	bool keep = json_is_true(json_object_get(j, "copy"));
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(j, "vdis"), i, r) {
		if (strcmp(jstr(r, "state"), "planned") == 0)
			continue; /* nothing was asked for it: nothing exists */
		if (x->forward) { /* the copy on the destination's disk first: the source goes after */
			add_item(list, dst, jstr(r, "dest_sr_uuid"), "", "", jstr(r, "dest_uuid"), true);
			json_object_set_new(json_array_get(list, json_array_size(list) - 1), "copy",
					    json_string(jstr(r, "dest_ref")));
		}
		else
			add_item(list, dst, jstr(r, "dest_sr_uuid"), jstr(r, "dest_uuid"), jstr(r, "dest_ref"),
				 jstr(r, "dest_uuid"), false);
		add_item(list, src, jstr(r, "sr_uuid"), jstr(r, "snap_uuid"), jstr(r, "snap_ref"), jstr(r, "dest_uuid"),
			 false);
		if (x->forward && !keep)
			add_item(list, src, jstr(r, "sr_uuid"), jstr(r, "uuid"), jstr(r, "vdi"), "", false);
		if (!e)
			e = ops_end(db, jstr(r, "vdi"), jstr(r, "op"));
	}
	json_object_set_new(j, "cleanup", list);
	json_object_set_new(j, "decided", json_true());
	json_object_del(j, "reserve");
	if (!x->forward)
		json_object_set_new(j, "phase", json_string(sxm_phase_name(SXM_PH_ROLLBACK)));
	json_t *vm = e ? NULL : db_obj_get(db, jstr(j, "vm"));
	if (vm && !x->forward && strcmp(jstr(vm, "scheduled_to_be_resident_on"), MODEL_NULL_REF))
		e = db_obj_set(db, jstr(j, "vm"), "scheduled_to_be_resident_on", json_string(MODEL_NULL_REF));
	json_decref(vm);
	if (!e)
		e = ops_end(db, jstr(j, "vm"), jstr(j, "op"));
	return e ? e : sxm_journal_put(db, x->job->sj_id, j);
}

static bool decide(struct sxm_job *job, bool forward)
{
	struct decide_ctx x = {job, forward};
	json_t *e = db_txn(job->sj_pd->pd_db, decide_txn, &x);
	if (e) {
		char *t = xerr_to_text(e);
		log_error("storage migration %s: the decision was not written: %s", job->sj_id, t ? t : "?");
		free(t);
		json_decref(e);
	}
	return !e;
}

void sxm_roll_back(struct sxm_job *job, json_t *err)
{
	if (job->sj_timer) {
		event_free(job->sj_timer);
		job->sj_timer = NULL;
	}
	if (!decide(job, false)) { /* the journal still says copy or memory: a restart goes back too */
		sxm_end_task(job, err, NULL);
		return;
	}
	char *t = xerr_to_text(err);
	log_warn("storage migration %s: rolled back (%s); VM %s runs on its source with its disks", job->sj_id,
		 t ? t : "?", jstr(job->sj_j, "vm"));
	sxm_note(job, "phase", "rolled back: the VM runs on its source with its disks; removing what was made "
			       "(%zu item(s))",
		 json_array_size(json_object_get(job->sj_j, "cleanup")));
	free(t);
	sxm_end_task(job, err, NULL);
	sxm_cleanup(job);
}

/* ---- forward: the mirrors' last word, then the decision ---- */

static void forward_decided(struct sxm_job *job)
{
	json_t *err = job->sj_error;
	job->sj_error = NULL;
	if (!decide(job, true)) {
		sxm_end_task(job, err, NULL);
		return;
	}
	bool vdi = strcmp(jstr(job->sj_j, "kind"), "vdi") == 0;
	json_t *first = json_array_get(json_object_get(job->sj_j, "vdis"), 0);
	log_info("storage migration %s: VM %s %s; removing %zu item(s)", job->sj_id, jstr(job->sj_j, "vm"),
		 vdi ? "writes its new VDI" : "runs on the destination with its disks' copies",
		 json_array_size(json_object_get(job->sj_j, "cleanup")));
	sxm_note(job, "phase", "done; removing the temporary snapshots%s",
		 json_is_true(json_object_get(job->sj_j, "copy")) ? "" : " and the source disks");
	if (job->sj_task[0])
		api_task_progress(job->sj_pd, job->sj_task, 1.0);
	sxm_end_task(job, err, json_string(vdi ? jstr(first, "dest_ref") : jstr(job->sj_j, "vm")));
	sxm_cleanup(job);
}

static void verify_next(struct sxm_job *job);

static void verify_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	verify_next(arg);
}

static json_t *verify_done(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err,
			   json_t **result)
{
	(void)c, (void)pd, (void)result;
	struct sxm_job *job = *(struct sxm_job **)ctx;
	if (!job)
		return NULL;
	job->sj_cell = NULL;
	json_t *row = json_array_get(json_object_get(job->sj_j, "vdis"), job->sj_row);
	const char *st = jstr(answer, "state");
	bool waited_out = job->sj_waited_ms > VERIFY_WAIT_MS;
	if (!err && (strcmp(st, "handed_over") == 0 || strcmp(st, "final") == 0) && !waited_out) {
		job->sj_waited_ms += VERIFY_POLL_MS;
		struct timeval tv = {0, VERIFY_POLL_MS * 1000};
		if (job->sj_timer)
			event_free(job->sj_timer);
		job->sj_timer = evtimer_new(pd->pd_base, verify_tick, job);
		evtimer_add(job->sj_timer, &tv);
		return NULL;
	}
	json_t *stats = json_object_get(job->sj_j, "disk_stats"), *one = json_pack("{s:s, s:s}", "vdi", jstr(row, "uuid"),
										       "state", answer ? st : "unknown");
	static const char *const keep[] = {"sent", "wire_bytes", "round", "copy_ms", "snapshot_ms", "final_ms",
					   "final_bytes", "verify_ms", "verified", "stop"};
	for (size_t k = 0; answer && k < sizeof keep / sizeof keep[0]; k++)
		if (json_object_get(answer, keep[k]))
			json_object_set(one, keep[k], json_object_get(answer, keep[k]));
	json_array_append_new(stats, one);
	bool bad = answer && json_is_false(json_object_get(answer, "verified"));
	if (bad && !job->sj_error)
		job->sj_error = xerr_new(XE_VM_MIGRATE_FAILED, jstr(job->sj_j, "vm"), jstr(job->sj_j, "src"),
					 jstr(job->sj_j, "dst"), jstr(answer, "error"), NULL);
	if (!answer || waited_out)
		log_warn("storage migration %s: VDI %s: no verdict from its mirror (%s)", job->sj_id, jstr(row, "uuid"),
			 err ? "the source does not answer" : "still verifying");
	job->sj_row++;
	job->sj_waited_ms = 0;
	verify_next(job);
	return NULL;
}

/* The rows one by one (sj_row): each mirror's figures and, with verify,
 * its verdict (waiting while it still hashes). */
/* The memory migration's figures (migration_stats, what xe's summary
 * reads) with the disks' added: wire_bytes counts both. */
static void stats_with_disks(struct sxm_job *job)
{
	json_t *t = db_obj_get(job->sj_pd->pd_db, job->sj_task);
	const char *text = jstr(json_object_get(t, "other_config"), "migration_stats");
	json_t *m = *text ? json_loads(text, 0, NULL) : NULL;
	json_decref(t);
	if (!json_is_object(m)) {
		json_decref(m);
		m = json_object();
	}
	json_int_t disk = 0;
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(job->sj_j, "disk_stats"), i, d) disk += json_integer_value(json_object_get(d, "wire_bytes"));
	json_int_t mem = json_integer_value(json_object_get(m, "wire_bytes"));
	json_object_set_new(m, "memory_wire_bytes", json_integer(mem));
	json_object_set_new(m, "disk_wire_bytes", json_integer(disk));
	json_object_set_new(m, "disks", json_integer((json_int_t)json_array_size(json_object_get(job->sj_j, "disk_stats"))));
	json_object_set_new(m, "wire_bytes", json_integer(mem + disk));
	char *s = json_dumps(m, JSON_COMPACT | JSON_REAL_PRECISION(6));
	api_task_note(job->sj_pd, job->sj_task, "migration_stats", s ? s : "{}");
	free(s);
	json_decref(m);
}

static void verify_next(struct sxm_job *job)
{
	json_t *row = json_array_get(json_object_get(job->sj_j, "vdis"), job->sj_row);
	if (!row) {
		char *s = json_dumps(json_object_get(job->sj_j, "disk_stats"), JSON_COMPACT | JSON_REAL_PRECISION(6));
		if (job->sj_task[0]) {
			api_task_note(job->sj_pd, job->sj_task, "disk_stats", s ? s : "[]");
			stats_with_disks(job);
		}
		free(s);
		forward_decided(job);
		return;
	}
	agent_call_done(job->sj_pd, NULL, jstr(job->sj_j, "src"), AGENT_VDI_MIRROR_STATUS,
			json_pack("[s]", jstr(row, "dest_uuid")), verify_done, sxm_cell(job));
}

void sxm_roll_forward(struct sxm_job *job, json_t *err)
{
	if (job->sj_timer) {
		event_free(job->sj_timer);
		job->sj_timer = NULL;
	}
	json_decref(job->sj_error);
	job->sj_error = err;
	json_object_set_new(job->sj_j, "disk_stats", json_array());
	sxm_note(job, "phase", "handed over; collecting the disks' verdicts");
	job->sj_waited_ms = 0;
	job->sj_row = 0;
	verify_next(job);
}
