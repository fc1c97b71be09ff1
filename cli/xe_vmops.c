/*
 * xe_vmops.c - the xe commands of a VM's life beyond start and stop, with
 * cli_frontend.ml's parameters: vm-reboot, vm-suspend, vm-resume,
 * vm-reset-powerstate.
 */
#include <stdlib.h>
#include <string.h>
#include "xe.h"
#include "util.h"

static int void_result(json_t *r)
{
	json_decref(r);
	return r ? 0 : -1;
}

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
	return void_result(xe_rpc(c, *(bool *)arg ? "VM.hard_reboot" : "VM.clean_reboot", "s", vm));
}

int xe_cmd_vm_reboot(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	bool force;
	return xe_bool_param(c, "force", false, &force) ? -1 : xe_each(c, cmd, true, reboot_one, &force);
}

static int suspend_one(struct xe_ctx *c, const char *vm, void *arg)
{
	(void)arg;
	return void_result(xe_rpc(c, "VM.suspend", "s", vm));
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
		return void_result(xe_rpc(c, "VM.resume_on", "ssbb", vm, r->host, 0, r->force));
	return void_result(xe_rpc(c, "VM.resume", "sbb", vm, 0, r->force));
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
	return void_result(xe_rpc(c, "VM.power_state_reset", "s", vm));
}

int xe_cmd_vm_reset_powerstate(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	return need_force(c) ? -1 : xe_each(c, cmd, true, reset_one, NULL);
}
