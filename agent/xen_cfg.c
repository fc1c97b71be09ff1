/*
 * xen_cfg.c - the pure half of xen_cfg.h: guest type, vdev names, and the
 * xl.cfg text of a VM record (what the xen backend runs, for operators).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xen_cfg.h"
#include "xen_cpuid.h"

const char *xen_guest_type(const struct be_domain_config *cfg)
{
	if (strcmp(cfg->dc_guest_type, "pv") == 0)
		return "pv";
	return strcmp(cfg->dc_guest_type, "pvh") == 0 ? "pvh" : "hvm";
}

const char *xen_boot_kernel(const struct be_domain_config *cfg)
{
	const char *t = xen_guest_type(cfg);
	return strcmp(t, "pv") == 0 ? XEN_PV_KERNEL : strcmp(t, "pvh") == 0 ? XEN_PVH_KERNEL : NULL;
}

int xen_vdev(const char *device, char *out, size_t n)
{
	if (!device || !*device || strlen(device) >= 12)
		return -1;
	bool digits = true;
	for (const char *p = device; *p; p++) {
		if (!isdigit((unsigned char)*p))
			digits = false;
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p))
			return -1;
	}
	if (digits) {
		int i = atoi(device);
		if (i > 25)
			return -1;
		return snprintf(out, n, "xvd%c", 'a' + i) < (int)n ? 0 : -1;
	}
	if (!islower((unsigned char)device[0]))
		return -1;
	return snprintf(out, n, "%s", device) < (int)n ? 0 : -1;
}

unsigned long long xen_memory_mib(const struct be_domain_config *cfg)
{
	return (unsigned long long)((cfg->dc_memory + (1ull << 20) - 1) >> 20);
}

struct out {
	char *buf;
	size_t n, len;
	bool full;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	if (o->full)
		return;
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(o->buf + o->len, o->n - o->len, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= o->n - o->len)
		o->full = true;
	else
		o->len += (size_t)w;
}

/* xl.cfg strings are "..." without escapes: refuse what would break them. */
static bool plain(const char *s)
{
	for (; *s; s++)
		if (*s == '"' || *s == '\n' || *s == '\\' || (unsigned char)*s < 0x20)
			return false;
	return true;
}

int xen_xlcfg_render(const struct be_domain_config *cfg, const char *host_featureset, char *buf, size_t n, char *err,
		     size_t errlen)
{
	if (!buf || n == 0)
		return -1;
	buf[0] = 0;
	if (!cfg->dc_name[0] || !plain(cfg->dc_name)) {
		snprintf(err, errlen, "VM %s: name '%s' cannot be a Xen domain name", cfg->dc_uuid, cfg->dc_name);
		return -1;
	}
	if (cfg->dc_memory == 0 || cfg->dc_vcpus < 1) {
		snprintf(err, errlen, "VM %s: memory and vcpus must be positive", cfg->dc_uuid);
		return -1;
	}
	char masks[XEN_CPUID_MAX_STRS][XEN_CPUID_STR_LEN];
	int nm = xen_cpuid_masks(cfg->dc_featureset, host_featureset, masks, XEN_CPUID_MAX_STRS, err, errlen);
	if (nm < 0)
		return -1;
	struct out o = {buf, n, 0, false};
	const char *type = xen_guest_type(cfg);
	put(&o, "# VM %s, as the pool-agent xen backend builds it\n", cfg->dc_uuid);
	put(&o, "name = \"%s\"\n", cfg->dc_name);
	put(&o, "uuid = \"%s\"\n", cfg->dc_uuid);
	put(&o, "type = \"%s\"\n", type);
	if (xen_boot_kernel(cfg))
		put(&o, "kernel = \"%s\"\n", xen_boot_kernel(cfg));
	else
		put(&o, "boot = \"c\"\n");
	put(&o, "memory = %llu\nmaxmem = %llu\n", xen_memory_mib(cfg), xen_memory_mib(cfg));
	put(&o, "vcpus = %d\nmaxvcpus = %d\n", cfg->dc_vcpus, cfg->dc_vcpus);
	put(&o, "disk = [");
	for (int i = 0; i < cfg->dc_ndisks; i++) {
		const struct be_disk *d = &cfg->dc_disks[i];
		char vdev[16];
		if (xen_vdev(d->bd_device, vdev, sizeof vdev) != 0 || !d->bd_path[0] || !plain(d->bd_path)) {
			snprintf(err, errlen, "VM %s: disk %d (device '%s', path '%s') cannot be given to Xen",
				 cfg->dc_uuid, i, d->bd_device, d->bd_path);
			return -1;
		}
		/* target= last: xl takes the rest of the spec as the path */
		put(&o, "%s \"format=raw, vdev=%s, access=%s, target=%s\"", i ? "," : "", vdev,
		    d->bd_readonly ? "ro" : "rw", d->bd_path);
	}
	put(&o, " ]\n");
	if (nm > 0) {
		put(&o, "cpuid = [");
		for (int i = 0; i < nm; i++)
			put(&o, "%s\n    \"%s\"", i ? "," : "", masks[i]);
		put(&o, " ]\n");
	}
	put(&o, "on_poweroff = \"destroy\"\non_reboot = \"restart\"\non_crash = \"destroy\"\n");
	if (o.full) {
		snprintf(err, errlen, "VM %s: the xl config does not fit %zu bytes", cfg->dc_uuid, n);
		return -1;
	}
	return 0;
}
