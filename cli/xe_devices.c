/*
 * xe_devices.c - the xe commands for a VM's disks, CDs and network
 * devices, and for VDIs and networks, with cli_frontend.ml's parameters:
 * vm-disk-add/-remove/-list, vm-cd-add/-remove/-list/-insert/-eject,
 * vm-vif-list, vbd-plug/-unplug/-insert/-eject, vif-create/-destroy/-plug/
 * -unplug, vdi-snapshot/-clone/-resize/-copy, network-create/-destroy.
 */
#include <stdlib.h>
#include <string.h>
#include "xe.h"
#include "util.h"
#include "xerr.h"

static char *str_of(json_t *r)
{
	char *s = json_is_string(r) ? xstrdup(json_string_value(r)) : NULL;
	json_decref(r);
	return s;
}

static int print_new(struct xe_ctx *c, const char *cls, char *ref)
{
	int rc = ref ? xe_print_uuid(c, cls, ref) : -1;
	free(ref);
	return rc;
}

/* XAPI's create_vbd_and_plug: a new VBD, plugged when the VM runs. */
static int vbd_create_plug(struct xe_ctx *c, const char *vm, const char *vdi, const char *device, bool cd)
{
	json_t *args = json_pack("{s:s, s:s, s:s, s:b, s:s, s:s, s:b, s:b, s:{s:s}, s:s, s:{}}", "VM", vm, "VDI", vdi,
				 "userdevice", device, "bootable", 0, "mode", cd ? "RO" : "RW", "type", cd ? "CD" : "Disk",
				 "unpluggable", 1, "empty", 0, "other_config", "owner", "", "qos_algorithm_type", "",
				 "qos_algorithm_params");
	if (cd)
		json_object_del(json_object_get(args, "other_config"), "owner");
	char *vbd = str_of(xe_rpc(c, "VBD.create", "o", args));
	json_t *ps = vbd ? xe_rpc(c, "VM.get_power_state", "s", vm) : NULL;
	int rc = ps ? 0 : -1;
	if (!rc && strcmp(json_string_value(ps) ?: "", "Running") == 0)
		rc = xe_void_result(xe_rpc(c, "VBD.plug", "s", vbd));
	json_decref(ps);
	free(vbd);
	return rc;
}

/* ---- disks ---- */

struct disk_add {
	long long size;
	char *sr;
};

static int disk_add_one(struct xe_ctx *c, const char *vm, void *arg)
{
	struct disk_add *d = arg;
	json_t *uuid = xe_rpc(c, "VM.get_uuid", "s", vm);
	if (!uuid)
		return -1;
	json_t *args = json_pack("{s:s, s:s, s:s, s:I, s:s, s:b, s:b, s:{}, s:{}, s:{s:O}, s:[]}", "name_label",
				 "Created by xe", "name_description", "Created by xe", "SR", d->sr, "virtual_size",
				 (json_int_t)d->size, "type", "user", "sharable", 0, "read_only", 0, "other_config",
				 "xenstore_data", "sm_config", "vmhint", uuid, "tags");
	json_decref(uuid);
	char *vdi = str_of(xe_rpc(c, "VDI.create", "o", args));
	if (!vdi)
		return -1;
	int rc = vbd_create_plug(c, vm, vdi, xe_param(c, "device"), false);
	if (rc) { /* as XAPI: the new disk goes again */
		json_t *save = c->xerr;
		char *msg = c->msg;
		c->xerr = NULL;
		c->msg = NULL;
		json_decref(xe_rpc(c, "VDI.destroy", "s", vdi));
		json_decref(c->xerr);
		free(c->msg);
		c->xerr = save;
		c->msg = msg;
	}
	free(vdi);
	return rc;
}

/* The pool's default SR (XAPI's get_default_sr_uuid), or NULL + error. */
static char *default_sr(struct xe_ctx *c)
{
	json_t *pools = xe_rpc(c, "pool.get_all", "");
	char *sr = pools ? str_of(xe_rpc(c, "pool.get_default_SR", "s", json_string_value(json_array_get(pools, 0))))
			 : NULL;
	json_decref(pools);
	if (sr && strcmp(sr, MODEL_NULL_REF) == 0) {
		free(sr);
		sr = NULL;
		xe_fail(c, "No default Pool SR set; you must specify an SR on the commandline");
	}
	return sr;
}

int xe_cmd_vm_disk_add(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	const char *sz = xe_param(c, "disk-size"), *su = xe_param(c, "sr-uuid");
	struct disk_add d = {xe_parse_size(sz), NULL};
	if (d.size < 0)
		return xe_fail(c, "Failed to parse parameter 'disk-size': expecting a size such as 10GiB, got '%s'", sz);
	d.sr = su ? xe_ref_by_uuid(c, "SR", su) : default_sr(c);
	int rc = d.sr ? xe_each(c, cmd, true, disk_add_one, &d) : -1;
	free(d.sr);
	return rc;
}

/* The VM's VBD on userdevice device, or NULL + "Disk not found". */
static char *vbd_on(struct xe_ctx *c, const char *vm, const char *device)
{
	json_t *vbds = xe_rpc(c, "VM.get_VBDs", "s", vm);
	char *found = NULL;
	size_t i;
	json_t *b;
	json_array_foreach(vbds, i, b) {
		json_t *u = found ? NULL : xe_rpc(c, "VBD.get_userdevice", "s", json_string_value(b));
		if (u && strcmp(json_string_value(u), device) == 0)
			found = xstrdup(json_string_value(b));
		json_decref(u);
	}
	if (vbds && !found)
		xe_fail(c, "Disk not found");
	json_decref(vbds);
	return found;
}

static int disk_remove_one(struct xe_ctx *c, const char *vm, void *arg)
{
	(void)arg;
	char *vbd = vbd_on(c, vm, xe_param(c, "device"));
	char *vdi = vbd ? str_of(xe_rpc(c, "VBD.get_VDI", "s", vbd)) : NULL;
	int rc = vdi ? xe_void_result(xe_rpc(c, "VBD.destroy", "s", vbd)) : -1;
	if (!rc)
		rc = xe_void_result(xe_rpc(c, "VDI.destroy", "s", vdi));
	free(vdi);
	free(vbd);
	return rc;
}

int xe_cmd_vm_disk_remove(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	return xe_each(c, cmd, true, disk_remove_one, NULL);
}

/* XAPI's vm_disk_list_aux: per disk, its VBD then its VDI. */
static int disk_list_one(struct xe_ctx *c, const char *vm, void *arg)
{
	bool cd = *(bool *)arg;
	struct xe_cls vbdc, vdic;
	if (xe_cls_build("vbd", &vbdc))
		return xe_fail(c, "internal error: no CLI class vbd");
	if (xe_cls_build("vdi", &vdic)) {
		xe_cls_free(&vbdc);
		return xe_fail(c, "internal error: no CLI class vdi");
	}
	json_t *vbds = xe_rpc(c, "VM.get_VBDs", "s", vm);
	const char *vp = xe_param(c, "vbd-params"), *dp = xe_param(c, "vdi-params");
	int n = 0;
	size_t i;
	json_t *b;
	json_array_foreach(vbds, i, b) {
		json_t *rec = xe_rpc(c, "VBD.get_record", "s", json_string_value(b));
		if (!rec || strcmp(json_string_value(json_object_get(rec, "type")) ?: "", cd ? "CD" : "Disk")) {
			json_decref(rec);
			continue;
		}
		fprintf(c->out, "%s %d VBD:\n", cd ? "CD" : "Disk", n);
		json_t *one = json_pack("{s:O}", json_string_value(b), rec);
		xe_print_records(c, &vbdc, one, vp ? vp : cd ? "uuid,vm-name-label,userdevice,empty" : "uuid,vm-name-label,userdevice");
		json_decref(one);
		const char *vdi = json_string_value(json_object_get(rec, "VDI"));
		json_t *vrec = vdi && strcmp(vdi, MODEL_NULL_REF) ? xe_rpc(c, "VDI.get_record", "s", vdi) : NULL;
		if (vrec) {
			fprintf(c->out, "%s %d VDI:\n", cd ? "CD" : "Disk", n);
			one = json_pack("{s:O}", vdi, vrec);
			xe_print_records(c, &vdic, one, dp ? dp : "uuid,name-label,virtual-size,sr-name-label");
			json_decref(one);
		}
		json_decref(vrec);
		json_decref(rec);
		n++;
	}
	json_decref(vbds);
	xe_cls_free(&vbdc);
	xe_cls_free(&vdic);
	return 0;
}

int xe_cmd_vm_disk_list(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	bool cd = strcmp(cmd->name, "vm-cd-list") == 0;
	return xe_each(c, cmd, true, disk_list_one, &cd);
}

/* ---- CDs (VDIs of an SR with content-type iso, found by name) ---- */

/* The ISO VDIs named name (a new array of refs). */
static json_t *isos_named(struct xe_ctx *c, const char *name)
{
	json_t *vdis = xe_all(c, "VDI"), *srs = xe_all(c, "SR"), *out = json_array();
	const char *ref;
	json_t *v;
	json_object_foreach(vdis, ref, v) {
		json_t *sr = json_object_get(srs, json_string_value(json_object_get(v, "SR")) ?: "");
		if (strcmp(json_string_value(json_object_get(v, "name_label")) ?: "", name) == 0 &&
		    strcmp(json_string_value(json_object_get(sr, "content_type")) ?: "", "iso") == 0)
			json_array_append_new(out, json_string(ref));
	}
	return out;
}

static int cd_add_one(struct xe_ctx *c, const char *vm, void *arg)
{
	return vbd_create_plug(c, vm, arg, xe_param(c, "device"), true);
}

int xe_cmd_vm_cd_add(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	const char *name = xe_param(c, "cd-name");
	json_t *isos = isos_named(c, name);
	int rc = json_array_size(isos) ? 0 : xe_fail(c, "CD %s not found!", name);
	if (!rc)
		rc = xe_each(c, cmd, true, cd_add_one, (void *)json_string_value(json_array_get(isos, 0)));
	json_decref(isos);
	return rc;
}

/* The VM's CD VBDs, all or only empty ones (a new array). */
static json_t *cd_vbds(struct xe_ctx *c, const char *vm, bool only_empty)
{
	json_t *vbds = xe_rpc(c, "VM.get_VBDs", "s", vm), *out = json_array();
	size_t i;
	json_t *b;
	json_array_foreach(vbds, i, b) {
		json_t *r = xe_rpc(c, "VBD.get_record", "s", json_string_value(b));
		if (r && strcmp(json_string_value(json_object_get(r, "type")) ?: "", "CD") == 0 &&
		    (!only_empty || json_is_true(json_object_get(r, "empty"))))
			json_array_append(out, b);
		json_decref(r);
	}
	json_decref(vbds);
	return out;
}

static int cd_remove_one(struct xe_ctx *c, const char *vm, void *arg)
{
	const char *name = arg;
	json_t *cds = cd_vbds(c, vm, false);
	char *found = NULL;
	size_t i;
	json_t *b;
	json_array_foreach(cds, i, b) {
		char *vdi = found ? NULL : str_of(xe_rpc(c, "VBD.get_VDI", "s", json_string_value(b)));
		json_t *label = vdi && strcmp(vdi, MODEL_NULL_REF) ? xe_rpc(c, "VDI.get_name_label", "s", vdi) : NULL;
		const char *l = label ? json_string_value(label) : "<EMPTY>";
		if (strcmp(l, name) == 0)
			found = xstrdup(json_string_value(b));
		json_decref(label);
		free(vdi);
	}
	json_decref(cds);
	int rc = found ? xe_void_result(xe_rpc(c, "VBD.destroy", "s", found)) : xe_fail(c, "Disk not found");
	free(found);
	return rc;
}

int xe_cmd_vm_cd_remove(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	return xe_each(c, cmd, true, cd_remove_one, (void *)xe_param(c, "cd-name"));
}

/* XAPI's VM_NO_EMPTY_CD_VBD, raised by its CLI itself. */
static int no_empty_cd(struct xe_ctx *c, const char *vm)
{
	if (!c->msg && !c->xerr)
		c->xerr = xerr_new(XE_VM_NO_EMPTY_CD_VBD, vm, NULL);
	return -1;
}

static int cd_insert_one(struct xe_ctx *c, const char *vm, void *arg)
{
	json_t *cds = cd_vbds(c, vm, true);
	int rc = json_array_size(cds) == 1 ? xe_void_result(xe_rpc(c, "VBD.insert", "ss", json_string_value(json_array_get(cds, 0)), (const char *)arg))
		 : json_array_size(cds) ? xe_fail(c, "Two or more empty CD devices found. Please use vbd-insert")
					: no_empty_cd(c, vm);
	json_decref(cds);
	return rc;
}

int xe_cmd_vm_cd_insert(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	const char *name = xe_param(c, "cd-name");
	json_t *isos = isos_named(c, name);
	int rc = json_array_size(isos) == 1 ? 0
		 : json_array_size(isos)    ? xe_fail(c, "Multiple CDs named %s found. Please use vbd-insert and specify uuids", name)
					    : xe_fail(c, "CD %s not found", name);
	if (!rc)
		rc = xe_each(c, cmd, true, cd_insert_one, (void *)json_string_value(json_array_get(isos, 0)));
	json_decref(isos);
	return rc;
}

static int cd_eject_one(struct xe_ctx *c, const char *vm, void *arg)
{
	(void)arg;
	json_t *cds = cd_vbds(c, vm, false);
	int rc = json_array_size(cds) == 1 ? xe_void_result(xe_rpc(c, "VBD.eject", "s", json_string_value(json_array_get(cds, 0))))
		 : json_array_size(cds) ? xe_fail(c, "Two or more CDs found. Please use vbd-eject")
					: xe_fail(c, "No CDs found");
	json_decref(cds);
	return rc;
}

int xe_cmd_vm_cd_eject(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	return xe_each(c, cmd, true, cd_eject_one, NULL);
}

/* ---- VIFs ---- */

static int vif_list_one(struct xe_ctx *c, const char *vm, void *arg)
{
	(void)arg;
	struct xe_cls x;
	if (xe_cls_build("vif", &x))
		return xe_fail(c, "internal error: no CLI class vif");
	json_t *vifs = xe_rpc(c, "VM.get_VIFs", "s", vm), *recs = json_object();
	size_t i;
	json_t *v;
	json_array_foreach(vifs, i, v) {
		json_t *r = xe_rpc(c, "VIF.get_record", "s", json_string_value(v));
		if (r)
			json_object_set_new(recs, json_string_value(v), r);
	}
	xe_print_records(c, &x, recs, xe_param(c, "params"));
	json_decref(recs);
	json_decref(vifs);
	xe_cls_free(&x);
	return vifs ? 0 : -1;
}

int xe_cmd_vm_vif_list(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	return xe_each(c, cmd, true, vif_list_one, NULL);
}

int xe_cmd_vif_create(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	char *vm = xe_ref_by_uuid(c, "VM", xe_param(c, "vm-uuid"));
	char *net = vm ? xe_ref_by_uuid(c, "network", xe_param(c, "network-uuid")) : NULL;
	json_t *mtu = net ? xe_rpc(c, "network.get_MTU", "s", net) : NULL;
	const char *mac = xe_param(c, "mac");
	char *vif = NULL;
	if (mtu) /* mac=random: the server chooses, as an empty MAC */
		vif = str_of(xe_rpc(c, "VIF.create", "{s:s, s:s, s:s, s:s, s:O, s:{}, s:s, s:{}}", "device",
				    xe_param(c, "device"), "network", net, "VM", vm, "MAC",
				    mac && strcmp(mac, "random") ? mac : "", "MTU", mtu, "other_config",
				    "qos_algorithm_type", "", "qos_algorithm_params"));
	json_decref(mtu);
	free(net);
	free(vm);
	return print_new(c, "VIF", vif);
}

/* <cls>-<op> uuid=: VIF/VBD/network destroy, plug, unplug, eject. */
int xe_cmd_dev_op(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	const char *cls = strncmp(cmd->name, "vif-", 4) == 0 ? "VIF" : strncmp(cmd->name, "vbd-", 4) == 0 ? "VBD" : "network";
	const char *op = strchr(cmd->name, '-') + 1;
	bool force = false;
	if (strcmp(op, "unplug") == 0 && xe_bool_param(c, "force", false, &force))
		return -1;
	char *ref = xe_ref_by_uuid(c, cls, xe_param(c, "uuid"));
	if (!ref)
		return -1;
	char method[64];
	snprintf(method, sizeof method, "%s.%s%s", cls, op, force ? "_force" : "");
	int rc = xe_void_result(xe_rpc(c, method, "s", ref));
	free(ref);
	return rc;
}

int xe_cmd_vbd_insert(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	char *vbd = xe_ref_by_uuid(c, "VBD", xe_param(c, "uuid"));
	char *vdi = vbd ? xe_ref_by_uuid(c, "VDI", xe_param(c, "vdi-uuid")) : NULL;
	int rc = vdi ? xe_void_result(xe_rpc(c, "VBD.insert", "ss", vbd, vdi)) : -1;
	free(vdi);
	free(vbd);
	return rc;
}

/* ---- VDIs ---- */

int xe_cmd_vdi_copy_op(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	char *vdi = xe_ref_by_uuid(c, "VDI", xe_param(c, "uuid"));
	if (!vdi)
		return -1;
	char *out = NULL;
	if (strcmp(cmd->name, "vdi-copy") == 0) {
		const char *su = xe_param(c, "sr-uuid"), *into = xe_param(c, "into-vdi-uuid");
		if (!su == !into) {
			free(vdi);
			return xe_fail(c, "Please specify one but not both of: a destination sr-uuid (I will create a fresh "
					  "VDI); or a destination into-vdi-uuid (I will copy the blocks into this VDI)");
		}
		char *sr = su ? xe_ref_by_uuid(c, "SR", su) : NULL;
		char *iv = into ? xe_ref_by_uuid(c, "VDI", into) : NULL;
		if ((su && sr) || (into && iv))
			out = str_of(xe_rpc(c, "VDI.copy", "ssss", vdi, sr ? sr : MODEL_NULL_REF, MODEL_NULL_REF,
					    iv ? iv : MODEL_NULL_REF));
		free(sr);
		free(iv);
	} else {
		bool snap = strcmp(cmd->name, "vdi-snapshot") == 0;
		out = str_of(xe_rpc(c, snap ? "VDI.snapshot" : "VDI.clone", "so", vdi, xe_map_params(c, "driver-params")));
		const char *nl = snap ? NULL : xe_param(c, "new-name-label"), *nd = snap ? NULL : xe_param(c, "new-name-description");
		if (out && nl && xe_void_result(xe_rpc(c, "VDI.set_name_label", "ss", out, nl)))
			out = (free(out), NULL);
		if (out && nd && xe_void_result(xe_rpc(c, "VDI.set_name_description", "ss", out, nd)))
			out = (free(out), NULL);
	}
	free(vdi);
	return print_new(c, "VDI", out);
}

int xe_cmd_vdi_resize(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	const char *sz = xe_param(c, "disk-size");
	long long size = xe_parse_size(sz);
	bool online;
	if (size < 0)
		return xe_fail(c, "Failed to parse parameter 'disk-size': expecting a size such as 10GiB, got '%s'", sz);
	if (xe_bool_param(c, "online", false, &online))
		return -1;
	char *vdi = xe_ref_by_uuid(c, "VDI", xe_param(c, "uuid"));
	int rc = vdi ? xe_void_result(xe_rpc(c, online ? "VDI.resize_online" : "VDI.resize", "sI", vdi, (json_int_t)size)) : -1;
	free(vdi);
	return rc;
}

/* ---- networks ---- */

int xe_cmd_network_create(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	const char *d = xe_param(c, "name-description"), *mtu = xe_param(c, "MTU"), *br = xe_param(c, "bridge");
	bool managed;
	if (xe_bool_param(c, "managed", true, &managed))
		return -1;
	char *end = NULL;
	long long m = mtu ? strtoll(mtu, &end, 10) : 1500;
	if (mtu && (!*mtu || *end || m < 68 || m > 65535))
		return xe_fail(c, "Failed to parse parameter 'MTU': expecting an integer, got '%s'", mtu);
	json_t *args = json_pack("{s:s, s:s, s:I, s:{}, s:s, s:b, s:[]}", "name_label", xe_param(c, "name-label"),
				 "name_description", d ? d : "", "MTU", (json_int_t)m, "other_config", "bridge",
				 br ? br : "", "managed", managed, "tags");
	return print_new(c, "network", str_of(xe_rpc(c, "network.create", "o", args)));
}
