/*
 * OpenAI Chat Completions <-> Anthropic Messages (xlate.h; the mapping is listed in doc/unified-api.md).
 *
 * Both directions read the input as a flat document over its bytes (jsondoc.h) and write the output straight into
 * the buffer, copying values verbatim where the two dialects agree (strings with their escapes, numbers, tool
 * schemas): no tree is built and nothing is re-encoded that does not change.
 */
#include <stdio.h>
#include "internal.h"

#define ANTHROPIC_DEFAULT_MAX_TOKENS 4096

/* ---- request: chat completion -> messages ----------------------------------------------------------------- */

/* Members the translation reads (handled_members, in this order); any other member with a value that is not its
 * default is refused. */
enum {
    M_MODEL, M_MESSAGES, M_MAX_TOKENS, M_MAX_COMPLETION_TOKENS, M_TEMPERATURE, M_TOP_P, M_STOP, M_STREAM,
    M_STREAM_OPTIONS, M_TOOLS, M_TOOL_CHOICE, M_PARALLEL_TOOL_CALLS, M_USER, M_N, M_RESPONSE_FORMAT, M__NUM
};

typedef struct {
    const tg_jdoc_t *d;
    tg_buf_t *out;
    char *err;
    size_t errsz;
    tg_buf_t tmp;         /* an unescaped string being looked at */
    uint32_t top[M__NUM]; /* the request's members (tg_xlate_check_members) */
} req_t;

/* An OpenAI image_url part -> an Anthropic image block. */
static int image_block(req_t *r, uint32_t part, const char *where)
{
    const tg_jdoc_t *d = r->d;
    uint32_t iu = tg_jdoc_get(d, part, "image_url");
    uint32_t urlv = is_type(d, iu, TG_JSON_OBJECT) ? tg_jdoc_get(d, iu, "url") : iu;
    r->tmp.len = 0;
    if (tg_jdoc_str(d, urlv, &r->tmp) != 0)
        return tg_xlate_fail(r->err, r->errsz, "%s.image_url.url must be a string (an https URL or a base64 data URL)",
                             where);
    tg_iovec_t url = tg_iov(r->tmp.base != NULL ? r->tmp.base : "", r->tmp.len);
    if (tg_iov_prefix_ci(url, TG_LIT("data:"))) {
        tg_iovec_t mime, data;
        if (tg_xlate_parse_data_url(url, &mime, &data) != 0)
            return tg_xlate_fail(r->err, r->errsz,
                                 "%s.image_url.url: a data URL must be data:{media type};base64,{data}", where);
        if (!tg_iov_eq(mime, TG_LIT("image/jpeg")) && !tg_iov_eq(mime, TG_LIT("image/png")) &&
            !tg_iov_eq(mime, TG_LIT("image/gif")) && !tg_iov_eq(mime, TG_LIT("image/webp")))
            return tg_xlate_fail(r->err, r->errsz,
                                 "%s.image_url.url: anthropic takes image/jpeg, image/png, image/gif or image/webp, "
                                 "not %.*s",
                                 where, (int)TG_MIN(mime.len, 64), mime.base);
        put(r->out, "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"");
        tg_buf_append_json_escaped(r->out, mime.base, mime.len);
        put(r->out, "\",\"data\":\"");
        tg_buf_append_json_escaped(r->out, data.base, data.len);
        put(r->out, "\"}}");
        return 0;
    }
    if (!tg_iov_prefix_ci(url, TG_LIT("https://")) && !tg_iov_prefix_ci(url, TG_LIT("http://")))
        return tg_xlate_fail(r->err, r->errsz, "%s.image_url.url must be an http(s) URL or a base64 data URL", where);
    put(r->out, "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":");
    put_iov(r->out, tg_jdoc_raw(d, urlv));
    put(r->out, "}}");
    return 0;
}

/* Message content (a string or an array of parts) as Anthropic blocks, each preceded by a comma unless it is the
 * first (*n counts them). Text parts only unless `images`. */
static int content_blocks(req_t *r, uint32_t content, bool images, const char *where, unsigned *n)
{
    const tg_jdoc_t *d = r->d;
    if (tg_jdoc_is_null(d, content))
        return 0;
    if (is_type(d, content, TG_JSON_STRING)) {
        if (d->nodes[content].end - d->nodes[content].start > 2) {
            put(r->out, (*n)++ != 0 ? ",{\"type\":\"text\",\"text\":" : "{\"type\":\"text\",\"text\":");
            put_iov(r->out, tg_jdoc_raw(d, content));
            put(r->out, "}");
        }
        return 0;
    }
    if (!is_type(d, content, TG_JSON_ARRAY))
        return tg_xlate_fail(r->err, r->errsz, "%s.content must be a string or an array of content parts", where);
    size_t i = 0;
    EACH(d, content, part) {
        char pw[96];
        tg_xlate_where(pw, sizeof(pw), where, ".content", i++);
        uint32_t type = tg_jdoc_get(d, part, "type");
        bool text = tg_jdoc_str_eq(d, type, "text"), refusal = !text && tg_jdoc_str_eq(d, type, "refusal");
        if (text || refusal) {
            uint32_t t = tg_jdoc_get(d, part, text ? "text" : "refusal");
            if (!is_type(d, t, TG_JSON_STRING))
                return tg_xlate_fail(r->err, r->errsz, "%s.%s must be a string", pw, text ? "text" : "refusal");
            if (d->nodes[t].end - d->nodes[t].start == 2)
                continue; /* Anthropic refuses empty text blocks; an empty part says nothing */
            put(r->out, (*n)++ != 0 ? ",{\"type\":\"text\",\"text\":" : "{\"type\":\"text\",\"text\":");
            put_iov(r->out, tg_jdoc_raw(d, t));
            put(r->out, "}");
        } else if (images && tg_jdoc_str_eq(d, type, "image_url")) {
            if ((*n)++ != 0)
                put(r->out, ",");
            if (image_block(r, part, pw) != 0)
                return -1;
        } else if (!is_type(d, type, TG_JSON_STRING)) {
            return tg_xlate_fail(r->err, r->errsz, "%s.type must be a string", pw);
        } else {
            tg_iovec_t t = tg_jdoc_str_raw(d, type);
            return tg_xlate_fail(r->err, r->errsz,
                                 "%s: content parts of type \"%.*s\" cannot be sent to anthropic here (text%s are)", pw,
                                 (int)TG_MIN(t.len, 64), t.base, images ? " and image_url" : "");
        }
    }
    return 0;
}

/* An assistant message's tool_calls as tool_use blocks (continuing the block list, *n counts them). */
static int tool_use_blocks(req_t *r, uint32_t calls, const char *where, unsigned *n)
{
    const tg_jdoc_t *d = r->d;
    if (tg_jdoc_is_null(d, calls))
        return 0;
    if (!is_type(d, calls, TG_JSON_ARRAY))
        return tg_xlate_fail(r->err, r->errsz, "%s.tool_calls must be an array", where);
    size_t i = 0;
    EACH(d, calls, tc) {
        uint32_t fn = tg_jdoc_get(d, tc, "function");
        uint32_t id = tg_jdoc_get(d, tc, "id"), name = tg_jdoc_get(d, fn, "name"), args = tg_jdoc_get(d, fn, "arguments");
        if (!is_type(d, id, TG_JSON_STRING) || !is_type(d, name, TG_JSON_STRING))
            return tg_xlate_fail(r->err, r->errsz, "%s.tool_calls[%zu] needs an id and a function.name", where, i);
        put(r->out, (*n)++ != 0 ? ",{\"type\":\"tool_use\",\"id\":" : "{\"type\":\"tool_use\",\"id\":");
        put_iov(r->out, tg_jdoc_raw(d, id));
        put(r->out, ",\"name\":");
        put_iov(r->out, tg_jdoc_raw(d, name));
        put(r->out, ",\"input\":");
        r->tmp.len = 0;
        if (tg_jdoc_is_null(d, args)) {
            put(r->out, "{}");
        } else if (tg_jdoc_str(d, args, &r->tmp) != 0) {
            return tg_xlate_fail(r->err, r->errsz, "%s.tool_calls[%zu].function.arguments must be a string", where,
                                 i);
        } else if (r->tmp.len == 0) {
            put(r->out, "{}");
        } else {
            tg_jdoc_t a; /* the arguments must be one JSON object: it goes in as it is */
            int ok = tg_jdoc_parse(&a, r->tmp.base, r->tmp.len) == 0 && a.nodes[0].type == TG_JSON_OBJECT;
            tg_jdoc_free(&a);
            if (!ok)
                return tg_xlate_fail(r->err, r->errsz,
                                     "%s.tool_calls[%zu].function.arguments must be a JSON object in a string", where,
                                     i);
            tg_buf_append(r->out, r->tmp.base, r->tmp.len);
        }
        put(r->out, "}");
        ++i;
    }
    return 0;
}

static bool is_system_role(const tg_jdoc_t *d, uint32_t role)
{
    return tg_jdoc_str_eq(d, role, "system") || tg_jdoc_str_eq(d, role, "developer");
}

/* "system": the text of every system and developer message, a string when there is one text, else blocks. */
static int system_prompt(req_t *r, uint32_t messages)
{
    const tg_jdoc_t *d = r->d;
    unsigned nsys = 0;
    uint32_t only = NONE;
    EACH(d, messages, m) {
        if (is_system_role(d, tg_jdoc_get(d, m, "role"))) {
            nsys++;
            only = tg_jdoc_get(d, m, "content");
        }
    }
    if (nsys == 0)
        return 0;
    if (nsys == 1 && is_type(d, only, TG_JSON_STRING)) {
        put(r->out, ",\"system\":");
        put_iov(r->out, tg_jdoc_raw(d, only));
        return 0;
    }
    put(r->out, ",\"system\":[");
    unsigned n = 0;
    size_t i = 0;
    EACH(d, messages, m) {
        char where[32];
        tg_xlate_where(where, sizeof(where), "", "messages", i++);
        if (is_system_role(d, tg_jdoc_get(d, m, "role")) &&
            content_blocks(r, tg_jdoc_get(d, m, "content"), false, where, &n) != 0)
            return -1;
    }
    put(r->out, "]");
    return 0;
}

/* An assistant message with no text and no tool call (an empty turn, which Anthropic refuses): left out, which
 * loses nothing. */
static bool empty_assistant(const tg_jdoc_t *d, uint32_t m)
{
    uint32_t content = tg_jdoc_get(d, m, "content"), calls = tg_jdoc_get(d, m, "tool_calls");
    if (is_type(d, calls, TG_JSON_ARRAY) && d->nodes[calls].count != 0)
        return false;
    if (is_type(d, content, TG_JSON_STRING))
        return d->nodes[content].end - d->nodes[content].start == 2;
    if (!is_type(d, content, TG_JSON_ARRAY))
        return tg_jdoc_is_null(d, content);
    EACH(d, content, part) {
        uint32_t t = tg_jdoc_get(d, part, "text");
        if (t == NONE)
            t = tg_jdoc_get(d, part, "refusal");
        if (!is_type(d, t, TG_JSON_STRING) || d->nodes[t].end - d->nodes[t].start != 2)
            return false; /* text, or something the translation will refuse */
    }
    return true;
}

static int translate_messages(req_t *r, uint32_t messages)
{
    const tg_jdoc_t *d = r->d;
    if (!is_type(d, messages, TG_JSON_ARRAY) || d->nodes[messages].count == 0)
        return tg_xlate_fail(r->err, r->errsz, "messages must be a non-empty array");
    put(r->out, ",\"messages\":[");
    unsigned nmsg = 0;
    bool in_results = false; /* a user message of tool results is open */
    size_t i = 0;
    EACH(d, messages, m) {
        char where[32];
        tg_xlate_where(where, sizeof(where), "", "messages", i++);
        uint32_t role = tg_jdoc_get(d, m, "role");
        if (!is_type(d, role, TG_JSON_STRING))
            return tg_xlate_fail(r->err, r->errsz, "%s.role must be a string", where);
        if (is_system_role(d, role))
            continue; /* in "system" */
        uint32_t content = tg_jdoc_get(d, m, "content");
        if (tg_jdoc_str_eq(d, role, "tool")) {
            uint32_t id = tg_jdoc_get(d, m, "tool_call_id");
            if (!is_type(d, id, TG_JSON_STRING))
                return tg_xlate_fail(r->err, r->errsz, "%s.tool_call_id must be a string", where);
            if (!in_results)
                put(r->out, nmsg++ != 0 ? ",{\"role\":\"user\",\"content\":[" : "{\"role\":\"user\",\"content\":[");
            else
                put(r->out, ",");
            in_results = true;
            put(r->out, "{\"type\":\"tool_result\",\"tool_use_id\":");
            put_iov(r->out, tg_jdoc_raw(d, id));
            if (is_type(d, content, TG_JSON_STRING)) {
                put(r->out, ",\"content\":");
                put_iov(r->out, tg_jdoc_raw(d, content));
            } else {
                unsigned n = 0;
                put(r->out, ",\"content\":[");
                if (content_blocks(r, content, false, where, &n) != 0)
                    return -1;
                put(r->out, "]");
            }
            put(r->out, "}");
            continue;
        }
        if (in_results) {
            put(r->out, "]}");
            in_results = false;
        }
        bool user = tg_jdoc_str_eq(d, role, "user");
        if (!user && tg_jdoc_str_eq(d, role, "assistant") && empty_assistant(d, m) &&
            tg_jdoc_is_null(d, tg_jdoc_get(d, m, "function_call")))
            continue;
        if (!user && !tg_jdoc_str_eq(d, role, "assistant")) {
            tg_iovec_t rv = tg_jdoc_str_raw(d, role);
            return tg_xlate_fail(r->err, r->errsz,
                                 "%s.role \"%.*s\" cannot be sent to anthropic (system, developer, user, assistant "
                                 "and tool can)",
                                 where, (int)TG_MIN(rv.len, 64), rv.base);
        }
        put(r->out, nmsg++ != 0 ? ",{\"role\":" : "{\"role\":");
        put(r->out, user ? "\"user\",\"content\":" : "\"assistant\",\"content\":");
        if (user && is_type(d, content, TG_JSON_STRING)) { /* kept a plain string: the common case, and exact */
            put_iov(r->out, tg_jdoc_raw(d, content));
            put(r->out, "}");
            continue;
        }
        unsigned n = 0;
        put(r->out, "[");
        if (content_blocks(r, content, user, where, &n) != 0)
            return -1;
        if (!user) {
            if (tool_use_blocks(r, tg_jdoc_get(d, m, "tool_calls"), where, &n) != 0)
                return -1;
            if (!tg_jdoc_is_null(d, tg_jdoc_get(d, m, "function_call")))
                return tg_xlate_fail(r->err, r->errsz, "%s.function_call is the deprecated form: use tool_calls",
                                     where);
        }
        put(r->out, "]}");
    }
    if (in_results)
        put(r->out, "]}");
    put(r->out, "]");
    if (nmsg == 0)
        return tg_xlate_fail(r->err, r->errsz, "messages holds only system messages; anthropic needs a user message");
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
        uint32_t fn = tg_jdoc_get(d, t, "function");
        uint32_t name = tg_jdoc_get(d, fn, "name");
        if (!tg_jdoc_str_eq(d, tg_jdoc_get(d, t, "type"), "function") || !is_type(d, name, TG_JSON_STRING))
            return tg_xlate_fail(r->err, r->errsz,
                                 "tools[%zu] must be {\"type\":\"function\",\"function\":{\"name\":...}}; other tool "
                                 "types cannot be sent to anthropic",
                                 i);
        put(r->out, i++ != 0 ? ",{\"name\":" : "{\"name\":");
        put_iov(r->out, tg_jdoc_raw(d, name));
        uint32_t desc = tg_jdoc_get(d, fn, "description"), params = tg_jdoc_get(d, fn, "parameters");
        if (is_type(d, desc, TG_JSON_STRING)) {
            put(r->out, ",\"description\":");
            put_iov(r->out, tg_jdoc_raw(d, desc));
        }
        put(r->out, ",\"input_schema\":");
        if (is_type(d, params, TG_JSON_OBJECT))
            put_iov(r->out, tg_jdoc_raw(d, params));
        else
            put(r->out, "{\"type\":\"object\",\"properties\":{}}");
        put(r->out, "}");
    }
    put(r->out, "]");
    return 0;
}

static int translate_tool_choice(req_t *r, uint32_t tc, uint32_t parallel)
{
    const tg_jdoc_t *d = r->d;
    const char *type = NULL;
    uint32_t name = NONE;
    if (tg_jdoc_str_eq(d, tc, "auto"))
        type = "auto";
    else if (tg_jdoc_str_eq(d, tc, "none"))
        type = "none";
    else if (tg_jdoc_str_eq(d, tc, "required"))
        type = "any";
    else if (is_type(d, tc, TG_JSON_OBJECT) &&
             is_type(d, name = tg_jdoc_get(d, tg_jdoc_get(d, tc, "function"), "name"), TG_JSON_STRING))
        type = "tool";
    else if (!tg_jdoc_is_null(d, tc))
        return tg_xlate_fail(r->err, r->errsz,
                             "tool_choice must be \"auto\", \"none\", \"required\" or {\"type\":\"function\","
                             "\"function\":{\"name\":...}}");
    bool serial = is_type(d, parallel, TG_JSON_FALSE);
    if (type == NULL && !serial)
        return 0;
    if (type == NULL)
        type = "auto";
    tg_buf_appendf(r->out, ",\"tool_choice\":{\"type\":\"%s\"", type);
    if (name != NONE) {
        put(r->out, ",\"name\":");
        put_iov(r->out, tg_jdoc_raw(d, name));
    }
    if (serial && strcmp(type, "none") != 0)
        put(r->out, ",\"disable_parallel_tool_use\":true");
    put(r->out, "}");
    return 0;
}

/* A tool name as Anthropic takes it: 1 to 64 of [A-Za-z0-9_-]. */
static bool tool_name_ok(tg_iovec_t n)
{
    if (n.len == 0 || n.len > 64)
        return false;
    for (size_t i = 0; i != n.len; ++i) {
        char c = n.base[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* response_format: Anthropic has no JSON mode, but a tool it is made to call takes input that follows a schema. So
 * json_object and json_schema become one forced tool whose input_schema is the schema, and the answer's call to it
 * becomes the answer's content (info->json_tool). Written before "tools", which it replaces. */
static int response_format(req_t *r, uint32_t rf, tg_xlate_req_info_t *info)
{
    const tg_jdoc_t *d = r->d;
    uint32_t type = tg_jdoc_get(d, rf, "type");
    if (tg_jdoc_str_eq(d, type, "text"))
        return 0;
    tg_iovec_t name = tg_iov(TG_LIT("json_response")), schema = tg_iov(TG_LIT("{\"type\":\"object\"}"));
    if (tg_jdoc_str_eq(d, type, "json_schema")) {
        uint32_t js = tg_jdoc_get(d, rf, "json_schema");
        uint32_t s = tg_jdoc_get(d, js, "schema"), n = tg_jdoc_get(d, js, "name");
        if (!is_type(d, s, TG_JSON_OBJECT) || !tg_jdoc_str_eq(d, tg_jdoc_get(d, s, "type"), "object"))
            return tg_xlate_fail(r->err, r->errsz,
                                 "response_format.json_schema.schema must be an object schema ({\"type\":\"object\", "
                                 "...}) for anthropic: it becomes a tool's input schema");
        schema = tg_jdoc_raw(d, s);
        if (is_type(d, n, TG_JSON_STRING) && tool_name_ok(tg_jdoc_str_raw(d, n)))
            name = tg_jdoc_str_raw(d, n);
    } else if (!tg_jdoc_str_eq(d, type, "json_object")) {
        return tg_xlate_fail(r->err, r->errsz,
                             "response_format.type must be \"text\", \"json_object\" or \"json_schema\"");
    }
    uint32_t tools = r->top[M_TOOLS];
    if ((!tg_jdoc_is_null(d, tools) && !(is_type(d, tools, TG_JSON_ARRAY) && d->nodes[tools].count == 0)) ||
        !tg_jdoc_is_null(d, r->top[M_TOOL_CHOICE]))
        return tg_xlate_fail(r->err, r->errsz,
                             "response_format json_object / json_schema cannot be combined with tools for anthropic: "
                             "its JSON output is itself a forced tool call");
    info->json_tool = true;
    put(r->out, ",\"tools\":[{\"name\":\"");
    put_iov(r->out, name);
    put(r->out, "\",\"description\":\"Respond with JSON that follows this schema.\",\"input_schema\":");
    put_iov(r->out, schema);
    put(r->out, "}],\"tool_choice\":{\"type\":\"tool\",\"name\":\"");
    put_iov(r->out, name);
    put(r->out, "\"}");
    return 0;
}

static const char *const handled_members[M__NUM + 1] = {
    [M_MODEL] = "model",
    [M_MESSAGES] = "messages",
    [M_MAX_TOKENS] = "max_tokens",
    [M_MAX_COMPLETION_TOKENS] = "max_completion_tokens",
    [M_TEMPERATURE] = "temperature",
    [M_TOP_P] = "top_p",
    [M_STOP] = "stop",
    [M_STREAM] = "stream",
    [M_STREAM_OPTIONS] = "stream_options",
    [M_TOOLS] = "tools",
    [M_TOOL_CHOICE] = "tool_choice",
    [M_PARALLEL_TOOL_CALLS] = "parallel_tool_calls",
    [M_USER] = "user",
    [M_N] = "n",
    [M_RESPONSE_FORMAT] = "response_format",
    [M__NUM] = NULL,
};

/* A member whose value does nothing (the OpenAI default) may be present: it is left out without loss. */
static bool default_value(const tg_jdoc_t *d, tg_iovec_t k, uint32_t v)
{
    double x;
    if (tg_jdoc_is_null(d, v))
        return true;
    if (tg_iov_eq(k, TG_LIT("presence_penalty")) || tg_iov_eq(k, TG_LIT("frequency_penalty")))
        return tg_jdoc_number(d, v, &x) == 0 && x == 0;
    if (tg_iov_eq(k, TG_LIT("logprobs")) || tg_iov_eq(k, TG_LIT("store")))
        return is_type(d, v, TG_JSON_FALSE);
    if (tg_iov_eq(k, TG_LIT("logit_bias")) || tg_iov_eq(k, TG_LIT("metadata")))
        return is_type(d, v, TG_JSON_OBJECT) && d->nodes[v].count == 0;
    if (tg_iov_eq(k, TG_LIT("service_tier")))
        return tg_jdoc_str_eq(d, v, "auto") || tg_jdoc_str_eq(d, v, "default");
    return false;
}

static int request_body(req_t *r, const char *model, tg_xlate_req_info_t *info)
{
    const tg_jdoc_t *d = r->d;
    tg_buf_t *o = r->out;
    if (tg_xlate_check_members(d, handled_members, r->top, default_value,
                               "anthropic: it has no equivalent in the Messages API (leave it out, or call "
                               "anthropic's native endpoint)",
                               r->err, r->errsz) != 0)
        return -1;
    uint32_t v;
    put(o, "{\"model\":\"");
    tg_buf_append_json_escaped(o, model, strlen(model));
    put(o, "\",\"max_tokens\":");
    uint32_t mt = r->top[M_MAX_COMPLETION_TOKENS];
    if (tg_jdoc_is_null(d, mt))
        mt = r->top[M_MAX_TOKENS];
    int64_t n;
    if (tg_jdoc_is_null(d, mt))
        tg_buf_appendf(o, "%d", ANTHROPIC_DEFAULT_MAX_TOKENS);
    else if (tg_jdoc_int(d, mt, &n) == 0 && n >= 1)
        put_iov(o, tg_jdoc_raw(d, mt));
    else
        return tg_xlate_fail(r->err, r->errsz, "max_tokens / max_completion_tokens must be a whole number of at least 1");
    uint32_t messages = r->top[M_MESSAGES];
    if (!is_type(d, messages, TG_JSON_ARRAY) || d->nodes[messages].count == 0)
        return tg_xlate_fail(r->err, r->errsz, "messages must be a non-empty array");
    if (system_prompt(r, messages) != 0 || translate_messages(r, messages) != 0)
        return -1;

    if (tg_xlate_put_sampling(d, o,
                              "temperature must be a number from 0 to 1 for anthropic (OpenAI's range goes to 2; "
                              "anthropic's stops at 1)",
                              r->err, r->errsz) != 0)
        return -1;
    if (!tg_jdoc_is_null(d, v = r->top[M_STOP])) {
        if (is_type(d, v, TG_JSON_STRING)) {
            put(o, ",\"stop_sequences\":[");
            put_iov(o, tg_jdoc_raw(d, v));
            put(o, "]");
        } else {
            if (!tg_xlate_all_strings(d, v))
                return tg_xlate_fail(r->err, r->errsz, "stop must be a string or an array of strings");
            put(o, ",\"stop_sequences\":");
            put_iov(o, tg_jdoc_raw(d, v));
        }
    }
    if (!tg_jdoc_is_null(d, v = r->top[M_N]) && !(tg_jdoc_int(d, v, &n) == 0 && n == 1))
        return tg_xlate_fail(r->err, r->errsz, "n must be 1 for anthropic: it returns one choice per request");
    uint32_t rf = r->top[M_RESPONSE_FORMAT];
    if (!tg_jdoc_is_null(d, rf) && response_format(r, rf, info) != 0)
        return -1;
    if (!tg_jdoc_is_null(d, v = r->top[M_USER])) {
        if (!is_type(d, v, TG_JSON_STRING))
            return tg_xlate_fail(r->err, r->errsz, "user must be a string");
        put(o, ",\"metadata\":{\"user_id\":");
        put_iov(o, tg_jdoc_raw(d, v));
        put(o, "}");
    }
    if (!info->json_tool) { /* else the forced tool is the only one */
        if (!tg_jdoc_is_null(d, v = r->top[M_TOOLS]) && translate_tools(r, v) != 0)
            return -1;
        if (translate_tool_choice(r, r->top[M_TOOL_CHOICE], r->top[M_PARALLEL_TOOL_CALLS]) != 0)
            return -1;
    }
    info->stream = is_type(d, r->top[M_STREAM], TG_JSON_TRUE);
    info->include_usage =
        info->stream && is_type(d, tg_jdoc_get(d, r->top[M_STREAM_OPTIONS], "include_usage"), TG_JSON_TRUE);
    if (info->stream)
        put(o, ",\"stream\":true");
    put(o, "}");
    return !o->overflowed ? 0 : tg_xlate_fail(r->err, r->errsz, "the translated request is too large");
}

int tg_xlate_anthropic_request(const tg_jdoc_t *d, const char *model, tg_buf_t *out, tg_xlate_req_info_t *info,
                               char *err, size_t errsz)
{
    req_t r = {.d = d, .out = out, .err = err, .errsz = errsz};
    tg_buf_init(&r.tmp, d->len + 1);
    size_t mark = out->len;
    int rc = request_body(&r, model, info);
    tg_buf_free(&r.tmp);
    if (rc != 0)
        out->len = mark;
    return rc;
}

/* ---- answer: message -> chat.completion ------------------------------------------------------------------- */

const char *tg_xlate_anthropic_finish(const char *r)
{
    if (r == NULL)
        return "stop";
    if (strcmp(r, "max_tokens") == 0 || strcmp(r, "model_context_window_exceeded") == 0)
        return "length";
    if (strcmp(r, "tool_use") == 0)
        return "tool_calls";
    if (strcmp(r, "refusal") == 0)
        return "content_filter";
    return "stop"; /* end_turn, stop_sequence, pause_turn */
}

/* The finish reason for a stop_reason node (which may be absent or null). */
static const char *finish_of(const tg_jdoc_t *d, uint32_t sr)
{
    static const char *const reasons[] = {"max_tokens", "model_context_window_exceeded", "tool_use", "refusal"};
    for (size_t i = 0; i != TG_ARRAY_SIZE(reasons); ++i)
        if (tg_jdoc_str_eq(d, sr, reasons[i]))
            return tg_xlate_anthropic_finish(reasons[i]);
    return "stop";
}

static int64_t usage_field(const tg_jdoc_t *d, uint32_t usage, const char *k)
{
    return tg_jdoc_int_or(d, tg_jdoc_get(d, usage, k), 0);
}

/* The raw string value of a member, or "" (as raw string content). */
static tg_iovec_t str_raw_or_empty(const tg_jdoc_t *d, uint32_t obj, const char *key)
{
    return tg_xlate_str_raw(d, tg_jdoc_get(d, obj, key));
}

int tg_xlate_anthropic_response(const tg_jdoc_t *d, const tg_xlate_req_info_t *info, int64_t created, tg_buf_t *out)
{
    bool json = info != NULL && info->json_tool;
    uint32_t id = tg_jdoc_get(d, 0, "id"), content = tg_jdoc_get(d, 0, "content");
    if (!is_type(d, id, TG_JSON_STRING) || !is_type(d, content, TG_JSON_ARRAY))
        return -1;
    put(out, "{\"id\":");
    put_iov(out, tg_jdoc_raw(d, id));
    put(out, ",\"object\":\"chat.completion\",\"created\":");
    tg_buf_append_int(out, created);
    put(out, ",\"model\":\"");
    put_iov(out, str_raw_or_empty(d, 0, "model"));
    put(out, "\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    unsigned ntext = 0, ntools = 0;
    EACH(d, content, b) { /* the text blocks, joined: raw contents concatenate into one valid literal */
        uint32_t type = tg_jdoc_get(d, b, "type"), t = tg_jdoc_get(d, b, "text");
        if (tg_jdoc_str_eq(d, type, "text") && is_type(d, t, TG_JSON_STRING)) {
            put(out, ntext++ == 0 ? "\"" : "");
            put_iov(out, tg_jdoc_str_raw(d, t));
        } else if (tg_jdoc_str_eq(d, type, "tool_use") && json) { /* the JSON answer, as text */
            uint32_t input = tg_jdoc_get(d, b, "input");
            tg_iovec_t raw = input != NONE ? tg_jdoc_raw(d, input) : tg_iov(TG_LIT("{}"));
            put(out, ntext++ == 0 ? "\"" : "");
            tg_buf_append_json_escaped(out, raw.base, raw.len);
        } else if (tg_jdoc_str_eq(d, type, "tool_use")) {
            ntools++;
        }
    }
    put(out, ntext != 0 ? "\",\"refusal\":null" : "null,\"refusal\":null");
    if (ntools != 0) {
        put(out, ",\"tool_calls\":[");
        unsigned k = 0;
        EACH(d, content, b) {
            if (!tg_jdoc_str_eq(d, tg_jdoc_get(d, b, "type"), "tool_use"))
                continue;
            put(out, k++ != 0 ? ",{\"id\":\"" : "{\"id\":\"");
            put_iov(out, str_raw_or_empty(d, b, "id"));
            put(out, "\",\"type\":\"function\",\"function\":{\"name\":\"");
            put_iov(out, str_raw_or_empty(d, b, "name"));
            put(out, "\",\"arguments\":\"");
            uint32_t input = tg_jdoc_get(d, b, "input");
            if (input != NONE) {
                tg_iovec_t raw = tg_jdoc_raw(d, input);
                tg_buf_append_json_escaped(out, raw.base, raw.len);
            } else {
                put(out, "{}");
            }
            put(out, "\"}}");
        }
        put(out, "]");
    }
    put(out, "},\"logprobs\":null,\"finish_reason\":\"");
    const char *finish = finish_of(d, tg_jdoc_get(d, 0, "stop_reason"));
    put(out, json && strcmp(finish, "tool_calls") == 0 ? "stop" : finish); /* the forced call is the answer */
    put(out, "\"}]");
    uint32_t usage = tg_jdoc_get(d, 0, "usage");
    if (is_type(d, usage, TG_JSON_OBJECT)) {
        put(out, ",\"usage\":");
        tg_xlate_put_usage(out, usage_field(d, usage, "input_tokens"), usage_field(d, usage, "output_tokens"),
                           usage_field(d, usage, "cache_read_input_tokens"),
                           usage_field(d, usage, "cache_creation_input_tokens"));
    }
    put(out, "}");
    return out->overflowed ? -1 : 0; /* something did not fit: not a whole answer */
}

/* ---- stream: one Anthropic event -> chunks ---------------------------------------------------------------- */

static void take_usage(tg_xlate_stream_t *s, const tg_jdoc_t *d, uint32_t usage)
{
    int64_t v;
    if (tg_jdoc_int(d, tg_jdoc_get(d, usage, "input_tokens"), &v) == 0)
        s->input = v;
    if (tg_jdoc_int(d, tg_jdoc_get(d, usage, "output_tokens"), &v) == 0)
        s->output = v;
    if (tg_jdoc_int(d, tg_jdoc_get(d, usage, "cache_read_input_tokens"), &v) == 0)
        s->cache_read = v;
    if (tg_jdoc_int(d, tg_jdoc_get(d, usage, "cache_creation_input_tokens"), &v) == 0)
        s->cache_write = v;
}

/* The OpenAI tool-call index of the content block `index`, or -1. */
static int tool_index(const tg_xlate_stream_t *s, int64_t block)
{
    for (unsigned i = 0; i != s->num_tools; ++i)
        if (s->tool_block[i] == block)
            return (int)i;
    return -1;
}

static void emit_text(tg_xlate_stream_t *s, tg_buf_t *out, tg_buf_t *dl, tg_iovec_t raw_string)
{
    put(dl, "{\"content\":");
    put_iov(dl, raw_string);
    put(dl, "}");
    tg_xlate_emit_chunk(s, out, dl->base, dl->len, NULL);
}

static void event(tg_xlate_stream_t *s, const tg_jdoc_t *d, tg_buf_t *out, tg_buf_t *dl)
{
    uint32_t type = tg_jdoc_get(d, 0, "type");
    int64_t idx;
    if (tg_jdoc_str_eq(d, type, "message_start")) {
        uint32_t msg = tg_jdoc_get(d, 0, "message");
        tg_xlate_keep_raw(s->id, sizeof(s->id), d, tg_jdoc_get(d, msg, "id"));
        tg_xlate_keep_raw(s->model, sizeof(s->model), d, tg_jdoc_get(d, msg, "model"));
        take_usage(s, d, tg_jdoc_get(d, msg, "usage"));
        static const char delta[] = "{\"role\":\"assistant\",\"content\":\"\"}";
        tg_xlate_emit_chunk(s, out, delta, sizeof(delta) - 1, NULL);
    } else if (tg_jdoc_str_eq(d, type, "content_block_start")) {
        uint32_t cb = tg_jdoc_get(d, 0, "content_block");
        uint32_t cbt = tg_jdoc_get(d, cb, "type");
        if (tg_jdoc_str_eq(d, cbt, "tool_use") && s->info.json_tool &&
            tg_jdoc_int(d, tg_jdoc_get(d, 0, "index"), &idx) == 0) {
            if (s->num_tools == 0) /* the forced call: its input streams as content */
                s->tool_block[s->num_tools++] = (int)idx;
        } else if (tg_jdoc_str_eq(d, cbt, "tool_use") && tg_jdoc_int(d, tg_jdoc_get(d, 0, "index"), &idx) == 0) {
            if (s->num_tools == TG_ARRAY_SIZE(s->tool_block)) {
                tg_xlate_emit_stream_error(s, out, "api_error",
                                           TG_LIT("the answer has more tool calls than the gateway translates (64)"));
                return;
            }
            s->tool_block[s->num_tools++] = (int)idx;
            tg_buf_appendf(dl, "{\"tool_calls\":[{\"index\":%u,\"id\":\"", s->num_tools - 1);
            put_iov(dl, str_raw_or_empty(d, cb, "id"));
            put(dl, "\",\"type\":\"function\",\"function\":{\"name\":\"");
            put_iov(dl, str_raw_or_empty(d, cb, "name"));
            put(dl, "\",\"arguments\":\"\"}}]}");
            tg_xlate_emit_chunk(s, out, dl->base, dl->len, NULL);
        } else if (tg_jdoc_str_eq(d, cbt, "text")) {
            uint32_t t = tg_jdoc_get(d, cb, "text");
            if (is_type(d, t, TG_JSON_STRING) && d->nodes[t].end - d->nodes[t].start > 2)
                emit_text(s, out, dl, tg_jdoc_raw(d, t));
        }
    } else if (tg_jdoc_str_eq(d, type, "content_block_delta")) {
        uint32_t delta = tg_jdoc_get(d, 0, "delta");
        uint32_t dt = tg_jdoc_get(d, delta, "type");
        if (tg_jdoc_str_eq(d, dt, "text_delta")) {
            uint32_t t = tg_jdoc_get(d, delta, "text");
            if (is_type(d, t, TG_JSON_STRING))
                emit_text(s, out, dl, tg_jdoc_raw(d, t));
        } else if (tg_jdoc_str_eq(d, dt, "input_json_delta")) {
            uint32_t pj = tg_jdoc_get(d, delta, "partial_json");
            int k = tg_jdoc_int(d, tg_jdoc_get(d, 0, "index"), &idx) == 0 ? tool_index(s, idx) : -1;
            if (!is_type(d, pj, TG_JSON_STRING) || k < 0 || d->nodes[pj].end - d->nodes[pj].start <= 2)
                return;
            if (s->info.json_tool) {
                emit_text(s, out, dl, tg_jdoc_raw(d, pj));
                return;
            }
            put(dl, "{\"tool_calls\":[{\"index\":");
            tg_buf_append_int(dl, k);
            put(dl, ",\"function\":{\"arguments\":");
            put_iov(dl, tg_jdoc_raw(d, pj));
            put(dl, "}}]}");
            tg_xlate_emit_chunk(s, out, dl->base, dl->len, NULL);
        } /* thinking_delta, signature_delta, citations_delta: not part of a chat completion */
    } else if (tg_jdoc_str_eq(d, type, "message_delta")) {
        take_usage(s, d, tg_jdoc_get(d, 0, "usage"));
        uint32_t sr = tg_jdoc_get(d, tg_jdoc_get(d, 0, "delta"), "stop_reason");
        if (is_type(d, sr, TG_JSON_STRING)) {
            const char *f = finish_of(d, sr);
            snprintf(s->finish, sizeof(s->finish), "%s", s->info.json_tool && strcmp(f, "tool_calls") == 0 ? "stop" : f);
            tg_xlate_emit_chunk(s, out, "{}", 2, s->finish);
        }
    } else if (tg_jdoc_str_eq(d, type, "message_stop")) {
        if (s->info.include_usage) {
            tg_buf_appendf(out, "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":\"%s\","
                                "\"choices\":[],\"usage\":",
                           s->id, (long long)s->created, s->model);
            tg_xlate_put_usage(out, s->input < 0 ? 0 : s->input, s->output < 0 ? 0 : s->output,
                               s->cache_read < 0 ? 0 : s->cache_read, s->cache_write < 0 ? 0 : s->cache_write);
            put(out, "}\n\n");
        }
        put(out, "data: [DONE]\n\n");
        s->done = true;
    } else if (tg_jdoc_str_eq(d, type, "error")) {
        uint32_t e = tg_jdoc_get(d, 0, "error");
        uint32_t m = tg_jdoc_get(d, e, "message");
        tg_buf_t et;
        tg_buf_init(&et, 256);
        if (tg_jdoc_str(d, tg_jdoc_get(d, e, "type"), &et) != 0 || et.len == 0)
            tg_buf_append(&et, TG_LIT("api_error"));
        tg_buf_cstr(&et);
        if (is_type(d, m, TG_JSON_STRING)) {
            tg_buf_t mt;
            tg_buf_init(&mt, TG_XLATE_MAX_EVENT);
            tg_jdoc_str(d, m, &mt);
            tg_xlate_emit_stream_error(s, out, et.base, mt.base != NULL ? mt.base : "", mt.len);
            tg_buf_free(&mt);
        } else {
            tg_xlate_emit_stream_error(s, out, et.base, TG_LIT("the provider reported an error"));
        }
        tg_buf_free(&et);
    } /* ping and events we do not know: nothing to send */
}

void tg_xlate_anthropic_event(tg_xlate_stream_t *s, const char *data, size_t len, tg_buf_t *out)
{
    tg_jdoc_t d;
    if (tg_jdoc_parse(&d, data, len) != 0 || d.nodes[0].type != TG_JSON_OBJECT) {
        tg_jdoc_free(&d);
        tg_xlate_emit_stream_error(s, out, "api_error", TG_LIT("the provider sent an event that is not a JSON object"));
        return;
    }
    tg_buf_t dl; /* the delta object of a chunk */
    tg_buf_init(&dl, 2 * TG_XLATE_MAX_EVENT);
    event(s, &d, out, &dl);
    tg_buf_free(&dl);
    tg_jdoc_free(&d);
}
