/*
 * config.c - the xapi.conf keys poold reads, declared once. The sample file
 * etc/xapi.conf.sample documents each of them (a unit test checks that
 * every key here appears there).
 */
#include "poold.h"

#define DAY_MS (24LL * 3600 * 1000)

const struct conf_key poold_conf_keys[] = {
	{"listen-address", CONF_STRING, "0.0.0.0", 0, 0, NULL,
	 "address the XAPI port listens on; 0.0.0.0 = every interface, as xapi"},
	{"port", CONF_INT, "443", 0, 65535, NULL,
	 "HTTPS port for JSON-RPC (xe, XenAPI clients, agents); 443 as xapi, 0 = any free port"},
	{"max-request-size", CONF_SIZE, "8MiB", 1024, 1LL << 30, NULL,
	 "largest request body accepted; bigger ones get 413 so one client cannot exhaust memory"},
	{"max-unauthenticated-request-size", CONF_SIZE, "64KiB", 1024, 1LL << 30, NULL,
	 "largest body parsed for a client without a session or pool certificate (logins): bigger ones get 413 unparsed"},
	{"connection-timeout", CONF_DURATION, "60s", 100, DAY_MS, NULL,
	 "a connection that sends nothing for this long is closed"},
	{"request-timeout", CONF_DURATION, "30s", 100, DAY_MS, NULL,
	 "a request (TLS handshake, headers and body) must arrive whole within this, however slowly it trickles"},
	{"max-connections", CONF_INT, "4096", 1, 1 << 30, NULL,
	 "open client connections in all (lowered to what the file descriptor limit leaves room for)"},
	{"max-connections-per-address", CONF_INT, "256", 1, 1 << 30, NULL,
	 "open connections from one client address (IPv6: one /64); more are closed at once"},
	{"session-timeout", CONF_DURATION, "24h", 1000, 365 * DAY_MS, NULL,
	 "a session unused for this long is destroyed, as xapi expires idle sessions"},
	{"login-failure-delay", CONF_DURATION, "2s", 0, 60000, NULL,
	 "wait after a failed login from an address, doubled with each failure in a row; 0 = no throttling"},
	{"login-failure-delay-max", CONF_DURATION, "30s", 0, DAY_MS, NULL,
	 "the longest wait after failed logins (per address, and per user for addresses that failed)"},
	{"login-check-threads", CONF_INT, "2", 1, 64, NULL,
	 "threads checking passwords (~0.1 s of CPU each); one client address uses one at most"},
	{"login-queue-length", CONF_INT, "64", 1, 100000, NULL,
	 "logins waiting for a password check; more are refused until some are done"},
	{"event-from-max-timeout", CONF_DURATION, "1h", 1000, DAY_MS, NULL,
	 "upper bound for an event.from wait, whatever timeout the client asks"},
	{"event-log-size", CONF_INT, "200000", 1000, 100000000, NULL,
	 "events kept for event.from; a client further behind gets a full resynchronisation"},
	{"join-token-lifetime", CONF_DURATION, "1h", 1000, 30 * DAY_MS, NULL,
	 "how long a host join token (xe pool-join-token-create) stays usable; each is one-time"},
	{"host-heartbeat-timeout", CONF_DURATION, "10s", 1000, DAY_MS, NULL,
	 "a host whose agent sent no heartbeat for this long is marked not live"},
	{"task-retention", CONF_DURATION, "1h", 1000, 30 * DAY_MS, NULL,
	 "a finished task is destroyed this long after it ended (xapi collects them too)"},
	{"evacuation-batch-size", CONF_INT, "10", 1, 1000, NULL,
	 "migrations in flight during host.evacuate when the call gives no batch size (xapi: 10)"},
	{"storage-migration-destination-space-factor", CONF_INT, "3", 0, 100, NULL,
	 "storage migration: a destination SR needs this many times the virtual size of the disks moving to it "
	 "free (R-11)"},
	{"storage-migration-source-space-factor", CONF_INT, "2", 0, 100, NULL,
	 "storage migration: a source SR needs this many times the virtual size of the disks leaving it free, for "
	 "their temporary snapshots (R-11)"},
	{"storage-migration-max-per-host", CONF_INT, "3", 1, 1000, NULL,
	 "storage migrations from one host at once (R-13; xapi: 3); more wait in a queue, or are refused with "
	 "TOO_MANY_STORAGE_MIGRATES when the call says queue=false"},
	{"log-level", CONF_ENUM, "info", 0, 0, "debug|info|warn|error",
	 "least severe log line written to stderr"},
};
const size_t poold_nconf_keys = sizeof poold_conf_keys / sizeof poold_conf_keys[0];
