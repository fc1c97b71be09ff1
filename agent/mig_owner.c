/*
 * mig_owner.c - the migration ownership state machine (see mig_owner.h).
 * Pure: no I/O, no backend; the callers do what the returned action says.
 */
#include <assert.h>
#include "mig.h"
#include "mig_owner.h"

static struct mo_step step(enum mo_state next, enum mo_action a, bool tell)
{
	int rc = 0;
	if (next == MO_DONE)
		rc = MIG_OK;
	else if (next == MO_FAILED)
		rc = MIG_FAILED;
	else if (next == MO_AFTER_GO)
		rc = MIG_AFTER_GO;
	return (struct mo_step){next, a, rc, tell};
}

static struct mo_step source_next(enum mo_state s, enum mo_event ev)
{
	bool ok = ev == MO_EV_OK, tell = ev == MO_EV_LOCAL_ERROR;
	switch (s) {
	case MO_HANDSHAKE: /* the source was not touched: nothing to undo */
		return ok ? step(MO_STREAMING, MO_ACT_START_STREAM, false) : step(MO_FAILED, MO_ACT_NONE, tell);
	case MO_STREAMING: /* the throttle may be up; libxl may have suspended it (its last round) */
		if (ok) /* libxl's stream: its own stop-and-copy is over */
			return step(MO_READY, MO_ACT_NONE, false);
		return step(MO_FAILED, MO_ACT_RESUME_SOURCE, tell);
	case MO_STOPCOPY: /* the pause may or may not have happened */
	case MO_READY:
		if (ok)
			return s == MO_STOPCOPY ? step(MO_READY, MO_ACT_NONE, false)
						: step(MO_GO, MO_ACT_SEND_GO, false);
		return step(MO_FAILED, MO_ACT_RESUME_SOURCE, tell);
	case MO_GO: /* GO may have arrived: never resume here */
		return ok ? step(MO_DONE, MO_ACT_SOURCE_DONE, false) : step(MO_AFTER_GO, MO_ACT_LEAVE_PAUSED, tell);
	default:
		return step(s, MO_ACT_NONE, false);
	}
}

static struct mo_step dest_next(enum mo_state s, enum mo_event ev)
{
	bool ok = ev == MO_EV_OK, tell = ev == MO_EV_LOCAL_ERROR;
	switch (s) {
	case MO_HANDSHAKE: /* no domain of this migration yet */
		return ok ? step(MO_STREAMING, MO_ACT_START_STREAM, false) : step(MO_FAILED, MO_ACT_NONE, tell);
	case MO_STREAMING: /* the domain may exist */
	case MO_STOPCOPY:  /* not a destination phase: as streaming */
		return ok ? step(MO_READY, MO_ACT_SEND_READY, false) : step(MO_FAILED, MO_ACT_DESTROY_DEST, tell);
	case MO_READY: /* no GO (yet): the source still owns the VM */
		return ok ? step(MO_GO, MO_ACT_UNPAUSE_DEST, false) : step(MO_FAILED, MO_ACT_DESTROY_DEST, tell);
	case MO_GO:
		if (ok)
			return step(MO_DONE, MO_ACT_SEND_RUNNING, false);
		/* the unpause failed after GO: the source is paused and may think we run;
		 * destroying here could leave zero copies: keep it, the pool decides */
		return step(MO_AFTER_GO, MO_ACT_LEAVE_PAUSED, tell);
	default:
		return step(s, MO_ACT_NONE, false);
	}
}

struct mo_step mig_owner_next(enum mo_role role, enum mo_state state, enum mo_event ev)
{
	if ((int)state < 0 || state >= MO_NSTATES)
		return step(MO_FAILED, MO_ACT_NONE, false);
	if (mig_owner_terminal(state))
		return step(state, MO_ACT_NONE, false);
	if ((int)ev < 0 || ev >= MO_NEVENTS)
		ev = MO_EV_LOCAL_ERROR;
	if (ev == MO_EV_PAUSE) {
		if (role == MO_SOURCE && state == MO_STREAMING)
			return step(MO_STOPCOPY, MO_ACT_PAUSE_SOURCE, false);
		ev = MO_EV_LOCAL_ERROR; /* a caller's mistake: fail as safely as any local error */
	}
	return role == MO_SOURCE ? source_next(state, ev) : dest_next(state, ev);
}

bool mig_owner_terminal(enum mo_state s)
{
	return s == MO_DONE || s == MO_FAILED || s == MO_AFTER_GO;
}

int mig_owner_run(enum mo_role role, const struct mo_driver *d, void *arg)
{
	assert(d->md_step && d->md_act && d->md_tell);
	enum mo_state st = MO_HANDSHAKE;
	enum mo_event ev = d->md_step(arg, st);
	for (;;) {
		struct mo_step m = mig_owner_next(role, st, ev);
		if (ev != MO_EV_OK && mig_owner_terminal(m.ms_next) && d->md_trace)
			d->md_trace(arg, st, ev, &m);
		if (m.ms_tell_peer)
			d->md_tell(arg);
		st = m.ms_next;
		ev = m.ms_action == MO_ACT_NONE ? MO_EV_OK : d->md_act(arg, m.ms_action);
		if (mig_owner_terminal(st))
			return m.ms_rc;
		if (ev == MO_EV_OK)
			ev = d->md_step(arg, st);
	}
}

const char *mig_owner_state_name(enum mo_state s)
{
	static const char *const names[] = {"handshake", "streaming", "stop-and-copy", "ready",
					    "go",	 "done",      "failed",	       "after-go"};
	return (int)s >= 0 && s < MO_NSTATES ? names[s] : "?";
}

const char *mig_owner_event_name(enum mo_event e)
{
	static const char *const names[] = {"ok", "local error", "peer error", "connection error", "pause"};
	return (int)e >= 0 && e < MO_NEVENTS ? names[e] : "?";
}

const char *mig_owner_action_name(enum mo_action a)
{
	switch (a) {
	case MO_ACT_NONE: return "none";
	case MO_ACT_START_STREAM: return "start-stream";
	case MO_ACT_PAUSE_SOURCE: return "pause-source";
	case MO_ACT_SEND_READY: return "send-ready";
	case MO_ACT_SEND_GO: return "send-go";
	case MO_ACT_UNPAUSE_DEST: return "unpause-destination";
	case MO_ACT_SEND_RUNNING: return "send-running";
	case MO_ACT_SOURCE_DONE: return "source-done";
	case MO_ACT_RESUME_SOURCE: return "resume-source";
	case MO_ACT_DESTROY_DEST: return "destroy-destination";
	case MO_ACT_LEAVE_PAUSED: return "leave-paused-ask-pool";
	}
	return "?";
}
