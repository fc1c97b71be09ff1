/*
 * xe_cmds.c - the one table of xe commands (name, required and optional
 * parameters, description, handler), dispatch with XAPI's parameter
 * checks, `xe help`, and the commands generated for every class with a
 * CLI name: <cls>-list, -param-list, -param-get, -param-set, -param-clear,
 * -param-add, -param-remove.
 */
#include <stdlib.h>
#include <string.h>
#include "xe.h"

static int gen_list(struct xe_ctx *c, const struct xe_cmd *cmd);
static int gen_param_list(struct xe_ctx *c, const struct xe_cmd *cmd);
static int gen_param_get(struct xe_ctx *c, const struct xe_cmd *cmd);
static int gen_param_set(struct xe_ctx *c, const struct xe_cmd *cmd);
static int gen_param_clear(struct xe_ctx *c, const struct xe_cmd *cmd);
static int gen_param_add(struct xe_ctx *c, const struct xe_cmd *cmd);
static int gen_param_remove(struct xe_ctx *c, const struct xe_cmd *cmd);

#define GEN(p, what) \
	{p "-list", "", "params", "Lists all the " what ", filtered by the optional arguments.", gen_list, \
	 XE_CMD_ANYPARAM}, \
	{p "-param-list", "uuid", "", "Lists all the parameters of the object specified by the uuid.", \
	 gen_param_list, 0}, \
	{p "-param-get", "uuid,param-name", "param-key", \
	 "Gets the parameter specified of the object. If the parameter is a map of key=value pairs, " \
	 "specify 'param-key=<key>' to get the value associated with a particular key.", gen_param_get, 0}, \
	{p "-param-set", "uuid", "", \
	 "Sets the parameter specified. If param-value is not given, the parameter is set to a null " \
	 "value. To set a (key,value) pair in a map parameter, use the syntax 'map-param:key=value'.", \
	 gen_param_set, XE_CMD_ANYPARAM}, \
	{p "-param-clear", "uuid,param-name", "", "Clears the specified parameter (param-name can be a map or a set).", \
	 gen_param_clear, 0}, \
	{p "-param-add", "uuid,param-name", "param-key", \
	 "Adds to a set or map parameter. For a set, give param-key=<value>; for a map, give key=value pairs.", \
	 gen_param_add, XE_CMD_ANYPARAM}, \
	{p "-param-remove", "uuid,param-name,param-key", "", \
	 "Removes a key or value from a map or set parameter.", gen_param_remove, 0}

const struct xe_cmd xe_cmds[] = {
	{"help", "", "", "Display help on a command.", xe_cmd_help, XE_CMD_NOSERVER | XE_CMD_ANYPARAM},
	GEN("vm", "VMs"),
	GEN("template", "templates"),
	GEN("snapshot", "snapshots"),
	GEN("host", "hosts"),
	GEN("sr", "SRs"),
	GEN("pbd", "PBDs"),
	GEN("vdi", "VDIs"),
	GEN("vbd", "VBDs"),
	GEN("network", "networks"),
	GEN("vif", "VIFs"),
	GEN("pif", "PIFs"),
	GEN("pool", "pools"),
	GEN("task", "tasks"),
	{"vm-install", "new-name-label", "sr-name-label,sr-uuid,template;template-uuid,template-name-label,template-name",
	 "Install a new VM from a template. The template parameter can match either the template name or "
	 "the uuid.",
	 xe_cmd_vm_install, 0},
	{"vm-uninstall", "", "uuid,vm,force",
	 "Uninstall a VM. This operation will destroy those VDIs that are marked RW and connected to this VM "
	 "only.",
	 xe_cmd_vm_uninstall, 0},
	{"vm-clone", "new-name-label", "new-name-description,uuid,vm",
	 "Clone an existing VM, using storage-level fast disk clone operation where available.",
	 xe_cmd_vm_clone, 0},
	{"vdi-create", "sr-uuid,name-label,virtual-size", "type,sharable,read-only,name-description",
	 "Create a VDI. Virtual-size accepts the suffixes KiB, MiB, GiB and TiB.", xe_cmd_vdi_create,
	 XE_CMD_ANYPARAM},
	{"vdi-destroy", "uuid", "", "Destroy a VDI.", xe_cmd_destroy, 0},
	{"vbd-create", "vm-uuid,device", "vdi-uuid,bootable,type,mode,unpluggable",
	 "Create a VBD. Appropriate values for the device field are listed in the parameter "
	 "'allowed-VBD-devices' on the VM.",
	 xe_cmd_vbd_create, 0},
	{"vbd-destroy", "uuid", "", "Destroy a VBD.", xe_cmd_destroy, 0},
	{"task-cancel", "uuid", "", "Set a task to cancelling and return.", xe_cmd_task_cancel, 0},
	{"event-wait", "class", "timeout",
	 "Wait for the event that satisfies the conditions given on the command line: field=value or "
	 "field=/=value for every condition. timeout=SECONDS gives up after that long.",
	 xe_cmd_event_wait, XE_CMD_ANYPARAM},
	/* ours: a one-time token with which a pool-agent host joins the pool */
	{"pool-join-token-create", "", "expiry",
	 "Create a one-time token with which a new host joins the pool; prints the token. expiry=SECONDS "
	 "sets how long it stays valid.",
	 xe_cmd_pool_join_token_create, 0},
	{"vm-start", "", "force,on,paused",
	 "Start the selected VM(s). Where pooling is enabled, the host on which to start can be specified "
	 "with the 'on' parameter that takes a uuid. The optional parameter '--force' will bypass any "
	 "hardware-compatibility warnings.",
	 xe_cmd_vm_power, XE_CMD_VMSEL},
	{"vm-shutdown", "", "force",
	 "Shutdown the selected VM(s). The optional argument --force will forcibly shut down the VM.",
	 xe_cmd_vm_power, XE_CMD_VMSEL},
	{"vm-pause", "", "",
	 "Pause a running VM. Note this operation does not free the associated memory (see 'vm-suspend').",
	 xe_cmd_vm_power, XE_CMD_VMSEL},
	{"vm-unpause", "", "", "Unpause a paused VM.", xe_cmd_vm_power, XE_CMD_VMSEL},
	{"vm-reboot", "", "force", "Reboot the selected VM(s).", xe_cmd_vm_reboot, XE_CMD_VMSEL},
	{"vm-suspend", "", "", "Suspend the selected VM(s).", xe_cmd_vm_suspend, XE_CMD_VMSEL},
	{"vm-resume", "", "force,on", "Resume the selected VM(s).", xe_cmd_vm_resume, XE_CMD_VMSEL},
	{"vm-snapshot", "new-name-label", "new-name-description,ignore-vdi-uuids",
	 "Snapshot an existing VM, using storage-level fast disk snapshot operation where available.",
	 xe_cmd_vm_snapshot, XE_CMD_VMSEL},
	{"vm-checkpoint", "new-name-label", "new-name-description",
	 "Checkpoint an existing VM, using storage-level fast disk snapshot operation where available.",
	 xe_cmd_vm_checkpoint, XE_CMD_VMSEL},
	{"vm-copy", "new-name-label", "new-name-description,sr-uuid",
	 "Copy an existing VM, but without using storage-level fast disk clone operation (even if this is "
	 "available). The disk images of the copied VM are guaranteed to be 'full images' - i.e. not part of a CoW "
	 "chain.",
	 xe_cmd_vm_copy, XE_CMD_VMSEL},
	{"snapshot-revert", "", "uuid,snapshot-uuid", "Revert an existing VM to a previous checkpointed or snapshotted state.",
	 xe_cmd_snapshot_revert, 0},
	{"snapshot-uninstall", "", "uuid,snapshot-uuid,force",
	 "Uninstall a snapshot. This operation will destroy those VDIs that are marked RW and connected to this "
	 "snapshot only. To simply destroy the VM record, use snapshot-destroy.",
	 xe_cmd_snapshot_uninstall, 0},
	{"snapshot-destroy", "", "uuid,snapshot-uuid",
	 "Destroy a snapshot. This leaves the storage associated with the snapshot intact. To delete storage too, "
	 "use snapshot-uninstall.",
	 xe_cmd_snapshot_destroy, 0},
	{"snapshot-clone", "new-name-label", "uuid,new-name-description",
	 "Create a new template by cloning an existing snapshot, using storage-level fast disk clone operation "
	 "where available.",
	 xe_cmd_snapshot_clone, 0},
	{"snapshot-copy", "new-name-label", "uuid,new-name-description,sr-uuid",
	 "Create a new template by copying an existing VM, but without using storage-level fast disk clone "
	 "operation (even if this is available). The disk images of the copied VM are guaranteed to be 'full "
	 "images' - i.e. not part of a CoW chain.",
	 xe_cmd_snapshot_clone, 0},
	{"vm-memory-limits-set", "static-min,static-max,dynamic-min,dynamic-max", "",
	 "Configure the memory limits of a VM.", xe_cmd_vm_memory, XE_CMD_VMSEL},
	{"vm-memory-set", "memory", "", "Configure the memory allocation of a VM.", xe_cmd_vm_memory, XE_CMD_VMSEL},
	{"vm-memory-dynamic-range-set", "min,max", "",
	 "Configure the dynamic memory range of a VM. The dynamic memory range defines soft lower and upper limits "
	 "for a VM's memory. It's possible to change these fields when a VM is running or halted. The dynamic range "
	 "must fit within the static range.",
	 xe_cmd_vm_memory, XE_CMD_VMSEL},
	{"vm-memory-static-range-set", "min,max", "",
	 "Configure the static memory range of a VM. The static memory range defines hard lower and upper limits "
	 "for a VM's memory. It's possible to change these fields only when a VM is halted. The static range must "
	 "encompass the dynamic range.",
	 xe_cmd_vm_memory, XE_CMD_VMSEL},
	{"vm-memory-target-set", "target", "",
	 "Set the memory target for a halted or running VM. The given value must be within the range defined by "
	 "the VM's memory_static_min and memory_static_max values.",
	 xe_cmd_vm_memory, XE_CMD_VMSEL},
	{"vm-vcpu-hotplug", "new-vcpus", "", "Dynamically adjust the number of VCPUs available to running VM.",
	 xe_cmd_vm_vcpu_hotplug, XE_CMD_VMSEL},
	{"vm-disk-add", "disk-size,device", "sr-uuid",
	 "Add a new disk to the selected VM(s). The device field should be selected from the field "
	 "'allowed-VBD-devices' of the VM.",
	 xe_cmd_vm_disk_add, XE_CMD_VMSEL},
	{"vm-disk-remove", "device", "", "Remove a disk from the selected VM and destroy it.", xe_cmd_vm_disk_remove,
	 XE_CMD_VMSEL},
	{"vm-disk-list", "", "vbd-params,vdi-params", "List the disks on the selected VM(s).", xe_cmd_vm_disk_list,
	 XE_CMD_VMSEL},
	{"vm-cd-add", "cd-name,device", "",
	 "Add a CD to the VM(s). The device field should be selected from the parameter 'allowed-VBD-devices' of "
	 "the VM.",
	 xe_cmd_vm_cd_add, XE_CMD_VMSEL},
	{"vm-cd-remove", "cd-name", "", "Remove the selected CDs from the VM(s).", xe_cmd_vm_cd_remove, XE_CMD_VMSEL},
	{"vm-cd-list", "", "vbd-params,vdi-params", "List the CDs currently attached to the VM(s).", xe_cmd_vm_disk_list,
	 XE_CMD_VMSEL},
	{"vm-cd-insert", "cd-name", "",
	 "Insert a CD into the virtual CD drive. This command will only work if there is one and only one empty CD "
	 "device attached to the VM. When there are two or more empty CD devices, please use the command "
	 "'vbd-insert' and specify the uuids of the VBD and of the VDI to insert.",
	 xe_cmd_vm_cd_insert, XE_CMD_VMSEL},
	{"vm-cd-eject", "", "",
	 "Eject a CD from the virtual CD drive. This command will only work if there is one and only one CD "
	 "attached to the VM. When there are two or more CDs, please use the command 'vbd-eject' and specify the "
	 "uuid of the VBD.",
	 xe_cmd_vm_cd_eject, XE_CMD_VMSEL},
	{"vm-vif-list", "", "", "List the VIFs present on selected VM.", xe_cmd_vm_vif_list, XE_CMD_VMSEL},
	{"vbd-plug", "uuid", "", "Attempt to attach the VBD while the VM is in the running state.", xe_cmd_dev_op, 0},
	{"vbd-unplug", "uuid", "timeout,force",
	 "Attempt to detach the VBD while the VM is in the running state. If the optional argument 'timeout=N' is "
	 "given then the command will wait for up to 'N' seconds for the unplug to complete. If the optional "
	 "argument 'force' is given then it will be immediately unplugged.",
	 xe_cmd_dev_op, 0},
	{"vbd-insert", "uuid,vdi-uuid", "", "Insert new media into the drive represented by a VBD.", xe_cmd_vbd_insert,
	 0},
	{"vbd-eject", "uuid", "", "Remove the media from the drive represented by a VBD.", xe_cmd_dev_op, 0},
	{"vif-create", "device,network-uuid,vm-uuid", "mac",
	 "Create a VIF. Appropriate values for the device are listed in the parameter 'allowed-VIF-devices' on the "
	 "VM. If specified, the MAC parameter is of the form aa:bb:cc:dd:ee:ff. If MAC is not specified the server "
	 "will choose an appropriate MAC automatically.",
	 xe_cmd_vif_create, 0},
	{"vif-destroy", "uuid", "", "Destroy a VIF.", xe_cmd_dev_op, 0},
	{"vif-plug", "uuid", "", "Attempt to attach the VIF while the VM is in the running state.", xe_cmd_dev_op, 0},
	{"vif-unplug", "uuid", "force", "Attempt to detach the VIF while the VM is in the running state.",
	 xe_cmd_dev_op, 0},
	{"vdi-snapshot", "uuid", "driver-params:", "Snapshot a specified VDI.", xe_cmd_vdi_copy_op, 0},
	{"vdi-clone", "uuid", "driver-params:,new-name-label,new-name-description", "Clone a specified VDI.",
	 xe_cmd_vdi_copy_op, 0},
	{"vdi-resize", "uuid,disk-size", "online", "Resize a VDI.", xe_cmd_vdi_resize, 0},
	{"vdi-copy", "uuid", "sr-uuid,base-vdi-uuid,into-vdi-uuid",
	 "Copy either a full VDI or the block differences between two VDIs either into a fresh VDI in a specified "
	 "SR or into an existing VDI.",
	 xe_cmd_vdi_copy_op, 0},
	{"network-create", "name-label", "name-description,MTU,bridge,managed", "Create a new network.",
	 xe_cmd_network_create, 0},
	{"network-destroy", "uuid", "", "Delete an existing network.", xe_cmd_dev_op, 0},
	{"host-reboot", "", "", "Reboot the XE host.", xe_cmd_host_life, XE_CMD_HOSTSEL},
	{"host-shutdown", "", "", "Shutdown the XE host.", xe_cmd_host_life, XE_CMD_HOSTSEL},
	{"host-forget", "uuid", "force",
	 "Forget about the host without contacting it explicitly. WARNING: this call is useful if the host to "
	 "'forget' is dead; however, if the host is live and part of the pool, you should consider using pool-eject "
	 "instead.",
	 xe_cmd_host_forget, 0},
	{"pool-eject", "host-uuid", "force", "Instruct host to leave an existing pool.", xe_cmd_pool_eject, 0},
	{"vm-reset-powerstate", "", "force",
	 "Force the VM powerstate to halted in the management toolstack database only. This command is used to "
	 "recover a VM that is marked as 'running', but is known to be on a dead slave host that will not recover. "
	 "This is a potentially dangerous operation: you must ensure that the VM you are forcing to 'halted' is "
	 "definitely not running anywhere.",
	 xe_cmd_vm_reset_powerstate, XE_CMD_VMSEL},
	{"sr-create", "name-label,type",
	 "name-description,host-uuid,device-config:,shared,physical-size,content-type,sm-config:",
	 "Create an SR, also a PBD. The device-config parameters can be specified by "
	 "device-config:foo=baa, for example.",
	 xe_cmd_sr_create, 0},
	{"sr-destroy", "uuid", "", "Destroy the SR.", xe_cmd_obj_op, 0},
	{"sr-forget", "uuid", "", "Forget about the SR.", xe_cmd_obj_op, 0},
	{"pbd-plug", "uuid", "",
	 "Attempt to plug in the PBD to the host. If this succeeds then the referenced SR (and the VDIs "
	 "contained within) should be visible to the host.",
	 xe_cmd_obj_op, 0},
	{"pbd-unplug", "uuid", "",
	 "Attempt to unplug the PBD from the host. If this succeeds then the referenced SR (and the VDIs "
	 "contained within) should not be visible to the host.",
	 xe_cmd_obj_op, 0},
	/* XAPI's, within the pool (remote-* is refused); network-uuid,
	 * max-downtime-ms and verify are ours */
	{"vm-migrate", "",
	 "live,host,host-uuid,compress,force,network-uuid,max-downtime-ms,verify,copy,vdi:,vif:;remote-master,"
	 "remote-username,remote-password,remote-network",
	 "Migrate the selected VM(s). The parameter '--live' will migrate the VM without shutting it down. The "
	 "'host' parameter matches can be either the name or the uuid of the host. compress=true compresses "
	 "the streams, network-uuid selects the network they use, max-downtime-ms bounds the final pause "
	 "and verify=true checks the copied memory and disks. vdi:<vdi-uuid>=<sr-uuid> moves a disk to an SR "
	 "of the destination (storage migration: VM.migrate_send), vif:<vif-uuid>=<network-uuid> puts a VIF "
	 "on another network, copy=true keeps the source disks. Migration to a remote pool (the remote-* "
	 "parameters) is not supported yet. Shows the progress on a terminal unless --minimal is given.",
	 xe_cmd_vm_migrate, XE_CMD_VMSEL},
	{"vdi-pool-migrate", "uuid,sr-uuid", "",
	 "Migrate a VDI of a running VM to another SR of the same host while the VM runs; prints the new "
	 "VDI's uuid.",
	 xe_cmd_vdi_pool_migrate, 0},
	{"host-enable", "", "", "Enable the XE host.", xe_cmd_host_power, XE_CMD_HOSTSEL},
	{"host-disable", "", "", "Disable the XE host.", xe_cmd_host_power, XE_CMD_HOSTSEL},
	/* XAPI's; dry-run=true is ours (host.compute_evacuation_plan) */
	{"host-evacuate", "", "network-uuid,batch-size,dry-run",
	 "Migrate all VMs to other hosts. batch-size is how many migrations run at once (0 or absent: "
	 "evacuation-batch-size from xapi.conf, 10 by default); network-uuid selects the network the "
	 "memory streams use. dry-run=true prints the plan (each VM, its target or why it cannot move) and "
	 "moves nothing. On a terminal each VM's progress is shown unless --minimal is given.",
	 xe_cmd_host_evacuate, XE_CMD_HOSTSEL},
	{"host-get-vms-which-prevent-evacuation", "", "",
	 "Return a list of VMs which prevent the evacuation of a specific host and display reasons for each.",
	 xe_cmd_host_prevent_evacuation, XE_CMD_HOSTSEL},
	/* HA (xe_ha.c) */
	{"pool-ha-enable", "", "heartbeat-sr-uuids,ha-config:",
	 "Enable HA on this pool. heartbeat-sr-uuids selects the SR holding the statefile (default: a shared "
	 "SR every host has plugged); ha-config:timeout=SECONDS is how long a host may be unheard before it "
	 "is counted failed (default 60).",
	 xe_cmd_pool_ha_enable, 0},
	{"pool-ha-disable", "", "", "Disable HA on this pool.", xe_cmd_pool_ha_disable, 0},
	{"pool-ha-compute-max-host-failures-to-tolerate", "", "",
	 "Compute the maximum number of host failures to tolerate under the current pool configuration.",
	 xe_cmd_pool_ha_compute_max, 0},
	{"pool-ha-compute-hypothetical-max-host-failures-to-tolerate", "", "vm-uuid,restart-priority",
	 "Compute the maximum number of host failures to tolerate with the supplied, proposed protected VMs "
	 "(vm-uuid= and restart-priority= given in pairs).",
	 xe_cmd_pool_ha_compute_hypothetical, XE_CMD_ANYPARAM},
	{"pool-ha-prevent-restarts-for", "seconds", "",
	 "Prevent HA VM restarts for a given number of seconds (0 allows them again at once).",
	 xe_cmd_pool_ha_prevent_restarts_for, 0},
	{"host-emergency-ha-disable", "", "force,soft",
	 "Disable HA on the hosts at once, without the orderly pool-ha-disable: use only when the pool cannot "
	 "disable HA normally.",
	 xe_cmd_host_emergency_ha_disable, 0},
	/* the master's role (xe_master.c) */
	{"pool-designate-new-master", "host-uuid", "",
	 "Make the host with host-uuid the pool master (HA must be off: under HA the master moves by itself "
	 "when its host dies). The pool database moves to the default SR first if it is still on this host.",
	 xe_cmd_pool_designate_new_master, 0},
	{"pool-emergency-transition-to-master", "", "",
	 "Make the host given with -s the pool master when the master is gone and HA is off (a local login "
	 "on that host; refused while the old master still holds the pool database).",
	 xe_cmd_pool_emergency_transition_to_master, XE_CMD_LOCAL},
	{"pool-emergency-reset-master", "master-address", "",
	 "Tell the host given with -s where the pool master is now (HA off; a local login on that host).",
	 xe_cmd_pool_emergency_reset_master, XE_CMD_LOCAL},
	/* ours */
	{"pool-ha-plan", "", "host-uuid",
	 "Show the failover plan: for each protected VM, where it would restart if host-uuid (or each host in "
	 "turn) failed now, or why it would not, with the memory it needs and what is left; and how many host "
	 "failures the pool tolerates.",
	 xe_cmd_pool_ha_plan, 0},
	/* ours: the rolling pool upgrade (xe_rpu.c) */
	{"pool-rolling-upgrade", "",
	 "upgrade-command,dry-run,batch-size,network-uuid,command-timeout,host-timeout",
	 "Upgrade every host, the master first, without stopping a VM: each host is disabled, evacuated, "
	 "upgraded by upgrade-command ({uuid}, {address} and {name} replaced by the host's), waited for until "
	 "it is back with the new version (host-timeout seconds, 600 by default; the command gets "
	 "command-timeout, 3600), and enabled; then the VMs go back home. HA and auto_poweron are suspended "
	 "meanwhile and restored. Without upgrade-command the run waits for each host to be upgraded by hand. "
	 "dry-run=true prints the plan and what would refuse it, and changes nothing. On a terminal each "
	 "host's phase and the ETA are shown; a report ends it.",
	 xe_cmd_pool_rolling_upgrade, 0},
};
const size_t xe_ncmds = sizeof xe_cmds / sizeof xe_cmds[0];

const struct xe_cmd *xe_cmd_find(const char *name)
{
	for (size_t i = 0; i < xe_ncmds; i++)
		if (strcmp(xe_cmds[i].name, name) == 0)
			return &xe_cmds[i];
	return NULL;
}

static bool in_list(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; p && *p;) {
		size_t len = strcspn(p, ",;");
		if (len == n && strncmp(p, word, n) == 0)
			return true;
		p += len;
		if (*p == ',' || *p == ';')
			p++;
	}
	return false;
}

/* A declared parameter ending in ':' ("device-config:") takes every
 * "device-config:KEY" (XAPI's map parameters). */
static bool in_list_prefix(const char *list, const char *word)
{
	for (const char *p = list; p && *p;) {
		size_t len = strcspn(p, ",;");
		if (len > 1 && p[len - 1] == ':' && strncmp(p, word, len) == 0 && word[len])
			return true;
		p += len;
		if (*p == ',' || *p == ';')
			p++;
	}
	return false;
}

int xe_check_params(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	char *copy = strdup(cmd->reqd), *save = NULL;
	int rc = 0;
	for (char *t = strtok_r(copy, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save))
		if (!xe_param_given(c, t))
			rc = xe_fail(c, "Required parameter not found: %s", t);
	free(copy);
	if (rc || (cmd->flags & XE_CMD_ANYPARAM))
		return rc;
	bool sel = cmd->flags & (XE_CMD_VMSEL | XE_CMD_HOSTSEL);
	for (size_t i = 0; i < c->opts->nkv; i++) {
		const struct xe_kv *kv = &c->opts->kv[i];
		const char *k = kv->key;
		if (in_list(cmd->reqd, k) || in_list(cmd->optn, k) || in_list_prefix(cmd->optn, k))
			continue;
		/* selectors: any field=value (checked against the class when
		 * selecting), and --multiple / multiple= */
		if (sel && kv->val)
			continue;
		return xe_fail(c, "Unknown parameter: %s", k);
	}
	return 0;
}

/* ---- help ---- */

/* Appended to the description of commands taking selectors (XAPI's text). */
static const char xe_vm_selectors_info[] =
	" VMs can be specified by filtering the full list of VMs on the values of zero or more fields. For "
	"example, specifying 'uuid=<some_uuid>' will select only the VM with that uuid, and "
	"'power-state=halted' will select only VMs whose 'power-state' field is equal to 'halted'. The "
	"special pseudo-field 'vm' matches either of name-label or uuid. Where multiple VMs are matching, the "
	"option '--multiple' must be specified to perform the operation. The full list of fields that can be "
	"matched can be obtained by the command 'xe vm-list params=all'. If no parameters to select VMs are "
	"given, the operation will be performed on all VMs.";
static const char xe_host_selectors_info[] =
	" Hosts can be specified by filtering the full list of hosts on the values of zero or more fields. "
	"For example, specifying 'uuid=<some_uuid>' will select only the host with that uuid, and "
	"'enabled=true' will select only hosts whose 'enabled' field is equal to 'true'. The special "
	"pseudo-field 'host' matches any of hostname, name-label or uuid. Where multiple hosts are matching, "
	"and the operation can be performed on multiple hosts, the option '--multiple' must be specified to "
	"perform the operation. The full list of fields that can be matched can be obtained by the command "
	"'xe host-list params=all'. If no parameters to select hosts are given, the operation will be "
	"performed on all hosts.";
/* optn lists end their documented part at ';' (undocumented aliases follow). */

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void print_names(struct xe_ctx *c, const char *prefix, bool with)
{
	const char **names = calloc(xe_ncmds, sizeof *names);
	size_t n = 0;
	for (size_t i = 0; names && i < xe_ncmds; i++) {
		bool match = prefix && strncmp(xe_cmds[i].name, prefix, strlen(prefix)) == 0;
		if (!prefix || match == with)
			names[n++] = xe_cmds[i].name;
	}
	qsort(names, n, sizeof *names, cmp_names);
	char *text = xe_wrap_names(names, n);
	fputs(text, c->out);
	free(text);
	free(names);
}

static void print_usage(FILE *f)
{
	fputs("Usage:\n"
	      "  xe <command>\n"
	      "    [ -s <server> ]            XenServer host\n"
	      "    [ -p <port> ]              XenServer port number\n"
	      "    [ -u <username> -pw <password> | -pwf <password file> ]\n"
	      "                               User authentication (password or file)\n"
	      "    [ --nossl ]                Disable SSL/TLS\n"
	      "    [ --debug ]                Enable debug output\n"
	      "    [ --debug-on-fail ]        Enable debug output only on failure\n"
	      "    [ --traceparent <value> ]  Distributed tracing context\n"
	      "    [ <other arguments> ... ]  Command-specific options\n"
	      "\n"
	      "To get help on a specific command:\n"
	      "  xe help <command>\n"
	      "\n"
	      "To get a full listing of commands:\n"
	      "  xe help --all\n"
	      "\n",
	      f);
}

static char *comma_space(const char *list)
{
	struct xe_buf b = {0};
	char *copy = strndup(list, strcspn(list, ";")), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (b.len)
			xe_buf_add(&b, ", ");
		xe_buf_add(&b, t);
	}
	free(copy);
	return b.s ? b.s : strdup("");
}

static int help_cmd(struct xe_ctx *c, const char *name)
{
	const struct xe_cmd *cmd = xe_cmd_find(name);
	if (!cmd)
		return xe_fail(c, "Unknown command '%s'", name);
	char *reqd = comma_space(cmd->reqd), *optn = comma_space(cmd->optn);
	struct xe_buf o = {0}, d = {0};
	xe_buf_add(&o, optn);
	xe_buf_add(&d, cmd->desc);
	if (cmd->flags & (XE_CMD_VMSEL | XE_CMD_HOSTSEL)) {
		bool vm = cmd->flags & XE_CMD_VMSEL;
		xe_buf_add(&o, *optn ? ", " : "");
		xe_buf_add(&o, vm ? "<vm-selectors>" : "<host-selectors>");
		xe_buf_add(&d, vm ? xe_vm_selectors_info : xe_host_selectors_info);
	}
	const char *labels[] = {"command name        ", "reqd params     ", "optional params ", "description     "};
	const char *values[] = {cmd->name, reqd, o.s, d.s};
	xe_print_record(c->out, labels, values, 4);
	free(reqd);
	free(optn);
	free(o.s);
	free(d.s);
	return 0;
}

int xe_cmd_help(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	for (size_t i = 0; i < c->opts->nkv; i++)
		if (!c->opts->kv[i].val)
			return help_cmd(c, c->opts->kv[i].key);
	if (c->opts->minimal) {
		const char **names = calloc(xe_ncmds, sizeof *names);
		for (size_t i = 0; names && i < xe_ncmds; i++)
			names[i] = xe_cmds[i].name;
		qsort(names, xe_ncmds, sizeof *names, cmp_names);
		xe_print_minimal(c->out, names, names ? xe_ncmds : 0);
		free(names);
		return 0;
	}
	if (c->opts->help_all) {
		fputs("Full command list\n-----------------\n", c->out);
		print_names(c, "host-", true);
		fputc('\n', c->out);
		print_names(c, "vm-", true);
		fputc('\n', c->out);
		const char **names = calloc(xe_ncmds, sizeof *names);
		size_t n = 0;
		for (size_t i = 0; names && i < xe_ncmds; i++)
			if (strncmp(xe_cmds[i].name, "host-", 5) && strncmp(xe_cmds[i].name, "vm-", 3))
				names[n++] = xe_cmds[i].name;
		qsort(names, n, sizeof *names, cmp_names);
		char *text = xe_wrap_names(names, n);
		fputs(text, c->out);
		free(text);
		free(names);
		return 0;
	}
	print_usage(c->out);
	fputs("Common command list\n-------------------\n", c->out);
	print_names(c, NULL, true);
	return 0;
}

/* ---- generic per-class commands ---- */

/* The CLI class of a generated command: its name up to the suffix. */
static int cmd_class(const struct xe_cmd *cmd, struct xe_cls *x)
{
	static const char *const suffixes[] = {"-param-remove", "-param-clear", "-param-list", "-param-get",
					       "-param-set", "-param-add", "-list"};
	size_t n = strlen(cmd->name);
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		size_t sl = strlen(suffixes[i]);
		if (n > sl && strcmp(cmd->name + n - sl, suffixes[i]) == 0) {
			char cls[64];
			snprintf(cls, sizeof cls, "%.*s", (int)(n - sl), cmd->name);
			return xe_cls_build(cls, x);
		}
	}
	return -1;
}

static bool passes(struct xe_ctx *c, const struct xe_cls *x, const json_t *rec)
{
	bool ok = true;
	if (x->filter) {
		char *copy = strdup(x->filter), *save = NULL;
		for (char *t = strtok_r(copy, ",", &save); t && ok; t = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(t, '=');
			*eq = '\0';
			ok = xe_match(c, x, rec, t, eq + 1, false);
		}
		free(copy);
	}
	for (size_t i = 0; ok && i < c->opts->nkv; i++) {
		const struct xe_kv *kv = &c->opts->kv[i];
		if (kv->val && strcmp(kv->key, "params") != 0)
			ok = xe_match(c, x, rec, kv->key, kv->val, false);
	}
	return ok;
}

static int gen_list(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	struct xe_cls x;
	if (cmd_class(cmd, &x))
		return xe_fail(c, "internal error: no class for %s", cmd->name);
	for (size_t i = 0; i < c->opts->nkv; i++) {
		const struct xe_kv *kv = &c->opts->kv[i];
		if (kv->val && strcmp(kv->key, "params") && xe_filter_check(c, &x, kv->key)) {
			xe_cls_free(&x);
			return -1;
		}
	}
	char method[96];
	snprintf(method, sizeof method, "%s.get_all_records", x.mc->mc_name);
	json_t *all = xe_rpc(c, method, "");
	if (!all) {
		xe_cls_free(&x);
		return -1;
	}
	json_t *keep = json_object();
	const char *ref;
	json_t *rec;
	json_object_foreach(all, ref, rec) if (passes(c, &x, rec)) json_object_set(keep, ref, rec);
	xe_print_records(c, &x, keep, xe_param(c, "params"));
	json_decref(keep);
	json_decref(all);
	xe_cls_free(&x);
	return 0;
}

/* Class view, ref and record of uuid=; 0 or -1. */
static int load_obj(struct xe_ctx *c, const struct xe_cmd *cmd, struct xe_cls *x, char **ref, json_t **rec)
{
	*ref = NULL;
	*rec = NULL;
	if (cmd_class(cmd, x))
		return xe_fail(c, "internal error: no class for %s", cmd->name);
	*ref = xe_ref_by_uuid(c, x->mc->mc_name, xe_param(c, "uuid"));
	if (*ref) {
		char method[96];
		snprintf(method, sizeof method, "%s.get_record", x->mc->mc_name);
		*rec = xe_rpc(c, method, "s", *ref);
	}
	if (*rec)
		return 0;
	free(*ref);
	*ref = NULL;
	xe_cls_free(x);
	return -1;
}

static void unload_obj(struct xe_cls *x, char *ref, json_t *rec)
{
	xe_cls_free(x);
	free(ref);
	json_decref(rec);
}

static int gen_param_list(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	struct xe_cls x;
	char *ref;
	json_t *rec;
	if (load_obj(c, cmd, &x, &ref, &rec))
		return -1;
	json_t *one = json_pack("{s:O}", ref, rec);
	xe_print_records(c, &x, one, "all");
	json_decref(one);
	unload_obj(&x, ref, rec);
	return 0;
}

/* The field named by param-name, NULL + error when unknown. */
static const struct xe_fdef *param_field(struct xe_ctx *c, const struct xe_cls *x, const char *name)
{
	const struct xe_fdef *d = xe_fdef_find(x, name);
	if (!d)
		xe_fail(c, "Unknown field '%s'", name);
	return d;
}

static int gen_param_get(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	struct xe_cls x;
	char *ref;
	json_t *rec;
	if (load_obj(c, cmd, &x, &ref, &rec))
		return -1;
	const struct xe_fdef *d = param_field(c, &x, xe_param(c, "param-name"));
	const char *key = xe_param(c, "param-key");
	int rc = d ? 0 : -1;
	if (d && key) {
		json_t *m = json_object_get(rec, d->mf->fld_name);
		json_t *v = json_is_object(m) && d->src == XS_FIELD ? json_object_get(m, key) : NULL;
		if (!v)
			rc = xe_fail(c, "Key %s not found in map", key);
		else
			fprintf(c->out, "%s\n", json_is_string(v) ? json_string_value(v) : "");
	} else if (d) {
		char *s = xe_fvalue(c, d, rec);
		fprintf(c->out, "%s\n", s);
		free(s);
	}
	unload_obj(&x, ref, rec);
	return rc;
}

/* A settable field of the class by CLI name (own field, RW). */
static const struct xe_fdef *rw_field(struct xe_ctx *c, const struct xe_cls *x, const char *name)
{
	const struct xe_fdef *d = param_field(c, x, name);
	if (d && (d->src != XS_FIELD || d->mf->fld_qual != QUAL_RW)) {
		xe_fail(c, "Error: field '%s' is read-only", name);
		return NULL;
	}
	return d;
}

static int call_void(struct xe_ctx *c, const char *cls, const char *op, const char *field, const char *ref,
		     json_t *a, json_t *b)
{
	char method[160];
	snprintf(method, sizeof method, "%s.%s%s", cls, op, field);
	json_t *p = json_pack("[s, s]", c->session, ref);
	if (a)
		json_array_append_new(p, a);
	if (b)
		json_array_append_new(p, b);
	json_t *r = xe_call(c, method, p);
	json_decref(r);
	return r ? 0 : -1;
}

static int set_map_key(struct xe_ctx *c, const struct xe_cls *x, const char *ref, const struct xe_kv *kv)
{
	const char *colon = strchr(kv->key, ':');
	char *name = strndup(kv->key, (size_t)(colon - kv->key));
	const struct xe_fdef *d = rw_field(c, x, name);
	free(name);
	if (!d)
		return -1;
	if (d->mf->fld_type != FT_MAP && d->mf->fld_type != FT_MAP_ANY)
		return xe_fail(c, "Error: field '%s' is not a map", d->cli);
	const char *f = d->mf->fld_name, *cls = x->mc->mc_name;
	/* XAPI's param-set on a key: remove the old value first */
	json_t *save = c->xerr;
	c->xerr = NULL;
	call_void(c, cls, "remove_from_", f, ref, json_string(colon + 1), NULL);
	json_decref(c->xerr);
	c->xerr = save;
	return call_void(c, cls, "add_to_", f, ref, json_string(colon + 1), json_string(kv->val));
}

static int gen_param_set(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	struct xe_cls x;
	char *ref;
	json_t *rec;
	if (load_obj(c, cmd, &x, &ref, &rec))
		return -1;
	int rc = 0;
	for (size_t i = 0; !rc && i < c->opts->nkv; i++) {
		struct xe_kv *kv = &c->opts->kv[i];
		if (kv->used || !kv->val)
			continue;
		if (strchr(kv->key, ':')) {
			rc = set_map_key(c, &x, ref, kv);
			continue;
		}
		const struct xe_fdef *d = rw_field(c, &x, kv->key);
		json_t *v = d ? xe_parse_value(c, x.mc->mc_name, d->mf, kv->val) : NULL;
		rc = v ? call_void(c, x.mc->mc_name, "set_", d->mf->fld_name, ref, v, NULL) : -1;
	}
	unload_obj(&x, ref, rec);
	return rc;
}

static int gen_param_clear(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	struct xe_cls x;
	char *ref;
	json_t *rec;
	if (load_obj(c, cmd, &x, &ref, &rec))
		return -1;
	const struct xe_fdef *d = rw_field(c, &x, xe_param(c, "param-name"));
	int rc = -1;
	if (d) {
		enum fld_type t = d->mf->fld_type;
		json_t *empty = (t == FT_MAP || t == FT_MAP_ANY) ? json_object()
				: (t == FT_SET_STRING || t == FT_SET_REF) ? json_array()
				: t == FT_STRING ? json_string("") : NULL;
		rc = empty ? call_void(c, x.mc->mc_name, "set_", d->mf->fld_name, ref, empty, NULL)
			   : xe_fail(c, "Error: field '%s' cannot be cleared", d->cli);
	}
	unload_obj(&x, ref, rec);
	return rc;
}

static int add_remove(struct xe_ctx *c, const struct xe_cmd *cmd, bool add)
{
	struct xe_cls x;
	char *ref;
	json_t *rec;
	if (load_obj(c, cmd, &x, &ref, &rec))
		return -1;
	const struct xe_fdef *d = rw_field(c, &x, xe_param(c, "param-name"));
	const char *key = xe_param(c, "param-key");
	const char *cls = x.mc->mc_name;
	int rc = d ? 0 : -1;
	bool map = d && (d->mf->fld_type == FT_MAP || d->mf->fld_type == FT_MAP_ANY);
	if (d && !map && d->mf->fld_type != FT_SET_STRING)
		rc = xe_fail(c, "Error: field '%s' is not a map or a set", d->cli);
	else if (d && !map)
		rc = key ? call_void(c, cls, add ? "add_" : "remove_", d->mf->fld_name, ref, json_string(key), NULL)
			 : xe_fail(c, "Required parameter not found: param-key");
	else if (d && !add)
		rc = call_void(c, cls, "remove_from_", d->mf->fld_name, ref, json_string(key), NULL);
	for (size_t i = 0; map && add && !rc && i < c->opts->nkv; i++) {
		struct xe_kv *kv = &c->opts->kv[i];
		if (!kv->used && kv->val)
			rc = call_void(c, cls, "add_to_", d->mf->fld_name, ref, json_string(kv->key),
				       json_string(kv->val));
	}
	unload_obj(&x, ref, rec);
	return rc;
}

static int gen_param_add(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	return add_remove(c, cmd, true);
}

static int gen_param_remove(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	return add_remove(c, cmd, false);
}

/* ---- dispatch ---- */

int xe_run(struct xe_ctx *c)
{
	const char *name = c->opts->cmd ? c->opts->cmd : "help";
	const struct xe_cmd *cmd = xe_cmd_find(name);
	if (!cmd) {
		xe_fail(c, "Unknown command: %s\nFor usage run: 'xe help'", name);
		return 1;
	}
	if (xe_check_params(c, cmd))
		return 1;
	if (cmd->flags & XE_CMD_NOSERVER)
		return cmd->fn(c, cmd) ? 1 : 0;
	if (xe_connect(c) || xe_login(c, cmd->flags & XE_CMD_LOCAL))
		return 1;
	int rc = cmd->fn(c, cmd);
	if (rc)
		xe_error_resolve(c); /* while the session is valid */
	xe_logout(c);
	return rc ? 1 : 0;
}
