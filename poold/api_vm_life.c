/*
 * api_vm_life.c - VM.clean_reboot, VM.hard_reboot, VM.suspend, VM.resume,
 * VM.resume_on, VM.power_state_reset, and what a suspended VM needs of
 * VM.hard_shutdown, VM.shutdown and VM.destroy (its suspend image goes).
 *
 * Every operation is in the VM's current_operations for its duration and
 * holds scheduled_to_be_resident_on (the host it runs on, or the host it
 * resumes on), so heartbeats that see the domain vanish and come back
 * meanwhile decide nothing: the agent's answer records the outcome, and
 * reports older than it cannot undo it. A failure leaves the VM as it was:
 * running (a suspend that failed resumed the guest), or suspended with its
 * image (a resume that failed).
 *
 * A suspend image is a VDI of type "suspend" in the VM's suspend_SR, else
 * the pool's suspend_image_SR, the host's suspend_image_sr, the pool's
 * default_SR (VM_NO_SUSPEND_SR when none is plugged on the VM's host).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "ops.h"
#include "poold.h"
#include "util.h"
#include "vm_rules.h"
#include "xerr.h"

json_t *vm_hard_shutdown(struct api_call *c);
json_t *vm_clean_shutdown(struct api_call *c);
json_t *vm_destroy(struct api_call *c);

/* What a life-cycle operation remembers while the agent works. */
struct life {
	char lf_vm[64], lf_host[64], lf_op[24], lf_id[64];
	char lf_sr[64], lf_vdi[64], lf_vdi_uuid[48]; /* the suspend image */
	bool lf_paused;
	char lf_vendor[32], lf_features[9 * 32 + 1];
};

/* An agent's answer to record for l (a transaction's context). */
struct life_ans {
	struct life *la_l;
	json_t *la_answer;
};

/* In a transaction: the operation begins and holds the host. */
static json_t *life_begin_txn(struct db *db, void *ctx)
{
	struct life *l = ctx;
	json_t *e = ops_begin(db, l->lf_vm, l->lf_op, l->lf_id);
	if (e || !*l->lf_host || strcmp(l->lf_host, MODEL_NULL_REF) == 0)
		return e;
	return db_obj_set(db, l->lf_vm, "scheduled_to_be_resident_on", json_string(l->lf_host));
}

/* In a transaction: it ended without changing the VM. */
static json_t *life_end_txn(struct db *db, void *ctx)
{
	struct life *l = ctx;
	json_t *v = db_obj_get(db, l->lf_vm);
	if (!v)
		return NULL;
	json_decref(v);
	json_t *e = ops_end(db, l->lf_vm, l->lf_id);
	return e ? e : db_obj_set(db, l->lf_vm, "scheduled_to_be_resident_on", json_string(MODEL_NULL_REF));
}

static void life_failed(struct poold *pd, void *ctx, json_t **err)
{
	(void)err;
	txn_until_done(pd, life_end_txn, ctx, sizeof(struct life), "the end of a VM operation");
}

/* The VM's record with the operation's own check first (its power state,
 * operations in flight). */
static json_t *life_load(struct api_call *c, const char *op, struct life *l, json_t **rec)
{
	const char *vm;
	*rec = NULL;
	json_t *e = api_arg_ref(c, 0, "VM", &vm);
	if (e || (e = db_obj_get_checked(c->ac_pd->pd_db, "VM", vm, rec)))
		return e;
	snprintf(l->lf_vm, sizeof l->lf_vm, "%s", vm);
	snprintf(l->lf_op, sizeof l->lf_op, "%s", op);
	snprintf(l->lf_host, sizeof l->lf_host, "%s", jstr(*rec, "resident_on"));
	e = ops_assert(c->ac_pd->pd_db, vm, op);
	if (e) {
		json_decref(*rec);
		*rec = NULL;
	}
	return e;
}

/* ------------------------------------------------------------- reboot */

static json_t *rebooted_txn(struct db *db, void *ctx)
{
	struct life_ans *la = ctx;
	struct life *l = la->la_l;
	json_t *v = db_obj_get(db, l->lf_vm);
	if (!v)
		return NULL;
	char now[32];
	model_now(now);
	json_t *e = life_end_txn(db, l);
	const char *m = jstr(v, "metrics");
	if (!e)
		e = db_obj_update_new(db, l->lf_vm,
				      json_pack("{s:s, s:I, s:{s:s, s:s}}", "power_state", "Running", "domid",
						json_integer_value(json_object_get(la->la_answer, "domid")), "last_boot_CPU_flags",
						"vendor", l->lf_vendor, "features", l->lf_features));
	if (!e && *m)
		e = db_obj_update_new(db, m, json_pack("{s:s, s:I, s:I}", "start_time", now, "memory_actual",
						       json_integer_value(json_object_get(v, "memory_static_max")),
						       "VCPUs_number", json_integer_value(json_object_get(v, "VCPUs_at_startup"))));
	json_decref(v);
	return e;
}

static json_t *rebooted(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t **result)
{
	(void)c, (void)result;
	struct life *l = ctx;
	vm_changed_stamp(pd, l->lf_vm, l->lf_host, answer, true);
	struct life_ans la = {l, answer};
	return db_txn(pd->pd_db, rebooted_txn, &la);
}

static json_t *reboot(struct api_call *c, bool hard)
{
	struct life *l = xcalloc(1, sizeof *l);
	json_t *rec, *e = life_load(c, hard ? "hard_reboot" : "clean_reboot", l, &rec);
	if (!e)
		e = db_txn(c->ac_pd->pd_db, life_begin_txn, l);
	if (e) {
		json_decref(rec);
		free(l);
		return e;
	}
	json_t *cfg = start_config(c->ac_pd->pd_db, c->ac_pd->pd_pool_ref, l->lf_vm, rec, false);
	snprintf(l->lf_vendor, sizeof l->lf_vendor, "%s", jstr(cfg, "cpu_vendor"));
	snprintf(l->lf_features, sizeof l->lf_features, "%s", jstr(cfg, "featureset"));
	json_decref(rec);
	return agent_call(c, l->lf_host, AGENT_VM_REBOOT, json_pack("[o,b]", cfg, hard), rebooted, life_failed, l);
}

json_t *vm_clean_reboot(struct api_call *c)
{
	return reboot(c, false);
}

json_t *vm_hard_reboot(struct api_call *c)
{
	return reboot(c, true);
}

/* ------------------------------------------------------------ suspend */

json_t *vm_suspend_sr(struct db *db, const char *pool, const json_t *vm, const char *host, char *out)
{
	json_t *p = db_obj_get(db, pool), *h = db_obj_get(db, host), *pbds = db_find(db, "PBD", "host", host);
	json_t *plugged = json_array();
	const char *k;
	json_t *pb;
	json_object_foreach(pbds, k, pb) if (json_is_true(json_object_get(pb, "currently_attached")))
		json_array_append_new(plugged, json_string(jstr(pb, "SR")));
	const char *want[4] = {jstr(vm, "suspend_SR"), jstr(p, "suspend_image_SR"), jstr(h, "suspend_image_sr"),
			       jstr(p, "default_SR")};
	const char *sr = vm_suspend_sr_choose(want, 4, plugged);
	json_t *e = sr ? NULL : xerr_new(XE_VM_NO_SUSPEND_SR, jstr(vm, "uuid"), NULL);
	if (sr)
		snprintf(out, 64, "%s", sr);
	json_decref(plugged);
	json_decref(pbds);
	json_decref(h);
	json_decref(p);
	return e;
}

static json_t *suspended_txn(struct db *db, void *ctx)
{
	struct life_ans *la = ctx;
	struct life *l = la->la_l;
	json_t *v = db_obj_get(db, l->lf_vm);
	json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:O, s:s}", "uuid", l->lf_vdi_uuid, "name_label", "Suspend image",
				"name_description", "", "SR", l->lf_sr, "virtual_size",
				json_object_get(la->la_answer, "virtual_size"), "type", "suspend");
	char ref[64];
	json_t *e = v ? vdi_record_insert(db, rec, la->la_answer, ref) : NULL;
	json_decref(rec);
	if (v && !e)
		e = ops_end(db, l->lf_vm, l->lf_id);
	if (v && !e)
		e = db_obj_update_new(db, l->lf_vm,
				      json_pack("{s:s, s:s, s:s, s:s, s:I}", "power_state", "Suspended", "suspend_VDI", ref,
						"resident_on", MODEL_NULL_REF, "scheduled_to_be_resident_on", MODEL_NULL_REF,
						"domid", (json_int_t)-1));
	json_decref(v);
	return e;
}

static json_t *suspended(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t **result)
{
	(void)c, (void)result;
	struct life *l = ctx;
	vm_changed_stamp(pd, l->lf_vm, l->lf_host, answer, true);
	struct life_ans la = {l, answer};
	return db_txn(pd->pd_db, suspended_txn, &la);
}

json_t *vm_suspend(struct api_call *c)
{
	struct life *l = xcalloc(1, sizeof *l);
	struct poold *pd = c->ac_pd;
	json_t *rec, *e = life_load(c, "suspend", l, &rec);
	if (!e)
		e = vm_suspend_sr(pd->pd_db, pd->pd_pool_ref, rec, l->lf_host, l->lf_sr);
	if (!e)
		e = db_txn(pd->pd_db, life_begin_txn, l);
	if (e) {
		json_decref(rec);
		free(l);
		return e;
	}
	model_new_uuid(l->lf_vdi_uuid);
	json_t *sr = db_obj_get(pd->pd_db, l->lf_sr);
	e = agent_call(c, l->lf_host, AGENT_VM_SUSPEND, json_pack("[s,s,s]", jstr(rec, "uuid"), jstr(sr, "uuid"), l->lf_vdi_uuid),
		       suspended, life_failed, l);
	json_decref(sr);
	json_decref(rec);
	return e;
}

/* ------------------------------------------------------------- resume */

/* Choose and hold the host (placement, as a start, with the CPU check of a
 * resume), then begin. */
static json_t *resume_reserve_txn(struct db *db, void *ctx)
{
	struct life *l = ctx;
	json_t *vms = json_pack("[s]", l->lf_vm), *hosts = *l->lf_host ? json_pack("[s]", l->lf_host) : NULL;
	struct snap sn;
	json_t *e = ops_assert(db, l->lf_vm, l->lf_op);
	if (!e)
		e = snap_build(db, NULL, vms, hosts, PLACE_START | PLACE_RESUME, &sn);
	else
		memset(&sn, 0, sizeof sn);
	const struct place_pool *p = &sn.sn_pool;
	size_t h = 0;
	if (!e && hosts)
		e = place_assert(&p->pp_vms[0], NULL, &p->pp_hosts[0], PLACE_START | PLACE_RESUME);
	else if (!e)
		e = place_choose(p, 0, NULL, 0, &h);
	if (!e)
		snprintf(l->lf_host, sizeof l->lf_host, "%s", p->pp_hosts[h].ph_ref);
	snap_free(&sn);
	json_decref(vms);
	json_decref(hosts);
	return e ? e : life_begin_txn(db, l);
}

static json_t *resumed_txn(struct db *db, void *ctx)
{
	struct life_ans *la = ctx;
	struct life *l = la->la_l;
	json_t *v = db_obj_get(db, l->lf_vm);
	if (!v)
		return NULL;
	const char *img = jstr(v, "suspend_VDI");
	json_t *e = life_end_txn(db, l);
	if (!e)
		e = db_obj_update_new(db, l->lf_vm,
				      json_pack("{s:s, s:s, s:s, s:I}", "power_state", l->lf_paused ? "Paused" : "Running",
						"resident_on", l->lf_host, "suspend_VDI", MODEL_NULL_REF, "domid",
						json_integer_value(json_object_get(la->la_answer, "domid"))));
	/* the agent removed the image's file */
	if (!e && *img && strcmp(img, MODEL_NULL_REF) && db_obj_class(db, img, (char[32]){0}, 32))
		e = db_obj_destroy(db, img);
	if (!e)
		e = sr_space_update(db, json_object_get(la->la_answer, "sr"));
	json_decref(v);
	return e;
}

static json_t *resumed(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t **result)
{
	(void)c, (void)result;
	struct life *l = ctx;
	vm_changed_stamp(pd, l->lf_vm, l->lf_host, answer, true);
	struct life_ans la = {l, answer};
	return db_txn(pd->pd_db, resumed_txn, &la);
}

static json_t *resume_common(struct api_call *c, const char *host, size_t arg_paused)
{
	struct poold *pd = c->ac_pd;
	struct life *l = xcalloc(1, sizeof *l);
	bool force = false;
	json_t *rec, *e = life_load(c, host ? "resume_on" : "resume", l, &rec);
	if (!e && ((e = api_arg_bool(c, arg_paused, "start_paused", &l->lf_paused)) ||
		   (e = api_arg_bool(c, arg_paused + 1, "force", &force))))
		json_decref(rec);
	const char *img = e ? "" : jstr(rec, "suspend_VDI");
	json_t *vdi = e ? NULL : db_obj_get(pd->pd_db, img);
	if (!e && !vdi) {
		e = xerr_new(XE_VM_HAS_NO_SUSPEND_VDI, l->lf_vm, NULL);
		json_decref(rec);
	}
	snprintf(l->lf_host, sizeof l->lf_host, "%s", host ? host : "");
	if (!e && (e = db_txn(pd->pd_db, resume_reserve_txn, l)))
		json_decref(rec);
	if (e) {
		json_decref(vdi);
		free(l);
		return e;
	}
	json_t *cfg = start_config(pd->pd_db, pd->pd_pool_ref, l->lf_vm, rec, l->lf_paused);
	json_t *sr = db_obj_get(pd->pd_db, jstr(vdi, "SR"));
	e = agent_call(c, l->lf_host, AGENT_VM_RESUME, json_pack("[o,s,s]", cfg, jstr(sr, "uuid"), jstr(vdi, "uuid")),
		       resumed, life_failed, l);
	json_decref(sr);
	json_decref(vdi);
	json_decref(rec);
	return e;
}

json_t *vm_resume(struct api_call *c)
{
	return resume_common(c, NULL, 1);
}

json_t *vm_resume_on(struct api_call *c)
{
	const char *host;
	json_t *e = api_arg_ref(c, 1, "host", &host);
	return e ? e : resume_common(c, host, 2);
}

/* ---------------------------------------------------- power_state_reset */

static json_t *reset_txn(struct db *db, void *ctx)
{
	const char *vm = ctx;
	json_t *v, *e = db_obj_get_checked(db, "VM", vm, &v);
	if (e)
		return e;
	if (json_is_true(json_object_get(v, "is_control_domain"))) {
		json_decref(v);
		return xerr_new(XE_CANNOT_RESET_CONTROL_DOMAIN, vm, NULL);
	}
	/* a live host speaks for its VMs: only a dead host's can be reset */
	const char *ps = jstr(v, "power_state"), *on = jstr(v, "resident_on");
	if (strcmp(ps, "Running") == 0 || strcmp(ps, "Paused") == 0) {
		json_t *h = db_obj_get(db, on), *m = h ? db_obj_get(db, jstr(h, "metrics")) : NULL;
		if (json_is_true(json_object_get(m, "live")))
			e = xerr_new(XE_HOST_IS_LIVE, on, NULL);
		json_decref(m);
		json_decref(h);
	}
	json_decref(v);
	if (!e)
		e = db_obj_update_new(db, vm,
				      json_pack("{s:s, s:s, s:s, s:I, s:{}}", "power_state", "Halted", "resident_on",
						MODEL_NULL_REF, "scheduled_to_be_resident_on", MODEL_NULL_REF, "domid",
						(json_int_t)-1, "current_operations"));
	return e;
}

/* VM.power_state_reset(vm): recorded halted, in the database only (a VM
 * of a host that died); refused while its host is live (HOST_IS_LIVE). */
json_t *vm_power_state_reset(struct api_call *c)
{
	const char *vm;
	json_t *e = api_arg_ref(c, 0, "VM", &vm);
	if (!e)
		e = db_txn(c->ac_pd->pd_db, reset_txn, (void *)vm);
	if (!e)
		log_warn("VM %s: power state reset to halted by request", vm);
	return e;
}

/* --------------------------------------------- a suspended VM's image */

/* The image gone (or not: its record stays then, with its file), the VM
 * halted, as XAPI's hard_shutdown of a suspended VM. */
static json_t *discarded_txn(struct db *db, void *ctx)
{
	struct life_ans *la = ctx;
	struct life *l = la->la_l;
	json_t *v = db_obj_get(db, l->lf_vm);
	if (!v)
		return NULL;
	json_decref(v);
	json_t *e = ops_end(db, l->lf_vm, l->lf_id);
	if (!e)
		e = db_obj_update_new(db, l->lf_vm, json_pack("{s:s, s:s}", "power_state", "Halted", "suspend_VDI",
							      MODEL_NULL_REF));
	if (!e && la->la_answer && db_obj_class(db, l->lf_vdi, (char[32]){0}, 32))
		e = db_obj_destroy(db, l->lf_vdi);
	if (!e && la->la_answer)
		e = sr_space_update(db, json_object_get(la->la_answer, "sr"));
	return e;
}

static json_t *discarded(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err,
			 json_t **result)
{
	(void)c, (void)result;
	struct life *l = ctx;
	if (err)
		log_warn("VM %s: its suspend image %s could not be removed (%s): kept as a VDI", l->lf_vm, l->lf_vdi,
			 xerr_code_of(err));
	struct life_ans la = {l, err ? NULL : answer};
	return db_txn(pd->pd_db, discarded_txn, &la);
}

/* Halt a suspended VM under operation op: its image goes, then `then`
 * records it (and may go on). */
static json_t *discard(struct api_call *c, const char *vm, const char *op, agent_done_fn then)
{
	struct poold *pd = c->ac_pd;
	struct life *l = xcalloc(1, sizeof *l);
	snprintf(l->lf_vm, sizeof l->lf_vm, "%s", vm);
	snprintf(l->lf_op, sizeof l->lf_op, "%s", op);
	json_t *v = db_obj_get(pd->pd_db, vm);
	snprintf(l->lf_vdi, sizeof l->lf_vdi, "%s", jstr(v, "suspend_VDI"));
	json_decref(v);
	json_t *e = db_txn(pd->pd_db, life_begin_txn, l); /* lf_host "": holds nothing */
	if (e) {
		free(l);
		return e;
	}
	json_t *vdi = db_obj_get(pd->pd_db, l->lf_vdi), *sr = vdi ? db_obj_get(pd->pd_db, jstr(vdi, "SR")) : NULL;
	char host[64];
	if (!sr || !sr_worker(pd->pd_db, jstr(vdi, "SR"), host)) {
		json_t *none = xerr_new(XE_SR_HAS_NO_PBDS, vdi ? jstr(vdi, "SR") : MODEL_NULL_REF, NULL), *r = NULL;
		e = then(c, pd, l, NULL, none, &r);
		json_decref(none);
		free(l);
		if (!e && c && r)
			c->ac_result = r;
	} else {
		e = agent_call_done(pd, c, host, AGENT_VDI_DESTROY, json_pack("[s,s]", jstr(sr, "uuid"), jstr(vdi, "uuid")),
				    then, l);
	}
	json_decref(sr);
	json_decref(vdi);
	return e;
}

static bool suspended_vm(struct api_call *c)
{
	json_t *v = db_obj_get(c->ac_pd->pd_db, json_string_value(json_array_get(c->ac_args, 0)));
	bool s = v && strcmp(jstr(v, "power_state"), "Suspended") == 0;
	json_decref(v);
	return s;
}

/* VM.hard_shutdown: a suspended VM's image goes, others' domains. */
json_t *vm_hard_shutdown_any(struct api_call *c)
{
	if (!suspended_vm(c))
		return vm_hard_shutdown(c);
	const char *vm;
	json_t *e = api_arg_ref(c, 0, "VM", &vm);
	return e ? e : discard(c, vm, "hard_shutdown", discarded);
}

/* VM.shutdown: clean when running, else hard (a paused or suspended VM). */
json_t *vm_shutdown_any(struct api_call *c)
{
	json_t *v = db_obj_get(c->ac_pd->pd_db, json_string_value(json_array_get(c->ac_args, 0)));
	bool running = v && strcmp(jstr(v, "power_state"), "Running") == 0;
	json_decref(v);
	return running ? vm_clean_shutdown(c) : vm_hard_shutdown_any(c);
}

static json_t *then_destroy(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err,
			    json_t **result)
{
	json_t *e = discarded(c, pd, ctx, answer, err, result);
	if (e || !c)
		return e;
	return vm_destroy(c); /* the same arguments: the VM, halted now */
}

/* VM.destroy: a suspended VM's image goes first (XAPI allows destroying a
 * suspended VM). */
json_t *vm_destroy_any(struct api_call *c)
{
	const char *vm;
	json_t *e = api_arg_ref(c, 0, "VM", &vm);
	if (e || !suspended_vm(c))
		return e ? e : vm_destroy(c);
	return discard(c, vm, "destroy", then_destroy);
}
