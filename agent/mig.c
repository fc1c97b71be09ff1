/*
 * mig.c - live migration stream for the sim backend (see mig.h).
 *
 * Source: pages are read from the domain's RAM memfd with pread, in runs
 * of consecutive pages (holes of the memfd, found with SEEK_DATA/SEEK_HOLE,
 * are zero pages and are never read), gathered into records of up to
 * MIG_BATCH_PAGES pages (index array + data, one contiguous buffer, one
 * write), optionally through one zstd stream per connection (flushed per
 * record). Destination: one read per record; runs of consecutive pages go
 * into the domain's memfd with one pwrite each, a page that became zero is
 * punched out. Neither side touches guest memory through a mapping (see
 * ram_pread). The RAM mapping is used only for the dirty log and the vCPU
 * state.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <zstd.h>

#include "log.h"
#include "mig.h"
#include "simdom.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PG MIG_PAGE_SIZE
#define PROGRESS_EVERY (16ull << 20)

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- hashing ---- */

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull

static inline uint64_t rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

uint64_t mig_page_hash(const void *page)
{
	const uint64_t *w = page;
	uint64_t a = P1 + P2, b = P2, c = 0, d = (uint64_t)0 - P1;
	for (unsigned i = 0; i < PG / 8; i += 4) {
		uint64_t w0, w1, w2, w3;
		memcpy(&w0, &w[i], 8);
		memcpy(&w1, &w[i + 1], 8);
		memcpy(&w2, &w[i + 2], 8);
		memcpy(&w3, &w[i + 3], 8);
		a = rotl(a + w0 * P2, 31) * P1;
		b = rotl(b + w1 * P2, 31) * P1;
		c = rotl(c + w2 * P2, 31) * P1;
		d = rotl(d + w3 * P2, 31) * P1;
	}
	uint64_t h = rotl(a, 1) + rotl(b, 7) + rotl(c, 12) + rotl(d, 18);
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	h ^= h >> 32;
	return h;
}

uint64_t mig_digest(const uint64_t *hash, uint64_t n)
{
	uint64_t h = P4 ^ n;
	for (uint64_t i = 0; i < n; i++)
		h = rotl(h ^ (hash[i] * P2), 27) * P1 + P4;
	return h ^ (h >> 31);
}

static bool page_is_zero(const unsigned char *p)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;
	if (w[0] | w[PG / 8 - 1])
		return false;
	for (unsigned i = 0; i < PG / 8; i += 8)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7])
			return false;
	return true;
}

/* ---- I/O ---- */

/* Records are written whole and answered (HELLO, CONFIG, READY, GO): Nagle
 * would hold a small record back for a delayed ACK (40 ms on Linux). */
static void no_delay(int fd)
{
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails on AF_UNIX: fine */
}

void mig_io_init_fd(struct mig_io *io, int fd)
{
	memset(io, 0, sizeof *io);
	io->fd = fd;
	no_delay(fd);
}

void mig_io_init_ssl(struct mig_io *io, SSL *ssl)
{
	memset(io, 0, sizeof *io);
	io->ssl = ssl;
	io->fd = SSL_get_fd(ssl);
	SSL_set_read_ahead(ssl, 1); /* one read() per many TLS records */
	SSL_set_default_read_buffer_len(ssl, MIG_TLS_BUF);
	(void)SSL_free_buffers(ssl); /* the next read allocates the bigger buffer (unless
				      * data is pending already: then it keeps the small one) */
	BIO *sock = SSL_get_wbio(ssl), *f = BIO_new(BIO_f_buffer());
	if (sock && f && BIO_set_write_buffer_size(f, MIG_TLS_BUF) == 1 && BIO_up_ref(sock) == 1) {
		BIO_push(f, sock);
		SSL_set0_wbio(ssl, f); /* the SSL owns the chain; sock keeps its read reference */
		io->wbuffered = true;
	} else {
		BIO_free(f);
	}
	no_delay(io->fd);
}

/* small records: header + payload in one write */
static int send_rec(struct mig_io *io, uint32_t type, const void *payload, size_t len, char *err,
		    size_t errlen)
{
	return mig_send_rec(io, type, 0, payload, len, err, errlen);
}

struct rbuf {
	unsigned char *p;
	size_t cap;
};

static int rbuf_need(struct rbuf *b, size_t n)
{
	if (n <= b->cap)
		return 0;
	unsigned char *q = realloc(b->p, n);
	if (!q)
		return -1;
	if (n > b->cap * 2)
		mig_prefault(q, n);
	b->p = q;
	b->cap = n;
	return 0;
}

static int read_rec(struct mig_io *io, struct mig_rec_hdr *h, struct rbuf *b, const char *who,
		    char *err, size_t errlen)
{
	return mig_read_rec(io, h, &b->p, &b->cap, who, err, errlen);
}

static int expect_rec(struct mig_io *io, uint32_t type, size_t min_len, struct rbuf *b,
		      const char *who, char *err, size_t errlen)
{
	return mig_expect_rec(io, type, min_len, &b->p, &b->cap, who, err, errlen);
}

/* ---- backend access ---- */

static void lk_lock(const struct mig_backend_lock *lk)
{
	if (lk && lk->lock)
		lk->lock(lk->arg);
}

static void lk_unlock(const struct mig_backend_lock *lk)
{
	if (lk && lk->unlock)
		lk->unlock(lk->arg);
}

/* ---- options and the stop rule ---- */

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

/* ---- memfd holes ---- */

/* The next data extent at or after page p: [*ds, *de) in pages; false if none. */
static bool next_data(int fd, uint64_t p, uint64_t npages, uint64_t *ds, uint64_t *de)
{
	off_t s = lseek(fd, (off_t)(p * PG), SEEK_DATA);
	if (s < 0) {
		if (errno == ENXIO)
			return false;
		*ds = p; /* no SEEK_DATA: treat everything as data */
		*de = npages;
		return true;
	}
	off_t e = lseek(fd, s, SEEK_HOLE);
	if (e < 0)
		e = (off_t)(npages * PG);
	*ds = (uint64_t)s / PG;
	*de = ((uint64_t)e + PG - 1) / PG;
	if (*de > npages)
		*de = npages;
	return *ds < npages;
}

/* Guest RAM is read and written through the memfd with pread/pwrite, in
 * runs of up to MIG_BATCH_PAGES pages, never through our mapping: the first
 * touch of a page through a fresh mapping costs a fault (and, on a
 * virtualised host, a shadow page-table exit) per 4 KiB, far more than the
 * copy (MACHINE.md: pread 8-16 GB/s, pwrite 2.3-3.5 GB/s, first touch
 * 17-21 us per page). */
static int ram_pread(int fd, void *buf, uint64_t p, uint64_t npages)
{
	size_t len = (size_t)(npages * PG), done = 0;
	while (done < len) {
		ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(p * PG + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

static int ram_pwrite(int fd, const void *buf, uint64_t p, uint64_t npages)
{
	size_t len = (size_t)(npages * PG), done = 0;
	while (done < len) {
		ssize_t r = pwrite(fd, (const char *)buf + done, len - done, (off_t)(p * PG + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

/* Hash every page of a domain's RAM (holes hash as zero pages without being
 * read). The first page whose hash differs from want (if given) into *bad;
 * returns the number of differing pages, or UINT64_MAX if RAM cannot be
 * read. buf: MIG_BATCH_PAGES pages of scratch. */
static uint64_t hash_all(const struct be_sim_map *m, const uint64_t *want, uint64_t zero_hash,
			 uint64_t *out, uint64_t *bad, unsigned char *buf)
{
	uint64_t diff = 0, p = 0, n = m->sm_npages;
	while (p < n) {
		uint64_t ds, de;
		if (!next_data(m->sm_ram_fd, p, n, &ds, &de))
			ds = de = n;
		for (; p < ds; p++) {
			if (out)
				out[p] = zero_hash;
			if (want && want[p] != zero_hash && diff++ == 0)
				*bad = p;
		}
		while (p < de) {
			uint64_t k = de - p < MIG_BATCH_PAGES ? de - p : MIG_BATCH_PAGES;
			if (ram_pread(m->sm_ram_fd, buf, p, k) != 0)
				return UINT64_MAX;
			for (uint64_t i = 0; i < k; i++, p++) {
				uint64_t h = mig_page_hash(buf + i * PG);
				if (out)
					out[p] = h;
				if (want && want[p] != h && diff++ == 0)
					*bad = p;
			}
		}
	}
	return diff;
}

/* ---- sender ---- */

/* ---- a second stage on its own thread ----
 *
 * Both ends run as two-stage pipelines on two threads: the source reads and
 * hashes one record while its writer encrypts and sends the one before; the
 * destination decrypts one record while its applier puts the one before into
 * guest memory. A hand-off holds one job at a time: the first thread fills
 * the job's fields, hands it over (ho_post, after ho_wait), and touches those
 * fields again only after ho_wait. Without the thread (pthread_create
 * failed) the job runs at once on the caller's thread. */
struct handoff {
	int (*ho_fn)(void *arg, char *err, size_t errlen); /* the job; 0 = done */
	void *ho_arg;
	pthread_t ho_th;
	bool ho_started, ho_busy, ho_stop, ho_failed;
	pthread_mutex_t ho_mu;
	pthread_cond_t ho_cv;
	char ho_err[256]; /* the first failed job's reason */
};

static void *ho_main(void *arg)
{
	struct handoff *h = arg;
	pthread_mutex_lock(&h->ho_mu);
	for (;;) {
		while (!h->ho_busy && !h->ho_stop)
			pthread_cond_wait(&h->ho_cv, &h->ho_mu);
		if (!h->ho_busy)
			break;
		pthread_mutex_unlock(&h->ho_mu);
		char e[256] = "";
		int rc = h->ho_fn(h->ho_arg, e, sizeof e);
		pthread_mutex_lock(&h->ho_mu);
		if (rc != 0 && !h->ho_failed) {
			h->ho_failed = true;
			snprintf(h->ho_err, sizeof h->ho_err, "%s", e);
		}
		h->ho_busy = false;
		pthread_cond_broadcast(&h->ho_cv);
	}
	pthread_mutex_unlock(&h->ho_mu);
	return NULL;
}

static void ho_start(struct handoff *h, int (*fn)(void *, char *, size_t), void *arg)
{
	h->ho_fn = fn;
	h->ho_arg = arg;
	pthread_mutex_init(&h->ho_mu, NULL);
	pthread_cond_init(&h->ho_cv, NULL);
	h->ho_started = pthread_create(&h->ho_th, NULL, ho_main, h) == 0;
	if (!h->ho_started) {
		pthread_mutex_destroy(&h->ho_mu);
		pthread_cond_destroy(&h->ho_cv);
	}
}

/* Until the thread is idle; -1 (with the first failed job's reason) once a
 * job failed. */
static int ho_wait(struct handoff *h, char *err, size_t errlen)
{
	if (!h->ho_started)
		return 0;
	pthread_mutex_lock(&h->ho_mu);
	while (h->ho_busy)
		pthread_cond_wait(&h->ho_cv, &h->ho_mu);
	bool failed = h->ho_failed;
	pthread_mutex_unlock(&h->ho_mu);
	if (failed)
		mig_seterr(err, errlen, "%s", h->ho_err);
	return failed ? -1 : 0;
}

/* Run the job whose fields the caller filled: on the thread (the caller
 * went through ho_wait), or here and now without one. */
static int ho_post(struct handoff *h, char *err, size_t errlen)
{
	if (!h->ho_started)
		return h->ho_fn(h->ho_arg, err, errlen);
	pthread_mutex_lock(&h->ho_mu);
	h->ho_busy = true;
	pthread_cond_broadcast(&h->ho_cv);
	pthread_mutex_unlock(&h->ho_mu);
	return 0;
}

/* The job in hand finishes, then the thread ends. */
static void ho_stop(struct handoff *h)
{
	if (!h->ho_started)
		return;
	pthread_mutex_lock(&h->ho_mu);
	h->ho_stop = true;
	pthread_cond_broadcast(&h->ho_cv);
	pthread_mutex_unlock(&h->ho_mu);
	pthread_join(h->ho_th, NULL);
	pthread_mutex_destroy(&h->ho_mu);
	pthread_cond_destroy(&h->ho_cv);
	h->ho_started = false;
}

struct sender {
	struct mig_io *io;
	const struct mig_opts *o;
	struct be_sim_map m;
	uint64_t *sent_hash;
	uint64_t zero_hash;
	ZSTD_CCtx *cctx;
	/* the record being built: hdr | mig_pages | index[] | data */
	unsigned char *rec;
	size_t rec_cap;
	unsigned char *raw; /* uncompressed data when compressing */
	unsigned char *stage; /* MIG_BATCH_PAGES pages read from RAM */
	/* The writer: it encrypts and writes one record while this thread reads
	 * and hashes the next. Only one thread uses the connection at a time:
	 * the writer between wr_submit and wr_drain, this thread after. */
	struct handoff wr;
	unsigned char *wr_buf; /* the record being written */
	size_t wr_len;
	unsigned char *rec_spare; /* the other record buffer */
	uint64_t out;		  /* bytes handed to the connection (written or queued) */
	uint32_t nidx;
	size_t raw_len;
	/* accounting */
	struct mig_send_result *res;
	uint64_t hashed; /* pages hashed while sending (cost estimated, not timed per page) */
	mig_progress_fn progress;
	void *parg;
	uint64_t t0;
	uint64_t next_progress;
	int round;
	int acked;	/* the last pre-copy round the destination has read through */
	bool paused;
	int throttle;
	char *err;
	size_t errlen;
};

#define REC_HDRS (sizeof(struct mig_rec_hdr) + sizeof(struct mig_pages))
#define IDX_OFF REC_HDRS
/* A record carries at most MIG_BATCH_PAGES pages of data, and up to four
 * times as many entries in all: zero pages (a hole of the memfd is a run of
 * them) cost an index entry, not a record each. */
#define REC_MAX_INDEX (MIG_BATCH_PAGES * 4)
#define DATA_OFF (REC_HDRS + REC_MAX_INDEX * 8)

static uint64_t *rec_index(struct sender *s)
{
	return (uint64_t *)(void *)(s->rec + IDX_OFF);
}

static void report(struct sender *s, uint64_t remaining)
{
	if (!s->progress)
		return;
	struct mig_progress p = {0};
	p.pg_round = s->round;
	p.pg_paused = s->paused;
	p.pg_bytes_sent = s->out;
	p.pg_pages_remaining = remaining;
	p.pg_npages = s->m.sm_npages;
	double sec = (double)(now_ns() - s->t0) / 1e9;
	p.pg_rate_mb_s = sec > 0 ? (double)s->out / 1e6 / sec : 0;
	p.pg_throttle_pct = s->throttle;
	s->progress(&p, s->parg);
}

static int wr_drain(struct sender *s);

/* Is the destination telling us something (an ERROR) mid-stream? */
/* One record from the destination: a ROUND_ACK is noted (0), anything
 * else is an error (-1, with the destination's message for ERROR). */
static int peer_record(struct sender *s, struct rbuf *b)
{
	struct mig_rec_hdr h;
	if (read_rec(s->io, &h, b, "the destination refused", s->err, s->errlen) != 0)
		return -1;
	if (h.rh_type == MIG_REC_ROUND_ACK && h.rh_len >= sizeof(struct mig_round_end)) {
		struct mig_round_end re;
		memcpy(&re, b->p, sizeof re);
		if ((int)re.re_round > s->acked)
			s->acked = (int)re.re_round;
		return 0;
	}
	mig_seterr(s->err, s->errlen, "malformed migration stream: unexpected record type %u from the destination",
		   h.rh_type);
	return -1;
}

static int check_peer(struct sender *s, struct rbuf *b)
{
	if (wr_drain(s) != 0)
		return -1;
	while (mig_io_readable(s->io))
		if (peer_record(s, b) != 0)
			return -1;
	return 0;
}

/* Until the destination has read round `round` through. */
static int wait_ack(struct sender *s, int round, struct rbuf *b)
{
	if (wr_drain(s) != 0)
		return -1;
	while (s->acked < round)
		if (peer_record(s, b) != 0)
			return -1;
	return 0;
}

static int write_job(void *arg, char *err, size_t errlen)
{
	struct sender *s = arg;
	return mig_io_write(s->io, s->wr_buf, s->wr_len, err, errlen);
}

/* Until the writer is idle; -1 (with its error) if a write failed. */
static int wr_drain(struct sender *s)
{
	if (ho_wait(&s->wr, s->err, s->errlen) != 0)
		return -1;
	s->out = s->io->bytes_out;
	return 0;
}

/* Hand s->rec (len bytes from off) to the writer and continue with the
 * spare buffer. */
static int wr_submit(struct sender *s, size_t off, size_t len)
{
	if (wr_drain(s) != 0)
		return -1;
	s->wr_buf = s->rec + off;
	s->wr_len = len;
	if (ho_post(&s->wr, s->err, s->errlen) != 0)
		return -1;
	unsigned char *t = s->rec;
	s->rec = s->rec_spare;
	s->rec_spare = t;
	s->out += len;
	return 0;
}

static int flush_batch(struct sender *s)
{
	if (s->nidx == 0)
		return 0;
	size_t data_len = s->raw_len;
	uint32_t flags = 0;
	if (s->cctx && s->raw_len) {
		ZSTD_inBuffer in = {s->raw, s->raw_len, 0};
		ZSTD_outBuffer out = {s->rec + DATA_OFF, s->rec_cap - DATA_OFF, 0};
		size_t r;
		do {
			r = ZSTD_compressStream2(s->cctx, &out, &in, ZSTD_e_flush);
			if (ZSTD_isError(r)) {
				mig_seterr(s->err, s->errlen, "compression failed: %s",
				       ZSTD_getErrorName(r));
				return -1;
			}
			if (r && out.pos == out.size) {
				mig_seterr(s->err, s->errlen, "compression output overflow");
				return -1;
			}
		} while (r != 0);
		data_len = out.pos;
		flags = MIG_F_COMPRESSED;
	}
	s->res->bytes_raw += s->raw_len;
	s->res->bytes_compressed += data_len;
	/* the index array has room for REC_MAX_INDEX entries: when shorter, the
	 * headers and the index move up against the data (a few KiB) rather
	 * than the data down */
	size_t idx_len = (size_t)s->nidx * 8, start = DATA_OFF - idx_len - REC_HDRS;
	if (start)
		memmove(s->rec + start + REC_HDRS, s->rec + IDX_OFF, idx_len);
	struct mig_rec_hdr h = {.rh_type = MIG_REC_PAGES,
				.rh_flags = flags,
				.rh_len = sizeof(struct mig_pages) + idx_len + data_len};
	struct mig_pages ph = {.ps_npages = s->nidx, .ps_raw_len = s->raw_len};
	memcpy(s->rec + start, &h, sizeof h);
	memcpy(s->rec + start + sizeof h, &ph, sizeof ph);
	if (wr_submit(s, start, REC_HDRS + idx_len + data_len) != 0)
		return -1;
	if (s->o->max_bandwidth_mb_s > 0) { /* pace: bytes out may not run ahead of the limit */
		uint64_t due = s->t0 + (uint64_t)((double)s->out * 1e3 /
						  (double)s->o->max_bandwidth_mb_s);
		uint64_t t = now_ns();
		if (due > t) {
			struct timespec ts = {.tv_sec = (time_t)((due - t) / 1000000000ull),
					      .tv_nsec = (long)((due - t) % 1000000000ull)};
			while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
				;
		}
	}
	s->nidx = 0;
	s->raw_len = 0;
	return 0;
}

/* Page p into the record; src: its content (NULL: a hole, known zero). */
static int add_page(struct sender *s, uint64_t p, const unsigned char *src)
{
	uint64_t *idx = rec_index(s);
	if (!src || page_is_zero(src)) {
		idx[s->nidx++] = p | MIG_PAGE_ZERO;
		s->sent_hash[p] = s->zero_hash;
		s->res->zero_pages++;
	} else {
		unsigned char *dst = (s->cctx ? s->raw : s->rec + DATA_OFF) + s->raw_len;
		memcpy(dst, src, PG);
		s->sent_hash[p] = mig_page_hash(dst); /* what was sent, not what is there now */
		s->hashed++;
		s->raw_len += PG;
		idx[s->nidx++] = p;
	}
	s->res->pages_sent++;
	if (s->nidx == REC_MAX_INDEX || s->raw_len == (size_t)MIG_BATCH_PAGES * PG)
		return flush_batch(s);
	return 0;
}

/* Migrations of this process in their stop-and-copy (guest paused). While
 * one is, the others' pre-copy rounds step aside: a paused guest's last
 * pages get the CPU and the link instead of sharing them with streams whose
 * guests still run (an evacuation sends several VMs from one host at once,
 * and on few cores that sharing alone made downtimes of hundreds of ms). */
static int final_active;

static void yield_to_final(struct sender *s)
{
	if (s->paused)
		return;
	for (int i = 0; i < 200 && __atomic_load_n(&final_active, __ATOMIC_ACQUIRE) > 0; i++) {
		struct timespec ts = {0, 500000}; /* at most 100 ms in all */
		nanosleep(&ts, NULL);
	}
}

/* Pages [p, p + k) (k <= MIG_BATCH_PAGES) read in one go and added. */
static int add_run(struct sender *s, uint64_t p, uint64_t k)
{
	yield_to_final(s);
	if (ram_pread(s->m.sm_ram_fd, s->stage, p, k) != 0) {
		mig_seterr(s->err, s->errlen, "cannot read the source domain's memory (page %" PRIu64 "): %s",
		       p, strerror(errno ? errno : EIO));
		return -1;
	}
	for (uint64_t i = 0; i < k; i++)
		if (add_page(s, p + i, s->stage + i * PG) != 0)
			return -1;
	return 0;
}

/* One round: round 1 sends every page (holes as zero markers, never
 * read), later rounds the pages whose dirty bit they clear, read in runs of
 * consecutive pages. Returns the pages sent, or -1. */
static int64_t send_round(struct sender *s, bool all, struct rbuf *b)
{
	uint64_t n = s->m.sm_npages, words = (n + 63) / 64, sent = 0;
	uint64_t mark = s->out;
	if (all) {
		for (uint64_t w = 0; w < words; w++)
			(void)__atomic_exchange_n(&s->m.sm_dirty[w], 0, __ATOMIC_ACQ_REL);
		uint64_t p = 0;
		while (p < n) {
			uint64_t ds, de;
			if (!next_data(s->m.sm_ram_fd, p, n, &ds, &de))
				ds = de = n;
			for (; p < ds; p++, sent++)
				if (add_page(s, p, NULL) != 0)
					return -1;
			while (p < de) {
				uint64_t k = de - p < MIG_BATCH_PAGES ? de - p : MIG_BATCH_PAGES;
				if (add_run(s, p, k) != 0)
					return -1;
				p += k;
				sent += k;
				if (s->out - mark >= PROGRESS_EVERY) {
					mark = s->out;
					if (check_peer(s, b) != 0)
						return -1;
					report(s, n - p);
				}
			}
		}
	} else {
		/* a run of consecutive dirty pages is read with one pread */
		uint64_t rs = 0, rk = 0;
		for (uint64_t w = 0; w < words; w++) {
			if (!__atomic_load_n(&s->m.sm_dirty[w], __ATOMIC_RELAXED))
				continue;
			uint64_t bits = __atomic_exchange_n(&s->m.sm_dirty[w], 0, __ATOMIC_ACQ_REL);
			while (bits) {
				int bit = __builtin_ctzll(bits);
				bits &= bits - 1;
				uint64_t p = w * 64 + (uint64_t)bit;
				if (p >= n)
					continue;
				if (rk && (p != rs + rk || rk == MIG_BATCH_PAGES)) {
					if (add_run(s, rs, rk) != 0)
						return -1;
					rk = 0;
				}
				if (!rk)
					rs = p;
				rk++;
				sent++;
			}
			if (s->out - mark >= PROGRESS_EVERY) {
				mark = s->out;
				if (check_peer(s, b) != 0)
					return -1;
				report(s, 0);
			}
		}
		if (rk && add_run(s, rs, rk) != 0)
			return -1;
	}
	if (flush_batch(s) != 0 || wr_drain(s) != 0)
		return -1;
	return (int64_t)sent;
}

static uint64_t count_dirty(const struct be_sim_map *m)
{
	uint64_t c = 0;
	for (uint64_t w = 0; w < (m->sm_npages + 63) / 64; w++)
		c += (uint64_t)__builtin_popcountll(__atomic_load_n(&m->sm_dirty[w], __ATOMIC_RELAXED));
	return c;
}

static int send_round_end(struct sender *s, bool last)
{
	struct mig_round_end re = {.re_round = (uint32_t)s->round, .re_last = last};
	return send_rec(s->io, MIG_REC_ROUND_END, &re, sizeof re, s->err, s->errlen);
}

int mig_send(struct mig_io *io, struct backend *be, const struct mig_backend_lock *lk, int domid,
	     const struct be_domain_config *cfg, const char *token, const struct mig_opts *opts,
	     mig_progress_fn progress, void *progress_arg, struct mig_send_result *res, char *err,
	     size_t errlen)
{
	struct mig_opts o;
	if (opts)
		o = *opts;
	else
		mig_opts_default(&o);
	struct mig_send_result dummy;
	if (!res)
		res = &dummy;
	memset(res, 0, sizeof *res);
	struct sender S = {0}, *s = &S;
	s->io = io;
	s->o = &o;
	s->res = res;
	s->progress = progress;
	s->parg = progress_arg;
	s->err = err;
	s->errlen = errlen;
	s->t0 = now_ns();
	s->m.sm_ram_fd = s->m.sm_dirty_fd = s->m.sm_shared_fd = -1;
	struct rbuf b = {0};
	struct mig_round_stats *hist = NULL;
	int rc = MIG_FAILED, nh = 0;
	bool mapped = false, go_sent = false, in_final = false;
	uint64_t t_pause = 0;
	const char *who = "the destination refused the migration";
	mig_io_set_timeout(io, o.io_timeout_ms);

	/* HELLO first, before touching the domain */
	uint32_t myver = o.proto_version ? o.proto_version : MIG_PROTO_VERSION;
	struct mig_hello he = {.he_magic = MIG_MAGIC, .he_version = myver};
	snprintf(he.he_software, sizeof he.he_software, "pool-agent");
	if (send_rec(io, MIG_REC_HELLO, &he, sizeof he, err, errlen) != 0)
		goto out;
	if (expect_rec(io, MIG_REC_HELLO, sizeof he, &b, who, err, errlen) != 0)
		goto out;
	struct mig_hello peer;
	memcpy(&peer, b.p, sizeof peer);
	if (peer.he_magic != MIG_MAGIC || peer.he_version != myver) {
		mig_seterr(err, errlen,
		       "migration protocol version mismatch: this host (source) speaks version %u, "
		       "the destination speaks version %u; upgrade the older host first",
		       myver, peer.he_version);
		(void)mig_send_text(io, MIG_REC_ABORT, err);
		goto out;
	}
	lk_lock(lk);
	int mr = backend_sim_map(be, domid, &s->m);
	if (mr != 0)
		mig_seterr(err, errlen, "cannot map the source domain %d: %s", domid, backend_error(be));
	lk_unlock(lk);
	if (mr != 0) {
		(void)mig_send_text(io, MIG_REC_ABORT, err);
		goto out;
	}
	mapped = true;
	uint64_t n = s->m.sm_npages;
	size_t tlen = token ? strlen(token) : 0;
	if (send_rec(io, MIG_REC_TOKEN, token ? token : "", tlen, err, errlen) != 0)
		goto out;
	struct mig_config mc = {.mc_npages = n, .mc_compress = o.compress, .mc_verify = o.verify};
	mc.mc_cfg = *cfg;
	if (send_rec(io, MIG_REC_CONFIG, &mc, sizeof mc, err, errlen) != 0)
		goto out;
	/* buffers while the destination creates its domain */
	s->sent_hash = mig_malloc(n * 8);
	size_t data_cap = MIG_BATCH_PAGES * PG;
	if (o.compress)
		data_cap = ZSTD_compressBound(data_cap) + 4096;
	s->rec_cap = DATA_OFF + data_cap;
	s->rec = mig_malloc(s->rec_cap);
	s->rec_spare = mig_malloc(s->rec_cap);
	s->stage = mig_malloc(MIG_BATCH_PAGES * PG);
	if (o.compress) {
		s->raw = mig_malloc(MIG_BATCH_PAGES * PG);
		s->cctx = ZSTD_createCCtx();
		if (s->cctx) {
			ZSTD_CCtx_setParameter(s->cctx, ZSTD_c_compressionLevel,
					       o_int(o.compress_level, 1));
			if (o.compress_workers > 0)
				ZSTD_CCtx_setParameter(s->cctx, ZSTD_c_nbWorkers, o.compress_workers);
		}
	}
	hist = calloc((size_t)o_int(o.max_rounds, 30) + 2, sizeof *hist);
	if (!s->sent_hash || !s->rec || !s->rec_spare || !s->stage || !hist || (o.compress && (!s->raw || !s->cctx))) {
		mig_seterr(err, errlen, "out of memory for the migration buffers");
		(void)mig_send_text(io, MIG_REC_ABORT, err);
		goto out;
	}
	{
		static const unsigned char zp[PG];
		s->zero_hash = mig_page_hash(zp);
	}
	if (expect_rec(io, MIG_REC_ACCEPT, 0, &b, who, err, errlen) != 0)
		goto out;
	res->setup_ms = (double)(now_ns() - s->t0) / 1e6;
	s->out = io->bytes_out;
	ho_start(&s->wr, write_job, s);

	/* pre-copy */
	int max_rounds = o_int(o.max_rounds, 30);
	for (;;) {
		s->round++;
		uint64_t t = now_ns(), w0 = io->bytes_out;
		int64_t sent = send_round(s, s->round == 1, &b);
		if (sent < 0 || send_round_end(s, false) != 0)
			goto out;
		struct mig_round_stats *r = &hist[nh++];
		r->rs_round = s->round;
		r->rs_pages_sent = (uint64_t)sent;
		r->rs_wire_bytes = io->bytes_out - w0;
		r->rs_ns = now_ns() - t;
		r->rs_dirty_after = count_dirty(&s->m);
		r->rs_throttle_pct = s->throttle;
		if (s->round == 1) {
			res->round1_ms = (double)r->rs_ns / 1e6;
			res->round1_bytes = r->rs_wire_bytes;
		}
		report(s, r->rs_dirty_after);
		res->stop = mig_should_stop(hist, nh, &o);
		if (res->stop != MIG_CONTINUE || nh >= max_rounds)
			break;
		int thr = mig_next_throttle(hist, nh, &o);
		if (thr != s->throttle) {
			lk_lock(lk);
			int tr = backend_sim_set_throttle(be, domid, thr);
			lk_unlock(lk);
			if (tr == 0) {
				log_info("migration of domain %d: not converging (dirty %" PRIu64
					 " pages after round %d), throttle %d%%",
					 domid, r->rs_dirty_after, s->round, thr);
				s->throttle = thr;
				if (thr > res->throttle_pct)
					res->throttle_pct = thr;
			}
		}
		if (check_peer(s, &b) != 0)
			goto out;
	}
	if (res->stop == MIG_CONTINUE)
		res->stop = MIG_STOP_MAX_ROUNDS;

	/* stop and copy, once the destination has read everything sent so far */
	if (wait_ack(s, s->round, &b) != 0)
		goto out;
	__atomic_add_fetch(&final_active, 1, __ATOMIC_ACQ_REL);
	in_final = true;
	t_pause = now_ns();
	lk_lock(lk);
	int pr = be->be_ops->bo_domain_pause(be, domid);
	if (pr != 0)
		mig_seterr(err, errlen, "cannot pause the source domain %d: %s", domid, backend_error(be));
	lk_unlock(lk);
	if (pr != 0) {
		(void)mig_send_text(io, MIG_REC_ABORT, err);
		goto out;
	}
	s->paused = true;
	uint64_t t_paused = now_ns();
	s->round++;
	if (send_round(s, false, &b) < 0 || send_round_end(s, true) != 0)
		goto out;
	const size_t voff = offsetof(struct simdom_shared, ss_vcpus);
	if (send_rec(io, MIG_REC_VCPU, (unsigned char *)s->m.sm_shared + voff,
		     sizeof(struct simdom_shared) - voff, err, errlen) != 0)
		goto out;
	{
		struct mig_checksum ck = {.ck_npages = n, .ck_digest = mig_digest(s->sent_hash, n)};
		size_t arr = o.verify ? n * 8 : 0;
		struct mig_rec_hdr h = {.rh_type = MIG_REC_CHECKSUM, .rh_len = sizeof ck + arr};
		unsigned char hb[sizeof h + sizeof ck];
		memcpy(hb, &h, sizeof h);
		memcpy(hb + sizeof h, &ck, sizeof ck);
		if (mig_io_write(io, hb, sizeof hb, err, errlen) != 0 ||
		    (arr && mig_io_write(io, s->sent_hash, arr, err, errlen) != 0))
			goto out;
	}
	uint64_t t_sent = now_ns();
	report(s, 0);
	bool dest_verified = false;
	if (expect_rec(io, MIG_REC_READY, sizeof(struct mig_ready), &b,
		       "the destination refused the migration", err, errlen) != 0)
		goto out;
	{
		struct mig_ready rd;
		memcpy(&rd, b.p, sizeof rd);
		res->dest_verify_ms = (double)rd.rd_verify_ns / 1e6;
		dest_verified = rd.rd_verified;
		if (o.verify && !rd.rd_verified) {
			mig_seterr(err, errlen, "the destination did not verify the memory");
			(void)mig_send_text(io, MIG_REC_ABORT, err);
			goto out;
		}
	}
	uint64_t t_ready = now_ns();
	/* the point of no return */
	if (send_rec(io, MIG_REC_GO, NULL, 0, err, errlen) != 0) {
		/* GO may or may not have reached the destination */
		go_sent = true;
		mig_seterr(err, errlen, "connection lost while sending GO: the VM may be running on the "
				    "destination; the source stays paused until the pool decides");
		rc = MIG_AFTER_GO;
		goto out;
	}
	go_sent = true;
	if (expect_rec(io, MIG_REC_RUNNING, 0, &b, "the destination failed after GO", err,
		       errlen) != 0) {
		char why[256];
		snprintf(why, sizeof why, "%s", err);
		mig_seterr(err, errlen,
		       "no RUNNING from the destination after GO (%s): the source stays paused "
		       "until the pool asks both hosts",
		       why);
		rc = MIG_AFTER_GO;
		goto out;
	}
	res->downtime_ms = (double)(now_ns() - t_pause) / 1e6;
	res->pause_ms = (double)(t_paused - t_pause) / 1e6;
	res->final_copy_ms = (double)(t_sent - t_paused) / 1e6;
	res->ready_wait_ms = (double)(t_ready - t_sent) / 1e6;
	res->go_running_ms = (double)(now_ns() - t_ready) / 1e6;
	res->total_ms = (double)(now_ns() - s->t0) / 1e6;
	rc = MIG_OK;
	__atomic_sub_fetch(&final_active, 1, __ATOMIC_ACQ_REL);
	in_final = false;
	if (o.verify) {
		/* The source copy stays paused until the caller destroys it, so
		 * its final content is checked now, outside the downtime: every
		 * page must still be what was sent last. */
		uint64_t t = now_ns(), bad = 0;
		uint64_t nbad = hash_all(&s->m, s->sent_hash, s->zero_hash, NULL, &bad, s->stage);
		res->verify_ms = (double)(now_ns() - t) / 1e6;
		res->verified = nbad == 0 && dest_verified;
		if (nbad == UINT64_MAX)
			mig_seterr(err, errlen, "memory verification after the hand-over could not read the "
					    "source's memory: %s; the VM runs on the destination",
			       strerror(errno ? errno : EIO));
		else if (nbad)
			mig_seterr(err, errlen,
			       "memory verification failed after the hand-over: %" PRIu64
			       " page(s) of the source (first: page %" PRIu64
			       ") changed after they were sent without being marked dirty "
			       "(a dirty-tracking bug); the VM runs on the destination",
			       nbad, bad);
	}
out:
	if (in_final)
		__atomic_sub_fetch(&final_active, 1, __ATOMIC_ACQ_REL);
	ho_stop(&s->wr);
	res->rounds = s->round;
	res->wire_bytes = io->bytes_out;
	{
		/* the per-page hash cost, measured once on 64 pages of zeros (clock reads per
		 * page would cost more than the hash on these VMs) */
		static const unsigned char zp[64 * PG];
		uint64_t t = now_ns(), x = 0;
		for (int i = 0; i < 64; i++)
			x ^= mig_page_hash(zp + (size_t)i * PG);
		double per = (double)(now_ns() - t) / 64 + (double)(x & 0);
		res->checksum_ms = per * (double)s->hashed / 1e6;
	}
	if (rc != MIG_OK)
		res->total_ms = (double)(now_ns() - s->t0) / 1e6;
	if (rc == MIG_FAILED && !go_sent && mapped) {
		/* before GO the source owns the VM: keep it running as it was */
		lk_lock(lk);
		if (s->paused && be->be_ops->bo_domain_unpause(be, domid) != 0)
			log_error("migration of domain %d failed and the source cannot be unpaused: %s",
				  domid, backend_error(be));
		if (s->throttle && backend_sim_set_throttle(be, domid, 0) != 0)
			log_warn("domain %d: cannot drop the throttle: %s", domid, backend_error(be));
		lk_unlock(lk);
	}
	if (rc == MIG_FAILED)
		log_warn("migration of domain %d failed: %s", domid, err ? err : "");
	if (mapped) {
		lk_lock(lk);
		backend_sim_unmap(&s->m);
		lk_unlock(lk);
	}
	ZSTD_freeCCtx(s->cctx);
	free(s->raw);
	free(s->rec);
	free(s->stage);
	free(s->rec_spare);
	free(s->sent_hash);
	free(hist);
	free(b.p);
	return rc;
}

/* ---- receiver ---- */

struct receiver {
	struct be_sim_map m;
	int pidfd;	    /* the destination domain's process (readable once it ended), or -1 */
	uint64_t *hash;	    /* hash of what was received per page */
	uint64_t *nonzero;  /* bit per page: holds non-zero data */
	ZSTD_DCtx *dctx;
	struct rbuf raw;
	uint64_t zero_hash;
	/* The applier: it puts one PAGES record into guest memory (decompress,
	 * hash, pwrite) while this thread decrypts the next. The fields above
	 * and the result's page counts are the applier's between ap_submit and
	 * ho_wait; every record other than PAGES is handled after ho_wait, so
	 * it sees all earlier pages in place. */
	struct handoff ap;
	struct mig_rec_hdr ap_h;
	struct rbuf ap_buf;	/* the record being applied; the reader's other buffer */
	struct mig_recv_result *ap_res;
};

static void bit_set(uint64_t *a, uint64_t i)
{
	a[i / 64] |= 1ull << (i % 64);
}
static void bit_clr(uint64_t *a, uint64_t i)
{
	a[i / 64] &= ~(1ull << (i % 64));
}
static bool bit_get(const uint64_t *a, uint64_t i)
{
	return (a[i / 64] >> (i % 64)) & 1;
}

static int flush_run(struct receiver *r, uint64_t p, const unsigned char *d, uint64_t *k, char *err,
		     size_t errlen)
{
	if (ram_pwrite(r->m.sm_ram_fd, d, p, *k) != 0) {
		mig_seterr(err, errlen, "cannot write the destination domain's memory (page %" PRIu64 "): %s",
		       p, errno == ENOSPC || errno == ENOMEM ? "out of memory on this host" : strerror(errno ? errno : EIO));
		return -1;
	}
	*k = 0;
	return 0;
}

static int zero_page(struct receiver *r, uint64_t p, char *err, size_t errlen)
{
	static const unsigned char zp[PG];
	if (fallocate(r->m.sm_ram_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(p * PG), PG) == 0)
		return 0;
	uint64_t one = 1;
	return flush_run(r, p, zp, &one, err, errlen);
}

static int recv_pages(struct receiver *r, const struct mig_rec_hdr *h, const unsigned char *pl,
		      struct mig_recv_result *res, char *err, size_t errlen)
{
	struct mig_pages ph;
	if (h->rh_len < sizeof ph)
		goto bad;
	memcpy(&ph, pl, sizeof ph);
	uint64_t idx_len = (uint64_t)ph.ps_npages * 8;
	if (ph.ps_npages > REC_MAX_INDEX || sizeof ph + idx_len > h->rh_len ||
	    ph.ps_raw_len > (uint64_t)ph.ps_npages * PG)
		goto bad;
	const uint64_t *idx = (const uint64_t *)(const void *)(pl + sizeof ph);
	const unsigned char *data = pl + sizeof ph + idx_len;
	size_t dlen = (size_t)(h->rh_len - sizeof ph - idx_len);
	if (h->rh_flags & MIG_F_COMPRESSED) {
		if (!r->dctx) {
			mig_seterr(err, errlen, "compressed pages but compression was not negotiated");
			return -1;
		}
		if (rbuf_need(&r->raw, ph.ps_raw_len + 1) != 0) {
			mig_seterr(err, errlen, "out of memory");
			return -1;
		}
		ZSTD_inBuffer in = {data, dlen, 0};
		ZSTD_outBuffer out = {r->raw.p, ph.ps_raw_len, 0};
		while (out.pos < out.size || in.pos < in.size) {
			size_t ip = in.pos, op = out.pos;
			size_t z = ZSTD_decompressStream(r->dctx, &out, &in);
			if (ZSTD_isError(z)) {
				mig_seterr(err, errlen, "decompression failed: %s", ZSTD_getErrorName(z));
				return -1;
			}
			if (in.pos == ip && out.pos == op)
				break; /* no progress: short input or output full */
		}
		if (out.pos != out.size)
			goto bad;
		data = r->raw.p;
		dlen = ph.ps_raw_len;
	} else if (dlen != ph.ps_raw_len) {
		goto bad;
	}
	/* consecutive pages whose data is contiguous go in with one pwrite */
	uint64_t n = r->m.sm_npages, off = 0, run_p = 0, run_k = 0;
	const unsigned char *run_d = NULL;
	for (uint32_t i = 0; i < ph.ps_npages; i++) {
		uint64_t p = idx[i] & ~MIG_PAGE_ZERO;
		if (p >= n)
			goto bad;
		if (idx[i] & MIG_PAGE_ZERO) {
			if (bit_get(r->nonzero, p)) { /* was data: it goes back to the host */
				if (run_k && flush_run(r, run_p, run_d, &run_k, err, errlen) != 0)
					return -1;
				if (zero_page(r, p, err, errlen) != 0)
					return -1;
				bit_clr(r->nonzero, p);
			}
			r->hash[p] = r->zero_hash;
			res->zero_pages++;
		} else {
			if (off + PG > dlen)
				goto bad;
			const unsigned char *d = data + off;
			if (run_k && (p != run_p + run_k || d != run_d + run_k * PG) &&
			    flush_run(r, run_p, run_d, &run_k, err, errlen) != 0)
				return -1;
			if (!run_k) {
				run_p = p;
				run_d = d;
			}
			run_k++;
			r->hash[p] = mig_page_hash(d); /* as received */
			bit_set(r->nonzero, p);
			off += PG;
		}
		res->pages++;
	}
	if (run_k && flush_run(r, run_p, run_d, &run_k, err, errlen) != 0)
		return -1;
	if (off != dlen)
		goto bad;
	return 0;
bad:
	mig_seterr(err, errlen, "malformed migration stream: bad PAGES record");
	return -1;
}

static int apply_job(void *arg, char *err, size_t errlen)
{
	struct receiver *r = arg;
	return recv_pages(r, &r->ap_h, r->ap_buf.p, r->ap_res, err, errlen);
}

/* The PAGES record in *b to the applier; *b gets the applier's previous
 * buffer to read the next record into. */
static int ap_submit(struct receiver *r, const struct mig_rec_hdr *h, struct rbuf *b,
		     struct mig_recv_result *res, char *err, size_t errlen)
{
	if (ho_wait(&r->ap, err, errlen) != 0)
		return -1;
	struct rbuf t = r->ap_buf;
	r->ap_buf = *b;
	r->ap_h = *h;
	r->ap_res = res;
	*b = t;
	return ho_post(&r->ap, err, errlen);
}

/* Is the destination domain still there (paused, as we left it)? Asked at
 * every round's end and before READY: through the domain's process when
 * we hold a pidfd for it, so the stream never waits for the backend lock
 * (which an agent receiving several migrations holds while it creates
 * their domains); else through the backend. */
static int dest_alive(struct receiver *r, struct backend *be, const struct mig_backend_lock *lk, int domid,
		      char *err, size_t errlen)
{
	if (r->pidfd >= 0) {
		struct pollfd pf = {.fd = r->pidfd, .events = POLLIN};
		if (poll(&pf, 1, 0) == 0)
			return 0;
		mig_seterr(err, errlen, "the destination domain %d died during the migration (its process ended)",
			   domid);
		return -1;
	}
	struct be_domain_info di;
	lk_lock(lk);
	int ir = be->be_ops->bo_domain_info(be, domid, &di);
	if (ir != 0)
		mig_seterr(err, errlen, "the destination domain %d is gone: %s", domid, backend_error(be));
	lk_unlock(lk);
	if (ir != 0)
		return -1;
	if (di.di_state != BE_STATE_PAUSED) {
		mig_seterr(err, errlen, "the destination domain %d died during the migration (state %s)",
		       domid, be_state_name(di.di_state));
		return -1;
	}
	return 0;
}

int mig_receive(struct mig_io *io, struct backend *be, const struct mig_backend_lock *lk,
		const struct mig_recv_opts *opts, struct mig_recv_result *res, char *err,
		size_t errlen)
{
	struct mig_recv_opts o = {0};
	if (opts)
		o = *opts;
	struct mig_recv_result dummy;
	if (!res)
		res = &dummy;
	memset(res, 0, sizeof *res);
	res->domid = -1;
	struct receiver R = {0}, *r = &R;
	r->m.sm_ram_fd = r->m.sm_dirty_fd = r->m.sm_shared_fd = -1;
	r->pidfd = -1;
	struct rbuf b = {0};
	int rc = MIG_FAILED, domid = -1;
	bool mapped = false, go = false, refused = false, verify = o.verify, got_last = false,
	     got_vcpu = false;
	const char *who = "the source aborted";
	mig_io_set_timeout(io, o.io_timeout_ms);

	uint32_t myver = o.proto_version ? o.proto_version : MIG_PROTO_VERSION;
	if (expect_rec(io, MIG_REC_HELLO, sizeof(struct mig_hello), &b, who, err, errlen) != 0)
		goto out;
	struct mig_hello peer, he = {.he_magic = MIG_MAGIC, .he_version = myver};
	memcpy(&peer, b.p, sizeof peer);
	if (peer.he_magic != MIG_MAGIC || peer.he_version != myver) {
		mig_seterr(err, errlen,
		       "migration protocol version mismatch: this host (destination) speaks version "
		       "%u, the source speaks version %u; upgrade the older host first",
		       myver, peer.he_magic == MIG_MAGIC ? peer.he_version : 0);
		mig_refuse(io, err);
		refused = true;
		goto out;
	}
	snprintf(he.he_software, sizeof he.he_software, "pool-agent");
	if (send_rec(io, MIG_REC_HELLO, &he, sizeof he, err, errlen) != 0)
		goto out;
	if (expect_rec(io, MIG_REC_TOKEN, 0, &b, who, err, errlen) != 0)
		goto out;
	{
		size_t tl = o.token ? strlen(o.token) : 0;
		size_t gl = (size_t)strlen((char *)b.p);
		bool ok = tl > 0 && gl == tl && CRYPTO_memcmp(b.p, o.token, tl) == 0;
		if (!ok) {
			mig_seterr(err, errlen,
			       "migration token refused by the destination (unknown, expired or "
			       "for another migration): ask the pool to prepare the migration again");
			mig_refuse(io, err);
			refused = true;
			goto out;
		}
	}
	if (expect_rec(io, MIG_REC_CONFIG, sizeof(struct mig_config), &b, who, err, errlen) != 0)
		goto out;
	struct mig_config mc;
	memcpy(&mc, b.p, sizeof mc);
	verify = verify || mc.mc_verify;
	snprintf(res->uuid, sizeof res->uuid, "%s", mc.mc_cfg.dc_uuid);
	lk_lock(lk);
	int cr = -1;
	if (o.domid > 0) { /* prepared: it must be this VM's, paused and empty */
		struct be_domain_info di;
		domid = o.domid;
		cr = 0;
		if (be->be_ops->bo_domain_info(be, domid, &di) != 0) {
			mig_seterr(err, errlen, "the domain prepared for this migration (%d) is gone: %s",
			       domid, backend_error(be));
			cr = -1;
			domid = -1;
		} else if (strcmp(di.di_uuid, mc.mc_cfg.dc_uuid) != 0 ||
			   di.di_state != BE_STATE_PAUSED) {
			mig_seterr(err, errlen,
			       "the domain prepared for this migration (%d) is VM %s in state %s, not "
			       "a paused VM %s",
			       domid, di.di_uuid, be_state_name(di.di_state), mc.mc_cfg.dc_uuid);
			cr = -1;
			domid = -1; /* not ours to destroy */
		}
	} else if (be->be_ops->bo_domain_create_restore) {
		cr = be->be_ops->bo_domain_create_restore(be, &mc.mc_cfg, &domid);
		if (cr != 0) {
			mig_seterr(err, errlen, "cannot create the destination domain: %s", backend_error(be));
			domid = -1;
		}
	} else {
		mig_seterr(err, errlen, "cannot create the destination domain: the backend cannot restore");
	}
	if (cr != 0)
		;
	else if (backend_sim_map(be, domid, &r->m) != 0)
		mig_seterr(err, errlen, "cannot map the destination domain %d: %s", domid,
		       backend_error(be));
	else
		mapped = true;
	if (mapped) { /* its process, to tell later whether it still lives without the lock */
		struct be_domain_info di;
		if (be->be_ops->bo_domain_info(be, domid, &di) == 0 && di.di_pid > 0)
			r->pidfd = (int)syscall(SYS_pidfd_open, di.di_pid, 0);
	}
	lk_unlock(lk);
	if (cr != 0) {
		mig_refuse(io, err);
		refused = true;
		goto out;
	}
	if (o.on_created)
		o.on_created(domid, o.arg);
	if (!mapped) {
		mig_refuse(io, err);
		refused = true;
		goto out;
	}
	uint64_t n = r->m.sm_npages;
	if (n != mc.mc_npages) {
		mig_seterr(err, errlen,
		       "the destination domain has %" PRIu64 " pages, the source %" PRIu64, n,
		       mc.mc_npages);
		mig_refuse(io, err);
		refused = true;
		goto out;
	}
	r->hash = mig_malloc(n * 8);
	r->nonzero = calloc((n + 63) / 64, 8);
	if (mc.mc_compress)
		r->dctx = ZSTD_createDCtx();
	if (!r->hash || !r->nonzero || (mc.mc_compress && !r->dctx)) {
		mig_seterr(err, errlen, "out of memory for the migration buffers");
		mig_refuse(io, err);
		refused = true;
		goto out;
	}
	{
		static const unsigned char zp[PG];
		r->zero_hash = mig_page_hash(zp);
		for (uint64_t i = 0; i < n; i++)
			r->hash[i] = r->zero_hash;
	}
	if (send_rec(io, MIG_REC_ACCEPT, NULL, 0, err, errlen) != 0)
		goto out;
	ho_start(&r->ap, apply_job, r);

	for (;;) {
		struct mig_rec_hdr h;
		if (read_rec(io, &h, &b, who, err, errlen) != 0) {
			if (go)
				break;
			goto out;
		}
		if (h.rh_type == MIG_REC_PAGES) {
			if (ap_submit(r, &h, &b, res, err, errlen) != 0) {
				mig_refuse(io, err);
				refused = true;
				goto out;
			}
			continue;
		}
		if (ho_wait(&r->ap, err, errlen) != 0) {
			mig_refuse(io, err);
			refused = true;
			goto out;
		}
		switch (h.rh_type) {
		case MIG_REC_ROUND_END: {
			struct mig_round_end re = {0};
			memcpy(&re, b.p, h.rh_len < sizeof re ? h.rh_len : sizeof re);
			if (dest_alive(r, be, lk, domid, err, errlen) != 0) {
				mig_refuse(io, err);
				refused = true;
				goto out;
			}
			if (re.re_last) {
				got_last = true;
			} else {
				struct mig_round_end ack = {.re_round = re.re_round};
				if (send_rec(io, MIG_REC_ROUND_ACK, &ack, sizeof ack, err, errlen) != 0)
					goto out;
			}
			break;
		}
		case MIG_REC_VCPU: {
			const size_t voff = offsetof(struct simdom_shared, ss_vcpus);
			if (h.rh_len != sizeof(struct simdom_shared) - voff) {
				mig_seterr(err, errlen, "vCPU state of %" PRIu64 " bytes, expected %zu",
				       h.rh_len, sizeof(struct simdom_shared) - voff);
				mig_refuse(io, err);
				refused = true;
				goto out;
			}
			memcpy((unsigned char *)r->m.sm_shared + voff, b.p, (size_t)h.rh_len);
			got_vcpu = true;
			break;
		}
		case MIG_REC_CHECKSUM: {
			struct mig_checksum ck;
			if (h.rh_len < sizeof ck || !got_last || !got_vcpu) {
				mig_seterr(err, errlen, "malformed migration stream: early CHECKSUM");
				mig_refuse(io, err);
				refused = true;
				goto out;
			}
			memcpy(&ck, b.p, sizeof ck);
			const uint64_t *want =
				h.rh_len >= sizeof ck + n * 8 ? (const uint64_t *)(const void *)(b.p + sizeof ck) : NULL;
			if (ck.ck_npages != n || mig_digest(r->hash, n) != ck.ck_digest) {
				uint64_t first = n;
				for (uint64_t i = 0; want && i < n; i++)
					if (want[i] != r->hash[i]) {
						first = i;
						break;
					}
				if (first < n)
					mig_seterr(err, errlen,
					       "memory checksum mismatch on the destination: page %" PRIu64
					       " differs from what the source sent",
					       first);
				else
					mig_seterr(err, errlen, "memory checksum mismatch on the destination");
				mig_refuse(io, err);
				refused = true;
				goto out;
			}
			struct mig_ready rd = {0};
			if (verify) {
				if (!want) {
					mig_seterr(err, errlen, "verify asked but no page hashes sent");
					mig_refuse(io, err);
					refused = true;
					goto out;
				}
				/* r->hash holds each page as it landed in guest
				 * memory (read back after the copy, while hot) */
				uint64_t t = now_ns(), bad = 0, nbad = 0;
				for (uint64_t i = 0; i < n; i++)
					if (want[i] != r->hash[i] && nbad++ == 0)
						bad = i;
				rd.rd_verify_ns = now_ns() - t;
				res->verify_ms = (double)rd.rd_verify_ns / 1e6;
				if (nbad) {
					mig_seterr(err, errlen,
					       "verification failed on the destination: %" PRIu64
					       " page(s) differ from the source (first: page %" PRIu64 ")",
					       nbad, bad);
					mig_refuse(io, err);
					refused = true;
					goto out;
				}
				rd.rd_verified = 1;
				res->verified = true;
			}
			if (dest_alive(r, be, lk, domid, err, errlen) != 0) {
				mig_refuse(io, err);
				refused = true;
				goto out;
			}
			if (send_rec(io, MIG_REC_READY, &rd, sizeof rd, err, errlen) != 0)
				goto out;
			break;
		}
		case MIG_REC_GO: {
			go = true;
			lk_lock(lk);
			int ur = be->be_ops->bo_domain_unpause(be, domid);
			if (ur != 0)
				mig_seterr(err, errlen, "cannot unpause the destination domain %d after GO: %s",
				       domid, backend_error(be));
			lk_unlock(lk);
			if (ur != 0) {
				(void)mig_send_text(io, MIG_REC_ERROR, err);
				rc = MIG_AFTER_GO;
				goto out;
			}
			res->running_sent =
				send_rec(io, MIG_REC_RUNNING, NULL, 0, NULL, 0) == 0;
			if (!res->running_sent)
				log_warn("migration into domain %d: RUNNING not delivered after GO; the "
					 "domain runs here, the source decides with the pool",
					 domid);
			rc = MIG_OK;
			goto out;
		}
		default:
			mig_seterr(err, errlen, "malformed migration stream: record type %u", h.rh_type);
			mig_refuse(io, err);
			refused = true;
			goto out;
		}
	}
out:
	(void)refused;
	ho_stop(&r->ap);
	res->wire_bytes = io->bytes_in;
	if (rc == MIG_OK)
		res->domid = domid;
	if (mapped) {
		lk_lock(lk);
		backend_sim_unmap(&r->m);
		lk_unlock(lk);
	}
	if (rc == MIG_FAILED && domid >= 0) {
		/* before GO: nothing may be left behind */
		lk_lock(lk);
		if (be->be_ops->bo_domain_destroy(be, domid) != 0)
			log_error("migration failed and destination domain %d cannot be destroyed: %s",
				  domid, backend_error(be));
		lk_unlock(lk);
	}
	if (rc == MIG_AFTER_GO)
		res->domid = domid;
	if (rc != MIG_OK)
		log_warn("incoming migration failed: %s", err ? err : "");
	if (r->pidfd >= 0)
		close(r->pidfd);
	ZSTD_freeDCtx(r->dctx);
	free(r->raw.p);
	free(r->ap_buf.p);
	free(r->hash);
	free(r->nonzero);
	free(b.p);
	return rc;
}
