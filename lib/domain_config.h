/*
 * domain_config.h - what a host needs to build a VM's domain, and its wire
 * form.
 *
 * poold writes it (VM.start, migrations) from the VM's records; the agent
 * reads it and hands it to its backend. One struct, one function pair
 * (dcfg_to_json / dcfg_from_json): a new field is one edit here, not a
 * json_pack on one side and a field-by-field read on the other.
 *
 * A disk names its SR and VDI, never a path: the agent finds the file in
 * the SR it has plugged, so no caller can point a guest at a file of its
 * choosing.
 */
#ifndef DOMAIN_CONFIG_H
#define DOMAIN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define BE_UUID_LEN 37
#define BE_FEATURESET_LEN 512
#define BE_MAX_DISKS 8

/* What the simulated guest does (sim only; ignored by xen). */
struct be_workload {
	uint64_t wl_touch_pages;      /* pages written once at boot (mixed content) */
	uint64_t wl_dirty_pages_per_s;/* pages rewritten per second, steady state */
	uint64_t wl_working_set_pages;/* the dirtying stays within the first N pages (0 = all) */
	int wl_pct_zero;              /* content mix of touched pages, percent: zero, */
	int wl_pct_text;              /* text-like (compressible) and */
	int wl_pct_random;            /* random (incompressible); sums to 100 */
	uint64_t wl_disk_write_bytes_per_s; /* written to the first disk, if any */
	bool wl_prealloc;             /* allocate all RAM at create, as Xen does at domain
				       * build (costs ~0.1 s of CPU per 256 MiB here);
				       * default: only what the guest touches, in bulk */
	uint32_t wl_heartbeat_ms;     /* the guest's heartbeat tick (0 = 1 ms). Each tick is a
				       * wakeup: 40 guests at 1 ms cost ~half of this 2-core
				       * machine, which an idle Xen guest does not cost dom0 */
};

struct be_disk {
	char bd_vdi_uuid[BE_UUID_LEN];
	char bd_sr_uuid[BE_UUID_LEN]; /* the SR it lives on: the agent finds the file there */
	char bd_path[512];           /* the VDI's file, resolved by the agent (never from the wire) */
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
	struct be_disk dc_disks[BE_MAX_DISKS];
	int dc_ndisks;
	char dc_guest_type[8];       /* xen: "pvh", else HVM ("" = hvm); sim: ignored */
	bool dc_start_paused;        /* agent.vm_start: leave it paused */
};


/* The wire form (a JSON object; new reference). Disk paths are not sent. */
json_t *dcfg_to_json(const struct be_domain_config *c);
/* Read and check the wire form: NULL, or INVALID_VALUE [config, reason]
 * (no uuid, no memory, no vCPU, a bad disk, too many disks, a string too
 * long for its field). Disk paths are left empty: the agent resolves them. */
json_t *dcfg_from_json(const json_t *j, struct be_domain_config *c);

#endif
