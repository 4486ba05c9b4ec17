/*
 * Shared by the translators of src/compat (not a public contract: see xlate.h).
 */
#ifndef TOLLGATE_COMPAT_INTERNAL_H
#define TOLLGATE_COMPAT_INTERNAL_H

#include "tollgate/jsondoc.h"
#include "tollgate/xlate.h"

/* printf into err (cut to errsz); returns -1 so a refusal is one statement. */
int tg_xlate_fail(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* "{base}{field}[{i}]" into out (cut to outsz, NUL-terminated): where a member sits, for refusals. Made for every
 * message and part of a request, so it is a few stores rather than an snprintf. */
void tg_xlate_where(char *out, size_t outsz, const char *base, const char *field, size_t i);

/* Short names for the translators, which read documents and write JSON all the time. */
#define NONE TG_JDOC_NONE
#define EACH(d, parent, c) TG_JDOC_EACH(d, parent, c)
#define is_type tg_jdoc_is

/* Appends a C string / raw bytes / a decimal integer (no printf on the paths every request or chunk takes). A
 * failed append is not reported here: the buffer's `overflowed` flag is checked once at the end. */
static inline void put(tg_buf_t *out, const char *s)
{
    tg_buf_append(out, s, strlen(s));
}
static inline void put_iov(tg_buf_t *out, tg_iovec_t v)
{
    tg_buf_append(out, v.base, v.len);
}

/* The raw content of string v (or "" when v is not a string), as the content of a JSON literal. */
static inline tg_iovec_t tg_xlate_str_raw(const tg_jdoc_t *d, uint32_t v)
{
    return tg_jdoc_is(d, v, TG_JSON_STRING) ? tg_jdoc_str_raw(d, v) : tg_iov("", 0);
}
/* Keeps that raw content in dst (NUL-terminated), or "" when it does not fit whole (a cut escape would break the
 * literal it is written back into). */
void tg_xlate_keep_raw(char *dst, size_t dstsz, const tg_jdoc_t *d, uint32_t v);

/* Every top-level member of request `d` is one the translation reads (`handled`, NULL-terminated) or has a value
 * that asks for nothing (`is_default`); else -1 with "\"member\" cannot be sent to {to_whom}". "model" given twice is
 * refused too. With `found` (as many slots as `handled` names), found[i] is the first member named handled[i], or
 * NONE: what tg_jdoc_get(d, 0, handled[i]) would return, from the one pass. */
int tg_xlate_check_members(const tg_jdoc_t *d, const char *const *handled, uint32_t *found,
                           bool (*is_default)(const tg_jdoc_t *d, tg_iovec_t key, uint32_t v), const char *to_whom,
                           char *err, size_t errsz);
/* Copies "temperature" (0 to 1; `temperature_rule` is the refusal otherwise) and "top_p" (a number) of request `d`
 * when present. 0, or -1 with the refusal. */
int tg_xlate_put_sampling(const tg_jdoc_t *d, tg_buf_t *out, const char *temperature_rule, char *err, size_t errsz);
/* Is v an array of strings only? */
bool tg_xlate_all_strings(const tg_jdoc_t *d, uint32_t v);

/* Appends "key":"escaped value" (with a leading comma when `comma`). */
void tg_xlate_put_str(tg_buf_t *out, bool comma, const char *key, const char *s, size_t n);

/* "data:image/png;base64,AAAA" -> its media type and data; 0, or -1 when it is not a base64 data URL. */
int tg_xlate_parse_data_url(tg_iovec_t url, tg_iovec_t *mime, tg_iovec_t *data);

/* A chat.completion.chunk event: `data:` line with id, created, model (s->id and s->model are raw contents of JSON
 * string literals, written as they are) and one choice holding `delta_json` (raw JSON object text) and the finish
 * reason (NULL: null). */
void tg_xlate_emit_chunk(tg_xlate_stream_t *s, tg_buf_t *out, const char *delta_json, size_t delta_len,
                         const char *finish);
/* The same for choice `index`. */
void tg_xlate_emit_chunk_at(tg_xlate_stream_t *s, tg_buf_t *out, unsigned index, const char *delta_json,
                            size_t delta_len, const char *finish);
/* The usage object of a chat completion from the counts (input counts only uncached, uncreated prompt tokens:
 * Anthropic's way; the prompt total is their sum). */
void tg_xlate_put_usage(tg_buf_t *out, int64_t input, int64_t output, int64_t cache_read, int64_t cache_write);
/* An error in the stream, in the client's dialect: `data: {"error":{...}}` (the OpenAI SDK raises it as an API error)
 * or Anthropic's `event: error`; the stream is over (s->done). */
void tg_xlate_emit_stream_error(tg_xlate_stream_t *s, tg_buf_t *out, const char *type, const char *message,
                                size_t len);

/* OpenAI client, Anthropic provider (anthropic.c) */
int tg_xlate_anthropic_request(const tg_jdoc_t *req, const char *model, tg_buf_t *out, tg_xlate_req_info_t *info,
                               char *err, size_t errsz);
int tg_xlate_anthropic_response(const tg_jdoc_t *resp, const tg_xlate_req_info_t *info, int64_t created,
                                tg_buf_t *out);
void tg_xlate_anthropic_event(tg_xlate_stream_t *s, const char *data, size_t len, tg_buf_t *out);

/* Anthropic client, OpenAI-shaped provider (openai.c) */
int tg_xlate_messages_request(const tg_jdoc_t *req, const tg_xlate_opts_t *o, tg_buf_t *out, tg_xlate_req_info_t *info,
                              char *err, size_t errsz);
int tg_xlate_chat_response(const tg_jdoc_t *resp, tg_buf_t *out);
void tg_xlate_openai_event(tg_xlate_stream_t *s, const char *data, size_t len, tg_buf_t *out);
/* OpenAI client, Google AI Studio provider (google.c); the embeddings answer is translated by
 * tg_xlate_google_response when info->embeddings. tg_xlate_google_end: the provider's stream ended; [DONE] when
 * every candidate finished (else nothing: the caller reports the cut). */
int tg_xlate_google_request(const tg_jdoc_t *req, tg_buf_t *out, tg_xlate_req_info_t *info, char *err, size_t errsz);
int tg_xlate_google_embeddings(const tg_jdoc_t *req, const char *model, tg_buf_t *out, tg_xlate_req_info_t *info,
                               char *err, size_t errsz);
int tg_xlate_google_response(const tg_jdoc_t *resp, const tg_xlate_req_info_t *info, int64_t created, tg_buf_t *out);
void tg_xlate_google_event(tg_xlate_stream_t *s, const char *data, size_t len, tg_buf_t *out);
void tg_xlate_google_end(tg_xlate_stream_t *s, tg_buf_t *out);

/* Anthropic's error type for an HTTP status. */
const char *tg_xlate_anthropic_error_type(int status);

#endif
