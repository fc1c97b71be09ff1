/*
 * agent.h - pool-agent, the daemon on every host: what each file exports.
 *
 * The agent joins the pool once (join.c), then serves poold's requests
 * over mutual TLS (server.c), drives the hypervisor through the backend
 * (backend.h) and reports its host to poold every heartbeat-interval
 * (beat.c), and runs HA when poold arms it (ha_ops.c over ha/). No file
 * calls back into one that calls it: main.c sets up, server.c dispatches
 * to domain.c, sr_ops.c, migrate_ops.c and ha_ops.c, and those use beat.c,
 * which uses report.c.
 */
#ifndef AGENT_H
#define AGENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include "backend.h"
#include "conf.h"
#include "mig.h"

struct httpsrv;
struct evhttp_request;
#define AGENT_MAX_SRS 64
struct agent_sr;
struct ha_monitor;

/* A directory the agent keeps its memory in, as it was at start (beat.c). */
struct state_dir {
	char sd_path[4200];
	dev_t sd_dev;
	ino_t sd_ino;
};

/* Migration threads in flight (migrate_ops.c): for a clean stop. */
#define MIG_FLIGHTS_MAX 64
struct mig_flights {
	pthread_mutex_t mf_mu;
	pthread_cond_t mf_cv;
	int mf_n;                   /* migration threads running */
	int mf_fd[MIG_FLIGHTS_MAX]; /* their sockets (0 free, -1 none yet) */
	/* an endpoint still waiting for its source: named by its VM's uuid,
	 * it may be taken back (agent_flight_cancel) */
	char mf_name[MIG_FLIGHTS_MAX][BE_UUID_LEN];
	bool mf_waiting[MIG_FLIGHTS_MAX], mf_cancelled[MIG_FLIGHTS_MAX];
	bool mf_stopping;
};
struct send_job;
struct release;

/* What the agent does once its loop ends (host_ops.c). */
enum agent_exit {
	AGENT_EXIT_NONE,    /* stop (a signal) */
	AGENT_EXIT_RESTART, /* start again: host.reboot, host.restart_agent */
	AGENT_EXIT_HALT,    /* stop: host.shutdown */
	AGENT_EXIT_EJECT,   /* identity put aside, stop: pool.eject */
};

struct agent {
	struct conf *ag_conf;
	struct backend *ag_be;
	struct event_base *ag_base;
	struct httpsrv *ag_http;    /* our API (lib/httpsrv.h) */
	SSL_CTX *ag_server_ctx;     /* our certificate; clients must show a pool one */
	SSL_CTX *ag_client_ctx;     /* our certificate; the master must show a pool one */
	struct event *ag_beat_timer;
	struct event *ag_beat_exit;    /* a beat shortly after domains ended (coalesced) */
	struct event *ag_be_watch;     /* the backend's domain-death fd, if it has one */
	struct evrpc_conn *ag_master;  /* kept alive: one handshake, not one per beat */
	json_t *ag_watched;            /* domain pid -> its pidfd watch (struct event *, as an integer) */
	char ag_state[4096];        /* state-dir */
	char ag_host_uuid[48];
	char ag_master_host[256];
	int ag_master_port;
	int ag_port;                /* the port we really listen on */
	char ag_address[64];        /* where poold reaches us */
	struct agent_sr *ag_srs;    /* AGENT_MAX_SRS slots */
	int ag_nsrs;
	uint64_t ag_seq;            /* numbers our reports: poold knows which are newer than an answer */
	char ag_boot[40];           /* this run of the agent (its seq starts again at 0) */
	bool ag_beat_inflight;
	bool ag_beat_again;         /* something changed while a beat was out */
	int ag_beats_failed;
	struct state_dir ag_dirs[2];   /* state-dir and the backend's domains dir */
	bool ag_state_lost;            /* one of them vanished or was replaced */
	struct mig_gate ag_mig_gate;
	struct mig_flights ag_flights; /* migration threads in flight */
	struct send_job *ag_sends;     /* outgoing migrations (the loop's list) */
	struct mirror *ag_mirrors;     /* disk mirrors, both ends (mirror_ops.c; under ag_mirror_mu) */
	pthread_mutex_t ag_mirror_mu;
	struct release *ag_releases;   /* source copies destroyed after a move (migrate_ops.c) */
	char ag_exe[4096];             /* this program (the sim HA watchdog runs it) */
	struct ha_monitor *ag_ha;      /* HA armed on this host (ha_ops.c), else NULL */
	uint64_t ag_epoch;             /* the newest master's epoch this agent knows (master.c) */
	json_t *ag_masters;            /* addresses of the hosts that run a poold */
	size_t ag_master_next;
	int ag_master_fails;           /* beats failed in a row */
	bool ag_master_stale;          /* the connection goes to an old master: replaced */
	int ag_ha_notify;              /* eventfd the HA monitor writes when its state changes */
	struct event *ag_ha_ev;
	enum agent_exit ag_exit;       /* set by agent.host_power */
};

/* ---- config.c ---- */
extern const struct conf_key agent_conf_keys[];
extern const size_t agent_nconf_keys;
/* The address poold reaches the agent on: `address` when set; else the
 * listen-address when it is one address (an agent listening on 127.0.0.10
 * cannot be reached on the address it joined from); else local, the
 * address that routes to the master ("" when there is none: the caller
 * refuses to start). *odd: address is another IP than the one listened
 * on (reachable only through a translation: worth a log line). */
const char *agent_address_choose(const char *address, const char *listen, const char *local, bool *odd);

/* ---- join.c ---- */
/* Join the pool when state-dir holds no certificate yet (blocking; before
 * the loop starts). 0, or -1 with a reason in err. */
int agent_join_if_needed(struct agent *ag, char *err, size_t errlen);
/* The local address that routes to host:port (numeric; "" when none). */
void agent_local_address(const char *host, int port, char *out, size_t outlen);

/* ---- master.c: where the pool master is, as this agent follows it ---- */
/* "host:port" -> parts (master.c). */
int agent_split_master(const char *master, char *host, size_t hostlen, int *port);
/* At start: state-dir/master.json over the configured master. */
void agent_master_load(struct agent *ag);
void agent_master_free(struct agent *ag);
/* A beat was answered (its {master: {epoch, masters}}). */
void agent_master_heard(struct agent *ag, json_t *answer);
/* A beat failed: HOST_IS_SLAVE is followed; after a few failures the
 * lease or another host is asked. */
void agent_master_failed(struct agent *ag, json_t *err);
/* HA's statefile names a newer master than the one we talk to: follow it
 * (true when the agent moved). */
bool agent_master_from_lease(struct agent *ag);
json_t *agent_m_set_master(struct agent *ag, json_t *args, json_t **result);

/* ---- report.c ---- */
/* What a report is made of (beat.c gathers it). */
struct report_in {
	struct be_host_info ri_host;
	char ri_hostname[256];
	const struct be_domain_info *ri_domains;
	int ri_ndomains;
	bool ri_domains_complete; /* every domain of this host is in the list */
	bool ri_state_lost;
	json_t *ri_ha;            /* borrowed: HA on this host (ha_ops.c), NULL when not armed */
	const char *ri_name, *ri_address, *ri_migration_address, *ri_version, *ri_boot;
	const char *ri_platform, *ri_hw; /* platform version, virtual hardware versions ("0-2") */
	int ri_port;
	json_t *ri_srs;           /* borrowed */
	uint64_t ri_seq;
};
/* What we tell poold about this host (join and heartbeats). */
json_t *report_build(const struct report_in *in);
/* One domain as a report lists it (backend NULL: without what its guest says). */
json_t *report_domain(const char *backend, const struct be_domain_info *d);
/* What domain d's guest says of itself ({os_version, address}), or NULL
 * (a backend without a guest agent reader, a domain not running). */
json_t *report_guest(const char *backend, const struct be_domain_info *d);

/* ---- beat.c: heartbeat, domain watch, state-dir guard ---- */
/* Gather and build a report (numbered), watch the domains it lists and
 * clear those that ended by themselves. */
json_t *agent_beat_report(struct agent *ag);
/* What a VM operation's answer carries so poold can tell which reports
 * were made after it: {"boot": ..., "seq": the next report's number}. */
json_t *agent_stamp(struct agent *ag, json_t *answer);
/* Report now, not at the next interval (a domain ended by itself). */
void agent_beat_now(struct agent *ag);
/* The same, after the beat in flight if there is one. */
void agent_beat_soon(struct agent *ag);
/* Watch domain domid's process: its end is reported as it happens. */
void agent_beat_watch(struct agent *ag, int domid);
/* Note state-dir as it is now (after joining); later changes mean it was lost. */
void agent_beat_state_remember(struct agent *ag);
/* Has state-dir vanished or been replaced since? (logged once) */
bool agent_state_lost(struct agent *ag);
void agent_beat_start(struct agent *ag);
void agent_beat_stop(struct agent *ag);

/* ---- domain.c: domains and the power operations ---- */
/* The domain of VM uuid (and its info), or -1. */
int domid_of(struct agent *ag, const char *uuid, struct be_domain_info *out);
/* The same, tried first at domid hint (poold knows where it should be:
 * one domain asked, not every one listed); hint <= 0: none. */
int domid_of_hint(struct agent *ag, const char *uuid, int hint, struct be_domain_info *out);
/* agent.vm_state(vm, domid): {domains: [the VM's domain as a report lists
 * it]} (or [] when none), stamped as an operation's answer (agent_stamp):
 * what poold records a migration's move from, without a whole report. */
json_t *agent_m_vm_state(struct agent *ag, json_t *args, json_t **result);
/* The domain here that has VDI vdi as a disk (sim), or -1. */
int agent_vdi_user(struct agent *ag, const char *vdi);
/* poold's domain configuration, checked, with each disk found in an SR
 * this host has plugged; NULL or the XAPI error. */
json_t *agent_domain_config(struct agent *ag, const json_t *cfg, struct be_domain_config *dc);
json_t *agent_m_vm_start(struct agent *ag, json_t *args, json_t **result);
json_t *agent_m_vm_shutdown(struct agent *ag, json_t *args, json_t **result);
json_t *agent_m_vm_pause(struct agent *ag, json_t *args, json_t **result);
json_t *agent_m_vm_unpause(struct agent *ag, json_t *args, json_t **result);
json_t *agent_m_vm_reboot(struct agent *ag, json_t *args, json_t **result);

/* ---- domain_live.c: a running domain changed without stopping it ---- */
json_t *agent_m_vm_set_memory(struct agent *ag, json_t *args, json_t **result);
json_t *agent_m_vm_set_vcpus(struct agent *ag, json_t *args, json_t **result);
json_t *agent_m_vbd_plug(struct agent *ag, json_t *args, json_t **result);
json_t *agent_m_vbd_unplug(struct agent *ag, json_t *args, json_t **result);
json_t *agent_m_vif_plug(struct agent *ag, json_t *args, json_t **result);
json_t *agent_m_vif_unplug(struct agent *ag, json_t *args, json_t **result);

/* ---- domain_save.c: memory images (threads, answered later) ---- */
json_t *agent_vm_suspend_start(struct agent *ag, struct evhttp_request *req, json_t *args, json_t *id, bool v2);
json_t *agent_vm_resume_start(struct agent *ag, struct evhttp_request *req, json_t *args, json_t *id, bool v2);
json_t *agent_vm_checkpoint_start(struct agent *ag, struct evhttp_request *req, json_t *args, json_t *id, bool v2);

/* ---- host_ops.c: reboot, shutdown, restart, eject ---- */
json_t *agent_m_host_power(struct agent *ag, json_t *args, json_t **result);

/* ---- sr_ops.c: plugged SRs and their VDIs ---- */
void agent_srs_load(struct agent *ag);
void agent_srs_free(struct agent *ag);
json_t *agent_srs_report(struct agent *ag);
/* The file of disk d (its bd_path) in the plugged SR it names: NULL, or
 * SR_HAS_NO_PBDS / SR_BACKEND_FAILURE when the SR is not plugged here or
 * has no such VDI. */
json_t *agent_disk_locate(struct agent *ag, struct be_disk *d);
/* A plugged SR's space as agent_srs_report has it ({} when not plugged);
 * new ref. */
json_t *agent_sr_space(struct agent *ag, const char *sr_uuid);
json_t *agent_m_sr_attach(struct agent *ag, json_t *args, json_t **result);
json_t *agent_m_sr_detach(struct agent *ag, json_t *args, json_t **result);
json_t *agent_m_sr_destroy(struct agent *ag, json_t *args, json_t **result);
json_t *agent_m_vdi_create(struct agent *ag, json_t *args, json_t **result);
json_t *agent_m_vdi_destroy(struct agent *ag, json_t *args, json_t **result);
json_t *agent_m_vdi_copy(struct agent *ag, json_t *args, json_t **result);
json_t *agent_m_vdi_resize(struct agent *ag, json_t *args, json_t **result);
/* A plugged SR as work on another thread uses it (drivers are thread-safe
 * per SR; poold unplugs no SR a running VM of this host uses). */
struct sr_driver;
struct sr;
struct agent_sr_ref {
	char sf_uuid[48];
	const struct sr_driver *sf_drv;
	struct sr *sf_sr;
};
/* The SR sr_uuid plugged here, or SR_HAS_NO_PBDS. */
json_t *agent_sr_ref(struct agent *ag, const char *sr_uuid, struct agent_sr_ref *out);
/* A VDI's answer: {location, virtual_size, physical_utilisation, sr: space}. */
json_t *agent_vdi_info(const struct agent_sr_ref *r, const char *vdi, const char *location);
/* A new empty VDI vdi of size bytes (loc: SR_LOCATION_MAX bytes, its file). */
json_t *agent_vdi_make(const struct agent_sr_ref *r, const char *vdi, uint64_t size, char *loc);
/* Remove a VDI made by a step that failed (logged when it cannot). */
void agent_vdi_unmake(const struct agent_sr_ref *r, const char *vdi);
/* agent.vdi_copy_to(sr, vdi, dst_sr, new_vdi): a full copy into another
 * plugged SR (or the same one), on a thread. */
json_t *agent_vdi_copy_to_start(struct agent *ag, struct evhttp_request *req, json_t *args, json_t *id, bool v2);

/* ---- migrate_ops.c: live migration, both ends ---- */
json_t *agent_m_migrate_receive(struct agent *ag, json_t *args, json_t **result);
/* At start-up: destroy what incoming migrations left unfinished. */
void agent_incoming_cleanup(struct agent *ag);
/* Starts the sender on a thread; NULL = the answer goes to req later. */
json_t *agent_migrate_send_start(struct agent *ag, struct evhttp_request *req, json_t *args, json_t *id, bool v2);
json_t *agent_vm_released_start(struct agent *ag, struct evhttp_request *req, json_t *args, json_t *id, bool v2);
json_t *agent_m_migration_status(struct agent *ag, json_t *args, json_t **result);
/* agent.migrate_receive_cancel(vm): the endpoint prepared for vm taken back
 * while no source has connected to it (its domain is destroyed as for an
 * endpoint nobody came to). {cancelled}: false when none was waiting. */
json_t *agent_m_migrate_receive_cancel(struct agent *ag, json_t *args, json_t **result);
/* Cut the migrations in flight (each fails as before GO) and wait for their
 * threads; afterwards none starts. Call before freeing what they use. */
void agent_migrations_stop(struct agent *ag);
void agent_flights_init(struct mig_flights *f);
void agent_flights_fini(struct mig_flights *f);
/* A thread that moves data for this host (a migration, a disk mirror)
 * takes a slot: its socket (fd_set) is shut down and the thread waited
 * for when the agent stops. -1 when the agent is stopping or all slots
 * are taken. */
int agent_flight_enter(struct mig_flights *f);
void agent_flight_fd_set(struct mig_flights *f, int slot, int fd);
/* A migration's endpoint: the slot is named after the VM (uuid), and
 * while it waits on its listening socket lfd (flight_listen) poold may
 * take it back (flight_cancel: the socket is shut down; true when one was
 * waiting). Setting any other fd ends the wait. cancelled: whether it was
 * taken back. */
void agent_flight_name(struct mig_flights *f, int slot, const char *uuid);
void agent_flight_listen(struct mig_flights *f, int slot, int lfd);
/* The endpoint's connection fd (-1: accept failed) becomes the slot's,
 * unless the endpoint was taken back first: false then (one or the other,
 * never both). */
bool agent_flight_accepted(struct mig_flights *f, int slot, int fd);
bool agent_flight_cancel(struct mig_flights *f, const char *uuid);
bool agent_flight_cancelled(struct mig_flights *f, int slot);
void agent_flight_leave(struct mig_flights *f, int slot);
bool agent_flight_stopping(struct mig_flights *f);
/* Cut every flight's socket and wait for its thread (the agent stops). */
void agent_flights_stop(struct mig_flights *f);
/* A one-time listening socket on addr (NULL or "": our management
 * address), any free port; -1 with errno. */
int agent_listen_one(struct agent *ag, const char *addr, int *port);
/* A mutual-TLS connection to a peer agent's one-time endpoint, whose
 * certificate must name peer_cn ("" = any pool member); the socket is
 * registered in flight slot. 0, or -1 with err. *fd (the socket, or -1)
 * and *ssl are the caller's to close and free either way. */
int agent_peer_connect(struct agent *ag, int slot, const char *addr, int port, const char *peer_cn, int *fd,
		       SSL **ssl, char *err, size_t errlen);

/* ---- mirror_ops.c: storage migration's disk mirrors, both ends ---- */
struct mirror;
struct mirror_hook;
void agent_mirrors_init(struct agent *ag);
/* After agent_migrations_stop (no mirror thread runs any more). */
void agent_mirrors_free(struct agent *ag);
json_t *agent_m_vdi_mirror_receive(struct agent *ag, json_t *args, json_t **result);
json_t *agent_m_vdi_mirror_send(struct agent *ag, json_t *args, json_t **result);
json_t *agent_m_vdi_mirror_status(struct agent *ag, json_t *args, json_t **result);
json_t *agent_m_vdi_mirror_end(struct agent *ag, json_t *args, json_t **result);
json_t *agent_m_vdi_remove(struct agent *ag, json_t *args, json_t **result);
json_t *agent_vdi_pivot_start(struct agent *ag, struct evhttp_request *req, json_t *args, json_t *id, bool v2);
json_t *agent_m_vm_disks(struct agent *ag, json_t *args, json_t **result);
/* The memory migration's pause hook (mig_opts.paused_hook) over the
 * source mirrors ids (a JSON array): NULL with err when one is not here. */
struct mirror_hook *agent_mirror_hook_new(struct agent *ag, json_t *ids, char *err, size_t errlen);
int agent_mirrors_paused(void *hook, bool wait, char *err, size_t errlen);
/* The migration ended: after_go = the VM runs on the destination (or may:
 * the mirrors then verify the source against what they sent), else it
 * failed before GO. Frees h. */
void agent_mirror_hook_free(struct mirror_hook *h, bool after_go);
/* VM vm runs here now (a migration in, a pivot done): its copies' mirrors
 * sync them (after the hand-over, never inside its pause). */
void agent_mirrors_running(struct agent *ag, const char *vm);
/* The disk a source mirror reads (VDI, SR, file), for a pivot. */
json_t *agent_mirror_source_disk(struct agent *ag, const char *id, struct be_disk *d);

/* ---- ha_ops.c: HA on this host (ha/ does the work) ---- */
/* At start: a previous run that was armed and did not disarm is fenced
 * now (its domains killed, as its watchdog would), before anything runs. */
void agent_ha_leftover(struct agent *ag);
json_t *agent_m_ha_arm(struct agent *ag, json_t *args, json_t **result);
json_t *agent_m_ha_disarm(struct agent *ag, json_t *args, json_t **result);
/* Leave HA cleanly (the agent stops): the peers exclude this host. */
void agent_ha_stop(struct agent *ag);

/* ---- longcall.c: methods whose work runs on a thread ---- */
/* The work (on its own thread): an error, or NULL with *result set. */
typedef json_t *(*agent_work_fn)(struct agent *ag, void *arg, json_t **result);
/* Back on the loop before the answer goes (watch a new domain, stamp the
 * result); err is the work's error, *result may be replaced. */
typedef void (*agent_work_done_fn)(struct agent *ag, void *arg, json_t *err, json_t **result);
/* Run work(arg) on a thread, then after (may be NULL) on the loop, then
 * answer req. NULL: started (req is answered later); else the error to
 * answer now (arg was freed). */
json_t *agent_long_call(struct agent *ag, struct evhttp_request *req, json_t *id, bool v2, agent_work_fn work,
			agent_work_done_fn after, void *arg, void (*arg_free)(void *));

/* ---- server.c ---- */
/* Every method of agent_proto.h has a handler of its kind (0), else -1. */
int agent_server_check_table(void);
int agent_server_start(struct agent *ag, char *err, size_t errlen);
void agent_server_stop(struct agent *ag);

#endif
