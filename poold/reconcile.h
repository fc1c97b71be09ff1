/*
 * reconcile.h - where does a VM run? The pure decision that keeps poold's
 * record of a VM true to what the hosts report, without ever letting one
 * host's word move, halt or double another host's VM.
 *
 * Input: the VM's record and, for every host, what its newest report says
 * of the VM (a view), valid only when the host is live, has reported since
 * this poold started, and reported after the last operation on the VM on
 * that host finished (its answer's stamp). Output: one action on the
 * record, and what to do with copies that must not run.
 *
 * The rules, in plain words:
 *   - A host speaks for a VM only where the record puts it (resident or
 *     scheduled there) or where the record puts it nowhere (a halted VM
 *     found running is adopted). A report never moves a VM away from a
 *     host that still reports it, and never halts another host's VM.
 *   - A VM moves to the host that runs it only on positive evidence that
 *     its recorded host does not: that host's own complete report lacks
 *     it, says it stopped, or holds only a paused copy (a migration that
 *     ended after the hand-over while poold was away).
 *   - Two hosts running one VM is a double: the copy the record does not
 *     name is paused (then, like any paused copy of a VM running on a live
 *     host, destroyed) and an alarm is raised. The record never changes
 *     because of a double, so nothing flaps.
 *   - A VM is recorded halted only when its host says so: the domain is
 *     listed as stopped, or the host's complete list lacks it while every
 *     live host has reported and none holds it.
 *   - While an operation holds the VM (scheduled_to_be_resident_on) nothing
 *     is decided: the operation's own outcome records it.
 */
#ifndef RECONCILE_H
#define RECONCILE_H

#include <stdbool.h>
#include <stddef.h>

/* What one host's newest report says of the VM. */
enum rc_seen {
	RC_DOWN,    /* the host is not live: its copy, if any, is beyond reach */
	RC_UNKNOWN, /* live, but no report since poold started, or none newer than the last operation */
	RC_ABSENT,  /* not in the list, and the list is complete */
	RC_MISSING, /* not in the list, but the list may be incomplete */
	RC_RUNNING,
	RC_PAUSED,
	RC_STOPPED, /* listed as shut down or crashed */
};

enum rc_power { RC_HALTED, RC_ON }; /* the record: halted, or running/paused on `resident` */

struct rc_vm {
	enum rc_power rv_power;
	int rv_resident;      /* index of the host the record names, -1 when none */
	bool rv_busy;         /* an operation holds it (scheduled_to_be_resident_on) */
	size_t rv_nhosts;
	const enum rc_seen *rv_seen; /* per host */
};

enum rc_action {
	RC_KEEP,   /* the record stays */
	RC_RECORD, /* the record follows rd_host's report (power state, domid; adopts a halted VM) */
	RC_HALT,   /* recorded halted: no host runs it */
};

/* What becomes of each host's copy. */
enum rc_copy {
	RC_LEAVE,
	RC_PAUSE_DOUBLE,  /* a second running copy: pause it and raise the alarm */
	RC_DESTROY_STALE, /* a paused copy of a VM that runs on another live host */
};

#define RC_MAX_HOSTS 1024

struct rc_decision {
	enum rc_action rd_action;
	int rd_host;                /* RC_RECORD: the host whose report the record follows */
	enum rc_copy *rd_copy;      /* per host (caller's array of rv_nhosts) */
};

/* Fill d (d->rd_copy must hold v->rv_nhosts entries). Pure. */
void rc_decide(const struct rc_vm *v, struct rc_decision *d);

#endif
