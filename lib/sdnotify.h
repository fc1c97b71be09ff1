/*
 * sdnotify.h - tell systemd how a daemon is doing (sd_notify(3)'s protocol,
 * written here: one datagram to the socket $NOTIFY_SOCKET names).
 *
 * poold and pool-agent run as Type=notify units: they say READY=1 once
 * their port is bound (and, for the agent, once it is a pool member), so
 * `systemctl start` returns when they serve, and STOPPING=1 when they stop.
 * Without $NOTIFY_SOCKET (not under systemd) nothing is sent.
 */
#ifndef SDNOTIFY_H
#define SDNOTIFY_H

/* Send state ("READY=1", "STOPPING=1", "STATUS=..."): 0 when sent or when
 * there is no one to tell, -1 when the socket named refused it. */
int sdnotify(const char *state);

#endif
