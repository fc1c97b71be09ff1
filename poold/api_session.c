/*
 * api_session.c - login and logout (which sessions are valid: session.c).
 *
 * A login's password is checked on the pool of pwcheck.c, after the
 * throttle of throttle.c: an attempt from an address (and for a user)
 * that failed lately is answered SESSION_AUTHENTICATION_FAILED once its
 * wait is over, without a check; a failure is answered when the wait it
 * causes is over, so a client that waits for its answer is never refused
 * for asking too soon.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <event2/event.h>
#include "httpsrv.h"
#include "log.h"
#include "poold.h"
#include "xerr.h"
#include "util.h"

#define LOGIN_PER_ADDRESS_QUEUED 4  /* attempts of one address waiting for a check */
#define LOGIN_THROTTLE_KEYS 10000   /* addresses and users remembered */

struct login_ctx {
	struct poold *pd;
	const char *user, *originator;
	char ref[64];
};

static json_t *login_txn(struct db *db, void *ctx)
{
	struct login_ctx *l = ctx;
	char now[32];
	model_now(now);
	json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:b, s:s}", "this_host", l->pd->pd_host_ref,
				"last_active", now, "validation_time", now, "auth_user_name", l->user,
				"is_local_superuser", 1, "originator", l->originator);
	json_t *e = db_obj_create(db, "session", rec, l->ref);
	json_decref(rec);
	return e;
}

static int64_t login_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A call parked until its failure is answered. */
struct login_fail {
	struct api_call *lf_call;
	json_t *lf_err;
	struct event *lf_timer;
};

static void login_fail_free(struct login_fail *lf)
{
	event_free(lf->lf_timer);
	free(lf);
}

static void login_fail_fire(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct login_fail *lf = arg;
	struct api_call *c = lf->lf_call;
	json_t *e = lf->lf_err;
	c->ac_cancel = NULL;
	login_fail_free(lf);
	api_call_finish(c, e);
}

static void login_fail_cancel(struct api_call *c)
{
	struct login_fail *lf = c->ac_parked;
	json_decref(lf->lf_err);
	login_fail_free(lf);
	api_call_free(c);
}

/* SESSION_AUTHENTICATION_FAILED after ms, from a timer: password guessing
 * gets slow, the server does not. */
static json_t *login_fail_after(struct api_call *c, const char *user, int64_t ms)
{
	json_t *err = xerr_new(XE_SESSION_AUTHENTICATION_FAILED, user, "Authentication failure", NULL);
	struct login_fail *lf = ms > 0 && c->ac_transport ? xcalloc(1, sizeof *lf) : NULL;
	if (!lf)
		return err;
	lf->lf_call = c;
	lf->lf_err = err;
	lf->lf_timer = evtimer_new(c->ac_pd->pd_base, login_fail_fire, lf);
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(lf->lf_timer, &tv);
	c->ac_parked = lf;
	c->ac_cancel = login_fail_cancel;
	return API_PENDING;
}

/* A password was right: the session. */
static json_t *login_session(struct api_call *c, const char *user)
{
	const char *originator = "";
	if (json_array_size(c->ac_args) >= 4 && json_is_string(json_array_get(c->ac_args, 3)))
		originator = json_string_value(json_array_get(c->ac_args, 3));
	struct login_ctx l = {c->ac_pd, user, originator, ""};
	json_t *e = db_txn(c->ac_pd->pd_db, login_txn, &l);
	if (e)
		return e;
	time_t now = time(NULL);
	session_remember(c->ac_pd, l.ref, now);
	c->ac_result = json_string(l.ref);
	return NULL;
}

/* One attempt, from its arrival to its answer. */
struct login {
	struct api_call *lg_call;
	struct pwcheck_job *lg_job;
	char lg_addr[80], lg_user[300]; /* throttle keys */
};

static int64_t login_wait(const struct login *lg)
{
	return throttle_wait_for(lg->lg_call->ac_pd->pd_throttle, lg->lg_addr, lg->lg_user, login_now_ms());
}

static bool login_may_start(void *arg)
{
	return login_wait(arg) == 0;
}

/* The check's outcome (on the loop): a session, or the refusal once the
 * wait this failure causes is over. */
static void login_checked(void *arg, enum pwcheck_result r)
{
	struct login *lg = arg;
	struct api_call *c = lg->lg_call;
	struct throttle *t = c->ac_pd->pd_throttle;
	const char *user = json_string_value(json_array_get(c->ac_args, 0));
	c->ac_cancel = NULL;
	json_t *e;
	if (r == PWCHECK_OK) {
		throttle_record(t, lg->lg_addr, true, login_now_ms());
		throttle_record(t, lg->lg_user, true, login_now_ms());
		e = login_session(c, user);
	} else {
		if (r == PWCHECK_WRONG) {
			log_warn("login failed for user '%s' from %s", user, c->ac_addr);
			throttle_record(t, lg->lg_addr, false, login_now_ms());
			throttle_record(t, lg->lg_user, false, login_now_ms());
		}
		e = login_fail_after(c, user, login_wait(lg));
	}
	free(lg);
	if (e != API_PENDING)
		api_call_finish(c, e);
}

static void login_cancel(struct api_call *c)
{
	struct login *lg = c->ac_parked;
	pwcheck_cancel(lg->lg_job);
	free(lg);
	api_call_free(c);
}

/* The throttle's key of an address: IPv6 by its /64, as connections are capped. */
static void login_addr_key(const char *addr, char *out, size_t outlen)
{
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
	struct sockaddr_in s4 = {.sin_family = AF_INET};
	char key[64] = "";
	if (inet_pton(AF_INET, addr, &s4.sin_addr) == 1)
		httpsrv_addr_key((struct sockaddr *)&s4, sizeof s4, key, sizeof key);
	else if (inet_pton(AF_INET6, addr, &s6.sin6_addr) == 1)
		httpsrv_addr_key((struct sockaddr *)&s6, sizeof s6, key, sizeof key);
	snprintf(out, outlen, "a:%s", *key ? key : addr);
}

/* The pool and the table, at the first login (the loop runs by then). */
static bool login_setup(struct poold *pd)
{
	if (pd->pd_pwcheck)
		return true;
	struct throttle_policy pol = {conf_duration_ms(pd->pd_conf, "login-failure-delay"),
				      conf_duration_ms(pd->pd_conf, "login-failure-delay-max")};
	if (pol.tp_max_ms < pol.tp_base_ms)
		pol.tp_max_ms = pol.tp_base_ms;
	pd->pd_throttle = throttle_new(&pol, LOGIN_THROTTLE_KEYS);
	pd->pd_pwcheck = pwcheck_new(pd->pd_base, (int)conf_int(pd->pd_conf, "login-check-threads"),
				     (int)conf_int(pd->pd_conf, "login-queue-length"), LOGIN_PER_ADDRESS_QUEUED);
	return pd->pd_throttle && pd->pd_pwcheck;
}

json_t *session_login(struct api_call *c)
{
	struct poold *pd = c->ac_pd;
	const char *user, *pw;
	json_t *e = api_arg_str(c, 0, "uname", &user);
	if (e || (e = api_arg_str(c, 1, "pwd", &pw)))
		return e;
	if (!login_setup(pd))
		return xerr_newf(XE_INTERNAL_ERROR, "cannot start the password checks: out of memory");
	struct login *lg = xcalloc(1, sizeof *lg);
	lg->lg_call = c;
	login_addr_key(c->ac_addr, lg->lg_addr, sizeof lg->lg_addr);
	snprintf(lg->lg_user, sizeof lg->lg_user, "u:%s", user);
	int64_t wait = login_wait(lg);
	if (wait > 0) { /* failed lately: no check now, the answer when the wait is over */
		free(lg);
		return login_fail_after(c, user, wait);
	}
	char *stored = db_user_hash(pd->pd_db, user);
	lg->lg_job = pwcheck_submit(pd->pd_pwcheck, lg->lg_addr, pw, stored, login_may_start, login_checked, lg);
	free(stored);
	if (!lg->lg_job) {
		log_warn("login for user '%s' from %s refused: too many logins waiting", user, c->ac_addr);
		free(lg);
		return login_fail_after(c, user, conf_duration_ms(pd->pd_conf, "login-failure-delay"));
	}
	c->ac_parked = lg;
	c->ac_cancel = login_cancel;
	return API_PENDING;
}

void session_fini(struct poold *pd)
{
	pwcheck_free(pd->pd_pwcheck);
	pd->pd_pwcheck = NULL;
	throttle_free(pd->pd_throttle);
	pd->pd_throttle = NULL;
}

static json_t *logout_txn(struct db *db, void *ctx)
{
	return db_obj_destroy(db, ctx);
}

json_t *session_logout(struct api_call *c)
{
	json_t *e = db_txn(c->ac_pd->pd_db, logout_txn, c->ac_session);
	json_object_del(c->ac_pd->pd_sessions, c->ac_session);
	json_decref(e); /* already gone is as good as logged out */
	c->ac_result = json_string("");
	return NULL;
}

json_t *session_get_this_host(struct api_call *c)
{
	const char *s;
	json_t *rec, *e = api_arg_str(c, 0, "session", &s);
	if (e || (e = db_obj_get_checked(c->ac_pd->pd_db, "session", s, &rec)))
		return e;
	c->ac_result = json_incref(json_object_get(rec, "this_host"));
	json_decref(rec);
	return NULL;
}

json_t *session_get_this_user(struct api_call *c)
{
	const char *s;
	json_t *rec, *e = api_arg_str(c, 0, "session", &s);
	if (e || (e = db_obj_get_checked(c->ac_pd->pd_db, "session", s, &rec)))
		return e;
	c->ac_result = json_incref(json_object_get(rec, "this_user"));
	json_decref(rec);
	return NULL;
}

