/*
 * master.c - where the pool master is, as this agent follows it.
 *
 * The master can move (a standby takes over when HA says the master's
 * host died, or the operator designates another host). The agent follows
 * by itself, from whichever it hears first:
 *   - the master's lease in HA's statefile (ha_monitor_master), newer than
 *     the master it talks to;
 *   - HOST_IS_SLAVE [address] from the poold it beats to: that host is a
 *     standby now, the master is at that address (the same port: every
 *     poold of a pool listens on one);
 *   - agent.set_master(address, port, epoch) from the new master itself;
 *   - after two beats without an answer (an error the master answers is
 *     not silence), the next of the hosts that run a poold (the master
 *     lists them with each heartbeat's answer) or the configuration's
 *     master: a standby there answers HOST_IS_SLAVE with the master it
 *     knows.
 * An older epoch never moves the agent back. What it follows is kept in
 * state-dir/master.json, so a restarted agent goes to the right master,
 * unless the configuration's master was edited since: the operator's word
 * is newer than anything the agent heard.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "agent.h"
#include "evrpc.h"
#include "ha.h"
#include "log.h"
#include "util.h"
#include "xerr.h"

#define FAILS_BEFORE_ASKING 2

/* "host:port" (the configuration's master) into its parts. */
int agent_split_master(const char *master, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(master, ':');
	if (!colon || colon == master || !colon[1])
		return -1;
	char *end;
	long p = strtol(colon + 1, &end, 10);
	if (*end || p <= 0 || p > 65535 || (size_t)(colon - master) >= hostlen)
		return -1;
	snprintf(host, hostlen, "%.*s", (int)(colon - master), master);
	*port = (int)p;
	return 0;
}

static void master_path(const struct agent *ag, char *out, size_t n, const char *suffix)
{
	snprintf(out, n, "%s/master.json%s", ag->ag_state, suffix);
}

static void master_save(struct agent *ag)
{
	char path[4200], tmp[4200];
	master_path(ag, path, sizeof path, "");
	master_path(ag, tmp, sizeof tmp, ".tmp");
	json_t *o = json_pack("{s:s, s:i, s:I, s:O, s:s}", "address", ag->ag_master_host, "port", ag->ag_master_port,
			      "epoch", (json_int_t)ag->ag_epoch, "masters", ag->ag_masters, "configured",
			      conf_str(ag->ag_conf, "master"));
	if (json_dump_file(o, tmp, JSON_COMPACT) < 0 || rename(tmp, path) < 0)
		log_warn("%s: %s", path, strerror(errno));
	json_decref(o);
}

void agent_master_load(struct agent *ag)
{
	char path[4200];
	master_path(ag, path, sizeof path, "");
	ag->ag_masters = json_array();
	json_t *o = json_load_file(path, 0, NULL);
	if (o && strcmp(jstr(o, "configured"), conf_str(ag->ag_conf, "master"))) {
		log_warn("%s: the configuration names another master (%s) than when it was written: following the "
			 "configuration", path, conf_str(ag->ag_conf, "master"));
		json_decref(o);
		return;
	}
	const char *addr = jstr(o, "address");
	int port = (int)json_integer_value(json_object_get(o, "port"));
	if (*addr && port > 0 && strlen(addr) < sizeof ag->ag_master_host) {
		snprintf(ag->ag_master_host, sizeof ag->ag_master_host, "%s", addr);
		ag->ag_master_port = port;
		ag->ag_epoch = (uint64_t)json_integer_value(json_object_get(o, "epoch"));
		if (json_is_array(json_object_get(o, "masters")))
			json_array_extend(ag->ag_masters, json_object_get(o, "masters"));
	}
	json_decref(o);
}

void agent_master_free(struct agent *ag)
{
	json_decref(ag->ag_masters);
	ag->ag_masters = NULL;
}

/* The connection to the old master goes on the next loop turn (never from
 * inside its own callback); a beat still in flight on it fails now. */
static void master_switch_now(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct agent *ag = arg;
	if (!ag->ag_master_stale)
		return;
	ag->ag_master_stale = false;
	struct evrpc_conn *old = ag->ag_master;
	ag->ag_master = NULL;
	evrpc_conn_close(old, "the pool master moved");
}

/* Talk to address:port from now on. */
static void master_set(struct agent *ag, const char *address, int port, uint64_t epoch, const char *why)
{
	if (!*address || strlen(address) >= sizeof ag->ag_master_host || port <= 0)
		return;
	bool moved = strcmp(address, ag->ag_master_host) || port != ag->ag_master_port;
	if (epoch > ag->ag_epoch)
		ag->ag_epoch = epoch;
	if (!moved)
		return;
	log_warn("the pool master is %s:%d now (%s); it was %s:%d", address, port, why, ag->ag_master_host,
		 ag->ag_master_port);
	snprintf(ag->ag_master_host, sizeof ag->ag_master_host, "%s", address);
	ag->ag_master_port = port;
	ag->ag_master_fails = 0;
	if (ag->ag_master && !ag->ag_master_stale && ag->ag_base) {
		ag->ag_master_stale = true; /* the next beat connects to the new one */
		struct timeval now = {0, 0};
		event_base_once(ag->ag_base, -1, EV_TIMEOUT, master_switch_now, ag, &now);
	}
	master_save(ag);
}

bool agent_master_from_lease(struct agent *ag)
{
	struct ha_lease l;
	/* only a newer master than the one we know: the lease of a master that
	 * just died still names it until it expires */
	if (!ag->ag_ha || ha_monitor_master(ag->ag_ha, &l) < 0 || l.hl_off || l.hl_released || !l.hl_holder[0] ||
	    l.hl_epoch <= ag->ag_epoch)
		return false;
	if (!strcmp(l.hl_address, ag->ag_master_host) && l.hl_port == ag->ag_master_port) {
		ag->ag_epoch = l.hl_epoch;
		return false;
	}
	master_set(ag, l.hl_address, l.hl_port, l.hl_epoch, "HA's statefile names it");
	return true;
}

void agent_master_heard(struct agent *ag, json_t *answer)
{
	ag->ag_master_fails = 0;
	json_t *m = json_object_get(answer, "master");
	uint64_t epoch = (uint64_t)json_integer_value(json_object_get(m, "epoch"));
	json_t *masters = json_object_get(m, "masters");
	bool changed = epoch > ag->ag_epoch;
	if (changed)
		ag->ag_epoch = epoch;
	if (json_is_array(masters) && !json_equal(masters, ag->ag_masters)) {
		json_array_clear(ag->ag_masters);
		json_array_extend(ag->ag_masters, masters);
		changed = true;
	}
	if (changed)
		master_save(ag);
}

/* The next host that runs a poold, after the current master; the
 * configuration's master is one of them whatever the list says (its poold
 * may listen on another address than its host's agent, and the list a
 * master sends names hosts). */
static void master_ask_next(struct agent *ag)
{
	size_t n = json_array_size(ag->ag_masters);
	char conf_host[sizeof ag->ag_master_host];
	int conf_port = 0;
	bool have_conf = agent_split_master(conf_str(ag->ag_conf, "master"), conf_host, sizeof conf_host,
					    &conf_port) == 0;
	for (size_t k = 1; k <= n + 1; k++) {
		size_t i = (ag->ag_master_next + k) % (n + 1);
		const char *a = i < n ? json_string_value(json_array_get(ag->ag_masters, i)) : have_conf ? conf_host : NULL;
		int port = i < n ? ag->ag_master_port : conf_port;
		if (a && *a && (strcmp(a, ag->ag_master_host) || port != ag->ag_master_port)) {
			ag->ag_master_next = i;
			master_set(ag, a, port, ag->ag_epoch, "the master is silent: asking another host");
			return;
		}
	}
}

void agent_master_failed(struct agent *ag, json_t *err)
{
	if (xerr_is(err, XE_HOST_IS_SLAVE)) {
		const char *addr = json_string_value(json_array_get(err, 1));
		if (addr)
			master_set(ag, addr, ag->ag_master_port, ag->ag_epoch, "HOST_IS_SLAVE: that host is not the master");
		return;
	}
	/* an error the master answered (a report refused, a version newer than
	 * its own) is not silence: only a call that got no answer counts */
	if (!xerr_is(err, XE_INTERNAL_ERROR)) {
		ag->ag_master_fails = 0;
		return;
	}
	if (++ag->ag_master_fails < FAILS_BEFORE_ASKING)
		return;
	/* under HA the lease names the next master: the others would only
	 * name the silent one until then */
	if (!agent_master_from_lease(ag) && !ag->ag_ha)
		master_ask_next(ag);
}

json_t *agent_m_set_master(struct agent *ag, json_t *args, json_t **result)
{
	const char *addr = json_string_value(json_array_get(args, 0));
	int port = (int)json_integer_value(json_array_get(args, 1));
	uint64_t epoch = (uint64_t)json_integer_value(json_array_get(args, 2));
	if (epoch < ag->ag_epoch)
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "a master of epoch %llu is known here: %llu is older",
				 (unsigned long long)ag->ag_epoch, (unsigned long long)epoch);
	master_set(ag, addr, port, epoch, "the new master said so");
	*result = json_pack("{s:I}", "epoch", (json_int_t)ag->ag_epoch);
	return NULL;
}
