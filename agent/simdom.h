/*
 * simdom.h - the sim hypervisor's domain program (bin/pool-simdom) and its
 * control protocol, shared by the domain (agent/simdom.c) and the backend
 * that drives it (agent/backend_sim.c).
 *
 * One process per domain, started detached (its own session, reparented to
 * init) so it outlives the agent, as a Xen domain outlives the toolstack.
 * It holds three memfds:
 *
 *   RAM     dc_memory bytes of guest memory. Page 0 is the heartbeat page
 *           (struct simdom_heartbeat at offset 0): the guest rewrites it
 *           every 1 ms and marks it dirty, so it migrates with the memory
 *           and a destination continues the counter where the source left
 *           it. Pages 1.. are the workload's.
 *   DIRTY   the dirty-page log: 1 bit per 4 KiB page of RAM (bit p%64 of
 *           64-bit word p/64), set by the guest with an atomic OR *after*
 *           it wrote the page. A reader (live migration) clears a word with
 *           an atomic exchange and only then reads the pages it named.
 *   SHARED  struct simdom_shared: status the domain publishes and the vCPU
 *           state a migration transfers. Not guest RAM, never dirty-logged.
 *
 * All three are sealed against shrinking and growing, so a mapping of them
 * can never SIGBUS.
 *
 * Each disk the domain opens gets a fourth kind of memfd, its dirty-block
 * log: 1 bit per SIMDOM_DISK_BLOCK bytes of the disk (same word layout as
 * DIRTY), set by the guest's disk writer with an atomic OR *after* its
 * pwrite returned. Every guest write goes through that one tracked path
 * (disk_write in simdom.c), so a storage migration's mirror (sr/mirror.c)
 * clears a word with an atomic exchange, then reads the blocks it named,
 * exactly as a RAM migration reads DIRTY. DISK_LOG hands the memfd out.
 *
 * A disk can have a copy-on-write snapshot (DISK_SNAPSHOT: storage
 * migration's temporary snapshot): before the guest first overwrites a
 * block after the snapshot's instant, disk_write copies the block's old
 * content into the snapshot file and sets the block's bit in the "kept"
 * bitmap (same layout), and only then writes. The disk as it was at the
 * instant is then: a block whose kept bit is set, from the snapshot file;
 * any other block, from the disk - read first, its kept bit checked after
 * the read (a block the guest began to overwrite meanwhile has its bit
 * set by then: its old content is in the snapshot). The snapshot is taken
 * at the instant the guest's writer picks it up (DISK_SNAPSHOT answers
 * after that), and stops when its file is unlinked or DISK_SNAPSHOT_END. Ballooning below the static size punches holes in RAM
 * (the pages go back to the host) and the guest stays below the target.
 *
 * Files in STATE_DIR (the backend's directory; "N" is the domid):
 *   next-domid        the next domid to hand out (domids are never reused)
 *   dom-N.json        written by the backend: uuid, name, config, pid
 *   dom-N.shutdown    written by the domain when the guest shut down cleanly
 *   dom-N.log         the domain program's stderr
 *   dom-N.lock        flock(LOCK_EX)ed by the domain process for its whole
 *                     life; holds the bytes of RAM it holds ("%20llu\n"), so
 *                     the backend accounts host memory without waking it
 *
 * The control socket is not a file: it is bound in the abstract namespace
 * as "pool-simdom/KEY/N" (simdom_sock_addr), KEY naming the backend (one
 * per host: a hash of its state directory). The kernel's list of bound
 * sockets (/proc/net/unix) is the hypervisor's list of live domains, as
 * Xen's domain list is: it cannot be lost with a file, nor outlive the
 * process.
 *
 * Protocol: SOCK_SEQPACKET, one fixed-size struct per message, typed by an
 * enum (in the style of OpenBSD's imsg). The client sends a struct
 * simdom_req, the domain answers one struct simdom_resp carrying the status,
 * a one-line error and a fresh struct simdom_info; GET_FDS's answer also
 * carries the three memfds (SCM_RIGHTS, in the order RAM, DIRTY, SHARED).
 * A connection may carry any number of requests, one at a time.
 *
 * Start: the backend passes a socket on fd 3 (--boot-fd) and sends one
 * struct simdom_boot; the domain sets up its memory and control socket and
 * answers one struct simdom_resp (status 0 = created, paused) or exits.
 * If exec itself fails, the child writes a 4-byte int (the errno) instead.
 */
#ifndef SIMDOM_H
#define SIMDOM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "backend.h"

#define SIMDOM_MAGIC 0x53494d44u	/* "SIMD" */
#define SIMDOM_PROTO_VERSION 4u /* 2: be_workload.wl_prealloc, dom-N.lock; 3: wl_heartbeat_ms;
				 * 4: be_disk.bd_sr_uuid, abstract control sockets */
#define SIMDOM_PAGE_SIZE 4096u
#define SIMDOM_PAGE_SHIFT 12
#define SIMDOM_MAX_VCPUS 64
#define SIMDOM_MAX_DISKS 8
#define SIMDOM_MIN_MEMORY (1u << 20)	/* smallest domain and balloon target */
#define SIMDOM_HB_MAGIC 0x5349444f4d48424bull /* heartbeat page is live */

#define SIMDOM_LOCK_FMT "dom-%d.lock"

/* Requests. rq_value carries the one number a request needs. */
enum simdom_req_type {
	SIMDOM_REQ_INFO = 1,
	SIMDOM_REQ_PAUSE,	     /* returns once no guest thread writes anymore */
	SIMDOM_REQ_UNPAUSE,
	SIMDOM_REQ_SHUTDOWN,	     /* clean guest shutdown: answer, then exit(0) */
	SIMDOM_REQ_SET_THROTTLE,     /* rq_value: 0..100, percent of the dirty rate taken away */
	SIMDOM_REQ_SET_MEMORY_TARGET,/* rq_value: bytes, SIMDOM_MIN_MEMORY..static size */
	SIMDOM_REQ_SET_VCPUS,	     /* rq_value: 1..SIMDOM_MAX_VCPUS online */
	SIMDOM_REQ_DISK_ADD,	     /* rq_disk */
	SIMDOM_REQ_DISK_REMOVE,	     /* rq_disk.bd_device */
	SIMDOM_REQ_GET_FDS,	     /* answer carries RAM, DIRTY, SHARED memfds */
	SIMDOM_REQ_SET_WORKLOAD,     /* rq_workload: new rates/working set (no re-touch) */
	SIMDOM_REQ_DISK_LOG,	     /* rq_disk.bd_vdi_uuid: answer carries that disk's dirty-block
				      * log memfd (added after version 4: no layout changed) */
	SIMDOM_REQ_DISK_SNAPSHOT,    /* rq_disk.bd_vdi_uuid, bd_path: a copy-on-write snapshot of that
				      * disk into the (sparse, same size) file bd_path from now on;
				      * answer carries its "kept" bitmap memfd */
	SIMDOM_REQ_DISK_SNAPSHOT_END,/* rq_disk.bd_vdi_uuid: the snapshot takes no more blocks */
};

/* Page 0 of guest RAM. Each field is written with a single 64-bit atomic
 * store; readers load each field atomically. */
struct simdom_heartbeat {
	uint64_t hb_magic;	/* SIMDOM_HB_MAGIC once the guest has run */
	uint64_t hb_counter;	/* +1 every tick (1 ms) while running */
	uint64_t hb_time_ns;	/* CLOCK_MONOTONIC of the last tick */
	uint64_t hb_ticks_late; /* ticks that ran > 1 ms late (scheduling noise) */
	uint64_t hb_max_gap_ns; /* the longest time between two ticks the guest saw
				 * (a pause, a migration's hand-over); anyone holding
				 * the RAM mapping may reset it to 0 */
};

/* "Registers-ish" state of one vCPU: what a migration transfers at the end.
 * The running guest changes it with every batch of work. 256 bytes. */
struct simdom_vcpu {
	uint64_t vc_online;
	uint64_t vc_rip, vc_rsp, vc_rflags;
	uint64_t vc_cr0, vc_cr3, vc_cr4, vc_efer;
	uint64_t vc_tsc;	/* CLOCK_MONOTONIC ns of its last batch */
	uint64_t vc_retired;	/* pages written by this vCPU */
	uint64_t vc_gpr[16];
	uint64_t vc_reserved[6];
};

/* The SHARED memfd. ss_magic..ss_populated are published by the domain
 * (read them, do not write them). The guest section below is the domain's
 * CPU state: a migration copies it from source to destination while both
 * are paused (a restored domain continues from it on unpause). */
struct simdom_shared {
	uint32_t ss_magic;
	uint32_t ss_version;
	uint32_t ss_state;	  /* enum be_state, as the domain sees itself */
	uint32_t ss_booted;	  /* boot-time touch finished (or restored) */
	uint64_t ss_npages;	  /* RAM pages (static size) */
	uint64_t ss_held_pages;	  /* pages below the balloon target */
	uint64_t ss_dirty_total;  /* page writes since boot (atomic) */
	uint64_t ss_disk_bytes;	  /* bytes written to the first disk */
	uint64_t ss_populated;	  /* bytes of RAM allocated in bulk so far: all of it
				   * with wl_prealloc, else the boot-touched range */
	uint32_t ss_throttle_pct;
	uint32_t ss_pad0;
	uint64_t ss_reserved0[7];
	/* guest CPU state (migrated) */
	uint32_t ss_vcpus;	  /* vCPUs online */
	uint32_t ss_pad1;
	char ss_cpu_vendor[16];
	char ss_featureset[BE_FEATURESET_LEN];
	uint64_t ss_reserved1[8];
	struct simdom_vcpu ss_vcpu[SIMDOM_MAX_VCPUS];
};

struct simdom_boot {
	uint32_t sb_magic;
	uint32_t sb_version;
	int32_t sb_domid;
	uint32_t sb_restore;	/* 1: incoming domain, RAM comes from the caller, no boot */
	struct be_domain_config sb_cfg;
};

struct simdom_req {
	uint32_t rq_magic;
	uint32_t rq_version;
	uint32_t rq_type;	/* enum simdom_req_type */
	uint32_t rq_pad;
	uint64_t rq_value;
	struct be_workload rq_workload;
	struct be_disk rq_disk;
};

struct simdom_info {
	int32_t in_domid;
	uint32_t in_state;	   /* enum be_state */
	int32_t in_pid;
	int32_t in_vcpus;
	uint64_t in_memory_static;  /* bytes: the size of the RAM memfd */
	uint64_t in_memory_target;  /* bytes: balloon target */
	uint64_t in_memory_held;    /* bytes the domain holds (= target, rounded to pages) */
	uint64_t in_heartbeat;	   /* heartbeat counter (page 0) */
	uint64_t in_heartbeat_ns;   /* its CLOCK_MONOTONIC time */
	uint64_t in_dirty_total;
	uint64_t in_disk_bytes;
	uint64_t in_populated;
	uint32_t in_throttle_pct;
	uint32_t in_booted;
	uint32_t in_restore;
	int32_t in_ndisks;
	char in_uuid[BE_UUID_LEN];
	char in_name[128];
	struct be_workload in_workload;
	struct be_disk in_disks[SIMDOM_MAX_DISKS];
};

struct simdom_resp {
	uint32_t rs_magic;
	uint32_t rs_version;
	uint32_t rs_type;	/* the request answered */
	int32_t rs_status;	/* 0 done, -1 refused/failed (rs_error says why) */
	char rs_error[256];
	struct simdom_info rs_info;
};

_Static_assert(sizeof(struct simdom_vcpu) == 256, "simdom_vcpu is 256 bytes");
_Static_assert(sizeof(((struct be_domain_config *)0)->dc_disks) / sizeof(struct be_disk) ==
		       SIMDOM_MAX_DISKS,
	       "SIMDOM_MAX_DISKS matches be_domain_config");

#define SIMDOM_SOCK_PREFIX "pool-simdom/"
#define SIMDOM_HVKEY_LEN 16 /* hex digits of a backend's key */

/* The abstract address of domain domid of the backend named hvkey; returns
 * the length to pass to bind/connect (abstract names are counted, not
 * NUL-terminated). */
static inline socklen_t simdom_sock_addr(const char *hvkey, int domid, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	int n = snprintf(sa->sun_path + 1, sizeof sa->sun_path - 1, SIMDOM_SOCK_PREFIX "%s/%d", hvkey, domid);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* Bytes of each memfd for a RAM of npages pages. */
static inline uint64_t simdom_dirty_bytes(uint64_t npages)
{
	uint64_t b = (npages + 63) / 64 * 8;
	return (b + SIMDOM_PAGE_SIZE - 1) / SIMDOM_PAGE_SIZE * SIMDOM_PAGE_SIZE;
}
static inline uint64_t simdom_shared_bytes(void)
{
	return (sizeof(struct simdom_shared) + SIMDOM_PAGE_SIZE - 1) / SIMDOM_PAGE_SIZE *
	       SIMDOM_PAGE_SIZE;
}

/* ---- the disks' dirty-block logs ---- */
#define SIMDOM_DISK_BLOCK (64u << 10) /* bytes a log bit stands for */

/* Blocks of a disk of size bytes (a partial last block counts). */
static inline uint64_t simdom_disk_blocks(uint64_t size)
{
	return (size + SIMDOM_DISK_BLOCK - 1) / SIMDOM_DISK_BLOCK;
}

/* Bytes of the log memfd for nblocks blocks (whole pages, at least one). */
static inline uint64_t simdom_disk_log_bytes(uint64_t nblocks)
{
	uint64_t b = (nblocks + 63) / 64 * 8;
	b = (b + SIMDOM_PAGE_SIZE - 1) / SIMDOM_PAGE_SIZE * SIMDOM_PAGE_SIZE;
	return b ? b : SIMDOM_PAGE_SIZE;
}

/* Mark the blocks [off, off + len) touches, after the write landed; blocks
 * past the log's capacity (nbits) are not tracked (a disk grown while
 * attached: VDI.resize refuses that). */
static inline void simdom_disk_mark(uint64_t *log, uint64_t nbits, uint64_t off, uint64_t len)
{
	if (!log || !len)
		return;
	uint64_t b = off / SIMDOM_DISK_BLOCK, e = (off + len - 1) / SIMDOM_DISK_BLOCK;
	for (; b <= e && b < nbits; b++)
		__atomic_fetch_or(&log[b / 64], 1ull << (b % 64), __ATOMIC_RELEASE);
}

#endif
