/*
 * heartbeat.c - network beats between the hosts: one UDP datagram (a
 * signed word, record.c) to every peer every beat interval, on the
 * address and port number each host's agent serves poold on (UDP and
 * TCP ports are separate spaces, so the number is free). UDP because a
 * beat that is late is worthless: nothing is retried, nothing queues
 * behind a lost peer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "ha.h"
#include "util.h"

static int addr_of(const char *address, int port, struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, address, &sa->sin_addr) == 1 ? 0 : -1;
}

int ha_net_open(const char *address, int port, char *err, size_t errlen)
{
	struct sockaddr_in sa;
	if (addr_of(address, port, &sa) < 0)
		return errf(err, errlen, "HA beats: '%s' is not an IPv4 address", address);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errf(err, errlen, "HA beats: socket: %s", strerror(errno));
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		errf(err, errlen, "HA beats: bind %s:%d/udp: %s", address, port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int ha_net_send(int fd, const struct ha_member *to, const char *buf, size_t len)
{
	struct sockaddr_in sa;
	if (addr_of(to->hm_address, to->hm_port, &sa) < 0)
		return -1;
	ssize_t n = sendto(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa, sizeof sa);
	return n == (ssize_t)len ? 0 : -1;
}
