/*
 * sxm_facts.c - a storage migration's checks on the database: the pool as
 * sxm.h and place.h see it, every refusal in order, and the plan the
 * journal starts from.
 *
 * VM.migrate_send, VM.assert_can_migrate (a full dry run: the same
 * function, nothing written) and VDI.pool_migrate ask here, and a queued
 * migration asks again when its turn comes. The order: the maps' own refs;
 * storage migration's checks on the disks and VIFs (sxm_check_disks); the
 * VM on the destination as it will be once moved - its disks on the
 * mapped SRs, its VIFs on the mapped networks - through place.c (CPU,
 * memory, versions: never to an older host); then the space.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "poold.h"
#include "sxm.h"
#include "util.h"
#include "xerr.h"

static bool is_a(struct db *db, const char *ref, const char *cls)
{
	char c[32];
	return ref && db_obj_class(db, ref, c, sizeof c) && strcmp(c, cls) == 0;
}

/* Every key of map is one of the VM's objects (of class cls whose field
 * VM is vm), every value a ref of class to. */
static json_t *check_map(struct db *db, const char *vm, json_t *map, const char *name, const char *cls,
			 const char *to)
{
	const char *k;
	json_t *v;
	json_object_foreach(map, k, v) {
		json_t *rec = is_a(db, k, cls) ? db_obj_get(db, k) : NULL;
		const char *owner = cls[1] == 'D' ? "" : jstr(rec, "VM"); /* a VDI's owner is found through its VBDs */
		bool mine = rec && (*owner ? strcmp(owner, vm) == 0 : true);
		json_decref(rec);
		if (!mine)
			return xerr_new(XE_INVALID_VALUE, name, k, NULL);
		if (!json_is_string(v) || !is_a(db, json_string_value(v), to))
			return xerr_new(XE_HANDLE_INVALID, to, json_is_string(v) ? json_string_value(v) : "", NULL);
	}
	return NULL;
}

/* Is sr plugged on host? */
static bool plugged_on(struct db *db, const char *sr, const char *host)
{
	json_t *pbds = db_find(db, "PBD", "SR", sr);
	const char *k;
	json_t *p;
	bool yes = false;
	json_object_foreach(pbds, k, p) yes = yes || (strcmp(jstr(p, "host"), host) == 0 &&
						     json_is_true(json_object_get(p, "currently_attached")));
	json_decref(pbds);
	return yes;
}

/* The VM's disks as sxm.h sees them, and their rows for the plan. */
struct disks {
	struct sxm_vdi *d_v;
	size_t d_n;
	json_t *d_keep; /* records the structs point into */
	json_t *d_rows; /* per disk: the journal's fields */
};

static void disks_fill(struct db *db, const struct sxm_ask *a, struct disks *d)
{
	json_t *vbds = db_find(db, "VBD", "VM", a->sa_vm);
	d->d_v = xcalloc(json_object_size(vbds) + 1, sizeof *d->d_v);
	d->d_keep = json_array();
	d->d_rows = json_array();
	const char *k;
	json_t *b;
	json_object_foreach(vbds, k, b) {
		json_t *vdi = json_is_true(json_object_get(b, "empty")) ? NULL : db_obj_get(db, jstr(b, "VDI"));
		if (!vdi)
			continue;
		json_array_append_new(d->d_keep, vdi);
		const char *ref = jstr(b, "VDI"), *dest = json_string_value(json_object_get(a->sa_vdi_map, ref));
		struct sxm_vdi *v = &d->d_v[d->d_n++];
		*v = (struct sxm_vdi){.sv_ref = ref, .sv_sr = jstr(vdi, "SR"), .sv_dest_sr = dest,
				      .sv_virtual_size = json_integer_value(json_object_get(vdi, "virtual_size")),
				      .sv_read_only = strcmp(jstr(b, "mode"), "RO") == 0 ||
						      json_is_true(json_object_get(vdi, "read_only")),
				      .sv_cbt = json_is_true(json_object_get(vdi, "cbt_enabled")),
				      .sv_on_boot_reset = strcmp(jstr(vdi, "on_boot"), "reset") == 0,
				      .sv_busy = json_object_size(json_object_get(vdi, "current_operations")) > 0,
				      .sv_sr_on_dest = plugged_on(db, jstr(vdi, "SR"), a->sa_dst)};
		json_array_append_new(d->d_keep, json_incref(b));
		if (!sxm_vdi_moves(v))
			continue;
		json_t *sr = db_obj_get(db, v->sv_sr), *dsr = db_obj_get(db, dest);
		json_array_append_new(d->d_rows,
				      json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "vdi", ref, "uuid",
						jstr(vdi, "uuid"), "sr", v->sv_sr, "sr_uuid", jstr(sr, "uuid"), "device",
						jstr(b, "userdevice"), "dest_sr", dest, "dest_sr_uuid", jstr(dsr, "uuid"),
						"virtual_size", (json_int_t)v->sv_virtual_size));
		json_decref(sr);
		json_decref(dsr);
	}
	json_decref(vbds);
}

static void disks_free(struct disks *d)
{
	free(d->d_v);
	json_decref(d->d_keep);
	json_decref(d->d_rows);
}

/* The SRs a moving disk leaves or goes to, with their space. */
static struct sxm_sr *srs_fill(struct db *db, const struct disks *d, json_t *keep, size_t *n)
{
	json_t *reserved = sxm_journal_reserved(db), *seen = json_object();
	struct sxm_sr *out = xcalloc(2 * d->d_n + 1, sizeof *out);
	*n = 0;
	for (size_t i = 0; i < d->d_n; i++) {
		if (!sxm_vdi_moves(&d->d_v[i]))
			continue;
		const char *refs[2] = {d->d_v[i].sv_sr, d->d_v[i].sv_dest_sr};
		for (int k = 0; k < 2; k++) {
			if (json_object_get(seen, refs[k]))
				continue;
			json_object_set_new(seen, refs[k], json_true());
			json_t *rec = db_obj_get(db, refs[k]);
			json_array_append_new(keep, rec ? rec : json_object());
			out[(*n)++] = (struct sxm_sr){refs[k], jstr(rec, "type"),
						      json_integer_value(json_object_get(rec, "physical_size")),
						      json_integer_value(json_object_get(rec, "physical_utilisation")),
						      json_integer_value(json_object_get(reserved, refs[k]))};
		}
	}
	json_decref(reserved);
	json_decref(seen);
	return out;
}

/* The SRs of the VM's disks once moved; the networks of its VIFs once
 * mapped (those place.c needs: the VM's own list, mapped ones replaced). */
static void as_moved(const struct disks *d, struct place_vm *pv, const struct sxm_ask *a, struct db *db,
		     json_t *plan)
{
	json_t *srs = json_array(), *nets = json_array();
	for (size_t i = 0; i < d->d_n; i++)
		json_array_append_new(srs, json_string(d->d_v[i].sv_dest_sr ? d->d_v[i].sv_dest_sr : d->d_v[i].sv_sr));
	json_t *vifs = db_find(db, "VIF", "VM", a->sa_vm), *mapped_from = json_object();
	const char *k;
	json_t *f;
	json_object_foreach(vifs, k, f) if (json_object_get(a->sa_vif_map, k))
		json_object_set_new(mapped_from, jstr(f, "network"), json_true());
	for (size_t i = 0; i < pv->pv_nnetworks; i++)
		if (!json_object_get(mapped_from, pv->pv_networks[i]))
			json_array_append_new(nets, json_string(pv->pv_networks[i]));
	json_t *n;
	json_object_foreach(a->sa_vif_map, k, n) json_array_append(nets, n);
	json_decref(vifs);
	json_decref(mapped_from);
	json_object_set_new(plan, "srs", srs);
	json_object_set_new(plan, "nets", nets);
}

/* The VIFs as sxm.h sees them: an unmapped one's network must reach the
 * destination (among the host's networks, or one any host has). The
 * structs point into vifs, which the caller keeps. */
static struct sxm_vif *vifs_fill(json_t *vifs, const struct sxm_ask *a, const struct place_vm *pv,
				 const struct place_host *dst, size_t *n)
{
	struct sxm_vif *out = xcalloc(json_object_size(vifs) + 1, sizeof *out);
	*n = 0;
	const char *k;
	json_t *f;
	json_object_foreach(vifs, k, f) {
		const char *net = jstr(f, "network");
		bool needed = place_first_missing(&net, 1, pv->pv_networks, pv->pv_nnetworks) == PLACE_NONE;
		bool there = place_first_missing(&net, 1, dst->ph_networks, dst->ph_nnetworks) == PLACE_NONE;
		out[(*n)++] = (struct sxm_vif){k, json_object_get(a->sa_vif_map, k) != NULL, !needed || there};
	}
	return out;
}

/* Each key of vdi_map is one of the VM's disks. */
static json_t *map_disks_known(const struct sxm_ask *a, const struct disks *d)
{
	const char *k;
	json_t *v;
	json_object_foreach(a->sa_vdi_map, k, v) {
		size_t i = 0;
		while (i < d->d_n && strcmp(d->d_v[i].sv_ref, k))
			i++;
		if (i == d->d_n)
			return xerr_new(XE_INVALID_VALUE, "vdi_map", k, NULL);
	}
	return NULL;
}

/* VDI.pool_migrate: the VM stays; its new SRs must be plugged where it runs. */
static json_t *same_host_srs(struct db *db, const struct sxm_ask *a, const struct disks *d)
{
	for (size_t i = 0; i < d->d_n; i++)
		if (sxm_vdi_moves(&d->d_v[i]) && !plugged_on(db, d->d_v[i].sv_dest_sr, a->sa_dst))
			return xerr_new(XE_VM_REQUIRES_SR, a->sa_vm, d->d_v[i].sv_dest_sr, NULL);
	return NULL;
}

/* Placement of the VM as it will be (plan: its srs and nets). */
static json_t *placed(struct snap *sn, json_t *plan, unsigned flags)
{
	struct place_vm *pv = &sn->sn_vms[0];
	const char **srs = snap_strings(json_object_get(plan, "srs"));
	const char **nets = snap_strings(json_object_get(plan, "nets"));
	pv->pv_srs = srs;
	pv->pv_nsrs = json_array_size(json_object_get(plan, "srs"));
	pv->pv_networks = nets;
	pv->pv_nnetworks = json_array_size(json_object_get(plan, "nets"));
	json_t *e = place_assert(pv, sn->sn_pool.pp_source, &sn->sn_hosts[0], flags);
	free(srs);
	free(nets);
	return e;
}

/* The checks on facts gathered (sn: the VM and its destination). */
static json_t *check_all(struct poold *pd, const struct sxm_ask *a, struct snap *sn, struct disks *d,
			 json_t *reserve, json_t *plan)
{
	struct db *db = pd->pd_db;
	json_t *keep = json_array(), *vifs = db_find(db, "VIF", "VM", a->sa_vm);
	size_t nvifs, nsrs;
	struct place_vm *pv = &sn->sn_vms[0];
	struct sxm_vif *fv = vifs_fill(vifs, a, pv, &sn->sn_hosts[0], &nvifs);
	struct sxm_sr *fs = srs_fill(db, d, keep, &nsrs);
	struct sxm_request rq = {d->d_v, d->d_n, fv, nvifs, fs, nsrs,
				 (double)conf_int(pd->pd_conf, "storage-migration-destination-space-factor"),
				 (double)conf_int(pd->pd_conf, "storage-migration-source-space-factor")};
	json_t *e = map_disks_known(a, d);
	if (!e)
		e = sxm_check_disks(&rq);
	as_moved(d, pv, a, db, plan);
	if (!e && a->sa_same_host)
		e = same_host_srs(db, a, d);
	else if (!e)
		e = placed(sn, plan, PLACE_MIGRATE | (a->sa_force ? PLACE_FORCE : 0));
	if (!e)
		e = sxm_check_space(&rq, reserve);
	free(fv);
	free(fs);
	json_decref(vifs);
	json_decref(keep);
	return e;
}

json_t *sxm_assert(struct poold *pd, const struct sxm_ask *a, json_t *reserve, json_t *plan)
{
	struct db *db = pd->pd_db;
	json_t *vm, *e = db_obj_get_checked(db, "VM", a->sa_vm, &vm);
	if (e)
		return e;
	const char *src = jstr(vm, "resident_on");
	bool have_src = strcmp(src, MODEL_NULL_REF) != 0 && *src;
	if (!is_a(db, a->sa_dst, "host"))
		e = xerr_new(XE_HANDLE_INVALID, "host", a->sa_dst ? a->sa_dst : "", NULL);
	if (!e)
		e = check_map(db, a->sa_vm, a->sa_vdi_map, "vdi_map", "VDI", "SR");
	if (!e)
		e = check_map(db, a->sa_vm, a->sa_vif_map, "vif_map", "VIF", "network");
	struct snap sn;
	json_t *vms = json_pack("[s]", a->sa_vm), *hosts = json_pack("[s]", a->sa_dst ? a->sa_dst : "");
	if (!e)
		e = snap_build(db, have_src ? src : NULL, vms, hosts, PLACE_MIGRATE, &sn);
	if (!e) {
		struct disks d = {0};
		disks_fill(db, a, &d);
		json_t *out = json_object();
		e = check_all(pd, a, &sn, &d, reserve, out);
		json_object_set(out, "vdis", d.d_rows);
		json_object_set(out, "vifs", a->sa_vif_map ? a->sa_vif_map : json_object());
		if (plan)
			json_object_update(plan, out);
		json_decref(out);
		disks_free(&d);
		snap_free(&sn);
	}
	json_decref(vms);
	json_decref(hosts);
	json_decref(vm);
	return e;
}

json_t *sxm_space_again(struct poold *pd, json_t *entry, json_t *reserve)
{
	json_t *rows = json_object_get(entry, "vdis"), *keep = json_array();
	struct disks d = {xcalloc(json_array_size(rows) + 1, sizeof *d.d_v), 0, NULL, NULL};
	size_t i, nsrs;
	json_t *r;
	json_array_foreach(rows, i, r) d.d_v[d.d_n++] = (struct sxm_vdi){
		.sv_ref = jstr(r, "vdi"), .sv_sr = jstr(r, "sr"), .sv_dest_sr = jstr(r, "dest_sr"),
		.sv_virtual_size = json_integer_value(json_object_get(r, "virtual_size"))};
	struct sxm_sr *fs = srs_fill(pd->pd_db, &d, keep, &nsrs);
	struct sxm_request rq = {d.d_v, d.d_n, NULL, 0, fs, nsrs,
				 (double)conf_int(pd->pd_conf, "storage-migration-destination-space-factor"),
				 (double)conf_int(pd->pd_conf, "storage-migration-source-space-factor")};
	json_t *e = sxm_check_space(&rq, reserve);
	free(fs);
	free(d.d_v);
	json_decref(keep);
	return e;
}
