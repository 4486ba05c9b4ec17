/*
 * Anthropic Messages (the client's dialect) <-> OpenAI Chat Completions (the provider's): the unified API's second
 * way in, compat/v1/messages, served by OpenAI-shaped providers (xlate.h; the mapping is in doc/unified-api.md).
 * Written like anthropic.c: the input read as a flat document, the output written directly, values copied verbatim.
 */
#include <stdio.h>
#include "internal.h"

/* ---- request: messages -> chat completion ----------------------------------------------------------------- */

typedef struct {
    const tg_jdoc_t *d;
    tg_buf_t *out;
    char *err;
    size_t errsz;
    unsigned nmsg; /* messages written */
} req_t;

static void begin_message(req_t *r, const char *role)
{
    put(r->out, r->nmsg++ != 0 ? ",{\"role\":\"" : "{\"role\":\"");
    put(r->out, role);
    put(r->out, "\"");
}

/* The text of a string or of text blocks, as the raw content of one JSON string literal (blocks joined with a
 * newline); -1 (with the message) when a block is not text. */
static int joined_text(req_t *r, uint32_t content, const char *where)
{
    const tg_jdoc_t *d = r->d;
    if (is_type(d, content, TG_JSON_STRING)) {
        put_iov(r->out, tg_jdoc_str_raw(d, content));
        return 0;
    }
    if (!is_type(d, content, TG_JSON_ARRAY))
        return tg_xlate_fail(r->err, r->errsz, "%s must be a string or an array of text blocks", where);
    unsigned n = 0;
    size_t i = 0;
    EACH(d, content, b) {
        uint32_t t = tg_jdoc_get(d, b, "text");
        if (!tg_jdoc_str_eq(d, tg_jdoc_get(d, b, "type"), "text") || !is_type(d, t, TG_JSON_STRING))
            return tg_xlate_fail(r->err, r->errsz, "%s[%zu]: only text blocks can be sent here to an OpenAI-shaped "
                                                   "provider",
                                 where, i);
        if (n++ != 0)
            put(r->out, "\\n");
        put_iov(r->out, tg_jdoc_str_raw(d, t));
        ++i;
    }
    return 0;
}

/* An Anthropic image block -> an OpenAI image_url part. */
static int image_part(req_t *r, uint32_t b, const char *where)
{
    const tg_jdoc_t *d = r->d;
    uint32_t src = tg_jdoc_get(d, b, "source");
    uint32_t type = tg_jdoc_get(d, src, "type");
    if (tg_jdoc_str_eq(d, type, "base64")) {
        uint32_t mt = tg_jdoc_get(d, src, "media_type"), data = tg_jdoc_get(d, src, "data");
        if (!is_type(d, mt, TG_JSON_STRING) || !is_type(d, data, TG_JSON_STRING))
            return tg_xlate_fail(r->err, r->errsz, "%s.source needs media_type and data", where);
        put(r->out, "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:");
        put_iov(r->out, tg_jdoc_str_raw(d, mt));
        put(r->out, ";base64,");
        put_iov(r->out, tg_jdoc_str_raw(d, data));
        put(r->out, "\"}}");
        return 0;
    }
    uint32_t url = tg_jdoc_get(d, src, "url");
    if (tg_jdoc_str_eq(d, type, "url") && is_type(d, url, TG_JSON_STRING)) {
        put(r->out, "{\"type\":\"image_url\",\"image_url\":{\"url\":");
        put_iov(r->out, tg_jdoc_raw(d, url));
        put(r->out, "}}");
        return 0;
    }
    return tg_xlate_fail(r->err, r->errsz, "%s.source must be a base64 or url image source", where);
}

/* A user message: its tool_result blocks become tool messages (first, in order), the rest one user message. */
static int user_message(req_t *r, uint32_t content, const char *where)
{
    const tg_jdoc_t *d = r->d;
    if (is_type(d, content, TG_JSON_STRING)) {
        begin_message(r, "user");
        put(r->out, ",\"content\":");
        put_iov(r->out, tg_jdoc_raw(d, content));
        put(r->out, "}");
        return 0;
    }
    if (!is_type(d, content, TG_JSON_ARRAY))
        return tg_xlate_fail(r->err, r->errsz, "%s.content must be a string or an array of content blocks", where);
    unsigned others = 0;
    size_t i = 0;
    EACH(d, content, b) {
        char bw[96];
        tg_xlate_where(bw, sizeof(bw), where, ".content", i++);
        if (!tg_jdoc_str_eq(d, tg_jdoc_get(d, b, "type"), "tool_result")) {
            others++;
            continue;
        }
        uint32_t id = tg_jdoc_get(d, b, "tool_use_id");
        if (!is_type(d, id, TG_JSON_STRING))
            return tg_xlate_fail(r->err, r->errsz, "%s.tool_use_id must be a string", bw);
        begin_message(r, "tool");
        put(r->out, ",\"tool_call_id\":");
        put_iov(r->out, tg_jdoc_raw(d, id));
        put(r->out, ",\"content\":\"");
        uint32_t c = tg_jdoc_get(d, b, "content");
        char cw[112];
        snprintf(cw, sizeof(cw), "%s.content", bw);
        if (!tg_jdoc_is_null(d, c) && joined_text(r, c, cw) != 0)
            return -1;
        put(r->out, "\"}");
    }
    if (others == 0)
        return 0;
    begin_message(r, "user");
    put(r->out, ",\"content\":[");
    unsigned n = 0;
    i = 0;
    EACH(d, content, b) {
        char bw[96];
        tg_xlate_where(bw, sizeof(bw), where, ".content", i++);
        uint32_t type = tg_jdoc_get(d, b, "type");
        if (tg_jdoc_str_eq(d, type, "tool_result"))
            continue;
        if (n++ != 0)
            put(r->out, ",");
        if (tg_jdoc_str_eq(d, type, "text")) {
            uint32_t t = tg_jdoc_get(d, b, "text");
            if (!is_type(d, t, TG_JSON_STRING))
                return tg_xlate_fail(r->err, r->errsz, "%s.text must be a string", bw);
            put(r->out, "{\"type\":\"text\",\"text\":");
            put_iov(r->out, tg_jdoc_raw(d, t));
            put(r->out, "}");
        } else if (tg_jdoc_str_eq(d, type, "image")) {
            if (image_part(r, b, bw) != 0)
                return -1;
        } else {
            tg_iovec_t t = is_type(d, type, TG_JSON_STRING) ? tg_jdoc_str_raw(d, type) : tg_iov(TG_LIT("?"));
            return tg_xlate_fail(r->err, r->errsz,
                                 "%s: blocks of type \"%.*s\" cannot be sent to an OpenAI-shaped provider (text, "
                                 "image and tool_result can)",
                                 bw, (int)TG_MIN(t.len, 64), t.base);
        }
    }
    put(r->out, "]}");
    return 0;
}

/* An assistant message: text blocks joined into content, tool_use blocks as tool_calls. */
static int assistant_message(req_t *r, uint32_t content, const char *where)
{
    const tg_jdoc_t *d = r->d;
    begin_message(r, "assistant");
    if (is_type(d, content, TG_JSON_STRING)) {
        put(r->out, ",\"content\":");
        put_iov(r->out, tg_jdoc_raw(d, content));
        put(r->out, "}");
        return 0;
    }
    if (!is_type(d, content, TG_JSON_ARRAY))
        return tg_xlate_fail(r->err, r->errsz, "%s.content must be a string or an array of content blocks", where);
    unsigned ntext = 0, ntools = 0;
    size_t i = 0;
    EACH(d, content, b) {
        uint32_t type = tg_jdoc_get(d, b, "type");
        if (tg_jdoc_str_eq(d, type, "text")) {
            uint32_t t = tg_jdoc_get(d, b, "text");
            if (!is_type(d, t, TG_JSON_STRING))
                return tg_xlate_fail(r->err, r->errsz, "%s.content[%zu].text must be a string", where, i);
            put(r->out, ntext++ == 0 ? ",\"content\":\"" : "");
            put_iov(r->out, tg_jdoc_str_raw(d, t));
        } else if (tg_jdoc_str_eq(d, type, "tool_use")) {
            ntools++;
        } else if (!tg_jdoc_str_eq(d, type, "thinking") && !tg_jdoc_str_eq(d, type, "redacted_thinking")) {
            tg_iovec_t t = is_type(d, type, TG_JSON_STRING) ? tg_jdoc_str_raw(d, type) : tg_iov(TG_LIT("?"));
            return tg_xlate_fail(r->err, r->errsz,
                                 "%s.content[%zu]: blocks of type \"%.*s\" cannot be sent to an OpenAI-shaped "
                                 "provider",
                                 where, i, (int)TG_MIN(t.len, 64), t.base);
        }
        ++i;
    }
    put(r->out, ntext != 0 ? "\"" : ",\"content\":null");
    if (ntools != 0) {
        put(r->out, ",\"tool_calls\":[");
        unsigned k = 0;
        i = 0;
        EACH(d, content, b) {
            ++i;
            if (!tg_jdoc_str_eq(d, tg_jdoc_get(d, b, "type"), "tool_use"))
                continue;
            uint32_t id = tg_jdoc_get(d, b, "id"), name = tg_jdoc_get(d, b, "name"), input = tg_jdoc_get(d, b, "input");
            if (!is_type(d, id, TG_JSON_STRING) || !is_type(d, name, TG_JSON_STRING))
                return tg_xlate_fail(r->err, r->errsz, "%s.content[%zu] (tool_use) needs an id and a name", where,
                                     i - 1);
            put(r->out, k++ != 0 ? ",{\"id\":" : "{\"id\":");
            put_iov(r->out, tg_jdoc_raw(d, id));
            put(r->out, ",\"type\":\"function\",\"function\":{\"name\":");
            put_iov(r->out, tg_jdoc_raw(d, name));
            put(r->out, ",\"arguments\":\"");
            if (input != NONE) {
                tg_iovec_t raw = tg_jdoc_raw(d, input);
                tg_buf_append_json_escaped(r->out, raw.base, raw.len);
            } else {
                put(r->out, "{}");
            }
            put(r->out, "\"}}");
        }
        put(r->out, "]");
    }
    put(r->out, "}");
    return 0;
}

static int translate_tools(req_t *r, uint32_t tools)
{
    const tg_jdoc_t *d = r->d;
    if (!is_type(d, tools, TG_JSON_ARRAY))
        return tg_xlate_fail(r->err, r->errsz, "tools must be an array");
    put(r->out, ",\"tools\":[");
    size_t i = 0;
    EACH(d, tools, t) {
        uint32_t name = tg_jdoc_get(d, t, "name"), type = tg_jdoc_get(d, t, "type");
        if (!is_type(d, name, TG_JSON_STRING) || (!tg_jdoc_is_null(d, type) && !tg_jdoc_str_eq(d, type, "custom")))
            return tg_xlate_fail(r->err, r->errsz,
                                 "tools[%zu] must be a client tool {name, description, input_schema}; server tools "
                                 "cannot be sent to an OpenAI-shaped provider",
                                 i);
        put(r->out, i++ != 0 ? ",{\"type\":\"function\",\"function\":{\"name\":"
                             : "{\"type\":\"function\",\"function\":{\"name\":");
        put_iov(r->out, tg_jdoc_raw(d, name));
        uint32_t desc = tg_jdoc_get(d, t, "description"), schema = tg_jdoc_get(d, t, "input_schema");
        if (is_type(d, desc, TG_JSON_STRING)) {
            put(r->out, ",\"description\":");
            put_iov(r->out, tg_jdoc_raw(d, desc));
        }
        if (is_type(d, schema, TG_JSON_OBJECT)) {
            put(r->out, ",\"parameters\":");
            put_iov(r->out, tg_jdoc_raw(d, schema));
        }
        put(r->out, "}}");
    }
    put(r->out, "]");
    return 0;
}

static int translate_tool_choice(req_t *r, uint32_t tc)
{
    const tg_jdoc_t *d = r->d;
    if (tg_jdoc_is_null(d, tc))
        return 0;
    uint32_t type = tg_jdoc_get(d, tc, "type"), name = tg_jdoc_get(d, tc, "name");
    if (tg_jdoc_str_eq(d, type, "auto"))
        put(r->out, ",\"tool_choice\":\"auto\"");
    else if (tg_jdoc_str_eq(d, type, "any"))
        put(r->out, ",\"tool_choice\":\"required\"");
    else if (tg_jdoc_str_eq(d, type, "none"))
        put(r->out, ",\"tool_choice\":\"none\"");
    else if (tg_jdoc_str_eq(d, type, "tool") && is_type(d, name, TG_JSON_STRING)) {
        put(r->out, ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":");
        put_iov(r->out, tg_jdoc_raw(d, name));
        put(r->out, "}}");
    } else
        return tg_xlate_fail(r->err, r->errsz,
                             "tool_choice must be {\"type\": \"auto\" | \"any\" | \"none\"} or {\"type\": \"tool\", "
                             "\"name\": ...}");
    if (is_type(d, tg_jdoc_get(d, tc, "disable_parallel_tool_use"), TG_JSON_TRUE))
        put(r->out, ",\"parallel_tool_calls\":false");
    return 0;
}

static const char *const handled_members[] = {"model",       "messages", "system",      "max_tokens",
                                              "temperature", "top_p",    "stop_sequences", "stream",
                                              "tools",       "tool_choice", "metadata",  NULL};

/* Members whose value asks for nothing may be present. */
static bool default_value(const tg_jdoc_t *d, tg_iovec_t k, uint32_t v)
{
    if (tg_jdoc_is_null(d, v))
        return true;
    if (tg_iov_eq(k, TG_LIT("thinking")))
        return tg_jdoc_str_eq(d, tg_jdoc_get(d, v, "type"), "disabled");
    if (tg_iov_eq(k, TG_LIT("service_tier")))
        return tg_jdoc_str_eq(d, v, "auto") || tg_jdoc_str_eq(d, v, "standard_only");
    return false;
}

static int request_body(req_t *r, const tg_xlate_opts_t *o, tg_xlate_req_info_t *info)
{
    const tg_jdoc_t *d = r->d;
    tg_buf_t *out = r->out;
    if (tg_xlate_check_members(d, handled_members, NULL, default_value,
                               "an OpenAI-shaped provider: Chat Completions has no equivalent (leave it out)", r->err,
                               r->errsz) != 0)
        return -1;
    uint32_t v;
    int64_t n;
    put(out, "{\"model\":\"");
    tg_buf_append_json_escaped(out, o->model, strlen(o->model));
    put(out, "\",\"messages\":[");
    uint32_t system = tg_jdoc_get(d, 0, "system");
    if (!tg_jdoc_is_null(d, system)) {
        begin_message(r, "system");
        put(out, ",\"content\":\"");
        if (joined_text(r, system, "system") != 0)
            return -1;
        put(out, "\"}");
    }
    uint32_t messages = tg_jdoc_get(d, 0, "messages");
    if (!is_type(d, messages, TG_JSON_ARRAY) || d->nodes[messages].count == 0)
        return tg_xlate_fail(r->err, r->errsz, "messages must be a non-empty array");
    size_t i = 0;
    EACH(d, messages, m) {
        char where[32];
        tg_xlate_where(where, sizeof(where), "", "messages", i++);
        uint32_t role = tg_jdoc_get(d, m, "role"), content = tg_jdoc_get(d, m, "content");
        if (tg_jdoc_str_eq(d, role, "user")) {
            if (user_message(r, content, where) != 0)
                return -1;
        } else if (tg_jdoc_str_eq(d, role, "assistant")) {
            if (assistant_message(r, content, where) != 0)
                return -1;
        } else {
            return tg_xlate_fail(r->err, r->errsz, "%s.role must be \"user\" or \"assistant\"", where);
        }
    }
    put(out, "]");
    v = tg_jdoc_get(d, 0, "max_tokens");
    if (tg_jdoc_int(d, v, &n) != 0 || n < 1)
        return tg_xlate_fail(r->err, r->errsz, "max_tokens is required: a whole number of at least 1");
    put(out, o->max_completion_tokens ? ",\"max_completion_tokens\":" : ",\"max_tokens\":");
    put_iov(out, tg_jdoc_raw(d, v));
    if (tg_xlate_put_sampling(d, out, "temperature must be a number from 0 to 1", r->err, r->errsz) != 0)
        return -1;
    if (!tg_jdoc_is_null(d, v = tg_jdoc_get(d, 0, "stop_sequences"))) {
        if (!tg_xlate_all_strings(d, v))
            return tg_xlate_fail(r->err, r->errsz, "stop_sequences must be an array of strings");
        put(out, ",\"stop\":");
        put_iov(out, tg_jdoc_raw(d, v));
    }
    if (!tg_jdoc_is_null(d, v = tg_jdoc_get(d, 0, "metadata"))) {
        EACH(d, v, mm) {
            if (!tg_iov_eq(tg_jdoc_key(d, mm), TG_LIT("user_id")))
                return tg_xlate_fail(r->err, r->errsz, "metadata may only hold user_id");
        }
        uint32_t uid = tg_jdoc_get(d, v, "user_id");
        if (is_type(d, uid, TG_JSON_STRING)) {
            put(out, ",\"user\":");
            put_iov(out, tg_jdoc_raw(d, uid));
        }
    }
    if (!tg_jdoc_is_null(d, v = tg_jdoc_get(d, 0, "tools")) && translate_tools(r, v) != 0)
        return -1;
    if (translate_tool_choice(r, tg_jdoc_get(d, 0, "tool_choice")) != 0)
        return -1;
    info->stream = is_type(d, tg_jdoc_get(d, 0, "stream"), TG_JSON_TRUE);
    info->include_usage = info->stream && o->ask_usage;
    if (info->stream)
        put(out, o->ask_usage ? ",\"stream\":true,\"stream_options\":{\"include_usage\":true}" : ",\"stream\":true");
    put(out, "}");
    return !out->overflowed ? 0 : tg_xlate_fail(r->err, r->errsz, "the translated request is too large");
}

int tg_xlate_messages_request(const tg_jdoc_t *d, const tg_xlate_opts_t *o, tg_buf_t *out, tg_xlate_req_info_t *info,
                              char *err, size_t errsz)
{
    req_t r = {.d = d, .out = out, .err = err, .errsz = errsz};
    size_t mark = out->len;
    int rc = request_body(&r, o, info);
    if (rc != 0)
        out->len = mark;
    return rc;
}

/* ---- answer: chat.completion -> message ------------------------------------------------------------------- */

const char *tg_xlate_openai_stop_reason(const char *f)
{
    if (f == NULL)
        return "end_turn";
    if (strcmp(f, "length") == 0)
        return "max_tokens";
    if (strcmp(f, "tool_calls") == 0 || strcmp(f, "function_call") == 0)
        return "tool_use";
    if (strcmp(f, "content_filter") == 0)
        return "refusal";
    return "end_turn";
}

static const char *stop_reason_of(const tg_jdoc_t *d, uint32_t fr)
{
    static const char *const reasons[] = {"length", "tool_calls", "function_call", "content_filter"};
    for (size_t i = 0; i != TG_ARRAY_SIZE(reasons); ++i)
        if (tg_jdoc_str_eq(d, fr, reasons[i]))
            return tg_xlate_openai_stop_reason(reasons[i]);
    return "end_turn";
}

/* Anthropic's usage from OpenAI's (whose prompt count includes the cached tokens; Anthropic's does not). */
static void put_anthropic_usage(tg_buf_t *out, int64_t prompt, int64_t completion, int64_t cached)
{
    put(out, "{\"input_tokens\":");
    tg_buf_append_int(out, prompt - cached);
    put(out, ",\"output_tokens\":");
    tg_buf_append_int(out, completion);
    put(out, ",\"cache_read_input_tokens\":");
    tg_buf_append_int(out, cached);
    put(out, ",\"cache_creation_input_tokens\":0}");
}

/* An OpenAI tool call's arguments (a JSON string holding an object) as a tool_use input object. */
static void put_input(tg_buf_t *out, const tg_jdoc_t *d, uint32_t args)
{
    tg_buf_t tmp;
    tg_buf_init(&tmp, d->len + 1);
    tg_jdoc_t a = {0};
    if (tg_jdoc_str(d, args, &tmp) == 0 && tmp.len != 0 && tg_jdoc_parse(&a, tmp.base, tmp.len) == 0 &&
        a.nodes[0].type == TG_JSON_OBJECT)
        tg_buf_append(out, tmp.base, tmp.len);
    else
        put(out, "{}"); /* empty or not an object: Anthropic's input must be one */
    tg_jdoc_free(&a);
    tg_buf_free(&tmp);
}

int tg_xlate_chat_response(const tg_jdoc_t *d, tg_buf_t *out)
{
    uint32_t id = tg_jdoc_get(d, 0, "id"), choices = tg_jdoc_get(d, 0, "choices");
    uint32_t choice = is_type(d, choices, TG_JSON_ARRAY) ? d->nodes[choices].child : NONE;
    uint32_t msg = tg_jdoc_get(d, choice, "message");
    if (!is_type(d, msg, TG_JSON_OBJECT))
        return -1;
    put(out, "{\"id\":");
    if (is_type(d, id, TG_JSON_STRING))
        put_iov(out, tg_jdoc_raw(d, id));
    else
        put(out, "\"msg_tollgate\"");
    put(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    uint32_t model = tg_jdoc_get(d, 0, "model");
    if (is_type(d, model, TG_JSON_STRING))
        put_iov(out, tg_jdoc_raw(d, model));
    else
        put(out, "\"\"");
    put(out, ",\"content\":[");
    unsigned n = 0;
    uint32_t content = tg_jdoc_get(d, msg, "content"), refusal = tg_jdoc_get(d, msg, "refusal");
    if (is_type(d, content, TG_JSON_STRING) && d->nodes[content].end - d->nodes[content].start > 2) {
        put(out, "{\"type\":\"text\",\"text\":");
        put_iov(out, tg_jdoc_raw(d, content));
        put(out, "}");
        n++;
    }
    bool refused = is_type(d, refusal, TG_JSON_STRING) && d->nodes[refusal].end - d->nodes[refusal].start > 2;
    if (refused) { /* the model's refusal is its answer: a text block, and stop_reason "refusal" */
        put(out, n++ != 0 ? ",{\"type\":\"text\",\"text\":" : "{\"type\":\"text\",\"text\":");
        put_iov(out, tg_jdoc_raw(d, refusal));
        put(out, "}");
    }
    uint32_t calls = tg_jdoc_get(d, msg, "tool_calls");
    if (is_type(d, calls, TG_JSON_ARRAY))
        EACH(d, calls, tc) {
            uint32_t fn = tg_jdoc_get(d, tc, "function");
            uint32_t tid = tg_jdoc_get(d, tc, "id"), name = tg_jdoc_get(d, fn, "name");
            put(out, n++ != 0 ? ",{\"type\":\"tool_use\",\"id\":" : "{\"type\":\"tool_use\",\"id\":");
            if (is_type(d, tid, TG_JSON_STRING))
                put_iov(out, tg_jdoc_raw(d, tid));
            else
                put(out, "\"\"");
            put(out, ",\"name\":");
            if (is_type(d, name, TG_JSON_STRING))
                put_iov(out, tg_jdoc_raw(d, name));
            else
                put(out, "\"\"");
            put(out, ",\"input\":");
            put_input(out, d, tg_jdoc_get(d, fn, "arguments"));
            put(out, "}");
        }
    put(out, "],\"stop_reason\":\"");
    put(out, refused ? "refusal" : stop_reason_of(d, tg_jdoc_get(d, choice, "finish_reason")));
    put(out, "\",\"stop_sequence\":null");
    uint32_t usage = tg_jdoc_get(d, 0, "usage");
    put(out, ",\"usage\":");
    put_anthropic_usage(out, tg_jdoc_int_or(d, tg_jdoc_get(d, usage, "prompt_tokens"), 0),
                        tg_jdoc_int_or(d, tg_jdoc_get(d, usage, "completion_tokens"), 0),
                        tg_jdoc_int_or(d, tg_jdoc_get(d, tg_jdoc_get(d, usage, "prompt_tokens_details"), "cached_tokens"),
                                       0));
    put(out, "}");
    return out->overflowed ? -1 : 0; /* something did not fit: not a whole answer */
}

/* ---- stream: chat.completion.chunk -> Anthropic events ---------------------------------------------------- */

static void ev_begin(tg_buf_t *out, const char *type)
{
    put(out, "event: ");
    put(out, type);
    put(out, "\ndata: {\"type\":\"");
    put(out, type);
    put(out, "\"");
}

static void close_block(tg_xlate_stream_t *s, tg_buf_t *out)
{
    if (s->open_block < 0)
        return;
    ev_begin(out, "content_block_stop");
    put(out, ",\"index\":");
    tg_buf_append_int(out, s->open_block);
    put(out, "}\n\n");
    s->open_block = -1;
    s->text_open = false;
}

static void start(tg_xlate_stream_t *s, tg_buf_t *out)
{
    if (s->started)
        return;
    s->started = true;
    ev_begin(out, "message_start");
    tg_buf_appendf(out,
                   ",\"message\":{\"id\":\"%s\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"%s\","
                   "\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,"
                   "\"output_tokens\":0}}}\n\n",
                   s->id, s->model);
}

static void tool_delta(tg_xlate_stream_t *s, const tg_jdoc_t *d, uint32_t tc, tg_buf_t *out)
{
    int64_t k;
    if (tg_jdoc_int(d, tg_jdoc_get(d, tc, "index"), &k) != 0 || k < 0 || k >= (int64_t)TG_ARRAY_SIZE(s->tool_block)) {
        tg_xlate_emit_stream_error(s, out, "api_error", TG_LIT("a tool call the gateway cannot translate (index)"));
        return;
    }
    uint32_t fn = tg_jdoc_get(d, tc, "function");
    uint32_t id = tg_jdoc_get(d, tc, "id"), name = tg_jdoc_get(d, fn, "name"), args = tg_jdoc_get(d, fn, "arguments");
    if (s->tool_block[k] < 0) { /* a new call: a new tool_use block */
        close_block(s, out);
        s->tool_block[k] = (int)s->num_blocks++;
        s->open_block = s->tool_block[k];
        ev_begin(out, "content_block_start");
        tg_buf_appendf(out, ",\"index\":%d,\"content_block\":{\"type\":\"tool_use\",\"id\":", s->open_block);
        if (is_type(d, id, TG_JSON_STRING))
            put_iov(out, tg_jdoc_raw(d, id));
        else
            tg_buf_appendf(out, "\"toolu_%lld\"", (long long)k);
        put(out, ",\"name\":");
        if (is_type(d, name, TG_JSON_STRING))
            put_iov(out, tg_jdoc_raw(d, name));
        else
            put(out, "\"\"");
        put(out, ",\"input\":{}}}\n\n");
    }
    if (is_type(d, args, TG_JSON_STRING) && d->nodes[args].end - d->nodes[args].start > 2) {
        ev_begin(out, "content_block_delta");
        put(out, ",\"index\":");
        tg_buf_append_int(out, s->tool_block[k]);
        put(out, ",\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":");
        put_iov(out, tg_jdoc_raw(d, args));
        put(out, "}}\n\n");
    }
}

static void finish_message(tg_xlate_stream_t *s, tg_buf_t *out)
{
    start(s, out);
    close_block(s, out);
    ev_begin(out, "message_delta");
    tg_buf_appendf(out, ",\"delta\":{\"stop_reason\":\"%s\",\"stop_sequence\":null},\"usage\":",
                   s->finish[0] != '\0' ? s->finish : "end_turn");
    int64_t prompt = s->input < 0 ? 0 : s->input, cached = s->cache_read < 0 ? 0 : s->cache_read;
    put_anthropic_usage(out, prompt, s->output < 0 ? 0 : s->output, cached);
    put(out, "}\n\n");
    ev_begin(out, "message_stop");
    put(out, "}\n\n");
    s->done = true;
}

void tg_xlate_openai_event(tg_xlate_stream_t *s, const char *data, size_t len, tg_buf_t *out)
{
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        finish_message(s, out);
        return;
    }
    tg_jdoc_t d;
    if (tg_jdoc_parse(&d, data, len) != 0 || d.nodes[0].type != TG_JSON_OBJECT) {
        tg_jdoc_free(&d);
        tg_xlate_emit_stream_error(s, out, "api_error", TG_LIT("the provider sent an event that is not a JSON object"));
        return;
    }
    uint32_t err = tg_jdoc_get(&d, 0, "error");
    if (!tg_jdoc_is_null(&d, err)) {
        tg_buf_t m;
        tg_buf_init(&m, TG_XLATE_MAX_EVENT);
        if (tg_jdoc_str(&d, tg_jdoc_get(&d, err, "message"), &m) != 0 && tg_jdoc_str(&d, err, &m) != 0)
            tg_buf_append(&m, TG_LIT("the provider reported an error"));
        tg_xlate_emit_stream_error(s, out, "api_error", m.base, m.len);
        tg_buf_free(&m);
        tg_jdoc_free(&d);
        return;
    }
    if (!s->started) {
        tg_xlate_keep_raw(s->id, sizeof(s->id), &d, tg_jdoc_get(&d, 0, "id"));
        tg_xlate_keep_raw(s->model, sizeof(s->model), &d, tg_jdoc_get(&d, 0, "model"));
        start(s, out);
    }
    uint32_t usage = tg_jdoc_get(&d, 0, "usage");
    if (is_type(&d, usage, TG_JSON_OBJECT)) {
        s->input = tg_jdoc_int_or(&d, tg_jdoc_get(&d, usage, "prompt_tokens"), 0);
        s->output = tg_jdoc_int_or(&d, tg_jdoc_get(&d, usage, "completion_tokens"), 0);
        s->cache_read =
            tg_jdoc_int_or(&d, tg_jdoc_get(&d, tg_jdoc_get(&d, usage, "prompt_tokens_details"), "cached_tokens"), 0);
    }
    uint32_t choices = tg_jdoc_get(&d, 0, "choices");
    uint32_t choice = is_type(&d, choices, TG_JSON_ARRAY) ? d.nodes[choices].child : NONE;
    uint32_t delta = tg_jdoc_get(&d, choice, "delta");
    uint32_t text = tg_jdoc_get(&d, delta, "content"), refusal = tg_jdoc_get(&d, delta, "refusal");
    bool refused = is_type(&d, refusal, TG_JSON_STRING) && d.nodes[refusal].end - d.nodes[refusal].start > 2;
    if (refused) /* a refusal streams as text; the message stops with "refusal" */
        text = refusal;
    if (is_type(&d, text, TG_JSON_STRING) && d.nodes[text].end - d.nodes[text].start > 2) {
        if (!s->text_open) {
            close_block(s, out);
            s->open_block = (int)s->num_blocks++;
            s->text_open = true;
            ev_begin(out, "content_block_start");
            tg_buf_appendf(out, ",\"index\":%d,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n", s->open_block);
        }
        ev_begin(out, "content_block_delta");
        put(out, ",\"index\":");
        tg_buf_append_int(out, s->open_block);
        put(out, ",\"delta\":{\"type\":\"text_delta\",\"text\":");
        put_iov(out, tg_jdoc_raw(&d, text));
        put(out, "}}\n\n");
    }
    uint32_t calls = tg_jdoc_get(&d, delta, "tool_calls");
    if (is_type(&d, calls, TG_JSON_ARRAY))
        EACH(&d, calls, tc) {
            if (!s->done)
                tool_delta(s, &d, tc, out);
        }
    uint32_t fr = tg_jdoc_get(&d, choice, "finish_reason");
    if (refused)
        snprintf(s->finish, sizeof(s->finish), "refusal");
    else if (is_type(&d, fr, TG_JSON_STRING) && strcmp(s->finish, "refusal") != 0)
        snprintf(s->finish, sizeof(s->finish), "%s", stop_reason_of(&d, fr));
    tg_jdoc_free(&d);
}

/* ---- errors ------------------------------------------------------------------------------------------------ */

const char *tg_xlate_anthropic_error_type(int status)
{
    switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 402: return "billing_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 504: return "timeout_error";
    case 529: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
    }
}
