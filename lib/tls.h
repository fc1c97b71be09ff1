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

#include <stddef.h>
#include <openssl/ssl.h>

/* Create a self-signed CA (CN=cn, 10 years) into ca_cert_path / ca_key_path.
 * Refuses to overwrite existing files (O_EXCL). */
int tls_ca_create(const char *ca_cert_path, const char *ca_key_path, const char *cn,
		  char *err, size_t errlen);

/* Issue a key + certificate signed by the CA, valid `days`, with
 * CN=cn and subjectAltName from the comma-separated list sans
 * ("DNS:localhost,IP:127.0.0.1"); extendedKeyUsage serverAuth+clientAuth.
 * Writes key_path (0600, O_EXCL) and cert_path. */
int tls_cert_issue(const char *ca_cert_path, const char *ca_key_path, const char *cn,
		   const char *sans, int days, const char *cert_path, const char *key_path,
		   char *err, size_t errlen);

/* Sign a PEM certificate request with the CA (for agents joining later):
 * returns a malloc'ed PEM certificate or NULL. The CSR's own subject CN is
 * replaced by cn; sans as above. */
char *tls_csr_sign(const char *ca_cert_path, const char *ca_key_path, const char *csr_pem,
		   const char *cn, const char *sans, int days, char *err, size_t errlen);

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

#endif
