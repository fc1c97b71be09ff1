/*
 * xmlrpc.c - JSON values to XAPI's XML-RPC text: one value encoder for
 * answers (poold/http.c) and task results (poold/api.c). See xmlrpc.h for
 * the typing rules.
 */
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
		size_t cap = (x->cap ? x->cap * 2 : 256);
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

/* Text as XML character data. Control characters other than tab and line
 * ends cannot appear in XML 1.0 at all, not even as references: they are
 * dropped, as XAPI drops them. */
static void xescape(struct xbuf *x, const char *s)
{
	const char *run = s;
	for (; *s; s++) {
		const char *rep = NULL;
		unsigned char c = (unsigned char)*s;
		if (c == '<')
			rep = "&lt;";
		else if (c == '>')
			rep = "&gt;";
		else if (c == '&')
			rep = "&amp;";
		else if (c == '"')
			rep = "&quot;";
		else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
			rep = "";
		if (!rep)
			continue;
		xput(x, run, (size_t)(s - run));
		xputs(x, rep);
		run = s + 1;
	}
	xput(x, run, (size_t)(s - run));
}

static void xdouble(struct xbuf *x, double d)
{
	char num[64];
	/* %.17g: the same double comes back (XAPI's %.16g may not) */
	snprintf(num, sizeof num, "<value><double>%.17g</double></value>", d);
	xputs(x, num);
}

static void xvalue(struct xbuf *x, const json_t *v, const struct xr_type *t);

/* The fields of class cls that JSON cannot type (datetimes, floats): a
 * record's other members go by their JSON type. At most max; a class has a
 * handful. */
struct xfields {
	const struct model_field *xf_f[16];
	size_t xf_n;
};

static void xfields_of(const struct model_class *cls, struct xfields *out)
{
	out->xf_n = 0;
	for (size_t i = 0; cls && i < cls->mc_nfields && out->xf_n < 16; i++)
		if (cls->mc_fields[i].fld_type == FT_DATETIME || cls->mc_fields[i].fld_type == FT_FLOAT)
			out->xf_f[out->xf_n++] = &cls->mc_fields[i];
}

/* A record's member, typed by its field in the model. */
static void xfield(struct xbuf *x, const struct xfields *typed, const char *name, const json_t *v)
{
	const struct model_field *f = NULL;
	for (size_t i = 0; i < typed->xf_n && !f; i++)
		if (strcmp(typed->xf_f[i]->fld_name, name) == 0)
			f = typed->xf_f[i];
	struct xr_type plain = {XR_PLAIN, NULL}, when = {XR_DATETIME, NULL};
	if (f && f->fld_type == FT_FLOAT && json_is_number(v))
		xdouble(x, json_number_value(v));
	else
		xvalue(x, v, f && f->fld_type == FT_DATETIME ? &when : &plain);
}

/* The members of object v, a struct of type t. */
static void xmembers(struct xbuf *x, const json_t *v, const struct xr_type *t)
{
	const char *k;
	json_t *e;
	struct xfields typed = {{NULL}, 0};
	if (t->xt_kind == XR_RECORD)
		xfields_of(t->xt_class, &typed);
	json_object_foreach((json_t *)v, k, e) {
		xputs(x, "<member><name>");
		xescape(x, k);
		xputs(x, "</name>");
		if (t->xt_kind == XR_RECORD)
			xfield(x, &typed, k, e);
		else if (t->xt_kind == XR_RECORDS)
			xvalue(x, e, &(struct xr_type){XR_RECORD, t->xt_class});
		else if (t->xt_kind == XR_EVENTS && strcmp(k, "events") == 0)
			xvalue(x, e, t);
		else
			xvalue(x, e, &(struct xr_type){XR_PLAIN, NULL});
		xputs(x, "</member>");
	}
}

static void xstruct(struct xbuf *x, const json_t *v, const struct xr_type *t)
{
	xputs(x, "<value><struct>");
	xmembers(x, v, t);
	xputs(x, "</struct></value>");
}

/* event.from: {events: [{class, ..., snapshot}], valid_ref_counts, token} */
static void xevent(struct xbuf *x, const json_t *ev)
{
	const struct model_class *cls = model_class_find_ci(jstr(ev, "class"));
	const char *k;
	json_t *e;
	xputs(x, "<value><struct>");
	json_object_foreach((json_t *)ev, k, e) {
		xputs(x, "<member><name>");
		xescape(x, k);
		xputs(x, "</name>");
		xvalue(x, e, &(struct xr_type){strcmp(k, "snapshot") == 0 && cls ? XR_RECORD : XR_PLAIN, cls});
		xputs(x, "</member>");
	}
	xputs(x, "</struct></value>");
}

static void xarray(struct xbuf *x, const json_t *v, const struct xr_type *t)
{
	size_t i;
	json_t *e;
	xputs(x, "<value><array><data>");
	json_array_foreach(v, i, e) {
		if (t->xt_kind == XR_EVENTS && json_is_object(e))
			xevent(x, e);
		else
			xvalue(x, e, &(struct xr_type){XR_PLAIN, NULL});
	}
	xputs(x, "</data></array></value>");
}

static void xvalue(struct xbuf *x, const json_t *v, const struct xr_type *t)
{
	char num[32];
	switch (json_typeof(v)) {
	case JSON_STRING:
		xputs(x, t->xt_kind == XR_DATETIME ? "<value><dateTime.iso8601>" : "<value>");
		xescape(x, json_string_value(v));
		xputs(x, t->xt_kind == XR_DATETIME ? "</dateTime.iso8601></value>" : "</value>");
		break;
	case JSON_INTEGER: /* int64: its digits, untyped */
		snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		xputs(x, "<value>");
		xputs(x, num);
		xputs(x, "</value>");
		break;
	case JSON_REAL:
		xdouble(x, json_real_value(v));
		break;
	case JSON_TRUE:
		xputs(x, "<value><boolean>1</boolean></value>");
		break;
	case JSON_FALSE:
		xputs(x, "<value><boolean>0</boolean></value>");
		break;
	case JSON_ARRAY:
		xarray(x, v, t);
		break;
	case JSON_OBJECT:
		xstruct(x, v, t);
		break;
	case JSON_NULL:
		xputs(x, "<value></value>");
		break;
	}
}

char *xmlrpc_value(const json_t *v, const struct xr_type *t)
{
	static const struct xr_type plain = {XR_PLAIN, NULL};
	if (!v || json_is_null(v))
		return xstrdup("");
	struct xbuf x = {0};
	xvalue(&x, v, t ? t : &plain);
	return x.b;
}

#define XR_HEAD "<?xml version=\"1.0\"?><methodResponse><params><param>"
#define XR_TAIL "</param></params></methodResponse>"
#define XR_OK_OPEN "<value><struct><member><name>Status</name><value>Success</value></member><member><name>Value</name>"
#define XR_OK_CLOSE "</member></struct></value>"

const char *xmlrpc_ok_struct_head(void)
{
	return XR_HEAD XR_OK_OPEN "<value><struct>";
}

const char *xmlrpc_ok_struct_tail(void)
{
	return "</struct></value>" XR_OK_CLOSE XR_TAIL;
}

char *xmlrpc_members(const json_t *obj, const struct xr_type *t)
{
	static const struct xr_type plain = {XR_PLAIN, NULL};
	struct xbuf x = {0};
	xputs(&x, "");
	xmembers(&x, obj, t ? t : &plain);
	return x.b;
}

char *xmlrpc_ok(const json_t *v, const struct xr_type *t)
{
	static const struct xr_type plain = {XR_PLAIN, NULL};
	struct xbuf x = {0};
	xputs(&x, XR_HEAD);
	xputs(&x, XR_OK_OPEN);
	if (!v || json_is_null(v))
		xputs(&x, "<value></value>"); /* void */
	else
		xvalue(&x, v, t ? t : &plain);
	xputs(&x, XR_OK_CLOSE);
	xputs(&x, XR_TAIL);
	return x.b;
}

char *xmlrpc_bare(const json_t *v)
{
	static const struct xr_type plain = {XR_PLAIN, NULL};
	struct xbuf x = {0};
	xputs(&x, XR_HEAD);
	xvalue(&x, v, &plain);
	xputs(&x, XR_TAIL);
	return x.b;
}

char *xmlrpc_fail(const json_t *xerr)
{
	static const struct xr_type plain = {XR_PLAIN, NULL};
	struct xbuf x = {0};
	xputs(&x, XR_HEAD);
	xputs(&x, "<value><struct><member><name>Status</name><value>Failure</value></member>"
		  "<member><name>ErrorDescription</name>");
	/* parameters are strings on the wire, whatever made them */
	json_t *strs = json_array();
	size_t i;
	json_t *e;
	json_array_foreach(xerr, i, e) {
		if (json_is_string(e)) {
			json_array_append(strs, e);
		} else {
			char *s = json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
			json_array_append_new(strs, json_string(s ? s : ""));
			free(s);
		}
	}
	xvalue(&x, strs, &plain);
	json_decref(strs);
	xputs(&x, "</member></struct></value>");
	xputs(&x, XR_TAIL);
	return x.b;
}
