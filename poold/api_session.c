/*
 * api_session.c - login, logout and session validity.
 *
 * Sessions are objects of class "session" in the database (so they survive
 * a poold restart) mirrored in pd_sessions (ref -> last active second) so
 * that checking one costs a hash lookup, not a query. last_active is written
 * back at most once a minute; sessions idle longer than session-timeout are
 * destroyed by session_gc().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include "log.h"
#include "poold.h"
#include "pwhash.h"
#include "xerr.h"

#define SESSION_TOUCH_SECONDS 60

static time_t parse_datetime(const char *s)
{
	struct tm tm = {0};
	if (!s || sscanf(s, "%4d%2d%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
			 &tm.tm_min, &tm.tm_sec) != 6)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return timegm(&tm);
}

static void format_datetime(time_t t, char *out)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y%m%dT%H:%M:%SZ", &tm);
}

static int session_load_one(void *ctx, const char *ref, const char *text, int len)
{
	struct poold *pd = ctx;
	json_t *rec = json_loadb(text, (size_t)len, 0, NULL);
	time_t t = parse_datetime(json_string_value(json_object_get(rec, "last_active")));
	json_object_set_new(pd->pd_sessions, ref, json_integer((json_int_t)t));
	json_decref(rec);
	return 0;
}

void session_load(struct poold *pd)
{
	if (!pd->pd_sessions)
		pd->pd_sessions = json_object();
	db_foreach_text(pd->pd_db, "session", session_load_one, pd);
}

static json_t *session_touch_txn(struct db *db, void *ctx)
{
	const char **a = ctx;
	return db_obj_set(db, a[0], "last_active", json_string(a[1]));
}

json_t *session_check(struct poold *pd, const char *ref)
{
	json_t *v = json_object_get(pd->pd_sessions, ref);
	time_t now = time(NULL);
	long long timeout = conf_duration_ms(pd->pd_conf, "session-timeout") / 1000;
	if (!v || now - (time_t)json_integer_value(v) > timeout)
		return xerr_new(XE_SESSION_INVALID, ref, NULL);
	if (now - (time_t)json_integer_value(v) >= SESSION_TOUCH_SECONDS) {
		char ts[32];
		format_datetime(now, ts);
		const char *a[2] = {ref, ts};
		json_t *e = db_txn(pd->pd_db, session_touch_txn, a);
		json_decref(e); /* a lost touch only shortens the session */
		json_integer_set(v, (json_int_t)now);
	}
	return NULL;
}

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

/* A hash of nothing, made once, to verify against for unknown users. */
static const char *login_dummy_hash(void)
{
	static char *dummy;
	if (!dummy)
		dummy = pwhash_make("", PWHASH_DEFAULT_ITERATIONS);
	return dummy ? dummy : "";
}

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

/* A failed login is answered after login-failure-delay, without holding
 * up anyone else: password guessing gets slow, the server does not. */
static json_t *login_fail_later(struct api_call *c, json_t *err)
{
	long long ms = conf_duration_ms(c->ac_pd->pd_conf, "login-failure-delay");
	struct login_fail *lf = ms > 0 && c->ac_transport ? calloc(1, sizeof *lf) : NULL;
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

/* After the password check: a session, or the (delayed) refusal. */
static json_t *login_finish(struct api_call *c, bool ok)
{
	const char *user = json_string_value(json_array_get(c->ac_args, 0));
	const char *originator = "";
	if (json_array_size(c->ac_args) >= 4 && json_is_string(json_array_get(c->ac_args, 3)))
		originator = json_string_value(json_array_get(c->ac_args, 3));
	if (!ok) {
		log_warn("login failed for user '%s'", user);
		return login_fail_later(c, xerr_new(XE_SESSION_AUTHENTICATION_FAILED, user,
						    "Authentication failure", NULL));
	}
	struct login_ctx l = {c->ac_pd, user, originator, ""};
	json_t *e = db_txn(c->ac_pd->pd_db, login_txn, &l);
	if (e)
		return e;
	json_object_set_new(c->ac_pd->pd_sessions, l.ref, json_integer((json_int_t)time(NULL)));
	c->ac_result = json_string(l.ref);
	return NULL;
}

/* The password check costs ~0.1 s of CPU (PBKDF2): it runs on a thread of
 * its own so the loop keeps answering everyone else meanwhile. */
struct login_job {
	struct api_call *lj_call; /* NULL once the client has gone */
	char *lj_pw, *lj_stored;
	bool lj_ok;
	struct event *lj_done;
	pthread_t lj_thread;
};

static void login_job_free(struct login_job *j)
{
	pthread_join(j->lj_thread, NULL);
	event_free(j->lj_done);
	OPENSSL_cleanse(j->lj_pw, strlen(j->lj_pw));
	free(j->lj_pw);
	free(j->lj_stored);
	free(j);
}

static void *login_job_run(void *arg)
{
	struct login_job *j = arg;
	/* the same work whether or not the user exists: no user enumeration by timing */
	j->lj_ok = pwhash_verify(j->lj_pw, j->lj_stored ? j->lj_stored : login_dummy_hash()) && j->lj_stored;
	event_active(j->lj_done, EV_TIMEOUT, 1);
	return NULL;
}

static void login_job_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct login_job *j = arg;
	struct api_call *c = j->lj_call;
	bool ok = j->lj_ok;
	login_job_free(j);
	if (!c)
		return;
	c->ac_cancel = NULL;
	json_t *e = login_finish(c, ok);
	if (e != API_PENDING)
		api_call_finish(c, e);
}

static void login_job_cancel(struct api_call *c)
{
	struct login_job *j = c->ac_parked;
	j->lj_call = NULL; /* the thread finishes; login_job_done frees the job */
	api_call_free(c);
}

json_t *session_login(struct api_call *c)
{
	const char *user, *pw;
	json_t *e = api_arg_str(c, 0, "uname", &user);
	if (e || (e = api_arg_str(c, 1, "pwd", &pw)))
		return e;
	login_dummy_hash(); /* made once, on the loop thread */
	struct login_job *j = calloc(1, sizeof *j);
	if (!j)
		return xerr_newf(XE_INTERNAL_ERROR, "out of memory");
	j->lj_call = c;
	j->lj_pw = strdup(pw);
	j->lj_stored = db_user_hash(c->ac_pd->pd_db, user);
	j->lj_done = event_new(c->ac_pd->pd_base, -1, 0, login_job_done, j);
	if (!j->lj_pw || !j->lj_done || pthread_create(&j->lj_thread, NULL, login_job_run, j) != 0) {
		/* no thread to be had: check here, the loop pays the cost */
		bool ok = j->lj_pw && pwhash_verify(pw, j->lj_stored ? j->lj_stored : login_dummy_hash()) &&
			  j->lj_stored;
		if (j->lj_done)
			event_free(j->lj_done);
		free(j->lj_pw);
		free(j->lj_stored);
		free(j);
		return login_finish(c, ok);
	}
	c->ac_parked = j;
	c->ac_cancel = login_job_cancel;
	return API_PENDING;
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

static json_t *gc_txn(struct db *db, void *ctx)
{
	json_t *refs = ctx;
	size_t i;
	json_t *r;
	json_array_foreach(refs, i, r) {
		json_t *e = db_obj_destroy(db, json_string_value(r));
		json_decref(e);
	}
	return NULL;
}

void session_gc(struct poold *pd)
{
	time_t now = time(NULL);
	long long timeout = conf_duration_ms(pd->pd_conf, "session-timeout") / 1000;
	json_t *dead = json_array();
	const char *ref;
	json_t *v;
	json_object_foreach(pd->pd_sessions, ref, v)
		if (now - (time_t)json_integer_value(v) > timeout)
			json_array_append_new(dead, json_string(ref));
	if (json_array_size(dead)) {
		json_t *e = db_txn(pd->pd_db, gc_txn, dead);
		json_decref(e);
		size_t i;
		json_array_foreach(dead, i, v) json_object_del(pd->pd_sessions, json_string_value(v));
		log_info("expired %zu idle sessions", json_array_size(dead));
	}
	json_decref(dead);
}
