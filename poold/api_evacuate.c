/*
 * api_evacuate.c - host.evacuate: a plan first (evacplan.c, a pure
 * function over a snapshot of the pool), then a sliding window of at most
 * batch_size live migrations (api_migrate.c's migrate_start, the same
 * mechanism as VM.pool_migrate), a new one starting as soon as one ends.
 *
 * - While a host is evacuated its current_operations holds
 *   {task: "evacuate"}: it takes no new VMs (VM.start, VM.start_on and
 *   migrations to it answer HOST_EVACUATE_IN_PROGRESS).
 * - One VM's failure does not stop the others: a VM whose migration failed
 *   is re-placed on another suitable host (place_choose on a fresh
 *   snapshot, the hosts it failed on excluded), at most EVAC_TRIES times,
 *   then reported. The task succeeds only when every VM left; otherwise
 *   CANNOT_EVACUATE_HOST [errors], errors being a JSON text
 *   {VM ref: [code, params...]} of each VM left behind and why.
 * - The plan and each VM's state are in the database (meta key
 *   "evacuations"), written at every change. A poold started again finds
 *   them and, once the hosts' heartbeats have told it where each VM runs
 *   (resume_delay), goes on: a VM no longer on the host counts as moved, a
 *   VM that was being migrated and is still there is tried again (an agent
 *   refuses a second migration of a VM it is already sending, so none runs
 *   twice), and the task ends as it would have.
 * - While the window is full, the next VM is prepared ahead
 *   (migrate_prepare: its destination reserved, its empty domain made, the
 *   endpoint listening) and its stream starts the moment a slot frees, so
 *   a VM's set-up overlaps the stream before it. At most one is held; one
 *   held EVAC_HOLD_MS (its endpoint waits 60 s) is taken back and prepared
 *   again after the next stream ends.
 * - Cancelling the task stops new migrations; those in flight finish or
 *   roll back on their own, one prepared ahead is taken back, then the task
 *   ends TASK_CANCELLED.
 *
 * host.compute_evacuation_plan (ours) and host.get_vms_which_prevent_
 * evacuation / host.assert_can_evacuate (XAPI's) run the same planner and
 * move nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include "evacplan.h"
#include "log.h"
#include "poold.h"
#include "util.h"
#include "xerr.h"

#define EVAC_TRIES 3
#define EVAC_HOLD_MS 40000 /* a destination's endpoint waits 60 s for its source */
#define EVAC_AHEAD_DELAY_MS 10 /* after a stream starts, before the next VM is prepared */
#define META_KEY "evacuations"

/* The pool as the planner sees it (snapshot.c): host src evacuated, the
 * VMs vms (an array of refs; NULL = every VM resident on src). */
static void evac_snapshot(struct poold *pd, const char *src, json_t *vms, struct snap *sn)
{
	json_t *e = snap_build(pd->pd_db, src, vms, NULL, PLACE_MIGRATE, sn);
	json_decref(e); /* only given hosts are checked: none here */
}

/* ------------------------------------------------------------ the run */

enum ev_state { EV_PENDING, EV_MIGRATING, EV_DONE, EV_FAILED };
static const char *const state_names[] = {"pending", "migrating", "done", "failed"};

struct evac;

struct evac_vm_st {
	struct evac *vs_ev;
	char vs_ref[64];
	char vs_target[64];
	enum ev_state vs_state;
	int vs_tries;
	json_t *vs_tried;  /* host refs it failed on */
	json_t *vs_error;  /* why it is still here (the last error) */
	double vs_downtime_ms;
	double vs_stream_ms;      /* its migration, from the source's first byte to the hand-over */
	json_int_t vs_memory;
	json_int_t vs_wire_bytes; /* what its migration put on the wire */
	struct mig_job *vs_job;   /* its migration, until it ends (done, then released after a move) */
	bool vs_held;             /* prepared ahead: its stream waits for a slot */
	bool vs_dropping;         /* prepared ahead and taken back: pending again, not a failure */
};

struct evac {
	struct poold *ev_pd;
	struct api_call *ev_c; /* NULL once its client went away, or after a restart */
	char ev_host[64], ev_task[64], ev_network[64], ev_op[80];
	int ev_batch;
	struct evac_vm_st *ev_vms;
	size_t ev_nvms;
	int ev_in_flight, ev_max_in_flight;
	int ev_releasing; /* moved VMs whose copy on the host is still being destroyed */
	struct evac_vm_st *ev_ahead; /* prepared ahead, or NULL */
	uint64_t ev_ahead_since;     /* when (ms) */
	bool ev_no_ahead;            /* one was held too long: none until a stream ends */
	bool ev_cancelled, ev_pumping;
	struct event *ev_tick;
	struct event *ev_ahead_timer; /* the next VM is prepared when it fires */
	struct evac *ev_next;
};


static json_t *vm_json(const struct evac_vm_st *v)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:O, s:I}", "vm", v->vs_ref, "target", v->vs_target, "state",
			      state_names[v->vs_state], "tries", v->vs_tries, "tried", v->vs_tried, "memory",
			      v->vs_memory);
	if (v->vs_error)
		json_object_set(o, "error", v->vs_error);
	if (v->vs_downtime_ms > 0)
		json_object_set_new(o, "downtime_ms", json_real(v->vs_downtime_ms));
	if (v->vs_wire_bytes > 0)
		json_object_set_new(o, "wire_bytes", json_integer(v->vs_wire_bytes));
	if (v->vs_stream_ms > 0)
		json_object_set_new(o, "stream_ms", json_real(v->vs_stream_ms));
	return o;
}

static json_t *ev_json(const struct evac *ev)
{
	json_t *vms = json_array();
	for (size_t i = 0; i < ev->ev_nvms; i++)
		json_array_append_new(vms, vm_json(&ev->ev_vms[i]));
	return json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:o}", "host", ev->ev_host, "task", ev->ev_task, "op", ev->ev_op,
			 "network", ev->ev_network, "batch_size", ev->ev_batch, "max_in_flight", ev->ev_max_in_flight,
			 "vms", vms);
}

struct meta_ctx {
	const char *host;
	json_t *state; /* NULL: forget */
};

static json_t *meta_txn(struct db *db, void *ctx)
{
	struct meta_ctx *m = ctx;
	char *text = db_meta_get(db, META_KEY);
	json_t *all = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	if (!json_is_object(all)) {
		json_decref(all);
		all = json_object();
	}
	if (m->state)
		json_object_set(all, m->host, m->state);
	else
		json_object_del(all, m->host);
	char *out = json_dumps(all, JSON_COMPACT);
	json_decref(all);
	json_t *e = db_meta_set(db, META_KEY, out ? out : "{}");
	free(out);
	return e;
}

/* The state into the database (resumable) and into the task (for xe). */
static void ev_save(struct evac *ev)
{
	json_t *st = ev_json(ev);
	struct meta_ctx m = {ev->ev_host, st};
	json_t *e = db_txn(ev->ev_pd->pd_db, meta_txn, &m);
	if (e) {
		log_error("evacuation of %s: its state could not be stored", ev->ev_host);
		json_decref(e);
	}
	if (ev->ev_task[0]) {
		char *text = json_dumps(st, JSON_COMPACT);
		api_task_note(ev->ev_pd, ev->ev_task, "evacuation", text ? text : "{}");
		free(text);
		/* by bytes: the memory of the VMs that ended over all of it */
		double ended = 0, all = 0;
		for (size_t i = 0; i < ev->ev_nvms; i++) {
			double b = ev->ev_vms[i].vs_memory > 0 ? (double)ev->ev_vms[i].vs_memory : 1;
			all += b;
			ended += ev->ev_vms[i].vs_state >= EV_DONE ? b : 0;
		}
		api_task_progress(ev->ev_pd, ev->ev_task, all > 0 ? 0.99 * ended / all : 0.99);
	}
	json_decref(st);
}

struct op_ctx {
	const char *host, *op;
	bool on;
};

static json_t *op_txn(struct db *db, void *ctx)
{
	struct op_ctx *o = ctx;
	json_t *h, *e = db_obj_get_checked(db, "host", o->host, &h);
	if (e)
		return e;
	json_t *ops = json_deep_copy(json_object_get(h, "current_operations"));
	if (!json_is_object(ops)) {
		json_decref(ops);
		ops = json_object();
	}
	json_decref(h);
	if (o->on) {
		if (json_object_size(ops)) {
			json_decref(ops);
			return xerr_new(XE_OTHER_OPERATION_IN_PROGRESS, "host", o->host, NULL);
		}
		json_object_set_new(ops, o->op, json_string("evacuate"));
	} else {
		json_object_del(ops, o->op);
	}
	return db_obj_set(db, o->host, "current_operations", ops);
}

static void ev_free(struct evac *ev)
{
	for (struct evac **pp = &ev->ev_pd->pd_evacs; *pp; pp = &(*pp)->ev_next)
		if (*pp == ev) {
			*pp = ev->ev_next;
			break;
		}
	if (ev->ev_tick)
		event_free(ev->ev_tick);
	if (ev->ev_ahead_timer)
		event_free(ev->ev_ahead_timer);
	for (size_t i = 0; i < ev->ev_nvms; i++) {
		json_decref(ev->ev_vms[i].vs_tried);
		json_decref(ev->ev_vms[i].vs_error);
	}
	free(ev->ev_vms);
	free(ev);
}

/* The end: host open again, state forgotten, the task told. */
static void ev_finish(struct evac *ev)
{
	struct poold *pd = ev->ev_pd;
	json_t *left = json_object();
	size_t moved = 0;
	for (size_t i = 0; i < ev->ev_nvms; i++) {
		struct evac_vm_st *v = &ev->ev_vms[i];
		if (v->vs_state == EV_DONE)
			moved++;
		else
			json_object_set(left, v->vs_ref,
					v->vs_error ? v->vs_error : json_pack("[s]", xerr_code_name(XE_TASK_CANCELLED)));
	}
	json_t *err = NULL;
	if (ev->ev_cancelled && json_object_size(left))
		err = xerr_new(XE_TASK_CANCELLED, ev->ev_task[0] ? ev->ev_task : ev->ev_op, NULL);
	else if (json_object_size(left)) {
		char *text = json_dumps(left, JSON_COMPACT | JSON_SORT_KEYS);
		err = xerr_new(XE_CANNOT_EVACUATE_HOST, text ? text : "{}", NULL);
		free(text);
	}
	ev_save(ev); /* the final per-VM states stay visible in the task */
	struct op_ctx o = {ev->ev_host, ev->ev_op, false};
	json_decref(db_txn(pd->pd_db, op_txn, &o));
	struct meta_ctx m = {ev->ev_host, NULL};
	json_decref(db_txn(pd->pd_db, meta_txn, &m));
	log_info("evacuation of %s: %zu of %zu VMs moved, at most %d migrations at once%s", ev->ev_host, moved,
		 ev->ev_nvms, ev->ev_max_in_flight, err ? " (not complete)" : "");
	json_decref(left);
	if (ev->ev_c) {
		ev->ev_c->ac_cancel = NULL;
		ev->ev_c->ac_parked = NULL;
		if (!err)
			ev->ev_c->ac_result = json_string("");
		api_call_finish(ev->ev_c, err);
	} else {
		if (ev->ev_task[0])
			api_task_end(pd, ev->ev_task, err);
		json_decref(err);
	}
	ev_free(ev);
}

static void pump(struct evac *ev);

/* A VM's migration failed (err borrowed): elsewhere, or reported. */
static void vm_failed(struct evac_vm_st *v, json_t *err)
{
	struct evac *ev = v->vs_ev;
	json_decref(v->vs_error);
	v->vs_error = json_incref(err);
	if (*v->vs_target)
		json_array_append_new(v->vs_tried, json_string(v->vs_target));
	v->vs_tries++;
	v->vs_state = EV_FAILED;
	if (v->vs_tries >= EVAC_TRIES || ev->ev_cancelled)
		return;
	/* a fresh look at the pool, the hosts it failed on left out */
	struct snap sn;
	json_t *one = json_pack("[s]", v->vs_ref);
	evac_snapshot(ev->ev_pd, ev->ev_host, one, &sn);
	json_decref(one);
	size_t n = json_array_size(v->vs_tried), h = PLACE_NONE;
	const char **ex = snap_strings(v->vs_tried);
	json_t *e = place_choose(&sn.sn_pool, 0, ex, n, &h);
	free(ex);
	if (!e && h != PLACE_NONE) {
		snprintf(v->vs_target, sizeof v->vs_target, "%s", sn.sn_pool.pp_hosts[h].ph_ref);
		v->vs_state = EV_PENDING;
		log_info("evacuation of %s: VM %s tried again, on %s", ev->ev_host, v->vs_ref, v->vs_target);
	} else if (e) {
		/* no other host: the reason is the migration's, unless nothing could take it now */
		if (!xerr_is(e, XE_NO_HOSTS_AVAILABLE)) {
			json_decref(v->vs_error);
			v->vs_error = json_incref(e);
		}
	}
	json_decref(e);
	snap_free(&sn);
}

static void vm_done(struct poold *pd, void *arg, json_t *err, json_t *stats)
{
	(void)pd;
	struct evac_vm_st *v = arg;
	struct evac *ev = v->vs_ev;
	if (v->vs_held) { /* its preparation failed, or it was taken back */
		v->vs_held = false;
		ev->ev_ahead = NULL;
	} else {
		ev->ev_in_flight--;
		ev->ev_no_ahead = false;
	}
	if (err)
		v->vs_job = NULL; /* ended: no release follows a failure */
	if (err && v->vs_dropping) {
		v->vs_dropping = false;
		v->vs_state = EV_PENDING;
	} else if (!err) {
		ev->ev_releasing++; /* vm_released comes next */
		v->vs_state = EV_DONE;
		v->vs_downtime_ms = json_number_value(json_object_get(stats, "downtime_ms"));
		v->vs_wire_bytes = json_integer_value(json_object_get(stats, "wire_bytes"));
		v->vs_stream_ms = json_number_value(json_object_get(stats, "total_ms"));
		json_decref(v->vs_error);
		v->vs_error = NULL;
	} else {
		vm_failed(v, err);
	}
	ev_save(ev);
	pump(ev);
}

/* A moved VM's copy on the host is gone (or not confirmed gone: the
 * heartbeats settle it; the VM itself has moved). */
static void vm_released(struct poold *pd, void *arg, bool released, const char *why)
{
	(void)pd, (void)released, (void)why;
	struct evac_vm_st *v = arg;
	struct evac *ev = v->vs_ev;
	v->vs_job = NULL;
	ev->ev_releasing--;
	pump(ev);
}

/* v's stream starts (in flight from now). */
static void vm_go(struct evac *ev, struct evac_vm_st *v)
{
	v->vs_held = false;
	ev->ev_in_flight++;
	if (ev->ev_in_flight > ev->ev_max_in_flight)
		ev->ev_max_in_flight = ev->ev_in_flight;
	migrate_go(v->vs_job);
}

/* Start v's migration, or only prepare it (ahead), or find it needs none. */
static void vm_start(struct evac *ev, struct evac_vm_st *v, bool ahead)
{
	struct poold *pd = ev->ev_pd;
	json_t *rec = db_obj_get(pd->pd_db, v->vs_ref);
	if (!rec || strcmp(jstr(rec, "resident_on"), ev->ev_host)) {
		/* gone from the host meanwhile (moved, halted, destroyed): nothing to do */
		v->vs_state = EV_DONE;
		json_decref(rec);
		return;
	}
	json_decref(rec);
	json_t *opts = json_pack("{s:s}", "live", "true");
	if (ev->ev_network[0])
		json_object_set_new(opts, "network", json_string(ev->ev_network));
	json_t *e = migrate_prepare(pd, v->vs_ref, v->vs_target, opts, vm_done, vm_released, v, &v->vs_job);
	json_decref(opts);
	if (e != API_PENDING) { /* refused before anything moved */
		v->vs_job = NULL;
		vm_failed(v, e);
		json_decref(e);
		return;
	}
	v->vs_state = EV_MIGRATING;
	v->vs_held = true;
	if (!ahead) {
		vm_go(ev, v);
		return;
	}
	ev->ev_ahead = v;
	ev->ev_ahead_since = now_ms();
	log_info("evacuation of %s: VM %s prepared ahead on %s", ev->ev_host, v->vs_ref, v->vs_target);
}

/* The one prepared ahead is not to run now (cancelled, or held too long). */
static void drop_ahead(struct evac *ev)
{
	struct evac_vm_st *v = ev->ev_ahead;
	if (!v || v->vs_dropping)
		return;
	v->vs_dropping = true;
	migrate_drop(v->vs_job); /* vm_done follows: pending again */
}

static bool task_cancelling(struct evac *ev)
{
	if (!ev->ev_task[0])
		return false;
	json_t *t = db_obj_get(ev->ev_pd->pd_db, ev->ev_task);
	bool yes = t && strcmp(jstr(t, "status"), "cancelling") == 0;
	json_decref(t);
	return yes;
}

static bool ahead_wanted(const struct evac *ev)
{
	return !ev->ev_cancelled && !ev->ev_no_ahead && !ev->ev_ahead && ev->ev_in_flight >= ev->ev_batch;
}

static void on_ahead(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct evac *ev = arg;
	for (size_t i = 0; ahead_wanted(ev) && i < ev->ev_nvms; i++)
		if (ev->ev_vms[i].vs_state == EV_PENDING)
			vm_start(ev, &ev->ev_vms[i], true);
}

/* Keep batch migrations in flight while there is work; end when none is left. */
static void pump(struct evac *ev)
{
	if (ev->ev_pumping)
		return; /* a start that failed at once re-enters: the outer loop goes on */
	ev->ev_pumping = true;
	if (!ev->ev_cancelled && task_cancelling(ev)) {
		ev->ev_cancelled = true;
		log_info("evacuation of %s cancelled: no new migrations", ev->ev_host);
	}
	bool progress = true;
	while (progress && !ev->ev_cancelled && ev->ev_in_flight < ev->ev_batch) {
		progress = false;
		if (ev->ev_ahead && !ev->ev_ahead->vs_dropping) { /* prepared: it goes first */
			struct evac_vm_st *v = ev->ev_ahead;
			ev->ev_ahead = NULL;
			vm_go(ev, v);
			progress = true;
			continue;
		}
		for (size_t i = 0; i < ev->ev_nvms && ev->ev_in_flight < ev->ev_batch; i++)
			if (ev->ev_vms[i].vs_state == EV_PENDING) {
				vm_start(ev, &ev->ev_vms[i], false);
				progress = true;
			}
	}
	/* the window is full: the next VM's set-up overlaps the streams, a
	 * moment after the last one started (its call leaves first, and the
	 * set-up's CPU does not delay its first bytes) */
	if (ev->ev_ahead_timer && ahead_wanted(ev) && !evtimer_pending(ev->ev_ahead_timer, NULL)) {
		struct timeval tv = {0, EVAC_AHEAD_DELAY_MS * 1000};
		evtimer_add(ev->ev_ahead_timer, &tv);
	}
	if (ev->ev_cancelled)
		drop_ahead(ev);
	ev->ev_pumping = false;
	bool pending = false;
	for (size_t i = 0; i < ev->ev_nvms; i++)
		pending |= ev->ev_vms[i].vs_state == EV_PENDING;
	ev_save(ev);
	/* the end once nothing moves and the host holds no copy of a moved VM */
	if (ev->ev_in_flight == 0 && ev->ev_releasing == 0 && !ev->ev_ahead && (!pending || ev->ev_cancelled))
		ev_finish(ev);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct evac *ev = arg;
	if (ev->ev_ahead && now_ms() - ev->ev_ahead_since > EVAC_HOLD_MS) {
		log_info("evacuation of %s: VM %s waited %d s for a slot; its destination is taken back until a "
			 "stream ends", ev->ev_host, ev->ev_ahead->vs_ref, EVAC_HOLD_MS / 1000);
		ev->ev_no_ahead = true;
		drop_ahead(ev);
	}
	if (!ev->ev_cancelled && task_cancelling(ev))
		pump(ev);
}

static void client_gone(struct api_call *c)
{
	struct evac *ev = c->ac_parked;
	ev->ev_c = NULL; /* the evacuation goes on; the task (if any) says how it ends */
	api_call_free(c);
}

static struct evac *ev_new(struct poold *pd, const char *host, const char *task, const char *network, int batch)
{
	struct evac *ev = xcalloc(1, sizeof *ev);
	ev->ev_pd = pd;
	snprintf(ev->ev_host, sizeof ev->ev_host, "%s", host);
	snprintf(ev->ev_task, sizeof ev->ev_task, "%s", task ? task : "");
	snprintf(ev->ev_network, sizeof ev->ev_network, "%s", network ? network : "");
	ev->ev_batch = batch;
	if (task && *task)
		snprintf(ev->ev_op, sizeof ev->ev_op, "%s", task);
	else
		model_new_ref(ev->ev_op); /* a sync call has no task: an id of its own */
	struct timeval quarter = {0, 250000};
	ev->ev_tick = event_new(pd->pd_base, -1, EV_PERSIST, on_tick, ev);
	if (ev->ev_tick)
		event_add(ev->ev_tick, &quarter);
	ev->ev_ahead_timer = evtimer_new(pd->pd_base, on_ahead, ev);
	ev->ev_next = pd->pd_evacs;
	pd->pd_evacs = ev;
	return ev;
}

/* ------------------------------------------------------------ the API */

/* host, network (NULL ref or absent = any), batch size (0 or absent =
 * evacuation-batch-size from xapi.conf). */
static json_t *evac_args(struct api_call *c, const char **host, const char **network, int *batch)
{
	json_t *e = api_arg_ref(c, 0, "host", host);
	if (e)
		return e;
	*network = NULL;
	*batch = 0;
	size_t n = json_array_size(c->ac_params);
	if (n >= 3) {
		json_t *nv = json_array_get(c->ac_params, 2);
		if (!json_is_string(nv))
			return xerr_new(XE_FIELD_TYPE_ERROR, "network", NULL);
		if (strcmp(json_string_value(nv), MODEL_NULL_REF) && *json_string_value(nv)) {
			char cls[32];
			if (!db_obj_class(c->ac_pd->pd_db, json_string_value(nv), cls, sizeof cls) || strcmp(cls, "network"))
				return xerr_new(XE_HANDLE_INVALID, "network", json_string_value(nv), NULL);
			*network = json_string_value(nv);
		}
	}
	if (n >= 4) {
		json_int_t b;
		if ((e = api_arg_int(c, 2, "evacuate_batch_size", &b)))
			return e;
		if (b < 0 || b > 1000) {
			char t[32];
			snprintf(t, sizeof t, "%lld", (long long)b);
			return xerr_new(XE_INVALID_VALUE, "evacuate_batch_size", t, NULL);
		}
		*batch = (int)b;
	}
	if (*batch == 0)
		*batch = (int)conf_int(c->ac_pd->pd_conf, "evacuation-batch-size");
	return NULL;
}

json_t *host_evacuate(struct api_call *c)
{
	struct poold *pd = c->ac_pd;
	const char *host, *network;
	int batch;
	json_t *e = evac_args(c, &host, &network, &batch);
	if (e)
		return e;
	if (!json_object_get(pd->pd_host_seen, host)) /* its agent would move nothing */
		return xerr_new(XE_HOST_OFFLINE, host, NULL);
	struct snap sn;
	evac_snapshot(pd, host, NULL, &sn);
	struct evac_plan *plan = evacplan_plan(&sn.sn_pool);
	if (!plan)
		abort();
	if ((e = ha_check_evacuation(pd->pd_db, host, &sn.sn_pool, plan))) { /* HA admission */
		evacplan_free(plan);
		snap_free(&sn);
		return e;
	}
	struct evac *ev = ev_new(pd, host, c->ac_task, network, batch);
	struct op_ctx o = {host, ev->ev_op, true};
	if ((e = db_txn(pd->pd_db, op_txn, &o))) {
		evacplan_free(plan);
		snap_free(&sn);
		ev_free(ev);
		return e;
	}
	ev->ev_vms = xcalloc(sn.sn_pool.pp_nvms + 1, sizeof *ev->ev_vms);
	/* the plan's order: biggest first */
	for (size_t k = 0; k < plan->pl_nvms; k++) {
		size_t i = plan->pl_order[k];
		struct evac_vm_st *v = &ev->ev_vms[ev->ev_nvms++];
		v->vs_ev = ev;
		snprintf(v->vs_ref, sizeof v->vs_ref, "%s", sn.sn_pool.pp_vms[i].pv_ref);
		v->vs_tried = json_array();
		v->vs_memory = sn.sn_pool.pp_vms[i].pv_memory;
		const struct evac_place *pl = &plan->pl_vms[i];
		if (pl->ep_error) {
			v->vs_state = EV_FAILED;
			v->vs_tries = EVAC_TRIES; /* the plan says it cannot move: not retried */
			v->vs_error = json_incref(pl->ep_error);
		} else {
			snprintf(v->vs_target, sizeof v->vs_target, "%s", sn.sn_pool.pp_hosts[pl->ep_host].ph_ref);
		}
	}
	log_info("evacuation of %s: %zu VMs, %zu placed, batch %d", host, plan->pl_nvms, plan->pl_placed, batch);
	evacplan_free(plan);
	snap_free(&sn);
	ev->ev_c = c;
	c->ac_parked = ev;
	c->ac_cancel = client_gone;
	pump(ev); /* may finish at once (nothing to move) */
	return API_PENDING;
}

/* The plan without moving anything: {VM ref: {target, memory} or {error}}. */
static json_t *plan_only(struct api_call *c, json_t **fails)
{
	const char *host;
	json_t *e = api_arg_ref(c, 0, "host", &host);
	if (e)
		return e;
	struct snap sn;
	evac_snapshot(c->ac_pd, host, NULL, &sn);
	const struct place_pool *pool = &sn.sn_pool;
	struct evac_plan *plan = evacplan_plan(pool);
	if (!plan)
		abort();
	json_t *ha = ha_check_evacuation(c->ac_pd->pd_db, host, pool, plan); /* the dry run says it too */
	if (ha) {
		evacplan_free(plan);
		snap_free(&sn);
		return ha;
	}
	json_t *out = json_object();
	for (size_t i = 0; i < plan->pl_nvms; i++) {
		const struct evac_place *pl = &plan->pl_vms[i];
		const char *ref = pool->pp_vms[i].pv_ref;
		if (pl->ep_error)
			json_object_set_new(out, ref, json_pack("{s:O, s:I}", "error", pl->ep_error, "memory",
								(json_int_t)pool->pp_vms[i].pv_memory));
		else
			json_object_set_new(out, ref, json_pack("{s:s, s:I}", "target", pool->pp_hosts[pl->ep_host].ph_ref,
								"memory", (json_int_t)pl->ep_memory));
	}
	*fails = evacplan_failures_json(pool, plan);
	evacplan_free(plan);
	snap_free(&sn);
	return out;
}

json_t *host_compute_evacuation_plan(struct api_call *c)
{
	json_t *fails = NULL, *out = plan_only(c, &fails);
	if (!fails)
		return out;
	json_decref(fails);
	c->ac_result = out;
	return NULL;
}

json_t *host_get_vms_which_prevent_evacuation(struct api_call *c)
{
	json_t *fails = NULL, *out = plan_only(c, &fails);
	if (!fails) /* out is the error */
		return out;
	json_decref(out);
	c->ac_result = fails;
	return NULL;
}

json_t *host_assert_can_evacuate(struct api_call *c)
{
	json_t *fails = NULL, *out = plan_only(c, &fails);
	if (!fails) /* out is the error */
		return out;
	json_decref(out);
	json_t *e = NULL;
	if (json_object_size(fails)) {
		char *text = json_dumps(fails, JSON_COMPACT | JSON_SORT_KEYS);
		e = xerr_new(XE_CANNOT_EVACUATE_HOST, text ? text : "{}", NULL);
		free(text);
	}
	json_decref(fails);
	if (!e)
		c->ac_result = json_string("");
	return e;
}

/* ------------------------------------------------------------ restart */

static void resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct poold *pd = arg;
	char *text = db_meta_get(pd->pd_db, META_KEY);
	json_t *all = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	const char *host;
	json_t *st;
	json_object_foreach(all, host, st) {
		struct evac *ev = ev_new(pd, host, jstr(st, "task"), jstr(st, "network"),
					 (int)json_integer_value(json_object_get(st, "batch_size")));
		snprintf(ev->ev_op, sizeof ev->ev_op, "%s", jstr(st, "op"));
		ev->ev_max_in_flight = (int)json_integer_value(json_object_get(st, "max_in_flight"));
		json_t *vms = json_object_get(st, "vms");
		ev->ev_vms = xcalloc(json_array_size(vms) + 1, sizeof *ev->ev_vms);
		size_t i;
		json_t *vj;
		json_array_foreach(vms, i, vj) {
			struct evac_vm_st *v = &ev->ev_vms[ev->ev_nvms++];
			v->vs_ev = ev;
			snprintf(v->vs_ref, sizeof v->vs_ref, "%s", jstr(vj, "vm"));
			snprintf(v->vs_target, sizeof v->vs_target, "%s", jstr(vj, "target"));
			v->vs_tries = (int)json_integer_value(json_object_get(vj, "tries"));
			v->vs_tried = json_deep_copy(json_object_get(vj, "tried"));
			if (!v->vs_tried)
				v->vs_tried = json_array();
			v->vs_error = json_incref(json_object_get(vj, "error"));
			v->vs_memory = json_integer_value(json_object_get(vj, "memory"));
			v->vs_downtime_ms = json_number_value(json_object_get(vj, "downtime_ms"));
			v->vs_wire_bytes = json_integer_value(json_object_get(vj, "wire_bytes"));
			v->vs_stream_ms = json_number_value(json_object_get(vj, "stream_ms"));
			const char *s = jstr(vj, "state");
			v->vs_state = strcmp(s, "done") == 0 ? EV_DONE : strcmp(s, "failed") == 0 ? EV_FAILED : EV_PENDING;
			/* was migrating: the heartbeats have said where it runs by now;
			 * vm_start counts it moved if it left the host */
		}
		log_info("evacuation of %s resumed after a restart (%zu VMs)", host, ev->ev_nvms);
		pump(ev);
	}
	json_decref(all);
}

void evacuations_resume(struct poold *pd)
{
	char *text = db_meta_get(pd->pd_db, META_KEY);
	json_t *all = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	size_t n = json_object_size(all);
	json_decref(all);
	if (!n)
		return;
	log_info("%zu evacuation(s) in progress when poold stopped: resumed in %lld ms", n,
		 (long long)host_reports_settle_ms(pd));
	host_after_reports(pd, resume, pd);
}

void evacuations_stop(struct poold *pd)
{
	while (pd->pd_evacs) { /* the state stays in the database: the next start resumes */
		struct evac *ev = pd->pd_evacs;
		for (size_t i = 0; i < ev->ev_nvms; i++) /* their migrations end on their own */
			if (ev->ev_vms[i].vs_job)
				migrate_detach(ev->ev_vms[i].vs_job);
		ev_free(ev);
	}
}
