/*
 * mig_hash.c - the page hash of the sim stream's CHECKSUM record, the
 * digest over all of a domain's page hashes, and the zero-page test (see
 * mig.h). Both ends must compute the same values: a change here is a
 * change of the wire protocol (MIG_PROTO_VERSION).
 */
#include <string.h>

#include "mig.h"

#define PG MIG_PAGE_SIZE
#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull

static inline uint64_t rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

uint64_t mig_page_hash(const void *page)
{
	const uint64_t *w = page;
	uint64_t a = P1 + P2, b = P2, c = 0, d = (uint64_t)0 - P1;
	for (unsigned i = 0; i < PG / 8; i += 4) {
		uint64_t w0, w1, w2, w3;
		memcpy(&w0, &w[i], 8);
		memcpy(&w1, &w[i + 1], 8);
		memcpy(&w2, &w[i + 2], 8);
		memcpy(&w3, &w[i + 3], 8);
		a = rotl(a + w0 * P2, 31) * P1;
		b = rotl(b + w1 * P2, 31) * P1;
		c = rotl(c + w2 * P2, 31) * P1;
		d = rotl(d + w3 * P2, 31) * P1;
	}
	uint64_t h = rotl(a, 1) + rotl(b, 7) + rotl(c, 12) + rotl(d, 18);
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	h ^= h >> 32;
	return h;
}

uint64_t mig_digest(const uint64_t *hash, uint64_t n)
{
	uint64_t h = P4 ^ n;
	for (uint64_t i = 0; i < n; i++)
		h = rotl(h ^ (hash[i] * P2), 27) * P1 + P4;
	return h ^ (h >> 31);
}

/* ~13 ns to reject a page with data, ~140 ns to accept a zero one (MACHINE.md) */
bool mig_page_is_zero(const void *page)
{
	const uint64_t *w = page;
	if (w[0] | w[PG / 8 - 1])
		return false;
	for (unsigned i = 0; i < PG / 8; i += 8)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7])
			return false;
	return true;
}
