/*
 * xe_fields.c - the CLI view of each class, generated from lib/model: CLI
 * field names (API name with '_' -> '-'), qualifiers, plus XAPI's renamed,
 * hidden and computed fields (records.ml) from a small override table.
 * Also the value of a field for a record (refs as uuids, names and metrics
 * fetched through the per-invocation cache), *-list filters, parsing CLI
 * text into a settable JSON value, and printing a set of records.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "xe.h"
#include "xerr.h"
#include "util.h"

/* cli NULL = hidden; after NULL = a rename of api (or extra after it). */
struct xe_ovr {
	const char *cls, *api, *cli;
	enum xe_src src;
	const char *via; /* XS_VIA: field of the target */
	const char *after; /* extra fields: API field to follow */
};

#define REN(c, a, n) {c, a, n, XS_FIELD, NULL, NULL}
#define HIDE(c, a) {c, a, NULL, XS_FIELD, NULL, NULL}
#define NAMEOF(c, a, n) {c, a, n, XS_REF_NAME, NULL, a}
#define VIA(c, a, n, v, aft) {c, a, n, XS_VIA, v, aft}

static const struct xe_ovr ovr[] = {
	REN("VM", "domid", "dom-id"), REN("VM", "consoles", "console-uuids"),
	REN("VM", "suspend_VDI", "suspend-VDI-uuid"), REN("VM", "suspend_SR", "suspend-SR-uuid"),
	REN("VM", "VTPMs", "vtpms"), REN("VM", "last_booted_record", "last-boot-record"),
	HIDE("VM", "metrics"), HIDE("VM", "guest_metrics"), HIDE("VM", "NVRAM"),
	HIDE("VM", "transportable_snapshot_id"), HIDE("VM", "VIFs"), HIDE("VM", "VUSBs"),
	HIDE("VM", "crash_dumps"), HIDE("VM", "protection_policy"), HIDE("VM", "is_snapshot_from_vmpp"),
	HIDE("VM", "scheduled_to_be_resident_on"), HIDE("VM", "domarch"), HIDE("VM", "PCI_bus"),
	HIDE("VM", "VGPUs"), HIDE("VM", "attached_PCIs"),
	VIA("VM", "metrics", "memory-actual", "memory_actual", "power_state"),
	VIA("VM", "metrics", "VCPUs-number", "VCPUs_number", "blobs"),
	REN("host", "suspend_image_sr", "suspend-image-sr-uuid"),
	REN("host", "crash_dump_sr", "crash-dump-sr-uuid"),
	REN("host", "control_domain", "control-domain-uuid"), REN("host", "resident_VMs", "resident-vms"),
	REN("host", "cpu_info", "cpu_info"), REN("host", "guest_VCPUs_params", "guest_VCPUs_params"),
	REN("host", "iscsi_iqn", "iscsi_iqn"),
	HIDE("host", "metrics"), HIDE("host", "PIFs"), HIDE("host", "PBDs"), HIDE("host", "host_CPUs"),
	HIDE("host", "crashdumps"), HIDE("host", "PCIs"), HIDE("host", "PGPUs"), HIDE("host", "PUSBs"),
	HIDE("host", "certificates"), HIDE("host", "uefi_certificates"), HIDE("host", "sched_policy"),
	HIDE("host", "cpu_configuration"), HIDE("host", "license_params"), HIDE("host", "bios_strings"),
	HIDE("host", "editions"),
	VIA("host", "metrics", "memory-total", "memory_total", "memory_overhead"),
	VIA("host", "metrics", "memory-free", "memory_free", "memory_overhead"),
	VIA("host", "metrics", "host-metrics-live", "live", "memory_overhead"),
	{"SR", "PBDs", "host", XS_SR_HOST, NULL, "name_description"},
	REN("VDI", "SR", "sr-uuid"), NAMEOF("VDI", "SR", "sr-name-label"),
	REN("VDI", "VBDs", "vbd-uuids"), REN("VDI", "crash_dumps", "crashdump-uuids"),
	REN("VBD", "VM", "vm-uuid"), NAMEOF("VBD", "VM", "vm-name-label"),
	REN("VBD", "VDI", "vdi-uuid"), NAMEOF("VBD", "VDI", "vdi-name-label"),
	REN("VBD", "qos_algorithm_type", "qos_algorithm_type"),
	REN("VBD", "qos_algorithm_params", "qos_algorithm_params"),
	REN("VBD", "qos_supported_algorithms", "qos_supported_algorithms"), HIDE("VBD", "metrics"),
	HIDE("VBD", "runtime_properties"),
	REN("PBD", "host", "host-uuid"), NAMEOF("PBD", "host", "host-name-label"),
	REN("PBD", "SR", "sr-uuid"), NAMEOF("PBD", "SR", "sr-name-label"),
	REN("network", "VIFs", "VIF-uuids"), REN("network", "PIFs", "PIF-uuids"),
	HIDE("network", "assigned_ips"),
	REN("VIF", "VM", "vm-uuid"), NAMEOF("VIF", "VM", "vm-name-label"),
	REN("VIF", "network", "network-uuid"), NAMEOF("VIF", "network", "network-name-label"),
	REN("VIF", "qos_algorithm_type", "qos_algorithm_type"),
	REN("VIF", "qos_algorithm_params", "qos_algorithm_params"),
	REN("VIF", "qos_supported_algorithms", "qos_supported_algorithms"), HIDE("VIF", "metrics"),
	HIDE("VIF", "runtime_properties"),
	REN("PIF", "network", "network-uuid"), NAMEOF("PIF", "network", "network-name-label"),
	REN("PIF", "host", "host-uuid"), NAMEOF("PIF", "host", "host-name-label"),
	REN("PIF", "VLAN_master_of", "vlan-master-of"), REN("PIF", "VLAN_slave_of", "vlan-slave-of"),
	REN("PIF", "ip_configuration_mode", "IP-configuration-mode"),
	REN("PIF", "ipv6_configuration_mode", "IPv6-configuration-mode"),
	REN("PIF", "ipv6_gateway", "IPv6-gateway"), HIDE("PIF", "metrics"), HIDE("PIF", "PCI"),
	REN("task", "subtask_of", "subtask_of"), REN("task", "error_info", "error_info"),
	REN("task", "allowed_operations", "allowed_operations"),
	REN("task", "current_operations", "current_operations"), HIDE("task", "session"),
	HIDE("task", "backtrace"),
	HIDE("pool", "vswitch_controller"), HIDE("pool", "uefi_certificates"),
	HIDE("pool", "custom_uefi_certificates"), HIDE("pool", "metadata_VDIs"),
	HIDE("pool", "redo_log_vdi"), HIDE("pool", "redo_log_enabled"),
	HIDE("pool", "repository_proxy_password"), HIDE("pool", "telemetry_uuid"),
	REN("pool", "cpu_info", "cpu_info"),
};

struct xe_clsdef {
	const char *cli, *cls, *deflist, *filter, *lead;
};

static const struct xe_clsdef clsdefs[] = {
	{"vm", "VM", "name-label,uuid,power-state", "is-a-template=false", NULL},
	{"template", "VM", "name-label,name-description,uuid", "is-a-template=true,is-a-snapshot=false", NULL},
	{"snapshot", "VM", "name-label,name-description,uuid,snapshot-of,snapshot-time,is-vmss-snapshot",
	 "is-a-snapshot=true", NULL},
	{"host", "host", "uuid,name-label,name-description", NULL, NULL},
	{"sr", "SR", "uuid,name-label,name-description,host,type,content-type", NULL, NULL},
	{"vdi", "VDI", "uuid,name-label,name-description,virtual-size,read-only,sharable,sr-uuid", NULL, NULL},
	{"vbd", "VBD", "uuid,vm-uuid,vm-name-label,vdi-uuid,device,empty", NULL,
	 "uuid,vm-uuid,vm-name-label,vdi-uuid,vdi-name-label,allowed-operations,current-operations,empty,device"},
	{"pbd", "PBD", "uuid,host-uuid,sr-uuid,device-config,currently-attached", NULL, NULL},
	{"network", "network", "uuid,name-label,name-description,bridge", NULL, NULL},
	{"vif", "VIF", "uuid,device,vm-uuid,network-uuid", NULL,
	 "uuid,vm-uuid,vm-name-label,allowed-operations,current-operations,device,MAC"},
	{"pif", "PIF", "uuid,device,VLAN,MAC,network-uuid,currently-attached,host-uuid", NULL, NULL},
	{"task", "task", "uuid,name-label,name-description,status,progress", NULL, NULL},
	{"pool", "pool", "uuid,name-label,name-description,master,default-SR", NULL, NULL},
};

static char *cli_name(const char *api)
{
	char *s = xstrdup(api);
	for (char *p = s; p && *p; p++)
		if (*p == '_')
			*p = '-';
	return s;
}

static const struct xe_ovr *find_ovr(const char *cls, const char *api)
{
	for (size_t i = 0; i < sizeof ovr / sizeof ovr[0]; i++)
		if (strcmp(ovr[i].cls, cls) == 0 && strcmp(ovr[i].api, api) == 0 && !ovr[i].after)
			return &ovr[i];
	return NULL;
}

static void add_fdef(struct xe_cls *x, const char *cli, const struct model_field *mf,
		     const struct model_field *via, enum xe_src src, const char *qual)
{
	x->f[x->n++] = (struct xe_fdef){cli, mf, via, src, qual, x->mc->mc_name};
}

static void add_extras(struct xe_cls *x, const char *after)
{
	const char *cls = x->mc->mc_name;
	for (size_t i = 0; i < sizeof ovr / sizeof ovr[0]; i++) {
		const struct xe_ovr *o = &ovr[i];
		if (!o->after || strcmp(o->cls, cls) || strcmp(o->after, after))
			continue;
		const struct model_field *mf = model_field_find(x->mc, o->api);
		const struct model_field *via = NULL;
		if (o->src == XS_VIA && mf) {
			const struct model_class *t = model_class_find(mf->fld_target);
			via = t ? model_field_find(t, o->via) : NULL;
		}
		if (mf && (o->src != XS_VIA || via))
			add_fdef(x, o->cli, mf, via, o->src, " RO");
	}
}

/* Move the fields named in lead (comma list) to the front, in that order. */
static void reorder(struct xe_cls *x, const char *lead)
{
	size_t pos = 0;
	char *copy = xstrdup(lead), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		for (size_t i = pos; i < x->n; i++) {
			if (strcmp(x->f[i].cli, t))
				continue;
			struct xe_fdef d = x->f[i];
			memmove(&x->f[pos + 1], &x->f[pos], (i - pos) * sizeof d);
			x->f[pos++] = d;
			break;
		}
	}
	free(copy);
}

static const char *intern(struct xe_cls *x, char *s)
{
	char **v = xrealloc(x->names, (x->nnames + 1) * sizeof *v);
	x->names = v;
	x->names[x->nnames++] = s;
	return s;
}

int xe_cls_build(const char *cli, struct xe_cls *out)
{
	memset(out, 0, sizeof *out);
	const struct xe_clsdef *d = NULL;
	for (size_t i = 0; i < sizeof clsdefs / sizeof clsdefs[0]; i++)
		if (strcmp(clsdefs[i].cli, cli) == 0)
			d = &clsdefs[i];
	if (!d)
		return -1;
	out->mc = model_class_find(d->cls);
	out->cli = d->cli;
	out->deflist = d->deflist;
	out->filter = d->filter;
	out->f = xcalloc(out->mc->mc_nfields * 2 + 8, sizeof *out->f);
	for (size_t i = 0; i < out->mc->mc_nfields; i++) {
		const struct model_field *f = &out->mc->mc_fields[i];
		const struct xe_ovr *o = find_ovr(d->cls, f->fld_name);
		if (!o)
			add_fdef(out, intern(out, cli_name(f->fld_name)), f, NULL, XS_FIELD, xe_qual(f));
		else if (o->cli)
			add_fdef(out, o->cli, f, NULL, XS_FIELD, xe_qual(f));
		add_extras(out, f->fld_name);
	}
	if (d->lead)
		reorder(out, d->lead);
	return 0;
}

void xe_cls_free(struct xe_cls *x)
{
	for (size_t i = 0; i < x->nnames; i++)
		free(x->names[i]);
	free(x->names);
	free(x->f);
	memset(x, 0, sizeof *x);
}

const struct xe_fdef *xe_fdef_find(const struct xe_cls *x, const char *cli)
{
	for (size_t i = 0; i < x->n; i++)
		if (strcmp(x->f[i].cli, cli) == 0)
			return &x->f[i];
	return NULL;
}

/* The record a ref names (borrowed), NULL when absent. */
static json_t *target(struct xe_ctx *c, const char *cls, const json_t *ref)
{
	const char *r = json_string_value(ref);
	if (!r || strcmp(r, MODEL_NULL_REF) == 0)
		return NULL;
	return json_object_get(xe_all(c, cls), r);
}

static char *ref_uuid(struct xe_ctx *c, const char *cls, const json_t *ref)
{
	json_t *t = target(c, cls, ref);
	const char *u = json_string_value(json_object_get(t, "uuid"));
	return xstrdup(u ? u : "<not in database>");
}

static char *refs_uuids(struct xe_ctx *c, const char *cls, const json_t *refs)
{
	struct xe_buf b = {0};
	size_t i;
	json_t *r;
	json_array_foreach(refs, i, r) {
		char *u = ref_uuid(c, cls, r);
		if (i)
			xe_buf_add(&b, "; ");
		xe_buf_add(&b, u);
		free(u);
	}
	return b.s ? b.s : xstrdup("");
}

static char *sr_host(struct xe_ctx *c, const json_t *pbds)
{
	size_t n = json_array_size(pbds);
	if (n > 1)
		return xstrdup("<shared>");
	json_t *pbd = n ? target(c, "PBD", json_array_get(pbds, 0)) : NULL;
	json_t *host = pbd ? target(c, "host", json_object_get(pbd, "host")) : NULL;
	const char *name = json_string_value(json_object_get(host, "name_label"));
	return xstrdup(name ? name : "<not in database>");
}

static char *ops_values(const json_t *ops)
{
	struct xe_buf b = {0};
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)ops, k, v) {
		if (b.len)
			xe_buf_add(&b, "; ");
		xe_buf_add(&b, json_is_string(v) ? json_string_value(v) : k);
	}
	return b.s ? b.s : xstrdup("");
}

static char *plain_value(struct xe_ctx *c, const char *cls, const struct model_field *f, const json_t *v)
{
	switch (f->fld_type) {
	case FT_REF:
		return ref_uuid(c, f->fld_target, v);
	case FT_SET_REF:
		return refs_uuids(c, f->fld_target, v);
	case FT_ENUM:
		return xstrdup(json_is_string(v) ? xe_enum_cli(cls, f->fld_name, json_string_value(v)) : "");
	case FT_MAP_ANY:
		if (strcmp(f->fld_name, "current_operations") == 0)
			return ops_values(v);
		return xe_render(f->fld_type, v, NULL);
	case FT_SET_STRING:
		return xe_render(f->fld_type, v, strcmp(f->fld_name, "tags") ? "; " : ", ");
	default:
		return xe_render(f->fld_type, v, NULL);
	}
}

char *xe_fvalue(struct xe_ctx *c, const struct xe_fdef *d, const json_t *rec)
{
	const json_t *v = json_object_get(rec, d->mf->fld_name);
	json_t *t;
	const char *s;
	switch (d->src) {
	case XS_REF_NAME:
		t = target(c, d->mf->fld_target, v);
		s = json_string_value(json_object_get(t, "name_label"));
		return xstrdup(s ? s : "<not in database>");
	case XS_VIA:
		t = target(c, d->mf->fld_target, v);
		if (!t)
			return xstrdup("<not in database>");
		return plain_value(c, d->mf->fld_target, d->via, json_object_get(t, d->via->fld_name));
	case XS_SR_HOST:
		return sr_host(c, v);
	default:
		return plain_value(c, d->cls, d->mf, v);
	}
}

static bool set_has(const char *list, const char *sep, const char *want)
{
	size_t wl = strlen(want), sl = strlen(sep);
	for (const char *p = list; *p;) {
		const char *e = strstr(p, sep);
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == wl && strncmp(p, want, n) == 0)
			return true;
		if (!e)
			break;
		p = e + sl;
	}
	return false;
}

static bool is_set(const struct xe_fdef *d)
{
	return d && d->src == XS_FIELD && (d->mf->fld_type == FT_SET_STRING || d->mf->fld_type == FT_SET_REF);
}

static bool is_map(const struct xe_fdef *d)
{
	return d && d->src == XS_FIELD && (d->mf->fld_type == FT_MAP || d->mf->fld_type == FT_MAP_ANY);
}

int xe_filter_check(struct xe_ctx *c, const struct xe_cls *x, const char *key)
{
	const char *colon = strchr(key, ':');
	char *name = strndup(key, colon ? (size_t)(colon - key) : strlen(key));
	const struct xe_fdef *d = xe_fdef_find(x, name);
	int rc = 0;
	/* XAPI's get_field_type, its Failure shown as its CLI shows one */
	char why[256] = "";
	if (!d)
		snprintf(why, sizeof why, "Failure: Unknown field '%s'", key);
	else if (colon && !is_set(d) && !is_map(d))
		snprintf(why, sizeof why, "Failure: Field '%s' is not a set or map", name);
	else if (colon && is_set(d) && strcmp(colon + 1, "contains"))
		snprintf(why, sizeof why, "Failure: Invalid syntax for set filtering (should be set-param:contains=key)");
	if (*why && !c->msg && !c->xerr) {
		c->xerr = xerr_new(XE_INTERNAL_ERROR, why, NULL);
		rc = -1;
	} else if (*why) {
		rc = -1;
	}
	free(name);
	return rc;
}

static bool match_one(struct xe_ctx *c, const struct xe_cls *x, const json_t *rec, const char *key,
		      const char *val)
{
	const char *colon = strchr(key, ':');
	if (colon) {
		char *name = strndup(key, (size_t)(colon - key));
		const struct xe_fdef *d = xe_fdef_find(x, name);
		free(name);
		json_t *m = d ? json_object_get(rec, d->mf->fld_name) : NULL;
		if (is_set(d)) { /* set:contains=member */
			size_t i;
			json_t *v;
			json_array_foreach(m, i, v) if (json_is_string(v) && strcmp(json_string_value(v), val) == 0) return true;
			return false;
		}
		const char *s = json_string_value(json_object_get(m, colon + 1));
		return s && strcmp(s, val) == 0;
	}
	const struct xe_fdef *d = xe_fdef_find(x, key);
	if (!d)
		return false;
	char *have = xe_fvalue(c, d, rec);
	bool ok = strcmp(have, val) == 0;
	enum fld_type t = d->mf->fld_type;
	if (!ok && d->src == XS_FIELD && (t == FT_SET_REF || t == FT_SET_STRING))
		ok = set_has(have, strcmp(d->mf->fld_name, "tags") ? "; " : ", ", val);
	free(have);
	return ok;
}

bool xe_match(struct xe_ctx *c, const struct xe_cls *x, const json_t *rec, const char *key,
	      const char *val, bool neq)
{
	return match_one(c, x, rec, key, val) != neq;
}

char *xe_ref_by_uuid(struct xe_ctx *c, const char *cls, const char *uuid)
{
	char method[96];
	snprintf(method, sizeof method, "%s.get_by_uuid", cls);
	json_t *r = xe_rpc(c, method, "s", uuid);
	char *ref = json_is_string(r) ? xstrdup(json_string_value(r)) : NULL;
	json_decref(r);
	return ref;
}

static json_t *parse_bool(struct xe_ctx *c, const char *v)
{
	if (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcasecmp(v, "yes") == 0)
		return json_true();
	if (strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcasecmp(v, "no") == 0)
		return json_false();
	xe_fail(c, "Failed to parse parameter: expecting a boolean (true or false), got '%s'", v);
	return NULL;
}

static json_t *parse_enum(struct xe_ctx *c, const char *cls, const struct model_field *f, const char *v)
{
	char *vals = xstrdup(f->fld_target), *save = NULL;
	json_t *out = NULL;
	for (char *t = strtok_r(vals, "|", &save); t && !out; t = strtok_r(NULL, "|", &save))
		if (strcasecmp(t, v) == 0 || strcasecmp(xe_enum_cli(cls, f->fld_name, t), v) == 0)
			out = json_string(t);
	if (!out)
		xe_fail(c, "Invalid value '%s' for %s: expected one of %s", v, f->fld_name, f->fld_target);
	free(vals);
	return out;
}

static json_t *parse_set(const char *v)
{
	json_t *a = json_array();
	char *copy = xstrdup(v), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ')
			t++;
		if (*t)
			json_array_append_new(a, json_string(t));
	}
	free(copy);
	return a;
}

static json_t *parse_number(struct xe_ctx *c, const struct model_field *f, const char *v)
{
	char *end;
	errno = 0;
	if (f->fld_type == FT_FLOAT) {
		double d = strtod(v, &end);
		if (!errno && end != v && !*end)
			return json_real(d);
	} else {
		long long n = strtoll(v, &end, 10);
		if (!errno && end != v && !*end)
			return json_integer(n);
		long long sz = xe_parse_size(v);
		if (sz >= 0)
			return json_integer(sz);
	}
	xe_fail(c, "Failed to parse parameter '%s': expecting a number, got '%s'", f->fld_name, v);
	return NULL;
}

json_t *xe_parse_value(struct xe_ctx *c, const char *cls, const struct model_field *f, const char *v)
{
	char *ref;
	json_t *o;
	switch (f->fld_type) {
	case FT_INT:
	case FT_FLOAT:
		return parse_number(c, f, v);
	case FT_BOOL:
		return parse_bool(c, v);
	case FT_ENUM:
		return parse_enum(c, cls, f, v);
	case FT_REF:
		if (!*v)
			return json_string(MODEL_NULL_REF);
		ref = xe_ref_by_uuid(c, f->fld_target, v);
		o = ref ? json_string(ref) : NULL;
		free(ref);
		return o;
	case FT_SET_STRING:
		return parse_set(v);
	case FT_MAP:
	case FT_MAP_ANY:
		xe_fail(c, "Use %s:KEY=VALUE to set a key of the map", f->fld_name);
		return NULL;
	case FT_SET_REF:
		xe_fail(c, "The field %s cannot be set from the CLI", f->fld_name);
		return NULL;
	default:
		return json_string(v);
	}
}

/* The fields to print: params (comma list, "all") or the default list. */
static bool selected(const struct xe_cls *x, const char *params, const char *cli)
{
	const char *list = params ? params : x->deflist;
	if (strcmp(list, "all") == 0)
		return true;
	char pat[128];
	snprintf(pat, sizeof pat, ",%s,", cli);
	size_t n = strlen(list);
	char *wrapped = xmalloc(n + 3);
	snprintf(wrapped, n + 3, ",%s,", list);
	bool yes = strstr(wrapped, pat) != NULL;
	free(wrapped);
	return yes;
}

static void print_one(struct xe_ctx *c, const struct xe_cls *x, const json_t *rec, const char *params,
		      struct xe_buf *minimal)
{
	const char **labels = xcalloc(x->n, sizeof *labels);
	char **values = xcalloc(x->n, sizeof *values);
	size_t n = 0;
	for (size_t i = 0; labels && values && i < x->n; i++) {
		if (!selected(x, params, x->f[i].cli))
			continue;
		values[n] = xe_fvalue(c, &x->f[i], rec);
		labels[n++] = xe_label(x->f[i].cli, x->f[i].qual);
		if (minimal)
			break;
	}
	if (minimal && n) {
		char *e = xe_minimal_escape(values[0]);
		if (minimal->len)
			xe_buf_add(minimal, ",");
		xe_buf_add(minimal, e);
		free(e);
	} else if (!minimal && n) {
		xe_print_record(c->out, labels, (const char *const *)values, n);
	}
	for (size_t i = 0; i < n; i++) {
		free((char *)labels[i]);
		free(values[i]);
	}
	free(labels);
	free(values);
}

void xe_print_records(struct xe_ctx *c, const struct xe_cls *x, json_t *recs, const char *params)
{
	struct xe_buf minimal = {0};
	const char *ref;
	json_t *rec;
	json_object_foreach(recs, ref, rec) print_one(c, x, rec, params, c->opts->minimal ? &minimal : NULL);
	if (c->opts->minimal)
		fprintf(c->out, "%s\n", minimal.s ? minimal.s : "");
	free(minimal.s);
}
