/*
 * ha_restart.c - the restart engine, the pool's HA status, and the
 * admission checks of host.disable and host.evacuate.
 *
 * The engine restarts every VM HA keeps running (ha_always_run, an HA
 * priority) that is halted: after a host failure, and whenever a VM of
 * that kind ends up halted otherwise. Protected VMs first, in `order`
 * groups (ascending, negative last): the VMs of a group start in
 * parallel on the hosts the restart plan (haplan.c) gives them, and the
 * next group starts when every start of this one has answered plus the
 * group's largest start_delay (XAPI sleeps start_delay inside each start;
 * here one slow start never holds a group's other VMs). Best-effort VMs
 * follow, the same way. A restart that fails is tried again with a
 * growing backoff, a bounded number of times, and each new reason is an
 * HA_PROTECTED_VM_RESTART_FAILED message.
 *
 * The status (ha_plan_exists_for, ha_overcommitted) is recomputed by the
 * planner whenever the pool changed (an event since the last time).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "poold.h"
#include "util.h"
#include "xerr.h"

#define TRIES_PROTECTED 10
#define TRIES_BEST_EFFORT 2
#define BACKOFF_MAX_MS 60000
#define STATUS_MIN_MS 1000

static json_int_t ival(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static json_t *the_pool(struct db *db)
{
	json_t *pools = db_find(db, "pool", NULL, NULL), *p = NULL;
	void *it = json_object_iter(pools);
	if (it)
		p = json_pack("{s:s, s:O}", "ref", json_object_iter_key(it), "rec", json_object_iter_value(it));
	json_decref(pools);
	return p;
}

/* ---------------------------------------------------- messages */

struct msg_ctx {
	char name[48], cls[16], uuid[48], body[700];
	int priority;
};

static json_t *msg_txn(struct db *db, void *ctx)
{
	struct msg_ctx *m = ctx;
	return msg_add(db, m->name, m->priority, m->cls, m->uuid, m->body);
}

static void message(struct poold *pd, const char *name, int priority, const char *cls, const char *uuid,
		    const char *body)
{
	struct msg_ctx m;
	snprintf(m.name, sizeof m.name, "%s", name);
	snprintf(m.cls, sizeof m.cls, "%s", cls);
	snprintf(m.uuid, sizeof m.uuid, "%s", uuid);
	snprintf(m.body, sizeof m.body, "%s", body);
	m.priority = priority;
	txn_until_done(pd, msg_txn, &m, sizeof m, name);
}

/* ------------------------------------------------------ outcomes */

static int tries_allowed(json_t *v)
{
	return strcmp(jstr(v, "ha_restart_priority"), "restart") == 0 ? TRIES_PROTECTED : TRIES_BEST_EFFORT;
}

static void restart_failed(struct poold *pd, const char *vm, json_t *err)
{
	struct ha_state *st = pd->pd_ha;
	json_t *r = json_object_get(st->hs_vms, vm);
	if (!r) {
		r = json_pack("{s:i, s:I, s:s}", "tries", 0, "next", (json_int_t)0, "said", "");
		json_object_set_new(st->hs_vms, vm, r);
	}
	json_int_t tries = ival(r, "tries") + 1;
	int64_t backoff = tries >= 7 ? BACKOFF_MAX_MS : 1000LL << (tries - 1);
	json_object_set_new(r, "tries", json_integer(tries));
	json_object_set_new(r, "next", json_integer((json_int_t)now_ms() + backoff));
	json_t *v = db_obj_get(pd->pd_db, vm);
	char *why = xerr_to_text(err);
	bool protected_vm = strcmp(jstr(v, "ha_restart_priority"), "restart") == 0;
	log_warn("HA: restart of VM %s failed (try %lld of %d): %s", jstr(v, "name_label"), (long long)tries,
		 tries_allowed(v), why ? why : "?");
	/* one message per reason, not one per try */
	if (protected_vm && strcmp(jstr(r, "said"), xerr_code_of(err)) != 0) {
		char body[600];
		snprintf(body, sizeof body, "VM %s could not be restarted: %s%s", jstr(v, "name_label"), why ? why : "?",
			 tries >= tries_allowed(v) ? " (no more tries)" : " (it will be tried again)");
		message(pd, "HA_PROTECTED_VM_RESTART_FAILED", 2, "VM", jstr(v, "uuid"), body);
		json_object_set_new(r, "said", json_string(xerr_code_of(err)));
	}
	free(why);
	json_decref(v);
}

static void restarted(struct poold *pd, void *arg, const char *vm, const char *host, json_t *err)
{
	(void)arg;
	struct ha_state *st = pd->pd_ha;
	if (!st)
		return;
	st->hs_inflight--;
	if (err) {
		restart_failed(pd, vm, err);
	} else {
		json_object_del(st->hs_vms, vm);
		json_t *v = db_obj_get(pd->pd_db, vm), *h = db_obj_get(pd->pd_db, host);
		log_info("HA: VM %s restarted on %s (%lld ms after the last host failure)", jstr(v, "name_label"),
			 jstr(h, "name_label"), (long long)((int64_t)now_ms() - st->hs_failed_at));
		json_decref(v);
		json_decref(h);
	}
	if (st->hs_inflight == 0) {
		st->hs_next_group = (int64_t)now_ms() + st->hs_group_delay;
		if (st->hs_group_delay == 0)
			ha_engine_run(pd);
	}
}

/* --------------------------------------------------- the engine */

/* VMs HA keeps running that are halted, nothing holding them, due. */
static json_t *candidates(struct poold *pd)
{
	struct ha_state *st = pd->pd_ha;
	json_t *all = db_find(pd->pd_db, "VM", "power_state", "Halted"), *out = json_array();
	const char *ref;
	json_t *v;
	json_int_t now = (json_int_t)now_ms();
	json_object_foreach(all, ref, v) {
		json_t *r = json_object_get(st->hs_vms, ref);
		if (!json_is_true(json_object_get(v, "ha_always_run")) || *jstr(v, "ha_restart_priority") == '\0' ||
		    json_is_true(json_object_get(v, "is_a_template")) || json_is_true(json_object_get(v, "is_a_snapshot")) ||
		    strcmp(jstr(v, "scheduled_to_be_resident_on"), MODEL_NULL_REF) != 0 ||
		    json_object_size(json_object_get(v, "current_operations")) > 0)
			continue;
		if (r && (ival(r, "tries") >= tries_allowed(v) || ival(r, "next") > now))
			continue;
		json_array_append_new(out, json_string(ref));
	}
	json_decref(all);
	return out;
}

/* Start one VM of the group on its planned host (or wherever placement
 * puts it when that host refuses now). */
static void start_one(struct poold *pd, const char *vm, const char *host, json_t *plan_err)
{
	json_t *e = host ? vm_start_internal(pd, vm, host, PLACE_NO_HA, restarted, NULL) : json_incref(plan_err);
	if (e && host) {
		json_decref(e);
		e = vm_start_internal(pd, vm, NULL, PLACE_NO_HA, restarted, NULL);
	}
	if (e) {
		restart_failed(pd, vm, e);
		json_decref(e);
		return;
	}
	pd->pd_ha->hs_inflight++;
}

/* The first group of the restart order: its VMs start now. */
static void start_group(struct poold *pd, const struct snap *sn, const struct haplan_vm *hv, size_t n)
{
	struct ha_state *st = pd->pd_ha;
	const struct place_pool *p = &sn->sn_pool;
	struct evac_plan *plan = haplan_restart(p, hv, n, NULL);
	size_t *order = xcalloc(n + 1, sizeof *order);
	haplan_order(p, hv, n, order);
	const struct haplan_vm *first = &hv[order[0]];
	int64_t delay = 0;
	size_t started = 0;
	for (size_t k = 0; k < n; k++) {
		const struct haplan_vm *x = &hv[order[k]];
		if (x->hv_priority != first->hv_priority || x->hv_order != first->hv_order)
			break;
		const struct evac_place *pl = &plan->pl_vms[x->hv_vm];
		json_t *v = db_obj_get(pd->pd_db, p->pp_vms[x->hv_vm].pv_ref);
		if (ival(v, "start_delay") * 1000 > delay)
			delay = ival(v, "start_delay") * 1000;
		json_decref(v);
		start_one(pd, p->pp_vms[x->hv_vm].pv_ref, pl->ep_host == PLACE_NONE ? NULL : p->pp_hosts[pl->ep_host].ph_ref,
			  pl->ep_error);
		started++;
	}
	log_info("HA: restarting %zu %s VM(s) of order %lld (%zu placed by the plan)", started,
		 first->hv_priority == HAPLAN_RESTART ? "protected" : "best-effort", (long long)first->hv_order,
		 plan->pl_placed);
	st->hs_group_delay = delay;
	if (st->hs_inflight == 0)
		st->hs_next_group = (int64_t)now_ms() + delay;
	free(order);
	evacplan_free(plan);
}

void ha_engine_run(struct poold *pd)
{
	struct ha_state *st = pd->pd_ha;
	int64_t now = (int64_t)now_ms();
	if (!ha_on(pd) || st->hs_enabling || st->hs_inflight > 0 || now < st->hs_next_group || now < st->hs_prevent_until)
		return;
	json_t *refs = candidates(pd);
	size_t n = json_array_size(refs);
	if (n) {
		struct snap sn;
		snap_build(pd->pd_db, NULL, refs, NULL, PLACE_START | PLACE_NO_HA, &sn);
		struct haplan_vm *hv = xcalloc(n, sizeof *hv);
		for (size_t i = 0; i < n; i++) {
			json_t *v = db_obj_get(pd->pd_db, sn.sn_vms[i].pv_ref);
			hv[i] = (struct haplan_vm){i, (enum haplan_priority)haplan_priority_parse(jstr(v, "ha_restart_priority")),
						   ival(v, "order"), PLACE_NONE};
			json_decref(v);
		}
		start_group(pd, &sn, hv, n);
		free(hv);
		snap_free(&sn);
	}
	json_decref(refs);
}

/* ---------------------------------------------------- the status */

struct status_ctx {
	char pool[64];
	json_int_t exists_for;
	bool over;
};

static json_t *status_txn(struct db *db, void *ctx)
{
	struct status_ctx *s = ctx;
	return db_obj_update_new(db, s->pool, json_pack("{s:I, s:b}", "ha_plan_exists_for", s->exists_for,
						       "ha_overcommitted", s->over));
}

static int live_hosts(const struct place_pool *p)
{
	int n = 0;
	for (size_t h = 0; h < p->pp_nhosts; h++)
		n += p->pp_hosts[h].ph_live;
	return n;
}

void ha_status_update(struct poold *pd, bool force)
{
	struct ha_state *st = pd->pd_ha;
	int64_t now = (int64_t)now_ms(), ev = db_last_event(pd->pd_db);
	if (!ha_on(pd) || (!force && (now - st->hs_status_at < STATUS_MIN_MS || ev == st->hs_status_event)))
		return;
	json_t *pool = the_pool(pd->pd_db), *rec = json_object_get(pool, "rec");
	struct snap_ha *sh = snap_ha_build(pd->pd_db, NULL);
	struct haplan_pool *hp = haplan_pool_new(&sh->sh_snap.sn_pool, sh->sh_vms, sh->sh_n);
	struct haplan_why why = {0};
	int max = hp ? haplan_tolerance(hp, live_hosts(&sh->sh_snap.sn_pool) - 1, &why) : -1;
	json_int_t want = ival(rec, "ha_host_failures_to_tolerate");
	struct status_ctx s = {"", max < 0 ? 0 : (want < max ? want : max), max < want};
	snprintf(s.pool, sizeof s.pool, "%s", jstr(pool, "ref"));
	bool was_over = json_is_true(json_object_get(rec, "ha_overcommitted"));
	json_int_t was_for = ival(rec, "ha_plan_exists_for");
	if (pool && (s.exists_for != was_for || s.over != was_over)) {
		txn_until_done(pd, status_txn, &s, sizeof s, "the pool's HA status");
		log_info("HA: a plan exists for %lld host failure(s) (%d at most, %lld wanted)%s", (long long)s.exists_for,
			 max, (long long)want, s.over ? ": overcommitted" : "");
		char body[600];
		snprintf(body, sizeof body, "the pool can tolerate %d host failure(s), %lld are wanted: %s", max < 0 ? 0 : max,
			 (long long)want, why.hw_text[0] ? why.hw_text : "too little free memory");
		if (s.over && !was_over)
			message(pd, "HA_POOL_OVERCOMMITTED", 3, "Pool", jstr(rec, "uuid"), body);
		else if (s.exists_for < was_for)
			message(pd, "HA_POOL_DROP_IN_PLAN_EXISTS_FOR", 3, "Pool", jstr(rec, "uuid"), body);
	}
	haplan_why_clear(&why);
	haplan_pool_free(hp);
	snap_ha_free(sh);
	json_decref(pool);
	st->hs_status_at = now;
	st->hs_status_event = db_last_event(pd->pd_db);
}

/* ------------------------------------------------------ the tick */

static void on_engine(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct poold *pd = arg;
	if (!ha_on(pd) || pd->pd_ha->hs_enabling)
		return;
	ha_engine_run(pd);
	ha_status_update(pd, pd->pd_ha->hs_status_event < 0);
}

void ha_engine_start(struct poold *pd)
{
	struct ha_state *st = pd->pd_ha;
	st->hs_engine = event_new(pd->pd_base, -1, EV_PERSIST, on_engine, pd);
	struct timeval tv = {0, 200 * 1000};
	event_add(st->hs_engine, &tv);
}

void ha_engine_stop(struct poold *pd)
{
	if (pd->pd_ha && pd->pd_ha->hs_engine) {
		event_free(pd->pd_ha->hs_engine);
		pd->pd_ha->hs_engine = NULL;
	}
}

/* ---------------------------------------------------- admission */

/* The plan size admission keeps, 0 when none applies. */
static int admission_k(struct db *db)
{
	json_t *pool = the_pool(db), *rec = json_object_get(pool, "rec");
	int k = json_is_true(json_object_get(rec, "ha_enabled")) && !json_is_true(json_object_get(rec, "ha_allow_overcommit"))
			? (int)ival(rec, "ha_plan_exists_for")
			: 0;
	json_decref(pool);
	return k;
}

static size_t index_of(const struct place_pool *p, const char *host)
{
	for (size_t h = 0; h < p->pp_nhosts; h++)
		if (strcmp(p->pp_hosts[h].ph_ref, host) == 0)
			return h;
	return PLACE_NONE;
}

json_t *ha_check_disable(struct db *db, const char *host)
{
	int k = admission_k(db);
	if (k <= 0)
		return NULL;
	struct snap_ha *sh = snap_ha_build(db, NULL);
	const struct place_pool *p = &sh->sh_snap.sn_pool;
	bool *dis = xcalloc(p->pp_nhosts + 1, sizeof *dis);
	size_t h = index_of(p, host);
	if (h != PLACE_NONE)
		dis[h] = true;
	struct haplan_change ch = {NULL, PLACE_NONE, PLACE_NONE, false, dis, NULL};
	bool ok = haplan_admits_change(p, sh->sh_vms, sh->sh_n, k, &ch);
	free(dis);
	snap_ha_free(sh);
	return ok ? NULL : xerr_new(XE_HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN, NULL);
}

/* Under HA with failures to tolerate, XAPI evacuates only protected VMs
 * (the plan counts on the others staying put): the others are refused by
 * name (HOST_EVACUATE_VM_NOT_HA_PROTECTED, xen-api#7145); with nothing to
 * tolerate they move as without HA (#7146). */
static void refuse_unprotected(const struct place_pool *pool, struct evac_plan *plan)
{
	for (size_t i = 0; i < plan->pl_nvms; i++) {
		struct evac_place *pl = &plan->pl_vms[i];
		if (pool->pp_vms[i].pv_ha_protected)
			continue;
		if (pl->ep_error)
			json_decref(pl->ep_error);
		else
			plan->pl_placed--, plan->pl_failed++;
		pl->ep_error = xerr_new(XE_HOST_EVACUATE_VM_NOT_HA_PROTECTED, pool->pp_vms[i].pv_ref, NULL);
		pl->ep_host = PLACE_NONE;
		pl->ep_memory = 0;
	}
}

json_t *ha_check_evacuation(struct db *db, const char *host, const struct place_pool *pool, struct evac_plan *plan)
{
	json_t *p = the_pool(db), *rec = json_object_get(p, "rec");
	bool on = json_is_true(json_object_get(rec, "ha_enabled"));
	json_int_t tolerate = ival(rec, "ha_host_failures_to_tolerate");
	json_decref(p);
	if (!on)
		return NULL;
	if (tolerate > 0)
		refuse_unprotected(pool, plan);
	int k = admission_k(db);
	if (k <= 0)
		return NULL;
	struct snap_ha *sh = snap_ha_build(db, NULL);
	const struct place_pool *hp = &sh->sh_snap.sn_pool;
	size_t nh = hp->pp_nhosts, *moves = xcalloc(sh->sh_n + 1, sizeof *moves);
	bool *dis = xcalloc(nh + 1, sizeof *dis);
	size_t h = index_of(hp, host);
	if (h != PLACE_NONE)
		dis[h] = true;
	for (size_t i = 0; i < sh->sh_n; i++) {
		moves[i] = PLACE_NONE;
		const char *ref = hp->pp_vms[sh->sh_vms[i].hv_vm].pv_ref;
		for (size_t j = 0; j < plan->pl_nvms; j++)
			if (plan->pl_vms[j].ep_host != PLACE_NONE && strcmp(pool->pp_vms[j].pv_ref, ref) == 0)
				moves[i] = index_of(hp, pool->pp_hosts[plan->pl_vms[j].ep_host].ph_ref);
	}
	struct haplan_change ch = {NULL, PLACE_NONE, PLACE_NONE, false, dis, moves};
	bool ok = haplan_admits_change(hp, sh->sh_vms, sh->sh_n, k, &ch);
	free(moves);
	free(dis);
	snap_ha_free(sh);
	return ok ? NULL : xerr_new(XE_HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN, NULL);
}
