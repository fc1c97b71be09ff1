/*
 * record.c - a host's word about itself, as it goes into its statefile
 * slot and into every network beat: a line of JSON and a line of
 * HMAC-SHA256 (keyed with the secret poold handed out when it armed HA)
 * over that JSON. A word whose MAC does not check is not a word: the SR
 * and the network may carry anything, only the pool's hosts can sign.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "ha.h"

#define MAC_HEX (2 * 32)

static void mac_hex(const unsigned char *key, const char *text, size_t len, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	HMAC(EVP_sha256(), key, HA_KEY_LEN, (const unsigned char *)text, len, md, &mdlen);
	ha_hex_encode(md, 32, out);
}

/* o (taken) as a signed record in buf: its JSON text, '\n', the MAC in hex,
 * '\n', zeros to len. Its length, or -1 when it does not fit. */
int ha_signed_encode(json_t *o, const unsigned char *key, char *buf, size_t len)
{
	char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	size_t n = text ? strlen(text) : 0;
	if (!text || n + 3 + MAC_HEX > len) { /* a zero after it: the slot stays a C string */
		free(text);
		return -1;
	}
	memset(buf, 0, len);
	memcpy(buf, text, n);
	buf[n] = '\n';
	mac_hex(key, text, n, buf + n + 1);
	buf[n + 1 + MAC_HEX] = '\n';
	free(text);
	return (int)(n + 2 + MAC_HEX);
}

/* The JSON object of a record signed with key, or NULL. */
json_t *ha_signed_decode(const char *buf, size_t len, const unsigned char *key)
{
	const char *nl = memchr(buf, '\n', len);
	if (!nl || nl == buf || len - (size_t)(nl - buf) - 1 < MAC_HEX)
		return NULL;
	size_t n = (size_t)(nl - buf);
	char want[MAC_HEX + 1];
	mac_hex(key, buf, n, want);
	if (CRYPTO_memcmp(want, nl + 1, MAC_HEX) != 0)
		return NULL;
	json_t *o = json_loadb(buf, n, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

bool ha_json_str(json_t *o, const char *k, char *dst, size_t n)
{
	const char *s = json_string_value(json_object_get(o, k));
	if (!s || strlen(s) >= n)
		return false;
	memcpy(dst, s, strlen(s) + 1);
	return true;
}

int ha_word_encode(const struct ha_word *w, const unsigned char *key, char *buf, size_t len)
{
	char hears[20], live[20];
	snprintf(hears, sizeof hears, "%016llx", (unsigned long long)w->hw_hears);
	snprintf(live, sizeof live, "%016llx", (unsigned long long)w->hw_liveset);
	json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:b, s:b, s:b, s:s, s:b}", "g", w->hw_generation, "h",
			      w->hw_host, "b", w->hw_boot, "n", (json_int_t)w->hw_seq, "hears", hears, "sf",
			      w->hw_statefile, "f", w->hw_fenced, "x", w->hw_excluded, "live", live, "l", w->hw_losing);
	return ha_signed_encode(o, key, buf, len);
}

static int parse(json_t *o, struct ha_word *out)
{
	const char *hears = json_string_value(json_object_get(o, "hears"));
	unsigned long long h;
	int rc = -1;
	memset(out, 0, sizeof *out);
	if (json_is_object(o) && ha_json_str(o, "g", out->hw_generation, sizeof out->hw_generation) &&
	    ha_json_str(o, "h", out->hw_host, sizeof out->hw_host) && ha_json_str(o, "b", out->hw_boot, sizeof out->hw_boot) &&
	    json_is_integer(json_object_get(o, "n")) && hears && sscanf(hears, "%16llx", &h) == 1) {
		out->hw_seq = (uint64_t)json_integer_value(json_object_get(o, "n"));
		out->hw_hears = (ha_set)h;
		out->hw_statefile = json_is_true(json_object_get(o, "sf"));
		out->hw_fenced = json_is_true(json_object_get(o, "f"));
		out->hw_excluded = json_is_true(json_object_get(o, "x"));
		/* the liveset and "losing" came later: a word without them says nothing */
		const char *live = json_string_value(json_object_get(o, "live"));
		out->hw_liveset = live && sscanf(live, "%16llx", &h) == 1 ? (ha_set)h : 0;
		out->hw_losing = json_is_true(json_object_get(o, "l"));
		rc = 0;
	}
	json_decref(o);
	return rc;
}

int ha_word_decode(const char *buf, size_t len, const unsigned char *key, struct ha_word *out)
{
	json_t *o = ha_signed_decode(buf, len, key);
	if (!o)
		return -1;
	return parse(o, out);
}
