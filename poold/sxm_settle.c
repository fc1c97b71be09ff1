/*
 * sxm_settle.c - a storage migration whose memory migration (or pivot)
 * failed, or that poold found in the journal in that phase after a
 * restart: GO may or may not have happened, so nothing is removed before
 * the hosts have said where the VM runs (sxm_recover decides).
 *
 * VM.migrate_send: the source is asked whether it still sends the VM
 * (agent.migration_status), the destination whether it runs it (its
 * report). The destination runs it: the move and the commit are recorded
 * (one transaction) and the migration goes forward; it does not and the
 * source has stopped: back; anything else: asked again every second,
 * the task saying what it waits for.
 * VDI.pool_migrate: the host is asked which disk the domain writes
 * (agent.vm_disks): the new one, forward; the old one, back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "poold.h"
#include "sxm.h"
#include "util.h"
#include "xerr.h"

#define SETTLE_MS 1000

static void set_str(json_t *o, const char *k, const char *v)
{
	json_object_set_new(o, k, json_string(v));
}

static struct sxm_job *job_of(void *ctx)
{
	struct sxm_job *job = *(struct sxm_job **)ctx;
	if (job)
		job->sj_cell = NULL;
	return job;
}

static void settle_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sxm_settle(arg);
}

static void wait_more(struct sxm_job *job, const char *why)
{
	if (job->sj_waited_ms == 0)
		log_warn("storage migration %s: %s; asking again every %d ms", job->sj_id, why, SETTLE_MS);
	job->sj_waited_ms += SETTLE_MS;
	sxm_note(job, "phase", "waiting %.0f s: %s", (double)job->sj_waited_ms / 1000, why);
	sxm_job_timer(job, SETTLE_MS, settle_tick);
}

struct moved_ctx {
	struct sxm_job *job;
	json_int_t domid;
};

/* GO happened but the move was not recorded: the move and the commit. */
static json_t *moved_txn(struct db *db, void *ctx)
{
	struct moved_ctx *m = ctx;
	json_t *j = m->job->sj_j;
	json_t *e = db_obj_update_new(db, jstr(j, "vm"),
				      json_pack("{s:s, s:s, s:s, s:I}", "resident_on", jstr(j, "dst"),
						"scheduled_to_be_resident_on", MODEL_NULL_REF, "power_state", "Running",
						"domid", m->domid));
	return e ? e : sxm_commit_txn(db, m->job->sj_id);
}

static void go_forward(struct sxm_job *job, json_t *report)
{
	struct poold *pd = job->sj_pd;
	struct moved_ctx m = {job, -1};
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(report, "domains"), i, d) if (strcmp(jstr(d, "uuid"), jstr(job->sj_j, "vm_uuid")) == 0)
		m.domid = json_integer_value(json_object_get(d, "domid"));
	json_t *e = db_txn(pd->pd_db, moved_txn, &m);
	if (e) {
		json_decref(e);
		wait_more(job, "the move cannot be recorded yet");
		return;
	}
	vm_changed_stamp(pd, jstr(job->sj_j, "vm"), jstr(job->sj_j, "dst"), report, true);
	/* its paused copy on the source goes (a heartbeat would see to it too) */
	agent_tell(pd, jstr(job->sj_j, "src"), AGENT_VM_SHUTDOWN, json_pack("[s,b]", jstr(job->sj_j, "vm_uuid"), 1));
	set_str(job->sj_j, "phase", sxm_phase_name(SXM_PH_COMMITTED));
	log_warn("storage migration %s: the VM runs on the destination: going forward", job->sj_id);
	sxm_roll_forward(job, NULL);
}

static void go_back(struct sxm_job *job)
{
	/* a source copy left paused after a lost GO runs again (a no-op when it runs) */
	agent_tell(job->sj_pd, jstr(job->sj_j, "src"), AGENT_VM_UNPAUSE, json_pack("[s]", jstr(job->sj_j, "vm_uuid")));
	json_t *err = job->sj_error;
	job->sj_error = NULL;
	if (!err)
		err = xerr_new(XE_VM_MIGRATE_FAILED, jstr(job->sj_j, "vm"), jstr(job->sj_j, "src"), jstr(job->sj_j, "dst"),
			       "the memory migration did not hand the VM over: it runs on its source", NULL);
	sxm_roll_back(job, err);
}

static bool runs_on(json_t *report, const char *uuid)
{
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(report, "domains"), i, d) if (strcmp(jstr(d, "uuid"), uuid) == 0)
		return strcmp(jstr(d, "power_state"), "Running") == 0;
	return false;
}

static json_t *settle_dst(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err,
			  json_t **result)
{
	(void)c, (void)pd, (void)err, (void)result;
	struct sxm_job *job = job_of(ctx);
	if (!job)
		return NULL;
	enum sxm_where where = !answer ? SXM_UNKNOWN : runs_on(answer, jstr(job->sj_j, "vm_uuid")) ? SXM_ON_DEST : SXM_ON_SOURCE;
	/* a source that cannot be asked may still be sending: only the destination running it is sure */
	bool in_flight = job->sj_row == 1 || (job->sj_row == 2 && where != SXM_ON_DEST);
	switch (sxm_recover(SXM_PH_MEMORY, where, in_flight)) {
	case SXM_ROLL_FORWARD: go_forward(job, answer); break;
	case SXM_ROLL_BACK: go_back(job); break;
	default:
		wait_more(job, where == SXM_UNKNOWN ? "the destination cannot say whether it runs the VM"
						    : "the source may still be sending the VM");
	}
	return NULL;
}

/* sj_row while settling: 0 the source is not migrating the VM, 1 it is, 2 it cannot be asked. */
static json_t *settle_src(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err,
			  json_t **result)
{
	(void)c, (void)result;
	struct sxm_job *job = job_of(ctx);
	if (!job)
		return NULL;
	char *t = err ? xerr_to_text(err) : NULL;
	job->sj_row = answer ? 1 : t && strstr(t, "is not migrating from this host") ? 0 : 2;
	free(t);
	agent_call_done(pd, NULL, jstr(job->sj_j, "dst"), AGENT_REPORT, json_array(), settle_dst, sxm_cell(job));
	return NULL;
}

/* VDI.pool_migrate: which disk does the domain write? */
static json_t *settle_vdi(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err,
			  json_t **result)
{
	(void)c, (void)result;
	struct sxm_job *job = job_of(ctx);
	if (!job)
		return NULL;
	json_t *r = json_array_get(json_object_get(job->sj_j, "vdis"), 0);
	bool newer = false, older = false;
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(answer, "disks"), i, d) {
		newer = newer || strcmp(json_string_value(d) ? json_string_value(d) : "", jstr(r, "dest_uuid")) == 0;
		older = older || strcmp(json_string_value(d) ? json_string_value(d) : "", jstr(r, "uuid")) == 0;
	}
	if (err || newer == older) {
		wait_more(job, err ? "the host cannot say which disk the VM writes" : "the VM has neither disk");
		return NULL;
	}
	agent_tell(pd, jstr(job->sj_j, "src"), AGENT_VM_UNPAUSE, json_pack("[s]", jstr(job->sj_j, "vm_uuid")));
	json_t *e = newer ? db_txn(pd->pd_db, sxm_commit_txn, job->sj_id) : NULL;
	if (e) {
		json_decref(e);
		wait_more(job, "the switch cannot be recorded yet");
	} else if (newer) {
		set_str(job->sj_j, "phase", sxm_phase_name(SXM_PH_COMMITTED));
		sxm_roll_forward(job, NULL);
	} else {
		go_back(job);
	}
	return NULL;
}

void sxm_settle(struct sxm_job *job)
{
	if (job->sj_cell) { /* a call of this job is still out: after it */
		sxm_job_timer(job, SETTLE_MS, settle_tick);
		return;
	}
	bool vdi = strcmp(jstr(job->sj_j, "kind"), "vdi") == 0;
	agent_call_done(job->sj_pd, NULL, jstr(job->sj_j, "src"), vdi ? AGENT_VM_DISKS : AGENT_MIGRATION_STATUS,
			json_pack("[s]", jstr(job->sj_j, "vm_uuid")), vdi ? settle_vdi : settle_src, sxm_cell(job));
}

