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
 *     be delivered the VM still runs there: MIG_OK.
 * mig_xen.c drives its migrations with it; test_mig_owner.c checks every
 * branch.
 */
#ifndef MIG_OWNER_H
#define MIG_OWNER_H

#include <stdbool.h>

enum mo_role { MO_SOURCE, MO_DEST };

enum mo_state {
	MO_HANDSHAKE, /* HELLO/TOKEN/CONFIG/ACCEPT: nothing done to any domain yet */
	MO_STREAMING, /* S: memory moving (the source may be suspended by the end);
		       * D: the destination domain is being built from the stream */
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
	MO_NEVENTS
};

enum mo_action {
	MO_ACT_NONE,
	MO_ACT_START_STREAM,	/* S: start libxl's stream; D: start the restore */
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
	int ms_rc; /* enum mig_rc once ms_next is terminal, else 0 */
};

/* Pure: the transition for (role, state, event). Terminal states stay
 * where they are with MO_ACT_NONE. */
struct mo_step mig_owner_next(enum mo_role role, enum mo_state state, enum mo_event ev);
bool mig_owner_terminal(enum mo_state s);
const char *mig_owner_state_name(enum mo_state s);
const char *mig_owner_action_name(enum mo_action a);

#endif
