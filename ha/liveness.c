/*
 * liveness.c - may this host stay up? XAPI's survival rule as a pure
 * function of what the host heard, read and when (see ha.h).
 *
 * Rule 1: the host sees the statefile and is in the best partition: the
 * largest set of hosts that all see the statefile (their slots keep
 * changing) and all hear each other (ties: the one holding the lowest
 * host uuid). Rule 2: every host
 * has lost the statefile, and all of them still hear each other. Else
 * the host fences. Hosts that left HA cleanly (excluded) and hosts known
 * to have fenced take no part.
 *
 * The watchdog deadline is the instant the evidence for staying up
 * expires: under rule 1, T after the last successful write of our slot
 * (the peers count us fenced only after T plus a margin without seeing
 * that slot change or hearing a beat, so the watchdog always fires
 * first); under rule 2, T after the oldest of the peers' last beats.
 */
#include "ha.h"

static bool fresh(int64_t at, int64_t now, int64_t limit)
{
	return at >= 0 && now - at < limit;
}

int ha_count(ha_set s)
{
	return __builtin_popcountll(s);
}

void ha_timing_for(int64_t timeout_ms, struct ha_timing *t)
{
	int64_t T = timeout_ms;
	int64_t beat = (T / 1000 + 10) / 10 * 1000; /* XAPI: min((T+10)/10, 3) s */
	if (beat > 3000)
		beat = 3000;
	if (beat > T / 5) /* at least five beats per T */
		beat = T / 5;
	int64_t sf = T / 20 > 2000 ? T / 20 : 2000; /* XAPI: max(2, T/20) s */
	if (sf > T / 4)
		sf = T / 4;
	*t = (struct ha_timing){
		.ht_timeout_ms = T,
		.ht_beat_ms = beat,
		.ht_statefile_ms = sf,
		.ht_margin_ms = 500,
		.ht_tick_ms = 100,
		.ht_join_ms = T + HA_JOIN_GRACE_MS,
	};
	/* two writes and a read late at most, and never half of T */
	t->ht_slot_live_ms = 2 * sf + 2 * t->ht_tick_ms;
	if (t->ht_slot_live_ms > T / 2)
		t->ht_slot_live_ms = T / 2;
	t->ht_settle_ms = beat + sf + 2 * t->ht_tick_ms;
	t->ht_sf_lost_ms = T - t->ht_settle_ms;
}

/* Is a better than b (both cliques)? Larger; on a tie the one holding
 * the lowest member that only one of them has. */
static bool clique_better(ha_set a, ha_set b)
{
	int ca = ha_count(a), cb = ha_count(b);
	if (ca != cb)
		return ca > cb;
	ha_set d = a ^ b;
	return d && (a & (d & -d));
}

/* Bron-Kerbosch with a pivot, pruned by size: every maximal clique of
 * r + some of p, none of x. */
static void cliques(const ha_set *adj, ha_set r, ha_set p, ha_set x, ha_set *best)
{
	if (!p && !x) {
		if (clique_better(r, *best))
			*best = r;
		return;
	}
	if (ha_count(r) + ha_count(p) < ha_count(*best))
		return; /* cannot beat it, not even tie it */
	ha_set px = p | x;
	int u = __builtin_ctzll(px);
	ha_set todo = p & ~adj[u];
	while (todo) {
		int v = __builtin_ctzll(todo);
		todo &= todo - 1;
		cliques(adj, r | HA_BIT(v), p & adj[v], x & adj[v], best);
		p &= ~HA_BIT(v);
		x |= HA_BIT(v);
	}
}

ha_set ha_best_clique(int n, const ha_set *adj, ha_set cand)
{
	ha_set a[HA_MAX_HOSTS], best = 0;
	for (int i = 0; i < n; i++)
		a[i] = adj[i] & cand & ~HA_BIT(i);
	if (cand)
		cliques(a, 0, cand, 0, &best);
	return best;
}

/* A peer's latest word: its beat or its slot, whichever came last. */
struct word {
	ha_set hears;
	bool fenced, excluded, statefile;
};

static struct word latest(const struct ha_peer *p)
{
	if (p->hp_net_ms >= p->hp_slot_ms)
		return (struct word){p->hp_net_hears, p->hp_net_fenced, p->hp_net_excluded, p->hp_net_statefile};
	return (struct word){p->hp_slot_hears, p->hp_slot_fenced, p->hp_slot_excluded, true};
}

/* What this host knows of everyone, at now. */
struct view {
	int n, self;
	int64_t now, T;
	bool statefile;
	ha_set all, hears, net, slot, fenced_word, excluded, silent;
	ha_set adj[HA_MAX_HOSTS]; /* mutual hearing */
	struct word w[HA_MAX_HOSTS];
};

static void view_peers(const struct ha_input *in, struct view *v)
{
	const struct ha_timing *t = &in->hi_timing;
	int64_t quiet = t->ht_timeout_ms + t->ht_margin_ms;
	for (int j = 0; j < v->n; j++) {
		if (j == v->self)
			continue;
		const struct ha_peer *p = &in->hi_peers[j];
		v->w[j] = latest(p);
		if (fresh(p->hp_net_ms, v->now, v->T))
			v->net |= HA_BIT(j);
		if (v->statefile && fresh(p->hp_slot_ms, v->now, t->ht_slot_live_ms))
			v->slot |= HA_BIT(j);
		if (v->w[j].fenced)
			v->fenced_word |= HA_BIT(j);
		if (v->w[j].excluded)
			v->excluded |= HA_BIT(j);
		/* silence counts only while we read the statefile (we would have
		 * seen its slot change), and at most since we armed */
		if (v->statefile && !fresh(p->hp_net_ms, v->now, quiet) && !fresh(p->hp_slot_ms, v->now, quiet) &&
		    !fresh(in->hi_armed_ms, v->now, quiet))
			v->silent |= HA_BIT(j);
	}
	v->hears = v->net | HA_BIT(v->self);
	v->w[v->self] = (struct word){v->hears, false, false, v->statefile};
	/* i and j are adjacent when each says it hears the other */
	for (int i = 0; i < v->n; i++)
		for (int j = 0; j < v->n; j++)
			if (i != j && (v->w[i].hears & HA_BIT(j)) && (v->w[j].hears & HA_BIT(i)))
				v->adj[i] |= HA_BIT(j);
}

static void view_build(const struct ha_input *in, struct view *v)
{
	*v = (struct view){.n = in->hi_n, .self = in->hi_self, .now = in->hi_now_ms,
			   .T = in->hi_timing.ht_timeout_ms};
	v->all = in->hi_n >= HA_MAX_HOSTS ? ~(ha_set)0 : HA_BIT(in->hi_n) - 1;
	int64_t lost = in->hi_timing.ht_sf_lost_ms;
	v->statefile = fresh(in->hi_sf_write_ms, v->now, lost) && fresh(in->hi_sf_read_ms, v->now, lost);
	view_peers(in, v);
}

/* Rule 1: the best partition among the hosts that see the statefile. */
static void rule1(const struct ha_input *in, const struct view *v, struct ha_verdict *out)
{
	ha_set cand = (v->slot & ~v->fenced_word & ~v->excluded) | HA_BIT(v->self);
	ha_set best = ha_best_clique(v->n, v->adj, cand);
	int64_t since = in->hi_sf_write_ms < in->hi_sf_read_ms ? in->hi_sf_write_ms : in->hi_sf_read_ms;
	out->hv_liveset = best;
	out->hv_deadline_ms = since + v->T;
	if (best & HA_BIT(v->self)) {
		out->hv_rule = HA_RULE1;
		out->hv_why = "sees the statefile and is in the best partition";
	} else {
		out->hv_rule = HA_FENCE;
		out->hv_why = "sees the statefile but another partition is larger (or as large and holds a lower uuid)";
	}
}

/* Rule 2: nobody sees the statefile and everyone hears everyone. The
 * deadline: T after the oldest of the peers' last beats. */
static void rule2(const struct ha_input *in, const struct view *v, struct ha_verdict *out)
{
	ha_set others = v->all & ~v->excluded & ~HA_BIT(v->self);
	ha_set members = others | HA_BIT(v->self);
	bool ok = (v->net & others) == others && !(v->fenced_word & others);
	for (int j = 0; ok && j < v->n; j++) {
		if (!(members & HA_BIT(j)))
			continue;
		if (j != v->self && v->w[j].statefile)
			ok = false; /* someone still sees it: only we lost it */
		else if ((v->adj[j] & members) != (members & ~HA_BIT(j)))
			ok = false; /* not everyone hears everyone */
	}
	if (!ok) {
		int64_t since = in->hi_sf_write_ms < in->hi_sf_read_ms ? in->hi_sf_write_ms : in->hi_sf_read_ms;
		out->hv_rule = HA_FENCE;
		out->hv_deadline_ms = since < 0 ? v->now : since + v->T; /* the last evidence others saw */
		out->hv_why = "lost the statefile while a peer still sees it or cannot be heard";
		return;
	}
	out->hv_rule = HA_RULE2;
	out->hv_liveset = members;
	out->hv_deadline_ms = v->now + v->T; /* alone in HA: nobody would restart our VMs */
	for (int j = 0; j < v->n; j++)
		if ((others & HA_BIT(j)) && in->hi_peers[j].hp_net_ms + v->T < out->hv_deadline_ms)
			out->hv_deadline_ms = in->hi_peers[j].hp_net_ms + v->T;
	out->hv_why = "every host lost the statefile and all hear each other";
}

void ha_decide(const struct ha_input *in, struct ha_verdict *out)
{
	struct view v;
	view_build(in, &v);
	*out = (struct ha_verdict){.hv_statefile = v.statefile, .hv_hears = v.hears, .hv_excluded = v.excluded,
				   .hv_deadline_ms = v.now};
	/* a word of fencing, or silence while we read the statefile */
	out->hv_fenced = (v.fenced_word | v.silent) & ~v.excluded & ~HA_BIT(v.self);
	if (v.statefile) {
		rule1(in, &v, out);
	} else {
		rule2(in, &v, out);
	}
	/* no rule keeps us up: fence once that has lasted the settle (the
	 * peers' words lag their own timers), never past the evidence */
	out->hv_losing = out->hv_rule == HA_FENCE;
	bool settled = in->hi_losing_ms >= 0 && v.now - in->hi_losing_ms >= in->hi_timing.ht_settle_ms;
	if (out->hv_losing && !settled && out->hv_deadline_ms > v.now) {
		out->hv_rule = v.statefile ? HA_RULE1 : HA_RULE2;
		out->hv_why = "no rule keeps this host up: waiting a settle for the peers' views before fencing";
	}
	if (out->hv_losing)
		out->hv_liveset &= ~HA_BIT(v.self);
	if (in->hi_joining) {
		/* the would-be verdict says when the liveset has formed */
		out->hv_formed = v.statefile && out->hv_rule == HA_RULE1 &&
				 (out->hv_liveset & (in->hi_expect | HA_BIT(v.self))) == (in->hi_expect | HA_BIT(v.self));
		out->hv_rule = HA_JOINING;
		out->hv_deadline_ms = -1;
		out->hv_fenced = 0; /* nothing is declared before we are part of the liveset */
		out->hv_why = out->hv_formed ? "joined the liveset" : "joining: waiting for the liveset to form";
	}
}
