/*
 * domain_save.c - a domain's memory to and from a VDI: agent.vm_suspend,
 * agent.vm_resume and agent.vm_checkpoint (XAPI's VM.suspend, resume and
 * checkpoint, and the disk copies of a snapshot of a running VM).
 *
 * Each runs on a thread (longcall.c) since an image costs what the guest
 * holds. Paths and SRs are resolved on the loop first; a failure leaves
 * what was there: the guest running (unpaused again) or still suspended,
 * and no file the step made. The memory image is the backend's own:
 * sim_save.c's, or libxl's stream (xen_save.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "agent.h"
#include "backend_lock.h"
#include "log.h"
#include "sim_save.h"
#include "sr.h"
#include "util.h"
#include "xen_save.h"
#include "xerr.h"

static const char *arg_str(json_t *args, size_t i)
{
	const char *s = json_string_value(json_array_get(args, i));
	return s ? s : "";
}

/* How a backend saves a domain's memory. The sim copies a paused domain;
 * a Xen guest suspends itself, so it must run, and is left suspended. */
struct image_fmt {
	int (*if_save)(struct backend *be, int domid, const char *uuid, int fd, char *err, size_t errlen);
	int (*if_restore)(struct backend *be, const struct be_domain_config *cfg, int fd, int *domid, char *err,
			  size_t errlen);
	bool if_pause_first;
};

static const struct image_fmt sim_fmt = {sim_image_save, sim_image_restore, true};
static const struct image_fmt xen_fmt = {xen_image_save, xen_image_restore, false};

static const struct image_fmt *fmt_of(struct agent *ag)
{
	const char *name = backend_locked_inner(ag->ag_be)->be_ops->bo_name;
	return strcmp(name, "sim") == 0 ? &sim_fmt : strcmp(name, "xen") == 0 ? &xen_fmt : NULL;
}

static json_t *need_fmt(struct agent *ag)
{
	return fmt_of(ag) ? NULL
			  : xerr_newf(XE_INTERNAL_ERROR, "the %s backend cannot save a domain's memory",
				      backend_locked_inner(ag->ag_be)->be_ops->bo_name);
}

/* The domain of VM uuid, running or paused. */
static json_t *live_domain(struct agent *ag, const char *uuid, int *domid, bool *running)
{
	struct be_domain_info di;
	*domid = domid_of(ag, uuid, &di);
	if (*domid < 0 || (di.di_state != BE_STATE_RUNNING && di.di_state != BE_STATE_PAUSED))
		return xerr_newf(XE_INTERNAL_ERROR, "VM %s has no running domain on this host", uuid);
	*running = di.di_state == BE_STATE_RUNNING;
	return NULL;
}

/* An image VDI made in an SR on the loop: where its file is. */
struct image {
	struct agent_sr_ref im_sr;
	char im_vdi[48];
	char im_path[SR_LOCATION_MAX];
};

static json_t *image_make(struct agent *ag, const char *sr, const char *vdi, struct image *im)
{
	snprintf(im->im_vdi, sizeof im->im_vdi, "%s", vdi);
	json_t *e = agent_sr_ref(ag, sr, &im->im_sr);
	return e ? e : agent_vdi_make(&im->im_sr, vdi, 0, im->im_path);
}

/* Save domid (paused) into the image's file. */
static int image_write(struct agent *ag, int domid, const char *uuid, struct image *im, char *err, size_t errlen)
{
	int fd = open(im->im_path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%.900s: %s", im->im_path, strerror(errno));
		return -1;
	}
	int rc = fmt_of(ag)->if_save(ag->ag_be, domid, uuid, fd, err, errlen);
	close(fd);
	return rc;
}

static void stamp_after(struct agent *ag, void *arg, json_t *err, json_t **result)
{
	(void)arg;
	if (!err)
		*result = agent_stamp(ag, *result ? *result : json_object());
}

/* ------------------------------------------------------------ suspend */

struct suspend_job {
	char sj_uuid[48];
	int sj_domid;
	bool sj_running;
	struct image sj_im;
};

static json_t *suspend_work(struct agent *ag, void *arg, json_t **result)
{
	struct suspend_job *j = arg;
	struct backend *be = ag->ag_be;
	char err[1024] = "";
	bool pause = j->sj_running && fmt_of(ag)->if_pause_first;
	if (pause && be->be_ops->bo_domain_pause(be, j->sj_domid) < 0) {
		snprintf(err, sizeof err, "cannot pause: %s", backend_error(be));
	} else if (image_write(ag, j->sj_domid, j->sj_uuid, &j->sj_im, err, sizeof err) == 0) {
		if (be->be_ops->bo_domain_destroy(be, j->sj_domid) == 0) {
			log_info("VM %s suspended to VDI %s (%s)", j->sj_uuid, j->sj_im.im_vdi, j->sj_im.im_path);
			*result = agent_vdi_info(&j->sj_im.im_sr, j->sj_im.im_vdi, j->sj_im.im_path);
			return NULL;
		}
		snprintf(err, sizeof err, "cannot destroy the saved domain: %s", backend_error(be));
	}
	/* the guest goes on as if nothing happened (a failed Xen save resumed it) */
	agent_vdi_unmake(&j->sj_im.im_sr, j->sj_im.im_vdi);
	if (pause)
		be->be_ops->bo_domain_unpause(be, j->sj_domid);
	log_warn("VM %s: suspend failed: %s", j->sj_uuid, err);
	return xerr_newf(XE_INTERNAL_ERROR, "suspend of VM %s failed: %s", j->sj_uuid, err);
}

/* agent.vm_suspend(vm, sr, vdi): the guest's memory into a new VDI, the
 * domain destroyed. */
json_t *agent_vm_suspend_start(struct agent *ag, struct evhttp_request *req, json_t *args, json_t *id, bool v2)
{
	struct suspend_job *j = xcalloc(1, sizeof *j);
	snprintf(j->sj_uuid, sizeof j->sj_uuid, "%s", arg_str(args, 0));
	json_t *e = need_fmt(ag);
	if (!e)
		e = live_domain(ag, j->sj_uuid, &j->sj_domid, &j->sj_running);
	if (!e)
		e = image_make(ag, arg_str(args, 1), arg_str(args, 2), &j->sj_im);
	if (e) {
		free(j);
		return e;
	}
	return agent_long_call(ag, req, id, v2, suspend_work, stamp_after, j, free);
}

/* ------------------------------------------------------------- resume */

struct resume_job {
	struct be_domain_config rj_cfg;
	struct agent_sr_ref rj_sr;
	char rj_vdi[48];
	char rj_path[512];
	int rj_domid;
};

static json_t *resume_work(struct agent *ag, void *arg, json_t **result)
{
	struct resume_job *j = arg;
	struct backend *be = ag->ag_be;
	char err[1024] = "";
	int fd = open(j->rj_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		snprintf(err, sizeof err, "%s: %s", j->rj_path, strerror(errno));
	else if (fmt_of(ag)->if_restore(be, &j->rj_cfg, fd, &j->rj_domid, err, sizeof err) == 0 &&
		 !j->rj_cfg.dc_start_paused && be->be_ops->bo_domain_unpause(be, j->rj_domid) < 0) {
		snprintf(err, sizeof err, "cannot unpause: %s", backend_error(be));
		be->be_ops->bo_domain_destroy(be, j->rj_domid);
		j->rj_domid = -1;
	}
	if (fd >= 0)
		close(fd);
	if (j->rj_domid < 0) {
		log_warn("VM %s: resume failed (it stays suspended): %s", j->rj_cfg.dc_uuid, err);
		return xerr_newf(XE_INTERNAL_ERROR, "resume of VM %s failed: %s", j->rj_cfg.dc_uuid, err);
	}
	/* the image is used up, as XAPI destroys the suspend VDI */
	agent_vdi_unmake(&j->rj_sr, j->rj_vdi);
	log_info("VM %s resumed as domain %d from VDI %s", j->rj_cfg.dc_uuid, j->rj_domid, j->rj_vdi);
	*result = json_pack("{s:i}", "domid", j->rj_domid);
	return NULL;
}

static void resume_after(struct agent *ag, void *arg, json_t *err, json_t **result)
{
	struct resume_job *j = arg;
	if (err)
		return;
	agent_beat_watch(ag, j->rj_domid);
	json_t *sp = agent_vdi_info(&j->rj_sr, j->rj_vdi, "");
	json_object_set(*result, "sr", json_object_get(sp, "sr"));
	json_decref(sp);
	*result = agent_stamp(ag, *result);
}

/* agent.vm_resume(config, sr, vdi): a domain from the image, running
 * (unless the config says paused); the image is removed. */
json_t *agent_vm_resume_start(struct agent *ag, struct evhttp_request *req, json_t *args, json_t *id, bool v2)
{
	struct resume_job *j = xcalloc(1, sizeof *j);
	j->rj_domid = -1;
	snprintf(j->rj_vdi, sizeof j->rj_vdi, "%s", arg_str(args, 2));
	struct be_disk img = {0};
	snprintf(img.bd_sr_uuid, sizeof img.bd_sr_uuid, "%s", arg_str(args, 1));
	snprintf(img.bd_vdi_uuid, sizeof img.bd_vdi_uuid, "%s", arg_str(args, 2));
	json_t *e = need_fmt(ag);
	if (!e)
		e = agent_domain_config(ag, json_array_get(args, 0), &j->rj_cfg);
	if (!e)
		e = agent_sr_ref(ag, img.bd_sr_uuid, &j->rj_sr);
	if (!e)
		e = agent_disk_locate(ag, &img);
	struct be_domain_info old;
	int olddom = e ? -1 : domid_of(ag, j->rj_cfg.dc_uuid, &old);
	if (olddom >= 0 && (old.di_state == BE_STATE_RUNNING || old.di_state == BE_STATE_PAUSED))
		e = xerr_newf(XE_OPERATION_NOT_ALLOWED, "VM %s already has a domain on this host", j->rj_cfg.dc_uuid);
	else if (olddom >= 0 && ag->ag_be->be_ops->bo_domain_destroy(ag->ag_be, olddom) < 0)
		e = xerr_newf(XE_INTERNAL_ERROR, "cannot clear the old domain of %s: %s", j->rj_cfg.dc_uuid,
			      backend_error(ag->ag_be));
	if (e) {
		free(j);
		return e;
	}
	snprintf(j->rj_path, sizeof j->rj_path, "%s", img.bd_path);
	return agent_long_call(ag, req, id, v2, resume_work, resume_after, j, free);
}

/* --------------------------------------------------------- checkpoint */

#define CK_MAX_DISKS BE_MAX_DISKS

struct ck_disk {
	struct agent_sr_ref cd_sr;
	char cd_vdi[48], cd_new[48];
	bool cd_made;
	char cd_path[SR_LOCATION_MAX];
};

struct ck_job {
	char ck_uuid[48];
	int ck_domid;
	bool ck_running, ck_has_image;
	bool ck_paused;	   /* paused here for the copies */
	bool ck_suspended; /* a Xen guest suspended by its image (xen_save.h) */
	struct image ck_im;
	struct ck_disk ck_disks[CK_MAX_DISKS];
	int ck_ndisks;
};

/* Undo a checkpoint half made: the files it wrote go. */
static void ck_undo(struct ck_job *j)
{
	if (j->ck_has_image)
		agent_vdi_unmake(&j->ck_im.im_sr, j->ck_im.im_vdi);
	for (int i = 0; i < j->ck_ndisks; i++)
		if (j->ck_disks[i].cd_made)
			agent_vdi_unmake(&j->ck_disks[i].cd_sr, j->ck_disks[i].cd_new);
}

/* While the guest is paused: its memory, then each disk as it is now. */
static json_t *ck_copy(struct agent *ag, struct ck_job *j)
{
	char err[1024] = "";
	if (j->ck_has_image && image_write(ag, j->ck_domid, j->ck_uuid, &j->ck_im, err, sizeof err) < 0) {
		log_warn("VM %s: checkpoint's memory image failed: %s", j->ck_uuid, err);
		return xerr_new(XE_VM_CHECKPOINT_SUSPEND_FAILED, j->ck_uuid, NULL);
	}
	j->ck_suspended = j->ck_has_image && !fmt_of(ag)->if_pause_first;
	for (int i = 0; i < j->ck_ndisks; i++) {
		struct ck_disk *d = &j->ck_disks[i];
		if (d->cd_sr.sf_drv->sd_vdi_snapshot(d->cd_sr.sf_sr, d->cd_vdi, d->cd_new, d->cd_path, err, sizeof err) < 0)
			return xerr_new(XE_SR_BACKEND_FAILURE, "vdi_snapshot", err, NULL);
		d->cd_made = true;
	}
	return NULL;
}

/* The guest as it was before the copies: running, or paused. */
static int ck_settle(struct backend *be, struct ck_job *j)
{
	if ((j->ck_paused || j->ck_suspended) && be->be_ops->bo_domain_unpause(be, j->ck_domid) < 0)
		return -1;
	if (j->ck_suspended && !j->ck_running)
		return be->be_ops->bo_domain_pause(be, j->ck_domid);
	return 0;
}

static json_t *ck_work(struct agent *ag, void *arg, json_t **result)
{
	struct ck_job *j = arg;
	struct backend *be = ag->ag_be;
	/* a Xen guest's own suspend stops it for the copies */
	j->ck_paused = j->ck_running && !(j->ck_has_image && !fmt_of(ag)->if_pause_first);
	if (j->ck_paused && be->be_ops->bo_domain_pause(be, j->ck_domid) < 0) {
		json_t *e = xerr_newf(XE_INTERNAL_ERROR, "cannot pause VM %s: %s", j->ck_uuid, backend_error(be));
		ck_undo(j);
		return e;
	}
	json_t *e = ck_copy(ag, j);
	if (ck_settle(be, j) < 0 && !e) {
		log_warn("VM %s: cannot run on after its checkpoint: %s", j->ck_uuid, backend_error(be));
		e = xerr_new(XE_VM_CHECKPOINT_RESUME_FAILED, j->ck_uuid, NULL);
	}
	if (e) {
		ck_undo(j);
		return e;
	}
	json_t *disks = json_array();
	for (int i = 0; i < j->ck_ndisks; i++)
		json_array_append_new(disks, agent_vdi_info(&j->ck_disks[i].cd_sr, j->ck_disks[i].cd_new,
							    j->ck_disks[i].cd_path));
	*result = json_pack("{s:o, s:o}", "image",
			    j->ck_has_image ? agent_vdi_info(&j->ck_im.im_sr, j->ck_im.im_vdi, j->ck_im.im_path)
					    : json_null(),
			    "disks", disks);
	log_info("VM %s: checkpoint taken (%s, %d disks)", j->ck_uuid, j->ck_has_image ? "memory" : "no memory",
		 j->ck_ndisks);
	return NULL;
}

/* The disks to copy: [{sr, vdi, new_vdi}], each in an SR plugged here. */
static json_t *ck_disks(struct agent *ag, json_t *list, struct ck_job *j)
{
	size_t i;
	json_t *d;
	if (json_array_size(list) > CK_MAX_DISKS)
		return xerr_new(XE_INVALID_VALUE, "disks", "too many", NULL);
	json_array_foreach(list, i, d) {
		struct ck_disk *c = &j->ck_disks[j->ck_ndisks];
		const char *vdi = json_string_value(json_object_get(d, "vdi"));
		const char *nv = json_string_value(json_object_get(d, "new_vdi"));
		const char *sr = json_string_value(json_object_get(d, "sr"));
		if (!vdi || !nv || !sr)
			return xerr_new(XE_INVALID_VALUE, "disks", "each needs sr, vdi and new_vdi", NULL);
		json_t *e = agent_sr_ref(ag, sr, &c->cd_sr);
		if (e)
			return e;
		snprintf(c->cd_vdi, sizeof c->cd_vdi, "%s", vdi);
		snprintf(c->cd_new, sizeof c->cd_new, "%s", nv);
		j->ck_ndisks++;
	}
	return NULL;
}

/* agent.vm_checkpoint(vm, {image: {sr, vdi}?, disks: [{sr, vdi, new_vdi}]}):
 * with the guest paused, its memory (when asked) and its disks as they
 * are at that instant; then it runs on. */
json_t *agent_vm_checkpoint_start(struct agent *ag, struct evhttp_request *req, json_t *args, json_t *id, bool v2)
{
	struct ck_job *j = xcalloc(1, sizeof *j);
	json_t *opts = json_array_get(args, 1), *img = json_object_get(opts, "image");
	snprintf(j->ck_uuid, sizeof j->ck_uuid, "%s", arg_str(args, 0));
	json_t *e = live_domain(ag, j->ck_uuid, &j->ck_domid, &j->ck_running);
	if (!e)
		e = ck_disks(ag, json_object_get(opts, "disks"), j);
	if (!e && json_is_object(img) && !(e = need_fmt(ag))) {
		const char *sr = json_string_value(json_object_get(img, "sr")),
			   *vdi = json_string_value(json_object_get(img, "vdi"));
		e = sr && vdi ? image_make(ag, sr, vdi, &j->ck_im) : xerr_new(XE_INVALID_VALUE, "image", "", NULL);
		j->ck_has_image = !e;
	}
	if (e) {
		free(j);
		return e;
	}
	return agent_long_call(ag, req, id, v2, ck_work, stamp_after, j, free);
}
