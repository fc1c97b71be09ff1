/* test_sxm.c - storage migration's pure decisions (poold/sxm.h): every
 * check alone with its XAPI error and parameters, every pair of refusals
 * in order, the space policy at its boundaries (factors, several disks per
 * SR, reservations of migrations in flight, destinations before sources),
 * the SRs' capabilities, admission and the journal's recovery rule
 * for every phase, place and flight. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "sxm.h"
#include "xerr.h"

#define G (1LL << 30)

/* A VM with two disks on local SR "a" moving to "b", one VIF: passes. */
struct fx {
	struct sxm_vdi vdis[3];
	struct sxm_vif vifs[2];
	struct sxm_sr srs[3];
	struct sxm_request rq;
};

static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof *f);
	f->vdis[0] = (struct sxm_vdi){.sv_ref = "OpaqueRef:d0", .sv_sr = "OpaqueRef:a", .sv_dest_sr = "OpaqueRef:b",
				      .sv_virtual_size = 2 * G};
	f->vdis[1] = (struct sxm_vdi){.sv_ref = "OpaqueRef:d1", .sv_sr = "OpaqueRef:a", .sv_dest_sr = "OpaqueRef:b",
				      .sv_virtual_size = 1 * G};
	f->vdis[2] = (struct sxm_vdi){.sv_ref = "OpaqueRef:iso", .sv_sr = "OpaqueRef:shared", .sv_read_only = true,
				      .sv_sr_on_dest = true};
	f->vifs[0] = (struct sxm_vif){.sf_ref = "OpaqueRef:vif0", .sf_net_on_dest = true};
	f->vifs[1] = (struct sxm_vif){.sf_ref = "OpaqueRef:vif1", .sf_mapped = true};
	f->srs[0] = (struct sxm_sr){"OpaqueRef:a", "file", 100 * G, 10 * G, 0};
	f->srs[1] = (struct sxm_sr){"OpaqueRef:b", "file", 100 * G, 10 * G, 0};
	f->srs[2] = (struct sxm_sr){"OpaqueRef:shared", "file", 100 * G, 10 * G, 0};
	f->rq = (struct sxm_request){f->vdis, 3, f->vifs, 2, f->srs, 3, 3.0, 2.0};
}

static void expect_err(json_t *e, const char *code, int nparams, ...)
{
	assert_non_null(e);
	assert_string_equal(xerr_code_of(e), code);
	assert_int_equal((int)json_array_size(e) - 1, nparams);
	va_list ap;
	va_start(ap, nparams);
	for (int i = 0; i < nparams; i++)
		assert_string_equal(json_string_value(json_array_get(e, (size_t)i + 1)), va_arg(ap, const char *));
	va_end(ap);
	json_decref(e);
}

static void test_passes(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	assert_null(sxm_check(&f.rq));
	/* a disk mapped to the SR it is on does not move, and needs nothing */
	f.vdis[0].sv_dest_sr = "OpaqueRef:a";
	f.vdis[0].sv_sr_on_dest = false;
	assert_false(sxm_vdi_moves(&f.vdis[0]));
	assert_true(sxm_vdi_moves(&f.vdis[1]));
	assert_null(sxm_check(&f.rq));
}

/* Each defect, named, applied to a passing fixture. */
enum defect { D_NOT_IN_MAP, D_VIF, D_BUSY, D_ON_BOOT, D_CBT, D_SRC_CAPS, D_DST_CAPS, D_FULL, D_SRC_SPACE, D_N };

static const char *const codes[D_N] = {
	"VDI_NOT_IN_MAP", "VIF_NOT_IN_MAP", "OTHER_OPERATION_IN_PROGRESS",
	"VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION", "VDI_CBT_ENABLED", "SR_DOES_NOT_SUPPORT_MIGRATION",
	"SR_DOES_NOT_SUPPORT_MIGRATION", "SR_FULL", "SR_SOURCE_SPACE_INSUFFICIENT",
};

static void apply(struct fx *f, enum defect d)
{
	switch (d) {
	case D_NOT_IN_MAP: f->vdis[2].sv_sr_on_dest = false; break;
	case D_VIF: f->vifs[0].sf_net_on_dest = false; break;
	case D_BUSY: f->vdis[1].sv_busy = true; break;
	case D_ON_BOOT: f->vdis[1].sv_on_boot_reset = true; break;
	case D_CBT: f->vdis[0].sv_cbt = true; break;
	case D_SRC_CAPS: f->srs[0].ss_type = "iso"; break;
	case D_DST_CAPS: f->srs[1].ss_type = "udev"; break;
	case D_FULL: f->srs[1].ss_utilisation = 100 * G - 9 * G + 1; break;	 /* needs 3 * 3 GiB */
	case D_SRC_SPACE: f->srs[0].ss_utilisation = 100 * G - 6 * G + 1; break; /* needs 2 * 3 GiB */
	default: break;
	}
}

static void test_each_alone(void **state)
{
	(void)state;
	char need[32], have[32];
	for (int d = 0; d < D_N; d++) {
		struct fx f;
		fx_init(&f);
		apply(&f, (enum defect)d);
		json_t *e = sxm_check(&f.rq);
		switch (d) {
		case D_NOT_IN_MAP: expect_err(e, codes[d], 1, "OpaqueRef:iso"); break;
		case D_VIF: expect_err(e, codes[d], 1, "OpaqueRef:vif0"); break;
		case D_BUSY: expect_err(e, codes[d], 2, "VDI", "OpaqueRef:d1"); break;
		case D_ON_BOOT: expect_err(e, codes[d], 1, "OpaqueRef:d1"); break;
		case D_CBT: expect_err(e, codes[d], 1, "OpaqueRef:d0"); break;
		case D_SRC_CAPS: expect_err(e, codes[d], 2, "OpaqueRef:a", "VDI_SNAPSHOT;VDI_MIRROR"); break;
		case D_DST_CAPS: expect_err(e, codes[d], 2, "OpaqueRef:b", "VDI_MIRROR_IN"); break;
		case D_FULL:
			snprintf(need, sizeof need, "%lld", 9 * G);
			snprintf(have, sizeof have, "%lld", 9 * G - 1);
			expect_err(e, codes[d], 3, need, have, "OpaqueRef:b");
			break;
		case D_SRC_SPACE:
			snprintf(need, sizeof need, "%lld", 6 * G);
			snprintf(have, sizeof have, "%lld", 6 * G - 1);
			expect_err(e, codes[d], 3, "OpaqueRef:a", need, have);
			break;
		}
	}
}

/* For every pair of defects, the one checked first wins. */
static void test_order(void **state)
{
	(void)state;
	for (int a = 0; a < D_N; a++)
		for (int b = a + 1; b < D_N; b++) {
			struct fx f;
			fx_init(&f);
			apply(&f, (enum defect)a);
			apply(&f, (enum defect)b);
			json_t *e = sxm_check(&f.rq);
			assert_non_null(e);
			if (strcmp(xerr_code_of(e), codes[a])) {
				fprintf(stderr, "defects %d and %d gave %s\n", a, b, xerr_code_of(e));
				fail();
			}
			/* the two caps defects share a code: the source SR is named first */
			if (a == D_SRC_CAPS)
				assert_string_equal(json_string_value(json_array_get(e, 1)), "OpaqueRef:a");
			json_decref(e);
		}
}

static void test_space_boundaries(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	/* exactly enough on both sides: passes, and the reservation is noted */
	f.srs[1].ss_utilisation = 100 * G - 9 * G;
	f.srs[0].ss_utilisation = 100 * G - 6 * G;
	json_t *res = json_object();
	assert_null(sxm_check_space(&f.rq, res));
	assert_int_equal(json_integer_value(json_object_get(res, "OpaqueRef:b")), 9 * G);
	assert_int_equal(json_integer_value(json_object_get(res, "OpaqueRef:a")), 6 * G);
	assert_null(json_object_get(res, "OpaqueRef:shared")); /* nothing moves there */
	/* a migration in flight reserved a byte: now one short */
	f.srs[1].ss_reserved = 1;
	char need[32], have[32];
	snprintf(need, sizeof need, "%lld", 9 * G);
	snprintf(have, sizeof have, "%lld", 9 * G - 1);
	expect_err(sxm_check_space(&f.rq, res), "SR_FULL", 3, need, have, "OpaqueRef:b");
	/* both short: the destination is named */
	f.srs[0].ss_reserved = 1;
	expect_err(sxm_check_space(&f.rq, NULL), "SR_FULL", 3, need, have, "OpaqueRef:b");
	f.srs[1].ss_reserved = 0;
	snprintf(need, sizeof need, "%lld", 6 * G);
	snprintf(have, sizeof have, "%lld", 6 * G - 1);
	expect_err(sxm_check_space(&f.rq, NULL), "SR_SOURCE_SPACE_INSUFFICIENT", 3, "OpaqueRef:a", need, have);
	json_decref(res);
}

static void test_space_factors_and_split(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	/* the disks go to two SRs: each needs only its own */
	f.vdis[1].sv_dest_sr = "OpaqueRef:shared";
	f.rq.rq_dest_factor = 1.5;
	f.rq.rq_source_factor = 0.5;
	json_t *res = json_object();
	assert_null(sxm_check_space(&f.rq, res));
	assert_int_equal(json_integer_value(json_object_get(res, "OpaqueRef:b")), 3 * G);
	assert_int_equal(json_integer_value(json_object_get(res, "OpaqueRef:shared")), 3 * G / 2);
	assert_int_equal(json_integer_value(json_object_get(res, "OpaqueRef:a")), 3 * G / 2);
	json_decref(res);
	/* a full SR, utilisation above the size: available is 0, not negative */
	f.srs[1].ss_utilisation = 200 * G;
	char need[32];
	snprintf(need, sizeof need, "%lld", 3 * G);
	expect_err(sxm_check_space(&f.rq, NULL), "SR_FULL", 3, need, "0", "OpaqueRef:b");
	/* factor 0: no room needed */
	f.rq.rq_dest_factor = 0;
	assert_null(sxm_check_space(&f.rq, NULL));
	/* a huge virtual size does not overflow */
	fx_init(&f);
	f.vdis[0].sv_virtual_size = INT64_MAX / 2;
	json_t *e = sxm_check_space(&f.rq, NULL);
	assert_string_equal(xerr_code_of(e), "SR_FULL");
	json_decref(e);
}

static void test_caps(void **state)
{
	(void)state;
	assert_string_equal(sxm_sr_missing_caps("file", true), "");
	assert_string_equal(sxm_sr_missing_caps("file", false), "");
	assert_string_equal(sxm_sr_missing_caps("iso", true), "VDI_SNAPSHOT;VDI_MIRROR");
	assert_string_equal(sxm_sr_missing_caps(NULL, false), "VDI_MIRROR_IN");
	/* an unknown SR (not in rq_srs) counts as one without the capabilities */
	struct fx f;
	fx_init(&f);
	f.rq.rq_nsrs = 1; /* "b" unknown */
	expect_err(sxm_check(&f.rq), "SR_DOES_NOT_SUPPORT_MIGRATION", 2, "OpaqueRef:b", "VDI_MIRROR_IN");
}

static void test_admit(void **state)
{
	(void)state;
	for (int limit = 0; limit <= 4; limit++)
		for (int running = 0; running <= 6; running++)
			for (int q = 0; q <= 1; q++) {
				enum sxm_admit a = sxm_admit(running, limit, q);
				int eff = limit > 0 ? limit : 1;
				if (running < eff)
					assert_int_equal(a, SXM_START);
				else
					assert_int_equal(a, q ? SXM_QUEUE : SXM_REFUSE);
			}
}

static void test_recover(void **state)
{
	(void)state;
	for (int p = SXM_PH_COPY; p <= SXM_PH_ROLLBACK; p++)
		for (int w = SXM_ON_SOURCE; w <= SXM_UNKNOWN; w++)
			for (int fl = 0; fl <= 1; fl++) {
				enum sxm_way way = sxm_recover((enum sxm_phase)p, (enum sxm_where)w, fl);
				enum sxm_way want;
				if (p == SXM_PH_COPY || p == SXM_PH_ROLLBACK)
					want = SXM_ROLL_BACK; /* nothing the VM uses changed */
				else if (p == SXM_PH_COMMITTED)
					want = SXM_ROLL_FORWARD; /* never delete after the commit */
				else if (fl || w == SXM_UNKNOWN)
					want = SXM_WAIT;
				else
					want = w == SXM_ON_DEST ? SXM_ROLL_FORWARD : SXM_ROLL_BACK;
				assert_int_equal(way, want);
			}
	for (int p = SXM_PH_COPY; p <= SXM_PH_ROLLBACK; p++)
		assert_int_equal(sxm_phase_from_name(sxm_phase_name((enum sxm_phase)p)), p);
	assert_int_equal(sxm_phase_from_name("nonsense"), -1);
	assert_int_equal(sxm_phase_from_name(NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_passes),
		cmocka_unit_test(test_each_alone),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_space_boundaries),
		cmocka_unit_test(test_space_factors_and_split),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_admit),
		cmocka_unit_test(test_recover),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
