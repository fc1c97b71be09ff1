/*
 * xen_log.h - a xentoollog logger (what libxl, libxc and libxenstore log
 * through) writing to the agent's log (lib/log.h), and remembering the
 * last error so a failed libxl call becomes one line in be_error.
 */
#ifndef XEN_LOG_H
#define XEN_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <xentoollog.h>

xentoollog_logger *xen_logger_new(void);
/* quiet: everything goes to the debug level (while probing for Xen, so a
 * host without it gets one line, not libxl's stack of errors). */
void xen_logger_set_quiet(xentoollog_logger *lg, bool quiet);
/* The last error or warning logged since the previous call ("" if none);
 * clears it. */
void xen_logger_take_last(xentoollog_logger *lg, char *out, size_t n);

#endif
