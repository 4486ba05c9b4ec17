/*
 * HTTP/1.x request reader: llhttp plus the bookkeeping around it, with no sockets and no loop, so it can be fed
 * one byte at a time or all at once in tests and give the same result (picohttpparser test.c).
 *
 * llhttp hands over URL, header names and header values in pieces that may be split across reads; the reader
 * copies them into one capped head buffer and records offsets, so that nothing points into the caller's read
 * buffer after tg_http1_feed returns. The body goes into a second capped buffer (chunked bodies decoded by llhttp).
 * The reader stops at the end of each message: bytes after it are left to the caller, who feeds them again after
 * tg_http1_next (pipelining).
 *
 * Limits and the 4xx they give: URL over max_url_length -> TG_E_URL_TOO_LONG (414); URL, names and values over
 * max_header_size in total, or raw head bytes over max_header_size + 64 KiB -> TG_E_HEADERS_TOO_LARGE (431); more
 * than max_headers headers -> TG_E_TOO_MANY_HEADERS (431); a body (declared or received) over max_request_body ->
 * TG_E_BODY_TOO_LARGE (413); anything llhttp rejects -> TG_E_BAD_REQUEST (400).
 */
#ifndef TOLLGATE_HTTP1_H
#define TOLLGATE_HTTP1_H

#include <llhttp.h>
#include "tollgate/buf.h"
#include "tollgate/common.h"

typedef struct st_tg_http1_limits_t {
    uint32_t max_url_length;
    uint32_t max_header_size;
    uint32_t max_headers;
    uint64_t max_request_body;
} tg_http1_limits_t;

typedef struct st_tg_http1_hdr_t {
    uint32_t name_off, name_len, value_off, value_len;
} tg_http1_hdr_t;

typedef struct st_tg_http1_t tg_http1_t;

struct st_tg_http1_t {
    tg_http1_limits_t limits;
    /* Called once the head is complete (before any body byte), e.g. to answer Expect: 100-continue or to refuse
     * early. Return 0 to go on or a TG_E_* code to fail the message with it. */
    int (*on_head)(tg_http1_t *r, void *data);
    void *data;

    /* the message being read; valid from on_head until tg_http1_next */
    int method;             /* llhttp_method_t */
    unsigned version_major; /* 1, or 0 for HTTP/0.9-like input (rejected) */
    unsigned version_minor;
    bool has_body;             /* chunked or Content-Length > 0 */
    int64_t content_length;    /* -1 when not declared */
    bool keepalive;            /* after completion: may another request follow? */
    bool upgrade;              /* an Upgrade/CONNECT request: the connection cannot continue as HTTP/1 */
    bool started;              /* a byte of this message has been seen */
    bool head_done;
    tg_buf_t head; /* URL, then header names and values, back to back */
    uint32_t url_len;
    tg_http1_hdr_t *hdrs;
    size_t num_hdrs;
    tg_buf_t body;

    /* private */
    llhttp_t _ll;
    size_t _cap_hdrs;
    size_t _head_raw;
    bool _in_value;
    bool _complete;
    int _err;
};

/* Initialises a reader; allocates nothing until bytes arrive. */
void tg_http1_init(tg_http1_t *r, const tg_http1_limits_t *limits);
/* Releases the buffers. */
void tg_http1_dispose(tg_http1_t *r);

/*
 * Parses (data, len). Returns:
 *   0           everything consumed, the message is not complete yet;
 *   1           a message is complete; *consumed says how many bytes it used (the rest belongs to the next one);
 *   TG_E_*      the message is malformed or over a limit (see above); the connection cannot continue.
 * *consumed is set in every case.
 */
int tg_http1_feed(tg_http1_t *r, const char *data, size_t len, size_t *consumed);
/* Forgets the completed message (buffers are kept for reuse, large ones released) and gets ready for the next. */
void tg_http1_next(tg_http1_t *r);

/* The URL (request target) and header i of the current message, pointing into r->head. */
static inline tg_iovec_t tg_http1_url(const tg_http1_t *r)
{
    return tg_iov(r->head.base, r->url_len);
}
static inline tg_iovec_t tg_http1_name(const tg_http1_t *r, size_t i)
{
    return tg_iov(r->head.base + r->hdrs[i].name_off, r->hdrs[i].name_len);
}
static inline tg_iovec_t tg_http1_value(const tg_http1_t *r, size_t i)
{
    return tg_iov(r->head.base + r->hdrs[i].value_off, r->hdrs[i].value_len);
}

#endif
