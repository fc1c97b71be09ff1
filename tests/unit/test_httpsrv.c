/*
 * test_httpsrv.c - lib/httpsrv.c's decisions: the connection cap left by a
 * descriptor limit, the per-address key of a peer, and which framing
 * headers are refused. (The server itself is tested with real processes in
 * tests/integration/test_dos.py.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/queue.h>
#include <cmocka.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include "httpsrv.h"

static void test_conn_cap(void **state)
{
	(void)state;
	/* a quarter of the limit (at least 32) stays for the daemon's own files */
	assert_int_equal(httpsrv_conn_cap(4096, 1024), 768);
	assert_int_equal(httpsrv_conn_cap(4096, 128), 96);
	assert_int_equal(httpsrv_conn_cap(4096, 100), 68);
	assert_int_equal(httpsrv_conn_cap(4096, 1048576), 4096);
	assert_int_equal(httpsrv_conn_cap(10, 1024), 10);
	/* 0 or less: as many as the limit allows */
	assert_int_equal(httpsrv_conn_cap(0, 1024), 768);
	assert_int_equal(httpsrv_conn_cap(-5, 1024), 768);
	/* a limit too small for any reserve still allows one */
	assert_int_equal(httpsrv_conn_cap(4096, 32), 1);
	assert_int_equal(httpsrv_conn_cap(4096, 0), 1);
	/* huge values do not overflow an int */
	assert_int_equal(httpsrv_conn_cap(1LL << 40, 1LL << 40), 1 << 30);
}

static void key_of4(const char *addr, char *out, size_t n)
{
	struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons(1234)};
	assert_int_equal(inet_pton(AF_INET, addr, &s.sin_addr), 1);
	httpsrv_addr_key((struct sockaddr *)&s, sizeof s, out, n);
}

static void key_of6(const char *addr, char *out, size_t n)
{
	struct sockaddr_in6 s = {.sin6_family = AF_INET6, .sin6_port = htons(1234)};
	assert_int_equal(inet_pton(AF_INET6, addr, &s.sin6_addr), 1);
	httpsrv_addr_key((struct sockaddr *)&s, sizeof s, out, n);
}

static void test_addr_key(void **state)
{
	(void)state;
	char k[64];
	key_of4("127.0.0.5", k, sizeof k);
	assert_string_equal(k, "127.0.0.5");
	key_of4("10.1.2.3", k, sizeof k);
	assert_string_equal(k, "10.1.2.3");
	/* an IPv4 client on a dual-stack socket is the same client */
	key_of6("::ffff:10.1.2.3", k, sizeof k);
	assert_string_equal(k, "10.1.2.3");
	/* IPv6: one host has a /64 to choose from */
	key_of6("2001:db8:1:2:aaaa:bbbb:cccc:dddd", k, sizeof k);
	assert_string_equal(k, "2001:db8:1:2::/64");
	char k2[64];
	key_of6("2001:db8:1:2::1", k2, sizeof k2);
	assert_string_equal(k, k2);
	key_of6("2001:db8:1:3::1", k2, sizeof k2);
	assert_string_not_equal(k, k2);
	key_of6("::1", k, sizeof k);
	assert_string_equal(k, "::/64");
	/* a short address length or another family: no key */
	struct sockaddr_in s = {.sin_family = AF_INET};
	httpsrv_addr_key((struct sockaddr *)&s, 4, k, sizeof k);
	assert_string_equal(k, "");
	struct sockaddr un = {.sa_family = AF_UNIX};
	httpsrv_addr_key(&un, sizeof un, k, sizeof k);
	assert_string_equal(k, "");
}

/* Headers as evhttp hands them over. */
static int framing(const char *const *kv)
{
	struct evkeyvalq h;
	TAILQ_INIT(&h);
	for (size_t i = 0; kv[i]; i += 2)
		evhttp_add_header(&h, kv[i], kv[i + 1]);
	int ok = httpsrv_framing_ok(&h);
	evhttp_clear_headers(&h);
	return ok;
}

#define H(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_framing(void **state)
{
	(void)state;
	assert_true(framing(H("Host", "x", "Content-Length", "12")));
	assert_true(framing(H("Transfer-Encoding", "chunked")));
	assert_true(framing(H("Host", "x")));
	/* the same length twice is one length */
	assert_true(framing(H("Content-Length", "12", "content-length", "12")));
	/* two lengths: where does the body end? */
	assert_false(framing(H("Content-Length", "12", "Content-Length", "40")));
	assert_false(framing(H("content-length", "12", "X-A", "b", "CONTENT-LENGTH", "13")));
	/* a length and chunks */
	assert_false(framing(H("Content-Length", "12", "Transfer-Encoding", "chunked")));
	assert_false(framing(H("transfer-encoding", "chunked", "Content-Length", "0")));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conn_cap),
		cmocka_unit_test(test_addr_key),
		cmocka_unit_test(test_framing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
