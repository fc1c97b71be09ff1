/* test_lease.c - the pool master's lease (ha/lease.c):
 *   - the record: round trip, and nothing but a lease signed with the key
 *     decodes (forged, other key, cut, garbage);
 *   - the timing for every T: hold <= take / 2, several renewals per hold;
 *   - which renewal counts, over every order of start, end and validity;
 *   - which standbys the master names candidates (told the current
 *     database, keeping up, or cut off together with their host);
 *   - the verdict over every combination of what a poold knows (holding or
 *     not; its host's agent fresh, losing, fenced, excluded, in its
 *     liveset; the lease valid, off, released, newer, its holder; the ages
 *     of the last renewal, of the lease and of the last read; its rank),
 *     against the rule written out once more;
 *   - timelines: 3 and 4 hosts with a poold each, random deaths, pauses,
 *     partitions and slow statefile writes, every poold deciding at its
 *     own tick on its own reads: never two pooldes allowed to write at the
 *     same instant (with the database lock, and without it: the timing
 *     alone must hold), and a new master within take + the ranks' steps
 *     after the master's death. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "ha.h"

#define T 5000

static const unsigned char KEY[HA_KEY_LEN] = "0123456789abcdef0123456789abcdef";
static const unsigned char KEY2[HA_KEY_LEN] = "fedcba9876543210fedcba9876543210";

static struct ha_lease_timing timing(int64_t t)
{
	struct ha_lease_timing lt;
	ha_lease_timing_for(t, &lt);
	return lt;
}

/* ---------------------------------------------------------- record */

static struct ha_lease sample(void)
{
	struct ha_lease l;
	memset(&l, 0, sizeof l);
	snprintf(l.hl_generation, sizeof l.hl_generation, "gen-1");
	snprintf(l.hl_holder, sizeof l.hl_holder, "11111111-2222-3333-4444-555555555555");
	snprintf(l.hl_run, sizeof l.hl_run, "run-7");
	snprintf(l.hl_address, sizeof l.hl_address, "10.0.0.2");
	l.hl_port = 4443;
	l.hl_epoch = 12;
	l.hl_seq = 99;
	l.hl_capable = 0x5;
	l.hl_released = true;
	return l;
}

static void test_record_round_trip(void **st)
{
	(void)st;
	char buf[HA_LEASE_SIZE];
	struct ha_lease l = sample(), back;
	assert_true(ha_lease_encode(&l, KEY, buf, sizeof buf) > 0);
	assert_int_equal(ha_lease_decode(buf, sizeof buf, KEY, &back), 0);
	assert_memory_equal(&l, &back, sizeof l);
	l.hl_released = false;
	l.hl_off = true;
	assert_true(ha_lease_encode(&l, KEY, buf, sizeof buf) > 0);
	assert_int_equal(ha_lease_decode(buf, sizeof buf, KEY, &back), 0);
	assert_true(back.hl_off && !back.hl_released);
}

static void test_record_refused(void **st)
{
	(void)st;
	char buf[HA_LEASE_SIZE], zero[HA_LEASE_SIZE] = {0};
	struct ha_lease l = sample(), back;
	int n = ha_lease_encode(&l, KEY, buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(ha_lease_decode(buf, sizeof buf, KEY2, &back), -1); /* another pool's key */
	assert_int_equal(back.hl_epoch, 0);
	assert_int_equal(ha_lease_decode(zero, sizeof zero, KEY, &back), -1); /* an empty header */
	assert_int_equal(ha_lease_decode(buf, (size_t)n - 10, KEY, &back), -1); /* cut */
	char forged[HA_LEASE_SIZE];
	memcpy(forged, buf, sizeof forged);
	char *e = strstr(forged, "\"e\":12");
	assert_non_null(e);
	e[5] = '9'; /* epoch 19, same MAC */
	assert_int_equal(ha_lease_decode(forged, sizeof forged, KEY, &back), -1);
	/* a holder name too long for the record does not fit the buffer */
	memset(l.hl_holder, 'x', sizeof l.hl_holder - 1);
	char small[120];
	assert_int_equal(ha_lease_encode(&l, KEY, small, sizeof small), -1);
	/* a word of a host's slot is not a lease */
	struct ha_word w;
	memset(&w, 0, sizeof w);
	snprintf(w.hw_generation, sizeof w.hw_generation, "gen-1");
	snprintf(w.hw_host, sizeof w.hw_host, "h");
	char wb[HA_SLOT_SIZE];
	assert_true(ha_word_encode(&w, KEY, wb, sizeof wb) > 0);
	assert_int_equal(ha_lease_decode(wb, HA_LEASE_SIZE, KEY, &back), -1);
}

/* The word's liveset and "losing" (what a poold reads of its host). */
static void test_word_liveset(void **st)
{
	(void)st;
	struct ha_word w, back;
	memset(&w, 0, sizeof w);
	snprintf(w.hw_generation, sizeof w.hw_generation, "g");
	snprintf(w.hw_host, sizeof w.hw_host, "h");
	w.hw_liveset = 0x6;
	w.hw_losing = true;
	char buf[HA_SLOT_SIZE];
	assert_true(ha_word_encode(&w, KEY, buf, sizeof buf) > 0);
	assert_int_equal(ha_word_decode(buf, sizeof buf, KEY, &back), 0);
	assert_int_equal(back.hw_liveset, 0x6);
	assert_true(back.hw_losing);
}

/* ---------------------------------------------------------- timing */

static void test_timing_every_t(void **st)
{
	(void)st;
	for (int64_t t = HA_MIN_TIMEOUT_S * 1000; t <= HA_MAX_TIMEOUT_S * 1000; t += t < 120000 ? 1000 : 60000) {
		struct ha_lease_timing lt = timing(t);
		struct ha_timing ht;
		ha_timing_for(t, &ht);
		assert_true(lt.lt_hold_ms <= lt.lt_take_ms / 2);
		assert_true(lt.lt_hold_ms <= ht.ht_sf_lost_ms);
		assert_true(lt.lt_hold_ms >= 3 * lt.lt_renew_ms);
		assert_true(lt.lt_take_ms == t + ht.ht_margin_ms);
		assert_true(lt.lt_renew_ms / 2 > lt.lt_tick_ms); /* a read every tick is fresh enough to decide */
		assert_true(lt.lt_step_ms > lt.lt_renew_ms / 2 + lt.lt_tick_ms);
	}
}

static void test_renewal_counts(void **st)
{
	(void)st;
	struct ha_lease_timing lt = timing(T);
	int64_t half = lt.lt_renew_ms / 2;
	for (int64_t start = -1; start <= 2000; start += 250)
		for (int64_t took = -1; took <= half + 1; took += half / 4 + 1)
			for (int64_t valid = 0; valid <= 2500; valid += 500)
				for (int acq = 0; acq < 2; acq++) {
					bool want = start >= 0 && took >= 0 && took <= half && (acq || start < valid);
					assert_int_equal(ha_lease_renewal_counts(&lt, start, start + took, valid, acq), want);
				}
}

/* Which standbys the master names candidates: told the current database
 * and HA, and keeping up, or cut off together with their host's agent. */
static void test_standby_capable(void **st)
{
	(void)st;
	const int64_t fresh = 6000, now = 100000;
	for (int told = 0; told < 2; told++)
		for (int ks = 0; ks <= 36; ks++)     /* never, then every age 0..18 s */
			for (int kb = 0; kb <= 96; kb++) { /* unknown, then 0..24 s ago */
				int64_t sync = ks ? now - (ks - 1) * 500 : -1, beat = kb ? now - (kb - 1) * 250 : -1;
				bool fresh_sync = sync >= 0 && now - sync < fresh;
				bool beat_after_stale = sync >= 0 && beat >= sync + fresh;
				bool want = told && sync >= 0 && (fresh_sync || !beat_after_stale);
				assert_int_equal(ha_lease_standby_capable(told, sync, beat, now, fresh), want);
			}
	/* the master cut off alone at 50 s: the standbys' syncs (every 2 s) and
	 * their hosts' heartbeats (every 1 s) stop together; the standbys stay
	 * candidates however long the master takes to step down */
	for (int64_t t = 50000; t < 90000; t += 100)
		assert_true(ha_lease_standby_capable(true, 49000, 49900, t, fresh));
	/* a standby's poold gone while its host's agent still beats: struck off */
	assert_true(ha_lease_standby_capable(true, 49000, 54900, 54900, fresh));
	assert_false(ha_lease_standby_capable(true, 49000, 55000, 55000, fresh));
	/* never synced with this master, or told an old database or HA: never */
	assert_false(ha_lease_standby_capable(true, -1, -1, 0, fresh));
	assert_false(ha_lease_standby_capable(false, now, -1, now, fresh));
}

/* --------------------------------------------------------- verdicts */

#define N 4

struct knob {
	int holding, self_fresh, losing, fenced, excluded, in_live, valid, off, released;
	int epoch_rel;   /* lease epoch vs ours: -1, 0, +1 */
	int holder;      /* lease holder: -1, self, another */
	int renewed_age; /* -1 never, else an age */
	int seen_age, read_age, capable_self, others_before;
};

static void build(const struct knob *k, int64_t now, struct ha_lease_view *v)
{
	memset(v, 0, sizeof *v);
	v->lv_n = N;
	v->lv_self = 2;
	v->lv_now_ms = now;
	v->lv_t = timing(T);
	v->lv_lease_valid = k->valid;
	v->lv_lease.hl_off = k->off;
	v->lv_lease.hl_released = k->released;
	v->lv_epoch = 5;
	v->lv_lease.hl_epoch = (uint64_t)(5 + k->epoch_rel);
	v->lv_holder = k->holder < 0 ? -1 : k->holder == 0 ? v->lv_self : 0;
	ha_set live = HA_BIT(3) | (k->in_live ? HA_BIT(2) : 0) | (k->others_before ? HA_BIT(0) | HA_BIT(1) : 0);
	v->lv_lease.hl_capable = HA_BIT(0) | HA_BIT(1) | HA_BIT(3) | (k->capable_self ? HA_BIT(2) : 0);
	v->lv_self_liveset = live;
	v->lv_self_slot_ms = k->self_fresh ? now - 100 : now - v->lv_t.lt_slot_live_ms;
	v->lv_self_losing = k->losing;
	v->lv_self_fenced = k->fenced;
	v->lv_self_excluded = k->excluded;
	v->lv_holding = k->holding;
	v->lv_renewed_ms = k->renewed_age < 0 ? -1 : now - k->renewed_age;
	v->lv_lease_seen_ms = k->seen_age < 0 ? -1 : now - k->seen_age;
	v->lv_read_ms = k->read_age < 0 ? -1 : now - k->read_age;
}

/* The rule, written out once more from ha.h's words. */
static void oracle(const struct ha_lease_view *v, enum ha_lease_act *act, int64_t *valid, int *rank, int64_t *take_at)
{
	const struct ha_lease_timing *t = &v->lv_t;
	bool host_ok = v->lv_now_ms - v->lv_self_slot_ms < t->lt_slot_live_ms && !v->lv_self_losing &&
		       !v->lv_self_fenced && !v->lv_self_excluded && (v->lv_self_liveset & HA_BIT(v->lv_self));
	*valid = -1;
	*rank = -1;
	*take_at = -1;
	if (v->lv_holding) {
		bool newer = v->lv_lease_valid && (v->lv_lease.hl_epoch > v->lv_epoch ||
						   (v->lv_lease.hl_epoch == v->lv_epoch && v->lv_holder != v->lv_self));
		bool renewed = v->lv_renewed_ms >= 0 && v->lv_now_ms - v->lv_renewed_ms < t->lt_hold_ms;
		*act = !newer && host_ok && renewed ? HA_LEASE_RENEW : HA_LEASE_STEP_DOWN;
		if (*act == HA_LEASE_RENEW)
			*valid = v->lv_renewed_ms + t->lt_hold_ms;
		return;
	}
	*act = HA_LEASE_IDLE;
	bool read_ok = v->lv_read_ms >= 0 && v->lv_now_ms - v->lv_read_ms < t->lt_hold_ms;
	if (!v->lv_lease_valid || v->lv_lease.hl_off || !read_ok || !host_ok || v->lv_lease_seen_ms < 0)
		return;
	ha_set cand = v->lv_self_liveset & v->lv_lease.hl_capable;
	if (!(cand & HA_BIT(v->lv_self)))
		return;
	/* the holder goes last; the others by uuid */
	int order[N], k = 0;
	for (int i = 0; i < N; i++)
		if ((cand & HA_BIT(i)) && i != v->lv_holder)
			order[k++] = i;
	if (v->lv_holder >= 0 && (cand & HA_BIT(v->lv_holder)))
		order[k++] = v->lv_holder;
	for (int i = 0; i < k; i++)
		if (order[i] == v->lv_self)
			*rank = i;
	*take_at = v->lv_lease_seen_ms + (v->lv_lease.hl_released ? 0 : t->lt_take_ms) + *rank * t->lt_step_ms;
	bool fresh_read = v->lv_now_ms - v->lv_read_ms < t->lt_renew_ms / 2;
	*act = v->lv_now_ms >= *take_at && fresh_read ? HA_LEASE_TAKE : HA_LEASE_WAIT;
}

static void test_verdict_every_case(void **st)
{
	(void)st;
	struct ha_lease_timing lt = timing(T);
	const int ages_renew[] = {-1, 0, (int)lt.lt_hold_ms - 1, (int)lt.lt_hold_ms, (int)lt.lt_hold_ms + 1};
	const int ages_seen[] = {-1, 0, (int)lt.lt_take_ms - 1, (int)lt.lt_take_ms, (int)(lt.lt_take_ms + lt.lt_step_ms),
				 (int)(lt.lt_take_ms + 3 * lt.lt_step_ms)};
	const int ages_read[] = {-1, 0, (int)lt.lt_renew_ms / 2, (int)lt.lt_hold_ms - 1, (int)lt.lt_hold_ms};
	long cases = 0, takes = 0, renews = 0;
	struct knob k;
	for (k.holding = 0; k.holding < 2; k.holding++)
	for (k.self_fresh = 0; k.self_fresh < 2; k.self_fresh++)
	for (k.losing = 0; k.losing < 2; k.losing++)
	for (k.fenced = 0; k.fenced < 2; k.fenced++)
	for (k.excluded = 0; k.excluded < 2; k.excluded++)
	for (k.in_live = 0; k.in_live < 2; k.in_live++)
	for (k.valid = 0; k.valid < 2; k.valid++)
	for (k.off = 0; k.off < 2; k.off++)
	for (k.released = 0; k.released < 2; k.released++)
	for (k.epoch_rel = -1; k.epoch_rel <= 1; k.epoch_rel++)
	for (k.holder = -1; k.holder <= 1; k.holder++)
	for (size_t a = 0; a < sizeof ages_renew / sizeof *ages_renew; a++)
	for (size_t b = 0; b < sizeof ages_seen / sizeof *ages_seen; b++)
	for (size_t c = 0; c < sizeof ages_read / sizeof *ages_read; c++)
	for (k.capable_self = 0; k.capable_self < 2; k.capable_self++)
	for (k.others_before = 0; k.others_before < 2; k.others_before++) {
		if (!k.holding && a > 0)
			continue; /* a standby has no renewal */
		k.renewed_age = ages_renew[a];
		k.seen_age = ages_seen[b];
		k.read_age = ages_read[c];
		struct ha_lease_view v;
		struct ha_lease_verdict out;
		build(&k, 100000, &v);
		ha_lease_decide(&v, &out);
		enum ha_lease_act want;
		int64_t valid, take_at;
		int rank;
		oracle(&v, &want, &valid, &rank, &take_at);
		if (out.lv_act != want || out.lv_valid_until_ms != valid ||
		    ((want == HA_LEASE_WAIT || want == HA_LEASE_TAKE) && (out.lv_rank != rank || out.lv_take_at_ms != take_at)))
			fail_msg("case %ld: act %d want %d, valid %lld want %lld, rank %d want %d (%s)", cases, out.lv_act, want,
				 (long long)out.lv_valid_until_ms, (long long)valid, out.lv_rank, rank, out.lv_why);
		assert_non_null(out.lv_why);
		/* the promises, stated directly */
		if (out.lv_act == HA_LEASE_RENEW) {
			renews++;
			assert_true(out.lv_valid_until_ms > v.lv_now_ms && out.lv_valid_until_ms <= v.lv_now_ms + lt.lt_hold_ms);
			assert_false(k.losing || k.fenced || k.excluded || !k.self_fresh || !k.in_live);
		}
		if (out.lv_act == HA_LEASE_TAKE) {
			takes++;
			assert_false(k.holding || k.off || !k.valid || !k.capable_self);
			assert_true(k.released || v.lv_now_ms - v.lv_lease_seen_ms >= lt.lt_take_ms);
		}
		if (k.holding)
			assert_true(out.lv_act == HA_LEASE_RENEW || out.lv_act == HA_LEASE_STEP_DOWN);
		else
			assert_true(out.lv_act != HA_LEASE_RENEW && out.lv_act != HA_LEASE_STEP_DOWN);
		cases++;
	}
	assert_true(takes > 0 && renews > 0);
	print_message("%ld cases, %ld takeovers, %ld renewals\n", cases, takes, renews);
}

/* With one view of the pool, the candidates' ranks are 0, 1, 2... */
static void test_ranks_distinct(void **st)
{
	(void)st;
	for (ha_set live = 1; live < HA_BIT(N); live++)
		for (ha_set cap = 0; cap < HA_BIT(N); cap++)
			for (int holder = -1; holder < N; holder++) {
				int seen[N + 1] = {0};
				for (int self = 0; self < N; self++) {
					if (!(live & cap & HA_BIT(self)))
						continue;
					struct ha_lease_view v;
					memset(&v, 0, sizeof v);
					v.lv_n = N;
					v.lv_self = self;
					v.lv_now_ms = 50000;
					v.lv_t = timing(T);
					v.lv_lease_valid = true;
					v.lv_lease.hl_capable = cap;
					v.lv_holder = holder;
					v.lv_self_liveset = live;
					v.lv_self_slot_ms = v.lv_read_ms = v.lv_lease_seen_ms = 50000;
					struct ha_lease_verdict out;
					ha_lease_decide(&v, &out);
					assert_true(out.lv_rank >= 0 && out.lv_rank < ha_count(live & cap));
					seen[out.lv_rank]++;
					if (self == holder)
						assert_int_equal(out.lv_rank, ha_count(live & cap) - 1);
				}
				for (int r = 0; r < ha_count(live & cap); r++)
					assert_int_equal(seen[r], 1);
			}
}

/* ------------------------------------------------------- timelines */

#define STEP 5
#define SIM_MS 60000

struct sim_poold {
	bool dead, holding, writing, acquiring, release_after;
	int64_t paused_until, phase;
	uint64_t epoch;
	int64_t renewed, valid_until, next_renew;
	int64_t w_start, w_end;          /* the write in flight */
	struct ha_lease w_val;
	struct ha_lease seen_val;
	bool seen_ok;
	int64_t seen_ms, read_ms;
};

struct sim {
	int n;
	bool use_lock;
	int lock;                        /* the database's writer, -1 */
	uint64_t db_epoch;
	struct ha_lease hdr;             /* the statefile header as written */
	bool hdr_ok;
	struct sim_poold p[N];
	/* the hosts' agents */
	int64_t agent_dead_at[N], losing_at[N], fenced_at[N];
	int64_t slow_from, slow_to;      /* statefile writes take slow_ms meanwhile */
	int64_t slow_ms;
	unsigned rnd;
	int64_t master_died, new_master_at;
	int first_master;
};

static unsigned rnd(struct sim *s)
{
	s->rnd = s->rnd * 1103515245u + 12345u;
	return (s->rnd >> 16) & 0x7fff;
}

static bool same_lease(const struct ha_lease *a, const struct ha_lease *b)
{
	return a->hl_epoch == b->hl_epoch && a->hl_seq == b->hl_seq && strcmp(a->hl_holder, b->hl_holder) == 0 &&
	       a->hl_released == b->hl_released;
}

static int64_t agent_slot_ms(const struct sim *s, int i, int64_t now)
{
	int64_t stop = s->agent_dead_at[i] >= 0 ? s->agent_dead_at[i] : now;
	if (s->fenced_at[i] >= 0 && s->fenced_at[i] < stop)
		stop = s->fenced_at[i];
	if (stop > now)
		stop = now;
	return stop - stop % 1250; /* a slot write every 1.25 s */
}

static ha_set liveset_of(const struct sim *s, int i, int64_t now)
{
	ha_set live = 0;
	for (int j = 0; j < s->n; j++) {
		bool gone = (s->agent_dead_at[j] >= 0 && now > s->agent_dead_at[j] + T) ||
			    (s->losing_at[j] >= 0 && now >= s->losing_at[j] && j != i);
		if (!gone)
			live |= HA_BIT(j);
	}
	if (s->losing_at[i] >= 0 && now >= s->losing_at[i])
		live = HA_BIT(i); /* the isolated host sees only itself */
	return live;
}

static void start_write(struct sim *s, int i, int64_t now, const struct ha_lease *val, bool acquiring)
{
	struct sim_poold *p = &s->p[i];
	p->writing = true;
	p->acquiring = acquiring;
	p->w_start = now;
	int64_t d = now >= s->slow_from && now < s->slow_to ? s->slow_ms : 2 + (int64_t)(rnd(s) % 20);
	p->w_end = now + d;
	p->w_val = *val;
}

static void write_done(struct sim *s, int i, int64_t now)
{
	struct sim_poold *p = &s->p[i];
	p->writing = false;
	s->hdr = p->w_val;
	s->hdr_ok = true;
	if (p->dead || p->release_after)
		return;
	/* a paused process learns of the end when it runs again */
	int64_t end = now > p->paused_until ? now : p->paused_until;
	struct ha_lease_timing lt = timing(T);
	if (ha_lease_renewal_counts(&lt, p->w_start, end, p->valid_until, p->acquiring)) {
		if (p->acquiring)
			p->holding = true;
		p->renewed = p->w_start;
		p->valid_until = p->w_start + lt.lt_hold_ms;
	} else if (p->acquiring) {
		if (s->lock == i)
			s->lock = -1;
	}
}

static void step_down(struct sim *s, int i)
{
	struct sim_poold *p = &s->p[i];
	p->holding = false;
	p->valid_until = -1;
	if (s->lock == i)
		s->lock = -1;
}

static void poold_tick(struct sim *s, int i, int64_t now)
{
	struct sim_poold *p = &s->p[i];
	struct ha_lease_timing lt = timing(T);
	/* read the header */
	p->read_ms = now;
	bool changed = s->hdr_ok && (!p->seen_ok || !same_lease(&p->seen_val, &s->hdr));
	if (changed) {
		p->seen_val = s->hdr;
		p->seen_ok = true;
		p->seen_ms = now;
	}
	struct ha_lease_view v;
	memset(&v, 0, sizeof v);
	v.lv_n = s->n;
	v.lv_self = i;
	v.lv_now_ms = now;
	v.lv_t = lt;
	v.lv_lease_valid = p->seen_ok;
	v.lv_lease = p->seen_val;
	v.lv_holder = p->seen_ok && p->seen_val.hl_holder[0] ? p->seen_val.hl_holder[0] - 'a' : -1;
	v.lv_lease_seen_ms = p->seen_ok ? p->seen_ms : -1;
	v.lv_read_ms = p->read_ms;
	v.lv_self_slot_ms = agent_slot_ms(s, i, now);
	v.lv_self_losing = s->losing_at[i] >= 0 && now >= s->losing_at[i];
	v.lv_self_fenced = s->fenced_at[i] >= 0 && now >= s->fenced_at[i];
	v.lv_self_liveset = liveset_of(s, i, now);
	v.lv_holding = p->holding;
	v.lv_epoch = p->epoch;
	v.lv_renewed_ms = p->renewed;
	struct ha_lease_verdict out;
	ha_lease_decide(&v, &out);
	if (out.lv_act == HA_LEASE_STEP_DOWN) {
		step_down(s, i);
	} else if (out.lv_act == HA_LEASE_RENEW && !p->writing && now >= p->next_renew) {
		struct ha_lease l = p->seen_val;
		l.hl_seq++;
		start_write(s, i, now, &l, false);
		p->next_renew = now + lt.lt_renew_ms;
	} else if (out.lv_act == HA_LEASE_TAKE && !p->writing && (!s->use_lock || s->lock < 0)) {
		if (s->use_lock)
			s->lock = i;
		uint64_t e = (s->db_epoch > p->seen_val.hl_epoch ? s->db_epoch : p->seen_val.hl_epoch) + 1;
		s->db_epoch = e;
		p->epoch = e;
		struct ha_lease l;
		memset(&l, 0, sizeof l);
		l.hl_epoch = e;
		l.hl_holder[0] = (char)('a' + i);
		l.hl_capable = HA_BIT(s->n) - 1;
		start_write(s, i, now, &l, true);
		p->next_renew = now + lt.lt_renew_ms;
	}
}

/* Is poold i allowed to accept a write at now (db_txn's guard)? */
static bool may_write(const struct sim_poold *p, int64_t now)
{
	return !p->dead && p->holding && now < p->valid_until;
}

static void sim_init(struct sim *s, int n, unsigned seed, bool lock)
{
	memset(s, 0, sizeof *s);
	s->n = n;
	s->rnd = seed;
	s->use_lock = lock;
	s->lock = -1;
	s->master_died = s->new_master_at = -1;
	s->slow_from = s->slow_to = -1;
	for (int i = 0; i < n; i++) {
		s->agent_dead_at[i] = s->losing_at[i] = s->fenced_at[i] = -1;
		s->p[i].renewed = s->p[i].valid_until = -1;
		s->p[i].paused_until = 0;
		s->p[i].phase = (int64_t)(rnd(s) % 20) * STEP;
	}
	/* host 0 is master at 0: it took the lease then */
	s->first_master = 0;
	struct sim_poold *m = &s->p[0];
	m->holding = true;
	m->epoch = s->db_epoch = 1;
	m->renewed = 0;
	m->valid_until = timing(T).lt_hold_ms;
	s->lock = lock ? 0 : -1;
	memset(&s->hdr, 0, sizeof s->hdr);
	s->hdr.hl_epoch = 1;
	s->hdr.hl_holder[0] = 'a';
	s->hdr.hl_capable = HA_BIT(n) - 1;
	s->hdr_ok = true;
}

enum { EV_DEATH, EV_PAUSE, EV_PARTITION, EV_SLOW, EV_STANDBY_AGENT_DIES, EV_KINDS };

static void sim_scenario(struct sim *s, int kind)
{
	int64_t at = 8000 + (int64_t)(rnd(s) % 4000);
	switch (kind) {
	case EV_DEATH: /* the master's host: poold, agent, all at once (sim_run) */
		s->agent_dead_at[0] = at;
		s->master_died = at;
		break;
	case EV_PAUSE: /* SIGSTOP of the master's poold for 1 to 12 s */
		s->p[0].paused_until = at + 1000 + (int64_t)(rnd(s) % 11000);
		break;
	case EV_PARTITION: /* the master's host cut off: losing after T, fenced a settle later */
		s->losing_at[0] = at + T;
		s->fenced_at[0] = at + T + 2450;
		break;
	case EV_SLOW: /* statefile writes take 0.3 to 4 s for a while */
		s->slow_from = at;
		s->slow_to = at + 2000 + (int64_t)(rnd(s) % 8000);
		s->slow_ms = 300 + (int64_t)(rnd(s) % 3700);
		break;
	case EV_STANDBY_AGENT_DIES:
		s->agent_dead_at[1] = at;
		s->master_died = -1;
		break;
	}
}

static void sim_run(struct sim *s)
{
	/* a death: the master's poold stops at master_died, its lock released */
	int64_t died = s->master_died;
	for (int64_t now = 0; now < SIM_MS; now += STEP) {
		if (died >= 0 && now == died - died % STEP) {
			s->p[0].dead = true;
			s->p[0].holding = false;
			if (s->lock == 0)
				s->lock = -1;
		}
		for (int i = 0; i < s->n; i++) {
			struct sim_poold *p = &s->p[i];
			if (p->writing && now >= p->w_end)
				write_done(s, i, now);
			if (!p->dead && now >= p->paused_until && (now - p->phase) % 100 == 0)
				poold_tick(s, i, now);
		}
		int writers = 0;
		for (int i = 0; i < s->n; i++)
			writers += may_write(&s->p[i], now);
		if (writers > 1)
			fail_msg("two masters at %lld ms (lock %d)", (long long)now, s->use_lock);
		if (died >= 0 && now > died && s->new_master_at < 0)
			for (int i = 1; i < s->n; i++)
				if (may_write(&s->p[i], now))
					s->new_master_at = now;
	}
}

static void test_timelines(void **st)
{
	(void)st;
	struct ha_lease_timing lt = timing(T);
	int runs = 0, takeovers = 0;
	int64_t worst = 0;
	for (int n = 3; n <= N; n++)
		for (int lock = 0; lock < 2; lock++)
			for (int kind = 0; kind < EV_KINDS; kind++)
				for (unsigned seed = 1; seed <= 40; seed++) {
					struct sim s;
					sim_init(&s, n, seed * 7919u + (unsigned)kind, lock);
					sim_scenario(&s, kind);
					sim_run(&s);
					runs++;
					if (kind == EV_DEATH) {
						/* a new master within take + a renewal + a tick, plus the acquisition write */
						assert_true(s.new_master_at >= 0);
						int64_t took = s.new_master_at - s.master_died;
						assert_true(took <= lt.lt_take_ms + lt.lt_renew_ms + 2 * lt.lt_tick_ms + 50);
						if (took > worst)
							worst = took;
						takeovers++;
					}
					if (kind == EV_STANDBY_AGENT_DIES) /* the master stays */
						assert_true(may_write(&s.p[0], SIM_MS - STEP) || s.p[0].holding);
					if (kind == EV_PARTITION) /* the isolated master stepped down; another took over */
						assert_false(s.p[0].holding);
				}
	print_message("%d timelines, %d takeovers, slowest %lld ms after the death (take %lld)\n", runs, takeovers,
		      (long long)worst, (long long)lt.lt_take_ms);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_round_trip),
		cmocka_unit_test(test_record_refused),
		cmocka_unit_test(test_word_liveset),
		cmocka_unit_test(test_timing_every_t),
		cmocka_unit_test(test_renewal_counts),
		cmocka_unit_test(test_standby_capable),
		cmocka_unit_test(test_verdict_every_case),
		cmocka_unit_test(test_ranks_distinct),
		cmocka_unit_test(test_timelines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
