/*
 * main.c - poold, the pool master.
 *
 *   poold init --dir DIR [--password-file FILE] [--name DNS]... [--address IP]...
 *                  create a pool (password from FILE or stdin); the names
 *                  and addresses clients reach the master by go into its
 *                  certificate besides localhost, 127.0.0.1, ::1 and the
 *                  host name
 *   poold --dir DIR [--config FILE] [--set KEY=VALUE]...   serve it
 *
 * Serving: one libevent loop answers XAPI JSON-RPC over HTTPS; SIGTERM and
 * SIGINT stop it cleanly (parked event.from calls are dropped, the database
 * closed).
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/thread.h>
#include "log.h"
#include "ops.h"
#include "poold.h"
#include "sdnotify.h"
#include "tls.h"
#include "util.h"
#include "version.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: poold init --dir DIR [--password-file FILE] [--name DNS-NAME]... [--address IP]...\n"
		   "       poold --dir DIR [--config FILE] [--set KEY=VALUE]...\n"
		   "       poold --version | --help\n"
		   "(see poold(8) and xapi.conf(5))\n");
}

static int read_password(const char *file, char *buf, size_t len)
{
	FILE *f = file ? fopen(file, "r") : stdin;
	if (!f) {
		fprintf(stderr, "poold: %s: %s\n", file, strerror(errno));
		return -1;
	}
	if (!file && isatty(STDIN_FILENO))
		fprintf(stderr, "admin (root) password: ");
	char *ok = fgets(buf, (int)len, f);
	if (file)
		fclose(f);
	if (!ok) {
		fprintf(stderr, "poold: no password given (first line of %s)\n", file ? file : "standard input");
		return -1;
	}
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

static int cmd_init(int argc, char **argv)
{
	const char *dir = NULL, *pwfile = NULL, *names[POOL_MAX_NAMES + 1] = {NULL};
	size_t nnames = 0;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "--password-file") == 0 && i + 1 < argc)
			pwfile = argv[++i];
		else if ((strcmp(argv[i], "--name") == 0 || strcmp(argv[i], "--address") == 0) && i + 1 < argc) {
			enum tls_name_kind k = tls_name_kind(argv[i + 1], NULL, NULL);
			bool want_ip = strcmp(argv[i], "--address") == 0;
			if (k == TLS_NAME_INVALID || (k == TLS_NAME_IP) != want_ip) {
				fprintf(stderr, "poold init: %s '%s': expected %s\n", argv[i], argv[i + 1],
					want_ip ? "an IPv4 or IPv6 address" : "a DNS name (letters, digits, '-', dots)");
				return 2;
			}
			if (nnames == POOL_MAX_NAMES) {
				fprintf(stderr, "poold init: at most %d names and addresses\n", POOL_MAX_NAMES);
				return 2;
			}
			names[nnames++] = argv[++i];
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!dir) {
		usage(stderr);
		return 2;
	}
	char pw[1024], err[1024] = "";
	if (read_password(pwfile, pw, sizeof pw) < 0)
		return 1;
	if (pool_init_dir(dir, pw, names, err, sizeof err) < 0) {
		fprintf(stderr, "poold init: %s\n", err);
		return 1;
	}
	char ca[4200], fp[128];
	snprintf(ca, sizeof ca, "%s/ca.pem", dir);
	if (!tls_cert_fingerprint(ca, fp, sizeof fp, err, sizeof err)) {
		fprintf(stderr, "poold init: %s\n", err);
		return 1;
	}
	printf("pool created in %s\n", dir);
	printf("pool CA fingerprint (SHA-256): %s\n", fp);
	return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct poold *pd = arg;
	log_info("signal %d: stopping", (int)sig);
	event_base_loopexit(pd->pd_base, NULL);
}

static void on_gc(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct poold *pd = arg;
	session_gc(pd);
	txn_sweep(pd);
	api_task_gc(pd);
	db_events_trim(pd->pd_db, conf_int(pd->pd_conf, "event-log-size"));
}

static int load_config(struct poold *pd, const char *file, char **sets, int nsets)
{
	char err[1024] = "", path[4200];
	pd->pd_conf = conf_new(poold_conf_keys, poold_nconf_keys);
	if (!pd->pd_conf)
		return -1;
	if (!file) {
		snprintf(path, sizeof path, "%s/xapi.conf", pd->pd_dir);
		if (access(path, F_OK) == 0)
			file = path;
	}
	if (file && conf_load(pd->pd_conf, file, err, sizeof err) < 0) {
		fprintf(stderr, "poold: %s\n", err);
		return -1;
	}
	if (conf_set_args(pd->pd_conf, sets, nsets, err, sizeof err) < 0) {
		fprintf(stderr, "poold: %s\n", err);
		return -1;
	}
	log_set_level((enum log_level)log_level_from_name(conf_str(pd->pd_conf, "log-level")));
	return 0;
}

static void write_pid(struct poold *pd)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/poold.pid", pd->pd_dir);
	FILE *f = fopen(path, "w");
	if (f) {
		fprintf(f, "%d\n", (int)getpid());
		fclose(f);
	}
}

static int serve(struct poold *pd)
{
	char err[1024] = "", dbp[4200];
	snprintf(dbp, sizeof dbp, "%s/pool.db", pd->pd_dir);
	if (access(dbp, F_OK) == 0 &&
	    (pool_db_private(pd->pd_dir, false, err, sizeof err) < 0 || pool_master_identity(pd->pd_dir, err, sizeof err) < 0)) {
		fprintf(stderr, "poold: %s\n", err);
		return 1;
	}
	pd->pd_db = db_open(dbp, false, err, sizeof err);
	if (!pd->pd_db) {
		fprintf(stderr, "poold: %s (create a pool with `poold init --dir %s`)\n", err, pd->pd_dir);
		return 1;
	}
	db_set_store_hook(pd->pd_db, ops_derive, pd);
	db_require_txn(pd->pd_db);
	if (pool_load(pd, err, sizeof err) < 0 || api_init(pd, api_methods, api_nmethods) < 0 ||
	    api_register_generic(pd) < 0) {
		fprintf(stderr, "poold: %s\n", err[0] ? err : "cannot set up the API");
		return 1;
	}
	session_load(pd);
	pd->pd_notified = db_last_event(pd->pd_db);
	db_set_commit_hook(pd->pd_db, evt_commit_hook, pd);
	evthread_use_pthreads(); /* password checks finish from their own threads */
	pd->pd_base = event_base_new();
	if (!pd->pd_base || http_start(pd, err, sizeof err) < 0) {
		fprintf(stderr, "poold: %s\n", err);
		return 1;
	}
	struct event *sigterm = evsignal_new(pd->pd_base, SIGTERM, on_signal, pd);
	struct event *sigint = evsignal_new(pd->pd_base, SIGINT, on_signal, pd);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	pd->pd_gc_timer = event_new(pd->pd_base, -1, EV_PERSIST, on_gc, pd);
	/* every 30 s, or as often as the shortest retention needs */
	long long keep = conf_duration_ms(pd->pd_conf, "task-retention") / 1000;
	struct timeval gc = {keep < 30 ? (keep < 1 ? 1 : (time_t)keep) : 30, 0};
	event_add(pd->pd_gc_timer, &gc);
	char ca[4200], cert[4200], key[4200];
	snprintf(ca, sizeof ca, "%s/ca.pem", pd->pd_dir);
	snprintf(cert, sizeof cert, "%s/server.pem", pd->pd_dir);
	snprintf(key, sizeof key, "%s/server.key", pd->pd_dir);
	pd->pd_agent_ctx = tls_client_ctx(ca, cert, key, err, sizeof err);
	if (!pd->pd_agent_ctx) {
		fprintf(stderr, "poold: %s\n", err);
		return 1;
	}
	pd->pd_vm_changed = json_object();
	host_liveness_start(pd);
	ha_start(pd);
	ha_engine_start(pd);
	evacuations_resume(pd);
	write_pid(pd);
	log_info("poold %s: pool %s, %zu API methods", POOLD_VERSION, pd->pd_pool_ref, pd->pd_nmethods);
	if (sdnotify("READY=1") < 0) /* systemd: serving (Type=notify) */
		log_warn("cannot tell systemd poold is ready ($NOTIFY_SOCKET)");
	event_base_dispatch(pd->pd_base);
	sdnotify("STOPPING=1");
	http_stop(pd); /* closing the connections cancels the parked calls */
	session_fini(pd);
	evacuations_stop(pd);
	ha_engine_stop(pd);
	ha_stop(pd);
	host_liveness_stop(pd);
	agent_links_free(pd); /* calls still in flight fail now; their outcome is recorded */
	SSL_CTX_free(pd->pd_agent_ctx);
	json_decref(pd->pd_vm_changed);
	evt_fini(pd);
	event_free(sigterm);
	event_free(sigint);
	event_free(pd->pd_gc_timer);
	return 0;
}

int main(int argc, char **argv)
{
	log_init("poold", LOG_LVL_INFO);
	util_json_init(); /* out of memory ends poold, in jansson too */
	/* Large answers (get_all_records of thousands of VMs) are built in
	 * 256 KiB pieces: keep them on the heap and keep freed heap memory, so
	 * the next answer reuses warm pages instead of faulting in fresh ones
	 * (a fresh page costs ~10 us here, more than copying it). */
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2 && strcmp(argv[1], "init") == 0)
		return cmd_init(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("poold %s\n", POOLD_VERSION);
		return 0;
	}
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	struct poold pd;
	memset(&pd, 0, sizeof pd);
	const char *dir = NULL, *config = NULL;
	char **sets = calloc((size_t)argc, sizeof *sets);
	int nsets = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			config = argv[++i];
		else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc)
			sets[nsets++] = argv[++i];
		else {
			usage(stderr);
			free(sets);
			return 2;
		}
	}
	if (!dir) {
		usage(stderr);
		free(sets);
		return 2;
	}
	snprintf(pd.pd_dir, sizeof pd.pd_dir, "%s", dir);
	int rc = load_config(&pd, config, sets, nsets) < 0 ? 1 : serve(&pd);
	free(sets);
	api_fini(&pd);
	json_decref(pd.pd_sessions);
	db_close(pd.pd_db);
	conf_free(pd.pd_conf);
	if (pd.pd_base)
		event_base_free(pd.pd_base);
	return rc;
}
