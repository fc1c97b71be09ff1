/*
 * durable.c - group commit for the pool database on shared storage.
 *
 * A master's host may die at any instant, and with it whatever the
 * storage had not yet been told to keep: every change poold acknowledges
 * must be on the shared SR first. Syncing each commit costs a disk flush
 * per transaction (~1.5 ms here: 700 commits/s instead of 20,000), so
 * commits are written without a sync and this thread syncs the WAL file
 * once for all the commits made meanwhile; http.c holds back every answer
 * produced after a commit until a sync covers it (durable_covers). Under
 * load one flush covers many commits; an idle pool pays one flush per
 * write call.
 *
 * fdatasync on a descriptor of the WAL file flushes every write to that
 * file, whoever made it (SQLite's own descriptor included). A WAL that
 * SQLite checkpointed and restarts from its beginning is the same file.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "log.h"
#include "poold.h"
#include "util.h"

struct durable {
	char du_wal[4200];
	int du_fd;               /* the WAL file, opened at the first sync */
	int du_notify;           /* eventfd: a sync finished */
	struct event *du_ev;
	pthread_t du_thread;
	pthread_mutex_t du_mu;
	pthread_cond_t du_cv;
	uint64_t du_wanted;      /* commits that must reach the disk */
	_Atomic uint64_t du_done; /* commits known on the disk */
	bool du_stop;
	void (*du_cb)(void *arg);
	void *du_arg;
	uint64_t du_syncs;
};

static int durable_sync(struct durable *d)
{
	if (d->du_fd < 0)
		d->du_fd = open(d->du_wal, O_RDWR | O_CLOEXEC);
	if (d->du_fd < 0)
		return errno == ENOENT ? 0 : -1; /* no WAL yet: nothing unsynced in it */
	return fdatasync(d->du_fd);
}

static void *durable_main(void *arg)
{
	struct durable *d = arg;
	pthread_mutex_lock(&d->du_mu);
	for (;;) {
		while (!d->du_stop && d->du_wanted <= atomic_load(&d->du_done))
			pthread_cond_wait(&d->du_cv, &d->du_mu);
		if (d->du_stop)
			break;
		uint64_t target = d->du_wanted;
		pthread_mutex_unlock(&d->du_mu);
		int rc = durable_sync(d);
		if (rc < 0)
			log_error("pool database: syncing %s failed: %s (answers wait for the next sync)", d->du_wal,
				  strerror(errno));
		pthread_mutex_lock(&d->du_mu);
		if (rc == 0) {
			atomic_store(&d->du_done, target);
			d->du_syncs++;
			uint64_t one = 1;
			if (write(d->du_notify, &one, sizeof one) < 0)
				log_debug("durable: notify: %s", strerror(errno));
		} else {
			pthread_mutex_unlock(&d->du_mu);
			usleep(20000); /* a failing disk is not spun on */
			pthread_mutex_lock(&d->du_mu);
		}
	}
	pthread_mutex_unlock(&d->du_mu);
	return NULL;
}

static void durable_on_notify(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	uint64_t n;
	struct durable *d = arg;
	if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
		log_debug("durable: %s", strerror(errno));
	d->du_cb(d->du_arg);
}

struct durable *durable_new(struct event_base *base, const char *db_path, void (*cb)(void *arg), void *arg)
{
	struct durable *d = xcalloc(1, sizeof *d);
	snprintf(d->du_wal, sizeof d->du_wal, "%s-wal", db_path);
	d->du_fd = -1;
	d->du_cb = cb;
	d->du_arg = arg;
	d->du_notify = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&d->du_mu, NULL);
	pthread_cond_init(&d->du_cv, NULL);
	d->du_ev = event_new(base, d->du_notify, EV_READ | EV_PERSIST, durable_on_notify, d);
	event_add(d->du_ev, NULL);
	if (pthread_create(&d->du_thread, NULL, durable_main, d) != 0)
		abort(); /* as out of memory: nothing sensible is left to do */
	return d;
}

bool durable_covers(struct durable *d, uint64_t commits)
{
	return !d || atomic_load(&d->du_done) >= commits;
}

void durable_want(struct durable *d, uint64_t commits)
{
	pthread_mutex_lock(&d->du_mu);
	if (commits > d->du_wanted) {
		d->du_wanted = commits;
		pthread_cond_signal(&d->du_cv);
	}
	pthread_mutex_unlock(&d->du_mu);
}

uint64_t durable_syncs(struct durable *d)
{
	pthread_mutex_lock(&d->du_mu);
	uint64_t n = d->du_syncs;
	pthread_mutex_unlock(&d->du_mu);
	return n;
}

void durable_free(struct durable *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->du_mu);
	d->du_stop = true;
	pthread_cond_signal(&d->du_cv);
	pthread_mutex_unlock(&d->du_mu);
	pthread_join(d->du_thread, NULL);
	durable_sync(d); /* what was committed is on the disk before the database closes */
	event_free(d->du_ev);
	close(d->du_notify);
	if (d->du_fd >= 0)
		close(d->du_fd);
	pthread_mutex_destroy(&d->du_mu);
	pthread_cond_destroy(&d->du_cv);
	free(d);
}
