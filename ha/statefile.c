/*
 * statefile.c - the statefile on the heartbeat SR: a header block, then
 * one HA_SLOT_SIZE slot per host (index = the host's place in uuid
 * order). A host writes only its own slot and reads everyone's; the
 * header's second half is the pool master's lease, written by the master's
 * poold only (lease.c).
 *
 * Each operation opens the file anew: an SR that went away (unmounted,
 * unplugged, its directory replaced) makes the next operation fail, as it
 * would on a real host, instead of going on through a descriptor to a
 * file nobody else sees any more. Writes are followed by fdatasync, so a
 * slot that was written is on the shared storage before we count it.
 * O_DIRECT is used where the filesystem offers it (shared storage must
 * not be read from this host's cache); tmpfs and the like do not, and
 * there the page cache is the shared truth anyway.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "ha.h"
#include "util.h"

static int open_sf(const char *path, int flags, char *err, size_t errlen)
{
	int fd = open(path, flags | O_DIRECT | O_CLOEXEC);
	if (fd < 0 && errno == EINVAL)
		fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		errf(err, errlen, "statefile %s: %s", path, strerror(errno));
	return fd;
}

/* O_DIRECT wants aligned buffers: bounce through one. */
static void *aligned(size_t n)
{
	void *p = NULL;
	if (posix_memalign(&p, 4096, n) != 0)
		abort();
	return p;
}

int ha_statefile_prepare(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return errf(err, errlen, "statefile %s: %s", path, strerror(errno));
	struct stat st;
	int rc = fstat(fd, &st);
	if (rc == 0 && st.st_size < HA_STATEFILE_SIZE)
		rc = ftruncate(fd, HA_STATEFILE_SIZE);
	if (rc == 0)
		rc = fdatasync(fd);
	if (rc != 0)
		errf(err, errlen, "statefile %s: %s", path, strerror(errno));
	close(fd);
	return rc ? -1 : 0;
}

int ha_statefile_write(const char *path, int index, const char *buf, char *err, size_t errlen)
{
	if (index < 0 || index >= HA_MAX_HOSTS)
		return errf(err, errlen, "statefile: no slot %d", index);
	int fd = open_sf(path, O_RDWR, err, errlen);
	if (fd < 0)
		return -1;
	char *b = aligned(HA_SLOT_SIZE);
	memcpy(b, buf, HA_SLOT_SIZE);
	off_t off = (off_t)HA_SLOT_SIZE * (1 + index);
	ssize_t n = pwrite(fd, b, HA_SLOT_SIZE, off);
	int rc = n == HA_SLOT_SIZE && fdatasync(fd) == 0 ? 0 : -1;
	if (rc)
		errf(err, errlen, "statefile %s: write: %s", path, n < 0 || n == HA_SLOT_SIZE ? strerror(errno) : "short");
	free(b);
	close(fd);
	return rc;
}

/* count blocks from block first (0: the header) into buf, read direct. */
static int read_blocks(const char *path, int first, int count, char *buf, char *err, size_t errlen)
{
	int fd = open_sf(path, O_RDONLY, err, errlen);
	if (fd < 0)
		return -1;
	size_t len = (size_t)HA_SLOT_SIZE * (size_t)count;
	char *b = aligned(len);
	ssize_t got = pread(fd, b, len, (off_t)HA_SLOT_SIZE * first);
	int rc = got == (ssize_t)len ? 0 : -1;
	if (rc)
		errf(err, errlen, "statefile %s: read: %s", path, got < 0 ? strerror(errno) : "short (not prepared?)");
	else
		memcpy(buf, b, len);
	free(b);
	close(fd);
	return rc;
}

int ha_statefile_read(const char *path, int n, char *buf, char *err, size_t errlen)
{
	if (n < 1 || n > HA_MAX_HOSTS)
		return errf(err, errlen, "statefile: %d slots", n);
	return read_blocks(path, 1, n, buf, err, errlen);
}

int ha_statefile_read_all(const char *path, int n, char *buf, char *err, size_t errlen)
{
	if (n < 1 || n > HA_MAX_HOSTS)
		return errf(err, errlen, "statefile: %d slots", n);
	return read_blocks(path, 0, n + 1, buf, err, errlen);
}

/* The header block is written whole (O_DIRECT writes blocks): its first
 * half is unused, the lease is its second. */
int ha_statefile_write_lease(const char *path, const char *buf, char *err, size_t errlen)
{
	int fd = open_sf(path, O_RDWR, err, errlen);
	if (fd < 0)
		return -1;
	char *b = aligned(HA_SLOT_SIZE);
	memset(b, 0, HA_LEASE_OFFSET);
	memcpy(b + HA_LEASE_OFFSET, buf, HA_LEASE_SIZE);
	ssize_t n = pwrite(fd, b, HA_SLOT_SIZE, 0);
	int rc = n == HA_SLOT_SIZE && fdatasync(fd) == 0 ? 0 : -1;
	if (rc)
		errf(err, errlen, "statefile %s: lease: %s", path, n < 0 || n == HA_SLOT_SIZE ? strerror(errno) : "short");
	free(b);
	close(fd);
	return rc;
}
