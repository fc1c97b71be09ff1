/*
 * xerr.h - XAPI errors as values.
 *
 * An error is a jansson array ["CODE", "param", ...]: the same shape as a
 * task's error_info and as the "data" of a JSON-RPC error object, so it
 * travels from the function that found the problem to the wire unchanged.
 * Functions that can fail with a user-facing error return json_t * (NULL on
 * success); the caller owns the returned reference.
 */
#ifndef XERR_H
#define XERR_H

#include <stdbool.h>
#include <jansson.h>
#include "xapi_errors.h"

/* New error; the variadic arguments are const char * parameters ended by
 * NULL. The count must equal the declared one (abort() otherwise: a bug). */
json_t *xerr_new(enum xapi_err code, ...);
/* Same, with printf-formatted message as its single free-text parameter
 * appended after the fixed ones (for INTERNAL_ERROR, OPERATION_NOT_ALLOWED). */
json_t *xerr_newf(enum xapi_err code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
const char *xerr_code_name(enum xapi_err code);
/* Declared parameter names ("vm,expected,actual"); "" when none. */
const char *xerr_param_names(enum xapi_err code);
int xerr_param_count(enum xapi_err code);
/* XAPI's sentence describing the error ("" when it has none). */
const char *xerr_doc(enum xapi_err code);
/* Lookup by name; -1 when unknown. */
int xerr_code_from_name(const char *name);
/* The code string of an error value (its first element). */
const char *xerr_code_of(const json_t *err);
/* Is err an error of this code? (compare codes, never texts) */
bool xerr_is(const json_t *err, enum xapi_err code);
/* "CODE: p1, p2" for logs and the CLI; caller frees. */
char *xerr_to_text(const json_t *err);

#endif
