/*
 * xe_rpc.c - xe's transport: one libcurl easy handle per invocation (so
 * every call reuses the keep-alive connection), POST /jsonrpc with
 * JSON-RPC 2.0 framing from lib/jsonrpc.c, the session login/logout, the
 * error that ends a command and a per-invocation cache of get_all_records.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include "jsonrpc.h"
#include "tls.h"
#include "xe.h"
#include "xerr.h"
#include "util.h"

int xe_fail(struct xe_ctx *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *m = NULL;
	if (vasprintf(&m, fmt, ap) < 0)
		m = NULL;
	va_end(ap);
	if (!c->msg && !c->xerr)
		c->msg = m;
	else
		free(m);
	return -1;
}

static void set_xerr(struct xe_ctx *c, json_t *e)
{
	if (!c->msg && !c->xerr)
		c->xerr = e;
	else
		json_decref(e);
}

/* libcurl (OpenSSL) hands us its context before the handshake: the
 * server's certificate must be the pool master's (a pool member's has its
 * host uuid as CN). */
static CURLcode xe_ssl_ctx(CURL *h, void *ssl_ctx, void *arg)
{
	(void)h;
	(void)arg;
	return tls_ctx_require_peer_cn(ssl_ctx, TLS_MASTER_CN) == 1 ? CURLE_OK : CURLE_SSL_CERTPROBLEM;
}

int xe_connect(struct xe_ctx *c)
{
	CURL *h = curl_easy_init();
	if (!h)
		return xe_fail(c, "Error: cannot initialise libcurl");
	c->curl = h;
	const char *srv = c->opts->server;
	bool v6 = strchr(srv, ':') != NULL;
	if (asprintf(&c->url, "https://%s%s%s:%d/jsonrpc", v6 ? "[" : "", srv, v6 ? "]" : "", c->opts->port) < 0)
		return xe_fail(c, "out of memory");
	curl_easy_setopt(h, CURLOPT_URL, c->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 20L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	if (c->opts->cacert) {
		/* the pool master, at the name we were given: the password goes
		 * to no other pool member and to no one else the CA signed for */
		curl_easy_setopt(h, CURLOPT_CAINFO, c->opts->cacert);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
		curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, xe_ssl_ctx);
	} else {
		/* as XAPI's xe without a CA: the server is not checked */
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	return 0;
}

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
	struct xe_buf *b = arg;
	size_t len = size * n;
	if (b->len + len + 1 > b->cap) {
		size_t cap = (b->len + len + 1) * 2;
		char *s = xrealloc(b->s, cap);
		b->s = s;
		b->cap = cap;
	}
	memcpy(b->s + b->len, data, len);
	b->len += len;
	b->s[b->len] = '\0';
	return len;
}

/* One HTTP exchange; the answer body (malloc'ed) or NULL with error. */
static char *post(struct xe_ctx *c, const char *body, size_t *len)
{
	CURL *h = c->curl;
	struct xe_buf b = {0};
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	char errbuf[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	CURLcode rc = curl_easy_perform(h);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	curl_slist_free_all(hdr);
	long oserr = 0;
	curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &oserr);
	if (rc != CURLE_OK) {
		const char *why = oserr && rc == CURLE_COULDNT_CONNECT ? strerror((int)oserr)
				  : *errbuf ? errbuf : curl_easy_strerror(rc);
		xe_fail(c, "Error: cannot connect to %s:%d: %s", c->opts->server, c->opts->port, why);
	} else if (status != 200) {
		xe_fail(c, "Error: HTTP %ld from %s:%d", status, c->opts->server, c->opts->port);
	} else {
		*len = b.len;
		return b.s ? b.s : xstrdup("");
	}
	free(b.s);
	return NULL;
}

json_t *xe_call(struct xe_ctx *c, const char *method, json_t *params)
{
	char *req = jrpc_request(method, params, ++c->next_id);
	json_decref(params);
	if (!req) {
		xe_fail(c, "cannot encode the call to %s", method);
		return NULL;
	}
	size_t len = 0;
	char *ans = post(c, req, &len);
	free(req);
	if (!ans)
		return NULL;
	json_t *result, *xerr;
	jrpc_parse_answer(ans, len, &result, &xerr);
	free(ans);
	if (xerr)
		set_xerr(c, xerr);
	return result;
}

json_t *xe_rpc(struct xe_ctx *c, const char *method, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *full = NULL;
	if (asprintf(&full, "[%s]", fmt) < 0)
		full = NULL;
	json_error_t jerr;
	json_t *params = full ? json_vpack_ex(&jerr, 0, full, ap) : NULL;
	va_end(ap);
	free(full);
	if (!params) {
		xe_fail(c, "cannot encode the parameters of %s", method);
		return NULL;
	}
	json_array_insert_new(params, 0, json_string(c->session ? c->session : ""));
	return xe_call(c, method, params);
}

/* Talk to server from now on (HOST_IS_SLAVE named it): with a CA file its
 * certificate must name that address, as for -s. */
static int xe_retarget(struct xe_ctx *c, const char *server)
{
	free(c->opts->server);
	c->opts->server = xstrdup(server);
	free(c->url);
	c->url = NULL;
	bool v6 = strchr(server, ':') != NULL;
	if (asprintf(&c->url, "https://%s%s%s:%d/jsonrpc", v6 ? "[" : "", server, v6 ? "]" : "", c->opts->port) < 0)
		return xe_fail(c, "out of memory");
	curl_easy_setopt(c->curl, CURLOPT_URL, c->url);
	return 0;
}

int xe_login(struct xe_ctx *c, bool local)
{
	const struct xe_opts *o = c->opts;
	json_t *r = NULL;
	for (int hop = 0; hop < 3; hop++) {
		json_t *p = local ? json_pack("[s, s]", o->username ? o->username : "", o->password ? o->password : "")
				  : json_pack("[s, s, s, s]", o->username ? o->username : "",
					      o->password ? o->password : "", "2.21", "xe");
		r = xe_call(c, local ? "session.slave_local_login_with_password" : "session.login_with_password", p);
		if (r || local || !c->xerr || !xerr_is(c->xerr, XE_HOST_IS_SLAVE))
			break;
		/* not the master: the login goes where it says the master is */
		const char *master = json_string_value(json_array_get(c->xerr, 1));
		if (!master || !*master || !strcmp(master, c->opts->server) || xe_retarget(c, master) < 0)
			break;
		json_decref(c->xerr);
		c->xerr = NULL;
	}
	if (!r)
		return -1;
	if (!json_is_string(r)) {
		json_decref(r);
		return xe_fail(c, "Error: unexpected answer to session.login_with_password");
	}
	c->session = xstrdup(json_string_value(r));
	json_decref(r);
	return 0;
}

void xe_logout(struct xe_ctx *c)
{
	if (!c->session)
		return;
	json_t *p = json_pack("[s]", c->session);
	json_t *save_x = c->xerr;
	char *save_m = c->msg;
	c->xerr = NULL;
	c->msg = NULL;
	json_decref(xe_call(c, "session.logout", p));
	json_decref(c->xerr);
	free(c->msg);
	c->xerr = save_x;
	c->msg = save_m;
	free(c->session);
	c->session = NULL;
}

void xe_ctx_free(struct xe_ctx *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free(c->url);
	free(c->session);
	json_decref(c->xerr);
	free(c->msg);
	json_decref(c->cache);
	c->curl = NULL;
	c->url = c->session = c->msg = NULL;
	c->xerr = c->cache = NULL;
}

void xe_print_error(const struct xe_ctx *c, FILE *f)
{
	if (c->msg) {
		fprintf(f, "%s\n", c->msg);
		return;
	}
	if (!c->xerr)
		return;
	const char *code = xerr_code_of(c->xerr);
	fprintf(f, "%s\n", code);
	int k = xerr_code_from_name(code);
	const char *names = k >= 0 ? xerr_param_names((enum xapi_err)k) : "";
	for (size_t i = 1; i < json_array_size(c->xerr); i++) {
		json_t *v = json_array_get(c->xerr, i);
		char *tmp = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		/* the i-th declared name, or "param N" */
		const char *p = names;
		for (size_t n = 1; p && *p && n < i; n++) {
			p = strchr(p, ',');
			p = p ? p + 1 : NULL;
		}
		if (p && *p)
			fprintf(f, "%.*s: %s\n", (int)strcspn(p, ","), p, tmp ? tmp : json_string_value(v));
		else
			fprintf(f, "param %zu: %s\n", i, tmp ? tmp : json_string_value(v));
		free(tmp);
	}
}

json_t *xe_all(struct xe_ctx *c, const char *cls)
{
	if (!c->cache)
		c->cache = json_object();
	json_t *have = json_object_get(c->cache, cls);
	if (have)
		return have;
	char method[96];
	snprintf(method, sizeof method, "%s.get_all_records", cls);
	json_t *save_x = c->xerr;
	char *save_m = c->msg;
	c->xerr = NULL;
	c->msg = NULL;
	json_t *r = xe_rpc(c, method, "");
	/* a class the server does not serve: no records */
	json_decref(c->xerr);
	free(c->msg);
	c->xerr = save_x;
	c->msg = save_m;
	if (!json_is_object(r)) {
		json_decref(r);
		r = json_object();
	}
	json_object_set_new(c->cache, cls, r);
	return r;
}

void xe_forget(struct xe_ctx *c, const char *cls)
{
	if (c->cache)
		json_object_del(c->cache, cls);
}
