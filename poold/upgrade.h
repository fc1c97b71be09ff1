/*
 * upgrade.h - the rolling pool upgrade's rules (pure functions).
 *
 * Versions (REQUIREMENTS; seed 000):
 * - A host reports its product version (software_version:product_version,
 *   the toolstack) and its platform version (software_version:
 *   platform_version), and the virtual hardware platform versions it can
 *   give its guests (host.virtual_hardware_platform_versions, XAPI's field;
 *   none reported counts as [0], XAPI's "old host" default).
 * - A VM has a configuration version (VM.hardware_platform_version).
 * - The pool is in rolling-upgrade mode while some host differs from the
 *   master in its platform version or in the major.minor of its product
 *   version (XAPI's RPU keys, helpers.ml: a patch release of the toolstack
 *   is no upgrade).
 * - A migration goes only to a host of the same or a newer version on both
 *   keys (XAPI's Migration check, R-8): placement's VERSION row.
 * - During the upgrade VMs start only on the hosts of the highest version
 *   (XAPI's host_has_highest_version_in_pool): placement's NEWEST row.
 * - A member whose product version is newer than the coordinator's is
 *   refused (XAPI CP-43901, HOST_XAPI_VERSION_HIGHER_THAN_COORDINATOR):
 *   the master goes first.
 * - The virtual hardware matrix (seed 000, Hyper-V's configuration
 *   versions; placement's HW_PLATFORM row): a VM runs on a host that offers
 *   its version; a VM one generation older than anything the host offers
 *   runs there too, its version raised to the host's lowest on arrival (so
 *   it cannot go back: one way); older still is refused (too old), and a VM
 *   newer than the host's newest is refused (a VM at the newest version
 *   runs only on the newest hosts).
 *
 * The run (rpu.c) asks these for its decisions: which hosts to upgrade
 * and in which order, when a host is back, what each tick does next, where
 * the VMs go home, the ETA.
 */
#ifndef UPGRADE_H
#define UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "place.h"

/* ---- versions ---- */

struct upgrade_ver {
	const char *uv_product;  /* "8.2.1"; NULL counts as "" (0) */
	const char *uv_platform; /* "3.2.0" */
};

/* "1.2.10" vs "1.2.9": <0, 0, >0, numerically by part; a missing part is 0. */
int upgrade_version_cmp(const char *a, const char *b);
/* Same RPU keys: product major.minor and the whole platform version. */
bool upgrade_same_keys(const struct upgrade_ver *a, const struct upgrade_ver *b);
/* Some host differs from the master: rolling-upgrade mode. */
bool upgrade_mixed(const struct upgrade_ver *hosts, size_t n, const struct upgrade_ver *master);
/* dst runs the same or a newer version than src on every key. */
bool upgrade_not_older(const struct upgrade_ver *dst, const struct upgrade_ver *src);
/* out[i]: hosts[i] is >= every host on every key (the newest hosts). */
void upgrade_newest(const struct upgrade_ver *hosts, size_t n, bool *out);
/* A member's product version above the coordinator's (CP-43901). */
bool upgrade_above_coordinator(const struct upgrade_ver *member, const struct upgrade_ver *coordinator);

/* ---- the virtual hardware platform (seed 000) ---- */

enum upgrade_hw {
	UPGRADE_HW_RUNS,    /* the host offers the VM's version */
	UPGRADE_HW_RAISED,  /* one generation below the host's lowest: runs, raised */
	UPGRADE_HW_TOO_OLD, /* older still */
	UPGRADE_HW_TOO_NEW, /* not offered and not below: newer than the host */
};
#define UPGRADE_HW_RAISE_SPAN 1 /* generations below its lowest a host still takes */

/* The VM's version vm on a host offering set[0..n) (n 0: [0]); *runs_at
 * (may be NULL) gets the version it runs at there. */
enum upgrade_hw upgrade_hw_fit(int64_t vm, const int64_t *set, size_t n, int64_t *runs_at);
/* A VM of version vm between hosts a and b of the same software version:
 * UPGRADE_WAY_BOTH (a to b and back), UPGRADE_WAY_ONE (a to b only: its
 * version is raised), UPGRADE_WAY_NONE (refused). */
enum upgrade_way { UPGRADE_WAY_NONE, UPGRADE_WAY_ONE, UPGRADE_WAY_BOTH };
enum upgrade_way upgrade_hw_way(int64_t vm, const int64_t *a, size_t na, const int64_t *b, size_t nb);
/* XAPI's text of a host's set: "[0; 1; 2]". */
void upgrade_hw_text(const int64_t *set, size_t n, char *out, size_t outlen);
/* Parse "0,1,2" or "0-2" (an agent's setting; ranges and lists may mix).
 * Returns the count (<= max), -1 when malformed. */
int upgrade_hw_parse(const char *s, int64_t *out, size_t max);

/* ---- the run ---- */

/* Where one host is in the run (stored by name: upgrade_phase_name). */
enum upgrade_phase {
	UPG_PENDING,    /* its turn has not come */
	UPG_EVACUATING, /* disabled, its VMs leaving */
	UPG_UPGRADING,  /* the upgrade command runs */
	UPG_RETURNING,  /* waiting for it to come back with the new version */
	UPG_DONE,       /* back and enabled */
	UPG_SKIPPED,    /* already at the newest version when the run began */
	UPG_FAILED,
	UPG__COUNT
};
const char *upgrade_phase_name(enum upgrade_phase p);
enum upgrade_phase upgrade_phase_parse(const char *s); /* UPG__COUNT when unknown */

/* What one tick sees of the host whose turn it is. */
enum upgrade_cmd { UPGRADE_CMD_NONE, UPGRADE_CMD_RUNNING, UPGRADE_CMD_OK, UPGRADE_CMD_FAILED, UPGRADE_CMD_LOST };
struct upgrade_facts {
	bool uf_live, uf_enabled;
	bool uf_evacuating;     /* an evacuation of it runs */
	size_t uf_resident;     /* VMs on it */
	int uf_evac_tries;      /* evacuations started for it this run */
	bool uf_can_evacuate;   /* the plan moves every VM (assert_can_evacuate) */
	enum upgrade_cmd uf_cmd;
	bool uf_manual;         /* no command: the operator upgrades it by hand */
	bool uf_back;           /* upgrade_host_back() */
	bool uf_timed_out;      /* the phase's time is up */
};
#define UPGRADE_EVAC_TRIES 3

enum upgrade_action {
	UPGRADE_WAIT,     /* nothing to do this tick */
	UPGRADE_DISABLE,  /* host.disable */
	UPGRADE_EVACUATE, /* host.evacuate */
	UPGRADE_RUN,      /* start the upgrade command */
	UPGRADE_ENABLE,   /* host.enable */
	UPGRADE_NEXT,     /* this host is done: the next one's turn */
	UPGRADE_FAIL,     /* stop the run: *why says why */
};
/* The next step for a host in *phase (updated when it moves on). Pure:
 * the same facts always give the same step, so a restarted poold picks up
 * where the last one stopped. */
enum upgrade_action upgrade_step(enum upgrade_phase *phase, const struct upgrade_facts *f, const char **why);

/* Is a host back from its upgrade? Live, and either a new run of its
 * agent or a newer version than before; a member at the master's version
 * (keys), the master never older than before. */
bool upgrade_host_back(bool live, bool new_boot, const struct upgrade_ver *before, const struct upgrade_ver *now,
		       const struct upgrade_ver *master, bool is_master);

/* The hosts to upgrade and their order: the master first, then the others
 * by name (then ref). In a mixed pool (a run that stopped part-way), hosts
 * already at the newest version are skipped. order[] gets indexes into
 * hosts, skip[i] whether host i is skipped; returns the count ordered
 * (all n). names may hold NULLs. */
size_t upgrade_order(const struct upgrade_ver *hosts, const char *const *names, const char *const *refs, size_t n,
		     size_t master, size_t *order, bool *skip);

/* Seconds left: the mean of the hosts done so far for each host still to
 * do, less what the current one has already taken (never below 0 for it).
 * -1 when nothing is done yet (no basis). */
double upgrade_eta(const double *done_s, size_t ndone, size_t todo, double current_elapsed);

/* The command for one host: "{uuid}", "{address}" and "{name}" replaced by
 * the host's values, each single-quoted for the shell. NULL when a value
 * holds a quote or a control character (never passed to a shell). */
char *upgrade_command(const char *tmpl, const char *uuid, const char *address, const char *name);

/* ---- going home ---- */

/* VMs go back to the hosts they ran on before the run, memory-aware:
 * moves in waves, a wave using only the memory earlier waves freed (so the
 * run may start a wave's moves together). A VM whose home is taken by VMs
 * that are not at home ("foreign") waits for them to leave; when every VM
 * waits on another (a cycle, or a VM with no home sitting there), one
 * foreign VM is parked on a third host with room, then the others go on.
 * Every move passes placement (place_check, PLACE_MIGRATE) against the
 * memory left at that point. */
struct upgrade_move {
	size_t hm_vm, hm_from, hm_to; /* pool indexes */
	int hm_wave;
	bool hm_park;                 /* out of the way, not home */
};
struct upgrade_home {
	struct upgrade_move *hh_moves;
	size_t hh_nmoves;
	json_t **hh_stuck;            /* per VM: why it stays (owned), NULL */
	size_t hh_nvms;
};
/* pool: every host (ph_available = memory free now) and the VMs that may
 * move; at[v]: the host VM v is on; home[v]: its home (PLACE_NONE: none,
 * it only moves out of the way). NULL when out of memory. */
struct upgrade_home *upgrade_home_plan(const struct place_pool *pool, const size_t *at, const size_t *home);
void upgrade_home_free(struct upgrade_home *h);

#endif
