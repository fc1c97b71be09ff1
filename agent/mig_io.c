/*
 * mig_io.c - a migration connection (struct mig_io: a TLS session or a
 * plain fd, set up for bulk transfer) and the framed records on it, shared
 * by the sim stream (sim_send.c, sim_recv.c) and libxl's (mig_xen.c,
 * xen_stream.c); the buffers records are read into. See mig.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>

#include "mig.h"
#include "tls.h"
#include "util.h"

void mig_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}


/* Records are written whole and answered (HELLO, CONFIG, READY, GO): Nagle
 * would hold a small record back for a delayed ACK (40 ms on Linux). */
static void no_delay(int fd)
{
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails on AF_UNIX: fine */
}

void mig_io_init_fd(struct mig_io *io, int fd)
{
	memset(io, 0, sizeof *io);
	io->fd = fd;
	no_delay(fd);
}

void mig_io_init_ssl(struct mig_io *io, SSL *ssl)
{
	memset(io, 0, sizeof *io);
	io->ssl = ssl;
	io->fd = SSL_get_fd(ssl);
	SSL_set_read_ahead(ssl, 1); /* one read() per many TLS records */
	SSL_set_default_read_buffer_len(ssl, MIG_TLS_BUF);
	(void)SSL_free_buffers(ssl); /* the next read allocates the bigger buffer (unless
				      * data is pending already: then it keeps the small one) */
	BIO *sock = SSL_get_wbio(ssl), *f = BIO_new(BIO_f_buffer());
	if (sock && f && BIO_set_write_buffer_size(f, MIG_TLS_BUF) == 1 && BIO_up_ref(sock) == 1) {
		BIO_push(f, sock);
		SSL_set0_wbio(ssl, f); /* the SSL owns the chain; sock keeps its read reference */
		io->wbuffered = true;
	} else {
		BIO_free(f);
	}
	no_delay(io->fd);
}

void mig_io_set_timeout(struct mig_io *io, int ms)
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
				mig_seterr(err, errlen, "connection lost while sending: %s",
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
				mig_seterr(err, errlen, "connection lost while sending: %s",
				       errno == EAGAIN ? "timed out" : strerror(errno));
				return -1;
			}
			done = (size_t)n;
		}
		p += done;
		len -= done;
		io->bytes_out += done;
	}
	if (io->ssl && io->wbuffered) {
		errno = 0;
		if (BIO_flush(SSL_get_wbio(io->ssl)) <= 0) {
			mig_seterr(err, errlen, "connection lost while sending: %s",
				   errno == EAGAIN ? "timed out" : errno ? strerror(errno) : "connection closed");
			return -1;
		}
	}
	return 0;
}

int mig_io_write(struct mig_io *io, const void *buf, size_t len, char *err, size_t errlen)
{
	if (io->cut_after_bytes && io->bytes_out + len > io->cut_after_bytes) {
		size_t part = (size_t)(io->cut_after_bytes - io->bytes_out);
		if (part)
			(void)raw_write(io, buf, part, NULL, 0);
		shutdown(io->fd, SHUT_RDWR);
		mig_seterr(err, errlen, "connection cut after %" PRIu64 " bytes (fault injection)", io->cut_after_bytes);
		return -1;
	}
	return raw_write(io, buf, len, err, errlen);
}

int mig_io_read(struct mig_io *io, void *buf, size_t len, char *err, size_t errlen)
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
					mig_seterr(err, errlen, "the peer closed the connection");
				else
					mig_seterr(err, errlen, "connection lost while receiving: %s",
					       e == SSL_ERROR_SYSCALL && errno == EAGAIN ? "timed out"
											 : ssl_reason(b, sizeof b));
				return -1;
			}
		} else {
			ssize_t n = read(io->fd, p, len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0) {
				mig_seterr(err, errlen, "the peer closed the connection");
				return -1;
			}
			if (n < 0) {
				mig_seterr(err, errlen, "connection lost while receiving: %s",
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

bool mig_io_readable(struct mig_io *io)
{
	if (io->ssl && SSL_pending(io->ssl) > 0)
		return true;
	struct pollfd pf = {.fd = io->fd, .events = POLLIN};
	return poll(&pf, 1, 0) > 0;
}

int mig_send_rec(struct mig_io *io, uint32_t type, uint32_t flags, const void *payload, size_t len, char *err,
		 size_t errlen)
{
	size_t tot = sizeof(struct mig_rec_hdr) + len;
	unsigned char stackbuf[1024];
	unsigned char *b = tot <= sizeof stackbuf ? stackbuf : xmalloc(tot);
	struct mig_rec_hdr h = {.rh_type = type, .rh_flags = flags, .rh_len = len};
	memcpy(b, &h, sizeof h);
	if (len)
		memcpy(b + sizeof h, payload, len);
	int rc = mig_io_write(io, b, tot, err, errlen);
	if (b != stackbuf)
		free(b);
	return rc;
}

int mig_send_text(struct mig_io *io, uint32_t type, const char *msg)
{
	return mig_send_rec(io, type, 0, msg, strlen(msg), NULL, 0);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

void mig_prefault(void *p, size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	if (!p || pg <= 0 || len < 16 * (size_t)pg)
		return;
	uintptr_t a = ((uintptr_t)p + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
	uintptr_t e = ((uintptr_t)p + len) & ~((uintptr_t)pg - 1);
	if (e > a)
		(void)madvise((void *)a, e - a, MADV_POPULATE_WRITE);
}

void *mig_malloc(size_t len)
{
	void *p = xmalloc(len);
	mig_prefault(p, len);
	return p;
}

/* Grow *buf to n bytes; a big jump is faulted in at once (mig_prefault). */
static int grow(unsigned char **buf, size_t *cap, size_t n)
{
	if (n <= *cap)
		return 0;
	unsigned char *q = xrealloc(*buf, n);
	if (n > *cap * 2) /* a jump: the bulk of it is fresh */
		mig_prefault(q, n);
	*buf = q;
	*cap = n;
	return 0;
}

int mig_buf_need(struct mig_buf *b, size_t n)
{
	return grow(&b->mb_p, &b->mb_cap, n);
}

void mig_buf_free(struct mig_buf *b)
{
	free(b->mb_p);
	b->mb_p = NULL;
	b->mb_cap = 0;
}

int mig_read_hdr(struct mig_io *io, struct mig_rec_hdr *h, char *err, size_t errlen)
{
	if (mig_io_read(io, h, sizeof *h, err, errlen) != 0)
		return MIG_READ_IO;
	if (h->rh_len > MIG_MAX_PAYLOAD) {
		mig_seterr(err, errlen, "malformed migration stream: record type %u of %" PRIu64 " bytes", h->rh_type,
		       h->rh_len);
		return MIG_READ_IO;
	}
	return MIG_READ_OK;
}

int mig_read_payload(struct mig_io *io, const struct mig_rec_hdr *h, unsigned char **buf, size_t *cap,
		     const char *who, char *err, size_t errlen)
{
	if (grow(buf, cap, (size_t)h->rh_len + 1) != 0) {
		mig_seterr(err, errlen, "out of memory");
		return MIG_READ_IO;
	}
	if (h->rh_len && mig_io_read(io, *buf, (size_t)h->rh_len, err, errlen) != 0)
		return MIG_READ_IO;
	(*buf)[h->rh_len] = 0;
	if (h->rh_type == MIG_REC_ERROR || h->rh_type == MIG_REC_ABORT) {
		mig_seterr(err, errlen, "%s: %s", who, (char *)*buf);
		return MIG_READ_PEER;
	}
	return MIG_READ_OK;
}

int mig_read_rec(struct mig_io *io, struct mig_rec_hdr *h, unsigned char **buf, size_t *cap, const char *who,
		 char *err, size_t errlen)
{
	int rc = mig_read_hdr(io, h, err, errlen);
	return rc != MIG_READ_OK ? rc : mig_read_payload(io, h, buf, cap, who, err, errlen);
}

int mig_expect_rec(struct mig_io *io, uint32_t type, size_t min_len, unsigned char **buf, size_t *cap,
		   const char *who, char *err, size_t errlen)
{
	struct mig_rec_hdr h;
	int rc = mig_read_rec(io, &h, buf, cap, who, err, errlen);
	if (rc != MIG_READ_OK)
		return rc;
	if (h.rh_type != type || h.rh_len < min_len) {
		mig_seterr(err, errlen, "malformed migration stream: expected record type %u, got %u (%" PRIu64 " bytes)",
		       type, h.rh_type, h.rh_len);
		return MIG_READ_IO;
	}
	return MIG_READ_OK;
}

/* ---- HELLO with what this end can do (struct mig_hello_ext) ---- */

int mig_send_hello(struct mig_io *io, uint32_t version, uint32_t features, bool bare, char *err, size_t errlen)
{
	unsigned char b[sizeof(struct mig_hello) + sizeof(struct mig_hello_ext)];
	struct mig_hello he = {.he_magic = MIG_MAGIC, .he_version = version};
	struct mig_hello_ext hx = {.hx_features = features};
	snprintf(he.he_software, sizeof he.he_software, "pool-agent");
	memcpy(b, &he, sizeof he);
	memcpy(b + sizeof he, &hx, sizeof hx);
	return mig_send_rec(io, MIG_REC_HELLO, 0, b, bare ? sizeof he : sizeof b, err, errlen);
}

int mig_expect_hello(struct mig_io *io, struct mig_buf *b, struct mig_hello *he, uint32_t *features,
		     const char *who, char *err, size_t errlen)
{
	/* a bare HELLO leaves the zeros after it: no features */
	size_t full = sizeof *he + sizeof(struct mig_hello_ext);
	if (mig_buf_need(b, full + 1) != 0) {
		mig_seterr(err, errlen, "out of memory");
		return MIG_READ_IO;
	}
	memset(b->mb_p, 0, full + 1);
	int rc = mig_expect_rec(io, MIG_REC_HELLO, sizeof *he, &b->mb_p, &b->mb_cap, who, err, errlen);
	if (rc != MIG_READ_OK)
		return rc;
	struct mig_hello_ext hx;
	memcpy(he, b->mb_p, sizeof *he);
	memcpy(&hx, b->mb_p + sizeof *he, sizeof hx);
	*features = hx.hx_features;
	return MIG_READ_OK;
}

int64_t mig_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mig_refuse(struct mig_io *io, const char *msg)
{
	if (mig_send_text(io, MIG_REC_ERROR, msg) != 0)
		return;
	shutdown(io->fd, SHUT_WR);
	char junk[65536];
	int64_t end = mig_now_ms() + 500;
	struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
	(void)setsockopt(io->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	while (mig_now_ms() < end && read(io->fd, junk, sizeof junk) > 0)
		;
}

/* ---- a destination endpoint's first look at a connection ---- */

/* Wait (until the monotonic deadline) for fd to be ready for what SSL wants. */
static bool mig_greet_wait(SSL *ssl, int rc, int fd, int64_t deadline)
{
	int e = SSL_get_error(ssl, rc);
	int64_t left = deadline - mig_now_ms();
	if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) || left <= 0)
		return false;
	struct pollfd p = {fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, 0};
	return poll(&p, 1, (int)left) == 1;
}

SSL *mig_greet(SSL_CTX *ctx, int fd, int64_t deadline, const char *peer_cn, uint32_t *version)
{
	SSL *ssl = SSL_new(ctx);
	int fl = fcntl(fd, F_GETFL);
	if (!ssl || fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || SSL_set_fd(ssl, fd) != 1 ||
	    (peer_cn && *peer_cn && tls_require_peer_cn(ssl, peer_cn) != 1))
		goto fail;
	int rc;
	while ((rc = SSL_accept(ssl)) != 1)
		if (!mig_greet_wait(ssl, rc, fd, deadline))
			goto fail;
	struct {
		struct mig_rec_hdr h;
		struct mig_hello he;
	} first;
	while ((rc = SSL_peek(ssl, &first, sizeof first)) <= 0)
		if (!mig_greet_wait(ssl, rc, fd, deadline))
			goto fail;
	/* a HELLO is written in one piece, so it arrives in one TLS record;
	 * it is bare or carries what its sender can do (mig_hello_ext) */
	bool len_ok = first.h.rh_len == sizeof first.he ||
		      first.h.rh_len == sizeof first.he + sizeof(struct mig_hello_ext);
	if (rc != (int)sizeof first || first.h.rh_type != MIG_REC_HELLO || !len_ok || first.he.he_magic != MIG_MAGIC ||
	    fcntl(fd, F_SETFL, fl) < 0)
		goto fail;
	*version = first.he.he_version;
	return ssl;
fail:
	ERR_clear_error();
	SSL_free(ssl);
	return NULL;
}
