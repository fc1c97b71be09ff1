/*
 * main.c - pool-agent, the daemon on every host of the pool.
 *
 *   pool-agent --config FILE [--backend sim|xen|auto] [--set KEY=VALUE]...
 *
 * Starts the hypervisor backend, listens for poold (mutual TLS), joins the
 * pool the first time (a join token and the CA fingerprint from the
 * config), then reports its host and domains to poold every
 * heartbeat-interval. Domains outlive the agent: a restarted agent finds
 * them through the backend and reports them at its first heartbeat.
 */
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <event2/event.h>
#include <event2/thread.h>
#include "agent.h"
#include "backend_lock.h"
#include "evrpc.h"
#include "ha.h"
#include "log.h"
#include "sdnotify.h"
#include "tls.h"
#include "version.h"
#include "util.h"
#include "xerr.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: pool-agent --config FILE [--backend auto|sim|xen] [--set KEY=VALUE]...\n"
		   "       pool-agent --version | --help\n"
		   "(see pool-agent(8) and pool-agent.conf(5))\n");
}

static int load_config(struct agent *ag, const char *file, const char *backend, char **sets, int nsets)
{
	char err[1024] = "";
	ag->ag_conf = conf_new(agent_conf_keys, agent_nconf_keys);
	if (!ag->ag_conf)
		return -1;
	if (file && conf_load(ag->ag_conf, file, err, sizeof err) < 0) {
		fprintf(stderr, "pool-agent: %s\n", err);
		return -1;
	}
	if (conf_set_args(ag->ag_conf, sets, nsets, err, sizeof err) < 0) {
		fprintf(stderr, "pool-agent: %s\n", err);
		return -1;
	}
	if (backend && conf_set(ag->ag_conf, "backend", backend, "--backend", err, sizeof err) < 0) {
		fprintf(stderr, "pool-agent: %s\n", err);
		return -1;
	}
	if (!*conf_str(ag->ag_conf, "name")) {
		char host[256] = "localhost";
		gethostname(host, sizeof host - 1);
		conf_set(ag->ag_conf, "name", host, "default", err, sizeof err);
	}
	log_set_level((enum log_level)log_level_from_name(conf_str(ag->ag_conf, "log-level")));
	return 0;
}

/* The loop and migration threads share the backend: one call at a time. */
static struct backend *locked(struct backend *inner, char *err, size_t errlen)
{
	struct backend *l = inner ? backend_locked_new(inner) : NULL;
	if (inner && !l) {
		inner->be_ops->bo_free(inner);
		snprintf(err, errlen, "out of memory");
	}
	return l;
}

/* pool-simdom beside the agent (a build tree: bin/), else where an
 * install puts it (sbin/pool-agent, libexec/poold/pool-simdom). The
 * agent's own path comes from /proc/self/exe: argv[0] may be a bare name
 * found on $PATH. */
static void find_simdom(const char *argv0, char *out, size_t outlen)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0)
		self[n] = '\0';
	else
		snprintf(self, sizeof self, "%s", argv0);
	char *dir = dirname(self);
	snprintf(out, outlen, "%s/pool-simdom", dir);
	if (access(out, X_OK) == 0)
		return;
	char alt[4200];
	snprintf(alt, sizeof alt, "%s/../libexec/poold/pool-simdom", dir);
	if (access(alt, X_OK) == 0)
		snprintf(out, outlen, "%s", alt);
}

static struct backend *open_backend(struct agent *ag, const char *argv0, char *err, size_t errlen)
{
	const char *want = backend_choose(conf_str(ag->ag_conf, "backend"), BACKEND_XEN_PRIVCMD, backend_xen_built(),
					  err, errlen);
	if (!want)
		return NULL;
	char state[4200];
	if (strcmp(want, "xen") == 0) {
		snprintf(state, sizeof state, "%s/xen", ag->ag_state);
		return locked(backend_xen_new(state, BACKEND_XEN_PRIVCMD, err, errlen), err, errlen);
	}
	char simdom[4200];
	const char *p = conf_str(ag->ag_conf, "simdom-path");
	if (*p)
		snprintf(simdom, sizeof simdom, "%s", p);
	else
		find_simdom(argv0, simdom, sizeof simdom);
	snprintf(state, sizeof state, "%s/domains", ag->ag_state);
	mkdir(state, 0700);
	struct backend *sim = backend_sim_new(state, simdom, (uint64_t)conf_int(ag->ag_conf, "sim-memory"),
					      (int)conf_int(ag->ag_conf, "sim-cpus"), conf_str(ag->ag_conf, "sim-cpu-vendor"),
					      conf_str(ag->ag_conf, "sim-featureset"), err, errlen);
	return locked(sim, err, errlen);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct agent *ag = arg;
	log_info("signal %d: stopping (domains keep running)", (int)sig);
	event_base_loopexit(ag->ag_base, NULL);
}

static int tls_setup(struct agent *ag, char *err, size_t errlen)
{
	char cert[4200], key[4200], ca[4200];
	snprintf(cert, sizeof cert, "%s/agent.pem", ag->ag_state);
	snprintf(key, sizeof key, "%s/agent.key", ag->ag_state);
	snprintf(ca, sizeof ca, "%s/ca.pem", ag->ag_state);
	ag->ag_server_ctx = tls_server_ctx(cert, key, ca, 1, err, errlen);
	ag->ag_client_ctx = ag->ag_server_ctx ? tls_client_ctx(ca, cert, key, err, errlen) : NULL;
	return ag->ag_client_ctx ? 0 : -1;
}

static int run(struct agent *ag, const char *argv0)
{
	char err[1024] = "";
	snprintf(ag->ag_state, sizeof ag->ag_state, "%s", conf_str(ag->ag_conf, "state-dir"));
	if (mkdir(ag->ag_state, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "pool-agent: %s: %s\n", ag->ag_state, strerror(errno));
		return 1;
	}
	if (agent_split_master(conf_str(ag->ag_conf, "master"), ag->ag_master_host, sizeof ag->ag_master_host,
			       &ag->ag_master_port) < 0) {
		fprintf(stderr, "pool-agent: master: '%s' is not valid: expected host:port\n",
			conf_str(ag->ag_conf, "master"));
		return 1;
	}
	agent_master_load(ag); /* the master moved since the config was written: master.c */
	char local[64] = "";
	const char *listen = conf_str(ag->ag_conf, "listen-address");
	bool odd;
	agent_local_address(ag->ag_master_host, ag->ag_master_port, local, sizeof local);
	const char *addr = agent_address_choose(conf_str(ag->ag_conf, "address"), listen, local, &odd);
	if (!*addr) {
		fprintf(stderr, "pool-agent: no local address routes to the master %s:%d, and neither address nor a "
				"single listen-address is set: set address to the one poold reaches this host on\n",
			ag->ag_master_host, ag->ag_master_port);
		return 1;
	}
	if (odd)
		log_warn("address %s is not the listen-address %s: poold must reach this agent through a "
			 "translation (NAT, a forwarded port)", addr, listen);
	snprintf(ag->ag_address, sizeof ag->ag_address, "%s", addr);
	ag->ag_be = open_backend(ag, argv0, err, sizeof err);
	if (!ag->ag_be) {
		fprintf(stderr, "pool-agent: %s\n", err);
		return 1;
	}
	agent_ha_leftover(ag); /* an armed run that did not disarm: its host is fenced first */
	evthread_use_pthreads();
	{
		/* a name for this run: a restarted agent numbers its reports anew */
		unsigned char rnd[8];
		FILE *u = fopen("/dev/urandom", "r");
		if (!u || fread(rnd, 1, sizeof rnd, u) != sizeof rnd)
			memset(rnd, 0, sizeof rnd);
		if (u)
			fclose(u);
		snprintf(ag->ag_boot, sizeof ag->ag_boot, "%d-%02x%02x%02x%02x%02x%02x%02x%02x", (int)getpid(), rnd[0],
			 rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	}
	ag->ag_base = event_base_new();
	agent_srs_load(ag);
	agent_incoming_cleanup(ag);
	if (agent_server_start(ag, err, sizeof err) < 0 || agent_join_if_needed(ag, err, sizeof err) < 0 ||
	    tls_setup(ag, err, sizeof err) < 0) {
		fprintf(stderr, "pool-agent: %s\n", err);
		return 1;
	}
	char portfile[4200];
	snprintf(portfile, sizeof portfile, "%s/agent.port", ag->ag_state);
	FILE *f = fopen(portfile, "w");
	if (f) {
		fprintf(f, "%d\n", ag->ag_port);
		fclose(f);
	}
	struct event *sigterm = evsignal_new(ag->ag_base, SIGTERM, on_signal, ag);
	struct event *sigint = evsignal_new(ag->ag_base, SIGINT, on_signal, ag);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	agent_beat_state_remember(ag);
	agent_beat_start(ag);
	log_info("host %s (%s backend) listening on %s port %d, reached by poold at %s, master %s:%d",
		 ag->ag_host_uuid, ag->ag_be->be_ops->bo_name, listen, ag->ag_port, ag->ag_address,
		 ag->ag_master_host, ag->ag_master_port);
	if (sdnotify("READY=1") < 0) /* systemd: a pool member, serving (Type=notify) */
		log_warn("cannot tell systemd the agent is ready ($NOTIFY_SOCKET)");
	event_base_dispatch(ag->ag_base);
	sdnotify("STOPPING=1");
	agent_migrations_stop(ag);
	agent_ha_stop(ag); /* leaving cleanly: the peers exclude us rather than count us failed */
	event_base_loop(ag->ag_base, EVLOOP_NONBLOCK); /* their answers, while we still can */
	agent_server_stop(ag);
	agent_beat_stop(ag);
	event_free(sigterm);
	event_free(sigint);
	return 0;
}

int main(int argc, char **argv)
{
	log_init("pool-agent", LOG_LVL_INFO);
	util_json_init();
	if (argc > 1 && strcmp(argv[1], "--ha-watchdog") == 0)
		return ha_watchdog_main(argc, argv);
	if (agent_server_check_table() < 0) {
		fprintf(stderr, "pool-agent: a method of agent_proto.h has no handler of its kind\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("pool-agent %s\n", POOLD_VERSION);
		return 0;
	}
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	const char *config = NULL, *backend = NULL;
	char **sets = calloc((size_t)argc, sizeof *sets);
	int nsets = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			config = argv[++i];
		else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc)
			backend = argv[++i];
		else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc)
			sets[nsets++] = argv[++i];
		else {
			usage(stderr);
			free(sets);
			return 2;
		}
	}
	struct agent ag;
	memset(&ag, 0, sizeof ag);
	agent_flights_init(&ag.ag_flights);
	agent_mirrors_init(&ag);
	ag.ag_ha_notify = -1;
	ssize_t el = readlink("/proc/self/exe", ag.ag_exe, sizeof ag.ag_exe - 1);
	if (el <= 0)
		snprintf(ag.ag_exe, sizeof ag.ag_exe, "%s", argv[0]);
	int rc = load_config(&ag, config, backend, sets, nsets) < 0 ? 1 : run(&ag, argv[0]);
	free(sets);
	if (ag.ag_be)
		ag.ag_be->be_ops->bo_free(ag.ag_be);
	agent_mirrors_free(&ag);
	agent_srs_free(&ag);
	agent_master_free(&ag);
	SSL_CTX_free(ag.ag_server_ctx);
	SSL_CTX_free(ag.ag_client_ctx);
	if (ag.ag_base)
		event_base_free(ag.ag_base);
	conf_free(ag.ag_conf);
	agent_flights_fini(&ag.ag_flights);
	if (rc == 0 && ag.ag_exit == AGENT_EXIT_RESTART) {
		/* host.reboot, host.restart_agent: the same program again, same pid */
		log_info("starting again");
		execv("/proc/self/exe", argv);
		log_error("cannot start again: %s", strerror(errno));
		return 1;
	}
	return rc;
}
