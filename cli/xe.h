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
/* Split "key=value" into kv (strdup'ed). Bare words get val NULL. */
void xe_kv_split(const char *arg, struct xe_kv *kv);
/* Sizes: "1GiB", "512MiB", "4KiB", "2TiB", "10G", "100" (bytes); suffixes in
 * any case, "bytes"/"B" and a space before the suffix accepted (XAPI's
 * Record_util.bytes_of_string). -1 when bad. */
long long xe_parse_size(const char *s);
/* sr-create's physical-size: a size, 0 when absent or bad (as XAPI). */
long long xe_physical_size(const char *s);
/* XAPI's bool_of_string: true/t/1, false/f/0 (any case). 0 ok, -1 bad. */
int xe_parse_bool(const char *v, bool *out);

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
};

int xe_connect(struct xe_ctx *c);
int xe_login(struct xe_ctx *c);
void xe_logout(struct xe_ctx *c);
void xe_ctx_free(struct xe_ctx *c);
/* Call method with the session first and params packed from fmt (a
 * json_pack format of the remaining parameters, "" for none). New
 * reference, or NULL with c->xerr / c->msg set. */
json_t *xe_rpc(struct xe_ctx *c, const char *method, const char *fmt, ...);
/* The same without a session parameter; params is stolen. */
json_t *xe_call(struct xe_ctx *c, const char *method, json_t *params);
/* A CLI error text (printf); always returns -1. */
int xe_fail(struct xe_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print the pending error to stderr. */
void xe_print_error(const struct xe_ctx *c, FILE *f);
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
/* Growable text. */
struct xe_buf {
	char *s;
	size_t len, cap;
};
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
/* true when rec satisfies "name=value" / "map:key=value" (neq: "/="). */
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
/* vm-migrate's checks before any call (storage migration refused, host or
 * host-uuid required, booleans and max-downtime-ms parsed) and the options
 * map of strings for VM.pool_migrate without "network" (new ref), or NULL
 * with the error. */
json_t *xe_migrate_opts(struct xe_ctx *c);
/* The in-place progress line (without \r) and the closing line of
 * vm-migrate; result is task.result, empty or a JSON object of the
 * migration's stats (downtime_ms, wire_bytes). malloc'ed. */
char *xe_migrate_progress(double progress, double elapsed, const char *status);
char *xe_migrate_summary(double elapsed, const char *result);
/* VM ref from vm=NAME|UUID or uuid=; NULL with error. */
char *xe_vm_select(struct xe_ctx *c);
/* Print the uuid of the object ref of class cls; 0 or -1. */
int xe_print_uuid(struct xe_ctx *c, const char *cls, const char *ref);
/* "prefix:k=v" parameters as a JSON map (marks them used; new ref). */
json_t *xe_map_params(struct xe_ctx *c, const char *prefix);
/* A command's boolean parameter (dflt when absent); 0, or -1 with error. */
int xe_bool_param(struct xe_ctx *c, const char *key, bool dflt, bool *out);

#endif
