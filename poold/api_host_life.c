/*
 * api_host_life.c - a host's own life: host.reboot, host.shutdown,
 * host.restart_agent and pool.eject.
 *
 * As XAPI (assert_bacon_mode): a host reboots or shuts down only when it
 * is disabled (HOST_NOT_DISABLED) and runs no guest (HOST_IN_USE), which
 * ops.c decides; host.evacuate empties it. The host's agent answers, then
 * acts: on the sim backend a reboot restarts the agent (the devpool's
 * host comes back with the same pid), a shutdown stops it. A reboot stays
 * in the host's current_operations until its agent reports again; then
 * the host is enabled, as XAPI enables a host after its reboot.
 *
 * pool.eject(host): a host with no VM running, live, not the master's
 * own, is told to leave (its agent puts its pool identity aside and
 * stops), then its records go (PBDs, PIFs, metrics, the host).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "ops.h"
#include "poold.h"
#include "util.h"
#include "xerr.h"

#define COMEBACK_POLL_MS 250
#define COMEBACK_LIMIT_S 120

struct hostop {
	struct poold *ho_pd;
	char ho_host[64], ho_id[64], ho_op[16];
	char ho_boot[64];   /* the agent's run before the reboot */
	int ho_polls;
	bool ho_enable;     /* enabled at the end (a reboot that came back) */
};

static json_t *begin_txn(struct db *db, void *ctx)
{
	struct hostop *h = ctx;
	return ops_begin(db, h->ho_host, h->ho_op, h->ho_id);
}

static json_t *end_txn(struct db *db, void *ctx)
{
	struct hostop *h = ctx;
	json_t *e = ops_end(db, h->ho_host, h->ho_id);
	/* XAPI enables a host that has rebooted */
	if (!e && h->ho_enable)
		e = db_obj_set(db, h->ho_host, "enabled", json_true());
	return e;
}

static void hostop_failed(struct poold *pd, void *ctx, json_t **err)
{
	(void)err;
	struct hostop *h = ctx;
	txn_until_done(pd, end_txn, h, sizeof *h, "the end of a host operation");
}

/* The agent's run (boot id) of its newest report, "" when none. */
static const char *boot_of(struct poold *pd, const char *host)
{
	json_t *r = json_object_get(json_object_get(pd->pd_host_report, host), "report");
	return jstr(r, "boot");
}

/* Until the rebooted host's agent reports as a new run, then the end. */
static void comeback_poll(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct hostop *h = arg;
	struct poold *pd = h->ho_pd;
	const char *now = boot_of(pd, h->ho_host);
	bool back = *now && strcmp(now, h->ho_boot) != 0;
	if (!back && ++h->ho_polls < COMEBACK_LIMIT_S * 1000 / COMEBACK_POLL_MS) {
		struct timeval tv = {0, COMEBACK_POLL_MS * 1000};
		if (event_base_once(pd->pd_base, -1, EV_TIMEOUT, comeback_poll, h, &tv) == 0)
			return;
	}
	if (back)
		log_info("host %s is back after its reboot", h->ho_host);
	else
		log_warn("host %s did not report within %d s of its reboot: left disabled", h->ho_host, COMEBACK_LIMIT_S);
	h->ho_enable = back;
	txn_until_done(pd, end_txn, h, sizeof *h, "the end of a host reboot");
	free(h);
}

static json_t *acknowledged(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t **result)
{
	(void)c, (void)answer, (void)result;
	struct hostop *h = ctx;
	log_info("host %s: %s under way", h->ho_host, h->ho_op);
	if (strcmp(h->ho_op, "reboot")) /* a shutdown ends here: the host stays down, disabled */
		return db_txn(pd->pd_db, end_txn, h);
	struct hostop *w = xcalloc(1, sizeof *w);
	*w = *h;
	struct timeval tv = {0, COMEBACK_POLL_MS * 1000};
	if (event_base_once(pd->pd_base, -1, EV_TIMEOUT, comeback_poll, w, &tv) < 0) {
		free(w);
		return db_txn(pd->pd_db, end_txn, h);
	}
	return NULL;
}

static json_t *power(struct api_call *c, const char *op)
{
	struct poold *pd = c->ac_pd;
	const char *host;
	json_t *e = api_arg_ref(c, 0, "host", &host);
	if (e)
		return e;
	struct hostop *h = xcalloc(1, sizeof *h);
	h->ho_pd = pd;
	snprintf(h->ho_host, sizeof h->ho_host, "%s", host);
	snprintf(h->ho_op, sizeof h->ho_op, "%s", op);
	snprintf(h->ho_boot, sizeof h->ho_boot, "%s", boot_of(pd, host));
	if ((e = db_txn(pd->pd_db, begin_txn, h))) {
		free(h);
		return e;
	}
	return agent_call(c, host, AGENT_HOST_POWER, json_pack("[s]", op), acknowledged, hostop_failed, h);
}

/* host.reboot(host) */
json_t *host_reboot(struct api_call *c)
{
	return power(c, "reboot");
}

/* host.shutdown(host) */
json_t *host_shutdown(struct api_call *c)
{
	return power(c, "shutdown");
}

static json_t *restarting(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t **result)
{
	(void)c, (void)pd, (void)answer, (void)result;
	log_info("host %s: its agent restarts", (const char *)ctx);
	return NULL;
}

/* host.restart_agent(host): the toolstack restarts; guests run on. */
json_t *host_restart_agent(struct api_call *c)
{
	const char *host;
	json_t *rec, *e = api_arg_ref(c, 0, "host", &host);
	if (e || (e = db_obj_get_checked(c->ac_pd->pd_db, "host", host, &rec)))
		return e;
	json_decref(rec);
	return agent_call(c, host, AGENT_HOST_POWER, json_pack("[s]", "restart_agent"), restarting, NULL,
			  xstrdup(host));
}

/* ---------------------------------------------------------- pool.eject */

struct eject {
	struct poold *ej_pd;
	char ej_host[64];
};

static json_t *eject_check(struct db *db, struct poold *pd, const char *host)
{
	json_t *h, *e = db_obj_get_checked(db, "host", host, &h);
	if (e)
		return e;
	json_decref(h);
	if (strcmp(host, pd->pd_host_ref) == 0)
		return xerr_new(XE_HOST_CANNOT_DESTROY_SELF, host, NULL);
	json_t *vms = db_find(db, "VM", "resident_on", host);
	const char *k;
	json_t *v;
	json_object_foreach(vms, k, v) if (!e && strcmp(jstr(v, "power_state"), "Halted") &&
					   !json_is_true(json_object_get(v, "is_control_domain"))) e =
		xerr_newf(XE_OPERATION_NOT_ALLOWED, "VM resident on host");
	json_decref(vms);
	return e;
}

static json_t *ejected_txn(struct db *db, void *ctx)
{
	struct eject *j = ctx;
	json_t *e = eject_check(db, j->ej_pd, j->ej_host);
	return e ? e : host_records_remove(j->ej_pd, db, j->ej_host);
}

static json_t *ejected(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t **result)
{
	(void)c, (void)answer, (void)result;
	struct eject *j = ctx;
	json_t *e = db_txn(pd->pd_db, ejected_txn, j);
	if (e)
		return e;
	host_forget_seen(pd, j->ej_host);
	agent_link_forget(pd, j->ej_host);
	log_info("host %s left the pool (pool.eject)", j->ej_host);
	return NULL;
}

/* pool.eject(host) */
json_t *pool_eject(struct api_call *c)
{
	struct poold *pd = c->ac_pd;
	const char *host;
	json_t *e = api_arg_ref(c, 0, "host", &host);
	if (e || (e = eject_check(pd->pd_db, pd, host)))
		return e;
	struct eject *j = xcalloc(1, sizeof *j);
	j->ej_pd = pd;
	snprintf(j->ej_host, sizeof j->ej_host, "%s", host);
	return agent_call(c, host, AGENT_HOST_POWER, json_pack("[s]", "eject"), ejected, NULL, j);
}
