/*
 * beat.c - the agent's heartbeat: it lists the host's domains, watches
 * their processes, reports to poold every heartbeat-interval (and at once
 * when a domain ends), then clears domains that ended by themselves.
 *
 * It also guards the agent's memory: state-dir holds the certificate, the
 * plugged SRs and the domains' records. If that directory vanishes or is
 * replaced under a running agent, the agent says so in every report
 * (poold then halts nothing for want of a domain) and refuses work that
 * would write there, until it is restarted on a restored directory.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "agent.h"
#include "backend_lock.h"
#include "evrpc.h"
#include "ha.h"
#include "log.h"
#include "tls.h"
#include "util.h"
#include "xerr.h"

/* ------------------------------------------------------------ state */

static bool same_dir(const struct state_dir *d)
{
	struct stat st;
	return stat(d->sd_path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_dev == d->sd_dev && st.st_ino == d->sd_ino;
}

static void remember(struct state_dir *d, const char *path)
{
	struct stat st;
	snprintf(d->sd_path, sizeof d->sd_path, "%s", path);
	if (stat(path, &st) == 0) {
		d->sd_dev = st.st_dev;
		d->sd_ino = st.st_ino;
	}
}

bool agent_state_lost(struct agent *ag)
{
	if (ag->ag_state_lost)
		return true; /* once lost, lost until a restart reads it again */
	for (int i = 0; i < 2; i++)
		if (ag->ag_dirs[i].sd_path[0] && !same_dir(&ag->ag_dirs[i])) {
			log_error("%s is gone or was replaced under this agent: it refuses work that needs it and "
				  "poold records nothing halted from its reports; restore it and restart the agent",
				  ag->ag_dirs[i].sd_path);
			ag->ag_state_lost = true;
		}
	return ag->ag_state_lost;
}

/* ---------------------------------------------------------- watches */

struct watch {
	struct agent *w_ag;
	struct event *w_ev;
	int w_fd;
	char w_pid[16];
};

void agent_beat_soon(struct agent *ag)
{
	if (ag->ag_beat_inflight)
		ag->ag_beat_again = true; /* after the one in flight */
	else
		agent_beat_now(ag);
}

/* Domains ended a moment ago: report them, together. */
static void on_exits(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	agent_beat_soon(arg);
}

/* A domain's process ended: tell poold within EXIT_BEAT_MS. Not at once:
 * the end of a migration's source copy (destroyed right after the answer)
 * would otherwise put a report in front of the next migration's call, and
 * several domains ending together make one report. */
#define EXIT_BEAT_MS 20
static void on_domain_exit(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct watch *w = arg;
	struct agent *ag = w->w_ag;
	log_info("domain process %s ended: reporting it", w->w_pid);
	json_object_del(ag->ag_watched, w->w_pid);
	event_free(w->w_ev);
	close(w->w_fd);
	free(w);
	struct timeval tv = {0, EXIT_BEAT_MS * 1000};
	if (!ag->ag_beat_exit)
		agent_beat_soon(ag);
	else if (!evtimer_pending(ag->ag_beat_exit, NULL))
		evtimer_add(ag->ag_beat_exit, &tv);
}

static void watch_domains(struct agent *ag, const struct be_domain_info *d, int n)
{
	if (!ag->ag_base || !ag->ag_watched)
		return;
	for (int i = 0; i < n; i++) {
		char key[16];
		snprintf(key, sizeof key, "%d", (int)d[i].di_pid);
		if (d[i].di_pid <= 0 || (d[i].di_state != BE_STATE_RUNNING && d[i].di_state != BE_STATE_PAUSED) ||
		    json_object_get(ag->ag_watched, key))
			continue;
		int fd = (int)syscall(SYS_pidfd_open, d[i].di_pid, 0);
		if (fd < 0)
			continue; /* no pidfd (old kernel, valgrind): the next heartbeat reports it */
		struct watch *w = xcalloc(1, sizeof *w);
		*w = (struct watch){ag, NULL, fd, ""};
		snprintf(w->w_pid, sizeof w->w_pid, "%s", key);
		w->w_ev = event_new(ag->ag_base, fd, EV_READ, on_domain_exit, w);
		event_add(w->w_ev, NULL);
		json_object_set_new(ag->ag_watched, key, json_integer((json_int_t)(intptr_t)w));
	}
}

void agent_beat_watch(struct agent *ag, int domid)
{
	struct be_domain_info di;
	if (ag->ag_be->be_ops->bo_domain_info(ag->ag_be, domid, &di) == 0)
		watch_domains(ag, &di, 1);
}

static void unwatch_all(struct agent *ag)
{
	const char *k;
	json_t *v;
	json_object_foreach(ag->ag_watched, k, v) {
		struct watch *w = (struct watch *)(intptr_t)json_integer_value(v);
		event_free(w->w_ev);
		close(w->w_fd);
		free(w);
	}
	json_decref(ag->ag_watched);
	ag->ag_watched = NULL;
}

/* ----------------------------------------------------------- report */

json_t *agent_stamp(struct agent *ag, json_t *answer)
{
	json_object_set_new(answer, "boot", json_string(ag->ag_boot));
	json_object_set_new(answer, "seq", json_integer((json_int_t)(ag->ag_seq + 1)));
	return answer;
}

json_t *agent_beat_report(struct agent *ag)
{
	struct report_in in;
	memset(&in, 0, sizeof in);
	ag->ag_seq++;
	ag->ag_be->be_ops->bo_host_info(ag->ag_be, &in.ri_host);
	gethostname(in.ri_hostname, sizeof in.ri_hostname - 1);
	/* the list first, then the state check: a directory lost in between
	 * makes the list suspect, never the other way round */
	struct be_domain_info *d = NULL;
	int n = 0;
	bool listed = ag->ag_be->be_ops->bo_domain_list(ag->ag_be, &d, &n) == 0;
	in.ri_state_lost = agent_state_lost(ag);
	in.ri_domains_complete = listed && !in.ri_state_lost;
	in.ri_domains = d;
	in.ri_ndomains = n;
	in.ri_name = conf_str(ag->ag_conf, "name");
	in.ri_address = ag->ag_address;
	in.ri_port = ag->ag_port;
	in.ri_migration_address = conf_str(ag->ag_conf, "migration-address");
	in.ri_version = conf_str(ag->ag_conf, "software-version");
	in.ri_platform = conf_str(ag->ag_conf, "platform-version");
	in.ri_hw = conf_str(ag->ag_conf, "hardware-platform-versions");
	in.ri_srs = agent_srs_report(ag);
	in.ri_boot = ag->ag_boot;
	in.ri_seq = ag->ag_seq;
	in.ri_ha = ag->ag_ha ? ha_monitor_state(ag->ag_ha) : NULL; /* ha/monitor.c */
	json_t *r = report_build(&in);
	json_decref(in.ri_srs);
	json_decref(in.ri_ha);
	watch_domains(ag, d, n);
	/* a domain that ended by itself is reported once, then cleared: poold
	 * records the VM halted, its memory is the host's again */
	for (int i = 0; i < n && !in.ri_state_lost; i++)
		if (d[i].di_state == BE_STATE_SHUTDOWN || d[i].di_state == BE_STATE_CRASHED)
			ag->ag_be->be_ops->bo_domain_destroy(ag->ag_be, d[i].di_domid);
	free(d);
	return r;
}

/* -------------------------------------------------------- heartbeat */

static void on_beat(evutil_socket_t fd, short what, void *arg);

static void on_beat_done(void *arg, json_t *result, json_t *err)
{
	struct agent *ag = arg;
	ag->ag_beat_inflight = false;
	if (err)
		agent_master_failed(ag, err); /* HOST_IS_SLAVE, a silent master: master.c follows */
	else
		agent_master_heard(ag, result);
	if (ag->ag_beat_again) {
		/* not from inside the connection's own callback: next loop turn */
		struct timeval now = {0, 0};
		ag->ag_beat_again = false;
		event_base_once(ag->ag_base, -1, EV_TIMEOUT, on_beat, ag, &now);
	}
	if (!err) {
		if (ag->ag_beats_failed)
			log_info("heartbeats reach the master again");
		ag->ag_beats_failed = 0;
		return;
	}
	/* the first failure, then every 30th: a master that is away is no log flood */
	if (ag->ag_beats_failed++ % 30 == 0) {
		char *s = xerr_to_text(err);
		log_warn("heartbeat failed: %s", s ? s : "?");
		free(s);
	}
}

static void on_beat(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct agent *ag = arg;
	if (ag->ag_beat_inflight)
		return; /* the previous one is still out: do not pile up */
	agent_master_from_lease(ag); /* a newer master in HA's statefile: go there */
	if (ag->ag_master && ag->ag_master_stale && !ag->ag_beat_inflight) {
		evrpc_conn_free(ag->ag_master);
		ag->ag_master = NULL;
		ag->ag_master_stale = false;
	}
	if (!ag->ag_master) {
		/* the master, not any pool member at its address */
		struct evrpc_target t = {ag->ag_master_host, ag->ag_master_port, ag->ag_client_ctx, TLS_MASTER_CN};
		ag->ag_master = evrpc_conn_new(ag->ag_base, &t);
		if (!ag->ag_master)
			return;
	}
	long long every = conf_duration_ms(ag->ag_conf, "heartbeat-interval");
	int timeout = (int)(every / 1000) + 5;
	if (evrpc_conn_call(ag->ag_master, "host.heartbeat", json_pack("[o]", agent_beat_report(ag)), timeout,
			    on_beat_done, ag) == 0)
		ag->ag_beat_inflight = true;
}

void agent_beat_now(struct agent *ag)
{
	on_beat(-1, 0, ag);
}

/* The backend saw domains die (xen: @releaseDomain): report now. */
static void on_backend_event(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct agent *ag = arg;
	struct backend *in = backend_locked_inner(ag->ag_be);
	backend_locked_lock(ag->ag_be);
	int n = in->be_ops->bo_watch_drain ? in->be_ops->bo_watch_drain(in) : 0;
	backend_locked_unlock(ag->ag_be);
	if (n > 0)
		agent_beat_soon(ag);
}

void agent_beat_state_remember(struct agent *ag)
{
	char dom[4200];
	remember(&ag->ag_dirs[0], ag->ag_state);
	snprintf(dom, sizeof dom, "%s/domains", ag->ag_state);
	struct stat st;
	if (stat(dom, &st) == 0)
		remember(&ag->ag_dirs[1], dom);
}

void agent_beat_start(struct agent *ag)
{
	struct backend *inner = backend_locked_inner(ag->ag_be);
	int wfd = inner->be_ops->bo_watch_fd ? inner->be_ops->bo_watch_fd(inner) : -1;
	if (wfd >= 0) {
		ag->ag_be_watch = event_new(ag->ag_base, wfd, EV_READ | EV_PERSIST, on_backend_event, ag);
		event_add(ag->ag_be_watch, NULL);
	}
	long long every = conf_duration_ms(ag->ag_conf, "heartbeat-interval");
	struct timeval tv = {(time_t)(every / 1000), (suseconds_t)(every % 1000) * 1000};
	ag->ag_watched = json_object();
	ag->ag_beat_timer = event_new(ag->ag_base, -1, EV_PERSIST, on_beat, ag);
	event_add(ag->ag_beat_timer, &tv);
	ag->ag_beat_exit = evtimer_new(ag->ag_base, on_exits, ag);
	on_beat(-1, 0, ag); /* say hello now, not in one interval */
}

void agent_beat_stop(struct agent *ag)
{
	unwatch_all(ag);
	evrpc_conn_free(ag->ag_master);
	ag->ag_master = NULL;
	if (ag->ag_beat_timer)
		event_free(ag->ag_beat_timer);
	ag->ag_beat_timer = NULL;
	if (ag->ag_beat_exit)
		event_free(ag->ag_beat_exit);
	ag->ag_beat_exit = NULL;
	if (ag->ag_be_watch)
		event_free(ag->ag_be_watch);
	ag->ag_be_watch = NULL;
}
