/*
 * backend_xen.c - the xen backend: struct backend_ops with libxl and
 * xenstore on a Xen 4.17 dom0 (Debian 12: xen-hypervisor-4.17-amd64,
 * xen-utils-4.17, libxen-dev to build).
 *
 * Domains are Xen's own: libxl_list_domain is the truth, nothing is kept
 * in memory, so a restarted agent finds its domains as they are. Domain
 * death is seen through the @releaseDomain xenstore watch (bo_watch_fd).
 * libxl forks helpers (save/restore, hotplug scripts); the agent has
 * children of its own, so SIGCHLD is libxl's with selective reaping
 * (libxl_sigchld_owner_libxl_always_selective_reap). Everything libxl,
 * libxc and xenstore log goes to the agent's log; a failed call becomes
 * one line in be_error. Nothing here prints or exits. Suspend images are
 * xen_save.c's, migration mig_xen.c's.
 *
 * Unit tests cover what runs without Xen (config conversion, cpuid masks,
 * the no-Xen start-up line); `make xen-check` runs the rest on a real Xen
 * 4.17 nested under QEMU (tests/xen).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libxl.h>
#include <libxl_utils.h>
#include <xenctrl.h>
#include <xenguest.h>
#include <xenstore.h>

#include "backend.h"
#include "log.h"
#include "util.h"
#include "xen_backend.h"
#include "xen_cfg.h"
#include "xen_log.h"

#define WATCH_TOKEN "pool-agent-release"
#define POLL_MS 50


/* Not copied by libxl: must outlive every ctx. */
static const libxl_childproc_hooks xen_child_hooks = {
	.chldowner = libxl_sigchld_owner_libxl_always_selective_reap,
};

static struct xen *X(struct backend *be)
{
	return be->be_priv;
}

/* 0 when domid is a guest this agent made, else -1 with be_error set. */
static int ours(struct backend *be, int domid)
{
	if (domid <= 0) {
		be_set_error(be, "domain %d is not a guest", domid);
		return -1;
	}
	if (!xen_owner_is_ours(X(be), (uint32_t)domid)) {
		be_set_error(be, "domain %d does not exist or is not this agent's", domid);
		return -1;
	}
	return 0;
}

static void fail(struct backend *be, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct backend *be, int rc, const char *fmt, ...)
{
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	backend_xen_fail(be, rc, what);
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* ---- domains ---- */

static enum be_state state_of(const libxl_dominfo *d)
{
	if (d->shutdown) {
		switch (d->shutdown_reason) {
		case LIBXL_SHUTDOWN_REASON_SUSPEND:
			return BE_STATE_PAUSED; /* suspended for a migration: resumable, not running */
		case LIBXL_SHUTDOWN_REASON_CRASH:
		case LIBXL_SHUTDOWN_REASON_WATCHDOG:
			return BE_STATE_CRASHED;
		default:
			return BE_STATE_SHUTDOWN;
		}
	}
	if (d->dying)
		return BE_STATE_SHUTDOWN;
	return d->paused ? BE_STATE_PAUSED : BE_STATE_RUNNING;
}

static void info_of(struct backend *be, const libxl_dominfo *d, struct be_domain_info *out)
{
	struct xen *x = X(be);
	memset(out, 0, sizeof *out);
	out->di_domid = (int)d->domid;
	snprintf(out->di_uuid, sizeof out->di_uuid, LIBXL_UUID_FMT, LIBXL_UUID_BYTES(d->uuid));
	char *name = libxl_domid_to_name(x->xn_ctx, d->domid);
	snprintf(out->di_name, sizeof out->di_name, "%s", name ? name : "");
	free(name);
	out->di_state = state_of(d);
	out->di_memory = d->current_memkb * 1024;
	uint64_t target = 0;
	out->di_memory_target = libxl_get_memory_target(x->xn_ctx, d->domid, &target) == 0 ? target * 1024
											    : out->di_memory;
	out->di_vcpus = (int)d->vcpu_online;
}

static int xen_domain_list(struct backend *be, struct be_domain_info **out, int *n)
{
	int nd = 0;
	libxl_dominfo *all = libxl_list_domain(X(be)->xn_ctx, &nd);
	*out = NULL;
	*n = 0;
	if (!all) {
		fail(be, ERROR_FAIL, "libxl_list_domain");
		return -1;
	}
	struct be_domain_info *v = xcalloc((size_t)nd + 1, sizeof *v);
	int k = 0;
	for (int i = 0; i < nd; i++) /* dom0 and others' domains are no VMs of ours */
		if (all[i].domid != 0 && xen_owner_is_ours(X(be), all[i].domid))
			info_of(be, &all[i], &v[k++]);
	libxl_dominfo_list_free(all, nd);
	*out = v;
	*n = k;
	return 0;
}

/* rc: 0, 1 = no such domain (be_error says so), -1 = libxl failed. */
static int dominfo(struct backend *be, int domid, libxl_dominfo *d)
{
	libxl_dominfo_init(d);
	if (ours(be, domid) != 0)
		return 1;
	int rc = libxl_domain_info(X(be)->xn_ctx, d, (uint32_t)domid);
	if (rc == ERROR_DOMAIN_NOTFOUND) {
		be_set_error(be, "domain %d does not exist", domid);
		return 1;
	}
	if (rc) {
		fail(be, rc, "libxl_domain_info %d", domid);
		return -1;
	}
	return 0;
}

static int xen_domain_info(struct backend *be, int domid, struct be_domain_info *out)
{
	libxl_dominfo d;
	if (dominfo(be, domid, &d) != 0)
		return -1;
	info_of(be, &d, out);
	libxl_dominfo_dispose(&d);
	return 0;
}

/* A source resumed after a migration that did not hand over gets its name
 * back (best effort: the name is cosmetic, the uuid is what counts). */
static void unmigrate_name(struct backend *be, int domid)
{
	char *name = libxl_domid_to_name(X(be)->xn_ctx, (uint32_t)domid);
	size_t n = name ? strlen(name) : 0, sl = strlen(XEN_MIGRATEDAWAY_SUFFIX);
	if (n > sl && strcmp(name + n - sl, XEN_MIGRATEDAWAY_SUFFIX) == 0) {
		name[n - sl] = 0;
		if (backend_xen_rename(be, domid, name, XEN_MIGRATEDAWAY_SUFFIX, "") != 0)
			log_warn("domain %d: %s", domid, backend_error(be));
	}
	free(name);
}

static int xen_domain_create(struct backend *be, const struct be_domain_config *cfg, int *domid)
{
	libxl_domain_config dc;
	if (backend_xen_domcfg(be, cfg, NULL, &dc) != 0) {
		libxl_domain_config_dispose(&dc);
		return -1;
	}
	uint32_t d = INVALID_DOMID;
	/* libxl leaves the new domain paused, as the interface wants */
	int rc = libxl_domain_create_new(X(be)->xn_ctx, &dc, &d, NULL, NULL);
	libxl_domain_config_dispose(&dc);
	if (rc) {
		fail(be, rc, "libxl_domain_create_new (VM %s)", cfg->dc_uuid);
		if (d != (uint32_t)INVALID_DOMID) /* half-built: do not leave it */
			(void)libxl_domain_destroy(X(be)->xn_ctx, d, NULL);
		return -1;
	}
	*domid = (int)d;
	log_info("VM %s: domain %d created (%s, paused)", cfg->dc_uuid, *domid, xen_guest_type(cfg));
	return 0;
}

static int xen_domain_unpause(struct backend *be, int domid)
{
	libxl_dominfo d;
	if (dominfo(be, domid, &d) != 0)
		return -1;
	bool suspended = d.shutdown && d.shutdown_reason == LIBXL_SHUTDOWN_REASON_SUSPEND;
	libxl_dominfo_dispose(&d);
	int rc;
	if (suspended) {
		/* a source left by a migration: it runs again with a cooperative resume */
		rc = libxl_domain_resume(X(be)->xn_ctx, (uint32_t)domid, 1, NULL);
		if (rc) {
			fail(be, rc, "libxl_domain_resume %d", domid);
			return -1;
		}
		unmigrate_name(be, domid);
		return 0;
	}
	rc = libxl_domain_unpause(X(be)->xn_ctx, (uint32_t)domid, NULL);
	if (rc) {
		fail(be, rc, "libxl_domain_unpause %d", domid);
		return -1;
	}
	return 0;
}

static int xen_domain_pause(struct backend *be, int domid)
{
	if (ours(be, domid) != 0)
		return -1;
	int rc = libxl_domain_pause(X(be)->xn_ctx, (uint32_t)domid, NULL);
	if (rc) {
		fail(be, rc, "libxl_domain_pause %d", domid);
		return -1;
	}
	return 0;
}

static int xen_domain_shutdown(struct backend *be, int domid, int timeout_ms)
{
	struct xen *x = X(be);
	if (ours(be, domid) != 0)
		return -1;
	int rc = libxl_domain_shutdown(x->xn_ctx, (uint32_t)domid, NULL);
	if (rc == ERROR_NOPARAVIRT) /* an HVM guest without PV drivers: press its power button */
		rc = libxl_send_trigger(x->xn_ctx, (uint32_t)domid, LIBXL_TRIGGER_POWER, 0, NULL);
	if (rc) {
		fail(be, rc, "libxl_domain_shutdown %d", domid);
		return -1;
	}
	/* wait for the guest to go down (or the domain to go) */
	uint64_t end = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	for (;;) {
		libxl_dominfo d;
		int r = dominfo(be, domid, &d);
		if (r == 1)
			return 0;
		if (r < 0)
			return -1;
		bool down = d.shutdown || d.dying;
		libxl_dominfo_dispose(&d);
		if (down) {
			log_info("domain %d shut down", domid);
			return 0;
		}
		if (now_ms() >= end) {
			be_set_error(be, "domain %d did not shut down within %d ms", domid, timeout_ms);
			return -1;
		}
		sleep_ms(POLL_MS);
	}
}

/* After a failed destroy: did another toolstack process (the `xl` that
 * restored a domain stays to watch it) destroy it meanwhile? */
static bool gone_anyway(struct backend *be, int domid)
{
	for (int i = 0; i < 3000 / POLL_MS; i++) {
		libxl_dominfo d;
		if (dominfo(be, domid, &d) == 1)
			return true;
		libxl_dominfo_dispose(&d);
		sleep_ms(POLL_MS);
	}
	return false;
}

static int xen_domain_destroy(struct backend *be, int domid)
{
	if (ours(be, domid) != 0)
		return -1;
	int rc = libxl_domain_destroy(X(be)->xn_ctx, (uint32_t)domid, NULL);
	if (rc) {
		char reason[sizeof be->be_error];
		fail(be, rc, "libxl_domain_destroy %d", domid);
		snprintf(reason, sizeof reason, "%s", be->be_error);
		if (!gone_anyway(be, domid)) {
			be_set_error(be, "%s", reason);
			return -1;
		}
		log_info("domain %d destroyed by another toolstack process (ours failed: %s)", domid, reason);
		return 0;
	}
	log_info("domain %d destroyed", domid);
	return 0;
}

static int xen_set_memory_target(struct backend *be, int domid, uint64_t bytes)
{
	if (ours(be, domid) != 0)
		return -1;
	int rc = libxl_set_memory_target(X(be)->xn_ctx, (uint32_t)domid, (int64_t)(bytes / 1024), 0 /* absolute */,
					 1 /* enforce */);
	if (rc) {
		fail(be, rc, "libxl_set_memory_target %d", domid);
		return -1;
	}
	return 0;
}

static int xen_set_vcpus(struct backend *be, int domid, int vcpus)
{
	libxl_dominfo d;
	if (dominfo(be, domid, &d) != 0)
		return -1;
	int max = (int)d.vcpu_max_id + 1;
	libxl_dominfo_dispose(&d);
	if (vcpus < 1 || vcpus > max) {
		be_set_error(be, "domain %d: %d vCPUs asked, it has 1..%d", domid, vcpus, max);
		return -1;
	}
	libxl_bitmap map;
	int rc = libxl_cpu_bitmap_alloc(X(be)->xn_ctx, &map, max);
	if (rc) {
		fail(be, rc, "libxl_cpu_bitmap_alloc");
		return -1;
	}
	for (int i = 0; i < vcpus; i++)
		libxl_bitmap_set(&map, i);
	rc = libxl_set_vcpuonline(X(be)->xn_ctx, (uint32_t)domid, &map, NULL);
	libxl_bitmap_dispose(&map);
	if (rc) {
		fail(be, rc, "libxl_set_vcpuonline %d", domid);
		return -1;
	}
	return 0;
}

static int xen_disk_add(struct backend *be, int domid, const struct be_disk *disk)
{
	libxl_device_disk d;
	char err[300];
	if (ours(be, domid) != 0)
		return -1;
	if (xen_domcfg_disk(disk, &d, err, sizeof err) != 0) {
		be_set_error(be, "%s", err);
		libxl_device_disk_dispose(&d);
		return -1;
	}
	int rc = libxl_device_disk_add(X(be)->xn_ctx, (uint32_t)domid, &d, NULL);
	libxl_device_disk_dispose(&d);
	if (rc) {
		fail(be, rc, "libxl_device_disk_add %d %s", domid, disk->bd_device);
		return -1;
	}
	return 0;
}

static int xen_disk_remove(struct backend *be, int domid, const char *device)
{
	char vdev[16];
	if (xen_vdev(device, vdev, sizeof vdev) != 0) {
		be_set_error(be, "disk device '%s' is not valid", device ? device : "");
		return -1;
	}
	if (ours(be, domid) != 0)
		return -1;
	libxl_device_disk d;
	libxl_device_disk_init(&d);
	int rc = libxl_vdev_to_device_disk(X(be)->xn_ctx, (uint32_t)domid, vdev, &d);
	if (rc) {
		fail(be, rc, "domain %d has no disk %s", domid, vdev);
		libxl_device_disk_dispose(&d);
		return -1;
	}
	rc = libxl_device_disk_remove(X(be)->xn_ctx, (uint32_t)domid, &d, NULL);
	libxl_device_disk_dispose(&d);
	if (rc) {
		fail(be, rc, "libxl_device_disk_remove %d %s", domid, vdev);
		return -1;
	}
	return 0;
}

static int xen_domain_create_restore_unsupported(struct backend *be, const struct be_domain_config *cfg,
						 int *domid)
{
	(void)cfg;
	(void)domid;
	be_set_error(be, "the xen backend restores domains from libxl's stream only (mig_xen_receive)");
	return -1;
}

/* ---- the @releaseDomain watch ---- */

static int xen_watch_fd(struct backend *be)
{
	struct xen *x = X(be);
	return x->xn_watching ? xs_fileno(x->xn_xsh) : -1;
}

static int xen_watch_drain(struct backend *be)
{
	struct xen *x = X(be);
	int n = 0;
	char **w;
	while (x->xn_watching && (w = xs_check_watch(x->xn_xsh)) != NULL) {
		free(w);
		n++;
	}
	if (n)
		log_debug("backend xen: @releaseDomain fired (%d): a domain may have ended", n);
	return n;
}

static void xen_free(struct backend *be)
{
	struct xen *x = X(be);
	if (x) {
		if (x->xn_watching)
			xs_unwatch(x->xn_xsh, "@releaseDomain", WATCH_TOKEN);
		if (x->xn_xsh)
			xs_close(x->xn_xsh);
		if (x->xn_xch)
			xc_interface_close(x->xn_xch);
		libxl_ctx_free(x->xn_ctx);
		xtl_logger_destroy(x->xn_log);
		free(x);
	}
	free(be);
}

static const struct backend_ops xen_ops = {
	.bo_name = "xen",
	.bo_host_info = xen_host_info,
	.bo_domain_create = xen_domain_create,
	.bo_domain_create_restore = xen_domain_create_restore_unsupported,
	.bo_domain_unpause = xen_domain_unpause,
	.bo_domain_pause = xen_domain_pause,
	.bo_domain_shutdown = xen_domain_shutdown,
	.bo_domain_destroy = xen_domain_destroy,
	.bo_domain_list = xen_domain_list,
	.bo_domain_info = xen_domain_info,
	.bo_set_memory_target = xen_set_memory_target,
	.bo_set_vcpus = xen_set_vcpus,
	.bo_disk_add = xen_disk_add,
	.bo_disk_remove = xen_disk_remove,
	.bo_free = xen_free,
	.bo_watch_fd = xen_watch_fd,
	.bo_watch_drain = xen_watch_drain,
};

static void startup_fail(struct xen *x, char *err, size_t errlen, const char *what)
{
	char last[400] = "";
	if (x->xn_log)
		xen_logger_take_last(x->xn_log, last, sizeof last);
	snprintf(err, errlen, "backend xen: %s%s%s%s: is the Xen toolstack running (systemctl start xen; "
			      "xenstored and /dev/xen/* need root)? or use backend: sim",
		 what, last[0] ? " (" : "", last, last[0] ? ")" : "");
}

struct backend *backend_xen_new(const char *state_dir, const char *privcmd, char *err, size_t errlen)
{
	if (!backend_choose("xen", privcmd ? privcmd : BACKEND_XEN_PRIVCMD, true, err, errlen))
		return NULL;
	struct backend *be = xcalloc(1, sizeof *be);
	struct xen *x = xcalloc(1, sizeof *x);
	be->be_ops = &xen_ops;
	be->be_priv = x;
	snprintf(x->xn_dir, sizeof x->xn_dir, "%s", state_dir && *state_dir ? state_dir : ".");
	if (mkdir(x->xn_dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "backend xen: %s: %s", x->xn_dir, strerror(errno));
		xen_free(be);
		return NULL;
	}
	x->xn_log = xen_logger_new();
	/* probing: what fails here makes one line, not libxl's stack of errors */
	xen_logger_set_quiet(x->xn_log, true);
	if (libxl_ctx_alloc(&x->xn_ctx, LIBXL_VERSION, 0, x->xn_log) != 0) {
		x->xn_ctx = NULL;
		startup_fail(x, err, errlen, "libxl cannot open the hypervisor");
		xen_free(be);
		return NULL;
	}
	libxl_childproc_setmode(x->xn_ctx, &xen_child_hooks, NULL);
	x->xn_xch = xc_interface_open(x->xn_log, x->xn_log, 0);
	if (!x->xn_xch) {
		startup_fail(x, err, errlen, "xc_interface_open failed");
		xen_free(be);
		return NULL;
	}
	x->xn_xsh = xs_open(0);
	if (!x->xn_xsh) {
		char what[128];
		snprintf(what, sizeof what, "cannot reach xenstored (%s)", strerror(errno));
		startup_fail(x, err, errlen, what);
		xen_free(be);
		return NULL;
	}
	if (xen_owner_load(x, err, errlen) != 0) { /* after the probing: no file on a host without Xen */
		xen_free(be);
		return NULL;
	}
	x->xn_watching = xs_watch(x->xn_xsh, "@releaseDomain", WATCH_TOKEN);
	if (!x->xn_watching)
		log_warn("backend xen: no @releaseDomain watch (%s): domain deaths are seen at the next heartbeat",
			 strerror(errno));
	xen_logger_set_quiet(x->xn_log, false);
	xen_watch_drain(be); /* xenstore fires a new watch once at once */
	log_info("backend xen: libxl ready (state in %s)", x->xn_dir);
	return be;
}
