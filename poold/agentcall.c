/*
 * agentcall.c - an API call whose work is done by a host's agent.
 *
 * The call is parked (API_PENDING) while the agent works; when the agent
 * answers, on_ok records the outcome in the database and says what the
 * API call returns, or on_fail undoes any reservation made before. If the
 * client went away meanwhile, the outcome is still recorded: the agent did
 * the work, the database must say so.
 *
 * Every method is one of agent_proto.h's table and its parameters are
 * checked against it before anything is sent. Calls travel on kept-alive
 * mutual-TLS connections, a few per host: one handshake per connection,
 * not one per call. A long call (agent.migrate_send, answered when its
 * stream ends) gets a connection to itself, from a second set kept for
 * long calls, so short calls never queue behind a stream and a batch of
 * migrations does not pay a handshake each. A connection idle for LINK_IDLE_S is
 * closed by poold first, before the agent's own idle timeout can race a
 * new request; a host whose agent moved (restarted on another port) gets
 * new connections.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include "agent_proto.h"
#include "evrpc.h"
#include "log.h"
#include "poold.h"
#include "util.h"
#include "xerr.h"

#define LINK_CONNS 8      /* kept connections per host for short calls */
#define LINK_LONG 16      /* and for long ones, one call each (above: one-off connections) */
#define LINK_SLOTS (LINK_CONNS + LINK_LONG)
#define LINK_IDLE_S 20    /* agents drop idle connections after 60 s */
#define CALL_TIMEOUT_S 120

#define RECORD_RETRY_MS 250
#define RECORD_RETRY_LIMIT_MS (10 * 60 * 1000)

struct agent_job {
	struct poold *aj_pd;
	struct api_call *aj_call; /* NULL once its client is gone */
	agent_ok_fn aj_ok;
	agent_fail_fn aj_fail;
	agent_done_fn aj_done;
	void *aj_ctx;
	char aj_what[160];
	json_t *aj_answer;      /* kept while its record waits for a busy database */
	uint64_t aj_answered;   /* when the agent answered (ms) */
};

/* The kept connections to one host's agent. */
struct agent_link {
	char al_host[64];
	struct agent_addr al_addr;
	struct evrpc_conn *al_conns[LINK_SLOTS]; /* [0, LINK_CONNS): short calls; then long */
	int64_t al_used[LINK_SLOTS];             /* monotonic second of the last call on each */
	struct agent_link *al_next;
};

static void job_cancel(struct api_call *c)
{
	struct agent_job *j = c->ac_parked;
	j->aj_call = NULL;
	api_call_free(c);
}

static void log_failure(struct agent_job *j, json_t *err)
{
	char *s = xerr_to_text(err);
	log_warn("%s failed: %s", j->aj_what, s ? s : "?");
	free(s);
}

static void job_answer(void *arg, json_t *result, json_t *err);

/* The agent did the work but another process holds the database's lock:
 * the record is tried again, the API call still waiting, so what the
 * agent did is never left unrecorded (ok callbacks are re-runnable: a
 * transaction that failed wrote nothing). */
static void record_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct agent_job *j = arg;
	json_t *answer = j->aj_answer;
	j->aj_answer = NULL;
	job_answer(j, answer, NULL);
	json_decref(answer);
}

static bool record_later(struct agent_job *j, json_t *result, json_t *e)
{
	if (!e || e == API_PENDING || j->aj_done || !db_last_busy(j->aj_pd->pd_db))
		return false;
	if (!j->aj_answered)
		j->aj_answered = now_ms();
	if (now_ms() - j->aj_answered > RECORD_RETRY_LIMIT_MS)
		return false;
	struct timeval tv = {0, RECORD_RETRY_MS * 1000};
	j->aj_answer = json_incref(result);
	if (event_base_once(j->aj_pd->pd_base, -1, EV_TIMEOUT, record_retry, j, &tv) < 0)
		abort(); /* the loop cannot take a timer: nothing else would work either */
	json_decref(e);
	return true;
}

static void job_answer(void *arg, json_t *result, json_t *err)
{
	struct agent_job *j = arg;
	json_t *e, *out = NULL;
	log_debug("<- %s%s", j->aj_what, err ? " (failed)" : "");
	if (err)
		log_failure(j, err);
	if (j->aj_done) {
		e = j->aj_done(j->aj_call, j->aj_pd, j->aj_ctx, err ? NULL : result, err, &out);
	} else if (err) {
		e = json_incref(err);
		if (j->aj_fail)
			j->aj_fail(j->aj_pd, j->aj_ctx, &e);
	} else {
		e = j->aj_ok(j->aj_call, j->aj_pd, j->aj_ctx, result, &out);
		if (record_later(j, result, e)) {
			json_decref(out);
			return;
		}
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
	const json_t *h = db_obj_peek(pd->pd_db, host);
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
	db_peek_done(h);
	return ok;
}

/* ---------------------------------------------------------- links */

static void link_drop_conns(struct agent_link *l, const char *why)
{
	for (int i = 0; i < LINK_SLOTS; i++) {
		evrpc_conn_close(l->al_conns[i], why);
		l->al_conns[i] = NULL;
	}
}

static struct agent_link *link_of(struct poold *pd, const char *host, const struct agent_addr *a)
{
	struct agent_link *l;
	for (l = pd->pd_links; l && strcmp(l->al_host, host); l = l->al_next)
		;
	if (l && (strcmp(l->al_addr.aa_address, a->aa_address) || strcmp(l->al_addr.aa_uuid, a->aa_uuid) ||
		  l->al_addr.aa_port != a->aa_port)) {
		/* the agent moved (a restart): what was in flight on the old
		 * connections fails as it would have with the old agent gone */
		link_drop_conns(l, "the host's agent moved to a new address");
		l->al_addr = *a;
	}
	if (!l) {
		l = xcalloc(1, sizeof *l);
		snprintf(l->al_host, sizeof l->al_host, "%s", host);
		l->al_addr = *a;
		l->al_next = pd->pd_links;
		pd->pd_links = l;
	}
	return l;
}

/* A short call: an idle kept connection, else a new one, else the least
 * busy. A long call: an idle one of the long set, else a new one there,
 * else NULL (the caller opens a one-off connection). */
static struct evrpc_conn *link_conn(struct poold *pd, struct agent_link *l, bool later)
{
	int best = -1, empty = -1;
	size_t best_n = (size_t)-1;
	int from = later ? LINK_CONNS : 0, to = later ? LINK_SLOTS : LINK_CONNS;
	for (int i = from; i < to; i++) {
		if (!l->al_conns[i]) {
			if (empty < 0)
				empty = i;
			continue;
		}
		size_t n = evrpc_conn_pending(l->al_conns[i]);
		if (later && n > 0)
			continue;
		if (n < best_n) {
			best_n = n;
			best = i;
		}
	}
	if (best_n > 0 && empty >= 0) {
		struct evrpc_target t = {l->al_addr.aa_address, l->al_addr.aa_port, pd->pd_agent_ctx,
					 l->al_addr.aa_uuid};
		l->al_conns[empty] = evrpc_conn_new(pd->pd_base, &t);
		best = l->al_conns[empty] ? empty : best;
	}
	if (best < 0)
		return NULL;
	assert(best >= from && best < to && l->al_conns[best]);
	l->al_used[best] = now_s();
	return l->al_conns[best];
}

/* Close connections nobody used for LINK_IDLE_S (the timer of api.c's gc). */
void agent_links_sweep(struct poold *pd)
{
	int64_t now = now_s();
	for (struct agent_link *l = pd->pd_links; l; l = l->al_next)
		for (int i = 0; i < LINK_SLOTS; i++)
			if (l->al_conns[i] && !evrpc_conn_pending(l->al_conns[i]) && now - l->al_used[i] > LINK_IDLE_S) {
				evrpc_conn_close(l->al_conns[i], "idle");
				l->al_conns[i] = NULL;
			}
}

void agent_link_forget(struct poold *pd, const char *host)
{
	for (struct agent_link **p = &pd->pd_links; *p; p = &(*p)->al_next)
		if (strcmp((*p)->al_host, host) == 0) {
			struct agent_link *l = *p;
			*p = l->al_next;
			link_drop_conns(l, "the host left the pool");
			free(l);
			return;
		}
}

void agent_links_free(struct poold *pd)
{
	while (pd->pd_links) {
		struct agent_link *l = pd->pd_links;
		pd->pd_links = l->al_next;
		link_drop_conns(l, "poold is stopping");
		free(l);
	}
}

/* ----------------------------------------------------------- calls */

/* Send j's method on a kept connection to host; NULL, or the error that
 * kept it from being sent (the callbacks have not run). params are taken. */
static json_t *job_send(struct agent_job *j, const char *host, enum agent_method m, json_t *params)
{
	struct poold *pd = j->aj_pd;
	const struct aproto_method *am = aproto_method(m);
	struct agent_addr addr;
	json_t *e = aproto_check(am, params);
	if (e) { /* a bug in poold: nothing is sent */
		log_error("%s: poold built a bad call (%s)", am->am_name, xerr_code_of(e));
		json_decref(params);
		return e;
	}
	/* a host that is not live answers nothing: say so now, as XAPI does,
	 * rather than after the call's timeout */
	if (!agent_target(pd, host, &addr) || !pd->pd_host_seen || !json_object_get(pd->pd_host_seen, host)) {
		snprintf(j->aj_what, sizeof j->aj_what, "%s on host %s", am->am_name, host);
		json_decref(params);
		return xerr_new(XE_HOST_OFFLINE, host, NULL);
	}
	snprintf(j->aj_what, sizeof j->aj_what, "%s on %s:%d", am->am_name, addr.aa_address, addr.aa_port);
	log_debug("-> %s", j->aj_what);
	struct evrpc_conn *k = link_conn(pd, link_of(pd, host, &addr), am->am_later);
	if (!k && am->am_later) {
		/* more long calls at once than the long set holds */
		struct evrpc_target t = {addr.aa_address, addr.aa_port, pd->pd_agent_ctx, addr.aa_uuid};
		if (evrpc_call(pd->pd_base, &t, am->am_name, params, CALL_TIMEOUT_S, job_answer, j) < 0)
			return xerr_newf(XE_INTERNAL_ERROR, "cannot start %s", am->am_name);
		return NULL;
	}
	if (!k || evrpc_conn_call(k, am->am_name, params, CALL_TIMEOUT_S, job_answer, j) < 0) {
		if (!k)
			json_decref(params);
		return xerr_newf(XE_INTERNAL_ERROR, "cannot start %s", am->am_name);
	}
	return NULL;
}

static struct agent_job *job_new(struct poold *pd, struct api_call *c, agent_ok_fn ok, agent_fail_fn fail,
				 agent_done_fn done, void *ctx)
{
	struct agent_job *j = xcalloc(1, sizeof *j);
	*j = (struct agent_job){pd, c, ok, fail, done, ctx, ""};
	return j;
}

static void job_park(struct agent_job *j)
{
	if (j->aj_call) {
		j->aj_call->ac_parked = j;
		j->aj_call->ac_cancel = job_cancel;
	}
}

json_t *agent_call(struct api_call *c, const char *host, enum agent_method m, json_t *params, agent_ok_fn ok,
		   agent_fail_fn fail, void *ctx)
{
	return agent_call_pd(c->ac_pd, c, host, m, params, ok, fail, ctx);
}

json_t *agent_call_pd(struct poold *pd, struct api_call *c, const char *host, enum agent_method m, json_t *params,
		      agent_ok_fn ok, agent_fail_fn fail, void *ctx)
{
	struct agent_job *j = job_new(pd, c, ok, fail, NULL, ctx);
	json_t *e = job_send(j, host, m, params);
	if (e) {
		if (fail)
			fail(pd, ctx, &e); /* host may live in ctx */
		free(ctx);
		free(j);
		return e;
	}
	job_park(j);
	return API_PENDING;
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

json_t *agent_call_done(struct poold *pd, struct api_call *c, const char *host, enum agent_method m, json_t *params,
			agent_done_fn done, void *ctx)
{
	struct agent_job *j = job_new(pd, c, NULL, NULL, done, ctx);
	job_park(j);
	json_t *e = job_send(j, host, m, params);
	if (e) {
		struct late *l = xcalloc(1, sizeof *l);
		*l = (struct late){j, e};
		if (event_base_once(pd->pd_base, -1, EV_TIMEOUT, late_fail, l, NULL) < 0)
			abort(); /* the loop cannot take a timer: nothing else would work either */
	}
	return API_PENDING;
}

static json_t *told(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err, json_t **result)
{
	(void)c, (void)pd, (void)ctx, (void)answer, (void)err, (void)result;
	return NULL; /* a failure was logged by job_answer */
}

void agent_tell(struct poold *pd, const char *host, enum agent_method m, json_t *params)
{
	agent_call_done(pd, NULL, host, m, params, told, NULL);
}
