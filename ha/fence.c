/*
 * fence.c - the watchdog, and fencing: a host that may not stay up stops
 * everything it runs at once, as a watchdog reset would.
 *
 * xen: the hypervisor watchdog (xc_watchdog), armed with the deadline the
 * evidence allows, as xhad arms it; when it is not kicked in time Xen
 * resets the host, domains and all.
 *
 * sim: domains are processes that outlive the agent, so the watchdog must
 * too: a process of its own (`pool-agent --ha-watchdog FD DIR`) reading
 * its deadline from a page shared with the agent. When the deadline
 * passes (the agent hung, was killed, or stopped kicking) or the agent
 * says fire, it SIGKILLs every domain whose record is in the backend's
 * directory. Then, as a reset host runs nothing, it goes on killing any
 * domain that appears (an agent that had not yet noticed could still
 * start one) until the agent is gone or disarms it. A watchdog that
 * fired or vanished is protection gone: the agent fences (kick fails)
 * and exits.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>
#include "ha.h"
#include "log.h"
#include "util.h"
#ifdef HAVE_XEN
#include <xenctrl.h>
#endif

#define KILL_WAIT_MS 5000
#define POLL_MS 20

enum wd_cmd { WD_UNARMED, WD_ARMED, WD_FIRE, WD_EXIT };

/* The page the agent and its watchdog process share. */
struct wd_page {
	_Atomic int64_t wp_deadline_ms;
	_Atomic int wp_cmd;
	_Atomic int wp_fired;
};

struct ha_fence {
	bool hf_xen;
	void (*hf_quiesce)(void *arg); /* before firing: nothing new starts */
	void *hf_quiesce_arg;
	/* sim */
	struct wd_page *hf_page;
	int hf_fd;
	pid_t hf_pid;
	char hf_pidfile[4200];
	char hf_dir[4200];
	/* xen */
	void *hf_xch;
	uint32_t hf_wdid;
};

/* ------------------------------------------------------------ killing */

/* Does pid run pool-simdom for this domains directory? (pids are reused) */
static bool our_domain(pid_t pid, const char *domains_dir)
{
	char path[64], buf[8192];
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	const char *base = strrchr(buf, '/');
	if (strcmp(base ? base + 1 : buf, "pool-simdom") != 0)
		return false;
	for (const char *a = buf; a < buf + n; a += strlen(a) + 1)
		if (strcmp(a, "--state-dir") == 0 && a + strlen(a) + 1 < buf + n)
			return strcmp(a + strlen(a) + 1, domains_dir) == 0;
	return false;
}

static pid_t record_pid(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char buf[8192];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	json_t *o = json_loadb(buf, (size_t)n, 0, NULL);
	pid_t pid = (pid_t)json_integer_value(json_object_get(o, "pid"));
	json_decref(o);
	return pid;
}

int ha_kill_domains(const char *domains_dir)
{
	DIR *d = opendir(domains_dir);
	if (!d)
		return 0;
	int fds[1024], nfds = 0;
	struct dirent *e;
	while ((e = readdir(d)) && nfds < 1024) {
		size_t l = strlen(e->d_name);
		if (strncmp(e->d_name, "dom-", 4) || l < 9 || strcmp(e->d_name + l - 5, ".json"))
			continue;
		pid_t pid = record_pid(dirfd(d), e->d_name);
		if (pid <= 0)
			continue;
		int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pfd < 0)
			continue; /* gone already */
		if (!our_domain(pid, domains_dir) || syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0) != 0) {
			close(pfd);
			continue;
		}
		fds[nfds++] = pfd;
	}
	closedir(d);
	uint64_t until = now_ms() + KILL_WAIT_MS;
	for (int i = 0; i < nfds; i++) {
		struct pollfd p = {.fd = fds[i], .events = POLLIN};
		int64_t left = (int64_t)(until - now_ms());
		while (left > 0 && poll(&p, 1, (int)left) < 0 && errno == EINTR)
			left = (int64_t)(until - now_ms());
		close(fds[i]);
	}
	return nfds;
}

/* ---------------------------------------------------- the sim watchdog */

int ha_watchdog_main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	log_init("pool-agent ha-watchdog", LOG_LVL_INFO);
	int fd = atoi(argv[2]);
	const char *dir = argv[3];
	struct wd_page *p = mmap(NULL, sizeof *p, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return 1;
	pid_t parent = getppid();
	for (;;) {
		usleep(POLL_MS * 1000);
		int cmd = atomic_load(&p->wp_cmd);
		int64_t deadline = atomic_load(&p->wp_deadline_ms);
		if (cmd == WD_EXIT)
			return 0;
		if (cmd == WD_UNARMED && getppid() != parent)
			return 0; /* the agent is gone and nothing was armed */
		if (cmd == WD_FIRE || (cmd == WD_ARMED && (int64_t)now_ms() >= deadline)) {
			if (cmd == WD_ARMED)
				log_error("HA watchdog: not kicked by its deadline: fencing this host");
			int n = ha_kill_domains(dir);
			log_error("HA watchdog: fenced: %d domain(s) killed", n);
			atomic_store(&p->wp_fired, 1);
			/* the host stays down until its agent is: each pass follows
			 * the check, so what the agent started before it ended dies */
			bool agent_alive = true;
			while (agent_alive && atomic_load(&p->wp_cmd) != WD_EXIT) {
				usleep(POLL_MS * 1000);
				agent_alive = getppid() == parent;
				if ((n = ha_kill_domains(dir)) > 0)
					log_error("HA watchdog: %d domain(s) started after the fence: killed", n);
			}
			return 0;
		}
		struct stat st;
		if (stat(dir, &st) != 0 && getppid() != parent)
			return 0; /* the host's directory is gone: nothing left to guard */
	}
}

static struct ha_fence *sim_spawn(struct ha_fence *f, const char *exe, const char *domains_dir, char *err,
				  size_t errlen)
{
	char fdarg[16];
	snprintf(fdarg, sizeof fdarg, "%d", 3);
	char *argv[] = {(char *)exe, "--ha-watchdog", fdarg, (char *)domains_dir, NULL};
	pid_t pid = fork();
	if (pid < 0) {
		errf(err, errlen, "HA watchdog: fork: %s", strerror(errno));
		return NULL;
	}
	if (pid == 0) { /* async-signal-safe calls only */
		if (dup2(f->hf_fd, 3) != 3)
			_exit(126);
		syscall(SYS_close_range, 4, ~0U, 0);
		execv(exe, argv);
		_exit(127);
	}
	f->hf_pid = pid;
	return f;
}

struct ha_fence *ha_fence_sim_new(const char *exe, const char *domains_dir, const char *state_dir, char *err,
				  size_t errlen)
{
	struct ha_fence *f = xcalloc(1, sizeof *f);
	f->hf_fd = memfd_create("ha-watchdog", 0);
	if (f->hf_fd < 0 || ftruncate(f->hf_fd, 4096) != 0 ||
	    (f->hf_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, f->hf_fd, 0)) == MAP_FAILED) {
		errf(err, errlen, "HA watchdog: shared page: %s", strerror(errno));
		if (f->hf_fd >= 0)
			close(f->hf_fd);
		free(f);
		return NULL;
	}
	atomic_store(&f->hf_page->wp_cmd, WD_UNARMED);
	snprintf(f->hf_dir, sizeof f->hf_dir, "%s", domains_dir);
	if (!sim_spawn(f, exe, domains_dir, err, errlen)) {
		munmap(f->hf_page, 4096);
		close(f->hf_fd);
		free(f);
		return NULL;
	}
	snprintf(f->hf_pidfile, sizeof f->hf_pidfile, "%s/ha-watchdog.pid", state_dir);
	FILE *pf = fopen(f->hf_pidfile, "w");
	if (pf) {
		fprintf(pf, "%d\n", (int)f->hf_pid);
		fclose(pf);
	}
	return f;
}

/* Wait (bounded) for the watchdog process to end; true when it did. */
static bool sim_reap(struct ha_fence *f, int timeout_ms)
{
	uint64_t until = now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		pid_t r = waitpid(f->hf_pid, NULL, WNOHANG);
		if (r == f->hf_pid || (r < 0 && errno == ECHILD))
			return true;
		if (now_ms() >= until)
			return false;
		usleep(5000);
	}
}

/* ------------------------------------------------------------- xen */

struct ha_fence *ha_fence_xen_new(char *err, size_t errlen)
{
#ifdef HAVE_XEN
	xc_interface *xch = xc_interface_open(NULL, NULL, 0);
	if (!xch) {
		errf(err, errlen, "HA watchdog: cannot open the hypervisor interface (xc_interface_open)");
		return NULL;
	}
	struct ha_fence *f = xcalloc(1, sizeof *f);
	f->hf_xen = true;
	f->hf_xch = xch;
	return f;
#else
	errf(err, errlen, "HA watchdog: this build has no Xen support (libxen-dev)");
	return NULL;
#endif
}

#ifdef HAVE_XEN
/* The hypervisor counts whole seconds: never let it fire after the
 * deadline; under a second left means fence now. */
static int xen_kick(struct ha_fence *f, int64_t deadline_ms)
{
	if (deadline_ms < 0) {
		if (f->hf_wdid)
			xc_watchdog(f->hf_xch, f->hf_wdid, 0);
		f->hf_wdid = 0;
		return 0;
	}
	int64_t left = deadline_ms - (int64_t)now_ms();
	if (left < 1000)
		return -1;
	uint32_t secs = (uint32_t)(left / 1000);
	if (!f->hf_wdid) {
		int id = xc_watchdog(f->hf_xch, 0, secs);
		if (id <= 0)
			return -1;
		f->hf_wdid = (uint32_t)id;
		return 0;
	}
	return xc_watchdog(f->hf_xch, f->hf_wdid, secs) == 0 ? 0 : -1;
}
#endif

/* ------------------------------------------------------------ common */

int ha_fence_kick(struct ha_fence *f, int64_t deadline_ms)
{
#ifdef HAVE_XEN
	if (f->hf_xen)
		return xen_kick(f, deadline_ms);
#endif
	if (waitpid(f->hf_pid, NULL, WNOHANG) != 0 || atomic_load(&f->hf_page->wp_fired))
		return -1; /* the watchdog is gone, or fired: no protection left */
	atomic_store(&f->hf_page->wp_deadline_ms, deadline_ms);
	atomic_store(&f->hf_page->wp_cmd, deadline_ms < 0 ? WD_UNARMED : WD_ARMED);
	return 0;
}

void ha_fence_on_fire(struct ha_fence *f, void (*quiesce)(void *arg), void *arg)
{
	f->hf_quiesce = quiesce;
	f->hf_quiesce_arg = arg;
}

int ha_fence_fire(struct ha_fence *f)
{
	if (f->hf_quiesce)
		f->hf_quiesce(f->hf_quiesce_arg);
#ifdef HAVE_XEN
	if (f->hf_xen) {
		if (!f->hf_wdid)
			f->hf_wdid = (uint32_t)xc_watchdog(f->hf_xch, 0, 1);
		else
			xc_watchdog(f->hf_xch, f->hf_wdid, 1);
		for (;;)
			pause(); /* the hypervisor resets this host */
	}
#endif
	atomic_store(&f->hf_page->wp_cmd, WD_FIRE);
	/* fired: the domains are gone (the watchdog stays until we exit); or
	 * it is gone without firing */
	uint64_t until = now_ms() + KILL_WAIT_MS + 1000;
	while (!atomic_load(&f->hf_page->wp_fired) && waitpid(f->hf_pid, NULL, WNOHANG) == 0 && now_ms() < until)
		usleep(5000);
	if (!atomic_load(&f->hf_page->wp_fired))
		log_error("HA watchdog did not fence: killing the domains from the agent");
	/* and whatever started between the watchdog's last pass and the quiesce */
	ha_kill_domains(f->hf_dir);
	return 0;
}

void ha_fence_free(struct ha_fence *f)
{
	if (!f)
		return;
#ifdef HAVE_XEN
	if (f->hf_xen) {
		if (f->hf_wdid)
			xc_watchdog(f->hf_xch, f->hf_wdid, 0);
		xc_interface_close(f->hf_xch);
		free(f);
		return;
	}
#endif
	atomic_store(&f->hf_page->wp_cmd, WD_EXIT);
	if (!sim_reap(f, 2000)) {
		kill(f->hf_pid, SIGKILL);
		sim_reap(f, 2000);
	}
	munmap(f->hf_page, 4096);
	close(f->hf_fd);
	unlink(f->hf_pidfile);
	free(f);
}

/* ------------------------------------------------- a previous run */

int ha_armed_mark(const char *state_dir, bool armed)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/ha-armed", state_dir);
	if (!armed)
		return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

int ha_fence_leftover(const char *state_dir, const char *domains_dir)
{
	char path[4200], pidfile[4200];
	snprintf(path, sizeof path, "%s/ha-armed", state_dir);
	snprintf(pidfile, sizeof pidfile, "%s/ha-watchdog.pid", state_dir);
	if (access(path, F_OK) != 0)
		return 0;
	log_warn("HA was armed when this agent last stopped without disarming: fencing this host's domains, "
		 "as its watchdog would");
	int n = ha_kill_domains(domains_dir);
	/* the old watchdog has nothing left to guard */
	FILE *pf = fopen(pidfile, "r");
	int pid = 0;
	if (pf) {
		if (fscanf(pf, "%d", &pid) != 1)
			pid = 0;
		fclose(pf);
	}
	char cmdline[64];
	snprintf(cmdline, sizeof cmdline, "/proc/%d/cmdline", pid);
	FILE *cf = pid > 0 ? fopen(cmdline, "r") : NULL;
	if (cf) {
		char buf[4096] = "";
		size_t r = fread(buf, 1, sizeof buf - 1, cf);
		fclose(cf);
		if (r > 0 && memmem(buf, r, "--ha-watchdog", 13))
			kill(pid, SIGKILL);
	}
	unlink(pidfile);
	ha_armed_mark(state_dir, false);
	log_warn("fenced after an armed run: %d domain(s) killed", n);
	return 1;
}
