/*
 * xen_backend.h - what mig_xen.c needs from the xen backend beyond
 * struct backend_ops: its libxl ctx (thread-safe; libxl's migration calls
 * run on it without the agent's backend lock), and the bookkeeping a
 * domain created by a restore gets.
 */
#ifndef XEN_BACKEND_H
#define XEN_BACKEND_H

#include <libxl.h>

#include "backend.h"

/* be must be a xen backend (bo_name "xen"); NULL otherwise. */
libxl_ctx *backend_xen_ctx(struct backend *be);
/* Keep cfg as libxl JSON and xl.cfg text in the state directory
 * (<uuid>.libxl.json, <uuid>.xl.cfg); best effort, logs what fails. */
void backend_xen_keep_config(struct backend *be, const struct be_domain_config *cfg, libxl_domain_config *dc);
/* A libxl error as one line: "<what>: <libxl error name> (<libxl's last message>)". */
void backend_xen_fail(struct backend *be, int rc, const char *what);

#endif
