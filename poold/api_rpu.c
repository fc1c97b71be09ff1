/*
 * api_rpu.c - pool.rolling_upgrade and pool.rolling_upgrade_plan (ours:
 * XAPI leaves the sequence to its clients).
 *
 *   pool.rolling_upgrade_plan(session, options)   the dry run: nothing changes
 *   pool.rolling_upgrade(session, options)        Async: the run (rpu.c)
 *
 * options (all strings): command (run for each host, {uuid} {address}
 * {name} substituted; absent: the operator upgrades each host by hand
 * while the run waits), batch_size (migrations at once, 0: xapi.conf's
 * evacuation-batch-size), network (the migration network's ref),
 * command_timeout and host_timeout (seconds: how long the command may run,
 * how long a host may take to come back).
 *
 * Both make the same plan, with the same checks, before any side effect:
 * every host live, no other run, HA not being enabled, each host's VMs
 * able to leave it (host.assert_can_evacuate, pinned VMs named), the
 * command usable for every host. The run refuses with the first of them.
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

struct rpu_opts {
	const char *command, *network;
	json_int_t batch, command_timeout, host_timeout;
};

static json_t *opt_int(const char *key, const char *text, json_int_t lo, json_int_t hi, json_int_t *out)
{
	char *end = NULL;
	long long v = strtoll(text, &end, 10);
	if (!*text || *end || v < lo || v > hi)
		return xerr_new(XE_INVALID_VALUE, key, text, NULL);
	*out = v;
	return NULL;
}

static json_t *opts_parse(struct poold *pd, json_t *o, struct rpu_opts *out)
{
	*out = (struct rpu_opts){"", "", 0, 0, 0};
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		const char *s = json_string_value(v);
		json_t *e = NULL;
		if (!s)
			return xerr_new(XE_FIELD_TYPE_ERROR, k, NULL);
		if (strcmp(k, "command") == 0)
			out->command = s;
		else if (strcmp(k, "batch_size") == 0)
			e = opt_int(k, s, 0, 1000, &out->batch);
		else if (strcmp(k, "command_timeout") == 0)
			e = opt_int(k, s, 1, 7 * 86400, &out->command_timeout);
		else if (strcmp(k, "host_timeout") == 0)
			e = opt_int(k, s, 1, 7 * 86400, &out->host_timeout);
		else if (strcmp(k, "network") == 0) {
			char cls[32];
			if (*s && strcmp(s, MODEL_NULL_REF) && (!db_obj_class(pd->pd_db, s, cls, sizeof cls) || strcmp(cls, "network")))
				return xerr_new(XE_HANDLE_INVALID, "network", s, NULL);
			out->network = strcmp(s, MODEL_NULL_REF) ? s : "";
		} else
			e = xerr_new(XE_INVALID_VALUE, k, "not an option of pool.rolling_upgrade", NULL);
		if (e)
			return e;
	}
	if (out->batch == 0)
		out->batch = conf_int(pd->pd_conf, "evacuation-batch-size");
	return NULL;
}

/* ------------------------------------------------------ the plan */

/* Each VM on host, where its evacuation would send it or why not. */
static json_t *host_vms(struct poold *pd, const char *host, json_t **fails)
{
	struct snap sn;
	json_decref(snap_build(pd->pd_db, host, NULL, NULL, PLACE_MIGRATE, &sn));
	const struct place_pool *p = &sn.sn_pool;
	struct evac_plan *plan = evacplan_plan(p);
	json_t *out = json_array();
	for (size_t k = 0; k < plan->pl_nvms; k++) {
		size_t i = plan->pl_order[k];
		const struct evac_place *x = &plan->pl_vms[i];
		json_t *vm = json_pack("{s:s, s:I}", "vm", p->pp_vms[i].pv_ref, "memory", (json_int_t)p->pp_vms[i].pv_memory);
		if (x->ep_error)
			json_object_set(vm, "error", x->ep_error);
		else
			json_object_set_new(vm, "target", json_string(p->pp_hosts[x->ep_host].ph_ref));
		json_array_append_new(out, vm);
	}
	*fails = evacplan_failures_json(p, plan);
	evacplan_free(plan);
	snap_free(&sn);
	return out;
}

static bool host_busy(const json_t *h)
{
	return json_object_size(json_object_get(h, "current_operations")) > 0;
}

/* One host's entry in the plan; its blocks appended. */
static json_t *plan_host(struct poold *pd, const char *ref, json_t *h, bool master, bool skip, const struct rpu_opts *o,
			 json_t *blocks)
{
	json_t *sw = json_object_get(h, "software_version");
	bool live = json_object_get(pd->pd_host_seen, ref) != NULL;
	json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:b, s:{s:s, s:s}}", "host", ref, "uuid", jstr(h, "uuid"),
			      "name", jstr(h, "name_label"), "address", jstr(h, "address"), "master", master, "skip", skip,
			      "live", live, "version", "product", jstr(sw, "product_version"), "platform",
			      jstr(sw, "platform_version"));
	if (!live)
		json_array_append_new(blocks, xerr_new(XE_HOST_OFFLINE, ref, NULL));
	if (host_busy(h))
		json_array_append_new(blocks, xerr_new(XE_OTHER_OPERATION_IN_PROGRESS, "host", ref, NULL));
	char *cmd = *o->command ? upgrade_command(o->command, jstr(h, "uuid"), jstr(h, "address"), jstr(h, "name_label"))
				: NULL;
	if (*o->command && !cmd)
		json_array_append_new(blocks, xerr_new(XE_INVALID_VALUE, "command",
						       "the host's name or address cannot be given to a shell", NULL));
	if (cmd)
		json_object_set_new(e, "command", json_string(cmd));
	free(cmd);
	if (skip)
		return e;
	json_t *fails, *vms = host_vms(pd, ref, &fails);
	json_object_set_new(e, "vms", vms);
	if (json_object_size(fails)) {
		char *t = json_dumps(fails, JSON_COMPACT | JSON_SORT_KEYS);
		json_array_append_new(blocks, xerr_new(XE_CANNOT_EVACUATE_HOST, t ? t : "{}", NULL));
		free(t);
	}
	json_decref(fails);
	return e;
}

static void pool_blocks(struct poold *pd, json_t *blocks)
{
	if (pd->pd_rpu && pd->pd_rpu->rs_run)
		json_array_append_new(blocks, xerr_new(XE_OTHER_OPERATION_IN_PROGRESS, "pool", pd->pd_pool_ref, NULL));
	if (pd->pd_ha && pd->pd_ha->hs_enabling)
		json_array_append_new(blocks, xerr_new(XE_HA_ENABLE_IN_PROGRESS, NULL));
}

static json_t *plan_make(struct poold *pd, const struct rpu_opts *o, json_t **blocks)
{
	json_t *all = db_find(pd->pd_db, "host", NULL, NULL);
	size_t n = json_object_size(all), i = 0, master = PLACE_NONE;
	struct upgrade_ver *v = xcalloc(n + 1, sizeof *v);
	const char **names = xcalloc(n + 1, sizeof *names), **refs = xcalloc(n + 1, sizeof *refs);
	json_t **recs = xcalloc(n + 1, sizeof *recs);
	const char *ref;
	json_t *h;
	json_object_foreach(all, ref, h) {
		json_t *sw = json_object_get(h, "software_version");
		v[i] = (struct upgrade_ver){jstr(sw, "product_version"), jstr(sw, "platform_version")};
		names[i] = jstr(h, "name_label");
		refs[i] = ref;
		recs[i] = h;
		if (strcmp(ref, pd->pd_host_ref) == 0)
			master = i;
		i++;
	}
	size_t *order = xcalloc(n + 1, sizeof *order);
	bool *skip = xcalloc(n + 1, sizeof *skip);
	upgrade_order(v, names, refs, n, master, order, skip);
	*blocks = json_array();
	pool_blocks(pd, *blocks);
	json_t *hosts = json_array();
	for (i = 0; i < n; i++) {
		size_t k = order[i];
		json_array_append_new(hosts, plan_host(pd, refs[k], recs[k], k == master, skip[k], o, *blocks));
	}
	json_t *pool = rpu_pool(pd, NULL);
	json_t *plan = json_pack("{s:o, s:b, s:s, s:b, s:b, s:s}", "hosts", hosts, "mixed",
				 master < n && upgrade_mixed(v, n, &v[master]), "command", o->command, "manual",
				 !*o->command, "ha_enabled", ha_on(pd), "auto_poweron",
				 jstr(json_object_get(pool, "other_config"), "auto_poweron"));
	json_decref(pool);
	free(v), free(names), free(refs), free(recs), free(order), free(skip);
	json_decref(all);
	return plan;
}

json_t *rpu_plan(struct poold *pd, json_t *opts, json_t **blocks)
{
	struct rpu_opts o;
	json_t *e = opts_parse(pd, opts, &o);
	if (e) {
		*blocks = json_pack("[o]", e);
		return json_object();
	}
	return plan_make(pd, &o, blocks);
}

json_t *pool_rolling_upgrade_plan(struct api_call *c)
{
	json_t *opts, *blocks, *e = api_arg_obj(c, 0, "options", &opts);
	if (e)
		return e;
	struct rpu_opts o;
	if ((e = opts_parse(c->ac_pd, opts, &o)))
		return e;
	json_t *plan = plan_make(c->ac_pd, &o, &blocks);
	json_object_set_new(plan, "blocks", blocks);
	c->ac_result = plan;
	return NULL;
}

/* ------------------------------------------------------ the run */

/* Where each running VM is now: where it goes back to at the end. */
static json_t *homes(struct db *db)
{
	json_t *all = db_find(db, "VM", "power_state", "Running"), *out = json_object();
	const char *k;
	json_t *v;
	json_object_foreach(all, k, v) if (!json_is_true(json_object_get(v, "is_control_domain")))
		json_object_set_new(out, k, json_string(jstr(v, "resident_on")));
	json_decref(all);
	return out;
}

/* The journal's hosts from the plan's. */
static json_t *run_hosts(json_t *plan, time_t now)
{
	json_t *out = json_array();
	size_t i;
	json_t *h;
	json_array_foreach(json_object_get(plan, "hosts"), i, h) {
		bool skip = json_is_true(json_object_get(h, "skip"));
		json_t *ver = json_object_get(h, "version");
		json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:I, s:{s:s, s:s}}", "host",
						     jstr(h, "host"), "uuid", jstr(h, "uuid"), "name", jstr(h, "name"),
						     "address", jstr(h, "address"), "master",
						     json_is_true(json_object_get(h, "master")), "phase",
						     upgrade_phase_name(skip ? UPG_SKIPPED : UPG_PENDING), "since",
						     (json_int_t)now, "before", "product", jstr(ver, "product"), "platform",
						     jstr(ver, "platform")));
	}
	return out;
}

json_t *pool_rolling_upgrade(struct api_call *c)
{
	struct poold *pd = c->ac_pd;
	json_t *opts, *blocks, *e = api_arg_obj(c, 0, "options", &opts);
	if (e)
		return e;
	struct rpu_opts o;
	if ((e = opts_parse(pd, opts, &o)))
		return e;
	json_t *plan = plan_make(pd, &o, &blocks);
	if (json_array_size(blocks)) {
		e = json_incref(json_array_get(blocks, 0));
		json_decref(blocks);
		json_decref(plan);
		return e;
	}
	json_decref(blocks);
	time_t now = time(NULL);
	json_t *st = json_pack("{s:s, s:s, s:I, s:s, s:I, s:I, s:s, s:i, s:I, s:o, s:o}", "task", c->ac_task, "command",
			       o.command, "batch", o.batch, "network", o.network, "command_timeout", o.command_timeout,
			       "host_timeout", o.host_timeout, "stage", "suspend", "current", 0, "started",
			       (json_int_t)now, "hosts", run_hosts(plan, now), "homes", homes(pd->pd_db));
	json_decref(plan);
	log_info("rolling upgrade: %zu hosts, %s", json_array_size(json_object_get(st, "hosts")),
		 *o.command ? o.command : "upgraded by hand (no command)");
	rpu_new(pd, st, c);
	return API_PENDING;
}
