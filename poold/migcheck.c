/* migcheck.c - the checks before a pool migration (see migcheck.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cpuid.h"
#include "migcheck.h"
#include "xerr.h"

int mig_version_cmp(const char *a, const char *b)
{
	while (*a || *b) {
		long x = strtol(a, (char **)&a, 10), y = strtol(b, (char **)&b, 10);
		if (x != y)
			return x < y ? -1 : 1;
		while (*a && !isdigit((unsigned char)*a))
			a++;
		while (*b && !isdigit((unsigned char)*b))
			b++;
	}
	return 0;
}

static bool has_sr(const struct mig_host *h, const char *sr)
{
	for (size_t i = 0; i < h->mh_nsrs; i++)
		if (strcmp(h->mh_srs[i], sr) == 0)
			return true;
	return false;
}

static char *lowered(const char *s, char *out, size_t n)
{
	snprintf(out, n, "%s", s ? s : "");
	for (char *p = out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return out;
}

json_t *mig_check(const struct mig_vm *vm, const struct mig_host *src, const struct mig_host *dst, bool force)
{
	char a[32], b[32];
	if (strcmp(vm->mv_power_state, "Running"))
		return xerr_new(XE_VM_BAD_POWER_STATE, vm->mv_ref, "running", lowered(vm->mv_power_state, a, sizeof a),
				NULL);
	if (vm->mv_nomigrate)
		return xerr_new(XE_VM_IS_IMMOBILE, vm->mv_ref, NULL);
	if (vm->mv_has_pci)
		return xerr_new(XE_VM_HAS_PCI_ATTACHED, vm->mv_ref, NULL);
	if (vm->mv_has_vusb)
		return xerr_new(XE_VM_HAS_VUSBS, vm->mv_ref, NULL);
	if (vm->mv_busy)
		return xerr_new(XE_OTHER_OPERATION_IN_PROGRESS, "VM", vm->mv_ref, NULL);
	if (strcmp(dst->mh_ref, vm->mv_resident_on) == 0)
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "VM %s already runs on host %s", vm->mv_ref, dst->mh_ref);
	if (!dst->mh_enabled)
		return xerr_new(XE_HOST_DISABLED, dst->mh_ref, NULL);
	if (dst->mh_evacuating)
		return xerr_new(XE_HOST_EVACUATE_IN_PROGRESS, dst->mh_ref, NULL);
	if (!dst->mh_live)
		return xerr_new(XE_HOST_NOT_LIVE, NULL);
	if (!dst->mh_has_agent)
		return xerr_new(XE_HOST_OFFLINE, dst->mh_ref, NULL);
	if (src && mig_version_cmp(dst->mh_version, src->mh_version) < 0)
		return xerr_new(XE_VM_HOST_INCOMPATIBLE_VERSION_MIGRATE, dst->mh_ref, vm->mv_ref, NULL);
	char reason[512];
	if (!force && cpuid_check_vm(vm->mv_boot_vendor, vm->mv_boot_features, dst->mh_vendor, dst->mh_features,
				     reason, sizeof reason))
		return xerr_new(XE_VM_INCOMPATIBLE_WITH_THIS_HOST, vm->mv_ref, dst->mh_ref, reason, NULL);
	if (vm->mv_memory > dst->mh_available) {
		snprintf(a, sizeof a, "%lld", (long long)vm->mv_memory);
		snprintf(b, sizeof b, "%lld", (long long)(dst->mh_available < 0 ? 0 : dst->mh_available));
		return xerr_new(XE_HOST_NOT_ENOUGH_FREE_MEMORY, a, b, NULL);
	}
	for (size_t i = 0; i < vm->mv_nsrs; i++)
		if (!has_sr(dst, vm->mv_srs[i]))
			return xerr_new(XE_VM_REQUIRES_SR, vm->mv_ref, vm->mv_srs[i], NULL);
	return NULL;
}
