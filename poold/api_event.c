/*
 * api_event.c - event.from long-polls and event.inject.
 *
 * The event log (db.c) numbers every object change. A token is the number
 * of the newest event a client has seen. event.from answers at once when
 * the log holds newer events for the classes asked for; otherwise the call
 * waits (no thread, no blocking: the HTTP request is parked) until a commit
 * brings a matching event or the timeout ends it. Several changes to one
 * object since the token are coalesced into one event, as XAPI does.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <event2/event.h>
#include "log.h"
#include "poold.h"
#include "xerr.h"
#include "util.h"

struct evt_waiter {
	struct api_call *w_call;
	json_t *w_classes;  /* {"vm": true} */
	int64_t w_token;
	struct event *w_timer;
	struct evt_waiter *w_next;
};

char *evt_token(int64_t id)
{
	char *t = NULL;
	/* XAPI's form: database generation, message generation */
	if (asprintf(&t, "%020lld,%020d", (long long)id, 0) < 0)
		return NULL;
	return t;
}

/* ------------------------------------------------------------- building */

struct evt_entry {
	int64_t id;
	double ts;
	char cls[32], op[8], ref[64];
	char *snapshot;
};

struct evt_collect {
	struct evt_entry *e;
	size_t n, cap;
	json_t *index; /* ref -> entry index */
};

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* Sessions are bearer credentials: no client sees another's (XAPI lists
 * none either), so they are never events. */
static bool private_class(const char *cls)
{
	return strcasecmp(cls, "session") == 0;
}

static int collect_one(void *ctx, int64_t id, double ts, const char *cls, const char *op,
		       const char *ref, const char *snapshot)
{
	struct evt_collect *col = ctx;
	if (private_class(cls))
		return 0;
	json_t *at = json_object_get(col->index, ref);
	struct evt_entry *e;
	if (at) {
		e = &col->e[json_integer_value(at)];
		free(e->snapshot);
		/* created since the token: the client has never seen it, so it
		 * gets an add, or nothing at all when it is gone again */
		if (strcmp(e->op, "add") == 0 || strcmp(e->op, "none") == 0)
			op = strcmp(op, "del") == 0 ? "none" : "add";
	} else {
		if (col->n == col->cap) {
			size_t cap = col->cap ? col->cap * 2 : 64;
			struct evt_entry *ne = xrealloc(col->e, cap * sizeof *ne);
			col->e = ne;
			col->cap = cap;
		}
		e = &col->e[col->n];
		json_object_set_new(col->index, ref, json_integer((json_int_t)col->n));
		col->n++;
	}
	e->id = id;
	e->ts = ts;
	snprintf(e->cls, sizeof e->cls, "%s", cls);
	lower(e->cls);
	snprintf(e->op, sizeof e->op, "%s", op);
	snprintf(e->ref, sizeof e->ref, "%s", ref);
	e->snapshot = snapshot ? xstrdup(snapshot) : NULL;
	return 0;
}

static void collect_free(struct evt_collect *col)
{
	for (size_t i = 0; i < col->n; i++)
		free(col->e[i].snapshot);
	free(col->e);
	json_decref(col->index);
}

struct sbuf {
	char *b;
	size_t len, cap;
};

static void sb_put(struct sbuf *s, const char *p, size_t n)
{
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 1024;
		while (cap < s->len + n + 1)
			cap *= 2;
		char *nb = xrealloc(s->b, cap);
		s->b = nb;
		s->cap = cap;
	}
	memcpy(s->b + s->len, p, n);
	s->len += n;
	s->b[s->len] = '\0';
}

static void sb_puts(struct sbuf *s, const char *p)
{
	sb_put(s, p, strlen(p));
}

static void sb_printf(struct sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *s, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n > 0)
		sb_put(s, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static void put_event(struct sbuf *s, int first, int64_t id, double ts, const char *cls,
		      const char *op, const char *ref, const char *snapshot)
{
	sb_printf(s, "%s{\"id\":\"%lld\",\"timestamp\":\"%.1f\",\"class\":\"%s\",\"operation\":\"%s\","
		  "\"ref\":\"%s\"", first ? "" : ",", (long long)id, ts, cls, op, ref);
	if (snapshot && strcmp(op, "del")) {
		sb_puts(s, ",\"snapshot\":");
		sb_puts(s, snapshot);
	}
	sb_puts(s, "}");
}

static bool wanted(const json_t *classes, const char *cls)
{
	if (private_class(cls))
		return false;
	if (json_object_get(classes, "*"))
		return true;
	char low[64];
	snprintf(low, sizeof low, "%s", cls);
	lower(low);
	return json_object_get(classes, low) != NULL;
}

/* Every class, whatever the subscription, as XAPI does: clients compare
 * the task count with their cache. */
static void put_counts(struct poold *pd, struct sbuf *s, const json_t *classes)
{
	(void)classes;
	sb_puts(s, "\"valid_ref_counts\":{");
	int n = 0;
	for (size_t i = 0; i < model_nclasses; i++) {
		char low[64];
		if (private_class(model_classes[i].mc_name))
			continue;
		snprintf(low, sizeof low, "%s", model_classes[i].mc_name);
		lower(low);
		sb_printf(s, "%s\"%s\":%lld", n++ ? "," : "", low,
			  (long long)db_count(pd->pd_db, model_classes[i].mc_name));
	}
	sb_puts(s, "}");
}

struct full_ctx {
	struct sbuf *s;
	const char *cls;
	int *n;
	int64_t id;
};

static int put_full(void *ctx, const char *ref, const char *text, int len)
{
	struct full_ctx *f = ctx;
	(void)len;
	put_event(f->s, (*f->n)++ == 0, f->id, 0.0, f->cls, "add", ref, text);
	return 0;
}

/* Everything of the classes asked for, as "add" events (token "" and a
 * token older than the trimmed log). */
static char *evt_full(struct poold *pd, const json_t *classes, int64_t last)
{
	struct sbuf s = {0};
	int n = 0;
	sb_puts(&s, "{\"events\":[");
	for (size_t i = 0; i < model_nclasses; i++) {
		if (!wanted(classes, model_classes[i].mc_name))
			continue;
		char low[64];
		snprintf(low, sizeof low, "%s", model_classes[i].mc_name);
		lower(low);
		struct full_ctx f = {&s, low, &n, last};
		db_foreach_text(pd->pd_db, model_classes[i].mc_name, put_full, &f);
	}
	sb_puts(&s, "],");
	put_counts(pd, &s, classes);
	char *tok = evt_token(last);
	sb_printf(&s, ",\"token\":\"%s\"}", tok ? tok : "");
	free(tok);
	return s.b;
}

/* Events after token for the classes; NULL when there are none. */
static char *evt_since(struct poold *pd, const json_t *classes, int64_t token)
{
	int64_t last = db_last_event(pd->pd_db);
	if (token < db_first_event(pd->pd_db) - 1)
		return evt_full(pd, classes, last); /* the log was trimmed past the token */
	struct evt_collect col = {NULL, 0, 0, json_object()};
	db_events_since(pd->pd_db, token, classes, collect_one, &col);
	if (col.n == 0) {
		collect_free(&col);
		return NULL;
	}
	struct sbuf s = {0};
	sb_puts(&s, "{\"events\":[");
	int n = 0;
	for (size_t i = 0; i < col.n; i++) {
		struct evt_entry *e = &col.e[i];
		if (strcmp(e->op, "none"))
			put_event(&s, n++ == 0, e->id, e->ts, e->cls, e->op, e->ref, e->snapshot);
	}
	collect_free(&col);
	if (n == 0) { /* only objects born and gone since the token */
		free(s.b);
		return NULL;
	}
	sb_puts(&s, "],");
	put_counts(pd, &s, classes);
	char *tok = evt_token(last);
	sb_printf(&s, ",\"token\":\"%s\"}", tok ? tok : "");
	free(tok);
	return s.b;
}

static char *evt_empty(struct poold *pd, const json_t *classes, int64_t token)
{
	struct sbuf s = {0};
	sb_puts(&s, "{\"events\":[],");
	put_counts(pd, &s, classes);
	char *tok = evt_token(token);
	sb_printf(&s, ",\"token\":\"%s\"}", tok ? tok : "");
	free(tok);
	return s.b;
}

/* -------------------------------------------------------------- waiting */

static void waiter_unlink(struct poold *pd, struct evt_waiter *w)
{
	for (struct evt_waiter **p = &pd->pd_waiters; *p; p = &(*p)->w_next)
		if (*p == w) {
			*p = w->w_next;
			break;
		}
}

static void waiter_free(struct evt_waiter *w)
{
	event_free(w->w_timer);
	json_decref(w->w_classes);
	free(w);
}

static void waiter_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct evt_waiter *w = arg;
	struct poold *pd = w->w_call->ac_pd;
	waiter_unlink(pd, w);
	struct api_call *c = w->w_call;
	api_raw_take(c, evt_empty(pd, w->w_classes, w->w_token));
	c->ac_cancel = NULL;
	waiter_free(w);
	api_call_finish(c, NULL);
}

static void waiter_cancel(struct api_call *c)
{
	struct evt_waiter *w = c->ac_parked;
	waiter_unlink(c->ac_pd, w);
	waiter_free(w);
	api_call_free(c);
}

void evt_fini(struct poold *pd)
{
	while (pd->pd_waiters) {
		struct evt_waiter *w = pd->pd_waiters;
		pd->pd_waiters = w->w_next;
		api_call_free(w->w_call);
		waiter_free(w);
	}
}

static int note_class(void *ctx, int64_t id, double ts, const char *cls, const char *op,
		      const char *ref, const char *snapshot)
{
	(void)id, (void)ts, (void)op, (void)ref, (void)snapshot;
	char low[64];
	snprintf(low, sizeof low, "%s", cls);
	lower(low);
	json_object_set_new(ctx, low, json_true());
	return 0;
}

static bool overlaps(const json_t *changed, const json_t *classes)
{
	if (json_object_get(classes, "*"))
		return json_object_size(changed) > 0;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)changed, k, v) if (json_object_get(classes, k)) return true;
	return false;
}

void evt_commit_hook(void *ctx, int64_t last_event)
{
	struct poold *pd = ctx;
	if (!pd->pd_waiters) {
		pd->pd_notified = last_event;
		return;
	}
	json_t *all = json_pack("{s:b}", "*", 1);
	json_t *changed = json_object();
	db_events_since(pd->pd_db, pd->pd_notified, all, note_class, changed);
	pd->pd_notified = last_event;
	struct evt_waiter **p = &pd->pd_waiters;
	while (*p) {
		struct evt_waiter *w = *p;
		char *text = overlaps(changed, w->w_classes) ? evt_since(pd, w->w_classes, w->w_token) : NULL;
		if (!text) {
			p = &w->w_next;
			continue;
		}
		*p = w->w_next;
		struct api_call *c = w->w_call;
		api_raw_take(c, text);
		c->ac_cancel = NULL;
		waiter_free(w);
		api_call_finish(c, NULL);
	}
	json_decref(changed);
	json_decref(all);
}

/* --------------------------------------------------------------- methods */

static json_t *parse_classes(struct api_call *c, json_t **out)
{
	json_t *arr = json_array_get(c->ac_args, 0);
	if (!json_is_array(arr))
		return xerr_new(XE_FIELD_TYPE_ERROR, "classes", NULL);
	*out = json_object();
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		if (!json_is_string(v)) {
			json_decref(*out);
			return xerr_new(XE_FIELD_TYPE_ERROR, "classes", NULL);
		}
		char low[64];
		snprintf(low, sizeof low, "%s", json_string_value(v));
		lower(low);
		json_object_set_new(*out, low, json_true());
	}
	return NULL;
}

static bool parse_token(const char *s, int64_t *out)
{
	if (!*s) {
		*out = -1;
		return true;
	}
	char *end;
	long long v = strtoll(s, &end, 10);
	/* XAPI's own tokens look like "123,456": accept the first number */
	if (end == s || (*end && *end != ',') || v < 0)
		return false;
	*out = v;
	return true;
}

json_t *evt_from(struct api_call *c)
{
	struct poold *pd = c->ac_pd;
	json_t *classes = NULL;
	const char *tok;
	json_t *e = parse_classes(c, &classes);
	if (e)
		return e;
	json_t *tv = json_array_get(c->ac_args, 2);
	if ((e = api_arg_str(c, 1, "token", &tok)) || (!json_is_number(tv) && (e = xerr_new(XE_FIELD_TYPE_ERROR, "timeout", NULL)))) {
		json_decref(classes);
		return e;
	}
	int64_t token;
	if (!parse_token(tok, &token)) {
		json_decref(classes);
		return xerr_new(XE_EVENT_FROM_TOKEN_PARSE_FAILURE, tok, NULL);
	}
	double timeout = json_number_value(tv);
	if (token < 0) {
		api_raw_take(c, evt_full(pd, classes, db_last_event(pd->pd_db)));
		json_decref(classes);
		return NULL;
	}
	char *text = evt_since(pd, classes, token);
	if (text || timeout <= 0 || !c->ac_transport) {
		if (!text)
			text = evt_empty(pd, classes, db_last_event(pd->pd_db) > token ? db_last_event(pd->pd_db) : token);
		api_raw_take(c, text);
		json_decref(classes);
		return NULL;
	}
	struct evt_waiter *w = xcalloc(1, sizeof *w);
	w->w_call = c;
	w->w_classes = classes;
	/* later events of other classes move the token on when the wait ends */
	w->w_token = token;
	w->w_timer = evtimer_new(pd->pd_base, waiter_timeout, w);
	long long cap_ms = conf_duration_ms(pd->pd_conf, "event-from-max-timeout");
	double ms = timeout * 1000.0 > (double)cap_ms ? (double)cap_ms : timeout * 1000.0;
	struct timeval t = {(time_t)(ms / 1000), (suseconds_t)((long long)ms % 1000) * 1000};
	evtimer_add(w->w_timer, &t);
	w->w_next = pd->pd_waiters;
	pd->pd_waiters = w;
	c->ac_parked = w;
	c->ac_cancel = waiter_cancel;
	return API_PENDING;
}

struct inject_ctx {
	const char *ref;
	int64_t id;
};

static json_t *inject_txn(struct db *db, void *ctx)
{
	struct inject_ctx *i = ctx;
	return db_obj_touch(db, i->ref, &i->id);
}

json_t *evt_inject(struct api_call *c)
{
	const char *cls, *ref;
	json_t *e = api_arg_str(c, 0, "class", &cls);
	if (e || (e = api_arg_str(c, 1, "ref", &ref)))
		return e;
	const struct model_class *mc = model_class_find_ci(cls);
	char have[64];
	if (!mc || !db_obj_class(c->ac_pd->pd_db, ref, have, sizeof have) || strcmp(have, mc->mc_name))
		return xerr_new(XE_HANDLE_INVALID, mc ? mc->mc_name : cls, ref, NULL);
	struct inject_ctx i = {ref, 0};
	if ((e = db_txn(c->ac_pd->pd_db, inject_txn, &i)))
		return e;
	/* the token just before the injected event: event.from returns it */
	char *tok = evt_token(i.id - 1);
	c->ac_result = json_string(tok ? tok : "");
	free(tok);
	return NULL;
}
