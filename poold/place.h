/*
 * place.h - may this VM run on that host, and which host should it go to?
 * (pure functions)
 *
 * The one placement module. VM.start / start_on, VM.pool_migrate and the
 * evacuation planner ask it (and the HA failover planner, storage migration
 * and the rolling upgrade will); none of them re-decides. Nothing here reads
 * or writes anything: the caller fills the plain structs below (snapshot.c
 * does it from the database) and gets a verdict, an XAPI error value, or a
 * host.
 *
 * The checks are one list, PLACE_CHECKS, in the order they are made; the
 * first that fails is the verdict, and each verdict is one XAPI error. The
 * order is XAPI's: the VM's own state (Xapi_vm_lifecycle's operation
 * checks), then the destination - its version against the source's
 * (pool_migrate, start_on), evacuation in progress (start_on), liveness and
 * enabled (assert_can_boot_here), then the VM against the host (CPU, SRs,
 * networks, memory last, as assert_can_boot_here).
 *
 * HA admission control is the last row, HA_PLAN: a host carrying HA facts
 * (ph_ha, set by snapshot.c while the pool has a failover plan to keep and
 * overcommit is not allowed) refuses a VM whose placement there would
 * break that plan. The facts are a callback into the pure failover
 * planner (haplan.c), so this file stays free of it.
 *
 * The rolling upgrade's rules (upgrade.h) are three rows: VERSION (a
 * migration goes to the same or a newer version, product and platform),
 * NEWEST (while the pool is in rolling-upgrade mode a VM starts only on a
 * host of the highest version: snapshot.c sets ph_upgrade_behind on the
 * others) and HW_PLATFORM (the VM's virtual hardware version against what
 * the host offers: seed 000's matrix).
 *
 * Adding a check (storage migration's SR space and reach) is one row here, its predicate in
 * place.c's place_fails() (and, for a PAIR row that the planners evaluate
 * for many pairs, a fast form in place_pick.c), the facts it reads in
 * place_vm / place_host, and its parameters in place_error(). A row that
 * only some operations make says so with its columns:
 *   ops    the operations it applies to (PLACE_START, PLACE_MIGRATE);
 *   needs  flags that must all be set for it to apply (e.g. a future
 *          PLACE_ROLLING for X(NEWEST, VM_HOST_INCOMPATIBLE_VERSION, HOST,
 *          PLACE_START, PLACE_ROLLING, 0), or PLACE_HA for
 *          X(HA_PLAN, HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN, PAIR, ...));
 *   skip   flags that turn it off (PLACE_FORCE skips the CPU check).
 * scope says what a row reads: VM (the VM only), HOST (the destination and
 * the source host), PAIR (both). The planners precompute the VM and HOST
 * rows once per VM and per host: since the first failing row wins, the
 * verdict of a pair is the earliest of the VM's, the host's and the pair's.
 */
#ifndef PLACE_H
#define PLACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "cpuid.h"
#include "xapi_errors.h"

enum place_flags {
	PLACE_START = 1,   /* the VM boots there: VM.start, VM.start_on (HA restarts later) */
	PLACE_MIGRATE = 2, /* the running VM moves there: VM.pool_migrate, host.evacuate */
	PLACE_FORCE = 4,   /* XAPI's force=true: skip the CPU check only */
	PLACE_NO_HA = 8,   /* snapshot.c attaches no HA admission: HA's own restarts and plans */
	PLACE_RESUME = 16, /* with PLACE_START: a suspended VM resumes there, so its
			    * CPU must fit as for a migration (VM.resume, resume_on) */
};
#define PLACE_ANY (PLACE_START | PLACE_MIGRATE)

enum place_scope { PLACE_SCOPE_VM, PLACE_SCOPE_HOST, PLACE_SCOPE_PAIR };

/* X(verdict, XAPI error, scope, ops, needs, skip), in the order made. The
 * error's parameters are those lib/xapi_errors.h declares; place_error()
 * fills them. A start to a host that is not live answers HOST_OFFLINE
 * [host] (the host cannot be reached for the boot), a migration
 * HOST_NOT_LIVE []. */
#define PLACE_CHECKS(X) \
	X(TEMPLATE,   VM_IS_TEMPLATE,                       VM,   PLACE_START,   0, 0)           \
	X(POWER,      VM_BAD_POWER_STATE,                   VM,   PLACE_ANY,     0, 0)           \
	X(IMMOBILE,   VM_IS_IMMOBILE,                       VM,   PLACE_MIGRATE, 0, 0)           \
	X(PCI,        VM_HAS_PCI_ATTACHED,                  VM,   PLACE_MIGRATE, 0, 0)           \
	X(VUSB,       VM_HAS_VUSBS,                         VM,   PLACE_MIGRATE, 0, 0)           \
	X(BUSY,       OTHER_OPERATION_IN_PROGRESS,          VM,   PLACE_ANY,     0, 0)           \
	X(SAME_HOST,  OPERATION_NOT_ALLOWED,                PAIR, PLACE_MIGRATE, 0, 0)           \
	X(VERSION,    VM_HOST_INCOMPATIBLE_VERSION_MIGRATE, HOST, PLACE_MIGRATE, 0, 0)           \
	X(NEWEST,     NOT_SUPPORTED_DURING_UPGRADE,         HOST, PLACE_START,   0, 0)           \
	X(EVACUATING, HOST_EVACUATE_IN_PROGRESS,            HOST, PLACE_ANY,     0, 0)           \
	X(NOT_LIVE,   HOST_NOT_LIVE,                        HOST, PLACE_MIGRATE, 0, 0)           \
	X(OFFLINE,    HOST_OFFLINE,                         HOST, PLACE_ANY,     0, 0)           \
	X(DISABLED,   HOST_DISABLED,                        HOST, PLACE_ANY,     0, 0)           \
	X(HW_PLATFORM, VM_HOST_INCOMPATIBLE_VIRTUAL_HARDWARE_PLATFORM_VERSION, PAIR, PLACE_ANY, 0, 0) \
	X(CPU,        VM_INCOMPATIBLE_WITH_THIS_HOST,       PAIR, PLACE_MIGRATE | PLACE_RESUME, 0, PLACE_FORCE) \
	X(SR,         VM_REQUIRES_SR,                       PAIR, PLACE_ANY,     0, 0)           \
	X(NETWORK,    VM_REQUIRES_NETWORK,                  PAIR, PLACE_ANY,     0, 0)           \
	X(MEMORY,     HOST_NOT_ENOUGH_FREE_MEMORY,          PAIR, PLACE_ANY,     0, 0)           \
	X(HA_PLAN,    HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN, PAIR, PLACE_ANY,   0, 0)

enum place_verdict {
	PLACE_OK = 0,
#define PLACE_X_ENUM(name, code, scope, ops, needs, skip) PLACE_##name,
	PLACE_CHECKS(PLACE_X_ENUM)
#undef PLACE_X_ENUM
	PLACE__COUNT
};

#define PLACE_NONE ((size_t)-1)

/* A VM as placement sees it. Strings are borrowed; NULL counts as "". */
struct place_vm {
	const char *pv_ref;
	const char *pv_power_state;    /* "Running", "Halted", ... */
	const char *pv_resident_on;    /* host ref (OpaqueRef:NULL when none) */
	bool pv_template;              /* is_a_template */
	bool pv_busy;                  /* scheduled_to_be_resident_on set: another operation holds it */
	bool pv_nomigrate;             /* platform:nomigrate=true */
	bool pv_has_pci, pv_has_vusb;
	int64_t pv_memory;             /* bytes the host must give (memory_static_max) */
	const char *pv_boot_vendor;    /* last_boot_CPU_flags; NULL or "" skips the vendor check */
	const char *pv_boot_features;  /* NULL skips the feature check (never booted) */
	const char *const *pv_srs;     /* SRs of its disks */
	size_t pv_nsrs;
	const char *const *pv_networks; /* networks of its VIFs the host must have */
	size_t pv_nnetworks;
	const char *pv_group;          /* its anti-affinity VM_group, NULL when none */
	bool pv_ha_protected;          /* ha_restart_priority "restart": HA restarts it when its host fails */
	int64_t pv_hw_version;         /* hardware_platform_version (upgrade.h) */
};

struct place_host;
/* HA admission (row HA_PLAN): may vm go from src (NULL: a start) to dst
 * without breaking the pool's failover plan? Pure; pa_ctx is the
 * planner's (a snapshot of the protected VMs and the plan's size). */
struct place_ha {
	bool (*pa_admits)(const struct place_ha *ha, const struct place_vm *vm, const struct place_host *src,
			  const struct place_host *dst);
	const void *pa_ctx;
};

/* VMs of one anti-affinity group already on a host. */
struct place_group_count {
	const char *gc_group;
	size_t gc_count;
};

/* A host as placement sees it. */
struct place_host {
	const char *ph_ref;
	bool ph_enabled;
	bool ph_live;                  /* host_metrics.live: its heartbeats arrive */
	bool ph_has_agent;             /* an agent address is known */
	bool ph_evacuating;            /* host.evacuate runs on it */
	const char *ph_vendor, *ph_features, *ph_version;
	const char *ph_platform;       /* software_version:platform_version */
	const int64_t *ph_hw;          /* virtual_hardware_platform_versions (none: [0]) */
	size_t ph_nhw;
	bool ph_upgrade_behind;        /* rolling-upgrade mode and not of the newest version */
	int64_t ph_available;          /* bytes free after VMs resident, scheduled and in flight */
	const char *const *ph_srs;     /* SRs plugged there */
	size_t ph_nsrs;
	const char *const *ph_networks; /* networks the host has (see snapshot.c) */
	size_t ph_nnetworks;
	size_t ph_nresident;           /* VMs on it now (the spreading rule) */
	const struct place_group_count *ph_groups; /* groups with VMs there (others count 0) */
	size_t ph_ngroups;
	const struct place_ha *ph_ha;  /* HA admission applies to it (NULL: no plan to keep) */
};

/* A snapshot of the pool: the planners' input. */
struct place_pool {
	const struct place_host *pp_source; /* the host the VMs leave (VERSION compares with it;
					     * never a target), NULL for starts */
	const struct place_host *pp_hosts;  /* candidates; the source may be among them */
	size_t pp_nhosts;
	const struct place_vm *pp_vms;
	size_t pp_nvms;
	unsigned pp_flags;                  /* PLACE_START or PLACE_MIGRATE, | PLACE_FORCE */
};

/* ---- place.c: the checks ---- */

/* The first check of PLACE_CHECKS that refuses vm on dst (src: where it
 * runs, NULL when nowhere), PLACE_OK when none does. No allocation. */
enum place_verdict place_check(const struct place_vm *vm, const struct place_host *src,
			       const struct place_host *dst, unsigned flags);
/* The XAPI error of a verdict with its parameters (a new reference), NULL
 * for PLACE_OK. Same arguments as the place_check that gave it. */
json_t *place_error(enum place_verdict v, const struct place_vm *vm, const struct place_host *src,
		    const struct place_host *dst, unsigned flags);
/* place_error(place_check(...), ...): NULL when vm may go to dst. */
json_t *place_assert(const struct place_vm *vm, const struct place_host *src, const struct place_host *dst,
		     unsigned flags);

/* The table: a verdict's XAPI error code, name ("MEMORY"), scope, and
 * whether its row applies under flags. */
enum xapi_err place_code(enum place_verdict v);
const char *place_verdict_name(enum place_verdict v);
enum place_scope place_scope_of(enum place_verdict v);
bool place_applies(enum place_verdict v, unsigned flags);
/* One row's predicate on the plain structs: true when it refuses. VM rows
 * read vm only, HOST rows src and dst only. */
bool place_fails(enum place_verdict v, const struct place_vm *vm, const struct place_host *src,
		 const struct place_host *dst, unsigned flags);

/* The CPU rule (cpuid_check_vm's, which gives the reason) in two steps,
 * so the planners can parse and compare each feature set once: the vendor
 * (a VM vendor NULL or "" fits any host), then the sets - an unparsable
 * host set refuses, a VM set NULL (PLACE_CPU_ANY) fits, an unparsable one
 * (PLACE_CPU_BAD) does not, else every VM bit must be in the host's. */
enum place_cpu_kind { PLACE_CPU_ANY, PLACE_CPU_SET, PLACE_CPU_BAD };
bool place_cpu_vendor_ok(const char *vm_vendor, const char *host_vendor);
bool place_cpu_fits(bool vendor_ok, enum place_cpu_kind vm_kind, const struct cpuid_set *vm_set, bool host_bad,
		    const struct cpuid_set *host_set);
/* Index into need of its first string not in have, PLACE_NONE when all are. */
size_t place_first_missing(const char *const *need, size_t nneed, const char *const *have, size_t nhave);

/* Software versions "1.2.10" vs "1.2.9": <0, 0, >0, numerically by part;
 * a missing part counts as 0 (upgrade_version_cmp). */
int place_version_cmp(const char *a, const char *b);

/* ---- place_pick.c: choosing a host ----
 *
 * The spreading rule (worst-fit; VM.start and the planners). Among the
 * hosts that can take the VM (every check passes, its memory fits what is
 * left), it goes to the one with
 *   1. the fewest VMs of its anti-affinity group (those there plus those
 *      placed by this index) - only for VMs in a group;
 *   2. then the most memory left after the placement;
 *   3. then the fewest VMs (ph_nresident plus those placed here);
 *   4. then the smallest host ref (strcmp), so the choice does not depend
 *      on the order of the hosts.
 * Why: filling the first host (first fit) piles the load on one or two
 * hosts, which then have no headroom for their own VMs' ballooning, for
 * the retry of a failed migration, or for the next host of a rolling
 * upgrade. Anti-affinity ranks above memory, as XAPI's VM.start ranks
 * hosts by group first, but it is soft: a VM shares a host with one of its
 * group only when no host without one can take it. The source is never a
 * target.
 *
 * When no host can take it, the error is, in this order of preference:
 * - its own refusal (a VM row: VM_BAD_POWER_STATE, VM_IS_IMMOBILE, ...);
 * - HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN when a host had the room but the
 *   failover plan needs it (admission control, the last row);
 * - HOST_NOT_ENOUGH_FREE_MEMORY [needed, available] when some host passes
 *   every other check, available being the most any such host has left
 *   (0 when negative) - as XAPI's VM.start retries ignoring memory and
 *   fails on memory;
 * - else the refusal of the host that got furthest through the checks
 *   (ties: smallest ref), so the error names the real reason;
 * - NO_HOSTS_AVAILABLE when there is no candidate host at all.
 */

/* A pool precomputed for many checks (feature sets parsed once, SRs and
 * networks as bit sets) plus what the placements made so far took. It
 * points into the pool, which must outlive it. NULL when out of memory. */
struct place_index *place_index_new(const struct place_pool *pool);
void place_index_free(struct place_index *ix);
/* The verdict for pool VM v on pool host h, memory against what is left
 * on h now: always place_check's for the same structs (with ph_available
 * = place_left). */
enum place_verdict place_index_verdict(const struct place_index *ix, size_t v, size_t h);
/* The host for VM v by the rule above, hosts with excluded[h] set left out
 * (excluded may be NULL). PLACE_NONE and *err (new reference) when none. */
size_t place_pick(const struct place_index *ix, size_t v, const bool *excluded, json_t **err);
/* idx (n indexes into vms) in the order plans place VMs: biggest memory
 * first, then by ref, then by index. */
void place_order_by_size(const struct place_vm *vms, size_t *idx, size_t n);
/* Record that VM v went to host h: its memory, one VM more, its group. */
void place_take(struct place_index *ix, size_t v, size_t h);
/* Forget every place_take: the index as place_index_new left it (the
 * failover planner tries many failures on one index). */
void place_index_reset(struct place_index *ix);
/* Remember each pair's verdict but memory once computed (it does not
 * change as placements take memory): for planners that pick the same VMs
 * many times. Costs a byte per (VM, host). */
void place_index_remember(struct place_index *ix);
int64_t place_left(const struct place_index *ix, size_t h);
size_t place_added(const struct place_index *ix, size_t h);

/* One pick on a fresh index: the host for pool VM v, hosts whose ref is in
 * excluded[0..nexcluded) left out. NULL and *host set, or a new XAPI error
 * and *host = PLACE_NONE. */
json_t *place_choose(const struct place_pool *pool, size_t v, const char *const *excluded, size_t nexcluded,
		     size_t *host);

#endif
