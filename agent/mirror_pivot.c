/*
 * mirror_pivot.c - VDI.pool_migrate's switch-over on one host:
 * agent.vdi_pivot(vm, mirror, device, sr).
 *
 * The disk was mirrored to a VDI on another SR of this same host (both
 * ends of the mirror run here). The VM pauses; the mirror sends its last
 * round inside that pause (the same hook a VM migration uses); the
 * domain's disk on `device` is switched to the new VDI; the VM runs again.
 * The switch is the commit point: before it, any failure leaves the VM on
 * its old disk, unpaused; after it the VM writes the new VDI and the old
 * one is no longer used. Answered later, from a thread, so the pause and
 * the copy never hold the agent's loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evrpc.h"
#include "jsonrpc.h"
#include "log.h"
#include "backend_lock.h"
#include "mirror_ops.h"
#include "util.h"
#include "xerr.h"
#include <pthread.h>

struct pivot_job {
	struct agent *pj_ag;
	struct evhttp_request *pj_req;
	json_t *pj_id;
	bool pj_v2;
	int pj_domid, pj_slot;
	char pj_vm[BE_UUID_LEN];
	struct mirror_hook *pj_hook;
	struct be_disk pj_old, pj_new;
	struct event *pj_done;
	bool pj_switched;
	char pj_err[512];
};

/* The disk of device switched to d (the backend held). */
static int swap_disk(struct backend *be, int domid, const struct be_disk *old, const struct be_disk *d, char *err,
		     size_t errlen)
{
	if (be->be_ops->bo_disk_remove(be, domid, old->bd_device) != 0) {
		snprintf(err, errlen, "cannot detach %s: %s", old->bd_device, backend_error(be));
		return -1;
	}
	if (be->be_ops->bo_disk_add(be, domid, d) == 0)
		return 0;
	snprintf(err, errlen, "cannot attach the new VDI on %s: %s", d->bd_device, backend_error(be));
	if (be->be_ops->bo_disk_add(be, domid, old) != 0)
		log_error("domain %d: the old disk could not be attached again on %s: %s", domid, old->bd_device,
			  backend_error(be));
	return -1;
}

static void *pivot_thread(void *arg)
{
	struct pivot_job *j = arg;
	struct backend *be = j->pj_ag->ag_be;
	int rc = be->be_ops->bo_domain_pause(be, j->pj_domid);
	if (rc != 0)
		snprintf(j->pj_err, sizeof j->pj_err, "cannot pause the domain: %s", backend_error(be));
	else if ((rc = agent_mirrors_paused(j->pj_hook, false, j->pj_err, sizeof j->pj_err)) == 0 &&
		 (rc = agent_mirrors_paused(j->pj_hook, true, j->pj_err, sizeof j->pj_err)) == 0)
		rc = swap_disk(be, j->pj_domid, &j->pj_old, &j->pj_new, j->pj_err, sizeof j->pj_err);
	j->pj_switched = rc == 0;
	if (be->be_ops->bo_domain_unpause(be, j->pj_domid) != 0)
		log_error("VDI pivot: domain %d cannot be unpaused: %s", j->pj_domid, backend_error(be));
	agent_mirror_hook_free(j->pj_hook, j->pj_switched);
	j->pj_hook = NULL;
	if (j->pj_switched)
		agent_mirrors_running(j->pj_ag, j->pj_vm);
	int slot = j->pj_slot;
	struct agent *ag = j->pj_ag;
	event_active(j->pj_done, EV_TIMEOUT, 1);
	agent_flight_leave(&ag->ag_flights, slot);
	return NULL;
}

static void pivot_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct pivot_job *j = arg;
	char *text;
	if (j->pj_switched) {
		log_info("VDI pivot: domain %d now writes VDI %s on %s", j->pj_domid, j->pj_new.bd_vdi_uuid,
			 j->pj_new.bd_device);
		json_t *res = agent_stamp(j->pj_ag, json_pack("{s:b}", "switched", 1));
		char *rt = json_dumps(res, JSON_COMPACT);
		text = jrpc_ok(j->pj_id, j->pj_v2, rt);
		free(rt);
		json_decref(res);
	} else {
		json_t *e = xerr_newf(XE_INTERNAL_ERROR, "%s", j->pj_err);
		text = jrpc_err(j->pj_id, j->pj_v2, e);
		json_decref(e);
	}
	evrpc_reply(j->pj_req, text ? text : "");
	free(text);
	event_free(j->pj_done);
	json_decref(j->pj_id);
	free(j);
}

/* The old disk (the source mirror's VDI) and the new one (its
 * destination, on this host), found on the loop thread. */
static json_t *pivot_disks(struct agent *ag, struct pivot_job *j, const char *mirror, const char *device,
			   const char *sr)
{
	snprintf(j->pj_new.bd_vdi_uuid, sizeof j->pj_new.bd_vdi_uuid, "%s", mirror);
	snprintf(j->pj_new.bd_sr_uuid, sizeof j->pj_new.bd_sr_uuid, "%s", sr);
	snprintf(j->pj_new.bd_device, sizeof j->pj_new.bd_device, "%s", device);
	json_t *e = agent_mirror_source_disk(ag, mirror, &j->pj_old);
	snprintf(j->pj_old.bd_device, sizeof j->pj_old.bd_device, "%s", device);
	if (!e)
		e = agent_disk_locate(ag, &j->pj_old);
	return e ? e : agent_disk_locate(ag, &j->pj_new);
}

static json_t *pivot_launch(struct agent *ag, struct pivot_job *j)
{
	j->pj_done = event_new(ag->ag_base, -1, 0, pivot_done, j);
	j->pj_slot = j->pj_done ? agent_flight_enter(&ag->ag_flights) : -1;
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	int rc = j->pj_slot >= 0 ? pthread_create(&t, &at, pivot_thread, j) : -1;
	pthread_attr_destroy(&at);
	if (rc == 0)
		return NULL;
	if (j->pj_slot >= 0)
		agent_flight_leave(&ag->ag_flights, j->pj_slot);
	if (j->pj_done)
		event_free(j->pj_done);
	return xerr_newf(XE_INTERNAL_ERROR, "cannot start the VDI pivot%s",
			 agent_flight_stopping(&ag->ag_flights) ? ": the agent is stopping" : "");
}

json_t *agent_vdi_pivot_start(struct agent *ag, struct evhttp_request *req, json_t *args, json_t *id, bool v2)
{
	const char *vm = json_string_value(json_array_get(args, 0));
	const char *mirror = json_string_value(json_array_get(args, 1));
	const char *device = json_string_value(json_array_get(args, 2));
	const char *sr = json_string_value(json_array_get(args, 3));
	if (!vm || !mirror || !device || !sr || strlen(device) >= sizeof((struct be_disk *)0)->bd_device)
		return xerr_new(XE_INVALID_VALUE, "vdi_pivot", "vm, mirror, device, sr", NULL);
	struct pivot_job *j = xcalloc(1, sizeof *j);
	*j = (struct pivot_job){.pj_ag = ag, .pj_req = req, .pj_v2 = v2, .pj_slot = -1};
	snprintf(j->pj_vm, sizeof j->pj_vm, "%s", vm);
	char err[512] = "";
	json_t *ids = json_pack("[s]", mirror);
	json_t *e = pivot_disks(ag, j, mirror, device, sr);
	if (!e && (j->pj_domid = domid_of(ag, vm, NULL)) < 0)
		e = xerr_newf(XE_INTERNAL_ERROR, "VM %s has no domain on this host", vm);
	if (!e && !(j->pj_hook = agent_mirror_hook_new(ag, ids, err, sizeof err)))
		e = xerr_newf(XE_INTERNAL_ERROR, "%s", err);
	json_decref(ids);
	if (!e) {
		j->pj_id = json_incref(id);
		e = pivot_launch(ag, j);
	}
	if (e) {
		agent_mirror_hook_free(j->pj_hook, false);
		json_decref(j->pj_id);
		free(j);
		return e;
	}
	log_info("VDI pivot: VM %s, %s from VDI %s to %s", vm, device, j->pj_old.bd_vdi_uuid, mirror);
	return NULL;
}

/* agent.vm_disks(vm): the VDIs the VM's domain has as disks now, and
 * whether it runs: where a switch-over that was cut short ended. */
json_t *agent_m_vm_disks(struct agent *ag, json_t *args, json_t **result)
{
	const char *vm = json_string_value(json_array_get(args, 0));
	struct be_domain_info di;
	int domid = vm ? domid_of(ag, vm, &di) : -1;
	if (domid < 0)
		return xerr_newf(XE_INTERNAL_ERROR, "VM %s has no domain on this host", vm ? vm : "?");
	struct be_disk d[BE_MAX_DISKS];
	int n = 0;
	backend_locked_lock(ag->ag_be);
	struct backend *inner = backend_locked_inner(ag->ag_be);
	int rc = backend_sim_disks(inner, domid, d, BE_MAX_DISKS, &n);
	json_t *e = rc ? xerr_newf(XE_INTERNAL_ERROR, "%s", backend_error(inner)) : NULL;
	backend_locked_unlock(ag->ag_be);
	if (e)
		return e;
	json_t *list = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(list, json_string(d[i].bd_vdi_uuid));
	*result = json_pack("{s:o, s:s}", "disks", list, "state", be_state_name(di.di_state));
	return NULL;
}
