/* model.c - lookups, defaults and value checks over the class tables. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/rand.h>
#include "model.h"

int model_schema_version(void)
{
	int v = 1;
	for (size_t i = 0; i < model_nclasses; i++)
		for (size_t j = 0; j < model_classes[i].mc_nfields; j++)
			if (model_classes[i].mc_fields[j].fld_since > v)
				v = model_classes[i].mc_fields[j].fld_since;
	return v;
}

const struct model_class *model_class_find(const char *name)
{
	for (size_t i = 0; i < model_nclasses; i++)
		if (strcmp(model_classes[i].mc_name, name) == 0)
			return &model_classes[i];
	return NULL;
}

const struct model_class *model_class_find_ci(const char *name)
{
	for (size_t i = 0; i < model_nclasses; i++)
		if (strcasecmp(model_classes[i].mc_name, name) == 0)
			return &model_classes[i];
	return NULL;
}

const struct model_class *model_class_by_cli(const char *cli)
{
	for (size_t i = 0; i < model_nclasses; i++)
		if (strcmp(model_classes[i].mc_cli, cli) == 0)
			return &model_classes[i];
	return NULL;
}

const struct model_field *model_field_find(const struct model_class *c, const char *name)
{
	for (size_t i = 0; i < c->mc_nfields; i++)
		if (strcmp(c->mc_fields[i].fld_name, name) == 0)
			return &c->mc_fields[i];
	return NULL;
}

json_t *model_default(const struct model_field *f)
{
	if (f->fld_dflt) {
		json_t *v = json_loads(f->fld_dflt, JSON_DECODE_ANY, NULL);
		if (v)
			return v;
	}
	switch (f->fld_type) {
	case FT_INT:
		return json_integer(0);
	case FT_FLOAT:
		return json_real(0.0);
	case FT_BOOL:
		return json_false();
	case FT_DATETIME:
		return json_string("19700101T00:00:00Z");
	case FT_REF:
		return json_string(MODEL_NULL_REF);
	case FT_SET_REF:
	case FT_SET_STRING:
		return json_array();
	case FT_MAP:
	case FT_MAP_ANY:
		return json_object();
	case FT_ENUM: {
		/* the first listed value */
		char buf[64];
		const char *bar = strchr(f->fld_target, '|');
		size_t n = bar ? (size_t)(bar - f->fld_target) : strlen(f->fld_target);
		snprintf(buf, sizeof buf, "%.*s", (int)n, f->fld_target);
		return json_string(buf);
	}
	case FT_STRING:
	default:
		return json_string("");
	}
}

static bool enum_has(const char *choices, const char *v)
{
	size_t n = strlen(v);
	for (const char *p = choices; p && *p;) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == n && strncmp(p, v, n) == 0)
			return true;
		p = bar ? bar + 1 : NULL;
	}
	return false;
}

static bool is_ref(const char *s)
{
	return strncmp(s, "OpaqueRef:", 10) == 0 && s[10] != '\0';
}

static bool datetime_ok(const char *s)
{
	/* 20261123T04:58:14Z, also accepted without the Z and with offsets by XAPI */
	int y, mo, d, h, mi, sec;
	char tail[8] = "";
	return sscanf(s, "%4d%2d%2dT%2d:%2d:%2d%7s", &y, &mo, &d, &h, &mi, &sec, tail) >= 6;
}

bool model_value_ok(const struct model_field *f, const json_t *v)
{
	size_t i;
	const char *k;
	json_t *e;
	switch (f->fld_type) {
	case FT_STRING:
		return json_is_string(v);
	case FT_INT:
		return json_is_integer(v);
	case FT_FLOAT:
		return json_is_number(v);
	case FT_BOOL:
		return json_is_boolean(v);
	case FT_DATETIME:
		return json_is_string(v) && datetime_ok(json_string_value(v));
	case FT_ENUM:
		return json_is_string(v) && enum_has(f->fld_target, json_string_value(v));
	case FT_REF:
		return json_is_string(v) && is_ref(json_string_value(v));
	case FT_SET_REF:
		if (!json_is_array(v))
			return false;
		json_array_foreach(v, i, e) if (!json_is_string(e) || !is_ref(json_string_value(e))) return false;
		return true;
	case FT_SET_STRING:
		if (!json_is_array(v))
			return false;
		json_array_foreach(v, i, e) if (!json_is_string(e)) return false;
		return true;
	case FT_MAP:
		if (!json_is_object(v))
			return false;
		json_object_foreach((json_t *)v, k, e) if (!json_is_string(e)) return false;
		return true;
	case FT_MAP_ANY:
		return json_is_object(v);
	}
	return false;
}

json_t *model_coerce(const struct model_field *f, json_t *v)
{
	const char *s = json_string_value(v);
	char *end;
	if (s && *s && f->fld_type == FT_INT) {
		errno = 0;
		long long n = strtoll(s, &end, 10);
		if (!*end && !errno)
			return json_integer(n);
	}
	if (s && *s && f->fld_type == FT_FLOAT) {
		double d = strtod(s, &end);
		if (!*end && isfinite(d))
			return json_real(d);
	}
	if (json_is_integer(v) && f->fld_type == FT_FLOAT)
		return json_real((double)json_integer_value(v));
	return json_incref(v);
}

void model_record_coerce(const struct model_class *c, json_t *rec)
{
	const char *k;
	json_t *v;
	json_object_foreach(rec, k, v) {
		const struct model_field *f = model_field_find(c, k);
		if (f)
			json_object_set_new(rec, k, model_coerce(f, v));
	}
}

json_t *model_new_record(const struct model_class *c)
{
	json_t *r = json_object();
	for (size_t i = 0; i < c->mc_nfields; i++)
		json_object_set_new(r, c->mc_fields[i].fld_name, model_default(&c->mc_fields[i]));
	return r;
}

void model_new_uuid(char *out)
{
	unsigned char b[16];
	if (RAND_bytes(b, sizeof b) != 1) {
		/* RAND_bytes failing means no entropy source: nothing sane remains */
		FILE *f = fopen("/dev/urandom", "rb");
		if (!f || fread(b, 1, sizeof b, f) != sizeof b)
			memset(b, 0, sizeof b);
		if (f)
			fclose(f);
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	sprintf(out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		b[13], b[14], b[15]);
}

void model_new_ref(char *out)
{
	memcpy(out, "OpaqueRef:", 10);
	model_new_uuid(out + 10);
}

bool model_is_uuid(const char *s)
{
	static const int dash[] = {8, 13, 18, 23};
	if (strlen(s) != 36)
		return false;
	for (int i = 0, d = 0; i < 36; i++) {
		if (d < 4 && i == dash[d]) {
			if (s[i] != '-')
				return false;
			d++;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

time_t model_time_parse(const char *s)
{
	struct tm tm = {0};
	if (!s || sscanf(s, "%4d%2d%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
			 &tm.tm_sec) != 6)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return timegm(&tm);
}

void model_now(char *out)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y%m%dT%H:%M:%SZ", &tm);
}
