/*
 * xe_ops.c - the xe commands that are more than a field: vm-install (clone
 * a template into a VM), vm-uninstall (the VM and its private disks),
 * vm-clone, vdi-create, vbd-create, *-destroy, task-cancel and event-wait
 * (poll, then event.from until a record of the class meets every condition).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "xe.h"
#include "util.h"

/* Print the uuid of a new object of class cls. */
int xe_print_uuid(struct xe_ctx *c, const char *cls, const char *ref)
{
	char method[96];
	snprintf(method, sizeof method, "%s.get_uuid", cls);
	char *u = xe_str_result(xe_rpc(c, method, "s", ref));
	if (!u)
		return -1;
	fprintf(c->out, "%s\n", u);
	free(u);
	return 0;
}

/* The single VM of all whose name_label is name and that passes want
 * (is_a_template true/false, or -1 = any). */
static char *vm_by_name(struct xe_ctx *c, const char *name, int want_template, const char *what)
{
	json_t *all = xe_all(c, "VM");
	const char *ref, *found = NULL;
	json_t *rec;
	int n = 0;
	json_object_foreach(all, ref, rec) {
		const char *nl = json_string_value(json_object_get(rec, "name_label"));
		bool tmpl = json_is_true(json_object_get(rec, "is_a_template"));
		if (!nl || strcmp(nl, name) || json_is_true(json_object_get(rec, "is_control_domain")))
			continue;
		if (want_template >= 0 && tmpl != (want_template == 1))
			continue;
		found = ref;
		n++;
	}
	if (n == 1)
		return xstrdup(found);
	if (n == 0)
		xe_fail(c, "No %s matched", what);
	else
		xe_fail(c, "More than one matching %s found", what);
	return NULL;
}

char *xe_vm_select(struct xe_ctx *c)
{
	const char *uuid = xe_param(c, "uuid"), *vm = xe_param(c, "vm");
	if (uuid)
		return xe_ref_by_uuid(c, "VM", uuid);
	if (!vm) {
		xe_fail(c, "Required parameter not found: vm");
		return NULL;
	}
	if (model_is_uuid(vm)) {
		json_t *r = xe_rpc(c, "VM.get_by_uuid", "s", vm);
		if (r)
			return xe_str_result(r);
		json_decref(c->xerr);
		c->xerr = NULL;
	}
	return vm_by_name(c, vm, 0, "VMs");
}

char *xe_snapshot_select(struct xe_ctx *c)
{
	const char *u = xe_param(c, "snapshot-uuid");
	if (!u)
		u = xe_param(c, "uuid");
	if (!u) {
		xe_fail(c, "Required parameter not found: snapshot-uuid");
		return NULL;
	}
	char *ref = xe_ref_by_uuid(c, "VM", u);
	json_t *is = ref ? xe_rpc(c, "VM.get_is_a_snapshot", "s", ref) : NULL;
	if (is && !json_is_true(is)) {
		xe_fail(c, "This operation can only be performed on a snapshot; %s is not one", u);
		free(ref);
		ref = NULL;
	}
	json_decref(is);
	return is ? ref : (free(ref), NULL);
}

static char *template_select(struct xe_ctx *c)
{
	const char *t = xe_param(c, "template-uuid");
	if (t)
		return xe_ref_by_uuid(c, "VM", t);
	t = xe_param(c, "template");
	if (!t)
		t = xe_param(c, "template-name-label");
	if (!t)
		t = xe_param(c, "template-name");
	if (!t) {
		xe_fail(c, "Required parameter not found: template");
		return NULL;
	}
	if (model_is_uuid(t)) {
		json_t *r = xe_rpc(c, "VM.get_by_uuid", "s", t);
		if (r)
			return xe_str_result(r);
		json_decref(c->xerr);
		c->xerr = NULL;
	}
	return vm_by_name(c, t, 1, "templates");
}

static char *sr_select(struct xe_ctx *c)
{
	const char *u = xe_param(c, "sr-uuid"), *n = xe_param(c, "sr-name-label");
	if (u)
		return xe_ref_by_uuid(c, "SR", u);
	if (!n)
		return NULL;
	json_t *all = xe_all(c, "SR");
	const char *ref;
	json_t *rec;
	json_object_foreach(all, ref, rec) {
		const char *nl = json_string_value(json_object_get(rec, "name_label"));
		if (nl && strcmp(nl, n) == 0)
			return xstrdup(ref);
	}
	xe_fail(c, "No SR matched sr-name-label=%s", n);
	return NULL;
}

static int install_steps(struct xe_ctx *c, const char *vm, const char *sr)
{
	json_t *r = xe_rpc(c, "VM.set_is_a_template", "sb", vm, 0);
	if (r) {
		json_decref(r);
		r = xe_rpc(c, "VM.set_name_description", "ss", vm, "Installed via xe CLI");
	}
	if (r && sr) {
		json_decref(r);
		r = xe_rpc(c, "VM.set_suspend_SR", "ss", vm, sr);
	}
	json_decref(r);
	return r ? 0 : -1;
}

int xe_cmd_vm_install(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	char *tmpl = template_select(c);
	if (!tmpl)
		return -1;
	json_t *rec = xe_rpc(c, "VM.get_record", "s", tmpl);
	bool is_t = json_is_true(json_object_get(rec, "is_a_template"));
	json_decref(rec);
	char *sr = NULL, *vm = NULL;
	int rc = -1;
	if (rec && !is_t)
		xe_fail(c, "Can only install from templates");
	else if (rec && (sr = sr_select(c), sr || (!xe_param(c, "sr-uuid") && !xe_param(c, "sr-name-label"))))
		vm = xe_str_result(xe_rpc(c, "VM.clone", "ss", tmpl, xe_param(c, "new-name-label")));
	if (vm && install_steps(c, vm, sr) == 0)
		rc = xe_print_uuid(c, "VM", vm);
	if (vm && rc) { /* on failure the half-made VM goes */
		json_t *save = c->xerr;
		c->xerr = NULL;
		json_decref(xe_rpc(c, "VM.destroy", "s", vm));
		json_decref(c->xerr);
		c->xerr = save;
	}
	free(vm);
	free(sr);
	free(tmpl);
	return rc;
}

/* The VDIs of vm's disks used by no other VM (refs appended to out). */
static int private_vdis(struct xe_ctx *c, const json_t *vmrec, const char *vm, json_t *out)
{
	json_t *vbds = xe_all(c, "VBD");
	size_t i;
	json_t *vbd;
	json_array_foreach(json_object_get(vmrec, "VBDs"), i, vbd) {
		json_t *vr = json_object_get(vbds, json_string_value(vbd));
		const char *vdi = json_string_value(json_object_get(vr, "VDI"));
		const char *type = json_string_value(json_object_get(vr, "type"));
		if (!vdi || !strcmp(vdi, MODEL_NULL_REF) || (type && strcmp(type, "Disk")))
			continue;
		bool shared = false;
		const char *ref;
		json_t *other;
		json_object_foreach(vbds, ref, other) {
			const char *ov = json_string_value(json_object_get(other, "VDI"));
			const char *om = json_string_value(json_object_get(other, "VM"));
			if (ov && om && strcmp(ov, vdi) == 0 && strcmp(om, vm))
				shared = true;
		}
		if (!shared)
			json_array_append_new(out, json_string(vdi));
	}
	return 0;
}

static void announce(struct xe_ctx *c, const char *what, const char *cls, const char *ref)
{
	json_t *rec = json_object_get(xe_all(c, cls), ref);
	const char *u = json_string_value(json_object_get(rec, "uuid"));
	const char *n = json_string_value(json_object_get(rec, "name_label"));
	fprintf(c->out, "%s: %s (%s)\n", what, u ? u : ref, n ? n : "");
}

/* XAPI's user_says_yes: without force=true the user must type yes; when
 * nobody can answer (stdin at its end, not a terminal) it is a no. */
bool xe_confirmed(struct xe_ctx *c)
{
	bool force = false;
	if (xe_bool_param(c, "force", false, &force) == 0 && force)
		return true;
	fputs("Type 'yes' to continue\n", c->out);
	fflush(c->out);
	char line[64] = "";
	if (!fgets(line, sizeof line, stdin))
		return false;
	line[strcspn(line, "\r\n")] = 0;
	return strcasecmp(line, "yes") == 0;
}

/* XAPI's vm_uninstall_common: each VM (hard shut down first when it is
 * not halted; a suspended one's image goes with it), then its private
 * disks. */
static int uninstall(struct xe_ctx *c, json_t *vms)
{
	json_t *plan = json_array();
	size_t i;
	json_t *vm;
	fputs("The following items are about to be destroyed\n", c->out);
	json_array_foreach(vms, i, vm) {
		json_t *rec = json_object_get(xe_all(c, "VM"), json_string_value(vm));
		json_t *vdis = json_array();
		private_vdis(c, rec, json_string_value(vm), vdis);
		announce(c, "VM ", "VM", json_string_value(vm));
		size_t k;
		json_t *v;
		json_array_foreach(vdis, k, v) announce(c, "VDI", "VDI", json_string_value(v));
		const char *img = json_string_value(json_object_get(rec, "suspend_VDI"));
		if (img && strcmp(img, MODEL_NULL_REF))
			announce(c, "VDI", "VDI", img);
		json_array_append_new(plan, json_pack("{s:O, s:o, s:s}", "vm", vm, "vdis", vdis, "power",
						      json_string_value(json_object_get(rec, "power_state")) ?: ""));
	}
	int rc = xe_confirmed(c) ? 0 : xe_fail(c, "Aborted");
	json_t *p;
	json_array_foreach(plan, i, p) {
		const char *ref = json_string_value(json_object_get(p, "vm"));
		json_t *r = json_string("");
		if (!rc && strcmp(json_string_value(json_object_get(p, "power")), "Halted"))
			r = (json_decref(r), xe_rpc(c, "VM.hard_shutdown", "s", ref));
		if (!rc && r) {
			json_decref(r);
			r = xe_rpc(c, "VM.destroy", "s", ref);
		}
		rc = rc ? rc : r ? 0 : -1;
		json_decref(r);
		size_t k;
		json_t *v;
		json_array_foreach(json_object_get(p, "vdis"), k, v) {
			if (rc)
				break;
			r = xe_rpc(c, "VDI.destroy", "s", json_string_value(v));
			rc = r ? 0 : -1;
			json_decref(r);
		}
	}
	if (!rc)
		fputs("All objects destroyed\n", c->out);
	json_decref(plan);
	return rc;
}

int xe_cmd_vm_uninstall(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	char *vm = xe_vm_select(c);
	json_t *rec = vm ? xe_rpc(c, "VM.get_record", "s", vm) : NULL;
	if (!rec) {
		free(vm);
		return -1;
	}
	/* its snapshots go with it, as XAPI's vm-uninstall */
	json_t *vms = json_pack("[s]", vm);
	json_array_extend(vms, json_object_get(rec, "snapshots"));
	int rc = uninstall(c, vms);
	json_decref(vms);
	json_decref(rec);
	free(vm);
	return rc;
}

/* snapshot-uninstall: the snapshot and its private disks. */
int xe_cmd_snapshot_uninstall(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	char *snap = xe_snapshot_select(c);
	json_t *vms = snap ? json_pack("[s]", snap) : NULL;
	int rc = vms ? uninstall(c, vms) : -1;
	json_decref(vms);
	free(snap);
	return rc;
}

int xe_cmd_vm_clone(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	char *vm = xe_vm_select(c);
	char *nvm = vm ? xe_str_result(xe_rpc(c, "VM.clone", "ss", vm, xe_param(c, "new-name-label"))) : NULL;
	const char *desc = xe_param(c, "new-name-description");
	int rc = nvm ? 0 : -1;
	if (nvm && desc) {
		json_t *r = xe_rpc(c, "VM.set_name_description", "ss", nvm, desc);
		rc = r ? 0 : -1;
		json_decref(r);
	}
	if (!rc)
		rc = xe_print_uuid(c, "VM", nvm);
	free(nvm);
	free(vm);
	return rc;
}

int xe_bool_param(struct xe_ctx *c, const char *key, bool dflt, bool *out)
{
	const char *v = xe_param(c, key);
	*out = dflt;
	if (v && xe_parse_bool(v, out))
		return xe_fail(c, "Failed to parse parameter '%s': expecting 'true' or 'false'", key);
	return 0;
}

/* "sm-config:k=v" style parameters into a map. */
json_t *xe_map_params(struct xe_ctx *c, const char *prefix)
{
	json_t *m = json_object();
	size_t pl = strlen(prefix);
	for (size_t i = 0; i < c->opts->nkv; i++) {
		struct xe_kv *kv = &c->opts->kv[i];
		if (kv->val && strncmp(kv->key, prefix, pl) == 0 && kv->key[pl] == ':') {
			json_object_set_new(m, kv->key + pl + 1, json_string(kv->val));
			kv->used = true;
		}
	}
	return m;
}

int xe_cmd_vdi_create(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	const char *sz = xe_param(c, "virtual-size");
	long long size = xe_parse_size(sz);
	if (size < 0)
		return xe_fail(c, "Failed to parse parameter 'virtual-size': expecting a size such as 10GiB, got '%s'", sz);
	bool sharable, ro;
	if (xe_bool_param(c, "sharable", false, &sharable) || xe_bool_param(c, "read-only", false, &ro))
		return -1;
	char *sr = xe_ref_by_uuid(c, "SR", xe_param(c, "sr-uuid"));
	if (!sr)
		return -1;
	const char *type = xe_param(c, "type"), *desc = xe_param(c, "name-description");
	json_t *args = json_pack("{s:s, s:s, s:s, s:I, s:s, s:b, s:b, s:o, s:{}, s:o, s:[]}", "name_label",
				 xe_param(c, "name-label"), "name_description", desc ? desc : "", "SR", sr,
				 "virtual_size", (json_int_t)size, "type", type ? type : "user", "sharable",
				 sharable, "read_only", ro, "other_config", xe_map_params(c, "other-config"),
				 "xenstore_data", "sm_config", xe_map_params(c, "sm-config"), "tags");
	char *vdi = xe_str_result(xe_rpc(c, "VDI.create", "o", args));
	int rc = vdi ? xe_print_uuid(c, "VDI", vdi) : -1;
	free(vdi);
	free(sr);
	return rc;
}

static json_t *vbd_args(struct xe_ctx *c, const char *vm, const char *vdi)
{
	bool bootable, unplug;
	if (xe_bool_param(c, "bootable", false, &bootable) || xe_bool_param(c, "unpluggable", true, &unplug))
		return NULL;
	const char *mode = xe_param(c, "mode"), *type = xe_param(c, "type");
	return json_pack("{s:s, s:s, s:s, s:b, s:s, s:s, s:b, s:b, s:{}, s:s, s:{}}", "VM", vm, "VDI",
			 vdi ? vdi : MODEL_NULL_REF, "userdevice", xe_param(c, "device"), "bootable", bootable,
			 "mode", mode ? mode : "RW", "type", type ? type : "Disk", "unpluggable", unplug,
			 "empty", vdi == NULL, "other_config", "qos_algorithm_type", "", "qos_algorithm_params");
}

int xe_cmd_vbd_create(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	char *vm = xe_ref_by_uuid(c, "VM", xe_param(c, "vm-uuid"));
	const char *vdi_uuid = xe_param(c, "vdi-uuid");
	char *vdi = vm && vdi_uuid ? xe_ref_by_uuid(c, "VDI", vdi_uuid) : NULL;
	int rc = -1;
	json_t *args = vm && (vdi || !vdi_uuid) ? vbd_args(c, vm, vdi) : NULL;
	if (args) {
		char *vbd = xe_str_result(xe_rpc(c, "VBD.create", "o", args));
		rc = vbd ? xe_print_uuid(c, "VBD", vbd) : -1;
		free(vbd);
	}
	free(vdi);
	free(vm);
	return rc;
}

int xe_cmd_destroy(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	const char *cls = strncmp(cmd->name, "vdi-", 4) == 0 ? "VDI" : "VBD";
	char *ref = xe_ref_by_uuid(c, cls, xe_param(c, "uuid"));
	if (!ref)
		return -1;
	char method[64];
	snprintf(method, sizeof method, "%s.destroy", cls);
	json_t *r = xe_rpc(c, method, "s", ref);
	free(ref);
	json_decref(r);
	return r ? 0 : -1;
}

int xe_cmd_task_cancel(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	char *ref = xe_ref_by_uuid(c, "task", xe_param(c, "uuid"));
	json_t *r = ref ? xe_rpc(c, "task.cancel", "s", ref) : NULL;
	free(ref);
	json_decref(r);
	return r ? 0 : -1;
}

/* ---- event-wait ---- */

static bool meets(struct xe_ctx *c, const struct xe_cls *x, const json_t *rec)
{
	for (size_t i = 0; i < c->opts->nkv; i++) {
		const struct xe_kv *kv = &c->opts->kv[i];
		if (!kv->val || !strcmp(kv->key, "class") || !strcmp(kv->key, "timeout"))
			continue;
		bool neq = strncmp(kv->val, "/=", 2) == 0;
		if (!xe_match(c, x, rec, kv->key, neq ? kv->val + 2 : kv->val, neq))
			return false;
	}
	return true;
}

static int check_keys(struct xe_ctx *c, const struct xe_cls *x)
{
	for (size_t i = 0; i < c->opts->nkv; i++) {
		const struct xe_kv *kv = &c->opts->kv[i];
		if (!kv->val || !strcmp(kv->key, "class") || !strcmp(kv->key, "timeout"))
			continue;
		char *name = strndup(kv->key, strcspn(kv->key, ":"));
		bool ok = xe_fdef_find(x, name) != NULL;
		free(name);
		if (!ok)
			return xe_fail(c, "key missing: %s", kv->key);
	}
	return 0;
}

static bool any_meets(struct xe_ctx *c, const struct xe_cls *x, const json_t *recs)
{
	const char *ref;
	json_t *rec;
	json_object_foreach((json_t *)recs, ref, rec) if (meets(c, x, rec)) return true;
	return false;
}

/* One event.from round: 1 matched, 0 not yet, -1 error. */
static int wait_round(struct xe_ctx *c, const struct xe_cls *x, char **token, double timeout)
{
	json_t *r = xe_rpc(c, "event.from", "[s]sf", x->mc->mc_name, *token, timeout);
	if (!r)
		return -1;
	const char *t = json_string_value(json_object_get(r, "token"));
	if (t) {
		free(*token);
		*token = xstrdup(t);
	}
	int hit = 0;
	size_t i;
	json_t *ev;
	/* names and metrics shown by the conditions may have changed too */
	json_decref(c->cache);
	c->cache = NULL;
	json_array_foreach(json_object_get(r, "events"), i, ev) {
		const char *op = json_string_value(json_object_get(ev, "operation"));
		json_t *snap = json_object_get(ev, "snapshot");
		if (op && strcmp(op, "del") && json_is_object(snap) && meets(c, x, snap))
			hit = 1;
	}
	json_decref(r);
	return hit;
}

static double seconds(void)
{
	return (double)now_ns() / 1e9;
}

int xe_cmd_event_wait(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	const char *cls = xe_param(c, "class"), *tmo = xe_param(c, "timeout");
	struct xe_cls x;
	if (!strcmp(cls, "template") || xe_cls_build(cls, &x))
		return xe_fail(c, "Cli listening for class '%s' not currently implemented", cls);
	double limit = tmo ? strtod(tmo, NULL) : 0, start = seconds();
	int rc = check_keys(c, &x);
	char method[96];
	snprintf(method, sizeof method, "%s.get_all_records", x.mc->mc_name);
	json_t *all = rc ? NULL : xe_rpc(c, method, "");
	int hit = all ? (any_meets(c, &x, all) ? 1 : 0) : -1;
	json_decref(all);
	char *token = xstrdup("");
	while (hit == 0) {
		double left = 30.0;
		if (limit > 0) {
			left = limit - (seconds() - start);
			if (left <= 0) {
				hit = -1;
				xe_fail(c, "Timed out after %s seconds waiting for the event", tmo);
				break;
			}
			left = left > 30.0 ? 30.0 : left;
		}
		hit = wait_round(c, &x, &token, left);
	}
	free(token);
	xe_cls_free(&x);
	return hit == 1 ? 0 : -1;
}
