/*
 * xen_log.c - xentoollog -> lib/log.h (see xen_log.h).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "xen_log.h"

struct xen_logger {
	xentoollog_logger xg_vtable; /* first: libxl sees only this */
	pthread_mutex_t xg_mu;
	bool xg_quiet;
	char xg_last[400];
};

static void xg_vmessage(xentoollog_logger *lg, xentoollog_level level, int errnoval, const char *context,
			const char *format, va_list al) __attribute__((format(printf, 5, 0)));
static void xg_vmessage(xentoollog_logger *lg, xentoollog_level level, int errnoval, const char *context,
			const char *format, va_list al)
{
	struct xen_logger *x = (struct xen_logger *)lg;
	char msg[400];
	int n = vsnprintf(msg, sizeof msg, format, al);
	if (n > 0 && errnoval >= 0 && (size_t)n < sizeof msg)
		snprintf(msg + n, sizeof msg - (size_t)n, ": %s", strerror(errnoval));
	pthread_mutex_lock(&x->xg_mu);
	bool quiet = x->xg_quiet;
	if (level >= XTL_WARN)
		snprintf(x->xg_last, sizeof x->xg_last, "%s", msg);
	pthread_mutex_unlock(&x->xg_mu);
	enum log_level lv = LOG_LVL_DEBUG;
	if (!quiet && level >= XTL_ERROR)
		lv = LOG_LVL_WARN;
	else if (!quiet && level >= XTL_NOTICE)
		lv = LOG_LVL_INFO;
	log_msg(lv, "%s: %s", context ? context : "xen", msg);
}

static void xg_progress(xentoollog_logger *lg, const char *context, const char *doing_what, int percent,
			unsigned long done, unsigned long total)
{
	(void)lg;
	log_debug("%s: %s %d%% (%lu/%lu)", context ? context : "xen", doing_what, percent, done, total);
}

static void xg_destroy(xentoollog_logger *lg)
{
	struct xen_logger *x = (struct xen_logger *)lg;
	pthread_mutex_destroy(&x->xg_mu);
	free(x);
}

xentoollog_logger *xen_logger_new(void)
{
	struct xen_logger *x = xcalloc(1, sizeof *x);
	x->xg_vtable.vmessage = xg_vmessage;
	x->xg_vtable.progress = xg_progress;
	x->xg_vtable.destroy = xg_destroy;
	pthread_mutex_init(&x->xg_mu, NULL);
	return &x->xg_vtable;
}

void xen_logger_set_quiet(xentoollog_logger *lg, bool quiet)
{
	struct xen_logger *x = (struct xen_logger *)lg;
	pthread_mutex_lock(&x->xg_mu);
	x->xg_quiet = quiet;
	pthread_mutex_unlock(&x->xg_mu);
}

void xen_logger_take_last(xentoollog_logger *lg, char *out, size_t n)
{
	struct xen_logger *x = (struct xen_logger *)lg;
	pthread_mutex_lock(&x->xg_mu);
	snprintf(out, n, "%s", x->xg_last);
	x->xg_last[0] = 0;
	pthread_mutex_unlock(&x->xg_mu);
}
