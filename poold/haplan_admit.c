/*
 * haplan_admit.c - the failover planner's admission control: would a
 * change (a start, a migration, hosts disabled, an evacuation's moves)
 * break the plan the pool keeps? (see haplan.h)
 */
#include <stdlib.h>
#include <string.h>
#include "haplan.h"
#include "xerr.h"
#include "util.h"

static void *alloc0(size_t n, size_t size)
{
	return xcalloc(n ? n : 1, size);
}

/* ---- admission ---- */

static size_t host_index(const struct place_pool *pool, const struct place_host *h)
{
	for (size_t i = 0; h && i < pool->pp_nhosts; i++)
		if (strcmp(pool->pp_hosts[i].ph_ref ? pool->pp_hosts[i].ph_ref : "", h->ph_ref ? h->ph_ref : "") == 0)
			return i;
	return PLACE_NONE;
}

static size_t vm_index(const struct place_pool *pool, const struct haplan_vm *vms, size_t n,
		       const struct place_vm *vm)
{
	for (size_t i = 0; vm && i < n; i++)
		if (strcmp(pool->pp_vms[vms[i].hv_vm].pv_ref ? pool->pp_vms[vms[i].hv_vm].pv_ref : "",
			   vm->pv_ref ? vm->pv_ref : "") == 0)
			return i;
	return PLACE_NONE;
}

static void move_memory(struct place_host *hosts, size_t from, size_t to, int64_t bytes)
{
	if (from != PLACE_NONE)
		hosts[from].ph_available += bytes;
	if (to != PLACE_NONE)
		hosts[to].ph_available -= bytes;
}

/* The pool after the change: hosts (copied, memory moved, disabled),
 * VMs (the changed one appended when new), the haplan list. */
struct changed {
	struct place_pool pool;
	struct place_host *hosts;
	struct place_vm *pvms;
	struct haplan_vm *vms;
	size_t n;
};

static bool apply(const struct place_pool *pool, const struct haplan_vm *vms, size_t n,
		  const struct haplan_change *ch, struct changed *c)
{
	size_t nh = pool->pp_nhosts, nv = pool->pp_nvms;
	c->hosts = alloc0(nh, sizeof *c->hosts);
	c->pvms = alloc0(nv + 1, sizeof *c->pvms);
	c->vms = alloc0(n + 1, sizeof *c->vms);
	if (!c->hosts || !c->pvms || !c->vms)
		return false;
	memcpy(c->hosts, pool->pp_hosts, nh * sizeof *c->hosts);
	memcpy(c->pvms, pool->pp_vms, nv * sizeof *c->pvms);
	memcpy(c->vms, vms, n * sizeof *c->vms);
	c->n = n;
	for (size_t i = 0; ch->hc_moves && i < n; i++)
		if (ch->hc_moves[i] != PLACE_NONE && ch->hc_moves[i] < nh) {
			move_memory(c->hosts, vms[i].hv_home, ch->hc_moves[i], pool->pp_vms[vms[i].hv_vm].pv_memory);
			c->vms[i].hv_home = ch->hc_moves[i];
		}
	for (size_t h = 0; ch->hc_disabled && h < nh; h++)
		if (ch->hc_disabled[h])
			c->hosts[h].ph_enabled = false;
	if (ch->hc_vm) {
		move_memory(c->hosts, ch->hc_src, ch->hc_dst, ch->hc_vm->pv_memory);
		size_t i = vm_index(pool, vms, n, ch->hc_vm);
		if (i == PLACE_NONE && ch->hc_protected) {
			c->pvms[nv] = *ch->hc_vm;
			c->vms[c->n++] = (struct haplan_vm){nv++, HAPLAN_RESTART, 0, ch->hc_dst};
		} else if (i != PLACE_NONE) {
			/* the VM as it will be there: a storage migration moves its
			 * disks too (a local SR ties its restart to that host) */
			c->pvms[vms[i].hv_vm] = *ch->hc_vm;
			c->vms[i].hv_home = ch->hc_dst;
			c->vms[i].hv_priority = ch->hc_protected ? HAPLAN_RESTART : HAPLAN_NONE;
		}
	}
	c->pool = (struct place_pool){NULL, c->hosts, nh, c->pvms, nv, PLACE_START};
	return true;
}

bool haplan_admits_change(const struct place_pool *pool, const struct haplan_vm *vms, size_t n, int k,
			  const struct haplan_change *ch)
{
	struct changed c = {0};
	bool ok = false;
	if (apply(pool, vms, n, ch, &c)) {
		struct haplan_pool *hp = haplan_pool_new(&c.pool, c.vms, c.n);
		ok = hp && haplan_exists(hp, k, NULL);
		haplan_pool_free(hp);
	}
	free(c.hosts);
	free(c.pvms);
	free(c.vms);
	return ok;
}

static bool admits(const struct place_ha *row, const struct place_vm *vm, const struct place_host *src,
		   const struct place_host *dst)
{
	const struct haplan_admit *a = (const struct haplan_admit *)row;
	size_t d = host_index(a->ha_pool, dst);
	if (d == PLACE_NONE)
		return true; /* a host the plan does not know (joined since): no plan to break there */
	struct haplan_change ch = {vm, d, host_index(a->ha_pool, src), vm->pv_ha_protected, NULL, NULL};
	return haplan_admits_change(a->ha_pool, a->ha_vms, a->ha_nvms, a->ha_k, &ch);
}

void haplan_admit_init(struct haplan_admit *a, const struct place_pool *pool, const struct haplan_vm *vms,
		       size_t n, int k)
{
	*a = (struct haplan_admit){{admits, a}, pool, vms, n, k};
}
