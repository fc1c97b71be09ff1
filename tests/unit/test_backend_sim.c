/* test_backend_sim.c - the sim backend with real pool-simdom processes.
 *
 * Finds the domain program at $POOLD_BIN/pool-simdom (default bin/). Every
 * test uses small domains and bounded waits; the whole file runs in a few
 * seconds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <cmocka.h>

#include "backend.h"
#include "log.h"
#include "simdom.h"
#include "simfix.h"
#include "backend_lock.h"
#include "sim_save.h"

#define MiB SIMFIX_MiB
#define HOST_MEM (256 * MiB)

struct fixture {
	char dir[64];
	char simdom[PATH_MAX];
	char disk[128];
};

#define now_ms simfix_now_ms
#define sleep_ms simfix_sleep_ms

static struct backend *new_be(struct fixture *f, uint64_t mem)
{
	char err[256] = "";
	struct backend *be = simfix_backend(f->dir, f->simdom, mem, err, sizeof err);
	if (!be)
		fail_msg("backend_sim_new: %s", err);
	return be;
}

/* the tests' workload mix: 30% zero pages, 40% text, 30% random */
static struct be_domain_config cfg(const char *name, uint64_t mem, uint64_t touch, uint64_t rate,
				   uint64_t ws)
{
	return simfix_config(name, mem, touch, rate, ws, 30, 40, 30);
}

static int create(struct backend *be, const struct be_domain_config *c)
{
	int domid = -1;
	if (be->be_ops->bo_domain_create(be, c, &domid) != 0)
		fail_msg("domain_create: %s", backend_error(be));
	assert_true(domid > 0);
	return domid;
}

static struct be_domain_info info(struct backend *be, int domid)
{
	struct be_domain_info di;
	if (be->be_ops->bo_domain_info(be, domid, &di) != 0)
		fail_msg("domain_info %d: %s", domid, backend_error(be));
	return di;
}

static uint64_t free_mem(struct backend *be)
{
	struct be_host_info hi;
	assert_int_equal(be->be_ops->bo_host_info(be, &hi), 0);
	assert_int_equal(hi.hi_total_memory, HOST_MEM);
	assert_string_equal(hi.hi_backend, "sim");
	return hi.hi_free_memory;
}

static uint64_t popcount_dirty(const struct be_sim_map *m)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i < (m->sm_npages + 63) / 64; i++)
		n += (uint64_t)__builtin_popcountll(__atomic_load_n(&m->sm_dirty[i], __ATOMIC_ACQUIRE));
	return n;
}

static void clear_dirty(const struct be_sim_map *m)
{
	for (uint64_t i = 0; i < (m->sm_npages + 63) / 64; i++)
		__atomic_exchange_n(&m->sm_dirty[i], 0, __ATOMIC_ACQ_REL);
}

static uint64_t hash_ram(const struct be_sim_map *m)
{
	const uint64_t *w = (const uint64_t *)(const void *)m->sm_ram;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < m->sm_ram_len / 8; i++)
		h = (h ^ w[i]) * 0x100000001b3ull;
	return h;
}

static bool booted(const struct be_sim_map *m, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	while (now_ms() < end) {
		if (__atomic_load_n(&m->sm_shared->ss_booted, __ATOMIC_ACQUIRE))
			return true;
		sleep_ms(5);
	}
	return false;
}

static bool sock_exists(struct fixture *f, int domid)
{
	char p[128];
	snprintf(p, sizeof p, "%s/dom-%d.sock", f->dir, domid);
	return access(p, F_OK) == 0;
}

/* Gone, or a zombie waiting for init to reap it whose threads have all
 * exited (only then are its memory and files released). */
static bool process_gone(pid_t pid)
{
	char p[64], line[128];
	snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
	FILE *fp = fopen(p, "r");
	if (!fp)
		return true;
	bool zombie = false;
	int threads = 1;
	while (fgets(line, sizeof line, fp)) {
		if (strncmp(line, "State:", 6) == 0)
			zombie = strchr(line, 'Z') != NULL || strchr(line, 'X') != NULL;
		sscanf(line, "Threads: %d", &threads);
	}
	fclose(fp);
	return zombie && threads <= 1;
}

static uint64_t rss_shmem_kb(pid_t pid)
{
	char p[64], line[128];
	snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
	FILE *fp = fopen(p, "r");
	uint64_t kb = 0;
	if (!fp)
		return 0;
	while (fgets(line, sizeof line, fp))
		if (sscanf(line, "RssShmem: %" SCNu64, &kb) == 1)
			break;
	fclose(fp);
	return kb;
}

static void destroy(struct backend *be, int domid)
{
	if (be->be_ops->bo_domain_destroy(be, domid) != 0)
		fail_msg("destroy %d: %s", domid, backend_error(be));
}

/* ---- fixture ---- */

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	char err[256];
	if (!simfix_tmpdir(f->dir, sizeof f->dir, "test_backend_sim", err, sizeof err) ||
	    !simfix_simdom(f->simdom, sizeof f->simdom, err, sizeof err)) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	snprintf(f->disk, sizeof f->disk, "%s/vdi.img", f->dir);
	int fd = open(f->disk, O_RDWR | O_CREAT, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)(4 * MiB)) != 0)
		return -1;
	close(fd);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	/* destroy anything a failed test left running */
	char err[256];
	struct backend *be = simfix_backend(f->dir, f->simdom, HOST_MEM, err, sizeof err);
	if (be) {
		simfix_destroy_all(be);
		be->be_ops->bo_free(be);
	}
	simfix_wipe(f->dir);
	free(f);
	return 0;
}

/* ---- tests ---- */

/* Paused is really paused; running boots, beats and dirties at the rate;
 * pause stops everything; throttle slows the dirtying; memory is real. */
static void test_pause_run_dirty(void **state)
{
	struct fixture *f = *state;
	struct backend *be = new_be(f, HOST_MEM);
	uint64_t free0 = free_mem(be);
	assert_int_equal(free0, HOST_MEM);
	const uint64_t touch = 2048, ws = 4096, rate = 4000;
	struct be_domain_config c = cfg("dirty", 32 * MiB, touch, rate, ws);
	int domid = create(be, &c);
	assert_int_equal(free_mem(be), HOST_MEM - 32 * MiB);

	struct be_domain_info di = info(be, domid);
	assert_int_equal(di.di_state, BE_STATE_PAUSED);
	assert_string_equal(di.di_uuid, c.dc_uuid);
	assert_string_equal(di.di_name, "dirty");
	assert_int_equal(di.di_memory, 32 * MiB);
	assert_int_equal(di.di_vcpus, 2);
	assert_true(di.di_pid > 0);

	struct be_sim_map m;
	if (backend_sim_map(be, domid, &m) != 0)
		fail_msg("map: %s", backend_error(be));
	struct stat st;
	assert_int_equal(fstat(m.sm_ram_fd, &st), 0);
	assert_int_equal(st.st_size, 32 * MiB);
	assert_int_equal(m.sm_npages, 32 * MiB / 4096);
	assert_int_equal(m.sm_shared->ss_magic, SIMDOM_MAGIC);

	/* created paused: nothing moves */
	uint64_t h0 = hash_ram(&m);
	sleep_ms(100);
	di = info(be, domid);
	assert_int_equal(di.di_heartbeat, 0);
	assert_int_equal(di.di_dirty_pages, 0);
	assert_int_equal(popcount_dirty(&m), 0);
	assert_int_equal(hash_ram(&m), h0);

	/* run: boot touch, heartbeat, dirtying */
	assert_int_equal(be->be_ops->bo_domain_unpause(be, domid), 0);
	assert_int_equal(info(be, domid).di_state, BE_STATE_RUNNING);
	assert_true(booted(&m, 3000));
	/* the touched pages carry the content mix (30 zero / 40 text / 30 random) */
	int zero = 0, text = 0, rnd = 0;
	for (uint64_t p = 1; p <= touch; p++) {
		const unsigned char *pg = m.sm_ram + p * 4096;
		int printable = 0, nz = 0;
		for (int i = 0; i < 4096; i++) {
			nz += pg[i] != 0;
			printable += (pg[i] >= 32 && pg[i] < 127) || pg[i] == '\n';
		}
		if (nz == 0)
			zero++;
		else if (printable > 4000)
			text++;
		else
			rnd++;
	}
	print_message("touched %" PRIu64 " pages: %d zero, %d text, %d random\n", touch, zero, text,
		      rnd);
	assert_in_range(zero, 0.22 * touch, 0.38 * touch);
	assert_in_range(text, 0.32 * touch, 0.48 * touch);
	assert_in_range(rnd, 0.22 * touch, 0.38 * touch);
	/* memory is really there */
	assert_true(rss_shmem_kb(di.di_pid) * 1024 >= touch * 4096);

	/* the heartbeat advances about once per ms */
	uint64_t hb1 = info(be, domid).di_heartbeat;
	sleep_ms(200);
	di = info(be, domid);
	print_message("heartbeat: +%" PRIu64 " in 200 ms\n", di.di_heartbeat - hb1);
	assert_true(di.di_heartbeat - hb1 >= 100);
	const struct simdom_heartbeat *hb = (const void *)m.sm_ram;
	assert_true(hb->hb_magic == SIMDOM_HB_MAGIC);
	assert_true(hb->hb_counter >= di.di_heartbeat);

	/* dirty bits at the set rate, inside the working set */
	clear_dirty(&m);
	uint64_t d0 = info(be, domid).di_dirty_pages, t0 = now_ms();
	sleep_ms(500);
	uint64_t d1 = info(be, domid).di_dirty_pages, t1 = now_ms();
	double got = (double)(d1 - d0) * 1000.0 / (double)(t1 - t0);
	print_message("dirty rate: %.0f pages/s (set %" PRIu64 ")\n", got, rate);
	assert_true(got > 0.8 * rate && got < 1.2 * rate);
	uint64_t bits = popcount_dirty(&m);
	assert_true(bits > 100);
	for (uint64_t w = ws / 64 + 1; w < (m.sm_npages + 63) / 64; w++)
		assert_int_equal(m.sm_dirty[w], 0);
	assert_true(m.sm_dirty[0] & 1); /* the heartbeat page */

	/* pause: no heartbeat, no dirty bit, no byte changes */
	assert_int_equal(be->be_ops->bo_domain_pause(be, domid), 0);
	di = info(be, domid);
	assert_int_equal(di.di_state, BE_STATE_PAUSED);
	clear_dirty(&m);
	h0 = hash_ram(&m);
	sleep_ms(150);
	struct be_domain_info di2 = info(be, domid);
	assert_int_equal(di2.di_heartbeat, di.di_heartbeat);
	assert_int_equal(di2.di_dirty_pages, di.di_dirty_pages);
	assert_int_equal(popcount_dirty(&m), 0);
	assert_int_equal(hash_ram(&m), h0);

	/* throttle 75 %: a quarter of the rate */
	assert_int_equal(backend_sim_set_throttle(be, domid, 75), 0);
	assert_int_equal(be->be_ops->bo_domain_unpause(be, domid), 0);
	d0 = info(be, domid).di_dirty_pages;
	t0 = now_ms();
	sleep_ms(400);
	d1 = info(be, domid).di_dirty_pages;
	t1 = now_ms();
	double thr = (double)(d1 - d0) * 1000.0 / (double)(t1 - t0);
	print_message("throttled 75%%: %.0f pages/s\n", thr);
	assert_true(thr > 0.15 * rate && thr < 0.35 * rate);
	assert_int_not_equal(backend_sim_set_throttle(be, domid, 101), 0);

	/* balloon down to 16 MiB: the host gets 16 MiB back */
	assert_int_equal(be->be_ops->bo_set_memory_target(be, domid, 16 * MiB), 0);
	di = info(be, domid);
	assert_int_equal(di.di_memory, 16 * MiB);
	assert_int_equal(di.di_memory_target, 16 * MiB);
	assert_int_equal(free_mem(be), HOST_MEM - 16 * MiB);
	assert_int_not_equal(be->be_ops->bo_set_memory_target(be, domid, 64 * MiB), 0);
	assert_int_equal(be->be_ops->bo_set_memory_target(be, domid, 32 * MiB), 0);
	assert_int_equal(be->be_ops->bo_set_vcpus(be, domid, 4), 0);
	assert_int_equal(info(be, domid).di_vcpus, 4);
	assert_int_not_equal(be->be_ops->bo_set_vcpus(be, domid, 0), 0);

	pid_t pid = di.di_pid;
	backend_sim_unmap(&m);
	destroy(be, domid);
	assert_true(process_gone(pid));
	assert_false(sock_exists(f, domid));
	assert_int_equal(free_mem(be), HOST_MEM);
	assert_int_not_equal(be->be_ops->bo_domain_info(be, domid, &di), 0);
	be->be_ops->bo_free(be);
}

static void test_not_enough_memory(void **state)
{
	struct fixture *f = *state;
	struct backend *be = new_be(f, HOST_MEM);
	struct be_domain_config c = cfg("big", 200 * MiB, 0, 0, 0);
	int a = create(be, &c);
	c = cfg("too-big", 64 * MiB, 0, 0, 0);
	int b = -1;
	assert_int_not_equal(be->be_ops->bo_domain_create(be, &c, &b), 0);
	print_message("refused: %s\n", backend_error(be));
	assert_non_null(strstr(backend_error(be), "not enough free memory"));
	assert_non_null(strstr(backend_error(be), "needs 64 MiB, 56 MiB free of 256 MiB"));
	struct be_domain_info *v;
	int n;
	assert_int_equal(be->be_ops->bo_domain_list(be, &v, &n), 0);
	assert_int_equal(n, 1); /* nothing half-created */
	free(v);
	destroy(be, a);
	be->be_ops->bo_free(be);
}

static void test_bad_config(void **state)
{
	struct fixture *f = *state;
	struct backend *be = new_be(f, HOST_MEM);
	int d;
	struct be_domain_config c = cfg("bad", 8 * MiB, 0, 0, 0);
	c.dc_workload.wl_pct_random = 50;
	assert_int_not_equal(be->be_ops->bo_domain_create(be, &c, &d), 0);
	assert_non_null(strstr(backend_error(be), "sum to 100"));
	c = cfg("bad", 8 * MiB, 0, 0, 0);
	snprintf(c.dc_cpu_vendor, sizeof c.dc_cpu_vendor, "GenuineIntel");
	assert_int_not_equal(be->be_ops->bo_domain_create(be, &c, &d), 0);
	assert_non_null(strstr(backend_error(be), "vendor"));
	c = cfg("bad", 8 * MiB, 0, 0, 0);
	snprintf(c.dc_featureset, sizeof c.dc_featureset, "178bfbff-f6f83203-2e500800-ffffffff");
	assert_int_not_equal(be->be_ops->bo_domain_create(be, &c, &d), 0);
	assert_non_null(strstr(backend_error(be), "features"));
	c = cfg("bad", 8 * MiB, 0, 0, 0);
	c.dc_ndisks = 1;
	snprintf(c.dc_disks[0].bd_path, sizeof c.dc_disks[0].bd_path, "%s/missing.img", f->dir);
	snprintf(c.dc_disks[0].bd_device, sizeof c.dc_disks[0].bd_device, "xvda");
	assert_int_not_equal(be->be_ops->bo_domain_create(be, &c, &d), 0);
	print_message("refused: %s\n", backend_error(be));
	assert_non_null(strstr(backend_error(be), "missing.img"));
	/* a subset of the host's features is fine */
	c = cfg("ok", 8 * MiB, 0, 0, 0);
	snprintf(c.dc_featureset, sizeof c.dc_featureset, "1000000b-00000001");
	d = create(be, &c);
	destroy(be, d);
	struct be_domain_info *v;
	int n;
	assert_int_equal(be->be_ops->bo_domain_list(be, &v, &n), 0);
	assert_int_equal(n, 0);
	free(v);
	be->be_ops->bo_free(be);

	char err[256];
	assert_null(backend_sim_new(f->dir, "/nonexistent/pool-simdom", HOST_MEM, 2, "AuthenticAMD",
				    "", err, sizeof err));
	assert_non_null(strstr(err, "/nonexistent/pool-simdom"));
	assert_null(backend_sim_new(f->dir, f->simdom, HOST_MEM, 2, "AuthenticAMD", "xyz", err,
				    sizeof err));
}

/* An agent restart: the domains keep running; a new backend on the same
 * directory lists and drives them; domids are never reused. */
static void test_restart_adopts(void **state)
{
	struct fixture *f = *state;
	struct backend *be = new_be(f, HOST_MEM);
	struct be_domain_config c = cfg("survivor", 16 * MiB, 256, 1000, 0);
	int domid = create(be, &c);
	assert_int_equal(be->be_ops->bo_domain_unpause(be, domid), 0);
	pid_t pid = info(be, domid).di_pid;
	be->be_ops->bo_free(be);

	sleep_ms(50);
	be = new_be(f, HOST_MEM); /* the restarted agent */
	struct be_domain_info *v;
	int n;
	assert_int_equal(be->be_ops->bo_domain_list(be, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].di_domid, domid);
	assert_int_equal(v[0].di_state, BE_STATE_RUNNING);
	assert_int_equal(v[0].di_pid, pid);
	assert_string_equal(v[0].di_uuid, c.dc_uuid);
	assert_true(v[0].di_heartbeat > 0);
	free(v);
	assert_int_equal(free_mem(be), HOST_MEM - 16 * MiB);
	assert_int_equal(be->be_ops->bo_domain_pause(be, domid), 0);
	assert_int_equal(info(be, domid).di_state, BE_STATE_PAUSED);
	assert_int_equal(be->be_ops->bo_domain_unpause(be, domid), 0);

	/* clean shutdown: the process exits, the domain awaits destroy */
	assert_int_equal(be->be_ops->bo_domain_shutdown(be, domid, 3000), 0);
	assert_true(process_gone(pid));
	assert_false(sock_exists(f, domid));
	struct be_domain_info di = info(be, domid);
	assert_int_equal(di.di_state, BE_STATE_SHUTDOWN);
	assert_int_equal(di.di_memory, 0);
	assert_int_equal(free_mem(be), HOST_MEM);
	assert_int_not_equal(be->be_ops->bo_domain_unpause(be, domid), 0);
	assert_non_null(strstr(backend_error(be), "not running (shutdown)"));
	destroy(be, domid);
	be->be_ops->bo_free(be);

	be = new_be(f, HOST_MEM);
	c = cfg("next", 8 * MiB, 0, 0, 0);
	int d2 = create(be, &c);
	assert_true(d2 > domid);
	destroy(be, d2);
	be->be_ops->bo_free(be);
}

/* kill -9 of a domain: listed CRASHED (holding nothing), socket gone,
 * until destroyed. */
static void test_crash(void **state)
{
	struct fixture *f = *state;
	struct backend *be = new_be(f, HOST_MEM);
	struct be_domain_config c = cfg("victim", 16 * MiB, 128, 100, 0);
	int domid = create(be, &c);
	assert_int_equal(be->be_ops->bo_domain_unpause(be, domid), 0);
	pid_t pid = info(be, domid).di_pid;
	assert_int_equal(kill(pid, SIGKILL), 0);
	uint64_t end = now_ms() + 3000;
	while (!process_gone(pid) && now_ms() < end)
		sleep_ms(1);
	assert_true(process_gone(pid));

	struct be_domain_info *v;
	int n;
	assert_int_equal(be->be_ops->bo_domain_list(be, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].di_state, BE_STATE_CRASHED);
	assert_int_equal(v[0].di_memory, 0);
	assert_string_equal(v[0].di_uuid, c.dc_uuid);
	free(v);
	assert_false(sock_exists(f, domid));
	assert_int_equal(free_mem(be), HOST_MEM);
	assert_int_not_equal(be->be_ops->bo_domain_pause(be, domid), 0);
	assert_non_null(strstr(backend_error(be), "crashed"));
	assert_int_not_equal(be->be_ops->bo_domain_shutdown(be, domid, 100), 0);
	destroy(be, domid);
	assert_int_equal(be->be_ops->bo_domain_list(be, &v, &n), 0);
	assert_int_equal(n, 0);
	free(v);
	be->be_ops->bo_free(be);
}

/* The disk is written at the set rate; disks come and go. */
static void test_disks(void **state)
{
	struct fixture *f = *state;
	struct backend *be = new_be(f, HOST_MEM);
	struct be_domain_config c = cfg("disky", 8 * MiB, 0, 0, 0);
	c.dc_workload.wl_disk_write_bytes_per_s = 4 * MiB;
	c.dc_ndisks = 1;
	snprintf(c.dc_disks[0].bd_path, sizeof c.dc_disks[0].bd_path, "%s", f->disk);
	snprintf(c.dc_disks[0].bd_device, sizeof c.dc_disks[0].bd_device, "xvda");
	int domid = create(be, &c);
	struct be_sim_map m;
	assert_int_equal(backend_sim_map(be, domid, &m), 0);
	sleep_ms(50);
	assert_int_equal(m.sm_shared->ss_disk_bytes, 0); /* paused: no I/O */
	assert_int_equal(be->be_ops->bo_domain_unpause(be, domid), 0);
	sleep_ms(300);
	uint64_t b = __atomic_load_n(&m.sm_shared->ss_disk_bytes, __ATOMIC_RELAXED);
	print_message("disk: %" PRIu64 " KiB in ~300 ms at 4 MiB/s\n", b >> 10);
	assert_true(b > 512 * 1024 && b < 2 * MiB);

	struct be_disk d2 = {0};
	snprintf(d2.bd_path, sizeof d2.bd_path, "%s", f->disk);
	snprintf(d2.bd_device, sizeof d2.bd_device, "xvdb");
	d2.bd_readonly = true;
	assert_int_equal(be->be_ops->bo_disk_add(be, domid, &d2), 0);
	assert_int_not_equal(be->be_ops->bo_disk_add(be, domid, &d2), 0); /* already there */
	assert_int_equal(be->be_ops->bo_disk_remove(be, domid, "xvda"), 0);
	assert_int_not_equal(be->be_ops->bo_disk_remove(be, domid, "xvda"), 0);
	sleep_ms(50);
	b = __atomic_load_n(&m.sm_shared->ss_disk_bytes, __ATOMIC_RELAXED);
	sleep_ms(100);
	/* the remaining disk is read-only: no more writes */
	assert_int_equal(__atomic_load_n(&m.sm_shared->ss_disk_bytes, __ATOMIC_RELAXED), b);
	backend_sim_unmap(&m);
	destroy(be, domid);
	be->be_ops->bo_free(be);
}

/* The guest's tracked datapath: every block it writes is in the disk's
 * dirty-block log, and a copy-on-write snapshot taken while it is paused
 * keeps exactly the disk as it was: a block whose kept bit is set from the
 * snapshot's file, any other from the disk. Once ended, the snapshot takes
 * no more. */
static void test_disk_log_and_snapshot(void **state)
{
	struct fixture *f = *state;
	struct backend *be = new_be(f, HOST_MEM);
	enum { NB = 4 * MiB / SIMDOM_DISK_BLOCK };
	static unsigned char orig[4 * MiB], now[4 * MiB], snap[4 * MiB];
	for (int b = 0; b < NB; b++) /* every third block a hole */
		memset(orig + (size_t)b * SIMDOM_DISK_BLOCK, b % 3 ? b + 1 : 0, SIMDOM_DISK_BLOCK);
	int fd = open(f->disk, O_RDWR);
	assert_int_equal(pwrite(fd, orig, sizeof orig, 0), (ssize_t)sizeof orig);
	char spath[160];
	snprintf(spath, sizeof spath, "%s/snap.img", f->dir);
	int sfd = open(spath, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(ftruncate(sfd, 4 * MiB), 0);
	struct be_domain_config c = cfg("tracked", 8 * MiB, 0, 0, 0);
	c.dc_workload.wl_disk_write_bytes_per_s = 8 * MiB;
	c.dc_ndisks = 1;
	snprintf(c.dc_disks[0].bd_path, sizeof c.dc_disks[0].bd_path, "%s", f->disk);
	snprintf(c.dc_disks[0].bd_device, sizeof c.dc_disks[0].bd_device, "xvda");
	snprintf(c.dc_disks[0].bd_vdi_uuid, sizeof c.dc_disks[0].bd_vdi_uuid, "vdi-a");
	int domid = create(be, &c);
	struct be_sim_disk_log log, kept, none;
	assert_int_equal(backend_sim_disk_log(be, domid, "vdi-a", &log), 0);
	assert_int_not_equal(backend_sim_disk_log(be, domid, "vdi-b", &none), 0); /* no such disk */
	assert_true(log.dl_len * 8 >= NB);
	assert_int_equal(backend_sim_disk_snapshot(be, domid, "vdi-a", spath, &kept), 0);
	assert_int_not_equal(backend_sim_disk_snapshot(be, domid, "vdi-a", spath, &none), 0); /* one at a time */
	assert_int_equal(be->be_ops->bo_domain_unpause(be, domid), 0);
	sleep_ms(300);
	assert_int_equal(be->be_ops->bo_domain_pause(be, domid), 0);
	assert_int_equal(pread(fd, now, sizeof now, 0), (ssize_t)sizeof now);
	assert_int_equal(pread(sfd, snap, sizeof snap, 0), (ssize_t)sizeof snap);
	int changed = 0, kept_n = 0;
	for (int b = 0; b < NB; b++) {
		size_t off = (size_t)b * SIMDOM_DISK_BLOCK;
		bool k = kept.dl_bits[b / 64] & (1ull << (b % 64)), dirty = log.dl_bits[b / 64] & (1ull << (b % 64));
		bool differs = memcmp(now + off, orig + off, SIMDOM_DISK_BLOCK) != 0;
		changed += differs;
		kept_n += k;
		assert_false(differs && !dirty); /* nothing written escapes the log */
		assert_false(differs && !k);	 /* nor the snapshot */
		assert_memory_equal(k ? snap + off : now + off, orig + off, SIMDOM_DISK_BLOCK); /* the instant */
	}
	print_message("disk: %d of %d blocks changed, %d kept by the snapshot\n", changed, NB, kept_n);
	assert_true(changed > 3);
	/* ended: writes go on, the snapshot keeps nothing more */
	assert_int_equal(backend_sim_disk_snapshot_end(be, domid, "vdi-a"), 0);
	uint64_t before[(NB + 63) / 64];
	memcpy(before, kept.dl_bits, sizeof before);
	assert_int_equal(be->be_ops->bo_domain_unpause(be, domid), 0);
	sleep_ms(200);
	assert_memory_equal(before, kept.dl_bits, sizeof before);
	backend_sim_disk_log_unmap(&kept);
	backend_sim_disk_log_unmap(&log);
	close(fd);
	close(sfd);
	destroy(be, domid);
	be->be_ops->bo_free(be);
}

/* A guest with nothing to dirty and no disk to write sleeps instead of
 * ticking; a new workload, a disk or a pause wakes it at once. */
static void test_idle_wakes(void **state)
{
	struct fixture *f = *state;
	struct backend *be = new_be(f, HOST_MEM);
	struct be_domain_config c = cfg("idler", 8 * MiB, 256, 0, 0);
	c.dc_workload.wl_disk_write_bytes_per_s = 4 * MiB; /* but no disk yet */
	int domid = create(be, &c);
	struct be_sim_map m;
	assert_int_equal(backend_sim_map(be, domid, &m), 0);
	assert_int_equal(be->be_ops->bo_domain_unpause(be, domid), 0);
	uint64_t end = now_ms() + 5000;
	while (!__atomic_load_n(&m.sm_shared->ss_booted, __ATOMIC_ACQUIRE) && now_ms() < end)
		sleep_ms(5);
	assert_true(m.sm_shared->ss_booted);
	sleep_ms(50);
	uint64_t d0 = __atomic_load_n(&m.sm_shared->ss_dirty_total, __ATOMIC_RELAXED);
	sleep_ms(150);
	assert_int_equal(__atomic_load_n(&m.sm_shared->ss_dirty_total, __ATOMIC_RELAXED), d0);

	/* a dirtying rate: the sleeping workload thread starts */
	struct be_workload wl = c.dc_workload;
	wl.wl_dirty_pages_per_s = 5000;
	wl.wl_working_set_pages = 256;
	assert_int_equal(backend_sim_set_workload(be, domid, &wl), 0);
	sleep_ms(200);
	uint64_t d1 = __atomic_load_n(&m.sm_shared->ss_dirty_total, __ATOMIC_RELAXED);
	print_message("dirtied %" PRIu64 " pages in ~200 ms at 5000/s\n", d1 - d0);
	assert_true(d1 - d0 > 300);
	/* and back to idle: it stops */
	wl.wl_dirty_pages_per_s = 0;
	assert_int_equal(backend_sim_set_workload(be, domid, &wl), 0);
	sleep_ms(50);
	uint64_t d2 = __atomic_load_n(&m.sm_shared->ss_dirty_total, __ATOMIC_RELAXED);
	sleep_ms(150);
	assert_int_equal(__atomic_load_n(&m.sm_shared->ss_dirty_total, __ATOMIC_RELAXED), d2);

	/* a writable disk arrives: the sleeping disk thread starts writing */
	assert_int_equal(m.sm_shared->ss_disk_bytes, 0);
	struct be_disk dk = {0};
	snprintf(dk.bd_path, sizeof dk.bd_path, "%s", f->disk);
	snprintf(dk.bd_device, sizeof dk.bd_device, "xvda");
	assert_int_equal(be->be_ops->bo_disk_add(be, domid, &dk), 0);
	sleep_ms(200);
	assert_true(__atomic_load_n(&m.sm_shared->ss_disk_bytes, __ATOMIC_RELAXED) > 0);
	assert_int_equal(be->be_ops->bo_disk_remove(be, domid, "xvda"), 0);

	/* a pause finds the idle threads parked at once */
	uint64_t t0 = now_ms();
	assert_int_equal(be->be_ops->bo_domain_pause(be, domid), 0);
	print_message("pause of an idle guest: %" PRIu64 " ms\n", now_ms() - t0);
	assert_true(now_ms() - t0 < 1000);
	assert_int_equal(info(be, domid).di_state, BE_STATE_PAUSED);
	assert_int_equal(be->be_ops->bo_domain_unpause(be, domid), 0);
	backend_sim_unmap(&m);
	destroy(be, domid);
	be->be_ops->bo_free(be);
}

/* The restore hook: an incoming domain starts empty and paused, does not
 * boot, and continues from the memory and vCPU state it was given. */
static void test_restore_hook(void **state)
{
	struct fixture *f = *state;
	struct backend *be = new_be(f, HOST_MEM);
	struct be_domain_config c = cfg("incoming", 8 * MiB, 1024, 500, 256);
	int domid = -1;
	assert_non_null(be->be_ops->bo_domain_create_restore);
	if (be->be_ops->bo_domain_create_restore(be, &c, &domid) != 0)
		fail_msg("create_restore: %s", backend_error(be));
	struct be_sim_map m;
	assert_int_equal(backend_sim_map(be, domid, &m), 0);
	/* the "received" memory and state */
	memset(m.sm_ram + 1000 * 4096, 0xab, 4096);
	struct simdom_heartbeat *hb = (void *)m.sm_ram;
	hb->hb_magic = SIMDOM_HB_MAGIC;
	hb->hb_counter = 100000;
	m.sm_shared->ss_vcpu[0].vc_retired = 777;
	m.sm_shared->ss_vcpu[0].vc_gpr[5] = 0x1234;
	assert_int_equal(be->be_ops->bo_domain_unpause(be, domid), 0);
	sleep_ms(100);
	struct be_domain_info di = info(be, domid);
	assert_true(di.di_heartbeat > 100000 + 30);
	assert_true(m.sm_shared->ss_booted);
	/* no boot touch over the received pages: page 1000 (outside the working set) is intact */
	for (int i = 0; i < 4096; i++)
		assert_int_equal(m.sm_ram[1000 * 4096 + i], 0xab);
	/* the vCPU state continued from what was given */
	assert_true(m.sm_shared->ss_vcpu[0].vc_retired >= 777);
	assert_int_equal(m.sm_shared->ss_vcpu[0].vc_gpr[5], 0x1234);
	backend_sim_unmap(&m);
	destroy(be, domid);
	be->be_ops->bo_free(be);
}

/* A suspend image (sim_save.c) and back: the memory, the vCPU state and
 * the balloon come back byte for byte in a new domain, and the guest's
 * heartbeat counter goes on from the saved one. */
static void test_save_restore(void **state)
{
	struct fixture *f = *state;
	struct backend *be = backend_locked_new(new_be(f, HOST_MEM));
	struct be_domain_config c = cfg("saved", 16 * MiB, 2048, 0, 0);
	int domid = create(be, &c);
	assert_int_equal(be->be_ops->bo_domain_unpause(be, domid), 0);
	assert_int_equal(be->be_ops->bo_set_memory_target(be, domid, 12 * MiB), 0);
	assert_int_equal(be->be_ops->bo_set_vcpus(be, domid, 1), 0);
	for (int i = 0; i < 100 && info(be, domid).di_heartbeat < 200; i++)
		sleep_ms(10);
	char err[512] = "", path[600];
	snprintf(path, sizeof path, "%s/image", f->dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	/* only a paused domain is saved */
	assert_int_equal(sim_image_save(be, domid, c.dc_uuid, fd, err, sizeof err), -1);
	assert_int_equal(be->be_ops->bo_domain_pause(be, domid), 0);
	struct be_sim_map m;
	backend_locked_lock(be);
	assert_int_equal(backend_sim_map(backend_locked_inner(be), domid, &m), 0);
	backend_locked_unlock(be);
	unsigned char *ram = malloc(m.sm_ram_len);
	memcpy(ram, m.sm_ram, m.sm_ram_len);
	uint64_t hb = ((struct simdom_heartbeat *)(void *)m.sm_ram)->hb_counter, retired = m.sm_shared->ss_vcpu[0].vc_retired;
	backend_sim_unmap(&m);
	if (sim_image_save(be, domid, c.dc_uuid, fd, err, sizeof err) != 0)
		fail_msg("save: %s", err);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal((uint64_t)st.st_size, sim_image_size(16 * MiB));
	assert_true((uint64_t)st.st_blocks * 512 < 15 * MiB); /* sparse: what the guest holds */
	destroy(be, domid);
	/* the image belongs to its VM and size */
	struct be_domain_config other = cfg("other", 16 * MiB, 0, 0, 0);
	assert_int_equal(sim_image_restore(be, &other, fd, &domid, err, sizeof err), -1);
	assert_non_null(strstr(err, "not VM"));
	if (sim_image_restore(be, &c, fd, &domid, err, sizeof err) != 0)
		fail_msg("restore: %s", err);
	close(fd);
	struct be_domain_info di = info(be, domid);
	assert_int_equal(di.di_state, BE_STATE_PAUSED);
	assert_int_equal(di.di_memory, 12 * MiB);
	backend_locked_lock(be);
	assert_int_equal(backend_sim_map(backend_locked_inner(be), domid, &m), 0);
	backend_locked_unlock(be);
	assert_memory_equal(m.sm_ram, ram, 12 * MiB);
	assert_int_equal(m.sm_shared->ss_vcpu[0].vc_retired, retired);
	assert_int_equal(m.sm_shared->ss_vcpus, 1);
	assert_int_equal(be->be_ops->bo_domain_unpause(be, domid), 0);
	for (int i = 0; i < 100 && info(be, domid).di_heartbeat <= hb; i++)
		sleep_ms(10);
	assert_true(info(be, domid).di_heartbeat > hb);
	backend_sim_unmap(&m);
	free(ram);
	destroy(be, domid);
	be->be_ops->bo_free(be);
}

int main(void)
{
	log_init("test_backend_sim", LOG_LVL_WARN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pause_run_dirty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_enough_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_adopts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_log_and_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_wakes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_hook, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_restore, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
