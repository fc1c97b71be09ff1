/*
 * session.c - which sessions are valid: the store the dispatcher checks
 * on every call (api_session.c logs in and out).
 *
 * Sessions are objects of class "session" in the database (so they survive
 * a poold restart) mirrored in pd_sessions (ref -> [last active, last
 * stored], in seconds) so that checking one costs a hash lookup, not a
 * query. Every use makes a session active again; last_active reaches the
 * database at most every min(60 s, session-timeout / 4). Sessions idle
 * longer than session-timeout are destroyed by session_gc().
 */
#include <stdio.h>
#include <time.h>
#include "log.h"
#include "poold.h"
#include "xerr.h"

#define SESSION_STORE_MAX_SECONDS 60

static void format_datetime(time_t t, char *out)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y%m%dT%H:%M:%SZ", &tm);
}

static json_t *session_times(time_t active, time_t stored)
{
	return json_pack("[I, I]", (json_int_t)active, (json_int_t)stored);
}

void session_remember(struct poold *pd, const char *ref, time_t now)
{
	json_object_set_new(pd->pd_sessions, ref, session_times(now, now));
}

static int session_load_one(void *ctx, const char *ref, const char *text, int len)
{
	struct poold *pd = ctx;
	json_t *rec = json_loadb(text, (size_t)len, 0, NULL);
	time_t t = model_time_parse(json_string_value(json_object_get(rec, "last_active")));
	json_object_set_new(pd->pd_sessions, ref, session_times(t, t));
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

static time_t session_active(json_t *v)
{
	return (time_t)json_integer_value(json_array_get(v, 0));
}

bool session_known(struct poold *pd, const char *ref)
{
	json_t *v = json_object_get(pd->pd_sessions, ref);
	long long timeout = conf_duration_ms(pd->pd_conf, "session-timeout") / 1000;
	return v && time(NULL) - session_active(v) <= timeout;
}

json_t *session_check(struct poold *pd, const char *ref)
{
	json_t *v = json_object_get(pd->pd_sessions, ref);
	time_t now = time(NULL);
	long long timeout = conf_duration_ms(pd->pd_conf, "session-timeout") / 1000;
	if (!v || now - session_active(v) > timeout)
		return xerr_new(XE_SESSION_INVALID, ref, NULL);
	json_integer_set(json_array_get(v, 0), (json_int_t)now);
	/* stored often enough that a restart loses at most a quarter of the timeout */
	long long every = timeout / 4 < SESSION_STORE_MAX_SECONDS ? timeout / 4 : SESSION_STORE_MAX_SECONDS;
	if (now - (time_t)json_integer_value(json_array_get(v, 1)) >= (every > 0 ? every : 1)) {
		char ts[32];
		format_datetime(now, ts);
		const char *a[2] = {ref, ts};
		json_t *e = db_txn(pd->pd_db, session_touch_txn, a);
		json_decref(e); /* a lost touch only shortens the session after a restart */
		json_integer_set(json_array_get(v, 1), (json_int_t)now);
	}
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
		if (now - session_active(v) > timeout)
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
