/*
 * ha_run.c - HA as the pool master runs it: arming the hosts, reading
 * their HA state from every report, declaring a host failed once a
 * surviving host says it has fenced, and enabling / disabling HA.
 *
 * The hosts decide who is alive (ha/, in the agents); poold acts on their
 * word. A host is declared failed only when a host that itself survives
 * reports it fenced, for the very run of its agent poold last heard from
 * (a boot id): its slot said so, or it was silent on the network and in
 * the statefile for T plus a margin, longer than its watchdog allows it
 * to run. Then, as XAPI does: the host is not live, its VMs are halted,
 * HA_HOST_FAILED is raised, and the restart engine (ha_restart.c) starts
 * them elsewhere. Reports still in flight from the fenced run are refused
 * (HA_SHOULD_BE_FENCED), so none of them can bring a halted VM back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ha.h"
#include "log.h"
#include "poold.h"
#include "util.h"
#include "xerr.h"

#define META_KEY "ha"
#define ASK_EVERY_MS 3000
#define TICK_MS 200

static char *name_of(struct poold *pd, const char *ref, char *out, size_t n)
{
	json_t *r = db_obj_get(pd->pd_db, ref);
	snprintf(out, n, "%s", *jstr(r, "name_label") ? jstr(r, "name_label") : ref);
	json_decref(r);
	return out;
}

bool ha_on(struct poold *pd)
{
	return pd->pd_ha && pd->pd_ha->hs_conf && !pd->pd_ha->hs_disabling;
}

/* ---------------------------------------------------- kept state */

static json_t *save_txn(struct db *db, void *ctx)
{
	return db_meta_set(db, META_KEY, ctx);
}

static void save(struct poold *pd)
{
	struct ha_state *st = pd->pd_ha;
	json_t *m = json_pack("{s:O?, s:O}", "conf", st->hs_conf, "fenced", st->hs_fenced);
	char *text = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	txn_until_done_own(pd, save_txn, text, free, "HA's state");
}

static void load(struct poold *pd)
{
	struct ha_state *st = pd->pd_ha;
	char *text = db_meta_get(pd->pd_db, META_KEY);
	json_t *m = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	json_t *conf = json_object_get(m, "conf"), *fenced = json_object_get(m, "fenced");
	/* an enable that never finished (poold stopped meanwhile) is dropped:
	 * the hosts it armed are disarmed as they report */
	json_t *pools = db_find(pd->pd_db, "pool", NULL, NULL);
	void *it = json_object_iter(pools);
	bool on = it && json_is_true(json_object_get(json_object_iter_value(it), "ha_enabled"));
	json_decref(pools);
	if (json_is_object(conf) && on)
		st->hs_conf = json_incref(conf);
	if (json_is_object(fenced))
		json_object_update(st->hs_fenced, fenced);
	json_decref(m);
}

/* ------------------------------------------------------ arming */

/* What agent.ha_arm needs for host: the members with their addresses, the
 * statefile VDI, the key, and whom poold sees up now (the join waits for
 * them). */
static json_t *arm_config(struct poold *pd, const char *host)
{
	json_t *conf = pd->pd_ha->hs_conf, *members = json_array(), *expect = json_array();
	const char *ref;
	json_t *uuid;
	json_object_foreach(json_object_get(conf, "members"), ref, uuid) {
		struct agent_addr a;
		if (!agent_target(pd, ref, &a))
			continue;
		json_array_append_new(members, json_pack("{s:s, s:s, s:i}", "uuid", a.aa_uuid, "address", a.aa_address,
							 "port", a.aa_port));
		if (strcmp(ref, host) == 0 || json_object_get(pd->pd_host_seen, ref))
			json_array_append(expect, uuid);
	}
	return json_pack("{s:O, s:O, s:O, s:O, s:O, s:o, s:o}", "generation", json_object_get(conf, "generation"),
			 "key", json_object_get(conf, "key"), "timeout", json_object_get(conf, "timeout"),
			 "statefile_sr", json_object_get(conf, "sr_uuid"), "statefile_vdi",
			 json_object_get(conf, "vdi_uuid"), "members", members, "expect", expect);
}

/* Not more often than every ASK_EVERY_MS per host. */
static bool may_ask(struct ha_state *st, const char *host)
{
	json_int_t last = json_integer_value(json_object_get(st->hs_asked, host));
	if (last && (json_int_t)now_ms() - last < ASK_EVERY_MS)
		return false;
	json_object_set_new(st->hs_asked, host, json_integer((json_int_t)now_ms()));
	return true;
}

static void enable_end(struct poold *pd, json_t *err);
static json_t *disable_txn(struct db *db, void *ctx);

static json_t *armed(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err, json_t **result)
{
	(void)c, (void)answer, (void)result;
	struct ha_state *st = pd->pd_ha;
	if (err && st && st->hs_enabling) {
		log_error("HA: arming host %s failed: the enable is undone", (const char *)ctx);
		enable_end(pd, err);
	}
	return NULL;
}

static void arm(struct poold *pd, const char *host)
{
	if (!may_ask(pd->pd_ha, host))
		return;
	char hn[128];
	log_info("HA: arming host %s (generation %s)", name_of(pd, host, hn, sizeof hn),
		 jstr(pd->pd_ha->hs_conf, "generation"));
	agent_call_done(pd, NULL, host, AGENT_HA_ARM, json_pack("[o]", arm_config(pd, host)), armed, xstrdup(host));
}

static void disarm(struct poold *pd, const char *host, bool rate_limited)
{
	if (rate_limited && !may_ask(pd->pd_ha, host))
		return;
	agent_tell(pd, host, AGENT_HA_DISARM, json_pack("[s]", ""));
}

/* --------------------------------------------------- declaring */

struct declare_ctx {
	char host[64], boot[48], why[200];
};

static json_t *declare_txn(struct db *db, void *ctx)
{
	struct declare_ctx *d = ctx;
	json_t *h = db_obj_get(db, d->host), *e = NULL;
	if (!h)
		return NULL;
	if (*jstr(h, "metrics"))
		e = db_obj_set(db, jstr(h, "metrics"), "live", json_false());
	if (!e) /* it hears nobody now */
		e = db_obj_set(db, d->host, "ha_network_peers", json_array());
	json_t *vms = db_find(db, "VM", "resident_on", d->host);
	const char *ref;
	json_t *v;
	int n = 0;
	json_object_foreach(vms, ref, v) {
		if (e || json_is_true(json_object_get(v, "is_control_domain")))
			continue;
		/* XAPI: the VMs of a host declared dead are forced halted */
		e = db_obj_update_new(db, ref, json_pack("{s:s, s:s, s:I}", "power_state", "Halted", "resident_on",
							 MODEL_NULL_REF, "domid", (json_int_t)-1));
		n++;
	}
	json_decref(vms);
	vms = db_find(db, "VM", "scheduled_to_be_resident_on", d->host);
	json_object_foreach(vms, ref, v) if (!e) e = db_obj_set(db, ref, "scheduled_to_be_resident_on",
								json_string(MODEL_NULL_REF));
	json_decref(vms);
	char body[512];
	snprintf(body, sizeof body, "host %s failed (%s): %d VM(s) that ran on it are halted; those with an HA "
		 "priority restart on the other hosts", jstr(h, "name_label"), d->why, n);
	if (!e)
		e = msg_add(db, "HA_HOST_FAILED", 1, "Host", jstr(h, "uuid"), body);
	json_decref(h);
	return e;
}

static void declare(struct poold *pd, const char *host, const char *boot, const char *reporter)
{
	struct ha_state *st = pd->pd_ha;
	struct declare_ctx d;
	char hn[128], rn[128];
	snprintf(d.host, sizeof d.host, "%s", host);
	snprintf(d.boot, sizeof d.boot, "%s", boot);
	snprintf(d.why, sizeof d.why, "host %s reports it fenced", name_of(pd, reporter, rn, sizeof rn));
	json_object_set_new(st->hs_fenced, host, json_string(boot));
	st->hs_failed_at = (int64_t)now_ms();
	save(pd);
	log_warn("HA: host %s has fenced (run %s of its agent, reported by host %s): declared failed",
		 name_of(pd, host, hn, sizeof hn), boot, rn);
	/* not live; what it said is stale (heartbeat.c's liveness, which
	 * calls this file, keeps these: forgotten here as it would) */
	json_object_del(pd->pd_host_seen, host);
	json_object_del(pd->pd_host_report, host);
	agent_link_forget(pd, host);
	txn_until_done(pd, declare_txn, &d, sizeof d, "a failed host's VMs halted");
	if (st->hs_engine)
		event_active(st->hs_engine, EV_TIMEOUT, 0); /* ha_restart.c: restart them now */
}

static const char *member_ref(struct ha_state *st, const char *uuid)
{
	const char *ref;
	json_t *u;
	json_object_foreach(json_object_get(st->hs_conf, "members"), ref, u) if (strcmp(json_string_value(u), uuid) == 0)
		return ref;
	return NULL;
}

static bool in_list(json_t *arr, const char *s)
{
	size_t i;
	json_t *x;
	json_array_foreach(arr, i, x) if (json_is_string(x) && strcmp(json_string_value(x), s) == 0) return true;
	return false;
}

/* The reporter survives and says these peers fenced: declare each whose
 * run is the one poold last heard from. */
static void take_fenced(struct poold *pd, const char *reporter, json_t *ha)
{
	struct ha_state *st = pd->pd_ha;
	size_t i;
	json_t *f;
	json_array_foreach(json_object_get(ha, "fenced"), i, f) {
		const char *ref = member_ref(st, jstr(f, "host")), *boot = jstr(f, "boot");
		if (!ref || !*boot || strcmp(jstr(st->hs_boots, ref), boot) != 0)
			continue; /* unknown, or a run poold never heard: no evidence about what runs */
		if (strcmp(jstr(st->hs_fenced, ref), boot) == 0)
			continue; /* declared already */
		declare(pd, ref, boot, reporter);
	}
}

/* --------------------------------------------------- the enable */

static json_t *enable_txn(struct db *db, void *ctx)
{
	(void)ctx;
	json_t *pools = db_refs_all(db, "pool"), *e = NULL;
	size_t i;
	json_t *p;
	json_array_foreach(pools, i, p) if (!e) e = db_obj_set(db, json_string_value(p), "ha_enabled", json_true());
	json_decref(pools);
	return e;
}

static void call_end(struct poold *pd, json_t *err)
{
	struct api_call *c = pd->pd_ha->hs_call;
	pd->pd_ha->hs_call = NULL;
	if (!c) {
		json_decref(err);
		return;
	}
	c->ac_cancel = NULL;
	c->ac_result = err ? NULL : json_string("");
	api_call_finish(c, err);
}

static void enable_formed(struct poold *pd)
{
	struct ha_state *st = pd->pd_ha;
	json_t *e = db_txn(pd->pd_db, enable_txn, NULL);
	if (e) {
		enable_end(pd, e);
		return;
	}
	st->hs_enabling = false;
	log_info("HA enabled: every host joined the liveset (generation %s, timeout %llds)",
		 jstr(st->hs_conf, "generation"), (long long)json_integer_value(json_object_get(st->hs_conf, "timeout")));
	st->hs_status_event = -1; /* the engine's next tick computes the status */
	call_end(pd, NULL);
}

/* Undo a failed enable: hosts disarmed, state forgotten (the statefile
 * VDI stays for the next enable, as XAPI keeps it). err is taken. */
static void enable_end(struct poold *pd, json_t *err)
{
	struct ha_state *st = pd->pd_ha;
	const char *ref;
	json_t *u;
	json_object_foreach(json_object_get(st->hs_conf, "members"), ref, u) disarm(pd, ref, false);
	json_decref(st->hs_conf);
	st->hs_conf = NULL;
	st->hs_enabling = false;
	json_object_clear(st->hs_joined);
	save(pd);
	json_decref(db_txn(pd->pd_db, disable_txn, NULL));
	call_end(pd, err);
}

static void enable_cancel(struct api_call *c)
{
	struct ha_state *st = c->ac_parked;
	st->hs_call = NULL; /* the work goes on */
	api_call_free(c);
}

json_t *ha_enable_begin(struct api_call *c, json_t *conf)
{
	struct poold *pd = c->ac_pd;
	struct ha_state *st = pd->pd_ha;
	st->hs_conf = conf;
	st->hs_enabling = true;
	json_object_clear(st->hs_joined);
	json_object_clear(st->hs_asked);
	json_int_t t = json_integer_value(json_object_get(conf, "timeout"));
	/* the hosts give up joining after T + the grace: poold a little later */
	st->hs_deadline = (int64_t)now_ms() + t * 1000 + HA_JOIN_GRACE_MS + 2000;
	save(pd);
	st->hs_call = c;
	c->ac_parked = st;
	c->ac_cancel = enable_cancel;
	const char *ref;
	json_t *u;
	json_object_foreach(json_object_get(conf, "members"), ref, u) arm(pd, ref);
	return API_PENDING;
}

/* The reporter is armed in this generation: part of the liveset yet? */
static void enable_progress(struct poold *pd, const char *host, json_t *ha)
{
	struct ha_state *st = pd->pd_ha;
	if (strcmp(jstr(ha, "state"), "armed") != 0)
		return;
	json_t *members = json_object_get(st->hs_conf, "members");
	const char *ref;
	json_t *u;
	json_object_foreach(members, ref, u) if (!in_list(json_object_get(ha, "liveset"), json_string_value(u))) return;
	json_object_set_new(st->hs_joined, host, json_true());
	if (json_object_size(st->hs_joined) == json_object_size(members))
		enable_formed(pd);
}

/* --------------------------------------------------- reports */

/* The reporter's own view: network peers, as XAPI's host field. */
static json_t *peers_txn(struct db *db, void *ctx)
{
	json_t **a = ctx;
	return db_obj_set(db, json_string_value(a[0]), "ha_network_peers", json_incref(a[1]));
}

static void note_peers(struct poold *pd, const char *host, json_t *ha)
{
	json_t *h = db_obj_get(pd->pd_db, host), *hears = json_object_get(ha, "hears");
	if (h && json_is_array(hears) && !json_equal(json_object_get(h, "ha_network_peers"), hears)) {
		json_t *a[2] = {json_string(host), hears};
		json_decref(db_txn(pd->pd_db, peers_txn, a));
		json_decref(a[0]);
	}
	json_decref(h);
}

/* A member's agent that listens elsewhere now (restarted): every member
 * is told the addresses again, once the heartbeat has recorded the new
 * one (the arm config is built from the records). */
static void note_address(struct poold *pd, const char *host, json_t *report)
{
	struct ha_state *st = pd->pd_ha;
	char addr[128];
	snprintf(addr, sizeof addr, "%s:%lld", jstr(report, "address"),
		 (long long)json_integer_value(json_object_get(report, "port")));
	const char *was = jstr(st->hs_addrs, host);
	if (*was && strcmp(was, addr) && st->hs_conf)
		st->hs_rearm_at = (int64_t)now_ms() + 500;
	json_object_set_new(st->hs_addrs, host, json_string(addr));
}

json_t *ha_host_report(struct poold *pd, const char *host, json_t *report)
{
	struct ha_state *st = pd->pd_ha;
	if (!st)
		return NULL;
	const char *boot = jstr(report, "boot"), *fenced = jstr(st->hs_fenced, host);
	if (*fenced && strcmp(fenced, boot) == 0)
		return xerr_new(XE_HA_SHOULD_BE_FENCED, host, NULL);
	if (*fenced) { /* a new run of its agent: back in the pool */
		log_info("HA: host %s is back (a new run of its agent)", host);
		json_object_del(st->hs_fenced, host);
		save(pd);
		json_object_clear(st->hs_vms); /* capacity came back: failed restarts are tried again */
	}
	json_object_set_new(st->hs_boots, host, json_string(boot));
	note_address(pd, host, report);
	json_t *ha = json_object_get(report, "ha");
	if (!st->hs_conf || st->hs_disabling) {
		if (json_is_object(ha))
			disarm(pd, host, true); /* HA is off: a host still armed leaves */
		return NULL;
	}
	if (!json_object_get(json_object_get(st->hs_conf, "members"), host))
		return NULL; /* joined after HA was enabled: not part of it */
	if (!json_is_object(ha) || strcmp(jstr(ha, "generation"), jstr(st->hs_conf, "generation")) ||
	    strcmp(jstr(ha, "state"), "failed") == 0) {
		arm(pd, host);
		return NULL;
	}
	if (st->hs_enabling)
		enable_progress(pd, host, ha);
	const char *self = jstr(json_object_get(st->hs_conf, "members"), host);
	if (strcmp(jstr(ha, "state"), "armed") == 0 && in_list(json_object_get(ha, "liveset"), self))
		take_fenced(pd, host, ha);
	note_peers(pd, host, ha);
	return NULL;
}

/* --------------------------------------------------- the disable */

static json_t *disable_txn(struct db *db, void *ctx)
{
	(void)ctx;
	json_t *pools = db_refs_all(db, "pool"), *hosts = db_refs_all(db, "host"), *e = NULL;
	size_t i;
	json_t *p;
	json_array_foreach(pools, i, p) if (!e) e = db_obj_update_new(
		db, json_string_value(p),
		json_pack("{s:b, s:{}, s:[], s:i, s:b}", "ha_enabled", 0, "ha_configuration", "ha_statefiles",
			  "ha_plan_exists_for", 0, "ha_overcommitted", 0));
	json_array_foreach(hosts, i, p) if (!e) e = db_obj_update_new(
		db, json_string_value(p), json_pack("{s:[], s:[]}", "ha_statefiles", "ha_network_peers"));
	json_decref(pools);
	json_decref(hosts);
	return e;
}

json_t *ha_disable_begin(struct api_call *c, bool emergency)
{
	struct poold *pd = c->ac_pd;
	struct ha_state *st = pd->pd_ha;
	json_t *e = db_txn(pd->pd_db, disable_txn, NULL);
	if (e)
		return e;
	/* poold stops acting first, then every host leaves (those not
	 * reachable now are told when they next report) */
	const char *ref;
	json_t *u;
	json_object_foreach(json_object_get(st->hs_conf, "members"), ref, u) disarm(pd, ref, false);
	log_info("HA %sdisabled (generation %s)", emergency ? "emergency-" : "", jstr(st->hs_conf, "generation"));
	json_decref(st->hs_conf);
	st->hs_conf = NULL;
	st->hs_enabling = st->hs_disabling = false;
	json_object_clear(st->hs_vms);
	json_object_clear(st->hs_joined);
	save(pd);
	c->ac_result = json_string("");
	return NULL;
}

/* ------------------------------------------------------ timers */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct poold *pd = arg;
	struct ha_state *st = pd->pd_ha;
	if (st->hs_enabling && (int64_t)now_ms() > st->hs_deadline) {
		log_error("HA: the liveset did not form in time");
		enable_end(pd, xerr_new(XE_HA_FAILED_TO_FORM_LIVESET, NULL));
	}
	if (st->hs_rearm_at && (int64_t)now_ms() >= st->hs_rearm_at && ha_on(pd)) {
		st->hs_rearm_at = 0;
		json_object_clear(st->hs_asked);
		const char *ref;
		json_t *u;
		json_object_foreach(json_object_get(st->hs_conf, "members"), ref, u) if (json_object_get(pd->pd_host_seen, ref))
			arm(pd, ref);
	}
}

void ha_start(struct poold *pd)
{
	struct ha_state *st = xcalloc(1, sizeof *st);
	pd->pd_ha = st;
	st->hs_fenced = json_object();
	st->hs_boots = json_object();
	st->hs_asked = json_object();
	st->hs_addrs = json_object();
	st->hs_vms = json_object();
	st->hs_joined = json_object();
	load(pd);
	if (st->hs_conf)
		log_info("HA is on (generation %s): the hosts are re-armed as they report",
			 jstr(st->hs_conf, "generation"));
	st->hs_tick = event_new(pd->pd_base, -1, EV_PERSIST, on_tick, pd);
	struct timeval tv = {0, TICK_MS * 1000};
	event_add(st->hs_tick, &tv);
}

void ha_stop(struct poold *pd)
{
	struct ha_state *st = pd->pd_ha;
	if (!st)
		return;
	if (st->hs_call)
		call_end(pd, xerr_newf(XE_INTERNAL_ERROR, "poold is stopping"));
	event_free(st->hs_tick);
	json_decref(st->hs_conf);
	json_decref(st->hs_fenced);
	json_decref(st->hs_boots);
	json_decref(st->hs_asked);
	json_decref(st->hs_addrs);
	json_decref(st->hs_vms);
	json_decref(st->hs_joined);
	free(st);
	pd->pd_ha = NULL;
}
