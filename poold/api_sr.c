/*
 * api_sr.c - storage repositories: SR.create, PBD.plug / PBD.unplug, and
 * VDI.create / VDI.destroy carried out by an agent that has the SR plugged.
 *
 * The file SR type keeps an SR in a directory; `shared` means every host
 * sees the same directory, so the SR gets a PBD on every host. Space
 * figures come from the agents (statvfs there, where the disk is).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "ops.h"
#include "poold.h"
#include "util.h"
#include "xerr.h"

/* Record an agent's view of an SR's space. */
json_t *sr_space_update(struct db *db, json_t *space)
{
	char sr[64];
	if (!db_ref_by_uuid(db, "SR", jstr(space, "uuid"), sr))
		return NULL;
	json_t *rec = db_obj_get(db, sr);
	json_t *want = json_pack("{s:O, s:O, s:O}", "physical_size", json_object_get(space, "physical_size"),
				 "physical_utilisation", json_object_get(space, "physical_utilisation"),
				 "virtual_allocation", json_object_get(space, "virtual_allocation"));
	bool same = true;
	const char *k;
	json_t *v;
	json_object_foreach(want, k, v) if (!json_is_integer(v) || !json_equal(v, json_object_get(rec, k))) same = false;
	json_decref(rec);
	return same ? (json_decref(want), NULL) : db_obj_update_new(db, sr, want);
}

static json_t *space_txn(struct db *db, void *ctx)
{
	return sr_space_update(db, ctx);
}

/* ------------------------------------------------------------ PBD.plug */

struct plug_ctx {
	char pbd[64];
	bool plug;
};

static json_t *plug_txn(struct db *db, void *ctx)
{
	struct plug_ctx *p = ctx;
	return db_obj_set(db, p->pbd, "currently_attached", json_boolean(p->plug));
}

struct plug_done {
	char pbd[64];
	bool plug;
};

static json_t *plug_ok(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t **result)
{
	(void)c;
	(void)result;
	struct plug_done *d = ctx;
	struct plug_ctx p;
	snprintf(p.pbd, sizeof p.pbd, "%s", d->pbd);
	p.plug = d->plug;
	json_t *e = db_txn(pd->pd_db, plug_txn, &p);
	if (!e && d->plug)
		e = db_txn(pd->pd_db, space_txn, answer);
	return e;
}

/* Any VM running on host with a disk in sr: unplugging would pull it away. */
static bool sr_in_use_on(struct db *db, const char *sr, const char *host)
{
	json_t *vms = db_find(db, "VM", "resident_on", host);
	bool used = false;
	const char *k;
	json_t *v;
	json_object_foreach(vms, k, v) {
		json_t *vbds = db_find(db, "VBD", "VM", k);
		const char *bk;
		json_t *b;
		json_object_foreach(vbds, bk, b) {
			json_t *vdi = db_obj_get(db, jstr(b, "VDI"));
			if (vdi && strcmp(jstr(vdi, "SR"), sr) == 0)
				used = true;
			json_decref(vdi);
		}
		json_decref(vbds);
	}
	json_decref(vms);
	return used;
}

static json_t *pbd_plug_common(struct api_call *c, bool plug)
{
	const char *pbd;
	json_t *p, *e = api_arg_ref(c, 0, "PBD", &pbd);
	if (e || (e = db_obj_get_checked(c->ac_pd->pd_db, "PBD", pbd, &p)))
		return e;
	json_t *sr = db_obj_get(c->ac_pd->pd_db, jstr(p, "SR"));
	json_t *params = NULL;
	if (!plug && sr_in_use_on(c->ac_pd->pd_db, jstr(p, "SR"), jstr(p, "host")))
		e = xerr_newf(XE_OPERATION_NOT_ALLOWED, "SR %s holds disks of VMs running on this host", jstr(sr, "uuid"));
	else if (plug)
		params = json_pack("[s,s,s]", jstr(sr, "uuid"), jstr(sr, "type"), jstr(json_object_get(p, "device_config"), "path"));
	else
		params = json_pack("[s]", jstr(sr, "uuid"));
	if (!e) {
		struct plug_done *d = xcalloc(1, sizeof *d);
		snprintf(d->pbd, sizeof d->pbd, "%s", pbd);
		d->plug = plug;
		e = agent_call(c, jstr(p, "host"), plug ? AGENT_SR_ATTACH : AGENT_SR_DETACH, params, plug_ok, NULL, d);
	}
	json_decref(sr);
	json_decref(p);
	return e;
}

json_t *pbd_plug(struct api_call *c)
{
	return pbd_plug_common(c, true);
}

json_t *pbd_unplug(struct api_call *c)
{
	return pbd_plug_common(c, false);
}

/* ----------------------------------------------------------- SR.create */

struct sr_create_ctx {
	const char *host, *name, *desc, *type, *content, *path;
	json_t *device_config, *sm_config;
	bool shared;
	char sr[64], pbd[64];
};

static json_t *sr_create_txn(struct db *db, void *ctx)
{
	struct sr_create_ctx *s = ctx;
	json_t *e = db_obj_create_new(db, "SR",
				      json_pack("{s:s, s:s, s:s, s:s, s:b, s:O}", "name_label", s->name, "name_description",
						s->desc, "type", s->type, "content_type", s->content, "shared", s->shared,
						"sm_config", s->sm_config),
				      s->sr);
	/* shared: every host sees the directory, so every host gets a PBD */
	json_t *hosts = e ? json_object() : db_find(db, "host", NULL, NULL);
	const char *h;
	json_t *rec;
	json_object_foreach(hosts, h, rec) {
		if (e || (!s->shared && strcmp(h, s->host)))
			continue;
		char pbd[64];
		e = db_obj_create_new(db, "PBD", json_pack("{s:s, s:s, s:O}", "SR", s->sr, "host", h, "device_config",
							   s->device_config),
				      pbd);
		if (!e && strcmp(h, s->host) == 0)
			snprintf(s->pbd, sizeof s->pbd, "%s", pbd);
	}
	json_decref(hosts);
	return e;
}

struct sr_created {
	char sr[64], pbd[64];
};

static json_t *sr_plugged_txn(struct db *db, void *ctx)
{
	struct sr_created *s = ctx;
	return db_obj_set(db, s->pbd, "currently_attached", json_true());
}

/* After the creating host, every other live host's PBD of a shared SR is
 * plugged too, one after the other (XAPI's SR.create does the same); a
 * host that cannot is logged and left unplugged, for PBD.plug later. */
struct plug_rest {
	char sr[64];
	json_t *tried; /* PBD refs asked already */
};

struct plug_step {
	struct plug_rest *ps_rest;
	char ps_pbd[64];
};

static json_t *plug_rest_next(struct api_call *c, struct poold *pd, struct plug_rest *r, json_t **result);

static json_t *plug_rest_done(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err,
			      json_t **result)
{
	struct plug_step *st = ctx;
	struct plug_rest *r = st->ps_rest;
	if (err) {
		char *t = xerr_to_text(err);
		log_warn("SR %s: PBD %s not plugged: %s (PBD.plug can try again)", r->sr, st->ps_pbd, t ? t : "?");
		free(t);
	} else {
		struct plug_ctx p;
		snprintf(p.pbd, sizeof p.pbd, "%s", st->ps_pbd);
		p.plug = true;
		json_t *e = db_txn(pd->pd_db, plug_txn, &p);
		if (!e)
			e = db_txn(pd->pd_db, space_txn, answer);
		json_decref(e);
	}
	return plug_rest_next(c, pd, r, result);
}

static json_t *plug_rest_next(struct api_call *c, struct poold *pd, struct plug_rest *r, json_t **result)
{
	json_t *pbds = db_find(pd->pd_db, "PBD", "SR", r->sr), *sr = db_obj_get(pd->pd_db, r->sr);
	const char *k;
	json_t *p, *e = NULL;
	bool started = false;
	json_object_foreach(pbds, k, p) {
		bool asked = false;
		size_t i;
		json_t *t;
		json_array_foreach(r->tried, i, t) asked = asked || strcmp(json_string_value(t), k) == 0;
		if (started || asked || json_is_true(json_object_get(p, "currently_attached")))
			continue;
		json_array_append_new(r->tried, json_string(k));
		json_t *h = db_obj_get(pd->pd_db, jstr(p, "host"));
		json_t *m = db_obj_get(pd->pd_db, jstr(h, "metrics"));
		bool live = json_is_true(json_object_get(m, "live"));
		json_decref(m);
		json_decref(h);
		if (!live)
			continue; /* PBD.plug when it is back */
		struct plug_step *st = xcalloc(1, sizeof *st);
		st->ps_rest = r;
		snprintf(st->ps_pbd, sizeof st->ps_pbd, "%s", k);
		e = agent_call_done(pd, c, jstr(p, "host"), AGENT_SR_ATTACH,
				    json_pack("[s,s,s]", jstr(sr, "uuid"), jstr(sr, "type"),
					      jstr(json_object_get(p, "device_config"), "path")),
				    plug_rest_done, st);
		started = true;
	}
	json_decref(pbds);
	json_decref(sr);
	if (started)
		return e; /* API_PENDING: the next step has the call */
	*result = json_string(r->sr);
	json_decref(r->tried);
	free(r);
	return NULL;
}

static json_t *sr_created_ok(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t **result)
{
	struct sr_created *s = ctx;
	json_t *e = db_txn(pd->pd_db, sr_plugged_txn, s);
	if (!e)
		e = db_txn(pd->pd_db, space_txn, answer);
	if (e)
		return e;
	log_info("SR %s created", s->sr);
	struct plug_rest *r = xcalloc(1, sizeof *r);
	snprintf(r->sr, sizeof r->sr, "%s", s->sr);
	r->tried = json_array();
	return plug_rest_next(c, pd, r, result);
}

static json_t *sr_remove_txn(struct db *db, void *ctx)
{
	struct sr_created *s = ctx;
	json_t *pbds = db_find(db, "PBD", "SR", s->sr), *e = NULL;
	const char *k;
	json_t *v;
	json_object_foreach(pbds, k, v) if (!e) e = db_obj_destroy(db, k);
	json_decref(pbds);
	return e ? e : db_obj_destroy(db, s->sr);
}

/* The first host could not attach it: the SR never existed. */
static void sr_create_failed(struct poold *pd, void *ctx, json_t **err)
{
	(void)err;
	json_decref(db_txn(pd->pd_db, sr_remove_txn, ctx));
}

json_t *sr_create(struct api_call *c)
{
	struct sr_create_ctx s = {0};
	json_int_t size;
	json_t *e = api_arg_ref(c, 0, "host", &s.host);
	if (e || (e = api_arg_obj(c, 1, "device_config", &s.device_config)) || (e = api_arg_int(c, 2, "physical_size", &size)) ||
	    (e = api_arg_str(c, 3, "name_label", &s.name)) || (e = api_arg_str(c, 4, "name_description", &s.desc)) ||
	    (e = api_arg_str(c, 5, "type", &s.type)) || (e = api_arg_str(c, 6, "content_type", &s.content)) ||
	    (e = api_arg_bool(c, 7, "shared", &s.shared)) || (e = api_arg_obj(c, 8, "sm_config", &s.sm_config)))
		return e;
	if (strcmp(s.type, "file") != 0)
		return xerr_new(XE_SR_UNKNOWN_DRIVER, s.type, NULL);
	if ((e = rpu_check_op(c->ac_pd, "SR", "create"))) /* XAPI blocks it during an upgrade */
		return e;
	s.path = jstr(s.device_config, "path");
	if (s.path[0] != '/')
		return xerr_new(XE_INVALID_VALUE, "device_config:path", s.path, NULL);
	if ((e = db_txn(c->ac_pd->pd_db, sr_create_txn, &s)))
		return e;
	json_t *sr = db_obj_get(c->ac_pd->pd_db, s.sr);
	struct sr_created *d = xcalloc(1, sizeof *d);
	snprintf(d->sr, sizeof d->sr, "%s", s.sr);
	snprintf(d->pbd, sizeof d->pbd, "%s", s.pbd);
	e = agent_call(c, s.host, AGENT_SR_ATTACH, json_pack("[s,s,s]", jstr(sr, "uuid"), s.type, s.path), sr_created_ok,
		       sr_create_failed, d);
	json_decref(sr);
	return e;
}

/* A host with the SR plugged and an agent to do the work, or NULL. */
const char *sr_worker(struct db *db, const char *sr, char *host)
{
	json_t *pbds = db_find(db, "PBD", "SR", sr);
	const char *k, *found = NULL;
	json_t *p;
	json_object_foreach(pbds, k, p) {
		if (found || !json_is_true(json_object_get(p, "currently_attached")))
			continue;
		json_t *h = db_obj_get(db, jstr(p, "host"));
		json_t *m = db_obj_get(db, jstr(h, "metrics"));
		if (json_is_true(json_object_get(m, "live"))) {
			snprintf(host, 64, "%s", jstr(p, "host"));
			found = host;
		}
		json_decref(m);
		json_decref(h);
	}
	json_decref(pbds);
	return found;
}

/* ---------------------------------------------------------- VDI.create */

struct vdi_new {
	json_t *rec; /* the VDI's record, made before the file */
};

json_t *vdi_record_insert(struct db *db, const json_t *given, json_t *answer, char *ref_out)
{
	json_t *rec = json_deep_copy(given);
	json_object_set(rec, "location", json_object_get(answer, "location"));
	json_object_set(rec, "physical_utilisation", json_object_get(answer, "physical_utilisation"));
	json_t *e = db_obj_create_new(db, "VDI", rec, ref_out);
	return e ? e : sr_space_update(db, json_object_get(answer, "sr"));
}

static json_t *vdi_insert_txn(struct db *db, void *ctx)
{
	json_t **a = ctx; /* [rec, answer] */
	char ref[64];
	json_t *e = vdi_record_insert(db, a[0], a[1], ref);
	if (!e)
		json_object_set_new(a[0], "__ref", json_string(ref));
	return e;
}

static json_t *vdi_created_ok(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t **result)
{
	(void)c;
	struct vdi_new *v = ctx;
	json_t *a[2] = {v->rec, answer};
	json_t *e = db_txn(pd->pd_db, vdi_insert_txn, a);
	if (!e)
		*result = json_incref(json_object_get(v->rec, "__ref"));
	json_decref(v->rec);
	return e;
}

static void vdi_create_failed(struct poold *pd, void *ctx, json_t **err)
{
	(void)err;
	(void)pd;
	struct vdi_new *v = ctx;
	json_decref(v->rec);
}

json_t *api_ctor_record(const struct model_class *cls, const json_t *given);

json_t *vdi_create(struct api_call *c)
{
	const struct model_class *cls = model_class_find("VDI");
	json_t *given, *e = api_arg_obj(c, 0, "args", &given);
	if (e || (e = api_record_check(cls, given)))
		return e;
	const char *sr = jstr(given, "SR");
	json_t *srrec;
	if ((e = db_obj_get_checked(c->ac_pd->pd_db, "SR", *sr ? sr : MODEL_NULL_REF, &srrec)))
		return e;
	json_decref(srrec);
	json_t *vs = json_object_get(given, "virtual_size");
	if (!json_is_integer(vs) || json_integer_value(vs) < 0) {
		char buf[32];
		snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(vs));
		return xerr_new(XE_INVALID_VALUE, "virtual_size", buf, NULL);
	}
	char host[64];
	if (!sr_worker(c->ac_pd->pd_db, sr, host))
		return xerr_new(XE_SR_HAS_NO_PBDS, sr, NULL);
	struct vdi_new *v = xcalloc(1, sizeof *v);
	v->rec = api_ctor_record(cls, given);
	char uuid[48];
	model_new_uuid(uuid);
	json_object_set_new(v->rec, "uuid", json_string(uuid));
	json_t *sr_rec = db_obj_get(c->ac_pd->pd_db, sr);
	e = agent_call(c, host, AGENT_VDI_CREATE, json_pack("[s,s,I]", jstr(sr_rec, "uuid"), uuid, json_integer_value(vs)),
		       vdi_created_ok, vdi_create_failed, v);
	json_decref(sr_rec);
	return e;
}

/* --------------------------------------------------------- VDI.destroy */

static json_t *vdi_forget_txn(struct db *db, void *ctx)
{
	json_t **a = ctx; /* [vdi ref string, answer] */
	const char *vdi = json_string_value(a[0]);
	json_t *vbds = db_find(db, "VBD", "VDI", vdi), *e = NULL;
	const char *ref;
	json_t *v;
	/* detached drives go with their disk, as in XAPI */
	json_object_foreach(vbds, ref, v) if (!e) e = db_obj_destroy(db, ref);
	json_decref(vbds);
	if (!e && db_obj_class(db, vdi, (char[32]){0}, 32))
		e = db_obj_destroy(db, vdi);
	if (!e && a[1])
		e = sr_space_update(db, json_object_get(a[1], "sr"));
	return e;
}

static json_t *vdi_destroyed_ok(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t **result)
{
	(void)c;
	(void)result;
	json_t *a[2] = {json_string(ctx), answer};
	json_t *e = db_txn(pd->pd_db, vdi_forget_txn, a);
	json_decref(a[0]);
	return e;
}

json_t *vdi_destroy(struct api_call *c)
{
	const char *vdi;
	json_t *rec, *e = api_arg_str(c, 0, "VDI", &vdi);
	if (e || (e = db_obj_get_checked(c->ac_pd->pd_db, "VDI", vdi, &rec)))
		return e;
	char host[64];
	json_t *sr = db_obj_get(c->ac_pd->pd_db, jstr(rec, "SR"));
	if ((e = ops_assert(c->ac_pd->pd_db, vdi, "destroy")))
		;
	else if (!sr_worker(c->ac_pd->pd_db, jstr(rec, "SR"), host))
		e = xerr_new(XE_SR_HAS_NO_PBDS, jstr(rec, "SR"), NULL);
	else
		e = agent_call(c, host, AGENT_VDI_DESTROY, json_pack("[s,s]", jstr(sr, "uuid"), jstr(rec, "uuid")),
			       vdi_destroyed_ok, NULL, xstrdup(vdi));
	json_decref(sr);
	json_decref(rec);
	return e;
}

/* ------------------------------------------- VDI.resize / snapshot / clone */

struct vdi_op {
	char vdi[64];
	json_t *rec; /* snapshot/clone: the new VDI's record */
};

static json_t *vdi_resized_txn(struct db *db, void *ctx)
{
	json_t **a = ctx; /* [vdi ref, answer] */
	json_t *e = db_obj_update_new(db, json_string_value(a[0]),
				      json_pack("{s:O, s:O}", "virtual_size", json_object_get(a[1], "virtual_size"),
						"physical_utilisation", json_object_get(a[1], "physical_utilisation")));
	return e ? e : sr_space_update(db, json_object_get(a[1], "sr"));
}

static json_t *vdi_resized_ok(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t **result)
{
	(void)c;
	(void)result;
	struct vdi_op *op = ctx;
	json_t *a[2] = {json_string(op->vdi), answer};
	json_t *e = db_txn(pd->pd_db, vdi_resized_txn, a);
	json_decref(a[0]);
	return e;
}

/* VDI.resize(vdi, size): grow only, as XAPI. */
json_t *vdi_resize(struct api_call *c)
{
	const char *vdi;
	json_int_t size;
	json_t *rec, *e = api_arg_ref(c, 0, "VDI", &vdi);
	if (e || (e = api_arg_int(c, 1, "size", &size)) || (e = db_obj_get_checked(c->ac_pd->pd_db, "VDI", vdi, &rec)))
		return e;
	char host[64];
	json_t *sr = db_obj_get(c->ac_pd->pd_db, jstr(rec, "SR"));
	if (size < json_integer_value(json_object_get(rec, "virtual_size"))) {
		char v[32];
		snprintf(v, sizeof v, "%lld", (long long)size);
		e = xerr_new(XE_VALUE_NOT_SUPPORTED, "size", v, "VDIs only grow", NULL);
	} else if ((e = ops_assert(c->ac_pd->pd_db, vdi, "resize"))) {
	} else if (!sr_worker(c->ac_pd->pd_db, jstr(rec, "SR"), host)) {
		e = xerr_new(XE_SR_HAS_NO_PBDS, jstr(rec, "SR"), NULL);
	} else {
		struct vdi_op *op = xcalloc(1, sizeof *op);
		snprintf(op->vdi, sizeof op->vdi, "%s", vdi);
		e = agent_call(c, host, AGENT_VDI_RESIZE, json_pack("[s,s,I]", jstr(sr, "uuid"), jstr(rec, "uuid"), size),
			       vdi_resized_ok, NULL, op);
	}
	json_decref(sr);
	json_decref(rec);
	return e;
}

static json_t *vdi_copy_common(struct api_call *c, bool snapshot)
{
	const char *vdi;
	json_t *rec, *e = api_arg_ref(c, 0, "VDI", &vdi);
	if (e || (e = db_obj_get_checked(c->ac_pd->pd_db, "VDI", vdi, &rec)))
		return e;
	char host[64];
	if (!sr_worker(c->ac_pd->pd_db, jstr(rec, "SR"), host)) {
		json_decref(rec);
		return xerr_new(XE_SR_HAS_NO_PBDS, jstr(rec, "SR"), NULL);
	}
	char uuid[48];
	model_new_uuid(uuid);
	struct vdi_new *v = xcalloc(1, sizeof *v);
	v->rec = vdi_copy_record(c->ac_pd->pd_db, vdi, uuid, snapshot);
	json_t *sr = db_obj_get(c->ac_pd->pd_db, jstr(rec, "SR"));
	e = agent_call(c, host, AGENT_VDI_COPY, json_pack("[s,s,s,b]", jstr(sr, "uuid"), jstr(rec, "uuid"), uuid, snapshot),
		       vdi_created_ok, vdi_create_failed, v);
	json_decref(sr);
	json_decref(rec);
	return e;
}

json_t *vdi_copy_record(struct db *db, const char *src, const char *uuid, bool snapshot)
{
	json_t *rec = db_obj_get(db, src);
	char now[32];
	model_now(now);
	json_t *out = json_pack("{s:s, s:s, s:s, s:O, s:O, s:O, s:O, s:O, s:b, s:s, s:s, s:b}", "uuid", uuid,
				"name_label", jstr(rec, "name_label"), "name_description", jstr(rec, "name_description"),
				"SR", json_object_get(rec, "SR"), "virtual_size", json_object_get(rec, "virtual_size"),
				"type", json_object_get(rec, "type"), "sharable", json_object_get(rec, "sharable"),
				"other_config", json_object_get(rec, "other_config"), "is_a_snapshot", snapshot,
				"snapshot_of", snapshot ? src : MODEL_NULL_REF, "snapshot_time",
				snapshot ? now : "19700101T00:00:00Z", "read_only",
				snapshot || json_is_true(json_object_get(rec, "read_only")));
	json_decref(rec);
	return out;
}

/* VDI.snapshot(vdi, driver_params) / VDI.clone(vdi, driver_params): a
 * sparse copy in the same SR (read-only and marked as a snapshot, or a
 * writable clone). */
json_t *vdi_snapshot(struct api_call *c)
{
	return vdi_copy_common(c, true);
}

json_t *vdi_clone(struct api_call *c)
{
	return vdi_copy_common(c, false);
}

/* ------------------------------------------------- SR.forget / SR.destroy */

/* In a transaction: the SR's records go (PBDs, VDIs and their detached
 * drives, the SR); the data stays where it is. */
static json_t *sr_forget_txn(struct db *db, void *ctx)
{
	const char *sr = ctx;
	json_t *e = NULL;
	const char *classes[2] = {"VDI", "PBD"};
	for (int i = 0; i < 2 && !e; i++) {
		json_t *objs = db_find(db, classes[i], "SR", sr);
		const char *k;
		json_t *v;
		json_object_foreach(objs, k, v) {
			json_t *vbds = i == 0 && !e ? db_find(db, "VBD", "VDI", k) : json_object();
			const char *bk;
			json_t *b;
			json_object_foreach(vbds, bk, b) if (!e) e = db_obj_destroy(db, bk);
			json_decref(vbds);
			if (!e)
				e = db_obj_destroy(db, k);
		}
		json_decref(objs);
	}
	return e ? e : db_obj_destroy(db, sr);
}

/* SR.forget(sr): the pool forgets the SR; its directory and disks stay. */
json_t *sr_forget(struct api_call *c)
{
	const char *sr;
	json_t *e = api_arg_ref(c, 0, "SR", &sr);
	if (e || (e = ops_assert(c->ac_pd->pd_db, sr, "forget")))
		return e;
	return db_txn(c->ac_pd->pd_db, sr_forget_txn, (void *)sr);
}

static json_t *sr_destroyed_ok(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t **result)
{
	(void)c, (void)answer, (void)result;
	return db_txn(pd->pd_db, sr_forget_txn, ctx);
}

/* A live host with a PBD of the SR (plugged or not) and an agent, or NULL. */
static const char *sr_any_host(struct db *db, const char *sr, char *host, json_t **pbd)
{
	json_t *pbds = db_find(db, "PBD", "SR", sr);
	const char *k, *found = NULL;
	json_t *p;
	json_object_foreach(pbds, k, p) {
		json_t *h = found ? NULL : db_obj_get(db, jstr(p, "host"));
		json_t *m = h ? db_obj_get(db, jstr(h, "metrics")) : NULL;
		if (json_is_true(json_object_get(m, "live")) && *jstr(json_object_get(h, "other_config"), "agent_address")) {
			snprintf(host, 64, "%s", jstr(p, "host"));
			*pbd = json_incref(p);
			found = host;
		}
		json_decref(m);
		json_decref(h);
	}
	json_decref(pbds);
	return found;
}

/* SR.destroy(sr): an empty SR whose PBDs are all unplugged goes, with its
 * directory (as XAPI: SR_HAS_PBD while one is plugged, SR_NO_PBDS,
 * SR_NOT_EMPTY). A live host with a PBD of it removes the directory. */
json_t *sr_destroy(struct api_call *c)
{
	const char *sr;
	json_t *e = api_arg_ref(c, 0, "SR", &sr);
	if (e || (e = ops_assert(c->ac_pd->pd_db, sr, "destroy")))
		return e;
	char host[64];
	json_t *pbd = NULL;
	if (!sr_any_host(c->ac_pd->pd_db, sr, host, &pbd))
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "no live host has a PBD of SR %s to remove it", sr);
	json_t *rec = db_obj_get(c->ac_pd->pd_db, sr);
	e = agent_call(c, host, AGENT_SR_DESTROY,
		       json_pack("[s,s,s]", jstr(rec, "uuid"), jstr(rec, "type"),
				 jstr(json_object_get(pbd, "device_config"), "path")),
		       sr_destroyed_ok, NULL, xstrdup(sr));
	json_decref(pbd);
	json_decref(rec);
	return e;
}
