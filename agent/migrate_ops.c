/*
 * migrate_ops.c - the agent's side of a live migration (sim_send.c, sim_recv.c move the
 * memory; this file gives it sockets, threads and answers).
 *
 * agent.migrate_receive(config, token, options): the destination creates
 * the paused, empty domain at once (so the stream never waits for it),
 * listens on a one-time endpoint (options.address: the address poold chose
 * on the migration's network, else our management address; a fresh port)
 * and answers the port; a thread accepts mutual TLS connections from pool
 * members until one brings the right token, and runs mig_receive on it,
 * which destroys the domain on any failure before GO. A connection that
 * is not that (see MIG_GREET_MS) is dropped and the endpoint waits on. No
 * source within 60 s: the domain goes.
 * agent.migrate_send(uuid, address, port, token, options, config): the
 * source streams on a thread of its own (heartbeats go on meanwhile) and
 * the answer waits until the destination said RUNNING; then (once the
 * answer has left) the source's copy is destroyed. Before GO any failure leaves the VM running here; a
 * failure after GO answers INTERNAL_ERROR [why, "after_go"] and leaves the
 * copy paused: poold asks the destination and decides.
 * agent.migration_status(uuid): the progress of an outgoing migration.
 * agent.vm_released(uuid): answered once the source's copy is destroyed
 * (the migration's answer leaves first: poold records the move meanwhile).
 *
 * Every migration thread registers its socket: a stopping agent shuts them
 * down (each side then fails as before GO) and waits for the threads
 * (agent_migrations_stop) before it frees what they use.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include "agent.h"
#include "evrpc.h"
#include "backend_lock.h"
#include "jsonrpc.h"
#include "log.h"
#include "tls.h"
#include "util.h"
#include "mig.h"
#include "mig_xen.h"
#include "xerr.h"

static void opts_parse(json_t *o, struct mig_opts *m)
{
	mig_opts_default(m);
	m->compress = json_is_true(json_object_get(o, "compress"));
	if (json_integer_value(json_object_get(o, "max_downtime_ms")) > 0)
		m->max_downtime_ms = (int)json_integer_value(json_object_get(o, "max_downtime_ms"));
	if (json_integer_value(json_object_get(o, "max_rounds")) > 0)
		m->max_rounds = (int)json_integer_value(json_object_get(o, "max_rounds"));
	m->verify = json_is_true(json_object_get(o, "verify"));
}

static void releases_forget(struct agent *ag);

void agent_migrations_stop(struct agent *ag)
{
	agent_flights_stop(&ag->ag_flights);
	releases_forget(ag); /* no destroy thread is left: what they did is final */
}

/* The xen backend moves memory with libxl's own stream (mig_xen.c), whose
 * restore builds the destination domain itself: nothing is prepared. */
static bool xen_stream(struct agent *ag)
{
	return strcmp(backend_locked_inner(ag->ag_be)->be_ops->bo_name, "xen") == 0;
}

static struct mig_backend_lock lock_of(struct agent *ag)
{
	return (struct mig_backend_lock){backend_locked_lock, backend_locked_unlock, ag->ag_be};
}

/* --------------------------------------------------------------- receive */

struct recv_job {
	struct agent *rj_ag;
	int rj_lfd;
	int rj_slot;
	int rj_domid;	/* prepared for this migration */
	char rj_token[MIG_TOKEN_MAX];
	char rj_peer[BE_UUID_LEN]; /* the source host's uuid: its certificate's CN ("" = any pool member) */
	char rj_uuid[BE_UUID_LEN];
	bool rj_verify;
};

/* state-dir/incoming/<uuid> exists while a migration comes in: a domain
 * found paused under such a marker at start-up never got GO. */
static void incoming_path(struct agent *ag, const char *uuid, char *out, size_t n)
{
	snprintf(out, n, "%s/incoming/%s", ag->ag_state, uuid);
}

/* Written before the destination domain can exist, so an agent killed at
 * any point of an incoming migration finds the marker when it restarts. */
static void incoming_mark(struct agent *ag, const char *uuid)
{
	char path[4200], dir[4200];
	snprintf(dir, sizeof dir, "%s/incoming", ag->ag_state);
	mkdir(dir, 0700);
	incoming_path(ag, uuid, path, sizeof path);
	FILE *f = fopen(path, "w");
	if (f)
		fclose(f);
}

void agent_incoming_cleanup(struct agent *ag)
{
	struct be_domain_info *d = NULL;
	int n = 0;
	if (ag->ag_be->be_ops->bo_domain_list(ag->ag_be, &d, &n) < 0)
		return;
	for (int i = 0; i < n; i++) {
		char path[4200];
		incoming_path(ag, d[i].di_uuid, path, sizeof path);
		if (access(path, F_OK) != 0)
			continue;
		if (d[i].di_state != BE_STATE_RUNNING) {
			log_warn("VM %s: an incoming migration never finished (domain %d): destroyed", d[i].di_uuid,
				 d[i].di_domid);
			ag->ag_be->be_ops->bo_domain_destroy(ag->ag_be, d[i].di_domid);
		}
		unlink(path);
	}
	free(d);
}

/* The endpoint waits this long for its source; a connection to it has
 * MIG_GREET_MS to finish its TLS handshake (with a pool certificate) and
 * send a HELLO. Anything else that connects (a port scan, garbage, a
 * connection that says nothing, a pool member with the wrong token) is
 * dropped and the endpoint goes on waiting: a stray connection can delay
 * the real one by MIG_GREET_MS at most, never close the endpoint. */
#define MIG_ENDPOINT_MS 60000
#define MIG_GREET_MS 5000

/* The source's connection, greeted: its fd (and *ssl), or -1 when none
 * came before the endpoint's deadline or the agent stops. */
static int endpoint_accept(struct recv_job *j, int64_t deadline, SSL **ssl, uint32_t *version)
{
	struct mig_flights *fl = &j->rj_ag->ag_flights;
	for (;;) {
		agent_flight_listen(fl, j->rj_slot, j->rj_lfd);
		int64_t left = deadline - mig_now_ms();
		struct pollfd p = {j->rj_lfd, POLLIN, 0};
		if (left <= 0 || agent_flight_stopping(fl) || agent_flight_cancelled(fl, j->rj_slot) ||
		    poll(&p, 1, (int)left) != 1)
			return -1;
		int fd = accept4(j->rj_lfd, NULL, NULL, SOCK_CLOEXEC);
		if (!agent_flight_accepted(fl, j->rj_slot, fd)) { /* taken back: whoever came is too late */
			if (fd >= 0)
				close(fd);
			return -1;
		}
		if (fd < 0)
			continue;
		int64_t greet = mig_now_ms() + MIG_GREET_MS;
		/* the source must show a pool certificate */
		*ssl = mig_greet(j->rj_ag->ag_server_ctx, fd, greet < deadline ? greet : deadline, j->rj_peer, version);
		if (*ssl)
			return fd;
		log_warn("migration endpoint for VM %s: dropped a connection that did not greet as a pool member's "
			 "migration within %d ms; still waiting", j->rj_uuid, MIG_GREET_MS);
		agent_flight_fd_set(&j->rj_ag->ag_flights, j->rj_slot, -1);
		close(fd);
	}
}

static void *recv_thread(void *arg)
{
	struct recv_job *j = arg;
	struct agent *ag = j->rj_ag;
	char err[512] = "";
	int64_t deadline = mig_now_ms() + MIG_ENDPOINT_MS;
	SSL *ssl = NULL;
	int fd, rc = MIG_FAILED;
	uint32_t version = 0;
	struct mig_recv_result res;
	memset(&res, 0, sizeof res);
	while ((fd = endpoint_accept(j, deadline, &ssl, &version)) >= 0) {
		struct mig_io io;
		mig_io_init_ssl(&io, ssl);
		struct mig_backend_lock lk = lock_of(ag);
		struct mig_recv_opts ro = {0};
		ro.token = j->rj_token;
		ro.verify = j->rj_verify;
		ro.domid = j->rj_domid;
		memset(&res, 0, sizeof res);
		rc = (xen_stream(ag) ? mig_xen_receive : mig_receive)(&io, backend_locked_inner(ag->ag_be), &lk, &ro,
								       &res, err, sizeof err);
		/* refused before its CONFIG (a wrong token): not our source, and
		 * the prepared domain is untouched; a source of another protocol
		 * version has been told why and is final */
		if (rc != MIG_FAILED || res.uuid[0] || version != MIG_PROTO_VERSION || agent_flight_stopping(&j->rj_ag->ag_flights))
			break;
		log_warn("migration endpoint for VM %s: refused a connection (%s); still waiting", j->rj_uuid, err);
		SSL_free(ssl);
		ssl = NULL;
		agent_flight_fd_set(&j->rj_ag->ag_flights, j->rj_slot, -1);
		close(fd);
	}
	close(j->rj_lfd);
	bool cancelled = fd < 0 && agent_flight_cancelled(&ag->ag_flights, j->rj_slot);
	if (cancelled)
		log_info("migration endpoint for VM %s: taken back by poold before its source came", j->rj_uuid);
	else if (fd < 0)
		log_warn("migration endpoint for VM %s: no source connected within %d s", j->rj_uuid, MIG_ENDPOINT_MS / 1000);
	else if (rc == MIG_OK)
		log_info("migration in: VM %s runs here as domain %d (%llu pages, %llu zero, %s)", res.uuid, res.domid,
			 (unsigned long long)res.pages, (unsigned long long)res.zero_pages,
			 res.verified ? "verified" : "not verified");
	if (rc == MIG_OK)
		agent_mirrors_running(ag, j->rj_uuid); /* its disks' copies, if it moved with them */
	else if (!cancelled)
		log_warn("migration in failed: %s", err);
	if (rc == MIG_FAILED && j->rj_domid > 0) { /* the prepared domain never ran: nothing may be left */
		struct be_domain_info di;
		if (ag->ag_be->be_ops->bo_domain_info(ag->ag_be, j->rj_domid, &di) == 0 &&
		    strcmp(di.di_uuid, j->rj_uuid) == 0 && di.di_state != BE_STATE_RUNNING &&
		    ag->ag_be->be_ops->bo_domain_destroy(ag->ag_be, j->rj_domid) < 0)
			log_error("VM %s: the domain prepared for a migration (%d) cannot be destroyed: %s",
				  j->rj_uuid, j->rj_domid, backend_error(ag->ag_be));
	}
	char marker[4200];
	incoming_path(ag, j->rj_uuid, marker, sizeof marker);
	unlink(marker); /* finished, one way or the other */
	if (ssl) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	agent_flight_fd_set(&j->rj_ag->ag_flights, j->rj_slot, -1);
	if (fd >= 0)
		close(fd);
	agent_flight_leave(&j->rj_ag->ag_flights, j->rj_slot);
	free(j);
	return NULL;
}

json_t *agent_m_migrate_receive(struct agent *ag, json_t *args, json_t **result)
{
	json_t *cfg = json_array_get(args, 0);
	const char *token = json_string_value(json_array_get(args, 1));
	json_t *opts = json_array_get(args, 2);
	if (!json_is_object(cfg))
		return xerr_new(XE_FIELD_TYPE_ERROR, "config", NULL);
	if (!token || !*token || strlen(token) >= MIG_TOKEN_MAX)
		return xerr_new(XE_FIELD_TYPE_ERROR, "token", NULL);
	struct be_domain_config dc;
	json_t *ce = agent_domain_config(ag, cfg, &dc);
	if (ce)
		return ce;
	if (domid_of(ag, dc.dc_uuid, NULL) >= 0)
		return xerr_newf(XE_OPERATION_NOT_ALLOWED, "VM %s already has a domain on this host", dc.dc_uuid);
	struct recv_job *j = calloc(1, sizeof *j);
	int port = 0;
	const char *addr = json_string_value(json_object_get(opts, "address"));
	if (!j || (j->rj_lfd = agent_listen_one(ag, addr, &port)) < 0) {
		json_t *e = xerr_newf(XE_INTERNAL_ERROR, "cannot open a migration endpoint on %s: %s",
				      addr && *addr ? addr : ag->ag_address, strerror(errno));
		free(j);
		return e;
	}
	j->rj_ag = ag;
	snprintf(j->rj_token, sizeof j->rj_token, "%s", token);
	const char *peer = json_string_value(json_object_get(opts, "source_host"));
	snprintf(j->rj_peer, sizeof j->rj_peer, "%s", peer ? peer : "");
	j->rj_verify = json_is_true(json_object_get(opts, "verify"));
	snprintf(j->rj_uuid, sizeof j->rj_uuid, "%s", dc.dc_uuid);
	incoming_mark(ag, j->rj_uuid);
	/* the paused, empty domain now: its memory is taken before the source starts
	 * (xen: libxl's restore builds it from the stream) */
	if (!xen_stream(ag) && ag->ag_be->be_ops->bo_domain_create_restore(ag->ag_be, &dc, &j->rj_domid) < 0) {
		json_t *e = xerr_newf(XE_INTERNAL_ERROR, "cannot prepare a domain for VM %s: %s", dc.dc_uuid,
				      backend_error(ag->ag_be));
		char marker[4200];
		incoming_path(ag, j->rj_uuid, marker, sizeof marker);
		unlink(marker);
		close(j->rj_lfd);
		free(j);
		return e;
	}
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	j->rj_slot = agent_flight_enter(&ag->ag_flights);
	if (j->rj_slot >= 0)
		agent_flight_name(&ag->ag_flights, j->rj_slot, j->rj_uuid);
	if (j->rj_slot < 0 || pthread_create(&t, &at, recv_thread, j) != 0) {
		if (j->rj_slot >= 0)
			agent_flight_leave(&j->rj_ag->ag_flights, j->rj_slot);
		if (j->rj_domid > 0)
			ag->ag_be->be_ops->bo_domain_destroy(ag->ag_be, j->rj_domid);
		char marker[4200];
		incoming_path(ag, j->rj_uuid, marker, sizeof marker);
		unlink(marker);
		close(j->rj_lfd);
		free(j);
		pthread_attr_destroy(&at);
		return xerr_newf(XE_INTERNAL_ERROR, "cannot start the migration receiver%s",
				 agent_flight_stopping(&ag->ag_flights) ? ": the agent is stopping" : "");
	}
	pthread_attr_destroy(&at);
	*result = json_pack("{s:i, s:i}", "port", port, "domid", j->rj_domid);
	return NULL;
}

json_t *agent_m_migrate_receive_cancel(struct agent *ag, json_t *args, json_t **result)
{
	const char *uuid = json_string_value(json_array_get(args, 0));
	bool cut = agent_flight_cancel(&ag->ag_flights, uuid);
	if (cut)
		log_info("migration endpoint for VM %s: poold takes it back", uuid);
	*result = json_pack("{s:b}", "cancelled", cut);
	return NULL;
}

/* ------------------------------------------------------------------ send */

struct send_job {
	struct agent *sj_ag;
	struct evhttp_request *sj_req;
	json_t *sj_id;
	bool sj_v2;
	int sj_domid;
	struct be_domain_config sj_cfg;
	char sj_addr[64], sj_token[MIG_TOKEN_MAX];
	char sj_peer[BE_UUID_LEN]; /* the destination host's uuid: its certificate's CN ("" = any pool member) */
	int sj_port;
	struct mig_opts sj_opts;
	struct mirror_hook *sj_hook; /* storage migration: the disks' last rounds go in the pause */
	int sj_slot;
	pthread_mutex_t sj_mu;	  /* guards sj_prog (the send thread writes, the loop reads) */
	struct mig_progress sj_prog;
	struct send_job *sj_next; /* the agent's list of outgoing migrations */
	struct event *sj_done;
	int sj_rc;
	struct mig_send_result sj_res;
	char sj_err[512];
};

/* Outgoing migrations, for agent.migration_status (loop thread only). */

static void on_progress(const struct mig_progress *p, void *arg)
{
	struct send_job *j = arg;
	pthread_mutex_lock(&j->sj_mu);
	j->sj_prog = *p;
	pthread_mutex_unlock(&j->sj_mu);
}

json_t *agent_m_migration_status(struct agent *ag, json_t *args, json_t **result)
{
	(void)ag;
	const char *uuid = json_string_value(json_array_get(args, 0));
	if (!uuid)
		return xerr_new(XE_FIELD_TYPE_ERROR, "vm", NULL);
	for (struct send_job *j = ag->ag_sends; j; j = j->sj_next) {
		if (strcmp(j->sj_cfg.dc_uuid, uuid))
			continue;
		pthread_mutex_lock(&j->sj_mu);
		struct mig_progress p = j->sj_prog;
		pthread_mutex_unlock(&j->sj_mu);
		*result = json_pack("{s:i, s:b, s:I, s:I, s:I, s:f, s:i}", "round", p.pg_round, "paused", p.pg_paused,
				    "bytes_sent", (json_int_t)p.pg_bytes_sent, "pages_remaining",
				    (json_int_t)p.pg_pages_remaining, "npages", (json_int_t)p.pg_npages, "rate_mb_s",
				    p.pg_rate_mb_s, "throttle_pct", p.pg_throttle_pct);
		return NULL;
	}
	return xerr_newf(XE_INTERNAL_ERROR, "VM %s is not migrating from this host", uuid);
}

static void *send_thread(void *arg)
{
	struct send_job *j = arg;
	struct agent *ag = j->sj_ag;
	SSL *ssl = NULL;
	int fd = -1;
	j->sj_rc = MIG_FAILED;
	if (agent_peer_connect(ag, j->sj_slot, j->sj_addr, j->sj_port, j->sj_peer, &fd, &ssl, j->sj_err,
			       sizeof j->sj_err) == 0) {
		struct mig_io io;
		mig_io_init_ssl(&io, ssl);
		io.cut_after_bytes = (uint64_t)conf_int(ag->ag_conf, "fault-migration-cut-bytes");
		struct mig_backend_lock lk = lock_of(ag);
		j->sj_opts.gate = &ag->ag_mig_gate;
		j->sj_opts.paused_hook = j->sj_hook ? agent_mirrors_paused : NULL;
		j->sj_opts.paused_hook_arg = j->sj_hook;
		j->sj_rc = (xen_stream(ag) ? mig_xen_send : mig_send)(&io, backend_locked_inner(ag->ag_be), &lk,
								      j->sj_domid, &j->sj_cfg, j->sj_token, &j->sj_opts,
								      on_progress, j, &j->sj_res, j->sj_err,
								      sizeof j->sj_err);
	}
	agent_mirror_hook_free(j->sj_hook, j->sj_rc != MIG_FAILED);
	j->sj_hook = NULL;
	if (j->sj_rc == MIG_OK && conf_bool(ag->ag_conf, "fault-exit-after-handover")) {
		log_warn("fault-exit-after-handover: VM %s was handed over; exiting before poold hears of it",
			 j->sj_cfg.dc_uuid);
		_exit(3);
	}
	if (ssl) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	agent_flight_fd_set(&j->sj_ag->ag_flights, j->sj_slot, -1);
	if (fd >= 0)
		close(fd);
	int slot = j->sj_slot;
	event_active(j->sj_done, EV_TIMEOUT, 1); /* finish on the loop's thread (j is its now) */
	agent_flight_leave(&ag->ag_flights, slot);
	return NULL;
}

/* The source's copy of a VM that now runs on its destination, destroyed
 * on a thread once the answer has left; agent.vm_released(uuid) answers
 * when that has ended. Loop thread only, except rl_ok (the thread's, read
 * once rl_ev has fired). */
struct release {
	struct agent *rl_ag;
	int rl_domid, rl_slot;
	char rl_uuid[BE_UUID_LEN];
	bool rl_started, rl_done, rl_ok;
	int64_t rl_since;
	struct event *rl_ev;		  /* the thread says it ended */
	struct evhttp_request *rl_req; /* a parked agent.vm_released */
	json_t *rl_id;
	bool rl_v2;
	struct event *rl_timer; /* its bound (RELEASE_WAIT_S) */
	struct release *rl_next;
};

#define RELEASE_WAIT_S 30
#define RELEASE_KEEP_S 120 /* an ended release nobody asked about is forgotten */

static void release_unlink(struct agent *ag, struct release *r)
{
	for (struct release **pp = &ag->ag_releases; *pp; pp = &(*pp)->rl_next)
		if (*pp == r) {
			*pp = r->rl_next;
			break;
		}
	if (r->rl_ev)
		event_free(r->rl_ev);
	if (r->rl_timer)
		event_free(r->rl_timer);
	json_decref(r->rl_id);
	free(r);
}

/* Answer the parked agent.vm_released of r (released: whether no copy is left). */
static void release_answer(struct release *r, bool released, const char *why)
{
	if (!r->rl_req)
		return;
	json_t *res = json_pack("{s:b, s:s}", "released", released, "why", why);
	char *rt = json_dumps(res, JSON_COMPACT);
	char *text = jrpc_ok(r->rl_id, r->rl_v2, rt ? rt : "{}");
	evrpc_reply(r->rl_req, text ? text : "");
	free(text);
	free(rt);
	json_decref(res);
	r->rl_req = NULL;
}

static void release_ended(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct release *r = arg;
	r->rl_done = true;
	if (r->rl_req) {
		release_answer(r, r->rl_ok, r->rl_ok ? "" : "the source domain could not be destroyed");
		release_unlink(r->rl_ag, r);
	}
}

static void *destroy_thread(void *arg)
{
	struct release *r = arg;
	struct agent *ag = r->rl_ag;
	int slot = r->rl_slot;
	r->rl_ok = ag->ag_be->be_ops->bo_domain_destroy(ag->ag_be, r->rl_domid) == 0;
	if (!r->rl_ok)
		log_warn("VM %s: the source domain %d could not be destroyed: %s (the next heartbeat asks poold, "
			 "which destroys a paused copy of a VM running elsewhere)",
			 r->rl_uuid, r->rl_domid, backend_error(ag->ag_be));
	event_active(r->rl_ev, EV_TIMEOUT, 1);
	agent_flight_leave(&ag->ag_flights, slot);
	return NULL;
}

static void releases_forget(struct agent *ag)
{
	while (ag->ag_releases) {
		struct release *r = ag->ag_releases;
		if (r->rl_req)
			release_answer(r, r->rl_done && r->rl_ok, "the agent is stopping");
		release_unlink(ag, r);
	}
}

/* A release for uuid's domain; older ended (or never started) ones of the
 * same VM, and any ended long ago, are forgotten. */
static struct release *release_new(struct agent *ag, int domid, const char *uuid)
{
	int64_t now = now_s();
	for (struct release *o = ag->ag_releases, *next; o; o = next) {
		next = o->rl_next;
		if (!o->rl_req && (o->rl_done || !o->rl_started) &&
		    (strcmp(o->rl_uuid, uuid) == 0 || now - o->rl_since > RELEASE_KEEP_S))
			release_unlink(ag, o);
	}
	struct release *r = xcalloc(1, sizeof *r);
	r->rl_ag = ag;
	r->rl_domid = domid;
	r->rl_slot = -1;
	r->rl_since = now;
	snprintf(r->rl_uuid, sizeof r->rl_uuid, "%s", uuid);
	r->rl_ev = event_new(ag->ag_base, -1, 0, release_ended, r);
	r->rl_next = ag->ag_releases;
	ag->ag_releases = r;
	return r;
}

/* Destroy the source's copy of a VM that runs on its destination, on a
 * thread of its own (counted as in flight, so a stopping agent waits for
 * it); where no thread can be had, at once. */
static void source_copy_goes(struct evhttp_request *req, void *arg)
{
	(void)req;
	struct release *r = arg;
	struct agent *ag = r->rl_ag;
	r->rl_started = true;
	r->rl_slot = agent_flight_enter(&ag->ag_flights);
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	int rc = r->rl_slot >= 0 && r->rl_ev ? pthread_create(&t, &at, destroy_thread, r) : -1;
	pthread_attr_destroy(&at);
	if (rc != 0) {
		if (r->rl_slot < 0)
			r->rl_slot = agent_flight_enter(&ag->ag_flights);
		if (r->rl_slot >= 0 && r->rl_ev) {
			destroy_thread(r);
		} else { /* stopping: the domain stays paused; the next agent's report settles it */
			r->rl_started = false;
			if (r->rl_slot >= 0)
				agent_flight_leave(&ag->ag_flights, r->rl_slot);
		}
	}
}

static void release_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct release *r = arg;
	release_answer(r, false, "the source domain is still being destroyed");
}

/* agent.vm_released(uuid): answered once no copy of the VM is left here
 * from a migration out (at once when none is being destroyed), at most
 * RELEASE_WAIT_S later. {released, why}. */
json_t *agent_vm_released_start(struct agent *ag, struct evhttp_request *req, json_t *args, json_t *id, bool v2)
{
	const char *uuid = json_string_value(json_array_get(args, 0));
	struct release *r = ag->ag_releases;
	while (r && (strcmp(r->rl_uuid, uuid) || (!r->rl_started && !r->rl_done)))
		r = r->rl_next;
	if (r && r->rl_req)
		return xerr_new(XE_OTHER_OPERATION_IN_PROGRESS, "VM", uuid, NULL);
	if (!r) {
		struct release tmp = {.rl_req = req, .rl_id = id, .rl_v2 = v2};
		bool here = domid_of(ag, uuid, NULL) >= 0;
		release_answer(&tmp, !here, here ? "a domain of this VM is on this host" : "");
		return NULL;
	}
	r->rl_req = req;
	r->rl_id = json_incref(id);
	r->rl_v2 = v2;
	if (r->rl_done) {
		release_ended(-1, 0, r);
		return NULL;
	}
	struct timeval tv = {RELEASE_WAIT_S, 0};
	r->rl_timer = evtimer_new(ag->ag_base, release_timeout, r);
	if (r->rl_timer)
		evtimer_add(r->rl_timer, &tv);
	return NULL;
}

static void send_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct send_job *j = arg;
	struct agent *ag = j->sj_ag;
	char *text = NULL;
	for (struct send_job **pp = &ag->ag_sends; *pp; pp = &(*pp)->sj_next)
		if (*pp == j) {
			*pp = j->sj_next;
			break;
		}
	if (j->sj_rc == MIG_OK) {
		struct mig_send_result *r = &j->sj_res;
		log_info("migration out: VM %s done in %.0f ms (setup %.1f, round 1 %.1f MB in %.0f ms), downtime "
			 "%.1f ms (pause %.1f, last copy %.1f, ready %.1f, go->running %.1f), %d rounds, %llu wire bytes",
			 j->sj_cfg.dc_uuid, r->total_ms, r->setup_ms, (double)r->round1_bytes / 1e6, r->round1_ms,
			 r->downtime_ms, r->pause_ms, r->final_copy_ms, r->ready_wait_ms, r->go_running_ms, r->rounds,
			 (unsigned long long)r->wire_bytes);
		json_t *res = agent_stamp(ag, json_pack("{s:f, s:f, s:f, s:i, s:s, s:I, s:I, s:I, s:I, s:I, s:i, s:b}",
							"total_ms", r->total_ms, "downtime_ms", r->downtime_ms,
							"verify_ms", r->verify_ms, "rounds", r->rounds, "stop",
							mig_stop_name(r->stop), "pages_sent", (json_int_t)r->pages_sent,
							"zero_pages", (json_int_t)r->zero_pages, "bytes_raw",
							(json_int_t)r->bytes_raw, "bytes_compressed",
							(json_int_t)r->bytes_compressed, "wire_bytes",
							(json_int_t)r->wire_bytes, "throttle_pct", r->throttle_pct,
							"verified", r->verified));
		json_object_set_new(res, "setup_ms", json_real(r->setup_ms));
		json_object_set_new(res, "round1_ms", json_real(r->round1_ms));
		json_object_set_new(res, "dest_verify_ms", json_real(r->dest_verify_ms));
		if (j->sj_opts.verify && !r->verified) /* the VM runs on the destination all the same */
			json_object_set_new(res, "verify_error", json_string(j->sj_err));
		char *rt = json_dumps(res, JSON_COMPACT);
		text = jrpc_ok(j->sj_id, j->sj_v2, rt);
		free(rt);
		json_decref(res);
	} else {
		log_warn("migration out: VM %s: %s%s", j->sj_cfg.dc_uuid, j->sj_err,
			 j->sj_rc == MIG_AFTER_GO ? " (after GO: the source copy stays paused)" : "");
		json_t *e = xerr_newf(XE_INTERNAL_ERROR, "%s%s", j->sj_err,
				      j->sj_rc == MIG_AFTER_GO ? " (after GO: the source copy stays paused)" : "");
		if (j->sj_rc == MIG_AFTER_GO) /* poold must ask the destination before anything resumes */
			json_array_append_new(e, json_string("after_go"));
		text = jrpc_err(j->sj_id, j->sj_v2, e);
		json_decref(e);
	}
	/* the destination runs it: our (paused) copy goes once the answer has
	 * left (freeing a guest's memory takes ~20 ms poold need not wait for,
	 * and holds the backend the loop's reports need). If the answer never
	 * leaves, the copy stays paused: poold destroys a paused copy of a VM
	 * running on a live host at the next heartbeat. */
	if (j->sj_rc == MIG_OK)
		evhttp_request_set_on_complete_cb(j->sj_req, source_copy_goes,
						  release_new(ag, j->sj_domid, j->sj_cfg.dc_uuid));
	evrpc_reply(j->sj_req, text ? text : "");
	free(text);
	/* a failure may have left the VM running here again: poold hears it now.
	 * A success is reported when its paused copy is gone (the domain's exit
	 * after source_copy_goes): a report now would only say "paused", and
	 * building it would hold this answer back (~4 ms with 40 domains) */
	if (j->sj_rc != MIG_OK)
		agent_beat_soon(ag);
	pthread_mutex_destroy(&j->sj_mu);
	event_free(j->sj_done);
	json_decref(j->sj_id);
	free(j);
}

json_t *agent_migrate_send_start(struct agent *ag, struct evhttp_request *req, json_t *args, json_t *id, bool v2)
{
	const char *uuid = json_string_value(json_array_get(args, 0));
	const char *addr = json_string_value(json_array_get(args, 1));
	json_int_t port = json_integer_value(json_array_get(args, 2));
	const char *token = json_string_value(json_array_get(args, 3));
	json_t *opts = json_array_get(args, 4), *cfg = json_array_get(args, 5);
	if (!uuid || !addr || port <= 0 || port > 65535 || !token || strlen(token) >= MIG_TOKEN_MAX || !json_is_object(cfg))
		return xerr_new(XE_INVALID_VALUE, "migrate_send", "uuid, address, port, token, options, config", NULL);
	for (struct send_job *o = ag->ag_sends; o; o = o->sj_next)
		if (strcmp(o->sj_cfg.dc_uuid, uuid) == 0) /* e.g. poold restarted and asks again */
			return xerr_new(XE_OTHER_OPERATION_IN_PROGRESS, "VM", uuid, NULL);
	struct send_job *j = calloc(1, sizeof *j);
	if (!j)
		return xerr_newf(XE_INTERNAL_ERROR, "out of memory");
	j->sj_domid = domid_of_hint(ag, uuid, (int)json_integer_value(json_object_get(opts, "source_domid")), NULL);
	if (j->sj_domid < 0) {
		free(j);
		return xerr_newf(XE_INTERNAL_ERROR, "VM %s has no domain on this host", uuid);
	}
	j->sj_ag = ag;
	j->sj_req = req;
	j->sj_id = json_incref(id);
	j->sj_v2 = v2;
	/* a storage migration's config names the destination's disks (the
	 * copies): the source has no need of them, the destination finds them */
	json_t *ce = json_array_size(json_object_get(opts, "mirrors")) ? dcfg_from_json(cfg, &j->sj_cfg)
									  : agent_domain_config(ag, cfg, &j->sj_cfg);
	if (ce) {
		json_decref(j->sj_id);
		free(j);
		return ce;
	}
	snprintf(j->sj_addr, sizeof j->sj_addr, "%s", addr);
	snprintf(j->sj_token, sizeof j->sj_token, "%s", token);
	j->sj_port = (int)port;
	opts_parse(opts, &j->sj_opts);
	j->sj_opts.unmap_later = true;
	json_t *mirrors = json_object_get(opts, "mirrors");
	char herr[256] = "";
	if (json_array_size(mirrors) &&
	    (xen_stream(ag) || !(j->sj_hook = agent_mirror_hook_new(ag, mirrors, herr, sizeof herr)))) {
		json_decref(j->sj_id);
		free(j);
		return xerr_newf(XE_INTERNAL_ERROR, "%s", herr[0] ? herr : "storage migration needs the sim backend");
	}
	const char *peer = json_string_value(json_object_get(opts, "destination_host"));
	snprintf(j->sj_peer, sizeof j->sj_peer, "%s", peer ? peer : "");
	j->sj_done = event_new(ag->ag_base, -1, 0, send_done, j);
	pthread_mutex_init(&j->sj_mu, NULL);
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	j->sj_slot = j->sj_done ? agent_flight_enter(&ag->ag_flights) : -1;
	int rc = j->sj_slot >= 0 ? pthread_create(&t, &at, send_thread, j) : -1;
	pthread_attr_destroy(&at);
	if (rc != 0) {
		if (j->sj_slot >= 0)
			agent_flight_leave(&j->sj_ag->ag_flights, j->sj_slot);
		agent_mirror_hook_free(j->sj_hook, false);
		if (j->sj_done)
			event_free(j->sj_done);
		pthread_mutex_destroy(&j->sj_mu);
		json_decref(j->sj_id);
		free(j);
		return xerr_newf(XE_INTERNAL_ERROR, "cannot start the migration sender%s",
				 agent_flight_stopping(&ag->ag_flights) ? ": the agent is stopping" : "");
	}
	j->sj_next = ag->ag_sends;
	ag->ag_sends = j;
	log_info("migration out: VM %s (domain %d) to %s:%lld", uuid, j->sj_domid, addr, (long long)port);
	return NULL;
}
