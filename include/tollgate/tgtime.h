/*
 * Clocks. Time is a parameter wherever a decision depends on it (expiry, windows), so tests inject it; these are
 * the only functions that read the system clocks.
 */
#ifndef TOLLGATE_TGTIME_H
#define TOLLGATE_TGTIME_H

#include <stdint.h>
#include <stddef.h>

/* Monotonic nanoseconds, for durations. */
uint64_t tg_now_mono_ns(void);
/* Wall-clock milliseconds since the Unix epoch, for records and log lines. */
uint64_t tg_now_unix_ms(void);
/* Formats unix milliseconds as "2026-11-23T10:00:00.123Z" into buf (at least 25 bytes); returns the length. */
size_t tg_format_iso8601_ms(uint64_t unix_ms, char *buf, size_t bufsz);
/* Formats unix seconds as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") into buf (at least 30 bytes). */
size_t tg_format_http_date(uint64_t unix_s, char *buf, size_t bufsz);

#endif
