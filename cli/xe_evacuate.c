/*
 * xe_evacuate.c - host-evacuate (XAPI's; dry-run=true is ours): the plan,
 * or Async.host.evacuate followed to its end with one line per VM under a
 * progress bar that fits the terminal; host-get-vms-which-prevent-evacuation.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "xe.h"
#include "util.h"

/* ---- host-evacuate (XAPI's; dry-run=true is ours) ---- */

/* name_label of ref, cached in names. */
static const char *name_of(struct xe_ctx *c, json_t *names, const char *cls, const char *ref)
{
	json_t *n = json_object_get(names, ref);
	if (!n) {
		char m[64];
		snprintf(m, sizeof m, "%s.get_name_label", cls);
		json_t *s = xe_rpc(c, m, "s", ref);
		json_object_set_new(names, ref, json_is_string(s) ? json_incref(s) : json_string(ref));
		json_decref(s);
		n = json_object_get(names, ref);
	}
	return json_string_value(n);
}

static char *error_text(json_t *err)
{
	struct xe_buf b = {0};
	size_t i;
	json_t *x;
	json_array_foreach(err, i, x) {
		if (i)
			xe_buf_add(&b, i == 1 ? ": " : ", ");
		xe_buf_add(&b, json_is_string(x) ? json_string_value(x) : "?");
	}
	return b.s ? b.s : xstrdup("");
}

/* The plan, nothing moved: each VM, its memory, its target or why not. */
static int evacuate_dry_run(struct xe_ctx *c, const char *host, json_t *names)
{
	json_t *plan = xe_rpc(c, "host.compute_evacuation_plan", "s", host);
	if (!plan)
		return -1;
	const char *vm;
	json_t *p;
	int stuck = 0;
	fprintf(c->out, "%-28s %10s  %s\n", "VM", "memory", "target (or why it cannot move)");
	json_object_foreach(plan, vm, p) {
		double mib = (double)json_integer_value(json_object_get(p, "memory")) / 1048576.0;
		json_t *err = json_object_get(p, "error");
		if (err) {
			char *t = error_text(err);
			fprintf(c->out, "%-28s %6.0f MiB  cannot move: %s\n", name_of(c, names, "VM", vm), mib, t);
			free(t);
			stuck++;
		} else {
			fprintf(c->out, "%-28s %6.0f MiB  -> %s\n", name_of(c, names, "VM", vm), mib,
				name_of(c, names, "host", json_string_value(json_object_get(p, "target"))));
		}
	}
	fprintf(c->out, "%zu VM(s): %zu would move, %d cannot.\n", json_object_size(plan),
		json_object_size(plan) - (size_t)stuck, stuck);
	json_decref(plan);
	return 0;
}

/* One line per VM under an overall bar; lines drawn last time are
 * overwritten (cursor up). Every line fits the terminal's width, and no
 * more lines are drawn than fit its height (the cursor cannot go back up
 * into the scrollback): the VMs still moving first, then a count of the
 * others. Returns the number of lines drawn. */
static int evacuate_draw(struct xe_ctx *c, json_t *st, double progress, double elapsed, json_t *names, int drawn)
{
	int cols, rows;
	xe_term_size(c->out, &cols, &rows);
	if (drawn)
		fprintf(c->out, "\033[%dA", drawn);
	json_t *vms = json_object_get(st, "vms");
	size_t i, ended = 0, n = json_array_size(vms);
	int room = rows - 2 > 1 ? rows - 2 : 1, lines = 0;
	double gib_done = 0, gib_all = 0; /* the bar counts bytes: memory moved over all */
	json_t *v;
	json_array_foreach(vms, i, v) {
		const char *state = json_string_value(json_object_get(v, "state"));
		double gib = (double)json_integer_value(json_object_get(v, "memory")) / (1 << 30);
		gib_all += gib;
		gib_done += state && strcmp(state, "done") == 0 ? gib : 0;
		ended += state && (strcmp(state, "done") == 0 || strcmp(state, "failed") == 0);
	}
	/* the ones moving or failed first, then the others, while they fit */
	for (int pass = 0; pass < 2; pass++)
		json_array_foreach(vms, i, v) {
			const char *state = json_string_value(json_object_get(v, "state"));
			bool quiet = state && (strcmp(state, "done") == 0 || strcmp(state, "planned") == 0 ||
					       strcmp(state, "pending") == 0);
			if (quiet != (pass == 1) || lines >= room - (n > (size_t)room ? 1 : 0))
				continue;
			const char *target = json_string_value(json_object_get(v, "target"));
			char dt[32] = "", line[512];
			if (json_is_number(json_object_get(v, "downtime_ms")))
				snprintf(dt, sizeof dt, "downtime %.1f ms", json_number_value(json_object_get(v, "downtime_ms")));
			char *why = state && strcmp(state, "failed") == 0 ? error_text(json_object_get(v, "error")) : NULL;
			snprintf(line, sizeof line, "  %-24.24s -> %-16.16s %-9s %s",
				 name_of(c, names, "VM", json_string_value(json_object_get(v, "vm"))),
				 target && *target ? name_of(c, names, "host", target) : "-", state ? state : "?",
				 why ? why : dt);
			fputs("\033[2K", c->out);
			xe_put_line(c->out, line, cols);
			fputc('\n', c->out);
			free(why);
			lines++;
		}
	if ((size_t)lines < n) {
		char more[96];
		snprintf(more, sizeof more, "  ... and %zu more", n - (size_t)lines);
		fputs("\033[2K", c->out);
		xe_put_line(c->out, more, cols);
		fputc('\n', c->out);
		lines++;
	}
	int width = cols - 36 > 30 ? 30 : cols - 36 > 5 ? cols - 36 : 5, filled = (int)(progress * width + 0.5);
	char bar[64], line[256];
	for (int k = 0; k < width; k++)
		bar[k] = k < filled ? '#' : '.';
	bar[width] = 0;
	double eta = progress > 0.02 && progress < 1 ? elapsed * (1 - progress) / progress : 0;
	int len = snprintf(line, sizeof line, "[%s] %3d%%  %.1f/%.1f GiB  %zu/%zu VMs  %.1f s", bar,
			   (int)(progress * 100), gib_done, gib_all, ended, n, elapsed);
	if (eta > 0 && len > 0 && (size_t)len < sizeof line)
		snprintf(line + len, sizeof line - (size_t)len, "  ETA %.1f s", eta);
	fputs("\033[2K", c->out);
	xe_put_line(c->out, line, cols);
	fputc('\n', c->out);
	fflush(c->out);
	return lines + 1;
}

struct evac_draw {
	double start;
	const char *host;
	json_t *names;
	int drawn;
};

/* Each poll of host.evacuate's task: the VMs and the bar, then the end. */
static void evacuate_follow(struct xe_ctx *c, json_t *rec, bool over, bool ok, void *arg)
{
	struct evac_draw *d = arg;
	const char *evs = json_string_value(json_object_get(json_object_get(rec, "other_config"), "evacuation"));
	json_t *ev = json_loads(evs ? evs : "{}", 0, NULL);
	d->drawn = evacuate_draw(c, ev, over ? 1.0 : json_number_value(json_object_get(rec, "progress")),
				 xe_now_s() - d->start, d->names, d->drawn);
	json_decref(ev);
	if (ok)
		fprintf(c->out, "Host %s evacuated in %.1f s.\n", name_of(c, d->names, "host", d->host),
			xe_now_s() - d->start);
}

int xe_cmd_host_evacuate(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	bool dry = false;
	const char *d = xe_param(c, "dry-run");
	if (d && xe_parse_bool(d, &dry))
		return xe_fail(c, "Failed to parse parameter 'dry-run': expecting 'true' or 'false'");
	long long batch = 0;
	const char *bs = xe_param(c, "batch-size");
	if (bs) {
		char *end;
		errno = 0;
		batch = strtoll(bs, &end, 10);
		if (errno || end == bs || *end || batch < 0)
			return xe_fail(c, "Failed to parse parameter 'batch-size': expecting a non-negative integer, got '%s'", bs);
	}
	const char *nu = xe_param(c, "network-uuid");
	char *net = nu ? xe_ref_by_uuid(c, "network", nu) : NULL;
	if (nu && !net)
		return -1;
	json_t *hosts = xe_select(c, cmd, false, false);
	json_t *names = json_object();
	bool show = !c->opts->minimal && isatty(fileno(c->out));
	int rc = hosts ? 0 : -1;
	size_t i;
	json_t *h;
	json_array_foreach(hosts, i, h) {
		if (rc)
			break;
		const char *host = json_string_value(h);
		if (dry) {
			rc = evacuate_dry_run(c, host, names);
			continue;
		}
		json_t *netj = json_string(net ? net : "OpaqueRef:NULL");
		if (!show) { /* as XAPI: nothing printed on success */
			rc = xe_void_result(xe_rpc(c, "host.evacuate", "sOI", host, netj, (json_int_t)batch));
			json_decref(netj);
			continue;
		}
		double start = xe_now_s();
		char *task = xe_str_result(xe_rpc(c, "Async.host.evacuate", "sOI", host, netj, (json_int_t)batch));
		json_decref(netj);
		if (!task) {
			rc = -1;
			break;
		}
		struct evac_draw ed = {start, host, names, 0};
		rc = xe_task_follow(c, task, 200, "evacuation", evacuate_follow, &ed);
		xe_task_forget(c, task);
		free(task);
	}
	json_decref(hosts);
	json_decref(names);
	free(net);
	return rc;
}

int xe_cmd_host_prevent_evacuation(struct xe_ctx *c, const struct xe_cmd *cmd)
{
	json_t *hosts = xe_select(c, cmd, false, false), *names = json_object();
	int rc = hosts ? 0 : -1;
	size_t i;
	json_t *h;
	json_array_foreach(hosts, i, h) {
		json_t *m = rc ? NULL : xe_rpc(c, "host.get_vms_which_prevent_evacuation", "s", json_string_value(h));
		if (!m) {
			rc = -1;
			break;
		}
		const char *vm;
		json_t *err;
		/* as XAPI: one line per VM, "uuid: code,params" */
		json_object_foreach(m, vm, err) {
			json_t *u = xe_rpc(c, "VM.get_uuid", "s", vm);
			char *t = error_text(err);
			fprintf(c->out, "%s (%s): %s\n", json_string_value(u) ? json_string_value(u) : vm,
				name_of(c, names, "VM", vm), t);
			free(t);
			json_decref(u);
		}
		json_decref(m);
	}
	json_decref(hosts);
	json_decref(names);
	return rc;
}
