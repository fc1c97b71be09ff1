/*
 * test_tls.c - unit tests for lib/tls.c: the pool CA, issued certificates,
 * CSR signing, fingerprints, and real mutual-TLS handshakes over a
 * socketpair (server in a second thread).
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls.h"

/* A NULL-terminated list of certificate names. */
#define NAMES(...) ((const char *[]){__VA_ARGS__, NULL})

/* Files made once for the whole group in a mkdtemp directory. */
static char dir[64];
static char ca_pem[128], ca_key[128];
static char other_ca_pem[128], other_ca_key[128];
static char server_pem[128], server_key[128];
static char client_pem[128], client_key[128];
static char rogue_pem[128], rogue_key[128];

static void path(char *out, const char *name)
{
	snprintf(out, 128, "%s/%s", dir, name);
}

static int file_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int group_setup(void **state)
{
	(void)state;
	char err[512];
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof dir, "/tmp/test_tls.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	path(ca_pem, "ca.pem");
	path(ca_key, "ca.key");
	path(other_ca_pem, "other-ca.pem");
	path(other_ca_key, "other-ca.key");
	path(server_pem, "server.pem");
	path(server_key, "server.key");
	path(client_pem, "client.pem");
	path(client_key, "client.key");
	path(rogue_pem, "rogue.pem");
	path(rogue_key, "rogue.key");
	if (!tls_ca_create(ca_pem, ca_key, "Pool CA", err, sizeof err) ||
	    !tls_ca_create(other_ca_pem, other_ca_key, "Other CA", err, sizeof err) ||
	    !tls_cert_issue(ca_pem, ca_key, "poold", NAMES("localhost", "127.0.0.1"), 365,
			    server_pem, server_key, err, sizeof err) ||
	    !tls_cert_issue(ca_pem, ca_key, "agent-1", NAMES("agent-1"), 365, client_pem,
			    client_key, err, sizeof err) ||
	    !tls_cert_issue(other_ca_pem, other_ca_key, "agent-1", NAMES("agent-1"), 365,
			    rogue_pem, rogue_key, err, sizeof err)) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	return nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static X509 *load_cert(const char *p)
{
	FILE *f = fopen(p, "r");
	assert_non_null(f);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	return x;
}

static X509 *cert_from_pem(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(x);
	return x;
}

static void cert_cn(X509 *x, char *out, int len)
{
	out[0] = '\0';
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, len);
}

/* X509_verify_cert of x against ca_path as the only anchor, for purpose. */
static int verify_chain(X509 *x, const char *ca_path, int purpose)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	assert_int_equal(X509_STORE_load_file(store, ca_path), 1);
	assert_int_equal(X509_STORE_CTX_init(ctx, store, x, NULL), 1);
	X509_STORE_CTX_set_purpose(ctx, purpose);
	int r = X509_verify_cert(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return r;
}

static int is_critical(X509 *x, int nid)
{
	int i = X509_get_ext_by_NID(x, nid, -1);
	assert_true(i >= 0);
	return X509_EXTENSION_get_critical(X509_get_ext(x, i));
}

/* Seconds from now to t (negative: t is in the past). */
static long secs_from_now(const ASN1_TIME *t)
{
	int days, secs;
	assert_int_equal(ASN1_TIME_diff(&days, &secs, NULL, t), 1);
	return (long)days * 86400 + secs;
}

/* ---- certificates ---------------------------------------------------- */

static void test_ca_cert(void **state)
{
	(void)state;
	X509 *ca = load_cert(ca_pem);
	char cn[64];
	cert_cn(ca, cn, sizeof cn);
	assert_string_equal(cn, "Pool CA");
	assert_int_equal(X509_get_version(ca), X509_VERSION_3);
	assert_int_equal(X509_check_ca(ca), 1);
	assert_true(is_critical(ca, NID_basic_constraints));
	assert_int_equal(X509_get_key_usage(ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	assert_non_null(X509_get0_subject_key_id(ca));
	assert_int_equal(X509_check_issued(ca, ca), X509_V_OK);
	EVP_PKEY *pk = X509_get0_pubkey(ca);
	assert_int_equal(EVP_PKEY_get_base_id(pk), EVP_PKEY_EC);
	assert_int_equal(EVP_PKEY_get_bits(pk), 256);
	long nb = secs_from_now(X509_get0_notBefore(ca));
	assert_true(nb <= -3500 && nb >= -3700);
	long na = secs_from_now(X509_get0_notAfter(ca));
	assert_true(na > 3649L * 86400 && na <= 3650L * 86400);
	X509_free(ca);
}

static void test_leaf_cert(void **state)
{
	(void)state;
	X509 *ca = load_cert(ca_pem);
	X509 *x = load_cert(server_pem);
	X509 *c = load_cert(client_pem);
	char cn[64];
	cert_cn(x, cn, sizeof cn);
	assert_string_equal(cn, "poold");
	assert_int_equal(X509_check_ca(x), 0);
	assert_true(is_critical(x, NID_basic_constraints));
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	uint32_t xku = X509_get_extended_key_usage(x);
	assert_true(xku & XKU_SSL_SERVER);
	assert_true(xku & XKU_SSL_CLIENT);
	assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_host(x, "evil.example", 0, 0, NULL), 0);
	assert_int_equal(X509_check_host(c, "agent-1", 0, 0, NULL), 1);
	/* issued by the CA: names, AKID = CA's SKID, signature */
	assert_int_equal(X509_check_issued(ca, x), X509_V_OK);
	assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x),
					       X509_get0_subject_key_id(ca)),
			 0);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(ca)), 1);
	assert_int_equal(verify_chain(x, ca_pem, X509_PURPOSE_SSL_SERVER), 1);
	assert_int_equal(verify_chain(x, ca_pem, X509_PURPOSE_SSL_CLIENT), 1);
	assert_int_equal(verify_chain(x, other_ca_pem, X509_PURPOSE_SSL_SERVER), 0);
	long nb = secs_from_now(X509_get0_notBefore(x));
	assert_true(nb <= -3500 && nb >= -3700);
	long na = secs_from_now(X509_get0_notAfter(x));
	assert_true(na > 364L * 86400 && na <= 365L * 86400);
	/* 128-bit random serials, distinct */
	BIGNUM *s1 = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	BIGNUM *s2 = ASN1_INTEGER_to_BN(X509_get0_serialNumber(c), NULL);
	assert_int_equal(BN_num_bytes(s1), 16);
	assert_int_equal(BN_num_bytes(s2), 16);
	assert_false(BN_is_negative(s1));
	assert_int_not_equal(BN_cmp(s1, s2), 0);
	BN_free(s1);
	BN_free(s2);
	X509_free(c);
	X509_free(x);
	X509_free(ca);
}

static void test_file_modes(void **state)
{
	(void)state;
	struct stat st;
	const char *keys[] = {ca_key, server_key, client_key};
	const char *certs[] = {ca_pem, server_pem, client_pem};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(stat(keys[i], &st), 0);
		assert_int_equal(st.st_mode & 07777, 0600);
		assert_int_equal(stat(certs[i], &st), 0);
		assert_int_equal(st.st_mode & 07777, 0644);
	}
	/* the key file holds an unencrypted PEM private key matching the cert */
	FILE *f = fopen(server_key, "r");
	assert_non_null(f);
	EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(k);
	X509 *x = load_cert(server_pem);
	assert_int_equal(X509_check_private_key(x, k), 1);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void write_file(const char *p, const char *text)
{
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void assert_file_is(const char *p, const char *text)
{
	char buf[64] = "";
	FILE *f = fopen(p, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	assert_string_equal(buf, text);
}

static void test_no_overwrite(void **state)
{
	(void)state;
	char err[512], keep[128], fresh[128];
	path(keep, "keep.key");
	path(fresh, "fresh.pem");
	write_file(keep, "keep me");
	/* the key exists: fails, the cert is not created, the key is intact */
	err[0] = '\0';
	assert_int_equal(tls_cert_issue(ca_pem, ca_key, "x", NAMES("x"), 30, fresh, keep, err,
					sizeof err),
			 0);
	assert_non_null(strstr(err, keep));
	assert_false(file_exists(fresh));
	assert_file_is(keep, "keep me");
	/* the cert exists: fails, and the new key is not left behind */
	char newkey[128];
	path(newkey, "new.key");
	write_file(fresh, "old cert");
	err[0] = '\0';
	assert_int_equal(tls_cert_issue(ca_pem, ca_key, "x", NAMES("x"), 30, fresh, newkey, err,
					sizeof err),
			 0);
	assert_non_null(strstr(err, fresh));
	assert_false(file_exists(newkey));
	assert_file_is(fresh, "old cert");
	/* an existing CA is never replaced */
	X509 *before = load_cert(ca_pem);
	assert_int_equal(tls_ca_create(ca_pem, ca_key, "Again", err, sizeof err), 0);
	assert_non_null(strstr(err, ca_key));
	X509 *after = load_cert(ca_pem);
	assert_int_equal(X509_cmp(before, after), 0);
	X509_free(before);
	X509_free(after);
	unlink(keep);
	unlink(fresh);
}

static void test_issue_errors(void **state)
{
	(void)state;
	char err[512], c[128], k[128], missing[128];
	path(c, "e.pem");
	path(k, "e.key");
	path(missing, "missing-ca.pem");
	err[0] = '\0';
	assert_int_equal(tls_cert_issue(missing, ca_key, "x", NAMES("x"), 30, c, k, err, sizeof err),
			 0);
	assert_non_null(strstr(err, missing));
	assert_non_null(strstr(err, "No such file"));
	/* CA key that does not belong to the CA cert */
	err[0] = '\0';
	assert_int_equal(
		tls_cert_issue(ca_pem, other_ca_key, "x", NAMES("x"), 30, c, k, err, sizeof err), 0);
	assert_non_null(strstr(err, other_ca_key));
	/* a CA "key" that is not a key */
	err[0] = '\0';
	assert_int_equal(tls_cert_issue(ca_pem, ca_pem, "x", NAMES("x"), 30, c, k, err, sizeof err),
			 0);
	assert_non_null(strstr(err, ca_pem));
	/* a name that is neither an address nor a DNS name (OpenSSL's
	 * configuration syntax is not spoken), empty CN, bad validity */
	err[0] = '\0';
	assert_int_equal(
		tls_cert_issue(ca_pem, ca_key, "x", NAMES("DNS:x"), 30, c, k, err, sizeof err), 0);
	assert_non_null(strstr(err, "DNS:x"));
	assert_int_equal(tls_cert_issue(ca_pem, ca_key, "x", NAMES("10.0.0.50,DNS:localhost"), 30, c, k, err,
					sizeof err),
			 0);
	assert_int_equal(tls_cert_issue(ca_pem, ca_key, "", NAMES("x"), 30, c, k, err, sizeof err),
			 0);
	assert_int_equal(tls_cert_issue(ca_pem, ca_key, "x", NAMES("x"), 0, c, k, err, sizeof err),
			 0);
	assert_false(file_exists(c));
	assert_false(file_exists(k));
	/* a tiny err buffer is not overrun; NULL err is allowed */
	char tiny[8];
	memset(tiny, 'Z', sizeof tiny);
	assert_int_equal(
		tls_cert_issue(missing, ca_key, "x", NAMES("x"), 30, c, k, tiny, sizeof tiny - 2), 0);
	assert_int_equal(tiny[sizeof tiny - 1], 'Z');
	assert_int_equal(tiny[sizeof tiny - 3], '\0');
	assert_int_equal(tls_cert_issue(missing, ca_key, "x", NAMES("x"), 30, c, k, NULL, 0), 0);
}

/* ---- fingerprints ---------------------------------------------------- */

static int is_fingerprint(const char *s)
{
	if (strlen(s) != 95)
		return 0;
	for (int i = 0; i < 95; i++) {
		int sep = i % 3 == 2;
		if (sep && s[i] != ':')
			return 0;
		if (!sep && !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	}
	return 1;
}

static void test_fingerprint(void **state)
{
	(void)state;
	char fp[96], fp2[96], fpc[96], err[512];
	assert_int_equal(tls_cert_fingerprint(server_pem, fp, sizeof fp, err, sizeof err), 1);
	assert_true(is_fingerprint(fp));
	assert_int_equal(tls_cert_fingerprint(server_pem, fp2, sizeof fp2, err, sizeof err), 1);
	assert_string_equal(fp, fp2);
	assert_int_equal(tls_cert_fingerprint(client_pem, fpc, sizeof fpc, err, sizeof err), 1);
	assert_string_not_equal(fp, fpc);

	/* the same as the openssl command line, when it is installed */
	char cmd[256], line[256];
	snprintf(cmd, sizeof cmd, "openssl x509 -noout -fingerprint -sha256 -in '%s' 2>/dev/null",
		 server_pem);
	FILE *p = popen(cmd, "r");
	if (p) {
		if (fgets(line, sizeof line, p)) {
			char *eq = strchr(line, '=');
			assert_non_null(eq);
			eq[1 + strcspn(eq + 1, "\r\n")] = '\0';
			assert_string_equal(eq + 1, fp);
		}
		pclose(p);
	}

	char small[95];
	assert_int_equal(tls_cert_fingerprint(server_pem, small, sizeof small, err, sizeof err),
			 0);
	char missing[128];
	path(missing, "nope.pem");
	err[0] = '\0';
	assert_int_equal(tls_cert_fingerprint(missing, fp, sizeof fp, err, sizeof err), 0);
	assert_non_null(strstr(err, missing));
	err[0] = '\0';
	assert_int_equal(tls_cert_fingerprint(server_key, fp, sizeof fp, err, sizeof err), 0);
	assert_non_null(strstr(err, server_key));
}

/* ---- CSR signing ----------------------------------------------------- */

/* A PEM CSR for subject_key (CN=cn) signed with sign_key. */
static char *make_csr_cn(EVP_PKEY *subject_key, EVP_PKEY *sign_key, const char *cn)
{
	X509_REQ *req = X509_REQ_new();
	assert_non_null(req);
	assert_int_equal(X509_REQ_set_pubkey(req, subject_key), 1);
	X509_NAME *n = X509_REQ_get_subject_name(req);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	assert_true(X509_REQ_sign(req, sign_key, EVP_sha256()) > 0);
	BIO *b = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_X509_REQ(b, req), 1);
	char *data;
	long len = BIO_get_mem_data(b, &data);
	char *pem = strndup(data, (size_t)len);
	BIO_free(b);
	X509_REQ_free(req);
	return pem;
}

static char *make_csr(EVP_PKEY *subject_key, EVP_PKEY *sign_key)
{
	return make_csr_cn(subject_key, sign_key, "ignored-cn");
}

static void test_csr_sign(void **state)
{
	(void)state;
	char err[512];
	EVP_PKEY *k = EVP_EC_gen("P-256");
	assert_non_null(k);
	char *csr = make_csr(k, k);
	char *pem = tls_csr_sign(ca_pem, ca_key, csr, "agent-7", NAMES("agent-7", "10.0.0.7"), 30,
				 err, sizeof err);
	if (!pem)
		fail_msg("tls_csr_sign: %s", err);
	X509 *x = cert_from_pem(pem);
	char cn[64];
	cert_cn(x, cn, sizeof cn);
	assert_string_equal(cn, "agent-7");
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), k), 1);
	assert_int_equal(X509_check_host(x, "agent-7", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(x, "10.0.0.7", 0), 1);
	assert_int_equal(X509_check_ca(x), 0);
	assert_int_equal(verify_chain(x, ca_pem, X509_PURPOSE_SSL_CLIENT), 1);
	assert_int_equal(verify_chain(x, ca_pem, X509_PURPOSE_SSL_SERVER), 1);
	assert_int_equal(verify_chain(x, other_ca_pem, X509_PURPOSE_SSL_CLIENT), 0);
	X509_free(x);
	free(pem);
	free(csr);
	EVP_PKEY_free(k);
}

static void test_csr_bad(void **state)
{
	(void)state;
	char err[512];
	/* not PEM at all */
	err[0] = '\0';
	assert_null(tls_csr_sign(ca_pem, ca_key, "garbage", "a", NAMES("a"), 30, err, sizeof err));
	assert_true(strlen(err) > 0);
	assert_null(tls_csr_sign(ca_pem, ca_key, "", "a", NAMES("a"), 30, err, sizeof err));
	assert_null(tls_csr_sign(ca_pem, ca_key, NULL, "a", NAMES("a"), 30, err, sizeof err));
	/* PEM armour around junk */
	const char *junk = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
			   "-----END CERTIFICATE REQUEST-----\n";
	assert_null(tls_csr_sign(ca_pem, ca_key, junk, "a", NAMES("a"), 30, err, sizeof err));

	/* a CSR whose signature is not by the key it contains */
	EVP_PKEY *k1 = EVP_EC_gen("P-256");
	EVP_PKEY *k2 = EVP_EC_gen("P-256");
	char *forged = make_csr(k1, k2);
	err[0] = '\0';
	assert_null(tls_csr_sign(ca_pem, ca_key, forged, "a", NAMES("a"), 30, err, sizeof err));
	assert_non_null(strstr(err, "signature"));
	free(forged);

	/* a valid CSR with a weak key */
	EVP_PKEY *weak = EVP_RSA_gen(1024);
	assert_non_null(weak);
	char *wcsr = make_csr(weak, weak);
	err[0] = '\0';
	assert_null(tls_csr_sign(ca_pem, ca_key, wcsr, "a", NAMES("a"), 30, err, sizeof err));
	assert_non_null(strstr(err, "weak"));
	free(wcsr);

	/* a valid CSR, but the CA is missing */
	char *good = make_csr(k1, k1);
	char missing[128];
	path(missing, "missing.pem");
	err[0] = '\0';
	assert_null(tls_csr_sign(missing, ca_key, good, "a", NAMES("a"), 30, err, sizeof err));
	assert_non_null(strstr(err, missing));
	free(good);
	EVP_PKEY_free(weak);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
}

/* ---- handshakes ------------------------------------------------------ */

struct side {
	SSL_CTX *ctx;
	int fd;
	int server;
	int ok;		    /* handshake done and one message each way */
	long verify;	    /* SSL_get_verify_result */
	char peer_cn[64];   /* the peer certificate's CN, "" for none */
	const char *want_cn; /* tls_require_peer_cn on this side's SSL, or NULL */
};

/* Handshake, then client sends "ping" and server answers "pong". */
static void *run_side(void *arg)
{
	struct side *s = arg;
	char buf[5] = "";
	SSL *ssl = SSL_new(s->ctx);
	SSL_set_fd(ssl, s->fd);
	if (s->want_cn)
		assert_int_equal(tls_require_peer_cn(ssl, s->want_cn), 1);
	int r = s->server ? SSL_accept(ssl) : SSL_connect(ssl);
	if (r == 1 && s->server)
		s->ok = SSL_read(ssl, buf, 4) == 4 && memcmp(buf, "ping", 4) == 0 &&
			SSL_write(ssl, "pong", 4) == 4;
	else if (r == 1)
		s->ok = SSL_write(ssl, "ping", 4) == 4 && SSL_read(ssl, buf, 4) == 4 &&
			memcmp(buf, "pong", 4) == 0;
	s->verify = SSL_get_verify_result(ssl);
	X509 *peer = SSL_get1_peer_certificate(ssl);
	if (peer)
		cert_cn(peer, s->peer_cn, sizeof s->peer_cn);
	X509_free(peer);
	SSL_free(ssl);
	shutdown(s->fd, SHUT_RDWR);
	ERR_clear_error();
	return NULL;
}

static void handshake_cn(SSL_CTX *sctx, SSL_CTX *cctx, struct side *srv, struct side *cli, const char *srv_wants,
			 const char *cli_wants)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct timeval tv = {.tv_sec = 10};
	for (int i = 0; i < 2; i++) {
		setsockopt(sv[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(sv[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	}
	*srv = (struct side){.ctx = sctx, .fd = sv[0], .server = 1, .want_cn = srv_wants};
	*cli = (struct side){.ctx = cctx, .fd = sv[1], .server = 0, .want_cn = cli_wants};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, run_side, srv), 0);
	run_side(cli);
	pthread_join(t, NULL);
	close(sv[0]);
	close(sv[1]);
}

static void handshake(SSL_CTX *sctx, SSL_CTX *cctx, struct side *srv, struct side *cli)
{
	handshake_cn(sctx, cctx, srv, cli, NULL, NULL);
}

static SSL_CTX *server_ctx(int require)
{
	char err[512];
	SSL_CTX *c = tls_server_ctx(server_pem, server_key, ca_pem, require, err, sizeof err);
	if (!c)
		fail_msg("tls_server_ctx: %s", err);
	return c;
}

static SSL_CTX *client_ctx(const char *ca, const char *cert, const char *key)
{
	char err[512];
	SSL_CTX *c = tls_client_ctx(ca, cert, key, err, sizeof err);
	if (!c)
		fail_msg("tls_client_ctx: %s", err);
	return c;
}

static void test_handshake_ok(void **state)
{
	(void)state;
	struct side s, c;
	SSL_CTX *sctx = server_ctx(1);
	SSL_CTX *cctx = client_ctx(ca_pem, client_pem, client_key);
	handshake(sctx, cctx, &s, &c);
	assert_true(s.ok);
	assert_true(c.ok);
	assert_int_equal(s.verify, X509_V_OK);
	assert_int_equal(c.verify, X509_V_OK);
	assert_string_equal(s.peer_cn, "agent-1");
	assert_string_equal(c.peer_cn, "poold");
	/* TLS 1.2 as well */
	SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
	handshake(sctx, cctx, &s, &c);
	assert_true(s.ok);
	assert_true(c.ok);
	assert_string_equal(s.peer_cn, "agent-1");
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

static void test_handshake_rogue_client(void **state)
{
	(void)state;
	struct side s, c;
	SSL_CTX *sctx = server_ctx(1);
	SSL_CTX *cctx = client_ctx(ca_pem, rogue_pem, rogue_key);
	handshake(sctx, cctx, &s, &c);
	assert_false(s.ok);
	assert_false(c.ok);
	assert_int_not_equal(s.verify, X509_V_OK);
	SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
	handshake(sctx, cctx, &s, &c);
	assert_false(s.ok);
	assert_false(c.ok);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

static void test_handshake_no_client_cert(void **state)
{
	(void)state;
	struct side s, c;
	SSL_CTX *cctx = client_ctx(ca_pem, NULL, NULL);
	/* required: refused */
	SSL_CTX *sctx = server_ctx(1);
	handshake(sctx, cctx, &s, &c);
	assert_false(s.ok);
	assert_false(c.ok);
	SSL_CTX_free(sctx);
	/* optional: accepted, with no peer certificate */
	sctx = server_ctx(0);
	handshake(sctx, cctx, &s, &c);
	assert_true(s.ok);
	assert_true(c.ok);
	assert_string_equal(s.peer_cn, "");
	SSL_CTX_free(sctx);
	/* optional still rejects a certificate from another CA */
	SSL_CTX *rctx = client_ctx(ca_pem, rogue_pem, rogue_key);
	sctx = server_ctx(0);
	handshake(sctx, rctx, &s, &c);
	assert_false(s.ok);
	assert_false(c.ok);
	SSL_CTX_free(sctx);
	SSL_CTX_free(rctx);
	SSL_CTX_free(cctx);
}

static void test_handshake_wrong_server_ca(void **state)
{
	(void)state;
	struct side s, c;
	SSL_CTX *sctx = server_ctx(1);
	SSL_CTX *cctx = client_ctx(other_ca_pem, client_pem, client_key);
	handshake(sctx, cctx, &s, &c);
	assert_false(c.ok);
	assert_false(s.ok);
	assert_int_not_equal(c.verify, X509_V_OK);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

static void test_ctx_errors(void **state)
{
	(void)state;
	char err[512], missing[128];
	path(missing, "missing.pem");
	err[0] = '\0';
	assert_null(tls_server_ctx(missing, server_key, ca_pem, 1, err, sizeof err));
	assert_non_null(strstr(err, missing));
	err[0] = '\0';
	assert_null(tls_server_ctx(server_pem, client_key, ca_pem, 1, err, sizeof err));
	assert_non_null(strstr(err, client_key));
	err[0] = '\0';
	assert_null(tls_server_ctx(server_pem, server_key, missing, 1, err, sizeof err));
	assert_non_null(strstr(err, missing));
	assert_null(tls_server_ctx(NULL, server_key, NULL, 0, err, sizeof err));
	err[0] = '\0';
	assert_null(tls_client_ctx(missing, NULL, NULL, err, sizeof err));
	assert_non_null(strstr(err, missing));
	assert_null(tls_client_ctx(ca_pem, client_pem, NULL, err, sizeof err));
	err[0] = '\0';
	assert_null(tls_client_ctx(ca_pem, client_pem, server_key, err, sizeof err));
	assert_non_null(strstr(err, server_key));

	/* a server context without client verification has no verify mode */
	SSL_CTX *c = tls_server_ctx(server_pem, server_key, NULL, 1, err, sizeof err);
	assert_non_null(c);
	assert_int_equal(SSL_CTX_get_verify_mode(c), SSL_VERIFY_NONE);
	assert_int_equal(SSL_CTX_get_min_proto_version(c), TLS1_2_VERSION);
	assert_true(SSL_CTX_get_options(c) & SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_free(c);
	c = server_ctx(1);
	assert_int_equal(SSL_CTX_get_verify_mode(c),
			 SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
	SSL_CTX_free(c);
	c = client_ctx(ca_pem, NULL, NULL);
	assert_int_equal(SSL_CTX_get_verify_mode(c), SSL_VERIFY_PEER);
	assert_int_equal(SSL_CTX_get_min_proto_version(c), TLS1_2_VERSION);
	SSL_CTX_free(c);
}


/* ---- names and identities -------------------------------------------- */

static void test_name_kind(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		enum tls_name_kind kind;
		size_t iplen;
	} cases[] = {
		{"127.0.0.1", TLS_NAME_IP, 4},
		{"10.1.2.3", TLS_NAME_IP, 4},
		{"::1", TLS_NAME_IP, 16},
		{"fe80::1:2", TLS_NAME_IP, 16},
		{"::ffff:127.0.0.1", TLS_NAME_IP, 16},
		{"localhost", TLS_NAME_DNS, 0},
		{"host-1.pool.example", TLS_NAME_DNS, 0},
		{"a", TLS_NAME_DNS, 0},
		{"x1", TLS_NAME_DNS, 0},
		{"1x.example", TLS_NAME_DNS, 0},
		/* the forged join address of issue 11 */
		{"127.0.0.50,DNS:localhost,IP:127.0.0.1", TLS_NAME_INVALID, 0},
		{"DNS:localhost", TLS_NAME_INVALID, 0},
		{"", TLS_NAME_INVALID, 0},
		{"a b", TLS_NAME_INVALID, 0},
		{"a_b", TLS_NAME_INVALID, 0},
		{"-a", TLS_NAME_INVALID, 0},
		{"a-", TLS_NAME_INVALID, 0},
		{"a..b", TLS_NAME_INVALID, 0},
		{".a", TLS_NAME_INVALID, 0},
		{"a.b.", TLS_NAME_INVALID, 0},
		{"*.example", TLS_NAME_INVALID, 0},
		{"10.0.0", TLS_NAME_INVALID, 0},
		{"256.1.1.1", TLS_NAME_INVALID, 0},
		{"1.2.3.4.5", TLS_NAME_INVALID, 0},
		{"h\xc3\xa9", TLS_NAME_INVALID, 0},
		{"a\n", TLS_NAME_INVALID, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		unsigned char ip[16];
		size_t len = 99;
		enum tls_name_kind k = tls_name_kind(cases[i].name, ip, &len);
		if (k != cases[i].kind || len != cases[i].iplen)
			fail_msg("'%s': kind %d length %zu, expected %d %zu", cases[i].name, k, len, cases[i].kind,
				 cases[i].iplen);
	}
	assert_int_equal(tls_name_kind(NULL, NULL, NULL), TLS_NAME_INVALID);
	assert_int_equal(tls_name_kind("127.0.0.1", NULL, NULL), TLS_NAME_IP);
	/* labels up to 63, names up to 253 characters */
	char label[70], name[300];
	memset(label, 'a', 63);
	label[63] = '\0';
	assert_int_equal(tls_name_kind(label, NULL, NULL), TLS_NAME_DNS);
	memset(label, 'a', 64);
	label[64] = '\0';
	assert_int_equal(tls_name_kind(label, NULL, NULL), TLS_NAME_INVALID);
	for (int i = 0; i < 300; i++)
		name[i] = i % 2 ? '.' : 'a';
	name[253] = '\0'; /* "a.a. ... .a": 253 characters */
	assert_int_equal(tls_name_kind(name, NULL, NULL), TLS_NAME_DNS);
	name[253] = '.';
	name[254] = 'a';
	name[255] = '\0';
	assert_int_equal(tls_name_kind(name, NULL, NULL), TLS_NAME_INVALID);
}

static void test_names_same(void **state)
{
	(void)state;
	assert_true(tls_names_same("127.0.0.1", "127.0.0.1"));
	assert_true(tls_names_same("::1", "0:0:0:0:0:0:0:1"));
	assert_true(tls_names_same("LocalHost", "localhost"));
	assert_false(tls_names_same("127.0.0.1", "127.0.0.2"));
	assert_false(tls_names_same("127.0.0.1", "localhost"));
	assert_false(tls_names_same("::ffff:127.0.0.1", "127.0.0.1"));
	assert_false(tls_names_same("bad name", "bad name"));
	assert_false(tls_names_same(NULL, "a"));
	const char *const list[] = {"localhost", "127.0.0.1", "::1", NULL};
	assert_true(tls_names_contain(list, "0::1"));
	assert_true(tls_names_contain(list, "LOCALHOST"));
	assert_false(tls_names_contain(list, "127.0.0.2"));
	assert_false(tls_names_contain(NULL, "localhost"));
}

static void test_cert_names_and_cn(void **state)
{
	(void)state;
	char err[512], cn[64];
	char **names = tls_cert_names(server_pem, err, sizeof err);
	assert_non_null(names);
	assert_string_equal(names[0], "localhost");
	assert_string_equal(names[1], "127.0.0.1");
	assert_null(names[2]);
	tls_names_free(names);
	assert_int_equal(tls_cert_cn(server_pem, cn, sizeof cn, err, sizeof err), 1);
	assert_string_equal(cn, "poold");
	/* the names given come out as given, IPv6 in its short form; none at all is fine */
	char c[128], k[128];
	path(c, "names.pem");
	path(k, "names.key");
	assert_int_equal(tls_cert_issue(ca_pem, ca_key, TLS_MASTER_CN, NAMES("pool.example", "0:0::1", "10.9.8.7"), 30, c,
					k, err, sizeof err),
			 1);
	names = tls_cert_names(c, err, sizeof err);
	assert_string_equal(names[0], "pool.example");
	assert_string_equal(names[1], "::1");
	assert_string_equal(names[2], "10.9.8.7");
	assert_null(names[3]);
	tls_names_free(names);
	unlink(c);
	unlink(k);
	assert_int_equal(tls_cert_issue(ca_pem, ca_key, "bare", NULL, 30, c, k, err, sizeof err), 1);
	names = tls_cert_names(c, err, sizeof err);
	assert_non_null(names);
	assert_null(names[0]);
	tls_names_free(names);
	unlink(c);
	unlink(k);
	char missing[128];
	path(missing, "no-such.pem");
	err[0] = '\0';
	assert_null(tls_cert_names(missing, err, sizeof err));
	assert_non_null(strstr(err, missing));
	assert_int_equal(tls_cert_cn(missing, cn, sizeof cn, err, sizeof err), 0);
}

static void test_csr_claiming_the_master(void **state)
{
	(void)state;
	char err[512];
	EVP_PKEY *k = EVP_EC_gen("P-256");
	char *csr = make_csr_cn(k, k, TLS_MASTER_CN);
	err[0] = '\0';
	assert_null(tls_csr_sign(ca_pem, ca_key, csr, "3f1c2d4e-0000-4000-8000-000000000001", NAMES("10.0.0.9"), 30, err,
				 sizeof err));
	assert_non_null(strstr(err, TLS_MASTER_CN));
	free(csr);
	/* nor is the master's CN given to a host whatever its request says */
	csr = make_csr(k, k);
	assert_null(tls_csr_sign(ca_pem, ca_key, csr, TLS_MASTER_CN, NULL, 30, err, sizeof err));
	/* a forged name list never gets as far as the certificate */
	err[0] = '\0';
	assert_null(tls_csr_sign(ca_pem, ca_key, csr, "host-9", NAMES("127.0.0.50,DNS:localhost,IP:127.0.0.1"), 30, err,
				 sizeof err));
	assert_non_null(strstr(err, "neither an IP address nor a DNS name"));
	free(csr);
	EVP_PKEY_free(k);
}

static void test_handshake_peer_cn(void **state)
{
	(void)state;
	struct side s, c;
	SSL_CTX *sctx = server_ctx(1);
	SSL_CTX *cctx = client_ctx(ca_pem, client_pem, client_key);
	/* the server's certificate has DNS names: its CN is still what counts */
	handshake_cn(sctx, cctx, &s, &c, NULL, "poold");
	assert_true(c.ok);
	assert_true(s.ok);
	handshake_cn(sctx, cctx, &s, &c, NULL, "localhost");
	assert_false(c.ok);
	assert_int_equal(c.verify, X509_V_ERR_HOSTNAME_MISMATCH);
	handshake_cn(sctx, cctx, &s, &c, NULL, "pold");
	assert_false(c.ok);
	/* the server side checks its client the same way */
	handshake_cn(sctx, cctx, &s, &c, "agent-1", NULL);
	assert_true(s.ok);
	handshake_cn(sctx, cctx, &s, &c, TLS_MASTER_CN, NULL);
	assert_false(s.ok);
	assert_false(c.ok);
	/* a whole context: every connection */
	assert_int_equal(tls_ctx_require_peer_cn(cctx, "someone else"), 1);
	assert_int_equal(tls_ctx_require_peer_cn(cctx, "poold"), 1); /* replaces */
	handshake(sctx, cctx, &s, &c);
	assert_true(c.ok);
	assert_int_equal(tls_ctx_require_peer_cn(cctx, "agent-1"), 1);
	handshake(sctx, cctx, &s, &c);
	assert_false(c.ok);
	/* a connection's own requirement wins over its context's */
	handshake_cn(sctx, cctx, &s, &c, NULL, "poold");
	assert_true(c.ok);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ca_cert),
		cmocka_unit_test(test_leaf_cert),
		cmocka_unit_test(test_file_modes),
		cmocka_unit_test(test_no_overwrite),
		cmocka_unit_test(test_issue_errors),
		cmocka_unit_test(test_fingerprint),
		cmocka_unit_test(test_csr_sign),
		cmocka_unit_test(test_csr_bad),
		cmocka_unit_test(test_handshake_ok),
		cmocka_unit_test(test_handshake_rogue_client),
		cmocka_unit_test(test_handshake_no_client_cert),
		cmocka_unit_test(test_handshake_wrong_server_ca),
		cmocka_unit_test(test_ctx_errors),
		cmocka_unit_test(test_name_kind),
		cmocka_unit_test(test_names_same),
		cmocka_unit_test(test_cert_names_and_cn),
		cmocka_unit_test(test_csr_claiming_the_master),
		cmocka_unit_test(test_handshake_peer_cn),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
