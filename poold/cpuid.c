/*
 * cpuid.c - CPU feature sets and pool levelling (pure functions; see cpuid.h).
 */
#include "cpuid.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- small helpers ------------------------------------------------------ */

/* A bounded text writer over a caller's buffer (snprintf-like truncation). */
struct tbuf {
	char *tb_p;
	size_t tb_len;
	size_t tb_used;
};

static void tb_init(struct tbuf *b, char *p, size_t len)
{
	b->tb_p = len ? p : NULL;
	b->tb_len = p ? len : 0;
	b->tb_used = 0;
	if (b->tb_len)
		b->tb_p[0] = '\0';
}

__attribute__((format(printf, 2, 3))) static void tb_printf(struct tbuf *b, const char *fmt, ...)
{
	if (!b->tb_len || b->tb_used + 1 >= b->tb_len)
		return;
	va_list ap;
	va_start(ap, fmt);
	int r = vsnprintf(b->tb_p + b->tb_used, b->tb_len - b->tb_used, fmt, ap);
	va_end(ap);
	if (r < 0)
		return;
	if ((size_t)r >= b->tb_len - b->tb_used)
		b->tb_used = b->tb_len - 1;
	else
		b->tb_used += (size_t)r;
}

static int nwords(const struct cpuid_set *s)
{
	if (!s || s->cs_nwords < 0)
		return 0;
	return s->cs_nwords > CPUID_MAX_WORDS ? CPUID_MAX_WORDS : s->cs_nwords;
}

static uint32_t word(const struct cpuid_set *s, int i)
{
	return i < nwords(s) ? s->cs_words[i] : 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static const char *nz(const char *s)
{
	return s ? s : "";
}

/* ---- sets --------------------------------------------------------------- */

int cpuid_parse(const char *text, struct cpuid_set *out)
{
	if (!text || !out)
		return -1;
	struct cpuid_set s;
	memset(&s, 0, sizeof s);
	const char *p = text;
	if (*p == '\0') {
		*out = s;
		return 0;
	}
	for (;;) {
		if (s.cs_nwords == CPUID_MAX_WORDS)
			return -1;
		uint32_t w = 0;
		int ndig = 0;
		for (; *p != '\0' && *p != '-'; p++) {
			int v = hexval(*p);
			if (v < 0 || ++ndig > 8)
				return -1;
			w = (w << 4) | (uint32_t)v;
		}
		if (ndig != 8)
			return -1;
		s.cs_words[s.cs_nwords++] = w;
		if (*p == '\0')
			break;
		p++; /* '-': a word must follow */
	}
	*out = s;
	return 0;
}

void cpuid_format(const struct cpuid_set *s, char *out, size_t outlen)
{
	struct tbuf b;
	tb_init(&b, out, outlen);
	int n = nwords(s);
	for (int i = 0; i < n; i++)
		tb_printf(&b, "%s%08x", i ? "-" : "", (unsigned)s->cs_words[i]);
}

void cpuid_and(const struct cpuid_set *a, const struct cpuid_set *b, struct cpuid_set *out)
{
	int na = nwords(a), nb = nwords(b);
	int n = na > nb ? na : nb;
	struct cpuid_set r;
	memset(&r, 0, sizeof r);
	for (int i = 0; i < n; i++)
		r.cs_words[i] = word(a, i) & word(b, i);
	r.cs_nwords = n;
	*out = r;
}

bool cpuid_subset(const struct cpuid_set *vm, const struct cpuid_set *host, struct cpuid_set *missing)
{
	int n = nwords(vm);
	struct cpuid_set m;
	memset(&m, 0, sizeof m);
	bool ok = true;
	for (int i = 0; i < n; i++) {
		m.cs_words[i] = word(vm, i) & ~word(host, i);
		if (m.cs_words[i])
			ok = false;
	}
	m.cs_nwords = n;
	if (missing)
		*missing = m;
	return ok;
}

static void describe_into(struct tbuf *b, const struct cpuid_set *missing)
{
	int n = nwords(missing);
	bool first_word = true;
	for (int i = 0; i < n; i++) {
		uint32_t w = missing->cs_words[i];
		if (!w)
			continue;
		tb_printf(b, "%sword %d bit%s ", first_word ? "" : "; ", i, (w & (w - 1)) ? "s" : "");
		first_word = false;
		bool first_bit = true;
		for (int bit = 0; bit < 32; bit++) {
			if (w & (UINT32_C(1) << bit)) {
				tb_printf(b, "%s%d", first_bit ? "" : ",", bit);
				first_bit = false;
			}
		}
	}
}

void cpuid_describe(const struct cpuid_set *missing, char *out, size_t outlen)
{
	struct tbuf b;
	tb_init(&b, out, outlen);
	describe_into(&b, missing);
}

bool cpuid_is_empty(const struct cpuid_set *s)
{
	int n = nwords(s);
	for (int i = 0; i < n; i++)
		if (s->cs_words[i])
			return false;
	return true;
}

/* ---- VM placement ------------------------------------------------------- */

enum vm_verdict { VM_OK, VM_VENDOR, VM_FEATURES, VM_BAD_VM_SET };

/* The common check of cpuid_check_vm and cpuid_join_stranded; host must be
 * parsed already. */
static enum vm_verdict vm_fits(const char *vm_vendor, const char *vm_set, const char *host_vendor,
			       const struct cpuid_set *host, struct cpuid_set *missing)
{
	if (missing)
		memset(missing, 0, sizeof *missing);
	if (vm_vendor && *vm_vendor && strcmp(vm_vendor, nz(host_vendor)) != 0)
		return VM_VENDOR;
	if (!vm_set)
		return VM_OK;
	struct cpuid_set vm;
	if (cpuid_parse(vm_set, &vm) != 0)
		return VM_BAD_VM_SET;
	struct cpuid_set m;
	if (cpuid_subset(&vm, host, &m))
		return VM_OK;
	if (missing)
		*missing = m;
	return VM_FEATURES;
}

const char *cpuid_check_vm(const char *vm_vendor, const char *vm_set, const char *host_vendor,
			   const char *host_set, char *reason, size_t reasonlen)
{
	struct tbuf b;
	tb_init(&b, reason, reasonlen);
	struct cpuid_set host, missing;
	enum vm_verdict v;
	if (cpuid_parse(nz(host_set), &host) != 0) {
		/* Still say "vendor differs" first when it does. */
		v = vm_fits(vm_vendor, NULL, host_vendor, &host, NULL);
		if (v == VM_OK) {
			tb_printf(&b, "invalid host CPU feature set");
			return b.tb_len ? reason : "incompatible";
		}
	} else {
		v = vm_fits(vm_vendor, vm_set, host_vendor, &host, &missing);
	}
	switch (v) {
	case VM_OK:
		return NULL;
	case VM_VENDOR:
		tb_printf(&b, "vendor %s differs from %s", vm_vendor, nz(host_vendor));
		break;
	case VM_BAD_VM_SET:
		tb_printf(&b, "invalid VM CPU feature set");
		break;
	case VM_FEATURES:
		tb_printf(&b, "the host lacks CPU features: ");
		describe_into(&b, &missing);
		break;
	}
	return b.tb_len ? reason : "incompatible";
}

/* ---- pool levelling ----------------------------------------------------- */

static void host_name(struct tbuf *b, const struct cpuid_host *h, size_t idx)
{
	if (h->ch_name && *h->ch_name)
		tb_printf(b, "host %s", h->ch_name);
	else
		tb_printf(b, "host %zu", idx);
}

/* "host X has CPU vendor V, host Y has W" (X the odd one, Y the reference). */
static void vendor_reason(struct tbuf *b, const struct cpuid_host *odd, size_t odd_idx,
			  const struct cpuid_host *ref, size_t ref_idx)
{
	host_name(b, odd, odd_idx);
	tb_printf(b, " has CPU vendor %s, ", nz(odd->ch_vendor));
	host_name(b, ref, ref_idx);
	tb_printf(b, " has %s", nz(ref->ch_vendor));
}

int cpuid_pool_level(const struct cpuid_host *hosts, size_t n, struct cpuid_set *level, char *reason,
		     size_t reasonlen)
{
	struct tbuf b;
	tb_init(&b, reason, reasonlen);
	if (!hosts || n == 0) {
		tb_printf(&b, "no hosts");
		return -1;
	}
	struct cpuid_set acc, one;
	memset(&acc, 0, sizeof acc);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(nz(hosts[i].ch_vendor), nz(hosts[0].ch_vendor)) != 0) {
			vendor_reason(&b, &hosts[i], i, &hosts[0], 0);
			return -1;
		}
		if (cpuid_parse(nz(hosts[i].ch_featureset), &one) != 0) {
			host_name(&b, &hosts[i], i);
			tb_printf(&b, " has an invalid CPU feature set");
			return -1;
		}
		if (i == 0)
			acc = one;
		else
			cpuid_and(&acc, &one, &acc);
	}
	if (level)
		*level = acc;
	return 0;
}

int cpuid_join_level(const struct cpuid_host *hosts, size_t n, const struct cpuid_host *joining,
		     struct cpuid_set *new_level, struct cpuid_set *lost, char *reason, size_t reasonlen)
{
	struct cpuid_set level, join, m;
	if (cpuid_pool_level(hosts, n, &level, reason, reasonlen) != 0)
		return -1;
	struct tbuf b;
	tb_init(&b, reason, reasonlen);
	if (!joining) {
		tb_printf(&b, "no joining host");
		return -1;
	}
	if (strcmp(nz(joining->ch_vendor), nz(hosts[0].ch_vendor)) != 0) {
		vendor_reason(&b, joining, n, &hosts[0], 0);
		return -1;
	}
	if (cpuid_parse(nz(joining->ch_featureset), &join) != 0) {
		host_name(&b, joining, n);
		tb_printf(&b, " has an invalid CPU feature set");
		return -1;
	}
	bool same = cpuid_subset(&level, &join, &m);
	if (lost)
		*lost = m;
	if (new_level)
		cpuid_and(&level, &join, new_level);
	return same ? 0 : 1;
}

int cpuid_join_stranded(const struct cpuid_vm *vms, size_t nvms, const char *join_vendor,
			const char *join_set, struct cpuid_stranded *out, size_t cap, char *reason,
			size_t reasonlen)
{
	struct tbuf b;
	tb_init(&b, reason, reasonlen);
	struct cpuid_set join;
	if (cpuid_parse(nz(join_set), &join) != 0) {
		tb_printf(&b, "invalid joining host CPU feature set");
		return -1;
	}
	if (!out)
		cap = 0;
	int count = 0;
	for (size_t i = 0; vms && i < nvms && count < INT_MAX; i++) {
		struct cpuid_set missing;
		enum vm_verdict v = vm_fits(vms[i].cv_vendor, vms[i].cv_featureset, join_vendor, &join, &missing);
		if (v == VM_OK)
			continue;
		if ((size_t)count < cap) {
			struct cpuid_stranded *st = &out[count];
			st->st_vm = i;
			st->st_uuid = vms[i].cv_uuid;
			st->st_why = v == VM_VENDOR ? CPUID_STRAND_VENDOR
				   : v == VM_BAD_VM_SET ? CPUID_STRAND_INVALID : CPUID_STRAND_FEATURES;
			st->st_missing = missing; /* zeroed unless FEATURES */
		}
		count++;
	}
	return count;
}

void cpuid_stranded_describe(const struct cpuid_stranded *st, const char *vm_vendor,
			     const char *join_vendor, char *out, size_t outlen)
{
	struct tbuf b;
	tb_init(&b, out, outlen);
	if (!st)
		return;
	if (st->st_uuid)
		tb_printf(&b, "VM %s: ", st->st_uuid);
	else
		tb_printf(&b, "vm %zu: ", st->st_vm);
	switch (st->st_why) {
	case CPUID_STRAND_FEATURES:
		tb_printf(&b, "the joining host lacks CPU features: ");
		describe_into(&b, &st->st_missing);
		break;
	case CPUID_STRAND_VENDOR:
		tb_printf(&b, "vendor %s differs from the joining host's %s", nz(vm_vendor), nz(join_vendor));
		break;
	case CPUID_STRAND_INVALID:
		tb_printf(&b, "invalid VM CPU feature set");
		break;
	}
}
