/* test_upgrade.c - the rolling upgrade's rules (upgrade.c, upgrade_home.c)
 * and its blocked-operation table (ops.c): the version keys, seed 000's
 * matrix in full, the per-host steps for every phase, the order, the
 * host-back rule, the ETA, the command's substitution, and the going-home
 * plan (scenarios and a property over random pools). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "ops.h"
#include "upgrade.h"
#include "xerr.h"

#define G (1LL << 30)

static struct upgrade_ver V(const char *product, const char *platform)
{
	return (struct upgrade_ver){product, platform};
}

/* ---- versions ------------------------------------------------------------------ */

static void test_version_keys(void **st)
{
	(void)st;
	assert_true(upgrade_version_cmp("1.2.10", "1.2.9") > 0);
	assert_true(upgrade_version_cmp(NULL, "") == 0);
	assert_true(upgrade_version_cmp("2", "10") < 0);
	struct upgrade_ver a = V("8.2.1", "3.2.0");
	/* XAPI's RPU keys: product major.minor, the whole platform version */
	struct upgrade_ver patch = V("8.2.7", "3.2.0"), minor = V("8.3.0", "3.2.0"), plat = V("8.2.1", "3.2.1");
	assert_true(upgrade_same_keys(&a, &patch));
	assert_false(upgrade_same_keys(&a, &minor));
	assert_false(upgrade_same_keys(&a, &plat));
	struct upgrade_ver none = V(NULL, NULL), empty = V("", "");
	assert_true(upgrade_same_keys(&none, &empty));
	struct upgrade_ver pool[] = {a, patch, a};
	assert_false(upgrade_mixed(pool, 3, &a));
	pool[1] = minor;
	assert_true(upgrade_mixed(pool, 3, &a));
	assert_false(upgrade_mixed(NULL, 0, &a));
	/* migrations: same or newer on both keys */
	assert_true(upgrade_not_older(&minor, &a));
	assert_false(upgrade_not_older(&a, &minor));
	struct upgrade_ver newer_prod_older_plat = V("8.3.0", "3.1.0");
	assert_false(upgrade_not_older(&newer_prod_older_plat, &a));
	assert_true(upgrade_not_older(&a, &a));
	/* the coordinator: the product version, every part (CP-43901 compares builds) */
	assert_true(upgrade_above_coordinator(&patch, &a));
	assert_false(upgrade_above_coordinator(&a, &patch));
	assert_false(upgrade_above_coordinator(&plat, &a));
}

static void test_newest(void **st)
{
	(void)st;
	struct upgrade_ver h[] = {V("2.0.0", "2.0"), V("1.0.0", "1.0"), V("2.0.0", "2.0"), V("2.0.0", "1.0")};
	bool out[4];
	upgrade_newest(h, 4, out);
	assert_true(out[0] && out[2]);
	assert_false(out[1] || out[3]);
	struct upgrade_ver same[] = {V("1", "1"), V("1", "1")};
	upgrade_newest(same, 2, out);
	assert_true(out[0] && out[1]);
}

/* ---- seed 000: the virtual hardware matrix ----------------------------------------- */

/* Hyper-V's hosts as virtual hardware sets: 2008 R2 runs configuration
 * version 3, 2012 version 4, 2012 R2 version 5, vNext 5 and 6. */
static const int64_t w2008r2[] = {3}, w2012[] = {4}, w2012r2[] = {5}, vnext[] = {5, 6};
struct hwhost {
	const char *name;
	const int64_t *set;
	size_t n;
};
static const struct hwhost HV[] = {{"2008R2", w2008r2, 1}, {"2012", w2012, 1}, {"2012R2", w2012r2, 1}, {"vNext", vnext, 2}};

static void test_seed_matrix(void **st)
{
	(void)st;
	/* the seed's table, row by row */
	static const struct {
		int from, to;
		int64_t vm;
		enum upgrade_way want;
	} rows[] = {
		{3, 3, 6, UPGRADE_WAY_BOTH}, /* vNext <-> vNext: both ways */
		{3, 3, 5, UPGRADE_WAY_BOTH},
		{3, 2, 5, UPGRADE_WAY_BOTH}, /* vNext <-> 2012 R2: a version 5.0 VM, both ways */
		{2, 3, 5, UPGRADE_WAY_BOTH},
		{3, 2, 6, UPGRADE_WAY_NONE}, /* a version 6.0 VM only among vNext hosts */
		{1, 3, 4, UPGRADE_WAY_ONE},  /* 2012 -> vNext: one way, raised to 5.0 */
		{3, 1, 5, UPGRADE_WAY_NONE}, /* and not back */
		{0, 3, 3, UPGRADE_WAY_NONE}, /* 2008 R2 -> vNext: refused (too old) */
		{1, 2, 4, UPGRADE_WAY_ONE},  /* 2012 -> 2012 R2: one way (the seed's history) */
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		const struct hwhost *a = &HV[rows[i].from], *b = &HV[rows[i].to];
		enum upgrade_way got = upgrade_hw_way(rows[i].vm, a->set, a->n, b->set, b->n);
		if (got != rows[i].want)
			fail_msg("VM %lld from %s to %s: way %d, want %d", (long long)rows[i].vm, a->name, b->name, got,
				 rows[i].want);
	}
	int64_t at;
	assert_int_equal(upgrade_hw_fit(4, vnext, 2, &at), UPGRADE_HW_RAISED);
	assert_int_equal(at, 5);
	assert_int_equal(upgrade_hw_fit(6, vnext, 2, &at), UPGRADE_HW_RUNS);
	assert_int_equal(at, 6);
	assert_int_equal(upgrade_hw_fit(3, vnext, 2, NULL), UPGRADE_HW_TOO_OLD);
	assert_int_equal(upgrade_hw_fit(7, vnext, 2, NULL), UPGRADE_HW_TOO_NEW);
	assert_int_equal(upgrade_hw_fit(6, w2012r2, 1, NULL), UPGRADE_HW_TOO_NEW);
	/* a host that reports no set offers [0] (XAPI's old hosts) */
	assert_int_equal(upgrade_hw_fit(0, NULL, 0, &at), UPGRADE_HW_RUNS);
	assert_int_equal(upgrade_hw_fit(1, NULL, 0, NULL), UPGRADE_HW_TOO_NEW);
}

/* Every pair of interval sets in 0..5 and every VM version: the verdict by
 * its definition (upgrade.h), one way and back. */
static void test_matrix_in_full(void **st)
{
	(void)st;
	int64_t sets[21][6];
	size_t lens[21], n = 0;
	for (int lo = 0; lo < 6; lo++)
		for (int hi = lo; hi < 6; hi++) {
			for (int v = lo; v <= hi; v++)
				sets[n][v - lo] = v;
			lens[n++] = (size_t)(hi - lo + 1);
		}
	size_t both = 0, one = 0, none = 0;
	for (size_t a = 0; a < n; a++)
		for (size_t b = 0; b < n; b++)
			for (int64_t vm = 0; vm <= 6; vm++) {
				int64_t lo = sets[b][0], hi = sets[b][lens[b] - 1], alo = sets[a][0], ahi = sets[a][lens[a] - 1];
				int64_t there = vm < lo ? lo : vm;
				bool go = vm <= hi && vm >= lo - UPGRADE_HW_RAISE_SPAN;
				bool back = there <= ahi && there >= alo - UPGRADE_HW_RAISE_SPAN;
				enum upgrade_way want = !go ? UPGRADE_WAY_NONE : back ? UPGRADE_WAY_BOTH : UPGRADE_WAY_ONE;
				enum upgrade_way got = upgrade_hw_way(vm, sets[a], lens[a], sets[b], lens[b]);
				if (got != want)
					fail_msg("vm %lld, sets %zu -> %zu: %d, want %d", (long long)vm, a, b, got, want);
				both += want == UPGRADE_WAY_BOTH, one += want == UPGRADE_WAY_ONE, none += want == UPGRADE_WAY_NONE;
			}
	assert_true(both > 100 && one > 100 && none > 100);
}

static void test_hw_parse_text(void **st)
{
	(void)st;
	int64_t v[8];
	assert_int_equal(upgrade_hw_parse("0-2", v, 8), 3);
	assert_true(v[0] == 0 && v[1] == 1 && v[2] == 2);
	assert_int_equal(upgrade_hw_parse("0,2-3,7", v, 8), 4);
	assert_true(v[1] == 2 && v[2] == 3 && v[3] == 7);
	assert_int_equal(upgrade_hw_parse("", v, 8), 0);
	assert_int_equal(upgrade_hw_parse("2-1", v, 8), -1);
	assert_int_equal(upgrade_hw_parse("-1", v, 8), -1);
	assert_int_equal(upgrade_hw_parse("a", v, 8), -1);
	assert_int_equal(upgrade_hw_parse("1,", v, 8), 1);
	assert_int_equal(upgrade_hw_parse("1;2", v, 8), -1);
	assert_int_equal(upgrade_hw_parse("0-9", v, 8), -1); /* more than fits */
	char t[64];
	upgrade_hw_text(vnext, 2, t, sizeof t);
	assert_string_equal(t, "[5; 6]");
	upgrade_hw_text(NULL, 0, t, sizeof t);
	assert_string_equal(t, "[0]");
}

/* ---- the steps of one host ---------------------------------------------------------- */

static struct upgrade_facts F(void)
{
	return (struct upgrade_facts){.uf_live = true, .uf_enabled = true, .uf_can_evacuate = true};
}

static void expect_step(enum upgrade_phase from, struct upgrade_facts f, enum upgrade_action want,
			enum upgrade_phase want_phase, int line)
{
	enum upgrade_phase p = from;
	const char *why = "unset";
	enum upgrade_action a = upgrade_step(&p, &f, &why);
	if (a != want || p != want_phase)
		fail_msg("line %d: %s -> action %d phase %s, want %d %s", line, upgrade_phase_name(from), a,
			 upgrade_phase_name(p), want, upgrade_phase_name(want_phase));
	if ((a == UPGRADE_FAIL) != (why != NULL))
		fail_msg("line %d: a reason exactly when it fails (%s)", line, why ? why : "none");
}
#define STEP(from, f, a, to) expect_step(from, f, a, to, __LINE__)

static void test_steps(void **st)
{
	(void)st;
	struct upgrade_facts f = F();
	/* its turn: checked, then disabled */
	STEP(UPG_PENDING, f, UPGRADE_DISABLE, UPG_EVACUATING);
	f.uf_enabled = false; /* disabled already (a restart after host.disable) */
	STEP(UPG_PENDING, f, UPGRADE_WAIT, UPG_EVACUATING);
	f = F(), f.uf_can_evacuate = false;
	STEP(UPG_PENDING, f, UPGRADE_FAIL, UPG_PENDING);
	f = F(), f.uf_live = false;
	STEP(UPG_PENDING, f, UPGRADE_WAIT, UPG_PENDING);
	f.uf_timed_out = true;
	STEP(UPG_PENDING, f, UPGRADE_FAIL, UPG_PENDING);
	/* evacuating */
	f = F();
	STEP(UPG_EVACUATING, f, UPGRADE_DISABLE, UPG_EVACUATING); /* enabled again by someone: disabled again */
	f.uf_enabled = false, f.uf_resident = 3;
	STEP(UPG_EVACUATING, f, UPGRADE_EVACUATE, UPG_EVACUATING);
	f.uf_evacuating = true;
	STEP(UPG_EVACUATING, f, UPGRADE_WAIT, UPG_EVACUATING); /* resumed after a restart: it goes on */
	f.uf_evacuating = false, f.uf_evac_tries = UPGRADE_EVAC_TRIES;
	STEP(UPG_EVACUATING, f, UPGRADE_FAIL, UPG_EVACUATING);
	f.uf_evac_tries = 1, f.uf_live = false;
	STEP(UPG_EVACUATING, f, UPGRADE_WAIT, UPG_EVACUATING);
	f.uf_timed_out = true;
	STEP(UPG_EVACUATING, f, UPGRADE_FAIL, UPG_EVACUATING);
	f = F(), f.uf_enabled = false;
	STEP(UPG_EVACUATING, f, UPGRADE_RUN, UPG_UPGRADING);
	f.uf_manual = true;
	STEP(UPG_EVACUATING, f, UPGRADE_WAIT, UPG_UPGRADING);
	/* the command */
	f = F(), f.uf_enabled = false;
	f.uf_cmd = UPGRADE_CMD_NONE; /* poold stopped before it ran it */
	STEP(UPG_UPGRADING, f, UPGRADE_RUN, UPG_UPGRADING);
	f.uf_cmd = UPGRADE_CMD_RUNNING;
	STEP(UPG_UPGRADING, f, UPGRADE_WAIT, UPG_UPGRADING);
	f.uf_timed_out = true;
	STEP(UPG_UPGRADING, f, UPGRADE_FAIL, UPG_UPGRADING);
	f.uf_timed_out = false, f.uf_cmd = UPGRADE_CMD_FAILED;
	STEP(UPG_UPGRADING, f, UPGRADE_FAIL, UPG_UPGRADING);
	f.uf_cmd = UPGRADE_CMD_LOST;
	STEP(UPG_UPGRADING, f, UPGRADE_FAIL, UPG_UPGRADING);
	f.uf_cmd = UPGRADE_CMD_OK;
	STEP(UPG_UPGRADING, f, UPGRADE_WAIT, UPG_RETURNING);
	f.uf_cmd = UPGRADE_CMD_NONE, f.uf_manual = true;
	STEP(UPG_UPGRADING, f, UPGRADE_WAIT, UPG_RETURNING);
	/* back */
	f = F(), f.uf_enabled = false;
	STEP(UPG_RETURNING, f, UPGRADE_WAIT, UPG_RETURNING);
	f.uf_timed_out = true;
	STEP(UPG_RETURNING, f, UPGRADE_FAIL, UPG_RETURNING);
	f.uf_back = true; /* back beats the clock */
	STEP(UPG_RETURNING, f, UPGRADE_ENABLE, UPG_DONE);
	STEP(UPG_DONE, f, UPGRADE_ENABLE, UPG_DONE); /* a restart before host.enable answered */
	f.uf_enabled = true;
	STEP(UPG_DONE, f, UPGRADE_NEXT, UPG_DONE);
	STEP(UPG_SKIPPED, f, UPGRADE_NEXT, UPG_SKIPPED);
	STEP(UPG_FAILED, f, UPGRADE_FAIL, UPG_FAILED);
	STEP(UPG__COUNT, f, UPGRADE_FAIL, UPG__COUNT);
	for (int p = 0; p < UPG__COUNT; p++)
		assert_int_equal(upgrade_phase_parse(upgrade_phase_name(p)), p);
	assert_int_equal(upgrade_phase_parse("nonsense"), UPG__COUNT);
	assert_int_equal(upgrade_phase_parse(NULL), UPG__COUNT);
	assert_string_equal(upgrade_phase_name(UPG__COUNT), "?");
}

static void test_host_back(void **st)
{
	(void)st;
	struct upgrade_ver a = V("1.0.0", "1.0"), b = V("2.0.0", "2.0"), b2 = V("2.0.3", "2.0"), c = V("3.0.0", "3.0");
	/* a member: at the master's version, live, and a new run or newer */
	assert_true(upgrade_host_back(true, true, &a, &b, &b, false));
	assert_true(upgrade_host_back(true, false, &a, &b, &b, false));
	assert_true(upgrade_host_back(true, false, &a, &b2, &b, false)); /* a patch level apart: same keys */
	assert_false(upgrade_host_back(false, true, &a, &b, &b, false));  /* not live */
	assert_false(upgrade_host_back(true, true, &a, &a, &b, false));   /* came back still at A */
	assert_false(upgrade_host_back(true, true, &a, &c, &b, false));   /* beyond the master */
	assert_false(upgrade_host_back(true, false, &b, &b, &b, false));  /* the old run still reports */
	assert_true(upgrade_host_back(true, true, &b, &b, &b, false));    /* a reboot at the same version */
	/* the master: anything not older, newer or rebooted */
	assert_true(upgrade_host_back(true, false, &a, &b, &a, true));
	assert_true(upgrade_host_back(true, true, &a, &a, &a, true));
	assert_false(upgrade_host_back(true, false, &a, &a, &a, true));
	assert_false(upgrade_host_back(true, true, &b, &a, &a, true)); /* older than before */
}

static void test_order(void **st)
{
	(void)st;
	struct upgrade_ver v[] = {V("1", "1"), V("1", "1"), V("1", "1"), V("1", "1")};
	const char *names[] = {"host3", "host1", "host2", "host0"}, *refs[] = {"r3", "r1", "r2", "r0"};
	size_t order[4];
	bool skip[4];
	assert_int_equal(upgrade_order(v, names, refs, 4, 2, order, skip), 4);
	size_t want[] = {2, 3, 1, 0}; /* the master first, then by name */
	for (int i = 0; i < 4; i++) {
		assert_int_equal(order[i], want[i]);
		assert_false(skip[i]);
	}
	/* a run that stopped part-way: the master and host3 are at 2 */
	v[2] = V("2", "2"), v[0] = V("2", "2");
	upgrade_order(v, names, refs, 4, 2, order, skip);
	assert_true(skip[2] && skip[0]);
	assert_false(skip[1] || skip[3]);
	assert_int_equal(order[0], 2);
	/* same names: by ref */
	const char *same[] = {"h", "h", "h", "h"};
	struct upgrade_ver e[] = {V("1", "1"), V("1", "1"), V("1", "1"), V("1", "1")};
	upgrade_order(e, same, refs, 4, PLACE_NONE, order, skip);
	size_t by_ref[] = {3, 1, 2, 0};
	for (int i = 0; i < 4; i++)
		assert_int_equal(order[i], by_ref[i]);
}

static void test_eta(void **st)
{
	(void)st;
	double took[] = {100, 200};
	assert_true(upgrade_eta(NULL, 0, 3, 0) < 0);
	assert_true(upgrade_eta(took, 2, 0, 0) == 0);
	assert_true(upgrade_eta(took, 2, 1, 50) == 100);   /* mean 150, 50 s in */
	assert_true(upgrade_eta(took, 2, 3, 0) == 450);
	assert_true(upgrade_eta(took, 2, 2, 400) == 150);  /* the current one overran: 0 for it */
}

static void test_command(void **st)
{
	(void)st;
	char *c = upgrade_command("up --host {uuid} at {address} ({name}) {uuid}", "u-1", "10.0.0.1", "my host");
	assert_string_equal(c, "up --host 'u-1' at '10.0.0.1' ('my host') 'u-1'");
	free(c);
	c = upgrade_command("reboot", "u", "a", "n");
	assert_string_equal(c, "reboot");
	free(c);
	c = upgrade_command("{nope} {", "u", "a", "n");
	assert_string_equal(c, "{nope} {");
	free(c);
	assert_null(upgrade_command("x {name}", "u", "a", "it's"));
	assert_null(upgrade_command("x", "u", "a\n", "n")); /* refused even when unused */
	c = upgrade_command("", "u", "a", "n");
	assert_string_equal(c, "");
	free(c);
}

/* ---- going home ----------------------------------------------------------------------- */

struct hp {
	struct place_host h[6];
	struct place_vm v[12];
	char vref[12][32], href[6][32]; /* room for any size_t: -O1 checks it */
	size_t at[12], home[12];
	struct place_pool pool;
};

static const char *const SR1[] = {"OpaqueRef:sr1"};

static void hp_init(struct hp *p, size_t nh, size_t nv)
{
	memset(p, 0, sizeof *p);
	for (size_t i = 0; i < nh; i++) {
		snprintf(p->href[i], sizeof p->href[i], "OpaqueRef:h%zu", i);
		p->h[i] = (struct place_host){.ph_ref = p->href[i], .ph_enabled = true, .ph_live = true, .ph_has_agent = true,
					      .ph_vendor = "GenuineIntel", .ph_features = "", .ph_version = "2.0",
					      .ph_available = 4 * G, .ph_srs = SR1, .ph_nsrs = 1};
	}
	for (size_t i = 0; i < nv; i++) {
		snprintf(p->vref[i], sizeof p->vref[i], "OpaqueRef:v%02zu", i);
		p->v[i] = (struct place_vm){.pv_ref = p->vref[i], .pv_power_state = "Running", .pv_memory = G, .pv_srs = SR1,
					    .pv_nsrs = 1};
		p->at[i] = 0, p->home[i] = PLACE_NONE;
	}
	p->pool = (struct place_pool){NULL, p->h, nh, p->v, nv, PLACE_MIGRATE};
}

/* Put VM v on host `at` with home `home`, its memory taken there. */
static void hp_vm(struct hp *p, size_t v, size_t at, size_t home, int64_t mem)
{
	p->v[v].pv_memory = mem;
	p->at[v] = at, p->home[v] = home;
	p->v[v].pv_resident_on = p->href[at];
}

/* The plan, checked: each wave fits the memory left before it, every
 * move passes placement then, VMs end home or stuck (never both). */
static struct upgrade_home *hp_plan(struct hp *p)
{
	struct upgrade_home *h = upgrade_home_plan(&p->pool, p->at, p->home);
	assert_non_null(h);
	int64_t free_now[6], freed[6] = {0};
	size_t cur[12];
	for (size_t i = 0; i < p->pool.pp_nhosts; i++)
		free_now[i] = p->h[i].ph_available;
	memcpy(cur, p->at, sizeof cur);
	int wave = 0;
	for (size_t i = 0; i < h->hh_nmoves; i++) {
		const struct upgrade_move *m = &h->hh_moves[i];
		assert_true(m->hm_wave >= wave);
		for (; wave < m->hm_wave; wave++)
			for (size_t k = 0; k < 6; k++)
				free_now[k] += freed[k], freed[k] = 0;
		assert_int_equal(m->hm_from, cur[m->hm_vm]);
		assert_true(p->v[m->hm_vm].pv_memory <= free_now[m->hm_to]);
		free_now[m->hm_to] -= p->v[m->hm_vm].pv_memory;
		freed[m->hm_from] += p->v[m->hm_vm].pv_memory;
		cur[m->hm_vm] = m->hm_to;
		assert_true(m->hm_park ? m->hm_to != p->home[m->hm_vm] : m->hm_to == p->home[m->hm_vm]);
	}
	for (size_t v = 0; v < p->pool.pp_nvms; v++)
		if (p->home[v] != PLACE_NONE && (cur[v] == p->home[v]) == (h->hh_stuck[v] != NULL))
			fail_msg("VM %zu: at %zu, home %zu, stuck %p", v, cur[v], p->home[v], (void *)h->hh_stuck[v]);
	return h;
}

static void test_home_simple(void **st)
{
	(void)st;
	struct hp p;
	hp_init(&p, 3, 3);
	hp_vm(&p, 0, 1, 0, G), hp_vm(&p, 1, 2, 0, G), hp_vm(&p, 2, 1, 1, G); /* v2 is home already */
	struct upgrade_home *h = hp_plan(&p);
	assert_int_equal(h->hh_nmoves, 2);
	assert_int_equal(h->hh_moves[0].hm_wave, 0);
	assert_int_equal(h->hh_moves[1].hm_wave, 0);
	upgrade_home_free(h);
}

static void test_home_foreign_first(void **st)
{
	(void)st;
	/* h0 is full of v1 (whose home is h1); v0 (home h0) waits until v1 left */
	struct hp p;
	hp_init(&p, 3, 2);
	hp_vm(&p, 0, 2, 0, 2 * G), hp_vm(&p, 1, 0, 1, 2 * G);
	p.h[0].ph_available = G, p.h[1].ph_available = 4 * G, p.h[2].ph_available = 0;
	struct upgrade_home *h = hp_plan(&p);
	assert_int_equal(h->hh_nmoves, 2);
	assert_int_equal(h->hh_moves[0].hm_vm, 1); /* the foreign one out first */
	assert_int_equal(h->hh_moves[0].hm_wave, 0);
	assert_int_equal(h->hh_moves[1].hm_vm, 0);
	assert_int_equal(h->hh_moves[1].hm_wave, 1);
	upgrade_home_free(h);
}

static void test_home_cycle_parks(void **st)
{
	(void)st;
	/* v0 (home h0) sits on h1, v1 (home h1) on h0, both full: one goes to h2 first */
	struct hp p;
	hp_init(&p, 3, 2);
	hp_vm(&p, 0, 1, 0, 2 * G), hp_vm(&p, 1, 0, 1, 2 * G);
	p.h[0].ph_available = 0, p.h[1].ph_available = 0, p.h[2].ph_available = 2 * G;
	struct upgrade_home *h = hp_plan(&p);
	assert_int_equal(h->hh_nmoves, 3);
	assert_true(h->hh_moves[0].hm_park);
	assert_int_equal(h->hh_moves[0].hm_to, 2);
	assert_null(h->hh_stuck[0]);
	assert_null(h->hh_stuck[1]);
	upgrade_home_free(h);
	/* no third host with room: both stay, with the memory error */
	p.h[2].ph_available = G;
	h = hp_plan(&p);
	assert_int_equal(h->hh_nmoves, 0);
	assert_string_equal(xerr_code_of(h->hh_stuck[0]), "HOST_NOT_ENOUGH_FREE_MEMORY");
	upgrade_home_free(h);
}

static void test_home_homeless_parked(void **st)
{
	(void)st;
	/* v1 has no home (started during the run) and fills h0, v0's home */
	struct hp p;
	hp_init(&p, 2, 2);
	hp_vm(&p, 0, 1, 0, 2 * G), hp_vm(&p, 1, 0, PLACE_NONE, 2 * G);
	p.h[0].ph_available = 0, p.h[1].ph_available = 0;
	struct upgrade_home *h = hp_plan(&p);
	assert_int_equal(h->hh_nmoves, 0); /* h1 has no room for v1 either: stuck */
	assert_non_null(h->hh_stuck[0]);
	assert_null(h->hh_stuck[1]); /* a VM without a home is never "stuck" */
	upgrade_home_free(h);
	hp_init(&p, 3, 2);
	hp_vm(&p, 0, 1, 0, 2 * G), hp_vm(&p, 1, 0, PLACE_NONE, 2 * G);
	p.h[0].ph_available = 0, p.h[1].ph_available = 0, p.h[2].ph_available = 3 * G;
	h = hp_plan(&p);
	assert_int_equal(h->hh_nmoves, 2);
	assert_true(h->hh_moves[0].hm_park && h->hh_moves[0].hm_vm == 1);
	upgrade_home_free(h);
}

static void test_home_refusals(void **st)
{
	(void)st;
	struct hp p;
	hp_init(&p, 2, 2);
	hp_vm(&p, 0, 1, 0, G), hp_vm(&p, 1, 1, 0, G);
	p.h[0].ph_enabled = false; /* home disabled (the host whose upgrade failed) */
	struct upgrade_home *h = hp_plan(&p);
	assert_int_equal(h->hh_nmoves, 0);
	assert_string_equal(xerr_code_of(h->hh_stuck[0]), "HOST_DISABLED");
	upgrade_home_free(h);
	/* home older than where it is now: the VERSION rule keeps it */
	hp_init(&p, 2, 1);
	hp_vm(&p, 0, 1, 0, G);
	p.h[0].ph_version = "1.0";
	h = hp_plan(&p);
	assert_string_equal(xerr_code_of(h->hh_stuck[0]), "VM_HOST_INCOMPATIBLE_VERSION_MIGRATE");
	upgrade_home_free(h);
	/* never more than there is: 3 x 2 GiB home to 4 GiB */
	hp_init(&p, 2, 3);
	for (size_t v = 0; v < 3; v++)
		hp_vm(&p, v, 1, 0, 2 * G);
	h = hp_plan(&p);
	assert_int_equal(h->hh_nmoves, 2);
	assert_non_null(h->hh_stuck[2]);
	upgrade_home_free(h);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
	return *s;
}

static void test_home_random(void **st)
{
	(void)st;
	size_t moved = 0, parked = 0, stuck = 0;
	for (uint64_t seed = 1; seed <= 400; seed++) {
		uint64_t s = seed * 0x9e3779b97f4a7c15ULL;
		struct hp p;
		size_t nh = 2 + rnd(&s) % 4, nv = rnd(&s) % 12;
		hp_init(&p, nh, nv);
		for (size_t i = 0; i < nh; i++)
			p.h[i].ph_available = (int64_t)(rnd(&s) % 5) * G;
		for (size_t v = 0; v < nv; v++)
			hp_vm(&p, v, rnd(&s) % nh, rnd(&s) % 5 ? rnd(&s) % nh : PLACE_NONE, (int64_t)(1 + rnd(&s) % 2) * G);
		struct upgrade_home *h = hp_plan(&p); /* the checks are hp_plan's */
		for (size_t i = 0; i < h->hh_nmoves; i++)
			parked += h->hh_moves[i].hm_park, moved += !h->hh_moves[i].hm_park;
		for (size_t v = 0; v < nv; v++)
			stuck += h->hh_stuck[v] != NULL;
		upgrade_home_free(h);
	}
	assert_true(moved > 100 && parked > 5 && stuck > 50);
}

/* ---- the blocked-operation table (ops.c) -------------------------------------------------- */

static void expect_blocked(const char *cls, const char *op, bool blocked)
{
	json_t *e = ops_upgrade_check(cls, op);
	if (blocked != (e != NULL))
		fail_msg("%s.%s: %s", cls, op, e ? "refused" : "allowed");
	if (e) {
		char name[96];
		snprintf(name, sizeof name, "%s.%s", cls, op);
		assert_string_equal(xerr_code_of(e), "NOT_SUPPORTED_DURING_UPGRADE");
		assert_string_equal(json_string_value(json_array_get(e, 1)), name);
		assert_true(strlen(json_string_value(json_array_get(e, 2))) > 20); /* a reason, unlike XAPI's [] */
	}
	json_decref(e);
}

static void test_blocked_table(void **st)
{
	(void)st;
	/* every VM operation poold implements (ops.c's vm_rules), decided as
	 * XAPI's rpu_allowed_vm_operations decides it */
	static const char *const vm_ok[] = {"start",	     "start_on",	  "clean_shutdown", "hard_shutdown",
					    "clean_reboot",  "hard_reboot",	  "pause",	    "unpause",
					    "suspend",	     "resume",		  "resume_on",	    "pool_migrate",
					    "clone",	     "copy",		  "provision",	    "destroy",
					    "migrate_send",  "changing_memory_live", "changing_VCPUs_live", "power_state_reset"};
	for (size_t i = 0; i < sizeof vm_ok / sizeof *vm_ok; i++) {
		assert_true(ops_vm_known(vm_ok[i]) || strcmp(vm_ok[i], "migrate_send") == 0);
		expect_blocked("VM", vm_ok[i], false);
	}
	static const char *const vm_no[] = {"shutdown",	      "changing_memory_limits", "changing_VCPUs",
					    "snapshot",	      "checkpoint",		"revert",
					    "reverting",      "changing_dynamic_range", "changing_static_range",
					    "an_op_of_tomorrow"};
	for (size_t i = 0; i < sizeof vm_no / sizeof *vm_no; i++)
		expect_blocked("VM", vm_no[i], true);
	expect_blocked("VDI", "snapshot", false);
	expect_blocked("VDI", "resize", false);
	expect_blocked("VDI", "resize_online", false);
	expect_blocked("VDI", "mirror", true);
	expect_blocked("VDI", "enable_cbt", true);
	expect_blocked("SR", "vdi_create", false);
	expect_blocked("SR", "plug", false);
	expect_blocked("SR", "vdi_mirror", true);
	expect_blocked("SR", "create", true);
	expect_blocked("pool", "enable_ha", true);
	expect_blocked("pool", "disable_ha", false);
	/* XAPI checks the mode for VMs, VDIs, SRs and the pool only: hosts are
	 * rebooted and devices hot-plugged during an upgrade */
	expect_blocked("host", "evacuate", false);
	expect_blocked("host", "reboot", false);
	expect_blocked("VBD", "plug", false);
	expect_blocked("VIF", "unplug", false);
}

static bool listed(const json_t *ops, const char *op)
{
	size_t i;
	json_t *o;
	json_array_foreach(ops, i, o) if (strcmp(json_string_value(o), op) == 0) return true;
	return false;
}

/* The field setters XAPI runs as VM operations are blocked as those are;
 * other fields are no operation. */
static void test_field_setters(void **st)
{
	(void)st;
	static const char *const fields[] = {"memory_static_min", "memory_static_max", "memory_dynamic_min",
					     "memory_dynamic_max", "VCPUs_max", "VCPUs_at_startup"};
	for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
		const char *op = ops_vm_field_op(fields[i]);
		assert_non_null(op);
		assert_true(ops_vm_known(op));
		expect_blocked("VM", op, true);
	}
	assert_string_equal(ops_vm_field_op("memory_static_max"), "changing_static_range");
	assert_string_equal(ops_vm_field_op("VCPUs_at_startup"), "changing_VCPUs");
	assert_null(ops_vm_field_op("name_label"));
	assert_null(ops_vm_field_op("memory_target"));
	assert_null(ops_vm_field_op("other_config"));
}

/* allowed_operations follow the mode: the same decision as the refusal,
 * for a halted and a running VM. */
static void test_allowed_in_mode(void **st)
{
	(void)st;
	json_t *vm = json_pack("{s:s, s:s, s:b, s:{}}", "power_state", "Halted", "scheduled_to_be_resident_on",
			       "OpaqueRef:NULL", "is_a_template", 0, "current_operations");
	for (int run = 0; run < 2; run++) {
		struct ops_facts f = {0};
		json_t *normal = ops_allowed("VM", "OpaqueRef:vm", vm, &f);
		f.of_rolling = true;
		json_t *rolling = ops_allowed("VM", "OpaqueRef:vm", vm, &f);
		size_t i, blocked = 0;
		json_t *o;
		json_array_foreach(normal, i, o) {
			json_t *e = ops_upgrade_check("VM", json_string_value(o));
			assert_int_equal(listed(rolling, json_string_value(o)), e == NULL);
			blocked += e != NULL;
			json_decref(e);
		}
		assert_int_equal(json_array_size(normal), json_array_size(rolling) + blocked);
		assert_true(listed(normal, "snapshot") && !listed(rolling, "snapshot"));
		assert_true(listed(normal, "changing_dynamic_range") && !listed(rolling, "changing_dynamic_range"));
		const char *kept = run ? "pool_migrate" : "start";
		assert_true(listed(normal, kept) && listed(rolling, kept));
		json_decref(normal);
		json_decref(rolling);
		json_object_set_new(vm, "power_state", json_string("Running"));
	}
	struct ops_facts f = {.of_rolling = true};
	json_object_set_new(vm, "power_state", json_string("Halted"));
	json_t *e = ops_check("VM", "OpaqueRef:vm", vm, &f, "changing_memory_limits");
	assert_string_equal(xerr_code_of(e), "NOT_SUPPORTED_DURING_UPGRADE");
	json_decref(e);
	/* the VM's own state comes first, as XAPI checks the mode last */
	json_object_set_new(vm, "power_state", json_string("Running"));
	e = ops_check("VM", "OpaqueRef:vm", vm, &f, "changing_memory_limits");
	assert_string_equal(xerr_code_of(e), "VM_BAD_POWER_STATE");
	json_decref(e);
	json_decref(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version_keys),  cmocka_unit_test(test_newest),
		cmocka_unit_test(test_seed_matrix),   cmocka_unit_test(test_matrix_in_full),
		cmocka_unit_test(test_hw_parse_text), cmocka_unit_test(test_steps),
		cmocka_unit_test(test_host_back),     cmocka_unit_test(test_order),
		cmocka_unit_test(test_eta),           cmocka_unit_test(test_command),
		cmocka_unit_test(test_home_simple),   cmocka_unit_test(test_home_foreign_first),
		cmocka_unit_test(test_home_cycle_parks), cmocka_unit_test(test_home_homeless_parked),
		cmocka_unit_test(test_home_refusals), cmocka_unit_test(test_home_random),
		cmocka_unit_test(test_blocked_table), cmocka_unit_test(test_field_setters),
		cmocka_unit_test(test_allowed_in_mode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
