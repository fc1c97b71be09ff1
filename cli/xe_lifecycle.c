/*
 * xe_lifecycle.c - the xe commands that act on objects rather than edit
 * their fields: pool-join-token-create (ours), vm-start/-shutdown/-pause/
 * -unpause and host-enable/-disable with XAPI's selectors (vm=/host=,
 * field=value filters, --multiple), sr-create (XAPI's 10-parameter
 * SR.create), sr-destroy/-forget, pbd-plug/-unplug and vm-migrate
 * (Async.VM.pool_migrate, then the task followed to its end).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "xe.h"

static char *str_result(json_t *r)
{
	char *s = json_is_string(r) ? strdup(json_string_value(r)) : NULL;
	json_decref(r);
	return s;
}

static int void_result(json_t *r)
{
	json_decref(r);
	return r ? 0 : -1;
}

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
	char *token = str_result(r);
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
	for (size_t i = 0; i < c->opts->nkv; i++)
		if (!c->opts->kv[i].val && strcmp(c->opts->kv[i].key, "--multiple") == 0)
			multiple = c->opts->kv[i].used = true;
	if (!multiple && xe_bool_param(c, "multiple", false, &multiple))
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

/* on=HOST for vm-start: a host by uuid or name-label (XAPI's
 * get_host_by_name_or_id). */
static char *host_by_name_or_id(struct xe_ctx *c, const char *v)
{
	json_t *all = xe_rpc(c, "host.get_all_records", "");
	if (!all)
		return NULL;
	char *found = NULL;
	const char *ref;
	json_t *rec;
	json_object_foreach(all, ref, rec) if (!found && (str_is(rec, "uuid", v) || str_is(rec, "name_label", v)))
		found = strdup(ref);
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
	char *host = vms && on ? host_by_name_or_id(c, on) : NULL;
	int rc = vms && (!on || host) ? 0 : -1;
	size_t i;
	json_t *v;
	json_array_foreach(vms, i, v) {
		if (rc)
			break;
		const char *vm = json_string_value(v);
		if (start && host)
			rc = void_result(xe_rpc(c, "VM.start_on", "ssbb", vm, host, paused, force));
		else if (start)
			rc = void_result(xe_rpc(c, "VM.start", "sbb", vm, paused, force));
		else if (strcmp(op, "shutdown") == 0)
			rc = void_result(xe_rpc(c, force ? "VM.hard_shutdown" : "VM.clean_shutdown", "s", vm));
		else
			rc = void_result(xe_rpc(c, strcmp(op, "pause") == 0 ? "VM.pause" : "VM.unpause", "s", vm));
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
		rc = void_result(xe_rpc(c, method, "s", json_string_value(h)));
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
		host = str_result(xe_rpc(c, "pool.get_master", "s", pool));
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
	char *sr = str_result(xe_rpc(c, "SR.create", "soIssssbo", host, dc, (json_int_t)size,
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
	int rc = void_result(xe_rpc(c, method, "s", ref));
	free(ref);
	return rc;
}

/* ---- vm-migrate (XAPI's: within the pool; with vdi:/vif:, storage migration) ---- */

/* A parameter asking for a move to another pool. */
static bool remote_param(const char *key)
{
	return strncmp(key, "remote-", 7) == 0;
}

/* A boolean option: key=V or the bare --key; into opts as "true"/"false". */
static int migrate_bool(struct xe_ctx *c, json_t *opts, const char *key)
{
	char flag[32];
	snprintf(flag, sizeof flag, "--%s", key);
	bool given = false, v = false;
	for (size_t i = 0; i < c->opts->nkv; i++)
		if (!c->opts->kv[i].val && strcmp(c->opts->kv[i].key, flag) == 0)
			given = v = c->opts->kv[i].used = true;
	const char *s = xe_param(c, key);
	if (s) {
		if (xe_parse_bool(s, &v))
			return xe_fail(c, "Failed to parse parameter '%s': expecting 'true' or 'false'", key);
		given = true;
	}
	if (given)
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
	char *host = hu ? xe_ref_by_uuid(c, "host", hu) : host_by_name_or_id(c, hn);
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
		double start = xe_mono_now();
		char *task = storage ? xe_sxm_start(c, json_string_value(v), host, net, opts)
				     : str_result(xe_rpc(c, "Async.VM.pool_migrate", "ssO", json_string_value(v), host,
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

/* ---- host-evacuate (XAPI's; dry-run=true is ours) ---- */

/* name_label of ref, cached in names. */
static const char *name_of(struct xe_ctx *c, json_t *names, const char *cls, const char *ref)
{
	json_t *n = json_object_get(names, ref);
	if (!n) {
		char m[64];
		snprintf(m, sizeof m, "%s.get_name_label", cls);
		json_t *s = xe_rpc(c, m, "s", ref);
		json_object_set_new(names, ref, json_is_string(s) ? json_incref(s) : json_string(ref));
		json_decref(s);
		n = json_object_get(names, ref);
	}
	return json_string_value(n);
}

static char *error_text(json_t *err)
{
	struct xe_buf b = {0};
	size_t i;
	json_t *x;
	json_array_foreach(err, i, x) {
		if (i)
			xe_buf_add(&b, i == 1 ? ": " : ", ");
		xe_buf_add(&b, json_is_string(x) ? json_string_value(x) : "?");
	}
	return b.s ? b.s : strdup("");
}

/* The plan, nothing moved: each VM, its memory, its target or why not. */
static int evacuate_dry_run(struct xe_ctx *c, const char *host, json_t *names)
{
	json_t *plan = xe_rpc(c, "host.compute_evacuation_plan", "s", host);
	if (!plan)
		return -1;
	const char *vm;
	json_t *p;
	int stuck = 0;
	fprintf(c->out, "%-28s %10s  %s\n", "VM", "memory", "target (or why it cannot move)");
	json_object_foreach(plan, vm, p) {
		double mib = (double)json_integer_value(json_object_get(p, "memory")) / 1048576.0;
		json_t *err = json_object_get(p, "error");
		if (err) {
			char *t = error_text(err);
			fprintf(c->out, "%-28s %6.0f MiB  cannot move: %s\n", name_of(c, names, "VM", vm), mib, t);
			free(t);
			stuck++;
		} else {
			fprintf(c->out, "%-28s %6.0f MiB  -> %s\n", name_of(c, names, "VM", vm), mib,
				name_of(c, names, "host", json_string_value(json_object_get(p, "target"))));
		}
	}
	fprintf(c->out, "%zu VM(s): %zu would move, %d cannot.\n", json_object_size(plan),
		json_object_size(plan) - (size_t)stuck, stuck);
	json_decref(plan);
	return 0;
}

/* One line per VM under an overall bar; lines drawn last time are
 * overwritten (cursor up). Returns the number of lines drawn. */
static int evacuate_draw(struct xe_ctx *c, json_t *st, double progress, double elapsed, json_t *names, int drawn)
{
	if (drawn)
		fprintf(c->out, "\033[%dA", drawn);
	json_t *vms = json_object_get(st, "vms");
	size_t i, ended = 0;
	json_t *v;
	int lines = 0;
	json_array_foreach(vms, i, v) {
		const char *state = json_string_value(json_object_get(v, "state"));
		const char *target = json_string_value(json_object_get(v, "target"));
		ended += state && (strcmp(state, "done") == 0 || strcmp(state, "failed") == 0);
		char dt[32] = "";
		if (json_is_number(json_object_get(v, "downtime_ms")))
			snprintf(dt, sizeof dt, "downtime %.1f ms", json_number_value(json_object_get(v, "downtime_ms")));
		char *why = NULL;
		if (state && strcmp(state, "failed") == 0)
			why = error_text(json_object_get(v, "error"));
		fprintf(c->out, "\033[2K  %-24s -> %-16s %-9s %s\n", name_of(c, names, "VM", json_string_value(json_object_get(v, "vm"))),
			target && *target ? name_of(c, names, "host", target) : "-", state ? state : "?", why ? why : dt);
		free(why);
		lines++;
	}
	int width = 30, filled = (int)(progress * width + 0.5);
	char bar[64];
	for (int k = 0; k < width; k++)
		bar[k] = k < filled ? '#' : '.';
	bar[width] = 0;
	double eta = progress > 0.02 && progress < 1 ? elapsed * (1 - progress) / progress : 0;
	fprintf(c->out, "\033[2K[%s] %3d%%  %zu/%zu  %.1f s", bar, (int)(progress * 100), ended, json_array_size(vms),
		elapsed);
	if (eta > 0)
		fprintf(c->out, "  ETA %.1f s", eta);
	fprintf(c->out, "\n");
	fflush(c->out);
	return lines + 1;
}

int xe_cmd_host_evacuate(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	bool dry = false;
	const char *d = xe_param(c, "dry-run");
	if (d && xe_parse_bool(d, &dry))
		return xe_fail(c, "Failed to parse parameter 'dry-run': expecting 'true' or 'false'");
	long long batch = 0;
	const char *bs = xe_param(c, "batch-size");
	if (bs) {
		char *end;
		errno = 0;
		batch = strtoll(bs, &end, 10);
		if (errno || end == bs || *end || batch < 0)
			return xe_fail(c, "Failed to parse parameter 'batch-size': expecting a non-negative integer, got '%s'", bs);
	}
	const char *nu = xe_param(c, "network-uuid");
	char *net = nu ? xe_ref_by_uuid(c, "network", nu) : NULL;
	if (nu && !net)
		return -1;
	json_t *hosts = select_objs(c, cmd, &sel_host, false);
	json_t *names = json_object();
	bool show = !c->opts->minimal && isatty(fileno(c->out));
	int rc = hosts ? 0 : -1;
	size_t i;
	json_t *h;
	json_array_foreach(hosts, i, h) {
		if (rc)
			break;
		const char *host = json_string_value(h);
		if (dry) {
			rc = evacuate_dry_run(c, host, names);
			continue;
		}
		json_t *netj = json_string(net ? net : "OpaqueRef:NULL");
		if (!show) { /* as XAPI: nothing printed on success */
			rc = void_result(xe_rpc(c, "host.evacuate", "sOI", host, netj, (json_int_t)batch));
			json_decref(netj);
			continue;
		}
		double start = xe_mono_now();
		char *task = str_result(xe_rpc(c, "Async.host.evacuate", "sOI", host, netj, (json_int_t)batch));
		json_decref(netj);
		if (!task) {
			rc = -1;
			break;
		}
		int drawn = 0;
		for (;;) {
			json_t *rec = xe_rpc(c, "task.get_record", "s", task);
			if (!rec) {
				rc = -1;
				break;
			}
			const char *st = json_string_value(json_object_get(rec, "status"));
			json_t *ev = json_loads(json_string_value(json_object_get(json_object_get(rec, "other_config"), "evacuation"))
							? json_string_value(json_object_get(json_object_get(rec, "other_config"), "evacuation"))
							: "{}",
						0, NULL);
			bool over = st && strcmp(st, "pending") && strcmp(st, "cancelling");
			drawn = evacuate_draw(c, ev, over ? 1.0 : json_number_value(json_object_get(rec, "progress")),
					      xe_mono_now() - start, names, drawn);
			json_decref(ev);
			if (over) {
				if (strcmp(st, "success") == 0) {
					fprintf(c->out, "Host %s evacuated in %.1f s.\n", name_of(c, names, "host", host),
						xe_mono_now() - start);
				} else {
					json_t *ei = json_object_get(rec, "error_info");
					if (json_array_size(ei) && !c->msg && !c->xerr)
						c->xerr = json_incref(ei);
					else
						xe_fail(c, "The evacuation task ended with status %s", st);
					rc = -1;
				}
				json_decref(rec);
				break;
			}
			json_decref(rec);
			struct timespec ts = {0, 200 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		xe_task_forget(c, task);
		free(task);
	}
	json_decref(hosts);
	json_decref(names);
	free(net);
	return rc;
}

int xe_cmd_host_prevent_evacuation(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	json_t *hosts = select_objs(c, cmd, &sel_host, false), *names = json_object();
	int rc = hosts ? 0 : -1;
	size_t i;
	json_t *h;
	json_array_foreach(hosts, i, h) {
		json_t *m = rc ? NULL : xe_rpc(c, "host.get_vms_which_prevent_evacuation", "s", json_string_value(h));
		if (!m) {
			rc = -1;
			break;
		}
		const char *vm;
		json_t *err;
		/* as XAPI: one line per VM, "uuid: code,params" */
		json_object_foreach(m, vm, err) {
			json_t *u = xe_rpc(c, "VM.get_uuid", "s", vm);
			char *t = error_text(err);
			fprintf(c->out, "%s (%s): %s\n", json_string_value(u) ? json_string_value(u) : vm,
				name_of(c, names, "VM", vm), t);
			free(t);
			json_decref(u);
		}
		json_decref(m);
	}
	json_decref(hosts);
	json_decref(names);
	return rc;
}
