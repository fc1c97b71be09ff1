/*
 * sim_save.h - the sim backend's suspend image (see sim_save.c): save a
 * paused domain to a file, make a paused domain from one. The backend
 * passed is the agent's locked backend (backend_lock.h).
 */
#ifndef SIM_SAVE_H
#define SIM_SAVE_H

#include <stddef.h>
#include <stdint.h>
#include "backend.h"

#define SIM_IMAGE_MAGIC "SIMSAVE1"
#define SIM_IMAGE_VERSION 1u

/* The last bytes of an image. */
struct sim_image_trailer {
	char si_magic[8];
	uint32_t si_version;
	uint32_t si_vcpu_len; /* bytes of the vCPU section after RAM */
	uint64_t si_ram_len;  /* bytes of RAM at offset 0 (the static size) */
	uint64_t si_held;     /* bytes the guest held (below its static size when ballooned) */
	char si_uuid[40];     /* the VM's */
	uint64_t si_reserved[4];
};

void sim_image_trailer_init(struct sim_image_trailer *t, uint64_t ram_len, uint64_t held, const char *uuid);
/* Does t describe a whole image of file_size bytes of VM uuid (NULL: any)
 * with ram_len bytes of RAM (0: any)? 0, or -1 with the reason. Pure. */
int sim_image_trailer_check(const struct sim_image_trailer *t, uint64_t file_size, const char *uuid,
			    uint64_t ram_len, char *err, size_t errlen);
/* The image's size for a VM of memory bytes (static max). */
uint64_t sim_image_size(uint64_t memory);
/* Write paused domain domid of VM uuid to fd (an empty file). 0 or -1. */
int sim_image_save(struct backend *be, int domid, const char *uuid, int fd, char *err, size_t errlen);
/* A new paused domain for cfg holding the image in fd; the guest goes on
 * from the saved state once unpaused. 0 with *domid, or -1 (nothing left). */
int sim_image_restore(struct backend *be, const struct be_domain_config *cfg, int fd, int *domid, char *err,
		      size_t errlen);

#endif
