/*
 * api_migrate.c - VM.pool_migrate: poold checks and reserves, the agents
 * move the memory between themselves (never through poold).
 *
 * 1. Every check before anything moves (migcheck.c), then the destination
 *    is reserved in the database (scheduled_to_be_resident_on: its memory
 *    counts as taken, the VM is busy).
 * 2. The destination's agent prepares: a paused, empty domain and a
 *    one-time endpoint bound to a random token (agent.migrate_receive).
 * 3. The source's agent streams to it (agent.migrate_send) and answers when
 *    the destination has said RUNNING; before GO any failure leaves the VM
 *    running on the source.
 * 4. poold moves resident_on in one transaction; the destination's report
 *    taken right after stamps the order for later heartbeats.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>
#include "log.h"
#include "migcheck.h"
#include "poold.h"
#include "xerr.h"

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* The SRs of the VM's disks (into an array of strings). */
static json_t *vm_srs(struct db *db, const char *vm)
{
	json_t *vbds = db_find(db, "VBD", "VM", vm), *out = json_array();
	const char *k;
	json_t *b;
	json_object_foreach(vbds, k, b) {
		if (json_is_true(json_object_get(b, "empty")))
			continue;
		json_t *vdi = db_obj_get(db, str(b, "VDI"));
		if (vdi)
			json_array_append_new(out, json_string(str(vdi, "SR")));
		json_decref(vdi);
	}
	json_decref(vbds);
	return out;
}

static json_t *host_srs(struct db *db, const char *host)
{
	json_t *pbds = db_find(db, "PBD", "host", host), *out = json_array();
	const char *k;
	json_t *p;
	json_object_foreach(pbds, k, p) if (json_is_true(json_object_get(p, "currently_attached")))
		json_array_append_new(out, json_string(str(p, "SR")));
	json_decref(pbds);
	return out;
}

/* Strings of a JSON array as a C array (borrowed; freed by the caller). */
static const char **strings(json_t *arr)
{
	size_t n = json_array_size(arr);
	const char **out = calloc(n ? n : 1, sizeof *out);
	for (size_t i = 0; out && i < n; i++)
		out[i] = json_string_value(json_array_get(arr, i));
	return out;
}

struct host_view {
	struct mig_host hv;
	json_t *hv_rec, *hv_srs;
	const char **hv_srlist;
};

static void host_view_fill(struct poold *pd, const char *ref, struct host_view *v)
{
	struct db *db = pd->pd_db;
	v->hv_rec = db_obj_get(db, ref);
	json_t *m = db_obj_get(db, str(v->hv_rec, "metrics"));
	v->hv_srs = host_srs(db, ref);
	v->hv_srlist = strings(v->hv_srs);
	json_t *cpu = json_object_get(v->hv_rec, "cpu_info");
	v->hv = (struct mig_host){ref,
				  json_is_true(json_object_get(v->hv_rec, "enabled")),
				  json_is_true(json_object_get(m, "live")),
				  *str(json_object_get(v->hv_rec, "other_config"), "agent_address") != '\0',
				  false,
				  str(cpu, "vendor"),
				  str(cpu, "features"),
				  str(json_object_get(v->hv_rec, "software_version"), "product_version"),
				  host_available(db, ref, v->hv_rec),
				  v->hv_srlist,
				  json_array_size(v->hv_srs)};
	json_decref(m);
}

static void host_view_free(struct host_view *v)
{
	free(v->hv_srlist);
	json_decref(v->hv_srs);
	json_decref(v->hv_rec);
}

/* The checks, then the reservation, in one transaction. */
struct reserve_ctx {
	struct poold *pd;
	const char *vm, *dst;
	bool force;
	char src[64];
};

static json_t *reserve_txn(struct db *db, void *ctx)
{
	struct reserve_ctx *r = ctx;
	json_t *v, *e = db_obj_get_checked(db, "VM", r->vm, &v);
	if (e)
		return e;
	snprintf(r->src, sizeof r->src, "%s", str(v, "resident_on"));
	json_t *flags = json_object_get(v, "last_boot_CPU_flags");
	json_t *platform = json_object_get(v, "platform");
	json_t *srs = vm_srs(db, r->vm);
	const char **srlist = strings(srs);
	struct mig_vm mv = {r->vm,
			    str(v, "power_state"),
			    r->src,
			    strcmp(str(v, "scheduled_to_be_resident_on"), MODEL_NULL_REF) != 0,
			    strcmp(str(platform, "nomigrate"), "true") == 0 || strcmp(str(platform, "nomigrate"), "1") == 0,
			    json_array_size(json_object_get(v, "attached_PCIs")) > 0,
			    json_array_size(json_object_get(v, "VUSBs")) > 0,
			    json_integer_value(json_object_get(v, "memory_static_max")),
			    str(flags, "vendor"),
			    str(flags, "features"),
			    srlist,
			    json_array_size(srs)};
	struct host_view src = {0}, dst = {0};
	bool have_src = strcmp(r->src, MODEL_NULL_REF) != 0;
	if (have_src)
		host_view_fill(r->pd, r->src, &src);
	char cls[32];
	if (!db_obj_class(db, r->dst, cls, sizeof cls) || strcmp(cls, "host"))
		e = xerr_new(XE_HANDLE_INVALID, "host", r->dst, NULL);
	if (!e) {
		host_view_fill(r->pd, r->dst, &dst);
		e = mig_check(&mv, have_src ? &src.hv : NULL, &dst.hv, r->force);
		host_view_free(&dst);
	}
	if (have_src)
		host_view_free(&src);
	free(srlist);
	json_decref(srs);
	json_decref(v);
	return e ? e : db_obj_set(db, r->vm, "scheduled_to_be_resident_on", json_string(r->dst));
}

static json_t *unreserve_txn(struct db *db, void *ctx)
{
	return db_obj_set(db, ctx, "scheduled_to_be_resident_on", json_string(MODEL_NULL_REF));
}

/* What the migration remembers across its three agent calls. */
struct mig_job {
	char mj_vm[64], mj_uuid[48], mj_src[64], mj_dst[64];
	char mj_token[64];
	json_t *mj_opts;   /* {compress, max_downtime_ms, max_rounds, verify, live} */
	char mj_address[64]; /* the destination's address for the stream */
	json_t *mj_stats;  /* the source's report of the migration */
	json_t *mj_cfg;    /* the domain's configuration (start_config) */
};

struct mig_step {
	struct mig_job *ms_job;
};

static void job_free(struct mig_job *j)
{
	json_decref(j->mj_opts);
	json_decref(j->mj_stats);
	json_decref(j->mj_cfg);
	free(j);
}

struct moved_ctx {
	struct mig_job *j;
	json_t *report; /* the destination's report right after */
};

static json_t *moved_txn(struct db *db, void *ctx)
{
	struct moved_ctx *m = ctx;
	json_int_t domid = -1;
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(m->report, "domains"), i, d) if (strcmp(str(d, "uuid"), m->j->mj_uuid) == 0)
		domid = json_integer_value(json_object_get(d, "domid"));
	return db_obj_update_new(db, m->j->mj_vm,
				 json_pack("{s:s, s:s, s:s, s:I}", "resident_on", m->j->mj_dst,
					   "scheduled_to_be_resident_on", MODEL_NULL_REF, "power_state", "Running",
					   "domid", domid));
}

/* Before GO failed: the VM runs on the source as before; the task says
 * VM_MIGRATE_FAILED [vm, source, destination, why]. */
static void job_failed(struct poold *pd, void *ctx, json_t **err)
{
	struct mig_step *st = ctx;
	struct mig_job *j = st->ms_job;
	char *text = xerr_to_text(*err);
	json_t *e = xerr_new(XE_VM_MIGRATE_FAILED, j->mj_vm, j->mj_src, j->mj_dst, text ? text : "?", NULL);
	free(text);
	json_decref(*err);
	*err = e;
	json_decref(db_txn(pd->pd_db, unreserve_txn, j->mj_vm));
	log_warn("VM %s: migration to %s failed; it runs on %s", j->mj_vm, j->mj_dst, j->mj_src);
	job_free(j);
}

/* The VM moved, but the destination's report could not be had: record the
 * move all the same (its domid comes with the next heartbeat). */
static void report_failed(struct poold *pd, void *ctx, json_t **err)
{
	struct mig_step *st = ctx;
	struct moved_ctx m = {st->ms_job, NULL};
	json_t *e = db_txn(pd->pd_db, moved_txn, &m);
	json_decref(*err);
	*err = e;
	job_free(st->ms_job);
}

static json_t *fail_with(struct poold *pd, struct mig_job *j, json_t *why)
{
	(void)pd;
	/* VM_MIGRATE_FAILED [vm, source, destination, msg]: the VM stays where it was */
	char *text = xerr_to_text(why);
	json_t *e = xerr_new(XE_VM_MIGRATE_FAILED, j->mj_vm, j->mj_src, j->mj_dst, text ? text : "?", NULL);
	free(text);
	json_decref(why);
	json_decref(db_txn(pd->pd_db, unreserve_txn, j->mj_vm));
	job_free(j);
	return e;
}

/* Step 3: the destination's report after the move; then the records. */
static json_t *reported_ok(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t **result)
{
	(void)c;
	struct mig_step *st = ctx;
	struct mig_job *j = st->ms_job;
	struct moved_ctx m = {j, answer};
	json_t *e = db_txn(pd->pd_db, moved_txn, &m);
	/* heartbeats made before this report must not undo the move */
	json_object_set_new(pd->pd_vm_changed, j->mj_vm,
			    json_pack("{s:s, s:O, s:O}", "host", j->mj_dst, "boot", json_object_get(answer, "boot"), "seq",
				      json_object_get(answer, "seq")));
	log_info("VM %s migrated to %s", j->mj_vm, j->mj_dst);
	if (!e)
		*result = json_string("");
	job_free(j);
	return e;
}

/* Step 2 done: the source streamed, the destination runs the VM. */
static json_t *sent_ok(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t **result)
{
	(void)result;
	struct mig_step *st = ctx;
	struct mig_job *j = st->ms_job;
	j->mj_stats = json_incref(answer);
	if (c && c->ac_task[0]) {
		char *stats = json_dumps(answer, JSON_COMPACT);
		api_task_note(pd, c->ac_task, "migration_stats", stats ? stats : "{}");
		api_task_note(pd, c->ac_task, "phase", "recording");
		free(stats);
		api_task_progress(pd, c->ac_task, 0.99);
	}
	struct mig_step *next = calloc(1, sizeof *next);
	next->ms_job = j;
	json_t *e = agent_call(c, j->mj_dst, "agent.report", json_array(), reported_ok, report_failed, next);
	return e;
}

/* Step 1 done: the destination listens; now the source sends. */
static json_t *prepared_ok(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t **result)
{
	(void)result;
	struct mig_step *st = ctx;
	struct mig_job *j = st->ms_job;
	json_int_t port = json_integer_value(json_object_get(answer, "port"));
	if (c && c->ac_task[0]) {
		api_task_note(pd, c->ac_task, "phase", "streaming");
		api_task_progress(pd, c->ac_task, 0.05);
	}
	if (port <= 0)
		return fail_with(pd, j, xerr_newf(XE_INTERNAL_ERROR, "the destination gave no endpoint"));
	struct mig_step *next = calloc(1, sizeof *next);
	next->ms_job = j;
	return agent_call(c, j->mj_src, "agent.migrate_send",
			  json_pack("[s,s,I,s,O,O]", j->mj_uuid, j->mj_address, port, j->mj_token, j->mj_opts, j->mj_cfg),
			  sent_ok, job_failed, next);
}

/* options: XAPI's map of strings (live, compress, force, network) plus
 * ours (max_downtime_ms, max_rounds, verify). */
static bool opt_bool(json_t *opts, const char *k, bool dflt)
{
	const char *s = str(opts, k);
	if (!*s)
		return dflt;
	return strcmp(s, "true") == 0 || strcmp(s, "1") == 0;
}

json_t *vm_pool_migrate(struct api_call *c)
{
	struct poold *pd = c->ac_pd;
	const char *vm, *host;
	json_t *opts, *e = api_arg_ref(c, 0, "VM", &vm);
	if (e || (e = api_arg_ref(c, 1, "host", &host)) || (e = api_arg_obj(c, 2, "options", &opts)))
		return e;
	struct reserve_ctx r = {pd, vm, host, opt_bool(opts, "force", false), ""};
	if ((e = db_txn(pd->pd_db, reserve_txn, &r)))
		return e;
	struct mig_job *j = calloc(1, sizeof *j);
	json_t *v = db_obj_get(pd->pd_db, vm);
	json_t *pool = db_obj_get(pd->pd_db, pd->pd_pool_ref);
	json_t *dst = db_obj_get(pd->pd_db, host);
	snprintf(j->mj_vm, sizeof j->mj_vm, "%s", vm);
	snprintf(j->mj_uuid, sizeof j->mj_uuid, "%s", str(v, "uuid"));
	snprintf(j->mj_src, sizeof j->mj_src, "%s", r.src);
	snprintf(j->mj_dst, sizeof j->mj_dst, "%s", host);
	/* network: the stream uses the destination's migration address */
	const char *maddr = str(json_object_get(dst, "other_config"), "migration_address");
	snprintf(j->mj_address, sizeof j->mj_address, "%s",
		 *str(opts, "network") && *maddr ? maddr : str(json_object_get(dst, "other_config"), "agent_address"));
	unsigned char raw[16];
	RAND_bytes(raw, sizeof raw);
	for (int i = 0; i < 16; i++)
		sprintf(j->mj_token + 2 * i, "%02x", raw[i]);
	bool compress = opt_bool(opts, "compress", json_is_true(json_object_get(pool, "migration_compression")));
	j->mj_opts = json_pack("{s:b, s:I, s:I, s:b, s:b}", "compress", compress, "max_downtime_ms",
			       (json_int_t)(*str(opts, "max_downtime_ms") ? atoll(str(opts, "max_downtime_ms")) : 50),
			       "max_rounds", (json_int_t)(*str(opts, "max_rounds") ? atoll(str(opts, "max_rounds")) : 30),
			       "verify", opt_bool(opts, "verify", false), "live", opt_bool(opts, "live", true));
	json_t *cfg = start_config(pd->pd_db, pd->pd_pool_ref, vm, v, false);
	/* the guest keeps the CPU it booted with, not today's pool level */
	json_t *flags = json_object_get(v, "last_boot_CPU_flags");
	json_object_set_new(cfg, "cpu_vendor", json_string(str(flags, "vendor")));
	json_object_set_new(cfg, "featureset", json_string(str(flags, "features")));
	j->mj_cfg = json_incref(cfg);
	json_decref(v);
	json_decref(pool);
	json_decref(dst);
	struct mig_step *st = calloc(1, sizeof *st);
	st->ms_job = j;
	return agent_call(c, host, "agent.migrate_receive", json_pack("[o,s,O]", cfg, j->mj_token, j->mj_opts),
			  prepared_ok, job_failed, st);
}
