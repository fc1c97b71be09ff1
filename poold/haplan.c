/* haplan.c - the failover planner: failures survived, tolerated (see haplan.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "haplan.h"
#include "xerr.h"
#include "util.h"

struct haplan_pool {
	struct place_pool hp_pool;   /* the copy the index points into */
	struct place_vm *hp_vms;
	struct place_host *hp_hosts;
	struct haplan_vm *hp_hv;
	size_t hp_n;
	size_t *hp_home;             /* per pp_vms entry: its host, PLACE_NONE */
	struct place_index *hp_ix;
	size_t *hp_prot;             /* protected VMs (pp_vms indexes), biggest first */
	size_t hp_nprot;
	size_t *hp_live;             /* live hosts: those that can fail */
	size_t hp_nlive;
	bool *hp_failed;             /* scratch: per host */
	size_t *hp_todo;             /* scratch: VMs to place */
};

int haplan_priority_parse(const char *s)
{
	if (!s || !*s)
		return HAPLAN_NONE;
	if (strcmp(s, "restart") == 0)
		return HAPLAN_RESTART;
	if (strcmp(s, "best-effort") == 0)
		return HAPLAN_BEST_EFFORT;
	return -1;
}

void haplan_why_clear(struct haplan_why *w)
{
	if (!w)
		return;
	json_decref(w->hw_error);
	memset(w, 0, sizeof *w);
	w->hw_vm = PLACE_NONE;
}

static void *alloc0(size_t n, size_t size)
{
	return xcalloc(n ? n : 1, size);
}

void haplan_pool_free(struct haplan_pool *hp)
{
	if (!hp)
		return;
	place_index_free(hp->hp_ix);
	free(hp->hp_vms);
	free(hp->hp_hosts);
	free(hp->hp_hv);
	free(hp->hp_home);
	free(hp->hp_prot);
	free(hp->hp_live);
	free(hp->hp_failed);
	free(hp->hp_todo);
	free(hp);
}

/* The copy: VMs as for a start, hosts without admission control. */
static bool pool_copy(struct haplan_pool *hp, const struct place_pool *pool, const struct haplan_vm *vms, size_t n)
{
	size_t nv = pool->pp_nvms, nh = pool->pp_nhosts;
	hp->hp_vms = alloc0(nv, sizeof *hp->hp_vms);
	hp->hp_hosts = alloc0(nh, sizeof *hp->hp_hosts);
	hp->hp_hv = alloc0(n, sizeof *hp->hp_hv);
	hp->hp_prot = alloc0(n, sizeof *hp->hp_prot);
	hp->hp_live = alloc0(nh, sizeof *hp->hp_live);
	hp->hp_failed = alloc0(nh, sizeof *hp->hp_failed);
	hp->hp_todo = alloc0(n, sizeof *hp->hp_todo);
	hp->hp_home = alloc0(nv, sizeof *hp->hp_home);
	if (!hp->hp_vms || !hp->hp_hosts || !hp->hp_hv || !hp->hp_prot || !hp->hp_live || !hp->hp_failed ||
	    !hp->hp_todo || !hp->hp_home)
		return false;
	for (size_t i = 0; i < nv; i++)
		hp->hp_home[i] = PLACE_NONE;
	for (size_t i = 0; i < n; i++)
		if (vms[i].hv_vm < nv)
			hp->hp_home[vms[i].hv_vm] = vms[i].hv_home < nh ? vms[i].hv_home : PLACE_NONE;
	for (size_t i = 0; i < nv; i++) {
		hp->hp_vms[i] = pool->pp_vms[i];
		hp->hp_vms[i].pv_power_state = "Halted";
		hp->hp_vms[i].pv_busy = false;
		hp->hp_vms[i].pv_resident_on = NULL;
	}
	for (size_t h = 0; h < nh; h++) {
		hp->hp_hosts[h] = pool->pp_hosts[h];
		hp->hp_hosts[h].ph_ha = NULL;
		if (hp->hp_hosts[h].ph_live)
			hp->hp_live[hp->hp_nlive++] = h;
	}
	memcpy(hp->hp_hv, vms, n * sizeof *vms);
	hp->hp_n = n;
	for (size_t i = 0; i < n; i++)
		if (vms[i].hv_priority == HAPLAN_RESTART && vms[i].hv_vm < nv)
			hp->hp_prot[hp->hp_nprot++] = vms[i].hv_vm;
	place_order_by_size(hp->hp_vms, hp->hp_prot, hp->hp_nprot); /* biggest first */
	hp->hp_pool = (struct place_pool){NULL, hp->hp_hosts, nh, hp->hp_vms, nv, PLACE_START};
	return true;
}

struct haplan_pool *haplan_pool_new(const struct place_pool *pool, const struct haplan_vm *vms, size_t n)
{
	struct haplan_pool *hp = xcalloc(1, sizeof *hp);
	if (!pool_copy(hp, pool, vms, n) || !(hp->hp_ix = place_index_new(&hp->hp_pool))) {
		haplan_pool_free(hp);
		return NULL;
	}
	place_index_remember(hp->hp_ix); /* every failure tried picks the same VMs again */
	return hp;
}

/* The home of pool VM v, PLACE_NONE when it waits for a restart. */
static size_t home_of(const struct haplan_pool *hp, size_t v)
{
	return hp->hp_home[v];
}

static void why_failed(const struct haplan_pool *hp, const bool *failed, size_t v, json_t *err, struct haplan_why *why)
{
	if (!why) {
		json_decref(err);
		return;
	}
	haplan_why_clear(why);
	why->hw_exact = true;
	for (size_t h = 0; h < hp->hp_pool.pp_nhosts && why->hw_nfailed < HAPLAN_MAX_FAILED; h++)
		if (failed[h])
			why->hw_failed[why->hw_nfailed++] = h;
	why->hw_vm = v;
	why->hw_error = err;
	char *e = err ? xerr_to_text(err) : NULL;
	snprintf(why->hw_text, sizeof why->hw_text, "if %zu host(s) failed (the first %s), VM %s would find no host: %s",
		 why->hw_nfailed, why->hw_nfailed ? hp->hp_hosts[why->hw_failed[0]].ph_ref : "-",
		 hp->hp_vms[v].pv_ref ? hp->hp_vms[v].pv_ref : "?", e ? e : "?");
	free(e);
}

bool haplan_survives(struct haplan_pool *hp, const bool *failed, struct haplan_why *why)
{
	size_t n = 0;
	for (size_t i = 0; i < hp->hp_nprot; i++) {
		size_t v = hp->hp_prot[i], home = home_of(hp, v);
		if (home == PLACE_NONE || failed[home])
			hp->hp_todo[n++] = v; /* already in size order */
	}
	place_index_reset(hp->hp_ix);
	for (size_t i = 0; i < n; i++) {
		json_t *err = NULL;
		size_t h = place_pick(hp->hp_ix, hp->hp_todo[i], failed, &err);
		if (h == PLACE_NONE) {
			why_failed(hp, failed, hp->hp_todo[i], err, why);
			return false;
		}
		place_take(hp->hp_ix, hp->hp_todo[i], h);
	}
	return true;
}

/* ---- exact: every combination of k live hosts ---- */

static double choose(size_t n, size_t k)
{
	double c = 1;
	for (size_t i = 0; i < k; i++)
		c = c * (double)(n - i) / (double)(i + 1);
	return c;
}

static bool exact_fits(const struct haplan_pool *hp, int k)
{
	size_t nl = hp->hp_nlive, nh = hp->hp_pool.pp_nhosts;
	if ((size_t)k > nl)
		return true;
	double per = nl ? (double)hp->hp_nprot * k / (double)nl + 1 : 1;
	return choose(nl, (size_t)k) * per * (double)(nh - (size_t)k + 1) <= (double)HAPLAN_WORK_MAX;
}

static bool exact(struct haplan_pool *hp, int k, struct haplan_why *why)
{
	size_t nl = hp->hp_nlive, c[HAPLAN_MAX_FAILED];
	if ((size_t)k > nl || k > HAPLAN_MAX_FAILED)
		return false; /* more failures than hosts: nothing survives them */
	for (int i = 0; i < k; i++)
		c[i] = (size_t)i;
	for (;;) {
		memset(hp->hp_failed, 0, hp->hp_pool.pp_nhosts * sizeof *hp->hp_failed);
		for (int i = 0; i < k; i++)
			hp->hp_failed[hp->hp_live[c[i]]] = true;
		if (!haplan_survives(hp, hp->hp_failed, why))
			return false;
		int i = k - 1; /* next combination */
		while (i >= 0 && c[i] == nl - (size_t)k + (size_t)i)
			i--;
		if (i < 0)
			return true;
		c[i]++;
		for (int j = i + 1; j < k; j++)
			c[j] = c[j - 1] + 1;
	}
}

/* ---- the slot approximation ---- */

struct slots {
	int64_t size;    /* the largest protected VM */
	int64_t *load;   /* per host: protected VMs on it */
	int64_t *offer;  /* per host: slots it offers */
	int64_t pending; /* protected VMs waiting for a restart */
};

static bool agile_target(const struct haplan_pool *hp, size_t h)
{
	for (size_t i = 0; i < hp->hp_nprot; i++) {
		enum place_verdict x = place_index_verdict(hp->hp_ix, hp->hp_prot[i], h);
		if (x != PLACE_OK && x != PLACE_MEMORY)
			return false;
	}
	return true;
}

static void slots_count(struct haplan_pool *hp, struct slots *s)
{
	place_index_reset(hp->hp_ix);
	s->size = hp->hp_nprot ? hp->hp_vms[hp->hp_prot[0]].pv_memory : 1;
	if (s->size < 1)
		s->size = 1;
	for (size_t i = 0; i < hp->hp_nprot; i++) {
		size_t home = home_of(hp, hp->hp_prot[i]);
		if (home == PLACE_NONE)
			s->pending++;
		else
			s->load[home]++;
	}
	for (size_t h = 0; h < hp->hp_pool.pp_nhosts; h++) {
		int64_t left = place_left(hp->hp_ix, h);
		s->offer[h] = agile_target(hp, h) && left > 0 ? left / s->size : 0;
	}
}

static int by_weight_desc(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x < y) - (x > y);
}

static bool approximate(struct haplan_pool *hp, int k, struct haplan_why *why)
{
	size_t nh = hp->hp_pool.pp_nhosts;
	struct slots s = {0, alloc0(nh, sizeof(int64_t)), alloc0(nh, sizeof(int64_t)), 0};
	int64_t *w = alloc0(nh, sizeof(int64_t)), total = 0, lost = 0;
	slots_count(hp, &s);
	size_t nw = 0;
	for (size_t h = 0; h < nh; h++) {
		total += s.offer[h];
		if (hp->hp_hosts[h].ph_live)
			w[nw++] = s.load[h] + s.offer[h]; /* what its failure costs */
	}
	qsort(w, nw, sizeof *w, by_weight_desc);
	for (size_t i = 0; i < (size_t)k && i < nw; i++)
		lost += w[i];
	/* the failed hosts' VMs need slots; their slots are gone: need
	 * pending + load(F) <= total - offer(F), i.e. pending + load(F) +
	 * offer(F) <= total, worst F: the heaviest k */
	bool ok = (size_t)k <= nw && s.pending + lost <= total;
	if (why) {
		haplan_why_clear(why);
		snprintf(why->hw_text, sizeof why->hw_text,
			 "slot approximation: slots of %lld bytes; %lld free in the pool; the %d hosts whose failure "
			 "costs most need %lld (VMs to restart + their own slots)%s",
			 (long long)s.size, (long long)total, k, (long long)(s.pending + lost), ok ? "" : ": too few");
	}
	free(s.load);
	free(s.offer);
	free(w);
	return ok;
}

bool haplan_exists(struct haplan_pool *hp, int k, struct haplan_why *why)
{
	return haplan_exists_by(hp, k, HAPLAN_AUTO, why);
}

bool haplan_exists_by(struct haplan_pool *hp, int k, enum haplan_method m, struct haplan_why *why)
{
	if (k < 0)
		return true;
	if (m == HAPLAN_EXACT || (m == HAPLAN_AUTO && exact_fits(hp, k))) {
		if (why)
			haplan_why_clear(why);
		bool ok = exact(hp, k, why);
		if (why)
			why->hw_exact = true;
		return ok;
	}
	return approximate(hp, k, why);
}

int haplan_tolerance(struct haplan_pool *hp, int limit, struct haplan_why *why)
{
	int k = 0;
	while (k <= limit && haplan_exists(hp, k, why))
		k++;
	return k - 1;
}

/* ---- restart order ---- */

struct order_ctx {
	const struct place_pool *pool;
	const struct haplan_vm *vms;
};

/* XAPI: ascending order, negative orders last. */
static int order_rank(int64_t a, int64_t b)
{
	bool na = a < 0, nb = b < 0;
	if (na != nb)
		return na ? 1 : -1;
	return (a > b) - (a < b);
}

static int prio_rank(enum haplan_priority p)
{
	return p == HAPLAN_RESTART ? 0 : p == HAPLAN_BEST_EFFORT ? 1 : 2;
}

static int by_restart(const void *a, const void *b, void *arg)
{
	const struct order_ctx *o = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	const struct haplan_vm *x = &o->vms[i], *y = &o->vms[j];
	int c = prio_rank(x->hv_priority) - prio_rank(y->hv_priority);
	if (!c)
		c = order_rank(x->hv_order, y->hv_order);
	if (c)
		return c;
	const struct place_vm *vx = &o->pool->pp_vms[x->hv_vm], *vy = &o->pool->pp_vms[y->hv_vm];
	if (vx->pv_memory != vy->pv_memory)
		return vx->pv_memory > vy->pv_memory ? -1 : 1;
	c = strcmp(vx->pv_ref ? vx->pv_ref : "", vy->pv_ref ? vy->pv_ref : "");
	return c ? c : (i > j) - (i < j);
}

void haplan_order(const struct place_pool *pool, const struct haplan_vm *vms, size_t n, size_t *order)
{
	struct order_ctx o = {pool, vms};
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	qsort_r(order, n, sizeof *order, by_restart, &o);
}

/* ---- the restart plan ---- */

static struct evac_plan *plan_alloc(size_t nv, size_t nh)
{
	struct evac_plan *pl = xcalloc(1, sizeof *pl);
	pl->pl_vms = alloc0(nv, sizeof *pl->pl_vms);
	pl->pl_order = alloc0(nv, sizeof *pl->pl_order);
	pl->pl_left = alloc0(nh, sizeof *pl->pl_left);
	pl->pl_added = alloc0(nh, sizeof *pl->pl_added);
	pl->pl_nvms = nv;
	pl->pl_nhosts = nh;
	if (!pl->pl_vms || !pl->pl_order || !pl->pl_left || !pl->pl_added) {
		evacplan_free(pl);
		return NULL;
	}
	for (size_t i = 0; i < nv; i++)
		pl->pl_vms[i].ep_host = PLACE_NONE;
	return pl;
}

struct evac_plan *haplan_restart(const struct place_pool *pool, const struct haplan_vm *vms, size_t n,
				 const bool *excluded)
{
	struct haplan_pool *hp = haplan_pool_new(pool, vms, n);
	struct evac_plan *pl = hp ? plan_alloc(pool->pp_nvms, pool->pp_nhosts) : NULL;
	size_t *order = alloc0(n, sizeof *order);
	if (!hp || !pl || !order) {
		haplan_pool_free(hp);
		evacplan_free(pl);
		free(order);
		return NULL;
	}
	haplan_order(pool, vms, n, order);
	for (size_t k = 0; k < n; k++) {
		size_t v = vms[order[k]].hv_vm;
		json_t *err = NULL;
		if (v >= pool->pp_nvms)
			continue;
		pl->pl_order[k] = v;
		size_t h = place_pick(hp->hp_ix, v, excluded, &err);
		if (h == PLACE_NONE) {
			pl->pl_vms[v].ep_error = err;
			pl->pl_failed++;
			continue;
		}
		place_take(hp->hp_ix, v, h);
		pl->pl_vms[v] = (struct evac_place){h, pool->pp_vms[v].pv_memory, NULL};
		pl->pl_placed++;
	}
	for (size_t h = 0; h < pool->pp_nhosts; h++) {
		pl->pl_left[h] = place_left(hp->hp_ix, h);
		pl->pl_added[h] = place_added(hp->hp_ix, h);
	}
	haplan_pool_free(hp);
	free(order);
	return pl;
}
