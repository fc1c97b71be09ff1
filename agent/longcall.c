/*
 * longcall.c - a method whose work takes long (a suspend image, a disk
 * copy) runs on a thread of its own and answers from the loop when done,
 * so the agent keeps serving and heartbeating meanwhile. The thread counts
 * among the agent's flights: a stopping agent waits for it.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include "agent.h"
#include "evrpc.h"
#include "jsonrpc.h"
#include "log.h"
#include "util.h"
#include "xerr.h"

struct long_call {
	struct agent *lc_ag;
	struct evhttp_request *lc_req;
	json_t *lc_id;
	bool lc_v2;
	agent_work_fn lc_work;
	agent_work_done_fn lc_after;
	void *lc_arg;
	void (*lc_free)(void *);
	struct event *lc_done;
	json_t *lc_err, *lc_result;
};

static void long_answer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct long_call *l = arg;
	char *text;
	if (l->lc_after)
		l->lc_after(l->lc_ag, l->lc_arg, l->lc_err, &l->lc_result);
	if (l->lc_err) {
		text = jrpc_err(l->lc_id, l->lc_v2, l->lc_err);
	} else {
		char *rt = json_dumps(l->lc_result ? l->lc_result : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
		text = jrpc_ok(l->lc_id, l->lc_v2, rt);
		free(rt);
	}
	evrpc_reply(l->lc_req, text ? text : "");
	free(text);
	event_free(l->lc_done);
	json_decref(l->lc_err);
	json_decref(l->lc_result);
	json_decref(l->lc_id);
	if (l->lc_free)
		l->lc_free(l->lc_arg);
	free(l);
}

static void *long_thread(void *arg)
{
	struct long_call *l = arg;
	struct mig_flights *f = &l->lc_ag->ag_flights;
	l->lc_err = l->lc_work(l->lc_ag, l->lc_arg, &l->lc_result);
	event_active(l->lc_done, EV_TIMEOUT, 1);
	pthread_mutex_lock(&f->mf_mu);
	f->mf_n--;
	pthread_cond_broadcast(&f->mf_cv);
	pthread_mutex_unlock(&f->mf_mu);
	return NULL;
}

json_t *agent_long_call(struct agent *ag, struct evhttp_request *req, json_t *id, bool v2, agent_work_fn work,
			agent_work_done_fn after, void *arg, void (*arg_free)(void *))
{
	struct mig_flights *f = &ag->ag_flights;
	pthread_mutex_lock(&f->mf_mu);
	bool stopping = f->mf_stopping;
	if (!stopping)
		f->mf_n++;
	pthread_mutex_unlock(&f->mf_mu);
	if (stopping) {
		if (arg_free)
			arg_free(arg);
		return xerr_newf(XE_INTERNAL_ERROR, "the agent is stopping");
	}
	struct long_call *l = xcalloc(1, sizeof *l);
	*l = (struct long_call){ag, req, json_incref(id), v2, work, after, arg, arg_free, NULL, NULL, NULL};
	l->lc_done = event_new(ag->ag_base, -1, 0, long_answer, l);
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&t, &at, long_thread, l);
	pthread_attr_destroy(&at);
	if (rc == 0)
		return NULL;
	pthread_mutex_lock(&f->mf_mu);
	f->mf_n--;
	pthread_cond_broadcast(&f->mf_cv);
	pthread_mutex_unlock(&f->mf_mu);
	event_free(l->lc_done);
	json_decref(l->lc_id);
	if (arg_free)
		arg_free(arg);
	free(l);
	return xerr_newf(XE_INTERNAL_ERROR, "cannot start a thread for this call");
}
