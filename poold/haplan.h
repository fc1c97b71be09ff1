/*
 * haplan.h - the HA failover planner (pure): where would each protected
 * VM restart if hosts failed, how many host failures can the pool
 * tolerate, and would a change (a VM started or moved, a host disabled)
 * break that.
 *
 * Input: a snapshot of the pool (place.h's structs, from snapshot.c):
 * every host, and the VMs the plan is about, each with its HA priority,
 * its order and the host it runs on now. Every decision about one VM on
 * one host is placement's (place.c, for a start: the VM boots there), and
 * the packing is the evacuation planner's: biggest first onto the host
 * with the most memory left (worst fit), each placement taking its
 * memory. One memory model for planning and starting: memory_static_max.
 *
 * A failure of hosts F is survivable when every protected VM running on
 * F, and every protected VM waiting for a restart, finds a host outside F.
 * Failures to tolerate: the largest k such that every F of k live hosts
 * is survivable,
 *   - exactly (every combination tried) while the work, C(n, k) x the
 *     VMs displaced x the hosts left, stays under HAPLAN_WORK_MAX;
 *   - above, by the slot approximation: each protected VM takes a slot
 *     of the largest protected VM's size, a host offers floor(free /
 *     slot) slots (none if it refuses any protected VM for a reason other
 *     than memory), and the k hosts with the most VMs plus slots fail.
 *     It never claims a plan that does not exist (any VM fits any slot);
 *     it may miss one that does.
 * XAPI bounds its exact search by C(n, k) * k! < 3500 and n <= 32; the
 * work bound here lets 64 hosts x 2,000 VMs be exact up to k = 2.
 */
#ifndef HAPLAN_H
#define HAPLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "evacplan.h"
#include "place.h"

#define HAPLAN_WORK_MAX 20000000ULL
#define HAPLAN_MAX_FAILED 64

enum haplan_priority { HAPLAN_NONE, HAPLAN_RESTART, HAPLAN_BEST_EFFORT };

/* A VM the plan is about: index into pp_vms, its HA settings, the host
 * it runs on (index into pp_hosts, PLACE_NONE: halted, to be restarted). */
struct haplan_vm {
	size_t hv_vm;
	enum haplan_priority hv_priority;
	int64_t hv_order;
	size_t hv_home;
};

/* "restart" / "best-effort" / "" -> priority; -1 for anything else. */
int haplan_priority_parse(const char *s);

/* The pool as the planner holds it: a copy with the VMs presented for a
 * start (halted, nothing holding them) and no admission control (the
 * plan is what admission keeps). NULL when out of memory. */
struct haplan_pool;
struct haplan_pool *haplan_pool_new(const struct place_pool *pool, const struct haplan_vm *vms, size_t n);
void haplan_pool_free(struct haplan_pool *hp);

/* Why a number of failures cannot be survived (or how it was decided). */
struct haplan_why {
	bool hw_exact;                       /* every combination was tried */
	size_t hw_failed[HAPLAN_MAX_FAILED]; /* exact: the failure that broke it (host indexes) */
	size_t hw_nfailed;
	size_t hw_vm;                        /* exact: the VM that found no host (pp_vms index) */
	json_t *hw_error;                    /* exact: its error (owned), NULL if none */
	char hw_text[256];                   /* one sentence with the numbers */
};
void haplan_why_clear(struct haplan_why *w);

/* Is every failure of k live hosts survivable? (k = 0: the VMs waiting
 * for a restart fit.) why (may be NULL) says why not. AUTO is exact
 * under the work bound, else the approximation. */
enum haplan_method { HAPLAN_AUTO, HAPLAN_EXACT, HAPLAN_APPROXIMATE };
bool haplan_exists(struct haplan_pool *hp, int k, struct haplan_why *why);
bool haplan_exists_by(struct haplan_pool *hp, int k, enum haplan_method m, struct haplan_why *why);
/* The largest k <= limit with a plan, -1 when not even k = 0 has one
 * (VMs waiting for a restart do not fit). why: the first k that failed. */
int haplan_tolerance(struct haplan_pool *hp, int limit, struct haplan_why *why);
/* One failure: failed[h] for each host of pp_hosts. true when every
 * displaced protected VM finds a host; else why says which did not. */
bool haplan_survives(struct haplan_pool *hp, const bool *failed, struct haplan_why *why);

/* The restart plan: every VM of vms placed (excluded hosts left out), in
 * restart order: protected before best-effort, then by order (ascending,
 * negative last, as XAPI), then biggest first. Indexed like pp_vms; VMs
 * of the pool not in vms get an error. NULL when out of memory. */
struct evac_plan *haplan_restart(const struct place_pool *pool, const struct haplan_vm *vms, size_t n,
				 const bool *excluded);
/* Restart order of vms (indexes into vms). */
void haplan_order(const struct place_pool *pool, const struct haplan_vm *vms, size_t n, size_t *order);

/* ---- admission control ---- */

/* A change to the pool: a VM placed on a host (started there, or moved
 * from the host it runs on), hosts disabled (taking no VM). */
struct haplan_change {
	const struct place_vm *hc_vm; /* NULL: none */
	size_t hc_dst;                /* its host (pp_hosts index) */
	size_t hc_src;                /* the host it leaves, PLACE_NONE for a start */
	bool hc_protected;            /* it will be protected there */
	const bool *hc_disabled;      /* per host, may be NULL */
	const size_t *hc_moves;       /* per vms entry: a new host, PLACE_NONE: stays (NULL: none) */
};
/* Does a plan for k failures survive the change? */
bool haplan_admits_change(const struct place_pool *pool, const struct haplan_vm *vms, size_t n, int k,
			  const struct haplan_change *ch);

/* The context of place.h's HA row: build it with haplan_admit_init over
 * a snapshot of the protected VMs; each host of the placement's own
 * snapshot then points at .ha_row. */
struct haplan_admit {
	struct place_ha ha_row;
	const struct place_pool *ha_pool;
	const struct haplan_vm *ha_vms;
	size_t ha_nvms;
	int ha_k;
};
void haplan_admit_init(struct haplan_admit *a, const struct place_pool *pool, const struct haplan_vm *vms,
		       size_t n, int k);

#endif
