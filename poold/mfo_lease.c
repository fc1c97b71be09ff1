/*
 * mfo_lease.c - the master's lease as a poold applies it (the rule is
 * ha/lease.c's, the statefile thread lease_io.c's): what the master writes
 * in it (which standbys are candidates), starting and stopping the thread,
 * taking the lease, and every tick's verdict: renewing and following the
 * master it names are done here; stepping down and taking over, mfo.c's.
 */
#include <stdio.h>
#include <string.h>
#include "log.h"
#include "poold.h"
#include "util.h"

#define SYNC_EVERY_MS 2000 /* a standby's pool.standby_sync (mfo_sync.c) */

static int64_t mfo_now(void)
{
	return (int64_t)now_ms();
}

static void mfo_lease_fill(struct poold *pd, uint64_t epoch, struct ha_lease *l)
{
	struct mfo *m = pd->pd_mfo;
	const struct lease_cfg *c = lease_io_cfg(m->mf_lease);
	memset(l, 0, sizeof *l);
	snprintf(l->hl_generation, sizeof l->hl_generation, "%s", c->lc_generation);
	l->hl_epoch = epoch;
	snprintf(l->hl_holder, sizeof l->hl_holder, "%s", m->mf_ms.ms_host_uuid);
	snprintf(l->hl_run, sizeof l->hl_run, "%s", m->mf_run);
	snprintf(l->hl_address, sizeof l->hl_address, "%s", m->mf_ms.ms_master_address);
	l->hl_port = pd->pd_port;
	l->hl_capable = HA_BIT(c->lc_self);
	/* a new master knows no standby yet: those of the lease it took stay
	 * candidates until they have had time to keep up with it */
	if (mfo_now() - m->mf_became_ms < 3 * SYNC_EVERY_MS)
		l->hl_capable |= m->mf_capable_before;
	const char *ref;
	json_t *sb;
	char path[4200];
	json_object_foreach(m->mf_standbys, ref, sb) {
		/* its host sees the database, where it was told it is (pool.standby_sync) */
		int i = lease_cfg_member(c, jstr(sb, "uuid"));
		bool told = mfo_db_path_for(pd, ref, path, sizeof path) && !strcmp(jstr(sb, "database"), path) &&
			    !strcmp(jstr(sb, "generation"), c->lc_generation);
		json_t *beat = json_object_get(pd->pd_host_seen, ref); /* its agent's last heartbeat, in s */
		if (i >= 0 && ha_lease_standby_capable(told, json_integer_value(json_object_get(sb, "at")),
						       beat ? json_integer_value(beat) * 1000 : -1, mfo_now(),
						       3 * SYNC_EVERY_MS))
			l->hl_capable |= HA_BIT(i);
	}
}

/* Start (or restart) the statefile thread for HA info ha; false when it
 * cannot run (no usable info, this host not a member). */
bool mfo_lease_run(struct poold *pd, json_t *ha)
{
	struct mfo *m = pd->pd_mfo;
	struct lease_cfg c;
	if (!ha || lease_cfg_parse(ha, m->mf_ms.ms_host_uuid, &c) < 0)
		return false;
	if (m->mf_lease && strcmp(lease_io_cfg(m->mf_lease)->lc_generation, c.lc_generation) == 0 &&
	    strcmp(lease_io_cfg(m->mf_lease)->lc_statefile, c.lc_statefile) == 0)
		return true;
	lease_io_stop(m->mf_lease);
	m->mf_lease = lease_io_start(&c);
	m->mf_holding = false;
	return true;
}

void mfo_lease_stop(struct poold *pd, bool off)
{
	struct mfo *m = pd->pd_mfo;
	if (!m->mf_lease)
		return;
	lease_io_release(m->mf_lease, m->mf_holding, off);
	m->mf_holding = false;
	lease_io_stop(m->mf_lease);
	m->mf_lease = NULL;
}

/* The lease, under the epoch being taken: 0, or -1 with err. */
int mfo_lease_take(struct poold *pd, uint64_t epoch, char *err, size_t errlen)
{
	struct mfo *m = pd->pd_mfo;
	struct ha_lease l;
	mfo_lease_fill(pd, epoch, &l);
	if (lease_io_acquire(m->mf_lease, &l, err, errlen) < 0)
		return -1;
	m->mf_holding = true;
	return 0;
}

static void mfo_view(struct poold *pd, const struct lease_obs *o, struct ha_lease_view *v)
{
	struct mfo *m = pd->pd_mfo;
	const struct lease_cfg *c = lease_io_cfg(m->mf_lease);
	memset(v, 0, sizeof *v);
	v->lv_n = c->lc_n;
	v->lv_self = c->lc_self;
	v->lv_now_ms = mfo_now();
	v->lv_t = *lease_io_timing(m->mf_lease);
	v->lv_lease_valid = o->lo_lease_ok;
	v->lv_lease = o->lo_lease;
	v->lv_holder = o->lo_holder;
	v->lv_lease_seen_ms = o->lo_lease_seen_ms;
	v->lv_read_ms = o->lo_read_ms;
	v->lv_self_slot_ms = o->lo_self_ok ? o->lo_self_slot_ms : -1;
	v->lv_self_losing = o->lo_self.hw_losing;
	v->lv_self_fenced = o->lo_self.hw_fenced;
	v->lv_self_excluded = o->lo_self.hw_excluded;
	v->lv_self_liveset = o->lo_self.hw_liveset;
	v->lv_holding = m->mf_holding;
	v->lv_epoch = m->mf_epoch;
	v->lv_renewed_ms = o->lo_renewed_ms;
}

static void mfo_say(struct mfo *m, const struct ha_lease_verdict *out)
{
	if (m->mf_said != out->lv_why) {
		m->mf_said = out->lv_why;
		log_info("master lease: %s", out->lv_why);
	}
}

/* The lease as this poold sees it now (poold.h). */
bool mfo_lease_tick(struct poold *pd, struct ha_lease_verdict *out)
{
	struct mfo *m = pd->pd_mfo;
	struct lease_obs o;
	struct ha_lease_view v;
	lease_io_observe(m->mf_lease, &o);
	/* a standby follows the master the lease names */
	if (!m->mf_holding && o.lo_lease_ok && o.lo_lease.hl_epoch >= m->mf_ms.ms_epoch && o.lo_lease.hl_holder[0] &&
	    strcmp(o.lo_lease.hl_address, m->mf_ms.ms_master_address)) {
		char err[512];
		snprintf(m->mf_ms.ms_master_address, sizeof m->mf_ms.ms_master_address, "%s", o.lo_lease.hl_address);
		snprintf(m->mf_ms.ms_master_uuid, sizeof m->mf_ms.ms_master_uuid, "%s", o.lo_lease.hl_holder);
		m->mf_ms.ms_epoch = o.lo_lease.hl_epoch;
		if (mstate_save(pd->pd_dir, &m->mf_ms, err, sizeof err) < 0)
			log_error("%s", err);
	}
	if (m->mf_role == MFO_MASTER && !m->mf_holding)
		return false; /* the master has not (re)taken its lease yet: mfo_master_tick */
	if (o.lo_read_ms < 0 || (m->mf_holding && o.lo_read_ms < o.lo_renewed_ms))
		return false; /* nothing read since the lease was taken: no verdict yet (the guard still holds) */
	mfo_view(pd, &o, &v);
	ha_lease_decide(&v, out);
	mfo_say(m, out);
	if (out->lv_act == HA_LEASE_RENEW) {
		struct ha_lease l;
		mfo_lease_fill(pd, m->mf_epoch, &l);
		lease_io_update(m->mf_lease, &l);
	}
	return true;
}
