/*
 * db_cache.c - parsed records, kept by ref and checked against their text
 * (db_cache.h). A deep copy of a parsed record costs about a quarter of
 * parsing it (a 92-field VM record: 10 against 39 us); a heartbeat reads
 * every VM of its host two or three times.
 */
#include <string.h>
#include "db_cache.h"
#include "util.h"

struct db_cache {
	json_t *dc_map; /* ref -> [text, record] */
	size_t dc_max;
};

struct db_cache *db_cache_new(size_t max)
{
	struct db_cache *c = xcalloc(1, sizeof *c);
	c->dc_map = json_object();
	c->dc_max = max;
	return c;
}

void db_cache_free(struct db_cache *c)
{
	if (!c)
		return;
	json_decref(c->dc_map);
	free(c);
}

json_t *db_cache_share(struct db_cache *c, const char *ref, const char *text, size_t len)
{
	json_t *e = json_object_get(c->dc_map, ref);
	json_t *t = json_array_get(e, 0);
	if (t && json_string_length(t) == len && memcmp(json_string_value(t), text, len) == 0)
		return json_incref(json_array_get(e, 1));
	json_t *rec = json_loadb(text, len, 0, NULL);
	if (!json_is_object(rec)) {
		json_decref(rec);
		json_object_del(c->dc_map, ref);
		return NULL;
	}
	if (json_object_size(c->dc_map) >= c->dc_max)
		json_object_clear(c->dc_map);
	/* a record shared before stays valid for whoever holds it */
	json_object_set_new(c->dc_map, ref, json_pack("[s%,O]", text, len, rec));
	return rec;
}

json_t *db_cache_parse(struct db_cache *c, const char *ref, const char *text, size_t len)
{
	json_t *shared = db_cache_share(c, ref, text, len);
	json_t *own = json_deep_copy(shared);
	json_decref(shared);
	return own;
}
