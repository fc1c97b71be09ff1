/*
 * flight.c - the agent's threads that move data to or from another host
 * (live migrations, disk mirrors) and their sockets: each takes a slot,
 * so a stopping agent cuts their connections (each then fails as before
 * its commit point) and waits for them before it frees what they use; and
 * the one-time endpoints and peer connections they use, mutual TLS with
 * the peer host's own certificate.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include "agent.h"
#include "log.h"
#include "tls.h"

/* ---- threads in flight (for a clean stop) ---- */

void agent_flights_init(struct mig_flights *f)
{
	memset(f, 0, sizeof *f);
	pthread_mutex_init(&f->mf_mu, NULL);
	pthread_cond_init(&f->mf_cv, NULL);
}

void agent_flights_fini(struct mig_flights *f)
{
	pthread_mutex_destroy(&f->mf_mu);
	pthread_cond_destroy(&f->mf_cv);
}

int agent_flight_enter(struct mig_flights *f)
{
	pthread_mutex_lock(&f->mf_mu);
	int slot = -1;
	for (int i = 0; i < MIG_FLIGHTS_MAX && slot < 0 && !f->mf_stopping; i++)
		if (f->mf_fd[i] == 0) {
			f->mf_fd[i] = -1;
			f->mf_name[i][0] = 0;
			f->mf_waiting[i] = f->mf_cancelled[i] = false;
			slot = i;
		}
	if (slot >= 0)
		f->mf_n++;
	pthread_mutex_unlock(&f->mf_mu);
	return slot;
}

static void fd_set_locked(struct mig_flights *f, int slot, int fd, bool waiting)
{
	f->mf_fd[slot] = fd;
	f->mf_waiting[slot] = waiting;
	if ((f->mf_stopping || (waiting && f->mf_cancelled[slot])) && fd >= 0)
		shutdown(fd, SHUT_RDWR);
}

void agent_flight_fd_set(struct mig_flights *f, int slot, int fd)
{
	pthread_mutex_lock(&f->mf_mu);
	fd_set_locked(f, slot, fd, false);
	pthread_mutex_unlock(&f->mf_mu);
}

void agent_flight_name(struct mig_flights *f, int slot, const char *uuid)
{
	pthread_mutex_lock(&f->mf_mu);
	snprintf(f->mf_name[slot], sizeof f->mf_name[slot], "%s", uuid);
	pthread_mutex_unlock(&f->mf_mu);
}

void agent_flight_listen(struct mig_flights *f, int slot, int lfd)
{
	pthread_mutex_lock(&f->mf_mu);
	fd_set_locked(f, slot, lfd, true);
	pthread_mutex_unlock(&f->mf_mu);
}

bool agent_flight_accepted(struct mig_flights *f, int slot, int fd)
{
	pthread_mutex_lock(&f->mf_mu);
	bool cancelled = f->mf_cancelled[slot];
	if (!cancelled && fd >= 0)
		fd_set_locked(f, slot, fd, false);
	pthread_mutex_unlock(&f->mf_mu);
	return !cancelled;
}

bool agent_flight_cancel(struct mig_flights *f, const char *uuid)
{
	bool cut = false;
	pthread_mutex_lock(&f->mf_mu);
	for (int i = 0; i < MIG_FLIGHTS_MAX; i++)
		if (f->mf_fd[i] != 0 && f->mf_waiting[i] && !f->mf_cancelled[i] && strcmp(f->mf_name[i], uuid) == 0) {
			f->mf_cancelled[i] = true;
			if (f->mf_fd[i] > 0)
				shutdown(f->mf_fd[i], SHUT_RDWR);
			cut = true;
		}
	pthread_mutex_unlock(&f->mf_mu);
	return cut;
}

bool agent_flight_cancelled(struct mig_flights *f, int slot)
{
	pthread_mutex_lock(&f->mf_mu);
	bool c = f->mf_cancelled[slot];
	pthread_mutex_unlock(&f->mf_mu);
	return c;
}

void agent_flight_leave(struct mig_flights *f, int slot)
{
	pthread_mutex_lock(&f->mf_mu);
	f->mf_fd[slot] = 0;
	f->mf_n--;
	pthread_cond_broadcast(&f->mf_cv);
	pthread_mutex_unlock(&f->mf_mu);
}

void agent_flights_stop(struct mig_flights *f)
{
	pthread_mutex_lock(&f->mf_mu);
	f->mf_stopping = true;
	for (int i = 0; i < MIG_FLIGHTS_MAX; i++)
		if (f->mf_fd[i] > 0)
			shutdown(f->mf_fd[i], SHUT_RDWR);
	if (f->mf_n)
		log_info("stopping: %d migration(s) in flight are cut (each fails before GO)", f->mf_n);
	while (f->mf_n > 0)
		pthread_cond_wait(&f->mf_cv, &f->mf_mu);
	pthread_mutex_unlock(&f->mf_mu);
}

bool agent_flight_stopping(struct mig_flights *f)
{
	pthread_mutex_lock(&f->mf_mu);
	bool s = f->mf_stopping;
	pthread_mutex_unlock(&f->mf_mu);
	return s;
}

/* A one-time listening socket on addr (else our management address). */
int agent_listen_one(struct agent *ag, const char *addr, int *port)
{
	if (!addr || !*addr)
		addr = ag->ag_address;
	struct sockaddr_in sa = {0};
	sa.sin_family = AF_INET;
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		errno = EADDRNOTAVAIL;
		return -1;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	socklen_t sl = sizeof sa;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

static int connect_to(const char *addr, int port)
{
	struct addrinfo hints = {0}, *ai = NULL;
	hints.ai_socktype = SOCK_STREAM;
	char ps[16];
	snprintf(ps, sizeof ps, "%d", port);
	if (getaddrinfo(addr, ps, &hints, &ai) != 0)
		return -1;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

int agent_peer_connect(struct agent *ag, int slot, const char *addr, int port, const char *peer_cn, int *fd,
		       SSL **ssl, char *err, size_t errlen)
{
	*ssl = NULL;
	*fd = connect_to(addr, port);
	agent_flight_fd_set(&ag->ag_flights, slot, *fd);
	if (*fd < 0) {
		snprintf(err, errlen, "cannot connect to the destination %s:%d: %s", addr, port, strerror(errno));
		return -1;
	}
	struct timeval tv = {60, 0};
	setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	/* the destination must show a pool certificate, the chosen host's */
	*ssl = SSL_new(ag->ag_client_ctx);
	if (!*ssl || (peer_cn && peer_cn[0] && tls_require_peer_cn(*ssl, peer_cn) != 1) || SSL_set_fd(*ssl, *fd) != 1 ||
	    SSL_connect(*ssl) != 1) {
		snprintf(err, errlen, "TLS to the destination %s:%d refused", addr, port);
		return -1;
	}
	return 0;
}

