/*
 * xmlrpc_parse.c - XML-RPC calls and values to jansson values, with expat.
 *
 * expat reads the XML (encodings, entities, CDATA, well-formedness); this
 * file checks the XML-RPC grammar as events arrive, on an explicit stack
 * of open elements, and builds the values bottom-up: a value is handed to
 * its parent (a param, an array's data, a struct's member) when it closes.
 * Nothing recurses, so a body nested a million deep costs one refusal at
 * depth XMLRPC_MAX_DEPTH, not a stack. A DTD is refused outright: no
 * entity of the sender's own can be expanded.
 *
 * As XAPI reads it (ocaml-rpc's Xmlrpc): <value>text</value> is a string,
 * <int>, <i4> and <i8> are ints, <boolean> is 0 or 1, <nil/> is null,
 * <dateTime.iso8601> is its text, <base64> its decoded text.
 */
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <expat.h>
#include <openssl/evp.h>
#include "util.h"
#include "xerr.h"
#include "xmlrpc.h"

enum xp_el {
	EL_ROOT, EL_CALL, EL_METHOD_NAME, EL_PARAMS, EL_PARAM, EL_VALUE, EL_SCALAR, EL_NIL,
	EL_ARRAY, EL_DATA, EL_STRUCT, EL_MEMBER, EL_NAME,
};

enum xp_scalar { SC_STRING, SC_INT, SC_BOOL, SC_DOUBLE, SC_DATETIME, SC_BASE64 };

static const struct {
	const char *name;
	enum xp_el el;
	enum xp_scalar sc;
} xp_names[] = {
	{"methodCall", EL_CALL, 0},   {"methodName", EL_METHOD_NAME, 0},
	{"params", EL_PARAMS, 0},     {"param", EL_PARAM, 0},
	{"value", EL_VALUE, 0},       {"string", EL_SCALAR, SC_STRING},
	{"int", EL_SCALAR, SC_INT},   {"i4", EL_SCALAR, SC_INT},
	{"i8", EL_SCALAR, SC_INT},    {"boolean", EL_SCALAR, SC_BOOL},
	{"double", EL_SCALAR, SC_DOUBLE}, {"dateTime.iso8601", EL_SCALAR, SC_DATETIME},
	{"base64", EL_SCALAR, SC_BASE64}, {"nil", EL_NIL, 0},
	{"array", EL_ARRAY, 0},       {"data", EL_DATA, 0},
	{"struct", EL_STRUCT, 0},     {"member", EL_MEMBER, 0},
	{"name", EL_NAME, 0},
};

/* value, then array+data or struct+member, per level; the call's own
 * three and a scalar: never reached while values are counted */
#define XP_MAX_ELEMENTS (3 * XMLRPC_MAX_DEPTH + 4)
#define XP_STR2(n) #n
#define XP_STR(n) XP_STR2(n)

struct xp_frame {
	enum xp_el f_el;
	enum xp_scalar f_sc;
	json_t *f_val;  /* VALUE, PARAM, MEMBER: the value given; ARRAY, DATA, PARAMS: array; STRUCT: object */
	char *f_name;   /* MEMBER: its name */
	int f_children; /* elements seen inside */
};

struct xp {
	XML_Parser x_parser;
	struct xp_frame x_st[XP_MAX_ELEMENTS + 1];
	int x_depth;           /* x_st[0] is the document itself */
	int x_values;          /* <value> elements open */
	char *x_text;          /* character data of the innermost element */
	size_t x_len, x_cap;
	char *x_method;
	json_t *x_result;      /* the params array, or the lone value */
	bool x_call;           /* a <methodCall>, else one <value> */
	bool x_failed;
	char x_expected[96], x_received[160];
};

static void xp_fail(struct xp *x, const char *expected, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void xp_fail(struct xp *x, const char *expected, const char *fmt, ...)
{
	if (x->x_failed)
		return;
	x->x_failed = true;
	snprintf(x->x_expected, sizeof x->x_expected, "%s", expected);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->x_received, sizeof x->x_received, fmt, ap);
	va_end(ap);
	XML_StopParser(x->x_parser, XML_FALSE);
}

static bool xp_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

/* What may open inside an element, for the refusal's "expected". */
static const char *xp_allowed(const struct xp_frame *f, bool call)
{
	switch (f->f_el) {
	case EL_ROOT: return call ? "<methodCall>" : "<value>";
	case EL_CALL: return f->f_children ? "<params>" : "<methodName>";
	case EL_PARAMS: return "<param>";
	case EL_PARAM: return f->f_children ? "</param>" : "<value>";
	case EL_VALUE: return "a type (int, i4, i8, boolean, double, string, dateTime.iso8601, base64, array, struct, nil)";
	case EL_ARRAY: return "<data>";
	case EL_DATA: return "<value>";
	case EL_STRUCT: return "<member>";
	case EL_MEMBER: return f->f_children ? "<value>" : "<name>";
	default: return "text";
	}
}

static bool xp_fits(const struct xp_frame *f, enum xp_el el, bool call)
{
	switch (f->f_el) {
	case EL_ROOT: return f->f_children == 0 && el == (call ? EL_CALL : EL_VALUE);
	case EL_CALL: return (f->f_children == 0 && el == EL_METHOD_NAME) || (f->f_children == 1 && el == EL_PARAMS);
	case EL_PARAMS: return el == EL_PARAM;
	case EL_PARAM: return f->f_children == 0 && el == EL_VALUE;
	case EL_VALUE:
		return f->f_children == 0 && (el == EL_SCALAR || el == EL_NIL || el == EL_ARRAY || el == EL_STRUCT);
	case EL_ARRAY: return f->f_children == 0 && el == EL_DATA;
	case EL_DATA: return el == EL_VALUE;
	case EL_STRUCT: return el == EL_MEMBER;
	case EL_MEMBER: return (f->f_children == 0 && el == EL_NAME) || (f->f_children == 1 && el == EL_VALUE);
	default: return false;
	}
}

static void xp_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
	(void)attrs;
	struct xp *x = ud;
	struct xp_frame *top = &x->x_st[x->x_depth];
	bool call = x->x_call;
	size_t i = 0, n = sizeof xp_names / sizeof xp_names[0];
	while (i < n && strcmp(xp_names[i].name, name))
		i++;
	if (x->x_failed)
		return;
	if (!xp_blank(x->x_text, x->x_len)) {
		xp_fail(x, xp_allowed(top, call), "text before <%.60s>", name);
		return;
	}
	x->x_len = 0;
	if (i == n || !xp_fits(top, xp_names[i].el, call)) {
		xp_fail(x, xp_allowed(top, call), "<%.100s>", name);
		return;
	}
	if (x->x_depth == XP_MAX_ELEMENTS || (xp_names[i].el == EL_VALUE && x->x_values == XMLRPC_MAX_DEPTH)) {
		xp_fail(x, "values nested at most " XP_STR(XMLRPC_MAX_DEPTH) " deep", "deeper nesting");
		return;
	}
	top->f_children++;
	x->x_values += xp_names[i].el == EL_VALUE;
	struct xp_frame *f = &x->x_st[++x->x_depth];
	*f = (struct xp_frame){xp_names[i].el, xp_names[i].sc, NULL, NULL, 0};
	if (f->f_el == EL_PARAMS || f->f_el == EL_DATA)
		f->f_val = json_array();
	else if (f->f_el == EL_STRUCT)
		f->f_val = json_object();
}

static void xp_text(void *ud, const XML_Char *s, int len)
{
	struct xp *x = ud;
	if (x->x_failed)
		return;
	if (x->x_len + (size_t)len + 1 > x->x_cap) {
		x->x_cap = (x->x_len + (size_t)len + 1) * 2;
		x->x_text = xrealloc(x->x_text, x->x_cap);
	}
	memcpy(x->x_text + x->x_len, s, (size_t)len);
	x->x_len += (size_t)len;
	x->x_text[x->x_len] = '\0';
}

static void xp_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid, int internal)
{
	(void)name, (void)sysid, (void)pubid, (void)internal;
	xp_fail(ud, "no document type declaration", "<!DOCTYPE>");
}

static char *xp_trim(char *s, size_t *len)
{
	while (*len && strchr(" \t\r\n", s[*len - 1]))
		s[--*len] = '\0';
	while (*len && strchr(" \t\r\n", *s))
		s++, (*len)--;
	return s;
}

static json_t *xp_base64(const char *s, size_t len)
{
	unsigned char *out = xmalloc(len / 4 * 3 + 4);
	int n = 0, fin = 0;
	EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
	if (!ctx)
		abort(); /* out of memory: util.h's policy */
	EVP_DecodeInit(ctx);
	bool ok = EVP_DecodeUpdate(ctx, out, &n, (const unsigned char *)s, (int)len) >= 0 &&
		  EVP_DecodeFinal(ctx, out + n, &fin) == 1;
	EVP_ENCODE_CTX_free(ctx);
	json_t *v = ok ? json_stringn((const char *)out, (size_t)(n + fin)) : NULL; /* NULL: not UTF-8 text */
	free(out);
	return v;
}

/* The text of a scalar element as its value; NULL when malformed. */
static json_t *xp_scalar(enum xp_scalar sc, char *text, size_t len)
{
	char *end;
	if (sc == SC_STRING || sc == SC_DATETIME)
		return json_stringn(text, len);
	if (sc == SC_BASE64)
		return xp_base64(text, len);
	text = xp_trim(text, &len);
	if (!len)
		return NULL;
	errno = 0;
	if (sc == SC_INT) {
		long long n = strtoll(text, &end, 10);
		return *end || errno ? NULL : json_integer(n);
	}
	if (sc == SC_BOOL)
		return len == 1 && (*text == '0' || *text == '1') ? json_boolean(*text == '1') : NULL;
	double d = strtod(text, &end);
	return *end || errno || !isfinite(d) ? NULL : json_real(d);
}

static const char *const xp_scalar_names[] = {"a string", "an int", "a boolean (0 or 1)", "a double",
					       "a dateTime.iso8601", "base64 of UTF-8 text"};

/* A closed value goes to the element it is in. */
static void xp_deliver(struct xp *x, json_t *v)
{
	struct xp_frame *p = &x->x_st[x->x_depth];
	if (p->f_el == EL_ROOT)
		x->x_result = v;
	else if (p->f_el == EL_DATA)
		json_array_append_new(p->f_val, v);
	else
		p->f_val = v; /* a param, a member, a value holding a typed child */
}

static void xp_end(void *ud, const XML_Char *name)
{
	struct xp *x = ud;
	if (x->x_failed)
		return; /* the stack is freed by xp_run */
	struct xp_frame f = x->x_st[x->x_depth--];
	struct xp_frame *p = &x->x_st[x->x_depth];
	x->x_values -= f.f_el == EL_VALUE;
	bool leaf = f.f_el == EL_METHOD_NAME || f.f_el == EL_NAME || f.f_el == EL_SCALAR ||
		    (f.f_el == EL_VALUE && !f.f_children);
	if (!leaf && !xp_blank(x->x_text, x->x_len))
		xp_fail(x, "elements only", "text in <%.60s>", name);
	else if (f.f_el == EL_METHOD_NAME)
		x->x_method = strndup(x->x_text, x->x_len);
	else if (f.f_el == EL_NAME)
		p->f_name = strndup(x->x_text, x->x_len);
	else if (f.f_el == EL_SCALAR && !(f.f_val = xp_scalar(f.f_sc, x->x_text, x->x_len)))
		xp_fail(x, xp_scalar_names[f.f_sc], "<%s>%.60s", name, x->x_text);
	else if (f.f_el == EL_VALUE && !f.f_val && !(f.f_val = json_stringn(x->x_text, x->x_len)))
		xp_fail(x, "UTF-8 text", "<value> holding other bytes");
	else if ((f.f_el == EL_MEMBER && (!f.f_name || !f.f_val)) || (f.f_el == EL_PARAM && !f.f_val) ||
		 (f.f_el == EL_CALL && !x->x_method))
		xp_fail(x, xp_allowed(&f, x->x_call), "</%s>", name);
	x->x_len = 0;
	if (x->x_failed) {
		json_decref(f.f_val);
		free(f.f_name);
		return;
	}
	switch (f.f_el) {
	case EL_MEMBER:
		json_object_set_new(p->f_val, f.f_name, f.f_val);
		free(f.f_name);
		break;
	case EL_PARAM:
		json_array_append_new(p->f_val, f.f_val);
		break;
	case EL_PARAMS:
		x->x_result = f.f_val;
		break;
	case EL_CALL:
		if (!x->x_result)
			x->x_result = json_array(); /* no <params>: none */
		break;
	case EL_ROOT:
	case EL_METHOD_NAME:
	case EL_NAME:
		break;
	case EL_NIL:
		xp_deliver(x, json_null());
		break;
	case EL_ARRAY:
		xp_deliver(x, f.f_val ? f.f_val : json_array()); /* <array/> */
		break;
	default: /* a value, a scalar, an array's data, a struct */
		xp_deliver(x, f.f_val);
	}
}

/* Parse body as a call (call) or one value; x holds the outcome. */
static void xp_run(struct xp *x, const char *body, size_t len, bool call)
{
	static const XML_Memory_Handling_Suite mm = {xmalloc, xrealloc, free};
	memset(x, 0, sizeof *x);
	x->x_call = call;
	x->x_parser = XML_ParserCreate_MM(NULL, &mm, NULL);
	if (!x->x_parser)
		abort(); /* out of memory: util.h's policy */
	XML_SetUserData(x->x_parser, x);
	XML_SetElementHandler(x->x_parser, xp_start, xp_end);
	XML_SetCharacterDataHandler(x->x_parser, xp_text);
	XML_SetStartDoctypeDeclHandler(x->x_parser, xp_doctype);
	x->x_text = xstrdup("");
	x->x_cap = 1;
	enum XML_Status st = XML_STATUS_ERROR;
	if (len <= (size_t)INT32_MAX)
		st = XML_Parse(x->x_parser, body, (int)len, XML_TRUE);
	if (st != XML_STATUS_OK && !x->x_failed) {
		enum XML_Error code = XML_GetErrorCode(x->x_parser);
		x->x_failed = true;
		snprintf(x->x_expected, sizeof x->x_expected, "well-formed XML");
		snprintf(x->x_received, sizeof x->x_received, "%s at line %lu, column %lu", XML_ErrorString(code),
			 (unsigned long)XML_GetCurrentLineNumber(x->x_parser),
			 (unsigned long)XML_GetCurrentColumnNumber(x->x_parser));
	}
	/* a refusal mid-way leaves values on the stack */
	for (int i = 1; i <= x->x_depth; i++) {
		json_decref(x->x_st[i].f_val);
		free(x->x_st[i].f_name);
	}
	XML_ParserFree(x->x_parser);
	free(x->x_text);
	if (x->x_failed) {
		json_decref(x->x_result);
		x->x_result = NULL;
		free(x->x_method);
		x->x_method = NULL;
	}
}

int xmlrpc_parse_call(const char *body, size_t len, char **method, json_t **params, json_t **xerr)
{
	struct xp x;
	xp_run(&x, body, len, true);
	if (x.x_failed) {
		*xerr = xerr_new(XE_XMLRPC_UNMARSHAL_FAILURE, x.x_expected, x.x_received, NULL);
		return -1;
	}
	*method = x.x_method;
	*params = x.x_result;
	return 0;
}

json_t *xmlrpc_parse_value(const char *text, size_t len)
{
	struct xp x;
	xp_run(&x, text, len, false);
	return x.x_result;
}
