/* test_reconcile.c - where a VM runs: every combination of record and
 * host views for three hosts against the promises of reconcile.h, and the
 * scenarios that doubled or lost VMs before (forged reports, a lost state
 * directory, a hand-over while poold was away). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "reconcile.h"

#define N 3
static const enum rc_seen ALL[] = {RC_DOWN, RC_UNKNOWN, RC_ABSENT, RC_MISSING, RC_RUNNING, RC_PAUSED, RC_STOPPED};
#define NSEEN (sizeof ALL / sizeof ALL[0])

struct out {
	struct rc_decision d;
	enum rc_copy copy[N];
};

static struct out decide(enum rc_power power, int resident, bool busy, const enum rc_seen *seen)
{
	struct out o;
	struct rc_vm v = {power, resident, busy, N, seen};
	o.d.rd_copy = o.copy;
	rc_decide(&v, &o.d);
	return o;
}

static bool holds(enum rc_seen s)
{
	return s == RC_RUNNING || s == RC_PAUSED;
}

/* The promises, checked on one decision. */
static void check(enum rc_power power, int resident, bool busy, const enum rc_seen *seen, const struct out *o)
{
	int owner = power == RC_ON ? resident : -1;
	int running_left = 0;
	for (int i = 0; i < N; i++)
		if (seen[i] == RC_RUNNING && o->copy[i] != RC_PAUSE_DOUBLE)
			running_left++;
	/* never two running copies once the decision is carried out (while an
	 * operation holds the VM, its own outcome decides) */
	assert_true(busy || running_left <= 1);
	/* a running copy is never destroyed: at most paused */
	for (int i = 0; i < N; i++)
		if (seen[i] == RC_RUNNING)
			assert_int_not_equal(o->copy[i], RC_DESTROY_STALE);
	if (busy) { /* an operation in flight decides, nothing else */
		assert_int_equal(o->d.rd_action, RC_KEEP);
		for (int i = 0; i < N; i++)
			assert_int_equal(o->copy[i], RC_LEAVE);
		return;
	}
	if (o->d.rd_action == RC_RECORD) {
		int h = o->d.rd_host;
		assert_true(h >= 0 && h < N && holds(seen[h]));
		assert_int_not_equal(o->copy[h], RC_PAUSE_DOUBLE);
		assert_int_not_equal(o->copy[h], RC_DESTROY_STALE);
		/* the record leaves a host that holds the VM only for one that
		 * runs it while the owner's copy is paused */
		if (owner >= 0 && holds(seen[owner]) && h != owner)
			assert_true(seen[owner] == RC_PAUSED && seen[h] == RC_RUNNING);
		/* the record follows a running copy whenever there is one */
		if (seen[h] == RC_PAUSED)
			for (int i = 0; i < N; i++)
				if (i != h && (owner < 0 || i != owner))
					assert_int_not_equal(seen[i], RC_RUNNING);
	}
	if (o->d.rd_action == RC_HALT) {
		/* only the owner's own word halts, and only if nobody holds it */
		assert_true(owner >= 0 && (seen[owner] == RC_ABSENT || seen[owner] == RC_STOPPED));
		for (int i = 0; i < N; i++)
			assert_false(holds(seen[i]));
		if (seen[owner] == RC_ABSENT)
			for (int i = 0; i < N; i++)
				assert_int_not_equal(seen[i], RC_UNKNOWN);
	}
	/* without word from the owner nothing moves, and the only copies
	 * touched are runners elsewhere that cannot all be right */
	if (owner >= 0 && (seen[owner] == RC_DOWN || seen[owner] == RC_UNKNOWN || seen[owner] == RC_MISSING)) {
		int runners = 0;
		for (int i = 0; i < N; i++)
			runners += seen[i] == RC_RUNNING;
		assert_int_equal(o->d.rd_action, RC_KEEP);
		for (int i = 0; i < N; i++)
			assert_int_equal(o->copy[i], runners > 1 && seen[i] == RC_RUNNING ? RC_PAUSE_DOUBLE : RC_LEAVE);
	}
	for (int i = 0; i < N; i++) {
		if (o->copy[i] == RC_PAUSE_DOUBLE)
			assert_int_equal(seen[i], RC_RUNNING);
		if (o->copy[i] == RC_DESTROY_STALE) { /* a paused copy while the recorded host runs it */
			assert_int_equal(seen[i], RC_PAUSED);
			assert_int_equal(o->d.rd_action, RC_RECORD);
			assert_int_equal(seen[o->d.rd_host], RC_RUNNING);
		}
	}
	/* a halted VM is only ever adopted, never halted again or moved */
	if (owner < 0)
		assert_int_not_equal(o->d.rd_action, RC_HALT);
}

static void test_every_combination(void **state)
{
	(void)state;
	int cases = 0;
	for (int p = 0; p < 2; p++)
		for (int r = -1; r < N; r++)
			for (int busy = 0; busy < 2; busy++)
				for (size_t a = 0; a < NSEEN; a++)
					for (size_t b = 0; b < NSEEN; b++)
						for (size_t c = 0; c < NSEEN; c++) {
							enum rc_seen seen[N] = {ALL[a], ALL[b], ALL[c]};
							enum rc_power power = p ? RC_ON : RC_HALTED;
							struct out o = decide(power, r, busy, seen);
							check(power, r, busy, seen, &o);
							cases++;
						}
	assert_int_equal(cases, 2 * (N + 1) * 2 * NSEEN * NSEEN * NSEEN);
}

/* host 0 (forged) says host 1's VM stopped: nothing changes */
static void test_forged_halt(void **state)
{
	(void)state;
	enum rc_seen seen[N] = {RC_STOPPED, RC_RUNNING, RC_ABSENT};
	struct out o = decide(RC_ON, 1, false, seen);
	assert_int_equal(o.d.rd_action, RC_RECORD);
	assert_int_equal(o.d.rd_host, 1);
	for (int i = 0; i < N; i++)
		assert_int_equal(o.copy[i], RC_LEAVE);
}

/* host 0 (forged, or a real double) says it runs host 1's VM: host 0's
 * copy is paused, the record stays */
static void test_double(void **state)
{
	(void)state;
	enum rc_seen seen[N] = {RC_RUNNING, RC_RUNNING, RC_ABSENT};
	struct out o = decide(RC_ON, 1, false, seen);
	assert_int_equal(o.d.rd_action, RC_RECORD);
	assert_int_equal(o.d.rd_host, 1);
	assert_int_equal(o.copy[0], RC_PAUSE_DOUBLE);
	assert_int_equal(o.copy[1], RC_LEAVE);
	/* once paused there, it is a stale paused copy: destroyed, record unchanged */
	seen[0] = RC_PAUSED;
	o = decide(RC_ON, 1, false, seen);
	assert_int_equal(o.d.rd_host, 1);
	assert_int_equal(o.copy[0], RC_DESTROY_STALE);
}

/* an agent whose records vanished lists nothing and says its list is not
 * complete: its VMs stay as recorded */
static void test_lost_state(void **state)
{
	(void)state;
	enum rc_seen seen[N] = {RC_MISSING, RC_ABSENT, RC_ABSENT};
	struct out o = decide(RC_ON, 0, false, seen);
	assert_int_equal(o.d.rd_action, RC_KEEP);
	/* the same list claimed complete, while another host is unknown: kept */
	enum rc_seen seen2[N] = {RC_ABSENT, RC_UNKNOWN, RC_ABSENT};
	o = decide(RC_ON, 0, false, seen2);
	assert_int_equal(o.d.rd_action, RC_KEEP);
	/* complete and every live host known: halted */
	enum rc_seen seen3[N] = {RC_ABSENT, RC_DOWN, RC_ABSENT};
	o = decide(RC_ON, 0, false, seen3);
	assert_int_equal(o.d.rd_action, RC_HALT);
}

/* poold was away while a migration handed over: the destination runs it */
static void test_handover_while_away(void **state)
{
	(void)state;
	enum rc_seen gone[N] = {RC_ABSENT, RC_RUNNING, RC_UNKNOWN};
	struct out o = decide(RC_ON, 0, false, gone);
	assert_int_equal(o.d.rd_action, RC_RECORD);
	assert_int_equal(o.d.rd_host, 1);
	enum rc_seen paused[N] = {RC_PAUSED, RC_RUNNING, RC_ABSENT};
	o = decide(RC_ON, 0, false, paused);
	assert_int_equal(o.d.rd_host, 1);
	assert_int_equal(o.copy[0], RC_DESTROY_STALE);
	/* the destination is the one that does not report yet: wait */
	enum rc_seen early[N] = {RC_ABSENT, RC_UNKNOWN, RC_ABSENT};
	o = decide(RC_ON, 0, false, early);
	assert_int_equal(o.d.rd_action, RC_KEEP);
}

/* a halted VM found running (a start whose answer was lost) is adopted */
static void test_adopt(void **state)
{
	(void)state;
	enum rc_seen seen[N] = {RC_ABSENT, RC_ABSENT, RC_RUNNING};
	struct out o = decide(RC_HALTED, -1, false, seen);
	assert_int_equal(o.d.rd_action, RC_RECORD);
	assert_int_equal(o.d.rd_host, 2);
	/* but not while its start is in flight */
	o = decide(RC_HALTED, -1, true, seen);
	assert_int_equal(o.d.rd_action, RC_KEEP);
}

/* the owner is down: another host's copy is left alone (it may be the only one) */
static void test_owner_down(void **state)
{
	(void)state;
	enum rc_seen seen[N] = {RC_DOWN, RC_RUNNING, RC_ABSENT};
	struct out o = decide(RC_ON, 0, false, seen);
	assert_int_equal(o.d.rd_action, RC_KEEP);
	assert_int_equal(o.copy[1], RC_LEAVE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_combination), cmocka_unit_test(test_forged_halt),
		cmocka_unit_test(test_double),		  cmocka_unit_test(test_lost_state),
		cmocka_unit_test(test_handover_while_away), cmocka_unit_test(test_adopt),
		cmocka_unit_test(test_owner_down),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
