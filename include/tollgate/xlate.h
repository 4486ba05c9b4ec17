/*
 * Translation between API dialects, as pure functions: bytes in, bytes out, no event loop, no clock (the caller
 * passes the time), no allocation that outlives a call except inside a stream state it owns.
 *
 * The unified API (compat.h) speaks a client dialect (OpenAI Chat Completions, or Anthropic Messages) to the
 * client. When the provider speaks another one, the request is rewritten into the provider's dialect on the way up
 * and the answer rewritten back on the way down:
 *
 *   request    client body                  -> provider body         tg_xlate_request
 *   answer     provider JSON body           -> client answer          tg_xlate_response
 *   stream     provider event stream        -> client event stream, fed in any pieces (tg_xlate_stream_*)
 *   error      provider error body          -> client error shape     tg_xlate_error
 *
 * The pairs translated: OpenAI client with an Anthropic provider or with Google AI Studio (generateContent, and
 * batchEmbedContents for embeddings), Anthropic client with an OpenAI-shaped provider, and Anthropic client with
 * Google, through the OpenAI dialect (the two translations chained: Anthropic -> OpenAI -> Google on the way up,
 * back the same way down).
 *
 * A request member that the target provider cannot honour is refused (tg_xlate_request returns -1 with a message
 * naming it), never silently dropped; doc/unified-api.md lists what maps to what. Stream translation holds at most
 * one event of the provider's at a time (TG_XLATE_MAX_EVENT; a larger one ends the stream with an error event), so
 * it adds no buffering beyond the event being read.
 */
#ifndef TOLLGATE_XLATE_H
#define TOLLGATE_XLATE_H

#include "tollgate/buf.h"
#include "tollgate/jsondoc.h"

#define TG_XLATE_MAX_EVENT (1u << 20)

typedef enum {
    TG_DIALECT_OPENAI,    /* OpenAI Chat Completions */
    TG_DIALECT_ANTHROPIC, /* Anthropic Messages */
    TG_DIALECT_GOOGLE,    /* Google AI Studio generateContent / streamGenerateContent (alt=sse) */
} tg_dialect_t;

/* How a request is translated. */
typedef struct st_tg_xlate_opts_t {
    const char *model;          /* the provider's model name (the part after "{provider}/") */
    bool max_completion_tokens; /* to OpenAI: the limit as max_completion_tokens (OpenAI's own API) */
    bool ask_usage;             /* to OpenAI, streamed: ask for the usage chunk (stream_options.include_usage) */
} tg_xlate_opts_t;

/* What the translated request asked for, which the answer's translation needs. */
typedef struct st_tg_xlate_req_info_t {
    bool stream;        /* "stream": true */
    bool include_usage; /* stream_options.include_usage: a final chunk with the usage */
    bool json_tool;     /* response_format was sent as a forced tool: its input is the answer's content */
    bool embeddings;    /* an embeddings request (tg_xlate_embeddings_request) */
    bool base64;        /* embeddings: "encoding_format": "base64" (float32 little-endian, base64) */
    const char *model;  /* embeddings: the model to name in the answer (o->model; not copied) */
} tg_xlate_req_info_t;

/*
 * Rewrites a `client` request body for the `provider` dialect, with o->model in place of the client's model.
 * Appends the new body to `out`. Returns 0, or -1 with a message in `err` (NUL-terminated, cut to errsz) that names
 * the member at fault and says what to do.
 */
int tg_xlate_request(tg_dialect_t client, tg_dialect_t provider, const char *body, size_t len,
                     const tg_xlate_opts_t *o, tg_buf_t *out, tg_xlate_req_info_t *info, char *err, size_t errsz);

/*
 * Rewrites an OpenAI embeddings request (input: a string or an array of strings; dimensions; encoding_format) as
 * Google's batchEmbedContents for model o->model. Same contract as tg_xlate_request; `info->embeddings` is set so
 * that tg_xlate_response translates the answer as embeddings.
 */
int tg_xlate_embeddings_request(tg_dialect_t provider, const char *body, size_t len, const tg_xlate_opts_t *o,
                                tg_buf_t *out, tg_xlate_req_info_t *info, char *err, size_t errsz);

/*
 * Rewrites a provider's complete 2xx JSON answer in the client's dialect (a chat.completion with `created`, Unix
 * seconds; or a message), as the request described by `info` (tg_xlate_request's) asked for it. Returns 0, or -1
 * when the body is not the provider's answer shape.
 */
int tg_xlate_response(tg_dialect_t client, tg_dialect_t provider, const tg_xlate_req_info_t *info, const char *body,
                      size_t len, int64_t created, tg_buf_t *out);
/* The same for an answer the caller has parsed already (jsondoc.h). */
int tg_xlate_response_doc(tg_dialect_t client, tg_dialect_t provider, const tg_xlate_req_info_t *info,
                          const tg_jdoc_t *d, int64_t created, tg_buf_t *out);

/*
 * Rewrites a provider's error answer (any status >= 400, any body) in the client's error shape: OpenAI's
 * {"error":{"message","type","param","code"}} or Anthropic's {"type":"error","error":{"type","message"}}. The
 * provider's message is kept (and its error type, or one from the status); a body that is not an error shape
 * becomes the message as text (cut to 4 KiB).
 */
void tg_xlate_error(tg_dialect_t client, tg_dialect_t provider, int status, const char *body, size_t len,
                    tg_buf_t *out);

/* An event stream being translated. */
typedef struct st_tg_xlate_stream_t {
    tg_dialect_t client, provider;
    tg_xlate_req_info_t info;
    int64_t created;
    tg_buf_t line;     /* a line of the provider's stream not complete yet */
    tg_buf_t data;     /* the data lines of the event being read, joined with "\n" */
    bool data_seen;    /* a data line of this event was read */
    bool done;         /* [DONE] sent (or the stream ended in error): the rest is ignored */
    char id[128];      /* of the answer, for every chunk */
    char model[128];
    char finish[24];   /* finish_reason, once known */
    /* tool calls: to OpenAI, the provider's content block index of each call, in order (the OpenAI index is the
     * position); to Anthropic, the content block of OpenAI's call i (-1: not started) */
    int tool_block[64];
    unsigned num_tools;
    /* to Anthropic: message_start sent, blocks started so far, the open one (-1: none) and whether it is text */
    bool started;
    unsigned num_blocks;
    int open_block;
    bool text_open;
    /* usage, as reported so far: -1 until seen */
    int64_t input, output, cache_read, cache_write;
    /* from Google: which candidates (choices) have started and finished (bit i: candidate i), the tool calls of
     * each so far, the reasoning tokens and the total */
    uint8_t cand_started, cand_finished;
    uint8_t cand_tools[8];
    int64_t reasoning, total;
    /* Anthropic client, Google provider: the Google -> OpenAI stream feeding this one (OpenAI -> Anthropic), and
     * what it made from the last piece */
    struct st_tg_xlate_stream_t *inner;
    tg_buf_t chained;
} tg_xlate_stream_t;

void tg_xlate_stream_init(tg_xlate_stream_t *s, tg_dialect_t client, tg_dialect_t provider,
                          const tg_xlate_req_info_t *info, int64_t created);
void tg_xlate_stream_dispose(tg_xlate_stream_t *s);
/* Feeds the provider's bytes; appends the client's SSE bytes to `out` (chat.completion.chunk events ending in
 * [DONE] for an OpenAI client; message_start ... message_stop for an Anthropic one). */
void tg_xlate_stream_feed(tg_xlate_stream_t *s, const char *p, size_t n, tg_buf_t *out);
/* The provider's stream ended: appends what is left to send. A stream that ends before the provider said the answer
 * was over gets an error event instead of [DONE], so the client cannot take a cut answer for a whole one. */
void tg_xlate_stream_finish(tg_xlate_stream_t *s, tg_buf_t *out);

/* The OpenAI finish_reason for an Anthropic stop_reason (NULL in, "stop" out for unknown reasons), and the
 * Anthropic stop_reason for an OpenAI finish_reason ("end_turn" for unknown ones). */
const char *tg_xlate_anthropic_finish(const char *stop_reason);
const char *tg_xlate_openai_stop_reason(const char *finish_reason);

#endif
