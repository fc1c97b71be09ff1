/*
 * api_vm_live.c - a VM's memory and vCPUs, halted or running (seed 003):
 * VM.set_memory_dynamic_range (and the dynamic_min/max setters, which
 * XAPI turns into it), set_memory_target_live, set_memory,
 * set_memory_static_range, set_VCPUs_number_live; and what a client asks
 * before acting: get_allowed_VBD_devices, get_allowed_VIF_devices,
 * assert_can_boot_here, assert_operation_valid.
 *
 * On a running VM the guest really follows: its host's agent moves the
 * balloon target (the sim guest gives pages back or takes more, and the
 * memory it holds is what VM_metrics.memory_actual then says) or brings
 * vCPUs online. The limits are checked first (vm_limits.c), the target
 * chosen by vm_rules.c; the operation is in current_operations meanwhile.
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

static json_int_t ival(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* A change of memory or vCPUs: the fields to write once the agent (if
 * any) has done its part. */
struct live {
	char lv_vm[64], lv_id[64], lv_op[32];
	json_t *lv_fields;      /* VM fields to write */
	bool lv_vcpus;          /* VM_metrics.VCPUs_number follows the answer */
};

static json_t *begin_txn(struct db *db, void *ctx)
{
	struct live *l = ctx;
	return ops_begin(db, l->lv_vm, l->lv_op, l->lv_id);
}

static json_t *end_txn(struct db *db, void *ctx)
{
	struct live *l = ctx;
	return ops_end(db, l->lv_vm, l->lv_id);
}

static void live_failed(struct poold *pd, void *ctx, json_t **err)
{
	(void)err;
	struct live *l = ctx;
	txn_until_done(pd, end_txn, l, sizeof *l, "the end of a VM operation");
	json_decref(l->lv_fields);
}

struct live_ans {
	struct live *la_l;
	json_t *la_answer; /* NULL: nothing ran (a halted VM) */
};

static json_t *done_txn(struct db *db, void *ctx)
{
	struct live_ans *a = ctx;
	struct live *l = a->la_l;
	json_t *v, *e = db_obj_get_checked(db, "VM", l->lv_vm, &v);
	if (e)
		return e;
	const char *m = jstr(v, "metrics");
	json_t *after = json_deep_copy(v);
	json_object_update(after, l->lv_fields);
	e = vm_check_limits(l->lv_vm, v, after);
	json_decref(after);
	if (!e)
		e = db_obj_update(db, l->lv_vm, l->lv_fields);
	if (!e && a->la_answer && *m && strcmp(m, MODEL_NULL_REF)) {
		json_t *mf = l->lv_vcpus ? json_pack("{s:O}", "VCPUs_number", json_object_get(a->la_answer, "vcpus"))
					 : json_pack("{s:O}", "memory_actual", json_object_get(a->la_answer, "memory_actual"));
		e = db_obj_update_new(db, m, mf);
	}
	json_decref(v);
	return e ? e : ops_end(db, l->lv_vm, l->lv_id);
}

static json_t *live_done(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t **result)
{
	(void)c, (void)result;
	struct live *l = ctx;
	struct live_ans a = {l, answer};
	json_t *e = db_txn(pd->pd_db, done_txn, &a);
	json_decref(l->lv_fields);
	return e;
}

/* Begin op on vm; a running VM's host's agent does method(params) first
 * (params NULL: records only), then fields are written. Takes fields and
 * params. */
static json_t *live_run(struct api_call *c, const char *vm, const char *op, json_t *fields, bool vcpus,
			enum agent_method m, json_t *params, const char *host)
{
	struct poold *pd = c->ac_pd;
	struct live *l = xcalloc(1, sizeof *l);
	snprintf(l->lv_vm, sizeof l->lv_vm, "%s", vm);
	snprintf(l->lv_op, sizeof l->lv_op, "%s", op);
	l->lv_fields = fields;
	l->lv_vcpus = vcpus;
	json_t *e = db_txn(pd->pd_db, begin_txn, l);
	if (e || !params) {
		if (!e) {
			struct live_ans a = {l, NULL};
			e = db_txn(pd->pd_db, done_txn, &a);
			if (e)
				json_decref(db_txn(pd->pd_db, end_txn, l));
		}
		json_decref(params);
		json_decref(l->lv_fields);
		free(l);
		return e;
	}
	return agent_call(c, host, m, params, live_done, live_failed, l);
}

/* The limits vm would have with fields written: the error, or NULL. */
static json_t *limits_ok(const char *vm, const json_t *rec, const json_t *fields)
{
	json_t *after = json_deep_copy(rec);
	json_object_update(after, (json_t *)fields);
	json_t *e = vm_check_limits(vm, rec, after);
	json_decref(after);
	return e;
}

/* ------------------------------------------------------------ memory */

/* The dynamic range [min, max]; a running VM's balloon follows. */
static json_t *dynamic_range(struct api_call *c, const char *vm, json_int_t min, json_int_t max)
{
	struct poold *pd = c->ac_pd;
	json_t *rec, *e = db_obj_get_checked(pd->pd_db, "VM", vm, &rec);
	if (e)
		return e;
	json_t *fields = json_pack("{s:I, s:I, s:I}", "memory_dynamic_min", min, "memory_dynamic_max", max,
				   "memory_target", min);
	if ((e = ops_assert(pd->pd_db, vm, "changing_dynamic_range")) || (e = limits_ok(vm, rec, fields))) {
		json_decref(fields);
		json_decref(rec);
		return e;
	}
	json_t *params = NULL;
	const char *host = jstr(rec, "resident_on");
	if (strcmp(jstr(rec, "power_state"), "Running") == 0) {
		json_t *metrics = db_obj_get(pd->pd_db, jstr(rec, "metrics")), *h = db_obj_get(pd->pd_db, host);
		json_t *hm = db_obj_get(pd->pd_db, jstr(h, "metrics"));
		json_int_t held = ival(metrics, "memory_actual"), target;
		e = vm_live_target(min, max, held ? held : ival(rec, "memory_static_max"), ival(hm, "memory_free"), &target);
		if (!e)
			params = json_pack("[s,I]", jstr(rec, "uuid"), target);
		json_decref(hm);
		json_decref(h);
		json_decref(metrics);
	}
	char hostref[64];
	snprintf(hostref, sizeof hostref, "%s", host);
	json_decref(rec);
	if (e) {
		json_decref(fields);
		return e;
	}
	return live_run(c, vm, "changing_dynamic_range", fields, false, AGENT_VM_SET_MEMORY, params, hostref);
}

/* VM.set_memory_dynamic_range(vm, min, max) */
json_t *vm_set_memory_dynamic_range(struct api_call *c)
{
	const char *vm;
	json_int_t min, max;
	json_t *e = api_arg_ref(c, 0, "VM", &vm);
	if (e || (e = api_arg_int(c, 1, "min", &min)) || (e = api_arg_int(c, 2, "max", &max)))
		return e;
	return dynamic_range(c, vm, min, max);
}

/* VM.set_memory_dynamic_min / _max(vm, value): as XAPI, a dynamic range
 * with the other bound as it is. */
static json_t *dynamic_bound(struct api_call *c, bool is_max)
{
	const char *vm;
	json_int_t v;
	json_t *rec, *e = api_arg_ref(c, 0, "VM", &vm);
	if (e || (e = api_arg_int(c, 1, "value", &v)) || (e = db_obj_get_checked(c->ac_pd->pd_db, "VM", vm, &rec)))
		return e;
	json_int_t min = is_max ? ival(rec, "memory_dynamic_min") : v, max = is_max ? v : ival(rec, "memory_dynamic_max");
	json_decref(rec);
	return dynamic_range(c, vm, min, max);
}

json_t *vm_set_memory_dynamic_max(struct api_call *c)
{
	return dynamic_bound(c, true);
}

json_t *vm_set_memory_dynamic_min(struct api_call *c)
{
	return dynamic_bound(c, false);
}

/* VM.set_memory_target_live(vm, target): a running VM's balloon target,
 * within its dynamic range (XAPI keeps this deprecated call as a no-op;
 * here the guest follows). */
json_t *vm_set_memory_target_live(struct api_call *c)
{
	struct poold *pd = c->ac_pd;
	const char *vm;
	json_int_t target;
	json_t *rec, *e = api_arg_ref(c, 0, "VM", &vm);
	if (e || (e = api_arg_int(c, 1, "target", &target)) || (e = db_obj_get_checked(pd->pd_db, "VM", vm, &rec)))
		return e;
	if (!(e = ops_assert(pd->pd_db, vm, "changing_memory_live")) &&
	    (target < ival(rec, "memory_dynamic_min") || target > ival(rec, "memory_dynamic_max")))
		e = xerr_new(XE_MEMORY_CONSTRAINT_VIOLATION, "dynamic_min <= target <= dynamic_max", NULL);
	json_t *params = e ? NULL : json_pack("[s,I]", jstr(rec, "uuid"), target);
	char host[64];
	snprintf(host, sizeof host, "%s", jstr(rec, "resident_on"));
	json_decref(rec);
	if (e)
		return e;
	return live_run(c, vm, "changing_memory_live", json_pack("{s:I}", "memory_target", target), false,
			AGENT_VM_SET_MEMORY, params, host);
}

/* Halted-only changes of the memory limits (XAPI's set_memory and
 * set_memory_static_range). */
static json_t *halted_limits(struct api_call *c, const char *op, json_t *(*fields_of)(const json_t *rec, json_int_t a,
										       json_int_t b),
			     json_int_t a, json_int_t b)
{
	const char *vm;
	json_t *rec, *e = api_arg_ref(c, 0, "VM", &vm);
	if (e || (e = db_obj_get_checked(c->ac_pd->pd_db, "VM", vm, &rec)))
		return e;
	json_t *fields = fields_of(rec, a, b);
	json_decref(rec);
	if ((e = ops_assert(c->ac_pd->pd_db, vm, op))) {
		json_decref(fields);
		return e;
	}
	return live_run(c, vm, op, fields, false, AGENT_VM_SET_MEMORY, NULL, "");
}

static json_t *memory_fields(const json_t *rec, json_int_t v, json_int_t unused)
{
	(void)rec, (void)unused;
	return json_pack("{s:I, s:I, s:I}", "memory_static_max", v, "memory_dynamic_min", v, "memory_dynamic_max", v);
}

static json_t *static_fields(const json_t *rec, json_int_t min, json_int_t max)
{
	(void)rec;
	return json_pack("{s:I, s:I}", "memory_static_min", min, "memory_static_max", max);
}

/* VM.set_memory(vm, value): static_max, dynamic_min and dynamic_max. */
json_t *vm_set_memory(struct api_call *c)
{
	json_int_t v;
	json_t *e = api_arg_int(c, 1, "value", &v);
	return e ? e : halted_limits(c, "changing_memory_limits", memory_fields, v, 0);
}

/* VM.set_memory_static_range(vm, min, max) */
json_t *vm_set_memory_static_range(struct api_call *c)
{
	json_int_t min, max;
	json_t *e = api_arg_int(c, 1, "min", &min);
	if (e || (e = api_arg_int(c, 2, "max", &max)))
		return e;
	return halted_limits(c, "changing_static_range", static_fields, min, max);
}

/* ------------------------------------------------------------ vCPUs */

/* VM.set_VCPUs_number_live(vm, nvcpu): vCPUs online in the running guest;
 * VCPUs_at_startup and VM_metrics.VCPUs_number follow, as XAPI. */
json_t *vm_set_vcpus_number_live(struct api_call *c)
{
	struct poold *pd = c->ac_pd;
	const char *vm;
	json_int_t n;
	json_t *rec, *e = api_arg_ref(c, 0, "VM", &vm);
	if (e || (e = api_arg_int(c, 1, "nvcpu", &n)) || (e = db_obj_get_checked(pd->pd_db, "VM", vm, &rec)))
		return e;
	if (!(e = ops_assert(pd->pd_db, vm, "changing_VCPUs_live")))
		e = vm_vcpus_live_check(n, ival(rec, "VCPUs_max"));
	json_t *params = e ? NULL : json_pack("[s,I]", jstr(rec, "uuid"), n);
	char host[64];
	snprintf(host, sizeof host, "%s", jstr(rec, "resident_on"));
	json_decref(rec);
	if (e)
		return e;
	return live_run(c, vm, "changing_VCPUs_live", json_pack("{s:I}", "VCPUs_at_startup", n), true,
			AGENT_VM_SET_VCPUS, params, host);
}

/* ------------------------------------------------------ the questions */

static json_t *devices_of(struct api_call *c, const char *cls, const char *field, int last)
{
	const char *vm;
	json_t *rec, *e = api_arg_ref(c, 0, "VM", &vm);
	if (e || (e = db_obj_get_checked(c->ac_pd->pd_db, "VM", vm, &rec)))
		return e;
	json_decref(rec);
	json_t *devs = db_find(c->ac_pd->pd_db, cls, "VM", vm), *used = json_array();
	const char *k;
	json_t *d;
	json_object_foreach(devs, k, d) json_array_append_new(used, json_string(jstr(d, field)));
	c->ac_result = vm_allowed_devices(used, 0, last);
	json_decref(used);
	json_decref(devs);
	return NULL;
}

/* VM.get_allowed_VBD_devices(vm): "0".."254" not taken by its VBDs. */
json_t *vm_get_allowed_vbd_devices(struct api_call *c)
{
	return devices_of(c, "VBD", "userdevice", VM_VBD_DEVICES_MAX);
}

/* VM.get_allowed_VIF_devices(vm): "0".."15" not taken by its VIFs. */
json_t *vm_get_allowed_vif_devices(struct api_call *c)
{
	return devices_of(c, "VIF", "device", VM_VIF_DEVICES_MAX);
}

/* VM.assert_can_boot_here(vm, host): placement's verdict for this host, as
 * a start (halted), a resume (suspended, CPU too) or a migration's
 * destination (running), without reserving anything. */
json_t *vm_assert_can_boot_here(struct api_call *c)
{
	struct poold *pd = c->ac_pd;
	const char *vm, *host;
	json_t *rec, *e = api_arg_ref(c, 0, "VM", &vm);
	if (e || (e = api_arg_ref(c, 1, "host", &host)) || (e = db_obj_get_checked(pd->pd_db, "VM", vm, &rec)))
		return e;
	const char *ps = jstr(rec, "power_state");
	bool running = strcmp(ps, "Running") == 0 || strcmp(ps, "Paused") == 0;
	unsigned flags = strcmp(ps, "Suspended") == 0 ? PLACE_START | PLACE_RESUME : running ? PLACE_MIGRATE : PLACE_START;
	char src[64];
	snprintf(src, sizeof src, "%s", jstr(rec, "resident_on"));
	json_decref(rec);
	json_t *vms = json_pack("[s]", vm), *hosts = json_pack("[s]", host);
	struct snap sn;
	e = snap_build(pd->pd_db, running ? src : NULL, vms, hosts, flags, &sn);
	if (!e)
		e = place_assert(&sn.sn_pool.pp_vms[0], sn.sn_pool.pp_source, &sn.sn_pool.pp_hosts[0], flags);
	snap_free(&sn);
	json_decref(vms);
	json_decref(hosts);
	return e;
}

/* VM.assert_operation_valid(vm, op): ops.c's verdict on op now. */
json_t *vm_assert_operation_valid(struct api_call *c)
{
	const char *vm, *op;
	json_t *rec, *e = api_arg_ref(c, 0, "VM", &vm);
	if (e || (e = api_arg_str(c, 1, "op", &op)) || (e = db_obj_get_checked(c->ac_pd->pd_db, "VM", vm, &rec)))
		return e;
	json_decref(rec);
	return ops_assert(c->ac_pd->pd_db, vm, op);
}
