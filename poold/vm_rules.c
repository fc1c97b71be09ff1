/* vm_rules.c - pure decisions about one VM (see vm_rules.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <expat.h>
#include "model.h"
#include "vm_rules.h"
#include "xerr.h"

static bool in_array(const json_t *arr, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) if (json_is_string(v) && strcmp(json_string_value(v), s) == 0) return true;
	return false;
}

const char *vm_suspend_sr_choose(const char *const *want, size_t n, const json_t *plugged)
{
	for (size_t i = 0; i < n; i++)
		if (want[i] && *want[i] && strcmp(want[i], MODEL_NULL_REF) && in_array(plugged, want[i]))
			return want[i];
	return NULL;
}

json_t *vm_allowed_devices(const json_t *used, int first, int last)
{
	json_t *out = json_array();
	for (int d = first; d <= last; d++) {
		char s[16];
		snprintf(s, sizeof s, "%d", d);
		if (!in_array(used, s))
			json_array_append_new(out, json_string(s));
	}
	return out;
}

json_t *vm_live_target(json_int_t min, json_int_t max, json_int_t held, json_int_t host_free, json_int_t *target)
{
	json_int_t reach = held + (host_free > 0 ? host_free : 0);
	*target = max < reach ? max : reach;
	if (*target >= min)
		return NULL;
	char need[32], avail[32];
	snprintf(need, sizeof need, "%lld", (long long)(min - held));
	snprintf(avail, sizeof avail, "%lld", (long long)(host_free > 0 ? host_free : 0));
	return xerr_new(XE_HOST_NOT_ENOUGH_FREE_MEMORY, need, avail, NULL);
}

json_t *vm_vcpus_live_check(json_int_t n, json_int_t max)
{
	if (n > 0 && n <= max)
		return NULL;
	char v[32];
	snprintf(v, sizeof v, "%lld", (long long)n);
	return xerr_new(XE_INVALID_VALUE, "VCPU values must satisfy: 0 < VCPUs \u2264 VCPUs_max", v, NULL);
}

/* Fields a snapshot does not take from its VM: identity, runtime state,
 * relations (its own are made apart). */
static const char *const snap_reset[] = {
	"uuid", "allowed_operations", "current_operations", "resident_on", "scheduled_to_be_resident_on", "domid",
	"metrics", "guest_metrics", "VBDs", "VIFs", "consoles", "snapshots", "children", "suspend_VDI",
	"is_default_template", "protection_policy", "snapshot_schedule", "appliance", "suspend_SR", "groups",
	"blobs", "ha_always_run", "start_delay", "shutdown_delay", "order", "requires_reboot",
};

json_t *vm_snapshot_record(const json_t *rec, const char *vm, const char *name, const char *now, const char *power)
{
	json_t *s = json_deep_copy(rec);
	for (size_t i = 0; i < sizeof snap_reset / sizeof snap_reset[0]; i++)
		json_object_del(s, snap_reset[i]);
	json_t *oc = json_object_get(s, "other_config");
	if (json_is_object(oc))
		json_object_del(oc, "default_template");
	json_object_set_new(s, "name_label", json_string(name));
	json_object_set_new(s, "power_state", json_string(power));
	json_object_set_new(s, "is_a_template", json_true());
	json_object_set_new(s, "is_a_snapshot", json_true());
	json_object_set_new(s, "snapshot_of", json_string(vm));
	json_object_set_new(s, "snapshot_time", json_string(now));
	json_object_set_new(s, "transportable_snapshot_id", json_string(""));
	/* the snapshot takes the VM's place in the tree: its parent is the VM's */
	json_object_set(s, "parent", json_object_get(rec, "parent"));
	json_object_set_new(s, "snapshot_info", json_pack("{s:s, s:s}", "disk-snapshot-type", "crash_consistent",
							  "power-state-at-snapshot", json_string_value(json_object_get(
											     rec, "power_state")) ?: ""));
	return s;
}

/* Never copied back: identity, runtime state, what marks a snapshot, and
 * the VM's own relations and grouping (XAPI's extended_do_not_copy). */
static const char *const revert_keep[] = {
	"uuid", "suspend_VDI", "power_state", "parent", "current_operations", "allowed_operations", "metrics",
	"guest_metrics", "resident_on", "domid", "protection_policy", "snapshot_schedule",
	"scheduled_to_be_resident_on", "snapshots", "tags", "affinity", "groups", "consoles", "VBDs", "VIFs",
	"VGPUs", "VUSBs", "VTPMs", "attached_PCIs", "is_snapshot_from_vmpp", "name_label", "is_a_snapshot",
	"is_a_template", "is_default_template", "snapshot_of", "snapshot_time", "transportable_snapshot_id",
	"children", "snapshot_info", "snapshot_metadata",
};

json_t *vm_revert_fields(const json_t *snap)
{
	json_t *f = json_deep_copy(snap);
	for (size_t i = 0; i < sizeof revert_keep / sizeof revert_keep[0]; i++)
		json_object_del(f, revert_keep[i]);
	json_object_set_new(f, "ha_always_run", json_false());
	return f;
}

static json_t *bad_disks(json_t *out, const char *why)
{
	json_decref(out);
	return xerr_new(XE_INVALID_VALUE, "other_config:disks", why, NULL);
}

/* One <disk/>: its attributes as the record of a disk to make. */
static json_t *provision_disk(const char **attrs, json_t **err)
{
	static const char *const names[] = {"device", "size", "sr", "bootable", "type"};
	const char *v[5] = {NULL, NULL, NULL, NULL, NULL};
	for (int a = 0; attrs[a] && attrs[a + 1]; a += 2)
		for (int i = 0; i < 5; i++)
			if (strcmp(attrs[a], names[i]) == 0)
				v[i] = attrs[a + 1];
	const char *type = v[4] ? v[4] : "system";
	char *end = NULL;
	long long size = v[1] ? strtoll(v[1], &end, 10) : -1;
	if (!v[0] || !v[1] || !v[2] || !v[3] || size < 0 || (end && *end)) {
		*err = xerr_new(XE_INVALID_VALUE, "other_config:disks",
				"each disk needs device, size (bytes), sr and bootable", NULL);
		return NULL;
	}
	return json_pack("{s:s, s:I, s:s, s:b, s:s}", "device", v[0], "size", (json_int_t)size, "sr", v[2],
			 "bootable", strcmp(v[3], "true") == 0, "type", type);
}

/* <provision><disk .../>...</provision>, read by expat (as XML-RPC is). */
struct prov {
	XML_Parser p;
	int depth;
	json_t *out, *err;
};

static void prov_start(void *arg, const XML_Char *name, const XML_Char **attrs)
{
	struct prov *v = arg;
	v->depth++;
	if (v->err)
		return;
	if (v->depth == 1 && strcmp(name, "provision"))
		v->err = xerr_new(XE_INVALID_VALUE, "other_config:disks", "not a <provision> document", NULL);
	else if (v->depth == 2 && strcmp(name, "disk"))
		v->err = xerr_new(XE_INVALID_VALUE, "other_config:disks", "only <disk> elements may be in <provision>",
				  NULL);
	else if (v->depth == 2) {
		json_t *d = provision_disk(attrs, &v->err);
		if (d)
			json_array_append_new(v->out, d);
	} else if (v->depth > 2)
		v->err = xerr_new(XE_INVALID_VALUE, "other_config:disks", "a <disk> holds no elements", NULL);
	if (v->err)
		XML_StopParser(v->p, XML_FALSE);
}

static void prov_end(void *arg, const XML_Char *name)
{
	(void)name;
	((struct prov *)arg)->depth--;
}

/* A DTD could declare entities that expand a small text without bound. */
static void prov_no_dtd(void *arg, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid, int internal)
{
	(void)name, (void)sysid, (void)pubid, (void)internal;
	struct prov *v = arg;
	if (!v->err)
		v->err = xerr_new(XE_INVALID_VALUE, "other_config:disks", "a DTD is not accepted", NULL);
	XML_StopParser(v->p, XML_FALSE);
}

json_t *vm_provision_disks(const char *xml, json_t **err)
{
	*err = NULL;
	if (!xml || !*xml)
		return json_array();
	struct prov v = {XML_ParserCreate("UTF-8"), 0, json_array(), NULL};
	if (!v.p) {
		json_decref(v.out);
		*err = xerr_newf(XE_INTERNAL_ERROR, "cannot make an XML parser");
		return NULL;
	}
	XML_SetUserData(v.p, &v);
	XML_SetElementHandler(v.p, prov_start, prov_end);
	XML_SetStartDoctypeDeclHandler(v.p, prov_no_dtd);
	enum XML_Status st = XML_Parse(v.p, xml, (int)strlen(xml), 1);
	if (!v.err && st != XML_STATUS_OK)
		v.err = bad_disks(NULL, "not a <provision> document");
	XML_ParserFree(v.p);
	if (v.err) {
		json_decref(v.out);
		*err = v.err;
		return NULL;
	}
	return v.out;
}
