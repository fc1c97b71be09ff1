/*
 * xmlrpc.h - XAPI's XML-RPC: values, calls and answers, beside JSON-RPC.
 *
 * Values travel inside poold as jansson values whatever the protocol; this
 * module turns them into XML-RPC text as XAPI writes it (xmlrpc.c) and
 * reads XML-RPC calls into them (xmlrpc_parse.c, with expat).
 *
 * XAPI's typing (doc/content/xen-api/wire-protocol.md, ocaml-rpc's
 * Xmlrpc): strings, refs, uuids, enums and 64-bit ints are untyped
 * <value>text</value> (an int is its decimal digits: XML-RPC's <i4> is 32
 * bits); floats <double>, bools <boolean>, datetimes <dateTime.iso8601>,
 * sets <array>, maps and records <struct>; void is "". JSON cannot tell a
 * datetime from a string, nor a whole float from an int, so an answer is
 * encoded with a type (struct xr_type) taken from the model.
 *
 * Every answer is the struct {Status: Success, Value: v} or {Status:
 * Failure, ErrorDescription: [code, params...]}, except system.listMethods,
 * whose array XAPI sends bare.
 */
#ifndef XMLRPC_H
#define XMLRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "model.h"

/* What a value stands for, where XML-RPC says more than JSON. */
enum xr_kind {
	XR_PLAIN,    /* by its JSON type */
	XR_DATETIME, /* a string that is an XAPI datetime */
	XR_RECORD,   /* a record of xt_class: its fields typed by the model */
	XR_RECORDS,  /* ref -> record of xt_class (get_all_records) */
	XR_EVENTS,   /* event.from's answer: each snapshot typed by its event's class */
};

struct xr_type {
	enum xr_kind xt_kind;
	const struct model_class *xt_class; /* XR_RECORD, XR_RECORDS */
};

/* Deepest nesting of values a call may carry (as JRPC_MAX_DEPTH). */
#define XMLRPC_MAX_DEPTH 64

/* ---- xmlrpc.c: JSON values to XML-RPC text (malloc'ed) ---- */

/* The <value> of v typed as t (NULL: XR_PLAIN); "" for NULL / JSON null
 * (a void task result). A null inside a container is an empty value. */
char *xmlrpc_value(const json_t *v, const struct xr_type *t);
/* A whole answer: {Status: Success, Value: v} (v NULL: void, ""). */
char *xmlrpc_ok(const json_t *v, const struct xr_type *t);
/* A whole answer with v bare, as XAPI answers system.listMethods. */
char *xmlrpc_bare(const json_t *v);
/* A whole answer: {Status: Failure, ErrorDescription: xerr}. */
char *xmlrpc_fail(const json_t *xerr);
/* A Success answer whose Value is a struct written in pieces (a streamed
 * get_all_records): head, then xmlrpc_members of each piece, then tail
 * make what xmlrpc_ok writes for the whole object. */
const char *xmlrpc_ok_struct_head(void);
const char *xmlrpc_ok_struct_tail(void);
/* The <member>s of object obj, a struct typed t (NULL: XR_PLAIN). */
char *xmlrpc_members(const json_t *obj, const struct xr_type *t);

/* ---- xmlrpc_parse.c: XML-RPC text to JSON values (expat) ---- */

/* A <methodCall>: 0 with *method (malloc'ed) and *params (a new array), or
 * -1 with *xerr, an XMLRPC_UNMARSHAL_FAILURE saying what was expected and
 * what came (bad XML, a DTD, nesting deeper than XMLRPC_MAX_DEPTH, an
 * unknown type, a malformed int/double/boolean/base64). */
int xmlrpc_parse_call(const char *body, size_t len, char **method, json_t **params, json_t **xerr);
/* One <value> (a task's result): a new value, or NULL when text is not
 * exactly one well-formed value. */
json_t *xmlrpc_parse_value(const char *text, size_t len);

#endif
