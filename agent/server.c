/*
 * server.c - the agent's API: JSON-RPC over HTTPS with mutual TLS.
 *
 * Only a peer with a certificate from the pool CA gets past the handshake
 * (poold, and other agents for migration later). One table names each
 * method, its parameter count and handler; domains are named by their VM's
 * uuid, as poold knows them.
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
#include "httpsrv.h"
#include "jsonrpc.h"
#include "log.h"
#include "tls.h"
#include "xerr.h"

typedef json_t *(*agent_method_fn)(struct agent *ag, json_t *args, json_t **result);

static json_t *be_fail(struct agent *ag, const char *what, const char *uuid)
{
	return xerr_newf(XE_INTERNAL_ERROR, "%s %s: %s", what, uuid, backend_error(ag->ag_be));
}

/* The domain of VM uuid: its domid, or -1. */
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

static json_t *m_report(struct agent *ag, json_t *args, json_t **result)
{
	(void)args;
	*result = agent_report(ag);
	return NULL;
}

static void copy_str(char *dst, size_t len, json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	snprintf(dst, len, "%s", s ? s : "");
}

static json_int_t ival(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

void agent_config_parse(json_t *cfg, struct be_domain_config *dc)
{
	memset(dc, 0, sizeof *dc);
	copy_str(dc->dc_uuid, sizeof dc->dc_uuid, cfg, "uuid");
	copy_str(dc->dc_name, sizeof dc->dc_name, cfg, "name");
	copy_str(dc->dc_cpu_vendor, sizeof dc->dc_cpu_vendor, cfg, "cpu_vendor");
	copy_str(dc->dc_featureset, sizeof dc->dc_featureset, cfg, "featureset");
	copy_str(dc->dc_guest_type, sizeof dc->dc_guest_type, cfg, "guest_type");
	dc->dc_memory = (uint64_t)ival(cfg, "memory");
	dc->dc_vcpus = (int)ival(cfg, "vcpus");
	json_t *wl = json_object_get(cfg, "workload");
	dc->dc_workload = (struct be_workload){(uint64_t)ival(wl, "touch_pages"), (uint64_t)ival(wl, "dirty_pages_per_s"),
					       (uint64_t)ival(wl, "working_set_pages"), (int)ival(wl, "pct_zero"),
					       (int)ival(wl, "pct_text"), (int)ival(wl, "pct_random"),
					       (uint64_t)ival(wl, "disk_write_bytes_per_s"), false,
					       (uint32_t)ival(wl, "heartbeat_ms")};
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(cfg, "disks"), i, d) {
		if (dc->dc_ndisks >= 8)
			break;
		struct be_disk *bd = &dc->dc_disks[dc->dc_ndisks++];
		copy_str(bd->bd_vdi_uuid, sizeof bd->bd_vdi_uuid, d, "vdi_uuid");
		copy_str(bd->bd_path, sizeof bd->bd_path, d, "path");
		copy_str(bd->bd_device, sizeof bd->bd_device, d, "device");
		bd->bd_readonly = json_is_true(json_object_get(d, "readonly"));
	}
}

static json_t *m_vm_start(struct agent *ag, json_t *args, json_t **result)
{
	json_t *cfg = json_array_get(args, 0);
	if (!json_is_object(cfg))
		return xerr_new(XE_FIELD_TYPE_ERROR, "config", NULL);
	struct be_domain_config dc;
	agent_config_parse(cfg, &dc);
	if (!dc.dc_uuid[0] || dc.dc_memory == 0 || dc.dc_vcpus < 1)
		return xerr_new(XE_INVALID_VALUE, "config", "needs uuid, memory and vcpus", NULL);
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
	if (!json_is_true(json_object_get(cfg, "start_paused")) && ag->ag_be->be_ops->bo_domain_unpause(ag->ag_be, domid) < 0) {
		json_t *e = be_fail(ag, "cannot unpause the domain of", dc.dc_uuid);
		ag->ag_be->be_ops->bo_domain_destroy(ag->ag_be, domid);
		return e;
	}
	log_info("started VM %s (%s) as domain %d", dc.dc_uuid, dc.dc_name, domid);
	struct be_domain_info di;
	if (ag->ag_be->be_ops->bo_domain_info(ag->ag_be, domid, &di) == 0)
		agent_watch_domains(ag, &di, 1); /* its end is reported when it happens */
	*result = agent_stamp(ag, json_pack("{s:i}", "domid", domid));
	return NULL;
}

static json_t *with_domain(struct agent *ag, json_t *args, int *domid, const char **uuid)
{
	*uuid = json_string_value(json_array_get(args, 0));
	if (!*uuid)
		return xerr_new(XE_FIELD_TYPE_ERROR, "vm", NULL);
	*domid = domid_of(ag, *uuid, NULL);
	return *domid < 0 ? xerr_newf(XE_INTERNAL_ERROR, "VM %s has no domain on this host", *uuid) : NULL;
}

static json_t *m_vm_shutdown(struct agent *ag, json_t *args, json_t **result)
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

static json_t *m_vm_pause(struct agent *ag, json_t *args, json_t **result)
{
	return pause_op(ag, args, result, true);
}

static json_t *m_vm_unpause(struct agent *ag, json_t *args, json_t **result)
{
	return pause_op(ag, args, result, false);
}

static const struct {
	const char *name;
	size_t nargs;
	agent_method_fn fn;
} agent_methods[] = {
	{"agent.report", 0, m_report},
	{"agent.vm_start", 1, m_vm_start},
	{"agent.vm_shutdown", 2, m_vm_shutdown},
	{"agent.vm_pause", 1, m_vm_pause},
	{"agent.vm_unpause", 1, m_vm_unpause},
	{"agent.sr_attach", 3, agent_m_sr_attach},
	{"agent.sr_detach", 1, agent_m_sr_detach},
	{"agent.sr_destroy", 1, agent_m_sr_destroy},
	{"agent.vdi_create", 3, agent_m_vdi_create},
	{"agent.vdi_destroy", 2, agent_m_vdi_destroy},
	{"agent.vdi_copy", 4, agent_m_vdi_copy},
	{"agent.vdi_resize", 3, agent_m_vdi_resize},
	{"agent.migrate_receive", 3, agent_m_migrate_receive},
	{"agent.migration_status", 1, agent_m_migration_status},
};

void agent_reply(struct evhttp_request *req, const char *text)
{
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, text, strlen(text));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
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
		agent_reply(req, text);
		free(text);
		return;
	}
	json_t *err = NULL, *result = NULL;
	if (strcmp(r.jr_method, "agent.migrate_send") == 0) {
		/* long: answered from the loop when the stream has ended */
		err = json_array_size(r.jr_params) == 6
			      ? agent_migrate_send_start(ag, req, r.jr_params, r.jr_id, r.jr_v2)
			      : xerr_new(XE_MESSAGE_PARAMETER_COUNT_MISMATCH, r.jr_method, "6", "?", NULL);
		if (!err) {
			jrpc_req_clear(&r);
			return;
		}
		text = jrpc_err(r.jr_id, r.jr_v2, err);
		agent_reply(req, text ? text : "");
		free(text);
		json_decref(err);
		jrpc_req_clear(&r);
		return;
	}
	size_t i, n = sizeof agent_methods / sizeof agent_methods[0];
	for (i = 0; i < n && strcmp(agent_methods[i].name, r.jr_method); i++)
		;
	if (i == n) {
		err = xerr_new(XE_MESSAGE_METHOD_UNKNOWN, r.jr_method, NULL);
	} else if (json_array_size(r.jr_params) != agent_methods[i].nargs) {
		char want[16], got[16];
		snprintf(want, sizeof want, "%zu", agent_methods[i].nargs);
		snprintf(got, sizeof got, "%zu", json_array_size(r.jr_params));
		err = xerr_new(XE_MESSAGE_PARAMETER_COUNT_MISMATCH, r.jr_method, want, got, NULL);
	} else {
		err = agent_methods[i].fn(ag, r.jr_params, &result);
	}
	if (err) {
		text = jrpc_err(r.jr_id, r.jr_v2, err);
	} else {
		char *rt = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
		text = jrpc_ok(r.jr_id, r.jr_v2, rt);
		free(rt);
	}
	agent_reply(req, text ? text : "");
	free(text);
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
