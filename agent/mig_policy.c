/*
 * mig_policy.c - when the sim stream stops pre-copying (the stop rule),
 * how hard it throttles a guest that dirties faster than the link carries
 * (auto-converge), and who goes first when several senders share a host
 * (the stop-and-copy gate). The rules are pure functions over the rounds'
 * statistics (see mig.h); test_mig.c checks them.
 */
#include <string.h>
#include <time.h>

#include "mig.h"

#define PG MIG_PAGE_SIZE

void mig_opts_default(struct mig_opts *o)
{
	memset(o, 0, sizeof *o);
	o->compress_level = 1;
	o->max_downtime_ms = 50;
	o->max_rounds = 30;
	o->auto_converge = true;
	o->throttle_initial = 20;
	o->throttle_step = 10;
	o->throttle_max = 99;
}

const char *mig_stop_name(enum mig_stop s)
{
	switch (s) {
	case MIG_CONTINUE:
		return "continue";
	case MIG_STOP_DOWNTIME:
		return "downtime-fits";
	case MIG_STOP_MAX_ROUNDS:
		return "max-rounds";
	case MIG_STOP_NO_PROGRESS:
		return "no-progress";
	}
	return "?";
}

static int o_int(int v, int def)
{
	return v > 0 ? v : def;
}

double mig_predict_ms(const struct mig_round_stats *h, int n)
{
	if (!h || n <= 0)
		return -1;
	uint64_t bytes = 0, ns = 0;
	for (int i = 0; i < n; i++) {
		bytes += h[i].rs_wire_bytes;
		ns += h[i].rs_ns;
	}
	if (bytes == 0 || ns == 0)
		return -1;
	double bytes_per_ms = (double)bytes / ((double)ns / 1e6);
	/* a dirty page costs a full page on the wire (conservative: no zero/compression credit) */
	return (double)h[n - 1].rs_dirty_after * (PG + 8) / bytes_per_ms;
}

static bool shrank(const struct mig_round_stats *h, int i)
{
	/* round i shrank the dirty set by at least 10% against round i-1 */
	return (double)h[i].rs_dirty_after < 0.9 * (double)h[i - 1].rs_dirty_after;
}

enum mig_stop mig_should_stop(const struct mig_round_stats *h, int n, const struct mig_opts *o)
{
	if (!h || n <= 0 || !o)
		return MIG_CONTINUE;
	double pred = mig_predict_ms(h, n);
	if (h[n - 1].rs_dirty_after == 0 ||
	    (pred >= 0 && pred <= (double)o_int(o->max_downtime_ms, 50)))
		return MIG_STOP_DOWNTIME;
	if (h[n - 1].rs_round >= o_int(o->max_rounds, 30) || n >= o_int(o->max_rounds, 30))
		return MIG_STOP_MAX_ROUNDS;
	if (n >= 4 && !shrank(h, n - 1) && !shrank(h, n - 2) && !shrank(h, n - 3)) {
		if (!o->auto_converge || h[n - 1].rs_throttle_pct >= o_int(o->throttle_max, 99))
			return MIG_STOP_NO_PROGRESS;
	}
	return MIG_CONTINUE;
}

int mig_next_throttle(const struct mig_round_stats *h, int n, const struct mig_opts *o)
{
	if (!h || n <= 0 || !o)
		return 0;
	int cur = h[n - 1].rs_throttle_pct;
	if (!o->auto_converge || n < 2)
		return cur;
	double pred = mig_predict_ms(h, n);
	if (pred >= 0 && pred <= (double)o_int(o->max_downtime_ms, 50))
		return cur;
	if (shrank(h, n - 1))
		return cur;
	int max = o_int(o->throttle_max, 99);
	if (max > 100)
		max = 100;
	int next = cur <= 0 ? o_int(o->throttle_initial, 20) : cur + o_int(o->throttle_step, 10);
	return next > max ? max : next;
}

/* ---- the stop-and-copy gate ---- */

void mig_gate_enter(struct mig_gate *g)
{
	if (g)
		__atomic_add_fetch(&g->mg_final, 1, __ATOMIC_ACQ_REL);
}

void mig_gate_leave(struct mig_gate *g)
{
	if (g)
		__atomic_sub_fetch(&g->mg_final, 1, __ATOMIC_ACQ_REL);
}

void mig_gate_yield(struct mig_gate *g)
{
	for (int i = 0; g && i < 200 && __atomic_load_n(&g->mg_final, __ATOMIC_ACQUIRE) > 0; i++) {
		struct timespec ts = {0, 500000}; /* at most 100 ms in all */
		nanosleep(&ts, NULL);
	}
}
