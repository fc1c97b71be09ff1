/* evrpc.c - JSON-RPC over HTTPS from a libevent loop (see evrpc.h). */
#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/x509.h>
#include "evrpc.h"
#include "jsonrpc.h"
#include "tls.h"
#include "xerr.h"
#include "util.h"

struct evrpc_conn;

struct evrpc_call {
	evrpc_cb ec_cb;
	void *ec_arg;
	char ec_peer[300];
	char ec_method[128];
	struct evrpc_conn *ec_owner; /* a kept connection, which lists its calls in flight */
	struct evrpc_call *ec_next;
};

static void owner_forget(struct evrpc_call *c);
static void owner_add(struct evrpc_conn *k, struct evrpc_call *c);

static int cn_of(X509 *cert, char *out, size_t outlen)
{
	X509_NAME *n = cert ? X509_get_subject_name(cert) : NULL;
	return n && X509_NAME_get_text_by_NID(n, NID_commonName, out, (int)outlen) > 0 ? 0 : -1;
}

static SSL *ssl_of(struct evhttp_connection *evcon)
{
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	return bev ? bufferevent_openssl_get_ssl(bev) : NULL;
}

static void fail(struct evrpc_call *c, const char *what)
{
	char msg[700];
	snprintf(msg, sizeof msg, "%s to %s: %s", c->ec_method, c->ec_peer, what);
	json_t *e = xerr_new(XE_INTERNAL_ERROR, msg, NULL);
	c->ec_cb(c->ec_arg, NULL, e);
	json_decref(e);
}

static void conn_broken(struct evrpc_conn *k);

static void on_done(struct evhttp_request *req, void *arg)
{
	struct evrpc_call *c = arg;
	struct evrpc_conn *owner = c->ec_owner;
	owner_forget(c);
	/* a transport failure (not an error answer: other calls may be in
	 * flight on the same connection) means the next call needs a new one */
	bool broken = !req || evhttp_request_get_response_code(req) != 200;
	if (broken && owner)
		conn_broken(owner);
	if (!req || evhttp_request_get_response_code(req) == 0) {
		fail(c, "no answer (connection refused or reset, TLS refused, or timed out)");
		free(c);
		return;
	}
	int code = evhttp_request_get_response_code(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = (const char *)evbuffer_pullup(in, -1);
	if (code != 200) {
		char d[64];
		snprintf(d, sizeof d, "answered HTTP %d", code);
		fail(c, d);
		free(c);
		return;
	}
	json_t *result = NULL, *err = NULL;
	if (jrpc_parse_answer(body ? body : "", len, &result, &err) < 0 && owner)
		conn_broken(owner); /* not an answer: the stream is out of step */
	c->ec_cb(c->ec_arg, err ? NULL : result, err);
	json_decref(result);
	json_decref(err);
	free(c);
}

/* A TLS connection to t (not yet connected: evhttp connects on first use). */
static struct evhttp_connection *conn_new(struct event_base *base, const struct evrpc_target *t)
{
	SSL *ssl = SSL_new(t->et_ctx);
	if (!ssl)
		return NULL;
	SSL_set_tlsext_host_name(ssl, t->et_host);
	/* the peer must be the one we mean, not just any pool member: its
	 * certificate's CN (a host's uuid, or the master's TLS_MASTER_CN) is
	 * compared exactly in the handshake, which fails otherwise */
	if (t->et_peer_cn && *t->et_peer_cn && tls_require_peer_cn(ssl, t->et_peer_cn) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	struct bufferevent *bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
								BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!bev) {
		SSL_free(ssl);
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	struct evhttp_connection *evcon = evhttp_connection_base_bufferevent_new(base, NULL, bev, t->et_host,
										  (ev_uint16_t)t->et_port);
	if (!evcon) {
		bufferevent_free(bev);
		return NULL;
	}
	evhttp_connection_set_retries(evcon, 0);
	return evcon;
}

/* Send one request on evcon; -1 when it could not be queued (the request
 * is freed by evhttp then, c by us). */
static int send_request(struct evhttp_connection *evcon, const struct evrpc_target *t, const char *method,
			json_t *params, struct evrpc_conn *keep, evrpc_cb cb, void *arg)
{
	char *body = jrpc_request(method, params, 1);
	json_decref(params);
	struct evrpc_call *c = xcalloc(1, sizeof *c);
	if (!body || !c) {
		free(body);
		free(c);
		return -1;
	}
	c->ec_cb = cb;
	c->ec_arg = arg;
	snprintf(c->ec_peer, sizeof c->ec_peer, "%s:%d", t->et_host, t->et_port);
	snprintf(c->ec_method, sizeof c->ec_method, "%s", method);
	struct evhttp_request *req = evhttp_request_new(on_done, c);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", t->et_host);
	evhttp_add_header(h, "Content-Type", "application/json");
	if (!keep)
		evhttp_add_header(h, "Connection", "close");
	evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	free(body);
	if (evhttp_make_request(evcon, req, EVHTTP_REQ_POST, "/jsonrpc") < 0) {
		free(c);
		return -1;
	}
	/* The request leaves as several small TLS records (headers, body):
	 * with Nagle on, the second waits for the peer's delayed ACK, 40 ms a
	 * call on a kept-alive connection. The socket exists once the request
	 * is queued (a new connection is being made). */
	evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
	int one = 1;
	if (fd >= 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (keep)
		owner_add(keep, c);
	return 0;
}

int evrpc_call(struct event_base *base, const struct evrpc_target *t, const char *method, json_t *params,
	       int timeout_s, evrpc_cb cb, void *arg)
{
	struct evhttp_connection *evcon = conn_new(base, t);
	if (!evcon) {
		json_decref(params);
		return -1;
	}
	evhttp_connection_set_timeout(evcon, timeout_s);
	evhttp_connection_free_on_completion(evcon);
	if (send_request(evcon, t, method, params, NULL, cb, arg) < 0) {
		evhttp_connection_free(evcon);
		return -1;
	}
	return 0;
}

struct sync_ctx {
	json_t *result, *err;
	bool done;
};

static void sync_done(void *arg, json_t *result, json_t *err)
{
	struct sync_ctx *s = arg;
	s->result = json_incref(result);
	s->err = json_incref(err);
	s->done = true;
}

int evrpc_call_sync(const struct evrpc_target *t, const char *method, json_t *params, int timeout_s,
		    json_t **result, json_t **err)
{
	struct sync_ctx s = {NULL, NULL, false};
	struct event_base *base = event_base_new();
	*result = *err = NULL;
	if (!base || evrpc_call(base, t, method, params, timeout_s, sync_done, &s) < 0) {
		if (base)
			event_base_free(base);
		else
			json_decref(params);
		*err = xerr_newf(XE_INTERNAL_ERROR, "%s to %s:%d: cannot start the call", method, t->et_host, t->et_port);
		return -1;
	}
	while (!s.done && event_base_loop(base, EVLOOP_ONCE) == 0)
		;
	event_base_free(base);
	*result = s.result;
	*err = s.err;
	if (!s.done)
		*err = xerr_newf(XE_INTERNAL_ERROR, "%s to %s:%d: no answer", method, t->et_host, t->et_port);
	return *err ? -1 : 0;
}

struct evrpc_conn {
	struct event_base *k_base;
	struct evrpc_target k_target;
	char k_host[256], k_cn[128];
	struct evhttp_connection *k_evcon;
	bool k_dead; /* closed or failed: replace before the next call */
	struct evrpc_call *k_pending; /* calls in flight on it */
};

static void owner_forget(struct evrpc_call *c)
{
	if (!c->ec_owner)
		return;
	for (struct evrpc_call **p = &c->ec_owner->k_pending; *p; p = &(*p)->ec_next)
		if (*p == c) {
			*p = c->ec_next;
			break;
		}
	c->ec_owner = NULL;
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	struct evrpc_conn *k = arg;
	k->k_dead = true;
}

static void owner_add(struct evrpc_conn *k, struct evrpc_call *c)
{
	c->ec_owner = k;
	c->ec_next = k->k_pending;
	k->k_pending = c;
}

static void conn_call_done(void *arg, json_t *result, json_t *err);

/* Calls whose connection is gone without answering them: their callers
 * are told why (notify) or, at shutdown, they are only freed. */
static void drop_pending(struct evrpc_conn *k, const char *notify)
{
	while (k->k_pending) {
		struct evrpc_call *c = k->k_pending;
		k->k_pending = c->ec_next;
		c->ec_owner = NULL;
		if (notify) {
			fail(c, notify);
		} else {
			free(c->ec_arg); /* the struct conn_call of evrpc_conn_call */
		}
		free(c);
	}
}

struct evrpc_conn *evrpc_conn_new(struct event_base *base, const struct evrpc_target *t)
{
	struct evrpc_conn *k = xcalloc(1, sizeof *k);
	k->k_base = base;
	k->k_target = *t;
	snprintf(k->k_host, sizeof k->k_host, "%s", t->et_host);
	snprintf(k->k_cn, sizeof k->k_cn, "%s", t->et_peer_cn ? t->et_peer_cn : "");
	k->k_target.et_host = k->k_host;
	k->k_target.et_peer_cn = k->k_cn;
	return k;
}

/* A failed call marks the connection for replacement. */
struct conn_call {
	struct evrpc_conn *cc_k;
	evrpc_cb cc_cb;
	void *cc_arg;
};

static void conn_call_done(void *arg, json_t *result, json_t *err)
{
	struct conn_call *cc = arg;
	cc->cc_cb(cc->cc_arg, result, err);
	free(cc);
}

static void conn_broken(struct evrpc_conn *k)
{
	k->k_dead = true;
}

int evrpc_conn_call(struct evrpc_conn *k, const char *method, json_t *params, int timeout_s, evrpc_cb cb,
		    void *arg)
{
	if (k->k_evcon && k->k_dead) {
		/* a TLS connection cannot be reconnected in place: start anew */
		evhttp_connection_set_closecb(k->k_evcon, NULL, NULL);
		evhttp_connection_free(k->k_evcon);
		k->k_evcon = NULL;
		drop_pending(k, "no answer (the connection was replaced)"); /* their callers hear that they failed */
	}
	if (!k->k_evcon) {
		k->k_evcon = conn_new(k->k_base, &k->k_target);
		if (!k->k_evcon) {
			json_decref(params);
			return -1;
		}
		k->k_dead = false;
		evhttp_connection_set_closecb(k->k_evcon, conn_closed, k);
	}
	evhttp_connection_set_timeout(k->k_evcon, timeout_s);
	struct conn_call *cc = xcalloc(1, sizeof *cc);
	*cc = (struct conn_call){k, cb, arg};
	if (send_request(k->k_evcon, &k->k_target, method, params, k, conn_call_done, cc) < 0) {
		free(cc);
		k->k_dead = true;
		return -1;
	}
	return 0;
}

void evrpc_conn_free(struct evrpc_conn *k)
{
	if (!k)
		return;
	if (k->k_evcon) {
		evhttp_connection_set_closecb(k->k_evcon, NULL, NULL);
		evhttp_connection_free(k->k_evcon); /* drops its requests without callbacks */
	}
	drop_pending(k, NULL); /* a heartbeat in flight at shutdown ends here, unanswered */
	assert(!k->k_pending);
	free(k);
}

size_t evrpc_conn_pending(const struct evrpc_conn *k)
{
	size_t n = 0;
	for (const struct evrpc_call *c = k->k_pending; c; c = c->ec_next)
		n++;
	return n;
}

void evrpc_conn_close(struct evrpc_conn *k, const char *why)
{
	if (!k)
		return;
	if (k->k_evcon) {
		evhttp_connection_set_closecb(k->k_evcon, NULL, NULL);
		evhttp_connection_free(k->k_evcon); /* drops its requests without callbacks */
		k->k_evcon = NULL;
	}
	drop_pending(k, why);
	assert(!k->k_pending);
	free(k);
}

int evrpc_request_peer_cn(struct evhttp_request *req, char *out, size_t outlen)
{
	SSL *ssl = ssl_of(evhttp_request_get_connection(req));
	if (!ssl || SSL_get_verify_result(ssl) != X509_V_OK)
		return -1;
	X509 *peer = SSL_get1_peer_certificate(ssl);
	int rc = cn_of(peer, out, outlen);
	X509_free(peer);
	return rc;
}

void evrpc_reply(struct evhttp_request *req, const char *text)
{
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, text, strlen(text));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}
