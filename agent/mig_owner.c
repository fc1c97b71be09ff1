/*
 * mig_owner.c - the migration ownership state machine (see mig_owner.h).
 * Pure: no I/O, no backend; the callers do what the returned action says.
 */
#include "mig.h"
#include "mig_owner.h"

static struct mo_step step(enum mo_state next, enum mo_action a)
{
	int rc = 0;
	if (next == MO_DONE)
		rc = MIG_OK;
	else if (next == MO_FAILED)
		rc = MIG_FAILED;
	else if (next == MO_AFTER_GO)
		rc = MIG_AFTER_GO;
	return (struct mo_step){next, a, rc};
}

static struct mo_step source_next(enum mo_state s, enum mo_event ev)
{
	bool ok = ev == MO_EV_OK;
	switch (s) {
	case MO_HANDSHAKE: /* the source was not touched: nothing to undo */
		return ok ? step(MO_STREAMING, MO_ACT_START_STREAM) : step(MO_FAILED, MO_ACT_NONE);
	case MO_STREAMING: /* libxl may have suspended it (the last round) */
		return ok ? step(MO_READY, MO_ACT_NONE) : step(MO_FAILED, MO_ACT_RESUME_SOURCE);
	case MO_READY:
		return ok ? step(MO_GO, MO_ACT_SEND_GO) : step(MO_FAILED, MO_ACT_RESUME_SOURCE);
	case MO_GO: /* GO may have arrived: never resume here */
		return ok ? step(MO_DONE, MO_ACT_SOURCE_DONE) : step(MO_AFTER_GO, MO_ACT_LEAVE_PAUSED);
	default:
		return (struct mo_step){s, MO_ACT_NONE, step(s, MO_ACT_NONE).ms_rc};
	}
}

static struct mo_step dest_next(enum mo_state s, enum mo_event ev)
{
	bool ok = ev == MO_EV_OK;
	switch (s) {
	case MO_HANDSHAKE: /* no domain yet */
		return ok ? step(MO_STREAMING, MO_ACT_START_STREAM) : step(MO_FAILED, MO_ACT_NONE);
	case MO_STREAMING: /* the restore may have created the domain */
		return ok ? step(MO_READY, MO_ACT_SEND_READY) : step(MO_FAILED, MO_ACT_DESTROY_DEST);
	case MO_READY: /* no GO (yet): the source still owns the VM */
		return ok ? step(MO_GO, MO_ACT_UNPAUSE_DEST) : step(MO_FAILED, MO_ACT_DESTROY_DEST);
	case MO_GO:
		if (ok)
			return step(MO_DONE, MO_ACT_SEND_RUNNING);
		/* the unpause failed after GO: the source is paused and may think we run;
		 * destroying here could leave zero copies: keep it, the pool decides */
		return step(MO_AFTER_GO, MO_ACT_LEAVE_PAUSED);
	default:
		return (struct mo_step){s, MO_ACT_NONE, step(s, MO_ACT_NONE).ms_rc};
	}
}

struct mo_step mig_owner_next(enum mo_role role, enum mo_state state, enum mo_event ev)
{
	if ((int)state < 0 || state >= MO_NSTATES || (int)ev < 0 || ev >= MO_NEVENTS)
		return step(MO_FAILED, MO_ACT_NONE);
	return role == MO_SOURCE ? source_next(state, ev) : dest_next(state, ev);
}

bool mig_owner_terminal(enum mo_state s)
{
	return s == MO_DONE || s == MO_FAILED || s == MO_AFTER_GO;
}

const char *mig_owner_state_name(enum mo_state s)
{
	static const char *const names[] = {"handshake", "streaming", "ready", "go",
					    "done", "failed", "after-go"};
	return (int)s >= 0 && s < MO_NSTATES ? names[s] : "?";
}

const char *mig_owner_action_name(enum mo_action a)
{
	switch (a) {
	case MO_ACT_NONE: return "none";
	case MO_ACT_START_STREAM: return "start-stream";
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
