/*
 * sim_send.c - the source end of the sim stream: mig_send (see mig.h).
 *
 * The ownership machine (mig_owner_run) walks it through its steps:
 * handshake; pre-copy rounds while the guest runs, until the stop rule
 * (mig_policy.c) says stop; the stop-and-copy (guest paused: its last
 * pages, its vCPUs, the checksum); READY; GO; RUNNING. Every failure is
 * an event, and the machine alone says what it means for the VM. The
 * records that carry the pages are sim_send_pages.c's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "sim_mig.h"
#include "simdom.h"

#define PG SIM_PG

/* ---- the steps ---- */

/* Auto-converge: the throttle the rounds so far call for. */
static void throttle(struct sim_sender *s)
{
	int thr = mig_next_throttle(s->sd_hist, s->sd_nh, &s->sd_o);
	if (thr == s->sd_throttle)
		return;
	mig_lock(s->sd_lk);
	int tr = backend_sim_set_throttle(s->sd_be, s->sd_domid, thr);
	mig_unlock(s->sd_lk);
	if (tr != 0)
		return;
	log_info("migration of domain %d: not converging (dirty %" PRIu64 " pages after round %d), throttle %d%%",
		 s->sd_domid, s->sd_hist[s->sd_nh - 1].rs_dirty_after, s->sd_round, thr);
	s->sd_throttle = thr;
	if (thr > s->sd_res->throttle_pct)
		s->sd_res->throttle_pct = thr;
}

/* HELLOs both ways; the page hash both ends can do. */
static enum mo_event hello(struct sim_sender *s)
{
	uint32_t myver = s->sd_o.proto_version ? s->sd_o.proto_version : MIG_PROTO_VERSION, features = 0;
	struct mig_hello peer;
	if (mig_send_hello(s->sd_io, myver, MIG_FEAT_HASH2, s->sd_o.legacy_hello, s->sd_err, s->sd_errlen) != 0)
		return MO_EV_IO_ERROR;
	int rc = mig_expect_hello(s->sd_io, &s->sd_in, &peer, &features, "the destination refused the migration",
				  s->sd_err, s->sd_errlen);
	if (rc != MIG_READ_OK)
		return sim_read_event(rc);
	s->sd_res->hash2 = !s->sd_o.legacy_hello && (features & MIG_FEAT_HASH2);
	s->sd_hash = s->sd_res->hash2 ? mig_page_hash2 : mig_page_hash;
	if (peer.he_magic != MIG_MAGIC || peer.he_version != myver) {
		mig_seterr(s->sd_err, s->sd_errlen,
			   "migration protocol version mismatch: this host (source) speaks version %u, "
			   "the destination speaks version %u; upgrade the older host first",
			   myver, peer.he_version);
		return MO_EV_LOCAL_ERROR;
	}
	return MO_EV_OK;
}

/* HELLO, the domain mapped, TOKEN, CONFIG, the buffers, ACCEPT. */
static enum mo_event step_handshake(struct sim_sender *s)
{
	enum mo_event ev = hello(s);
	if (ev != MO_EV_OK)
		return ev;
	mig_lock(s->sd_lk);
	s->sd_mapped = backend_sim_map(s->sd_be, s->sd_domid, &s->sd_m) == 0;
	if (!s->sd_mapped)
		mig_seterr(s->sd_err, s->sd_errlen, "cannot map the source domain %d: %s", s->sd_domid,
			   backend_error(s->sd_be));
	mig_unlock(s->sd_lk);
	if (!s->sd_mapped)
		return MO_EV_LOCAL_ERROR;
	const char *tok = s->sd_token ? s->sd_token : "";
	struct mig_config mc = {.mc_npages = s->sd_m.sm_npages, .mc_compress = s->sd_o.compress,
				.mc_verify = s->sd_o.verify};
	mc.mc_cfg = *s->sd_cfg;
	if (mig_send_rec(s->sd_io, MIG_REC_TOKEN, 0, tok, strlen(tok), s->sd_err, s->sd_errlen) != 0 ||
	    mig_send_rec(s->sd_io, MIG_REC_CONFIG, 0, &mc, sizeof mc, s->sd_err, s->sd_errlen) != 0)
		return MO_EV_IO_ERROR;
	/* buffers while the destination takes its domain */
	if ((ev = sim_send_buffers(s)) != MO_EV_OK)
		return ev;
	int rc = mig_expect_rec(s->sd_io, MIG_REC_ACCEPT, 0, &s->sd_in.mb_p, &s->sd_in.mb_cap,
				"the destination refused the migration", s->sd_err, s->sd_errlen);
	if (rc != MIG_READ_OK)
		return sim_read_event(rc);
	s->sd_res->setup_ms = (double)(sim_now_ns() - s->sd_t0) / 1e6;
	sim_send_writer_start(s);
	return MO_EV_OK;
}

/* Rounds while the guest runs, until the stop rule says stop; then, once
 * the destination has read everything sent so far (the stop-and-copy
 * starts with an empty pipe): MO_EV_PAUSE. */
static enum mo_event step_precopy(struct sim_sender *s)
{
	int max_rounds = s->sd_o.max_rounds > 0 ? s->sd_o.max_rounds : 30;
	for (;;) {
		enum mo_event ev = sim_send_round(s, false);
		if (ev != MO_EV_OK)
			return ev;
		s->sd_res->stop = mig_should_stop(s->sd_hist, s->sd_nh, &s->sd_o);
		if (s->sd_res->stop != MIG_CONTINUE || s->sd_nh >= max_rounds)
			break;
		throttle(s);
		if ((ev = sim_send_check_peer(s)) != MO_EV_OK)
			return ev;
	}
	if (s->sd_res->stop == MIG_CONTINUE)
		s->sd_res->stop = MIG_STOP_MAX_ROUNDS;
	while (s->sd_acked < s->sd_round) {
		enum mo_event ev = sim_send_peer_record(s);
		if (ev != MO_EV_OK)
			return ev;
	}
	return MO_EV_PAUSE;
}

/* The disks' last blocks (storage migration: mig_opts.paused_hook). */
static enum mo_event disks_hook(struct sim_sender *s, bool wait)
{
	if (!s->sd_o.paused_hook || s->sd_o.paused_hook(s->sd_o.paused_hook_arg, wait, s->sd_err, s->sd_errlen) == 0)
		return MO_EV_OK;
	return MO_EV_LOCAL_ERROR;
}

/* Guest paused: the disks' last blocks (beside the pages), the last dirty
 * pages, the vCPUs, the checksum. */
static enum mo_event step_stopcopy(struct sim_sender *s)
{
	enum mo_event ev = disks_hook(s, false);
	if (ev == MO_EV_OK)
		ev = sim_send_round(s, true);
	if (ev == MO_EV_OK)
		ev = disks_hook(s, true);
	if (ev != MO_EV_OK)
		return ev;
	const size_t voff = offsetof(struct simdom_shared, ss_vcpus);
	if (mig_send_rec(s->sd_io, MIG_REC_VCPU, 0, (unsigned char *)s->sd_m.sm_shared + voff,
			 sizeof(struct simdom_shared) - voff, s->sd_err, s->sd_errlen) != 0)
		return MO_EV_IO_ERROR;
	uint64_t n = s->sd_m.sm_npages;
	struct mig_checksum ck = {.ck_npages = n, .ck_digest = mig_digest(s->sd_sent_hash, n)};
	size_t arr = s->sd_o.verify ? n * 8 : 0;
	struct mig_rec_hdr h = {.rh_type = MIG_REC_CHECKSUM, .rh_len = sizeof ck + arr};
	unsigned char hb[sizeof h + sizeof ck];
	memcpy(hb, &h, sizeof h);
	memcpy(hb + sizeof h, &ck, sizeof ck);
	if (mig_io_write(s->sd_io, hb, sizeof hb, s->sd_err, s->sd_errlen) != 0 ||
	    (arr && mig_io_write(s->sd_io, s->sd_sent_hash, arr, s->sd_err, s->sd_errlen) != 0))
		return MO_EV_IO_ERROR;
	s->sd_t_sent = sim_now_ns();
	sim_send_report(s, 0);
	return MO_EV_OK;
}

static enum mo_event step_ready(struct sim_sender *s)
{
	int rc = mig_expect_rec(s->sd_io, MIG_REC_READY, sizeof(struct mig_ready), &s->sd_in.mb_p, &s->sd_in.mb_cap,
				"the destination refused the migration", s->sd_err, s->sd_errlen);
	if (rc != MIG_READ_OK)
		return sim_read_event(rc);
	struct mig_ready rd;
	memcpy(&rd, s->sd_in.mb_p, sizeof rd);
	s->sd_res->dest_verify_ms = (double)rd.rd_verify_ns / 1e6;
	s->sd_dest_verified = rd.rd_verified;
	if (s->sd_o.verify && !rd.rd_verified) {
		mig_seterr(s->sd_err, s->sd_errlen, "the destination did not verify the memory");
		return MO_EV_LOCAL_ERROR;
	}
	s->sd_t_ready = sim_now_ns();
	return MO_EV_OK;
}

/* GO is out: RUNNING, or the pool decides. */
static enum mo_event step_go(struct sim_sender *s)
{
	int rc = mig_expect_rec(s->sd_io, MIG_REC_RUNNING, 0, &s->sd_in.mb_p, &s->sd_in.mb_cap,
				"the destination failed after GO", s->sd_err, s->sd_errlen);
	if (rc == MIG_READ_OK)
		return MO_EV_OK;
	char why[256];
	snprintf(why, sizeof why, "%s", s->sd_err ? s->sd_err : "");
	mig_seterr(s->sd_err, s->sd_errlen,
		   "no RUNNING from the destination after GO (%s): the source stays paused until the pool asks "
		   "both hosts",
		   why);
	return sim_read_event(rc);
}

static enum mo_event send_step(void *arg, enum mo_state st)
{
	struct sim_sender *s = arg;
	switch (st) {
	case MO_HANDSHAKE: return step_handshake(s);
	case MO_STREAMING: return step_precopy(s);
	case MO_STOPCOPY: return step_stopcopy(s);
	case MO_READY: return step_ready(s);
	case MO_GO: return step_go(s);
	default: return MO_EV_LOCAL_ERROR;
	}
}

/* ---- the actions ---- */

static enum mo_event act_pause(struct sim_sender *s)
{
	mig_gate_enter(s->sd_o.gate);
	s->sd_in_gate = true;
	s->sd_t_pause = sim_now_ns();
	mig_lock(s->sd_lk);
	int pr = s->sd_be->be_ops->bo_domain_pause(s->sd_be, s->sd_domid);
	if (pr != 0)
		mig_seterr(s->sd_err, s->sd_errlen, "cannot pause the source domain %d: %s", s->sd_domid,
			   backend_error(s->sd_be));
	mig_unlock(s->sd_lk);
	if (pr != 0)
		return MO_EV_LOCAL_ERROR;
	s->sd_paused = true;
	s->sd_t_paused = sim_now_ns();
	return MO_EV_OK;
}

static void gate_leave(struct sim_sender *s)
{
	if (s->sd_in_gate)
		mig_gate_leave(s->sd_o.gate);
	s->sd_in_gate = false;
}

/* RUNNING came. The source copy stays paused until the caller destroys
 * it, so with verify its final content is checked now, outside the
 * downtime: every page must still be what was sent last. */
static void act_done(struct sim_sender *s)
{
	struct mig_send_result *res = s->sd_res;
	uint64_t t = sim_now_ns();
	res->downtime_ms = (double)(t - s->sd_t_pause) / 1e6;
	res->pause_ms = (double)(s->sd_t_paused - s->sd_t_pause) / 1e6;
	res->final_copy_ms = (double)(s->sd_t_sent - s->sd_t_paused) / 1e6;
	res->ready_wait_ms = (double)(s->sd_t_ready - s->sd_t_sent) / 1e6;
	res->go_running_ms = (double)(t - s->sd_t_ready) / 1e6;
	res->total_ms = (double)(t - s->sd_t0) / 1e6;
	gate_leave(s);
	if (!s->sd_o.verify)
		return;
	uint64_t bad = 0, nbad = sim_ram_verify(&s->sd_m, s->sd_hash, s->sd_sent_hash, s->sd_zero_hash, &bad);
	res->verify_ms = (double)(sim_now_ns() - t) / 1e6;
	res->verified = nbad == 0 && s->sd_dest_verified;
	if (nbad)
		mig_seterr(s->sd_err, s->sd_errlen,
			   "memory verification failed after the hand-over: %" PRIu64 " page(s) of the source "
			   "(first: page %" PRIu64 ") changed after they were sent without being marked dirty "
			   "(a dirty-tracking bug); the VM runs on the destination",
			   nbad, bad);
}

/* Before GO the source owns the VM: it runs on as it was. */
static void act_resume(struct sim_sender *s)
{
	mig_lock(s->sd_lk);
	if (s->sd_paused && s->sd_be->be_ops->bo_domain_unpause(s->sd_be, s->sd_domid) != 0)
		log_error("migration of domain %d failed and the source cannot be unpaused: %s", s->sd_domid,
			  backend_error(s->sd_be));
	else
		s->sd_paused = false;
	if (s->sd_throttle && backend_sim_set_throttle(s->sd_be, s->sd_domid, 0) != 0)
		log_warn("domain %d: cannot drop the throttle: %s", s->sd_domid, backend_error(s->sd_be));
	mig_unlock(s->sd_lk);
}

static enum mo_event send_act(void *arg, enum mo_action a)
{
	struct sim_sender *s = arg;
	switch (a) {
	case MO_ACT_PAUSE_SOURCE:
		return act_pause(s);
	case MO_ACT_SEND_GO:
		if (mig_send_rec(s->sd_io, MIG_REC_GO, 0, NULL, 0, s->sd_err, s->sd_errlen) == 0)
			return MO_EV_OK;
		mig_seterr(s->sd_err, s->sd_errlen, "connection lost while sending GO: the VM may be running on the "
						    "destination; the source stays paused until the pool decides");
		return MO_EV_IO_ERROR;
	case MO_ACT_SOURCE_DONE:
		act_done(s);
		return MO_EV_OK;
	case MO_ACT_RESUME_SOURCE:
		act_resume(s);
		return MO_EV_OK;
	case MO_ACT_LEAVE_PAUSED:
		log_warn("migration of domain %d: no clear outcome after GO; the source stays paused until the pool "
			 "decides", s->sd_domid);
		return MO_EV_OK;
	default:
		return MO_EV_OK;
	}
}

static void send_tell(void *arg)
{
	struct sim_sender *s = arg;
	(void)mig_send_text(s->sd_io, MIG_REC_ABORT, s->sd_err ? s->sd_err : "the source failed");
}

static void send_trace(void *arg, enum mo_state from, enum mo_event ev, const struct mo_step *to)
{
	struct sim_sender *s = arg;
	log_debug("migration (source, domain %d): %s in %s -> %s, %s", s->sd_domid, mig_owner_event_name(ev),
		  mig_owner_state_name(from), mig_owner_state_name(to->ms_next), mig_owner_action_name(to->ms_action));
}

/* The per-page hash cost, measured once on 64 pages of zeros (clock reads
 * per page would cost more than the hash on these VMs). */
static double hash_ms(mig_hash_fn hash, uint64_t pages)
{
	static const unsigned char zp[64 * PG];
	uint64_t t = sim_now_ns(), x = 0;
	for (int i = 0; i < 64 && hash; i++)
		x ^= hash(zp + (size_t)i * PG);
	return ((double)(sim_now_ns() - t) / 64 + (double)(x & 0)) * (double)pages / 1e6;
}

static void send_free(struct sim_sender *s)
{
	sim_send_buffers_free(s);
	gate_leave(s);
	if (s->sd_mapped && s->sd_o.unmap_later) { /* the answer goes out meanwhile */
		backend_sim_unmap_later(&s->sd_m);
	} else if (s->sd_mapped) {
		mig_lock(s->sd_lk);
		backend_sim_unmap(&s->sd_m);
		mig_unlock(s->sd_lk);
	}
	mig_buf_free(&s->sd_in);
}

int mig_send(struct mig_io *io, struct backend *be, const struct mig_backend_lock *lk, int domid,
	     const struct be_domain_config *cfg, const char *token, const struct mig_opts *opts,
	     mig_progress_fn progress, void *progress_arg, struct mig_send_result *res, char *err,
	     size_t errlen)
{
	struct mig_send_result dummy;
	struct sim_sender s = {.sd_io = io, .sd_be = be, .sd_lk = lk, .sd_domid = domid, .sd_cfg = cfg,
			       .sd_token = token, .sd_progress = progress, .sd_parg = progress_arg,
			       .sd_res = res ? res : &dummy, .sd_err = err, .sd_errlen = errlen};
	if (opts)
		s.sd_o = *opts;
	else
		mig_opts_default(&s.sd_o);
	memset(s.sd_res, 0, sizeof *s.sd_res);
	s.sd_t0 = sim_now_ns();
	s.sd_m.sm_ram_fd = s.sd_m.sm_dirty_fd = s.sd_m.sm_shared_fd = -1;
	mig_io_set_timeout(io, s.sd_o.io_timeout_ms);
	static const struct mo_driver drv = {send_step, send_act, send_tell, send_trace};
	int rc = mig_owner_run(MO_SOURCE, &drv, &s);
	s.sd_res->rounds = s.sd_round;
	s.sd_res->wire_bytes = io->bytes_out;
	s.sd_res->checksum_ms = hash_ms(s.sd_hash, s.sd_hashed);
	if (rc != MIG_OK)
		s.sd_res->total_ms = (double)(sim_now_ns() - s.sd_t0) / 1e6;
	if (rc == MIG_FAILED)
		log_warn("migration of domain %d failed: %s", domid, err ? err : "");
	send_free(&s);
	return rc;
}
