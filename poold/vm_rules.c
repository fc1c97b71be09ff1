/* vm_rules.c - pure decisions about one VM (see vm_rules.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
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
static json_t *provision_disk(xmlNode *n, json_t **err)
{
	static const char *const names[] = {"device", "size", "sr", "bootable", "type"};
	xmlChar *v[5];
	for (int i = 0; i < 5; i++)
		v[i] = xmlGetProp(n, (const xmlChar *)names[i]);
	const char *type = v[4] ? (const char *)v[4] : "system";
	char *end = NULL;
	long long size = v[1] ? strtoll((const char *)v[1], &end, 10) : -1;
	json_t *d = NULL;
	if (!v[0] || !v[1] || !v[2] || !v[3] || size < 0 || (end && *end))
		*err = xerr_new(XE_INVALID_VALUE, "other_config:disks",
				"each disk needs device, size (bytes), sr and bootable", NULL);
	else
		d = json_pack("{s:s, s:I, s:s, s:b, s:s}", "device", (const char *)v[0], "size", (json_int_t)size, "sr",
			      (const char *)v[2], "bootable", strcmp((const char *)v[3], "true") == 0, "type", type);
	for (int i = 0; i < 5; i++)
		xmlFree(v[i]);
	return d;
}

json_t *vm_provision_disks(const char *xml, json_t **err)
{
	json_t *out = json_array();
	*err = NULL;
	if (!xml || !*xml)
		return out;
	xmlDoc *doc = xmlReadMemory(xml, (int)strlen(xml), "disks.xml", NULL, XML_PARSE_NONET | XML_PARSE_NOERROR |
									 XML_PARSE_NOWARNING);
	xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
	if (!root || strcmp((const char *)root->name, "provision")) {
		xmlFreeDoc(doc);
		*err = bad_disks(out, "not a <provision> document");
		return NULL;
	}
	for (xmlNode *n = root->children; n && !*err; n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		json_t *d = strcmp((const char *)n->name, "disk") == 0 ? provision_disk(n, err) : NULL;
		if (!d && !*err)
			*err = xerr_new(XE_INVALID_VALUE, "other_config:disks", "only <disk> elements may be in <provision>",
					NULL);
		if (d)
			json_array_append_new(out, d);
	}
	xmlFreeDoc(doc);
	if (*err) {
		json_decref(out);
		return NULL;
	}
	return out;
}
