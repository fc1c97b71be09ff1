/*
 * simdom.c - bin/pool-simdom: one simulated domain (see simdom.h).
 *
 *   pool-simdom --state-dir DIR --domid N --boot-fd 3 [--uuid UUID]
 *
 * Started by backend_sim.c, never by hand. Threads:
 *   main       the control socket (and SIGTERM = clean shutdown)
 *   heartbeat  rewrites page 0 every 1 ms while running
 *   workload   dirties pages at the set rate once the guest has booted
 *   disk       writes the first writable disk at the set rate, through
 *              disk_write: the one tracked path (each write marks its
 *              blocks in the disk's dirty-block log, simdom.h)
 *   boot       (wl_prealloc: allocates all of RAM first, MADV_POPULATE_WRITE)
 *              the guest's boot-time touch at the first unpause, then ends
 * A pause parks heartbeat, workload and disk at a safe point between two
 * batches before PAUSE is answered, so nothing changes while paused.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "simdom.h"
#include "version.h"
#include "util.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define TEXT_POOL (256u * 1024)
#define SEG 256u	     /* bytes of one text segment / one dirtying write */
#define WL_TICK_NS 5000000ull	/* workload batch period */
#define DISK_TICK_NS 10000000ull
#define DISK_CHUNK (64u * 1024)
#define MAX_CLIENTS 16
#define BOOT_CHUNK_PAGES 2048u /* 8 MiB per boot-touch step */

/* ---- PRNG: xoshiro256** seeded by splitmix64 ---- */
struct rng {
	uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

static void fill_random(struct rng *r, unsigned char *p, size_t len)
{
	uint64_t *w = (uint64_t *)(void *)p;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = rng_next(r);
}

/* ---- the domain ---- */
enum page_class { PC_ZERO, PC_TEXT, PC_RANDOM };

struct dom {
	int domid;
	bool restore;
	int dirfd;
	char sock_name[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	struct be_domain_config cfg; /* disks, workload: under mu */

	int ram_fd, dirty_fd, shared_fd;
	unsigned char *ram;
	uint64_t ram_len, npages;
	uint64_t *dirty;
	uint64_t dirty_len;
	struct simdom_shared *sh;
	uint64_t sh_len;
	struct simdom_heartbeat *hb;
	uint64_t target;	/* balloon target, bytes */
	uint64_t seed;		/* page classes: same on every host for one uuid */
	unsigned char *text;	/* TEXT_POOL + SEG bytes of text-like content */

	pthread_mutex_t mu;
	pthread_cond_t cv_run;	  /* guest threads wait here while paused */
	pthread_cond_t cv_parked; /* PAUSE waits here for them */
	pthread_cond_t cv_wake;	  /* (CLOCK_MONOTONIC) wakes guest threads sleeping between ticks */
	bool pause_req;
	bool stop;
	int parked;
	int nguest;		/* guest threads that park */
	bool ran;		/* unpaused at least once */
	int disk_fd[SIMDOM_MAX_DISKS];
	int disk_log_fd[SIMDOM_MAX_DISKS];	 /* each disk's dirty-block log (memfd) */
	uint64_t disk_log_bits[SIMDOM_MAX_DISKS]; /* blocks it tracks */
	int disk_cow_fd[SIMDOM_MAX_DISKS];	 /* its copy-on-write snapshot's file, or -1 */
	int disk_kept_fd[SIMDOM_MAX_DISKS];	 /* the snapshot's "kept" bitmap (memfd), or -1 */
	uint64_t disk_gen_seen;			 /* the disk writer has taken this disk_gen */
	int lock_fd;		/* dom-N.lock: held while we live; says the memory we hold */
	uint64_t disk_gen;	/* bumped on disk add/remove */
	uint64_t cfg_gen;	/* bumped (with cv_wake) when the workload or the disks change */

	uint32_t tick_ms;	/* heartbeat tick (wl_heartbeat_ms), read by the heartbeat thread */
	pthread_t th_hb, th_wl, th_disk, th_pop;
	bool have_pop;
};

static enum page_class page_class(const struct dom *d, uint64_t page, const struct be_workload *wl)
{
	uint64_t x = d->seed ^ (page * 0x9e3779b97f4a7c15ull);
	unsigned v = (unsigned)(splitmix64(&x) % 100);
	if ((int)v < wl->wl_pct_zero)
		return PC_ZERO;
	if ((int)v < wl->wl_pct_zero + wl->wl_pct_text)
		return PC_TEXT;
	return PC_RANDOM;
}

static void text_pool_init(struct dom *d)
{
	static const char *const words[] = {
		"the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with",
		"be", "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which",
		"but", "have", "an", "had", "they", "you", "were", "their", "one", "all", "we",
		"can", "her", "has", "there", "been", "if", "more", "when", "will", "would",
		"who", "so", "no", "memory", "page", "domain", "kernel", "process", "network",
		"storage", "request", "response", "server", "client", "timeout", "error",
		"warning", "info", "debug", "connection", "session", "buffer", "packet",
		"virtual", "machine", "migration", "host", "pool", "master", "agent", "status",
		"running", "paused", "halted", "started", "stopped", "config", "value", "index",
		"table", "record", "object", "event", "task", "progress", "result", "failure",
		"success", "/var/log/messages", "/usr/lib/x86_64-linux-gnu", "2026-11-23T05:01:02Z",
		"GET", "POST", "HTTP/1.1", "200", "404", "500", "{\"id\":", "\"uuid\":", "null,",
		"true,", "false,", "0x7fff5a2c", "user", "admin", "root", "daemon", "systemd",
	};
	const size_t nwords = sizeof words / sizeof words[0];
	struct rng r;
	rng_seed(&r, d->seed ^ 0x7465787475ull);
	size_t n = 0, col = 0;
	while (n < TEXT_POOL + SEG) {
		uint64_t x = rng_next(&r);
		const char *w = words[x % nwords];
		size_t wl = strlen(w);
		for (size_t i = 0; i < wl && n < TEXT_POOL + SEG; i++)
			d->text[n++] = (unsigned char)w[i];
		col += wl + 1;
		if (n < TEXT_POOL + SEG) {
			if (col > 60 + (x >> 60)) {
				d->text[n++] = '\n';
				col = 0;
			} else {
				d->text[n++] = ((x >> 32) & 15) == 0 ? ',' : ' ';
			}
		}
	}
}

static void fill_text(const struct dom *d, struct rng *r, unsigned char *p, size_t len)
{
	for (size_t off = 0; off < len; off += SEG) {
		size_t at = (size_t)(rng_next(r) % TEXT_POOL);
		memcpy(p + off, d->text + at, len - off < SEG ? len - off : SEG);
	}
}

static inline void mark_dirty(struct dom *d, uint64_t page)
{
	__atomic_fetch_or(&d->dirty[page / 64], 1ull << (page % 64), __ATOMIC_RELEASE);
}

/* ---- pause machinery ---- */
enum ckpt { CK_RUN, CK_RESUMED, CK_STOP };

/* A guest thread's safe point: parks while a pause is requested. */
static enum ckpt guest_checkpoint(struct dom *d)
{
	if (!__atomic_load_n(&d->pause_req, __ATOMIC_ACQUIRE) &&
	    !__atomic_load_n(&d->stop, __ATOMIC_ACQUIRE))
		return CK_RUN;
	enum ckpt rc = CK_RUN;
	pthread_mutex_lock(&d->mu);
	if (d->pause_req && !d->stop) {
		d->parked++;
		pthread_cond_broadcast(&d->cv_parked);
		while (d->pause_req && !d->stop)
			pthread_cond_wait(&d->cv_run, &d->mu);
		d->parked--;
		rc = CK_RESUMED;
	}
	if (d->stop)
		rc = CK_STOP;
	pthread_mutex_unlock(&d->mu);
	return rc;
}

/* A guest thread's sleep until t (CLOCK_MONOTONIC ns), cut short by a
 * pause or stop request: a PAUSE then waits for no tick to run out. */
static void dom_sleep_until(struct dom *d, uint64_t t)
{
	struct timespec ts = {.tv_sec = (time_t)(t / 1000000000ull), .tv_nsec = (long)(t % 1000000000ull)};
	pthread_mutex_lock(&d->mu);
	while (!d->pause_req && !__atomic_load_n(&d->stop, __ATOMIC_ACQUIRE) && now_ns() < t)
		if (pthread_cond_timedwait(&d->cv_wake, &d->mu, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&d->mu);
}

/* A guest thread with nothing to do (no dirtying, no disk writes) sleeps
 * until a pause, a stop or a change of its configuration (cfg_gen moves
 * from gen) instead of ticking: an idle Xen guest costs dom0 nothing, and
 * 40 idle sim guests ticking took a fifth of the 2 cores. */
static void dom_idle(struct dom *d, uint64_t gen)
{
	pthread_mutex_lock(&d->mu);
	while (!d->pause_req && !__atomic_load_n(&d->stop, __ATOMIC_ACQUIRE) && d->cfg_gen == gen)
		pthread_cond_wait(&d->cv_wake, &d->mu);
	pthread_mutex_unlock(&d->mu);
}

/* Under d->mu: the configuration changed, idle guest threads look again. */
static void cfg_changed(struct dom *d)
{
	d->cfg_gen++;
	pthread_cond_broadcast(&d->cv_wake);
}

/* Parks every guest thread; returns -1 if they did not park within 5 s. */
static int dom_pause(struct dom *d)
{
	int rc = 0;
	pthread_mutex_lock(&d->mu);
	__atomic_store_n(&d->pause_req, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&d->cv_wake); /* sleepers reach their safe point now */
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 5;
	while (d->parked < d->nguest && !d->stop) {
		if (pthread_cond_timedwait(&d->cv_parked, &d->mu, &dl) == ETIMEDOUT) {
			rc = -1;
			break;
		}
	}
	pthread_mutex_unlock(&d->mu);
	if (rc == 0)
		__atomic_store_n(&d->sh->ss_state, BE_STATE_PAUSED, __ATOMIC_RELEASE);
	return rc;
}

static void dom_unpause(struct dom *d)
{
	pthread_mutex_lock(&d->mu);
	d->ran = true;
	__atomic_store_n(&d->sh->ss_state, BE_STATE_RUNNING, __ATOMIC_RELEASE);
	__atomic_store_n(&d->pause_req, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&d->cv_run);
	pthread_mutex_unlock(&d->mu);
}

/* A thread starts / stops being one that a pause must wait for. */
static bool guest_enter(struct dom *d)
{
	pthread_mutex_lock(&d->mu);
	d->nguest++;
	pthread_mutex_unlock(&d->mu);
	return guest_checkpoint(d) != CK_STOP;
}

static void guest_leave(struct dom *d)
{
	pthread_mutex_lock(&d->mu);
	d->nguest--;
	pthread_cond_broadcast(&d->cv_parked);
	pthread_mutex_unlock(&d->mu);
}

/* ---- guest threads ---- */
static void *heartbeat_main(void *arg)
{
	struct dom *d = arg;
	uint64_t next = 0;
	for (;;) {
		enum ckpt ck = guest_checkpoint(d);
		if (ck == CK_STOP)
			break;
		uint64_t t = now_ns();
		if (ck == CK_RESUMED || next == 0) {
			next = t;
			__atomic_store_n(&d->hb->hb_magic, SIMDOM_HB_MAGIC, __ATOMIC_RELAXED);
		}
		uint64_t c = __atomic_load_n(&d->hb->hb_counter, __ATOMIC_RELAXED);
		uint64_t prev = __atomic_load_n(&d->hb->hb_time_ns, __ATOMIC_RELAXED);
		if (c && prev && t > prev &&
		    t - prev > __atomic_load_n(&d->hb->hb_max_gap_ns, __ATOMIC_RELAXED))
			__atomic_store_n(&d->hb->hb_max_gap_ns, t - prev, __ATOMIC_RELAXED);
		__atomic_store_n(&d->hb->hb_time_ns, t, __ATOMIC_RELAXED);
		__atomic_store_n(&d->hb->hb_counter, c + 1, __ATOMIC_RELEASE);
		mark_dirty(d, 0);
		uint32_t ms = __atomic_load_n(&d->tick_ms, __ATOMIC_RELAXED);
		uint64_t tick = 1000000ull * (ms ? ms : 1);
		next += tick;
		if (t > next + tick) { /* more than a tick late: don't burst */
			__atomic_store_n(&d->hb->hb_ticks_late, d->hb->hb_ticks_late + 1,
					 __ATOMIC_RELAXED);
			next = t + tick;
		}
		dom_sleep_until(d, next);
	}
	return NULL;
}

static uint64_t held_pages(struct dom *d)
{
	return __atomic_load_n(&d->sh->ss_held_pages, __ATOMIC_ACQUIRE);
}

/* dom-N.lock says how much memory we hold: the backend reads it (and
 * tests the lock) to account host memory without waking us. */
static void publish_held(struct dom *d)
{
	char b[32];
	int n = snprintf(b, sizeof b, "%20" PRIu64 "\n", held_pages(d) << SIMDOM_PAGE_SHIFT);
	if (d->lock_fd >= 0 && pwrite(d->lock_fd, b, (size_t)n, 0) != n)
		log_warn("dom-%d.lock: %s", d->domid, strerror(errno));
}

/* Boot: write pages 1..touch with the content mix, in chunks, parking
 * between chunks. Returns false if the domain stops meanwhile. */
static bool boot_touch(struct dom *d, struct rng *r)
{
	struct be_workload wl;
	pthread_mutex_lock(&d->mu);
	wl = d->cfg.dc_workload;
	pthread_mutex_unlock(&d->mu);
	uint64_t end = 1 + wl.wl_touch_pages;
	uint64_t p = 1;
	while (p < end) {
		if (guest_checkpoint(d) == CK_STOP)
			return false;
		uint64_t lim = held_pages(d);
		if (end > lim)
			end = lim;
		if (p >= end)
			break;
		uint64_t n = end - p < BOOT_CHUNK_PAGES ? end - p : BOOT_CHUNK_PAGES;
		unsigned char *base = d->ram + (p << SIMDOM_PAGE_SHIFT);
		(void)madvise(base, n << SIMDOM_PAGE_SHIFT, MADV_POPULATE_WRITE);
		for (uint64_t i = 0; i < n; i++) {
			unsigned char *pg = base + (i << SIMDOM_PAGE_SHIFT);
			switch (page_class(d, p + i, &wl)) {
			case PC_ZERO:
				break; /* fresh memfd pages are zero already */
			case PC_TEXT:
				fill_text(d, r, pg, SIMDOM_PAGE_SIZE);
				break;
			case PC_RANDOM:
				fill_random(r, pg, SIMDOM_PAGE_SIZE);
				break;
			}
			mark_dirty(d, p + i);
		}
		__atomic_fetch_add(&d->sh->ss_dirty_total, n, __ATOMIC_RELAXED);
		p += n;
		if ((p << SIMDOM_PAGE_SHIFT) > __atomic_load_n(&d->sh->ss_populated, __ATOMIC_RELAXED))
			__atomic_store_n(&d->sh->ss_populated, p << SIMDOM_PAGE_SHIFT, __ATOMIC_RELEASE);
	}
	return true;
}

static void *workload_main(void *arg)
{
	struct dom *d = arg;
	struct rng r;
	rng_seed(&r, d->seed ^ (uint64_t)getpid() ^ now_ns());
	/* the boot thread touches the guest's pages first */
	while (!__atomic_load_n(&d->sh->ss_booted, __ATOMIC_ACQUIRE)) {
		if (guest_checkpoint(d) == CK_STOP)
			return NULL;
		dom_sleep_until(d, now_ns() + WL_TICK_NS);
	}
	uint64_t last = now_ns();
	double budget = 0;
	uint64_t batch = 0;
	for (;;) {
		enum ckpt ck = guest_checkpoint(d);
		if (ck == CK_STOP)
			break;
		uint64_t t = now_ns();
		if (ck == CK_RESUMED) { /* no catching up on time spent paused */
			last = t;
			budget = 0;
		}
		struct be_workload wl;
		uint32_t vcpus;
		pthread_mutex_lock(&d->mu);
		wl = d->cfg.dc_workload;
		uint64_t gen = d->cfg_gen;
		pthread_mutex_unlock(&d->mu);
		if (!wl.wl_dirty_pages_per_s) {
			dom_idle(d, gen);
			last = now_ns();
			budget = 0;
			continue;
		}
		vcpus = __atomic_load_n(&d->sh->ss_vcpus, __ATOMIC_RELAXED);
		uint32_t thr = __atomic_load_n(&d->sh->ss_throttle_pct, __ATOMIC_RELAXED);
		if (thr > 100)
			thr = 100;
		double rate = (double)wl.wl_dirty_pages_per_s * (100 - thr) / 100.0;
		budget += rate * (double)(t - last) / 1e9;
		last = t;
		if (budget > rate / 10 + 1) /* at most 100 ms of backlog */
			budget = rate / 10 + 1;
		uint64_t n = (uint64_t)budget;
		budget -= (double)n;
		uint64_t lim = held_pages(d);
		uint64_t ws = wl.wl_working_set_pages ? wl.wl_working_set_pages : lim;
		if (ws > lim)
			ws = lim;
		if (n > 0 && ws > 1) {
			uint64_t pg = 0;
			for (uint64_t i = 0; i < n; i++) {
				uint64_t x = rng_next(&r);
				pg = 1 + x % (ws - 1);
				unsigned off = (unsigned)((x >> 40) % (SIMDOM_PAGE_SIZE / SEG)) * SEG;
				unsigned char *p = d->ram + (pg << SIMDOM_PAGE_SHIFT) + off;
				switch (page_class(d, pg, &wl)) {
				case PC_ZERO:
					memset(p, 0, SEG); /* a guest zeroing a page */
					break;
				case PC_TEXT:
					fill_text(d, &r, p, SEG);
					break;
				case PC_RANDOM:
					fill_random(&r, p, SEG);
					break;
				}
				mark_dirty(d, pg);
			}
			__atomic_fetch_add(&d->sh->ss_dirty_total, n, __ATOMIC_RELAXED);
			if (vcpus < 1 || vcpus > SIMDOM_MAX_VCPUS)
				vcpus = 1;
			struct simdom_vcpu *vc = &d->sh->ss_vcpu[batch % vcpus];
			vc->vc_retired += n;
			vc->vc_rip = 0xffffffff81000000ull + ((pg << 4) & 0xffffff);
			vc->vc_rsp = 0xffffc90000000000ull + (batch & 0xfff) * 16;
			vc->vc_tsc = t;
			vc->vc_gpr[0] = pg;
			vc->vc_gpr[1] ^= rng_next(&r);
			vc->vc_gpr[2] = vc->vc_retired;
			batch++;
		}
		dom_sleep_until(d, t + WL_TICK_NS);
	}
	return NULL;
}

/* The writer's own view of a disk: a dup of its fd and a mapping of its
 * log (and of its snapshot's, when one is taken), so a concurrent
 * DISK_REMOVE or DISK_SNAPSHOT_END closes and unmaps only its copies. */
struct disk_view {
	int dv_fd;
	uint64_t *dv_log;
	uint64_t dv_bits;
	size_t dv_log_len;
	int dv_cow;	   /* the snapshot's file, or -1 */
	uint64_t *dv_kept; /* its kept bitmap (dv_log_len bytes) */
	unsigned char *dv_old; /* a block's old content, on its way to the snapshot */
};

static void disk_view_drop(struct disk_view *v)
{
	if (v->dv_fd >= 0)
		close(v->dv_fd);
	if (v->dv_log)
		munmap(v->dv_log, v->dv_log_len);
	if (v->dv_cow >= 0)
		close(v->dv_cow);
	if (v->dv_kept)
		munmap(v->dv_kept, v->dv_log_len);
	free(v->dv_old);
	*v = (struct disk_view){-1, NULL, 0, 0, -1, NULL, NULL};
}

static void *map_bits(int fd, size_t len)
{
	void *m = fd >= 0 ? mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
	return m == MAP_FAILED ? NULL : m;
}

/* Under d->mu: the writable disk on the lowest device (the guest's first
 * disk, wherever a switch-over put it in the list), or none (dv_fd -1). */
static void disk_view_take(struct dom *d, struct disk_view *v)
{
	disk_view_drop(v);
	int best = -1;
	for (int i = 0; i < d->cfg.dc_ndisks; i++)
		if (!d->cfg.dc_disks[i].bd_readonly && d->disk_fd[i] >= 0 &&
		    (best < 0 || strcmp(d->cfg.dc_disks[i].bd_device, d->cfg.dc_disks[best].bd_device) < 0))
			best = i;
	if (best < 0)
		return;
	v->dv_fd = dup(d->disk_fd[best]);
	v->dv_bits = d->disk_log_bits[best];
	v->dv_log_len = simdom_disk_log_bytes(v->dv_bits);
	v->dv_log = map_bits(d->disk_log_fd[best], v->dv_log_len);
	if (!v->dv_log)
		log_warn("disk %s: no dirty-block log: its writes are not tracked", d->cfg.dc_disks[best].bd_device);
	if (d->disk_cow_fd[best] >= 0) {
		v->dv_kept = map_bits(d->disk_kept_fd[best], v->dv_log_len);
		v->dv_old = xmalloc(SIMDOM_DISK_BLOCK);
		v->dv_cow = v->dv_kept ? dup(d->disk_cow_fd[best]) : -1;
		if (v->dv_cow < 0)
			log_warn("disk %s: its snapshot cannot be kept", d->cfg.dc_disks[best].bd_device);
	}
}

/* A snapshot is being taken: the old content of the blocks [off, off+len)
 * touches goes to it before they are overwritten, once each. A snapshot
 * file unlinked (its migration ended) takes no more. */
static void disk_keep_old(struct disk_view *v, uint64_t off, uint64_t len)
{
	if (v->dv_cow < 0 || !len)
		return;
	uint64_t b = off / SIMDOM_DISK_BLOCK, e = (off + len - 1) / SIMDOM_DISK_BLOCK;
	bool kept_any = false;
	for (; b <= e && b < v->dv_bits; b++) {
		uint64_t bit = 1ull << (b % 64);
		if (__atomic_load_n(&v->dv_kept[b / 64], __ATOMIC_ACQUIRE) & bit)
			continue;
		ssize_t r = pread(v->dv_fd, v->dv_old, SIMDOM_DISK_BLOCK, (off_t)(b * SIMDOM_DISK_BLOCK));
		bool zero = r <= 0 || (v->dv_old[0] == 0 && !memcmp(v->dv_old, v->dv_old + 1, (size_t)r - 1));
		if (!zero && pwrite(v->dv_cow, v->dv_old, (size_t)r, (off_t)(b * SIMDOM_DISK_BLOCK)) != r)
			log_warn("disk snapshot: block %" PRIu64 " not kept: %s", b, strerror(errno));
		__atomic_fetch_or(&v->dv_kept[b / 64], bit, __ATOMIC_RELEASE); /* before the new content */
		kept_any = true;
	}
	struct stat st;
	if (kept_any && fstat(v->dv_cow, &st) == 0 && st.st_nlink == 0) {
		close(v->dv_cow); /* its migration is over and removed it */
		v->dv_cow = -1;
	}
}

/* The guest's one way to write a disk: the old content kept for a
 * snapshot, the data, then its blocks marked dirty (a reader clears a log
 * word, then reads: a block written after that is marked again, so nothing
 * written is ever missed). */
static ssize_t disk_write(struct disk_view *v, const void *buf, size_t len, off_t off)
{
	disk_keep_old(v, (uint64_t)off, len);
	ssize_t w = pwrite(v->dv_fd, buf, len, off);
	if (w > 0)
		simdom_disk_mark(v->dv_log, v->dv_bits, (uint64_t)off, (uint64_t)w);
	return w;
}

static void *disk_main(void *arg)
{
	struct dom *d = arg;
	struct rng r;
	rng_seed(&r, d->seed ^ 0xd15cull ^ now_ns());
	unsigned char *buf = malloc(DISK_CHUNK);
	if (!buf)
		return NULL;
	fill_random(&r, buf, DISK_CHUNK);
	uint64_t last = now_ns(), gen = UINT64_MAX, size_at = 0;
	double budget = 0;
	struct disk_view v = {-1, NULL, 0, 0, -1, NULL, NULL};
	off_t size = 0;
	for (;;) {
		enum ckpt ck = guest_checkpoint(d);
		if (ck == CK_STOP)
			break;
		uint64_t t = now_ns();
		if (ck == CK_RESUMED) {
			last = t;
			budget = 0;
		}
		uint64_t rate, cgen;
		pthread_mutex_lock(&d->mu);
		rate = d->cfg.dc_workload.wl_disk_write_bytes_per_s;
		cgen = d->cfg_gen;
		if (gen != d->disk_gen) {
			gen = d->disk_gen;
			disk_view_take(d, &v);
			size_at = 0;
			d->disk_gen_seen = gen; /* a snapshot's instant: DISK_SNAPSHOT waits for it */
			pthread_cond_broadcast(&d->cv_parked);
		}
		pthread_mutex_unlock(&d->mu);
		if (v.dv_fd < 0 || !rate) {
			dom_idle(d, cgen);
			last = now_ns();
			budget = 0;
			continue;
		}
		if (t - size_at > 1000000000ull) {
			struct stat st;
			size = fstat(v.dv_fd, &st) == 0 ? st.st_size : 0;
			size_at = t;
		}
		budget += (double)rate * (double)(t - last) / 1e9;
		last = t;
		if (budget > (double)rate / 10 + DISK_CHUNK)
			budget = (double)rate / 10 + DISK_CHUNK;
		while (rate > 0 && size >= (off_t)SIMDOM_PAGE_SIZE && budget >= 1) {
			size_t len = budget < DISK_CHUNK ? (size_t)budget : DISK_CHUNK;
			if ((off_t)len > size)
				len = (size_t)size;
			uint64_t blocks = (uint64_t)(size - (off_t)len) / SIMDOM_PAGE_SIZE + 1;
			off_t off = (off_t)((rng_next(&r) % blocks) * SIMDOM_PAGE_SIZE);
			buf[rng_next(&r) % DISK_CHUNK] ^= 1;
			ssize_t w = disk_write(&v, buf, len, off);
			if (w <= 0) {
				log_warn("disk write: %s", strerror(errno));
				budget = 0;
				break;
			}
			budget -= (double)w;
			__atomic_fetch_add(&d->sh->ss_disk_bytes, (uint64_t)w, __ATOMIC_RELAXED);
		}
		dom_sleep_until(d, t + DISK_TICK_NS);
	}
	disk_view_drop(&v);
	free(buf);
	return NULL;
}

/* The boot thread, at the lowest priority. With wl_prealloc it first allocates all of RAM, as Xen
 * does at domain build, paused or not (MADV_POPULATE_WRITE, 16 MiB per
 * step); otherwise RAM is allocated as the guest touches it. Then, once
 * the domain first runs, the guest's boot-time touch. A restored domain
 * does not boot: its RAM comes from the migration. */
static void *boot_main(void *arg)
{
	struct dom *d = arg;
	/* nice 19: the guests' boots yield to the control path and running guests */
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
	const uint64_t step = 16ull << 20;
	for (uint64_t off = 0; d->cfg.dc_workload.wl_prealloc && off < d->ram_len; off += step) {
		if (__atomic_load_n(&d->stop, __ATOMIC_ACQUIRE))
			return NULL;
		uint64_t lim = held_pages(d) << SIMDOM_PAGE_SHIFT;
		if (off >= lim)
			break;
		uint64_t len = lim - off < step ? lim - off : step;
		if (madvise(d->ram + off, len, MADV_POPULATE_WRITE) != 0) {
			/* older kernels: allocate through the file, no faults, no content change */
			if (fallocate(d->ram_fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) != 0) {
				log_warn("populate: %s", strerror(errno));
				break;
			}
		}
		__atomic_store_n(&d->sh->ss_populated, off + len, __ATOMIC_RELEASE);
	}
	if (d->restore) {
		__atomic_store_n(&d->sh->ss_booted, 1, __ATOMIC_RELEASE);
		return NULL;
	}
	struct rng r;
	rng_seed(&r, d->seed ^ (uint64_t)getpid() ^ now_ns());
	if (guest_enter(d)) { /* parks until the first unpause */
		if (boot_touch(d, &r))
			__atomic_store_n(&d->sh->ss_booted, 1, __ATOMIC_RELEASE);
		guest_leave(d);
	}
	return NULL;
}

/* ---- setup ---- */
static int memfd_sized(const char *name, uint64_t len, void **map)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)len) != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	*map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (*map == MAP_FAILED) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int open_disk(const struct be_disk *bd, char *err, size_t errlen)
{
	int fd = open(bd->bd_path, (bd->bd_readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0)
		snprintf(err, errlen, "disk %.16s: cannot open %.180s: %s", bd->bd_device, bd->bd_path,
			 strerror(errno));
	return fd;
}

/* A disk's dirty-block log, sized for the disk as it is now (*bits: the
 * blocks it tracks); -1 with err. */
static int open_disk_log(int disk_fd, const struct be_disk *bd, uint64_t *bits, char *err, size_t errlen)
{
	struct stat st;
	void *m;
	*bits = fstat(disk_fd, &st) == 0 ? simdom_disk_blocks((uint64_t)st.st_size) : 0;
	int fd = memfd_sized("simdom-disk-log", simdom_disk_log_bytes(*bits), &m);
	if (fd < 0) {
		snprintf(err, errlen, "disk %.16s: no dirty-block log: %s", bd->bd_device, strerror(errno));
		return -1;
	}
	munmap(m, simdom_disk_log_bytes(*bits));
	return fd;
}

/* Disk i of the configuration opened, with its log; -1 with err. */
static int disk_open_slot(struct dom *d, int i, const struct be_disk *bd, char *err, size_t errlen)
{
	int fd = open_disk(bd, err, errlen);
	if (fd < 0)
		return -1;
	uint64_t bits = 0;
	int lfd = bd->bd_readonly ? -1 : open_disk_log(fd, bd, &bits, err, errlen);
	if (!bd->bd_readonly && lfd < 0) {
		close(fd);
		return -1;
	}
	d->disk_fd[i] = fd;
	d->disk_log_fd[i] = lfd;
	d->disk_log_bits[i] = bits;
	d->disk_cow_fd[i] = d->disk_kept_fd[i] = -1;
	return 0;
}

static void disk_snapshot_close(struct dom *d, int i)
{
	if (d->disk_cow_fd[i] >= 0)
		close(d->disk_cow_fd[i]);
	if (d->disk_kept_fd[i] >= 0)
		close(d->disk_kept_fd[i]);
	d->disk_cow_fd[i] = d->disk_kept_fd[i] = -1;
}

static void disk_close_slot(struct dom *d, int i)
{
	if (d->disk_fd[i] >= 0)
		close(d->disk_fd[i]);
	if (d->disk_log_fd[i] >= 0)
		close(d->disk_log_fd[i]);
	disk_snapshot_close(d, i);
	d->disk_fd[i] = d->disk_log_fd[i] = -1;
	d->disk_log_bits[i] = 0;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

static int dom_setup(struct dom *d, const struct simdom_boot *b, char *err, size_t errlen)
{
	const struct be_domain_config *c = &b->sb_cfg;
	d->cfg = *c;
	d->tick_ms = c->dc_workload.wl_heartbeat_ms;
	d->cfg.dc_uuid[BE_UUID_LEN - 1] = 0;
	d->cfg.dc_name[sizeof d->cfg.dc_name - 1] = 0;
	d->domid = b->sb_domid;
	d->restore = b->sb_restore != 0;
	d->ram_fd = d->dirty_fd = d->shared_fd = -1;
	for (int i = 0; i < SIMDOM_MAX_DISKS; i++)
		d->disk_fd[i] = d->disk_log_fd[i] = d->disk_cow_fd[i] = d->disk_kept_fd[i] = -1;
	if (c->dc_memory < SIMDOM_MIN_MEMORY || c->dc_ndisks < 0 ||
	    c->dc_ndisks > SIMDOM_MAX_DISKS || c->dc_vcpus < 1 || c->dc_vcpus > SIMDOM_MAX_VCPUS) {
		snprintf(err, errlen, "bad domain configuration");
		return -1;
	}
	d->npages = (c->dc_memory + SIMDOM_PAGE_SIZE - 1) >> SIMDOM_PAGE_SHIFT;
	d->ram_len = d->npages << SIMDOM_PAGE_SHIFT;
	d->dirty_len = simdom_dirty_bytes(d->npages);
	d->sh_len = simdom_shared_bytes();
	d->target = d->ram_len;
	d->seed = fnv1a(d->cfg.dc_uuid);
	void *m;
	if ((d->ram_fd = memfd_sized("simdom-ram", d->ram_len, &m)) < 0)
		goto syserr;
	d->ram = m;
	if ((d->dirty_fd = memfd_sized("simdom-dirty", d->dirty_len, &m)) < 0)
		goto syserr;
	d->dirty = m;
	if ((d->shared_fd = memfd_sized("simdom-shared", d->sh_len, &m)) < 0)
		goto syserr;
	d->sh = m;
	d->hb = (struct simdom_heartbeat *)(void *)d->ram;
	(void)madvise(d->dirty, d->dirty_len, MADV_POPULATE_WRITE);
	(void)madvise(d->sh, d->sh_len, MADV_POPULATE_WRITE);
	d->text = malloc(TEXT_POOL + SEG);
	if (!d->text)
		goto syserr;
	text_pool_init(d);

	struct simdom_shared *sh = d->sh;
	sh->ss_magic = SIMDOM_MAGIC;
	sh->ss_version = SIMDOM_PROTO_VERSION;
	sh->ss_state = BE_STATE_PAUSED;
	sh->ss_npages = d->npages;
	sh->ss_held_pages = d->npages;
	sh->ss_vcpus = (uint32_t)c->dc_vcpus;
	snprintf(sh->ss_cpu_vendor, sizeof sh->ss_cpu_vendor, "%s", c->dc_cpu_vendor);
	snprintf(sh->ss_featureset, sizeof sh->ss_featureset, "%s", c->dc_featureset);
	for (int i = 0; i < SIMDOM_MAX_VCPUS; i++) {
		struct simdom_vcpu *vc = &sh->ss_vcpu[i];
		vc->vc_online = i < c->dc_vcpus;
		vc->vc_rip = 0xfff0; /* reset vector */
		vc->vc_rflags = 0x2;
		vc->vc_cr0 = 0x60000010;
		vc->vc_efer = 0;
	}
	for (int i = 0; i < c->dc_ndisks; i++)
		if (disk_open_slot(d, i, &c->dc_disks[i], err, errlen) < 0)
			return -1;
	return 0;
syserr:
	snprintf(err, errlen, "cannot allocate %" PRIu64 " MiB of guest memory: %s",
		 d->ram_len >> 20, strerror(errno));
	return -1;
}

/* The control socket lives in the abstract namespace under the
 * hypervisor's key (simdom_sock_name): it exists exactly as long as this
 * process, and no file the agent keeps can make it vanish or linger. A
 * second process for the same domid fails to bind. */
static int listen_sock(struct dom *d, const char *hvkey, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	socklen_t len = simdom_sock_addr(hvkey, d->domid, &sa);
	snprintf(d->sock_name, sizeof d->sock_name, "@%s", sa.sun_path + 1);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&sa, len) != 0 || listen(fd, 64) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		goto fail;
	}
	return fd;
fail:
	snprintf(err, errlen, "control socket %s: %s", d->sock_name,
		 errno == EADDRINUSE ? "another process runs this domain" : strerror(errno));
	return -1;
}

static void fill_info(struct dom *d, struct simdom_info *si)
{
	memset(si, 0, sizeof *si);
	si->in_domid = d->domid;
	si->in_state = __atomic_load_n(&d->sh->ss_state, __ATOMIC_ACQUIRE);
	si->in_pid = (int32_t)getpid();
	si->in_vcpus = (int32_t)d->sh->ss_vcpus;
	si->in_memory_static = d->ram_len;
	si->in_memory_target = d->target;
	si->in_memory_held = held_pages(d) << SIMDOM_PAGE_SHIFT;
	si->in_heartbeat = __atomic_load_n(&d->hb->hb_counter, __ATOMIC_ACQUIRE);
	si->in_heartbeat_ns = __atomic_load_n(&d->hb->hb_time_ns, __ATOMIC_RELAXED);
	si->in_dirty_total = __atomic_load_n(&d->sh->ss_dirty_total, __ATOMIC_RELAXED);
	si->in_disk_bytes = __atomic_load_n(&d->sh->ss_disk_bytes, __ATOMIC_RELAXED);
	si->in_populated = __atomic_load_n(&d->sh->ss_populated, __ATOMIC_RELAXED);
	si->in_throttle_pct = d->sh->ss_throttle_pct;
	si->in_booted = __atomic_load_n(&d->sh->ss_booted, __ATOMIC_RELAXED);
	si->in_restore = d->restore;
	memcpy(si->in_uuid, d->cfg.dc_uuid, BE_UUID_LEN);
	memcpy(si->in_name, d->cfg.dc_name, sizeof si->in_name);
	pthread_mutex_lock(&d->mu);
	si->in_workload = d->cfg.dc_workload;
	si->in_ndisks = d->cfg.dc_ndisks;
	memcpy(si->in_disks, d->cfg.dc_disks, sizeof si->in_disks);
	pthread_mutex_unlock(&d->mu);
}

static int check_workload(const struct be_workload *wl, char *err, size_t errlen)
{
	if (wl->wl_pct_zero < 0 || wl->wl_pct_text < 0 || wl->wl_pct_random < 0 ||
	    wl->wl_pct_zero + wl->wl_pct_text + wl->wl_pct_random != 100) {
		snprintf(err, errlen, "workload content mix %d/%d/%d does not sum to 100",
			 wl->wl_pct_zero, wl->wl_pct_text, wl->wl_pct_random);
		return -1;
	}
	return 0;
}

static int set_memory_target(struct dom *d, uint64_t bytes, char *err, size_t errlen)
{
	if (bytes < SIMDOM_MIN_MEMORY || bytes > d->ram_len) {
		snprintf(err, errlen,
			 "memory target %" PRIu64 " bytes out of range %u..%" PRIu64
			 " (the static size)",
			 bytes, SIMDOM_MIN_MEMORY, d->ram_len);
		return -1;
	}
	uint64_t pages = (bytes + SIMDOM_PAGE_SIZE - 1) >> SIMDOM_PAGE_SHIFT;
	uint64_t old = held_pages(d);
	if (pages < old) {
		/* the balloon inflates: park the guest, hand the top pages back */
		bool was_running = d->sh->ss_state == BE_STATE_RUNNING;
		if (was_running && dom_pause(d) != 0) {
			snprintf(err, errlen, "guest did not quiesce for ballooning");
			return -1;
		}
		__atomic_store_n(&d->sh->ss_held_pages, pages, __ATOMIC_RELEASE);
		if (fallocate(d->ram_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)(pages << SIMDOM_PAGE_SHIFT),
			      (off_t)((old - pages) << SIMDOM_PAGE_SHIFT)) != 0)
			log_warn("balloon: punch hole: %s", strerror(errno));
		for (uint64_t p = pages; p < old; p++) /* their log bits are meaningless now */
			__atomic_fetch_and(&d->dirty[p / 64], ~(1ull << (p % 64)), __ATOMIC_RELAXED);
		if (was_running)
			dom_unpause(d);
	} else if (pages > old) {
		(void)madvise(d->ram + (old << SIMDOM_PAGE_SHIFT),
			      (pages - old) << SIMDOM_PAGE_SHIFT, MADV_POPULATE_WRITE);
		__atomic_store_n(&d->sh->ss_held_pages, pages, __ATOMIC_RELEASE);
	}
	d->target = bytes;
	publish_held(d);
	return 0;
}

static int disk_add(struct dom *d, const struct be_disk *in, char *err, size_t errlen)
{
	struct be_disk bd = *in;
	bd.bd_vdi_uuid[BE_UUID_LEN - 1] = 0;
	bd.bd_path[sizeof bd.bd_path - 1] = 0;
	bd.bd_device[sizeof bd.bd_device - 1] = 0;
	pthread_mutex_lock(&d->mu);
	int n = d->cfg.dc_ndisks;
	bool dup = false;
	for (int i = 0; i < n; i++)
		dup |= strcmp(d->cfg.dc_disks[i].bd_device, bd.bd_device) == 0;
	pthread_mutex_unlock(&d->mu);
	if (dup) {
		snprintf(err, errlen, "device %s is already attached", bd.bd_device);
		return -1;
	}
	if (n >= SIMDOM_MAX_DISKS) {
		snprintf(err, errlen, "at most %d disks", SIMDOM_MAX_DISKS);
		return -1;
	}
	struct dom one = {0};
	one.disk_fd[0] = one.disk_log_fd[0] = one.disk_cow_fd[0] = one.disk_kept_fd[0] = -1;
	if (disk_open_slot(&one, 0, &bd, err, errlen) < 0)
		return -1;
	pthread_mutex_lock(&d->mu);
	d->cfg.dc_disks[n] = bd;
	d->disk_fd[n] = one.disk_fd[0];
	d->disk_log_fd[n] = one.disk_log_fd[0];
	d->disk_log_bits[n] = one.disk_log_bits[0];
	d->disk_cow_fd[n] = d->disk_kept_fd[n] = -1;
	d->cfg.dc_ndisks = n + 1;
	d->disk_gen++;
	cfg_changed(d);
	pthread_mutex_unlock(&d->mu);
	return 0;
}

static int disk_remove(struct dom *d, const char *dev, char *err, size_t errlen)
{
	int rc = -1;
	pthread_mutex_lock(&d->mu);
	for (int i = 0; i < d->cfg.dc_ndisks; i++) {
		if (strncmp(d->cfg.dc_disks[i].bd_device, dev, sizeof d->cfg.dc_disks[i].bd_device))
			continue;
		disk_close_slot(d, i);
		for (int j = i; j + 1 < d->cfg.dc_ndisks; j++) {
			d->cfg.dc_disks[j] = d->cfg.dc_disks[j + 1];
			d->disk_fd[j] = d->disk_fd[j + 1];
			d->disk_log_fd[j] = d->disk_log_fd[j + 1];
			d->disk_log_bits[j] = d->disk_log_bits[j + 1];
			d->disk_cow_fd[j] = d->disk_cow_fd[j + 1];
			d->disk_kept_fd[j] = d->disk_kept_fd[j + 1];
		}
		d->cfg.dc_ndisks--;
		d->disk_fd[d->cfg.dc_ndisks] = d->disk_log_fd[d->cfg.dc_ndisks] = -1;
		d->disk_cow_fd[d->cfg.dc_ndisks] = d->disk_kept_fd[d->cfg.dc_ndisks] = -1;
		d->disk_log_bits[d->cfg.dc_ndisks] = 0;
		memset(&d->cfg.dc_disks[d->cfg.dc_ndisks], 0, sizeof(struct be_disk));
		d->disk_gen++;
		cfg_changed(d);
		rc = 0;
		break;
	}
	pthread_mutex_unlock(&d->mu);
	if (rc != 0)
		snprintf(err, errlen, "no disk on device %.16s", dev);
	return rc;
}

/* The log of the writable disk holding VDI vdi, into fds[0]: 1, else 0
 * with err. */
static int disk_log_fd(struct dom *d, const char *vdi, int *fds, char *err, size_t errlen)
{
	int n = 0;
	pthread_mutex_lock(&d->mu);
	for (int i = 0; i < d->cfg.dc_ndisks && !n; i++)
		if (strncmp(d->cfg.dc_disks[i].bd_vdi_uuid, vdi, BE_UUID_LEN) == 0 && d->disk_log_fd[i] >= 0) {
			fds[0] = d->disk_log_fd[i];
			n = 1;
		}
	pthread_mutex_unlock(&d->mu);
	if (!n)
		snprintf(err, errlen, "no writable disk holds VDI %.40s", vdi);
	return n;
}

/* The writable disk holding VDI vdi (under d->mu), or -1. */
static int disk_of(struct dom *d, const char *vdi)
{
	for (int i = 0; i < d->cfg.dc_ndisks; i++)
		if (strncmp(d->cfg.dc_disks[i].bd_vdi_uuid, vdi, BE_UUID_LEN) == 0 && d->disk_log_fd[i] >= 0)
			return i;
	return -1;
}

/* DISK_SNAPSHOT: from the instant the writer takes it, the old content of
 * each block goes to the file before the block is overwritten; answers
 * with the kept bitmap (fds[0]): 1, else 0 with err. */
static int disk_snapshot(struct dom *d, const struct be_disk *bd, int *fds, char *err, size_t errlen)
{
	int cow = open(bd->bd_path, O_RDWR | O_CLOEXEC), kept = -1;
	void *m;
	pthread_mutex_lock(&d->mu);
	int i = disk_of(d, bd->bd_vdi_uuid);
	uint64_t len = i >= 0 ? simdom_disk_log_bytes(d->disk_log_bits[i]) : 0;
	if (i < 0 || cow < 0 || d->disk_cow_fd[i] >= 0 || (kept = memfd_sized("simdom-disk-kept", len, &m)) < 0) {
		snprintf(err, errlen, "%s", i < 0 ? "no writable disk holds that VDI" : cow < 0 ? strerror(errno)
					   : d->disk_cow_fd[i] >= 0 ? "a snapshot of it is being taken already"
								     : "no memory for its bitmap");
		pthread_mutex_unlock(&d->mu);
		if (cow >= 0)
			close(cow);
		return 0;
	}
	munmap(m, len);
	d->disk_cow_fd[i] = cow;
	d->disk_kept_fd[i] = kept;
	uint64_t gen = ++d->disk_gen;
	cfg_changed(d);
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 1; /* a paused guest writes nothing meanwhile: its snapshot starts when it runs */
	while (d->disk_gen_seen < gen && !d->stop && pthread_cond_timedwait(&d->cv_parked, &d->mu, &dl) == 0)
		;
	pthread_mutex_unlock(&d->mu);
	fds[0] = kept;
	return 1;
}

static void disk_snapshot_end(struct dom *d, const char *vdi)
{
	pthread_mutex_lock(&d->mu);
	int i = disk_of(d, vdi);
	if (i >= 0 && d->disk_cow_fd[i] >= 0) {
		disk_snapshot_close(d, i);
		d->disk_gen++;
		cfg_changed(d);
	}
	pthread_mutex_unlock(&d->mu);
}

static void stop_threads(struct dom *d)
{
	pthread_mutex_lock(&d->mu);
	__atomic_store_n(&d->stop, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&d->cv_run);
	pthread_cond_broadcast(&d->cv_wake);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->th_hb, NULL);
	pthread_join(d->th_wl, NULL);
	pthread_join(d->th_disk, NULL);
	if (d->have_pop)
		pthread_join(d->th_pop, NULL);
}

/* The guest shut down: mark it, drop the socket, exit. */
static void clean_shutdown(struct dom *d)
{
	stop_threads(d);
	__atomic_store_n(&d->sh->ss_state, BE_STATE_SHUTDOWN, __ATOMIC_RELEASE);
	char name[64];
	snprintf(name, sizeof name, "dom-%d.shutdown", d->domid);
	int fd = openat(d->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dprintf(fd, "%" PRIu64 "\n", now_ns());
		close(fd);
	}
	log_info("domain %d (%s) shut down", d->domid, d->cfg.dc_name);
}

static bool send_resp(int fd, const struct simdom_resp *rs, const int *fds, int nfds)
{
	struct iovec iov = {.iov_base = (void *)rs, .iov_len = sizeof *rs};
	union {
		char buf[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds > 0) {
		memset(&u, 0, sizeof u);
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
	}
	return sendmsg(fd, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof *rs;
}

/* Handles one request; returns true when the domain is to exit after answering. */
static bool handle(struct dom *d, int cfd, const struct simdom_req *rq, ssize_t len)
{
	struct simdom_resp *rs = calloc(1, sizeof *rs);
	if (!rs)
		return false;
	rs->rs_magic = SIMDOM_MAGIC;
	rs->rs_version = SIMDOM_PROTO_VERSION;
	char *err = rs->rs_error;
	size_t el = sizeof rs->rs_error;
	int rc = 0, fds[3], nfds = 0;
	bool exit_after = false;
	if (len != (ssize_t)sizeof *rq || rq->rq_magic != SIMDOM_MAGIC ||
	    rq->rq_version != SIMDOM_PROTO_VERSION) {
		snprintf(err, el, "bad request (size %zd, version %u; this domain speaks version %u)",
			 len, len >= 8 ? rq->rq_version : 0, SIMDOM_PROTO_VERSION);
		rc = -1;
		goto out;
	}
	rs->rs_type = rq->rq_type;
	uint32_t state = __atomic_load_n(&d->sh->ss_state, __ATOMIC_ACQUIRE);
	switch ((enum simdom_req_type)rq->rq_type) {
	case SIMDOM_REQ_INFO:
		break;
	case SIMDOM_REQ_PAUSE:
		if (state == BE_STATE_RUNNING && dom_pause(d) != 0) {
			snprintf(err, el, "guest threads did not stop within 5 s");
			rc = -1;
		}
		break;
	case SIMDOM_REQ_UNPAUSE:
		if (state == BE_STATE_PAUSED)
			dom_unpause(d);
		break;
	case SIMDOM_REQ_SHUTDOWN:
		clean_shutdown(d);
		exit_after = true;
		break;
	case SIMDOM_REQ_SET_THROTTLE:
		if (rq->rq_value > 100) {
			snprintf(err, el, "throttle %" PRIu64 "%% out of range 0..100", rq->rq_value);
			rc = -1;
		} else {
			__atomic_store_n(&d->sh->ss_throttle_pct, (uint32_t)rq->rq_value,
					 __ATOMIC_RELEASE);
		}
		break;
	case SIMDOM_REQ_SET_MEMORY_TARGET:
		rc = set_memory_target(d, rq->rq_value, err, el);
		break;
	case SIMDOM_REQ_SET_VCPUS:
		if (rq->rq_value < 1 || rq->rq_value > SIMDOM_MAX_VCPUS) {
			snprintf(err, el, "vcpus %" PRIu64 " out of range 1..%d", rq->rq_value,
				 SIMDOM_MAX_VCPUS);
			rc = -1;
		} else {
			for (uint64_t i = 0; i < SIMDOM_MAX_VCPUS; i++)
				d->sh->ss_vcpu[i].vc_online = i < rq->rq_value;
			__atomic_store_n(&d->sh->ss_vcpus, (uint32_t)rq->rq_value, __ATOMIC_RELEASE);
		}
		break;
	case SIMDOM_REQ_DISK_ADD:
		rc = disk_add(d, &rq->rq_disk, err, el);
		break;
	case SIMDOM_REQ_DISK_REMOVE:
		rc = disk_remove(d, rq->rq_disk.bd_device, err, el);
		break;
	case SIMDOM_REQ_GET_FDS:
		fds[0] = d->ram_fd;
		fds[1] = d->dirty_fd;
		fds[2] = d->shared_fd;
		nfds = 3;
		break;
	case SIMDOM_REQ_DISK_LOG:
		nfds = disk_log_fd(d, rq->rq_disk.bd_vdi_uuid, fds, err, el);
		rc = nfds == 1 ? 0 : -1;
		break;
	case SIMDOM_REQ_DISK_SNAPSHOT:
		nfds = disk_snapshot(d, &rq->rq_disk, fds, err, el);
		rc = nfds == 1 ? 0 : -1;
		break;
	case SIMDOM_REQ_DISK_SNAPSHOT_END:
		disk_snapshot_end(d, rq->rq_disk.bd_vdi_uuid);
		break;
	case SIMDOM_REQ_SET_WORKLOAD:
		rc = check_workload(&rq->rq_workload, err, el);
		if (rc == 0) {
			pthread_mutex_lock(&d->mu);
			d->cfg.dc_workload = rq->rq_workload;
			__atomic_store_n(&d->tick_ms, rq->rq_workload.wl_heartbeat_ms, __ATOMIC_RELAXED);
			cfg_changed(d);
			pthread_mutex_unlock(&d->mu);
		}
		break;
	default:
		snprintf(err, el, "unknown request type %u", rq->rq_type);
		rc = -1;
	}
out:
	rs->rs_status = rc;
	if (rc != 0)
		nfds = 0;
	fill_info(d, &rs->rs_info);
	if (!send_resp(cfd, rs, fds, nfds))
		log_warn("answer to request %u: %s", rq->rq_type, strerror(errno));
	free(rs);
	return exit_after;
}

/* Everything dom_setup may have made (safe on a half-made domain). */
static void dom_release(struct dom *d)
{
	if (d->ram)
		munmap(d->ram, d->ram_len);
	if (d->dirty)
		munmap(d->dirty, d->dirty_len);
	if (d->sh)
		munmap(d->sh, d->sh_len);
	int fds[] = {d->ram_fd, d->dirty_fd, d->shared_fd};
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	for (int i = 0; i < SIMDOM_MAX_DISKS; i++)
		disk_close_slot(d, i);
	free(d->text);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv_run);
	pthread_cond_destroy(&d->cv_wake);
	pthread_cond_destroy(&d->cv_parked);
	free(d);
}

static void usage(void)
{
	fprintf(stderr, "usage: pool-simdom --state-dir DIR --hv KEY --domid N --boot-fd FD [--uuid UUID]\n"
			"(started by the agent's sim backend)\n");
}

int main(int argc, char **argv)
{
	util_json_init(); /* out of memory ends the domain, in jansson too */
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("pool-simdom %s\n", POOLD_VERSION);
		return 0;
	}
	const char *state_dir = NULL, *uuid = "", *hvkey = NULL;
	int domid = -1, boot_fd = -1;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--state-dir") == 0)
			state_dir = argv[i + 1];
		else if (strcmp(argv[i], "--domid") == 0)
			domid = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--boot-fd") == 0)
			boot_fd = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--uuid") == 0)
			uuid = argv[i + 1];
		else if (strcmp(argv[i], "--hv") == 0)
			hvkey = argv[i + 1];
	}
	if (!state_dir || !hvkey || domid < 0 || boot_fd < 0 || argc % 2 == 0) {
		usage();
		return 2;
	}
	(void)uuid; /* on the command line for ps(1) only */
	if (boot_fd > 2)
		close_range((unsigned)boot_fd + 1, ~0u, 0);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	char prog[32];
	snprintf(prog, sizeof prog, "simdom-%d", domid);
	log_init(prog, LOG_LVL_INFO);

	int dirfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0 || fchdir(dirfd) != 0) {
		log_error("state dir %s: %s", state_dir, strerror(errno));
		return 1;
	}
	char logname[64];
	snprintf(logname, sizeof logname, "dom-%d.log", domid);
	int lfd = openat(dirfd, logname, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (lfd >= 0) {
		dup2(lfd, STDOUT_FILENO);
		dup2(lfd, STDERR_FILENO);
		close(lfd);
	}

	struct simdom_boot *boot = calloc(1, sizeof *boot);
	struct simdom_resp *rs = calloc(1, sizeof *rs);
	struct dom *d = calloc(1, sizeof *d);
	ssize_t n = -1;
	if (boot && rs && d)
		n = recv(boot_fd, boot, sizeof *boot, 0);
	if (n != (ssize_t)sizeof *boot || boot->sb_magic != SIMDOM_MAGIC ||
	    boot->sb_version != SIMDOM_PROTO_VERSION || boot->sb_domid != domid) {
		log_error("bad boot message (%zd bytes)", n);
		free(boot);
		free(rs);
		free(d);
		close(dirfd);
		return 1;
	}
	d->dirfd = dirfd;
	char lockname[64];
	snprintf(lockname, sizeof lockname, SIMDOM_LOCK_FMT, domid);
	d->lock_fd = openat(dirfd, lockname, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (d->lock_fd < 0 || flock(d->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		snprintf(rs->rs_error, sizeof rs->rs_error, "%s: %s", lockname,
			 errno == EWOULDBLOCK ? "another process runs this domain" : strerror(errno));
		log_error("%s", rs->rs_error);
		rs->rs_magic = SIMDOM_MAGIC;
		rs->rs_version = SIMDOM_PROTO_VERSION;
		rs->rs_status = -1;
		send_resp(boot_fd, rs, NULL, 0);
		return 1;
	}
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv_run, NULL);
	pthread_cond_init(&d->cv_parked, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cv_wake, &ca);
	pthread_condattr_destroy(&ca);
	d->pause_req = true; /* created paused */
	rs->rs_magic = SIMDOM_MAGIC;
	rs->rs_version = SIMDOM_PROTO_VERSION;
	int lsock = -1;
	if (dom_setup(d, boot, rs->rs_error, sizeof rs->rs_error) != 0 ||
	    check_workload(&d->cfg.dc_workload, rs->rs_error, sizeof rs->rs_error) != 0 ||
	    (lsock = listen_sock(d, hvkey, rs->rs_error, sizeof rs->rs_error)) < 0) {
		log_error("domain %d not created: %s", domid, rs->rs_error);
		rs->rs_status = -1;
		send_resp(boot_fd, rs, NULL, 0);
		free(boot);
		free(rs);
		dom_release(d);
		close(dirfd);
		return 1;
	}
	free(boot);

	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	pthread_sigmask(SIG_BLOCK, &ss, NULL); /* threads inherit the mask */
	int sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);

	d->nguest = 3;
	if (pthread_create(&d->th_hb, NULL, heartbeat_main, d) != 0 ||
	    pthread_create(&d->th_wl, NULL, workload_main, d) != 0 ||
	    pthread_create(&d->th_disk, NULL, disk_main, d) != 0) {
		log_error("cannot start guest threads");
		return 1; /* exit releases everything */
	}
	d->have_pop = pthread_create(&d->th_pop, NULL, boot_main, d) == 0;

	publish_held(d);
	/* Created (paused) once the guest threads are parked. */
	pthread_mutex_lock(&d->mu);
	while (d->parked < d->nguest)
		pthread_cond_wait(&d->cv_parked, &d->mu);
	pthread_mutex_unlock(&d->mu);
	log_info("domain %d %s (%s): %" PRIu64 " MiB, %d vCPUs%s", domid, d->cfg.dc_uuid,
		 d->cfg.dc_name, d->ram_len >> 20, d->cfg.dc_vcpus,
		 d->restore ? ", incoming (restore)" : "");
	fill_info(d, &rs->rs_info);
	rs->rs_status = 0;
	send_resp(boot_fd, rs, NULL, 0);
	close(boot_fd);

	struct pollfd pf[2 + MAX_CLIENTS];
	int nclients = 0;
	struct simdom_req *rq = calloc(1, sizeof *rq);
	bool done = false;
	while (!done && rq) {
		pf[0] = (struct pollfd){.fd = lsock, .events = POLLIN};
		pf[1] = (struct pollfd){.fd = sfd, .events = POLLIN};
		int np = 2 + nclients;
		if (poll(pf, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			break;
		}
		if (pf[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
				log_info("signal %u: shutting down", si.ssi_signo);
				clean_shutdown(d);
				done = true;
				break;
			}
		}
		for (int i = 2; i < np && !done; i++) {
			if (!pf[i].revents)
				continue;
			ssize_t m = recv(pf[i].fd, rq, sizeof *rq, MSG_DONTWAIT);
			if (m < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (m <= 0) {
				close(pf[i].fd);
				pf[i].fd = -1;
				continue;
			}
			done = handle(d, pf[i].fd, rq, m);
		}
		/* compact the client list */
		int k = 2;
		for (int i = 2; i < np; i++)
			if (pf[i].fd >= 0)
				pf[k++] = pf[i];
		nclients = k - 2;
		if (!done && (pf[0].revents & POLLIN)) {
			int c = accept4(lsock, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
			if (c >= 0 && nclients < MAX_CLIENTS) {
				pf[2 + nclients] = (struct pollfd){.fd = c, .events = POLLIN};
				nclients++;
			} else if (c >= 0) {
				log_warn("too many control clients");
				close(c);
			}
		}
	}
	for (int i = 2; i < 2 + nclients; i++)
		if (pf[i].fd >= 0)
			close(pf[i].fd);
	free(rq);
	free(rs);
	if (!d->stop)
		stop_threads(d);
	/* the memfds go with the process (and with the last agent mapping) */
	dom_release(d);
	close(lsock);
	if (sfd >= 0)
		close(sfd);
	close(dirfd);
	return 0;
}
