/*
 * xen_save.c - suspend images for the xen backend (see xen_save.h):
 * libxl_domain_suspend into the image's file, libxl_domain_create_restore
 * from it, as `xl save` and `xl restore` do.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxl.h>

#include "backend_lock.h"
#include "log.h"
#include "xen_backend.h"
#include "xen_save.h"

static void libxl_err(int rc, const char *what, char *err, size_t errlen)
{
	const char *name = libxl_error_to_string((libxl_error)rc);
	snprintf(err, errlen, "%s: %s", what, name ? name : "libxl error");
}

/* The domain's flags as Xen has them, with the backend's lock held. */
static int dom_info(struct backend *be, int domid, libxl_dominfo *d, char *err, size_t errlen)
{
	backend_locked_lock(be);
	struct backend *in = backend_locked_inner(be);
	libxl_dominfo_init(d);
	int rc = -1;
	if (domid <= 0 || !xen_owner_is_ours(in->be_priv, (uint32_t)domid))
		snprintf(err, errlen, "domain %d does not exist or is not this agent's", domid);
	else if (libxl_domain_info(backend_xen_ctx(in), d, (uint32_t)domid) != 0)
		snprintf(err, errlen, "domain %d does not exist", domid);
	else
		rc = 0;
	backend_locked_unlock(be);
	return rc;
}

static bool suspended(const libxl_dominfo *d)
{
	return d->shutdown && d->shutdown_reason == LIBXL_SHUTDOWN_REASON_SUSPEND;
}

/* After a failed save: the guest back as it was (running, or paused). */
static void save_undo(struct backend *be, int domid, bool was_paused)
{
	libxl_ctx *ctx = backend_xen_ctx(backend_locked_inner(be));
	libxl_dominfo d;
	char err[256];
	if (dom_info(be, domid, &d, err, sizeof err) != 0)
		return;
	int rc = 0;
	if (suspended(&d))
		rc = libxl_domain_resume(ctx, (uint32_t)domid, 1 /* cancel: the guest goes on */, NULL);
	if (rc == 0 && was_paused && !d.paused)
		rc = libxl_domain_pause(ctx, (uint32_t)domid, NULL);
	if (rc)
		log_error("domain %d: not resumed after its failed save (libxl error %d)", domid, rc);
	libxl_dominfo_dispose(&d);
}

/* The stream is written: its length into the header, marked complete. */
static int save_finish(int fd, struct xen_image_header *h, char *err, size_t errlen)
{
	struct stat st;
	if (fstat(fd, &st) != 0 || (uint64_t)st.st_size <= sizeof *h) {
		snprintf(err, errlen, "libxl wrote no stream into the image");
		return -1;
	}
	h->xi_stream_len = (uint64_t)st.st_size - sizeof *h;
	h->xi_complete = 1;
	if (pwrite(fd, h, sizeof *h, 0) != (ssize_t)sizeof *h || fsync(fd) != 0) {
		snprintf(err, errlen, "cannot complete the suspend image: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int xen_image_save(struct backend *be, int domid, const char *uuid, int fd, char *err, size_t errlen)
{
	libxl_ctx *ctx = backend_xen_ctx(backend_locked_inner(be));
	libxl_dominfo d;
	if (dom_info(be, domid, &d, err, errlen) != 0)
		return -1;
	bool was_paused = d.paused, was_suspended = suspended(&d);
	struct xen_image_header h;
	xen_image_header_init(&h, uuid, d.max_memkb * 1024, d.current_memkb * 1024);
	uint64_t target = 0;
	if (libxl_get_memory_target(ctx, (uint32_t)domid, &target) == 0)
		h.xi_target = target * 1024;
	libxl_dominfo_dispose(&d);
	if (was_suspended) { /* a migration's source: its state is not the guest's to give again */
		snprintf(err, errlen, "domain %d is suspended already", domid);
		return -1;
	}
	if (write(fd, &h, sizeof h) != (ssize_t)sizeof h) {
		snprintf(err, errlen, "cannot write the suspend image: %s", strerror(errno));
		return -1;
	}
	/* a paused guest cannot answer the suspend request */
	int rc = was_paused ? libxl_domain_unpause(ctx, (uint32_t)domid, NULL) : 0;
	if (rc)
		libxl_err(rc, "libxl_domain_unpause", err, errlen);
	else if ((rc = libxl_domain_suspend(ctx, (uint32_t)domid, fd, 0, NULL)) != 0)
		libxl_err(rc, "libxl_domain_suspend", err, errlen);
	if (rc == 0 && save_finish(fd, &h, err, errlen) == 0) {
		log_info("domain %d saved: %llu bytes of libxl stream", domid, (unsigned long long)h.xi_stream_len);
		return 0;
	}
	save_undo(be, domid, was_paused);
	return -1;
}

static int read_header(int fd, const char *uuid, struct xen_image_header *h, char *err, size_t errlen)
{
	struct stat st;
	errno = 0;
	if (fstat(fd, &st) != 0 || pread(fd, h, sizeof *h, 0) != (ssize_t)sizeof *h) {
		snprintf(err, errlen, "cannot read the suspend image: %s", errno ? strerror(errno) : "too short");
		return -1;
	}
	if (xen_image_header_check(h, (uint64_t)st.st_size, uuid, err, errlen) != 0)
		return -1;
	if (lseek(fd, (off_t)sizeof *h, SEEK_SET) < 0) {
		snprintf(err, errlen, "cannot read the suspend image: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* libxl's restore from fd (at the stream's start) into a new paused domain. */
static int restore_stream(libxl_ctx *ctx, libxl_domain_config *dc, int fd, uint32_t *d, char *err, size_t errlen)
{
	libxl_domain_restore_params params;
	libxl_domain_restore_params_init(&params);
	params.checkpointed_stream = LIBXL_CHECKPOINTED_STREAM_NONE;
	params.stream_version = 2;
	int rc = libxl_domain_create_restore(ctx, dc, d, fd, -1, &params, NULL, NULL);
	libxl_domain_restore_params_dispose(&params);
	if (rc) {
		libxl_err(rc, "libxl_domain_create_restore", err, errlen);
		if (*d != (uint32_t)INVALID_DOMID) /* half-built: do not leave it */
			(void)libxl_domain_destroy(ctx, *d, NULL);
		return -1;
	}
	return 0;
}

int xen_image_restore(struct backend *be, const struct be_domain_config *cfg, int fd, int *domid, char *err,
		      size_t errlen)
{
	struct backend *in = backend_locked_inner(be);
	struct xen_image_header h;
	libxl_domain_config dc;
	*domid = -1;
	if (read_header(fd, cfg->dc_uuid, &h, err, errlen) != 0)
		return -1;
	backend_locked_lock(be);
	int rc = backend_xen_domcfg(in, cfg, NULL, &dc);
	if (rc)
		snprintf(err, errlen, "%s", backend_error(in));
	backend_locked_unlock(be);
	uint32_t d = INVALID_DOMID;
	if (rc == 0)
		rc = restore_stream(backend_xen_ctx(in), &dc, fd, &d, err, errlen);
	libxl_domain_config_dispose(&dc);
	if (rc)
		return -1;
	*domid = (int)d;
	/* a guest that had given memory back holds as little again */
	if (h.xi_target && h.xi_target < cfg->dc_memory && be->be_ops->bo_set_memory_target(be, *domid, h.xi_target) != 0)
		log_warn("VM %s: restored domain %d keeps its full memory: %s", cfg->dc_uuid, *domid, backend_error(be));
	log_info("VM %s: domain %d restored from a %llu-byte stream (paused)", cfg->dc_uuid, *domid,
		 (unsigned long long)h.xi_stream_len);
	return 0;
}
