/* test_mirror.c - sr/mirror.c: dirty runs taken from a log (merged, cut
 * at max_run, bits past the disk ignored, nothing lost), data extents of
 * a sparse file, block hashes (a short block is the full one padded with
 * zeros), the digest, the stop rule at each of its conditions, and the
 * protocol itself: a writer marking after it writes and a reader clearing
 * before it reads, on two threads, end with equal disks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "mig.h"
#include "mirror.h"
#include "util.h"
#include "simdom.h"

static void test_take_dirty(void **state)
{
	(void)state;
	uint64_t log[3] = {0};
	uint64_t nbits = 150;
	/* blocks 1,2,3 ; 63,64 (across a word) ; 100 ; bit 160 is past the disk */
	simdom_disk_mark(log, nbits, 1 * SIMDOM_DISK_BLOCK, 3 * SIMDOM_DISK_BLOCK);
	simdom_disk_mark(log, nbits, 63 * (uint64_t)SIMDOM_DISK_BLOCK + 10, SIMDOM_DISK_BLOCK);
	simdom_disk_mark(log, nbits, 100 * (uint64_t)SIMDOM_DISK_BLOCK, 1);
	log[2] |= 1ull << (160 - 128);
	assert_true(mirror_any_dirty(log, nbits));
	struct mirror_runs r = {0};
	assert_int_equal(mirror_take_dirty(log, nbits, 2, &r), 6);
	assert_int_equal(r.mr_n, 4); /* 1-2, 3 (cut at 2), 63-64, 100 */
	assert_int_equal(r.mr_v[0].mr_first, 1);
	assert_int_equal(r.mr_v[0].mr_count, 2);
	assert_int_equal(r.mr_v[1].mr_first, 3);
	assert_int_equal(r.mr_v[1].mr_count, 1);
	assert_int_equal(r.mr_v[2].mr_first, 63);
	assert_int_equal(r.mr_v[2].mr_count, 2);
	assert_int_equal(r.mr_v[3].mr_first, 100);
	assert_false(mirror_any_dirty(log, nbits)); /* cleared, the stray bit too */
	/* put back, taken again: the same blocks */
	mirror_mark(log, nbits, 63, 2);
	r.mr_n = 0;
	assert_int_equal(mirror_take_dirty(log, nbits, 32, &r), 2);
	assert_int_equal(r.mr_n, 1);
	mirror_runs_free(&r);
	assert_null(r.mr_v);
	/* a mark past the log's capacity is not tracked */
	uint64_t one = 0;
	simdom_disk_mark(&one, 10, 9 * (uint64_t)SIMDOM_DISK_BLOCK, 5 * SIMDOM_DISK_BLOCK);
	assert_int_equal(one, 1ull << 9);
	simdom_disk_mark(&one, 10, 0, 0); /* nothing written: nothing marked */
	assert_int_equal(one, 1ull << 9);
}

static void test_next_data(void **state)
{
	(void)state;
	char path[] = "/tmp/test_mirror_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	uint64_t nblocks = 64;
	assert_int_equal(ftruncate(fd, (off_t)(nblocks * MIRROR_BLOCK)), 0);
	uint64_t f, e;
	assert_false(mirror_next_data(fd, 0, nblocks, &f, &e)); /* all hole */
	char x = 'x';
	assert_int_equal(pwrite(fd, &x, 1, 10 * MIRROR_BLOCK + 7), 1);
	assert_int_equal(pwrite(fd, &x, 1, 40 * MIRROR_BLOCK), 1);
	assert_true(mirror_next_data(fd, 0, nblocks, &f, &e));
	assert_true(f <= 10 && e >= 11 && e <= 40); /* whole blocks around the data */
	assert_true(mirror_next_data(fd, e, nblocks, &f, &e));
	assert_true(f <= 40 && e >= 41);
	assert_false(mirror_next_data(fd, e, nblocks, &f, &e) && f < nblocks && f > 41);
	assert_false(mirror_next_data(fd, nblocks, nblocks, &f, &e));
	close(fd);
}

static void test_hashes(void **state)
{
	(void)state;
	static unsigned char a[MIRROR_BLOCK], b[MIRROR_BLOCK];
	for (size_t i = 0; i < 1000; i++)
		a[i] = (unsigned char)(i * 7 + 1);
	memcpy(b, a, sizeof a);
	/* a short block hashes as the full one with zeros after it */
	assert_int_equal(mirror_block_hash(a, 1000, mig_page_hash2), mirror_block_hash(b, MIRROR_BLOCK, mig_page_hash2));
	b[MIRROR_BLOCK - 1] = 1;
	assert_int_not_equal(mirror_block_hash(a, MIRROR_BLOCK, mig_page_hash2),
			     mirror_block_hash(b, MIRROR_BLOCK, mig_page_hash2));
	static const unsigned char z[MIRROR_BLOCK];
	assert_int_equal(mirror_zero_hash(mig_page_hash2), mirror_block_hash(z, MIRROR_BLOCK, mig_page_hash2));
	assert_true(mirror_is_zero(z, sizeof z));
	assert_false(mirror_is_zero(a, sizeof a));
	assert_true(mirror_is_zero(a, 0));
	uint64_t h1[3] = {1, 2, 3}, h2[3] = {2, 1, 3};
	assert_int_not_equal(mirror_digest(h1, 3), mirror_digest(h2, 3)); /* order matters */
	assert_int_not_equal(mirror_digest(h1, 2), mirror_digest(h1, 3));
}

static void test_stop_rule(void **state)
{
	(void)state;
	struct mirror_policy p = {.mp_max_rounds = 5, .mp_final_ms = 20};
	/* bulk: 1 GB in 1 s; 50 MB left = 50 ms predicted: continue */
	struct mirror_round h[10] = {{0, 1000000000, 1000000000, 50000000}};
	assert_int_equal(mirror_should_stop(h, 1, &p), MIRROR_CONTINUE);
	assert_true(mirror_predict_ms(h, 1) > 49.9 && mirror_predict_ms(h, 1) < 50.1);
	/* 20 MB left: fits 20 ms */
	h[1] = (struct mirror_round){1, 50000000, 50000000, 20000000};
	assert_int_equal(mirror_should_stop(h, 2, &p), MIRROR_STOP_SMALL);
	/* nothing left at all */
	h[1].mr_dirty_after = 0;
	assert_int_equal(mirror_should_stop(h, 2, &p), MIRROR_STOP_SMALL);
	/* a round that moved nothing measures nothing: the rate is the bulk's */
	h[1] = (struct mirror_round){1, 0, 900000000, 50000000};
	assert_true(mirror_predict_ms(h, 2) > 49.9 && mirror_predict_ms(h, 2) < 50.1);
	/* not shrinking for 3 rounds after the bulk */
	for (int i = 1; i <= 4; i++)
		h[i] = (struct mirror_round){i, 40000000, 40000000, (uint64_t)(50000000 - i * 100000)};
	assert_int_equal(mirror_should_stop(h, 4, &p), MIRROR_STOP_NO_PROGRESS);
	/* shrinking: continue, until max rounds */
	for (int i = 1; i <= 5; i++)
		h[i] = (struct mirror_round){i, 40000000, 40000000, (uint64_t)(100000000 >> i) + 30000000};
	assert_int_equal(mirror_should_stop(h, 4, &p), MIRROR_CONTINUE);
	assert_int_equal(mirror_should_stop(h, 6, &p), MIRROR_STOP_MAX_ROUNDS);
	/* no rate yet, something left: continue */
	struct mirror_round z = {0, 0, 0, 1};
	assert_int_equal(mirror_should_stop(&z, 1, &p), MIRROR_CONTINUE);
	assert_true(mirror_predict_ms(&z, 1) < 0);
	assert_int_equal(mirror_should_stop(h, 0, &p), MIRROR_CONTINUE);
	/* defaults: 8 rounds, 20 ms */
	assert_int_equal(mirror_should_stop(h, 6, NULL), MIRROR_CONTINUE);
	assert_string_equal(mirror_stop_name(MIRROR_STOP_SMALL), "small");
}

/* ---- the protocol on two threads ---- */

#define NB 256
struct race {
	uint64_t disk[NB]; /* a block's content: a version number */
	uint64_t copy[NB];
	uint64_t log[NB / 64];
	int stop;
};

static void *writer(void *arg)
{
	struct race *r = arg;
	unsigned s = 12345;
	for (int i = 0; i < 200000; i++) {
		s = s * 1103515245u + 12345u;
		uint64_t b = (s >> 8) % NB;
		__atomic_store_n(&r->disk[b], __atomic_load_n(&r->disk[b], __ATOMIC_RELAXED) + 1, __ATOMIC_RELEASE);
		simdom_disk_mark(r->log, NB, b * SIMDOM_DISK_BLOCK, 1); /* after the write */
	}
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void reader_round(struct race *r, struct mirror_runs *runs)
{
	runs->mr_n = 0;
	assert_true(mirror_take_dirty(r->log, NB, 8, runs) >= 0); /* cleared before read */
	for (size_t i = 0; i < runs->mr_n; i++)
		for (uint64_t b = runs->mr_v[i].mr_first; b < runs->mr_v[i].mr_first + runs->mr_v[i].mr_count; b++)
			r->copy[b] = __atomic_load_n(&r->disk[b], __ATOMIC_ACQUIRE);
}

static void test_protocol_race(void **state)
{
	(void)state;
	struct race *r = xcalloc(1, sizeof *r);
	for (int b = 0; b < NB; b++) /* the bulk copy, after the log was cleared */
		r->copy[b] = r->disk[b];
	pthread_t t;
	pthread_create(&t, NULL, writer, r);
	struct mirror_runs runs = {0};
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
		reader_round(r, &runs);
	pthread_join(t, NULL);
	reader_round(r, &runs); /* the last round, the writer paused */
	assert_memory_equal(r->copy, r->disk, sizeof r->disk);
	assert_false(mirror_any_dirty(r->log, NB));
	mirror_runs_free(&runs);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_take_dirty), cmocka_unit_test(test_next_data),
		cmocka_unit_test(test_hashes),	   cmocka_unit_test(test_stop_rule),
		cmocka_unit_test(test_protocol_race),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
