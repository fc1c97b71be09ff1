/*
 * sr.h - storage repositories: a driver interface and the file driver.
 *
 * An SR is a place VDIs (virtual disks) live. The file driver keeps an SR in
 * one directory: each VDI is a sparse raw image "<vdi-uuid>.img" in it, and
 * the SR is `shared` when every host sees the same directory. Sizes are
 * real: physical size and utilisation from statvfs, a VDI's physical
 * utilisation from its allocated blocks.
 *
 * Conventions for every function here:
 *   - return 0, or -1 with a one-line reason in err (which names the path
 *     and the system's reason when a system call failed); never print,
 *     never exit;
 *   - VDI uuids are names inside the SR: 1..SR_UUID_MAX characters from
 *     [A-Za-z0-9._-], not starting with '.', no ".." - a VDI never escapes
 *     the SR directory (anything else is refused);
 *   - location buffers hold SR_LOCATION_MAX bytes (may be NULL when the
 *     caller does not want the path);
 *   - no global mutable state: a struct sr is read-only after attach, so
 *     calls on one SR from several threads are safe (the filesystem
 *     arbitrates: creating an existing VDI fails, and so on).
 */
#ifndef SR_H
#define SR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SR_UUID_MAX 64       /* longest VDI / SR uuid accepted */
#define SR_LOCATION_MAX 4096 /* bytes a location buffer holds (PATH_MAX) */

struct sr_space {
	uint64_t ss_physical_size;        /* bytes the SR can hold (filesystem size) */
	uint64_t ss_physical_utilisation; /* bytes used (filesystem size - free) */
	uint64_t ss_free;                 /* bytes still available (to unprivileged users) */
	uint64_t ss_virtual_allocation;   /* sum of the VDIs' virtual sizes */
};

struct sr_vdi_stat {
	uint64_t vs_virtual_size;         /* bytes the guest sees */
	uint64_t vs_physical_utilisation; /* bytes allocated on disk */
};

struct sr;

struct sr_driver {
	const char *sd_type; /* "file" */
	/* Attach: check the SR's device-config (path=...) and that it is usable
	 * (a readable, writable directory), creating the directory (and its
	 * parents) when create is true. The SR remembers the canonical
	 * (absolute, symlink-free) path. NULL with err on failure. */
	struct sr *(*sd_attach)(const char *sr_uuid, const char *path, bool create, char *err, size_t errlen);
	/* Forget the SR (frees it; touches nothing on disk). NULL is a no-op. */
	void (*sd_detach)(struct sr *sr);
	int (*sd_space)(struct sr *sr, struct sr_space *out, char *err, size_t errlen);
	/* New VDI of virtual_size bytes (sparse: allocates nothing); location
	 * receives the path. Refused when the VDI already exists. SR_FULL-style
	 * refusal when virtual_size exceeds what the filesystem could ever hold
	 * is the caller's policy, not the driver's (thin provisioning). */
	int (*sd_vdi_create)(struct sr *sr, const char *vdi_uuid, uint64_t virtual_size, char *location,
			     char *err, size_t errlen);
	/* Remove the VDI; a missing VDI is an error naming it. */
	int (*sd_vdi_destroy)(struct sr *sr, const char *vdi_uuid, char *err, size_t errlen);
	/* Grow to new_size (the new tail is a hole). Shrinking is refused, as
	 * XAPI refuses it; new_size == current size is a no-op. */
	int (*sd_vdi_resize)(struct sr *sr, const char *vdi_uuid, uint64_t new_size, char *err, size_t errlen);
	/* Full sparse copies: the new VDI's content equals the source's at the
	 * time of the call (the caller quiesces writers), holes stay holes.
	 * snapshot = read-only intent (recorded by the caller), clone =
	 * writable; both are the same copy in this driver. The destination must
	 * not exist; the copy is refused, with the bytes needed and available,
	 * when the filesystem lacks room for the source's allocated bytes. The
	 * copy is written under a temporary name, synced, then renamed into
	 * place: a crash or failure never leaves a partial VDI under dst_uuid,
	 * and a failure leaves no temporary file. */
	int (*sd_vdi_snapshot)(struct sr *sr, const char *src_uuid, const char *dst_uuid, char *location,
			       char *err, size_t errlen);
	int (*sd_vdi_clone)(struct sr *sr, const char *src_uuid, const char *dst_uuid, char *location,
			    char *err, size_t errlen);
	int (*sd_vdi_stat)(struct sr *sr, const char *vdi_uuid, struct sr_vdi_stat *out, char *err, size_t errlen);
	/* Where an existing VDI's data is (a regular file, no symlink), for a
	 * domain's disk: the only way an agent turns a VDI into a path. */
	int (*sd_vdi_locate)(struct sr *sr, const char *vdi_uuid, char *location, char *err, size_t errlen);
};

extern const struct sr_driver sr_file_driver;
/* The driver for an SR type ("file"), or NULL. */
const struct sr_driver *sr_driver_find(const char *type);

/* A VDI uuid the drivers accept (see above)? */
bool sr_uuid_valid(const char *uuid);

/*
 * Copy the first size bytes of in_fd to out_fd at the same offsets, data
 * extents only (lseek SEEK_DATA/SEEK_HOLE; a filesystem without them counts
 * as one data extent), with copy_file_range, falling back to pread/pwrite
 * in 1 MiB pieces where the kernel cannot (cross-filesystem and the like);
 * the fallback also skips all-zero pieces. out_fd must already be size
 * bytes of zeros/holes (a fresh file after ftruncate). SR_COPY_PLAIN forces
 * the pread/pwrite path. in_name and out_name are for messages. Shared by
 * the drivers and by copies between SRs (storage migration).
 */
#define SR_COPY_PLAIN 1u
int sr_copy_sparse(int in_fd, const char *in_name, int out_fd, const char *out_name, uint64_t size,
		   unsigned flags, char *err, size_t errlen);

#endif
