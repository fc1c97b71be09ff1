/* xmlrpc.c - JSON values to XAPI's XML-RPC result text and back (strings). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "xmlrpc.h"
#include "util.h"

struct xbuf {
	char *b;
	size_t len, cap;
};

static void xput(struct xbuf *x, const char *s, size_t n)
{
	if (x->len + n + 1 > x->cap) {
		size_t cap = (x->cap ? x->cap * 2 : 128);
		while (cap < x->len + n + 1)
			cap *= 2;
		x->b = xrealloc(x->b, cap);
		x->cap = cap;
	}
	memcpy(x->b + x->len, s, n);
	x->len += n;
	x->b[x->len] = '\0';
}

static void xputs(struct xbuf *x, const char *s)
{
	xput(x, s, strlen(s));
}

static void xescape(struct xbuf *x, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': xputs(x, "&lt;"); break;
		case '>': xputs(x, "&gt;"); break;
		case '&': xputs(x, "&amp;"); break;
		case '"': xputs(x, "&quot;"); break;
		default: xput(x, s, 1);
		}
	}
}

static void xvalue(struct xbuf *x, const json_t *v)
{
	char num[64];
	size_t i;
	const char *k;
	json_t *e;
	xputs(x, "<value>");
	switch (json_typeof(v)) {
	case JSON_STRING:
		xescape(x, json_string_value(v));
		break;
	case JSON_INTEGER: /* XAPI sends int64 as strings in XML-RPC */
		snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		xputs(x, num);
		break;
	case JSON_REAL:
		snprintf(num, sizeof num, "<double>%.17g</double>", json_real_value(v));
		xputs(x, num);
		break;
	case JSON_TRUE:
		xputs(x, "<boolean>1</boolean>");
		break;
	case JSON_FALSE:
		xputs(x, "<boolean>0</boolean>");
		break;
	case JSON_ARRAY:
		xputs(x, "<array><data>");
		json_array_foreach(v, i, e) xvalue(x, e);
		xputs(x, "</data></array>");
		break;
	case JSON_OBJECT:
		xputs(x, "<struct>");
		json_object_foreach((json_t *)v, k, e) {
			xputs(x, "<member><name>");
			xescape(x, k);
			xputs(x, "</name>");
			xvalue(x, e);
			xputs(x, "</member>");
		}
		xputs(x, "</struct>");
		break;
	case JSON_NULL:
		break;
	}
	xputs(x, "</value>");
}

char *xmlrpc_value(const json_t *v)
{
	if (!v || json_is_null(v))
		return xstrdup("");
	struct xbuf x = {0};
	xvalue(&x, v);
	return x.b;
}

char *xmlrpc_string(const char *text)
{
	const char *p = strstr(text, "<value>");
	if (!p)
		return NULL;
	p += 7;
	const char *close = "</value>";
	if (strncmp(p, "<string>", 8) == 0) {
		p += 8;
		close = "</string></value>";
	}
	const char *end = strchr(p, '<');
	/* only a plain string: <array>, <struct>, <boolean>... are not one */
	if (!end || strncmp(end, close, strlen(close)) != 0)
		return NULL;
	char *out = xmalloc((size_t)(end - p) + 1);
	size_t n = 0;
	for (const char *s = p; s < end; s++) {
		if (*s == '&') {
			static const struct { const char *ent; char c; } ents[] = {
				{"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
			size_t j;
			for (j = 0; j < sizeof ents / sizeof ents[0]; j++) {
				size_t l = strlen(ents[j].ent);
				if (strncmp(s, ents[j].ent, l) == 0) {
					out[n++] = ents[j].c;
					s += l - 1;
					break;
				}
			}
			if (j < sizeof ents / sizeof ents[0])
				continue;
		}
		out[n++] = *s;
	}
	out[n] = '\0';
	return out;
}
