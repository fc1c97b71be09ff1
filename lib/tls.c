/*
 * tls.c - the pool's CA, certificates and TLS contexts on OpenSSL 3.
 *
 * Keys are EC P-256; certificates are X.509 v3 signed with SHA-256, with a
 * random serial and notBefore an hour in the past to absorb clock skew.
 * Files are created with O_EXCL (keys 0600, certificates 0644): nothing is
 * ever overwritten, and a half-written pair is removed again. Every failure
 * returns 0 / NULL with the reason (and OpenSSL's error string) in err.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls.h"
#include "util.h"

#define TLS_CA_DAYS 3650
#define TLS_SKEW_SECONDS 3600
#define TLS_SERIAL_BYTES 16
#define TLS_SESSION_CTX "poold"

/* Format the reason into err, followed by OpenSSL's first queued error
 * (if any); the queue is then cleared so it cannot leak into later calls. */
__attribute__((format(printf, 3, 4)))
static void tls_err(char *err, size_t errlen, const char *fmt, ...)
{
	unsigned long e = ERR_get_error();
	ERR_clear_error();
	if (!err || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (e == 0 || n < 0 || (size_t)n + 3 >= errlen)
		return;
	char ossl[256];
	ERR_error_string_n(e, ossl, sizeof ossl);
	snprintf(err + n, errlen - (size_t)n, ": %s", ossl);
}

/* ---- files ---------------------------------------------------------- */

/* Create path exclusively with mode; returns a FILE or NULL (err set). */
static FILE *tls_create(const char *path, mode_t mode, const char *what, char *err,
			size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		tls_err(err, errlen, "cannot create %s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	/* open() is subject to umask; make the mode exact. */
	if (fchmod(fd, mode) != 0) {
		tls_err(err, errlen, "cannot chmod %s %s: %s", what, path, strerror(errno));
		close(fd);
		unlink(path);
		return NULL;
	}
	FILE *f = fdopen(fd, "w");
	if (!f) {
		tls_err(err, errlen, "cannot open %s %s: %s", what, path, strerror(errno));
		close(fd);
		unlink(path);
	}
	return f;
}

/* Flush and close f; on any error remove path. Returns 1 on success. */
static int tls_finish(FILE *f, int ok, const char *path, const char *what, char *err,
		      size_t errlen)
{
	if (!ok) {
		tls_err(err, errlen, "cannot write %s %s", what, path);
		fclose(f);
		unlink(path);
		return 0;
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		tls_err(err, errlen, "cannot write %s %s: %s", what, path, strerror(errno));
		fclose(f);
		unlink(path);
		return 0;
	}
	if (fclose(f) != 0) {
		tls_err(err, errlen, "cannot close %s %s: %s", what, path, strerror(errno));
		unlink(path);
		return 0;
	}
	return 1;
}

/* Write a new key (0600) and certificate (0644); neither may exist yet.
 * On failure neither file is left behind. */
static int tls_write_pair(X509 *cert, const char *cert_path, EVP_PKEY *key,
			  const char *key_path, char *err, size_t errlen)
{
	FILE *kf = tls_create(key_path, 0600, "key file", err, errlen);
	if (!kf)
		return 0;
	FILE *cf = tls_create(cert_path, 0644, "certificate file", err, errlen);
	if (!cf) {
		fclose(kf);
		unlink(key_path);
		return 0;
	}
	int kok = PEM_write_PrivateKey(kf, key, NULL, NULL, 0, NULL, NULL) == 1;
	if (!tls_finish(kf, kok, key_path, "key file", err, errlen)) {
		fclose(cf);
		unlink(cert_path);
		return 0;
	}
	int cok = PEM_write_X509(cf, cert) == 1;
	if (!tls_finish(cf, cok, cert_path, "certificate file", err, errlen)) {
		unlink(key_path);
		return 0;
	}
	return 1;
}

static X509 *tls_read_cert(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		tls_err(err, errlen, "cannot open certificate %s: %s", path, strerror(errno));
		return NULL;
	}
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x)
		tls_err(err, errlen, "cannot read PEM certificate %s", path);
	return x;
}

static EVP_PKEY *tls_read_key(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		tls_err(err, errlen, "cannot open key %s: %s", path, strerror(errno));
		return NULL;
	}
	EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!k)
		tls_err(err, errlen, "cannot read PEM private key %s", path);
	return k;
}

/* Load the CA certificate and its key, checking that they belong together. */
static int tls_load_ca(const char *cert_path, const char *key_path, X509 **ca,
		       EVP_PKEY **cakey, char *err, size_t errlen)
{
	*ca = tls_read_cert(cert_path, err, errlen);
	if (!*ca)
		return 0;
	*cakey = tls_read_key(key_path, err, errlen);
	if (!*cakey) {
		X509_free(*ca);
		return 0;
	}
	if (X509_check_private_key(*ca, *cakey) != 1) {
		tls_err(err, errlen, "CA key %s does not match CA certificate %s", key_path,
			cert_path);
		EVP_PKEY_free(*cakey);
		X509_free(*ca);
		return 0;
	}
	return 1;
}

/* ---- certificate building ------------------------------------------- */

static EVP_PKEY *tls_keygen(char *err, size_t errlen)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	if (!k)
		tls_err(err, errlen, "cannot generate EC P-256 key");
	return k;
}

/* A positive random serial of 16 bytes (the top bit cleared for DER sign,
 * the next one set so the encoding never shrinks). */
static int tls_set_serial(X509 *x)
{
	unsigned char buf[TLS_SERIAL_BYTES];
	if (RAND_bytes(buf, sizeof buf) != 1)
		return 0;
	buf[0] = (unsigned char)((buf[0] & 0x7f) | 0x40);
	BIGNUM *bn = BN_bin2bn(buf, sizeof buf, NULL);
	if (!bn)
		return 0;
	ASN1_INTEGER *ai = BN_to_ASN1_INTEGER(bn, NULL);
	BN_free(bn);
	if (!ai)
		return 0;
	int ok = X509_set_serialNumber(x, ai);
	ASN1_INTEGER_free(ai);
	return ok == 1;
}

static int tls_add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	if (!ext)
		return 0;
	int ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1;
}

/* Subject CN=cn, serial, validity, public key; issuer is set by the caller
 * (NULL means self-signed). */
static X509 *tls_cert_new(const char *cn, int days, EVP_PKEY *pub, X509 *issuer)
{
	X509 *x = X509_new();
	if (!x)
		return NULL;
	X509_NAME *name = X509_get_subject_name(x);
	if (X509_set_version(x, X509_VERSION_3) != 1 || !tls_set_serial(x) ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
				       -1, 0) != 1 ||
	    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) != 1 ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -TLS_SKEW_SECONDS) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) ||
	    X509_set_pubkey(x, pub) != 1) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static int tls_ca_exts(X509 *x)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	return tls_add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE") &&
	       tls_add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") &&
	       tls_add_ext(x, &ctx, NID_subject_key_identifier, "hash") &&
	       tls_add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always");
}

static int tls_leaf_exts(X509 *x, X509 *ca)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
	if (!tls_add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
	    !tls_add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") ||
	    !tls_add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth") ||
	    !tls_add_ext(x, &ctx, NID_subject_key_identifier, "hash") ||
	    !tls_add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always"))
		return 0;
	return 1;
}

static int tls_check_args(const char *cn, int days, char *err, size_t errlen)
{
	if (!cn || !*cn) {
		tls_err(err, errlen, "certificate common name is empty");
		return 0;
	}
	if (days <= 0 || days > 100 * 366) {
		tls_err(err, errlen, "certificate validity of %d days is out of range", days);
		return 0;
	}
	return 1;
}

/* A leaf certificate for pub, signed by ca/cakey. */
static X509 *tls_leaf_make(X509 *ca, EVP_PKEY *cakey, EVP_PKEY *pub, const char *cn,
			   const char *const *names, int days, char *err, size_t errlen)
{
	X509 *x = tls_cert_new(cn, days, pub, ca);
	if (!x) {
		tls_err(err, errlen, "cannot build certificate for CN=%s", cn);
		return NULL;
	}
	if (!tls_leaf_exts(x, ca)) {
		tls_err(err, errlen, "cannot add extensions for CN=%s", cn);
		X509_free(x);
		return NULL;
	}
	if (!tls_add_sans(x, names, err, errlen)) {
		X509_free(x);
		return NULL;
	}
	if (X509_sign(x, cakey, EVP_sha256()) <= 0) {
		tls_err(err, errlen, "cannot sign certificate for CN=%s", cn);
		X509_free(x);
		return NULL;
	}
	return x;
}

/* ---- public: certificates ------------------------------------------- */

int tls_ca_create(const char *ca_cert_path, const char *ca_key_path, const char *cn,
		  char *err, size_t errlen)
{
	if (!tls_check_args(cn, TLS_CA_DAYS, err, errlen))
		return 0;
	EVP_PKEY *key = tls_keygen(err, errlen);
	if (!key)
		return 0;
	int ok = 0;
	X509 *x = tls_cert_new(cn, TLS_CA_DAYS, key, NULL);
	if (!x)
		tls_err(err, errlen, "cannot build CA certificate CN=%s", cn);
	else if (!tls_ca_exts(x))
		tls_err(err, errlen, "cannot add CA extensions");
	else if (X509_sign(x, key, EVP_sha256()) <= 0)
		tls_err(err, errlen, "cannot self-sign CA certificate");
	else
		ok = tls_write_pair(x, ca_cert_path, key, ca_key_path, err, errlen);
	X509_free(x);
	EVP_PKEY_free(key);
	return ok;
}

int tls_cert_issue(const char *ca_cert_path, const char *ca_key_path, const char *cn,
		   const char *const *names, int days, const char *cert_path, const char *key_path,
		   char *err, size_t errlen)
{
	if (!tls_check_args(cn, days, err, errlen))
		return 0;
	X509 *ca;
	EVP_PKEY *cakey;
	if (!tls_load_ca(ca_cert_path, ca_key_path, &ca, &cakey, err, errlen))
		return 0;
	int ok = 0;
	EVP_PKEY *key = tls_keygen(err, errlen);
	X509 *x = key ? tls_leaf_make(ca, cakey, key, cn, names, days, err, errlen) : NULL;
	if (x)
		ok = tls_write_pair(x, cert_path, key, key_path, err, errlen);
	X509_free(x);
	EVP_PKEY_free(key);
	EVP_PKEY_free(cakey);
	X509_free(ca);
	return ok;
}

/* Parse a CSR and check its self-signature and key strength. */
static X509_REQ *tls_csr_parse(const char *csr_pem, char *err, size_t errlen)
{
	if (!csr_pem) {
		tls_err(err, errlen, "no certificate request given");
		return NULL;
	}
	BIO *b = BIO_new_mem_buf(csr_pem, -1);
	X509_REQ *req = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (!req) {
		tls_err(err, errlen, "cannot parse PEM certificate request");
		return NULL;
	}
	EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
	if (!pub) {
		tls_err(err, errlen, "certificate request has no usable public key");
	} else if (X509_REQ_verify(req, pub) != 1) {
		tls_err(err, errlen, "certificate request signature does not verify");
	} else if (EVP_PKEY_get_security_bits(pub) < 112) {
		tls_err(err, errlen, "certificate request key is too weak (%d security bits)",
			EVP_PKEY_get_security_bits(pub));
	} else {
		return req;
	}
	X509_REQ_free(req);
	return NULL;
}

static char *tls_cert_to_pem(X509 *x, char *err, size_t errlen)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *out = NULL;
	if (b && PEM_write_bio_X509(b, x) == 1) {
		char *data;
		long n = BIO_get_mem_data(b, &data);
		out = xmalloc((size_t)n + 1);
		if (out) {
			memcpy(out, data, (size_t)n);
			out[n] = '\0';
		}
	}
	if (!out)
		tls_err(err, errlen, "cannot encode certificate as PEM");
	BIO_free(b);
	return out;
}

char *tls_csr_sign(const char *ca_cert_path, const char *ca_key_path, const char *csr_pem,
		   const char *cn, const char *const *names, int days, char *err, size_t errlen)
{
	if (!tls_check_args(cn, days, err, errlen))
		return NULL;
	X509_REQ *req = tls_csr_parse(csr_pem, err, errlen);
	if (!req)
		return NULL;
	if (tls_csr_claims_master(req) || strcmp(cn, TLS_MASTER_CN) == 0) {
		tls_err(err, errlen, "the certificate request asks for the pool master's identity (CN=%s)",
			TLS_MASTER_CN);
		X509_REQ_free(req);
		return NULL;
	}
	X509 *ca;
	EVP_PKEY *cakey;
	char *pem = NULL;
	if (tls_load_ca(ca_cert_path, ca_key_path, &ca, &cakey, err, errlen)) {
		EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
		X509 *x = tls_leaf_make(ca, cakey, pub, cn, names, days, err, errlen);
		if (x)
			pem = tls_cert_to_pem(x, err, errlen);
		X509_free(x);
		EVP_PKEY_free(cakey);
		X509_free(ca);
	}
	X509_REQ_free(req);
	return pem;
}

static int tls_x509_fingerprint(X509 *x, const char *what, char *out, size_t outlen, char *err,
				size_t errlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (!out || outlen < 96) {
		tls_err(err, errlen, "fingerprint buffer too small (need 96 bytes)");
		return 0;
	}
	if (X509_digest(x, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32) {
		tls_err(err, errlen, "cannot compute SHA-256 fingerprint of %s", what);
		return 0;
	}
	static const char hex[] = "0123456789ABCDEF";
	for (unsigned i = 0; i < mdlen; i++) {
		out[3 * i] = hex[md[i] >> 4];
		out[3 * i + 1] = hex[md[i] & 0xf];
		out[3 * i + 2] = i + 1 < mdlen ? ':' : '\0';
	}
	return 1;
}

int tls_cert_fingerprint(const char *cert_path, char *out, size_t outlen, char *err,
			 size_t errlen)
{
	X509 *x = tls_read_cert(cert_path, err, errlen);
	if (!x)
		return 0;
	int ok = tls_x509_fingerprint(x, cert_path, out, outlen, err, errlen);
	X509_free(x);
	return ok;
}

int tls_pem_fingerprint(const char *pem, char *out, size_t outlen, char *err, size_t errlen)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (!x) {
		tls_err(err, errlen, "not a PEM certificate");
		return 0;
	}
	int ok = tls_x509_fingerprint(x, "the certificate", out, outlen, err, errlen);
	X509_free(x);
	return ok;
}

char *tls_csr_create(const char *key_path, const char *cn, char *err, size_t errlen)
{
	EVP_PKEY *key = tls_keygen(err, errlen);
	X509_REQ *req = key ? X509_REQ_new() : NULL;
	char *pem = NULL;
	BIO *b = NULL;
	if (!req)
		goto out;
	X509_NAME *name = X509_REQ_get_subject_name(req);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) ||
	    !X509_REQ_set_pubkey(req, key) || !X509_REQ_sign(req, key, EVP_sha256())) {
		tls_err(err, errlen, "cannot build the certificate request");
		goto out;
	}
	FILE *kf = tls_create(key_path, 0600, "key file", err, errlen);
	if (!kf)
		goto out;
	if (!tls_finish(kf, PEM_write_PrivateKey(kf, key, NULL, NULL, 0, NULL, NULL) == 1, key_path, "key file",
			err, errlen))
		goto out;
	b = BIO_new(BIO_s_mem());
	char *data;
	long n;
	if (!b || PEM_write_bio_X509_REQ(b, req) != 1 || (n = BIO_get_mem_data(b, &data)) <= 0) {
		tls_err(err, errlen, "cannot encode the certificate request");
		unlink(key_path);
		goto out;
	}
	pem = strndup(data, (size_t)n);
out:
	BIO_free(b);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return pem;
}

/* ---- public: contexts ----------------------------------------------- */

static SSL_CTX *tls_ctx_new(const SSL_METHOD *method, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(method);
	if (!ctx) {
		tls_err(err, errlen, "cannot create SSL context");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		tls_err(err, errlen, "cannot set minimum TLS version 1.2");
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	return ctx;
}

/* Load our certificate chain and key and check they match. */
static int tls_ctx_identity(SSL_CTX *ctx, const char *cert_path, const char *key_path,
			    char *err, size_t errlen)
{
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
		tls_err(err, errlen, "cannot load certificate chain %s", cert_path);
		return 0;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
		tls_err(err, errlen, "cannot load private key %s", key_path);
		return 0;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_err(err, errlen, "private key %s does not match certificate %s", key_path,
			cert_path);
		return 0;
	}
	return 1;
}

/* Make ca_path the only trust anchor (no system default paths). */
static int tls_ctx_trust(SSL_CTX *ctx, const char *ca_path, char *err, size_t errlen)
{
	if (SSL_CTX_load_verify_locations(ctx, ca_path, NULL) != 1) {
		tls_err(err, errlen, "cannot load CA certificate %s", ca_path);
		return 0;
	}
	return 1;
}

SSL_CTX *tls_server_ctx(const char *cert_path, const char *key_path, const char *ca_path,
			int require_client_cert, char *err, size_t errlen)
{
	if (!cert_path || !key_path) {
		tls_err(err, errlen, "server context needs a certificate and a key");
		return NULL;
	}
	SSL_CTX *ctx = tls_ctx_new(TLS_server_method(), err, errlen);
	if (!ctx)
		return NULL;
	if (!tls_ctx_identity(ctx, cert_path, key_path, err, errlen))
		goto fail;
	if (SSL_CTX_set_session_id_context(ctx, (const unsigned char *)TLS_SESSION_CTX,
					   sizeof TLS_SESSION_CTX - 1) != 1) {
		tls_err(err, errlen, "cannot set session id context");
		goto fail;
	}
	if (ca_path) {
		if (!tls_ctx_trust(ctx, ca_path, err, errlen))
			goto fail;
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_path);
		if (!names) {
			tls_err(err, errlen, "cannot read CA names from %s", ca_path);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		int mode = SSL_VERIFY_PEER;
		if (require_client_cert)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_CTX_set_verify(ctx, mode, NULL);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *tls_client_ctx(const char *ca_path, const char *cert_path, const char *key_path,
			char *err, size_t errlen)
{
	if (!cert_path != !key_path) {
		tls_err(err, errlen, "client certificate and key must be given together");
		return NULL;
	}
	SSL_CTX *ctx = tls_ctx_new(TLS_client_method(), err, errlen);
	if (!ctx)
		return NULL;
	if (cert_path && !tls_ctx_identity(ctx, cert_path, key_path, err, errlen))
		goto fail;
	if (ca_path) {
		if (!tls_ctx_trust(ctx, ca_path, err, errlen))
			goto fail;
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}
