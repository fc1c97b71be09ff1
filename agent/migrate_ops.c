/*
 * migrate_ops.c - the agent's side of a live migration (mig.c moves the
 * memory; this file gives it sockets, threads and answers).
 *
 * agent.migrate_receive(config, token, options): the destination listens on
 * a one-time endpoint (its migration address, else its management address,
 * a fresh port) and answers the port at once; a thread accepts one mutual
 * TLS connection from a pool member and runs mig_receive, which creates the
 * paused domain and destroys it on any failure before GO.
 * agent.migrate_send(uuid, address, port, token, options, config): the
 * source streams on a thread of its own (heartbeats go on meanwhile) and
 * the answer waits until the destination said RUNNING; then the source's
 * copy is destroyed. Before GO any failure leaves the VM running here.
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
#include "backend_lock.h"
#include "jsonrpc.h"
#include "log.h"
#include "mig.h"
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

static struct mig_backend_lock lock_of(struct agent *ag)
{
	return (struct mig_backend_lock){backend_locked_lock, backend_locked_unlock, ag->ag_be};
}

/* --------------------------------------------------------------- receive */

struct recv_job {
	struct agent *rj_ag;
	int rj_lfd;
	char rj_token[MIG_TOKEN_MAX];
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

static void *recv_thread(void *arg)
{
	struct recv_job *j = arg;
	struct agent *ag = j->rj_ag;
	char err[512] = "";
	struct pollfd p = {j->rj_lfd, POLLIN, 0};
	int fd = poll(&p, 1, 60000) == 1 ? accept(j->rj_lfd, NULL, NULL) : -1;
	close(j->rj_lfd);
	SSL *ssl = NULL;
	if (fd < 0) {
		log_warn("migration endpoint: no source connected within 60 s");
		goto out;
	}
	struct timeval tv = {60, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	ssl = SSL_new(ag->ag_server_ctx); /* the source must show a pool certificate */
	if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_accept(ssl) != 1) {
		log_warn("migration endpoint: TLS handshake refused");
		goto out;
	}
	struct mig_io io;
	mig_io_init_ssl(&io, ssl);
	struct mig_backend_lock lk = lock_of(ag);
	struct mig_recv_opts ro = {j->rj_token, 0, j->rj_verify, 0, NULL, NULL};
	struct mig_recv_result res;
	memset(&res, 0, sizeof res);
	int rc = mig_receive(&io, backend_locked_inner(ag->ag_be), &lk, &ro, &res, err, sizeof err);
	char marker[4200];
	incoming_path(ag, j->rj_uuid, marker, sizeof marker);
	unlink(marker); /* finished, one way or the other */
	if (rc == MIG_OK)
		log_info("migration in: VM %s runs here as domain %d (%llu pages, %llu zero, %s)", res.uuid, res.domid,
			 (unsigned long long)res.pages, (unsigned long long)res.zero_pages,
			 res.verified ? "verified" : "not verified");
	else
		log_warn("migration in failed: %s", err);
out:
	if (ssl) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	if (fd >= 0)
		close(fd);
	free(j);
	return NULL;
}

/* A one-time listening socket on our migration (else management) address. */
static int listen_one(struct agent *ag, int *port)
{
	const char *addr = *conf_str(ag->ag_conf, "migration-address") ? conf_str(ag->ag_conf, "migration-address")
									: ag->ag_address;
	struct sockaddr_in sa = {0};
	sa.sin_family = AF_INET;
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		sa.sin_addr.s_addr = htonl(INADDR_ANY);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	socklen_t sl = sizeof sa;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 1) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

json_t *agent_m_migrate_receive(struct agent *ag, json_t *args, json_t **result)
{
	const char *token = json_string_value(json_array_get(args, 1));
	json_t *opts = json_array_get(args, 2);
	if (!token || !*token || strlen(token) >= MIG_TOKEN_MAX)
		return xerr_new(XE_FIELD_TYPE_ERROR, "token", NULL);
	struct recv_job *j = calloc(1, sizeof *j);
	int port = 0;
	if (!j || (j->rj_lfd = listen_one(ag, &port)) < 0) {
		free(j);
		return xerr_newf(XE_INTERNAL_ERROR, "cannot open a migration endpoint: %s", strerror(errno));
	}
	j->rj_ag = ag;
	snprintf(j->rj_token, sizeof j->rj_token, "%s", token);
	j->rj_verify = json_is_true(json_object_get(opts, "verify"));
	const char *uuid = json_string_value(json_object_get(json_array_get(args, 0), "uuid"));
	snprintf(j->rj_uuid, sizeof j->rj_uuid, "%s", uuid ? uuid : "unknown");
	incoming_mark(ag, j->rj_uuid);
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, recv_thread, j) != 0) {
		char marker[4200];
		incoming_path(ag, j->rj_uuid, marker, sizeof marker);
		unlink(marker);
		close(j->rj_lfd);
		free(j);
		pthread_attr_destroy(&at);
		return xerr_newf(XE_INTERNAL_ERROR, "cannot start the migration receiver");
	}
	pthread_attr_destroy(&at);
	*result = json_pack("{s:i}", "port", port);
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
	int sj_port;
	struct mig_opts sj_opts;
	struct event *sj_done;
	int sj_rc;
	struct mig_send_result sj_res;
	char sj_err[512];
};

static int connect_to(const char *addr, int port)
{
	struct addrinfo hints = {0}, *ai = NULL;
	hints.ai_socktype = SOCK_STREAM;
	char ps[16];
	snprintf(ps, sizeof ps, "%d", port);
	if (getaddrinfo(addr, ps, &hints, &ai) != 0)
		return -1;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static void *send_thread(void *arg)
{
	struct send_job *j = arg;
	struct agent *ag = j->sj_ag;
	int fd = connect_to(j->sj_addr, j->sj_port);
	SSL *ssl = NULL;
	j->sj_rc = MIG_FAILED;
	if (fd < 0) {
		snprintf(j->sj_err, sizeof j->sj_err, "cannot connect to the destination %s:%d: %s", j->sj_addr,
			 j->sj_port, strerror(errno));
		goto out;
	}
	struct timeval tv = {60, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	ssl = SSL_new(ag->ag_client_ctx); /* the destination must show a pool certificate */
	if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1) {
		snprintf(j->sj_err, sizeof j->sj_err, "TLS to the destination %s:%d refused", j->sj_addr, j->sj_port);
		goto out;
	}
	struct mig_io io;
	mig_io_init_ssl(&io, ssl);
	io.cut_after_bytes = (uint64_t)conf_int(ag->ag_conf, "fault-migration-cut-bytes");
	struct mig_backend_lock lk = lock_of(ag);
	j->sj_rc = mig_send(&io, backend_locked_inner(ag->ag_be), &lk, j->sj_domid, &j->sj_cfg, j->sj_token,
			    &j->sj_opts, NULL, NULL, &j->sj_res, j->sj_err, sizeof j->sj_err);
out:
	if (ssl) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	if (fd >= 0)
		close(fd);
	event_active(j->sj_done, EV_TIMEOUT, 1); /* finish on the loop's thread */
	return NULL;
}

static void send_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct send_job *j = arg;
	struct agent *ag = j->sj_ag;
	char *text = NULL;
	if (j->sj_rc == MIG_OK) {
		/* the destination runs it: our copy goes */
		if (ag->ag_be->be_ops->bo_domain_destroy(ag->ag_be, j->sj_domid) < 0)
			log_warn("VM %s: the source domain %d could not be destroyed: %s", j->sj_cfg.dc_uuid, j->sj_domid,
				 backend_error(ag->ag_be));
		struct mig_send_result *r = &j->sj_res;
		log_info("migration out: VM %s done in %.0f ms, downtime %.1f ms, %d rounds, %llu wire bytes",
			 j->sj_cfg.dc_uuid, r->total_ms, r->downtime_ms, r->rounds, (unsigned long long)r->wire_bytes);
		json_t *res = agent_stamp(ag, json_pack("{s:f, s:f, s:f, s:i, s:s, s:I, s:I, s:I, s:I, s:I, s:i, s:b}",
							"total_ms", r->total_ms, "downtime_ms", r->downtime_ms,
							"verify_ms", r->verify_ms, "rounds", r->rounds, "stop",
							mig_stop_name(r->stop), "pages_sent", (json_int_t)r->pages_sent,
							"zero_pages", (json_int_t)r->zero_pages, "bytes_raw",
							(json_int_t)r->bytes_raw, "bytes_compressed",
							(json_int_t)r->bytes_compressed, "wire_bytes",
							(json_int_t)r->wire_bytes, "throttle_pct", r->throttle_pct,
							"verified", r->verified));
		char *rt = json_dumps(res, JSON_COMPACT);
		text = jrpc_ok(j->sj_id, j->sj_v2, rt);
		free(rt);
		json_decref(res);
	} else {
		log_warn("migration out: VM %s: %s%s", j->sj_cfg.dc_uuid, j->sj_err,
			 j->sj_rc == MIG_AFTER_GO ? " (after GO: the source copy stays paused)" : "");
		json_t *e = xerr_newf(XE_INTERNAL_ERROR, "%s%s", j->sj_err,
				      j->sj_rc == MIG_AFTER_GO ? " (after GO: the source copy stays paused)" : "");
		text = jrpc_err(j->sj_id, j->sj_v2, e);
		json_decref(e);
	}
	agent_reply(j->sj_req, text ? text : "");
	free(text);
	event_free(j->sj_done);
	json_decref(j->sj_id);
	free(j);
	agent_beat_now(ag);
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
	struct send_job *j = calloc(1, sizeof *j);
	if (!j)
		return xerr_newf(XE_INTERNAL_ERROR, "out of memory");
	j->sj_domid = domid_of(ag, uuid, NULL);
	if (j->sj_domid < 0) {
		free(j);
		return xerr_newf(XE_INTERNAL_ERROR, "VM %s has no domain on this host", uuid);
	}
	j->sj_ag = ag;
	j->sj_req = req;
	j->sj_id = json_incref(id);
	j->sj_v2 = v2;
	agent_config_parse(cfg, &j->sj_cfg);
	snprintf(j->sj_addr, sizeof j->sj_addr, "%s", addr);
	snprintf(j->sj_token, sizeof j->sj_token, "%s", token);
	j->sj_port = (int)port;
	opts_parse(opts, &j->sj_opts);
	j->sj_done = event_new(ag->ag_base, -1, 0, send_done, j);
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	int rc = j->sj_done ? pthread_create(&t, &at, send_thread, j) : -1;
	pthread_attr_destroy(&at);
	if (rc != 0) {
		if (j->sj_done)
			event_free(j->sj_done);
		json_decref(j->sj_id);
		free(j);
		return xerr_newf(XE_INTERNAL_ERROR, "cannot start the migration sender");
	}
	log_info("migration out: VM %s (domain %d) to %s:%lld", uuid, j->sj_domid, addr, (long long)port);
	return NULL;
}
