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

/* --debug: each call and its outcome on stderr (--debug-on-fail: kept,
 * printed only if the command fails); passwords and sessions are hidden. */
static void trace(struct xe_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace(struct xe_ctx *c, const char *fmt, ...)
{
	if (!c->opts->debug && !c->opts->debug_on_fail)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *m = NULL;
	if (vasprintf(&m, fmt, ap) < 0)
		m = NULL;
	va_end(ap);
	if (m && c->opts->debug)
		fprintf(stderr, "%s\n", m);
	else if (m) {
		xe_buf_add(&c->debug, m);
		xe_buf_add(&c->debug, "\n");
	}
	free(m);
}

static void trace_call(struct xe_ctx *c, const char *method, const json_t *params)
{
	if (!c->opts->debug && !c->opts->debug_on_fail)
		return;
	json_t *shown = json_deep_copy(params);
	bool login = strcmp(method, "session.login_with_password") == 0;
	if (json_array_size(shown) > 1 && login)
		json_array_set_new(shown, 1, json_string("********"));
	else if (json_array_size(shown) > 0 && c->session && json_is_string(json_array_get(shown, 0)) &&
		 strcmp(json_string_value(json_array_get(shown, 0)), c->session) == 0)
		json_array_set_new(shown, 0, json_string("<session>"));
	char *t = json_dumps(shown, JSON_COMPACT);
	trace(c, "xe: -> %s %s", method, t ? t : "");
	free(t);
	json_decref(shown);
}

json_t *xe_call(struct xe_ctx *c, const char *method, json_t *params)
{
	trace_call(c, method, params);
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
	if (xerr) {
		char *t = json_dumps(xerr, JSON_COMPACT);
		trace(c, "xe: <- %s failed: %s", method, t ? t : "");
		free(t);
		set_xerr(c, xerr);
	} else {
		trace(c, "xe: <- %s ok (%zu bytes)", method, len);
	}
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
	free(c->debug.s);
	c->debug = (struct xe_buf){0};
	c->curl = NULL;
	c->url = c->session = c->msg = NULL;
	c->xerr = c->cache = NULL;
}

char *xe_error_text(const json_t *xerr)
{
	const char *code = xerr_code_of(xerr);
	int k = xerr_code_from_name(code);
	const char *doc = k >= 0 ? xerr_doc((enum xapi_err)k) : "";
	struct xe_buf b = {0};
	size_t n = json_array_size(xerr);
	if (k == XE_SESSION_AUTHENTICATION_FAILED) { /* XAPI's CLI says just this */
		const char *u = json_string_value(json_array_get(xerr, 1));
		xe_buf_add(&b, u && *u ? "Authentication failed\n" : "Username/password must be specified\n");
		return b.s;
	}
	if (!*doc) { /* an error XAPI's datamodel does not describe: its code and values */
		xe_buf_add(&b, "Error code: ");
		xe_buf_add(&b, code);
		xe_buf_add(&b, "\nError parameters: ");
		for (size_t i = 1; i < n; i++) {
			xe_buf_add(&b, i > 1 ? ", " : "");
			xe_buf_add(&b, json_string_value(json_array_get(xerr, i)) ?: "");
		}
		xe_buf_add(&b, "\n");
		return b.s;
	}
	xe_buf_add(&b, doc);
	xe_buf_add(&b, "\n");
	/* each declared name with its value (XAPI's pp_params: <extra> and <unknown> when they differ) */
	const char *names = xerr_param_names((enum xapi_err)k);
	size_t declared = *names ? (size_t)xerr_param_count((enum xapi_err)k) : 0;
	for (size_t i = 1; i < n || i <= declared; i++) {
		const char *p = names;
		for (size_t j = 1; p && *p && j < i; j++) {
			p = strchr(p, ',');
			p = p ? p + 1 : NULL;
		}
		json_t *v = json_array_get(xerr, i);
		char *tmp = v && !json_is_string(v) ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		char *line = NULL;
		if (asprintf(&line, "%.*s: %s\n", i <= declared && p ? (int)strcspn(p, ",") : 7,
			     i <= declared && p ? p : "<extra>", v ? (tmp ? tmp : json_string_value(v)) : "<unknown>") >= 0)
			xe_buf_add(&b, line);
		free(line);
		free(tmp);
	}
	return b.s;
}

/* The classes a reference in an error may be of, most likely first. */
static const char *const ref_classes[] = {"VM", "host", "SR", "VDI", "VBD", "VIF", "network", "PBD", "pool", "task",
					  "PIF", "VM_group"};

void xe_error_resolve(struct xe_ctx *c)
{
	if (!c->xerr)
		return;
	json_t *e = c->xerr;
	c->xerr = NULL;
	for (size_t i = 1; i < json_array_size(e); i++) {
		const char *v = json_string_value(json_array_get(e, i));
		if (!v || strncmp(v, "OpaqueRef:", 10) || strcmp(v, MODEL_NULL_REF) == 0)
			continue;
		for (size_t k = 0; k < sizeof ref_classes / sizeof ref_classes[0]; k++) {
			char m[64];
			snprintf(m, sizeof m, "%s.get_uuid", ref_classes[k]);
			json_t *u = xe_rpc(c, m, "s", v);
			json_decref(c->xerr);
			c->xerr = NULL;
			if (!u)
				continue;
			const struct model_class *mc = model_class_find(ref_classes[k]);
			snprintf(m, sizeof m, "%s.get_name_label", ref_classes[k]);
			json_t *nl = mc && mc->mc_name_label ? xe_rpc(c, m, "s", v) : NULL;
			json_decref(c->xerr);
			c->xerr = NULL;
			char *shown = NULL;
			if (asprintf(&shown, "%s%s%s%s", json_string_value(u), nl ? " (" : "", nl ? json_string_value(nl) : "",
				     nl ? ")" : "") >= 0)
				json_array_set_new(e, i, json_string(shown));
			free(shown);
			json_decref(nl);
			json_decref(u);
			break;
		}
	}
	c->xerr = e;
}

void xe_print_error(const struct xe_ctx *c, FILE *f)
{
	if ((c->opts->debug_on_fail) && c->debug.s)
		fputs(c->debug.s, f);
	if (c->msg) {
		fprintf(f, "%s\n", c->msg);
		return;
	}
	if (!c->xerr)
		return;
	char *t = xe_error_text(c->xerr);
	fputs(t ? t : "", f);
	free(t);
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

char *xe_str_result(json_t *r)
{
	char *s = json_is_string(r) ? xstrdup(json_string_value(r)) : NULL;
	json_decref(r);
	return s;
}

int xe_void_result(json_t *r)
{
	json_decref(r);
	return r ? 0 : -1;
}
