/*
 * message.c - XAPI's message class: the pool's alerts (a VM found running
 * on two hosts, a host lost, a restart that failed), kept as records so
 * clients see each one as an event and can list and dismiss them.
 *
 * Priorities are XAPI's: 1 (most urgent) to 5 (informational).
 */
#include <stdio.h>
#include <string.h>
#include "log.h"
#include "poold.h"
#include "util.h"
#include "xerr.h"

json_t *msg_add(struct db *db, const char *name, int priority, const char *cls, const char *obj_uuid,
		const char *body)
{
	char now[32], ref[64];
	model_now(now);
	log_warn("message %s (priority %d) on %s %s: %s", name, priority, cls, obj_uuid, body);
	return db_obj_create_new(db, "message",
				 json_pack("{s:s, s:I, s:s, s:s, s:s, s:s}", "name", name, "priority",
					   (json_int_t)priority, "cls", cls, "obj_uuid", obj_uuid, "timestamp", now,
					   "body", body),
				 ref);
}

struct create_ctx {
	const char *name, *cls, *obj_uuid, *body;
	json_int_t priority;
	char ref[64];
};

static json_t *create_txn(struct db *db, void *ctx)
{
	struct create_ctx *m = ctx;
	char now[32];
	model_now(now);
	return db_obj_create_new(db, "message",
				 json_pack("{s:s, s:I, s:s, s:s, s:s, s:s}", "name", m->name, "priority", m->priority,
					   "cls", m->cls, "obj_uuid", m->obj_uuid, "timestamp", now, "body", m->body),
				 m->ref);
}

/* message.create(session, name, priority, cls, obj_uuid, body) -> ref */
json_t *message_create(struct api_call *c)
{
	struct create_ctx m = {0};
	json_t *e = api_arg_str(c, 0, "name", &m.name);
	if (e || (e = api_arg_int(c, 1, "priority", &m.priority)) || (e = api_arg_str(c, 2, "cls", &m.cls)) ||
	    (e = api_arg_str(c, 3, "obj_uuid", &m.obj_uuid)) || (e = api_arg_str(c, 4, "body", &m.body)))
		return e;
	const struct model_field *f = model_field_find(model_class_find("message"), "cls");
	json_t *cls = json_string(m.cls);
	bool ok = model_value_ok(f, cls);
	json_decref(cls);
	if (!ok)
		return xerr_new(XE_INVALID_VALUE, "cls", m.cls, NULL);
	if (m.priority < 1 || m.priority > 5) {
		char v[32];
		snprintf(v, sizeof v, "%lld", (long long)m.priority);
		return xerr_new(XE_INVALID_VALUE, "priority", v, NULL);
	}
	if ((e = db_txn(c->ac_pd->pd_db, create_txn, &m)))
		return e;
	c->ac_result = json_string(m.ref);
	return NULL;
}

/* The messages (ref -> record) newer than since, about obj_uuid of class
 * cls when cls is given. */
static json_t *messages_since(struct db *db, const char *since, const char *cls, const char *obj_uuid)
{
	time_t after = model_time_parse(since);
	json_t *all = db_find(db, "message", NULL, NULL), *out = json_object();
	const char *k;
	json_t *m;
	json_object_foreach(all, k, m) {
		if (model_time_parse(jstr(m, "timestamp")) <= after)
			continue;
		if (cls && (strcmp(jstr(m, "cls"), cls) || strcmp(jstr(m, "obj_uuid"), obj_uuid)))
			continue;
		json_object_set(out, k, m);
	}
	json_decref(all);
	return out;
}

/* message.get_since(session, since) -> (ref -> record) */
json_t *message_get_since(struct api_call *c)
{
	const char *since;
	json_t *e = api_arg_str(c, 0, "since", &since);
	if (e)
		return e;
	c->ac_result = messages_since(c->ac_pd->pd_db, since, NULL, NULL);
	return NULL;
}

/* message.get(session, cls, obj_uuid, since) -> (ref -> record) */
json_t *message_get(struct api_call *c)
{
	const char *cls, *uuid, *since;
	json_t *e = api_arg_str(c, 0, "cls", &cls);
	if (e || (e = api_arg_str(c, 1, "obj_uuid", &uuid)) || (e = api_arg_str(c, 2, "since", &since)))
		return e;
	c->ac_result = messages_since(c->ac_pd->pd_db, since, cls, uuid);
	return NULL;
}

static json_t *destroy_many_txn(struct db *db, void *ctx)
{
	json_t *refs = ctx, *e = NULL;
	size_t i;
	json_t *r;
	json_array_foreach(refs, i, r) {
		char have[64];
		const char *ref = json_string_value(r);
		if (!ref || !db_obj_class(db, ref, have, sizeof have) || strcmp(have, "message"))
			return xerr_new(XE_HANDLE_INVALID, "message", ref ? ref : "", NULL);
	}
	json_array_foreach(refs, i, r) if (!e) e = db_obj_destroy(db, json_string_value(r));
	return e;
}

/* message.destroy_many(session, messages): all of them, or none. */
json_t *message_destroy_many(struct api_call *c)
{
	json_t *refs = json_array_get(c->ac_args, 0);
	if (!json_is_array(refs))
		return xerr_new(XE_FIELD_TYPE_ERROR, "messages", NULL);
	return db_txn(c->ac_pd->pd_db, destroy_many_txn, refs);
}
