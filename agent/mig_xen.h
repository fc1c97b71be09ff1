/*
 * mig_xen.h - live migration for the xen backend: libxl's own stream
 * (libxl_domain_suspend -> libxl_domain_create_restore, as `xl migrate`)
 * carried in our TLS connection, zstd-compressed when asked.
 *
 * Same signatures, return codes and ownership rules as mig_send /
 * mig_receive (mig.h): HELLO (version), TOKEN, CONFIG, ACCEPT, then
 * XEN_REC_STREAM records (xen_stream.h) instead of PAGES/ROUND_END/VCPU/
 * CHECKSUM, then READY / GO / RUNNING. The decisions on failure come from
 * the ownership state machine (mig_owner.h): before GO the source resumes
 * (libxl_domain_resume) and the destination domain is destroyed; after GO
 * the source stays suspended (reported paused) until the pool decides,
 * and the destination unpauses regardless.
 *
 * be is the xen backend itself (not the locking wrapper); lk is the
 * agent's lock for it, held around every backend call made here but not
 * around libxl's long stream calls (libxl's ctx is thread-safe).
 * Differences from the sim stream: libxl decides its own pre-copy rounds
 * (mig_opts' stop rule, throttle and bandwidth do not apply); verify is
 * refused (libxl's stream carries no page checksums); downtime_ms is a
 * lower bound (end of libxl's stream -> RUNNING: libxl's own final round
 * is not seen from outside). Builds without Xen get stubs that fail.
 */
#ifndef MIG_XEN_H
#define MIG_XEN_H

#include "mig.h"

int mig_xen_send(struct mig_io *io, struct backend *be, const struct mig_backend_lock *lk, int domid,
		 const struct be_domain_config *cfg, const char *token, const struct mig_opts *opts,
		 mig_progress_fn progress, void *progress_arg, struct mig_send_result *res, char *err,
		 size_t errlen);

int mig_xen_receive(struct mig_io *io, struct backend *be, const struct mig_backend_lock *lk,
		    const struct mig_recv_opts *opts, struct mig_recv_result *res, char *err, size_t errlen);

#endif
