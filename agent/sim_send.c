/*
 * sim_send.c - the source end of the sim stream: mig_send (see mig.h).
 *
 * The ownership machine (mig_owner_run) walks it through its steps:
 * handshake; pre-copy rounds while the guest runs, until the stop rule
 * (mig_policy.c) says stop; the stop-and-copy (guest paused: its last
 * pages, its vCPUs, the checksum); READY; GO; RUNNING. Every failure is
 * an event, and the machine alone says what it means for the VM.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "log.h"
#include "mig_owner.h"
#include "sim_mig.h"
#include "simdom.h"

#define PG SIM_PG
#define PROGRESS_EVERY (16ull << 20)
#define DATA_OFF (SIM_REC_HDRS + SIM_REC_MAX_INDEX * 8)

struct sim_sender {
	/* the call */
	struct mig_io *sd_io;
	struct backend *sd_be;
	const struct mig_backend_lock *sd_lk;
	int sd_domid;
	const struct be_domain_config *sd_cfg;
	const char *sd_token;
	struct mig_opts sd_o;
	mig_progress_fn sd_progress;
	void *sd_parg;
	struct mig_send_result *sd_res;
	char *sd_err;
	size_t sd_errlen;
	/* the domain */
	struct be_sim_map sd_m;
	bool sd_mapped, sd_paused, sd_in_gate;
	int sd_throttle;
	mig_hash_fn sd_hash;	/* mig_page_hash2 when both ends offer it */
	uint64_t *sd_sent_hash; /* per page: the hash of what was sent last */
	uint64_t sd_zero_hash;
	uint64_t sd_hashed;	/* pages hashed while sending */
	/* the record being built: hdr | mig_pages | index[] | data */
	unsigned char *sd_rec;
	size_t sd_rec_cap;
	unsigned char *sd_raw; /* compressing: the data before compression; else NULL */
	ZSTD_CCtx *sd_cctx;
	/* compressing: the writer sends one record while this thread builds the
	 * next in the spare buffer; only one of them uses the connection at a
	 * time (the writer between write_record and drain, this thread after) */
	struct mig_handoff sd_wr;
	unsigned char *sd_rec_spare;
	const unsigned char *sd_wr_buf;
	size_t sd_wr_len;
	uint64_t sd_out;       /* bytes handed to the connection (written or queued) */
	uint32_t sd_batch;     /* data pages per record */
	uint32_t sd_nidx;
	size_t sd_raw_len;
	/* the conversation */
	struct mig_buf sd_in;  /* records from the destination */
	int sd_round, sd_acked; /* acked: the last pre-copy round the destination read through */
	struct mig_round_stats *sd_hist;
	int sd_nh;
	uint64_t sd_t0, sd_t_pause, sd_t_paused, sd_t_sent, sd_t_ready, sd_mark;
	bool sd_dest_verified;
};

static enum mo_event read_event(int rc)
{
	return rc == MIG_READ_PEER ? MO_EV_PEER_ERROR : MO_EV_IO_ERROR;
}

static unsigned char *data_area(struct sim_sender *s)
{
	return s->sd_cctx ? s->sd_raw : s->sd_rec + DATA_OFF;
}

static uint64_t *rec_index(struct sim_sender *s)
{
	return (uint64_t *)(void *)(s->sd_rec + SIM_REC_HDRS);
}

static void report(struct sim_sender *s, uint64_t remaining)
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
static enum mo_event peer_record(struct sim_sender *s)
{
	struct mig_rec_hdr h;
	int rc = mig_read_rec(s->sd_io, &h, &s->sd_in.mb_p, &s->sd_in.mb_cap, "the destination refused",
			      s->sd_err, s->sd_errlen);
	if (rc != MIG_READ_OK)
		return read_event(rc);
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
static enum mo_event check_peer(struct sim_sender *s)
{
	while (mig_io_readable(s->sd_io)) {
		enum mo_event ev = peer_record(s);
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
		ev = check_peer(s);
	if (ev == MO_EV_OK)
		report(s, remaining);
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

static enum mo_event send_round(struct sim_sender *s, bool last)
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
	report(s, r->rs_dirty_after);
	return MO_EV_OK;
}

/* Auto-converge: the throttle the rounds so far call for. */
static void throttle(struct sim_sender *s)
{
	int thr = mig_next_throttle(s->sd_hist, s->sd_nh, &s->sd_o);
	if (thr == s->sd_throttle)
		return;
	mig_lock(s->sd_lk);
	int tr = backend_sim_set_throttle(s->sd_be, s->sd_domid, thr);
	mig_unlock(s->sd_lk);
	if (tr != 0)
		return;
	log_info("migration of domain %d: not converging (dirty %" PRIu64 " pages after round %d), throttle %d%%",
		 s->sd_domid, s->sd_hist[s->sd_nh - 1].rs_dirty_after, s->sd_round, thr);
	s->sd_throttle = thr;
	if (thr > s->sd_res->throttle_pct)
		s->sd_res->throttle_pct = thr;
}

/* ---- the steps ---- */

static enum mo_event alloc_buffers(struct sim_sender *s)
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

/* HELLOs both ways; the page hash both ends can do. */
static enum mo_event hello(struct sim_sender *s)
{
	uint32_t myver = s->sd_o.proto_version ? s->sd_o.proto_version : MIG_PROTO_VERSION, features = 0;
	struct mig_hello peer;
	if (mig_send_hello(s->sd_io, myver, MIG_FEAT_HASH2, s->sd_o.legacy_hello, s->sd_err, s->sd_errlen) != 0)
		return MO_EV_IO_ERROR;
	int rc = mig_expect_hello(s->sd_io, &s->sd_in, &peer, &features, "the destination refused the migration",
				  s->sd_err, s->sd_errlen);
	if (rc != MIG_READ_OK)
		return read_event(rc);
	s->sd_res->hash2 = !s->sd_o.legacy_hello && (features & MIG_FEAT_HASH2);
	s->sd_hash = s->sd_res->hash2 ? mig_page_hash2 : mig_page_hash;
	if (peer.he_magic != MIG_MAGIC || peer.he_version != myver) {
		mig_seterr(s->sd_err, s->sd_errlen,
			   "migration protocol version mismatch: this host (source) speaks version %u, "
			   "the destination speaks version %u; upgrade the older host first",
			   myver, peer.he_version);
		return MO_EV_LOCAL_ERROR;
	}
	return MO_EV_OK;
}

/* HELLO, the domain mapped, TOKEN, CONFIG, the buffers, ACCEPT. */
static enum mo_event step_handshake(struct sim_sender *s)
{
	enum mo_event ev = hello(s);
	if (ev != MO_EV_OK)
		return ev;
	mig_lock(s->sd_lk);
	s->sd_mapped = backend_sim_map(s->sd_be, s->sd_domid, &s->sd_m) == 0;
	if (!s->sd_mapped)
		mig_seterr(s->sd_err, s->sd_errlen, "cannot map the source domain %d: %s", s->sd_domid,
			   backend_error(s->sd_be));
	mig_unlock(s->sd_lk);
	if (!s->sd_mapped)
		return MO_EV_LOCAL_ERROR;
	const char *tok = s->sd_token ? s->sd_token : "";
	struct mig_config mc = {.mc_npages = s->sd_m.sm_npages, .mc_compress = s->sd_o.compress,
				.mc_verify = s->sd_o.verify};
	mc.mc_cfg = *s->sd_cfg;
	if (mig_send_rec(s->sd_io, MIG_REC_TOKEN, 0, tok, strlen(tok), s->sd_err, s->sd_errlen) != 0 ||
	    mig_send_rec(s->sd_io, MIG_REC_CONFIG, 0, &mc, sizeof mc, s->sd_err, s->sd_errlen) != 0)
		return MO_EV_IO_ERROR;
	/* buffers while the destination takes its domain */
	if ((ev = alloc_buffers(s)) != MO_EV_OK)
		return ev;
	int rc = mig_expect_rec(s->sd_io, MIG_REC_ACCEPT, 0, &s->sd_in.mb_p, &s->sd_in.mb_cap,
				"the destination refused the migration", s->sd_err, s->sd_errlen);
	if (rc != MIG_READ_OK)
		return read_event(rc);
	s->sd_res->setup_ms = (double)(sim_now_ns() - s->sd_t0) / 1e6;
	s->sd_out = s->sd_io->bytes_out;
	if (s->sd_rec_spare)
		mig_handoff_start(&s->sd_wr, write_job, s, "mig-writer");
	return MO_EV_OK;
}

/* Rounds while the guest runs, until the stop rule says stop; then, once
 * the destination has read everything sent so far (the stop-and-copy
 * starts with an empty pipe): MO_EV_PAUSE. */
static enum mo_event step_precopy(struct sim_sender *s)
{
	int max_rounds = s->sd_o.max_rounds > 0 ? s->sd_o.max_rounds : 30;
	for (;;) {
		enum mo_event ev = send_round(s, false);
		if (ev != MO_EV_OK)
			return ev;
		s->sd_res->stop = mig_should_stop(s->sd_hist, s->sd_nh, &s->sd_o);
		if (s->sd_res->stop != MIG_CONTINUE || s->sd_nh >= max_rounds)
			break;
		throttle(s);
		if ((ev = check_peer(s)) != MO_EV_OK)
			return ev;
	}
	if (s->sd_res->stop == MIG_CONTINUE)
		s->sd_res->stop = MIG_STOP_MAX_ROUNDS;
	while (s->sd_acked < s->sd_round) {
		enum mo_event ev = peer_record(s);
		if (ev != MO_EV_OK)
			return ev;
	}
	return MO_EV_PAUSE;
}

/* Guest paused: the last dirty pages, the vCPUs, the checksum. */
static enum mo_event step_stopcopy(struct sim_sender *s)
{
	enum mo_event ev = send_round(s, true);
	if (ev != MO_EV_OK)
		return ev;
	const size_t voff = offsetof(struct simdom_shared, ss_vcpus);
	if (mig_send_rec(s->sd_io, MIG_REC_VCPU, 0, (unsigned char *)s->sd_m.sm_shared + voff,
			 sizeof(struct simdom_shared) - voff, s->sd_err, s->sd_errlen) != 0)
		return MO_EV_IO_ERROR;
	uint64_t n = s->sd_m.sm_npages;
	struct mig_checksum ck = {.ck_npages = n, .ck_digest = mig_digest(s->sd_sent_hash, n)};
	size_t arr = s->sd_o.verify ? n * 8 : 0;
	struct mig_rec_hdr h = {.rh_type = MIG_REC_CHECKSUM, .rh_len = sizeof ck + arr};
	unsigned char hb[sizeof h + sizeof ck];
	memcpy(hb, &h, sizeof h);
	memcpy(hb + sizeof h, &ck, sizeof ck);
	if (mig_io_write(s->sd_io, hb, sizeof hb, s->sd_err, s->sd_errlen) != 0 ||
	    (arr && mig_io_write(s->sd_io, s->sd_sent_hash, arr, s->sd_err, s->sd_errlen) != 0))
		return MO_EV_IO_ERROR;
	s->sd_t_sent = sim_now_ns();
	report(s, 0);
	return MO_EV_OK;
}

static enum mo_event step_ready(struct sim_sender *s)
{
	int rc = mig_expect_rec(s->sd_io, MIG_REC_READY, sizeof(struct mig_ready), &s->sd_in.mb_p, &s->sd_in.mb_cap,
				"the destination refused the migration", s->sd_err, s->sd_errlen);
	if (rc != MIG_READ_OK)
		return read_event(rc);
	struct mig_ready rd;
	memcpy(&rd, s->sd_in.mb_p, sizeof rd);
	s->sd_res->dest_verify_ms = (double)rd.rd_verify_ns / 1e6;
	s->sd_dest_verified = rd.rd_verified;
	if (s->sd_o.verify && !rd.rd_verified) {
		mig_seterr(s->sd_err, s->sd_errlen, "the destination did not verify the memory");
		return MO_EV_LOCAL_ERROR;
	}
	s->sd_t_ready = sim_now_ns();
	return MO_EV_OK;
}

/* GO is out: RUNNING, or the pool decides. */
static enum mo_event step_go(struct sim_sender *s)
{
	int rc = mig_expect_rec(s->sd_io, MIG_REC_RUNNING, 0, &s->sd_in.mb_p, &s->sd_in.mb_cap,
				"the destination failed after GO", s->sd_err, s->sd_errlen);
	if (rc == MIG_READ_OK)
		return MO_EV_OK;
	char why[256];
	snprintf(why, sizeof why, "%s", s->sd_err ? s->sd_err : "");
	mig_seterr(s->sd_err, s->sd_errlen,
		   "no RUNNING from the destination after GO (%s): the source stays paused until the pool asks "
		   "both hosts",
		   why);
	return read_event(rc);
}

static enum mo_event send_step(void *arg, enum mo_state st)
{
	struct sim_sender *s = arg;
	switch (st) {
	case MO_HANDSHAKE: return step_handshake(s);
	case MO_STREAMING: return step_precopy(s);
	case MO_STOPCOPY: return step_stopcopy(s);
	case MO_READY: return step_ready(s);
	case MO_GO: return step_go(s);
	default: return MO_EV_LOCAL_ERROR;
	}
}

/* ---- the actions ---- */

static enum mo_event act_pause(struct sim_sender *s)
{
	mig_gate_enter(s->sd_o.gate);
	s->sd_in_gate = true;
	s->sd_t_pause = sim_now_ns();
	mig_lock(s->sd_lk);
	int pr = s->sd_be->be_ops->bo_domain_pause(s->sd_be, s->sd_domid);
	if (pr != 0)
		mig_seterr(s->sd_err, s->sd_errlen, "cannot pause the source domain %d: %s", s->sd_domid,
			   backend_error(s->sd_be));
	mig_unlock(s->sd_lk);
	if (pr != 0)
		return MO_EV_LOCAL_ERROR;
	s->sd_paused = true;
	s->sd_t_paused = sim_now_ns();
	return MO_EV_OK;
}

static void gate_leave(struct sim_sender *s)
{
	if (s->sd_in_gate)
		mig_gate_leave(s->sd_o.gate);
	s->sd_in_gate = false;
}

/* RUNNING came. The source copy stays paused until the caller destroys
 * it, so with verify its final content is checked now, outside the
 * downtime: every page must still be what was sent last. */
static void act_done(struct sim_sender *s)
{
	struct mig_send_result *res = s->sd_res;
	uint64_t t = sim_now_ns();
	res->downtime_ms = (double)(t - s->sd_t_pause) / 1e6;
	res->pause_ms = (double)(s->sd_t_paused - s->sd_t_pause) / 1e6;
	res->final_copy_ms = (double)(s->sd_t_sent - s->sd_t_paused) / 1e6;
	res->ready_wait_ms = (double)(s->sd_t_ready - s->sd_t_sent) / 1e6;
	res->go_running_ms = (double)(t - s->sd_t_ready) / 1e6;
	res->total_ms = (double)(t - s->sd_t0) / 1e6;
	gate_leave(s);
	if (!s->sd_o.verify)
		return;
	uint64_t bad = 0, nbad = sim_ram_verify(&s->sd_m, s->sd_hash, s->sd_sent_hash, s->sd_zero_hash, &bad);
	res->verify_ms = (double)(sim_now_ns() - t) / 1e6;
	res->verified = nbad == 0 && s->sd_dest_verified;
	if (nbad)
		mig_seterr(s->sd_err, s->sd_errlen,
			   "memory verification failed after the hand-over: %" PRIu64 " page(s) of the source "
			   "(first: page %" PRIu64 ") changed after they were sent without being marked dirty "
			   "(a dirty-tracking bug); the VM runs on the destination",
			   nbad, bad);
}

/* Before GO the source owns the VM: it runs on as it was. */
static void act_resume(struct sim_sender *s)
{
	mig_lock(s->sd_lk);
	if (s->sd_paused && s->sd_be->be_ops->bo_domain_unpause(s->sd_be, s->sd_domid) != 0)
		log_error("migration of domain %d failed and the source cannot be unpaused: %s", s->sd_domid,
			  backend_error(s->sd_be));
	else
		s->sd_paused = false;
	if (s->sd_throttle && backend_sim_set_throttle(s->sd_be, s->sd_domid, 0) != 0)
		log_warn("domain %d: cannot drop the throttle: %s", s->sd_domid, backend_error(s->sd_be));
	mig_unlock(s->sd_lk);
}

static enum mo_event send_act(void *arg, enum mo_action a)
{
	struct sim_sender *s = arg;
	switch (a) {
	case MO_ACT_PAUSE_SOURCE:
		return act_pause(s);
	case MO_ACT_SEND_GO:
		if (mig_send_rec(s->sd_io, MIG_REC_GO, 0, NULL, 0, s->sd_err, s->sd_errlen) == 0)
			return MO_EV_OK;
		mig_seterr(s->sd_err, s->sd_errlen, "connection lost while sending GO: the VM may be running on the "
						    "destination; the source stays paused until the pool decides");
		return MO_EV_IO_ERROR;
	case MO_ACT_SOURCE_DONE:
		act_done(s);
		return MO_EV_OK;
	case MO_ACT_RESUME_SOURCE:
		act_resume(s);
		return MO_EV_OK;
	case MO_ACT_LEAVE_PAUSED:
		log_warn("migration of domain %d: no clear outcome after GO; the source stays paused until the pool "
			 "decides", s->sd_domid);
		return MO_EV_OK;
	default:
		return MO_EV_OK;
	}
}

static void send_tell(void *arg)
{
	struct sim_sender *s = arg;
	(void)mig_send_text(s->sd_io, MIG_REC_ABORT, s->sd_err ? s->sd_err : "the source failed");
}

static void send_trace(void *arg, enum mo_state from, enum mo_event ev, const struct mo_step *to)
{
	struct sim_sender *s = arg;
	log_debug("migration (source, domain %d): %s in %s -> %s, %s", s->sd_domid, mig_owner_event_name(ev),
		  mig_owner_state_name(from), mig_owner_state_name(to->ms_next), mig_owner_action_name(to->ms_action));
}

/* The per-page hash cost, measured once on 64 pages of zeros (clock reads
 * per page would cost more than the hash on these VMs). */
static double hash_ms(mig_hash_fn hash, uint64_t pages)
{
	static const unsigned char zp[64 * PG];
	uint64_t t = sim_now_ns(), x = 0;
	for (int i = 0; i < 64 && hash; i++)
		x ^= hash(zp + (size_t)i * PG);
	return ((double)(sim_now_ns() - t) / 64 + (double)(x & 0)) * (double)pages / 1e6;
}

static void send_free(struct sim_sender *s)
{
	mig_handoff_stop(&s->sd_wr);
	gate_leave(s);
	if (s->sd_mapped) {
		mig_lock(s->sd_lk);
		backend_sim_unmap(&s->sd_m);
		mig_unlock(s->sd_lk);
	}
	ZSTD_freeCCtx(s->sd_cctx);
	free(s->sd_raw);
	free(s->sd_rec);
	free(s->sd_rec_spare);
	free(s->sd_sent_hash);
	free(s->sd_hist);
	mig_buf_free(&s->sd_in);
}

int mig_send(struct mig_io *io, struct backend *be, const struct mig_backend_lock *lk, int domid,
	     const struct be_domain_config *cfg, const char *token, const struct mig_opts *opts,
	     mig_progress_fn progress, void *progress_arg, struct mig_send_result *res, char *err,
	     size_t errlen)
{
	struct mig_send_result dummy;
	struct sim_sender s = {.sd_io = io, .sd_be = be, .sd_lk = lk, .sd_domid = domid, .sd_cfg = cfg,
			       .sd_token = token, .sd_progress = progress, .sd_parg = progress_arg,
			       .sd_res = res ? res : &dummy, .sd_err = err, .sd_errlen = errlen};
	if (opts)
		s.sd_o = *opts;
	else
		mig_opts_default(&s.sd_o);
	memset(s.sd_res, 0, sizeof *s.sd_res);
	s.sd_t0 = sim_now_ns();
	s.sd_m.sm_ram_fd = s.sd_m.sm_dirty_fd = s.sd_m.sm_shared_fd = -1;
	mig_io_set_timeout(io, s.sd_o.io_timeout_ms);
	static const struct mo_driver drv = {send_step, send_act, send_tell, send_trace};
	int rc = mig_owner_run(MO_SOURCE, &drv, &s);
	s.sd_res->rounds = s.sd_round;
	s.sd_res->wire_bytes = io->bytes_out;
	s.sd_res->checksum_ms = hash_ms(s.sd_hash, s.sd_hashed);
	if (rc != MIG_OK)
		s.sd_res->total_ms = (double)(sim_now_ns() - s.sd_t0) / 1e6;
	if (rc == MIG_FAILED)
		log_warn("migration of domain %d failed: %s", domid, err ? err : "");
	send_free(&s);
	return rc;
}
