/*
 * server.c - the agent's API: JSON-RPC over HTTPS with mutual TLS.
 *
 * Only a peer with a certificate from the pool CA gets past the handshake.
 * The methods, their parameters and who may call them are agent_proto.h's
 * table: a call is refused unless its caller may make it (the pool master,
 * for every method today: another host's certificate drives nothing here)
 * and its parameters have the declared count and types. This file maps
 * each method to its handler and carries the answer back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include "agent.h"
#include "agent_proto.h"
#include "evrpc.h"
#include "httpsrv.h"
#include "jsonrpc.h"
#include "log.h"
#include "tls.h"
#include "xerr.h"

typedef json_t *(*agent_method_fn)(struct agent *ag, json_t *args, json_t **result);
/* A long call: answers req itself (evrpc_reply) when the work has ended;
 * NULL = started, else the error to answer now. */
typedef json_t *(*agent_later_fn)(struct agent *ag, struct evhttp_request *req, json_t *args, json_t *id, bool v2);

static json_t *m_report(struct agent *ag, json_t *args, json_t **result)
{
	(void)args;
	*result = agent_beat_report(ag);
	return NULL;
}

/* The handler of each method of agent_proto.h. needs_state: it writes
 * what this host keeps in state-dir, so it is refused once that is lost
 * (agent_state_lost): fail closed rather than act on half a memory. */
static const struct {
	agent_method_fn now;
	agent_later_fn later;
	bool needs_state;
} handlers[AGENT_NMETHODS] = {
	[AGENT_REPORT] = {m_report, NULL, false},
	[AGENT_VM_STATE] = {agent_m_vm_state, NULL, false},
	[AGENT_VM_START] = {agent_m_vm_start, NULL, true},
	[AGENT_VM_SHUTDOWN] = {agent_m_vm_shutdown, NULL, true},
	[AGENT_VM_PAUSE] = {agent_m_vm_pause, NULL, false},
	[AGENT_VM_UNPAUSE] = {agent_m_vm_unpause, NULL, false},
	[AGENT_SR_ATTACH] = {agent_m_sr_attach, NULL, true},
	[AGENT_SR_DETACH] = {agent_m_sr_detach, NULL, true},
	[AGENT_SR_DESTROY] = {agent_m_sr_destroy, NULL, true},
	[AGENT_VDI_CREATE] = {agent_m_vdi_create, NULL, true},
	[AGENT_VDI_DESTROY] = {agent_m_vdi_destroy, NULL, true},
	[AGENT_VDI_COPY] = {agent_m_vdi_copy, NULL, true},
	[AGENT_VDI_RESIZE] = {agent_m_vdi_resize, NULL, true},
	[AGENT_MIGRATE_RECEIVE] = {agent_m_migrate_receive, NULL, true},
	[AGENT_MIGRATE_SEND] = {NULL, agent_migrate_send_start, true},
	[AGENT_MIGRATION_STATUS] = {agent_m_migration_status, NULL, false},
	[AGENT_MIGRATE_RECEIVE_CANCEL] = {agent_m_migrate_receive_cancel, NULL, false},
	[AGENT_VDI_MIRROR_RECEIVE] = {agent_m_vdi_mirror_receive, NULL, true},
	[AGENT_VDI_MIRROR_SEND] = {agent_m_vdi_mirror_send, NULL, true},
	[AGENT_VDI_MIRROR_STATUS] = {agent_m_vdi_mirror_status, NULL, false},
	[AGENT_VDI_MIRROR_END] = {agent_m_vdi_mirror_end, NULL, false},
	[AGENT_VDI_REMOVE] = {agent_m_vdi_remove, NULL, true},
	[AGENT_VDI_PIVOT] = {NULL, agent_vdi_pivot_start, true},
	[AGENT_VM_DISKS] = {agent_m_vm_disks, NULL, false},
	[AGENT_VM_RELEASED] = {NULL, agent_vm_released_start, false},
	[AGENT_HA_ARM] = {agent_m_ha_arm, NULL, true},
	[AGENT_HA_DISARM] = {agent_m_ha_disarm, NULL, false},
	[AGENT_VM_REBOOT] = {agent_m_vm_reboot, NULL, true},
	[AGENT_VM_SUSPEND] = {NULL, agent_vm_suspend_start, true},
	[AGENT_VM_RESUME] = {NULL, agent_vm_resume_start, true},
	[AGENT_VM_CHECKPOINT] = {NULL, agent_vm_checkpoint_start, true},
	[AGENT_VM_SET_MEMORY] = {agent_m_vm_set_memory, NULL, false},
	[AGENT_VM_SET_VCPUS] = {agent_m_vm_set_vcpus, NULL, false},
	[AGENT_VBD_PLUG] = {agent_m_vbd_plug, NULL, false},
	[AGENT_VBD_UNPLUG] = {agent_m_vbd_unplug, NULL, false},
	[AGENT_VIF_PLUG] = {agent_m_vif_plug, NULL, false},
	[AGENT_VIF_UNPLUG] = {agent_m_vif_unplug, NULL, false},
	[AGENT_VDI_COPY_TO] = {NULL, agent_vdi_copy_to_start, true},
	[AGENT_HOST_POWER] = {agent_m_host_power, NULL, true},
	[AGENT_SET_MASTER] = {agent_m_set_master, NULL, false},
};

int agent_server_check_table(void)
{
	for (int i = 0; i < AGENT_NMETHODS; i++) {
		const struct aproto_method *m = aproto_method((enum agent_method)i);
		if (m->am_later ? !handlers[i].later || handlers[i].now : !handlers[i].now || handlers[i].later)
			return -1;
	}
	return 0;
}

static void answer(struct evhttp_request *req, const struct jrpc_req *r, json_t *err, json_t *result)
{
	char *text;
	if (err) {
		text = jrpc_err(r->jr_id, r->jr_v2, err);
	} else {
		char *rt = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
		text = jrpc_ok(r->jr_id, r->jr_v2, rt);
		free(rt);
	}
	evrpc_reply(req, text ? text : "");
	free(text);
}

/* Who is calling, what, with which parameters: the error that refuses the
 * call, or NULL with *m set. */
static json_t *admit(struct agent *ag, struct evhttp_request *req, const struct jrpc_req *r,
		     const struct aproto_method **m)
{
	char peer[128] = "";
	*m = aproto_find(r->jr_method);
	if (!*m)
		return xerr_new(XE_MESSAGE_METHOD_UNKNOWN, r->jr_method, NULL);
	if (evrpc_request_peer_cn(req, peer, sizeof peer) < 0 || !aproto_caller_allowed(*m, peer)) {
		log_warn("refused %s from %s: only the pool master may call it", r->jr_method, *peer ? peer : "?");
		return xerr_newf(XE_PERMISSION_DENIED, "%s may only be called by the pool master", r->jr_method);
	}
	json_t *e = aproto_check(*m, r->jr_params);
	if (!e && handlers[(*m)->am_id].needs_state && agent_state_lost(ag))
		e = xerr_newf(XE_OPERATION_NOT_ALLOWED,
			      "this host's agent lost its state directory %s: restore it and restart the agent",
			      ag->ag_state);
	return e;
}

static void handle(struct evhttp_request *req, void *arg)
{
	struct agent *ag = arg;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		evhttp_send_error(req, 405, "use POST with a JSON-RPC body");
		return;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = (const char *)evbuffer_pullup(in, -1);
	struct jrpc_req r;
	char *text = NULL;
	if (jrpc_parse(body ? body : "", len, &r, &text) < 0) {
		evrpc_reply(req, text);
		free(text);
		return;
	}
	const struct aproto_method *m;
	log_debug("-> %s", r.jr_method);
	json_t *result = NULL, *err = admit(ag, req, &r, &m);
	if (!err && m->am_later) {
		err = handlers[m->am_id].later(ag, req, r.jr_params, r.jr_id, r.jr_v2);
		if (!err) { /* answered from the loop when the work has ended */
			jrpc_req_clear(&r);
			return;
		}
	} else if (!err) {
		err = handlers[m->am_id].now(ag, r.jr_params, &result);
	}
	answer(req, &r, err, result);
	log_debug("<- %s%s", r.jr_method, err ? " (refused)" : "");
	json_decref(err);
	json_decref(result);
	jrpc_req_clear(&r);
}

/* Listen now (the port goes into the join report); TLS is ready before
 * the loop runs, so nothing is accepted without it. Only the pool master
 * may call: its certificate's CN is checked in the handshake. */
int agent_server_start(struct agent *ag, char *err, size_t errlen)
{
	struct conf *cf = ag->ag_conf;
	struct httpsrv_limits lim = {
		.hl_request_ms = conf_duration_ms(cf, "request-timeout"),
		.hl_idle_ms = 60000,
		.hl_max_body = 4 << 20,
		.hl_max_headers = 64 * 1024,
		.hl_max_conns = (int)conf_int(cf, "max-connections"),
		.hl_max_per_addr = (int)conf_int(cf, "max-connections-per-address"),
		.hl_peer_cn = TLS_MASTER_CN,
		.hl_name = "agent API",
	};
	ag->ag_http = httpsrv_new(ag->ag_base, &ag->ag_server_ctx, &lim, handle, ag);
	if (!ag->ag_http) {
		snprintf(err, errlen, "cannot set up the HTTPS server: out of memory");
		return -1;
	}
	return httpsrv_bind(ag->ag_http, conf_str(cf, "listen-address"), (int)conf_int(cf, "port"), &ag->ag_port, err,
			    errlen);
}

void agent_server_stop(struct agent *ag)
{
	httpsrv_free(ag->ag_http);
	ag->ag_http = NULL;
}
