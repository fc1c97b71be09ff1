/*
 * mig_xen.c - live migration with libxl's stream (see mig_xen.h).
 *
 * Source: a thread runs libxl_domain_suspend(LIVE) into one end of a
 * socketpair; this thread pumps the other end into the connection
 * (xen_pump_send). Destination: a thread runs libxl_domain_create_restore
 * from one end of a socketpair; this thread pumps the connection into the
 * other end (xen_pump_receive). Every failure is an event for the
 * ownership state machine (mig_owner.h), which says what to undo.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include <libxl.h>
#include <libxl_utils.h>

#include "log.h"
#include "mig_owner.h"
#include "mig_xen.h"
#include "xen_backend.h"
#include "xen_cfg.h"
#include "xen_stream.h"

#define INCOMING_SUFFIX "--incoming"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}


static void lk_lock(const struct mig_backend_lock *lk)
{
	if (lk && lk->lock)
		lk->lock(lk->arg);
}

static void lk_unlock(const struct mig_backend_lock *lk)
{
	if (lk && lk->unlock)
		lk->unlock(lk->arg);
}

/* One step of the ownership machine; logs the decisions that matter. */
static enum mo_action advance(enum mo_role role, enum mo_state *st, enum mo_event ev, int domid)
{
	struct mo_step s = mig_owner_next(role, *st, ev);
	if (ev != MO_EV_OK)
		log_debug("migration (%s, domain %d): %s in %s -> %s, %s", role == MO_SOURCE ? "source" : "destination",
			  domid, ev == MO_EV_LOCAL_ERROR ? "local error" : ev == MO_EV_PEER_ERROR ? "peer error" : "io error",
			  mig_owner_state_name(*st), mig_owner_state_name(s.ms_next), mig_owner_action_name(s.ms_action));
	*st = s.ms_next;
	return s.ms_action;
}

static int hello_exchange(struct mig_io *io, uint32_t myver, bool source, unsigned char **b, size_t *cap,
			  char *err, size_t errlen)
{
	struct mig_hello he = {.he_magic = MIG_MAGIC, .he_version = myver}, peer;
	snprintf(he.he_software, sizeof he.he_software, "pool-agent xen");
	if (source && mig_send_rec(io, MIG_REC_HELLO, 0, &he, sizeof he, err, errlen) != 0)
		return -1;
	if (mig_expect_rec(io, MIG_REC_HELLO, sizeof he, b, cap,
			   source ? "the destination refused the migration" : "the source aborted", err, errlen) != 0)
		return -1;
	memcpy(&peer, *b, sizeof peer);
	if (peer.he_magic != MIG_MAGIC || peer.he_version != myver) {
		mig_seterr(err, errlen,
		       "migration protocol version mismatch: this host (%s) speaks version %u, the %s speaks "
		       "version %u; upgrade the older host first",
		       source ? "source" : "destination", myver, source ? "destination" : "source",
		       peer.he_magic == MIG_MAGIC ? peer.he_version : 0);
		if (source)
			(void)mig_send_text(io, MIG_REC_ABORT, err);
		else
			mig_refuse(io, err);
		return -1;
	}
	if (!source && mig_send_rec(io, MIG_REC_HELLO, 0, &he, sizeof he, err, errlen) != 0)
		return -1;
	return 0;
}

/* ------------------------------------------------------------------ source */

struct suspend_job {
	libxl_ctx *sj_ctx;
	uint32_t sj_domid;
	int sj_fd;
	int sj_rc;
};

static void *suspend_thread(void *arg)
{
	struct suspend_job *j = arg;
	j->sj_rc = libxl_domain_suspend(j->sj_ctx, j->sj_domid, j->sj_fd, LIBXL_SUSPEND_LIVE, NULL);
	shutdown(j->sj_fd, SHUT_WR); /* EOF for the pump */
	return NULL;
}

struct send_progress {
	mig_progress_fn fn;
	void *arg;
	struct mig_io *io;
	uint64_t t0, npages;
};

static void pump_progress(const struct xen_pump_stats *st, void *arg)
{
	struct send_progress *p = arg;
	(void)st;
	if (!p->fn)
		return;
	struct mig_progress g = {0};
	g.pg_round = 1;
	g.pg_bytes_sent = p->io->bytes_out;
	g.pg_npages = p->npages;
	double sec = (double)(now_ns() - p->t0) / 1e9;
	g.pg_rate_mb_s = sec > 0 ? (double)p->io->bytes_out / 1e6 / sec : 0;
	p->fn(&g, p->arg);
}

/* Before GO: the source runs again, whatever libxl left it as. */
static void resume_source(struct backend *be, const struct mig_backend_lock *lk, int domid)
{
	lk_lock(lk);
	struct be_domain_info di;
	if (be->be_ops->bo_domain_info(be, domid, &di) != 0)
		log_error("migration of domain %d failed and its state is unknown: %s", domid, backend_error(be));
	else if (di.di_state == BE_STATE_PAUSED && be->be_ops->bo_domain_unpause(be, domid) != 0)
		log_error("migration of domain %d failed and the source cannot be resumed: %s", domid,
			  backend_error(be));
	else if (di.di_state == BE_STATE_PAUSED)
		log_info("migration of domain %d failed before GO: the source runs again", domid);
	lk_unlock(lk);
}

/* Before GO, as xl does: the source frees its name for the destination
 * (its "<name>--incoming" becomes <name> at GO). A source resumed later
 * gets it back (xen_domain_unpause). Best effort: names are cosmetic. */
static void rename_away(struct backend *be, const struct mig_backend_lock *lk, int domid)
{
	lk_lock(lk);
	char *name = libxl_domid_to_name(backend_xen_ctx(be), (uint32_t)domid);
	if (!name || backend_xen_rename(be, domid, name, "", XEN_MIGRATEDAWAY_SUFFIX) != 0)
		log_warn("migration of domain %d: cannot rename the source (%s); the destination keeps its "
			 "--incoming name", domid, name ? backend_error(be) : "no name");
	free(name);
	lk_unlock(lk);
}

/* Stream libxl's output; 0 once the end marker is sent. */
static int stream_out(struct mig_io *io, libxl_ctx *ctx, int domid, int level, struct send_progress *sp,
		      struct xen_pump_stats *st, char *err, size_t errlen, enum mo_event *ev)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		mig_seterr(err, errlen, "socketpair: %s", strerror(errno));
		*ev = MO_EV_LOCAL_ERROR;
		return -1;
	}
	struct suspend_job j = {ctx, (uint32_t)domid, sv[1], 0};
	pthread_t t;
	if (pthread_create(&t, NULL, suspend_thread, &j) != 0) {
		mig_seterr(err, errlen, "cannot start libxl's stream thread");
		close(sv[0]);
		close(sv[1]);
		*ev = MO_EV_LOCAL_ERROR;
		return -1;
	}
	char perr[512] = "";
	int pr = xen_pump_send(sv[0], io, level, st, pump_progress, sp, perr, sizeof perr);
	if (pr != 0)
		shutdown(sv[0], SHUT_RDWR); /* libxl's writes fail: it stops */
	pthread_join(t, NULL);
	close(sv[0]);
	close(sv[1]);
	if (pr != 0) {
		mig_seterr(err, errlen, "%s", perr);
		*ev = strstr(perr, "refused") ? MO_EV_PEER_ERROR : MO_EV_IO_ERROR;
		return -1;
	}
	if (j.sj_rc != 0) {
		const char *name = libxl_error_to_string((libxl_error)j.sj_rc);
		mig_seterr(err, errlen, "libxl_domain_suspend of domain %d failed: %s", domid, name ? name : "libxl error");
		(void)mig_send_text(io, MIG_REC_ABORT, err);
		*ev = MO_EV_LOCAL_ERROR;
		return -1;
	}
	if (xen_pump_send_end(io, err, errlen) != 0) {
		*ev = MO_EV_IO_ERROR;
		return -1;
	}
	return 0;
}

int mig_xen_send(struct mig_io *io, struct backend *be, const struct mig_backend_lock *lk, int domid,
		 const struct be_domain_config *cfg, const char *token, const struct mig_opts *opts,
		 mig_progress_fn progress, void *progress_arg, struct mig_send_result *res, char *err,
		 size_t errlen)
{
	struct mig_opts o;
	if (opts)
		o = *opts;
	else
		mig_opts_default(&o);
	struct mig_send_result dummy;
	if (!res)
		res = &dummy;
	memset(res, 0, sizeof *res);
	uint64_t t0 = now_ns(), t_stream_end = 0;
	unsigned char *b = NULL;
	size_t cap = 0;
	enum mo_state st = MO_HANDSHAKE;
	enum mo_event ev = MO_EV_IO_ERROR;
	const char *who = "the destination refused the migration";
	libxl_ctx *ctx = backend_xen_ctx(be);
	mig_io_set_timeout(io, o.io_timeout_ms);

	if (!ctx || !cfg) {
		mig_seterr(err, errlen, "mig_xen_send needs the xen backend and the VM's config");
		(void)mig_send_text(io, MIG_REC_ABORT, err);
		ev = MO_EV_LOCAL_ERROR;
		goto fail;
	}
	if (hello_exchange(io, o.proto_version ? o.proto_version : MIG_PROTO_VERSION, true, &b, &cap, err, errlen) != 0)
		goto fail;
	if (o.verify) { /* after the HELLO: the destination hears why at once and closes its endpoint */
		mig_seterr(err, errlen, "verify is not available with the xen backend (libxl's stream carries no page "
				    "checksums); the VM keeps running here");
		(void)mig_send_text(io, MIG_REC_ABORT, err);
		ev = MO_EV_LOCAL_ERROR;
		goto fail;
	}
	{
		struct be_domain_info di;
		lk_lock(lk);
		int ir = be->be_ops->bo_domain_info(be, domid, &di);
		if (ir != 0)
			mig_seterr(err, errlen, "source domain %d: %s", domid, backend_error(be));
		lk_unlock(lk);
		if (ir != 0) {
			(void)mig_send_text(io, MIG_REC_ABORT, err);
			ev = MO_EV_LOCAL_ERROR;
			goto fail;
		}
	}
	size_t tlen = token ? strlen(token) : 0;
	struct mig_config mc;
	memset(&mc, 0, sizeof mc);
	mc.mc_npages = cfg->dc_memory / MIG_PAGE_SIZE;
	mc.mc_compress = o.compress;
	mc.mc_cfg = *cfg;
	if (mig_send_rec(io, MIG_REC_TOKEN, 0, token ? token : "", tlen, err, errlen) != 0 ||
	    mig_send_rec(io, MIG_REC_CONFIG, 0, &mc, sizeof mc, err, errlen) != 0)
		goto fail;
	if (mig_expect_rec(io, MIG_REC_ACCEPT, 0, &b, &cap, who, err, errlen) != 0) {
		ev = strstr(err, who) ? MO_EV_PEER_ERROR : MO_EV_IO_ERROR;
		goto fail;
	}
	res->setup_ms = (double)(now_ns() - t0) / 1e6;
	advance(MO_SOURCE, &st, MO_EV_OK, domid); /* -> streaming */

	struct send_progress sp = {progress, progress_arg, io, t0, mc.mc_npages};
	struct xen_pump_stats ps = {0};
	int level = o.compress ? (o.compress_level > 0 ? o.compress_level : 1) : 0;
	int sr = stream_out(io, ctx, domid, level, &sp, &ps, err, errlen, &ev);
	res->bytes_raw = ps.xp_raw;
	res->bytes_compressed = ps.xp_payload;
	res->round1_bytes = io->bytes_out;
	res->round1_ms = (double)(now_ns() - t0) / 1e6 - res->setup_ms;
	res->rounds = 1;
	if (sr != 0)
		goto fail;
	t_stream_end = now_ns();
	advance(MO_SOURCE, &st, MO_EV_OK, domid); /* -> ready: the source is suspended */

	if (mig_expect_rec(io, MIG_REC_READY, sizeof(struct mig_ready), &b, &cap, who, err, errlen) != 0) {
		ev = strstr(err, who) ? MO_EV_PEER_ERROR : MO_EV_IO_ERROR;
		goto fail;
	}
	uint64_t t_ready = now_ns();
	res->ready_wait_ms = (double)(t_ready - t_stream_end) / 1e6;
	rename_away(be, lk, domid);
	if (advance(MO_SOURCE, &st, MO_EV_OK, domid) == MO_ACT_SEND_GO &&
	    mig_send_rec(io, MIG_REC_GO, 0, NULL, 0, err, errlen) != 0) {
		char why[256];
		snprintf(why, sizeof why, "%s", err);
		mig_seterr(err, errlen, "connection lost while sending GO (%s): the VM may be running on the destination; "
				    "the source stays paused until the pool decides", why);
		ev = MO_EV_IO_ERROR;
		goto fail;
	}
	if (mig_expect_rec(io, MIG_REC_RUNNING, 0, &b, &cap, "the destination failed after GO", err, errlen) != 0) {
		char why[256];
		snprintf(why, sizeof why, "%s", err);
		mig_seterr(err, errlen, "no RUNNING from the destination after GO (%s): the source stays paused until the "
				    "pool asks both hosts", why);
		ev = MO_EV_IO_ERROR;
		goto fail;
	}
	advance(MO_SOURCE, &st, MO_EV_OK, domid); /* -> done: the caller destroys our copy */
	res->go_running_ms = (double)(now_ns() - t_ready) / 1e6;
	res->downtime_ms = (double)(now_ns() - t_stream_end) / 1e6;
	res->final_copy_ms = 0;
	goto out;
fail:
	switch (advance(MO_SOURCE, &st, ev, domid)) {
	case MO_ACT_RESUME_SOURCE:
		resume_source(be, lk, domid);
		break;
	case MO_ACT_LEAVE_PAUSED:
		log_warn("migration of domain %d: no clear outcome after GO; the source stays suspended until the pool "
			 "decides", domid);
		break;
	default:
		break;
	}
	if (st == MO_FAILED)
		log_warn("migration of domain %d failed: %s", domid, err ? err : "");
out:
	res->wire_bytes = io->bytes_out;
	res->total_ms = (double)(now_ns() - t0) / 1e6;
	free(b);
	return mig_owner_next(MO_SOURCE, st, MO_EV_OK).ms_rc;
}

/* ------------------------------------------------------------- destination */

struct restore_job {
	libxl_ctx *rj_ctx;
	libxl_domain_config *rj_dc;
	int rj_fd;
	uint32_t rj_domid;
	int rj_rc;
};

static void *restore_thread(void *arg)
{
	struct restore_job *j = arg;
	libxl_domain_restore_params params;
	libxl_domain_restore_params_init(&params);
	params.checkpointed_stream = LIBXL_CHECKPOINTED_STREAM_NONE;
	params.stream_version = 2;
	j->rj_rc = libxl_domain_create_restore(j->rj_ctx, j->rj_dc, &j->rj_domid, j->rj_fd, -1, &params, NULL, NULL);
	libxl_domain_restore_params_dispose(&params);
	shutdown(j->rj_fd, SHUT_RDWR); /* the pump's writes fail if libxl stopped early */
	return NULL;
}

static void destroy_dest(struct backend *be, const struct mig_backend_lock *lk, int domid)
{
	if (domid <= 0)
		return;
	lk_lock(lk);
	struct be_domain_info di;
	if (be->be_ops->bo_domain_info(be, domid, &di) != 0) /* a failed restore: libxl destroyed it already */
		log_info("migration failed: destination domain %d is gone already", domid);
	else if (be->be_ops->bo_domain_destroy(be, domid) != 0)
		log_error("migration failed and destination domain %d cannot be destroyed: %s", domid, backend_error(be));
	lk_unlock(lk);
}

int mig_xen_receive(struct mig_io *io, struct backend *be, const struct mig_backend_lock *lk,
		    const struct mig_recv_opts *opts, struct mig_recv_result *res, char *err, size_t errlen)
{
	struct mig_recv_result dummy;
	if (!res)
		res = &dummy;
	memset(res, 0, sizeof *res);
	res->domid = -1;
	const char *token = opts ? opts->token : NULL;
	uint32_t myver = opts && opts->proto_version ? opts->proto_version : MIG_PROTO_VERSION;
	unsigned char *b = NULL;
	size_t cap = 0;
	enum mo_state st = MO_HANDSHAKE;
	enum mo_event ev = MO_EV_IO_ERROR;
	const char *who = "the source aborted";
	int domid = -1;
	bool dc_built = false;
	libxl_domain_config dc;
	libxl_ctx *ctx = backend_xen_ctx(be);
	struct mig_config mc;
	mig_io_set_timeout(io, opts ? opts->io_timeout_ms : 0);

	if (!ctx) {
		mig_seterr(err, errlen, "mig_xen_receive needs the xen backend");
		mig_refuse(io, err);
		ev = MO_EV_LOCAL_ERROR;
		goto fail;
	}
	if (hello_exchange(io, myver, false, &b, &cap, err, errlen) != 0)
		goto fail;
	if (mig_expect_rec(io, MIG_REC_TOKEN, 0, &b, &cap, who, err, errlen) != 0)
		goto fail;
	{
		size_t tl = token ? strlen(token) : 0, gl = strlen((char *)b);
		if (!(tl > 0 && gl == tl && CRYPTO_memcmp(b, token, tl) == 0)) {
			mig_seterr(err, errlen, "migration token refused by the destination (unknown, expired or for another "
					    "migration): ask the pool to prepare the migration again");
			mig_refuse(io, err);
			ev = MO_EV_LOCAL_ERROR;
			goto fail;
		}
	}
	if (mig_expect_rec(io, MIG_REC_CONFIG, sizeof mc, &b, &cap, who, err, errlen) != 0)
		goto fail;
	memcpy(&mc, b, sizeof mc);
	mc.mc_cfg.dc_name[sizeof mc.mc_cfg.dc_name - 1] = 0;
	mc.mc_cfg.dc_uuid[sizeof mc.mc_cfg.dc_uuid - 1] = 0;
	snprintf(res->uuid, sizeof res->uuid, "%s", mc.mc_cfg.dc_uuid);
	{
		char why[300];
		dc_built = true;
		lk_lock(lk);
		int pr = backend_xen_domcfg(be, &mc.mc_cfg, INCOMING_SUFFIX, &dc);
		if (pr != 0)
			snprintf(why, sizeof why, "%s", backend_error(be));
		lk_unlock(lk);
		if (pr != 0) {
			mig_seterr(err, errlen, "cannot build the destination domain's config: %s", why);
			mig_refuse(io, err);
			ev = MO_EV_LOCAL_ERROR;
			goto fail;
		}
	}
	if (mig_send_rec(io, MIG_REC_ACCEPT, 0, NULL, 0, err, errlen) != 0)
		goto fail;
	advance(MO_DEST, &st, MO_EV_OK, domid); /* -> streaming: start the restore */

	{
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
			mig_seterr(err, errlen, "socketpair: %s", strerror(errno));
			mig_refuse(io, err);
			ev = MO_EV_LOCAL_ERROR;
			goto fail;
		}
		struct restore_job j = {ctx, &dc, sv[1], (uint32_t)INVALID_DOMID, 0};
		pthread_t t;
		if (pthread_create(&t, NULL, restore_thread, &j) != 0) {
			close(sv[0]);
			close(sv[1]);
			mig_seterr(err, errlen, "cannot start libxl's restore thread");
			mig_refuse(io, err);
			ev = MO_EV_LOCAL_ERROR;
			goto fail;
		}
		struct xen_pump_stats ps = {0};
		char perr[512] = "";
		int pr = xen_pump_receive(io, sv[0], mc.mc_compress != 0, &ps, perr, sizeof perr);
		/* after the end marker libxl has all it needs; on failure it must stop reading */
		shutdown(sv[0], pr == 0 ? SHUT_WR : SHUT_RDWR);
		pthread_join(t, NULL);
		close(sv[0]);
		close(sv[1]);
		if (j.rj_domid != (uint32_t)INVALID_DOMID)
			domid = (int)j.rj_domid;
		res->pages = ps.xp_raw / MIG_PAGE_SIZE; /* libxl's stream bytes in pages (not guest pages) */
		bool libxl_stopped = pr != 0 && strstr(perr, "libxl stopped reading") != NULL;
		if (pr != 0 && !libxl_stopped) { /* the connection or the source gave up */
			mig_seterr(err, errlen, "%s", perr);
			ev = strstr(perr, who) ? MO_EV_PEER_ERROR : MO_EV_IO_ERROR;
			goto fail;
		}
		if (j.rj_rc != 0 || pr != 0) {
			const char *name = j.rj_rc ? libxl_error_to_string((libxl_error)j.rj_rc) : NULL;
			mig_seterr(err, errlen, "libxl_domain_create_restore failed: %s", name ? name : perr);
			mig_refuse(io, err);
			ev = MO_EV_LOCAL_ERROR;
			goto fail;
		}
	}
	if (opts && opts->on_created)
		opts->on_created(domid, opts->arg);
	lk_lock(lk);
	struct be_domain_info di;
	int ir = be->be_ops->bo_domain_info(be, domid, &di);
	if (ir != 0)
		mig_seterr(err, errlen, "the destination domain %d is gone: %s", domid, backend_error(be));
	else if (di.di_state != BE_STATE_PAUSED) {
		ir = -1;
		mig_seterr(err, errlen, "the destination domain %d is %s after the restore, not paused", domid,
		       be_state_name(di.di_state));
	}
	lk_unlock(lk);
	if (ir != 0) {
		mig_refuse(io, err);
		ev = MO_EV_LOCAL_ERROR;
		goto fail;
	}
	{
		struct mig_ready rd = {0};
		if (advance(MO_DEST, &st, MO_EV_OK, domid) == MO_ACT_SEND_READY &&
		    mig_send_rec(io, MIG_REC_READY, 0, &rd, sizeof rd, err, errlen) != 0)
			goto fail;
	}
	if (mig_expect_rec(io, MIG_REC_GO, 0, &b, &cap, who, err, errlen) != 0) {
		ev = strstr(err, who) ? MO_EV_PEER_ERROR : MO_EV_IO_ERROR;
		goto fail;
	}
	advance(MO_DEST, &st, MO_EV_OK, domid); /* -> go: unpause */
	lk_lock(lk);
	if (backend_xen_rename(be, domid, mc.mc_cfg.dc_name, INCOMING_SUFFIX, "") != 0)
		log_warn("migration into domain %d: %s (it keeps its --incoming name)", domid, backend_error(be));
	int ur = be->be_ops->bo_domain_unpause(be, domid);
	if (ur != 0)
		mig_seterr(err, errlen, "cannot unpause the destination domain %d after GO: %s", domid, backend_error(be));
	lk_unlock(lk);
	if (ur != 0) {
		(void)mig_send_text(io, MIG_REC_ERROR, err);
		ev = MO_EV_LOCAL_ERROR;
		goto fail;
	}
	if (advance(MO_DEST, &st, MO_EV_OK, domid) == MO_ACT_SEND_RUNNING) {
		res->running_sent = mig_send_rec(io, MIG_REC_RUNNING, 0, NULL, 0, NULL, 0) == 0;
		if (!res->running_sent)
			log_warn("migration into domain %d: RUNNING not delivered after GO; the domain runs here, the "
				 "source decides with the pool", domid);
	}
	goto out;
fail:
	switch (advance(MO_DEST, &st, ev, domid)) {
	case MO_ACT_DESTROY_DEST:
		destroy_dest(be, lk, domid);
		break;
	case MO_ACT_LEAVE_PAUSED:
		log_error("migration into domain %d: failed after GO; the domain is kept for the pool to decide", domid);
		break;
	default:
		break;
	}
	log_warn("incoming migration failed: %s", err ? err : "");
out:
	res->wire_bytes = io->bytes_in;
	if (st == MO_DONE || st == MO_AFTER_GO)
		res->domid = domid;
	if (dc_built)
		libxl_domain_config_dispose(&dc);
	free(b);
	return mig_owner_next(MO_DEST, st, MO_EV_OK).ms_rc;
}
