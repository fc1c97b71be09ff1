/*
 * mfo.c - master failover: which poold is the pool master, and how the
 * role moves (docs/MASTER.md).
 *
 * Every host of a pool that can lose its master runs a poold. One is the
 * master: it holds the pool database. The others are standbys: they answer
 * clients with HOST_IS_SLAVE and the master's address (mfo_api.c) and keep
 * what they need to take over in DIR/master.json (mstate.c). The database
 * lives on shared storage (a redo_log VDI of the HA SR, or of the default
 * SR for a hand-over), held by SQLite's exclusive lock: whatever the rules
 * below decide, two pooldes never write it at once.
 *
 * Under HA the master also holds a lease in the statefile (ha/lease.c,
 * renewed by lease_io.c) and every write is refused once it lapses (the
 * database guard); a standby takes over when the lease has expired or was
 * released, the lowest uuid of the liveset first. Without HA the role
 * moves only on purpose: pool.designate_new_master, or the operator's
 * pool.emergency_transition_to_master on a standby.
 *
 * Becoming master (mfo_take_over) is done in this process: open the
 * database (the lock), take the lease, one more epoch, then master.c
 * starts. Stepping down is a new start of this program (execv) as a
 * standby: whatever the master had in flight ends with the process, and
 * the next master ends those tasks as failed, saying why.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "evrpc.h"
#include "log.h"
#include "ops.h"
#include "poold.h"
#include "tls.h"
#include "util.h"
#include "xerr.h"

#define TICK_MS 100
#define SYNC_EVERY_MS 2000

static int64_t mfo_now(void)
{
	return (int64_t)now_ms();
}

static void mfo_save(struct poold *pd)
{
	char err[512];
	if (mstate_save(pd->pd_dir, &pd->pd_mfo->mf_ms, err, sizeof err) < 0)
		log_error("%s", err);
}

bool mfo_is_master(struct poold *pd)
{
	return pd->pd_mfo && pd->pd_mfo->mf_role == MFO_MASTER;
}

/* ------------------------------------------------------------ the guard */

/* May this poold write the pool database now? Not once it stepped down;
 * under a lease, only until it lapses. */
static bool mfo_guard(void *ctx)
{
	struct mfo *m = ctx;
	if (atomic_load(&m->mf_stepped_down))
		return false;
	if (!m->mf_holding)
		return true; /* no lease in force: the database lock alone */
	return mfo_now() < lease_io_valid_until(m->mf_lease);
}

void mfo_db_hooks(struct poold *pd)
{
	db_set_store_hook(pd->pd_db, ops_derive, pd);
	db_set_guard(pd->pd_db, mfo_guard, pd->pd_mfo);
	if (pd->pd_master) {
		db_require_txn(pd->pd_db);
		db_set_commit_hook(pd->pd_db, evt_commit_hook, pd);
	}
}

/* ------------------------------------------------------ the start role */

/* The pool database, as this directory has it: local (DIR/pool.db), on
 * shared storage (master.json), or none. Opens it when this poold is to
 * be master now. */
static int mfo_open_start(struct poold *pd, char *err, size_t errlen)
{
	struct mfo *m = pd->pd_mfo;
	char local[4200], aside[4300];
	snprintf(local, sizeof local, "%s/pool.db", pd->pd_dir);
	bool have_local = access(local, F_OK) == 0;
	if (!m->mf_ms.ms_database[0]) {
		if (!have_local) {
			m->mf_role = MFO_STANDBY; /* a standby that never synced: it waits for its master */
			return m->mf_ms.ms_exists ? 0 : errf(err, errlen, "%s holds no pool (poold init or poold join)", pd->pd_dir);
		}
		if (pool_db_private(pd->pd_dir, false, err, errlen) < 0 || pool_master_identity(pd->pd_dir, err, errlen) < 0)
			return -1;
		pd->pd_db = db_open(local, false, err, errlen);
		m->mf_role = MFO_MASTER;
		return pd->pd_db ? 0 : -1;
	}
	if (have_local) { /* the move to shared storage finished: the old file is history */
		snprintf(aside, sizeof aside, "%s.moved", local);
		if (rename(local, aside) == 0)
			log_warn("%s is on shared storage now (%s): the local copy is kept as %s", local,
				 m->mf_ms.ms_database, aside);
	}
	m->mf_role = MFO_STANDBY;
	/* without HA the master is the one designated: a restarted master is master again */
	const char *mu = m->mf_ms.ms_master_uuid;
	if (!m->mf_ms.ms_ha && (!*mu || strcmp(mu, m->mf_ms.ms_host_uuid) == 0)) {
		bool busy = false;
		pd->pd_db = db_open_shared(m->mf_ms.ms_database, &busy, err, errlen);
		if (pd->pd_db)
			m->mf_role = MFO_MASTER;
		else
			log_warn("%s: staying a standby", err);
	}
	return 0;
}

int mfo_init(struct poold *pd, char **argv, char *err, size_t errlen)
{
	struct mfo *m = xcalloc(1, sizeof *m);
	pd->pd_mfo = m;
	m->mf_argv = argv;
	model_new_uuid(m->mf_run);
	m->mf_standbys = json_object();
	m->mf_local_sessions = json_object();
	pd->pd_master_info = json_object();
	if (mstate_load(pd->pd_dir, &m->mf_ms, err, errlen) < 0)
		return -1;
	return mfo_open_start(pd, err, errlen);
}

/* ------------------------------------------------------ becoming master */

static uint64_t mfo_db_epoch(struct db *db)
{
	char *v = db_meta_get(db, "master_epoch");
	uint64_t e = v ? strtoull(v, NULL, 10) : 0;
	free(v);
	return e;
}

struct epoch_ctx {
	uint64_t epoch;
	char host_uuid[48];
};

static json_t *mfo_epoch_txn(struct db *db, void *ctx)
{
	struct epoch_ctx *ec = ctx;
	char buf[32], host[64];
	snprintf(buf, sizeof buf, "%llu", (unsigned long long)ec->epoch);
	json_t *e = db_meta_set(db, "master_epoch", buf);
	if (e || !ec->host_uuid[0] || !db_ref_by_uuid(db, "host", ec->host_uuid, host))
		return e;
	e = db_meta_set(db, "master_ref", host);
	char *pool = db_meta_get(db, "pool_ref");
	if (!e && pool)
		e = db_obj_set(db, pool, "master", json_string(host));
	free(pool);
	return e;
}

/* This host's address, as its agent reported it (what HOST_IS_SLAVE names). */
static void mfo_my_address(struct poold *pd, char *out, size_t n)
{
	char ref[64];
	snprintf(out, n, "%s", conf_str(pd->pd_conf, "listen-address"));
	if (!pd->pd_mfo->mf_ms.ms_host_uuid[0] || !db_ref_by_uuid(pd->pd_db, "host", pd->pd_mfo->mf_ms.ms_host_uuid, ref))
		return;
	json_t *h = db_obj_get(pd->pd_db, ref);
	if (*jstr(h, "address"))
		snprintf(out, n, "%s", jstr(h, "address"));
	json_decref(h);
}

/* Every agent is told where the master is now (XAPI's recover_slaves);
 * each also finds it by itself (the lease, HOST_IS_SLAVE). */
static void mfo_tell_agents(struct poold *pd)
{
	json_t *hosts = db_refs_all(pd->pd_db, "host");
	size_t i;
	json_t *h;
	json_array_foreach(hosts, i, h) {
		struct agent_addr a;
		if (agent_target(pd, json_string_value(h), &a))
			agent_tell(pd, json_string_value(h), AGENT_SET_MASTER,
				   json_pack("[s,i,I]", pd->pd_mfo->mf_ms.ms_master_address, pd->pd_port,
					     (json_int_t)pd->pd_mfo->mf_epoch));
	}
	json_decref(hosts);
}

static json_t *mfo_transition_txn(struct db *db, void *ctx)
{
	const char *uuid = ctx;
	return msg_add(db, "POOL_MASTER_TRANSITION", 4, "Host", uuid, "this host is the pool master now");
}

/* pd_db is open and ours (its lock held): become the master under one
 * more epoch. why: "" at a plain start, else what made this poold master. */
static json_t *mfo_become_master(struct poold *pd, const char *why)
{
	struct mfo *m = pd->pd_mfo;
	char err[512] = "";
	uint64_t epoch = mfo_db_epoch(pd->pd_db);
	if (m->mf_ms.ms_epoch > epoch)
		epoch = m->mf_ms.ms_epoch;
	struct lease_obs o;
	if (m->mf_lease) {
		lease_io_observe(m->mf_lease, &o);
		if (o.lo_lease_ok && o.lo_lease.hl_epoch > epoch)
			epoch = o.lo_lease.hl_epoch;
		m->mf_capable_before = o.lo_lease_ok ? o.lo_lease.hl_capable : 0;
	}
	m->mf_became_ms = mfo_now();
	epoch++;
	mfo_db_hooks(pd);
	/* the lease and the answers name this host from now on */
	mfo_my_address(pd, m->mf_ms.ms_master_address, sizeof m->mf_ms.ms_master_address);
	if (db_is_shared(pd->pd_db)) {
		if (m->mf_ms.ms_ha && mfo_lease_run(pd, m->mf_ms.ms_ha) && mfo_lease_take(pd, epoch, err, sizeof err) < 0)
			return xerr_newf(XE_INTERNAL_ERROR, "taking the master's lease: %s", err);
		pd->pd_durable = durable_new(pd->pd_base, m->mf_ms.ms_database, http_held_flush, pd);
	}
	struct epoch_ctx ec = {epoch, ""};
	snprintf(ec.host_uuid, sizeof ec.host_uuid, "%s", m->mf_ms.ms_host_uuid);
	json_t *e = db_txn(pd->pd_db, mfo_epoch_txn, &ec);
	if (e)
		return e;
	m->mf_epoch = epoch;
	if (*why)
		snprintf(pd->pd_took_over, sizeof pd->pd_took_over, "%s", why);
	if (master_start(pd, err, sizeof err) < 0)
		return xerr_newf(XE_INTERNAL_ERROR, "%s", err);
	m->mf_role = MFO_MASTER;
	m->mf_became_ms = mfo_now();
	snprintf(m->mf_ms.ms_master_uuid, sizeof m->mf_ms.ms_master_uuid, "%s", m->mf_ms.ms_host_uuid);
	m->mf_ms.ms_port = pd->pd_port;
	m->mf_ms.ms_epoch = epoch;
	if (m->mf_ms.ms_exists || m->mf_ms.ms_database[0])
		mfo_save(pd);
	if (*why) {
		/* HA restarts wait until the hosts have told this master what runs */
		int64_t settle = host_reports_settle_ms(pd);
		if (pd->pd_ha && pd->pd_ha->hs_prevent_until < mfo_now() + settle)
			pd->pd_ha->hs_prevent_until = mfo_now() + settle;
		json_decref(db_txn(pd->pd_db, mfo_transition_txn, m->mf_ms.ms_host_uuid));
		mfo_tell_agents(pd);
		log_warn("pool master now (epoch %llu): %s", (unsigned long long)epoch, why);
	}
	return NULL;
}

json_t *mfo_take_over(struct poold *pd, const char *why)
{
	struct mfo *m = pd->pd_mfo;
	if (m->mf_role == MFO_MASTER)
		return NULL;
	if (!m->mf_ms.ms_database[0])
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "this host does not know where the pool database is yet");
	char err[512] = "";
	bool busy = false;
	int64_t t0 = mfo_now();
	pd->pd_db = db_open_shared(m->mf_ms.ms_database, &busy, err, sizeof err);
	if (!pd->pd_db)
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "%s%s", err,
				 busy ? ": another poold is the master (it must stop or step down first)" : "");
	json_t *e = mfo_become_master(pd, why);
	if (e) {
		char *s = xerr_to_text(e);
		log_error("taking over as master failed: %s", s ? s : "?");
		free(s);
		if (m->mf_lease)
			lease_io_release(m->mf_lease, false, false);
		m->mf_holding = false;
		durable_free(pd->pd_durable);
		pd->pd_durable = NULL;
		if (pd->pd_master) {
			/* half a master cannot go back: start again as a standby */
			mfo_step_down(pd, "the takeover failed half-way", false);
			return e;
		}
		db_close(pd->pd_db);
		pd->pd_db = NULL;
		return e;
	}
	log_info("took over as pool master in %lld ms", (long long)(mfo_now() - t0));
	return NULL;
}

/* ------------------------------------------------------ stepping down */

static void mfo_exit_loop(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct poold *pd = arg;
	event_base_loopexit(pd->pd_base, NULL);
}

void mfo_step_down(struct poold *pd, const char *why, bool say_released)
{
	struct mfo *m = pd->pd_mfo;
	if (m->mf_reexec)
		return;
	atomic_store(&m->mf_stepped_down, true); /* no write from now on */
	log_error("pool master: stepping down now: %s", why);
	if (m->mf_lease)
		lease_io_release(m->mf_lease, say_released && m->mf_holding, false);
	m->mf_holding = false;
	m->mf_reexec = true;
	/* clients hear it from now on; the process starts again once the
	 * answers already made have left */
	m->mf_role = MFO_STANDBY;
	if (strcmp(m->mf_ms.ms_master_uuid, m->mf_ms.ms_host_uuid) == 0)
		m->mf_ms.ms_master_address[0] = '\0';
	struct timeval tv = {0, 300 * 1000};
	event_base_once(pd->pd_base, -1, EV_TIMEOUT, mfo_exit_loop, pd, &tv);
}

bool mfo_reexec_wanted(struct poold *pd)
{
	return pd->pd_mfo && pd->pd_mfo->mf_reexec;
}

char **mfo_argv(struct poold *pd)
{
	return pd->pd_mfo->mf_argv;
}

/* ------------------------------------------------------------ the master */

/* This host's agent, in its latest slot, says it is in the liveset (a
 * master takes its lease only then: else its first verdict would drop it). */
static bool mfo_host_up(struct poold *pd)
{
	struct mfo *m = pd->pd_mfo;
	struct lease_obs o;
	lease_io_observe(m->mf_lease, &o);
	int self = lease_io_cfg(m->mf_lease)->lc_self;
	return o.lo_read_ms >= 0 && o.lo_self_ok && (o.lo_self.hw_liveset & HA_BIT(self)) && !o.lo_self.hw_losing &&
	       !o.lo_self.hw_fenced && !o.lo_self.hw_excluded &&
	       mfo_now() - o.lo_self_slot_ms < lease_io_timing(m->mf_lease)->lt_slot_live_ms;
}

json_t *mfo_db_move(struct poold *pd, const char *sr)
{
	struct mfo *m = pd->pd_mfo;
	char vdi[64], path[4000], err[512] = "", wal[4100], host_uuid[48] = "";
	if (db_is_shared(pd->pd_db))
		return NULL;
	json_t *h = db_obj_get(pd->pd_db, pd->pd_host_ref);
	snprintf(host_uuid, sizeof host_uuid, "%s", jstr(h, "uuid"));
	json_decref(h);
	json_t *e = mfo_db_vdi(pd, sr, vdi, path, sizeof path);
	if (e)
		return e;
	snprintf(wal, sizeof wal, "%s-wal", path);
	unlink(path); /* a copy an earlier move left: the records are here */
	unlink(wal);
	int64_t t0 = mfo_now();
	if (db_copy_to(pd->pd_db, path, err, sizeof err) < 0)
		return xerr_newf(XE_INTERNAL_ERROR, "%s", err);
	bool busy;
	struct db *nd = db_open_shared(path, &busy, err, sizeof err);
	if (!nd)
		return xerr_newf(XE_INTERNAL_ERROR, "%s", err);
	struct db *old = pd->pd_db;
	pd->pd_db = nd;
	db_close(old);
	mfo_db_hooks(pd);
	pd->pd_durable = durable_new(pd->pd_base, path, http_held_flush, pd);
	struct mstate *ms = &m->mf_ms;
	snprintf(ms->ms_database, sizeof ms->ms_database, "%s", path);
	snprintf(ms->ms_host_uuid, sizeof ms->ms_host_uuid, "%s", host_uuid);
	snprintf(ms->ms_master_uuid, sizeof ms->ms_master_uuid, "%s", host_uuid);
	mfo_my_address(pd, ms->ms_master_address, sizeof ms->ms_master_address);
	ms->ms_port = pd->pd_port;
	ms->ms_epoch = m->mf_epoch;
	mfo_save(pd);
	char local[4200], aside[4300];
	snprintf(local, sizeof local, "%s/pool.db", pd->pd_dir);
	snprintf(aside, sizeof aside, "%s.moved", local);
	if (rename(local, aside) < 0)
		log_warn("%s: %s", local, strerror(errno));
	log_info("the pool database moved to %s (SR %s) in %lld ms: any host that plugs that SR can take over", path,
		 sr, (long long)(mfo_now() - t0));
	return NULL;
}

/* What agents learn with each heartbeat (heartbeat.c): where the master is
 * and which hosts could be. */
static void mfo_master_info(struct poold *pd)
{
	struct mfo *m = pd->pd_mfo;
	json_t *masters = json_array();
	json_array_append_new(masters, json_string(m->mf_ms.ms_master_address));
	const char *ref;
	json_t *sb;
	json_object_foreach(m->mf_standbys, ref, sb) if (mfo_now() - json_integer_value(json_object_get(sb, "at")) <
							 3 * SYNC_EVERY_MS) json_array_append(masters, json_object_get(sb, "address"));
	json_object_set_new(pd->pd_master_info, "epoch", json_integer((json_int_t)m->mf_epoch));
	json_object_set_new(pd->pd_master_info, "address", json_string(m->mf_ms.ms_master_address));
	json_object_set_new(pd->pd_master_info, "port", json_integer(pd->pd_port));
	json_object_set_new(pd->pd_master_info, "masters", masters);
}

static void mfo_master_tick(struct poold *pd)
{
	struct mfo *m = pd->pd_mfo;
	struct ha_state *st = pd->pd_ha;
	bool ha_on = st && st->hs_conf && !st->hs_enabling && !st->hs_disabling;
	int64_t now = mfo_now();
	if (!m->mf_ms.ms_host_uuid[0]) { /* a master made by poold init: its host is the one an agent claimed */
		json_t *h = db_obj_get(pd->pd_db, pd->pd_host_ref);
		if (*jstr(json_object_get(h, "other_config"), "agent_address")) {
			snprintf(m->mf_ms.ms_host_uuid, sizeof m->mf_ms.ms_host_uuid, "%s", jstr(h, "uuid"));
			snprintf(m->mf_ms.ms_master_uuid, sizeof m->mf_ms.ms_master_uuid, "%s", jstr(h, "uuid"));
			mfo_my_address(pd, m->mf_ms.ms_master_address, sizeof m->mf_ms.ms_master_address);
		}
		json_decref(h);
	}
	/* under HA with hosts able to take over, the database goes to the HA SR */
	if (ha_on && !db_is_shared(pd->pd_db) && json_object_size(m->mf_standbys) && now >= m->mf_move_retry) {
		json_t *e = mfo_db_move(pd, jstr(st->hs_conf, "sr"));
		if (e) {
			char *s = xerr_to_text(e);
			log_error("moving the pool database to the HA SR failed: %s (tried again in 10 s)", s ? s : "?");
			free(s);
			json_decref(e);
			m->mf_move_retry = now + 10000;
		}
	}
	json_t *ha = ha_on && db_is_shared(pd->pd_db) ? mfo_ha_info(pd, pd->pd_host_ref) : NULL;
	if (!json_equal(ha, m->mf_ms.ms_ha) && (ha || m->mf_ms.ms_ha)) {
		if (!ha)
			mfo_lease_stop(pd, true); /* HA is off: the standbys stop watching */
		json_decref(m->mf_ms.ms_ha);
		m->mf_ms.ms_ha = json_incref(ha);
		mfo_save(pd);
	}
	if (ha && mfo_lease_run(pd, ha) && !m->mf_holding && now >= m->mf_lease_retry && mfo_host_up(pd)) {
		char err[512];
		if (mfo_lease_take(pd, m->mf_epoch, err, sizeof err) == 0)
			log_info("master lease taken in the statefile (epoch %llu)", (unsigned long long)m->mf_epoch);
		else
			m->mf_lease_retry = now + 1000;
	}
	json_decref(ha);
	mfo_master_info(pd);
}

static void mfo_on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct poold *pd = arg;
	struct mfo *m = pd->pd_mfo;
	if (m->mf_reexec)
		return;
	if (m->mf_role == MFO_MASTER) {
		mfo_master_tick(pd);
	} else {
		mfo_standby_tick(pd);
		if (m->mf_ha_changed) {
			m->mf_ha_changed = false;
			if (!m->mf_ms.ms_ha || !mfo_lease_run(pd, m->mf_ms.ms_ha))
				mfo_lease_stop(pd, false);
		}
	}
	struct ha_lease_verdict out;
	if (!m->mf_lease || m->mf_reexec || !mfo_lease_tick(pd, &out))
		return;
	if (out.lv_act == HA_LEASE_STEP_DOWN) {
		mfo_step_down(pd, out.lv_why, strcmp(out.lv_why, "another master holds the lease") != 0);
	} else if (out.lv_act == HA_LEASE_TAKE) {
		json_t *e = mfo_take_over(pd, out.lv_why);
		if (e) {
			char *s = xerr_to_text(e);
			log_warn("could not take over: %s", s ? s : "?");
			free(s);
			json_decref(e);
		}
	}
}

/* ------------------------------------------------------ start and stop */

int mfo_start(struct poold *pd, char *err, size_t errlen)
{
	struct mfo *m = pd->pd_mfo;
	char ca[4200], cert[4200], key[4200];
	snprintf(ca, sizeof ca, "%s/ca.pem", pd->pd_dir);
	snprintf(cert, sizeof cert, "%s/server.pem", pd->pd_dir);
	snprintf(key, sizeof key, "%s/server.key", pd->pd_dir);
	m->mf_peer_ctx = tls_client_ctx(ca, cert, key, err, errlen);
	if (!m->mf_peer_ctx)
		return -1;
	m->mf_tick = event_new(pd->pd_base, -1, EV_PERSIST, mfo_on_tick, pd);
	struct timeval tv = {0, TICK_MS * 1000};
	event_add(m->mf_tick, &tv);
	if (m->mf_role == MFO_MASTER) {
		json_t *e = mfo_become_master(pd, "");
		if (e) {
			char *s = xerr_to_text(e);
			snprintf(err, errlen, "%s", s ? s : "cannot start as master");
			free(s);
			json_decref(e);
			return -1;
		}
		return 0;
	}
	/* this host's record says it was the master, yet it starts as a standby
	 * (its database taken meanwhile): whoever is master now is not known
	 * until the lease or a new master says it, and sending clients to
	 * ourselves would loop them */
	if (*m->mf_ms.ms_host_uuid && !strcmp(m->mf_ms.ms_master_uuid, m->mf_ms.ms_host_uuid))
		m->mf_ms.ms_master_address[0] = '\0';
	log_info("standby: the pool master is %s:%d (epoch %llu)%s", *m->mf_ms.ms_master_address ? m->mf_ms.ms_master_address : "?",
		 m->mf_ms.ms_port, (unsigned long long)m->mf_ms.ms_epoch,
		 m->mf_ms.ms_ha ? "; HA is on: this host takes over if the master's lease expires" : "");
	if (m->mf_ms.ms_ha)
		mfo_lease_run(pd, m->mf_ms.ms_ha);
	return 0;
}

void mfo_stop(struct poold *pd)
{
	struct mfo *m = pd->pd_mfo;
	if (!m)
		return;
	if (m->mf_tick)
		event_free(m->mf_tick);
	m->mf_tick = NULL;
	mfo_lease_stop(pd, false);
	durable_free(pd->pd_durable);
	pd->pd_durable = NULL;
	if (m->mf_peer_ctx)
		SSL_CTX_free(m->mf_peer_ctx);
	mstate_clear(&m->mf_ms);
	json_decref(m->mf_standbys);
	json_decref(m->mf_local_sessions);
	json_decref(pd->pd_master_info);
	pd->pd_master_info = NULL;
	free(m);
	pd->pd_mfo = NULL;
}
