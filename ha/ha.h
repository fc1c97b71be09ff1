/*
 * ha.h - high availability on a host: who is alive, who must fence, and
 * the fencing itself. Linked into pool-agent; what each file exports.
 *
 * Every armed host writes its slot in a statefile on a shared SR (a
 * generation, a counter, the peers it hears) and sends network beats to
 * its peers; both are authenticated with a key poold hands out when it
 * arms HA, so no other process can speak for a host. From what it hears
 * and reads, each host decides by XAPI's survival rule (liveness.c, pure)
 * whether it may stay up; a host that may not fences itself (fence.c: on
 * sim every domain is killed and the agent exits, on xen the hypervisor
 * watchdog resets the host). The watchdog is kicked only with the deadline
 * the current evidence allows, so a hung or killed agent is fenced too.
 *
 * A host also tells poold which peers it knows have fenced: their slot
 * says so, or they were silent on the network and in the statefile for
 * T plus a margin while this host could read the statefile. poold restarts
 * a host's VMs only after such a word: never two copies of a VM.
 *
 * The statefile has room for a master lease in its header (HA_LEASE_*),
 * unused today: master failover is the next step.
 */
#ifndef HA_H
#define HA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define HA_MAX_HOSTS 64
#define HA_SLOT_SIZE 4096
/* header + one slot per host: XAPI's minimum statefile size */
#define HA_STATEFILE_SIZE (HA_SLOT_SIZE * (1 + HA_MAX_HOSTS))
#define HA_LEASE_OFFSET 2048 /* header bytes [2048, 4096): the future master lease */
#define HA_KEY_LEN 32
#define HA_JOIN_GRACE_MS 30000 /* a liveset forms within T plus this, or arming fails */
#define HA_MIN_TIMEOUT_S 3
#define HA_MAX_TIMEOUT_S 3600

/* A set of members by index (members are sorted by host uuid, so index 0
 * is the lowest uuid). */
typedef uint64_t ha_set;
#define HA_BIT(i) ((ha_set)1 << (i))

/* ---- liveness.c: the survival rule (pure) ---- */

/* Intervals derived from the timeout T, as XAPI's (heartbeat
 * min((T+10)/10, 3) s, statefile max(2, T/20) s), scaled so that small
 * T (5 s) still sees several beats and writes per T. slot_live: a host
 * takes part in the partition contest only while its slot keeps changing
 * (well under T: a host that died drops out before its peers stop hearing
 * it, so its stale word never ties with the living). settle: a host out
 * of the best partition fences only once that has lasted a beat and a
 * statefile write (its peers' words lag their own timers by that much, so
 * a fresh view can briefly show a clique that no longer exists); the same
 * holds for rule 2, so a host counts the statefile lost a settle before
 * its evidence runs out (sf_lost = T - settle). margin:
 * how much
 * longer than T a host must be silent before its peers count it fenced
 * (its own watchdog fires by T: the margin covers the watchdog's polling,
 * the kill and the delivery of the last word). */
struct ha_timing {
	int64_t ht_timeout_ms, ht_beat_ms, ht_statefile_ms, ht_margin_ms, ht_tick_ms, ht_join_ms;
	int64_t ht_slot_live_ms; /* a slot that changed within this is a host alive in the statefile */
	int64_t ht_settle_ms;    /* out of the best partition this long before fencing (views converge) */
	int64_t ht_sf_lost_ms;   /* no statefile write/read this long: it is lost (T - settle) */
};
void ha_timing_for(int64_t timeout_ms, struct ha_timing *t);

/* What this host knows of one peer. Times are this host's monotonic
 * milliseconds of reception, -1 for never. */
struct ha_peer {
	int64_t hp_net_ms;        /* its last valid network beat arrived */
	ha_set hp_net_hears;      /* ... and said it hears these */
	bool hp_net_statefile;    /* ... and that it sees the statefile */
	bool hp_net_fenced, hp_net_excluded;
	int64_t hp_slot_ms;       /* its statefile slot was last seen to change */
	ha_set hp_slot_hears;
	bool hp_slot_fenced, hp_slot_excluded;
};

struct ha_input {
	int hi_n, hi_self;                /* members, and which one this host is */
	int64_t hi_now_ms;
	struct ha_timing hi_timing;
	int64_t hi_sf_write_ms;           /* start of the last write of our slot that succeeded */
	int64_t hi_sf_read_ms;            /* start of the last read of the slots that succeeded */
	int64_t hi_armed_ms;              /* when this host armed (silence is counted from then at most) */
	bool hi_joining;                  /* not yet part of a formed liveset: never fences */
	int64_t hi_losing_ms;             /* since when no rule has kept us up (the last verdicts), -1 */
	ha_set hi_expect;                 /* joining: the members poold says are up */
	struct ha_peer hi_peers[HA_MAX_HOSTS]; /* [hi_self] is not read */
};

enum ha_rule {
	HA_FENCE = 0,   /* may not stay up */
	HA_RULE1 = 1,   /* sees the statefile and is in the best partition */
	HA_RULE2 = 2,   /* every host lost the statefile, all hear each other */
	HA_JOINING = 3, /* arming: no verdict acts yet */
};

struct ha_verdict {
	enum ha_rule hv_rule;
	bool hv_statefile;     /* this host sees the statefile (wrote and read within T) */
	bool hv_formed;        /* joining: the liveset poold expects has formed */
	bool hv_losing;        /* no rule keeps it up now (it fences once that lasts ht_settle_ms) */
	ha_set hv_hears;       /* members heard on the network within T (self included) */
	ha_set hv_liveset;     /* the survivors as this host computes them */
	ha_set hv_fenced;      /* members known fenced: their word, or silence (T + margin) */
	ha_set hv_excluded;    /* members that left HA cleanly */
	int64_t hv_deadline_ms; /* fenced by then unless a later verdict moves it; -1: no watchdog */
	const char *hv_why;    /* one line for the log */
};

/* The verdict for in->hi_self. Pure. */
void ha_decide(const struct ha_input *in, struct ha_verdict *out);
/* The best clique of the mutual-hearing graph among cand (adj[i]: the
 * members i and each hears the other): the largest; on a tie the one
 * holding the lowest member (the lowest uuid) that only one of them has.
 * 0 when cand is empty. */
ha_set ha_best_clique(int n, const ha_set *adj, ha_set cand);
int ha_count(ha_set s);

/* ---- config.c: what poold hands a host when it arms HA ---- */

struct ha_member {
	char hm_uuid[48];
	char hm_address[64];
	int hm_port;
};

struct ha_config {
	char hc_generation[48];
	char hc_statefile[4096];
	unsigned char hc_key[HA_KEY_LEN];
	int64_t hc_timeout_ms;
	int hc_n, hc_self;
	struct ha_member hc_members[HA_MAX_HOSTS]; /* sorted by uuid */
	ha_set hc_expect;
};

/* {generation, statefile, key (hex), timeout (s), members: [{uuid,
 * address, port}], expect: [uuids]} for the host self_uuid: NULL, or
 * INVALID_VALUE [field, value]. Members are sorted here. */
json_t *ha_config_parse(const json_t *j, const char *self_uuid, struct ha_config *out);
/* Index of uuid among the members, -1 when absent. */
int ha_member_index(const struct ha_config *c, const char *uuid);
/* hex <-> bytes; -1 when malformed. */
int ha_hex_decode(const char *hex, unsigned char *out, size_t len);
void ha_hex_encode(const unsigned char *in, size_t len, char *out);
/* A set as member uuids (new array) and back (unknown uuids ignored). */
json_t *ha_set_uuids(const struct ha_config *c, ha_set s);

/* ---- record.c: slots and beats on the wire, authenticated ---- */

/* What a host says of itself, in its slot and in each network beat. */
struct ha_word {
	char hw_generation[48];
	char hw_host[48];
	char hw_boot[48];     /* this run of the agent */
	uint64_t hw_seq;      /* slot: write counter; beat: sequence number */
	ha_set hw_hears;
	bool hw_statefile, hw_fenced, hw_excluded;
};
/* Text "JSON\nHMAC-hex\n" into buf (len bytes, NUL-padded); its length,
 * or -1 when it does not fit. */
int ha_word_encode(const struct ha_word *w, const unsigned char *key, char *buf, size_t len);
/* -1 when the text is not a word signed with key (garbage, an empty slot,
 * another pool's or a forged one). */
int ha_word_decode(const char *buf, size_t len, const unsigned char *key, struct ha_word *out);

/* ---- statefile.c: the file on the heartbeat SR ---- */

/* Size path to HA_STATEFILE_SIZE (created if missing): 0 or -1 with err. */
int ha_statefile_prepare(const char *path, char *err, size_t errlen);
/* Write slot index (HA_SLOT_SIZE bytes of buf) and make it durable. The
 * file is opened for each operation, so a statefile whose SR went away
 * fails here rather than through a stale descriptor. */
int ha_statefile_write(const char *path, int index, const char *buf, char *err, size_t errlen);
/* Read slots 0..n-1 into buf (n * HA_SLOT_SIZE bytes). */
int ha_statefile_read(const char *path, int n, char *buf, char *err, size_t errlen);

/* ---- heartbeat.c: beats between the hosts (UDP) ---- */

/* A UDP socket bound to address:port, non-blocking; -1 with err. */
int ha_net_open(const char *address, int port, char *err, size_t errlen);
int ha_net_send(int fd, const struct ha_member *to, const char *buf, size_t len);

/* ---- fence.c: the watchdog and fencing ---- */

struct ha_fence;
/* sim: a watchdog process (`exe --ha-watchdog ...`) that kills every
 * domain whose record is in domains_dir when it is not kicked in time or
 * is told to fire. Its pid goes to state_dir/ha-watchdog.pid. */
struct ha_fence *ha_fence_sim_new(const char *exe, const char *domains_dir, const char *state_dir, char *err,
				  size_t errlen);
/* xen: the hypervisor watchdog (xc_watchdog), as xhad arms it. */
struct ha_fence *ha_fence_xen_new(char *err, size_t errlen);
/* Fire at deadline_ms (monotonic) unless kicked again; -1 disarms the
 * watchdog (joining: no verdict acts yet). */
int ha_fence_kick(struct ha_fence *f, int64_t deadline_ms);
/* Stop every domain now; returns once they are gone (sim) or never (xen:
 * the host resets). */
int ha_fence_fire(struct ha_fence *f);
/* Clean stop (HA disabled): the watchdog is disarmed and goes. */
void ha_fence_free(struct ha_fence *f);
/* `pool-agent --ha-watchdog FD DOMAINS-DIR`: the sim watchdog process. */
int ha_watchdog_main(int argc, char **argv);
/* At agent start: if a previous run was armed (state_dir/ha-armed) and
 * did not disarm, its host must be fenced before anything runs again
 * (its watchdog fires now, or the domains are killed here). 1 when it
 * fenced, 0 when there was nothing to do. */
int ha_fence_leftover(const char *state_dir, const char *domains_dir);
/* The marker ha_fence_leftover reads. */
int ha_armed_mark(const char *state_dir, bool armed);
/* sim: kill every pool-simdom whose record is in domains_dir; waits. */
int ha_kill_domains(const char *domains_dir);

/* ---- monitor.c: the threads that beat, read, decide and fence ---- */

struct ha_monitor;
/* Start HA on this host (boot: this run of the agent). notify_fd is
 * written (8 bytes, an eventfd) whenever what ha_monitor_state() says
 * changes. f is taken. */
struct ha_monitor *ha_monitor_start(const struct ha_config *cfg, const char *boot, struct ha_fence *f,
				    int notify_fd, char *err, size_t errlen);
/* {generation, state: joining|armed|failed, rule, statefile, liveset,
 * hears, fenced: [{host, boot}], excluded} (new reference). */
json_t *ha_monitor_state(struct ha_monitor *m);
/* The same HA (generation, members) with the peers' addresses as cfg
 * has them now (a restarted agent listens elsewhere): 0, or -1 when cfg
 * is another HA (the monitor must be restarted). */
int ha_monitor_update(struct ha_monitor *m, const struct ha_config *cfg);
/* Leave HA cleanly: say so in the slot and a last beat (the peers then
 * exclude this host instead of counting it failed), stop, disarm. */
void ha_monitor_stop(struct ha_monitor *m);

#endif
