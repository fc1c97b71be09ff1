/*
 * mfo_sync.c - a standby keeps up with its master: every couple of
 * seconds it asks (pool.standby_sync, with its pool-master certificate)
 * where the database is, HA's statefile and key, the master's address and
 * epoch, and the admin's password hash (for emergency logins), and keeps
 * them in master.json. The master learns from the same call which hosts
 * can take over. A master that moved answers HOST_IS_SLAVE: followed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "evrpc.h"
#include "log.h"
#include "poold.h"
#include "tls.h"
#include "util.h"
#include "xerr.h"

#define SYNC_EVERY_MS 2000

static bool sync_set(char *dst, size_t n, const char *v)
{
	if (strcmp(dst, v) == 0)
		return false;
	snprintf(dst, n, "%s", v);
	return true;
}

/* Take the master's answer in; true when anything changed. */
static bool sync_take(struct mfo *m, json_t *r)
{
	struct mstate *ms = &m->mf_ms;
	bool changed = sync_set(ms->ms_database, sizeof ms->ms_database, jstr(r, "database"));
	changed |= sync_set(ms->ms_master_uuid, sizeof ms->ms_master_uuid, jstr(r, "master_uuid"));
	changed |= sync_set(ms->ms_master_address, sizeof ms->ms_master_address, jstr(r, "master_address"));
	int port = (int)json_integer_value(json_object_get(r, "port"));
	uint64_t epoch = (uint64_t)json_integer_value(json_object_get(r, "epoch"));
	changed |= port != ms->ms_port || epoch != ms->ms_epoch;
	ms->ms_port = port;
	ms->ms_epoch = epoch;
	json_t *ha = json_object_get(r, "ha"), *users = json_object_get(r, "users");
	if (!json_is_object(ha))
		ha = NULL;
	if (!json_equal(ha, ms->ms_ha) && (ha || ms->ms_ha)) {
		json_decref(ms->ms_ha);
		ms->ms_ha = json_incref(ha);
		m->mf_ha_changed = true;
		changed = true;
	}
	if (json_is_object(users) && !json_equal(users, ms->ms_users)) {
		json_decref(ms->ms_users);
		ms->ms_users = json_incref(users);
		changed = true;
	}
	json_t *peers = json_object_get(r, "peers");
	if (json_is_array(peers) && !json_equal(peers, ms->ms_peers)) {
		json_decref(ms->ms_peers);
		ms->ms_peers = json_incref(peers);
		changed = true;
	}
	return changed;
}

/* The master has been silent a while: ask the next host that runs a
 * poold (it answers HOST_IS_SLAVE with the master it knows, or is it). */
static void sync_next_peer(struct poold *pd)
{
	struct mfo *m = pd->pd_mfo;
	size_t n = json_array_size(m->mf_ms.ms_peers);
	const char *self = conf_str(pd->pd_conf, "listen-address");
	for (size_t k = 1; k <= n; k++) {
		const char *p = json_string_value(json_array_get(m->mf_ms.ms_peers, (m->mf_peer_next + k) % n));
		if (p && *p && strcmp(p, self) && strcmp(p, m->mf_ms.ms_master_address)) {
			m->mf_peer_next = (m->mf_peer_next + k) % n;
			snprintf(m->mf_ms.ms_master_address, sizeof m->mf_ms.ms_master_address, "%s", p);
			m->mf_next_sync = 0;
			return;
		}
	}
}

static void sync_done(void *arg, json_t *result, json_t *err)
{
	struct poold *pd = arg;
	struct mfo *m = pd->pd_mfo;
	m->mf_sync_inflight = false;
	if (m->mf_role != MFO_STANDBY)
		return; /* took over meanwhile */
	char e[512];
	if (err && xerr_is(err, XE_HOST_IS_SLAVE)) { /* follow the new master */
		const char *addr = json_string_value(json_array_get(err, 1));
		if (addr && !strcmp(addr, conf_str(pd->pd_conf, "listen-address"))) {
			sync_next_peer(pd); /* a host that names us is behind: ask another */
			return;
		}
		if (addr && *addr && sync_set(m->mf_ms.ms_master_address, sizeof m->mf_ms.ms_master_address, addr)) {
			log_info("standby: the pool master is at %s now", addr);
			m->mf_next_sync = 0;
			if (mstate_save(pd->pd_dir, &m->mf_ms, e, sizeof e) < 0)
				log_error("%s", e);
		}
		return;
	}
	if (err) {
		if (m->mf_sync_failed++ % 15 == 0) {
			char *s = xerr_to_text(err);
			log_warn("standby: the master at %s does not answer: %s", m->mf_ms.ms_master_address, s ? s : "?");
			free(s);
		}
		if (m->mf_sync_failed % 3 == 0 && !m->mf_ms.ms_ha)
			sync_next_peer(pd); /* under HA the lease names the master */
		return;
	}
	if (!json_is_object(result) || !*jstr(result, "master_address"))
		return; /* not an answer to keep */
	if (m->mf_sync_failed)
		log_info("standby: the master answers again");
	m->mf_sync_failed = 0;
	if (sync_take(m, result) && mstate_save(pd->pd_dir, &m->mf_ms, e, sizeof e) < 0)
		log_error("%s", e);
}

void mfo_standby_tick(struct poold *pd)
{
	struct mfo *m = pd->pd_mfo;
	int64_t now = (int64_t)now_ms();
	if (m->mf_sync_inflight || now < m->mf_next_sync || !m->mf_ms.ms_host_uuid[0] || atomic_load(&m->mf_stepped_down))
		return; /* (a master handing over or stepping down knows better than any answer now) */
	/* a master that restarted and found its database taken asks the others */
	if (!m->mf_ms.ms_master_address[0] || strcmp(m->mf_ms.ms_master_address, conf_str(pd->pd_conf, "listen-address")) == 0)
		sync_next_peer(pd);
	if (!m->mf_ms.ms_master_address[0])
		return;
	m->mf_next_sync = now + SYNC_EVERY_MS;
	struct evrpc_target t = {m->mf_ms.ms_master_address, m->mf_ms.ms_port ? m->mf_ms.ms_port : pd->pd_port,
				 m->mf_peer_ctx, TLS_MASTER_CN};
	if (evrpc_call(pd->pd_base, &t, "pool.standby_sync", json_pack("[s]", m->mf_ms.ms_host_uuid), 5, sync_done, pd) == 0)
		m->mf_sync_inflight = true;
}
