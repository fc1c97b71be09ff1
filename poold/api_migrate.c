/*
 * api_migrate.c - VM.pool_migrate: poold checks and reserves, the agents
 * move the memory between themselves (never through poold).
 *
 * 1. Every check before anything moves (place.c, on snapshot.c's view of
 *    the pool), then the destination is reserved in the database
 *    (scheduled_to_be_resident_on: its memory counts as taken, the VM is
 *    busy).
 * 2. The destination's agent prepares: a paused, empty domain and a
 *    one-time endpoint bound to a random token (agent.migrate_receive).
 * 3. The source's agent streams to it (agent.migrate_send) and answers when
 *    the destination has said RUNNING; before GO any failure leaves the VM
 *    running on the source.
 * 4. poold moves resident_on in one transaction; the destination's word on
 *    its domain, taken right after (agent.vm_state, stamped as any VM
 *    operation's answer), orders it before that host's later heartbeats.
 * 5. The source destroys its paused copy once its answer has left; poold
 *    waits for that (agent.vm_released) before the migration ends.
 * While the source streams, poold asks it for progress twice a second
 * (agent.migration_status) and writes it into the task.
 *
 * When the source fails or cannot be reached, nobody resumes anything
 * before poold has asked the destination (ARCHITECTURE.md "Migration: who
 * owns the VM"): if the destination runs the VM the move is recorded and the
 * source's paused copy destroyed; if it does not, the VM stays on the
 * source (which is asked to unpause when it said it stopped after GO); if
 * the destination cannot be asked either, the source's copy stays paused
 * and the task says so (the heartbeats settle it: see reconcile_vms).
 *
 * migrate_start() is the one mechanism: VM.pool_migrate and host.evacuate
 * both use it; a done callback hears the outcome.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include "log.h"
#include "ops.h"
#include "poold.h"
#include "util.h"
#include "xerr.h"

/* The checks, then the reservation, in one transaction. */
struct reserve_ctx {
	const char *vm, *dst;
	bool force;
	char src[64];
	char op_id[64]; /* its entry in the VM's current_operations */
	const struct migrate_ext *x; /* inside a storage migration, else NULL */
};

static json_t *unreserve_txn(struct db *db, void *ctx);

/* The source's agent does the sending: a source that is not live cannot
 * (HOST_OFFLINE [source], at once, as XAPI); the reservation goes again. */
static json_t *source_live(struct poold *pd, struct reserve_ctx *r)
{
	if (json_object_get(pd->pd_host_seen, r->src))
		return NULL;
	json_decref(db_txn(pd->pd_db, unreserve_txn, r));
	return xerr_new(XE_HOST_OFFLINE, r->src, NULL);
}

/* Inside a storage migration the VM is placed as it will be once moved
 * (its disks on the destination SRs, its VIFs on the mapped networks),
 * and the operation that holds it is the caller's own. */
static void as_moved(struct snap *sn, const struct migrate_ext *x, json_t *v, const char *dst)
{
	struct place_vm *pv = &sn->sn_vms[0];
	json_t *ops = json_object_get(v, "current_operations");
	const char *sched = jstr(v, "scheduled_to_be_resident_on");
	bool ours = strcmp(sched, dst) == 0; /* the storage migration reserved it there already */
	pv->pv_busy = (!ours && strcmp(sched, MODEL_NULL_REF) != 0) || json_object_size(ops) > 1 ||
		      (json_object_size(ops) == 1 && !json_object_get(ops, x->x_op_id));
	if (ours) /* its memory counts once */
		sn->sn_hosts[0].ph_available += pv->pv_memory;
	if (x->x_srs) {
		pv->pv_srs = snap_strings(x->x_srs); /* borrows x_srs: freed below */
		pv->pv_nsrs = json_array_size(x->x_srs);
	}
	if (x->x_nets) {
		pv->pv_networks = snap_strings(x->x_nets);
		pv->pv_nnetworks = json_array_size(x->x_nets);
	}
}

static json_t *reserve_txn(struct db *db, void *ctx)
{
	struct reserve_ctx *r = ctx;
	json_t *v, *e = db_obj_get_checked(db, "VM", r->vm, &v);
	if (e)
		return e;
	snprintf(r->src, sizeof r->src, "%s", jstr(v, "resident_on"));
	bool have_src = strcmp(r->src, MODEL_NULL_REF) != 0;
	unsigned flags = PLACE_MIGRATE | (r->force ? PLACE_FORCE : 0);
	json_t *vms = json_pack("[s]", r->vm), *hosts = json_pack("[s]", r->dst);
	struct snap sn;
	e = snap_build(db, have_src ? r->src : NULL, vms, hosts, flags, &sn);
	const char **srs = NULL, **nets = NULL;
	if (!e && r->x) {
		as_moved(&sn, r->x, v, r->dst);
		srs = r->x->x_srs ? (const char **)sn.sn_vms[0].pv_srs : NULL;
		nets = r->x->x_nets ? (const char **)sn.sn_vms[0].pv_networks : NULL;
	}
	json_decref(v);
	if (!e)
		e = place_assert(&sn.sn_pool.pp_vms[0], sn.sn_pool.pp_source, &sn.sn_pool.pp_hosts[0], flags);
	free(srs);
	free(nets);
	snap_free(&sn);
	json_decref(vms);
	json_decref(hosts);
	if (!e && r->x)
		snprintf(r->op_id, sizeof r->op_id, "%s", r->x->x_op_id);
	else if (!e)
		e = ops_begin(db, r->vm, "pool_migrate", r->op_id);
	return e ? e : db_obj_set(db, r->vm, "scheduled_to_be_resident_on", json_string(r->dst));
}

static json_t *unreserve_txn(struct db *db, void *ctx)
{
	struct reserve_ctx *r = ctx;
	json_t *e = r->x ? NULL : ops_end(db, r->vm, r->op_id);
	return e ? e : db_obj_set(db, r->vm, "scheduled_to_be_resident_on", json_string(MODEL_NULL_REF));
}

/* What the migration remembers across its agent calls. */
struct mig_job {
	struct poold *mj_pd;
	char mj_vm[64], mj_uuid[48], mj_src[64], mj_dst[64];
	char mj_token[64];
	char mj_op_id[64];   /* the VM's current operation */
	char mj_task[64];    /* the task to report progress into, or "" */
	json_t *mj_opts;     /* {compress, max_downtime_ms, max_rounds, verify, live, address} */
	char mj_address[64]; /* the destination's address for the stream */
	json_t *mj_stats;    /* the source's report of the migration */
	json_t *mj_cfg;      /* the domain's configuration (start_config) */
	json_t *mj_send_err; /* the source's failure, while the destination is asked */
	struct event *mj_poll;
	struct mig_job **mj_poll_cell; /* the status call in flight finds the job here */
	migrate_done_fn mj_done; /* NULL once called */
	migrate_released_fn mj_released;
	void *mj_arg;
	/* inside a storage migration (migrate_start_ext) */
	bool mj_keep_op;      /* the VM's operation is the caller's to end */
	double mj_prog_lo, mj_prog_hi;
	char mj_prefix[32];   /* before the phase notes: "memory: " */
	db_txn_fn mj_commit;  /* run in the transaction that records the move */
	char mj_commit_arg[64];
	/* prepared ahead (migrate_prepare): the source waits for migrate_go */
	bool mj_hold;        /* not yet: the destination is only prepared */
	bool mj_ready;       /* the destination listens on mj_port */
	bool mj_drop;        /* not wanted: the destination takes its endpoint back once it answers */
	json_int_t mj_port;
	json_int_t mj_dst_domid; /* the domain the destination prepared (0: it makes one from the stream) */
};

static void job_free(struct mig_job *j)
{
	if (j->mj_poll)
		event_free(j->mj_poll);
	json_decref(j->mj_opts);
	json_decref(j->mj_stats);
	json_decref(j->mj_cfg);
	json_decref(j->mj_send_err);
	free(j);
}

/* The end, either way: the API call's error (or NULL and *result), the
 * done callback told. The job is freed. */
struct end_ctx {
	char vm[64], op_id[64];
	bool unreserve;
	bool keep_op;
};

/* The VM's operation ends (and, on a failure, its reservation): written
 * even if the database is locked right now (txn_until_done). */
static json_t *end_op_txn(struct db *db, void *ctx)
{
	struct end_ctx *x = ctx;
	json_t *e = x->keep_op ? NULL : ops_end(db, x->vm, x->op_id);
	if (!e && x->unreserve)
		e = db_obj_set(db, x->vm, "scheduled_to_be_resident_on", json_string(MODEL_NULL_REF));
	return e;
}

static void end_op(struct mig_job *j, bool unreserve)
{
	struct end_ctx x = {"", "", unreserve, j->mj_keep_op};
	snprintf(x.vm, sizeof x.vm, "%s", j->mj_vm);
	snprintf(x.op_id, sizeof x.op_id, "%s", j->mj_op_id);
	txn_until_done(j->mj_pd, end_op_txn, &x, sizeof x, "the end of a migration");
}

static json_t *finish(struct mig_job *j, json_t *err, json_t **result)
{
	end_op(j, false);
	if (j->mj_done)
		j->mj_done(j->mj_pd, j->mj_arg, err, j->mj_stats);
	else if (j->mj_released) /* told it moved: released is owed, whatever ended the job */
		j->mj_released(j->mj_pd, j->mj_arg, false, "the migration ended before the source confirmed");
	if (!err && result)
		*result = json_string("");
	job_free(j);
	return err;
}

/* Failed with the VM on its source: VM_MIGRATE_FAILED [vm, source,
 * destination, why], the reservation dropped. why is taken. */
static json_t *failed(struct mig_job *j, json_t *why, const char *more)
{
	char *text = xerr_to_text(why);
	char msg[1200];
	snprintf(msg, sizeof msg, "%s%s", text ? text : "?", more ? more : "");
	free(text);
	json_decref(why);
	json_t *e = xerr_new(XE_VM_MIGRATE_FAILED, j->mj_vm, j->mj_src, j->mj_dst, msg, NULL);
	end_op(j, true);
	log_warn("VM %s: migration to %s failed; %s", j->mj_vm, j->mj_dst, msg);
	return finish(j, e, NULL);
}

struct moved_ctx {
	char vm[64], dst[64];
	json_int_t domid;
	db_txn_fn commit; /* a storage migration's commit (its VBDs), in the same transaction */
	char commit_arg[64];
};

static json_t *moved_txn(struct db *db, void *ctx)
{
	struct moved_ctx *m = ctx;
	json_t *e = db_obj_update_new(db, m->vm,
				      json_pack("{s:s, s:s, s:s, s:I}", "resident_on", m->dst, "scheduled_to_be_resident_on",
						MODEL_NULL_REF, "power_state", "Running", "domid", m->domid));
	return e || !m->commit ? e : m->commit(db, m->commit_arg);
}

/* The destination runs the VM: the records say so (written even if the
 * database is locked right now: the VM has moved, whatever happens). */
static json_t *record_move(struct mig_job *j, json_t *report)
{
	struct poold *pd = j->mj_pd;
	struct moved_ctx m = {"", "", -1, j->mj_commit, ""};
	snprintf(m.commit_arg, sizeof m.commit_arg, "%s", j->mj_commit_arg);
	snprintf(m.vm, sizeof m.vm, "%s", j->mj_vm);
	snprintf(m.dst, sizeof m.dst, "%s", j->mj_dst);
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(report, "domains"), i, d) if (strcmp(jstr(d, "uuid"), j->mj_uuid) == 0)
		m.domid = json_integer_value(json_object_get(d, "domid"));
	txn_until_done(pd, moved_txn, &m, sizeof m, "a migration's move");
	/* heartbeats made before these answers must not undo the move: the
	 * destination's (made before its domain ran) nor the source's (made
	 * before its copy was destroyed) */
	vm_changed_stamp(pd, j->mj_vm, j->mj_dst, report, true);
	vm_changed_stamp(pd, j->mj_vm, j->mj_src, j->mj_stats, false);
	log_info("VM %s migrated to %s", j->mj_vm, j->mj_dst);
	return NULL;
}

/* Whether the destination's report has the VM running. */
static bool runs_there(struct mig_job *j, json_t *report)
{
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(report, "domains"), i, d) if (strcmp(jstr(d, "uuid"), j->mj_uuid) == 0)
		return strcmp(jstr(d, "power_state"), "Running") == 0;
	return false;
}

/* Fire and forget: method(uuid[, extra]) on host; failures are logged. */
/* ---- progress, while the source streams ---- */

static json_t *status_done(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err,
			   json_t **result)
{
	(void)c, (void)result, (void)err;
	struct mig_job *j = *(struct mig_job **)ctx;
	if (!j) /* the job ended meanwhile (stop_poll) */
		return NULL;
	j->mj_poll_cell = NULL;
	if (!answer || !j->mj_task[0])
		return NULL;
	double sent = (double)json_integer_value(json_object_get(answer, "bytes_sent"));
	double left = (double)json_integer_value(json_object_get(answer, "pages_remaining")) * 4096.0;
	double npages = (double)json_integer_value(json_object_get(answer, "npages"));
	double rate = json_number_value(json_object_get(answer, "rate_mb_s"));
	int round = (int)json_integer_value(json_object_get(answer, "round"));
	int thr = (int)json_integer_value(json_object_get(answer, "throttle_pct"));
	bool paused = json_is_true(json_object_get(answer, "paused"));
	/* round 1 moves the bulk: its share of the guest's pages is the
	 * progress from 5% to 90%; later rounds and the stop-and-copy fill the
	 * rest (the task's progress never goes back) */
	double frac = npages > 0 && round <= 1 ? 1.0 - left / (npages * 4096.0) : 1.0;
	if (frac < 0)
		frac = 0;
	double prog = 0.05 + 0.85 * frac + (round > 1 ? 0.03 : 0) + (paused ? 0.04 : 0);
	api_task_progress(pd, j->mj_task, j->mj_prog_lo + (j->mj_prog_hi - j->mj_prog_lo) * prog);
	char phase[200];
	double eta = rate > 0 ? left / 1e6 / rate : -1;
	int n = snprintf(phase, sizeof phase, "%s%s round %d  %.0f MB/s  %.0f MB sent", j->mj_prefix,
			 paused ? "stop-and-copy," : "pre-copy", round, rate, sent / 1e6);
	if (eta >= 0 && !paused && n > 0 && (size_t)n < sizeof phase)
		n += snprintf(phase + n, sizeof phase - (size_t)n, "  ETA %.1f s", eta);
	if (thr && n > 0 && (size_t)n < sizeof phase)
		snprintf(phase + n, sizeof phase - (size_t)n, "  auto-converge: throttled %d%%", thr);
	api_task_note(pd, j->mj_task, "phase", phase);
	return NULL;
}

static struct mig_job **cell_of(struct mig_job *j);

/* A step's context is a cell holding the job (agentcall frees the cell);
 * the status call's cell is cleared when the job ends first, so an answer
 * arriving later touches nothing. */
static void poll_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct mig_job *j = arg;
	if (j->mj_poll_cell)
		return; /* the last one is still out */
	j->mj_poll_cell = cell_of(j);
	agent_call_done(j->mj_pd, NULL, j->mj_src, AGENT_MIGRATION_STATUS, json_pack("[s]", j->mj_uuid), status_done,
			j->mj_poll_cell);
}

static void stop_poll(struct mig_job *j)
{
	if (j->mj_poll) {
		event_free(j->mj_poll);
		j->mj_poll = NULL;
	}
	if (j->mj_poll_cell)
		*j->mj_poll_cell = NULL;
	j->mj_poll_cell = NULL;
}

/* ---- the steps ---- */

static json_t *arbitrated(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err,
			  json_t **result);

/* Step 4: the source's copy is gone (or could not be confirmed gone: the
 * VM runs on the destination all the same; the heartbeats settle a copy
 * left paused). */
static json_t *released(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err, json_t **result)
{
	(void)c;
	struct mig_job *j = *(struct mig_job **)ctx;
	bool gone = !err && json_is_true(json_object_get(answer, "released"));
	char *etext = err ? xerr_to_text(err) : NULL;
	const char *why = etext ? etext : jstr(answer, "why");
	if (!gone) {
		log_warn("VM %s: moved to %s, but its copy on %s is not confirmed destroyed: %s", j->mj_vm, j->mj_dst,
			 j->mj_src, why);
		if (j->mj_task[0])
			api_task_note(pd, j->mj_task, "source_copy", why);
	}
	if (j->mj_released)
		j->mj_released(pd, j->mj_arg, gone, why);
	j->mj_released = NULL;
	free(etext);
	return finish(j, NULL, result);
}

/* Step 3: the destination's word on its domain after the move (agent.vm_state); then the records. */
static json_t *reported(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err, json_t **result)
{
	(void)err, (void)result;
	struct mig_job *j = *(struct mig_job **)ctx;
	json_t *e = record_move(j, answer);
	if (e)
		return finish(j, e, NULL);
	const char *verr = jstr(j->mj_stats, "verify_error");
	if (*verr) /* moved, but a dirty-tracking bug was caught: the task must not say success */
		return finish(j,
			      xerr_new(XE_VM_MIGRATE_FAILED, j->mj_vm, j->mj_src, j->mj_dst, verr, NULL), NULL);
	if (j->mj_released && j->mj_done) { /* recorded: the caller goes on while the source frees its copy */
		j->mj_done(pd, j->mj_arg, NULL, j->mj_stats);
		j->mj_done = NULL;
	}
	return agent_call_done(pd, c, j->mj_src, AGENT_VM_RELEASED, json_pack("[s]", j->mj_uuid), released,
			       cell_of(j));
}

static struct mig_job **cell_of(struct mig_job *j)
{
	struct mig_job **p = xmalloc(sizeof *p);
	*p = j;
	return p;
}

/* The destination's word on the VM's domain (agent.vm_state, at the domid
 * it prepared), stamped: its reports from before it must not undo what
 * poold decides from it. */
static json_t *ask_destination(struct mig_job *j, struct api_call *c, agent_done_fn then)
{
	return agent_call_done(j->mj_pd, c, j->mj_dst, AGENT_VM_STATE, json_pack("[s,I]", j->mj_uuid, j->mj_dst_domid),
			       then, cell_of(j));
}

/* Step 2 done: the source streamed (answer: its figures), or failed. */
static json_t *sent(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err, json_t **result)
{
	(void)result;
	struct mig_job *j = *(struct mig_job **)ctx;
	stop_poll(j);
	if (err) {
		/* nothing resumes before the destination was asked */
		j->mj_send_err = json_incref(err);
		if (j->mj_task[0])
			api_task_note(pd, j->mj_task, "phase", "the source failed: asking the destination");
		return ask_destination(j, c, arbitrated);
	}
	j->mj_stats = json_incref(answer);
	if (j->mj_task[0]) {
		char *stats = json_dumps(answer, JSON_COMPACT);
		api_task_note(pd, j->mj_task, "migration_stats", stats ? stats : "{}");
		api_task_note(pd, j->mj_task, "phase", "recording");
		free(stats);
		api_task_progress(pd, j->mj_task, j->mj_prog_lo + (j->mj_prog_hi - j->mj_prog_lo) * 0.99);
	}
	return ask_destination(j, c, reported);
}

/* The source failed: where does the VM run? */
static json_t *arbitrated(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err,
			  json_t **result)
{
	(void)c;
	struct mig_job *j = *(struct mig_job **)ctx;
	char *why = xerr_to_text(j->mj_send_err);
	const char *w = why ? why : "?";
	/* the agent says when it stopped after GO; a call that got no answer at
	 * all (the source agent died) leaves the same doubt */
	bool after_go = strcmp(json_string_value(json_array_get(j->mj_send_err, 2)) ? json_string_value(json_array_get(j->mj_send_err, 2)) : "", "after_go") == 0;
	bool no_answer = strncmp(w, "INTERNAL_ERROR: agent.migrate_send to ", 38) == 0 ||
			 strstr(w, "agent.migrate_send to ") != NULL;
	json_t *e;
	if (answer && runs_there(j, answer)) {
		/* it got GO and runs there: the move happened */
		log_warn("VM %s: the source failed after the hand-over (%s); it runs on %s", j->mj_vm, w, j->mj_dst);
		agent_tell(pd, j->mj_src, AGENT_VM_SHUTDOWN, json_pack("[s,b]", j->mj_uuid, 1));
		e = record_move(j, answer);
		free(why);
		if (e)
			return finish(j, e, NULL);
		json_decref(j->mj_stats);
		j->mj_stats = json_pack("{s:s}", "note", "the source failed after the hand-over; the VM runs on the destination");
		if (j->mj_task[0])
			api_task_note(pd, j->mj_task, "migration_stats", "{\"note\": \"the source failed after the hand-over\"}");
		return finish(j, NULL, result);
	}
	if (answer) {
		/* the destination does not run it: the VM is the source's */
		if (after_go || no_answer)
			agent_tell(pd, j->mj_src, AGENT_VM_UNPAUSE, json_pack("[s]", j->mj_uuid));
		e = failed(j, json_incref(j->mj_send_err), after_go ? "; the destination does not run it: the source resumes it" : NULL);
		free(why);
		return e;
	}
	/* neither side can say: keep the source's copy as it is */
	char more[512];
	snprintf(more, sizeof more, "; the destination could not be asked (%s)%s", err ? "unreachable" : "?",
		 after_go || no_answer ? ": the source's copy stays paused until the destination reports" : "");
	free(why);
	return failed(j, json_incref(j->mj_send_err), more);
}

static json_t *dropped(struct mig_job *j);

/* Step 2: the source streams to the destination's endpoint. */
static json_t *stream(struct mig_job *j, struct api_call *c)
{
	struct poold *pd = j->mj_pd;
	if (j->mj_task[0]) {
		char ph[64];
		snprintf(ph, sizeof ph, "%sstreaming", j->mj_prefix);
		api_task_note(pd, j->mj_task, "phase", ph);
		api_task_progress(pd, j->mj_task, j->mj_prog_lo + (j->mj_prog_hi - j->mj_prog_lo) * 0.05);
	}
	struct timeval half = {0, 500000};
	j->mj_poll = event_new(pd->pd_base, -1, EV_PERSIST, poll_tick, j);
	if (j->mj_poll)
		event_add(j->mj_poll, &half);
	return agent_call_done(pd, c, j->mj_src, AGENT_MIGRATE_SEND,
			       json_pack("[s,s,I,s,O,O]", j->mj_uuid, j->mj_address, j->mj_port, j->mj_token, j->mj_opts,
					 j->mj_cfg),
			       sent, cell_of(j));
}

/* Step 1 done: the destination listens (or refused). A migration prepared
 * ahead waits there for migrate_go (or migrate_drop). */
static json_t *prepared(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err, json_t **result)
{
	(void)result, (void)pd;
	struct mig_job *j = *(struct mig_job **)ctx;
	if (err)
		return failed(j, json_incref(err), NULL);
	j->mj_port = json_integer_value(json_object_get(answer, "port"));
	j->mj_dst_domid = json_integer_value(json_object_get(answer, "domid"));
	if (j->mj_port <= 0)
		return failed(j, xerr_newf(XE_INTERNAL_ERROR, "the destination gave no endpoint"), NULL);
	j->mj_ready = true;
	if (j->mj_drop)
		return dropped(j);
	if (j->mj_hold)
		return NULL;
	return stream(j, c);
}

/* Not wanted after all: the destination's endpoint (and its empty domain)
 * taken back, the reservation dropped, done told. Nothing has moved: the
 * source was never asked. */
static json_t *dropped(struct mig_job *j)
{
	agent_tell(j->mj_pd, j->mj_dst, AGENT_MIGRATE_RECEIVE_CANCEL, json_pack("[s]", j->mj_uuid));
	end_op(j, true);
	log_info("VM %s: the migration prepared on %s was not started", j->mj_vm, j->mj_dst);
	return finish(j, xerr_newf(XE_INTERNAL_ERROR, "the migration prepared on %s was not started", j->mj_dst), NULL);
}

void migrate_go(struct mig_job *j)
{
	j->mj_hold = false;
	if (j->mj_ready)
		(void)stream(j, NULL); /* API_PENDING: the steps go on from the loop */
}

void migrate_detach(struct mig_job *j)
{
	j->mj_done = NULL;
	j->mj_released = NULL;
	j->mj_arg = NULL;
	if (j->mj_hold) /* never started: nothing may stay reserved or prepared */
		migrate_drop(j);
}

void migrate_drop(struct mig_job *j)
{
	if (j->mj_ready)
		json_decref(dropped(j));
	else
		j->mj_drop = true; /* when the destination answers */
}

/* options: XAPI's map of strings (live, compress, force, network) plus
 * ours (max_downtime_ms, max_rounds, verify). */
static bool opt_bool(json_t *opts, const char *k, bool dflt)
{
	const char *s = jstr(opts, k);
	if (!*s)
		return dflt;
	return strcmp(s, "true") == 0 || strcmp(s, "1") == 0;
}

/* A positive integer option, else the pool's setting, else dflt; -1 and
 * *e when the value is not one. */
static json_int_t opt_int(json_t *opts, json_t *pool, const char *k, const char *pool_key, json_int_t dflt, json_t **e)
{
	const char *s = jstr(opts, k);
	const char *from = k;
	if (!*s) {
		s = jstr(json_object_get(pool, "other_config"), pool_key);
		from = pool_key;
	}
	if (!*s)
		return dflt;
	char *end;
	long long v = strtoll(s, &end, 10);
	if (*end || end == s || v <= 0 || v > 1000000) {
		*e = xerr_new(XE_INVALID_VALUE, from, s, NULL);
		return -1;
	}
	return (json_int_t)v;
}

json_t *migrate_address(struct db *db, const char *dst, const char *net, char *out, size_t n)
{
	char cls[32];
	if (!db_obj_class(db, net, cls, sizeof cls) || strcmp(cls, "network"))
		return xerr_new(XE_HANDLE_INVALID, "network", net, NULL);
	json_t *pifs = db_find(db, "PIF", "network", net);
	const char *k;
	json_t *p;
	bool found = false;
	json_object_foreach(pifs, k, p) if (!found && strcmp(jstr(p, "host"), dst) == 0 && *jstr(p, "IP")) {
		snprintf(out, n, "%s", jstr(p, "IP"));
		found = true;
	}
	json_decref(pifs);
	return found ? NULL
		     : xerr_new(XE_INVALID_VALUE, "network", net,
				NULL); /* the destination has no address on it */
}

/* The destination's disks: each VDI of the map replaced by its copy. */
static void disks_moved(json_t *cfg, json_t *map)
{
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(cfg, "disks"), i, d) {
		json_t *to = json_object_get(map, jstr(d, "vdi_uuid"));
		if (!to)
			continue;
		json_object_set_new(d, "vdi_uuid", json_string(jstr(to, "vdi_uuid")));
		json_object_set_new(d, "sr", json_string(jstr(to, "sr")));
	}
}

/* The job's fields a storage migration sets. */
static void job_ext(struct mig_job *j, const struct migrate_ext *x)
{
	j->mj_prog_lo = x ? x->x_prog_lo : 0;
	j->mj_prog_hi = x ? x->x_prog_hi : 1;
	if (!x)
		return;
	j->mj_keep_op = true;
	snprintf(j->mj_prefix, sizeof j->mj_prefix, "%s", x->x_phase_prefix ? x->x_phase_prefix : "");
	j->mj_commit = x->x_commit;
	snprintf(j->mj_commit_arg, sizeof j->mj_commit_arg, "%s", x->x_commit_arg ? x->x_commit_arg : "");
	if (x->x_source_opts)
		json_object_update(j->mj_opts, x->x_source_opts);
	disks_moved(j->mj_cfg, x->x_disks);
}

/* The job, once the destination is reserved: its options and the domain's configuration. */
static struct mig_job *job_new(struct poold *pd, const struct reserve_ctx *r, json_t *opts, json_t *pool,
			       const char *address, json_int_t max_dt, json_int_t max_rounds)
{
	struct mig_job *j = xcalloc(1, sizeof *j);
	j->mj_pd = pd;
	json_t *v = db_obj_get(pd->pd_db, r->vm);
	json_t *dst = db_obj_get(pd->pd_db, r->dst);
	snprintf(j->mj_vm, sizeof j->mj_vm, "%s", r->vm);
	snprintf(j->mj_uuid, sizeof j->mj_uuid, "%s", jstr(v, "uuid"));
	snprintf(j->mj_src, sizeof j->mj_src, "%s", r->src);
	snprintf(j->mj_op_id, sizeof j->mj_op_id, "%s", r->op_id);
	snprintf(j->mj_dst, sizeof j->mj_dst, "%s", r->dst);
	/* network: the stream goes to the destination's address on it; else
	 * to its management address */
	snprintf(j->mj_address, sizeof j->mj_address, "%s",
		 *address ? address : jstr(json_object_get(dst, "other_config"), "agent_address"));
	unsigned char raw[16];
	RAND_bytes(raw, sizeof raw);
	for (int i = 0; i < 16; i++)
		sprintf(j->mj_token + 2 * i, "%02x", raw[i]);
	bool compress = opt_bool(opts, "compress", json_is_true(json_object_get(pool, "migration_compression")));
	/* each end admits only the other's certificate (its host uuid as CN) */
	json_t *src_rec = db_obj_get(pd->pd_db, j->mj_src);
	j->mj_opts = json_pack("{s:b, s:I, s:I, s:b, s:b, s:s, s:s, s:s}", "compress", compress, "max_downtime_ms",
			       max_dt, "max_rounds", max_rounds, "verify", opt_bool(opts, "verify", false), "live",
			       opt_bool(opts, "live", true), "address", j->mj_address, "source_host",
			       jstr(src_rec, "uuid"), "destination_host", jstr(dst, "uuid"));
	json_decref(src_rec);
	/* where the source's domain is: one domain asked there, not all listed */
	json_object_set_new(j->mj_opts, "source_domid", json_integer(json_integer_value(json_object_get(v, "domid"))));
	json_t *cfg = start_config(pd->pd_db, pd->pd_pool_ref, r->vm, v, false);
	/* the guest keeps the CPU it booted with, not today's pool level */
	json_t *flags = json_object_get(v, "last_boot_CPU_flags");
	json_object_set_new(cfg, "cpu_vendor", json_string(jstr(flags, "vendor")));
	json_object_set_new(cfg, "featureset", json_string(jstr(flags, "features")));
	j->mj_cfg = cfg;
	json_decref(v);
	json_decref(dst);
	return j;
}

static json_t *start(struct poold *pd, struct api_call *c, const char *vm, const char *host, json_t *opts,
		     const char *task, const struct migrate_ext *x, migrate_done_fn done, migrate_released_fn released_fn,
		     void *arg, struct mig_job **held)
{
	json_t *e = NULL;
	json_t *pool = db_obj_get(pd->pd_db, pd->pd_pool_ref);
	json_int_t max_dt = opt_int(opts, pool, "max_downtime_ms", "migration-max-downtime-ms", 50, &e);
	json_int_t max_rounds = e ? 0 : opt_int(opts, pool, "max_rounds", "migration-max-rounds", 30, &e);
	char address[64] = "";
	const char *net = jstr(opts, "network");
	if (!e && *net && strcmp(net, MODEL_NULL_REF))
		e = migrate_address(pd->pd_db, host, net, address, sizeof address);
	struct reserve_ctx r = {vm, host, opt_bool(opts, "force", false), "", "", x};
	if (e || (e = db_txn(pd->pd_db, reserve_txn, &r)) || (e = source_live(pd, &r))) {
		json_decref(pool);
		return e;
	}
	struct mig_job *j = job_new(pd, &r, opts, pool, address, max_dt, max_rounds);
	json_decref(pool);
	j->mj_done = done;
	j->mj_released = released_fn;
	j->mj_arg = arg;
	snprintf(j->mj_task, sizeof j->mj_task, "%s", task ? task : "");
	job_ext(j, x);
	j->mj_hold = held != NULL;
	if (held)
		*held = j;
	log_info("VM %s: migrating from %s to %s (stream to %s)", vm, j->mj_src, host, j->mj_address);
	return agent_call_done(pd, c, host, AGENT_MIGRATE_RECEIVE,
			       json_pack("[O,s,O]", j->mj_cfg, j->mj_token, j->mj_opts), prepared, cell_of(j));
}

json_t *migrate_start_ext(struct poold *pd, struct api_call *c, const char *vm, const char *host, json_t *opts,
			  const char *task, const struct migrate_ext *x, migrate_done_fn done,
			  migrate_released_fn released_fn, void *arg)
{
	return start(pd, c, vm, host, opts, task, x, done, released_fn, arg, NULL);
}

json_t *migrate_prepare(struct poold *pd, const char *vm, const char *host, json_t *opts, migrate_done_fn done,
			migrate_released_fn released_fn, void *arg, struct mig_job **job)
{
	return start(pd, NULL, vm, host, opts, NULL, NULL, done, released_fn, arg, job);
}

json_t *migrate_start(struct poold *pd, struct api_call *c, const char *vm, const char *host, json_t *opts,
		      const char *task, migrate_done_fn done, migrate_released_fn released_fn, void *arg)
{
	return migrate_start_ext(pd, c, vm, host, opts, task, NULL, done, released_fn, arg);
}

json_t *vm_pool_migrate(struct api_call *c)
{
	const char *vm, *host;
	json_t *opts, *e = api_arg_ref(c, 0, "VM", &vm);
	if (e || (e = api_arg_ref(c, 1, "host", &host)) || (e = api_arg_obj(c, 2, "options", &opts)))
		return e;
	return migrate_start(c->ac_pd, c, vm, host, opts, c->ac_task, NULL, NULL, NULL);
}
