/*
 * xen_owner.c - which Xen domains are this agent's.
 *
 * libxl_list_domain lists every domain of the host: those an operator made
 * with `xl create`, those of another toolstack, and, when two agents share
 * one dom0 (the nested test migrates between two agents on one Xen, as
 * `xl migrate localhost` does), those of the other agent. Reporting those
 * as the pool's would let poold "reconcile" a VM it does not own, or take
 * one agent's domain for a second running copy of the other's. So every
 * domain this agent creates (or restores from a migration) carries its
 * owner id in xenstore (/local/domain/<domid>/pool-agent-owner, written by
 * libxl at domain build, read-only to the guest), and the backend lists and
 * acts on those domains only. The id is random, kept in the backend's state
 * directory, so a restarted agent finds its domains again.
 */
#ifdef HAVE_XEN
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>
#include <xenstore.h>

#include "util.h"
#include "xen_backend.h"

static bool owner_valid(const char *s)
{
	if (strlen(s) != XEN_OWNER_LEN - 1)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

int xen_owner_load(struct xen *x, char *err, size_t errlen)
{
	char path[PATH_MAX + 16], tmp[PATH_MAX + 24];
	snprintf(path, sizeof path, "%s/owner", x->xn_dir);
	FILE *f = fopen(path, "r");
	if (f) {
		char line[64] = "";
		bool ok = fgets(line, sizeof line, f) != NULL;
		fclose(f);
		line[strcspn(line, "\n")] = 0;
		if (!ok || !owner_valid(line)) {
			snprintf(err, errlen, "backend xen: %s is not an owner id (32 hex digits); restore it, or remove it "
					      "and the agent no longer sees the domains it made", path);
			return -1;
		}
		memcpy(x->xn_owner, line, XEN_OWNER_LEN); /* owner_valid: exactly 32 digits */
		return 0;
	}
	if (errno != ENOENT) {
		snprintf(err, errlen, "backend xen: %s: %s", path, strerror(errno));
		return -1;
	}
	unsigned char rnd[16];
	if (RAND_bytes(rnd, sizeof rnd) != 1) {
		snprintf(err, errlen, "backend xen: no random bytes for the owner id");
		return -1;
	}
	for (size_t i = 0; i < sizeof rnd; i++)
		snprintf(x->xn_owner + 2 * i, 3, "%02x", rnd[i]);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	f = fopen(tmp, "w");
	bool ok = f && fprintf(f, "%s\n", x->xn_owner) > 0;
	if (f)
		ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		snprintf(err, errlen, "backend xen: cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

bool xen_owner_is_ours(struct xen *x, uint32_t domid)
{
	char path[64];
	unsigned int len = 0;
	snprintf(path, sizeof path, "/local/domain/%u/" XEN_OWNER_KEY, domid);
	char *v = xs_read(x->xn_xsh, XBT_NULL, path, &len);
	bool ours = v && len == XEN_OWNER_LEN - 1 && memcmp(v, x->xn_owner, len) == 0;
	free(v);
	return ours;
}

void xen_owner_claim(struct xen *x, libxl_domain_config *dc)
{
	libxl_key_value_list kv = xcalloc(3, sizeof *kv);
	kv[0] = xstrdup(XEN_OWNER_KEY);
	kv[1] = xstrdup(x->xn_owner);
	libxl_key_value_list_dispose(&dc->c_info.xsdata);
	dc->c_info.xsdata = kv;
}
#endif
