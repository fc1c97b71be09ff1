/*
 * xe_print.c - XAPI's CLI output (Cli_printer): multi-line records with the
 * first label left-aligned and the others right-aligned to 4 + the longest
 * label, records separated by two blank lines; --minimal comma lists with
 * '\' and ',' escaped; field qualifiers and value rendering (maps
 * "k: v; k2: v2", sets "a; b", floats %.3f, CLI enum spellings).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "xe.h"
#include "util.h"

void xe_buf_add(struct xe_buf *b, const char *s)
{
	size_t n = strlen(s);
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2 + 16;
		char *p = xrealloc(b->s, cap);
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n + 1);
	b->len += n;
}

static char *buf_take(struct xe_buf *b)
{
	return b->s ? b->s : xstrdup("");
}

void xe_print_record(FILE *f, const char *const *labels, const char *const *values, size_t n)
{
	size_t max = 0;
	for (size_t i = 0; i < n; i++)
		if (strlen(labels[i]) > max)
			max = strlen(labels[i]);
	int w = (int)(max + 4);
	for (size_t i = 0; i < n; i++)
		fprintf(f, i == 0 ? "%-*s: %s\n" : "%*s: %s\n", w, labels[i], values[i]);
	fputs("\n\n", f);
}

char *xe_minimal_escape(const char *s)
{
	struct xe_buf b = {0};
	char one[2] = "";
	for (; *s; s++) {
		if (*s == ',' || *s == '\\')
			xe_buf_add(&b, "\\");
		one[0] = *s;
		xe_buf_add(&b, one);
	}
	return buf_take(&b);
}

void xe_print_minimal(FILE *f, const char *const *values, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *e = xe_minimal_escape(values[i]);
		fprintf(f, "%s%s", i ? "," : "", e);
		free(e);
	}
	fputc('\n', f);
}

char *xe_label(const char *name, const char *qual)
{
	char *s = NULL;
	if (asprintf(&s, "%s (%s)", name, qual) < 0)
		return NULL;
	return s;
}

const char *xe_qual(const struct model_field *f)
{
	bool rw = f->fld_qual == QUAL_RW;
	if (strcmp(f->fld_name, "current_operations") == 0)
		return "SRO";
	switch (f->fld_type) {
	case FT_SET_REF:
	case FT_SET_STRING:
		return rw ? "SRW" : "SRO";
	case FT_MAP:
	case FT_MAP_ANY:
		return rw ? "MRW" : "MRO";
	default:
		return rw ? " RW" : " RO";
	}
}

static char *scalar(const json_t *v)
{
	char buf[64];
	if (json_is_string(v))
		return xstrdup(json_string_value(v));
	if (json_is_integer(v))
		snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, sizeof buf, "%.3f", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, sizeof buf, "%s", json_is_true(v) ? "true" : "false");
	else if (!v || json_is_null(v))
		buf[0] = '\0';
	else
		return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	return xstrdup(buf);
}

static char *render_map(const json_t *v)
{
	struct xe_buf b = {0};
	const char *k;
	json_t *x;
	bool first = true;
	json_object_foreach((json_t *)v, k, x) {
		char *s = scalar(x);
		if (!first)
			xe_buf_add(&b, "; ");
		xe_buf_add(&b, k);
		xe_buf_add(&b, ": ");
		xe_buf_add(&b, s ? s : "");
		free(s);
		first = false;
	}
	return buf_take(&b);
}

static char *render_list(const json_t *v, const char *sep)
{
	struct xe_buf b = {0};
	size_t i;
	json_t *x;
	json_array_foreach(v, i, x) {
		char *s = scalar(x);
		if (i)
			xe_buf_add(&b, sep);
		xe_buf_add(&b, s ? s : "");
		free(s);
	}
	return buf_take(&b);
}

char *xe_render(enum fld_type t, const json_t *v, const char *sep)
{
	switch (t) {
	case FT_MAP:
	case FT_MAP_ANY:
		return json_is_object(v) ? render_map(v) : xstrdup("");
	case FT_SET_REF:
	case FT_SET_STRING:
		return json_is_array(v) ? render_list(v, sep ? sep : "; ") : xstrdup("");
	case FT_FLOAT:
		if (json_is_number(v)) {
			char buf[64];
			snprintf(buf, sizeof buf, "%.3f", json_number_value(v));
			return xstrdup(buf);
		}
		return scalar(v);
	default:
		return scalar(v);
	}
}

static const char *const enum_cli[][4] = {
	/* class, field, wire, CLI */
	{"VM", "power_state", "Halted", "halted"},
	{"VM", "power_state", "Running", "running"},
	{"VM", "power_state", "Paused", "paused"},
	{"VM", "power_state", "Suspended", "suspended"},
	{"VM", "actions_after_*", "destroy", "Destroy"},
	{"VM", "actions_after_*", "restart", "Restart"},
	{"VM", "actions_after_*", "preserve", "Preserve"},
	{"VM", "actions_after_*", "soft_reboot", "Soft reboot"},
	{"VM", "actions_after_*", "coredump_and_destroy", "Core dump and destroy"},
	{"VM", "actions_after_*", "coredump_and_restart", "Core dump and restart"},
	{"VM", "actions_after_*", "rename_restart", "Rename restart"},
	{"VDI", "type", "system", "System"},
	{"VDI", "type", "user", "User"},
	{"VDI", "type", "ephemeral", "Ephemeral"},
	{"VDI", "type", "suspend", "Suspend"},
	{"VDI", "type", "crashdump", "Crashdump"},
	{"VDI", "type", "ha_statefile", "HA statefile"},
	{"VDI", "type", "metadata", "Metadata"},
	{"VDI", "type", "redo_log", "Redo log"},
	{"VDI", "type", "pvs_cache", "PVS cache"},
	{"VDI", "type", "cbt_metadata", "CBT metadata"},
};

static bool field_is(const char *pat, const char *field)
{
	size_t n = strlen(pat);
	if (n && pat[n - 1] == '*')
		return strncmp(pat, field, n - 1) == 0;
	return strcmp(pat, field) == 0;
}

const char *xe_enum_cli(const char *cls, const char *field, const char *v)
{
	for (size_t i = 0; i < sizeof enum_cli / sizeof enum_cli[0]; i++)
		if (strcmp(enum_cli[i][0], cls) == 0 && field_is(enum_cli[i][1], field) &&
		    strcmp(enum_cli[i][2], v) == 0)
			return enum_cli[i][3];
	return v;
}

char *xe_wrap_names(const char *const *names, size_t n)
{
	struct xe_buf b = {0};
	size_t cur = 0;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(names[i]);
		if (i == 0) {
			xe_buf_add(&b, "    ");
			cur = 4;
		} else if (cur + len > 74) {
			xe_buf_add(&b, ",\n    ");
			cur = 4;
		} else {
			xe_buf_add(&b, ", ");
			cur += 2;
		}
		xe_buf_add(&b, names[i]);
		cur += len;
	}
	xe_buf_add(&b, "\n");
	return buf_take(&b);
}
