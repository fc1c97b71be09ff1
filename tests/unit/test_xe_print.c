/*
 * test_xe_print.c - unit tests for the xe CLI's pure parts: the record
 * printer (alignment, qualifiers, separators), value rendering (maps, sets,
 * floats, enums, refs through a pre-filled cache), --minimal escaping,
 * size suffixes, argument parsing and option precedence, the per-class CLI
 * field tables, parameter checks (vm-migrate's refusals among them), the
 * vm-migrate progress and summary lines and help wrapping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "xe.h"

/* Run fn-like code writing to a memory stream; returns the text. */
struct mem {
	char *buf;
	size_t len;
	FILE *f;
};

static void mem_open(struct mem *m)
{
	m->buf = NULL;
	m->len = 0;
	m->f = open_memstream(&m->buf, &m->len);
	assert_non_null(m->f);
}

static char *mem_close(struct mem *m)
{
	fclose(m->f);
	return m->buf;
}

static void test_record_layout(void **state)
{
	(void)state;
	struct mem m;
	mem_open(&m);
	const char *labels[] = {"uuid ( RO)", "name-label ( RW)", "power-state ( RO)"};
	const char *values[] = {"u1", "Control domain", "running"};
	xe_print_record(m.f, labels, values, 3);
	char *out = mem_close(&m);
	assert_string_equal(out, "uuid ( RO)           : u1\n"
				 "     name-label ( RW): Control domain\n"
				 "    power-state ( RO): running\n"
				 "\n\n");
	free(out);
}

static void test_help_layout(void **state)
{
	(void)state;
	struct mem m;
	mem_open(&m);
	const char *labels[] = {"command name        ", "reqd params     "};
	const char *values[] = {"vm-install", "new-name-label"};
	xe_print_record(m.f, labels, values, 2);
	char *out = mem_close(&m);
	assert_string_equal(out, "command name            : vm-install\n"
				 "        reqd params     : new-name-label\n\n\n");
	free(out);
}

static void test_minimal_escape(void **state)
{
	(void)state;
	char *e = xe_minimal_escape("a,b\\c");
	assert_string_equal(e, "a\\,b\\\\c");
	free(e);
	struct mem m;
	mem_open(&m);
	const char *values[] = {"x,y", "z"};
	xe_print_minimal(m.f, values, 2);
	char *out = mem_close(&m);
	assert_string_equal(out, "x\\,y,z\n");
	free(out);
	mem_open(&m);
	xe_print_minimal(m.f, NULL, 0);
	out = mem_close(&m);
	assert_string_equal(out, "\n");
	free(out);
}

static const struct model_field *field(const char *cls, const char *name)
{
	const struct model_field *f = model_field_find(model_class_find(cls), name);
	assert_non_null(f);
	return f;
}

static void test_qualifiers(void **state)
{
	(void)state;
	assert_string_equal(xe_qual(field("VM", "uuid")), " RO");
	assert_string_equal(xe_qual(field("VM", "name_label")), " RW");
	assert_string_equal(xe_qual(field("VM", "other_config")), "MRW");
	assert_string_equal(xe_qual(field("VM", "platform")), "MRW");
	assert_string_equal(xe_qual(field("VM", "last_boot_CPU_flags")), "MRO");
	assert_string_equal(xe_qual(field("VM", "tags")), "SRW");
	assert_string_equal(xe_qual(field("VM", "VBDs")), "SRO");
	assert_string_equal(xe_qual(field("VM", "current_operations")), "SRO");
	char *l = xe_label("uuid", " RO");
	assert_string_equal(l, "uuid ( RO)");
	free(l);
}

static void test_render(void **state)
{
	(void)state;
	json_t *m = json_pack("{s:s, s:s}", "k", "v", "k2", "v2");
	char *s = xe_render(FT_MAP, m, NULL);
	assert_string_equal(s, "k: v; k2: v2");
	free(s);
	json_decref(m);
	json_t *a = json_pack("[s, s]", "a", "b");
	s = xe_render(FT_SET_STRING, a, NULL);
	assert_string_equal(s, "a; b");
	free(s);
	s = xe_render(FT_SET_STRING, a, ", ");
	assert_string_equal(s, "a, b");
	free(s);
	json_decref(a);
	json_t *v = json_real(1.0);
	s = xe_render(FT_FLOAT, v, NULL);
	assert_string_equal(s, "1.000");
	free(s);
	json_decref(v);
	v = json_integer(3);
	s = xe_render(FT_FLOAT, v, NULL);
	assert_string_equal(s, "3.000");
	free(s);
	json_decref(v);
	s = xe_render(FT_BOOL, json_true(), NULL);
	assert_string_equal(s, "true");
	free(s);
	v = json_integer(-1);
	s = xe_render(FT_INT, v, NULL);
	assert_string_equal(s, "-1");
	free(s);
	json_decref(v);
	json_t *empty = json_object();
	s = xe_render(FT_MAP, empty, NULL);
	assert_string_equal(s, "");
	free(s);
	json_decref(empty);
}

static void test_enum_cli(void **state)
{
	(void)state;
	assert_string_equal(xe_enum_cli("VM", "power_state", "Running"), "running");
	assert_string_equal(xe_enum_cli("VM", "power_state", "Halted"), "halted");
	assert_string_equal(xe_enum_cli("VM", "actions_after_crash", "restart"), "Restart");
	assert_string_equal(xe_enum_cli("VDI", "type", "user"), "User");
	assert_string_equal(xe_enum_cli("VBD", "mode", "RW"), "RW");
	assert_string_equal(xe_enum_cli("task", "status", "pending"), "pending");
}

static void test_sizes(void **state)
{
	(void)state;
	assert_int_equal(xe_parse_size("0"), 0);
	assert_int_equal(xe_parse_size("1024"), 1024);
	assert_int_equal(xe_parse_size("4KiB"), 4096);
	assert_int_equal(xe_parse_size("512MiB"), 512LL << 20);
	assert_int_equal(xe_parse_size("1GiB"), 1LL << 30);
	assert_int_equal(xe_parse_size("2TiB"), 2LL << 40);
	assert_int_equal(xe_parse_size("10G"), 10LL << 30);
	assert_int_equal(xe_parse_size("1GB"), 1LL << 30);
	assert_int_equal(xe_parse_size("1.5GiB"), -1);
	assert_int_equal(xe_parse_size("GiB"), -1);
	assert_int_equal(xe_parse_size("-1"), -1);
	assert_int_equal(xe_parse_size("1XiB"), -1);
	assert_int_equal(xe_parse_size(""), -1);
	assert_int_equal(xe_parse_size("99999999999TiB"), -1);
	/* XAPI's bytes_of_string: any case, "bytes", a space before the suffix */
	assert_int_equal(xe_parse_size("10gib"), 10LL << 30);
	assert_int_equal(xe_parse_size("3 MiB"), 3LL << 20);
	assert_int_equal(xe_parse_size("7bytes"), 7);
	/* sr-create physical-size: absent or bad -> 0, as XAPI */
	assert_int_equal(xe_physical_size(NULL), 0);
	assert_int_equal(xe_physical_size("1GiB"), 1LL << 30);
	assert_int_equal(xe_physical_size("100"), 100);
	assert_int_equal(xe_physical_size("lots"), 0);
	assert_int_equal(xe_physical_size("-5"), 0);
}

static void test_kv_split(void **state)
{
	(void)state;
	struct xe_kv kv;
	xe_kv_split("name-label=a=b", &kv);
	assert_string_equal(kv.key, "name-label");
	assert_string_equal(kv.val, "a=b");
	free(kv.key);
	free(kv.val);
	xe_kv_split("other-config:k=v", &kv);
	assert_string_equal(kv.key, "other-config:k");
	assert_string_equal(kv.val, "v");
	free(kv.key);
	free(kv.val);
	xe_kv_split("empty=", &kv);
	assert_string_equal(kv.val, "");
	free(kv.key);
	free(kv.val);
	xe_kv_split("vm-install", &kv);
	assert_string_equal(kv.key, "vm-install");
	assert_null(kv.val);
	free(kv.key);
}

static void test_opts(void **state)
{
	(void)state;
	char *argv[] = {"-s", "h1", "-p", "4443", "-u", "root", "-pw", "pw", "vm-list", "--minimal",
			"params=uuid", "other-config:k=v"};
	struct xe_opts o;
	char err[256];
	assert_int_equal(xe_opts_parse(&o, 12, argv, err, sizeof err), 0);
	assert_string_equal(o.server, "h1");
	assert_int_equal(o.port, 4443);
	assert_string_equal(o.username, "root");
	assert_string_equal(o.password, "pw");
	assert_string_equal(o.cmd, "vm-list");
	assert_true(o.minimal);
	assert_int_equal(o.nkv, 2);
	assert_string_equal(o.kv[1].key, "other-config:k");
	xe_opts_free(&o);

	char *bad[] = {"-p", "notaport", "vm-list"};
	assert_int_equal(xe_opts_parse(&o, 3, bad, err, sizeof err), -1);
	assert_string_equal(err, "Invalid port: notaport");
	xe_opts_free(&o);
	char *missing[] = {"-s"};
	assert_int_equal(xe_opts_parse(&o, 1, missing, err, sizeof err), -1);
	xe_opts_free(&o);
}

static void test_precedence(void **state)
{
	(void)state;
	char path[] = "/tmp/test_xe_rcXXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *text = "server=fromfile\nport=1111\nusername=fileuser\npassword=filepw\n# comment\n";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	setenv("XE_SERVER", "fromenv", 1);
	unsetenv("XE_PORT");
	unsetenv("XE_USERNAME");
	unsetenv("XE_PASSWORD");
	unsetenv("XE_CACERT");
	char *argv[] = {"-u", "cmdline", "vm-list"};
	struct xe_opts o;
	char err[256];
	assert_int_equal(xe_opts_parse(&o, 3, argv, err, sizeof err), 0);
	assert_int_equal(xe_opts_defaults(&o, path, err, sizeof err), 0);
	assert_string_equal(o.server, "fromenv");  /* env over file */
	assert_string_equal(o.username, "cmdline"); /* command line over everything */
	assert_string_equal(o.password, "filepw");
	assert_int_equal(o.port, 1111);
	xe_opts_free(&o);
	setenv("XE_PORT", "2222", 1);
	assert_int_equal(xe_opts_parse(&o, 3, argv, err, sizeof err), 0);
	assert_int_equal(xe_opts_defaults(&o, "/nonexistent/.xe", err, sizeof err), 0);
	assert_int_equal(o.port, 2222);
	xe_opts_free(&o);
	unsetenv("XE_PORT");
	unsetenv("XE_SERVER");
	assert_int_equal(xe_opts_parse(&o, 3, argv, err, sizeof err), 0);
	assert_int_equal(xe_opts_defaults(&o, NULL, err, sizeof err), 0);
	assert_int_equal(o.port, 443);
	xe_opts_free(&o);
	unlink(path);
}

static void test_vm_fields(void **state)
{
	(void)state;
	struct xe_cls x;
	assert_int_equal(xe_cls_build("vm", &x), 0);
	assert_non_null(xe_fdef_find(&x, "VCPUs-max"));
	assert_non_null(xe_fdef_find(&x, "PV-args"));
	assert_non_null(xe_fdef_find(&x, "dom-id"));
	assert_null(xe_fdef_find(&x, "domid"));
	assert_null(xe_fdef_find(&x, "metrics"));
	assert_string_equal(xe_fdef_find(&x, "memory-actual")->qual, " RO");
	assert_string_equal(xe_fdef_find(&x, "other-config")->qual, "MRW");
	/* memory-actual follows power-state */
	size_t i;
	for (i = 0; i < x.n && strcmp(x.f[i].cli, "power-state"); i++)
		;
	assert_string_equal(x.f[i + 1].cli, "memory-actual");
	assert_string_equal(x.f[0].cli, "uuid");
	xe_cls_free(&x);
	assert_int_equal(xe_cls_build("vbd", &x), 0);
	const char *lead[] = {"uuid", "vm-uuid", "vm-name-label", "vdi-uuid", "vdi-name-label"};
	for (i = 0; i < 5; i++)
		assert_string_equal(x.f[i].cli, lead[i]);
	xe_cls_free(&x);
	assert_int_equal(xe_cls_build("nosuch", &x), -1);
}

/* A context whose cache already holds the records refs point at. */
static void fake_ctx(struct xe_ctx *c, struct xe_opts *o, FILE *out)
{
	memset(c, 0, sizeof *c);
	memset(o, 0, sizeof *o);
	c->opts = o;
	c->out = out;
	c->cache = json_pack("{s:{s:{s:s, s:s}}, s:{s:{s:I}}}", "host", "OpaqueRef:h1", "uuid", "host-uuid",
			     "name_label", "xs1", "VM_metrics", "OpaqueRef:m1", "memory_actual",
			     (json_int_t)1024);
}

static void test_values_and_list(void **state)
{
	(void)state;
	struct mem m;
	mem_open(&m);
	struct xe_ctx c;
	struct xe_opts o;
	fake_ctx(&c, &o, m.f);
	struct xe_cls x;
	assert_int_equal(xe_cls_build("vm", &x), 0);
	json_t *recs = json_pack("{s:{s:s, s:s, s:s, s:s, s:s, s:[s, s], s:{s:s}}}", "OpaqueRef:v1", "uuid", "u1",
				 "name_label", "a,b", "power_state", "Running", "resident_on", "OpaqueRef:h1",
				 "metrics", "OpaqueRef:m1", "tags", "t1", "t2", "other_config", "k", "v");
	json_t *rec = json_object_get(recs, "OpaqueRef:v1");
	char *s = xe_fvalue(&c, xe_fdef_find(&x, "resident-on"), rec);
	assert_string_equal(s, "host-uuid");
	free(s);
	s = xe_fvalue(&c, xe_fdef_find(&x, "memory-actual"), rec);
	assert_string_equal(s, "1024");
	free(s);
	s = xe_fvalue(&c, xe_fdef_find(&x, "affinity"), rec);
	assert_string_equal(s, "<not in database>");
	free(s);
	s = xe_fvalue(&c, xe_fdef_find(&x, "tags"), rec);
	assert_string_equal(s, "t1, t2");
	free(s);
	assert_true(xe_match(&c, &x, rec, "power-state", "running", false));
	assert_true(xe_match(&c, &x, rec, "power-state", "halted", true));
	assert_true(xe_match(&c, &x, rec, "other-config:k", "v", false));
	assert_false(xe_match(&c, &x, rec, "other-config:k", "w", false));
	assert_true(xe_match(&c, &x, rec, "tags", "t2", false));
	assert_false(xe_match(&c, &x, rec, "no-such-field", "x", false));
	xe_print_records(&c, &x, recs, NULL);
	o.minimal = true;
	xe_print_records(&c, &x, recs, "name-label");
	char *out = mem_close(&m);
	assert_string_equal(out, "uuid ( RO)           : u1\n"
				 "     name-label ( RW): a,b\n"
				 "    power-state ( RO): running\n\n\n"
				 "a\\,b\n");
	free(out);
	json_decref(recs);
	xe_cls_free(&x);
	xe_ctx_free(&c);
}

static void test_parse_value(void **state)
{
	(void)state;
	struct xe_ctx c;
	struct xe_opts o;
	fake_ctx(&c, &o, stdout);
	json_t *v = xe_parse_value(&c, "VM", field("VM", "VCPUs_max"), "4");
	assert_int_equal(json_integer_value(v), 4);
	json_decref(v);
	v = xe_parse_value(&c, "VM", field("VM", "memory_static_max"), "2GiB");
	assert_int_equal(json_integer_value(v), 2LL << 30);
	json_decref(v);
	v = xe_parse_value(&c, "VM", field("VM", "actions_after_crash"), "Restart");
	assert_string_equal(json_string_value(v), "restart");
	json_decref(v);
	v = xe_parse_value(&c, "VM", field("VM", "tags"), "a,b");
	assert_int_equal(json_array_size(v), 2);
	json_decref(v);
	v = xe_parse_value(&c, "VM", field("VM", "is_a_template"), "true");
	assert_true(json_is_true(v));
	json_decref(v);
	v = xe_parse_value(&c, "VM", field("VM", "HVM_shadow_multiplier"), "2.5");
	assert_true(json_real_value(v) == 2.5);
	json_decref(v);
	assert_null(xe_parse_value(&c, "VM", field("VM", "VCPUs_max"), "many"));
	assert_non_null(c.msg);
	xe_ctx_free(&c);
}

static void test_check_params(void **state)
{
	(void)state;
	struct xe_ctx c;
	struct xe_opts o;
	char err[64];
	char *argv[] = {"vm-param-get", "uuid=x"};
	assert_int_equal(xe_opts_parse(&o, 2, argv, err, sizeof err), 0);
	memset(&c, 0, sizeof c);
	c.opts = &o;
	assert_int_equal(xe_check_params(&c, xe_cmd_find("vm-param-get")), -1);
	assert_string_equal(c.msg, "Required parameter not found: param-name");
	xe_ctx_free(&c);
	xe_opts_free(&o);
	char *argv2[] = {"vm-clone", "new-name-label=a", "bogus=1"};
	assert_int_equal(xe_opts_parse(&o, 3, argv2, err, sizeof err), 0);
	memset(&c, 0, sizeof c);
	c.opts = &o;
	assert_int_equal(xe_check_params(&c, xe_cmd_find("vm-clone")), -1);
	assert_string_equal(c.msg, "Unknown parameter: bogus");
	xe_ctx_free(&c);
	xe_opts_free(&o);
	assert_null(xe_cmd_find("nope"));
	assert_non_null(xe_cmd_find("template-list"));
}

/* Parse argv into o and a context c (no server). */
static void ctx_for(struct xe_ctx *c, struct xe_opts *o, int argc, char **argv)
{
	char err[64];
	assert_int_equal(xe_opts_parse(o, argc, argv, err, sizeof err), 0);
	memset(c, 0, sizeof *c);
	c->opts = o;
}

static void ctx_done(struct xe_ctx *c, struct xe_opts *o)
{
	xe_ctx_free(c);
	xe_opts_free(o);
}

static void test_sr_create_params(void **state)
{
	(void)state;
	struct xe_ctx c;
	struct xe_opts o;
	char *argv[] = {"sr-create", "name-label=s", "type=file", "device-config:path=/srv/sr",
			"device-config:opt=a=b", "sm-config:k=v", "physical-size=10GiB", "shared=true"};
	ctx_for(&c, &o, 8, argv);
	assert_int_equal(xe_check_params(&c, xe_cmd_find("sr-create")), 0);
	json_t *dc = xe_map_params(&c, "device-config");
	assert_int_equal(json_object_size(dc), 2);
	assert_string_equal(json_string_value(json_object_get(dc, "path")), "/srv/sr");
	assert_string_equal(json_string_value(json_object_get(dc, "opt")), "a=b");
	json_decref(dc);
	json_t *smc = xe_map_params(&c, "sm-config");
	assert_int_equal(json_object_size(smc), 1);
	assert_string_equal(json_string_value(json_object_get(smc, "k")), "v");
	json_decref(smc);
	json_t *none = xe_map_params(&c, "other-config");
	assert_int_equal(json_object_size(none), 0);
	json_decref(none);
	assert_int_equal(xe_physical_size(xe_param(&c, "physical-size")), 10LL << 30);
	bool shared = false;
	assert_int_equal(xe_bool_param(&c, "shared", false, &shared), 0);
	assert_true(shared);
	ctx_done(&c, &o);

	/* required name-label and type; unknown and bare map prefixes refused */
	char *argv2[] = {"sr-create", "name-label=s"};
	ctx_for(&c, &o, 2, argv2);
	assert_int_equal(xe_check_params(&c, xe_cmd_find("sr-create")), -1);
	assert_string_equal(c.msg, "Required parameter not found: type");
	ctx_done(&c, &o);
	char *argv3[] = {"sr-create", "name-label=s", "type=file", "device-config=x"};
	ctx_for(&c, &o, 4, argv3);
	assert_int_equal(xe_check_params(&c, xe_cmd_find("sr-create")), -1);
	assert_string_equal(c.msg, "Unknown parameter: device-config");
	ctx_done(&c, &o);
	char *argv4[] = {"sr-create", "name-label=s", "type=file", "other-config:a=b"};
	ctx_for(&c, &o, 4, argv4);
	assert_int_equal(xe_check_params(&c, xe_cmd_find("sr-create")), -1);
	assert_string_equal(c.msg, "Unknown parameter: other-config:a");
	ctx_done(&c, &o);
}

static void test_bool_params(void **state)
{
	(void)state;
	bool b = false;
	assert_int_equal(xe_parse_bool("TRUE", &b), 0);
	assert_true(b);
	assert_int_equal(xe_parse_bool("f", &b), 0);
	assert_false(b);
	assert_int_equal(xe_parse_bool("1", &b), 0);
	assert_true(b);
	assert_int_equal(xe_parse_bool("0", &b), 0);
	assert_false(b);
	assert_int_equal(xe_parse_bool("maybe", &b), -1);
	assert_int_equal(xe_parse_bool("yes", &b), -1);
	struct xe_ctx c;
	struct xe_opts o;
	char *argv[] = {"vm-start", "vm=a", "paused=perhaps"};
	ctx_for(&c, &o, 3, argv);
	assert_int_equal(xe_bool_param(&c, "force", true, &b), 0);
	assert_true(b); /* absent: the default */
	assert_int_equal(xe_bool_param(&c, "paused", false, &b), -1);
	assert_string_equal(c.msg, "Failed to parse parameter 'paused': expecting 'true' or 'false'");
	ctx_done(&c, &o);
}

static void test_new_command_params(void **state)
{
	(void)state;
	struct xe_ctx c;
	struct xe_opts o;
	/* vm selectors: vm=, uuid=, any field filter, --multiple */
	char *argv[] = {"vm-start", "vm=a", "on=h1", "paused=true", "force=true", "power-state=halted",
			"--multiple"};
	ctx_for(&c, &o, 7, argv);
	assert_int_equal(xe_check_params(&c, xe_cmd_find("vm-start")), 0);
	ctx_done(&c, &o);
	char *argv2[] = {"vm-shutdown", "uuid=x", "force=true"};
	ctx_for(&c, &o, 3, argv2);
	assert_int_equal(xe_check_params(&c, xe_cmd_find("vm-shutdown")), 0);
	ctx_done(&c, &o);
	/* --flag is flag=true (XAPI's CLI server): a selector command takes it
	 * as a field filter (refused when selecting), another refuses it */
	char *argv3[] = {"vm-pause", "--bogus"};
	ctx_for(&c, &o, 2, argv3);
	assert_int_equal(xe_check_params(&c, xe_cmd_find("vm-pause")), 0);
	assert_string_equal(xe_param(&c, "bogus"), "true");
	ctx_done(&c, &o);
	char *argv3b[] = {"pbd-plug", "uuid=x", "--bogus"};
	ctx_for(&c, &o, 3, argv3b);
	assert_int_equal(xe_check_params(&c, xe_cmd_find("pbd-plug")), -1);
	assert_string_equal(c.msg, "Unknown parameter: bogus");
	ctx_done(&c, &o);
	/* uuid-only commands */
	static const char *const uuid_cmds[] = {"pbd-plug", "pbd-unplug", "sr-destroy", "sr-forget"};
	for (size_t i = 0; i < sizeof uuid_cmds / sizeof uuid_cmds[0]; i++) {
		char *a[] = {(char *)uuid_cmds[i], "force=true"};
		ctx_for(&c, &o, 2, a);
		assert_int_equal(xe_check_params(&c, xe_cmd_find(uuid_cmds[i])), -1);
		assert_string_equal(c.msg, "Required parameter not found: uuid");
		ctx_done(&c, &o);
	}
	char *argv4[] = {"pool-join-token-create", "expiry=600"};
	ctx_for(&c, &o, 2, argv4);
	assert_int_equal(xe_check_params(&c, xe_cmd_find("pool-join-token-create")), 0);
	ctx_done(&c, &o);
	char *argv5[] = {"pool-join-token-create", "expiry=600", "ttl=1"};
	ctx_for(&c, &o, 3, argv5);
	assert_int_equal(xe_check_params(&c, xe_cmd_find("pool-join-token-create")), -1);
	assert_string_equal(c.msg, "Unknown parameter: ttl");
	ctx_done(&c, &o);
	char *argv6[] = {"host-disable", "uuid=x"};
	ctx_for(&c, &o, 2, argv6);
	assert_int_equal(xe_check_params(&c, xe_cmd_find("host-disable")), 0);
	ctx_done(&c, &o);
	static const char *const names[] = {"pool-join-token-create", "vm-start", "vm-shutdown", "vm-pause",
					    "vm-unpause", "sr-create", "pbd-plug", "pbd-unplug", "sr-destroy",
					    "sr-forget", "host-enable", "host-disable"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		assert_non_null(xe_cmd_find(names[i]));
}

/* vm-migrate: parameter checks and refusals, all before any call */
static void test_vm_migrate_args(void **state)
{
	(void)state;
	struct xe_ctx c;
	struct xe_opts o;
	const struct xe_cmd *cmd = xe_cmd_find("vm-migrate");
	assert_non_null(cmd);
	assert_true(cmd->flags & XE_CMD_VMSEL);

	char *argv[] = {"vm-migrate", "vm=a", "host=h1", "--live", "compress=false", "max-downtime-ms=100",
			"verify=true", "network-uuid=n1", "power-state=running"};
	ctx_for(&c, &o, 9, argv);
	assert_int_equal(xe_check_params(&c, cmd), 0);
	json_t *opts = xe_migrate_opts(&c);
	assert_non_null(opts);
	assert_int_equal(json_object_size(opts), 4);
	assert_string_equal(json_string_value(json_object_get(opts, "live")), "true");
	assert_string_equal(json_string_value(json_object_get(opts, "compress")), "false");
	assert_string_equal(json_string_value(json_object_get(opts, "verify")), "true");
	assert_string_equal(json_string_value(json_object_get(opts, "max_downtime_ms")), "100");
	assert_null(json_object_get(opts, "force")); /* only when given */
	assert_null(json_object_get(opts, "network")); /* a ref, looked up later */
	json_decref(opts);
	ctx_done(&c, &o);

	char *argv1[] = {"vm-migrate", "uuid=u", "host-uuid=h", "live=false", "force=true"};
	ctx_for(&c, &o, 5, argv1);
	assert_int_equal(xe_check_params(&c, cmd), 0);
	opts = xe_migrate_opts(&c);
	assert_int_equal(json_object_size(opts), 2);
	assert_string_equal(json_string_value(json_object_get(opts, "live")), "false");
	assert_string_equal(json_string_value(json_object_get(opts, "force")), "true");
	json_decref(opts);
	ctx_done(&c, &o);

	/* no destination */
	char *argv2[] = {"vm-migrate", "vm=a", "live=true"};
	ctx_for(&c, &o, 3, argv2);
	assert_int_equal(xe_check_params(&c, cmd), 0);
	assert_int_equal(xe_cmd_vm_migrate(&c, cmd), -1);
	assert_string_equal(c.msg, "Required parameter not found: host (or host-uuid)");
	ctx_done(&c, &o);

	/* unknown parameters: a bare word, a key that is no VM field */
	char *argv3[] = {"vm-migrate", "vm=a", "host=h", "bogus"};
	ctx_for(&c, &o, 4, argv3);
	assert_int_equal(xe_check_params(&c, cmd), -1);
	assert_string_equal(c.msg, "Unknown parameter: bogus");
	ctx_done(&c, &o);
	char *argv4[] = {"vm-migrate", "vm=a", "host=h", "bogus=1"};
	ctx_for(&c, &o, 4, argv4);
	assert_int_equal(xe_check_params(&c, cmd), 0);
	assert_int_equal(xe_cmd_vm_migrate(&c, cmd), -1);
	assert_string_equal(c.msg, "Parameter 'bogus' is not a field of the VM class. Failed to select VM for "
				   "operation.");
	ctx_done(&c, &o);

	/* bad values */
	char *argv5[] = {"vm-migrate", "vm=a", "host=h", "live=maybe"};
	ctx_for(&c, &o, 4, argv5);
	assert_int_equal(xe_cmd_vm_migrate(&c, cmd), -1);
	assert_string_equal(c.msg, "Failed to parse parameter 'live': expecting 'true' or 'false'");
	ctx_done(&c, &o);
	char *argv6[] = {"vm-migrate", "vm=a", "host=h", "max-downtime-ms=soon"};
	ctx_for(&c, &o, 4, argv6);
	assert_int_equal(xe_cmd_vm_migrate(&c, cmd), -1);
	assert_string_equal(c.msg, "Failed to parse parameter 'max-downtime-ms': expecting a non-negative "
				   "integer, got 'soon'");
	ctx_done(&c, &o);

	/* another pool is refused, not ignored (even with a host), with a sentence */
	static const char *const remote[] = {"remote-master=10.0.0.1", "remote-username=root", "remote-network=n"};
	for (size_t i = 0; i < sizeof remote / sizeof remote[0]; i++) {
		char *a[] = {"vm-migrate", "vm=a", "host=h", (char *)remote[i]};
		ctx_for(&c, &o, 4, a);
		assert_int_equal(xe_check_params(&c, cmd), 0);
		assert_int_equal(xe_cmd_vm_migrate(&c, cmd), -1);
		assert_non_null(strstr(c.msg, "Migration to another pool"));
		assert_non_null(strstr(c.msg, "is not supported yet"));
		char want[64];
		snprintf(want, sizeof want, "parameter '%.*s' refused", (int)strcspn(remote[i], "="), remote[i]);
		assert_non_null(strstr(c.msg, want));
		ctx_done(&c, &o);
	}
	/* vdi:, vif: and copy ask for a storage migration (VM.migrate_send) */
	char *argv8[] = {"vm-migrate", "vm=a", "host=h", "vdi:v1=sr1", "vif:f1=n1", "copy=true"};
	ctx_for(&c, &o, 6, argv8);
	assert_int_equal(xe_check_params(&c, cmd), 0);
	assert_true(xe_sxm_wanted(&c));
	opts = xe_migrate_opts(&c);
	assert_non_null(opts);
	assert_string_equal(json_string_value(json_object_get(opts, "copy")), "true");
	assert_null(json_object_get(opts, "vdi:v1")); /* the maps are built from the parameters, not options */
	json_decref(opts);
	ctx_done(&c, &o);
	char *argv9[] = {"vm-migrate", "vm=a", "host=h"};
	ctx_for(&c, &o, 3, argv9);
	assert_false(xe_sxm_wanted(&c));
	ctx_done(&c, &o);
	char *argv7[] = {"vm-migrate", "vm=a", "remote-master=10.0.0.1", "remote-password=x"};
	ctx_for(&c, &o, 4, argv7);
	assert_int_equal(xe_cmd_vm_migrate(&c, cmd), -1);
	assert_non_null(strstr(c.msg, "not supported yet"));
	ctx_done(&c, &o);
}

static void test_vm_migrate_output(void **state)
{
	(void)state;
	char *s = xe_migrate_progress(0.456, 3.21, NULL);
	assert_string_equal(s, "Migrating:  45%  3.2 s");
	free(s);
	s = xe_migrate_progress(1.5, 10.0, "copying");
	assert_string_equal(s, "Migrating: 100%  10.0 s  copying");
	free(s);
	s = xe_migrate_summary(4.26, "");
	assert_string_equal(s, "Migrated in 4.3 s");
	free(s);
	s = xe_migrate_summary(4.26, NULL);
	assert_string_equal(s, "Migrated in 4.3 s");
	free(s);
	s = xe_migrate_summary(2.0, "{\"downtime_ms\": 12.34, \"wire_bytes\": 3145728, \"rounds\": 4}");
	assert_string_equal(s, "Migrated in 2.0 s, downtime 12.3 ms, 3145728 bytes (3.0 MiB) sent");
	free(s);
	/* a storage migration: the disks' share of the bytes */
	s = xe_migrate_summary(3.0, "{\"downtime_ms\": 5, \"wire_bytes\": 4194304, \"disk_wire_bytes\": 3145728}");
	assert_string_equal(s, "Migrated in 3.0 s, downtime 5.0 ms, 4194304 bytes (4.0 MiB) sent (disks 3.0 MiB)");
	free(s);
	s = xe_migrate_summary(2.0, "{\"downtime_ms\": 8}");
	assert_string_equal(s, "Migrated in 2.0 s, downtime 8.0 ms");
	free(s);
	s = xe_migrate_summary(1.0, "not json");
	assert_string_equal(s, "Migrated in 1.0 s");
	free(s);
}

static void test_wrap(void **state)
{
	(void)state;
	const char *names[] = {"aaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbb", "cccccccccccccccccccc",
			       "dddddddddddddddddddd"};
	char *s = xe_wrap_names(names, 4);
	assert_string_equal(s, "    aaaaaaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbbbbbb, cccccccccccccccccccc,\n"
			       "    dddddddddddddddddddd\n");
	free(s);
}

static void test_help_output(void **state)
{
	(void)state;
	struct mem m;
	mem_open(&m);
	struct xe_ctx c;
	struct xe_opts o;
	char err[64];
	char *argv[] = {"help", "vm-install"};
	assert_int_equal(xe_opts_parse(&o, 2, argv, err, sizeof err), 0);
	memset(&c, 0, sizeof c);
	c.opts = &o;
	c.out = m.f;
	assert_int_equal(xe_run(&c), 0);
	char *out = mem_close(&m);
	assert_non_null(strstr(out, "command name            : vm-install\n"
				    "        reqd params     : new-name-label\n"
				    "        optional params : sr-name-label, sr-uuid, template\n"));
	free(out);
	xe_ctx_free(&c);
	xe_opts_free(&o);

	/* selector commands: <vm-selectors> and XAPI's explanation */
	mem_open(&m);
	char *argv2[] = {"help", "vm-start"};
	assert_int_equal(xe_opts_parse(&o, 2, argv2, err, sizeof err), 0);
	memset(&c, 0, sizeof c);
	c.opts = &o;
	c.out = m.f;
	assert_int_equal(xe_run(&c), 0);
	out = mem_close(&m);
	assert_non_null(strstr(out, "        reqd params     : \n"
				    "        optional params : force, on, paused, <vm-selectors>\n"
				    "        description     : Start the selected VM(s)."));
	assert_non_null(strstr(out, "warnings. VMs can be specified by filtering"));
	free(out);
	xe_ctx_free(&c);
	xe_opts_free(&o);

	mem_open(&m);
	char *argv3[] = {"help", "sr-create"};
	assert_int_equal(xe_opts_parse(&o, 2, argv3, err, sizeof err), 0);
	memset(&c, 0, sizeof c);
	c.opts = &o;
	c.out = m.f;
	assert_int_equal(xe_run(&c), 0);
	out = mem_close(&m);
	assert_non_null(strstr(out, "        reqd params     : name-label, type\n"
				    "        optional params : name-description, host-uuid, device-config:, shared, "
				    "physical-size, content-type, sm-config:\n"));
	free(out);
	xe_ctx_free(&c);
	xe_opts_free(&o);

	mem_open(&m);
	char *argv5[] = {"help", "vm-migrate"};
	assert_int_equal(xe_opts_parse(&o, 2, argv5, err, sizeof err), 0);
	memset(&c, 0, sizeof c);
	c.opts = &o;
	c.out = m.f;
	assert_int_equal(xe_run(&c), 0);
	out = mem_close(&m);
	assert_non_null(strstr(out, "command name            : vm-migrate\n"
				    "        reqd params     : \n"
				    "        optional params : live, host, host-uuid, compress, force, network-uuid, "
				    "max-downtime-ms, verify, copy, vdi:, vif:, <vm-selectors>\n"
				    "        description     : Migrate the selected VM(s)."));
	assert_non_null(strstr(out, "not supported yet."));
	assert_non_null(strstr(out, "VMs can be specified by filtering"));
	free(out);
	xe_ctx_free(&c);
	xe_opts_free(&o);

	/* the command list names them all */
	mem_open(&m);
	char *argv4[] = {"help", "--minimal"};
	assert_int_equal(xe_opts_parse(&o, 2, argv4, err, sizeof err), 0);
	memset(&c, 0, sizeof c);
	c.opts = &o;
	c.out = m.f;
	assert_int_equal(xe_run(&c), 0);
	out = mem_close(&m);
	static const char *const names[] = {"pool-join-token-create", "vm-start", "vm-shutdown", "vm-pause",
					    "vm-unpause", "sr-create", "pbd-plug", "pbd-unplug", "sr-destroy",
					    "sr-forget", "host-enable", "host-disable", "vm-migrate"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char want[64];
		snprintf(want, sizeof want, ",%s,", names[i]);
		char *list = NULL;
		assert_true(asprintf(&list, ",%.*s,", (int)strcspn(out, "\n"), out) > 0);
		assert_non_null(strstr(list, want));
		free(list);
	}
	free(out);
	xe_ctx_free(&c);
	xe_opts_free(&o);
}

/* Errors as real xe prints them (cli_util.ml's server_error, newcli's
 * Error): the description, then each parameter by its declared name. */
static void test_error_text(void **state)
{
	(void)state;
	json_t *e = json_pack("[s,s,s,s]", "VM_BAD_POWER_STATE", "uuid-1 (web1)", "halted", "running");
	char *t = xe_error_text(e);
	assert_non_null(strstr(t, "You attempted an operation on a VM that was not in an appropriate power state"));
	assert_non_null(strstr(t, ".\nvm: uuid-1 (web1)\nexpected: halted\nactual: running\n"));
	free(t);
	json_decref(e);
	/* too few and too many values */
	e = json_pack("[s,s]", "HANDLE_INVALID", "VM");
	t = xe_error_text(e);
	assert_non_null(strstr(t, "\nclass: VM\nhandle: <unknown>\n"));
	free(t);
	json_decref(e);
	e = json_pack("[s,s,s]", "HOST_DISABLED", "h", "more");
	t = xe_error_text(e);
	assert_non_null(strstr(t, "\nhost: h\n<extra>: more\n"));
	free(t);
	json_decref(e);
	/* an error XAPI's datamodel does not describe */
	e = json_pack("[s,s,s]", "SOME_NEW_ERROR", "a", "b");
	t = xe_error_text(e);
	assert_string_equal(t, "Error code: SOME_NEW_ERROR\nError parameters: a, b\n");
	free(t);
	json_decref(e);
	e = json_pack("[s,s,s]", "SESSION_AUTHENTICATION_FAILED", "root", "Authentication failure");
	t = xe_error_text(e);
	assert_string_equal(t, "Authentication failed\n");
	free(t);
	json_decref(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_text),
		cmocka_unit_test(test_record_layout), cmocka_unit_test(test_help_layout),
		cmocka_unit_test(test_minimal_escape), cmocka_unit_test(test_qualifiers),
		cmocka_unit_test(test_render), cmocka_unit_test(test_enum_cli),
		cmocka_unit_test(test_sizes), cmocka_unit_test(test_kv_split),
		cmocka_unit_test(test_opts), cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_vm_fields), cmocka_unit_test(test_values_and_list),
		cmocka_unit_test(test_parse_value), cmocka_unit_test(test_check_params),
		cmocka_unit_test(test_wrap), cmocka_unit_test(test_help_output),
		cmocka_unit_test(test_sr_create_params), cmocka_unit_test(test_bool_params),
		cmocka_unit_test(test_new_command_params), cmocka_unit_test(test_vm_migrate_args),
		cmocka_unit_test(test_vm_migrate_output),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
