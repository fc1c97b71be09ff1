/* evacplan.c - the host evacuation planner (see evacplan.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cpuid.h"
#include "evacplan.h"
#include "xerr.h"

/* How far a (VM, host) pair gets through mig_check's checks, in its order;
 * the first failing one. ST_MEMORY sits where mig_check checks memory. */
enum stage {
	ST_OK = 0,
	ST_POWER, ST_IMMOBILE, ST_PCI, ST_VUSB, ST_BUSY, /* the VM's own */
	ST_SAME, ST_DISABLED, ST_EVACUATING, ST_NOT_LIVE, ST_OFFLINE, ST_VERSION,
	ST_CPU, ST_MEMORY, ST_SR, ST_NETWORK,
};

static const enum xapi_err stage_code[] = {
	[ST_POWER] = XE_VM_BAD_POWER_STATE,
	[ST_IMMOBILE] = XE_VM_IS_IMMOBILE,
	[ST_PCI] = XE_VM_HAS_PCI_ATTACHED,
	[ST_VUSB] = XE_VM_HAS_VUSBS,
	[ST_BUSY] = XE_OTHER_OPERATION_IN_PROGRESS,
	[ST_SAME] = XE_OPERATION_NOT_ALLOWED,
	[ST_DISABLED] = XE_HOST_DISABLED,
	[ST_EVACUATING] = XE_HOST_EVACUATE_IN_PROGRESS,
	[ST_NOT_LIVE] = XE_HOST_NOT_LIVE,
	[ST_OFFLINE] = XE_HOST_OFFLINE,
	[ST_VERSION] = XE_VM_HOST_INCOMPATIBLE_VERSION_MIGRATE,
	[ST_CPU] = XE_VM_INCOMPATIBLE_WITH_THIS_HOST,
	[ST_MEMORY] = XE_HOST_NOT_ENOUGH_FREE_MEMORY,
	[ST_SR] = XE_VM_REQUIRES_SR,
	[ST_NETWORK] = XE_VM_REQUIRES_NETWORK,
};

/* ---- strings to small ids (open addressing, fixed size) ---------------- */

struct strtab {
	const char **st_keys;
	size_t st_cap, st_n; /* st_cap a power of two, >= 2 * the most keys */
};

static uint64_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static int strtab_init(struct strtab *t, size_t most)
{
	t->st_cap = 16;
	while (t->st_cap < 2 * most)
		t->st_cap *= 2;
	t->st_n = 0;
	t->st_keys = calloc(t->st_cap, sizeof *t->st_keys);
	/* ids: index of the key in insertion order, kept beside the key */
	return t->st_keys ? 0 : -1;
}

/* Slot of key, or of the empty slot where it would go. */
static size_t strtab_slot(const struct strtab *t, const char *key)
{
	size_t i = (size_t)str_hash(key) & (t->st_cap - 1);
	while (t->st_keys[i] && strcmp(t->st_keys[i], key))
		i = (i + 1) & (t->st_cap - 1);
	return i;
}

/* ids live in a parallel array allocated with the table */
struct idtab {
	struct strtab it_t;
	size_t *it_ids;
};

static int idtab_init(struct idtab *t, size_t most)
{
	memset(t, 0, sizeof *t);
	if (strtab_init(&t->it_t, most))
		return -1;
	t->it_ids = calloc(t->it_t.st_cap, sizeof *t->it_ids);
	return t->it_ids ? 0 : -1;
}

static void idtab_free(struct idtab *t)
{
	free(t->it_t.st_keys);
	free(t->it_ids);
}

/* The id of key, adding it when new (NULL keys are not added: EVAC_NONE). */
static size_t idtab_add(struct idtab *t, const char *key)
{
	if (!key)
		return EVAC_NONE;
	size_t i = strtab_slot(&t->it_t, key);
	if (!t->it_t.st_keys[i]) {
		t->it_t.st_keys[i] = key;
		t->it_ids[i] = t->it_t.st_n++;
	}
	return t->it_ids[i];
}

static size_t idtab_find(const struct idtab *t, const char *key)
{
	if (!key || !t->it_t.st_keys)
		return EVAC_NONE;
	size_t i = strtab_slot(&t->it_t, key);
	return t->it_t.st_keys[i] ? t->it_ids[i] : EVAC_NONE;
}

/* ---- the precomputed snapshot ------------------------------------------ */

enum vcpu { VCPU_ANY, VCPU_SET, VCPU_BAD };

struct prep {
	const struct evac_snapshot *s;
	size_t nh, nv;
	/* hosts */
	uint8_t *h_stage;          /* ST_OK or the first failing host-only check */
	bool *h_source;            /* same ref as es_source */
	bool *h_cpu_bad;           /* feature set does not parse */
	struct cpuid_set *h_cpu;
	size_t srw, netw, ng;      /* words per host bit set; groups */
	uint64_t *h_sr, *h_net;    /* nh * srw, nh * netw: SRs/networks some VM needs */
	size_t *h_gcount;          /* nh * ng */
	struct idtab hosts;        /* host ref -> first index */
	/* VMs */
	uint8_t *v_stage;          /* ST_OK or its own refusal */
	size_t *v_home;            /* index of the host it runs on, EVAC_NONE */
	uint8_t *v_cpu_kind;
	struct cpuid_set *v_cpu;
	size_t *v_sr_off, *v_sr;   /* ids of vm i: v_sr[v_sr_off[i] .. v_sr_off[i+1]) */
	size_t *v_net_off, *v_net;
	size_t *v_group;           /* group id, EVAC_NONE */
};

static void prep_free(struct prep *p)
{
	free(p->h_stage);
	free(p->h_source);
	free(p->h_cpu_bad);
	free(p->h_cpu);
	free(p->h_sr);
	free(p->h_net);
	free(p->h_gcount);
	idtab_free(&p->hosts);
	free(p->v_stage);
	free(p->v_home);
	free(p->v_cpu_kind);
	free(p->v_cpu);
	free(p->v_sr_off);
	free(p->v_sr);
	free(p->v_net_off);
	free(p->v_net);
	free(p->v_group);
}

static enum stage vm_stage(const struct mig_vm *vm)
{
	if (strcmp(vm->mv_power_state, "Running"))
		return ST_POWER;
	if (vm->mv_nomigrate)
		return ST_IMMOBILE;
	if (vm->mv_has_pci)
		return ST_PCI;
	if (vm->mv_has_vusb)
		return ST_VUSB;
	if (vm->mv_busy)
		return ST_BUSY;
	return ST_OK;
}

static enum stage host_stage(const struct mig_host *h, const struct mig_host *src)
{
	if (!h->mh_enabled)
		return ST_DISABLED;
	if (h->mh_evacuating)
		return ST_EVACUATING;
	if (!h->mh_live)
		return ST_NOT_LIVE;
	if (!h->mh_has_agent)
		return ST_OFFLINE;
	if (mig_version_cmp(h->mh_version, src->mh_version) < 0)
		return ST_VERSION;
	return ST_OK;
}

static void *alloc0(size_t n, size_t size)
{
	return calloc(n > 0 ? n : 1, size);
}
#define ALLOC(ptr, n) (((ptr) = alloc0((n), sizeof *(ptr))) == NULL)

/* Interns the ids of `what` (SRs or networks) of every VM, then marks on
 * each host those it has. */
static int prep_sets(struct prep *p, bool nets)
{
	const struct evac_snapshot *s = p->s;
	size_t total = 0;
	for (size_t i = 0; i < p->nv; i++)
		total += nets ? s->es_vms[i].ev_nnetworks : s->es_vms[i].ev_vm.mv_nsrs;
	struct idtab t;
	size_t **offp = nets ? &p->v_net_off : &p->v_sr_off, **idsp = nets ? &p->v_net : &p->v_sr;
	uint64_t **bitsp = nets ? &p->h_net : &p->h_sr;
	if (idtab_init(&t, total) || ALLOC(*offp, p->nv + 1) || ALLOC(*idsp, total)) {
		idtab_free(&t);
		return -1;
	}
	size_t *off = *offp, *ids = *idsp;
	size_t k = 0;
	for (size_t i = 0; i < p->nv; i++) {
		const struct evac_vm *v = &s->es_vms[i];
		size_t n = nets ? v->ev_nnetworks : v->ev_vm.mv_nsrs;
		off[i] = k;
		for (size_t j = 0; j < n; j++)
			ids[k++] = idtab_add(&t, nets ? v->ev_networks[j] : v->ev_vm.mv_srs[j]);
	}
	off[p->nv] = k;
	size_t words = (t.it_t.st_n + 63) / 64;
	*(nets ? &p->netw : &p->srw) = words;
	if (ALLOC(*bitsp, p->nh * words)) {
		idtab_free(&t);
		return -1;
	}
	uint64_t *bits = *bitsp;
	for (size_t h = 0; h < p->nh && words; h++) {
		const struct evac_host *eh = &s->es_hosts[h];
		size_t n = nets ? eh->eh_nnetworks : eh->eh_host.mh_nsrs;
		for (size_t j = 0; j < n; j++) {
			size_t id = idtab_find(&t, nets ? eh->eh_networks[j] : eh->eh_host.mh_srs[j]);
			if (id != EVAC_NONE)
				bits[h * words + id / 64] |= 1ULL << (id % 64);
		}
	}
	idtab_free(&t);
	return 0;
}

static int prep_groups(struct prep *p)
{
	const struct evac_snapshot *s = p->s;
	struct idtab t;
	if (idtab_init(&t, p->nv) || ALLOC(p->v_group, p->nv)) {
		idtab_free(&t);
		return -1;
	}
	for (size_t i = 0; i < p->nv; i++)
		p->v_group[i] = idtab_add(&t, s->es_vms[i].ev_group);
	p->ng = t.it_t.st_n;
	if (ALLOC(p->h_gcount, p->nh * p->ng)) {
		idtab_free(&t);
		return -1;
	}
	for (size_t h = 0; h < p->nh && p->ng; h++)
		for (size_t j = 0; j < s->es_hosts[h].eh_ngroups; j++) {
			const struct evac_group_count *gc = &s->es_hosts[h].eh_groups[j];
			size_t g = idtab_find(&t, gc->gc_group);
			if (g != EVAC_NONE)
				p->h_gcount[h * p->ng + g] += gc->gc_count;
		}
	idtab_free(&t);
	return 0;
}

static int prep_init(struct prep *p, const struct evac_snapshot *s)
{
	memset(p, 0, sizeof *p);
	p->s = s;
	p->nh = s->es_nhosts;
	p->nv = s->es_nvms;
	if (ALLOC(p->h_stage, p->nh) || ALLOC(p->h_source, p->nh) || ALLOC(p->h_cpu_bad, p->nh) ||
	    ALLOC(p->h_cpu, p->nh) || ALLOC(p->v_stage, p->nv) || ALLOC(p->v_home, p->nv) ||
	    ALLOC(p->v_cpu_kind, p->nv) || ALLOC(p->v_cpu, p->nv) || idtab_init(&p->hosts, p->nh))
		return -1;
	for (size_t h = 0; h < p->nh; h++) {
		const struct mig_host *mh = &s->es_hosts[h].eh_host;
		p->h_stage[h] = (uint8_t)host_stage(mh, s->es_source);
		p->h_source[h] = strcmp(mh->mh_ref, s->es_source->mh_ref) == 0;
		p->h_cpu_bad[h] = cpuid_parse(mh->mh_features ? mh->mh_features : "", &p->h_cpu[h]) != 0;
		idtab_add(&p->hosts, mh->mh_ref);
	}
	for (size_t i = 0; i < p->nv; i++) {
		const struct mig_vm *vm = &s->es_vms[i].ev_vm;
		p->v_stage[i] = (uint8_t)vm_stage(vm);
		p->v_home[i] = idtab_find(&p->hosts, vm->mv_resident_on);
		if (!vm->mv_boot_features)
			p->v_cpu_kind[i] = VCPU_ANY;
		else
			p->v_cpu_kind[i] = cpuid_parse(vm->mv_boot_features, &p->v_cpu[i]) ? VCPU_BAD : VCPU_SET;
	}
	return prep_sets(p, false) || prep_sets(p, true) || prep_groups(p) ? -1 : 0;
}

/* As cpuid_check_vm() == NULL, on the parsed sets. */
static bool cpu_ok(const struct prep *p, size_t v, size_t h)
{
	const char *vv = p->s->es_vms[v].ev_vm.mv_boot_vendor, *hv = p->s->es_hosts[h].eh_host.mh_vendor;
	if (vv && *vv && strcmp(vv, hv ? hv : ""))
		return false;
	if (p->h_cpu_bad[h])
		return false;
	if (p->v_cpu_kind[v] == VCPU_ANY)
		return true;
	if (p->v_cpu_kind[v] == VCPU_BAD)
		return false;
	/* parsed sets are zero past cs_nwords, so host words past its end are 0 */
	const struct cpuid_set *a = &p->v_cpu[v], *b = &p->h_cpu[h];
	for (int i = 0; i < a->cs_nwords; i++)
		if (a->cs_words[i] & ~b->cs_words[i])
			return false;
	return true;
}

static bool has_all(const uint64_t *bits, const size_t *ids, size_t from, size_t to)
{
	for (size_t k = from; k < to; k++)
		if (!(bits[ids[k] / 64] & (1ULL << (ids[k] % 64))))
			return false;
	return true;
}

/* The first failing check of the pair, memory left out (ST_OK: suitable
 * whatever its memory). */
static enum stage pair_stage(const struct prep *p, size_t v, size_t h)
{
	if (p->v_stage[v])
		return p->v_stage[v];
	if (h == p->v_home[v])
		return ST_SAME;
	if (p->h_stage[h])
		return p->h_stage[h];
	if (!p->s->es_force && !cpu_ok(p, v, h))
		return ST_CPU;
	if (!has_all(p->h_sr + h * p->srw, p->v_sr, p->v_sr_off[v], p->v_sr_off[v + 1]))
		return ST_SR;
	if (!has_all(p->h_net + h * p->netw, p->v_net, p->v_net_off[v], p->v_net_off[v + 1]))
		return ST_NETWORK;
	return ST_OK;
}

/* ---- choosing a host ---------------------------------------------------- */

struct state {
	int64_t *left;   /* per host */
	size_t *added;   /* per host */
	size_t *gcount;  /* nh * ng, starts as h_gcount */
};

/* Why nothing fits, for the error. */
struct miss {
	size_t candidates;             /* hosts looked at */
	size_t furthest; enum stage furthest_stage; /* best non-memory refusal */
	size_t roomiest; int64_t room; /* most memory among otherwise suitable hosts */
};

static const char *href(const struct prep *p, size_t h)
{
	return p->s->es_hosts[h].eh_host.mh_ref;
}

/* Is host a better target than b for VM v (the spreading rule)? */
static bool better(const struct prep *p, const struct state *st, size_t v, size_t a, size_t b)
{
	size_t g = p->v_group[v];
	if (g != EVAC_NONE && st->gcount[a * p->ng + g] != st->gcount[b * p->ng + g])
		return st->gcount[a * p->ng + g] < st->gcount[b * p->ng + g];
	if (st->left[a] != st->left[b])
		return st->left[a] > st->left[b];
	size_t ca = p->s->es_hosts[a].eh_nresident + st->added[a], cb = p->s->es_hosts[b].eh_nresident + st->added[b];
	if (ca != cb)
		return ca < cb;
	int c = strcmp(href(p, a), href(p, b));
	return c ? c < 0 : a < b;
}

static bool ref_before(const struct prep *p, size_t a, size_t b)
{
	int c = strcmp(href(p, a), href(p, b));
	return c ? c < 0 : a < b;
}

static size_t choose(const struct prep *p, const struct state *st, size_t v, const bool *excluded, struct miss *m)
{
	memset(m, 0, sizeof *m);
	m->furthest = m->roomiest = EVAC_NONE;
	if (p->v_stage[v])
		return EVAC_NONE;
	int64_t need = p->s->es_vms[v].ev_vm.mv_memory;
	size_t best = EVAC_NONE;
	for (size_t h = 0; h < p->nh; h++) {
		if (p->h_source[h] || (excluded && excluded[h]))
			continue;
		m->candidates++;
		enum stage sg = pair_stage(p, v, h);
		if (sg != ST_OK) {
			if (m->furthest == EVAC_NONE || sg > m->furthest_stage ||
			    (sg == m->furthest_stage && ref_before(p, h, m->furthest))) {
				m->furthest = h;
				m->furthest_stage = sg;
			}
			continue;
		}
		if (need > st->left[h]) {
			if (m->roomiest == EVAC_NONE || st->left[h] > m->room ||
			    (st->left[h] == m->room && ref_before(p, h, m->roomiest))) {
				m->roomiest = h;
				m->room = st->left[h];
			}
			continue;
		}
		if (best == EVAC_NONE || better(p, st, v, h, best))
			best = h;
	}
	return best;
}

static json_t *refusal(const struct prep *p, size_t v, const struct miss *m)
{
	const struct evac_snapshot *s = p->s;
	const struct mig_vm *vm = &s->es_vms[v].ev_vm;
	json_t *e = NULL;
	if (p->v_stage[v]) /* its own refusal comes before anything about dst */
		return mig_check(vm, s->es_source, s->es_source, s->es_force);
	if (m->roomiest != EVAC_NONE) {
		struct mig_host h = s->es_hosts[m->roomiest].eh_host;
		h.mh_available = m->room;
		e = mig_check(vm, s->es_source, &h, s->es_force);
	} else if (m->furthest_stage == ST_NETWORK) {
		const struct evac_vm *ev = &s->es_vms[v];
		const uint64_t *bits = p->h_net + m->furthest * p->netw;
		for (size_t k = p->v_net_off[v]; k < p->v_net_off[v + 1]; k++)
			if (!(bits[p->v_net[k] / 64] & (1ULL << (p->v_net[k] % 64))))
				return xerr_new(XE_VM_REQUIRES_NETWORK, vm->mv_ref,
						ev->ev_networks[k - p->v_net_off[v]], NULL);
	} else if (m->furthest != EVAC_NONE) {
		struct mig_host h = s->es_hosts[m->furthest].eh_host;
		h.mh_available = INT64_MAX; /* the reason other than memory */
		e = mig_check(vm, s->es_source, &h, s->es_force);
	} else {
		return xerr_new(XE_NO_HOSTS_AVAILABLE, NULL);
	}
	return e ? e : xerr_newf(XE_INTERNAL_ERROR, "evacplan: no verdict for VM %s", vm->mv_ref);
}

static int state_init(struct state *st, const struct prep *p)
{
	if (ALLOC(st->left, p->nh) || ALLOC(st->added, p->nh) || ALLOC(st->gcount, p->nh * p->ng))
		return -1;
	for (size_t h = 0; h < p->nh; h++)
		st->left[h] = p->s->es_hosts[h].eh_host.mh_available;
	memcpy(st->gcount, p->h_gcount, p->nh * p->ng * sizeof *st->gcount);
	return 0;
}

/* ---- the API ------------------------------------------------------------ */

struct order_key {
	int64_t mem;
	const char *ref;
	size_t idx;
};

static int by_size(const void *a, const void *b)
{
	const struct order_key *x = a, *y = b;
	if (x->mem != y->mem)
		return x->mem > y->mem ? -1 : 1;
	int c = strcmp(x->ref, y->ref);
	if (c)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

void evacplan_free(struct evac_plan *pl)
{
	if (!pl)
		return;
	for (size_t i = 0; pl->pl_vms && i < pl->pl_nvms; i++)
		json_decref(pl->pl_vms[i].ep_error);
	free(pl->pl_vms);
	free(pl->pl_order);
	free(pl->pl_left);
	free(pl->pl_added);
	free(pl);
}

struct evac_plan *evacplan_plan(const struct evac_snapshot *s)
{
	struct prep p;
	struct state st = {0};
	struct order_key *keys = NULL;
	struct evac_plan *pl = calloc(1, sizeof *pl);
	memset(&p, 0, sizeof p);
	if (!pl || prep_init(&p, s) || state_init(&st, &p) || ALLOC(keys, p.nv) || ALLOC(pl->pl_vms, p.nv) ||
	    ALLOC(pl->pl_order, p.nv)) {
		prep_free(&p);
		free(st.left);
		free(st.added);
		free(st.gcount);
		free(keys);
		evacplan_free(pl);
		return NULL;
	}
	pl->pl_nvms = p.nv;
	pl->pl_nhosts = p.nh;
	for (size_t i = 0; i < p.nv; i++)
		keys[i] = (struct order_key){s->es_vms[i].ev_vm.mv_memory, s->es_vms[i].ev_vm.mv_ref, i};
	qsort(keys, p.nv, sizeof *keys, by_size);
	for (size_t k = 0; k < p.nv; k++) {
		size_t v = keys[k].idx;
		struct miss m;
		pl->pl_order[k] = v;
		size_t h = choose(&p, &st, v, NULL, &m);
		struct evac_place *ep = &pl->pl_vms[v];
		if (h == EVAC_NONE) {
			*ep = (struct evac_place){EVAC_NONE, 0, refusal(&p, v, &m)};
			pl->pl_failed++;
			continue;
		}
		*ep = (struct evac_place){h, keys[k].mem, NULL};
		st.left[h] -= keys[k].mem;
		st.added[h]++;
		if (p.v_group[v] != EVAC_NONE)
			st.gcount[h * p.ng + p.v_group[v]]++;
		pl->pl_placed++;
	}
	pl->pl_left = st.left;
	pl->pl_added = st.added;
	free(st.gcount);
	free(keys);
	prep_free(&p);
	return pl;
}

json_t *evacplan_pick(const struct evac_snapshot *s, size_t vm, const char *const *excluded, size_t nexcluded,
		      size_t *host)
{
	struct prep p;
	struct state st = {0};
	bool *ex = NULL;
	json_t *e = NULL;
	*host = EVAC_NONE;
	if (vm >= s->es_nvms)
		return xerr_newf(XE_INTERNAL_ERROR, "evacplan_pick: no VM %zu", vm);
	if (prep_init(&p, s) || state_init(&st, &p) || ALLOC(ex, p.nh)) {
		e = xerr_newf(XE_INTERNAL_ERROR, "evacplan_pick: out of memory");
	} else {
		for (size_t h = 0; h < p.nh; h++)
			for (size_t j = 0; j < nexcluded && !ex[h]; j++)
				ex[h] = strcmp(href(&p, h), excluded[j]) == 0;
		struct miss m;
		*host = choose(&p, &st, vm, ex, &m);
		if (*host == EVAC_NONE)
			e = refusal(&p, vm, &m);
	}
	free(ex);
	free(st.left);
	free(st.added);
	free(st.gcount);
	prep_free(&p);
	return e;
}

json_t *evacplan_failures_json(const struct evac_snapshot *s, const struct evac_plan *pl)
{
	json_t *o = json_object();
	for (size_t i = 0; i < pl->pl_nvms && i < s->es_nvms; i++)
		if (pl->pl_vms[i].ep_error)
			json_object_set(o, s->es_vms[i].ev_vm.mv_ref, pl->pl_vms[i].ep_error);
	return o;
}

int evacplan_verdict(const struct evac_snapshot *s, size_t vm, size_t host)
{
	struct prep p;
	int r = XE_INTERNAL_ERROR;
	memset(&p, 0, sizeof p);
	if (vm < s->es_nvms && host < s->es_nhosts && prep_init(&p, s) == 0) {
		enum stage sg = pair_stage(&p, vm, host);
		/* mig_check looks at memory between the CPU and the SRs */
		if ((sg == ST_OK || sg > ST_MEMORY) &&
		    s->es_vms[vm].ev_vm.mv_memory > s->es_hosts[host].eh_host.mh_available)
			sg = ST_MEMORY;
		r = sg == ST_OK ? -1 : (int)stage_code[sg];
	}
	prep_free(&p);
	return r;
}
