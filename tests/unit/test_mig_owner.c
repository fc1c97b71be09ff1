/* test_mig_owner.c - the migration ownership state machine
 * (agent/mig_owner.c): every (role, state, event) against the table the
 * protocol in mig.h and ARCHITECTURE.md promises; the rules that must hold
 * in every row; and mig_owner_run, the loop both sim ends run on, walked
 * with a failure injected at every step and every action of each side. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
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
	bool tell;
};

#define S MO_SOURCE
#define D MO_DEST
#define OK MO_EV_OK
#define LOC MO_EV_LOCAL_ERROR
#define PEER MO_EV_PEER_ERROR
#define IO MO_EV_IO_ERROR
#define PAUSE MO_EV_PAUSE
#define F MIG_FAILED
#define AG MIG_AFTER_GO

/* The whole table for the non-terminal states. */
static const struct row table[] = {
	/* source: nothing touched during the handshake; its own failure is told */
	{S, MO_HANDSHAKE, OK, MO_STREAMING, MO_ACT_START_STREAM, 0, false},
	{S, MO_HANDSHAKE, LOC, MO_FAILED, MO_ACT_NONE, F, true},
	{S, MO_HANDSHAKE, PEER, MO_FAILED, MO_ACT_NONE, F, false},
	{S, MO_HANDSHAKE, IO, MO_FAILED, MO_ACT_NONE, F, false},
	{S, MO_HANDSHAKE, PAUSE, MO_FAILED, MO_ACT_NONE, F, true},
	/* source streaming: the stop rule pauses (sim); libxl's stream ends suspended (xen) */
	{S, MO_STREAMING, OK, MO_READY, MO_ACT_NONE, 0, false},
	{S, MO_STREAMING, LOC, MO_FAILED, MO_ACT_RESUME_SOURCE, F, true},
	{S, MO_STREAMING, PEER, MO_FAILED, MO_ACT_RESUME_SOURCE, F, false},
	{S, MO_STREAMING, IO, MO_FAILED, MO_ACT_RESUME_SOURCE, F, false},
	{S, MO_STREAMING, PAUSE, MO_STOPCOPY, MO_ACT_PAUSE_SOURCE, 0, false},
	/* source stop-and-copy: paused (or the pause failed): resume */
	{S, MO_STOPCOPY, OK, MO_READY, MO_ACT_NONE, 0, false},
	{S, MO_STOPCOPY, LOC, MO_FAILED, MO_ACT_RESUME_SOURCE, F, true},
	{S, MO_STOPCOPY, PEER, MO_FAILED, MO_ACT_RESUME_SOURCE, F, false},
	{S, MO_STOPCOPY, IO, MO_FAILED, MO_ACT_RESUME_SOURCE, F, false},
	{S, MO_STOPCOPY, PAUSE, MO_FAILED, MO_ACT_RESUME_SOURCE, F, true},
	/* source waiting for READY: still before GO */
	{S, MO_READY, OK, MO_GO, MO_ACT_SEND_GO, 0, false},
	{S, MO_READY, LOC, MO_FAILED, MO_ACT_RESUME_SOURCE, F, true},
	{S, MO_READY, PEER, MO_FAILED, MO_ACT_RESUME_SOURCE, F, false},
	{S, MO_READY, IO, MO_FAILED, MO_ACT_RESUME_SOURCE, F, false},
	{S, MO_READY, PAUSE, MO_FAILED, MO_ACT_RESUME_SOURCE, F, true},
	/* source after GO: never resumes by itself */
	{S, MO_GO, OK, MO_DONE, MO_ACT_SOURCE_DONE, MIG_OK, false},
	{S, MO_GO, LOC, MO_AFTER_GO, MO_ACT_LEAVE_PAUSED, AG, true},
	{S, MO_GO, PEER, MO_AFTER_GO, MO_ACT_LEAVE_PAUSED, AG, false},
	{S, MO_GO, IO, MO_AFTER_GO, MO_ACT_LEAVE_PAUSED, AG, false},
	{S, MO_GO, PAUSE, MO_AFTER_GO, MO_ACT_LEAVE_PAUSED, AG, true},
	/* destination handshake: no domain of this migration yet */
	{D, MO_HANDSHAKE, OK, MO_STREAMING, MO_ACT_START_STREAM, 0, false},
	{D, MO_HANDSHAKE, LOC, MO_FAILED, MO_ACT_NONE, F, true},
	{D, MO_HANDSHAKE, PEER, MO_FAILED, MO_ACT_NONE, F, false},
	{D, MO_HANDSHAKE, IO, MO_FAILED, MO_ACT_NONE, F, false},
	{D, MO_HANDSHAKE, PAUSE, MO_FAILED, MO_ACT_NONE, F, true},
	/* destination streaming: whatever exists goes */
	{D, MO_STREAMING, OK, MO_READY, MO_ACT_SEND_READY, 0, false},
	{D, MO_STREAMING, LOC, MO_FAILED, MO_ACT_DESTROY_DEST, F, true},
	{D, MO_STREAMING, PEER, MO_FAILED, MO_ACT_DESTROY_DEST, F, false},
	{D, MO_STREAMING, IO, MO_FAILED, MO_ACT_DESTROY_DEST, F, false},
	{D, MO_STREAMING, PAUSE, MO_FAILED, MO_ACT_DESTROY_DEST, F, true},
	/* not a destination phase: as streaming */
	{D, MO_STOPCOPY, OK, MO_READY, MO_ACT_SEND_READY, 0, false},
	{D, MO_STOPCOPY, LOC, MO_FAILED, MO_ACT_DESTROY_DEST, F, true},
	{D, MO_STOPCOPY, PEER, MO_FAILED, MO_ACT_DESTROY_DEST, F, false},
	{D, MO_STOPCOPY, IO, MO_FAILED, MO_ACT_DESTROY_DEST, F, false},
	{D, MO_STOPCOPY, PAUSE, MO_FAILED, MO_ACT_DESTROY_DEST, F, true},
	/* destination waiting for GO: no GO, no VM here */
	{D, MO_READY, OK, MO_GO, MO_ACT_UNPAUSE_DEST, 0, false},
	{D, MO_READY, LOC, MO_FAILED, MO_ACT_DESTROY_DEST, F, true},
	{D, MO_READY, PEER, MO_FAILED, MO_ACT_DESTROY_DEST, F, false},
	{D, MO_READY, IO, MO_FAILED, MO_ACT_DESTROY_DEST, F, false},
	{D, MO_READY, PAUSE, MO_FAILED, MO_ACT_DESTROY_DEST, F, true},
	/* destination after GO: unpaused -> done (RUNNING best effort); an unpause failure
	 * keeps the domain for the pool */
	{D, MO_GO, OK, MO_DONE, MO_ACT_SEND_RUNNING, MIG_OK, false},
	{D, MO_GO, LOC, MO_AFTER_GO, MO_ACT_LEAVE_PAUSED, AG, true},
	{D, MO_GO, PEER, MO_AFTER_GO, MO_ACT_LEAVE_PAUSED, AG, false},
	{D, MO_GO, IO, MO_AFTER_GO, MO_ACT_LEAVE_PAUSED, AG, false},
	{D, MO_GO, PAUSE, MO_AFTER_GO, MO_ACT_LEAVE_PAUSED, AG, true},
};

static void test_every_transition(void **state)
{
	(void)state;
	bool seen[2][MO_NSTATES][MO_NEVENTS] = {{{0}}};
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		const struct row *r = &table[i];
		struct mo_step s = mig_owner_next(r->role, r->state, r->ev);
		if (s.ms_next != r->next || s.ms_action != r->act || s.ms_rc != r->rc || s.ms_tell_peer != r->tell)
			fail_msg("row %zu (%s %s %s): got %s/%s/%d/tell %d, want %s/%s/%d/tell %d", i,
				 r->role == S ? "source" : "dest", mig_owner_state_name(r->state),
				 mig_owner_event_name(r->ev), mig_owner_state_name(s.ms_next),
				 mig_owner_action_name(s.ms_action), s.ms_rc, s.ms_tell_peer,
				 mig_owner_state_name(r->next), mig_owner_action_name(r->act), r->rc, r->tell);
		seen[r->role][r->state][r->ev] = true;
	}
	/* the table covers every non-terminal state x event x role, once */
	assert_int_equal(sizeof table / sizeof table[0], 2 * 5 * MO_NEVENTS);
	for (int role = 0; role < 2; role++)
		for (int st = 0; st < MO_NSTATES; st++)
			for (int ev = 0; ev < MO_NEVENTS; ev++)
				assert_int_equal(seen[role][st][ev], !mig_owner_terminal((enum mo_state)st));
}

/* What must hold in every row, whatever the table says. */
static void test_rules(void **state)
{
	(void)state;
	for (int role = 0; role < 2; role++)
		for (int st = 0; st < MO_NSTATES; st++)
			for (int ev = 0; ev < MO_NEVENTS; ev++) {
				struct mo_step s = mig_owner_next((enum mo_role)role, (enum mo_state)st, (enum mo_event)ev);
				/* only the source resumes; only the destination destroys */
				if (s.ms_action == MO_ACT_RESUME_SOURCE)
					assert_int_equal(role, S);
				if (s.ms_action == MO_ACT_DESTROY_DEST)
					assert_int_equal(role, D);
				/* after GO nothing is undone: the pool decides */
				if (st == MO_GO)
					assert_true(s.ms_action != MO_ACT_RESUME_SOURCE &&
						    s.ms_action != MO_ACT_DESTROY_DEST);
				/* an undo always ends as failed, before GO */
				if (s.ms_action == MO_ACT_RESUME_SOURCE || s.ms_action == MO_ACT_DESTROY_DEST)
					assert_int_equal(s.ms_rc, MIG_FAILED);
				/* rc says the terminal state */
				assert_int_equal(s.ms_rc != 0 || s.ms_next == MO_DONE, mig_owner_terminal(s.ms_next));
				/* told: exactly this side's own failures that end a live migration */
				assert_int_equal(s.ms_tell_peer,
						 !mig_owner_terminal((enum mo_state)st) && ev != OK && ev != PEER &&
							 ev != IO && !(role == S && st == MO_STREAMING && ev == PAUSE));
			}
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
				assert_false(s.ms_tell_peer);
				assert_true(mig_owner_terminal(term[t]));
			}
	assert_false(mig_owner_terminal(MO_GO));
	assert_false(mig_owner_terminal(MO_STOPCOPY));
	/* out of range: a state is failed with nothing done; an event is a local error */
	struct mo_step s = mig_owner_next(MO_SOURCE, (enum mo_state)99, MO_EV_OK);
	assert_int_equal(s.ms_next, MO_FAILED);
	assert_int_equal(s.ms_action, MO_ACT_NONE);
	s = mig_owner_next(MO_DEST, MO_GO, (enum mo_event)42);
	assert_int_equal(s.ms_next, MO_AFTER_GO);
	assert_int_equal(s.ms_action, MO_ACT_LEAVE_PAUSED);
	s = mig_owner_next(MO_SOURCE, MO_READY, (enum mo_event)-1);
	assert_int_equal(s.ms_action, MO_ACT_RESUME_SOURCE);
}

/* ---- mig_owner_run with a scripted side ---- */

struct fake {
	enum mo_role role;
	bool xen;	       /* source: the stream ends suspended (OK), not with PAUSE */
	int fail_step, fail_act; /* which call fails (-1: none) */
	enum mo_event fail_ev;
	int nsteps, nacts, tells, traces;
	enum mo_state steps[16];
	enum mo_action acts[16];
};

static enum mo_event fake_step(void *arg, enum mo_state st)
{
	struct fake *f = arg;
	assert_true(f->nsteps < 16);
	assert_false(mig_owner_terminal(st));
	f->steps[f->nsteps] = st;
	if (f->nsteps++ == f->fail_step)
		return f->fail_ev;
	return f->role == S && st == MO_STREAMING && !f->xen ? MO_EV_PAUSE : MO_EV_OK;
}

static enum mo_event fake_act(void *arg, enum mo_action a)
{
	struct fake *f = arg;
	assert_true(f->nacts < 16);
	assert_int_not_equal(a, MO_ACT_NONE);
	f->acts[f->nacts] = a;
	return f->nacts++ == f->fail_act ? f->fail_ev : MO_EV_OK;
}

static void fake_tell(void *arg)
{
	((struct fake *)arg)->tells++;
}

static void fake_trace(void *arg, enum mo_state from, enum mo_event ev, const struct mo_step *to)
{
	(void)from;
	(void)to;
	assert_int_not_equal(ev, MO_EV_OK);
	((struct fake *)arg)->traces++;
}

static const struct mo_driver fake_drv = {fake_step, fake_act, fake_tell, fake_trace};

static int run_fake(struct fake *f)
{
	return mig_owner_run(f->role, &fake_drv, f);
}

static bool did(const struct fake *f, enum mo_action a)
{
	for (int i = 0; i < f->nacts; i++)
		if (f->acts[i] == a)
			return true;
	return false;
}

/* The walks a migration takes when nothing fails. */
static void test_run_success(void **state)
{
	(void)state;
	struct fake sim = {.role = S, .fail_step = -1, .fail_act = -1};
	assert_int_equal(run_fake(&sim), MIG_OK);
	const enum mo_state ss[] = {MO_HANDSHAKE, MO_STREAMING, MO_STOPCOPY, MO_READY, MO_GO};
	const enum mo_action sa[] = {MO_ACT_START_STREAM, MO_ACT_PAUSE_SOURCE, MO_ACT_SEND_GO, MO_ACT_SOURCE_DONE};
	assert_int_equal(sim.nsteps, 5);
	assert_memory_equal(sim.steps, ss, sizeof ss);
	assert_int_equal(sim.nacts, 4);
	assert_memory_equal(sim.acts, sa, sizeof sa);
	assert_int_equal(sim.tells + sim.traces, 0);

	struct fake xen = {.role = S, .xen = true, .fail_step = -1, .fail_act = -1};
	assert_int_equal(run_fake(&xen), MIG_OK);
	assert_int_equal(xen.nsteps, 4); /* no stop-and-copy of ours */
	assert_false(did(&xen, MO_ACT_PAUSE_SOURCE));

	struct fake dst = {.role = D, .fail_step = -1, .fail_act = -1};
	assert_int_equal(run_fake(&dst), MIG_OK);
	const enum mo_state ds[] = {MO_HANDSHAKE, MO_STREAMING, MO_READY, MO_GO};
	const enum mo_action da[] = {MO_ACT_START_STREAM, MO_ACT_SEND_READY, MO_ACT_UNPAUSE_DEST,
				     MO_ACT_SEND_RUNNING};
	assert_int_equal(dst.nsteps, 4);
	assert_memory_equal(dst.steps, ds, sizeof ds);
	assert_int_equal(dst.nacts, 4);
	assert_memory_equal(dst.acts, da, sizeof da);
}

struct walk {
	enum mo_role role;
	bool xen;
	int fail_step, fail_act;
	int rc;
	enum mo_action undo; /* the last action taken (MO_ACT_NONE: none after the failure) */
};

/* Each step and each action of each side failing, with what must follow. */
static const struct walk walks[] = {
	/* sim source: steps handshake, streaming, stop-and-copy, ready, go */
	{S, false, 0, -1, F, MO_ACT_NONE},
	{S, false, 1, -1, F, MO_ACT_RESUME_SOURCE},
	{S, false, 2, -1, F, MO_ACT_RESUME_SOURCE},
	{S, false, 3, -1, F, MO_ACT_RESUME_SOURCE},
	{S, false, 4, -1, AG, MO_ACT_LEAVE_PAUSED},
	/* sim source: actions start, pause, send GO, done */
	{S, false, -1, 0, F, MO_ACT_RESUME_SOURCE},
	{S, false, -1, 1, F, MO_ACT_RESUME_SOURCE},
	{S, false, -1, 2, AG, MO_ACT_LEAVE_PAUSED},  /* GO may have left */
	{S, false, -1, 3, MIG_OK, MO_ACT_SOURCE_DONE}, /* RUNNING came: done whatever follows */
	/* xen source: steps handshake, streaming, ready, go */
	{S, true, 1, -1, F, MO_ACT_RESUME_SOURCE},
	{S, true, 2, -1, F, MO_ACT_RESUME_SOURCE},
	{S, true, 3, -1, AG, MO_ACT_LEAVE_PAUSED},
	/* destination: steps handshake, streaming, ready, go */
	{D, false, 0, -1, F, MO_ACT_NONE},
	{D, false, 1, -1, F, MO_ACT_DESTROY_DEST},
	{D, false, 2, -1, F, MO_ACT_DESTROY_DEST},
	{D, false, 3, -1, AG, MO_ACT_LEAVE_PAUSED},
	/* destination: actions start (take the domain), READY, unpause, RUNNING */
	{D, false, -1, 0, F, MO_ACT_DESTROY_DEST},
	{D, false, -1, 1, F, MO_ACT_DESTROY_DEST},
	{D, false, -1, 2, AG, MO_ACT_LEAVE_PAUSED},	/* unpause failed after GO: keep it */
	{D, false, -1, 3, MIG_OK, MO_ACT_SEND_RUNNING}, /* RUNNING lost: it runs here all the same */
};

static void test_run_failures(void **state)
{
	(void)state;
	const enum mo_event evs[] = {LOC, PEER, IO};
	for (size_t w = 0; w < sizeof walks / sizeof walks[0]; w++)
		for (size_t e = 0; e < 3; e++) {
			const struct walk *x = &walks[w];
			struct fake f = {.role = x->role, .xen = x->xen, .fail_step = x->fail_step,
					 .fail_act = x->fail_act, .fail_ev = evs[e]};
			int rc = run_fake(&f);
			bool ended = x->rc == MIG_OK; /* the failure came after the terminal state */
			if (rc != x->rc || (x->undo != MO_ACT_NONE && f.acts[f.nacts - 1] != x->undo))
				fail_msg("walk %zu (%s): rc %d, last action %s", w, mig_owner_event_name(evs[e]), rc,
					 f.nacts ? mig_owner_action_name(f.acts[f.nacts - 1]) : "-");
			if (x->undo == MO_ACT_NONE)
				assert_int_equal(f.nacts, 0);
			/* at most one undo, and only before GO */
			assert_true(did(&f, MO_ACT_RESUME_SOURCE) + did(&f, MO_ACT_DESTROY_DEST) <= 1);
			if (did(&f, MO_ACT_SEND_GO) || did(&f, MO_ACT_UNPAUSE_DEST))
				assert_false(did(&f, MO_ACT_RESUME_SOURCE) || did(&f, MO_ACT_DESTROY_DEST));
			/* the peer hears of this side's own failures, once */
			assert_int_equal(f.tells, !ended && evs[e] == LOC);
			assert_int_equal(f.traces, ended ? 0 : 1);
		}
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(mig_owner_state_name(MO_AFTER_GO), "after-go");
	assert_string_equal(mig_owner_state_name(MO_STOPCOPY), "stop-and-copy");
	assert_string_equal(mig_owner_state_name((enum mo_state)77), "?");
	assert_string_equal(mig_owner_action_name(MO_ACT_LEAVE_PAUSED), "leave-paused-ask-pool");
	assert_string_equal(mig_owner_action_name(MO_ACT_RESUME_SOURCE), "resume-source");
	assert_string_equal(mig_owner_action_name(MO_ACT_PAUSE_SOURCE), "pause-source");
	assert_string_equal(mig_owner_event_name(MO_EV_IO_ERROR), "connection error");
	assert_string_equal(mig_owner_event_name((enum mo_event)9), "?");
	for (int a = MO_ACT_NONE; a <= MO_ACT_LEAVE_PAUSED; a++)
		assert_string_not_equal(mig_owner_action_name((enum mo_action)a), "?");
	for (int st = 0; st < MO_NSTATES; st++)
		assert_string_not_equal(mig_owner_state_name((enum mo_state)st), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_transition), cmocka_unit_test(test_rules),
		cmocka_unit_test(test_terminal_states_stay), cmocka_unit_test(test_run_success),
		cmocka_unit_test(test_run_failures), cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
