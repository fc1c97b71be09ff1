/*
 * place_pick.c - choosing a host (see place.h): the index that makes the
 * checks cheap for many pairs, the spreading rule, and the error when no
 * host can take a VM.
 *
 * The index evaluates the rows of PLACE_CHECKS, nothing else: VM and HOST
 * rows once per VM and per host with place_fails() itself, PAIR rows per
 * pair on precomputed forms (feature sets parsed once, SRs and networks as
 * bit sets, the VM's host as an id) that give place_fails()'s answer
 * (tests/unit/test_place.c checks every pair of random pools). A PAIR row
 * without a fast form here falls back to place_fails().
 */
#include <stdlib.h>
#include <string.h>
#include "place.h"
#include "xerr.h"

static const char *nz(const char *s)
{
	return s ? s : "";
}

/* ---- strings to small ids (open addressing, fixed size) ---------------- */

struct idtab {
	const char **it_keys;
	size_t *it_ids;
	size_t it_cap, it_n; /* it_cap a power of two, >= 2 * the most keys */
};

static uint64_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static int idtab_init(struct idtab *t, size_t most)
{
	memset(t, 0, sizeof *t);
	t->it_cap = 16;
	while (t->it_cap < 2 * most)
		t->it_cap *= 2;
	t->it_keys = calloc(t->it_cap, sizeof *t->it_keys);
	t->it_ids = calloc(t->it_cap, sizeof *t->it_ids);
	return t->it_keys && t->it_ids ? 0 : -1;
}

static void idtab_free(struct idtab *t)
{
	free(t->it_keys);
	free(t->it_ids);
}

/* Slot of key, or of the empty slot where it would go. */
static size_t idtab_slot(const struct idtab *t, const char *key)
{
	size_t i = (size_t)str_hash(key) & (t->it_cap - 1);
	while (t->it_keys[i] && strcmp(t->it_keys[i], key))
		i = (i + 1) & (t->it_cap - 1);
	return i;
}

/* The id of key (its insertion rank), adding it when new; NULL: PLACE_NONE. */
static size_t idtab_add(struct idtab *t, const char *key)
{
	if (!key)
		return PLACE_NONE;
	size_t i = idtab_slot(t, key);
	if (!t->it_keys[i]) {
		t->it_keys[i] = key;
		t->it_ids[i] = t->it_n++;
	}
	return t->it_ids[i];
}

static size_t idtab_find(const struct idtab *t, const char *key)
{
	if (!key || !t->it_keys)
		return PLACE_NONE;
	size_t i = idtab_slot(t, key);
	return t->it_keys[i] ? t->it_ids[i] : PLACE_NONE;
}

/* ---- the index ---------------------------------------------------------- */

/* A verdict as stored: PLACE_OK is kept as PLACE__COUNT, so the earliest
 * refusal of several is their minimum. */
#define PASS ((uint8_t)PLACE__COUNT)

struct place_index {
	const struct place_pool *ix_pool;
	size_t ix_nh, ix_nv;
	unsigned ix_flags;
	uint8_t ix_pair[PLACE__COUNT]; /* the PAIR rows that apply, in order */
	bool ix_any_ha;            /* some host carries HA admission (place.h's HA row) */
	/* pair_verdict(v, h) without memory, remembered (+1; 0: not yet): it
	 * does not change as placements take memory, and the failover planner
	 * picks the same VMs again for every failure it tries */
	uint8_t *ix_memo;
	size_t ix_npair;
	/* hosts */
	uint8_t *h_verdict;        /* the first HOST row refusing it, or PASS */
	bool *h_source;            /* same ref as pp_source: never a target */
	size_t *h_id;              /* id of its ref (the first host with that ref) */
	size_t *h_rank;            /* its place in ref order (ties: index) */
	bool *h_cpu_bad;
	struct cpuid_set *h_cpu;
	size_t *h_vendor, *h_fset; /* ids of its CPU vendor and feature set */
	size_t srw, netw, ng;      /* words per host bit set; groups */
	uint64_t *h_sr, *h_net;    /* nh * srw, nh * netw: the SRs / networks some VM needs */
	/* VMs */
	uint8_t *v_verdict;        /* the first VM row refusing it, or PASS */
	size_t *v_home;            /* id of the host it runs on, PLACE_NONE */
	uint8_t *v_cpu_kind;
	struct cpuid_set *v_cpu;
	size_t *v_vendor, *v_fset; /* PLACE_NONE: no vendor check; set 0: no set */
	/* place_cpu_fits per (VM set, host set), the vendor aside: a pool has
	 * few distinct sets (NULL when that saves little: computed per pair) */
	uint8_t *cpu_fit;
	size_t nvf, nhf;
	size_t *v_sr_off, *v_sr;   /* ids of VM i: v_sr[v_sr_off[i] .. v_sr_off[i+1]) */
	size_t *v_net_off, *v_net;
	size_t *v_group;           /* group id, PLACE_NONE */
	/* what the placements so far took */
	int64_t *s_left;           /* per host */
	size_t *s_added;           /* per host */
	size_t *s_gcount;          /* nh * ng */
	size_t *s_gcount0;         /* nh * ng: before any (place_index_reset) */
};

static void *alloc0(size_t n, size_t size)
{
	return calloc(n > 0 ? n : 1, size);
}
#define ALLOC(ptr, n) (((ptr) = alloc0((n), sizeof *(ptr))) == NULL)

void place_index_free(struct place_index *ix)
{
	if (!ix)
		return;
	void *blocks[] = {ix->h_verdict, ix->h_source, ix->h_id, ix->h_rank, ix->h_cpu_bad, ix->h_cpu,
			  ix->h_vendor, ix->h_fset, ix->h_sr, ix->h_net, ix->v_verdict, ix->v_home,
			  ix->v_cpu_kind, ix->v_cpu, ix->v_vendor, ix->v_fset, ix->cpu_fit, ix->v_sr_off,
			  ix->v_sr, ix->v_net_off, ix->v_net, ix->v_group, ix->s_left, ix->s_added, ix->s_gcount,
			  ix->s_gcount0, ix->ix_memo};
	for (size_t i = 0; i < sizeof blocks / sizeof *blocks; i++)
		free(blocks[i]);
	free(ix);
}

/* Interns the SRs (or networks) every VM needs, then marks on each host
 * those it has: a host's names nobody needs are left out. */
static int index_sets(struct place_index *ix, bool nets)
{
	const struct place_pool *p = ix->ix_pool;
	size_t total = 0;
	for (size_t i = 0; i < ix->ix_nv; i++)
		total += nets ? p->pp_vms[i].pv_nnetworks : p->pp_vms[i].pv_nsrs;
	struct idtab t;
	size_t **offp = nets ? &ix->v_net_off : &ix->v_sr_off, **idsp = nets ? &ix->v_net : &ix->v_sr;
	uint64_t **bitsp = nets ? &ix->h_net : &ix->h_sr;
	if (idtab_init(&t, total) || ALLOC(*offp, ix->ix_nv + 1) || ALLOC(*idsp, total)) {
		idtab_free(&t);
		return -1;
	}
	size_t *off = *offp, *ids = *idsp, k = 0;
	for (size_t i = 0; i < ix->ix_nv; i++) {
		const struct place_vm *v = &p->pp_vms[i];
		size_t n = nets ? v->pv_nnetworks : v->pv_nsrs;
		off[i] = k;
		for (size_t j = 0; j < n; j++) {
			const char *s = nets ? v->pv_networks[j] : v->pv_srs[j];
			ids[k++] = idtab_add(&t, s ? s : "");
		}
	}
	off[ix->ix_nv] = k;
	size_t words = (t.it_n + 63) / 64;
	*(nets ? &ix->netw : &ix->srw) = words;
	if (ALLOC(*bitsp, ix->ix_nh * words)) {
		idtab_free(&t);
		return -1;
	}
	uint64_t *bits = *bitsp;
	for (size_t h = 0; h < ix->ix_nh && words; h++) {
		const struct place_host *ph = &p->pp_hosts[h];
		size_t n = nets ? ph->ph_nnetworks : ph->ph_nsrs;
		for (size_t j = 0; j < n; j++) {
			const char *s = nets ? ph->ph_networks[j] : ph->ph_srs[j];
			size_t id = idtab_find(&t, s ? s : "");
			if (id != PLACE_NONE)
				bits[h * words + id / 64] |= 1ULL << (id % 64);
		}
	}
	idtab_free(&t);
	return 0;
}

static int index_groups(struct place_index *ix)
{
	const struct place_pool *p = ix->ix_pool;
	struct idtab t;
	if (idtab_init(&t, ix->ix_nv) || ALLOC(ix->v_group, ix->ix_nv)) {
		idtab_free(&t);
		return -1;
	}
	for (size_t i = 0; i < ix->ix_nv; i++)
		ix->v_group[i] = idtab_add(&t, p->pp_vms[i].pv_group);
	ix->ng = t.it_n;
	if (ALLOC(ix->s_gcount, ix->ix_nh * ix->ng) || ALLOC(ix->s_gcount0, ix->ix_nh * ix->ng)) {
		idtab_free(&t);
		return -1;
	}
	for (size_t h = 0; h < ix->ix_nh && ix->ng; h++)
		for (size_t j = 0; j < p->pp_hosts[h].ph_ngroups; j++) {
			const struct place_group_count *gc = &p->pp_hosts[h].ph_groups[j];
			size_t g = idtab_find(&t, gc->gc_group);
			if (g != PLACE_NONE)
				ix->s_gcount[h * ix->ng + g] += gc->gc_count;
		}
	memcpy(ix->s_gcount0, ix->s_gcount, ix->ix_nh * ix->ng * sizeof *ix->s_gcount);
	idtab_free(&t);
	return 0;
}

/* The first row of scope refusing (vm or host alone), or PASS. */
static uint8_t first_of_scope(enum place_scope scope, const struct place_vm *vm, const struct place_host *src,
			      const struct place_host *dst, unsigned flags)
{
	for (int v = PLACE_OK + 1; v < PLACE__COUNT; v++)
		if (place_scope_of(v) == scope && place_applies(v, flags) && place_fails(v, vm, src, dst, flags))
			return (uint8_t)v;
	return PASS;
}

static int index_hosts(struct place_index *ix, struct idtab *hosts)
{
	const struct place_pool *p = ix->ix_pool;
	if (ALLOC(ix->h_verdict, ix->ix_nh) || ALLOC(ix->h_source, ix->ix_nh) || ALLOC(ix->h_id, ix->ix_nh) ||
	    ALLOC(ix->h_cpu_bad, ix->ix_nh) || ALLOC(ix->h_cpu, ix->ix_nh) || ALLOC(ix->s_left, ix->ix_nh) ||
	    ALLOC(ix->s_added, ix->ix_nh))
		return -1;
	for (size_t h = 0; h < ix->ix_nh; h++) {
		const struct place_host *ph = &p->pp_hosts[h];
		ix->h_verdict[h] = first_of_scope(PLACE_SCOPE_HOST, NULL, p->pp_source, ph, ix->ix_flags);
		ix->h_source[h] = p->pp_source && strcmp(nz(ph->ph_ref), nz(p->pp_source->ph_ref)) == 0;
		ix->h_id[h] = idtab_add(hosts, nz(ph->ph_ref));
		ix->h_cpu_bad[h] = cpuid_parse(nz(ph->ph_features), &ix->h_cpu[h]) != 0;
		ix->s_left[h] = ph->ph_available;
		ix->ix_any_ha |= ph->ph_ha != NULL;
	}
	return 0;
}

static int index_vms(struct place_index *ix, const struct idtab *hosts)
{
	const struct place_pool *p = ix->ix_pool;
	if (ALLOC(ix->v_verdict, ix->ix_nv) || ALLOC(ix->v_home, ix->ix_nv) || ALLOC(ix->v_cpu_kind, ix->ix_nv) ||
	    ALLOC(ix->v_cpu, ix->ix_nv))
		return -1;
	for (size_t i = 0; i < ix->ix_nv; i++) {
		const struct place_vm *vm = &p->pp_vms[i];
		ix->v_verdict[i] = first_of_scope(PLACE_SCOPE_VM, vm, NULL, NULL, ix->ix_flags);
		ix->v_home[i] = idtab_find(hosts, nz(vm->pv_resident_on));
		if (!vm->pv_boot_features)
			ix->v_cpu_kind[i] = PLACE_CPU_ANY;
		else
			ix->v_cpu_kind[i] = cpuid_parse(vm->pv_boot_features, &ix->v_cpu[i]) ? PLACE_CPU_BAD : PLACE_CPU_SET;
	}
	return 0;
}

/* The set-against-set table: each VM set class against each host set
 * class, through one VM and one host of each. */
static void cpu_table(struct place_index *ix)
{
	size_t *vrep = NULL, *hrep = NULL;
	size_t cells = ix->nvf * ix->nhf;
	if (cells > (1u << 22) || cells > ix->ix_nv * ix->ix_nh / 4 || ALLOC(vrep, ix->nvf) || ALLOC(hrep, ix->nhf) ||
	    ALLOC(ix->cpu_fit, ix->nvf * ix->nhf)) {
		free(ix->cpu_fit); /* not worth it (or no memory): each pair is computed */
		ix->cpu_fit = NULL;
	} else {
		for (size_t v = 0; v < ix->ix_nv; v++)
			vrep[ix->v_fset[v]] = v;
		for (size_t h = 0; h < ix->ix_nh; h++)
			hrep[ix->h_fset[h]] = h;
		for (size_t a = 0; a < ix->nvf; a++)
			for (size_t b = 0; b < ix->nhf; b++) {
				size_t v = vrep[a], h = hrep[b];
				ix->cpu_fit[a * ix->nhf + b] = place_cpu_fits(true, ix->v_cpu_kind[v], &ix->v_cpu[v],
									      ix->h_cpu_bad[h], &ix->h_cpu[h]);
			}
	}
	free(vrep);
	free(hrep);
}

/* Vendors and feature sets as ids (after index_hosts and index_vms). */
static int index_cpu(struct place_index *ix)
{
	const struct place_pool *p = ix->ix_pool;
	struct idtab vendors, vsets, hsets;
	int rc = idtab_init(&vendors, ix->ix_nv + ix->ix_nh) | idtab_init(&vsets, ix->ix_nv) |
		 idtab_init(&hsets, ix->ix_nh);
	if (rc || ALLOC(ix->v_vendor, ix->ix_nv) || ALLOC(ix->v_fset, ix->ix_nv) || ALLOC(ix->h_vendor, ix->ix_nh) ||
	    ALLOC(ix->h_fset, ix->ix_nh)) {
		rc = -1;
	} else {
		for (size_t v = 0; v < ix->ix_nv; v++) {
			const struct place_vm *vm = &p->pp_vms[v];
			ix->v_vendor[v] = *nz(vm->pv_boot_vendor) ? idtab_add(&vendors, vm->pv_boot_vendor) : PLACE_NONE;
			ix->v_fset[v] = vm->pv_boot_features ? 1 + idtab_add(&vsets, vm->pv_boot_features) : 0;
		}
		for (size_t h = 0; h < ix->ix_nh; h++) {
			ix->h_vendor[h] = idtab_add(&vendors, nz(p->pp_hosts[h].ph_vendor));
			ix->h_fset[h] = idtab_add(&hsets, nz(p->pp_hosts[h].ph_features));
		}
		ix->nvf = 1 + vsets.it_n;
		ix->nhf = hsets.it_n;
		cpu_table(ix);
	}
	idtab_free(&vendors);
	idtab_free(&vsets);
	idtab_free(&hsets);
	return rc;
}

static int by_ref(const void *a, const void *b, void *arg)
{
	const struct place_host *hs = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int c = strcmp(nz(hs[x].ph_ref), nz(hs[y].ph_ref));
	return c ? c : (x > y) - (x < y);
}

/* Each host's place in ref order, so ties compare two numbers. */
static int index_rank(struct place_index *ix)
{
	size_t *order;
	if (ALLOC(order, ix->ix_nh) || ALLOC(ix->h_rank, ix->ix_nh)) {
		free(order);
		return -1;
	}
	for (size_t h = 0; h < ix->ix_nh; h++)
		order[h] = h;
	qsort_r(order, ix->ix_nh, sizeof *order, by_ref, (void *)ix->ix_pool->pp_hosts);
	for (size_t k = 0; k < ix->ix_nh; k++)
		ix->h_rank[order[k]] = k;
	free(order);
	return 0;
}

struct place_index *place_index_new(const struct place_pool *pool)
{
	struct place_index *ix = calloc(1, sizeof *ix);
	struct idtab hosts = {0};
	if (!ix)
		return NULL;
	ix->ix_pool = pool;
	ix->ix_nh = pool->pp_nhosts;
	ix->ix_nv = pool->pp_nvms;
	ix->ix_flags = pool->pp_flags;
	for (int v = PLACE_OK + 1; v < PLACE__COUNT; v++)
		if (place_scope_of(v) == PLACE_SCOPE_PAIR && place_applies(v, ix->ix_flags))
			ix->ix_pair[ix->ix_npair++] = (uint8_t)v;
	if (idtab_init(&hosts, ix->ix_nh) || index_hosts(ix, &hosts) || index_vms(ix, &hosts) ||
	    index_cpu(ix) || index_rank(ix) || index_sets(ix, false) || index_sets(ix, true) || index_groups(ix)) {
		idtab_free(&hosts);
		place_index_free(ix);
		return NULL;
	}
	idtab_free(&hosts);
	return ix;
}

/* ---- verdicts ------------------------------------------------------------- */

static bool has_all(const uint64_t *bits, const size_t *ids, size_t from, size_t to)
{
	for (size_t k = from; k < to; k++)
		if (!(bits[ids[k] / 64] & (1ULL << (ids[k] % 64))))
			return false;
	return true;
}

/* The HA row on what is left of h now (place_fails on the host as the
 * placements so far left it). */
static bool ha_fails(const struct place_index *ix, size_t v, size_t h)
{
	const struct place_pool *p = ix->ix_pool;
	if (!p->pp_hosts[h].ph_ha || !place_applies(PLACE_HA_PLAN, ix->ix_flags))
		return false;
	struct place_host now = p->pp_hosts[h];
	now.ph_available = ix->s_left[h];
	return place_fails(PLACE_HA_PLAN, &p->pp_vms[v], p->pp_source, &now, ix->ix_flags);
}

/* place_fails() of a PAIR row, on the precomputed forms. */
static bool pair_fails(const struct place_index *ix, enum place_verdict row, size_t v, size_t h)
{
	const struct place_pool *p = ix->ix_pool;
	switch (row) {
	case PLACE_SAME_HOST:
		return ix->v_home[v] == ix->h_id[h];
	case PLACE_CPU: {
		bool vendor_ok = ix->v_vendor[v] == PLACE_NONE || ix->v_vendor[v] == ix->h_vendor[h];
		if (ix->cpu_fit)
			return !(vendor_ok && ix->cpu_fit[ix->v_fset[v] * ix->nhf + ix->h_fset[h]]);
		return !place_cpu_fits(vendor_ok, ix->v_cpu_kind[v], &ix->v_cpu[v], ix->h_cpu_bad[h], &ix->h_cpu[h]);
	}
	case PLACE_SR:
		return !has_all(ix->h_sr + h * ix->srw, ix->v_sr, ix->v_sr_off[v], ix->v_sr_off[v + 1]);
	case PLACE_NETWORK:
		return !has_all(ix->h_net + h * ix->netw, ix->v_net, ix->v_net_off[v], ix->v_net_off[v + 1]);
	case PLACE_MEMORY:
		return p->pp_vms[v].pv_memory > ix->s_left[h];
	case PLACE_HA_PLAN:
		return ha_fails(ix, v, h);
	default:
		return place_fails(row, &p->pp_vms[v], p->pp_source, &p->pp_hosts[h], ix->ix_flags);
	}
}

/* The first row refusing the pair (PASS when none), memory and the HA
 * plan (which depends on memory, and costs a planner run) left out when
 * !with_memory. */
static uint8_t pair_verdict(const struct place_index *ix, size_t v, size_t h, bool with_memory)
{
	uint8_t best = ix->v_verdict[v] < ix->h_verdict[h] ? ix->v_verdict[v] : ix->h_verdict[h];
	for (size_t i = 0; i < ix->ix_npair && ix->ix_pair[i] < best; i++) {
		uint8_t row = ix->ix_pair[i];
		if ((with_memory || (row != PLACE_MEMORY && row != PLACE_HA_PLAN)) && pair_fails(ix, row, v, h))
			return row;
	}
	return best;
}

enum place_verdict place_index_verdict(const struct place_index *ix, size_t v, size_t h)
{
	if (v >= ix->ix_nv || h >= ix->ix_nh)
		return PLACE__COUNT;
	uint8_t r = pair_verdict(ix, v, h, true);
	return r == PASS ? PLACE_OK : r;
}

/* ---- choosing a host ------------------------------------------------------ */

/* Why nothing fits, for the error. */
struct miss {
	size_t furthest;          /* the host whose refusal came last in the order */
	uint8_t furthest_row;
	size_t roomiest;          /* most memory among otherwise suitable hosts */
	int64_t room;
};

static bool ref_before(const struct place_index *ix, size_t a, size_t b)
{
	return ix->h_rank[a] < ix->h_rank[b];
}

/* Is host a a better target than b for VM v (the spreading rule)? */
static bool better(const struct place_index *ix, size_t v, size_t a, size_t b)
{
	size_t g = ix->v_group[v];
	if (g != PLACE_NONE && ix->s_gcount[a * ix->ng + g] != ix->s_gcount[b * ix->ng + g])
		return ix->s_gcount[a * ix->ng + g] < ix->s_gcount[b * ix->ng + g];
	if (ix->s_left[a] != ix->s_left[b])
		return ix->s_left[a] > ix->s_left[b];
	const struct place_host *hs = ix->ix_pool->pp_hosts;
	size_t ca = hs[a].ph_nresident + ix->s_added[a], cb = hs[b].ph_nresident + ix->s_added[b];
	if (ca != cb)
		return ca < cb;
	return ref_before(ix, a, b);
}

static void note_refusal(const struct place_index *ix, struct miss *m, size_t h, uint8_t row)
{
	if (m->furthest == PLACE_NONE || row > m->furthest_row ||
	    (row == m->furthest_row && ref_before(ix, h, m->furthest))) {
		m->furthest = h;
		m->furthest_row = row;
	}
}

static void note_no_room(const struct place_index *ix, struct miss *m, size_t h)
{
	if (m->roomiest == PLACE_NONE || ix->s_left[h] > m->room ||
	    (ix->s_left[h] == m->room && ref_before(ix, h, m->roomiest))) {
		m->roomiest = h;
		m->room = ix->s_left[h];
	}
}

/* pair_verdict(ix, v, h, false), remembered. */
static uint8_t static_verdict(const struct place_index *ix, size_t v, size_t h)
{
	if (!ix->ix_memo)
		return pair_verdict(ix, v, h, false);
	uint8_t *m = &ix->ix_memo[v * ix->ix_nh + h];
	if (!*m)
		*m = (uint8_t)(pair_verdict(ix, v, h, false) + 1);
	return (uint8_t)(*m - 1);
}

/* The best of the hosts marked fit (the spreading rule), PLACE_NONE. */
static size_t best_of(const struct place_index *ix, size_t v, const bool *fit)
{
	size_t best = PLACE_NONE;
	for (size_t h = 0; h < ix->ix_nh; h++)
		if (fit[h] && (best == PLACE_NONE || better(ix, v, h, best)))
			best = h;
	return best;
}

static size_t choose(const struct place_index *ix, size_t v, const bool *excluded, struct miss *m)
{
	*m = (struct miss){PLACE_NONE, PASS, PLACE_NONE, 0};
	if (ix->v_verdict[v] != PASS)
		return PLACE_NONE;
	int64_t need = ix->ix_pool->pp_vms[v].pv_memory;
	bool *fit = ix->ix_any_ha ? alloc0(ix->ix_nh, sizeof *fit) : NULL;
	size_t best = PLACE_NONE;
	if (ix->ix_any_ha && !fit)
		abort();
	for (size_t h = 0; h < ix->ix_nh; h++) {
		if (ix->h_source[h] || (excluded && excluded[h]))
			continue;
		uint8_t row = static_verdict(ix, v, h);
		if (row != PASS)
			note_refusal(ix, m, h, row);
		else if (need > ix->s_left[h])
			note_no_room(ix, m, h);
		else if (fit)
			fit[h] = true;
		else if (best == PLACE_NONE || better(ix, v, h, best))
			best = h;
	}
	if (!fit)
		return best;
	/* the HA row (a planner run) only on the host the rule prefers, then
	 * the next one if it refuses: usually once, not once per host */
	while ((best = best_of(ix, v, fit)) != PLACE_NONE && ha_fails(ix, v, best)) {
		note_refusal(ix, m, best, PLACE_HA_PLAN);
		fit[best] = false;
	}
	free(fit);
	return best;
}

static json_t *refusal(const struct place_index *ix, size_t v, const struct miss *m)
{
	const struct place_pool *p = ix->ix_pool;
	const struct place_vm *vm = &p->pp_vms[v];
	if (ix->v_verdict[v] != PASS) /* its own refusal comes before anything about a host */
		return place_error(ix->v_verdict[v], vm, p->pp_source, NULL, ix->ix_flags);
	if (m->furthest_row == PLACE_HA_PLAN) /* a host had room, but the failover plan needs it */
		return place_error(PLACE_HA_PLAN, vm, p->pp_source, &p->pp_hosts[m->furthest], ix->ix_flags);
	if (m->roomiest != PLACE_NONE) {
		struct place_host h = p->pp_hosts[m->roomiest];
		h.ph_available = m->room;
		return place_error(PLACE_MEMORY, vm, p->pp_source, &h, ix->ix_flags);
	}
	if (m->furthest != PLACE_NONE)
		return place_error(m->furthest_row, vm, p->pp_source, &p->pp_hosts[m->furthest], ix->ix_flags);
	return xerr_new(XE_NO_HOSTS_AVAILABLE, NULL);
}

size_t place_pick(const struct place_index *ix, size_t v, const bool *excluded, json_t **err)
{
	*err = NULL;
	if (v >= ix->ix_nv) {
		*err = xerr_newf(XE_INTERNAL_ERROR, "place_pick: no VM %zu", v);
		return PLACE_NONE;
	}
	struct miss m;
	size_t h = choose(ix, v, excluded, &m);
	if (h == PLACE_NONE)
		*err = refusal(ix, v, &m);
	return h;
}

void place_take(struct place_index *ix, size_t v, size_t h)
{
	if (v >= ix->ix_nv || h >= ix->ix_nh)
		return;
	ix->s_left[h] -= ix->ix_pool->pp_vms[v].pv_memory;
	ix->s_added[h]++;
	if (ix->v_group[v] != PLACE_NONE)
		ix->s_gcount[h * ix->ng + ix->v_group[v]]++;
}

void place_index_remember(struct place_index *ix)
{
	if (!ix->ix_memo && ix->ix_nv * ix->ix_nh <= (64u << 20))
		ix->ix_memo = calloc(ix->ix_nv * ix->ix_nh + 1, 1); /* NULL: computed each time */
}

void place_index_reset(struct place_index *ix)
{
	for (size_t h = 0; h < ix->ix_nh; h++)
		ix->s_left[h] = ix->ix_pool->pp_hosts[h].ph_available;
	memset(ix->s_added, 0, ix->ix_nh * sizeof *ix->s_added);
	memcpy(ix->s_gcount, ix->s_gcount0, ix->ix_nh * ix->ng * sizeof *ix->s_gcount);
}

int64_t place_left(const struct place_index *ix, size_t h)
{
	return h < ix->ix_nh ? ix->s_left[h] : 0;
}

size_t place_added(const struct place_index *ix, size_t h)
{
	return h < ix->ix_nh ? ix->s_added[h] : 0;
}

json_t *place_choose(const struct place_pool *pool, size_t v, const char *const *excluded, size_t nexcluded,
		     size_t *host)
{
	*host = PLACE_NONE;
	if (v >= pool->pp_nvms)
		return xerr_newf(XE_INTERNAL_ERROR, "place_choose: no VM %zu", v);
	struct place_index *ix = place_index_new(pool);
	bool *ex = alloc0(pool->pp_nhosts, sizeof *ex);
	json_t *e = NULL;
	if (!ix || !ex) {
		e = xerr_newf(XE_INTERNAL_ERROR, "place_choose: out of memory");
	} else {
		for (size_t h = 0; h < pool->pp_nhosts; h++)
			for (size_t j = 0; j < nexcluded && !ex[h]; j++)
				ex[h] = strcmp(nz(pool->pp_hosts[h].ph_ref), nz(excluded[j])) == 0;
		*host = place_pick(ix, v, ex, &e);
	}
	free(ex);
	place_index_free(ix);
	return e;
}

/* Biggest first, then by ref, then by index: one total order, so every
 * plan that places VMs one by one takes them the same way. */
static int by_size(const void *a, const void *b, void *arg)
{
	const struct place_vm *vms = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	const struct place_vm *x = &vms[i], *y = &vms[j];
	if (x->pv_memory != y->pv_memory)
		return x->pv_memory > y->pv_memory ? -1 : 1;
	int c = strcmp(x->pv_ref ? x->pv_ref : "", y->pv_ref ? y->pv_ref : "");
	return c ? c : (i > j) - (i < j);
}

void place_order_by_size(const struct place_vm *vms, size_t *idx, size_t n)
{
	qsort_r(idx, n, sizeof *idx, by_size, (void *)vms);
}
