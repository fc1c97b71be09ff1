/* upgrade_home.c - where the VMs go home after a rolling upgrade, in waves
 * (see upgrade.h). Every move is placement's decision (place_check) on
 * the memory left at that point; this file only orders them. */
#include <stdlib.h>
#include <string.h>
#include "upgrade.h"
#include "util.h"

struct plan {
	const struct place_pool *p;
	const size_t *home;
	size_t nv, nh;
	int64_t *free_now;   /* per host: memory a move may use in this wave */
	int64_t *freed;      /* per host: memory this wave's moves free (the next wave's) */
	size_t *cur;         /* per VM: where it is in the plan so far */
	bool *settled;       /* per VM: home, or stuck */
	bool *parked;        /* per VM: moved out of the way once already */
	size_t *order;       /* VMs biggest first */
	struct upgrade_home *out;
	size_t cap;
};

/* Placement's verdict for VM v going from where it is now to host h. */
static enum place_verdict verdict(const struct plan *pl, size_t v, size_t h)
{
	struct place_vm vm = pl->p->pp_vms[v];
	vm.pv_resident_on = pl->p->pp_hosts[pl->cur[v]].ph_ref;
	struct place_host dst = pl->p->pp_hosts[h];
	dst.ph_available = pl->free_now[h];
	return place_check(&vm, &pl->p->pp_hosts[pl->cur[v]], &dst, PLACE_MIGRATE);
}

static json_t *why(const struct plan *pl, size_t v, size_t h, enum place_verdict r)
{
	struct place_vm vm = pl->p->pp_vms[v];
	vm.pv_resident_on = pl->p->pp_hosts[pl->cur[v]].ph_ref;
	struct place_host dst = pl->p->pp_hosts[h];
	dst.ph_available = pl->free_now[h];
	return place_error(r, &vm, &pl->p->pp_hosts[pl->cur[v]], &dst, PLACE_MIGRATE);
}

static void move(struct plan *pl, size_t v, size_t to, int wave, bool park)
{
	struct upgrade_home *o = pl->out;
	if (o->hh_nmoves == pl->cap) {
		pl->cap = pl->cap ? 2 * pl->cap : 16;
		o->hh_moves = xrealloc(o->hh_moves, pl->cap * sizeof *o->hh_moves);
	}
	o->hh_moves[o->hh_nmoves++] = (struct upgrade_move){v, pl->cur[v], to, wave, park};
	int64_t mem = pl->p->pp_vms[v].pv_memory;
	pl->free_now[to] -= mem;
	pl->freed[pl->cur[v]] += mem;
	pl->cur[v] = to;
}

static bool waiting(const struct plan *pl, size_t v)
{
	return !pl->settled[v] && pl->home[v] != PLACE_NONE && pl->cur[v] != pl->home[v];
}

/* One wave: every waiting VM whose home has room now goes; a VM refused
 * for anything but memory is stuck. Returns the moves made. */
static size_t wave_home(struct plan *pl, int wave)
{
	size_t made = 0;
	for (size_t k = 0; k < pl->nv; k++) {
		size_t v = pl->order[k];
		if (!waiting(pl, v))
			continue;
		enum place_verdict r = verdict(pl, v, pl->home[v]);
		if (r == PLACE_OK) {
			move(pl, v, pl->home[v], wave, false);
			made++;
		} else if (r != PLACE_MEMORY) {
			pl->out->hh_stuck[v] = why(pl, v, pl->home[v], r);
			pl->settled[v] = true;
		}
	}
	return made;
}

/* The host (not a, not b) that takes VM v with the most memory left. */
static size_t third_host(const struct plan *pl, size_t v, size_t a, size_t b)
{
	size_t best = PLACE_NONE;
	for (size_t h = 0; h < pl->nh; h++) {
		if (h == a || h == b || verdict(pl, v, h) != PLACE_OK)
			continue;
		if (best == PLACE_NONE || pl->free_now[h] > pl->free_now[best])
			best = h;
	}
	return best;
}

/* Nothing moved: park one VM that sits on a waiting VM's home and is not
 * at home itself (a foreign VM), biggest first, on a third host. */
static bool park_one(struct plan *pl, int wave)
{
	for (size_t k = 0; k < pl->nv; k++) {
		size_t v = pl->order[k];
		if (!waiting(pl, v))
			continue;
		size_t h = pl->home[v];
		for (size_t j = 0; j < pl->nv; j++) {
			size_t w = pl->order[j];
			bool foreign = pl->home[w] == PLACE_NONE || pl->home[w] != pl->cur[w];
			if (w == v || pl->cur[w] != h || !foreign || pl->parked[w] || pl->settled[w])
				continue;
			size_t to = third_host(pl, w, h, pl->home[w]);
			if (to == PLACE_NONE)
				continue;
			pl->parked[w] = true;
			move(pl, w, to, wave, true);
			return true;
		}
	}
	return false;
}

/* Those still waiting: the refusal of their home as it is left. */
static void give_up(struct plan *pl)
{
	for (size_t v = 0; v < pl->nv; v++)
		if (waiting(pl, v)) {
			enum place_verdict r = verdict(pl, v, pl->home[v]);
			pl->out->hh_stuck[v] = why(pl, v, pl->home[v], r != PLACE_OK ? r : PLACE_MEMORY);
			pl->settled[v] = true;
		}
}

static void plan_free(struct plan *pl)
{
	free(pl->free_now);
	free(pl->freed);
	free(pl->cur);
	free(pl->settled);
	free(pl->parked);
	free(pl->order);
}

struct upgrade_home *upgrade_home_plan(const struct place_pool *pool, const size_t *at, const size_t *home)
{
	struct plan pl = {.p = pool, .home = home, .nv = pool->pp_nvms, .nh = pool->pp_nhosts};
	size_t n1 = pl.nv ? pl.nv : 1, h1 = pl.nh ? pl.nh : 1;
	pl.free_now = xcalloc(h1, sizeof *pl.free_now);
	pl.freed = xcalloc(h1, sizeof *pl.freed);
	pl.cur = xcalloc(n1, sizeof *pl.cur);
	pl.settled = xcalloc(n1, sizeof *pl.settled);
	pl.parked = xcalloc(n1, sizeof *pl.parked);
	pl.order = xcalloc(n1, sizeof *pl.order);
	pl.out = xcalloc(1, sizeof *pl.out);
	pl.out->hh_stuck = xcalloc(n1, sizeof *pl.out->hh_stuck);
	pl.out->hh_nvms = pl.nv;
	for (size_t h = 0; h < pl.nh; h++)
		pl.free_now[h] = pool->pp_hosts[h].ph_available;
	for (size_t v = 0; v < pl.nv; v++) {
		pl.cur[v] = at[v];
		pl.order[v] = v;
		pl.settled[v] = at[v] >= pl.nh || (home[v] != PLACE_NONE && home[v] >= pl.nh);
	}
	place_order_by_size(pool->pp_vms, pl.order, pl.nv);
	/* each wave settles a VM or parks one (at most once each) */
	for (int wave = 0; wave <= (int)(2 * pl.nv); wave++) {
		memset(pl.freed, 0, h1 * sizeof *pl.freed);
		bool moved = wave_home(&pl, wave) > 0 || park_one(&pl, wave);
		for (size_t h = 0; h < pl.nh; h++)
			pl.free_now[h] += pl.freed[h];
		if (!moved)
			break;
	}
	give_up(&pl);
	struct upgrade_home *out = pl.out;
	plan_free(&pl);
	return out;
}

void upgrade_home_free(struct upgrade_home *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->hh_nvms; i++)
		json_decref(h->hh_stuck[i]);
	free(h->hh_stuck);
	free(h->hh_moves);
	free(h);
}
