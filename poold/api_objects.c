/*
 * api_objects.c - the methods every class has, generated from the model:
 * get_all, get_all_records, get_record, get_by_uuid, get_by_name_label,
 * get_<field>, set_<field> (writable fields), add_to_/remove_from_<map>,
 * add_/remove_<set> (writable maps and sets), and the generic create /
 * destroy where the class has no handler of its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ops.h"
#include "poold.h"
#include "xerr.h"

int api_add_generated(struct poold *pd, char *name, int nparams, unsigned flags, api_handler fn,
		      const struct model_class *cls, const struct model_field *fld);

#define CLS(c) ((c)->ac_method->am_class)
#define FLD(c) ((c)->ac_method->am_field)

static json_t *gen_get_all(struct api_call *c)
{
	c->ac_result = db_refs_all(c->ac_pd->pd_db, CLS(c)->mc_name);
	return NULL;
}

#define RECORDS_PER_PIECE 1024

struct record_out {
	struct evbuffer *ro_out;
	bool ro_any; /* a record was written before: the next needs a comma */
};

static int add_record(void *ctx, const char *ref, const char *text, int len)
{
	struct record_out *r = ctx;
	/* refs are generated: no characters to escape */
	evbuffer_add_printf(r->ro_out, "%s\"%s\":", r->ro_any ? "," : "", ref);
	evbuffer_add(r->ro_out, text, (size_t)len);
	r->ro_any = true;
	return 0;
}

/* The next RECORDS_PER_PIECE records: thousands of VMs go out in pieces
 * as the client reads them, never as one answer held in memory. */
static int stream_records(struct api_call *c, struct evbuffer *out)
{
	struct record_out r = {out, c->ac_stream_pos != 0};
	if (c->ac_stream_pos == 0)
		evbuffer_add(out, "{", 1);
	int n = db_page_text(c->ac_pd->pd_db, CLS(c)->mc_name, &c->ac_stream_pos, RECORDS_PER_PIECE,
			     add_record, &r);
	if (n < 0)
		return -1;
	if (n == RECORDS_PER_PIECE)
		return 1;
	evbuffer_add(out, "}", 1);
	return 0;
}

static json_t *gen_get_all_records(struct api_call *c)
{
	c->ac_stream = stream_records;
	c->ac_stream_pos = 0;
	return NULL;
}

/* A session's own record only: another session's ref is as good as unknown. */
static json_t *own_only(struct api_call *c, const char *ref)
{
	if (strcmp(CLS(c)->mc_name, "session") || strcmp(ref, c->ac_session) == 0)
		return NULL;
	return xerr_new(XE_HANDLE_INVALID, "session", ref, NULL);
}

static json_t *gen_get_record(struct api_call *c)
{
	const char *ref;
	json_t *e = api_arg_str(c, 0, CLS(c)->mc_name, &ref);
	if (e || (e = own_only(c, ref)))
		return e;
	char *text = db_obj_text(c->ac_pd->pd_db, CLS(c)->mc_name, ref);
	if (!text)
		return xerr_new(XE_HANDLE_INVALID, CLS(c)->mc_name, ref, NULL);
	api_raw_take(c, text);
	return NULL;
}

static json_t *gen_get_by_uuid(struct api_call *c)
{
	const char *uuid;
	json_t *e = api_arg_str(c, 0, "uuid", &uuid);
	if (e)
		return e;
	char ref[64];
	if (!db_ref_by_uuid(c->ac_pd->pd_db, CLS(c)->mc_name, uuid, ref))
		return xerr_new(XE_UUID_INVALID, CLS(c)->mc_name, uuid, NULL);
	c->ac_result = json_string(ref);
	return NULL;
}

static json_t *gen_get_by_name_label(struct api_call *c)
{
	const char *name;
	json_t *e = api_arg_str(c, 0, "label", &name);
	if (e)
		return e;
	c->ac_result = db_refs_by_name(c->ac_pd->pd_db, CLS(c)->mc_name, name);
	return NULL;
}

static json_t *gen_get_field(struct api_call *c)
{
	const char *ref;
	json_t *rec, *e = api_arg_str(c, 0, CLS(c)->mc_name, &ref);
	if (e || (e = own_only(c, ref)) || (e = db_obj_get_checked(c->ac_pd->pd_db, CLS(c)->mc_name, ref, &rec)))
		return e;
	c->ac_result = json_incref(json_object_get(rec, FLD(c)->fld_name));
	json_decref(rec);
	return NULL;
}

/* Check a value for a field: FIELD_TYPE_ERROR for the wrong JSON type,
 * INVALID_VALUE for a well-typed value outside the field's domain. */
static json_t *value_check(const struct model_field *f, const json_t *v)
{
	if (model_value_ok(f, v))
		return NULL;
	if ((f->fld_type == FT_ENUM || f->fld_type == FT_REF || f->fld_type == FT_DATETIME) && json_is_string(v))
		return xerr_new(XE_INVALID_VALUE, f->fld_name, json_string_value(v), NULL);
	return xerr_new(XE_FIELD_TYPE_ERROR, f->fld_name, NULL);
}

struct set_ctx {
	struct api_call *c;
	const char *ref;
	json_t *value;
	const char *key;
	int op; /* 0 set, 1 add_to map, 2 remove_from map, 3 add to set, 4 remove from set */
};

static json_t *gen_set_txn(struct db *db, void *ctx)
{
	struct set_ctx *s = ctx;
	const struct model_class *cls = CLS(s->c);
	const struct model_field *f = FLD(s->c);
	json_t *rec, *e = db_obj_get_checked(db, cls->mc_name, s->ref, &rec);
	if (e)
		return e;
	json_t *cur = json_deep_copy(json_object_get(rec, f->fld_name));
	json_decref(rec);
	/* the setters XAPI runs as a VM operation: what a rolling upgrade blocks */
	const char *vm_op = strcmp(cls->mc_name, "VM") == 0 ? ops_vm_field_op(f->fld_name) : NULL;
	if (vm_op && snap_rolling(db) && (e = ops_upgrade_check("VM", vm_op))) {
		json_decref(cur);
		return e;
	}
	if (s->op == 0 && strcmp(cls->mc_name, "VM") == 0 &&
	    (strncmp(f->fld_name, "memory_", 7) == 0 || strncmp(f->fld_name, "VCPUs_", 6) == 0)) {
		/* the limits hold after the change, or it does not happen */
		json_t *before = db_obj_get(db, s->ref), *after = json_deep_copy(before);
		json_object_set(after, f->fld_name, s->value);
		json_t *bad = vm_check_limits(s->ref, before, after);
		json_decref(after);
		json_decref(before);
		if (bad) {
			json_decref(cur);
			return bad;
		}
	}
	if (s->op == 0) {
		json_decref(cur);
		if (f->fld_type == FT_REF && strcmp(json_string_value(s->value), MODEL_NULL_REF)) {
			char have[64];
			if (!db_obj_class(db, json_string_value(s->value), have, sizeof have) ||
			    strcmp(have, f->fld_target))
				return xerr_new(XE_HANDLE_INVALID, f->fld_target, json_string_value(s->value), NULL);
		}
		return db_obj_set(db, s->ref, f->fld_name, json_incref(s->value));
	}
	if (s->op == 1 && json_object_get(cur, s->key)) {
		json_decref(cur);
		return xerr_new(XE_MAP_DUPLICATE_KEY, cls->mc_name, f->fld_name, s->ref, s->key, NULL);
	}
	if (s->op == 1)
		json_object_set(cur, s->key, s->value);
	else if (s->op == 2)
		json_object_del(cur, s->key);
	else {
		size_t i;
		json_t *v;
		int found = -1;
		json_array_foreach(cur, i, v) if (json_equal(v, s->value)) found = (int)i;
		if (s->op == 3 && found < 0)
			json_array_append(cur, s->value);
		if (s->op == 4 && found >= 0)
			json_array_remove(cur, (size_t)found);
	}
	return db_obj_set(db, s->ref, f->fld_name, cur);
}

static json_t *gen_set_op(struct api_call *c, int op)
{
	struct set_ctx s = {c, NULL, NULL, NULL, op};
	const struct model_field *f = FLD(c);
	json_t *e = api_arg_str(c, 0, CLS(c)->mc_name, &s.ref);
	if (e || (e = own_only(c, s.ref)))
		return e;
	if (op == 0) {
		s.value = json_array_get(c->ac_args, 1);
		if ((e = value_check(f, s.value)))
			return e;
	} else if (op == 1 || op == 2) {
		if ((e = api_arg_str(c, 1, "key", &s.key)))
			return e;
		s.value = json_array_get(c->ac_args, 2);
		if (op == 1 && !(json_is_string(s.value) || f->fld_type == FT_MAP_ANY))
			return xerr_new(XE_FIELD_TYPE_ERROR, "value", NULL);
	} else {
		s.value = json_array_get(c->ac_args, 1);
		if (!json_is_string(s.value))
			return xerr_new(XE_FIELD_TYPE_ERROR, "value", NULL);
	}
	return db_txn(c->ac_pd->pd_db, gen_set_txn, &s);
}

static json_t *gen_set_field(struct api_call *c) { return gen_set_op(c, 0); }
static json_t *gen_add_to_map(struct api_call *c) { return gen_set_op(c, 1); }
static json_t *gen_remove_from_map(struct api_call *c) { return gen_set_op(c, 2); }
static json_t *gen_add_to_set(struct api_call *c) { return gen_set_op(c, 3); }
static json_t *gen_remove_from_set(struct api_call *c) { return gen_set_op(c, 4); }

json_t *api_record_check(const struct model_class *cls, const json_t *rec)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)rec, k, v) {
		const struct model_field *f = model_field_find(cls, k);
		if (!f || f->fld_qual == QUAL_RO_RUN)
			continue; /* fields a constructor does not take are ignored, as XAPI does */
		json_t *e = value_check(f, v);
		if (e)
			return e;
	}
	return NULL;
}

struct create_ctx {
	const struct model_class *cls;
	json_t *rec;
	char ref[64];
};

static json_t *gen_create_txn(struct db *db, void *ctx)
{
	struct create_ctx *cc = ctx;
	/* forward references must name live objects of the right class */
	for (size_t i = 0; i < cc->cls->mc_nfields; i++) {
		const struct model_field *f = &cc->cls->mc_fields[i];
		const char *r = json_string_value(json_object_get(cc->rec, f->fld_name));
		char have[64];
		if (f->fld_type == FT_REF && r && strcmp(r, MODEL_NULL_REF) &&
		    (!db_obj_class(db, r, have, sizeof have) || strcmp(have, f->fld_target)))
			return xerr_new(XE_HANDLE_INVALID, f->fld_target, r, NULL);
	}
	return db_obj_create(db, cc->cls->mc_name, cc->rec, cc->ref);
}

/* A constructor's record without the fields only poold may set. */
json_t *api_ctor_record(const struct model_class *cls, const json_t *given)
{
	json_t *rec = json_object();
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)given, k, v) {
		const struct model_field *f = model_field_find(cls, k);
		if (f && f->fld_qual != QUAL_RO_RUN)
			json_object_set(rec, k, v);
	}
	return rec;
}

static json_t *gen_create(struct api_call *c)
{
	json_t *given, *e = api_arg_obj(c, 0, "args", &given);
	if (e || (e = api_record_check(CLS(c), given)))
		return e;
	struct create_ctx cc = {CLS(c), api_ctor_record(CLS(c), given), ""};
	e = db_txn(c->ac_pd->pd_db, gen_create_txn, &cc);
	json_decref(cc.rec);
	if (!e)
		c->ac_result = json_string(cc.ref);
	return e;
}

struct destroy_ctx {
	const char *cls, *ref;
};

static json_t *gen_destroy_txn(struct db *db, void *ctx)
{
	struct destroy_ctx *d = ctx;
	json_t *rec, *e = db_obj_get_checked(db, d->cls, d->ref, &rec);
	if (e)
		return e;
	json_decref(rec);
	return db_obj_destroy(db, d->ref);
}

static json_t *gen_destroy(struct api_call *c)
{
	struct destroy_ctx d = {CLS(c)->mc_name, NULL};
	json_t *e = api_arg_str(c, 0, d.cls, &d.ref);
	return e ? e : db_txn(c->ac_pd->pd_db, gen_destroy_txn, &d);
}

static int gen(struct poold *pd, const struct model_class *cls, const struct model_field *f,
	       const char *prefix, const char *what, int nparams, unsigned flags, api_handler fn)
{
	char *name = NULL;
	if (asprintf(&name, "%s.%s%s", cls->mc_name, prefix, what) < 0)
		return -1;
	return api_add_generated(pd, name, nparams, flags, fn, cls, f);
}

int api_register_generic(struct poold *pd)
{
	int rc = 0;
	for (size_t i = 0; i < model_nclasses; i++) {
		const struct model_class *cls = &model_classes[i];
		/* sessions are bearer credentials: none is listed (as in XAPI),
		 * and a session reads only itself (own_only) */
		bool private = strcmp(cls->mc_name, "session") == 0;
		if (!private) {
			rc |= gen(pd, cls, NULL, "", "get_all", 1, 0, gen_get_all);
			rc |= gen(pd, cls, NULL, "", "get_all_records", 1, 0, gen_get_all_records);
			rc |= gen(pd, cls, NULL, "", "get_by_uuid", 2, 0, gen_get_by_uuid);
		}
		rc |= gen(pd, cls, NULL, "", "get_record", 2, 0, gen_get_record);
		if (cls->mc_name_label)
			rc |= gen(pd, cls, NULL, "", "get_by_name_label", 2, 0, gen_get_by_name_label);
		if (cls->mc_generic_create)
			rc |= gen(pd, cls, NULL, "", "create", 2, API_ASYNC, gen_create);
		if (cls->mc_generic_destroy)
			rc |= gen(pd, cls, NULL, "", "destroy", 2, API_ASYNC, gen_destroy);
		for (size_t j = 0; j < cls->mc_nfields; j++) {
			const struct model_field *f = &cls->mc_fields[j];
			rc |= gen(pd, cls, f, "get_", f->fld_name, 2, 0, gen_get_field);
			if (f->fld_qual != QUAL_RW)
				continue;
			rc |= gen(pd, cls, f, "set_", f->fld_name, 3, 0, gen_set_field);
			if (f->fld_type == FT_MAP || f->fld_type == FT_MAP_ANY) {
				rc |= gen(pd, cls, f, "add_to_", f->fld_name, 4, 0, gen_add_to_map);
				rc |= gen(pd, cls, f, "remove_from_", f->fld_name, 3, 0, gen_remove_from_map);
			} else if (f->fld_type == FT_SET_STRING) {
				rc |= gen(pd, cls, f, "add_", f->fld_name, 3, 0, gen_add_to_set);
				rc |= gen(pd, cls, f, "remove_", f->fld_name, 3, 0, gen_remove_from_set);
			}
		}
	}
	return rc ? -1 : 0;
}
