/*
 * rpu.h - the rolling pool upgrade as poold runs it (the rules are
 * upgrade.h's; this is the effects' side, shared by the rpu*.c files).
 *
 *   rpu_mode.c   rolling-upgrade mode set and cleared from the hosts'
 *                versions; the coordinator check on reports; the blocked
 *                pool-level operations
 *   rpu_journal.c  the API calls the run makes, its journal, a stop
 *   rpu.c        the run: its tick, each host's steps, its life
 *   rpu_hook.c   the upgrade command of a host, detached from poold
 *   rpu_home.c   suspending HA and auto power-on, the VMs going home,
 *                restoring what was suspended
 *   api_rpu.c    pool.rolling_upgrade / pool.rolling_upgrade_plan (ours)
 *
 * The run's whole state is one JSON object (struct rpu's rp_st), stored
 * in the database (meta key "rolling_upgrade") at every change and in the
 * task (other_config:rolling_upgrade) for xe. Every step reads the
 * records and that state and is safe to repeat, so a poold restarted in
 * the middle (the master itself is upgraded) goes on where it was.
 */
#ifndef RPU_H
#define RPU_H

#include "poold.h"
#include "upgrade.h"

#define RPU_META_KEY "rolling_upgrade"
#define RPU_TICK_MS 500

struct rpu_tok;

struct rpu {
	struct poold *rp_pd;
	json_t *rp_st;            /* the journal (see rpu.c) */
	struct api_call *rp_c;    /* the Async call; NULL after a restart or when its client left */
	struct rpu_tok *rp_toks;  /* API calls the run made that have not answered */
	bool rp_busy;             /* one of them is awaited before the next step */
	bool rp_restoring;        /* re-enabling HA: pool.enable_ha is the run's own */
	int rp_home_flight;       /* migrations home in flight */
	int64_t rp_act_after;     /* ms: after a restart, the heartbeats have spoken */
	bool rp_dirty;            /* rp_st changed: store it */
};

struct rpu_state {
	struct event *rs_timer;   /* the mode (every second) and the run's tick */
	unsigned rs_ticks;
	json_t *rs_refused;       /* host ref -> version: reports refused, said once */
	struct rpu *rs_run;       /* NULL when no run */
};

/* ---- rpu_mode.c ---- */
/* Set or clear pool.other_config:rolling_upgrade_in_progress from the
 * hosts' versions (and derive operations again when it flips). */
void rpu_mode_sync(struct poold *pd);
/* The master host's versions (strings borrowed from *rec, a new reference). */
struct upgrade_ver rpu_master_ver(struct poold *pd, json_t **rec);

/* ---- rpu_journal.c ---- */
json_int_t rpu_int(const json_t *o, const char *k);
void rpu_set_int(json_t *o, const char *k, json_int_t v);
typedef void (*rpu_call_fn)(struct rpu *r, json_t *err, json_t *result, const char *arg);
/* Call an API method as the run (no session): fn runs once it answers
 * (not at all if the run is gone by then). args taken. */
void rpu_call(struct rpu *r, const char *method, json_t *args, rpu_call_fn fn, const char *arg);
/* The run is going: its calls still out are let go. */
void rpu_calls_drop(struct rpu *r);
/* The state changed: store it (and tell the task, with progress and ETA). */
void rpu_save(struct rpu *r);
/* The run ended: its journal goes. */
void rpu_forget(struct poold *pd);
/* The pool record (new reference) and its ref. */
json_t *rpu_pool(struct poold *pd, char *ref);
/* Stop the run now (host: the index of the host at fault, -1 none): why
 * recorded with detail (taken); the VMs go home as far as they can, then
 * what was suspended is restored, then it ends. */
void rpu_fail(struct rpu *r, int host, const char *reason, json_t *detail);

/* ---- rpu.c ---- */
void rpu_tick(struct rpu *r);
struct rpu *rpu_new(struct poold *pd, json_t *st, struct api_call *c);
void rpu_free(struct rpu *r);

/* ---- rpu_hook.c ---- */
/* Start cmd for the host (uuid): detached from poold (a session of its
 * own, poold's descriptors closed), its output in DIR/rpu/UUID.log and
 * its exit status in DIR/rpu/UUID.status when it ends. -1 and err when it
 * could not start. */
int rpu_hook_start(struct poold *pd, const char *uuid, const char *cmd, char *err, size_t errlen);
/* How it is doing; *code its exit status once ended. started: when poold
 * started it (0: not started). */
enum upgrade_cmd rpu_hook_status(struct poold *pd, const char *uuid, int64_t started, int *code);
/* The last bytes of its output (malloc'ed). */
char *rpu_hook_output(struct poold *pd, const char *uuid, size_t tail);

/* ---- rpu_home.c ---- */
/* Record what HA and auto power-on were, then turn them off. true when done. */
bool rpu_suspend(struct rpu *r);
/* Send the VMs home (a wave at a time). true when nothing is left to do. */
bool rpu_home(struct rpu *r);
/* Put HA and auto power-on back as they were. true when done. */
bool rpu_restore(struct rpu *r);

/* ---- api_rpu.c ---- */
/* The plan of a run with options opts: hosts in order (skipped or not),
 * each one's VMs and where they would go; *blocks: what refuses it
 * ([[code, params...]...], empty when it may start). */
json_t *rpu_plan(struct poold *pd, json_t *opts, json_t **blocks);

#endif
