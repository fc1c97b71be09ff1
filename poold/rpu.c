/*
 * rpu.c - the rolling pool upgrade's run (see rpu.h): one host at a time,
 * the master first, each through upgrade_step()'s phases (disable,
 * evacuate, the upgrade command, back with the new version, enable), then
 * the VMs home, then HA and auto power-on as they were.
 *
 * The journal, rp_st, is the run's only state:
 *   task, command, batch, network, command_timeout, host_timeout (s)
 *   stage    "suspend" | "hosts" | "home" | "restore" | "end"
 *   current  the index in hosts whose turn it is
 *   hosts    [{host, uuid, name, address, master, phase, since, started,
 *             ended, vms, evac_tries, before, after, boot, hook_started,
 *             error}]  (times: seconds since the epoch, as they outlive poold)
 *   saved    what HA and auto power-on were (rpu_home.c)
 *   homes    {VM: host} where each running VM was when the run began
 *   home     {round, tries, moved, stuck} (rpu_home.c)
 *   failure  {host, name, phase, reason, detail, output} when it stopped
 * A tick (every RPU_TICK_MS) reads the records and the journal and takes
 * the next step; an API call the run makes (host.disable, host.evacuate,
 * pool.enable_ha...) goes through the same handlers as a client's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "evacplan.h"
#include "log.h"
#include "rpu.h"
#include "util.h"
#include "xerr.h"

#define DEFAULT_COMMAND_TIMEOUT_S 3600
#define DEFAULT_HOST_TIMEOUT_S 600

/* ------------------------------------------------------ the end */

static json_t *end_error(struct rpu *r)
{
	json_t *f = json_object_get(r->rp_st, "failure");
	const char *task = jstr(r->rp_st, "task");
	if (json_is_true(json_object_get(r->rp_st, "cancelled")))
		return xerr_new(XE_TASK_CANCELLED, *task ? task : "rolling upgrade", NULL);
	if (!f)
		return NULL;
	return xerr_new(XE_ROLLING_UPGRADE_FAILED, jstr(f, "host"), jstr(f, "reason"), NULL);
}

static void rpu_end(struct rpu *r)
{
	struct poold *pd = r->rp_pd;
	json_object_set_new(r->rp_st, "stage", json_string("end"));
	rpu_save(r); /* the last state stays in the task */
	rpu_forget(pd);
	json_t *err = end_error(r);
	char *report = json_dumps(r->rp_st, JSON_COMPACT);
	log_info("rolling upgrade %s: %lld VMs moved home, %zu not home", err ? "stopped" : "done",
		 (long long)rpu_int(json_object_get(r->rp_st, "home"), "moved"),
		 json_object_size(json_object_get(json_object_get(r->rp_st, "home"), "stuck")));
	struct api_call *c = r->rp_c;
	const char *task = jstr(r->rp_st, "task");
	char tk[64];
	snprintf(tk, sizeof tk, "%s", task);
	r->rp_c = NULL;
	rpu_free(r);
	if (c) {
		c->ac_cancel = NULL;
		c->ac_parked = NULL;
		if (!err)
			c->ac_result = json_string(report ? report : "");
		api_call_finish(c, err);
	} else {
		if (*tk)
			api_task_end(pd, tk, err);
		json_decref(err);
	}
	free(report);
}

/* ------------------------------------------------------ one host */

static void call_done(struct rpu *r, json_t *err, json_t *result, const char *arg)
{
	(void)result;
	r->rp_busy = false;
	if (!err)
		return;
	char *t = xerr_to_text(err);
	char why[300];
	snprintf(why, sizeof why, "%s failed: %s", arg, t ? t : "?");
	free(t);
	rpu_fail(r, (int)rpu_int(r->rp_st, "current"), why, NULL);
	rpu_save(r);
}

static void evac_done(struct rpu *r, json_t *err, json_t *result, const char *arg)
{
	(void)result, (void)arg;
	json_t *h = json_array_get(json_object_get(r->rp_st, "hosts"), (size_t)rpu_int(r->rp_st, "current"));
	if (err && h)
		json_object_set(h, "evac_error", err);
	r->rp_dirty = true;
}

static size_t residents(struct db *db, const char *host)
{
	json_t *vms = db_find(db, "VM", "resident_on", host);
	size_t n = 0;
	const char *k;
	json_t *v;
	json_object_foreach(vms, k, v) n += !json_is_true(json_object_get(v, "is_control_domain"));
	json_decref(vms);
	return n;
}

static bool evacuating(const json_t *rec)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)json_object_get(rec, "current_operations"), k, v) if (strcmp(json_string_value(v) ? json_string_value(v) : "", "evacuate") == 0) return true;
	return false;
}

/* host.assert_can_evacuate's answer, the reasons kept for the report. */
static bool can_evacuate(struct rpu *r, json_t *h)
{
	struct snap sn;
	json_decref(snap_build(r->rp_pd->pd_db, jstr(h, "host"), NULL, NULL, PLACE_MIGRATE, &sn));
	struct evac_plan *plan = evacplan_plan(&sn.sn_pool);
	json_t *fails = evacplan_failures_json(&sn.sn_pool, plan);
	bool ok = json_object_size(fails) == 0;
	if (!ok)
		json_object_set(h, "evac_error", fails);
	json_decref(fails);
	evacplan_free(plan);
	snap_free(&sn);
	return ok;
}

static const char *boot_of(struct poold *pd, const char *host)
{
	return jstr(json_object_get(json_object_get(pd->pd_host_report, host), "report"), "boot");
}

static bool host_back(struct rpu *r, json_t *h, json_t *rec)
{
	struct poold *pd = r->rp_pd;
	const char *host = jstr(h, "host"), *boot = boot_of(pd, host);
	json_t *b = json_object_get(h, "before"), *sw = json_object_get(rec, "software_version"), *m;
	struct upgrade_ver before = {jstr(b, "product"), jstr(b, "platform")};
	struct upgrade_ver now = {jstr(sw, "product_version"), jstr(sw, "platform_version")};
	struct upgrade_ver master = rpu_master_ver(pd, &m);
	bool live = json_object_get(pd->pd_host_seen, host) != NULL;
	bool new_boot = *boot && *jstr(h, "boot") && strcmp(boot, jstr(h, "boot")) != 0;
	bool back = upgrade_host_back(live, new_boot, &before, &now, &master, json_is_true(json_object_get(h, "master")));
	json_decref(m);
	return back;
}

static void facts(struct rpu *r, json_t *h, enum upgrade_phase ph, struct upgrade_facts *f)
{
	struct poold *pd = r->rp_pd;
	const char *host = jstr(h, "host");
	json_t *rec = db_obj_get(pd->pd_db, host);
	bool manual = !*jstr(r->rp_st, "command");
	int code = 0;
	*f = (struct upgrade_facts){
		.uf_live = json_object_get(pd->pd_host_seen, host) != NULL,
		.uf_enabled = json_is_true(json_object_get(rec, "enabled")),
		.uf_evacuating = evacuating(rec),
		.uf_resident = residents(pd->pd_db, host),
		.uf_evac_tries = (int)rpu_int(h, "evac_tries"),
		.uf_can_evacuate = ph != UPG_PENDING || can_evacuate(r, h),
		.uf_manual = manual,
		.uf_cmd = ph == UPG_UPGRADING ? rpu_hook_status(pd, jstr(h, "uuid"), rpu_int(h, "hook_started"), &code)
					      : UPGRADE_CMD_NONE,
		.uf_back = ph == UPG_RETURNING && host_back(r, h, rec),
	};
	if (f->uf_cmd == UPGRADE_CMD_FAILED)
		rpu_set_int(h, "exit_status", code);
	json_int_t limit = rpu_int(r->rp_st, "host_timeout");
	if (ph == UPG_UPGRADING || (ph == UPG_RETURNING && manual))
		limit = rpu_int(r->rp_st, "command_timeout");
	f->uf_timed_out = time(NULL) - rpu_int(h, "since") > limit;
	json_decref(rec);
}

/* A host enters phase p: what it records then. */
static void phase_set(struct rpu *r, json_t *h, enum upgrade_phase p)
{
	struct poold *pd = r->rp_pd;
	const char *host = jstr(h, "host");
	time_t now = time(NULL);
	json_object_set_new(h, "phase", json_string(upgrade_phase_name(p)));
	rpu_set_int(h, "since", now);
	if (p == UPG_EVACUATING) {
		rpu_set_int(h, "started", now);
		rpu_set_int(h, "vms", (json_int_t)residents(pd->pd_db, host));
	} else if (p == UPG_UPGRADING) {
		json_object_set_new(h, "boot", json_string(boot_of(pd, host)));
	} else if (p == UPG_DONE) {
		json_t *rec = db_obj_get(pd->pd_db, host), *sw = json_object_get(rec, "software_version");
		json_object_set_new(h, "after", json_pack("{s:s, s:s}", "product", jstr(sw, "product_version"), "platform",
							  jstr(sw, "platform_version")));
		json_decref(rec);
	}
	log_info("rolling upgrade: host %s: %s", jstr(h, "name"), upgrade_phase_name(p));
	r->rp_dirty = true;
}

static void run_command(struct rpu *r, json_t *h)
{
	char *cmd = upgrade_command(jstr(r->rp_st, "command"), jstr(h, "uuid"), jstr(h, "address"), jstr(h, "name"));
	if (!cmd) {
		rpu_fail(r, (int)rpu_int(r->rp_st, "current"), "the host's name or address cannot be given to a shell", NULL);
		return;
	}
	rpu_set_int(h, "hook_started", time(NULL));
	rpu_save(r); /* journaled before it starts: a restart never runs it twice */
	char err[256];
	log_info("rolling upgrade: host %s: running %s", jstr(h, "name"), cmd);
	if (rpu_hook_start(r->rp_pd, jstr(h, "uuid"), cmd, err, sizeof err) < 0)
		rpu_fail(r, (int)rpu_int(r->rp_st, "current"), err, NULL);
	free(cmd);
}

static void act(struct rpu *r, json_t *h, enum upgrade_action a, const char *why)
{
	const char *host = jstr(h, "host");
	switch (a) {
	case UPGRADE_WAIT:
		break;
	case UPGRADE_DISABLE:
	case UPGRADE_ENABLE:
		r->rp_busy = true;
		rpu_call(r, a == UPGRADE_DISABLE ? "host.disable" : "host.enable", json_pack("[s]", host), call_done,
			 a == UPGRADE_DISABLE ? "host.disable" : "host.enable");
		break;
	case UPGRADE_EVACUATE: {
		rpu_set_int(h, "evac_tries", rpu_int(h, "evac_tries") + 1);
		const char *net = jstr(r->rp_st, "network");
		rpu_call(r, "host.evacuate", json_pack("[s,s,I]", host, *net ? net : MODEL_NULL_REF, rpu_int(r->rp_st, "batch")),
			 evac_done, host);
		r->rp_dirty = true;
		break;
	}
	case UPGRADE_RUN:
		run_command(r, h);
		break;
	case UPGRADE_NEXT:
		if (!rpu_int(h, "ended"))
			rpu_set_int(h, "ended", time(NULL));
		rpu_set_int(r->rp_st, "current", rpu_int(r->rp_st, "current") + 1);
		r->rp_dirty = true;
		break;
	case UPGRADE_FAIL:
		rpu_fail(r, (int)rpu_int(r->rp_st, "current"), why, json_incref(json_object_get(h, "evac_error")));
		break;
	}
}

static void hosts_tick(struct rpu *r)
{
	json_t *hosts = json_object_get(r->rp_st, "hosts");
	size_t cur = (size_t)rpu_int(r->rp_st, "current");
	if (cur >= json_array_size(hosts)) {
		json_object_set_new(r->rp_st, "stage", json_string("home"));
		r->rp_dirty = true;
		return;
	}
	json_t *h = json_array_get(hosts, cur);
	enum upgrade_phase ph = upgrade_phase_parse(jstr(h, "phase")), was = ph;
	if (ph == UPG_PENDING && json_is_true(json_object_get(r->rp_st, "cancelled"))) {
		json_object_set_new(r->rp_st, "stage", json_string("home")); /* between hosts: stop here */
		r->rp_dirty = true;
		return;
	}
	struct upgrade_facts f;
	facts(r, h, ph, &f);
	const char *why;
	enum upgrade_action a = upgrade_step(&ph, &f, &why);
	if (ph != was)
		phase_set(r, h, ph);
	act(r, h, a, why);
}

/* ------------------------------------------------------ the tick */

static bool cancelling(struct rpu *r)
{
	const char *task = jstr(r->rp_st, "task");
	if (!*task)
		return false;
	json_t *t = db_obj_get(r->rp_pd->pd_db, task);
	bool yes = t && strcmp(jstr(t, "status"), "cancelling") == 0;
	json_decref(t);
	return yes;
}

static void stage_set(struct rpu *r, const char *stage)
{
	json_object_set_new(r->rp_st, "stage", json_string(stage));
	r->rp_dirty = true;
}

void rpu_tick(struct rpu *r)
{
	if ((int64_t)now_ms() < r->rp_act_after || r->rp_busy)
		return;
	if (!json_is_true(json_object_get(r->rp_st, "cancelled")) && cancelling(r)) {
		log_info("rolling upgrade cancelled: it stops before the next host");
		json_object_set_new(r->rp_st, "cancelled", json_true());
		r->rp_dirty = true;
	}
	const char *stage = jstr(r->rp_st, "stage");
	if (strcmp(stage, "suspend") == 0) {
		if (rpu_suspend(r))
			stage_set(r, "hosts");
	} else if (strcmp(stage, "hosts") == 0) {
		hosts_tick(r);
	} else if (strcmp(stage, "home") == 0) {
		if (rpu_home(r))
			stage_set(r, "restore");
	} else if (strcmp(stage, "restore") == 0) {
		if (rpu_restore(r))
			stage_set(r, "end");
	}
	if (strcmp(jstr(r->rp_st, "stage"), "end") == 0) {
		rpu_end(r);
		return;
	}
	if (r->rp_dirty)
		rpu_save(r);
}

/* ------------------------------------------------------ life */

static void client_gone(struct api_call *c)
{
	struct rpu *r = c->ac_parked;
	r->rp_c = NULL; /* the run goes on; its task says how it ends */
	api_call_free(c);
}

struct rpu *rpu_new(struct poold *pd, json_t *st, struct api_call *c)
{
	struct rpu *r = xcalloc(1, sizeof *r);
	r->rp_pd = pd;
	r->rp_st = st;
	r->rp_c = c;
	if (c) {
		c->ac_parked = r;
		c->ac_cancel = client_gone;
	}
	if (!rpu_int(st, "command_timeout"))
		rpu_set_int(st, "command_timeout", DEFAULT_COMMAND_TIMEOUT_S);
	if (!rpu_int(st, "host_timeout"))
		rpu_set_int(st, "host_timeout", DEFAULT_HOST_TIMEOUT_S);
	pd->pd_rpu->rs_run = r;
	rpu_save(r);
	return r;
}

void rpu_free(struct rpu *r)
{
	rpu_calls_drop(r);
	/* poold stops: the task stays pending (the next poold ends it); a
	 * client's own call was dropped with its connection already */
	api_call_free(r->rp_c);
	if (r->rp_pd->pd_rpu && r->rp_pd->pd_rpu->rs_run == r)
		r->rp_pd->pd_rpu->rs_run = NULL;
	json_decref(r->rp_st);
	free(r);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct poold *pd = arg;
	struct rpu_state *rs = pd->pd_rpu;
	if (rs->rs_ticks++ % (1000 / RPU_TICK_MS) == 0)
		rpu_mode_sync(pd);
	if (rs->rs_run)
		rpu_tick(rs->rs_run);
}

void rpu_start(struct poold *pd)
{
	struct rpu_state *rs = xcalloc(1, sizeof *rs);
	pd->pd_rpu = rs;
	rs->rs_refused = json_object();
	rpu_mode_sync(pd);
	char *text = db_meta_get(pd->pd_db, RPU_META_KEY);
	json_t *st = text && *text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	if (json_is_object(st)) {
		struct rpu *r = rpu_new(pd, st, NULL);
		/* where VMs run and which hosts are live: the heartbeats say it first */
		r->rp_act_after = (int64_t)now_ms() + host_reports_settle_ms(pd);
		log_info("rolling upgrade in progress when poold stopped (stage %s, host %lld of %zu): it goes on",
			 jstr(st, "stage"), (long long)rpu_int(st, "current") + 1, json_array_size(json_object_get(st, "hosts")));
	} else {
		json_decref(st);
	}
	rs->rs_timer = event_new(pd->pd_base, -1, EV_PERSIST, on_timer, pd);
	struct timeval tv = {0, RPU_TICK_MS * 1000};
	event_add(rs->rs_timer, &tv);
}

void rpu_stop(struct poold *pd)
{
	struct rpu_state *rs = pd->pd_rpu;
	if (!rs)
		return;
	if (rs->rs_run)
		rpu_free(rs->rs_run); /* its journal stays: the next start goes on */
	if (rs->rs_timer)
		event_free(rs->rs_timer);
	json_decref(rs->rs_refused);
	free(rs);
	pd->pd_rpu = NULL;
}
