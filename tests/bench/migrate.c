/*
 * bench/migrate - live migration of a sim domain between two hosts on
 * loopback, next to raw TLS between the same two endpoints in the same run.
 *
 * Two sim backends on two state directories are the two hosts; the
 * migration is the agents' own code (agent/sim_send.c: mig_send on this thread,
 * mig_receive on another) over mutual TLS on 127.0.0.1 with the pool's
 * kind of certificates, into a destination domain prepared beforehand as
 * agent.migrate_receive prepares it. Real pool-simdom processes hold the
 * guest RAM and run the workload while the migration runs.
 *
 * Workloads (issue 4): idle = 1 GiB, 25% of pages touched with mixed
 * content, no dirtying; busy = 1 GiB, all pages touched, 20,000 pages/s
 * rewritten in a 64 MiB working set. Each without and with compression.
 * Per case, after the migration, the baseline: the same number of bytes as
 * the migration put on the wire, written in 2 MiB SSL_writes over a new TLS
 * connection between the same endpoints (same certificates, same cipher).
 *
 * Fields: workload, compress, memory_mib, prepare_ms (destination domain
 * created), total_ms (prepare + stream), stream_ms (HELLO .. RUNNING),
 * downtime_ms (source paused .. RUNNING received), guest_gap_ms (largest
 * gap between two guest heartbeat ticks, measured by the guest itself
 * across the hand-over), rounds, wire_bytes, wire_mb_s (wire bytes /
 * stream_ms), baseline_mb_s, ratio, verified, rss_mib (this process's
 * anonymous + file resident memory at its peak during the migration:
 * sender and receiver together, guest RAM mappings excluded), cpu_ms and
 * baseline_cpu_ms (this process's CPU time, both ends, during the stream
 * and during the baseline), floor_mb_s and
 * floor_cpu_ms: raw TLS plus a pread from a populated memfd before each
 * write and a pwrite into a fresh memfd after each read (one thread per
 * end) - the copies in and out of guest memory that any migration of RAM
 * makes; ceiling = baseline_cpu_ms / floor_cpu_ms: on a machine whose
 * cores the raw TLS stream already fills, the most a migration's ratio can
 * reach. Raw TLS uses the migration's transport settings (mig_io_init_ssl:
 * 256 KiB writes and reads); BENCH_PLAIN_TLS=1 measures OpenSSL's defaults
 * (a write() per 16 KiB record) instead.
 * rate_vs_floor and cpu_vs_floor: the migration's rate and CPU against
 * the floor's, measured right after it.
 * `--json` prints one JSON object per case. `--quick` uses 256 MiB VMs.
 * `--case idle|busy` and `--compress off|zstd` pick cases; `--runs N`
 * repeats each (the text output then ends with the medians: on these
 * shared 2-core VMs one run's figures say little).
 * `--tls-baseline MB` prints only the raw TLS figure for MB megabytes
 * (bench/evacuate's bound).
 * Never pass/fail: figures only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "backend.h"
#include "log.h"
#include "mig.h"
#include "simdom.h"
#include "simfix.h"
#include "tls.h"

#define MiB ((uint64_t)1024 * 1024)
#define TOKEN "bench-one-time-token"

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

#define sleep_ms simfix_sleep_ms

static void die(const char *what, const char *why)
{
	fprintf(stderr, "bench/migrate: %s: %s\n", what, why);
	exit(1);
}

struct env {
	char dir[64];
	struct backend *a, *b;
	SSL_CTX *srv, *cli;
};

static struct backend *new_be(const char *dir, const char *simdom)
{
	char err[256] = "";
	struct backend *be = simfix_backend(dir, simdom, 4096 * MiB, err, sizeof err);
	if (!be)
		die("backend", err);
	return be;
}

static void env_init(struct env *e)
{
	char simdom[PATH_MAX], d[PATH_MAX], err[256];
	if (!simfix_tmpdir(e->dir, sizeof e->dir, "bench_migrate", err, sizeof err) ||
	    !simfix_simdom(simdom, sizeof simdom, err, sizeof err))
		die("setup", err);
	snprintf(d, sizeof d, "%s/a", e->dir);
	e->a = new_be(d, simdom);
	snprintf(d, sizeof d, "%s/b", e->dir);
	e->b = new_be(d, simdom);
	if (!simfix_tls(e->dir, &e->srv, &e->cli, err, sizeof err))
		die("TLS", err);
}

static void env_free(struct env *e)
{
	simfix_destroy_all(e->a);
	simfix_destroy_all(e->b);
	e->a->be_ops->bo_free(e->a);
	e->b->be_ops->bo_free(e->b);
	SSL_CTX_free(e->srv);
	SSL_CTX_free(e->cli);
	simfix_wipe(e->dir);
}

/* ---- loopback TLS: a listener and a connected client ---- */

static int listener(struct sockaddr_in *sa)
{
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof *sa;
	if (ls < 0 || bind(ls, (struct sockaddr *)sa, sizeof *sa) != 0 || listen(ls, 1) != 0 ||
	    getsockname(ls, (struct sockaddr *)sa, &sl) != 0)
		die("listen", strerror(errno));
	return ls;
}

static SSL *tls_accept_one(SSL_CTX *ctx, int ls)
{
	int fd = accept(ls, NULL, NULL);
	SSL *ssl = fd >= 0 ? SSL_new(ctx) : NULL;
	if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_accept(ssl) != 1)
		die("TLS accept", "handshake failed");
	return ssl;
}

static SSL *tls_connect_to(SSL_CTX *ctx, const struct sockaddr_in *sa)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (const struct sockaddr *)sa, sizeof *sa) != 0)
		die("connect", strerror(errno));
	SSL *ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1)
		die("TLS connect", "handshake failed");
	return ssl;
}

static void tls_close(SSL *ssl)
{
	int fd = SSL_get_fd(ssl);
	SSL_shutdown(ssl);
	SSL_free(ssl);
	close(fd);
}

/* ---- baseline: N bytes of raw TLS, 2 MiB per SSL_write ----
 *
 * And the floor: the same, plus the two copies no migration of guest RAM
 * can skip: the sender preads each 2 MiB from a memfd (populated, as a
 * running guest's RAM), the receiver pwrites it into a fresh memfd (as a
 * destination domain's RAM). No hashing, no zero pages, no protocol: what
 * reading and writing guest memory alone costs next to the raw link. */

#define CHUNK (2u << 20)

struct sink {
	SSL_CTX *ctx;
	int ls;
	uint64_t want;
	int mem_fd; /* -1: discard; else pwrite there at the running offset */
};

static void *sink_main(void *arg)
{
	struct sink *k = arg;
	pthread_setname_np(pthread_self(), k->mem_fd >= 0 ? "floor-recv" : "tls-recv");
	SSL *ssl = tls_accept_one(k->ctx, k->ls);
	struct mig_io io;
	if (getenv("BENCH_PLAIN_TLS"))
		SSL_set_read_ahead(ssl, 1);
	else
		mig_io_init_ssl(&io, ssl); /* the migration's own transport settings */
	static unsigned char buf[CHUNK];
	uint64_t got = 0;
	while (got < k->want) {
		size_t n = 0;
		if (SSL_read_ex(ssl, buf, sizeof buf, &n) <= 0)
			break;
		if (k->mem_fd >= 0 && pwrite(k->mem_fd, buf, n, (off_t)got) != (ssize_t)n)
			die("floor", strerror(errno));
		got += n;
	}
	unsigned char ack = 1;
	size_t w;
	SSL_write_ex(ssl, &ack, 1, &w);
	tls_close(ssl);
	return NULL;
}

static double cpu_now_ms(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* MB/s of `bytes` over a new TLS connection; floor: with the copies. */
static double baseline_mb_s(struct env *e, uint64_t bytes, bool floor, double *cpu_ms)
{
	static unsigned char buf[CHUNK];
	RAND_bytes(buf, sizeof buf);
	int src = -1, dst = -1;
	uint64_t src_len = bytes < (256ull << 20) ? bytes : (256ull << 20);
	src_len = (src_len + CHUNK - 1) / CHUNK * CHUNK;
	if (floor) {
		src = memfd_create("floor-src", MFD_CLOEXEC);
		dst = memfd_create("floor-dst", MFD_CLOEXEC);
		if (src < 0 || dst < 0 || ftruncate(dst, (off_t)bytes) != 0)
			die("floor", strerror(errno));
		for (uint64_t o = 0; o < src_len; o += CHUNK)
			if (pwrite(src, buf, CHUNK, (off_t)o) != (ssize_t)CHUNK)
				die("floor", strerror(errno));
	}
	struct sockaddr_in sa;
	struct sink k = {e->srv, listener(&sa), bytes, dst};
	pthread_setname_np(pthread_self(), floor ? "floor-send" : "tls-send");
	pthread_t th;
	pthread_create(&th, NULL, sink_main, &k);
	SSL *ssl = tls_connect_to(e->cli, &sa);
	struct mig_io io;
	bool plain = getenv("BENCH_PLAIN_TLS") != NULL;
	if (!plain)
		mig_io_init_ssl(&io, ssl);
	double t0 = now_ms(), c0 = cpu_now_ms();
	uint64_t sent = 0;
	while (sent < bytes) {
		size_t len = bytes - sent < sizeof buf ? (size_t)(bytes - sent) : sizeof buf, w = 0;
		if (src >= 0 && pread(src, buf, len, (off_t)(sent % src_len)) != (ssize_t)len)
			die("floor", strerror(errno));
		char e2[256];
		if (plain ? SSL_write_ex(ssl, buf, len, &w) <= 0 : mig_io_write(&io, buf, len, e2, sizeof e2) != 0)
			die("baseline", "write failed");
		sent += plain ? w : len;
	}
	unsigned char ack;
	size_t r;
	SSL_read_ex(ssl, &ack, 1, &r);
	double ms = now_ms() - t0;
	if (cpu_ms)
		*cpu_ms = cpu_now_ms() - c0;
	tls_close(ssl);
	pthread_join(th, NULL);
	close(k.ls);
	if (src >= 0)
		close(src);
	if (dst >= 0)
		close(dst);
	return (double)bytes / 1e3 / ms;
}

/* ---- RSS of this process without shared (guest RAM) mappings ---- */

static long rss_own_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long anon = 0, file = 0;
	while (f && fgets(line, sizeof line, f)) {
		sscanf(line, "RssAnon: %ld", &anon);
		sscanf(line, "RssFile: %ld", &file);
	}
	if (f)
		fclose(f);
	return anon + file;
}

struct sampler {
	pthread_t th;
	volatile int stop;
	long peak_kib;
};

static void *sampler_main(void *arg)
{
	struct sampler *s = arg;
	while (!s->stop) {
		long k = rss_own_kib();
		if (k > s->peak_kib)
			s->peak_kib = k;
		sleep_ms(5);
	}
	return NULL;
}

/* ---- one migration ---- */


struct recv_job {
	struct env *e;
	int ls;
	int domid;
	int rc;
	struct mig_recv_result res;
	char err[512];
};

static void *recv_main(void *arg)
{
	struct recv_job *j = arg;
	pthread_setname_np(pthread_self(), "mig-recv");
	SSL *ssl = tls_accept_one(j->e->srv, j->ls);
	struct mig_io io;
	mig_io_init_ssl(&io, ssl);
	struct mig_recv_opts o = {0};
	o.token = TOKEN;
	o.domid = j->domid;
	j->rc = mig_receive(&io, j->e->b, NULL, &o, &j->res, j->err, sizeof j->err);
	tls_close(ssl);
	return NULL;
}

struct wcase {
	const char *name;
	uint64_t memory, touch, rate, ws;
	int zero, text, rnd;
};

struct result {
	double prepare_ms, total_ms, stream_ms, downtime_ms, guest_gap_ms, wire_mb_s, baseline,
		ratio;
	int rounds;
	uint64_t wire_bytes;
	bool verified;
	long rss_kib;
	const char *stop;
	int throttle;
	double setup_ms, round1_ms, verify_ms;
	uint64_t round1_bytes;
	double floor, floor_cpu_ms; /* TLS + the copies in and out of guest memory */
	double cpu_ms, base_cpu_ms; /* this process's CPU (sender + receiver) during each */
};

static int boot(struct env *e, const struct wcase *w)
{
	char name[64];
	snprintf(name, sizeof name, "bench-%s", w->name);
	struct be_domain_config c =
		simfix_config(name, w->memory, w->touch, w->rate, w->ws, w->zero, w->text, w->rnd);
	int domid = -1;
	if (e->a->be_ops->bo_domain_create(e->a, &c, &domid) != 0 ||
	    e->a->be_ops->bo_domain_unpause(e->a, domid) != 0)
		die("boot", backend_error(e->a));
	struct be_sim_map m;
	if (backend_sim_map(e->a, domid, &m) != 0)
		die("map", backend_error(e->a));
	double end = now_ms() + 120000;
	while (!__atomic_load_n(&m.sm_shared->ss_booted, __ATOMIC_ACQUIRE) && now_ms() < end)
		sleep_ms(10);
	backend_sim_unmap(&m);
	sleep_ms(w->rate ? 1000 : 200); /* the workload reaches its steady state */
	return domid;
}

static void run_case(struct env *e, const struct wcase *w, bool compress, struct result *r)
{
	memset(r, 0, sizeof *r);
	int src = boot(e, w);
	struct be_domain_config c;
	struct be_domain_info di;
	if (e->a->be_ops->bo_domain_info(e->a, src, &di) != 0)
		die("info", backend_error(e->a));
	memset(&c, 0, sizeof c);
	snprintf(c.dc_uuid, sizeof c.dc_uuid, "%s", di.di_uuid);
	snprintf(c.dc_name, sizeof c.dc_name, "%s", di.di_name);
	c.dc_memory = w->memory;
	c.dc_vcpus = 2;
	c.dc_workload.wl_touch_pages = w->touch;
	c.dc_workload.wl_dirty_pages_per_s = w->rate;
	c.dc_workload.wl_working_set_pages = w->ws;
	c.dc_workload.wl_pct_zero = w->zero;
	c.dc_workload.wl_pct_text = w->text;
	c.dc_workload.wl_pct_random = w->rnd;

	/* prepare: the destination's paused, empty domain */
	double t0 = now_ms();
	struct recv_job j = {.e = e, .domid = -1};
	if (e->b->be_ops->bo_domain_create_restore(e->b, &c, &j.domid) != 0)
		die("prepare", backend_error(e->b));
	r->prepare_ms = now_ms() - t0;

	/* the guest measures its own largest heartbeat gap from here on */
	struct be_sim_map m;
	if (backend_sim_map(e->a, src, &m) != 0)
		die("map", backend_error(e->a));
	__atomic_store_n(&((struct simdom_heartbeat *)(void *)m.sm_ram)->hb_max_gap_ns, 0,
			 __ATOMIC_RELAXED);
	backend_sim_unmap(&m);

	struct sockaddr_in sa;
	j.ls = listener(&sa);
	pthread_t th;
	pthread_create(&th, NULL, recv_main, &j);
	SSL *ssl = tls_connect_to(e->cli, &sa);
	struct mig_io io;
	mig_io_init_ssl(&io, ssl);
	struct mig_opts o;
	mig_opts_default(&o);
	o.compress = compress;
	o.verify = true;
	struct mig_send_result res;
	char err[512] = "";
	struct sampler smp = {0};
	pthread_create(&smp.th, NULL, sampler_main, &smp);
	double c0 = cpu_now_ms();
	pthread_setname_np(pthread_self(), "mig-send");
	int rc = mig_send(&io, e->a, NULL, src, &c, TOKEN, &o, NULL, NULL, &res, err, sizeof err);
	r->cpu_ms = cpu_now_ms() - c0;
	smp.stop = 1;
	pthread_join(smp.th, NULL);
	tls_close(ssl);
	pthread_join(th, NULL);
	close(j.ls);
	if (rc != MIG_OK || j.rc != MIG_OK)
		die("migration failed", *err ? err : j.err);

	sleep_ms(50); /* a few ticks on the destination */
	if (backend_sim_map(e->b, j.res.domid, &m) != 0)
		die("map", backend_error(e->b));
	uint64_t gap = __atomic_load_n(&((struct simdom_heartbeat *)(void *)m.sm_ram)->hb_max_gap_ns,
				       __ATOMIC_RELAXED);
	backend_sim_unmap(&m);

	r->stream_ms = res.total_ms;
	r->total_ms = r->prepare_ms + res.total_ms;
	r->downtime_ms = res.downtime_ms;
	r->guest_gap_ms = (double)gap / 1e6;
	r->rounds = res.rounds;
	r->wire_bytes = res.wire_bytes;
	r->wire_mb_s = (double)res.wire_bytes / 1e3 / res.total_ms;
	r->verified = res.verified && j.res.verified;
	r->rss_kib = smp.peak_kib;
	r->stop = mig_stop_name(res.stop);
	r->throttle = res.throttle_pct;
	r->setup_ms = res.setup_ms;
	r->round1_ms = res.round1_ms;
	r->round1_bytes = res.round1_bytes;
	r->verify_ms = res.verify_ms;
	e->a->be_ops->bo_domain_destroy(e->a, src);
	e->b->be_ops->bo_domain_destroy(e->b, j.res.domid);
	sleep_ms(100);
	r->baseline = baseline_mb_s(e, res.wire_bytes, false, &r->base_cpu_ms);
	r->floor = baseline_mb_s(e, res.wire_bytes, true, &r->floor_cpu_ms);
	r->ratio = r->wire_mb_s / r->baseline;
}

struct args {
	bool json, quick;
	double tls_baseline_mb; /* > 0: only the raw TLS figure */
	const char *only_case, *only_comp;
	int runs;
};

static void parse_args(int argc, char **argv, struct args *a)
{
	memset(a, 0, sizeof *a);
	a->quick = getenv("BENCH_QUICK") != NULL;
	a->runs = 1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			a->json = true;
		else if (!strcmp(argv[i], "--quick"))
			a->quick = true;
		else if (!strcmp(argv[i], "--tls-baseline") && i + 1 < argc)
			a->tls_baseline_mb = atof(argv[++i]);
		else if (!strcmp(argv[i], "--case") && i + 1 < argc)
			a->only_case = argv[++i];
		else if (!strcmp(argv[i], "--compress") && i + 1 < argc)
			a->only_comp = argv[++i];
		else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			a->runs = atoi(argv[++i]) > 0 ? atoi(argv[i]) : 1;
	}
}

static void print_json(const struct wcase *w, bool comp, uint64_t mem, const struct result *r)
{
	printf("{\"workload\": \"%s\", \"compress\": %s, \"memory_mib\": %" PRIu64
	       ", \"prepare_ms\": %.1f, \"total_ms\": %.1f, \"stream_ms\": %.1f, "
	       "\"downtime_ms\": %.2f, \"guest_gap_ms\": %.2f, \"rounds\": %d, "
	       "\"stop\": \"%s\", \"throttle_pct\": %d, \"wire_bytes\": %" PRIu64
	       ", \"wire_mb_s\": %.0f, \"baseline_mb_s\": %.0f, \"ratio\": %.2f, "
	       "\"verified\": %s, \"rss_mib\": %.1f, \"cpu_ms\": %.0f, "
	       "\"baseline_cpu_ms\": %.0f, \"floor_mb_s\": %.0f, \"floor_cpu_ms\": %.0f, "
	       "\"ceiling\": %.2f, \"rate_vs_floor\": %.2f, \"cpu_vs_floor\": %.2f}\n",
	       w->name, comp ? "true" : "false", mem / MiB, r->prepare_ms, r->total_ms, r->stream_ms,
	       r->downtime_ms, r->guest_gap_ms, r->rounds, r->stop, r->throttle, r->wire_bytes, r->wire_mb_s,
	       r->baseline, r->ratio, r->verified ? "true" : "false", (double)r->rss_kib / 1024, r->cpu_ms,
	       r->base_cpu_ms, r->floor, r->floor_cpu_ms, r->base_cpu_ms / r->floor_cpu_ms, r->wire_mb_s / r->floor,
	       r->cpu_ms / r->floor_cpu_ms);
}

static void print_text(const struct wcase *w, bool comp, uint64_t mem, const struct result *r)
{
	double mb = (double)r->wire_bytes / 1e6;
	printf("%-5s %-8s %6" PRIu64 " %8.1f %8.1f %9.2f %9.2f %6d %9.1f %9.0f %9.0f %6.2f %8s %4.0f\n", w->name,
	       comp ? "zstd" : "off", mem / MiB, r->total_ms, r->stream_ms, r->downtime_ms, r->guest_gap_ms, r->rounds,
	       mb, r->wire_mb_s, r->baseline, r->ratio, r->verified ? "yes" : "NO", (double)r->rss_kib / 1024);
	printf("      stream: setup %.1f ms, round 1 %.1f MB in %.1f ms (%.0f MB/s), stop: %s, throttle %d%%; "
	       "source verify after hand-over %.1f ms\n"
	       "      CPU ms per wire MB: migration %.2f, raw TLS %.2f, raw TLS + pread + pwrite %.2f (%.0f MB/s); "
	       "CPU-bound ceiling %.2f\n"
	       "      against raw TLS + pread + pwrite: rate %.2f, CPU %.2f\n",
	       r->setup_ms, (double)r->round1_bytes / 1e6, r->round1_ms, (double)r->round1_bytes / 1e3 / r->round1_ms,
	       r->stop, r->throttle, r->verify_ms, r->cpu_ms / mb, r->base_cpu_ms / mb, r->floor_cpu_ms / mb,
	       r->floor, r->base_cpu_ms / r->floor_cpu_ms, r->wire_mb_s / r->floor, r->cpu_ms / r->floor_cpu_ms);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The median of field f over n runs (n <= 64). */
static double median(const struct result *r, int n, double (*f)(const struct result *))
{
	double v[64];
	for (int i = 0; i < n; i++)
		v[i] = f(&r[i]);
	qsort(v, (size_t)n, sizeof v[0], cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double f_rate(const struct result *r)
{
	return r->wire_mb_s / r->floor;
}

static double f_cpu(const struct result *r)
{
	return r->cpu_ms / r->floor_cpu_ms;
}

static double f_mbs(const struct result *r)
{
	return r->wire_mb_s;
}

static double f_floor(const struct result *r)
{
	return r->floor;
}

static double f_down(const struct result *r)
{
	return r->downtime_ms;
}

static void print_medians(const struct wcase *w, bool comp, const struct result *r, int n)
{
	printf("%-5s %-8s median of %d runs: %.0f MB/s, floor %.0f MB/s; against the floor: rate %.2f, CPU %.2f; "
	       "downtime %.2f ms\n",
	       w->name, comp ? "zstd" : "off", n, median(r, n, f_mbs), median(r, n, f_floor), median(r, n, f_rate),
	       median(r, n, f_cpu), median(r, n, f_down));
}

/* --tls-baseline MB: only the raw TLS figure (bench/evacuate's bound). */
static int tls_baseline_only(double mb)
{
	struct env e;
	env_init(&e);
	uint64_t bytes = (uint64_t)(mb * 1e6);
	double r = baseline_mb_s(&e, bytes, false, NULL);
	printf("{\"bytes\": %" PRIu64 ", \"baseline_mb_s\": %.0f}\n", bytes, r);
	env_free(&e);
	return 0;
}

int main(int argc, char **argv)
{
	struct args a;
	parse_args(argc, argv, &a);
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_LVL_WARN);
	if (a.tls_baseline_mb > 0)
		return tls_baseline_only(a.tls_baseline_mb);
	uint64_t mem = (uint64_t)(a.quick ? 256 : 1024) * 1024 * 1024, pages = mem / 4096;
	const struct wcase cases[] = {
		{"idle", mem, pages / 4, 0, 0, 30, 40, 30},
		{"busy", mem, pages, 20000, 64 * MiB / 4096, 10, 50, 40},
	};
	int runs = a.runs < 64 ? a.runs : 64;
	struct env e;
	env_init(&e);
	if (!a.json)
		printf("%-5s %-8s %6s %8s %8s %9s %9s %6s %9s %9s %9s %6s %8s %4s\n", "work", "compress", "MiB", "total",
		       "stream", "downtime", "guestgap", "rounds", "wire MB", "wire MB/s", "TLS MB/s", "ratio", "verified",
		       "RSS");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		for (int comp = 0; comp < 2; comp++) {
			if ((a.only_case && strcmp(a.only_case, cases[i].name)) ||
			    (a.only_comp && strcmp(a.only_comp, comp ? "zstd" : "off")))
				continue;
			struct result r[64];
			for (int k = 0; k < runs; k++) {
				run_case(&e, &cases[i], comp, &r[k]);
				(a.json ? print_json : print_text)(&cases[i], comp, mem, &r[k]);
				fflush(stdout);
			}
			if (!a.json && runs > 1)
				print_medians(&cases[i], comp, r, runs);
		}
	if (!a.json)
		printf("times in ms; wire MB/s = wire bytes / stream time; TLS MB/s = the same bytes "
		       "over raw TLS between the same endpoints, same run; RSS in MiB (sender and "
		       "receiver together, guest RAM excluded); CPU: both ends' CPU time per MB on the "
		       "wire; raw TLS + pread + pwrite (the floor): the same bytes read from a memfd before "
		       "sending and written into a fresh one after receiving, the least a migration of RAM "
		       "does; ceiling: raw TLS CPU / that, the most the ratio can reach where both "
		       "fill the cores\n");
	env_free(&e);
	return 0;
}
