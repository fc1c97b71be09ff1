/*
 * agent_proto.h - the poold <-> pool-agent protocol, declared once.
 *
 * Every method an agent serves is one row of AGENT_METHODS: its wire name,
 * who may call it, whether its answer comes only when the work has ended
 * (a long call: the agent answers from its loop later) and its parameters
 * with their types. poold's calls and the agent's dispatch both come from
 * this table: a call with a wrong count or type fails before anything is
 * sent, and again before anything is done (vmd's imsg enum, XAPI's
 * datamodel `call ~params`).
 *
 * The domain configuration poold sends (agent.vm_start, migrations) is
 * one struct, written and read by one function pair (dcfg_*, below).
 */
#ifndef AGENT_PROTO_H
#define AGENT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "domain_config.h"

enum aproto_type {
	AP_STRING,
	AP_BOOL,
	AP_INT,
	AP_OBJECT, /* a JSON object (a map of options) */
	AP_DOMCFG, /* a domain configuration (dcfg_to_json) */
};

/* Who may call a method: the pool master (its certificate names the
 * master, see aproto_peer_is_master), or a pool member taking part in an
 * operation poold started (a migration peer: the method then carries the
 * one-time token poold issued for it). */
enum aproto_caller {
	AP_MASTER,
	AP_PEER,
};

/* X(ID, "wire name", caller, later, "name:type,...")
 * types: s string, b bool, i integer, o object, c domain config. */
#define AGENT_METHODS(X) \
	X(REPORT, "agent.report", AP_MASTER, false, "") \
	X(VM_STATE, "agent.vm_state", AP_MASTER, false, "vm:s,domid:i") \
	X(VM_START, "agent.vm_start", AP_MASTER, false, "config:c") \
	X(VM_SHUTDOWN, "agent.vm_shutdown", AP_MASTER, false, "vm:s,hard:b") \
	X(VM_PAUSE, "agent.vm_pause", AP_MASTER, false, "vm:s") \
	X(VM_UNPAUSE, "agent.vm_unpause", AP_MASTER, false, "vm:s") \
	X(SR_ATTACH, "agent.sr_attach", AP_MASTER, false, "sr:s,type:s,path:s") \
	X(SR_DETACH, "agent.sr_detach", AP_MASTER, false, "sr:s") \
	X(SR_DESTROY, "agent.sr_destroy", AP_MASTER, false, "sr:s,type:s,path:s") \
	X(VDI_CREATE, "agent.vdi_create", AP_MASTER, false, "sr:s,vdi:s,size:i") \
	X(VDI_DESTROY, "agent.vdi_destroy", AP_MASTER, false, "sr:s,vdi:s") \
	X(VDI_COPY, "agent.vdi_copy", AP_MASTER, false, "sr:s,vdi:s,new_vdi:s,snapshot:b") \
	X(VDI_RESIZE, "agent.vdi_resize", AP_MASTER, false, "sr:s,vdi:s,size:i") \
	X(MIGRATE_RECEIVE, "agent.migrate_receive", AP_MASTER, false, "config:c,token:s,options:o") \
	X(MIGRATE_SEND, "agent.migrate_send", AP_MASTER, true, \
	  "vm:s,address:s,port:i,token:s,options:o,config:c") \
	X(MIGRATION_STATUS, "agent.migration_status", AP_MASTER, false, "vm:s") \
	X(MIGRATE_RECEIVE_CANCEL, "agent.migrate_receive_cancel", AP_MASTER, false, "vm:s") \
	X(VM_RELEASED, "agent.vm_released", AP_MASTER, true, "vm:s") \
	X(HA_ARM, "agent.ha_arm", AP_MASTER, false, "config:o") \
	X(HA_DISARM, "agent.ha_disarm", AP_MASTER, false, "generation:s") \
	X(VM_REBOOT, "agent.vm_reboot", AP_MASTER, false, "config:c,hard:b") \
	X(VM_SUSPEND, "agent.vm_suspend", AP_MASTER, true, "vm:s,sr:s,vdi:s") \
	X(VM_RESUME, "agent.vm_resume", AP_MASTER, true, "config:c,sr:s,vdi:s") \
	X(VM_CHECKPOINT, "agent.vm_checkpoint", AP_MASTER, true, "vm:s,options:o") \
	X(VM_SET_MEMORY, "agent.vm_set_memory", AP_MASTER, false, "vm:s,target:i") \
	X(VM_SET_VCPUS, "agent.vm_set_vcpus", AP_MASTER, false, "vm:s,vcpus:i") \
	X(VBD_PLUG, "agent.vbd_plug", AP_MASTER, false, "vm:s,disk:o") \
	X(VBD_UNPLUG, "agent.vbd_unplug", AP_MASTER, false, "vm:s,device:s") \
	X(VIF_PLUG, "agent.vif_plug", AP_MASTER, false, "vm:s,device:s") \
	X(VIF_UNPLUG, "agent.vif_unplug", AP_MASTER, false, "vm:s,device:s") \
	X(VDI_COPY_TO, "agent.vdi_copy_to", AP_MASTER, true, "sr:s,vdi:s,dst_sr:s,new_vdi:s") \
	X(HOST_POWER, "agent.host_power", AP_MASTER, false, "action:s") \
	X(VDI_MIRROR_RECEIVE, "agent.vdi_mirror_receive", AP_MASTER, false, "sr:s,vdi:s,size:i,token:s,options:o") \
	X(VDI_MIRROR_SEND, "agent.vdi_mirror_send", AP_MASTER, false, \
	  "vm:s,sr:s,vdi:s,snapshot:s,address:s,port:i,token:s,options:o") \
	X(VDI_MIRROR_STATUS, "agent.vdi_mirror_status", AP_MASTER, false, "mirror:s") \
	X(VDI_MIRROR_END, "agent.vdi_mirror_end", AP_MASTER, false, "mirror:s") \
	X(VDI_REMOVE, "agent.vdi_remove", AP_MASTER, false, "sr:s,vdi:s") \
	X(VDI_PIVOT, "agent.vdi_pivot", AP_MASTER, true, "vm:s,mirror:s,device:s,sr:s") \
	X(VM_DISKS, "agent.vm_disks", AP_MASTER, false, "vm:s") \
	X(SET_MASTER, "agent.set_master", AP_MASTER, false, "address:s,port:i,epoch:i")

enum agent_method {
#define AP_ENUM(id, name, caller, later, params) AGENT_##id,
	AGENT_METHODS(AP_ENUM)
#undef AP_ENUM
	AGENT_NMETHODS
};

#define AP_MAX_PARAMS 8

struct aproto_param {
	char ap_name[24];
	enum aproto_type ap_type;
};

struct aproto_method {
	enum agent_method am_id;
	const char *am_name;
	enum aproto_caller am_caller;
	bool am_later;
	size_t am_nparams;
	struct aproto_param am_params[AP_MAX_PARAMS];
};

/* The row of a method (never NULL for a valid id). */
const struct aproto_method *aproto_method(enum agent_method m);
/* Lookup by wire name; NULL when unknown. */
const struct aproto_method *aproto_find(const char *name);
/* NULL when params (a JSON array) fit the method's declaration, else the
 * XAPI error: MESSAGE_PARAMETER_COUNT_MISMATCH [method, expected,
 * received], FIELD_TYPE_ERROR [name], or the domain config's own
 * INVALID_VALUE. */
json_t *aproto_check(const struct aproto_method *m, const json_t *params);
/* May a peer whose verified certificate has CN peer_cn call m? false for
 * an empty CN (no certificate). */
bool aproto_caller_allowed(const struct aproto_method *m, const char *peer_cn);
/* The master's certificate has CN TLS_MASTER_CN (tls.h); a host's never
 * does, since poold signs every host's certificate with its uuid as CN. */
bool aproto_peer_is_master(const char *peer_cn);

#endif
