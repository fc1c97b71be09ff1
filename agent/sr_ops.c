/*
 * sr_ops.c - the storage repositories this host has plugged.
 *
 * poold plugs a PBD by asking the host's agent to attach the SR (the file
 * driver: its directory); VDIs are then created, resized, copied and
 * destroyed by an agent that has the SR attached. The attached set is kept
 * in state-dir/srs.json so a restarted agent re-attaches what it had.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include "agent.h"
#include "log.h"
#include "sr.h"
#include "util.h"
#include "xerr.h"

struct agent_sr {
	char as_uuid[48];
	char as_type[16];
	char as_path[1024];
	const struct sr_driver *as_drv;
	struct sr *as_sr;
};

static struct agent_sr *find(struct agent *ag, const char *uuid)
{
	for (int i = 0; i < ag->ag_nsrs; i++)
		if (strcmp(ag->ag_srs[i].as_uuid, uuid) == 0)
			return &ag->ag_srs[i];
	return NULL;
}

static void save(struct agent *ag)
{
	json_t *all = json_array();
	for (int i = 0; i < ag->ag_nsrs; i++)
		json_array_append_new(all, json_pack("{s:s, s:s, s:s}", "uuid", ag->ag_srs[i].as_uuid, "type",
						     ag->ag_srs[i].as_type, "path", ag->ag_srs[i].as_path));
	char path[4200], tmp[4300];
	snprintf(path, sizeof path, "%s/srs.json", ag->ag_state);
	snprintf(tmp, sizeof tmp, "%s.new", path);
	if (json_dump_file(all, tmp, JSON_INDENT(2)) == 0)
		rename(tmp, path);
	json_decref(all);
}

static json_t *attach(struct agent *ag, const char *uuid, const char *type, const char *path, bool create)
{
	if (find(ag, uuid))
		return NULL; /* already: plugging twice is harmless */
	const struct sr_driver *drv = sr_driver_find(type);
	if (!drv)
		return xerr_new(XE_SR_UNKNOWN_DRIVER, type, NULL);
	if (ag->ag_nsrs >= AGENT_MAX_SRS)
		return xerr_newf(XE_INTERNAL_ERROR, "this host has %d SRs plugged: no room for more", AGENT_MAX_SRS);
	char err[1024] = "";
	struct sr *sr = drv->sd_attach(uuid, path, create, err, sizeof err);
	if (!sr)
		return xerr_new(XE_SR_BACKEND_FAILURE, "attach", err, NULL);
	struct agent_sr *a = &ag->ag_srs[ag->ag_nsrs++];
	snprintf(a->as_uuid, sizeof a->as_uuid, "%s", uuid);
	snprintf(a->as_type, sizeof a->as_type, "%s", type);
	snprintf(a->as_path, sizeof a->as_path, "%s", path);
	a->as_drv = drv;
	a->as_sr = sr;
	return NULL;
}

void agent_srs_load(struct agent *ag)
{
	if (!ag->ag_srs)
		ag->ag_srs = calloc(AGENT_MAX_SRS, sizeof *ag->ag_srs);
	char path[4200];
	snprintf(path, sizeof path, "%s/srs.json", ag->ag_state);
	json_t *all = json_load_file(path, 0, NULL);
	size_t i;
	json_t *s;
	json_array_foreach(all, i, s) {
		const char *uuid = json_string_value(json_object_get(s, "uuid"));
		json_t *e = attach(ag, uuid ? uuid : "", json_string_value(json_object_get(s, "type")) ?: "",
				   json_string_value(json_object_get(s, "path")) ?: "", false);
		if (e) {
			char *t = xerr_to_text(e);
			log_warn("SR %s: cannot re-attach: %s", uuid ? uuid : "?", t ? t : "?");
			free(t);
			json_decref(e);
		}
	}
	json_decref(all);
}

void agent_srs_free(struct agent *ag)
{
	for (int i = 0; i < ag->ag_nsrs; i++)
		ag->ag_srs[i].as_drv->sd_detach(ag->ag_srs[i].as_sr);
	ag->ag_nsrs = 0;
	free(ag->ag_srs);
	ag->ag_srs = NULL;
}

static json_t *space_of(struct agent_sr *a)
{
	struct sr_space sp;
	char err[512] = "";
	if (a->as_drv->sd_space(a->as_sr, &sp, err, sizeof err) < 0)
		return NULL;
	return json_pack("{s:s, s:I, s:I, s:I, s:I}", "uuid", a->as_uuid, "physical_size",
			 (json_int_t)sp.ss_physical_size, "physical_utilisation", (json_int_t)sp.ss_physical_utilisation,
			 "free", (json_int_t)sp.ss_free, "virtual_allocation", (json_int_t)sp.ss_virtual_allocation);
}

json_t *agent_srs_report(struct agent *ag)
{
	json_t *out = json_array();
	for (int i = 0; i < ag->ag_nsrs; i++) {
		json_t *s = space_of(&ag->ag_srs[i]);
		if (s)
			json_array_append_new(out, s);
	}
	return out;
}

static const char *arg_str(json_t *args, size_t i)
{
	const char *s = json_string_value(json_array_get(args, i));
	return s ? s : "";
}

/* agent.sr_attach(sr_uuid, type, path) -> space */
json_t *agent_m_sr_attach(struct agent *ag, json_t *args, json_t **result)
{
	json_t *e = attach(ag, arg_str(args, 0), arg_str(args, 1), arg_str(args, 2), true);
	if (e)
		return e;
	save(ag);
	*result = space_of(find(ag, arg_str(args, 0)));
	if (!*result)
		*result = json_object();
	log_info("SR %s attached (%s)", arg_str(args, 0), arg_str(args, 2));
	return NULL;
}

/* agent.sr_detach(sr_uuid) */
json_t *agent_m_sr_detach(struct agent *ag, json_t *args, json_t **result)
{
	struct agent_sr *a = find(ag, arg_str(args, 0));
	if (a) {
		a->as_drv->sd_detach(a->as_sr);
		*a = ag->ag_srs[--ag->ag_nsrs];
		save(ag);
		log_info("SR %s detached", arg_str(args, 0));
	}
	*result = json_string("");
	return NULL;
}

/* agent.sr_destroy(sr_uuid, type, path): remove the SR's (empty)
 * directory. poold asks only once every PBD is unplugged; an SR still
 * attached here (a lost unplug) is let go first. */
json_t *agent_m_sr_destroy(struct agent *ag, json_t *args, json_t **result)
{
	struct agent_sr *a = find(ag, arg_str(args, 0));
	if (a) {
		a->as_drv->sd_detach(a->as_sr);
		*a = ag->ag_srs[--ag->ag_nsrs];
		save(ag);
	}
	const struct sr_driver *drv = sr_driver_find(arg_str(args, 1));
	if (!drv)
		return xerr_new(XE_SR_UNKNOWN_DRIVER, arg_str(args, 1), NULL);
	char err[1024] = "", path[SR_LOCATION_MAX];
	struct sr *sr = drv->sd_attach(arg_str(args, 0), arg_str(args, 2), false, err, sizeof err);
	if (!sr)
		return xerr_new(XE_SR_BACKEND_FAILURE, "sr_destroy", err, NULL);
	snprintf(path, sizeof path, "%s", arg_str(args, 2));
	drv->sd_detach(sr);
	if (rmdir(path) < 0 && errno != ENOENT)
		return xerr_new(XE_SR_BACKEND_FAILURE, "sr_destroy", strerror(errno), NULL);
	log_info("SR %s destroyed (%s removed)", arg_str(args, 0), path);
	*result = json_string("");
	return NULL;
}

json_t *agent_disk_locate(struct agent *ag, struct be_disk *d)
{
	struct agent_sr *a = find(ag, d->bd_sr_uuid);
	char loc[SR_LOCATION_MAX], err[1024] = "";
	if (!a)
		return xerr_new(XE_SR_HAS_NO_PBDS, d->bd_sr_uuid, NULL);
	if (a->as_drv->sd_vdi_locate(a->as_sr, d->bd_vdi_uuid, loc, err, sizeof err) < 0)
		return xerr_new(XE_SR_BACKEND_FAILURE, "vdi_locate", err, NULL);
	size_t n = strlen(loc);
	if (n >= sizeof d->bd_path)
		return xerr_new(XE_SR_BACKEND_FAILURE, "vdi_locate", "the VDI's path is too long", NULL);
	memcpy(d->bd_path, loc, n + 1);
	return NULL;
}

static json_t *need_sr(struct agent *ag, json_t *args, struct agent_sr **a)
{
	*a = find(ag, arg_str(args, 0));
	return *a ? NULL : xerr_new(XE_SR_HAS_NO_PBDS, arg_str(args, 0), NULL);
}

static json_t *vdi_answer(struct agent_sr *a, const char *vdi, const char *location, json_t **result)
{
	struct sr_vdi_stat st = {0};
	char err[512] = "";
	a->as_drv->sd_vdi_stat(a->as_sr, vdi, &st, err, sizeof err);
	json_t *sp = space_of(a);
	*result = json_pack("{s:s, s:I, s:I, s:o}", "location", location ? location : "", "virtual_size",
			    (json_int_t)st.vs_virtual_size, "physical_utilisation", (json_int_t)st.vs_physical_utilisation,
			    "sr", sp ? sp : json_object());
	return NULL;
}

/* agent.vdi_create(sr_uuid, vdi_uuid, size) -> {location, ...} */
json_t *agent_m_vdi_create(struct agent *ag, json_t *args, json_t **result)
{
	struct agent_sr *a;
	json_t *e = need_sr(ag, args, &a);
	if (e)
		return e;
	char loc[SR_LOCATION_MAX], err[1024] = "";
	json_int_t size = json_integer_value(json_array_get(args, 2));
	if (size < 0 || a->as_drv->sd_vdi_create(a->as_sr, arg_str(args, 1), (uint64_t)size, loc, err, sizeof err) < 0)
		return xerr_new(XE_SR_BACKEND_FAILURE, "vdi_create", err, NULL);
	return vdi_answer(a, arg_str(args, 1), loc, result);
}

/* agent.vdi_destroy(sr_uuid, vdi_uuid) */
json_t *agent_m_vdi_destroy(struct agent *ag, json_t *args, json_t **result)
{
	struct agent_sr *a;
	json_t *e = need_sr(ag, args, &a);
	if (e)
		return e;
	char err[1024] = "";
	if (a->as_drv->sd_vdi_destroy(a->as_sr, arg_str(args, 1), err, sizeof err) < 0)
		return xerr_new(XE_SR_BACKEND_FAILURE, "vdi_destroy", err, NULL);
	json_t *sp = space_of(a);
	*result = json_pack("{s:o}", "sr", sp ? sp : json_object());
	return NULL;
}

/* agent.vdi_copy(sr_uuid, src_uuid, dst_uuid, snapshot) -> {location, ...} */
json_t *agent_m_vdi_copy(struct agent *ag, json_t *args, json_t **result)
{
	struct agent_sr *a;
	json_t *e = need_sr(ag, args, &a);
	if (e)
		return e;
	char loc[SR_LOCATION_MAX], err[1024] = "";
	bool snap = json_is_true(json_array_get(args, 3));
	int rc = snap ? a->as_drv->sd_vdi_snapshot(a->as_sr, arg_str(args, 1), arg_str(args, 2), loc, err, sizeof err)
		      : a->as_drv->sd_vdi_clone(a->as_sr, arg_str(args, 1), arg_str(args, 2), loc, err, sizeof err);
	if (rc < 0)
		return xerr_new(XE_SR_BACKEND_FAILURE, snap ? "vdi_snapshot" : "vdi_clone", err, NULL);
	return vdi_answer(a, arg_str(args, 2), loc, result);
}

/* agent.vdi_resize(sr_uuid, vdi_uuid, size) */
json_t *agent_m_vdi_resize(struct agent *ag, json_t *args, json_t **result)
{
	struct agent_sr *a;
	json_t *e = need_sr(ag, args, &a);
	if (e)
		return e;
	char err[1024] = "";
	json_int_t size = json_integer_value(json_array_get(args, 2));
	if (size < 0 || a->as_drv->sd_vdi_resize(a->as_sr, arg_str(args, 1), (uint64_t)size, err, sizeof err) < 0)
		return xerr_new(XE_SR_BACKEND_FAILURE, "vdi_resize", err, NULL);
	return vdi_answer(a, arg_str(args, 1), NULL, result);
}

json_t *agent_sr_space(struct agent *ag, const char *sr_uuid)
{
	struct agent_sr *a = find(ag, sr_uuid);
	json_t *sp = a ? space_of(a) : NULL;
	return sp ? sp : json_object();
}

/* ---- for work on other threads: an SR held by its driver and handle ---- */

json_t *agent_sr_ref(struct agent *ag, const char *sr_uuid, struct agent_sr_ref *out)
{
	struct agent_sr *a = find(ag, sr_uuid);
	if (!a)
		return xerr_new(XE_SR_HAS_NO_PBDS, sr_uuid, NULL);
	snprintf(out->sf_uuid, sizeof out->sf_uuid, "%s", a->as_uuid);
	out->sf_drv = a->as_drv;
	out->sf_sr = a->as_sr;
	return NULL;
}

json_t *agent_vdi_info(const struct agent_sr_ref *r, const char *vdi, const char *location)
{
	struct agent_sr a = {.as_drv = r->sf_drv, .as_sr = r->sf_sr};
	snprintf(a.as_uuid, sizeof a.as_uuid, "%s", r->sf_uuid);
	json_t *out = NULL;
	vdi_answer(&a, vdi, location, &out);
	return out;
}

json_t *agent_vdi_make(const struct agent_sr_ref *r, const char *vdi, uint64_t size, char *loc)
{
	char err[1024] = "";
	if (r->sf_drv->sd_vdi_create(r->sf_sr, vdi, size, loc, err, sizeof err) < 0)
		return xerr_new(XE_SR_BACKEND_FAILURE, "vdi_create", err, NULL);
	return NULL;
}

void agent_vdi_unmake(const struct agent_sr_ref *r, const char *vdi)
{
	char err[1024] = "";
	if (r->sf_drv->sd_vdi_destroy(r->sf_sr, vdi, err, sizeof err) < 0)
		log_warn("SR %s: cannot remove VDI %s after a failed step: %s", r->sf_uuid, vdi, err);
}

struct copy_to {
	struct agent_sr_ref ct_src, ct_dst;
	char ct_vdi[48], ct_new[48];
};

/* A copy between SRs: a new VDI of the source's size, then its data
 * extents (holes stay holes); in the same SR, the driver's own clone. */
static json_t *copy_to_work(struct agent *ag, void *arg, json_t **result)
{
	(void)ag;
	struct copy_to *c = arg;
	char src[SR_LOCATION_MAX], dst[SR_LOCATION_MAX], err[1024] = "";
	struct sr_vdi_stat st = {0};
	if (c->ct_src.sf_sr == c->ct_dst.sf_sr) {
		if (c->ct_src.sf_drv->sd_vdi_clone(c->ct_src.sf_sr, c->ct_vdi, c->ct_new, dst, err, sizeof err) < 0)
			return xerr_new(XE_SR_BACKEND_FAILURE, "vdi_copy", err, NULL);
		*result = agent_vdi_info(&c->ct_dst, c->ct_new, dst);
		return NULL;
	}
	if (c->ct_src.sf_drv->sd_vdi_locate(c->ct_src.sf_sr, c->ct_vdi, src, err, sizeof err) < 0 ||
	    c->ct_src.sf_drv->sd_vdi_stat(c->ct_src.sf_sr, c->ct_vdi, &st, err, sizeof err) < 0)
		return xerr_new(XE_SR_BACKEND_FAILURE, "vdi_copy", err, NULL);
	json_t *e = agent_vdi_make(&c->ct_dst, c->ct_new, st.vs_virtual_size, dst);
	if (e)
		return e;
	int in = open(src, O_RDONLY | O_CLOEXEC), out = open(dst, O_WRONLY | O_CLOEXEC);
	int rc = in < 0 || out < 0 ? -1 : sr_copy_sparse(in, src, out, dst, st.vs_virtual_size, 0, err, sizeof err);
	if (in < 0 || out < 0)
		snprintf(err, sizeof err, "cannot open %.900s: %s", in < 0 ? src : dst, strerror(errno));
	if (rc == 0 && fsync(out) != 0) {
		snprintf(err, sizeof err, "%.900s: fsync: %s", dst, strerror(errno));
		rc = -1;
	}
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (rc < 0) {
		agent_vdi_unmake(&c->ct_dst, c->ct_new);
		return xerr_new(XE_SR_BACKEND_FAILURE, "vdi_copy", err, NULL);
	}
	*result = agent_vdi_info(&c->ct_dst, c->ct_new, dst);
	return NULL;
}

json_t *agent_vdi_copy_to_start(struct agent *ag, struct evhttp_request *req, json_t *args, json_t *id, bool v2)
{
	struct copy_to *c = xcalloc(1, sizeof *c);
	snprintf(c->ct_vdi, sizeof c->ct_vdi, "%s", arg_str(args, 1));
	snprintf(c->ct_new, sizeof c->ct_new, "%s", arg_str(args, 3));
	json_t *e = agent_sr_ref(ag, arg_str(args, 0), &c->ct_src);
	if (!e)
		e = agent_sr_ref(ag, arg_str(args, 2), &c->ct_dst);
	if (e) {
		free(c);
		return e;
	}
	return agent_long_call(ag, req, id, v2, copy_to_work, NULL, c, free);
}
