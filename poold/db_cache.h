/*
 * db_cache.h - parsed records, kept by ref and checked against their text.
 *
 * Every read of a record goes through SQLite and gets the stored text; the
 * cache only saves parsing it again. An entry is used when its text is
 * byte for byte the text read now, so it needs no invalidation: a write by
 * this process or another, a rolled back transaction or a restored
 * database simply makes the texts differ. A caller gets the record shared
 * (read only) or a copy of its own.
 */
#ifndef DB_CACHE_H
#define DB_CACHE_H

#include <stddef.h>
#include <jansson.h>

struct db_cache;

/* A cache of at most max records (past that it starts again empty). */
struct db_cache *db_cache_new(size_t max);
void db_cache_free(struct db_cache *c);

/* The record ref whose stored text is text[0, len), shared with the cache
 * (a new reference the caller must not change); NULL when the text is not
 * a JSON object. */
json_t *db_cache_share(struct db_cache *c, const char *ref, const char *text, size_t len);
/* The same record as an object of the caller's own. */
json_t *db_cache_parse(struct db_cache *c, const char *ref, const char *text, size_t len);

#endif
