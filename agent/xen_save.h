/*
 * xen_save.h - the xen backend's suspend image: a domain saved by
 * libxl_domain_suspend into a file (a suspend VDI), and a new domain made
 * from one by libxl_domain_create_restore; the counterpart of sim_save.h.
 *
 * The file is a fixed header (what it is, whose, and how long libxl's
 * stream is), then libxl's stream as `xl save` writes it after its own
 * header. The header is written incomplete first and completed once the
 * stream is all there, so an image cut short (a crash mid-save, a full
 * disk) is refused rather than half restored.
 */
#ifndef XEN_SAVE_H
#define XEN_SAVE_H

#include <stddef.h>
#include <stdint.h>
#include "backend.h"

#define XEN_IMAGE_MAGIC "XENSAVE1"
#define XEN_IMAGE_VERSION 1u

struct xen_image_header {
	char xi_magic[8];
	uint32_t xi_version;
	uint32_t xi_complete;	/* 1 once the stream is all written */
	uint64_t xi_stream_len; /* bytes of libxl's stream after the header */
	uint64_t xi_memory;	/* the domain's maximum, bytes */
	uint64_t xi_target;	/* its balloon target when saved, bytes */
	char xi_uuid[40];	/* the VM's */
	uint64_t xi_reserved[4];
};

/* xen_image.c (pure, built without Xen too). */
void xen_image_header_init(struct xen_image_header *h, const char *uuid, uint64_t memory, uint64_t target);
/* Does h describe a whole image of file_size bytes of VM uuid (NULL: any)?
 * 0, or -1 with the reason. */
int xen_image_header_check(const struct xen_image_header *h, uint64_t file_size, const char *uuid, char *err,
			   size_t errlen);

/* xen_save.c (stubs that fail in builds without Xen). be is the agent's
 * locked backend (backend_lock.h), whose lock is held only around short
 * calls: libxl's save and restore run without it (libxl's ctx is
 * thread-safe), so heartbeats go on meanwhile. */

/* Save domain domid of VM uuid into fd (an empty file). The guest must
 * run to suspend itself: a paused domain is unpaused first. On success the
 * domain is left suspended (listed paused): destroy it, or unpause it
 * (bo_domain_unpause resumes a suspended domain) to let it go on. On
 * failure it is as it was (resumed, paused again if it was). 0 or -1. */
int xen_image_save(struct backend *be, int domid, const char *uuid, int fd, char *err, size_t errlen);
/* A new paused domain for cfg from the image in fd; the guest goes on from
 * the saved state once unpaused. 0 with *domid, or -1 (nothing left). */
int xen_image_restore(struct backend *be, const struct be_domain_config *cfg, int fd, int *domid, char *err,
		      size_t errlen);

#endif
