/*
 * txn_later.c - a record that must be written, even while another process
 * holds the pool database's lock.
 *
 * Some writes must not be lost: the end of an operation an agent already
 * carried out (its current operation, a reservation). When the database is
 * busy they are kept and tried again from the loop until they are written
 * (never blocking it); any other failure is logged and dropped. A sweep
 * repairs what no write would: a reservation without an operation.
 */
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "poold.h"
#include "util.h"
#include "xerr.h"

#define RETRY_MS 250

struct later {
	struct poold *l_pd;
	db_txn_fn l_fn;
	void *l_ctx;
	void (*l_free)(void *ctx);
	char l_what[96];
	uint64_t l_since;
};

static void try_later(struct later *l);

static void tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct later *l = arg;
	json_t *e = db_txn(l->l_pd->pd_db, l->l_fn, l->l_ctx);
	if (e && db_last_busy(l->l_pd->pd_db)) {
		json_decref(e);
		try_later(l);
		return;
	}
	if (e) {
		char *t = xerr_to_text(e);
		log_error("%s: not recorded: %s", l->l_what, t ? t : "?");
		free(t);
		json_decref(e);
	} else {
		log_info("%s: recorded after %llu ms (the database was locked)", l->l_what,
			 (unsigned long long)(now_ms() - l->l_since));
	}
	l->l_free(l->l_ctx);
	free(l);
}

static void try_later(struct later *l)
{
	struct timeval tv = {0, RETRY_MS * 1000};
	if (event_base_once(l->l_pd->pd_base, -1, EV_TIMEOUT, tick, l, &tv) < 0)
		abort(); /* the loop cannot take a timer: nothing else would work either */
}

void txn_until_done_own(struct poold *pd, db_txn_fn fn, void *ctx, void (*ctx_free)(void *), const char *what)
{
	json_t *e = db_txn(pd->pd_db, fn, ctx);
	if (!e || !db_last_busy(pd->pd_db) || !pd->pd_base) {
		if (e) {
			char *t = xerr_to_text(e);
			log_error("%s: not recorded: %s", what, t ? t : "?");
			free(t);
			json_decref(e);
		}
		ctx_free(ctx);
		return;
	}
	json_decref(e);
	struct later *l = xcalloc(1, sizeof *l);
	*l = (struct later){pd, fn, ctx, ctx_free, "", now_ms()};
	snprintf(l->l_what, sizeof l->l_what, "%s", what);
	try_later(l);
}

void txn_until_done(struct poold *pd, db_txn_fn fn, const void *ctx, size_t ctxlen, const char *what)
{
	void *copy = xmalloc(ctxlen ? ctxlen : 1);
	memcpy(copy, ctx, ctxlen);
	txn_until_done_own(pd, fn, copy, free, what);
}

/* A reservation (scheduled_to_be_resident_on) is made in the transaction
 * that begins an operation and dropped in the one that ends it; one left
 * without any current operation (its end could not be written) is stale. */
static json_t *sweep_txn(struct db *db, void *ctx)
{
	int *n = ctx;
	json_t *vms = db_find(db, "VM", NULL, NULL), *e = NULL;
	const char *k;
	json_t *v;
	json_object_foreach(vms, k, v) {
		const char *s = json_string_value(json_object_get(v, "scheduled_to_be_resident_on"));
		if (e || !s || strcmp(s, MODEL_NULL_REF) == 0 || json_object_size(json_object_get(v, "current_operations")))
			continue;
		e = db_obj_set(db, k, "scheduled_to_be_resident_on", json_string(MODEL_NULL_REF));
		(*n)++;
	}
	json_decref(vms);
	return e;
}

void txn_sweep(struct poold *pd)
{
	int n = 0;
	json_t *e = db_txn(pd->pd_db, sweep_txn, &n);
	if (!e && n)
		log_warn("%d stale VM reservations dropped (their operations had ended)", n);
	json_decref(e);
}
