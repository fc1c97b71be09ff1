/*
 * mfo_designate.c - the master's role moved on purpose, and the
 * operator's calls on the master itself.
 *
 * pool.designate_new_master(host), as XAPI, only with HA off (HA moves the
 * role by its lease). The database goes to shared storage first if it is
 * still local (a redo_log VDI on the default SR, which both hosts must
 * have plugged). Migrations in flight end first (up to 2 minutes; the
 * master serves meanwhile). Then this master stops: no write from now (the guard),
 * everything master.c runs stopped, the last commits synced and the
 * database closed, its lock released; meanwhile clients are told
 * HOST_IS_SLAVE with the new master's address. The designated host's
 * standby takes the database (pool.designate_commit) under the next
 * epoch, tells every agent, and this poold starts again as a standby. If
 * the new master cannot take it, this one starts again as master (it is
 * still the designated one in its master.json): nothing is lost either
 * way, the database lock decides who writes. Tasks that were running end
 * as failed, saying the master moved.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "evrpc.h"
#include "log.h"
#include "poold.h"
#include "tls.h"
#include "util.h"
#include "xerr.h"

#define STANDBY_FRESH_MS 6000
#define QUIET_WAIT_MS 120000 /* the longest a hand-over waits for migrations */
#define QUIET_POLL_MS 200

struct handover {
	struct poold *pd;
	struct api_call *call;
	char host[64], uuid[48], address[64];
	char database[4200]; /* the database's file as the new master sees it */
	int64_t since_ms;    /* when it was asked for */
	bool said, stopping; /* logged the wait; this master stopping */
};

static void handover_restart(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct poold *pd = arg;
	pd->pd_mfo->mf_reexec = true;
	event_base_loopexit(pd->pd_base, NULL);
}

static void handover_done(void *arg, json_t *result, json_t *err)
{
	(void)result;
	struct handover *h = arg;
	struct poold *pd = h->pd;
	struct mfo *m = pd->pd_mfo;
	char e[512];
	if (err) {
		char *s = xerr_to_text(err);
		log_error("pool.designate_new_master: host %s did not take over (%s): this host is master again", h->uuid,
			  s ? s : "?");
		free(s);
	} else {
		snprintf(m->mf_ms.ms_master_uuid, sizeof m->mf_ms.ms_master_uuid, "%s", h->uuid);
		snprintf(m->mf_ms.ms_master_address, sizeof m->mf_ms.ms_master_address, "%s", h->address);
		m->mf_ms.ms_epoch = (uint64_t)json_integer_value(json_object_get(result, "epoch"));
		if (mstate_save(pd->pd_dir, &m->mf_ms, e, sizeof e) < 0)
			log_error("%s", e);
		log_warn("pool.designate_new_master: host %s (%s) is the pool master now", h->uuid, h->address);
	}
	if (h->call) {
		h->call->ac_result = err ? NULL : json_string("");
		api_call_finish(h->call, err ? json_incref(err) : NULL);
	}
	/* the answer goes out, then this poold starts again (standby, or master again) */
	struct timeval tv = {0, 300 * 1000};
	event_base_once(pd->pd_base, -1, EV_TIMEOUT, handover_restart, pd, &tv);
	free(h);
}

static void handover_cancel(struct api_call *c)
{
	struct handover *h = c->ac_parked;
	h->call = NULL;
	api_call_free(c);
}

/* The database closed (its lock released), the designated host takes it. */
static void handover_commit(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct handover *h = arg;
	struct poold *pd = h->pd;
	struct mfo *m = pd->pd_mfo;
	durable_free(pd->pd_durable);
	pd->pd_durable = NULL;
	db_close(pd->pd_db);
	pd->pd_db = NULL;
	struct evrpc_target t = {h->address, pd->pd_port, m->mf_peer_ctx, TLS_MASTER_CN};
	if (evrpc_call(pd->pd_base, &t, "pool.designate_commit",
		       json_pack("[I,s]", (json_int_t)m->mf_epoch, h->database), 60, handover_done, h) < 0) {
		json_t *err = xerr_new(XE_CANNOT_CONTACT_HOST, h->host, NULL);
		handover_done(h, NULL, err);
		json_decref(err);
	}
}

/* VMs being migrated, and host evacuations: a hand-over waits for them,
 * so that no migration's end is left for the next master to work out from
 * the hosts' reports (a copy on each host, the one not recorded paused). */
static bool handover_migrating(struct poold *pd)
{
	if (pd->pd_evacs)
		return true;
	json_t *vms = db_find(pd->pd_db, "VM", NULL, NULL), *v, *op;
	const char *k, *id;
	bool busy = false;
	json_object_foreach(vms, k, v) {
		json_object_foreach(json_object_get(v, "current_operations"), id, op) {
			if (json_is_string(op) && !strcmp(json_string_value(op), "pool_migrate"))
				busy = true;
		}
	}
	json_decref(vms);
	return busy;
}

/* Once no migration runs (or after QUIET_WAIT_MS: then the reports settle
 * them), this master stops: from then clients are sent to the new master
 * and nothing is written. */
static void handover_when_quiet(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct handover *h = arg;
	struct poold *pd = h->pd;
	struct mfo *m = pd->pd_mfo;
	if (!h->call && !h->stopping) { /* the client left while it waited: nothing moved */
		free(h);
		return;
	}
	if (handover_migrating(pd) && (int64_t)now_ms() - h->since_ms < QUIET_WAIT_MS) {
		if (!h->said)
			log_info("pool.designate_new_master: waiting for the migrations in flight to end");
		h->said = true;
		struct timeval poll = {0, QUIET_POLL_MS * 1000};
		event_base_once(pd->pd_base, -1, EV_TIMEOUT, handover_when_quiet, h, &poll);
		return;
	}
	log_warn("pool.designate_new_master: handing the pool over to host %s (%s)", h->uuid, h->address);
	h->stopping = true;
	atomic_store(&m->mf_stepped_down, true);
	m->mf_role = MFO_STANDBY;
	snprintf(m->mf_ms.ms_master_address, sizeof m->mf_ms.ms_master_address, "%s", h->address);
	master_stop(pd);
	/* what master_stop failed (agent calls in flight) ends on the next loop
	 * turns, with the database still there to read: then it closes */
	struct timeval tv = {0, 200 * 1000};
	event_base_once(pd->pd_base, -1, EV_TIMEOUT, handover_commit, h, &tv);
}

/* The checks before anything stops: NULL, or why not. */
static json_t *designate_check(struct poold *pd, const char *host, struct handover *h)
{
	struct mfo *m = pd->pd_mfo;
	json_t *rec, *e = db_obj_get_checked(pd->pd_db, "host", host, &rec);
	if (e)
		return e;
	snprintf(h->uuid, sizeof h->uuid, "%s", jstr(rec, "uuid"));
	snprintf(h->address, sizeof h->address, "%s", jstr(rec, "address"));
	json_decref(rec);
	if (pd->pd_ha && pd->pd_ha->hs_conf)
		return xerr_new(XE_HA_IS_ENABLED, NULL);
	json_t *sb = json_object_get(m->mf_standbys, host);
	if (!sb || (int64_t)now_ms() - json_integer_value(json_object_get(sb, "at")) > STANDBY_FRESH_MS)
		return xerr_new(XE_CANNOT_CONTACT_HOST, host, NULL);
	if (!db_is_shared(pd->pd_db)) {
		char *pool = db_meta_get(pd->pd_db, "pool_ref");
		json_t *p = pool ? db_obj_get(pd->pd_db, pool) : NULL;
		char sr[64];
		snprintf(sr, sizeof sr, "%s", jstr(p, "default_SR"));
		json_decref(p);
		free(pool);
		if (!strcmp(sr, MODEL_NULL_REF) || !*sr)
			return xerr_newf(XE_OPERATION_NOT_ALLOWED, "the pool database must move to shared storage first: set a "
								   "default SR that both hosts have plugged");
		if ((e = mfo_db_move(pd, sr)))
			return e;
	}
	if (!mfo_db_path_for(pd, host, h->database, sizeof h->database))
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "host %s has not plugged the SR that holds the pool database", host);
	return NULL;
}

/* pool.designate_new_master(session, host) */
json_t *pool_designate_new_master(struct api_call *c)
{
	struct poold *pd = c->ac_pd;
	const char *host;
	json_t *e = api_arg_ref(c, 0, "host", &host);
	if (e)
		return e;
	if (strcmp(host, pd->pd_host_ref) == 0)
		return NULL; /* already master: nothing to do, as XAPI */
	struct handover *h = xcalloc(1, sizeof *h);
	h->pd = pd;
	snprintf(h->host, sizeof h->host, "%s", host);
	if ((e = designate_check(pd, host, h))) {
		free(h);
		return e;
	}
	h->call = c;
	h->since_ms = (int64_t)now_ms();
	c->ac_parked = h;
	c->ac_cancel = handover_cancel;
	handover_when_quiet(-1, 0, h);
	return API_PENDING;
}

/* pool.emergency_transition_to_master on the master: it is one already. */
json_t *pool_emergency_transition_to_master(struct api_call *c)
{
	(void)c;
	return NULL;
}

/* pool.emergency_reset_master(session, address) on the master: it steps
 * down and follows that address (XAPI: become another master's slave). */
json_t *pool_emergency_reset_master(struct api_call *c)
{
	struct poold *pd = c->ac_pd;
	struct mfo *m = pd->pd_mfo;
	const char *addr;
	json_t *e = api_arg_str(c, 0, "master_address", &addr);
	if (e)
		return e;
	if (pd->pd_ha && pd->pd_ha->hs_conf)
		return xerr_new(XE_HA_IS_ENABLED, NULL);
	if (tls_name_kind(addr, NULL, NULL) == TLS_NAME_INVALID)
		return xerr_new(XE_INVALID_VALUE, "master_address", addr, NULL);
	if (strcmp(addr, m->mf_ms.ms_master_address) == 0)
		return NULL;
	if (!db_is_shared(pd->pd_db))
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "the pool database is on this host (%s/pool.db): it stays the master",
				 pd->pd_dir);
	snprintf(m->mf_ms.ms_master_address, sizeof m->mf_ms.ms_master_address, "%s", addr);
	m->mf_ms.ms_master_uuid[0] = '\0';
	char err[512];
	if (mstate_save(pd->pd_dir, &m->mf_ms, err, sizeof err) < 0)
		return xerr_newf(XE_INTERNAL_ERROR, "%s", err);
	mfo_step_down(pd, "pool.emergency_reset_master: the operator says the master is elsewhere", false);
	return NULL;
}
