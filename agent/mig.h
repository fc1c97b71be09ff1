/*
 * mig.h - live migration between agents: the stream's records, the
 * connection, the stop rule, and the sim stream's entry points.
 *
 * One connection per migration (TLS in production, a plain fd in tests),
 * carrying framed records: struct mig_rec_hdr (type, flags, length) and
 * `length` bytes of payload, all integers little-endian (both hosts are
 * x86-64; the HELLO magic catches anything else).
 *
 * Conversation (S = source, mig_send; D = destination, mig_receive):
 *   S: HELLO(version)           D: HELLO(version) or ERROR naming both versions
 *   S: TOKEN, CONFIG            D: creates the paused empty domain (or takes
 *                                  the one prepared for it) and maps its RAM;
 *                                  ACCEPT or ERROR
 *   S: PAGES... ROUND_END        (pre-copy rounds, source running)
 *                               D: ROUND_ACK once it has read the round; the
 *                                  source waits for the last one before it
 *                                  pauses, so the stop-and-copy starts with
 *                                  an empty pipe (no socket backlog inside
 *                                  the downtime)
 *      ... after the stop rule: source paused, PAGES... ROUND_END (last),
 *      VCPU (guest CPU state), CHECKSUM (per-page hashes + digest)
 *                               D: checks the digest (and with verify every
 *                                  page's hash as received), READY or ERROR
 *   S: GO (point of no return)  D: unpauses, RUNNING
 * Either side may send ERROR (a message for a person) instead of the next
 * record and close; S may send ABORT before GO.
 *
 * Ownership (ARCHITECTURE.md "Migration: who owns the VM"): decided by the
 * state machine in mig_owner.h, for both streams. Before GO the source
 * owns the VM. Any failure before GO: mig_send unpauses the source (and
 * drops the auto-converge throttle) and returns MIG_FAILED; mig_receive
 * destroys the destination domain (nothing is left) and returns MIG_FAILED.
 * After GO a lost connection is ambiguous: mig_send returns MIG_AFTER_GO
 * with the source domain left PAUSED (never destroyed, never unpaused);
 * mig_receive unpauses on GO regardless, and if it cannot tell the source
 * (RUNNING not delivered) it still returns MIG_OK with res->running_sent
 * false. The caller (agent -> poold) then asks both sides and decides:
 * destination running => destroy the source; destination gone => unpause
 * the source. Never two running copies: the source only resumes before GO.
 *
 * Threads: mig_send and mig_receive block; run each on its own thread.
 * Senders of one process share a struct mig_gate (mig_opts.gate): while
 * one is in its stop-and-copy the others' pre-copy steps wait (up to
 * 100 ms), so a paused guest's last pages are not slowed by streams whose
 * guests still run. zstd contexts are per call. The struct backend is NOT
 * thread-safe: every backend call made here (map/unmap, pause/unpause,
 * throttle, create_restore, info, destroy) goes through the optional
 * struct mig_backend_lock, which must be the same lock the agent takes for
 * all its other calls on that backend. Guest memory itself is read
 * through the source's mapping and written through the destination's
 * memfd, without the lock.
 *
 * SIGPIPE: a peer that goes away makes write()/SSL_write raise SIGPIPE
 * unless the process ignores it; the agent (and the tests) must ignore it.
 *
 * Files: mig_io.c (connection, records, read buffer, HELLO), mig_policy.c
 * (stop rule, throttle, the stop-and-copy gate), mig_hash.c (page hashes),
 * mig_owner.c (who owns the VM, mig_owner.h); the sim stream: sim_send.c
 * and sim_recv.c (mig_send, mig_receive: their steps), sim_send_pages.c
 * and sim_recv_pages.c (their PAGES records), sim_ram.c (guest RAM through
 * its memfd), mig_handoff.c (the compressing sender's writer thread), all
 * sharing sim_mig.h; libxl's stream: mig_xen.c.
 */
#ifndef MIG_H
#define MIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

#include "backend.h"

#define MIG_PROTO_VERSION 2u /* 2: ROUND_ACK */
#define MIG_MAGIC 0x3147494du /* "MIG1" */
#define MIG_PAGE_SIZE 4096u
#define MIG_BATCH_PAGES 512u	       /* 2 MiB of raw pages per PAGES record */
#define MIG_MAX_PAYLOAD (64ull << 20) /* refuse larger records */
#define MIG_TOKEN_MAX 256

enum mig_rec_type {
	MIG_REC_HELLO = 1,  /* struct mig_hello */
	MIG_REC_TOKEN,	    /* the token's bytes */
	MIG_REC_CONFIG,	    /* struct mig_config */
	MIG_REC_ACCEPT,	    /* empty: D is ready for pages */
	MIG_REC_PAGES,	    /* struct mig_pages + u64 index[npages] + data */
	MIG_REC_ROUND_END,  /* struct mig_round_end */
	MIG_REC_VCPU,	    /* the guest section of struct simdom_shared */
	MIG_REC_CHECKSUM,   /* struct mig_checksum + u64 page_hash[npages] */
	MIG_REC_READY,	    /* struct mig_ready */
	MIG_REC_GO,	    /* empty: the point of no return */
	MIG_REC_RUNNING,    /* empty */
	MIG_REC_ERROR,	    /* a message for a person (not NUL-terminated) */
	MIG_REC_ABORT,	    /* S gives up before GO (payload: a message) */
	MIG_REC_ROUND_ACK,  /* D: struct mig_round_end of a pre-copy round, read through */
};

struct mig_rec_hdr {
	uint32_t rh_type;  /* enum mig_rec_type */
	uint32_t rh_flags; /* MIG_F_* */
	uint64_t rh_len;   /* payload bytes that follow */
};

#define MIG_F_COMPRESSED 1u /* PAGES: the data part is a zstd stream chunk */

struct mig_hello {
	uint32_t he_magic;   /* MIG_MAGIC */
	uint32_t he_version; /* MIG_PROTO_VERSION of the sender of this HELLO */
	char he_software[32];/* informative: the agent's software version */
};
/* The sim stream's HELLO goes on with what its end can do. Ends that came
 * before it send a bare struct mig_hello and ignore what follows one, so
 * the version stays 2: a feature is used when both HELLOs offer it. */
struct mig_hello_ext {
	uint32_t hx_features; /* MIG_FEAT_* */
	uint32_t hx_pad;
};
#define MIG_FEAT_HASH2 1u /* page hashes are mig_page_hash2 (else mig_page_hash) */

struct mig_config {
	uint64_t mc_npages;  /* RAM pages of the source domain */
	uint32_t mc_compress;/* PAGES records may be compressed */
	uint32_t mc_verify;  /* D checks every page's final content */
	struct be_domain_config mc_cfg;
};

/* PAGES: index[i] is a guest page number; MIG_PAGE_ZERO set = the page is
 * all zero and has no data. Data: the non-zero pages in index order, raw
 * (ps_raw_len bytes) or one flushed chunk of the connection's zstd stream. */
#define MIG_PAGE_ZERO (1ull << 63)
struct mig_pages {
	uint32_t ps_npages;
	uint32_t ps_pad;
	uint64_t ps_raw_len; /* bytes of non-zero page data once decompressed */
};

struct mig_round_end {
	uint32_t re_round;
	uint32_t re_last; /* 1: the source is paused, this was the final round */
};

struct mig_checksum {
	uint64_t ck_npages;
	uint64_t ck_digest; /* mig_digest over every page's mig_page_hash */
	/* followed by uint64_t hash[ck_npages]: the hash of each page as sent */
};

struct mig_ready {
	uint32_t rd_verified;	/* D compared every page with the sender's hash */
	uint32_t rd_pad;
	uint64_t rd_verify_ns;	/* what that cost D */
};

/* ---- mig_io.c: the connection, a TLS session (already handshaken) or a plain fd ---- */
struct mig_io {
	int fd;
	SSL *ssl;		  /* NULL: plain fd */
	uint64_t cut_after_bytes; /* fault injection: 0 = never; else the connection is
				   * shut down once this many bytes were written */
	int timeout_ms;		  /* per read/write wait; 0 = 60000 */
	uint64_t bytes_out, bytes_in;
	bool wbuffered;		  /* TLS records gather in a buffer BIO: flush after a write */
};
void mig_io_init_fd(struct mig_io *io, int fd);
/* fd = SSL_get_fd(ssl). Sets the session up for bulk transfer: TLS records
 * leave in writes of up to MIG_TLS_BUF bytes (a buffer BIO under the SSL,
 * flushed at the end of every mig_io_write) and arrive through reads of up
 * to as much (read-ahead into a bigger read buffer). OpenSSL alone makes a
 * write() per 16 KiB record and a read() per record, and a syscall is dear
 * on these machines (MACHINE.md). */
#define MIG_TLS_BUF (256u << 10)
void mig_io_init_ssl(struct mig_io *io, SSL *ssl);

/* ---- mig_io.c: framed records (both streams use them) ---- */
/* A one-line reason into err (NULL or errlen 0: dropped). */
void mig_seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void mig_io_set_timeout(struct mig_io *io, int ms);	/* 0 = 60000 */
int mig_io_write(struct mig_io *io, const void *buf, size_t len, char *err, size_t errlen);
int mig_io_read(struct mig_io *io, void *buf, size_t len, char *err, size_t errlen);
bool mig_io_readable(struct mig_io *io);		/* a read would not block */
int mig_send_rec(struct mig_io *io, uint32_t type, uint32_t flags, const void *payload, size_t len,
		 char *err, size_t errlen);
int mig_send_text(struct mig_io *io, uint32_t type, const char *msg);
/* What a read found: the record; a broken connection or a bad frame; or
 * the peer's own ERROR/ABORT (its message in err as "<who>: message"). */
enum { MIG_READ_OK = 0, MIG_READ_IO = -1, MIG_READ_PEER = -2 };
/* One record; its payload into *buf (realloc'ed, NUL-terminated one past
 * rh_len). Returns MIG_READ_*. */
int mig_read_rec(struct mig_io *io, struct mig_rec_hdr *h, unsigned char **buf, size_t *cap,
		 const char *who, char *err, size_t errlen);
int mig_expect_rec(struct mig_io *io, uint32_t type, size_t min_len, unsigned char **buf, size_t *cap,
		   const char *who, char *err, size_t errlen);
/* The two halves of mig_read_rec, for a reader that takes a record's
 * payload in pieces: the header (length checked), then (whole) payload. */
int mig_read_hdr(struct mig_io *io, struct mig_rec_hdr *h, char *err, size_t errlen);
int mig_read_payload(struct mig_io *io, const struct mig_rec_hdr *h, unsigned char **buf, size_t *cap,
		     const char *who, char *err, size_t errlen);

/* A buffer that grows to what the records need (freed by mig_buf_free). */
struct mig_buf {
	unsigned char *mb_p;
	size_t mb_cap;
};
int mig_buf_need(struct mig_buf *b, size_t n); /* 0, or -1: out of memory (b unchanged) */
void mig_buf_free(struct mig_buf *b);
/* The sim stream's HELLO: struct mig_hello and struct mig_hello_ext (bare:
 * without it, as ends before it). Reading one, *features is 0 from an end
 * that sent it bare. */
int mig_send_hello(struct mig_io *io, uint32_t version, uint32_t features, bool bare, char *err, size_t errlen);
int mig_expect_hello(struct mig_io *io, struct mig_buf *b, struct mig_hello *he, uint32_t *features,
		     const char *who, char *err, size_t errlen);
/* Fault in a fresh heap buffer's pages in one call (MADV_POPULATE_WRITE):
 * a page faulted in on first touch costs ~11 us here (MACHINE.md), so the
 * 2 MiB record buffers of one migration cost ~6 ms each that way and
 * ~0.5 ms this way. Best effort: a kernel without it faults as before. */
void mig_prefault(void *p, size_t len);
void *mig_malloc(size_t len);		 /* malloc + mig_prefault */
/* Send ERROR, stop writing, give the peer a moment to read it before the
 * socket closes under unread data. */
void mig_refuse(struct mig_io *io, const char *msg);
int64_t mig_now_ms(void); /* CLOCK_MONOTONIC */
/* A destination endpoint's first look at an accepted connection: the TLS
 * handshake (ctx: a pool certificate required; peer_cn, when not empty, the
 * one CN admitted: the source host's uuid) and a HELLO record, both by
 * the monotonic deadline (ms), however slowly they come. The SSL (the
 * socket blocking again, the HELLO still unread) and *version, the HELLO's
 * protocol version; NULL for anything else. */
SSL *mig_greet(SSL_CTX *ctx, int fd, int64_t deadline, const char *peer_cn, uint32_t *version);

/* ---- backend access ---- */
struct mig_backend_lock {
	void (*lock)(void *arg);
	void (*unlock)(void *arg);
	void *arg;
};
static inline void mig_lock(const struct mig_backend_lock *lk)
{
	if (lk && lk->lock)
		lk->lock(lk->arg);
}
static inline void mig_unlock(const struct mig_backend_lock *lk)
{
	if (lk && lk->unlock)
		lk->unlock(lk->arg);
}

/* ---- mig_policy.c: the stop rule and the throttle (pure), the stop-and-copy gate ---- */
struct mig_round_stats {
	int rs_round;		 /* 1.. */
	uint64_t rs_pages_sent;	 /* pages sent in this round (zero markers included) */
	uint64_t rs_wire_bytes;	 /* bytes written for this round */
	uint64_t rs_ns;		 /* duration of the round */
	uint64_t rs_dirty_after; /* pages found dirty when the round ended */
	int rs_throttle_pct;	 /* throttle in force during the round */
};

/* Senders of one process in their stop-and-copy (guest paused). While one
 * is, the others' pre-copy steps stand aside: a paused guest's last pages
 * get the CPU and the link instead of sharing them with streams whose
 * guests still run (an evacuation sends several VMs from one host at once,
 * and on few cores that sharing alone made downtimes of hundreds of ms).
 * Owned by whoever runs the senders (the agent); zeroed = nobody in it. */
struct mig_gate {
	int mg_final; /* senders in stop-and-copy (atomic) */
};
void mig_gate_enter(struct mig_gate *g);  /* this sender pauses its guest */
void mig_gate_leave(struct mig_gate *g);
/* Before a pre-copy step: wait while another sender is in its stop-and-copy
 * (at most 100 ms in all). NULL: no gate. */
void mig_gate_yield(struct mig_gate *g);

struct mig_opts {
	bool compress;
	int compress_level;	/* 0 = 1 */
	int compress_workers;	/* ZSTD_c_nbWorkers; 0 = compress on the calling thread */
	int max_downtime_ms;	/* 0 = 50 */
	int max_rounds;		/* 0 = 30 (counts pre-copy rounds) */
	bool verify;
	bool auto_converge;	/* raise the throttle when rounds stop shrinking (default on: see
				 * mig_opts_default) */
	int throttle_initial;	/* first step, percent (0 = 20) */
	int throttle_step;	/* then +step per round (0 = 10) */
	int throttle_max;	/* 0 = 99 */
	uint32_t proto_version;	/* 0 = MIG_PROTO_VERSION (tests set another) */
	bool legacy_hello;	/* tests: a bare HELLO, as senders before struct mig_hello_ext */
	int io_timeout_ms;	/* 0 = 60000 */
	int max_bandwidth_mb_s;	/* sender paces itself to this (MB = 1e6); 0 = no limit */
	struct mig_gate *gate;	/* shared with the process's other senders; NULL = none */
	bool unmap_later;	/* sim sender: unmap the guest's pages on a thread of their own,
				 * after mig_send returns (the agent answers sooner); off, the
				 * unmap is part of the call (benchmarks count its CPU) */
	/* Storage migration: the disks' last dirty blocks go inside this
	 * pause, not a second one. The sim sender calls it with wait=false
	 * once the source is paused (start them), and with wait=true after its
	 * last pages went (they are on the destination): 0, or -1 with a
	 * reason in err, and the migration fails before GO (the source
	 * resumes). NULL: no disks move. libxl's stream does not call it. */
	int (*paused_hook)(void *arg, bool wait, char *err, size_t errlen);
	void *paused_hook_arg;
};
void mig_opts_default(struct mig_opts *o);

enum mig_stop {
	MIG_CONTINUE = 0,
	MIG_STOP_DOWNTIME,   /* predicted final copy fits max_downtime_ms */
	MIG_STOP_MAX_ROUNDS,
	MIG_STOP_NO_PROGRESS,/* the dirty set stopped shrinking (with throttle maxed or off) */
};
const char *mig_stop_name(enum mig_stop s);

/* Pure: decide after round history[n-1]. The rate is the mean of all rounds
 * (wire bytes / time); predicted final copy = rs_dirty_after pages * the
 * wire bytes per page measured so far / rate. "Not shrinking": the dirty
 * set after each of the last 3 rounds >= 90% of the one before. */
enum mig_stop mig_should_stop(const struct mig_round_stats *history, int n,
			      const struct mig_opts *o);
/* Pure: the throttle for the next round. Raised (initial, then +step, up
 * to max) while the last two rounds did not shrink the dirty set by 10%
 * and the prediction does not fit; otherwise kept. */
int mig_next_throttle(const struct mig_round_stats *history, int n, const struct mig_opts *o);
/* Predicted final copy in ms after history[n-1] (for reports); -1 if unknown. */
double mig_predict_ms(const struct mig_round_stats *history, int n);

/* ---- sim_send.c, sim_recv.c: the sim stream ---- */
/* progress */
struct mig_progress {
	int pg_round;
	bool pg_paused;		 /* final round: the source is paused */
	uint64_t pg_bytes_sent;	 /* on the wire so far */
	uint64_t pg_pages_remaining; /* this round's pages not yet sent + dirty ones */
	uint64_t pg_npages;
	double pg_rate_mb_s;	 /* mean MB/s (1e6) so far */
	int pg_throttle_pct;	 /* auto-converge: 0 unless raised */
};
typedef void (*mig_progress_fn)(const struct mig_progress *p, void *arg);

/* results */
enum mig_rc { MIG_OK = 0, MIG_FAILED = -1, MIG_AFTER_GO = -2 };

struct mig_send_result {
	double total_ms;	/* HELLO .. RUNNING (or the failure) */
	double downtime_ms;	/* source paused -> RUNNING received */
	double verify_ms;	/* source's re-hash of all its pages after RUNNING (outside
				 * the downtime: the source copy stays paused until destroyed) */
	double dest_verify_ms;	/* destination's check before READY (inside the downtime: a
				 * compare of the hashes it took as pages landed) */
	double checksum_ms;	/* hashing pages as they were sent (spread over rounds) */
	/* downtime_ms split: the pause call, the last pages + vCPU + checksum
	 * sent, waiting for READY (both verifies run there), GO -> RUNNING
	 * (the destination's unpause) */
	double pause_ms, final_copy_ms, ready_wait_ms, go_running_ms;
	double setup_ms;	/* HELLO .. ACCEPT (the destination creates its domain) */
	double round1_ms;	/* the full copy: wire bytes of round 1 / this = stream rate */
	uint64_t round1_bytes;
	int rounds;		/* pre-copy rounds + the final one */
	enum mig_stop stop;
	uint64_t pages_sent, zero_pages;
	uint64_t bytes_raw;	/* non-zero page data before compression */
	uint64_t bytes_compressed; /* the same after compression (= raw when off) */
	uint64_t wire_bytes;	/* everything written */
	int throttle_pct;	/* highest auto-converge throttle used */
	bool hash2;		/* pages hashed with mig_page_hash2 (both ends offered it) */
	bool verified;		/* with verify: both sides checked every page. MIG_OK with
				 * verify on and verified false: the source found pages that
				 * changed after they were sent (err says which); the VM runs
				 * on the destination, the caller reports the failure */
};

struct mig_recv_opts {
	const char *token;	/* expected (compared in constant time) */
	uint32_t proto_version;	/* 0 = MIG_PROTO_VERSION */
	bool legacy_hello;	/* tests: a bare HELLO, as receivers before struct mig_hello_ext */
	bool verify;		/* check every page even if the sender does not ask */
	int io_timeout_ms;
	/* told the domid as soon as the destination domain exists (the agent
	 * records it for cleanup/reports); may be NULL */
	void (*on_created)(int domid, void *arg);
	void *arg;
	/* a domain prepared for this migration before the stream (created paused
	 * and empty with bo_domain_create_restore, so the stream does not wait
	 * for it); 0 = create it when CONFIG arrives. Either way it belongs to the
	 * migration: destroyed on any failure before GO. */
	int domid;
};

struct mig_recv_result {
	int domid;		/* the running destination domain (MIG_OK), else -1 */
	uint64_t pages, zero_pages, wire_bytes;
	double verify_ms;
	bool verified;
	bool running_sent;	/* RUNNING reached the socket (after GO) */
	bool hash2;		/* pages hashed with mig_page_hash2 */
	char uuid[BE_UUID_LEN];
};

/* Blocking. cfg is the domain's configuration as the source agent knows it
 * (uuid, memory, workload...). err gets a one-line reason a person can act
 * on. Returns enum mig_rc. */
int mig_send(struct mig_io *io, struct backend *be, const struct mig_backend_lock *lk, int domid,
	     const struct be_domain_config *cfg, const char *token, const struct mig_opts *opts,
	     mig_progress_fn progress, void *progress_arg, struct mig_send_result *res, char *err,
	     size_t errlen);

int mig_receive(struct mig_io *io, struct backend *be, const struct mig_backend_lock *lk,
		const struct mig_recv_opts *opts, struct mig_recv_result *res, char *err,
		size_t errlen);

/* ---- mig_hash.c ---- */
/* The page hashes CHECKSUM carries. mig_page_hash: 64-bit, xxh64-style,
 * four lanes of 64-bit multiplies in series (~14 GB/s here), what ends
 * without MIG_FEAT_HASH2 use. mig_page_hash2: eight lanes of 32x32-bit
 * multiply-accumulate over each 64-byte stripe with a per-stripe key, the
 * lanes scrambled every KiB, then folded and avalanched; the same value
 * from its AVX2 (~43 GB/s here), SSE2 (~15) and portable (~5) forms,
 * mig_page_hash2 taking the widest the CPU has. */
uint64_t mig_page_hash(const void *page);
uint64_t mig_page_hash2(const void *page);
uint64_t mig_page_hash2_portable(const void *page);
#if defined(__x86_64__)
uint64_t mig_page_hash2_sse2(const void *page);
uint64_t mig_page_hash2_avx2(const void *page); /* only where the CPU has AVX2 */
#endif
typedef uint64_t (*mig_hash_fn)(const void *page);
/* The digest over a hash array, and the zero-page test. */
uint64_t mig_digest(const uint64_t *hash, uint64_t n);
bool mig_page_is_zero(const void *page);

#endif
