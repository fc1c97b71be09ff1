/*
 * ha_ops.c - HA on this host, as poold asks: agent.ha_arm starts the
 * monitor (ha/monitor.c) with the watchdog of this host's hypervisor,
 * agent.ha_disarm stops it cleanly. What the monitor knows goes into
 * every report (the "ha" section), and a change is reported at once.
 *
 * state-dir/ha-armed marks an armed run. An agent that starts and finds
 * it did not disarm (it was killed, or crashed) fences its host first:
 * its domains are killed, as the watchdog of that run does anyway, so
 * nothing the peers may already be restarting elsewhere runs here.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "agent.h"
#include "backend_lock.h"
#include "ha.h"
#include "log.h"
#include "xerr.h"

static void domains_dir(struct agent *ag, char *out, size_t n)
{
	snprintf(out, n, "%s/domains", ag->ag_state);
}

void agent_ha_leftover(struct agent *ag)
{
	char dir[4200];
	domains_dir(ag, dir, sizeof dir);
	ha_fence_leftover(ag->ag_state, dir);
}

static void on_ha_change(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	uint64_t n;
	if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
		log_debug("HA notify: %s", strerror(errno));
	agent_beat_soon(arg);
}

static void stop(struct agent *ag)
{
	if (!ag->ag_ha)
		return;
	ha_monitor_stop(ag->ag_ha);
	ag->ag_ha = NULL;
	ha_armed_mark(ag->ag_state, false);
	if (ag->ag_ha_ev)
		event_free(ag->ag_ha_ev);
	ag->ag_ha_ev = NULL;
	if (ag->ag_ha_notify >= 0)
		close(ag->ag_ha_notify);
	ag->ag_ha_notify = -1;
}

/* Fencing: the backend's lock is taken for good (within 2 s), so no
 * domain starts here while the fence kills them all and the agent exits. */
static void quiesce(void *arg)
{
	struct agent *ag = arg;
	if (!backend_locked_hold(ag->ag_be, 2000))
		log_error("HA: a backend call still runs after 2 s; fencing regardless");
}

/* The watchdog of this host's hypervisor. */
static struct ha_fence *fence_for(struct agent *ag, char *err, size_t errlen)
{
	struct backend *be = backend_locked_inner(ag->ag_be);
	if (strcmp(be->be_ops->bo_name, "xen") == 0)
		return ha_fence_xen_new(err, errlen);
	char dir[4200];
	domains_dir(ag, dir, sizeof dir);
	return ha_fence_sim_new(ag->ag_exe, dir, ag->ag_state, err, errlen);
}

/* The statefile is a VDI: its file is found in the SR plugged here, never
 * taken from the wire (as a domain's disks). */
static json_t *statefile_of(struct agent *ag, const json_t *given, json_t **conf)
{
	struct be_disk d;
	memset(&d, 0, sizeof d);
	const char *sr = json_string_value(json_object_get(given, "statefile_sr"));
	const char *vdi = json_string_value(json_object_get(given, "statefile_vdi"));
	snprintf(d.bd_sr_uuid, sizeof d.bd_sr_uuid, "%s", sr ? sr : "");
	snprintf(d.bd_vdi_uuid, sizeof d.bd_vdi_uuid, "%s", vdi ? vdi : "");
	json_t *e = agent_disk_locate(ag, &d);
	if (e) {
		json_decref(e);
		return xerr_new(XE_HA_HOST_CANNOT_ACCESS_STATEFILE, NULL);
	}
	*conf = json_deep_copy(given);
	json_object_set_new(*conf, "statefile", json_string(d.bd_path));
	return NULL;
}

json_t *agent_m_ha_arm(struct agent *ag, json_t *args, json_t **result)
{
	struct ha_config cfg;
	json_t *given = NULL, *e = statefile_of(ag, json_array_get(args, 0), &given);
	if (!e)
		e = ha_config_parse(given, ag->ag_host_uuid, &cfg);
	json_decref(given);
	if (e)
		return e;
	/* armed already in this HA: only the peers' addresses may have moved */
	if (ag->ag_ha && ha_monitor_update(ag->ag_ha, &cfg) == 0) {
		*result = json_pack("{s:s}", "generation", cfg.hc_generation);
		return NULL;
	}
	stop(ag);
	char err[512] = "";
	struct ha_fence *f = fence_for(ag, err, sizeof err);
	if (!f)
		return xerr_newf(XE_INTERNAL_ERROR, "%s", err);
	ha_fence_on_fire(f, quiesce, ag);
	ag->ag_ha_notify = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ha_armed_mark(ag->ag_state, true) < 0)
		log_warn("HA: cannot mark %s/ha-armed: %s", ag->ag_state, strerror(errno));
	ag->ag_ha = ha_monitor_start(&cfg, ag->ag_boot, f, ag->ag_ha_notify, err, sizeof err);
	if (!ag->ag_ha) {
		ha_armed_mark(ag->ag_state, false);
		close(ag->ag_ha_notify);
		ag->ag_ha_notify = -1;
		return xerr_newf(XE_INTERNAL_ERROR, "%s", err);
	}
	ag->ag_ha_ev = event_new(ag->ag_base, ag->ag_ha_notify, EV_READ | EV_PERSIST, on_ha_change, ag);
	event_add(ag->ag_ha_ev, NULL);
	*result = json_pack("{s:s}", "generation", cfg.hc_generation);
	return NULL;
}

json_t *agent_m_ha_disarm(struct agent *ag, json_t *args, json_t **result)
{
	const char *gen = json_string_value(json_array_get(args, 0));
	json_t *now = ag->ag_ha ? ha_monitor_state(ag->ag_ha) : NULL;
	/* "" disarms whatever runs; a generation only itself */
	bool match = now && (!*gen || strcmp(json_string_value(json_object_get(now, "generation")), gen) == 0);
	json_decref(now);
	if (match) {
		stop(ag);
		agent_beat_soon(ag);
	}
	*result = json_pack("{s:b}", "disarmed", match);
	return NULL;
}

void agent_ha_stop(struct agent *ag)
{
	stop(ag);
}
