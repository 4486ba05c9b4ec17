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

/* Appends a decimal integer / a C string (no printf on the paths every request or chunk takes). */
void tg_xlate_put_int(tg_buf_t *out, int64_t v);
static inline void tg_xlate_put(tg_buf_t *out, const char *s)
{
    tg_buf_append(out, s, strlen(s));
}

/* Appends "key":"escaped value" (with a leading comma when `comma`). */
void tg_xlate_put_str(tg_buf_t *out, bool comma, const char *key, const char *s, size_t n);

/* A chat.completion.chunk event: `data:` line with id, created, model (s->id and s->model are raw contents of JSON
 * string literals, written as they are) and one choice holding `delta_json` (raw JSON object text) and the finish
 * reason (NULL: null). */
void tg_xlate_emit_chunk(tg_xlate_stream_t *s, tg_buf_t *out, const char *delta_json, size_t delta_len,
                         const char *finish);
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
/* Anthropic's error type for an HTTP status. */
const char *tg_xlate_anthropic_error_type(int status);

#endif
