/*
 * jsonrpc.h - JSON-RPC framing as XAPI speaks it, without any transport.
 *
 * Requests: {"jsonrpc":"2.0","method":M,"params":[...],"id":ID}; without
 * "jsonrpc" the request is version 1 and so is the answer. Answers:
 *   v2 ok:    {"jsonrpc":"2.0","result":R,"id":ID}
 *   v2 error: {"jsonrpc":"2.0","error":{"code":1,"message":CODE,"data":[params]},"id":ID}
 *   v1 ok:    {"result":R,"error":null,"id":ID}
 *   v1 error: {"result":null,"error":[CODE,params...],"id":ID}
 * Framing faults (not JSON, no method, params not a list) get the JSON-RPC
 * codes -32700 / -32600 with the reason in data.
 */
#ifndef JSONRPC_H
#define JSONRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

struct jrpc_req {
	char *jr_method;   /* owned */
	json_t *jr_params; /* owned array */
	json_t *jr_id;     /* owned */
	bool jr_v2;
};

/* Requests nest no deeper than this (XAPI's records need 4 or 5 levels):
 * deeper ones are refused before anything is allocated for them. */
#define JRPC_MAX_DEPTH 64
/* body's arrays and objects nest at most max deep (a scan, not a parse:
 * malformed text is left for the parser to refuse). */
bool jrpc_depth_ok(const char *body, size_t len, int max);

/* 0 and a filled request, or -1 and *error_text (malloc'ed, a complete
 * answer to send back). */
int jrpc_parse(const char *body, size_t len, struct jrpc_req *req, char **error_text);
void jrpc_req_clear(struct jrpc_req *req);

/* Complete answers (malloc'ed). result_json is the JSON text of the
 * result; NULL means void, which XAPI answers as "". */
char *jrpc_ok(const json_t *id, bool v2, const char *result_json);
char *jrpc_err(const json_t *id, bool v2, const json_t *xerr);
/* The envelope around a result written elsewhere: prefix + result +
 * suffix == jrpc_ok(). Both malloc'ed. */
char *jrpc_ok_prefix(bool v2);
char *jrpc_ok_suffix(const json_t *id, bool v2);

/* Client side: build a request (malloc'ed text). */
char *jrpc_request(const char *method, const json_t *params, long long id);
/* Client side: parse an answer. Returns 0 with *result (new ref), 1 with
 * *xerr (new ref, ["CODE", params...]), -1 when the text is not a valid
 * answer (reason in *xerr as INTERNAL_ERROR). */
int jrpc_parse_answer(const char *body, size_t len, json_t **result, json_t **xerr);

#endif
