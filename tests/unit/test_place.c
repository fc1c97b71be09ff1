/* test_place.c - placement: every check alone and against every other (the
 * order), each with its XAPI error and parameters, for starts and
 * migrations; the version order; the pick; and, over random pools, that
 * every caller (VM.pool_migrate, VM.start_on, VM.start, host.evacuate's plan
 * and its re-pick) gives the same verdict for every (VM, host) pair. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "evacplan.h"
#include "place.h"
#include "xerr.h"

#define G (1LL << 30)
#define LEVEL "1fcbfbff-f7fa3223-2d93fbff-00000023"
#define LOWER "1fcbfbff-f7fa3223-2d93fbff-00000003" /* lacks word 3 bit 5 */
#define NULLREF "OpaqueRef:NULL"

static const char *const sr1[] = {"OpaqueRef:sr1"};
static const char *const sr2[] = {"OpaqueRef:sr2"};
static const char *const sr12[] = {"OpaqueRef:sr1", "OpaqueRef:sr2"};
static const char *const net_a[] = {"OpaqueRef:netA"};
static const char *const net_b[] = {"OpaqueRef:netB"};
static const char *const net_ab[] = {"OpaqueRef:netA", "OpaqueRef:netB"};
static const int64_t hw_new[] = {2, 3}, hw_old[] = {1, 2}, hw_all[] = {0, 1, 2, 3};

static const unsigned OPS[] = {PLACE_START, PLACE_START | PLACE_RESUME, PLACE_MIGRATE, PLACE_MIGRATE | PLACE_FORCE};
#define NOPS (sizeof OPS / sizeof *OPS)

static struct place_host host(const char *ref)
{
	return (struct place_host){.ph_ref = ref, .ph_enabled = true, .ph_live = true, .ph_has_agent = true,
				   .ph_vendor = "GenuineIntel", .ph_features = LEVEL, .ph_version = "1.2.0",
				   .ph_available = 4 * G, .ph_srs = sr12, .ph_nsrs = 2, .ph_networks = net_ab,
				   .ph_nnetworks = 2};
}

/* A VM that passes every check for flags, from h1 to h2 (or started on h2). */
struct pair {
	struct place_vm vm;
	struct place_host src, dst;
	unsigned flags;
};

static void pair_init(struct pair *p, unsigned flags)
{
	bool start = flags & PLACE_START;
	p->flags = flags;
	const char *ps = flags & PLACE_RESUME ? "Suspended" : start ? "Halted" : "Running";
	p->vm = (struct place_vm){.pv_ref = "OpaqueRef:vm", .pv_power_state = ps,
				  .pv_resident_on = start ? NULLREF : "OpaqueRef:h1", .pv_memory = G,
				  .pv_boot_vendor = "GenuineIntel", .pv_boot_features = LEVEL, .pv_srs = sr1,
				  .pv_nsrs = 1, .pv_networks = net_a, .pv_nnetworks = 1};
	p->src = host("OpaqueRef:h1");
	p->dst = host("OpaqueRef:h2");
}

static const struct place_host *src_of(const struct pair *p)
{
	return p->flags & PLACE_START ? NULL : &p->src;
}

/* HA admission stand-ins: one refuses everything, one keeps a gigabyte
 * free on every host (so it depends on what placements left). */
static bool refuse_all(const struct place_ha *ha, const struct place_vm *vm, const struct place_host *src,
		       const struct place_host *dst)
{
	(void)ha, (void)vm, (void)src, (void)dst;
	return false;
}

static bool keep_a_gig(const struct place_ha *ha, const struct place_vm *vm, const struct place_host *src,
		       const struct place_host *dst)
{
	(void)ha, (void)src;
	return dst->ph_available - vm->pv_memory >= G;
}

static const struct place_ha ha_refuse = {refuse_all, NULL}, ha_gig = {keep_a_gig, NULL};

/* Make row refuse, touching nothing another row reads. */
static void break_row(struct pair *p, enum place_verdict row)
{
	switch (row) {
	case PLACE_TEMPLATE: p->vm.pv_template = true; break;
	case PLACE_POWER: p->vm.pv_power_state = p->flags & PLACE_START ? "Running" : "Halted"; break;
	case PLACE_IMMOBILE: p->vm.pv_nomigrate = true; break;
	case PLACE_PCI: p->vm.pv_has_pci = true; break;
	case PLACE_VUSB: p->vm.pv_has_vusb = true; break;
	case PLACE_BUSY: p->vm.pv_busy = true; break;
	case PLACE_SAME_HOST: p->vm.pv_resident_on = "OpaqueRef:h2"; break;
	case PLACE_VERSION: p->dst.ph_version = "1.1.9"; break;
	case PLACE_NEWEST: p->dst.ph_upgrade_behind = true; break;
	case PLACE_HW_PLATFORM: p->vm.pv_hw_version = 5; break;
	case PLACE_EVACUATING: p->dst.ph_evacuating = true; break;
	case PLACE_NOT_LIVE: p->dst.ph_live = false; break;
	case PLACE_OFFLINE: p->dst.ph_has_agent = false; break;
	case PLACE_DISABLED: p->dst.ph_enabled = false; break;
	case PLACE_CPU: p->dst.ph_features = LOWER; break;
	case PLACE_SR: p->dst.ph_srs = sr2; p->dst.ph_nsrs = 1; break;
	case PLACE_NETWORK: p->dst.ph_networks = net_b; p->dst.ph_nnetworks = 1; break;
	case PLACE_MEMORY: p->dst.ph_available = G - 1; break;
	case PLACE_HA_PLAN: p->dst.ph_ha = &ha_refuse; break;
	default: fail_msg("no way to break row %d", row);
	}
}

/* The error each row gives for the pair broken that way. */
static json_t *expected(enum place_verdict row, unsigned flags)
{
	const char *code = xerr_code_name(place_code(row));
	bool start = flags & PLACE_START;
	switch (row) {
	case PLACE_POWER:
		if (flags & PLACE_RESUME)
			return json_pack("[s,s,s,s]", code, "OpaqueRef:vm", "suspended", "running");
		return json_pack("[s,s,s,s]", code, "OpaqueRef:vm", start ? "halted" : "running", start ? "running" : "halted");
	case PLACE_TEMPLATE:
	case PLACE_IMMOBILE:
	case PLACE_PCI:
	case PLACE_VUSB:
		return json_pack("[s,s]", code, "OpaqueRef:vm");
	case PLACE_BUSY:
		return json_pack("[s,s,s]", code, "VM", "OpaqueRef:vm");
	case PLACE_SAME_HOST:
		return json_pack("[s,s]", code, "VM OpaqueRef:vm already runs on host OpaqueRef:h2");
	case PLACE_VERSION:
		return json_pack("[s,s,s]", code, "OpaqueRef:h2", "OpaqueRef:vm");
	case PLACE_NEWEST:
		if (flags & PLACE_RESUME)
			return json_pack("[s,s,s]", code, "VM.resume",
					 "the pool is being upgraded: VMs resume only on the hosts of the newest version, and "
					 "OpaqueRef:h2 is not one");
		return json_pack("[s,s,s]", code, "VM.start",
				 "the pool is being upgraded: VMs start only on the hosts of the newest version, and "
				 "OpaqueRef:h2 is not one");
	case PLACE_HW_PLATFORM:
		return json_pack("[s,s,s,s,s]", code, "OpaqueRef:h2", "[0]", "OpaqueRef:vm", "5");
	case PLACE_NOT_LIVE:
		return json_pack("[s]", code);
	case PLACE_EVACUATING:
	case PLACE_OFFLINE:
	case PLACE_DISABLED:
		return json_pack("[s,s]", code, "OpaqueRef:h2");
	case PLACE_CPU:
		return json_pack("[s,s,s,s]", code, "OpaqueRef:vm", "OpaqueRef:h2",
				 "the host lacks CPU features: word 3 bit 5");
	case PLACE_SR:
		return json_pack("[s,s,s]", code, "OpaqueRef:vm", "OpaqueRef:sr1");
	case PLACE_NETWORK:
		return json_pack("[s,s,s]", code, "OpaqueRef:vm", "OpaqueRef:netA");
	case PLACE_MEMORY:
		return json_pack("[s,s,s]", code, "1073741824", "1073741823");
	case PLACE_HA_PLAN:
		return json_pack("[s]", code);
	default:
		return NULL;
	}
}

static void expect_json(json_t *got, json_t *want, const char *what)
{
	if (!json_equal(got, want) && (got || want)) {
		char *g = got ? json_dumps(got, 0) : strdup("(none)"), *w = want ? json_dumps(want, 0) : strdup("(none)");
		fail_msg("%s: got %s, want %s", what, g, w);
	}
	json_decref(got);
	json_decref(want);
}

/* ---- the table --------------------------------------------------------------- */

static void test_table(void **st)
{
	(void)st;
	assert_int_equal(place_code(PLACE_MEMORY), XE_HOST_NOT_ENOUGH_FREE_MEMORY);
	assert_int_equal(place_code(PLACE_OK), XE_INTERNAL_ERROR);
	assert_int_equal(place_code(PLACE__COUNT), XE_INTERNAL_ERROR);
	assert_string_equal(place_verdict_name(PLACE_OK), "OK");
	assert_string_equal(place_verdict_name(PLACE_SAME_HOST), "SAME_HOST");
	assert_string_equal(place_verdict_name(PLACE__COUNT), "?");
	assert_int_equal(place_scope_of(PLACE_BUSY), PLACE_SCOPE_VM);
	assert_int_equal(place_scope_of(PLACE_VERSION), PLACE_SCOPE_HOST);
	assert_int_equal(place_scope_of(PLACE_SR), PLACE_SCOPE_PAIR);
	assert_false(place_applies(PLACE_OK, PLACE_ANY));
	assert_false(place_applies(PLACE__COUNT, PLACE_ANY));
	assert_true(place_applies(PLACE_CPU, PLACE_MIGRATE));
	assert_false(place_applies(PLACE_CPU, PLACE_MIGRATE | PLACE_FORCE));
	assert_false(place_applies(PLACE_CPU, PLACE_START));
	assert_false(place_applies(PLACE_IMMOBILE, PLACE_START));
	assert_false(place_applies(PLACE_TEMPLATE, PLACE_MIGRATE));
	assert_false(place_applies(PLACE_MEMORY, 0)); /* no operation: nothing applies */
	struct pair p;
	pair_init(&p, PLACE_MIGRATE);
	expect_json(place_error(PLACE_OK, &p.vm, &p.src, &p.dst, p.flags), NULL, "OK");
	json_t *e = place_error(PLACE__COUNT, &p.vm, &p.src, &p.dst, p.flags);
	assert_string_equal(xerr_code_of(e), "INTERNAL_ERROR");
	json_decref(e);
}

/* ---- each check alone, then every two: the earlier one wins ---------------- */

static void test_each_check(void **st)
{
	(void)st;
	for (size_t o = 0; o < NOPS; o++) {
		struct pair p;
		pair_init(&p, OPS[o]);
		assert_int_equal(place_check(&p.vm, src_of(&p), &p.dst, p.flags), PLACE_OK);
		assert_null(place_assert(&p.vm, src_of(&p), &p.dst, p.flags));
		for (int row = PLACE_OK + 1; row < PLACE__COUNT; row++) {
			pair_init(&p, OPS[o]);
			break_row(&p, row);
			enum place_verdict want = place_applies(row, p.flags) ? (enum place_verdict)row : PLACE_OK;
			if (row == PLACE_NOT_LIVE && (p.flags & PLACE_START))
				want = PLACE_OFFLINE; /* a start: not live = cannot be reached */
			enum place_verdict got = place_check(&p.vm, src_of(&p), &p.dst, p.flags);
			if (got != want)
				fail_msg("flags %u, %s broken: verdict %s", p.flags, place_verdict_name(row),
					 place_verdict_name(got));
			char what[64];
			snprintf(what, sizeof what, "flags %u, %s", p.flags, place_verdict_name(row));
			expect_json(place_assert(&p.vm, src_of(&p), &p.dst, p.flags), expected(want, p.flags), what);
		}
	}
}

static void test_order(void **st)
{
	(void)st;
	/* XAPI's order, as place.h says (break_row and expected() know the
	 * rows by name, so this pins the table's order too) */
	static const enum place_verdict order[] = {
		PLACE_TEMPLATE, PLACE_POWER,   PLACE_IMMOBILE, PLACE_PCI,     PLACE_VUSB, PLACE_BUSY,
		PLACE_SAME_HOST, PLACE_VERSION, PLACE_NEWEST, PLACE_EVACUATING, PLACE_NOT_LIVE, PLACE_OFFLINE,
		PLACE_DISABLED, PLACE_HW_PLATFORM, PLACE_CPU, PLACE_SR, PLACE_NETWORK, PLACE_MEMORY, PLACE_HA_PLAN,
	};
	assert_int_equal(sizeof order / sizeof *order, PLACE__COUNT - 1);
	for (size_t i = 0; i < sizeof order / sizeof *order; i++)
		assert_int_equal(order[i], i + 1);
	size_t pairs = 0;
	for (size_t o = 0; o < NOPS; o++)
		for (int a = PLACE_OK + 1; a < PLACE__COUNT; a++)
			for (int b = a + 1; b < PLACE__COUNT; b++) {
				struct pair p;
				pair_init(&p, OPS[o]);
				if (!place_applies(a, p.flags) || !place_applies(b, p.flags))
					continue;
				break_row(&p, b);
				break_row(&p, a);
				enum place_verdict got = place_check(&p.vm, src_of(&p), &p.dst, p.flags);
				if (got != (enum place_verdict)a)
					fail_msg("flags %u, %s and %s broken: verdict %s", p.flags, place_verdict_name(a),
						 place_verdict_name(b), place_verdict_name(got));
				pairs++;
			}
	assert_true(pairs > 150);
}

/* ---- the details of some checks ---------------------------------------------- */

static void test_versions(void **st)
{
	(void)st;
	assert_true(place_version_cmp("1.2.10", "1.2.9") > 0);
	assert_true(place_version_cmp("1.2", "1.2.0") == 0);
	assert_true(place_version_cmp("0.9", "1.0") < 0);
	assert_true(place_version_cmp("2", "10") < 0);
	assert_true(place_version_cmp("", "") == 0);
	assert_true(place_version_cmp("8.2.1-beta", "8.2.1") == 0);
	struct pair p;
	pair_init(&p, PLACE_MIGRATE);
	p.dst.ph_version = "1.3.0"; /* newer is fine */
	assert_int_equal(place_check(&p.vm, &p.src, &p.dst, p.flags), PLACE_OK);
	p.dst.ph_version = "1.2";
	assert_int_equal(place_check(&p.vm, &p.src, &p.dst, p.flags), PLACE_OK);
	p.dst.ph_version = "1.1.99";
	assert_int_equal(place_check(&p.vm, &p.src, &p.dst, p.flags), PLACE_VERSION);
	/* no source (a migration of a VM that runs nowhere): nothing to compare */
	assert_int_equal(place_check(&p.vm, NULL, &p.dst, p.flags), PLACE_OK);
	/* a start never compares versions */
	pair_init(&p, PLACE_START);
	p.dst.ph_version = "0.1";
	assert_int_equal(place_check(&p.vm, &p.src, &p.dst, p.flags), PLACE_OK);
	/* the platform version counts too (R-8 on both keys) */
	pair_init(&p, PLACE_MIGRATE);
	p.src.ph_platform = "3.2.0";
	p.dst.ph_platform = "3.1.9";
	assert_int_equal(place_check(&p.vm, &p.src, &p.dst, p.flags), PLACE_VERSION);
	p.dst.ph_platform = "3.2.0";
	p.dst.ph_version = "1.3.0";
	assert_int_equal(place_check(&p.vm, &p.src, &p.dst, p.flags), PLACE_OK);
	/* a migration to a host behind in the upgrade is VERSION's business, not NEWEST's */
	p.dst.ph_upgrade_behind = true;
	assert_int_equal(place_check(&p.vm, &p.src, &p.dst, p.flags), PLACE_OK);
}

/* Seed 000's matrix as placement applies it: the VM's virtual hardware
 * version against what the destination offers, for starts and moves. */
static void test_hw_platform(void **st)
{
	(void)st;
	for (size_t o = 0; o < NOPS; o++) {
		struct pair p;
		pair_init(&p, OPS[o]);
		p.dst.ph_hw = hw_new, p.dst.ph_nhw = 2;
		p.vm.pv_hw_version = 3; /* the newest: only on the newest hosts */
		assert_int_equal(place_check(&p.vm, src_of(&p), &p.dst, p.flags), PLACE_OK);
		p.dst.ph_hw = hw_old;
		assert_int_equal(place_check(&p.vm, src_of(&p), &p.dst, p.flags), PLACE_HW_PLATFORM);
		expect_json(place_assert(&p.vm, src_of(&p), &p.dst, p.flags),
			    json_pack("[s,s,s,s,s]", "VM_HOST_INCOMPATIBLE_VIRTUAL_HARDWARE_PLATFORM_VERSION", "OpaqueRef:h2",
				      "[1; 2]", "OpaqueRef:vm", "3"),
			    "newest on old");
		p.vm.pv_hw_version = 1; /* one generation below {2,3}: goes, raised */
		p.dst.ph_hw = hw_new;
		assert_int_equal(place_check(&p.vm, src_of(&p), &p.dst, p.flags), PLACE_OK);
		p.vm.pv_hw_version = 0; /* two below: too old */
		assert_int_equal(place_check(&p.vm, src_of(&p), &p.dst, p.flags), PLACE_HW_PLATFORM);
		p.dst.ph_hw = hw_all;
		p.dst.ph_nhw = 4;
		assert_int_equal(place_check(&p.vm, src_of(&p), &p.dst, p.flags), PLACE_OK);
	}
}

static void expect_cpu(struct pair *p, const char *reason)
{
	json_t *e = place_assert(&p->vm, &p->src, &p->dst, p->flags);
	if (!reason) {
		expect_json(e, NULL, "cpu");
		return;
	}
	assert_non_null(e);
	assert_string_equal(xerr_code_of(e), "VM_INCOMPATIBLE_WITH_THIS_HOST");
	if (!strstr(json_string_value(json_array_get(e, 3)), reason))
		fail_msg("reason %s, want %s", json_string_value(json_array_get(e, 3)), reason);
	json_decref(e);
}

static void test_cpu(void **st)
{
	(void)st;
	struct pair p;
	pair_init(&p, PLACE_MIGRATE);
	p.dst.ph_vendor = "AuthenticAMD";
	expect_cpu(&p, "vendor GenuineIntel differs from AuthenticAMD");
	p.flags |= PLACE_FORCE; /* force skips the CPU check only */
	expect_cpu(&p, NULL);
	pair_init(&p, PLACE_MIGRATE);
	p.vm.pv_boot_vendor = "";
	p.dst.ph_vendor = NULL;
	expect_cpu(&p, NULL); /* no recorded vendor: any host's */
	p.vm.pv_boot_features = NULL;
	p.dst.ph_features = LOWER;
	expect_cpu(&p, NULL); /* never booted: any feature set */
	p.dst.ph_features = "bad";
	expect_cpu(&p, "invalid host CPU feature set");
	pair_init(&p, PLACE_MIGRATE);
	p.vm.pv_boot_features = "zz";
	expect_cpu(&p, "invalid VM CPU feature set");
	p.vm.pv_boot_features = "1fcbfbff"; /* a shorter set: zero-extended */
	expect_cpu(&p, NULL);
	p.dst.ph_features = "";
	expect_cpu(&p, "word 0 bits");
	/* the parsed-set form and the texts agree */
	struct cpuid_set a, b;
	assert_int_equal(cpuid_parse(LEVEL, &a), 0);
	assert_int_equal(cpuid_parse(LOWER, &b), 0);
	assert_true(place_cpu_fits(true, PLACE_CPU_SET, &b, false, &a));
	assert_false(place_cpu_fits(true, PLACE_CPU_SET, &a, false, &b));
	assert_false(place_cpu_fits(false, PLACE_CPU_ANY, &a, false, &b));
	assert_false(place_cpu_fits(true, PLACE_CPU_ANY, &a, true, &b));
	assert_false(place_cpu_fits(true, PLACE_CPU_BAD, &a, false, &b));
	assert_true(place_cpu_vendor_ok(NULL, "x") && place_cpu_vendor_ok("", NULL));
	assert_false(place_cpu_vendor_ok("GenuineIntel", NULL));
}

static void test_memory_srs_networks(void **st)
{
	(void)st;
	struct pair p;
	pair_init(&p, PLACE_START);
	p.dst.ph_available = G; /* exactly enough */
	assert_int_equal(place_check(&p.vm, NULL, &p.dst, p.flags), PLACE_OK);
	p.dst.ph_available = -5; /* overcommitted by flights in progress: says 0 */
	expect_json(place_assert(&p.vm, NULL, &p.dst, p.flags),
		    json_pack("[s,s,s]", "HOST_NOT_ENOUGH_FREE_MEMORY", "1073741824", "0"), "negative");
	/* the first SR / network missing, in the VM's order */
	pair_init(&p, PLACE_MIGRATE);
	p.vm.pv_srs = sr12;
	p.vm.pv_nsrs = 2;
	p.dst.ph_srs = sr1;
	p.dst.ph_nsrs = 1;
	expect_json(place_assert(&p.vm, &p.src, &p.dst, p.flags),
		    json_pack("[s,s,s]", "VM_REQUIRES_SR", "OpaqueRef:vm", "OpaqueRef:sr2"), "sr2");
	p.dst.ph_nsrs = 0;
	expect_json(place_assert(&p.vm, &p.src, &p.dst, p.flags),
		    json_pack("[s,s,s]", "VM_REQUIRES_SR", "OpaqueRef:vm", "OpaqueRef:sr1"), "sr1");
	pair_init(&p, PLACE_MIGRATE);
	p.vm.pv_networks = net_ab;
	p.vm.pv_nnetworks = 2;
	p.dst.ph_networks = net_a;
	p.dst.ph_nnetworks = 1;
	expect_json(place_assert(&p.vm, &p.src, &p.dst, p.flags),
		    json_pack("[s,s,s]", "VM_REQUIRES_NETWORK", "OpaqueRef:vm", "OpaqueRef:netB"), "netB");
	p.vm.pv_nnetworks = 0; /* no VIF: no network needed */
	assert_int_equal(place_check(&p.vm, &p.src, &p.dst, p.flags), PLACE_OK);
	assert_int_equal(place_first_missing(sr12, 2, sr12, 2), PLACE_NONE);
	assert_int_equal(place_first_missing(sr12, 2, sr2, 1), 0);
	assert_int_equal(place_first_missing(NULL, 0, NULL, 0), PLACE_NONE);
}

/* ---- picking a host ------------------------------------------------------------ */

struct fx {
	struct place_host src, h[8];
	struct place_vm v[4];
	char href[8][32];
	struct place_pool pool;
};

static struct fx *fx_new(size_t nh, unsigned flags)
{
	struct fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->src = host("OpaqueRef:src");
	for (size_t i = 0; i < nh; i++) {
		snprintf(f->href[i], sizeof f->href[i], "OpaqueRef:h%zu", i);
		f->h[i] = host(f->href[i]);
	}
	bool start = flags & PLACE_START;
	for (size_t i = 0; i < 4; i++)
		f->v[i] = (struct place_vm){.pv_ref = "OpaqueRef:vm", .pv_power_state = start ? "Halted" : "Running",
					    .pv_resident_on = start ? NULLREF : "OpaqueRef:src", .pv_memory = 2 * G,
					    .pv_boot_vendor = "GenuineIntel", .pv_boot_features = LEVEL, .pv_srs = sr1,
					    .pv_nsrs = 1};
	f->pool = (struct place_pool){start ? NULL : &f->src, f->h, nh, f->v, 1, flags};
	return f;
}

static void expect_pick(struct fx *f, const char *const *ex, size_t nex, size_t want_host, json_t *want_err)
{
	size_t got = 42;
	json_t *e = place_choose(&f->pool, 0, ex, nex, &got);
	expect_json(e, want_err, "pick");
	assert_int_equal(got, want_host);
}

static void test_pick_migrate(void **st)
{
	(void)st;
	struct fx *f = fx_new(3, PLACE_MIGRATE);
	f->h[0].ph_available = 32 * G;
	f->h[1].ph_available = 16 * G;
	f->h[2].ph_available = 8 * G;
	expect_pick(f, NULL, 0, 0, NULL);
	const char *ex1[] = {"OpaqueRef:h0"};
	expect_pick(f, ex1, 1, 1, NULL);
	const char *ex2[] = {"OpaqueRef:h1", "OpaqueRef:h0", "OpaqueRef:nothere"};
	expect_pick(f, ex2, 3, 2, NULL);
	const char *ex3[] = {"OpaqueRef:h2", "OpaqueRef:h1", "OpaqueRef:h0"};
	expect_pick(f, ex3, 3, PLACE_NONE, json_pack("[s]", "NO_HOSTS_AVAILABLE"));
	/* the remaining host is too small: the memory error, with its numbers */
	f->h[2].ph_available = G;
	expect_pick(f, ex2, 2, PLACE_NONE, json_pack("[s,s,s]", "HOST_NOT_ENOUGH_FREE_MEMORY", "2147483648", "1073741824"));
	/* the source is never a target, whatever its room */
	f->h[2].ph_available = 8 * G;
	f->h[1] = f->src;
	f->h[1].ph_evacuating = false;
	f->h[1].ph_available = 100 * G;
	expect_pick(f, ex1, 1, 2, NULL);
	/* anti-affinity first */
	static const struct place_group_count there[] = {{"OpaqueRef:grp", 2}};
	f->h[0].ph_groups = there;
	f->h[0].ph_ngroups = 1;
	f->v[0].pv_group = "OpaqueRef:grp";
	f->h[2].ph_available = 4 * G;
	expect_pick(f, NULL, 0, 2, NULL);
	/* its own refusal, even with no host at all */
	f->v[0].pv_has_pci = true;
	expect_pick(f, NULL, 0, PLACE_NONE, json_pack("[s,s]", "VM_HAS_PCI_ATTACHED", "OpaqueRef:vm"));
	f->pool.pp_nhosts = 0;
	expect_pick(f, NULL, 0, PLACE_NONE, json_pack("[s,s]", "VM_HAS_PCI_ATTACHED", "OpaqueRef:vm"));
	size_t h;
	json_t *e = place_choose(&f->pool, 7, NULL, 0, &h);
	assert_string_equal(xerr_code_of(e), "INTERNAL_ERROR");
	assert_int_equal(h, PLACE_NONE);
	json_decref(e);
	free(f);
}

/* VM.start: the spreading rule, and the refusal when nothing fits. */
static void test_pick_start(void **st)
{
	(void)st;
	struct fx *f = fx_new(4, PLACE_START);
	f->h[0].ph_available = 6 * G;
	f->h[1].ph_available = 8 * G;
	f->h[2].ph_available = 8 * G;
	f->h[3].ph_available = 8 * G;
	f->h[1].ph_nresident = 3;
	f->h[2].ph_nresident = 1;
	f->h[3].ph_nresident = 1;
	/* most memory left, then fewest VMs, then the smaller ref */
	expect_pick(f, NULL, 0, 2, NULL);
	f->h[2].ph_enabled = false;
	expect_pick(f, NULL, 0, 3, NULL);
	/* index: one after another, each placement counted */
	f->h[2].ph_enabled = true;
	struct place_index *ix = place_index_new(&f->pool);
	assert_non_null(ix);
	json_t *e;
	size_t seq[6];
	for (size_t k = 0; k < 6; k++) {
		seq[k] = place_pick(ix, 0, NULL, &e);
		assert_null(e);
		place_take(ix, 0, seq[k]);
	}
	/* 8,8,8,6 GiB free, 2 GiB each: h2, h3 (fewer VMs than h1), h1, then
	 * h0 ties at 6 with three hosts and has the fewest VMs */
	size_t want[6] = {2, 3, 1, 0, 2, 3};
	for (size_t k = 0; k < 6; k++)
		assert_int_equal(seq[k], want[k]);
	assert_true(place_left(ix, 2) == 4 * G && place_added(ix, 2) == 2);
	assert_true(place_left(ix, 99) == 0 && place_added(ix, 99) == 0);
	assert_int_equal(place_index_verdict(ix, 0, 0), PLACE_OK);
	assert_int_equal(place_index_verdict(ix, 1, 0), PLACE__COUNT);
	assert_int_equal(place_index_verdict(ix, 0, 9), PLACE__COUNT);
	assert_int_equal(place_pick(ix, 3, NULL, &e), PLACE_NONE);
	assert_string_equal(xerr_code_of(e), "INTERNAL_ERROR");
	json_decref(e);
	place_take(ix, 0, 99); /* out of range: nothing */
	place_index_free(ix);
	place_index_free(NULL);
	/* nothing fits: the real reason of the host that got furthest */
	f->h[0].ph_enabled = false;                    /* DISABLED */
	f->h[1].ph_srs = sr2;                          /* SR: later in the order */
	f->h[1].ph_nsrs = 1;
	f->h[2].ph_evacuating = true;                  /* EVACUATING */
	f->h[3].ph_live = false;                       /* a start: OFFLINE */
	expect_pick(f, NULL, 0, PLACE_NONE, json_pack("[s,s,s]", "VM_REQUIRES_SR", "OpaqueRef:vm", "OpaqueRef:sr1"));
	/* memory beats every other reason, with the roomiest such host */
	f->h[2].ph_evacuating = false;
	f->h[2].ph_available = G;
	expect_pick(f, NULL, 0, PLACE_NONE, json_pack("[s,s,s]", "HOST_NOT_ENOUGH_FREE_MEMORY", "2147483648", "1073741824"));
	f->v[0].pv_template = true;
	expect_pick(f, NULL, 0, PLACE_NONE, json_pack("[s,s]", "VM_IS_TEMPLATE", "OpaqueRef:vm"));
	free(f);
}

/* ---- every caller agrees, over random pools ------------------------------------ */

#define RH 12
#define RV 20

struct rpool {
	struct place_host src, h[RH];
	struct place_vm v[RV];
	char href[RH][32], vref[RV][32], hset[RH][CPUID_TEXT_MAX], vset[RV][CPUID_TEXT_MAX];
	struct place_group_count hg[RH][1];
	struct place_pool pool;
};

static uint64_t rnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return *s >> 33;
}

static const char *pick_of(uint64_t *s, const char *const *from, size_t n)
{
	return from[rnd(s) % n];
}

static const char *const grp[] = {"OpaqueRef:g0", "OpaqueRef:g1", NULL};
static const char *const vers[] = {"1.1.0", "1.2.0", "1.3.1"};
static const char *const vendors[] = {"GenuineIntel", "GenuineIntel", "GenuineIntel", "AuthenticAMD", ""};
static const char *const sets[] = {LEVEL, LEVEL, LOWER, LOWER, "bad", ""};
static const char *const *const srsets[] = {sr1, sr12, sr2, NULL};
static const size_t nsrsets[] = {1, 2, 1, 0};
static const char *const *const netsets[] = {net_a, net_ab, net_b, NULL};

/* A feature set of its own (unique sets: the index computes per pair). */
static void own_set(uint64_t *s, char *out)
{
	snprintf(out, CPUID_TEXT_MAX, "1fcbfbff-%08x-%08x", (unsigned)rnd(s) | 0xf0000000u, (unsigned)rnd(s) & 0x3f);
}

static void rpool_hosts(struct rpool *r, uint64_t *s, bool unique)
{
	r->src = host("OpaqueRef:src");
	for (size_t i = 0; i < RH; i++) {
		struct place_host *h = &r->h[i];
		snprintf(r->href[i], sizeof r->href[i], "OpaqueRef:h%02zu", i);
		*h = host(r->href[i]);
		h->ph_enabled = rnd(s) % 8 != 0;
		h->ph_live = rnd(s) % 8 != 0;
		h->ph_has_agent = rnd(s) % 10 != 0;
		h->ph_evacuating = rnd(s) % 10 == 0;
		h->ph_vendor = pick_of(s, vendors, 4);
		if (unique)
			own_set(s, r->hset[i]), h->ph_features = r->hset[i];
		else
			h->ph_features = pick_of(s, sets, 6);
		h->ph_version = pick_of(s, vers, 3);
		h->ph_upgrade_behind = rnd(s) % 8 == 0;
		if (rnd(s) % 3 == 0)
			h->ph_hw = rnd(s) % 2 ? hw_new : hw_old, h->ph_nhw = 2;
		h->ph_available = (int64_t)(rnd(s) % 18) * G / 2 - G;
		size_t k = rnd(s) % 4;
		h->ph_srs = srsets[k], h->ph_nsrs = nsrsets[k];
		k = rnd(s) % 4;
		h->ph_networks = netsets[k], h->ph_nnetworks = nsrsets[k];
		h->ph_nresident = rnd(s) % 4;
		r->hg[i][0] = (struct place_group_count){grp[rnd(s) % 2], rnd(s) % 3};
		h->ph_groups = r->hg[i];
		h->ph_ngroups = 1;
		h->ph_ha = rnd(s) % 4 == 0 ? &ha_gig : NULL;
	}
}

static void rpool_vms(struct rpool *r, uint64_t *s, unsigned flags, bool unique)
{
	bool start = flags & PLACE_START;
	for (size_t i = 0; i < RV; i++) {
		struct place_vm *v = &r->v[i];
		snprintf(r->vref[i], sizeof r->vref[i], "OpaqueRef:vm%02zu", i);
		*v = (struct place_vm){.pv_ref = r->vref[i]};
		bool odd = rnd(s) % 8 == 0;
		const char *want = flags & PLACE_RESUME ? "Suspended" : "Halted";
		v->pv_power_state = start != odd ? want : "Running";
		v->pv_resident_on = start ? NULLREF : rnd(s) % 6 ? "OpaqueRef:src" : r->href[rnd(s) % RH];
		v->pv_template = rnd(s) % 20 == 0;
		v->pv_busy = rnd(s) % 20 == 0;
		v->pv_nomigrate = rnd(s) % 20 == 0;
		v->pv_has_pci = rnd(s) % 30 == 0;
		v->pv_has_vusb = rnd(s) % 30 == 0;
		v->pv_memory = (int64_t)(rnd(s) % 16 + 1) * G / 4;
		v->pv_boot_vendor = pick_of(s, vendors, 5);
		if (unique)
			own_set(s, r->vset[i]), v->pv_boot_features = r->vset[i];
		else
			v->pv_boot_features = rnd(s) % 6 ? pick_of(s, sets, 4) : rnd(s) % 2 ? NULL : "zz";
		size_t k = rnd(s) % 3;
		v->pv_srs = srsets[k], v->pv_nsrs = nsrsets[k];
		k = rnd(s) % 4;
		v->pv_networks = netsets[k], v->pv_nnetworks = nsrsets[k];
		v->pv_group = grp[rnd(s) % 3];
		v->pv_hw_version = rnd(s) % 6 == 0 ? (int64_t)(rnd(s) % 4) : 0;
	}
}

static struct rpool *rpool_new(uint64_t seed, unsigned flags, bool unique)
{
	struct rpool *r = calloc(1, sizeof *r);
	assert_non_null(r);
	rpool_hosts(r, &seed, unique);
	rpool_vms(r, &seed, flags, unique);
	r->pool = (struct place_pool){flags & PLACE_START ? NULL : &r->src, r->h, RH, r->v, RV, flags};
	return r;
}

/* The pair's verdict as each caller sees it, against place_check's. */
static void callers_agree(const struct rpool *r, const struct place_index *ix, size_t v, size_t h)
{
	const struct place_pool *pool = &r->pool;
	const struct place_vm *vm = &r->v[v];
	enum place_verdict want = place_check(vm, pool->pp_source, &r->h[h], pool->pp_flags);
	char what[96];
	snprintf(what, sizeof what, "flags %u vm %zu host %zu (%s)", pool->pp_flags, v, h, place_verdict_name(want));
	/* the planners' index */
	if (place_index_verdict(ix, v, h) != want)
		fail_msg("%s: index says %s", what, place_verdict_name(place_index_verdict(ix, v, h)));
	/* VM.start / the evacuation's re-pick: every other host excluded */
	const char *ex[RH];
	for (size_t i = 0, n = 0; i < RH; i++)
		if (i != h)
			ex[n++] = r->href[i];
	size_t got;
	json_t *e = place_choose(pool, v, ex, RH - 1, &got);
	expect_json(e, place_error(want, vm, pool->pp_source, &r->h[h], pool->pp_flags), what);
	assert_int_equal(got, want == PLACE_OK ? h : PLACE_NONE);
	/* host.evacuate's plan of that VM over that host */
	struct place_pool one = {pool->pp_source, &r->h[h], 1, vm, 1, pool->pp_flags};
	struct evac_plan *pl = evacplan_plan(&one);
	assert_non_null(pl);
	expect_json(json_incref(pl->pl_vms[0].ep_error), place_error(want, vm, pool->pp_source, &r->h[h], pool->pp_flags),
		    what);
	assert_int_equal(pl->pl_vms[0].ep_host, want == PLACE_OK ? 0 : PLACE_NONE);
	evacplan_free(pl);
}

static void test_callers_agree(void **st)
{
	(void)st;
	unsigned seen[NOPS][PLACE__COUNT] = {{0}};
	for (uint64_t seed = 1; seed <= 40; seed++)
		for (size_t o = 0; o < NOPS; o++) {
			struct rpool *r = rpool_new(seed, OPS[o], seed % 4 == 0);
			struct place_index *ix = place_index_new(&r->pool);
			assert_non_null(ix);
			for (size_t v = 0; v < RV; v++)
				for (size_t h = 0; h < RH; h++) {
					callers_agree(r, ix, v, h);
					seen[o][place_check(&r->v[v], r->pool.pp_source, &r->h[h], OPS[o])]++;
				}
			place_index_free(ix);
			free(r);
		}
	/* the pools really reach every check each operation makes, and OK */
	for (size_t o = 0; o < NOPS; o++)
		for (int row = PLACE_OK; row < PLACE__COUNT; row++) {
			bool reachable = row == PLACE_OK || place_applies(row, OPS[o]);
			if (reachable != (seen[o][row] > 0))
				fail_msg("flags %u: %s seen %u times", OPS[o], place_verdict_name(row), seen[o][row]);
		}
}

/* A whole pool: the pick is a host every check accepts and the best by
 * the rule; a refusal is the one the rule prefers. Checked against a
 * brute force over place_check. */
static size_t group_count(const struct place_host *h, const char *g)
{
	size_t n = 0;
	for (size_t i = 0; g && i < h->ph_ngroups; i++)
		n += strcmp(h->ph_groups[i].gc_group, g) == 0 ? h->ph_groups[i].gc_count : 0;
	return n;
}

static bool oracle_better(const struct place_vm *vm, const struct place_host *a, const struct place_host *b)
{
	size_t ga = group_count(a, vm->pv_group), gb = group_count(b, vm->pv_group);
	if (ga != gb)
		return ga < gb;
	if (a->ph_available != b->ph_available)
		return a->ph_available > b->ph_available;
	if (a->ph_nresident != b->ph_nresident)
		return a->ph_nresident < b->ph_nresident;
	return strcmp(a->ph_ref, b->ph_ref) < 0;
}

static json_t *oracle(const struct rpool *r, size_t v, size_t *best)
{
	const struct place_pool *p = &r->pool;
	const struct place_vm *vm = &r->v[v];
	size_t roomiest = PLACE_NONE, furthest = PLACE_NONE;
	enum place_verdict far = PLACE_OK;
	*best = PLACE_NONE;
	for (size_t h = 0; h < RH; h++) {
		enum place_verdict x = place_check(vm, p->pp_source, &r->h[h], p->pp_flags);
		if (place_scope_of(x) == PLACE_SCOPE_VM && x != PLACE_OK)
			return place_error(x, vm, p->pp_source, &r->h[h], p->pp_flags);
		if (x == PLACE_OK) {
			if (*best == PLACE_NONE || oracle_better(vm, &r->h[h], &r->h[*best]))
				*best = h;
		} else if (x == PLACE_MEMORY) {
			if (roomiest == PLACE_NONE || r->h[h].ph_available > r->h[roomiest].ph_available)
				roomiest = h;
		} else if (furthest == PLACE_NONE || x > far) {
			furthest = h, far = x;
		}
	}
	if (*best != PLACE_NONE)
		return NULL;
	if (far == PLACE_HA_PLAN) /* a host had room, the failover plan needs it */
		return place_error(far, vm, p->pp_source, &r->h[furthest], p->pp_flags);
	if (roomiest != PLACE_NONE)
		return place_error(PLACE_MEMORY, vm, p->pp_source, &r->h[roomiest], p->pp_flags);
	return place_error(far, vm, p->pp_source, &r->h[furthest], p->pp_flags);
}

static void test_pick_is_the_rule(void **st)
{
	(void)st;
	size_t picked = 0, refused = 0;
	for (uint64_t seed = 100; seed < 130; seed++)
		for (size_t o = 0; o < NOPS; o++) {
			struct rpool *r = rpool_new(seed, OPS[o], false);
			for (size_t v = 0; v < RV; v++) {
				size_t want, got;
				json_t *e = place_choose(&r->pool, v, NULL, 0, &got);
				expect_json(e, oracle(r, v, &want), "pick");
				assert_int_equal(got, want);
				picked += got != PLACE_NONE;
				refused += got == PLACE_NONE;
			}
			free(r);
		}
	assert_true(picked > 100 && refused > 100);
}

/* An index that remembers pair verdicts picks as a fresh one does, the
 * first time and every time after (the failover planner's use). */
static void test_remembered_picks(void **st)
{
	(void)st;
	for (uint64_t seed = 200; seed < 215; seed++)
		for (size_t o = 0; o < NOPS; o++) {
			struct rpool *r = rpool_new(seed, OPS[o], false);
			struct place_index *ix = place_index_new(&r->pool);
			place_index_remember(ix);
			for (int round = 0; round < 3; round++)
				for (size_t v = 0; v < RV; v++) {
					size_t want, got;
					json_t *e = NULL, *we = oracle(r, v, &want);
					got = place_pick(ix, v, NULL, &e);
					expect_json(e, we, "remembered pick");
					assert_int_equal(got, want);
				}
			place_index_free(ix);
			free(r);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_each_check),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_versions),
		cmocka_unit_test(test_hw_platform),
		cmocka_unit_test(test_cpu),
		cmocka_unit_test(test_memory_srs_networks),
		cmocka_unit_test(test_pick_migrate),
		cmocka_unit_test(test_pick_start),
		cmocka_unit_test(test_callers_agree),
		cmocka_unit_test(test_pick_is_the_rule),
		cmocka_unit_test(test_remembered_picks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
