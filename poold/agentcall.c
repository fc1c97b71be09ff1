/*
 * agentcall.c - an API call whose work is done by a host's agent.
 *
 * The call is parked (API_PENDING) while the agent works; when the agent
 * answers, on_ok records the outcome in the database and says what the
 * API call returns, or on_fail undoes any reservation made before. If the
 * client went away meanwhile, the outcome is still recorded: the agent did
 * the work, the database must say so.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include "evrpc.h"
#include "log.h"
#include "poold.h"
#include "xerr.h"

struct agent_job {
	struct poold *aj_pd;
	struct api_call *aj_call; /* NULL once its client is gone */
	agent_ok_fn aj_ok;
	agent_fail_fn aj_fail;
	agent_done_fn aj_done;
	void *aj_ctx;
	char aj_what[160];
};

static void job_cancel(struct api_call *c)
{
	struct agent_job *j = c->ac_parked;
	j->aj_call = NULL;
	api_call_free(c);
}

static void job_answer(void *arg, json_t *result, json_t *err)
{
	struct agent_job *j = arg;
	json_t *e, *out = NULL;
	if (j->aj_done) {
		if (err) {
			char *s = xerr_to_text(err);
			log_warn("%s failed: %s", j->aj_what, s ? s : "?");
			free(s);
		}
		e = j->aj_done(j->aj_call, j->aj_pd, j->aj_ctx, err ? NULL : result, err, &out);
	} else if (err) {
		char *s = xerr_to_text(err);
		log_warn("%s failed: %s", j->aj_what, s ? s : "?");
		free(s);
		e = json_incref(err);
		if (j->aj_fail)
			j->aj_fail(j->aj_pd, j->aj_ctx, &e);
	} else {
		e = j->aj_ok(j->aj_call, j->aj_pd, j->aj_ctx, result, &out);
	}
	struct api_call *c = j->aj_call;
	free(j->aj_ctx);
	free(j);
	if (e == API_PENDING)
		return; /* the next step has the call now */
	if (!c) {
		json_decref(e);
		json_decref(out);
		return;
	}
	c->ac_cancel = NULL;
	c->ac_result = out ? out : (e ? NULL : json_string(""));
	api_call_finish(c, e);
}

bool agent_target(struct poold *pd, const char *host, struct agent_addr *out)
{
	json_t *h = db_obj_get(pd->pd_db, host);
	json_t *oc = json_object_get(h, "other_config");
	const char *a = json_string_value(json_object_get(oc, "agent_address"));
	const char *p = json_string_value(json_object_get(oc, "agent_port"));
	const char *u = json_string_value(json_object_get(h, "uuid"));
	bool ok = a && p && u && *a && atoi(p) > 0;
	if (ok) {
		snprintf(out->aa_address, sizeof out->aa_address, "%s", a);
		snprintf(out->aa_uuid, sizeof out->aa_uuid, "%s", u);
		out->aa_port = atoi(p);
	}
	json_decref(h);
	return ok;
}

json_t *agent_call(struct api_call *c, const char *host, const char *method, json_t *params, agent_ok_fn ok,
		   agent_fail_fn fail, void *ctx)
{
	return agent_call_pd(c->ac_pd, c, host, method, params, ok, fail, ctx);
}

/* done with an error, from the loop (agent_call_done is always asynchronous) */
struct late {
	struct agent_job *l_job;
	json_t *l_err;
};

static void late_fail(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct late *l = arg;
	job_answer(l->l_job, NULL, l->l_err);
	json_decref(l->l_err);
	free(l);
}

json_t *agent_call_done(struct poold *pd, struct api_call *c, const char *host, const char *method, json_t *params,
			agent_done_fn done, void *ctx)
{
	struct agent_addr addr;
	struct agent_job *j = calloc(1, sizeof *j);
	if (!j)
		abort(); /* as the rest of poold: out of memory ends the daemon */
	*j = (struct agent_job){pd, c, NULL, NULL, done, ctx, ""};
	if (c) {
		c->ac_parked = j;
		c->ac_cancel = job_cancel;
	}
	json_t *e = NULL;
	if (!agent_target(pd, host, &addr)) {
		snprintf(j->aj_what, sizeof j->aj_what, "%s on host %s", method, host);
		e = xerr_new(XE_HOST_OFFLINE, host, NULL);
	} else {
		snprintf(j->aj_what, sizeof j->aj_what, "%s on %s:%d", method, addr.aa_address, addr.aa_port);
		struct evrpc_target t = {addr.aa_address, addr.aa_port, pd->pd_agent_ctx, addr.aa_uuid};
		if (evrpc_call(pd->pd_base, &t, method, params, 120, job_answer, j) < 0)
			e = xerr_newf(XE_INTERNAL_ERROR, "cannot start %s", method);
		params = NULL; /* taken by evrpc_call */
	}
	json_decref(params);
	if (e) {
		struct late *l = calloc(1, sizeof *l);
		l->l_job = j;
		l->l_err = e;
		if (!l || event_base_once(pd->pd_base, -1, EV_TIMEOUT, late_fail, l, NULL) < 0)
			abort();
	}
	return API_PENDING;
}

json_t *agent_call_pd(struct poold *pd, struct api_call *c, const char *host, const char *method, json_t *params,
		      agent_ok_fn ok, agent_fail_fn fail, void *ctx)
{
	struct agent_addr addr;
	struct agent_job *j = calloc(1, sizeof *j);
	if (!j || !agent_target(pd, host, &addr)) {
		json_t *e = xerr_new(XE_HOST_OFFLINE, host, NULL); /* host may live in ctx */
		json_decref(params);
		if (fail)
			fail(pd, ctx, &e);
		free(ctx);
		free(j);
		return e;
	}
	*j = (struct agent_job){pd, c, ok, fail, NULL, ctx, ""};
	snprintf(j->aj_what, sizeof j->aj_what, "%s on %s:%d", method, addr.aa_address, addr.aa_port);
	struct evrpc_target t = {addr.aa_address, addr.aa_port, pd->pd_agent_ctx, addr.aa_uuid};
	if (evrpc_call(pd->pd_base, &t, method, params, 120, job_answer, j) < 0) {
		json_t *e = xerr_newf(XE_INTERNAL_ERROR, "cannot start %s", method);
		if (fail)
			fail(pd, ctx, &e);
		free(ctx);
		free(j);
		return e;
	}
	if (c) {
		c->ac_parked = j;
		c->ac_cancel = job_cancel;
	}
	return API_PENDING;
}
