/*
 * api_ha.c - XAPI's HA calls: pool.enable_ha / disable_ha, the planner's
 * questions (failures to tolerate, real and hypothetical; does a plan
 * exist; where would these VMs restart), pool.ha_prevent_restarts_for,
 * host.emergency_ha_disable, the VM's HA settings with their checks, and
 * pool.ha_plan (ours): for each protected VM, where it restarts if a
 * host failed now, or why it would not, with the numbers.
 *
 * The effects (arming hosts, declaring failures, restarting) are
 * ha_run.c's and ha_restart.c's; the decisions are haplan.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>
#include "ha.h"
#include "log.h"
#include "poold.h"
#include "util.h"
#include "xerr.h"

#define DEFAULT_TIMEOUT_S 60

static json_t *pool_rec(struct db *db, char *ref)
{
	json_t *pools = db_find(db, "pool", NULL, NULL), *p = NULL;
	void *it = json_object_iter(pools);
	if (it) {
		p = json_incref(json_object_iter_value(it));
		if (ref)
			snprintf(ref, 64, "%s", json_object_iter_key(it));
	}
	json_decref(pools);
	return p;
}

/* ------------------------------------------------------ enable */

/* Every host up with its agent, at least two (HA_TOO_FEW_HOSTS). */
static json_t *check_hosts(struct poold *pd, json_t **members)
{
	json_t *hosts = db_find(pd->pd_db, "host", NULL, NULL);
	const char *ref;
	json_t *h, *e = NULL;
	*members = json_object();
	json_object_foreach(hosts, ref, h) {
		struct agent_addr a;
		if (!e && (!agent_target(pd, ref, &a) || !json_object_get(pd->pd_host_seen, ref)))
			e = xerr_new(XE_HOST_OFFLINE, ref, NULL);
		json_object_set_new(*members, ref, json_string(jstr(h, "uuid")));
	}
	json_decref(hosts);
	if (!e && json_object_size(*members) < 2)
		e = xerr_new(XE_HA_TOO_FEW_HOSTS, NULL);
	if (e) {
		json_decref(*members);
		*members = NULL;
	}
	return e;
}

/* A file SR every host has plugged. */
static json_t *sr_usable(struct db *db, const char *sr, json_t *members)
{
	json_t *rec = db_obj_get(db, sr), *e = NULL;
	if (!rec || strcmp(jstr(rec, "type"), "file") != 0) {
		json_decref(rec);
		return xerr_new(XE_CANNOT_CREATE_STATE_FILE, NULL);
	}
	json_t *pbds = db_find(db, "PBD", "SR", sr), *plugged = json_object();
	const char *k;
	json_t *p;
	json_object_foreach(pbds, k, p) if (json_is_true(json_object_get(p, "currently_attached")))
		json_object_set_new(plugged, jstr(p, "host"), json_true());
	json_object_foreach(members, k, p) if (!json_object_get(plugged, k)) e = xerr_new(XE_SR_HAS_NO_PBDS, sr, NULL);
	json_decref(pbds);
	json_decref(plugged);
	json_decref(rec);
	return e;
}

/* The heartbeat SR: the one given, else the default SR, else any. */
static json_t *choose_sr(struct db *db, json_t *given, json_t *members, char *sr)
{
	if (json_array_size(given) > 0) {
		const char *s = json_string_value(json_array_get(given, 0));
		char cls[16];
		if (!s || !db_obj_class(db, s, cls, sizeof cls) || strcmp(cls, "SR"))
			return xerr_new(XE_HANDLE_INVALID, "SR", s ? s : "", NULL);
		snprintf(sr, 64, "%s", s);
		return sr_usable(db, sr, members);
	}
	json_t *pool = pool_rec(db, NULL), *all = db_refs_all(db, "SR");
	json_array_insert_new(all, 0, json_string(jstr(pool, "default_SR")));
	json_decref(pool);
	size_t i;
	json_t *s;
	json_array_foreach(all, i, s) {
		json_t *e = sr_usable(db, json_string_value(s), members);
		if (!e) {
			snprintf(sr, 64, "%s", json_string_value(s));
			json_decref(all);
			return NULL;
		}
		json_decref(e);
	}
	json_decref(all);
	return xerr_new(XE_CANNOT_CREATE_STATE_FILE, NULL);
}

struct enable {
	char sr[64], vdi[64], vdi_uuid[48];
	json_int_t timeout;
	json_t *members;
	json_t *vdi_rec; /* a statefile VDI being created */
};

static json_t *configured_txn(struct db *db, void *ctx)
{
	struct enable *en = ctx;
	char pool[64], t[32];
	json_decref(pool_rec(db, pool));
	snprintf(t, sizeof t, "%lld", (long long)en->timeout);
	json_t *e = db_obj_update_new(db, pool, json_pack("{s:{s:s}, s:[s], s:i}", "ha_configuration", "timeout", t,
							"ha_statefiles", en->vdi, "ha_plan_exists_for", 0));
	const char *ref;
	json_t *u;
	json_object_foreach(en->members, ref, u) if (!e) e = db_obj_update_new(db, ref, json_pack("{s:[s]}", "ha_statefiles",
											       en->vdi));
	return e;
}

/* The statefile exists: arm the hosts (ha_run.c finishes the call). */
static json_t *enable_arm(struct api_call *c, struct enable *en)
{
	json_t *e = db_txn(c->ac_pd->pd_db, configured_txn, en);
	if (e)
		return e;
	unsigned char key[HA_KEY_LEN];
	char hex[2 * HA_KEY_LEN + 1], gen[48];
	if (RAND_bytes(key, sizeof key) != 1)
		return xerr_newf(XE_INTERNAL_ERROR, "no random bytes for the HA key");
	for (size_t i = 0; i < sizeof key; i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	model_new_uuid(gen);
	json_t *sr = db_obj_get(c->ac_pd->pd_db, en->sr);
	json_t *conf = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:O}", "generation", gen, "key", hex, "timeout",
				 en->timeout, "sr", en->sr, "sr_uuid", jstr(sr, "uuid"), "vdi", en->vdi, "vdi_uuid",
				 en->vdi_uuid, "members", en->members);
	json_decref(sr);
	log_info("HA: enabling on %zu hosts, statefile VDI %s, timeout %llds", json_object_size(en->members),
		 en->vdi_uuid, (long long)en->timeout);
	return ha_enable_begin(c, conf);
}

static json_t *statefile_txn(struct db *db, void *ctx)
{
	json_t **a = ctx; /* [rec, answer] */
	char ref[64];
	json_t *e = vdi_record_insert(db, a[0], a[1], ref);
	if (!e)
		json_object_set_new(a[0], "__ref", json_string(ref));
	return e;
}

static json_t *statefile_made(struct api_call *c, struct poold *pd, void *ctx, json_t *answer, json_t *err,
			      json_t **result)
{
	(void)result;
	struct enable *en = ctx;
	json_t *e = err ? xerr_new(XE_CANNOT_CREATE_STATE_FILE, NULL) : NULL;
	if (!e) {
		json_t *a[2] = {en->vdi_rec, answer};
		e = db_txn(pd->pd_db, statefile_txn, a);
	}
	if (!e && c) {
		snprintf(en->vdi, sizeof en->vdi, "%s", jstr(en->vdi_rec, "__ref"));
		e = enable_arm(c, en);
	}
	json_decref(en->members);
	json_decref(en->vdi_rec);
	return e;
}

json_t *api_ctor_record(const struct model_class *cls, const json_t *given);

/* An ha_statefile VDI left on sr by an earlier enable: reused, as XAPI does. */
static bool statefile_reuse(struct db *db, struct enable *en)
{
	json_t *vdis = db_find(db, "VDI", "SR", en->sr);
	const char *ref;
	json_t *v;
	bool found = false;
	json_object_foreach(vdis, ref, v) if (!found && strcmp(jstr(v, "type"), "ha_statefile") == 0) {
		snprintf(en->vdi, sizeof en->vdi, "%s", ref);
		snprintf(en->vdi_uuid, sizeof en->vdi_uuid, "%s", jstr(v, "uuid"));
		found = true;
	}
	json_decref(vdis);
	return found;
}

static json_t *statefile_create(struct api_call *c, struct enable *en)
{
	struct poold *pd = c->ac_pd;
	char host[64];
	if (!sr_worker(pd->pd_db, en->sr, host))
		return xerr_new(XE_SR_HAS_NO_PBDS, en->sr, NULL);
	model_new_uuid(en->vdi_uuid);
	json_t *given = json_pack("{s:s, s:s, s:s, s:s, s:I, s:b, s:b, s:{}}", "SR", en->sr, "name_label",
				  "Statefile for HA", "name_description", "Used by HA to decide which hosts survive",
				  "type", "ha_statefile", "virtual_size", (json_int_t)HA_STATEFILE_SIZE, "sharable", 1,
				  "read_only", 0, "other_config");
	en->vdi_rec = api_ctor_record(model_class_find("VDI"), given);
	json_decref(given);
	json_object_set_new(en->vdi_rec, "uuid", json_string(en->vdi_uuid));
	json_t *sr = db_obj_get(pd->pd_db, en->sr);
	struct enable *ctx = xmalloc(sizeof *ctx);
	*ctx = *en;
	json_t *e = agent_call_done(pd, c, host, AGENT_VDI_CREATE,
				    json_pack("[s,s,I]", jstr(sr, "uuid"), en->vdi_uuid, (json_int_t)HA_STATEFILE_SIZE),
				    statefile_made, ctx);
	json_decref(sr);
	return e;
}

static json_t *parse_timeout(json_t *config, json_int_t *t)
{
	json_t *v = json_object_get(config, "timeout");
	*t = DEFAULT_TIMEOUT_S;
	if (!v)
		return NULL;
	const char *s = json_string_value(v);
	char *end = NULL;
	long long n = s ? strtoll(s, &end, 10) : json_integer_value(v);
	if ((s && (!*s || *end)) || (!s && !json_is_integer(v)) || n < HA_MIN_TIMEOUT_S || n > HA_MAX_TIMEOUT_S)
		return xerr_new(XE_INVALID_VALUE, "timeout", s ? s : "?", NULL);
	*t = n;
	return NULL;
}

json_t *pool_enable_ha(struct api_call *c)
{
	struct poold *pd = c->ac_pd;
	json_t *srs = json_array_get(c->ac_args, 0), *config, *e;
	if (!json_is_array(srs))
		return xerr_new(XE_FIELD_TYPE_ERROR, "heartbeat_srs", NULL);
	if ((e = api_arg_obj(c, 1, "configuration", &config)))
		return e;
	if (pd->pd_ha->hs_enabling)
		return xerr_new(XE_HA_ENABLE_IN_PROGRESS, NULL);
	if (pd->pd_ha->hs_conf)
		return xerr_new(XE_HA_IS_ENABLED, NULL);
	if ((e = rpu_check_op(pd, "pool", "enable_ha"))) /* XAPI blocks it during an upgrade */
		return e;
	struct enable en = {0};
	if ((e = parse_timeout(config, &en.timeout)) || (e = check_hosts(pd, &en.members)))
		return e;
	if ((e = choose_sr(pd->pd_db, srs, en.members, en.sr))) {
		json_decref(en.members);
		return e;
	}
	if (statefile_reuse(pd->pd_db, &en)) {
		e = enable_arm(c, &en);
		json_decref(en.members);
		return e;
	}
	return statefile_create(c, &en);
}

json_t *pool_disable_ha(struct api_call *c)
{
	if (!c->ac_pd->pd_ha->hs_conf)
		return xerr_new(XE_HA_NOT_ENABLED, NULL);
	if (c->ac_pd->pd_ha->hs_enabling)
		return xerr_new(XE_HA_ENABLE_IN_PROGRESS, NULL);
	return ha_disable_begin(c, false);
}

/* host.emergency_ha_disable(soft): every host reachable leaves HA now,
 * without the orderly disable (there is one API endpoint here, poold). */
json_t *host_emergency_ha_disable(struct api_call *c)
{
	bool soft = false;
	json_t *e = api_arg_bool(c, 0, "soft", &soft);
	if (e)
		return e;
	if (!c->ac_pd->pd_ha->hs_conf)
		return xerr_new(XE_HA_NOT_ENABLED, NULL);
	c->ac_pd->pd_ha->hs_enabling = false;
	return ha_disable_begin(c, true);
}
