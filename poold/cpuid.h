/*
 * cpuid.h - CPU feature sets and pool levelling (pure functions).
 *
 * A feature set is 32-bit words in Xen's featureset order, written as
 * 8 lower-case hex digits per word joined with '-' ("1fcbfbff-f7fa3223-...").
 * Shorter sets are zero-extended when compared. The pool level is the
 * bitwise AND of the hosts' sets; a VM may run on a host when the vendor
 * matches and the set it booted with is a subset of the host's.
 *
 * Conventions for every function here:
 * - No allocation, no globals, no I/O; all functions are reentrant.
 * - Word i is the i-th word of the text (0-based); bit b of a word is the
 *   bit of value (1u << b), so bit 0 is the least significant one.
 * - Every function that writes a struct cpuid_set also zeroes the words past
 *   cs_nwords, so two sets written here compare equal with memcmp when they
 *   are equal. Readers only look at the first cs_nwords words (clamped to
 *   0..CPUID_MAX_WORDS), so hand-built sets need not be cleared.
 * - An output set may be the same object as an input set.
 * - Text outputs (out/outlen, reason/reasonlen) are always NUL-terminated when
 *   the length is > 0 and are truncated, like snprintf, when too small;
 *   a NULL buffer or a length of 0 writes nothing.
 */
#ifndef CPUID_H
#define CPUID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CPUID_MAX_WORDS 32
/* Enough for any formatted set: 8 digits + "-" per word (287 chars at most),
 * plus the NUL, with one to spare (the size the original header asked for). */
#define CPUID_TEXT_MAX (9 * CPUID_MAX_WORDS + 1)

struct cpuid_set {
	uint32_t cs_words[CPUID_MAX_WORDS];
	int cs_nwords;
};

/* Parse; -1 for anything not of the form above (empty string = 0 words).
 * Each word is exactly 8 hex digits (upper-case digits accepted, so
 * "1FCBFBFF" parses; cpuid_format always writes lower case). Rejected, with
 * out left unchanged: NULL, any other digit count ("abc", "123456789"),
 * empty words ("1fcbfbff--00000000"), a leading or trailing '-', a lone "-",
 * non-hex characters, any whitespace (also around the text), "0x" prefixes,
 * and more than CPUID_MAX_WORDS words. Returns 0 on success. */
int cpuid_parse(const char *text, struct cpuid_set *out);
/* Write into out (size >= CPUID_TEXT_MAX = 9 * CPUID_MAX_WORDS + 1 for the
 * whole set; truncated otherwise). 0 words give "". */
void cpuid_format(const struct cpuid_set *s, char *out, size_t outlen);
/* a AND b, as long as the longer of the two (zero-extension: the words only
 * the longer set has become 0). */
void cpuid_and(const struct cpuid_set *a, const struct cpuid_set *b, struct cpuid_set *out);
/* true when every bit of vm is set in host (the shorter set zero-extended:
 * extra zero words on either side never matter; a non-zero word of vm past
 * the end of host is missing). missing (may be NULL) gets the bits vm has and
 * host lacks, with vm's length (all zero when the result is true). */
bool cpuid_subset(const struct cpuid_set *vm, const struct cpuid_set *host, struct cpuid_set *missing);
/* "word 1 bits 3,17; word 4 bit 0": the missing bits for an error message.
 * Words that are zero are left out; bits in increasing order. A set with no
 * bit gives "". */
void cpuid_describe(const struct cpuid_set *missing, char *out, size_t outlen);
/* true when the set has no bit set (whatever its length). */
bool cpuid_is_empty(const struct cpuid_set *s);

/* Can a VM booted with (vm_vendor, vm_set) run on (host_vendor, host_set)?
 * NULL when yes, else a reason for VM_INCOMPATIBLE_WITH_THIS_HOST
 * ("vendor AuthenticAMD differs from GenuineIntel", "the host lacks CPU
 * features: word 1 bit 5") written into reason. In the vendor message the
 * VM's vendor comes first, then the host's. The vendor is checked first.
 * As XAPI does with last_boot_CPU_flags, a NULL or empty vm_vendor skips the
 * vendor check and a NULL vm_set skips the feature check (a VM that never
 * booted can go anywhere). A NULL host_vendor/host_set counts as "" (no
 * vendor / no features). Unparsable sets are reported as incompatible:
 * "invalid VM CPU feature set" / "invalid host CPU feature set". When reason
 * is NULL or reasonlen is 0 the return is a static string ("incompatible"). */
const char *cpuid_check_vm(const char *vm_vendor, const char *vm_set, const char *host_vendor,
			   const char *host_set, char *reason, size_t reasonlen);

/* Pool levelling: the level of n hosts (their sets ANDed); -1 when vendors
 * differ (HOSTS_NOT_HOMOGENEOUS), with the reason written.
 * ch_name is optional (a uuid or name-label for messages); without it a host
 * is called "host <index>". The reason names both vendors and both hosts,
 * the first host being the reference:
 *   "host h5 has CPU vendor AuthenticAMD, host h0 has GenuineIntel".
 * Also -1 when n == 0 ("no hosts") or a host's set does not parse
 * ("host h2 has an invalid CPU feature set"); level is only written on
 * success. A NULL ch_vendor counts as "". */
struct cpuid_host {
	const char *ch_vendor;
	const char *ch_featureset;
	const char *ch_name; /* optional, may be NULL */
};
int cpuid_pool_level(const struct cpuid_host *hosts, size_t n, struct cpuid_set *level, char *reason,
		     size_t reasonlen);

/* Does joining host `joining` to the pool of `hosts` (n >= 1) lower the pool
 * level? Returns 1 when it does, 0 when the level stays the same, -1 when the
 * join is impossible (HOSTS_NOT_HOMOGENEOUS: vendor differs, or an invalid
 * set; the reason is written as for cpuid_pool_level with the joining host
 * compared to hosts[0]). On 0/1, new_level (may be NULL) gets the level after
 * the join (old level AND joining set, as long as the longer) and lost (may
 * be NULL) the bits the old level has and the joining host lacks (with the
 * old level's length; all zero when 0 is returned). A joining host with a
 * shorter set loses the non-zero words past its end (zero-extension). */
int cpuid_join_level(const struct cpuid_host *hosts, size_t n, const struct cpuid_host *joining,
		     struct cpuid_set *new_level, struct cpuid_set *lost, char *reason, size_t reasonlen);

/*
 * The join warning ("Before a join that would lower the pool level, say
 * which running VMs would no longer be able to move back to the hosts
 * already in the pool").
 *
 * Interpretation. A running VM keeps the CPU flags it booted with
 * (last_boot_CPU_flags) until it is rebooted; the pool level only decides
 * the flags of VMs started later. After a join that lowers the level:
 * - VMs started afterwards boot with the new, lower level, which every host
 *   (old and new) offers: they can move anywhere.
 * - A running VM booted with the old, higher level still fits every old host
 *   (each old host's set contains the old level), but the joining host lacks
 *   some of its flags: it cannot be migrated to (or evacuated onto, or be
 *   placed on) the joining host until it is rebooted. Such a VM is
 *   "stranded": it can no longer move freely across the whole pool. In
 *   particular no VM is ever stranded in the other direction: nothing booted
 *   with the old flags can be on the new host, and anything that later boots
 *   there gets the lower level, which the old hosts offer.
 * So the exact test is per VM against the joining host itself, not against
 * the new level: a VM is stranded iff cpuid_check_vm(its vendor, its set,
 * joining vendor, joining set) fails. This is also right for VMs whose flags
 * are not the old level (booted under an even older level, or brought in by
 * a cross-pool migration): they are only reported when the joining host
 * really lacks one of their flags. When the join does not lower the level
 * (cpuid_join_level() == 0) and every VM booted with the level or less,
 * nothing is stranded.
 *
 * The caller passes only the running (and paused/suspended-with-flags, if it
 * wishes) VMs; the function does not know power states.
 */
struct cpuid_vm {
	const char *cv_uuid;
	const char *cv_vendor;     /* last_boot_CPU_flags "vendor"; NULL/"" = unknown */
	const char *cv_featureset; /* last_boot_CPU_flags "features"; NULL = unknown */
};

enum cpuid_strand_why {
	CPUID_STRAND_FEATURES, /* the joining host lacks st_missing */
	CPUID_STRAND_VENDOR,   /* the VM booted on another CPU vendor */
	CPUID_STRAND_INVALID,  /* the VM's recorded feature set does not parse */
};

struct cpuid_stranded {
	size_t st_vm;               /* index into vms */
	const char *st_uuid;        /* vms[st_vm].cv_uuid */
	enum cpuid_strand_why st_why;
	struct cpuid_set st_missing; /* FEATURES: the VM's bits the joining host lacks;
				      * otherwise 0 words */
};

/* Which of the nvms VMs could not run on (be migrated to) the joining host
 * (join_vendor, join_set)? Returns how many are stranded; the first `cap` of
 * them, in the order of vms, are written to out (out may be NULL when cap is
 * 0, to count). -1 when join_set does not parse ("invalid joining host CPU
 * feature set" in reason). A VM with an unknown vendor skips the vendor
 * check, one with a NULL set the feature check, as in cpuid_check_vm. A
 * NULL join_vendor counts as "". */
int cpuid_join_stranded(const struct cpuid_vm *vms, size_t nvms, const char *join_vendor,
			const char *join_set, struct cpuid_stranded *out, size_t cap, char *reason,
			size_t reasonlen);

/* One line for the warning, e.g.
 *   "VM 1c3e...: the joining host lacks CPU features: word 1 bits 3,17"
 *   "VM 1c3e...: vendor AuthenticAMD differs from the joining host's GenuineIntel"
 *   "VM 1c3e...: invalid VM CPU feature set"
 * vm_vendor and join_vendor are only used for the vendor case (NULL counts as
 * ""; pass vms[st->st_vm].cv_vendor). A NULL st_uuid prints as
 * "vm <st_vm>". */
void cpuid_stranded_describe(const struct cpuid_stranded *st, const char *vm_vendor,
			     const char *join_vendor, char *out, size_t outlen);

#endif
