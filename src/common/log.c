/* Diagnostics to stderr, one write(2) per message so that threads never interleave within a line. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include "tollgate/common.h"
#include "tollgate/log.h"

void tg_log_write_raw(const char *p, size_t n)
{
    while (n != 0) {
        ssize_t w = write(2, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void vlog(const char *level, const char *fmt, va_list ap)
{
    char line[2048];
    int n = snprintf(line, sizeof(line), "tollgate: %s", level);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : TG_MIN((size_t)m, sizeof(line) - (size_t)n - 2));
    line[len++] = '\n';
    tg_log_write_raw(line, len);
}


void tg_log_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

void tg_log_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("warning: ", fmt, ap);
    va_end(ap);
}

void tg_log_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("error: ", fmt, ap);
    va_end(ap);
}
