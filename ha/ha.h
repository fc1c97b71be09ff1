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
 * The statefile's header holds the pool master's lease (lease.c): the
 * poold that holds it is the master; when it stops renewing, a standby
 * poold on a surviving host takes over (docs/MASTER.md).
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
#define HA_LEASE_OFFSET 2048 /* header bytes [2048, 4096): the master's lease (lease.c) */
#define HA_LEASE_SIZE (HA_SLOT_SIZE - HA_LEASE_OFFSET)
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

/* ---- lease.c: the pool master's lease in the statefile header ---- */

/* Derived from T: the holder renews every lt_renew_ms and may accept
 * writes until lt_hold_ms after the start of its last renewal that
 * counted (T minus the settle, when its own host counts the statefile
 * lost, and at most half of lt_take_ms); anyone else waits lt_take_ms (T
 * plus the margin) after it last saw the lease change, so the holder has
 * always stopped first (lease.c says why). Standbys go in turn, lt_step_ms
 * apart. */
struct ha_lease_timing {
	int64_t lt_renew_ms, lt_hold_ms, lt_take_ms, lt_step_ms, lt_slot_live_ms, lt_tick_ms;
};
void ha_lease_timing_for(int64_t timeout_ms, struct ha_lease_timing *lt);

/* The lease as written (signed with the HA key, like the words). */
struct ha_lease {
	char hl_generation[48]; /* the HA it belongs to */
	uint64_t hl_epoch;      /* the master's generation: one more at every change of master */
	char hl_holder[48];     /* host uuid of the master */
	char hl_run[48];        /* that poold's run */
	char hl_address[64];    /* where the master serves (its host's address) ... */
	int hl_port;            /* ... and port */
	uint64_t hl_seq;        /* renewals */
	ha_set hl_capable;      /* members whose poold can take over (standbys the master knows) */
	bool hl_released;       /* the holder stepped down cleanly: no need to wait */
	bool hl_off;            /* HA was disabled: nobody takes over by this lease */
};
/* Text "JSON\nHMAC-hex\n" into buf (len bytes, NUL-padded): its length or -1. */
int ha_lease_encode(const struct ha_lease *l, const unsigned char *key, char *buf, size_t len);
/* -1 (and *out zeroed) unless buf holds a lease signed with key. */
int ha_lease_decode(const char *buf, size_t len, const unsigned char *key, struct ha_lease *out);

/* What one poold knows when it decides (times: its monotonic ms, -1 never). */
struct ha_lease_view {
	int lv_n, lv_self;             /* members (sorted by uuid); this poold's host */
	int64_t lv_now_ms;
	struct ha_lease_timing lv_t;
	bool lv_lease_valid;           /* the header holds a lease of this HA */
	struct ha_lease lv_lease;
	int lv_holder;                 /* the lease holder's member index, -1 */
	int64_t lv_lease_seen_ms;      /* when this poold first saw the lease as it is now */
	int64_t lv_read_ms;            /* the last read of the statefile that succeeded */
	int64_t lv_self_slot_ms;       /* this host's slot last changed */
	bool lv_self_losing, lv_self_fenced, lv_self_excluded;
	ha_set lv_self_liveset;        /* the survivors as this host's agent computes them */
	bool lv_holding;               /* this poold is the master ... */
	uint64_t lv_epoch;             /* ... of this epoch */
	int64_t lv_renewed_ms;         /* the start of its last renewal that reached the statefile */
};

enum ha_lease_act {
	HA_LEASE_IDLE,      /* standby, not a candidate now */
	HA_LEASE_WAIT,      /* standby, a candidate: may take over at lv_take_at_ms */
	HA_LEASE_TAKE,      /* standby: try to take over now (the database lock decides) */
	HA_LEASE_RENEW,     /* master: keep renewing, writes allowed until lv_valid_until_ms */
	HA_LEASE_STEP_DOWN, /* master: stop accepting writes now */
};

struct ha_lease_verdict {
	enum ha_lease_act lv_act;
	int64_t lv_valid_until_ms; /* RENEW: writes are allowed before this */
	int64_t lv_take_at_ms;     /* WAIT/TAKE: when this standby may take over */
	int lv_rank;               /* its place among the candidates, -1 none */
	const char *lv_why;        /* one line for the log */
};

/* The verdict for one poold. Pure. */
void ha_lease_decide(const struct ha_lease_view *v, struct ha_lease_verdict *out);
/* Does a write of the lease that started at start_ms and reached the
 * statefile at end_ms make its writer valid until start_ms + hold? Only
 * when it took at most half a renew interval and started while the writer
 * was valid (valid_until_ms), unless it is the write that takes the lease
 * (acquiring). Pure. */
bool ha_lease_renewal_counts(const struct ha_lease_timing *t, int64_t start_ms, int64_t end_ms, int64_t valid_until_ms,
			     bool acquiring);
/* May the master name this standby a candidate in its lease? Only one
 * that was told where the database is now and which HA it runs under
 * (told_current) and synced with it (last at sync_ms, -1 never); one that
 * stopped keeping up (fresh_ms) is struck off only when its host's agent
 * was heard after that (beat_ms, -1 unknown): its poold is gone. Syncs and
 * beats that stopped together say this master is cut off from that host,
 * not that it died: the survivors' liveset decides, and a master cut off
 * alone must not strike the others off in its last renewals. Pure. */
bool ha_lease_standby_capable(bool told_current, int64_t sync_ms, int64_t beat_ms, int64_t now_ms, int64_t fresh_ms);

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
	ha_set hw_liveset;    /* the survivors as this host computes them (0: unknown) */
	bool hw_losing;       /* no rule keeps this host up now: it fences unless that changes */
};
/* Text "JSON\nHMAC-hex\n" into buf (len bytes, NUL-padded); its length,
 * or -1 when it does not fit. */
int ha_word_encode(const struct ha_word *w, const unsigned char *key, char *buf, size_t len);
/* -1 when the text is not a word signed with key (garbage, an empty slot,
 * another pool's or a forged one). */
int ha_word_decode(const char *buf, size_t len, const unsigned char *key, struct ha_word *out);
/* The signed-record codec words and the master's lease share: o (taken)
 * as "JSON\nHMAC-hex\n" NUL-padded into buf, its length or -1; and back,
 * the JSON object or NULL when the MAC does not check. */
int ha_signed_encode(json_t *o, const unsigned char *key, char *buf, size_t len);
json_t *ha_signed_decode(const char *buf, size_t len, const unsigned char *key);
/* o's string k copied into dst (n bytes); false when absent or too long. */
bool ha_json_str(json_t *o, const char *k, char *dst, size_t n);

/* ---- statefile.c: the file on the heartbeat SR ---- */

/* Size path to HA_STATEFILE_SIZE (created if missing): 0 or -1 with err. */
int ha_statefile_prepare(const char *path, char *err, size_t errlen);
/* Write slot index (HA_SLOT_SIZE bytes of buf) and make it durable. The
 * file is opened for each operation, so a statefile whose SR went away
 * fails here rather than through a stale descriptor. */
int ha_statefile_write(const char *path, int index, const char *buf, char *err, size_t errlen);
/* Read slots 0..n-1 into buf (n * HA_SLOT_SIZE bytes). */
int ha_statefile_read(const char *path, int n, char *buf, char *err, size_t errlen);
/* The header and slots 0..n-1 in one read into buf ((1 + n) * HA_SLOT_SIZE
 * bytes: the header first). */
int ha_statefile_read_all(const char *path, int n, char *buf, char *err, size_t errlen);
/* Write the master's lease (HA_LEASE_SIZE bytes of buf) into the header
 * and make it durable. */
int ha_statefile_write_lease(const char *path, const char *buf, char *err, size_t errlen);

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
 * the host resets). The quiesce hook (if set) runs first: the host's own
 * toolstack starts nothing from then on. */
int ha_fence_fire(struct ha_fence *f);
void ha_fence_on_fire(struct ha_fence *f, void (*quiesce)(void *arg), void *arg);
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
/* The pool master's lease as last read from the statefile: 0, or -1 when
 * none of this HA has been read. */
int ha_monitor_master(struct ha_monitor *m, struct ha_lease *out);

#endif
