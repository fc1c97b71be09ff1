/*
 * host_report.c - what an agent says about its host (at join and in every
 * heartbeat), checked, and the records it sets: the host's fields and
 * PIFs, its control domain, and the guest metrics of the VMs it runs.
 */
#include <stdio.h>
#include <string.h>
#include "cpuid.h"
#include "poold.h"
#include "tls.h"
#include "upgrade.h"
#include "version.h"
#include "xerr.h"
#include "util.h"

json_t *host_report_parse(json_t *r, struct host_report *out)
{
	if (!json_is_object(r))
		return xerr_new(XE_FIELD_TYPE_ERROR, "report", NULL);
	json_t *cpu = json_object_get(r, "cpu_info");
	*out = (struct host_report){jstr(r, "name_label"), jstr(r, "hostname"), jstr(r, "address"),
				    jstr(r, "migration_address"), jstr(r, "backend"), jstr(r, "product_version"),
				    jstr(cpu, "vendor"), jstr(cpu, "features"),
				    json_integer_value(json_object_get(r, "port")),
				    json_integer_value(json_object_get(r, "memory_total")),
				    json_integer_value(json_object_get(r, "memory_free")),
				    json_integer_value(json_object_get(cpu, "cpu_count"))};
	struct cpuid_set set;
	if (!*out->name || !*out->address || out->port <= 0 || out->port > 65535 || out->memory_total <= 0 ||
	    !*out->vendor || cpuid_parse(out->features, &set) < 0 || !*out->version)
		return xerr_new(XE_INVALID_VALUE, "report",
				"needs name_label, address, port, memory_total, product_version and cpu_info "
				"{vendor, features (XAPI feature-set form)}",
				NULL);
	/* these go into certificates and records, at join and at every
	 * heartbeat: names (an IP literal or a DNS name), not text */
	/* an agent older than these fields offers hardware version 0, as XAPI's old hosts */
	out->platform = jstr(r, "platform_version");
	json_t *hw = json_object_get(r, "hardware_platform_versions");
	int n = hw ? upgrade_hw_parse(json_string_value(hw), out->hw, sizeof out->hw / sizeof out->hw[0]) : 0;
	if (n <= 0 && hw)
		return xerr_new(XE_INVALID_VALUE, "hardware_platform_versions", jstr(r, "hardware_platform_versions"),
				NULL);
	out->nhw = n > 0 ? (size_t)n : 1;
	if (tls_name_kind(out->address, NULL, NULL) == TLS_NAME_INVALID)
		return xerr_new(XE_INVALID_VALUE, "address", out->address, NULL);
	if (*out->migration_address && tls_name_kind(out->migration_address, NULL, NULL) == TLS_NAME_INVALID)
		return xerr_new(XE_INVALID_VALUE, "migration_address", out->migration_address, NULL);
	return NULL;
}

json_t *host_report_fields(const struct host_report *r)
{
	char cpus[16];
	snprintf(cpus, sizeof cpus, "%lld", (long long)r->cpus);
	json_t *f = json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}, s:{s:s, s:s, s:s},"
			      " s:{s:s, s:s, s:s}}",
			 "name_label", r->name, "hostname", *r->hostname ? r->hostname : r->name, "address",
			 r->address, "software_version", "product_brand", POOLD_PRODUCT, "product_version",
			 r->version, "product_version_text", r->version, "platform_name", POOLD_PRODUCT,
			 "platform_version", POOLD_PLATFORM_VERSION, "build_number", POOLD_BUILD_NUMBER, "xapi",
			 r->version, "backend", r->backend,
			 "cpu_info", "vendor", r->vendor, "features", r->features, "cpu_count", cpus,
			 "other_config", "agent_address", r->address, "agent_port", "", "migration_address",
			 r->migration_address);
	if (*r->platform)
		json_object_set_new(json_object_get(f, "software_version"), "platform_version", json_string(r->platform));
	json_t *hw = json_array(); /* the model declares a set of strings */
	for (size_t i = 0; i < r->nhw; i++) {
		char v[24];
		snprintf(v, sizeof v, "%lld", (long long)r->hw[i]);
		json_array_append_new(hw, json_string(v));
	}
	json_object_set_new(f, "virtual_hardware_platform_versions", hw);
	return f;
}

/* The pool-wide network of a device (XAPI names them after the NIC):
 * found by name, created on first use. */
static json_t *device_network(struct db *db, const char *device, int index, char *ref)
{
	char name[96];
	snprintf(name, sizeof name, "Pool-wide network associated with %s", device);
	json_t *refs = db_refs_by_name(db, "network", name);
	const char *r = json_string_value(json_array_get(refs, 0));
	json_t *e = NULL;
	if (r)
		snprintf(ref, 64, "%s", r);
	else {
		char bridge[24];
		snprintf(bridge, sizeof bridge, "xenbr%d", index);
		e = db_obj_create_new(db, "network", json_pack("{s:s, s:s, s:I}", "name_label", name, "bridge", bridge, "MTU", 1500),
				      ref);
	}
	json_decref(refs);
	return e;
}

/* A host's addresses as PIFs: eth0 the management address, eth1 the
 * migration address when the agent has one. VM.pool_migrate's `network`
 * option finds the destination's address on that network here. */
json_t *host_pifs_sync(struct db *db, const char *host, const struct host_report *r)
{
	const char *addr[2] = {r->address, r->migration_address};
	json_t *pifs = db_find(db, "PIF", "host", host), *e = NULL;
	for (int i = 0; i < 2 && !e; i++) {
		char device[16], net[64] = "", have[64] = "";
		snprintf(device, sizeof device, "eth%d", i);
		const char *k;
		json_t *p;
		json_object_foreach(pifs, k, p) if (strcmp(jstr(p, "device"), device) == 0) snprintf(have, sizeof have, "%s", k);
		if (!addr[i] || !*addr[i]) {
			if (*have)
				e = db_obj_destroy(db, have);
			continue;
		}
		json_t *cur = *have ? json_object_get(pifs, have) : NULL;
		if (cur && strcmp(jstr(cur, "IP"), addr[i]) == 0)
			continue;
		if (cur) {
			e = db_obj_set(db, have, "IP", json_string(addr[i]));
			continue;
		}
		if ((e = device_network(db, device, i, net)))
			break;
		char pref[64];
		e = db_obj_create_new(db, "PIF",
				      json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:s, s:I}", "device", device, "host", host,
						"network", net, "IP", addr[i], "management", i == 0, "currently_attached", 1,
						"ip_configuration_mode", "Static", "MTU", 1500),
				      pref);
	}
	json_decref(pifs);
	return e;
}


/* ------------------------------------------------------ control domain */

/* A live object of class cls named by ref, or NULL. */
static json_t *live_obj(struct db *db, const char *ref, const char *cls)
{
	char have[64];
	if (!*ref || strcmp(ref, MODEL_NULL_REF) == 0 || !db_obj_class(db, ref, have, sizeof have) || strcmp(have, cls))
		return NULL;
	return db_obj_get(db, ref);
}

json_t *control_domain_sync(struct db *db, const char *host, const json_t *h, const struct host_report *r)
{
	char name[320];
	/* XAPI names it after the host's hostname; the name label tells the
	 * hosts of one machine (a devpool) apart and usually is the hostname */
	snprintf(name, sizeof name, "Control domain on host: %s", r->name);
	json_t *v = live_obj(db, jstr(h, "control_domain"), "VM");
	if (v && json_is_true(json_object_get(v, "is_control_domain"))) {
		bool same = strcmp(jstr(v, "name_label"), name) == 0;
		json_decref(v);
		return same ? NULL : db_obj_set(db, jstr(h, "control_domain"), "name_label", json_string(name));
	}
	json_decref(v);
	char now[32], mref[64], ref[64];
	model_now(now);
	json_t *e = db_obj_create_new(db, "VM_metrics",
				      json_pack("{s:I, s:s, s:[s]}", "VCPUs_number", r->cpus, "start_time", now, "state",
						"running"),
				      mref);
	if (!e)
		e = db_obj_create_new(db, "VM",
				      json_pack("{s:s, s:s, s:b, s:s, s:s, s:I, s:I, s:I, s:s, s:{s:s}}", "name_label",
						name, "name_description", "The domain that runs this host's toolstack",
						"is_control_domain", 1, "power_state", "Running", "resident_on", host,
						"domid", (json_int_t)0, "VCPUs_max", r->cpus, "VCPUs_at_startup", r->cpus,
						"metrics", mref, "other_config", "storage_driver_domain", "true"),
				      ref);
	return e ? e : db_obj_set(db, host, "control_domain", json_string(ref));
}

/* ------------------------------------------------------- guest metrics */

/* The VM_guest_metrics fields a guest's report gives (those of the model
 * with the right types; anything else is ignored), live, stamped now. */
static json_t *guest_fields(const json_t *guest)
{
	const struct model_class *gm = model_class_find("VM_guest_metrics");
	json_t *out = json_object();
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)guest, k, v) {
		const struct model_field *f = model_field_find(gm, k);
		if (f && f->fld_qual == QUAL_RO_RUN && f->fld_type != FT_DATETIME && strcmp(k, "uuid") &&
		    model_value_ok(f, v))
			json_object_set(out, k, v);
	}
	json_object_set_new(out, "live", json_true());
	return out;
}

static json_t *guest_sync_one(struct db *db, const char *host, const json_t *d)
{
	char vm[64], now[32];
	if (!json_is_object(json_object_get(d, "guest")) || !db_ref_by_uuid(db, "VM", jstr(d, "uuid"), vm))
		return NULL;
	const json_t *v = db_obj_peek(db, vm);
	json_t *e = NULL;
	const char *ps = jstr(v, "power_state");
	if (!v || strcmp(jstr(v, "resident_on"), host) || (strcmp(ps, "Running") && strcmp(ps, "Paused"))) {
		db_peek_done(v);
		return NULL; /* not (or not yet) recorded here: its guest speaks once it is */
	}
	json_t *want = guest_fields(json_object_get(d, "guest"));
	json_t *have = live_obj(db, jstr(v, "guest_metrics"), "VM_guest_metrics");
	bool same = have != NULL;
	const char *k;
	json_t *x;
	json_object_foreach(want, k, x) if (!json_equal(x, json_object_get(have, k))) same = false;
	model_now(now);
	json_object_set_new(want, "last_updated", json_string(now));
	if (have && !same) {
		e = db_obj_update_new(db, jstr(v, "guest_metrics"), want);
	} else if (!have) {
		char ref[64];
		e = db_obj_create_new(db, "VM_guest_metrics", want, ref);
		if (!e)
			e = db_obj_set(db, vm, "guest_metrics", json_string(ref));
	} else {
		json_decref(want);
	}
	json_decref(have);
	db_peek_done(v);
	return e;
}

json_t *guest_metrics_sync(struct db *db, const char *host, const json_t *report)
{
	size_t i;
	json_t *d, *e = NULL;
	json_array_foreach(json_object_get(report, "domains"), i, d) if (!e) e = guest_sync_one(db, host, d);
	return e;
}

json_t *guest_metrics_drop(struct db *db, const char *vm)
{
	json_t *v = db_obj_get(db, vm), *e = NULL;
	const char *gm = jstr(v, "guest_metrics");
	char have[64];
	if (*gm && strcmp(gm, MODEL_NULL_REF)) {
		if (db_obj_class(db, gm, have, sizeof have) && strcmp(have, "VM_guest_metrics") == 0)
			e = db_obj_destroy(db, gm);
		if (!e)
			e = db_obj_set(db, vm, "guest_metrics", json_string(MODEL_NULL_REF));
	}
	json_decref(v);
	return e;
}
