/*
 * report.c - what the agent tells poold about its host and domains (join
 * and every heartbeat), as a pure function of what beat.c gathered.
 *
 * `domains_complete` is the agent's promise that the list holds every
 * domain of this host: poold records a VM halted for want of its domain
 * only when it is true (the backend listed its domains, and the agent's
 * records are where it left them).
 */
#include "agent.h"
#include "version.h"

static const char *state_name(enum be_state s)
{
	switch (s) {
	case BE_STATE_PAUSED: return "Paused";
	case BE_STATE_RUNNING: return "Running";
	case BE_STATE_SHUTDOWN: return "Halted";
	case BE_STATE_CRASHED: return "Crashed";
	}
	return "Halted";
}

json_t *report_build(const struct report_in *in)
{
	json_t *doms = json_array();
	for (int i = 0; i < in->ri_ndomains; i++) {
		const struct be_domain_info *d = &in->ri_domains[i];
		json_array_append_new(doms, json_pack("{s:s, s:i, s:s, s:I, s:i}", "uuid", d->di_uuid, "domid",
						      d->di_domid, "power_state", state_name(d->di_state), "memory",
						      (json_int_t)d->di_memory, "vcpus", d->di_vcpus));
	}
	const struct be_host_info *hi = &in->ri_host;
	json_t *r = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:I, s:I, s:{s:s, s:s, s:i}, s:o, s:b, s:b, s:O, s:s, "
			 "s:I}",
			 "name_label", in->ri_name, "hostname", in->ri_hostname, "address", in->ri_address, "port",
			 in->ri_port, "migration_address", in->ri_migration_address, "backend", hi->hi_backend,
			 "product_version", *in->ri_version ? in->ri_version : POOLD_VERSION, "memory_total",
			 (json_int_t)hi->hi_total_memory, "memory_free", (json_int_t)hi->hi_free_memory, "cpu_info",
			 "vendor", hi->hi_cpu_vendor, "features", hi->hi_featureset, "cpu_count", hi->hi_cpus, "domains",
			 doms, "domains_complete", in->ri_domains_complete, "state_lost", in->ri_state_lost, "srs",
			 in->ri_srs, "boot", in->ri_boot, "seq", (json_int_t)in->ri_seq);
	if (in->ri_ha)
		json_object_set(r, "ha", in->ri_ha);
	/* the platform defaults to the product's version; poold checks the set's form */
	const char *product = *in->ri_version ? in->ri_version : POOLD_VERSION;
	json_object_set_new(r, "platform_version",
			    json_string(in->ri_platform && *in->ri_platform ? in->ri_platform : product));
	json_object_set_new(r, "hardware_platform_versions", json_string(in->ri_hw ? in->ri_hw : ""));
	return r;
}
