/*
 * api_sxm.c - storage live migration's API, with XAPI's signatures:
 *   host.migrate_receive(host, network, options) -> dest
 *   VM.migrate_send(vm, dest, live, vdi_map, vif_map, options[, vgpu_map]) -> VM
 *   VM.assert_can_migrate(vm, dest, live, vdi_map, vif_map, options[, vgpu_map])
 *   VDI.pool_migrate(vdi, sr, options) -> the new VDI
 * Each checks everything first (sxm_facts.c: a refusal leaves nothing
 * behind; assert_can_migrate is that and nothing more), then admits the
 * migration in one transaction - its operations, the destination's
 * memory reserved, its journal entry - or queues it behind the host's
 * other storage migrations, and migrate_storage.c runs it.
 *
 * options (strings, as XAPI's map): force, copy, compress, verify, queue
 * (default true: wait for a slot; false: TOO_MANY_STORAGE_MIGRATES), and
 * the memory migration's max_downtime_ms, max_rounds; ours for the disks:
 * bandwidth_mb_s (each disk's stream paces itself).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ops.h"
#include "poold.h"
#include "sxm.h"
#include "util.h"
#include "xerr.h"

static bool opt_true(json_t *opts, const char *k, bool dflt)
{
	const char *s = jstr(opts, k);
	return *s ? strcmp(s, "true") == 0 || strcmp(s, "1") == 0 : dflt;
}

/* ---- host.migrate_receive ---- */

json_t *host_migrate_receive(struct api_call *c)
{
	const char *host, *net;
	json_t *opts, *e = api_arg_ref(c, 0, "host", &host);
	if (e || (e = api_arg_ref(c, 1, "network", &net)) || (e = api_arg_obj(c, 2, "options", &opts)))
		return e;
	struct db *db = c->ac_pd->pd_db;
	char addr[64];
	json_t *ae = migrate_address(db, host, net, addr, sizeof addr);
	if (ae) {
		json_decref(ae);
		return xerr_new(XE_HOST_CANNOT_ATTACH_NETWORK, host, net, NULL);
	}
	json_t *master = db_obj_get(db, c->ac_pd->pd_host_ref);
	char sm[256], xenops[256], mst[256];
	snprintf(sm, sizeof sm, "http://%s/services/SM?session_id=%s", addr, c->ac_session);
	snprintf(xenops, sizeof xenops, "http://%s/services/xenops?session_id=%s", addr, c->ac_session);
	snprintf(mst, sizeof mst, "http://%s", *jstr(master, "address") ? jstr(master, "address") : "127.0.0.1");
	json_decref(master);
	/* XAPI's five keys, and ours: the network the disks and the memory go on */
	c->ac_result = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "SM", sm, "xenops", xenops, "host", host,
				 "session_id", c->ac_session, "master", mst, "network", net, "migration_address", addr);
	return NULL;
}

/* ---- admission ---- */

struct admit_ctx {
	struct poold *pd;
	struct sxm_ask a;
	const char *kind; /* "vm" or "vdi" */
	json_t *opts;
	const char *task;
	char id[48];
	bool queued;	 /* out: waits for a slot */
	json_t *entry;	 /* out: the journal entry */
};

/* The addresses the disks' streams go to, and the options they take. */
static json_t *stream_facts(struct admit_ctx *x, json_t *entry, const char *net)
{
	struct db *db = x->pd->pd_db;
	char addr[64] = "";
	json_t *dst = db_obj_get(db, x->a.sa_dst), *pool = db_obj_get(db, x->pd->pd_pool_ref);
	json_t *e = *net && strcmp(net, MODEL_NULL_REF) ? migrate_address(db, x->a.sa_dst, net, addr, sizeof addr) : NULL;
	json_object_set_new(entry, "address",
			    json_string(*addr ? addr : jstr(json_object_get(dst, "other_config"), "agent_address")));
	json_object_set_new(entry, "dst_uuid", json_string(jstr(dst, "uuid")));
	long long bw = atoll(jstr(x->opts, "bandwidth_mb_s"));
	json_object_set_new(entry, "mirror_opts",
			    json_pack("{s:b, s:b, s:I}", "compress",
				      opt_true(x->opts, "compress", json_is_true(json_object_get(pool, "migration_compression"))),
				      "verify", opt_true(x->opts, "verify", false), "bandwidth_mb_s",
				      (json_int_t)(bw > 0 ? bw : 0)));
	json_decref(dst);
	json_decref(pool);
	return e;
}

/* Operations begun, the memory reserved, the entry made. */
static json_t *admit_hold(struct db *db, struct admit_ctx *x, json_t *plan, json_t *vm, char *op)
{
	json_t *e = ops_begin(db, x->a.sa_vm, "migrate_send", op);
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(plan, "vdis"), i, r) {
		char vop[64];
		if (!e && !(e = ops_begin(db, jstr(r, "vdi"), "mirror", vop))) {
			json_object_set_new(r, "op", json_string(vop));
			json_object_set_new(r, "state", json_string("planned"));
		}
	}
	if (!e && !x->a.sa_same_host)
		e = db_obj_set(db, x->a.sa_vm, "scheduled_to_be_resident_on", json_string(x->a.sa_dst));
	(void)vm;
	return e;
}

static json_t *admit_txn(struct db *db, void *ctx)
{
	struct admit_ctx *x = ctx;
	json_t *reserve = json_object(), *plan = json_object(), *vm = NULL, *e = sxm_assert(x->pd, &x->a, reserve, plan);
	if (!e)
		e = db_obj_get_checked(db, "VM", x->a.sa_vm, &vm);
	const char *src = jstr(vm, "resident_on");
	int limit = (int)conf_int(x->pd->pd_conf, "storage-migration-max-per-host");
	enum sxm_admit ad = e ? SXM_REFUSE : sxm_admit(sxm_journal_running_from(db, src), limit, opt_true(x->opts, "queue", true));
	if (!e && ad == SXM_REFUSE) {
		char n[16];
		snprintf(n, sizeof n, "%d", limit);
		e = xerr_new(XE_TOO_MANY_STORAGE_MIGRATES, n, NULL);
	}
	char op[64] = "";
	if (!e)
		e = admit_hold(db, x, plan, vm, op);
	if (!e) {
		json_t *srch = db_obj_get(db, src);
		x->entry = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:O, s:O, s:O, s:O, s:O, s:O}", "kind",
				     x->kind, "vm", x->a.sa_vm, "vm_uuid", jstr(vm, "uuid"), "src", src, "src_uuid",
				     jstr(srch, "uuid"), "dst", x->a.sa_dst, "task", x->task, "op", op, "copy",
				     opt_true(x->opts, "copy", false), "opts", x->opts, "reserve", reserve, "vdis",
				     json_object_get(plan, "vdis"), "vifs", json_object_get(plan, "vifs"), "srs",
				     json_object_get(plan, "srs"), "nets", json_object_get(plan, "nets"));
		json_object_set_new(x->entry, "phase", json_string(sxm_phase_name(SXM_PH_COPY)));
		json_decref(srch);
		e = stream_facts(x, x->entry, jstr(x->opts, "network"));
	}
	x->queued = !e && ad == SXM_QUEUE;
	if (!e && !x->queued)
		e = sxm_journal_put(db, x->id, x->entry);
	if (e) {
		json_decref(x->entry);
		x->entry = NULL;
	}
	json_decref(vm);
	json_decref(reserve);
	json_decref(plan);
	return e;
}

static void client_gone(struct api_call *c)
{
	struct sxm_job *job = c->ac_parked;
	job->sj_c = NULL; /* the migration goes on; its task (if any) says how it ends */
	api_call_free(c);
}

/* Admit and start (or queue) the migration x asks for. */
static json_t *admit(struct api_call *c, struct admit_ctx *x)
{
	struct poold *pd = c->ac_pd;
	model_new_uuid(x->id);
	x->task = c->ac_task;
	json_t *e = db_txn(pd->pd_db, admit_txn, x);
	if (e)
		return e;
	struct sxm_job *job = sxm_job_new(pd, x->id, x->entry, c, c->ac_task);
	json_decref(x->entry);
	c->ac_parked = job;
	c->ac_cancel = client_gone;
	log_info("storage migration %s: VM %s from %s to %s, %zu disk(s) move%s", x->id, x->a.sa_vm,
		 jstr(job->sj_j, "src"), x->a.sa_dst, json_array_size(json_object_get(job->sj_j, "vdis")),
		 x->queued ? " (queued)" : "");
	if (x->queued) {
		job->sj_queued = true;
		sxm_note(job, "phase", "queued: %lld storage migrations from this host run already "
				       "(storage-migration-max-per-host)",
			 conf_int(pd->pd_conf, "storage-migration-max-per-host"));
	} else {
		sxm_note(job, "phase", "starting");
		sxm_start(pd, job);
	}
	return API_PENDING;
}

/* ---- VM.migrate_send / VM.assert_can_migrate ---- */

/* The arguments both take: the destination must be a host of this pool. */
static json_t *send_args(struct api_call *c, struct admit_ctx *x)
{
	const char *vm;
	json_t *dest, *vdi_map, *vif_map, *opts;
	bool live;
	json_t *e = api_arg_ref(c, 0, "VM", &vm);
	if (e || (e = api_arg_obj(c, 1, "dest", &dest)) || (e = api_arg_bool(c, 2, "live", &live)) ||
	    (e = api_arg_obj(c, 3, "vdi_map", &vdi_map)) || (e = api_arg_obj(c, 4, "vif_map", &vif_map)) ||
	    (e = api_arg_obj(c, 5, "options", &opts)))
		return e;
	const char *host = jstr(dest, "host");
	char cls[32];
	if (!db_obj_class(c->ac_pd->pd_db, host, cls, sizeof cls) || strcmp(cls, "host"))
		return xerr_new(XE_VALUE_NOT_SUPPORTED, "dest", *host ? host : jstr(dest, "master"),
				"storage migration to another pool is not supported yet: use host.migrate_receive of a "
				"host of this pool",
				NULL);
	*x = (struct admit_ctx){c->ac_pd, {vm, host, vdi_map, vif_map, opt_true(opts, "force", false), false}, "vm",
				json_deep_copy(opts)};
	/* the network host.migrate_receive was asked for carries the disks and the memory */
	if (!*jstr(opts, "network") && *jstr(dest, "network"))
		json_object_set_new(x->opts, "network", json_string(jstr(dest, "network")));
	return NULL;
}

json_t *vm_migrate_send(struct api_call *c)
{
	struct admit_ctx x = {0};
	json_t *e = send_args(c, &x);
	if (!e)
		e = admit(c, &x);
	json_decref(x.opts);
	return e;
}

json_t *vm_assert_can_migrate(struct api_call *c)
{
	struct admit_ctx x = {0};
	json_t *e = send_args(c, &x);
	if (!e) /* the same checks, nothing written */
		e = sxm_assert(c->ac_pd, &x.a, NULL, NULL);
	json_decref(x.opts);
	if (!e)
		c->ac_result = json_string("");
	return e;
}

/* ---- VDI.pool_migrate ---- */

/* The running VM that has vdi as a disk, or VDI_NEEDS_VM_FOR_MIGRATE. */
static json_t *vm_of(struct db *db, const char *vdi, char *vm)
{
	json_t *vbds = db_find(db, "VBD", "VDI", vdi);
	const char *k;
	json_t *b;
	*vm = '\0';
	json_object_foreach(vbds, k, b) {
		json_t *v = db_obj_get(db, jstr(b, "VM"));
		if (v && strcmp(jstr(v, "power_state"), "Running") == 0)
			snprintf(vm, 64, "%s", jstr(b, "VM"));
		json_decref(v);
	}
	json_decref(vbds);
	return *vm ? NULL : xerr_new(XE_VDI_NEEDS_VM_FOR_MIGRATE, vdi, NULL);
}

json_t *vdi_pool_migrate(struct api_call *c)
{
	const char *vdi, *sr;
	json_t *opts, *rec, *e = api_arg_ref(c, 0, "VDI", &vdi);
	if (e || (e = api_arg_ref(c, 1, "SR", &sr)) || (e = api_arg_obj(c, 2, "options", &opts)) ||
	    (e = db_obj_get_checked(c->ac_pd->pd_db, "VDI", vdi, &rec)))
		return e;
	char vm[64];
	json_t *v = NULL;
	if (!strcmp(jstr(rec, "SR"), sr))
		e = xerr_newf(XE_OPERATION_NOT_ALLOWED, "VDI %s is on SR %s already", vdi, sr);
	else
		e = vm_of(c->ac_pd->pd_db, vdi, vm);
	json_decref(rec);
	if (e)
		return e;
	v = db_obj_get(c->ac_pd->pd_db, vm);
	json_t *map = json_pack("{s:s}", vdi, sr), *none = json_object();
	char host[64];
	snprintf(host, sizeof host, "%s", jstr(v, "resident_on"));
	json_decref(v);
	struct admit_ctx x = {c->ac_pd, {vm, host, map, none, false, true}, "vdi", json_deep_copy(opts)};
	e = admit(c, &x);
	json_decref(x.opts);
	json_decref(map);
	json_decref(none);
	return e;
}
