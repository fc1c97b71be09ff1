/* agent_proto.c - the poold <-> agent method table and its checks (see agent_proto.h). */
#include <stdio.h>
#include <string.h>
#include "agent_proto.h"
#include "tls.h"
#include "xerr.h"

/* The table is built once from AGENT_METHODS: the parameter text
 * ("vm:s,hard:b") is parsed into names and types the first time. */
static const struct {
	const char *name;
	enum aproto_caller caller;
	bool later;
	const char *params;
} rows[AGENT_NMETHODS] = {
#define AP_ROW(id, name, caller, later, params) [AGENT_##id] = {name, caller, later, params},
	AGENT_METHODS(AP_ROW)
#undef AP_ROW
};

static struct aproto_method table[AGENT_NMETHODS];
static bool table_ready;

static enum aproto_type type_of(char t)
{
	switch (t) {
	case 'b': return AP_BOOL;
	case 'i': return AP_INT;
	case 'o': return AP_OBJECT;
	case 'c': return AP_DOMCFG;
	default: return AP_STRING;
	}
}

static void parse_params(struct aproto_method *m, const char *text)
{
	while (*text && m->am_nparams < AP_MAX_PARAMS) {
		struct aproto_param *p = &m->am_params[m->am_nparams++];
		size_t n = strcspn(text, ":");
		snprintf(p->ap_name, sizeof p->ap_name, "%.*s", (int)n, text);
		text += n;
		p->ap_type = *text == ':' ? type_of(text[1]) : AP_STRING;
		text += strcspn(text, ",");
		if (*text == ',')
			text++;
	}
}

/* Built on first use from the constant rows; both daemons call it from
 * their main thread before any other thread exists. */
static void table_init(void)
{
	if (table_ready)
		return;
	for (int i = 0; i < AGENT_NMETHODS; i++) {
		table[i] = (struct aproto_method){(enum agent_method)i, rows[i].name, rows[i].caller, rows[i].later, 0,
						  {{"", AP_STRING}}};
		parse_params(&table[i], rows[i].params);
	}
	table_ready = true;
}

const struct aproto_method *aproto_method(enum agent_method m)
{
	table_init();
	return (unsigned)m < AGENT_NMETHODS ? &table[m] : NULL;
}

const struct aproto_method *aproto_find(const char *name)
{
	table_init();
	for (int i = 0; name && i < AGENT_NMETHODS; i++)
		if (strcmp(table[i].am_name, name) == 0)
			return &table[i];
	return NULL;
}

static bool type_ok(enum aproto_type t, const json_t *v)
{
	switch (t) {
	case AP_STRING: return json_is_string(v);
	case AP_BOOL: return json_is_boolean(v);
	case AP_INT: return json_is_integer(v);
	case AP_OBJECT:
	case AP_DOMCFG: return json_is_object(v);
	}
	return false;
}

json_t *aproto_check(const struct aproto_method *m, const json_t *params)
{
	if (!json_is_array(params) || json_array_size(params) != m->am_nparams) {
		char want[16], got[16];
		snprintf(want, sizeof want, "%zu", m->am_nparams);
		snprintf(got, sizeof got, "%zu", json_array_size(params));
		return xerr_new(XE_MESSAGE_PARAMETER_COUNT_MISMATCH, m->am_name, want, got, NULL);
	}
	for (size_t i = 0; i < m->am_nparams; i++) {
		const json_t *v = json_array_get(params, i);
		if (!type_ok(m->am_params[i].ap_type, v))
			return xerr_new(XE_FIELD_TYPE_ERROR, m->am_params[i].ap_name, NULL);
		if (m->am_params[i].ap_type == AP_DOMCFG) {
			struct be_domain_config c;
			json_t *e = dcfg_from_json(v, &c);
			if (e)
				return e;
		}
	}
	return NULL;
}

bool aproto_peer_is_master(const char *peer_cn)
{
	return peer_cn && strcmp(peer_cn, TLS_MASTER_CN) == 0;
}

bool aproto_caller_allowed(const struct aproto_method *m, const char *peer_cn)
{
	if (!peer_cn || !*peer_cn)
		return false;
	/* a peer's call must also carry its one-time token, checked by the method */
	return m->am_caller == AP_PEER || aproto_peer_is_master(peer_cn);
}
