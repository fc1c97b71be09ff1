/*
 * xen_backend.h - the xen backend's own header: what its files share
 * (backend_xen.c: the backend_ops; xen_util.c: libxl errors, feature sets,
 * kept configs, renames; xen_host.c: the host and what it can
 * run; xen_owner.c: which domains are this agent's) and what mig_xen.c
 * needs beyond struct backend_ops: the libxl ctx (thread-safe; libxl's
 * migration calls run on it without the agent's backend lock), the
 * bookkeeping a domain created by a restore gets, and the renames around
 * a migration's hand-over.
 */
#ifndef XEN_BACKEND_H
#define XEN_BACKEND_H

#include <limits.h>
#include <stdbool.h>
#include <libxl.h>

#include "backend.h"

/* The xenstore key (under /local/domain/<domid>/) naming the agent that
 * made a domain; the guest can read it, not write it. */
#define XEN_OWNER_KEY "pool-agent-owner"
#define XEN_OWNER_LEN 33 /* 32 hex digits */
/* A migration's source domain is renamed so before GO (as xl does), which
 * frees the name for the destination's "<name>--incoming". */
#define XEN_MIGRATEDAWAY_SUFFIX "--migratedaway"

struct xen {
	libxl_ctx *xn_ctx;
	xentoollog_logger *xn_log;
	struct xc_interface_core *xn_xch; /* xc_interface (xenctrl.h needs -std=gnu11: backend_xen.c only) */
	struct xs_handle *xn_xsh;
	bool xn_watching;
	char xn_dir[PATH_MAX];
	char xn_owner[XEN_OWNER_LEN];
};

/* be must be a xen backend (bo_name "xen"); NULL otherwise. */
libxl_ctx *backend_xen_ctx(struct backend *be);
/* Keep cfg as libxl JSON and xl.cfg text in the state directory
 * (<uuid>.libxl.json, <uuid>.xl.cfg); best effort, logs what fails. */
void backend_xen_keep_config(struct backend *be, const struct be_domain_config *cfg, libxl_domain_config *dc,
			     const char *host_featureset);
/* A libxl error as one line: "<what>: <libxl error name> (<libxl's last message>)". */
void backend_xen_fail(struct backend *be, int rc, const char *what);

/* Rename domid from <name><from_suffix> to <name><to_suffix> (either may
 * be ""); 0, or -1 with the reason in be_error. */
int backend_xen_rename(struct backend *be, int domid, const char *name, const char *from_suffix,
		       const char *to_suffix);

/* Xen's default CPU policy for HVM (else PV) guests as XAPI feature-set
 * text; 0, or -1 with the reason in be_error. */
int backend_xen_featureset(struct backend *be, bool hvm, char *out, size_t n);

/* ---- xen_host.c ---- */
int xen_host_info(struct backend *be, struct be_host_info *out);
/* cfg as this host builds it (xen_cfg.h), name_suffix appended to its
 * name: refused when the host cannot run its guest type
 * (xen_host_can_run), levelled against this host's default set for that
 * type, marked as this agent's (XEN_OWNER_KEY) and kept in the state
 * directory. 0, or -1 with the reason in be_error; dc is initialised
 * either way (the caller disposes it). */
int backend_xen_domcfg(struct backend *be, const struct be_domain_config *cfg, const char *name_suffix,
		       libxl_domain_config *dc);
/* Can this host run cfg's guest type? PVH and HVM need hardware
 * virtualisation (Xen's physinfo cap_hvm); 0, or -1 with one line in
 * be_error saying what is missing. */
int xen_host_can_run(struct backend *be, const struct be_domain_config *cfg);

/* ---- xen_owner.c ---- */
/* This agent's owner id: read from <state dir>/owner, created (random)
 * the first time; 0, or -1 with a reason in err. */
int xen_owner_load(struct xen *x, char *err, size_t errlen);
/* Does domid carry this agent's owner id? */
bool xen_owner_is_ours(struct xen *x, uint32_t domid);
/* dc's domain will carry it (c_info.xsdata). */
void xen_owner_claim(struct xen *x, libxl_domain_config *dc);

#endif
