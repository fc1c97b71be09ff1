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
#include "evrpc.h"
#include "log.h"
#include "poold.h"
#include "xerr.h"

struct agent_job {
	struct poold *aj_pd;
	struct api_call *aj_call; /* NULL once its client is gone */
	agent_ok_fn aj_ok;
	agent_fail_fn aj_fail;
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
	if (err) {
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
	struct poold *pd = c->ac_pd;
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
	*j = (struct agent_job){pd, c, ok, fail, ctx, ""};
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
