/*
 * xen_host.c - the Xen host as the pool sees it: memory and CPUs
 * (libxl_get_physinfo), the CPU vendor, and the feature set guests are
 * levelled against; and what guest types it can run at all.
 *
 * The feature set is Xen's default policy for the guests this host runs
 * best: HVM's where Xen has hardware virtualisation, else PV's. (A host
 * without VT-x/AMD-V reports an all-zero HVM set: levelling a PV guest
 * against it would hide every feature, long mode included.)
 */
#ifdef HAVE_XEN
#include <stdio.h>
#include <string.h>

#include "xen_backend.h"
#include "xen_cfg.h"

/* CPUID leaf 0 in dom0: Xen passes the real vendor through. (<cpuid.h>
 * is shadowed by poold/cpuid.h on our include path: plain asm here.) */
static void cpu_vendor(char out[16])
{
	snprintf(out, 16, "unknown");
#if defined(__x86_64__) || defined(__i386__)
	unsigned a, b, c, d;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0u), "c"(0u));
	(void)a;
	memcpy(out, &b, 4);
	memcpy(out + 4, &d, 4);
	memcpy(out + 8, &c, 4);
	out[12] = 0;
#endif
}

static int physinfo(struct backend *be, libxl_physinfo *pi)
{
	struct xen *x = be->be_priv;
	libxl_physinfo_init(pi);
	int rc = libxl_get_physinfo(x->xn_ctx, pi);
	if (rc) {
		backend_xen_fail(be, rc, "libxl_get_physinfo");
		libxl_physinfo_dispose(pi);
		return -1;
	}
	return 0;
}

int xen_host_info(struct backend *be, struct be_host_info *out)
{
	struct xen *x = be->be_priv;
	memset(out, 0, sizeof *out);
	libxl_physinfo pi;
	if (physinfo(be, &pi) != 0)
		return -1;
	out->hi_total_memory = pi.total_pages * 4096;
	out->hi_cpus = (int)pi.nr_cpus;
	bool hvm = pi.cap_hvm;
	libxl_physinfo_dispose(&pi);
	uint64_t free_kb = 0;
	int rc = libxl_get_free_memory(x->xn_ctx, &free_kb); /* net of claims and the slack */
	if (rc) {
		backend_xen_fail(be, rc, "libxl_get_free_memory");
		return -1;
	}
	out->hi_free_memory = free_kb * 1024;
	cpu_vendor(out->hi_cpu_vendor);
	if (backend_xen_featureset(be, hvm, out->hi_featureset, sizeof out->hi_featureset) != 0)
		return -1;
	snprintf(out->hi_backend, sizeof out->hi_backend, "xen");
	return 0;
}

/* Xen's default set for cfg's guest type. */
static int guest_featureset(struct backend *be, const struct be_domain_config *cfg, char *out, size_t n)
{
	return backend_xen_featureset(be, strcmp(xen_guest_type(cfg), "pv") != 0, out, n);
}

int backend_xen_domcfg(struct backend *be, const struct be_domain_config *cfg, const char *name_suffix,
		       libxl_domain_config *dc)
{
	char host_fs[BE_FEATURESET_LEN], err[300];
	libxl_domain_config_init(dc);
	if (xen_host_can_run(be, cfg) != 0 || guest_featureset(be, cfg, host_fs, sizeof host_fs) != 0)
		return -1;
	libxl_domain_config_dispose(dc);
	if (xen_domcfg_build(cfg, name_suffix, host_fs, dc, err, sizeof err) != 0) {
		be_set_error(be, "%s", err);
		return -1;
	}
	xen_owner_claim(be->be_priv, dc);
	backend_xen_keep_config(be, cfg, dc, host_fs);
	return 0;
}

int xen_host_can_run(struct backend *be, const struct be_domain_config *cfg)
{
	const char *type = xen_guest_type(cfg);
	if (strcmp(type, "pv") == 0)
		return 0;
	libxl_physinfo pi;
	if (physinfo(be, &pi) != 0)
		return -1;
	bool hvm = pi.cap_hvm;
	libxl_physinfo_dispose(&pi);
	if (hvm)
		return 0;
	be_set_error(be, "VM %s is a %s guest and this host has no hardware virtualisation (Xen reports no hvm "
			 "capability: VT-x/AMD-V missing or off in the firmware); run it on a host with HVM, or give it "
			 "domain-type pv", cfg->dc_uuid, strcmp(type, "pvh") == 0 ? "PVH" : "HVM");
	return -1;
}
#endif
