/* test_snapshot.c - poold/snapshot.c: the pool placement sees, read from a
 * real store: each host's free memory, SRs, networks (XAPI's rule for
 * networks without PIFs), VMs and groups; each VM's facts; the three
 * shapes (a start, a migration, an evacuation); a host ref that is not a
 * host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "poold.h"
#include "xerr.h"

#define M (1LL << 20)

struct fx {
	char dir[64], path[128];
	struct db *db;
	char h1[64], h2[64], sr_shared[64], sr_local[64], net_phys[64], net_internal[64], net_unmanaged[64],
		net_shared[64], net_idle[64], grp[64], vm_a[64], vm_b[64], vm_c[64], dom0[64];
};

static void create(struct fx *f, const char *cls, json_t *rec, char *ref)
{
	char tmp[64];
	json_t *e = db_obj_create_new(f->db, cls, rec, ref ? ref : tmp);
	if (e) {
		char *t = json_dumps(e, 0);
		fail_msg("create %s: %s", cls, t);
	}
}

static void add_host(struct fx *f, char *ref, const char *name, json_int_t total, json_int_t free_, bool live,
		     const char *agent)
{
	char m[64];
	create(f, "host_metrics", json_pack("{s:I, s:I, s:b}", "memory_total", total, "memory_free", free_, "live", live),
	       m);
	create(f, "host",
	       json_pack("{s:s, s:s, s:b, s:{s:s}, s:{s:s, s:s}, s:{s:s}}", "name_label", name, "metrics", m, "enabled", 1,
			 "other_config", "agent_address", agent, "cpu_info", "vendor", "GenuineIntel", "features",
			 "1fcbfbff-f7fa3223", "software_version", "product_version", "1.2.0"),
	       ref);
}

static void add_vm(struct fx *f, char *ref, const char *name, const char *power, const char *on, const char *sched,
		   json_int_t mem)
{
	create(f, "VM",
	       json_pack("{s:s, s:s, s:s, s:s, s:I, s:{s:s, s:s}}", "name_label", name, "power_state", power, "resident_on",
			 on, "scheduled_to_be_resident_on", sched, "memory_static_max", mem, "last_boot_CPU_flags", "vendor",
			 "GenuineIntel", "features", "1fcbfbff"),
	       ref);
}

static void add_vif(struct fx *f, const char *vm, const char *net)
{
	create(f, "VIF", json_pack("{s:s, s:s, s:s}", "VM", vm, "network", net, "device", "0"), NULL);
}

static void add_disk(struct fx *f, const char *vm, const char *sr, bool empty)
{
	char vdi[64] = MODEL_NULL_REF;
	if (!empty)
		create(f, "VDI", json_pack("{s:s, s:I}", "SR", sr, "virtual_size", (json_int_t)M), vdi);
	create(f, "VBD", json_pack("{s:s, s:s, s:b, s:s}", "VM", vm, "VDI", vdi, "empty", empty, "userdevice", "0"), NULL);
}

/* h1: 4096 MiB, 3000 free; vm_a (1024, running, group) and dom0 there,
 * vm_b (512) scheduled there. h2: 2048 MiB, 2048 free, not live, no
 * agent, evacuating. The shared SR plugged on both, the local one on h1
 * only (its PBD on h2 unplugged). */
static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/test_snapshot.XXXXXX");
	if (!f || !mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof f->path, "%s/pool.db", f->dir);
	char err[256] = "";
	if (!(f->db = db_open(f->path, true, err, sizeof err)))
		return -1;
	add_host(f, f->h1, "h1", 4096 * M, 3000 * M, true, "127.0.0.1");
	add_host(f, f->h2, "h2", 2048 * M, 2048 * M, false, "");
	json_decref(db_obj_set(f->db, f->h2, "current_operations", json_pack("{s:s}", "OpaqueRef:task", "evacuate")));
	create(f, "SR", json_pack("{s:s}", "name_label", "shared"), f->sr_shared);
	create(f, "SR", json_pack("{s:s}", "name_label", "local"), f->sr_local);
	create(f, "PBD", json_pack("{s:s, s:s, s:b}", "host", f->h1, "SR", f->sr_shared, "currently_attached", 1), NULL);
	create(f, "PBD", json_pack("{s:s, s:s, s:b}", "host", f->h2, "SR", f->sr_shared, "currently_attached", 1), NULL);
	create(f, "PBD", json_pack("{s:s, s:s, s:b}", "host", f->h1, "SR", f->sr_local, "currently_attached", 1), NULL);
	create(f, "PBD", json_pack("{s:s, s:s, s:b}", "host", f->h2, "SR", f->sr_local, "currently_attached", 0), NULL);
	create(f, "network", json_pack("{s:s, s:s}", "name_label", "phys", "bridge", "xenbr0"), f->net_phys);
	create(f, "PIF", json_pack("{s:s, s:s, s:s}", "host", f->h1, "network", f->net_phys, "device", "eth0"), NULL);
	create(f, "network", json_pack("{s:s, s:s}", "name_label", "internal", "bridge", "xapi1"), f->net_internal);
	create(f, "network", json_pack("{s:s, s:s, s:b}", "name_label", "unmanaged", "bridge", "br9", "managed", 0),
	       f->net_unmanaged);
	create(f, "network",
	       json_pack("{s:s, s:s, s:{s:s}}", "name_label", "shared", "bridge", "xapi2", "other_config",
			 "assume_network_is_shared", "true"),
	       f->net_shared);
	create(f, "network", json_pack("{s:s, s:s}", "name_label", "idle", "bridge", "xapi3"), f->net_idle);
	create(f, "VM_group", json_pack("{s:s, s:s}", "name_label", "aa", "placement", "anti_affinity"), f->grp);
	add_vm(f, f->vm_a, "a", "Running", f->h1, MODEL_NULL_REF, 1024 * M);
	json_decref(db_obj_set(f->db, f->vm_a, "groups", json_pack("[s]", f->grp)));
	add_vif(f, f->vm_a, f->net_internal); /* pins the internal network to h1 */
	add_vm(f, f->vm_b, "b", "Halted", MODEL_NULL_REF, f->h1, 512 * M);
	add_vm(f, f->dom0, "dom0", "Running", f->h1, MODEL_NULL_REF, 0);
	json_decref(db_obj_set(f->db, f->dom0, "is_control_domain", json_true()));
	add_vm(f, f->vm_c, "c", "Halted", MODEL_NULL_REF, MODEL_NULL_REF, 256 * M);
	json_decref(db_obj_set(f->db, f->vm_c, "groups", json_pack("[s]", f->grp)));
	add_disk(f, f->vm_c, f->sr_local, false);
	add_disk(f, f->vm_c, f->sr_shared, false);
	add_disk(f, f->vm_c, NULL, true); /* an empty drive needs no SR */
	add_vif(f, f->vm_c, f->net_phys);
	add_vif(f, f->vm_c, f->net_internal);
	add_vif(f, f->vm_c, f->net_unmanaged);
	add_vif(f, f->vm_c, f->net_shared);
	add_vif(f, f->vm_c, f->net_idle); /* internal, nobody runs on it: anywhere */
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	db_close(f->db);
	const char *sfx[] = {"", "-wal", "-shm", "-journal"};
	for (size_t i = 0; i < 4; i++) {
		char p[160];
		snprintf(p, sizeof p, "%s%s", f->path, sfx[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

static const struct place_host *host_of(const struct snap *sn, const char *ref)
{
	for (size_t i = 0; i < sn->sn_pool.pp_nhosts; i++)
		if (strcmp(sn->sn_pool.pp_hosts[i].ph_ref, ref) == 0)
			return &sn->sn_pool.pp_hosts[i];
	fail_msg("host %s not in the snapshot", ref);
	return NULL;
}

static bool has(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

static void test_start(void **state)
{
	struct fx *f = *state;
	struct snap sn;
	json_t *vms = json_pack("[s]", f->vm_c);
	assert_null(snap_build(f->db, NULL, vms, NULL, PLACE_START, &sn));
	json_decref(vms);
	const struct place_pool *p = &sn.sn_pool;
	assert_null(p->pp_source);
	assert_int_equal(p->pp_nhosts, 2);
	assert_int_equal(p->pp_nvms, 1);
	assert_int_equal(p->pp_flags, PLACE_START);
	/* h1: min(4096 - 1024 - 0 (dom0) - 512 scheduled, 3000 reported) */
	const struct place_host *h1 = host_of(&sn, f->h1), *h2 = host_of(&sn, f->h2);
	assert_true(h1->ph_available == 2560 * M);
	assert_true(h1->ph_enabled && h1->ph_live && h1->ph_has_agent && !h1->ph_evacuating);
	assert_string_equal(h1->ph_vendor, "GenuineIntel");
	assert_string_equal(h1->ph_features, "1fcbfbff-f7fa3223");
	assert_string_equal(h1->ph_version, "1.2.0");
	assert_int_equal(h1->ph_nresident, 2);
	assert_int_equal(h1->ph_ngroups, 1);
	assert_string_equal(h1->ph_groups[0].gc_group, f->grp);
	assert_int_equal(h1->ph_groups[0].gc_count, 1);
	assert_int_equal(h1->ph_nsrs, 2);
	assert_true(has(h1->ph_srs, 2, f->sr_local) && has(h1->ph_srs, 2, f->sr_shared));
	assert_true(has(h1->ph_networks, h1->ph_nnetworks, f->net_phys));
	assert_true(has(h1->ph_networks, h1->ph_nnetworks, f->net_internal));
	/* h2: not live, no agent, evacuating; the local SR's PBD unplugged */
	assert_true(h2->ph_available == 2048 * M);
	assert_true(!h2->ph_live && !h2->ph_has_agent && h2->ph_evacuating);
	assert_int_equal(h2->ph_nresident, 0);
	assert_int_equal(h2->ph_nsrs, 1);
	assert_string_equal(h2->ph_srs[0], f->sr_shared);
	assert_int_equal(h2->ph_nnetworks, 0);
	/* vm_c: its disks' SRs, the networks a host must have */
	const struct place_vm *c = &p->pp_vms[0];
	assert_string_equal(c->pv_ref, f->vm_c);
	assert_string_equal(c->pv_power_state, "Halted");
	assert_true(c->pv_memory == 256 * M);
	assert_false(c->pv_busy || c->pv_template || c->pv_nomigrate || c->pv_has_pci || c->pv_has_vusb);
	assert_string_equal(c->pv_boot_features, "1fcbfbff");
	assert_string_equal(c->pv_group, f->grp);
	assert_int_equal(c->pv_nsrs, 2);
	assert_true(has(c->pv_srs, 2, f->sr_local) && has(c->pv_srs, 2, f->sr_shared));
	assert_int_equal(c->pv_nnetworks, 2);
	assert_true(has(c->pv_networks, 2, f->net_phys) && has(c->pv_networks, 2, f->net_internal));
	/* and placement says: h1 */
	size_t h;
	assert_null(place_choose(p, 0, NULL, 0, &h));
	assert_string_equal(p->pp_hosts[h].ph_ref, f->h1);
	snap_free(&sn);
	snap_free(&sn); /* a freed snapshot is empty */
}

static void test_migrate_and_bad_host(void **state)
{
	struct fx *f = *state;
	struct snap sn;
	json_t *vms = json_pack("[s]", f->vm_a), *hosts = json_pack("[s]", f->h2);
	assert_null(snap_build(f->db, f->h1, vms, hosts, PLACE_MIGRATE | PLACE_FORCE, &sn));
	const struct place_pool *p = &sn.sn_pool;
	assert_non_null(p->pp_source);
	assert_string_equal(p->pp_source->ph_ref, f->h1);
	assert_int_equal(p->pp_nhosts, 1);
	const struct place_vm *a = &p->pp_vms[0];
	assert_string_equal(a->pv_resident_on, f->h1);
	assert_int_equal(a->pv_nnetworks, 1); /* its internal network: pinned to h1, where it runs */
	json_t *e = place_assert(a, p->pp_source, &p->pp_hosts[0], p->pp_flags);
	assert_string_equal(xerr_code_of(e), "HOST_EVACUATE_IN_PROGRESS");
	json_decref(e);
	snap_free(&sn);
	json_decref(hosts);
	/* a ref that is not a host */
	hosts = json_pack("[s]", f->vm_b);
	e = snap_build(f->db, f->h1, vms, hosts, PLACE_MIGRATE, &sn);
	assert_non_null(e);
	assert_string_equal(xerr_code_of(e), "HANDLE_INVALID");
	json_decref(e);
	snap_free(&sn);
	json_decref(hosts);
	json_decref(vms);
	/* vm_b holds a reservation: busy */
	vms = json_pack("[s, s]", f->vm_b, "OpaqueRef:gone");
	assert_null(snap_build(f->db, NULL, vms, NULL, PLACE_START, &sn));
	assert_true(sn.sn_pool.pp_vms[0].pv_busy);
	assert_string_equal(sn.sn_pool.pp_vms[1].pv_power_state, ""); /* a VM gone meanwhile */
	snap_free(&sn);
	json_decref(vms);
}

static void test_evacuation(void **state)
{
	struct fx *f = *state;
	struct snap sn;
	assert_null(snap_build(f->db, f->h1, NULL, NULL, PLACE_MIGRATE, &sn));
	const struct place_pool *p = &sn.sn_pool;
	/* every VM on h1 but the control domain; every host but h1 */
	assert_int_equal(p->pp_nvms, 1);
	assert_string_equal(p->pp_vms[0].pv_ref, f->vm_a);
	assert_int_equal(p->pp_nhosts, 1);
	assert_string_equal(p->pp_hosts[0].ph_ref, f->h2);
	assert_string_equal(p->pp_source->ph_ref, f->h1);
	snap_free(&sn);
	json_t *arr = json_pack("[s, s]", "a", "b");
	const char **strs = snap_strings(arr);
	assert_string_equal(strs[1], "b");
	free(strs); /* the strings are arr's */
	json_decref(arr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_and_bad_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evacuation, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
