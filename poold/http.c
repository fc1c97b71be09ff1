/*
 * http.c - poold's HTTPS front: libevent's evhttp over OpenSSL bufferevents.
 *
 * POST /jsonrpc carries XAPI's JSON-RPC; POST / and /RPC2 take JSON-RPC
 * too when the body is JSON (XML-RPC is not spoken: such requests get 415
 * with a sentence saying so). Bodies above max-request-size are refused
 * with 413 by evhttp itself; connections that send nothing are closed after
 * connection-timeout. An event.from call parks its request until it can be
 * answered; if the client goes away first, its wait is dropped.
 */
#include <errno.h>
#include <stdio.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>
#include "evrpc.h"
#include "jsonrpc.h"
#include "log.h"
#include "poold.h"
#include "tls.h"
#include "xerr.h"

/* The TLS context and the listener: singletons of the one server. */
static SSL_CTX *http_ssl_ctx;

static struct bufferevent *http_bevcb(struct event_base *base, void *arg)
{
	(void)arg;
	SSL *ssl = SSL_new(http_ssl_ctx);
	if (!ssl)
		return NULL;
	struct bufferevent *bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
								BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev)
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static void http_reply(struct evhttp_request *req, int code, const char *reason, const char *ctype,
		       const char *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Access-Control-Allow-Origin", "*");
	evhttp_add_header(h, "Access-Control-Allow-Headers", "X-Requested-With");
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
	evhttp_add_header(h, "Access-Control-Allow-Origin", "*");
	evhttp_add_header(h, "Access-Control-Allow-Headers", "X-Requested-With");
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
	evhttp_add_header(h, "Access-Control-Allow-Origin", "*");
	evhttp_add_header(h, "Access-Control-Allow-Headers", "X-Requested-With");
	evhttp_send_reply_start(req, 200, "OK");
	c->ac_cancel = http_stream_cancel; /* the client may leave mid-answer */
	struct evbuffer *buf = evbuffer_new();
	char *pre = jrpc_ok_prefix(c->ac_v2);
	evbuffer_add(buf, pre, strlen(pre));
	free(pre);
	http_stream_next(c, buf);
}

/* Transport callback of api_dispatch: frames the answer and sends it. */
static void http_call_done(struct api_call *c, json_t *err)
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

static void http_jsonrpc(struct poold *pd, struct evhttp_request *req, const char *body, size_t len)
{
	struct jrpc_req r;
	char *error_text = NULL;
	if (jrpc_parse(body, len, &r, &error_text) < 0) {
		http_reply(req, 200, "OK", "application/json", error_text);
		free(error_text);
		return;
	}
	struct api_call *c = calloc(1, sizeof *c);
	if (!c) {
		jrpc_req_clear(&r);
		evhttp_send_error(req, 503, "out of memory");
		return;
	}
	c->ac_pd = pd;
	c->ac_params = r.jr_params;
	c->ac_id = r.jr_id;
	c->ac_v2 = r.jr_v2;
	c->ac_transport = req;
	c->ac_done = http_call_done;
	/* an agent authenticates with its pool certificate */
	if (evrpc_request_peer_cn(req, c->ac_peer, sizeof c->ac_peer) < 0)
		c->ac_peer[0] = '\0';
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
	char cert[4200], key[4200];
	snprintf(cert, sizeof cert, "%s/server.pem", pd->pd_dir);
	snprintf(key, sizeof key, "%s/server.key", pd->pd_dir);
	char ca[4200];
	snprintf(ca, sizeof ca, "%s/ca.pem", pd->pd_dir);
	/* client certificates are asked for, not required: agents present
	 * theirs (issued by the pool CA), xe and XAPI clients log in instead;
	 * one issued by another CA is refused at the handshake */
	http_ssl_ctx = tls_server_ctx(cert, key, ca, 0, err, errlen);
	if (!http_ssl_ctx)
		return -1;
	pd->pd_http = evhttp_new(pd->pd_base);
	if (!pd->pd_http) {
		snprintf(err, errlen, "evhttp_new failed");
		return -1;
	}
	evhttp_set_bevcb(pd->pd_http, http_bevcb, pd);
	evhttp_set_gencb(pd->pd_http, http_handle, pd);
	evhttp_set_max_body_size(pd->pd_http, (ev_ssize_t)conf_int(pd->pd_conf, "max-request-size"));
	evhttp_set_max_headers_size(pd->pd_http, 64 * 1024);
	long long tmo = conf_duration_ms(pd->pd_conf, "connection-timeout");
	struct timeval tv = {(time_t)(tmo / 1000), (suseconds_t)(tmo % 1000) * 1000};
	evhttp_set_timeout_tv(pd->pd_http, &tv);
	evhttp_set_allowed_methods(pd->pd_http, EVHTTP_REQ_POST | EVHTTP_REQ_GET | EVHTTP_REQ_OPTIONS);
	const char *addr = conf_str(pd->pd_conf, "listen-address");
	int port = (int)conf_int(pd->pd_conf, "port");
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(pd->pd_http, addr, (ev_uint16_t)port);
	if (!bs) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s", addr, port, strerror(errno));
		return -1;
	}
	evutil_socket_t fd = evhttp_bound_socket_get_fd(bs);
	/* accepted sockets inherit it: answers are several small TLS records
	 * (headers, body) and Nagle + delayed ACK would add 40 ms to each */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	/* port 0 asks the kernel for one: write the real one for tests and tools */
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		int real = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							  : ((struct sockaddr_in *)&ss)->sin_port);
		char path[4200];
		snprintf(path, sizeof path, "%s/poold.port", pd->pd_dir);
		FILE *f = fopen(path, "w");
		if (f) {
			fprintf(f, "%d\n", real);
			fclose(f);
		}
		log_info("serving XAPI JSON-RPC on https://%s:%d/jsonrpc", addr, real);
	}
	return 0;
}

void http_stop(struct poold *pd)
{
	if (pd->pd_http)
		evhttp_free(pd->pd_http);
	pd->pd_http = NULL;
	SSL_CTX_free(http_ssl_ctx);
	http_ssl_ctx = NULL;
}
