/*
 * bench/plan - the host evacuation planner (poold/evacplan.c, its checks and
 * pick in place.c) on a big pool, next to the plain cost of the
 * pre-migration checks in the same run.
 *
 * Shape (BENCH_HOSTS, BENCH_VMS, BENCH_EVAC override the counts):
 *   1,000 hosts, 20,000 running VMs; the host evacuated carries 300 of them,
 *   the rest are spread over the other hosts (~20 each, 2-16 GiB, so free
 *   memory varies from host to host). Hosts: 3 CPU generations (12-word
 *   feature sets, each a superset of the one before) and 5% of another
 *   vendor; versions lower / equal / higher than the source's; a few
 *   disabled, dead or evacuating; 3 pool-wide SRs, one SR per cluster of 50
 *   hosts, one local SR each; 4 pool networks plus 6 of 10 VLANs. VMs on the
 *   source: 1-32 GiB, booted with the lowest or the middle CPU level, disks
 *   on the pool SRs, 20% also on the source's cluster SR (50 hosts can take
 *   them), 2% on its local SR (none can), 1-2 networks, 20% in one of 30
 *   anti-affinity groups (whose VMs also live on other hosts), 1% nomigrate,
 *   0.5% PCI.
 *
 * Measures:
 *   plan_ms        evacplan_plan() + evacplan_free(): checks, biggest-first
 *                  worst-fit packing with anti-affinity, every error value;
 *                  median of 21 runs (min and max too)
 *   check_pass_ms  baseline: ONE call of place_assert() per (evacuated VM,
 *                  candidate host) pair, errors freed, no packing at all -
 *                  what a naive planner pays just to check each pair once
 *                  (it would pay it again for each placement round); median
 *                  of 5
 *   snapshot_ms    the caller's share: per-host VM counts and anti-affinity
 *                  group counts from the 20,000 VM records
 * `--json` prints one JSON object; otherwise a table. Never pass/fail.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cpuid.h"
#include "evacplan.h"
#include "xerr.h"

#define GIB (1LL << 30)
#define NGROUPS 30
#define CLUSTER 50
#define NPOOLNETS 4
#define NVLANS 10

static int env_int(const char *name, int dflt)
{
	const char *v = getenv(name);
	return v && atoi(v) > 0 ? atoi(v) : dflt;
}

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(uint32_t n)
{
	rnd_state = rnd_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)((rnd_state >> 33) % n);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d) {
		perror("strdup");
		exit(1);
	}
	return d;
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p) {
		perror("calloc");
		exit(1);
	}
	return p;
}

/* 12 words; each generation adds bits to the one before. */
static void featureset(int gen, char *out, size_t n)
{
	static const uint32_t base[12] = {0x1fcbfbff, 0xf7fa3203, 0x2d93fbff, 0x00000003, 0x00000001, 0x009c07ab,
					  0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000};
	size_t k = 0;
	for (int i = 0; i < 12; i++) {
		uint32_t w = base[i];
		if (gen >= 2)
			w |= i == 1 ? 0x20u : i == 6 ? 0x119u : i == 3 ? 0x20u : 0;
		if (gen >= 3)
			w |= i == 7 ? 0x4u : i == 9 ? 0x10u : i == 10 ? 0x1u : 0;
		k += (size_t)snprintf(out + k, n - k, "%s%08x", i ? "-" : "", w);
	}
}

struct resident {
	size_t host;
	const char *group;
};

int main(int argc, char **argv)
{
	int json = argc > 1 && strcmp(argv[1], "--json") == 0;
	size_t nhosts = (size_t)env_int("BENCH_HOSTS", 1000), nvms = (size_t)env_int("BENCH_VMS", 20000);
	size_t nevac = (size_t)env_int("BENCH_EVAC", 300);
	if (nhosts < 2 || nevac > nvms) {
		fprintf(stderr, "bench/plan: need 2+ hosts and BENCH_EVAC <= BENCH_VMS\n");
		return 1;
	}
	char gen_text[4][CPUID_TEXT_MAX];
	for (int g = 1; g <= 3; g++)
		featureset(g, gen_text[g], sizeof gen_text[g]);
	const char *pool_srs[3] = {"OpaqueRef:sr-nfs-0", "OpaqueRef:sr-nfs-1", "OpaqueRef:sr-nfs-2"};
	char **groups = xcalloc(NGROUPS, sizeof *groups), buf[96];
	for (int g = 0; g < NGROUPS; g++) {
		snprintf(buf, sizeof buf, "OpaqueRef:vm-group-%02d", g);
		groups[g] = xstrdup(buf);
	}
	size_t nnets = NPOOLNETS + NVLANS;
	char **nets = xcalloc(nnets, sizeof *nets);
	for (size_t i = 0; i < nnets; i++) {
		snprintf(buf, sizeof buf, "OpaqueRef:network-%02zu", i);
		nets[i] = xstrdup(buf);
	}
	size_t nclusters = (nhosts + CLUSTER - 1) / CLUSTER;
	char **cluster_sr = xcalloc(nclusters, sizeof *cluster_sr);
	for (size_t c = 0; c < nclusters; c++) {
		snprintf(buf, sizeof buf, "OpaqueRef:sr-iscsi-%03zu", c);
		cluster_sr[c] = xstrdup(buf);
	}

	/* hosts; host 0 is the one evacuated (it stays in the list, as the
	 * caller would pass every host of the pool) */
	struct place_host *hosts = xcalloc(nhosts, sizeof *hosts);
	char **local_sr = xcalloc(nhosts, sizeof *local_sr);
	const char **host_srs = xcalloc(nhosts * 5, sizeof *host_srs);
	const char **host_nets = xcalloc(nhosts * (NPOOLNETS + 6), sizeof *host_nets);
	int64_t *total = xcalloc(nhosts, sizeof *total);
	for (size_t h = 0; h < nhosts; h++) {
		struct place_host *m = &hosts[h];
		snprintf(buf, sizeof buf, "OpaqueRef:host-%08zx-0000-4000-8000-%012zx", h * 2654435761u % 0xffffffffu, h);
		m->ph_ref = xstrdup(buf);
		snprintf(buf, sizeof buf, "OpaqueRef:sr-local-%04zu", h);
		local_sr[h] = xstrdup(buf);
		uint32_t r = rnd(1000);
		m->ph_enabled = r >= 20;
		m->ph_live = r < 20 || r >= 30;
		m->ph_evacuating = r >= 30 && r < 40;
		m->ph_has_agent = true;
		m->ph_vendor = rnd(100) < 5 ? "AuthenticAMD" : "GenuineIntel";
		uint32_t g = rnd(10);
		m->ph_features = gen_text[g < 3 ? 1 : g < 7 ? 2 : 3];
		uint32_t v = rnd(10);
		m->ph_version = v == 0 ? "8.2.0" : v < 7 ? "8.2.1" : "8.3.0";
		const char **s = &host_srs[h * 5];
		s[0] = pool_srs[0];
		s[1] = pool_srs[1];
		s[2] = pool_srs[2];
		s[3] = cluster_sr[h / CLUSTER];
		s[4] = local_sr[h];
		m->ph_srs = s;
		m->ph_nsrs = 5;
		const char **n = &host_nets[h * (NPOOLNETS + 6)];
		for (size_t i = 0; i < NPOOLNETS; i++)
			n[i] = nets[i];
		for (size_t i = 0; i < 6; i++)
			n[NPOOLNETS + i] = nets[NPOOLNETS + (h + i * 3) % NVLANS];
		hosts[h].ph_networks = n;
		hosts[h].ph_nnetworks = NPOOLNETS + 6;
		total[h] = (int64_t)(192 + 64 * rnd(3)) * GIB;
		m->ph_available = total[h];
	}
	struct place_host source = hosts[0];
	source.ph_enabled = false;
	source.ph_evacuating = true;
	source.ph_version = "8.2.1";
	source.ph_vendor = "GenuineIntel";
	source.ph_features = gen_text[2];
	hosts[0] = source;

	/* the pool's VMs: the first nevac on the source, the rest elsewhere */
	struct resident *res = xcalloc(nvms, sizeof *res);
	struct place_vm *evac = xcalloc(nevac, sizeof *evac);
	const char **vm_srs = xcalloc(nevac * 3, sizeof *vm_srs);
	const char **vm_nets = xcalloc(nevac * 2, sizeof *vm_nets);
	static const int sizes[] = {1, 2, 2, 4, 4, 4, 8, 8, 16, 32};
	for (size_t i = 0; i < nvms; i++) {
		size_t h = i < nevac ? 0 : 1 + rnd((uint32_t)(nhosts - 1));
		res[i].host = h;
		bool grouped = i < nevac ? rnd(100) < 20 : rnd(100) < 10;
		res[i].group = grouped ? groups[rnd(NGROUPS)] : NULL;
		if (i >= nevac) {
			int64_t mem = (int64_t)(2 + rnd(15)) * GIB;
			hosts[h].ph_available -= mem;
			continue;
		}
		struct place_vm *m = &evac[i];
		snprintf(buf, sizeof buf, "OpaqueRef:vm-%08zx-1111-4000-8000-%012zx", i * 40503u, i);
		m->pv_ref = xstrdup(buf);
		m->pv_power_state = "Running";
		m->pv_resident_on = source.ph_ref;
		uint32_t r = rnd(1000);
		m->pv_nomigrate = r < 10;
		m->pv_has_pci = r >= 10 && r < 15;
		m->pv_memory = sizes[rnd(10)] * GIB;
		m->pv_boot_vendor = "GenuineIntel";
		m->pv_boot_features = gen_text[rnd(10) < 7 ? 1 : 2];
		const char **s = &vm_srs[i * 3];
		size_t ns = 1 + rnd(2);
		for (size_t k = 0; k < ns; k++)
			s[k] = pool_srs[rnd(3)];
		uint32_t st = rnd(100);
		if (st < 20)
			s[ns++] = cluster_sr[0];
		else if (st < 22)
			s[ns++] = local_sr[0];
		m->pv_srs = s;
		m->pv_nsrs = ns;
		const char **n = &vm_nets[i * 2];
		n[0] = nets[rnd(NPOOLNETS)];
		m->pv_nnetworks = 1;
		if (rnd(3) == 0)
			n[m->pv_nnetworks++] = nets[NPOOLNETS + rnd(NVLANS)];
		m->pv_networks = n;
		m->pv_group = res[i].group;
	}

	/* the caller's share: counts per host from the VM records */
	double t0 = now_ms();
	struct place_group_count *gcounts = xcalloc(nhosts * NGROUPS, sizeof *gcounts);
	for (size_t h = 0; h < nhosts; h++) {
		hosts[h].ph_nresident = 0;
		hosts[h].ph_groups = &gcounts[h * NGROUPS];
		hosts[h].ph_ngroups = 0;
	}
	for (size_t i = 0; i < nvms; i++) {
		struct place_host *h = &hosts[res[i].host];
		h->ph_nresident++;
		if (!res[i].group)
			continue;
		struct place_group_count *gc = &gcounts[res[i].host * NGROUPS];
		size_t k = 0;
		while (k < h->ph_ngroups && strcmp(gc[k].gc_group, res[i].group))
			k++;
		if (k == h->ph_ngroups)
			gc[h->ph_ngroups++] = (struct place_group_count){res[i].group, 0};
		gc[k].gc_count++;
	}
	double snapshot_ms = now_ms() - t0;
	struct place_pool snap = {&source, hosts, nhosts, evac, nevac, PLACE_MIGRATE};

	/* baseline: one place_assert per pair */
	double check[5];
	size_t pairs = 0, pairs_ok = 0;
	for (int run = 0; run < 5; run++) {
		t0 = now_ms();
		pairs = pairs_ok = 0;
		for (size_t i = 0; i < nevac; i++)
			for (size_t h = 1; h < nhosts; h++) {
				json_t *e = place_assert(&evac[i], &source, &hosts[h], PLACE_MIGRATE);
				pairs++;
				pairs_ok += e == NULL;
				json_decref(e);
			}
		check[run] = now_ms() - t0;
	}
	qsort(check, 5, sizeof *check, cmp_double);

	/* the planner */
	enum { RUNS = 21 };
	double plan[RUNS];
	size_t placed = 0, failed = 0, targets = 0, most = 0, aa_shared = 0;
	size_t by_code[XE__COUNT] = {0};
	for (int run = 0; run < RUNS; run++) {
		t0 = now_ms();
		struct evac_plan *p = evacplan_plan(&snap);
		if (!p) {
			fprintf(stderr, "bench/plan: out of memory\n");
			return 1;
		}
		if (run == 0) {
			placed = p->pl_placed;
			failed = p->pl_failed;
			for (size_t h = 0; h < nhosts; h++) {
				targets += p->pl_added[h] > 0;
				most = p->pl_added[h] > most ? p->pl_added[h] : most;
			}
			for (size_t i = 0; i < nevac; i++) {
				if (p->pl_vms[i].ep_error) {
					int c = xerr_code_from_name(xerr_code_of(p->pl_vms[i].ep_error));
					if (c >= 0)
						by_code[c]++;
					continue;
				}
				if (!evac[i].pv_group)
					continue;
				/* placed next to a VM of its group (resident or planned)? */
				size_t h = p->pl_vms[i].ep_host, n = 0;
				for (size_t k = 0; k < hosts[h].ph_ngroups; k++)
					if (strcmp(hosts[h].ph_groups[k].gc_group, evac[i].pv_group) == 0)
						n += hosts[h].ph_groups[k].gc_count;
				for (size_t j = 0; j < nevac; j++)
					n += j != i && p->pl_vms[j].ep_host == h && evac[j].pv_group &&
					     strcmp(evac[j].pv_group, evac[i].pv_group) == 0;
				aa_shared += n > 0;
			}
		}
		evacplan_free(p);
		plan[run] = now_ms() - t0;
	}
	qsort(plan, RUNS, sizeof *plan, cmp_double);
	double plan_ms = plan[RUNS / 2], check_ms = check[2];

	if (json) {
		json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:I, s:f, s:f}", "hosts",
				      (json_int_t)nhosts, "vms", (json_int_t)nvms, "evacuated", (json_int_t)nevac,
				      "placed", (json_int_t)placed, "unplaceable", (json_int_t)failed, "targets_used",
				      (json_int_t)targets, "most_on_one_host", (json_int_t)most, "plan_ms", plan_ms,
				      "plan_ms_min", plan[0], "plan_ms_max", plan[RUNS - 1], "check_pass_ms", check_ms,
				      "check_pairs", (json_int_t)pairs, "plan_over_check", plan_ms / check_ms,
				      "snapshot_ms", snapshot_ms);
		json_t *errs = json_object();
		for (int c = 0; c < XE__COUNT; c++)
			if (by_code[c])
				json_object_set_new(errs, xerr_code_name(c), json_integer((json_int_t)by_code[c]));
		json_object_set_new(o, "unplaceable_by_error", errs);
		json_object_set_new(o, "grouped_placed_next_to_own_group", json_integer((json_int_t)aa_shared));
		char *t = json_dumps(o, JSON_COMPACT);
		printf("%s\n", t);
		free(t);
		json_decref(o);
	} else {
		printf("evacuation plan: %zu hosts, %zu VMs, %zu on the host evacuated\n"
		       "  plan_ms (median of %d)          %8.2f ms  (min %.2f, max %.2f)\n"
		       "  check_pass_ms (baseline)       %8.2f ms  one place_assert per pair, %zu pairs (%zu pass), no packing\n"
		       "  plan / baseline                %8.2f\n"
		       "  snapshot_ms (caller's counts)  %8.2f ms  from %zu VM records\n"
		       "  placed %zu, unplaceable %zu, on %zu hosts, at most %zu on one; grouped VMs next to their group: %zu\n",
		       nhosts, nvms, nevac, RUNS, plan_ms, plan[0], plan[RUNS - 1], check_ms, pairs, pairs_ok,
		       plan_ms / check_ms, snapshot_ms, nvms, placed, failed, targets, most, aa_shared);
		for (int c = 0; c < XE__COUNT; c++)
			if (by_code[c])
				printf("    %-36s %zu\n", xerr_code_name(c), by_code[c]);
	}

	for (size_t h = 0; h < nhosts; h++) {
		free((char *)hosts[h].ph_ref);
		free(local_sr[h]);
	}
	for (size_t i = 0; i < nevac; i++)
		free((char *)evac[i].pv_ref);
	for (int g = 0; g < NGROUPS; g++)
		free(groups[g]);
	for (size_t i = 0; i < nnets; i++)
		free(nets[i]);
	for (size_t c = 0; c < nclusters; c++)
		free(cluster_sr[c]);
	free(groups);
	free(nets);
	free(cluster_sr);
	free(hosts);
	free(local_sr);
	free(host_srs);
	free(host_nets);
	free(total);
	free(res);
	free(evac);
	free(vm_srs);
	free(vm_nets);
	free(gcounts);
	return 0;
}
