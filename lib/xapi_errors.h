/*
 * xapi_errors.h - the XAPI error codes this project returns, declared once.
 *
 * Each entry: X(CODE, "comma separated parameter names", "description").
 * The names are documentation and the count of them is enforced by
 * xerr_new(): an error raised with the wrong number of parameters is a
 * programming bug and is caught in debug builds and tests. The description
 * is XAPI's own sentence for the error (datamodel_errors.ml's err_doc;
 * "" where XAPI has none): xe prints it before the parameters, as real xe
 * does. Everything else (the enum, the code strings, the tables `xe` and
 * the tests use) is generated from this list.
 */
#ifndef XAPI_ERRORS_H
#define XAPI_ERRORS_H

#define XAPI_ERROR_LIST(X) \
	X(INTERNAL_ERROR, "message", \
	  "The server failed to handle your request, due to an internal error. The given message may give details useful for debugging the problem.") \
	X(SESSION_AUTHENTICATION_FAILED, "username,message", \
	  "The credentials given by the user are incorrect, so access has been denied, and you have not been issued a session handle.") \
	X(SESSION_INVALID, "handle", \
	  "You gave an invalid session reference. It may have been invalidated by a server restart, or timed out. You should get a new session handle, using one of the session.login_ calls. This error does not invalidate the current connection. The handle parameter echoes the bad value given.") \
	X(HOST_IS_SLAVE, "master_address", \
	  "You cannot make regular API calls directly on a supporter. Please pass API calls via the coordinator host.") \
	X(HANDLE_INVALID, "class,handle", \
	  "You gave an invalid object reference. The object may have recently been deleted. The class parameter gives the type of reference given, and the handle parameter echoes the bad value given.") \
	X(UUID_INVALID, "type,uuid", \
	  "The uuid you supplied was invalid.") \
	X(MESSAGE_METHOD_UNKNOWN, "method", \
	  "You tried to call a method that does not exist. The method name that you used is echoed.") \
	X(MESSAGE_PARAMETER_COUNT_MISMATCH, "method,expected,received", \
	  "You tried to call a method with the incorrect number of parameters. The fully-qualified method name that you used, and the number of received and expected parameters are returned.") \
	X(FIELD_TYPE_ERROR, "field", \
	  "The value specified is of the wrong type") \
	X(INVALID_VALUE, "field,value", \
	  "The value given is invalid") \
	X(MAP_DUPLICATE_KEY, "type,param_name,uuid,key", \
	  "You tried to add a key-value pair to a map, but that key is already there.") \
	X(VALUE_NOT_SUPPORTED, "field,value,reason", \
	  "You attempted to set a value that is not supported by this implementation. The fully-qualified field name and the value that you tried to set are returned. Also returned is a developer-only diagnostic reason.") \
	X(OPERATION_NOT_ALLOWED, "reason", \
	  "You attempted an operation that was not allowed.") \
	X(OTHER_OPERATION_IN_PROGRESS, "class,object", \
	  "Another operation involving the object is currently in progress") \
	X(NOT_IMPLEMENTED, "function", \
	  "The function is not implemented") \
	X(PERMISSION_DENIED, "message", \
	  "Caller not allowed to perform this operation.") \
	X(EVENT_FROM_TOKEN_PARSE_FAILURE, "token", \
	  "The event.from token could not be parsed. Valid values include: '', and a value returned from a previous event.from call.") \
	X(EVENTS_LOST, "", \
	  "Some events have been lost from the queue and cannot be retrieved.") \
	X(TASK_CANCELLED, "task", \
	  "The request was asynchronously canceled.") \
	X(VM_BAD_POWER_STATE, "vm,expected,actual", \
	  "You attempted an operation on a VM that was not in an appropriate power state at the time; for example, you attempted to start a VM that was already running. The parameters returned are the VM's handle, and the expected and actual VM state at the time of the call.") \
	X(VM_IS_TEMPLATE, "vm", \
	  "The operation attempted is not valid for a template VM") \
	X(VM_CANNOT_DELETE_DEFAULT_TEMPLATE, "vm", \
	  "You cannot delete the specified default template.") \
	X(VM_INCOMPATIBLE_WITH_THIS_HOST, "vm,host,reason", \
	  "The VM is incompatible with the CPU features of this host.") \
	X(VM_REQUIRES_SR, "vm,sr", \
	  "You attempted to run a VM on a host which doesn't have access to an SR needed by the VM. The VM has at least one VBD attached to a VDI in the SR.") \
	X(VM_REQUIRES_NETWORK, "vm,network", \
	  "You attempted to run a VM on a host which doesn't have a PIF on a Network needed by the VM. The VM has at least one VIF attached to the Network.") \
	X(VM_IS_IMMOBILE, "vm", \
	  "The VM is configured in a way that prevents it from being mobile.") \
	X(VM_HAS_PCI_ATTACHED, "vm", \
	  "This operation could not be performed, because the VM has one or more PCI devices passed through.") \
	X(VM_HAS_VUSBS, "vm", \
	  "The operation is not allowed when the VM has VUSBs.") \
	X(VM_MIGRATE_FAILED, "vm,source,destination,msg", \
	  "An error occurred during the migration process.") \
	X(VM_HOST_INCOMPATIBLE_VERSION_MIGRATE, "host,vm", \
	  "Cannot migrate a VM to a destination host which is older than the source host.") \
	/* rolling pool upgrade: XAPI declares NOT_SUPPORTED_DURING_UPGRADE []; \
	 * ours names the operation and why */ \
	X(NOT_SUPPORTED_DURING_UPGRADE, "operation,reason", \
	  "This operation is not supported during an upgrade.") \
	X(HOST_XAPI_VERSION_HIGHER_THAN_COORDINATOR, "host_xapi_version", \
	  "The host xapi version is higher than the one in the coordinator") \
	X(VM_HOST_INCOMPATIBLE_VIRTUAL_HARDWARE_PLATFORM_VERSION, "host,host_versions,vm,vm_version", \
	  "You attempted to run a VM on a host that cannot provide the VM's required Virtual Hardware Platform version.") \
	/* ours: the run stopped (the task holds the report) */ \
	X(ROLLING_UPGRADE_FAILED, "host,reason", \
	  "") \
	X(HOST_NOT_ENOUGH_FREE_MEMORY, "needed,available", \
	  "Not enough server memory is available to perform this operation.") \
	X(HOST_DISABLED, "host", \
	  "The specified server is disabled.") \
	X(HOST_NOT_LIVE, "", \
	  "This operation cannot be completed as the server is not live.") \
	X(HOST_OFFLINE, "host", \
	  "You attempted an operation which involves a host which could not be contacted.") \
	X(HOST_HAS_RESIDENT_VMS, "host", \
	  "This server cannot be forgotten because there are user VMs still running.") \
	X(NO_HOSTS_AVAILABLE, "", \
	  "There were no servers available to complete the specified operation.") \
	X(HOSTS_NOT_HOMOGENEOUS, "reason", \
	  "The hosts in this pool are not homogeneous.") \
	X(CANNOT_EVACUATE_HOST, "errors", \
	  "This server cannot be evacuated.") \
	X(HOST_EVACUATE_IN_PROGRESS, "host", \
	  "This host is being evacuated.") \
	X(SR_FULL, "requested,maximum,sr", \
	  "The SR is full. Requested new size exceeds the maximum size") \
	X(SR_HAS_NO_PBDS, "sr", \
	  "The SR has no attached PBDs") \
	X(SR_HAS_PBD, "sr", \
	  "The SR is still connected to a host via a PBD. It cannot be destroyed or forgotten.") \
	X(SR_NO_PBDS, "sr", \
	  "") \
	X(SR_UNKNOWN_DRIVER, "driver", \
	  "The SR could not be connected because the driver was not recognised.") \
	X(SR_BACKEND_FAILURE, "operation,reason", \
	  "There was an SR backend failure.") \
	X(SR_NOT_EMPTY, "", \
	  "The SR operation cannot be performed because the SR is not empty.") \
	X(VDI_IN_USE, "vdi,operation", \
	  "This operation cannot be performed because this VDI is in use by some other operation") \
	X(VDI_READ_ONLY, "vdi", \
	  "") \
	X(DEVICE_ALREADY_EXISTS, "device", \
	  "A device with the name given already exists on the selected VM") \
	X(VBD_NOT_EMPTY, "vbd", \
	  "Operation could not be performed because the drive is not empty") \
	X(VBD_IS_EMPTY, "vbd", \
	  "Operation could not be performed because the drive is empty") \
	X(MEMORY_CONSTRAINT_VIOLATION, "constraint", \
	  "The dynamic memory range does not satisfy the following constraint.") \
	X(VCPU_CONSTRAINT_VIOLATION, "constraint", \
	  "") \
	X(VM_IS_SNAPSHOT, "vm,operation", \
	  "") \
	X(PROVISION_ONLY_ALLOWED_ON_TEMPLATE, "", \
	  "The provision call can only be invoked on templates, not regular VMs.") \
	X(REVERT_ONLY_ALLOWED_ON_SNAPSHOT, "", \
	  "") \
	X(HOST_IS_LIVE, "host", \
	  "This operation cannot be completed because the server is still live.") \
	X(CANNOT_RESET_CONTROL_DOMAIN, "vm", \
	  "The power-state of a control domain cannot be reset.") \
	X(HOST_NOT_DISABLED, "", \
	  "This operation cannot be performed because the host is not disabled. Please disable the host and then try again.") \
	X(HOST_IN_USE, "host,type,ref", \
	  "This operation cannot be completed as the host is in use by (at least) the object of type and ref echoed below.") \
	X(HOST_CANNOT_DESTROY_SELF, "host", \
	  "The pool coordinator host cannot be removed.") \
	X(VM_REVERT_FAILED, "vm,snapshot", \
	  "An error occured while reverting the specified virtual machine to the specified snapshot") \
	X(VM_CHECKPOINT_SUSPEND_FAILED, "vm", \
	  "An error occured while saving the memory image of the specified virtual machine") \
	X(VM_CHECKPOINT_RESUME_FAILED, "vm", \
	  "An error occured while restoring the memory image of the specified virtual machine") \
	X(VM_NO_SUSPEND_SR, "vm", \
	  "This VM does not have a suspend SR specified.") \
	X(VM_HAS_NO_SUSPEND_VDI, "vm", \
	  "VM cannot be resumed because it has no suspend VDI") \
	X(DOMAIN_EXISTS, "vm,domid", \
	  "The operation could not be performed because a domain still exists for the specified VM.") \
	X(DEVICE_ALREADY_ATTACHED, "device", \
	  "The device is already attached to a VM") \
	X(DEVICE_ALREADY_DETACHED, "device", \
	  "The device is not currently attached") \
	X(VBD_NOT_REMOVABLE_MEDIA, "vbd", \
	  "Media could not be ejected because it is not removable") \
	X(VBD_NOT_UNPLUGGABLE, "vbd", \
	  "Drive could not be hot-unplugged because it is not marked as unpluggable") \
	X(VBD_CDS_MUST_BE_READONLY, "", \
	  "Read/write CDs are not supported") \
	X(NETWORK_CONTAINS_PIF, "pifs", \
	  "The network contains active PIFs and cannot be deleted.") \
	X(NETWORK_CONTAINS_VIF, "vifs", \
	  "The network contains active VIFs and cannot be deleted.") \
	X(VM_NO_EMPTY_CD_VBD, "vm", \
	  "The VM has no empty CD drive (VBD).") \
	X(VDI_IS_NOT_ISO, "vdi,type", \
	  "This operation can only be performed on CD VDIs (iso files or CDROM drives)") \
	X(XMLRPC_UNMARSHAL_FAILURE, "expected,received", \
	  "The server failed to unmarshal the XMLRPC message.") \
	X(HA_IS_ENABLED, "", \
	  "The operation could not be performed because HA is enabled on the Pool") \
	X(HA_NOT_ENABLED, "", \
	  "The operation could not be performed because HA is not enabled on the Pool") \
	X(HA_ENABLE_IN_PROGRESS, "", \
	  "The operation could not be performed because HA enable is in progress") \
	X(HA_DISABLE_IN_PROGRESS, "", \
	  "The operation could not be performed because HA disable is in progress") \
	X(HA_TOO_FEW_HOSTS, "", \
	  "HA can only be enabled for 2 hosts or more. Note that 2 hosts requires a pre-configured quorum tiebreak script.") \
	X(HA_NO_PLAN, "", \
	  "Cannot find a plan for placement of VMs as there are no other hosts available.") \
	X(HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN, "", \
	  "This operation cannot be performed because it would invalidate VM failover planning such that the system would be unable to guarantee to restart protected VMs after a Host failure.") \
	X(HA_FAILED_TO_FORM_LIVESET, "", \
	  "HA could not be enabled on the Pool because a liveset could not be formed: check storage and network heartbeat paths.") \
	X(HA_HOST_CANNOT_ACCESS_STATEFILE, "", \
	  "The host could not join the liveset because the HA daemon could not access the heartbeat disk.") \
	X(HA_SHOULD_BE_FENCED, "host", \
	  "Host cannot rejoin pool because it should have fenced (it is not in the master's partition)") \
	X(CANNOT_CREATE_STATE_FILE, "", \
	  "An HA statefile could not be created, perhaps because no SR with the appropriate capability was found.") \
	X(HOST_EVACUATE_VM_NOT_HA_PROTECTED, "vm", \
	  "") \
	X(VDI_NOT_IN_MAP, "vdi", \
	  "This VDI was not mapped to a destination SR in VM.migrate_send operation") \
	X(VIF_NOT_IN_MAP, "vif", \
	  "This VIF was not mapped to a destination Network in VM.migrate_send operation") \
	X(SR_DOES_NOT_SUPPORT_MIGRATION, "sr,capabilities", \
	  "You attempted to migrate a VDI to or from an SR which doesn't support migration") \
	X(VDI_CBT_ENABLED, "vdi", \
	  "The requested operation is not allowed for VDIs with CBT enabled or VMs having such VDIs, and CBT is enabled for the specified VDI.") \
	X(VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION, "vdi", \
	  "This operation is not permitted on VDIs in the 'on-boot=reset' mode, or on VMs having such VDIs.") \
	X(SR_SOURCE_SPACE_INSUFFICIENT, "sr,needed,available", \
	  "The source SR does not have sufficient temporary space available to proceed the operation.") \
	X(TOO_MANY_STORAGE_MIGRATES, "number", \
	  "You reached the maximal number of concurrently migrating VMs.") \
	X(MIRROR_FAILED, "vdi", \
	  "The VDI mirroring cannot be performed") \
	X(VDI_NEEDS_VM_FOR_MIGRATE, "vdi", \
	  "You attempted to migrate a VDI which is not attached to a running VM.") \
	X(HOST_CANNOT_ATTACH_NETWORK, "host,network", \
	  "Host cannot attach network (in the case of NIC bonding, this may be because attaching the network on this host would require other networks - that are currently active - to be taken down).") \
	X(CANNOT_CONTACT_HOST, "host", \
	  "Cannot forward messages because the server cannot be contacted. The server may be switched off or there may be network connectivity problems.")

enum xapi_err {
#define XAPI_ERR_ENUM(code, params, doc) XE_##code,
	XAPI_ERROR_LIST(XAPI_ERR_ENUM)
#undef XAPI_ERR_ENUM
	XE__COUNT
};

#endif
