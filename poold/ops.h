/*
 * ops.h - what an object may do now: XAPI's allowed_operations and, for
 * every operation, the refusal that says why not (xapi_vm_lifecycle.ml,
 * xapi_vbd_helpers.ml, xapi_vif_helpers.ml, xapi_sr_operations.ml and
 * xapi_vdi.ml do the same per class).
 *
 * One decision per class, used twice: every handler asks ops_check before
 * it acts, and every stored record of VM, VBD, VIF, VDI, SR and host
 * carries allowed_operations derived from the same function, so what a
 * client sees enabled (Xen Orchestra's buttons) is exactly what would be
 * accepted. Operations in flight are in the record's current_operations
 * (an id -> the operation's name), put there by ops_begin in the
 * transaction that starts the work and taken out by ops_end.
 *
 * The decision is pure: the record and a few facts about related objects
 * (ops_facts), gathered by ops_facts_load.
 */
#ifndef OPS_H
#define OPS_H

#include <stdbool.h>
#include <jansson.h>

struct db;

struct ops_facts {
	int of_attached; /* VDI: its VBDs attached to a running VM */
	int of_pbds;     /* SR: PBDs */
	int of_plugged;  /* SR: PBDs currently attached */
	int of_vdis;     /* SR: VDIs on it */
	bool of_rolling; /* the pool is in rolling-upgrade mode (snap_rolling) */
	/* VBD, VIF: their VM */
	char of_vm[64];
	char of_vm_power[16];      /* its power_state ("" when it is gone) */
	char of_vm_blocking[32];   /* an operation of the VM that forbids hot-plug now, or "" */
	/* VBD: its VDI */
	bool of_vdi_busy;          /* the VDI has an operation in flight */
	bool of_vdi_rw_elsewhere;  /* another running VM has the (unsharable) VDI attached read-write */
	bool of_vdi_used_elsewhere; /* ... attached at all */
	bool of_vdi_read_only;
};

/* The refusal of op on the object ref (record rec of class cls), or NULL.
 * An operation the class does not know is OPERATION_NOT_ALLOWED. */
/* f may be NULL (no facts: an object with none, not in rolling-upgrade mode). */
json_t *ops_check(const char *cls, const char *ref, const json_t *rec, const struct ops_facts *f, const char *op);
/* The operations ops_check lets through, as XAPI's allowed_operations
 * (a new array); NULL for a class without operations. Operations XAPI
 * never lists (changing_memory_limits, power_state_reset, ...) are
 * checked when asked for but never listed. */
json_t *ops_allowed(const char *cls, const char *ref, const json_t *rec, const struct ops_facts *f);
/* In rolling-upgrade mode: NOT_SUPPORTED_DURING_UPGRADE [cls.op, reason]
 * for an operation the upgrade blocks (the table in ops.c: object
 * operations, and pool-level ones such as "SR" "create" or "pool"
 * "enable_ha" that their handlers ask), else NULL. */
json_t *ops_upgrade_check(const char *cls, const char *op);
/* The VM operation XAPI's setter of field is (VM.set_memory_static_max is
 * changing_static_range, VM.set_VCPUs_max changing_VCPUs, ...), or NULL. */
const char *ops_vm_field_op(const char *field);
/* Is op a VM operation poold knows (XAPI's vm_operations it implements)? */
bool ops_vm_known(const char *op);

/* ---- effects (the database) ---- */
void ops_facts_load(struct db *db, const char *cls, const char *ref, struct ops_facts *f);
/* ops_check on the stored object. */
json_t *ops_assert(struct db *db, const char *ref, const char *op);
/* Inside a transaction: check op, then record it in current_operations
 * under id (a new "OpaqueRef:..." written into id, >= 48 bytes). */
json_t *ops_begin(struct db *db, const char *ref, const char *op, char *id);
/* Inside a transaction: the operation id ended (a missing id is no error). */
json_t *ops_end(struct db *db, const char *ref, const char *id);
/* The store's hook (db_set_store_hook): before a record is stored, its
 * allowed_operations follow from it; after it is stored, a VM that started
 * or stopped attaches or detaches its disks and network devices
 * (currently_attached, device), and objects whose operations depend on
 * the change are derived again (a VDI when its VBD attaches, an SR when a
 * PBD plugs or a VDI comes or goes, a VM's VBDs and VIFs when the VM's
 * power state or operations change). */
json_t *ops_derive(struct db *db, const char *cls, const char *ref, const json_t *old, json_t *rec, bool after,
		   void *ctx);
/* Inside a transaction: derive every record of cls again (the pool
 * entered or left rolling-upgrade mode: their allowed_operations change). */
json_t *ops_rederive(struct db *db, const char *cls);

#endif
