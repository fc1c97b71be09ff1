/*
 * mirror.h - a block mirror's bookkeeping, for storage live migration:
 * which blocks of a disk changed (the dirty-block log the guest's datapath
 * keeps), where a sparse file holds data, a block's hash, and when the
 * copy rounds may stop (a pure rule).
 *
 * The mirror of one VDI (agent/mirror_send.c) copies a point-in-time
 * snapshot of the disk to the destination while the guest keeps writing,
 * then sends the blocks written meanwhile in rounds, each round taking
 * what the log marked since the last one. When a round leaves little
 * enough that the last one would fit the pause budget, the mirror is
 * *ready*: it keeps draining the log in small rounds until the VM's
 * memory migration pauses the guest, and the last round goes inside that
 * pause (ARCHITECTURE.md; docs/SXM.md).
 *
 * The log's layout is the sim domain's (agent/simdom.h): 1 bit per block,
 * bit b%64 of 64-bit word b/64, set with an atomic OR after the write
 * landed. A reader clears a word with an atomic exchange and only then
 * reads the blocks it named, so a block written after that is marked again
 * and sent again: nothing written is missed, whatever the interleaving.
 *
 * Conventions as sr.h: 0 or -1 with a one-line reason; nothing prints.
 */
#ifndef SR_MIRROR_H
#define SR_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIRROR_BLOCK (64u << 10) /* bytes per block: the log's unit and the copy's */
#define MIRROR_PAGE 4096u

/* Consecutive blocks [mr_first, mr_first + mr_count). */
struct mirror_run {
	uint64_t mr_first, mr_count;
};

/* A growing list of runs (zeroed = empty; mirror_runs_free). */
struct mirror_runs {
	struct mirror_run *mr_v;
	size_t mr_n, mr_cap;
};
void mirror_runs_free(struct mirror_runs *r);

/* Take every dirty block of log (nbits blocks tracked): each word is
 * cleared with an atomic exchange and its bits become runs appended to
 * out (adjacent blocks merged, a run at most max_run long). The number of
 * blocks taken, or -1 when out of memory (the bits taken so far are set
 * again, so nothing is lost). */
int64_t mirror_take_dirty(uint64_t *log, uint64_t nbits, uint64_t max_run, struct mirror_runs *out);
/* Any block marked (atomic loads; nothing is cleared)? */
bool mirror_any_dirty(const uint64_t *log, uint64_t nbits);
/* Put blocks [first, first + count) back into the log (a round that could
 * not send them). */
void mirror_mark(uint64_t *log, uint64_t nbits, uint64_t first, uint64_t count);

/* The next run of blocks holding data in fd at or after block b (of
 * nblocks): [*first, *end), rounded out to whole blocks; false when the
 * rest is a hole. A filesystem without SEEK_DATA counts as all data. */
bool mirror_next_data(int fd, uint64_t b, uint64_t nblocks, uint64_t *first, uint64_t *end);

/* A block's hash: the page hashes of its MIRROR_BLOCK bytes folded in
 * order, the bytes past len (a short last block) counted as zeros. Both
 * ends use it, so a block is equal on both when its hashes are. */
typedef uint64_t (*mirror_page_hash_fn)(const void *page);
uint64_t mirror_block_hash(const void *blk, size_t len, mirror_page_hash_fn page_hash);
/* The hash of an all-zero block (a hole). */
uint64_t mirror_zero_hash(mirror_page_hash_fn page_hash);
/* The digest over every block's hash (order matters). */
uint64_t mirror_digest(const uint64_t *hash, uint64_t n);
bool mirror_is_zero(const void *p, size_t len);

/* ---- the stop rule (pure) ---- */

/* One round of the copy: round 0 is the bulk copy of the snapshot. */
struct mirror_round {
	int mr_round;
	uint64_t mr_bytes;	 /* data bytes sent in it */
	uint64_t mr_ns;		 /* how long it took */
	uint64_t mr_dirty_after; /* bytes the log held when it ended */
};

struct mirror_policy {
	int mp_max_rounds; /* rounds after the bulk copy (0 = 8) */
	int mp_final_ms;   /* the last round's budget inside the pause (0 = 20) */
};

enum mirror_stop {
	MIRROR_CONTINUE = 0,
	MIRROR_STOP_SMALL,	 /* what is left would go within mp_final_ms */
	MIRROR_STOP_MAX_ROUNDS,
	MIRROR_STOP_NO_PROGRESS, /* the last 3 rounds did not shrink what is left by 10% */
};
const char *mirror_stop_name(enum mirror_stop s);
/* After history[n-1]: ready (the caller then only drains, round after
 * round, until the pause) or one more full round. The rate is every
 * round's bytes over their time; a round that moved nothing measures
 * nothing. */
enum mirror_stop mirror_should_stop(const struct mirror_round *history, int n, const struct mirror_policy *p);
/* Predicted ms of a last round sending history[n-1].mr_dirty_after bytes;
 * -1 when no rate is known yet. */
double mirror_predict_ms(const struct mirror_round *history, int n);

#endif
