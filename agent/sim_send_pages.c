/*
 * sim_send_pages.c - the source's PAGES records (see sim_send.c for the
 * stream they belong to): the rounds that fill them, a record built from
 * guest RAM and sent, and what the destination says meanwhile.
 *
 * Pages are read through our mapping of the domain's RAM (sim_mig.h says
 * why not pread): a page found zero becomes an index entry without data;
 * any other is copied into the record being built and hashed there, as
 * sent. Holes of the memfd are zero pages and are never read. Uncompressed
 * records carry SIM_PIECE_PAGES pages, so each is built, hashed and
 * encrypted without leaving the core's cache. Compressed ones carry
 * MIG_BATCH_PAGES pages through one zstd stream per connection (flushed
 * per record), and a writer thread (mig_handoff.c) encrypts and sends each
 * while the next is compressed: compression is the slow stage there.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "sim_mig.h"
#include "simdom.h"

#define PG SIM_PG
#define PROGRESS_EVERY (16ull << 20)
#define DATA_OFF (SIM_REC_HDRS + SIM_REC_MAX_INDEX * 8)

static unsigned char *data_area(struct sim_sender *s)
{
	return s->sd_cctx ? s->sd_raw : s->sd_rec + DATA_OFF;
}

static uint64_t *rec_index(struct sim_sender *s)
{
	return (uint64_t *)(void *)(s->sd_rec + SIM_REC_HDRS);
}

void sim_send_report(struct sim_sender *s, uint64_t remaining)
{
	if (!s->sd_progress)
		return;
	struct mig_progress p = {0};
	p.pg_round = s->sd_round;
	p.pg_paused = s->sd_paused;
	p.pg_bytes_sent = s->sd_out;
	p.pg_pages_remaining = remaining;
	p.pg_npages = s->sd_m.sm_npages;
	double sec = (double)(sim_now_ns() - s->sd_t0) / 1e9;
	p.pg_rate_mb_s = sec > 0 ? (double)s->sd_out / 1e6 / sec : 0;
	p.pg_throttle_pct = s->sd_throttle;
	s->sd_progress(&p, s->sd_parg);
}

/* ---- the destination's records during the stream ---- */

/* One record: a ROUND_ACK is noted; anything else ends the stream. */
enum mo_event sim_send_peer_record(struct sim_sender *s)
{
	struct mig_rec_hdr h;
	int rc = mig_read_rec(s->sd_io, &h, &s->sd_in.mb_p, &s->sd_in.mb_cap, "the destination refused",
			      s->sd_err, s->sd_errlen);
	if (rc != MIG_READ_OK)
		return sim_read_event(rc);
	if (h.rh_type == MIG_REC_ROUND_ACK && h.rh_len >= sizeof(struct mig_round_end)) {
		struct mig_round_end re;
		memcpy(&re, s->sd_in.mb_p, sizeof re);
		if ((int)re.re_round > s->sd_acked)
			s->sd_acked = (int)re.re_round;
		return MO_EV_OK;
	}
	mig_seterr(s->sd_err, s->sd_errlen,
		   "malformed migration stream: unexpected record type %u from the destination", h.rh_type);
	return MO_EV_IO_ERROR;
}

/* Whatever the destination said so far (ROUND_ACKs, or an ERROR mid-stream). */
enum mo_event sim_send_check_peer(struct sim_sender *s)
{
	while (mig_io_readable(s->sd_io)) {
		enum mo_event ev = sim_send_peer_record(s);
		if (ev != MO_EV_OK)
			return ev;
	}
	return MO_EV_OK;
}

/* ---- records ---- */

static int write_job(void *arg, char *err, size_t errlen)
{
	struct sim_sender *s = arg;
	return mig_io_write(s->sd_io, s->sd_wr_buf, s->sd_wr_len, err, errlen);
}

/* Until the writer is idle: then this thread may use the connection. */
static enum mo_event drain(struct sim_sender *s)
{
	if (mig_handoff_wait(&s->sd_wr, s->sd_err, s->sd_errlen) != 0)
		return MO_EV_IO_ERROR;
	s->sd_out = s->sd_io->bytes_out;
	return MO_EV_OK;
}

/* len bytes of the record from start: written now, or handed to the writer
 * (and the spare buffer becomes the record). */
static enum mo_event write_record(struct sim_sender *s, size_t start, size_t len)
{
	if (!s->sd_rec_spare) {
		int rc = mig_io_write(s->sd_io, s->sd_rec + start, len, s->sd_err, s->sd_errlen);
		s->sd_out = s->sd_io->bytes_out;
		return rc == 0 ? MO_EV_OK : MO_EV_IO_ERROR;
	}
	if (drain(s) != MO_EV_OK)
		return MO_EV_IO_ERROR;
	s->sd_out += len;
	s->sd_wr_buf = s->sd_rec + start;
	s->sd_wr_len = len;
	if (mig_handoff_post(&s->sd_wr, s->sd_err, s->sd_errlen) != 0)
		return MO_EV_IO_ERROR;
	unsigned char *t = s->sd_rec;
	s->sd_rec = s->sd_rec_spare;
	s->sd_rec_spare = t;
	return MO_EV_OK;
}

/* Pace: bytes out may not run ahead of max_bandwidth_mb_s. */
static void pace(struct sim_sender *s)
{
	if (s->sd_o.max_bandwidth_mb_s <= 0)
		return;
	uint64_t due = s->sd_t0 + (uint64_t)((double)s->sd_out * 1e3 / (double)s->sd_o.max_bandwidth_mb_s);
	uint64_t t = sim_now_ns();
	if (due > t) {
		struct timespec ts = {.tv_sec = (time_t)((due - t) / 1000000000ull),
				      .tv_nsec = (long)((due - t) % 1000000000ull)};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
}

/* The record's data through the connection's zstd stream, after the index
 * area; its length into *len. */
static enum mo_event compress_data(struct sim_sender *s, size_t *len)
{
	ZSTD_inBuffer in = {s->sd_raw, s->sd_raw_len, 0};
	ZSTD_outBuffer out = {s->sd_rec + DATA_OFF, s->sd_rec_cap - DATA_OFF, 0};
	size_t r;
	do {
		r = ZSTD_compressStream2(s->sd_cctx, &out, &in, ZSTD_e_flush);
		if (ZSTD_isError(r)) {
			mig_seterr(s->sd_err, s->sd_errlen, "compression failed: %s", ZSTD_getErrorName(r));
			return MO_EV_LOCAL_ERROR;
		}
		if (r && out.pos == out.size) {
			mig_seterr(s->sd_err, s->sd_errlen, "compression output overflow");
			return MO_EV_LOCAL_ERROR;
		}
	} while (r != 0);
	*len = out.pos;
	return MO_EV_OK;
}

static enum mo_event flush_record(struct sim_sender *s)
{
	if (s->sd_nidx == 0)
		return MO_EV_OK;
	size_t data_len = s->sd_raw_len;
	if (s->sd_cctx && s->sd_raw_len) {
		enum mo_event ev = compress_data(s, &data_len);
		if (ev != MO_EV_OK)
			return ev;
	}
	s->sd_res->bytes_raw += s->sd_raw_len;
	s->sd_res->bytes_compressed += data_len;
	/* the index area has room for SIM_REC_MAX_INDEX entries: when shorter, the
	 * headers and the index move up against the data (a few KiB) rather
	 * than the data down */
	size_t idx_len = (size_t)s->sd_nidx * 8, start = DATA_OFF - idx_len - SIM_REC_HDRS;
	if (start)
		memmove(s->sd_rec + start + SIM_REC_HDRS, s->sd_rec + SIM_REC_HDRS, idx_len);
	struct mig_rec_hdr h = {.rh_type = MIG_REC_PAGES,
				.rh_flags = s->sd_cctx && s->sd_raw_len ? MIG_F_COMPRESSED : 0,
				.rh_len = sizeof(struct mig_pages) + idx_len + data_len};
	struct mig_pages ph = {.ps_npages = s->sd_nidx, .ps_raw_len = s->sd_raw_len};
	memcpy(s->sd_rec + start, &h, sizeof h);
	memcpy(s->sd_rec + start + sizeof h, &ph, sizeof ph);
	s->sd_nidx = 0;
	s->sd_raw_len = 0;
	if (write_record(s, start, SIM_REC_HDRS + idx_len + data_len) != MO_EV_OK)
		return MO_EV_IO_ERROR;
	pace(s);
	return MO_EV_OK;
}

/* The zero pages [p, e) (a hole: known zero, never read). */
static enum mo_event add_zeros(struct sim_sender *s, uint64_t p, uint64_t e)
{
	for (; p < e; p++) {
		if (s->sd_nidx == SIM_REC_MAX_INDEX) {
			enum mo_event ev = flush_record(s);
			if (ev != MO_EV_OK)
				return ev;
		}
		rec_index(s)[s->sd_nidx++] = p | MIG_PAGE_ZERO;
		s->sd_sent_hash[p] = s->sd_zero_hash;
		s->sd_res->zero_pages++;
		s->sd_res->pages_sent++;
	}
	return MO_EV_OK;
}

/* Pages [p, p + k), which fit the record, into it: a zero page as an
 * index entry, any other copied and hashed as sent. Pages the balloon
 * gave back (at or above ss_held_pages) are zero and not read: a read
 * through the mapping would allocate them again. The guest may write a
 * page while it is copied: it marks it dirty after, and the page goes
 * again in a later round (the last one runs paused). */
static void add_run(struct sim_sender *s, uint64_t p, uint64_t k)
{
	mig_gate_yield(s->sd_paused ? NULL : s->sd_o.gate);
	uint64_t held = __atomic_load_n(&s->sd_m.sm_shared->ss_held_pages, __ATOMIC_ACQUIRE);
	unsigned char *base = data_area(s) + s->sd_raw_len, *dst = base;
	uint64_t *idx = rec_index(s);
	for (uint64_t q = p; q < p + k; q++) {
		const unsigned char *pg = s->sd_m.sm_ram + q * PG;
		if (q >= held || mig_page_is_zero(pg)) {
			idx[s->sd_nidx++] = q | MIG_PAGE_ZERO;
			s->sd_sent_hash[q] = s->sd_zero_hash;
			s->sd_res->zero_pages++;
			continue;
		}
		memcpy(dst, pg, PG);
		s->sd_sent_hash[q] = s->sd_hash(dst); /* what was sent, not what is there now */
		idx[s->sd_nidx++] = q;
		dst += PG;
	}
	s->sd_hashed += (uint64_t)(dst - base) / PG;
	s->sd_raw_len += (size_t)(dst - base);
}

/* Every 16 MB on the wire: the destination's news, and progress. */
static enum mo_event mark(struct sim_sender *s, uint64_t remaining)
{
	if (s->sd_out - s->sd_mark < PROGRESS_EVERY)
		return MO_EV_OK;
	s->sd_mark = s->sd_out;
	enum mo_event ev = drain(s);
	if (ev == MO_EV_OK)
		ev = sim_send_check_peer(s);
	if (ev == MO_EV_OK)
		sim_send_report(s, remaining);
	return ev;
}

/* The data pages [p, p + k), record by record. */
static enum mo_event add_pages(struct sim_sender *s, uint64_t p, uint64_t k, uint64_t remaining)
{
	while (k > 0) {
		uint64_t room = s->sd_batch - s->sd_raw_len / PG, ir = SIM_REC_MAX_INDEX - s->sd_nidx;
		uint64_t n = k < room ? k : room;
		n = n < ir ? n : ir;
		enum mo_event ev;
		if (n)
			add_run(s, p, n);
		p += n;
		k -= n;
		s->sd_res->pages_sent += n;
		if (s->sd_raw_len / PG == s->sd_batch || s->sd_nidx == SIM_REC_MAX_INDEX) {
			if ((ev = flush_record(s)) != MO_EV_OK || (ev = mark(s, remaining + k)) != MO_EV_OK)
				return ev;
		}
	}
	return MO_EV_OK;
}

/* ---- rounds ---- */

/* Round 1: every page; holes as zero entries, never read. */
static enum mo_event round_all(struct sim_sender *s, uint64_t *sent)
{
	uint64_t n = s->sd_m.sm_npages, words = (n + 63) / 64, p = 0;
	for (uint64_t w = 0; w < words; w++)
		(void)__atomic_exchange_n(&s->sd_m.sm_dirty[w], 0, __ATOMIC_ACQ_REL);
	while (p < n) {
		uint64_t ds, de;
		if (!sim_ram_next_data(s->sd_m.sm_ram_fd, p, n, &ds, &de))
			ds = de = n;
		enum mo_event ev = add_zeros(s, p, ds);
		if (ev == MO_EV_OK)
			ev = add_pages(s, ds, de - ds, n - de);
		if (ev != MO_EV_OK)
			return ev;
		p = de;
	}
	*sent = n;
	return MO_EV_OK;
}

/* Later rounds: the pages whose dirty bit they clear, a run of consecutive
 * ones read together. */
static enum mo_event round_dirty(struct sim_sender *s, uint64_t *sent)
{
	uint64_t n = s->sd_m.sm_npages, words = (n + 63) / 64, rs = 0, rk = 0;
	enum mo_event ev = MO_EV_OK;
	*sent = 0;
	for (uint64_t w = 0; w < words && ev == MO_EV_OK; w++) {
		if (!__atomic_load_n(&s->sd_m.sm_dirty[w], __ATOMIC_RELAXED))
			continue;
		uint64_t bits = __atomic_exchange_n(&s->sd_m.sm_dirty[w], 0, __ATOMIC_ACQ_REL);
		while (bits && ev == MO_EV_OK) {
			uint64_t p = w * 64 + (uint64_t)__builtin_ctzll(bits);
			bits &= bits - 1;
			if (p >= n)
				break;
			if (rk && p != rs + rk) {
				ev = add_pages(s, rs, rk, 0);
				rk = 0;
			}
			if (!rk)
				rs = p;
			rk++;
			(*sent)++;
		}
	}
	if (ev == MO_EV_OK && rk)
		ev = add_pages(s, rs, rk, 0);
	return ev;
}

enum mo_event sim_send_round(struct sim_sender *s, bool last)
{
	uint64_t t = sim_now_ns(), w0 = s->sd_io->bytes_out, sent = 0;
	s->sd_round++;
	s->sd_mark = w0;
	enum mo_event ev = s->sd_round == 1 ? round_all(s, &sent) : round_dirty(s, &sent);
	if (ev == MO_EV_OK)
		ev = flush_record(s);
	if (ev == MO_EV_OK)
		ev = drain(s);
	struct mig_round_end re = {.re_round = (uint32_t)s->sd_round, .re_last = last};
	if (ev == MO_EV_OK &&
	    mig_send_rec(s->sd_io, MIG_REC_ROUND_END, 0, &re, sizeof re, s->sd_err, s->sd_errlen) != 0)
		ev = MO_EV_IO_ERROR;
	if (ev != MO_EV_OK || last)
		return ev;
	struct mig_round_stats *r = &s->sd_hist[s->sd_nh++];
	r->rs_round = s->sd_round;
	r->rs_pages_sent = sent;
	r->rs_wire_bytes = s->sd_io->bytes_out - w0;
	r->rs_ns = sim_now_ns() - t;
	r->rs_dirty_after = 0;
	for (uint64_t w = 0; w < (s->sd_m.sm_npages + 63) / 64; w++)
		r->rs_dirty_after += (uint64_t)__builtin_popcountll(__atomic_load_n(&s->sd_m.sm_dirty[w], __ATOMIC_RELAXED));
	r->rs_throttle_pct = s->sd_throttle;
	if (s->sd_round == 1) {
		s->sd_res->round1_ms = (double)r->rs_ns / 1e6;
		s->sd_res->round1_bytes = r->rs_wire_bytes;
	}
	sim_send_report(s, r->rs_dirty_after);
	return MO_EV_OK;
}

/* The record buffers, the per-page hashes, the rounds' history and
 * (compressing) zstd: after HELLO, which chose the hash. */
enum mo_event sim_send_buffers(struct sim_sender *s)
{
	uint64_t n = s->sd_m.sm_npages;
	s->sd_batch = s->sd_o.compress ? MIG_BATCH_PAGES : SIM_PIECE_PAGES;
	size_t data_cap = (size_t)s->sd_batch * PG;
	s->sd_rec_cap = DATA_OFF + (s->sd_o.compress ? ZSTD_compressBound(data_cap) + 4096 : data_cap);
	s->sd_sent_hash = mig_malloc(n * 8);
	s->sd_rec = mig_malloc(s->sd_rec_cap);
	s->sd_hist = calloc((size_t)(s->sd_o.max_rounds > 0 ? s->sd_o.max_rounds : 30) + 2, sizeof *s->sd_hist);
	bool ok = s->sd_sent_hash && s->sd_rec && s->sd_hist;
	if (ok && s->sd_o.compress) {
		s->sd_raw = mig_malloc(data_cap);
		s->sd_rec_spare = mig_malloc(s->sd_rec_cap);
		s->sd_cctx = ZSTD_createCCtx();
		ok = s->sd_raw && s->sd_rec_spare && s->sd_cctx;
		if (ok) {
			ZSTD_CCtx_setParameter(s->sd_cctx, ZSTD_c_compressionLevel,
					       s->sd_o.compress_level > 0 ? s->sd_o.compress_level : 1);
			if (s->sd_o.compress_workers > 0)
				ZSTD_CCtx_setParameter(s->sd_cctx, ZSTD_c_nbWorkers, s->sd_o.compress_workers);
		}
	}
	if (!ok) {
		mig_seterr(s->sd_err, s->sd_errlen, "out of memory for the migration buffers");
		return MO_EV_LOCAL_ERROR;
	}
	static const unsigned char zp[PG];
	s->sd_zero_hash = s->sd_hash(zp);
	return MO_EV_OK;
}

/* Compressing: the writer thread, once the destination accepted. */
void sim_send_writer_start(struct sim_sender *s)
{
	s->sd_out = s->sd_io->bytes_out;
	if (s->sd_rec_spare)
		mig_handoff_start(&s->sd_wr, write_job, s, "mig-writer");
}

void sim_send_buffers_free(struct sim_sender *s)
{
	mig_handoff_stop(&s->sd_wr);
	ZSTD_freeCCtx(s->sd_cctx);
	free(s->sd_raw);
	free(s->sd_rec);
	free(s->sd_rec_spare);
	free(s->sd_sent_hash);
	free(s->sd_hist);
}
