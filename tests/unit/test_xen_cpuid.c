/* test_xen_cpuid.c - pool feature set -> libxl xend cpuid masks
 * (agent/xen_cpuid.c): the leaf/register of each word, the bit order
 * (bit 31 first), Xen's special bits kept, malformed sets refused. With
 * libxen-dev, libxl itself must accept every string. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "xen_cpuid.h"
#ifdef HAVE_XEN
#include <libxl.h>
#endif

#define FS "1fcbfbff-f7fa3223-2d93fbff-00000023-00000001-000007ab-00000000-00000000-001000c8"

/* The 32-character mask of word w's bits, computed by hand. */
static void expect_mask(uint32_t w, uint32_t dyn, char out[33])
{
	for (int j = 0; j < 32; j++)
		out[j] = ((w | dyn) >> (31 - j)) & 1 ? 'x' : '0';
	out[32] = 0;
}

static void test_sample_set(void **state)
{
	(void)state;
	char out[XEN_CPUID_MAX_STRS][XEN_CPUID_STR_LEN], err[256] = "";
	int n = xen_cpuid_masks(FS, NULL, out, XEN_CPUID_MAX_STRS, err, sizeof err);
	/* 9 words: leaf 1, e1, Da1, 7.0, e7, e8 */
	assert_int_equal(n, 6);
	char m0[33], m1[33], want[200];
	expect_mask(0x1fcbfbff, 1u << 9 | 1u << 28, m0);
	expect_mask(0xf7fa3223, 1u << 27 | 1u << 31, m1);
	snprintf(want, sizeof want, "0x00000001:ecx=%s,edx=%s", m1, m0);
	assert_string_equal(out[0], want);
	assert_true(strncmp(out[1], "0x80000001:ecx=", 15) == 0);
	assert_true(strncmp(out[2], "0x0000000d,1:eax=", 17) == 0);
	/* words 5 and 6 (7.0 ebx, ecx) share one string; 9 (edx) is beyond this set */
	char m5[33], m6[33];
	expect_mask(0x000007ab, 1u << 6 | 1u << 13, m5);
	expect_mask(0, 1u << 4, m6);
	snprintf(want, sizeof want, "0x00000007,0:ebx=%s,ecx=%s", m5, m6);
	assert_string_equal(out[3], want);
	assert_true(strncmp(out[4], "0x80000007:edx=", 15) == 0);
	char m8[33];
	expect_mask(0x001000c8, 0, m8);
	snprintf(want, sizeof want, "0x80000008:ebx=%s", m8);
	assert_string_equal(out[5], want);
}

static void test_bit_order(void **state)
{
	(void)state;
	char out[XEN_CPUID_MAX_STRS][XEN_CPUID_STR_LEN], err[256];
	/* word 0 = only bit 0 (FPU); word 1 = 0: HYPERVISOR(31) and OSXSAVE(27) still 'x' */
	assert_int_equal(xen_cpuid_masks("00000001-00000000", NULL, out, XEN_CPUID_MAX_STRS, err, sizeof err), 1);
	const char *p = strstr(out[0], "edx=");
	assert_non_null(p);
	p += 4;
	assert_int_equal(p[31], 'x'); /* bit 0 is the last character */
	assert_int_equal(p[31 - 9], 'x'); /* APIC: special */
	assert_int_equal(p[31 - 28], 'x'); /* HTT: special */
	assert_int_equal(p[0], '0');
	const char *c = strstr(out[0], "ecx=") + 4;
	assert_int_equal(c[0], 'x');	   /* HYPERVISOR */
	assert_int_equal(c[31 - 27], 'x'); /* OSXSAVE */
	assert_int_equal(c[31], '0');	   /* SSE3 hidden */
}

static void test_all_words_and_beyond(void **state)
{
	(void)state;
	char fs[20 * 9 + 1] = "", all[20 * 9 + 1] = "";
	for (int i = 0; i < 20; i++) { /* 20 words: 6 past what Xen 4.17 defines */
		snprintf(fs + strlen(fs), sizeof fs - strlen(fs), "%s00000000", i ? "-" : "");
		snprintf(all + strlen(all), sizeof all - strlen(all), "%sffffffff", i ? "-" : "");
	}
	char out[XEN_CPUID_MAX_STRS][XEN_CPUID_STR_LEN], err[256];
	/* a pool with every feature hides nothing: no string at all */
	assert_int_equal(xen_cpuid_masks(all, NULL, out, XEN_CPUID_MAX_STRS, err, sizeof err), 0);
	/* a pool with none, on a host with all: every leaf, everything but Xen's special bits hidden */
	int n = xen_cpuid_masks(fs, NULL, out, XEN_CPUID_MAX_STRS, err, sizeof err);
	assert_int_equal(n, 9); /* 14 words in 9 (leaf, subleaf) */
	for (int i = 0; i < n; i++)
		assert_null(strchr(strchr(out[i], ':'), '1'));
	assert_non_null(strstr(out[8], "0x00000007,2:edx=00000000000000000000000000000000"));
	int seven0 = -1;
	for (int i = 0; i < n; i++)
		if (strncmp(out[i], "0x00000007,0:", 13) == 0)
			seven0 = i;
	assert_true(seven0 >= 0);
	assert_non_null(strstr(out[seven0], ",edx=")); /* word 9 joined leaf 7.0 */
	/* too small an output */
	assert_int_equal(xen_cpuid_masks(fs, NULL, out, 3, err, sizeof err), -1);
	assert_non_null(strstr(err, "too many"));
}

/* Only leaves where this host has a feature the pool lacks get a string: a
 * leaf the host's policy lacks (all zero in its set) never does (libxl
 * refuses to build a domain with a mask for a leaf its policy has not). */
static void test_host_leaves_only(void **state)
{
	(void)state;
	char out[XEN_CPUID_MAX_STRS][XEN_CPUID_STR_LEN], err[256] = "";
	/* Xen 4.17's PV default set on the nested test's QEMU CPU: no leaf 7.1, 7.2 */
	const char *host = "1fc9c3f5-f6d83203-e8500800-00000063-00000005-01880329-00000200-00000000-00000000-"
			   "00000000-00000000-00000004-00000000-00000000";
	assert_int_equal(xen_cpuid_masks(host, host, out, XEN_CPUID_MAX_STRS, err, sizeof err), 0);
	/* the pool lacks SSE3 (1.ecx bit 0) and a 7.0 ebx bit: those two leaves only */
	const char *pool = "1fc9c3f5-f6d83202-e8500800-00000063-00000005-01880328-00000200-00000000-00000000-"
			   "00000000-00000000-00000000-00000000-00000000";
	int n = xen_cpuid_masks(pool, host, out, XEN_CPUID_MAX_STRS, err, sizeof err);
	assert_int_equal(n, 3); /* leaf 1, 7.0 and e21a (word 11: the pool lacks bit 2) */
	assert_true(strncmp(out[0], "0x00000001:", 11) == 0);
	assert_true(strncmp(out[1], "0x00000007,0:", 13) == 0);
	assert_true(strncmp(out[2], "0x80000021:", 11) == 0);
	for (int i = 0; i < n; i++)
		assert_null(strstr(out[i], "0x00000007,1:"));
	/* a host feature the pool lacks only in Xen's special bits needs no string */
	assert_int_equal(xen_cpuid_masks("00000000", "10000200", out, XEN_CPUID_MAX_STRS, err, sizeof err), 0);
	/* a host set shorter than the pool's: the missing words are features it has not */
	assert_int_equal(xen_cpuid_masks("00000000-00000000", "00000001", out, XEN_CPUID_MAX_STRS, err, sizeof err), 1);
	assert_int_equal(xen_cpuid_masks(pool, "zz", out, XEN_CPUID_MAX_STRS, err, sizeof err), -1);
	assert_non_null(strstr(err, "malformed"));
}

static void test_empty_and_malformed(void **state)
{
	(void)state;
	char out[XEN_CPUID_MAX_STRS][XEN_CPUID_STR_LEN], err[256] = "";
	assert_int_equal(xen_cpuid_masks("", NULL, out, XEN_CPUID_MAX_STRS, err, sizeof err), 0);
	assert_int_equal(xen_cpuid_masks("1fcbfbff-xyz", NULL, out, XEN_CPUID_MAX_STRS, err, sizeof err), -1);
	assert_non_null(strstr(err, "malformed"));
	assert_int_equal(xen_cpuid_masks("1fcbfbf", NULL, out, XEN_CPUID_MAX_STRS, err, sizeof err), -1);
	assert_int_equal(xen_cpuid_masks(NULL, NULL, out, XEN_CPUID_MAX_STRS, err, sizeof err), -1);
}

static void test_libxl_accepts(void **state)
{
	(void)state;
#ifdef HAVE_XEN
	char out[XEN_CPUID_MAX_STRS][XEN_CPUID_STR_LEN], err[256];
	int n = xen_cpuid_masks(FS "-ffffffff-00000000-ffffffff-0000ffff-12345678", NULL, out, XEN_CPUID_MAX_STRS, err,
				sizeof err);
	assert_true(n > 0);
	libxl_cpuid_policy_list pl = NULL;
	for (int i = 0; i < n; i++)
		assert_int_equal(libxl_cpuid_parse_config_xend(&pl, out[i]), 0);
	libxl_cpuid_dispose(&pl);
#else
	skip();
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sample_set),
		cmocka_unit_test(test_bit_order),
		cmocka_unit_test(test_all_words_and_beyond),
		cmocka_unit_test(test_host_leaves_only),
		cmocka_unit_test(test_empty_and_malformed),
		cmocka_unit_test(test_libxl_accepts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
