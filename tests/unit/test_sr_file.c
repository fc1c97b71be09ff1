/*
 * test_sr_file.c - unit tests for the file SR driver (sr/sr_file.c) and the
 * shared pieces (sr/sr.c): attach, space accounting, sparse create, data
 * growing the physical utilisation, snapshot/clone as sparse independent
 * copies, resize (grow only), destroy, uuid checks, refusals (destination
 * exists, no room: on a 4 MiB tmpfs when we may mount one) leaving no
 * temporary behind. Everything happens in a mkdtemp directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "sr.h"

#define KiB (1024ULL)
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

static const struct sr_driver *const D = &sr_file_driver;

struct fx {
	char dir[PATH_MAX];    /* the mkdtemp directory */
	char srdir[PATH_MAX];  /* canonical SR directory (dir/sr) */
	char mnt[PATH_MAX];    /* a tmpfs mounted here, when non-empty */
	struct sr *sr;
	char err[1024];
};

/* ---- helpers ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof *fx);
	if (!fx)
		return -1;
	strcpy(fx->dir, "/tmp/test_sr_file.XXXXXX");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		return -1;
	}
	char path[PATH_MAX + 8];
	snprintf(path, sizeof path, "%s/sr", fx->dir);
	fx->sr = D->sd_attach("sr-1", path, true, fx->err, sizeof fx->err);
	if (!fx->sr || !realpath(path, fx->srdir)) {
		fprintf(stderr, "attach %s: %s\n", path, fx->err);
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	D->sd_detach(fx->sr);
	if (fx->mnt[0])
		umount2(fx->mnt, MNT_DETACH);
	nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static void vdi_file(const struct fx *fx, const char *uuid, char *out, size_t len)
{
	snprintf(out, len, "%s/%s.img", fx->srdir, uuid);
}

static void fill(unsigned char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(seed * 131 + i * 7 + (i >> 12) + 1);
}

/* Write len bytes of pattern seed at off (and make it stable on disk). */
static void write_at(const char *path, uint64_t off, size_t len, unsigned seed)
{
	unsigned char *buf = malloc(len);
	assert_non_null(buf);
	fill(buf, len, seed);
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	assert_int_equal(fsync(fd), 0);
	close(fd);
	free(buf);
}

/* Does [off, off+len) of path hold pattern seed? */
static bool has_pattern(const char *path, uint64_t off, size_t len, unsigned seed)
{
	unsigned char *want = malloc(len), *got = malloc(len);
	assert_true(want && got);
	fill(want, len, seed);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	bool ok = pread(fd, got, len, (off_t)off) == (ssize_t)len && memcmp(want, got, len) == 0;
	close(fd);
	free(want);
	free(got);
	return ok;
}

/* Compare [start, end) of two open files. */
static bool same_range(int a, int b, off_t start, off_t end)
{
	static unsigned char ba[MiB], bb[MiB];
	for (off_t off = start; off < end;) {
		size_t n = end - off < (off_t)MiB ? (size_t)(end - off) : MiB;
		if (pread(a, ba, n, off) != (ssize_t)n || pread(b, bb, n, off) != (ssize_t)n)
			return false;
		if (memcmp(ba, bb, n) != 0)
			return false;
		off += (off_t)n;
	}
	return true;
}

/* Compare the data extents of x against y's bytes at the same places. */
static bool extents_match(int x, int y, off_t size)
{
	for (off_t off = 0; off < size;) {
		off_t data = lseek(x, off, SEEK_DATA);
		if (data < 0)
			return errno == ENXIO;
		off_t hole = lseek(x, data, SEEK_HOLE);
		if (hole < 0 || !same_range(x, y, data, hole))
			return false;
		off = hole;
	}
	return true;
}

/* Equal contents: outside the union of both files' data extents both read
 * as zeros, so comparing inside that union compares everything. */
static bool same_content(const char *pa, const char *pb)
{
	int a = open(pa, O_RDONLY), b = open(pb, O_RDONLY);
	assert_true(a >= 0 && b >= 0);
	struct stat sa, sb;
	assert_int_equal(fstat(a, &sa), 0);
	assert_int_equal(fstat(b, &sb), 0);
	bool ok = sa.st_size == sb.st_size && extents_match(a, b, sa.st_size) && extents_match(b, a, sa.st_size);
	close(a);
	close(b);
	return ok;
}

static uint64_t phys(struct fx *fx, const char *uuid)
{
	struct sr_vdi_stat vs;
	assert_int_equal(D->sd_vdi_stat(fx->sr, uuid, &vs, fx->err, sizeof fx->err), 0);
	return vs.vs_physical_utilisation;
}

static void space(struct fx *fx, struct sr_space *s)
{
	assert_int_equal(D->sd_space(fx->sr, s, fx->err, sizeof fx->err), 0);
	assert_true(s->ss_free <= s->ss_physical_size);
	assert_int_equal(s->ss_physical_utilisation + s->ss_free, s->ss_physical_size);
}

/* How many directory entries besides . and ..; *hidden counts those
 * starting with '.' (temporaries). */
static int entries(const char *dir, int *hidden)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	*hidden = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n++;
		if (de->d_name[0] == '.')
			++*hidden;
	}
	closedir(d);
	return n;
}

static void assert_contains(const char *s, const char *part)
{
	if (!strstr(s, part)) {
		fprintf(stderr, "\"%s\" lacks \"%s\"\n", s, part);
		fail();
	}
}

static uint64_t diff(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

/* ---- tests ---- */

static void test_driver_find(void **state)
{
	(void)state;
	assert_ptr_equal(sr_driver_find("file"), &sr_file_driver);
	assert_null(sr_driver_find("nfs"));
	assert_null(sr_driver_find(NULL));
	assert_string_equal(sr_file_driver.sd_type, "file");
	D->sd_detach(NULL);
}

static void test_attach(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX + 32];

	/* create=true makes the directory and its parents. */
	snprintf(path, sizeof path, "%s/new/nested", fx->dir);
	struct sr *sr = D->sd_attach("sr-2", path, true, fx->err, sizeof fx->err);
	assert_non_null(sr);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	D->sd_detach(sr);
	/* An existing directory is accepted, with or without create. */
	sr = D->sd_attach("sr-2", path, false, fx->err, sizeof fx->err);
	assert_non_null(sr);
	D->sd_detach(sr);
	sr = D->sd_attach("sr-2", path, true, fx->err, sizeof fx->err);
	assert_non_null(sr);
	D->sd_detach(sr);

	/* Missing without create. */
	snprintf(path, sizeof path, "%s/absent", fx->dir);
	assert_null(D->sd_attach("sr-3", path, false, fx->err, sizeof fx->err));
	assert_contains(fx->err, path);
	assert_contains(fx->err, strerror(ENOENT));
	assert_int_equal(access(path, F_OK), -1);

	/* A file is not an SR, whether or not we may create. */
	snprintf(path, sizeof path, "%s/afile", fx->dir);
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_null(D->sd_attach("sr-4", path, false, fx->err, sizeof fx->err));
	assert_contains(fx->err, path);
	assert_contains(fx->err, strerror(ENOTDIR));
	assert_null(D->sd_attach("sr-4", path, true, fx->err, sizeof fx->err));
	assert_contains(fx->err, strerror(ENOTDIR));
	/* ... nor anything under a file. */
	snprintf(path, sizeof path, "%s/afile/sub", fx->dir);
	assert_null(D->sd_attach("sr-4", path, true, fx->err, sizeof fx->err));
	assert_contains(fx->err, path);

	assert_null(D->sd_attach("sr-5", NULL, true, fx->err, sizeof fx->err));
	assert_contains(fx->err, "path is missing");
	assert_null(D->sd_attach("sr-5", "", true, fx->err, sizeof fx->err));
}

static void test_create_sparse(void **state)
{
	struct fx *fx = *state;
	struct sr_space before, after;
	char loc[SR_LOCATION_MAX], want[PATH_MAX + 64];

	space(fx, &before);
	assert_int_equal(before.ss_virtual_allocation, 0);
	assert_true(before.ss_physical_size > 0);
	assert_int_equal(D->sd_vdi_create(fx->sr, "vdi-a", GiB, loc, fx->err, sizeof fx->err), 0);
	vdi_file(fx, "vdi-a", want, sizeof want);
	assert_string_equal(loc, want);

	struct sr_vdi_stat vs;
	assert_int_equal(D->sd_vdi_stat(fx->sr, "vdi-a", &vs, fx->err, sizeof fx->err), 0);
	assert_int_equal(vs.vs_virtual_size, GiB);
	assert_true(vs.vs_physical_utilisation < 64 * KiB);
	struct stat st;
	assert_int_equal(stat(want, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	space(fx, &after);
	assert_int_equal(after.ss_virtual_allocation, before.ss_virtual_allocation + GiB);
	/* Nothing allocated: free space moves by what others on this
	 * filesystem did meanwhile, far from 1 GiB. */
	assert_true(diff(before.ss_free, after.ss_free) < 64 * MiB);

	/* Again: refused, the VDI untouched. */
	assert_int_equal(D->sd_vdi_create(fx->sr, "vdi-a", MiB, loc, fx->err, sizeof fx->err), -1);
	assert_contains(fx->err, want);
	assert_contains(fx->err, strerror(EEXIST));
	assert_int_equal(stat(want, &st), 0);
	assert_int_equal(st.st_size, (off_t)GiB);

	/* NULL location is allowed; a second VDI adds up; other files and
	 * hidden temporaries are not VDIs. */
	assert_int_equal(D->sd_vdi_create(fx->sr, "vdi-b", 3 * MiB, NULL, fx->err, sizeof fx->err), 0);
	char other[PATH_MAX + 64];
	snprintf(other, sizeof other, "%s/notes.txt", fx->srdir);
	int fd = open(other, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0 && ftruncate(fd, 5 * MiB) == 0);
	close(fd);
	snprintf(other, sizeof other, "%s/.vdi-c.img.tmp-abcdef", fx->srdir);
	fd = open(other, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0 && ftruncate(fd, 7 * MiB) == 0);
	close(fd);
	space(fx, &after);
	assert_int_equal(after.ss_virtual_allocation, GiB + 3 * MiB);

	/* A zero-size VDI is fine. */
	assert_int_equal(D->sd_vdi_create(fx->sr, "empty", 0, NULL, fx->err, sizeof fx->err), 0);
	assert_int_equal(D->sd_vdi_stat(fx->sr, "empty", &vs, fx->err, sizeof fx->err), 0);
	assert_int_equal(vs.vs_virtual_size, 0);
}

static const uint64_t offs[] = {0, 100 * MiB, 700 * MiB + 4 * KiB, GiB - 256 * KiB};
#define NOFFS (sizeof offs / sizeof offs[0])
#define PIECE (256 * KiB)

/* vdi-a: 1 GiB with PIECE bytes of pattern i at offs[i]. */
static void make_data_vdi(struct fx *fx, char *path)
{
	assert_int_equal(D->sd_vdi_create(fx->sr, "vdi-a", GiB, path, fx->err, sizeof fx->err), 0);
	uint64_t p0 = phys(fx, "vdi-a");
	for (size_t i = 0; i < NOFFS; i++)
		write_at(path, offs[i], PIECE, (unsigned)i);
	uint64_t p1 = phys(fx, "vdi-a");
	/* Grows by what was written (plus at most some metadata). */
	assert_true(p1 - p0 >= NOFFS * PIECE);
	assert_true(p1 - p0 <= NOFFS * PIECE + MiB);
}

static void test_data_snapshot_clone(void **state)
{
	struct fx *fx = *state;
	char a[SR_LOCATION_MAX], s[SR_LOCATION_MAX], c[SR_LOCATION_MAX];
	make_data_vdi(fx, a);
	uint64_t pa = phys(fx, "vdi-a");

	struct sr_space before, after;
	space(fx, &before);
	assert_int_equal(D->sd_vdi_snapshot(fx->sr, "vdi-a", "snap-1", s, fx->err, sizeof fx->err), 0);
	char want[PATH_MAX + 64];
	vdi_file(fx, "snap-1", want, sizeof want);
	assert_string_equal(s, want);
	space(fx, &after);
	assert_int_equal(after.ss_virtual_allocation, before.ss_virtual_allocation + GiB);

	struct sr_vdi_stat vs;
	assert_int_equal(D->sd_vdi_stat(fx->sr, "snap-1", &vs, fx->err, sizeof fx->err), 0);
	assert_int_equal(vs.vs_virtual_size, GiB);
	/* Holes preserved: about the source's allocation, not 1 GiB. */
	assert_true(diff(vs.vs_physical_utilisation, pa) <= MiB);
	assert_true(same_content(a, s));
	for (size_t i = 0; i < NOFFS; i++)
		assert_true(has_pattern(s, offs[i], PIECE, (unsigned)i));
	struct stat st;
	assert_int_equal(stat(s, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* Clone: writable and independent. */
	assert_int_equal(D->sd_vdi_clone(fx->sr, "vdi-a", "clone-1", c, fx->err, sizeof fx->err), 0);
	assert_true(same_content(a, c));
	assert_true(diff(phys(fx, "clone-1"), pa) <= MiB);
	write_at(c, offs[1], PIECE, 99);
	write_at(c, 500 * MiB, PIECE, 98); /* into a hole */
	assert_true(has_pattern(c, offs[1], PIECE, 99));
	assert_true(has_pattern(a, offs[1], PIECE, 1));
	assert_true(has_pattern(s, offs[1], PIECE, 1));
	assert_false(same_content(a, c));
	assert_true(same_content(a, s));
	assert_int_equal(phys(fx, "vdi-a"), pa);
	/* ... and the source's writes do not reach the copies. */
	write_at(a, offs[0], PIECE, 97);
	assert_true(has_pattern(s, offs[0], PIECE, 0));
	assert_true(has_pattern(c, offs[0], PIECE, 0));

	/* A snapshot of a snapshot, and of an all-hole VDI. */
	assert_int_equal(D->sd_vdi_snapshot(fx->sr, "snap-1", "snap-2", NULL, fx->err, sizeof fx->err), 0);
	vdi_file(fx, "snap-2", want, sizeof want);
	assert_true(same_content(s, want));
	assert_int_equal(D->sd_vdi_create(fx->sr, "holes", 512 * MiB, NULL, fx->err, sizeof fx->err), 0);
	assert_int_equal(D->sd_vdi_clone(fx->sr, "holes", "holes-2", NULL, fx->err, sizeof fx->err), 0);
	assert_int_equal(D->sd_vdi_stat(fx->sr, "holes-2", &vs, fx->err, sizeof fx->err), 0);
	assert_int_equal(vs.vs_virtual_size, 512 * MiB);
	assert_true(vs.vs_physical_utilisation < 64 * KiB);

	int hidden;
	assert_int_equal(entries(fx->srdir, &hidden), 6);
	assert_int_equal(hidden, 0);
}

static void test_copy_refusals(void **state)
{
	struct fx *fx = *state;
	char a[SR_LOCATION_MAX], b[SR_LOCATION_MAX];
	assert_int_equal(D->sd_vdi_create(fx->sr, "vdi-a", 8 * MiB, a, fx->err, sizeof fx->err), 0);
	write_at(a, MiB, PIECE, 1);
	assert_int_equal(D->sd_vdi_create(fx->sr, "vdi-b", 4 * MiB, b, fx->err, sizeof fx->err), 0);
	write_at(b, 0, PIECE, 2);

	/* Destination exists: refused, destination untouched. */
	assert_int_equal(D->sd_vdi_snapshot(fx->sr, "vdi-a", "vdi-b", NULL, fx->err, sizeof fx->err), -1);
	assert_contains(fx->err, b);
	assert_contains(fx->err, strerror(EEXIST));
	assert_int_equal(D->sd_vdi_clone(fx->sr, "vdi-a", "vdi-a", NULL, fx->err, sizeof fx->err), -1);
	assert_contains(fx->err, strerror(EEXIST));
	struct sr_vdi_stat vs;
	assert_int_equal(D->sd_vdi_stat(fx->sr, "vdi-b", &vs, fx->err, sizeof fx->err), 0);
	assert_int_equal(vs.vs_virtual_size, 4 * MiB);
	assert_true(has_pattern(b, 0, PIECE, 2));

	/* Missing source: named. */
	assert_int_equal(D->sd_vdi_clone(fx->sr, "nope", "new", NULL, fx->err, sizeof fx->err), -1);
	assert_contains(fx->err, "nope");
	assert_contains(fx->err, "not found");
	assert_contains(fx->err, strerror(ENOENT));

	/* A copy failing half-way (here: a file size limit below the VDI's
	 * size makes the temporary's ftruncate fail) leaves no temporary and
	 * no destination. */
	struct rlimit saved, low;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	low = saved;
	low.rlim_cur = 4 * MiB;
	void (*old)(int) = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &low), 0);
	int rc = D->sd_vdi_snapshot(fx->sr, "vdi-a", "snap-a", NULL, fx->err, sizeof fx->err);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	signal(SIGXFSZ, old);
	assert_int_equal(rc, -1);
	assert_contains(fx->err, "/.snap-a.img.tmp-");
	assert_contains(fx->err, strerror(EFBIG));

	int hidden;
	assert_int_equal(entries(fx->srdir, &hidden), 2);
	assert_int_equal(hidden, 0);
}

static void test_resize(void **state)
{
	struct fx *fx = *state;
	char a[SR_LOCATION_MAX];
	assert_int_equal(D->sd_vdi_create(fx->sr, "vdi-a", GiB, a, fx->err, sizeof fx->err), 0);
	write_at(a, GiB - PIECE, PIECE, 5);
	uint64_t p = phys(fx, "vdi-a");

	assert_int_equal(D->sd_vdi_resize(fx->sr, "vdi-a", 2 * GiB, fx->err, sizeof fx->err), 0);
	struct sr_vdi_stat vs;
	assert_int_equal(D->sd_vdi_stat(fx->sr, "vdi-a", &vs, fx->err, sizeof fx->err), 0);
	assert_int_equal(vs.vs_virtual_size, 2 * GiB);
	assert_int_equal(vs.vs_physical_utilisation, p); /* the new tail is a hole */
	assert_true(has_pattern(a, GiB - PIECE, PIECE, 5));
	struct sr_space sp;
	space(fx, &sp);
	assert_int_equal(sp.ss_virtual_allocation, 2 * GiB);

	/* Same size: nothing to do. Smaller: refused, size unchanged. */
	assert_int_equal(D->sd_vdi_resize(fx->sr, "vdi-a", 2 * GiB, fx->err, sizeof fx->err), 0);
	assert_int_equal(D->sd_vdi_resize(fx->sr, "vdi-a", GiB, fx->err, sizeof fx->err), -1);
	assert_contains(fx->err, "shrink");
	assert_contains(fx->err, a);
	assert_int_equal(D->sd_vdi_stat(fx->sr, "vdi-a", &vs, fx->err, sizeof fx->err), 0);
	assert_int_equal(vs.vs_virtual_size, 2 * GiB);

	assert_int_equal(D->sd_vdi_resize(fx->sr, "nope", GiB, fx->err, sizeof fx->err), -1);
	assert_contains(fx->err, "nope");
	assert_contains(fx->err, strerror(ENOENT));
	assert_int_equal(D->sd_vdi_resize(fx->sr, "vdi-a", UINT64_MAX, fx->err, sizeof fx->err), -1);
	assert_contains(fx->err, a);
}

static void test_destroy(void **state)
{
	struct fx *fx = *state;
	char a[SR_LOCATION_MAX];
	assert_int_equal(D->sd_vdi_create(fx->sr, "vdi-a", GiB, a, fx->err, sizeof fx->err), 0);
	assert_int_equal(D->sd_vdi_create(fx->sr, "vdi-b", MiB, NULL, fx->err, sizeof fx->err), 0);
	assert_int_equal(D->sd_vdi_destroy(fx->sr, "vdi-a", fx->err, sizeof fx->err), 0);
	assert_int_equal(access(a, F_OK), -1);
	assert_int_equal(errno, ENOENT);
	struct sr_space sp;
	space(fx, &sp);
	assert_int_equal(sp.ss_virtual_allocation, MiB);

	assert_int_equal(D->sd_vdi_destroy(fx->sr, "vdi-a", fx->err, sizeof fx->err), -1);
	assert_contains(fx->err, "VDI vdi-a not found");
	assert_contains(fx->err, a);
	assert_contains(fx->err, strerror(ENOENT));
	struct sr_vdi_stat vs;
	assert_int_equal(D->sd_vdi_stat(fx->sr, "vdi-a", &vs, fx->err, sizeof fx->err), -1);
	assert_contains(fx->err, "not found");
}

static void test_bad_uuids(void **state)
{
	struct fx *fx = *state;
	char long_uuid[SR_UUID_MAX + 2];
	memset(long_uuid, 'a', sizeof long_uuid - 1);
	long_uuid[sizeof long_uuid - 1] = '\0';
	const char *bad[] = {"../x", "a/b", "", "..", ".", ".hidden", "x..y", "a b", "a\nb", "/etc/passwd",
			     long_uuid, NULL};
	char loc[SR_LOCATION_MAX];
	struct sr_vdi_stat vs;

	assert_int_equal(D->sd_vdi_create(fx->sr, "good", MiB, NULL, fx->err, sizeof fx->err), 0);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *u = bad[i];
		assert_false(sr_uuid_valid(u));
		assert_int_equal(D->sd_vdi_create(fx->sr, u, MiB, loc, fx->err, sizeof fx->err), -1);
		assert_contains(fx->err, "invalid VDI uuid");
		assert_contains(fx->err, fx->srdir);
		assert_null(strchr(fx->err, '\n'));
		assert_int_equal(D->sd_vdi_destroy(fx->sr, u, fx->err, sizeof fx->err), -1);
		assert_int_equal(D->sd_vdi_resize(fx->sr, u, GiB, fx->err, sizeof fx->err), -1);
		assert_int_equal(D->sd_vdi_stat(fx->sr, u, &vs, fx->err, sizeof fx->err), -1);
		assert_int_equal(D->sd_vdi_snapshot(fx->sr, "good", u, loc, fx->err, sizeof fx->err), -1);
		assert_contains(fx->err, "invalid VDI uuid");
		assert_int_equal(D->sd_vdi_clone(fx->sr, u, "new", loc, fx->err, sizeof fx->err), -1);
		assert_contains(fx->err, "invalid VDI uuid");
	}
	assert_true(sr_uuid_valid("0b8e1f3c-6c1d-4c6e-9a43-2f5b1c7e8d90"));
	assert_true(sr_uuid_valid("a.b_c-D"));
	long_uuid[SR_UUID_MAX] = '\0';
	assert_true(sr_uuid_valid(long_uuid));

	/* Nothing escaped: the SR holds only "good", its parent only "sr". */
	int hidden;
	assert_int_equal(entries(fx->srdir, &hidden), 1);
	assert_int_equal(entries(fx->dir, &hidden), 1);
}

static void test_copy_plain(void **state)
{
	struct fx *fx = *state;
	char a[SR_LOCATION_MAX], b[PATH_MAX + 16];
	assert_int_equal(D->sd_vdi_create(fx->sr, "vdi-a", 64 * MiB, a, fx->err, sizeof fx->err), 0);
	write_at(a, 3 * MiB + 100, PIECE, 1);
	write_at(a, 40 * MiB, 3 * MiB + 5, 2);
	/* 2 MiB of written zeros: allocated in the source. */
	int fd = open(a, O_WRONLY);
	assert_true(fd >= 0);
	static unsigned char zeros[2 * MiB];
	assert_int_equal(pwrite(fd, zeros, sizeof zeros, 20 * MiB), (ssize_t)sizeof zeros);
	assert_int_equal(fsync(fd), 0);
	close(fd);
	uint64_t pa = phys(fx, "vdi-a");
	assert_true(pa >= 5 * MiB);

	for (unsigned flags = 0; flags <= SR_COPY_PLAIN; flags++) {
		snprintf(b, sizeof b, "%s/copy-%u", fx->dir, flags);
		int in = open(a, O_RDONLY), out = open(b, O_RDWR | O_CREAT | O_EXCL, 0600);
		assert_true(in >= 0 && out >= 0);
		assert_int_equal(ftruncate(out, 64 * MiB), 0);
		assert_int_equal(sr_copy_sparse(in, a, out, b, 64 * MiB, flags, fx->err, sizeof fx->err), 0);
		assert_int_equal(fsync(out), 0);
		struct stat st;
		assert_int_equal(fstat(out, &st), 0);
		close(in);
		close(out);
		assert_true(same_content(a, b));
		if (flags & SR_COPY_PLAIN) /* all-zero pieces skipped */
			assert_true((uint64_t)st.st_blocks * 512 <= pa - 2 * MiB + 64 * KiB);
		else
			assert_true(diff((uint64_t)st.st_blocks * 512, pa) <= MiB);
	}
}

/* Mount a 4 MiB tmpfs on fx->dir/small (in a private mount namespace, so
 * nothing leaks if we die). false, with a message, when we may not. */
static bool mount_small(struct fx *fx, char *mnt, size_t len)
{
	snprintf(mnt, len, "%s/small", fx->dir);
	if (geteuid() != 0) {
		fprintf(stderr, "  skipped: not root, cannot mount a small tmpfs\n");
		return false;
	}
	if (unshare(CLONE_NEWNS) < 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0) {
		fprintf(stderr, "  skipped: no private mount namespace: %s\n", strerror(errno));
		return false;
	}
	assert_int_equal(mkdir(mnt, 0700), 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=4m,mode=0700") < 0) {
		fprintf(stderr, "  skipped: mount tmpfs on %s: %s\n", mnt, strerror(errno));
		return false;
	}
	snprintf(fx->mnt, sizeof fx->mnt, "%.*s", (int)sizeof fx->mnt - 1, mnt);
	return true;
}

static void test_no_room(void **state)
{
	struct fx *fx = *state;
	char mnt[PATH_MAX + 16], path[PATH_MAX + 32];
	if (!mount_small(fx, mnt, sizeof mnt)) {
		skip();
		return;
	}
	char err[1024];
	snprintf(path, sizeof path, "%s/sr", mnt);
	struct sr *sr = D->sd_attach("small", path, true, err, sizeof err);
	assert_non_null(sr);
	char a[SR_LOCATION_MAX], b[SR_LOCATION_MAX];

	/* 1 MiB of data, ~3 MiB free: the snapshot fits. */
	assert_int_equal(D->sd_vdi_create(sr, "vdi-a", 16 * MiB, a, err, sizeof err), 0);
	write_at(a, 0, MiB, 1);
	assert_int_equal(D->sd_vdi_snapshot(sr, "vdi-a", "snap-a", NULL, err, sizeof err), 0);
	struct sr_space sp;
	assert_int_equal(D->sd_space(sr, &sp, err, sizeof err), 0);
	assert_true(sp.ss_physical_size <= 4 * MiB);
	assert_true(sp.ss_free <= 2 * MiB);
	assert_int_equal(sp.ss_virtual_allocation, 32 * MiB);

	/* 1.5 MiB more data, under 1 MiB free: refused with the figures. */
	assert_int_equal(D->sd_vdi_create(sr, "vdi-b", 16 * MiB, b, err, sizeof err), 0);
	write_at(b, 8 * MiB, MiB + MiB / 2, 2);
	assert_int_equal(D->sd_space(sr, &sp, err, sizeof err), 0);
	assert_int_equal(D->sd_vdi_clone(sr, "vdi-b", "clone-b", NULL, err, sizeof err), -1);
	char figures[128];
	snprintf(figures, sizeof figures, "needs %llu bytes, %llu available", (unsigned long long)(MiB + MiB / 2),
		 (unsigned long long)sp.ss_free);
	assert_contains(err, figures);
	assert_contains(err, path);
	assert_contains(err, strerror(ENOSPC));

	/* No temporary left, no destination. */
	int hidden;
	assert_int_equal(entries(path, &hidden), 3);
	assert_int_equal(hidden, 0);

	/* The copy itself running out of room (from the big filesystem, so
	 * copy_file_range across filesystems too): the error names the
	 * destination and the reason. */
	char src[SR_LOCATION_MAX], dst[PATH_MAX + 32];
	assert_int_equal(D->sd_vdi_create(fx->sr, "big", 8 * MiB, src, err, sizeof err), 0);
	write_at(src, 0, 4 * MiB, 3);
	snprintf(dst, sizeof dst, "%s/out", mnt);
	int in = open(src, O_RDONLY), out = open(dst, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(in >= 0 && out >= 0);
	assert_int_equal(ftruncate(out, 8 * MiB), 0);
	assert_int_equal(sr_copy_sparse(in, src, out, dst, 8 * MiB, 0, err, sizeof err), -1);
	assert_contains(err, dst);
	assert_contains(err, strerror(ENOSPC));
	close(in);
	close(out);

	D->sd_detach(sr);
	assert_int_equal(umount2(mnt, 0), 0);
	fx->mnt[0] = '\0';
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_driver_find),
		cmocka_unit_test_setup_teardown(test_attach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_sparse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_snapshot_clone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resize, setup, teardown),
		cmocka_unit_test_setup_teardown(test_destroy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_uuids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_plain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_room, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
