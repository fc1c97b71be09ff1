/* log.c - timestamped lines on stderr, one write() per line; priority
 * prefixes instead when stderr is the journal (see log.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "log.h"

/* The logger's settings: a process-wide singleton set once by main(). */
static const char *log_prog = "?";
static enum log_level log_min = LOG_LVL_INFO;
static bool log_journal;

bool log_is_journal(const char *journal_stream, unsigned long long dev, unsigned long long ino)
{
	unsigned long long d, i;
	char tail;
	return journal_stream && sscanf(journal_stream, "%llu:%llu%c", &d, &i, &tail) == 2 && d == dev && i == ino;
}

void log_init(const char *prog, enum log_level min)
{
	log_prog = prog;
	log_min = min;
	struct stat st;
	log_journal = fstat(STDERR_FILENO, &st) == 0 &&
		      log_is_journal(getenv("JOURNAL_STREAM"), (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
}

int log_format(char *line, size_t size, bool journal, enum log_level lvl, const char *prog, int pid,
	       const struct timeval *tv)
{
	static const char *tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
	static const int prio[] = {7, 6, 4, 3}; /* syslog's debug, info, warning, err */
	if (journal) /* journald stamps the time, the unit and the pid itself */
		return snprintf(line, size, "<%d>%s: ", prio[lvl], tags[lvl]);
	struct tm tm;
	gmtime_r(&tv->tv_sec, &tm);
	return snprintf(line, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s: ", tm.tm_year + 1900,
			tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(tv->tv_usec / 1000), prog,
			pid, tags[lvl]);
}

void log_set_level(enum log_level min)
{
	log_min = min;
}

int log_level_from_name(const char *name)
{
	static const char *names[] = {"debug", "info", "warn", "error"};
	for (int i = 0; i < 4; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	if (lvl < log_min)
		return;
	char line[2048];
	struct timeval tv;
	gettimeofday(&tv, NULL);
	int n = log_format(line, sizeof line, log_journal, lvl, log_prog, (int)getpid(), &tv);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : ((size_t)m < sizeof line - (size_t)n - 1 ? (size_t)m : sizeof line - (size_t)n - 2));
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}
