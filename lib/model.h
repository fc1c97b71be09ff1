/*
 * model.h - the XAPI data model, declared once.
 *
 * Every class poold stores and serves, with every field a record carries,
 * its type, who may write it and its default. From this one table poold
 * derives storage, record validation, the generated get_<field>/set_<field>
 * methods and the reverse-reference sets (VM.VBDs from VBD.VM); `xe` derives
 * its field names, (RO)/(RW) qualifiers and how to print each value.
 */
#ifndef MODEL_H
#define MODEL_H

#include <stdbool.h>
#include <time.h>
#include <stddef.h>
#include <jansson.h>

enum fld_type {
	FT_STRING,
	FT_INT,      /* JSON number (int64) */
	FT_FLOAT,
	FT_BOOL,
	FT_DATETIME, /* "20261123T04:58:14Z" */
	FT_ENUM,     /* string, one of fld_target ("a|b|c") */
	FT_REF,      /* "OpaqueRef:..." of class fld_target, or OpaqueRef:NULL */
	FT_SET_REF,  /* [ref...]; when fld_inverse is set, maintained by poold */
	FT_SET_STRING,
	FT_MAP,      /* {string: string} */
	FT_MAP_ANY,  /* {string: any} (current_operations, blobs, ...) */
};

enum fld_qual {
	QUAL_RW,      /* settable with <Class>.set_<field> */
	QUAL_RO_CTOR, /* given at creation, read-only afterwards */
	QUAL_RO_RUN,  /* maintained by poold */
};

struct model_field {
	const char *fld_name;
	enum fld_type fld_type;
	enum fld_qual fld_qual;
	const char *fld_target;  /* FT_REF/FT_SET_REF: class; FT_ENUM: "a|b|c" */
	const char *fld_inverse; /* FT_SET_REF: the FT_REF field of fld_target pointing back */
	const char *fld_dflt;    /* default as JSON text; NULL = the type's empty value */
	int fld_since;           /* schema version that added the field */
};

struct model_class {
	const char *mc_name;     /* "VM" as on the wire */
	const char *mc_cli;      /* "vm" as in xe vm-list */
	const struct model_field *mc_fields;
	size_t mc_nfields;
	bool mc_name_label;      /* has name_label and get_by_name_label */
	bool mc_generic_create;  /* <Class>.create(record) is the generic constructor */
	bool mc_generic_destroy; /* <Class>.destroy(ref) is the generic destructor */
};

extern const struct model_class model_classes[];
extern const size_t model_nclasses;
/* The highest fld_since in the table: the schema version poold writes. */
int model_schema_version(void);

const struct model_class *model_class_find(const char *name);
/* Case-insensitive, as XAPI's event.from accepts "vm" for VM. */
const struct model_class *model_class_find_ci(const char *name);
const struct model_class *model_class_by_cli(const char *cli);
const struct model_field *model_field_find(const struct model_class *c, const char *name);

/* New reference to the default value of a field. */
json_t *model_default(const struct model_field *f);
/* true when v has the field's wire type (enum values and ref shape checked). */
bool model_value_ok(const struct model_field *f, const json_t *v);
/* v as field f's wire type where it is another spelling of it, as XAPI
 * reads its arguments: an int or float given as decimal text (XML-RPC
 * clients send int64 so: <i4> is 32 bits), a float given as an int. A new
 * reference: the converted value, or v itself. */
json_t *model_coerce(const struct model_field *f, json_t *v);
/* The same for every field of record rec of class c, in place. */
void model_record_coerce(const struct model_class *c, json_t *rec);
/* A full record of class c with every field at its default. */
json_t *model_new_record(const struct model_class *c);

#define MODEL_NULL_REF "OpaqueRef:NULL"
/* "OpaqueRef:<uuid v4>" and "<uuid v4>" into buffers of >= 48 bytes. */
void model_new_ref(char *out);
void model_new_uuid(char *out);
bool model_is_uuid(const char *s);
/* Now as an XAPI datetime "YYYYMMDDTHH:MM:SSZ" (buffer >= 32). */
void model_now(char *out);
/* An XAPI datetime as seconds since the epoch (UTC); 0 when malformed. */
time_t model_time_parse(const char *s);

#endif
