/*
 * pwhash.c - PBKDF2-HMAC-SHA256 password hashes for pool users.
 *
 * Format: "pbkdf2-sha256$ITERATIONS$SALT_BASE64$HASH_BASE64" (standard
 * base64 with padding; 16-byte salt, 32-byte hash). Parsing is strict: any
 * string that is not exactly in that shape verifies as false.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "pwhash.h"

#define PWHASH_PREFIX "pbkdf2-sha256$"
#define PWHASH_MIN_ITER 1000u
#define PWHASH_MAX_ITER 10000000u
#define PWHASH_SALT_LEN 16
#define PWHASH_SALT_MIN 8
#define PWHASH_SALT_MAX 64
#define PWHASH_HASH_LEN 32
/* base64 length of n bytes, with padding */
#define PWHASH_B64_LEN(n) (4 * (((n) + 2) / 3))

static bool pwhash_iter_ok(unsigned long it)
{
	return it >= PWHASH_MIN_ITER && it <= PWHASH_MAX_ITER;
}

static bool pwhash_derive(const char *password, const unsigned char *salt, size_t saltlen,
			  unsigned iterations, unsigned char out[PWHASH_HASH_LEN])
{
	size_t pwlen = strlen(password);
	if (pwlen > INT_MAX)
		return false;
	return PKCS5_PBKDF2_HMAC(password, (int)pwlen, salt, (int)saltlen, (int)iterations,
				 EVP_sha256(), PWHASH_HASH_LEN, out) == 1;
}

char *pwhash_make(const char *password, unsigned iterations)
{
	unsigned char salt[PWHASH_SALT_LEN], hash[PWHASH_HASH_LEN];
	unsigned char salt64[PWHASH_B64_LEN(PWHASH_SALT_LEN) + 1];
	unsigned char hash64[PWHASH_B64_LEN(PWHASH_HASH_LEN) + 1];
	if (!password || !pwhash_iter_ok(iterations))
		return NULL;
	if (RAND_bytes(salt, sizeof salt) != 1 ||
	    !pwhash_derive(password, salt, sizeof salt, iterations, hash))
		return NULL;
	EVP_EncodeBlock(salt64, salt, sizeof salt);
	EVP_EncodeBlock(hash64, hash, sizeof hash);
	OPENSSL_cleanse(hash, sizeof hash);
	char *out = NULL;
	if (asprintf(&out, PWHASH_PREFIX "%u$%s$%s", iterations, (char *)salt64,
		     (char *)hash64) < 0)
		return NULL;
	return out;
}

/* Strict decimal: 1-8 digits, no sign, no leading zero. */
static bool pwhash_parse_iter(const char *s, size_t len, unsigned *out)
{
	if (len == 0 || len > 8 || s[0] == '0')
		return false;
	unsigned long v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (!pwhash_iter_ok(v))
		return false;
	*out = (unsigned)v;
	return true;
}

static bool pwhash_b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* Decode canonical padded base64 of len chars into out (at most max bytes);
 * returns the decoded length or -1. */
static int pwhash_b64_decode(const char *s, size_t len, unsigned char *out, size_t max)
{
	if (len == 0 || len % 4 != 0 || len > PWHASH_B64_LEN(max))
		return -1;
	size_t pad = 0;
	if (s[len - 1] == '=')
		pad = s[len - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < len - pad; i++)
		if (!pwhash_b64_char(s[i]))
			return -1;
	unsigned char buf[PWHASH_B64_LEN(PWHASH_SALT_MAX)];
	int n = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)len);
	/* EVP_DecodeBlock counts the padding as zero bytes: take them off. */
	if (n < 0 || (size_t)n < pad || (size_t)n - pad > max) {
		OPENSSL_cleanse(buf, sizeof buf);
		return -1;
	}
	n -= (int)pad;
	memcpy(out, buf, (size_t)n);
	OPENSSL_cleanse(buf, sizeof buf);
	return n;
}

struct pwhash_parsed {
	unsigned iterations;
	unsigned char salt[PWHASH_SALT_MAX];
	int saltlen;
	unsigned char hash[PWHASH_HASH_LEN];
};

static bool pwhash_parse(const char *stored, struct pwhash_parsed *p)
{
	size_t plen = sizeof PWHASH_PREFIX - 1;
	if (strncmp(stored, PWHASH_PREFIX, plen) != 0)
		return false;
	const char *it = stored + plen;
	const char *d1 = strchr(it, '$');
	if (!d1)
		return false;
	const char *salt = d1 + 1;
	const char *d2 = strchr(salt, '$');
	if (!d2)
		return false;
	const char *hash = d2 + 1;
	if (!pwhash_parse_iter(it, (size_t)(d1 - it), &p->iterations))
		return false;
	p->saltlen = pwhash_b64_decode(salt, (size_t)(d2 - salt), p->salt, sizeof p->salt);
	if (p->saltlen < PWHASH_SALT_MIN)
		return false;
	return pwhash_b64_decode(hash, strlen(hash), p->hash, sizeof p->hash) ==
	       PWHASH_HASH_LEN;
}

bool pwhash_verify(const char *password, const char *stored)
{
	if (!password || !stored)
		return false;
	struct pwhash_parsed p;
	unsigned char got[PWHASH_HASH_LEN];
	bool ok = pwhash_parse(stored, &p) &&
		  pwhash_derive(password, p.salt, (size_t)p.saltlen, p.iterations, got) &&
		  CRYPTO_memcmp(got, p.hash, PWHASH_HASH_LEN) == 0;
	OPENSSL_cleanse(got, sizeof got);
	OPENSSL_cleanse(&p, sizeof p);
	return ok;
}
