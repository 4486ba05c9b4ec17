/*
 * Token usage read out of a provider's answer while it is relayed: every provider's usage fields, whole JSON bodies
 * and streams alike, parsed incrementally (jsonscan.h) with nothing of the body kept.
 *
 * What is recognised (a later value of the same field replaces an earlier one, which is what the cumulative
 * counters of a stream need):
 *   OpenAI-shaped   usage.prompt_tokens, usage.completion_tokens, usage.prompt_tokens_details.cached_tokens
 *                   (chat completions, embeddings, Workers AI, Groq, Mistral, DeepSeek, ... and the final usage
 *                   chunk of a stream); DeepSeek's usage.prompt_cache_hit_tokens when there are no details
 *   OpenAI Responses usage.input_tokens, usage.output_tokens, usage.input_tokens_details.cached_tokens
 *                   (response.completed in a stream)
 *   Anthropic       usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens,
 *                   usage.cache_creation_input_tokens (message_start and message_delta in a stream)
 *   Google          usageMetadata.promptTokenCount, candidatesTokenCount, thoughtsTokenCount,
 *                   cachedContentTokenCount (JSON, a streamed JSON array, or SSE)
 *   Cohere          billed_units.input_tokens, billed_units.output_tokens (v1 meta.*, v2 usage.*)
 *   Bedrock         usage.inputTokens, outputTokens, cacheReadInputTokens, cacheWriteInputTokens (Converse,
 *                   and the metadata event of ConverseStream's binary event stream);
 *                   amazon-bedrock-invocationMetrics.* inside the base64 "bytes" of InvokeModelWithResponseStream;
 *                   the x-amzn-bedrock-*-token-count headers of InvokeModel (input, output, cache read and
 *                   write; without the cache headers, the body's Anthropic cache counts)
 *
 * Normalised so that `input` is every prompt token, cached ones included, and `cached` and `cache_write` are the
 * parts of it read from and written to the provider's prompt cache: OpenAI and Google count cached tokens inside
 * their prompt count; Anthropic and Bedrock count them beside it, and are added up.
 */
#ifndef TOLLGATE_USAGE_H
#define TOLLGATE_USAGE_H

#include "tollgate/jsondoc.h"
#include "tollgate/jsonscan.h"

/* Room for the model an answer names, its NUL included; a longer name is kept as none. */
#define TG_USAGE_MODEL_MAX 128

/* Copies `model` (NULL: none) into `dst`, or "" when it does not fit. */
static inline void tg_usage_copy_model(char dst[TG_USAGE_MODEL_MAX], const char *model)
{
    size_t n = model != NULL ? strlen(model) : 0;
    if (n >= TG_USAGE_MODEL_MAX)
        n = 0;
    if (n != 0)
        memcpy(dst, model, n);
    dst[n] = '\0';
}

typedef struct st_tg_usage_t {
    int64_t input;       /* -1 when the answer reported no usage */
    int64_t output;      /* -1 when unknown */
    int64_t cached;      /* part of input read from the prompt cache; 0 when none */
    int64_t cache_write; /* part of input written to the prompt cache; 0 when none */
} tg_usage_t;

typedef enum {
    TG_BODY_JSON,        /* one or more JSON values (application/json, a streamed JSON array, NDJSON) */
    TG_BODY_SSE,         /* text/event-stream: each event's data is JSON */
    TG_BODY_EVENTSTREAM, /* application/vnd.amazon.eventstream: binary frames with JSON payloads */
} tg_body_kind_t;

enum {
    TG_U_PROMPT,
    TG_U_COMPLETION,
    TG_U_DETAILS_CACHED,
    TG_U_INPUT,
    TG_U_OUTPUT,
    TG_U_CACHE_READ,
    TG_U_CACHE_CREATION,
    TG_U_G_PROMPT,
    TG_U_G_CANDIDATES,
    TG_U_G_THOUGHTS,
    TG_U_G_CACHED,
    TG_U_CO_INPUT,
    TG_U_CO_OUTPUT,
    TG_U_BR_INPUT,
    TG_U_BR_OUTPUT,
    TG_U_BR_CACHE_READ,
    TG_U_BR_CACHE_WRITE,
    TG_U_HDR_INPUT,
    TG_U_HDR_OUTPUT,
    TG_U_HDR_CACHE_READ,
    TG_U_HDR_CACHE_WRITE,
    TG_U_DS_CACHE_HIT,
    TG_U_NUM_FIELDS
};

typedef struct st_tg_usage_parser_t {
    tg_body_kind_t kind;
    int64_t fields[TG_U_NUM_FIELDS]; /* -1 = not seen */
    char model[TG_USAGE_MODEL_MAX];  /* the model the answer names ("" when none) */
    bool failed;                     /* the body stopped being what its kind says */
    tg_jsonscan_t scan;
    /* SSE */
    uint8_t sse_state;
    char sse_field[8];
    uint8_t sse_field_len;
    bool sse_prev_cr;
    bool sse_data_seen; /* a data line of this event was scanned (the next one is joined with "\n") */
    /* event stream */
    uint8_t es_prelude[12];
    uint32_t es_have, es_total, es_headers;
    tg_jsonscan_t *inner; /* the JSON inside base64 "bytes" (allocated on first use) */
    uint32_t b64_acc;
    uint8_t b64_bits;
} tg_usage_parser_t;

void tg_usage_parser_init(tg_usage_parser_t *u, tg_body_kind_t kind);
void tg_usage_parser_dispose(tg_usage_parser_t *u);
/* The kind for a response Content-Type value. */
tg_body_kind_t tg_usage_kind_for(tg_iovec_t content_type);
/* Feeds response body bytes, in order, in pieces of any size. */
void tg_usage_parser_feed(tg_usage_parser_t *u, const char *p, size_t n);
/* Reads a whole JSON body that is already parsed (the unified API parses an answer it translates) instead of
 * feeding its bytes: the same fields, the same model, the same result as tg_usage_parser_feed of its text. */
void tg_usage_parser_take_doc(tg_usage_parser_t *u, const tg_jdoc_t *d);
/* A response header (Bedrock reports InvokeModel's usage in headers). */
void tg_usage_parser_header(tg_usage_parser_t *u, tg_iovec_t name, tg_iovec_t value);
/* The usage seen so far, normalised. */
tg_usage_t tg_usage_parser_result(const tg_usage_parser_t *u);

#endif
