/*
 * util.h - the few helpers every program here uses: one out-of-memory
 * policy, the monotonic clock, an error-buffer printf.
 *
 * Out of memory ends the process (abort, so a core and the sanitizers say
 * where): a daemon that cannot allocate a few bytes cannot keep its
 * promises anyway, and callers that test every malloc for NULL grow error
 * paths that are never run (Redis' zmalloc rule). util_json_init() installs
 * the same policy into jansson, so json_pack and friends never return NULL
 * for want of memory either.
 */
#ifndef UTIL_H
#define UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* jansson allocates through xmalloc (call once in main, before any thread). */
void util_json_init(void);
/* o[k] when it is a string, else "" (absent, null or another type) */
const char *jstr(const json_t *o, const char *k);

/* CLOCK_MONOTONIC in nanoseconds / milliseconds / seconds. */
uint64_t now_ns(void);
uint64_t now_ms(void);
int64_t now_s(void);

/* snprintf into an error buffer (err may be NULL); returns -1 so that
 * `return errf(err, len, "...")` reads as the failure it is. */
int errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
