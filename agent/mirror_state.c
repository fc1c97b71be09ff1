/*
 * mirror_state.c - one disk mirror's state as its thread moves it on and
 * the agent's methods read it (mirror_ops.h): references, the state and a
 * failure's reason under the mirror's lock, cancellation, its socket.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "mirror_ops.h"

const char *mirror_state_name(enum mirror_state s)
{
	static const char *const names[] = {"snapshot", "copy", "rounds", "ready", "final", "handed_over", "done",
					    "failed"};
	return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

void mirror_unref(struct mirror *m)
{
	struct agent *ag = m->mi_ag;
	pthread_mutex_lock(&ag->ag_mirror_mu);
	bool last = --m->mi_refs == 0;
	pthread_mutex_unlock(&ag->ag_mirror_mu);
	if (!last)
		return;
	if (m->mi_lfd >= 0)
		close(m->mi_lfd);
	pthread_mutex_destroy(&m->mi_mu);
	pthread_cond_destroy(&m->mi_cv);
	free(m);
}

/* ---- state, from the threads ---- */

void mirror_set_state(struct mirror *m, enum mirror_state st)
{
	pthread_mutex_lock(&m->mi_mu);
	m->mi_state = st;
	pthread_cond_broadcast(&m->mi_cv);
	pthread_mutex_unlock(&m->mi_mu);
}

void mirror_fail(struct mirror *m, const char *fmt, ...)
{
	pthread_mutex_lock(&m->mi_mu);
	if (m->mi_state != MS_FAILED) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(m->mi_err, sizeof m->mi_err, fmt, ap);
		va_end(ap);
		m->mi_state = MS_FAILED;
	}
	m->mi_final_done = true; /* a hook waiting for the last round hears it failed */
	m->mi_final_rc = -1;
	pthread_cond_broadcast(&m->mi_cv);
	pthread_mutex_unlock(&m->mi_mu);
	log_warn("disk mirror %s (%s): %s", m->mi_id, m->mi_role == MR_SEND ? "source" : "destination", m->mi_err);
}

bool mirror_cancelled(struct mirror *m)
{
	pthread_mutex_lock(&m->mi_mu);
	bool c = m->mi_cancel;
	pthread_mutex_unlock(&m->mi_mu);
	return c || agent_flight_stopping(&m->mi_ag->ag_flights);
}

void mirror_sock_set(struct mirror *m, int fd)
{
	pthread_mutex_lock(&m->mi_mu);
	m->mi_sock = fd;
	agent_flight_fd_set(&m->mi_ag->ag_flights, m->mi_slot, fd); /* a stopping agent cuts it too */
	if (fd >= 0 && m->mi_cancel)
		shutdown(fd, SHUT_RDWR);
	pthread_mutex_unlock(&m->mi_mu);
}

