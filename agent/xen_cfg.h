/*
 * xen_cfg.h - a VM record (struct be_domain_config) as Xen runs it.
 *
 * Two renderings of one decision: the libxl_domain_config the xen backend
 * builds the domain from (xen_domcfg_build, xen_domcfg.c, needs libxl), and
 * the xl.cfg text an operator could feed `xl create` to get the same
 * domain (xen_xlcfg_render, pure). Both follow these rules:
 *   - guest type: dc_guest_type "pv" -> PV booted by pvgrub2
 *     (XEN_PV_KERNEL), "pvh" -> PVH booted by pvgrub2 (XEN_PVH_KERNEL; both
 *     from Debian's grub-xen-host, reading /boot/grub/grub.cfg from the
 *     guest's disks), anything else -> HVM booted from the first disk
 *     (qemu-xen + SeaBIOS). PV needs no hardware virtualisation;
 *     PVH and HVM need VT-x or AMD-V;
 *   - memory = maxmem = dc_memory rounded up to MiB; vcpus = maxvcpus;
 *   - each disk: format raw, vdev from bd_device (a number N, XAPI's
 *     userdevice, becomes xvd<a+N>), read-only when bd_readonly;
 *   - CPU levelling: dc_featureset -> cpuid masks against the host's own
 *     default set for the guest type, host_featureset (xen_cpuid.h);
 *   - on_poweroff/on_crash destroy, on_reboot restart (libxl only records
 *     them: nothing acts on them without xl's monitor; the agent reports a
 *     shut-down domain and poold decides).
 */
#ifndef XEN_CFG_H
#define XEN_CFG_H

#include <stddef.h>

#include "backend.h"

#define XEN_PVH_KERNEL "/usr/lib/grub-xen/grub-i386-xen_pvh.bin"
#define XEN_PV_KERNEL "/usr/lib/grub-xen/grub-x86_64-xen.bin"

/* "hvm", "pvh" or "pv". */
const char *xen_guest_type(const struct be_domain_config *cfg);
/* bd_device -> libxl vdev ("0" -> "xvda", "xvdb" stays); -1 when invalid. */
int xen_vdev(const char *device, char *out, size_t n);
/* The pvgrub2 image a PV or PVH guest boots from; NULL for HVM. */
const char *xen_boot_kernel(const struct be_domain_config *cfg);
/* RAM in MiB, rounded up. */
unsigned long long xen_memory_mib(const struct be_domain_config *cfg);
/* The xl.cfg text; 0, or -1 with a reason in err (bad value, buffer too small). */
int xen_xlcfg_render(const struct be_domain_config *cfg, const char *host_featureset, char *buf, size_t n, char *err,
		     size_t errlen);

#ifdef HAVE_XEN
#include <libxl.h>
/* cfg -> a libxl domain config (initialised here; the caller disposes it).
 * name_suffix (e.g. "--incoming", or NULL) is appended to the name. 0, or
 * -1 with a reason in err. Needs no libxl ctx (tests run it without Xen). */
int xen_domcfg_build(const struct be_domain_config *cfg, const char *name_suffix, const char *host_featureset,
		     libxl_domain_config *out, char *err, size_t errlen);
/* One disk (disk hot-plug uses the same rules); initialised here. */
int xen_domcfg_disk(const struct be_disk *d, libxl_device_disk *out, char *err, size_t errlen);
/* libxl's JSON of it (malloc'ed), NULL on failure. */
char *xen_domcfg_json(libxl_domain_config *dc);
#endif

#endif
