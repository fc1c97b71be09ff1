/*
 * migcheck.h - may this VM move to that host now? (pure functions)
 *
 * Every check XAPI makes before a pool migration, in XAPI's order, each
 * with its error and parameters, over plain structs filled from the
 * database by the caller: nothing here reads or writes anything.
 */
#ifndef MIGCHECK_H
#define MIGCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct mig_vm {
	const char *mv_ref;
	const char *mv_power_state;  /* "Running", "Halted", ... */
	const char *mv_resident_on;  /* host ref */
	bool mv_busy;                /* another operation holds it (scheduled_to_be_resident_on set) */
	bool mv_nomigrate;           /* platform:nomigrate=true */
	bool mv_has_pci, mv_has_vusb;
	int64_t mv_memory;           /* bytes the destination must give */
	const char *mv_boot_vendor, *mv_boot_features; /* last_boot_CPU_flags */
	const char *const *mv_srs;   /* SRs of its disks */
	size_t mv_nsrs;
};

struct mig_host {
	const char *mh_ref;
	bool mh_enabled, mh_live, mh_has_agent;
	bool mh_evacuating;          /* takes no new VMs (HOST_EVACUATE_IN_PROGRESS) */
	const char *mh_vendor, *mh_features, *mh_version;
	int64_t mh_available;        /* bytes free after VMs resident, scheduled and in flight */
	const char *const *mh_srs;   /* SRs plugged there */
	size_t mh_nsrs;
};

/* NULL when vm may move from src to dst, else a new XAPI error value.
 * force skips the CPU check only (as XAPI's force=true). */
json_t *mig_check(const struct mig_vm *vm, const struct mig_host *src, const struct mig_host *dst, bool force);

/* Software versions "1.2.10" vs "1.2.9": <0, 0, >0, numerically by part;
 * a missing part counts as 0. */
int mig_version_cmp(const char *a, const char *b);

#endif
