/*
 * vm_rules.h - pure decisions about one VM beyond its power state: where
 * its suspend image goes, which device numbers a new VBD or VIF may take,
 * how far a running VM's memory follows a new dynamic range, how many
 * vCPUs it may have live, and what a snapshot's record and a revert copy.
 * No database, no I/O: the callers read and write (api_vm_*.c).
 */
#ifndef VM_RULES_H
#define VM_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

/* The first of want (refs, in XAPI's order; "" or OpaqueRef:NULL skipped)
 * that is among plugged (an array of SR refs), or NULL. */
const char *vm_suspend_sr_choose(const char *const *want, size_t n, const json_t *plugged);

/* The device numbers "first".."last" not in used (an array of strings),
 * as XAPI's allowed_VBD_devices (0..254) and allowed_VIF_devices (0..15). */
json_t *vm_allowed_devices(const json_t *used, int first, int last);
#define VM_VBD_DEVICES_MAX 254
#define VM_VIF_DEVICES_MAX 15

/* A running VM's balloon target for the dynamic range [min, max]: as much
 * as max, given what it holds now and what its host has free (squeezed's
 * rule, simply). HOST_NOT_ENOUGH_FREE_MEMORY [needed, available] when not
 * even min fits. */
json_t *vm_live_target(json_int_t min, json_int_t max, json_int_t held, json_int_t host_free, json_int_t *target);

/* VM.set_VCPUs_number_live: INVALID_VALUE ["VCPU values must satisfy:
 * 0 < VCPUs ≤ VCPUs_max", n] unless 0 < n <= max, as XAPI. */
json_t *vm_vcpus_live_check(json_int_t n, json_int_t max);

/* The record of a snapshot (or checkpoint) of VM vm (record rec) named
 * name, taken at now, in power state power ("Halted", or "Suspended" for a
 * checkpoint with memory): XAPI's copy_vm_record for a snapshot. */
json_t *vm_snapshot_record(const json_t *rec, const char *vm, const char *name, const char *now, const char *power);

/* What a revert writes into the VM from its snapshot's record: every field
 * but identity, runtime state and the VM's own relations (XAPI's
 * revert_vm_fields without snapshot metadata). */
json_t *vm_revert_fields(const json_t *snap);

/* The disks a template's other_config:disks asks VM.provision for (XAPI's
 * <provision><disk device="0" size="..." sr="UUID" bootable="true"
 * type="system"/>...</provision>): a new array of {device, size, sr,
 * bootable, type}, or NULL with *err (INVALID_VALUE [other_config:disks,
 * why]). "" or absent: no disks. */
json_t *vm_provision_disks(const char *xml, json_t **err);

#endif
