/*
 * mirror_recv.c - the destination end of a disk mirror (see mirror_ops.h):
 * a one-time endpoint that admits only the source host's certificate and
 * the token poold issued, then every record written into the VDI made for
 * it, each block's hash kept so the last record (FINAL) can be answered
 * with the digest of what this disk really holds.
 *
 * On any failure the VDI stays as it is: poold's journal removes it
 * (agent.vdi_remove), so one place decides what is left behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "log.h"
#include "mirror_ops.h"
#include "simdom.h"
#include "util.h"

#ifndef FALLOC_FL_PUNCH_HOLE
#include <linux/falloc.h>
#endif

#define ENDPOINT_MS 60000 /* the source has this long to connect */
#define GREET_MS 5000

struct mrecv {
	struct mirror *m;
	struct mig_io io;
	SSL *ssl;
	int fd, vdi_fd;
	uint64_t *hash; /* per block: the hash of what is written there */
	uint64_t zero_hash;
	struct mig_buf in, data;
	ZSTD_DCtx *dctx;
	char err[512];
};

static uint64_t block_len(const struct mrecv *r, uint64_t b)
{
	uint64_t off = b * MIRROR_BLOCK, size = r->m->mi_size;
	return off >= size ? 0 : size - off < MIRROR_BLOCK ? size - off : MIRROR_BLOCK;
}

/* The source's connection, greeted (TLS with the source host's
 * certificate, a HELLO), before the deadline; strays are dropped. */
static int accept_source(struct mrecv *r)
{
	struct mirror *m = r->m;
	int64_t deadline = mig_now_ms() + ENDPOINT_MS;
	uint32_t version = 0;
	while (!mirror_cancelled(m)) {
		int64_t left = deadline - mig_now_ms();
		struct pollfd p = {m->mi_lfd, POLLIN, 0};
		if (left <= 0)
			return snprintf(r->err, sizeof r->err, "no source connected within %d s", ENDPOINT_MS / 1000), -1;
		if (poll(&p, 1, left < 200 ? (int)left : 200) != 1)
			continue;
		int fd = accept4(m->mi_lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		mirror_sock_set(m, fd);
		int64_t greet = mig_now_ms() + GREET_MS;
		r->ssl = mig_greet(m->mi_ag->ag_server_ctx, fd, greet < deadline ? greet : deadline, m->mi_peer, &version);
		if (r->ssl) {
			r->fd = fd;
			close(m->mi_lfd); /* one source per endpoint */
			m->mi_lfd = -1;
			mig_io_init_ssl(&r->io, r->ssl);
			mig_io_set_timeout(&r->io, 60000);
			if (version == MIRROR_PROTO_VERSION)
				return 0;
			char msg[200];
			snprintf(msg, sizeof msg, "disk mirror protocol version mismatch: the destination speaks %#x, the "
						  "source %#x", MIRROR_PROTO_VERSION, version);
			mig_refuse(&r->io, msg);
			return snprintf(r->err, sizeof r->err, "%s", msg), -1;
		}
		log_warn("disk mirror %s: dropped a connection that did not greet as the source host", m->mi_id);
		mirror_sock_set(m, -1);
		close(fd);
	}
	return snprintf(r->err, sizeof r->err, "cancelled"), -1;
}

/* HELLO back, TOKEN (constant-time compare), INFO, ACCEPT. */
static int handshake(struct mrecv *r)
{
	struct mig_hello he;
	uint32_t features;
	struct mirror *m = r->m;
	if (mig_expect_hello(&r->io, &r->in, &he, &features, "the source", r->err, sizeof r->err) != MIG_READ_OK ||
	    mig_send_hello(&r->io, MIRROR_PROTO_VERSION, 0, false, r->err, sizeof r->err) != 0 ||
	    mig_expect_rec(&r->io, MIG_REC_TOKEN, 1, &r->in.mb_p, &r->in.mb_cap, "the source", r->err, sizeof r->err) !=
		    MIG_READ_OK)
		return -1;
	size_t tl = strlen(m->mi_token);
	if (strlen((char *)r->in.mb_p) != tl || CRYPTO_memcmp(r->in.mb_p, m->mi_token, tl) != 0) {
		mig_refuse(&r->io, "wrong token for this disk mirror");
		return snprintf(r->err, sizeof r->err, "a source brought the wrong token"), -1;
	}
	if (mig_expect_rec(&r->io, MIRROR_REC_INFO, sizeof(struct mirror_info), &r->in.mb_p, &r->in.mb_cap, "the source",
			   r->err, sizeof r->err) != MIG_READ_OK)
		return -1;
	struct mirror_info mi;
	memcpy(&mi, r->in.mb_p, sizeof mi);
	if (mi.mi_size != m->mi_size || mi.mi_block != MIRROR_BLOCK) {
		char msg[200];
		snprintf(msg, sizeof msg, "disk mirror %s: the source's disk has %" PRIu64 " bytes in blocks of %u, this "
					  "VDI %" PRIu64 " in blocks of %u", m->mi_id, mi.mi_size, mi.mi_block,
			 m->mi_size, MIRROR_BLOCK);
		mig_refuse(&r->io, msg);
		return snprintf(r->err, sizeof r->err, "%s", msg), -1;
	}
	return mig_send_rec(&r->io, MIG_REC_ACCEPT, 0, NULL, 0, r->err, sizeof r->err);
}

/* Block b becomes zeros: a hole where the filesystem can, else written. */
static int write_zero(struct mrecv *r, uint64_t b)
{
	uint64_t len = block_len(r, b);
	if (fallocate(r->vdi_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(b * MIRROR_BLOCK), (off_t)len) ==
	    0)
		return 0;
	static const unsigned char zero[MIRROR_BLOCK];
	return pwrite(r->vdi_fd, zero, len, (off_t)(b * MIRROR_BLOCK)) == (ssize_t)len ? 0 : -1;
}

/* A BLOCKS record's payload (in r->in): checked whole, then applied; runs
 * of consecutive data blocks go in one pwrite. */
static int apply_blocks(struct mrecv *r, const struct mig_rec_hdr *h)
{
	struct mirror_blocks mb;
	if (h->rh_len < sizeof mb)
		return snprintf(r->err, sizeof r->err, "malformed BLOCKS record"), -1;
	memcpy(&mb, r->in.mb_p, sizeof mb);
	size_t ilen = (size_t)mb.mb_n * sizeof(uint64_t);
	if (mb.mb_n == 0 || mb.mb_n > MIRROR_BATCH_BLOCKS * 32 || sizeof mb + ilen > h->rh_len ||
	    mb.mb_raw_len > (uint64_t)MIRROR_BATCH_BLOCKS * MIRROR_BLOCK)
		return snprintf(r->err, sizeof r->err, "malformed BLOCKS record (%u entries)", mb.mb_n), -1;
	const uint64_t *idx = (const uint64_t *)(r->in.mb_p + sizeof mb);
	const unsigned char *data = r->in.mb_p + sizeof mb + ilen;
	size_t dlen = (size_t)(h->rh_len - sizeof mb - ilen);
	if (h->rh_flags & MIRROR_F_COMPRESSED) {
		if (mig_buf_need(&r->data, (size_t)mb.mb_raw_len + 1) != 0)
			return snprintf(r->err, sizeof r->err, "out of memory"), -1;
		size_t got = ZSTD_decompressDCtx(r->dctx, r->data.mb_p, (size_t)mb.mb_raw_len, data, dlen);
		if (ZSTD_isError(got) || got != mb.mb_raw_len)
			return snprintf(r->err, sizeof r->err, "a compressed BLOCKS record does not decompress"), -1;
		data = r->data.mb_p;
		dlen = got;
	}
	uint64_t need = 0;
	for (uint32_t i = 0; i < mb.mb_n; i++) {
		uint64_t b = idx[i] & ~MIRROR_IDX_ZERO;
		if (b >= r->m->mi_nblocks)
			return snprintf(r->err, sizeof r->err, "block %" PRIu64 " is past the disk's end", b), -1;
		need += idx[i] & MIRROR_IDX_ZERO ? 0 : block_len(r, b);
	}
	if (need != dlen || need != mb.mb_raw_len)
		return snprintf(r->err, sizeof r->err, "a BLOCKS record's data does not match its index"), -1;
	size_t at = 0;
	for (uint32_t i = 0; i < mb.mb_n;) {
		uint64_t b = idx[i] & ~MIRROR_IDX_ZERO;
		if (idx[i] & MIRROR_IDX_ZERO) {
			if (write_zero(r, b) != 0)
				return snprintf(r->err, sizeof r->err, "writing the VDI: %s", strerror(errno)), -1;
			r->hash[b] = r->zero_hash;
			i++;
			continue;
		}
		uint32_t j = i;
		size_t len = 0;
		while (j < mb.mb_n && !(idx[j] & MIRROR_IDX_ZERO) && idx[j] == b + (j - i))
			len += block_len(r, idx[j++]);
		if (pwrite(r->vdi_fd, data + at, len, (off_t)(b * MIRROR_BLOCK)) != (ssize_t)len)
			return snprintf(r->err, sizeof r->err, "writing the VDI: %s", strerror(errno)), -1;

		for (; i < j; i++) {
			uint64_t bl = block_len(r, idx[i]);
			r->hash[idx[i]] = mirror_block_hash(data + at, bl, mig_page_hash2);
			at += bl;
		}
	}
	return 0;
}

/* FINAL: compared and answered (the sync comes after: after_final). */
static int final(struct mrecv *r)
{
	struct mirror_final f;
	memcpy(&f, r->in.mb_p, sizeof f);
	struct mirror_final mine = {.mf_nblocks = r->m->mi_nblocks, .mf_digest = mirror_digest(r->hash, r->m->mi_nblocks)};
	if (f.mf_nblocks != mine.mf_nblocks || f.mf_digest != mine.mf_digest) {
		char msg[200];
		snprintf(msg, sizeof msg, "disk mirror %s: what was written here (digest %016" PRIx64 ") is not what "
					  "the source sent (%016" PRIx64 ")", r->m->mi_id, mine.mf_digest, f.mf_digest);
		mig_refuse(&r->io, msg);
		return snprintf(r->err, sizeof r->err, "%s", msg), -1;
	}
	return mig_send_rec(&r->io, MIRROR_REC_DONE, 0, &mine, sizeof mine, r->err, sizeof r->err);
}

/* The copy is the VM's disk now (or about to be): on the disk before this
 * mirror says done, and poold removes the source only after that. The
 * sync waits until the VM runs here (agent_mirrors_running), so its I/O
 * never competes with the hand-over. */
static int after_final(struct mrecv *r)
{
	struct mirror *m = r->m;
	mirror_set_state(m, MS_HANDED);
	pthread_mutex_lock(&m->mi_mu);
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 60;
	while (!m->mi_go_told && !m->mi_cancel && pthread_cond_timedwait(&m->mi_cv, &m->mi_mu, &dl) == 0)
		;
	pthread_mutex_unlock(&m->mi_mu);
	/* the VM has just started here: its first moments get the CPU first */
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), 10);
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	if (fdatasync(r->vdi_fd) != 0)
		return snprintf(r->err, sizeof r->err, "syncing the VDI: %s", strerror(errno)), -1;
	clock_gettime(CLOCK_MONOTONIC, &b);
	pthread_mutex_lock(&m->mi_mu);
	m->mi_final_ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	pthread_mutex_unlock(&m->mi_mu);
	return 0;
}

/* Records until FINAL. */
static int receive(struct mrecv *r)
{
	struct mirror *m = r->m;
	for (;;) {
		struct mig_rec_hdr h;
		int rc = mig_read_rec(&r->io, &h, &r->in.mb_p, &r->in.mb_cap, "the source", r->err, sizeof r->err);
		if (rc != MIG_READ_OK)
			return -1;
		if (h.rh_type == MIRROR_REC_BLOCKS) {
			if (apply_blocks(r, &h) != 0) {
				mig_refuse(&r->io, r->err);
				return -1;
			}
		} else if (h.rh_type == MIRROR_REC_ROUND_END && h.rh_len >= sizeof(struct mirror_round_end)) {
			struct mirror_round_end re;
			memcpy(&re, r->in.mb_p, sizeof re);
			pthread_mutex_lock(&m->mi_mu);
			m->mi_round = (int)re.re_round;
			m->mi_wire = r->io.bytes_in;
			pthread_mutex_unlock(&m->mi_mu);
			if (re.re_last != MIRROR_END_LAST && mig_send_rec(&r->io, MIRROR_REC_ROUND_ACK, 0, &re, sizeof re, r->err,
							sizeof r->err) != 0)
				return -1;
		} else if (h.rh_type == MIRROR_REC_FINAL && h.rh_len >= sizeof(struct mirror_final)) {
			return final(r);
		} else {
			snprintf(r->err, sizeof r->err, "unexpected record type %u", h.rh_type);
			mig_refuse(&r->io, r->err);
			return -1;
		}
	}
}

static int setup(struct mrecv *r)
{
	struct mirror *m = r->m;
	m->mi_nblocks = simdom_disk_blocks(m->mi_size);
	r->zero_hash = mirror_zero_hash(mig_page_hash2);
	r->hash = xmalloc((m->mi_nblocks ? m->mi_nblocks : 1) * sizeof *r->hash);
	r->dctx = ZSTD_createDCtx();
	if (!r->dctx)
		return snprintf(r->err, sizeof r->err, "out of memory"), -1;
	for (uint64_t b = 0; b < m->mi_nblocks; b++)
		r->hash[b] = r->zero_hash;
	if ((r->vdi_fd = open(m->mi_path, O_RDWR | O_CLOEXEC)) < 0)
		return snprintf(r->err, sizeof r->err, "%.300s: %s", m->mi_path, strerror(errno)), -1;
	return 0;
}

void *mirror_recv_thread(void *arg)
{
	struct mirror *m = arg;
	struct agent *ag = m->mi_ag;
	int slot = m->mi_slot;
	struct mrecv *r = xcalloc(1, sizeof *r);
	r->m = m;
	r->fd = r->vdi_fd = -1;
	if (setup(r) || accept_source(r) || handshake(r) || receive(r) || after_final(r)) {
		mirror_fail(m, "%s", r->err[0] ? r->err : "failed");
	} else {
		mirror_set_state(m, MS_DONE);
		log_info("disk mirror %s in: done (%.1f MB on the wire; synced in %.0f ms after the hand-over)",
			 m->mi_id, (double)r->io.bytes_in / 1e6, m->mi_final_ms);
	}
	mirror_sock_set(m, -1);
	if (r->ssl) {
		SSL_shutdown(r->ssl);
		SSL_free(r->ssl);
	}
	if (r->fd >= 0)
		close(r->fd);
	if (r->vdi_fd >= 0)
		close(r->vdi_fd);
	mig_buf_free(&r->in);
	mig_buf_free(&r->data);
	ZSTD_freeDCtx(r->dctx);
	free(r->hash);
	free(r);
	agent_flight_leave(&ag->ag_flights, slot);
	mirror_unref(m);
	return NULL;
}
