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

#define BE_UUID_LEN 37
#define BE_FEATURESET_LEN 512

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

/* What the simulated guest does (sim only; ignored by xen). */
struct be_workload {
	uint64_t wl_touch_pages;      /* pages written once at boot (mixed content) */
	uint64_t wl_dirty_pages_per_s;/* pages rewritten per second, steady state */
	uint64_t wl_working_set_pages;/* the dirtying stays within the first N pages (0 = all) */
	int wl_pct_zero;              /* content mix of touched pages, percent: zero, */
	int wl_pct_text;              /* text-like (compressible) and */
	int wl_pct_random;            /* random (incompressible); sums to 100 */
	uint64_t wl_disk_write_bytes_per_s; /* written to the first disk, if any */
};

struct be_disk {
	char bd_vdi_uuid[BE_UUID_LEN];
	char bd_path[512];           /* the VDI's file (file SR) */
	char bd_device[16];          /* "xvda", "0" */
	bool bd_readonly;
};

struct be_domain_config {
	char dc_uuid[BE_UUID_LEN];
	char dc_name[128];
	uint64_t dc_memory;          /* bytes (static max: the RAM the domain gets) */
	int dc_vcpus;
	char dc_cpu_vendor[16];      /* the levelled CPU the guest sees */
	char dc_featureset[BE_FEATURESET_LEN];
	struct be_workload dc_workload;
	struct be_disk dc_disks[8];
	int dc_ndisks;
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
};

struct backend;

struct backend_ops {
	const char *bo_name;
	/* host */
	int (*bo_host_info)(struct backend *be, struct be_host_info *out);
	/* domains */
	int (*bo_domain_create)(struct backend *be, const struct be_domain_config *cfg, int *domid);
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
};

struct backend {
	const struct backend_ops *be_ops;
	char be_error[512];
	void *be_priv;
};

const char *backend_error(const struct backend *be);

/* backend_sim.c: state_dir holds one control socket per domain (and
 * survives agent restarts); simdom_path is the domain program
 * (bin/pool-simdom); the host's simulated memory, CPU vendor and feature set
 * come from the agent's settings. NULL with a reason in err. */
struct backend *backend_sim_new(const char *state_dir, const char *simdom_path, uint64_t host_memory,
				int cpus, const char *cpu_vendor, const char *featureset, char *err,
				size_t errlen);

#endif
