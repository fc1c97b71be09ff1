/* test_evacplan.c - the evacuation planner: targets, packing, spreading,
 * anti-affinity, every refusal with its numbers, determinism, and
 * get_vms_which_prevent_evacuation. (The checks themselves, the pick with
 * excluded hosts and the agreement of every caller's verdict: test_place.c.) */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "evacplan.h"
#include "xerr.h"

#define G (1LL << 30)
#define LEVEL "1fcbfbff-f7fa3223-2d93fbff-00000023"
#define LOWER "1fcbfbff-f7fa3223-2d93fbff-00000003" /* lacks word 3 bit 5 */
#define MAXH 256
#define MAXV 2100

static const char *const sr1[] = {"OpaqueRef:sr1"};
static const char *const sr12[] = {"OpaqueRef:sr1", "OpaqueRef:sr2"};
static const char *const sr2only[] = {"OpaqueRef:sr2"};
static const char *const net_a[] = {"OpaqueRef:netA"};
static const char *const net_ab[] = {"OpaqueRef:netA", "OpaqueRef:netB"};

struct fx {
	struct place_host src;
	struct place_host h[MAXH];
	struct place_vm v[MAXV];
	char href[MAXH][48], vref[MAXV][48];
	struct place_pool s;
};

static struct fx *fx_new(size_t nh, size_t nv, int64_t host_avail, int64_t vm_mem)
{
	struct fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->src = (struct place_host){.ph_ref = "OpaqueRef:src", .ph_enabled = true, .ph_live = true,
				     .ph_has_agent = true, .ph_evacuating = true, .ph_vendor = "GenuineIntel",
				     .ph_features = LEVEL, .ph_version = "1.2.0", .ph_srs = sr12, .ph_nsrs = 2};
	for (size_t i = 0; i < nh; i++) {
		snprintf(f->href[i], sizeof f->href[i], "OpaqueRef:h%03zu", i);
		f->h[i] = (struct place_host){.ph_ref = f->href[i], .ph_enabled = true, .ph_live = true,
					      .ph_has_agent = true, .ph_vendor = "GenuineIntel", .ph_features = LEVEL,
					      .ph_version = "1.2.0", .ph_available = host_avail, .ph_srs = sr12,
					      .ph_nsrs = 2, .ph_networks = net_ab, .ph_nnetworks = 2};
	}
	for (size_t i = 0; i < nv; i++) {
		snprintf(f->vref[i], sizeof f->vref[i], "OpaqueRef:vm%04zu", i);
		f->v[i] = (struct place_vm){.pv_ref = f->vref[i], .pv_power_state = "Running",
					    .pv_resident_on = "OpaqueRef:src", .pv_memory = vm_mem,
					    .pv_boot_vendor = "GenuineIntel", .pv_boot_features = LEVEL, .pv_srs = sr1,
					    .pv_nsrs = 1, .pv_networks = net_a, .pv_nnetworks = 1};
	}
	f->s = (struct place_pool){&f->src, f->h, nh, f->v, nv, PLACE_MIGRATE};
	return f;
}

static void expect_err(const json_t *e, const char *code, int nparams, ...)
{
	if (!e)
		fail_msg("expected %s, got no error", code);
	if (strcmp(json_string_value(json_array_get(e, 0)), code)) {
		char *t = json_dumps(e, 0);
		fail_msg("expected %s, got %s", code, t);
	}
	assert_int_equal(json_array_size(e) - 1, nparams);
	va_list ap;
	va_start(ap, nparams);
	for (int i = 0; i < nparams; i++) {
		const char *p = va_arg(ap, const char *);
		if (p)
			assert_string_equal(json_string_value(json_array_get(e, (size_t)i + 1)), p);
	}
	va_end(ap);
}

static const char *param(const json_t *e, size_t i)
{
	return json_string_value(json_array_get(e, i));
}

static void expect_placed(const struct evac_plan *p, size_t vm, size_t host)
{
	if (p->pl_vms[vm].ep_error) {
		char *t = json_dumps(p->pl_vms[vm].ep_error, 0);
		fail_msg("vm %zu not placed: %s", vm, t);
	}
	assert_int_equal(p->pl_vms[vm].ep_host, host);
}

static struct evac_plan *plan(const struct fx *f)
{
	struct evac_plan *p = evacplan_plan(&f->s);
	assert_non_null(p);
	assert_int_equal(p->pl_nvms, f->s.pp_nvms);
	assert_int_equal(p->pl_nhosts, f->s.pp_nhosts);
	assert_int_equal(p->pl_placed + p->pl_failed, f->s.pp_nvms);
	return p;
}

/* ---- the basics ---------------------------------------------------------- */

static void test_empty_host(void **st)
{
	(void)st;
	struct fx *f = fx_new(3, 0, 4 * G, G);
	struct evac_plan *p = plan(f);
	assert_int_equal(p->pl_placed, 0);
	assert_int_equal(p->pl_failed, 0);
	for (size_t h = 0; h < 3; h++) {
		assert_true(p->pl_left[h] == 4 * G);
		assert_int_equal(p->pl_added[h], 0);
	}
	json_t *m = evacplan_failures_json(&f->s, p);
	assert_int_equal(json_object_size(m), 0);
	json_decref(m);
	evacplan_free(p);
	evacplan_free(NULL);
	free(f);
}

static void test_no_other_host(void **st)
{
	(void)st;
	struct fx *f = fx_new(2, 1, 2 * G, G);
	f->s.pp_nhosts = 0;
	struct evac_plan *p = plan(f);
	expect_err(p->pl_vms[0].ep_error, "NO_HOSTS_AVAILABLE", 0);
	assert_int_equal(p->pl_vms[0].ep_host, PLACE_NONE);
	evacplan_free(p);
	/* the source among the hosts, with room: never a target */
	f->s.pp_nhosts = 1;
	f->h[0] = f->src;
	f->h[0].ph_evacuating = false;
	f->h[0].ph_available = 100 * G;
	p = plan(f);
	expect_err(p->pl_vms[0].ep_error, "NO_HOSTS_AVAILABLE", 0);
	evacplan_free(p);
	f->s.pp_nhosts = 2;
	p = plan(f);
	expect_placed(p, 0, 1);
	assert_true(p->pl_left[0] == 100 * G);
	evacplan_free(p);
	free(f);
}

static void test_all_fit(void **st)
{
	(void)st;
	struct fx *f = fx_new(3, 6, 4 * G, G);
	struct evac_plan *p = plan(f);
	assert_int_equal(p->pl_placed, 6);
	int64_t total = 0;
	for (size_t h = 0; h < 3; h++) {
		assert_int_equal(p->pl_added[h], 2); /* spread: 2 each */
		assert_true(p->pl_left[h] == 2 * G);
		total += p->pl_left[h];
	}
	assert_true(total == 6 * G);
	for (size_t i = 0; i < 6; i++) {
		assert_null(p->pl_vms[i].ep_error);
		assert_true(p->pl_vms[i].ep_memory == G);
	}
	json_t *m = evacplan_failures_json(&f->s, p);
	assert_int_equal(json_object_size(m), 0);
	json_decref(m);
	evacplan_free(p);
	free(f);
}

/* [2,2,3,3] on two 5 GiB hosts: first fit in input order puts 2+2 on the
 * first host, 3 on the second, and the last 3 finds no room; biggest first
 * places 3,3 then 2,2. [2,2,4] on two 4 GiB hosts: worst fit in input order
 * splits the 2s and the 4 is left over. */
static void test_biggest_first(void **st)
{
	(void)st;
	struct fx *f = fx_new(2, 4, 5 * G, 0);
	int64_t sizes[] = {2 * G, 2 * G, 3 * G, 3 * G};
	for (size_t i = 0; i < 4; i++)
		f->v[i].pv_memory = sizes[i];
	struct evac_plan *p = plan(f);
	assert_int_equal(p->pl_placed, 4);
	assert_int_equal(p->pl_order[0], 2);
	assert_int_equal(p->pl_order[1], 3);
	assert_int_equal(p->pl_order[2], 0);
	assert_int_equal(p->pl_order[3], 1);
	assert_true(p->pl_left[0] == 0 && p->pl_left[1] == 0);
	assert_int_not_equal(p->pl_vms[2].ep_host, p->pl_vms[3].ep_host);
	evacplan_free(p);

	f->s.pp_nvms = 3;
	f->h[0].ph_available = f->h[1].ph_available = 4 * G;
	f->v[2].pv_memory = 4 * G;
	p = plan(f);
	assert_int_equal(p->pl_placed, 3);
	assert_int_equal(p->pl_order[0], 2);
	assert_int_equal(p->pl_vms[0].ep_host, p->pl_vms[1].ep_host);
	assert_int_not_equal(p->pl_vms[0].ep_host, p->pl_vms[2].ep_host);
	evacplan_free(p);
	free(f);
}

static void test_memory_exhaustion(void **st)
{
	(void)st;
	struct fx *f = fx_new(2, 1, 4 * G, 5 * G);
	f->h[1].ph_available = 3 * G;
	struct evac_plan *p = plan(f);
	expect_err(p->pl_vms[0].ep_error, "HOST_NOT_ENOUGH_FREE_MEMORY", 2, "5368709120", "4294967296");
	assert_int_equal(p->pl_vms[0].ep_host, PLACE_NONE);
	assert_true(p->pl_vms[0].ep_memory == 0);
	evacplan_free(p);

	/* what earlier placements took is counted: 3 x 3 GiB on two 4 GiB hosts */
	free(f);
	f = fx_new(2, 3, 4 * G, 3 * G);
	p = plan(f);
	assert_int_equal(p->pl_placed, 2);
	assert_int_equal(p->pl_failed, 1);
	/* equal sizes: by ref, vm0002 is placed last */
	expect_err(p->pl_vms[2].ep_error, "HOST_NOT_ENOUGH_FREE_MEMORY", 2, "3221225472", "1073741824");
	json_t *m = evacplan_failures_json(&f->s, p);
	assert_int_equal(json_object_size(m), 1);
	assert_true(json_equal(json_object_get(m, "OpaqueRef:vm0002"), p->pl_vms[2].ep_error));
	json_decref(m);
	evacplan_free(p);

	/* overcommitted hosts report 0 available */
	f->s.pp_nvms = 1;
	f->h[0].ph_available = -G;
	f->h[1].ph_available = -2 * G;
	p = plan(f);
	expect_err(p->pl_vms[0].ep_error, "HOST_NOT_ENOUGH_FREE_MEMORY", 2, "3221225472", "0");
	evacplan_free(p);
	free(f);
}

static void test_reservations_counted(void **st)
{
	(void)st;
	/* h000 has 16 GiB but 15 are reserved (scheduled / in flight) */
	struct fx *f = fx_new(2, 6, 4 * G, G);
	f->s.pp_nvms = 3;
	f->h[0].ph_available = G;
	struct evac_plan *p = plan(f);
	/* 3 x 1 GiB, worst fit: h001 (4) takes vm0 (->3), vm1 (->2), vm2 (->1);
	 * a fourth finds h000 (1) tied on memory with h001 and with fewer VMs */
	expect_placed(p, 0, 1);
	expect_placed(p, 1, 1);
	expect_placed(p, 2, 1);
	assert_true(p->pl_left[1] == G);
	evacplan_free(p);
	f->s.pp_nvms = 4;
	p = plan(f);
	expect_placed(p, 3, 0);
	assert_true(p->pl_left[0] == 0 && p->pl_left[1] == G);
	evacplan_free(p);
	f->s.pp_nvms = 6;
	p = plan(f);
	assert_int_equal(p->pl_placed, 5);
	expect_err(p->pl_vms[5].ep_error, "HOST_NOT_ENOUGH_FREE_MEMORY", 2, "1073741824", "0");
	evacplan_free(p);
	free(f);
}

/* ---- each check ------------------------------------------------------------ */

static void test_cpu(void **st)
{
	(void)st;
	struct fx *f = fx_new(3, 1, 8 * G, G);
	f->h[0].ph_features = LOWER;
	f->h[1].ph_vendor = "AuthenticAMD";
	f->h[2].ph_available = G;
	struct evac_plan *p = plan(f);
	expect_placed(p, 0, 2); /* the only compatible host, though the smallest */
	evacplan_free(p);

	f->s.pp_nhosts = 2;
	p = plan(f);
	/* both refuse on CPU: the smallest ref's reason, naming the bit */
	expect_err(p->pl_vms[0].ep_error, "VM_INCOMPATIBLE_WITH_THIS_HOST", 3, "OpaqueRef:vm0000", "OpaqueRef:h000",
		   NULL);
	assert_non_null(strstr(param(p->pl_vms[0].ep_error, 3), "word 3 bit 5"));
	evacplan_free(p);

	f->h[0].ph_features = LEVEL;
	f->h[0].ph_vendor = "AuthenticAMD";
	p = plan(f);
	expect_err(p->pl_vms[0].ep_error, "VM_INCOMPATIBLE_WITH_THIS_HOST", 3, "OpaqueRef:vm0000", "OpaqueRef:h000",
		   "vendor GenuineIntel differs from AuthenticAMD");
	evacplan_free(p);

	/* force skips the CPU check only */
	f->s.pp_flags |= PLACE_FORCE;
	p = plan(f);
	expect_placed(p, 0, 0);
	evacplan_free(p);

	/* a VM that never booted (no flags) goes anywhere; a garbled set nowhere */
	f->s.pp_flags &= ~(unsigned)PLACE_FORCE;
	f->v[0].pv_boot_vendor = "";
	f->v[0].pv_boot_features = NULL;
	p = plan(f);
	expect_placed(p, 0, 0);
	evacplan_free(p);
	f->v[0].pv_boot_vendor = "AuthenticAMD";
	f->v[0].pv_boot_features = "zz";
	p = plan(f);
	expect_err(p->pl_vms[0].ep_error, "VM_INCOMPATIBLE_WITH_THIS_HOST", 3, NULL, NULL,
		   "invalid VM CPU feature set");
	evacplan_free(p);
	f->v[0].pv_boot_features = LEVEL;
	f->h[0].ph_features = "bad";
	f->h[1].ph_features = "bad";
	p = plan(f);
	expect_err(p->pl_vms[0].ep_error, "VM_INCOMPATIBLE_WITH_THIS_HOST", 3, NULL, "OpaqueRef:h000",
		   "invalid host CPU feature set");
	evacplan_free(p);
	free(f);
}

static void test_sr_not_plugged(void **st)
{
	(void)st;
	struct fx *f = fx_new(3, 2, 8 * G, G);
	f->h[0].ph_srs = sr1;
	f->h[0].ph_nsrs = 1;
	f->h[0].ph_available = 64 * G;
	f->h[2].ph_srs = sr2only;
	f->h[2].ph_nsrs = 1;
	f->v[1].pv_srs = sr12;
	f->v[1].pv_nsrs = 2;
	struct evac_plan *p = plan(f);
	expect_placed(p, 0, 0); /* sr1 only: h000 (roomiest) */
	expect_placed(p, 1, 1); /* sr1 + sr2: only h001 has both */
	evacplan_free(p);
	f->h[1].ph_srs = sr1;
	f->h[1].ph_nsrs = 1;
	p = plan(f);
	expect_err(p->pl_vms[1].ep_error, "VM_REQUIRES_SR", 2, "OpaqueRef:vm0001", "OpaqueRef:sr2");
	evacplan_free(p);
	free(f);
}

static void test_networks(void **st)
{
	(void)st;
	struct fx *f = fx_new(2, 1, 8 * G, G);
	f->h[0].ph_networks = net_a;
	f->h[0].ph_nnetworks = 1;
	f->h[0].ph_available = 64 * G;
	f->v[0].pv_networks = net_ab;
	f->v[0].pv_nnetworks = 2;
	struct evac_plan *p = plan(f);
	expect_placed(p, 0, 1);
	evacplan_free(p);
	f->h[1].ph_networks = NULL;
	f->h[1].ph_nnetworks = 0;
	p = plan(f);
	expect_err(p->pl_vms[0].ep_error, "VM_REQUIRES_NETWORK", 2, "OpaqueRef:vm0000", "OpaqueRef:netB");
	evacplan_free(p);
	/* a VM with no network needs none */
	f->v[0].pv_nnetworks = 0;
	p = plan(f);
	expect_placed(p, 0, 0);
	evacplan_free(p);
	free(f);
}

static void test_versions(void **st)
{
	(void)st;
	struct fx *f = fx_new(3, 3, 4 * G, G);
	f->h[0].ph_version = "1.1.9";
	f->h[0].ph_available = 100 * G;
	f->h[1].ph_version = "1.2";
	f->h[2].ph_version = "1.10.0";
	struct evac_plan *p = plan(f);
	assert_int_equal(p->pl_placed, 3);
	assert_int_equal(p->pl_added[0], 0);
	assert_int_equal(p->pl_added[1] + p->pl_added[2], 3);
	evacplan_free(p);
	f->s.pp_nhosts = 1;
	p = plan(f);
	expect_err(p->pl_vms[0].ep_error, "VM_HOST_INCOMPATIBLE_VERSION_MIGRATE", 2, "OpaqueRef:h000",
		   "OpaqueRef:vm0000");
	evacplan_free(p);
	free(f);
}

static void test_host_states(void **st)
{
	(void)st;
	struct fx *f = fx_new(5, 4, 4 * G, G);
	for (size_t i = 0; i < 4; i++)
		f->h[i].ph_available = 100 * G;
	f->h[0].ph_enabled = false;
	f->h[1].ph_live = false;
	f->h[2].ph_evacuating = true;
	f->h[3].ph_has_agent = false;
	struct evac_plan *p = plan(f);
	for (size_t i = 0; i < 4; i++)
		expect_placed(p, i, 4);
	evacplan_free(p);
	/* no usable host: the one that got furthest through the checks, in
	 * their order (evacuating, not live, no agent, disabled) */
	f->s.pp_nhosts = 4;
	p = plan(f);
	expect_err(p->pl_vms[0].ep_error, "HOST_DISABLED", 1, "OpaqueRef:h000");
	evacplan_free(p);
	f->h[0].ph_enabled = true;
	f->h[0].ph_live = false;
	p = plan(f);
	expect_err(p->pl_vms[0].ep_error, "HOST_OFFLINE", 1, "OpaqueRef:h003");
	evacplan_free(p);
	f->h[3].ph_has_agent = true;
	f->h[3].ph_evacuating = true;
	p = plan(f);
	expect_err(p->pl_vms[0].ep_error, "HOST_NOT_LIVE", 0);
	evacplan_free(p);
	f->h[0] = f->h[2];
	f->h[1] = f->h[3];
	p = plan(f);
	expect_err(p->pl_vms[0].ep_error, "HOST_EVACUATE_IN_PROGRESS", 1, "OpaqueRef:h002");
	evacplan_free(p);
	free(f);
}

/* The real reason: a host lacking the SR beats a disabled one; memory only
 * when some host passes every other check, with that host's number. */
static void test_error_choice(void **st)
{
	(void)st;
	struct fx *f = fx_new(3, 1, G / 2, 2 * G);
	f->h[0].ph_enabled = false;
	f->h[0].ph_available = 100 * G;
	f->h[1].ph_srs = sr2only; /* little memory and no sr1 */
	f->h[1].ph_nsrs = 1;
	f->h[2].ph_srs = sr2only;
	f->h[2].ph_nsrs = 1;
	f->h[2].ph_available = 100 * G;
	struct evac_plan *p = plan(f);
	expect_err(p->pl_vms[0].ep_error, "VM_REQUIRES_SR", 2, "OpaqueRef:vm0000", "OpaqueRef:sr1");
	evacplan_free(p);
	f->h[1].ph_srs = sr12;
	f->h[1].ph_nsrs = 2;
	p = plan(f);
	expect_err(p->pl_vms[0].ep_error, "HOST_NOT_ENOUGH_FREE_MEMORY", 2, "2147483648", "536870912");
	evacplan_free(p);
	free(f);
}

static void test_immobile_vms(void **st)
{
	(void)st;
	struct fx *f = fx_new(2, 6, 16 * G, G);
	f->v[0].pv_nomigrate = true;
	f->v[1].pv_has_pci = true;
	f->v[2].pv_has_vusb = true;
	f->v[3].pv_power_state = "Paused";
	f->v[4].pv_busy = true;
	f->v[0].pv_memory = 8 * G; /* big, yet takes nothing */
	struct evac_plan *p = plan(f);
	expect_err(p->pl_vms[0].ep_error, "VM_IS_IMMOBILE", 1, "OpaqueRef:vm0000");
	expect_err(p->pl_vms[1].ep_error, "VM_HAS_PCI_ATTACHED", 1, "OpaqueRef:vm0001");
	expect_err(p->pl_vms[2].ep_error, "VM_HAS_VUSBS", 1, "OpaqueRef:vm0002");
	expect_err(p->pl_vms[3].ep_error, "VM_BAD_POWER_STATE", 3, "OpaqueRef:vm0003", "running", "paused");
	expect_err(p->pl_vms[4].ep_error, "OTHER_OPERATION_IN_PROGRESS", 2, "VM", "OpaqueRef:vm0004");
	expect_placed(p, 5, 0);
	assert_int_equal(p->pl_placed, 1);
	assert_true(p->pl_left[0] + p->pl_left[1] == 31 * G);
	/* get_vms_which_prevent_evacuation */
	json_t *m = evacplan_failures_json(&f->s, p);
	assert_int_equal(json_object_size(m), 5);
	for (size_t i = 0; i < 5; i++)
		assert_true(json_equal(json_object_get(m, f->vref[i]), p->pl_vms[i].ep_error));
	assert_null(json_object_get(m, f->vref[5]));
	char *t = json_dumps(m, JSON_SORT_KEYS | JSON_COMPACT);
	assert_string_equal(t, "{\"OpaqueRef:vm0000\":[\"VM_IS_IMMOBILE\",\"OpaqueRef:vm0000\"],"
			       "\"OpaqueRef:vm0001\":[\"VM_HAS_PCI_ATTACHED\",\"OpaqueRef:vm0001\"],"
			       "\"OpaqueRef:vm0002\":[\"VM_HAS_VUSBS\",\"OpaqueRef:vm0002\"],"
			       "\"OpaqueRef:vm0003\":[\"VM_BAD_POWER_STATE\",\"OpaqueRef:vm0003\",\"running\",\"paused\"],"
			       "\"OpaqueRef:vm0004\":[\"OTHER_OPERATION_IN_PROGRESS\",\"VM\",\"OpaqueRef:vm0004\"]}");
	free(t);
	json_decref(m);
	evacplan_free(p); /* the map held its own references */
	free(f);
}

/* ---- spreading and anti-affinity -------------------------------------------- */

static void test_spread(void **st)
{
	(void)st;
	struct fx *f = fx_new(4, 12, 32 * G, 2 * G);
	f->s.pp_nvms = 8;
	struct evac_plan *p = plan(f);
	for (size_t h = 0; h < 4; h++)
		assert_int_equal(p->pl_added[h], 2);
	evacplan_free(p);
	/* worst fit evens out free memory: 24 vs 8 GiB free, 12 x 2 GiB: the
	 * first 8 go to h000 (down to 8), then they alternate */
	f->h[0].ph_available = 24 * G;
	f->h[1].ph_available = 8 * G;
	f->s.pp_nhosts = 2;
	f->s.pp_nvms = 12;
	p = plan(f);
	assert_int_equal(p->pl_added[0], 10);
	assert_int_equal(p->pl_added[1], 2);
	assert_true(p->pl_left[0] == 4 * G && p->pl_left[1] == 4 * G);
	evacplan_free(p);
	/* equal memory: the host with fewer VMs, then the smaller ref */
	f->h[0].ph_available = f->h[1].ph_available = 4 * G;
	f->h[0].ph_nresident = 10;
	f->s.pp_nvms = 1;
	p = plan(f);
	expect_placed(p, 0, 1);
	evacplan_free(p);
	f->h[0].ph_nresident = 0;
	p = plan(f);
	expect_placed(p, 0, 0);
	evacplan_free(p);
	free(f);
}

static void test_anti_affinity_spread(void **st)
{
	(void)st;
	/* h000 is the roomiest but already runs a VM of the group */
	static const struct place_group_count there[] = {{"OpaqueRef:grpA", 1}, {"OpaqueRef:grpB", 3}};
	struct fx *f = fx_new(3, 4, 8 * G, G);
	f->h[0].ph_available = 64 * G;
	f->h[0].ph_groups = there;
	f->h[0].ph_ngroups = 2;
	for (size_t i = 0; i < 2; i++)
		f->v[i].pv_group = "OpaqueRef:grpA";
	struct evac_plan *p = plan(f);
	assert_int_not_equal(p->pl_vms[0].ep_host, 0);
	assert_int_not_equal(p->pl_vms[1].ep_host, 0);
	assert_int_not_equal(p->pl_vms[0].ep_host, p->pl_vms[1].ep_host);
	expect_placed(p, 2, 0); /* ungrouped VMs still go to the roomiest */
	expect_placed(p, 3, 0);
	evacplan_free(p);
	/* three of the group, three hosts: one on each (h000 ties with the rest
	 * after the first two) */
	f->v[2].pv_group = "OpaqueRef:grpA";
	p = plan(f);
	bool used[3] = {false};
	for (size_t i = 0; i < 3; i++) {
		assert_false(used[p->pl_vms[i].ep_host]);
		used[p->pl_vms[i].ep_host] = true;
	}
	evacplan_free(p);
	free(f);
}

static void test_anti_affinity_unavoidable(void **st)
{
	(void)st;
	/* three of a group, two hosts: two must share, all are placed */
	struct fx *f = fx_new(2, 3, 8 * G, G);
	for (size_t i = 0; i < 3; i++)
		f->v[i].pv_group = "OpaqueRef:grp";
	struct evac_plan *p = plan(f);
	assert_int_equal(p->pl_placed, 3);
	assert_true((p->pl_added[0] == 2 && p->pl_added[1] == 1) || (p->pl_added[0] == 1 && p->pl_added[1] == 2));
	evacplan_free(p);
	/* only one host has the room: co-located rather than left behind */
	f->h[1].ph_available = G / 2;
	p = plan(f);
	assert_int_equal(p->pl_placed, 3);
	for (size_t i = 0; i < 3; i++)
		expect_placed(p, i, 0);
	evacplan_free(p);
	/* only one host can see the SR */
	f->h[1].ph_available = 8 * G;
	f->h[1].ph_srs = sr2only;
	f->h[1].ph_nsrs = 1;
	p = plan(f);
	for (size_t i = 0; i < 3; i++)
		expect_placed(p, i, 0);
	evacplan_free(p);
	free(f);
}

/* ---- determinism, many hosts ------------------------------------------------- */

static uint64_t rnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return *s >> 33;
}

static const char *const grp_names[] = {"OpaqueRef:g0", "OpaqueRef:g1", "OpaqueRef:g2", "OpaqueRef:g3"};
static struct place_group_count host_groups[MAXH][1];

/* A mixed pool: versions, states, vendors, feature sets, SRs, networks,
 * reservations, groups, immobile VMs. */
static struct fx *fx_mixed(size_t nh, size_t nv, uint64_t seed)
{
	struct fx *f = fx_new(nh, nv, 0, 0);
	for (size_t i = 0; i < nh; i++) {
		struct place_host *h = &f->h[i];
		uint64_t r = rnd(&seed) % 100;
		h->ph_available = (int64_t)(rnd(&seed) % 64 + 1) * G / 2;
		h->ph_nresident = rnd(&seed) % 30;
		h->ph_version = r < 5 ? "1.1.0" : r < 50 ? "1.2.0" : "1.3.1";
		h->ph_enabled = rnd(&seed) % 50 != 0;
		h->ph_live = rnd(&seed) % 60 != 0;
		h->ph_features = rnd(&seed) % 5 ? LEVEL : LOWER;
		if (rnd(&seed) % 40 == 0)
			h->ph_vendor = "AuthenticAMD";
		if (rnd(&seed) % 4 == 0) {
			h->ph_srs = sr1;
			h->ph_nsrs = 1;
		}
		if (rnd(&seed) % 8 == 0) {
			h->ph_networks = net_a;
			h->ph_nnetworks = 1;
		}
		host_groups[i][0] = (struct place_group_count){grp_names[rnd(&seed) % 4], rnd(&seed) % 3};
		h->ph_groups = host_groups[i];
		h->ph_ngroups = 1;
	}
	for (size_t i = 0; i < nv; i++) {
		struct place_vm *v = &f->v[i];
		v->pv_memory = (int64_t)(rnd(&seed) % 16 + 1) * G / 4;
		if (rnd(&seed) % 3 == 0) {
			v->pv_srs = sr12;
			v->pv_nsrs = 2;
		}
		if (rnd(&seed) % 5 == 0)
			v->pv_boot_features = LOWER;
		if (rnd(&seed) % 4 == 0) {
			v->pv_networks = net_ab;
			v->pv_nnetworks = 2;
		}
		if (rnd(&seed) % 3 == 0)
			v->pv_group = grp_names[rnd(&seed) % 4];
		v->pv_nomigrate = rnd(&seed) % 200 == 0;
	}
	return f;
}

static void test_determinism(void **st)
{
	(void)st;
	struct fx *f = fx_mixed(40, 300, 7);
	struct evac_plan *a = plan(f), *b = plan(f);
	assert_true(a->pl_placed > 100 && a->pl_failed > 0);
	for (size_t i = 0; i < 300; i++) {
		assert_int_equal(a->pl_vms[i].ep_host, b->pl_vms[i].ep_host);
		assert_int_equal(a->pl_order[i], b->pl_order[i]);
		assert_true(json_equal(a->pl_vms[i].ep_error, b->pl_vms[i].ep_error) ||
			    (!a->pl_vms[i].ep_error && !b->pl_vms[i].ep_error));
	}
	evacplan_free(b);
	/* hosts shuffled: the same VM goes to the same host (by ref) */
	struct fx *g = calloc(1, sizeof *g);
	assert_non_null(g);
	memcpy(g, f, sizeof *g);
	g->s = (struct place_pool){&g->src, g->h, 40, g->v, 300, PLACE_MIGRATE};
	size_t perm[40];
	for (size_t i = 0; i < 40; i++)
		perm[i] = i;
	uint64_t seed = 99;
	for (size_t i = 39; i > 0; i--) {
		size_t j = rnd(&seed) % (i + 1), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (size_t i = 0; i < 40; i++)
		g->h[i] = f->h[perm[i]]; /* refs still point into f->href */
	b = plan(g);
	for (size_t i = 0; i < 300; i++) {
		if (a->pl_vms[i].ep_error) {
			assert_true(json_equal(a->pl_vms[i].ep_error, b->pl_vms[i].ep_error));
			continue;
		}
		assert_string_equal(f->h[a->pl_vms[i].ep_host].ph_ref,
				    g->h[b->pl_vms[i].ep_host].ph_ref);
	}
	evacplan_free(b);
	/* VMs shuffled too: the placement order is by size then ref */
	for (size_t i = 0; i < 300; i++)
		g->v[i] = f->v[299 - i];
	b = plan(g);
	for (size_t i = 0; i < 300; i++) {
		size_t j = 299 - i;
		if (a->pl_vms[i].ep_error)
			assert_true(json_equal(a->pl_vms[i].ep_error, b->pl_vms[j].ep_error));
		else
			assert_string_equal(f->h[a->pl_vms[i].ep_host].ph_ref,
					    g->h[b->pl_vms[j].ep_host].ph_ref);
	}
	evacplan_free(b);
	evacplan_free(a);
	free(g);
	free(f);
}

/* The pair's verdict with memory left out. */
static enum place_verdict but_memory(const struct fx *f, size_t v, size_t h)
{
	struct place_host mh = f->h[h];
	mh.ph_available = INT64_MAX;
	return place_check(&f->v[v], &f->src, &mh, f->s.pp_flags);
}

/* Every placement valid (place_check accepts the pair but for memory), no
 * host over its capacity, every memory refusal true (no suitable host has
 * the room, even at the end). */
static void check_plan(const struct fx *f, const struct evac_plan *p)
{
	size_t nh = f->s.pp_nhosts, nv = f->s.pp_nvms;
	int64_t *used = calloc(nh, sizeof *used);
	size_t *added = calloc(nh, sizeof *added);
	assert_non_null(used);
	assert_non_null(added);
	for (size_t i = 0; i < nv; i++) {
		const struct place_vm *v = &f->v[i];
		const struct evac_place *ep = &p->pl_vms[i];
		if (ep->ep_error) {
			assert_int_equal(ep->ep_host, PLACE_NONE);
			if (strcmp(xerr_code_of(ep->ep_error), "HOST_NOT_ENOUGH_FREE_MEMORY"))
				continue;
			assert_true(atoll(param(ep->ep_error, 1)) == v->pv_memory);
			for (size_t h = 0; h < nh; h++)
				if (but_memory(f, i, h) == PLACE_OK)
					assert_true(p->pl_left[h] < v->pv_memory);
			continue;
		}
		size_t h = ep->ep_host;
		assert_true(h < nh);
		assert_true(ep->ep_memory == v->pv_memory);
		assert_int_equal(but_memory(f, i, h), PLACE_OK);
		used[h] += ep->ep_memory;
		added[h]++;
	}
	for (size_t h = 0; h < nh; h++) {
		assert_true(used[h] <= f->h[h].ph_available);
		assert_true(p->pl_left[h] == f->h[h].ph_available - used[h]);
		assert_int_equal(p->pl_added[h], added[h]);
	}
	free(used);
	free(added);
}

static void test_many_hosts(void **st)
{
	(void)st;
	struct fx *f = fx_mixed(200, 2000, 12345);
	for (size_t h = 0; h < 200; h++)
		f->h[h].ph_available *= 2; /* room for most of them */
	struct evac_plan *p = plan(f);
	check_plan(f, p);
	assert_true(p->pl_placed > 1500 && p->pl_failed > 0);
	size_t nonempty = 0;
	for (size_t h = 0; h < 200; h++)
		nonempty += p->pl_added[h] > 0;
	assert_true(nonempty > 100); /* spread, not piled up */
	json_t *m = evacplan_failures_json(&f->s, p);
	assert_int_equal(json_object_size(m), p->pl_failed);
	json_decref(m);
	evacplan_free(p);
	/* the order of the checks' errors for the failures */
	for (uint64_t seed = 1; seed < 6; seed++) {
		free(f);
		f = fx_mixed(30, 400, seed);
		p = plan(f);
		check_plan(f, p);
		evacplan_free(p);
	}
	free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_host),
		cmocka_unit_test(test_no_other_host),
		cmocka_unit_test(test_all_fit),
		cmocka_unit_test(test_biggest_first),
		cmocka_unit_test(test_memory_exhaustion),
		cmocka_unit_test(test_reservations_counted),
		cmocka_unit_test(test_cpu),
		cmocka_unit_test(test_sr_not_plugged),
		cmocka_unit_test(test_networks),
		cmocka_unit_test(test_versions),
		cmocka_unit_test(test_host_states),
		cmocka_unit_test(test_error_choice),
		cmocka_unit_test(test_immobile_vms),
		cmocka_unit_test(test_spread),
		cmocka_unit_test(test_anti_affinity_spread),
		cmocka_unit_test(test_anti_affinity_unavoidable),
		cmocka_unit_test(test_determinism),
		cmocka_unit_test(test_many_hosts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
