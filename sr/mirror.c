/* mirror.c - dirty blocks, data extents, block hashes and the stop rule of a block mirror (see mirror.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mirror.h"
#include "util.h"

void mirror_runs_free(struct mirror_runs *r)
{
	free(r->mr_v);
	memset(r, 0, sizeof *r);
}

static int runs_add(struct mirror_runs *r, uint64_t b, uint64_t max_run)
{
	struct mirror_run *last = r->mr_n ? &r->mr_v[r->mr_n - 1] : NULL;
	if (last && last->mr_first + last->mr_count == b && last->mr_count < max_run) {
		last->mr_count++;
		return 0;
	}
	if (r->mr_n == r->mr_cap) {
		size_t cap = r->mr_cap ? 2 * r->mr_cap : 64;
		r->mr_v = xrealloc(r->mr_v, cap * sizeof *r->mr_v);
		r->mr_cap = cap;
	}
	r->mr_v[r->mr_n++] = (struct mirror_run){b, 1};
	return 0;
}

void mirror_mark(uint64_t *log, uint64_t nbits, uint64_t first, uint64_t count)
{
	for (uint64_t b = first; b < first + count && b < nbits; b++)
		__atomic_fetch_or(&log[b / 64], 1ull << (b % 64), __ATOMIC_RELEASE);
}

int64_t mirror_take_dirty(uint64_t *log, uint64_t nbits, uint64_t max_run, struct mirror_runs *out)
{
	uint64_t words = (nbits + 63) / 64, taken = 0;
	size_t n0 = out->mr_n;
	if (max_run == 0)
		max_run = 1;
	for (uint64_t w = 0; w < words; w++) {
		if (!__atomic_load_n(&log[w], __ATOMIC_RELAXED))
			continue;
		uint64_t bits = __atomic_exchange_n(&log[w], 0, __ATOMIC_ACQ_REL), left = bits;
		while (left) {
			uint64_t b = w * 64 + (uint64_t)__builtin_ctzll(left);
			left &= left - 1;
			if (b >= nbits)
				continue;
			if (runs_add(out, b, max_run) != 0) {
				/* give every bit taken back: nothing is lost */
				__atomic_fetch_or(&log[w], bits, __ATOMIC_RELEASE);
				for (size_t i = n0; i < out->mr_n; i++)
					mirror_mark(log, nbits, out->mr_v[i].mr_first, out->mr_v[i].mr_count);
				out->mr_n = n0;
				return -1;
			}
			taken++;
		}
	}
	return (int64_t)taken;
}

bool mirror_any_dirty(const uint64_t *log, uint64_t nbits)
{
	for (uint64_t w = 0; w < (nbits + 63) / 64; w++)
		if (__atomic_load_n(&log[w], __ATOMIC_RELAXED))
			return true;
	return false;
}

bool mirror_next_data(int fd, uint64_t b, uint64_t nblocks, uint64_t *first, uint64_t *end)
{
	if (b >= nblocks)
		return false;
	off_t at = (off_t)(b * MIRROR_BLOCK);
	off_t d = lseek(fd, at, SEEK_DATA);
	if (d < 0) {
		if (errno == ENXIO)
			return false; /* a hole to the end */
		*first = b; /* no SEEK_DATA here: all of it is data */
		*end = nblocks;
		return true;
	}
	off_t h = lseek(fd, d, SEEK_HOLE);
	uint64_t f = (uint64_t)d / MIRROR_BLOCK;
	uint64_t e = h < 0 ? nblocks : ((uint64_t)h + MIRROR_BLOCK - 1) / MIRROR_BLOCK;
	if (f >= nblocks)
		return false;
	*first = f;
	*end = e > nblocks ? nblocks : e;
	return true;
}

bool mirror_is_zero(const void *p, size_t len)
{
	const unsigned char *c = p;
	if (len == 0)
		return true;
	return c[0] == 0 && memcmp(c, c + 1, len - 1) == 0;
}

static uint64_t fold(uint64_t h, uint64_t x)
{
	h ^= x;
	h *= 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 29);
}

uint64_t mirror_block_hash(const void *blk, size_t len, mirror_page_hash_fn page_hash)
{
	static const unsigned char zero[MIRROR_PAGE];
	const unsigned char *p = blk;
	uint64_t h = 0x6d6972726f72ull; /* "mirror" */
	for (size_t off = 0; off < MIRROR_BLOCK; off += MIRROR_PAGE) {
		if (off + MIRROR_PAGE <= len) {
			h = fold(h, page_hash(p + off));
		} else if (off < len) {
			unsigned char part[MIRROR_PAGE] = {0};
			memcpy(part, p + off, len - off);
			h = fold(h, page_hash(part));
		} else {
			h = fold(h, page_hash(zero));
		}
	}
	return h;
}

uint64_t mirror_zero_hash(mirror_page_hash_fn page_hash)
{
	return mirror_block_hash(NULL, 0, page_hash);
}

uint64_t mirror_digest(const uint64_t *hash, uint64_t n)
{
	uint64_t h = n;
	for (uint64_t i = 0; i < n; i++)
		h = fold(h, hash[i] + i);
	return h;
}

/* ---- the stop rule ---- */

const char *mirror_stop_name(enum mirror_stop s)
{
	switch (s) {
	case MIRROR_STOP_SMALL: return "small";
	case MIRROR_STOP_MAX_ROUNDS: return "max_rounds";
	case MIRROR_STOP_NO_PROGRESS: return "no_progress";
	default: return "continue";
	}
}

double mirror_predict_ms(const struct mirror_round *h, int n)
{
	uint64_t bytes = 0, ns = 0;
	for (int i = 0; i < n; i++) {
		if (!h[i].mr_bytes)
			continue; /* nothing moved: its time is latency, not rate */
		bytes += h[i].mr_bytes;
		ns += h[i].mr_ns;
	}
	if (n <= 0 || !bytes || !ns)
		return -1;
	return (double)h[n - 1].mr_dirty_after * (double)ns / (double)bytes / 1e6;
}

enum mirror_stop mirror_should_stop(const struct mirror_round *h, int n, const struct mirror_policy *p)
{
	if (n <= 0)
		return MIRROR_CONTINUE;
	int max_rounds = p && p->mp_max_rounds > 0 ? p->mp_max_rounds : 8;
	int final_ms = p && p->mp_final_ms > 0 ? p->mp_final_ms : 20;
	const struct mirror_round *last = &h[n - 1];
	double ms = mirror_predict_ms(h, n);
	if (last->mr_dirty_after == 0 || (ms >= 0 && ms <= final_ms))
		return MIRROR_STOP_SMALL;
	if (last->mr_round >= max_rounds)
		return MIRROR_STOP_MAX_ROUNDS;
	/* rounds after the bulk copy that shrank what is left by less than 10% */
	if (n >= 4) {
		bool stuck = true;
		for (int i = n - 3; i < n && stuck; i++)
			stuck = h[i].mr_round > 0 && h[i - 1].mr_dirty_after > 0 &&
				h[i].mr_dirty_after * 10 >= h[i - 1].mr_dirty_after * 9;
		if (stuck)
			return MIRROR_STOP_NO_PROGRESS;
	}
	return MIRROR_CONTINUE;
}
