/*
 * config.c - what poold hands a host when it arms HA (agent.ha_arm):
 * the generation, the statefile, the key that signs every slot and beat,
 * the timeout and the members, checked and sorted by uuid so that every
 * host numbers them alike (index 0: the lowest uuid, the tie-breaker).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ha.h"
#include "xerr.h"

int ha_hex_decode(const char *hex, unsigned char *out, size_t len)
{
	if (!hex || strlen(hex) != 2 * len)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return 0;
}

void ha_hex_encode(const unsigned char *in, size_t len, char *out)
{
	for (size_t i = 0; i < len; i++)
		sprintf(out + 2 * i, "%02x", in[i]);
	out[2 * len] = '\0';
}

int ha_member_index(const struct ha_config *c, const char *uuid)
{
	for (int i = 0; i < c->hc_n; i++)
		if (strcmp(c->hc_members[i].hm_uuid, uuid) == 0)
			return i;
	return -1;
}

json_t *ha_set_uuids(const struct ha_config *c, ha_set s)
{
	json_t *a = json_array();
	for (int i = 0; i < c->hc_n; i++)
		if (s & HA_BIT(i))
			json_array_append_new(a, json_string(c->hc_members[i].hm_uuid));
	return a;
}

static int by_uuid(const void *a, const void *b)
{
	return strcmp(((const struct ha_member *)a)->hm_uuid, ((const struct ha_member *)b)->hm_uuid);
}

static json_t *bad(const char *field, const char *value)
{
	return xerr_new(XE_INVALID_VALUE, field, value ? value : "", NULL);
}

static bool copy(char *dst, size_t n, const char *src)
{
	if (!src || !*src || strlen(src) >= n)
		return false;
	memcpy(dst, src, strlen(src) + 1);
	return true;
}

static json_t *parse_members(const json_t *members, struct ha_config *out)
{
	size_t i;
	json_t *m;
	if (!json_is_array(members) || json_array_size(members) < 1 || json_array_size(members) > HA_MAX_HOSTS)
		return bad("members", "1 to 64 hosts");
	json_array_foreach(members, i, m) {
		struct ha_member *hm = &out->hc_members[i];
		json_int_t port = json_integer_value(json_object_get(m, "port"));
		if (!copy(hm->hm_uuid, sizeof hm->hm_uuid, json_string_value(json_object_get(m, "uuid"))) ||
		    !copy(hm->hm_address, sizeof hm->hm_address, json_string_value(json_object_get(m, "address"))) ||
		    port <= 0 || port > 65535)
			return bad("members", "each needs uuid, address and port");
		hm->hm_port = (int)port;
	}
	out->hc_n = (int)json_array_size(members);
	qsort(out->hc_members, (size_t)out->hc_n, sizeof *out->hc_members, by_uuid);
	for (int k = 1; k < out->hc_n; k++)
		if (strcmp(out->hc_members[k].hm_uuid, out->hc_members[k - 1].hm_uuid) == 0)
			return bad("members", out->hc_members[k].hm_uuid);
	return NULL;
}

json_t *ha_config_parse(const json_t *j, const char *self_uuid, struct ha_config *out)
{
	memset(out, 0, sizeof *out);
	json_int_t t = json_integer_value(json_object_get(j, "timeout"));
	if (!copy(out->hc_generation, sizeof out->hc_generation, json_string_value(json_object_get(j, "generation"))))
		return bad("generation", "");
	if (!copy(out->hc_statefile, sizeof out->hc_statefile, json_string_value(json_object_get(j, "statefile"))) ||
	    out->hc_statefile[0] != '/')
		return bad("statefile", json_string_value(json_object_get(j, "statefile")));
	if (ha_hex_decode(json_string_value(json_object_get(j, "key")), out->hc_key, HA_KEY_LEN) < 0)
		return bad("key", "64 hex digits");
	if (t < HA_MIN_TIMEOUT_S || t > HA_MAX_TIMEOUT_S) {
		char v[32];
		snprintf(v, sizeof v, "%lld", (long long)t);
		return bad("timeout", v);
	}
	out->hc_timeout_ms = (int64_t)t * 1000;
	json_t *e = parse_members(json_object_get(j, "members"), out);
	if (e)
		return e;
	out->hc_self = ha_member_index(out, self_uuid ? self_uuid : "");
	if (out->hc_self < 0)
		return bad("members", "this host is not one of them");
	size_t i;
	json_t *u;
	json_array_foreach(json_object_get(j, "expect"), i, u) {
		int k = ha_member_index(out, json_string_value(u) ? json_string_value(u) : "");
		if (k < 0)
			return bad("expect", json_string_value(u));
		out->hc_expect |= HA_BIT(k);
	}
	return NULL;
}
