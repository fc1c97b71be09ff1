/*
 * mfo_db.c - where the shared files are, as each host sees them: the pool
 * database (a VDI of type redo_log, XAPI's name for the database kept on
 * the HA SR) and HA's statefile, each a file "<uuid>.img" in its SR's
 * directory on that host (the PBD's device_config:path), and what a
 * standby needs to watch the master's lease (mfo_ha_info).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "poold.h"
#include "util.h"
#include "xerr.h"

bool mfo_vdi_path(struct db *db, const char *vdi, const char *host, char *out, size_t n)
{
	json_t *v = db_obj_get(db, vdi);
	json_t *pbds = v ? db_find(db, "PBD", "SR", jstr(v, "SR")) : NULL;
	const char *k;
	json_t *p;
	bool found = false;
	json_object_foreach(pbds, k, p) {
		const char *dir = jstr(json_object_get(p, "device_config"), "path");
		if (found || strcmp(jstr(p, "host"), host) || !json_is_true(json_object_get(p, "currently_attached")) || !*dir)
			continue;
		found = (size_t)snprintf(out, n, "%s/%s.img", dir, jstr(v, "uuid")) < n;
	}
	json_decref(pbds);
	json_decref(v);
	return found;
}

bool mfo_db_path_for(struct poold *pd, const char *host, char *out, size_t n)
{
	char *pool = db_meta_get(pd->pd_db, "pool_ref");
	json_t *p = pool ? db_obj_get(pd->pd_db, pool) : NULL;
	const char *vdi = jstr(p, "redo_log_vdi");
	bool ok = json_is_true(json_object_get(p, "redo_log_enabled")) && strcmp(vdi, MODEL_NULL_REF) &&
		  mfo_vdi_path(pd->pd_db, vdi, host, out, n);
	json_decref(p);
	free(pool);
	return ok;
}

static int mfo_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *mfo_ha_info(struct poold *pd, const char *host)
{
	json_t *conf = pd->pd_ha ? pd->pd_ha->hs_conf : NULL;
	char sf[4200];
	if (!conf || !mfo_vdi_path(pd->pd_db, jstr(conf, "vdi"), host, sf, sizeof sf))
		return NULL;
	json_t *mem = json_object_get(conf, "members");
	size_t n = json_object_size(mem), i = 0;
	const char **uu = xcalloc(n + 1, sizeof *uu);
	const char *ref;
	json_t *u;
	json_object_foreach(mem, ref, u) uu[i++] = json_string_value(u);
	qsort(uu, n, sizeof *uu, mfo_cmp_str);
	json_t *members = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(members, json_string(uu[i]));
	free(uu);
	return json_pack("{s:O, s:O, s:O, s:s, s:o}", "generation", json_object_get(conf, "generation"), "key",
			 json_object_get(conf, "key"), "timeout", json_object_get(conf, "timeout"), "statefile", sf,
			 "members", members);
}

/* ------------------------------------------------- the database's VDI */

struct redo_ctx {
	const char *sr;
	char ref[64];
	json_int_t size;
};

json_t *api_ctor_record(const struct model_class *cls, const json_t *given);

static json_t *mfo_redo_txn(struct db *db, void *ctx)
{
	struct redo_ctx *r = ctx;
	json_t *vdis = db_find(db, "VDI", "SR", r->sr), *v, *e = NULL;
	const char *k;
	r->ref[0] = '\0';
	json_object_foreach(vdis, k, v) if (!r->ref[0] && strcmp(jstr(v, "type"), "redo_log") == 0)
		snprintf(r->ref, sizeof r->ref, "%s", k);
	json_decref(vdis);
	if (!r->ref[0]) {
		json_t *given = json_pack("{s:s, s:s, s:s, s:s, s:I, s:b, s:b, s:{}}", "SR", r->sr, "name_label",
					  "Pool database", "name_description",
					  "The pool master's database: any host that plugs this SR can take over as master",
					  "type", "redo_log", "virtual_size", r->size, "sharable", 1, "read_only", 0,
					  "other_config");
		json_t *rec = api_ctor_record(model_class_find("VDI"), given);
		json_decref(given);
		e = db_obj_create_new(db, "VDI", rec, r->ref);
	}
	char *pool = db_meta_get(db, "pool_ref");
	if (!e && pool)
		e = db_obj_update_new(db, pool, json_pack("{s:b, s:s}", "redo_log_enabled", 1, "redo_log_vdi", r->ref));
	free(pool);
	return e;
}

static json_t *mfo_location_txn(struct db *db, void *ctx)
{
	const char **a = ctx; /* vdi, path */
	return db_obj_set(db, a[0], "location", json_string(a[1]));
}

json_t *mfo_db_vdi(struct poold *pd, const char *sr, char *vdi_ref, char *path, size_t pathlen)
{
	struct redo_ctx r = {sr, "", 64 << 20};
	json_t *e = db_txn(pd->pd_db, mfo_redo_txn, &r);
	if (e)
		return e;
	snprintf(vdi_ref, 64, "%s", r.ref);
	if (!mfo_vdi_path(pd->pd_db, r.ref, pd->pd_host_ref, path, pathlen))
		return xerr_newf(XE_OPERATION_NOT_ALLOWED,
				 "the pool master's host has not plugged SR %s: the pool database cannot move there", sr);
	const char *a[2] = {r.ref, path};
	return db_txn(pd->pd_db, mfo_location_txn, a);
}
