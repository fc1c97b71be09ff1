/*
 * backend_sim.c - the sim hypervisor: every domain is a bin/pool-simdom
 * process (agent/simdom.c) driven over its control socket (simdom.h).
 *
 * No domain table in memory. A domain lives exactly as long as its process,
 * and the process's control socket (abstract, named after this backend's
 * key) is how it is found: the kernel's list of bound sockets is the list
 * of live domains, as Xen's is for Xen. STATE_DIR keeps what outlives a
 * process: dom-N.json records (written here) and dom-N.shutdown (written by
 * a domain whose guest shut down), so a domain that died is still listed
 * (CRASHED or SHUTDOWN) until destroyed. Losing STATE_DIR therefore loses
 * no live domain; a restarted agent makes a new backend on the same
 * directory and finds its domains.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "log.h"
#include "simdom.h"

#define CALL_TIMEOUT_S 10  /* a PAUSE may take the domain up to 5 s */
#define BOOT_TIMEOUT_S 30
#define KILL_WAIT_MS 5000

struct sim {
	char dir[PATH_MAX];
	int dirfd;
	char hvkey[SIMDOM_HVKEY_LEN + 1]; /* names our domains' sockets */
	char simdom[PATH_MAX];
	uint64_t host_memory;
	int cpus;
	char vendor[16];
	char features[BE_FEATURESET_LEN];
};

enum { CALL_OK = 0, CALL_FAIL = -1, CALL_GONE = -2 };

static struct sim *SIM(struct backend *be)
{
	return be->be_priv;
}

static uint64_t round_pages(uint64_t b)
{
	return (b + SIMDOM_PAGE_SIZE - 1) / SIMDOM_PAGE_SIZE * SIMDOM_PAGE_SIZE;
}

/* A process we wait for: a pidfd where the kernel (and valgrind) offer
 * one, else the pid and /proc polling. Domains are not our children (they
 * are reparented to init), so waitpid() cannot be used; an exited domain
 * may linger as a zombie until init reaps it, and counts as gone. */
struct proc {
	pid_t pid;
	int pidfd;
};

/* false when the process is already gone. */
static bool proc_open(struct proc *p, pid_t pid)
{
	p->pid = pid;
	if (pid <= 0) { /* a record without a pid: never kill(0) (our whole process group) */
		p->pidfd = -1;
		return false;
	}
	p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (p->pidfd < 0 && errno == ESRCH)
		return false;
	return true;
}

static void proc_close(struct proc *p)
{
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->pidfd = -1;
}

static int proc_kill(struct proc *p, int sig)
{
	if (p->pidfd >= 0)
		return (int)syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0);
	if (p->pid <= 0) {
		errno = ESRCH;
		return -1;
	}
	return kill(p->pid, sig);
}

/* Gone, or a zombie whose threads have all exited (a zombie leader may
 * still have threads releasing the memory and files). */
static bool proc_exited(pid_t pid)
{
	char path[64], buf[2048];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = 0;
	const char *st = strstr(buf, "\nState:"), *th = strstr(buf, "\nThreads:");
	if (!st)
		return true;
	st += strlen("\nState:");
	while (*st == ' ' || *st == '\t')
		st++;
	bool zombie = *st == 'Z' || *st == 'X';
	return zombie && (!th || atoi(th + strlen("\nThreads:")) <= 1);
}

/* Waits until the process has exited; false on timeout. */
static bool proc_wait(struct proc *p, int timeout_ms)
{
	if (p->pidfd >= 0) {
		struct pollfd pf = {.fd = p->pidfd, .events = POLLIN};
		for (;;) {
			int r = poll(&pf, 1, timeout_ms);
			if (r < 0 && errno == EINTR)
				continue;
			return r > 0;
		}
	}
	for (int waited = 0;; waited++) {
		if (proc_exited(p->pid))
			return true;
		if (waited >= timeout_ms)
			return false;
		usleep(1000);
	}
}

static void file_name(char *buf, size_t len, int domid, const char *ext)
{
	snprintf(buf, len, "dom-%d.%s", domid, ext);
}

static void unlink_dom_file(struct sim *s, int domid, const char *ext)
{
	char n[64];
	file_name(n, sizeof n, domid, ext);
	unlinkat(s->dirfd, n, 0);
}

static bool dom_file_exists(struct sim *s, int domid, const char *ext)
{
	char n[64];
	file_name(n, sizeof n, domid, ext);
	return faccessat(s->dirfd, n, F_OK, 0) == 0;
}

/* ---- the control protocol, client side ---- */

/* One request, one answer. CALL_GONE when no process serves the socket
 * (no error set); CALL_FAIL with be_error set otherwise. With fds, the
 * memfds of the answer are stored there: exactly nfds of them (GET_FDS:
 * three, DISK_LOG: one). */
/* The request sent: the connected socket (>= 0), or CALL_GONE / CALL_FAIL. */
static int sim_call_send(struct backend *be, int domid, struct simdom_req *rq)
{
	struct sim *s = SIM(be);
	rq->rq_magic = SIMDOM_MAGIC;
	rq->rq_version = SIMDOM_PROTO_VERSION;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		be_set_error(be, "socket: %s", strerror(errno));
		return CALL_FAIL;
	}
	struct timeval tv = {.tv_sec = CALL_TIMEOUT_S};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	struct sockaddr_un sa;
	socklen_t salen = simdom_sock_addr(s->hvkey, domid, &sa);
	if (connect(fd, (struct sockaddr *)&sa, salen) != 0) {
		int e = errno;
		close(fd);
		if (e == ENOENT || e == ECONNREFUSED)
			return CALL_GONE;
		be_set_error(be, "domain %d: connect: %s", domid, strerror(e));
		return CALL_FAIL;
	}
	if (send(fd, rq, sizeof *rq, MSG_NOSIGNAL) != (ssize_t)sizeof *rq) {
		int e = errno;
		close(fd);
		if (e == EPIPE || e == ECONNRESET)
			return CALL_GONE;
		be_set_error(be, "domain %d: send: %s", domid, strerror(e));
		return CALL_FAIL;
	}
	return fd;
}

/* Its answer on fd (closed here). */
static int sim_call_answer(struct backend *be, int domid, int fd, struct simdom_resp *rs, int *fds, int nfds)
{
	union {
		char buf[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = rs, .iov_len = sizeof *rs};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof u.buf};
	ssize_t n;
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	int e = errno;
	close(fd);
	int got[3] = {-1, -1, -1}, ngot = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); n > 0 && cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int tmp[3];
		if (k > 3)
			k = 3;
		memcpy(tmp, CMSG_DATA(cm), k * sizeof(int));
		for (size_t i = 0; i < k; i++)
			got[ngot++] = tmp[i];
	}
	int rc = CALL_OK;
	if (n == 0 || (n < 0 && e == ECONNRESET)) {
		rc = CALL_GONE; /* died while answering */
	} else if (n < 0) {
		be_set_error(be, "domain %d: no answer: %s", domid,
			     e == EAGAIN ? "timed out" : strerror(e));
		rc = CALL_FAIL;
	} else if (n != (ssize_t)sizeof *rs || rs->rs_magic != SIMDOM_MAGIC ||
		   rs->rs_version != SIMDOM_PROTO_VERSION) {
		be_set_error(be, "domain %d: bad answer (%zd bytes, version %u; expected %u)", domid,
			     n, n >= 8 ? rs->rs_version : 0, SIMDOM_PROTO_VERSION);
		rc = CALL_FAIL;
	} else if (rs->rs_status != 0) {
		rs->rs_error[sizeof rs->rs_error - 1] = 0;
		be_set_error(be, "domain %d: %s", domid, rs->rs_error);
		rc = CALL_FAIL;
	} else if (fds && ngot != nfds) {
		be_set_error(be, "domain %d: expected %d descriptors, got %d", domid, nfds, ngot);
		rc = CALL_FAIL;
	}
	for (int i = 0; i < ngot; i++) {
		if (rc == CALL_OK && fds)
			fds[i] = got[i];
		else
			close(got[i]);
	}
	return rc;
}

static int sim_call_fds(struct backend *be, int domid, struct simdom_req *rq, struct simdom_resp *rs, int *fds,
			int nfds)
{
	int fd = sim_call_send(be, domid, rq);
	return fd < 0 ? fd : sim_call_answer(be, domid, fd, rs, fds, nfds);
}

static int sim_call(struct backend *be, int domid, struct simdom_req *rq, struct simdom_resp *rs, int *fds)
{
	return sim_call_fds(be, domid, rq, rs, fds, 3);
}

/* ---- records ---- */

struct rec {
	char uuid[BE_UUID_LEN];
	char name[128];
	uint64_t memory;
	int vcpus;
};

static int rec_write(struct backend *be, int domid, const struct be_domain_config *c, bool restore,
		     pid_t pid)
{
	struct sim *s = SIM(be);
	json_t *disks = json_array();
	for (int i = 0; i < c->dc_ndisks; i++)
		json_array_append_new(disks, json_pack("{s:s, s:s, s:s, s:b}", "vdi",
						       c->dc_disks[i].bd_vdi_uuid, "path",
						       c->dc_disks[i].bd_path, "device",
						       c->dc_disks[i].bd_device, "readonly",
						       c->dc_disks[i].bd_readonly));
	const struct be_workload *w = &c->dc_workload;
	json_t *j = json_pack(
		"{s:i, s:s, s:s, s:I, s:i, s:s, s:s, s:b, s:I, s:o, s:{s:I, s:I, s:I, s:i, s:i, s:i, "
		"s:I, s:b}}",
		"domid", domid, "uuid", c->dc_uuid, "name", c->dc_name, "memory",
		(json_int_t)c->dc_memory, "vcpus", c->dc_vcpus, "cpu_vendor", c->dc_cpu_vendor,
		"featureset", c->dc_featureset, "restore", restore, "pid", (json_int_t)pid, "disks",
		disks, "workload", "touch_pages", (json_int_t)w->wl_touch_pages, "dirty_pages_per_s",
		(json_int_t)w->wl_dirty_pages_per_s, "working_set_pages",
		(json_int_t)w->wl_working_set_pages, "pct_zero", w->wl_pct_zero, "pct_text",
		w->wl_pct_text, "pct_random", w->wl_pct_random, "disk_write_bytes_per_s",
		(json_int_t)w->wl_disk_write_bytes_per_s, "prealloc", w->wl_prealloc);
	char *txt = j ? json_dumps(j, JSON_INDENT(1)) : NULL;
	json_decref(j);
	if (!txt) {
		be_set_error(be, "domain %d: cannot encode its record", domid);
		return -1;
	}
	char tmp[64], fin[64];
	snprintf(tmp, sizeof tmp, "dom-%d.json.tmp", domid);
	file_name(fin, sizeof fin, domid, "json");
	int fd = openat(s->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	size_t len = strlen(txt);
	bool ok = fd >= 0 && write(fd, txt, len) == (ssize_t)len && write(fd, "\n", 1) == 1;
	int e = errno;
	if (fd >= 0)
		close(fd);
	free(txt);
	if (!ok || renameat(s->dirfd, tmp, s->dirfd, fin) != 0) {
		if (ok)
			e = errno;
		unlinkat(s->dirfd, tmp, 0);
		be_set_error(be, "cannot write %s/%s: %s", s->dir, fin, strerror(e));
		return -1;
	}
	return 0;
}

static int rec_read(struct sim *s, int domid, struct rec *r)
{
	char n[64];
	file_name(n, sizeof n, domid, "json");
	int fd = openat(s->dirfd, n, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	json_error_t je;
	json_t *j = json_loadfd(fd, 0, &je);
	close(fd);
	if (!j)
		return -1;
	const char *uuid = "", *name = "";
	json_int_t mem = 0;
	int vcpus = 0;
	int rc = json_unpack(j, "{s?s, s?s, s?I, s?i}", "uuid", &uuid, "name", &name, "memory", &mem,
			     "vcpus", &vcpus);
	if (rc == 0) {
		memset(r, 0, sizeof *r);
		snprintf(r->uuid, sizeof r->uuid, "%s", uuid);
		snprintf(r->name, sizeof r->name, "%s", name);
		r->memory = (uint64_t)mem;
		r->vcpus = vcpus;
	}
	json_decref(j);
	return rc;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

struct idset {
	int *ids;
	int n, cap;
};

static int idset_add(struct idset *v, int id)
{
	if (v->n == v->cap) {
		int cap = v->cap ? v->cap * 2 : 16;
		int *t = realloc(v->ids, (size_t)cap * sizeof *t);
		if (!t)
			return -1;
		v->ids = t;
		v->cap = cap;
	}
	v->ids[v->n++] = id;
	return 0;
}

/* Sorted, each id once. */
static void idset_sort(struct idset *v)
{
	if (v->n)
		qsort(v->ids, (size_t)v->n, sizeof *v->ids, cmp_int);
	int k = 0;
	for (int i = 0; i < v->n; i++)
		if (k == 0 || v->ids[k - 1] != v->ids[i])
			v->ids[k++] = v->ids[i];
	v->n = k;
}

/* The domids with a record (dom-N.json). */
static int record_domids(struct backend *be, struct idset *v)
{
	struct sim *s = SIM(be);
	int dfd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!dir) {
		if (dfd >= 0)
			close(dfd);
		be_set_error(be, "cannot read %s: %s", s->dir, strerror(errno));
		return -1;
	}
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && (de = readdir(dir))) {
		int id, len = 0;
		if (sscanf(de->d_name, "dom-%d.json%n", &id, &len) == 1 && de->d_name[len] == 0 && id >= 0)
			rc = idset_add(v, id);
	}
	closedir(dir);
	if (rc)
		be_set_error(be, "out of memory");
	return rc;
}

/* The domids whose process is alive: their control sockets, as the
 * kernel lists them ("@pool-simdom/KEY/N" in /proc/net/unix). */
static int live_domids(struct backend *be, struct idset *v)
{
	struct sim *s = SIM(be);
	FILE *f = fopen("/proc/net/unix", "re");
	if (!f) {
		be_set_error(be, "cannot list the domains' sockets: /proc/net/unix: %s", strerror(errno));
		return -1;
	}
	char prefix[64], line[512];
	int plen = snprintf(prefix, sizeof prefix, "@" SIMDOM_SOCK_PREFIX "%s/", s->hvkey), rc = 0;
	while (rc == 0 && fgets(line, sizeof line, f)) {
		char *at = strchr(line, '@');
		char *end;
		if (!at || strncmp(at, prefix, (size_t)plen))
			continue;
		long id = strtol(at + plen, &end, 10);
		if (end != at + plen && (*end == '\n' || *end == '\0') && id >= 0 && id < INT_MAX)
			rc = idset_add(v, (int)id);
	}
	fclose(f);
	if (rc)
		be_set_error(be, "out of memory");
	return rc;
}

/* Every domid we know of, live or with a record, ascending (malloc'ed).
 * live (optional) gets the live ones only. */
static int scan_domids(struct backend *be, int **out, int *n)
{
	struct idset all = {0};
	*out = NULL;
	*n = 0;
	if (record_domids(be, &all) != 0 || live_domids(be, &all) != 0) {
		free(all.ids);
		return -1;
	}
	idset_sort(&all);
	*out = all.ids;
	*n = all.n;
	return 0;
}

static void info_from(struct be_domain_info *o, const struct simdom_info *in)
{
	memset(o, 0, sizeof *o);
	o->di_domid = in->in_domid;
	memcpy(o->di_uuid, in->in_uuid, BE_UUID_LEN);
	o->di_uuid[BE_UUID_LEN - 1] = 0;
	memcpy(o->di_name, in->in_name, sizeof o->di_name);
	o->di_name[sizeof o->di_name - 1] = 0;
	o->di_state = (enum be_state)in->in_state;
	o->di_memory = in->in_memory_held;
	o->di_memory_target = in->in_memory_target;
	o->di_vcpus = in->in_vcpus;
	o->di_pid = in->in_pid;
	o->di_heartbeat = in->in_heartbeat;
	o->di_dirty_pages = in->in_dirty_total;
	o->di_heartbeat_ns = in->in_heartbeat_ns;
}

static int probe_gone(struct backend *be, int domid, struct be_domain_info *out);

/* The INFO call's outcome rc (its answer in rs) as probe says. */
static int probe_answered(struct backend *be, int domid, int rc, const struct simdom_resp *rs,
			  struct be_domain_info *out, bool *alive)
{
	if (rc == CALL_OK)
		info_from(out, &rs->rs_info);
	*alive = rc == CALL_OK;
	if (rc != CALL_GONE)
		return rc == CALL_OK ? 0 : -1;
	return probe_gone(be, domid, out);
}

/* The domain's info: from the live process, or from its record when the
 * process is gone (SHUTDOWN if it said so, CRASHED otherwise). *alive
 * tells which. -1 with be_error set when there is no such domain. */
static int probe(struct backend *be, int domid, struct be_domain_info *out, bool *alive)
{
	struct simdom_req rq = {.rq_type = SIMDOM_REQ_INFO};
	struct simdom_resp *rs = malloc(sizeof *rs);
	if (!rs) {
		be_set_error(be, "out of memory");
		return -1;
	}
	int rc = probe_answered(be, domid, sim_call(be, domid, &rq, rs, NULL), rs, out, alive);
	free(rs);
	return rc;
}

#define PROBE_AT_ONCE 64

/* probe for each of ids[0, n): out[i] and rcs[i] (0 or -1, be_error set
 * for the last failure). The requests of a batch all go out before any
 * answer is read, so the domains' processes answer side by side: one
 * wait for the scheduler, not one per domain (40 domains on a busy host:
 * 5-16 ms one by one). */
static void probe_all(struct backend *be, const int *ids, int n, struct be_domain_info *out, bool *alive, int *rcs)
{
	struct simdom_resp *rs = malloc(sizeof *rs);
	int fds[PROBE_AT_ONCE];
	for (int at = 0; at < n; at += PROBE_AT_ONCE) {
		int m = n - at < PROBE_AT_ONCE ? n - at : PROBE_AT_ONCE;
		for (int i = 0; i < m; i++) {
			struct simdom_req rq = {.rq_type = SIMDOM_REQ_INFO};
			fds[i] = rs ? sim_call_send(be, ids[at + i], &rq) : CALL_FAIL;
		}
		for (int i = 0; i < m; i++) {
			int id = ids[at + i], rc = fds[i];
			if (rc >= 0)
				rc = sim_call_answer(be, id, fds[i], rs, NULL, 3);
			else if (!rs)
				be_set_error(be, "out of memory");
			rcs[at + i] = probe_answered(be, id, rc, rs, &out[at + i], &alive[at + i]);
		}
	}
	free(rs);
}

/* A domain whose process is gone: its record says what it was. */
static int probe_gone(struct backend *be, int domid, struct be_domain_info *out)
{
	struct sim *s = SIM(be);
	struct rec r;
	if (rec_read(s, domid, &r) != 0) {
		be_set_error(be, "no domain %d", domid);
		return -1;
	}
	memset(out, 0, sizeof *out);
	out->di_domid = domid;
	memcpy(out->di_uuid, r.uuid, BE_UUID_LEN);
	memcpy(out->di_name, r.name, sizeof out->di_name);
	out->di_memory = 0; /* its memory went with the process */
	out->di_memory_target = r.memory;
	out->di_vcpus = r.vcpus;
	if (dom_file_exists(s, domid, "shutdown")) {
		out->di_state = BE_STATE_SHUTDOWN;
	} else {
		out->di_state = BE_STATE_CRASHED;
		if (!dom_file_exists(s, domid, "crashed")) { /* first time noticed: say so once */
			char n[64];
			file_name(n, sizeof n, domid, "crashed");
			int fd = openat(s->dirfd, n, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
			if (fd >= 0)
				close(fd);
			log_warn("domain %d (%s, %s) crashed: its process is gone", domid, r.uuid,
				 r.name);
		}
	}
	return 0;
}

/* ---- host ---- */

static int sim_host_info(struct backend *be, struct be_host_info *out)
{
	struct sim *s = SIM(be);
	struct idset live = {0};
	if (live_domids(be, &live) != 0) {
		free(live.ids);
		return -1;
	}
	idset_sort(&live);
	uint64_t used = 0;
	/* what each live domain holds (a domain gone meanwhile: nothing) */
	struct be_domain_info *v = calloc(live.n ? (size_t)live.n : 1, sizeof *v);
	bool *alive = calloc(live.n ? (size_t)live.n : 1, sizeof *alive);
	int *rcs = calloc(live.n ? (size_t)live.n : 1, sizeof *rcs);
	bool ok = v && alive && rcs;
	if (ok)
		probe_all(be, live.ids, live.n, v, alive, rcs);
	for (int i = 0; ok && i < live.n; i++)
		used += rcs[i] == 0 && alive[i] ? v[i].di_memory : 0;
	free(v);
	free(alive);
	free(rcs);
	free(live.ids);
	if (!ok) {
		be_set_error(be, "out of memory");
		return -1;
	}
	memset(out, 0, sizeof *out);
	out->hi_total_memory = s->host_memory;
	out->hi_free_memory = used >= s->host_memory ? 0 : s->host_memory - used;
	out->hi_cpus = s->cpus;
	snprintf(out->hi_cpu_vendor, sizeof out->hi_cpu_vendor, "%s", s->vendor);
	snprintf(out->hi_featureset, sizeof out->hi_featureset, "%s", s->features);
	snprintf(out->hi_backend, sizeof out->hi_backend, "sim");
	return 0;
}

/* ---- create ---- */

static int alloc_domid(struct backend *be, int *domid)
{
	struct sim *s = SIM(be);
	int *ids, n;
	if (scan_domids(be, &ids, &n) != 0)
		return -1;
	int next = n ? ids[n - 1] + 1 : 1;
	free(ids);
	int fd = openat(s->dirfd, "next-domid", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || flock(fd, LOCK_EX) != 0) {
		be_set_error(be, "%s/next-domid: %s", s->dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char buf[32] = {0};
	ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
	int stored = r > 0 ? atoi(buf) : 0;
	if (stored > next)
		next = stored;
	if (next < 1)
		next = 1; /* 0 is dom0 */
	int len = snprintf(buf, sizeof buf, "%d\n", next + 1);
	bool ok = ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)len, 0) == len;
	int e = errno;
	close(fd); /* drops the lock */
	if (!ok) {
		be_set_error(be, "%s/next-domid: %s", s->dir, strerror(e));
		return -1;
	}
	*domid = next;
	return 0;
}

/* Starts pool-simdom detached (own session, reparented to init) and hands
 * it its configuration. */
static int spawn(struct backend *be, int domid, const struct be_domain_config *c, bool restore,
		 struct simdom_info *info)
{
	struct sim *s = SIM(be);
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0) {
		be_set_error(be, "socketpair: %s", strerror(errno));
		return -1;
	}
	char sdomid[16];
	snprintf(sdomid, sizeof sdomid, "%d", domid);
	char uuid[BE_UUID_LEN];
	snprintf(uuid, sizeof uuid, "%s", c->dc_uuid);
	char *argv[] = {s->simdom, "--state-dir", s->dir, "--hv", s->hvkey, "--domid", sdomid,
			"--boot-fd", "3", "--uuid", uuid[0] ? uuid : "-", NULL};
	pid_t child = fork();
	if (child < 0) {
		be_set_error(be, "fork: %s", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	if (child == 0) {
		/* only async-signal-safe calls from here on */
		setsid();
		pid_t g = _Fork();
		if (g != 0)
			_exit(g < 0 ? 1 : 0);
		int b = fcntl(sp[1], F_DUPFD, 10);
		int nul = open("/dev/null", O_RDWR);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
			dup2(nul, 2);
		}
		if (b < 0 || dup2(b, 3) != 3)
			_exit(126);
		execv(s->simdom, argv);
		int e = errno;
		ssize_t w = write(3, &e, sizeof e);
		(void)w;
		_exit(127);
	}
	close(sp[1]);
	int st;
	while (waitpid(child, &st, 0) < 0 && errno == EINTR)
		;
	struct timeval tv = {.tv_sec = BOOT_TIMEOUT_S};
	setsockopt(sp[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(sp[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	struct simdom_boot *boot = calloc(1, sizeof *boot);
	struct simdom_resp *rs = calloc(1, sizeof *rs);
	int rc = -1;
	if (!boot || !rs) {
		be_set_error(be, "out of memory");
		goto out;
	}
	boot->sb_magic = SIMDOM_MAGIC;
	boot->sb_version = SIMDOM_PROTO_VERSION;
	boot->sb_domid = domid;
	boot->sb_restore = restore;
	boot->sb_cfg = *c;
	/* a failed exec may already have said why: it never reads the boot */
	(void)send(sp[0], boot, sizeof *boot, MSG_NOSIGNAL);
	ssize_t n = recv(sp[0], rs, sizeof *rs, 0);
	if (n == (ssize_t)sizeof(int)) {
		int e;
		memcpy(&e, rs, sizeof e);
		be_set_error(be, "cannot run %s: %s", s->simdom, strerror(e));
	} else if (n < 0) {
		be_set_error(be, "domain %d: no answer from %s at start: %s", domid, s->simdom,
			     errno == EAGAIN ? "timed out" : strerror(errno));
	} else if (n != (ssize_t)sizeof *rs || rs->rs_magic != SIMDOM_MAGIC) {
		be_set_error(be, "domain %d: %s exited during start (see %s/dom-%d.log)", domid,
			     s->simdom, s->dir, domid);
	} else if (rs->rs_status != 0) {
		rs->rs_error[sizeof rs->rs_error - 1] = 0;
		be_set_error(be, "domain %d not created: %s", domid, rs->rs_error);
	} else {
		*info = rs->rs_info;
		rc = 0;
	}
out:
	free(boot);
	free(rs);
	close(sp[0]);
	return rc;
}

static int create_common(struct backend *be, const struct be_domain_config *cfg, int *domid,
			 bool restore)
{
	struct sim *s = SIM(be);
	struct be_domain_config *c = malloc(sizeof *c);
	if (!c) {
		be_set_error(be, "out of memory");
		return -1;
	}
	*c = *cfg;
	c->dc_uuid[BE_UUID_LEN - 1] = 0;
	c->dc_name[sizeof c->dc_name - 1] = 0;
	c->dc_cpu_vendor[sizeof c->dc_cpu_vendor - 1] = 0;
	c->dc_featureset[sizeof c->dc_featureset - 1] = 0;
	struct be_workload *w = &c->dc_workload;
	int rc = -1;
	if (w->wl_pct_zero == 0 && w->wl_pct_text == 0 && w->wl_pct_random == 0)
		w->wl_pct_zero = 100; /* no mix given: untouched-looking memory */
	if (c->dc_memory < SIMDOM_MIN_MEMORY) {
		be_set_error(be, "memory %" PRIu64 " bytes is below the minimum of %u", c->dc_memory,
			     SIMDOM_MIN_MEMORY);
		goto out;
	}
	if (c->dc_vcpus < 1 || c->dc_vcpus > SIMDOM_MAX_VCPUS) {
		be_set_error(be, "vcpus %d out of range 1..%d", c->dc_vcpus, SIMDOM_MAX_VCPUS);
		goto out;
	}
	if (c->dc_ndisks < 0 || c->dc_ndisks > SIMDOM_MAX_DISKS) {
		be_set_error(be, "%d disks out of range 0..%d", c->dc_ndisks, SIMDOM_MAX_DISKS);
		goto out;
	}
	if (w->wl_pct_zero < 0 || w->wl_pct_text < 0 || w->wl_pct_random < 0 ||
	    w->wl_pct_zero + w->wl_pct_text + w->wl_pct_random != 100) {
		be_set_error(be, "workload content mix %d/%d/%d (zero/text/random) does not sum to 100",
			     w->wl_pct_zero, w->wl_pct_text, w->wl_pct_random);
		goto out;
	}
	if (c->dc_cpu_vendor[0] && strcmp(c->dc_cpu_vendor, s->vendor) != 0) {
		be_set_error(be, "the domain's CPU vendor %s is not this host's (%s)", c->dc_cpu_vendor,
			     s->vendor);
		goto out;
	}
	snprintf(c->dc_cpu_vendor, sizeof c->dc_cpu_vendor, "%s", s->vendor);
	if (!c->dc_featureset[0]) {
		snprintf(c->dc_featureset, sizeof c->dc_featureset, "%s", s->features);
	} else if (!be_featureset_subset(c->dc_featureset, s->features)) {
		be_set_error(be, "the domain's CPU features %s are not all on this host (%s)",
			     c->dc_featureset, s->features);
		goto out;
	}
	struct be_host_info hi;
	if (sim_host_info(be, &hi) != 0)
		goto out;
	uint64_t need = round_pages(c->dc_memory);
	if (need > hi.hi_free_memory) {
		be_set_error(be,
			     "not enough free memory on this host: the domain needs %" PRIu64
			     " MiB, %" PRIu64 " MiB free of %" PRIu64 " MiB",
			     need >> 20, hi.hi_free_memory >> 20, hi.hi_total_memory >> 20);
		goto out;
	}
	int id;
	if (alloc_domid(be, &id) != 0 || rec_write(be, id, c, restore, 0) != 0)
		goto out;
	struct simdom_info info;
	if (spawn(be, id, c, restore, &info) != 0) {
		unlink_dom_file(s, id, "json");
		unlink_dom_file(s, id, "log");
		unlink_dom_file(s, id, "lock");
		goto out;
	}
	(void)rec_write(be, id, c, restore, info.in_pid); /* the pid, for tools; best effort */
	log_info("domain %d created%s: %s (%s), %" PRIu64 " MiB, %d vCPUs, pid %d", id,
		 restore ? " for an incoming migration" : "", c->dc_uuid, c->dc_name, need >> 20,
		 c->dc_vcpus, (int)info.in_pid);
	*domid = id;
	rc = 0;
out:
	free(c);
	return rc;
}

static int sim_domain_create(struct backend *be, const struct be_domain_config *cfg, int *domid)
{
	return create_common(be, cfg, domid, false);
}

static int sim_domain_create_restore(struct backend *be, const struct be_domain_config *cfg,
				     int *domid)
{
	return create_common(be, cfg, domid, true);
}

/* ---- simple requests ---- */

static int simple(struct backend *be, int domid, struct simdom_req *rq)
{
	struct simdom_resp *rs = malloc(sizeof *rs);
	if (!rs) {
		be_set_error(be, "out of memory");
		return -1;
	}
	int rc = sim_call(be, domid, rq, rs, NULL);
	free(rs);
	if (rc == CALL_GONE) {
		struct be_domain_info di;
		bool alive;
		if (probe(be, domid, &di, &alive) == 0)
			be_set_error(be, "domain %d is not running (%s)", domid,
				     be_state_name(di.di_state));
	}
	return rc == CALL_OK ? 0 : -1;
}

static int sim_domain_unpause(struct backend *be, int domid)
{
	struct simdom_req rq = {.rq_type = SIMDOM_REQ_UNPAUSE};
	return simple(be, domid, &rq);
}

static int sim_domain_pause(struct backend *be, int domid)
{
	struct simdom_req rq = {.rq_type = SIMDOM_REQ_PAUSE};
	return simple(be, domid, &rq);
}

static int sim_set_vcpus(struct backend *be, int domid, int vcpus)
{
	struct simdom_req rq = {.rq_type = SIMDOM_REQ_SET_VCPUS, .rq_value = (uint64_t)vcpus};
	if (vcpus < 1) {
		be_set_error(be, "vcpus %d out of range 1..%d", vcpus, SIMDOM_MAX_VCPUS);
		return -1;
	}
	return simple(be, domid, &rq);
}

static int sim_set_memory_target(struct backend *be, int domid, uint64_t bytes)
{
	struct be_domain_info di;
	bool alive;
	if (probe(be, domid, &di, &alive) != 0)
		return -1;
	if (alive && round_pages(bytes) > di.di_memory) {
		struct be_host_info hi;
		if (sim_host_info(be, &hi) != 0)
			return -1;
		uint64_t more = round_pages(bytes) - di.di_memory;
		if (more > hi.hi_free_memory) {
			be_set_error(be,
				     "not enough free memory on this host to raise domain %d to %" PRIu64
				     " MiB: %" PRIu64 " MiB more needed, %" PRIu64 " MiB free",
				     domid, bytes >> 20, more >> 20, hi.hi_free_memory >> 20);
			return -1;
		}
	}
	struct simdom_req rq = {.rq_type = SIMDOM_REQ_SET_MEMORY_TARGET, .rq_value = bytes};
	return simple(be, domid, &rq);
}

static int sim_disk_add(struct backend *be, int domid, const struct be_disk *disk)
{
	struct simdom_req rq = {.rq_type = SIMDOM_REQ_DISK_ADD, .rq_disk = *disk};
	return simple(be, domid, &rq);
}

static int sim_disk_remove(struct backend *be, int domid, const char *device)
{
	struct simdom_req rq = {.rq_type = SIMDOM_REQ_DISK_REMOVE};
	snprintf(rq.rq_disk.bd_device, sizeof rq.rq_disk.bd_device, "%s", device);
	return simple(be, domid, &rq);
}

int backend_sim_set_throttle(struct backend *be, int domid, int pct)
{
	if (pct < 0 || pct > 100) {
		be_set_error(be, "throttle %d%% out of range 0..100", pct);
		return -1;
	}
	struct simdom_req rq = {.rq_type = SIMDOM_REQ_SET_THROTTLE, .rq_value = (uint64_t)pct};
	return simple(be, domid, &rq);
}

int backend_sim_set_workload(struct backend *be, int domid, const struct be_workload *wl)
{
	struct simdom_req rq = {.rq_type = SIMDOM_REQ_SET_WORKLOAD, .rq_workload = *wl};
	return simple(be, domid, &rq);
}

/* ---- shutdown, destroy ---- */

static int sim_domain_shutdown(struct backend *be, int domid, int timeout_ms)
{
	struct be_domain_info di;
	bool alive;
	if (probe(be, domid, &di, &alive) != 0)
		return -1;
	if (!alive) {
		if (di.di_state == BE_STATE_SHUTDOWN)
			return 0;
		be_set_error(be, "domain %d is not running (%s)", domid, be_state_name(di.di_state));
		return -1;
	}
	struct proc pr;
	bool there = proc_open(&pr, di.di_pid);
	struct simdom_req rq = {.rq_type = SIMDOM_REQ_SHUTDOWN};
	struct simdom_resp *rs = malloc(sizeof *rs);
	int rc = rs ? sim_call(be, domid, &rq, rs, NULL) : CALL_FAIL;
	free(rs);
	if (rc == CALL_FAIL) {
		proc_close(&pr);
		return -1;
	}
	bool gone = !there || proc_wait(&pr, timeout_ms < 0 ? 0 : timeout_ms);
	proc_close(&pr);
	if (!gone) {
		be_set_error(be, "domain %d did not shut down within %d ms", domid, timeout_ms);
		return -1;
	}
	log_info("domain %d (%s) shut down", domid, di.di_uuid);
	return 0;
}

/* A live domain's memory: its memfds (not mapped) into m, the call's
 * outcome (m's fds stay -1 unless CALL_OK). */
static int hold_memory(struct backend *be, int domid, struct be_sim_map *m)
{
	memset(m, 0, sizeof *m);
	m->sm_ram_fd = m->sm_dirty_fd = m->sm_shared_fd = -1;
	struct simdom_req rq = {.rq_type = SIMDOM_REQ_GET_FDS};
	struct simdom_resp *rs = malloc(sizeof *rs);
	int fds[3] = {-1, -1, -1};
	int rc = rs ? sim_call(be, domid, &rq, rs, fds) : CALL_FAIL;
	free(rs);
	if (rc != CALL_OK)
		return rc;
	m->sm_domid = domid;
	m->sm_ram_fd = fds[0];
	m->sm_dirty_fd = fds[1];
	m->sm_shared_fd = fds[2];
	return rc;
}

static int sim_domain_destroy(struct backend *be, int domid)
{
	struct sim *s = SIM(be);
	struct be_domain_info di;
	bool alive;
	if (probe(be, domid, &di, &alive) != 0)
		return -1;
	if (alive) {
		/* its memory held across the kill: the process's exit only drops its
		 * references, and the pages are freed after this call, off the
		 * backend's lock the next call (a migration's) waits for */
		struct be_sim_map hold;
		(void)hold_memory(be, domid, &hold);
		struct proc pr;
		int rc = 0;
		if (proc_open(&pr, di.di_pid)) {
			if (proc_kill(&pr, SIGKILL) != 0 && errno != ESRCH) {
				be_set_error(be, "domain %d: kill %d: %s", domid, (int)di.di_pid,
					     strerror(errno));
				rc = -1;
			} else if (!proc_wait(&pr, KILL_WAIT_MS)) {
				be_set_error(be, "domain %d: process %d still there %d ms after SIGKILL",
					     domid, (int)di.di_pid, KILL_WAIT_MS);
				rc = -1;
			}
			proc_close(&pr);
		}
		backend_sim_unmap_later(&hold);
		if (rc)
			return -1;
	}
	static const char *const exts[] = {"shutdown", "crashed", "log", "lock", "json"};
	for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
		unlink_dom_file(s, domid, exts[i]);
	log_info("domain %d (%s) destroyed", domid, di.di_uuid);
	return 0;
}

/* ---- list, info ---- */

static int sim_domain_list(struct backend *be, struct be_domain_info **out, int *n)
{
	int *ids, nids;
	*out = NULL;
	*n = 0;
	if (scan_domids(be, &ids, &nids) != 0)
		return -1;
	struct be_domain_info *v = calloc(nids ? (size_t)nids : 1, sizeof *v);
	if (!v) {
		free(ids);
		be_set_error(be, "out of memory");
		return -1;
	}
	bool *alive = calloc(nids ? (size_t)nids : 1, sizeof *alive);
	int *rcs = calloc(nids ? (size_t)nids : 1, sizeof *rcs);
	if (!alive || !rcs) {
		free(ids);
		free(v);
		free(alive);
		free(rcs);
		be_set_error(be, "out of memory");
		return -1;
	}
	probe_all(be, ids, nids, v, alive, rcs);
	int k = 0;
	for (int i = 0; i < nids; i++) {
		if (rcs[i] == 0)
			v[k++] = v[i];
		else
			log_warn("domain %d: cannot be probed (%s)", ids[i], backend_error(be));
	}
	free(ids);
	free(alive);
	free(rcs);
	*out = v;
	*n = k;
	return 0;
}

static int sim_domain_info(struct backend *be, int domid, struct be_domain_info *out)
{
	bool alive;
	return probe(be, domid, out, &alive);
}

/* ---- the toolstack's mapping ---- */

int backend_sim_map(struct backend *be, int domid, struct be_sim_map *m)
{
	memset(m, 0, sizeof *m);
	m->sm_ram_fd = m->sm_dirty_fd = m->sm_shared_fd = -1;
	if (!be || be->be_ops->bo_domain_create_restore != sim_domain_create_restore) {
		if (be)
			be_set_error(be, "backend_sim_map: not a sim backend");
		return -1;
	}
	int rc = hold_memory(be, domid, m);
	if (rc == CALL_GONE)
		be_set_error(be, "domain %d is not running", domid);
	if (rc != CALL_OK)
		return -1;
	int fds[3] = {m->sm_ram_fd, m->sm_dirty_fd, m->sm_shared_fd};
	struct stat st[3];
	void *p[3] = {MAP_FAILED, MAP_FAILED, MAP_FAILED};
	for (int i = 0; i < 3; i++) {
		if (fstat(fds[i], &st[i]) != 0 || st[i].st_size <= 0)
			goto fail;
		p[i] = mmap(NULL, (size_t)st[i].st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], 0);
		if (p[i] == MAP_FAILED)
			goto fail;
	}
	m->sm_ram = p[0];
	m->sm_ram_len = (size_t)st[0].st_size;
	m->sm_npages = m->sm_ram_len / SIMDOM_PAGE_SIZE;
	m->sm_dirty = p[1];
	m->sm_dirty_len = (size_t)st[1].st_size;
	m->sm_shared = p[2];
	m->sm_shared_len = (size_t)st[2].st_size;
	return 0;
fail:
	be_set_error(be, "domain %d: cannot map its memory: %s", domid, strerror(errno));
	for (int i = 0; i < 3; i++) {
		if (p[i] != MAP_FAILED)
			munmap(p[i], (size_t)st[i].st_size);
		close(fds[i]);
	}
	memset(m, 0, sizeof *m);
	m->sm_ram_fd = m->sm_dirty_fd = m->sm_shared_fd = -1;
	return -1;
}

void backend_sim_unmap(struct be_sim_map *m)
{
	if (!m)
		return;
	if (m->sm_ram)
		munmap(m->sm_ram, m->sm_ram_len);
	if (m->sm_dirty)
		munmap(m->sm_dirty, m->sm_dirty_len);
	if (m->sm_shared)
		munmap(m->sm_shared, m->sm_shared_len);
	if (m->sm_ram_fd >= 0)
		close(m->sm_ram_fd);
	if (m->sm_dirty_fd >= 0)
		close(m->sm_dirty_fd);
	if (m->sm_shared_fd >= 0)
		close(m->sm_shared_fd);
	memset(m, 0, sizeof *m);
	m->sm_ram_fd = m->sm_dirty_fd = m->sm_shared_fd = -1;
}

static void *unmap_main(void *arg)
{
	/* nice 19: the work that follows (the next migration) goes first */
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
	backend_sim_unmap(arg);
	free(arg);
	return NULL;
}

void backend_sim_unmap_later(struct be_sim_map *m)
{
	struct be_sim_map *own = malloc(sizeof *own);
	pthread_attr_t at;
	pthread_t t;
	if (own && pthread_attr_init(&at) == 0) {
		*own = *m;
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		int rc = pthread_create(&t, &at, unmap_main, own);
		pthread_attr_destroy(&at);
		if (rc == 0) {
			memset(m, 0, sizeof *m);
			m->sm_ram_fd = m->sm_dirty_fd = m->sm_shared_fd = -1;
			return;
		}
	}
	free(own);
	backend_sim_unmap(m); /* no thread to be had: now */
}

/* A request about one disk whose answer carries one bitmap memfd, mapped. */
static int disk_bits_call(struct backend *be, int domid, struct simdom_req *rq, struct be_sim_disk_log *out)
{
	memset(out, 0, sizeof *out);
	out->dl_fd = -1;
	if (!be || be->be_ops->bo_domain_create_restore != sim_domain_create_restore) {
		if (be)
			be_set_error(be, "backend_sim: not a sim backend");
		return -1;
	}
	struct simdom_resp *rs = malloc(sizeof *rs);
	int fd = -1, rc = rs ? sim_call_fds(be, domid, rq, rs, &fd, 1) : CALL_FAIL;
	free(rs);
	if (rc == CALL_GONE)
		be_set_error(be, "domain %d is not running", domid);
	if (rc != CALL_OK)
		return -1;
	struct stat st;
	void *p = MAP_FAILED;
	if (fstat(fd, &st) == 0 && st.st_size > 0)
		p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		be_set_error(be, "domain %d: cannot map a disk's bitmap: %s", domid, strerror(errno));
		close(fd);
		return -1;
	}
	out->dl_fd = fd;
	out->dl_bits = p;
	out->dl_len = (size_t)st.st_size;
	return 0;
}

int backend_sim_disk_log(struct backend *be, int domid, const char *vdi_uuid, struct be_sim_disk_log *out)
{
	struct simdom_req rq = {.rq_type = SIMDOM_REQ_DISK_LOG};
	snprintf(rq.rq_disk.bd_vdi_uuid, sizeof rq.rq_disk.bd_vdi_uuid, "%s", vdi_uuid);
	return disk_bits_call(be, domid, &rq, out);
}

int backend_sim_disk_snapshot(struct backend *be, int domid, const char *vdi_uuid, const char *path,
			      struct be_sim_disk_log *kept)
{
	struct simdom_req rq = {.rq_type = SIMDOM_REQ_DISK_SNAPSHOT};
	snprintf(rq.rq_disk.bd_vdi_uuid, sizeof rq.rq_disk.bd_vdi_uuid, "%s", vdi_uuid);
	if (strlen(path) >= sizeof rq.rq_disk.bd_path) {
		be_set_error(be, "snapshot path too long");
		return -1;
	}
	memcpy(rq.rq_disk.bd_path, path, strlen(path) + 1);
	return disk_bits_call(be, domid, &rq, kept);
}

int backend_sim_disk_snapshot_end(struct backend *be, int domid, const char *vdi_uuid)
{
	struct simdom_req rq = {.rq_type = SIMDOM_REQ_DISK_SNAPSHOT_END};
	snprintf(rq.rq_disk.bd_vdi_uuid, sizeof rq.rq_disk.bd_vdi_uuid, "%s", vdi_uuid);
	return simple(be, domid, &rq);
}

int backend_sim_disks(struct backend *be, int domid, struct be_disk *out, int max, int *n)
{
	*n = 0;
	if (!be || be->be_ops->bo_domain_create_restore != sim_domain_create_restore) {
		if (be)
			be_set_error(be, "backend_sim_disks: not a sim backend");
		return -1;
	}
	struct simdom_req rq = {.rq_type = SIMDOM_REQ_INFO};
	struct simdom_resp *rs = malloc(sizeof *rs);
	int rc = rs ? sim_call(be, domid, &rq, rs, NULL) : CALL_FAIL;
	if (rc == CALL_GONE)
		be_set_error(be, "domain %d is not running", domid);
	for (int i = 0; rc == CALL_OK && i < rs->rs_info.in_ndisks && i < SIMDOM_MAX_DISKS && *n < max; i++)
		out[(*n)++] = rs->rs_info.in_disks[i];
	free(rs);
	return rc == CALL_OK ? 0 : -1;
}

void backend_sim_disk_log_unmap(struct be_sim_disk_log *l)
{
	if (l->dl_bits)
		munmap(l->dl_bits, l->dl_len);
	if (l->dl_fd >= 0)
		close(l->dl_fd);
	memset(l, 0, sizeof *l);
	l->dl_fd = -1;
}

/* ---- life ---- */

/* A name for this backend's domains: FNV-1a of its (canonical) state
 * directory, so the same host finds the same domains after a restart, and
 * two hosts on one machine (a dev pool) never see each other's. */
static void hv_key(const char *dir, char out[SIMDOM_HVKEY_LEN + 1])
{
	uint64_t h = 1469598103934665603ull;
	for (const unsigned char *p = (const unsigned char *)dir; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	snprintf(out, SIMDOM_HVKEY_LEN + 1, "%016" PRIx64, h);
}

static void sim_free(struct backend *be)
{
	if (!be)
		return;
	struct sim *s = SIM(be);
	if (s) {
		if (s->dirfd >= 0)
			close(s->dirfd);
		free(s);
	}
	free(be);
}

static const struct backend_ops sim_ops = {
	.bo_name = "sim",
	.bo_host_info = sim_host_info,
	.bo_domain_create = sim_domain_create,
	.bo_domain_create_restore = sim_domain_create_restore,
	.bo_domain_unpause = sim_domain_unpause,
	.bo_domain_pause = sim_domain_pause,
	.bo_domain_shutdown = sim_domain_shutdown,
	.bo_domain_destroy = sim_domain_destroy,
	.bo_domain_list = sim_domain_list,
	.bo_domain_info = sim_domain_info,
	.bo_set_memory_target = sim_set_memory_target,
	.bo_set_vcpus = sim_set_vcpus,
	.bo_disk_add = sim_disk_add,
	.bo_disk_remove = sim_disk_remove,
	.bo_free = sim_free,
};

struct backend *backend_sim_new(const char *state_dir, const char *simdom_path, uint64_t host_memory,
				int cpus, const char *cpu_vendor, const char *featureset, char *err,
				size_t errlen)
{
	if (!state_dir || !*state_dir || !simdom_path || !*simdom_path) {
		snprintf(err, errlen, "sim backend: a state directory and the domain program are needed");
		return NULL;
	}
	if (host_memory < SIMDOM_MIN_MEMORY || cpus < 1) {
		snprintf(err, errlen, "sim backend: host memory %" PRIu64 " bytes / %d cpus is too small",
			 host_memory, cpus);
		return NULL;
	}
	uint32_t w[64];
	if (featureset && be_featureset_parse(featureset, w, 64) < 0) {
		snprintf(err, errlen, "sim backend: bad CPU feature set \"%.200s\"", featureset);
		return NULL;
	}
	if (mkdir(state_dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "sim backend: cannot create %.300s: %s", state_dir, strerror(errno));
		return NULL;
	}
	struct backend *be = calloc(1, sizeof *be);
	struct sim *s = calloc(1, sizeof *s);
	if (!be || !s) {
		free(be);
		free(s);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->dirfd = -1;
	be->be_ops = &sim_ops;
	be->be_priv = s;
	if (!realpath(state_dir, s->dir)) {
		snprintf(err, errlen, "sim backend: %.300s: %s", state_dir, strerror(errno));
		goto fail;
	}
	if (!realpath(simdom_path, s->simdom) || access(s->simdom, X_OK) != 0) {
		snprintf(err, errlen, "sim backend: domain program %.300s: %s", simdom_path,
			 strerror(errno));
		goto fail;
	}
	hv_key(s->dir, s->hvkey);
	s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		snprintf(err, errlen, "sim backend: %.300s: %s", s->dir, strerror(errno));
		goto fail;
	}
	s->host_memory = host_memory;
	s->cpus = cpus;
	snprintf(s->vendor, sizeof s->vendor, "%s", cpu_vendor && *cpu_vendor ? cpu_vendor : "AuthenticAMD");
	snprintf(s->features, sizeof s->features, "%s", featureset ? featureset : "");
	return be;
fail:
	sim_free(be);
	return NULL;
}
