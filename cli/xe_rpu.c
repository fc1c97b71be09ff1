/*
 * xe_rpu.c - pool-rolling-upgrade (ours): the plan (dry-run=true), or the
 * run followed to its end: on a terminal one line per host with its phase,
 * the VMs it moved and its time, a bar with the ETA; then the report. The
 * master's own upgrade restarts poold: the command keeps asking (for up to
 * two minutes) until poold answers again, as the run itself goes on.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "xe.h"
#include "util.h"

#define RECONNECT_S 120.0

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static json_int_t jint(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static const char *jsub(const json_t *o, const char *a, const char *b)
{
	return jstr(json_object_get(o, a), b);
}

static void duration(double s, char *out, size_t len)
{
	if (s < 0)
		snprintf(out, len, "?");
	else if (s < 90)
		snprintf(out, len, "%.0f s", s);
	else
		snprintf(out, len, "%dm%02ds", (int)(s / 60), (int)s % 60);
}

/* The options map from the command line (strings, as the API takes them). */
static json_t *options(struct xe_ctx *c)
{
	json_t *o = json_object();
	static const char *const keys[][2] = {{"upgrade-command", "command"}, {"batch-size", "batch_size"},
					      {"command-timeout", "command_timeout"}, {"host-timeout", "host_timeout"}};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		const char *v = xe_param(c, keys[i][0]);
		if (v)
			json_object_set_new(o, keys[i][1], json_string(v));
	}
	const char *nu = xe_param(c, "network-uuid");
	if (nu) {
		char *net = xe_ref_by_uuid(c, "network", nu);
		if (!net) {
			json_decref(o);
			return NULL;
		}
		json_object_set_new(o, "network", json_string(net));
		free(net);
	}
	return o;
}

static char *error_text(const json_t *err)
{
	struct xe_buf b = {0};
	size_t i;
	json_t *x;
	json_array_foreach(err, i, x) {
		xe_buf_add(&b, i == 0 ? "" : i == 1 ? ": " : ", ");
		xe_buf_add(&b, json_is_string(x) ? json_string_value(x) : "?");
	}
	return b.s ? b.s : xstrdup("");
}

/* ---- the plan ---- */

static void plan_host(struct xe_ctx *c, size_t n, const json_t *h)
{
	fprintf(c->out, "%2zu. %-16s %-8s %s / %s%s\n", n, jstr(h, "name"),
		json_is_true(json_object_get(h, "master")) ? "master" : "", jsub(h, "version", "product"),
		jsub(h, "version", "platform"), json_is_true(json_object_get(h, "live")) ? "" : "  NOT LIVE");
	if (json_is_true(json_object_get(h, "skip"))) {
		fprintf(c->out, "      skipped: already at the newest version in the pool\n");
		return;
	}
	if (*jstr(h, "command"))
		fprintf(c->out, "      runs: %s\n", jstr(h, "command"));
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(h, "vms"), i, v) {
		json_t *name = xe_rpc(c, "VM.get_name_label", "s", jstr(v, "vm"));
		double mib = (double)jint(v, "memory") / 1048576.0;
		json_t *err = json_object_get(v, "error");
		char *why = err ? error_text(err) : NULL;
		json_t *tname = err ? NULL : xe_rpc(c, "host.get_name_label", "s", jstr(v, "target"));
		fprintf(c->out, "      %-24s %6.0f MiB  %s%s\n", json_string_value(name) ? json_string_value(name) : jstr(v, "vm"),
			mib, err ? "cannot move: " : "-> ", err ? why : json_string_value(tname) ? json_string_value(tname) : "?");
		free(why);
		json_decref(name);
		json_decref(tname);
	}
}

static int dry_run(struct xe_ctx *c, json_t *opts)
{
	json_t *plan = xe_rpc(c, "pool.rolling_upgrade_plan", "O", opts);
	if (!plan)
		return -1;
	json_t *hosts = json_object_get(plan, "hosts");
	fprintf(c->out, "Rolling upgrade plan: %zu hosts, the master first%s.\n", json_array_size(hosts),
		json_is_true(json_object_get(plan, "mixed")) ? " (the pool is part-way: hosts at the newest version are skipped)"
							  : "");
	size_t i;
	json_t *h;
	json_array_foreach(hosts, i, h) plan_host(c, i + 1, h);
	if (json_is_true(json_object_get(plan, "manual")))
		fprintf(c->out, "No upgrade command: the run waits for each host to be upgraded by hand.\n");
	fprintf(c->out, "HA: %s.\n", json_is_true(json_object_get(plan, "ha_enabled"))
					   ? "on: suspended during the run, enabled again at the end with the same settings"
					   : "off");
	fprintf(c->out, "auto_poweron: set false during the run, then put back as it was (%s).\n",
		*jstr(plan, "auto_poweron") ? jstr(plan, "auto_poweron") : "absent");
	json_t *blocks = json_object_get(plan, "blocks");
	json_array_foreach(blocks, i, h) {
		char *t = error_text(h);
		fprintf(c->out, "Refused: %s\n", t);
		free(t);
	}
	if (!json_array_size(blocks))
		fprintf(c->out, "Nothing blocks it: nothing was changed.\n");
	int rc = json_array_size(blocks) ? xe_fail(c, "the rolling upgrade would be refused (see above)") : 0;
	json_decref(plan);
	return rc;
}

/* ---- following the run ---- */

/* task.get_record, asked again while poold restarts (the master's own
 * upgrade); NULL with the error once it is gone for good. */
static json_t *task_record(struct xe_ctx *c, const char *task)
{
	double give_up = mono() + RECONNECT_S;
	for (;;) {
		json_t *rec = xe_rpc(c, "task.get_record", "s", task);
		if (rec || c->xerr || mono() > give_up)
			return rec;
		free(c->msg); /* poold is not answering: it restarts */
		c->msg = NULL;
		sleep(1);
	}
}

static json_t *state_of(const json_t *rec)
{
	const char *t = jsub(rec, "other_config", "rolling_upgrade");
	json_t *st = *t ? json_loads(t, 0, NULL) : NULL;
	return st ? st : json_object();
}

/* One host's line; redrawn (tty) it clears the line it overwrites first. */
static void host_line(struct xe_ctx *c, const json_t *h, time_t now, bool redraw)
{
	const char *ph = jstr(h, "phase");
	char took[32] = "", detail[160] = "";
	json_int_t started = jint(h, "started"), ended = jint(h, "ended");
	if (started)
		duration((double)((ended ? ended : now) - started), took, sizeof took);
	if (strcmp(ph, "done") == 0)
		snprintf(detail, sizeof detail, "%s -> %s, %lld VMs moved", jsub(h, "before", "product"),
			 jsub(h, "after", "product"), (long long)jint(h, "vms"));
	else if (strcmp(ph, "failed") == 0)
		snprintf(detail, sizeof detail, "%s", jstr(h, "error"));
	else if (strcmp(ph, "evacuating") == 0)
		snprintf(detail, sizeof detail, "moving %lld VMs off it", (long long)jint(h, "vms"));
	else if (strcmp(ph, "upgrading") == 0)
		snprintf(detail, sizeof detail, "upgrade command running");
	else if (strcmp(ph, "returning") == 0)
		snprintf(detail, sizeof detail, "waiting for it to come back with the new version");
	fprintf(c->out, "%s  %-16s %-7s %-11s %-8s %s\n", redraw ? "\033[2K" : "", jstr(h, "name"),
		json_is_true(json_object_get(h, "master")) ? "master" : "", ph, took, detail);
}

static int draw(struct xe_ctx *c, const json_t *st, double progress, int drawn)
{
	if (drawn)
		fprintf(c->out, "\033[%dA", drawn);
	time_t now = time(NULL);
	size_t i;
	json_t *h;
	int lines = 0;
	json_array_foreach(json_object_get(st, "hosts"), i, h) {
		host_line(c, h, now, true);
		lines++;
	}
	json_t *home = json_object_get(st, "home");
	if (home) {
		fprintf(c->out, "\033[2K  VMs going home: %lld moved, %zu not (yet)\n", (long long)jint(home, "moved"),
			json_object_size(json_object_get(home, "stuck")));
		lines++;
	}
	int width = 30, filled = (int)(progress * width + 0.5);
	char bar[64], el[32], eta[32];
	for (int k = 0; k < width; k++)
		bar[k] = k < filled ? '#' : '.';
	bar[width] = 0;
	duration((double)jint(st, "elapsed_s"), el, sizeof el);
	duration(json_number_value(json_object_get(st, "eta_s")), eta, sizeof eta);
	fprintf(c->out, "\033[2K[%s] %3d%%  %-8s elapsed %s, ETA %s\n", bar, (int)(progress * 100), jstr(st, "stage"), el,
		eta);
	fflush(c->out);
	return lines + 1;
}

/* ---- the report ---- */

static void report_home(struct xe_ctx *c, const json_t *st)
{
	json_t *home = json_object_get(st, "home"), *stuck = json_object_get(home, "stuck");
	fprintf(c->out, "VMs back home: %lld moved", (long long)jint(home, "moved"));
	if (!json_object_size(stuck)) {
		fprintf(c->out, ", every VM is home.\n");
		return;
	}
	fprintf(c->out, "; not home:\n");
	const char *vm;
	json_t *err;
	json_object_foreach(stuck, vm, err) {
		json_t *name = xe_rpc(c, "VM.get_name_label", "s", vm);
		char *t = error_text(err);
		fprintf(c->out, "  %-24s %s\n", json_string_value(name) ? json_string_value(name) : vm, t);
		free(t);
		json_decref(name);
	}
}

static void report_saved(struct xe_ctx *c, const json_t *st)
{
	json_t *saved = json_object_get(st, "saved"), *ha = json_object_get(saved, "ha");
	if (json_is_object(ha)) {
		bool back = json_is_true(json_object_get(saved, "ha_restored"));
		char *why = back ? NULL : error_text(json_object_get(saved, "ha_error"));
		fprintf(c->out, "HA: %s (statefile SR as before, timeout %lld s, failures to tolerate %lld)%s%s\n",
			back ? "enabled again" : "NOT enabled again: enable it with pool-ha-enable", (long long)jint(ha, "timeout"),
			(long long)jint(ha, "ntol"), why && *why ? ": " : "", why ? why : "");
		free(why);
	}
	if (saved)
		fprintf(c->out, "auto_poweron: put back (%s).\n",
			json_is_string(json_object_get(saved, "auto_poweron")) ? jstr(saved, "auto_poweron") : "absent");
}

static void report(struct xe_ctx *c, const json_t *st, const char *status)
{
	json_t *f = json_object_get(st, "failure");
	char el[32];
	duration((double)jint(st, "elapsed_s"), el, sizeof el);
	if (f)
		fprintf(c->out, "Rolling upgrade stopped after %s at host %s (%s): %s.\n", el, jstr(f, "name"),
			jstr(f, "phase"), jstr(f, "reason"));
	else
		fprintf(c->out, "Rolling upgrade %s after %s.\n", strcmp(status, "success") == 0 ? "done" : status, el);
	time_t now = time(NULL);
	size_t i;
	json_t *h;
	json_array_foreach(json_object_get(st, "hosts"), i, h) host_line(c, h, now, false);
	if (f && *jstr(f, "output"))
		fprintf(c->out, "The command's last output:\n%s\n", jstr(f, "output"));
	if (f && strcmp(jstr(f, "phase"), "pending"))
		fprintf(c->out, "Host %s is left disabled: fix it, then `xe host-enable` or run pool-rolling-upgrade again.\n",
			jstr(f, "name"));
	report_home(c, st);
	report_saved(c, st);
}

/* Follow the task to its end (drawing on a terminal), then the report. */
static int follow(struct xe_ctx *c, const char *task, bool show)
{
	int drawn = 0, rc = 0;
	for (;;) {
		json_t *rec = task_record(c, task);
		if (!rec)
			return -1;
		const char *status = jstr(rec, "status");
		json_t *st = state_of(rec);
		bool over = strcmp(status, "pending") && strcmp(status, "cancelling");
		if (show)
			drawn = draw(c, st, over ? 1.0 : json_number_value(json_object_get(rec, "progress")), drawn);
		if (over) {
			if (!c->opts->minimal)
				report(c, st, status);
			if (strcmp(status, "success")) {
				json_t *ei = json_object_get(rec, "error_info");
				if (json_array_size(ei))
					c->xerr = json_incref(ei);
				else
					xe_fail(c, "The rolling upgrade ended with status %s", status);
				rc = -1;
			}
		}
		json_decref(st);
		json_decref(rec);
		if (over)
			return rc;
		struct timespec ts = {0, 500 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

int xe_cmd_pool_rolling_upgrade(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	(void)cmd;
	bool dry;
	if (xe_bool_param(c, "dry-run", false, &dry))
		return -1;
	json_t *opts = options(c);
	if (!opts)
		return -1;
	if (dry) {
		int rc = dry_run(c, opts);
		json_decref(opts);
		return rc;
	}
	json_t *t = xe_rpc(c, "Async.pool.rolling_upgrade", "O", opts);
	json_decref(opts);
	if (!json_is_string(t)) {
		json_decref(t);
		return -1;
	}
	char *task = xstrdup(json_string_value(t));
	json_decref(t);
	if (!c->opts->minimal)
		fprintf(c->out, "Rolling upgrade started (task %s); it goes on if this command stops.\n", task);
	int rc = follow(c, task, !c->opts->minimal && isatty(fileno(c->out)));
	free(task);
	return rc;
}
