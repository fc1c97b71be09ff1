/*
 * xen_util.c - what the xen backend's files share (backend_xen.c,
 * xen_host.c, mig_xen.c, xen_save.c): libxl failures as one line, Xen's
 * default feature sets, the config kept beside each domain, renames.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxl.h>
#include <libxl_utils.h>
#include <xenctrl.h>
#include <xenguest.h>

#include "log.h"
#include "util.h"
#include "xen_backend.h"
#include "xen_cfg.h"
#include "xen_log.h"

static struct xen *X(struct backend *be)
{
	return be->be_priv;
}

void backend_xen_fail(struct backend *be, int rc, const char *what)
{
	char last[400];
	xen_logger_take_last(X(be)->xn_log, last, sizeof last);
	const char *name = libxl_error_to_string((libxl_error)rc);
	be_set_error(be, "%s: %s%s%s%s", what, name ? name : "libxl error", last[0] ? " (" : "", last,
		     last[0] ? ")" : "");
}

libxl_ctx *backend_xen_ctx(struct backend *be)
{
	return be && be->be_ops && strcmp(be->be_ops->bo_name, "xen") == 0 ? X(be)->xn_ctx : NULL;
}

int backend_xen_featureset(struct backend *be, bool hvm, char *out, size_t n)
{
	uint32_t words[64];
	uint32_t nr = xc_get_cpu_featureset_size();
	if (nr > 64)
		nr = 64;
	uint32_t which = hvm ? XEN_SYSCTL_cpu_featureset_hvm : XEN_SYSCTL_cpu_featureset_pv;
	if (xc_get_cpu_featureset(X(be)->xn_xch, which, &nr, words) != 0) {
		be_set_error(be, "xc_get_cpu_featureset: %s", strerror(errno));
		return -1;
	}
	size_t len = 0;
	out[0] = 0;
	for (uint32_t i = 0; i < nr && len + 10 < n; i++)
		len += (size_t)snprintf(out + len, n - len, "%s%08x", i ? "-" : "", words[i]);
	return 0;
}

static int write_file(const char *path, const char *text)
{
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	bool ok = fputs(text, f) >= 0;
	ok = fclose(f) == 0 && ok;
	return ok && rename(tmp, path) == 0 ? 0 : -1;
}

void backend_xen_keep_config(struct backend *be, const struct be_domain_config *cfg, libxl_domain_config *dc,
			     const char *host_featureset)
{
	struct xen *x = X(be);
	char path[PATH_MAX + 64], err[256];
	char *json = xen_domcfg_json(dc);
	snprintf(path, sizeof path, "%s/%s.libxl.json", x->xn_dir, cfg->dc_uuid);
	if (!json || write_file(path, json) != 0)
		log_warn("VM %s: cannot keep its libxl config in %s", cfg->dc_uuid, path);
	else
		log_debug("VM %s: libxl config %s", cfg->dc_uuid, json);
	free(json);
	char *text = xmalloc(16384);
	snprintf(path, sizeof path, "%s/%s.xl.cfg", x->xn_dir, cfg->dc_uuid);
	if (xen_xlcfg_render(cfg, host_featureset, text, 16384, err, sizeof err) != 0 || write_file(path, text) != 0)
		log_warn("VM %s: cannot keep its xl.cfg in %s", cfg->dc_uuid, path);
	free(text);
}

int backend_xen_rename(struct backend *be, int domid, const char *name, const char *from_suffix,
		       const char *to_suffix)
{
	char from[300], to[300];
	snprintf(from, sizeof from, "%s%s", name, from_suffix);
	snprintf(to, sizeof to, "%s%s", name, to_suffix);
	int rc = libxl_domain_rename(X(be)->xn_ctx, (uint32_t)domid, from, to);
	if (rc) {
		char what[700];
		snprintf(what, sizeof what, "libxl_domain_rename %d %s -> %s", domid, from, to);
		backend_xen_fail(be, rc, what);
		return -1;
	}
	return 0;
}
