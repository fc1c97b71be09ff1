/* simfix.c - see simfix.h */
#include "simfix.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tls.h"

uint64_t simfix_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void simfix_sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

bool simfix_simdom(char *path, size_t len, char *err, size_t errlen)
{
	const char *bin = getenv("POOLD_BIN");
	if (!bin || !*bin)
		bin = getenv("BINDIR");
	snprintf(path, len, "%s/pool-simdom", bin && *bin ? bin : "bin");
	if (access(path, X_OK) == 0)
		return true;
	snprintf(err, errlen, "%s not found: build it (make), or set POOLD_BIN", path);
	return false;
}

bool simfix_tmpdir(char *dir, size_t len, const char *prefix, char *err, size_t errlen)
{
	snprintf(dir, len, "/tmp/%s.XXXXXX", prefix);
	if (mkdtemp(dir))
		return true;
	snprintf(err, errlen, "mkdtemp %s: %s", dir, strerror(errno));
	return false;
}

struct backend *simfix_backend(const char *dir, const char *simdom, uint64_t mem, char *err,
			       size_t errlen)
{
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
		return NULL;
	}
	return backend_sim_new(dir, simdom, mem, 2, SIMFIX_VENDOR, SIMFIX_FEATURES, err, errlen);
}

struct be_domain_config simfix_config(const char *name, uint64_t mem, uint64_t touch, uint64_t rate,
				      uint64_t working_set, int pct_zero, int pct_text, int pct_random)
{
	static unsigned seq;
	struct be_domain_config c;
	memset(&c, 0, sizeof c);
	/* unique within the process and across runs close together */
	snprintf(c.dc_uuid, sizeof c.dc_uuid, "00000000-0000-4000-8%03x-%012llx",
		 __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED) & 0xfff,
		 (unsigned long long)(simfix_now_ms() & 0xffffffffffffull));
	snprintf(c.dc_name, sizeof c.dc_name, "%s", name);
	c.dc_memory = mem;
	c.dc_vcpus = 2;
	c.dc_workload.wl_touch_pages = touch;
	c.dc_workload.wl_dirty_pages_per_s = rate;
	c.dc_workload.wl_working_set_pages = working_set;
	c.dc_workload.wl_pct_zero = pct_zero;
	c.dc_workload.wl_pct_text = pct_text;
	c.dc_workload.wl_pct_random = pct_random;
	return c;
}

int simfix_destroy_all(struct backend *be)
{
	struct be_domain_info *v = NULL;
	int n = 0;
	if (be->be_ops->bo_domain_list(be, &v, &n) != 0)
		return -1;
	for (int i = 0; i < n; i++)
		be->be_ops->bo_domain_destroy(be, v[i].di_domid);
	free(v);
	return n;
}

void simfix_wipe(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char p[PATH_MAX];
		snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			simfix_wipe(p);
		else
			unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

bool simfix_tls(const char *dir, SSL_CTX **srv, SSL_CTX **cli, char *err, size_t errlen)
{
	char ca[PATH_MAX], cak[PATH_MAX], a[PATH_MAX], ak[PATH_MAX], b[PATH_MAX], bk[PATH_MAX];
	snprintf(ca, sizeof ca, "%.200s/ca.pem", dir);
	snprintf(cak, sizeof cak, "%.200s/ca.key", dir);
	snprintf(a, sizeof a, "%.200s/a.pem", dir);
	snprintf(ak, sizeof ak, "%.200s/a.key", dir);
	snprintf(b, sizeof b, "%.200s/b.pem", dir);
	snprintf(bk, sizeof bk, "%.200s/b.key", dir);
	const char *names[] = {"localhost", "127.0.0.1", NULL};
	*srv = *cli = NULL;
	if (!tls_ca_create(ca, cak, "test pool CA", err, errlen) ||
	    !tls_cert_issue(ca, cak, "host-a", names, 2, a, ak, err, errlen) ||
	    !tls_cert_issue(ca, cak, "host-b", names, 2, b, bk, err, errlen))
		return false;
	*srv = tls_server_ctx(b, bk, ca, 1, err, errlen);
	*cli = *srv ? tls_client_ctx(ca, a, ak, err, errlen) : NULL;
	if (*srv && *cli)
		return true;
	SSL_CTX_free(*srv);
	*srv = NULL;
	return false;
}
