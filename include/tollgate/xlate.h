/*
 * Translation between API dialects, as pure functions: bytes in, bytes out, no event loop, no clock (the caller
 * passes the time), no allocation that outlives a call except inside a stream state it owns.
 *
 * The unified API (compat.h) speaks OpenAI Chat Completions to the client. For a provider with another dialect the
 * request is rewritten into that dialect on the way up and the answer rewritten back on the way down:
 *
 *   request    OpenAI chat completion body  -> provider body      tg_xlate_request
 *   answer     provider JSON body           -> chat.completion     tg_xlate_response
 *   stream     provider event stream        -> chat.completion.chunk events, fed in any pieces (tg_xlate_stream_*)
 *   error      provider error body          -> OpenAI error shape  tg_xlate_error
 *
 * A request member that the target provider cannot honour is refused (tg_xlate_request returns -1 with a message
 * naming it), never silently dropped; doc/unified-api.md lists what maps to what. Stream translation holds at most
 * one event of the provider's at a time (TG_XLATE_MAX_EVENT; a larger one ends the stream with an error event), so
 * it adds no buffering beyond the event being read.
 */
#ifndef TOLLGATE_XLATE_H
#define TOLLGATE_XLATE_H

#include "tollgate/buf.h"

#define TG_XLATE_MAX_EVENT (1u << 20)

typedef enum {
    TG_DIALECT_OPENAI,    /* OpenAI chat completions (no translation) */
    TG_DIALECT_ANTHROPIC, /* Anthropic Messages */
} tg_dialect_t;

/* What the translated request asked for, which the answer's translation needs. */
typedef struct st_tg_xlate_req_info_t {
    bool stream;        /* "stream": true */
    bool include_usage; /* stream_options.include_usage: a final chunk with the usage */
} tg_xlate_req_info_t;

/*
 * Rewrites an OpenAI chat completion request `body` for `dialect`, with `model` (the provider's model name, the
 * part after "{provider}/") in place of the client's model. Appends the new body to `out`. Returns 0, or -1 with a
 * message in `err` (NUL-terminated, cut to errsz) that names the member at fault and says what to do.
 */
int tg_xlate_request(tg_dialect_t dialect, const char *body, size_t len, const char *model, tg_buf_t *out,
                     tg_xlate_req_info_t *info, char *err, size_t errsz);

/*
 * Rewrites a provider's complete 2xx JSON answer as a chat.completion with `created` (Unix seconds). Returns 0, or
 * -1 when the body is not the provider's answer shape (`out` is then unspecified).
 */
int tg_xlate_response(tg_dialect_t dialect, const char *body, size_t len, int64_t created, tg_buf_t *out);

/*
 * Rewrites a provider's error answer (any status >= 400, any body) as OpenAI's error shape:
 * {"error":{"message","type","param","code"}}. The provider's message and error type are kept; a body that is not
 * the provider's error shape becomes the message as text (cut to 4 KiB).
 */
void tg_xlate_error(tg_dialect_t dialect, int status, const char *body, size_t len, tg_buf_t *out);

/* An event stream being translated. */
typedef struct st_tg_xlate_stream_t {
    tg_dialect_t dialect;
    tg_xlate_req_info_t info;
    int64_t created;
    tg_buf_t line;     /* a line of the provider's stream not complete yet */
    tg_buf_t data;     /* the data lines of the event being read, joined with "\n" */
    bool data_seen;    /* a data line of this event was read */
    bool done;         /* [DONE] sent (or the stream ended in error): the rest is ignored */
    bool role_sent;    /* the first chunk (the role) went out */
    char id[128];      /* of the answer, for every chunk */
    char model[128];
    char finish[24];   /* finish_reason, once known */
    /* tool calls: the provider's content block index of each call, in order (the OpenAI index is the position) */
    int tool_block[64];
    unsigned num_tools;
    /* usage, as reported so far: -1 until seen */
    int64_t input, output, cache_read, cache_write;
} tg_xlate_stream_t;

void tg_xlate_stream_init(tg_xlate_stream_t *s, tg_dialect_t dialect, const tg_xlate_req_info_t *info, int64_t created);
void tg_xlate_stream_dispose(tg_xlate_stream_t *s);
/* Feeds the provider's bytes; appends the client's SSE bytes to `out`. */
void tg_xlate_stream_feed(tg_xlate_stream_t *s, const char *p, size_t n, tg_buf_t *out);
/* The provider's stream ended: appends what is left to send. A stream that ends before the provider said the answer
 * was over gets an error event instead of [DONE], so the client cannot take a cut answer for a whole one. */
void tg_xlate_stream_finish(tg_xlate_stream_t *s, tg_buf_t *out);

/* The OpenAI finish_reason for an Anthropic stop_reason (NULL in, "stop" out for unknown reasons). */
const char *tg_xlate_anthropic_finish(const char *stop_reason);

#endif
