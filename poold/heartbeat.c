/*
 * heartbeat.c - what the hosts say, every heartbeat: their memory, SRs and
 * addresses, which hosts are live, and where each VM really runs.
 *
 * An agent reports on a kept-alive connection every heartbeat-interval;
 * its certificate names the host (the CN), so a report speaks only for
 * its own host. A host without a heartbeat for host-heartbeat-timeout is
 * marked not live. Liveness is kept in memory first, so a pool database
 * that is busy (locked by another process) never makes a live host look
 * dead.
 *
 * Where a VM runs is decided by reconcile.c over every host's newest
 * report; this file gathers those views, applies the decision and carries
 * out its effects (pausing a double, destroying a stale paused copy, the
 * alarm) after the transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "poold.h"
#include "reconcile.h"
#include "util.h"
#include "xerr.h"

#define BEAT_FULL_SECONDS 30

struct beat_ctx {
	struct poold *pd;
	const char *host;
	struct host_report rep;
	json_t *report;  /* the whole report (domains, domains_complete, boot, seq) */
	json_t *pause;   /* [[host, vm uuid]]: doubles to pause (after the txn) */
	json_t *stale;   /* [[host, vm uuid]]: stale paused copies to destroy (after the txn) */
	bool changed;
};

/* ------------------------------------------------------------- stamps */

/* Was a report (boot, seq) of host made before the last operation on vm
 * there finished? The agent numbers its reports and stamps each
 * operation's answer with the number of the next report, so an old report
 * (sent on another connection, overtaken by the answer) never undoes the
 * operation. */
static bool report_older(struct poold *pd, const char *vm, const char *host, const char *boot, json_int_t seq)
{
	json_t *t = json_object_get(json_object_get(pd->pd_vm_changed, vm), host);
	if (!t || strcmp(jstr(t, "boot"), boot))
		return false; /* no stamp from this host, or its agent restarted since: no order to keep */
	return seq < json_integer_value(json_object_get(t, "seq"));
}

/* Every host's stamp is kept (not only the last operation's): a report a
 * host sent before its own answer on this VM stays older than that answer
 * whatever happened on other hosts since (a VM shut down on host2 and
 * started on host3 must not be seen running on host2 again). */
void vm_changed_stamp(struct poold *pd, const char *vm, const char *host, json_t *answer, bool first)
{
	(void)first;
	if (!json_is_string(json_object_get(answer, "boot")))
		return;
	json_t *t = json_object_get(pd->pd_vm_changed, vm);
	if (!t) {
		t = json_object();
		json_object_set_new(pd->pd_vm_changed, vm, t);
	}
	json_object_set_new(t, host,
			    json_pack("{s:O, s:O}", "boot", json_object_get(answer, "boot"), "seq",
				      json_object_get(answer, "seq")));
}

/* ------------------------------------------------------------- views */

/* The domain of VM uuid in a report, or NULL. */
static json_t *domain_in(json_t *report, const char *uuid)
{
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(report, "domains"), i, d) if (strcmp(jstr(d, "uuid"), uuid) == 0) return d;
	return NULL;
}

static enum rc_seen seen_in(json_t *report, const char *uuid)
{
	json_t *d = domain_in(report, uuid);
	if (!d)
		return json_is_true(json_object_get(report, "domains_complete")) ? RC_ABSENT : RC_MISSING;
	const char *ps = jstr(d, "power_state");
	return strcmp(ps, "Running") == 0 ? RC_RUNNING : strcmp(ps, "Paused") == 0 ? RC_PAUSED : RC_STOPPED;
}

/* Host host's newest report (the one being handled for the reporter). */
static json_t *report_of(struct beat_ctx *b, const char *host, json_int_t *seq)
{
	if (strcmp(host, b->host) == 0) {
		*seq = json_integer_value(json_object_get(b->report, "seq"));
		return b->report;
	}
	json_t *last = json_object_get(b->pd->pd_host_report, host);
	*seq = json_integer_value(json_object_get(last, "seq"));
	return json_object_get(last, "report");
}

/* What host says of VM vm (uuid): see reconcile.h. */
static enum rc_seen view(struct beat_ctx *b, const char *host, const char *vm, const char *uuid)
{
	if (strcmp(host, b->host) && !json_object_get(b->pd->pd_host_seen, host))
		return RC_DOWN;
	json_int_t seq;
	json_t *r = report_of(b, host, &seq);
	if (!r || report_older(b->pd, vm, host, jstr(r, "boot"), seq))
		return RC_UNKNOWN;
	return seen_in(r, uuid);
}

/* ---------------------------------------------------------- reconcile */

/* The record of vm as host's report has it (running or paused there). */
static json_t *record_from(struct beat_ctx *b, const char *host, const char *uuid)
{
	json_int_t seq;
	json_t *d = domain_in(report_of(b, host, &seq), uuid);
	return json_pack("{s:s, s:s, s:I}", "power_state", jstr(d, "power_state"), "resident_on", host, "domid",
			 json_integer_value(json_object_get(d, "domid")));
}

static json_t *double_alarm(struct beat_ctx *b, struct db *db, const char *vm, const json_t *v, const char *host)
{
	json_t *known = json_object_get(b->pd->pd_doubles, vm);
	if (json_object_get(known, host))
		return NULL; /* said once: no flood, no flapping */
	if (!known) {
		known = json_object();
		json_object_set_new(b->pd->pd_doubles, vm, known);
	}
	json_object_set_new(known, host, json_true());
	char body[512];
	snprintf(body, sizeof body,
		 "VM %s is recorded on host %s but host %s reports it running too: the copy on %s is paused "
		 "(then destroyed, as any paused copy of a VM that runs on a live host)",
		 jstr(v, "name_label"), jstr(v, "resident_on"), host, host);
	return msg_add(db, "VM_RUNNING_ON_TWO_HOSTS", 1, "VM", jstr(v, "uuid"), body);
}

static json_t *apply(struct beat_ctx *b, struct db *db, const char *vm, const json_t *v, json_t *hosts,
		     const struct rc_decision *d)
{
	json_t *want = NULL, *e = NULL;
	const char *uuid = jstr(v, "uuid");
	if (d->rd_action == RC_RECORD)
		want = record_from(b, json_string_value(json_array_get(hosts, (size_t)d->rd_host)), uuid);
	else if (d->rd_action == RC_HALT)
		want = json_pack("{s:s, s:s, s:I}", "power_state", "Halted", "resident_on", MODEL_NULL_REF, "domid",
				 (json_int_t)-1);
	bool same = true;
	const char *k;
	json_t *x;
	json_object_foreach(want, k, x) if (!json_equal(x, json_object_get(v, k))) same = false;
	if (want && !same) {
		log_info("VM %s: the hosts report it %s on %s, recorded as %s on %s", jstr(v, "name_label"),
			 jstr(want, "power_state"), jstr(want, "resident_on"), jstr(v, "power_state"),
			 jstr(v, "resident_on"));
		e = db_obj_update(db, vm, want);
		if (!e && d->rd_action == RC_HALT)
			e = guest_metrics_drop(db, vm);
	}
	json_decref(want);
	for (size_t i = 0; !e && i < json_array_size(hosts); i++) {
		const char *h = json_string_value(json_array_get(hosts, i));
		if (d->rd_copy[i] == RC_PAUSE_DOUBLE) {
			e = double_alarm(b, db, vm, v, h);
			json_array_append_new(b->pause, json_pack("[s,s]", h, uuid));
		} else if (d->rd_copy[i] == RC_DESTROY_STALE) {
			log_warn("VM %s: host %s holds a paused copy while it runs elsewhere: destroyed",
				 jstr(v, "name_label"), h);
			json_array_append_new(b->stale, json_pack("[s,s]", h, uuid));
		}
	}
	return e;
}

static json_t *reconcile_one(struct beat_ctx *b, struct db *db, const char *vm, json_t *hosts)
{
	const json_t *v = db_obj_peek(db, vm);
	if (!v || json_is_true(json_object_get(v, "is_a_template")) || json_is_true(json_object_get(v, "is_a_snapshot")) ||
	    json_is_true(json_object_get(v, "is_control_domain"))) { /* dom0 is no domain the agent lists */
		db_peek_done(v);
		return NULL;
	}
	size_t n = json_array_size(hosts);
	enum rc_seen *seen = xcalloc(n, sizeof *seen);
	enum rc_copy *copy = xcalloc(n, sizeof *copy);
	const char *ps = jstr(v, "power_state"), *on = jstr(v, "resident_on");
	struct rc_vm rv = {strcmp(ps, "Running") == 0 || strcmp(ps, "Paused") == 0 ? RC_ON : RC_HALTED, -1,
			   strcmp(jstr(v, "scheduled_to_be_resident_on"), MODEL_NULL_REF) != 0, n, seen};
	for (size_t i = 0; i < n; i++) {
		const char *h = json_string_value(json_array_get(hosts, i));
		seen[i] = view(b, h, vm, jstr(v, "uuid"));
		if (strcmp(h, on) == 0)
			rv.rv_resident = (int)i;
	}
	struct rc_decision d = {RC_KEEP, -1, copy};
	rc_decide(&rv, &d);
	json_t *e = apply(b, db, vm, v, hosts, &d);
	free(seen);
	free(copy);
	db_peek_done(v);
	return e;
}

static int ref_into(void *ctx, const char *ref, const json_t *rec)
{
	(void)rec;
	json_object_set_new(ctx, ref, json_true());
	return 0;
}

/* Decide again every VM the reporter's word may concern: those in its
 * report and those the record puts on it. */
static json_t *reconcile_vms(struct db *db, struct beat_ctx *b)
{
	json_t *hosts = db_refs_all(db, "host"), *todo = json_object(), *e = NULL;
	db_each(db, "VM", "resident_on", b->host, ref_into, todo);
	db_each(db, "VM", "scheduled_to_be_resident_on", b->host, ref_into, todo);
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(b->report, "domains"), i, d) {
		char vm[64];
		if (db_ref_by_uuid(db, "VM", jstr(d, "uuid"), vm)) /* else not a VM of this pool: left alone */
			json_object_set_new(todo, vm, json_true());
	}
	const char *vm;
	json_t *x;
	json_object_foreach(todo, vm, x) if (!e) e = reconcile_one(b, db, vm, hosts);
	json_decref(todo);
	json_decref(hosts);
	return e;
}

/* ---------------------------------------------------------- heartbeat */

static json_t *beat_metrics(struct db *db, struct beat_ctx *b, json_t *h)
{
	const char *mref = jstr(h, "metrics");
	json_t *m = db_obj_get(db, mref), *e = NULL;
	json_int_t free_was = json_integer_value(json_object_get(m, "memory_free"));
	json_int_t diff = free_was - b->rep.memory_free;
	bool live = json_is_true(json_object_get(m, "live"));
	/* write when something a client would notice changed, not every beat;
	 * a full pass (every BEAT_FULL_SECONDS at least) refreshes last_updated */
	char now[32];
	model_now(now);
	if (!live || diff > b->rep.memory_total / 100 || -diff > b->rep.memory_total / 100 ||
	    json_integer_value(json_object_get(m, "memory_total")) != b->rep.memory_total ||
	    strncmp(jstr(m, "last_updated"), now, 13) != 0) {
		e = db_obj_update_new(db, mref, json_pack("{s:I, s:I, s:b, s:s}", "memory_total", b->rep.memory_total,
						      "memory_free", b->rep.memory_free, "live", 1, "last_updated",
						      now));
		b->changed = !live;
	}
	json_decref(m);
	return e;
}

static json_t *beat_host(struct db *db, struct beat_ctx *b, json_t *h)
{
	json_t *fields = host_report_fields(&b->rep), *e = NULL;
	char port[16];
	snprintf(port, sizeof port, "%lld", (long long)b->rep.port);
	json_object_set_new(json_object_get(fields, "other_config"), "agent_port", json_string(port));
	/* keep the operator's other_config keys: only ours are refreshed */
	json_t *oc = json_deep_copy(json_object_get(h, "other_config"));
	json_object_update(oc, json_object_get(fields, "other_config"));
	json_object_set_new(fields, "other_config", oc);
	bool same = true;
	const char *k;
	json_t *v;
	json_object_foreach(fields, k, v) if (!json_equal(v, json_object_get(h, k))) same = false;
	if (!same)
		e = db_obj_update(db, b->host, fields);
	json_decref(fields);
	return e;
}

static json_t *beat_txn(struct db *db, void *ctx)
{
	struct beat_ctx *b = ctx;
	json_t *h, *e = db_obj_get_checked(db, "host", b->host, &h);
	if (e)
		return e;
	/* a retried transaction starts its effects list anew */
	json_array_clear(b->pause);
	json_array_clear(b->stale);
	e = beat_metrics(db, b, h);
	if (!e)
		e = beat_host(db, b, h);
	if (!e)
		e = host_pifs_sync(db, b->host, &b->rep);
	if (!e)
		e = control_domain_sync(db, b->host, h, &b->rep);
	if (!e)
		e = reconcile_vms(db, b);
	if (!e)
		e = guest_metrics_sync(db, b->host, b->report);
	size_t i;
	json_t *sp;
	json_array_foreach(json_object_get(b->report, "srs"), i, sp) if (!e) e = sr_space_update(db, sp);
	json_decref(h);
	return e;
}

/* After the transaction: what the decision asked of the hosts. */
static void beat_effects(struct poold *pd, struct beat_ctx *b)
{
	size_t i;
	json_t *p;
	json_array_foreach(b->pause, i, p)
		agent_tell(pd, json_string_value(json_array_get(p, 0)), AGENT_VM_PAUSE,
			   json_pack("[O]", json_array_get(p, 1)));
	json_array_foreach(b->stale, i, p)
		agent_tell(pd, json_string_value(json_array_get(p, 0)), AGENT_VM_SHUTDOWN,
			   json_pack("[O,b]", json_array_get(p, 1), 1));
}

/* Most beats say what the last one said: then there is nothing to write,
 * and no need to read the records to find that out. A full pass still
 * runs every BEAT_FULL_SECONDS, in case the records were changed under us. */
static bool beat_same(struct poold *pd, const char *ref, json_t *cmp, const struct host_report *rep)
{
	json_t *last = json_object_get(pd->pd_host_report, ref);
	json_int_t then = json_integer_value(json_object_get(last, "__at"));
	json_int_t free_then = json_integer_value(json_object_get(last, "memory_free"));
	return last && json_equal(json_object_get(last, "report"), cmp) && now_s() - then < BEAT_FULL_SECONDS &&
	       llabs((long long)(free_then - rep->memory_free)) <= rep->memory_total / 100 &&
	       json_object_get(pd->pd_host_seen, ref);
}

/* The answer: the host's ref and where the master is (agent/master.c
 * follows it when it moves). */
static json_t *beat_answer(struct poold *pd, const char *ref)
{
	return json_pack("{s:s, s:O}", "host", ref, "master", pd->pd_master_info ? pd->pd_master_info : json_null());
}

json_t *host_heartbeat(struct api_call *c)
{
	struct poold *pd = c->ac_pd;
	struct beat_ctx b = {pd, NULL, {0}, NULL, NULL, NULL, false};
	char ref[64];
	if (!db_ref_by_uuid(pd->pd_db, "host", c->ac_peer, ref))
		return xerr_new(XE_PERMISSION_DENIED, "the certificate names no host of this pool", NULL);
	b.host = ref;
	json_t *report, *e = api_arg_obj(c, 0, "report", &report);
	if (e || (e = host_report_parse(report, &b.rep)))
		return e;
	b.report = report;
	json_t *cmp = json_deep_copy(report);
	json_object_del(cmp, "memory_free");
	json_object_del(cmp, "seq");
	/* a run of this host's agent that HA declared fenced speaks no more,
	 * nor a member newer than the master (the master is upgraded first) */
	if ((e = ha_host_report(pd, ref, report)) || (e = rpu_report_check(pd, ref, &b.rep))) {
		json_decref(cmp);
		return e;
	}
	bool same = beat_same(pd, ref, cmp, &b.rep), was_live = json_object_get(pd->pd_host_seen, ref) != NULL;
	/* live first: a busy database must not make a live host look dead */
	host_seen(pd, ref);
	json_t *last = json_object_get(pd->pd_host_report, ref);
	if (same) {
		json_object_set(last, "seq", json_object_get(report, "seq"));
		json_decref(cmp);
		c->ac_result = beat_answer(pd, ref);
		return NULL;
	}
	b.pause = json_array();
	b.stale = json_array();
	e = db_txn(pd->pd_db, beat_txn, &b);
	if (!e) {
		json_object_set_new(pd->pd_host_report, ref,
				    json_pack("{s:o, s:O, s:I, s:I}", "report", cmp, "seq", json_object_get(report, "seq"),
					      "memory_free", b.rep.memory_free, "__at", (json_int_t)now_s()));
		beat_effects(pd, &b);
		if (b.changed || !was_live)
			log_info("host %s is live", b.rep.name);
		c->ac_result = beat_answer(pd, ref);
	} else {
		json_decref(cmp); /* not recorded: the next beat tries again */
	}
	json_decref(b.pause);
	json_decref(b.stale);
	return e;
}

/* ------------------------------------------------------------ liveness */

void host_seen(struct poold *pd, const char *host)
{
	json_object_set_new(pd->pd_host_seen, host, json_integer(now_s()));
}

void host_forget_seen(struct poold *pd, const char *host)
{
	json_object_del(pd->pd_host_seen, host);
	json_object_del(pd->pd_host_report, host);
	agent_link_forget(pd, host);
}

static json_t *not_live_txn(struct db *db, void *ctx)
{
	json_t *h = db_obj_get(db, ctx);
	const char *m = jstr(h, "metrics");
	json_t *e = *m ? db_obj_set(db, m, "live", json_false()) : NULL;
	json_decref(h);
	return e;
}

static void liveness_check(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct poold *pd = arg;
	agent_links_sweep(pd);
	int64_t now = now_s();
	int64_t limit = conf_duration_ms(pd->pd_conf, "host-heartbeat-timeout") / 1000;
	const char *ref;
	json_t *seen, *tmp;
	json_object_foreach_safe(pd->pd_host_seen, tmp, ref, seen) {
		if (now - json_integer_value(seen) <= limit)
			continue;
		json_t *e = db_txn(pd->pd_db, not_live_txn, (void *)ref);
		json_decref(e);
		log_warn("host %s is not live: no heartbeat for %llds", ref, (long long)(now - json_integer_value(seen)));
		/* live again with its next heartbeat; what it said is stale now */
		json_object_del(pd->pd_host_report, ref);
		json_object_del(pd->pd_host_seen, ref);
	}
}

void host_liveness_start(struct poold *pd)
{
	pd->pd_host_seen = json_object();
	pd->pd_host_report = json_object();
	pd->pd_doubles = json_object();
	/* hosts live when poold stopped get a full timeout to say so again */
	json_t *hosts = db_find(pd->pd_db, "host", NULL, NULL);
	const char *ref;
	json_t *h;
	json_object_foreach(hosts, ref, h) {
		/* the master's own machine, until an agent claims it, is poold's
		 * to report: it is live while poold runs */
		if (!*jstr(json_object_get(h, "other_config"), "agent_address"))
			continue;
		json_t *m = db_obj_get(pd->pd_db, jstr(h, "metrics"));
		if (json_is_true(json_object_get(m, "live")))
			host_seen(pd, ref);
		json_decref(m);
	}
	json_decref(hosts);
	pd->pd_live_timer = event_new(pd->pd_base, -1, EV_PERSIST, liveness_check, pd);
	struct timeval one = {1, 0};
	event_add(pd->pd_live_timer, &one);
}

void host_liveness_stop(struct poold *pd)
{
	if (pd->pd_live_timer)
		event_free(pd->pd_live_timer);
	pd->pd_live_timer = NULL;
	json_decref(pd->pd_host_seen);
	pd->pd_host_seen = NULL;
	json_decref(pd->pd_host_report);
	pd->pd_host_report = NULL;
	json_decref(pd->pd_doubles);
	pd->pd_doubles = NULL;
}

int64_t host_reports_settle_ms(const struct poold *pd)
{
	return conf_duration_ms(pd->pd_conf, "host-heartbeat-timeout");
}

void host_after_reports(struct poold *pd, event_callback_fn cb, void *arg)
{
	int64_t ms = host_reports_settle_ms(pd);
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	event_base_once(pd->pd_base, -1, EV_TIMEOUT, cb, arg, &tv);
}
