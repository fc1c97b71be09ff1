/*
 * domain.c - a VM's domain on this host: finding it, reading the
 * configuration poold sends for it, and the power operations poold asks
 * for (agent.vm_start, vm_shutdown, vm_pause, vm_unpause).
 *
 * Domains are named by their VM's uuid, as poold knows them. A disk is
 * named by SR and VDI: its file is found in an SR this host has plugged
 * (agent_disk_locate), never taken from the wire.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "agent.h"
#include "backend_lock.h"
#include "log.h"
#include "xerr.h"

static json_t *be_fail(struct agent *ag, const char *what, const char *uuid)
{
	return xerr_newf(XE_INTERNAL_ERROR, "%s %s: %s", what, uuid, backend_error(ag->ag_be));
}

int domid_of(struct agent *ag, const char *uuid, struct be_domain_info *out)
{
	struct be_domain_info *d = NULL;
	int n = 0, domid = -1;
	if (ag->ag_be->be_ops->bo_domain_list(ag->ag_be, &d, &n) < 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (strcmp(d[i].di_uuid, uuid) == 0) {
			domid = d[i].di_domid;
			if (out)
				*out = d[i];
		}
	free(d);
	return domid;
}

int domid_of_hint(struct agent *ag, const char *uuid, int hint, struct be_domain_info *out)
{
	struct be_domain_info di;
	if (hint > 0 && ag->ag_be->be_ops->bo_domain_info(ag->ag_be, hint, &di) == 0 && strcmp(di.di_uuid, uuid) == 0) {
		if (out)
			*out = di;
		return hint;
	}
	return domid_of(ag, uuid, out);
}

json_t *agent_m_vm_state(struct agent *ag, json_t *args, json_t **result)
{
	const char *uuid = json_string_value(json_array_get(args, 0));
	int hint = (int)json_integer_value(json_array_get(args, 1));
	struct be_domain_info di;
	json_t *doms = json_array();
	if (domid_of_hint(ag, uuid, hint, &di) >= 0)
		json_array_append_new(doms, report_domain(NULL, &di));
	*result = agent_stamp(ag, json_pack("{s:o}", "domains", doms));
	return NULL;
}

int agent_vdi_user(struct agent *ag, const char *vdi)
{
	struct be_domain_info *di = NULL;
	int n = 0, user = -1;
	if (ag->ag_be->be_ops->bo_domain_list(ag->ag_be, &di, &n) < 0)
		return -1;
	backend_locked_lock(ag->ag_be);
	struct backend *inner = backend_locked_inner(ag->ag_be);
	for (int i = 0; i < n && user < 0; i++) {
		struct be_disk d[BE_MAX_DISKS];
		int nd = 0;
		if (backend_sim_disks(inner, di[i].di_domid, d, BE_MAX_DISKS, &nd) < 0)
			continue; /* gone meanwhile, or not a sim domain: nothing of ours to guard */
		for (int k = 0; k < nd && user < 0; k++)
			if (strcmp(d[k].bd_vdi_uuid, vdi) == 0)
				user = di[i].di_domid;
	}
	backend_locked_unlock(ag->ag_be);
	free(di);
	return user;
}

json_t *agent_domain_config(struct agent *ag, const json_t *cfg, struct be_domain_config *dc)
{
	json_t *e = dcfg_from_json(cfg, dc);
	for (int i = 0; !e && i < dc->dc_ndisks; i++)
		e = agent_disk_locate(ag, &dc->dc_disks[i]);
	return e;
}

json_t *agent_m_vm_start(struct agent *ag, json_t *args, json_t **result)
{
	struct be_domain_config dc;
	json_t *e = agent_domain_config(ag, json_array_get(args, 0), &dc);
	if (e)
		return e;
	struct be_domain_info old;
	int olddom = domid_of(ag, dc.dc_uuid, &old);
	if (olddom >= 0 && (old.di_state == BE_STATE_RUNNING || old.di_state == BE_STATE_PAUSED))
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "VM %s already has a domain on this host", dc.dc_uuid);
	/* what is left of an earlier run (crashed, shut down) goes first */
	if (olddom >= 0 && ag->ag_be->be_ops->bo_domain_destroy(ag->ag_be, olddom) < 0)
		return be_fail(ag, "cannot clear the old domain of", dc.dc_uuid);
	int domid;
	if (ag->ag_be->be_ops->bo_domain_create(ag->ag_be, &dc, &domid) < 0)
		return be_fail(ag, "cannot create a domain for", dc.dc_uuid);
	if (!dc.dc_start_paused && ag->ag_be->be_ops->bo_domain_unpause(ag->ag_be, domid) < 0) {
		e = be_fail(ag, "cannot unpause the domain of", dc.dc_uuid);
		ag->ag_be->be_ops->bo_domain_destroy(ag->ag_be, domid);
		return e;
	}
	log_info("started VM %s (%s) as domain %d", dc.dc_uuid, dc.dc_name, domid);
	agent_beat_watch(ag, domid); /* its end is reported when it happens */
	*result = agent_stamp(ag, json_pack("{s:i}", "domid", domid));
	return NULL;
}

static json_t *with_domain(struct agent *ag, json_t *args, int *domid, const char **uuid)
{
	*uuid = json_string_value(json_array_get(args, 0));
	*domid = domid_of(ag, *uuid, NULL);
	return *domid < 0 ? xerr_newf(XE_INTERNAL_ERROR, "VM %s has no domain on this host", *uuid) : NULL;
}

json_t *agent_m_vm_shutdown(struct agent *ag, json_t *args, json_t **result)
{
	int domid;
	const char *uuid;
	json_t *e = with_domain(ag, args, &domid, &uuid);
	if (e)
		return e;
	bool hard = json_is_true(json_array_get(args, 1));
	int rc = hard ? ag->ag_be->be_ops->bo_domain_destroy(ag->ag_be, domid)
		      : ag->ag_be->be_ops->bo_domain_shutdown(ag->ag_be, domid, 30000);
	if (rc == 0 && !hard)
		rc = ag->ag_be->be_ops->bo_domain_destroy(ag->ag_be, domid); /* release what it held */
	if (rc < 0)
		return be_fail(ag, hard ? "cannot destroy" : "cannot shut down", uuid);
	log_info("%s VM %s (domain %d)", hard ? "destroyed" : "shut down", uuid, domid);
	*result = agent_stamp(ag, json_object());
	return NULL;
}

static json_t *pause_op(struct agent *ag, json_t *args, json_t **result, bool pause)
{
	int domid;
	const char *uuid;
	json_t *e = with_domain(ag, args, &domid, &uuid);
	if (e)
		return e;
	int rc = pause ? ag->ag_be->be_ops->bo_domain_pause(ag->ag_be, domid)
		       : ag->ag_be->be_ops->bo_domain_unpause(ag->ag_be, domid);
	if (rc < 0)
		return be_fail(ag, pause ? "cannot pause" : "cannot unpause", uuid);
	*result = agent_stamp(ag, json_object());
	return NULL;
}

json_t *agent_m_vm_pause(struct agent *ag, json_t *args, json_t **result)
{
	return pause_op(ag, args, result, true);
}

json_t *agent_m_vm_unpause(struct agent *ag, json_t *args, json_t **result)
{
	return pause_op(ag, args, result, false);
}

/* agent.vm_reboot(config, hard): the domain goes (cleanly or not) and a
 * new one boots from config, on this host. A guest that does not shut
 * down cleanly in time is refused, left running. */
json_t *agent_m_vm_reboot(struct agent *ag, json_t *args, json_t **result)
{
	struct be_domain_config dc;
	bool hard = json_is_true(json_array_get(args, 1));
	json_t *e = agent_domain_config(ag, json_array_get(args, 0), &dc);
	if (e)
		return e;
	struct be_domain_info di;
	int domid = domid_of(ag, dc.dc_uuid, &di);
	if (domid < 0 || (di.di_state != BE_STATE_RUNNING && di.di_state != BE_STATE_PAUSED))
		return xerr_newf(XE_INTERNAL_ERROR, "VM %s has no running domain on this host", dc.dc_uuid);
	int rc = hard ? 0 : ag->ag_be->be_ops->bo_domain_shutdown(ag->ag_be, domid, 30000);
	if (rc < 0)
		return be_fail(ag, "cannot shut down", dc.dc_uuid);
	if (ag->ag_be->be_ops->bo_domain_destroy(ag->ag_be, domid) < 0)
		return be_fail(ag, "cannot destroy", dc.dc_uuid);
	int nd;
	if (ag->ag_be->be_ops->bo_domain_create(ag->ag_be, &dc, &nd) < 0)
		return be_fail(ag, "rebooted but cannot create a new domain for", dc.dc_uuid);
	if (!dc.dc_start_paused && ag->ag_be->be_ops->bo_domain_unpause(ag->ag_be, nd) < 0) {
		e = be_fail(ag, "rebooted but cannot unpause the new domain of", dc.dc_uuid);
		ag->ag_be->be_ops->bo_domain_destroy(ag->ag_be, nd);
		return e;
	}
	log_info("rebooted VM %s (%s): domain %d -> %d%s", dc.dc_uuid, dc.dc_name, domid, nd, hard ? " (hard)" : "");
	agent_beat_watch(ag, nd);
	*result = agent_stamp(ag, json_pack("{s:i}", "domid", nd));
	return NULL;
}
