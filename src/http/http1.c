/*
 * The HTTP/1.x request reader (see http1.h): llhttp callbacks that copy the head into one capped buffer and the
 * body into another, and enforce the limits as the bytes arrive rather than after the fact.
 *
 * llhttp is paused at the end of every message (on_message_complete returns HPE_PAUSED), which is how the reader
 * tells the caller where a message ends inside a read that also carries the start of the next one.
 */
#include <stdlib.h>
#include "tollgate/error.h"
#include "tollgate/http1.h"

#define HEAD_RAW_SLACK (64 * 1024) /* raw head bytes beyond max_header_size: whitespace, CRLFs, a pipelined body */
#define KEEP_HEAD_CAP (16 * 1024)  /* buffers larger than this are released between messages */

#define READER(p) ((tg_http1_t *)(p)->data)

static int fail(llhttp_t *p, int err)
{
    tg_http1_t *r = READER(p);
    if (r->_err == 0)
        r->_err = err;
    llhttp_set_error_reason(p, tg_strerror(err));
    return HPE_USER;
}

static int append_head(llhttp_t *p, const char *at, size_t len)
{
    tg_http1_t *r = READER(p);
    return tg_buf_append(&r->head, at, len) == 0 ? 0 : fail(p, TG_E_HEADERS_TOO_LARGE);
}

static int on_message_begin(llhttp_t *p)
{
    READER(p)->started = true;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    tg_http1_t *r = READER(p);
    if (r->url_len + len > r->limits.max_url_length)
        return fail(p, TG_E_URL_TOO_LONG);
    r->url_len += (uint32_t)len;
    return append_head(p, at, len);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    tg_http1_t *r = READER(p);
    if (r->num_hdrs == 0 || r->_in_value) {
        if (r->num_hdrs >= r->limits.max_headers)
            return fail(p, TG_E_TOO_MANY_HEADERS);
        if (r->num_hdrs == r->_cap_hdrs) {
            r->_cap_hdrs = r->_cap_hdrs != 0 ? r->_cap_hdrs * 2 : 16;
            r->hdrs = tg_realloc(r->hdrs, r->_cap_hdrs * sizeof(*r->hdrs));
        }
        tg_http1_hdr_t *h = r->hdrs + r->num_hdrs++;
        h->name_off = h->value_off = (uint32_t)r->head.len;
        h->name_len = h->value_len = 0;
        r->_in_value = false;
    }
    r->hdrs[r->num_hdrs - 1].name_len += (uint32_t)len;
    return append_head(p, at, len);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    tg_http1_t *r = READER(p);
    if (r->num_hdrs == 0)
        return fail(p, TG_E_BAD_REQUEST);
    tg_http1_hdr_t *h = r->hdrs + r->num_hdrs - 1;
    if (!r->_in_value) {
        r->_in_value = true;
        h->value_off = (uint32_t)r->head.len;
        h->value_len = 0;
    }
    h->value_len += (uint32_t)len;
    return append_head(p, at, len);
}

static int on_headers_complete(llhttp_t *p)
{
    tg_http1_t *r = READER(p);
    r->head_done = true;
    r->method = llhttp_get_method(p);
    r->version_major = llhttp_get_http_major(p);
    r->version_minor = llhttp_get_http_minor(p);
    bool has_cl = (p->flags & F_CONTENT_LENGTH) != 0;
    r->content_length = has_cl ? (int64_t)p->content_length : -1;
    r->has_body = (p->flags & F_CHUNKED) != 0 || (has_cl && p->content_length > 0);
    r->upgrade = llhttp_get_upgrade(p) != 0;
    if (r->on_head != NULL) {
        /* called even for a body that is too large, so that the caller knows the request it refuses */
        int err = r->on_head(r, r->data);
        if (err != 0)
            return fail(p, err);
    }
    if (has_cl && p->content_length > r->limits.max_request_body)
        return fail(p, TG_E_BODY_TOO_LARGE);
    tg_buf_init(&r->body, r->limits.max_request_body);
    if (has_cl && p->content_length > 0)
        tg_buf_reserve(&r->body, (size_t)p->content_length);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    tg_http1_t *r = READER(p);
    return tg_buf_append(&r->body, at, len) == 0 ? 0 : fail(p, TG_E_BODY_TOO_LARGE);
}

static int on_message_complete(llhttp_t *p)
{
    tg_http1_t *r = READER(p);
    r->_complete = true;
    r->keepalive = llhttp_should_keep_alive(p) != 0 && !r->upgrade;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void reset_message(tg_http1_t *r)
{
    tg_buf_reset(&r->head);
    if (r->head.cap > KEEP_HEAD_CAP)
        tg_buf_free(&r->head);
    tg_buf_free(&r->body);
    tg_buf_init(&r->body, 0);
    r->head.max = r->limits.max_header_size;
    r->num_hdrs = 0;
    r->url_len = 0;
    r->_in_value = false;
    r->_head_raw = 0;
    r->_complete = false;
    r->_err = 0;
    r->started = r->head_done = r->has_body = r->keepalive = r->upgrade = false;
    r->content_length = -1;
    r->method = -1;
    r->version_major = 1;
    r->version_minor = 1;
}

void tg_http1_init(tg_http1_t *r, const tg_http1_limits_t *limits)
{
    memset(r, 0, sizeof(*r));
    r->limits = *limits;
    tg_buf_init(&r->head, limits->max_header_size);
    tg_buf_init(&r->body, 0);
    llhttp_init(&r->_ll, HTTP_REQUEST, &settings);
    r->_ll.data = r;
    reset_message(r);
}

void tg_http1_dispose(tg_http1_t *r)
{
    tg_buf_free(&r->head);
    tg_buf_free(&r->body);
    free(r->hdrs);
    r->hdrs = NULL;
    r->_cap_hdrs = 0;
}

int tg_http1_feed(tg_http1_t *r, const char *data, size_t len, size_t *consumed)
{
    *consumed = 0;
    if (r->_err != 0)
        return r->_err;
    if (!r->head_done) {
        r->_head_raw += len;
        if (r->_head_raw > (size_t)r->limits.max_header_size + HEAD_RAW_SLACK) {
            r->_err = TG_E_HEADERS_TOO_LARGE;
            return r->_err;
        }
    }
    llhttp_errno_t e = llhttp_execute(&r->_ll, data, len);
    if (e == HPE_OK) {
        *consumed = len;
        return 0;
    }
    if ((e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) && r->_complete) {
        const char *pos = llhttp_get_error_pos(&r->_ll);
        *consumed = pos != NULL ? (size_t)(pos - data) : len;
        return 1;
    }
    if (r->_err == 0)
        r->_err = TG_E_BAD_REQUEST;
    return r->_err;
}

void tg_http1_next(tg_http1_t *r)
{
    TG_BUG_ON(!r->_complete);
    reset_message(r);
    llhttp_resume(&r->_ll);
}
