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

#define HDRS (sizeof(struct mig_rec_hdr) + sizeof(struct xen_chunk))

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- record I/O ---- */

void xen_io_set_timeout(struct mig_io *io, int ms)
{
	io->timeout_ms = ms > 0 ? ms : 60000;
	struct timeval tv = {.tv_sec = io->timeout_ms / 1000, .tv_usec = (io->timeout_ms % 1000) * 1000};
	(void)setsockopt(io->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	(void)setsockopt(io->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static const char *ssl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	if (!e)
		return errno ? strerror(errno) : "connection closed";
	ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

static int raw_write(struct mig_io *io, const void *buf, size_t len, char *err, size_t errlen)
{
	const char *p = buf;
	while (len > 0) {
		size_t done = 0;
		if (io->ssl) {
			errno = 0;
			if (SSL_write_ex(io->ssl, p, len, &done) <= 0) {
				char b[160];
				int e = SSL_get_error(io->ssl, 0);
				seterr(err, errlen, "connection lost while sending: %s",
				       e == SSL_ERROR_SYSCALL && errno == EAGAIN ? "timed out" : ssl_reason(b, sizeof b));
				return -1;
			}
		} else {
			ssize_t n = send(io->fd, p, len, MSG_NOSIGNAL);
			if (n < 0 && errno == ENOTSOCK)
				n = write(io->fd, p, len);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				seterr(err, errlen, "connection lost while sending: %s",
				       errno == EAGAIN ? "timed out" : strerror(errno));
				return -1;
			}
			done = (size_t)n;
		}
		p += done;
		len -= done;
		io->bytes_out += done;
	}
	return 0;
}

int xen_io_write(struct mig_io *io, const void *buf, size_t len, char *err, size_t errlen)
{
	if (io->cut_after_bytes && io->bytes_out + len > io->cut_after_bytes) {
		size_t part = (size_t)(io->cut_after_bytes - io->bytes_out);
		if (part)
			(void)raw_write(io, buf, part, NULL, 0);
		shutdown(io->fd, SHUT_RDWR);
		seterr(err, errlen, "connection cut after %" PRIu64 " bytes (fault injection)", io->cut_after_bytes);
		return -1;
	}
	return raw_write(io, buf, len, err, errlen);
}

int xen_io_read(struct mig_io *io, void *buf, size_t len, char *err, size_t errlen)
{
	char *p = buf;
	while (len > 0) {
		size_t done = 0;
		if (io->ssl) {
			errno = 0;
			if (SSL_read_ex(io->ssl, p, len, &done) <= 0) {
				char b[160];
				int e = SSL_get_error(io->ssl, 0);
				if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0))
					seterr(err, errlen, "the peer closed the connection");
				else
					seterr(err, errlen, "connection lost while receiving: %s",
					       e == SSL_ERROR_SYSCALL && errno == EAGAIN ? "timed out"
											 : ssl_reason(b, sizeof b));
				return -1;
			}
		} else {
			ssize_t n = read(io->fd, p, len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0) {
				seterr(err, errlen, "the peer closed the connection");
				return -1;
			}
			if (n < 0) {
				seterr(err, errlen, "connection lost while receiving: %s",
				       errno == EAGAIN ? "timed out" : strerror(errno));
				return -1;
			}
			done = (size_t)n;
		}
		p += done;
		len -= done;
		io->bytes_in += done;
	}
	return 0;
}

bool xen_io_readable(struct mig_io *io)
{
	if (io->ssl && SSL_pending(io->ssl) > 0)
		return true;
	struct pollfd pf = {.fd = io->fd, .events = POLLIN};
	return poll(&pf, 1, 0) > 0;
}

int xen_send_rec(struct mig_io *io, uint32_t type, uint32_t flags, const void *payload, size_t len, char *err,
		 size_t errlen)
{
	size_t tot = sizeof(struct mig_rec_hdr) + len;
	unsigned char stackbuf[1024];
	unsigned char *b = tot <= sizeof stackbuf ? stackbuf : malloc(tot);
	if (!b) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	struct mig_rec_hdr h = {.rh_type = type, .rh_flags = flags, .rh_len = len};
	memcpy(b, &h, sizeof h);
	if (len)
		memcpy(b + sizeof h, payload, len);
	int rc = xen_io_write(io, b, tot, err, errlen);
	if (b != stackbuf)
		free(b);
	return rc;
}

int xen_send_text(struct mig_io *io, uint32_t type, const char *msg)
{
	return xen_send_rec(io, type, 0, msg, strlen(msg), NULL, 0);
}

int xen_read_rec(struct mig_io *io, struct mig_rec_hdr *h, unsigned char **buf, size_t *cap, const char *who,
		 char *err, size_t errlen)
{
	if (xen_io_read(io, h, sizeof *h, err, errlen) != 0)
		return -1;
	if (h->rh_len > MIG_MAX_PAYLOAD) {
		seterr(err, errlen, "malformed migration stream: record type %u of %" PRIu64 " bytes", h->rh_type,
		       h->rh_len);
		return -1;
	}
	size_t need = (size_t)h->rh_len + 1;
	if (need > *cap) {
		unsigned char *q = realloc(*buf, need);
		if (!q) {
			seterr(err, errlen, "out of memory");
			return -1;
		}
		*buf = q;
		*cap = need;
	}
	if (h->rh_len && xen_io_read(io, *buf, (size_t)h->rh_len, err, errlen) != 0)
		return -1;
	(*buf)[h->rh_len] = 0;
	if (h->rh_type == MIG_REC_ERROR || h->rh_type == MIG_REC_ABORT) {
		seterr(err, errlen, "%s: %s", who, (char *)*buf);
		return -1;
	}
	return 0;
}

int xen_expect_rec(struct mig_io *io, uint32_t type, size_t min_len, unsigned char **buf, size_t *cap,
		   const char *who, char *err, size_t errlen)
{
	struct mig_rec_hdr h;
	if (xen_read_rec(io, &h, buf, cap, who, err, errlen) != 0)
		return -1;
	if (h.rh_type != type || h.rh_len < min_len) {
		seterr(err, errlen, "malformed migration stream: expected record type %u, got %u (%" PRIu64 " bytes)",
		       type, h.rh_type, h.rh_len);
		return -1;
	}
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void xen_refuse(struct mig_io *io, const char *msg)
{
	if (xen_send_text(io, MIG_REC_ERROR, msg) != 0)
		return;
	shutdown(io->fd, SHUT_WR);
	char junk[65536];
	uint64_t end = now_ms() + 500;
	struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
	(void)setsockopt(io->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	while (now_ms() < end && read(io->fd, junk, sizeof junk) > 0)
		;
}

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
				seterr(p->err, p->errlen, "compression failed: %s", ZSTD_getErrorName(r));
				return -1;
			}
			if (r && out.pos == out.size) {
				seterr(p->err, p->errlen, "compression output overflow");
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
	if (xen_io_write(p->io, p->rec, HDRS + data_len, p->err, p->errlen) != 0)
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
	if (xen_read_rec(p->io, &h, &b, &cap, "the destination refused the migration", p->err, p->errlen) == 0)
		seterr(p->err, p->errlen, "malformed migration stream: unexpected record type %u from the destination",
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
	P.rec = malloc(P.rec_cap);
	if (level > 0) {
		P.raw = malloc(XEN_PUMP_BATCH);
		P.cctx = ZSTD_createCCtx();
		if (P.cctx)
			ZSTD_CCtx_setParameter(P.cctx, ZSTD_c_compressionLevel, level);
	} else {
		P.raw = P.rec ? P.rec + HDRS : NULL;
	}
	if (!P.rec || !P.raw || (level > 0 && !P.cctx)) {
		seterr(err, errlen, "out of memory for the migration buffers");
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
			seterr(err, errlen, "poll: %s", strerror(errno));
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
			seterr(err, errlen, "reading libxl's stream: %s", strerror(errno));
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
	return xen_send_rec(io, XEN_REC_STREAM, XEN_F_END, NULL, 0, err, errlen);
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
			seterr(err, errlen, "libxl stopped reading the stream (%s): the restore failed",
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
		raw = malloc(XEN_PUMP_BATCH);
	int rc = -1;
	if (compress && (!dctx || !raw)) {
		seterr(err, errlen, "out of memory for the migration buffers");
		goto out;
	}
	for (;;) {
		struct mig_rec_hdr h;
		if (xen_read_rec(io, &h, &b, &cap, "the source aborted", err, errlen) != 0)
			goto out;
		if (h.rh_type != XEN_REC_STREAM) {
			seterr(err, errlen, "malformed migration stream: record type %u inside libxl's stream",
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
				seterr(err, errlen, "compressed stream but compression was not negotiated");
				goto out;
			}
			ZSTD_inBuffer in = {data, dlen, 0};
			ZSTD_outBuffer outb = {raw, (size_t)c.xc_raw_len, 0};
			while (outb.pos < outb.size || in.pos < in.size) {
				size_t ip = in.pos, op = outb.pos;
				size_t z = ZSTD_decompressStream(dctx, &outb, &in);
				if (ZSTD_isError(z)) {
					seterr(err, errlen, "decompression failed: %s", ZSTD_getErrorName(z));
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
	seterr(err, errlen, "malformed migration stream: bad libxl stream record");
out:
	ZSTD_freeDCtx(dctx);
	free(raw);
	free(b);
	return rc;
}
