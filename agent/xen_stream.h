/*
 * xen_stream.h - carrying libxl's migration stream inside our migration
 * connection (mig.h's framing, struct mig_io), optionally zstd-compressed.
 *
 * libxl writes its stream (libxl_domain_suspend) to one end of a
 * socketpair; xen_pump_send reads the other end in batches of up to
 * XEN_PUMP_BATCH bytes and writes each batch as one XEN_REC_STREAM record
 * (one flushed chunk of a per-connection zstd stream when compressing).
 * xen_pump_receive does the reverse into the socketpair that feeds
 * libxl_domain_create_restore. The stream's end is an empty record with
 * XEN_F_END. No Xen headers here: the pumps are tested against recorded
 * streams over plain fds (tests/unit/test_xen_stream.c).
 *
 * Also the record I/O mig_xen.c speaks (mig.c keeps its own static).
 */
#ifndef XEN_STREAM_H
#define XEN_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mig.h"

/* Record types of the xen migration, numbered far from mig.h's enum so the
 * two never collide: payload = struct xen_chunk + data (raw, or one flushed
 * zstd chunk with MIG_F_COMPRESSED). */
#define XEN_REC_STREAM 0x100u
#define XEN_F_END 0x100u /* the last record of libxl's stream: no payload */

#define XEN_PUMP_BATCH (2u << 20) /* raw bytes per record at most */
#define XEN_PUMP_IDLE_MS 5	   /* a partial batch waits this long for more */

struct xen_chunk {
	uint64_t xc_raw_len; /* bytes once decompressed */
};

struct xen_pump_stats {
	uint64_t xp_raw;	/* libxl's bytes */
	uint64_t xp_payload;	/* the same as sent (compressed or not) */
	uint64_t xp_records;
};

/* Progress during xen_pump_send: called after each record. */
typedef void (*xen_pump_progress_fn)(const struct xen_pump_stats *st, void *arg);

/* Record I/O on a struct mig_io: mig_io_write, mig_read_rec, ... in mig.h. */

/* ---- pumps ---- */
/* fd -> io until EOF on fd (not sending the end marker: the caller knows
 * whether libxl succeeded). level 0 = no compression. A record from the
 * peer mid-stream (its ERROR) stops the pump with that reason. 0 or -1. */
int xen_pump_send(int fd, struct mig_io *io, int level, struct xen_pump_stats *st,
		  xen_pump_progress_fn progress, void *parg, char *err, size_t errlen);
/* Send the end marker after xen_pump_send returned 0 and libxl succeeded. */
int xen_pump_send_end(struct mig_io *io, char *err, size_t errlen);
/* io -> fd until the end marker; compressed records need compress = true
 * (negotiated in CONFIG). A write to fd failing (libxl stopped reading)
 * is an error naming it. 0 or -1. */
int xen_pump_receive(struct mig_io *io, int fd, bool compress, struct xen_pump_stats *st, char *err,
		     size_t errlen);

#endif
