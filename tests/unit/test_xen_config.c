/* test_xen_config.c - a VM record as Xen would run it (agent/xen_cfg.c,
 * agent/xen_domcfg.c): the xl.cfg text an operator could give `xl create`,
 * and (with libxen-dev) the libxl_domain_config the backend builds and its
 * libxl JSON; both from the same record, HVM and PVH, with disks and CPU
 * levelling; bad records refused with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "backend.h"
#include "xen_cfg.h"
#include "xen_cpuid.h"

#define UUID "6f1f4a4e-3b1c-4d6a-9a53-1f2e3d4c5b6a"
#define FS "1fcbfbff-f7fa3223-2d93fbff-00000023-00000001-000007ab-00000000-00000000-001000c8"

static struct be_domain_config record(const char *type)
{
	struct be_domain_config c;
	memset(&c, 0, sizeof c);
	snprintf(c.dc_uuid, sizeof c.dc_uuid, UUID);
	snprintf(c.dc_name, sizeof c.dc_name, "web-1");
	c.dc_memory = 1536ull << 20;
	c.dc_vcpus = 2;
	snprintf(c.dc_cpu_vendor, sizeof c.dc_cpu_vendor, "GenuineIntel");
	snprintf(c.dc_featureset, sizeof c.dc_featureset, FS);
	c.dc_ndisks = 2;
	snprintf(c.dc_disks[0].bd_path, sizeof c.dc_disks[0].bd_path, "/srv/sr1/a.raw");
	snprintf(c.dc_disks[0].bd_device, sizeof c.dc_disks[0].bd_device, "0");
	snprintf(c.dc_disks[1].bd_path, sizeof c.dc_disks[1].bd_path, "/srv/sr1/b.raw");
	snprintf(c.dc_disks[1].bd_device, sizeof c.dc_disks[1].bd_device, "xvdc");
	c.dc_disks[1].bd_readonly = true;
	snprintf(c.dc_guest_type, sizeof c.dc_guest_type, "%s", type);
	return c;
}

static void test_vdev(void **state)
{
	(void)state;
	char v[16];
	assert_int_equal(xen_vdev("0", v, sizeof v), 0);
	assert_string_equal(v, "xvda");
	assert_int_equal(xen_vdev("3", v, sizeof v), 0);
	assert_string_equal(v, "xvdd");
	assert_int_equal(xen_vdev("xvdb", v, sizeof v), 0);
	assert_string_equal(v, "xvdb");
	assert_int_equal(xen_vdev("hda", v, sizeof v), 0);
	assert_int_equal(xen_vdev("26", v, sizeof v), -1);
	assert_int_equal(xen_vdev("", v, sizeof v), -1);
	assert_int_equal(xen_vdev("xvd a", v, sizeof v), -1);
	assert_int_equal(xen_vdev("../x", v, sizeof v), -1);
	assert_int_equal(xen_vdev(NULL, v, sizeof v), -1);
}

static void test_xlcfg_hvm(void **state)
{
	(void)state;
	struct be_domain_config c = record("");
	char text[8192], err[256] = "";
	assert_int_equal(xen_xlcfg_render(&c, NULL, text, sizeof text, err, sizeof err), 0);
	char masks[XEN_CPUID_MAX_STRS][XEN_CPUID_STR_LEN];
	assert_int_equal(xen_cpuid_masks(FS, NULL, masks, XEN_CPUID_MAX_STRS, err, sizeof err), 6);
	char want[4096];
	snprintf(want, sizeof want,
		 "# VM " UUID ", as the pool-agent xen backend builds it\n"
		 "name = \"web-1\"\n"
		 "uuid = \"" UUID "\"\n"
		 "type = \"hvm\"\n"
		 "boot = \"c\"\n"
		 "memory = 1536\nmaxmem = 1536\n"
		 "vcpus = 2\nmaxvcpus = 2\n"
		 "disk = [ \"format=raw, vdev=xvda, access=rw, target=/srv/sr1/a.raw\", "
		 "\"format=raw, vdev=xvdc, access=ro, target=/srv/sr1/b.raw\" ]\n"
		 "cpuid = [\n    \"%s\",\n    \"%s\",\n    \"%s\",\n    \"%s\",\n    \"%s\",\n    \"%s\" ]\n"
		 "on_poweroff = \"destroy\"\non_reboot = \"restart\"\non_crash = \"destroy\"\n",
		 masks[0], masks[1], masks[2], masks[3], masks[4], masks[5]);
	assert_string_equal(text, want);
}

static void test_xlcfg_pvh_and_rounding(void **state)
{
	(void)state;
	struct be_domain_config c = record("pvh");
	c.dc_memory = (256ull << 20) + 1; /* rounds up to 257 MiB */
	c.dc_featureset[0] = 0;		  /* no levelling: no cpuid line */
	c.dc_ndisks = 0;
	char text[8192], err[256] = "";
	assert_int_equal(xen_xlcfg_render(&c, NULL, text, sizeof text, err, sizeof err), 0);
	assert_non_null(strstr(text, "type = \"pvh\"\nkernel = \"" XEN_PVH_KERNEL "\"\n"));
	assert_null(strstr(text, "\nboot ="));
	assert_non_null(strstr(text, "memory = 257\nmaxmem = 257\n"));
	assert_non_null(strstr(text, "disk = [ ]\n"));
	assert_null(strstr(text, "cpuid"));
	assert_string_equal(xen_guest_type(&c), "pvh");
}

/* PV: pvgrub2 as the kernel; levelled against a host that has exactly the
 * pool's features, nothing needs hiding (no cpuid line). */
static void test_xlcfg_pv(void **state)
{
	(void)state;
	struct be_domain_config c = record("pv");
	char text[8192], err[256] = "";
	assert_int_equal(xen_xlcfg_render(&c, FS, text, sizeof text, err, sizeof err), 0);
	assert_non_null(strstr(text, "type = \"pv\"\nkernel = \"" XEN_PV_KERNEL "\"\n"));
	assert_null(strstr(text, "cpuid"));
	assert_string_equal(xen_guest_type(&c), "pv");
	assert_string_equal(xen_boot_kernel(&c), XEN_PV_KERNEL);
	/* a host with a feature the pool lacks (SSE3): only leaf 1 is masked */
	const char *host = "1fcbfbff-f7fa3223-2d93fbff-00000023-00000001-000007ab-00000000-00000000-001000c8";
	snprintf(c.dc_featureset, sizeof c.dc_featureset, "1fcbfbff-f7fa3222-2d93fbff-00000023-00000001-000007ab");
	assert_int_equal(xen_xlcfg_render(&c, host, text, sizeof text, err, sizeof err), 0);
	assert_non_null(strstr(text, "cpuid = [\n    \"0x00000001:ecx="));
	assert_null(strstr(text, "0x00000007"));
	/* anything but pv and pvh is HVM, without a kernel */
	c = record("pv_in_pvh");
	assert_string_equal(xen_guest_type(&c), "hvm");
	assert_null(xen_boot_kernel(&c));
}

static void test_xlcfg_refusals(void **state)
{
	(void)state;
	char text[8192], err[256] = "";
	struct be_domain_config c = record("");
	snprintf(c.dc_name, sizeof c.dc_name, "a\"b");
	assert_int_equal(xen_xlcfg_render(&c, NULL, text, sizeof text, err, sizeof err), -1);
	assert_non_null(strstr(err, "cannot be a Xen domain name"));
	c = record("");
	snprintf(c.dc_disks[1].bd_device, sizeof c.dc_disks[1].bd_device, "99");
	assert_int_equal(xen_xlcfg_render(&c, NULL, text, sizeof text, err, sizeof err), -1);
	assert_non_null(strstr(err, "disk 1 (device '99'"));
	c = record("");
	snprintf(c.dc_featureset, sizeof c.dc_featureset, "zz");
	assert_int_equal(xen_xlcfg_render(&c, NULL, text, sizeof text, err, sizeof err), -1);
	assert_non_null(strstr(err, "malformed"));
	c = record("");
	c.dc_vcpus = 0;
	assert_int_equal(xen_xlcfg_render(&c, NULL, text, sizeof text, err, sizeof err), -1);
	c = record("");
	assert_int_equal(xen_xlcfg_render(&c, NULL, text, 100, err, sizeof err), -1);
	assert_non_null(strstr(err, "does not fit"));
}

#ifdef HAVE_XEN
static json_t *build_json(const struct be_domain_config *c, const char *suffix)
{
	libxl_domain_config dc;
	char err[256] = "";
	if (xen_domcfg_build(c, suffix, NULL, &dc, err, sizeof err) != 0)
		fail_msg("xen_domcfg_build: %s", err);
	char *text = xen_domcfg_json(&dc);
	assert_non_null(text);
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	if (!j)
		fail_msg("libxl JSON does not parse: %s\n%s", je.text, text);
	free(text);
	libxl_domain_config_dispose(&dc);
	return j;
}
#endif

static void test_libxl_config_hvm(void **state)
{
	(void)state;
#ifdef HAVE_XEN
	struct be_domain_config c = record("");
	json_t *j = build_json(&c, NULL);
	json_t *ci = json_object_get(j, "c_info"), *bi = json_object_get(j, "b_info");
	assert_string_equal(json_string_value(json_object_get(ci, "type")), "hvm");
	assert_string_equal(json_string_value(json_object_get(ci, "name")), "web-1");
	assert_string_equal(json_string_value(json_object_get(ci, "uuid")), UUID);
	assert_int_equal(json_integer_value(json_object_get(bi, "max_memkb")), 1536 * 1024);
	assert_int_equal(json_integer_value(json_object_get(bi, "target_memkb")), 1536 * 1024);
	assert_int_equal(json_integer_value(json_object_get(bi, "max_vcpus")), 2);
	json_t *avail = json_object_get(bi, "avail_vcpus");
	assert_int_equal(json_array_size(avail), 2); /* libxl writes the set bits */
	json_t *hvm = json_object_get(json_object_get(bi, "type.hvm"), "boot");
	assert_string_equal(json_string_value(hvm), "c");
	json_t *cpuid = json_object_get(json_object_get(bi, "cpuid"), "cpuid"); /* libxl 4.17: {cpuid: [], msr: []} */
	assert_int_equal(json_array_size(cpuid), 6);
	json_t *leaf1 = json_array_get(cpuid, 0);
	assert_int_equal(json_integer_value(json_object_get(leaf1, "leaf")), 1);
	char masks[XEN_CPUID_MAX_STRS][XEN_CPUID_STR_LEN], err[256];
	xen_cpuid_masks(FS, NULL, masks, XEN_CPUID_MAX_STRS, err, sizeof err);
	assert_non_null(strstr(masks[0], json_string_value(json_object_get(leaf1, "ecx"))));
	json_t *disks = json_object_get(j, "disks");
	assert_int_equal(json_array_size(disks), 2);
	json_t *d0 = json_array_get(disks, 0), *d1 = json_array_get(disks, 1);
	assert_string_equal(json_string_value(json_object_get(d0, "pdev_path")), "/srv/sr1/a.raw");
	assert_string_equal(json_string_value(json_object_get(d0, "vdev")), "xvda");
	assert_string_equal(json_string_value(json_object_get(d0, "format")), "raw");
	assert_int_equal(json_integer_value(json_object_get(d0, "readwrite")), 1);
	assert_string_equal(json_string_value(json_object_get(d1, "vdev")), "xvdc");
	assert_null(json_object_get(d1, "readwrite")); /* 0: libxl leaves defaults out */
	assert_string_equal(json_string_value(json_object_get(j, "on_reboot")), "restart");
	json_decref(j);
#else
	skip();
#endif
}

static void test_libxl_config_pv(void **state)
{
	(void)state;
#ifdef HAVE_XEN
	struct be_domain_config c = record("pv");
	libxl_domain_config dc;
	char err[256] = "";
	assert_int_equal(xen_domcfg_build(&c, NULL, FS, &dc, err, sizeof err), 0);
	char *text = xen_domcfg_json(&dc);
	libxl_domain_config_dispose(&dc);
	json_t *j = json_loads(text, 0, NULL);
	free(text);
	assert_non_null(j);
	json_t *ci = json_object_get(j, "c_info"), *bi = json_object_get(j, "b_info");
	assert_string_equal(json_string_value(json_object_get(ci, "type")), "pv");
	assert_string_equal(json_string_value(json_object_get(bi, "kernel")), XEN_PV_KERNEL);
	assert_null(json_object_get(bi, "cpuid")); /* the host has just the pool's features */
	assert_int_equal(json_array_size(json_object_get(j, "disks")), 2);
	json_decref(j);
#else
	skip();
#endif
}

static void test_libxl_config_pvh_incoming(void **state)
{
	(void)state;
#ifdef HAVE_XEN
	struct be_domain_config c = record("pvh");
	c.dc_featureset[0] = 0;
	json_t *j = build_json(&c, "--incoming");
	json_t *ci = json_object_get(j, "c_info"), *bi = json_object_get(j, "b_info");
	assert_string_equal(json_string_value(json_object_get(ci, "type")), "pvh");
	assert_string_equal(json_string_value(json_object_get(ci, "name")), "web-1--incoming");
	assert_string_equal(json_string_value(json_object_get(bi, "kernel")), XEN_PVH_KERNEL);
	assert_null(json_object_get(bi, "cpuid"));
	json_decref(j);
	/* refusals: bad uuid, bad disk */
	libxl_domain_config dc;
	char err[256] = "";
	c = record("");
	snprintf(c.dc_uuid, sizeof c.dc_uuid, "not-a-uuid");
	assert_int_equal(xen_domcfg_build(&c, NULL, NULL, &dc, err, sizeof err), -1);
	assert_non_null(strstr(err, "is not a uuid"));
	libxl_domain_config_dispose(&dc);
	c = record("");
	c.dc_disks[1].bd_path[0] = 0;
	assert_int_equal(xen_domcfg_build(&c, NULL, NULL, &dc, err, sizeof err), -1);
	assert_non_null(strstr(err, "cannot be given to Xen"));
	libxl_domain_config_dispose(&dc);
#else
	skip();
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vdev),
		cmocka_unit_test(test_xlcfg_hvm),
		cmocka_unit_test(test_xlcfg_pvh_and_rounding),
		cmocka_unit_test(test_xlcfg_pv),
		cmocka_unit_test(test_xlcfg_refusals),
		cmocka_unit_test(test_libxl_config_hvm),
		cmocka_unit_test(test_libxl_config_pv),
		cmocka_unit_test(test_libxl_config_pvh_incoming),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
