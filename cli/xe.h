/*
 * xe.h - the pieces of the `xe` CLI shared between its files: parsed
 * arguments, the connection context, the record printer, the per-class CLI
 * field tables and the command table. Everything lives in one struct xe_ctx
 * owned by main(); nothing here is global mutable state.
 */
#ifndef XE_H
#define XE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <jansson.h>
#include "model.h"

/* ---- arguments (xe_args.c) ---- */

struct xe_kv {
	char *key; /* "name-label", "other-config:k", or a bare word ("--all") */
	char *val; /* NULL for a bare word */
	bool used; /* consumed by the command */
};

struct xe_opts {
	char *server, *username, *password, *cacert;
	int port;
	bool minimal, help_all;
	bool debug, debug_on_fail; /* --debug, --debug-on-fail: each call on stderr */
	char *cmd;
	struct xe_kv *kv;
	size_t nkv;
};

/* Parse argv (without argv[0]). 0 ok, -1 with a message in err. */
int xe_opts_parse(struct xe_opts *o, int argc, char **argv, char *err, size_t errlen);
/* Fill unset connection options from env (XE_*) then from the ~/.xe style
 * file at path (may be NULL or missing). 0 ok, -1 with err. */
int xe_opts_defaults(struct xe_opts *o, const char *path, char *err, size_t errlen);
void xe_opts_free(struct xe_opts *o);
/* Split "key=value" into kv (strdup'ed). "--flag" is flag=true (XAPI's
 * CLI server does the same); other bare words get val NULL. */
void xe_kv_split(const char *arg, struct xe_kv *kv);
/* Sizes: "1GiB", "512MiB", "4KiB", "2TiB", "10G", "100" (bytes); suffixes in
 * any case, "bytes"/"B" and a space before the suffix accepted (XAPI's
 * Record_util.bytes_of_string). -1 when bad. */
long long xe_parse_size(const char *s);
/* sr-create's physical-size: a size, 0 when absent or bad (as XAPI). */
long long xe_physical_size(const char *s);
/* XAPI's bool_of_string: true/t/1, false/f/0 (any case). 0 ok, -1 bad. */
int xe_parse_bool(const char *v, bool *out);

/* Growable text. */
struct xe_buf {
	char *s;
	size_t len, cap;
};

/* ---- connection and call context (xe_rpc.c) ---- */

struct xe_ctx {
	struct xe_opts *opts;
	void *curl;      /* CURL * */
	char *url;
	char *session;
	long long next_id;
	json_t *xerr;    /* the XAPI error that ended the command */
	char *msg;       /* or a CLI error text */
	json_t *cache;   /* class name -> get_all_records answer */
	FILE *out;
	struct xe_buf debug; /* --debug-on-fail: the calls, printed on failure */
};

int xe_connect(struct xe_ctx *c);
/* Log in; a host that is not the master answers HOST_IS_SLAVE and the
 * login goes to the master it names (local: a local login on this host,
 * for the emergency calls, never sent on). */
int xe_login(struct xe_ctx *c, bool local);
void xe_logout(struct xe_ctx *c);
void xe_ctx_free(struct xe_ctx *c);
/* Call method with the session first and params packed from fmt (a
 * json_pack format of the remaining parameters, "" for none). New
 * reference, or NULL with c->xerr / c->msg set. */
json_t *xe_rpc(struct xe_ctx *c, const char *method, const char *fmt, ...);
/* The same without a session parameter; params is stolen. */
json_t *xe_call(struct xe_ctx *c, const char *method, json_t *params);
/* An answer (taken, NULL after a failure) as a string to free, or NULL. */
char *xe_str_result(json_t *r);
/* An answer (taken) that only says success: 0, or -1 after a failure. */
int xe_void_result(json_t *r);
/* A CLI error text (printf); always returns -1. */
int xe_fail(struct xe_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print the pending error as XAPI's xe does: the error's description
 * sentence, then one "name: value" line per parameter (a CLI failure's
 * text as it is). */
void xe_print_error(const struct xe_ctx *c, FILE *f);
/* That text for an error value (malloc'ed); refs as the caller left them.
 * An error XAPI's datamodel does not describe: "Error code: C" and
 * "Error parameters: p, ..." lines (newcli's). */
char *xe_error_text(const json_t *xerr);
/* Before logging out: each ref in the pending error becomes "uuid (name)"
 * (XAPI's ref_convert); one that names nothing stays as it is. */
void xe_error_resolve(struct xe_ctx *c);
/* get_all_records of a class, cached for the invocation (borrowed). */
json_t *xe_all(struct xe_ctx *c, const char *cls);
/* Forget a class's cached records. */
void xe_forget(struct xe_ctx *c, const char *cls);

/* ---- printing (xe_print.c) ---- */

void xe_print_record(FILE *f, const char *const *labels, const char *const *values, size_t n);
/* value with ',' -> "\," and '\' -> "\\" (malloc'ed). */
char *xe_minimal_escape(const char *s);
void xe_print_minimal(FILE *f, const char *const *values, size_t n);
/* Label with qualifier suffix: "uuid ( RO)" (malloc'ed). */
char *xe_label(const char *name, const char *qual);
/* Qualifier from a model field: " RO", " RW", "MRO", "MRW", "SRO", "SRW". */
const char *xe_qual(const struct model_field *f);
/* Plain rendering of a JSON value of type t (refs printed as given). */
char *xe_render(enum fld_type t, const json_t *v, const char *sep);
/* The CLI spelling of an enum value (power-state lowercase, ...). */
const char *xe_enum_cli(const char *cls, const char *field, const char *v);
void xe_buf_add(struct xe_buf *b, const char *s);
/* Wrapped command list lines, as XAPI's help prints them (malloc'ed). */
char *xe_wrap_names(const char *const *names, size_t n);

/* ---- CLI fields of a class (xe_fields.c) ---- */

enum xe_src {
	XS_FIELD,    /* the field itself (refs -> uuid) */
	XS_REF_NAME, /* name_label of the object the ref field names */
	XS_VIA,      /* a field of the object the ref field names (metrics) */
	XS_SR_HOST,  /* SR: host computed from PBDs */
};

struct xe_fdef {
	const char *cli;
	const struct model_field *mf; /* own field (for XS_REF_NAME / XS_VIA: the ref) */
	const struct model_field *via; /* XS_VIA: field of the target class */
	enum xe_src src;
	const char *qual;
	const char *cls; /* the API class (enum spellings) */
};

struct xe_cls {
	const struct model_class *mc;
	const char *cli;      /* "vm", "template" */
	struct xe_fdef *f;
	size_t n;
	const char *deflist;  /* default fields of *-list */
	const char *filter;   /* built-in filter "is-a-template=false,..." */
	char **names;         /* generated CLI names (owned) */
	size_t nnames;
};

/* Build the CLI view of a CLI class name ("vm", "template", "sr"...). */
int xe_cls_build(const char *cli, struct xe_cls *out);
void xe_cls_free(struct xe_cls *x);
const struct xe_fdef *xe_fdef_find(const struct xe_cls *x, const char *cli);
/* The printed value of a field of rec (malloc'ed). */
char *xe_fvalue(struct xe_ctx *c, const struct xe_fdef *d, const json_t *rec);
/* A filter key a list accepts: a field of the class, "map:key", or
 * "set:contains"; -1 with XAPI's error otherwise (an unknown field is an
 * error, not an empty list). */
int xe_filter_check(struct xe_ctx *c, const struct xe_cls *x, const char *key);
/* true when rec satisfies "name=value" / "map:key=value" /
 * "set:contains=member" (neq: "/="). */
bool xe_match(struct xe_ctx *c, const struct xe_cls *x, const json_t *rec, const char *key,
	      const char *val, bool neq);
/* JSON value for setting field f from the CLI text v (new ref or NULL with error). */
json_t *xe_parse_value(struct xe_ctx *c, const char *cls, const struct model_field *f, const char *v);
/* Print records (a JSON object ref -> record) selected by params. */
void xe_print_records(struct xe_ctx *c, const struct xe_cls *x, json_t *recs, const char *params);
/* The ref of the object of class cls with this uuid (NULL + error). */
char *xe_ref_by_uuid(struct xe_ctx *c, const char *cls, const char *uuid);

/* ---- commands (xe_cmds.c, xe_ops.c) ---- */

struct xe_cmd {
	const char *name;
	const char *reqd;   /* "uuid,param-name" */
	const char *optn;
	const char *desc;
	int (*fn)(struct xe_ctx *c, const struct xe_cmd *cmd);
	unsigned flags;
};
#define XE_CMD_NOSERVER 1u /* help: no connection */
#define XE_CMD_ANYPARAM 2u /* takes free field=value parameters */
#define XE_CMD_VMSEL 4u    /* XAPI's Vm_selectors: vm=, field filters, --multiple */
#define XE_CMD_HOSTSEL 8u  /* XAPI's Host_selectors: host=, field filters, --multiple */
#define XE_CMD_LOCAL 16u   /* a local login on the host given (-s): emergency calls, answered by a standby */

extern const struct xe_cmd xe_cmds[];
extern const size_t xe_ncmds;
const struct xe_cmd *xe_cmd_find(const char *name);
/* Check required/unknown parameters. 0 ok, -1 with c->msg. */
int xe_check_params(struct xe_ctx *c, const struct xe_cmd *cmd);
/* Value of a parameter (marks it used), NULL when absent. */
const char *xe_param(struct xe_ctx *c, const char *key);
/* Was parameter key given (without marking it used)? */
bool xe_param_given(struct xe_ctx *c, const char *key);
/* Run a command line: the exit code. */
int xe_run(struct xe_ctx *c);

int xe_cmd_help(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vm_install(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vm_uninstall(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vm_clone(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vdi_create(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vbd_create(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_destroy(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_task_cancel(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_event_wait(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_pool_join_token_create(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vm_power(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_host_power(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_sr_create(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_obj_op(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vm_migrate(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_host_evacuate(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_host_prevent_evacuation(struct xe_ctx *c, const struct xe_cmd *cmd);
/* xe_master.c */
int xe_cmd_pool_designate_new_master(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_pool_emergency_transition_to_master(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_pool_emergency_reset_master(struct xe_ctx *c, const struct xe_cmd *cmd);
/* xe_ha.c */
int xe_cmd_pool_ha_enable(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_pool_ha_disable(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_host_emergency_ha_disable(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_pool_ha_prevent_restarts_for(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_pool_ha_compute_max(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_pool_ha_compute_hypothetical(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_pool_ha_plan(struct xe_ctx *c, const struct xe_cmd *cmd);
/* xe_rpu.c */
int xe_cmd_pool_rolling_upgrade(struct xe_ctx *c, const struct xe_cmd *cmd);
/* xe_vmops.c */
int xe_cmd_vm_reboot(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vm_suspend(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vm_resume(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vm_reset_powerstate(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vm_snapshot(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vm_checkpoint(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vm_copy(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_snapshot_revert(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_snapshot_destroy(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_snapshot_clone(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_snapshot_uninstall(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vm_memory(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vm_vcpu_hotplug(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_host_life(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_host_forget(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_pool_eject(struct xe_ctx *c, const struct xe_cmd *cmd);
/* xe_devices.c */
int xe_cmd_vm_disk_add(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vm_disk_remove(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vm_disk_list(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vm_cd_add(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vm_cd_remove(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vm_cd_insert(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vm_cd_eject(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vm_vif_list(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vif_create(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_dev_op(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vbd_insert(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vdi_copy_op(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_vdi_resize(struct xe_ctx *c, const struct xe_cmd *cmd);
int xe_cmd_network_create(struct xe_ctx *c, const struct xe_cmd *cmd);
/* XAPI's user_says_yes: true with force=true, else when the user types
 * yes; false when nobody can answer (stdin at its end). */
bool xe_confirmed(struct xe_ctx *c);
/* The snapshot named by snapshot-uuid= or uuid= (it must be one); NULL + error. */
char *xe_snapshot_select(struct xe_ctx *c);
/* vm-migrate's checks before any call (another pool refused, host or
 * host-uuid required, booleans and max-downtime-ms parsed) and the options
 * map of strings for VM.pool_migrate / VM.migrate_send without "network"
 * (new ref), or NULL with the error. */
json_t *xe_migrate_opts(struct xe_ctx *c);
/* The in-place progress line (without \r) and the closing line of
 * vm-migrate; result is task.result, empty or a JSON object of the
 * migration's stats (downtime_ms, wire_bytes). malloc'ed. */
char *xe_migrate_progress(double progress, double elapsed, const char *status);
char *xe_migrate_summary(double elapsed, const char *result);
/* XAPI's Vm_selectors / Host_selectors: the refs picked (a new array,
 * at least one; several only with --multiple), or NULL with the error. */
json_t *xe_select(struct xe_ctx *c, const struct xe_cmd *cmd, bool vms, bool include_cd);
/* fn(vm or host ref, arg) on each object the selectors pick; stops at the
 * first failure. 0 or -1. */
int xe_each(struct xe_ctx *c, const struct xe_cmd *cmd, bool vms, int (*fn)(struct xe_ctx *, const char *, void *),
	    void *arg);
/* A host by uuid or name-label (XAPI's get_host_by_name_or_id); NULL + error. */
char *xe_host_by_name_or_id(struct xe_ctx *c, const char *v);
/* ---- xe_sxm.c: storage migration ---- */
/* Does vm-migrate ask for a storage migration (vdi:, vif:, copy)? */
bool xe_sxm_wanted(struct xe_ctx *c);
/* host.migrate_receive (on net, or host's management network) and
 * Async.VM.migrate_send with the vdi:/vif: maps: the task ref, or NULL
 * with the error. */
char *xe_sxm_start(struct xe_ctx *c, const char *vm, const char *host, const char *net, json_t *opts);
int xe_cmd_vdi_pool_migrate(struct xe_ctx *c, const struct xe_cmd *cmd);
/* ---- xe_task.c: following a task on a terminal ---- */
/* The terminal's size (80x24 when f is none). */
void xe_term_size(FILE *f, int *cols, int *rows);
/* A line that never wraps: at most cols - 1 characters. */
void xe_put_line(FILE *f, const char *s, int cols);
/* CLOCK_MONOTONIC in seconds. */
double xe_now_s(void);
/* Called on each poll of a followed task: its record, whether it ended,
 * and whether it succeeded. */
typedef void (*xe_task_draw_fn)(struct xe_ctx *c, json_t *rec, bool over, bool ok, void *arg);
/* The one task-following loop: task.get_record every period_ms until the
 * task ends, draw (if any) each time; 0 on success, -1 with the task's
 * error_info (else "The <what> task ended with status S"). */
int xe_task_follow(struct xe_ctx *c, const char *task, int period_ms, const char *what, xe_task_draw_fn draw,
		   void *arg);
/* Follow a migration's task (show: the progress line on c->out, then the
 * summary); 0 on success, -1 with the task's error. */
int xe_task_wait(struct xe_ctx *c, const char *task, double start, bool show);
/* task.destroy, keeping the error that ended the command. */
void xe_task_forget(struct xe_ctx *c, const char *task);
/* VM ref from vm=NAME|UUID or uuid=; NULL with error. */
char *xe_vm_select(struct xe_ctx *c);
/* Print the uuid of the object ref of class cls; 0 or -1. */
int xe_print_uuid(struct xe_ctx *c, const char *cls, const char *ref);
/* "prefix:k=v" parameters as a JSON map (marks them used; new ref). */
json_t *xe_map_params(struct xe_ctx *c, const char *prefix);
/* A command's boolean parameter (dflt when absent); 0, or -1 with error. */
int xe_bool_param(struct xe_ctx *c, const char *key, bool dflt, bool *out);

#endif
