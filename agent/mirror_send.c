/*
 * mirror_send.c - the source end of a disk mirror (see mirror_ops.h): on
 * a thread of its own, one VDI of a running VM.
 *
 *  1. The disk's dirty-block log is cleared, then the temporary snapshot
 *     is taken: copy-on-write in the guest's datapath (simdom.h), into an
 *     empty VDI - instant, and it holds only the blocks the guest
 *     overwrites while the snapshot is read. Every block written from the
 *     clearing on is also marked in the log.
 *  2. The snapshot's data blocks go to the destination (holes and zero
 *     blocks do not): read from the disk, then those the guest began to
 *     overwrite meanwhile (their kept bit set after the read) from the
 *     snapshot's file, so what is sent is the disk at the instant. Then the
 *     snapshot takes no more blocks.
 *  3. Rounds: the blocks the log marked, read from the live disk, until
 *     the stop rule (sr/mirror.c) says what is left fits the pause.
 *  4. Ready: small rounds keep the log short until the memory migration
 *     pauses the guest and asks for the last one (agent_mirrors_paused).
 *  5. The last round, FINAL with the digest of every block's hash as
 *     sent; the destination answers its own digest of what it wrote.
 *  6. Once the memory migration has handed the VM over, with verify the
 *     live disk (the paused guest no longer writes it) is hashed again:
 *     any block that differs from what was sent is a block the log missed.
 */
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend_lock.h"
#include "log.h"
#include "mirror_ops.h"
#include "simdom.h"
#include "util.h"

#define MAX_INDEX (MIRROR_BATCH_BLOCKS * 32) /* entries per record: zero markers cost no data */
#define READY_TICK_MS 50

struct msend {
	struct mirror *m;
	struct agent *ag;
	struct mig_io io;
	SSL *ssl;
	int fd, live_fd, snap_fd;
	struct be_sim_disk_log log;
	struct be_sim_disk_log kept; /* the snapshot's bitmap, while it takes blocks */
	uint64_t nbits;	     /* blocks the log tracks */
	uint64_t *sent_hash; /* per block: the hash of what the destination has */
	uint64_t zero_hash;
	struct mirror_runs runs;
	unsigned char *data; /* a run read at once, then the record's data */
	unsigned char *rec;  /* header | mirror_blocks | index | data (compressed) */
	size_t rec_cap;
	ZSTD_CCtx *cctx;
	struct mig_buf in;
	struct mirror_round hist[256];
	int nh, round;
	uint64_t t0, paced_bytes;
	char err[512];
};

static uint64_t block_len(const struct msend *s, uint64_t b)
{
	uint64_t off = b * MIRROR_BLOCK, size = s->m->mi_size;
	return off >= size ? 0 : size - off < MIRROR_BLOCK ? size - off : MIRROR_BLOCK;
}

/* Bytes the log marks now (nothing cleared). */
static uint64_t dirty_bytes(const struct msend *s)
{
	uint64_t n = 0;
	for (uint64_t w = 0; w < (s->nbits + 63) / 64; w++)
		n += (uint64_t)__builtin_popcountll(__atomic_load_n(&s->log.dl_bits[w], __ATOMIC_RELAXED));
	return n * MIRROR_BLOCK;
}

/* ---- records ---- */

/* Sleep so the stream keeps to mi_bandwidth_mb_s (MB = 1e6). */
static void pace(struct msend *s, uint64_t bytes)
{
	if (s->m->mi_bandwidth_mb_s <= 0)
		return;
	s->paced_bytes += bytes;
	uint64_t due = s->paced_bytes * 1000ull / (uint64_t)s->m->mi_bandwidth_mb_s; /* ns since t0 */
	uint64_t now = now_ns() - s->t0;
	if (due > now) {
		struct timespec ts = {(time_t)((due - now) / 1000000000ull), (long)((due - now) % 1000000000ull)};
		nanosleep(&ts, NULL);
	}
}

/* One BLOCKS record: n index entries, datalen bytes of data in s->data. */
static int send_blocks(struct msend *s, const uint64_t *index, uint32_t n, size_t datalen)
{
	size_t head = sizeof(struct mig_rec_hdr) + sizeof(struct mirror_blocks) + n * sizeof(uint64_t);
	size_t bound = s->m->mi_compress ? ZSTD_compressBound(datalen) : 0;
	if (head + bound > s->rec_cap) {
		s->rec = xrealloc(s->rec, head + bound);
		s->rec_cap = head + bound;
	}
	struct mirror_blocks mb = {.mb_n = n, .mb_raw_len = datalen};
	size_t clen = datalen;
	uint32_t flags = 0;
	if (s->m->mi_compress && datalen) {
		size_t c = ZSTD_compressCCtx(s->cctx, s->rec + head, bound, s->data, datalen, 1);
		if (!ZSTD_isError(c) && c < datalen) {
			clen = c;
			flags = MIRROR_F_COMPRESSED;
		}
	}
	struct mig_rec_hdr h = {.rh_type = MIRROR_REC_BLOCKS, .rh_flags = flags,
				.rh_len = sizeof mb + n * sizeof(uint64_t) + clen};
	memcpy(s->rec, &h, sizeof h);
	memcpy(s->rec + sizeof h, &mb, sizeof mb);
	memcpy(s->rec + sizeof h + sizeof mb, index, n * sizeof(uint64_t));
	int rc = mig_io_write(&s->io, s->rec, head + (flags ? clen : 0), s->err, sizeof s->err);
	if (rc == 0 && !flags && datalen)
		rc = mig_io_write(&s->io, s->data, datalen, s->err, sizeof s->err);
	pace(s, head + clen);
	return rc;
}

/* len bytes of blocks [first, ...) of fd into s->data, at once (a short
 * read: the rest is zeros, a sparse tail). */
static int read_blocks(struct msend *s, int fd, uint64_t first, uint64_t n, uint64_t len)
{
	(void)n;
	ssize_t r = pread(fd, s->data, len, (off_t)(first * MIRROR_BLOCK));
	if (r < 0)
		return snprintf(s->err, sizeof s->err, "reading the disk: %s", strerror(errno)), -1;
	if ((uint64_t)r < len)
		memset(s->data + r, 0, len - (uint64_t)r);
	return 0;
}

/* After the disk was read: the blocks the guest began to overwrite since
 * the snapshot's instant (kept bit set, checked after the read) from the
 * snapshot's file. */
static int fix_from_snapshot(struct msend *s, uint64_t first, uint64_t n)
{
	if (!s->kept.dl_bits)
		return 0;
	size_t at = 0;
	for (uint64_t b = first; b < first + n; b++) {
		uint64_t bl = block_len(s, b);
		if (__atomic_load_n(&s->kept.dl_bits[b / 64], __ATOMIC_ACQUIRE) & (1ull << (b % 64))) {
			ssize_t r = pread(s->snap_fd, s->data + at, bl, (off_t)(b * MIRROR_BLOCK));
			if (r < 0)
				return snprintf(s->err, sizeof s->err, "reading the snapshot: %s", strerror(errno)), -1;
			if ((uint64_t)r < bl)
				memset(s->data + at + r, 0, bl - (uint64_t)r); /* a hole kept: zeros */
		}
		at += bl;
	}
	return 0;
}

/* Blocks [first, first + n) of fd, read at once, as one record: zero
 * blocks as ZERO markers (or left out: skip_zero, a fresh destination),
 * the others' data with their hashes noted. The data bytes sent. */
static int64_t send_run(struct msend *s, int fd, uint64_t first, uint64_t n, bool skip_zero)
{
	uint64_t index[MIRROR_BATCH_BLOCKS];
	uint64_t len = 0;
	for (uint64_t i = 0; i < n; i++)
		len += block_len(s, first + i);
	if (read_blocks(s, fd, first, n, len) != 0)
		return -1;
	if (skip_zero && fix_from_snapshot(s, first, n) != 0) /* the bulk copy: the disk at the instant */
		return -1;
	uint32_t k = 0;
	size_t at = 0, out = 0;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t b = first + i, bl = block_len(s, b);
		unsigned char *p = s->data + at;
		at += bl;
		if (mirror_is_zero(p, bl)) {
			s->sent_hash[b] = s->zero_hash;
			if (!skip_zero)
				index[k++] = b | MIRROR_IDX_ZERO;
			continue;
		}
		s->sent_hash[b] = mirror_block_hash(p, bl, mig_page_hash2);
		if (p != s->data + out)
			memmove(s->data + out, p, bl);
		out += bl;
		index[k++] = b;
	}
	if (k && send_blocks(s, index, k, out) != 0)
		return -1;
	return (int64_t)out;
}

static int send_round_end(struct msend *s, int round, uint32_t how)
{
	struct mirror_round_end re = {.re_round = (uint32_t)round, .re_last = how};
	return mig_send_rec(&s->io, MIRROR_REC_ROUND_END, 0, &re, sizeof re, s->err, sizeof s->err);
}

/* The destination's next record, of type want. */
static int expect(struct msend *s, uint32_t want, size_t min)
{
	int rc = mig_expect_rec(&s->io, want, min, &s->in.mb_p, &s->in.mb_cap, "the destination", s->err,
				sizeof s->err);
	return rc == MIG_READ_OK ? 0 : -1;
}

/* ---- the steps ---- */

static void note(struct msend *s, uint64_t copied, uint64_t sent)
{
	struct mirror *m = s->m;
	pthread_mutex_lock(&m->mi_mu);
	m->mi_copied += copied;
	m->mi_sent += sent;
	m->mi_wire = s->io.bytes_out;
	m->mi_round = s->round;
	double secs = (double)(now_ns() - s->t0) / 1e9;
	m->mi_rate_mb_s = secs > 0 ? (double)s->io.bytes_out / 1e6 / secs : 0;
	pthread_mutex_unlock(&m->mi_mu);
}

/* 1. The log cleared, then the snapshot: an empty VDI the guest's
 * datapath keeps the old blocks in (copy-on-write). */
static int step_snapshot(struct msend *s)
{
	struct mirror *m = s->m;
	uint64_t t = now_ns();
	char loc[SR_LOCATION_MAX];
	if (m->mi_drv->sd_vdi_create(m->mi_sr, m->mi_snap, m->mi_size, loc, s->err, sizeof s->err) < 0)
		return -1;
	if ((s->snap_fd = open(loc, O_RDONLY | O_CLOEXEC)) < 0)
		return snprintf(s->err, sizeof s->err, "%.300s: %s", loc, strerror(errno)), -1;
	struct backend *inner = backend_locked_inner(s->ag->ag_be);
	backend_locked_lock(s->ag->ag_be);
	int rc = backend_sim_disk_log(inner, m->mi_domid, m->mi_vdi, &s->log);
	if (rc == 0) {
		s->nbits = s->log.dl_len * 8 < m->mi_nblocks ? s->log.dl_len * 8 : m->mi_nblocks;
		for (uint64_t w = 0; w < (s->nbits + 63) / 64; w++)
			__atomic_store_n(&s->log.dl_bits[w], 0, __ATOMIC_RELEASE);
		rc = backend_sim_disk_snapshot(inner, m->mi_domid, m->mi_vdi, loc, &s->kept);
	}
	if (rc != 0)
		snprintf(s->err, sizeof s->err, "%s", backend_error(inner));
	backend_locked_unlock(s->ag->ag_be);
	if (rc != 0)
		return -1;
	pthread_mutex_lock(&m->mi_mu);
	snprintf(m->mi_snap_location, sizeof m->mi_snap_location, "%s", loc);
	m->mi_snap_virtual = m->mi_size;
	m->mi_snapshot_ms = (double)(now_ns() - t) / 1e6;
	pthread_mutex_unlock(&m->mi_mu);
	return 0;
}

/* The bulk copy done: the snapshot takes no more blocks (the guest's
 * writes go at full speed again; what they change is in the log). */
static void snapshot_end(struct msend *s)
{
	if (!s->kept.dl_bits)
		return;
	struct backend *inner = backend_locked_inner(s->ag->ag_be);
	backend_locked_lock(s->ag->ag_be);
	if (backend_sim_disk_snapshot_end(inner, s->m->mi_domid, s->m->mi_vdi) != 0)
		log_warn("disk mirror %s: the snapshot did not stop: %s (it stops when it is removed)", s->m->mi_id,
			 backend_error(inner));
	backend_locked_unlock(s->ag->ag_be);
	backend_sim_disk_log_unmap(&s->kept);
}

/* The destination's endpoint: TLS, HELLO both ways, TOKEN, INFO, ACCEPT. */
static int step_connect(struct msend *s)
{
	struct mirror *m = s->m;
	if (agent_peer_connect(s->ag, m->mi_slot, m->mi_addr, m->mi_port, m->mi_peer, &s->fd, &s->ssl, s->err,
			       sizeof s->err) != 0)
		return -1;
	mirror_sock_set(m, s->fd);
	mig_io_init_ssl(&s->io, s->ssl);
	mig_io_set_timeout(&s->io, 60000);
	s->io.cut_after_bytes = (uint64_t)conf_int(s->ag->ag_conf, "fault-mirror-cut-bytes");
	struct mig_hello he;
	uint32_t features;
	struct mirror_info mi = {.mi_size = m->mi_size, .mi_block = MIRROR_BLOCK};
	if (mig_send_hello(&s->io, MIRROR_PROTO_VERSION, 0, false, s->err, sizeof s->err) != 0 ||
	    mig_expect_hello(&s->io, &s->in, &he, &features, "the destination", s->err, sizeof s->err) != MIG_READ_OK)
		return -1;
	if (he.he_version != MIRROR_PROTO_VERSION)
		return snprintf(s->err, sizeof s->err,
				"disk mirror protocol version mismatch: this host speaks %#x, the destination %#x",
				MIRROR_PROTO_VERSION, he.he_version),
		       -1;
	if (mig_send_rec(&s->io, MIG_REC_TOKEN, 0, m->mi_token, strlen(m->mi_token), s->err, sizeof s->err) != 0 ||
	    mig_send_rec(&s->io, MIRROR_REC_INFO, 0, &mi, sizeof mi, s->err, sizeof s->err) != 0)
		return -1;
	return expect(s, MIG_REC_ACCEPT, 0);
}

/* A round's end: ROUND_END, the destination through with it, the history. */
static int round_done(struct msend *s, uint64_t bytes, uint64_t t, bool last)
{
	if (send_round_end(s, s->round, last ? MIRROR_END_LAST : MIRROR_END_ROUND) != 0 ||
	    (!last && expect(s, MIRROR_REC_ROUND_ACK, 0) != 0))
		return -1;
	if (!last && s->nh < (int)(sizeof s->hist / sizeof s->hist[0]))
		s->hist[s->nh++] = (struct mirror_round){s->round, bytes, now_ns() - t, dirty_bytes(s)};
	pthread_mutex_lock(&s->m->mi_mu);
	s->m->mi_dirty = s->nh ? s->hist[s->nh - 1].mr_dirty_after : 0;
	pthread_mutex_unlock(&s->m->mi_mu);
	return 0;
}

/* 2. The snapshot's data blocks. */
static int step_copy(struct msend *s)
{
	uint64_t t = now_ns(), b = 0, first, end, bytes = 0;
	struct stat st;
	pthread_mutex_lock(&s->m->mi_mu); /* what the disk holds: what the copy has to go through */
	s->m->mi_total = fstat(s->live_fd, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
	pthread_mutex_unlock(&s->m->mi_mu);
	while (mirror_next_data(s->live_fd, b, s->m->mi_nblocks, &first, &end)) {
		for (uint64_t x = first; x < end; x += MIRROR_BATCH_BLOCKS) {
			uint64_t n = end - x < MIRROR_BATCH_BLOCKS ? end - x : MIRROR_BATCH_BLOCKS;
			int64_t sent = send_run(s, s->live_fd, x, n, true);
			if (sent < 0)
				return -1;
			bytes += (uint64_t)sent;
			note(s, n * MIRROR_BLOCK, (uint64_t)sent);
			if (mirror_cancelled(s->m))
				return snprintf(s->err, sizeof s->err, "cancelled"), -1;
		}
		b = end;
	}
	snapshot_end(s);
	int rc = round_done(s, bytes, t, false);
	pthread_mutex_lock(&s->m->mi_mu);
	s->m->mi_copied = s->m->mi_total; /* holes count as copied */
	s->m->mi_copy_ms = (double)(now_ns() - t) / 1e6;
	pthread_mutex_unlock(&s->m->mi_mu);
	return rc;
}

/* One round of what the log marked, from the live disk. */
static int one_round(struct msend *s, bool last, uint64_t *bytes_out)
{
	uint64_t t = now_ns(), bytes = 0;
	s->round++;
	s->runs.mr_n = 0;
	if (mirror_take_dirty(s->log.dl_bits, s->nbits, MIRROR_BATCH_BLOCKS, &s->runs) < 0)
		return snprintf(s->err, sizeof s->err, "out of memory"), -1;
	for (size_t i = 0; i < s->runs.mr_n; i++) {
		int64_t sent = send_run(s, s->live_fd, s->runs.mr_v[i].mr_first, s->runs.mr_v[i].mr_count, false);
		if (sent < 0)
			return -1;
		bytes += (uint64_t)sent;
	}
	note(s, 0, bytes);
	if (bytes_out)
		*bytes_out = bytes;
	return round_done(s, bytes, t, last);
}

/* 3. Rounds until the stop rule says ready. */
static int step_rounds(struct msend *s)
{
	enum mirror_stop st;
	while ((st = mirror_should_stop(s->hist, s->nh, &s->m->mi_policy)) == MIRROR_CONTINUE) {
		if (mirror_cancelled(s->m))
			return snprintf(s->err, sizeof s->err, "cancelled"), -1;
		if (one_round(s, false, NULL) != 0)
			return -1;
	}
	pthread_mutex_lock(&s->m->mi_mu);
	s->m->mi_stop = mirror_stop_name(st);
	pthread_mutex_unlock(&s->m->mi_mu);
	log_info("disk mirror %s: ready after %d round(s) (%s; %.1f MB left, predicted last round %.1f ms)",
		 s->m->mi_id, s->round, mirror_stop_name(st), (double)dirty_bytes(s) / 1e6,
		 mirror_predict_ms(s->hist, s->nh));
	return 0;
}

/* 4. Small rounds until the pause asks for the last one (or cancel). */
static int step_ready(struct msend *s)
{
	struct mirror *m = s->m;
	mirror_set_state(m, MS_READY);
	for (;;) {
		pthread_mutex_lock(&m->mi_mu);
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_nsec += READY_TICK_MS * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		if (!m->mi_final_req && !m->mi_cancel)
			pthread_cond_timedwait(&m->mi_cv, &m->mi_mu, &dl);
		bool final = m->mi_final_req;
		pthread_mutex_unlock(&m->mi_mu);
		if (final)
			return 0;
		if (mirror_cancelled(m))
			return snprintf(s->err, sizeof s->err, "cancelled"), -1;
		if (mirror_any_dirty(s->log.dl_bits, s->nbits) && one_round(s, false, NULL) != 0)
			return -1;
	}
}

/* 5. The guest is paused: the last blocks, FINAL, the destination's digest. */
static int step_final(struct msend *s)
{
	struct mirror *m = s->m;
	mirror_set_state(m, MS_FINAL);
	uint64_t t = now_ns(), bytes = 0;
	if (one_round(s, true, &bytes) != 0)
		return -1;
	struct mirror_final f = {.mf_nblocks = m->mi_nblocks, .mf_digest = mirror_digest(s->sent_hash, m->mi_nblocks)};
	if (mig_send_rec(&s->io, MIRROR_REC_FINAL, 0, &f, sizeof f, s->err, sizeof s->err) != 0 ||
	    expect(s, MIRROR_REC_DONE, sizeof f) != 0)
		return -1;
	struct mirror_final got;
	memcpy(&got, s->in.mb_p, sizeof got);
	if (got.mf_digest != f.mf_digest)
		return snprintf(s->err, sizeof s->err,
				"the destination's disk differs from what was sent (digest %016" PRIx64 " != %016" PRIx64 ")",
				got.mf_digest, f.mf_digest),
		       -1;
	pthread_mutex_lock(&m->mi_mu);
	m->mi_final_ms = (double)(now_ns() - t) / 1e6;
	m->mi_final_bytes = bytes;
	m->mi_state = MS_HANDED;
	m->mi_final_done = true;
	m->mi_final_rc = 0;
	pthread_cond_broadcast(&m->mi_cv);
	pthread_mutex_unlock(&m->mi_mu);
	return 0;
}

/* Blocks of the live disk whose content is not what was sent last. */
static uint64_t verify_disk(struct msend *s, uint64_t *first_bad)
{
	uint64_t bad = 0, b = 0, first, end, next_hole = 0;
	while (b < s->m->mi_nblocks) {
		if (!mirror_next_data(s->live_fd, b, s->m->mi_nblocks, &first, &end))
			first = end = s->m->mi_nblocks;
		for (; next_hole < first; next_hole++) /* a hole: zeros */
			if (s->sent_hash[next_hole] != s->zero_hash && !bad++)
				*first_bad = next_hole;
		for (uint64_t x = first; x < end; x++) {
			uint64_t bl = block_len(s, x);
			ssize_t r = pread(s->live_fd, s->data, bl, (off_t)(x * MIRROR_BLOCK));
			if (r < (ssize_t)bl)
				memset(s->data + (r > 0 ? r : 0), 0, bl - (uint64_t)(r > 0 ? r : 0));
			if (mirror_block_hash(s->data, bl, mig_page_hash2) != s->sent_hash[x] && !bad++)
				*first_bad = x;
		}
		b = next_hole = end;
	}
	return bad;
}

/* 6. After the hand-over: wait to hear it happened, then verify. */
static void step_after(struct msend *s)
{
	struct mirror *m = s->m;
	pthread_mutex_lock(&m->mi_mu);
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 600;
	while (!m->mi_go_told && !m->mi_cancel && pthread_cond_timedwait(&m->mi_cv, &m->mi_mu, &dl) == 0)
		;
	bool go = m->mi_after_go, verify = m->mi_verify && go;
	pthread_mutex_unlock(&m->mi_mu);
	if (!go) {
		mirror_fail(m, "the memory migration did not hand the VM over: this mirror ends");
		return;
	}
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), 10); /* the VM's first moments on its new host come first */
	uint64_t t = now_ns(), first_bad = 0, bad = verify ? verify_disk(s, &first_bad) : 0;
	pthread_mutex_lock(&m->mi_mu);
	if (verify) {
		m->mi_verified = bad == 0;
		m->mi_verify_ms = (double)(now_ns() - t) / 1e6;
		if (bad)
			snprintf(m->mi_err, sizeof m->mi_err,
				 "disk verification failed after the hand-over: %" PRIu64 " block(s) of VDI %s (first: "
				 "block %" PRIu64 ") changed after they were sent without being marked dirty (a tracking "
				 "bug); the VM runs on the destination",
				 bad, m->mi_vdi, first_bad);
	}
	m->mi_state = MS_DONE;
	pthread_cond_broadcast(&m->mi_cv);
	pthread_mutex_unlock(&m->mi_mu);
	log_info("disk mirror %s done: %.1f MB of data, %.1f MB on the wire, last round %.1f ms (%.1f MB)%s",
		 m->mi_id, (double)m->mi_sent / 1e6, (double)m->mi_wire / 1e6, m->mi_final_ms,
		 (double)m->mi_final_bytes / 1e6, verify ? (bad ? ", VERIFY FAILED" : ", verified") : "");
}

static int setup(struct msend *s)
{
	struct mirror *m = s->m;
	struct stat st;
	if ((s->live_fd = open(m->mi_path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(s->live_fd, &st) != 0)
		return snprintf(s->err, sizeof s->err, "%.300s: %s", m->mi_path, strerror(errno)), -1;
	m->mi_size = (uint64_t)st.st_size;
	m->mi_nblocks = simdom_disk_blocks(m->mi_size);
	s->zero_hash = mirror_zero_hash(mig_page_hash2);
	s->sent_hash = xmalloc((m->mi_nblocks ? m->mi_nblocks : 1) * sizeof *s->sent_hash);
	s->data = mig_malloc((size_t)MIRROR_BATCH_BLOCKS * MIRROR_BLOCK);
	s->cctx = m->mi_compress ? ZSTD_createCCtx() : NULL;
	if (!s->data || (m->mi_compress && !s->cctx))
		return snprintf(s->err, sizeof s->err, "out of memory"), -1;
	for (uint64_t b = 0; b < m->mi_nblocks; b++)
		s->sent_hash[b] = s->zero_hash; /* the destination starts as holes */
	return 0;
}

static void teardown(struct msend *s)
{
	mirror_sock_set(s->m, -1);
	if (s->ssl) {
		SSL_shutdown(s->ssl);
		SSL_free(s->ssl);
	}
	if (s->fd >= 0)
		close(s->fd);
	if (s->live_fd >= 0)
		close(s->live_fd);
	if (s->snap_fd >= 0)
		close(s->snap_fd);
	snapshot_end(s);
	backend_sim_disk_log_unmap(&s->log);
	mirror_runs_free(&s->runs);
	mig_buf_free(&s->in);
	ZSTD_freeCCtx(s->cctx);
	free(s->sent_hash);
	free(s->data);
	free(s->rec);
}

void *mirror_send_thread(void *arg)
{
	struct mirror *m = arg;
	struct msend *s = xcalloc(1, sizeof *s);
	struct agent *ag = m->mi_ag;
	int slot = m->mi_slot;
	*s = (struct msend){.m = m, .ag = ag, .fd = -1, .live_fd = -1, .snap_fd = -1};
	s->log.dl_fd = s->kept.dl_fd = -1;
	s->t0 = now_ns();
	mirror_set_state(m, MS_SNAPSHOT);
	int rc = setup(s) || step_snapshot(s);
	if (!rc) {
		mirror_set_state(m, MS_COPY);
		rc = step_connect(s) || step_copy(s);
	}
	if (!rc) {
		mirror_set_state(m, MS_ROUNDS);
		rc = step_rounds(s) || step_ready(s) || step_final(s);
	}
	if (rc)
		mirror_fail(m, "%s", s->err[0] ? s->err : "failed");
	else
		step_after(s);
	teardown(s);
	free(s);
	agent_flight_leave(&ag->ag_flights, slot);
	mirror_unref(m);
	return NULL;
}
