/*
 * db.h - poold's state: every XAPI object, the event log and the users, in
 * SQLite (WAL).
 *
 * Records are stored whole, as compact JSON text carrying every field of
 * their class (model.h), so reads splice stored text into responses without
 * re-encoding. Every mutation runs inside db_txn(): one transaction, a
 * function with no effects outside the database (it may be run again if
 * the store asks for a retry), and every object change appends an event.
 * Reverse-reference sets (VM.VBDs, SR.VDIs, ...) are maintained here, so
 * callers only ever set the forward reference.
 *
 * Functions that can fail return an XAPI error value (xerr.h) or NULL.
 */
#ifndef DB_H
#define DB_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include "model.h"

struct db;

/* Open (creating when create is true) and migrate to the current schema.
 * NULL with a reason in err. */
struct db *db_open(const char *path, bool create, char *err, size_t errlen);
void db_close(struct db *db);
/* The pool database on shared storage (an SR every master-capable host
 * sees): opened only if no other process holds it, and held (SQLite's
 * exclusive lock) until db_close. NULL with *busy set when another poold
 * has it. */
struct db *db_open_shared(const char *path, bool *busy, char *err, size_t errlen);
bool db_is_shared(struct db *db);
/* A consistent copy of the database into path (a new file): 0 or -1. */
int db_copy_to(struct db *db, const char *path, char *err, size_t errlen);
/* Transactions committed since open (durable.c's group commit). */
uint64_t db_commit_count(struct db *db);
/* guard(ctx) is asked before each transaction and again before its commit:
 * false refuses it (nothing written). The master's lease (mfo.c). */
void db_set_guard(struct db *db, bool (*guard)(void *ctx), void *ctx);
bool db_may_write(struct db *db);
int db_schema_version(struct db *db);
/* The schema version this code writes: table layout and model fields. */
int db_code_version(void);

/* Called after each commit that appended events, with the newest event id. */
void db_set_commit_hook(struct db *db, void (*hook)(void *ctx, int64_t last_event), void *ctx);

/* Called for every record written, inside its transaction: before it is
 * stored (after=false: rec may be changed, for fields derived from it)
 * and after (after=true: other objects may be written). old is NULL on
 * create; rec is NULL on destroy (called after only). An update that
 * changes nothing is not stored, and makes no event. */
typedef json_t *(*db_store_hook)(struct db *db, const char *cls, const char *ref, const json_t *old, json_t *rec,
				 bool after, void *ctx);
void db_set_store_hook(struct db *db, db_store_hook fn, void *ctx);
/* From now on every change is made inside db_txn (asserted in the
 * sanitizer build and every build without NDEBUG): poold calls it at
 * start; unit tests that drive the record primitives one by one do not. */
void db_require_txn(struct db *db);

typedef json_t *(*db_txn_fn)(struct db *db, void *ctx);
/* Run fn in one transaction: commit when it returns NULL, roll back and
 * return its error otherwise. */
json_t *db_txn(struct db *db, db_txn_fn fn, void *ctx);
/* Did the last db_txn fail because another process holds the database's
 * write lock? (Then nothing was written, and the same transaction may
 * simply be run again later.) */
bool db_last_busy(struct db *db);

/* --- objects --- */
/* Class name of ref into cls (>= 32 bytes); false when no such object. */
bool db_obj_class(struct db *db, const char *ref, char *cls, size_t clslen);
/* The record (new reference) or NULL. */
json_t *db_obj_get(struct db *db, const char *ref);
/* The record shared with the cache of parsed records: read it, never
 * change it; db_peek_done when finished. NULL when absent. The cheap read
 * for hot paths that only look (a heartbeat reads every VM of its host). */
const json_t *db_obj_peek(struct db *db, const char *ref);
void db_peek_done(const json_t *rec);
/* Record of ref if it is of class cls, else HANDLE_INVALID [cls, ref]. */
json_t *db_obj_get_checked(struct db *db, const char *cls, const char *ref, json_t **rec);
/* Stored text of a record of class cls (malloc'ed) or NULL. */
char *db_obj_text(struct db *db, const char *cls, const char *ref);
/* Create: rec may be partial, missing fields get defaults; uuid is
 * generated when empty; ref_out (>= 48 bytes) receives the new ref.
 * rec is not stolen. */
json_t *db_obj_create(struct db *db, const char *cls, const json_t *rec, char *ref_out);
/* Set fields given in a partial record (one "mod" event). */
json_t *db_obj_update(struct db *db, const char *ref, const json_t *fields);
json_t *db_obj_set(struct db *db, const char *ref, const char *field, json_t *value_stolen);
/* The same as db_obj_create / db_obj_update, taking the record (stolen). */
json_t *db_obj_create_new(struct db *db, const char *cls, json_t *rec_stolen, char *ref_out);
json_t *db_obj_update_new(struct db *db, const char *ref, json_t *fields_stolen);
json_t *db_obj_destroy(struct db *db, const char *ref);
/* Append a "mod" event with the current record (event.inject). */
json_t *db_obj_touch(struct db *db, const char *ref, int64_t *event_id);

/* Lookups. */
bool db_ref_by_uuid(struct db *db, const char *cls, const char *uuid, char *ref_out);
json_t *db_refs_by_name(struct db *db, const char *cls, const char *name);
json_t *db_refs_all(struct db *db, const char *cls);
int64_t db_count(struct db *db, const char *cls);
/* One page of the records of cls in storage order: those after position
 * *after (0 to start), at most limit of them; *after moves to the last one
 * given. Returns how many fn saw, -1 on error. Pages are separate queries:
 * nothing stays open between them. */
int db_page_text(struct db *db, const char *cls, int64_t *after, int limit,
		 int (*fn)(void *ctx, const char *ref, const char *text, int len), void *ctx);
/* Records of a class whose field equals a string value (e.g. VBDs of a VM);
 * the result is an object ref -> record. */
json_t *db_find(struct db *db, const char *cls, const char *field, const char *value);
/* The same records one by one, shared with the cache (as db_obj_peek: fn
 * reads, never changes or keeps them); field NULL: every record of cls. fn
 * returns non-zero to stop. -1 on a database error. */
typedef int (*db_each_fn)(void *ctx, const char *ref, const json_t *rec);
int db_each(struct db *db, const char *cls, const char *field, const char *value, db_each_fn fn, void *ctx);
/* Calls fn for every record of cls with the stored text; stops when fn
 * returns non-zero. */
int db_foreach_text(struct db *db, const char *cls,
		    int (*fn)(void *ctx, const char *ref, const char *text, int len), void *ctx);

/* --- events --- */
int64_t db_last_event(struct db *db);
int64_t db_first_event(struct db *db);
/* Events with id > since, oldest first, for the classes in the
 * classes set ({"VM":true} or {"*":true}; class names compared
 * case-insensitively); calls fn per event. */
int db_events_since(struct db *db, int64_t since, const json_t *classes,
		    int (*fn)(void *ctx, int64_t id, double ts, const char *cls, const char *op,
			      const char *ref, const char *snapshot),
		    void *ctx);
/* Drop events so at most keep remain. */
void db_events_trim(struct db *db, int64_t keep);

/* --- users --- */
json_t *db_user_set(struct db *db, const char *name, const char *pwhash);
/* Stored hash (malloc'ed) or NULL. */
char *db_user_hash(struct db *db, const char *name);

/* --- join tokens (by SHA-256) --- */
json_t *db_token_add(struct db *db, const char *hash, int64_t expires);
/* Mark used; PERMISSION_DENIED [reason] when unknown, used or expired. */
json_t *db_token_use(struct db *db, const char *hash, int64_t now);

/* --- meta --- */
char *db_meta_get(struct db *db, const char *key);
json_t *db_meta_set(struct db *db, const char *key, const char *value);

#endif
