/*
 * lease_io.c - the statefile as a poold sees it: a thread that reads the
 * header (the master's lease) and the slots every tick, and, while this
 * poold holds the lease, renews it. Blocking I/O on the SR lives here so a
 * slow SR never stalls the event loop; the loop reads what the thread saw
 * (lease_io_observe) and decides with ha/lease.c's rule (mfo.c).
 *
 * The time this poold may still write (lease_io_valid_until) moves only
 * when a renewal counts (ha_lease_renewal_counts: it started while valid
 * and reached the statefile within half a renew interval), and db_txn's
 * guard reads it before every transaction and every commit.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "log.h"
#include "poold.h"
#include "util.h"

struct lease_io {
	struct lease_cfg li_cfg;
	struct ha_lease_timing li_t;
	pthread_t li_thread;
	pthread_mutex_t li_mu;   /* everything below */
	pthread_mutex_t li_wmu;  /* the header: one writer at a time */
	bool li_stop;
	struct lease_obs li_obs;
	bool li_holding;
	struct ha_lease li_mine; /* what we renew */
	int64_t li_next_renew;
	_Atomic int64_t li_valid_until;
	uint64_t li_self_seq;
	char li_self_boot[48];
};

static int64_t lio_now(void)
{
	return (int64_t)now_ms();
}

int lease_cfg_parse(const json_t *ha, const char *self_uuid, struct lease_cfg *out)
{
	memset(out, 0, sizeof *out);
	json_t *members = json_object_get(ha, "members");
	const char *sf = jstr(ha, "statefile"), *key = jstr(ha, "key"), *gen = jstr(ha, "generation");
	size_t n = json_array_size(members);
	if (!*sf || !*gen || n < 1 || n > HA_MAX_HOSTS || ha_hex_decode(key, out->lc_key, HA_KEY_LEN) < 0)
		return -1;
	snprintf(out->lc_statefile, sizeof out->lc_statefile, "%s", sf);
	snprintf(out->lc_generation, sizeof out->lc_generation, "%s", gen);
	out->lc_timeout_ms = json_integer_value(json_object_get(ha, "timeout")) * 1000;
	out->lc_n = (int)n;
	out->lc_self = -1;
	for (size_t i = 0; i < n; i++) {
		snprintf(out->lc_members[i], sizeof out->lc_members[i], "%s", json_string_value(json_array_get(members, i)));
		if (i > 0 && strcmp(out->lc_members[i - 1], out->lc_members[i]) >= 0)
			return -1; /* sorted by uuid, as the agents number them */
		if (strcmp(out->lc_members[i], self_uuid) == 0)
			out->lc_self = (int)i;
	}
	return out->lc_timeout_ms > 0 && out->lc_self >= 0 ? 0 : -1;
}

int lease_cfg_member(const struct lease_cfg *c, const char *uuid)
{
	for (int i = 0; i < c->lc_n; i++)
		if (strcmp(c->lc_members[i], uuid) == 0)
			return i;
	return -1;
}

static bool lio_same(const struct ha_lease *a, const struct ha_lease *b)
{
	return a->hl_epoch == b->hl_epoch && a->hl_seq == b->hl_seq && a->hl_released == b->hl_released &&
	       a->hl_off == b->hl_off && strcmp(a->hl_holder, b->hl_holder) == 0 && strcmp(a->hl_run, b->hl_run) == 0;
}

/* Take in a read that started at start (under li_mu). */
static void lio_take(struct lease_io *io, const char *all, int64_t start)
{
	struct lease_obs *o = &io->li_obs;
	int64_t end = lio_now();
	struct ha_lease l;
	bool ok = ha_lease_decode(all + HA_LEASE_OFFSET, HA_LEASE_SIZE, io->li_cfg.lc_key, &l) == 0 &&
		  strcmp(l.hl_generation, io->li_cfg.lc_generation) == 0;
	if (ok && (!o->lo_lease_ok || !lio_same(&l, &o->lo_lease))) {
		o->lo_lease = l;
		o->lo_lease_seen_ms = end; /* the write it shows began before this */
		o->lo_holder = lease_cfg_member(&io->li_cfg, l.hl_holder);
	}
	if (!ok && o->lo_lease_ok)
		o->lo_lease_seen_ms = -1;
	o->lo_lease_ok = ok;
	struct ha_word w;
	const char *slot = all + (size_t)HA_SLOT_SIZE * (size_t)(1 + io->li_cfg.lc_self);
	if (ha_word_decode(slot, HA_SLOT_SIZE, io->li_cfg.lc_key, &w) == 0 &&
	    strcmp(w.hw_generation, io->li_cfg.lc_generation) == 0 &&
	    strcmp(w.hw_host, io->li_cfg.lc_members[io->li_cfg.lc_self]) == 0) {
		if (w.hw_seq != io->li_self_seq || strcmp(w.hw_boot, io->li_self_boot)) {
			io->li_self_seq = w.hw_seq;
			snprintf(io->li_self_boot, sizeof io->li_self_boot, "%s", w.hw_boot);
			o->lo_self_slot_ms = end;
		}
		o->lo_self = w;
		o->lo_self_ok = true;
	}
	o->lo_read_ms = start;
}

/* One renewal if one is due: written, then counted or not. */
static void lio_renew(struct lease_io *io)
{
	pthread_mutex_lock(&io->li_mu);
	int64_t start = lio_now(), valid = atomic_load(&io->li_valid_until);
	bool due = io->li_holding && start >= io->li_next_renew && start < valid;
	struct ha_lease l = io->li_mine;
	l.hl_seq++;
	pthread_mutex_unlock(&io->li_mu);
	if (!due)
		return;
	char buf[HA_LEASE_SIZE], err[256] = "";
	pthread_mutex_lock(&io->li_wmu);
	int rc = ha_lease_encode(&l, io->li_cfg.lc_key, buf, sizeof buf) < 0
			 ? -1
			 : ha_statefile_write_lease(io->li_cfg.lc_statefile, buf, err, sizeof err);
	pthread_mutex_unlock(&io->li_wmu);
	int64_t end = lio_now();
	pthread_mutex_lock(&io->li_mu);
	io->li_next_renew = start + io->li_t.lt_renew_ms;
	if (rc == 0 && io->li_holding && ha_lease_renewal_counts(&io->li_t, start, end, valid, false)) {
		io->li_mine.hl_seq = l.hl_seq;
		io->li_obs.lo_renewed_ms = start;
		atomic_store(&io->li_valid_until, start + io->li_t.lt_hold_ms);
	} else if (rc == 0 && io->li_holding) {
		io->li_mine.hl_seq = l.hl_seq;
		log_warn("master lease: a renewal took %lld ms: it does not count", (long long)(end - start));
	}
	if (rc)
		snprintf(io->li_obs.lo_err, sizeof io->li_obs.lo_err, "%s", err);
	pthread_mutex_unlock(&io->li_mu);
	if (rc)
		log_warn("master lease: %s", err);
}

static void lio_sleep(int64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void *lio_main(void *arg)
{
	struct lease_io *io = arg;
	size_t len = (size_t)HA_SLOT_SIZE * (size_t)(io->li_cfg.lc_n + 1);
	char *all = xmalloc(len), err[256];
	for (;;) {
		pthread_mutex_lock(&io->li_mu);
		bool stop = io->li_stop;
		pthread_mutex_unlock(&io->li_mu);
		if (stop)
			break;
		int64_t tick = lio_now();
		lio_renew(io);
		int64_t start = lio_now();
		if (ha_statefile_read_all(io->li_cfg.lc_statefile, io->li_cfg.lc_n, all, err, sizeof err) == 0) {
			pthread_mutex_lock(&io->li_mu);
			lio_take(io, all, start);
			pthread_mutex_unlock(&io->li_mu);
		}
		int64_t spent = lio_now() - tick;
		if (spent < io->li_t.lt_tick_ms)
			lio_sleep(io->li_t.lt_tick_ms - spent);
	}
	free(all);
	return NULL;
}

struct lease_io *lease_io_start(const struct lease_cfg *c)
{
	struct lease_io *io = xcalloc(1, sizeof *io);
	io->li_cfg = *c;
	ha_lease_timing_for(c->lc_timeout_ms, &io->li_t);
	pthread_mutex_init(&io->li_mu, NULL);
	pthread_mutex_init(&io->li_wmu, NULL);
	io->li_obs.lo_read_ms = io->li_obs.lo_lease_seen_ms = io->li_obs.lo_self_slot_ms = -1;
	io->li_obs.lo_renewed_ms = -1;
	io->li_obs.lo_holder = -1;
	atomic_store(&io->li_valid_until, -1);
	if (pthread_create(&io->li_thread, NULL, lio_main, io) != 0)
		abort();
	return io;
}

void lease_io_stop(struct lease_io *io)
{
	if (!io)
		return;
	pthread_mutex_lock(&io->li_mu);
	io->li_stop = true;
	pthread_mutex_unlock(&io->li_mu);
	pthread_join(io->li_thread, NULL);
	pthread_mutex_destroy(&io->li_mu);
	pthread_mutex_destroy(&io->li_wmu);
	free(io);
}

void lease_io_observe(struct lease_io *io, struct lease_obs *out)
{
	pthread_mutex_lock(&io->li_mu);
	*out = io->li_obs;
	out->lo_valid_until_ms = atomic_load(&io->li_valid_until);
	pthread_mutex_unlock(&io->li_mu);
}

const struct ha_lease_timing *lease_io_timing(struct lease_io *io)
{
	return &io->li_t;
}

const struct lease_cfg *lease_io_cfg(struct lease_io *io)
{
	return &io->li_cfg;
}

int64_t lease_io_valid_until(struct lease_io *io)
{
	return io ? atomic_load(&io->li_valid_until) : -1;
}

int lease_io_acquire(struct lease_io *io, const struct ha_lease *l, char *err, size_t errlen)
{
	char buf[HA_LEASE_SIZE];
	if (ha_lease_encode(l, io->li_cfg.lc_key, buf, sizeof buf) < 0)
		return errf(err, errlen, "the lease does not fit the statefile header");
	pthread_mutex_lock(&io->li_wmu);
	int64_t start = lio_now();
	int rc = ha_statefile_write_lease(io->li_cfg.lc_statefile, buf, err, errlen);
	int64_t end = lio_now();
	pthread_mutex_unlock(&io->li_wmu);
	if (rc)
		return -1;
	if (!ha_lease_renewal_counts(&io->li_t, start, end, -1, true))
		return errf(err, errlen, "writing the lease took %lld ms: too slow to count", (long long)(end - start));
	pthread_mutex_lock(&io->li_mu);
	io->li_holding = true;
	io->li_mine = *l;
	io->li_next_renew = start + io->li_t.lt_renew_ms;
	io->li_obs.lo_renewed_ms = start;
	atomic_store(&io->li_valid_until, start + io->li_t.lt_hold_ms);
	pthread_mutex_unlock(&io->li_mu);
	return 0;
}

void lease_io_update(struct lease_io *io, const struct ha_lease *l)
{
	pthread_mutex_lock(&io->li_mu);
	uint64_t seq = io->li_mine.hl_seq;
	io->li_mine = *l;
	io->li_mine.hl_seq = seq;
	pthread_mutex_unlock(&io->li_mu);
}

void lease_io_release(struct lease_io *io, bool say_so, bool off)
{
	pthread_mutex_lock(&io->li_mu);
	bool was = io->li_holding;
	io->li_holding = false;
	int64_t valid = atomic_exchange(&io->li_valid_until, -1);
	struct ha_lease l = io->li_mine;
	pthread_mutex_unlock(&io->li_mu);
	/* the released word only while the lease is still ours for sure: a
	 * late write could hide a successor's */
	if (!was || !say_so || lio_now() >= valid - io->li_t.lt_renew_ms / 2)
		return;
	l.hl_seq++;
	l.hl_released = true;
	l.hl_off = off;
	char buf[HA_LEASE_SIZE], err[256];
	pthread_mutex_lock(&io->li_wmu);
	if (ha_lease_encode(&l, io->li_cfg.lc_key, buf, sizeof buf) < 0 ||
	    ha_statefile_write_lease(io->li_cfg.lc_statefile, buf, err, sizeof err) < 0)
		log_warn("master lease: could not say it is released (the next master waits for it to expire)");
	pthread_mutex_unlock(&io->li_wmu);
}
