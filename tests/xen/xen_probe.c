/*
 * xen_probe.c - the xen backend's calls that poold cannot ask an agent for
 * yet (a running VM's memory target and vCPUs; disk hot-plug), made on a
 * real Xen by the nested test (tests/xen/dom0_test.py) through the same
 * code the agent runs: backend_xen_new on the agent's own state directory
 * (so it sees the agent's domains, see agent/xen_owner.c), then one call.
 *
 *   xen-probe STATE_DIR host
 *   xen-probe STATE_DIR list
 *   xen-probe STATE_DIR memory VM_UUID MIB
 *   xen-probe STATE_DIR vcpus VM_UUID N
 *   xen-probe STATE_DIR disk-add VM_UUID PATH DEVICE
 *   xen-probe STATE_DIR disk-remove VM_UUID DEVICE
 *
 * Prints key=value lines; exits 0, or 1 with the backend's one-line reason
 * on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "log.h"

static int fail(struct backend *be, const char *what)
{
	fprintf(stderr, "xen-probe: %s: %s\n", what, be ? backend_error(be) : "no backend");
	return 1;
}

static int domid_of(struct backend *be, const char *uuid)
{
	struct be_domain_info *d = NULL;
	int n = 0, domid = -1;
	if (be->be_ops->bo_domain_list(be, &d, &n) != 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (strcmp(d[i].di_uuid, uuid) == 0)
			domid = d[i].di_domid;
	free(d);
	if (domid < 0)
		be_set_error(be, "VM %s has no domain of this agent", uuid);
	return domid;
}

static int host(struct backend *be)
{
	struct be_host_info hi;
	if (be->be_ops->bo_host_info(be, &hi) != 0)
		return fail(be, "host");
	printf("total=%llu\nfree=%llu\ncpus=%d\nvendor=%s\nfeatureset=%s\nbackend=%s\n",
	       (unsigned long long)hi.hi_total_memory, (unsigned long long)hi.hi_free_memory, hi.hi_cpus,
	       hi.hi_cpu_vendor, hi.hi_featureset, hi.hi_backend);
	return 0;
}

static int list(struct backend *be)
{
	struct be_domain_info *d = NULL;
	int n = 0;
	if (be->be_ops->bo_domain_list(be, &d, &n) != 0)
		return fail(be, "list");
	for (int i = 0; i < n; i++)
		printf("domid=%d uuid=%s name=%s state=%s memory=%llu target=%llu vcpus=%d\n", d[i].di_domid,
		       d[i].di_uuid, d[i].di_name, be_state_name(d[i].di_state), (unsigned long long)d[i].di_memory,
		       (unsigned long long)d[i].di_memory_target, d[i].di_vcpus);
	free(d);
	return 0;
}

static int on_domain(struct backend *be, int argc, char **argv)
{
	const char *cmd = argv[2];
	int domid = domid_of(be, argv[3]);
	if (domid < 0)
		return fail(be, cmd);
	int rc = -1;
	if (strcmp(cmd, "memory") == 0 && argc == 5)
		rc = be->be_ops->bo_set_memory_target(be, domid, strtoull(argv[4], NULL, 10) << 20);
	else if (strcmp(cmd, "vcpus") == 0 && argc == 5)
		rc = be->be_ops->bo_set_vcpus(be, domid, atoi(argv[4]));
	else if (strcmp(cmd, "disk-add") == 0 && argc == 6) {
		struct be_disk d;
		memset(&d, 0, sizeof d);
		snprintf(d.bd_path, sizeof d.bd_path, "%s", argv[4]);
		snprintf(d.bd_device, sizeof d.bd_device, "%s", argv[5]);
		rc = be->be_ops->bo_disk_add(be, domid, &d);
	} else if (strcmp(cmd, "disk-remove") == 0 && argc == 5)
		rc = be->be_ops->bo_disk_remove(be, domid, argv[4]);
	else {
		fprintf(stderr, "xen-probe: bad command\n");
		return 2;
	}
	if (rc != 0)
		return fail(be, cmd);
	printf("domid=%d\n", domid);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: xen-probe STATE_DIR host|list|memory|vcpus|disk-add|disk-remove ...\n");
		return 2;
	}
	log_init("xen-probe", LOG_LVL_WARN);
	char err[1024] = "";
	struct backend *be = backend_xen_new(argv[1], BACKEND_XEN_PRIVCMD, err, sizeof err);
	if (!be) {
		fprintf(stderr, "xen-probe: %s\n", err);
		return 1;
	}
	int rc;
	if (strcmp(argv[2], "host") == 0)
		rc = host(be);
	else if (strcmp(argv[2], "list") == 0)
		rc = list(be);
	else if (argc >= 4)
		rc = on_domain(be, argc, argv);
	else
		rc = 2;
	be->be_ops->bo_free(be);
	return rc;
}
