/*
 * api_device.c - a VM's devices while it runs: VBD.plug / unplug /
 * unplug_force (a disk hot-added or removed), VBD.insert / eject (a CD's
 * media), VIF.create / destroy / plug / unplug / unplug_force, and
 * network.destroy (refused while its VIFs are attached, as XAPI).
 *
 * ops.c decides whether an operation may run (XAPI's hot-plug rules); the
 * device's current_operations holds it meanwhile; the VM's host's agent
 * does it; currently_attached and device follow the agent's answer. On a
 * VM that does not run, insert and eject only change the records.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>
#include "ops.h"
#include "poold.h"
#include "util.h"
#include "xerr.h"

/* What a device operation remembers while the agent works. */
struct devop {
	char do_dev[64], do_id[64], do_vdi[64];
	char do_op[16];     /* plug, unplug, insert, eject */
	bool do_attach;     /* currently_attached afterwards */
};

struct devop_ans {
	struct devop *da_op;
	json_t *da_answer;
};

static json_t *begin_txn(struct db *db, void *ctx)
{
	struct devop *o = ctx;
	return ops_begin(db, o->do_dev, strcmp(o->do_op, "unplug_force") == 0 ? "unplug" : o->do_op, o->do_id);
}

static json_t *end_txn(struct db *db, void *ctx)
{
	struct devop *o = ctx;
	return ops_end(db, o->do_dev, o->do_id);
}

static void devop_failed(struct poold *pd, void *ctx, json_t **err)
{
	(void)err;
	txn_until_done(pd, end_txn, ctx, sizeof(struct devop), "the end of a device operation");
}

/* XAPI names a PV disk by its position: userdevice 0 is xvda. */
static void device_name(const char *userdevice, char *out, size_t n)
{
	int d = *userdevice ? atoi(userdevice) : -1;
	snprintf(out, n, "%s", "");
	if (d >= 0 && d < 26)
		snprintf(out, n, "xvd%c", 'a' + d);
}

static json_t *done_txn(struct db *db, void *ctx)
{
	struct devop *o = ctx;
	json_t *rec = db_obj_get(db, o->do_dev);
	if (!rec)
		return NULL;
	char cls[16];
	db_obj_class(db, o->do_dev, cls, sizeof cls);
	json_t *f = json_pack("{s:b}", "currently_attached", o->do_attach);
	if (strcmp(cls, "VBD") == 0) {
		char dev[16];
		device_name(o->do_attach ? jstr(rec, "userdevice") : "", dev, sizeof dev);
		json_object_set_new(f, "device", json_string(dev));
	}
	if (strcmp(o->do_op, "insert") == 0)
		json_object_update_new(f, json_pack("{s:s, s:b}", "VDI", o->do_vdi, "empty", 0));
	if (strcmp(o->do_op, "eject") == 0)
		json_object_update_new(f, json_pack("{s:s, s:b}", "VDI", MODEL_NULL_REF, "empty", 1));
	json_decref(rec);
	json_t *e = db_obj_update_new(db, o->do_dev, f);
	return e ? e : ops_end(db, o->do_dev, o->do_id);
}

static json_t *devop_done(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t **result)
{
	(void)c, (void)answer, (void)result;
	return db_txn(pd->pd_db, done_txn, ctx);
}

/* The agent's description of a VBD's disk: SR and VDI uuids, device. */
static json_t *disk_of(struct db *db, const json_t *vbd, const char *vdi_ref)
{
	json_t *vdi = db_obj_get(db, vdi_ref), *sr = db_obj_get(db, jstr(vdi, "SR"));
	json_t *d = json_pack("{s:s, s:s, s:s, s:b}", "sr", jstr(sr, "uuid"), "vdi", jstr(vdi, "uuid"), "device",
			      jstr(vbd, "userdevice"),
			      "readonly", strcmp(jstr(vbd, "mode"), "RO") == 0 || strcmp(jstr(vbd, "type"), "CD") == 0);
	json_decref(sr);
	json_decref(vdi);
	return d;
}

/* Begin op on the device, then ask the VM's host's agent (or, when the VM
 * does not run and the op is a record change, just record it). */
static json_t *device_op(struct api_call *c, const char *cls, const char *op, const char *vdi)
{
	struct poold *pd = c->ac_pd;
	const char *dev;
	json_t *rec, *e = api_arg_ref(c, 0, cls, &dev);
	if (e || (e = db_obj_get_checked(pd->pd_db, cls, dev, &rec)))
		return e;
	struct devop *o = xcalloc(1, sizeof *o);
	snprintf(o->do_dev, sizeof o->do_dev, "%s", dev);
	snprintf(o->do_op, sizeof o->do_op, "%s", op);
	snprintf(o->do_vdi, sizeof o->do_vdi, "%s", vdi ? vdi : "");
	bool plug = strcmp(op, "plug") == 0 || strcmp(op, "insert") == 0;
	o->do_attach = plug;
	json_t *vm = db_obj_get(pd->pd_db, jstr(rec, "VM"));
	bool running = strcmp(jstr(vm, "power_state"), "Running") == 0;
	/* an empty drive has nothing to plug into the guest */
	bool nothing = strcmp(op, "plug") == 0 && json_is_true(json_object_get(rec, "empty"));
	if ((e = db_txn(pd->pd_db, begin_txn, o))) {
		free(o);
	} else if (!running || nothing) { /* a CD's media of a VM that does not run, an empty drive */
		o->do_attach = false;
		e = db_txn(pd->pd_db, done_txn, o);
		free(o);
	} else {
		bool vbd = strcmp(cls, "VBD") == 0;
		enum agent_method m = vbd ? (plug ? AGENT_VBD_PLUG : AGENT_VBD_UNPLUG) : (plug ? AGENT_VIF_PLUG : AGENT_VIF_UNPLUG);
		json_t *params = vbd && plug ? json_pack("[s,o]", jstr(vm, "uuid"), disk_of(pd->pd_db, rec, vdi ? vdi : jstr(rec, "VDI")))
				 : json_pack("[s,s]", jstr(vm, "uuid"), jstr(rec, vbd ? "userdevice" : "device"));
		e = agent_call(c, jstr(vm, "resident_on"), m, params, devop_done, devop_failed, o);
	}
	json_decref(vm);
	json_decref(rec);
	return e;
}

json_t *vbd_plug(struct api_call *c)
{
	return device_op(c, "VBD", "plug", NULL);
}

json_t *vbd_unplug(struct api_call *c)
{
	return device_op(c, "VBD", "unplug", NULL);
}

json_t *vbd_unplug_force(struct api_call *c)
{
	return device_op(c, "VBD", "unplug_force", NULL);
}

/* VBD.insert(vbd, vdi): media into an empty CD drive. */
json_t *vbd_insert(struct api_call *c)
{
	const char *vdi;
	json_t *rec, *e = api_arg_ref(c, 1, "VDI", &vdi);
	if (e || (e = db_obj_get_checked(c->ac_pd->pd_db, "VDI", vdi, &rec)))
		return e;
	json_decref(rec);
	return device_op(c, "VBD", "insert", vdi);
}

json_t *vbd_eject(struct api_call *c)
{
	return device_op(c, "VBD", "eject", NULL);
}

json_t *vif_plug(struct api_call *c)
{
	return device_op(c, "VIF", "plug", NULL);
}

json_t *vif_unplug(struct api_call *c)
{
	return device_op(c, "VIF", "unplug", NULL);
}

json_t *vif_unplug_force(struct api_call *c)
{
	return device_op(c, "VIF", "unplug_force", NULL);
}

/* ------------------------------------------------- VIF.create / destroy */

json_t *api_ctor_record(const struct model_class *cls, const json_t *given);

/* A random locally administered unicast MAC (XAPI derives one from the
 * VM's mac_seed; any unique address does). */
static void random_mac(char *out, size_t n)
{
	unsigned char b[6];
	if (RAND_bytes(b, sizeof b) != 1)
		memset(b, 0x42, sizeof b);
	b[0] = (unsigned char)((b[0] & 0xfc) | 0x02);
	snprintf(out, n, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
}

static bool mac_valid(const char *m)
{
	unsigned v[6];
	char end;
	return strlen(m) == 17 && sscanf(m, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &end) == 6;
}

struct vif_new {
	json_t *vn_rec;
	char vn_ref[64];
};

static json_t *vif_create_txn(struct db *db, void *ctx)
{
	struct vif_new *v = ctx;
	json_t *vm, *net, *e = db_obj_get_checked(db, "VM", jstr(v->vn_rec, "VM"), &vm);
	if (e || (e = db_obj_get_checked(db, "network", jstr(v->vn_rec, "network"), &net))) {
		json_decref(vm);
		return e;
	}
	const char *dev = jstr(v->vn_rec, "device");
	char *end;
	long d = strtol(dev, &end, 10);
	if (!*dev || *end || d < 0 || d > 15)
		e = xerr_new(XE_INVALID_VALUE, "device", dev, NULL);
	json_t *vifs = db_find(db, "VIF", "VM", jstr(v->vn_rec, "VM"));
	const char *k;
	json_t *x;
	json_object_foreach(vifs, k, x) if (!e && strcmp(jstr(x, "device"), dev) == 0) e =
		xerr_new(XE_DEVICE_ALREADY_EXISTS, dev, NULL);
	json_decref(vifs);
	if (!e && !json_object_get(v->vn_rec, "MTU"))
		json_object_set(v->vn_rec, "MTU", json_object_get(net, "MTU"));
	json_object_set_new(v->vn_rec, "currently_attached", json_false());
	json_decref(net);
	json_decref(vm);
	return e ? e : db_obj_create(db, "VIF", v->vn_rec, v->vn_ref);
}

/* VIF.create(record): a device number 0..15 not taken on the VM
 * (DEVICE_ALREADY_EXISTS), a MAC given or chosen. It is plugged by
 * VIF.plug (or the VM's next start). */
json_t *vif_create(struct api_call *c)
{
	const struct model_class *cls = model_class_find("VIF");
	json_t *given, *e = api_arg_obj(c, 0, "args", &given);
	if (e || (e = api_record_check(cls, given)))
		return e;
	struct vif_new v = {api_ctor_record(cls, given), ""};
	const char *mac = jstr(v.vn_rec, "MAC");
	if (!*mac) {
		char m[32];
		random_mac(m, sizeof m);
		json_object_set_new(v.vn_rec, "MAC", json_string(m));
		json_object_set_new(v.vn_rec, "MAC_autogenerated", json_true());
	} else if (!mac_valid(mac)) {
		e = xerr_new(XE_INVALID_VALUE, "MAC", mac, NULL);
	}
	if (!e)
		e = db_txn(c->ac_pd->pd_db, vif_create_txn, &v);
	json_decref(v.vn_rec);
	if (!e)
		c->ac_result = json_string(v.vn_ref);
	return e;
}

static json_t *vif_destroy_txn(struct db *db, void *ctx)
{
	const char *vif = ctx;
	json_t *rec, *e = db_obj_get_checked(db, "VIF", vif, &rec);
	if (e)
		return e;
	bool attached = json_is_true(json_object_get(rec, "currently_attached"));
	json_decref(rec);
	if (attached)
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "VIF %s is attached: unplug it first", vif);
	return db_obj_destroy(db, vif);
}

json_t *vif_destroy(struct api_call *c)
{
	const char *vif;
	json_t *e = api_arg_ref(c, 0, "VIF", &vif);
	return e ? e : db_txn(c->ac_pd->pd_db, vif_destroy_txn, (void *)vif);
}

/* ------------------------------------------------------ network.destroy */

static json_t *network_destroy_txn(struct db *db, void *ctx)
{
	const char *net = ctx;
	json_t *rec, *e = db_obj_get_checked(db, "network", net, &rec);
	if (e)
		return e;
	json_decref(rec);
	json_t *vifs = db_find(db, "VIF", "network", net), *pifs = db_find(db, "PIF", "network", net);
	const char *k;
	json_t *v;
	/* as XAPI: refused while a VIF is attached or a PIF is on it (the first named) */
	json_object_foreach(vifs, k, v) if (!e && json_is_true(json_object_get(v, "currently_attached"))) e =
		xerr_new(XE_NETWORK_CONTAINS_VIF, k, NULL);
	json_object_foreach(pifs, k, v) if (!e) e = xerr_new(XE_NETWORK_CONTAINS_PIF, k, NULL);
	/* detached VIFs would name a network that is gone: they go with it */
	json_object_foreach(vifs, k, v) if (!e) e = db_obj_destroy(db, k);
	json_decref(vifs);
	json_decref(pifs);
	return e ? e : db_obj_destroy(db, net);
}

/* network.destroy(network) */
json_t *network_destroy(struct api_call *c)
{
	const char *net;
	json_t *e = api_arg_ref(c, 0, "network", &net);
	return e ? e : db_txn(c->ac_pd->pd_db, network_destroy_txn, (void *)net);
}
