/*
 * xapi_errors.h - the XAPI error codes this project returns, declared once.
 *
 * Each entry: X(CODE, "comma separated parameter names"). The names are
 * documentation and the count of them is enforced by xerr_new(): an error
 * raised with the wrong number of parameters is a programming bug and is
 * caught in debug builds and tests. Everything else (the enum, the code
 * strings, the tables `xe` and the tests use) is generated from this list.
 */
#ifndef XAPI_ERRORS_H
#define XAPI_ERRORS_H

#define XAPI_ERROR_LIST(X) \
	X(INTERNAL_ERROR, "message") \
	X(SESSION_AUTHENTICATION_FAILED, "username,message") \
	X(SESSION_INVALID, "handle") \
	X(HOST_IS_SLAVE, "master_address") \
	X(HANDLE_INVALID, "class,handle") \
	X(UUID_INVALID, "class,uuid") \
	X(MESSAGE_METHOD_UNKNOWN, "method") \
	X(MESSAGE_PARAMETER_COUNT_MISMATCH, "method,expected,received") \
	X(FIELD_TYPE_ERROR, "field") \
	X(INVALID_VALUE, "field,value") \
	X(MAP_DUPLICATE_KEY, "type,param_name,ref,key") \
	X(VALUE_NOT_SUPPORTED, "field,value,reason") \
	X(OPERATION_NOT_ALLOWED, "reason") \
	X(OTHER_OPERATION_IN_PROGRESS, "class,object") \
	X(NOT_IMPLEMENTED, "function") \
	X(PERMISSION_DENIED, "message") \
	X(EVENT_FROM_TOKEN_PARSE_FAILURE, "token") \
	X(EVENTS_LOST, "") \
	X(TASK_CANCELLED, "task") \
	X(VM_BAD_POWER_STATE, "vm,expected,actual") \
	X(VM_IS_TEMPLATE, "vm") \
	X(VM_CANNOT_DELETE_DEFAULT_TEMPLATE, "vm") \
	X(VM_INCOMPATIBLE_WITH_THIS_HOST, "vm,host,reason") \
	X(VM_REQUIRES_SR, "vm,sr") \
	X(VM_REQUIRES_NETWORK, "vm,network") \
	X(VM_IS_IMMOBILE, "vm") \
	X(VM_HAS_PCI_ATTACHED, "vm") \
	X(VM_HAS_VUSBS, "vm") \
	X(VM_MIGRATE_FAILED, "vm,source,destination,msg") \
	X(VM_HOST_INCOMPATIBLE_VERSION_MIGRATE, "host,vm") \
	/* rolling pool upgrade: XAPI declares NOT_SUPPORTED_DURING_UPGRADE []; \
	 * ours names the operation and why */ \
	X(NOT_SUPPORTED_DURING_UPGRADE, "operation,reason") \
	X(HOST_XAPI_VERSION_HIGHER_THAN_COORDINATOR, "host_xapi_version") \
	X(VM_HOST_INCOMPATIBLE_VIRTUAL_HARDWARE_PLATFORM_VERSION, "host,host_versions,vm,vm_version") \
	X(ROLLING_UPGRADE_FAILED, "host,reason") /* ours: the run stopped (the task holds the report) */ \
	X(HOST_NOT_ENOUGH_FREE_MEMORY, "needed,available") \
	X(HOST_DISABLED, "host") \
	X(HOST_NOT_LIVE, "") \
	X(HOST_OFFLINE, "host") \
	X(HOST_HAS_RESIDENT_VMS, "host") \
	X(NO_HOSTS_AVAILABLE, "") \
	X(HOSTS_NOT_HOMOGENEOUS, "reason") \
	X(CANNOT_EVACUATE_HOST, "errors") \
	X(HOST_EVACUATE_IN_PROGRESS, "host") \
	X(SR_FULL, "requested,maximum") \
	X(SR_HAS_NO_PBDS, "sr") \
	X(SR_HAS_PBD, "sr") \
	X(SR_NO_PBDS, "sr") \
	X(SR_UNKNOWN_DRIVER, "driver") \
	X(SR_BACKEND_FAILURE, "operation,reason") \
	X(SR_NOT_EMPTY, "") \
	X(VDI_IN_USE, "vdi,operation") \
	X(VDI_READ_ONLY, "vdi") \
	X(DEVICE_ALREADY_EXISTS, "device") \
	X(VBD_NOT_EMPTY, "vbd") \
	X(VBD_IS_EMPTY, "vbd") \
	X(MEMORY_CONSTRAINT_VIOLATION, "constraint") \
	X(HA_IS_ENABLED, "") \
	X(HA_NOT_ENABLED, "") \
	X(HA_ENABLE_IN_PROGRESS, "") \
	X(HA_DISABLE_IN_PROGRESS, "") \
	X(HA_TOO_FEW_HOSTS, "") \
	X(HA_NO_PLAN, "") \
	X(HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN, "") \
	X(HA_FAILED_TO_FORM_LIVESET, "") \
	X(HA_HOST_CANNOT_ACCESS_STATEFILE, "") \
	X(HA_SHOULD_BE_FENCED, "host") \
	X(CANNOT_CREATE_STATE_FILE, "") \
	X(HOST_EVACUATE_VM_NOT_HA_PROTECTED, "vm") \
	X(VCPU_CONSTRAINT_VIOLATION, "constraint")

enum xapi_err {
#define XAPI_ERR_ENUM(code, params) XE_##code,
	XAPI_ERROR_LIST(XAPI_ERR_ENUM)
#undef XAPI_ERR_ENUM
	XE__COUNT
};

#endif
