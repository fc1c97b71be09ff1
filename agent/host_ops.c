/*
 * host_ops.c - the host's own life: agent.host_power(action) for XAPI's
 * host.reboot, host.shutdown, host.restart_agent and pool.eject.
 *
 * On the sim backend the host is this agent: a reboot restarts it (the
 * same process image again, so its pid and supervisor stay), a shutdown
 * stops it, an ejection puts its pool identity aside (certificate, key,
 * CA, host.json, plugged SRs, into state-dir/ejected-TIME) and stops it.
 * Reboot, shutdown and eject are refused while a domain runs here (poold
 * checked first: this is the host's own word). The answer leaves before
 * anything happens.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "agent.h"
#include "log.h"
#include "xerr.h"

static json_t *domain_running(struct agent *ag)
{
	struct be_domain_info *d = NULL;
	int n = 0;
	if (ag->ag_be->be_ops->bo_domain_list(ag->ag_be, &d, &n) < 0)
		return xerr_newf(XE_INTERNAL_ERROR, "cannot list the domains: %s", backend_error(ag->ag_be));
	json_t *e = NULL;
	for (int i = 0; i < n && !e; i++)
		if (d[i].di_state == BE_STATE_RUNNING || d[i].di_state == BE_STATE_PAUSED)
			e = xerr_newf(XE_OPERATION_NOT_ALLOWED, "domain %d (VM %s) still runs on this host", d[i].di_domid,
				      d[i].di_uuid);
	free(d);
	return e;
}

/* The pool's identity of this host goes aside: it joins no pool until
 * given a new join token. */
static void eject_identity(struct agent *ag)
{
	static const char *const files[] = {"agent.pem", "agent.key", "ca.pem", "host.json", "srs.json"};
	char dir[4300];
	snprintf(dir, sizeof dir, "%s/ejected-%lld", ag->ag_state, (long long)time(NULL));
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		log_warn("eject: %s: %s", dir, strerror(errno));
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		char from[4300], to[4400];
		snprintf(from, sizeof from, "%s/%s", ag->ag_state, files[i]);
		snprintf(to, sizeof to, "%s/%s", dir, files[i]);
		if (rename(from, to) < 0 && errno != ENOENT)
			log_warn("eject: %s: %s", from, strerror(errno));
	}
	log_info("ejected from the pool: identity moved to %s", dir);
}

static void power_now(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct agent *ag = arg;
	if (ag->ag_exit == AGENT_EXIT_EJECT)
		eject_identity(ag);
	event_base_loopexit(ag->ag_base, NULL);
}

/* agent.host_power(action): reboot | shutdown | restart_agent | eject. */
json_t *agent_m_host_power(struct agent *ag, json_t *args, json_t **result)
{
	const char *a = json_string_value(json_array_get(args, 0));
	enum agent_exit x = !a				     ? AGENT_EXIT_NONE
			    : strcmp(a, "reboot") == 0	     ? AGENT_EXIT_RESTART
			    : strcmp(a, "restart_agent") == 0 ? AGENT_EXIT_RESTART
			    : strcmp(a, "shutdown") == 0     ? AGENT_EXIT_HALT
			    : strcmp(a, "eject") == 0	     ? AGENT_EXIT_EJECT
							     : AGENT_EXIT_NONE;
	if (x == AGENT_EXIT_NONE)
		return xerr_new(XE_INVALID_VALUE, "action", a ? a : "", NULL);
	json_t *e = strcmp(a, "restart_agent") == 0 ? NULL : domain_running(ag);
	if (e)
		return e;
	ag->ag_exit = x;
	struct timeval tv = {0, 200 * 1000};
	event_base_once(ag->ag_base, -1, EV_TIMEOUT, power_now, ag, &tv);
	log_info("host %s: %s requested by the pool master", ag->ag_host_uuid, a);
	*result = json_object();
	return NULL;
}
