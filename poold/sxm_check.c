/* sxm_check.c - storage migration's checks, space policy, admission and recovery rule (see sxm.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sxm.h"
#include "xerr.h"

static const char *nz(const char *s)
{
	return s ? s : "";
}

bool sxm_vdi_moves(const struct sxm_vdi *v)
{
	return v->sv_dest_sr && strcmp(v->sv_dest_sr, nz(v->sv_sr)) != 0;
}

const char *sxm_sr_missing_caps(const char *type, bool source)
{
	if (strcmp(nz(type), "file") == 0)
		return "";
	return source ? "VDI_SNAPSHOT;VDI_MIRROR" : "VDI_MIRROR_IN";
}

static const struct sxm_sr *sr_find(const struct sxm_request *rq, const char *ref)
{
	for (size_t i = 0; i < rq->rq_nsrs; i++)
		if (strcmp(nz(rq->rq_srs[i].ss_ref), nz(ref)) == 0)
			return &rq->rq_srs[i];
	return NULL;
}

/* The disk map and the VIF map. */
static json_t *check_maps(const struct sxm_request *rq)
{
	for (size_t i = 0; i < rq->rq_nvdis; i++) {
		const struct sxm_vdi *v = &rq->rq_vdis[i];
		if (!v->sv_dest_sr && !v->sv_sr_on_dest)
			return xerr_new(XE_VDI_NOT_IN_MAP, nz(v->sv_ref), NULL);
	}
	for (size_t i = 0; i < rq->rq_nvifs; i++) {
		const struct sxm_vif *f = &rq->rq_vifs[i];
		if (!f->sf_mapped && !f->sf_net_on_dest)
			return xerr_new(XE_VIF_NOT_IN_MAP, nz(f->sf_ref), NULL);
	}
	return NULL;
}

/* The moving disks one by one: busy, on_boot, CBT; then the SRs. */
static json_t *check_disks(const struct sxm_request *rq)
{
	for (size_t i = 0; i < rq->rq_nvdis; i++) {
		const struct sxm_vdi *v = &rq->rq_vdis[i];
		if (sxm_vdi_moves(v) && v->sv_busy)
			return xerr_new(XE_OTHER_OPERATION_IN_PROGRESS, "VDI", nz(v->sv_ref), NULL);
	}
	for (size_t i = 0; i < rq->rq_nvdis; i++) {
		const struct sxm_vdi *v = &rq->rq_vdis[i];
		if (sxm_vdi_moves(v) && v->sv_on_boot_reset)
			return xerr_new(XE_VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION, nz(v->sv_ref), NULL);
	}
	for (size_t i = 0; i < rq->rq_nvdis; i++) {
		const struct sxm_vdi *v = &rq->rq_vdis[i];
		if (sxm_vdi_moves(v) && v->sv_cbt)
			return xerr_new(XE_VDI_CBT_ENABLED, nz(v->sv_ref), NULL);
	}
	for (size_t i = 0; i < rq->rq_nvdis; i++) {
		const struct sxm_vdi *v = &rq->rq_vdis[i];
		if (!sxm_vdi_moves(v))
			continue;
		for (int src = 1; src >= 0; src--) {
			const char *ref = src ? v->sv_sr : v->sv_dest_sr;
			const struct sxm_sr *s = sr_find(rq, ref);
			const char *missing = sxm_sr_missing_caps(s ? s->ss_type : "", src);
			if (*missing)
				return xerr_new(XE_SR_DOES_NOT_SUPPORT_MIGRATION, nz(ref), missing, NULL);
		}
	}
	return NULL;
}

json_t *sxm_check_disks(const struct sxm_request *rq)
{
	json_t *e = check_maps(rq);
	return e ? e : check_disks(rq);
}

json_t *sxm_check(const struct sxm_request *rq)
{
	json_t *e = sxm_check_disks(rq);
	return e ? e : sxm_check_space(rq, NULL);
}

/* Bytes the moving disks need on sr: as a destination, or as a source. */
static int64_t needed_on(const struct sxm_request *rq, const char *sr, bool source)
{
	double sum = 0;
	for (size_t i = 0; i < rq->rq_nvdis; i++) {
		const struct sxm_vdi *v = &rq->rq_vdis[i];
		if (!sxm_vdi_moves(v) || strcmp(nz(source ? v->sv_sr : v->sv_dest_sr), nz(sr)))
			continue;
		sum += (double)(v->sv_virtual_size > 0 ? v->sv_virtual_size : 0);
	}
	double f = source ? rq->rq_source_factor : rq->rq_dest_factor;
	double n = ceil(sum * (f > 0 ? f : 0));
	return n > 9.0e18 ? INT64_MAX : (int64_t)n;
}

static int64_t available(const struct sxm_sr *s)
{
	int64_t a = s ? s->ss_physical_size - s->ss_utilisation - s->ss_reserved : 0;
	return a > 0 ? a : 0;
}

/* One side's SRs: the first that lacks room, or NULL (reserve noted). */
static json_t *space_side(const struct sxm_request *rq, bool source, json_t *reserve)
{
	for (size_t i = 0; i < rq->rq_nsrs; i++) {
		const struct sxm_sr *s = &rq->rq_srs[i];
		int64_t need = needed_on(rq, s->ss_ref, source), have = available(s);
		if (need == 0)
			continue;
		char n[32], a[32];
		snprintf(n, sizeof n, "%lld", (long long)need);
		snprintf(a, sizeof a, "%lld", (long long)have);
		if (need > have)
			return source ? xerr_new(XE_SR_SOURCE_SPACE_INSUFFICIENT, nz(s->ss_ref), n, a, NULL)
				      : xerr_new(XE_SR_FULL, n, a, nz(s->ss_ref), NULL);
		if (reserve) {
			json_int_t before = json_integer_value(json_object_get(reserve, nz(s->ss_ref)));
			json_object_set_new(reserve, nz(s->ss_ref), json_integer(before + need));
		}
	}
	return NULL;
}

json_t *sxm_check_space(const struct sxm_request *rq, json_t *reserve)
{
	json_t *e = space_side(rq, false, reserve);
	return e ? e : space_side(rq, true, reserve);
}

enum sxm_admit sxm_admit(int running, int limit, bool queue)
{
	if (running < (limit > 0 ? limit : 1))
		return SXM_START;
	return queue ? SXM_QUEUE : SXM_REFUSE;
}

static const char *const phase_names[] = {"copy", "memory", "committed", "rollback"};

const char *sxm_phase_name(enum sxm_phase p)
{
	return (unsigned)p < sizeof phase_names / sizeof phase_names[0] ? phase_names[p] : "?";
}

int sxm_phase_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof phase_names / sizeof phase_names[0]; i++)
		if (strcmp(phase_names[i], nz(name)) == 0)
			return (int)i;
	return -1;
}

enum sxm_way sxm_recover(enum sxm_phase phase, enum sxm_where where, bool in_flight)
{
	switch (phase) {
	case SXM_PH_COPY:
	case SXM_PH_ROLLBACK:
		return SXM_ROLL_BACK;
	case SXM_PH_COMMITTED:
		return SXM_ROLL_FORWARD;
	case SXM_PH_MEMORY:
		if (in_flight || where == SXM_UNKNOWN)
			return SXM_WAIT;
		return where == SXM_ON_DEST ? SXM_ROLL_FORWARD : SXM_ROLL_BACK;
	}
	return SXM_WAIT;
}
