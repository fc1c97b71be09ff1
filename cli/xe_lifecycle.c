/*
 * xe_lifecycle.c - the xe commands that act on objects rather than edit
 * their fields: pool-join-token-create (ours), vm-start/-shutdown/-pause/
 * -unpause and host-enable/-disable with XAPI's selectors (vm=/host=,
 * field=value filters, --multiple), sr-create (XAPI's 10-parameter
 * SR.create), sr-destroy/-forget, pbd-plug/-unplug and vm-migrate
 * (Async.VM.pool_migrate, then the task followed to its end); host-evacuate
 * is in xe_evacuate.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include "xe.h"
#include "util.h"

int xe_cmd_pool_join_token_create(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	const char *e = xe_param(c, "expiry");
	json_t *r;
	if (e) {
		char *end;
		errno = 0;
		long long n = strtoll(e, &end, 10);
		if (errno || end == e || *end)
			return xe_fail(c, "Failed to parse parameter 'expiry': expecting an integer, got '%s'", e);
		r = xe_rpc(c, "pool.create_join_token", "I", (json_int_t)n);
	} else {
		r = xe_rpc(c, "pool.create_join_token", "");
	}
	char *token = xe_str_result(r);
	if (!token)
		return r ? xe_fail(c, "Error: unexpected answer to pool.create_join_token") : -1;
	fprintf(c->out, "%s\n", token);
	free(token);
	return 0;
}

/* ---- selectors (XAPI's select_vms / select_hosts) ---- */

struct sel_kind {
	const char *cls;    /* API class */
	const char *cli;    /* CLI class of the field names */
	const char *pseudo; /* "vm" / "host": name-label or uuid (or hostname) */
	const char *none;   /* nothing matched */
	const char *many;   /* several matched without --multiple */
	const char *label;  /* "VM" / "host" in the unknown-field message */
};

static const struct sel_kind sel_vm = {"VM", "vm", "vm", "No matching VMs found",
				       "Multiple matches VMs found. --multiple required to complete the "
				       "operation",
				       "VM"};
static const struct sel_kind sel_host = {"host", "host", "host", "No matching hosts found",
					 "Multiple matching hosts found. --multiple required to complete "
					 "the operation",
					 "host"};

static bool listed(const char *list, const char *word, size_t n)
{
	for (const char *p = list; p && *p;) {
		size_t len = strcspn(p, ",;");
		if (len == n && strncmp(p, word, n) == 0)
			return true;
		p += len;
		if (*p == ',' || *p == ';')
			p++;
	}
	return false;
}

/* A parameter of the command itself rather than a field filter. */
static bool own_param(const struct xe_cmd *cmd, const struct sel_kind *k, const char *key)
{
	size_t n = strcspn(key, ":");
	if (key[n] == ':') /* a map parameter: "vdi:<uuid>" is the command's "vdi:" */
		n++;
	return listed(cmd->reqd, key, n) || listed(cmd->optn, key, n) || !strcmp(key, "multiple") ||
	       !strcmp(key, k->pseudo);
}

static bool str_is(const json_t *rec, const char *field, const char *v)
{
	const char *s = json_string_value(json_object_get(rec, field));
	return s && strcmp(s, v) == 0;
}

static bool sel_passes(struct xe_ctx *c, const struct xe_cmd *cmd, const struct sel_kind *k,
		       const struct xe_cls *x, const json_t *rec, bool include_cd)
{
	if (k == &sel_vm && (json_is_true(json_object_get(rec, "is_a_template")) ||
			     (!include_cd && json_is_true(json_object_get(rec, "is_control_domain")))))
		return false;
	const char *p = xe_param(c, k->pseudo);
	if (p && !str_is(rec, "uuid", p) && !str_is(rec, "name_label", p) &&
	    !(k == &sel_host && str_is(rec, "hostname", p)))
		return false;
	for (size_t i = 0; i < c->opts->nkv; i++) {
		struct xe_kv *kv = &c->opts->kv[i];
		if (!kv->val || own_param(cmd, k, kv->key))
			continue;
		kv->used = true;
		if (!xe_match(c, x, rec, kv->key, kv->val, false))
			return false;
	}
	return true;
}

/* Field filters given (0), or -1 with XAPI's error for a key that is not
 * a field of the class. *n counts them. */
static int sel_check(struct xe_ctx *c, const struct xe_cmd *cmd, const struct sel_kind *k,
		     const struct xe_cls *x, size_t *n)
{
	*n = 0;
	for (size_t i = 0; i < c->opts->nkv; i++) {
		const struct xe_kv *kv = &c->opts->kv[i];
		if (!kv->val || own_param(cmd, k, kv->key))
			continue;
		char *stem = strndup(kv->key, strcspn(kv->key, ":"));
		bool ok = xe_fdef_find(x, stem) != NULL;
		free(stem);
		if (!ok)
			return xe_fail(c,
				       "Parameter '%s' is not a field of the %s class. Failed to select %s for "
				       "operation.",
				       kv->key, k->label, k->label);
		(*n)++;
	}
	return 0;
}

/* The refs the selectors pick (a new array, at least one; several only
 * with --multiple), or NULL with the error. vm=/uuid= alone goes through
 * xe_vm_select like the other VM commands. */
static json_t *select_objs(struct xe_ctx *c, const struct xe_cmd *cmd, const struct sel_kind *k,
			   bool include_cd)
{
	struct xe_cls x;
	if (xe_cls_build(k->cli, &x)) {
		xe_fail(c, "internal error: no CLI class %s", k->cli);
		return NULL;
	}
	size_t nfilters;
	json_t *out = NULL;
	bool multiple = false;
	if (xe_bool_param(c, "multiple", false, &multiple))
		goto done;
	if (sel_check(c, cmd, k, &x, &nfilters))
		goto done;
	const char *uuid = xe_param(c, "uuid"), *vm = xe_param(c, "vm");
	if (k == &sel_vm && (vm || uuid) && nfilters == (uuid ? 1u : 0u)) {
		char *ref = xe_vm_select(c);
		if (ref)
			out = json_pack("[s]", ref);
		free(ref);
		goto done;
	}
	char method[96];
	snprintf(method, sizeof method, "%s.get_all_records", k->cls);
	json_t *all = xe_rpc(c, method, "");
	if (!all)
		goto done;
	out = json_array();
	const char *ref;
	json_t *rec;
	json_object_foreach(all, ref, rec) if (sel_passes(c, cmd, k, &x, rec, include_cd))
		json_array_append_new(out, json_string(ref));
	json_decref(all);
	if (json_array_size(out) == 0 || (json_array_size(out) > 1 && !multiple)) {
		xe_fail(c, "%s", json_array_size(out) ? k->many : k->none);
		json_decref(out);
		out = NULL;
	}
done:
	xe_cls_free(&x);
	return out;
}

json_t *xe_select(struct xe_ctx *c, const struct xe_cmd *cmd, bool vms, bool include_cd)
{
	return select_objs(c, cmd, vms ? &sel_vm : &sel_host, include_cd);
}

int xe_each(struct xe_ctx *c, const struct xe_cmd *cmd, bool vms, int (*fn)(struct xe_ctx *, const char *, void *),
	    void *arg)
{
	json_t *objs = select_objs(c, cmd, vms ? &sel_vm : &sel_host, false);
	int rc = objs ? 0 : -1;
	size_t i;
	json_t *v;
	json_array_foreach(objs, i, v) if (!rc) rc = fn(c, json_string_value(v), arg);
	json_decref(objs);
	return rc;
}

/* on=HOST for vm-start: a host by uuid or name-label (XAPI's
 * get_host_by_name_or_id). */
char *xe_host_by_name_or_id(struct xe_ctx *c, const char *v)
{
	json_t *all = xe_rpc(c, "host.get_all_records", "");
	if (!all)
		return NULL;
	char *found = NULL;
	const char *ref;
	json_t *rec;
	json_object_foreach(all, ref, rec) if (!found && (str_is(rec, "uuid", v) || str_is(rec, "name_label", v)))
		found = xstrdup(ref);
	json_decref(all);
	if (!found)
		xe_fail(c, "Host %s not found", v);
	return found;
}

int xe_cmd_vm_power(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	const char *op = cmd->name + 3; /* "start", "shutdown", "pause", "unpause" */
	bool start = strcmp(op, "start") == 0, force = false, paused = false;
	if (xe_bool_param(c, "force", false, &force) || (start && xe_bool_param(c, "paused", false, &paused)))
		return -1;
	const char *on = start ? xe_param(c, "on") : NULL;
	json_t *vms = select_objs(c, cmd, &sel_vm, start);
	char *host = vms && on ? xe_host_by_name_or_id(c, on) : NULL;
	int rc = vms && (!on || host) ? 0 : -1;
	size_t i;
	json_t *v;
	json_array_foreach(vms, i, v) {
		if (rc)
			break;
		const char *vm = json_string_value(v);
		if (start && host)
			rc = xe_void_result(xe_rpc(c, "VM.start_on", "ssbb", vm, host, paused, force));
		else if (start)
			rc = xe_void_result(xe_rpc(c, "VM.start", "sbb", vm, paused, force));
		else if (strcmp(op, "shutdown") == 0)
			rc = xe_void_result(xe_rpc(c, force ? "VM.hard_shutdown" : "VM.clean_shutdown", "s", vm));
		else
			rc = xe_void_result(xe_rpc(c, strcmp(op, "pause") == 0 ? "VM.pause" : "VM.unpause", "s", vm));
	}
	free(host);
	json_decref(vms);
	return rc;
}

int xe_cmd_host_power(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	const char *method = strcmp(cmd->name, "host-enable") == 0 ? "host.enable" : "host.disable";
	json_t *hosts = select_objs(c, cmd, &sel_host, false);
	int rc = hosts ? 0 : -1;
	size_t i;
	json_t *h;
	json_array_foreach(hosts, i, h) {
		if (rc)
			break;
		rc = xe_void_result(xe_rpc(c, method, "s", json_string_value(h)));
	}
	json_decref(hosts);
	return rc;
}

/* ---- SRs and PBDs ---- */

/* The pool master's host (XAPI's get_master). */
static char *master_host(struct xe_ctx *c)
{
	json_t *pools = xe_rpc(c, "pool.get_all", "");
	const char *pool = json_string_value(json_array_get(pools, 0));
	char *host = NULL;
	if (pool)
		host = xe_str_result(xe_rpc(c, "pool.get_master", "s", pool));
	else if (pools)
		xe_fail(c, "Error: the server has no pool object");
	json_decref(pools);
	return host;
}

int xe_cmd_sr_create(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	bool shared;
	if (xe_bool_param(c, "shared", false, &shared))
		return -1;
	/* as XAPI: a physical-size that does not parse counts as 0 */
	long long size = xe_physical_size(xe_param(c, "physical-size"));
	const char *hu = xe_param(c, "host-uuid");
	char *host = hu ? xe_ref_by_uuid(c, "host", hu) : master_host(c);
	if (!host)
		return -1;
	const char *desc = xe_param(c, "name-description"), *ct = xe_param(c, "content-type");
	json_t *dc = xe_map_params(c, "device-config"), *smc = xe_map_params(c, "sm-config");
	char *sr = xe_str_result(xe_rpc(c, "SR.create", "soIssssbo", host, dc, (json_int_t)size,
				     xe_param(c, "name-label"), desc ? desc : "", xe_param(c, "type"), ct ? ct : "",
				     shared, smc));
	int rc = sr ? xe_print_uuid(c, "SR", sr) : -1;
	free(sr);
	free(host);
	return rc;
}

/* sr-destroy, sr-forget, pbd-plug, pbd-unplug: <CLASS>.<op>(ref of uuid=). */
int xe_cmd_obj_op(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	const char *dash = strchr(cmd->name, '-');
	const char *cls = strncmp(cmd->name, "sr-", 3) == 0 ? "SR" : "PBD";
	char *ref = xe_ref_by_uuid(c, cls, xe_param(c, "uuid"));
	if (!ref)
		return -1;
	char method[64];
	snprintf(method, sizeof method, "%s.%s", cls, dash + 1);
	int rc = xe_void_result(xe_rpc(c, method, "s", ref));
	free(ref);
	return rc;
}

/* ---- vm-migrate (XAPI's: within the pool; with vdi:/vif:, storage migration) ---- */

/* A parameter asking for a move to another pool. */
static bool remote_param(const char *key)
{
	return strncmp(key, "remote-", 7) == 0;
}

/* A boolean option (--key is key=true); into opts as "true"/"false". */
static int migrate_bool(struct xe_ctx *c, json_t *opts, const char *key)
{
	bool v = false;
	const char *s = xe_param(c, key);
	if (s && xe_parse_bool(s, &v))
		return xe_fail(c, "Failed to parse parameter '%s': expecting 'true' or 'false'", key);
	if (s)
		json_object_set_new(opts, key, json_string(v ? "true" : "false"));
	return 0;
}

json_t *xe_migrate_opts(struct xe_ctx *c)
{
	for (size_t i = 0; i < c->opts->nkv; i++)
		if (remote_param(c->opts->kv[i].key)) {
			xe_fail(c,
				"Migration to another pool (remote-master=, remote-*) is not supported yet; parameter "
				"'%s' refused. Within the pool a VM moves with host= (and its disks with "
				"vdi:<vdi-uuid>=<sr-uuid>).",
				c->opts->kv[i].key);
			return NULL;
		}
	if (!xe_param(c, "host") && !xe_param(c, "host-uuid")) {
		xe_fail(c, "Required parameter not found: host (or host-uuid)");
		return NULL;
	}
	json_t *opts = json_object();
	static const char *const bools[] = {"live", "compress", "force", "verify", "copy"};
	for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++)
		if (migrate_bool(c, opts, bools[i])) {
			json_decref(opts);
			return NULL;
		}
	const char *md = xe_param(c, "max-downtime-ms");
	if (md) {
		char *end;
		errno = 0;
		long long n = strtoll(md, &end, 10);
		if (errno || end == md || *end || n < 0) {
			xe_fail(c, "Failed to parse parameter 'max-downtime-ms': expecting a non-negative integer, got '%s'",
				md);
			json_decref(opts);
			return NULL;
		}
		char buf[32];
		snprintf(buf, sizeof buf, "%lld", n);
		json_object_set_new(opts, "max_downtime_ms", json_string(buf));
	}
	return opts;
}

int xe_cmd_vm_migrate(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	json_t *opts = xe_migrate_opts(c);
	if (!opts)
		return -1;
	/* field filters that are no VM field: refused before any call */
	struct xe_cls x;
	size_t nfilters;
	if (xe_cls_build("vm", &x)) {
		json_decref(opts);
		return xe_fail(c, "internal error: no CLI class vm");
	}
	int bad = sel_check(c, cmd, &sel_vm, &x, &nfilters);
	xe_cls_free(&x);
	if (bad) {
		json_decref(opts);
		return -1;
	}
	const char *hu = xe_param(c, "host-uuid"), *hn = xe_param(c, "host");
	const char *nu = xe_param(c, "network-uuid");
	char *host = hu ? xe_ref_by_uuid(c, "host", hu) : xe_host_by_name_or_id(c, hn);
	char *net = host && nu ? xe_ref_by_uuid(c, "network", nu) : NULL;
	json_t *vms = host && (net || !nu) ? select_objs(c, cmd, &sel_vm, false) : NULL;
	bool storage = xe_sxm_wanted(c);
	if (net && !storage) /* a storage migration names it in host.migrate_receive */
		json_object_set_new(opts, "network", json_string(net));
	bool show = !c->opts->minimal && isatty(fileno(c->out));
	int rc = vms ? 0 : -1;
	size_t i;
	json_t *v;
	json_array_foreach(vms, i, v) {
		if (rc)
			break;
		double start = xe_now_s();
		char *task = storage ? xe_sxm_start(c, json_string_value(v), host, net, opts)
				     : xe_str_result(xe_rpc(c, "Async.VM.pool_migrate", "ssO", json_string_value(v), host,
							 opts));
		if (!task) {
			rc = c->xerr || c->msg ? -1 : xe_fail(c, "Error: unexpected answer to Async.VM.pool_migrate");
			break;
		}
		rc = xe_task_wait(c, task, start, show);
		xe_task_forget(c, task);
		free(task);
	}
	json_decref(vms);
	json_decref(opts);
	free(net);
	free(host);
	return rc;
}

