/*
 * xen_cpuid.h - CPU levelling for Xen guests (pure; no Xen headers).
 *
 * A pool's feature set (XAPI text, 32-bit words in Xen's featureset order,
 * see REQUIREMENTS.md "CPU feature sets") becomes the cpuid policy a guest
 * boots with: one libxl "xend" string per CPUID leaf, the form xl.cfg's
 * `cpuid = [ "0x00000001:ecx=...,edx=..." ]` and
 * libxl_cpuid_parse_config_xend() take. Each register is 32 characters,
 * bit 31 first: 'x' = keep what Xen's default policy gives (the pool has
 * the feature), '0' = hide it (some host of the pool lacks it).
 *
 * Xen's special ("!") bits are always 'x': they are not features but state
 * Xen computes per guest (APIC, HTT, OSXSAVE, HYPERVISOR, CMP_LEGACY, OSPKE)
 * or inverted "anti-features" (FDP_EXCP_ONLY, NO_FPU_SEL), and hiding them
 * would break guests rather than level them.
 *
 * Words Xen 4.17 defines (0..13) are mapped; words past them (a newer
 * host's) are ignored: no leaf to put them in here.
 *
 * Only leaves where the host's own default set for the guest has a feature
 * the pool lacks get a string: the masks only hide, so other leaves need
 * none, and a string for a leaf the host's policy does not have at all
 * (leaf 7 subleaf 1 on an older CPU) makes libxl refuse to build the
 * domain ("Missing leaf 0x7, subleaf 0x1", seen on a real Xen 4.17).
 */
#ifndef XEN_CPUID_H
#define XEN_CPUID_H

#include <stddef.h>
#include <stdint.h>

#define XEN_CPUID_NWORDS 14	   /* featureset words Xen 4.17 defines */
#define XEN_CPUID_MAX_STRS 10	   /* distinct (leaf, subleaf) among them */
#define XEN_CPUID_STR_LEN 160	   /* "0x80000001:ecx=<32>,edx=<32>" and longer */
#define XEN_CPUID_NO_SUBLEAF 0xffffffffu

/* Where featureset word i comes from. */
struct xen_cpuid_word {
	uint32_t cw_leaf;
	uint32_t cw_subleaf; /* XEN_CPUID_NO_SUBLEAF: the leaf has none */
	char cw_reg;	     /* 'a' 'b' 'c' 'd' for eax..edx */
};
extern const struct xen_cpuid_word xen_cpuid_words[XEN_CPUID_NWORDS];

/* Bits of word i that are always 'x' (Xen's special bits, see above). */
uint32_t xen_cpuid_dynamic_bits(int word);

/* featureset (the pool's) -> strings, in the order of their first word
 * (leaf 1 first). host is the feature set this host gives such a guest by
 * default (Xen's PV or HVM default policy); NULL = a host with every
 * feature (a string for every leaf the pool's set reaches). Returns how
 * many were written (0 for ""), or -1 with a reason in err when a feature
 * set is malformed or max is too small. */
int xen_cpuid_masks(const char *featureset, const char *host, char out[][XEN_CPUID_STR_LEN], int max, char *err,
		    size_t errlen);

#endif
