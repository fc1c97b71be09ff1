/*
 * evacplan.h - where does each VM of a host being evacuated go? (pure)
 *
 * Input: a snapshot of the pool (place.h's struct place_pool: the host
 * evacuated as pp_source, the candidate hosts, the VMs resident on the
 * source, pp_flags PLACE_MIGRATE and maybe PLACE_FORCE). Output: per VM the
 * target host or the XAPI error that keeps it there. No I/O, no database,
 * no globals, no clock: the same snapshot always gives the same plan.
 *
 * Every decision about one VM is placement's (place.h): the checks of
 * VM.pool_migrate, the spreading rule, the error when nothing fits. The
 * planner adds the order: VMs are placed biggest first (pv_memory
 * descending; ties by pv_ref, then input order), and each placement takes
 * the VM's memory off its target (place_take), so later VMs see what is
 * left and anti-affinity counts the VMs placed so far. Biggest first places
 * the big VMs while large holes exist.
 */
#ifndef EVACPLAN_H
#define EVACPLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "place.h"

struct evac_place {
	size_t ep_host;    /* index into pp_hosts, PLACE_NONE when ep_error */
	int64_t ep_memory; /* bytes it takes there (pv_memory), 0 when not placed */
	json_t *ep_error;  /* NULL when placed, else the XAPI error (owned by the plan) */
};

struct evac_plan {
	struct evac_place *pl_vms;  /* one per pp_vms entry, same index */
	size_t pl_nvms;
	size_t *pl_order;           /* VM indexes in placement order (biggest first) */
	int64_t *pl_left;           /* per pp_hosts entry: ph_available after the plan */
	size_t *pl_added;           /* per pp_hosts entry: VMs this plan puts there */
	size_t pl_nhosts;
	size_t pl_placed, pl_failed;
};

/* The plan for the pool; NULL only when out of memory. Free with
 * evacplan_free. (One VM re-placed after a failed migration, other hosts
 * excluded: place_choose on a fresh snapshot.) */
struct evac_plan *evacplan_plan(const struct place_pool *pool);
void evacplan_free(struct evac_plan *p);

/* host.get_vms_which_prevent_evacuation: {VM ref: [code, params...]} for
 * each VM the plan could not place ({} when none). New reference. */
json_t *evacplan_failures_json(const struct place_pool *pool, const struct evac_plan *p);

#endif
