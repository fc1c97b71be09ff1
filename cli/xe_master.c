/*
 * xe_master.c - the pool master's role: pool-designate-new-master (the
 * role moves on purpose), and for the operator when HA is off and the
 * master is gone, pool-emergency-transition-to-master (run against the
 * host that is to become master) and pool-emergency-reset-master (run
 * against a host, to tell it where the master is). The emergency commands
 * log in with session.slave_local_login_with_password, as XAPI's xe does:
 * a host that is not the master answers them itself.
 */
#include <stdlib.h>
#include <string.h>
#include "xe.h"

static int xm_void(json_t *r)
{
	if (!r)
		return -1;
	json_decref(r);
	return 0;
}

int xe_cmd_pool_designate_new_master(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	const char *uuid = xe_param(c, "host-uuid");
	json_t *host = xe_rpc(c, "host.get_by_uuid", "s", uuid ? uuid : "");
	if (!host)
		return -1;
	int rc = xm_void(xe_rpc(c, "pool.designate_new_master", "O", host));
	json_decref(host);
	return rc;
}

int xe_cmd_pool_emergency_transition_to_master(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	return xm_void(xe_rpc(c, "pool.emergency_transition_to_master", ""));
}

int xe_cmd_pool_emergency_reset_master(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	const char *addr = xe_param(c, "master-address");
	return xm_void(xe_rpc(c, "pool.emergency_reset_master", "s", addr ? addr : ""));
}
