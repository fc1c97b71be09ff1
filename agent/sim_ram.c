/*
 * sim_ram.c - a sim domain's guest RAM through its memfd: where its data
 * lies (holes are zero pages never written), runs of pages in and out,
 * and the check of all of it against the hashes a migration sent (see
 * sim_mig.h for when a mapping and when pwrite).
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "sim_mig.h"

#define PG SIM_PG

bool sim_ram_next_data(int fd, uint64_t p, uint64_t npages, uint64_t *ds, uint64_t *de)
{
	off_t s = lseek(fd, (off_t)(p * PG), SEEK_DATA);
	if (s < 0) {
		if (errno == ENXIO)
			return false;
		*ds = p; /* no SEEK_DATA: treat everything as data */
		*de = npages;
		return true;
	}
	off_t e = lseek(fd, s, SEEK_HOLE);
	if (e < 0)
		e = (off_t)(npages * PG);
	*ds = (uint64_t)s / PG;
	*de = ((uint64_t)e + PG - 1) / PG;
	if (*de > npages)
		*de = npages;
	return *ds < npages;
}

int sim_ram_pwrite(int fd, const void *buf, uint64_t p, uint64_t n)
{
	size_t len = (size_t)(n * PG), done = 0;
	while (done < len) {
		ssize_t r = pwrite(fd, (const char *)buf + done, len - done, (off_t)(p * PG + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return -1;
		}
		done += (size_t)r;
	}
	return 0;
}

int sim_ram_punch(int fd, uint64_t p)
{
	static const unsigned char zp[PG];
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(p * PG), PG) == 0)
		return 0;
	return sim_ram_pwrite(fd, zp, p, 1);
}

/* The hole [p, e): each page must have been sent as a zero page. */
static uint64_t verify_hole(const uint64_t *want, uint64_t zero_hash, uint64_t p, uint64_t e, uint64_t *bad,
			    uint64_t diff)
{
	for (; p < e; p++)
		if (want[p] != zero_hash && diff++ == 0)
			*bad = p;
	return diff;
}

uint64_t sim_ram_verify(const struct be_sim_map *m, mig_hash_fn hash, const uint64_t *want, uint64_t zero_hash,
			uint64_t *bad)
{
	uint64_t diff = 0, p = 0, n = m->sm_npages;
	while (p < n) {
		uint64_t ds, de;
		if (!sim_ram_next_data(m->sm_ram_fd, p, n, &ds, &de))
			ds = de = n;
		diff = verify_hole(want, zero_hash, p, ds, bad, diff);
		for (p = ds; p < de; p++)
			if (want[p] != hash(m->sm_ram + p * PG) && diff++ == 0)
				*bad = p;
	}
	return diff;
}
