/* test_xen_stream.c - libxl's migration stream through our connection
 * (agent/xen_stream.c), without Xen: a producer thread plays libxl's save
 * helper, writing a synthetic libxl-v2-shaped stream (libxl header,
 * LIBXC_CONTEXT, libxc image/domain headers, PAGE_DATA records of zero,
 * text and random pages, END) into a socketpair in irregular writes; the
 * sender pump carries it over a second socketpair (a plain-fd struct
 * mig_io) to the receiver pump, which feeds a consumer thread playing
 * libxl_domain_create_restore. The bytes must arrive identical, with and
 * without zstd, in batches; peers that disconnect, refuse, or stop
 * reading mid-stream must fail the pumps with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "mig.h"
#include "xen_stream.h"

#define MiB (1024u * 1024u)

/* ---- a libxl-shaped stream ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

struct buf {
	unsigned char *p;
	size_t len, cap;
};

static void put(struct buf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void put_be32(struct buf *b, uint32_t v)
{
	unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
			      (unsigned char)v};
	put(b, x, 4);
}

static void put_le(struct buf *b, uint64_t v, int n)
{
	for (int i = 0; i < n; i++) {
		unsigned char c = (unsigned char)(v >> (8 * i));
		put(b, &c, 1);
	}
}

/* npages guest pages in PAGE_DATA records of 512 */
static struct buf make_stream(unsigned npages)
{
	struct buf b = {0};
	put(&b, "LibxlFmt", 8); /* libxl v2 header: ident, version 2, options */
	put_be32(&b, 2);
	put_be32(&b, 0);
	put_le(&b, 1, 4); /* LIBXC_CONTEXT record, length 0: the libxc stream follows */
	put_le(&b, 0, 4);
	put_le(&b, ~0ull, 8); /* libxc image header: marker, "XENF", version 3, options */
	put_be32(&b, 0x58454e46);
	put_be32(&b, 3);
	put_le(&b, 0, 8);
	put_le(&b, 2, 4); /* domain header: x86 HVM, page shift 12, Xen 4.17 */
	put_le(&b, 12, 2);
	put_le(&b, 0, 2);
	put_le(&b, 4, 4);
	put_le(&b, 17, 4);
	static const char text[] = "The quick brown fox jumps over the lazy dog; libxl migrates domains. ";
	unsigned char page[4096];
	for (unsigned p = 0; p < npages; p += 512) {
		unsigned n = npages - p < 512 ? npages - p : 512;
		put_le(&b, 1, 4); /* PAGE_DATA */
		put_le(&b, 8 + (uint64_t)n * 8 + (uint64_t)n * 4096, 4);
		put_le(&b, n, 4);
		put_le(&b, 0, 4);
		for (unsigned i = 0; i < n; i++)
			put_le(&b, p + i, 8);
		for (unsigned i = 0; i < n; i++) {
			unsigned kind = (p + i) % 10;
			if (kind < 5)
				memset(page, 0, sizeof page);
			else if (kind < 8)
				for (size_t k = 0; k < sizeof page; k++)
					page[k] = (unsigned char)text[(k + p + i) % (sizeof text - 1)];
			else
				for (size_t k = 0; k < sizeof page; k += 8) {
					uint64_t r = rnd();
					memcpy(page + k, &r, 8);
				}
			put(&b, page, sizeof page);
		}
	}
	put_le(&b, 0, 8); /* libxc END */
	put_le(&b, 0, 8); /* libxl END */
	return b;
}

/* ---- the two libxl ends ---- */

struct producer {
	int fd;
	const unsigned char *data;
	size_t len;
	int writes;
};

static void *produce(void *arg)
{
	struct producer *p = arg;
	size_t off = 0;
	while (off < p->len) {
		size_t n = 1 + (size_t)(rnd() % (256 * 1024));
		if (n > p->len - off)
			n = p->len - off;
		ssize_t w = send(p->fd, p->data + off, n, MSG_NOSIGNAL);
		if (w <= 0)
			break; /* the pump went away */
		off += (size_t)w;
		if (++p->writes % 40 == 0) { /* libxl pauses between rounds */
			struct timespec ts = {0, 15 * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	close(p->fd);
	return NULL;
}

struct consumer {
	int fd;
	struct buf got;
	size_t stop_after; /* 0 = read to EOF; else close early (libxl failing) */
};

static void *consume(void *arg)
{
	struct consumer *c = arg;
	unsigned char tmp[65536];
	for (;;) {
		ssize_t n = read(c->fd, tmp, sizeof tmp);
		if (n <= 0)
			break;
		put(&c->got, tmp, (size_t)n);
		if (c->stop_after && c->got.len >= c->stop_after)
			break;
	}
	close(c->fd);
	return NULL;
}

struct receiver {
	struct mig_io io;
	int out;
	bool compress;
	bool refuse; /* on failure, refuse and close as mig_xen_receive does */
	int rc;
	struct xen_pump_stats st;
	char err[512];
};

static void *receive(void *arg)
{
	struct receiver *r = arg;
	r->rc = xen_pump_receive(&r->io, r->out, r->compress, &r->st, r->err, sizeof r->err);
	shutdown(r->out, SHUT_WR);
	if (r->rc != 0 && r->refuse) {
		mig_refuse(&r->io, r->err);
		close(r->io.fd);
	}
	return NULL;
}

static int progress_calls;
static void on_progress(const struct xen_pump_stats *st, void *arg)
{
	(void)st;
	(void)arg;
	progress_calls++;
}

static void pipeline(int level, unsigned npages)
{
	struct buf s = make_stream(npages);
	int a[2], b[2], c[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, c), 0);
	struct producer pr = {a[1], s.p, s.len, 0};
	struct consumer co = {b[1], {0}, 0};
	struct receiver rv = {.out = b[0], .compress = level > 0};
	mig_io_init_fd(&rv.io, c[1]);
	pthread_t tp, tc, tr;
	pthread_create(&tp, NULL, produce, &pr);
	pthread_create(&tc, NULL, consume, &co);
	pthread_create(&tr, NULL, receive, &rv);
	struct mig_io io;
	mig_io_init_fd(&io, c[0]);
	struct xen_pump_stats st = {0};
	char err[512] = "";
	progress_calls = 0;
	int rc = xen_pump_send(a[0], &io, level, &st, on_progress, NULL, err, sizeof err);
	if (rc != 0)
		fail_msg("sender pump: %s", err);
	assert_int_equal(xen_pump_send_end(&io, err, sizeof err), 0);
	pthread_join(tp, NULL);
	pthread_join(tr, NULL);
	pthread_join(tc, NULL);
	if (rv.rc != 0)
		fail_msg("receiver pump: %s", rv.err);
	assert_int_equal(co.got.len, s.len);
	assert_memory_equal(co.got.p, s.p, s.len);
	assert_int_equal(st.xp_raw, s.len);
	assert_int_equal(rv.st.xp_raw, s.len);
	assert_int_equal(rv.st.xp_records, st.xp_records);
	/* batches, not one record per read */
	if (s.len > 4 * MiB)
		assert_true(st.xp_records * 4 < (uint64_t)pr.writes);
	assert_true(st.xp_records >= s.len / XEN_PUMP_BATCH);
	assert_int_equal(progress_calls, (int)st.xp_records);
	if (level > 0)
		assert_true(st.xp_payload < s.len * 7 / 10); /* half zero, a third text */
	else
		assert_int_equal(st.xp_payload, s.len);
	assert_int_equal(io.bytes_out, rv.io.bytes_in);
	close(a[0]);
	close(c[0]);
	close(c[1]);
	free(s.p);
	free(co.got.p);
}

static void test_plain(void **state)
{
	(void)state;
	pipeline(0, 3000); /* ~12 MiB */
}

static void test_compressed(void **state)
{
	(void)state;
	pipeline(1, 3000);
	pipeline(3, 700);
}

static void test_tiny_stream(void **state)
{
	(void)state;
	pipeline(1, 1);
	pipeline(0, 1);
}

/* ---- failures ---- */

struct bad_peer {
	int fd;
	size_t read_first;
	const char *error; /* send this ERROR after reading, else just close */
};

static void *bad_peer(void *arg)
{
	struct bad_peer *p = arg;
	unsigned char tmp[65536];
	size_t got = 0;
	while (got < p->read_first) {
		ssize_t n = read(p->fd, tmp, sizeof tmp);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (p->error) {
		struct mig_io io;
		mig_io_init_fd(&io, p->fd);
		mig_send_text(&io, MIG_REC_ERROR, p->error);
		struct timespec ts = {0, 200 * 1000000L};
		nanosleep(&ts, NULL);
	}
	close(p->fd);
	return NULL;
}

static void sender_against(struct bad_peer *bp, char *err, size_t errlen)
{
	struct buf s = make_stream(4000);
	int a[2], c[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, c), 0);
	struct producer pr = {a[1], s.p, s.len, 0};
	bp->fd = c[1];
	pthread_t tp, tb;
	pthread_create(&tp, NULL, produce, &pr);
	pthread_create(&tb, NULL, bad_peer, bp);
	struct mig_io io;
	mig_io_init_fd(&io, c[0]);
	assert_int_equal(xen_pump_send(a[0], &io, 1, NULL, NULL, NULL, err, errlen), -1);
	close(a[0]); /* libxl's writes fail now, as they would */
	pthread_join(tp, NULL);
	pthread_join(tb, NULL);
	close(c[0]);
	free(s.p);
}

static void test_destination_disconnects(void **state)
{
	(void)state;
	char err[512] = "";
	struct bad_peer bp = {-1, 3 * MiB, NULL};
	sender_against(&bp, err, sizeof err);
	assert_true(strstr(err, "closed") || strstr(err, "connection lost"));
}

static void test_destination_refuses(void **state)
{
	(void)state;
	char err[512] = "";
	struct bad_peer bp = {-1, 1 * MiB, "no memory for the domain"};
	sender_against(&bp, err, sizeof err);
	assert_string_equal(err, "the destination refused the migration: no memory for the domain");
}

/* The source's side goes away mid-stream: the receiver pump fails. */
static void test_source_disconnects(void **state)
{
	(void)state;
	int b[2], c[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, c), 0);
	struct consumer co = {b[1], {0}, 0};
	struct receiver rv = {.out = b[0], .compress = false};
	mig_io_init_fd(&rv.io, c[1]);
	pthread_t tc, tr;
	pthread_create(&tc, NULL, consume, &co);
	pthread_create(&tr, NULL, receive, &rv);
	struct mig_io io;
	mig_io_init_fd(&io, c[0]);
	unsigned char rec[sizeof(struct xen_chunk) + 1000];
	struct xen_chunk ch = {1000};
	memcpy(rec, &ch, sizeof ch);
	memset(rec + sizeof ch, 'x', 1000);
	assert_int_equal(mig_send_rec(&io, XEN_REC_STREAM, 0, rec, sizeof rec, NULL, 0), 0);
	/* half a record, then gone */
	struct mig_rec_hdr h = {XEN_REC_STREAM, 0, sizeof rec};
	assert_int_equal(mig_io_write(&io, &h, sizeof h, NULL, 0), 0);
	assert_int_equal(mig_io_write(&io, rec, 100, NULL, 0), 0);
	close(c[0]);
	pthread_join(tr, NULL);
	pthread_join(tc, NULL);
	assert_int_equal(rv.rc, -1);
	assert_string_equal(rv.err, "the peer closed the connection");
	assert_int_equal(co.got.len, 1000); /* what came whole went to libxl */
	close(c[1]);
	free(co.got.p);
}

/* libxl gives up reading (a failed restore): the pump says so. */
static void test_libxl_stops_reading(void **state)
{
	(void)state;
	struct buf s = make_stream(3000);
	int a[2], b[2], c[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, c), 0);
	struct producer pr = {a[1], s.p, s.len, 0};
	struct consumer co = {b[1], {0}, 1 * MiB};
	struct receiver rv = {.out = b[0], .compress = true, .refuse = true};
	mig_io_init_fd(&rv.io, c[1]);
	pthread_t tp, tc, tr;
	pthread_create(&tp, NULL, produce, &pr);
	pthread_create(&tc, NULL, consume, &co);
	pthread_create(&tr, NULL, receive, &rv);
	struct mig_io io;
	mig_io_init_fd(&io, c[0]);
	char err[512] = "";
	int rc = xen_pump_send(a[0], &io, 1, NULL, NULL, NULL, err, sizeof err);
	pthread_join(tc, NULL);
	pthread_join(tr, NULL);
	assert_int_equal(rv.rc, -1);
	assert_non_null(strstr(rv.err, "libxl stopped reading the stream"));
	/* the sender learns it: the destination's ERROR, or a connection it closed */
	assert_int_equal(rc, -1);
	assert_true(strstr(err, "the destination refused the migration: libxl stopped reading") ||
		    strstr(err, "connection lost") || strstr(err, "closed"));
	close(a[0]);
	pthread_join(tp, NULL);
	close(c[0]);
	free(s.p);
	free(co.got.p);
}

/* Garbage where a compressed chunk should be; compressed data unasked for. */
static void test_corrupt_records(void **state)
{
	(void)state;
	for (int round = 0; round < 3; round++) {
		int b[2], c[2];
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, c), 0);
		struct mig_io out, in;
		mig_io_init_fd(&out, c[0]);
		mig_io_init_fd(&in, c[1]);
		unsigned char rec[sizeof(struct xen_chunk) + 64];
		struct xen_chunk ch = {round == 2 ? XEN_PUMP_BATCH + 1ull : 4096};
		memcpy(rec, &ch, sizeof ch);
		memset(rec + sizeof ch, 0xA5, 64);
		uint32_t type = round == 1 ? MIG_REC_PAGES : XEN_REC_STREAM;
		assert_int_equal(mig_send_rec(&out, type, MIG_F_COMPRESSED, rec, sizeof rec, NULL, 0), 0);
		char err[512] = "";
		assert_int_equal(xen_pump_receive(&in, b[0], true, NULL, err, sizeof err), -1);
		if (round == 0)
			assert_non_null(strstr(err, "decompression failed"));
		else if (round == 1)
			assert_non_null(strstr(err, "record type 5 inside libxl's stream"));
		else
			assert_non_null(strstr(err, "bad libxl stream record"));
		/* compressed but not negotiated */
		ch.xc_raw_len = 4096;
		memcpy(rec, &ch, sizeof ch);
		assert_int_equal(mig_send_rec(&out, XEN_REC_STREAM, MIG_F_COMPRESSED, rec, sizeof rec, NULL, 0), 0);
		assert_int_equal(xen_pump_receive(&in, b[0], false, NULL, err, sizeof err), -1);
		assert_non_null(strstr(err, "not negotiated"));
		close(b[0]);
		close(b[1]);
		close(c[0]);
		close(c[1]);
	}
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_compressed),
		cmocka_unit_test(test_tiny_stream),
		cmocka_unit_test(test_destination_disconnects),
		cmocka_unit_test(test_destination_refuses),
		cmocka_unit_test(test_source_disconnects),
		cmocka_unit_test(test_libxl_stops_reading),
		cmocka_unit_test(test_corrupt_records),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
