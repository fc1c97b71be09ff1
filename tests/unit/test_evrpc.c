/* test_evrpc.c - JSON-RPC over mutual TLS from a libevent loop (lib/evrpc.c),
 * against an in-process evhttp server on 127.0.0.1: kept connections keep
 * their calls through an error answer, and a peer that is not the one
 * named is refused in the handshake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include "evrpc.h"
#include "jsonrpc.h"
#include "tls.h"
#include "xerr.h"

struct fx {
	char dir[64], ca[128], cakey[128], srv[128], srvkey[128], cli[128], clikey[128];
	struct event_base *base;
	struct evhttp *http;
	SSL_CTX *sctx, *cctx;
	int port;
};

static void path(char *out, const char *dir, const char *name)
{
	snprintf(out, 128, "%s/%s", dir, name);
}

static struct bufferevent *bevcb(struct event_base *base, void *arg)
{
	struct fx *f = arg;
	return bufferevent_openssl_socket_new(base, -1, SSL_new(f->sctx), BUFFEREVENT_SSL_ACCEPTING,
					      BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
}

struct later_reply {
	struct evhttp_request *req;
	char *text;
};

static void reply_now(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct later_reply *l = arg;
	evrpc_reply(l->req, l->text);
	free(l->text);
	free(l);
}

/* "fail" answers an XAPI error at once; "slow" answers "ok" after 100 ms. */
static void handle(struct evhttp_request *req, void *arg)
{
	struct fx *f = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	struct jrpc_req r;
	char *text = NULL;
	if (jrpc_parse((const char *)evbuffer_pullup(in, -1), len, &r, &text) < 0) {
		evrpc_reply(req, text);
		free(text);
		return;
	}
	struct later_reply *l = calloc(1, sizeof *l);
	l->req = req;
	if (strcmp(r.jr_method, "fail") == 0) {
		json_t *e = xerr_newf(XE_INTERNAL_ERROR, "asked to fail");
		l->text = jrpc_err(r.jr_id, r.jr_v2, e);
		json_decref(e);
		reply_now(-1, 0, l);
	} else {
		l->text = jrpc_ok(r.jr_id, r.jr_v2, "\"ok\"");
		struct timeval tv = {0, 100000};
		event_base_once(f->base, -1, EV_TIMEOUT, reply_now, l, &tv);
	}
	jrpc_req_clear(&r);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	char err[256];
	snprintf(f->dir, sizeof f->dir, "/tmp/test_evrpc.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	path(f->ca, f->dir, "ca.pem");
	path(f->cakey, f->dir, "ca.key");
	path(f->srv, f->dir, "srv.pem");
	path(f->srvkey, f->dir, "srv.key");
	path(f->cli, f->dir, "cli.pem");
	path(f->clikey, f->dir, "cli.key");
	const char *names[] = {"127.0.0.1", NULL};
	assert_true(tls_ca_create(f->ca, f->cakey, "Pool CA", err, sizeof err));
	assert_true(tls_cert_issue(f->ca, f->cakey, "host-a", names, 30, f->srv, f->srvkey, err, sizeof err));
	assert_true(tls_cert_issue(f->ca, f->cakey, "pool-master", names, 30, f->cli, f->clikey, err, sizeof err));
	f->sctx = tls_server_ctx(f->srv, f->srvkey, f->ca, 1, err, sizeof err);
	f->cctx = tls_client_ctx(f->ca, f->cli, f->clikey, err, sizeof err);
	assert_non_null(f->sctx);
	assert_non_null(f->cctx);
	f->base = event_base_new();
	f->http = evhttp_new(f->base);
	evhttp_set_bevcb(f->http, bevcb, f);
	evhttp_set_gencb(f->http, handle, f);
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(f->http, "127.0.0.1", 0);
	assert_non_null(bs);
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &sl);
	f->port = ntohs(sa.sin_port);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	evhttp_free(f->http);
	event_base_free(f->base);
	SSL_CTX_free(f->sctx);
	SSL_CTX_free(f->cctx);
	const char *files[] = {f->ca, f->cakey, f->srv, f->srvkey, f->cli, f->clikey};
	for (size_t i = 0; i < 6; i++)
		unlink(files[i]);
	rmdir(f->dir);
	free(f);
	return 0;
}

struct outcome {
	int answers, errors;
	char last_err[300];
	struct evrpc_conn *k; /* to call again from a callback */
	bool called_again;
};

static void count(void *arg, json_t *result, json_t *err)
{
	struct outcome *o = arg;
	(void)result;
	if (err) {
		o->errors++;
		char *t = xerr_to_text(err);
		snprintf(o->last_err, sizeof o->last_err, "%s", t ? t : "?");
		free(t);
	} else {
		o->answers++;
	}
}

/* The error answer arrives while "slow" is queued on the same connection;
 * the next call must not replace the connection under it. */
static void after_fail(void *arg, json_t *result, json_t *err)
{
	struct outcome *o = arg;
	count(o, result, err);
	if (!o->called_again) {
		o->called_again = true;
		assert_int_equal(evrpc_conn_call(o->k, "slow", json_array(), 10, count, o), 0);
	}
}

static void run_until(struct fx *f, struct outcome *o, int n)
{
	for (int i = 0; i < 400 && o->answers + o->errors < n; i++)
		event_base_loop(f->base, EVLOOP_ONCE);
}

static void test_error_answer_keeps_the_connection(void **state)
{
	struct fx *f = *state;
	struct evrpc_target t = {"127.0.0.1", f->port, f->cctx, "host-a"};
	struct outcome o = {0};
	o.k = evrpc_conn_new(f->base, &t);
	assert_int_equal(evrpc_conn_call(o.k, "fail", json_array(), 10, after_fail, &o), 0);
	assert_int_equal(evrpc_conn_call(o.k, "slow", json_array(), 10, count, &o), 0);
	run_until(f, &o, 3);
	assert_int_equal(o.errors, 1); /* only the call that was answered with an error */
	assert_int_equal(o.answers, 2);
	evrpc_conn_free(o.k);
}

/* A server whose certificate does not name the peer expected is refused. */
static void test_wrong_peer_refused(void **state)
{
	struct fx *f = *state;
	struct evrpc_target t = {"127.0.0.1", f->port, f->cctx, "host-b"};
	struct outcome o = {0};
	assert_int_equal(evrpc_call(f->base, &t, "slow", json_array(), 10, count, &o), 0);
	run_until(f, &o, 1);
	assert_int_equal(o.errors, 1);
	assert_non_null(strstr(o.last_err, "no answer"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_error_answer_keeps_the_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_peer_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
