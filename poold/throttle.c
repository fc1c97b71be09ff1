/*
 * throttle.c - how long a login attempt must wait after failures (see
 * poold.h). No clock and no I/O: the time is a parameter, so every rule is
 * tested without waiting.
 *
 * Failures are counted per client address and per user name. After the
 * n-th failure in a row the key waits base x 2^(n-1) (at most max); a
 * success clears it, and an entry quiet for 20 x max is forgotten. An
 * attempt waits for its address, and for its user only when its address
 * has failed lately: many addresses guessing one password are slowed down
 * together, while the owner, from an address that has not failed, is never
 * locked out by them.
 */
#include <stdlib.h>
#include <string.h>
#include "poold.h"
#include "util.h"

#define THROTTLE_FORGET_FACTOR 20

int64_t throttle_delay(const struct throttle_policy *p, int failures)
{
	if (failures <= 0 || p->tp_base_ms <= 0)
		return 0;
	int64_t d = p->tp_base_ms;
	for (int i = 1; i < failures && d < p->tp_max_ms; i++)
		d *= 2;
	return d < p->tp_max_ms ? d : p->tp_max_ms;
}

void throttle_fail(struct throttle_entry *e, const struct throttle_policy *p, int64_t now)
{
	if (throttle_expired(e, p, now))
		*e = (struct throttle_entry){0};
	e->te_failures++;
	e->te_last_ms = now;
	e->te_until_ms = now + throttle_delay(p, e->te_failures);
}

bool throttle_expired(const struct throttle_entry *e, const struct throttle_policy *p, int64_t now)
{
	return e->te_failures == 0 || now - e->te_last_ms > THROTTLE_FORGET_FACTOR * p->tp_max_ms;
}

int64_t throttle_wait(const struct throttle_entry *addr, const struct throttle_entry *user,
		      const struct throttle_policy *p, int64_t now)
{
	if (throttle_expired(addr, p, now))
		return 0; /* an address that has not failed lately waits for no one */
	int64_t until = addr->te_until_ms;
	if (!throttle_expired(user, p, now) && user->te_until_ms > until)
		until = user->te_until_ms;
	return until > now ? until - now : 0;
}

/* ---- the table: key -> [failures, last, until] ---- */

struct throttle *throttle_new(const struct throttle_policy *p, size_t max_keys)
{
	struct throttle *t = xcalloc(1, sizeof *t);
	t->th_policy = *p;
	t->th_max_keys = max_keys;
	t->th_map = json_object();
	if (!t->th_map) {
		free(t);
		return NULL;
	}
	return t;
}

void throttle_free(struct throttle *t)
{
	if (!t)
		return;
	json_decref(t->th_map);
	free(t);
}

struct throttle_entry throttle_get(const struct throttle *t, const char *key)
{
	json_t *v = json_object_get(t->th_map, key);
	return (struct throttle_entry){(int)json_integer_value(json_array_get(v, 0)), json_integer_value(json_array_get(v, 1)),
				       json_integer_value(json_array_get(v, 2))};
}

/* Room for one more key: forgotten entries go first, then the quietest. */
static void throttle_make_room(struct throttle *t, int64_t now)
{
	const char *k;
	json_t *v;
	void *tmp;
	json_object_foreach_safe(t->th_map, tmp, k, v) {
		struct throttle_entry e = throttle_get(t, k);
		if (throttle_expired(&e, &t->th_policy, now))
			json_object_del(t->th_map, k);
	}
	while (json_object_size(t->th_map) >= t->th_max_keys) {
		const char *oldest = NULL;
		int64_t at = INT64_MAX;
		json_object_foreach(t->th_map, k, v) {
			int64_t last = json_integer_value(json_array_get(v, 1));
			if (last < at) {
				at = last;
				oldest = k;
			}
		}
		if (!oldest)
			break;
		json_object_del(t->th_map, oldest);
	}
}

void throttle_record(struct throttle *t, const char *key, bool ok, int64_t now)
{
	if (ok) {
		json_object_del(t->th_map, key);
		return;
	}
	struct throttle_entry e = throttle_get(t, key);
	throttle_fail(&e, &t->th_policy, now);
	if (!json_object_get(t->th_map, key) && json_object_size(t->th_map) >= t->th_max_keys)
		throttle_make_room(t, now);
	json_object_set_new(t->th_map, key,
			    json_pack("[i, I, I]", e.te_failures, (json_int_t)e.te_last_ms, (json_int_t)e.te_until_ms));
}

int64_t throttle_wait_for(const struct throttle *t, const char *addr_key, const char *user_key, int64_t now)
{
	struct throttle_entry a = throttle_get(t, addr_key), u = throttle_get(t, user_key);
	return throttle_wait(&a, &u, &t->th_policy, now);
}
