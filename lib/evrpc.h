/*
 * evrpc.h - JSON-RPC calls to a peer over HTTPS, inside a libevent loop.
 *
 * poold calls its agents and agents call poold with it: mutual TLS (both
 * sides present certificates issued by the pool CA and check the other's
 * against it), XAPI's JSON-RPC framing, no thread and no blocking.
 * evrpc_call uses a connection of its own, closed when the answer has
 * arrived (start-up work, one-off calls); evrpc_conn keeps one alive for a
 * peer called often (heartbeats, poold's calls to its agents), replaced
 * after any failure so a connection that died with its peer never poisons
 * the next call.
 */
#ifndef EVRPC_H
#define EVRPC_H

#include <jansson.h>
#include <openssl/ssl.h>
#include <event2/event.h>

/* Exactly one of result and err is set (both borrowed for the callback's
 * duration). err is an XAPI error value; transport failures are
 * INTERNAL_ERROR with a sentence naming the peer. */
typedef void (*evrpc_cb)(void *arg, json_t *result, json_t *err);

struct evrpc_target {
	const char *et_host;     /* address */
	int et_port;
	SSL_CTX *et_ctx;         /* client context (tls_client_ctx) */
	const char *et_peer_cn;  /* when set, the peer certificate's CN must equal it exactly */
};

/* Start a call; params is stolen. 0 = the callback will be called (maybe
 * with an error), -1 = could not start (callback not called). */
int evrpc_call(struct event_base *base, const struct evrpc_target *t, const char *method, json_t *params,
	       int timeout_s, evrpc_cb cb, void *arg);

/* The same, waiting for the answer (its own loop: for start-up work such as
 * joining, before the daemon's loop runs). 0 with *result, or -1 with
 * *err (both new references). */
int evrpc_call_sync(const struct evrpc_target *t, const char *method, json_t *params, int timeout_s,
		    json_t **result, json_t **err);

/* A kept-alive connection to one peer for frequent calls (heartbeats): one
 * TLS handshake instead of one per call. A connection that failed or was
 * closed by the peer is replaced at the next call. */
struct evrpc_conn;
struct evrpc_conn *evrpc_conn_new(struct event_base *base, const struct evrpc_target *t);
/* As evrpc_call, on the kept connection; calls are answered in order. */
int evrpc_conn_call(struct evrpc_conn *k, const char *method, json_t *params, int timeout_s, evrpc_cb cb,
		    void *arg);
void evrpc_conn_free(struct evrpc_conn *k);
/* Calls sent on k and not answered yet. */
size_t evrpc_conn_pending(const struct evrpc_conn *k);
/* Free k; calls in flight are answered now with an error naming why. */
void evrpc_conn_close(struct evrpc_conn *k, const char *why);

/* The CN of the peer certificate of an incoming request's connection when
 * it verified against the server's CA (for agent-only methods), into out;
 * 0 when there is one, -1 when there is none. */
struct evhttp_request;
int evrpc_request_peer_cn(struct evhttp_request *req, char *out, size_t outlen);

/* Answer a request with a complete JSON-RPC text (200, application/json). */
void evrpc_reply(struct evhttp_request *req, const char *text);

#endif
