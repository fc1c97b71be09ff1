/*
 * sxm_cleanup.c - what a storage migration leaves to remove, and the
 * migrations' life around it: the job list, the journal writes, the task's
 * end, the queue of R-13, and the restart.
 *
 * Removing is a list in the journal (cleanup), one item at a time: the
 * mirror it names is ended on its host, then the VDI's file removed there
 * (agent.vdi_remove: a file already gone is no error), then its record, in
 * one transaction with the item's removal from the list. A host that does
 * not answer is asked again every 2 s, for as long as it takes: a crash
 * never leaves a file without its record nor a record without its file,
 * and once the list is empty nothing of the migration is left.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ops.h"
#include "poold.h"
#include "sxm.h"
#include "util.h"
#include "xerr.h"

#define RETRY_MS 2000

/* ---- the job ---- */

struct sxm_job *sxm_job_new(struct poold *pd, const char *id, json_t *entry, struct api_call *c, const char *task)
{
	struct sxm_job *job = xcalloc(1, sizeof *job);
	job->sj_pd = pd;
	snprintf(job->sj_id, sizeof job->sj_id, "%s", id);
	job->sj_j = json_incref(entry);
	job->sj_c = c;
	snprintf(job->sj_task, sizeof job->sj_task, "%s", task ? task : "");
	job->sj_next = pd->pd_sxm;
	pd->pd_sxm = job;
	return job;
}

void sxm_job_free(struct sxm_job *job)
{
	for (struct sxm_job **pp = &job->sj_pd->pd_sxm; *pp; pp = &(*pp)->sj_next)
		if (*pp == job) {
			*pp = job->sj_next;
			break;
		}
	if (job->sj_cell)
		*job->sj_cell = NULL;
	if (job->sj_timer)
		event_free(job->sj_timer);
	if (job->sj_c) { /* never decided (poold stops): the client hears it */
		job->sj_c->ac_cancel = NULL;
		job->sj_c->ac_parked = NULL;
		api_call_finish(job->sj_c, xerr_newf(XE_INTERNAL_ERROR, "poold stopped; the storage migration goes on "
									"when it starts again"));
	}
	json_decref(job->sj_j);
	json_decref(job->sj_error);
	free(job);
}

struct sxm_job **sxm_cell(struct sxm_job *job)
{
	if (job->sj_cell) /* one call in flight per job: the old one's answer is ignored */
		*job->sj_cell = NULL;
	struct sxm_job **cell = xmalloc(sizeof *cell);
	*cell = job;
	job->sj_cell = cell;
	return cell;
}

struct save_ctx {
	const char *id;
	json_t *entry;
};

static json_t *save_txn(struct db *db, void *ctx)
{
	struct save_ctx *s = ctx;
	return sxm_journal_put(db, s->id, s->entry);
}

bool sxm_save(struct sxm_job *job)
{
	struct save_ctx s = {job->sj_id, job->sj_j};
	json_t *e = db_txn(job->sj_pd->pd_db, save_txn, &s);
	if (e) {
		char *t = xerr_to_text(e);
		log_error("storage migration %s: the journal was not written: %s", job->sj_id, t ? t : "?");
		free(t);
		json_decref(e);
	}
	return !e;
}

void sxm_note(struct sxm_job *job, const char *key, const char *fmt, ...)
{
	if (!job->sj_task[0])
		return;
	char text[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	api_task_note(job->sj_pd, job->sj_task, key, text);
}

void sxm_end_task(struct sxm_job *job, json_t *err, json_t *result)
{
	if (job->sj_task_ended) {
		json_decref(err);
		json_decref(result);
		return;
	}
	job->sj_task_ended = true;
	if (job->sj_c) {
		struct api_call *c = job->sj_c;
		job->sj_c = NULL;
		c->ac_cancel = NULL;
		c->ac_parked = NULL;
		if (!err)
			c->ac_result = result ? result : json_string("");
		else
			json_decref(result);
		api_call_finish(c, err);
		return;
	}
	if (job->sj_task[0]) {
		if (!err && result && job->sj_task[0]) {
			char *r = json_dumps(result, JSON_ENCODE_ANY);
			api_task_note(job->sj_pd, job->sj_task, "result", r ? r : "");
			free(r);
		}
		api_task_end(job->sj_pd, job->sj_task, err);
	}
	json_decref(err);
	json_decref(result);
}

/* ---- the cleanup list ---- */

static void retry_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sxm_cleanup(arg);
}

void sxm_job_timer(struct sxm_job *job, int ms, event_callback_fn fn)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	if (job->sj_timer)
		event_free(job->sj_timer);
	job->sj_timer = evtimer_new(job->sj_pd->pd_base, fn, job);
	evtimer_add(job->sj_timer, &tv);
}

static void retry_later(struct sxm_job *job)
{
	sxm_job_timer(job, RETRY_MS, retry_tick);
}

struct item_done_ctx {
	const char *id;
	const char *vdi;
	json_t *space;
};

/* The first item removed (its record too), in one transaction. */
static json_t *item_done_txn(struct db *db, void *ctx)
{
	struct item_done_ctx *x = ctx;
	json_t *j = sxm_journal_get(db, x->id);
	if (!j)
		return NULL;
	json_t *e = sxm_vdi_forget(db, x->vdi, x->space);
	if (!e) {
		json_array_remove(json_object_get(j, "cleanup"), 0);
		e = sxm_journal_put(db, x->id, j);
	}
	json_decref(j);
	return e;
}

static bool unreachable_logged(json_t *item, json_t *err)
{
	char *t = xerr_to_text(err);
	bool first = !json_is_true(json_object_get(item, "logged"));
	if (first)
		log_warn("storage migration cleanup: VDI %s on host %s: %s (asked again every %d s)", jstr(item, "vdi_uuid"),
			 jstr(item, "host"), t ? t : "?", RETRY_MS / 1000);
	json_object_set_new(item, "logged", json_true());
	free(t);
	return first;
}

static json_t *removed(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err, json_t **result)
{
	(void)c, (void)pd, (void)result;
	struct sxm_job *job = *(struct sxm_job **)ctx;
	if (!job)
		return NULL;
	job->sj_cell = NULL;
	json_t *item = json_array_get(json_object_get(job->sj_j, "cleanup"), 0);
	if (err) {
		unreachable_logged(item, err);
		retry_later(job);
		return NULL;
	}
	struct item_done_ctx x = {job->sj_id, jstr(item, "vdi"), json_object_get(answer, "sr")};
	json_t *e = db_txn(pd->pd_db, item_done_txn, &x);
	if (e) {
		json_decref(e);
		retry_later(job);
		return NULL;
	}
	json_array_remove(json_object_get(job->sj_j, "cleanup"), 0);
	sxm_cleanup(job);
	return NULL;
}

static json_t *mirror_ended(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err,
			    json_t **result)
{
	(void)c, (void)pd, (void)answer, (void)result;
	struct sxm_job *job = *(struct sxm_job **)ctx;
	if (!job)
		return NULL;
	job->sj_cell = NULL;
	json_t *item = json_array_get(json_object_get(job->sj_j, "cleanup"), 0);
	if (err) {
		unreachable_logged(item, err);
		retry_later(job);
		return NULL;
	}
	json_object_set_new(item, "mirror", json_string("")); /* ended: only the file is left */
	sxm_save(job);
	sxm_cleanup(job);
	return NULL;
}

static json_t *sized_txn(struct db *db, void *ctx)
{
	json_t **a = ctx; /* [VDI ref, the mirror's status] */
	char cls[32];
	const char *vdi = json_string_value(a[0]);
	json_t *phys = json_object_get(a[1], "physical_utilisation");
	if (!vdi || !json_is_integer(phys) || !db_obj_class(db, vdi, cls, sizeof cls))
		return NULL;
	json_t *e = db_obj_set(db, vdi, "physical_utilisation", json_incref(phys));
	return e ? e : sr_space_update(db, json_object_get(a[1], "sr"));
}

static void await_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sxm_cleanup(arg);
}

/* A destination's mirror still syncing its copy: asked again shortly. */
static json_t *awaited(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err,
		       json_t **result)
{
	(void)c, (void)result;
	struct sxm_job *job = *(struct sxm_job **)ctx;
	if (!job)
		return NULL;
	job->sj_cell = NULL;
	json_t *item = json_array_get(json_object_get(job->sj_j, "cleanup"), 0);
	char *t = err ? xerr_to_text(err) : NULL;
	bool gone = t && strstr(t, "no disk mirror"); /* its agent restarted: the page cache went to disk anyway */
	free(t);
	if (err && !gone) {
		unreachable_logged(item, err);
		retry_later(job);
		return NULL;
	}
	const char *st = jstr(answer, "state");
	if (!gone && strcmp(st, "done") && strcmp(st, "failed")) {
		struct timeval tv = {0, 250000};
		if (job->sj_timer)
			event_free(job->sj_timer);
		job->sj_timer = evtimer_new(pd->pd_base, await_tick, job);
		evtimer_add(job->sj_timer, &tv);
		return NULL;
	}
	if (answer && *jstr(item, "copy")) /* what the copy holds, now that it is whole */
		json_decref(db_txn(pd->pd_db, sized_txn, (json_t *[]){json_object_get(item, "copy"), answer}));
	json_object_set_new(item, "await", json_false());
	sxm_save(job);
	sxm_cleanup(job);
	return NULL;
}

static json_t *finish_txn(struct db *db, void *ctx)
{
	return sxm_journal_put(db, ctx, NULL);
}

void sxm_cleanup(struct sxm_job *job)
{
	struct poold *pd = job->sj_pd;
	json_t *list = json_object_get(job->sj_j, "cleanup");
	json_t *item = json_array_get(list, 0);
	if (job->sj_cell)
		return; /* its answer goes on */
	if (!item) {
		json_t *e = db_txn(pd->pd_db, finish_txn, job->sj_id);
		if (e) {
			json_decref(e);
			retry_later(job);
			return;
		}
		log_info("storage migration %s: nothing of it is left to remove", job->sj_id);
		sxm_job_free(job);
		return;
	}
	if (json_is_true(json_object_get(item, "await"))) {
		agent_call_done(pd, NULL, jstr(item, "host"), AGENT_VDI_MIRROR_STATUS, json_pack("[s]", jstr(item, "mirror")),
				awaited, sxm_cell(job));
	} else if (*jstr(item, "mirror")) {
		agent_call_done(pd, NULL, jstr(item, "host"), AGENT_VDI_MIRROR_END, json_pack("[s]", jstr(item, "mirror")),
				mirror_ended, sxm_cell(job));
	} else if (*jstr(item, "vdi_uuid")) {
		agent_call_done(pd, NULL, jstr(item, "host"), AGENT_VDI_REMOVE,
				json_pack("[s,s]", jstr(item, "sr_uuid"), jstr(item, "vdi_uuid")), removed, sxm_cell(job));
	} else {
		json_array_remove(list, 0);
		sxm_save(job);
		sxm_cleanup(job);
	}
}
