/*
 * backend_lock.c - one backend, several threads: every call under one mutex.
 *
 * A backend's calls must not overlap. The agent's loop (reports, VM
 * operations) and its migration threads all go through this wrapper; the
 * migration code, which also needs the sim backend's own functions
 * (backend_sim_map, ...), takes the same mutex through the lock callbacks.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "agent.h"
#include "backend_lock.h"
#include "util.h"

struct locked {
	struct backend *inner;
	pthread_mutex_t mu;
};

static struct locked *L(struct backend *be)
{
	return be->be_priv;
}

void backend_locked_lock(void *be)
{
	pthread_mutex_lock(&L(be)->mu);
}

void backend_locked_unlock(void *be)
{
	pthread_mutex_unlock(&L(be)->mu);
}

bool backend_locked_hold(void *be, int timeout_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return pthread_mutex_timedlock(&L(be)->mu, &ts) == 0;
}

struct backend *backend_locked_inner(struct backend *be)
{
	return L(be)->inner;
}

/* Run one call of the inner backend under the lock; keep its error. */
#define CALL(be, expr)                                                                   \
	do {                                                                             \
		struct locked *l_ = L(be);                                               \
		pthread_mutex_lock(&l_->mu);                                             \
		int rc_ = (expr);                                                        \
		if (rc_ < 0)                                                             \
			memcpy((be)->be_error, l_->inner->be_error, sizeof (be)->be_error); \
		pthread_mutex_unlock(&l_->mu);                                           \
		return rc_;                                                              \
	} while (0)

#define IN(be) (L(be)->inner)
#define OPS(be) (IN(be)->be_ops)

static int l_host_info(struct backend *be, struct be_host_info *o) { CALL(be, OPS(be)->bo_host_info(IN(be), o)); }
static int l_create(struct backend *be, const struct be_domain_config *c, int *d) { CALL(be, OPS(be)->bo_domain_create(IN(be), c, d)); }
static int l_restore(struct backend *be, const struct be_domain_config *c, int *d) { CALL(be, OPS(be)->bo_domain_create_restore(IN(be), c, d)); }
static int l_unpause(struct backend *be, int d) { CALL(be, OPS(be)->bo_domain_unpause(IN(be), d)); }
static int l_pause(struct backend *be, int d) { CALL(be, OPS(be)->bo_domain_pause(IN(be), d)); }
static int l_shutdown(struct backend *be, int d, int t) { CALL(be, OPS(be)->bo_domain_shutdown(IN(be), d, t)); }
static int l_destroy(struct backend *be, int d) { CALL(be, OPS(be)->bo_domain_destroy(IN(be), d)); }
static int l_list(struct backend *be, struct be_domain_info **o, int *n) { CALL(be, OPS(be)->bo_domain_list(IN(be), o, n)); }
static int l_info(struct backend *be, int d, struct be_domain_info *o) { CALL(be, OPS(be)->bo_domain_info(IN(be), d, o)); }
static int l_target(struct backend *be, int d, uint64_t b) { CALL(be, OPS(be)->bo_set_memory_target(IN(be), d, b)); }
static int l_vcpus(struct backend *be, int d, int v) { CALL(be, OPS(be)->bo_set_vcpus(IN(be), d, v)); }
static int l_disk_add(struct backend *be, int d, const struct be_disk *k) { CALL(be, OPS(be)->bo_disk_add(IN(be), d, k)); }
static int l_disk_remove(struct backend *be, int d, const char *dev) { CALL(be, OPS(be)->bo_disk_remove(IN(be), d, dev)); }

static void l_free(struct backend *be)
{
	struct locked *l = L(be);
	l->inner->be_ops->bo_free(l->inner);
	pthread_mutex_destroy(&l->mu);
	free(l);
	free((void *)be->be_ops);
	free(be);
}

struct backend *backend_locked_new(struct backend *inner)
{
	struct backend *be = xcalloc(1, sizeof *be);
	struct locked *l = xcalloc(1, sizeof *l);
	struct backend_ops *ops = xcalloc(1, sizeof *ops);
	ops->bo_name = inner->be_ops->bo_name;
	ops->bo_host_info = l_host_info;
	ops->bo_domain_create = l_create;
	ops->bo_domain_create_restore = l_restore;
	ops->bo_domain_unpause = l_unpause;
	ops->bo_domain_pause = l_pause;
	ops->bo_domain_shutdown = l_shutdown;
	ops->bo_domain_destroy = l_destroy;
	ops->bo_domain_list = l_list;
	ops->bo_domain_info = l_info;
	ops->bo_set_memory_target = l_target;
	ops->bo_set_vcpus = l_vcpus;
	ops->bo_disk_add = l_disk_add;
	ops->bo_disk_remove = l_disk_remove;
	ops->bo_free = l_free;
	l->inner = inner;
	pthread_mutex_init(&l->mu, NULL);
	be->be_ops = ops;
	be->be_priv = l;
	return be;
}
