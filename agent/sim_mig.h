/*
 * sim_mig.h - the sim stream's insides, shared by its files (mig.h is what
 * the rest of the agent sees): the PAGES record's limits, guest RAM
 * through the domain's memfd (sim_ram.c), the writer hand-off
 * (mig_handoff.c), and each end's state, split between its steps
 * (sim_send.c, sim_recv.c) and its PAGES records (sim_send_pages.c,
 * sim_recv_pages.c).
 *
 * The source reads guest RAM through its mapping (struct be_sim_map): the
 * pages it reads exist already, a fault maps 16 of them, and a page found
 * zero is never copied. Measured on 256 MiB of a populated memfd: through
 * a fresh mapping, faults and a hash of every page 42-53 ms, hashing alone
 * once mapped 20-26 ms; pread in 256 KiB pieces 44-63 ms, and 65-77 ms
 * with the hash. The destination writes with pwrite into the memfd, in
 * runs of consecutive pages: its pages are new, and a new page through a
 * mapping costs a fault (and on this virtualisation layer an exit) per
 * 4 KiB, far more than the copy (MACHINE.md: first touch 17-21 us).
 */
#ifndef SIM_MIG_H
#define SIM_MIG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <zstd.h>

#include "backend.h"
#include "mig.h"
#include "mig_owner.h"

#define SIM_PG MIG_PAGE_SIZE
/* A PAGES record: hdr | mig_pages | index[] | data. It carries at most
 * MIG_BATCH_PAGES pages of data and up to four times as many entries in
 * all: zero pages (a hole of the memfd is a run of them) cost an index
 * entry, not a record each. Receivers refuse more. */
#define SIM_REC_HDRS (sizeof(struct mig_rec_hdr) + sizeof(struct mig_pages))
#define SIM_REC_MAX_INDEX (MIG_BATCH_PAGES * 4)
/* Pages a sender puts in one uncompressed record, and a receiver's piece
 * of one: 256 KiB, so a record is read, checked, hashed and encrypted
 * while it stays in the core's cache (2 MiB records went through memory
 * between each of those steps). One TLS write buffer (MIG_TLS_BUF). */
#define SIM_PIECE_PAGES 64u

static inline uint64_t sim_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* This side's own failure: why, into err. */
static inline enum mo_event sim_fail(char *err, size_t errlen, const char *why)
{
	mig_seterr(err, errlen, "%s", why);
	return MO_EV_LOCAL_ERROR;
}

/* What a failed record read means for the ownership machine. */
static inline enum mo_event sim_read_event(int rc)
{
	return rc == MIG_READ_PEER ? MO_EV_PEER_ERROR : MO_EV_IO_ERROR;
}

/* ---- sim_ram.c ---- */
/* The next data extent of the memfd at or after page p: [*ds, *de) in
 * pages; false if none (the rest is a hole: zero pages never written). */
bool sim_ram_next_data(int fd, uint64_t p, uint64_t npages, uint64_t *ds, uint64_t *de);
/* Pages [p, p + n) from buf into the memfd, whole; -1 with errno. */
int sim_ram_pwrite(int fd, const void *buf, uint64_t p, uint64_t n);
/* Page p becomes zero and goes back to the host (a hole); -1 with errno. */
int sim_ram_punch(int fd, uint64_t p);
/* Hash every page of a mapped domain's RAM (holes hash as zero pages
 * without being read) and compare with want[]: the number of pages that
 * differ (the first into *bad). */
uint64_t sim_ram_verify(const struct be_sim_map *m, mig_hash_fn hash, const uint64_t *want, uint64_t zero_hash,
			uint64_t *bad);

/* ---- mig_handoff.c ----
 * A second stage on its own thread, one job at a time: the first thread
 * fills the job's fields, hands it over (mig_handoff_post, after
 * mig_handoff_wait), and touches those fields again only after
 * mig_handoff_wait. Without the thread (pthread_create failed) a job runs
 * at once on the caller's thread. */
struct mig_handoff {
	int (*ho_fn)(void *arg, char *err, size_t errlen); /* the job; 0 = done */
	void *ho_arg;
	pthread_t ho_th;
	bool ho_started, ho_busy, ho_stop, ho_failed;
	pthread_mutex_t ho_mu;
	pthread_cond_t ho_cv;
	char ho_err[256]; /* the first failed job's reason */
};
void mig_handoff_start(struct mig_handoff *h, int (*fn)(void *, char *, size_t), void *arg, const char *name);
/* Until the thread is idle; -1 (with the first failed job's reason) once a
 * job failed. */
int mig_handoff_wait(struct mig_handoff *h, char *err, size_t errlen);
/* Run the job whose fields the caller filled: on the thread, or here and
 * now without one. */
int mig_handoff_post(struct mig_handoff *h, char *err, size_t errlen);
/* The job in hand finishes, then the thread ends. */
void mig_handoff_stop(struct mig_handoff *h);

/* ---- sim_send.c, sim_send_pages.c: the source ---- */
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

/* One round of pages (round 1: all of them), then ROUND_END and, unless
 * last, its statistics into the history. */
enum mo_event sim_send_round(struct sim_sender *s, bool last);
/* One record from the destination (a ROUND_ACK is noted; anything else
 * ends the stream), and all it has sent so far. */
enum mo_event sim_send_peer_record(struct sim_sender *s);
enum mo_event sim_send_check_peer(struct sim_sender *s);
void sim_send_report(struct sim_sender *s, uint64_t remaining);
enum mo_event sim_send_buffers(struct sim_sender *s);
void sim_send_writer_start(struct sim_sender *s);
void sim_send_buffers_free(struct sim_sender *s);

/* ---- sim_recv.c, sim_recv_pages.c: the destination ---- */
struct sim_receiver {
	/* the call */
	struct mig_io *rv_io;
	struct backend *rv_be;
	const struct mig_backend_lock *rv_lk;
	struct mig_recv_opts rv_o;
	struct mig_recv_result *rv_res;
	char *rv_err;
	size_t rv_errlen;
	/* the migration */
	struct mig_config rv_mc;
	bool rv_verify;
	int rv_domid;	     /* the destination domain once this migration owns it, else -1 */
	struct be_sim_map rv_m;
	bool rv_mapped;
	int rv_pidfd;	     /* the domain's process (readable once it ended), or -1 */
	mig_hash_fn rv_hashfn; /* mig_page_hash2 when both ends offer it */
	uint64_t *rv_hash;   /* per page: the hash of what landed */
	uint64_t *rv_nonzero;/* bit per page: holds data */
	uint64_t rv_zero_hash;
	ZSTD_DCtx *rv_dctx;
	struct mig_buf rv_in;	 /* a whole record (all but an uncompressed PAGES) */
	struct mig_buf rv_index; /* a PAGES record's index */
	struct mig_buf rv_data;	 /* a piece of page data, or a record's decompressed data */
	bool rv_got_last, rv_got_vcpu;
	struct mig_ready rv_ready;
};

/* A PAGES record whose header was read: its index checked whole before
 * any page lands, then its pages. */
enum mo_event sim_recv_pages(struct sim_receiver *r, const struct mig_rec_hdr *h);

#endif
