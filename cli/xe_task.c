/*
 * xe_task.c - following an Async task to its end on a terminal: the
 * in-place progress line (progress, elapsed time, the phase the task notes
 * in other_config), the closing summary of a migration, and forgetting
 * the task afterwards. vm-migrate (pool and storage migration),
 * vdi-pool-migrate and host-evacuate use it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include "xe.h"

char *xe_migrate_progress(double progress, double elapsed, const char *status)
{
	if (progress < 0)
		progress = 0;
	if (progress > 1)
		progress = 1;
	char *s = NULL;
	if (asprintf(&s, "Migrating: %3d%%  %.1f s%s%s", (int)(progress * 100.0), elapsed,
		     status && *status ? "  " : "", status && *status ? status : "") < 0)
		s = NULL;
	return s;
}

/* A number from the stats object: the first of the keys present. */
static bool stat_num(const json_t *o, const char *const *keys, double *out)
{
	for (; *keys; keys++) {
		json_t *v = json_object_get(o, *keys);
		if (json_is_number(v)) {
			*out = json_number_value(v);
			return true;
		}
		if (json_is_string(v) && *json_string_value(v)) {
			char *end;
			double d = strtod(json_string_value(v), &end);
			if (!*end) {
				*out = d;
				return true;
			}
		}
	}
	return false;
}

char *xe_migrate_summary(double elapsed, const char *result)
{
	json_t *r = result && *result ? json_loads(result, JSON_DECODE_ANY, NULL) : NULL;
	if (json_is_string(r)) { /* the stats as a JSON text inside a string */
		json_t *in = json_loads(json_string_value(r), 0, NULL);
		json_decref(r);
		r = in;
	}
	static const char *const dt_keys[] = {"downtime_ms", "downtime", NULL};
	static const char *const by_keys[] = {"wire_bytes", "bytes", "bytes_sent", "bytes_transferred", NULL};
	static const char *const disk_keys[] = {"disk_wire_bytes", NULL};
	double dt = 0, by = 0, disk = 0;
	bool has_dt = json_is_object(r) && stat_num(r, dt_keys, &dt);
	bool has_by = json_is_object(r) && stat_num(r, by_keys, &by);
	bool has_disk = json_is_object(r) && stat_num(r, disk_keys, &disk) && disk > 0; /* a storage migration */
	json_decref(r);
	struct xe_buf b = {0};
	char tmp[128];
	snprintf(tmp, sizeof tmp, "Migrated in %.1f s", elapsed);
	xe_buf_add(&b, tmp);
	if (has_dt) {
		snprintf(tmp, sizeof tmp, ", downtime %.1f ms", dt);
		xe_buf_add(&b, tmp);
	}
	if (has_by) {
		if (by >= 1024.0 * 1024.0)
			snprintf(tmp, sizeof tmp, ", %.0f bytes (%.1f MiB) sent", by, by / (1024.0 * 1024.0));
		else
			snprintf(tmp, sizeof tmp, ", %.0f bytes sent", by);
		xe_buf_add(&b, tmp);
	}
	if (has_by && has_disk) {
		snprintf(tmp, sizeof tmp, " (disks %.1f MiB)", disk / (1024.0 * 1024.0));
		xe_buf_add(&b, tmp);
	}
	return b.s;
}

void xe_term_size(FILE *f, int *cols, int *rows)
{
	struct winsize ws;
	*cols = 80;
	*rows = 24;
	if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
		*cols = ws.ws_col;
		*rows = ws.ws_row;
	}
}

/* A line that never wraps: at most cols - 1 characters (cut at a byte,
 * the progress texts are ASCII). */
void xe_put_line(FILE *f, const char *s, int cols)
{
	int max = cols > 1 ? cols - 1 : 1;
	fprintf(f, "%.*s", max, s);
}

double xe_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The status word a task may carry (ours, in other_config), or NULL. */
static const char *task_phase(const json_t *rec)
{
	json_t *oc = json_object_get(rec, "other_config");
	const char *s = json_string_value(json_object_get(oc, "phase"));
	if (!s)
		s = json_string_value(json_object_get(oc, "status"));
	return s && *s ? s : NULL;
}

int xe_task_follow(struct xe_ctx *c, const char *task, int period_ms, const char *what, xe_task_draw_fn draw,
		   void *arg)
{
	int rc = -1;
	for (;;) {
		json_t *rec = xe_rpc(c, "task.get_record", "s", task);
		if (!rec)
			break;
		const char *st = json_string_value(json_object_get(rec, "status"));
		bool over = st && strcmp(st, "pending") && strcmp(st, "cancelling");
		bool ok = over && strcmp(st, "success") == 0;
		if (draw)
			draw(c, rec, over, ok, arg);
		if (over) {
			json_t *ei = json_object_get(rec, "error_info");
			if (ok)
				rc = 0;
			else if (json_array_size(ei) && !c->msg && !c->xerr)
				c->xerr = json_incref(ei);
			else
				xe_fail(c, "The %s task ended with status %s", what, st);
			json_decref(rec);
			break;
		}
		json_decref(rec);
		struct timespec ts = {period_ms / 1000, (long)(period_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
	fflush(c->out);
	return rc;
}

struct mig_draw {
	double start;
	bool shown;
};

/* vm-migrate's and vdi-pool-migrate's one line, redrawn in place, then
 * the summary. */
static void migrate_draw(struct xe_ctx *c, json_t *rec, bool over, bool ok, void *arg)
{
	struct mig_draw *m = arg;
	double elapsed = xe_now_s() - m->start;
	char *line = over ? NULL
			  : xe_migrate_progress(json_number_value(json_object_get(rec, "progress")), elapsed,
						task_phase(rec));
	if (line) {
		/* never wider than the terminal (a wrapped line would leave a
		 * copy per redraw) */
		int cols, rows;
		xe_term_size(c->out, &cols, &rows);
		fputs("\r\033[2K", c->out);
		xe_put_line(c->out, line, cols);
		fflush(c->out);
		m->shown = true;
		free(line);
	}
	if (over && m->shown)
		fputs("\r\033[2K", c->out);
	if (ok) {
		/* XAPI's result is void: poold keeps the figures in the task's
		 * other_config */
		char *sum = xe_migrate_summary(
			elapsed, json_string_value(json_object_get(json_object_get(rec, "other_config"), "migration_stats")));
		fprintf(c->out, "%s\n", sum ? sum : "Migrated");
		free(sum);
	}
}

int xe_task_wait(struct xe_ctx *c, const char *task, double start, bool show)
{
	struct mig_draw m = {start, false};
	return xe_task_follow(c, task, 100, "migration", show ? migrate_draw : NULL, &m);
}

/* task.destroy, keeping the error that ended the command. */
void xe_task_forget(struct xe_ctx *c, const char *task)
{
	json_t *save_x = c->xerr;
	char *save_m = c->msg;
	c->xerr = NULL;
	c->msg = NULL;
	json_decref(xe_rpc(c, "task.destroy", "s", task));
	json_decref(c->xerr);
	free(c->msg);
	c->xerr = save_x;
	c->msg = save_m;
}

