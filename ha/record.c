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

int ha_word_encode(const struct ha_word *w, const unsigned char *key, char *buf, size_t len)
{
	char hears[20];
	snprintf(hears, sizeof hears, "%016llx", (unsigned long long)w->hw_hears);
	json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:b, s:b, s:b}", "g", w->hw_generation, "h", w->hw_host,
			      "b", w->hw_boot, "n", (json_int_t)w->hw_seq, "hears", hears, "sf", w->hw_statefile, "f",
			      w->hw_fenced, "x", w->hw_excluded);
	char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	size_t n = text ? strlen(text) : 0;
	if (!text || n + 1 + MAC_HEX + 2 > len) {
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

static bool field_str(json_t *o, const char *k, char *dst, size_t n)
{
	const char *s = json_string_value(json_object_get(o, k));
	if (!s || strlen(s) >= n)
		return false;
	memcpy(dst, s, strlen(s) + 1);
	return true;
}

static int parse(const char *text, size_t n, struct ha_word *out)
{
	json_t *o = json_loadb(text, n, 0, NULL);
	const char *hears = json_string_value(json_object_get(o, "hears"));
	unsigned long long h;
	int rc = -1;
	memset(out, 0, sizeof *out);
	if (json_is_object(o) && field_str(o, "g", out->hw_generation, sizeof out->hw_generation) &&
	    field_str(o, "h", out->hw_host, sizeof out->hw_host) && field_str(o, "b", out->hw_boot, sizeof out->hw_boot) &&
	    json_is_integer(json_object_get(o, "n")) && hears && sscanf(hears, "%16llx", &h) == 1) {
		out->hw_seq = (uint64_t)json_integer_value(json_object_get(o, "n"));
		out->hw_hears = (ha_set)h;
		out->hw_statefile = json_is_true(json_object_get(o, "sf"));
		out->hw_fenced = json_is_true(json_object_get(o, "f"));
		out->hw_excluded = json_is_true(json_object_get(o, "x"));
		rc = 0;
	}
	json_decref(o);
	return rc;
}

int ha_word_decode(const char *buf, size_t len, const unsigned char *key, struct ha_word *out)
{
	const char *nl = memchr(buf, '\n', len);
	if (!nl)
		return -1;
	size_t n = (size_t)(nl - buf);
	if (n == 0 || len - n - 1 < MAC_HEX)
		return -1;
	char want[MAC_HEX + 1];
	mac_hex(key, buf, n, want);
	if (CRYPTO_memcmp(want, nl + 1, MAC_HEX) != 0)
		return -1;
	return parse(buf, n, out);
}
