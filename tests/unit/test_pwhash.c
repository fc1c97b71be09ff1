/* test_pwhash.c - unit tests for lib/pwhash.c (PBKDF2-SHA256 password hashes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pwhash.h"

#define FAST 1000u

static void test_round_trip(void **state)
{
	(void)state;
	char *h = pwhash_make("correct horse", FAST);
	assert_non_null(h);
	assert_true(pwhash_verify("correct horse", h));
	assert_false(pwhash_verify("correct horsE", h));
	assert_false(pwhash_verify("", h));
	assert_false(pwhash_verify("correct horse ", h));
	free(h);
}

static void test_empty_and_utf8_passwords(void **state)
{
	(void)state;
	char *h = pwhash_make("", FAST);
	assert_non_null(h);
	assert_true(pwhash_verify("", h));
	assert_false(pwhash_verify("x", h));
	free(h);
	h = pwhash_make("p\xc3\xa4ssw\xc3\xb6rd", FAST);
	assert_non_null(h);
	assert_true(pwhash_verify("p\xc3\xa4ssw\xc3\xb6rd", h));
	assert_false(pwhash_verify("passw\xc3\xb6rd", h));
	free(h);
}

static void test_format(void **state)
{
	(void)state;
	char *h = pwhash_make("pw", 1234);
	assert_non_null(h);
	assert_memory_equal(h, "pbkdf2-sha256$1234$", 19);
	/* "$" salt(24 chars for 16 bytes) "$" hash(44 chars for 32 bytes) */
	const char *salt = h + 19;
	const char *d = strchr(salt, '$');
	assert_non_null(d);
	assert_int_equal(d - salt, 24);
	assert_int_equal(strlen(d + 1), 44);
	assert_null(strchr(d + 1, '$'));
	free(h);
}

static void test_salts_differ(void **state)
{
	(void)state;
	char *a = pwhash_make("same", FAST);
	char *b = pwhash_make("same", FAST);
	assert_non_null(a);
	assert_non_null(b);
	assert_string_not_equal(a, b);
	assert_true(pwhash_verify("same", a));
	assert_true(pwhash_verify("same", b));
	free(a);
	free(b);
}

static void test_iteration_bounds(void **state)
{
	(void)state;
	assert_null(pwhash_make("pw", 0));
	assert_null(pwhash_make("pw", 999));
	assert_null(pwhash_make("pw", 10000001));
	assert_null(pwhash_make(NULL, FAST));
	char *h = pwhash_make("pw", 1000);
	assert_non_null(h);
	free(h);
}

/* Known answers from Python's hashlib.pbkdf2_hmac('sha256', b'password',
 * salt, 1000): salt "0123456789abcdef" (16 bytes) and "01234567" (8 bytes,
 * the shortest salt accepted). */
#define KAT16 "pbkdf2-sha256$1000$MDEyMzQ1Njc4OWFiY2RlZg==$"
#define KAT16_HASH "hRRjgXWkW8ResfIvBP99J/T4vkgEmMRV/0tJTOjR59I"
#define KAT8 "pbkdf2-sha256$1000$MDEyMzQ1Njc=$2cixIQWYG1FiyEDELVPNOaAukfMr+J4OC7GE3Xbzawg="

static void test_known_answer(void **state)
{
	(void)state;
	assert_true(pwhash_verify("password", KAT16 KAT16_HASH "="));
	assert_false(pwhash_verify("Password", KAT16 KAT16_HASH "="));
	assert_true(pwhash_verify("password", KAT8));
	assert_false(pwhash_verify("passwor", KAT8));
}

/* Near-misses of a valid string: each must fail although the hash is right. */
static void test_non_canonical(void **state)
{
	(void)state;
	const char *bad[] = {
		KAT16 KAT16_HASH,	      /* padding missing */
		KAT16 KAT16_HASH "==",	      /* too much padding */
		KAT16 KAT16_HASH "=\n",      /* trailing newline */
		KAT16 KAT16_HASH "= ",	      /* trailing space */
		KAT16 " " KAT16_HASH "=",      /* leading space */
		KAT16 KAT16_HASH "=$",	      /* extra field */
		KAT16 KAT16_HASH "=$x",	      /* extra field */
		" " KAT16 KAT16_HASH "=",      /* leading space before the prefix */
		"pbkdf2-sha256$01000$MDEyMzQ1Njc4OWFiY2RlZg==$" KAT16_HASH "=",
		"pbkdf2-sha256$+1000$MDEyMzQ1Njc4OWFiY2RlZg==$" KAT16_HASH "=",
		"pbkdf2-sha256$1000 $MDEyMzQ1Njc4OWFiY2RlZg==$" KAT16_HASH "=",
		"pbkdf2-sha256$1000$MDEyMzQ1Njc4OWFiY2RlZg=$" KAT16_HASH "=",
		"pbkdf2-sha256$1000$MDEyMzQ1Njc4OWFiY2RlZg$" KAT16_HASH "=",
		"pbkdf2-sha256$1000$MDEyMzQ1\nNjc4OWFiY2RlZg==$" KAT16_HASH "=",
		"pbkdf2-sha256$1000$$MDEyMzQ1Njc4OWFiY2RlZg==$" KAT16_HASH "=",
		"pbkdf2-sha256$$1000$MDEyMzQ1Njc4OWFiY2RlZg==$" KAT16_HASH "=",
		"pbkdf2-sha512$1000$MDEyMzQ1Njc4OWFiY2RlZg==$" KAT16_HASH "=",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (pwhash_verify("password", bad[i]))
			fail_msg("non-canonical string %zu accepted: \"%s\"", i, bad[i]);
	}
}

static void test_stored_bounds(void **state)
{
	(void)state;
	/* A valid hash re-labelled with out-of-range iteration counts. */
	char *h = pwhash_make("pw", FAST);
	assert_non_null(h);
	const char *rest = strchr(h + 14, '$');
	char buf[256];
	snprintf(buf, sizeof buf, "pbkdf2-sha256$999%s", rest);
	assert_false(pwhash_verify("pw", buf));
	snprintf(buf, sizeof buf, "pbkdf2-sha256$10000001%s", rest);
	assert_false(pwhash_verify("pw", buf));
	snprintf(buf, sizeof buf, "pbkdf2-sha256$01000%s", rest);
	assert_false(pwhash_verify("pw", buf));
	snprintf(buf, sizeof buf, "pbkdf2-sha256$+1000%s", rest);
	assert_false(pwhash_verify("pw", buf));
	snprintf(buf, sizeof buf, "pbkdf2-sha256$1000%s", rest);
	assert_true(pwhash_verify("pw", buf));
	free(h);
}

static void test_malformed(void **state)
{
	(void)state;
	char *h = pwhash_make("pw", FAST);
	assert_non_null(h);
	const char *bad[] = {
		"",
		"pbkdf2-sha256",
		"pbkdf2-sha256$",
		"pbkdf2-sha256$$$",
		"pbkdf2-sha256$1000",
		"pbkdf2-sha256$1000$",
		"pbkdf2-sha256$1000$$",
		"pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA==$",
		"pbkdf2-sha256$1000$$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"x$1$a$b",
		"pbkdf2-sha1$1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"PBKDF2-SHA256$1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"pbkdf2-sha256$99999999999999999999999$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAA"
		"AAAAAAAAAAAAAAAAAAAAAAA=",
		"pbkdf2-sha256$18446744073709552616$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAA"
		"AAAAAAAAAAAAAAAAAAAAAAA=",
		"pbkdf2-sha256$-1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"pbkdf2-sha256$ 1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"pbkdf2-sha256$1e4$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		/* salt too short (4 bytes) */
		"pbkdf2-sha256$1000$AAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		/* hash wrong length (31 / 33 bytes) */
		"pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
		"pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		/* bad base64: length, characters, padding in the middle, whitespace */
		"pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAA*==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"pbkdf2-sha256$1000$AAAAAAAAAA==AAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=A",
		"pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
		"pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA===",
		"pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA==$ AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
		"pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=$",
		"====",
		"$$$$$$$$$$$$$$$$$$$$$",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (pwhash_verify("pw", bad[i]))
			fail_msg("malformed string %zu accepted: \"%s\"", i, bad[i]);
	}
	assert_false(pwhash_verify(NULL, h));
	assert_false(pwhash_verify("pw", NULL));

	/* A valid string with a trailing extra byte, or truncated, fails. */
	size_t n = strlen(h);
	char *t = malloc(n + 2);
	assert_non_null(t);
	memcpy(t, h, n);
	t[n] = 'A';
	t[n + 1] = '\0';
	assert_false(pwhash_verify("pw", t));
	for (size_t k = 0; k < n; k++) {
		t[k] = '\0';
		assert_false(pwhash_verify("pw", t));
		t[k] = h[k];
	}
	/* A long garbage string does not crash. */
	char *big = malloc(100000);
	assert_non_null(big);
	memset(big, 'A', 99999);
	big[99999] = '\0';
	memcpy(big, "pbkdf2-sha256$1000$", 19);
	big[40] = '$';
	assert_false(pwhash_verify("pw", big));
	free(big);
	free(t);
	free(h);
}

/* Flipping any single character of the hash makes verification fail. */
static void test_tamper(void **state)
{
	(void)state;
	char *h = pwhash_make("pw", FAST);
	assert_non_null(h);
	char *hash = strrchr(h, '$') + 1;
	for (size_t i = 0; i < 42; i++) {
		char c = hash[i];
		hash[i] = c == 'A' ? 'B' : 'A';
		assert_false(pwhash_verify("pw", h));
		hash[i] = c;
	}
	assert_true(pwhash_verify("pw", h));
	free(h);
}

static void test_default_cost(void **state)
{
	(void)state;
	char *h = pwhash_make("default cost", PWHASH_DEFAULT_ITERATIONS);
	assert_non_null(h);
	char prefix[64];
	snprintf(prefix, sizeof prefix, "pbkdf2-sha256$%u$", PWHASH_DEFAULT_ITERATIONS);
	assert_memory_equal(h, prefix, strlen(prefix));
	assert_true(pwhash_verify("default cost", h));
	free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_empty_and_utf8_passwords),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_salts_differ),
		cmocka_unit_test(test_iteration_bounds),
		cmocka_unit_test(test_known_answer),
		cmocka_unit_test(test_non_canonical),
		cmocka_unit_test(test_stored_bounds),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_tamper),
		cmocka_unit_test(test_default_cost),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
