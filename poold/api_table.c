/*
 * api_table.c - every XAPI method poold serves by hand: its name,
 * parameter counts (session included), flags and handler. The per-class
 * getters and setters are generated from the model (api_objects.c).
 * main.c hands this table to api_init, so the dispatcher (api.c) never
 * names a handler and no handler file depends back on the table.
 */
#include "poold.h"

/* Handlers of the non-generated methods live in api_*.c. */
json_t *session_login(struct api_call *c);
json_t *session_logout(struct api_call *c);
json_t *session_get_this_host(struct api_call *c);
json_t *session_get_this_user(struct api_call *c);
json_t *system_list_methods(struct api_call *c);
json_t *system_noop(struct api_call *c);
json_t *evt_from(struct api_call *c);
json_t *evt_inject(struct api_call *c);
json_t *task_cancel(struct api_call *c);
json_t *task_destroy(struct api_call *c);
json_t *vm_create(struct api_call *c);
json_t *vm_clone(struct api_call *c);
json_t *vdi_create(struct api_call *c);
json_t *vdi_destroy(struct api_call *c);
json_t *vbd_create(struct api_call *c);
json_t *vbd_destroy(struct api_call *c);
json_t *pool_create_join_token(struct api_call *c);
json_t *sr_create(struct api_call *c);
json_t *sr_forget(struct api_call *c);
json_t *sr_destroy(struct api_call *c);
json_t *vdi_resize(struct api_call *c);
json_t *vdi_snapshot(struct api_call *c);
json_t *vdi_clone(struct api_call *c);
json_t *host_destroy(struct api_call *c);
json_t *host_enable(struct api_call *c);
json_t *host_disable(struct api_call *c);
json_t *host_evacuate(struct api_call *c);
json_t *host_compute_evacuation_plan(struct api_call *c);
json_t *host_get_vms_which_prevent_evacuation(struct api_call *c);
json_t *host_assert_can_evacuate(struct api_call *c);
json_t *pbd_plug(struct api_call *c);
json_t *pbd_unplug(struct api_call *c);
json_t *vm_start(struct api_call *c);
json_t *vm_pool_migrate(struct api_call *c);
json_t *vm_set_memory_limits(struct api_call *c);
json_t *vm_start_on(struct api_call *c);
json_t *vm_clean_shutdown(struct api_call *c);
json_t *vm_pause(struct api_call *c);
json_t *vm_unpause(struct api_call *c);
json_t *pool_get_ca_certificate(struct api_call *c);
json_t *host_join(struct api_call *c);
json_t *vm_clean_reboot(struct api_call *c);
json_t *vm_hard_reboot(struct api_call *c);
json_t *vm_suspend(struct api_call *c);
json_t *vm_resume(struct api_call *c);
json_t *vm_resume_on(struct api_call *c);
json_t *vm_power_state_reset(struct api_call *c);
json_t *vm_hard_shutdown_any(struct api_call *c);
json_t *vm_shutdown_any(struct api_call *c);
json_t *vm_destroy_any(struct api_call *c);
json_t *vm_snapshot(struct api_call *c);
json_t *vm_checkpoint(struct api_call *c);
json_t *vm_revert(struct api_call *c);
json_t *vm_copy(struct api_call *c);
json_t *vm_provision(struct api_call *c);
json_t *vdi_copy(struct api_call *c);
json_t *vdi_resize_online(struct api_call *c);
json_t *vbd_plug(struct api_call *c);
json_t *vbd_unplug(struct api_call *c);
json_t *vbd_unplug_force(struct api_call *c);
json_t *vbd_insert(struct api_call *c);
json_t *vbd_eject(struct api_call *c);
json_t *vif_create(struct api_call *c);
json_t *vif_destroy(struct api_call *c);
json_t *vif_plug(struct api_call *c);
json_t *vif_unplug(struct api_call *c);
json_t *vif_unplug_force(struct api_call *c);
json_t *network_destroy(struct api_call *c);
json_t *vm_set_memory_dynamic_range(struct api_call *c);
json_t *vm_set_memory_dynamic_max(struct api_call *c);
json_t *vm_set_memory_dynamic_min(struct api_call *c);
json_t *vm_set_memory_target_live(struct api_call *c);
json_t *vm_set_memory(struct api_call *c);
json_t *vm_set_memory_static_range(struct api_call *c);
json_t *vm_set_vcpus_number_live(struct api_call *c);
json_t *vm_get_allowed_vbd_devices(struct api_call *c);
json_t *vm_get_allowed_vif_devices(struct api_call *c);
json_t *vm_assert_can_boot_here(struct api_call *c);
json_t *vm_assert_operation_valid(struct api_call *c);
json_t *host_reboot(struct api_call *c);
json_t *host_shutdown(struct api_call *c);
json_t *host_restart_agent(struct api_call *c);
json_t *pool_eject(struct api_call *c);
json_t *host_heartbeat(struct api_call *c);
json_t *host_migrate_receive(struct api_call *c);
json_t *vm_migrate_send(struct api_call *c);
json_t *vm_assert_can_migrate(struct api_call *c);
json_t *vdi_pool_migrate(struct api_call *c);
json_t *pool_enable_ha(struct api_call *c);
json_t *pool_disable_ha(struct api_call *c);
json_t *host_emergency_ha_disable(struct api_call *c);
json_t *pool_set_ha_host_failures_to_tolerate(struct api_call *c);
json_t *pool_ha_compute_max_host_failures_to_tolerate(struct api_call *c);
json_t *pool_ha_compute_hypothetical_max_host_failures_to_tolerate(struct api_call *c);
json_t *pool_ha_failover_plan_exists(struct api_call *c);
json_t *pool_ha_compute_vm_failover_plan(struct api_call *c);
json_t *pool_ha_prevent_restarts_for(struct api_call *c);
json_t *pool_ha_plan(struct api_call *c);
json_t *vm_set_ha_restart_priority(struct api_call *c);
json_t *vm_set_order(struct api_call *c);
json_t *vm_set_start_delay(struct api_call *c);
json_t *pool_standby_sync(struct api_call *c);
json_t *pool_standby_join(struct api_call *c);
json_t *pool_designate_new_master(struct api_call *c);
json_t *pool_emergency_transition_to_master(struct api_call *c);
json_t *pool_emergency_reset_master(struct api_call *c);
json_t *pool_rolling_upgrade(struct api_call *c);
json_t *pool_rolling_upgrade_plan(struct api_call *c);

const struct api_method api_methods[] = {
	{"session.login_with_password", 2, 4, API_NO_SESSION, session_login},
	{"session.logout", 1, 1, 0, session_logout},
	{"session.get_this_host", 2, 2, 0, session_get_this_host},
	{"session.get_this_user", 2, 2, 0, session_get_this_user},
	{"system.listMethods", 0, 0, API_NO_SESSION, system_list_methods},
	/* ours: answers "" at once; measures the transport's own cost (bench) */
	{"system.noop", 0, 0, API_NO_SESSION, system_noop},
	{"event.from", 4, 4, 0, evt_from},
	{"event.inject", 3, 3, 0, evt_inject},
	{"task.cancel", 2, 2, API_ASYNC, task_cancel},
	{"task.destroy", 2, 2, 0, task_destroy},
	{"VM.create", 2, 2, API_ASYNC, vm_create},
	{"VM.clone", 3, 3, API_ASYNC, vm_clone},
	{"VM.destroy", 2, 2, API_ASYNC, vm_destroy_any},
	{"VDI.create", 2, 2, API_ASYNC, vdi_create},
	{"VDI.destroy", 2, 2, API_ASYNC, vdi_destroy},
	{"VDI.resize", 3, 3, API_ASYNC, vdi_resize},
	{"VDI.snapshot", 3, 3, API_ASYNC, vdi_snapshot},
	{"VDI.clone", 3, 3, API_ASYNC, vdi_clone},
	{"host.destroy", 2, 2, API_ASYNC, host_destroy},
	{"host.reboot", 2, 2, API_ASYNC, host_reboot},
	{"host.shutdown", 2, 2, API_ASYNC, host_shutdown},
	{"host.restart_agent", 2, 2, API_ASYNC, host_restart_agent},
	{"pool.eject", 2, 2, API_ASYNC, pool_eject},
	{"VBD.create", 2, 2, API_ASYNC, vbd_create},
	{"VBD.destroy", 2, 2, API_ASYNC, vbd_destroy},
	{"SR.create", 10, 10, API_ASYNC, sr_create},
	{"SR.forget", 2, 2, API_ASYNC, sr_forget},
	{"SR.destroy", 2, 2, API_ASYNC, sr_destroy},
	{"host.enable", 2, 2, API_ASYNC, host_enable},
	{"host.disable", 2, 2, API_ASYNC, host_disable},
	{"host.evacuate", 2, 4, API_ASYNC, host_evacuate},
	{"host.compute_evacuation_plan", 2, 2, 0, host_compute_evacuation_plan},
	{"host.get_vms_which_prevent_evacuation", 2, 2, API_ASYNC, host_get_vms_which_prevent_evacuation},
	{"host.assert_can_evacuate", 2, 2, API_ASYNC, host_assert_can_evacuate},
	{"PBD.plug", 2, 2, API_ASYNC, pbd_plug},
	{"PBD.unplug", 2, 2, API_ASYNC, pbd_unplug},
	{"VM.set_memory_limits", 6, 6, API_ASYNC, vm_set_memory_limits},
	{"VM.start", 4, 4, API_ASYNC, vm_start},
	{"VM.pool_migrate", 4, 4, API_ASYNC, vm_pool_migrate},
	{"VM.start_on", 5, 5, API_ASYNC, vm_start_on},
	/* storage live migration (XAPI's signatures; vgpu_map optional) */
	{"host.migrate_receive", 4, 4, API_ASYNC, host_migrate_receive},
	{"VM.migrate_send", 7, 8, API_ASYNC, vm_migrate_send},
	{"VM.assert_can_migrate", 7, 8, API_ASYNC, vm_assert_can_migrate},
	{"VDI.pool_migrate", 4, 4, API_ASYNC, vdi_pool_migrate},
	{"VM.shutdown", 2, 2, API_ASYNC, vm_shutdown_any},
	{"VM.clean_shutdown", 2, 2, API_ASYNC, vm_clean_shutdown},
	{"VM.hard_shutdown", 2, 2, API_ASYNC, vm_hard_shutdown_any},
	{"VM.clean_reboot", 2, 2, API_ASYNC, vm_clean_reboot},
	{"VM.hard_reboot", 2, 2, API_ASYNC, vm_hard_reboot},
	{"VM.suspend", 2, 2, API_ASYNC, vm_suspend},
	{"VM.resume", 4, 4, API_ASYNC, vm_resume},
	{"VM.resume_on", 5, 5, API_ASYNC, vm_resume_on},
	{"VM.power_state_reset", 2, 2, API_ASYNC, vm_power_state_reset},
	{"VM.snapshot", 3, 4, API_ASYNC, vm_snapshot},
	{"VM.checkpoint", 3, 3, API_ASYNC, vm_checkpoint},
	{"VM.revert", 2, 2, API_ASYNC, vm_revert},
	{"VM.copy", 4, 4, API_ASYNC, vm_copy},
	{"VM.provision", 2, 2, API_ASYNC, vm_provision},
	{"VM.set_memory_dynamic_range", 4, 4, API_ASYNC, vm_set_memory_dynamic_range},
	{"VM.set_memory_dynamic_max", 3, 3, 0, vm_set_memory_dynamic_max},
	{"VM.set_memory_dynamic_min", 3, 3, 0, vm_set_memory_dynamic_min},
	{"VM.set_memory_target_live", 3, 3, API_ASYNC, vm_set_memory_target_live},
	{"VM.set_memory", 3, 3, API_ASYNC, vm_set_memory},
	{"VM.set_memory_static_range", 4, 4, API_ASYNC, vm_set_memory_static_range},
	{"VM.set_VCPUs_number_live", 3, 3, API_ASYNC, vm_set_vcpus_number_live},
	{"VM.get_allowed_VBD_devices", 2, 2, 0, vm_get_allowed_vbd_devices},
	{"VM.get_allowed_VIF_devices", 2, 2, 0, vm_get_allowed_vif_devices},
	{"VM.assert_can_boot_here", 3, 3, API_ASYNC, vm_assert_can_boot_here},
	{"VM.assert_operation_valid", 3, 3, API_ASYNC, vm_assert_operation_valid},
	{"VDI.copy", 3, 5, API_ASYNC, vdi_copy},
	{"VDI.resize_online", 3, 3, API_ASYNC, vdi_resize_online},
	{"VBD.plug", 2, 2, API_ASYNC, vbd_plug},
	{"VBD.unplug", 2, 2, API_ASYNC, vbd_unplug},
	{"VBD.unplug_force", 2, 2, API_ASYNC, vbd_unplug_force},
	{"VBD.insert", 3, 3, API_ASYNC, vbd_insert},
	{"VBD.eject", 2, 2, API_ASYNC, vbd_eject},
	{"VIF.create", 2, 2, API_ASYNC, vif_create},
	{"VIF.destroy", 2, 2, API_ASYNC, vif_destroy},
	{"VIF.plug", 2, 2, API_ASYNC, vif_plug},
	{"VIF.unplug", 2, 2, API_ASYNC, vif_unplug},
	{"VIF.unplug_force", 2, 2, API_ASYNC, vif_unplug_force},
	{"network.destroy", 2, 2, API_ASYNC, network_destroy},
	{"VM.pause", 2, 2, API_ASYNC, vm_pause},
	{"VM.unpause", 2, 2, API_ASYNC, vm_unpause},
	/* ours: hosts joining the pool (xe pool-join-token-create; pool-agent) */
	{"pool.create_join_token", 1, 2, 0, pool_create_join_token},
	{"pool.get_ca_certificate", 0, 0, API_NO_SESSION, pool_get_ca_certificate},
	{"host.join", 3, 3, API_NO_SESSION, host_join},
	{"host.heartbeat", 1, 1, API_NO_SESSION | API_AGENT, host_heartbeat},
	{"message.create", 6, 6, 0, message_create},
	/* HA (api_ha.c, api_ha_plan.c) */
	{"pool.enable_ha", 3, 3, API_ASYNC, pool_enable_ha},
	{"pool.disable_ha", 1, 1, API_ASYNC, pool_disable_ha},
	{"host.emergency_ha_disable", 2, 2, 0, host_emergency_ha_disable},
	{"pool.set_ha_host_failures_to_tolerate", 3, 3, API_ASYNC, pool_set_ha_host_failures_to_tolerate},
	{"pool.ha_compute_max_host_failures_to_tolerate", 1, 1, API_ASYNC, pool_ha_compute_max_host_failures_to_tolerate},
	{"pool.ha_compute_hypothetical_max_host_failures_to_tolerate", 2, 2, API_ASYNC,
	 pool_ha_compute_hypothetical_max_host_failures_to_tolerate},
	{"pool.ha_failover_plan_exists", 2, 2, API_ASYNC, pool_ha_failover_plan_exists},
	{"pool.ha_compute_vm_failover_plan", 3, 3, API_ASYNC, pool_ha_compute_vm_failover_plan},
	{"pool.ha_prevent_restarts_for", 2, 2, API_ASYNC, pool_ha_prevent_restarts_for},
	/* ours: the failover plan explained, per host failure */
	{"pool.ha_plan", 2, 2, API_ASYNC, pool_ha_plan},
	{"VM.set_ha_restart_priority", 3, 3, API_ASYNC, vm_set_ha_restart_priority},
	{"VM.set_order", 3, 3, API_ASYNC, vm_set_order},
	{"VM.set_start_delay", 3, 3, API_ASYNC, vm_set_start_delay},
	{"message.get", 4, 4, 0, message_get},
	{"message.get_since", 2, 2, 0, message_get_since},
	{"message.destroy_many", 2, 2, API_ASYNC, message_destroy_many},
	/* the master's role (mfo_api.c, mfo_designate.c; a standby answers these itself) */
	{"pool.designate_new_master", 2, 2, 0, pool_designate_new_master},
	{"pool.emergency_transition_to_master", 1, 1, 0, pool_emergency_transition_to_master},
	{"pool.emergency_reset_master", 2, 2, 0, pool_emergency_reset_master},
	{"session.slave_local_login_with_password", 2, 2, API_NO_SESSION, session_login},
	/* ours: standby pooldes (poold join; every couple of seconds) */
	{"pool.standby_join", 2, 2, API_NO_SESSION, pool_standby_join},
	{"pool.standby_sync", 1, 1, API_NO_SESSION | API_AGENT, pool_standby_sync},
	/* ours: the rolling pool upgrade (api_rpu.c) */
	{"pool.rolling_upgrade", 2, 2, API_ASYNC, pool_rolling_upgrade},
	{"pool.rolling_upgrade_plan", 2, 2, 0, pool_rolling_upgrade_plan},
};

const size_t api_nmethods = sizeof api_methods / sizeof api_methods[0];
