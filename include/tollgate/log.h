/*
 * Diagnostic messages to stderr ("tollgate: <level>: <message>"). Each message is written with one write(2), so
 * lines from several worker threads never interleave. The per-request access log is separate (see router.h).
 */
#ifndef TOLLGATE_LOG_H
#define TOLLGATE_LOG_H

#include <stddef.h>

void tg_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tg_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tg_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Writes exactly (p, n) to stderr with one write(2), retrying on EINTR and short writes. */
void tg_log_write_raw(const char *p, size_t n);

#endif
