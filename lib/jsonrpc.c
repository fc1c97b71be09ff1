/* jsonrpc.c - XAPI's JSON-RPC envelopes (see jsonrpc.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "jsonrpc.h"
#include "xerr.h"
#include "util.h"

static char *frame_error(int code, const char *message, const char *detail)
{
	json_t *o = json_pack("{s:s, s:{s:i, s:s, s:[s]}, s:n}", "jsonrpc", "2.0", "error", "code", code,
			      "message", message, "data", detail, "id");
	char *t = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return t;
}

void jrpc_req_clear(struct jrpc_req *req)
{
	free(req->jr_method);
	json_decref(req->jr_params);
	json_decref(req->jr_id);
	memset(req, 0, sizeof *req);
}

bool jrpc_depth_ok(const char *body, size_t len, int max)
{
	int depth = 0;
	bool in_string = false;
	for (size_t i = 0; i < len; i++) {
		char ch = body[i];
		if (in_string) {
			if (ch == '\\')
				i++; /* whatever is escaped cannot end the string */
			else if (ch == '"')
				in_string = false;
		} else if (ch == '"') {
			in_string = true;
		} else if (ch == '[' || ch == '{') {
			if (++depth > max)
				return false;
		} else if (ch == ']' || ch == '}') {
			depth--;
		}
	}
	return true;
}

int jrpc_parse(const char *body, size_t len, struct jrpc_req *req, char **error_text)
{
	memset(req, 0, sizeof *req);
	if (!jrpc_depth_ok(body, len, JRPC_MAX_DEPTH)) {
		char detail[96];
		snprintf(detail, sizeof detail, "nested deeper than %d levels", JRPC_MAX_DEPTH);
		*error_text = frame_error(-32700, "Parse error", detail);
		return -1;
	}
	json_error_t jerr;
	json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		char detail[256];
		snprintf(detail, sizeof detail, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
		*error_text = frame_error(-32700, "Parse error", detail);
		return -1;
	}
	const char *why = NULL;
	json_t *method = json_object_get(o, "method");
	json_t *params = json_object_get(o, "params");
	json_t *id = json_object_get(o, "id");
	json_t *ver = json_object_get(o, "jsonrpc");
	if (!json_is_object(o))
		why = "the request is not a JSON object";
	else if (!json_is_string(method))
		why = "\"method\" must be a string";
	else if (params && !json_is_array(params) && !json_is_object(params))
		why = "\"params\" must be a list";
	else if (!id || !(json_is_string(id) || json_is_number(id)))
		why = "\"id\" must be a number or a string";
	else if (ver && !(json_is_string(ver) && strcmp(json_string_value(ver), "2.0") == 0))
		why = "\"jsonrpc\" must be \"2.0\"";
	if (why) {
		*error_text = frame_error(-32600, "Invalid Request", why);
		json_decref(o);
		return -1;
	}
	req->jr_method = xstrdup(json_string_value(method));
	if (!params)
		req->jr_params = json_array();
	else if (json_is_object(params)) /* one struct parameter */
		req->jr_params = json_pack("[O]", params);
	else
		req->jr_params = json_incref(params);
	req->jr_id = json_incref(id);
	req->jr_v2 = ver != NULL;
	json_decref(o);
	return 0;
}

static char *id_text(const json_t *id)
{
	return json_dumps(id ? id : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
}

char *jrpc_ok_prefix(bool v2)
{
	return xstrdup(v2 ? "{\"jsonrpc\":\"2.0\",\"result\":" : "{\"result\":");
}

char *jrpc_ok_suffix(const json_t *id, bool v2)
{
	char *idt = id_text(id), *out = NULL;
	int n = asprintf(&out, v2 ? ",\"id\":%s}" : ",\"error\":null,\"id\":%s}", idt ? idt : "null");
	free(idt);
	return n < 0 ? NULL : out;
}

char *jrpc_ok(const json_t *id, bool v2, const char *result_json)
{
	char *pre = jrpc_ok_prefix(v2), *post = jrpc_ok_suffix(id, v2), *out = NULL;
	int n = pre && post ? asprintf(&out, "%s%s%s", pre, result_json ? result_json : "\"\"", post) : -1;
	free(pre);
	free(post);
	return n < 0 ? NULL : out;
}

char *jrpc_err(const json_t *id, bool v2, const json_t *xerr)
{
	json_t *o;
	if (v2) {
		json_t *data = json_array();
		for (size_t i = 1; i < json_array_size(xerr); i++)
			json_array_append(data, json_array_get(xerr, i));
		o = json_pack("{s:s, s:{s:i, s:s, s:o}, s:O}", "jsonrpc", "2.0", "error", "code", 1, "message",
			      xerr_code_of(xerr), "data", data, "id", id ? id : json_null());
	} else {
		o = json_pack("{s:n, s:O, s:O}", "result", "error", xerr, "id", id ? id : json_null());
	}
	char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return t;
}

char *jrpc_request(const char *method, const json_t *params, long long id)
{
	json_t *o = json_pack("{s:s, s:s, s:O, s:I}", "jsonrpc", "2.0", "method", method, "params",
			      params, "id", (json_int_t)id);
	char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return t;
}

int jrpc_parse_answer(const char *body, size_t len, json_t **result, json_t **xerr)
{
	*result = NULL;
	*xerr = NULL;
	json_error_t jerr;
	json_t *o = json_loadb(body, len, 0, &jerr);
	if (!json_is_object(o)) {
		*xerr = xerr_newf(XE_INTERNAL_ERROR, "the server's answer is not JSON: %s", o ? "not an object" : jerr.text);
		json_decref(o);
		return -1;
	}
	json_t *err = json_object_get(o, "error");
	int rc = 0;
	if (json_is_object(err)) {
		json_t *e = json_array();
		const char *msg = json_string_value(json_object_get(err, "message"));
		json_array_append_new(e, json_string(msg ? msg : "INTERNAL_ERROR"));
		json_t *data = json_object_get(err, "data");
		size_t i;
		json_t *v;
		if (json_is_array(data))
			json_array_foreach(data, i, v) json_array_append(e, v);
		*xerr = e;
		rc = 1;
	} else if (json_is_array(err)) {
		*xerr = json_incref(err);
		rc = 1;
	} else if (json_object_get(o, "result")) {
		*result = json_incref(json_object_get(o, "result"));
	} else {
		*xerr = xerr_newf(XE_INTERNAL_ERROR, "the server's answer has neither result nor error");
		rc = -1;
	}
	json_decref(o);
	return rc;
}
