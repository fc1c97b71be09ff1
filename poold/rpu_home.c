/*
 * rpu_home.c - what the run suspends and restores, and the VMs going home.
 *
 * Suspended for the run, journaled first (saved: {ha, auto_poweron}) so
 * that a poold that dies in between still puts them back:
 * - HA (Xen Orchestra disables it the same way, #6057): its statefile SR,
 *   timeout, failures to tolerate and overcommit, enabled again at the end
 *   with the same settings through pool.enable_ha;
 * - pool.other_config:auto_poweron, set "false" meanwhile (XO #10104: VMs
 *   started on a rebooted host broke later evacuations), then put back as
 *   it was (absent stays absent).
 *
 * Going home: the plan is upgrade_home_plan()'s over a fresh snapshot; the
 * first wave's moves start (at most batch at once), and when they have all
 * ended the plan is made again from where the VMs are then. A move that
 * fails counts against its VM (UPGRADE_EVAC_TRIES); what cannot go home is
 * reported in home.stuck, and the upgrade still succeeds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "rpu.h"
#include "util.h"
#include "xerr.h"

/* ------------------------------------------------------ auto power-on */

struct apo_ctx {
	const char *pool;
	json_t *value; /* NULL: remove the key */
};

static json_t *apo_txn(struct db *db, void *ctx)
{
	struct apo_ctx *a = ctx;
	json_t *p = db_obj_get(db, a->pool);
	json_t *oc = json_deep_copy(json_object_get(p, "other_config"));
	json_decref(p);
	if (!oc)
		oc = json_object();
	if (a->value)
		json_object_set(oc, "auto_poweron", a->value);
	else
		json_object_del(oc, "auto_poweron");
	return db_obj_set(db, a->pool, "other_config", oc);
}

static void apo_set(struct poold *pd, json_t *value)
{
	struct apo_ctx a = {pd->pd_pool_ref, value};
	json_t *e = db_txn(pd->pd_db, apo_txn, &a);
	if (e) {
		log_error("rolling upgrade: pool.other_config:auto_poweron not written");
		json_decref(e);
	}
}

/* ------------------------------------------------------ suspend */

static void suspended(struct rpu *r, json_t *err, json_t *result, const char *arg)
{
	(void)result;
	r->rp_busy = false;
	if (err) {
		char *t = xerr_to_text(err), why[300];
		snprintf(why, sizeof why, "%s failed: %s", arg, t ? t : "?");
		free(t);
		rpu_fail(r, -1, why, NULL);
	}
	r->rp_dirty = true;
}

/* What HA and auto power-on are now (recorded once, before any change). */
static json_t *what_runs(struct poold *pd)
{
	json_t *pool = rpu_pool(pd, NULL), *conf = pd->pd_ha ? pd->pd_ha->hs_conf : NULL;
	json_t *ha = conf ? json_pack("{s:s, s:I, s:I, s:b}", "sr", jstr(conf, "sr"), "timeout", rpu_int(conf, "timeout"),
				      "ntol", rpu_int(pool, "ha_host_failures_to_tolerate"), "overcommit",
				      json_is_true(json_object_get(pool, "ha_allow_overcommit")))
			  : json_null();
	json_t *apo = json_object_get(json_object_get(pool, "other_config"), "auto_poweron");
	json_t *saved = json_pack("{s:o, s:O}", "ha", ha, "auto_poweron", apo ? apo : json_null());
	json_decref(pool);
	return saved;
}

bool rpu_suspend(struct rpu *r)
{
	struct poold *pd = r->rp_pd;
	if (!json_object_get(r->rp_st, "saved")) {
		json_object_set_new(r->rp_st, "saved", what_runs(pd));
		rpu_save(r); /* journaled before anything is turned off */
	}
	if (ha_on(pd) && !pd->pd_ha->hs_enabling) {
		log_info("rolling upgrade: HA suspended until the end");
		r->rp_busy = true;
		rpu_call(r, "pool.disable_ha", json_array(), suspended, "pool.disable_ha");
		return false;
	}
	json_t *pool = rpu_pool(pd, NULL);
	bool apo_off = strcmp(jstr(json_object_get(pool, "other_config"), "auto_poweron"), "false") == 0;
	json_decref(pool);
	if (!apo_off) {
		json_t *f = json_string("false");
		apo_set(pd, f);
		json_decref(f);
	}
	return strcmp(jstr(r->rp_st, "stage"), "suspend") == 0; /* a failure moved it on */
}

/* ------------------------------------------------------ restore */

static void ha_restored(struct rpu *r, json_t *err, json_t *result, const char *arg)
{
	(void)result, (void)arg;
	r->rp_busy = false;
	json_t *saved = json_object_get(r->rp_st, "saved");
	if (err) {
		json_object_set_new(saved, "ha_tries", json_integer(rpu_int(saved, "ha_tries") + 1));
		json_object_set(saved, "ha_error", err);
		log_warn("rolling upgrade: HA not enabled again yet (try %lld)", (long long)rpu_int(saved, "ha_tries"));
	}
	r->rp_dirty = true;
}

struct tol_ctx {
	const char *pool;
	json_int_t ntol;
	bool overcommit;
};

static json_t *tol_txn(struct db *db, void *ctx)
{
	struct tol_ctx *t = ctx;
	return db_obj_update_new(db, t->pool, json_pack("{s:I, s:b}", "ha_host_failures_to_tolerate", t->ntol,
						       "ha_allow_overcommit", t->overcommit));
}

/* HA as it was: enabled with the same SR and timeout, then the same
 * failures to tolerate and overcommit. true once done (or given up). */
static bool ha_back(struct rpu *r, json_t *saved)
{
	struct poold *pd = r->rp_pd;
	json_t *ha = json_object_get(saved, "ha");
	if (!json_is_object(ha) || json_is_true(json_object_get(saved, "ha_restored")))
		return true;
	if (rpu_int(saved, "ha_tries") >= 3) {
		log_error("rolling upgrade: HA could not be enabled again: enable it by hand (pool-ha-enable)");
		json_object_set_new(saved, "ha_restored", json_false());
		return true;
	}
	if (!ha_on(pd)) {
		char t[32];
		snprintf(t, sizeof t, "%lld", (long long)rpu_int(ha, "timeout"));
		r->rp_busy = true;
		rpu_call(r, "pool.enable_ha", json_pack("[[s], {s:s}]", jstr(ha, "sr"), "timeout", t), ha_restored,
			 "pool.enable_ha");
		return false;
	}
	if (pd->pd_ha->hs_enabling)
		return false;
	struct tol_ctx tc = {pd->pd_pool_ref, rpu_int(ha, "ntol"), json_is_true(json_object_get(ha, "overcommit"))};
	json_decref(db_txn(pd->pd_db, tol_txn, &tc));
	ha_status_update(pd, true);
	json_object_set_new(saved, "ha_restored", json_true());
	json_object_del(saved, "ha_error");
	log_info("rolling upgrade: HA enabled again as it was");
	return true;
}

bool rpu_restore(struct rpu *r)
{
	json_t *saved = json_object_get(r->rp_st, "saved");
	if (!saved)
		return true; /* stopped before anything was suspended */
	r->rp_restoring = true;
	if (!ha_back(r, saved))
		return false;
	r->rp_restoring = false;
	json_t *apo = json_object_get(saved, "auto_poweron");
	apo_set(r->rp_pd, json_is_string(apo) ? apo : NULL);
	r->rp_dirty = true;
	return true;
}

/* ------------------------------------------------------ going home */

struct home_arg {
	char vm[64];
	bool park;
};

static json_t *home_state(struct rpu *r)
{
	json_t *h = json_object_get(r->rp_st, "home");
	if (!h) {
		h = json_pack("{s:i, s:{}, s:i, s:{}}", "round", 0, "tries", "moved", 0, "stuck");
		json_object_set_new(r->rp_st, "home", h);
	}
	return h;
}

static void moved(struct poold *pd, void *arg, json_t *err, json_t *stats)
{
	(void)stats;
	struct home_arg *a = arg;
	struct rpu *r = pd->pd_rpu ? pd->pd_rpu->rs_run : NULL;
	if (r) {
		json_t *h = home_state(r), *tries = json_object_get(h, "tries");
		r->rp_home_flight--;
		if (err)
			json_object_set_new(tries, a->vm, json_integer(rpu_int(tries, a->vm) + 1));
		else if (!a->park)
			json_object_set_new(h, "moved", json_integer(rpu_int(h, "moved") + 1));
		r->rp_dirty = true;
	}
	free(a);
}

/* The running VMs (refs) and, per VM, its host and home as indexes. */
static json_t *running_vms(struct db *db)
{
	json_t *all = db_find(db, "VM", "power_state", "Running"), *out = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(all, k, v) if (!json_is_true(json_object_get(v, "is_control_domain")))
		json_array_append_new(out, json_string(k));
	json_decref(all);
	return out;
}

static size_t index_of(const struct place_pool *p, const char *host)
{
	for (size_t h = 0; h < p->pp_nhosts; h++)
		if (strcmp(p->pp_hosts[h].ph_ref, host) == 0)
			return h;
	return PLACE_NONE;
}

static void start_move(struct rpu *r, const struct place_pool *p, const struct upgrade_move *m)
{
	struct poold *pd = r->rp_pd;
	struct home_arg *a = xcalloc(1, sizeof *a);
	snprintf(a->vm, sizeof a->vm, "%s", p->pp_vms[m->hm_vm].pv_ref);
	a->park = m->hm_park;
	json_t *opts = json_pack("{s:s}", "live", "true");
	if (*jstr(r->rp_st, "network"))
		json_object_set_new(opts, "network", json_string(jstr(r->rp_st, "network")));
	r->rp_home_flight++;
	json_t *e = migrate_start(pd, NULL, a->vm, p->pp_hosts[m->hm_to].ph_ref, opts, NULL, moved, NULL, a);
	json_decref(opts);
	if (e != API_PENDING) {
		moved(pd, a, e, NULL);
		json_decref(e);
	}
}

/* One round: plan from where the VMs are, start its first wave. true
 * when there is nothing left to move. */
static bool round_start(struct rpu *r, json_t *hs)
{
	struct poold *pd = r->rp_pd;
	json_t *refs = running_vms(pd->pd_db), *homes = json_object_get(r->rp_st, "homes");
	json_t *tries = json_object_get(hs, "tries");
	struct snap sn;
	json_decref(snap_build(pd->pd_db, NULL, refs, NULL, PLACE_MIGRATE | PLACE_NO_HA, &sn));
	const struct place_pool *p = &sn.sn_pool;
	size_t *at = xcalloc(p->pp_nvms + 1, sizeof *at), *home = xcalloc(p->pp_nvms + 1, sizeof *home);
	for (size_t v = 0; v < p->pp_nvms; v++) {
		const char *ref = p->pp_vms[v].pv_ref, *h = jstr(homes, ref);
		at[v] = index_of(p, p->pp_vms[v].pv_resident_on);
		home[v] = *h && rpu_int(tries, ref) < UPGRADE_EVAC_TRIES ? index_of(p, h) : PLACE_NONE;
	}
	struct upgrade_home *plan = upgrade_home_plan(p, at, home);
	json_t *stuck = json_object();
	for (size_t v = 0; v < p->pp_nvms; v++)
		if (plan->hh_stuck[v])
			json_object_set(stuck, p->pp_vms[v].pv_ref, plan->hh_stuck[v]);
	json_object_set_new(hs, "stuck", stuck);
	json_int_t batch = rpu_int(r->rp_st, "batch");
	for (size_t i = 0; i < plan->hh_nmoves && plan->hh_moves[i].hm_wave == 0; i++)
		if (batch <= 0 || (json_int_t)r->rp_home_flight < batch)
			start_move(r, p, &plan->hh_moves[i]);
	bool none = plan->hh_nmoves == 0;
	upgrade_home_free(plan);
	free(at);
	free(home);
	snap_free(&sn);
	json_decref(refs);
	return none;
}

bool rpu_home(struct rpu *r)
{
	if (r->rp_home_flight > 0)
		return false;
	json_t *hs = home_state(r);
	json_int_t round = rpu_int(hs, "round");
	if (round > 2 * (json_int_t)json_object_size(json_object_get(r->rp_st, "homes")) + 5)
		return true; /* no progress for that long: report what is left */
	json_object_set_new(hs, "round", json_integer(round + 1));
	r->rp_dirty = true;
	return round_start(r, hs);
}
