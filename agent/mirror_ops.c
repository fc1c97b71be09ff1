/*
 * mirror_ops.c - the agent's side of storage migration (see mirror_ops.h):
 * the methods poold calls, the list of this host's mirrors, and the hook
 * that puts the disks' last blocks inside the memory migration's pause.
 *
 * agent.vdi_mirror_receive (destination): makes the VDI, opens a one-time
 * endpoint that admits only the source host's certificate, and a thread
 * writes what comes into the VDI. agent.vdi_mirror_send (source): a
 * thread clears the disk's dirty-block log, snapshots the VDI, copies the
 * snapshot's data, then the blocks written meanwhile in rounds, then stays
 * ready until the pause. agent.vdi_mirror_status reports either end;
 * agent.vdi_mirror_end stops one and forgets it; agent.vdi_remove removes
 * a VDI's file if it is there (idempotent: poold's journal retries it).
 * agent.vdi_pivot (VDI.pool_migrate): pause, last round, the domain's
 * disk switched to the new VDI, unpause.
 *
 * A mirror lives in ag_mirrors (under ag_mirror_mu) and in its thread;
 * each holds a reference. The thread runs in a flight slot, so a stopping
 * agent cuts its socket and waits for it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_lock.h"
#include "evrpc.h"
#include "jsonrpc.h"
#include "log.h"
#include "mirror_ops.h"
#include "util.h"
#include "xerr.h"

/* ---- the list ---- */

void agent_mirrors_init(struct agent *ag)
{
	pthread_mutex_init(&ag->ag_mirror_mu, NULL);
}

void agent_mirrors_free(struct agent *ag)
{
	pthread_mutex_lock(&ag->ag_mirror_mu);
	struct mirror *m = ag->ag_mirrors;
	ag->ag_mirrors = NULL;
	pthread_mutex_unlock(&ag->ag_mirror_mu);
	while (m) { /* the threads are gone (agent_migrations_stop): only the list's references remain */
		struct mirror *next = m->mi_next;
		mirror_unref(m);
		m = next;
	}
	pthread_mutex_destroy(&ag->ag_mirror_mu);
}

/* With a reference for the caller, or NULL. */
static struct mirror *mirror_find(struct agent *ag, const char *id, int role)
{
	pthread_mutex_lock(&ag->ag_mirror_mu);
	struct mirror *m = ag->ag_mirrors;
	while (m && (strcmp(m->mi_id, id) || (role >= 0 && (int)m->mi_role != role)))
		m = m->mi_next;
	if (m)
		m->mi_refs++;
	pthread_mutex_unlock(&ag->ag_mirror_mu);
	return m;
}

/* The source mirror still running from VDI vdi (referenced), or NULL. */
static struct mirror *mirror_sending(struct agent *ag, const char *vdi)
{
	pthread_mutex_lock(&ag->ag_mirror_mu);
	struct mirror *m = ag->ag_mirrors;
	for (; m; m = m->mi_next) {
		pthread_mutex_lock(&m->mi_mu);
		bool running = m->mi_role == MR_SEND && strcmp(m->mi_vdi, vdi) == 0 && m->mi_state < MS_DONE;
		pthread_mutex_unlock(&m->mi_mu);
		if (running)
			break;
	}
	if (m)
		m->mi_refs++;
	pthread_mutex_unlock(&ag->ag_mirror_mu);
	return m;
}

static struct mirror *mirror_new(struct agent *ag, enum mirror_role role, const char *id)
{
	struct mirror *m = xcalloc(1, sizeof *m);
	m->mi_ag = ag;
	m->mi_role = role;
	m->mi_refs = 1;
	m->mi_lfd = m->mi_slot = m->mi_sock = -1;
	m->mi_verified = -1;
	m->mi_stop = "";
	snprintf(m->mi_id, sizeof m->mi_id, "%s", id);
	pthread_mutex_init(&m->mi_mu, NULL);
	pthread_cond_init(&m->mi_cv, NULL);
	return m;
}

/* Start m's thread in a flight slot and list it; NULL, or the error (m freed). */
static json_t *mirror_start(struct mirror *m, void *(*fn)(void *))
{
	struct agent *ag = m->mi_ag;
	m->mi_slot = agent_flight_enter(&ag->ag_flights);
	m->mi_refs = 2; /* the list's and the thread's */
	pthread_mutex_lock(&ag->ag_mirror_mu);
	m->mi_next = ag->ag_mirrors;
	ag->ag_mirrors = m;
	pthread_mutex_unlock(&ag->ag_mirror_mu);
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	int rc = m->mi_slot >= 0 ? pthread_create(&t, &at, fn, m) : -1;
	pthread_attr_destroy(&at);
	if (rc == 0)
		return NULL;
	if (m->mi_slot >= 0)
		agent_flight_leave(&ag->ag_flights, m->mi_slot);
	pthread_mutex_lock(&ag->ag_mirror_mu);
	for (struct mirror **pp = &ag->ag_mirrors; *pp; pp = &(*pp)->mi_next)
		if (*pp == m) {
			*pp = m->mi_next;
			break;
		}
	pthread_mutex_unlock(&ag->ag_mirror_mu);
	bool stopping = agent_flight_stopping(&ag->ag_flights);
	m->mi_refs = 1;
	mirror_unref(m);
	return xerr_newf(XE_INTERNAL_ERROR, "cannot start the disk mirror%s", stopping ? ": the agent is stopping" : "");
}

/* Its connection cut: the thread's next read or write fails. */
static void mirror_cut(struct mirror *m)
{
	pthread_mutex_lock(&m->mi_mu);
	if (m->mi_sock >= 0)
		shutdown(m->mi_sock, SHUT_RDWR);
	pthread_mutex_unlock(&m->mi_mu);
}

/* Stop m (its thread sees mi_cancel; its socket is cut) and take it off
 * the list; the caller's reference goes too. */
static void mirror_end(struct mirror *m)
{
	struct agent *ag = m->mi_ag;
	pthread_mutex_lock(&m->mi_mu);
	m->mi_cancel = true;
	pthread_cond_broadcast(&m->mi_cv);
	pthread_mutex_unlock(&m->mi_mu);
	bool listed = false;
	pthread_mutex_lock(&ag->ag_mirror_mu);
	for (struct mirror **pp = &ag->ag_mirrors; *pp; pp = &(*pp)->mi_next)
		if (*pp == m) {
			*pp = m->mi_next;
			listed = true;
			break;
		}
	pthread_mutex_unlock(&ag->ag_mirror_mu);
	mirror_cut(m);
	if (listed)
		mirror_unref(m);
	mirror_unref(m);
}

/* ---- the methods ---- */

static const char *arg_str(json_t *args, size_t i)
{
	const char *s = json_string_value(json_array_get(args, i));
	return s ? s : "";
}

static const char *opt_str(json_t *opts, const char *k)
{
	const char *s = json_string_value(json_object_get(opts, k));
	return s ? s : "";
}

static bool uuid_ok(const char *u)
{
	return *u && strlen(u) < BE_UUID_LEN && sr_uuid_valid(u);
}

/* A receiver's VDI made and its endpoint open: the answer. */
/* The mirror's SR, plugged here: its driver and handle. */
static json_t *mirror_sr(struct agent *ag, struct mirror *m)
{
	struct agent_sr_ref r;
	json_t *e = agent_sr_ref(ag, m->mi_sr_uuid, &r);
	if (!e) {
		m->mi_drv = r.sf_drv;
		m->mi_sr = r.sf_sr;
	}
	return e;
}

static json_t *recv_setup(struct agent *ag, struct mirror *m, json_int_t size, json_t *opts, json_t **result)
{
	char err[1024] = "";
	if (m->mi_drv->sd_vdi_create(m->mi_sr, m->mi_id, (uint64_t)size, m->mi_path, err, sizeof err) < 0)
		return xerr_new(XE_SR_BACKEND_FAILURE, "vdi_create", err, NULL);
	const char *addr = opt_str(opts, "address");
	if ((m->mi_lfd = agent_listen_one(ag, addr, &m->mi_port)) < 0) {
		json_t *e = xerr_newf(XE_INTERNAL_ERROR, "cannot open a disk mirror endpoint on %s: %s",
				      *addr ? addr : ag->ag_address, strerror(errno));
		m->mi_drv->sd_vdi_destroy(m->mi_sr, m->mi_id, err, sizeof err);
		return e;
	}
	struct sr_vdi_stat st = {0};
	m->mi_drv->sd_vdi_stat(m->mi_sr, m->mi_id, &st, err, sizeof err);
	*result = json_pack("{s:i, s:s, s:I, s:I, s:o}", "port", m->mi_port, "location", m->mi_path, "virtual_size",
			    (json_int_t)st.vs_virtual_size, "physical_utilisation", (json_int_t)st.vs_physical_utilisation,
			    "sr", agent_sr_space(ag, m->mi_sr_uuid));
	return NULL;
}

/* agent.vdi_mirror_receive(sr, vdi, size, token, options{source_host, address, vm}) */
json_t *agent_m_vdi_mirror_receive(struct agent *ag, json_t *args, json_t **result)
{
	const char *vdi = arg_str(args, 1), *token = arg_str(args, 3);
	json_int_t size = json_integer_value(json_array_get(args, 2));
	json_t *opts = json_array_get(args, 4), *e;
	if (!uuid_ok(vdi) || size <= 0 || !*token || strlen(token) >= MIG_TOKEN_MAX)
		return xerr_new(XE_INVALID_VALUE, "vdi_mirror_receive", "vdi, size, token", NULL);
	struct mirror *old = mirror_find(ag, vdi, -1);
	if (old) {
		mirror_unref(old);
		return xerr_new(XE_OTHER_OPERATION_IN_PROGRESS, "VDI", vdi, NULL);
	}
	struct mirror *m = mirror_new(ag, MR_RECV, vdi);
	snprintf(m->mi_sr_uuid, sizeof m->mi_sr_uuid, "%s", arg_str(args, 0));
	snprintf(m->mi_token, sizeof m->mi_token, "%s", token);
	snprintf(m->mi_peer, sizeof m->mi_peer, "%s", opt_str(opts, "source_host"));
	snprintf(m->mi_vm, sizeof m->mi_vm, "%s", opt_str(opts, "vm"));
	m->mi_size = (uint64_t)size;
	m->mi_state = MS_COPY;
	if ((e = mirror_sr(ag, m)) || (e = recv_setup(ag, m, size, opts, result))) {
		mirror_unref(m);
		return e;
	}
	const struct sr_driver *drv = m->mi_drv;
	struct sr *sr = m->mi_sr;
	if ((e = mirror_start(m, mirror_recv_thread))) {
		char err[512];
		json_decref(*result);
		*result = NULL;
		drv->sd_vdi_destroy(sr, vdi, err, sizeof err);
		return e;
	}
	log_info("disk mirror %s in: VDI made in SR %s, endpoint port %d", vdi, arg_str(args, 0),
		 (int)json_integer_value(json_object_get(*result, "port")));
	return NULL;
}

static void send_opts(struct mirror *m, json_t *opts)
{
	snprintf(m->mi_peer, sizeof m->mi_peer, "%s", opt_str(opts, "destination_host"));
	m->mi_compress = json_is_true(json_object_get(opts, "compress"));
	m->mi_verify = json_is_true(json_object_get(opts, "verify"));
	m->mi_bandwidth_mb_s = (int)json_integer_value(json_object_get(opts, "bandwidth_mb_s"));
	m->mi_policy.mp_final_ms = (int)json_integer_value(json_object_get(opts, "final_ms"));
	m->mi_policy.mp_max_rounds = (int)json_integer_value(json_object_get(opts, "max_rounds"));
}

/* The source's checks on the loop thread: the VM here, its disk found. */
static json_t *send_locate(struct agent *ag, struct mirror *m)
{
	if (strcmp(backend_locked_inner(ag->ag_be)->be_ops->bo_name, "sim"))
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "storage migration needs the sim backend's tracked disk "
							   "datapath; this host runs %s",
				 backend_locked_inner(ag->ag_be)->be_ops->bo_name);
	if ((m->mi_domid = domid_of(ag, m->mi_vm, NULL)) < 0)
		return xerr_newf(XE_INTERNAL_ERROR, "VM %s has no domain on this host", m->mi_vm);
	json_t *e = mirror_sr(ag, m);
	char err[1024] = "";
	if (!e && m->mi_drv->sd_vdi_locate(m->mi_sr, m->mi_vdi, m->mi_path, err, sizeof err) < 0)
		e = xerr_new(XE_SR_BACKEND_FAILURE, "vdi_locate", err, NULL);
	return e;
}

/* agent.vdi_mirror_send(vm, sr, vdi, snapshot, address, port, token,
 * options{mirror, destination_host, compress, verify, bandwidth_mb_s,
 * final_ms, max_rounds}) */
json_t *agent_m_vdi_mirror_send(struct agent *ag, json_t *args, json_t **result)
{
	json_t *opts = json_array_get(args, 7);
	const char *id = opt_str(opts, "mirror"), *token = arg_str(args, 6);
	json_int_t port = json_integer_value(json_array_get(args, 5));
	if (!uuid_ok(id) || !uuid_ok(arg_str(args, 2)) || !uuid_ok(arg_str(args, 3)) || port <= 0 || port > 65535 ||
	    !*token || strlen(token) >= MIG_TOKEN_MAX || strlen(arg_str(args, 4)) >= 64)
		return xerr_new(XE_INVALID_VALUE, "vdi_mirror_send", "mirror, vdi, snapshot, address, port, token", NULL);
	struct mirror *old = mirror_find(ag, id, MR_SEND);
	if (!old) /* one mirror per disk log */
		old = mirror_sending(ag, arg_str(args, 2));
	if (old) {
		mirror_unref(old);
		return xerr_new(XE_OTHER_OPERATION_IN_PROGRESS, "VDI", arg_str(args, 2), NULL);
	}
	struct mirror *m = mirror_new(ag, MR_SEND, id);
	snprintf(m->mi_vm, sizeof m->mi_vm, "%s", arg_str(args, 0));
	snprintf(m->mi_sr_uuid, sizeof m->mi_sr_uuid, "%s", arg_str(args, 1));
	snprintf(m->mi_vdi, sizeof m->mi_vdi, "%s", arg_str(args, 2));
	snprintf(m->mi_snap, sizeof m->mi_snap, "%s", arg_str(args, 3));
	snprintf(m->mi_addr, sizeof m->mi_addr, "%s", arg_str(args, 4));
	snprintf(m->mi_token, sizeof m->mi_token, "%s", token);
	m->mi_port = (int)port;
	send_opts(m, opts);
	json_t *e = send_locate(ag, m);
	if (e) {
		mirror_unref(m);
		return e;
	}
	if ((e = mirror_start(m, mirror_send_thread)))
		return e;
	log_info("disk mirror %s out: VDI %s of VM %s to %s:%d (snapshot %s)", id, m->mi_vdi, m->mi_vm, m->mi_addr,
		 m->mi_port, m->mi_snap);
	*result = json_object();
	return NULL;
}

static json_t *status_json(struct mirror *m)
{
	pthread_mutex_lock(&m->mi_mu);
	json_t *r = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:I, s:s}", "state",
			      mirror_state_name(m->mi_state), "role", m->mi_role == MR_SEND ? "send" : "receive", "error",
			      m->mi_err, "round", m->mi_round, "size", (json_int_t)m->mi_size, "total",
			      (json_int_t)m->mi_total, "copied", (json_int_t)m->mi_copied, "sent", (json_int_t)m->mi_sent,
			      "wire_bytes", (json_int_t)m->mi_wire, "rate_mb_s", m->mi_rate_mb_s, "copy_ms", m->mi_copy_ms,
			      "final_ms", m->mi_final_ms, "verify_ms", m->mi_verify_ms, "dirty", (json_int_t)m->mi_dirty,
			      "stop", m->mi_stop);
	json_object_set_new(r, "final_bytes", json_integer((json_int_t)m->mi_final_bytes));
	json_object_set_new(r, "snapshot_ms", json_real(m->mi_snapshot_ms));
	if (m->mi_verified >= 0)
		json_object_set_new(r, "verified", json_boolean(m->mi_verified == 1));
	if (m->mi_snap_location[0])
		json_object_set_new(r, "snapshot",
				    json_pack("{s:s, s:I, s:I}", "location", m->mi_snap_location, "virtual_size",
					      (json_int_t)m->mi_snap_virtual, "physical_utilisation",
					      (json_int_t)m->mi_snap_phys));
	pthread_mutex_unlock(&m->mi_mu);
	return r;
}

/* agent.vdi_mirror_status(mirror) */
json_t *agent_m_vdi_mirror_status(struct agent *ag, json_t *args, json_t **result)
{
	struct mirror *m = mirror_find(ag, arg_str(args, 0), -1);
	if (!m)
		return xerr_newf(XE_INTERNAL_ERROR, "no disk mirror %s on this host", arg_str(args, 0));
	*result = status_json(m);
	if (m->mi_role == MR_SEND && m->mi_snap_location[0])
		json_object_set_new(json_object_get(*result, "snapshot"), "sr", agent_sr_space(ag, m->mi_sr_uuid));
	struct stat st;
	if (m->mi_role == MR_RECV && stat(m->mi_path, &st) == 0) { /* what the copy holds now */
		json_object_set_new(*result, "physical_utilisation", json_integer((json_int_t)st.st_blocks * 512));
		json_object_set_new(*result, "sr", agent_sr_space(ag, m->mi_sr_uuid));
	}
	mirror_unref(m);
	return NULL;
}

/* agent.vdi_mirror_end(mirror): stopped if it runs, forgotten either way
 * (both ends, when both are here: VDI.pool_migrate). The last state. */
json_t *agent_m_vdi_mirror_end(struct agent *ag, json_t *args, json_t **result)
{
	struct mirror *m;
	for (int role = MR_SEND; role <= MR_RECV; role++)
		while ((m = mirror_find(ag, arg_str(args, 0), role))) {
			if (!*result)
				*result = status_json(m);
			mirror_end(m);
		}
	if (!*result)
		*result = json_pack("{s:s}", "state", "none");
	return NULL;
}

/* agent.vdi_remove(sr, vdi): the VDI's file goes if it is there (a
 * mirror writing it is stopped first). {removed, sr}. */
json_t *agent_m_vdi_remove(struct agent *ag, json_t *args, json_t **result)
{
	const char *vdi = arg_str(args, 1);
	/* a domain still opened on it (the source's paused copy not yet
	 * destroyed, a pivot that did not happen): refused, poold asks again */
	int user = agent_vdi_user(ag, vdi);
	if (user >= 0) {
		log_warn("VDI %s: not removed, domain %d still has it as a disk", vdi, user);
		return xerr_new(XE_VDI_IN_USE, vdi, "destroy", NULL);
	}
	struct mirror *m;
	while ((m = mirror_find(ag, vdi, MR_RECV)))
		mirror_end(m);
	struct agent_sr_ref r;
	json_t *e = agent_sr_ref(ag, arg_str(args, 0), &r);
	if (e)
		return e;
	const struct sr_driver *drv = r.sf_drv;
	struct sr *sr = r.sf_sr;
	char loc[SR_LOCATION_MAX], err[1024] = "";
	bool there = drv->sd_vdi_locate(sr, vdi, loc, err, sizeof err) == 0;
	if (there && drv->sd_vdi_destroy(sr, vdi, err, sizeof err) < 0)
		return xerr_new(XE_SR_BACKEND_FAILURE, "vdi_destroy", err, NULL);
	if (there)
		log_info("VDI %s removed from SR %s", vdi, arg_str(args, 0));
	*result = json_pack("{s:b, s:o}", "removed", there, "sr", agent_sr_space(ag, arg_str(args, 0)));
	return NULL;
}

/* ---- the pause hook (migrate_ops.c hands it to the memory stream) ---- */

struct mirror_hook {
	struct agent *mh_ag;
	int mh_n;
	struct mirror *mh_m[BE_MAX_DISKS];
	char mh_id[BE_MAX_DISKS][BE_UUID_LEN];
};

struct mirror_hook *agent_mirror_hook_new(struct agent *ag, json_t *ids, char *err, size_t errlen)
{
	struct mirror_hook *h = xcalloc(1, sizeof *h);
	h->mh_ag = ag;
	size_t i;
	json_t *id;
	json_array_foreach(ids, i, id) {
		const char *s = json_string_value(id);
		struct mirror *m = s ? mirror_find(ag, s, MR_SEND) : NULL;
		if (!m || h->mh_n == BE_MAX_DISKS) {
			snprintf(err, errlen, "no disk mirror %s on this host", s ? s : "?");
			if (m)
				mirror_unref(m);
			agent_mirror_hook_free(h, false);
			return NULL;
		}
		snprintf(h->mh_id[h->mh_n], BE_UUID_LEN, "%s", s);
		h->mh_m[h->mh_n++] = m;
	}
	return h;
}

/* wait=false: every mirror must be ready; each starts its last round.
 * wait=true: until each has its last round on the destination. */
int agent_mirrors_paused(void *arg, bool wait, char *err, size_t errlen)
{
	struct mirror_hook *h = arg;
	for (int i = 0; i < h->mh_n; i++) {
		struct mirror *m = h->mh_m[i];
		pthread_mutex_lock(&m->mi_mu);
		int rc = 0;
		if (!wait && m->mi_state != MS_READY) {
			snprintf(err, errlen, "disk mirror %s is not ready (%s%s%s)", m->mi_id, mirror_state_name(m->mi_state),
				 m->mi_err[0] ? ": " : "", m->mi_err);
			rc = -1;
		} else if (!wait) {
			m->mi_final_req = true;
			pthread_cond_broadcast(&m->mi_cv);
		}
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += 30;
		while (wait && !m->mi_final_done && pthread_cond_timedwait(&m->mi_cv, &m->mi_mu, &dl) == 0)
			;
		if (wait && (!m->mi_final_done || m->mi_final_rc != 0)) {
			snprintf(err, errlen, "the last round of disk mirror %s failed: %s", m->mi_id,
				 m->mi_final_done ? m->mi_err : "no answer within 30 s");
			rc = -1;
		}
		pthread_mutex_unlock(&m->mi_mu);
		if (rc)
			return rc;
	}
	return 0;
}

void agent_mirror_hook_free(struct mirror_hook *h, bool after_go)
{
	if (!h)
		return;
	for (int i = 0; i < h->mh_n; i++) {
		struct mirror *m = h->mh_m[i];
		pthread_mutex_lock(&m->mi_mu);
		m->mi_go_told = true;
		m->mi_after_go = after_go;
		pthread_cond_broadcast(&m->mi_cv);
		pthread_mutex_unlock(&m->mi_mu);
		mirror_unref(m);
	}
	free(h);
}

json_t *agent_mirror_source_disk(struct agent *ag, const char *id, struct be_disk *d)
{
	struct mirror *m = mirror_find(ag, id, MR_SEND);
	if (!m)
		return xerr_newf(XE_INTERNAL_ERROR, "no disk mirror %s from this host", id);
	memset(d, 0, sizeof *d);
	snprintf(d->bd_vdi_uuid, sizeof d->bd_vdi_uuid, "%s", m->mi_vdi);
	snprintf(d->bd_sr_uuid, sizeof d->bd_sr_uuid, "%s", m->mi_sr_uuid);
	mirror_unref(m);
	return NULL;
}

void agent_mirrors_running(struct agent *ag, const char *vm)
{
	pthread_mutex_lock(&ag->ag_mirror_mu);
	for (struct mirror *m = ag->ag_mirrors; m; m = m->mi_next) {
		if (m->mi_role != MR_RECV || strcmp(m->mi_vm, vm))
			continue;
		pthread_mutex_lock(&m->mi_mu);
		m->mi_go_told = true;
		pthread_cond_broadcast(&m->mi_cv);
		pthread_mutex_unlock(&m->mi_mu);
	}
	pthread_mutex_unlock(&ag->ag_mirror_mu);
}
