/*
 * tls.h - the pool's certificates and TLS contexts (OpenSSL 3).
 *
 * A pool has its own CA, created by `poold init`. Every server certificate
 * (poold's, each agent's) is issued by it, and peers are checked against it.
 * Keys are EC P-256, written PEM with mode 0600. Functions returning int
 * return 1 on success and 0 on failure, pointers NULL on failure, always
 * with a human-readable reason in err; they never print or exit.
 */
#ifndef TLS_H
#define TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>

/* The pool master's certificate CN. Hosts' certificates have their host
 * uuid as CN (poold sets it, whatever the request asked), so no host can
 * hold the master's identity; agents and xe check it on every connection
 * to the master. */
#define TLS_MASTER_CN "pool-master"

/* Create a self-signed CA (CN=cn, 10 years) into ca_cert_path / ca_key_path.
 * Refuses to overwrite existing files (O_EXCL). */
int tls_ca_create(const char *ca_cert_path, const char *ca_key_path, const char *cn,
		  char *err, size_t errlen);

/* Issue a key + certificate signed by the CA, valid `days`, with
 * CN=cn and a subjectAltName for each of names (NULL-terminated; each an
 * IP literal or a DNS name, see tls_name_kind; anything else refuses the
 * whole certificate; NULL or empty: no subjectAltName);
 * extendedKeyUsage serverAuth+clientAuth. Writes key_path (0600, O_EXCL)
 * and cert_path. */
int tls_cert_issue(const char *ca_cert_path, const char *ca_key_path, const char *cn,
		   const char *const *names, int days, const char *cert_path, const char *key_path,
		   char *err, size_t errlen);

/* Sign a PEM certificate request with the CA (for agents joining later):
 * returns a malloc'ed PEM certificate or NULL. The CSR's own subject CN is
 * replaced by cn, and a request that asks for TLS_MASTER_CN is refused;
 * names as above. Extensions the request carries are ignored. */
char *tls_csr_sign(const char *ca_cert_path, const char *ca_key_path, const char *csr_pem,
		   const char *cn, const char *const *names, int days, char *err, size_t errlen);

/* A new key (key_path, 0600, must not exist) and a certificate request for
 * it with CN=cn, as PEM (malloc'ed) — what an agent sends to join. */
char *tls_csr_create(const char *key_path, const char *cn, char *err, size_t errlen);

/* SHA-256 fingerprint of a PEM certificate given as text, same format as
 * tls_cert_fingerprint. */
int tls_pem_fingerprint(const char *pem, char *out, size_t outlen, char *err, size_t errlen);

/* SHA-256 fingerprint of the first certificate in a PEM file, as
 * "AB:CD:...", 95 characters + NUL into out (size >= 96). */
int tls_cert_fingerprint(const char *cert_path, char *out, size_t outlen, char *err,
			 size_t errlen);

/* Server context: TLS >= 1.2, the given chain and key. When ca_path is not
 * NULL, client certificates are requested and verified against it
 * (verify_peer: 1 = required, 0 = optional). */
SSL_CTX *tls_server_ctx(const char *cert_path, const char *key_path, const char *ca_path,
			int require_client_cert, char *err, size_t errlen);

/* Client context: verifies the server against ca_path (when not NULL) and
 * presents cert/key when given. */
SSL_CTX *tls_client_ctx(const char *ca_path, const char *cert_path, const char *key_path,
			char *err, size_t errlen);

/* ---- tls_ident.c: names and peer identities ---- */

enum tls_name_kind { TLS_NAME_INVALID, TLS_NAME_IP, TLS_NAME_DNS };
/* What a certificate name is: an IPv4/IPv6 literal (its bytes into ip and
 * *iplen when given), a DNS name (RFC 1123 labels: letters, digits, '-';
 * the last label not all digits) or neither. Pure. */
enum tls_name_kind tls_name_kind(const char *name, unsigned char ip[16], size_t *iplen);
/* The same name: equal addresses (any spelling) or DNS names ignoring case. */
bool tls_names_same(const char *a, const char *b);
/* names (NULL-terminated) holds one that is the same as name. */
bool tls_names_contain(const char *const *names, const char *name);
/* The DNS and IP subjectAltNames of the certificate in cert_path, as a
 * NULL-terminated malloc'ed array (tls_names_free), or NULL (err set). */
char **tls_cert_names(const char *cert_path, char *err, size_t errlen);
void tls_names_free(char **names);
/* Two SHA-256 fingerprints are the same, whatever their case and colons. */
bool tls_fingerprint_same(const char *a, const char *b);
/* For tls.c: the subjectAltName of names (as tls_cert_issue) added to x
 * (1), or 0 with err; a request that asks for TLS_MASTER_CN. */
int tls_add_sans(X509 *x, const char *const *names, char *err, size_t errlen);
int tls_csr_claims_master(X509_REQ *req);
/* The certificate's single CN into out: 1, or 0 with err. */
int tls_cert_cn(const char *cert_path, char *out, size_t outlen, char *err, size_t errlen);
/* The handshake fails unless the peer's verified certificate has exactly
 * one CN, equal to cn (an exact comparison, not hostname matching). On one
 * connection, or on every connection of a context. 1, or 0. */
int tls_require_peer_cn(SSL *ssl, const char *cn);
int tls_ctx_require_peer_cn(SSL_CTX *ctx, const char *cn);

#endif
