/*
 * xe_ha.c - the HA commands: pool-ha-enable, pool-ha-disable,
 * pool-ha-compute-max-host-failures-to-tolerate, its hypothetical twin,
 * pool-ha-prevent-restarts-for, host-emergency-ha-disable, and ours,
 * pool-ha-plan: for each protected VM, where it would restart if a host
 * died now, or why it would not, with the numbers. (A VM's HA settings
 * are fields: xe vm-param-set ha-restart-priority=restart order=1
 * start-delay=10.)
 */
#include <stdlib.h>
#include <string.h>
#include "xe.h"
#include "util.h"

#define MiB (1024.0 * 1024.0)

static int done(json_t *r)
{
	json_decref(r);
	return r ? 0 : -1;
}

/* heartbeat-sr-uuids=a,b -> [SR refs] (new reference) or NULL. */
static json_t *sr_refs(struct xe_ctx *c, const char *uuids)
{
	json_t *out = json_array();
	char *copy = xstrdup(uuids ? uuids : ""), *save = NULL;
	for (char *u = strtok_r(copy, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
		char *ref = xe_ref_by_uuid(c, "SR", u);
		if (!ref) {
			json_decref(out);
			out = NULL;
			break;
		}
		json_array_append_new(out, json_string(ref));
		free(ref);
	}
	free(copy);
	return out;
}

int xe_cmd_pool_ha_enable(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	json_t *srs = sr_refs(c, xe_param(c, "heartbeat-sr-uuids"));
	if (!srs)
		return -1;
	json_t *conf = xe_map_params(c, "ha-config");
	return done(xe_rpc(c, "pool.enable_ha", "oo", srs, conf));
}

int xe_cmd_pool_ha_disable(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	return done(xe_rpc(c, "pool.disable_ha", ""));
}

int xe_cmd_host_emergency_ha_disable(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	bool soft;
	if (xe_bool_param(c, "soft", false, &soft))
		return -1;
	xe_param(c, "force");
	return done(xe_rpc(c, "host.emergency_ha_disable", "b", soft));
}

int xe_cmd_pool_ha_prevent_restarts_for(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	const char *s = xe_param(c, "seconds");
	char *end = NULL;
	long long n = strtoll(s ? s : "", &end, 10);
	if (!s || !*s || *end)
		return xe_fail(c, "seconds: expected a number of seconds, got '%s'", s ? s : "");
	return done(xe_rpc(c, "pool.ha_prevent_restarts_for", "I", (json_int_t)n));
}

int xe_cmd_pool_ha_compute_max(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	json_t *r = xe_rpc(c, "pool.ha_compute_max_host_failures_to_tolerate", "");
	if (r)
		fprintf(c->out, "%lld\n", (long long)json_integer_value(r));
	return done(r);
}

/* vm-uuid= and restart-priority= given as many times each, in pairs. */
int xe_cmd_pool_ha_compute_hypothetical(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	json_t *conf = json_object(), *vms = json_array(), *prios = json_array();
	for (size_t i = 0; i < c->opts->nkv; i++) {
		struct xe_kv *kv = &c->opts->kv[i];
		if (kv->val && (!strcmp(kv->key, "vm-uuid") || !strcmp(kv->key, "restart-priority"))) {
			json_array_append_new(strcmp(kv->key, "vm-uuid") ? prios : vms, json_string(kv->val));
			kv->used = true;
		}
	}
	int rc = 0;
	if (json_array_size(vms) != json_array_size(prios))
		rc = xe_fail(c, "Must specify the same number of vm-uuid and restart-priority parameters");
	for (size_t i = 0; !rc && i < json_array_size(vms); i++) {
		char *ref = xe_ref_by_uuid(c, "VM", json_string_value(json_array_get(vms, i)));
		if (!ref) {
			rc = -1;
			break;
		}
		json_object_set(conf, ref, json_array_get(prios, i));
		free(ref);
	}
	json_t *r = rc ? NULL : xe_rpc(c, "pool.ha_compute_hypothetical_max_host_failures_to_tolerate", "O", conf);
	if (r)
		fprintf(c->out, "%lld\n", (long long)json_integer_value(r));
	json_decref(conf);
	json_decref(vms);
	json_decref(prios);
	return rc ? rc : done(r);
}

/* ---- pool-ha-plan ---- */

static const char *name_of(struct xe_ctx *c, const char *cls, const char *ref)
{
	json_t *rec = json_object_get(xe_all(c, cls), ref);
	const char *n = json_string_value(json_object_get(rec, "name_label"));
	return n && *n ? n : ref;
}

static void print_vm(struct xe_ctx *c, const char *vm, json_t *p)
{
	const char *host = json_string_value(json_object_get(p, "host"));
	if (host) {
		fprintf(c->out, "  %-24s -> %-12s %8.0f MiB (%.0f MiB left there after the plan)\n", name_of(c, "VM", vm),
			name_of(c, "host", host), (double)json_integer_value(json_object_get(p, "memory")) / MiB,
			(double)json_integer_value(json_object_get(p, "host_left")) / MiB);
		return;
	}
	json_t *e = json_object_get(p, "error");
	fprintf(c->out, "  %-24s -> no host: %s", name_of(c, "VM", vm),
		json_string_value(json_object_get(p, "error_code")));
	for (size_t i = 1; i < json_array_size(e); i++)
		fprintf(c->out, "%s%s", i == 1 ? " " : ", ", json_string_value(json_array_get(e, i)));
	fputc('\n', c->out);
}

int xe_cmd_pool_ha_plan(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	const char *hu = xe_param(c, "host-uuid");
	char *host = hu ? xe_ref_by_uuid(c, "host", hu) : xstrdup("");
	json_t *r = host ? xe_rpc(c, "pool.ha_plan", "s", host) : NULL;
	free(host);
	if (!r)
		return -1;
	fprintf(c->out, "failures tolerated: %lld (%s), wanted: %lld, a plan exists for: %lld\n",
		(long long)json_integer_value(json_object_get(r, "tolerates")),
		json_string_value(json_object_get(r, "method")),
		(long long)json_integer_value(json_object_get(r, "wanted")),
		(long long)json_integer_value(json_object_get(r, "plan_exists_for")));
	const char *why = json_string_value(json_object_get(r, "why_not_more"));
	if (why && *why)
		fprintf(c->out, "one more failure: %s\n", why);
	const char *h, *vm;
	json_t *f, *p;
	json_object_foreach(json_object_get(r, "failures"), h, f) {
		json_t *vms = json_object_get(f, "vms");
		fprintf(c->out, "if %s failed: %zu protected VM(s) to restart, %lld placed\n", name_of(c, "host", h),
			json_object_size(vms), (long long)json_integer_value(json_object_get(f, "placed")));
		json_object_foreach(vms, vm, p) print_vm(c, vm, p);
	}
	return done(r);
}
