/*
 * sr_file.c - the file SR driver: an SR is a directory, a VDI a sparse raw
 * file "<vdi-uuid>.img" in it.
 *
 *   create    open(O_CREAT|O_EXCL, 0600) + ftruncate: allocates nothing
 *   destroy   unlink
 *   resize    ftruncate, growing only (XAPI does not shrink VDIs)
 *   snapshot, clone
 *             a sparse copy (sr_copy_sparse) to ".<dst>.img.tmp-XXXXXX",
 *             fsync, then rename without replacing: the final name only
 *             ever holds a complete copy. A crash mid-copy may leave the
 *             hidden temporary behind; scans ignore it (names starting with
 *             '.' are never VDIs), and it is not swept at attach because on
 *             a shared SR another host may be copying right then.
 *   space     statvfs of the directory, plus a scan of the *.img sizes
 *
 * Every message names the path concerned and, after a failed system call,
 * strerror(errno).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#include "sr.h"
#include "util.h"

#define VDI_SUFFIX ".img"
#define TMP_SUFFIX ".tmp-XXXXXX"
/* Longest path built: dir "/." uuid ".img" ".tmp-XXXXXX" NUL. */
#define PATH_SPACE (SR_LOCATION_MAX + 32)

struct sr {
	char *uuid; /* for messages */
	char *path; /* canonical directory */
};

__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* A uuid as it can go into a one-line message: at most 64 characters,
 * anything unprintable as '?'. */
static const char *shown(const char *s, char out[SR_UUID_MAX + 4])
{
	size_t i = 0;
	if (!s)
		s = "(null)";
	for (; s[i] && i < SR_UUID_MAX; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (s[i]) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

/* "<sr>/<uuid>.img" into path (PATH_SPACE bytes), after checking the uuid. */
static int vdi_path(const struct sr *sr, const char *uuid, char *path, char *err, size_t errlen)
{
	char u[SR_UUID_MAX + 4];
	if (!sr_uuid_valid(uuid)) {
		seterr(err, errlen,
		       "invalid VDI uuid \"%s\" for SR %s (%s): use 1-%d of [A-Za-z0-9._-], no leading '.', "
		       "no \"..\", no '/'",
		       shown(uuid, u), sr->uuid, sr->path, SR_UUID_MAX);
		return -1;
	}
	snprintf(path, PATH_SPACE, "%s/%s" VDI_SUFFIX, sr->path, uuid);
	return 0;
}

/* Fits: attach refused SR paths too long for any "<dir>/<uuid>.img". */
static void set_location(char *location, const char *path)
{
	if (!location)
		return;
	size_t n = strlen(path);
	if (n >= SR_LOCATION_MAX)
		n = SR_LOCATION_MAX - 1;
	memcpy(location, path, n);
	location[n] = '\0';
}

/* mkdir -p: every missing component, 0755. */
static int mkdir_parents(const char *path, char *err, size_t errlen)
{
	char *p = xstrdup(path);
	int rc = 0;
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char saved = *s;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			seterr(err, errlen, "SR path %s: mkdir %s: %s", path, p, strerror(errno));
			rc = -1;
			break;
		}
		*s = saved;
		if (!saved)
			break;
	}
	free(p);
	return rc;
}

static void file_detach(struct sr *sr)
{
	if (!sr)
		return;
	free(sr->uuid);
	free(sr->path);
	free(sr);
}

static struct sr *file_attach(const char *sr_uuid, const char *path, bool create, char *err, size_t errlen)
{
	if (!sr_uuid)
		sr_uuid = "";
	if (!path || !path[0]) {
		seterr(err, errlen, "SR %s: device-config path is missing", sr_uuid);
		return NULL;
	}
	if (create && mkdir_parents(path, err, errlen) < 0)
		return NULL;
	struct stat st;
	if (stat(path, &st) < 0) {
		seterr(err, errlen, "SR %s: path %s: %s%s", sr_uuid, path, strerror(errno),
		       errno == ENOENT && !create ? " (not created: attach without create)" : "");
		return NULL;
	}
	if (!S_ISDIR(st.st_mode)) {
		seterr(err, errlen, "SR %s: path %s: %s", sr_uuid, path, strerror(ENOTDIR));
		return NULL;
	}
	if (access(path, R_OK | W_OK | X_OK) < 0) {
		seterr(err, errlen, "SR %s: path %s is not usable (read, write, search): %s", sr_uuid, path,
		       strerror(errno));
		return NULL;
	}
	char *real = realpath(path, NULL);
	if (!real) {
		seterr(err, errlen, "SR %s: path %s: realpath: %s", sr_uuid, path, strerror(errno));
		return NULL;
	}
	/* Every location (dir/uuid.img) must fit SR_LOCATION_MAX. */
	if (strlen(real) + 1 + SR_UUID_MAX + strlen(VDI_SUFFIX) + 1 > SR_LOCATION_MAX) {
		seterr(err, errlen, "SR %s: path %s: %s", sr_uuid, real, strerror(ENAMETOOLONG));
		free(real);
		return NULL;
	}
	struct sr *sr = xcalloc(1, sizeof *sr);
	if (!sr || !(sr->uuid = xstrdup(sr_uuid))) {
		seterr(err, errlen, "SR %s: path %s: %s", sr_uuid, real, strerror(ENOMEM));
		free(sr);
		free(real);
		return NULL;
	}
	sr->path = real;
	return sr;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static int file_space(struct sr *sr, struct sr_space *out, char *err, size_t errlen)
{
	struct statvfs vfs;
	if (statvfs(sr->path, &vfs) < 0) {
		seterr(err, errlen, "SR %s: statvfs %s: %s", sr->uuid, sr->path, strerror(errno));
		return -1;
	}
	uint64_t frsize = vfs.f_frsize ? vfs.f_frsize : vfs.f_bsize;
	uint64_t size = (uint64_t)vfs.f_blocks * frsize;
	uint64_t avail = (uint64_t)vfs.f_bavail * frsize;
	if (avail > size)
		avail = size;

	DIR *d = opendir(sr->path);
	if (!d) {
		seterr(err, errlen, "SR %s: opendir %s: %s", sr->uuid, sr->path, strerror(errno));
		return -1;
	}
	uint64_t virt = 0;
	size_t slen = strlen(VDI_SUFFIX);
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno) {
				seterr(err, errlen, "SR %s: readdir %s: %s", sr->uuid, sr->path, strerror(errno));
				closedir(d);
				return -1;
			}
			break;
		}
		size_t n = strlen(de->d_name);
		if (de->d_name[0] == '.' || n <= slen || strcmp(de->d_name + n - slen, VDI_SUFFIX) != 0)
			continue; /* not a VDI: hidden temporaries, other files */
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue; /* destroyed meanwhile */
			seterr(err, errlen, "SR %s: stat %s/%s: %s", sr->uuid, sr->path, de->d_name,
			       strerror(errno));
			closedir(d);
			return -1;
		}
		if (S_ISREG(st.st_mode))
			virt = add_sat(virt, (uint64_t)st.st_size);
	}
	closedir(d);

	out->ss_physical_size = size;
	out->ss_free = avail;
	/* The SR's directory shares its filesystem with whatever else lives
	 * there, so "used" is the filesystem's: everything the SR cannot use
	 * any more (other files and root-reserved blocks included), so that
	 * utilisation + free = size, as the sr-list columns suggest. */
	out->ss_physical_utilisation = size - avail;
	out->ss_virtual_allocation = virt;
	return 0;
}

static int file_vdi_create(struct sr *sr, const char *vdi_uuid, uint64_t virtual_size, char *location, char *err,
			   size_t errlen)
{
	char path[PATH_SPACE];
	if (vdi_path(sr, vdi_uuid, path, err, errlen) < 0)
		return -1;
	if (virtual_size > (uint64_t)INT64_MAX) {
		seterr(err, errlen, "VDI %s: %s: virtual size %llu: %s", vdi_uuid, path,
		       (unsigned long long)virtual_size, strerror(EFBIG));
		return -1;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		seterr(err, errlen, "VDI %s: create %s: %s", vdi_uuid, path,
		       errno == EEXIST ? "File exists (the VDI already exists)" : strerror(errno));
		return -1;
	}
	if (ftruncate(fd, (off_t)virtual_size) < 0) {
		seterr(err, errlen, "VDI %s: %s: set size to %llu bytes: %s", vdi_uuid, path,
		       (unsigned long long)virtual_size, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	if (close(fd) < 0) {
		seterr(err, errlen, "VDI %s: close %s: %s", vdi_uuid, path, strerror(errno));
		unlink(path);
		return -1;
	}
	set_location(location, path);
	return 0;
}

static int file_vdi_destroy(struct sr *sr, const char *vdi_uuid, char *err, size_t errlen)
{
	char path[PATH_SPACE];
	if (vdi_path(sr, vdi_uuid, path, err, errlen) < 0)
		return -1;
	if (unlink(path) < 0) {
		seterr(err, errlen, "VDI %s%s in SR %s: unlink %s: %s", vdi_uuid,
		       errno == ENOENT ? " not found" : "", sr->uuid, path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Open a VDI that must exist and be a regular file; fills st. */
static int open_vdi(const struct sr *sr, const char *vdi_uuid, const char *path, int flags, struct stat *st,
		    char *err, size_t errlen)
{
	int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		seterr(err, errlen, "VDI %s%s in SR %s: open %s: %s", vdi_uuid, errno == ENOENT ? " not found" : "",
		       sr->uuid, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, st) < 0) {
		seterr(err, errlen, "VDI %s: stat %s: %s", vdi_uuid, path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		seterr(err, errlen, "VDI %s: %s is not a regular file", vdi_uuid, path);
		close(fd);
		return -1;
	}
	return fd;
}

static int file_vdi_resize(struct sr *sr, const char *vdi_uuid, uint64_t new_size, char *err, size_t errlen)
{
	char path[PATH_SPACE];
	struct stat st;
	if (vdi_path(sr, vdi_uuid, path, err, errlen) < 0)
		return -1;
	int fd = open_vdi(sr, vdi_uuid, path, O_WRONLY, &st, err, errlen);
	if (fd < 0)
		return -1;
	int rc = 0;
	if (new_size < (uint64_t)st.st_size) {
		seterr(err, errlen,
		       "VDI %s: %s: cannot shrink from %lld to %llu bytes (VDIs only grow, as in XAPI)", vdi_uuid,
		       path, (long long)st.st_size, (unsigned long long)new_size);
		rc = -1;
	} else if (new_size > (uint64_t)INT64_MAX) {
		seterr(err, errlen, "VDI %s: %s: resize to %llu bytes: %s", vdi_uuid, path,
		       (unsigned long long)new_size, strerror(EFBIG));
		rc = -1;
	} else if (new_size > (uint64_t)st.st_size && ftruncate(fd, (off_t)new_size) < 0) {
		seterr(err, errlen, "VDI %s: %s: resize to %llu bytes: %s", vdi_uuid, path,
		       (unsigned long long)new_size, strerror(errno));
		rc = -1;
	}
	if (close(fd) < 0 && rc == 0) {
		seterr(err, errlen, "VDI %s: close %s: %s", vdi_uuid, path, strerror(errno));
		rc = -1;
	}
	return rc;
}

static int file_vdi_stat(struct sr *sr, const char *vdi_uuid, struct sr_vdi_stat *out, char *err, size_t errlen)
{
	char path[PATH_SPACE];
	struct stat st;
	if (vdi_path(sr, vdi_uuid, path, err, errlen) < 0)
		return -1;
	if (lstat(path, &st) < 0) {
		seterr(err, errlen, "VDI %s%s in SR %s: stat %s: %s", vdi_uuid, errno == ENOENT ? " not found" : "",
		       sr->uuid, path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		seterr(err, errlen, "VDI %s: %s is not a regular file", vdi_uuid, path);
		return -1;
	}
	out->vs_virtual_size = (uint64_t)st.st_size;
	out->vs_physical_utilisation = (uint64_t)st.st_blocks * 512;
	return 0;
}

static int file_vdi_locate(struct sr *sr, const char *vdi_uuid, char *location, char *err, size_t errlen)
{
	char path[PATH_SPACE];
	struct sr_vdi_stat st;
	if (file_vdi_stat(sr, vdi_uuid, &st, err, errlen) < 0 || vdi_path(sr, vdi_uuid, path, err, errlen) < 0)
		return -1;
	set_location(location, path);
	return 0;
}

/* Link tmp to dst unless dst exists, then drop tmp. */
static int rename_noreplace(const char *tmp, const char *dst)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* Filesystem without RENAME_NOREPLACE: link refuses an existing dst
	 * just as atomically. */
	if (link(tmp, dst) < 0)
		return -1;
	unlink(tmp);
	return 0;
}

static int file_vdi_copy(struct sr *sr, const char *what, const char *src_uuid, const char *dst_uuid,
			 char *location, char *err, size_t errlen)
{
	char src[PATH_SPACE], dst[PATH_SPACE], tmp[PATH_SPACE];
	struct stat st;
	if (vdi_path(sr, src_uuid, src, err, errlen) < 0 || vdi_path(sr, dst_uuid, dst, err, errlen) < 0)
		return -1;
	int in = open_vdi(sr, src_uuid, src, O_RDONLY, &st, err, errlen);
	if (in < 0)
		return -1;
	struct stat dst_st;
	int exists = lstat(dst, &dst_st) == 0;
	if (exists || errno != ENOENT) {
		seterr(err, errlen, "%s of VDI %s: destination %s: %s", what, src_uuid, dst,
		       exists ? "File exists (the VDI already exists)" : strerror(errno));
		close(in);
		return -1;
	}
	/* Room for what the source really holds (its data extents). */
	struct statvfs vfs;
	if (fstatvfs(in, &vfs) < 0) {
		seterr(err, errlen, "%s of VDI %s: statvfs %s: %s", what, src_uuid, sr->path, strerror(errno));
		close(in);
		return -1;
	}
	uint64_t needed = (uint64_t)st.st_blocks * 512;
	uint64_t avail = (uint64_t)vfs.f_bavail * (vfs.f_frsize ? vfs.f_frsize : vfs.f_bsize);
	if (needed > avail) {
		seterr(err, errlen,
		       "%s of VDI %s: not enough space in SR %s (%s): needs %llu bytes, %llu available: %s", what,
		       src_uuid, sr->uuid, sr->path, (unsigned long long)needed, (unsigned long long)avail,
		       strerror(ENOSPC));
		close(in);
		return -1;
	}

	snprintf(tmp, sizeof tmp, "%s/.%s" VDI_SUFFIX TMP_SUFFIX, sr->path, dst_uuid);
	int out = mkostemp(tmp, O_CLOEXEC);
	if (out < 0) {
		seterr(err, errlen, "%s of VDI %s: create %s: %s", what, src_uuid, tmp, strerror(errno));
		close(in);
		return -1;
	}
	int rc = -1;
	if (ftruncate(out, st.st_size) < 0)
		seterr(err, errlen, "%s of VDI %s: %s: set size to %lld bytes: %s", what, src_uuid, tmp,
		       (long long)st.st_size, strerror(errno));
	else if (sr_copy_sparse(in, src, out, tmp, (uint64_t)st.st_size, 0, err, errlen) < 0)
		; /* err says why */
	else if (fsync(out) < 0)
		seterr(err, errlen, "%s of VDI %s: fsync %s: %s", what, src_uuid, tmp, strerror(errno));
	else
		rc = 0;
	if (close(out) < 0 && rc == 0) {
		seterr(err, errlen, "%s of VDI %s: close %s: %s", what, src_uuid, tmp, strerror(errno));
		rc = -1;
	}
	close(in);
	if (rc == 0 && rename_noreplace(tmp, dst) < 0) {
		seterr(err, errlen, "%s of VDI %s: rename %s to %s: %s", what, src_uuid, tmp, dst,
		       errno == EEXIST ? "File exists (the VDI already exists)" : strerror(errno));
		rc = -1;
	}
	if (rc < 0) {
		unlink(tmp);
		return -1;
	}
	/* Make the new name durable too; best effort, the copy is complete
	 * and in place whatever this says. */
	int dfd = open(sr->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	set_location(location, dst);
	return 0;
}

static int file_vdi_snapshot(struct sr *sr, const char *src_uuid, const char *dst_uuid, char *location,
			     char *err, size_t errlen)
{
	return file_vdi_copy(sr, "snapshot", src_uuid, dst_uuid, location, err, errlen);
}

static int file_vdi_clone(struct sr *sr, const char *src_uuid, const char *dst_uuid, char *location, char *err,
			  size_t errlen)
{
	return file_vdi_copy(sr, "clone", src_uuid, dst_uuid, location, err, errlen);
}

const struct sr_driver sr_file_driver = {
	.sd_type = "file",
	.sd_attach = file_attach,
	.sd_detach = file_detach,
	.sd_space = file_space,
	.sd_vdi_create = file_vdi_create,
	.sd_vdi_destroy = file_vdi_destroy,
	.sd_vdi_resize = file_vdi_resize,
	.sd_vdi_snapshot = file_vdi_snapshot,
	.sd_vdi_clone = file_vdi_clone,
	.sd_vdi_stat = file_vdi_stat,
	.sd_vdi_locate = file_vdi_locate,
};
