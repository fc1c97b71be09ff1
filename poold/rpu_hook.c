/*
 * rpu_hook.c - a host's upgrade command, run so that it outlives poold:
 * the command for the master restarts poold itself.
 *
 * It runs under /bin/sh in a session of its own (a double fork: poold has
 * no child to reap, and a poold killed by the command does not take the
 * command with it), with poold's descriptors closed (a new poold must be
 * able to listen on the port) and its signal state reset. A small shell
 * wrapper writes DIR/rpu/UUID.pid first and DIR/rpu/UUID.status (the exit
 * status, renamed into place) last; the output goes to DIR/rpu/UUID.log.
 * Whoever asks later, this poold or the next, reads those files. The
 * command gets POOLD_RPU_HOST_UUID in its environment as well as the
 * substituted {uuid}, {address} and {name}.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "rpu.h"
#include "util.h"

extern char **environ;

#define START_GRACE_S 10 /* a command that has not written its pid file yet */

static const char wrapper[] = "echo $$ >\"$POOLD_RPU_PID\"; /bin/sh -c \"$POOLD_RPU_CMD\"; s=$?; "
			      "echo $s >\"$POOLD_RPU_STATUS.tmp\" && mv \"$POOLD_RPU_STATUS.tmp\" \"$POOLD_RPU_STATUS\"";

static void path_of(struct poold *pd, const char *uuid, const char *ext, char *out, size_t len)
{
	snprintf(out, len, "%s/rpu/%s%s", pd->pd_dir, uuid, ext);
}

/* environ plus our variables (built before fork: the child only execs). */
static char **env_with(const char *const *extra, size_t nextra)
{
	size_t n = 0;
	while (environ && environ[n])
		n++;
	char **env = xcalloc(n + nextra + 1, sizeof *env);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "POOLD_RPU_", 10))
			env[k++] = environ[i];
	for (size_t i = 0; i < nextra; i++)
		env[k++] = (char *)extra[i];
	return env;
}

/* In the child: async-signal-safe calls only (poold has threads). */
static void child(int logfd, int nullfd, char **env)
{
	if (setsid() < 0)
		_exit(127);
	pid_t g = fork();
	if (g != 0)
		_exit(g < 0 ? 127 : 0);
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &dfl, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
		_exit(127);
	close_range(3, ~0U, 0);
	char *argv[] = {"sh", "-c", (char *)wrapper, NULL};
	execve("/bin/sh", argv, env);
	_exit(127);
}

int rpu_hook_start(struct poold *pd, const char *uuid, const char *cmd, char *err, size_t errlen)
{
	char dir[4200], pidf[4300], statf[4300], tmpf[4300], logf[4300];
	snprintf(dir, sizeof dir, "%s/rpu", pd->pd_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return errf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
	path_of(pd, uuid, ".pid", pidf, sizeof pidf);
	path_of(pd, uuid, ".status", statf, sizeof statf);
	path_of(pd, uuid, ".status.tmp", tmpf, sizeof tmpf);
	path_of(pd, uuid, ".log", logf, sizeof logf);
	unlink(pidf), unlink(statf), unlink(tmpf);
	int logfd = open(logf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (logfd < 0 || nullfd < 0) {
		if (logfd >= 0)
			close(logfd);
		if (nullfd >= 0)
			close(nullfd);
		return errf(err, errlen, "cannot open %s: %s", logf, strerror(errno));
	}
	size_t vl = strlen(cmd) + 4400;
	char *vars[4];
	for (int i = 0; i < 4; i++)
		vars[i] = xmalloc(vl);
	snprintf(vars[0], vl, "POOLD_RPU_CMD=%s", cmd);
	snprintf(vars[1], vl, "POOLD_RPU_PID=%s", pidf);
	snprintf(vars[2], vl, "POOLD_RPU_STATUS=%s", statf);
	snprintf(vars[3], vl, "POOLD_RPU_HOST_UUID=%s", uuid);
	char **env = env_with((const char *const *)vars, 4);
	pid_t c = fork();
	if (c == 0)
		child(logfd, nullfd, env);
	int st = 0, rc = 0;
	if (c < 0 || waitpid(c, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		rc = errf(err, errlen, "cannot start the upgrade command: %s", c < 0 ? strerror(errno) : "fork failed");
	close(logfd);
	close(nullfd);
	free(env);
	for (int i = 0; i < 4; i++)
		free(vars[i]);
	return rc;
}

static bool read_int(const char *path, long long *out)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	bool ok = fscanf(f, "%lld", out) == 1;
	fclose(f);
	return ok;
}

/* Running and not a zombie (an exited command init has not reaped yet). */
static bool alive(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static enum upgrade_cmd ended(const char *statf, int *code)
{
	long long s;
	if (!read_int(statf, &s))
		return UPGRADE_CMD_NONE;
	*code = (int)s;
	return s == 0 ? UPGRADE_CMD_OK : UPGRADE_CMD_FAILED;
}

enum upgrade_cmd rpu_hook_status(struct poold *pd, const char *uuid, int64_t started, int *code)
{
	char pidf[4300], statf[4300];
	if (!started)
		return UPGRADE_CMD_NONE;
	path_of(pd, uuid, ".pid", pidf, sizeof pidf);
	path_of(pd, uuid, ".status", statf, sizeof statf);
	enum upgrade_cmd e = ended(statf, code);
	if (e != UPGRADE_CMD_NONE)
		return e;
	long long pid;
	if (read_int(pidf, &pid) && pid > 0 && alive((pid_t)pid))
		return UPGRADE_CMD_RUNNING;
	e = ended(statf, code); /* it may have ended between the two reads */
	if (e != UPGRADE_CMD_NONE)
		return e;
	if (!read_int(pidf, &pid) && (int64_t)time(NULL) - started < START_GRACE_S)
		return UPGRADE_CMD_RUNNING; /* starting */
	return UPGRADE_CMD_LOST;
}

char *rpu_hook_output(struct poold *pd, const char *uuid, size_t tail)
{
	char logf[4300];
	path_of(pd, uuid, ".log", logf, sizeof logf);
	FILE *f = fopen(logf, "r");
	char *out = xcalloc(1, tail + 1);
	if (!f)
		return out;
	if (fseek(f, 0, SEEK_END) == 0) {
		long size = ftell(f);
		fseek(f, size > (long)tail ? size - (long)tail : 0, SEEK_SET);
	}
	size_t n = fread(out, 1, tail, f);
	out[n] = '\0';
	fclose(f);
	return out;
}
