/*
 * snapshot.c - the pool as placement sees it: place.h's plain structs
 * filled from the database.
 *
 * The one edge between the records and the pure rules: VM.start, VM.start_on,
 * VM.pool_migrate and host.evacuate read the pool here (inside their
 * transaction when they then write), so each fact - the memory a host can
 * still give, the SRs it has plugged, the networks a VM needs - is read one
 * way for every caller. A snapshot owns every record, string and array its
 * structs point into; snap_free() lets go of all of them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "poold.h"
#include "upgrade.h"
#include "util.h"
#include "xerr.h"

static json_int_t ival(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* v (taken) lives as long as the snapshot. */
static json_t *keep(struct snap *sn, json_t *v)
{
	json_array_append_new(sn->sn_keep, v);
	return v;
}

static const char *keep_str(struct snap *sn, const char *s)
{
	return json_string_value(keep(sn, json_string(s)));
}

/* Zeroed memory freed with the snapshot (poold aborts when out of memory). */
static void *snap_alloc(struct snap *sn, size_t n, size_t size)
{
	if (sn->sn_nblocks == sn->sn_cap) {
		sn->sn_cap = sn->sn_cap ? 2 * sn->sn_cap : 16;
		sn->sn_blocks = xrealloc(sn->sn_blocks, sn->sn_cap * sizeof *sn->sn_blocks);
	}
	void *p = xcalloc(n ? n : 1, size);
	return sn->sn_blocks[sn->sn_nblocks++] = p;
}

/* The strings of arr (kept alive here) as a C array. */
static const char *const *strings(struct snap *sn, json_t *arr, size_t *n)
{
	keep(sn, arr);
	*n = json_array_size(arr);
	const char **out = snap_alloc(sn, *n, sizeof *out);
	for (size_t i = 0; i < *n; i++)
		out[i] = json_string_value(json_array_get(arr, i));
	return out;
}

const char **snap_strings(json_t *arr)
{
	size_t n = json_array_size(arr);
	const char **out = calloc(n ? n : 1, sizeof *out);
	for (size_t i = 0; out && i < n; i++)
		out[i] = json_string_value(json_array_get(arr, i));
	return out;
}

void snap_free(struct snap *sn)
{
	for (size_t i = 0; i < sn->sn_nblocks; i++)
		free(sn->sn_blocks[i]);
	free(sn->sn_blocks);
	json_decref(sn->sn_keep);
	json_decref(sn->sn_groups);
	json_decref(sn->sn_nets);
	snap_ha_free(sn->sn_ha);
	memset(sn, 0, sizeof *sn);
}

/* ---- VMs ---- */

/* The first of the VM's groups whose placement is anti_affinity (the ref
 * as a key of sn_groups, so it lives as long as the snapshot). */
static const char *aa_group(struct snap *sn, const json_t *v)
{
	size_t i;
	json_t *g;
	json_array_foreach(json_object_get(v, "groups"), i, g) {
		void *it = json_is_string(g) ? json_object_iter_at(sn->sn_groups, json_string_value(g)) : NULL;
		if (it)
			return json_object_iter_key(it);
	}
	return NULL;
}

/* The SRs of the VM's disks (empty drives and missing VDIs left out). */
static json_t *vm_srs(struct db *db, const char *vm)
{
	json_t *vbds = db_find(db, "VBD", "VM", vm), *out = json_array();
	const char *k;
	json_t *b;
	json_object_foreach(vbds, k, b) {
		if (json_is_true(json_object_get(b, "empty")))
			continue;
		json_t *vdi = db_obj_get(db, jstr(b, "VDI"));
		if (vdi)
			json_array_append_new(out, json_string(jstr(vdi, "SR")));
		json_decref(vdi);
	}
	json_decref(vbds);
	return out;
}

/* The hosts where the running VMs with a VIF on net run ({} when none). */
static json_t *pinned_hosts(struct db *db, const char *net)
{
	json_t *vifs = db_find(db, "VIF", "network", net), *hosts = json_object();
	const char *k;
	json_t *f;
	json_object_foreach(vifs, k, f) {
		json_t *v = db_obj_get(db, jstr(f, "VM"));
		if (strcmp(jstr(v, "power_state"), "Running") == 0)
			json_object_set_new(hosts, jstr(v, "resident_on"), json_true());
		json_decref(v);
	}
	json_decref(vifs);
	return hosts;
}

/* How a host may have net, as XAPI's assert_can_see_networks says: a
 * network with PIFs only where it has one ("pif"); one without PIFs that
 * is unmanaged or other_config:assume_network_is_shared=true anywhere
 * ("any"); any other one (internal) only where the running VMs on it run,
 * anywhere when none runs ({host: true} or "any"). Cached in sn_nets. */
static json_t *net_rule(struct snap *sn, struct db *db, const char *net)
{
	json_t *rule = json_object_get(sn->sn_nets, net);
	if (rule)
		return rule;
	json_t *pifs = db_find(db, "PIF", "network", net), *rec = db_obj_get(db, net);
	json_t *managed = json_object_get(rec, "managed");
	if (json_object_size(pifs))
		rule = json_string("pif");
	else if (!rec || json_is_false(managed) ||
		 strcmp(jstr(json_object_get(rec, "other_config"), "assume_network_is_shared"), "true") == 0)
		rule = json_string("any");
	else
		rule = pinned_hosts(db, net);
	if (json_is_object(rule) && !json_object_size(rule)) {
		json_decref(rule);
		rule = json_string("any");
	}
	json_decref(pifs);
	json_decref(rec);
	json_object_set_new(sn->sn_nets, net, rule);
	return rule;
}

/* The networks of the VM's VIFs a host must have. */
static json_t *vm_networks(struct snap *sn, struct db *db, const char *vm)
{
	json_t *vifs = db_find(db, "VIF", "VM", vm), *out = json_array();
	const char *k;
	json_t *f;
	json_object_foreach(vifs, k, f) {
		const char *net = jstr(f, "network");
		json_t *rule = *net ? net_rule(sn, db, net) : NULL;
		if (rule && !(json_is_string(rule) && strcmp(json_string_value(rule), "any") == 0))
			json_array_append_new(out, json_string(net));
	}
	json_decref(vifs);
	return out;
}

static bool nomigrate(json_t *v)
{
	const char *s = jstr(json_object_get(v, "platform"), "nomigrate");
	return strcmp(s, "true") == 0 || strcmp(s, "1") == 0;
}

static void vm_fill(struct snap *sn, struct db *db, const char *ref, struct place_vm *out)
{
	json_t *v = db_obj_get(db, ref);
	keep(sn, v ? v : (v = json_object()));
	json_t *flags = json_object_get(v, "last_boot_CPU_flags");
	*out = (struct place_vm){
		.pv_ref = keep_str(sn, ref),
		.pv_power_state = jstr(v, "power_state"),
		.pv_resident_on = jstr(v, "resident_on"),
		.pv_template = json_is_true(json_object_get(v, "is_a_template")),
		/* an operation holds it: a reservation, or any current operation */
		.pv_busy = strcmp(jstr(v, "scheduled_to_be_resident_on"), MODEL_NULL_REF) != 0 ||
			   json_object_size(json_object_get(v, "current_operations")) > 0,
		.pv_nomigrate = nomigrate(v),
		.pv_has_pci = json_array_size(json_object_get(v, "attached_PCIs")) > 0,
		.pv_has_vusb = json_array_size(json_object_get(v, "VUSBs")) > 0,
		.pv_memory = ival(v, "memory_static_max"),
		.pv_boot_vendor = jstr(flags, "vendor"),
		.pv_boot_features = jstr(flags, "features"),
		.pv_group = aa_group(sn, v),
		.pv_ha_protected = strcmp(jstr(v, "ha_restart_priority"), "restart") == 0,
		.pv_hw_version = ival(v, "hardware_platform_version"),
	};
	out->pv_srs = strings(sn, vm_srs(db, ref), &out->pv_nsrs);
	out->pv_networks = strings(sn, vm_networks(sn, db, ref), &out->pv_nnetworks);
}

/* ---- hosts ---- */

/* current_operations holds {op: "evacuate"} while host.evacuate runs */
static bool host_evacuating(json_t *h)
{
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(h, "current_operations"), k, v) {
		if (strcmp(json_string_value(v) ? json_string_value(v) : "", "evacuate") == 0)
			return true;
	}
	return false;
}

struct residents {
	struct snap *sn;
	struct place_host *h;
	json_int_t held;
	struct place_group_count *gc; /* grows; the snapshot gets a copy */
	size_t cap;
};

static int resident_one(void *ctx, const char *ref, const json_t *v)
{
	(void)ref;
	struct residents *r = ctx;
	struct place_host *h = r->h;
	h->ph_nresident++;
	r->held += ival(v, "memory_static_max");
	const char *g = aa_group(r->sn, v);
	if (!g)
		return 0;
	size_t j = 0;
	while (j < h->ph_ngroups && strcmp(r->gc[j].gc_group, g))
		j++;
	if (j == h->ph_ngroups) {
		if (j == r->cap) {
			r->cap = r->cap ? 2 * r->cap : 8;
			r->gc = xrealloc(r->gc, r->cap * sizeof *r->gc);
		}
		r->gc[h->ph_ngroups++] = (struct place_group_count){.gc_group = g};
	}
	r->gc[j].gc_count++;
	return 0;
}

/* The VMs resident on the host: how many, per anti-affinity group, and
 * the memory they hold. */
static json_int_t host_residents(struct snap *sn, struct db *db, const char *ref, struct place_host *h)
{
	struct residents r = {sn, h, 0, NULL, 0};
	h->ph_nresident = 0;
	h->ph_ngroups = 0;
	db_each(db, "VM", "resident_on", ref, resident_one, &r);
	struct place_group_count *gc = snap_alloc(sn, h->ph_ngroups, sizeof *gc);
	if (h->ph_ngroups)
		memcpy(gc, r.gc, h->ph_ngroups * sizeof *gc);
	free(r.gc);
	h->ph_groups = gc;
	return r.held;
}

static int scheduled_one(void *ctx, const char *ref, const json_t *v)
{
	(void)ref;
	*(json_int_t *)ctx += ival(v, "memory_static_max");
	return 0;
}

/* Bytes the host can still give: its total minus what the VMs running and
 * scheduled there hold, and never more than its agent last reported free
 * (the agent sees what the database cannot: other users of the memory). */
static void host_memory(struct snap *sn, struct db *db, const char *ref, json_t *rec, struct place_host *h)
{
	json_t *m = db_obj_get(db, jstr(rec, "metrics"));
	json_int_t reported = ival(m, "memory_free"), avail = ival(m, "memory_total");
	h->ph_live = json_is_true(json_object_get(m, "live"));
	json_decref(m);
	avail -= host_residents(sn, db, ref, h);
	json_int_t scheduled = 0;
	db_each(db, "VM", "scheduled_to_be_resident_on", ref, scheduled_one, &scheduled);
	avail -= scheduled;
	h->ph_available = avail < reported ? avail : reported;
}

/* The SRs plugged there, and the networks it has (by net_rule). */
static void host_attachments(struct snap *sn, struct db *db, const char *ref, struct place_host *h)
{
	json_t *pbds = db_find(db, "PBD", "host", ref), *srs = json_array();
	const char *k, *net;
	json_t *p, *rule;
	json_object_foreach(pbds, k, p) {
		if (json_is_true(json_object_get(p, "currently_attached")))
			json_array_append_new(srs, json_string(jstr(p, "SR")));
	}
	json_decref(pbds);
	h->ph_srs = strings(sn, srs, &h->ph_nsrs);
	json_t *pifs = db_find(db, "PIF", "host", ref), *nets = json_array();
	json_object_foreach(pifs, k, p) json_array_append_new(nets, json_string(jstr(p, "network")));
	json_decref(pifs);
	json_object_foreach(sn->sn_nets, net, rule) {
		if (json_is_object(rule) && json_object_get(rule, ref))
			json_array_append_new(nets, json_string(net));
	}
	h->ph_networks = strings(sn, nets, &h->ph_nnetworks);
}

/* The virtual hardware versions the host offers (strings, as the model
 * declares the field, or numbers). */
size_t snap_hw_set(json_t *set, int64_t *out, size_t max)
{
	size_t i, n = 0;
	json_t *x;
	json_array_foreach(set, i, x) {
		const char *t = json_string_value(x);
		if (n < max && t && *t)
			out[n++] = strtoll(t, NULL, 10);
		else if (n < max && json_is_integer(x))
			out[n++] = json_integer_value(x);
	}
	return n;
}

static void host_hw(struct snap *sn, json_t *set, struct place_host *h)
{
	int64_t *hw = snap_alloc(sn, json_array_size(set), sizeof *hw);
	h->ph_nhw = snap_hw_set(set, hw, json_array_size(set));
	h->ph_hw = hw;
}

static void host_fill(struct snap *sn, struct db *db, const char *ref, struct place_host *h)
{
	json_t *rec = db_obj_get(db, ref);
	keep(sn, rec ? rec : (rec = json_object()));
	json_t *cpu = json_object_get(rec, "cpu_info");
	*h = (struct place_host){
		.ph_ref = keep_str(sn, ref),
		.ph_enabled = json_is_true(json_object_get(rec, "enabled")),
		.ph_has_agent = *jstr(json_object_get(rec, "other_config"), "agent_address") != '\0',
		.ph_evacuating = host_evacuating(rec),
		.ph_vendor = jstr(cpu, "vendor"),
		.ph_features = jstr(cpu, "features"),
		.ph_version = jstr(json_object_get(rec, "software_version"), "product_version"),
		.ph_platform = jstr(json_object_get(rec, "software_version"), "platform_version"),
	};
	host_hw(sn, json_object_get(rec, "virtual_hardware_platform_versions"), h);
	host_memory(sn, db, ref, rec, h);
	host_attachments(sn, db, ref, h);
}

/* ---- the pool ---- */

static json_t *anti_affinity_groups(struct db *db)
{
	json_t *all = db_find(db, "VM_group", NULL, NULL), *out = json_object();
	const char *k;
	json_t *r;
	json_object_foreach(all, k, r) {
		if (strcmp(jstr(r, "placement"), "anti_affinity") == 0)
			json_object_set_new(out, k, json_true());
	}
	json_decref(all);
	return out;
}

/* Refs of cls whose field is value (NULL: all), leaving out `except`. */
static json_t *refs_of(struct db *db, const char *cls, const char *field, const char *value, const char *except,
		       bool no_control_domain)
{
	json_t *objs = db_find(db, cls, field, value), *out = json_array();
	const char *k;
	json_t *r;
	json_object_foreach(objs, k, r) {
		if ((except && strcmp(k, except) == 0) ||
		    (no_control_domain && json_is_true(json_object_get(r, "is_control_domain"))))
			continue;
		json_array_append_new(out, json_string(k));
	}
	json_decref(objs);
	return out;
}

static json_t *check_hosts(struct db *db, json_t *hosts)
{
	size_t i;
	json_t *h;
	json_array_foreach(hosts, i, h) {
		char cls[32];
		const char *ref = json_string_value(h) ? json_string_value(h) : "";
		if (!db_obj_class(db, ref, cls, sizeof cls) || strcmp(cls, "host"))
			return xerr_new(XE_HANDLE_INVALID, "host", ref, NULL);
	}
	return NULL;
}

static void ha_attach(struct db *db, struct snap *sn);
static void upgrade_attach(struct db *db, struct snap *sn);

json_t *snap_build(struct db *db, const char *source, json_t *vms, json_t *hosts, unsigned flags, struct snap *sn)
{
	memset(sn, 0, sizeof *sn);
	json_t *e = hosts ? check_hosts(db, hosts) : NULL;
	if (e)
		return e;
	sn->sn_keep = json_array();
	sn->sn_nets = json_object();
	sn->sn_groups = anti_affinity_groups(db);
	/* the VMs first: the hosts' networks include the internal ones they pin */
	json_t *vm_refs = vms ? json_incref(vms)
		       : source ? refs_of(db, "VM", "resident_on", source, NULL, true) : json_array();
	keep(sn, vm_refs);
	size_t nv = json_array_size(vm_refs);
	sn->sn_vms = snap_alloc(sn, nv, sizeof *sn->sn_vms);
	for (size_t i = 0; i < nv; i++)
		vm_fill(sn, db, json_string_value(json_array_get(vm_refs, i)), &sn->sn_vms[i]);
	json_t *host_refs = keep(sn, hosts ? json_incref(hosts) : refs_of(db, "host", NULL, NULL, source, false));
	size_t nh = json_array_size(host_refs);
	sn->sn_hosts = snap_alloc(sn, nh, sizeof *sn->sn_hosts);
	for (size_t i = 0; i < nh; i++)
		host_fill(sn, db, json_string_value(json_array_get(host_refs, i)), &sn->sn_hosts[i]);
	if (source)
		host_fill(sn, db, source, &sn->sn_source);
	sn->sn_pool = (struct place_pool){source ? &sn->sn_source : NULL, sn->sn_hosts, nh, sn->sn_vms, nv, flags};
	upgrade_attach(db, sn);
	if (vms && !(flags & PLACE_NO_HA))
		ha_attach(db, sn);
	return NULL;
}

/* ---- the rolling upgrade ---- */

/* In rolling-upgrade mode (the pool's key, set by poold: rpu_mode.c),
 * the hosts not of the newest version are marked: VMs start only on the
 * newest (placement's NEWEST row). The newest of the whole pool, whatever
 * the snapshot's candidates. */
static void upgrade_attach(struct db *db, struct snap *sn)
{
	if (!snap_rolling(db))
		return;
	json_t *hosts = db_find(db, "host", NULL, NULL), *behind = json_object();
	size_t n = json_object_size(hosts), i = 0;
	struct upgrade_ver *v = xcalloc(n + 1, sizeof *v);
	bool *newest = xcalloc(n + 1, sizeof *newest);
	const char *ref;
	json_t *h;
	json_object_foreach(hosts, ref, h) {
		json_t *sw = json_object_get(h, "software_version");
		v[i++] = (struct upgrade_ver){jstr(sw, "product_version"), jstr(sw, "platform_version")};
	}
	upgrade_newest(v, n, newest);
	i = 0;
	json_object_foreach(hosts, ref, h) if (!newest[i++]) json_object_set_new(behind, ref, json_true());
	for (size_t k = 0; k < sn->sn_pool.pp_nhosts; k++)
		sn->sn_hosts[k].ph_upgrade_behind = json_object_get(behind, sn->sn_hosts[k].ph_ref) != NULL;
	if (sn->sn_pool.pp_source)
		sn->sn_source.ph_upgrade_behind = json_object_get(behind, sn->sn_source.ph_ref) != NULL;
	free(v);
	free(newest);
	json_decref(behind);
	json_decref(hosts);
}

bool snap_rolling(struct db *db)
{
	json_t *pools = db_find(db, "pool", NULL, NULL);
	void *it = json_object_iter(pools);
	bool on = it && strcmp(jstr(json_object_get(json_object_iter_value(it), "other_config"),
				     "rolling_upgrade_in_progress"), "true") == 0;
	json_decref(pools);
	return on;
}

/* ---- HA: the failover planner's pool, and admission ---- */

/* The VMs with an HA priority that run, or wait for a restart. */
static json_t *ha_vm_refs(struct db *db, json_t *priorities)
{
	json_t *all = db_find(db, "VM", NULL, NULL), *out = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(all, k, v) {
		if (json_is_true(json_object_get(v, "is_a_template")) || json_is_true(json_object_get(v, "is_a_snapshot")) ||
		    json_is_true(json_object_get(v, "is_control_domain")))
			continue;
		json_t *o = json_object_get(priorities, k);
		const char *prio = json_is_string(o) ? json_string_value(o) : jstr(v, "ha_restart_priority");
		const char *ps = jstr(v, "power_state");
		bool on = strcmp(ps, "Running") == 0 || strcmp(ps, "Paused") == 0;
		bool waiting = strcmp(ps, "Halted") == 0 && json_is_true(json_object_get(v, "ha_always_run"));
		if (haplan_priority_parse(prio) > HAPLAN_NONE && (on || waiting))
			json_array_append_new(out, json_string(k));
	}
	json_decref(all);
	return out;
}

static size_t host_at(const struct snap *sn, const char *ref)
{
	for (size_t h = 0; h < sn->sn_pool.pp_nhosts; h++)
		if (strcmp(sn->sn_hosts[h].ph_ref, ref) == 0)
			return h;
	return PLACE_NONE;
}

struct snap_ha *snap_ha_build(struct db *db, json_t *priorities)
{
	struct snap_ha *sh = xcalloc(1, sizeof *sh);
	json_t *refs = ha_vm_refs(db, priorities);
	snap_build(db, NULL, refs, NULL, PLACE_START | PLACE_NO_HA, &sh->sh_snap);
	json_decref(refs);
	const struct place_pool *p = &sh->sh_snap.sn_pool;
	sh->sh_vms = xcalloc(p->pp_nvms + 1, sizeof *sh->sh_vms);
	for (size_t i = 0; i < p->pp_nvms; i++) {
		json_t *v = db_obj_get(db, p->pp_vms[i].pv_ref);
		json_t *o = json_object_get(priorities, p->pp_vms[i].pv_ref);
		const char *prio = json_is_string(o) ? json_string_value(o) : jstr(v, "ha_restart_priority");
		const char *ps = jstr(v, "power_state");
		bool on = strcmp(ps, "Running") == 0 || strcmp(ps, "Paused") == 0;
		sh->sh_vms[sh->sh_n++] = (struct haplan_vm){i, (enum haplan_priority)haplan_priority_parse(prio),
							   ival(v, "order"),
							   on ? host_at(&sh->sh_snap, jstr(v, "resident_on")) : PLACE_NONE};
		sh->sh_snap.sn_vms[i].pv_ha_protected = sh->sh_vms[i].hv_priority == HAPLAN_RESTART;
		json_decref(v);
	}
	json_t *pools = db_find(db, "pool", NULL, NULL);
	void *it = json_object_iter(pools);
	sh->sh_k = it ? (int)ival(json_object_iter_value(it), "ha_plan_exists_for") : 0;
	json_decref(pools);
	haplan_admit_init(&sh->sh_admit, p, sh->sh_vms, sh->sh_n, sh->sh_k);
	return sh;
}

void snap_ha_free(struct snap_ha *sh)
{
	if (!sh)
		return;
	snap_free(&sh->sh_snap);
	free(sh->sh_vms);
	free(sh);
}

/* Admission applies while HA is on, overcommit is not allowed and the
 * pool keeps a plan for at least one failure (XAPI blocks only then). */
static void ha_attach(struct db *db, struct snap *sn)
{
	json_t *pools = db_find(db, "pool", NULL, NULL);
	void *it = json_object_iter(pools);
	json_t *p = it ? json_object_iter_value(it) : NULL;
	bool on = p && json_is_true(json_object_get(p, "ha_enabled")) &&
		  !json_is_true(json_object_get(p, "ha_allow_overcommit")) && ival(p, "ha_plan_exists_for") > 0;
	json_decref(pools);
	if (!on)
		return;
	sn->sn_ha = snap_ha_build(db, NULL);
	for (size_t h = 0; h < sn->sn_pool.pp_nhosts; h++)
		sn->sn_hosts[h].ph_ha = &sn->sn_ha->sh_admit.ha_row;
}
