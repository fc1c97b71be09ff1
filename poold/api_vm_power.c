/*
 * api_vm_power.c - VM.start, VM.start_on, VM.clean_shutdown / hard_shutdown
 * (of a running or paused VM; api_vm_life.c has VM.shutdown and a
 * suspended VM's), VM.pause, VM.unpause: poold decides, the host's agent
 * acts.
 *
 * A start first reserves the host in the database (scheduled_to_be_resident_on),
 * so two starts can never both count the same free memory, then asks the
 * agent to create and unpause the domain, and records the result when the
 * agent answers. Every check a user can trip comes before anything moves,
 * each with XAPI's error and its numbers.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "log.h"
#include "ops.h"
#include "poold.h"
#include "util.h"
#include "xerr.h"

static json_int_t ival(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

struct start_ctx {
	struct poold *pd;
	const char *vm, *want_host;
	unsigned flags;     /* PLACE_START, | PLACE_NO_HA for HA's own restarts */
	char host[64];
	char op_id[64];     /* its entry in the VM's current_operations */
	json_t *config; /* for the agent */
	char agent_host[64], agent_uuid[48];
	int agent_port;
};

/* Choose and reserve a host: the one asked for, or the one placement picks
 * (place.h: the spreading rule), both checked by place.c on a snapshot read
 * in this transaction. */
static json_t *start_reserve_txn(struct db *db, void *ctx)
{
	struct start_ctx *s = ctx;
	json_t *v, *e = db_obj_get_checked(db, "VM", s->vm, &v);
	if (e)
		return e;
	json_decref(v);
	/* the VM's own checks first, in XAPI's order (a snapshot is VM_IS_SNAPSHOT) */
	if ((e = ops_assert(db, s->vm, s->want_host ? "start_on" : "start")))
		return e;
	json_t *vms = json_pack("[s]", s->vm), *hosts = s->want_host ? json_pack("[s]", s->want_host) : NULL;
	struct snap sn;
	e = snap_build(db, NULL, vms, hosts, s->flags, &sn);
	const struct place_pool *p = &sn.sn_pool;
	size_t h = 0;
	if (!e && s->want_host)
		e = place_assert(&p->pp_vms[0], NULL, &p->pp_hosts[0], s->flags);
	else if (!e)
		e = place_choose(p, 0, NULL, 0, &h);
	if (!e)
		snprintf(s->host, sizeof s->host, "%s", p->pp_hosts[h].ph_ref);
	snap_free(&sn);
	json_decref(vms);
	json_decref(hosts);
	if (!e)
		e = ops_begin(db, s->vm, s->want_host ? "start_on" : "start", s->op_id);
	return e ? e : db_obj_set(db, s->vm, "scheduled_to_be_resident_on", json_string(s->host));
}

/* A decimal other_config value (sim workload knobs); dflt when absent. */
static long long oc_num(json_t *oc, const char *k, long long dflt)
{
	const char *s = jstr(oc, k);
	return *s ? atoll(s) : dflt;
}

static void copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src);
}

/* The disks of vm's domain: each VBD's VDI, named by SR and VDI uuid. A
 * domain that runs (a migration's, a reboot's) keeps the disks it has
 * plugged: one unplugged while it ran stays out. */
static void start_disks(struct db *db, const char *vm, bool running, struct be_domain_config *c)
{
	json_t *vbds = db_find(db, "VBD", "VM", vm);
	const char *k;
	json_t *vbd;
	json_object_foreach(vbds, k, vbd) {
		if (json_is_true(json_object_get(vbd, "empty")) || c->dc_ndisks >= BE_MAX_DISKS ||
		    (running && !json_is_true(json_object_get(vbd, "currently_attached"))))
			continue;
		json_t *vdi = db_obj_get(db, jstr(vbd, "VDI"));
		json_t *sr = db_obj_get(db, jstr(vdi, "SR"));
		struct be_disk *d = &c->dc_disks[c->dc_ndisks++];
		copy(d->bd_vdi_uuid, sizeof d->bd_vdi_uuid, jstr(vdi, "uuid"));
		copy(d->bd_sr_uuid, sizeof d->bd_sr_uuid, jstr(sr, "uuid"));
		copy(d->bd_device, sizeof d->bd_device, jstr(vbd, "userdevice"));
		d->bd_readonly = strcmp(jstr(vbd, "mode"), "RO") == 0;
		json_decref(sr);
		json_decref(vdi);
	}
	json_decref(vbds);
}

/* What the agent needs to build the domain (domain_config.h). */
json_t *start_config(struct db *db, const char *pool, const char *vm, json_t *v, bool paused)
{
	struct be_domain_config c;
	memset(&c, 0, sizeof c);
	json_t *p = db_obj_get(db, pool);
	json_t *cpu = json_object_get(p, "cpu_info");
	json_t *oc = json_object_get(v, "other_config");
	json_int_t mem = ival(v, "memory_static_max");
	copy(c.dc_uuid, sizeof c.dc_uuid, jstr(v, "uuid"));
	copy(c.dc_name, sizeof c.dc_name, jstr(v, "name_label"));
	c.dc_memory = (uint64_t)mem;
	c.dc_vcpus = (int)ival(v, "VCPUs_at_startup");
	copy(c.dc_cpu_vendor, sizeof c.dc_cpu_vendor, jstr(cpu, "vendor"));
	copy(c.dc_featureset, sizeof c.dc_featureset, jstr(cpu, "features"));
	/* XAPI's VM.domain_type: the xen backend boots "pvh" guests through pvgrub2, others as HVM */
	copy(c.dc_guest_type, sizeof c.dc_guest_type, jstr(v, "domain_type"));
	c.dc_start_paused = paused;
	const char *ps = jstr(v, "power_state");
	start_disks(db, vm, strcmp(ps, "Running") == 0 || strcmp(ps, "Paused") == 0, &c);
	/* the simulated guest's behaviour, from other_config (sim backend) */
	c.dc_workload = (struct be_workload){
		.wl_touch_pages = *jstr(oc, "sim-touch-mib") ? (uint64_t)oc_num(oc, "sim-touch-mib", 0) * 256
							    : (uint64_t)mem / 4096 / 4,
		.wl_dirty_pages_per_s = (uint64_t)oc_num(oc, "sim-dirty-pages-per-s", 0),
		.wl_working_set_pages = (uint64_t)oc_num(oc, "sim-working-set-mib", 0) * 256,
		.wl_pct_zero = (int)oc_num(oc, "sim-pct-zero", 30),
		.wl_pct_text = (int)oc_num(oc, "sim-pct-text", 50),
		.wl_pct_random = (int)oc_num(oc, "sim-pct-random", 20),
		.wl_disk_write_bytes_per_s = (uint64_t)oc_num(oc, "sim-disk-write-kib-per-s", 0) * 1024,
		.wl_heartbeat_ms = (uint32_t)oc_num(oc, "sim-heartbeat-ms", 0),
	};
	json_decref(p);
	return dcfg_to_json(&c);
}

/* What a power operation remembers while the agent works. */
struct vm_op {
	char op_vm[64], op_host[64];
	vm_started_fn op_done; /* a start nobody waits for (HA's restarts): told the outcome */
	void *op_arg;
	char op_kind[16]; /* start, shutdown, pause, unpause */
	char op_id[64];   /* its entry in the VM's current_operations */
	bool op_paused;
	char op_vendor[32], op_features[9 * 32 + 1]; /* the CPU the guest was given (start) */
};

struct record_ctx {
	struct vm_op *op;
	json_int_t domid;
};

static json_t *record_txn(struct db *db, void *ctx)
{
	struct record_ctx *r = ctx;
	struct vm_op *op = r->op;
	json_t *v = db_obj_get(db, op->op_vm);
	if (!v)
		return NULL; /* destroyed meanwhile: nothing to record */
	json_t *e = ops_end(db, op->op_vm, op->op_id);
	if (e) {
		json_decref(v);
		return e;
	}
	char now[32];
	model_now(now);
	json_t *f;
	if (strcmp(op->op_kind, "start") == 0) {
		f = json_pack("{s:s, s:s, s:s, s:I, s:{s:s, s:s}}", "power_state", op->op_paused ? "Paused" : "Running",
			      "resident_on", op->op_host, "scheduled_to_be_resident_on", MODEL_NULL_REF, "domid",
			      r->domid, "last_boot_CPU_flags", "vendor", op->op_vendor, "features", op->op_features);
		/* XAPI: a start of a VM with an HA priority makes HA keep it running */
		json_object_set_new(f, "ha_always_run", json_boolean(*jstr(v, "ha_restart_priority") != '\0'));
		const char *m = jstr(v, "metrics");
		if (*m)
			json_decref(db_obj_update_new(db, m, json_pack("{s:s, s:I, s:I}", "start_time", now, "memory_actual",
								       ival(v, "memory_static_max"), "VCPUs_number",
								       ival(v, "VCPUs_at_startup"))));
	} else if (strcmp(op->op_kind, "shutdown") == 0) {
		/* a shutdown asked for: HA leaves it halted */
		f = json_pack("{s:s, s:s, s:I, s:b}", "power_state", "Halted", "resident_on", MODEL_NULL_REF, "domid",
			      (json_int_t)-1, "ha_always_run", 0);
		json_t *ge = guest_metrics_drop(db, op->op_vm);
		if (ge) {
			json_decref(f);
			json_decref(v);
			return ge;
		}
	} else {
		f = json_pack("{s:s}", "power_state", strcmp(op->op_kind, "pause") == 0 ? "Paused" : "Running");
	}
	json_decref(v);
	return db_obj_update_new(db, op->op_vm, f);
}

static json_t *op_ok(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t **result)
{
	(void)c;
	(void)result;
	struct vm_op *op = ctx;
	struct record_ctx r = {op, json_integer_value(json_object_get(answer, "domid"))};
	/* reports older than this answer must not undo what it did */
	vm_changed_stamp(pd, op->op_vm, op->op_host, answer, true);
	return db_txn(pd->pd_db, record_txn, &r);
}

/* The agent did not do it: the reservation and the operation end. */
static json_t *op_failed_txn(struct db *db, void *ctx)
{
	struct vm_op *op = ctx;
	json_t *e = ops_end(db, op->op_vm, op->op_id);
	if (!e && strcmp(op->op_kind, "start") == 0)
		e = db_obj_set(db, op->op_vm, "scheduled_to_be_resident_on", json_string(MODEL_NULL_REF));
	return e;
}

static void op_failed(struct poold *pd, void *ctx, json_t **err)
{
	(void)err;
	txn_until_done(pd, op_failed_txn, ctx, sizeof(struct vm_op), "the end of a VM operation");
}

/* Reserve a host for vm (host: the one asked for, NULL: placement picks)
 * and make the agent's call for it. */
static struct vm_op *start_prepare(struct poold *pd, const char *vm, const char *host, bool paused, unsigned flags,
				   json_t **params, json_t **err)
{
	struct start_ctx s = {pd, vm, host, flags, "", "", NULL, "", "", 0};
	json_t *e = db_txn(pd->pd_db, start_reserve_txn, &s);
	if (e) {
		*err = e;
		return NULL;
	}
	json_t *v = db_obj_get(pd->pd_db, vm);
	json_t *cfg = start_config(pd->pd_db, pd->pd_pool_ref, vm, v, paused);
	json_decref(v);
	struct vm_op *op = calloc(1, sizeof *op);
	snprintf(op->op_vm, sizeof op->op_vm, "%s", vm);
	snprintf(op->op_host, sizeof op->op_host, "%s", s.host);
	snprintf(op->op_kind, sizeof op->op_kind, "start");
	snprintf(op->op_id, sizeof op->op_id, "%s", s.op_id);
	op->op_paused = paused;
	snprintf(op->op_vendor, sizeof op->op_vendor, "%s", jstr(cfg, "cpu_vendor"));
	snprintf(op->op_features, sizeof op->op_features, "%s", jstr(cfg, "featureset"));
	*params = json_pack("[o]", cfg);
	return op;
}

static json_t *vm_start_common(struct api_call *c, const char *vm, const char *host, bool paused)
{
	json_t *params = NULL, *e = NULL;
	struct vm_op *op = start_prepare(c->ac_pd, vm, host, paused, PLACE_START, &params, &e);
	if (!op)
		return e;
	return agent_call(c, op->op_host, AGENT_VM_START, params, op_ok, op_failed, op);
}

/* The outcome of a start nobody waits for: recorded, then told. */
static json_t *internal_done(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err,
			     json_t **result)
{
	struct vm_op *op = ctx;
	json_t *e = NULL;
	if (answer)
		e = op_ok(c, pd, ctx, answer, result);
	else
		op_failed(pd, ctx, &err);
	op->op_done(pd, op->op_arg, op->op_vm, op->op_host, answer ? e : err);
	return e;
}

json_t *vm_start_internal(struct poold *pd, const char *vm, const char *host, unsigned flags, vm_started_fn done,
			  void *arg)
{
	json_t *params = NULL, *e = NULL;
	struct vm_op *op = start_prepare(pd, vm, host, false, PLACE_START | flags, &params, &e);
	if (!op)
		return e;
	op->op_done = done;
	op->op_arg = arg;
	agent_call_done(pd, NULL, op->op_host, AGENT_VM_START, params, internal_done, op);
	return NULL;
}

json_t *vm_start(struct api_call *c)
{
	const char *vm;
	bool paused = false, force = false;
	json_t *e = api_arg_ref(c, 0, "VM", &vm);
	if (e || (e = api_arg_bool(c, 1, "start_paused", &paused)) || (e = api_arg_bool(c, 2, "force", &force)))
		return e;
	return vm_start_common(c, vm, NULL, paused);
}

json_t *vm_start_on(struct api_call *c)
{
	const char *vm, *host;
	bool paused = false, force = false;
	json_t *e = api_arg_ref(c, 0, "VM", &vm);
	if (e || (e = api_arg_ref(c, 1, "host", &host)) || (e = api_arg_bool(c, 2, "start_paused", &paused)) ||
	    (e = api_arg_bool(c, 3, "force", &force)))
		return e;
	return vm_start_common(c, vm, host, paused);
}

struct begin_ctx {
	const char *vm, *opname;
	char id[64];
};

static json_t *begin_txn(struct db *db, void *ctx)
{
	struct begin_ctx *b = ctx;
	return ops_begin(db, b->vm, b->opname, b->id);
}

/* An operation on a resident VM (ops.c says whether it may run now); the
 * agent of its host carries it out. */
static json_t *resident_op(struct api_call *c, const char *kind, const char *opname, enum agent_method method,
			   bool hard)
{
	struct begin_ctx b = {NULL, opname, ""};
	json_t *v, *e = api_arg_ref(c, 0, "VM", &b.vm);
	if (e || (e = db_obj_get_checked(c->ac_pd->pd_db, "VM", b.vm, &v)))
		return e;
	json_decref(v);
	if ((e = db_txn(c->ac_pd->pd_db, begin_txn, &b)))
		return e;
	v = db_obj_get(c->ac_pd->pd_db, b.vm);
	struct vm_op *op = xcalloc(1, sizeof *op);
	snprintf(op->op_vm, sizeof op->op_vm, "%s", b.vm);
	snprintf(op->op_host, sizeof op->op_host, "%s", jstr(v, "resident_on"));
	snprintf(op->op_kind, sizeof op->op_kind, "%s", kind);
	snprintf(op->op_id, sizeof op->op_id, "%s", b.id);
	json_t *params = strcmp(kind, "shutdown") == 0 ? json_pack("[s,b]", jstr(v, "uuid"), hard)
						       : json_pack("[s]", jstr(v, "uuid"));
	json_decref(v);
	return agent_call(c, op->op_host, method, params, op_ok, op_failed, op);
}

json_t *vm_clean_shutdown(struct api_call *c)
{
	return resident_op(c, "shutdown", "clean_shutdown", AGENT_VM_SHUTDOWN, false);
}

json_t *vm_hard_shutdown(struct api_call *c)
{
	return resident_op(c, "shutdown", "hard_shutdown", AGENT_VM_SHUTDOWN, true);
}

json_t *vm_pause(struct api_call *c)
{
	return resident_op(c, "pause", "pause", AGENT_VM_PAUSE, false);
}

json_t *vm_unpause(struct api_call *c)
{
	return resident_op(c, "unpause", "unpause", AGENT_VM_UNPAUSE, false);
}
