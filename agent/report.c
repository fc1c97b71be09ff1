/* report.c - what the agent tells poold about its host and domains. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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

json_t *agent_stamp(struct agent *ag, json_t *answer)
{
	json_object_set_new(answer, "boot", json_string(ag->ag_boot));
	json_object_set_new(answer, "seq", json_integer((json_int_t)(ag->ag_seq + 1)));
	return answer;
}

json_t *agent_report(struct agent *ag)
{
	ag->ag_seq++;
	struct be_host_info hi;
	memset(&hi, 0, sizeof hi);
	ag->ag_be->be_ops->bo_host_info(ag->ag_be, &hi);
	char hostname[256] = "";
	gethostname(hostname, sizeof hostname - 1);
	const char *version = conf_str(ag->ag_conf, "software-version");
	json_t *doms = json_array();
	struct be_domain_info *d = NULL;
	int n = 0;
	if (ag->ag_be->be_ops->bo_domain_list(ag->ag_be, &d, &n) == 0) {
		agent_watch_domains(ag, d, n);
		for (int i = 0; i < n; i++) {
			json_array_append_new(doms, json_pack("{s:s, s:i, s:s, s:I, s:i}", "uuid", d[i].di_uuid, "domid",
							      d[i].di_domid, "power_state", state_name(d[i].di_state),
							      "memory", (json_int_t)d[i].di_memory, "vcpus",
							      d[i].di_vcpus));
			/* a domain that ended by itself is reported once, then cleared:
			 * poold records the VM halted, its memory is the host's again */
			if (d[i].di_state == BE_STATE_SHUTDOWN || d[i].di_state == BE_STATE_CRASHED)
				ag->ag_be->be_ops->bo_domain_destroy(ag->ag_be, d[i].di_domid);
		}
		free(d);
	}
	return json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:I, s:I, s:{s:s, s:s, s:i}, s:o, s:o, s:s, s:I}",
			 "name_label",
			 conf_str(ag->ag_conf, "name"), "hostname", hostname, "address", ag->ag_address, "port",
			 ag->ag_port, "migration_address", conf_str(ag->ag_conf, "migration-address"), "backend",
			 hi.hi_backend, "product_version", *version ? version : POOLD_VERSION, "memory_total",
			 (json_int_t)hi.hi_total_memory, "memory_free", (json_int_t)hi.hi_free_memory, "cpu_info",
			 "vendor", hi.hi_cpu_vendor, "features", hi.hi_featureset, "cpu_count", hi.hi_cpus,
			 "domains", doms, "srs", agent_srs_report(ag), "boot", ag->ag_boot, "seq",
			 (json_int_t)ag->ag_seq);
}
