/*
 * domain_live.c - changes to a running domain without stopping it:
 * agent.vm_set_memory (the balloon target), agent.vm_set_vcpus,
 * agent.vbd_plug / vbd_unplug (a disk hot-added or removed: the sim
 * guest's disk writer follows) and agent.vif_plug / vif_unplug.
 *
 * Each answers with what the domain holds afterwards, as the backend
 * reports it, so poold records the real figure.
 */
#include <stdio.h>
#include <string.h>
#include "agent.h"
#include "log.h"
#include "xerr.h"

static json_t *running(struct agent *ag, json_t *args, int *domid, struct be_domain_info *di)
{
	const char *uuid = json_string_value(json_array_get(args, 0));
	*domid = domid_of(ag, uuid ? uuid : "", di);
	if (*domid < 0 || (di->di_state != BE_STATE_RUNNING && di->di_state != BE_STATE_PAUSED))
		return xerr_newf(XE_INTERNAL_ERROR, "VM %s has no running domain on this host", uuid ? uuid : "");
	return NULL;
}

static json_t *be_fail(struct agent *ag, const char *what, const char *uuid)
{
	return xerr_newf(XE_INTERNAL_ERROR, "%s %s: %s", what, uuid, backend_error(ag->ag_be));
}

/* What the domain holds now: {memory_actual, vcpus}. */
static json_t *holds(struct agent *ag, int domid)
{
	struct be_domain_info di;
	if (ag->ag_be->be_ops->bo_domain_info(ag->ag_be, domid, &di) < 0)
		return json_object();
	return json_pack("{s:I, s:I, s:i}", "memory_actual", (json_int_t)di.di_memory, "memory_target",
			 (json_int_t)di.di_memory_target, "vcpus", di.di_vcpus);
}

/* agent.vm_set_memory(vm, target): the guest gives memory back or takes
 * more, within its static size. */
json_t *agent_m_vm_set_memory(struct agent *ag, json_t *args, json_t **result)
{
	int domid;
	struct be_domain_info di;
	json_t *e = running(ag, args, &domid, &di);
	json_int_t target = json_integer_value(json_array_get(args, 1));
	if (e)
		return e;
	if (target <= 0 || ag->ag_be->be_ops->bo_set_memory_target(ag->ag_be, domid, (uint64_t)target) < 0)
		return be_fail(ag, "cannot set the memory target of", di.di_uuid);
	log_info("VM %s: memory target %lld MiB", di.di_uuid, (long long)target >> 20);
	*result = holds(ag, domid);
	return NULL;
}

/* agent.vm_set_vcpus(vm, n): vCPUs online. */
json_t *agent_m_vm_set_vcpus(struct agent *ag, json_t *args, json_t **result)
{
	int domid;
	struct be_domain_info di;
	json_t *e = running(ag, args, &domid, &di);
	json_int_t n = json_integer_value(json_array_get(args, 1));
	if (e)
		return e;
	if (n < 1 || n > 1024 || ag->ag_be->be_ops->bo_set_vcpus(ag->ag_be, domid, (int)n) < 0)
		return be_fail(ag, "cannot set the vCPUs of", di.di_uuid);
	log_info("VM %s: %lld vCPUs online", di.di_uuid, (long long)n);
	*result = holds(ag, domid);
	return NULL;
}

/* agent.vbd_plug(vm, {sr, vdi, device, readonly}): the disk is found in an
 * SR plugged here, then added to the running domain. */
json_t *agent_m_vbd_plug(struct agent *ag, json_t *args, json_t **result)
{
	int domid;
	struct be_domain_info di;
	json_t *e = running(ag, args, &domid, &di), *d = json_array_get(args, 1);
	if (e)
		return e;
	struct be_disk disk = {0};
	const char *sr = json_string_value(json_object_get(d, "sr")), *vdi = json_string_value(json_object_get(d, "vdi")),
		   *dev = json_string_value(json_object_get(d, "device"));
	if (!sr || !vdi || !dev || strlen(sr) >= sizeof disk.bd_sr_uuid || strlen(vdi) >= sizeof disk.bd_vdi_uuid ||
	    strlen(dev) >= sizeof disk.bd_device || !*dev)
		return xerr_new(XE_INVALID_VALUE, "disk", "needs sr, vdi and device", NULL);
	snprintf(disk.bd_sr_uuid, sizeof disk.bd_sr_uuid, "%s", sr);
	snprintf(disk.bd_vdi_uuid, sizeof disk.bd_vdi_uuid, "%s", vdi);
	snprintf(disk.bd_device, sizeof disk.bd_device, "%s", dev);
	disk.bd_readonly = json_is_true(json_object_get(d, "readonly"));
	if ((e = agent_disk_locate(ag, &disk)))
		return e;
	if (ag->ag_be->be_ops->bo_disk_add(ag->ag_be, domid, &disk) < 0)
		return be_fail(ag, "cannot plug a disk into", di.di_uuid);
	log_info("VM %s: disk %s plugged as device %s", di.di_uuid, vdi, dev);
	*result = json_object();
	return NULL;
}

/* agent.vbd_unplug(vm, device) */
json_t *agent_m_vbd_unplug(struct agent *ag, json_t *args, json_t **result)
{
	int domid;
	struct be_domain_info di;
	json_t *e = running(ag, args, &domid, &di);
	const char *dev = json_string_value(json_array_get(args, 1));
	if (e)
		return e;
	if (ag->ag_be->be_ops->bo_disk_remove(ag->ag_be, domid, dev ? dev : "") < 0)
		return be_fail(ag, "cannot unplug a disk from", di.di_uuid);
	log_info("VM %s: disk on device %s unplugged", di.di_uuid, dev);
	*result = json_object();
	return NULL;
}

/* agent.vif_plug / vif_unplug(vm, device): the backends model no network
 * device yet; the domain must be there, and the change is logged. */
static json_t *vif_op(struct agent *ag, json_t *args, json_t **result, const char *what)
{
	int domid;
	struct be_domain_info di;
	json_t *e = running(ag, args, &domid, &di);
	if (e)
		return e;
	log_info("VM %s: network device %s %s", di.di_uuid, json_string_value(json_array_get(args, 1)), what);
	*result = json_object();
	return NULL;
}

json_t *agent_m_vif_plug(struct agent *ag, json_t *args, json_t **result)
{
	return vif_op(ag, args, result, "plugged");
}

json_t *agent_m_vif_unplug(struct agent *ag, json_t *args, json_t **result)
{
	return vif_op(ag, args, result, "unplugged");
}
