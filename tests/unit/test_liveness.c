/* test_liveness.c - XAPI's survival rule (ha/liveness.c), exhaustively:
 * for 1 to 5 hosts, every way of splitting the network into partitions,
 * every subset of hosts that still sees the statefile, every subset of
 * hosts that died, and whether a fencing host gets its last word out.
 * Each host's view is built from the scenario as the monitor would see
 * it; the checks are the promises of ha.h:
 *   - at most one partition survives, and its members agree on it;
 *   - rule 1: the survivors are the largest partition counted by hosts
 *     that see the statefile (ties: the lowest uuid); rule 2 only when
 *     nobody sees it and all hear each other; everyone else fences;
 *   - a host is never declared fenced before it has fenced; a host that
 *     stopped dead (killed, hung: no word, no beat) is fenced by its
 *     watchdog at its last deadline, and is declared only a margin later;
 *   - a host that fenced or stopped is declared by every rule-1 survivor
 *     once T plus the margin has passed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "ha.h"

#define T 5000
#define NMAX 5

struct scen {
	int n;
	int group[NMAX];
	bool sf[NMAX], dead[NMAX]; /* dead: stopped at t0 (killed or hung), its watchdog fires later */
	bool last_word;          /* a fencing host writes "fenced" in its slot and beats */
	int64_t t0;              /* the partition, the deaths, the statefile losses */
	int64_t fenced_at[NMAX]; /* -1: never */
};

static struct ha_timing timing(void)
{
	struct ha_timing t;
	ha_timing_for(T, &t);
	return t;
}

static bool fenced_by(const struct scen *s, int j, int64_t t)
{
	return s->fenced_at[j] >= 0 && s->fenced_at[j] <= t;
}

/* Whom host j hears at t (after the partition): its alive group. */
static ha_set hears_now(const struct scen *s, int j, int64_t t)
{
	ha_set h = 0;
	for (int k = 0; k < s->n; k++)
		if (s->group[k] == s->group[j] && !s->dead[k] && !fenced_by(s, k, t))
			h |= HA_BIT(k);
	return h | HA_BIT(j);
}

static ha_set everyone(int n)
{
	return HA_BIT(n) - 1;
}

static void peer_net(const struct scen *s, int h, int j, int64_t t, struct ha_peer *p)
{
	bool reach = s->group[j] == s->group[h] && !s->dead[j];
	if (!reach) { /* its last beat came before t0, when all heard all */
		p->hp_net_ms = s->t0 - 50;
		p->hp_net_hears = everyone(s->n);
		p->hp_net_statefile = true;
	} else if (fenced_by(s, j, t)) {
		p->hp_net_ms = s->last_word ? s->fenced_at[j] : s->fenced_at[j] - 100;
		p->hp_net_hears = hears_now(s, j, s->fenced_at[j] - 1);
		p->hp_net_statefile = s->sf[j];
		p->hp_net_fenced = s->last_word;
	} else {
		p->hp_net_ms = t - 100;
		p->hp_net_hears = hears_now(s, j, t);
		p->hp_net_statefile = s->sf[j];
	}
}

static void peer_slot(const struct scen *s, int j, int64_t t, struct ha_peer *p)
{
	if (s->dead[j] || !s->sf[j]) {
		p->hp_slot_ms = s->t0 - 100;
		p->hp_slot_hears = everyone(s->n);
	} else if (fenced_by(s, j, t)) {
		p->hp_slot_ms = s->last_word ? s->fenced_at[j] : s->fenced_at[j] - 150;
		p->hp_slot_hears = hears_now(s, j, s->fenced_at[j] - 1);
		p->hp_slot_fenced = s->last_word;
	} else {
		p->hp_slot_ms = t - 150;
		p->hp_slot_hears = hears_now(s, j, t);
	}
}

static void view(const struct scen *s, int h, int64_t t, struct ha_input *in)
{
	memset(in, 0, sizeof *in); /* hi_losing_ms 0: any loss has lasted long enough to settle */
	in->hi_n = s->n;
	in->hi_self = h;
	in->hi_now_ms = t;
	in->hi_timing = timing();
	in->hi_sf_write_ms = in->hi_sf_read_ms = s->sf[h] ? t - 100 : s->t0 - 100;
	in->hi_armed_ms = s->t0 - 60000;
	for (int j = 0; j < s->n; j++) {
		if (j == h)
			continue;
		peer_net(s, h, j, t, &in->hi_peers[j]);
		peer_slot(s, j, t, &in->hi_peers[j]);
	}
}

/* The survivors the rule promises for the scenario. */
static ha_set expected(const struct scen *s)
{
	ha_set best = 0;
	for (int g = 0; g < s->n; g++) {
		ha_set m = 0;
		for (int k = 0; k < s->n; k++)
			if (s->group[k] == g && !s->dead[k] && s->sf[k])
				m |= HA_BIT(k);
		int cm = ha_count(m), cb = ha_count(best);
		if (cm > cb || (cm == cb && m && __builtin_ctzll(m) < __builtin_ctzll(best ? best : HA_BIT(63))))
			best = m;
	}
	if (best)
		return best;
	/* nobody sees the statefile: rule 2 if all live and all in one group */
	for (int k = 0; k < s->n; k++)
		if (s->dead[k] || s->group[k] != s->group[0])
			return 0;
	return everyone(s->n);
}

static int nchecked;

/* Verdicts of every live host at t; returns the survivors. */
static ha_set verdicts(const struct scen *s, int64_t t, struct ha_verdict *v)
{
	ha_set surv = 0;
	for (int h = 0; h < s->n; h++) {
		if (s->dead[h] || fenced_by(s, h, t))
			continue;
		if (s->fenced_at[h] >= 0)
			continue; /* fencing: it acts on no verdict any more */
		struct ha_input in;
		view(s, h, t, &in);
		ha_decide(&in, &v[h]);
		nchecked++;
		if (v[h].hv_rule != HA_FENCE)
			surv |= HA_BIT(h);
	}
	return surv;
}

static void check_declarations(const struct scen *s, int64_t t, ha_set surv, const struct ha_verdict *v,
			       bool settled)
{
	for (int h = 0; h < s->n; h++) {
		if (!(surv & HA_BIT(h)))
			continue;
		for (int j = 0; j < s->n; j++) {
			/* never declared before it fenced; a host that went silent
			 * only a margin after its watchdog's deadline */
			if (v[h].hv_fenced & HA_BIT(j)) {
				assert_true(fenced_by(s, j, t));
				if (s->dead[j] || !s->last_word)
					assert_true(t - s->fenced_at[j] >= timing().ht_margin_ms - 200);
			}
			/* once settled, every one gone is declared by rule-1 survivors */
			if (settled && v[h].hv_rule == HA_RULE1 && fenced_by(s, j, t))
				assert_true(v[h].hv_fenced & HA_BIT(j));
		}
		assert_false(v[h].hv_fenced & HA_BIT(h));
	}
}

static void run(struct scen *s)
{
	struct ha_verdict v[NMAX];
	struct ha_timing tm = timing();
	int64_t tA = s->t0 + T + 100;
	/* a stopped host's watchdog: T after its last write (t0 - 100) */
	for (int j = 0; j < s->n; j++)
		s->fenced_at[j] = s->dead[j] ? s->t0 - 100 + T : -1;
	ha_set surv = verdicts(s, tA, v), want = expected(s);
	assert_int_equal(surv, want);
	for (int h = 0; h < s->n; h++) {
		if (!(surv & HA_BIT(h)))
			continue;
		assert_int_equal(v[h].hv_liveset, surv); /* they agree */
		assert_int_equal(v[h].hv_rule, s->sf[h] ? HA_RULE1 : HA_RULE2);
		assert_true(v[h].hv_deadline_ms > tA);
		assert_true(v[h].hv_deadline_ms <= tA + T);
	}
	check_declarations(s, tA, surv, v, false);
	/* the others fence within a tick of their verdict */
	for (int h = 0; h < s->n; h++)
		if (!s->dead[h] && !(surv & HA_BIT(h)))
			s->fenced_at[h] = tA + timing().ht_tick_ms;
	int64_t later[] = {tA + tm.ht_tick_ms, tA + T / 2, tA + T + tm.ht_margin_ms + 200};
	for (size_t k = 0; k < 3; k++) {
		ha_set again = verdicts(s, later[k], v);
		assert_int_equal(again, surv); /* the survivors stay up */
		check_declarations(s, later[k], again, v, k == 2);
	}
}

/* Every set partition of n hosts (restricted growth strings). */
static void each_partition(struct scen *s, int k, int maxg, void (*fn)(struct scen *))
{
	if (k == s->n) {
		fn(s);
		return;
	}
	for (int g = 0; g <= maxg + 1 && g < s->n; g++) {
		s->group[k] = g;
		each_partition(s, k + 1, g > maxg ? g : maxg, fn);
	}
}

static void all_access(struct scen *s)
{
	for (unsigned sf = 0; sf < (1u << s->n); sf++)
		for (unsigned dead = 0; dead < (1u << s->n); dead++) {
			if (dead == (1u << s->n) - 1)
				continue; /* nobody left to decide */
			for (int w = 0; w < 2; w++) {
				for (int k = 0; k < s->n; k++) {
					s->sf[k] = sf & (1u << k);
					s->dead[k] = dead & (1u << k);
				}
				s->last_word = w;
				run(s);
			}
		}
}

static void test_every_partition(void **state)
{
	(void)state;
	for (int n = 1; n <= NMAX; n++) {
		struct scen s = {.n = n, .t0 = 1000000};
		each_partition(&s, 0, -1, all_access);
	}
	assert_true(nchecked > 100000);
}

/* ---- deaths and partitions as they unfold --------------------------------- *
 * Every host beats and writes its slot on its own phase. At t0 either a
 * victim stops dead (no last word), or the network splits into groups
 * (every host keeps the statefile). Each host's view is rebuilt every
 * 50 ms from t0 - 1 s to 3 T later, each peer's word as it was when sent
 * (its heard set from its own timers then); a host whose verdict says
 * fence stops a tick later, with or without a last word. Checked:
 *   - the hosts that should survive never fence (a dead host's stale word
 *     must not tie with the living; the larger partition wins);
 *   - every other host fences;
 *   - nobody is declared fenced before it stopped, and one that stopped
 *     without a word only T + margin after its last sign of life;
 *   - the survivors end up declaring every host that stopped. */

#define INF INT64_MAX

struct timeline {
	int n, group[NMAX];
	int64_t t0, beat, sf, phase_b[NMAX], phase_s[NMAX];
	int64_t stop[NMAX]; /* INF: running */
	bool hung[NMAX];    /* stopped dead, not by a verdict: only its watchdog fenced it */
	int64_t losing[NMAX]; /* as the monitor keeps it: no rule kept it up since, -1 */
	bool sflost[NMAX];  /* its statefile I/O fails from t0 */
	bool word;          /* a fencing host says so in its slot and a beat */
};

/* The last event of host j's series (period, phase) at or before t. */
static int64_t sent(const struct timeline *tl, int j, int64_t period, int64_t phase, int64_t t)
{
	if (tl->stop[j] != INF && t >= tl->stop[j])
		t = tl->stop[j] - 1;
	return t < phase ? -1 : (t - phase) / period * period + phase;
}

/* The last write of j's slot that succeeded by t; its last good read. */
static int64_t sf_write(const struct timeline *tl, int j, int64_t t)
{
	return sent(tl, j, tl->sf, tl->phase_s[j], tl->sflost[j] && t >= tl->t0 ? tl->t0 - 1 : t);
}

static int64_t sf_read(const struct timeline *tl, int j, int64_t t)
{
	return tl->sflost[j] && t >= tl->t0 ? tl->t0 - 60 : t - 60;
}

/* Did j see the statefile at s (as its beats say)? */
static bool sf_ok_at(const struct timeline *tl, int j, int64_t s)
{
	int64_t lost = timing().ht_sf_lost_ms, w = sf_write(tl, j, s), r = sf_read(tl, j, s);
	return w >= 0 && s - w < lost && s - r < lost;
}

/* The last beat of k that reached j by t (none across the split after t0). */
static int64_t got(const struct timeline *tl, int j, int k, int64_t t)
{
	if (tl->group[j] != tl->group[k] && t >= tl->t0)
		t = tl->t0 - 1;
	return sent(tl, k, tl->beat, tl->phase_b[k], t);
}

static ha_set tl_hears(const struct timeline *tl, int j, int64_t s)
{
	ha_set h = HA_BIT(j);
	for (int k = 0; k < tl->n; k++) {
		int64_t b = got(tl, j, k, s);
		if (k != j && b >= 0 && s - b < T)
			h |= HA_BIT(k);
	}
	return h;
}

/* What h knows of j at t. */
static void tl_peer(const struct timeline *tl, int h, int j, int64_t t, struct ha_peer *p)
{
	int64_t b = got(tl, h, j, t), w = sf_write(tl, j, t - 60); /* seen a read later */
	p->hp_net_ms = b;
	p->hp_net_hears = b >= 0 ? tl_hears(tl, j, b) : 0;
	p->hp_net_statefile = b >= 0 && sf_ok_at(tl, j, b);
	p->hp_slot_ms = w >= 0 ? w + 60 : -1;
	p->hp_slot_hears = w >= 0 ? tl_hears(tl, j, w) : 0;
	if (tl->word && tl->stop[j] != INF && t >= tl->stop[j] + 60) { /* its last word */
		if (!tl->sflost[j]) {
			p->hp_slot_ms = tl->stop[j] + 60;
			p->hp_slot_fenced = true;
		}
		if (tl->group[h] == tl->group[j] || tl->stop[j] < tl->t0) {
			p->hp_net_ms = tl->stop[j];
			p->hp_net_fenced = true;
		}
	}
}

static void tl_view(const struct timeline *tl, int h, int64_t t, struct ha_input *in)
{
	memset(in, 0, sizeof *in);
	in->hi_n = tl->n;
	in->hi_self = h;
	in->hi_now_ms = t;
	in->hi_timing = timing();
	in->hi_sf_write_ms = sf_write(tl, h, t);
	in->hi_sf_read_ms = sf_read(tl, h, t);
	for (int j = 0; j < tl->n; j++)
		if (j != h)
			tl_peer(tl, h, j, t, &in->hi_peers[j]);
}

/* The last sign of life of j as others can see it. */
static int64_t last_sign(const struct timeline *tl, int j)
{
	int64_t b = sent(tl, j, tl->beat, tl->phase_b[j], tl->stop[j]);
	int64_t w = sf_write(tl, j, tl->stop[j]) + 60;
	return b > w ? b : w;
}

static int tl_views;

/* Run the timeline; winners: the hosts that must stay up. */
static void tl_run(struct timeline *tl, ha_set winners)
{
	struct ha_timing tm = timing();
	ha_set declared_by_all = ~(ha_set)0;
	for (int64_t t = tl->t0 - 1000; t < tl->t0 + 3 * T; t += 50)
		for (int h = 0; h < tl->n; h++) {
			if (tl->stop[h] != INF)
				continue; /* fencing or gone: acts on no verdict */
			struct ha_input in;
			struct ha_verdict v;
			tl_view(tl, h, t, &in);
			in.hi_losing_ms = tl->losing[h];
			ha_decide(&in, &v);
			tl->losing[h] = !v.hv_losing ? -1 : tl->losing[h] < 0 ? t : tl->losing[h];
			tl_views++;
			if (v.hv_rule == HA_FENCE) {
				if (winners & HA_BIT(h))
					fail_msg("n %d: host %d fences at t0%+lld: %s", tl->n, h, (long long)(t - tl->t0),
						 v.hv_why);
				tl->stop[h] = t + tm.ht_tick_ms;
				continue;
			}
			for (int j = 0; j < tl->n; j++) {
				if (!(v.hv_fenced & HA_BIT(j)))
					continue;
				assert_true(tl->stop[j] <= t);
				if (tl->hung[j]) /* its watchdog fired by T after its last word */
					assert_true(t >= last_sign(tl, j) + T + tm.ht_margin_ms);
			}
			if (t >= tl->t0 + 3 * T - 500)
				declared_by_all &= v.hv_fenced | HA_BIT(h);
		}
	for (int h = 0; h < tl->n; h++)
		assert_true((tl->stop[h] == INF) == ((winners & HA_BIT(h)) != 0));
	if ((declared_by_all & ~winners) != ((HA_BIT(tl->n) - 1) & ~winners))
		fail_msg("n %d word %d: declared %llx, stopped %llx (stop %lld, last sign %lld)", tl->n, tl->word,
			 (unsigned long long)declared_by_all, (unsigned long long)((HA_BIT(tl->n) - 1) & ~winners),
			 (long long)(tl->stop[1] - tl->t0), (long long)(last_sign(tl, 1) - tl->t0));
}

static void tl_init(struct timeline *tl, int n, int seed, bool word)
{
	struct ha_timing tm = timing();
	memset(tl, 0, sizeof *tl);
	tl->n = n;
	tl->t0 = 100000;
	tl->beat = tm.ht_beat_ms;
	tl->sf = tm.ht_statefile_ms;
	tl->word = word;
	for (int i = 0; i < n; i++) {
		tl->phase_b[i] = (seed * 373 + i * 311) % tl->beat;
		tl->phase_s[i] = (seed * 157 + i * 577) % tl->sf;
		tl->stop[i] = INF;
		tl->losing[i] = -1;
	}
}

static void test_death_timeline(void **state)
{
	(void)state;
	for (int n = 2; n <= NMAX; n++)
		for (int victim = 0; victim < n; victim++)
			for (int seed = 0; seed < 12; seed++) {
				struct timeline tl;
				tl_init(&tl, n, seed, false);
				tl.stop[victim] = tl.t0;
				tl.hung[victim] = true;
				tl_run(&tl, (HA_BIT(n) - 1) & ~HA_BIT(victim));
			}
	assert_true(tl_views > 10000);
}

/* Hosts losing the statefile, the network whole: those that lost it
 * fence while any host still sees it; when every host lost it, all stay
 * up (rule 2), however their losses are staggered. */
static void test_statefile_timeline(void **state)
{
	(void)state;
	int runs = 0;
	for (int n = 1; n <= NMAX; n++)
		for (unsigned lost = 1; lost < (1u << n); lost++)
			for (int seed = 0; seed < 6; seed++) {
				struct timeline tl;
				tl_init(&tl, n, seed, seed & 1);
				for (int i = 0; i < n; i++)
					tl.sflost[i] = (lost >> i) & 1;
				ha_set all = HA_BIT(n) - 1;
				tl_run(&tl, lost == all ? all : all & ~lost);
				runs++;
			}
	assert_true(runs > 300);
}

static void test_partition_timeline(void **state)
{
	(void)state;
	int runs = 0;
	for (int n = 2; n <= NMAX; n++)
		for (unsigned split = 1; split < (1u << n) - 1; split++) /* hosts in split: group 1 */
			for (int seed = 0; seed < 4; seed++)
				for (int w = 0; w < 2; w++) {
					struct timeline tl;
					tl_init(&tl, n, seed, w);
					ha_set g1 = split, g0 = (HA_BIT(n) - 1) & ~split;
					for (int i = 0; i < n; i++)
						tl.group[i] = (split >> i) & 1;
					/* the larger; on a tie the one holding host 0 (the lowest uuid) */
					bool one = ha_count(g1) > ha_count(g0) || (ha_count(g1) == ha_count(g0) && (g1 & 1));
					ha_set win = one ? g1 : g0;
					tl_run(&tl, win);
					runs++;
				}
	assert_true(runs > 200);
}

/* ---- single rules ------------------------------------------------------- */

static struct ha_input base(int n, int self)
{
	struct ha_input in;
	memset(&in, 0, sizeof in);
	in.hi_n = n;
	in.hi_self = self;
	in.hi_now_ms = 100000;
	in.hi_timing = timing();
	in.hi_sf_write_ms = in.hi_sf_read_ms = 99900;
	in.hi_armed_ms = 0;
	for (int j = 0; j < n; j++) {
		in.hi_peers[j] = (struct ha_peer){99900, everyone(n), true, false, false, 99850, everyone(n), false, false};
	}
	return in;
}

static void test_all_up(void **state)
{
	(void)state;
	struct ha_input in = base(3, 1);
	struct ha_verdict v;
	ha_decide(&in, &v);
	assert_int_equal(v.hv_rule, HA_RULE1);
	assert_int_equal(v.hv_liveset, 7);
	assert_int_equal(v.hv_hears, 7);
	assert_int_equal(v.hv_fenced, 0);
	/* the watchdog: T after the older of our last write and read */
	assert_int_equal(v.hv_deadline_ms, 99900 + T);
}

/* Only this host lost the statefile but hears everyone: it fences (its
 * peers still see the statefile); when everyone lost it: rule 2. */
static void test_statefile_lost(void **state)
{
	(void)state;
	struct ha_input in = base(3, 2);
	in.hi_sf_write_ms = in.hi_sf_read_ms = 90000;
	struct ha_verdict v;
	ha_decide(&in, &v);
	assert_int_equal(v.hv_rule, HA_FENCE);
	for (int j = 0; j < 2; j++) {
		in.hi_peers[j].hp_net_statefile = false;
		in.hi_peers[j].hp_slot_ms = 90000;
	}
	ha_decide(&in, &v);
	assert_int_equal(v.hv_rule, HA_RULE2);
	assert_int_equal(v.hv_liveset, 7);
	assert_int_equal(v.hv_fenced, 0); /* no declaration without the statefile */
	/* the oldest beat bounds the watchdog */
	in.hi_peers[0].hp_net_ms = 97000;
	ha_decide(&in, &v);
	assert_int_equal(v.hv_deadline_ms, 97000 + T);
	/* one peer not heard: not all online, everyone fences */
	in.hi_peers[0].hp_net_ms = 90000;
	ha_decide(&in, &v);
	assert_int_equal(v.hv_rule, HA_FENCE);
}

/* Asymmetric hearing: host 0 hears 1 and 2, but 2 does not hear 0. The
 * cliques are {0,1} and {1,2}: equal, {0,1} holds the lowest uuid. */
static void test_asymmetric(void **state)
{
	(void)state;
	for (int self = 0; self < 3; self++) {
		struct ha_input in = base(3, self);
		in.hi_peers[2].hp_slot_hears = in.hi_peers[2].hp_net_hears = 0x6;
		if (self == 2)
			in.hi_peers[0].hp_net_ms = 90000; /* 2 does not hear 0 */
		struct ha_verdict v;
		ha_decide(&in, &v);
		assert_int_equal(v.hv_liveset, 0x3);
		assert_int_equal(v.hv_rule, self == 2 ? HA_FENCE : HA_RULE1);
		assert_int_equal(v.hv_losing, self == 2);
		if (self != 2)
			continue;
		/* out of the best partition only just now: it waits for the views to settle */
		in.hi_losing_ms = in.hi_now_ms - timing().ht_settle_ms + 1;
		ha_decide(&in, &v);
		assert_int_equal(v.hv_rule, HA_RULE1);
		assert_true(v.hv_losing);
		assert_int_equal(v.hv_liveset, 0x3); /* it does not count itself in */
		in.hi_losing_ms = in.hi_now_ms - timing().ht_settle_ms;
		ha_decide(&in, &v);
		assert_int_equal(v.hv_rule, HA_FENCE);
	}
}

static void test_best_clique(void **state)
{
	(void)state;
	/* a path 0-1-2-3: four cliques of two, {0,1} wins the tie */
	ha_set path[4] = {0x2, 0x5, 0xa, 0x4};
	assert_int_equal(ha_best_clique(4, path, 0xf), 0x3);
	assert_int_equal(ha_best_clique(4, path, 0xe), 0x6);
	/* a triangle beats an edge holding the lowest member */
	ha_set g[5] = {0x2, 0x1, 0x18, 0x14, 0x0c};
	assert_int_equal(ha_best_clique(5, g, 0x1f), 0x1c);
	assert_int_equal(ha_best_clique(5, g, 0), 0);
	/* isolated vertices: the lowest alone */
	ha_set none[3] = {0, 0, 0};
	assert_int_equal(ha_best_clique(3, none, 0x6), 0x2);
	/* 64 hosts, all connected */
	ha_set full[HA_MAX_HOSTS];
	for (int i = 0; i < HA_MAX_HOSTS; i++)
		full[i] = ~(ha_set)0;
	assert_true(ha_best_clique(HA_MAX_HOSTS, full, ~(ha_set)0) == ~(ha_set)0);
}

/* A host that left HA cleanly is not counted: the last one standing stays
 * up, and nobody declares the excluded one fenced however long it is
 * silent. */
static void test_excluded(void **state)
{
	(void)state;
	struct ha_input in = base(2, 1);
	in.hi_peers[0] = (struct ha_peer){50000, 0x1, true, false, true, 50000, 0x1, false, true};
	struct ha_verdict v;
	ha_decide(&in, &v);
	assert_int_equal(v.hv_rule, HA_RULE1);
	assert_int_equal(v.hv_liveset, 0x2);
	assert_int_equal(v.hv_excluded, 0x1);
	assert_int_equal(v.hv_fenced, 0);
	/* it comes back (a newer word without the flag): counted again */
	in.hi_peers[0].hp_net_ms = 99950;
	in.hi_peers[0].hp_net_excluded = false;
	in.hi_peers[0].hp_net_hears = 0x3;
	ha_decide(&in, &v);
	assert_int_equal(v.hv_excluded, 0);
}

/* Silence counts from when we armed at most: a peer never heard is not
 * declared until T + margin after we armed. */
static void test_silence_since_armed(void **state)
{
	(void)state;
	struct ha_input in = base(2, 0);
	in.hi_peers[1] = (struct ha_peer){-1, 0, false, false, false, -1, 0, false, false};
	in.hi_armed_ms = in.hi_now_ms - T;
	struct ha_verdict v;
	ha_decide(&in, &v);
	assert_int_equal(v.hv_fenced, 0);
	in.hi_armed_ms = in.hi_now_ms - T - timing().ht_margin_ms;
	ha_decide(&in, &v);
	assert_int_equal(v.hv_fenced, 0x2);
	/* not while we cannot read the statefile */
	in.hi_sf_read_ms = 0;
	ha_decide(&in, &v);
	assert_int_equal(v.hv_fenced, 0);
}

/* Joining: never fences, declares nothing, formed when the expected
 * hosts are in the liveset with us. */
static void test_joining(void **state)
{
	(void)state;
	struct ha_input in = base(3, 0);
	in.hi_joining = true;
	in.hi_expect = 0x7;
	in.hi_peers[2].hp_net_ms = in.hi_peers[2].hp_slot_ms = -1;
	struct ha_verdict v;
	ha_decide(&in, &v);
	assert_int_equal(v.hv_rule, HA_JOINING);
	assert_false(v.hv_formed);
	assert_int_equal(v.hv_deadline_ms, -1);
	assert_int_equal(v.hv_fenced, 0);
	in.hi_expect = 0x3; /* host 2 is down as far as poold knows */
	ha_decide(&in, &v);
	assert_true(v.hv_formed);
	in.hi_sf_write_ms = -1; /* not without the statefile */
	ha_decide(&in, &v);
	assert_false(v.hv_formed);
}

static void test_timing(void **state)
{
	(void)state;
	struct ha_timing t;
	ha_timing_for(60000, &t); /* XAPI's default: 3 s beats, 3 s statefile */
	assert_int_equal(t.ht_beat_ms, 3000);
	assert_int_equal(t.ht_statefile_ms, 3000);
	ha_timing_for(30000, &t);
	assert_int_equal(t.ht_beat_ms, 3000);
	assert_int_equal(t.ht_statefile_ms, 2000);
	ha_timing_for(5000, &t); /* scaled: five beats and four writes per T */
	assert_int_equal(t.ht_beat_ms, 1000);
	assert_int_equal(t.ht_statefile_ms, 1250);
	assert_true(t.ht_margin_ms > t.ht_tick_ms);
	assert_true(t.ht_settle_ms > t.ht_beat_ms + t.ht_statefile_ms);
	assert_int_equal(t.ht_sf_lost_ms + t.ht_settle_ms, 5000);
	/* a living host's slot never looks stale; a dead one drops out well before T */
	for (int64_t T_ms = HA_MIN_TIMEOUT_S * 1000; T_ms <= 120000; T_ms += 1000) {
		ha_timing_for(T_ms, &t);
		assert_true(t.ht_slot_live_ms >= t.ht_statefile_ms + 2 * t.ht_tick_ms);
		assert_true(t.ht_slot_live_ms <= T_ms / 2);
		assert_true(t.ht_beat_ms * 5 <= T_ms && t.ht_statefile_ms * 4 <= T_ms);
		assert_true(t.ht_sf_lost_ms > t.ht_statefile_ms); /* never lost between two writes */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_partition), cmocka_unit_test(test_death_timeline),
		cmocka_unit_test(test_partition_timeline), cmocka_unit_test(test_statefile_timeline),
		cmocka_unit_test(test_all_up),
		cmocka_unit_test(test_statefile_lost), cmocka_unit_test(test_asymmetric),
		cmocka_unit_test(test_best_clique),     cmocka_unit_test(test_excluded),
		cmocka_unit_test(test_silence_since_armed), cmocka_unit_test(test_joining),
		cmocka_unit_test(test_timing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
