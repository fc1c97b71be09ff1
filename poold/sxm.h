/*
 * sxm.h - storage live migration's decisions (pure functions over plain
 * structs; no I/O, no database, no clock): may this VM's disks move there,
 * how much room must the SRs have, may another storage migration start
 * from this host now, and, after a crash, which way a journaled storage
 * migration goes.
 *
 * VM.migrate_send, VM.assert_can_migrate and VDI.pool_migrate fill these
 * structs from the database (api_sxm.c) and ask; the migration itself
 * (migrate_storage.c) asks sxm_recover after a restart or a doubt. The
 * placement checks (CPU, memory, versions, SRs plugged on the destination,
 * networks) are place.c's, on the VM as it will be once moved; these are
 * the checks only storage migration makes, in XAPI's order
 * (xapi_vm_migrate.ml: check_vdi_map, the VIF map, on_boot, CBT, the SRs'
 * capabilities) and then R-11's space policy.
 */
#ifndef SXM_H
#define SXM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* A disk of the VM (a VBD that is not empty). */
struct sxm_vdi {
	const char *sv_ref;
	const char *sv_sr;	   /* where it is */
	const char *sv_dest_sr;	   /* vdi_map's SR for it; NULL: not in the map (it stays) */
	int64_t sv_virtual_size;   /* bytes */
	bool sv_read_only;	   /* a read-only VBD or VDI (copied, never written) */
	bool sv_cbt;		   /* cbt_enabled */
	bool sv_on_boot_reset;	   /* on_boot = reset */
	bool sv_busy;		   /* another operation holds it */
	bool sv_sr_on_dest;	   /* its SR is plugged on the destination host */
};

/* A VIF of the VM. */
struct sxm_vif {
	const char *sf_ref;
	bool sf_mapped;		/* vif_map names a network for it */
	bool sf_net_on_dest;	/* its network (when not mapped) reaches the destination */
};

/* An SR a disk leaves or goes to. */
struct sxm_sr {
	const char *ss_ref;
	const char *ss_type;	 /* "file" */
	int64_t ss_physical_size;
	int64_t ss_utilisation;	 /* physical_utilisation */
	int64_t ss_reserved;	 /* bytes promised to storage migrations in flight */
};

struct sxm_request {
	const struct sxm_vdi *rq_vdis;
	size_t rq_nvdis;
	const struct sxm_vif *rq_vifs;
	size_t rq_nvifs;
	const struct sxm_sr *rq_srs;  /* every SR a moving disk leaves or goes to */
	size_t rq_nsrs;
	double rq_dest_factor;	      /* storage-migration-destination-space-factor (3) */
	double rq_source_factor;      /* storage-migration-source-space-factor (2) */
};

/* Does vdi move (mapped to an SR other than its own)? */
bool sxm_vdi_moves(const struct sxm_vdi *v);

/* The SR capabilities storage migration needs (XAPI's SM features), as
 * "CAP;CAP" text of those type lacks for the role: a source needs
 * VDI_SNAPSHOT and VDI_MIRROR, a destination VDI_MIRROR_IN. "" when it
 * has them. The file SR has all three. */
const char *sxm_sr_missing_caps(const char *type, bool source);

/* The checks before anything moves, in order; the first refusal (a new
 * XAPI error), NULL when none:
 *   VDI_NOT_IN_MAP [vdi]: a disk not in the map on an SR the destination
 *     does not see (a read-only one as much as a writable one);
 *   VIF_NOT_IN_MAP [vif]: a VIF not in the map whose network does not
 *     reach the destination;
 *   OTHER_OPERATION_IN_PROGRESS [VDI, vdi]: a moving disk already busy;
 *   VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION [vdi] (XAPI forgets it in
 *     assert_can_migrate; here both ask the same function);
 *   VDI_CBT_ENABLED [vdi];
 *   SR_DOES_NOT_SUPPORT_MIGRATION [sr, capabilities];
 *   then sxm_check_space. */
json_t *sxm_check(const struct sxm_request *rq);
/* The same without the space: the callers put placement (place.c) between
 * the disks' checks and the space's, as XAPI checks the VM's host before
 * its storage. */
json_t *sxm_check_disks(const struct sxm_request *rq);

/* R-11, read as: each destination SR needs free room for dest_factor
 * times the virtual size of every disk moving to it, each source SR room
 * for source_factor times the virtual size of every disk leaving it (its
 * temporary snapshot); free room is physical_size - physical_utilisation
 * - what migrations in flight reserved. SR_FULL [requested, maximum, sr]
 * (bytes needed, bytes available, the SR) for a destination,
 * SR_SOURCE_SPACE_INSUFFICIENT [sr, needed, available] for a source;
 * destinations first. With reserve non-NULL (an object), the bytes
 * needed per SR ref are added to it (what this migration reserves). */
json_t *sxm_check_space(const struct sxm_request *rq, json_t *reserve);

/* storage migrations from one host at once. */
enum sxm_admit { SXM_START, SXM_QUEUE, SXM_REFUSE };
/* running: those from the host now; limit: storage-migration-max-per-host;
 * queue: the caller may wait (options queue=true, the default). */
enum sxm_admit sxm_admit(int running, int limit, bool queue);

/* ---- the journal's way after a crash or a doubt ---- */

/* Where the migration's steps have got to (journaled before each is taken). */
enum sxm_phase {
	SXM_PH_COPY,	  /* disks being mirrored: nothing the VM uses has changed */
	SXM_PH_MEMORY,	  /* the memory migration was started: GO may have happened */
	SXM_PH_COMMITTED, /* GO happened and the VBDs name the new VDIs */
	SXM_PH_ROLLBACK,  /* decided: back to the source; removing what was made */
};
const char *sxm_phase_name(enum sxm_phase p);
/* -1 for an unknown name. */
int sxm_phase_from_name(const char *name);

/* What the hosts say about the VM (their newest reports). */
enum sxm_where {
	SXM_ON_SOURCE,	 /* the source runs it (or has it paused) and the destination does not */
	SXM_ON_DEST,	 /* the destination runs it */
	SXM_UNKNOWN,	 /* a host cannot say (not live), or both have a copy paused */
};

enum sxm_way { SXM_WAIT, SXM_ROLL_BACK, SXM_ROLL_FORWARD };
/* Before the memory migration nothing the VM uses changed: back. After
 * the commit: forward, always (a destination disk is never deleted after
 * it). In between, GO may or may not have happened: wait while the source
 * still sends (in_flight) or the hosts cannot say; else the hosts decide. */
enum sxm_way sxm_recover(enum sxm_phase phase, enum sxm_where where, bool in_flight);

#endif
