/*
 * xen_cpuid.c - pool feature set -> libxl xend-style cpuid masks (see
 * xen_cpuid.h). Pure: used by the xen backend at domain build and by the
 * xl.cfg renderer, tested in tests/unit/test_xen_cpuid.c.
 */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "xen_cpuid.h"

/* Xen 4.17 xen/include/public/arch-x86/cpufeatureset.h, word by word. */
const struct xen_cpuid_word xen_cpuid_words[XEN_CPUID_NWORDS] = {
	{0x00000001, XEN_CPUID_NO_SUBLEAF, 'd'}, /* 0: 1.edx */
	{0x00000001, XEN_CPUID_NO_SUBLEAF, 'c'}, /* 1: 1.ecx */
	{0x80000001, XEN_CPUID_NO_SUBLEAF, 'd'}, /* 2: e1d */
	{0x80000001, XEN_CPUID_NO_SUBLEAF, 'c'}, /* 3: e1c */
	{0x0000000d, 1, 'a'},			 /* 4: Da1 (XSAVE features) */
	{0x00000007, 0, 'b'},			 /* 5: 7b0 */
	{0x00000007, 0, 'c'},			 /* 6: 7c0 */
	{0x80000007, XEN_CPUID_NO_SUBLEAF, 'd'}, /* 7: e7d */
	{0x80000008, XEN_CPUID_NO_SUBLEAF, 'b'}, /* 8: e8b */
	{0x00000007, 0, 'd'},			 /* 9: 7d0 */
	{0x00000007, 1, 'a'},			 /* 10: 7a1 */
	{0x80000021, XEN_CPUID_NO_SUBLEAF, 'a'}, /* 11: e21a */
	{0x00000007, 1, 'b'},			 /* 12: 7b1 */
	{0x00000007, 2, 'd'},			 /* 13: 7d2 */
};

uint32_t xen_cpuid_dynamic_bits(int word)
{
	switch (word) {
	case 0: return 1u << 9 | 1u << 28;		/* APIC, HTT */
	case 1: return 1u << 27 | 1u << 31;		/* OSXSAVE, HYPERVISOR */
	case 3: return 1u << 1;				/* CMP_LEGACY */
	case 5: return 1u << 6 | 1u << 13;		/* FDP_EXCP_ONLY, NO_FPU_SEL */
	case 6: return 1u << 4;				/* OSPKE */
	default: return 0;
	}
}

static void reg_mask(uint32_t have, uint32_t dynamic, char out[33])
{
	for (int j = 0; j < 32; j++) {
		uint32_t bit = 1u << (31 - j);
		out[j] = (have & bit) || (dynamic & bit) ? 'x' : '0';
	}
	out[32] = 0;
}

static int parse(const char *fs, uint32_t w[64], char *err, size_t errlen)
{
	int n = be_featureset_parse(fs, w, 64);
	if (n < 0)
		snprintf(err, errlen, "feature set '%.64s' is malformed: expected 8-digit hex words joined "
				      "with '-'", fs ? fs : "(null)");
	return n;
}

/* Does any word of leaf/subleaf i (among the first n) have a host feature the pool lacks? */
static bool leaf_hides(int i, int n, const uint32_t *pool, const uint32_t *host)
{
	const struct xen_cpuid_word *lw = &xen_cpuid_words[i];
	for (int k = i; k < n; k++) {
		const struct xen_cpuid_word *kw = &xen_cpuid_words[k];
		if (kw->cw_leaf == lw->cw_leaf && kw->cw_subleaf == lw->cw_subleaf &&
		    (host[k] & ~pool[k] & ~xen_cpuid_dynamic_bits(k)) != 0)
			return true;
	}
	return false;
}

int xen_cpuid_masks(const char *featureset, const char *host, char out[][XEN_CPUID_STR_LEN], int max, char *err,
		    size_t errlen)
{
	uint32_t w[64], h[64];
	int n = parse(featureset, w, err, errlen);
	if (n < 0)
		return -1;
	if (n > XEN_CPUID_NWORDS)
		n = XEN_CPUID_NWORDS;
	memset(h, host ? 0 : 0xff, sizeof h);
	if (host && parse(host, h, err, errlen) < 0)
		return -1;
	bool done[XEN_CPUID_NWORDS] = {false};
	int count = 0;
	for (int i = 0; i < n; i++) {
		if (done[i])
			continue;
		if (!leaf_hides(i, n, w, h)) {
			for (int k = i; k < n; k++)
				if (xen_cpuid_words[k].cw_leaf == xen_cpuid_words[i].cw_leaf &&
				    xen_cpuid_words[k].cw_subleaf == xen_cpuid_words[i].cw_subleaf)
					done[k] = true;
			continue;
		}
		const struct xen_cpuid_word *lw = &xen_cpuid_words[i];
		/* every word of the same leaf/subleaf goes into this one string, eax..edx */
		char regs[4][33] = {"", "", "", ""};
		for (int k = i; k < n; k++) {
			const struct xen_cpuid_word *kw = &xen_cpuid_words[k];
			if (kw->cw_leaf != lw->cw_leaf || kw->cw_subleaf != lw->cw_subleaf)
				continue;
			reg_mask(w[k], xen_cpuid_dynamic_bits(k), regs[kw->cw_reg - 'a']);
			done[k] = true;
		}
		if (count >= max) {
			snprintf(err, errlen, "too many cpuid leaves for the output (%d)", max);
			return -1;
		}
		char *s = out[count++];
		int len = lw->cw_subleaf == XEN_CPUID_NO_SUBLEAF
				  ? snprintf(s, XEN_CPUID_STR_LEN, "0x%08x:", lw->cw_leaf)
				  : snprintf(s, XEN_CPUID_STR_LEN, "0x%08x,%u:", lw->cw_leaf, lw->cw_subleaf);
		bool first = true;
		for (int r = 0; r < 4; r++) {
			if (!regs[r][0])
				continue;
			len += snprintf(s + len, XEN_CPUID_STR_LEN - (size_t)len, "%se%cx=%s", first ? "" : ",",
					'a' + r, regs[r]);
			first = false;
		}
	}
	return count;
}
