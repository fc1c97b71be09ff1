/*
 * xen_image.c - the xen suspend image's header (xen_save.h): made and
 * checked here, pure, so builds without Xen test it too.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "xen_save.h"

void xen_image_header_init(struct xen_image_header *h, const char *uuid, uint64_t memory, uint64_t target)
{
	memset(h, 0, sizeof *h);
	memcpy(h->xi_magic, XEN_IMAGE_MAGIC, sizeof h->xi_magic);
	h->xi_version = XEN_IMAGE_VERSION;
	h->xi_memory = memory;
	h->xi_target = target;
	snprintf(h->xi_uuid, sizeof h->xi_uuid, "%s", uuid ? uuid : "");
}

int xen_image_header_check(const struct xen_image_header *h, uint64_t file_size, const char *uuid, char *err,
			   size_t errlen)
{
	if (file_size < sizeof *h || memcmp(h->xi_magic, XEN_IMAGE_MAGIC, sizeof h->xi_magic) != 0) {
		snprintf(err, errlen, "not a xen suspend image (saved by another backend?)");
		return -1;
	}
	if (h->xi_version != XEN_IMAGE_VERSION) {
		snprintf(err, errlen, "xen suspend image version %" PRIu32 ", this agent reads version %u", h->xi_version,
			 XEN_IMAGE_VERSION);
		return -1;
	}
	if (!memchr(h->xi_uuid, 0, sizeof h->xi_uuid) || (uuid && strcmp(h->xi_uuid, uuid) != 0)) {
		snprintf(err, errlen, "the suspend image is VM %.36s's, not VM %.36s's", h->xi_uuid, uuid ? uuid : "");
		return -1;
	}
	if (h->xi_complete != 1) {
		snprintf(err, errlen, "the suspend image is incomplete (its save did not finish)");
		return -1;
	}
	if (h->xi_stream_len == 0 || file_size - sizeof *h != h->xi_stream_len) {
		snprintf(err, errlen,
			 "the suspend image is damaged: %" PRIu64 " bytes of stream expected, the file has %" PRIu64,
			 h->xi_stream_len, file_size - (uint64_t)sizeof *h);
		return -1;
	}
	return 0;
}
