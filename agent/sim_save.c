/*
 * sim_save.c - the sim hypervisor's suspend image: a paused domain's memory
 * and CPU state written to a file (a suspend VDI), and a new domain made
 * from such a file, as libxl_domain_suspend / libxl_domain_create_restore
 * do for Xen.
 *
 * The image is the guest's RAM at offset 0, byte for byte (sparse: pages
 * the guest never wrote, or ballooned away, stay holes), then the vCPU
 * section of struct simdom_shared, then a fixed trailer saying what it
 * is. RAM goes file to file through sr_copy_sparse (copy_file_range, data
 * extents only), so a suspend costs what the guest holds, not its size.
 * Page 0 is the heartbeat page: a resumed guest counts on from where it
 * stopped.
 *
 * The backend's mutex is held only for the calls into it (map, create,
 * balloon): the bulk copy runs without it, so heartbeats go on meanwhile.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "backend_lock.h"
#include "sim_save.h"
#include "simdom.h"
#include "sr.h"

static size_t vcpu_off(void)
{
	return offsetof(struct simdom_shared, ss_vcpus);
}

static size_t vcpu_len(void)
{
	return sizeof(struct simdom_shared) - vcpu_off();
}

void sim_image_trailer_init(struct sim_image_trailer *t, uint64_t ram_len, uint64_t held, const char *uuid)
{
	memset(t, 0, sizeof *t);
	memcpy(t->si_magic, SIM_IMAGE_MAGIC, sizeof t->si_magic);
	t->si_version = SIM_IMAGE_VERSION;
	t->si_vcpu_len = (uint32_t)vcpu_len();
	t->si_ram_len = ram_len;
	t->si_held = held;
	snprintf(t->si_uuid, sizeof t->si_uuid, "%s", uuid);
}

int sim_image_trailer_check(const struct sim_image_trailer *t, uint64_t file_size, const char *uuid,
			    uint64_t ram_len, char *err, size_t errlen)
{
	if (memcmp(t->si_magic, SIM_IMAGE_MAGIC, sizeof t->si_magic) != 0) {
		snprintf(err, errlen, "not a sim suspend image");
		return -1;
	}
	if (t->si_version != SIM_IMAGE_VERSION || t->si_vcpu_len != vcpu_len()) {
		snprintf(err, errlen, "suspend image version %u, this agent reads version %u", t->si_version,
			 SIM_IMAGE_VERSION);
		return -1;
	}
	if (uuid && strncmp(t->si_uuid, uuid, sizeof t->si_uuid) != 0) {
		snprintf(err, errlen, "the suspend image is VM %.40s's, not VM %.40s's", t->si_uuid, uuid);
		return -1;
	}
	if (t->si_ram_len == 0 || t->si_ram_len % SIMDOM_PAGE_SIZE || t->si_held > t->si_ram_len ||
	    file_size != t->si_ram_len + t->si_vcpu_len + sizeof *t) {
		snprintf(err, errlen, "the suspend image is damaged: its sizes do not add up");
		return -1;
	}
	if (ram_len && ram_len != t->si_ram_len) {
		snprintf(err, errlen,
			 "the suspend image holds %" PRIu64 " bytes of RAM, the VM has %" PRIu64
			 " (memory_static_max changed?)",
			 t->si_ram_len, ram_len);
		return -1;
	}
	return 0;
}

/* The domain's memory mapped, its mutex held only for the mapping. */
static int map_locked(struct backend *be, int domid, struct be_sim_map *m, char *err, size_t errlen)
{
	backend_locked_lock(be);
	struct backend *in = backend_locked_inner(be);
	int rc = backend_sim_map(in, domid, m);
	if (rc < 0)
		snprintf(err, errlen, "%s", backend_error(in));
	backend_locked_unlock(be);
	return rc;
}

int sim_image_save(struct backend *be, int domid, const char *uuid, int fd, char *err, size_t errlen)
{
	struct be_domain_info di;
	if (be->be_ops->bo_domain_info(be, domid, &di) < 0 || di.di_state != BE_STATE_PAUSED) {
		snprintf(err, errlen, "domain %d is not paused: only a paused domain is saved", domid);
		return -1;
	}
	struct be_sim_map m;
	if (map_locked(be, domid, &m, err, errlen) < 0)
		return -1;
	struct sim_image_trailer t;
	sim_image_trailer_init(&t, m.sm_ram_len, di.di_memory, uuid);
	uint64_t total = m.sm_ram_len + t.si_vcpu_len + sizeof t;
	int rc = -1;
	if (ftruncate(fd, (off_t)total) != 0) {
		snprintf(err, errlen, "cannot size the suspend image: %s", strerror(errno));
	} else if (sr_copy_sparse(m.sm_ram_fd, "guest RAM", fd, "suspend image", m.sm_ram_len, 0, err, errlen) == 0) {
		const unsigned char *vc = (const unsigned char *)m.sm_shared + vcpu_off();
		if (pwrite(fd, vc, t.si_vcpu_len, (off_t)m.sm_ram_len) != (ssize_t)t.si_vcpu_len ||
		    pwrite(fd, &t, sizeof t, (off_t)(m.sm_ram_len + t.si_vcpu_len)) != (ssize_t)sizeof t || fsync(fd) != 0)
			snprintf(err, errlen, "cannot write the suspend image: %s", strerror(errno));
		else
			rc = 0;
	}
	backend_sim_unmap(&m);
	return rc;
}

static int read_trailer(int fd, struct sim_image_trailer *t, uint64_t *size, char *err, size_t errlen)
{
	off_t end = lseek(fd, 0, SEEK_END);
	if (end < (off_t)sizeof *t || pread(fd, t, sizeof *t, end - (off_t)sizeof *t) != (ssize_t)sizeof *t) {
		snprintf(err, errlen, "cannot read the suspend image: %s", end < 0 ? strerror(errno) : "too short");
		return -1;
	}
	*size = (uint64_t)end;
	return 0;
}

/* RAM, vCPUs and the balloon of a fresh restore domain from the image. */
static int fill(struct backend *be, int domid, int fd, const struct sim_image_trailer *t, char *err, size_t errlen)
{
	struct be_sim_map m;
	if (map_locked(be, domid, &m, err, errlen) < 0)
		return -1;
	int rc = sr_copy_sparse(fd, "suspend image", m.sm_ram_fd, "guest RAM", t->si_ram_len, 0, err, errlen);
	if (rc == 0 && pread(fd, (unsigned char *)m.sm_shared + vcpu_off(), t->si_vcpu_len, (off_t)t->si_ram_len) !=
			       (ssize_t)t->si_vcpu_len) {
		snprintf(err, errlen, "cannot read the vCPU state: %s", strerror(errno));
		rc = -1;
	}
	backend_sim_unmap(&m);
	/* a guest that had given memory back holds as little again */
	if (rc == 0 && t->si_held && t->si_held < t->si_ram_len &&
	    be->be_ops->bo_set_memory_target(be, domid, t->si_held) < 0) {
		snprintf(err, errlen, "cannot balloon the resumed guest to %" PRIu64 " bytes: %s", t->si_held,
			 backend_error(be));
		rc = -1;
	}
	return rc;
}

int sim_image_restore(struct backend *be, const struct be_domain_config *cfg, int fd, int *domid, char *err,
		      size_t errlen)
{
	struct sim_image_trailer t;
	uint64_t size;
	uint64_t ram = (cfg->dc_memory + SIMDOM_PAGE_SIZE - 1) / SIMDOM_PAGE_SIZE * SIMDOM_PAGE_SIZE;
	if (read_trailer(fd, &t, &size, err, errlen) < 0 ||
	    sim_image_trailer_check(&t, size, cfg->dc_uuid, ram, err, errlen) < 0)
		return -1;
	if (be->be_ops->bo_domain_create_restore(be, cfg, domid) < 0) {
		snprintf(err, errlen, "cannot create the domain: %s", backend_error(be));
		return -1;
	}
	if (fill(be, *domid, fd, &t, err, errlen) < 0) {
		be->be_ops->bo_domain_destroy(be, *domid);
		*domid = -1;
		return -1;
	}
	return 0;
}

uint64_t sim_image_size(uint64_t memory)
{
	uint64_t ram = (memory + SIMDOM_PAGE_SIZE - 1) / SIMDOM_PAGE_SIZE * SIMDOM_PAGE_SIZE;
	return ram + vcpu_len() + sizeof(struct sim_image_trailer);
}
