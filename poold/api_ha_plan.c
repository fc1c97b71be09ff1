/*
 * api_ha_plan.c - the HA calls that ask the planner (haplan.c) or change
 * what it plans for: failures to tolerate (set, computed, hypothetical),
 * pool.ha_failover_plan_exists, pool.ha_compute_vm_failover_plan,
 * pool.ha_prevent_restarts_for, VM.set_ha_restart_priority / set_order /
 * set_start_delay with XAPI's checks, and pool.ha_plan (ours: the plan
 * explained, per host failure, with the numbers).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "poold.h"
#include "util.h"
#include "xerr.h"

static json_t *bad_int(const char *field, json_int_t v)
{
	char t[32];
	snprintf(t, sizeof t, "%lld", (long long)v);
	return xerr_new(XE_INVALID_VALUE, field, t, NULL);
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

static int live_hosts(const struct place_pool *p)
{
	int n = 0;
	for (size_t h = 0; h < p->pp_nhosts; h++)
		n += p->pp_hosts[h].ph_live;
	return n;
}

/* The tolerance of the pool as it is (priorities: hypothetical ones). */
static int tolerance(struct db *db, json_t *priorities, struct haplan_why *why)
{
	struct snap_ha *sh = snap_ha_build(db, priorities);
	struct haplan_pool *hp = haplan_pool_new(&sh->sh_snap.sn_pool, sh->sh_vms, sh->sh_n);
	int k = hp ? haplan_tolerance(hp, live_hosts(&sh->sh_snap.sn_pool) - 1, why) : -1;
	haplan_pool_free(hp);
	snap_ha_free(sh);
	return k < 0 ? 0 : k;
}

static bool exists(struct db *db, int k, json_t *priorities)
{
	struct snap_ha *sh = snap_ha_build(db, priorities);
	struct haplan_pool *hp = haplan_pool_new(&sh->sh_snap.sn_pool, sh->sh_vms, sh->sh_n);
	bool ok = hp && haplan_exists(hp, k, NULL);
	haplan_pool_free(hp);
	snap_ha_free(sh);
	return ok;
}

json_t *pool_ha_compute_max_host_failures_to_tolerate(struct api_call *c)
{
	c->ac_result = json_integer(tolerance(c->ac_pd->pd_db, NULL, NULL));
	return NULL;
}

/* configuration: {VM ref: priority} overriding the records. */
json_t *pool_ha_compute_hypothetical_max_host_failures_to_tolerate(struct api_call *c)
{
	json_t *conf, *e = api_arg_obj(c, 0, "configuration", &conf);
	if (e)
		return e;
	const char *vm;
	json_t *p;
	json_object_foreach(conf, vm, p) if (haplan_priority_parse(json_string_value(p)) < 0) return xerr_new(
		XE_INVALID_VALUE, "ha_restart_priority", json_string_value(p) ? json_string_value(p) : "", NULL);
	c->ac_result = json_integer(tolerance(c->ac_pd->pd_db, conf, NULL));
	return NULL;
}

json_t *pool_ha_failover_plan_exists(struct api_call *c)
{
	json_int_t n;
	json_t *e = api_arg_int(c, 0, "n", &n);
	if (e)
		return e;
	c->ac_result = json_boolean(n <= 0 || exists(c->ac_pd->pd_db, (int)n, NULL));
	return NULL;
}

static json_t *tolerate_txn(struct db *db, void *ctx)
{
	json_t **a = ctx;
	return db_obj_set(db, json_string_value(a[0]), "ha_host_failures_to_tolerate", json_incref(a[1]));
}

/* XAPI: a value the pool cannot plan for is refused while it keeps a plan
 * (unless overcommit is allowed). */
json_t *pool_set_ha_host_failures_to_tolerate(struct api_call *c)
{
	const char *pool;
	json_int_t n;
	json_t *e = api_arg_ref(c, 0, "pool", &pool);
	if (e || (e = api_arg_int(c, 1, "value", &n)))
		return e;
	if (n < 0)
		return bad_int("ha_host_failures_to_tolerate", n);
	json_t *p = the_pool(c->ac_pd->pd_db), *rec = json_object_get(p, "rec");
	bool check = json_is_true(json_object_get(rec, "ha_enabled")) &&
		     json_integer_value(json_object_get(rec, "ha_plan_exists_for")) > 0 &&
		     !json_is_true(json_object_get(rec, "ha_allow_overcommit"));
	json_decref(p);
	if (check && !exists(c->ac_pd->pd_db, (int)n, NULL))
		return xerr_new(XE_HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN, NULL);
	json_t *a[2] = {json_string(pool), json_integer(n)};
	e = db_txn(c->ac_pd->pd_db, tolerate_txn, a);
	json_decref(a[0]);
	json_decref(a[1]);
	if (!e)
		ha_status_update(c->ac_pd, true);
	return e;
}

json_t *pool_ha_prevent_restarts_for(struct api_call *c)
{
	json_int_t s;
	json_t *e = api_arg_int(c, 0, "seconds", &s);
	if (e)
		return e;
	if (s < 0)
		return bad_int("seconds", s);
	c->ac_pd->pd_ha->hs_prevent_until = s ? (int64_t)now_ms() + s * 1000 : 0;
	log_info("HA: restarts %s", s ? "held" : "allowed again");
	if (!s)
		ha_engine_run(c->ac_pd);
	return NULL;
}

/* ------------------------------------------- where would they restart */

static json_t *placed_json(const struct place_pool *p, const struct evac_plan *pl, size_t v)
{
	const struct evac_place *x = &pl->pl_vms[v];
	if (x->ep_host != PLACE_NONE)
		return json_pack("{s:s, s:I, s:I}", "host", p->pp_hosts[x->ep_host].ph_ref, "memory",
				 (json_int_t)x->ep_memory, "host_left", (json_int_t)pl->pl_left[x->ep_host]);
	return json_pack("{s:s, s:O}", "error_code", x->ep_error ? xerr_code_of(x->ep_error) : "HA_NO_PLAN", "error",
			 x->ep_error ? x->ep_error : json_null());
}

/* failed_hosts, failed_vms -> {VM: {host} | {error_code}} (XAPI's shape,
 * with the memory and error parameters beside). */
json_t *pool_ha_compute_vm_failover_plan(struct api_call *c)
{
	json_t *hosts = json_array_get(c->ac_args, 0), *vms = json_array_get(c->ac_args, 1);
	if (!json_is_array(hosts) || !json_is_array(vms))
		return xerr_new(XE_FIELD_TYPE_ERROR, json_is_array(hosts) ? "failed_vms" : "failed_hosts", NULL);
	struct snap sn;
	json_t *e = snap_build(c->ac_pd->pd_db, NULL, vms, NULL, PLACE_START | PLACE_NO_HA, &sn);
	if (e)
		return e;
	const struct place_pool *p = &sn.sn_pool;
	struct haplan_vm *hv = xcalloc(p->pp_nvms + 1, sizeof *hv);
	bool *ex = xcalloc(p->pp_nhosts + 1, sizeof *ex);
	for (size_t i = 0; i < p->pp_nvms; i++) {
		json_t *v = db_obj_get(c->ac_pd->pd_db, p->pp_vms[i].pv_ref);
		int prio = haplan_priority_parse(jstr(v, "ha_restart_priority"));
		hv[i] = (struct haplan_vm){i, prio > 0 ? (enum haplan_priority)prio : HAPLAN_RESTART,
					   json_integer_value(json_object_get(v, "order")), PLACE_NONE};
		json_decref(v);
	}
	size_t k;
	json_t *h;
	json_array_foreach(hosts, k, h) for (size_t j = 0; j < p->pp_nhosts; j++) if (
		json_is_string(h) && strcmp(p->pp_hosts[j].ph_ref, json_string_value(h)) == 0) ex[j] = true;
	struct evac_plan *pl = haplan_restart(p, hv, p->pp_nvms, ex);
	json_t *out = json_object();
	for (size_t i = 0; pl && i < p->pp_nvms; i++)
		json_object_set_new(out, p->pp_vms[i].pv_ref, placed_json(p, pl, i));
	evacplan_free(pl);
	free(hv);
	free(ex);
	snap_free(&sn);
	c->ac_result = out;
	return NULL;
}

/* One host failing now: its protected VMs (and those waiting) placed on
 * the others, every one of them, even after one finds no place. */
static json_t *explain_failure(const struct snap_ha *sh, size_t failed)
{
	const struct place_pool *p = &sh->sh_snap.sn_pool;
	struct haplan_vm *hv = xcalloc(sh->sh_n + 1, sizeof *hv);
	bool *ex = xcalloc(p->pp_nhosts + 1, sizeof *ex);
	size_t n = 0;
	ex[failed] = true;
	for (size_t i = 0; i < sh->sh_n; i++)
		if (sh->sh_vms[i].hv_priority == HAPLAN_RESTART &&
		    (sh->sh_vms[i].hv_home == failed || sh->sh_vms[i].hv_home == PLACE_NONE))
			hv[n++] = sh->sh_vms[i];
	struct evac_plan *pl = haplan_restart(p, hv, n, ex);
	json_t *vms = json_object();
	for (size_t i = 0; pl && i < n; i++)
		json_object_set_new(vms, p->pp_vms[hv[i].hv_vm].pv_ref, placed_json(p, pl, hv[i].hv_vm));
	json_t *out = json_pack("{s:o, s:I, s:I}", "vms", vms, "placed", (json_int_t)(pl ? pl->pl_placed : 0), "failed",
				(json_int_t)(pl ? pl->pl_failed : 0));
	evacplan_free(pl);
	free(hv);
	free(ex);
	return out;
}

/* pool.ha_plan(session, host) (ours): host a host ref, or "" for each
 * live host in turn. */
json_t *pool_ha_plan(struct api_call *c)
{
	const char *host;
	json_t *e = api_arg_str(c, 0, "host", &host);
	if (e)
		return e;
	struct db *db = c->ac_pd->pd_db;
	struct snap_ha *sh = snap_ha_build(db, NULL);
	const struct place_pool *p = &sh->sh_snap.sn_pool;
	json_t *failures = json_object();
	for (size_t h = 0; h < p->pp_nhosts; h++)
		if ((*host && strcmp(p->pp_hosts[h].ph_ref, host) == 0) || (!*host && p->pp_hosts[h].ph_live))
			json_object_set_new(failures, p->pp_hosts[h].ph_ref, explain_failure(sh, h));
	if (*host && !json_object_size(failures)) {
		json_decref(failures);
		snap_ha_free(sh);
		return xerr_new(XE_HANDLE_INVALID, "host", host, NULL);
	}
	struct haplan_why why = {0};
	struct haplan_pool *hp = haplan_pool_new(p, sh->sh_vms, sh->sh_n);
	int max = hp ? haplan_tolerance(hp, live_hosts(p) - 1, &why) : -1;
	json_t *pool = the_pool(db), *rec = json_object_get(pool, "rec");
	c->ac_result = json_pack("{s:i, s:I, s:I, s:b, s:s, s:s, s:o}", "tolerates", max < 0 ? 0 : max, "wanted",
				 json_integer_value(json_object_get(rec, "ha_host_failures_to_tolerate")), "plan_exists_for",
				 json_integer_value(json_object_get(rec, "ha_plan_exists_for")), "exact", why.hw_exact,
				 "method", why.hw_exact ? "exhaustive" : "approximate", "why_not_more", why.hw_text,
				 "failures", failures);
	json_decref(pool);
	haplan_why_clear(&why);
	haplan_pool_free(hp);
	snap_ha_free(sh);
	return NULL;
}

/* ------------------------------------------------------- the VM */

struct vm_set {
	const char *vm, *field;
	json_t *value;
	bool always_run; /* set ha_always_run as well (to always_value) */
	bool always_value;
};

static json_t *vm_set_txn(struct db *db, void *ctx)
{
	struct vm_set *s = ctx;
	json_t *e = db_obj_set(db, s->vm, s->field, json_incref(s->value));
	if (!e && s->always_run)
		e = db_obj_set(db, s->vm, "ha_always_run", json_boolean(s->always_value));
	return e;
}

/* XAPI: "restart", "best-effort" or ""; making a running VM protected must
 * keep the plan; a running VM with a priority is kept running by HA. */
json_t *vm_set_ha_restart_priority(struct api_call *c)
{
	const char *vm, *prio;
	json_t *rec, *e = api_arg_ref(c, 0, "VM", &vm);
	if (e || (e = api_arg_str(c, 1, "value", &prio)) || (e = db_obj_get_checked(c->ac_pd->pd_db, "VM", vm, &rec)))
		return e;
	const char *ps = jstr(rec, "power_state");
	bool running = strcmp(ps, "Running") == 0 || strcmp(ps, "Paused") == 0;
	json_decref(rec);
	if (haplan_priority_parse(prio) < 0)
		return xerr_new(XE_INVALID_VALUE, "ha_restart_priority", prio, NULL);
	json_t *p = the_pool(c->ac_pd->pd_db), *prec = json_object_get(p, "rec");
	int k = json_is_true(json_object_get(prec, "ha_enabled")) && !json_is_true(json_object_get(prec, "ha_allow_overcommit"))
			? (int)json_integer_value(json_object_get(prec, "ha_plan_exists_for"))
			: 0;
	json_decref(p);
	if (k > 0 && running && strcmp(prio, "restart") == 0) {
		json_t *over = json_pack("{s:s}", vm, prio);
		bool ok = exists(c->ac_pd->pd_db, k, over);
		json_decref(over);
		if (!ok)
			return xerr_new(XE_HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN, NULL);
	}
	struct vm_set s = {vm, "ha_restart_priority", json_string(prio), running || !*prio, *prio != '\0'};
	e = db_txn(c->ac_pd->pd_db, vm_set_txn, &s);
	json_decref(s.value);
	return e;
}

static json_t *vm_set_nonneg(struct api_call *c, const char *field)
{
	const char *vm;
	json_int_t n;
	json_t *rec, *e = api_arg_ref(c, 0, "VM", &vm);
	if (e || (e = api_arg_int(c, 1, "value", &n)) || (e = db_obj_get_checked(c->ac_pd->pd_db, "VM", vm, &rec)))
		return e;
	json_decref(rec);
	if (n < 0)
		return bad_int(field, n);
	struct vm_set s = {vm, field, json_integer(n), false, false};
	e = db_txn(c->ac_pd->pd_db, vm_set_txn, &s);
	json_decref(s.value);
	return e;
}

json_t *vm_set_order(struct api_call *c)
{
	return vm_set_nonneg(c, "order");
}

json_t *vm_set_start_delay(struct api_call *c)
{
	return vm_set_nonneg(c, "start_delay");
}
