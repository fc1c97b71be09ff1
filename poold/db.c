/*
 * db.c - SQLite storage of XAPI objects, events, users (see db.h).
 *
 * Schema version 1: meta, objects, events, users. Later versions are added
 * to db_migrations[]; every migration also runs db_fill_defaults(), which
 * gives every stored record the fields the model declares, so a poold that
 * learned new fields serves complete records from an old database.
 */
#include <assert.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <sqlite3.h>
#include "db.h"
#include "db_cache.h"
#include "log.h"
#include "xerr.h"
#include "util.h"

enum db_stmt_id {
	ST_CLASS, ST_GET, ST_INSERT, ST_UPDATE, ST_DELETE, ST_EVENT, ST_BY_UUID, ST_BY_NAME,
	ST_ALL, ST_PAGE, ST_COUNT, ST_EV_SINCE, ST_USER_GET, ST_USER_SET, ST_META_GET, ST_META_SET,
	ST_TOKEN_ADD, ST_TOKEN_GET, ST_TOKEN_USE,
	ST__COUNT
};

static const char *const db_sql[ST__COUNT] = {
	[ST_CLASS] = "SELECT class FROM objects WHERE ref = ?1",
	[ST_GET] = "SELECT class, rec FROM objects WHERE ref = ?1",
	[ST_INSERT] = "INSERT INTO objects(ref, class, uuid, name, rec) VALUES (?1, ?2, ?3, ?4, ?5)",
	[ST_UPDATE] = "UPDATE objects SET name = ?2, rec = ?3 WHERE ref = ?1",
	[ST_DELETE] = "DELETE FROM objects WHERE ref = ?1",
	[ST_EVENT] = "INSERT INTO events(ts, class, op, ref, snapshot) VALUES (?1, ?2, ?3, ?4, ?5)",
	[ST_BY_UUID] = "SELECT ref FROM objects WHERE class = ?1 AND uuid = ?2",
	[ST_BY_NAME] = "SELECT ref FROM objects WHERE class = ?1 AND name = ?2",
	[ST_ALL] = "SELECT ref, rec FROM objects WHERE class = ?1",
	[ST_PAGE] = "SELECT rowid, ref, rec FROM objects WHERE class = ?1 AND rowid > ?2 ORDER BY rowid LIMIT ?3",
	[ST_COUNT] = "SELECT count(*) FROM objects WHERE class = ?1",
	[ST_EV_SINCE] = "SELECT id, ts, class, op, ref, snapshot FROM events WHERE id > ?1 ORDER BY id",
	[ST_USER_GET] = "SELECT pwhash FROM users WHERE name = ?1",
	[ST_USER_SET] = "INSERT INTO users(name, pwhash) VALUES (?1, ?2) "
			"ON CONFLICT(name) DO UPDATE SET pwhash = excluded.pwhash",
	[ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	[ST_TOKEN_ADD] = "INSERT INTO join_tokens(hash, expires) VALUES (?1, ?2)",
	[ST_TOKEN_GET] = "SELECT expires, used FROM join_tokens WHERE hash = ?1",
	[ST_TOKEN_USE] = "UPDATE join_tokens SET used = 1 WHERE hash = ?1",
	[ST_META_SET] = "INSERT INTO meta(key, value) VALUES (?1, ?2) "
			"ON CONFLICT(key) DO UPDATE SET value = excluded.value",
};

/* Records kept parsed: a large pool's VMs and their metrics fit. */
#define DB_CACHE_MAX 16384

struct db {
	bool db_was_busy; /* the last db_txn found another process holding the lock */
	bool db_shared;   /* on shared storage: one writer, held for the connection's life */
	uint64_t db_commits; /* transactions committed (durable.c waits for them to reach the disk) */
	bool (*db_guard)(void *ctx); /* may this process write now? (the master's lease) */
	void *db_guard_ctx;
	time_t db_busy_logged; /* the second it was last said (once a second at most) */
	db_store_hook db_store_fn;
	void *db_store_ctx;
	sqlite3 *db_sql;
	sqlite3_stmt *db_stmts[ST__COUNT];
	int db_depth;             /* db_txn nesting */
	bool db_txn_only;         /* changes outside db_txn are a bug (db_require_txn) */
	int64_t db_txn_last_event; /* newest event appended by the open transaction */
	void (*db_hook)(void *, int64_t);
	void *db_hook_ctx;
	struct db_cache *db_cache; /* records parsed before (db_cache.h) */
};

static sqlite3_stmt *db_stmt(struct db *db, enum db_stmt_id id)
{
	sqlite3_stmt *s = db->db_stmts[id];
	if (!s) {
		if (sqlite3_prepare_v3(db->db_sql, db_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
			log_error("db: prepare %s: %s", db_sql[id], sqlite3_errmsg(db->db_sql));
			return NULL;
		}
		db->db_stmts[id] = s;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
}

/* A change outside db_txn once the process said it makes none (db_require_txn). */
static void in_txn(const struct db *db)
{
	assert(db->db_depth > 0 || !db->db_txn_only);
	(void)db;
}

static json_t *db_internal(struct db *db, const char *what)
{
	log_error("db: %s: %s", what, sqlite3_errmsg(db->db_sql));
	return xerr_newf(XE_INTERNAL_ERROR, "database: %s: %s", what, sqlite3_errmsg(db->db_sql));
}

static int db_exec(struct db *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db->db_sql, sql, NULL, NULL, &msg) != SQLITE_OK) {
		if (sqlite3_errcode(db->db_sql) != SQLITE_BUSY) /* db_busy says so, once a second */
			log_error("db: %s: %s", sql, msg ? msg : "?");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- schema */

static int db_migrate_v1(struct db *db)
{
	return db_exec(db,
		"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
		"CREATE TABLE IF NOT EXISTS objects(ref TEXT PRIMARY KEY, class TEXT NOT NULL,"
		" uuid TEXT NOT NULL, name TEXT, rec TEXT NOT NULL);"
		"CREATE UNIQUE INDEX IF NOT EXISTS objects_uuid ON objects(class, uuid);"
		"CREATE INDEX IF NOT EXISTS objects_name ON objects(class, name);"
		"CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY AUTOINCREMENT,"
		" ts REAL NOT NULL, class TEXT NOT NULL, op TEXT NOT NULL, ref TEXT NOT NULL,"
		" snapshot TEXT);"
		"CREATE TABLE IF NOT EXISTS users(name TEXT PRIMARY KEY, pwhash TEXT NOT NULL);");
}

/* v2: records of a class in storage order, for paged reads (get_all_records
 * streams pages of "class = ? AND rowid > ?"): without it each page
 * scanned and sorted the whole class. */
static int db_migrate_v2(struct db *db)
{
	return db_exec(db, "CREATE INDEX IF NOT EXISTS objects_class ON objects(class);");
}

/* v3: one-time join tokens for agents (only their SHA-256 is kept). */
static int db_migrate_v3(struct db *db)
{
	return db_exec(db, "CREATE TABLE IF NOT EXISTS join_tokens(hash TEXT PRIMARY KEY,"
			   " expires INTEGER NOT NULL, used INTEGER NOT NULL DEFAULT 0);");
}

/* Index = the version a step migrates to. */
static int (*const db_migrations[])(struct db *) = {NULL, db_migrate_v1, db_migrate_v2, db_migrate_v3};
#define DB_SCHEMA_DDL_VERSION ((int)(sizeof db_migrations / sizeof db_migrations[0]) - 1)

int db_code_version(void)
{
	int m = model_schema_version();
	return m > DB_SCHEMA_DDL_VERSION ? m : DB_SCHEMA_DDL_VERSION;
}

/* The objects whose forward reference f->fld_inverse names ref: the
 * content of the reverse set f of ref. */
static json_t *db_members(struct db *db, const struct model_field *f, const char *ref)
{
	json_t *found = db_find(db, f->fld_target, f->fld_inverse, ref);
	json_t *out = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(found, k, v) json_array_append_new(out, json_string(k));
	json_decref(found);
	return out;
}

/* Give every stored record every field its class declares. */
static int db_fill_defaults(struct db *db)
{
	for (size_t i = 0; i < model_nclasses; i++) {
		const struct model_class *c = &model_classes[i];
		json_t *all = db_find(db, c->mc_name, NULL, NULL);
		const char *ref;
		json_t *rec;
		json_object_foreach(all, ref, rec) {
			json_t *missing = json_object();
			for (size_t j = 0; j < c->mc_nfields; j++) {
				const struct model_field *f = &c->mc_fields[j];
				if (json_object_get(rec, f->fld_name))
					continue;
				json_t *v = f->fld_type == FT_SET_REF && f->fld_inverse ? db_members(db, f, ref)
											: model_default(f);
				json_object_set_new(missing, f->fld_name, v);
			}
			json_t *e = json_object_size(missing) ? db_obj_update(db, ref, missing) : NULL;
			json_decref(missing);
			if (e) {
				json_decref(e);
				json_decref(all);
				return -1;
			}
		}
		json_decref(all);
	}
	return 0;
}

int db_schema_version(struct db *db)
{
	char *v = db_meta_get(db, "schema_version");
	int n = v ? atoi(v) : 0;
	free(v);
	return n;
}

static int db_migrate(struct db *db, char *err, size_t errlen)
{
	int have = 0;
	sqlite3_stmt *s;
	/* meta may not exist yet */
	if (sqlite3_prepare_v2(db->db_sql, "SELECT value FROM meta WHERE key='schema_version'", -1,
			       &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			have = atoi((const char *)sqlite3_column_text(s, 0));
		sqlite3_finalize(s);
	}
	int want = db_code_version();
	if (have > want) {
		snprintf(err, errlen, "database schema version %d is newer than this poold (%d)", have, want);
		return -1;
	}
	if (have == want)
		return 0;
	if (db_exec(db, "BEGIN IMMEDIATE") < 0)
		goto fail;
	db->db_depth++;
	for (int v = have + 1; v <= DB_SCHEMA_DDL_VERSION; v++)
		if (db_migrations[v](db) < 0)
			goto rollback;
	if (db_fill_defaults(db) < 0)
		goto rollback;
	char buf[16];
	snprintf(buf, sizeof buf, "%d", want);
	json_t *e = db_meta_set(db, "schema_version", buf);
	if (e) {
		json_decref(e);
		goto rollback;
	}
	db->db_depth--;
	if (db_exec(db, "COMMIT") < 0)
		goto fail;
	if (have)
		log_info("db: migrated schema %d -> %d", have, want);
	return 0;
rollback:
	db->db_depth--;
	db_exec(db, "ROLLBACK");
fail:
	snprintf(err, errlen, "schema migration %d -> %d failed: %s", have, want,
		 sqlite3_errmsg(db->db_sql));
	return -1;
}

/* A record that is not valid JSON (a disk fault, a hand edit) would make
 * every answer that splices stored text (get_all_records, event.from)
 * unparsable: at open, such records are moved to objects_bad and said
 * once, and events whose snapshot is bad are dropped. */
static int db_quarantine(struct db *db)
{
	sqlite3_stmt *s;
	json_t *bad = json_array();
	if (sqlite3_prepare_v2(db->db_sql, "SELECT ref, class, rec FROM objects", -1, &s, NULL) != SQLITE_OK) {
		json_decref(bad);
		return -1;
	}
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *rec = (const char *)sqlite3_column_text(s, 2);
		json_t *j = rec ? json_loads(rec, 0, NULL) : NULL;
		if (!json_is_object(j))
			json_array_append_new(bad, json_pack("[s,s]", (const char *)sqlite3_column_text(s, 0),
							     (const char *)sqlite3_column_text(s, 1)));
		json_decref(j);
	}
	sqlite3_finalize(s);
	int rc = 0;
	size_t i;
	json_t *b;
	json_array_foreach(bad, i, b) {
		const char *ref = json_string_value(json_array_get(b, 0));
		char *sql = sqlite3_mprintf("CREATE TABLE IF NOT EXISTS objects_bad(ref TEXT, class TEXT, rec TEXT);"
					    "INSERT INTO objects_bad SELECT ref, class, rec FROM objects WHERE ref = %Q;"
					    "DELETE FROM objects WHERE ref = %Q;",
					    ref, ref);
		rc |= db_exec(db, sql);
		sqlite3_free(sql);
		log_error("db: the %s record %s is not valid JSON: moved to table objects_bad, out of every answer",
			  json_string_value(json_array_get(b, 1)), ref);
	}
	json_decref(bad);
	rc |= db_exec(db, "DELETE FROM events WHERE snapshot IS NOT NULL AND json_valid(snapshot) = 0;");
	return rc;
}

/* Pragmas of each mode. Local: WAL with its shared index, so other
 * processes may read (and briefly lock: see db_txn). Shared storage: WAL in
 * exclusive locking mode, set before the first access so no shared-memory
 * index is ever made (other hosts could not share it); the lock is taken
 * at once and held until db_close, so no other poold, on any host, can
 * write the pool database while this one has it open. Commits are not
 * synced one by one: durable.c syncs the WAL before any answer that
 * depends on them leaves (group commit). */
static const char *const db_pragmas[2] = {
	"PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-16384;",
	"PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
	" PRAGMA cache_size=-16384; BEGIN IMMEDIATE; COMMIT;",
};

static struct db *db_open_mode(const char *path, bool create, bool shared, bool *busy, char *err, size_t errlen)
{
	if (errlen)
		err[0] = '\0';
	if (busy)
		*busy = false;
	struct db *db = xcalloc(1, sizeof *db);
	db->db_cache = db_cache_new(DB_CACHE_MAX);
	db->db_shared = shared;
	int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX;
	if (sqlite3_open_v2(path, &db->db_sql, flags, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, db->db_sql ? sqlite3_errmsg(db->db_sql) : "cannot open");
		db_close(db);
		return NULL;
	}
	/* Only poold writes here: another process holding the write lock (a
	 * backup tool, an operator's sqlite3 shell) is waited for a moment at
	 * most, never long enough to stall the event loop; the write fails
	 * with a reason and its caller decides (retry later, or answer). */
	sqlite3_busy_timeout(db->db_sql, 20);
	if (db_exec(db, db_pragmas[shared]) < 0) {
		if (busy && (sqlite3_errcode(db->db_sql) == SQLITE_BUSY || sqlite3_errcode(db->db_sql) == SQLITE_LOCKED))
			*busy = true;
		snprintf(err, errlen, "%s: %s", path,
			 busy && *busy ? "the pool database is held by another poold" : sqlite3_errmsg(db->db_sql));
		db_close(db);
		return NULL;
	}
	if (db_migrate(db, err, errlen) < 0 || db_quarantine(db) < 0) {
		if (!*err)
			snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db->db_sql));
		db_close(db);
		return NULL;
	}
	return db;
}

struct db *db_open(const char *path, bool create, char *err, size_t errlen)
{
	return db_open_mode(path, create, false, NULL, err, errlen);
}

struct db *db_open_shared(const char *path, bool *busy, char *err, size_t errlen)
{
	return db_open_mode(path, false, true, busy, err, errlen);
}

bool db_is_shared(struct db *db)
{
	return db->db_shared;
}

uint64_t db_commit_count(struct db *db)
{
	return db->db_commits;
}

void db_set_guard(struct db *db, bool (*guard)(void *ctx), void *ctx)
{
	db->db_guard = guard;
	db->db_guard_ctx = ctx;
}

int db_copy_to(struct db *db, const char *path, char *err, size_t errlen)
{
	sqlite3 *dst = NULL;
	int rc = sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	sqlite3_backup *b = rc == SQLITE_OK ? sqlite3_backup_init(dst, "main", db->db_sql, "main") : NULL;
	if (b) {
		rc = sqlite3_backup_step(b, -1);
		rc = sqlite3_backup_finish(b) == SQLITE_OK && rc == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
	} else {
		rc = SQLITE_ERROR;
	}
	/* the copy on disk before anyone counts on it */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(dst, "PRAGMA journal_mode=DELETE;", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		snprintf(err, errlen, "copying the pool database to %s: %s", path, dst ? sqlite3_errmsg(dst) : "cannot open");
	sqlite3_close(dst);
	return rc == SQLITE_OK ? 0 : -1;
}

void db_close(struct db *db)
{
	if (!db)
		return;
	for (int i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(db->db_stmts[i]);
	sqlite3_close(db->db_sql);
	db_cache_free(db->db_cache);
	free(db);
}

void db_require_txn(struct db *db)
{
	db->db_txn_only = true;
}

void db_set_store_hook(struct db *db, db_store_hook fn, void *ctx)
{
	db->db_store_fn = fn;
	db->db_store_ctx = ctx;
}

static json_t *store_hook(struct db *db, const char *cls, const char *ref, const json_t *old, json_t *rec, bool after)
{
	return db->db_store_fn ? db->db_store_fn(db, cls, ref, old, rec, after, db->db_store_ctx) : NULL;
}

void db_set_commit_hook(struct db *db, void (*hook)(void *, int64_t), void *ctx)
{
	db->db_hook = hook;
	db->db_hook_ctx = ctx;
}

/* ---------------------------------------------------------- transactions */

static json_t *db_busy(struct db *db, const char *what)
{
	db->db_was_busy = true;
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	if (t.tv_sec != db->db_busy_logged) {
		db->db_busy_logged = t.tv_sec;
		log_warn("db: %s: the pool database is locked by another process: writes wait", what);
	}
	return xerr_newf(XE_INTERNAL_ERROR,
			 "the pool database is locked by another process (%s): nothing was changed; try again", what);
}

bool db_last_busy(struct db *db)
{
	return db->db_was_busy;
}

static json_t *db_not_master(void)
{
	return xerr_newf(XE_INTERNAL_ERROR, "this poold is no longer the pool master (it stepped down, or its lease "
					    "ended): nothing was changed; the pool master is elsewhere now");
}

bool db_may_write(struct db *db)
{
	return !db->db_guard || db->db_guard(db->db_guard_ctx);
}

json_t *db_txn(struct db *db, db_txn_fn fn, void *ctx)
{
	if (!db) /* handed over (a designated master has it): a late callback writes nothing */
		return db_not_master();
	if (db->db_depth > 0)
		return fn(db, ctx); /* joins the enclosing transaction */
	db->db_was_busy = false;
	for (int attempt = 0;; attempt++) {
		if (!db_may_write(db))
			return db_not_master();
		if (db_exec(db, "BEGIN IMMEDIATE") < 0)
			return sqlite3_errcode(db->db_sql) == SQLITE_BUSY ? db_busy(db, "begin") : db_internal(db, "begin");
		db->db_depth = 1;
		db->db_txn_last_event = 0;
		json_t *e = fn(db, ctx);
		db->db_depth = 0;
		if (!e && !db_may_write(db))
			e = db_not_master(); /* the lease ended while the transaction ran */
		if (e) {
			db_exec(db, "ROLLBACK");
			return e;
		}
		if (db_exec(db, "COMMIT") == 0) {
			db->db_commits++;
			break;
		}
		/* the reason before ROLLBACK replaces it (a full disk said "cannot
		 * rollback - no transaction is active" otherwise) */
		int code = sqlite3_errcode(db->db_sql);
		json_t *why = code == SQLITE_BUSY ? NULL : db_internal(db, "commit");
		if (!sqlite3_get_autocommit(db->db_sql))
			db_exec(db, "ROLLBACK");
		if (why)
			return why;
		if (attempt >= 1)
			return db_busy(db, "commit");
		/* the function has no outside effects: running it again is safe */
	}
	if (db->db_txn_last_event && db->db_hook)
		db->db_hook(db->db_hook_ctx, db->db_txn_last_event);
	return NULL;
}

/* ---------------------------------------------------------------- events */

static double db_now(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static json_t *db_event(struct db *db, const char *cls, const char *op, const char *ref,
			const char *snapshot)
{
	in_txn(db);
	sqlite3_stmt *s = db_stmt(db, ST_EVENT);
	if (!s)
		return db_internal(db, "event");
	sqlite3_bind_double(s, 1, db_now());
	bind_text(s, 2, cls);
	bind_text(s, 3, op);
	bind_text(s, 4, ref);
	if (snapshot)
		bind_text(s, 5, snapshot);
	if (sqlite3_step(s) != SQLITE_DONE)
		return db_internal(db, "event insert");
	db->db_txn_last_event = sqlite3_last_insert_rowid(db->db_sql);
	return NULL;
}

int64_t db_last_event(struct db *db)
{
	sqlite3_stmt *s;
	int64_t id = 0;
	if (sqlite3_prepare_v2(db->db_sql, "SELECT coalesce(max(id),0) FROM events", -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			id = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	}
	/* AUTOINCREMENT keeps ids growing even when the log was trimmed empty */
	if (sqlite3_prepare_v2(db->db_sql, "SELECT seq FROM sqlite_sequence WHERE name='events'", -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int64(s, 0) > id)
			id = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	}
	return id;
}

int64_t db_first_event(struct db *db)
{
	sqlite3_stmt *s;
	int64_t id = 0;
	if (sqlite3_prepare_v2(db->db_sql, "SELECT coalesce(min(id),0) FROM events", -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			id = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	}
	return id;
}

static bool class_wanted(const json_t *classes, const char *cls)
{
	if (json_object_get(classes, "*"))
		return true;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)classes, k, v) if (strcasecmp(k, cls) == 0) return true;
	return false;
}

int db_events_since(struct db *db, int64_t since, const json_t *classes,
		    int (*fn)(void *, int64_t, double, const char *, const char *, const char *, const char *),
		    void *ctx)
{
	sqlite3_stmt *s = db_stmt(db, ST_EV_SINCE);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, since);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *cls = (const char *)sqlite3_column_text(s, 2);
		if (!class_wanted(classes, cls))
			continue;
		if (fn(ctx, sqlite3_column_int64(s, 0), sqlite3_column_double(s, 1), cls,
		       (const char *)sqlite3_column_text(s, 3), (const char *)sqlite3_column_text(s, 4),
		       (const char *)sqlite3_column_text(s, 5)))
			break;
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

void db_events_trim(struct db *db, int64_t keep)
{
	if (!db_may_write(db))
		return;
	char sql[128];
	snprintf(sql, sizeof sql, "DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - %lld",
		 (long long)keep);
	db_exec(db, sql);
}

/* --------------------------------------------------------------- objects */

bool db_obj_class(struct db *db, const char *ref, char *cls, size_t clslen)
{
	sqlite3_stmt *s = db_stmt(db, ST_CLASS);
	if (!s)
		return false;
	bind_text(s, 1, ref);
	bool found = sqlite3_step(s) == SQLITE_ROW;
	if (found)
		snprintf(cls, clslen, "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	return found;
}

/* Record and class of ref (shared: the cache's, else the caller's own);
 * NULL when absent. */
static json_t *db_load_as(struct db *db, const char *ref, char *cls, size_t clslen, bool shared)
{
	sqlite3_stmt *s = db_stmt(db, ST_GET);
	if (!s)
		return NULL;
	bind_text(s, 1, ref);
	json_t *rec = NULL;
	if (sqlite3_step(s) == SQLITE_ROW) {
		if (cls)
			snprintf(cls, clslen, "%s", (const char *)sqlite3_column_text(s, 0));
		rec = (shared ? db_cache_share : db_cache_parse)(db->db_cache, ref, (const char *)sqlite3_column_text(s, 1),
								 (size_t)sqlite3_column_bytes(s, 1));
	}
	sqlite3_reset(s);
	return rec;
}

static json_t *db_load(struct db *db, const char *ref, char *cls, size_t clslen)
{
	return db_load_as(db, ref, cls, clslen, false);
}

json_t *db_obj_get(struct db *db, const char *ref)
{
	return db_load(db, ref, NULL, 0);
}

const json_t *db_obj_peek(struct db *db, const char *ref)
{
	return db_load_as(db, ref, NULL, 0, true);
}

void db_peek_done(const json_t *rec)
{
	json_decref((json_t *)rec);
}

json_t *db_obj_get_checked(struct db *db, const char *cls, const char *ref, json_t **rec)
{
	char have[64];
	*rec = db_load(db, ref, have, sizeof have);
	if (*rec && strcmp(have, cls) == 0)
		return NULL;
	json_decref(*rec);
	*rec = NULL;
	return xerr_new(XE_HANDLE_INVALID, cls, ref, NULL);
}

char *db_obj_text(struct db *db, const char *cls, const char *ref)
{
	sqlite3_stmt *s = db_stmt(db, ST_GET);
	if (!s)
		return NULL;
	bind_text(s, 1, ref);
	char *out = NULL;
	if (sqlite3_step(s) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(s, 0), cls) == 0)
		out = xstrdup((const char *)sqlite3_column_text(s, 1));
	sqlite3_reset(s);
	return out;
}

static json_t *db_store(struct db *db, const char *ref, const char *cls, json_t *rec, const char *op)
{
	in_txn(db);
	char *text = json_dumps(rec, JSON_COMPACT);
	if (!text)
		return xerr_newf(XE_INTERNAL_ERROR, "cannot encode %s record", cls);
	sqlite3_stmt *s = db_stmt(db, ST_UPDATE);
	json_t *e = NULL;
	if (!s) {
		e = db_internal(db, "update");
		goto out;
	}
	bind_text(s, 1, ref);
	const char *name = json_string_value(json_object_get(rec, "name_label"));
	if (name)
		bind_text(s, 2, name);
	sqlite3_bind_text(s, 3, text, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE) {
		e = db_internal(db, "update");
		goto out;
	}
	sqlite3_reset(s);
	e = db_event(db, cls, op, ref, text);
out:
	free(text);
	return e;
}

/* Add (add=true) or remove ref in the set field of object target. */
static json_t *db_set_member(struct db *db, const char *target, const char *field, const char *ref, bool add)
{
	char cls[64];
	json_t *rec = db_load(db, target, cls, sizeof cls);
	if (!rec)
		return NULL; /* dangling forward reference: nothing to maintain */
	json_t *set = json_object_get(rec, field);
	if (!json_is_array(set)) {
		set = json_array();
		json_object_set_new(rec, field, set);
	}
	size_t i;
	json_t *v;
	bool changed = false;
	json_array_foreach(set, i, v) {
		if (json_is_string(v) && strcmp(json_string_value(v), ref) == 0) {
			if (add)
				goto done;
			json_array_remove(set, i);
			changed = true;
			break;
		}
	}
	if (add) {
		json_array_append_new(set, json_string(ref));
		changed = true;
	}
done:;
	json_t *e = changed ? db_store(db, target, cls, rec, "mod") : NULL;
	json_decref(rec);
	return e;
}

/* Keep the reverse sets that mirror forward field fld of class cls: the
 * object ref moved from old_target to new_target (either may be NULL). */
static json_t *db_inverse(struct db *db, const char *cls, const char *fld, const char *ref,
			  const char *old_target, const char *new_target)
{
	for (size_t i = 0; i < model_nclasses; i++) {
		const struct model_class *c = &model_classes[i];
		for (size_t j = 0; j < c->mc_nfields; j++) {
			const struct model_field *f = &c->mc_fields[j];
			if (f->fld_type != FT_SET_REF || !f->fld_inverse || strcmp(f->fld_target, cls) ||
			    strcmp(f->fld_inverse, fld))
				continue;
			const char *ends[2] = {old_target, new_target};
			for (int k = 0; k < 2; k++) {
				char tcls[64];
				if (!ends[k] || strcmp(ends[k], MODEL_NULL_REF) == 0 ||
				    !db_obj_class(db, ends[k], tcls, sizeof tcls) || strcmp(tcls, c->mc_name))
					continue;
				json_t *e = db_set_member(db, ends[k], f->fld_name, ref, k == 1);
				if (e)
					return e;
			}
		}
	}
	return NULL;
}

json_t *db_obj_create(struct db *db, const char *cls, const json_t *given, char *ref_out)
{
	in_txn(db);
	const struct model_class *c = model_class_find(cls);
	if (!c)
		return xerr_newf(XE_INTERNAL_ERROR, "unknown class %s", cls);
	json_t *rec = json_object();
	for (size_t i = 0; i < c->mc_nfields; i++) {
		const struct model_field *f = &c->mc_fields[i];
		json_t *v = json_object_get(given, f->fld_name);
		/* reverse sets start empty and are filled by their members */
		if (v && !(f->fld_type == FT_SET_REF && f->fld_inverse))
			json_object_set(rec, f->fld_name, v);
		else
			json_object_set_new(rec, f->fld_name, model_default(f));
	}
	const char *uuid = json_string_value(json_object_get(rec, "uuid"));
	char ubuf[48];
	if (!uuid || !*uuid) {
		model_new_uuid(ubuf);
		json_object_set_new(rec, "uuid", json_string(ubuf));
		uuid = json_string_value(json_object_get(rec, "uuid"));
	}
	model_new_ref(ref_out);
	json_t *e = store_hook(db, cls, ref_out, NULL, rec, false);
	if (e) {
		json_decref(rec);
		return e;
	}
	char *text = json_dumps(rec, JSON_COMPACT);
	sqlite3_stmt *s = db_stmt(db, ST_INSERT);
	if (!s || !text) {
		e = db_internal(db, "insert");
		goto out;
	}
	bind_text(s, 1, ref_out);
	bind_text(s, 2, cls);
	bind_text(s, 3, uuid);
	const char *name = json_string_value(json_object_get(rec, "name_label"));
	if (name)
		bind_text(s, 4, name);
	sqlite3_bind_text(s, 5, text, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE) {
		if (sqlite3_errcode(db->db_sql) == SQLITE_CONSTRAINT)
			e = xerr_new(XE_INVALID_VALUE, "uuid", uuid, NULL);
		else
			e = db_internal(db, "insert");
		sqlite3_reset(s);
		goto out;
	}
	sqlite3_reset(s);
	if ((e = db_event(db, cls, "add", ref_out, text)))
		goto out;
	for (size_t i = 0; i < c->mc_nfields && !e; i++)
		if (c->mc_fields[i].fld_type == FT_REF)
			e = db_inverse(db, cls, c->mc_fields[i].fld_name, ref_out, NULL,
				       json_string_value(json_object_get(rec, c->mc_fields[i].fld_name)));
	if (!e)
		e = store_hook(db, cls, ref_out, NULL, rec, true);
out:
	free(text);
	json_decref(rec);
	return e;
}

json_t *db_obj_update(struct db *db, const char *ref, const json_t *fields)
{
	char cls[64];
	json_t *rec = db_load(db, ref, cls, sizeof cls);
	if (!rec)
		return xerr_new(XE_HANDLE_INVALID, "object", ref, NULL);
	const struct model_class *c = model_class_find(cls);
	json_t *before = json_deep_copy(rec);
	const char *k;
	json_t *v;
	json_t *moved = json_object(); /* forward refs that change: field -> old target */
	json_object_foreach((json_t *)fields, k, v) {
		const struct model_field *f = c ? model_field_find(c, k) : NULL;
		const char *old = json_string_value(json_object_get(rec, k));
		if (f && f->fld_type == FT_REF && !json_equal(json_object_get(rec, k), v))
			json_object_set_new(moved, k, json_string(old ? old : MODEL_NULL_REF));
		json_object_set(rec, k, v);
	}
	json_t *e = store_hook(db, cls, ref, before, rec, false);
	bool same = !e && json_equal(before, rec);
	/* store first: an inverse may be this very object (VM.parent = self) */
	if (!e && !same)
		e = db_store(db, ref, cls, rec, "mod");
	json_object_foreach(moved, k, v) {
		if (e || same)
			break;
		e = db_inverse(db, cls, k, ref, json_string_value(v),
			       json_string_value(json_object_get(fields, k)));
	}
	if (!e && !same)
		e = store_hook(db, cls, ref, before, rec, true);
	json_decref(moved);
	json_decref(before);
	json_decref(rec);
	return e;
}

json_t *db_obj_set(struct db *db, const char *ref, const char *field, json_t *value)
{
	json_t *f = json_object();
	json_object_set_new(f, field, value);
	json_t *e = db_obj_update(db, ref, f);
	json_decref(f);
	return e;
}

json_t *db_obj_create_new(struct db *db, const char *cls, json_t *rec, char *ref_out)
{
	json_t *e = db_obj_create(db, cls, rec, ref_out);
	json_decref(rec);
	return e;
}

json_t *db_obj_update_new(struct db *db, const char *ref, json_t *fields)
{
	json_t *e = db_obj_update(db, ref, fields);
	json_decref(fields);
	return e;
}

json_t *db_obj_destroy(struct db *db, const char *ref)
{
	in_txn(db);
	char cls[64];
	json_t *rec = db_load(db, ref, cls, sizeof cls);
	if (!rec)
		return xerr_new(XE_HANDLE_INVALID, "object", ref, NULL);
	const struct model_class *c = model_class_find(cls);
	json_t *e = NULL;
	for (size_t i = 0; c && i < c->mc_nfields && !e; i++) {
		const struct model_field *f = &c->mc_fields[i];
		json_t *v = json_object_get(rec, f->fld_name);
		if (f->fld_type == FT_REF) {
			e = db_inverse(db, cls, f->fld_name, ref, json_string_value(v), NULL);
		} else if (f->fld_type == FT_SET_REF && f->fld_inverse) {
			/* members keep no reference to an object that is gone */
			json_t *members = json_deep_copy(v);
			size_t j;
			json_t *m;
			json_array_foreach(members, j, m) {
				if ((e = db_obj_set(db, json_string_value(m), f->fld_inverse, json_string(MODEL_NULL_REF))))
					break;
			}
			json_decref(members);
		}
	}
	if (!e) {
		sqlite3_stmt *s = db_stmt(db, ST_DELETE);
		bind_text(s, 1, ref);
		if (sqlite3_step(s) != SQLITE_DONE)
			e = db_internal(db, "delete");
		sqlite3_reset(s);
	}
	if (!e) {
		char *text = json_dumps(rec, JSON_COMPACT);
		e = db_event(db, cls, "del", ref, text);
		free(text);
	}
	if (!e)
		e = store_hook(db, cls, ref, rec, NULL, true);
	json_decref(rec);
	return e;
}

json_t *db_obj_touch(struct db *db, const char *ref, int64_t *event_id)
{
	char cls[64];
	json_t *rec = db_load(db, ref, cls, sizeof cls);
	if (!rec)
		return xerr_new(XE_HANDLE_INVALID, "object", ref, NULL);
	json_t *e = db_store(db, ref, cls, rec, "mod");
	json_decref(rec);
	if (!e)
		*event_id = db->db_txn_last_event;
	return e;
}

bool db_ref_by_uuid(struct db *db, const char *cls, const char *uuid, char *ref_out)
{
	sqlite3_stmt *s = db_stmt(db, ST_BY_UUID);
	if (!s)
		return false;
	bind_text(s, 1, cls);
	bind_text(s, 2, uuid);
	bool found = sqlite3_step(s) == SQLITE_ROW;
	if (found)
		snprintf(ref_out, 64, "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	return found;
}

static json_t *db_ref_list(struct db *db, enum db_stmt_id id, const char *cls, const char *arg)
{
	sqlite3_stmt *s = db_stmt(db, id);
	json_t *out = json_array();
	if (!s)
		return out;
	bind_text(s, 1, cls);
	if (arg)
		bind_text(s, 2, arg);
	while (sqlite3_step(s) == SQLITE_ROW)
		json_array_append_new(out, json_string((const char *)sqlite3_column_text(s, 0)));
	sqlite3_reset(s);
	return out;
}

json_t *db_refs_by_name(struct db *db, const char *cls, const char *name)
{
	return db_ref_list(db, ST_BY_NAME, cls, name);
}

json_t *db_refs_all(struct db *db, const char *cls)
{
	return db_ref_list(db, ST_ALL, cls, NULL);
}

int64_t db_count(struct db *db, const char *cls)
{
	sqlite3_stmt *s = db_stmt(db, ST_COUNT);
	int64_t n = 0;
	if (!s)
		return 0;
	bind_text(s, 1, cls);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return n;
}

int db_foreach_text(struct db *db, const char *cls,
		    int (*fn)(void *, const char *, const char *, int), void *ctx)
{
	sqlite3_stmt *s = db_stmt(db, ST_ALL);
	if (!s)
		return -1;
	bind_text(s, 1, cls);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (fn(ctx, (const char *)sqlite3_column_text(s, 0), (const char *)sqlite3_column_text(s, 1),
		       sqlite3_column_bytes(s, 1)))
			break;
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int db_page_text(struct db *db, const char *cls, int64_t *after, int limit,
		 int (*fn)(void *, const char *, const char *, int), void *ctx)
{
	sqlite3_stmt *s = db_stmt(db, ST_PAGE);
	if (!s)
		return -1;
	bind_text(s, 1, cls);
	sqlite3_bind_int64(s, 2, *after);
	sqlite3_bind_int(s, 3, limit);
	int rc, n = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*after = sqlite3_column_int64(s, 0);
		n++;
		fn(ctx, (const char *)sqlite3_column_text(s, 1), (const char *)sqlite3_column_text(s, 2),
		   sqlite3_column_bytes(s, 2));
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? n : -1;
}

struct db_each_ctx {
	struct db *db;
	const char *field, *value;
	char *quoted; /* "value" as it appears in a record's text, or NULL */
	size_t qlen;
	db_each_fn fn;
	void *ctx;
};

/* A value that jansson writes as it is (printable ASCII, no quote or
 * backslash) appears quoted in the text of any record holding it: a record
 * whose text lacks it is skipped without being parsed. */
static char *db_find_quoted(const char *value, size_t *len)
{
	if (!value)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)value; *p; p++)
		if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\')
			return NULL;
	*len = strlen(value) + 2;
	char *q = xmalloc(*len + 1);
	snprintf(q, *len + 1, "\"%s\"", value);
	return q;
}

static int db_each_one(void *ctx, const char *ref, const char *text, int len)
{
	struct db_each_ctx *f = ctx;
	if (f->quoted && !memmem(text, (size_t)len, f->quoted, f->qlen))
		return 0;
	json_t *rec = db_cache_share(f->db->db_cache, ref, text, (size_t)len);
	if (!rec)
		return 0;
	const char *v = f->field ? json_string_value(json_object_get(rec, f->field)) : NULL;
	int stop = !f->field || (v && strcmp(v, f->value) == 0) ? f->fn(f->ctx, ref, rec) : 0;
	json_decref(rec);
	return stop;
}

int db_each(struct db *db, const char *cls, const char *field, const char *value, db_each_fn fn, void *ctx)
{
	struct db_each_ctx f = {db, field, value, NULL, 0, fn, ctx};
	if (field)
		f.quoted = db_find_quoted(value, &f.qlen);
	int rc = db_foreach_text(db, cls, db_each_one, &f);
	free(f.quoted);
	return rc;
}

static int db_find_add(void *ctx, const char *ref, const json_t *rec)
{
	json_object_set_new(ctx, ref, json_deep_copy(rec));
	return 0;
}

json_t *db_find(struct db *db, const char *cls, const char *field, const char *value)
{
	json_t *out = json_object();
	db_each(db, cls, field, value, db_find_add, out);
	return out;
}

/* ----------------------------------------------------------- users, meta */

json_t *db_user_set(struct db *db, const char *name, const char *pwhash)
{
	sqlite3_stmt *s = db_stmt(db, ST_USER_SET);
	if (!s)
		return db_internal(db, "user");
	bind_text(s, 1, name);
	bind_text(s, 2, pwhash);
	json_t *e = sqlite3_step(s) == SQLITE_DONE ? NULL : db_internal(db, "user set");
	sqlite3_reset(s);
	return e;
}

static char *db_scalar(struct db *db, enum db_stmt_id id, const char *key)
{
	sqlite3_stmt *s = db_stmt(db, id);
	if (!s)
		return NULL;
	bind_text(s, 1, key);
	char *out = NULL;
	if (sqlite3_step(s) == SQLITE_ROW)
		out = xstrdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	return out;
}

json_t *db_token_add(struct db *db, const char *hash, int64_t expires)
{
	sqlite3_stmt *s = db_stmt(db, ST_TOKEN_ADD);
	if (!s)
		return db_internal(db, "token");
	bind_text(s, 1, hash);
	sqlite3_bind_int64(s, 2, expires);
	json_t *e = sqlite3_step(s) == SQLITE_DONE ? NULL : db_internal(db, "token add");
	sqlite3_reset(s);
	return e;
}

json_t *db_token_use(struct db *db, const char *hash, int64_t now)
{
	sqlite3_stmt *s = db_stmt(db, ST_TOKEN_GET);
	if (!s)
		return db_internal(db, "token");
	bind_text(s, 1, hash);
	const char *why = NULL;
	if (sqlite3_step(s) != SQLITE_ROW)
		why = "the join token is unknown";
	else if (sqlite3_column_int(s, 1))
		why = "the join token was used already (tokens are one-time)";
	else if (sqlite3_column_int64(s, 0) < now)
		why = "the join token has expired";
	sqlite3_reset(s);
	if (why)
		return xerr_new(XE_PERMISSION_DENIED, why, NULL);
	s = db_stmt(db, ST_TOKEN_USE);
	bind_text(s, 1, hash);
	json_t *e = sqlite3_step(s) == SQLITE_DONE ? NULL : db_internal(db, "token use");
	sqlite3_reset(s);
	return e;
}

char *db_user_hash(struct db *db, const char *name)
{
	return db_scalar(db, ST_USER_GET, name);
}

char *db_meta_get(struct db *db, const char *key)
{
	return db_scalar(db, ST_META_GET, key);
}

json_t *db_meta_set(struct db *db, const char *key, const char *value)
{
	sqlite3_stmt *s = db_stmt(db, ST_META_SET);
	if (!s)
		return db_internal(db, "meta");
	bind_text(s, 1, key);
	bind_text(s, 2, value);
	json_t *e = sqlite3_step(s) == SQLITE_DONE ? NULL : db_internal(db, "meta set");
	sqlite3_reset(s);
	return e;
}
