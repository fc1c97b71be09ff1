/* test_mig.c - the sim migration stream (agent/sim_send.c, sim_recv.c) with real pool-simdom
 * domains: two sim backends on two state dirs act as two hosts in this
 * process; mig_send runs on the test thread, mig_receive on another, over
 * a socketpair or loopback TCP with real TLS (certificates from lib/tls.c).
 *
 * Finds the domain program at $POOLD_BIN/pool-simdom (default bin/).
 * MIG_BENCH=1 adds the 256 MiB idle measurement (printed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "backend.h"
#include "log.h"
#include "mig.h"
#include "simdom.h"
#include "simfix.h"
#include "tls.h"

#define MiB SIMFIX_MiB
#define HOST_MEM (1024 * MiB)
#define TOKEN "7f3c0d9e-one-time-token"

struct fixture {
	char dir[64], dir_a[96], dir_b[96];
	char simdom[PATH_MAX];
	struct backend *a, *b; /* source host, destination host */
};

#define now_ms simfix_now_ms
#define sleep_ms simfix_sleep_ms
#define cfg simfix_config

static struct backend *new_be(struct fixture *f, const char *dir)
{
	char err[256] = "";
	struct backend *be = simfix_backend(dir, f->simdom, HOST_MEM, err, sizeof err);
	if (!be)
		fail_msg("backend_sim_new: %s", err);
	return be;
}

static struct be_domain_info info(struct backend *be, int domid)
{
	struct be_domain_info di;
	if (be->be_ops->bo_domain_info(be, domid, &di) != 0)
		fail_msg("domain_info %d: %s", domid, backend_error(be));
	return di;
}

static int ndomains(struct backend *be)
{
	struct be_domain_info *v = NULL;
	int n = -1;
	assert_int_equal(be->be_ops->bo_domain_list(be, &v, &n), 0);
	free(v);
	return n;
}

/* a running, booted domain on host A */
static int start_vm(struct fixture *f, const struct be_domain_config *c)
{
	int domid = -1;
	if (f->a->be_ops->bo_domain_create(f->a, c, &domid) != 0)
		fail_msg("domain_create: %s", backend_error(f->a));
	assert_int_equal(f->a->be_ops->bo_domain_unpause(f->a, domid), 0);
	struct be_sim_map m;
	assert_int_equal(backend_sim_map(f->a, domid, &m), 0);
	uint64_t end = now_ms() + 10000;
	while (!__atomic_load_n(&m.sm_shared->ss_booted, __ATOMIC_ACQUIRE) && now_ms() < end)
		sleep_ms(5);
	assert_true(m.sm_shared->ss_booted);
	backend_sim_unmap(&m);
	sleep_ms(20);
	return domid;
}

static uint64_t hash_pages(struct backend *be, int domid, uint64_t from)
{
	struct be_sim_map m;
	assert_int_equal(backend_sim_map(be, domid, &m), 0);
	uint64_t h = 0;
	for (uint64_t p = from; p < m.sm_npages; p++)
		h = h * 31 + mig_page_hash(m.sm_ram + p * 4096);
	backend_sim_unmap(&m);
	return h;
}

/* running, and its heartbeat advances */
static void assert_beating(struct backend *be, int domid)
{
	struct be_domain_info d0 = info(be, domid);
	assert_int_equal(d0.di_state, BE_STATE_RUNNING);
	sleep_ms(50);
	struct be_domain_info d1 = info(be, domid);
	assert_int_equal(d1.di_state, BE_STATE_RUNNING);
	assert_true(d1.di_heartbeat > d0.di_heartbeat + 10);
}

/* ---- fixture ---- */

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	char err[256];
	if (!simfix_tmpdir(f->dir, sizeof f->dir, "test_mig", err, sizeof err) ||
	    !simfix_simdom(f->simdom, sizeof f->simdom, err, sizeof err)) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	snprintf(f->dir_a, sizeof f->dir_a, "%s/a", f->dir);
	snprintf(f->dir_b, sizeof f->dir_b, "%s/b", f->dir);
	f->a = new_be(f, f->dir_a);
	f->b = new_be(f, f->dir_b);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	simfix_destroy_all(f->a);
	simfix_destroy_all(f->b);
	f->a->be_ops->bo_free(f->a);
	f->b->be_ops->bo_free(f->b);
	simfix_wipe(f->dir);
	free(f);
	return 0;
}

/* ---- transport ---- */

struct tls_env {
	SSL_CTX *srv, *cli;
};

static void make_tls(const char *dir, struct tls_env *t)
{
	char err[256];
	if (!simfix_tls(dir, &t->srv, &t->cli, err, sizeof err))
		fail_msg("TLS: %s", err);
}

struct recv_job {
	pthread_t th;
	struct backend *be;
	int fd;	      /* plain: the fd; TLS: the listening socket */
	SSL_CTX *ctx; /* TLS when set */
	struct mig_recv_opts o;
	struct mig_io io;
	struct mig_recv_result res;
	int rc;
	char err[512];
	int created;
};

static void on_created(int domid, void *arg)
{
	struct recv_job *j = arg;
	j->created = domid;
}

static void *recv_main(void *arg)
{
	struct recv_job *j = arg;
	SSL *ssl = NULL;
	int fd = j->fd;
	if (j->ctx) {
		fd = accept(j->fd, NULL, NULL);
		ssl = fd >= 0 ? SSL_new(j->ctx) : NULL;
		if (!ssl || !SSL_set_fd(ssl, fd) || SSL_accept(ssl) != 1) {
			snprintf(j->err, sizeof j->err, "TLS accept failed");
			j->rc = -9;
			if (fd >= 0)
				close(fd);
			SSL_free(ssl);
			return NULL;
		}
		mig_io_init_ssl(&j->io, ssl);
	} else {
		mig_io_init_fd(&j->io, fd);
	}
	uint64_t cut = j->io.cut_after_bytes;
	(void)cut;
	j->rc = mig_receive(&j->io, j->be, NULL, &j->o, &j->res, j->err, sizeof j->err);
	if (ssl) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	close(fd);
	return NULL;
}

struct run {
	struct mig_opts so;
	uint64_t cut_after;
	bool tls;
	const char *send_token;
	uint32_t recv_version;
	bool recv_legacy; /* the receiver sends a bare HELLO, as before struct mig_hello_ext */
	mig_progress_fn progress;
	void *parg;
	/* out */
	int rc;
	struct mig_send_result res;
	char err[512];
	struct recv_job rj;
};

static void run_migration(struct fixture *f, int domid, const struct be_domain_config *c,
			  struct run *r)
{
	struct recv_job *j = &r->rj;
	memset(j, 0, sizeof *j);
	j->be = f->b;
	j->o.token = TOKEN;
	j->o.proto_version = r->recv_version;
	j->o.legacy_hello = r->recv_legacy;
	j->o.on_created = on_created;
	j->o.arg = j;
	j->o.io_timeout_ms = 10000;
	j->created = -1;
	struct mig_io io;
	int cfd = -1;
	SSL *ssl = NULL;
	struct tls_env t = {0};
	if (r->tls) {
		char d[PATH_MAX];
		snprintf(d, sizeof d, "%s/tls", f->dir);
		mkdir(d, 0700);
		char probe[PATH_MAX];
		snprintf(probe, sizeof probe, "%.200s/ca.pem", d);
		if (access(probe, F_OK) == 0) {
			simfix_wipe(d);
			mkdir(d, 0700);
		}
		make_tls(d, &t);
		int ls = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
		assert_int_equal(listen(ls, 1), 0);
		socklen_t sl = sizeof sa;
		getsockname(ls, (struct sockaddr *)&sa, &sl);
		j->fd = ls;
		j->ctx = t.srv;
		assert_int_equal(pthread_create(&j->th, NULL, recv_main, j), 0);
		cfd = socket(AF_INET, SOCK_STREAM, 0);
		assert_int_equal(connect(cfd, (struct sockaddr *)&sa, sizeof sa), 0);
		ssl = SSL_new(t.cli);
		SSL_set_fd(ssl, cfd);
		assert_int_equal(SSL_connect(ssl), 1);
		mig_io_init_ssl(&io, ssl);
	} else {
		int sv[2];
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		j->fd = sv[1];
		assert_int_equal(pthread_create(&j->th, NULL, recv_main, j), 0);
		cfd = sv[0];
		mig_io_init_fd(&io, cfd);
	}
	io.cut_after_bytes = r->cut_after;
	r->rc = mig_send(&io, f->a, NULL, domid, c, r->send_token ? r->send_token : TOKEN, &r->so,
			 r->progress, r->parg, &r->res, r->err, sizeof r->err);
	if (ssl) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	close(cfd);
	pthread_join(j->th, NULL);
	if (r->tls) {
		close(j->fd);
		SSL_CTX_free(t.srv);
		SSL_CTX_free(t.cli);
	}
}

static void print_result(const char *what, const struct run *r, uint64_t mem)
{
	double mb = (double)r->res.wire_bytes / 1e6;
	fprintf(stderr,
		"  %-22s rc=%d total=%.1f ms downtime=%.2f ms (verify src %.2f dst %.2f) rounds=%d "
		"stop=%s wire=%.1f MB (%.0f MB/s wire, %.0f MB/s of guest RAM) raw=%.1f MB "
		"compressed=%.1f MB zero=%" PRIu64 " throttle=%d%%\n",
		what, r->rc, r->res.total_ms, r->res.downtime_ms, r->res.verify_ms,
		r->res.dest_verify_ms, r->res.rounds, mig_stop_name(r->res.stop), mb,
		mb / (r->res.total_ms / 1000), (double)mem / 1e6 / (r->res.total_ms / 1000),
		(double)r->res.bytes_raw / 1e6, (double)r->res.bytes_compressed / 1e6,
		r->res.zero_pages, r->res.throttle_pct);
	fprintf(stderr, "  %-22s setup %.1f ms, round 1: %.1f MB in %.1f ms = %.0f MB/s wire, %.0f MB/s of guest RAM\n", "",
		r->res.setup_ms, (double)r->res.round1_bytes / 1e6, r->res.round1_ms,
		(double)r->res.round1_bytes / 1e3 / r->res.round1_ms, (double)mem / 1e3 / r->res.round1_ms);
	fprintf(stderr, "  %-22s downtime split: pause %.2f, last copy %.2f, ready wait %.2f, go->running %.2f ms\n",
		"", r->res.pause_ms, r->res.final_copy_ms, r->res.ready_wait_ms, r->res.go_running_ms);
}

/* ---- tests: real domains ---- */

static void check_success(struct fixture *f, int src, struct run *r, uint64_t hb_before)
{
	if (r->rc != MIG_OK)
		fail_msg("migration failed: %s / receiver: %s", r->err, r->rj.err);
	assert_int_equal(r->rj.rc, MIG_OK);
	assert_true(r->res.verified);
	assert_true(r->rj.res.verified);
	int dst = r->rj.res.domid;
	assert_true(dst > 0);
	assert_int_equal(r->rj.created, dst);
	/* source stays paused (the caller destroys it once RUNNING is known) */
	struct be_domain_info si = info(f->a, src);
	assert_int_equal(si.di_state, BE_STATE_PAUSED);
	assert_true(si.di_heartbeat >= hb_before);
	/* destination continues the heartbeat where the source stopped */
	sleep_ms(60);
	struct be_domain_info di = info(f->b, dst);
	assert_int_equal(di.di_state, BE_STATE_RUNNING);
	assert_true(di.di_heartbeat > si.di_heartbeat + 20);
	assert_true(di.di_heartbeat < si.di_heartbeat + 60000);
	assert_string_equal(di.di_uuid, si.di_uuid);
	assert_beating(f->b, dst);
	/* the caller's job: destroy the source copy */
	assert_int_equal(f->a->be_ops->bo_domain_destroy(f->a, src), 0);
	assert_int_equal(ndomains(f->a), 0);
	assert_int_equal(ndomains(f->b), 1);
	assert_beating(f->b, dst);
}

/* Idle VM over real TLS: memory identical, heartbeat continues. */
static void test_idle_tls(void **state)
{
	struct fixture *f = *state;
	struct be_domain_config c = cfg("idle", 64 * MiB, 4096, 0, 0, 30, 40, 30);
	int src = start_vm(f, &c);
	uint64_t hb = info(f->a, src).di_heartbeat;
	struct run r = {0};
	mig_opts_default(&r.so);
	r.so.verify = true;
	r.tls = true;
	run_migration(f, src, &c, &r);
	print_result("idle 64 MiB TLS", &r, c.dc_memory);
	if (r.rc == MIG_OK) {
		/* independent of verify: the paused source and the destination hold the same
		 * pages (an idle guest only rewrites the heartbeat page) */
		assert_int_equal(hash_pages(f->a, src, 1), hash_pages(f->b, r.rj.res.domid, 1));
	}
	check_success(f, src, &r, hb);
	assert_true(r.res.hash2 && r.rj.res.hash2); /* both ends offer it */
	assert_true(r.res.zero_pages > 16384 / 2);
	assert_true(r.res.bytes_raw < 24 * MiB);
	assert_true(r.res.downtime_ms > 0);
	assert_true(r.res.downtime_ms < 1000);
	assert_int_equal(r.res.throttle_pct, 0);
}

/* A busy VM dirtying 20k pages/s in a 16 MiB working set converges. */
static void test_busy_converges(void **state)
{
	struct fixture *f = *state;
	struct be_domain_config c = cfg("busy", 64 * MiB, 16383, 20000, 4096, 20, 40, 40);
	int src = start_vm(f, &c);
	sleep_ms(100);
	uint64_t hb = info(f->a, src).di_heartbeat;
	struct run r = {0};
	mig_opts_default(&r.so);
	r.so.verify = true;
	run_migration(f, src, &c, &r);
	print_result("busy 64 MiB", &r, c.dc_memory);
	check_success(f, src, &r, hb);
	assert_true(r.res.rounds >= 2);
	assert_int_equal(r.res.stop, MIG_STOP_DOWNTIME);
	assert_true(r.res.downtime_ms < 1000);
}

/* A guest dirtying its working set faster than the (paced) link can
 * carry it: rounds stop shrinking, the throttle rises step by step and is
 * reported; the migration completes. */
static void note_throttle(const struct mig_progress *p, void *arg)
{
	int *maxthr = arg;
	if (getenv("MIG_DEBUG"))
		fprintf(stderr, "    round %d remaining %" PRIu64 " throttle %d paused %d\n", p->pg_round, p->pg_pages_remaining, p->pg_throttle_pct, p->pg_paused);
	if (p->pg_throttle_pct > *maxthr)
		*maxthr = p->pg_throttle_pct;
}

static void test_auto_converge(void **state)
{
	struct fixture *f = *state;
	struct be_domain_config c = cfg("hot", 16 * MiB, 4095, 40000, 4096, 0, 50, 50);
	int src = start_vm(f, &c);
	uint64_t hb = info(f->a, src).di_heartbeat;
	int maxthr = 0;
	struct run r = {0};
	mig_opts_default(&r.so);
	r.so.verify = true;
	r.so.max_downtime_ms = 20;
	r.so.max_rounds = 8;
	r.so.throttle_initial = 50;
	r.so.throttle_step = 25;
	r.so.max_bandwidth_mb_s = 80;
	r.progress = note_throttle;
	r.parg = &maxthr;
	run_migration(f, src, &c, &r);
	print_result("auto-converge 16 MiB", &r, c.dc_memory);
	check_success(f, src, &r, hb);
	assert_true(r.res.throttle_pct >= 50);
	assert_true(maxthr >= 50); /* the progress report says so */
}

/* Compression: text-like pages shrink; memory still identical. */
static void test_compress(void **state)
{
	struct fixture *f = *state;
	struct be_domain_config c = cfg("text", 64 * MiB, 4096, 0, 0, 0, 100, 0);
	int src = start_vm(f, &c);
	uint64_t hb = info(f->a, src).di_heartbeat;
	struct run r = {0};
	mig_opts_default(&r.so);
	r.so.verify = true;
	r.so.compress = true;
	run_migration(f, src, &c, &r);
	print_result("text 64 MiB zstd-1", &r, c.dc_memory);
	if (r.rc == MIG_OK)
		assert_int_equal(hash_pages(f->a, src, 1), hash_pages(f->b, r.rj.res.domid, 1));
	check_success(f, src, &r, hb);
	assert_true(r.res.bytes_raw >= 4096ull * 4000);
	assert_true(r.res.bytes_compressed < r.res.bytes_raw / 2);
	assert_true(r.res.wire_bytes < r.res.bytes_raw);
}

/* Ends from before struct mig_hello_ext send a bare HELLO and hash pages
 * with mig_page_hash: a migration between one of them and this build, in
 * either direction, uses that hash and succeeds, verified. */
static void test_bare_hello_peers(void **state)
{
	struct fixture *f = *state;
	struct be_domain_config c = cfg("old", 16 * MiB, 2048, 0, 0, 30, 40, 30);
	for (int k = 0; k < 2; k++) {
		int src = start_vm(f, &c);
		uint64_t hb = info(f->a, src).di_heartbeat;
		struct run r = {0};
		mig_opts_default(&r.so);
		r.so.verify = true;
		r.so.legacy_hello = k == 0; /* an old source, then an old destination */
		r.recv_legacy = k == 1;
		run_migration(f, src, &c, &r);
		check_success(f, src, &r, hb);
		assert_false(r.res.hash2);
		assert_false(r.rj.res.hash2);
		simfix_destroy_all(f->b);
	}
}

static void assert_untouched_source(struct fixture *f, int src, uint64_t h0)
{
	assert_beating(f->a, src);
	struct be_sim_map m;
	assert_int_equal(backend_sim_map(f->a, src, &m), 0);
	assert_int_equal(m.sm_shared->ss_throttle_pct, 0);
	backend_sim_unmap(&m);
	assert_int_equal(hash_pages(f->a, src, 1), h0);
	assert_int_equal(ndomains(f->a), 1);
	assert_int_equal(ndomains(f->b), 0);
}

static void test_version_mismatch(void **state)
{
	struct fixture *f = *state;
	struct be_domain_config c = cfg("v", 16 * MiB, 512, 0, 0, 30, 40, 30);
	int src = start_vm(f, &c);
	uint64_t h0 = hash_pages(f->a, src, 1);
	struct run r = {0};
	mig_opts_default(&r.so);
	r.so.proto_version = MIG_PROTO_VERSION + 1;
	run_migration(f, src, &c, &r);
	assert_int_equal(r.rc, MIG_FAILED);
	assert_int_equal(r.rj.rc, MIG_FAILED);
	char v1[32], v2[32];
	snprintf(v1, sizeof v1, "version %u", MIG_PROTO_VERSION);
	snprintf(v2, sizeof v2, "version %u", MIG_PROTO_VERSION + 1);
	fprintf(stderr, "  source: %s\n  destination: %s\n", r.err, r.rj.err);
	assert_non_null(strstr(r.err, v1));
	assert_non_null(strstr(r.err, v2));
	assert_non_null(strstr(r.rj.err, v1));
	assert_non_null(strstr(r.rj.err, v2));
	assert_int_equal(r.rj.created, -1);
	assert_untouched_source(f, src, h0);
}

static void test_bad_token(void **state)
{
	struct fixture *f = *state;
	struct be_domain_config c = cfg("tok", 16 * MiB, 512, 0, 0, 30, 40, 30);
	int src = start_vm(f, &c);
	uint64_t h0 = hash_pages(f->a, src, 1);
	struct run r = {0};
	mig_opts_default(&r.so);
	r.send_token = "not-the-token";
	run_migration(f, src, &c, &r);
	fprintf(stderr, "  source: %s\n", r.err);
	assert_int_equal(r.rc, MIG_FAILED);
	assert_int_equal(r.rj.rc, MIG_FAILED);
	assert_non_null(strstr(r.err, "token"));
	assert_int_equal(r.rj.created, -1);
	assert_untouched_source(f, src, h0);
}

/* A source that sends one good PAGES record, then one naming a page beyond
 * the domain: the destination applies records on its applier thread, so
 * the error surfaces after the hand-off; it must still refuse with the
 * reason and leave no domain behind. */
static void test_bad_pages(void **state)
{
	struct fixture *f = *state;
	struct be_domain_config c = cfg("badpg", 16 * MiB, 0, 0, 0, 30, 40, 30);
	uint64_t npages = c.dc_memory / MIG_PAGE_SIZE;
	int before = ndomains(f->b);
	struct run r = {0};
	struct recv_job *j = &r.rj;
	j->be = f->b;
	j->o.token = TOKEN;
	j->o.on_created = on_created;
	j->o.arg = j;
	j->o.io_timeout_ms = 10000;
	j->created = -1;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	j->fd = sv[1];
	assert_int_equal(pthread_create(&j->th, NULL, recv_main, j), 0);
	struct mig_io io;
	mig_io_init_fd(&io, sv[0]);
	char err[256] = "";
	unsigned char *buf = NULL;
	size_t cap = 0;
	struct mig_rec_hdr h;
	struct mig_hello he = {.he_magic = MIG_MAGIC, .he_version = MIG_PROTO_VERSION};
	assert_int_equal(mig_send_rec(&io, MIG_REC_HELLO, 0, &he, sizeof he, err, sizeof err), 0);
	assert_int_equal(mig_expect_rec(&io, MIG_REC_HELLO, sizeof he, &buf, &cap, "d", err, sizeof err), 0);
	assert_int_equal(mig_send_rec(&io, MIG_REC_TOKEN, 0, TOKEN, strlen(TOKEN), err, sizeof err), 0);
	struct mig_config mc = {.mc_npages = npages};
	mc.mc_cfg = c;
	assert_int_equal(mig_send_rec(&io, MIG_REC_CONFIG, 0, &mc, sizeof mc, err, sizeof err), 0);
	assert_int_equal(mig_expect_rec(&io, MIG_REC_ACCEPT, 0, &buf, &cap, "d", err, sizeof err), 0);
	/* good: pages 1 and 2 with data, page 3 zero */
	size_t plen = sizeof(struct mig_pages) + 3 * 8 + 2 * MIG_PAGE_SIZE;
	unsigned char *pl = calloc(1, plen);
	struct mig_pages ph = {.ps_npages = 3, .ps_raw_len = 2 * MIG_PAGE_SIZE};
	uint64_t idx[3] = {1, 2, 3 | MIG_PAGE_ZERO};
	memcpy(pl, &ph, sizeof ph);
	memcpy(pl + sizeof ph, idx, sizeof idx);
	memset(pl + sizeof ph + sizeof idx, 0xab, 2 * MIG_PAGE_SIZE);
	assert_int_equal(mig_send_rec(&io, MIG_REC_PAGES, 0, pl, plen, err, sizeof err), 0);
	/* bad: the second page lies beyond the domain's memory */
	idx[1] = npages + 7;
	memcpy(pl + sizeof ph, idx, sizeof idx);
	assert_int_equal(mig_send_rec(&io, MIG_REC_PAGES, 0, pl, plen, err, sizeof err), 0);
	/* and one more record, which the destination must not need to see */
	(void)mig_send_rec(&io, MIG_REC_PAGES, 0, pl, plen, err, sizeof err);
	int rr = mig_read_rec(&io, &h, &buf, &cap, "the destination", err, sizeof err);
	assert_int_equal(rr, MIG_READ_PEER);
	fprintf(stderr, "  source hears: %s\n", err);
	assert_non_null(strstr(err, "bad PAGES record"));
	close(sv[0]);
	pthread_join(j->th, NULL);
	fprintf(stderr, "  destination: %s\n", j->err);
	assert_int_equal(j->rc, MIG_FAILED);
	assert_non_null(strstr(j->err, "bad PAGES record"));
	assert_true(j->created >= 0); /* it got as far as creating the domain ... */
	assert_int_equal(ndomains(f->b), before); /* ... and destroyed it */
	free(pl);
	free(buf);
}

/* The connection is cut at various points (early, mid-copy, after the
 * pause): the VM keeps running on the source, nothing is left on the
 * destination. */
static void test_cut(void **state)
{
	struct fixture *f = *state;
	struct be_domain_config c = cfg("cut", 32 * MiB, 8191, 0, 0, 30, 40, 30);
	int src = start_vm(f, &c);
	uint64_t h0 = hash_pages(f->a, src, 1);
	/* a full run's size, to cut just before its end (after the pause) */
	uint64_t cuts[] = {100, 3 * MiB, 0};
	for (int i = 0; i < 3; i++) {
		struct run r = {0};
		mig_opts_default(&r.so);
		r.so.verify = true;
		r.cut_after = cuts[i];
		if (!cuts[i]) { /* measure: run against a refusing token, then cut near the end */
			struct run m = {0};
			mig_opts_default(&m.so);
			m.so.verify = true;
			m.so.max_rounds = 1; /* deterministic: one round then the final copy */
			r.so.max_rounds = 1;
			/* sizes: round 1 is the same every time; cut 200 bytes into the final phase */
			m.cut_after = 1ull << 40;
			run_migration(f, src, &c, &m);
			assert_int_equal(m.rc, MIG_OK);
			/* undo: destroy the destination copy, resume the source */
			assert_int_equal(f->b->be_ops->bo_domain_destroy(f->b, m.rj.res.domid), 0);
			assert_int_equal(f->a->be_ops->bo_domain_unpause(f->a, src), 0);
			r.cut_after = m.res.wire_bytes - 300;
		}
		run_migration(f, src, &c, &r);
		fprintf(stderr, "  cut after %" PRIu64 ": %s / receiver: %s\n", r.cut_after, r.err,
			r.rj.err);
		assert_int_equal(r.rc, MIG_FAILED);
		assert_int_equal(r.rj.rc, MIG_FAILED);
		assert_non_null(strstr(r.err, "cut"));
		assert_untouched_source(f, src, h0);
	}
}

/* The destination domain dies mid-stream: the source keeps running. */
struct killer {
	struct fixture *f;
	bool done;
};

static void kill_dest(const struct mig_progress *p, void *arg)
{
	struct killer *k = arg;
	if (k->done || p->pg_round != 1 || p->pg_bytes_sent < 8 * MiB)
		return;
	k->done = true;
	struct backend *be = new_be(k->f, k->f->dir_b); /* another handle on host B's dir */
	struct be_domain_info *v;
	int n;
	assert_int_equal(be->be_ops->bo_domain_list(be, &v, &n), 0);
	assert_int_equal(n, 1);
	pid_t pid = v[0].di_pid;
	free(v);
	kill(pid, SIGKILL);
	char pth[64];
	snprintf(pth, sizeof pth, "/proc/%d/status", (int)pid);
	for (int i = 0; i < 200; i++) {
		FILE *fp = fopen(pth, "r");
		bool gone = !fp;
		char line[128];
		while (fp && fgets(line, sizeof line, fp))
			if (strncmp(line, "State:", 6) == 0 && strchr(line, 'Z'))
				gone = true;
		if (fp)
			fclose(fp);
		if (gone)
			break;
		sleep_ms(5);
	}
	be->be_ops->bo_free(be);
}

static void test_dest_killed(void **state)
{
	struct fixture *f = *state;
	struct be_domain_config c = cfg("victim", 64 * MiB, 16383, 0, 0, 0, 50, 50);
	int src = start_vm(f, &c);
	uint64_t h0 = hash_pages(f->a, src, 1);
	struct killer k = {.f = f};
	struct run r = {0};
	mig_opts_default(&r.so);
	r.so.verify = true;
	r.progress = kill_dest;
	r.parg = &k;
	run_migration(f, src, &c, &r);
	fprintf(stderr, "  source: %s\n  destination: %s\n", r.err, r.rj.err);
	assert_true(k.done);
	assert_int_equal(r.rc, MIG_FAILED);
	assert_int_equal(r.rj.rc, MIG_FAILED);
	assert_non_null(strstr(r.err, "destination domain"));
	assert_untouched_source(f, src, h0);
}

/* ---- MIG_BENCH: idle 256 MiB over TLS, with and without compression ---- */
static void test_bench(void **state)
{
	struct fixture *f = *state;
	if (!getenv("MIG_BENCH"))
		skip();
	for (int k = 0; k < 3; k++) { /* TLS, TLS + zstd, plain socketpair */
		int comp = k == 1;
		struct be_domain_config c = cfg("bench", 256 * MiB, 16384, 0, 0, 30, 40, 30);
		int src = start_vm(f, &c);
		struct run r = {0};
		mig_opts_default(&r.so);
		r.so.verify = true;
		r.so.compress = comp;
		r.tls = k < 2;
		run_migration(f, src, &c, &r);
		print_result(k == 2 ? "bench 256 MiB plain" : comp ? "bench 256 MiB TLS zstd" : "bench 256 MiB TLS",
			     &r, c.dc_memory);
		assert_int_equal(r.rc, MIG_OK);
		simfix_destroy_all(f->a);
		simfix_destroy_all(f->b);
	}
}

/* ---- pure: the stop rule ---- */

static struct mig_round_stats rs(int round, uint64_t sent, uint64_t bytes, uint64_t ms,
				 uint64_t dirty, int thr)
{
	struct mig_round_stats s = {.rs_round = round,
				    .rs_pages_sent = sent,
				    .rs_wire_bytes = bytes,
				    .rs_ns = ms * 1000000ull,
				    .rs_dirty_after = dirty,
				    .rs_throttle_pct = thr};
	return s;
}

static void test_should_stop(void **state)
{
	(void)state;
	struct mig_opts o;
	mig_opts_default(&o);
	struct mig_round_stats h[40];
	/* nothing yet */
	assert_int_equal(mig_should_stop(NULL, 0, &o), MIG_CONTINUE);
	assert_int_equal(mig_should_stop(h, 0, &o), MIG_CONTINUE);
	assert_true(mig_predict_ms(h, 0) < 0);
	/* 1 GB/s measured (1e6 bytes per ms) */
	h[0] = rs(1, 262144, 1000000000, 1000, 10, 0);
	assert_true(mig_predict_ms(h, 1) > 0.04 && mig_predict_ms(h, 1) < 0.05);
	assert_int_equal(mig_should_stop(h, 1, &o), MIG_STOP_DOWNTIME);
	/* nothing dirty: stop even with no rate known */
	h[0] = rs(1, 0, 0, 0, 0, 0);
	assert_int_equal(mig_should_stop(h, 1, &o), MIG_STOP_DOWNTIME);
	/* 50 ms at 1 GB/s = 12183 pages of 4104 bytes: 12000 fits, 13000 does not */
	h[0] = rs(1, 262144, 1000000000, 1000, 12000, 0);
	assert_int_equal(mig_should_stop(h, 1, &o), MIG_STOP_DOWNTIME);
	h[0].rs_dirty_after = 13000;
	assert_int_equal(mig_should_stop(h, 1, &o), MIG_CONTINUE);
	/* a larger budget fits it */
	o.max_downtime_ms = 100;
	assert_int_equal(mig_should_stop(h, 1, &o), MIG_STOP_DOWNTIME);
	/* zero options mean the defaults (50 ms, 30 rounds) */
	struct mig_opts z = {0};
	assert_int_equal(mig_should_stop(h, 1, &z), MIG_CONTINUE);
	h[0].rs_dirty_after = 12000;
	assert_int_equal(mig_should_stop(h, 1, &z), MIG_STOP_DOWNTIME);
	mig_opts_default(&o);
	/* the rate is the mean over all rounds: a slow later round lowers it */
	h[0] = rs(1, 262144, 1000000000, 1000, 20000, 0);
	h[1] = rs(2, 20000, 82080000, 1000, 11000, 0); /* 1.08 GB in 2 s */
	assert_int_equal(mig_should_stop(h, 2, &o), MIG_CONTINUE);
	/* shrinking: continue */
	h[2] = rs(3, 11000, 45144000, 45, 9000, 0);
	assert_int_equal(mig_should_stop(h, 3, &o), MIG_CONTINUE);
	/* max rounds */
	o.max_rounds = 3;
	assert_int_equal(mig_should_stop(h, 3, &o), MIG_STOP_MAX_ROUNDS);
	mig_opts_default(&o);
	h[29] = rs(30, 100000, 410400000, 1000, 100000, 0);
	/* rs_round reaching max_rounds stops even with n smaller (resumed history) */
	assert_int_equal(mig_should_stop(&h[29], 1, &o), MIG_STOP_MAX_ROUNDS);
	/* not shrinking, 4 rounds flat */
	for (int i = 0; i < 4; i++)
		h[i] = rs(i + 1, 100000, 410400000, 1000, 100000, 0);
	o.auto_converge = false;
	assert_int_equal(mig_should_stop(h, 4, &o), MIG_STOP_NO_PROGRESS);
	assert_int_equal(mig_should_stop(h, 3, &o), MIG_CONTINUE); /* needs 3 flat rounds */
	o.auto_converge = true;
	assert_int_equal(mig_should_stop(h, 4, &o), MIG_CONTINUE); /* throttle can still rise */
	h[3].rs_throttle_pct = 99;
	assert_int_equal(mig_should_stop(h, 4, &o), MIG_STOP_NO_PROGRESS);
	o.throttle_max = 50;
	h[3].rs_throttle_pct = 50;
	assert_int_equal(mig_should_stop(h, 4, &o), MIG_STOP_NO_PROGRESS);
	/* one shrinking round among the last three: progress */
	h[2].rs_dirty_after = 120000;
	assert_int_equal(mig_should_stop(h, 4, &o), MIG_CONTINUE);
	/* growing counts as not shrinking */
	for (int i = 0; i < 4; i++)
		h[i] = rs(i + 1, 100000, 410400000, 1000, 100000 + (uint64_t)i * 1000, 0);
	o.auto_converge = false;
	assert_int_equal(mig_should_stop(h, 4, &o), MIG_STOP_NO_PROGRESS);
	/* shrinking by less than 10% is not progress */
	for (int i = 0; i < 4; i++)
		h[i] = rs(i + 1, 100000, 410400000, 1000, 100000 - (uint64_t)i * 5000, 0);
	assert_int_equal(mig_should_stop(h, 4, &o), MIG_STOP_NO_PROGRESS);
	/* pure: same input, same answer, input untouched */
	struct mig_round_stats copy[4];
	memcpy(copy, h, sizeof copy);
	enum mig_stop s1 = mig_should_stop(h, 4, &o), s2 = mig_should_stop(h, 4, &o);
	assert_int_equal(s1, s2);
	assert_memory_equal(copy, h, sizeof copy);
	assert_string_equal(mig_stop_name(MIG_STOP_DOWNTIME), "downtime-fits");
	assert_null(NULL);
}

static void test_next_throttle(void **state)
{
	(void)state;
	struct mig_opts o;
	mig_opts_default(&o);
	struct mig_round_stats h[8];
	h[0] = rs(1, 100000, 410400000, 1000, 100000, 0);
	assert_int_equal(mig_next_throttle(h, 1, &o), 0); /* one round: nothing to compare */
	assert_int_equal(mig_next_throttle(NULL, 0, &o), 0);
	h[1] = rs(2, 100000, 410400000, 1000, 100000, 0);
	assert_int_equal(mig_next_throttle(h, 2, &o), 20); /* flat: initial step */
	h[1].rs_throttle_pct = 20;
	assert_int_equal(mig_next_throttle(h, 2, &o), 30);
	h[1].rs_throttle_pct = 95;
	assert_int_equal(mig_next_throttle(h, 2, &o), 99); /* capped */
	h[1].rs_throttle_pct = 99;
	assert_int_equal(mig_next_throttle(h, 2, &o), 99);
	o.throttle_max = 60;
	h[1].rs_throttle_pct = 55;
	assert_int_equal(mig_next_throttle(h, 2, &o), 60);
	mig_opts_default(&o);
	o.throttle_initial = 5;
	o.throttle_step = 5;
	h[1].rs_throttle_pct = 0;
	assert_int_equal(mig_next_throttle(h, 2, &o), 5);
	h[1].rs_throttle_pct = 5;
	assert_int_equal(mig_next_throttle(h, 2, &o), 10);
	mig_opts_default(&o);
	/* shrinking: keep */
	h[1] = rs(2, 100000, 410400000, 1000, 50000, 30);
	assert_int_equal(mig_next_throttle(h, 2, &o), 30);
	/* fits: keep */
	h[1] = rs(2, 100000, 410400000, 1000, 100, 30);
	assert_int_equal(mig_next_throttle(h, 2, &o), 30);
	/* auto-converge off: never raise */
	h[1] = rs(2, 100000, 410400000, 1000, 100000, 0);
	o.auto_converge = false;
	assert_int_equal(mig_next_throttle(h, 2, &o), 0);
}

/* Every form of mig_page_hash2 gives the same value (hosts with and
 * without AVX2 migrate to each other), and a changed bit or swapped words
 * change it. */
static void test_hash2(void **state)
{
	(void)state;
	static unsigned char pg[4096];
	uint64_t x = 0x243F6A8885A308D3ull;
	for (int n = 0; n < 200; n++) {
		for (size_t i = 0; i < sizeof pg; i += 8) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			uint64_t v = n % 4 == 0 ? x & 0xff : x; /* some pages mostly zero */
			memcpy(pg + i, &v, 8);
		}
		uint64_t h = mig_page_hash2_portable(pg);
		assert_true(mig_page_hash2(pg) == h);
#if defined(__x86_64__)
		assert_true(mig_page_hash2_sse2(pg) == h);
		if (__builtin_cpu_supports("avx2"))
			assert_true(mig_page_hash2_avx2(pg) == h);
#endif
		int bit = (int)(x % (sizeof pg * 8));
		pg[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		assert_true(mig_page_hash2(pg) != h);
		pg[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		uint64_t w[2];
		memcpy(w, pg + 64 * (n % 63), 8);
		memcpy(w + 1, pg + 64 * (n % 63 + 1), 8);
		if (w[0] != w[1]) { /* two words of different stripes swapped */
			memcpy(pg + 64 * (n % 63), w + 1, 8);
			memcpy(pg + 64 * (n % 63 + 1), w, 8);
			assert_true(mig_page_hash2(pg) != h);
		}
	}
	static const unsigned char zero[4096];
	assert_true(mig_page_hash2(zero) == mig_page_hash2_portable(zero));
	assert_true(mig_page_hash2(zero) != mig_page_hash(zero));
	for (int bit = 0; bit < 4096 * 8; bit += 97) { /* one bit in a zero page */
		memset(pg, 0, sizeof pg);
		pg[bit / 8] = (unsigned char)(1u << (bit % 8));
		assert_true(mig_page_hash2(pg) != mig_page_hash2(zero));
	}
}

/* The stop-and-copy gate (was a global): a pre-copy step waits while
 * another sender of the same gate is paused, at most ~100 ms, and not at
 * all once it left or without a gate. */
static void test_gate(void **state)
{
	(void)state;
	struct mig_gate g = {0};
	uint64_t t = now_ms();
	mig_gate_yield(&g);
	mig_gate_yield(NULL);
	assert_true(now_ms() - t < 20);
	mig_gate_enter(&g);
	t = now_ms();
	mig_gate_yield(&g);
	uint64_t waited = now_ms() - t;
	assert_true(waited >= 90 && waited < 1000);
	mig_gate_leave(&g);
	assert_int_equal(g.mg_final, 0);
	t = now_ms();
	mig_gate_yield(&g);
	assert_true(now_ms() - t < 20);
}

static void test_hash(void **state)
{
	(void)state;
	static unsigned char a[4096], b[4096];
	assert_int_equal(mig_page_hash(a), mig_page_hash(b));
	b[4095] = 1;
	assert_true(mig_page_hash(a) != mig_page_hash(b));
	b[4095] = 0;
	b[0] = 1;
	assert_true(mig_page_hash(a) != mig_page_hash(b));
	uint64_t h1[3] = {1, 2, 3}, h2[3] = {1, 3, 2};
	assert_true(mig_digest(h1, 3) != mig_digest(h2, 3));
	assert_true(mig_digest(h1, 3) != mig_digest(h1, 2));
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	log_init("test_mig", getenv("MIG_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_should_stop),
		cmocka_unit_test(test_next_throttle),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_hash2),
		cmocka_unit_test(test_gate),
		cmocka_unit_test_setup_teardown(test_idle_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_converges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auto_converge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compress, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bare_hello_peers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dest_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bench, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
