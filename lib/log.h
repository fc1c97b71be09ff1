/*
 * log.h - one tiny logger for every program here.
 *
 * Lines go to stderr as "2026-11-23T05:01:02.123Z poold[pid] LEVEL: text".
 * Daemons run under a supervisor (systemd, devpool) that keeps stderr.
 */
#ifndef LOG_H
#define LOG_H

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

void log_init(const char *prog, enum log_level min);
void log_set_level(enum log_level min);
/* "debug" | "info" | "warn" | "error" -> level; -1 when unknown. */
int log_level_from_name(const char *name);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)

#endif
