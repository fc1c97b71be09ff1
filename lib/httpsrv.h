/*
 * httpsrv.h - the HTTPS front of poold and of every agent: libevent's
 * evhttp over OpenSSL, with the limits a server facing a network needs.
 *
 * - A whole-request deadline: a request (the TLS handshake first, then its
 *   headers and body) must arrive within hl_request_ms of its first byte,
 *   however slowly it trickles; evhttp's own timeout only measures silence.
 * - Connection caps: open connections in all (hl_max_conns, lowered to
 *   what the file descriptor limit allows) and from one source address
 *   (hl_max_per_addr; IPv6 by /64). A connection over a cap is closed at
 *   once, before its TLS handshake costs anything.
 * - accept() failing for lack of descriptors (EMFILE, ENFILE) pauses
 *   accepting for a moment instead of retrying in a busy loop.
 * - RLIMIT_NOFILE is raised to its hard limit when the first server starts.
 * - Framing: a request with two different Content-Length headers, or with
 *   both Content-Length and Transfer-Encoding, gets 400 and the connection
 *   is closed (the two ends would disagree on where the body ends).
 * - hl_peer_cn: clients must present a certificate with exactly that CN
 *   (an agent serves only the pool master).
 */
#ifndef HTTPSRV_H
#define HTTPSRV_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <openssl/ssl.h>
#include <event2/event.h>
#include <event2/http.h>

struct evkeyvalq;

struct httpsrv_limits {
	long long hl_request_ms;   /* whole-request deadline */
	long long hl_idle_ms;      /* a kept-alive connection's silence between requests */
	long long hl_max_body;     /* bigger bodies: 413 (evhttp) */
	long long hl_max_headers;
	int hl_max_conns;          /* in all (0: only the descriptor limit) */
	int hl_max_per_addr;       /* from one address (0: no cap) */
	const char *hl_peer_cn;    /* required client certificate CN, or NULL */
	const char *hl_name;       /* for log lines ("XAPI", "agent API") */
};

typedef void (*httpsrv_handler)(struct evhttp_request *req, void *arg);

struct httpsrv;

/* A server on base; TLS with *ctx, read when a connection arrives (the
 * agent makes its context after it started listening; nothing is accepted
 * before the loop runs). NULL on out of memory. */
struct httpsrv *httpsrv_new(struct event_base *base, SSL_CTX *const *ctx, const struct httpsrv_limits *lim,
			    httpsrv_handler handler, void *arg);
/* Listen on addr:port (0: any free port); *real_port gets the port. 0, or
 * -1 with err. */
int httpsrv_bind(struct httpsrv *s, const char *addr, int port, int *real_port, char *err, size_t errlen);
/* The evhttp underneath (allowed methods and such). */
struct evhttp *httpsrv_evhttp(struct httpsrv *s);
/* Stop listening and close every connection (no handler runs after). */
void httpsrv_free(struct httpsrv *s);

/* The peer's address of a request as text ("" when unknown). */
void httpsrv_request_addr(struct evhttp_request *req, char *out, size_t outlen);

/* ---- pure parts, for the tests ---- */

/* The connection cap that leaves room for the daemon's other descriptors
 * (its database, agents, migrations): at most a quarter of the limit
 * reserved, at least 32. */
int httpsrv_conn_cap(long long wanted, long long nofile);
/* The per-address key of a peer: IPv4 dotted (also when IPv4-mapped),
 * IPv6 by its /64 ("2001:db8:1:2::/64"), "" for other families. */
void httpsrv_addr_key(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen);
/* The request's framing headers agree with one another (see above). */
bool httpsrv_framing_ok(const struct evkeyvalq *headers);

#endif
