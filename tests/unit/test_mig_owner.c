/* test_mig_owner.c - the migration ownership state machine
 * (agent/mig_owner.c): every (role, state, event) against the table the
 * protocol in mig.h and ARCHITECTURE.md promises, and the walks a real
 * migration takes: success, each failure before GO, each after. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mig.h"
#include "mig_owner.h"

struct row {
	enum mo_role role;
	enum mo_state state;
	enum mo_event ev;
	enum mo_state next;
	enum mo_action act;
	int rc;
};

#define OK MO_EV_OK
#define LOC MO_EV_LOCAL_ERROR
#define PEER MO_EV_PEER_ERROR
#define IO MO_EV_IO_ERROR

/* The whole table for the non-terminal states. */
static const struct row table[] = {
	/* source: nothing touched during the handshake */
	{MO_SOURCE, MO_HANDSHAKE, OK, MO_STREAMING, MO_ACT_START_STREAM, 0},
	{MO_SOURCE, MO_HANDSHAKE, LOC, MO_FAILED, MO_ACT_NONE, MIG_FAILED},
	{MO_SOURCE, MO_HANDSHAKE, PEER, MO_FAILED, MO_ACT_NONE, MIG_FAILED},
	{MO_SOURCE, MO_HANDSHAKE, IO, MO_FAILED, MO_ACT_NONE, MIG_FAILED},
	/* source streaming: libxl may have suspended it: resume */
	{MO_SOURCE, MO_STREAMING, OK, MO_READY, MO_ACT_NONE, 0},
	{MO_SOURCE, MO_STREAMING, LOC, MO_FAILED, MO_ACT_RESUME_SOURCE, MIG_FAILED},
	{MO_SOURCE, MO_STREAMING, PEER, MO_FAILED, MO_ACT_RESUME_SOURCE, MIG_FAILED},
	{MO_SOURCE, MO_STREAMING, IO, MO_FAILED, MO_ACT_RESUME_SOURCE, MIG_FAILED},
	/* source waiting for READY: still before GO */
	{MO_SOURCE, MO_READY, OK, MO_GO, MO_ACT_SEND_GO, 0},
	{MO_SOURCE, MO_READY, LOC, MO_FAILED, MO_ACT_RESUME_SOURCE, MIG_FAILED},
	{MO_SOURCE, MO_READY, PEER, MO_FAILED, MO_ACT_RESUME_SOURCE, MIG_FAILED},
	{MO_SOURCE, MO_READY, IO, MO_FAILED, MO_ACT_RESUME_SOURCE, MIG_FAILED},
	/* source after GO: never resumes by itself */
	{MO_SOURCE, MO_GO, OK, MO_DONE, MO_ACT_SOURCE_DONE, MIG_OK},
	{MO_SOURCE, MO_GO, LOC, MO_AFTER_GO, MO_ACT_LEAVE_PAUSED, MIG_AFTER_GO},
	{MO_SOURCE, MO_GO, PEER, MO_AFTER_GO, MO_ACT_LEAVE_PAUSED, MIG_AFTER_GO},
	{MO_SOURCE, MO_GO, IO, MO_AFTER_GO, MO_ACT_LEAVE_PAUSED, MIG_AFTER_GO},
	/* destination handshake: no domain yet */
	{MO_DEST, MO_HANDSHAKE, OK, MO_STREAMING, MO_ACT_START_STREAM, 0},
	{MO_DEST, MO_HANDSHAKE, LOC, MO_FAILED, MO_ACT_NONE, MIG_FAILED},
	{MO_DEST, MO_HANDSHAKE, PEER, MO_FAILED, MO_ACT_NONE, MIG_FAILED},
	{MO_DEST, MO_HANDSHAKE, IO, MO_FAILED, MO_ACT_NONE, MIG_FAILED},
	/* destination restoring: whatever exists goes */
	{MO_DEST, MO_STREAMING, OK, MO_READY, MO_ACT_SEND_READY, 0},
	{MO_DEST, MO_STREAMING, LOC, MO_FAILED, MO_ACT_DESTROY_DEST, MIG_FAILED},
	{MO_DEST, MO_STREAMING, PEER, MO_FAILED, MO_ACT_DESTROY_DEST, MIG_FAILED},
	{MO_DEST, MO_STREAMING, IO, MO_FAILED, MO_ACT_DESTROY_DEST, MIG_FAILED},
	/* destination waiting for GO: no GO, no VM here */
	{MO_DEST, MO_READY, OK, MO_GO, MO_ACT_UNPAUSE_DEST, 0},
	{MO_DEST, MO_READY, LOC, MO_FAILED, MO_ACT_DESTROY_DEST, MIG_FAILED},
	{MO_DEST, MO_READY, PEER, MO_FAILED, MO_ACT_DESTROY_DEST, MIG_FAILED},
	{MO_DEST, MO_READY, IO, MO_FAILED, MO_ACT_DESTROY_DEST, MIG_FAILED},
	/* destination after GO: unpaused -> done (RUNNING best effort); an unpause failure
	 * keeps the domain for the pool */
	{MO_DEST, MO_GO, OK, MO_DONE, MO_ACT_SEND_RUNNING, MIG_OK},
	{MO_DEST, MO_GO, LOC, MO_AFTER_GO, MO_ACT_LEAVE_PAUSED, MIG_AFTER_GO},
	{MO_DEST, MO_GO, PEER, MO_AFTER_GO, MO_ACT_LEAVE_PAUSED, MIG_AFTER_GO},
	{MO_DEST, MO_GO, IO, MO_AFTER_GO, MO_ACT_LEAVE_PAUSED, MIG_AFTER_GO},
};

static void test_every_transition(void **state)
{
	(void)state;
	int seen = 0;
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		const struct row *r = &table[i];
		struct mo_step s = mig_owner_next(r->role, r->state, r->ev);
		if (s.ms_next != r->next || s.ms_action != r->act || s.ms_rc != r->rc)
			fail_msg("row %zu (%s %s ev %d): got %s/%s/%d, want %s/%s/%d", i,
				 r->role == MO_SOURCE ? "source" : "dest", mig_owner_state_name(r->state), (int)r->ev,
				 mig_owner_state_name(s.ms_next), mig_owner_action_name(s.ms_action), s.ms_rc,
				 mig_owner_state_name(r->next), mig_owner_action_name(r->act), r->rc);
		seen++;
	}
	/* the table covers every non-terminal state x event x role */
	assert_int_equal(seen, 2 * 4 * MO_NEVENTS);
}

static void test_terminal_states_stay(void **state)
{
	(void)state;
	const enum mo_state term[] = {MO_DONE, MO_FAILED, MO_AFTER_GO};
	const int rc[] = {MIG_OK, MIG_FAILED, MIG_AFTER_GO};
	for (int role = 0; role < 2; role++)
		for (int t = 0; t < 3; t++)
			for (int e = 0; e < MO_NEVENTS; e++) {
				struct mo_step s = mig_owner_next((enum mo_role)role, term[t], (enum mo_event)e);
				assert_int_equal(s.ms_next, term[t]);
				assert_int_equal(s.ms_action, MO_ACT_NONE);
				assert_int_equal(s.ms_rc, rc[t]);
				assert_true(mig_owner_terminal(term[t]));
			}
	assert_false(mig_owner_terminal(MO_GO));
	/* out of range: failed, nothing done */
	struct mo_step s = mig_owner_next(MO_SOURCE, (enum mo_state)99, MO_EV_OK);
	assert_int_equal(s.ms_next, MO_FAILED);
	assert_int_equal(s.ms_action, MO_ACT_NONE);
	s = mig_owner_next(MO_DEST, MO_GO, (enum mo_event)42);
	assert_int_equal(s.ms_action, MO_ACT_NONE);
}

/* Walk a whole migration; fail at step `at` (-1 = never) with ev. Returns
 * the terminal step and counts the undo actions taken. */
static struct mo_step walk(enum mo_role role, int at, enum mo_event ev, int *resumes, int *destroys)
{
	enum mo_state st = MO_HANDSHAKE;
	struct mo_step s = {st, MO_ACT_NONE, 0};
	for (int i = 0; !mig_owner_terminal(st); i++) {
		s = mig_owner_next(role, st, i == at ? ev : MO_EV_OK);
		*resumes += s.ms_action == MO_ACT_RESUME_SOURCE;
		*destroys += s.ms_action == MO_ACT_DESTROY_DEST;
		st = s.ms_next;
	}
	return s;
}

static void test_walks(void **state)
{
	(void)state;
	int r = 0, d = 0;
	struct mo_step s = walk(MO_SOURCE, -1, MO_EV_OK, &r, &d);
	assert_int_equal(s.ms_rc, MIG_OK);
	assert_int_equal(s.ms_action, MO_ACT_SOURCE_DONE);
	assert_int_equal(r + d, 0);
	s = walk(MO_DEST, -1, MO_EV_OK, &r, &d);
	assert_int_equal(s.ms_rc, MIG_OK);
	assert_int_equal(s.ms_action, MO_ACT_SEND_RUNNING);
	/* every failure point on each side: never both an undo and after-GO, at most one undo */
	for (int role = 0; role < 2; role++)
		for (int at = 0; at < 4; at++)
			for (int e = 1; e < MO_NEVENTS; e++) {
				r = d = 0;
				s = walk((enum mo_role)role, at, (enum mo_event)e, &r, &d);
				assert_true(r + d <= 1);
				if (at == 3) { /* the failure came after GO */
					assert_int_equal(s.ms_rc, MIG_AFTER_GO);
					assert_int_equal(r + d, 0);
				} else {
					assert_int_equal(s.ms_rc, MIG_FAILED);
					assert_int_equal(role == MO_SOURCE ? r : d, at == 0 ? 0 : 1);
					assert_int_equal(role == MO_SOURCE ? d : r, 0);
				}
			}
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(mig_owner_state_name(MO_AFTER_GO), "after-go");
	assert_string_equal(mig_owner_state_name((enum mo_state)77), "?");
	assert_string_equal(mig_owner_action_name(MO_ACT_LEAVE_PAUSED), "leave-paused-ask-pool");
	assert_string_equal(mig_owner_action_name(MO_ACT_RESUME_SOURCE), "resume-source");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_transition),
		cmocka_unit_test(test_terminal_states_stay),
		cmocka_unit_test(test_walks),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
