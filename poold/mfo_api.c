/*
 * mfo_api.c - the calls about the master's role.
 *
 * On a standby (mfo_divert, before any method lookup): every host answers
 * the public API port. A login gets HOST_IS_SLAVE [master address], so xe
 * and the xen-api client go to the master; a call carrying a session gets
 * SESSION_INVALID (sessions live on the master: a client that was talking
 * to a master that moved logs in again and is sent on); an agent's
 * heartbeat gets HOST_IS_SLAVE too. The operator's emergency calls work
 * with a local login (session.slave_local_login_with_password, against
 * the password hash the standby keeps), as on a XAPI slave.
 *
 * On the master: pool.standby_sync (a standby keeps up), pool.standby_join
 * (`poold join` with a one-time token: the CA key goes to the new standby),
 * pool.designate_new_master (the role moves on purpose: this master stops
 * writing, closes the database, and the designated host's standby takes
 * it with pool.designate_commit).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "evrpc.h"
#include "log.h"
#include "poold.h"
#include "pwhash.h"
#include "tls.h"
#include "util.h"
#include "xerr.h"

#define STANDBY_FRESH_MS 6000

static int64_t mapi_now(void)
{
	return (int64_t)now_ms();
}

/* ---------------------------------------------------------- on a standby */

static json_t *mapi_slave(struct mfo *m)
{
	if (!m->mf_ms.ms_master_address[0])
		return xerr_newf(XE_INTERNAL_ERROR, "this host is not the pool master and knows of none yet");
	return xerr_new(XE_HOST_IS_SLAVE, m->mf_ms.ms_master_address, NULL);
}

static json_t *mapi_local_login(struct poold *pd, struct api_call *c)
{
	struct mfo *m = pd->pd_mfo;
	const char *user = json_string_value(json_array_get(c->ac_params, 0));
	const char *pw = json_string_value(json_array_get(c->ac_params, 1));
	const char *hash = user ? jstr(m->mf_ms.ms_users, user) : "";
	if (!user || !pw || !*hash || !pwhash_verify(pw, hash))
		return xerr_new(XE_SESSION_AUTHENTICATION_FAILED, user ? user : "", "Authentication failure", NULL);
	char uuid[48], ref[64];
	model_new_uuid(uuid);
	snprintf(ref, sizeof ref, "OpaqueRef:%s", uuid);
	json_object_set_new(m->mf_local_sessions, ref, json_string(user));
	log_warn("standby: local login of %s from %s (emergency calls only)", user, c->ac_addr);
	c->ac_result = json_string(ref);
	return NULL;
}

/* A local session first; then HA must be off (XAPI: HA_IS_ENABLED). */
static json_t *mapi_emergency_check(struct mfo *m, struct api_call *c)
{
	const char *s = json_string_value(json_array_get(c->ac_params, 0));
	if (!s || !json_object_get(m->mf_local_sessions, s))
		return xerr_new(XE_SESSION_INVALID, s ? s : "", NULL);
	if (m->mf_ms.ms_ha)
		return xerr_new(XE_HA_IS_ENABLED, NULL);
	return NULL;
}

static json_t *mapi_emergency_transition(struct poold *pd, struct api_call *c)
{
	json_t *e = mapi_emergency_check(pd->pd_mfo, c);
	if (e)
		return e;
	e = mfo_take_over(pd, "pool.emergency_transition_to_master (by the operator)");
	if (!e)
		c->ac_result = json_string("");
	return e;
}

static json_t *mapi_emergency_reset(struct poold *pd, struct api_call *c)
{
	struct mfo *m = pd->pd_mfo;
	const char *addr = json_string_value(json_array_get(c->ac_params, 1));
	json_t *e = mapi_emergency_check(m, c);
	if (e)
		return e;
	if (!addr || tls_name_kind(addr, NULL, NULL) == TLS_NAME_INVALID)
		return xerr_new(XE_INVALID_VALUE, "master_address", addr ? addr : "", NULL);
	snprintf(m->mf_ms.ms_master_address, sizeof m->mf_ms.ms_master_address, "%s", addr);
	m->mf_ms.ms_master_uuid[0] = '\0';
	m->mf_next_sync = 0;
	char err[512];
	if (mstate_save(pd->pd_dir, &m->mf_ms, err, sizeof err) < 0)
		return xerr_newf(XE_INTERNAL_ERROR, "%s", err);
	log_warn("standby: the operator says the pool master is %s now", addr);
	c->ac_result = json_string("");
	return NULL;
}

/* pool.designate_commit(epoch, database): the master handed its database
 * (that file, as this host sees it) over. */
static json_t *mapi_designate_commit(struct poold *pd, struct api_call *c)
{
	struct mfo *m = pd->pd_mfo;
	const char *db = json_string_value(json_array_get(c->ac_params, 1));
	if (strcmp(c->ac_peer, TLS_MASTER_CN) != 0)
		return xerr_new(XE_PERMISSION_DENIED, "only the pool master may hand its role over", NULL);
	if (!db || !*db || strlen(db) >= sizeof m->mf_ms.ms_database)
		return xerr_new(XE_INVALID_VALUE, "database", db ? db : "", NULL);
	snprintf(m->mf_ms.ms_database, sizeof m->mf_ms.ms_database, "%s", db);
	json_t *e = mfo_take_over(pd, "pool.designate_new_master: the master handed its role over");
	if (!e)
		c->ac_result = json_pack("{s:I}", "epoch", (json_int_t)pd->pd_mfo->mf_epoch);
	return e;
}

static bool mapi_is_session(json_t *params)
{
	const char *s = json_string_value(json_array_get(params, 0));
	return s && strncmp(s, "OpaqueRef:", 10) == 0;
}

bool mfo_divert(struct api_call *c, const char *method)
{
	struct poold *pd = c->ac_pd;
	struct mfo *m = pd->pd_mfo;
	if (!m || m->mf_role == MFO_MASTER)
		return false;
	json_t *e = NULL;
	if (strcmp(method, "session.slave_local_login_with_password") == 0)
		e = mapi_local_login(pd, c);
	else if (strcmp(method, "pool.emergency_transition_to_master") == 0)
		e = mapi_emergency_transition(pd, c);
	else if (strcmp(method, "pool.emergency_reset_master") == 0)
		e = mapi_emergency_reset(pd, c);
	else if (strcmp(method, "pool.designate_commit") == 0)
		e = mapi_designate_commit(pd, c);
	else if (strcmp(method, "session.logout") == 0 && mapi_is_session(c->ac_params) &&
		 json_object_del(m->mf_local_sessions, json_string_value(json_array_get(c->ac_params, 0))) == 0)
		c->ac_result = json_string("");
	else if (strcmp(method, "session.login_with_password") != 0 && mapi_is_session(c->ac_params))
		e = xerr_new(XE_SESSION_INVALID, json_string_value(json_array_get(c->ac_params, 0)), NULL);
	else
		e = mapi_slave(m);
	api_call_finish(c, e);
	return true;
}

/* ------------------------------------------------------------ on the master */

/* pool.standby_sync(host_uuid): what a standby keeps (master.json). */
json_t *pool_standby_sync(struct api_call *c)
{
	struct poold *pd = c->ac_pd;
	struct mfo *m = pd->pd_mfo;
	const char *uuid;
	char ref[64], dbp[4200] = "";
	json_t *e = api_arg_str(c, 0, "host_uuid", &uuid);
	if (e)
		return e;
	if (strcmp(c->ac_peer, TLS_MASTER_CN) != 0)
		return xerr_new(XE_PERMISSION_DENIED, "only a pool-master certificate may keep up with the master", NULL);
	if (!db_ref_by_uuid(pd->pd_db, "host", uuid, ref))
		return xerr_new(XE_UUID_INVALID, "host", uuid, NULL);
	bool sees = db_is_shared(pd->pd_db) && mfo_db_path_for(pd, ref, dbp, sizeof dbp);
	json_t *h = db_obj_get(pd->pd_db, ref);
	json_t *ha = sees ? mfo_ha_info(pd, ref) : NULL;
	/* what it was told, which the lease's candidates are checked against */
	json_object_set_new(m->mf_standbys, ref,
			    json_pack("{s:s, s:s, s:I, s:s, s:s}", "uuid", uuid, "address", jstr(h, "address"), "at",
				      (json_int_t)mapi_now(), "database", dbp, "generation", jstr(ha, "generation")));
	json_decref(h);
	char *root = db_user_hash(pd->pd_db, "root");
	c->ac_result = json_pack("{s:I, s:s, s:s, s:i, s:s, s:o, s:{s:s}, s:O?}", "epoch", (json_int_t)m->mf_epoch,
				 "master_uuid", m->mf_ms.ms_master_uuid, "master_address", m->mf_ms.ms_master_address, "port",
				 pd->pd_port, "database", dbp, "ha", ha ? ha : json_null(), "users", "root", root ? root : "",
				 "peers", json_object_get(pd->pd_master_info, "masters"));
	free(root);
	return NULL;
}

struct sjoin_ctx {
	const char *token, *uuid;
	char host[64];
};

static json_t *mapi_join_txn(struct db *db, void *ctx)
{
	struct sjoin_ctx *j = ctx;
	char hash[65];
	join_token_hash(j->token, hash);
	json_t *e = db_token_use(db, hash, (int64_t)time(NULL));
	if (!e && !db_ref_by_uuid(db, "host", j->uuid, j->host))
		e = xerr_new(XE_UUID_INVALID, "host", j->uuid, NULL);
	return e;
}

/* pool.standby_join(token, host_uuid): a host's poold becomes a standby.
 * The one-time token is the operator's consent; the answer holds the pool
 * CA's key, so the standby can make its own master certificate now and
 * sign joining hosts' certificates once it is master. */
json_t *pool_standby_join(struct api_call *c)
{
	struct poold *pd = c->ac_pd;
	struct sjoin_ctx j = {0};
	json_t *e = api_arg_str(c, 0, "token", &j.token);
	if (e || (e = api_arg_str(c, 1, "host_uuid", &j.uuid)) || (e = db_txn(pd->pd_db, mapi_join_txn, &j)))
		return e;
	char path[4200];
	snprintf(path, sizeof path, "%s/ca.key", pd->pd_dir);
	FILE *f = fopen(path, "re");
	char key[16384];
	size_t n = f ? fread(key, 1, sizeof key - 1, f) : 0;
	if (f)
		fclose(f);
	if (!n)
		return xerr_newf(XE_INTERNAL_ERROR, "cannot read the pool CA's key");
	key[n] = '\0';
	log_warn("host %s joined as a standby master: it holds the pool CA's key from now on", j.uuid);
	c->ac_result = json_pack("{s:s, s:s, s:s, s:i, s:I}", "ca_key", key, "master_uuid", pd->pd_mfo->mf_ms.ms_master_uuid,
				 "master_address", pd->pd_mfo->mf_ms.ms_master_address, "port", pd->pd_port, "epoch",
				 (json_int_t)pd->pd_mfo->mf_epoch);
	return NULL;
}
