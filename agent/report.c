/*
 * report.c - what the agent tells poold about its host and domains (join
 * and every heartbeat), as a pure function of what beat.c gathered.
 *
 * `domains_complete` is the agent's promise that the list holds every
 * domain of this host: poold records a VM halted for want of its domain
 * only when it is true (the backend listed its domains, and the agent's
 * records are where it left them).
 *
 * A running sim domain also carries `guest`: what a guest agent would say
 * (its OS, an address, its version), in the shape of XAPI's
 * VM_guest_metrics fields, which poold keeps for the VM. The address is
 * derived from the VM's uuid: the same on every host and after every
 * restart, in 10.0.0.0/8.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
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

/* Byte i of a uuid (its hex digits, dashes skipped). */
static unsigned uuid_byte(const char *uuid, int i)
{
	char hex[33];
	int n = 0;
	for (; *uuid && n < 32; uuid++)
		if (isxdigit((unsigned char)*uuid))
			hex[n++] = *uuid;
	hex[n] = '\0';
	unsigned b = 0;
	if (n >= 2 * i + 2 && sscanf(hex + 2 * i, "%2x", &b) != 1)
		b = 0;
	return b;
}

json_t *report_guest(const char *backend, const struct be_domain_info *d)
{
	if (strcmp(backend, "sim") || (d->di_state != BE_STATE_RUNNING && d->di_state != BE_STATE_PAUSED))
		return NULL;
	char ip[16];
	snprintf(ip, sizeof ip, "10.%u.%u.%u", uuid_byte(d->di_uuid, 0), uuid_byte(d->di_uuid, 1),
		 uuid_byte(d->di_uuid, 2) % 254 + 1);
	unsigned v[3] = {0, 0, 0};
	if (sscanf(POOLD_VERSION, "%u.%u.%u", &v[0], &v[1], &v[2]) < 1)
		v[0] = 0;
	char ver[3][12];
	for (int i = 0; i < 3; i++)
		snprintf(ver[i], sizeof ver[i], "%u", v[i]);
	/* XAPI's VM_guest_metrics fields, as a guest agent fills them */
	return json_pack("{s:{s:s, s:s, s:s, s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s, s:s}, s:b}", "os_version", "name",
			 "Simulated guest (pool-simdom)", "distro", "pool-simdom", "major", ver[0], "minor", ver[1],
			 "uname", POOLD_VERSION, "networks", "0/ip", ip, "0/ipv4/0", ip, "PV_drivers_version", "major",
			 ver[0], "minor", ver[1], "micro", ver[2], "PV_drivers_detected", 1);
}

json_t *report_domain(const char *backend, const struct be_domain_info *d)
{
	json_t *dom = json_pack("{s:s, s:i, s:s, s:I, s:i}", "uuid", d->di_uuid, "domid", d->di_domid, "power_state",
				state_name(d->di_state), "memory", (json_int_t)d->di_memory, "vcpus", d->di_vcpus);
	json_t *guest = backend ? report_guest(backend, d) : NULL;
	if (guest)
		json_object_set_new(dom, "guest", guest);
	return dom;
}

json_t *report_build(const struct report_in *in)
{
	json_t *doms = json_array();
	for (int i = 0; i < in->ri_ndomains; i++)
		json_array_append_new(doms, report_domain(in->ri_host.hi_backend, &in->ri_domains[i]));
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
	/* the platform defaults to the XAPI platform this build serves; poold checks the set's form */
	json_object_set_new(r, "platform_version",
			    json_string(in->ri_platform && *in->ri_platform ? in->ri_platform : POOLD_PLATFORM_VERSION));
	json_object_set_new(r, "hardware_platform_versions", json_string(in->ri_hw ? in->ri_hw : ""));
	return r;
}
