/*
 * xen_domcfg.c - a VM record -> libxl_domain_config (see xen_cfg.h for the
 * rules; xen_xlcfg_render in xen_cfg.c writes the same decisions as xl.cfg
 * text). Needs libxl's types but no ctx and no hypervisor: the unit tests
 * build configs and their JSON here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxl.h>
#include <libxl_utils.h>
#include "util.h"

#include "xen_cfg.h"
#include "xen_cpuid.h"

/* A bitmap of n bits, allocated here (libxl_bitmap_alloc wants a ctx);
 * libxl_bitmap_dispose frees it with free(). */
static void bitmap_alloc(libxl_bitmap *b, int nbits)
{
	libxl_bitmap_init(b);
	b->size = (uint32_t)((nbits + 7) / 8);
	b->map = xcalloc(b->size ? b->size : 1, 1);
}

static int disk_fill(const struct be_disk *d, libxl_device_disk *out, char *err, size_t errlen)
{
	char vdev[16];
	if (xen_vdev(d->bd_device, vdev, sizeof vdev) != 0 || !d->bd_path[0]) {
		snprintf(err, errlen, "disk '%s' (%s) cannot be given to Xen: bad device name or no path", d->bd_device,
			 d->bd_vdi_uuid);
		return -1;
	}
	libxl_device_disk_init(out);
	out->pdev_path = xstrdup(d->bd_path);
	out->vdev = xstrdup(vdev);
	out->format = LIBXL_DISK_FORMAT_RAW;
	out->backend = LIBXL_DISK_BACKEND_UNKNOWN; /* libxl picks phy/qdisk for the file */
	out->readwrite = d->bd_readonly ? 0 : 1;
	out->is_cdrom = 0;
	out->removable = 0;
	return 0;
}

int xen_domcfg_disk(const struct be_disk *d, libxl_device_disk *out, char *err, size_t errlen)
{
	return disk_fill(d, out, err, errlen);
}

int xen_domcfg_build(const struct be_domain_config *cfg, const char *name_suffix, const char *host_featureset,
		     libxl_domain_config *out, char *err, size_t errlen)
{
	libxl_domain_config_init(out);
	if (!cfg->dc_name[0] || cfg->dc_memory == 0 || cfg->dc_vcpus < 1 || cfg->dc_ndisks < 0 ||
	    cfg->dc_ndisks > 8) {
		snprintf(err, errlen, "VM %s: a Xen domain needs a name, memory, vcpus and at most 8 disks",
			 cfg->dc_uuid);
		return -1;
	}
	const char *gt = xen_guest_type(cfg);
	libxl_domain_type type = strcmp(gt, "pv") == 0	  ? LIBXL_DOMAIN_TYPE_PV
				 : strcmp(gt, "pvh") == 0 ? LIBXL_DOMAIN_TYPE_PVH
							  : LIBXL_DOMAIN_TYPE_HVM;

	libxl_domain_create_info *c = &out->c_info;
	c->type = type;
	size_t nl = strlen(cfg->dc_name) + (name_suffix ? strlen(name_suffix) : 0) + 1;
	c->name = xmalloc(nl);
	snprintf(c->name, nl, "%s%s", cfg->dc_name, name_suffix ? name_suffix : "");
	if (libxl_uuid_from_string(&c->uuid, cfg->dc_uuid) != 0) {
		snprintf(err, errlen, "VM uuid '%s' is not a uuid", cfg->dc_uuid);
		return -1;
	}

	libxl_domain_build_info *b = &out->b_info;
	libxl_domain_build_info_init_type(b, type);
	uint64_t kb = xen_memory_mib(cfg) * 1024;
	b->max_memkb = kb;
	b->target_memkb = kb;
	b->max_vcpus = cfg->dc_vcpus;
	bitmap_alloc(&b->avail_vcpus, cfg->dc_vcpus);
	for (int i = 0; i < cfg->dc_vcpus; i++)
		libxl_bitmap_set(&b->avail_vcpus, i);
	if (xen_boot_kernel(cfg))
		b->kernel = xstrdup(xen_boot_kernel(cfg));
	else
		b->u.hvm.boot = xstrdup("c");
	char masks[XEN_CPUID_MAX_STRS][XEN_CPUID_STR_LEN];
	int nm = xen_cpuid_masks(cfg->dc_featureset, host_featureset, masks, XEN_CPUID_MAX_STRS, err, errlen);
	if (nm < 0)
		return -1;
	for (int i = 0; i < nm; i++) {
		int r = libxl_cpuid_parse_config_xend(&b->cpuid, masks[i]);
		if (r != 0) {
			snprintf(err, errlen, "libxl refused cpuid mask '%s' (error %d)", masks[i], r);
			return -1;
		}
	}

	if (cfg->dc_ndisks)
		out->disks = xcalloc((size_t)cfg->dc_ndisks, sizeof *out->disks);
	for (int i = 0; i < cfg->dc_ndisks; i++) {
		out->num_disks = i + 1; /* disposed with the config, even half filled */
		if (disk_fill(&cfg->dc_disks[i], &out->disks[i], err, errlen) != 0)
			return -1;
	}
	out->on_poweroff = LIBXL_ACTION_ON_SHUTDOWN_DESTROY;
	out->on_reboot = LIBXL_ACTION_ON_SHUTDOWN_RESTART;
	out->on_crash = LIBXL_ACTION_ON_SHUTDOWN_DESTROY;
	return 0;
}

char *xen_domcfg_json(libxl_domain_config *dc)
{
	/* the ctx is only used to log a failure; NULL is fine on success paths,
	 * and a yajl failure here is an allocation failure */
	return libxl_domain_config_to_json(NULL, dc);
}
