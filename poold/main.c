/*
 * main.c - poold, the pool master.
 *
 *   poold init --dir DIR [--password-file FILE] [--name DNS]... [--address IP]...
 *                  create a pool (password from FILE or stdin); the names
 *                  and addresses clients reach the master by go into its
 *                  certificate besides localhost, 127.0.0.1, ::1 and the
 *                  host name
 *   poold join --dir DIR --master ADDRESS:PORT --ca-fingerprint FP --token T --host-uuid U
 *                  a standby master on host U (join.c)
 *   poold --dir DIR [--config FILE] [--set KEY=VALUE]...   serve it: as the
 *                  master, or as a standby that takes over (mfo.c)
 *
 * Serving: one libevent loop answers XAPI JSON-RPC over HTTPS; SIGTERM and
 * SIGINT stop it cleanly (parked event.from calls are dropped, the database
 * closed).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/thread.h>
#include "log.h"
#include "poold.h"
#include "sdnotify.h"
#include "tls.h"
#include "util.h"
#include "version.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: poold init --dir DIR [--password-file FILE] [--name DNS-NAME]... [--address IP]...\n"
		   "       poold join --dir DIR --master ADDRESS:PORT --ca-fingerprint FP --token TOKEN --host-uuid UUID\n"
		   "                  [--name DNS-NAME]... [--address IP]...   (a standby master for that host)\n"
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

/* Both roles serve the XAPI port: the master answers, a standby says
 * where the master is (mfo.c decides which this poold is). */
static int serve(struct poold *pd, char **argv)
{
	char err[1024] = "";
	if (mfo_init(pd, argv, err, sizeof err) < 0) {
		fprintf(stderr, "poold: %s\n", err[0] ? err : "cannot read the pool directory");
		return 1;
	}
	if (api_init(pd, api_methods, api_nmethods) < 0 || api_register_generic(pd) < 0) {
		fprintf(stderr, "poold: cannot set up the API\n");
		return 1;
	}
	evthread_use_pthreads(); /* password checks finish from their own threads */
	pd->pd_base = event_base_new();
	if (!pd->pd_base || http_start(pd, err, sizeof err) < 0) {
		fprintf(stderr, "poold: %s\n", err);
		return 1;
	}
	pd->pd_divert = mfo_divert;
	struct event *sigterm = evsignal_new(pd->pd_base, SIGTERM, on_signal, pd);
	struct event *sigint = evsignal_new(pd->pd_base, SIGINT, on_signal, pd);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	int rc = 0;
	if (mfo_start(pd, err, sizeof err) < 0) {
		fprintf(stderr, "poold: %s\n", err);
		rc = 1;
	} else {
		write_pid(pd);
		if (sdnotify("READY=1") < 0) /* systemd: serving (Type=notify), as master or standby */
			log_warn("cannot tell systemd poold is ready ($NOTIFY_SOCKET)");
		event_base_dispatch(pd->pd_base);
		/* a master stepping down starts again in place (reexec): not a stop */
		sdnotify(mfo_reexec_wanted(pd) ? "RELOADING=1" : "STOPPING=1");
	}
	http_stop(pd); /* closing the connections cancels the parked calls */
	session_fini(pd);
	master_stop(pd);
	pd->pd_reexec = mfo_reexec_wanted(pd);
	mfo_stop(pd); /* the lease released, the last commits synced */
	/* the connections closed above end on the loop (their TLS state is freed
	 * by deferred callbacks): let them, or they outlive the process's end */
	for (int i = 0; i < 4; i++)
		event_base_loop(pd->pd_base, EVLOOP_NONBLOCK);
	event_free(sigterm);
	event_free(sigint);
	return rc;
}

/* A master that stepped down starts again as a standby: a new image of
 * this program with the same arguments and pid (what supervisors and pid
 * files know), none of the old one's descriptors. */
static void reexec(char **argv)
{
	log_warn("starting again as a standby");
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	execv("/proc/self/exe", argv);
	log_error("cannot start again (%s): exiting; start poold again", strerror(errno));
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
	if (argc >= 2 && strcmp(argv[1], "join") == 0)
		return poold_join(argc, argv);
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
	int rc = load_config(&pd, config, sets, nsets) < 0 ? 1 : serve(&pd, argv);
	bool again = pd.pd_reexec;
	free(sets);
	api_fini(&pd);
	json_decref(pd.pd_sessions);
	db_close(pd.pd_db);
	conf_free(pd.pd_conf);
	if (pd.pd_base)
		event_base_free(pd.pd_base);
	if (again)
		reexec(argv);
	return rc;
}
