/*
 * mig_owner.h - who owns the VM during a live migration, as a pure state
 * machine (ARCHITECTURE.md "Migration: who owns the VM"; mig.h's READY /
 * GO / RUNNING protocol).
 *
 * Each side (source, destination) walks the same phases; every event moves
 * it to the next state and names the one thing to do now. The decisions:
 *   - before GO the source owns the VM: any failure resumes the source
 *     (once anything was done to it) and destroys the destination domain
 *     (once it may exist): MIG_FAILED;
 *   - after GO the source never resumes by itself: a lost RUNNING leaves
 *     the source paused and the pool (poold) decides: MIG_AFTER_GO;
 *   - the destination unpauses on GO and reports RUNNING; if RUNNING cannot
 *     be delivered the VM still runs there: MIG_OK;
 *   - a failure of this side (not the peer's, not the connection's) is
 *     told to the peer with its reason, which the peer's person then reads.
 * Both streams are driven by it: the sim stream through mig_owner_run
 * (sim_send.c, sim_recv.c), libxl's through mig_owner_next (mig_xen.c).
 * test_mig_owner.c checks every branch.
 */
#ifndef MIG_OWNER_H
#define MIG_OWNER_H

#include <stdbool.h>

enum mo_role { MO_SOURCE, MO_DEST };

enum mo_state {
	MO_HANDSHAKE, /* HELLO/TOKEN/CONFIG: nothing done to the source; no destination domain
		       * of this migration yet */
	MO_STREAMING, /* S: memory moving while the VM runs (libxl: and its suspend);
		       * D: the destination domain exists (or is being built) and fills */
	MO_STOPCOPY,  /* S (sim): the source is paused, its last pages go out. D: never */
	MO_READY,     /* S: stream sent, waiting for READY; D: READY sent, waiting for GO */
	MO_GO,	      /* S: GO sent, waiting for RUNNING; D: GO received, unpausing */
	MO_DONE,      /* terminal: the VM runs on the destination */
	MO_FAILED,    /* terminal, before GO: the VM runs on the source, nothing on D */
	MO_AFTER_GO,  /* terminal: ambiguous; the source stays paused, the pool decides */
	MO_NSTATES
};

enum mo_event {
	MO_EV_OK,	   /* the current phase finished (S in READY: READY came; in GO: RUNNING came;
			    * D in READY: GO came; in GO: the domain was unpaused) */
	MO_EV_LOCAL_ERROR, /* this side failed (libxl, memory, a check) */
	MO_EV_PEER_ERROR,  /* the peer sent ERROR or ABORT */
	MO_EV_IO_ERROR,	   /* the connection broke or timed out */
	MO_EV_PAUSE,	   /* S streaming: the stop rule says stop-and-copy now (sim) */
	MO_NEVENTS
};

enum mo_action {
	MO_ACT_NONE,
	MO_ACT_START_STREAM,	/* S: start the stream; D: take the domain (sim) or start the restore */
	MO_ACT_PAUSE_SOURCE,	/* S (sim): pause the source for its last pages */
	MO_ACT_SEND_READY,	/* D: the domain is complete and paused */
	MO_ACT_SEND_GO,		/* S: the point of no return */
	MO_ACT_UNPAUSE_DEST,	/* D: GO received */
	MO_ACT_SEND_RUNNING,	/* D: unpaused: tell the source (best effort) */
	MO_ACT_SOURCE_DONE,	/* S: RUNNING received; the caller destroys the source copy */
	MO_ACT_RESUME_SOURCE,	/* S: failure before GO: the source runs again */
	MO_ACT_DESTROY_DEST,	/* D: failure before GO: nothing may be left behind */
	MO_ACT_LEAVE_PAUSED,	/* after GO without a clear outcome: touch nothing, ask poold */
};

struct mo_step {
	enum mo_state ms_next;
	enum mo_action ms_action;
	int ms_rc;	   /* enum mig_rc once ms_next is terminal, else 0 */
	bool ms_tell_peer; /* a local failure ends the migration: send the peer the reason
			    * (S: ABORT, D: ERROR) before the action */
};

/* Pure: the transition for (role, state, event). Terminal states stay
 * where they are with MO_ACT_NONE. An event a state does not expect
 * (MO_EV_PAUSE anywhere but a streaming source) counts as a local error. */
struct mo_step mig_owner_next(enum mo_role role, enum mo_state state, enum mo_event ev);
bool mig_owner_terminal(enum mo_state s);
const char *mig_owner_state_name(enum mo_state s);
const char *mig_owner_action_name(enum mo_action a);
const char *mig_owner_event_name(enum mo_event e);

/* A stream's side of a migration, for mig_owner_run: the work of each
 * non-terminal state and the effect of each action, each answering the
 * event it ended with (an action's failure is the next event). */
struct mo_driver {
	enum mo_event (*md_step)(void *arg, enum mo_state st);
	enum mo_event (*md_act)(void *arg, enum mo_action a);
	void (*md_tell)(void *arg); /* send the peer this side's reason */
	/* told every transition a failure caused (for the log); may be NULL */
	void (*md_trace)(void *arg, enum mo_state from, enum mo_event ev, const struct mo_step *to);
};

/* Walk one side from MO_HANDSHAKE to a terminal state: step, then the
 * transition's action, and so on. Returns enum mig_rc. The only place a
 * stream decides what happens to the VM is here. */
int mig_owner_run(enum mo_role role, const struct mo_driver *d, void *arg);

#endif
