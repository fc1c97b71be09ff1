/* test_cpuid.c - unit tests for poold/cpuid.c (feature sets, levelling, join warning). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cpuid.h"

/* Real-looking feature sets (Xen featureset order, 16 words). */
#define INTEL_NEW                                                                                  \
	"1fcbfbff-f7fa3223-2d93fbff-00000023-00000001-000007ab-00000000-00000000-001000c8-"        \
	"00000000-00000000-00000000-00000000-00000000-00000000-00000000"
/* An older Intel host: lacks some word 1 and word 5 bits of INTEL_NEW. */
#define INTEL_OLD                                                                                  \
	"1fcbfbff-f7ba2223-2c100800-00000001-00000000-00000000-00000000-00000000-00000000-"        \
	"00000000-00000000-00000000-00000000-00000000-00000000-00000000"
#define AMD_EPYC                                                                                   \
	"178bfbff-f6f83203-2e500800-040001f7-0000000f-219c01a9-00400004-00000000-000f7f7f-"        \
	"00000000-00000000-00000000-00000000-00000000-00000000-00000000"
#define INTEL "GenuineIntel"
#define AMD "AuthenticAMD"

static struct cpuid_set P(const char *s)
{
	struct cpuid_set r;
	assert_int_equal(cpuid_parse(s, &r), 0);
	return r;
}

static const char *F(const struct cpuid_set *s, char *buf)
{
	cpuid_format(s, buf, CPUID_TEXT_MAX);
	return buf;
}

static const char *D(const struct cpuid_set *s, char *buf, size_t len)
{
	cpuid_describe(s, buf, len);
	return buf;
}

/* ---- parse / format ----------------------------------------------------- */

static void test_parse_empty(void **state)
{
	(void)state;
	struct cpuid_set s;
	memset(&s, 0xaa, sizeof s);
	assert_int_equal(cpuid_parse("", &s), 0);
	assert_int_equal(s.cs_nwords, 0);
	for (int i = 0; i < CPUID_MAX_WORDS; i++)
		assert_int_equal(s.cs_words[i], 0);
	char buf[CPUID_TEXT_MAX];
	memset(buf, 'x', sizeof buf);
	assert_string_equal(F(&s, buf), "");
}

static void test_parse_words(void **state)
{
	(void)state;
	struct cpuid_set s = P("00000001");
	assert_int_equal(s.cs_nwords, 1);
	assert_int_equal(s.cs_words[0], 1);
	s = P("ffffffff-00000000-80000000");
	assert_int_equal(s.cs_nwords, 3);
	assert_int_equal(s.cs_words[0], 0xffffffffu);
	assert_int_equal(s.cs_words[1], 0);
	assert_int_equal(s.cs_words[2], 0x80000000u);
	for (int i = 3; i < CPUID_MAX_WORDS; i++)
		assert_int_equal(s.cs_words[i], 0);
	s = P(INTEL_NEW);
	assert_int_equal(s.cs_nwords, 16);
	assert_int_equal(s.cs_words[0], 0x1fcbfbffu);
	assert_int_equal(s.cs_words[1], 0xf7fa3223u);
	assert_int_equal(s.cs_words[8], 0x001000c8u);
	assert_int_equal(s.cs_words[15], 0);
}

static void test_parse_uppercase(void **state)
{
	(void)state;
	char buf[CPUID_TEXT_MAX];
	struct cpuid_set s = P("1FCBFBFF-F7fa3223-ABCDEF01");
	assert_int_equal(s.cs_words[0], 0x1fcbfbffu);
	assert_int_equal(s.cs_words[1], 0xf7fa3223u);
	assert_int_equal(s.cs_words[2], 0xabcdef01u);
	assert_string_equal(F(&s, buf), "1fcbfbff-f7fa3223-abcdef01");
}

static void test_parse_max_words(void **state)
{
	(void)state;
	char text[CPUID_TEXT_MAX + 16], buf[CPUID_TEXT_MAX];
	size_t o = 0;
	for (int i = 0; i < CPUID_MAX_WORDS; i++)
		o += (size_t)snprintf(text + o, sizeof text - o, "%s%08x", i ? "-" : "", (unsigned)(i * 0x01010101u));
	struct cpuid_set s = P(text);
	assert_int_equal(s.cs_nwords, CPUID_MAX_WORDS);
	assert_int_equal(s.cs_words[31], 31u * 0x01010101u);
	assert_int_equal(strlen(text), 9 * CPUID_MAX_WORDS - 1); /* fits CPUID_TEXT_MAX */
	assert_string_equal(F(&s, buf), text);

	/* One more word is too many. */
	snprintf(text + o, sizeof text - o, "-00000000");
	struct cpuid_set t = P("00000007");
	assert_int_equal(cpuid_parse(text, &t), -1);
	assert_int_equal(t.cs_nwords, 1);
	assert_int_equal(t.cs_words[0], 7);
}

static void test_parse_rejects(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"-",
		"--",
		"1fcbfbff-",
		"-1fcbfbff",
		"1fcbfbff--f7fa3223",
		"1fcbfbff---f7fa3223",
		"1fcbfbff-f7fa3223-",
		"1fcbfbf",            /* 7 digits */
		"abc",                /* 3 digits */
		"1",                  /* 1 digit */
		"1fcbfbff0",          /* 9 digits */
		"1fcbfbff-f7fa322",   /* second word 7 digits */
		"1fcbfbff-f7fa32230", /* second word 9 digits */
		"1fcbfbff-0",
		"0000000g",
		"1fcbfbfz",
		"0x1fcbfb",
		"+1fcbfbf",
		"1fcbfbf.",
		" 1fcbfbff",
		"1fcbfbff ",
		"1fcbfbff\n",
		"\t1fcbfbff",
		"1fcbfbff -f7fa3223",
		"1fcbfbff- f7fa3223",
		"1fcb fbff",
		" ",
		"\n",
		"1fcbfbff_f7fa3223",
		"1fcbfbff,f7fa3223",
		"1fcbfbff:f7fa3223",
		("\xc3\xa9" "1fcbfbf"), /* non-ASCII */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct cpuid_set s = P("deadbeef");
		if (cpuid_parse(bad[i], &s) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
		/* out is left unchanged */
		assert_int_equal(s.cs_nwords, 1);
		assert_int_equal(s.cs_words[0], 0xdeadbeefu);
	}
	struct cpuid_set s;
	assert_int_equal(cpuid_parse(NULL, &s), -1);
	assert_int_equal(cpuid_parse("00000000", NULL), -1);
}

static void test_round_trips(void **state)
{
	(void)state;
	static const char *const good[] = {
		"",
		"00000000",
		"ffffffff",
		"00000001-80000000",
		"00000000-00000000-00000000",
		INTEL_NEW,
		INTEL_OLD,
		AMD_EPYC,
	};
	char buf[CPUID_TEXT_MAX];
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		struct cpuid_set a = P(good[i]);
		assert_string_equal(F(&a, buf), good[i]);
		struct cpuid_set b = P(buf);
		assert_memory_equal(&a, &b, sizeof a);
	}
	/* Sets built by hand (garbage past cs_nwords) format and re-parse. */
	struct cpuid_set h;
	memset(&h, 0x5a, sizeof h);
	h.cs_nwords = 2;
	h.cs_words[0] = 0x12;
	h.cs_words[1] = 0xfedcba98u;
	assert_string_equal(F(&h, buf), "00000012-fedcba98");
	struct cpuid_set r = P(buf);
	assert_int_equal(r.cs_nwords, 2);
	assert_int_equal(r.cs_words[2], 0);
}

static void test_format_truncates(void **state)
{
	(void)state;
	struct cpuid_set s = P("1fcbfbff-f7fa3223");
	char buf[12];
	memset(buf, 'x', sizeof buf);
	cpuid_format(&s, buf, sizeof buf);
	assert_string_equal(buf, "1fcbfbff-f7");
	memset(buf, 'x', sizeof buf);
	cpuid_format(&s, buf, 1);
	assert_int_equal(buf[0], '\0');
	assert_int_equal(buf[1], 'x');
	memset(buf, 'x', sizeof buf);
	cpuid_format(&s, buf, 0);
	assert_int_equal(buf[0], 'x');
	cpuid_format(&s, NULL, 0);
	cpuid_format(&s, NULL, 99);
	/* Out-of-range cs_nwords is clamped, not overrun. */
	struct cpuid_set bad = s;
	bad.cs_nwords = -3;
	char big[CPUID_TEXT_MAX];
	assert_string_equal(F(&bad, big), "");
	memset(&bad, 0, sizeof bad);
	bad.cs_nwords = 1000;
	assert_int_equal(strlen(F(&bad, big)), 9 * CPUID_MAX_WORDS - 1);
}

/* ---- AND / subset / describe -------------------------------------------- */

static void test_and(void **state)
{
	(void)state;
	char buf[CPUID_TEXT_MAX];
	struct cpuid_set a = P("ff00ff00-0000ffff"), b = P("0ff00ff0-ffff0000"), r;
	cpuid_and(&a, &b, &r);
	assert_string_equal(F(&r, buf), "0f000f00-00000000");

	/* Different lengths: the result is as long as the longer, extra words 0. */
	struct cpuid_set shortset = P("ffffffff"), longset = P("12345678-ffffffff-00000001");
	cpuid_and(&shortset, &longset, &r);
	assert_string_equal(F(&r, buf), "12345678-00000000-00000000");
	cpuid_and(&longset, &shortset, &r);
	assert_string_equal(F(&r, buf), "12345678-00000000-00000000");

	/* Empty set with anything: zeros of the other's length. */
	struct cpuid_set e = P("");
	cpuid_and(&e, &longset, &r);
	assert_string_equal(F(&r, buf), "00000000-00000000-00000000");
	cpuid_and(&e, &e, &r);
	assert_int_equal(r.cs_nwords, 0);

	/* Commutative, idempotent, in place. */
	struct cpuid_set i1 = P(INTEL_NEW), i2 = P(INTEL_OLD), x, y;
	cpuid_and(&i1, &i2, &x);
	cpuid_and(&i2, &i1, &y);
	assert_memory_equal(&x, &y, sizeof x);
	cpuid_and(&x, &x, &y);
	assert_memory_equal(&x, &y, sizeof x);
	cpuid_and(&i1, &i2, &i1); /* out aliases a */
	assert_memory_equal(&i1, &x, sizeof x);
	i1 = P(INTEL_NEW);
	cpuid_and(&i1, &i2, &i2); /* out aliases b */
	assert_memory_equal(&i2, &x, sizeof x);
	assert_string_equal(F(&x, buf), "1fcbfbff-f7ba2223-2c100800-00000001-00000000-00000000-00000000-00000000-"
					"00000000-00000000-00000000-00000000-00000000-00000000-00000000-00000000");
}

static void test_subset_basic(void **state)
{
	(void)state;
	char d[256];
	struct cpuid_set vm = P("00000008-00020008"), host = P("00000008-00000000"), m;
	assert_false(cpuid_subset(&vm, &host, &m));
	assert_int_equal(m.cs_nwords, 2);
	assert_int_equal(m.cs_words[0], 0);
	assert_int_equal(m.cs_words[1], (1u << 3) | (1u << 17));
	assert_string_equal(D(&m, d, sizeof d), "word 1 bits 3,17");

	assert_true(cpuid_subset(&host, &vm, &m));
	assert_true(cpuid_is_empty(&m));
	assert_int_equal(m.cs_nwords, 2);
	assert_true(cpuid_subset(&vm, &vm, NULL));
	assert_false(cpuid_subset(&vm, &host, NULL));

	/* Real sets: the old Intel level fits the new host, not the reverse. */
	struct cpuid_set in = P(INTEL_NEW), io = P(INTEL_OLD);
	assert_true(cpuid_subset(&io, &in, &m));
	assert_false(cpuid_subset(&in, &io, &m));
	assert_string_equal(D(&m, d, sizeof d),
			    "word 1 bits 12,22; word 2 bits 0,1,2,3,4,5,6,7,8,9,12,13,14,15,16,17,23,24; "
			    "word 3 bits 1,5; word 4 bit 0; word 5 bits 0,1,3,5,7,8,9,10; word 8 bits 3,6,7,20");
	/* missing == in & ~io exactly */
	for (int i = 0; i < 16; i++)
		assert_int_equal(m.cs_words[i], in.cs_words[i] & ~io.cs_words[i]);

	/* missing may alias an input */
	struct cpuid_set v2 = vm;
	assert_false(cpuid_subset(&v2, &host, &v2));
	assert_string_equal(D(&v2, d, sizeof d), "word 1 bits 3,17");
}

static void test_subset_zero_extension(void **state)
{
	(void)state;
	char d[256];
	struct cpuid_set m;
	/* A shorter VM set vs a longer host set: the VM's missing words are 0. */
	struct cpuid_set vm = P("00000003"), host = P("00000007-ffffffff-00000000");
	assert_true(cpuid_subset(&vm, &host, &m));
	assert_int_equal(m.cs_nwords, 1);
	/* ... and still not a subset when the common word lacks bits */
	vm = P("00000009");
	assert_false(cpuid_subset(&vm, &host, &m));
	assert_string_equal(D(&m, d, sizeof d), "word 0 bit 3");

	/* A longer VM set whose extra words are zero is a subset of a shorter host set. */
	vm = P("00000001-00000000-00000000");
	host = P("00000001");
	assert_true(cpuid_subset(&vm, &host, &m));
	assert_int_equal(m.cs_nwords, 3);
	assert_true(cpuid_is_empty(&m));

	/* A longer VM set with non-zero extra words is not. */
	vm = P("00000001-00000000-80000001");
	assert_false(cpuid_subset(&vm, &host, &m));
	assert_int_equal(m.cs_nwords, 3);
	assert_int_equal(m.cs_words[2], 0x80000001u);
	assert_string_equal(D(&m, d, sizeof d), "word 2 bits 0,31");

	/* An empty host set: only an all-zero VM set fits. */
	struct cpuid_set e = P("");
	assert_true(cpuid_subset(&e, &e, NULL));
	assert_true(cpuid_subset(&e, &host, NULL));
	assert_false(cpuid_subset(&host, &e, &m));
	assert_string_equal(D(&m, d, sizeof d), "word 0 bit 0");
	vm = P("00000000-00000000");
	assert_true(cpuid_subset(&vm, &e, NULL));
}

static void test_describe(void **state)
{
	(void)state;
	char d[512];
	struct cpuid_set s = P("");
	memset(d, 'x', sizeof d);
	assert_string_equal(D(&s, d, sizeof d), "");
	s = P("00000000-00000000");
	assert_string_equal(D(&s, d, sizeof d), "");
	assert_true(cpuid_is_empty(&s));
	s = P("00000000-00020008-00000000-00000000-00000001");
	assert_false(cpuid_is_empty(&s));
	assert_string_equal(D(&s, d, sizeof d), "word 1 bits 3,17; word 4 bit 0");
	s = P("80000000");
	assert_string_equal(D(&s, d, sizeof d), "word 0 bit 31");
	s = P("ffffffff");
	assert_string_equal(D(&s, d, sizeof d), "word 0 bits 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,"
						"18,19,20,21,22,23,24,25,26,27,28,29,30,31");
	s = P("00000000-00000000-00000000-00000000-00000000-00000000-00000000-00000000-"
	      "00000000-00000000-00000000-00000000-00000000-00000000-00000000-00000000-"
	      "00000000-00000000-00000000-00000000-00000000-00000000-00000000-00000000-"
	      "00000000-00000000-00000000-00000000-00000000-00000000-00000000-00000400");
	assert_string_equal(D(&s, d, sizeof d), "word 31 bit 10");

	/* Truncation keeps a NUL-terminated prefix. */
	s = P("00000000-00020008-00000000-00000000-00000001");
	char small[10];
	memset(small, 'x', sizeof small);
	cpuid_describe(&s, small, sizeof small);
	assert_string_equal(small, "word 1 bi");
	cpuid_describe(&s, small, 0);
	cpuid_describe(&s, NULL, 10);

	/* The worst case (every bit of 32 words) fits in a few KiB and is bounded. */
	struct cpuid_set all;
	memset(&all, 0xff, sizeof all);
	all.cs_nwords = CPUID_MAX_WORDS;
	char huge[8192];
	cpuid_describe(&all, huge, sizeof huge);
	assert_true(strlen(huge) < sizeof huge - 1);
	assert_non_null(strstr(huge, "; word 31 bits 0,1,"));
	cpuid_describe(&all, d, sizeof d);
	assert_int_equal(strlen(d), sizeof d - 1);
}

/* ---- cpuid_check_vm ----------------------------------------------------- */

static void test_check_vm(void **state)
{
	(void)state;
	char r[256];
	/* fits */
	assert_null(cpuid_check_vm(INTEL, INTEL_OLD, INTEL, INTEL_NEW, r, sizeof r));
	assert_null(cpuid_check_vm(INTEL, INTEL_NEW, INTEL, INTEL_NEW, r, sizeof r));
	/* features missing */
	const char *why = cpuid_check_vm(INTEL, "00000000-00000020", INTEL, "ffffffff-ffffffdf", r, sizeof r);
	assert_ptr_equal(why, r);
	assert_string_equal(why, "the host lacks CPU features: word 1 bit 5");
	why = cpuid_check_vm(INTEL, INTEL_NEW, INTEL, INTEL_OLD, r, sizeof r);
	assert_non_null(why);
	assert_true(strncmp(why, "the host lacks CPU features: word 1 bits 12,22; word 2 bits", 59) == 0);
	/* vendor, in the order VM then host; checked before features */
	why = cpuid_check_vm(AMD, AMD_EPYC, INTEL, INTEL_NEW, r, sizeof r);
	assert_string_equal(why, "vendor AuthenticAMD differs from GenuineIntel");
	why = cpuid_check_vm(INTEL, "00000000", AMD, AMD_EPYC, r, sizeof r);
	assert_string_equal(why, "vendor GenuineIntel differs from AuthenticAMD");
	why = cpuid_check_vm(INTEL, "00000000", NULL, AMD_EPYC, r, sizeof r);
	assert_string_equal(why, "vendor GenuineIntel differs from ");
	why = cpuid_check_vm(INTEL, "00000000", INTEL, "bogus", r, sizeof r);
	assert_string_equal(why, "invalid host CPU feature set");
	why = cpuid_check_vm(AMD, "00000000", INTEL, "bogus", r, sizeof r);
	assert_string_equal(why, "vendor AuthenticAMD differs from GenuineIntel");
	why = cpuid_check_vm(INTEL, "00000000-", INTEL, INTEL_NEW, r, sizeof r);
	assert_string_equal(why, "invalid VM CPU feature set");
	/* unknown VM vendor / set skip their checks */
	assert_null(cpuid_check_vm(NULL, INTEL_OLD, AMD, INTEL_NEW, r, sizeof r));
	assert_null(cpuid_check_vm("", INTEL_OLD, AMD, INTEL_NEW, r, sizeof r));
	assert_null(cpuid_check_vm(INTEL, NULL, INTEL, "", r, sizeof r));
	assert_null(cpuid_check_vm(NULL, NULL, NULL, NULL, r, sizeof r));
	/* NULL host set = no features */
	why = cpuid_check_vm(INTEL, "00000001", INTEL, NULL, r, sizeof r);
	assert_string_equal(why, "the host lacks CPU features: word 0 bit 0");
	assert_null(cpuid_check_vm(INTEL, "00000000", INTEL, NULL, r, sizeof r));
	/* no reason buffer: still non-NULL */
	assert_string_equal(cpuid_check_vm(AMD, "", INTEL, "", NULL, 0), "incompatible");
	assert_string_equal(cpuid_check_vm(AMD, "", INTEL, "", r, 0), "incompatible");
	assert_null(cpuid_check_vm(INTEL, "", INTEL, "", NULL, 0));
	/* short buffer: truncated, same pointer */
	char tiny[8];
	why = cpuid_check_vm(AMD, "", INTEL, "", tiny, sizeof tiny);
	assert_ptr_equal(why, tiny);
	assert_string_equal(tiny, "vendor ");
}

/* ---- pool level --------------------------------------------------------- */

static void test_pool_level_one(void **state)
{
	(void)state;
	char r[256] = "", buf[CPUID_TEXT_MAX];
	struct cpuid_host h[] = {{INTEL, INTEL_NEW, "h0"}};
	struct cpuid_set lvl;
	assert_int_equal(cpuid_pool_level(h, 1, &lvl, r, sizeof r), 0);
	assert_string_equal(F(&lvl, buf), INTEL_NEW);
	struct cpuid_set want = P(INTEL_NEW);
	assert_memory_equal(&lvl, &want, sizeof lvl);
	assert_int_equal(cpuid_pool_level(h, 1, NULL, NULL, 0), 0);
}

static void test_pool_level_two(void **state)
{
	(void)state;
	char r[256], buf[CPUID_TEXT_MAX];
	struct cpuid_host h[] = {{INTEL, INTEL_NEW, NULL}, {INTEL, INTEL_OLD, NULL}};
	struct cpuid_set lvl;
	assert_int_equal(cpuid_pool_level(h, 2, &lvl, r, sizeof r), 0);
	assert_string_equal(F(&lvl, buf), INTEL_OLD); /* OLD is a subset of NEW */
	/* Every host's set contains the level. */
	for (size_t i = 0; i < 2; i++) {
		struct cpuid_set hs = P(h[i].ch_featureset);
		assert_true(cpuid_subset(&lvl, &hs, NULL));
	}
}

static void test_pool_level_five(void **state)
{
	(void)state;
	char r[256], buf[CPUID_TEXT_MAX];
	struct cpuid_host h[] = {
		{INTEL, "ffffffff-ffffffff-0000ffff", "h0"},
		{INTEL, "fffffffe-ffffffff-ffffffff-00000001", "h1"},
		{INTEL, "ffffffff-7fffffff", "h2"}, /* shorter: word 2 and 3 become 0 */
		{INTEL, "ffff00ff-ffffffff-ffffffff", "h3"},
		{INTEL, "ffffffff-ffffffef-ffffffff-ffffffff", "h4"},
	};
	struct cpuid_set lvl;
	assert_int_equal(cpuid_pool_level(h, 5, &lvl, r, sizeof r), 0);
	assert_string_equal(F(&lvl, buf), "ffff00fe-7fffffef-00000000-00000000");
	/* Order does not matter. */
	struct cpuid_host rev[5];
	for (int i = 0; i < 5; i++)
		rev[i] = h[4 - i];
	struct cpuid_set lvl2;
	assert_int_equal(cpuid_pool_level(rev, 5, &lvl2, r, sizeof r), 0);
	assert_memory_equal(&lvl, &lvl2, sizeof lvl);
	/* Without h2 the third word survives. */
	struct cpuid_host four[] = {h[0], h[1], h[3], h[4]};
	assert_int_equal(cpuid_pool_level(four, 4, &lvl, r, sizeof r), 0);
	assert_string_equal(F(&lvl, buf), "ffff00fe-ffffffef-0000ffff-00000000");
}

static void test_pool_level_vendor_mismatch(void **state)
{
	(void)state;
	char r[256];
	struct cpuid_host h[] = {
		{INTEL, INTEL_NEW, "h0"}, {INTEL, INTEL_OLD, "h1"}, {INTEL, INTEL_NEW, "h2"},
		{AMD, AMD_EPYC, "h3"},    {INTEL, INTEL_NEW, "h4"},
	};
	struct cpuid_set lvl = P("0000abcd");
	assert_int_equal(cpuid_pool_level(h, 5, &lvl, r, sizeof r), -1);
	assert_string_equal(r, "host h3 has CPU vendor AuthenticAMD, host h0 has GenuineIntel");
	assert_non_null(strstr(r, AMD));
	assert_non_null(strstr(r, INTEL));
	/* level untouched */
	assert_int_equal(lvl.cs_nwords, 1);
	assert_int_equal(lvl.cs_words[0], 0xabcd);

	/* Two hosts, unnamed; the first host of another vendor. */
	struct cpuid_host two[] = {{AMD, AMD_EPYC, NULL}, {INTEL, INTEL_NEW, ""}};
	assert_int_equal(cpuid_pool_level(two, 2, &lvl, r, sizeof r), -1);
	assert_string_equal(r, "host 1 has CPU vendor GenuineIntel, host 0 has AuthenticAMD");
	/* Vendor compare is exact. */
	struct cpuid_host cs[] = {{INTEL, "", NULL}, {"genuineintel", "", NULL}};
	assert_int_equal(cpuid_pool_level(cs, 2, &lvl, r, sizeof r), -1);
	/* NULL reason buffer is fine */
	assert_int_equal(cpuid_pool_level(h, 5, NULL, NULL, 0), -1);
}

static void test_pool_level_errors(void **state)
{
	(void)state;
	char r[256];
	struct cpuid_set lvl;
	assert_int_equal(cpuid_pool_level(NULL, 0, &lvl, r, sizeof r), -1);
	assert_string_equal(r, "no hosts");
	struct cpuid_host h[] = {{INTEL, INTEL_NEW, "a"}, {INTEL, "1fcbfbff--0", "b"}};
	assert_int_equal(cpuid_pool_level(h, 0, &lvl, r, sizeof r), -1);
	assert_int_equal(cpuid_pool_level(h, 2, &lvl, r, sizeof r), -1);
	assert_string_equal(r, "host b has an invalid CPU feature set");
	/* NULL featureset = no features (0 words) */
	struct cpuid_host n[] = {{INTEL, INTEL_NEW, "a"}, {INTEL, NULL, "b"}};
	assert_int_equal(cpuid_pool_level(n, 2, &lvl, r, sizeof r), 0);
	assert_int_equal(lvl.cs_nwords, 16);
	assert_true(cpuid_is_empty(&lvl));
}

/* ---- join level --------------------------------------------------------- */

static void test_join_lowers(void **state)
{
	(void)state;
	char r[256], buf[CPUID_TEXT_MAX], d[512];
	struct cpuid_host pool[] = {{INTEL, INTEL_NEW, "h0"}, {INTEL, INTEL_NEW, "h1"}};
	struct cpuid_host j = {INTEL, INTEL_OLD, "new"};
	struct cpuid_set nl, lost;
	assert_int_equal(cpuid_join_level(pool, 2, &j, &nl, &lost, r, sizeof r), 1);
	assert_string_equal(F(&nl, buf), INTEL_OLD);
	assert_string_equal(D(&lost, d, sizeof d),
			    "word 1 bits 12,22; word 2 bits 0,1,2,3,4,5,6,7,8,9,12,13,14,15,16,17,23,24; "
			    "word 3 bits 1,5; word 4 bit 0; word 5 bits 0,1,3,5,7,8,9,10; word 8 bits 3,6,7,20");
	/* lost == old level & ~joining; new level == old level & ~lost */
	struct cpuid_set old = P(INTEL_NEW), js = P(INTEL_OLD);
	for (int i = 0; i < 16; i++) {
		assert_int_equal(lost.cs_words[i], old.cs_words[i] & ~js.cs_words[i]);
		assert_int_equal(nl.cs_words[i], old.cs_words[i] & ~lost.cs_words[i]);
	}
	/* Outputs optional */
	assert_int_equal(cpuid_join_level(pool, 2, &j, NULL, NULL, NULL, 0), 1);
}

static void test_join_does_not_lower(void **state)
{
	(void)state;
	char r[256], buf[CPUID_TEXT_MAX];
	struct cpuid_host pool[] = {{INTEL, INTEL_NEW, "h0"}, {INTEL, INTEL_OLD, "h1"}};
	struct cpuid_set nl, lost;
	/* A host with more features than the level. */
	struct cpuid_host j = {INTEL, INTEL_NEW, "h2"};
	assert_int_equal(cpuid_join_level(pool, 2, &j, &nl, &lost, r, sizeof r), 0);
	assert_string_equal(F(&nl, buf), INTEL_OLD);
	assert_true(cpuid_is_empty(&lost));
	assert_int_equal(lost.cs_nwords, 16);
	/* Exactly the level. */
	j.ch_featureset = INTEL_OLD;
	assert_int_equal(cpuid_join_level(pool, 2, &j, &nl, &lost, r, sizeof r), 0);
	assert_string_equal(F(&nl, buf), INTEL_OLD);
	/* A longer set with extra words: still not lower; the level grows zero words. */
	j.ch_featureset = INTEL_OLD "-ffffffff";
	assert_int_equal(cpuid_join_level(pool, 2, &j, &nl, &lost, r, sizeof r), 0);
	assert_int_equal(nl.cs_nwords, 17);
	assert_int_equal(nl.cs_words[16], 0);
	struct cpuid_set old = P(INTEL_OLD);
	assert_true(cpuid_subset(&nl, &old, NULL));
	assert_true(cpuid_subset(&old, &nl, NULL));
}

static void test_join_shorter_set(void **state)
{
	(void)state;
	char r[256], d[256];
	struct cpuid_set nl, lost;
	/* A shorter joining set loses the old level's non-zero words past its end. */
	struct cpuid_host pool[] = {{INTEL, "00000003-00000000-00000010", NULL}};
	struct cpuid_host j = {INTEL, "00000007", NULL};
	assert_int_equal(cpuid_join_level(pool, 1, &j, &nl, &lost, r, sizeof r), 1);
	assert_string_equal(D(&lost, d, sizeof d), "word 2 bit 4");
	assert_int_equal(nl.cs_nwords, 3);
	assert_int_equal(nl.cs_words[0], 3);
	assert_int_equal(nl.cs_words[2], 0);
	/* ... but zero words past its end cost nothing. */
	struct cpuid_host pool2[] = {{INTEL, "00000003-00000000-00000000", NULL}};
	assert_int_equal(cpuid_join_level(pool2, 1, &j, &nl, &lost, r, sizeof r), 0);
}

static void test_join_refused(void **state)
{
	(void)state;
	char r[256];
	struct cpuid_host pool[] = {{INTEL, INTEL_NEW, "h0"}, {INTEL, INTEL_OLD, "h1"}};
	struct cpuid_host amd = {AMD, AMD_EPYC, "epyc"};
	struct cpuid_set nl = P("00000005"), lost = P("00000006");
	assert_int_equal(cpuid_join_level(pool, 2, &amd, &nl, &lost, r, sizeof r), -1);
	assert_string_equal(r, "host epyc has CPU vendor AuthenticAMD, host h0 has GenuineIntel");
	assert_int_equal(nl.cs_words[0], 5);
	assert_int_equal(lost.cs_words[0], 6);
	amd.ch_name = NULL;
	assert_int_equal(cpuid_join_level(pool, 2, &amd, &nl, &lost, r, sizeof r), -1);
	assert_string_equal(r, "host 2 has CPU vendor AuthenticAMD, host h0 has GenuineIntel");
	struct cpuid_host badset = {INTEL, "xyz", "j"};
	assert_int_equal(cpuid_join_level(pool, 2, &badset, &nl, &lost, r, sizeof r), -1);
	assert_string_equal(r, "host j has an invalid CPU feature set");
	/* An inhomogeneous pool already. */
	struct cpuid_host mixed[] = {{INTEL, INTEL_NEW, "h0"}, {AMD, AMD_EPYC, "h1"}};
	struct cpuid_host j = {INTEL, INTEL_NEW, "j"};
	assert_int_equal(cpuid_join_level(mixed, 2, &j, &nl, &lost, r, sizeof r), -1);
	assert_string_equal(r, "host h1 has CPU vendor AuthenticAMD, host h0 has GenuineIntel");
	assert_int_equal(cpuid_join_level(pool, 0, &j, &nl, &lost, r, sizeof r), -1);
	assert_string_equal(r, "no hosts");
	assert_int_equal(cpuid_join_level(pool, 2, NULL, &nl, &lost, r, sizeof r), -1);
}

/* ---- join warning: stranded VMs ----------------------------------------- */

static void test_join_stranded_several(void **state)
{
	(void)state;
	char r[256], d[512];
	/* Old level: 0000000f-000000ff; the joining host lacks word 0 bit 3 and word 1 bits 4,7. */
	const char *join = "00000007-0000ff6f";
	struct cpuid_vm vms[] = {
		{"vm-old-level", INTEL, "0000000f-000000ff"},    /* booted with the old level: stranded */
		{"vm-new-level", INTEL, "00000007-0000006f"},    /* booted after the join: fine */
		{"vm-never-booted", NULL, NULL},                  /* no flags recorded: fine */
		{"vm-partial", INTEL, "00000007-00000010"},      /* only word 1 bit 4 missing */
		{"vm-older", INTEL, "00000001"},                  /* older, shorter level: fine */
		{"vm-amd", AMD, "00000001"},                      /* other vendor */
		{"vm-garbage", INTEL, "0000000f-"},               /* unparsable record */
		{"vm-long-zero", INTEL, "00000007-0000006f-00000000"}, /* extra zero word: fine */
		{"vm-long", INTEL, "00000007-0000006f-00000100"}, /* extra non-zero word: stranded */
		{"vm-no-vendor", "", "00000008"},                 /* vendor unknown, bit missing */
	};
	size_t nvms = sizeof vms / sizeof vms[0];
	struct cpuid_stranded st[16];
	memset(st, 0xcc, sizeof st);
	int n = cpuid_join_stranded(vms, nvms, INTEL, join, st, 16, r, sizeof r);
	assert_int_equal(n, 6);

	assert_int_equal(st[0].st_vm, 0);
	assert_string_equal(st[0].st_uuid, "vm-old-level");
	assert_int_equal(st[0].st_why, CPUID_STRAND_FEATURES);
	assert_string_equal(D(&st[0].st_missing, d, sizeof d), "word 0 bit 3; word 1 bits 4,7");
	cpuid_stranded_describe(&st[0], vms[0].cv_vendor, INTEL, d, sizeof d);
	assert_string_equal(d, "VM vm-old-level: the joining host lacks CPU features: word 0 bit 3; word 1 bits 4,7");

	assert_int_equal(st[1].st_vm, 3);
	assert_string_equal(st[1].st_uuid, "vm-partial");
	assert_int_equal(st[1].st_why, CPUID_STRAND_FEATURES);
	assert_string_equal(D(&st[1].st_missing, d, sizeof d), "word 1 bit 4");

	assert_int_equal(st[2].st_vm, 5);
	assert_int_equal(st[2].st_why, CPUID_STRAND_VENDOR);
	assert_int_equal(st[2].st_missing.cs_nwords, 0);
	cpuid_stranded_describe(&st[2], vms[5].cv_vendor, INTEL, d, sizeof d);
	assert_string_equal(d, "VM vm-amd: vendor AuthenticAMD differs from the joining host's GenuineIntel");

	assert_int_equal(st[3].st_vm, 6);
	assert_int_equal(st[3].st_why, CPUID_STRAND_INVALID);
	cpuid_stranded_describe(&st[3], vms[6].cv_vendor, INTEL, d, sizeof d);
	assert_string_equal(d, "VM vm-garbage: invalid VM CPU feature set");

	assert_int_equal(st[4].st_vm, 8);
	assert_int_equal(st[4].st_why, CPUID_STRAND_FEATURES);
	assert_int_equal(st[4].st_missing.cs_nwords, 3);
	assert_string_equal(D(&st[4].st_missing, d, sizeof d), "word 2 bit 8");

	assert_int_equal(st[5].st_vm, 9);
	assert_string_equal(D(&st[5].st_missing, d, sizeof d), "word 0 bit 3");

	/* Agrees with cpuid_check_vm VM by VM. */
	for (size_t i = 0, k = 0; i < nvms; i++) {
		const char *why = cpuid_check_vm(vms[i].cv_vendor, vms[i].cv_featureset, INTEL, join, r, sizeof r);
		bool stranded = k < (size_t)n && st[k].st_vm == i;
		assert_int_equal(why != NULL, stranded);
		k += stranded;
	}

	/* cap smaller than the count: the count is still exact, only cap written. */
	memset(st, 0xcc, sizeof st);
	assert_int_equal(cpuid_join_stranded(vms, nvms, INTEL, join, st, 2, r, sizeof r), 6);
	assert_int_equal(st[1].st_vm, 3);
	unsigned char cc[sizeof st[2]];
	memset(cc, 0xcc, sizeof cc);
	assert_memory_equal(&st[2], cc, sizeof cc);
	/* counting only */
	assert_int_equal(cpuid_join_stranded(vms, nvms, INTEL, join, NULL, 0, NULL, 0), 6);
	assert_int_equal(cpuid_join_stranded(vms, nvms, INTEL, join, NULL, 5, NULL, 0), 6);
	assert_int_equal(cpuid_join_stranded(NULL, 0, INTEL, join, NULL, 0, NULL, 0), 0);
	assert_int_equal(cpuid_join_stranded(vms, 0, INTEL, join, st, 16, NULL, 0), 0);
	/* invalid joining set */
	assert_int_equal(cpuid_join_stranded(vms, nvms, INTEL, "07", st, 16, r, sizeof r), -1);
	assert_string_equal(r, "invalid joining host CPU feature set");
}

static void test_join_stranded_none_when_level_kept(void **state)
{
	(void)state;
	char r[256];
	struct cpuid_host pool[] = {{INTEL, INTEL_NEW, "h0"}, {INTEL, INTEL_OLD, "h1"}};
	struct cpuid_set lvl;
	assert_int_equal(cpuid_pool_level(pool, 2, &lvl, r, sizeof r), 0);
	char lvltext[CPUID_TEXT_MAX];
	F(&lvl, lvltext);
	struct cpuid_vm vms[] = {
		{"a", INTEL, lvltext},
		{"b", INTEL, lvltext},
		{"c", INTEL, "1fcbfbff"},
	};
	struct cpuid_host j = {INTEL, INTEL_NEW, "h2"};
	assert_int_equal(cpuid_join_level(pool, 2, &j, NULL, NULL, r, sizeof r), 0);
	struct cpuid_stranded st[3];
	assert_int_equal(cpuid_join_stranded(vms, 3, INTEL, INTEL_NEW, st, 3, r, sizeof r), 0);
}

/* The whole story of the interpretation in cpuid.h, with real-looking sets. */
static void test_join_scenario(void **state)
{
	(void)state;
	char r[256], d[512];
	char old_level[CPUID_TEXT_MAX], new_level[CPUID_TEXT_MAX];
	struct cpuid_host pool[] = {{INTEL, INTEL_NEW, "h0"}, {INTEL, INTEL_NEW "-00000000", "h1"}};
	struct cpuid_set lvl, nl, lost;
	assert_int_equal(cpuid_pool_level(pool, 2, &lvl, r, sizeof r), 0);
	F(&lvl, old_level);

	/* Two VMs running with the old level (VM.start records last_boot_CPU_flags). */
	struct cpuid_vm vms[] = {{"vm1", INTEL, old_level}, {"vm2", INTEL, old_level}};

	/* An older host wants to join: the level drops. */
	struct cpuid_host j = {INTEL, INTEL_OLD, "h2"};
	assert_int_equal(cpuid_join_level(pool, 2, &j, &nl, &lost, r, sizeof r), 1);
	F(&nl, new_level);
	assert_false(cpuid_is_empty(&lost));

	/* Both running VMs are stranded: they cannot move to h2. */
	struct cpuid_stranded st[2];
	assert_int_equal(cpuid_join_stranded(vms, 2, INTEL, INTEL_OLD, st, 2, r, sizeof r), 2);
	/* Their missing bits are exactly what the level loses (they booted with it). */
	assert_memory_equal(&st[0].st_missing, &lost, sizeof lost);
	cpuid_stranded_describe(&st[1], INTEL, INTEL, d, sizeof d);
	assert_true(strncmp(d, "VM vm2: the joining host lacks CPU features: word 1 bits 12,22;", 63) == 0);

	/* They still fit every old host ... */
	for (size_t i = 0; i < 2; i++)
		assert_null(cpuid_check_vm(INTEL, old_level, INTEL, pool[i].ch_featureset, r, sizeof r));
	/* ... but not the new one. */
	assert_non_null(cpuid_check_vm(INTEL, old_level, INTEL, INTEL_OLD, r, sizeof r));

	/* A VM started after the join boots with the new level and fits all three hosts. */
	struct cpuid_host all[] = {pool[0], pool[1], j};
	assert_int_equal(cpuid_pool_level(all, 3, &lvl, r, sizeof r), 0);
	assert_memory_equal(&lvl, &nl, sizeof lvl);
	for (size_t i = 0; i < 3; i++)
		assert_null(cpuid_check_vm(INTEL, new_level, INTEL, all[i].ch_featureset, r, sizeof r));
	/* Nothing booted with the new level is stranded by another such join. */
	struct cpuid_vm later[] = {{"vm3", INTEL, new_level}};
	assert_int_equal(cpuid_join_stranded(later, 1, INTEL, INTEL_OLD, NULL, 0, NULL, 0), 0);
}

static void test_stranded_describe_edges(void **state)
{
	(void)state;
	char d[128];
	struct cpuid_stranded st;
	memset(&st, 0, sizeof st);
	st.st_vm = 7;
	st.st_why = CPUID_STRAND_VENDOR;
	cpuid_stranded_describe(&st, NULL, NULL, d, sizeof d);
	assert_string_equal(d, "vm 7: vendor  differs from the joining host's ");
	st.st_why = CPUID_STRAND_FEATURES;
	st.st_missing = P("00000000-00000002");
	cpuid_stranded_describe(&st, NULL, NULL, d, sizeof d);
	assert_string_equal(d, "vm 7: the joining host lacks CPU features: word 1 bit 1");
	char tiny[6];
	cpuid_stranded_describe(&st, NULL, NULL, tiny, sizeof tiny);
	assert_string_equal(tiny, "vm 7:");
	cpuid_stranded_describe(NULL, NULL, NULL, d, sizeof d);
	assert_string_equal(d, "");
	cpuid_stranded_describe(&st, NULL, NULL, NULL, 0);
}

static void test_real_intel_amd(void **state)
{
	(void)state;
	char r[256], buf[CPUID_TEXT_MAX];
	struct cpuid_set amd = P(AMD_EPYC), intel = P(INTEL_NEW), both;
	assert_string_equal(F(&amd, buf), AMD_EPYC);
	cpuid_and(&amd, &intel, &both);
	assert_string_equal(F(&both, buf), "178bfbff-f6f83203-2c100800-00000023-00000001-000001a9-00000000-00000000-"
					   "00000048-00000000-00000000-00000000-00000000-00000000-00000000-00000000");
	/* Even when the features fit, AMD <-> Intel is refused. */
	assert_string_equal(cpuid_check_vm(AMD, F(&both, buf), INTEL, INTEL_NEW, r, sizeof r),
			    "vendor AuthenticAMD differs from GenuineIntel");
	assert_string_equal(cpuid_check_vm(INTEL, F(&both, buf), AMD, AMD_EPYC, r, sizeof r),
			    "vendor GenuineIntel differs from AuthenticAMD");
	assert_null(cpuid_check_vm(AMD, F(&both, buf), AMD, AMD_EPYC, r, sizeof r));
	/* Xen 4.17 hosts may report more words than 4.13 ones. */
	assert_null(cpuid_check_vm(INTEL, INTEL_OLD, INTEL, INTEL_NEW "-00000000-00000000", r, sizeof r));
	assert_null(cpuid_check_vm(INTEL, INTEL_OLD "-00000000", INTEL, INTEL_NEW, r, sizeof r));
	assert_string_equal(cpuid_check_vm(INTEL, INTEL_OLD "-00000001", INTEL, INTEL_NEW, r, sizeof r),
			    "the host lacks CPU features: word 16 bit 0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_empty),
		cmocka_unit_test(test_parse_words),
		cmocka_unit_test(test_parse_uppercase),
		cmocka_unit_test(test_parse_max_words),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_format_truncates),
		cmocka_unit_test(test_and),
		cmocka_unit_test(test_subset_basic),
		cmocka_unit_test(test_subset_zero_extension),
		cmocka_unit_test(test_describe),
		cmocka_unit_test(test_check_vm),
		cmocka_unit_test(test_pool_level_one),
		cmocka_unit_test(test_pool_level_two),
		cmocka_unit_test(test_pool_level_five),
		cmocka_unit_test(test_pool_level_vendor_mismatch),
		cmocka_unit_test(test_pool_level_errors),
		cmocka_unit_test(test_join_lowers),
		cmocka_unit_test(test_join_does_not_lower),
		cmocka_unit_test(test_join_shorter_set),
		cmocka_unit_test(test_join_refused),
		cmocka_unit_test(test_join_stranded_several),
		cmocka_unit_test(test_join_stranded_none_when_level_kept),
		cmocka_unit_test(test_join_scenario),
		cmocka_unit_test(test_stranded_describe_edges),
		cmocka_unit_test(test_real_intel_amd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
