/* backend.c - what every backend shares: the error buffer, feature sets. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"

const char *backend_error(const struct backend *be)
{
	return be ? be->be_error : "no backend";
}

void be_set_error(struct backend *be, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(be->be_error, sizeof be->be_error, fmt, ap);
	va_end(ap);
}

int be_featureset_parse(const char *text, uint32_t *words, int max)
{
	if (!text)
		return -1;
	if (!*text)
		return 0;
	int n = 0;
	const char *p = text;
	for (;;) {
		uint32_t w = 0;
		int digits = 0;
		for (; isxdigit((unsigned char)*p); p++, digits++) {
			int c = tolower((unsigned char)*p);
			w = w << 4 | (uint32_t)(c <= '9' ? c - '0' : c - 'a' + 10);
		}
		if (digits != 8 || n >= max)
			return -1;
		words[n++] = w;
		if (*p == 0)
			return n;
		if (*p++ != '-')
			return -1;
	}
}

bool be_featureset_subset(const char *sub, const char *super)
{
	uint32_t a[64], b[64];
	int na = be_featureset_parse(sub, a, 64), nb = be_featureset_parse(super, b, 64);
	if (na < 0 || nb < 0)
		return false;
	for (int i = 0; i < na; i++)
		if (a[i] & ~(i < nb ? b[i] : 0))
			return false;
	return true;
}

const char *be_state_name(enum be_state s)
{
	switch (s) {
	case BE_STATE_PAUSED: return "paused";
	case BE_STATE_RUNNING: return "running";
	case BE_STATE_SHUTDOWN: return "shutdown";
	case BE_STATE_CRASHED: return "crashed";
	}
	return "unknown";
}
