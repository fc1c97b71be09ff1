/*
 * bench/ha_plan - the HA failover planner (poold/haplan.c over place.c) on
 * 64 hosts and 2,000 protected VMs, next to the evacuation planner packing
 * one host's VMs on the same pool in the same run (the cost of one failure
 * tried).
 *
 * Shape (BENCH_HOSTS, BENCH_VMS override): 64 hosts of 512 GiB; 2,000
 * running protected VMs of 1-16 GiB spread round the hosts (~31 each,
 * ~265 GiB per host on average, so each host keeps about half free), two
 * CPU generations, 3 pool SRs, 2 networks, 10% of the VMs in one of 20
 * anti-affinity groups.
 *
 * Measures (median of 11 runs, min and max too):
 *   tolerance_ms     haplan_pool_new + haplan_tolerance: failures to
 *                    tolerate, exact while under the work bound, then the
 *                    slot approximation - what poold computes on every
 *                    change of the pool (target <= 200 ms)
 *   restart_plan_ms  haplan_restart of one host's protected VMs, that host
 *                    excluded (what the restart engine plans after a failure)
 *   admission_ms     haplan_admits_change of one VM started on one host at
 *                    the tolerance found (each candidate host of a VM.start
 *                    costs this under admission control)
 *   one_failure_ms   baseline: evacplan_plan of one host's VMs on the same
 *                    pool - one failure tried by a planner that rebuilds its
 *                    index each time
 * `--json` prints one JSON object; otherwise a table. Never pass/fail.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "haplan.h"

#define GIB (1LL << 30)
#define RUNS 11

static const char *const srs[] = {"OpaqueRef:sr0", "OpaqueRef:sr1", "OpaqueRef:sr2"};
static const char *const nets[] = {"OpaqueRef:net0", "OpaqueRef:net1"};
static const char *const gen1 = "1fcbfbff-f7fa3223-2d93fbff-00000023-00000001-000007ab-00000000-00000000-001000c8";
static const char *const gen2 = "1fcbfbff-f7fa3223-2d93fbff-00000023-00000001-000007ab-00000000-00000000-001000c0";

static int env_int(const char *name, int dflt)
{
	const char *v = getenv(name);
	return v && atoi(v) > 0 ? atoi(v) : dflt;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static uint64_t rnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return *s >> 33;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

struct stat3 {
	double med, min, max;
};

static struct stat3 stats(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_d);
	return (struct stat3){v[n / 2], v[0], v[n - 1]};
}

struct pool {
	struct place_host *h;
	struct place_vm *v;
	struct haplan_vm *hv;
	char (*href)[32], (*vref)[32], (*grp)[32];
	int nh, nv;
	struct place_pool pp;
};

static void build(struct pool *p, int nh, int nv)
{
	uint64_t s = 42;
	p->nh = nh;
	p->nv = nv;
	p->h = calloc((size_t)nh, sizeof *p->h);
	p->v = calloc((size_t)nv, sizeof *p->v);
	p->hv = calloc((size_t)nv, sizeof *p->hv);
	p->href = calloc((size_t)nh, sizeof *p->href);
	p->vref = calloc((size_t)nv, sizeof *p->vref);
	p->grp = calloc(20, sizeof *p->grp);
	for (int g = 0; g < 20; g++)
		snprintf(p->grp[g], sizeof p->grp[g], "OpaqueRef:group%02d", g);
	int64_t *held = calloc((size_t)nh, sizeof *held);
	for (int i = 0; i < nv; i++) {
		int home = i % nh;
		snprintf(p->vref[i], sizeof p->vref[i], "OpaqueRef:vm%05d", i);
		int64_t mem = (int64_t)(1 + rnd(&s) % 16) * GIB;
		held[home] += mem;
		p->v[i] = (struct place_vm){.pv_ref = p->vref[i], .pv_power_state = "Running", .pv_memory = mem,
					    .pv_boot_vendor = "GenuineIntel", .pv_boot_features = i % 3 ? gen2 : gen1,
					    .pv_srs = &srs[rnd(&s) % 3], .pv_nsrs = 1, .pv_networks = &nets[rnd(&s) % 2],
					    .pv_nnetworks = 1, .pv_group = rnd(&s) % 10 == 0 ? p->grp[rnd(&s) % 20] : NULL,
					    .pv_ha_protected = true};
		p->hv[i] = (struct haplan_vm){(size_t)i, HAPLAN_RESTART, 0, (size_t)home};
	}
	for (int h = 0; h < nh; h++) {
		snprintf(p->href[h], sizeof p->href[h], "OpaqueRef:host%03d", h);
		p->h[h] = (struct place_host){.ph_ref = p->href[h], .ph_enabled = true, .ph_live = true, .ph_has_agent = true,
					      .ph_vendor = "GenuineIntel", .ph_features = h % 2 ? gen1 : gen2,
					      .ph_version = "1.0", .ph_available = 512 * GIB - held[h], .ph_srs = srs,
					      .ph_nsrs = 3, .ph_networks = nets, .ph_nnetworks = 2};
	}
	free(held);
	p->pp = (struct place_pool){NULL, p->h, (size_t)nh, p->v, (size_t)nv, PLACE_START};
}

int main(int argc, char **argv)
{
	int json = argc > 1 && strcmp(argv[1], "--json") == 0;
	struct pool p;
	build(&p, env_int("BENCH_HOSTS", 64), env_int("BENCH_VMS", 2000));
	double tol[RUNS], rp[RUNS], adm[RUNS], one[RUNS];
	int k = -1;
	struct haplan_why why = {0};
	for (int r = 0; r < RUNS; r++) {
		double t = now_ms();
		struct haplan_pool *hp = haplan_pool_new(&p.pp, p.hv, (size_t)p.nv);
		haplan_why_clear(&why);
		k = haplan_tolerance(hp, p.nh - 1, &why);
		tol[r] = now_ms() - t;
		haplan_pool_free(hp);
	}
	/* host 0 fails: its VMs, everything else excluded from the plan */
	struct haplan_vm *mine = calloc((size_t)p.nv, sizeof *mine);
	size_t nmine = 0;
	for (int i = 0; i < p.nv; i++)
		if (p.hv[i].hv_home == 0)
			mine[nmine++] = p.hv[i];
	bool *ex = calloc((size_t)p.nh, sizeof *ex);
	ex[0] = true;
	size_t placed = 0;
	for (int r = 0; r < RUNS; r++) {
		double t = now_ms();
		struct evac_plan *pl = haplan_restart(&p.pp, mine, nmine, ex);
		rp[r] = now_ms() - t;
		placed = pl->pl_placed;
		evacplan_free(pl);
	}
	struct place_vm extra = p.v[0];
	extra.pv_ref = "OpaqueRef:new";
	extra.pv_power_state = "Halted";
	bool admitted = false;
	for (int r = 0; r < RUNS; r++) {
		struct haplan_change ch = {&extra, 1, PLACE_NONE, true, NULL, NULL};
		double t = now_ms();
		admitted = haplan_admits_change(&p.pp, p.hv, (size_t)p.nv, k, &ch);
		adm[r] = now_ms() - t;
	}
	/* baseline: host 0's VMs evacuated by the evacuation planner */
	struct place_vm *src = calloc(nmine + 1, sizeof *src);
	for (size_t i = 0; i < nmine; i++)
		src[i] = p.v[mine[i].hv_vm];
	struct place_pool ev = {&p.h[0], p.h, (size_t)p.nh, src, nmine, PLACE_MIGRATE};
	for (int r = 0; r < RUNS; r++) {
		double t = now_ms();
		struct evac_plan *pl = evacplan_plan(&ev);
		one[r] = now_ms() - t;
		evacplan_free(pl);
	}
	struct stat3 a = stats(tol, RUNS), b = stats(rp, RUNS), c = stats(adm, RUNS), d = stats(one, RUNS);
	if (json) {
		json_t *o = json_pack("{s:i, s:i, s:i, s:b, s:s, s:f, s:f, s:f, s:f, s:f, s:I, s:b, s:f, s:f}", "hosts", p.nh,
				      "vms", p.nv, "tolerates", k, "last_k_exact", why.hw_exact, "why_not_more", why.hw_text,
				      "tolerance_ms", a.med, "tolerance_ms_min", a.min, "tolerance_ms_max", a.max,
				      "restart_plan_ms", b.med, "admission_ms", c.med, "restart_placed", (json_int_t)placed,
				      "admitted", admitted, "one_failure_ms", d.med, "tolerance_over_one_failure",
				      a.med / (d.med > 0 ? d.med : 1));
		char *text = json_dumps(o, JSON_COMPACT);
		printf("%s\n", text);
		free(text);
		json_decref(o);
	} else {
		printf("ha_plan: %d hosts, %d protected VMs: tolerates %d host failure(s)\n", p.nh, p.nv, k);
		printf("  next one: %s (%s)\n", why.hw_text, why.hw_exact ? "exact" : "approximate");
		printf("  tolerance_ms     %8.2f (min %.2f, max %.2f; target <= 200)\n", a.med, a.min, a.max);
		printf("  restart_plan_ms  %8.2f (%zu of %zu VMs of host 0 placed)\n", b.med, placed, nmine);
		printf("  admission_ms     %8.2f (admitted: %s)\n", c.med, admitted ? "yes" : "no");
		printf("  one_failure_ms   %8.2f (baseline: evacplan of host 0's VMs; tolerance = %.0f x)\n", d.med,
		       a.med / (d.med > 0 ? d.med : 1));
	}
	haplan_why_clear(&why);
	free(src);
	free(ex);
	free(mine);
	return 0;
}
