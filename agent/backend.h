/*
 * backend.h - the hypervisor behind an agent, shaped after what libxl offers.
 *
 * An agent drives exactly one backend: `xen` (libxl + xenstore, on a dom0)
 * or `sim` (a memory-faithful simulated hypervisor, where no Xen runs).
 * Nothing above this interface knows which one it talks to. Every call
 * returns 0 on success or -1 with a one-line reason in the backend's error
 * buffer (backend_error()); none prints or exits.
 *
 * Domains are named by domid (an int the backend assigns, as Xen does) and
 * carry the VM's uuid. A domain is created paused and runs after unpause.
 * Domains outlive the agent: a restarted agent finds them with
 * domain_list() and adopts them.
 */
#ifndef BACKEND_H
#define BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "domain_config.h"

enum be_state {
	BE_STATE_PAUSED,
	BE_STATE_RUNNING,
	BE_STATE_SHUTDOWN, /* the guest shut down; the domain awaits destroy */
	BE_STATE_CRASHED,  /* the domain's process died without a clean shutdown */
};

struct be_host_info {
	uint64_t hi_total_memory;   /* bytes */
	uint64_t hi_free_memory;    /* bytes not used by domains (nor reserved) */
	int hi_cpus;
	char hi_cpu_vendor[16];      /* "GenuineIntel", "AuthenticAMD" */
	char hi_featureset[BE_FEATURESET_LEN]; /* XAPI form: "1fcbfbff-f7fa3223-..." */
	char hi_backend[8];          /* "sim" | "xen" */
};

struct be_domain_info {
	int di_domid;
	char di_uuid[BE_UUID_LEN];
	char di_name[128];
	enum be_state di_state;
	uint64_t di_memory;          /* bytes of RAM the domain holds */
	uint64_t di_memory_target;   /* balloon target */
	int di_vcpus;
	pid_t di_pid;                /* sim: the domain's process; xen: 0 */
	uint64_t di_heartbeat;       /* sim: the guest's heartbeat counter */
	uint64_t di_dirty_pages;     /* sim: pages dirtied since boot */
	uint64_t di_heartbeat_ns;    /* sim: CLOCK_MONOTONIC of the last heartbeat */
};

struct backend;

struct backend_ops {
	const char *bo_name;
	/* host */
	int (*bo_host_info)(struct backend *be, struct be_host_info *out);
	/* domains */
	int (*bo_domain_create)(struct backend *be, const struct be_domain_config *cfg, int *domid);
	/* libxl_domain_create_restore: a domain for an incoming migration,
	 * created paused with its RAM empty; the guest does not boot. The
	 * receiver fills RAM and vCPU state (sim: backend_sim_map) and then
	 * unpauses it; the guest continues from that state. NULL when the
	 * backend cannot (the xen backend receives libxl's own stream). */
	int (*bo_domain_create_restore)(struct backend *be, const struct be_domain_config *cfg,
					int *domid);
	int (*bo_domain_unpause)(struct backend *be, int domid);
	int (*bo_domain_pause)(struct backend *be, int domid);
	/* Ask the guest to shut down; waits at most timeout_ms for it. */
	int (*bo_domain_shutdown)(struct backend *be, int domid, int timeout_ms);
	/* Gone at once, memory released (hard shutdown). */
	int (*bo_domain_destroy)(struct backend *be, int domid);
	/* Every domain (malloc'ed array, caller frees). */
	int (*bo_domain_list)(struct backend *be, struct be_domain_info **out, int *n);
	int (*bo_domain_info)(struct backend *be, int domid, struct be_domain_info *out);
	int (*bo_set_memory_target)(struct backend *be, int domid, uint64_t bytes);
	int (*bo_set_vcpus)(struct backend *be, int domid, int vcpus);
	int (*bo_disk_add)(struct backend *be, int domid, const struct be_disk *disk);
	int (*bo_disk_remove)(struct backend *be, int domid, const char *device);
	void (*bo_free)(struct backend *be);
	/* Optional (NULL: the backend has none, as sim): an fd that becomes
	 * readable when a domain may have died (xen: the @releaseDomain
	 * xenstore watch), for the agent's event loop; -1 when none. Once it
	 * is readable, bo_watch_drain consumes what is pending (returns how
	 * many events) and the agent reports its domains. */
	int (*bo_watch_fd)(struct backend *be);
	int (*bo_watch_drain)(struct backend *be);
};

struct backend {
	const struct backend_ops *be_ops;
	char be_error[512];
	void *be_priv;
};

/* Calls on one struct backend must not overlap (the agent serialises
 * them); be_error holds the reason of the last failed call. */
const char *backend_error(const struct backend *be);

/* backend.c: helpers shared by the backends. */
void be_set_error(struct backend *be, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* XAPI feature-set text ("1fcbfbff-f7fa3223-...") -> words; the count, or
 * -1 when malformed. "" is 0 words. */
int be_featureset_parse(const char *text, uint32_t *words, int max);
/* true when every feature in `sub` is also in `super` (shorter sets are
 * zero-extended); false when either is malformed. */
bool be_featureset_subset(const char *sub, const char *super);
const char *be_state_name(enum be_state s);

/* backend_sim.c: state_dir holds one control socket per domain (and
 * survives agent restarts); simdom_path is the domain program
 * (bin/pool-simdom); the host's simulated memory, CPU vendor and feature set
 * come from the agent's settings. NULL with a reason in err.
 *
 * The backend keeps no domain table: every call reads STATE_DIR (records
 * dom-N.json) and asks the live domains, so a new backend on the same
 * directory (a restarted agent) sees and drives the same domains. A domain
 * whose process is gone without a clean shutdown is listed as CRASHED
 * (holding no memory; its stale socket is removed when noticed) until
 * domain_destroy removes its record, as a dead Xen domain stays until
 * destroyed; a guest that shut down is listed as SHUTDOWN the same way. */
struct backend *backend_sim_new(const char *state_dir, const char *simdom_path, uint64_t host_memory,
				int cpus, const char *cpu_vendor, const char *featureset, char *err,
				size_t errlen);

/* xen_choose.c: which backend runs. want is the `backend` setting (auto |
 * xen | sim); auto is xen when this build has Xen support and privcmd
 * exists. Returns "xen" or "sim", or NULL with ONE line in err saying what
 * is missing and what to install (xen asked for without Xen). */
#define BACKEND_XEN_PRIVCMD "/dev/xen/privcmd"
bool backend_xen_built(void);
const char *backend_choose(const char *want, const char *privcmd, bool xen_built, char *err, size_t errlen);

/* backend_xen.c: libxl + xenstore on a Xen 4.17 dom0. privcmd is the
 * hypervisor device checked first (BACKEND_XEN_PRIVCMD; tests pass another
 * path); state_dir gets each domain's libxl JSON and xl.cfg text. NULL with
 * one line in err when Xen is not there (or the build has no Xen support). */
struct backend *backend_xen_new(const char *state_dir, const char *privcmd, char *err, size_t errlen);

/*
 * sim only: the toolstack's view of a domain's memory (what Xen's
 * toolstack gets from xenforeignmemory + the log-dirty bitmap). The three
 * memfds come from the domain over its control socket (SCM_RIGHTS) and are
 * mapped MAP_SHARED, read-write; see simdom.h for the layouts:
 * sm_ram page 0 is the heartbeat page, sm_dirty has 1 bit per page (clear a
 * word with an atomic exchange, then read the pages it named), sm_shared
 * is a struct simdom_shared (status and the vCPU state a migration copies).
 * The mapping keeps the memory alive after the domain dies: unmap it.
 * Mappings are not populated: madvise(MADV_POPULATE_READ/WRITE) or
 * pread/pwrite the fds in bulk rather than faulting page by page.
 */
struct simdom_shared;
struct be_sim_map {
	int sm_domid;
	uint64_t sm_npages;	    /* RAM pages (4 KiB) */
	unsigned char *sm_ram;	    /* sm_npages * 4096 bytes */
	uint64_t *sm_dirty;	    /* (sm_npages + 63) / 64 words */
	struct simdom_shared *sm_shared;
	int sm_ram_fd, sm_dirty_fd, sm_shared_fd; /* kept open, O_CLOEXEC */
	size_t sm_ram_len, sm_dirty_len, sm_shared_len;
};
int backend_sim_map(struct backend *be, int domid, struct be_sim_map *out);
void backend_sim_unmap(struct be_sim_map *m);
/* The same on a thread of its own, at nice 19; m is emptied. Unmapping the
 * pages a migration faulted in, or freeing a destroyed guest's memory,
 * takes milliseconds (~4 for 64 MiB of data) that the caller need not
 * wait for. Where no thread can be had, at once. */
void backend_sim_unmap_later(struct be_sim_map *m);
/* Auto-converge: percent (0..100) of the guest's dirty rate taken away,
 * as QEMU's cpu-throttle-percentage; 0 = full speed. */
int backend_sim_set_throttle(struct backend *be, int domid, int pct);
/* A disk's dirty-block log (simdom.h: 1 bit per SIMDOM_DISK_BLOCK, set
 * after each guest write), mapped read-write: the disk of domain domid
 * that holds VDI vdi_uuid (writable disks only). Clear a word with an
 * atomic exchange, then read the blocks it named. */
struct be_sim_disk_log {
	int dl_fd;
	uint64_t *dl_bits;
	size_t dl_len; /* bytes: dl_len * 8 bits at most */
};
int backend_sim_disk_log(struct backend *be, int domid, const char *vdi_uuid, struct be_sim_disk_log *out);
/* A copy-on-write snapshot of that disk into the file path (sparse, the
 * disk's size) from now on (simdom.h): *kept maps its bitmap (a block's
 * bit set = its content at the snapshot's instant is in path). Ended with
 * backend_sim_disk_snapshot_end, or by unlinking path. */
int backend_sim_disk_snapshot(struct backend *be, int domid, const char *vdi_uuid, const char *path,
			      struct be_sim_disk_log *kept);
int backend_sim_disk_snapshot_end(struct backend *be, int domid, const char *vdi_uuid);
void backend_sim_disk_log_unmap(struct be_sim_disk_log *l);
/* The disks domain domid has now (at most max into out, *n of them). */
int backend_sim_disks(struct backend *be, int domid, struct be_disk *out, int max, int *n);
/* Change the running guest's workload (rates, working set, mix; no re-touch). */
int backend_sim_set_workload(struct backend *be, int domid, const struct be_workload *wl);

#endif
