/*
 * mig_hash.c - the page hashes of the sim stream's CHECKSUM record, the
 * digest over all of a domain's page hashes, and the zero-page test (see
 * mig.h). Both ends must compute the same values: a change here is a
 * change of the wire protocol (a new MIG_FEAT_ or MIG_PROTO_VERSION).
 */
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "mig.h"

#define PG MIG_PAGE_SIZE
#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull
#define P5 0x27D4EB2F165667C5ull
#define M32 0x9E3779B1u /* the lanes' scramble multiplier: 32 bits, two 32x32 multiplies per lane */

static inline uint64_t rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static uint64_t fmix(uint64_t h)
{
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	h ^= h >> 32;
	return h;
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
	return fmix(rotl(a, 1) + rotl(b, 7) + rotl(c, 12) + rotl(d, 18));
}

/* ---- mig_page_hash2 ----
 * Lane j of stripe s (64 bytes, word w[j]) takes d = w[j] ^ k[j] with the
 * stripe's key k[j] = K[j] + s * P1: acc[j] += lo32(d) * hi32(d) + w[j ^ 1]
 * (the neighbour's word keeps a product of zero from losing the data).
 * Every 16 stripes: acc[j] = (acc[j] ^ acc[j] >> 47 ^ K[j]) * M32. */

static const uint64_t K2[8] = {P1, P2, P3, P4, P5, P1 ^ P2, P3 ^ P4, P5 ^ P1};

static uint64_t hash2_fold(const uint64_t acc[8])
{
	uint64_t h = PG * P1;
	for (int j = 0; j < 8; j++)
		h = rotl(h ^ fmix(acc[j] ^ K2[7 - j]), 27) * P1 + P4;
	return fmix(h);
}

uint64_t mig_page_hash2_portable(const void *page)
{
	const unsigned char *p = page;
	uint64_t acc[8], k[8];
	for (int j = 0; j < 8; j++) {
		acc[j] = K2[j] ^ P5;
		k[j] = K2[j];
	}
	for (unsigned s = 0; s < PG / 64; s++) {
		uint64_t w[8];
		memcpy(w, p + s * 64, 64);
		for (int j = 0; j < 8; j++) {
			uint64_t d = w[j] ^ k[j];
			acc[j] += (d & 0xffffffffu) * (d >> 32) + w[j ^ 1];
			k[j] += P1;
		}
		for (int j = 0; (s & 15) == 15 && j < 8; j++) {
			uint64_t a = acc[j] ^ (acc[j] >> 47) ^ K2[j];
			acc[j] = (a & 0xffffffffu) * M32 + (((a >> 32) * M32) << 32);
		}
	}
	return hash2_fold(acc);
}

#if defined(__x86_64__)
uint64_t mig_page_hash2_sse2(const void *page)
{
	const unsigned char *p = page;
	const __m128i c5 = _mm_set1_epi64x((long long)P5), step = _mm_set1_epi64x((long long)P1);
	const __m128i m = _mm_set1_epi64x(M32);
	__m128i k[4], a[4], k0[4];
	for (int i = 0; i < 4; i++) {
		k0[i] = k[i] = _mm_loadu_si128((const void *)&K2[2 * i]);
		a[i] = _mm_xor_si128(k[i], c5);
	}
	for (unsigned s = 0; s < PG / 64; s++) {
		for (int i = 0; i < 4; i++) {
			__m128i w = _mm_loadu_si128((const void *)(p + s * 64 + 16 * i)), d = _mm_xor_si128(w, k[i]);
			a[i] = _mm_add_epi64(a[i], _mm_add_epi64(_mm_mul_epu32(d, _mm_srli_epi64(d, 32)),
								 _mm_shuffle_epi32(w, 0x4E)));
			k[i] = _mm_add_epi64(k[i], step);
		}
		for (int i = 0; (s & 15) == 15 && i < 4; i++) {
			__m128i x = _mm_xor_si128(_mm_xor_si128(a[i], _mm_srli_epi64(a[i], 47)), k0[i]);
			a[i] = _mm_add_epi64(_mm_mul_epu32(x, m), _mm_slli_epi64(_mm_mul_epu32(_mm_srli_epi64(x, 32), m), 32));
		}
	}
	uint64_t acc[8];
	for (int i = 0; i < 4; i++)
		_mm_storeu_si128((void *)&acc[2 * i], a[i]);
	return hash2_fold(acc);
}

__attribute__((target("avx2"))) static __m256i scramble256(__m256i a, __m256i k0, __m256i m)
{
	__m256i x = _mm256_xor_si256(_mm256_xor_si256(a, _mm256_srli_epi64(a, 47)), k0);
	return _mm256_add_epi64(_mm256_mul_epu32(x, m), _mm256_slli_epi64(_mm256_mul_epu32(_mm256_srli_epi64(x, 32), m), 32));
}

__attribute__((target("avx2"))) uint64_t mig_page_hash2_avx2(const void *page)
{
	const unsigned char *p = page;
	const __m256i c5 = _mm256_set1_epi64x((long long)P5), step = _mm256_set1_epi64x((long long)P1);
	const __m256i m = _mm256_set1_epi64x(M32);
	const __m256i k00 = _mm256_loadu_si256((const void *)&K2[0]), k01 = _mm256_loadu_si256((const void *)&K2[4]);
	__m256i k0 = k00, k1 = k01, a0 = _mm256_xor_si256(k00, c5), a1 = _mm256_xor_si256(k01, c5);
	for (unsigned s = 0; s < PG / 64; s++) {
		__m256i w0 = _mm256_loadu_si256((const void *)(p + s * 64));
		__m256i w1 = _mm256_loadu_si256((const void *)(p + s * 64 + 32));
		__m256i d0 = _mm256_xor_si256(w0, k0), d1 = _mm256_xor_si256(w1, k1);
		a0 = _mm256_add_epi64(a0, _mm256_add_epi64(_mm256_mul_epu32(d0, _mm256_srli_epi64(d0, 32)),
							  _mm256_shuffle_epi32(w0, 0x4E)));
		a1 = _mm256_add_epi64(a1, _mm256_add_epi64(_mm256_mul_epu32(d1, _mm256_srli_epi64(d1, 32)),
							  _mm256_shuffle_epi32(w1, 0x4E)));
		k0 = _mm256_add_epi64(k0, step);
		k1 = _mm256_add_epi64(k1, step);
		if ((s & 15) == 15) {
			a0 = scramble256(a0, k00, m);
			a1 = scramble256(a1, k01, m);
		}
	}
	uint64_t acc[8];
	_mm256_storeu_si256((void *)&acc[0], a0);
	_mm256_storeu_si256((void *)&acc[4], a1);
	return hash2_fold(acc);
}
#endif

uint64_t mig_page_hash2(const void *page)
{
#if defined(__x86_64__)
	if (__builtin_cpu_supports("avx2"))
		return mig_page_hash2_avx2(page);
	return mig_page_hash2_sse2(page);
#else
	return mig_page_hash2_portable(page);
#endif
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
