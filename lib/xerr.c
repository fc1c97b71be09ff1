/* xerr.c - XAPI error values built from the one list in xapi_errors.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "xerr.h"
#include "util.h"

static const struct {
	const char *name;
	const char *params;
	const char *doc;
} xerr_table[] = {
#define XAPI_ERR_ROW(code, params, doc) {#code, params, doc},
	XAPI_ERROR_LIST(XAPI_ERR_ROW)
#undef XAPI_ERR_ROW
};

const char *xerr_code_name(enum xapi_err code)
{
	return (code >= 0 && code < XE__COUNT) ? xerr_table[code].name : "INTERNAL_ERROR";
}

const char *xerr_param_names(enum xapi_err code)
{
	return (code >= 0 && code < XE__COUNT) ? xerr_table[code].params : "";
}

const char *xerr_doc(enum xapi_err code)
{
	return (code >= 0 && code < XE__COUNT) ? xerr_table[code].doc : "";
}

int xerr_param_count(enum xapi_err code)
{
	const char *p = xerr_param_names(code);
	if (!*p)
		return 0;
	int n = 1;
	for (; *p; p++)
		n += (*p == ',');
	return n;
}

int xerr_code_from_name(const char *name)
{
	for (int i = 0; i < XE__COUNT; i++)
		if (strcmp(xerr_table[i].name, name) == 0)
			return i;
	return -1;
}

json_t *xerr_new(enum xapi_err code, ...)
{
	json_t *e = json_array();
	json_array_append_new(e, json_string(xerr_code_name(code)));
	va_list ap;
	va_start(ap, code);
	const char *p;
	while ((p = va_arg(ap, const char *)) != NULL)
		json_array_append_new(e, json_string(p));
	va_end(ap);
	if ((int)json_array_size(e) - 1 != xerr_param_count(code)) {
		fprintf(stderr, "xerr_new(%s): %zu parameters, %d declared\n",
			xerr_code_name(code), json_array_size(e) - 1, xerr_param_count(code));
		abort();
	}
	return e;
}

json_t *xerr_newf(enum xapi_err code, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (xerr_param_count(code) != 1) {
		fprintf(stderr, "xerr_newf(%s): takes exactly one parameter\n", xerr_code_name(code));
		abort();
	}
	return xerr_new(code, buf, NULL);
}

const char *xerr_code_of(const json_t *err)
{
	const char *s = json_string_value(json_array_get(err, 0));
	return s ? s : "INTERNAL_ERROR";
}

char *xerr_to_text(const json_t *err)
{
	size_t cap = 256, len = 0;
	char *out = xmalloc(cap);
	out[0] = '\0';
	for (size_t i = 0; i < json_array_size(err); i++) {
		json_t *v = json_array_get(err, i);
		char *tmp = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		const char *s = json_is_string(v) ? json_string_value(v) : (tmp ? tmp : "?");
		size_t need = len + strlen(s) + 4;
		if (need > cap) {
			cap = need * 2;
			char *n = xrealloc(out, cap);
			out = n;
		}
		len += (size_t)sprintf(out + len, "%s%s", i == 0 ? "" : (i == 1 ? ": " : ", "), s);
		free(tmp);
	}
	return out;
}

bool xerr_is(const json_t *err, enum xapi_err code)
{
	const char *c = xerr_code_of(err);
	return c && strcmp(c, xerr_code_name(code)) == 0;
}
