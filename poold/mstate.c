/*
 * mstate.c - what a poold knows about the pool's master, kept in
 * DIR/master.json so a restarted poold (or one whose master died) knows
 * where the database is, who was master, and HA's statefile:
 *
 *   {"host_uuid":    this poold's host ("" for a master that never learnt it),
 *    "database":     the pool database on shared storage ("": DIR/pool.db),
 *    "master_uuid", "master_address", "port", "epoch": the master as last known,
 *    "ha":           {generation, key, timeout, statefile, members: [uuids]} or null,
 *    "users":        {name: password hash}: emergency logins on a standby,
 *    "peers":        [addresses of the hosts that run a poold]: asked when the master is silent}
 *
 * Written whole to a temporary file and renamed (mode 0600: it holds the
 * HA key and password hashes).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "poold.h"
#include "util.h"

static void mstate_path(const char *dir, char *out, size_t n, const char *suffix)
{
	snprintf(out, n, "%s/master.json%s", dir, suffix);
}

static void mstate_copy(char *dst, size_t n, json_t *o, const char *k)
{
	snprintf(dst, n, "%s", jstr(o, k));
}

void mstate_clear(struct mstate *ms)
{
	json_decref(ms->ms_ha);
	json_decref(ms->ms_users);
	json_decref(ms->ms_peers);
	memset(ms, 0, sizeof *ms);
}

int mstate_load(const char *dir, struct mstate *ms, char *err, size_t errlen)
{
	char path[4200];
	mstate_path(dir, path, sizeof path, "");
	mstate_clear(ms);
	json_error_t je;
	json_t *o = json_load_file(path, 0, &je);
	if (!o) {
		if (access(path, F_OK) != 0)
			return 0; /* none: a pool made here, or not a pool directory */
		return errf(err, errlen, "%s: %s (line %d)", path, je.text, je.line);
	}
	mstate_copy(ms->ms_host_uuid, sizeof ms->ms_host_uuid, o, "host_uuid");
	mstate_copy(ms->ms_database, sizeof ms->ms_database, o, "database");
	mstate_copy(ms->ms_master_uuid, sizeof ms->ms_master_uuid, o, "master_uuid");
	mstate_copy(ms->ms_master_address, sizeof ms->ms_master_address, o, "master_address");
	ms->ms_port = (int)json_integer_value(json_object_get(o, "port"));
	ms->ms_epoch = (uint64_t)json_integer_value(json_object_get(o, "epoch"));
	json_t *ha = json_object_get(o, "ha"), *users = json_object_get(o, "users"), *peers = json_object_get(o, "peers");
	ms->ms_ha = json_is_object(ha) ? json_incref(ha) : NULL;
	ms->ms_users = json_is_object(users) ? json_incref(users) : json_object();
	ms->ms_peers = json_is_array(peers) ? json_incref(peers) : json_array();
	ms->ms_exists = true;
	json_decref(o);
	return 0;
}

int mstate_save(const char *dir, const struct mstate *ms, char *err, size_t errlen)
{
	char path[4200], tmp[4200];
	mstate_path(dir, path, sizeof path, "");
	mstate_path(dir, tmp, sizeof tmp, ".tmp");
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:O?, s:O?, s:O?}", "host_uuid", ms->ms_host_uuid, "database",
			      ms->ms_database, "master_uuid", ms->ms_master_uuid, "master_address", ms->ms_master_address,
			      "port", ms->ms_port, "epoch", (json_int_t)ms->ms_epoch, "ha", ms->ms_ha, "users", ms->ms_users,
			      "peers", ms->ms_peers);
	char *text = json_dumps(o, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(o);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t len = strlen(text);
	int rc = fd >= 0 && write(fd, text, len) == (ssize_t)len && fsync(fd) == 0 ? 0 : -1;
	int saved = errno;
	if (fd >= 0)
		close(fd);
	free(text);
	if (rc == 0 && rename(tmp, path) < 0) {
		rc = -1;
		saved = errno;
	}
	if (rc)
		return errf(err, errlen, "%s: %s", path, strerror(saved));
	return 0;
}
