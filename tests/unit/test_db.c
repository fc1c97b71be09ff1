/* test_db.c - unit tests for poold/db.c (the SQLite store). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/time.h>
#include <sys/resource.h>
#include <signal.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "db.h"
#include "db_cache.h"
#include "log.h"
#include "model.h"
#include "xerr.h"

struct fx {
	char dir[64];
	char path[128];
	struct db *db;
};

static void rm_db_files(const char *path)
{
	const char *sfx[] = {"", "-wal", "-shm", "-journal"};
	char p[160];
	for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
		snprintf(p, sizeof p, "%s%s", path, sfx[i]);
		unlink(p);
	}
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/test_db.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof f->path, "%s/pool.db", f->dir);
	char err[256] = "";
	f->db = db_open(f->path, true, err, sizeof err);
	if (!f->db) {
		fprintf(stderr, "db_open: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	db_close(f->db);
	rm_db_files(f->path);
	char p[160];
	snprintf(p, sizeof p, "%s/junk", f->dir);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* ---------------------------------------------------------------- helpers */

struct op {
	enum { OP_CREATE, OP_SET, OP_DESTROY, OP_FAIL } kind;
	const char *cls;
	const char *rec; /* JSON text for create */
	char *ref;       /* create: out (>= 48 bytes); set/destroy: in */
	const char *field;
	const char *value; /* JSON text for set */
};

struct script {
	struct op *ops;
	size_t n;
};

static json_t *run_ops(struct db *db, void *ctx)
{
	struct script *s = ctx;
	for (size_t i = 0; i < s->n; i++) {
		struct op *o = &s->ops[i];
		json_t *e = NULL;
		switch (o->kind) {
		case OP_CREATE: {
			json_t *r = json_loads(o->rec ? o->rec : "{}", 0, NULL);
			e = db_obj_create(db, o->cls, r, o->ref);
			json_decref(r);
			break;
		}
		case OP_SET:
			e = db_obj_set(db, o->ref, o->field, json_loads(o->value, JSON_DECODE_ANY, NULL));
			break;
		case OP_DESTROY:
			e = db_obj_destroy(db, o->ref);
			break;
		case OP_FAIL:
			e = xerr_newf(XE_INTERNAL_ERROR, "deliberate failure");
			break;
		}
		if (e)
			return e;
	}
	return NULL;
}

static json_t *txn1(struct db *db, struct op o)
{
	struct script s = {&o, 1};
	return db_txn(db, run_ops, &s);
}

static void create(struct db *db, const char *cls, const char *rec, char *ref)
{
	json_t *e = txn1(db, (struct op){OP_CREATE, cls, rec, ref, NULL, NULL});
	if (e) {
		char *t = xerr_to_text(e);
		fail_msg("create %s: %s", cls, t);
	}
}

static void set(struct db *db, char *ref, const char *field, const char *value)
{
	json_t *e = txn1(db, (struct op){OP_SET, NULL, NULL, ref, field, value});
	if (e) {
		char *t = xerr_to_text(e);
		fail_msg("set %s.%s: %s", ref, field, t);
	}
}

static void destroy(struct db *db, char *ref)
{
	json_t *e = txn1(db, (struct op){OP_DESTROY, NULL, NULL, ref, NULL, NULL});
	if (e) {
		char *t = xerr_to_text(e);
		fail_msg("destroy %s: %s", ref, t);
	}
}

static json_t *field(struct db *db, const char *ref, const char *name)
{
	json_t *r = db_obj_get(db, ref);
	if (!r)
		fail_msg("no object %s", ref);
	json_t *v = json_incref(json_object_get(r, name));
	json_decref(r);
	return v;
}

static const char *field_s(struct db *db, const char *ref, const char *name)
{
	static char buf[4][128];
	static int k;
	json_t *v = field(db, ref, name);
	char *b = buf[k++ % 4];
	snprintf(b, 128, "%s", json_string_value(v) ? json_string_value(v) : "(not a string)");
	json_decref(v);
	return b;
}

/* The set field holds exactly the given refs (any order), NULL-terminated. */
static void expect_set(struct db *db, const char *ref, const char *name, ...)
{
	json_t *v = field(db, ref, name);
	assert_true(json_is_array(v));
	va_list ap;
	va_start(ap, name);
	size_t n = 0;
	const char *m;
	while ((m = va_arg(ap, const char *))) {
		n++;
		bool found = false;
		size_t i;
		json_t *e;
		json_array_foreach(v, i, e) if (strcmp(json_string_value(e), m) == 0) found = true;
		if (!found) {
			va_end(ap);
			json_decref(v);
			fail_msg("%s.%s lacks %s", ref, name, m);
		}
	}
	va_end(ap);
	size_t have = json_array_size(v);
	json_decref(v);
	if (have != n)
		fail_msg("%s.%s has %zu members, want %zu", ref, name, have, n);
}

/* Events since id, as an array of {id, ts, class, op, ref, snapshot}. */
static int ev_collect(void *ctx, int64_t id, double ts, const char *cls, const char *op, const char *ref,
		      const char *snapshot)
{
	json_t *a = ctx;
	json_t *snap = snapshot ? json_loads(snapshot, 0, NULL) : json_null();
	json_array_append_new(a, json_pack("{s:I, s:f, s:s, s:s, s:s, s:o}", "id", (json_int_t)id, "ts", ts,
					   "class", cls, "op", op, "ref", ref, "snapshot", snap ? snap : json_null()));
	return 0;
}

static json_t *events_since(struct db *db, int64_t since, const char *cls)
{
	json_t *a = json_array();
	json_t *classes = json_pack("{s:b}", cls ? cls : "*", 1);
	assert_int_equal(db_events_since(db, since, classes, ev_collect, a), 0);
	json_decref(classes);
	return a;
}

/* Among events, one with op/class/ref exists; returns it (borrowed). */
static json_t *find_event(json_t *evs, const char *op, const char *cls, const char *ref)
{
	size_t i;
	json_t *e;
	json_array_foreach(evs, i, e) {
		if (strcmp(json_string_value(json_object_get(e, "op")), op) == 0 &&
		    strcmp(json_string_value(json_object_get(e, "class")), cls) == 0 &&
		    strcmp(json_string_value(json_object_get(e, "ref")), ref) == 0)
			return e;
	}
	char *t = json_dumps(evs, JSON_COMPACT);
	fail_msg("no %s %s %s event in %s", op, cls, ref, t);
	return NULL;
}

static int64_t count_rows(const char *path, const char *sql)
{
	sqlite3 *c;
	assert_int_equal(sqlite3_open_v2(path, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_prepare_v2(c, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	int64_t n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(c);
	return n;
}

static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *c;
	assert_int_equal(sqlite3_open_v2(path, &c, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	char *msg = NULL;
	if (sqlite3_exec(c, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	sqlite3_close(c);
}

/* ------------------------------------------------------------------ tests */

static void test_fresh_open(void **state)
{
	struct fx *f = *state;
	assert_int_equal(db_schema_version(f->db), db_code_version());
	char *v = db_meta_get(f->db, "schema_version");
	assert_non_null(v);
	assert_int_equal(atoi(v), db_code_version());
	free(v);
	for (size_t i = 0; i < model_nclasses; i++)
		assert_int_equal(db_count(f->db, model_classes[i].mc_name), 0);
	assert_int_equal(db_last_event(f->db), 0);
	assert_int_equal(db_first_event(f->db), 0);

	/* WAL, seen from another connection */
	sqlite3 *c;
	assert_int_equal(sqlite3_open_v2(f->path, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_prepare_v2(c, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
	sqlite3_finalize(s);
	sqlite3_close(c);

	/* re-opening an existing database (create=false) keeps it */
	char ref[48];
	create(f->db, "VM", "{\"name_label\":\"keep\"}", ref);
	db_close(f->db);
	char err[256] = "";
	f->db = db_open(f->path, false, err, sizeof err);
	assert_non_null(f->db);
	assert_string_equal(field_s(f->db, ref, "name_label"), "keep");
	assert_int_equal(db_schema_version(f->db), db_code_version());
}

static void test_create_fills_record(void **state)
{
	struct fx *f = *state;
	char ref[48];
	create(f->db, "VM", "{\"name_label\":\"a\",\"VCPUs_max\":4,\"no_such_field\":1,"
			    "\"VBDs\":[\"OpaqueRef:bogus\"]}", ref);
	assert_memory_equal(ref, "OpaqueRef:", 10);
	assert_true(model_is_uuid(ref + 10));
	json_t *r = db_obj_get(f->db, ref);
	const struct model_class *vm = model_class_find("VM");
	assert_int_equal(json_object_size(r), vm->mc_nfields);
	for (size_t i = 0; i < vm->mc_nfields; i++)
		assert_true(model_value_ok(&vm->mc_fields[i], json_object_get(r, vm->mc_fields[i].fld_name)));
	assert_null(json_object_get(r, "no_such_field"));
	assert_int_equal(json_integer_value(json_object_get(r, "VCPUs_max")), 4);
	assert_string_equal(json_string_value(json_object_get(r, "power_state")), "Halted");
	/* reverse sets start empty whatever the caller says */
	assert_int_equal(json_array_size(json_object_get(r, "VBDs")), 0);
	assert_true(model_is_uuid(json_string_value(json_object_get(r, "uuid"))));

	/* the stored text is the compact JSON of the record */
	char *t = db_obj_text(f->db, "VM", ref);
	assert_non_null(t);
	json_t *r2 = json_loads(t, 0, NULL);
	assert_true(json_equal(r, r2));
	assert_null(strchr(t, '\n'));
	free(t);
	assert_null(db_obj_text(f->db, "VBD", ref));
	assert_null(db_obj_text(f->db, "VM", "OpaqueRef:nope"));
	json_decref(r2);
	json_decref(r);

	char cls[32];
	assert_true(db_obj_class(f->db, ref, cls, sizeof cls));
	assert_string_equal(cls, "VM");
	assert_false(db_obj_class(f->db, "OpaqueRef:nope", cls, sizeof cls));
	assert_null(db_obj_get(f->db, "OpaqueRef:nope"));

	/* a given uuid is kept */
	char ref2[48];
	create(f->db, "VM", "{\"uuid\":\"0b4a1c1e-1111-4222-8333-444455556666\"}", ref2);
	assert_string_equal(field_s(f->db, ref2, "uuid"), "0b4a1c1e-1111-4222-8333-444455556666");

	/* an unknown class is an error and stores nothing */
	char ref3[48];
	json_t *e = txn1(f->db, (struct op){OP_CREATE, "Nope", "{}", ref3, NULL, NULL});
	assert_non_null(e);
	assert_string_equal(xerr_code_of(e), "INTERNAL_ERROR");
	json_decref(e);
	assert_int_equal(db_count(f->db, "Nope"), 0);
}

static void test_reverse_refs(void **state)
{
	struct fx *f = *state;
	char vm1[48], vm2[48], vbd[48], vbd2[48], vdi[48], sr[48];
	create(f->db, "VM", "{\"name_label\":\"vm1\"}", vm1);
	create(f->db, "VM", "{\"name_label\":\"vm2\"}", vm2);
	create(f->db, "SR", "{\"name_label\":\"sr\"}", sr);
	char rec[256];
	snprintf(rec, sizeof rec, "{\"SR\":\"%s\"}", sr);
	create(f->db, "VDI", rec, vdi);
	expect_set(f->db, sr, "VDIs", vdi, NULL);

	snprintf(rec, sizeof rec, "{\"VM\":\"%s\",\"VDI\":\"%s\",\"device\":\"xvda\"}", vm1, vdi);
	create(f->db, "VBD", rec, vbd);
	expect_set(f->db, vm1, "VBDs", vbd, NULL);
	expect_set(f->db, vm2, "VBDs", NULL);
	expect_set(f->db, vdi, "VBDs", vbd, NULL);

	/* move the VBD to vm2: both sets follow */
	char v[64];
	snprintf(v, sizeof v, "\"%s\"", vm2);
	set(f->db, vbd, "VM", v);
	assert_string_equal(field_s(f->db, vbd, "VM"), vm2);
	expect_set(f->db, vm1, "VBDs", NULL);
	expect_set(f->db, vm2, "VBDs", vbd, NULL);
	expect_set(f->db, vdi, "VBDs", vbd, NULL);
	/* setting the same value again does not duplicate membership */
	set(f->db, vbd, "VM", v);
	expect_set(f->db, vm2, "VBDs", vbd, NULL);

	snprintf(rec, sizeof rec, "{\"VM\":\"%s\"}", vm2);
	create(f->db, "VBD", rec, vbd2);
	expect_set(f->db, vm2, "VBDs", vbd, vbd2, NULL);

	/* destroying a member leaves the set */
	destroy(f->db, vbd);
	assert_null(db_obj_get(f->db, vbd));
	expect_set(f->db, vm2, "VBDs", vbd2, NULL);
	expect_set(f->db, vdi, "VBDs", NULL);

	/* destroying the holder nulls the members' forward ref */
	destroy(f->db, vm2);
	assert_null(db_obj_get(f->db, vm2));
	assert_string_equal(field_s(f->db, vbd2, "VM"), MODEL_NULL_REF);
	expect_set(f->db, vm1, "VBDs", NULL);

	/* pointing at OpaqueRef:NULL and then at vm1 */
	snprintf(v, sizeof v, "\"%s\"", vm1);
	set(f->db, vbd2, "VM", v);
	expect_set(f->db, vm1, "VBDs", vbd2, NULL);
	set(f->db, vbd2, "VM", "\"OpaqueRef:NULL\"");
	expect_set(f->db, vm1, "VBDs", NULL);

	/* a dangling forward ref is stored, with nothing to maintain */
	set(f->db, vbd2, "VM", "\"OpaqueRef:dangling\"");
	assert_string_equal(field_s(f->db, vbd2, "VM"), "OpaqueRef:dangling");
	/* a ref to an object of the wrong class does not touch that object */
	snprintf(v, sizeof v, "\"%s\"", sr);
	set(f->db, vbd2, "VM", v);
	expect_set(f->db, sr, "VDIs", vdi, NULL);
	json_t *srrec = db_obj_get(f->db, sr);
	assert_null(json_object_get(srrec, "VBDs"));
	json_decref(srrec);
}

static void test_events(void **state)
{
	struct fx *f = *state;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	double t0 = (double)tv.tv_sec - 1;

	char vm[48], vbd[48];
	int64_t e0 = db_last_event(f->db);
	create(f->db, "VM", "{\"name_label\":\"ev\"}", vm);
	json_t *evs = events_since(f->db, e0, NULL);
	assert_int_equal(json_array_size(evs), 1);
	json_t *ev = find_event(evs, "add", "VM", vm);
	json_t *rec = db_obj_get(f->db, vm);
	assert_true(json_equal(json_object_get(ev, "snapshot"), rec));
	json_decref(rec);
	int64_t id1 = json_integer_value(json_object_get(ev, "id"));
	assert_true(id1 > e0);
	assert_int_equal(db_last_event(f->db), id1);
	double ts = json_real_value(json_object_get(ev, "ts"));
	assert_true(ts >= t0 && ts < t0 + 60);
	json_decref(evs);

	/* a plain field change: one mod with the new record */
	set(f->db, vm, "name_label", "\"renamed\"");
	evs = events_since(f->db, id1, NULL);
	assert_int_equal(json_array_size(evs), 1);
	ev = find_event(evs, "mod", "VM", vm);
	assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "snapshot"), "name_label")),
			    "renamed");
	int64_t id2 = json_integer_value(json_object_get(ev, "id"));
	assert_true(id2 > id1);
	json_decref(evs);

	/* creating a member: add of the member, mod of the holder's set */
	char rec_t[128];
	snprintf(rec_t, sizeof rec_t, "{\"VM\":\"%s\"}", vm);
	create(f->db, "VBD", rec_t, vbd);
	evs = events_since(f->db, id2, NULL);
	assert_int_equal(json_array_size(evs), 2);
	find_event(evs, "add", "VBD", vbd);
	ev = find_event(evs, "mod", "VM", vm);
	json_t *set_v = json_object_get(json_object_get(ev, "snapshot"), "VBDs");
	assert_int_equal(json_array_size(set_v), 1);
	assert_string_equal(json_string_value(json_array_get(set_v, 0)), vbd);
	int64_t id3 = db_last_event(f->db);
	json_decref(evs);

	/* ids strictly increase, oldest first */
	evs = events_since(f->db, 0, NULL);
	assert_int_equal(json_array_size(evs), 4);
	for (size_t i = 1; i < json_array_size(evs); i++)
		assert_true(json_integer_value(json_object_get(json_array_get(evs, i), "id")) >
			    json_integer_value(json_object_get(json_array_get(evs, i - 1), "id")));
	json_decref(evs);

	/* class filter, case-insensitive */
	evs = events_since(f->db, 0, "vm");
	assert_int_equal(json_array_size(evs), 3);
	json_decref(evs);
	evs = events_since(f->db, 0, "VBD");
	assert_int_equal(json_array_size(evs), 1);
	json_decref(evs);
	evs = events_since(f->db, 0, "host");
	assert_int_equal(json_array_size(evs), 0);
	json_decref(evs);

	/* destroy: a del with the last record */
	destroy(f->db, vbd);
	evs = events_since(f->db, id3, NULL);
	assert_int_equal(json_array_size(evs), 2);
	ev = find_event(evs, "del", "VBD", vbd);
	assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "snapshot"), "VM")), vm);
	find_event(evs, "mod", "VM", vm);
	json_decref(evs);

	/* touch: a mod with no change, and its id */
	int64_t before = db_last_event(f->db), tid = 0;
	json_t *e = db_obj_touch(f->db, vm, &tid);
	assert_null(e);
	assert_true(tid > before);
	assert_int_equal(tid, db_last_event(f->db));
	evs = events_since(f->db, before, NULL);
	assert_int_equal(json_array_size(evs), 1);
	find_event(evs, "mod", "VM", vm);
	json_decref(evs);
	e = db_obj_touch(f->db, "OpaqueRef:nope", &tid);
	assert_non_null(e);
	assert_string_equal(xerr_code_of(e), "HANDLE_INVALID");
	json_decref(e);
}

static int stop_after_one(void *ctx, int64_t id, double ts, const char *cls, const char *op, const char *ref,
			  const char *snapshot)
{
	(void)id, (void)ts, (void)cls, (void)op, (void)ref, (void)snapshot;
	(*(int *)ctx)++;
	return 1;
}

static void test_events_stop(void **state)
{
	struct fx *f = *state;
	char a[48], b[48];
	create(f->db, "VM", NULL, a);
	create(f->db, "VM", NULL, b);
	int n = 0;
	json_t *all = json_pack("{s:b}", "*", 1);
	assert_int_equal(db_events_since(f->db, 0, all, stop_after_one, &n), 0);
	assert_int_equal(n, 1);
	/* the statement was reset: a second walk works */
	json_t *evs = events_since(f->db, 0, NULL);
	assert_int_equal(json_array_size(evs), 2);
	json_decref(evs);
	json_decref(all);
}

static void test_txn_rollback(void **state)
{
	struct fx *f = *state;
	char vm[48], vbd[48], vm2[48];
	create(f->db, "VM", "{\"name_label\":\"before\"}", vm);
	int64_t ev = db_last_event(f->db);
	int64_t nvm = db_count(f->db, "VM");

	char rec[128];
	snprintf(rec, sizeof rec, "{\"VM\":\"%s\"}", vm);
	struct op ops[] = {
		{OP_CREATE, "VBD", rec, vbd, NULL, NULL},
		{OP_SET, NULL, NULL, vm, "name_label", "\"during\""},
		{OP_CREATE, "VM", "{\"name_label\":\"ghost\"}", vm2, NULL, NULL},
		{OP_FAIL, NULL, NULL, NULL, NULL, NULL},
	};
	struct script s = {ops, 4};
	json_t *e = db_txn(f->db, run_ops, &s);
	assert_non_null(e);
	assert_string_equal(xerr_code_of(e), "INTERNAL_ERROR");
	assert_string_equal(json_string_value(json_array_get(e, 1)), "deliberate failure");
	json_decref(e);

	assert_int_equal(db_count(f->db, "VM"), nvm);
	assert_int_equal(db_count(f->db, "VBD"), 0);
	assert_null(db_obj_get(f->db, vbd));
	assert_null(db_obj_get(f->db, vm2));
	assert_string_equal(field_s(f->db, vm, "name_label"), "before");
	expect_set(f->db, vm, "VBDs", NULL);
	assert_int_equal(db_last_event(f->db), ev);
	json_t *evs = events_since(f->db, ev, NULL);
	assert_int_equal(json_array_size(evs), 0);
	json_decref(evs);
	json_t *names = db_refs_by_name(f->db, "VM", "ghost");
	assert_int_equal(json_array_size(names), 0);
	json_decref(names);

	/* the store is usable afterwards and ids continue */
	char vm3[48];
	create(f->db, "VM", NULL, vm3);
	assert_int_equal(db_last_event(f->db), ev + 1);
}

struct nest {
	char outer_ref[48], inner_ref[48];
	bool fail_outer;
	json_t *inner_err;
};

static json_t *inner_fn(struct db *db, void *ctx)
{
	struct nest *n = ctx;
	json_t *r = json_pack("{s:s}", "name_label", "inner");
	json_t *e = db_obj_create(db, "VM", r, n->inner_ref);
	json_decref(r);
	return e;
}

static json_t *outer_fn(struct db *db, void *ctx)
{
	struct nest *n = ctx;
	json_t *r = json_pack("{s:s}", "name_label", "outer");
	json_t *e = db_obj_create(db, "VM", r, n->outer_ref);
	json_decref(r);
	if (e)
		return e;
	n->inner_err = db_txn(db, inner_fn, n);
	if (n->inner_err)
		return n->inner_err;
	return n->fail_outer ? xerr_newf(XE_INTERNAL_ERROR, "outer fails") : NULL;
}

struct hook_log {
	int calls;
	int64_t last;
};

static void hook(void *ctx, int64_t last_event)
{
	struct hook_log *h = ctx;
	h->calls++;
	h->last = last_event;
}

static json_t *read_only_fn(struct db *db, void *ctx)
{
	(void)ctx;
	(void)db_count(db, "VM");
	return NULL;
}

static void test_txn_nested_and_hook(void **state)
{
	struct fx *f = *state;
	struct hook_log h = {0, 0};
	db_set_commit_hook(f->db, hook, &h);

	/* nested: one transaction, one hook call */
	struct nest n = {.fail_outer = false};
	json_t *e = db_txn(f->db, outer_fn, &n);
	assert_null(e);
	assert_null(n.inner_err);
	json_t *r = db_obj_get(f->db, n.outer_ref);
	assert_non_null(r);
	json_decref(r);
	r = db_obj_get(f->db, n.inner_ref);
	assert_non_null(r);
	json_decref(r);
	assert_int_equal(h.calls, 1);
	assert_int_equal(h.last, db_last_event(f->db));
	assert_int_equal(db_last_event(f->db), 2);

	/* outer failing after the inner succeeded rolls back both */
	struct nest n2 = {.fail_outer = true};
	e = db_txn(f->db, outer_fn, &n2);
	assert_non_null(e);
	json_decref(e);
	assert_null(n2.inner_err);
	assert_null(db_obj_get(f->db, n2.outer_ref));
	assert_null(db_obj_get(f->db, n2.inner_ref));
	assert_int_equal(db_count(f->db, "VM"), 2);
	assert_int_equal(h.calls, 1); /* no call for a rolled-back transaction */
	assert_int_equal(db_last_event(f->db), 2);

	/* a committed transaction with several events: one call, newest id */
	char a[48], b[48], vbd[48];
	char rec[128];
	snprintf(rec, sizeof rec, "{\"VM\":\"%s\"}", n.outer_ref);
	struct op ops[] = {
		{OP_CREATE, "VM", NULL, a, NULL, NULL},
		{OP_CREATE, "VM", NULL, b, NULL, NULL},
		{OP_CREATE, "VBD", rec, vbd, NULL, NULL},
	};
	struct script s = {ops, 3};
	assert_null(db_txn(f->db, run_ops, &s));
	assert_int_equal(h.calls, 2);
	assert_int_equal(db_last_event(f->db), 2 + 4);
	assert_int_equal(h.last, 6);

	/* a transaction that appended nothing does not call it */
	assert_null(db_txn(f->db, read_only_fn, NULL));
	assert_int_equal(h.calls, 2);

	/* a failing one still does not */
	e = txn1(f->db, (struct op){OP_FAIL, NULL, NULL, NULL, NULL, NULL});
	json_decref(e);
	assert_int_equal(h.calls, 2);

	/* hook removed */
	db_set_commit_hook(f->db, NULL, NULL);
	char c[48];
	create(f->db, "VM", NULL, c);
	assert_int_equal(h.calls, 2);
}

static void test_get_checked(void **state)
{
	struct fx *f = *state;
	char vm[48];
	create(f->db, "VM", "{\"name_label\":\"chk\"}", vm);
	json_t *rec = (json_t *)1;
	assert_null(db_obj_get_checked(f->db, "VM", vm, &rec));
	assert_non_null(rec);
	assert_string_equal(json_string_value(json_object_get(rec, "name_label")), "chk");
	json_decref(rec);

	rec = (json_t *)1;
	json_t *e = db_obj_get_checked(f->db, "VBD", vm, &rec);
	assert_null(rec);
	json_t *want = json_pack("[s,s,s]", "HANDLE_INVALID", "VBD", vm);
	assert_true(json_equal(e, want));
	json_decref(want);
	json_decref(e);

	e = db_obj_get_checked(f->db, "VM", "OpaqueRef:nope", &rec);
	assert_null(rec);
	want = json_pack("[s,s,s]", "HANDLE_INVALID", "VM", "OpaqueRef:nope");
	assert_true(json_equal(e, want));
	json_decref(want);
	json_decref(e);

	e = db_obj_get_checked(f->db, "VM", MODEL_NULL_REF, &rec);
	assert_null(rec);
	assert_string_equal(xerr_code_of(e), "HANDLE_INVALID");
	json_decref(e);

	/* class names are exact */
	e = db_obj_get_checked(f->db, "vm", vm, &rec);
	assert_null(rec);
	assert_string_equal(xerr_code_of(e), "HANDLE_INVALID");
	json_decref(e);

	/* set / destroy of an unknown ref */
	e = txn1(f->db, (struct op){OP_SET, NULL, NULL, "OpaqueRef:nope", "name_label", "\"x\""});
	assert_string_equal(xerr_code_of(e), "HANDLE_INVALID");
	assert_string_equal(json_string_value(json_array_get(e, 2)), "OpaqueRef:nope");
	json_decref(e);
	e = txn1(f->db, (struct op){OP_DESTROY, NULL, NULL, "OpaqueRef:nope", NULL, NULL});
	assert_string_equal(xerr_code_of(e), "HANDLE_INVALID");
	assert_string_equal(json_string_value(json_array_get(e, 2)), "OpaqueRef:nope");
	json_decref(e);
	/* destroying twice */
	destroy(f->db, vm);
	e = txn1(f->db, (struct op){OP_DESTROY, NULL, NULL, vm, NULL, NULL});
	assert_string_equal(xerr_code_of(e), "HANDLE_INVALID");
	json_decref(e);
}

static void test_uuid_collision(void **state)
{
	struct fx *f = *state;
	char a[48], b[48];
	const char *u = "0b4a1c1e-1111-4222-8333-444455556666";
	char rec[128];
	snprintf(rec, sizeof rec, "{\"uuid\":\"%s\",\"name_label\":\"first\"}", u);
	create(f->db, "VM", rec, a);
	int64_t ev = db_last_event(f->db);
	snprintf(rec, sizeof rec, "{\"uuid\":\"%s\",\"name_label\":\"second\"}", u);
	json_t *e = txn1(f->db, (struct op){OP_CREATE, "VM", rec, b, NULL, NULL});
	json_t *want = json_pack("[s,s,s]", "INVALID_VALUE", "uuid", u);
	assert_true(json_equal(e, want));
	json_decref(want);
	json_decref(e);
	assert_int_equal(db_count(f->db, "VM"), 1);
	assert_int_equal(db_last_event(f->db), ev);
	assert_null(db_obj_get(f->db, b));
	assert_string_equal(field_s(f->db, a, "name_label"), "first");
	char got[64];
	assert_true(db_ref_by_uuid(f->db, "VM", u, got));
	assert_string_equal(got, a);
}

static void test_lookups(void **state)
{
	struct fx *f = *state;
	char vm1[48], vm2[48], vm3[48], vbd1[48], vbd2[48], vbd3[48];
	create(f->db, "VM", "{\"name_label\":\"web\"}", vm1);
	create(f->db, "VM", "{\"name_label\":\"web\"}", vm2);
	create(f->db, "VM", "{\"name_label\":\"db\"}", vm3);
	char rec[128];
	snprintf(rec, sizeof rec, "{\"VM\":\"%s\",\"device\":\"xvda\"}", vm1);
	create(f->db, "VBD", rec, vbd1);
	snprintf(rec, sizeof rec, "{\"VM\":\"%s\",\"device\":\"xvdb\"}", vm1);
	create(f->db, "VBD", rec, vbd2);
	snprintf(rec, sizeof rec, "{\"VM\":\"%s\",\"device\":\"xvda\"}", vm3);
	create(f->db, "VBD", rec, vbd3);

	assert_int_equal(db_count(f->db, "VM"), 3);
	assert_int_equal(db_count(f->db, "VBD"), 3);
	assert_int_equal(db_count(f->db, "host"), 0);
	assert_int_equal(db_count(f->db, "vm"), 0);

	json_t *all = db_refs_all(f->db, "VM");
	assert_int_equal(json_array_size(all), 3);
	json_decref(all);

	json_t *found = db_find(f->db, "VBD", "VM", vm1);
	assert_int_equal(json_object_size(found), 2);
	assert_non_null(json_object_get(found, vbd1));
	assert_non_null(json_object_get(found, vbd2));
	assert_string_equal(json_string_value(json_object_get(json_object_get(found, vbd2), "device")), "xvdb");
	json_decref(found);
	found = db_find(f->db, "VBD", "device", "xvda");
	assert_int_equal(json_object_size(found), 2);
	assert_non_null(json_object_get(found, vbd1));
	assert_non_null(json_object_get(found, vbd3));
	json_decref(found);
	found = db_find(f->db, "VBD", "VM", "OpaqueRef:none");
	assert_int_equal(json_object_size(found), 0);
	json_decref(found);
	/* a non-string field never matches */
	found = db_find(f->db, "VBD", "bootable", "false");
	assert_int_equal(json_object_size(found), 0);
	json_decref(found);
	found = db_find(f->db, "VM", NULL, NULL);
	assert_int_equal(json_object_size(found), 3);
	json_decref(found);

	/* by uuid: exact class */
	char got[64];
	assert_true(db_ref_by_uuid(f->db, "VM", field_s(f->db, vm3, "uuid"), got));
	assert_string_equal(got, vm3);
	assert_false(db_ref_by_uuid(f->db, "VBD", field_s(f->db, vm3, "uuid"), got));
	assert_false(db_ref_by_uuid(f->db, "VM", "0b4a1c1e-1111-4222-8333-444455556666", got));

	/* by name; renames are followed */
	json_t *n = db_refs_by_name(f->db, "VM", "web");
	assert_int_equal(json_array_size(n), 2);
	json_decref(n);
	set(f->db, vm2, "name_label", "\"api\"");
	n = db_refs_by_name(f->db, "VM", "web");
	assert_int_equal(json_array_size(n), 1);
	assert_string_equal(json_string_value(json_array_get(n, 0)), vm1);
	json_decref(n);
	n = db_refs_by_name(f->db, "VM", "api");
	assert_int_equal(json_array_size(n), 1);
	assert_string_equal(json_string_value(json_array_get(n, 0)), vm2);
	json_decref(n);
	n = db_refs_by_name(f->db, "VM", "nothing");
	assert_int_equal(json_array_size(n), 0);
	json_decref(n);
	n = db_refs_by_name(f->db, "VBD", "web");
	assert_int_equal(json_array_size(n), 0);
	json_decref(n);
}

static void test_events_trim(void **state)
{
	struct fx *f = *state;
	char r[10][48];
	for (int i = 0; i < 10; i++)
		create(f->db, "VM", NULL, r[i]);
	assert_int_equal(db_last_event(f->db), 10);
	assert_int_equal(db_first_event(f->db), 1);

	db_events_trim(f->db, 3);
	assert_int_equal(db_first_event(f->db), 8);
	assert_int_equal(db_last_event(f->db), 10);
	json_t *evs = events_since(f->db, 0, NULL);
	assert_int_equal(json_array_size(evs), 3);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(evs, 0), "id")), 8);
	json_decref(evs);

	/* keeping more than there are drops nothing */
	db_events_trim(f->db, 100);
	assert_int_equal(db_first_event(f->db), 8);

	db_events_trim(f->db, 0);
	assert_int_equal(db_first_event(f->db), 0);
	assert_int_equal(db_last_event(f->db), 10); /* keeps growing after a trim */
	evs = events_since(f->db, 0, NULL);
	assert_int_equal(json_array_size(evs), 0);
	json_decref(evs);

	char x[48];
	create(f->db, "VM", NULL, x);
	assert_int_equal(db_last_event(f->db), 11);
	assert_int_equal(db_first_event(f->db), 11);

	/* also across a re-open */
	db_events_trim(f->db, 0);
	db_close(f->db);
	char err[256] = "";
	f->db = db_open(f->path, false, err, sizeof err);
	assert_non_null(f->db);
	assert_int_equal(db_last_event(f->db), 11);
	create(f->db, "VM", NULL, x);
	assert_int_equal(db_last_event(f->db), 12);
	/* the objects are untouched by trimming */
	assert_int_equal(db_count(f->db, "VM"), 12);
}

static void test_users_and_meta(void **state)
{
	struct fx *f = *state;
	assert_null(db_user_hash(f->db, "root"));
	assert_null(db_user_set(f->db, "root", "pbkdf2-sha256$1000$a$b"));
	char *h = db_user_hash(f->db, "root");
	assert_string_equal(h, "pbkdf2-sha256$1000$a$b");
	free(h);
	assert_null(db_user_set(f->db, "root", "pbkdf2-sha256$1000$c$d"));
	h = db_user_hash(f->db, "root");
	assert_string_equal(h, "pbkdf2-sha256$1000$c$d");
	free(h);
	assert_null(db_user_set(f->db, "alice", "x"));
	assert_null(db_user_hash(f->db, "Root"));
	assert_null(db_user_hash(f->db, ""));

	assert_null(db_meta_get(f->db, "pool_secret"));
	assert_null(db_meta_set(f->db, "pool_secret", "s3cr3t"));
	assert_null(db_meta_set(f->db, "empty", ""));
	char *m = db_meta_get(f->db, "pool_secret");
	assert_string_equal(m, "s3cr3t");
	free(m);
	assert_null(db_meta_set(f->db, "pool_secret", "other"));
	m = db_meta_get(f->db, "pool_secret");
	assert_string_equal(m, "other");
	free(m);

	/* users and meta change no objects and append no events */
	assert_int_equal(db_last_event(f->db), 0);

	/* and they persist */
	db_close(f->db);
	char err[256] = "";
	f->db = db_open(f->path, false, err, sizeof err);
	assert_non_null(f->db);
	h = db_user_hash(f->db, "alice");
	assert_string_equal(h, "x");
	free(h);
	m = db_meta_get(f->db, "pool_secret");
	assert_string_equal(m, "other");
	free(m);
	m = db_meta_get(f->db, "empty");
	assert_string_equal(m, "");
	free(m);
	/* schema_version is untouched by meta round trips of other keys */
	assert_int_equal(db_schema_version(f->db), db_code_version());
}

static void test_migration_fills_defaults(void **state)
{
	struct fx *f = *state;
	char vm[48], host[48];
	create(f->db, "VM", "{\"name_label\":\"old\"}", vm);
	create(f->db, "host", "{\"name_label\":\"h\"}", host);
	char uuid[64];
	snprintf(uuid, sizeof uuid, "%s", field_s(f->db, vm, "uuid"));
	db_close(f->db);
	f->db = NULL;

	/* an older poold's database: schema 0 and a VM with only a few fields */
	char sql[512];
	snprintf(sql, sizeof sql,
		 "UPDATE meta SET value='0' WHERE key='schema_version';"
		 "UPDATE objects SET rec='{\"uuid\":\"%s\",\"name_label\":\"old\",\"VCPUs_max\":8}' WHERE ref='%s';",
		 uuid, vm);
	raw_exec(f->path, sql);

	char err[256] = "";
	f->db = db_open(f->path, false, err, sizeof err);
	if (!f->db)
		fail_msg("db_open after downgrade: %s", err);
	assert_int_equal(db_schema_version(f->db), db_code_version());

	json_t *r = db_obj_get(f->db, vm);
	const struct model_class *c = model_class_find("VM");
	assert_int_equal(json_object_size(r), c->mc_nfields);
	for (size_t i = 0; i < c->mc_nfields; i++) {
		const struct model_field *fl = &c->mc_fields[i];
		json_t *v = json_object_get(r, fl->fld_name);
		if (!v)
			fail_msg("migrated VM lacks %s", fl->fld_name);
		assert_true(model_value_ok(fl, v));
		if (strcmp(fl->fld_name, "uuid") && strcmp(fl->fld_name, "name_label") &&
		    strcmp(fl->fld_name, "VCPUs_max")) {
			json_t *d = model_default(fl);
			if (!json_equal(d, v))
				fail_msg("migrated VM.%s is not the default", fl->fld_name);
			json_decref(d);
		}
	}
	assert_string_equal(json_string_value(json_object_get(r, "name_label")), "old");
	assert_string_equal(json_string_value(json_object_get(r, "uuid")), uuid);
	assert_int_equal(json_integer_value(json_object_get(r, "VCPUs_max")), 8);
	json_decref(r);
	/* still found by uuid and name */
	char got[64];
	assert_true(db_ref_by_uuid(f->db, "VM", uuid, got));
	assert_string_equal(got, vm);
	json_t *n = db_refs_by_name(f->db, "VM", "old");
	assert_int_equal(json_array_size(n), 1);
	json_decref(n);
	/* the complete host was left as it was */
	assert_string_equal(field_s(f->db, host, "name_label"), "h");

	/* a second open does not migrate again */
	int64_t ev = db_last_event(f->db);
	db_close(f->db);
	f->db = db_open(f->path, false, err, sizeof err);
	assert_non_null(f->db);
	assert_int_equal(db_last_event(f->db), ev);
}

static void test_migration_keeps_reverse_sets(void **state)
{
	struct fx *f = *state;
	/* A stored holder that lacks its reverse set (e.g. the set field is new
	 * in this version) while members point at it: after the migration the
	 * set must list those members, not the empty default. */
	char vm[48], vbd[48];
	create(f->db, "VM", "{\"name_label\":\"holder\"}", vm);
	char rec[128];
	snprintf(rec, sizeof rec, "{\"VM\":\"%s\"}", vm);
	create(f->db, "VBD", rec, vbd);
	char uuid[64];
	snprintf(uuid, sizeof uuid, "%s", field_s(f->db, vm, "uuid"));
	db_close(f->db);
	f->db = NULL;
	char sql[512];
	snprintf(sql, sizeof sql,
		 "UPDATE meta SET value='0' WHERE key='schema_version';"
		 "UPDATE objects SET rec='{\"uuid\":\"%s\",\"name_label\":\"holder\"}' WHERE ref='%s';", uuid, vm);
	raw_exec(f->path, sql);
	char err[256] = "";
	f->db = db_open(f->path, false, err, sizeof err);
	assert_non_null(f->db);
	expect_set(f->db, vm, "VBDs", vbd, NULL);
}

static void test_newer_schema_refused(void **state)
{
	struct fx *f = *state;
	char vm[48];
	create(f->db, "VM", NULL, vm);
	db_close(f->db);
	f->db = NULL;
	int newer = db_code_version() + 1;
	char sql[128];
	snprintf(sql, sizeof sql, "UPDATE meta SET value='%d' WHERE key='schema_version';", newer);
	raw_exec(f->path, sql);

	char err[256] = "";
	struct db *db = db_open(f->path, false, err, sizeof err);
	assert_null(db);
	char want[32];
	snprintf(want, sizeof want, "%d", newer);
	if (!strstr(err, "newer") || !strstr(err, want))
		fail_msg("unclear refusal: \"%s\"", err);
	/* nothing was changed */
	assert_int_equal(count_rows(f->path, "SELECT value FROM meta WHERE key='schema_version'"), newer);
	assert_int_equal(count_rows(f->path, "SELECT count(*) FROM objects"), 1);

	/* with create=true too */
	err[0] = '\0';
	db = db_open(f->path, true, err, sizeof err);
	assert_null(db);
	assert_non_null(strstr(err, "newer"));

	/* restore so teardown's reopen-free cleanup is simple */
	f->db = NULL;
	snprintf(sql, sizeof sql, "UPDATE meta SET value='%d' WHERE key='schema_version';", db_code_version());
	raw_exec(f->path, sql);
	f->db = db_open(f->path, false, err, sizeof err);
	assert_non_null(f->db);
}

static void test_open_failures(void **state)
{
	struct fx *f = *state;
	char p[160];
	snprintf(p, sizeof p, "%s/junk", f->dir);
	FILE *fp = fopen(p, "w");
	assert_non_null(fp);
	for (int i = 0; i < 200; i++)
		fputs("this is not an SQLite database, just text. ", fp);
	fclose(fp);

	char err[256] = "";
	struct db *db = db_open(p, false, err, sizeof err);
	assert_null(db);
	if (strlen(err) == 0)
		fail_msg("no message for a non-database file");
	assert_non_null(strstr(err, "not a database"));
	db = db_open(p, true, err, sizeof err);
	assert_null(db);
	/* the file was not touched */
	fp = fopen(p, "r");
	char head[16] = "";
	assert_int_equal(fread(head, 1, 15, fp), 15);
	fclose(fp);
	assert_memory_equal(head, "this is not an ", 15);

	/* a missing file without create */
	char missing[160];
	snprintf(missing, sizeof missing, "%s/missing.db", f->dir);
	err[0] = '\0';
	db = db_open(missing, false, err, sizeof err);
	assert_null(db);
	assert_true(strlen(err) > 0);
	assert_int_equal(access(missing, F_OK), -1);

	/* a directory that does not exist */
	err[0] = '\0';
	db = db_open("/nonexistent-dir-xyz/pool.db", true, err, sizeof err);
	assert_null(db);
	assert_true(strlen(err) > 0);

	/* a tiny error buffer is respected */
	char tiny[8];
	memset(tiny, 'Z', sizeof tiny);
	tiny[0] = '\0';
	db = db_open(p, false, tiny, sizeof tiny);
	assert_null(db);
	assert_true(memchr(tiny, '\0', sizeof tiny) != NULL);
}

static json_t *set_name_txn(struct db *db, void *ctx)
{
	const char **a = ctx;
	return db_obj_set(db, a[0], "name_label", json_string(a[1]));
}

static json_t *create_vm_txn(struct db *db, void *ctx)
{
	return db_obj_create_new(db, "VM", json_pack("{s:s}", "name_label", "v"), ctx);
}

/* Another process holds the write lock: a write fails at once, says why,
 * and the same write works once the lock is gone. */
static void test_busy_fails_fast(void **state)
{
	struct fx *f = *state;
	char ref[64];
	assert_null(db_txn(f->db, create_vm_txn, ref));
	sqlite3 *other;
	assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
	assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	const char *a[2] = {ref, "renamed"};
	struct timeval t0, t1;
	gettimeofday(&t0, NULL);
	json_t *e = db_txn(f->db, set_name_txn, a);
	gettimeofday(&t1, NULL);
	assert_non_null(e);
	assert_true(db_last_busy(f->db));
	assert_non_null(strstr(json_string_value(json_array_get(e, 1)), "locked by another process"));
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000 < 1000);
	json_decref(e);
	json_t *rec = db_obj_get(f->db, ref); /* reads go on */
	assert_string_equal(json_string_value(json_object_get(rec, "name_label")), "v");
	json_decref(rec);
	assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	assert_null(db_txn(f->db, set_name_txn, a));
	assert_false(db_last_busy(f->db));
}

/* Once a process has said it changes records only in transactions
 * (poold does, at start), a change outside one stops it (assert) before
 * anything is written; inside one it goes through. Needs assert() on. */
static void test_require_txn(void **state)
{
#ifdef NDEBUG
	skip();
#endif
	struct fx *f = *state;
	db_require_txn(f->db);
	char ref[64];
	assert_null(db_txn(f->db, create_vm_txn, ref));
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		signal(SIGABRT, SIG_DFL);
		json_decref(db_obj_create_new(f->db, "VM", json_pack("{s:s}", "name_label", "outside"), ref));
		_exit(0);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGABRT);
	json_t *all = db_refs_all(f->db, "VM");
	assert_int_equal(json_array_size(all), 1);
	json_decref(all);
}

static json_t *big_txn(struct db *db, void *ctx)
{
	(void)ctx;
	json_t *e = NULL;
	char pad[4000];
	memset(pad, 'x', sizeof pad - 1);
	pad[sizeof pad - 1] = 0;
	for (int i = 0; i < 400 && !e; i++) {
		char ref[64];
		e = db_obj_create_new(db, "VM", json_pack("{s:s, s:s}", "name_label", "big", "name_description", pad),
				      ref);
	}
	return e;
}

/* A full disk: the write fails with the file system's reason, not
 * "cannot rollback - no transaction is active", and nothing is half done. */
static void test_disk_full(void **state)
{
	struct fx *f = *state;
	struct rlimit old, small;
	getrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, SIG_IGN);
	small = old;
	small.rlim_cur = 256 * 1024;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	int64_t before = db_count(f->db, "VM");
	json_t *e = db_txn(f->db, big_txn, NULL);
	setrlimit(RLIMIT_FSIZE, &old);
	assert_non_null(e);
	const char *msg = json_string_value(json_array_get(e, 1));
	assert_null(strstr(msg, "no transaction is active"));
	assert_true(strstr(msg, "full") || strstr(msg, "I/O") || strstr(msg, "large"));
	json_decref(e);
	assert_int_equal(db_count(f->db, "VM"), before);
}

/* A record that is not JSON is set aside at open; the others stay. */
static void test_quarantine(void **state)
{
	struct fx *f = *state;
	char good[64], badref[64];
	assert_null(db_txn(f->db, create_vm_txn, good));
	assert_null(db_txn(f->db, create_vm_txn, badref));
	db_close(f->db);
	sqlite3 *raw;
	assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
	char *sql = sqlite3_mprintf("UPDATE objects SET rec = '{\"half' WHERE ref = %Q", badref);
	assert_int_equal(sqlite3_exec(raw, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_free(sql);
	sqlite3_close(raw);
	char err[256];
	f->db = db_open(f->path, false, err, sizeof err);
	assert_non_null(f->db);
	json_t *all = db_find(f->db, "VM", NULL, NULL);
	assert_non_null(json_object_get(all, good));
	assert_null(json_object_get(all, badref));
	json_decref(all);
}

/* The store hook: derived fields before the store, no event for no change. */
static json_t *store_hook_fn(struct db *db, const char *cls, const char *ref, const json_t *old, json_t *rec, bool after,
		    void *ctx)
{
	(void)db, (void)ref, (void)old;
	int *calls = ctx;
	calls[after]++;
	if (!after && rec && strcmp(cls, "VM") == 0)
		json_object_set_new(rec, "name_description",
				    json_sprintf("named %s", json_string_value(json_object_get(rec, "name_label"))));
	return NULL;
}

static void test_store_hook(void **state)
{
	struct fx *f = *state;
	int calls[2] = {0, 0};
	db_set_store_hook(f->db, store_hook_fn, calls);
	char ref[64];
	assert_null(db_txn(f->db, create_vm_txn, ref));
	json_t *rec = db_obj_get(f->db, ref);
	assert_string_equal(json_string_value(json_object_get(rec, "name_description")), "named v");
	json_decref(rec);
	int64_t events = db_last_event(f->db);
	const char *same[2] = {ref, "v"};
	assert_null(db_txn(f->db, set_name_txn, same));
	assert_int_equal(db_last_event(f->db), events); /* nothing changed: no event */
	const char *other[2] = {ref, "w"};
	assert_null(db_txn(f->db, set_name_txn, other));
	assert_true(db_last_event(f->db) > events);
	rec = db_obj_get(f->db, ref);
	assert_string_equal(json_string_value(json_object_get(rec, "name_description")), "named w");
	json_decref(rec);
	assert_int_equal(calls[0], 3);
	assert_int_equal(calls[1], 2);
	db_set_store_hook(f->db, NULL, NULL);
}

/* name_label set, read back (so the cache has it), then the transaction fails. */
static json_t *set_read_fail(struct db *db, void *ctx)
{
	json_t *e = db_obj_set(db, ctx, "name_label", json_string("rolled back"));
	if (e)
		return e;
	json_t *r = db_obj_get(db, ctx);
	e = xerr_newf(XE_INTERNAL_ERROR, "read: %s", json_string_value(json_object_get(r, "name_label")));
	json_decref(r);
	return e;
}

/* Records are parsed once and kept (db_cache.c); every read still sees the
 * stored text: a copy the caller may change, another process's write, a
 * rolled back change, and db_find's filter on a quoted value. */
static void test_cached_records(void **state)
{
	struct fx *f = *state;
	char vm[48], other[48];
	create(f->db, "VM", "{\"name_label\":\"one\"}", vm);
	char rec[160];
	snprintf(rec, sizeof rec, "{\"name_label\":\"two\", \"name_description\":\"%s\"}", vm);
	create(f->db, "VM", rec, other);

	json_t *r = db_obj_get(f->db, vm);
	json_object_set_new(r, "name_label", json_string("changed by the caller"));
	json_decref(r);
	assert_string_equal(field_s(f->db, vm, "name_label"), "one");

	/* written under it by another connection */
	char sql[512];
	snprintf(sql, sizeof sql,
		 "UPDATE objects SET rec = json_set(rec, '$.name_label', 'from outside') WHERE ref = '%s';", vm);
	raw_exec(f->path, sql);
	assert_string_equal(field_s(f->db, vm, "name_label"), "from outside");
	json_t *found = db_find(f->db, "VM", "name_label", "from outside");
	assert_int_equal(json_object_size(found), 1);
	assert_non_null(json_object_get(found, vm));
	json_decref(found);

	/* written and read inside a transaction that is rolled back */
	set(f->db, vm, "name_label", "\"during\"");
	json_t *e = db_txn(f->db, set_read_fail, vm);
	assert_non_null(e);
	assert_string_equal(json_string_value(json_array_get(e, 1)), "read: rolled back");
	json_decref(e);
	assert_string_equal(field_s(f->db, vm, "name_label"), "during");

	/* the ref appears in other's text, in another field: not a match */
	found = db_find(f->db, "VM", "name_label", vm);
	assert_int_equal(json_object_size(found), 0);
	json_decref(found);
	found = db_find(f->db, "VM", "name_description", vm);
	assert_int_equal(json_object_size(found), 1);
	assert_non_null(json_object_get(found, other));
	json_decref(found);
	/* a value with a quote is not pre-filtered, and still found */
	set(f->db, other, "name_label", "\"say \\\"hi\\\"\"");
	found = db_find(f->db, "VM", "name_label", "say \"hi\"");
	assert_int_equal(json_object_size(found), 1);
	json_decref(found);
}

/* The cache on its own: a bound that empties it, a changed text re-parsed,
 * text that is no object refused. */
static void test_record_cache(void **state)
{
	(void)state;
	struct db_cache *c = db_cache_new(2);
	const char *a = "{\"x\":1}", *b = "{\"x\":2}", *d = "{\"x\":3}";
	for (int round = 0; round < 3; round++) {
		json_t *ra = db_cache_parse(c, "a", a, strlen(a)), *rb = db_cache_parse(c, "b", b, strlen(b));
		json_t *rd = db_cache_parse(c, "d", d, strlen(d));
		assert_int_equal(json_integer_value(json_object_get(ra, "x")), 1);
		assert_int_equal(json_integer_value(json_object_get(rb, "x")), 2);
		assert_int_equal(json_integer_value(json_object_get(rd, "x")), 3);
		json_decref(ra);
		json_decref(rb);
		json_decref(rd);
	}
	json_t *ra = db_cache_parse(c, "a", b, strlen(b));
	assert_int_equal(json_integer_value(json_object_get(ra, "x")), 2);
	json_decref(ra);
	assert_null(db_cache_parse(c, "a", "[1]", 3));
	assert_null(db_cache_parse(c, "a", "{bad", 4));
	db_cache_free(c);
}

int main(void)
{
	log_init("test_db", LOG_LVL_ERROR);
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_fresh_open),
		T(test_create_fills_record),
		T(test_reverse_refs),
		T(test_events),
		T(test_events_stop),
		T(test_txn_rollback),
		T(test_txn_nested_and_hook),
		T(test_get_checked),
		T(test_uuid_collision),
		T(test_lookups),
		T(test_events_trim),
		T(test_users_and_meta),
		T(test_migration_fills_defaults),
		T(test_migration_keeps_reverse_sets),
		T(test_newer_schema_refused),
		T(test_open_failures),
		T(test_busy_fails_fast),
		T(test_disk_full),
		T(test_quarantine),
		T(test_store_hook),
		T(test_require_txn),
		T(test_cached_records),
		T(test_record_cache),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
