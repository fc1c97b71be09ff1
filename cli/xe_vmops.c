/*
 * xe_vmops.c - the xe commands of a VM's life beyond start and stop, with
 * cli_frontend.ml's parameters: vm-reboot, vm-suspend, vm-resume,
 * vm-reset-powerstate.
 */
#include <stdlib.h>
#include <string.h>
#include "xe.h"
#include "util.h"

/* XAPI's fail_without_force. */
static int need_force(struct xe_ctx *c)
{
	bool force;
	if (xe_bool_param(c, "force", false, &force))
		return -1;
	return force ? 0
		     : xe_fail(c, "This operation is dangerous and may cause data loss. This operation must be forced "
				  "(use --force).");
}

static int reboot_one(struct xe_ctx *c, const char *vm, void *arg)
{
	return xe_void_result(xe_rpc(c, *(bool *)arg ? "VM.hard_reboot" : "VM.clean_reboot", "s", vm));
}

int xe_cmd_vm_reboot(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	bool force;
	return xe_bool_param(c, "force", false, &force) ? -1 : xe_each(c, cmd, true, reboot_one, &force);
}

static int suspend_one(struct xe_ctx *c, const char *vm, void *arg)
{
	(void)arg;
	return xe_void_result(xe_rpc(c, "VM.suspend", "s", vm));
}

int xe_cmd_vm_suspend(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	return xe_each(c, cmd, true, suspend_one, NULL);
}

struct resume_arg {
	char *host;
	bool force;
};

static int resume_one(struct xe_ctx *c, const char *vm, void *arg)
{
	struct resume_arg *r = arg;
	if (r->host)
		return xe_void_result(xe_rpc(c, "VM.resume_on", "ssbb", vm, r->host, 0, r->force));
	return xe_void_result(xe_rpc(c, "VM.resume", "sbb", vm, 0, r->force));
}

int xe_cmd_vm_resume(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	struct resume_arg r = {NULL, false};
	const char *on = xe_param(c, "on");
	if (xe_bool_param(c, "force", false, &r.force))
		return -1;
	if (on && !(r.host = xe_host_by_name_or_id(c, on)))
		return -1;
	int rc = xe_each(c, cmd, true, resume_one, &r);
	free(r.host);
	return rc;
}

static int reset_one(struct xe_ctx *c, const char *vm, void *arg)
{
	(void)arg;
	return xe_void_result(xe_rpc(c, "VM.power_state_reset", "s", vm));
}

int xe_cmd_vm_reset_powerstate(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	return need_force(c) ? -1 : xe_each(c, cmd, true, reset_one, NULL);
}

/* ---- snapshots and copies ---- */

static char *str_of(json_t *r)
{
	char *s = json_is_string(r) ? xstrdup(json_string_value(r)) : NULL;
	json_decref(r);
	return s;
}

/* The new VM's description (new-name-description) and its uuid printed. */
static int made_vm(struct xe_ctx *c, char *ref)
{
	const char *desc = xe_param(c, "new-name-description");
	int rc = ref ? 0 : -1;
	if (ref && desc)
		rc = xe_void_result(xe_rpc(c, "VM.set_name_description", "ss", ref, desc));
	if (!rc)
		rc = xe_print_uuid(c, "VM", ref);
	free(ref);
	return rc;
}

struct snap_arg {
	const char *method;
	json_t *ignore; /* VDI refs (vm-snapshot's ignore-vdi-uuids) */
	char *sr;       /* vm-copy's sr-uuid */
};

static int snapshot_one(struct xe_ctx *c, const char *vm, void *arg)
{
	struct snap_arg *a = arg;
	const char *name = xe_param(c, "new-name-label");
	json_t *r = a->sr	 ? xe_rpc(c, a->method, "sss", vm, name, a->sr)
		    : a->ignore ? xe_rpc(c, a->method, "ssO", vm, name, a->ignore)
				: xe_rpc(c, a->method, "ss", vm, name);
	return made_vm(c, str_of(r));
}

/* ignore-vdi-uuids=U1,U2 as VDI refs. */
static json_t *ignored_vdis(struct xe_ctx *c)
{
	const char *list = xe_param(c, "ignore-vdi-uuids");
	json_t *out = json_array();
	char *copy = xstrdup(list ? list : ""), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t && out; t = strtok_r(NULL, ",", &save)) {
		char *ref = xe_ref_by_uuid(c, "VDI", t);
		if (!ref) {
			json_decref(out);
			out = NULL;
			break;
		}
		json_array_append_new(out, json_string(ref));
		free(ref);
	}
	free(copy);
	return out;
}

int xe_cmd_vm_snapshot(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	struct snap_arg a = {"VM.snapshot", ignored_vdis(c), NULL};
	int rc = a.ignore ? xe_each(c, cmd, true, snapshot_one, &a) : -1;
	json_decref(a.ignore);
	return rc;
}

int xe_cmd_vm_checkpoint(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	struct snap_arg a = {"VM.checkpoint", NULL, NULL};
	return xe_each(c, cmd, true, snapshot_one, &a);
}

int xe_cmd_vm_copy(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	const char *su = xe_param(c, "sr-uuid");
	struct snap_arg a = {"VM.copy", NULL, su ? xe_ref_by_uuid(c, "SR", su) : xstrdup(MODEL_NULL_REF)};
	int rc = a.sr ? xe_each(c, cmd, true, snapshot_one, &a) : -1;
	free(a.sr);
	return rc;
}

int xe_cmd_snapshot_revert(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	char *snap = xe_snapshot_select(c);
	int rc = snap ? xe_void_result(xe_rpc(c, "VM.revert", "s", snap)) : -1;
	free(snap);
	return rc;
}

/* snapshot-destroy: the record only, its disks stay (as XAPI). */
int xe_cmd_snapshot_destroy(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	char *snap = xe_snapshot_select(c);
	json_t *ps = snap ? xe_rpc(c, "VM.get_power_state", "s", snap) : NULL;
	int rc = ps ? 0 : -1;
	if (!rc && strcmp(json_string_value(ps) ?: "", "Halted"))
		rc = xe_void_result(xe_rpc(c, "VM.hard_shutdown", "s", snap));
	if (!rc)
		rc = xe_void_result(xe_rpc(c, "VM.destroy", "s", snap));
	json_decref(ps);
	free(snap);
	return rc;
}

/* snapshot-clone / snapshot-copy: a new template from a snapshot. */
int xe_cmd_snapshot_clone(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	bool copy = strcmp(cmd->name, "snapshot-copy") == 0;
	const char *su = copy ? xe_param(c, "sr-uuid") : NULL;
	char *snap = xe_snapshot_select(c), *sr = su ? xe_ref_by_uuid(c, "SR", su) : xstrdup(MODEL_NULL_REF);
	const char *name = xe_param(c, "new-name-label");
	char *ref = NULL;
	if (snap && sr)
		ref = str_of(copy ? xe_rpc(c, "VM.copy", "sss", snap, name, sr) : xe_rpc(c, "VM.clone", "ss", snap, name));
	free(snap);
	free(sr);
	return made_vm(c, ref);
}

/* ---- memory and vCPUs ---- */

/* A size parameter (XAPI's bytes_of_string); -1 with the error. */
static long long size_param(struct xe_ctx *c, const char *key)
{
	const char *v = xe_param(c, key);
	long long n = v ? xe_parse_size(v) : -1;
	if (n < 0)
		xe_fail(c, "Failed to parse parameter '%s': expecting a size such as 512MiB, got '%s'", key, v ? v : "");
	return n;
}

struct mem_arg {
	const char *method;
	int n;
	long long v[4];
};

static int memory_one(struct xe_ctx *c, const char *vm, void *arg)
{
	struct mem_arg *m = arg;
	switch (m->n) {
	case 1: return xe_void_result(xe_rpc(c, m->method, "sI", vm, (json_int_t)m->v[0]));
	case 2: return xe_void_result(xe_rpc(c, m->method, "sII", vm, (json_int_t)m->v[0], (json_int_t)m->v[1]));
	default:
		return xe_void_result(xe_rpc(c, m->method, "sIIII", vm, (json_int_t)m->v[0], (json_int_t)m->v[1],
					  (json_int_t)m->v[2], (json_int_t)m->v[3]));
	}
}

static int memory_cmd(struct xe_ctx *c, const struct xe_cmd *cmd, const char *method, const char *const *keys, int n)
{
	struct mem_arg m = {method, n, {0}};
	for (int i = 0; i < n; i++)
		if ((m.v[i] = size_param(c, keys[i])) < 0)
			return -1;
	/* vm-memory-target-set: XAPI sets the dynamic range [target, target] */
	if (strcmp(cmd->name, "vm-memory-target-set") == 0) {
		m.v[1] = m.v[0];
		m.n = 2;
	}
	return xe_each(c, cmd, true, memory_one, &m);
}

int xe_cmd_vm_memory(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	static const char *const limits[] = {"static-min", "static-max", "dynamic-min", "dynamic-max"};
	static const char *const range[] = {"min", "max"}, *const mem[] = {"memory"}, *const target[] = {"target"};
	const char *n = cmd->name;
	if (strcmp(n, "vm-memory-limits-set") == 0)
		return memory_cmd(c, cmd, "VM.set_memory_limits", limits, 4);
	if (strcmp(n, "vm-memory-set") == 0)
		return memory_cmd(c, cmd, "VM.set_memory", mem, 1);
	if (strcmp(n, "vm-memory-dynamic-range-set") == 0)
		return memory_cmd(c, cmd, "VM.set_memory_dynamic_range", range, 2);
	if (strcmp(n, "vm-memory-static-range-set") == 0)
		return memory_cmd(c, cmd, "VM.set_memory_static_range", range, 2);
	return memory_cmd(c, cmd, "VM.set_memory_dynamic_range", target, 1);
}

static int vcpus_one(struct xe_ctx *c, const char *vm, void *arg)
{
	return xe_void_result(xe_rpc(c, "VM.set_VCPUs_number_live", "sI", vm, *(json_int_t *)arg));
}

int xe_cmd_vm_vcpu_hotplug(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	const char *v = xe_param(c, "new-vcpus");
	char *end = NULL;
	long long n = v ? strtoll(v, &end, 10) : 0;
	if (!v || !*v || *end)
		return xe_fail(c, "Failed to parse parameter 'new-vcpus': expecting an integer, got '%s'", v ? v : "");
	json_int_t nv = (json_int_t)n;
	return xe_each(c, cmd, true, vcpus_one, &nv);
}

/* ---- hosts ---- */

static int host_one(struct xe_ctx *c, const char *host, void *arg)
{
	return xe_void_result(xe_rpc(c, arg, "s", host));
}

/* host-reboot, host-shutdown (Host_selectors) */
int xe_cmd_host_life(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	return xe_each(c, cmd, false, host_one, strcmp(cmd->name, "host-reboot") == 0 ? "host.reboot" : "host.shutdown");
}

/* host-forget uuid= [--force]: XAPI's warnings, then host.destroy. */
int xe_cmd_host_forget(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	char *host = xe_ref_by_uuid(c, "host", xe_param(c, "uuid"));
	if (!host)
		return -1;
	bool force;
	int rc = xe_bool_param(c, "force", false, &force);
	if (!rc && !force)
		fputs("WARNING: A host should only be forgotten if it is physically unrecoverable;\n"
		      "WARNING: if possible, Hosts should be 'ejected' from the Pool instead.\n"
		      "WARNING: Once a host has been forgotten it will have to be re-installed.\n"
		      "WARNING: This operation is irreversible.\n",
		      c->out);
	if (!rc && !xe_confirmed(c))
		rc = xe_fail(c, "Aborted");
	if (!rc)
		rc = xe_void_result(xe_rpc(c, "host.destroy", "s", host));
	free(host);
	return rc;
}

/* pool-eject host-uuid= [--force] */
int xe_cmd_pool_eject(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	char *host = xe_ref_by_uuid(c, "host", xe_param(c, "host-uuid"));
	if (!host)
		return -1;
	bool force;
	int rc = xe_bool_param(c, "force", false, &force);
	if (!rc && !force)
		fputs("WARNING: Ejecting a host from the pool will leave it outside any pool: it must join again with a "
		      "new join token.\n",
		      c->out);
	if (!rc && !xe_confirmed(c))
		rc = xe_fail(c, "Aborted");
	if (!rc && !(rc = xe_void_result(xe_rpc(c, "pool.eject", "s", host))))
		fputs("Specified host left the pool: its agent has stopped, its pool identity kept aside in its state "
		      "directory.\n",
		      c->out);
	free(host);
	return rc;
}
