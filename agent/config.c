/*
 * config.c - the settings pool-agent reads (etc/pool-agent.conf.sample
 * documents each; a unit test checks that it does).
 */
#include <string.h>
#include "agent.h"
#include "tls.h"

#define DAY_MS (24LL * 3600 * 1000)
#define GIB (1024LL * 1024 * 1024)

const struct conf_key agent_conf_keys[] = {
	{"master", CONF_STRING, "", 0, 0, NULL, "the pool master's address and port (host:port)"},
	{"ca-fingerprint", CONF_STRING, "", 0, 0, NULL,
	 "SHA-256 fingerprint of the pool CA, as printed by `poold init`: checked before joining"},
	{"join-token", CONF_STRING, "", 0, 0, NULL, "one-time token from `xe pool-join-token-create`"},
	{"state-dir", CONF_STRING, "/var/lib/pool-agent", 0, 0, NULL,
	 "where the agent keeps its key, certificate and its domains' control sockets"},
	{"name", CONF_STRING, "", 0, 0, NULL, "the host's name-label (default: the machine's host name)"},
	{"listen-address", CONF_STRING, "0.0.0.0", 0, 0, NULL, "address the agent's API listens on"},
	{"port", CONF_INT, "4444", 0, 65535, NULL, "the agent's HTTPS port (mutual TLS); 0 = any free port"},
	{"request-timeout", CONF_DURATION, "30s", 100, DAY_MS, NULL,
	 "a request (TLS handshake, headers and body) must arrive whole within this, however slowly it trickles"},
	{"max-connections", CONF_INT, "512", 1, 1 << 30, NULL,
	 "open connections to the agent's API in all (lowered to what the file descriptor limit leaves room for)"},
	{"max-connections-per-address", CONF_INT, "128", 1, 1 << 30, NULL,
	 "open connections to the agent's API from one address (poold opens one per call in flight)"},
	{"address", CONF_STRING, "", 0, 0, NULL,
	 "management address poold reaches the agent on (default: a single listen-address, else the local address "
	 "that routes to the master)"},
	{"migration-address", CONF_STRING, "", 0, 0, NULL,
	 "a second address, on a separate network, for migration streams that ask for that network (PIF eth1; "
	 "default: none)"},
	{"backend", CONF_ENUM, "auto", 0, 0, "auto|sim|xen",
	 "hypervisor: xen (libxl), sim (simulated), auto = xen when /dev/xen/privcmd exists and this build has "
	 "Xen support (libxen-dev), else sim; --backend overrides it"},
	{"sim-memory", CONF_SIZE, "16GiB", 64LL * 1024 * 1024, 64 * 1024 * GIB, NULL,
	 "sim backend: the host's memory"},
	{"sim-cpus", CONF_INT, "8", 1, 1024, NULL, "sim backend: the host's CPU count"},
	{"sim-cpu-vendor", CONF_ENUM, "GenuineIntel", 0, 0, "GenuineIntel|AuthenticAMD",
	 "sim backend: the CPU vendor"},
	{"sim-featureset", CONF_STRING,
	 "1fcbfbff-f7fa3223-2d93fbff-00000023-00000001-000007ab-00000000-00000000-001000c8", 0, 0, NULL,
	 "sim backend: the CPU feature set (XAPI form), so tests can mix CPU generations"},
	{"simdom-path", CONF_STRING, "", 0, 0, NULL,
	 "sim backend: the domain program (default: pool-simdom beside pool-agent, else in ../libexec/poold/)"},
	{"heartbeat-interval", CONF_DURATION, "2s", 100, DAY_MS, NULL,
	 "how often the agent reports its host and domains to poold"},
	{"software-version", CONF_STRING, "", 0, 0, NULL,
	 "the product version reported (default: this build's); lets tests build mixed-version pools"},
	{"platform-version", CONF_STRING, "", 0, 0, NULL,
	 "the platform version reported (default: this build's XAPI platform, 3.4.0); with software-version, the keys "
	 "of rolling-upgrade mode"},
	{"hardware-platform-versions", CONF_STRING, "0-2", 0, 0, NULL,
	 "the virtual hardware platform versions this host offers its VMs: a list (0,1,2) or a range (0-2)"},
	{"fault-migration-cut-bytes", CONF_SIZE, "0", 0, 1LL << 50, NULL,
	 "testing only: cut outgoing migration streams after this many bytes (0 = never)"},
	{"fault-mirror-cut-bytes", CONF_SIZE, "0", 0, 1LL << 50, NULL,
	 "testing only: cut outgoing disk mirror streams (storage migration) after this many bytes (0 = never)"},
	{"fault-exit-after-handover", CONF_BOOL, "false", 0, 0, NULL,
	 "testing only: exit at once when an outgoing migration has handed its VM over (after GO and RUNNING), "
	 "before poold hears of it: a source host that dies right after the commit point"},
	{"log-level", CONF_ENUM, "info", 0, 0, "debug|info|warn|error", "least severe log line written"},
};
const size_t agent_nconf_keys = sizeof agent_conf_keys / sizeof agent_conf_keys[0];

/* A wildcard listens on every address: it says nothing of where poold
 * may reach us. */
static bool wildcard(const char *a)
{
	return !*a || strcmp(a, "0.0.0.0") == 0 || strcmp(a, "::") == 0 || strcmp(a, "[::]") == 0;
}

const char *agent_address_choose(const char *address, const char *listen, const char *local, bool *odd)
{
	*odd = false;
	if (*address) {
		/* another literal than the one we listen on is reachable only
		 * through a translation (NAT, a forwarded port): said in the log */
		*odd = !wildcard(listen) && strcmp(address, listen) != 0 && tls_name_kind(address, NULL, NULL) == TLS_NAME_IP;
		return address;
	}
	return wildcard(listen) ? local : listen;
}
