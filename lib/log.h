/*
 * log.h - one tiny logger for every program here.
 *
 * Lines go to stderr as "2026-11-23T05:01:02.123Z poold[pid] LEVEL: text".
 * Daemons run under a supervisor (systemd, devpool) that keeps stderr.
 * When stderr is the journal (systemd's JOURNAL_STREAM names it), a line
 * is "<N>LEVEL: text" instead: journald reads N as its priority (7 debug,
 * 6 info, 4 warning, 3 error, as sd-daemon(3)) and adds the time itself.
 */
#ifndef LOG_H
#define LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/time.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

void log_init(const char *prog, enum log_level min);
void log_set_level(enum log_level min);
/* "debug" | "info" | "warn" | "error" -> level; -1 when unknown. */
int log_level_from_name(const char *name);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- pure parts, for the tests ---- */
/* JOURNAL_STREAM ("DEV:INO") names the file stderr is (dev, ino). */
bool log_is_journal(const char *journal_stream, unsigned long long dev, unsigned long long ino);
/* A line's prefix into line; returns its length (as snprintf). */
int log_format(char *line, size_t size, bool journal, enum log_level lvl, const char *prog, int pid,
	       const struct timeval *tv);

#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)

#endif
