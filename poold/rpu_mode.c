/*
 * rpu_mode.c - rolling-upgrade mode, as XAPI keeps it: on while some host
 * differs from the master in its RPU keys (upgrade_mixed), off when they
 * agree again, in pool.other_config:rolling_upgrade_in_progress (XAPI's
 * key and value; clients such as Xen Orchestra read it). poold owns the
 * key: it is compared with the hosts every second and written back when
 * they disagree, as XAPI's GC pass does. When it flips, every VM, VDI and
 * SR is derived again, so allowed_operations show what the mode blocks.
 *
 * Also here: the coordinator check (a member newer than the master is
 * refused, so the master is upgraded first) and the pool-level operations
 * a rolling upgrade blocks.
 */
#include <stdio.h>
#include <string.h>
#include "log.h"
#include "ops.h"
#include "rpu.h"
#include "util.h"
#include "xerr.h"

#define MODE_KEY "rolling_upgrade_in_progress"

struct upgrade_ver rpu_master_ver(struct poold *pd, json_t **rec)
{
	*rec = db_obj_get(pd->pd_db, pd->pd_host_ref);
	json_t *sw = json_object_get(*rec, "software_version");
	return (struct upgrade_ver){jstr(sw, "product_version"), jstr(sw, "platform_version")};
}

struct mode_ctx {
	const char *master;
	int flipped; /* 1 on, -1 off, 0 unchanged */
	char behind[256];
};

/* The hosts differing from the master, named for the log. */
static bool mixed_hosts(struct db *db, const char *master, char *names, size_t len)
{
	json_t *hosts = db_find(db, "host", NULL, NULL), *m = json_object_get(hosts, master);
	json_t *msw = json_object_get(m, "software_version");
	struct upgrade_ver mv = {jstr(msw, "product_version"), jstr(msw, "platform_version")};
	bool mixed = false;
	const char *ref;
	json_t *h;
	names[0] = '\0';
	json_object_foreach(hosts, ref, h) {
		json_t *sw = json_object_get(h, "software_version");
		struct upgrade_ver v = {jstr(sw, "product_version"), jstr(sw, "platform_version")};
		if (!m || !upgrade_mixed(&v, 1, &mv))
			continue;
		mixed = true;
		size_t at = strlen(names);
		snprintf(names + at, len - at, "%s%s (%s)", at ? ", " : "", jstr(h, "name_label"), v.uv_product);
	}
	json_decref(hosts);
	return mixed;
}

static json_t *mode_txn(struct db *db, void *ctx)
{
	struct mode_ctx *m = ctx;
	m->flipped = 0;
	bool mixed = mixed_hosts(db, m->master, m->behind, sizeof m->behind);
	char pool[64];
	json_t *p = NULL;
	json_t *pools = db_find(db, "pool", NULL, NULL);
	void *it = json_object_iter(pools);
	if (it) {
		snprintf(pool, sizeof pool, "%s", json_object_iter_key(it));
		p = json_incref(json_object_iter_value(it));
	}
	json_decref(pools);
	json_t *oc = json_deep_copy(json_object_get(p, "other_config")), *e = NULL;
	json_decref(p);
	bool on = strcmp(jstr(oc, MODE_KEY), "true") == 0;
	if (!oc || on == mixed) {
		json_decref(oc);
		return NULL;
	}
	if (mixed)
		json_object_set_new(oc, MODE_KEY, json_string("true"));
	else
		json_object_del(oc, MODE_KEY);
	m->flipped = mixed ? 1 : -1;
	e = db_obj_set(db, pool, "other_config", oc);
	static const char *const classes[] = {"VM", "VDI", "SR"};
	for (size_t i = 0; i < 3 && !e; i++)
		e = ops_rederive(db, classes[i]);
	return e;
}

void rpu_mode_sync(struct poold *pd)
{
	struct mode_ctx m = {pd->pd_host_ref, 0, ""};
	json_t *e = db_txn(pd->pd_db, mode_txn, &m);
	if (e) {
		char *t = xerr_to_text(e);
		log_warn("rolling-upgrade mode: not updated: %s", t ? t : "?");
		free(t);
		json_decref(e);
	} else if (m.flipped > 0) {
		log_info("rolling-upgrade mode on: %s differ from the master", m.behind);
	} else if (m.flipped < 0) {
		log_info("rolling-upgrade mode off: every host runs the master's version");
	}
}

/* ------------------------------------------------ the coordinator first */

struct refuse_ctx {
	const char *uuid, *body;
};

static json_t *refuse_txn(struct db *db, void *ctx)
{
	struct refuse_ctx *r = ctx;
	return msg_add(db, "XAPI_STARTUP_BLOCKED_AS_VERSION_HIGHER_THAN_COORDINATOR", 2, "host", r->uuid, r->body);
}

json_t *rpu_report_check(struct poold *pd, const char *host, const struct host_report *rep)
{
	if (host && strcmp(host, pd->pd_host_ref) == 0)
		return NULL;
	json_t *m;
	struct upgrade_ver mv = rpu_master_ver(pd, &m), hv = {rep->version, rep->platform};
	/* the first agent claims the master's host: nothing to compare with yet */
	bool claimed = *jstr(json_object_get(m, "other_config"), "agent_address") != '\0';
	bool above = claimed && upgrade_above_coordinator(&hv, &mv);
	char body[512];
	snprintf(body, sizeof body,
		 "host %s runs version %s, newer than the pool master's %s: its reports are refused until the master "
		 "is upgraded (upgrade the master first)",
		 rep->name, rep->version, mv.uv_product);
	json_decref(m);
	if (!above)
		return NULL;
	json_t *said = pd->pd_rpu ? json_object_get(pd->pd_rpu->rs_refused, host ? host : rep->name) : NULL;
	if (pd->pd_rpu && !(said && strcmp(json_string_value(said), rep->version) == 0)) {
		log_warn("%s", body);
		json_object_set_new(pd->pd_rpu->rs_refused, host ? host : rep->name, json_string(rep->version));
		json_t *h = host ? db_obj_get(pd->pd_db, host) : NULL;
		struct refuse_ctx r = {h ? jstr(h, "uuid") : "", body};
		json_decref(db_txn(pd->pd_db, refuse_txn, &r));
		json_decref(h);
	}
	return xerr_new(XE_HOST_XAPI_VERSION_HIGHER_THAN_COORDINATOR, rep->version, NULL);
}

json_t *rpu_check_op(struct poold *pd, const char *cls, const char *op)
{
	struct rpu *run = pd->pd_rpu ? pd->pd_rpu->rs_run : NULL;
	if (run && run->rp_restoring && strcmp(cls, "pool") == 0 && strcmp(op, "enable_ha") == 0)
		return NULL; /* the run putting back what it suspended */
	if (!run && !snap_rolling(pd->pd_db))
		return NULL;
	return ops_upgrade_check(cls, op);
}
