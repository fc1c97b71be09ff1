/*
 * conf.h - xapi.conf: declared keys, typed values, loud errors.
 *
 * Each program declares the keys it reads in one table (struct conf_key).
 * conf_load() reads a file in either form:
 *   YAML (libyaml):   evacuation-batch-size: 4        sections: "ha:" then
 *                                                     indented "timeout: 30"
 *                                                     -> key "ha.timeout"
 *   XAPI legacy:      evacuation-batch-size = 4       (# comments, blank lines)
 * so an operator's existing /etc/xapi.conf tweak keeps working.
 * An unknown key is a warning naming file:line (logged through log.h and
 * counted). A bad value is an error "FILE:LINE: KEY: VALUE: expected FORM"
 * and conf_load() fails: the daemon refuses to start, never a silent default.
 */
#ifndef CONF_H
#define CONF_H

#include <stdbool.h>
#include <stddef.h>

enum conf_type {
	CONF_INT,      /* decimal integer within [min, max] */
	CONF_BOOL,     /* true|false|yes|no|on|off|1|0 */
	CONF_STRING,   /* any text (non-empty unless dflt is "") */
	CONF_SIZE,     /* bytes: 1048576, 512KiB, 64MiB, 2GiB, 1TiB, also K/M/G/T as binary; [min,max] */
	CONF_DURATION, /* seconds: 30, 30s, 5m, 2h, 1d, 250ms (rounded to ms); stored in ms; [min,max] in ms */
	CONF_ENUM,     /* one of the '|'-separated words in .choices */
};

struct conf_key {
	const char *name;     /* "evacuation-batch-size" or "ha.timeout" */
	enum conf_type type;
	const char *dflt;     /* default, written as the file would (parsed like a file value) */
	long long min, max;   /* CONF_INT / CONF_SIZE / CONF_DURATION bounds (inclusive) */
	const char *choices;  /* CONF_ENUM: "debug|info|warn|error" */
	const char *why;      /* one line: what it does and why the default */
};

struct conf;

/* A configuration holding every key's default. NULL on out of memory or a
 * table whose default does not parse (a bug, reported on stderr). */
struct conf *conf_new(const struct conf_key *keys, size_t nkeys);
void conf_free(struct conf *c);

/* Read FILE over the defaults. 0 on success (warnings for unknown keys may
 * have been logged; conf_warnings() counts them); -1 with a message in err
 * (file missing or unreadable, YAML syntax error with line, bad value). */
int conf_load(struct conf *c, const char *path, char *err, size_t errlen);
/* Set one key from text as if read from "origin" (used for command-line
 * overrides such as --set key=value). Same errors as conf_load. */
int conf_set(struct conf *c, const char *key, const char *value, const char *origin,
	     char *err, size_t errlen);
int conf_warnings(const struct conf *c);
/* Apply command-line overrides "KEY=VALUE" (--set) in order; the same
 * errors as conf_set, or "--set X: expected KEY=VALUE". */
int conf_set_args(struct conf *c, char *const *sets, int nsets, char *err, size_t errlen);

/* Typed getters. Asking for an undeclared key or the wrong type aborts (a bug). */
long long conf_int(const struct conf *c, const char *key);       /* CONF_INT, CONF_SIZE */
long long conf_duration_ms(const struct conf *c, const char *key); /* CONF_DURATION */
bool conf_bool(const struct conf *c, const char *key);
const char *conf_str(const struct conf *c, const char *key);     /* CONF_STRING, CONF_ENUM */

/* Human-readable form of an expected value ("an integer from 1 to 1000",
 * "a size such as 64MiB", ...) used in error messages; static storage. */
const char *conf_expected_form(const struct conf_key *k, char *buf, size_t buflen);

#endif
