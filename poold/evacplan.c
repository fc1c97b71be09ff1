/* evacplan.c - the host evacuation planner (see evacplan.h). */
#include <stdlib.h>
#include <string.h>
#include "evacplan.h"
#include "util.h"

void evacplan_free(struct evac_plan *pl)
{
	if (!pl)
		return;
	for (size_t i = 0; pl->pl_vms && i < pl->pl_nvms; i++)
		json_decref(pl->pl_vms[i].ep_error);
	free(pl->pl_vms);
	free(pl->pl_order);
	free(pl->pl_left);
	free(pl->pl_added);
	free(pl);
}

static void *alloc0(size_t n, size_t size)
{
	return xcalloc(n > 0 ? n : 1, size);
}

static struct evac_plan *plan_new(size_t nv, size_t nh)
{
	struct evac_plan *pl = xcalloc(1, sizeof *pl);
	pl->pl_vms = alloc0(nv, sizeof *pl->pl_vms);
	pl->pl_order = alloc0(nv, sizeof *pl->pl_order);
	pl->pl_left = alloc0(nh, sizeof *pl->pl_left);
	pl->pl_added = alloc0(nh, sizeof *pl->pl_added);
	if (!pl->pl_vms || !pl->pl_order || !pl->pl_left || !pl->pl_added) {
		evacplan_free(pl);
		return NULL;
	}
	pl->pl_nvms = nv;
	pl->pl_nhosts = nh;
	return pl;
}

struct evac_plan *evacplan_plan(const struct place_pool *pool)
{
	size_t nv = pool->pp_nvms, nh = pool->pp_nhosts;
	struct place_index *ix = place_index_new(pool);
	size_t *order = alloc0(nv, sizeof *order);
	struct evac_plan *pl = plan_new(nv, nh);
	if (!ix || !order || !pl) {
		place_index_free(ix);
		free(order);
		evacplan_free(pl);
		return NULL;
	}
	for (size_t i = 0; i < nv; i++)
		order[i] = i;
	place_order_by_size(pool->pp_vms, order, nv);
	for (size_t k = 0; k < nv; k++) {
		size_t v = order[k];
		json_t *err;
		pl->pl_order[k] = v;
		size_t h = place_pick(ix, v, NULL, &err);
		if (h == PLACE_NONE) {
			pl->pl_vms[v] = (struct evac_place){PLACE_NONE, 0, err};
			pl->pl_failed++;
			continue;
		}
		pl->pl_vms[v] = (struct evac_place){h, pool->pp_vms[v].pv_memory, NULL};
		place_take(ix, v, h);
		pl->pl_placed++;
	}
	for (size_t h = 0; h < nh; h++) {
		pl->pl_left[h] = place_left(ix, h);
		pl->pl_added[h] = place_added(ix, h);
	}
	free(order);
	place_index_free(ix);
	return pl;
}

json_t *evacplan_failures_json(const struct place_pool *pool, const struct evac_plan *pl)
{
	json_t *o = json_object();
	for (size_t i = 0; i < pl->pl_nvms && i < pool->pp_nvms; i++)
		if (pl->pl_vms[i].ep_error)
			json_object_set(o, pool->pp_vms[i].pv_ref, pl->pl_vms[i].ep_error);
	return o;
}
