/*
 * api_vm_provision.c - VM.provision: the disks a template asks for in its
 * other_config:disks (XAPI's <provision> XML, which Xen Orchestra writes
 * before calling it) are created, each with its VBD, and the template
 * becomes a VM (XO's New VM: VM.clone of a template, then VM.provision).
 *
 * The disks are made one after the other by agents with the SR plugged
 * (vdijob.c); the VBDs, the end of is_a_template and the removal of the
 * disks key come in one transaction; a failure removes the disks made.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ops.h"
#include "poold.h"
#include "util.h"
#include "vm_rules.h"
#include "xerr.h"

struct provision {
	char pv_vm[64], pv_id[64];
	json_t *pv_disks; /* vm_provision_disks' answer */
};

static void provision_free(void *p)
{
	struct provision *v = p;
	json_decref(v->pv_disks);
	free(v);
}

static json_t *end_txn(struct db *db, void *ctx)
{
	struct provision *v = ctx;
	return ops_end(db, v->pv_vm, v->pv_id);
}

static void provision_failed(struct poold *pd, void *ctx, json_t **err)
{
	(void)err;
	json_decref(db_txn(pd->pd_db, end_txn, ctx));
}

struct done_ctx {
	struct provision *dc_v;
	json_t *dc_made;
};

static json_t *done_txn(struct db *db, void *ctx)
{
	struct done_ctx *d = ctx;
	struct provision *v = d->dc_v;
	json_t *e = NULL;
	size_t i;
	json_t *disk;
	json_array_foreach(v->pv_disks, i, disk) {
		const char *vdi = json_string_value(json_array_get(d->dc_made, i));
		char ref[64];
		if (!e)
			e = db_obj_set(db, vdi, "name_label", json_string(jstr(disk, "device")));
		if (!e)
			e = db_obj_create_new(db, "VBD",
					      json_pack("{s:s, s:s, s:s, s:O, s:s, s:s, s:b, s:b, s:{s:s}}", "VM", v->pv_vm,
							"VDI", vdi, "userdevice", jstr(disk, "device"), "bootable",
							json_object_get(disk, "bootable"), "mode", "RW", "type", "Disk",
							"unpluggable", strcmp(jstr(disk, "type"), "system") != 0, "empty", 0,
							"other_config", "owner", ""),
					      ref);
	}
	json_t *rec = e ? NULL : db_obj_get(db, v->pv_vm);
	json_t *oc = json_deep_copy(json_object_get(rec, "other_config"));
	if (json_is_object(oc)) {
		json_object_del(oc, "disks");
		json_object_del(oc, "install-methods");
		e = db_obj_update_new(db, v->pv_vm, json_pack("{s:b, s:o}", "is_a_template", 0, "other_config", oc));
	} else {
		json_decref(oc);
	}
	json_decref(rec);
	return e ? e : ops_end(db, v->pv_vm, v->pv_id);
}

static json_t *made(struct api_call *c, struct poold *pd, void *ctx, json_t *vdis, json_t **result)
{
	(void)c, (void)result;
	struct done_ctx d = {ctx, vdis};
	return db_txn(pd->pd_db, done_txn, &d);
}

static json_t *begin_txn(struct db *db, void *ctx)
{
	struct provision *v = ctx;
	return ops_begin(db, v->pv_vm, "provision", v->pv_id);
}

/* The new disks as vdijob items: each SR by uuid (UUID_INVALID otherwise). */
static json_t *items_of(struct db *db, const char *vm, json_t *disks, json_t **err)
{
	json_t *items = json_array();
	size_t i;
	json_t *d;
	json_array_foreach(disks, i, d) {
		char sr[64];
		if (!db_ref_by_uuid(db, "SR", jstr(d, "sr"), sr)) {
			*err = xerr_new(XE_UUID_INVALID, "sr", jstr(d, "sr"), NULL);
			json_decref(items);
			return NULL;
		}
		json_t *rec = json_pack("{s:s, s:s, s:s, s:I, s:s, s:b, s:b, s:{s:s}}", "name_label", "", "name_description",
					"Created by template provisioner", "SR", sr, "virtual_size",
					json_integer_value(json_object_get(d, "size")), "type", jstr(d, "type"), "sharable", 0,
					"read_only", 0, "sm_config", "vmhint", vm);
		json_array_append_new(items, json_pack("{s:O, s:s, s:o}", "create", json_object_get(d, "size"), "sr", sr,
						       "record", rec));
	}
	return items;
}

/* VM.provision(vm) */
json_t *vm_provision(struct api_call *c)
{
	struct poold *pd = c->ac_pd;
	const char *vm;
	json_t *rec, *e = api_arg_ref(c, 0, "VM", &vm);
	if (e || (e = db_obj_get_checked(pd->pd_db, "VM", vm, &rec)))
		return e;
	struct provision *v = xcalloc(1, sizeof *v);
	snprintf(v->pv_vm, sizeof v->pv_vm, "%s", vm);
	v->pv_disks = vm_provision_disks(jstr(json_object_get(rec, "other_config"), "disks"), &e);
	json_t *items = e ? NULL : items_of(pd->pd_db, jstr(rec, "uuid"), v->pv_disks, &e);
	json_decref(rec);
	if (!e)
		e = db_txn(pd->pd_db, begin_txn, v);
	if (e) {
		json_decref(items);
		provision_free(v);
		return e;
	}
	json_t *result = NULL;
	e = vdijob_run(pd, c, items, made, provision_failed, v, provision_free, &result);
	if (!e)
		c->ac_result = result;
	return e;
}
