/* backend_lock.h - a backend whose every call holds one mutex (see .c). */
#ifndef BACKEND_LOCK_H
#define BACKEND_LOCK_H

#include "backend.h"

/* Wraps inner (taken: freed with the wrapper). */
struct backend *backend_locked_new(struct backend *inner);
struct backend *backend_locked_inner(struct backend *be);
/* For code that drives the inner backend directly (migration): take the
 * same mutex; be is the wrapper. */
void backend_locked_lock(void *be);
void backend_locked_unlock(void *be);
/* Take the mutex for good (the host fences; the agent exits next), waiting
 * at most timeout_ms for a call in progress: false when it did not come. */
bool backend_locked_hold(void *be, int timeout_ms);

#endif
