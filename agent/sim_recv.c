/*
 * sim_recv.c - the destination end of the sim stream: mig_receive (see
 * mig.h).
 *
 * The ownership machine (mig_owner_run) walks it through its steps:
 * handshake (HELLO, TOKEN, CONFIG); the stream (the domain taken or
 * created and mapped, ACCEPT, then PAGES, ROUND_END, VCPU until the
 * CHECKSUM checks out); READY; GO (unpause); RUNNING. Every failure is an
 * event, and the machine alone says what it means for the domain. PAGES
 * records are sim_recv_pages.c's.
 */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "log.h"
#include "sim_mig.h"
#include "simdom.h"

#define PG SIM_PG
#define WHO "the source aborted"

/* ---- the stream's records but PAGES ---- */

/* Is the destination domain still there (paused, as we left it)? Asked at
 * every round's end and before READY: through the domain's process when
 * we hold a pidfd for it, so the stream never waits for the backend lock
 * (which an agent receiving several migrations holds while it creates
 * their domains); else through the backend. */
static enum mo_event dest_alive(struct sim_receiver *r)
{
	if (r->rv_pidfd >= 0) {
		struct pollfd pf = {.fd = r->rv_pidfd, .events = POLLIN};
		if (poll(&pf, 1, 0) == 0)
			return MO_EV_OK;
		mig_seterr(r->rv_err, r->rv_errlen,
			   "the destination domain %d died during the migration (its process ended)", r->rv_domid);
		return MO_EV_LOCAL_ERROR;
	}
	struct be_domain_info di;
	mig_lock(r->rv_lk);
	int ir = r->rv_be->be_ops->bo_domain_info(r->rv_be, r->rv_domid, &di);
	if (ir != 0)
		mig_seterr(r->rv_err, r->rv_errlen, "the destination domain %d is gone: %s", r->rv_domid,
			   backend_error(r->rv_be));
	mig_unlock(r->rv_lk);
	if (ir == 0 && di.di_state != BE_STATE_PAUSED) {
		mig_seterr(r->rv_err, r->rv_errlen, "the destination domain %d died during the migration (state %s)",
			   r->rv_domid, be_state_name(di.di_state));
		ir = -1;
	}
	return ir == 0 ? MO_EV_OK : MO_EV_LOCAL_ERROR;
}

static enum mo_event recv_round_end(struct sim_receiver *r, const struct mig_rec_hdr *h)
{
	struct mig_round_end re = {0};
	memcpy(&re, r->rv_in.mb_p, h->rh_len < sizeof re ? h->rh_len : sizeof re);
	enum mo_event ev = dest_alive(r);
	if (ev != MO_EV_OK)
		return ev;
	if (re.re_last) {
		r->rv_got_last = true;
		return MO_EV_OK;
	}
	struct mig_round_end ack = {.re_round = re.re_round};
	if (mig_send_rec(r->rv_io, MIG_REC_ROUND_ACK, 0, &ack, sizeof ack, r->rv_err, r->rv_errlen) != 0)
		return MO_EV_IO_ERROR;
	return MO_EV_OK;
}

static enum mo_event recv_vcpu(struct sim_receiver *r, const struct mig_rec_hdr *h)
{
	const size_t voff = offsetof(struct simdom_shared, ss_vcpus), len = sizeof(struct simdom_shared) - voff;
	if (h->rh_len != len) {
		mig_seterr(r->rv_err, r->rv_errlen, "vCPU state of %" PRIu64 " bytes, expected %zu", h->rh_len, len);
		return MO_EV_LOCAL_ERROR;
	}
	memcpy((unsigned char *)r->rv_m.sm_shared + voff, r->rv_in.mb_p, len);
	r->rv_got_vcpu = true;
	return MO_EV_OK;
}

/* With verify: every page as it landed against the source's hash of what
 * it sent (r->rv_hash was taken while each page was in cache). */
static enum mo_event verify_pages(struct sim_receiver *r, const uint64_t *want)
{
	uint64_t n = r->rv_m.sm_npages, t = sim_now_ns(), bad = 0, nbad = 0;
	if (!want)
		return sim_fail(r->rv_err, r->rv_errlen, "verify asked but no page hashes sent");
	for (uint64_t i = 0; i < n; i++)
		if (want[i] != r->rv_hash[i] && nbad++ == 0)
			bad = i;
	r->rv_ready.rd_verify_ns = sim_now_ns() - t;
	r->rv_res->verify_ms = (double)r->rv_ready.rd_verify_ns / 1e6;
	if (nbad) {
		mig_seterr(r->rv_err, r->rv_errlen,
			   "verification failed on the destination: %" PRIu64 " page(s) differ from the source "
			   "(first: page %" PRIu64 ")",
			   nbad, bad);
		return MO_EV_LOCAL_ERROR;
	}
	r->rv_ready.rd_verified = 1;
	r->rv_res->verified = true;
	return MO_EV_OK;
}

static enum mo_event recv_checksum(struct sim_receiver *r, const struct mig_rec_hdr *h)
{
	struct mig_checksum ck;
	uint64_t n = r->rv_m.sm_npages;
	if (h->rh_len < sizeof ck || !r->rv_got_last || !r->rv_got_vcpu)
		return sim_fail(r->rv_err, r->rv_errlen, "malformed migration stream: early CHECKSUM");
	memcpy(&ck, r->rv_in.mb_p, sizeof ck);
	const uint64_t *want =
		h->rh_len >= sizeof ck + n * 8 ? (const uint64_t *)(const void *)(r->rv_in.mb_p + sizeof ck) : NULL;
	if (ck.ck_npages != n || mig_digest(r->rv_hash, n) != ck.ck_digest) {
		uint64_t first = n;
		for (uint64_t i = 0; want && i < n && first == n; i++)
			if (want[i] != r->rv_hash[i])
				first = i;
		if (first < n)
			mig_seterr(r->rv_err, r->rv_errlen,
				   "memory checksum mismatch on the destination: page %" PRIu64
				   " differs from what the source sent",
				   first);
		else
			mig_seterr(r->rv_err, r->rv_errlen, "memory checksum mismatch on the destination");
		return MO_EV_LOCAL_ERROR;
	}
	return r->rv_verify ? verify_pages(r, want) : MO_EV_OK;
}

/* Records until the CHECKSUM checks out. */
static enum mo_event step_stream(struct sim_receiver *r)
{
	for (;;) {
		struct mig_rec_hdr h;
		enum mo_event ev;
		if (mig_read_hdr(r->rv_io, &h, r->rv_err, r->rv_errlen) != MIG_READ_OK)
			return MO_EV_IO_ERROR;
		if (h.rh_type == MIG_REC_PAGES) {
			if ((ev = sim_recv_pages(r, &h)) != MO_EV_OK)
				return ev;
			continue;
		}
		int rc = mig_read_payload(r->rv_io, &h, &r->rv_in.mb_p, &r->rv_in.mb_cap, WHO, r->rv_err,
					  r->rv_errlen);
		if (rc != MIG_READ_OK)
			return sim_read_event(rc);
		switch (h.rh_type) {
		case MIG_REC_ROUND_END: ev = recv_round_end(r, &h); break;
		case MIG_REC_VCPU: ev = recv_vcpu(r, &h); break;
		case MIG_REC_CHECKSUM: return recv_checksum(r, &h);
		default:
			mig_seterr(r->rv_err, r->rv_errlen, "malformed migration stream: record type %u", h.rh_type);
			ev = MO_EV_LOCAL_ERROR;
		}
		if (ev != MO_EV_OK)
			return ev;
	}
}

/* ---- the handshake ---- */

/* HELLOs both ways; the page hash both ends can do. */
static enum mo_event hello(struct sim_receiver *r)
{
	uint32_t myver = r->rv_o.proto_version ? r->rv_o.proto_version : MIG_PROTO_VERSION, features = 0;
	struct mig_hello peer;
	int rc = mig_expect_hello(r->rv_io, &r->rv_in, &peer, &features, WHO, r->rv_err, r->rv_errlen);
	if (rc != MIG_READ_OK)
		return sim_read_event(rc);
	r->rv_res->hash2 = !r->rv_o.legacy_hello && (features & MIG_FEAT_HASH2);
	r->rv_hashfn = r->rv_res->hash2 ? mig_page_hash2 : mig_page_hash;
	if (peer.he_magic != MIG_MAGIC || peer.he_version != myver) {
		mig_seterr(r->rv_err, r->rv_errlen,
			   "migration protocol version mismatch: this host (destination) speaks version %u, the "
			   "source speaks version %u; upgrade the older host first",
			   myver, peer.he_magic == MIG_MAGIC ? peer.he_version : 0);
		return MO_EV_LOCAL_ERROR;
	}
	if (mig_send_hello(r->rv_io, myver, MIG_FEAT_HASH2, r->rv_o.legacy_hello, r->rv_err, r->rv_errlen) != 0)
		return MO_EV_IO_ERROR;
	return MO_EV_OK;
}

/* HELLO, the token (compared in constant time), CONFIG. */
static enum mo_event step_handshake(struct sim_receiver *r)
{
	enum mo_event ev = hello(r);
	if (ev != MO_EV_OK)
		return ev;
	int rc = mig_expect_rec(r->rv_io, MIG_REC_TOKEN, 0, &r->rv_in.mb_p, &r->rv_in.mb_cap, WHO, r->rv_err,
				r->rv_errlen);
	if (rc != MIG_READ_OK)
		return sim_read_event(rc);
	size_t tl = r->rv_o.token ? strlen(r->rv_o.token) : 0, gl = strlen((char *)r->rv_in.mb_p);
	if (!(tl > 0 && gl == tl && CRYPTO_memcmp(r->rv_in.mb_p, r->rv_o.token, tl) == 0))
		return sim_fail(r->rv_err, r->rv_errlen,
				"migration token refused by the destination (unknown, expired or for another "
				"migration): ask the pool to prepare the migration again");
	rc = mig_expect_rec(r->rv_io, MIG_REC_CONFIG, sizeof r->rv_mc, &r->rv_in.mb_p, &r->rv_in.mb_cap, WHO,
			    r->rv_err, r->rv_errlen);
	if (rc != MIG_READ_OK)
		return sim_read_event(rc);
	memcpy(&r->rv_mc, r->rv_in.mb_p, sizeof r->rv_mc);
	r->rv_verify = r->rv_o.verify || r->rv_mc.mc_verify;
	snprintf(r->rv_res->uuid, sizeof r->rv_res->uuid, "%s", r->rv_mc.mc_cfg.dc_uuid);
	return MO_EV_OK;
}

/* ---- the actions ---- */

/* The domain prepared for this migration (it must be this VM's, paused and
 * empty), or a new one; under the lock. 0, or -1 with err set. */
static int take_domain(struct sim_receiver *r)
{
	struct backend *be = r->rv_be;
	const struct be_domain_config *c = &r->rv_mc.mc_cfg;
	int domid = r->rv_o.domid;
	struct be_domain_info di;
	if (domid > 0) { /* prepared: only ours once it proves to be this VM's */
		if (be->be_ops->bo_domain_info(be, domid, &di) != 0) {
			mig_seterr(r->rv_err, r->rv_errlen, "the domain prepared for this migration (%d) is gone: %s",
				   domid, backend_error(be));
			return -1;
		}
		if (strcmp(di.di_uuid, c->dc_uuid) != 0 || di.di_state != BE_STATE_PAUSED) {
			mig_seterr(r->rv_err, r->rv_errlen,
				   "the domain prepared for this migration (%d) is VM %s in state %s, not a paused VM %s",
				   domid, di.di_uuid, be_state_name(di.di_state), c->dc_uuid);
			return -1;
		}
	} else if (!be->be_ops->bo_domain_create_restore) {
		mig_seterr(r->rv_err, r->rv_errlen, "cannot create the destination domain: the backend cannot restore");
		return -1;
	} else if (be->be_ops->bo_domain_create_restore(be, c, &domid) != 0) {
		mig_seterr(r->rv_err, r->rv_errlen, "cannot create the destination domain: %s", backend_error(be));
		return -1;
	}
	r->rv_domid = domid;
	return 0;
}

/* The domain mapped, and its process, to tell later whether it still lives
 * without the lock; under the lock. */
static void map_domain(struct sim_receiver *r)
{
	struct be_domain_info di;
	if (backend_sim_map(r->rv_be, r->rv_domid, &r->rv_m) != 0) {
		mig_seterr(r->rv_err, r->rv_errlen, "cannot map the destination domain %d: %s", r->rv_domid,
			   backend_error(r->rv_be));
		return;
	}
	r->rv_mapped = true;
	if (r->rv_be->be_ops->bo_domain_info(r->rv_be, r->rv_domid, &di) == 0 && di.di_pid > 0)
		r->rv_pidfd = (int)syscall(SYS_pidfd_open, di.di_pid, 0);
}

static enum mo_event alloc_buffers(struct sim_receiver *r)
{
	uint64_t n = r->rv_m.sm_npages;
	r->rv_hash = mig_malloc(n * 8);
	r->rv_nonzero = calloc((n + 63) / 64, 8);
	if (r->rv_mc.mc_compress)
		r->rv_dctx = ZSTD_createDCtx();
	if (!r->rv_hash || !r->rv_nonzero || (r->rv_mc.mc_compress && !r->rv_dctx) ||
	    mig_buf_need(&r->rv_data, (size_t)SIM_PIECE_PAGES * PG) != 0)
		return sim_fail(r->rv_err, r->rv_errlen, "out of memory for the migration buffers");
	static const unsigned char zp[PG];
	r->rv_zero_hash = r->rv_hashfn(zp);
	for (uint64_t i = 0; i < n; i++)
		r->rv_hash[i] = r->rv_zero_hash;
	return MO_EV_OK;
}

/* The destination domain, its buffers, then ACCEPT. */
static enum mo_event act_start(struct sim_receiver *r)
{
	mig_lock(r->rv_lk);
	int tr = take_domain(r);
	if (tr == 0)
		map_domain(r);
	mig_unlock(r->rv_lk);
	if (tr != 0)
		return MO_EV_LOCAL_ERROR;
	if (r->rv_o.on_created)
		r->rv_o.on_created(r->rv_domid, r->rv_o.arg);
	if (!r->rv_mapped)
		return MO_EV_LOCAL_ERROR;
	if (r->rv_m.sm_npages != r->rv_mc.mc_npages) {
		mig_seterr(r->rv_err, r->rv_errlen, "the destination domain has %" PRIu64 " pages, the source %" PRIu64,
			   r->rv_m.sm_npages, r->rv_mc.mc_npages);
		return MO_EV_LOCAL_ERROR;
	}
	enum mo_event ev = alloc_buffers(r);
	if (ev != MO_EV_OK)
		return ev;
	if (mig_send_rec(r->rv_io, MIG_REC_ACCEPT, 0, NULL, 0, r->rv_err, r->rv_errlen) != 0)
		return MO_EV_IO_ERROR;
	return MO_EV_OK;
}

static enum mo_event act_send_ready(struct sim_receiver *r)
{
	enum mo_event ev = dest_alive(r);
	if (ev != MO_EV_OK)
		return ev;
	if (mig_send_rec(r->rv_io, MIG_REC_READY, 0, &r->rv_ready, sizeof r->rv_ready, r->rv_err, r->rv_errlen) != 0)
		return MO_EV_IO_ERROR;
	return MO_EV_OK;
}

static enum mo_event act_unpause(struct sim_receiver *r)
{
	mig_lock(r->rv_lk);
	int ur = r->rv_be->be_ops->bo_domain_unpause(r->rv_be, r->rv_domid);
	if (ur != 0)
		mig_seterr(r->rv_err, r->rv_errlen, "cannot unpause the destination domain %d after GO: %s",
			   r->rv_domid, backend_error(r->rv_be));
	mig_unlock(r->rv_lk);
	return ur == 0 ? MO_EV_OK : MO_EV_LOCAL_ERROR;
}

static void unmap(struct sim_receiver *r)
{
	if (!r->rv_mapped)
		return;
	mig_lock(r->rv_lk);
	backend_sim_unmap(&r->rv_m);
	mig_unlock(r->rv_lk);
	r->rv_mapped = false;
}

/* Before GO: nothing may be left behind. */
static void act_destroy(struct sim_receiver *r)
{
	unmap(r);
	if (r->rv_domid < 0)
		return;
	mig_lock(r->rv_lk);
	if (r->rv_be->be_ops->bo_domain_destroy(r->rv_be, r->rv_domid) != 0)
		log_error("migration failed and destination domain %d cannot be destroyed: %s", r->rv_domid,
			  backend_error(r->rv_be));
	mig_unlock(r->rv_lk);
}

static enum mo_event recv_act(void *arg, enum mo_action a)
{
	struct sim_receiver *r = arg;
	switch (a) {
	case MO_ACT_START_STREAM: return act_start(r);
	case MO_ACT_SEND_READY: return act_send_ready(r);
	case MO_ACT_UNPAUSE_DEST: return act_unpause(r);
	case MO_ACT_SEND_RUNNING:
		r->rv_res->running_sent = mig_send_rec(r->rv_io, MIG_REC_RUNNING, 0, NULL, 0, NULL, 0) == 0;
		if (!r->rv_res->running_sent)
			log_warn("migration into domain %d: RUNNING not delivered after GO; the domain runs here, the "
				 "source decides with the pool", r->rv_domid);
		return MO_EV_OK;
	case MO_ACT_DESTROY_DEST:
		act_destroy(r);
		return MO_EV_OK;
	case MO_ACT_LEAVE_PAUSED:
		log_error("migration into domain %d: failed after GO; the domain is kept for the pool to decide",
			  r->rv_domid);
		return MO_EV_OK;
	default:
		return MO_EV_OK;
	}
}

static enum mo_event recv_step(void *arg, enum mo_state st)
{
	struct sim_receiver *r = arg;
	switch (st) {
	case MO_HANDSHAKE: return step_handshake(r);
	case MO_STREAMING: return step_stream(r);
	case MO_READY: {
		int rc = mig_expect_rec(r->rv_io, MIG_REC_GO, 0, &r->rv_in.mb_p, &r->rv_in.mb_cap, WHO, r->rv_err,
					r->rv_errlen);
		return rc == MIG_READ_OK ? MO_EV_OK : sim_read_event(rc);
	}
	case MO_GO: return MO_EV_OK; /* the unpause (the action) was the work */
	default: return MO_EV_LOCAL_ERROR;
	}
}

static void recv_tell(void *arg)
{
	struct sim_receiver *r = arg;
	mig_refuse(r->rv_io, r->rv_err ? r->rv_err : "the destination failed");
}

static void recv_trace(void *arg, enum mo_state from, enum mo_event ev, const struct mo_step *to)
{
	struct sim_receiver *r = arg;
	log_debug("migration (destination, domain %d): %s in %s -> %s, %s", r->rv_domid, mig_owner_event_name(ev),
		  mig_owner_state_name(from), mig_owner_state_name(to->ms_next), mig_owner_action_name(to->ms_action));
}

int mig_receive(struct mig_io *io, struct backend *be, const struct mig_backend_lock *lk,
		const struct mig_recv_opts *opts, struct mig_recv_result *res, char *err, size_t errlen)
{
	struct mig_recv_result dummy;
	struct sim_receiver r = {.rv_io = io, .rv_be = be, .rv_lk = lk, .rv_res = res ? res : &dummy,
				 .rv_err = err, .rv_errlen = errlen, .rv_domid = -1, .rv_pidfd = -1};
	if (opts)
		r.rv_o = *opts;
	memset(r.rv_res, 0, sizeof *r.rv_res);
	r.rv_res->domid = -1;
	r.rv_m.sm_ram_fd = r.rv_m.sm_dirty_fd = r.rv_m.sm_shared_fd = -1;
	mig_io_set_timeout(io, r.rv_o.io_timeout_ms);
	static const struct mo_driver drv = {recv_step, recv_act, recv_tell, recv_trace};
	int rc = mig_owner_run(MO_DEST, &drv, &r);
	r.rv_res->wire_bytes = io->bytes_in;
	if (rc != MIG_FAILED)
		r.rv_res->domid = r.rv_domid;
	if (rc != MIG_OK)
		log_warn("incoming migration failed: %s", err ? err : "");
	unmap(&r);
	if (r.rv_pidfd >= 0)
		close(r.rv_pidfd);
	ZSTD_freeDCtx(r.rv_dctx);
	free(r.rv_hash);
	free(r.rv_nonzero);
	mig_buf_free(&r.rv_in);
	mig_buf_free(&r.rv_index);
	mig_buf_free(&r.rv_data);
	return rc;
}
