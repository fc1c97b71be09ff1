/*
 * xen_choose.c - which backend an agent runs (config key `backend`,
 * --backend), and the one clear line when Xen was asked for and is not
 * there. Always compiled: a build without libxen-dev still explains itself.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"

bool backend_xen_built(void)
{
#ifdef HAVE_XEN
	return true;
#else
	return false;
#endif
}

const char *backend_choose(const char *want, const char *privcmd, bool xen_built, char *err, size_t errlen)
{
	if (!want || strcmp(want, "sim") == 0)
		return "sim";
	bool present = privcmd && access(privcmd, F_OK) == 0;
	if (strcmp(want, "auto") == 0)
		return xen_built && present ? "xen" : "sim";
	if (strcmp(want, "xen") != 0) {
		snprintf(err, errlen, "backend '%s' is not known: use auto, xen or sim", want);
		return NULL;
	}
	if (!xen_built) {
		snprintf(err, errlen, "backend xen: this build has no Xen support (install libxen-dev and rebuild), "
				      "or use backend: sim");
		return NULL;
	}
	if (!present) {
		snprintf(err, errlen, "backend xen: %s not found: this host does not run Xen (install "
				      "xen-hypervisor-4.17-amd64 and boot into Xen), or use backend: sim",
			 privcmd ? privcmd : BACKEND_XEN_PRIVCMD);
		return NULL;
	}
	return "xen";
}

#ifndef HAVE_XEN
struct backend *backend_xen_new(const char *state_dir, const char *privcmd, char *err, size_t errlen)
{
	(void)state_dir;
	(void)privcmd;
	backend_choose("xen", NULL, false, err, errlen);
	return NULL;
}
#endif

#ifndef HAVE_XEN
#include "mig_xen.h"

int mig_xen_send(struct mig_io *io, struct backend *be, const struct mig_backend_lock *lk, int domid,
		 const struct be_domain_config *cfg, const char *token, const struct mig_opts *opts,
		 mig_progress_fn progress, void *progress_arg, struct mig_send_result *res, char *err,
		 size_t errlen)
{
	(void)io, (void)be, (void)lk, (void)domid, (void)cfg, (void)token, (void)opts, (void)progress,
		(void)progress_arg, (void)res;
	backend_choose("xen", NULL, false, err, errlen);
	return MIG_FAILED;
}

int mig_xen_receive(struct mig_io *io, struct backend *be, const struct mig_backend_lock *lk,
		    const struct mig_recv_opts *opts, struct mig_recv_result *res, char *err, size_t errlen)
{
	(void)io, (void)be, (void)lk, (void)opts, (void)res;
	backend_choose("xen", NULL, false, err, errlen);
	return MIG_FAILED;
}

#include "xen_save.h"

int xen_image_save(struct backend *be, int domid, const char *uuid, int fd, char *err, size_t errlen)
{
	(void)be, (void)domid, (void)uuid, (void)fd;
	backend_choose("xen", NULL, false, err, errlen);
	return -1;
}

int xen_image_restore(struct backend *be, const struct be_domain_config *cfg, int fd, int *domid, char *err,
		      size_t errlen)
{
	(void)be, (void)cfg, (void)fd;
	*domid = -1;
	backend_choose("xen", NULL, false, err, errlen);
	return -1;
}
#endif
