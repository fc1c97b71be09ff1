/*
 * xe_args.c - the xe command line: global options (-s -p -u -pw -pwf
 * --minimal --cacert), the command and its key=value parameters, defaults
 * from the environment (XE_*) and from ~/.xe, and XAPI's size suffixes.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "xe.h"
#include "util.h"

void xe_kv_split(const char *arg, struct xe_kv *kv)
{
	const char *eq = strchr(arg, '=');
	kv->used = false;
	/* as XAPI's CLI server: --flag means flag=true */
	if (!eq && strncmp(arg, "--", 2) == 0 && arg[2]) {
		kv->key = xstrdup(arg + 2);
		kv->val = xstrdup("true");
		return;
	}
	if (!eq || eq == arg) {
		kv->key = xstrdup(arg);
		kv->val = NULL;
		return;
	}
	kv->key = strndup(arg, (size_t)(eq - arg));
	kv->val = xstrdup(eq + 1);
}

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = xstrdup(v);
}

static int parse_port(const char *v, int *port)
{
	char *end;
	errno = 0;
	long p = strtol(v, &end, 10);
	if (errno || *end || end == v || p <= 0 || p > 65535)
		return -1;
	*port = (int)p;
	return 0;
}

static int read_pw_file(const char *path, char **dst, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "Error: cannot read password file %s: %s", path, strerror(errno));
		return -1;
	}
	char line[1024] = "";
	if (!fgets(line, sizeof line, f))
		line[0] = '\0';
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	set_str(dst, line);
	return 0;
}

/* One global option at argv[*i]; 1 when it was one, 0 when not, -1 error. */
static int parse_option(struct xe_opts *o, int argc, char **argv, int *i, char *err, size_t errlen)
{
	const char *a = argv[*i];
	static const char *const with_value[] = {"-s", "-p", "-u", "-pw", "-pwf", "--cacert", "--traceparent"};
	if (strcmp(a, "--minimal") == 0)
		return o->minimal = true, 1;
	if (strcmp(a, "--debug") == 0)
		return o->debug = true, 1;
	if (strcmp(a, "--debug-on-fail") == 0)
		return o->debug_on_fail = true, 1;
	if (strcmp(a, "--nossl") == 0)
		return 1;
	size_t k;
	for (k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
		if (strcmp(a, with_value[k]) == 0)
			break;
	if (k == sizeof with_value / sizeof with_value[0])
		return 0;
	if (*i + 1 >= argc) {
		snprintf(err, errlen, "Option %s needs a value", a);
		return -1;
	}
	const char *v = argv[++*i];
	switch (k) {
	case 0: set_str(&o->server, v); break;
	case 1:
		if (parse_port(v, &o->port)) {
			snprintf(err, errlen, "Invalid port: %s", v);
			return -1;
		}
		break;
	case 2: set_str(&o->username, v); break;
	case 3: set_str(&o->password, v); break;
	case 4: return read_pw_file(v, &o->password, err, errlen) ? -1 : 1;
	case 5: set_str(&o->cacert, v); break;
	default: break;
	}
	return 1;
}

int xe_opts_parse(struct xe_opts *o, int argc, char **argv, char *err, size_t errlen)
{
	memset(o, 0, sizeof *o);
	o->kv = xcalloc((size_t)argc + 1, sizeof *o->kv);
	for (int i = 0; i < argc; i++) {
		int r = parse_option(o, argc, argv, &i, err, errlen);
		if (r < 0)
			return -1;
		if (r > 0)
			continue;
		if (!o->cmd) {
			o->cmd = xstrdup(argv[i]);
			continue;
		}
		if (strcmp(argv[i], "--all") == 0) {
			o->help_all = true;
			continue;
		}
		xe_kv_split(argv[i], &o->kv[o->nkv++]);
	}
	return 0;
}

static void take_env(char **dst, const char *name)
{
	const char *v = getenv(name);
	if (!*dst && v && *v)
		*dst = xstrdup(v);
}

static int file_line(struct xe_opts *o, char *line, bool *port_set)
{
	line[strcspn(line, "\r\n")] = '\0';
	char *eq = strchr(line, '=');
	if (!eq || line[0] == '#')
		return 0;
	*eq = '\0';
	const char *k = line, *v = eq + 1;
	if (strcmp(k, "server") == 0 && !o->server)
		o->server = xstrdup(v);
	else if (strcmp(k, "username") == 0 && !o->username)
		o->username = xstrdup(v);
	else if (strcmp(k, "password") == 0 && !o->password)
		o->password = xstrdup(v);
	else if (strcmp(k, "cacert") == 0 && !o->cacert)
		o->cacert = xstrdup(v);
	else if (strcmp(k, "port") == 0 && !*port_set) {
		if (parse_port(v, &o->port))
			return -1;
		*port_set = true;
	}
	return 0;
}

int xe_opts_defaults(struct xe_opts *o, const char *path, char *err, size_t errlen)
{
	take_env(&o->server, "XE_SERVER");
	take_env(&o->username, "XE_USERNAME");
	take_env(&o->password, "XE_PASSWORD");
	take_env(&o->cacert, "XE_CACERT");
	bool port_set = o->port != 0;
	const char *p = getenv("XE_PORT");
	if (!port_set && p && *p) {
		if (parse_port(p, &o->port))
			return snprintf(err, errlen, "Invalid port in XE_PORT: %s", p), -1;
		port_set = true;
	}
	FILE *f = path ? fopen(path, "r") : NULL;
	if (f) {
		char line[1024];
		int rc = 0;
		while (!rc && fgets(line, sizeof line, f))
			rc = file_line(o, line, &port_set);
		fclose(f);
		if (rc)
			return snprintf(err, errlen, "Invalid port in %s", path), -1;
	}
	if (!o->port)
		o->port = 443;
	if (!o->server)
		o->server = xstrdup("localhost");
	return 0;
}

void xe_opts_free(struct xe_opts *o)
{
	free(o->server);
	free(o->username);
	free(o->password);
	free(o->cacert);
	free(o->cmd);
	for (size_t i = 0; i < o->nkv; i++) {
		free(o->kv[i].key);
		free(o->kv[i].val);
	}
	free(o->kv);
	memset(o, 0, sizeof *o);
}

long long xe_parse_size(const char *s)
{
	static const struct {
		const char *suffix;
		int shift;
	} units[] = {{"", 0}, {"b", 0}, {"bytes", 0}, {"kib", 10}, {"kb", 10}, {"k", 10},
		     {"mib", 20}, {"mb", 20}, {"m", 20}, {"gib", 30}, {"gb", 30}, {"g", 30},
		     {"tib", 40}, {"tb", 40}, {"t", 40}};
	if (!s || !isdigit((unsigned char)*s))
		return -1;
	char *end;
	errno = 0;
	long long n = strtoll(s, &end, 10);
	if (errno)
		return -1;
	while (*end == ' ')
		end++;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcasecmp(end, units[i].suffix) != 0)
			continue;
		if (n > (0x7fffffffffffffffLL >> units[i].shift))
			return -1;
		return n << units[i].shift;
	}
	return -1;
}

long long xe_physical_size(const char *s)
{
	long long n = s ? xe_parse_size(s) : 0;
	return n < 0 ? 0 : n;
}

int xe_parse_bool(const char *v, bool *out)
{
	if (!v)
		return -1;
	if (!strcasecmp(v, "true") || !strcasecmp(v, "t") || !strcmp(v, "1"))
		*out = true;
	else if (!strcasecmp(v, "false") || !strcasecmp(v, "f") || !strcmp(v, "0"))
		*out = false;
	else
		return -1;
	return 0;
}

/* A command's named parameters: the table in xe_cmds.c checks them and the
 * commands read them here, so no command file calls back into the table. */
static struct xe_kv *kv_find(struct xe_ctx *c, const char *key)
{
	for (size_t i = 0; i < c->opts->nkv; i++)
		if (c->opts->kv[i].val && strcmp(c->opts->kv[i].key, key) == 0)
			return &c->opts->kv[i];
	return NULL;
}

const char *xe_param(struct xe_ctx *c, const char *key)
{
	struct xe_kv *kv = kv_find(c, key);
	if (!kv)
		return NULL;
	kv->used = true;
	return kv->val;
}

bool xe_param_given(struct xe_ctx *c, const char *key)
{
	return kv_find(c, key) != NULL;
}
