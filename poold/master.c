/*
 * master.c - everything poold runs while it is the pool master, started
 * and stopped in one place: at start when this poold holds the database,
 * or later when a standby takes over (mfo.c). The HTTPS port, the loop and
 * the signals are main.c's and run in both roles.
 */
#include <stdio.h>
#include <string.h>
#include "log.h"
#include "ops.h"
#include "poold.h"
#include "tls.h"
#include "version.h"

static void master_on_gc(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct poold *pd = arg;
	session_gc(pd);
	txn_sweep(pd);
	api_task_gc(pd);
	db_events_trim(pd->pd_db, conf_int(pd->pd_conf, "event-log-size"));
}

/* pd->pd_db is open (locally, or on shared storage with its lock held);
 * the API's methods are registered (main.c). */
int master_start(struct poold *pd, char *err, size_t errlen)
{
	db_set_store_hook(pd->pd_db, ops_derive, pd);
	db_require_txn(pd->pd_db);
	if (pool_load(pd, err, errlen) < 0)
		return -1;
	session_load(pd);
	pd->pd_notified = db_last_event(pd->pd_db);
	db_set_commit_hook(pd->pd_db, evt_commit_hook, pd);
	pd->pd_gc_timer = event_new(pd->pd_base, -1, EV_PERSIST, master_on_gc, pd);
	/* every 30 s, or as often as the shortest retention needs */
	long long keep = conf_duration_ms(pd->pd_conf, "task-retention") / 1000;
	struct timeval gc = {keep < 30 ? (keep < 1 ? 1 : (time_t)keep) : 30, 0};
	event_add(pd->pd_gc_timer, &gc);
	char ca[4200], cert[4200], key[4200];
	snprintf(ca, sizeof ca, "%s/ca.pem", pd->pd_dir);
	snprintf(cert, sizeof cert, "%s/server.pem", pd->pd_dir);
	snprintf(key, sizeof key, "%s/server.key", pd->pd_dir);
	pd->pd_agent_ctx = tls_client_ctx(ca, cert, key, err, errlen);
	if (!pd->pd_agent_ctx)
		return -1;
	pd->pd_vm_changed = json_object();
	host_liveness_start(pd);
	ha_start(pd);
	ha_engine_start(pd);
	evacuations_resume(pd);
	sxm_resume(pd);
	rpu_start(pd);
	pd->pd_master = true;
	log_info("poold %s: pool master of %s, %zu API methods%s", POOLD_VERSION, pd->pd_pool_ref, pd->pd_nmethods,
		 db_is_shared(pd->pd_db) ? ", the database on shared storage" : "");
	return 0;
}

/* What master_start made; the database stays open (the caller closes it). */
void master_stop(struct poold *pd)
{
	if (!pd->pd_master)
		return;
	pd->pd_master = false;
	rpu_stop(pd); /* before the evacuations it may have started */
	evacuations_stop(pd);
	sxm_stop(pd);
	ha_engine_stop(pd);
	ha_stop(pd);
	host_liveness_stop(pd);
	agent_links_free(pd); /* calls still in flight fail now; their outcome is recorded */
	SSL_CTX_free(pd->pd_agent_ctx);
	pd->pd_agent_ctx = NULL;
	json_decref(pd->pd_vm_changed);
	pd->pd_vm_changed = NULL;
	evt_fini(pd);
	if (pd->pd_gc_timer)
		event_free(pd->pd_gc_timer);
	pd->pd_gc_timer = NULL;
}
