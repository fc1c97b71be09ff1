/*
 * http.c - poold's HTTPS front: libevent's evhttp over OpenSSL bufferevents,
 * behind the limits of lib/httpsrv.c (request deadline, connection caps).
 *
 * POST /jsonrpc carries XAPI's JSON-RPC; POST / and /RPC2 take JSON-RPC
 * too when the body is JSON (XML-RPC is not spoken: such requests get 415
 * with a sentence saying so). Bodies above max-request-size are refused
 * with 413 by evhttp itself, and a body above
 * max-unauthenticated-request-size is not parsed unless it comes from a
 * pool member (its certificate) or carries a valid session. An event.from
 * call parks its request until it can be answered; if the client goes away
 * first, its wait is dropped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>
#include "evrpc.h"
#include "httpsrv.h"
#include "jsonrpc.h"
#include "log.h"
#include "poold.h"
#include "tls.h"
#include "xerr.h"
#include "util.h"

/* The TLS context: a singleton of the one server. */
static SSL_CTX *http_ssl_ctx;

static void http_reply(struct evhttp_request *req, int code, const char *reason, const char *ctype,
		       const char *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", ctype);
	struct evbuffer *b = evbuffer_new();
	if (body)
		evbuffer_add(b, body, strlen(body));
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

/* The client went away while its call was parked: drop the call. */
static void http_conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct api_call *c = arg;
	evhttp_connection_set_closecb(evcon, NULL, NULL);
	if (c->ac_cancel)
		c->ac_cancel(c);
}

static void http_send(struct evhttp_request *req, struct evbuffer *body)
{
	/* bufferevent_openssl writes one TLS record, one syscall, per buffer
	 * chain: an answer in one piece goes out with one write, not four */
	evbuffer_pullup(body, -1);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_send_reply(req, 200, "OK", body);
}

static void http_stream_more(struct evhttp_connection *evcon, void *arg);

static void http_stream_cancel(struct api_call *c)
{
	api_call_free(c);
}

/* Send the next piece of a streamed answer; the last one ends it. */
static void http_stream_next(struct api_call *c, struct evbuffer *buf)
{
	struct evhttp_request *req = c->ac_transport;
	int more = c->ac_stream(c, buf);
	evbuffer_pullup(buf, -1); /* few large TLS records, not two per database row */
	if (more == 1) {
		evhttp_send_reply_chunk_with_cb(req, buf, http_stream_more, c);
		evbuffer_free(buf);
		return;
	}
	if (more < 0)
		log_error("%s: reading the database failed: answer cut off", c->ac_method->am_name);
	char *post = jrpc_ok_suffix(c->ac_id, c->ac_v2);
	evbuffer_add(buf, post, strlen(post));
	free(post);
	evhttp_send_reply_chunk(req, buf);
	evbuffer_free(buf);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	if (evcon)
		evhttp_connection_set_closecb(evcon, NULL, NULL);
	evhttp_send_reply_end(req);
	api_call_free(c);
}

/* The previous piece is on its way: make the next one. */
static void http_stream_more(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	http_stream_next(arg, evbuffer_new());
}

static void http_stream_start(struct api_call *c)
{
	struct evhttp_request *req = c->ac_transport;
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_send_reply_start(req, 200, "OK");
	c->ac_cancel = http_stream_cancel; /* the client may leave mid-answer */
	struct evbuffer *buf = evbuffer_new();
	char *pre = jrpc_ok_prefix(c->ac_v2);
	evbuffer_add(buf, pre, strlen(pre));
	free(pre);
	http_stream_next(c, buf);
}

/* Frames the answer and sends it. */
static void http_call_send(struct api_call *c, json_t *err)
{
	struct evhttp_request *req = c->ac_transport;
	if (!err && c->ac_stream && req) {
		http_stream_start(c);
		return;
	}
	struct evbuffer *body = evbuffer_new();
	if (err) {
		char *text = jrpc_err(c->ac_id, c->ac_v2, err);
		char *s = xerr_to_text(err);
		log_debug("%s: %s", c->ac_method ? c->ac_method->am_name : "?", s ? s : "?");
		free(s);
		json_decref(err);
		if (text)
			evbuffer_add(body, text, strlen(text));
		free(text);
	} else {
		/* the result text moves into the answer without a copy */
		char *pre = jrpc_ok_prefix(c->ac_v2), *post = jrpc_ok_suffix(c->ac_id, c->ac_v2);
		evbuffer_add(body, pre, strlen(pre));
		if (c->ac_raw) {
			evbuffer_add_buffer(body, c->ac_raw);
		} else if (c->ac_result) {
			char *r = json_dumps(c->ac_result, JSON_COMPACT | JSON_ENCODE_ANY);
			evbuffer_add(body, r, strlen(r));
			free(r);
		} else {
			evbuffer_add(body, "\"\"", 2); /* void, as XAPI answers it */
		}
		evbuffer_add(body, post, strlen(post));
		free(pre);
		free(post);
	}
	if (req) {
		struct evhttp_connection *evcon = evhttp_request_get_connection(req);
		if (evcon)
			evhttp_connection_set_closecb(evcon, NULL, NULL);
		http_send(req, body);
	}
	evbuffer_free(body);
	api_call_free(c);
}


/* ------------------------------------------------ answers held for the disk */

/* With the database on shared storage, nothing leaves poold that depends
 * on a commit not yet on the disk (durable.c): an answer made after commit
 * n waits until n is synced. Reads of an idle pool never wait. */
struct http_held {
	struct api_call *hh_call;
	json_t *hh_err;
	uint64_t hh_commits;
	struct http_held *hh_next;
};

static void http_held_cancel(struct api_call *c)
{
	struct poold *pd = c->ac_pd;
	for (struct http_held **p = &pd->pd_held; *p; p = &(*p)->hh_next)
		if ((*p)->hh_call == c) {
			struct http_held *h = *p;
			*p = h->hh_next;
			json_decref(h->hh_err);
			free(h);
			break;
		}
	api_call_free(c);
}

void http_held_flush(void *arg)
{
	struct poold *pd = arg;
	while (pd->pd_held && durable_covers(pd->pd_durable, pd->pd_held->hh_commits)) {
		struct http_held *h = pd->pd_held;
		pd->pd_held = h->hh_next;
		h->hh_call->ac_cancel = NULL;
		http_call_send(h->hh_call, h->hh_err);
		free(h);
	}
}

/* Transport callback of api_dispatch. */
static void http_call_done(struct api_call *c, json_t *err)
{
	struct poold *pd = c->ac_pd;
	uint64_t n = pd->pd_durable && pd->pd_db ? db_commit_count(pd->pd_db) : 0;
	if (!c->ac_transport || durable_covers(pd->pd_durable, n)) {
		http_call_send(c, err);
		return;
	}
	struct http_held *h = xcalloc(1, sizeof *h), **tail = &pd->pd_held;
	*h = (struct http_held){c, err, n, NULL};
	while (*tail)
		tail = &(*tail)->hh_next;
	*tail = h;
	c->ac_cancel = http_held_cancel; /* the client may go away meanwhile */
	durable_want(pd->pd_durable, n);
}

/* The session ref a request carries, as far as can be told without
 * parsing it: the first "OpaqueRef:..." string (XAPI puts the session
 * first in params). Into out; false when there is none. */
static bool http_session_of(const char *body, size_t len, char *out, size_t outlen)
{
	static const char mark[] = "\"OpaqueRef:";
	const char *p = memmem(body, len, mark, sizeof mark - 1);
	if (!p)
		return false;
	p++;
	const char *end = memchr(p, '"', len - (size_t)(p - body));
	if (!end || (size_t)(end - p) >= outlen)
		return false;
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
	return true;
}

/* Who may make poold parse a big document: a pool member (its verified
 * certificate) or a client with a valid session. Anyone else (a login, a
 * stranger) is refused before parsing: 413, or SESSION_INVALID when the
 * session it names is not (or no longer) valid. */
static bool http_may_parse(struct poold *pd, struct evhttp_request *req, const char *body, size_t len,
			   const char *peer)
{
	if (*peer || len <= (size_t)conf_int(pd->pd_conf, "max-unauthenticated-request-size"))
		return true;
	char ref[80];
	bool named = http_session_of(body, len, ref, sizeof ref);
	if (named && session_known(pd, ref))
		return true;
	if (named) {
		json_t *e = xerr_new(XE_SESSION_INVALID, ref, NULL);
		char *text = jrpc_err(NULL, true, e);
		json_decref(e);
		http_reply(req, 200, "OK", "application/json", text);
		free(text);
		return false;
	}
	http_reply(req, 413, "Payload Too Large", "text/plain",
		   "a request this big needs a valid session: log in first\n");
	return false;
}

static void http_jsonrpc(struct poold *pd, struct evhttp_request *req, const char *body, size_t len)
{
	char peer[64];
	/* an agent authenticates with its pool certificate */
	if (evrpc_request_peer_cn(req, peer, sizeof peer) < 0)
		peer[0] = '\0';
	if (!http_may_parse(pd, req, body, len, peer))
		return;
	struct jrpc_req r;
	char *error_text = NULL;
	if (jrpc_parse(body, len, &r, &error_text) < 0) {
		http_reply(req, 200, "OK", "application/json", error_text);
		free(error_text);
		return;
	}
	struct api_call *c = xcalloc(1, sizeof *c);
	c->ac_pd = pd;
	c->ac_params = r.jr_params;
	c->ac_id = r.jr_id;
	c->ac_v2 = r.jr_v2;
	c->ac_transport = req;
	c->ac_done = http_call_done;
	snprintf(c->ac_peer, sizeof c->ac_peer, "%s", peer);
	httpsrv_request_addr(req, c->ac_addr, sizeof c->ac_addr);
	/* a parked call is dropped if its client goes away (one request is
	 * in flight per connection: evhttp answers them in order) */
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	if (evcon)
		evhttp_connection_set_closecb(evcon, http_conn_closed, c);
	api_dispatch(c, r.jr_method);
	free(r.jr_method);
}

static void http_handle(struct evhttp_request *req, void *arg)
{
	struct poold *pd = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	if (!path)
		path = "/";
	bool rpc_path = strcmp(path, "/jsonrpc") == 0 || strcmp(path, "/") == 0 || strcmp(path, "/RPC2") == 0;
	if (!rpc_path) {
		http_reply(req, 404, "Not Found", "text/plain", "no such resource: JSON-RPC is at /jsonrpc\n");
		return;
	}
	if (cmd == EVHTTP_REQ_OPTIONS) {
		http_reply(req, 200, "OK", "text/plain", "");
		return;
	}
	if (cmd != EVHTTP_REQ_POST) {
		http_reply(req, 405, "Method Not Allowed", "text/plain", "use POST with a JSON-RPC body\n");
		return;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = (const char *)evbuffer_pullup(in, -1);
	size_t skip = 0;
	while (skip < len && (body[skip] == ' ' || body[skip] == '\n' || body[skip] == '\r' || body[skip] == '\t'))
		skip++;
	if (strcmp(path, "/jsonrpc") != 0 && (skip == len || body[skip] != '{')) {
		http_reply(req, 415, "Unsupported Media Type", "text/plain",
			   "XML-RPC is not supported by this server: send JSON-RPC to /jsonrpc\n");
		return;
	}
	http_jsonrpc(pd, req, body ? body : "", len);
}

int http_start(struct poold *pd, char *err, size_t errlen)
{
	char cert[4200], key[4200], ca[4200];
	snprintf(cert, sizeof cert, "%s/server.pem", pd->pd_dir);
	snprintf(key, sizeof key, "%s/server.key", pd->pd_dir);
	snprintf(ca, sizeof ca, "%s/ca.pem", pd->pd_dir);
	/* client certificates are asked for, not required: agents present
	 * theirs (issued by the pool CA), xe and XAPI clients log in instead;
	 * one issued by another CA is refused at the handshake */
	http_ssl_ctx = tls_server_ctx(cert, key, ca, 0, err, errlen);
	if (!http_ssl_ctx)
		return -1;
	struct conf *cf = pd->pd_conf;
	struct httpsrv_limits lim = {
		.hl_request_ms = conf_duration_ms(cf, "request-timeout"),
		.hl_idle_ms = conf_duration_ms(cf, "connection-timeout"),
		.hl_max_body = conf_int(cf, "max-request-size"),
		.hl_max_headers = 64 * 1024,
		.hl_max_conns = (int)conf_int(cf, "max-connections"),
		.hl_max_per_addr = (int)conf_int(cf, "max-connections-per-address"),
		.hl_name = "XAPI",
	};
	pd->pd_http = httpsrv_new(pd->pd_base, &http_ssl_ctx, &lim, http_handle, pd);
	if (!pd->pd_http) {
		snprintf(err, errlen, "cannot set up the HTTPS server: out of memory");
		return -1;
	}
	evhttp_set_allowed_methods(httpsrv_evhttp(pd->pd_http), EVHTTP_REQ_POST | EVHTTP_REQ_GET | EVHTTP_REQ_OPTIONS);
	const char *addr = conf_str(cf, "listen-address");
	int real;
	if (httpsrv_bind(pd->pd_http, addr, (int)conf_int(cf, "port"), &real, err, errlen) < 0)
		return -1;
	pd->pd_port = real;
	/* port 0 asks the kernel for one: write the real one for tests and tools */
	char path[4200];
	snprintf(path, sizeof path, "%s/poold.port", pd->pd_dir);
	FILE *f = fopen(path, "w");
	if (f) {
		fprintf(f, "%d\n", real);
		fclose(f);
	}
	log_info("serving XAPI JSON-RPC on https://%s:%d/jsonrpc", addr, real);
	return 0;
}

void http_stop(struct poold *pd)
{
	httpsrv_free(pd->pd_http);
	pd->pd_http = NULL;
	SSL_CTX_free(http_ssl_ctx);
	http_ssl_ctx = NULL;
}
