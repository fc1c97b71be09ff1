/*
 * mirror_ops.h - storage migration's block mirror between two agents:
 * the records on its connection and one mirror's state, shared by
 * mirror_ops.c (the agent methods, the registry, the pause hook),
 * mirror_send.c (the source's thread) and mirror_recv.c (the
 * destination's). sr/mirror.h has the pure parts (dirty blocks, hashes,
 * the stop rule).
 *
 * One mutual-TLS connection per VDI, source to destination, the memory
 * stream's framing (mig.h: struct mig_rec_hdr, HELLO, TOKEN, ACCEPT,
 * ERROR, ABORT). Conversation (S source, D destination):
 *   S: HELLO(MIRROR_PROTO_VERSION)  D: HELLO, or ERROR naming both versions
 *   S: TOKEN, INFO                  D: ACCEPT (the VDI it made has INFO's size)
 *   S: BLOCKS... ROUND_END(0)       the snapshot's data blocks (holes and zero
 *                                   blocks are not sent)
 *                                   D: ROUND_ACK once they are written
 *   S: BLOCKS... ROUND_END(n)       round n: the blocks the guest wrote since
 *                                   (read from the live disk; a block read as
 *                                   zeros goes as a ZERO marker); D: ROUND_ACK
 *   ... ready: small rounds until the memory migration pauses the guest
 *   S: BLOCKS... ROUND_END(last) FINAL(digest of what it sent)
 *                                   D: compares its own digest of what it
 *                                   wrote: DONE(digest), or ERROR; then it
 *                                   syncs the VDI (after the hand-over, out
 *                                   of the pause: the page cache serves the
 *                                   VM meanwhile), and only then says done -
 *                                   poold removes the source disks after that
 * Either side may send ERROR (a message for a person) and close.
 */
#ifndef MIRROR_OPS_H
#define MIRROR_OPS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <openssl/ssl.h>
#include <zstd.h>

#include "agent.h"
#include "mig.h"
#include "mirror.h"
#include "sr.h"

#define MIRROR_PROTO_VERSION 0x101u /* never a memory stream's version: each refuses the other */
#define MIRROR_BATCH_BLOCKS 32u	    /* data blocks per BLOCKS record: 2 MiB */

enum mirror_rec_type {
	MIRROR_REC_INFO = 64, /* struct mirror_info */
	MIRROR_REC_BLOCKS,    /* struct mirror_blocks + u64 index[mb_n] + data */
	MIRROR_REC_ROUND_END, /* struct mirror_round_end */
	MIRROR_REC_ROUND_ACK, /* struct mirror_round_end, from D */
	MIRROR_REC_FINAL,     /* struct mirror_final, from S */
	MIRROR_REC_DONE,      /* struct mirror_final, from D */
};

struct mirror_info {
	uint64_t mi_size;   /* the disk's bytes */
	uint32_t mi_block;  /* MIRROR_BLOCK */
	uint32_t mi_pad;
};

/* index[i]: a block number; MIRROR_IDX_ZERO set = it is all zero, no data.
 * Data: the other blocks in index order, MIRROR_BLOCK bytes each (the
 * disk's last block: what is left of it), raw or one zstd frame. */
#define MIRROR_IDX_ZERO (1ull << 63)
#define MIRROR_F_COMPRESSED 1u
struct mirror_blocks {
	uint32_t mb_n;
	uint32_t mb_pad;
	uint64_t mb_raw_len; /* data bytes before compression */
};

struct mirror_round_end {
	uint32_t re_round;
	uint32_t re_last; /* MIRROR_END_* */
};
#define MIRROR_END_ROUND 0u /* D: ROUND_ACK once written */
#define MIRROR_END_LAST 1u  /* the last round: FINAL follows, no ACK */

struct mirror_final {
	uint64_t mf_nblocks;
	uint64_t mf_digest; /* mirror_digest over every block's hash */
	uint64_t mf_sync_ns; /* D: what its fdatasync cost */
};

enum mirror_state {
	MS_SNAPSHOT, /* S: the log cleared, the snapshot being made */
	MS_COPY,     /* S: the snapshot's data going out; D: receiving */
	MS_ROUNDS,   /* S: rounds of the blocks written meanwhile */
	MS_READY,    /* S: what is left fits the pause: small rounds until it */
	MS_FINAL,    /* S: the guest is paused, the last round goes */
	MS_HANDED,   /* S: the last round is on D; waiting for the memory migration's end */
	MS_DONE,     /* finished (S: verified when asked) */
	MS_FAILED,
};
const char *mirror_state_name(enum mirror_state s);

enum mirror_role { MR_SEND, MR_RECV };

/* One mirror, on either end; found by its id (the destination VDI's uuid)
 * in the agent's list. The thread and the list each hold a reference. */
struct mirror {
	struct mirror *mi_next;
	struct agent *mi_ag;
	enum mirror_role mi_role;
	int mi_refs;
	char mi_id[BE_UUID_LEN];
	char mi_vm[BE_UUID_LEN];
	/* the call */
	const struct sr_driver *mi_drv;
	struct sr *mi_sr;
	char mi_sr_uuid[BE_UUID_LEN], mi_vdi[BE_UUID_LEN], mi_snap[BE_UUID_LEN];
	char mi_path[SR_LOCATION_MAX]; /* S: the live disk; D: the VDI made */
	char mi_addr[64], mi_peer[BE_UUID_LEN], mi_token[MIG_TOKEN_MAX];
	int mi_port, mi_lfd, mi_domid, mi_slot;
	int mi_sock;		/* its connection (under mi_mu), -1 when none */
	bool mi_compress, mi_verify;
	int mi_bandwidth_mb_s; /* S paces itself (0: no limit) */
	struct mirror_policy mi_policy;
	/* the state, under mi_mu (mi_cv: final, handed over, cancel, done) */
	pthread_mutex_t mi_mu;
	pthread_cond_t mi_cv;
	enum mirror_state mi_state;
	bool mi_final_req, mi_final_done, mi_after_go, mi_go_told, mi_cancel;
	int mi_final_rc;
	char mi_err[512];
	/* figures (under mi_mu) */
	uint64_t mi_size, mi_nblocks;
	uint64_t mi_total, mi_copied;	 /* S: the snapshot's data bytes, sent so far */
	uint64_t mi_sent, mi_wire;	 /* data bytes sent in all, bytes on the wire */
	uint64_t mi_dirty;		 /* bytes the log held after the last round */
	int mi_round;
	double mi_rate_mb_s, mi_snapshot_ms, mi_copy_ms, mi_final_ms, mi_verify_ms;
	uint64_t mi_final_bytes;
	int mi_verified;		 /* -1 not asked or not yet, 0 failed, 1 equal */
	uint64_t mi_snap_virtual, mi_snap_phys;
	char mi_snap_location[SR_LOCATION_MAX];
	const char *mi_stop;
};

/* ---- mirror_ops.c ---- */
void mirror_unref(struct mirror *m);
/* Under the mirror's lock: its state and a failure's reason. */
void mirror_set_state(struct mirror *m, enum mirror_state st);
void mirror_fail(struct mirror *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool mirror_cancelled(struct mirror *m);
/* The thread's connection (-1: closed), so mirror_end can cut it. */
void mirror_sock_set(struct mirror *m, int fd);

/* ---- mirror_send.c, mirror_recv.c: the threads (each ends with mirror_unref) ---- */
void *mirror_send_thread(void *arg);
void *mirror_recv_thread(void *arg);

#endif
