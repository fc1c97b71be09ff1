/*
 * sim_mig.h - what the sim stream's two ends share besides mig.h: the
 * PAGES record's layout limits and guest RAM through the domain's memfd
 * (sim_ram.c).
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

#include "backend.h"
#include "mig.h"

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

#endif
