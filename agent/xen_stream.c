/*
 * xen_stream.c - libxl's migration stream through our connection (see
 * xen_stream.h): record I/O, and the two pumps with optional zstd.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <zstd.h>

#include "xen_stream.h"
#include "util.h"

#define HDRS (sizeof(struct mig_rec_hdr) + sizeof(struct xen_chunk))


/* ---- sender pump ---- */

struct spump {
	struct mig_io *io;
	ZSTD_CCtx *cctx;
	unsigned char *rec; /* hdr | chunk | data (raw data is read straight here when not compressing) */
	size_t rec_cap;
	unsigned char *raw; /* the batch being filled */
	struct xen_pump_stats *st;
	char *err;
	size_t errlen;
};

static int spump_flush(struct spump *p, size_t fill)
{
	size_t data_len = fill;
	uint32_t flags = 0;
	if (p->cctx) {
		ZSTD_inBuffer in = {p->raw, fill, 0};
		ZSTD_outBuffer out = {p->rec + HDRS, p->rec_cap - HDRS, 0};
		size_t r;
		do {
			r = ZSTD_compressStream2(p->cctx, &out, &in, ZSTD_e_flush);
			if (ZSTD_isError(r)) {
				mig_seterr(p->err, p->errlen, "compression failed: %s", ZSTD_getErrorName(r));
				return -1;
			}
			if (r && out.pos == out.size) {
				mig_seterr(p->err, p->errlen, "compression output overflow");
				return -1;
			}
		} while (r != 0);
		data_len = out.pos;
		flags = MIG_F_COMPRESSED;
	}
	struct mig_rec_hdr h = {.rh_type = XEN_REC_STREAM, .rh_flags = flags,
				.rh_len = sizeof(struct xen_chunk) + data_len};
	struct xen_chunk c = {.xc_raw_len = fill};
	memcpy(p->rec, &h, sizeof h);
	memcpy(p->rec + sizeof h, &c, sizeof c);
	if (mig_io_write(p->io, p->rec, HDRS + data_len, p->err, p->errlen) != 0)
		return -1;
	p->st->xp_raw += fill;
	p->st->xp_payload += data_len;
	p->st->xp_records++;
	return 0;
}

/* The peer wrote something mid-stream: its ERROR, or a broken stream. */
static int peer_spoke(struct spump *p)
{
	struct mig_rec_hdr h;
	unsigned char *b = NULL;
	size_t cap = 0;
	if (mig_read_rec(p->io, &h, &b, &cap, "the destination refused the migration", p->err, p->errlen) == 0)
		mig_seterr(p->err, p->errlen, "malformed migration stream: unexpected record type %u from the destination",
		       h.rh_type);
	free(b);
	return -1;
}

int xen_pump_send(int fd, struct mig_io *io, int level, struct xen_pump_stats *st, xen_pump_progress_fn progress,
		  void *parg, char *err, size_t errlen)
{
	struct xen_pump_stats dummy = {0};
	struct spump P = {io, NULL, NULL, 0, NULL, st ? st : &dummy, err, errlen};
	int rc = -1;
	P.rec_cap = HDRS + (level > 0 ? ZSTD_compressBound(XEN_PUMP_BATCH) : XEN_PUMP_BATCH);
	P.rec = xmalloc(P.rec_cap);
	if (level > 0) {
		P.raw = xmalloc(XEN_PUMP_BATCH);
		P.cctx = ZSTD_createCCtx();
		if (P.cctx)
			ZSTD_CCtx_setParameter(P.cctx, ZSTD_c_compressionLevel, level);
	} else {
		P.raw = P.rec ? P.rec + HDRS : NULL;
	}
	if (!P.rec || !P.raw || (level > 0 && !P.cctx)) {
		mig_seterr(err, errlen, "out of memory for the migration buffers");
		goto out;
	}
	size_t fill = 0;
	for (;;) {
		struct pollfd pf[2] = {{.fd = fd, .events = POLLIN}, {.fd = io->fd, .events = POLLIN}};
		if (io->ssl && SSL_pending(io->ssl) > 0) {
			peer_spoke(&P);
			goto out;
		}
		int n = poll(pf, 2, fill ? XEN_PUMP_IDLE_MS : 1000);
		if (n < 0 && errno != EINTR) {
			mig_seterr(err, errlen, "poll: %s", strerror(errno));
			goto out;
		}
		if (n > 0 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			peer_spoke(&P);
			goto out;
		}
		if (n == 0 && fill) { /* libxl paused between writes: send what we have */
			if (spump_flush(&P, fill) != 0)
				goto out;
			fill = 0;
			if (progress)
				progress(P.st, parg);
			continue;
		}
		if (n <= 0 || !(pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		ssize_t r = read(fd, P.raw + fill, XEN_PUMP_BATCH - fill);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0) {
			mig_seterr(err, errlen, "reading libxl's stream: %s", strerror(errno));
			goto out;
		}
		fill += (size_t)r;
		if (fill == XEN_PUMP_BATCH || (r == 0 && fill)) {
			if (spump_flush(&P, fill) != 0)
				goto out;
			fill = 0;
			if (progress)
				progress(P.st, parg);
		}
		if (r == 0) {
			rc = 0;
			break;
		}
	}
out:
	ZSTD_freeCCtx(P.cctx);
	if (level > 0)
		free(P.raw);
	free(P.rec);
	return rc;
}

int xen_pump_send_end(struct mig_io *io, char *err, size_t errlen)
{
	return mig_send_rec(io, XEN_REC_STREAM, XEN_F_END, NULL, 0, err, errlen);
}

/* ---- receiver pump ---- */

static int write_all(int fd, const unsigned char *p, size_t len, char *err, size_t errlen)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			mig_seterr(err, errlen, "libxl stopped reading the stream (%s): the restore failed",
			       strerror(errno));
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int xen_pump_receive(struct mig_io *io, int fd, bool compress, struct xen_pump_stats *st, char *err,
		     size_t errlen)
{
	struct xen_pump_stats dummy = {0};
	if (!st)
		st = &dummy;
	unsigned char *b = NULL, *raw = NULL;
	size_t cap = 0;
	ZSTD_DCtx *dctx = compress ? ZSTD_createDCtx() : NULL;
	if (compress)
		raw = xmalloc(XEN_PUMP_BATCH);
	int rc = -1;
	if (compress && (!dctx || !raw)) {
		mig_seterr(err, errlen, "out of memory for the migration buffers");
		goto out;
	}
	for (;;) {
		struct mig_rec_hdr h;
		if (mig_read_rec(io, &h, &b, &cap, "the source aborted", err, errlen) != 0)
			goto out;
		if (h.rh_type != XEN_REC_STREAM) {
			mig_seterr(err, errlen, "malformed migration stream: record type %u inside libxl's stream",
			       h.rh_type);
			goto out;
		}
		if (h.rh_flags & XEN_F_END) {
			rc = 0;
			break;
		}
		struct xen_chunk c;
		if (h.rh_len < sizeof c)
			goto bad;
		memcpy(&c, b, sizeof c);
		const unsigned char *data = b + sizeof c;
		size_t dlen = (size_t)h.rh_len - sizeof c;
		if (c.xc_raw_len > XEN_PUMP_BATCH)
			goto bad;
		if (h.rh_flags & MIG_F_COMPRESSED) {
			if (!dctx) {
				mig_seterr(err, errlen, "compressed stream but compression was not negotiated");
				goto out;
			}
			ZSTD_inBuffer in = {data, dlen, 0};
			ZSTD_outBuffer outb = {raw, (size_t)c.xc_raw_len, 0};
			while (outb.pos < outb.size || in.pos < in.size) {
				size_t ip = in.pos, op = outb.pos;
				size_t z = ZSTD_decompressStream(dctx, &outb, &in);
				if (ZSTD_isError(z)) {
					mig_seterr(err, errlen, "decompression failed: %s", ZSTD_getErrorName(z));
					goto out;
				}
				if (in.pos == ip && outb.pos == op)
					break;
			}
			if (outb.pos != outb.size || in.pos != in.size)
				goto bad;
			data = raw;
			dlen = outb.pos;
		} else if (dlen != c.xc_raw_len) {
			goto bad;
		}
		if (write_all(fd, data, dlen, err, errlen) != 0)
			goto out;
		st->xp_raw += dlen;
		st->xp_payload += (size_t)h.rh_len - sizeof c;
		st->xp_records++;
	}
	goto out;
bad:
	mig_seterr(err, errlen, "malformed migration stream: bad libxl stream record");
out:
	ZSTD_freeDCtx(dctx);
	free(raw);
	free(b);
	return rc;
}
