/*
 * Dialect translation (xlate.h): the entry points, the SSE reader that cuts a provider's stream into events, and
 * what every translator writes the same way (chunks, usage, errors).
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "internal.h"

int tg_xlate_fail(char *err, size_t errsz, const char *fmt, ...)
{
    if (errsz != 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsz, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void tg_xlate_where(char *out, size_t outsz, const char *base, const char *field, size_t i)
{
    char tail[24], *t = tail + sizeof(tail); /* "[i]" */
    *--t = ']';
    do
        *--t = (char)('0' + i % 10);
    while ((i /= 10) != 0 && t > tail + 1);
    *--t = '[';
    if (outsz == 0)
        return;
    const tg_iovec_t pieces[] = {tg_iov_str(base), tg_iov_str(field), tg_iov(t, (size_t)(tail + sizeof(tail) - t))};
    size_t o = 0;
    for (size_t k = 0; k != TG_ARRAY_SIZE(pieces); ++k) { /* what does not fit is cut */
        size_t n = TG_MIN(pieces[k].len, outsz - 1 - o);
        memcpy(out + o, pieces[k].base, n);
        o += n;
    }
    out[o] = '\0';
}

void tg_xlate_keep_raw(char *dst, size_t dstsz, const tg_jdoc_t *d, uint32_t v)
{
    tg_iovec_t raw = tg_xlate_str_raw(d, v);
    if (raw.len >= dstsz)
        raw.len = 0;
    memcpy(dst, raw.base, raw.len);
    dst[raw.len] = '\0';
}

int tg_xlate_check_members(const tg_jdoc_t *d, const char *const *handled, uint32_t *found,
                           bool (*is_default)(const tg_jdoc_t *d, tg_iovec_t key, uint32_t v), const char *to_whom,
                           char *err, size_t errsz)
{
    unsigned models = 0;
    if (found != NULL)
        for (size_t i = 0; handled[i] != NULL; ++i)
            found[i] = NONE;
    EACH(d, 0, m) {
        tg_iovec_t k = tg_jdoc_key(d, m);
        if (tg_iov_eq(k, TG_LIT("model")) && ++models == 2) /* a provider would read one or the other */
            return tg_xlate_fail(err, errsz, "The body has \"model\" more than once; send it once");
        const char *const *h = handled;
        /* the first byte before the length: most names differ there */
        while (*h != NULL && !(k.len != 0 && (*h)[0] == k.base[0] && tg_iov_eq(k, *h, strlen(*h))))
            ++h;
        if (*h != NULL && found != NULL && found[h - handled] == NONE)
            found[h - handled] = m;
        if (*h == NULL && !is_default(d, k, m))
            return tg_xlate_fail(err, errsz, "\"%.*s\" cannot be sent to %s", (int)TG_MIN(k.len, 64), k.base, to_whom);
    }
    return 0;
}

int tg_xlate_put_sampling(const tg_jdoc_t *d, tg_buf_t *out, const char *temperature_rule, char *err, size_t errsz)
{
    double x;
    uint32_t v;
    if (!tg_jdoc_is_null(d, v = tg_jdoc_get(d, 0, "temperature"))) {
        if (tg_jdoc_number(d, v, &x) != 0 || x < 0 || x > 1)
            return tg_xlate_fail(err, errsz, "%s", temperature_rule);
        put(out, ",\"temperature\":");
        put_iov(out, tg_jdoc_raw(d, v));
    }
    if (!tg_jdoc_is_null(d, v = tg_jdoc_get(d, 0, "top_p"))) {
        if (tg_jdoc_number(d, v, &x) != 0)
            return tg_xlate_fail(err, errsz, "top_p must be a number");
        put(out, ",\"top_p\":");
        put_iov(out, tg_jdoc_raw(d, v));
    }
    return 0;
}

bool tg_xlate_all_strings(const tg_jdoc_t *d, uint32_t v)
{
    if (!is_type(d, v, TG_JSON_ARRAY))
        return false;
    EACH(d, v, s) {
        if (!is_type(d, s, TG_JSON_STRING))
            return false;
    }
    return true;
}

int tg_xlate_parse_data_url(tg_iovec_t url, tg_iovec_t *mime, tg_iovec_t *data)
{
    if (url.len < 5)
        return -1;
    const char *p = url.base + 5, *end = url.base + url.len;
    const char *comma = memchr(p, ',', (size_t)(end - p));
    if (comma == NULL || comma - p < 8 || memcmp(comma - 7, ";base64", 7) != 0 || comma - 7 == p)
        return -1;
    *mime = tg_iov(p, (size_t)(comma - 7 - p));
    *data = tg_iov(comma + 1, (size_t)(end - comma - 1));
    return 0;
}

void tg_xlate_put_str(tg_buf_t *out, bool comma, const char *key, const char *s, size_t n)
{
    put(out, comma ? ",\"" : "\"");
    put(out, key);
    put(out, "\":\"");
    tg_buf_append_json_escaped(out, s, n);
    tg_buf_append(out, "\"", 1);
}

void tg_xlate_put_usage(tg_buf_t *out, int64_t input, int64_t output, int64_t cache_read, int64_t cache_write)
{
    int64_t prompt = input + cache_read + cache_write;
    put(out, "{\"prompt_tokens\":");
    tg_buf_append_int(out, prompt);
    put(out, ",\"completion_tokens\":");
    tg_buf_append_int(out, output);
    put(out, ",\"total_tokens\":");
    tg_buf_append_int(out, prompt + output);
    put(out, ",\"prompt_tokens_details\":{\"cached_tokens\":");
    tg_buf_append_int(out, cache_read);
    put(out, "}}");
}

void tg_xlate_emit_chunk(tg_xlate_stream_t *s, tg_buf_t *out, const char *delta, size_t delta_len, const char *finish)
{
    tg_xlate_emit_chunk_at(s, out, 0, delta, delta_len, finish);
}

void tg_xlate_emit_chunk_at(tg_xlate_stream_t *s, tg_buf_t *out, unsigned index, const char *delta, size_t delta_len,
                            const char *finish)
{
    put(out, "data: {\"id\":\"");
    put(out, s->id);
    put(out, "\",\"object\":\"chat.completion.chunk\",\"created\":");
    tg_buf_append_int(out, s->created);
    put(out, ",\"model\":\"");
    put(out, s->model);
    put(out, "\",\"choices\":[{\"index\":");
    tg_buf_append_int(out, index);
    put(out, ",\"delta\":");
    tg_buf_append(out, delta, delta_len);
    if (finish != NULL) {
        put(out, ",\"logprobs\":null,\"finish_reason\":\"");
        put(out, finish);
        put(out, "\"}]}\n\n");
    } else
        tg_buf_append_str(out, ",\"logprobs\":null,\"finish_reason\":null}]}\n\n");
}

void tg_xlate_emit_stream_error(tg_xlate_stream_t *s, tg_buf_t *out, const char *type, const char *message,
                                size_t len)
{
    if (s->client == TG_DIALECT_ANTHROPIC) {
        tg_buf_append_str(out, "event: error\ndata: {\"type\":\"error\",\"error\":{");
        tg_xlate_put_str(out, false, "type", type, strlen(type));
        tg_xlate_put_str(out, true, "message", message, len);
        tg_buf_append_str(out, "}}\n\n");
    } else {
        tg_buf_append_str(out, "data: {\"error\":{");
        tg_xlate_put_str(out, false, "message", message, len);
        tg_xlate_put_str(out, true, "type", type, strlen(type));
        tg_buf_append_str(out, ",\"param\":null,\"code\":null}}\n\n");
    }
    s->done = true;
}

/* ---- entry points ------------------------------------------------------------------------------------------ */

/* Anthropic client, Google provider: the Messages request as a chat completion (asking for the usage chunk, which
 * the Anthropic answer needs), then that as generateContent. */
static int messages_to_google(const tg_jdoc_t *d, const tg_xlate_opts_t *o, tg_buf_t *out, tg_xlate_req_info_t *info,
                              char *err, size_t errsz)
{
    tg_xlate_opts_t mid_o = {.model = o->model, .ask_usage = true};
    tg_xlate_req_info_t mid_info;
    tg_buf_t mid;
    tg_buf_init(&mid, out->max);
    int r = tg_xlate_messages_request(d, &mid_o, &mid, &mid_info, err, errsz);
    if (r == 0) {
        tg_jdoc_t m;
        r = tg_jdoc_parse(&m, mid.base, mid.len) == 0 ? tg_xlate_google_request(&m, out, info, err, errsz)
                                                       : tg_xlate_fail(err, errsz, "the translated request is too large");
        tg_jdoc_free(&m);
        /* refusals of members the client wrote under Anthropic's names */
        if (r != 0 && strstr(err, "\"user\" cannot be sent") != NULL)
            tg_xlate_fail(err, errsz, "metadata.user_id cannot be sent to google-ai-studio: it has no end-user field "
                                      "(leave it out)");
        else if (r != 0 && strstr(err, "parallel_tool_calls false") != NULL)
            tg_xlate_fail(err, errsz, "tool_choice.disable_parallel_tool_use cannot be sent to google-ai-studio: it "
                                      "has no switch for one call at a time (leave it out)");
    }
    tg_buf_free(&mid);
    return r;
}

int tg_xlate_request(tg_dialect_t client, tg_dialect_t provider, const char *body, size_t len,
                     const tg_xlate_opts_t *o, tg_buf_t *out, tg_xlate_req_info_t *info, char *err, size_t errsz)
{
    memset(info, 0, sizeof(*info));
    tg_jdoc_t d;
    int r;
    if (tg_jdoc_parse(&d, body, len) != 0)
        r = tg_xlate_fail(err, errsz, "The request body is not valid JSON");
    else if (d.nodes[0].type != TG_JSON_OBJECT)
        r = tg_xlate_fail(err, errsz, "The request body must be a JSON object");
    else if (client == TG_DIALECT_OPENAI && provider == TG_DIALECT_ANTHROPIC)
        r = tg_xlate_anthropic_request(&d, o->model, out, info, err, errsz);
    else if (client == TG_DIALECT_OPENAI && provider == TG_DIALECT_GOOGLE)
        r = tg_xlate_google_request(&d, out, info, err, errsz);
    else if (client == TG_DIALECT_ANTHROPIC && provider == TG_DIALECT_OPENAI)
        r = tg_xlate_messages_request(&d, o, out, info, err, errsz);
    else if (client == TG_DIALECT_ANTHROPIC && provider == TG_DIALECT_GOOGLE)
        r = messages_to_google(&d, o, out, info, err, errsz);
    else
        r = tg_xlate_fail(err, errsz, "no translation to this dialect");
    tg_jdoc_free(&d);
    return r;
}

int tg_xlate_embeddings_request(tg_dialect_t provider, const char *body, size_t len, const tg_xlate_opts_t *o,
                                tg_buf_t *out, tg_xlate_req_info_t *info, char *err, size_t errsz)
{
    memset(info, 0, sizeof(*info));
    tg_jdoc_t d;
    int r;
    if (tg_jdoc_parse(&d, body, len) != 0)
        r = tg_xlate_fail(err, errsz, "The request body is not valid JSON");
    else if (d.nodes[0].type != TG_JSON_OBJECT)
        r = tg_xlate_fail(err, errsz, "The request body must be a JSON object");
    else if (provider == TG_DIALECT_GOOGLE)
        r = tg_xlate_google_embeddings(&d, o->model, out, info, err, errsz);
    else
        r = tg_xlate_fail(err, errsz, "no embeddings translation to this dialect");
    tg_jdoc_free(&d);
    return r;
}

int tg_xlate_response_doc(tg_dialect_t client, tg_dialect_t provider, const tg_xlate_req_info_t *info,
                          const tg_jdoc_t *d, int64_t created, tg_buf_t *out)
{
    int r = -1;
    if (d->nodes[0].type != TG_JSON_OBJECT)
        return -1;
    if (client == TG_DIALECT_OPENAI && provider == TG_DIALECT_ANTHROPIC)
        r = tg_xlate_anthropic_response(d, info, created, out);
    else if (client == TG_DIALECT_OPENAI && provider == TG_DIALECT_GOOGLE)
        r = tg_xlate_google_response(d, info, created, out);
    else if (client == TG_DIALECT_ANTHROPIC && provider == TG_DIALECT_OPENAI)
        r = tg_xlate_chat_response(d, out);
    else if (client == TG_DIALECT_ANTHROPIC && provider == TG_DIALECT_GOOGLE) {
        tg_buf_t mid; /* the chat completion in between */
        tg_buf_init(&mid, out->max);
        if (tg_xlate_google_response(d, info, created, &mid) == 0)
            r = tg_xlate_response(TG_DIALECT_ANTHROPIC, TG_DIALECT_OPENAI, info, mid.base, mid.len, created, out);
        tg_buf_free(&mid);
    }
    return r;
}

int tg_xlate_response(tg_dialect_t client, tg_dialect_t provider, const tg_xlate_req_info_t *info, const char *body,
                      size_t len, int64_t created, tg_buf_t *out)
{
    tg_jdoc_t d;
    int r = tg_jdoc_parse(&d, body, len) == 0 ? tg_xlate_response_doc(client, provider, info, &d, created, out) : -1;
    tg_jdoc_free(&d);
    return r;
}

#define MAX_ERROR_TEXT 4096
#define MAX_ERROR_PARSE (64u << 10)

void tg_xlate_error(tg_dialect_t client, tg_dialect_t provider, int status, const char *body, size_t len,
                    tg_buf_t *out)
{
    /* an error body is small; a large one is not parsed (its start becomes the message) */
    json_t *e = len <= MAX_ERROR_PARSE ? json_loadb(body, len, 0, NULL) : NULL;
    const json_t *inner = json_object_get(e, "error");
    const char *type = NULL;
    const json_t *msg = NULL;
    (void)provider; /* Anthropic {"type":"error","error":{type,message}}, Google {"error":{code,message,status}} and
                      OpenAI-shaped bodies all keep their error under "error" */
    if (json_is_object(inner)) {
        msg = json_object_get(inner, "message");
        type = json_string_value(json_object_get(inner, "type"));
        if (type == NULL)
            type = json_string_value(json_object_get(inner, "status"));
    } else if (json_is_string(inner)) {
        msg = inner;
    }
    if (client == TG_DIALECT_ANTHROPIC) /* its SDK picks the error class by status; the type follows it */
        type = tg_xlate_anthropic_error_type(status);
    else if (type == NULL)
        type = status >= 500 ? "api_error" : "invalid_request_error";
    tg_buf_append_str(out, client == TG_DIALECT_ANTHROPIC ? "{\"type\":\"error\",\"error\":{" : "{\"error\":{");
    if (json_is_string(msg)) {
        tg_xlate_put_str(out, false, "message", json_string_value(msg), json_string_length(msg));
    } else {
        /* not an error shape we know: its text, as the message */
        size_t n = TG_MIN(len, MAX_ERROR_TEXT);
        while (n != 0 && (body[n - 1] == '\n' || body[n - 1] == '\r' || body[n - 1] == ' '))
            --n;
        if (n == 0)
            tg_buf_appendf(out, "\"message\":\"the provider answered %d with no message\"", status);
        else
            tg_xlate_put_str(out, false, "message", body, n);
    }
    tg_xlate_put_str(out, true, "type", type, strlen(type));
    tg_buf_append_str(out, client == TG_DIALECT_ANTHROPIC ? "}}" : ",\"param\":null,\"code\":null}}");
    json_decref(e);
}

/* ---- streams ----------------------------------------------------------------------------------------------- */

void tg_xlate_stream_init(tg_xlate_stream_t *s, tg_dialect_t client, tg_dialect_t provider,
                          const tg_xlate_req_info_t *info, int64_t created)
{
    memset(s, 0, sizeof(*s));
    s->client = client;
    s->provider = provider;
    s->open_block = -1;
    for (size_t i = 0; i != TG_ARRAY_SIZE(s->tool_block); ++i)
        s->tool_block[i] = -1;
    s->info = *info;
    s->created = created;
    tg_buf_init(&s->line, TG_XLATE_MAX_EVENT);
    tg_buf_init(&s->data, TG_XLATE_MAX_EVENT);
    s->input = s->output = s->cache_read = s->cache_write = s->reasoning = s->total = -1;
    if (client == TG_DIALECT_ANTHROPIC && provider == TG_DIALECT_GOOGLE) {
        /* Google -> OpenAI in `inner`, then OpenAI -> Anthropic here */
        s->provider = TG_DIALECT_OPENAI;
        s->inner = tg_malloc(sizeof(*s->inner));
        tg_xlate_stream_init(s->inner, TG_DIALECT_OPENAI, TG_DIALECT_GOOGLE, info, created);
        /* what one provider event can turn into (a tool call's arguments escaped once more, a part per chunk),
         * read back here as events of the inner stream's making */
        tg_buf_init(&s->chained, 32 * TG_XLATE_MAX_EVENT);
        tg_buf_init(&s->line, 4 * TG_XLATE_MAX_EVENT);
        tg_buf_init(&s->data, 4 * TG_XLATE_MAX_EVENT);
    }
}

void tg_xlate_stream_dispose(tg_xlate_stream_t *s)
{
    tg_buf_free(&s->line);
    tg_buf_free(&s->data);
    if (s->inner != NULL) {
        tg_xlate_stream_dispose(s->inner);
        free(s->inner);
        s->inner = NULL;
        tg_buf_free(&s->chained);
    }
}

static void dispatch(tg_xlate_stream_t *s, tg_buf_t *out)
{
    if (s->data_seen && !s->done) {
        if (s->provider == TG_DIALECT_ANTHROPIC)
            tg_xlate_anthropic_event(s, s->data.base, s->data.len, out);
        else if (s->provider == TG_DIALECT_GOOGLE)
            tg_xlate_google_event(s, s->data.base, s->data.len, out);
        else
            tg_xlate_openai_event(s, s->data.base, s->data.len, out);
    }
    s->data_seen = false;
    s->data.len = 0;
}

static void too_big(tg_xlate_stream_t *s, tg_buf_t *out)
{
    static const char msg[] = "the provider sent an event larger than the gateway translates (1 MiB)";
    tg_xlate_emit_stream_error(s, out, "api_error", msg, sizeof(msg) - 1);
    tg_buf_free(&s->line);
    tg_buf_free(&s->data);
}

/* One line of the stream, without its end of line. */
static void on_line(tg_xlate_stream_t *s, const char *p, size_t n, tg_buf_t *out)
{
    if (n != 0 && p[n - 1] == '\r')
        --n;
    if (n == 0) {
        dispatch(s, out);
        return;
    }
    if (n < 5 || memcmp(p, "data:", 5) != 0)
        return; /* event:, id:, retry:, comments: the data says it all */
    p += 5, n -= 5;
    if (n != 0 && *p == ' ')
        ++p, --n;
    if ((s->data_seen && tg_buf_append(&s->data, "\n", 1) != 0) || tg_buf_append(&s->data, p, n) != 0) {
        too_big(s, out);
        return;
    }
    s->data_seen = true;
}

static void feed(tg_xlate_stream_t *s, const char *p, size_t n, tg_buf_t *out);

/* Passes what the inner stream made to this one; an inner output that did not fit ends the stream. */
static void feed_chained(tg_xlate_stream_t *s, tg_buf_t *out)
{
    if (s->chained.overflowed) {
        if (!s->done)
            tg_xlate_emit_stream_error(s, out, "api_error",
                                       TG_LIT("the provider sent more at once than the gateway translates (32 MiB)"));
        s->inner->done = true;
        return;
    }
    if (s->chained.len != 0)
        feed(s, s->chained.base, s->chained.len, out);
}

void tg_xlate_stream_feed(tg_xlate_stream_t *s, const char *p, size_t n, tg_buf_t *out)
{
    if (s->inner != NULL) {
        tg_buf_reset(&s->chained);
        tg_xlate_stream_feed(s->inner, p, n, &s->chained);
        feed_chained(s, out);
        return;
    }
    feed(s, p, n, out);
}

static void feed(tg_xlate_stream_t *s, const char *p, size_t n, tg_buf_t *out)
{
    const char *end = p + n;
    while (p < end && !s->done) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL) {
            if (tg_buf_append(&s->line, p, (size_t)(end - p)) != 0)
                too_big(s, out);
            return;
        }
        if (s->line.len != 0) {
            if (tg_buf_append(&s->line, p, (size_t)(nl - p)) != 0) {
                too_big(s, out);
                return;
            }
            on_line(s, s->line.base, s->line.len, out);
            s->line.len = 0;
        } else {
            on_line(s, p, (size_t)(nl - p), out);
        }
        p = nl + 1;
    }
}

void tg_xlate_stream_finish(tg_xlate_stream_t *s, tg_buf_t *out)
{
    if (s->inner != NULL) {
        tg_buf_reset(&s->chained);
        tg_xlate_stream_finish(s->inner, &s->chained);
        feed_chained(s, out);
    }
    if (!s->done && s->line.len != 0) {
        on_line(s, s->line.base, s->line.len, out);
        s->line.len = 0;
    }
    if (!s->done)
        dispatch(s, out); /* an event not followed by a blank line */
    if (!s->done && s->provider == TG_DIALECT_GOOGLE)
        tg_xlate_google_end(s, out); /* its stream has no end event of its own */
    if (!s->done) {
        static const char msg[] = "the provider's stream ended before the answer was complete";
        tg_xlate_emit_stream_error(s, out, "api_error", msg, sizeof(msg) - 1);
    }
}
