/*
 * httpsrv.c - the HTTPS front shared by poold and the agents (see
 * httpsrv.h): evhttp does HTTP; this file decides which connections it
 * gets to keep and for how long.
 *
 * libevent 2.1's evhttp accepts by itself and tells us of a connection
 * only through the bufferevent callback, before the socket is attached.
 * So each connection gets a small record (struct hs_conn) hung on its SSL
 * object, whose free hook runs when evhttp frees the connection; a
 * zero-delay timer looks at the socket just after evhttp attached it
 * (admission), and the same timer is the request deadline afterwards. A
 * connection is ended with shutdown(2): evhttp then reads end-of-file and
 * frees it by its usual path, so nothing is freed under evhttp's feet.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>

#include "httpsrv.h"
#include "log.h"
#include "tls.h"
#include "util.h"

#define HS_MAX_LISTENERS 4
#define HS_BACKOFF_FIRST_MS 50
#define HS_BACKOFF_MAX_MS 1000

enum hs_state {
	HC_NEW,     /* accepted, not yet looked at */
	HC_READING, /* a request (or the TLS handshake) is arriving: the deadline runs */
	HC_BUSY,    /* the request is with the handler */
	HC_IDLE,    /* answered; waiting for the next request (evhttp's idle timeout) */
	HC_CLOSING, /* shut down; evhttp frees it at its next read */
};

struct hs_conn {
	struct httpsrv *c_srv; /* NULL once the server is gone */
	struct bufferevent *c_bev;
	struct event *c_timer; /* admission, then the request deadline */
	enum hs_state c_state;
	bool c_counted;        /* counted in its address's connections */
	char c_key[64];
	struct hs_conn *c_prev, *c_next;
};

struct httpsrv {
	struct event_base *s_base;
	struct evhttp *s_http;
	SSL_CTX *const *s_ctx;
	struct httpsrv_limits s_lim;
	char *s_peer_cn;
	httpsrv_handler s_handler;
	void *s_arg;
	int s_max_conns;
	int s_admitted;
	json_t *s_per_addr;    /* address key -> admitted connections */
	struct hs_conn *s_conns;
	struct evconnlistener *s_lev[HS_MAX_LISTENERS];
	int s_nlev;
	struct event *s_resume; /* accepting again after running out of descriptors */
	long s_backoff_ms;
	long long s_refused;    /* since the last log line about refusals */
	time_t s_refused_at;
	struct httpsrv *s_next;
};

/* The servers of this process (one per daemon): a listener's error
 * callback gets evhttp's pointer, not ours, and finds its server here. */
static struct httpsrv *httpsrv_all;

static int hs_idx = -1;
static pthread_once_t hs_idx_once = PTHREAD_ONCE_INIT;

/* ---- pure parts --------------------------------------------------------- */

int httpsrv_conn_cap(long long wanted, long long nofile)
{
	long long reserve = nofile / 4 > 32 ? nofile / 4 : 32;
	long long room = nofile - reserve > 1 ? nofile - reserve : 1;
	if (wanted <= 0 || wanted > room)
		wanted = room;
	return wanted > 1 << 30 ? 1 << 30 : (int)wanted;
}

void httpsrv_addr_key(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen)
{
	out[0] = '\0';
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)outlen);
	} else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			inet_ntop(AF_INET, &a->s6_addr[12], out, (socklen_t)outlen);
			return;
		}
		struct in6_addr net = *a; /* one host of IPv6 has a /64 to choose from */
		memset(&net.s6_addr[8], 0, 8);
		char text[INET6_ADDRSTRLEN];
		inet_ntop(AF_INET6, &net, text, sizeof text);
		snprintf(out, outlen, "%s/64", text);
	}
}

bool httpsrv_framing_ok(const struct evkeyvalq *headers)
{
	const char *length = NULL;
	bool chunked = false;
	const struct evkeyval *h;
	TAILQ_FOREACH(h, headers, next) {
		if (strcasecmp(h->key, "Transfer-Encoding") == 0)
			chunked = true;
		if (strcasecmp(h->key, "Content-Length") != 0)
			continue;
		if (length && strcmp(length, h->value) != 0)
			return false;
		length = h->value;
	}
	return !(chunked && length);
}

/* ---- connections ---------------------------------------------------------- */

static int hs_addr_count(struct httpsrv *s, const char *key, int delta)
{
	json_t *v = json_object_get(s->s_per_addr, key);
	int n = (int)json_integer_value(v) + delta;
	if (delta && n > 0)
		json_object_set_new(s->s_per_addr, key, json_integer(n));
	else if (delta)
		json_object_del(s->s_per_addr, key);
	return n;
}

/* The SSL's free hook: evhttp freed the connection. */
static void hs_conn_release(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	struct hs_conn *c = ptr;
	if (!c)
		return;
	struct httpsrv *s = c->c_srv;
	if (s) {
		if (c->c_counted) {
			s->s_admitted--;
			hs_addr_count(s, c->c_key, -1);
		}
		if (c->c_prev)
			c->c_prev->c_next = c->c_next;
		else
			s->s_conns = c->c_next;
		if (c->c_next)
			c->c_next->c_prev = c->c_prev;
	}
	if (c->c_timer)
		event_free(c->c_timer);
	free(c);
}

static void hs_idx_init(void)
{
	hs_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, hs_conn_release);
}

static struct hs_conn *hs_conn_of(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	return ssl ? SSL_get_ex_data(ssl, hs_idx) : NULL;
}

static void hs_close(struct hs_conn *c)
{
	evutil_socket_t fd = bufferevent_getfd(c->c_bev);
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
	c->c_state = HC_CLOSING;
	evtimer_del(c->c_timer);
}

static void hs_arm(struct hs_conn *c)
{
	long long ms = c->c_srv->s_lim.hl_request_ms;
	if (ms <= 0)
		return;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(c->c_timer, &tv);
}

/* Refusals are logged at most once a second, with how many. */
static void hs_refused(struct httpsrv *s, const char *key, const char *why)
{
	time_t now = time(NULL);
	s->s_refused++;
	if (now == s->s_refused_at)
		return;
	log_warn("%s: connection from %s refused: %s (%lld refused since the last such line)", s->s_lim.hl_name, key,
		 why, s->s_refused);
	s->s_refused = 0;
	s->s_refused_at = now;
}

static void hs_input(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	(void)b;
	struct hs_conn *c = arg;
	if (info->n_added && c->c_srv && c->c_state == HC_IDLE) {
		c->c_state = HC_READING; /* the next request's first bytes: its deadline starts */
		hs_arm(c);
	}
}

static void hs_admit(struct hs_conn *c)
{
	struct httpsrv *s = c->c_srv;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	evutil_socket_t fd = bufferevent_getfd(c->c_bev);
	if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
		hs_close(c);
		return;
	}
	httpsrv_addr_key((struct sockaddr *)&ss, sl, c->c_key, sizeof c->c_key);
	int max_addr = s->s_lim.hl_max_per_addr;
	if (s->s_admitted >= s->s_max_conns) {
		hs_refused(s, c->c_key, "too many connections");
		hs_close(c);
		return;
	}
	if (max_addr > 0 && hs_addr_count(s, c->c_key, 0) >= max_addr) {
		hs_refused(s, c->c_key, "too many connections from that address");
		hs_close(c);
		return;
	}
	s->s_admitted++;
	hs_addr_count(s, c->c_key, 1);
	c->c_counted = true;
	s->s_backoff_ms = 0;
	evbuffer_add_cb(bufferevent_get_input(c->c_bev), hs_input, c);
	c->c_state = HC_READING; /* the TLS handshake and the first request */
	hs_arm(c);
}

static void hs_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct hs_conn *c = arg;
	if (!c->c_srv)
		return;
	if (c->c_state == HC_NEW) {
		hs_admit(c);
		return;
	}
	log_debug("%s: a request from %s did not arrive within %lld ms: connection closed", c->c_srv->s_lim.hl_name,
		  c->c_key, c->c_srv->s_lim.hl_request_ms);
	hs_close(c);
}

/* evhttp's bufferevent callback: a TLS bufferevent for a new connection.
 * Never NULL: evhttp would then speak plain HTTP on it. */
static struct bufferevent *hs_bevcb(struct event_base *base, void *arg)
{
	struct httpsrv *s = arg;
	SSL *ssl = *s->s_ctx ? SSL_new(*s->s_ctx) : NULL;
	struct hs_conn *c = xcalloc(1, sizeof *c);
	if (!ssl || !c || SSL_set_ex_data(ssl, hs_idx, c) != 1) {
		log_error("%s: no memory for a TLS connection", s->s_lim.hl_name);
		abort();
	}
	c->c_srv = s;
	c->c_next = s->s_conns;
	if (s->s_conns)
		s->s_conns->c_prev = c;
	s->s_conns = c;
	if (s->s_peer_cn && tls_require_peer_cn(ssl, s->s_peer_cn) != 1) {
		log_error("%s: no memory for a TLS connection", s->s_lim.hl_name);
		abort();
	}
	c->c_timer = evtimer_new(base, hs_timer, c);
	c->c_bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
						  BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!c->c_timer || !c->c_bev) {
		log_error("%s: no memory for a TLS connection", s->s_lim.hl_name);
		abort();
	}
	bufferevent_openssl_set_allow_dirty_shutdown(c->c_bev, 1);
	struct timeval now = {0, 0}; /* evhttp attaches the socket before this runs */
	evtimer_add(c->c_timer, &now);
	return c->c_bev;
}

static void hs_request_done(struct evhttp_request *req, void *arg)
{
	(void)req;
	struct hs_conn *c = arg;
	if (!c->c_srv || c->c_state == HC_CLOSING)
		return;
	c->c_state = HC_IDLE;
	if (evbuffer_get_length(bufferevent_get_input(c->c_bev)) > 0) {
		c->c_state = HC_READING; /* pipelined: the next one is on its way already */
		hs_arm(c);
	}
}

static void hs_request(struct evhttp_request *req, void *arg)
{
	struct httpsrv *s = arg;
	struct hs_conn *c = hs_conn_of(req);
	if (c) {
		c->c_state = HC_BUSY; /* the handler may take its time (event.from) */
		evtimer_del(c->c_timer);
		evhttp_request_set_on_complete_cb(req, hs_request_done, c);
	}
	if (!httpsrv_framing_ok(evhttp_request_get_input_headers(req))) {
		/* the two ends would disagree on where the body ends: close after */
		static const char why[] = "the Content-Length and Transfer-Encoding headers disagree\n";
		struct evkeyvalq *h = evhttp_request_get_output_headers(req);
		struct evbuffer *b = evbuffer_new();
		evhttp_add_header(h, "Content-Type", "text/plain");
		evhttp_add_header(h, "Connection", "close");
		if (b)
			evbuffer_add(b, why, sizeof why - 1);
		evhttp_send_reply(req, 400, "Bad Request", b);
		if (b)
			evbuffer_free(b);
		return;
	}
	s->s_handler(req, s->s_arg);
}

/* ---- listening ------------------------------------------------------------ */

static void hs_listening(struct httpsrv *s, bool on)
{
	for (int i = 0; i < s->s_nlev; i++)
		(on ? evconnlistener_enable : evconnlistener_disable)(s->s_lev[i]);
}

static void hs_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	hs_listening(arg, true);
}

/* accept() failed. Out of descriptors, libevent would retry at once and
 * for ever (the socket stays readable): pause instead, longer each time
 * until a connection gets in again. */
static void hs_accept_error(struct evconnlistener *lev, void *arg)
{
	(void)arg;
	int err = EVUTIL_SOCKET_ERROR();
	struct httpsrv *s = httpsrv_all;
	for (; s; s = s->s_next)
		for (int i = 0; i < s->s_nlev; i++)
			if (s->s_lev[i] == lev)
				goto found;
	return;
found:
	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		log_warn("%s: accept: %s", s->s_lim.hl_name, strerror(err));
		return;
	}
	s->s_backoff_ms = s->s_backoff_ms ? s->s_backoff_ms * 2 : HS_BACKOFF_FIRST_MS;
	if (s->s_backoff_ms > HS_BACKOFF_MAX_MS)
		s->s_backoff_ms = HS_BACKOFF_MAX_MS;
	hs_listening(s, false);
	struct timeval tv = {0, (suseconds_t)s->s_backoff_ms * 1000};
	evtimer_add(s->s_resume, &tv);
	hs_refused(s, "(any)", err == EMFILE || err == ENFILE ? "out of file descriptors: not accepting for a moment"
							    : "out of memory: not accepting for a moment");
}

/* RLIMIT_NOFILE up to its hard limit; the soft limit in force after. */
static long long hs_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			log_info("file descriptor limit raised from %llu to %llu", (unsigned long long)was,
				 (unsigned long long)rl.rlim_cur);
		else
			rl.rlim_cur = was;
	}
	return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1u << 30) ? 1LL << 30 : (long long)rl.rlim_cur;
}

struct httpsrv *httpsrv_new(struct event_base *base, SSL_CTX *const *ctx, const struct httpsrv_limits *lim,
			    httpsrv_handler handler, void *arg)
{
	pthread_once(&hs_idx_once, hs_idx_init);
	struct httpsrv *s = xcalloc(1, sizeof *s);
	if (!s || hs_idx < 0)
		goto fail;
	*s = (struct httpsrv){.s_base = base, .s_ctx = ctx, .s_lim = *lim, .s_handler = handler, .s_arg = arg};
	if (!s->s_lim.hl_name)
		s->s_lim.hl_name = "HTTPS";
	s->s_peer_cn = lim->hl_peer_cn ? xstrdup(lim->hl_peer_cn) : NULL;
	s->s_per_addr = json_object();
	s->s_resume = evtimer_new(base, hs_resume, s);
	s->s_http = evhttp_new(base);
	if ((lim->hl_peer_cn && !s->s_peer_cn) || !s->s_per_addr || !s->s_resume || !s->s_http)
		goto fail;
	long long nofile = hs_raise_nofile();
	s->s_max_conns = httpsrv_conn_cap(lim->hl_max_conns, nofile);
	if (lim->hl_max_conns > s->s_max_conns)
		log_warn("%s: at most %d connections (the file descriptor limit is %lld), not %d", s->s_lim.hl_name,
			 s->s_max_conns, nofile, lim->hl_max_conns);
	evhttp_set_bevcb(s->s_http, hs_bevcb, s);
	evhttp_set_gencb(s->s_http, hs_request, s);
	evhttp_set_max_body_size(s->s_http, (ev_ssize_t)lim->hl_max_body);
	evhttp_set_max_headers_size(s->s_http, (ev_ssize_t)lim->hl_max_headers);
	struct timeval idle = {(time_t)(lim->hl_idle_ms / 1000), (suseconds_t)(lim->hl_idle_ms % 1000) * 1000};
	evhttp_set_timeout_tv(s->s_http, &idle);
	s->s_next = httpsrv_all;
	httpsrv_all = s;
	return s;
fail:
	if (s) {
		if (s->s_http)
			evhttp_free(s->s_http);
		if (s->s_resume)
			event_free(s->s_resume);
		json_decref(s->s_per_addr);
		free(s->s_peer_cn);
		free(s);
	}
	return NULL;
}

struct evhttp *httpsrv_evhttp(struct httpsrv *s)
{
	return s->s_http;
}

int httpsrv_bind(struct httpsrv *s, const char *addr, int port, int *real_port, char *err, size_t errlen)
{
	if (s->s_nlev == HS_MAX_LISTENERS) {
		snprintf(err, errlen, "too many listening sockets");
		return -1;
	}
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(s->s_http, addr, (ev_uint16_t)port);
	if (!bs) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s", addr, port, strerror(errno));
		return -1;
	}
	struct evconnlistener *lev = evhttp_bound_socket_get_listener(bs);
	evconnlistener_set_error_cb(lev, hs_accept_error);
	s->s_lev[s->s_nlev++] = lev;
	evutil_socket_t fd = evhttp_bound_socket_get_fd(bs);
	/* accepted sockets inherit it: answers are several small TLS records
	 * (headers, body) and Nagle + delayed ACK would add 40 ms to each */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
		snprintf(err, errlen, "getsockname: %s", strerror(errno));
		return -1;
	}
	*real_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						    : ((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

void httpsrv_free(struct httpsrv *s)
{
	if (!s)
		return;
	for (struct httpsrv **p = &httpsrv_all; *p; p = &(*p)->s_next)
		if (*p == s) {
			*p = s->s_next;
			break;
		}
	evhttp_free(s->s_http); /* closes the connections (their SSLs may be freed later, by the loop) */
	for (struct hs_conn *c = s->s_conns, *next; c; c = next) {
		next = c->c_next;
		c->c_srv = NULL;
		event_free(c->c_timer);
		c->c_timer = NULL;
	}
	event_free(s->s_resume);
	json_decref(s->s_per_addr);
	free(s->s_peer_cn);
	free(s);
}

void httpsrv_request_addr(struct evhttp_request *req, char *out, size_t outlen)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	char *host = NULL;
	ev_uint16_t port = 0;
	if (evcon)
		evhttp_connection_get_peer(evcon, &host, &port);
	snprintf(out, outlen, "%s", host ? host : "");
}
