/*
 * sr.c - what every SR driver shares: the uuid rule and the sparse copy (lseek SEEK_DATA/SEEK_HOLE + copy_file_range, falling
 * back to pread/pwrite).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sr.h"
#include "util.h"

#define COPY_CHUNK (1024 * 1024) /* pread/pwrite fallback piece */

bool sr_uuid_valid(const char *uuid)
{
	if (!uuid || !uuid[0] || uuid[0] == '.' || strlen(uuid) > SR_UUID_MAX || strstr(uuid, ".."))
		return false;
	for (const char *p = uuid; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '_' || c == '.'))
			return false;
	}
	return true;
}

__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static bool all_zero(const unsigned char *buf, size_t n)
{
	return n == 0 || (buf[0] == 0 && memcmp(buf, buf + 1, n - 1) == 0);
}

/* [start, end) by pread/pwrite; *buf is allocated on first use. Returns 0,
 * 1 when the source ended early (it shrank meanwhile), or -1. */
static int copy_plain(int in_fd, const char *in_name, int out_fd, const char *out_name, off_t start, off_t end,
		      unsigned char **buf, char *err, size_t errlen)
{
	if (!*buf && !(*buf = xmalloc(COPY_CHUNK))) {
		seterr(err, errlen, "copy %s -> %s: %s", in_name, out_name, strerror(ENOMEM));
		return -1;
	}
	for (off_t off = start; off < end;) {
		size_t want = end - off < COPY_CHUNK ? (size_t)(end - off) : COPY_CHUNK;
		size_t got = 0;
		while (got < want) {
			ssize_t n = pread(in_fd, *buf + got, want - got, off + (off_t)got);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				seterr(err, errlen, "read %s at %lld: %s", in_name, (long long)(off + (off_t)got),
				       strerror(errno));
				return -1;
			}
			if (n == 0)
				break;
			got += (size_t)n;
		}
		/* The destination is zeros there already: keep it a hole. */
		if (!all_zero(*buf, got)) {
			for (size_t put = 0; put < got;) {
				ssize_t n = pwrite(out_fd, *buf + put, got - put, off + (off_t)put);
				if (n < 0 && errno == EINTR)
					continue;
				if (n < 0) {
					seterr(err, errlen, "write %s at %lld: %s", out_name,
					       (long long)(off + (off_t)put), strerror(errno));
					return -1;
				}
				put += (size_t)n;
			}
		}
		if (got < want)
			return 1;
		off += (off_t)got;
	}
	return 0;
}

/* [start, end) by copy_file_range, switching *plain on (and finishing with
 * copy_plain) when the kernel cannot copy between these files. */
static int copy_extent(int in_fd, const char *in_name, int out_fd, const char *out_name, off_t start, off_t end,
		       bool *plain, unsigned char **buf, char *err, size_t errlen)
{
	off_t in_off = start, out_off = start;
	while (!*plain && in_off < end) {
		ssize_t n = copy_file_range(in_fd, &in_off, out_fd, &out_off, (size_t)(end - in_off), 0);
		if (n > 0)
			continue; /* both offsets advanced */
		if (n == 0)
			return 1; /* source ended early */
		if (errno == EINTR)
			continue;
		if (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP ||
		    errno == ENOTSUP || errno == EBADF || errno == EPERM) {
			*plain = true;
			break;
		}
		seterr(err, errlen, "copy_file_range %s -> %s at %lld: %s", in_name, out_name, (long long)in_off,
		       strerror(errno));
		return -1;
	}
	if (in_off >= end)
		return 0;
	return copy_plain(in_fd, in_name, out_fd, out_name, in_off, end, buf, err, errlen);
}

int sr_copy_sparse(int in_fd, const char *in_name, int out_fd, const char *out_name, uint64_t size,
		   unsigned flags, char *err, size_t errlen)
{
	if (size > (uint64_t)INT64_MAX) {
		seterr(err, errlen, "copy %s -> %s: size %llu is too large", in_name, out_name,
		       (unsigned long long)size);
		return -1;
	}
	off_t end = (off_t)size;
	bool plain = flags & SR_COPY_PLAIN;
	unsigned char *buf = NULL;
	int rc = 0;
	for (off_t off = 0; off < end;) {
		off_t data = lseek(in_fd, off, SEEK_DATA), hole;
		if (data < 0 && errno == ENXIO)
			break; /* only a hole from off to the end */
		if (data < 0 && (errno == EINVAL || errno == EOPNOTSUPP)) {
			data = off; /* no SEEK_DATA here: all the rest is data */
			hole = end;
		} else if (data < 0) {
			seterr(err, errlen, "lseek(SEEK_DATA) %s at %lld: %s", in_name, (long long)off,
			       strerror(errno));
			rc = -1;
			break;
		} else {
			if (data >= end)
				break;
			hole = lseek(in_fd, data, SEEK_HOLE);
			if (hole < 0 && errno == ENXIO)
				break; /* shrank meanwhile */
			if (hole < 0) {
				seterr(err, errlen, "lseek(SEEK_HOLE) %s at %lld: %s", in_name, (long long)data,
				       strerror(errno));
				rc = -1;
				break;
			}
			if (hole > end)
				hole = end;
		}
		int r = copy_extent(in_fd, in_name, out_fd, out_name, data, hole, &plain, &buf, err, errlen);
		if (r < 0)
			rc = -1;
		if (r != 0)
			break;
		off = hole;
	}
	free(buf);
	return rc;
}
