/*
 * rpu_journal.c - the run's plumbing (see rpu.h): the API calls it makes
 * as the pool master itself, its journal in the database and in the task
 * (with the progress and the ETA), and a stop with its reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "log.h"
#include "rpu.h"
#include "util.h"
#include "xerr.h"

json_int_t rpu_int(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

void rpu_set_int(json_t *o, const char *k, json_int_t v)
{
	json_object_set_new(o, k, json_integer(v));
}

/* ------------------------------------------------------ API calls */

struct rpu_tok {
	struct api_call tk_call; /* first: api_call_free() frees the token */
	struct rpu *tk_run;      /* NULL once the run is gone */
	struct rpu_tok *tk_next;
	rpu_call_fn tk_fn;
	char tk_arg[64];
};

static void tok_unlink(struct rpu_tok *t)
{
	if (!t->tk_run)
		return;
	for (struct rpu_tok **pp = &t->tk_run->rp_toks; *pp; pp = &(*pp)->tk_next)
		if (*pp == t) {
			*pp = t->tk_next;
			break;
		}
	t->tk_run = NULL;
}

static void tok_done(struct api_call *c, json_t *err)
{
	struct rpu_tok *t = (struct rpu_tok *)c;
	struct rpu *r = t->tk_run;
	tok_unlink(t);
	if (r && t->tk_fn)
		t->tk_fn(r, err, c->ac_result, t->tk_arg);
	json_decref(err);
	api_call_free(c);
}

void rpu_call(struct rpu *r, const char *method, json_t *args, rpu_call_fn fn, const char *arg)
{
	struct poold *pd = r->rp_pd;
	struct rpu_tok *t = xcalloc(1, sizeof *t);
	t->tk_run = r;
	t->tk_fn = fn;
	snprintf(t->tk_arg, sizeof t->tk_arg, "%s", arg ? arg : "");
	t->tk_next = r->rp_toks;
	r->rp_toks = t; /* before the handler: it may answer at once */
	struct api_call *c = &t->tk_call;
	c->ac_pd = pd;
	c->ac_args = args;
	c->ac_params = json_array();
	json_array_append_new(c->ac_params, json_string("")); /* where a session would be */
	json_array_extend(c->ac_params, args);
	c->ac_done = tok_done;
	json_t *idx = json_object_get(pd->pd_methods, method);
	if (!idx) {
		api_call_finish(c, xerr_new(XE_MESSAGE_METHOD_UNKNOWN, method, NULL));
		return;
	}
	c->ac_method = &pd->pd_method_tab[json_integer_value(idx)];
	json_t *e = c->ac_method->am_fn(c);
	if (e != API_PENDING)
		api_call_finish(c, e);
}

/* Every call still out: a parked one (an evacuation, HA's enable) goes on
 * without the run; the others answer into nothing. */
void rpu_calls_drop(struct rpu *r)
{
	while (r->rp_toks) {
		struct rpu_tok *t = r->rp_toks;
		r->rp_toks = t->tk_next;
		t->tk_run = NULL;
		if (t->tk_call.ac_cancel)
			t->tk_call.ac_cancel(&t->tk_call);
	}
}

/* ------------------------------------------------------ the journal */

json_t *rpu_pool(struct poold *pd, char *ref)
{
	if (ref)
		snprintf(ref, 64, "%s", pd->pd_pool_ref);
	return db_obj_get(pd->pd_db, pd->pd_pool_ref);
}

static json_t *meta_txn(struct db *db, void *ctx)
{
	return db_meta_set(db, RPU_META_KEY, ctx ? ctx : "");
}

const char *rpu_task_of(struct db *db, char *out)
{
	char *text = db_meta_get(db, RPU_META_KEY);
	json_t *st = text && *text ? json_loads(text, 0, NULL) : NULL;
	snprintf(out, 64, "%s", jstr(st, "task"));
	json_decref(st);
	free(text);
	return out;
}

/* Seconds each host done so far took, the ones left, and the ETA. */
static void eta(struct rpu *r, time_t now)
{
	json_t *hosts = json_object_get(r->rp_st, "hosts");
	size_t n = json_array_size(hosts), ndone = 0, todo = 0;
	double *took = xcalloc(n + 1, sizeof *took), current = 0;
	size_t i;
	json_t *h;
	json_array_foreach(hosts, i, h) {
		enum upgrade_phase p = upgrade_phase_parse(jstr(h, "phase"));
		if (p == UPG_DONE && rpu_int(h, "ended"))
			took[ndone++] = (double)(rpu_int(h, "ended") - rpu_int(h, "started"));
		else if (p != UPG_SKIPPED && p != UPG_DONE && p != UPG_FAILED)
			todo++;
		if (p != UPG_PENDING && p != UPG_DONE && p != UPG_SKIPPED && rpu_int(h, "started"))
			current = (double)(now - rpu_int(h, "started"));
	}
	json_object_set_new(r->rp_st, "eta_s", json_real(upgrade_eta(took, ndone, todo, current)));
	rpu_set_int(r->rp_st, "elapsed_s", now - rpu_int(r->rp_st, "started"));
	free(took);
}

static double progress(const json_t *st)
{
	json_t *hosts = json_object_get(st, "hosts");
	double done = 0;
	size_t i;
	json_t *h;
	json_array_foreach(hosts, i, h) {
		static const double weight[UPG__COUNT] = {0, 0.2, 0.5, 0.8, 1, 1, 1};
		enum upgrade_phase p = upgrade_phase_parse(jstr(h, "phase"));
		done += p < UPG__COUNT ? weight[p] : 0;
	}
	const char *stage = jstr(st, "stage");
	if (strcmp(stage, "restore") == 0 || strcmp(stage, "end") == 0)
		done += 1;
	double p = done / (double)(json_array_size(hosts) + 1);
	return p < 0.99 ? p : 0.99;
}

void rpu_save(struct rpu *r)
{
	struct poold *pd = r->rp_pd;
	eta(r, time(NULL));
	char *text = json_dumps(r->rp_st, JSON_COMPACT);
	json_t *e = db_txn(pd->pd_db, meta_txn, text);
	if (e) {
		log_error("rolling upgrade: its state could not be stored");
		json_decref(e);
	}
	const char *task = jstr(r->rp_st, "task");
	if (*task) {
		api_task_note(pd, task, "rolling_upgrade", text ? text : "{}");
		api_task_progress(pd, task, progress(r->rp_st));
	}
	free(text);
	r->rp_dirty = false;
}

void rpu_forget(struct poold *pd)
{
	json_decref(db_txn(pd->pd_db, meta_txn, NULL));
}

void rpu_fail(struct rpu *r, int host, const char *reason, json_t *detail)
{
	json_t *h = json_array_get(json_object_get(r->rp_st, "hosts"), (size_t)host);
	json_t *f = json_pack("{s:s, s:s, s:s, s:s}", "host", jstr(h, "host"), "name", jstr(h, "name"), "phase",
			      jstr(h, "phase"), "reason", reason);
	if (detail)
		json_object_set_new(f, "detail", detail);
	if (h && upgrade_phase_parse(jstr(h, "phase")) == UPG_UPGRADING) {
		char *out = rpu_hook_output(r->rp_pd, jstr(h, "uuid"), 2000);
		json_object_set_new(f, "output", json_string(out));
		free(out);
	}
	if (h) {
		json_object_set_new(h, "phase", json_string(upgrade_phase_name(UPG_FAILED)));
		json_object_set_new(h, "error", json_string(reason));
	}
	log_error("rolling upgrade stopped at host %s: %s", h ? jstr(h, "name") : "-", reason);
	json_object_set_new(r->rp_st, "failure", f);
	/* what moved goes home as far as it can; then HA and auto power-on */
	json_object_set_new(r->rp_st, "stage", json_string("home"));
	r->rp_dirty = true;
}

