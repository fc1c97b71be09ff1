/*
 * http.c - poold's HTTPS front: libevent's evhttp over OpenSSL bufferevents,
 * behind the limits of lib/httpsrv.c (request deadline, connection caps).
 *
 * POST /jsonrpc carries XAPI's JSON-RPC. POST / and /RPC2 carry XML-RPC,
 * as XAPI serves them to XenAPI.py, Ansible and the SDKs (lib/xmlrpc.h),
 * or JSON-RPC when the body is a JSON object (ours: older clients of this
 * server). Both reach the same dispatch, sessions and tasks; only the
 * framing differs. Bodies above max-request-size are refused
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
#include "xmlrpc.h"
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

static void http_text_free(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	free((void *)data);
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

static void http_xml_done(struct api_call *c, json_t *err);

static bool http_is_xml(const struct api_call *c)
{
	return c->ac_done == http_xml_done;
}

/* An XML-RPC answer streams as the JSON one does: a JSON piece holds whole
 * members of the answer's object (a `{` first, a `,` before the others, a
 * `}` closing the last: api_objects.c's records), so each becomes the same
 * members in XML as it comes. Replaces piece's text (the JSON piece only);
 * -1 when it is not such a piece. */
static int http_xml_piece(struct api_call *c, struct evbuffer *piece, bool last)
{
	size_t len = evbuffer_get_length(piece);
	const char *t = (const char *)evbuffer_pullup(piece, -1);
	size_t a = 0;
	if (len && (t[0] == '{' || t[0] == ','))
		a = 1;
	if (last && len > a && t[len - 1] == '}')
		len--;
	json_t *obj = NULL;
	if (len > a) {
		char *wrapped = NULL;
		if (asprintf(&wrapped, "{%.*s}", (int)(len - a), t + a) < 0)
			abort(); /* out of memory: util.h's policy */
		obj = json_loads(wrapped, 0, NULL);
		free(wrapped);
	} else {
		obj = json_object();
	}
	evbuffer_drain(piece, evbuffer_get_length(piece));
	if (!json_is_object(obj)) {
		json_decref(obj);
		return -1;
	}
	struct xr_type ty = api_result_type(c->ac_method);
	char *xml = xmlrpc_members(obj, &ty);
	json_decref(obj);
	evbuffer_add_reference(piece, xml, strlen(xml), http_text_free, NULL);
	return 0;
}

/* Send the next piece of a streamed answer; the last one ends it. */
static void http_stream_next(struct api_call *c, struct evbuffer *buf)
{
	struct evhttp_request *req = c->ac_transport;
	bool xml = http_is_xml(c);
	struct evbuffer *piece = xml ? evbuffer_new() : buf; /* buf may hold the answer's head */
	int more = c->ac_stream(c, piece);
	if (xml) {
		if (more >= 0 && http_xml_piece(c, piece, more == 0) < 0)
			more = -1;
		evbuffer_add_buffer(buf, piece);
		evbuffer_free(piece);
	}
	evbuffer_pullup(buf, -1); /* few large TLS records, not two per database row */
	if (more == 1) {
		evhttp_send_reply_chunk_with_cb(req, buf, http_stream_more, c);
		evbuffer_free(buf);
		return;
	}
	if (more < 0)
		log_error("%s: reading the database failed: answer cut off", c->ac_method->am_name);
	if (xml) {
		evbuffer_add(buf, xmlrpc_ok_struct_tail(), strlen(xmlrpc_ok_struct_tail()));
	} else {
		char *post = jrpc_ok_suffix(c->ac_id, c->ac_v2);
		evbuffer_add(buf, post, strlen(post));
		free(post);
	}
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
	bool xml = http_is_xml(c);
	evhttp_add_header(h, "Content-Type", xml ? "text/xml" : "application/json");
	evhttp_send_reply_start(req, 200, "OK");
	c->ac_cancel = http_stream_cancel; /* the client may leave mid-answer */
	struct evbuffer *buf = evbuffer_new();
	if (xml) {
		evbuffer_add(buf, xmlrpc_ok_struct_head(), strlen(xmlrpc_ok_struct_head()));
	} else {
		char *pre = jrpc_ok_prefix(c->ac_v2);
		evbuffer_add(buf, pre, strlen(pre));
		free(pre);
	}
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

/* Transport callback of api_dispatch for XML-RPC: XAPI's envelope around
 * the answer, written from the value, typed by the model (a streamed one
 * goes out in pieces, as over JSON-RPC). */
static void http_xml_done(struct api_call *c, json_t *err)
{
	struct evhttp_request *req = c->ac_transport;
	if (!err && c->ac_stream && req) {
		http_stream_start(c);
		return;
	}
	json_t *v = err ? NULL : api_result_whole(c, &err);
	char *text;
	if (err) {
		char *s = xerr_to_text(err);
		log_debug("%s: %s", c->ac_method ? c->ac_method->am_name : "?", s ? s : "?");
		free(s);
		text = xmlrpc_fail(err);
		json_decref(err);
	} else if (c->ac_method && strcmp(c->ac_method->am_name, "system.listMethods") == 0) {
		text = xmlrpc_bare(v);
	} else {
		struct xr_type t = api_result_type(c->ac_method);
		text = xmlrpc_ok(v, &t);
	}
	json_decref(v);
	if (req) {
		struct evhttp_connection *evcon = evhttp_request_get_connection(req);
		if (evcon)
			evhttp_connection_set_closecb(evcon, NULL, NULL);
		struct evbuffer *body = evbuffer_new();
		evbuffer_add_reference(body, text, strlen(text), http_text_free, NULL);
		struct evkeyvalq *h = evhttp_request_get_output_headers(req);
		evhttp_add_header(h, "Content-Type", "text/xml");
		evhttp_send_reply(req, 200, "OK", body);
		evbuffer_free(body);
	} else {
		free(text);
	}
	api_call_free(c);
}

/* The session ref a request carries, as far as can be told without
 * parsing it: the first "OpaqueRef:..." string, quoted in JSON or between
 * tags in XML (XAPI puts the session first in params). Into out; false
 * when there is none. */
static bool http_session_of(const char *body, size_t len, char *out, size_t outlen)
{
	static const char mark[] = "OpaqueRef:";
	const char *p = body, *end = body + len;
	while ((p = memmem(p, (size_t)(end - p), mark, sizeof mark - 1))) {
		if (p > body && (p[-1] == '"' || p[-1] == '>')) {
			const char *q = memchr(p, p[-1] == '"' ? '"' : '<', (size_t)(end - p));
			if (!q || (size_t)(q - p) >= outlen)
				return false;
			memcpy(out, p, (size_t)(q - p));
			out[q - p] = '\0';
			return true;
		}
		p += sizeof mark - 1;
	}
	return false;
}

/* Who may make poold parse a big document: a pool member (its verified
 * certificate) or a client with a valid session. Anyone else (a login, a
 * stranger) is refused before parsing: 413, or SESSION_INVALID when the
 * session it names is not (or no longer) valid. */
static bool http_may_parse(struct poold *pd, struct evhttp_request *req, const char *body, size_t len,
			   const char *peer, bool xml)
{
	if (*peer || len <= (size_t)conf_int(pd->pd_conf, "max-unauthenticated-request-size"))
		return true;
	char ref[80];
	bool named = http_session_of(body, len, ref, sizeof ref);
	if (named && session_known(pd, ref))
		return true;
	if (named) {
		json_t *e = xerr_new(XE_SESSION_INVALID, ref, NULL);
		char *text = xml ? xmlrpc_fail(e) : jrpc_err(NULL, true, e);
		json_decref(e);
		http_reply(req, 200, "OK", xml ? "text/xml" : "application/json", text);
		free(text);
		return false;
	}
	http_reply(req, 413, "Payload Too Large", "text/plain",
		   "a request this big needs a valid session: log in first\n");
	return false;
}

/* The call in a body: JSON-RPC or XML-RPC. 0, or -1 when the body was
 * refused (answered already, in its protocol). */
static int http_parse(struct evhttp_request *req, const char *body, size_t len, bool xml, struct api_call *c,
		      char **method)
{
	if (xml) {
		json_t *e = NULL;
		if (xmlrpc_parse_call(body, len, method, &c->ac_params, &e) == 0)
			return 0;
		char *text = xmlrpc_fail(e);
		json_decref(e);
		http_reply(req, 200, "OK", "text/xml", text);
		free(text);
		return -1;
	}
	struct jrpc_req r;
	char *error_text = NULL;
	if (jrpc_parse(body, len, &r, &error_text) < 0) {
		http_reply(req, 200, "OK", "application/json", error_text);
		free(error_text);
		return -1;
	}
	*method = r.jr_method;
	c->ac_params = r.jr_params;
	c->ac_id = r.jr_id;
	c->ac_v2 = r.jr_v2;
	return 0;
}

static void http_rpc(struct poold *pd, struct evhttp_request *req, const char *body, size_t len, bool xml)
{
	char peer[64];
	/* an agent authenticates with its pool certificate */
	if (evrpc_request_peer_cn(req, peer, sizeof peer) < 0)
		peer[0] = '\0';
	if (!http_may_parse(pd, req, body, len, peer, xml))
		return;
	struct api_call *c = xcalloc(1, sizeof *c);
	char *method = NULL;
	if (http_parse(req, body, len, xml, c, &method) < 0) {
		api_call_free(c);
		return;
	}
	c->ac_pd = pd;
	c->ac_transport = req;
	c->ac_done = xml ? http_xml_done : http_call_done;
	snprintf(c->ac_peer, sizeof c->ac_peer, "%s", peer);
	httpsrv_request_addr(req, c->ac_addr, sizeof c->ac_addr);
	/* a parked call is dropped if its client goes away (one request is
	 * in flight per connection: evhttp answers them in order) */
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	if (evcon)
		evhttp_connection_set_closecb(evcon, http_conn_closed, c);
	api_dispatch(c, method);
	free(method);
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
		http_reply(req, 404, "Not Found", "text/plain",
			   "no such resource: JSON-RPC is at /jsonrpc, XML-RPC at / and /RPC2\n");
		return;
	}
	if (cmd == EVHTTP_REQ_OPTIONS) {
		http_reply(req, 200, "OK", "text/plain", "");
		return;
	}
	if (cmd != EVHTTP_REQ_POST) {
		http_reply(req, 405, "Method Not Allowed", "text/plain", "use POST with an XML-RPC or JSON-RPC body\n");
		return;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = (const char *)evbuffer_pullup(in, -1);
	size_t skip = 0;
	while (skip < len && (body[skip] == ' ' || body[skip] == '\n' || body[skip] == '\r' || body[skip] == '\t'))
		skip++;
	/* XAPI reads / and /RPC2 as XML-RPC; a JSON object there is ours */
	bool xml = strcmp(path, "/jsonrpc") != 0 && (skip == len || body[skip] != '{');
	http_rpc(pd, req, body ? body : "", len, xml);
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
	/* port 0 asks the kernel for one: write the real one for tests and tools */
	char path[4200];
	snprintf(path, sizeof path, "%s/poold.port", pd->pd_dir);
	FILE *f = fopen(path, "w");
	if (f) {
		fprintf(f, "%d\n", real);
		fclose(f);
	}
	log_info("serving XAPI on https://%s:%d: JSON-RPC at /jsonrpc, XML-RPC at / and /RPC2", addr, real);
	return 0;
}

void http_stop(struct poold *pd)
{
	httpsrv_free(pd->pd_http);
	pd->pd_http = NULL;
	SSL_CTX_free(http_ssl_ctx);
	http_ssl_ctx = NULL;
}
