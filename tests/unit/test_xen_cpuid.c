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
	int n = xen_cpuid_masks(FS, out, XEN_CPUID_MAX_STRS, err, sizeof err);
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
	assert_int_equal(xen_cpuid_masks("00000001-00000000", out, XEN_CPUID_MAX_STRS, err, sizeof err), 1);
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
	char fs[20 * 9 + 1] = "";
	for (int i = 0; i < 20; i++) /* 20 words: 6 past what Xen 4.17 defines */
		snprintf(fs + strlen(fs), sizeof fs - strlen(fs), "%sffffffff", i ? "-" : "");
	char out[XEN_CPUID_MAX_STRS][XEN_CPUID_STR_LEN], err[256];
	int n = xen_cpuid_masks(fs, out, XEN_CPUID_MAX_STRS, err, sizeof err);
	assert_int_equal(n, 9); /* 14 words in 9 (leaf, subleaf) */
	for (int i = 0; i < n; i++) /* all features present: nothing hidden */
		assert_null(strchr(strchr(out[i], ':'), '0'));
	assert_non_null(strstr(out[8], "0x00000007,2:edx=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
	int seven0 = -1;
	for (int i = 0; i < n; i++)
		if (strncmp(out[i], "0x00000007,0:", 13) == 0)
			seven0 = i;
	assert_true(seven0 >= 0);
	assert_non_null(strstr(out[seven0], ",edx=")); /* word 9 joined leaf 7.0 */
	/* too small an output */
	assert_int_equal(xen_cpuid_masks(fs, out, 3, err, sizeof err), -1);
	assert_non_null(strstr(err, "too many"));
}

static void test_empty_and_malformed(void **state)
{
	(void)state;
	char out[XEN_CPUID_MAX_STRS][XEN_CPUID_STR_LEN], err[256] = "";
	assert_int_equal(xen_cpuid_masks("", out, XEN_CPUID_MAX_STRS, err, sizeof err), 0);
	assert_int_equal(xen_cpuid_masks("1fcbfbff-xyz", out, XEN_CPUID_MAX_STRS, err, sizeof err), -1);
	assert_non_null(strstr(err, "malformed"));
	assert_int_equal(xen_cpuid_masks("1fcbfbf", out, XEN_CPUID_MAX_STRS, err, sizeof err), -1);
	assert_int_equal(xen_cpuid_masks(NULL, out, XEN_CPUID_MAX_STRS, err, sizeof err), -1);
}

static void test_libxl_accepts(void **state)
{
	(void)state;
#ifdef HAVE_XEN
	char out[XEN_CPUID_MAX_STRS][XEN_CPUID_STR_LEN], err[256];
	int n = xen_cpuid_masks(FS "-ffffffff-00000000-ffffffff-0000ffff-12345678", out, XEN_CPUID_MAX_STRS, err,
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
		cmocka_unit_test(test_empty_and_malformed),
		cmocka_unit_test(test_libxl_accepts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
