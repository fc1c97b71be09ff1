/* reconcile.c - where does a VM run? (see reconcile.h for the rules) */
#include <assert.h>
#include "reconcile.h"

struct rc_count {
	int running, first_running;
	int paused, first_paused;
	bool unknown; /* a live host whose view is not known */
};

static struct rc_count count(const struct rc_vm *v)
{
	struct rc_count c = {0, -1, 0, -1, false};
	for (size_t i = 0; i < v->rv_nhosts; i++) {
		if (v->rv_seen[i] == RC_RUNNING && c.running++ == 0)
			c.first_running = (int)i;
		if (v->rv_seen[i] == RC_PAUSED && c.paused++ == 0)
			c.first_paused = (int)i;
		if (v->rv_seen[i] == RC_UNKNOWN)
			c.unknown = true;
	}
	return c;
}

/* The record follows host h; every other running copy is a double and
 * every other paused copy is stale (when h runs it). */
static void follow(const struct rc_vm *v, struct rc_decision *d, int h)
{
	d->rd_action = RC_RECORD;
	d->rd_host = h;
	bool h_runs = v->rv_seen[h] == RC_RUNNING;
	for (size_t i = 0; i < v->rv_nhosts; i++) {
		if ((int)i == h)
			continue;
		if (v->rv_seen[i] == RC_RUNNING)
			d->rd_copy[i] = RC_PAUSE_DOUBLE;
		else if (v->rv_seen[i] == RC_PAUSED && h_runs)
			d->rd_copy[i] = RC_DESTROY_STALE;
	}
}

/* The record names a host that still holds the VM. */
static void owner_holds(const struct rc_vm *v, struct rc_decision *d, int owner)
{
	int other_runner = -1;
	for (size_t i = 0; i < v->rv_nhosts && other_runner < 0; i++)
		if ((int)i != owner && v->rv_seen[i] == RC_RUNNING)
			other_runner = (int)i;
	/* the owner holds only a paused copy while another host runs it: a
	 * hand-over that finished while poold was away */
	if (v->rv_seen[owner] == RC_PAUSED && other_runner >= 0)
		follow(v, d, other_runner);
	else
		follow(v, d, owner);
}

/* The record names a host that says it does not hold the VM. */
static void owner_lost(const struct rc_vm *v, struct rc_decision *d, const struct rc_count *c, int owner)
{
	if (c->running > 0)
		follow(v, d, c->first_running);
	else if (c->paused > 0)
		follow(v, d, c->first_paused);
	else if (v->rv_seen[owner] == RC_STOPPED || !c->unknown)
		d->rd_action = RC_HALT;
}

static void decide(const struct rc_vm *v, struct rc_decision *d);

/* What every decision keeps, whatever the views: the record follows a host
 * that holds a copy; that copy is left alone; only a running copy is
 * paused as a double and only a paused one destroyed; a busy VM or an
 * owner that has not spoken moves nothing. */
static void check(const struct rc_vm *v, const struct rc_decision *d)
{
	assert(d->rd_action != RC_RECORD ||
	       (d->rd_host >= 0 && (size_t)d->rd_host < v->rv_nhosts &&
		(v->rv_seen[d->rd_host] == RC_RUNNING || v->rv_seen[d->rd_host] == RC_PAUSED) &&
		d->rd_copy[d->rd_host] == RC_LEAVE));
	for (size_t i = 0; i < v->rv_nhosts; i++) {
		assert(d->rd_copy[i] != RC_PAUSE_DOUBLE || v->rv_seen[i] == RC_RUNNING);
		assert(d->rd_copy[i] != RC_DESTROY_STALE || v->rv_seen[i] == RC_PAUSED);
		assert(!v->rv_busy || d->rd_copy[i] == RC_LEAVE);
	}
	assert(!v->rv_busy || d->rd_action == RC_KEEP);
	(void)v;
	(void)d;
}

void rc_decide(const struct rc_vm *v, struct rc_decision *d)
{
	decide(v, d);
	check(v, d);
}

static void decide(const struct rc_vm *v, struct rc_decision *d)
{
	d->rd_action = RC_KEEP;
	d->rd_host = -1;
	for (size_t i = 0; i < v->rv_nhosts; i++)
		d->rd_copy[i] = RC_LEAVE;
	if (v->rv_busy)
		return;
	struct rc_count c = count(v);
	int owner = v->rv_power == RC_ON ? v->rv_resident : -1;
	if (owner >= 0 && (size_t)owner >= v->rv_nhosts)
		owner = -1; /* a host that left the pool: as if resident nowhere */
	if (owner < 0) {
		/* recorded halted: a host running it anyway is believed (the
		 * start's answer was lost); a second one is a double */
		if (c.running > 0)
			follow(v, d, c.first_running);
		else if (c.paused > 0)
			follow(v, d, c.first_paused);
		return;
	}
	switch (v->rv_seen[owner]) {
	case RC_RUNNING:
	case RC_PAUSED:
		owner_holds(v, d, owner);
		return;
	case RC_ABSENT:
	case RC_STOPPED:
		owner_lost(v, d, &c, owner);
		return;
	case RC_DOWN:
	case RC_UNKNOWN:
	case RC_MISSING:
		/* no word from the owner: nothing moves. Two other hosts running
		 * it cannot both be right: both copies stop until someone looks */
		for (size_t i = 0; c.running > 1 && i < v->rv_nhosts; i++)
			if (v->rv_seen[i] == RC_RUNNING)
				d->rd_copy[i] = RC_PAUSE_DOUBLE;
		return;
	}
}
