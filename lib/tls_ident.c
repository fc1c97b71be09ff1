/*
 * tls_ident.c - who a certificate names, and checking that a peer is the
 * one expected (see tls.h).
 *
 * Names in certificates come only from validated lists: an IP literal
 * (inet_pton) or a DNS name of the usual characters, never a string an
 * agent sent pasted into OpenSSL's "DNS:a,IP:b" configuration syntax, where
 * a comma in an address would add names of the sender's choosing.
 *
 * A peer's identity is its leaf certificate's CN, compared exactly during
 * the handshake (a verify callback), not with hostname rules: the master's
 * certificate has DNS names, and X509_check_host() never looks at the CN of
 * a certificate that has any.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls.h"
#include "util.h"

/* ---- names (pure) ---------------------------------------------------- */

static bool tls_dns_label_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* RFC 1123 host names: labels of 1-63 letters, digits and '-' (not at
 * either end), at most 253 characters, and a last label that is not all
 * digits (so "10.0.0" is neither an address nor a name). */
static bool tls_dns_valid(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > 253)
		return false;
	const char *label = s;
	bool all_digits = true;
	for (const char *p = s;; p++) {
		if (*p == '.' || *p == '\0') {
			size_t n = (size_t)(p - label);
			if (n == 0 || n > 63 || label[0] == '-' || p[-1] == '-')
				return false;
			if (*p == '\0')
				return !all_digits;
			label = p + 1;
			all_digits = true;
			continue;
		}
		if (!tls_dns_label_char(*p))
			return false;
		if (*p < '0' || *p > '9')
			all_digits = false;
	}
}

enum tls_name_kind tls_name_kind(const char *name, unsigned char ip[16], size_t *iplen)
{
	unsigned char buf[16];
	unsigned char *out = ip ? ip : buf;
	size_t dummy;
	size_t *len = iplen ? iplen : &dummy;
	*len = 0;
	if (!name)
		return TLS_NAME_INVALID;
	if (inet_pton(AF_INET, name, out) == 1) {
		*len = 4;
		return TLS_NAME_IP;
	}
	if (inet_pton(AF_INET6, name, out) == 1) {
		*len = 16;
		return TLS_NAME_IP;
	}
	return tls_dns_valid(name) ? TLS_NAME_DNS : TLS_NAME_INVALID;
}

bool tls_names_same(const char *a, const char *b)
{
	unsigned char ia[16], ib[16];
	size_t la, lb;
	enum tls_name_kind ka = tls_name_kind(a, ia, &la), kb = tls_name_kind(b, ib, &lb);
	if (ka == TLS_NAME_INVALID || ka != kb)
		return false;
	if (ka == TLS_NAME_IP)
		return la == lb && memcmp(ia, ib, la) == 0;
	return strcasecmp(a, b) == 0; /* DNS names ignore case */
}

bool tls_names_contain(const char *const *names, const char *name)
{
	for (size_t i = 0; names && names[i]; i++)
		if (tls_names_same(names[i], name))
			return true;
	return false;
}

void tls_names_free(char **names)
{
	for (size_t i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
}

/* ---- names in certificates -------------------------------------------- */

static X509 *tls_ident_read(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	ERR_clear_error();
	if (!x && err)
		snprintf(err, errlen, "cannot read the certificate %s", path);
	return x;
}

/* The DNS and IP names of x as text, NULL-terminated (malloc'ed). */
static char **tls_x509_names(X509 *x)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int n = gens ? sk_GENERAL_NAME_num(gens) : 0;
	char **out = xcalloc((size_t)n + 1, sizeof *out);
	size_t k = 0;
	for (int i = 0; out && i < n; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		char text[INET6_ADDRSTRLEN] = "";
		if (g->type == GEN_DNS) {
			const ASN1_IA5STRING *s = g->d.dNSName;
			int len = ASN1_STRING_length(s);
			char *d = len > 0 ? strndup((const char *)ASN1_STRING_get0_data(s), (size_t)len) : NULL;
			if (d && strlen(d) == (size_t)len)
				out[k++] = d;
			else
				free(d); /* an embedded NUL: not a name */
		} else if (g->type == GEN_IPADD) {
			int len = ASN1_STRING_length(g->d.iPAddress);
			const unsigned char *b = ASN1_STRING_get0_data(g->d.iPAddress);
			if ((len == 4 && inet_ntop(AF_INET, b, text, sizeof text)) ||
			    (len == 16 && inet_ntop(AF_INET6, b, text, sizeof text)))
				out[k++] = xstrdup(text);
		}
	}
	GENERAL_NAMES_free(gens);
	return out;
}

char **tls_cert_names(const char *cert_path, char *err, size_t errlen)
{
	X509 *x = tls_ident_read(cert_path, err, errlen);
	if (!x)
		return NULL;
	char **names = tls_x509_names(x);
	X509_free(x);
	if (!names && err)
		snprintf(err, errlen, "out of memory");
	return names;
}

/* The one CN of x when it has exactly one, free of NUL bytes. */
static bool tls_x509_cn(X509 *x, char *out, size_t outlen)
{
	X509_NAME *n = x ? X509_get_subject_name(x) : NULL;
	int i = n ? X509_NAME_get_index_by_NID(n, NID_commonName, -1) : -1;
	if (i < 0 || X509_NAME_get_index_by_NID(n, NID_commonName, i) >= 0)
		return false;
	const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i));
	int len = ASN1_STRING_length(s);
	const unsigned char *d = ASN1_STRING_get0_data(s);
	if (len <= 0 || (size_t)len >= outlen || memchr(d, '\0', (size_t)len))
		return false;
	memcpy(out, d, (size_t)len);
	out[len] = '\0';
	return true;
}

int tls_cert_cn(const char *cert_path, char *out, size_t outlen, char *err, size_t errlen)
{
	X509 *x = tls_ident_read(cert_path, err, errlen);
	if (!x)
		return 0;
	int ok = tls_x509_cn(x, out, outlen);
	X509_free(x);
	if (!ok && err)
		snprintf(err, errlen, "the certificate %s has no single common name", cert_path);
	return ok;
}

/* subjectAltName built with the X509V3 API from validated names. */
int tls_add_sans(X509 *x, const char *const *names, char *err, size_t errlen)
{
	if (!names || !names[0])
		return 1;
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	int ok = gens != NULL;
	for (size_t i = 0; ok && names[i]; i++) {
		unsigned char ip[16];
		size_t iplen;
		enum tls_name_kind k = tls_name_kind(names[i], ip, &iplen);
		if (k == TLS_NAME_INVALID) {
			if (err)
				snprintf(err, errlen, "'%s' is neither an IP address nor a DNS name", names[i]);
			GENERAL_NAMES_free(gens);
			return 0;
		}
		GENERAL_NAME *g = GENERAL_NAME_new();
		ASN1_STRING *v = k == TLS_NAME_IP ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
		ok = g && v &&
		     (k == TLS_NAME_IP ? ASN1_OCTET_STRING_set(v, ip, (int)iplen)
				       : ASN1_STRING_set(v, names[i], (int)strlen(names[i]))) == 1;
		if (ok) {
			GENERAL_NAME_set0_value(g, k == TLS_NAME_IP ? GEN_IPADD : GEN_DNS, v);
			ok = sk_GENERAL_NAME_push(gens, g) > 0;
			if (!ok)
				GENERAL_NAME_free(g);
		} else {
			GENERAL_NAME_free(g);
			ASN1_STRING_free(v);
		}
	}
	ok = ok && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;
	GENERAL_NAMES_free(gens);
	ERR_clear_error();
	if (!ok && err)
		snprintf(err, errlen, "cannot add the subjectAltName extension");
	return ok;
}

/* A request whose subject asks for the master's name is an attempt to
 * become the master: refused, although its CN would be replaced anyway. */
int tls_csr_claims_master(X509_REQ *req)
{
	X509_NAME *n = X509_REQ_get_subject_name(req);
	for (int i = -1; n && (i = X509_NAME_get_index_by_NID(n, NID_commonName, i)) >= 0;) {
		const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i));
		size_t want = strlen(TLS_MASTER_CN);
		if ((size_t)ASN1_STRING_length(s) == want && memcmp(ASN1_STRING_get0_data(s), TLS_MASTER_CN, want) == 0)
			return 1;
	}
	return 0;
}

/* ---- the peer's identity, checked in the handshake --------------------- */

static int tls_cn_ssl_idx = -1, tls_cn_ctx_idx = -1;
static pthread_once_t tls_cn_once = PTHREAD_ONCE_INIT;

static void tls_cn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	free(ptr);
}

static void tls_cn_init(void)
{
	tls_cn_ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, tls_cn_free);
	tls_cn_ctx_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tls_cn_free);
}

static int tls_verify_cn(int ok, X509_STORE_CTX *sc)
{
	if (!ok || X509_STORE_CTX_get_error_depth(sc) != 0)
		return ok;
	SSL *ssl = X509_STORE_CTX_get_ex_data(sc, SSL_get_ex_data_X509_STORE_CTX_idx());
	const char *want = ssl ? SSL_get_ex_data(ssl, tls_cn_ssl_idx) : NULL;
	if (ssl && !want)
		want = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_cn_ctx_idx);
	if (!want)
		return ok;
	char cn[256];
	if (tls_x509_cn(X509_STORE_CTX_get_current_cert(sc), cn, sizeof cn) && strcmp(cn, want) == 0)
		return 1;
	X509_STORE_CTX_set_error(sc, X509_V_ERR_HOSTNAME_MISMATCH);
	return 0;
}

int tls_require_peer_cn(SSL *ssl, const char *cn)
{
	pthread_once(&tls_cn_once, tls_cn_init);
	char *copy = cn ? xstrdup(cn) : NULL;
	if (!ssl || !copy || tls_cn_ssl_idx < 0) {
		free(copy);
		return 0;
	}
	char *old = SSL_get_ex_data(ssl, tls_cn_ssl_idx);
	if (SSL_set_ex_data(ssl, tls_cn_ssl_idx, copy) != 1) {
		free(copy);
		return 0;
	}
	free(old);
	SSL_set_verify(ssl, SSL_get_verify_mode(ssl) | SSL_VERIFY_PEER, tls_verify_cn);
	return 1;
}

int tls_ctx_require_peer_cn(SSL_CTX *ctx, const char *cn)
{
	pthread_once(&tls_cn_once, tls_cn_init);
	char *copy = cn ? xstrdup(cn) : NULL;
	if (!ctx || !copy || tls_cn_ctx_idx < 0) {
		free(copy);
		return 0;
	}
	char *old = SSL_CTX_get_ex_data(ctx, tls_cn_ctx_idx);
	if (SSL_CTX_set_ex_data(ctx, tls_cn_ctx_idx, copy) != 1) {
		free(copy);
		return 0;
	}
	free(old);
	SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx) | SSL_VERIFY_PEER, tls_verify_cn);
	return 1;
}
