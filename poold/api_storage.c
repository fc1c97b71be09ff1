/*
 * api_storage.c - VDI.create/destroy and VBD.create/destroy: the records and
 * their rules (device numbers, attached disks). Moving bytes is the SR
 * drivers' job (sr/), reached through the hosts that plug the SR.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "poold.h"
#include "xerr.h"

json_t *api_ctor_record(const struct model_class *cls, const json_t *given);

struct vbd_create_ctx {
	json_t *rec;
	char ref[64];
};

/* The lowest userdevice number not used by the VM's other drives. */
static int free_userdevice(json_t *vbds)
{
	for (int d = 0; d < 256; d++) {
		bool used = false;
		const char *ref;
		json_t *r;
		json_object_foreach(vbds, ref, r) {
			const char *u = json_string_value(json_object_get(r, "userdevice"));
			if (u && atoi(u) == d && *u)
				used = true;
		}
		if (!used)
			return d;
	}
	return -1;
}

static json_t *vbd_create_txn(struct db *db, void *ctx)
{
	struct vbd_create_ctx *v = ctx;
	const char *vm = json_string_value(json_object_get(v->rec, "VM"));
	const char *vdi = json_string_value(json_object_get(v->rec, "VDI"));
	bool empty = json_is_true(json_object_get(v->rec, "empty"));
	json_t *rec, *e = db_obj_get_checked(db, "VM", vm ? vm : MODEL_NULL_REF, &rec);
	if (e)
		return e;
	json_decref(rec);
	if (!empty || (vdi && strcmp(vdi, MODEL_NULL_REF))) {
		if ((e = db_obj_get_checked(db, "VDI", vdi ? vdi : MODEL_NULL_REF, &rec)))
			return e;
		json_decref(rec);
	}
	json_t *vbds = db_find(db, "VBD", "VM", vm);
	const char *ud = json_string_value(json_object_get(v->rec, "userdevice"));
	if (!ud || !*ud || strcmp(ud, "autodetect") == 0) {
		int d = free_userdevice(vbds);
		char buf[16];
		snprintf(buf, sizeof buf, "%d", d);
		if (d < 0)
			e = xerr_newf(XE_OPERATION_NOT_ALLOWED, "VM %s has no free device number", vm);
		else
			json_object_set_new(v->rec, "userdevice", json_string(buf));
	} else {
		char *end;
		long n = strtol(ud, &end, 10);
		if (*end || n < 0 || n > 255)
			e = xerr_new(XE_INVALID_VALUE, "userdevice", ud, NULL);
		const char *ref;
		json_t *r;
		json_object_foreach(vbds, ref, r) {
			const char *u = json_string_value(json_object_get(r, "userdevice"));
			if (!e && u && strcmp(u, ud) == 0)
				e = xerr_new(XE_DEVICE_ALREADY_EXISTS, ud, NULL);
		}
	}
	json_decref(vbds);
	return e ? e : db_obj_create(db, "VBD", v->rec, v->ref);
}

json_t *vbd_create(struct api_call *c)
{
	const struct model_class *cls = model_class_find("VBD");
	json_t *given, *e = api_arg_obj(c, 0, "args", &given);
	if (e || (e = api_record_check(cls, given)))
		return e;
	struct vbd_create_ctx v = {api_ctor_record(cls, given), ""};
	e = db_txn(c->ac_pd->pd_db, vbd_create_txn, &v);
	json_decref(v.rec);
	if (!e)
		c->ac_result = json_string(v.ref);
	return e;
}

static json_t *vbd_destroy_txn(struct db *db, void *ctx)
{
	const char *vbd = ctx;
	json_t *rec, *e = db_obj_get_checked(db, "VBD", vbd, &rec);
	if (e)
		return e;
	bool attached = json_is_true(json_object_get(rec, "currently_attached"));
	json_decref(rec);
	if (attached)
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "VBD %s is attached: unplug it first", vbd);
	return db_obj_destroy(db, vbd);
}

json_t *vbd_destroy(struct api_call *c)
{
	const char *vbd;
	json_t *e = api_arg_str(c, 0, "VBD", &vbd);
	return e ? e : db_txn(c->ac_pd->pd_db, vbd_destroy_txn, (void *)vbd);
}
