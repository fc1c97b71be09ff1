/*
 * xe_sxm.c - storage live migration from the command line, as XAPI's xe:
 *   xe vm-migrate vm=V host=H vdi:<vdi-uuid>=<sr-uuid>... [vif:<vif-uuid>=<network-uuid>...]
 *                 [network-uuid=N] [copy=true] [compress=true] [verify=true]
 *   xe vdi-pool-migrate uuid=VDI sr-uuid=SR
 * Any vdi: or vif: (or copy) makes vm-migrate a storage migration: the
 * destination is asked for its dest map (host.migrate_receive, on the
 * network given or the host's management network), then
 * Async.VM.migrate_send runs and its progress is shown (disk i of n, then
 * the memory).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "util.h"
#include "xe.h"

bool xe_sxm_wanted(struct xe_ctx *c)
{
	for (size_t i = 0; i < c->opts->nkv; i++) {
		const char *k = c->opts->kv[i].key;
		if (strncmp(k, "vdi:", 4) == 0 || strncmp(k, "vif:", 4) == 0 || strcmp(k, "copy") == 0)
			return true;
	}
	return false;
}

/* prefix:<uuid of kcls>=<uuid of vcls> parameters as {ref: ref}; NULL with the error. */
static json_t *uuid_map(struct xe_ctx *c, const char *prefix, const char *kcls, const char *vcls)
{
	json_t *in = xe_map_params(c, prefix), *out = json_object();
	const char *k;
	json_t *v;
	json_object_foreach(in, k, v) {
		char *kr = xe_ref_by_uuid(c, kcls, k);
		char *vr = kr ? xe_ref_by_uuid(c, vcls, json_string_value(v)) : NULL;
		if (vr)
			json_object_set_new(out, kr, json_string(vr));
		free(kr);
		free(vr);
		if (!vr) {
			json_decref(out);
			out = NULL;
			break;
		}
	}
	json_decref(in);
	return out;
}

/* The network of host's management PIF. */
static char *management_network(struct xe_ctx *c, const char *host)
{
	json_t *pifs = xe_rpc(c, "PIF.get_all_records", "");
	const char *k;
	json_t *p;
	char *net = NULL;
	json_object_foreach(pifs, k, p) {
		const char *h = json_string_value(json_object_get(p, "host"));
		if (!net && h && strcmp(h, host) == 0 && json_is_true(json_object_get(p, "management")))
			net = xstrdup(json_string_value(json_object_get(p, "network")) ?: "");
	}
	json_decref(pifs);
	if (!net && !c->msg && !c->xerr)
		xe_fail(c, "The destination host has no management network to receive the migration on; give "
			   "network-uuid=");
	return net;
}

char *xe_sxm_start(struct xe_ctx *c, const char *vm, const char *host, const char *net, json_t *opts)
{
	json_t *vdi_map = uuid_map(c, "vdi", "VDI", "SR");
	json_t *vif_map = vdi_map ? uuid_map(c, "vif", "VIF", "network") : NULL;
	char *mnet = vif_map && !net ? management_network(c, host) : NULL;
	json_t *dest = vif_map && (net || mnet) ? xe_rpc(c, "host.migrate_receive", "sso", host, net ? net : mnet,
							  json_object())
						: NULL;
	char *task = NULL;
	if (json_is_object(dest))
		task = xe_str_result(xe_rpc(c, "Async.VM.migrate_send", "sObOOO", vm, dest, 1, vdi_map, vif_map, opts));
	if (dest && !task && !c->msg && !c->xerr)
		xe_fail(c, "Error: unexpected answer to Async.VM.migrate_send");
	json_decref(dest);
	json_decref(vdi_map);
	json_decref(vif_map);
	free(mnet);
	return task;
}

int xe_cmd_vdi_pool_migrate(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	char *vdi = xe_ref_by_uuid(c, "VDI", xe_param(c, "uuid"));
	char *sr = vdi ? xe_ref_by_uuid(c, "SR", xe_param(c, "sr-uuid")) : NULL;
	bool show = !c->opts->minimal && isatty(fileno(c->out));
	int rc = -1;
	double start = xe_now_s();
	char *task = sr ? xe_str_result(xe_rpc(c, "Async.VDI.pool_migrate", "sso", vdi, sr, json_object())) : NULL;
	if (task) {
		rc = xe_task_wait(c, task, start, show);
		char *res = rc ? NULL : xe_str_result(xe_rpc(c, "task.get_result", "s", task));
		/* the result is XML-RPC text: <value>OpaqueRef:...</value> */
		char *ref = res ? strstr(res, "OpaqueRef:") : NULL;
		if (ref)
			ref[strcspn(ref, "<")] = '\0';
		if (ref)
			rc = xe_print_uuid(c, "VDI", ref);
		free(res);
		xe_task_forget(c, task);
	} else if (sr && !c->msg && !c->xerr) {
		xe_fail(c, "Error: unexpected answer to Async.VDI.pool_migrate");
	}
	free(task);
	free(vdi);
	free(sr);
	return rc;
}
