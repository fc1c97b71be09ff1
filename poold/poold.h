/*
 * poold.h - the pool master's shared state and the functions each of its
 * files exports, grouped by file (one header tells the whole program).
 */
#ifndef POOLD_H
#define POOLD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdatomic.h>
#include <time.h>
#include <jansson.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include "agent_proto.h"
#include "conf.h"
#include "db.h"
#include "ha.h"
#include "haplan.h"
#include "place.h"
#include "xmlrpc.h"

struct api_call;
struct evt_waiter;
struct agent_link;
struct evac;
struct httpsrv;
struct sxm_job;
struct ha_state;
struct snap_ha;
struct mfo;
struct durable;
struct http_held;
struct rpu_state;

/* The daemon: one per process, owned by main(). */
struct poold {
	struct event_base *pd_base;
	struct httpsrv *pd_http;     /* the XAPI port (lib/httpsrv.h) */
	struct db *pd_db;
	struct conf *pd_conf;
	char pd_dir[4096];
	char pd_pool_ref[64];
	char pd_host_ref[64];        /* the master's own host object */
	json_t *pd_sessions;         /* ref -> last_active (seconds), the valid sessions */
	json_t *pd_methods;          /* method name -> index into pd_method_tab */
	struct api_method *pd_method_tab;
	size_t pd_nmethods;
	struct evt_waiter *pd_waiters; /* event.from calls waiting for a change */
	int64_t pd_notified;         /* newest event id waiters were told about */
	struct event *pd_gc_timer;
	struct event *pd_live_timer;
	json_t *pd_host_seen;        /* host ref -> monotonic second of its last heartbeat */
	json_t *pd_host_report;      /* host ref -> {report, memory_free, __at}: its last recorded beat */
	json_t *pd_doubles;          /* VM ref -> {host ref: true}: doubles already alarmed (heartbeat.c) */
	json_t *pd_vm_changed;       /* VM ref -> {host ref: {boot, seq}}: its last operation's answers (vm_changed_stamp) */
	struct ssl_ctx_st *pd_agent_ctx; /* client TLS to agents: our certificate, the pool CA */
	struct agent_link *pd_links; /* kept connections to the agents (agentcall.c) */
	struct evac *pd_evacs;       /* host evacuations running (api_evacuate.c) */
	struct sxm_job *pd_sxm;      /* storage migrations running or queued (migrate_storage.c) */
	struct event *pd_sxm_queue;  /* starts queued storage migrations (sxm_queue.c) */
	struct pwcheck *pd_pwcheck;  /* password checks (made at the first login) */
	struct throttle *pd_throttle; /* failed logins per address and user */
	struct ha_state *pd_ha;      /* HA: its configuration, restarts, timers (ha_run.c) */
	struct rpu_state *pd_rpu;    /* rolling upgrade: the mode, the run (rpu.h) */
	uint64_t pd_calls;
	bool pd_master;              /* master.c started: this poold is the pool master */
	int pd_port;                 /* the XAPI port it really listens on */
	bool pd_reexec;              /* stepped down: main() starts this program again */
	struct mfo *pd_mfo;          /* who is master, the lease, the standby's state (mfo.c) */
	struct durable *pd_durable;  /* group commit, when the database is on shared storage */
	struct http_held *pd_held;   /* answers waiting for their commits to reach the disk (http.c) */
	/* A standby answers calls itself (mfo_standby.c): api_dispatch hands it
	 * every call first; true = answered. A pointer, so api.c names no
	 * role's code. */
	bool (*pd_divert)(struct api_call *c, const char *method);
	json_t *pd_master_info;      /* what agents learn with each heartbeat: {epoch, address, port, masters} */
	char pd_took_over[200];      /* "" or why the master changed at this start (orphaned tasks say it) */
};

/* ---- api.c: method registry, dispatch, Async tasks ---- */

enum api_flags {
	API_NO_SESSION = 1, /* session.login_with_password, system.listMethods */
	API_ASYNC = 2,      /* also callable as Async.<name> */
	API_AGENT = 4,      /* only for agents: their pool certificate is the credential */
};

typedef json_t *(*api_handler)(struct api_call *c);

struct api_method {
	const char *am_name;    /* "VM.clone" */
	int am_min, am_max;     /* parameter counts, session included */
	unsigned am_flags;
	api_handler am_fn;
	const struct model_class *am_class;  /* generated methods: their class */
	const struct model_field *am_field;  /* generated get_/set_: their field */
	char *am_owned_name;    /* generated names are allocated */
};

/* One call in flight. A handler returns NULL with c->result (or c->raw)
 * set, an XAPI error, or API_PENDING when it will finish later through
 * api_call_finish() (event.from long-polls, long tasks). */
struct api_call {
	struct poold *ac_pd;
	const struct api_method *ac_method;
	json_t *ac_params;       /* all params as sent (session first) */
	json_t *ac_args;         /* params after the session */
	char ac_session[64];     /* "" when the method needs none */
	char ac_task[64];        /* the task when called as Async.*, else "" */
	char ac_peer[64];        /* CN of the verified client certificate (agents), else "" */
	char ac_addr[64];        /* the client's address ("" when not over the network) */
	json_t *ac_result;       /* owned */
	struct evbuffer *ac_raw; /* owned: result as JSON text, used when set */
	/* A result too big to build at once is streamed: the transport calls
	 * ac_stream for the next piece (appended to out) while it returns 1;
	 * 0 = that was the last piece, -1 = failed (the answer is cut off).
	 * The result is a JSON object and each piece holds whole members of
	 * it, so XML-RPC converts piece by piece (http.c). */
	int (*ac_stream)(struct api_call *c, struct evbuffer *out);
	int64_t ac_stream_pos;
	void (*ac_done)(struct api_call *c, json_t *err); /* transport callback */
	void *ac_transport;      /* the HTTP request */
	/* A parked call (API_PENDING) says how to drop it if its client goes
	 * away before the answer: the transport calls ac_cancel, which undoes
	 * the parking and frees the call without answering. */
	void (*ac_cancel)(struct api_call *c);
	void *ac_parked;
	json_t *ac_id;           /* JSON-RPC id */
	bool ac_v2;              /* JSON-RPC 2.0 framing */
};

extern json_t *const API_PENDING;

/* Register methods (a table such as api_table.c's); api_register_generic
 * adds the model's. */
int api_init(struct poold *pd, const struct api_method *tab, size_t n);
/* Add one method (a generated one: an explicit method of the same name wins). */
int api_add(struct poold *pd, const struct api_method *m);
json_t *system_noop(struct api_call *c);
json_t *system_list_methods(struct api_call *c);
void api_fini(struct poold *pd);
/* Look up, check count and session, run (or start an Async task). Calls
 * c->ac_done exactly once, now or later. */
void api_dispatch(struct api_call *c, const char *method);
void api_call_finish(struct api_call *c, json_t *err);
void api_call_free(struct api_call *c);
/* The call's result as JSON text: the buffer to write it into, or a
 * malloc'ed text handed over without a copy. */
struct evbuffer *api_raw(struct api_call *c);
void api_raw_take(struct api_call *c, char *text);
/* The call's whole result as a value, whether it was built (ac_result),
 * written as text (ac_raw) or streamed (read to its end now): a new
 * reference, NULL for void; NULL and *err when the stream failed. */
json_t *api_result_whole(struct api_call *c, json_t **err);
/* How XML-RPC types method m's answer (xmlrpc.h). */
struct xr_type api_result_type(const struct api_method *m);
/* Arguments (index after the session) with type checks: FIELD_TYPE_ERROR. */
json_t *api_arg_str(struct api_call *c, size_t i, const char *name, const char **out);
json_t *api_arg_ref(struct api_call *c, size_t i, const char *cls, const char **out);
json_t *api_arg_int(struct api_call *c, size_t i, const char *name, json_int_t *out);
json_t *api_arg_bool(struct api_call *c, size_t i, const char *name, bool *out);
json_t *api_arg_obj(struct api_call *c, size_t i, const char *name, json_t **out);
/* Record key=value in a task's other_config (a phase, figures). */
void api_task_note(struct poold *pd, const char *task, const char *key, const char *value);
/* Set a task's progress (0..1, never lowered). */
void api_task_progress(struct poold *pd, const char *task, double progress);
/* End a task whose API call is gone (work resumed after a restart): err
 * NULL = success. err is borrowed. */
void api_task_end(struct poold *pd, const char *task, json_t *err);
/* Destroy tasks finished more than task-retention ago (periodic). */
void api_task_gc(struct poold *pd);

/* ---- api_table.c: the hand-written methods ---- */
extern const struct api_method api_methods[];
extern const size_t api_nmethods;

/* ---- api_objects.c: generated per-class methods, records ---- */
int api_register_generic(struct poold *pd);
/* Validate a record given to <Class>.create: known fields of the right
 * type, constructor fields only. */
json_t *api_record_check(const struct model_class *c, const json_t *rec);

/* ---- api_host.c ---- */
/* A join token as the database keeps it: its SHA-256 (out: 65 bytes). */
void join_token_hash(const char *token, char *out);

/* ---- api_sr.c ---- */
/* A host with SR sr plugged and live (into host, >= 64 bytes), or NULL. */
const char *sr_worker(struct db *db, const char *sr, char *host);
/* The record of a copy (clone or snapshot) of VDI src, uuid given. */
json_t *vdi_copy_record(struct db *db, const char *src, const char *uuid, bool snapshot);
/* Store a VDI made by an agent (answer: location, sizes, the SR's space). */
json_t *vdi_record_insert(struct db *db, const json_t *rec, json_t *answer, char *ref_out);
/* Record an agent's report of an SR's space ({uuid, physical_size, ...}). */
json_t *sr_space_update(struct db *db, json_t *space);

/* ---- api_host.c ---- */
/* In a transaction: a host's records go (PBDs, PIFs, metrics, the host)
 * and the pool's CPU level is recomputed without it. */
json_t *host_records_remove(struct poold *pd, struct db *db, const char *host);

/* ---- api_vm.c ---- */
/* Insert a VM (halted) and its metrics in a transaction; rec holds the
 * record's fields (its memory limits are checked). */
json_t *vm_record_insert(struct db *db, json_t *rec, char *ref_out);
/* Copy the VBDs or VIFs (cls) of VM from to VM to, detached; a VBD whose
 * VDI is a key of vdi_map (may be NULL) points at its value. */
json_t *vm_devices_copy(struct db *db, const char *cls, const char *parent_field, const char *from, const char *to,
			const json_t *vdi_map);

/* ---- api_vm_life.c ---- */
/* The SR a suspend image of vm (record) goes to, plugged on host (out:
 * >= 64 bytes); NULL, or VM_NO_SUSPEND_SR. */
json_t *vm_suspend_sr(struct db *db, const char *pool, const json_t *vm, const char *host, char *out);

/* ---- vdijob.c: VDIs made one after the other for one call ---- */
/* All VDIs made: made[i] is the ref for items[i]. Write the rest (in one
 * transaction) and set *result; an error undoes every VDI made. */
typedef json_t *(*vdijob_done_fn)(struct api_call *c, struct poold *pd, void *ctx, json_t *made, json_t **result);
/* A step failed (after the VDIs made were undone): undo the caller's own
 * reservations. *err may be replaced. */
typedef void (*vdijob_fail_fn)(struct poold *pd, void *ctx, json_t **err);
/* Make items in order: {"vdi": ref, "sr": ref or "" (the source's),
 * "snapshot": bool} copies a VDI, {"create": size, "sr": ref, "record":
 * {...}} makes a new one. items and ctx are taken (ctx_free(ctx) at the
 * end). Returns as an agent_ok_fn: an error, NULL with *result (nothing
 * to make), or API_PENDING (c, if any, is finished later). */
json_t *vdijob_run(struct poold *pd, struct api_call *c, json_t *items, vdijob_done_fn done, vdijob_fail_fn fail,
		   void *ctx, void (*ctx_free)(void *), json_t **result);
/* VDIs made for a call that failed: files (through an agent) and records go. */
void vdijob_undo(struct poold *pd, const json_t *refs);

/* ---- api_vm_power.c ---- */
/* What an agent needs to build vm's domain (memory, vCPUs, CPU, disks,
 * the sim workload), as JSON. */
json_t *start_config(struct db *db, const char *pool, const char *vm, json_t *v, bool paused);
/* A start nobody waits for (HA's restarts): checked and reserved now (an
 * error, nothing started), then done(pd, arg, vm, host, err) once the
 * agent answered (err NULL: it runs there, recorded; borrowed). host NULL:
 * placement picks. flags: extra PLACE_ flags (PLACE_NO_HA). */
typedef void (*vm_started_fn)(struct poold *pd, void *arg, const char *vm, const char *host, json_t *err);
json_t *vm_start_internal(struct poold *pd, const char *vm, const char *host, unsigned flags, vm_started_fn done,
			  void *arg);

/* ---- snapshot.c: the database as placement sees it (place.h's structs) ---- */
/* A snapshot owns every record, string and array its pool points into. */
struct snap {
	struct place_pool sn_pool;
	struct place_host sn_source;   /* sn_pool.pp_source points here when there is one */
	struct place_host *sn_hosts;
	struct place_vm *sn_vms;
	json_t *sn_keep;               /* the records and strings the structs point into */
	json_t *sn_groups;             /* anti-affinity VM_group refs */
	json_t *sn_nets;               /* network ref -> where a host may have it */
	void **sn_blocks;              /* the arrays, freed with the snapshot */
	size_t sn_nblocks, sn_cap;
	struct snap_ha *sn_ha;         /* HA admission: the plan its hosts' ph_ha checks against */
};
/* The pool for a placement: the VMs vms (an array of refs; NULL: every VM
 * resident on source but the control domain, none without a source), the
 * candidate hosts hosts (NULL: every host but source), source (NULL: none,
 * as for a start) as pp_source, flags as pp_flags. HANDLE_INVALID when a
 * ref of hosts is not a host (sn is then empty); else NULL. Run it inside
 * the transaction that writes the decision. */
json_t *snap_build(struct db *db, const char *source, json_t *vms, json_t *hosts, unsigned flags, struct snap *sn);
void snap_free(struct snap *sn);
/* The pool is in rolling-upgrade mode (pool.other_config:rolling_upgrade_in_progress). */
bool snap_rolling(struct db *db);
/* A host's virtual_hardware_platform_versions (strings, as the model
 * declares them, or numbers) into out; the count. */
size_t snap_hw_set(json_t *set, int64_t *out, size_t max);
/* The strings of a JSON array as a C array borrowing them (free the array
 * only). */
const char **snap_strings(json_t *arr);
/* The pool as the failover planner sees it: every host, and every VM
 * with an HA priority that runs (its home: the host it runs on) or waits
 * for a restart (ha_always_run, halted: no home). priorities: VM ref ->
 * priority overriding the records (the hypothetical question), or NULL.
 * When HA admission applies (HA on, overcommit not allowed, a plan for
 * at least one failure kept), snap_build gives each candidate host of a
 * single-VM placement this plan to keep (place.h's HA row) unless its
 * flags have PLACE_NO_HA. */
struct snap_ha {
	struct snap sh_snap;
	struct haplan_vm *sh_vms;
	size_t sh_n;
	struct haplan_admit sh_admit;
	int sh_k;                      /* the pool's ha_plan_exists_for */
};
struct snap_ha *snap_ha_build(struct db *db, json_t *priorities);
void snap_ha_free(struct snap_ha *sh);

/* ---- vm_limits.c ---- */
/* The limits of a VM record going from before (NULL: a new VM) to after:
 * INVALID_VALUE for a value out of range, VM_BAD_POWER_STATE for a static
 * limit changed while not halted, XAPI's CONSTRAINT_VIOLATION errors for
 * the ordering. */
json_t *vm_check_limits(const char *ref, const json_t *before, const json_t *after);

/* ---- message.c: XAPI's alerts ---- */
/* Record an alert (inside a transaction); it is also logged. */
json_t *msg_add(struct db *db, const char *name, int priority, const char *cls, const char *obj_uuid,
		const char *body);
json_t *message_create(struct api_call *c);
json_t *message_get(struct api_call *c);
json_t *message_get_since(struct api_call *c);
json_t *message_destroy_many(struct api_call *c);

/* ---- session.c: which sessions are valid ---- */
/* NULL when ref is a valid session (it is active again), else SESSION_INVALID. */
json_t *session_check(struct poold *pd, const char *ref);
/* A session just made (login) is valid from now. */
void session_remember(struct poold *pd, const char *ref, time_t now);
/* ref is a session that has not expired (nothing is touched). */
bool session_known(struct poold *pd, const char *ref);
void session_load(struct poold *pd);
void session_gc(struct poold *pd);

/* ---- api_session.c: login and logout ---- */
/* The login machinery's threads and tables (before the loop is freed). */
void session_fini(struct poold *pd);

/* ---- pwcheck.c: password checks on a bounded pool of threads ---- */
enum pwcheck_result { PWCHECK_NOT_RUN = -1, PWCHECK_WRONG = 0, PWCHECK_OK = 1 };
struct pwcheck;
struct pwcheck_job;
/* Just before the check starts (on the loop): false = do not run it (the
 * done callback then gets PWCHECK_NOT_RUN). */
typedef bool (*pwcheck_start_fn)(void *arg);
typedef void (*pwcheck_done_fn)(void *arg, enum pwcheck_result r);
/* threads workers; at most queue_max jobs waiting, per_key_max of them
 * with one key (a client address); one job per key runs at a time. */
struct pwcheck *pwcheck_new(struct event_base *base, int threads, int queue_max, int per_key_max);
/* Check password against stored (NULL: an unknown user, checked against a
 * dummy hash so that it costs the same). done runs on the loop. NULL when
 * the queue (or the key's share of it) is full: nothing was queued. */
struct pwcheck_job *pwcheck_submit(struct pwcheck *p, const char *key, const char *password, const char *stored,
				   pwcheck_start_fn start, pwcheck_done_fn done, void *arg);
/* The job's owner has gone: done will not run. */
void pwcheck_cancel(struct pwcheck_job *j);
void pwcheck_free(struct pwcheck *p);

/* ---- throttle.c: waiting after failed logins (pure rules, and a table) ---- */
struct throttle_policy {
	int64_t tp_base_ms; /* the wait after a first failure (0: no throttling) */
	int64_t tp_max_ms;  /* the longest wait */
};
struct throttle_entry {
	int te_failures;     /* in a row */
	int64_t te_last_ms;  /* the last one */
	int64_t te_until_ms; /* no attempt before */
};
int64_t throttle_delay(const struct throttle_policy *p, int failures);
void throttle_fail(struct throttle_entry *e, const struct throttle_policy *p, int64_t now);
bool throttle_expired(const struct throttle_entry *e, const struct throttle_policy *p, int64_t now);
/* How long an attempt now waits: its address's wait and, only when the
 * address has failed lately, its user's. */
int64_t throttle_wait(const struct throttle_entry *addr, const struct throttle_entry *user,
		      const struct throttle_policy *p, int64_t now);
struct throttle {
	json_t *th_map; /* key -> [failures, last, until] */
	struct throttle_policy th_policy;
	size_t th_max_keys;
};
struct throttle *throttle_new(const struct throttle_policy *p, size_t max_keys);
void throttle_free(struct throttle *t);
struct throttle_entry throttle_get(const struct throttle *t, const char *key);
/* A success clears key; a failure counts (the quietest keys make room
 * when the table is full). */
void throttle_record(struct throttle *t, const char *key, bool ok, int64_t now);
int64_t throttle_wait_for(const struct throttle *t, const char *addr_key, const char *user_key, int64_t now);

/* ---- api_event.c ---- */
void evt_commit_hook(void *ctx, int64_t last_event);
void evt_fini(struct poold *pd);
char *evt_token(int64_t id);

/* ---- host_report.c: what an agent says about its host ---- */
struct host_report {
	const char *name, *hostname, *address, *migration_address, *backend, *version, *vendor, *features;
	json_int_t port, memory_total, memory_free, cpus;
	const char *platform;  /* platform_version ("" from an agent that predates it) */
	int64_t hw[32];        /* virtual hardware platform versions offered ([0] when not said) */
	size_t nhw;
};
/* Check a report (borrowed strings point into r): INVALID_VALUE when a
 * field is missing or malformed. */
json_t *host_report_parse(json_t *r, struct host_report *out);
/* The host record's fields a report sets (new object). */
json_t *host_report_fields(const struct host_report *r);
/* The host's addresses as PIFs: eth0 management, eth1 migration. */
json_t *host_pifs_sync(struct db *db, const char *host, const struct host_report *r);
/* The host's control domain (Xen's dom0), one per host as XAPI lists it:
 * a VM that is_control_domain, Running on it, named after the host;
 * created at the host's first full report (h: the host's record). */
json_t *control_domain_sync(struct db *db, const char *host, const json_t *h, const struct host_report *r);
/* The guest metrics of the VMs recorded running on host, from what their
 * guests say in its report (domains[].guest): created at the first word,
 * rewritten only when it changes. */
json_t *guest_metrics_sync(struct db *db, const char *host, const json_t *report);
/* VM vm halted or goes away: its guest metrics go too (as in XAPI). */
json_t *guest_metrics_drop(struct db *db, const char *vm);

/* ---- heartbeat.c: heartbeats, liveness, where VMs run ---- */
void host_liveness_start(struct poold *pd);
void host_liveness_stop(struct poold *pd);
/* The host spoke (joined, reported): live from now on. */
void host_seen(struct poold *pd, const char *host);
/* The host left the pool: forget what it said. */
void host_forget_seen(struct poold *pd, const char *host);
/* After a start, how long until every live host has reported (the records
 * say where VMs were; the reports say where they are): what anything a
 * start resumes (evacuations, storage migrations, an upgrade, HA restarts)
 * waits for before it acts. */
int64_t host_reports_settle_ms(const struct poold *pd);
/* cb(arg) once, host_reports_settle_ms from now. */
void host_after_reports(struct poold *pd, event_callback_fn cb, void *arg);

/* ---- api_migrate.c: the one migration mechanism (VM.pool_migrate, host.evacuate) ---- */
/* The outcome: err NULL = the VM runs on the destination (recorded); else
 * the error the task ends with (borrowed). stats: the source's figures, or
 * NULL. */
typedef void (*migrate_done_fn)(struct poold *pd, void *arg, json_t *err, json_t *stats);
/* After a move: the source's copy is gone (released), or could not be
 * confirmed gone (why; the heartbeats settle a paused copy left behind). */
typedef void (*migrate_released_fn)(struct poold *pd, void *arg, bool released, const char *why);
/* Check, reserve and start moving vm to host. opts: XAPI's option map
 * (live, compress, force, network) plus ours (max_downtime_ms, max_rounds,
 * verify). task: where progress goes ("" or NULL: nowhere). Returns an
 * error when a check refused (nothing started, done not called), else
 * API_PENDING: c (if any) is finished by the migration, and done (if any)
 * is called once. Without released, c's answer and done wait until the
 * source's copy is gone (as XAPI's VM.pool_migrate); with it, done comes
 * as soon as the move is recorded and released after a move only, once
 * the source has destroyed its copy (an evacuation starts its next
 * migration meanwhile). */
json_t *migrate_start(struct poold *pd, struct api_call *c, const char *vm, const char *host, json_t *opts,
		      const char *task, migrate_done_fn done, migrate_released_fn released, void *arg);
/* The same, prepared ahead: checked, reserved and the destination
 * prepared now (its empty paused domain, its endpoint listening), but the
 * source is asked to stream only at migrate_go (at once if the destination
 * is ready, else as soon as it is). An evacuation prepares its next VM
 * while the one before streams. *job: as migrate_detach says. */
struct mig_job;
json_t *migrate_prepare(struct poold *pd, const char *vm, const char *host, json_t *opts, migrate_done_fn done,
			migrate_released_fn released, void *arg, struct mig_job **job);
void migrate_go(struct mig_job *job);
/* A migration prepared ahead that is not to run (a cancelled evacuation;
 * one held too long for its endpoint): the destination takes its endpoint
 * and empty domain back (agent.migrate_receive_cancel), the reservation
 * goes, done is called with an error. Only before migrate_go. */
void migrate_drop(struct mig_job *job);
/* Its caller goes away (poold stops being master): done and released are
 * not called any more; the job ends on its own (one prepared ahead is
 * dropped). job is valid until done is called, and after a move until
 * released is. */
void migrate_detach(struct mig_job *job);
/* The memory migration inside a storage migration (migrate_storage.c):
 * the VM is placed as it will be once moved, under the operation the
 * caller holds (and ends), the destination's domain takes the copies of
 * the disks, the source finishes the disks' mirrors inside its pause, and
 * the move is recorded together with the caller's commit. */
struct migrate_ext {
	const char *x_op_id;	   /* the VM's current operation, the caller's */
	json_t *x_srs;		   /* the SRs of its disks once moved (array of refs; placement) */
	json_t *x_nets;		   /* the networks of its VIFs once mapped (array of refs) */
	json_t *x_disks;	   /* VDI uuid -> {vdi_uuid, sr}: the destination's disks instead */
	json_t *x_source_opts;	   /* added to the agents' options ({"mirrors": [ids]}) */
	double x_prog_lo, x_prog_hi; /* the memory phase's share of the task's progress */
	const char *x_phase_prefix;  /* before its phase notes ("memory: ") */
	db_txn_fn x_commit;	   /* run inside the transaction that records the move */
	const char *x_commit_arg;  /* its ctx: a string (< 64 bytes), copied */
};
/* The destination's address on network net (a PIF of dst on it with an
 * IP): NULL, or HANDLE_INVALID / INVALID_VALUE [network, net]. */
json_t *migrate_address(struct db *db, const char *dst, const char *net, char *out, size_t n);
json_t *migrate_start_ext(struct poold *pd, struct api_call *c, const char *vm, const char *host, json_t *opts,
			  const char *task, const struct migrate_ext *x, migrate_done_fn done,
			  migrate_released_fn released, void *arg);
/* ---- heartbeat.c: after an agent answered an operation on vm, its reports
 * made before that answer (answer: {boot, seq}) must not undo it. Every
 * host's newest stamp is kept. */
void vm_changed_stamp(struct poold *pd, const char *vm, const char *host, json_t *answer, bool first);

/* ---- sxm_journal.c: storage migrations' journal (meta "storage_migrations") ---- */
json_t *sxm_journal_all(struct db *db);
json_t *sxm_journal_get(struct db *db, const char *id);
/* Inside a transaction: the entry written (borrowed), or removed (NULL). */
json_t *sxm_journal_put(struct db *db, const char *id, json_t *entry);
/* Jobs still deciding the VM's fate from host. */
int sxm_journal_running_from(struct db *db, const char *host);
/* {SR ref: bytes} those jobs reserved (new object). */
json_t *sxm_journal_reserved(struct db *db);
/* The record of a temporary snapshot or a destination copy of src_vdi
 * (answer: the agent's {location, physical_utilisation, sr space}). */
json_t *sxm_vdi_record(struct db *db, const char *job, const char *src_vdi, const char *uuid, const char *sr,
		       bool snapshot, json_t *answer, char *ref_out);
/* A VDI's record gone (with its drives), the SR's space as reported. */
json_t *sxm_vdi_forget(struct db *db, const char *vdi, json_t *space);
/* The commit (ctx: the job id): the VM's drives name the copies, its VIFs
 * the mapped networks, its operation ends, the journal says committed.
 * Run in the transaction that records the move; idempotent. */
json_t *sxm_commit_txn(struct db *db, void *ctx);

/* ---- sxm_facts.c: a storage migration's checks on the database ---- */
struct sxm_ask {
	const char *sa_vm;
	const char *sa_dst;	/* the destination host (VDI.pool_migrate: the VM's own) */
	json_t *sa_vdi_map;	/* VDI ref -> SR ref (borrowed) */
	json_t *sa_vif_map;	/* VIF ref -> network ref */
	bool sa_force;		/* skip the CPU check, as XAPI's force */
	bool sa_same_host;	/* VDI.pool_migrate: the VM stays where it runs */
};
/* Every check, in order (the maps, sxm_check_disks, placement of the VM as
 * it will be, the space); NULL, or the first refusal. reserve (may be
 * NULL): the bytes per SR this migration reserves, added to it. plan (may
 * be NULL): gets "vdis" (the journal's row per moving disk), "vifs", and
 * "srs", "nets" (the VM's SRs and networks once moved). */
json_t *sxm_assert(struct poold *pd, const struct sxm_ask *a, json_t *reserve, json_t *plan);
/* The space check again for a journal entry's disks (a queued migration's turn). */
json_t *sxm_space_again(struct poold *pd, json_t *entry, json_t *reserve);

/* ---- migrate_storage.c, sxm_cleanup.c: the storage migrations that run ---- */
struct sxm_job {
	struct poold *sj_pd;
	char sj_id[48];
	json_t *sj_j;		  /* its journal entry as last written */
	struct api_call *sj_c;	  /* the call waiting for its end (NULL: gone, or resumed) */
	char sj_task[64];
	struct event *sj_timer;	  /* polls and retries */
	struct sxm_job **sj_cell; /* the agent call in flight finds the job here (NULL: none) */
	int sj_unreachable;	  /* polls in a row the source did not answer */
	bool sj_queued;		  /* waiting for a slot of its source host */
	bool sj_task_ended;
	json_t *sj_error;	  /* the task's error, once decided */
	int64_t sj_waited_ms;	  /* settling, verifying: how long it has waited */
	size_t sj_row;		  /* verifying: the disk asked now */
	int64_t sj_noted_ms;	  /* when the task's progress was last written */
	struct sxm_job *sj_next;
};
/* A job admitted by api_sxm.c (its entry journaled, or queued): runs it.
 * c (may be NULL) is finished at the end with the result. */
void sxm_start(struct poold *pd, struct sxm_job *job);
struct sxm_job *sxm_job_new(struct poold *pd, const char *id, json_t *entry, struct api_call *c, const char *task);
void sxm_job_free(struct sxm_job *job);
/* fn(job) once, ms from now (the job's one timer: a new one replaces it). */
void sxm_job_timer(struct sxm_job *job, int ms, event_callback_fn fn);
/* Write sj_j to the journal (a transaction of its own); false on failure. */
bool sxm_save(struct sxm_job *job);
/* The task's end: err NULL = success with result (taken). */
void sxm_end_task(struct sxm_job *job, json_t *err, json_t *result);
/* Decided: back to the source / forward. err (taken) is the task's error. */
void sxm_roll_back(struct sxm_job *job, json_t *err);
void sxm_roll_forward(struct sxm_job *job, json_t *err);
/* Remove what the cleanup list names, retrying until every host answered;
 * then the journal entry goes and the job is freed. */
void sxm_cleanup(struct sxm_job *job);
/* The memory migration (or pivot) failed or poold restarted in it: the
 * hosts say where the VM runs, then forward or back (sxm_settle.c). */
void sxm_settle(struct sxm_job *job);
/* At start: the queue's timer, and the journal's jobs go on once the
 * hosts have reported (sxm_queue.c). */
void sxm_resume(struct poold *pd);
void sxm_stop(struct poold *pd);
/* An agent call for job (cell of it; NULL job once it is gone). */
struct sxm_job **sxm_cell(struct sxm_job *job);
/* Task notes. */
void sxm_note(struct sxm_job *job, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- api_evacuate.c: host.evacuate ---- */
/* Evacuations that were running when poold stopped go on (after the
 * heartbeats have settled where each VM runs). */
void evacuations_resume(struct poold *pd);
void evacuations_stop(struct poold *pd);

/* ---- agentcall.c: API calls carried out by a host's agent ---- */
struct agent_addr {
	char aa_address[64];
	char aa_uuid[48];
	int aa_port;
};
/* Where the agent of host listens; false when it has none. */
bool agent_target(struct poold *pd, const char *host, struct agent_addr *out);
/* The agent answered: record it (a transaction) and say what the API call
 * returns (*result; NULL = void). Returns an error or NULL, or API_PENDING
 * after starting the next agent_call for the same c (a chain of steps).
 * c is NULL once the client has gone: the work is still recorded. */
typedef json_t *(*agent_ok_fn)(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t **result);
/* The agent failed or could not be reached: undo what was reserved. *err
 * is the error the API call will end with; it may be replaced (freed and
 * set to a new one) with one that says more. */
typedef void (*agent_fail_fn)(struct poold *pd, void *ctx, json_t **err);
/* Ask host's agent to run method m (agent_proto.h) with params for c
 * (NULL: nobody waits); params and ctx (malloc'ed, freed after the
 * callbacks) are taken. params are checked against the method's
 * declaration before anything is sent. Returns API_PENDING, or an error
 * when the call could not start (fail has run then). */
json_t *agent_call(struct api_call *c, const char *host, enum agent_method m, json_t *params, agent_ok_fn ok,
		   agent_fail_fn fail, void *ctx);
/* The same for a c that may be NULL (a step of a chain whose client went
 * away, or work poold does by itself). */
json_t *agent_call_pd(struct poold *pd, struct api_call *c, const char *host, enum agent_method m, json_t *params,
		      agent_ok_fn ok, agent_fail_fn fail, void *ctx);
/* One callback for both outcomes: exactly one of answer and err is set
 * (err: the agent's error, or HOST_OFFLINE / a transport error). Returns
 * as agent_ok_fn does (an error, NULL with *result, or API_PENDING when it
 * started the next step for c). Always asynchronous: returns API_PENDING,
 * and done runs later even when the agent cannot be reached. */
typedef json_t *(*agent_done_fn)(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err,
				 json_t **result);
json_t *agent_call_done(struct poold *pd, struct api_call *c, const char *host, enum agent_method m, json_t *params,
			agent_done_fn done, void *ctx);
/* Fire and forget (a failure is logged). */
void agent_tell(struct poold *pd, const char *host, enum agent_method m, json_t *params);
/* Kept connections: close the idle ones (periodic), forget a host's, all. */
void agent_links_sweep(struct poold *pd);
void agent_link_forget(struct poold *pd, const char *host);
void agent_links_free(struct poold *pd);

/* ---- ha_run.c, ha_restart.c: HA as the pool master runs it ---- */
/* What poold keeps about HA (the configuration also in the database's
 * meta key "ha", so a restarted poold carries on). */
struct ha_state {
	json_t *hs_conf;           /* {generation, key, timeout, sr, vdi, members: {host ref: uuid}}; NULL: off */
	bool hs_enabling, hs_disabling;
	struct api_call *hs_call;  /* pool.enable_ha / disable_ha waiting, else NULL */
	int64_t hs_deadline;       /* ms: the enable gives up (HA_FAILED_TO_FORM_LIVESET) */
	json_t *hs_joined;         /* host ref -> true: armed and in the liveset (the enable waits) */
	json_t *hs_fenced;         /* host ref -> boot: that run fenced; its reports are refused */
	json_t *hs_boots;          /* host ref -> boot of its newest report */
	json_t *hs_asked;          /* host ref -> ms: arm/disarm last asked (no storm) */
	json_t *hs_addrs;          /* host ref -> "address:port" of its agent, as last reported */
	int64_t hs_rearm_at;       /* ms: tell every member the addresses again (an agent moved), 0: no */
	json_t *hs_vms;            /* VM ref -> {tries, next, said}: restarts that failed */
	int64_t hs_failed_at;      /* ms the last host was declared failed (the restarts' timeline) */
	int64_t hs_prevent_until;  /* ms: pool.ha_prevent_restarts_for */
	int hs_inflight;           /* restarts started and not answered */
	int64_t hs_group_delay;    /* ms to wait once they have: the group's largest start_delay */
	int64_t hs_next_group;     /* ms: no new group before */
	int64_t hs_status_event;   /* the event id the pool status was last computed at */
	int64_t hs_status_at;      /* ms it was */
	struct event *hs_tick;     /* ha_run.c: the enable's deadline */
	struct event *hs_engine;   /* ha_restart.c: restarts and the status, every tick or when made active */
};
/* ha_run.c */
void ha_start(struct poold *pd);
void ha_stop(struct poold *pd);
bool ha_on(struct poold *pd);
/* heartbeat.c calls it for every report: an error refuses the report
 * (HA_SHOULD_BE_FENCED: that run of the agent has fenced). */
json_t *ha_host_report(struct poold *pd, const char *host, json_t *report);
/* pool.enable_ha once checked (api_ha.c): conf as hs_conf, hosts to arm. */
json_t *ha_enable_begin(struct api_call *c, json_t *conf);
json_t *ha_disable_begin(struct api_call *c, bool emergency);
/* ha_restart.c */
/* The engine's tick (after ha_start): it restarts what should run and
 * does not (protected first, by order groups, then best-effort) and keeps
 * the status current; ha_run.c makes hs_engine active after a failure. */
void ha_engine_start(struct poold *pd);
void ha_engine_stop(struct poold *pd);
void ha_engine_run(struct poold *pd);
/* Recompute ha_plan_exists_for / ha_overcommitted when the pool changed
 * (force: now). */
void ha_status_update(struct poold *pd, bool force);
/* host.disable and host.evacuate under HA (api_host.c, api_evacuate.c). */
json_t *ha_check_disable(struct db *db, const char *host);
json_t *ha_check_evacuation(struct db *db, const char *host, const struct place_pool *pool, struct evac_plan *plan);

/* ---- rpu*.c: the rolling pool upgrade (rpu.h has the rest) ---- */
/* The mode's timer; a run poold was doing when it stopped goes on. */
void rpu_start(struct poold *pd);
void rpu_stop(struct poold *pd);
/* A report (join: host NULL) from a member whose product version is
 * above the master's: HOST_XAPI_VERSION_HIGHER_THAN_COORDINATOR (said once
 * in the log and as a message), else NULL. */
json_t *rpu_report_check(struct poold *pd, const char *host, const struct host_report *rep);
/* A pool-level operation (ops.c's table: "SR" "create", "pool"
 * "enable_ha") while the pool is upgraded: NOT_SUPPORTED_DURING_UPGRADE. */
json_t *rpu_check_op(struct poold *pd, const char *cls, const char *op);
/* The task of a run the database holds (out, >= 64 bytes), "" when none. */
const char *rpu_task_of(struct db *db, char *out);

/* ---- txn_later.c: records that must be written ---- */
/* Run fn(ctx) in a transaction; while another process holds the database's
 * lock, keep trying from the loop (ctx is copied: ctxlen flat bytes) until
 * it is written. Other failures are logged. */
void txn_until_done(struct poold *pd, db_txn_fn fn, const void *ctx, size_t ctxlen, const char *what);
/* The same with a ctx of the caller's (taken; ctx_free(ctx) when done). */
void txn_until_done_own(struct poold *pd, db_txn_fn fn, void *ctx, void (*ctx_free)(void *), const char *what);
/* Drop VM reservations no current operation holds (periodic). */
void txn_sweep(struct poold *pd);

/* ---- http.c ---- */
int http_start(struct poold *pd, char *err, size_t errlen);
void http_stop(struct poold *pd);

/* ---- pool.c: pool creation and the built-in objects ---- */
#define POOL_MAX_NAMES 16 /* names given to poold init (--name, --address) */
/* names: extra names for the master's certificate (NULL-terminated, may be
 * NULL) besides localhost, 127.0.0.1, ::1 and the host name. */
int pool_init_dir(const char *dir, const char *password, const char *const *names, char *err, size_t errlen);
int pool_load(struct poold *pd, char *err, size_t errlen);
/* pool.db and its -wal/-shm mode 0600 (create: make pool.db if missing). */
int pool_db_private(const char *dir, bool create, char *err, size_t errlen);
/* The names of a master's certificate: localhost, 127.0.0.1, ::1, the host
 * name, then extra (NULL-terminated), each once, into out (max entries,
 * NULL-terminated): 0, or -1 with err. */
int pool_master_names(const char *hostname, const char *const *extra, const char **out, size_t max, char *err,
		      size_t errlen);
/* Re-issue a server certificate made before TLS_MASTER_CN existed. */
int pool_master_identity(const char *dir, char *err, size_t errlen);

/* ---- master.c: what runs while this poold is the pool master ---- */
/* pd_db is open: load the pool and start serving it (API, heartbeats,
 * HA, evacuations). 0, or -1 with err. */
int master_start(struct poold *pd, char *err, size_t errlen);
/* Stop what master_start started; the database stays open. */
void master_stop(struct poold *pd);

/* ---- join.c: `poold join` ---- */
int poold_join(int argc, char **argv);

/* ---- mstate.c: DIR/master.json, what this poold knows of the master ---- */
struct mstate {
	bool ms_exists;
	char ms_host_uuid[48];      /* this poold's host, "" when never learnt */
	char ms_database[4096];     /* the database on shared storage, "" = DIR/pool.db */
	char ms_master_uuid[48];    /* the master as last known */
	char ms_master_address[64];
	int ms_port;
	uint64_t ms_epoch;
	json_t *ms_ha;              /* {generation, key, timeout, statefile, members} or NULL */
	json_t *ms_users;           /* {name: hash}: emergency logins on a standby */
	json_t *ms_peers;           /* [addresses of hosts with a poold]: asked when the master is silent */
};
int mstate_load(const char *dir, struct mstate *ms, char *err, size_t errlen);
int mstate_save(const char *dir, const struct mstate *ms, char *err, size_t errlen);
void mstate_clear(struct mstate *ms);

/* ---- durable.c: group commit on shared storage ---- */
/* A thread that syncs db_path's WAL when asked; cb(arg) runs on the loop
 * after each sync. */
struct durable *durable_new(struct event_base *base, const char *db_path, void (*cb)(void *arg), void *arg);
/* Are the first `commits` commits on the disk? (d NULL: always.) */
bool durable_covers(struct durable *d, uint64_t commits);
/* Sync until they are. */
void durable_want(struct durable *d, uint64_t commits);
uint64_t durable_syncs(struct durable *d);
/* Syncs what is left and stops. */
void durable_free(struct durable *d);

/* ---- lease_io.c: the statefile as a poold reads it, and the lease it renews ---- */
struct lease_cfg {
	char lc_statefile[4096];
	unsigned char lc_key[HA_KEY_LEN];
	char lc_generation[48];
	int64_t lc_timeout_ms;
	int lc_n, lc_self;
	char lc_members[HA_MAX_HOSTS][48]; /* sorted by uuid, as the agents number them */
};
/* From master.json's "ha" for the host self_uuid: 0, or -1 when unusable. */
int lease_cfg_parse(const json_t *ha, const char *self_uuid, struct lease_cfg *out);
int lease_cfg_member(const struct lease_cfg *c, const char *uuid);
struct lease_obs {
	int64_t lo_read_ms;          /* start of the last read that succeeded, -1 */
	bool lo_lease_ok;            /* the header holds a lease of this HA */
	struct ha_lease lo_lease;
	int lo_holder;               /* its holder's member index, -1 */
	int64_t lo_lease_seen_ms;    /* when the lease was first seen as it is */
	bool lo_self_ok;             /* this host's slot holds a word of this HA ... */
	struct ha_word lo_self;
	int64_t lo_self_slot_ms;     /* ... last seen to change then */
	int64_t lo_renewed_ms;       /* holding: the start of the last renewal that counted */
	int64_t lo_valid_until_ms;   /* holding: writes allowed before this, else -1 */
	char lo_err[256];
};
struct lease_io;
struct lease_io *lease_io_start(const struct lease_cfg *c);
void lease_io_stop(struct lease_io *io);
void lease_io_observe(struct lease_io *io, struct lease_obs *out);
const struct ha_lease_timing *lease_io_timing(struct lease_io *io);
const struct lease_cfg *lease_io_cfg(struct lease_io *io);
int64_t lease_io_valid_until(struct lease_io *io);
/* Take the lease: write l now; 0 when the write counted (held from now,
 * renewed by the thread), else -1 with err. */
int lease_io_acquire(struct lease_io *io, const struct ha_lease *l, char *err, size_t errlen);
/* What the renewals write from now on (address, capable hosts). */
void lease_io_update(struct lease_io *io, const struct ha_lease *l);
/* Stop renewing; say_so: write the lease released (off: HA is off) while it is surely still ours. */
void lease_io_release(struct lease_io *io, bool say_so, bool off);

/* ---- mfo.c: which poold is master; taking over, stepping down (docs/MASTER.md) ---- */
enum mfo_role { MFO_STANDBY, MFO_MASTER };
struct mfo {
	enum mfo_role mf_role;
	struct mstate mf_ms;         /* master.json */
	char mf_run[48];             /* this poold's run */
	char **mf_argv;              /* for the new start as a standby */
	bool mf_reexec;              /* stepping down: start again as a standby */
	_Atomic bool mf_stepped_down; /* the guard refuses every write from then */
	struct event *mf_tick;
	uint64_t mf_epoch;           /* master: the epoch it took */
	int64_t mf_became_ms;        /* master: since when */
	ha_set mf_capable_before;    /* master: the standbys its predecessor's lease named */
	struct lease_io *mf_lease;   /* HA on, the database shared: the statefile */
	bool mf_holding;             /* the lease is ours (the guard enforces it) */
	const char *mf_said;         /* the lease verdict last logged */
	int64_t mf_move_retry, mf_lease_retry;
	struct ssl_ctx_st *mf_peer_ctx; /* our pool-master certificate: to call the master / standbys */
	/* standby */
	int64_t mf_next_sync;
	bool mf_sync_inflight, mf_ha_changed;
	int mf_sync_failed;
	size_t mf_peer_next;
	json_t *mf_local_sessions;   /* emergency logins: ref -> user */
	/* master: host ref -> {uuid, address, at (ms), database (it sees the database's SR)} */
	json_t *mf_standbys;
};
/* Load master.json and decide how this poold starts: master (the database
 * opened: local, or shared and free) or standby. 0, or -1 with err. */
int mfo_init(struct poold *pd, char **argv, char *err, size_t errlen);
/* After the HTTPS port is up: start as master (master.c) or as a standby,
 * and the tick that watches the lease. */
int mfo_start(struct poold *pd, char *err, size_t errlen);
void mfo_stop(struct poold *pd);
bool mfo_is_master(struct poold *pd);
/* A standby becomes master now (why: for the log and orphaned tasks):
 * NULL, or the error (nothing changed: still a standby). */
json_t *mfo_take_over(struct poold *pd, const char *why);
/* The master stops writing at once and starts again as a standby
 * (say_released: tell the standbys through the lease). */
void mfo_step_down(struct poold *pd, const char *why, bool say_released);
bool mfo_reexec_wanted(struct poold *pd);
char **mfo_argv(struct poold *pd);
/* The master's database moves to a redo_log VDI on sr (shared storage). */
json_t *mfo_db_move(struct poold *pd, const char *sr);
/* Hooks and guard on pd_db (after it was opened or replaced). */
void mfo_db_hooks(struct poold *pd);

/* ---- mfo_lease.c: the master's lease as a poold applies it ---- */
/* Start (or restart) the statefile thread for HA info ha; false when it
 * cannot run (no usable info, this host not a member). */
bool mfo_lease_run(struct poold *pd, json_t *ha);
/* Stop it (off: say HA is off, so the standbys stop watching). */
void mfo_lease_stop(struct poold *pd, bool off);
/* The lease, under the epoch being taken: 0, or -1 with err. */
int mfo_lease_take(struct poold *pd, uint64_t epoch, char *err, size_t errlen);
/* The lease as this poold sees it now: a standby follows the master it
 * names, a holder renews it; the verdict (out) says whether to step down
 * or take over, which mfo.c does. false: no verdict yet. */
bool mfo_lease_tick(struct poold *pd, struct ha_lease_verdict *out);

/* ---- mfo_db.c: the shared files as each host sees them ---- */
bool mfo_vdi_path(struct db *db, const char *vdi, const char *host, char *out, size_t n);
/* The pool database's file for host, when it is on shared storage host plugs. */
bool mfo_db_path_for(struct poold *pd, const char *host, char *out, size_t n);
/* HA as host's poold needs it to watch the lease ({generation, key,
 * timeout, statefile, members}); NULL when HA is off or host cannot see it. */
json_t *mfo_ha_info(struct poold *pd, const char *host);
/* The redo_log VDI of sr (made when there is none) and its file here. */
json_t *mfo_db_vdi(struct poold *pd, const char *sr, char *vdi_ref, char *path, size_t pathlen);

/* ---- mfo_sync.c: a standby keeps up with its master ---- */
void mfo_standby_tick(struct poold *pd);

/* ---- mfo_api.c: what a standby answers; the calls that move the role ---- */
/* pd_divert: a standby's answer to every call (HOST_IS_SLAVE, ...). */
bool mfo_divert(struct api_call *c, const char *method);

/* ---- http.c: answers that wait for the disk ---- */
/* Send the answers whose commits are now durable (durable.c's callback). */
void http_held_flush(void *arg);

/* ---- config.c ---- */
extern const struct conf_key poold_conf_keys[];
extern const size_t poold_nconf_keys;

#endif
