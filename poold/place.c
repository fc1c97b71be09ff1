/* place.c - the placement checks, written once (see place.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "place.h"
#include "upgrade.h"
#include "xerr.h"

struct row {
	const char *r_name;
	enum xapi_err r_code;
	enum place_scope r_scope;
	unsigned r_ops, r_needs, r_skip;
};

static const struct row rows[PLACE__COUNT] = {
	[PLACE_OK] = {"OK", XE_INTERNAL_ERROR, PLACE_SCOPE_VM, 0, 0, 0},
#define ROW(name, code, scope, ops, needs, skip) \
	[PLACE_##name] = {#name, XE_##code, PLACE_SCOPE_##scope, (ops), (needs), (skip)},
	PLACE_CHECKS(ROW)
#undef ROW
};

static const char *nz(const char *s)
{
	return s ? s : "";
}

static bool valid(enum place_verdict v)
{
	return v > PLACE_OK && v < PLACE__COUNT;
}

enum xapi_err place_code(enum place_verdict v)
{
	return valid(v) ? rows[v].r_code : XE_INTERNAL_ERROR;
}

const char *place_verdict_name(enum place_verdict v)
{
	return v >= PLACE_OK && v < PLACE__COUNT ? rows[v].r_name : "?";
}

enum place_scope place_scope_of(enum place_verdict v)
{
	return valid(v) ? rows[v].r_scope : PLACE_SCOPE_VM;
}

bool place_applies(enum place_verdict v, unsigned flags)
{
	if (!valid(v))
		return false;
	const struct row *r = &rows[v];
	return (flags & r->r_ops) && (flags & r->r_needs) == r->r_needs && !(flags & r->r_skip);
}

int place_version_cmp(const char *a, const char *b)
{
	return upgrade_version_cmp(a, b);
}

static struct upgrade_ver ver_of(const struct place_host *h)
{
	return (struct upgrade_ver){h->ph_version, h->ph_platform};
}

static bool hw_refuses(const struct place_vm *vm, const struct place_host *dst)
{
	enum upgrade_hw fit = upgrade_hw_fit(vm->pv_hw_version, dst->ph_hw, dst->ph_nhw, NULL);
	return fit == UPGRADE_HW_TOO_OLD || fit == UPGRADE_HW_TOO_NEW;
}

size_t place_first_missing(const char *const *need, size_t nneed, const char *const *have, size_t nhave)
{
	for (size_t i = 0; i < nneed; i++) {
		size_t j = 0;
		while (j < nhave && strcmp(nz(have[j]), nz(need[i])))
			j++;
		if (j == nhave)
			return i;
	}
	return PLACE_NONE;
}

bool place_cpu_vendor_ok(const char *vm_vendor, const char *host_vendor)
{
	return !vm_vendor || !*vm_vendor || strcmp(vm_vendor, nz(host_vendor)) == 0;
}

bool place_cpu_fits(bool vendor_ok, enum place_cpu_kind vm_kind, const struct cpuid_set *vm_set, bool host_bad,
		    const struct cpuid_set *host_set)
{
	if (!vendor_ok || host_bad)
		return false;
	if (vm_kind == PLACE_CPU_ANY)
		return true;
	if (vm_kind == PLACE_CPU_BAD)
		return false;
	/* cpuid_subset() without its missing-bits set */
	int n = vm_set->cs_nwords < CPUID_MAX_WORDS ? vm_set->cs_nwords : CPUID_MAX_WORDS;
	int hn = host_set->cs_nwords < CPUID_MAX_WORDS ? host_set->cs_nwords : CPUID_MAX_WORDS;
	for (int i = 0; i < n; i++)
		if (vm_set->cs_words[i] & ~(i < hn ? host_set->cs_words[i] : 0))
			return false;
	return true;
}

/* The CPU rule on the texts: both sets parsed here, on the stack. */
static bool cpu_fits_text(const struct place_vm *vm, const struct place_host *h)
{
	struct cpuid_set vs, hs;
	bool host_bad = cpuid_parse(nz(h->ph_features), &hs) != 0;
	enum place_cpu_kind k = PLACE_CPU_ANY;
	if (vm->pv_boot_features)
		k = cpuid_parse(vm->pv_boot_features, &vs) ? PLACE_CPU_BAD : PLACE_CPU_SET;
	return place_cpu_fits(place_cpu_vendor_ok(vm->pv_boot_vendor, h->ph_vendor), k, &vs, host_bad, &hs);
}

static const char *power_wanted(unsigned flags)
{
	return flags & PLACE_RESUME ? "Suspended" : flags & PLACE_START ? "Halted" : "Running";
}

bool place_fails(enum place_verdict v, const struct place_vm *vm, const struct place_host *src,
		 const struct place_host *dst, unsigned flags)
{
	switch (v) {
	case PLACE_TEMPLATE:
		return vm->pv_template;
	case PLACE_POWER:
		return strcmp(nz(vm->pv_power_state), power_wanted(flags)) != 0;
	case PLACE_IMMOBILE:
		return vm->pv_nomigrate;
	case PLACE_PCI:
		return vm->pv_has_pci;
	case PLACE_VUSB:
		return vm->pv_has_vusb;
	case PLACE_BUSY:
		return vm->pv_busy;
	case PLACE_SAME_HOST:
		return strcmp(nz(dst->ph_ref), nz(vm->pv_resident_on)) == 0;
	case PLACE_VERSION: {
		struct upgrade_ver d = ver_of(dst), s = src ? ver_of(src) : d;
		return src && !upgrade_not_older(&d, &s);
	}
	case PLACE_NEWEST:
		return dst->ph_upgrade_behind;
	case PLACE_EVACUATING:
		return dst->ph_evacuating;
	case PLACE_NOT_LIVE:
		return !dst->ph_live;
	case PLACE_OFFLINE: /* for a start, not live counts as unreachable too */
		return !dst->ph_live || !dst->ph_has_agent;
	case PLACE_DISABLED:
		return !dst->ph_enabled;
	case PLACE_HW_PLATFORM:
		return hw_refuses(vm, dst);
	case PLACE_CPU:
		return !cpu_fits_text(vm, dst);
	case PLACE_SR:
		return place_first_missing(vm->pv_srs, vm->pv_nsrs, dst->ph_srs, dst->ph_nsrs) != PLACE_NONE;
	case PLACE_NETWORK:
		return place_first_missing(vm->pv_networks, vm->pv_nnetworks, dst->ph_networks, dst->ph_nnetworks) !=
		       PLACE_NONE;
	case PLACE_MEMORY:
		return vm->pv_memory > dst->ph_available;
	case PLACE_HA_PLAN:
		return dst->ph_ha && dst->ph_ha->pa_admits && !dst->ph_ha->pa_admits(dst->ph_ha, vm, src, dst);
	default:
		return false;
	}
}

enum place_verdict place_check(const struct place_vm *vm, const struct place_host *src,
			       const struct place_host *dst, unsigned flags)
{
	for (int v = PLACE_OK + 1; v < PLACE__COUNT; v++)
		if (place_applies(v, flags) && place_fails(v, vm, src, dst, flags))
			return v;
	return PLACE_OK;
}

static char *lowered(const char *s, char *out, size_t n)
{
	snprintf(out, n, "%s", nz(s));
	for (char *p = out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return out;
}

static json_t *missing_error(enum place_verdict v, const struct place_vm *vm, const struct place_host *dst)
{
	bool sr = v == PLACE_SR;
	const char *const *need = sr ? vm->pv_srs : vm->pv_networks;
	size_t i = sr ? place_first_missing(vm->pv_srs, vm->pv_nsrs, dst->ph_srs, dst->ph_nsrs)
		      : place_first_missing(vm->pv_networks, vm->pv_nnetworks, dst->ph_networks, dst->ph_nnetworks);
	return xerr_new(place_code(v), nz(vm->pv_ref), i == PLACE_NONE ? "" : nz(need[i]), NULL);
}

json_t *place_error(enum place_verdict v, const struct place_vm *vm, const struct place_host *src,
		    const struct place_host *dst, unsigned flags)
{
	(void)src;
	char a[32], b[32], reason_buf[256];
	enum xapi_err code = place_code(v);
	switch (v) {
	case PLACE_OK:
		return NULL;
	case PLACE_POWER:
		return xerr_new(code, nz(vm->pv_ref),
				flags & PLACE_RESUME ? "suspended" : flags & PLACE_START ? "halted" : "running",
				lowered(vm->pv_power_state, a, sizeof a), NULL);
	case PLACE_TEMPLATE:
	case PLACE_IMMOBILE:
	case PLACE_PCI:
	case PLACE_VUSB:
		return xerr_new(code, nz(vm->pv_ref), NULL);
	case PLACE_BUSY:
		return xerr_new(code, "VM", nz(vm->pv_ref), NULL);
	case PLACE_SAME_HOST:
		return xerr_newf(code, "VM %s already runs on host %s", nz(vm->pv_ref), nz(dst->ph_ref));
	case PLACE_VERSION:
		return xerr_new(code, nz(dst->ph_ref), nz(vm->pv_ref), NULL);
	case PLACE_NOT_LIVE:
	case PLACE_HA_PLAN:
		return xerr_new(code, NULL);
	case PLACE_EVACUATING:
	case PLACE_OFFLINE:
	case PLACE_DISABLED:
		return xerr_new(code, nz(dst->ph_ref), NULL);
	case PLACE_NEWEST:
		snprintf(reason_buf, sizeof reason_buf,
			 "the pool is being upgraded: VMs %s only on the hosts of the newest version, and %s is not one",
			 flags & PLACE_RESUME ? "resume" : "start", nz(dst->ph_ref));
		return xerr_new(code, flags & PLACE_RESUME ? "VM.resume" : "VM.start", reason_buf, NULL);
	case PLACE_HW_PLATFORM: {
		char set[256], have[32];
		upgrade_hw_text(dst->ph_hw, dst->ph_nhw, set, sizeof set);
		snprintf(have, sizeof have, "%lld", (long long)vm->pv_hw_version);
		return xerr_new(code, nz(dst->ph_ref), set, nz(vm->pv_ref), have, NULL);
	}
	case PLACE_CPU: {
		char reason[512];
		const char *r = cpuid_check_vm(vm->pv_boot_vendor, vm->pv_boot_features, dst->ph_vendor,
					       dst->ph_features, reason, sizeof reason);
		return xerr_new(code, nz(vm->pv_ref), nz(dst->ph_ref), r ? r : "incompatible", NULL);
	}
	case PLACE_SR:
	case PLACE_NETWORK:
		return missing_error(v, vm, dst);
	case PLACE_MEMORY:
		snprintf(a, sizeof a, "%lld", (long long)vm->pv_memory);
		snprintf(b, sizeof b, "%lld", (long long)(dst->ph_available < 0 ? 0 : dst->ph_available));
		return xerr_new(code, a, b, NULL);
	default:
		return xerr_newf(XE_INTERNAL_ERROR, "place: no error for verdict %d", (int)v);
	}
}

json_t *place_assert(const struct place_vm *vm, const struct place_host *src, const struct place_host *dst,
		     unsigned flags)
{
	return place_error(place_check(vm, src, dst, flags), vm, src, dst, flags);
}
