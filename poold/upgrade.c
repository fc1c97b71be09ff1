/* upgrade.c - the rolling upgrade's rules: versions, the virtual hardware
 * matrix, the per-host steps, the order, the ETA (see upgrade.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "upgrade.h"
#include "util.h"

static const char *nz(const char *s)
{
	return s ? s : "";
}

/* ---- versions ------------------------------------------------------------ */

int upgrade_version_cmp(const char *a, const char *b)
{
	a = nz(a), b = nz(b);
	while (*a || *b) {
		long x = strtol(a, (char **)&a, 10), y = strtol(b, (char **)&b, 10);
		if (x != y)
			return x < y ? -1 : 1;
		while (*a && !isdigit((unsigned char)*a))
			a++;
		while (*b && !isdigit((unsigned char)*b))
			b++;
	}
	return 0;
}

/* major.minor of a version, compared as upgrade_version_cmp would. */
static int major_minor_cmp(const char *a, const char *b)
{
	char x[64], y[64];
	snprintf(x, sizeof x, "%s", nz(a));
	snprintf(y, sizeof y, "%s", nz(b));
	for (char *s = x, *t = y; s; s = s == x ? t : NULL) {
		char *dot = strchr(s, '.');
		dot = dot ? strchr(dot + 1, '.') : NULL;
		if (dot)
			*dot = '\0';
	}
	return upgrade_version_cmp(x, y);
}

bool upgrade_same_keys(const struct upgrade_ver *a, const struct upgrade_ver *b)
{
	return major_minor_cmp(a->uv_product, b->uv_product) == 0 &&
	       upgrade_version_cmp(a->uv_platform, b->uv_platform) == 0;
}

bool upgrade_mixed(const struct upgrade_ver *hosts, size_t n, const struct upgrade_ver *master)
{
	for (size_t i = 0; i < n; i++)
		if (!upgrade_same_keys(&hosts[i], master))
			return true;
	return false;
}

bool upgrade_not_older(const struct upgrade_ver *dst, const struct upgrade_ver *src)
{
	return upgrade_version_cmp(dst->uv_product, src->uv_product) >= 0 &&
	       upgrade_version_cmp(dst->uv_platform, src->uv_platform) >= 0;
}

void upgrade_newest(const struct upgrade_ver *hosts, size_t n, bool *out)
{
	for (size_t i = 0; i < n; i++) {
		out[i] = true;
		for (size_t j = 0; j < n && out[i]; j++)
			out[i] = upgrade_not_older(&hosts[i], &hosts[j]);
	}
}

bool upgrade_above_coordinator(const struct upgrade_ver *member, const struct upgrade_ver *coordinator)
{
	return upgrade_version_cmp(member->uv_product, coordinator->uv_product) > 0;
}

/* ---- the virtual hardware platform ---------------------------------------- */

static const int64_t old_host_set[] = {0}; /* XAPI: a host that reports none offers 0 */

enum upgrade_hw upgrade_hw_fit(int64_t vm, const int64_t *set, size_t n, int64_t *runs_at)
{
	if (n == 0) {
		set = old_host_set;
		n = 1;
	}
	int64_t lo = set[0];
	for (size_t i = 0; i < n; i++) {
		if (set[i] == vm) {
			if (runs_at)
				*runs_at = vm;
			return UPGRADE_HW_RUNS;
		}
		lo = set[i] < lo ? set[i] : lo;
	}
	if (runs_at)
		*runs_at = vm < lo ? lo : vm;
	if (vm < lo)
		return vm >= lo - UPGRADE_HW_RAISE_SPAN ? UPGRADE_HW_RAISED : UPGRADE_HW_TOO_OLD;
	return UPGRADE_HW_TOO_NEW;
}

enum upgrade_way upgrade_hw_way(int64_t vm, const int64_t *a, size_t na, const int64_t *b, size_t nb)
{
	int64_t there;
	enum upgrade_hw go = upgrade_hw_fit(vm, b, nb, &there);
	if (go != UPGRADE_HW_RUNS && go != UPGRADE_HW_RAISED)
		return UPGRADE_WAY_NONE;
	enum upgrade_hw back = upgrade_hw_fit(there, a, na, NULL);
	return back == UPGRADE_HW_RUNS || back == UPGRADE_HW_RAISED ? UPGRADE_WAY_BOTH : UPGRADE_WAY_ONE;
}

void upgrade_hw_text(const int64_t *set, size_t n, char *out, size_t outlen)
{
	if (n == 0) {
		set = old_host_set;
		n = 1;
	}
	size_t at = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n && at < outlen; i++) {
		int w = snprintf(out + at, outlen - at, "%s%lld", i ? "; " : "[", (long long)set[i]);
		at += w > 0 ? (size_t)w : 0;
	}
	if (at < outlen)
		snprintf(out + at, outlen - at, "]");
}

int upgrade_hw_parse(const char *s, int64_t *out, size_t max)
{
	size_t n = 0;
	const char *p = nz(s);
	while (*p) {
		char *end;
		long long a = strtoll(p, &end, 10), b = a;
		if (end == p || a < 0)
			return -1;
		p = end;
		if (*p == '-') {
			b = strtoll(++p, &end, 10);
			if (end == p || b < a || b - a > 1000)
				return -1;
			p = end;
		}
		for (long long v = a; v <= b; v++) {
			if (n == max)
				return -1;
			out[n++] = v;
		}
		if (*p == ',')
			p++;
		else if (*p)
			return -1;
	}
	return (int)n;
}

/* ---- the run ---------------------------------------------------------------- */

static const char *const phase_names[UPG__COUNT] = {"pending", "evacuating", "upgrading", "returning",
						     "done",    "skipped",    "failed"};

const char *upgrade_phase_name(enum upgrade_phase p)
{
	return p < UPG__COUNT ? phase_names[p] : "?";
}

enum upgrade_phase upgrade_phase_parse(const char *s)
{
	for (int p = 0; p < UPG__COUNT; p++)
		if (strcmp(nz(s), phase_names[p]) == 0)
			return (enum upgrade_phase)p;
	return UPG__COUNT;
}

static enum upgrade_action fail(const char **why, const char *text)
{
	*why = text;
	return UPGRADE_FAIL;
}

/* Disabled, every VM gone: then the command (or the operator). */
static enum upgrade_action step_evacuating(enum upgrade_phase *phase, const struct upgrade_facts *f, const char **why)
{
	if (f->uf_enabled)
		return UPGRADE_DISABLE;
	if (f->uf_evacuating)
		return UPGRADE_WAIT;
	if (f->uf_resident > 0) {
		if (f->uf_evac_tries >= UPGRADE_EVAC_TRIES)
			return fail(why, "its VMs could not all be moved off it");
		if (!f->uf_live)
			return f->uf_timed_out ? fail(why, "the host is not live") : UPGRADE_WAIT;
		return UPGRADE_EVACUATE;
	}
	*phase = UPG_UPGRADING;
	return f->uf_manual ? UPGRADE_WAIT : UPGRADE_RUN;
}

static enum upgrade_action step_upgrading(enum upgrade_phase *phase, const struct upgrade_facts *f, const char **why)
{
	if (f->uf_manual) {
		*phase = UPG_RETURNING;
		return UPGRADE_WAIT;
	}
	switch (f->uf_cmd) {
	case UPGRADE_CMD_NONE:
		return UPGRADE_RUN; /* poold stopped before it started it */
	case UPGRADE_CMD_RUNNING:
		return f->uf_timed_out ? fail(why, "the upgrade command did not finish in time") : UPGRADE_WAIT;
	case UPGRADE_CMD_FAILED:
		return fail(why, "the upgrade command failed");
	case UPGRADE_CMD_LOST:
		return fail(why, "the upgrade command ended without saying how (killed?)");
	case UPGRADE_CMD_OK:
		break;
	}
	*phase = UPG_RETURNING;
	return UPGRADE_WAIT;
}

enum upgrade_action upgrade_step(enum upgrade_phase *phase, const struct upgrade_facts *f, const char **why)
{
	*why = NULL;
	switch (*phase) {
	case UPG_PENDING:
		if (!f->uf_live)
			return f->uf_timed_out ? fail(why, "the host is not live") : UPGRADE_WAIT;
		if (!f->uf_can_evacuate)
			return fail(why, "its VMs cannot all move (host.assert_can_evacuate)");
		*phase = UPG_EVACUATING;
		return f->uf_enabled ? UPGRADE_DISABLE : UPGRADE_WAIT;
	case UPG_EVACUATING:
		return step_evacuating(phase, f, why);
	case UPG_UPGRADING:
		return step_upgrading(phase, f, why);
	case UPG_RETURNING:
		if (f->uf_back) {
			*phase = UPG_DONE;
			return UPGRADE_ENABLE;
		}
		return f->uf_timed_out ? fail(why, f->uf_manual ? "the host was not upgraded in time"
							     : "the host did not come back with the new version in time")
				       : UPGRADE_WAIT;
	case UPG_DONE:
		return f->uf_enabled ? UPGRADE_NEXT : UPGRADE_ENABLE;
	case UPG_SKIPPED:
		return UPGRADE_NEXT;
	default:
		return fail(why, "the host's phase is not known");
	}
}

bool upgrade_host_back(bool live, bool new_boot, const struct upgrade_ver *before, const struct upgrade_ver *now,
		       const struct upgrade_ver *master, bool is_master)
{
	if (!live || !upgrade_not_older(now, before))
		return false;
	bool newer = upgrade_version_cmp(now->uv_product, before->uv_product) > 0 ||
		     upgrade_version_cmp(now->uv_platform, before->uv_platform) > 0;
	if (!new_boot && !newer)
		return false;
	return is_master || upgrade_same_keys(now, master);
}

struct order_key {
	const struct upgrade_ver *ver;
	const char *name, *ref;
	size_t idx;
	bool master;
};

static int by_turn(const void *a, const void *b)
{
	const struct order_key *x = a, *y = b;
	if (x->master != y->master)
		return x->master ? -1 : 1;
	int c = strcmp(nz(x->name), nz(y->name));
	if (c)
		return c;
	c = strcmp(nz(x->ref), nz(y->ref));
	return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

size_t upgrade_order(const struct upgrade_ver *hosts, const char *const *names, const char *const *refs, size_t n,
		     size_t master, size_t *order, bool *skip)
{
	struct order_key *k = xcalloc(n ? n : 1, sizeof *k);
	bool *newest = xcalloc(n ? n : 1, sizeof *newest);
	upgrade_newest(hosts, n, newest);
	bool mixed = master < n && upgrade_mixed(hosts, n, &hosts[master]);
	for (size_t i = 0; i < n; i++) {
		k[i] = (struct order_key){&hosts[i], names ? names[i] : NULL, refs ? refs[i] : NULL, i, i == master};
		skip[i] = mixed && newest[i];
	}
	qsort(k, n, sizeof *k, by_turn);
	for (size_t i = 0; i < n; i++)
		order[i] = k[i].idx;
	free(k);
	free(newest);
	return n;
}

double upgrade_eta(const double *done_s, size_t ndone, size_t todo, double current_elapsed)
{
	if (ndone == 0)
		return -1;
	double sum = 0;
	for (size_t i = 0; i < ndone; i++)
		sum += done_s[i];
	double mean = sum / (double)ndone;
	if (todo == 0)
		return 0;
	double current = mean - current_elapsed;
	return (current > 0 ? current : 0) + mean * (double)(todo - 1);
}

static bool shell_safe(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)nz(s); *p; p++)
		if (*p == '\'' || *p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

char *upgrade_command(const char *tmpl, const char *uuid, const char *address, const char *name)
{
	static const char *const keys[] = {"{uuid}", "{address}", "{name}"};
	const char *vals[] = {nz(uuid), nz(address), nz(name)};
	for (size_t i = 0; i < 3; i++)
		if (!shell_safe(vals[i]))
			return NULL;
	size_t longest = 0, cap = strlen(nz(tmpl)) + 1, len = 0;
	for (size_t i = 0; i < 3; i++)
		longest = strlen(vals[i]) > longest ? strlen(vals[i]) : longest;
	for (const char *p = nz(tmpl); *p; p++)
		cap += *p == '{' ? longest + 2 : 0; /* a placeholder grows by its value and quotes at most */
	char *out = xmalloc(cap);
	for (const char *p = nz(tmpl); *p;) {
		size_t k = 0;
		while (k < 3 && strncmp(p, keys[k], strlen(keys[k])))
			k++;
		if (k < 3) {
			len += (size_t)snprintf(out + len, cap - len, "'%s'", vals[k]);
			p += strlen(keys[k]);
		} else {
			out[len++] = *p++;
		}
	}
	out[len] = '\0';
	return out;
}
