/*
 * Usage for OpenAI-shaped streams (streamusage.h): a byte-exact edit of the request body, and an SSE filter that
 * takes out the usage the client did not ask for. Both find their way around the JSON with jsonscan's offsets.
 */
#include "tollgate/jsonscan.h"
#include "tollgate/streamusage.h"

bool tg_streamusage_provider_ok(const char *provider)
{
    /* not azure-openai: api-versions before 2024-09 refuse stream_options */
    static const char *const ok[] = {"openai", "groq", "deepseek", "grok", "openrouter", "fireworks", "cerebras", NULL};
    for (const char *const *p = ok; *p != NULL; ++p)
        if (strcmp(provider, *p) == 0)
            return true;
    return false;
}

/* ---- the request ------------------------------------------------------------------------------------------ */

typedef struct {
    bool root_object;
    uint64_t root_start;
    bool stream_true;
    int so_type;   /* type of stream_options, -1 when absent */
    uint64_t so_start, so_end;
    bool so_members;
    int iu_type;   /* type of stream_options.include_usage, -1 when absent */
    uint64_t iu_start, iu_end;
} req_scan_t;

static void on_req_value(tg_jsonscan_t *s, const tg_jsonscan_value_t *v, void *data)
{
    req_scan_t *r = data;
    unsigned d = tg_jsonscan_depth(s);
    if (d == 0 && v->type == TG_JSON_OBJECT) {
        r->root_object = true;
        r->root_start = v->start;
    } else if (d == 1 && tg_jsonscan_key_is(s, 0, "stream") && v->type != TG_JSON_END) {
        r->stream_true = v->type == TG_JSON_TRUE;
    } else if (d == 1 && tg_jsonscan_key_is(s, 0, "stream_options")) {
        if (v->type == TG_JSON_END) {
            r->so_end = v->end;
        } else {
            r->so_type = (int)v->type;
            r->so_start = v->start;
            r->so_end = v->end;
        }
    } else if (d == 2 && tg_jsonscan_key_is(s, 1, "stream_options")) {
        r->so_members = true;
        if (tg_jsonscan_key_is(s, 0, "include_usage") && v->type != TG_JSON_END) {
            r->iu_type = (int)v->type;
            r->iu_start = v->start;
            r->iu_end = v->end;
        }
    }
}

/* out = body[0, at) + ins + body[to, len) */
static tg_iovec_t splice(tg_mem_pool_t *pool, tg_iovec_t body, size_t at, size_t to, const char *ins)
{
    size_t il = strlen(ins), n = at + il + (body.len - to);
    char *p = tg_mem_alloc_pool(pool, n);
    memcpy(p, body.base, at);
    memcpy(p + at, ins, il);
    memcpy(p + at + il, body.base + to, body.len - to);
    return tg_iov(p, n);
}

bool tg_streamusage_inject(tg_mem_pool_t *pool, tg_iovec_t body, tg_iovec_t *out)
{
    static const tg_jsonscan_ops_t ops = {on_req_value, NULL};
    if (!tg_json_mentions(body, "stream"))
        return false; /* most requests: no need to scan */
    req_scan_t r = {.so_type = -1, .iu_type = -1};
    tg_jsonscan_t s;
    tg_jsonscan_init(&s, &ops, &r);
    if (tg_jsonscan_feed(&s, body.base, body.len) != 0 || !tg_jsonscan_complete(&s) || !r.root_object ||
        !r.stream_true)
        return false;
    if (r.iu_type == TG_JSON_TRUE)
        return false; /* the client asked for usage itself: nothing to add or remove */
    if (r.so_type < 0) {
        *out = splice(pool, body, (size_t)r.root_start + 1, (size_t)r.root_start + 1,
                      "\"stream_options\":{\"include_usage\":true},");
    } else if (r.so_type != TG_JSON_OBJECT) {
        *out = splice(pool, body, (size_t)r.so_start, (size_t)r.so_end, "{\"include_usage\":true}");
    } else if (r.iu_type >= 0) {
        if (r.iu_type == TG_JSON_OBJECT || r.iu_type == TG_JSON_ARRAY)
            return false; /* not a value the provider would accept anyway */
        *out = splice(pool, body, (size_t)r.iu_start, (size_t)r.iu_end, "true");
    } else {
        *out = splice(pool, body, (size_t)r.so_start + 1, (size_t)r.so_start + 1,
                      r.so_members ? "\"include_usage\":true," : "\"include_usage\":true");
    }
    return true;
}

/* ---- the response ----------------------------------------------------------------------------------------- */

typedef struct {
    bool choices_array, choices_empty;
    unsigned choices_items;
    int usage_type; /* -1 absent */
    uint64_t usage_member, usage_comma, usage_end;
} event_scan_t;

static void on_event_value(tg_jsonscan_t *s, const tg_jsonscan_value_t *v, void *data)
{
    event_scan_t *e = data;
    unsigned d = tg_jsonscan_depth(s);
    if (d == 1 && tg_jsonscan_key_is(s, 0, "choices")) {
        if (v->type == TG_JSON_ARRAY)
            e->choices_array = true, e->choices_items = 0;
        else if (v->type == TG_JSON_END && e->choices_array)
            e->choices_empty = e->choices_items == 0;
    } else if (d == 2 && tg_jsonscan_key_is(s, 1, "choices")) {
        if (v->type != TG_JSON_END)
            e->choices_items++;
    } else if (d == 1 && tg_jsonscan_key_is(s, 0, "usage") && v->type != TG_JSON_END) {
        e->usage_type = (int)v->type;
        e->usage_member = v->member_start;
        e->usage_comma = v->comma_before;
        e->usage_end = v->end;
    }
}

void tg_streamusage_strip_init(tg_streamusage_strip_t *f)
{
    tg_buf_init(&f->event, TG_STREAMUSAGE_MAX_EVENT);
    f->scanned = 0;
    f->passthrough = false;
}

void tg_streamusage_strip_dispose(tg_streamusage_strip_t *f)
{
    tg_buf_free(&f->event);
}

/* Appends one complete event (ev[0, n)) to out, edited. */
static void emit_event(const char *ev, size_t n, tg_buf_t *out)
{
    /* exactly one data line: "data: {json}" then the event's end */
    const char *data = NULL;
    size_t dlen = 0;
    const char *p = ev, *end = ev + n;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol != NULL ? eol : end;
        size_t ll = (size_t)(le - p);
        if (ll != 0 && p[ll - 1] == '\r')
            --ll;
        if (ll >= 5 && memcmp(p, "data:", 5) == 0) {
            if (data != NULL) { /* several data lines: leave it alone */
                tg_buf_append(out, ev, n);
                return;
            }
            data = p + 5;
            dlen = ll - 5;
            if (dlen != 0 && *data == ' ')
                ++data, --dlen;
        }
        p = eol != NULL ? eol + 1 : end;
    }
    if (data == NULL || dlen == 0 || *data != '{') {
        tg_buf_append(out, ev, n);
        return;
    }
    static const tg_jsonscan_ops_t ops = {on_event_value, NULL};
    event_scan_t e = {.usage_type = -1};
    tg_jsonscan_t s;
    tg_jsonscan_init(&s, &ops, &e);
    if (tg_jsonscan_feed(&s, data, dlen) != 0 || !tg_jsonscan_complete(&s)) {
        tg_buf_append(out, ev, n);
        return;
    }
    if (e.choices_empty && e.usage_type == TG_JSON_OBJECT)
        return; /* the usage chunk the client did not ask for */
    if (e.usage_type != TG_JSON_NULL) {
        tg_buf_append(out, ev, n);
        return;
    }
    /* take out the member "usage":null with the comma that joins it to its neighbours */
    size_t base = (size_t)(data - ev), from, to;
    if (e.usage_comma != UINT64_MAX) {
        from = base + (size_t)e.usage_comma;
        to = base + (size_t)e.usage_end;
    } else {
        from = base + (size_t)e.usage_member;
        to = base + (size_t)e.usage_end;
        while (to < base + dlen && (ev[to] == ' ' || ev[to] == '\t'))
            ++to;
        if (to < base + dlen && ev[to] == ',')
            ++to;
        while (to < base + dlen && (ev[to] == ' ' || ev[to] == '\t'))
            ++to;
    }
    tg_buf_append(out, ev, from);
    tg_buf_append(out, ev + to, n - to);
}

/* Length of the first complete event in b[0, n) (through its blank line), or 0. Bytes before `from` are known
 * not to end an event. */
static size_t event_length(const char *b, size_t n, size_t from)
{
    for (size_t i = from > 3 ? from - 3 : 1; i < n; ++i) {
        /* a blank line: \n\n, \r\n\r\n, \r\r, or the mixed \n\r\n (a lone \r line end followed by \r\n
         * would need one more byte to tell; such streams just wait for the next event's end) */
        if (b[i] == '\n' && (b[i - 1] == '\n' || (i >= 2 && b[i - 1] == '\r' && b[i - 2] == '\n')))
            return i + 1;
        if (b[i] == '\r' && b[i - 1] == '\r')
            return i + 1 < n && b[i + 1] == '\n' ? i + 2 : i + 1;
    }
    return 0;
}

void tg_streamusage_strip_feed(tg_streamusage_strip_t *f, const char *p, size_t n, tg_buf_t *out)
{
    if (f->passthrough) {
        tg_buf_append(out, p, n);
        return;
    }
    if (tg_buf_append(&f->event, p, n) != 0) { /* an event larger than the cap: give up on this stream */
        tg_buf_append(out, f->event.base, f->event.len);
        tg_buf_append(out, p, n);
        f->event.len = 0;
        f->scanned = 0;
        f->passthrough = true;
        return;
    }
    size_t off = 0, len;
    while ((len = event_length(f->event.base + off, f->event.len - off, off == 0 ? f->scanned : 0)) != 0) {
        emit_event(f->event.base + off, len, out);
        off += len;
    }
    tg_buf_consume(&f->event, off);
    f->scanned = f->event.len;
}

void tg_streamusage_strip_finish(tg_streamusage_strip_t *f, tg_buf_t *out)
{
    if (f->event.len != 0)
        tg_buf_append(out, f->event.base, f->event.len);
    f->event.len = 0;
    f->scanned = 0;
}
