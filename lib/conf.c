/*
 * conf.c - xapi.conf reader (see conf.h).
 *
 * A file is read whole, its form guessed from the first significant line
 * (XAPI legacy "key = value" or YAML, the latter walked with libyaml's event
 * parser so every key keeps its line number), and each value is checked
 * against the declared key table. Values are staged while a file is read
 * and committed only when all of it is valid: a failed load (say, a reload
 * with a typo) leaves the configuration exactly as it was.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>
#include "conf.h"
#include "log.h"
#include "util.h"

#define CONF_MAX_DEPTH 16 /* YAML section nesting; deeper is an error */

struct conf_val {
	long long n; /* CONF_INT, CONF_SIZE, CONF_DURATION (ms), CONF_BOOL (0/1) */
	char *s;     /* CONF_STRING, CONF_ENUM: owned copy */
};

struct conf {
	const struct conf_key *keys; /* the caller's table; must outlive c */
	size_t nkeys;
	struct conf_val *vals;
	int warnings;
};

/* A value read but not yet committed, and where it came from. */
struct conf_stage {
	struct conf_val v;
	size_t line; /* 0: not set by this source */
	bool set;
};

/* One conf_load() or conf_set() in progress. */
struct conf_src {
	struct conf *c;
	const char *name; /* file path, or conf_set()'s origin */
	struct conf_stage *stage;
	char *err;
	size_t errlen;
};

/* ---- messages ---- */

__attribute__((format(printf, 2, 3)))
static int conf_fail(struct conf_src *s, const char *fmt, ...)
{
	if (s->err && s->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(s->err, s->errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* "FILE:LINE" for file values, "ORIGIN" for conf_set(). */
static const char *conf_where(const struct conf_src *s, size_t line, char *buf, size_t len)
{
	if (!line)
		return s->name;
	snprintf(buf, len, "%s:%zu", s->name, line);
	return buf;
}

/* ---- value forms ---- */

/* A key's effective bounds; min == max == 0 means "not bounded". */
static void conf_bounds(const struct conf_key *k, long long *lo, long long *hi)
{
	*lo = k->min;
	*hi = k->max;
	if (k->min == 0 && k->max == 0) {
		*lo = k->type == CONF_INT ? LLONG_MIN : 0;
		*hi = LLONG_MAX;
	}
}

static void conf_fmt_size(long long v, char *buf, size_t len)
{
	static const char *units[] = {"TiB", "GiB", "MiB", "KiB"};
	for (int i = 0; i < 4; i++) {
		long long m = 1LL << (10 * (4 - i));
		if (v != 0 && v % m == 0) {
			snprintf(buf, len, "%lld%s", v / m, units[i]);
			return;
		}
	}
	snprintf(buf, len, "%lld", v);
}

static void conf_fmt_duration(long long ms, char *buf, size_t len)
{
	static const struct { const char *sfx; long long ms; } units[] = {
		{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
	for (int i = 0; i < 4; i++) {
		if (ms != 0 && ms % units[i].ms == 0) {
			snprintf(buf, len, "%lld%s", ms / units[i].ms, units[i].sfx);
			return;
		}
	}
	snprintf(buf, len, ms ? "%lldms" : "%llds", ms);
}

typedef void conf_fmt_fn(long long v, char *buf, size_t len);

static void conf_fmt_int(long long v, char *buf, size_t len)
{
	snprintf(buf, len, "%lld", v);
}

/* A key's bounds as " (from X to Y)", " (at least X)", " (at most Y)", or
 * without the parentheses (" from X to Y", " of at least X") when !PAREN;
 * "" when unbounded. */
static void conf_fmt_range(const struct conf_key *k, conf_fmt_fn *fmt, bool paren, char *buf,
			   size_t len)
{
	long long lo, hi, none = k->type == CONF_INT ? LLONG_MIN : 0;
	char a[32], b[32];
	conf_bounds(k, &lo, &hi);
	fmt(lo, a, sizeof a);
	fmt(hi, b, sizeof b);
	if (lo == none && hi == LLONG_MAX)
		buf[0] = '\0';
	else if (hi == LLONG_MAX)
		snprintf(buf, len, paren ? " (at least %s)" : " of at least %s", a);
	else if (lo == none)
		snprintf(buf, len, paren ? " (at most %s)" : " of at most %s", b);
	else
		snprintf(buf, len, paren ? " (from %s to %s)" : " from %s to %s", a, b);
}

static void conf_fmt_choices(const char *choices, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "one of ");
	for (const char *p = choices; *p && n + 1 < len; p++) {
		if (*p != '|') {
			buf[n++] = *p;
			continue;
		}
		buf[n++] = ',';
		if (n + 1 < len)
			buf[n++] = ' ';
	}
	buf[n < len ? n : len - 1] = '\0';
}

const char *conf_expected_form(const struct conf_key *k, char *buf, size_t buflen)
{
	char r[96];
	if (!buf || buflen < 2)
		return "a valid value";
	switch (k->type) {
	case CONF_INT:
		conf_fmt_range(k, conf_fmt_int, false, r, sizeof r);
		snprintf(buf, buflen, "an integer%s", r);
		break;
	case CONF_BOOL:
		snprintf(buf, buflen, "true or false");
		break;
	case CONF_STRING:
		snprintf(buf, buflen, k->dflt && !k->dflt[0] ? "a string" : "a non-empty string");
		break;
	case CONF_SIZE:
		conf_fmt_range(k, conf_fmt_size, true, r, sizeof r);
		snprintf(buf, buflen, "a size such as 64MiB%s", r);
		break;
	case CONF_DURATION:
		conf_fmt_range(k, conf_fmt_duration, true, r, sizeof r);
		snprintf(buf, buflen, "a duration such as 30s or 5m%s", r);
		break;
	case CONF_ENUM:
		conf_fmt_choices(k->choices ? k->choices : "", buf, buflen);
		break;
	default:
		snprintf(buf, buflen, "a valid value");
	}
	return buf;
}

/* ---- value parsers: true and *out set when TEXT is valid ---- */

static bool conf_parse_int(const char *t, long long *out)
{
	const char *d = (*t == '-' || *t == '+') ? t + 1 : t;
	char *end;
	if (!isdigit((unsigned char)*d))
		return false;
	errno = 0;
	long long v = strtoll(t, &end, 10);
	if (errno == ERANGE || *end)
		return false;
	*out = v;
	return true;
}

static bool conf_parse_bool(const char *t, long long *out)
{
	static const char *yes[] = {"true", "yes", "on", "1"};
	static const char *no[] = {"false", "no", "off", "0"};
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(t, yes[i]) == 0 || strcasecmp(t, no[i]) == 0) {
			*out = strcasecmp(t, yes[i]) == 0;
			return true;
		}
	}
	return false;
}

/* Leading decimal digits of *t into *v, advancing *t; false on none/overflow. */
static bool conf_parse_digits(const char **t, long long *v)
{
	char *end;
	if (!isdigit((unsigned char)**t))
		return false;
	errno = 0;
	*v = strtoll(*t, &end, 10);
	if (errno == ERANGE)
		return false;
	*t = end;
	while (**t == ' ' || **t == '\t')
		(*t)++;
	return true;
}

static bool conf_parse_size(const char *t, long long *out)
{
	static const char *sfx[] = {"", "b", "k", "kb", "kib", "m", "mb", "mib",
				    "g", "gb", "gib", "t", "tb", "tib"};
	long long v;
	if (!conf_parse_digits(&t, &v))
		return false;
	for (int i = 0; i < 14; i++) {
		int shift = i < 2 ? 0 : 10 * ((i - 2) / 3 + 1);
		if (strcasecmp(t, sfx[i]) != 0)
			continue;
		if (v > (LLONG_MAX >> shift))
			return false;
		*out = v << shift;
		return true;
	}
	return false;
}

/* Optional ".ddd" after a duration's integer part: *num / *den. */
static bool conf_parse_fraction(const char **t, long long *num, long long *den)
{
	*num = 0;
	*den = 1;
	if (**t != '.')
		return true;
	(*t)++;
	if (!isdigit((unsigned char)**t))
		return false;
	for (; isdigit((unsigned char)**t); (*t)++) {
		if (*den < 1000000000) { /* digits past 1ns do not change the ms */
			*num = *num * 10 + (**t - '0');
			*den *= 10;
		}
	}
	return true;
}

static bool conf_parse_duration(const char *t, long long *out)
{
	static const struct { const char *sfx; long long ms; } units[] = {
		{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
	long long ip, num, den;
	char *end;
	if (!isdigit((unsigned char)*t))
		return false;
	errno = 0;
	ip = strtoll(t, &end, 10);
	t = end;
	if (errno == ERANGE || !conf_parse_fraction(&t, &num, &den))
		return false;
	while (*t == ' ' || *t == '\t')
		t++;
	for (int i = 0; i < 6; i++) {
		if (strcasecmp(t, units[i].sfx) != 0)
			continue;
		long long frac = (num * units[i].ms + den / 2) / den;
		if (ip > (LLONG_MAX - frac) / units[i].ms)
			return false;
		*out = ip * units[i].ms + frac;
		return true;
	}
	return false;
}

static bool conf_parse_enum(const char *choices, const char *t)
{
	size_t len = strlen(t);
	for (const char *p = choices; p; p = strchr(p, '|') ? strchr(p, '|') + 1 : NULL) {
		size_t n = strcspn(p, "|");
		if (n == len && len && strncmp(p, t, n) == 0)
			return true;
	}
	return false;
}

/* Whether TEXT is a valid value for K; numbers (and bools) go to *n. */
static bool conf_check(const struct conf_key *k, const char *t, long long *n)
{
	long long lo, hi;
	bool ok;
	*n = 0;
	conf_bounds(k, &lo, &hi);
	switch (k->type) {
	case CONF_INT: ok = conf_parse_int(t, n); break;
	case CONF_SIZE: ok = conf_parse_size(t, n); break;
	case CONF_DURATION: ok = conf_parse_duration(t, n); break;
	case CONF_BOOL: return conf_parse_bool(t, n);
	case CONF_STRING: return t[0] || (k->dflt && !k->dflt[0]);
	case CONF_ENUM: return k->choices && conf_parse_enum(k->choices, t);
	default: return false;
	}
	return ok && *n >= lo && *n <= hi;
}

/* ---- the table ---- */

static long conf_find(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->nkeys; i++)
		if (strcmp(c->keys[i].name, name) == 0)
			return (long)i;
	return -1;
}

/* Fill V from TEXT for K (already checked); -1 on out of memory. */
static int conf_store(const struct conf_key *k, const char *t, long long n, struct conf_val *v)
{
	v->n = n;
	v->s = NULL;
	if (k->type != CONF_STRING && k->type != CONF_ENUM)
		return 0;
	v->s = xstrdup(t);
	return v->s ? 0 : -1;
}

/* Key I's declaration and default; -1 (said on stderr) when it is a bug. */
static int conf_default(struct conf *c, size_t i)
{
	const struct conf_key *k = &c->keys[i];
	char form[256];
	long long n;
	if (!k->name || !k->dflt || (k->type == CONF_ENUM && !k->choices)) {
		fprintf(stderr, "conf: key #%zu '%s': no default or no choices declared\n", i,
			k->name ? k->name : "(null)");
		return -1;
	}
	if ((size_t)conf_find(c, k->name) != i) {
		fprintf(stderr, "conf: key '%s' declared twice\n", k->name);
		return -1;
	}
	if (!conf_check(k, k->dflt, &n)) {
		fprintf(stderr, "conf: key '%s': default '%s' is not valid: expected %s\n", k->name,
			k->dflt, conf_expected_form(k, form, sizeof form));
		return -1;
	}
	return conf_store(k, k->dflt, n, &c->vals[i]);
}

struct conf *conf_new(const struct conf_key *keys, size_t nkeys)
{
	struct conf *c = xcalloc(1, sizeof *c);
	c->keys = keys;
	c->nkeys = nkeys;
	c->vals = xcalloc(nkeys ? nkeys : 1, sizeof *c->vals);
	for (size_t i = 0; i < nkeys; i++) {
		if (conf_default(c, i) < 0) {
			conf_free(c);
			return NULL;
		}
	}
	return c;
}

void conf_free(struct conf *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nkeys; i++)
		free(c->vals[i].s);
	free(c->vals);
	free(c);
}

int conf_warnings(const struct conf *c)
{
	return c->warnings;
}

/* ---- staging: one source's values, committed all at once ---- */

static int conf_src_init(struct conf_src *s, struct conf *c, const char *name, char *err,
			 size_t errlen)
{
	*s = (struct conf_src){.c = c, .name = name, .err = err, .errlen = errlen};
	if (err && errlen)
		err[0] = '\0';
	s->stage = xcalloc(c->nkeys ? c->nkeys : 1, sizeof *s->stage);
	return s->stage ? 0 : conf_fail(s, "%s: out of memory", name);
}

/* Commit the staged values when rc is 0, drop them otherwise; returns rc. */
static int conf_src_done(struct conf_src *s, int rc)
{
	for (size_t i = 0; i < s->c->nkeys; i++) {
		struct conf_stage *st = &s->stage[i];
		if (!st->set)
			continue;
		if (rc == 0) {
			free(s->c->vals[i].s);
			s->c->vals[i] = st->v;
		} else {
			free(st->v.s);
		}
	}
	free(s->stage);
	return rc;
}

/* KEY = TEXT read at LINE (0 for conf_set): stage it, or warn, or fail. */
static int conf_apply(struct conf_src *s, const char *name, const char *text, size_t line)
{
	char buf[4200], form[256];
	const char *where = conf_where(s, line, buf, sizeof buf);
	long i = conf_find(s->c, name);
	long long n;
	if (i < 0) {
		if (!line)
			return conf_fail(s, "%s: unknown key '%s'", where, name);
		log_warn("%s: unknown key '%s' ignored", where, name);
		s->c->warnings++;
		return 0;
	}
	const struct conf_key *k = &s->c->keys[i];
	struct conf_stage *st = &s->stage[i];
	if (!conf_check(k, text, &n))
		return conf_fail(s, "%s: %s: '%s' is not valid: expected %s", where, name, text,
				 conf_expected_form(k, form, sizeof form));
	if (st->set) {
		log_warn("%s: key '%s' repeated (first set at line %zu): the later value wins",
			 where, name, st->line);
		s->c->warnings++;
		free(st->v.s);
		st->set = false;
	}
	if (conf_store(k, text, n, &st->v) < 0)
		return conf_fail(s, "%s: out of memory", where);
	st->set = true;
	st->line = line;
	return 0;
}

/* ---- XAPI legacy form: key = value ---- */

static bool conf_keychar(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_' || ch == '.' || ch == '-';
}

static char *conf_skip_ws(char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Does LINE (NUL- or newline-terminated) look like "key = ..."? */
static bool conf_is_legacy_line(const char *p)
{
	const char *k = p;
	while (conf_keychar(*p))
		p++;
	if (p == k)
		return false;
	while (*p == ' ' || *p == '\t')
		p++;
	return *p == '=';
}

/* The form is decided by the first line that is neither blank nor a comment. */
static bool conf_is_legacy(const char *buf)
{
	for (const char *p = buf; p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		const char *q = p + strspn(p, " \t\r");
		if (*q == '\n' || *q == '#')
			continue;
		return *q && conf_is_legacy_line(p);
	}
	return false;
}

/* A quoted value at P (after its quote char): unquote in place into *val. */
static int conf_legacy_quoted(struct conf_src *s, char *p, size_t line, const char *key, char **val)
{
	char q = *p++, *w = p;
	*val = p;
	for (; *p && *p != q; p++) {
		if (q == '"' && *p == '\\' && (p[1] == '"' || p[1] == '\\'))
			p++;
		*w++ = *p;
	}
	if (!*p)
		return conf_fail(s, "%s:%zu: %s: unterminated quoted value", s->name, line, key);
	p = conf_skip_ws(p + 1);
	while (*p == '\r')
		p++;
	if (*p && *p != '#')
		return conf_fail(s, "%s:%zu: %s: unexpected text after the quoted value", s->name,
				 line, key);
	*w = '\0';
	return 0;
}

/* The value at P: quoted, or up to a '#' with surrounding blanks trimmed. */
static int conf_legacy_value(struct conf_src *s, char *p, size_t line, const char *key, char **val)
{
	if (*p == '"' || *p == '\'')
		return conf_legacy_quoted(s, p, line, key, val);
	*val = p;
	p[strcspn(p, "#")] = '\0';
	size_t n = strlen(p);
	while (n && isspace((unsigned char)p[n - 1]))
		p[--n] = '\0';
	return 0;
}

static int conf_legacy_line(struct conf_src *s, char *p, size_t line)
{
	char *key, *end, *val;
	p = conf_skip_ws(p);
	if (!*p || *p == '#' || strspn(p, " \t\r") == strlen(p))
		return 0;
	key = p;
	while (conf_keychar(*p))
		p++;
	end = p;
	p = conf_skip_ws(p);
	if (end == key || *p != '=')
		return conf_fail(s, "%s:%zu: expected 'key = value'", s->name, line);
	*end = '\0';
	if (conf_legacy_value(s, conf_skip_ws(p + 1), line, key, &val) < 0)
		return -1;
	return conf_apply(s, key, val, line);
}

static int conf_legacy(struct conf_src *s, char *buf)
{
	size_t line = 0;
	for (char *p = buf; p;) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		if (conf_legacy_line(s, p, ++line) < 0)
			return -1;
		p = nl ? nl + 1 : NULL;
	}
	return 0;
}

/* ---- YAML form ---- */

static int conf_yaml_next(struct conf_src *s, yaml_parser_t *p, yaml_event_t *ev)
{
	if (yaml_parser_parse(p, ev))
		return 0;
	return conf_fail(s, "%s:%zu: YAML syntax error: %s", s->name, p->problem_mark.line + 1,
			 p->problem ? p->problem : "unknown error");
}

static int conf_yaml_mapping(struct conf_src *s, yaml_parser_t *p, const char *prefix, int depth);

/* The value event VAL of key NAME (at LINE): a scalar, or a section. */
static int conf_yaml_value(struct conf_src *s, yaml_parser_t *p, const char *name, size_t line,
			   const yaml_event_t *val, int depth)
{
	switch (val->type) {
	case YAML_SCALAR_EVENT:
		return conf_apply(s, name, (const char *)val->data.scalar.value, line);
	case YAML_MAPPING_START_EVENT:
		if (depth >= CONF_MAX_DEPTH)
			return conf_fail(s, "%s:%zu: %s: sections nested too deeply", s->name, line,
					 name);
		return conf_yaml_mapping(s, p, name, depth + 1);
	default:
		return conf_fail(s, "%s:%zu: %s: expected a single value", s->name, line, name);
	}
}

static char *conf_join(const char *prefix, const char *key)
{
	size_t a = strlen(prefix), b = strlen(key);
	char *r = xmalloc(a + b + 2);
	memcpy(r, prefix, a);
	r[a] = '.';
	memcpy(r + (a ? a + 1 : 0), key, b + 1);
	return r;
}

/* One "key: value" pair whose key event is KEY. */
static int conf_yaml_pair(struct conf_src *s, yaml_parser_t *p, const char *prefix,
			  const yaml_event_t *key, int depth)
{
	size_t line = key->start_mark.line + 1;
	yaml_event_t val;
	if (key->type != YAML_SCALAR_EVENT)
		return conf_fail(s, "%s:%zu: expected a plain key", s->name, line);
	char *name = conf_join(prefix, (const char *)key->data.scalar.value);
	if (!name)
		return conf_fail(s, "%s: out of memory", s->name);
	int rc = conf_yaml_next(s, p, &val);
	if (rc == 0) {
		rc = conf_yaml_value(s, p, name, line, &val, depth);
		yaml_event_delete(&val);
	}
	free(name);
	return rc;
}

/* The pairs of a mapping whose start was consumed, through its end. */
static int conf_yaml_mapping(struct conf_src *s, yaml_parser_t *p, const char *prefix, int depth)
{
	for (;;) {
		yaml_event_t key;
		if (conf_yaml_next(s, p, &key) < 0)
			return -1;
		if (key.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&key);
			return 0;
		}
		int rc = conf_yaml_pair(s, p, prefix, &key, depth);
		yaml_event_delete(&key);
		if (rc < 0)
			return -1;
	}
}

/* A document's root: a mapping, or nothing at all (a null scalar). */
static int conf_yaml_root(struct conf_src *s, yaml_parser_t *p, const yaml_event_t *ev)
{
	size_t line = ev->start_mark.line + 1;
	switch (ev->type) {
	case YAML_MAPPING_START_EVENT:
		return conf_yaml_mapping(s, p, "", 0);
	case YAML_SCALAR_EVENT:
		if (ev->data.scalar.length == 0 && ev->data.scalar.plain_implicit)
			return 0;
		/* fallthrough */
	case YAML_SEQUENCE_START_EVENT:
	case YAML_ALIAS_EVENT:
		return conf_fail(s, "%s:%zu: expected 'key: value' lines", s->name, line);
	default:
		return 0; /* stream and document start/end */
	}
}

static int conf_yaml(struct conf_src *s, const char *buf, size_t len)
{
	yaml_parser_t p;
	int rc = 0;
	if (!yaml_parser_initialize(&p))
		return conf_fail(s, "%s: out of memory", s->name);
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
	for (bool end = false; !end && rc == 0;) {
		yaml_event_t ev;
		rc = conf_yaml_next(s, &p, &ev);
		if (rc < 0)
			break;
		end = ev.type == YAML_STREAM_END_EVENT;
		rc = conf_yaml_root(s, &p, &ev);
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	return rc;
}

/* ---- loading ---- */

/* The whole of PATH, NUL-terminated, in *buf; -1 with the error set. */
static int conf_read(struct conf_src *s, const char *path, char **buf, size_t *len)
{
	FILE *f = fopen(path, "re");
	size_t cap = 4096, n = 0, r;
	char *b = NULL, *nb;
	if (!f)
		return conf_fail(s, "%s: cannot open: %s", path, strerror(errno));
	do {
		if (!(nb = xrealloc(b, cap + 1))) {
			free(b);
			fclose(f);
			return conf_fail(s, "%s: out of memory", path);
		}
		b = nb;
		r = fread(b + n, 1, cap - n, f);
		n += r;
		if (n == cap)
			cap *= 2;
	} while (r > 0);
	if (ferror(f)) {
		int e = errno;
		free(b);
		fclose(f);
		return conf_fail(s, "%s: cannot read: %s", path, strerror(e));
	}
	fclose(f);
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

/* A NUL byte would cut lines short silently: refuse it, with its line. */
static int conf_check_nul(struct conf_src *s, const char *buf, size_t len)
{
	const char *z = memchr(buf, '\0', len);
	size_t line = 1;
	if (!z)
		return 0;
	for (const char *p = buf; p < z; p++)
		line += *p == '\n';
	return conf_fail(s, "%s:%zu: NUL byte in file", s->name, line);
}

int conf_load(struct conf *c, const char *path, char *err, size_t errlen)
{
	struct conf_src s;
	char *buf = NULL, *text;
	size_t len = 0;
	if (conf_src_init(&s, c, path, err, errlen) < 0)
		return -1;
	if (conf_read(&s, path, &buf, &len) < 0)
		return conf_src_done(&s, -1);
	text = buf;
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) { /* UTF-8 byte order mark */
		text += 3;
		len -= 3;
	}
	int rc = conf_check_nul(&s, text, len);
	if (rc == 0)
		rc = conf_is_legacy(text) ? conf_legacy(&s, text) : conf_yaml(&s, text, len);
	free(buf);
	return conf_src_done(&s, rc);
}

int conf_set(struct conf *c, const char *key, const char *value, const char *origin,
	     char *err, size_t errlen)
{
	struct conf_src s;
	if (conf_src_init(&s, c, origin ? origin : "conf_set", err, errlen) < 0)
		return -1;
	if (!key || !value)
		return conf_src_done(&s, conf_fail(&s, "%s: no key or no value", s.name));
	return conf_src_done(&s, conf_apply(&s, key, value, 0));
}

/* ---- getters ---- */

static const struct conf_val *conf_get(const struct conf *c, const char *key, enum conf_type a,
				       enum conf_type b)
{
	long i = c && key ? conf_find(c, key) : -1;
	if (i < 0) {
		fprintf(stderr, "conf: key '%s' is not declared\n", key ? key : "(null)");
		abort();
	}
	if (c->keys[i].type != a && c->keys[i].type != b) {
		fprintf(stderr, "conf: key '%s' read as the wrong type\n", key);
		abort();
	}
	return &c->vals[i];
}

long long conf_int(const struct conf *c, const char *key)
{
	return conf_get(c, key, CONF_INT, CONF_SIZE)->n;
}

long long conf_duration_ms(const struct conf *c, const char *key)
{
	return conf_get(c, key, CONF_DURATION, CONF_DURATION)->n;
}

bool conf_bool(const struct conf *c, const char *key)
{
	return conf_get(c, key, CONF_BOOL, CONF_BOOL)->n != 0;
}

const char *conf_str(const struct conf *c, const char *key)
{
	return conf_get(c, key, CONF_STRING, CONF_ENUM)->s;
}

int conf_set_args(struct conf *c, char *const *sets, int nsets, char *err, size_t errlen)
{
	for (int i = 0; i < nsets; i++) {
		const char *eq = strchr(sets[i], '=');
		if (!eq) {
			snprintf(err, errlen, "--set %s: expected KEY=VALUE", sets[i]);
			return -1;
		}
		char key[256];
		snprintf(key, sizeof key, "%.*s", (int)(eq - sets[i]), sets[i]);
		if (conf_set(c, key, eq + 1, "--set", err, errlen) < 0)
			return -1;
	}
	return 0;
}
