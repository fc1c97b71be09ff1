/*
 * evacplan.h - where does each VM of a host being evacuated go? (pure)
 *
 * Input: a snapshot of the pool filled by the caller (the host to evacuate,
 * the candidate hosts, the VMs resident on the source). Output: per VM the
 * target host or the XAPI error that keeps it there. No I/O, no database,
 * no globals, no clock: the same snapshot always gives the same plan.
 *
 * Targets. A VM may go to a host when mig_check() accepts the pair (the
 * checks and errors of VM.pool_migrate, in XAPI's order: power state,
 * nomigrate / PCI / VUSB / busy, host enabled, not evacuating, live, agent,
 * software version not lower than the source's, CPU vendor and features
 * unless force, free memory, SRs plugged) and, in addition, the host has
 * every network the VM needs (VM_REQUIRES_NETWORK). The source host itself
 * (same ref as es_source) is never a target. The verdicts are computed on
 * a precomputed form of the snapshot (feature sets parsed once, SRs and
 * networks as bit sets) that gives exactly mig_check's verdict (unit-tested
 * on a table of cases); the error values themselves are built by mig_check.
 *
 * Packing. VMs are placed biggest first (mv_memory descending; ties by
 * mv_ref, then input order), and each placement takes the VM's memory off
 * its target, so later VMs see what is left (memory already reserved on a
 * host - resident, scheduled, in flight - is the caller's mh_available).
 *
 * Spreading rule: worst-fit decreasing. Among the hosts that can take the
 * VM (all checks pass and its memory fits), the VM goes to the one with
 *   1. the fewest VMs of its anti-affinity group (those already there plus
 *      those this plan put there) - only for VMs in a group;
 *   2. then the most memory left after the placement;
 *   3. then the fewest VMs (eh_nresident plus those this plan put there);
 *   4. then the smallest host ref (strcmp), so the plan does not depend on
 *      the order of the hosts in the snapshot.
 * Why: filling the first host (first fit) piles the whole evacuated load on
 * one or two hosts, which then have no headroom for their own VMs'
 * ballooning, for the retry of a failed migration, or for the next host of a
 * rolling upgrade. Worst fit spreads the VMs in proportion to free memory,
 * is the rule VM.start already uses here (the host with the most memory to
 * spare), and with biggest-first ordering still places the big VMs while
 * large holes exist. Anti-affinity is ranked above memory but is soft: a
 * grouped VM shares a host with a VM of its group only when no host without
 * one (then: with fewer) can take it. Memory fit is never traded for
 * anti-affinity, and grouped VMs are not moved ahead of bigger ungrouped
 * ones, because a VM left unplaced fails the evacuation while a co-located
 * pair only weakens it.
 *
 * Errors. A VM nobody can take gets, in this order of preference:
 * - its own refusal when it cannot move anywhere (VM_BAD_POWER_STATE,
 *   VM_IS_IMMOBILE, VM_HAS_PCI_ATTACHED, VM_HAS_VUSBS,
 *   OTHER_OPERATION_IN_PROGRESS);
 * - HOST_NOT_ENOUGH_FREE_MEMORY [needed, available] when at least one host
 *   passes every other check, available being the largest space any such
 *   host had left at that point of the plan (0 when negative);
 * - else the refusal of the host that got furthest through the checks
 *   (order above; ties: smallest host ref), with memory ignored, so the
 *   error names the real reason (VM_REQUIRES_SR, VM_INCOMPATIBLE_WITH_THIS_HOST
 *   with the missing feature bits, HOST_DISABLED, ...);
 * - NO_HOSTS_AVAILABLE when there is no host but the source (and the
 *   excluded ones, for evacplan_pick).
 */
#ifndef EVACPLAN_H
#define EVACPLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "migcheck.h"

#define EVAC_NONE ((size_t)-1)

/* VMs of one anti-affinity group (VM_group ref) already on a host. */
struct evac_group_count {
	const char *gc_group;
	size_t gc_count;
};

struct evac_host {
	struct mig_host eh_host;     /* mh_available: free after resident, scheduled, in flight */
	size_t eh_nresident;         /* VMs on it now (tie-break 3) */
	const struct evac_group_count *eh_groups; /* groups with VMs there (others count 0) */
	size_t eh_ngroups;
	const char *const *eh_networks; /* networks with a PIF plugged there */
	size_t eh_nnetworks;
};

struct evac_vm {
	struct mig_vm ev_vm;         /* mv_resident_on is the source */
	const char *ev_group;        /* anti-affinity VM_group ref, NULL when none */
	const char *const *ev_networks; /* networks of its VIFs that need a PIF on the host */
	size_t ev_nnetworks;
};

struct evac_snapshot {
	const struct mig_host *es_source; /* the host being evacuated (not NULL) */
	const struct evac_host *es_hosts; /* candidates; the source may be among them */
	size_t es_nhosts;
	const struct evac_vm *es_vms;     /* VMs to move off the source */
	size_t es_nvms;
	bool es_force;                    /* skip the CPU check only, as mig_check */
};

struct evac_place {
	size_t ep_host;    /* index into es_hosts, EVAC_NONE when ep_error */
	int64_t ep_memory; /* bytes it takes there (mv_memory), 0 when not placed */
	json_t *ep_error;  /* NULL when placed, else the XAPI error (owned by the plan) */
};

struct evac_plan {
	struct evac_place *pl_vms;  /* one per es_vms entry, same index */
	size_t pl_nvms;
	size_t *pl_order;           /* VM indexes in placement order (biggest first) */
	int64_t *pl_left;           /* per es_hosts entry: mh_available after the plan */
	size_t *pl_added;           /* per es_hosts entry: VMs this plan puts there */
	size_t pl_nhosts;
	size_t pl_placed, pl_failed;
};

/* The plan for the snapshot; NULL only when out of memory. Free with
 * evacplan_free. */
struct evac_plan *evacplan_plan(const struct evac_snapshot *s);
void evacplan_free(struct evac_plan *p);

/* Re-plan one VM (es_vms[vm]) after a failed migration: the host the same
 * rule picks, hosts whose ref is in excluded[0..nexcluded) left out. The
 * caller passes a fresh snapshot (its mh_available counting the memory of
 * the migrations in flight, eh_groups the VMs placed so far). NULL and
 * *host set to an index into es_hosts, or a new XAPI error (as for a plan)
 * and *host = EVAC_NONE. */
json_t *evacplan_pick(const struct evac_snapshot *s, size_t vm, const char *const *excluded, size_t nexcluded,
		      size_t *host);

/* host.get_vms_which_prevent_evacuation: {VM ref: [code, params...]} for
 * each VM the plan could not place ({} when none). New reference. */
json_t *evacplan_failures_json(const struct evac_snapshot *s, const struct evac_plan *p);

/* The precomputed verdict for one pair (es_vms[vm] to es_hosts[host], with
 * the host's mh_available): -1 when it may go, else the enum xapi_err code
 * mig_check() would return for the same structs (VM_REQUIRES_NETWORK after
 * every mig_check check passes; OPERATION_NOT_ALLOWED for the host it
 * runs on, which is the source: the planner skips the source outright).
 * For tests and diagnostics; the planner uses the same code. */
int evacplan_verdict(const struct evac_snapshot *s, size_t vm, size_t host);

#endif
