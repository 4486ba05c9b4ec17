/*
 * OpenAI Chat Completions <-> Anthropic Messages (xlate.h; the mapping is listed in doc/unified-api.md).
 */
#include <stdio.h>
#include "internal.h"

#define ANTHROPIC_DEFAULT_MAX_TOKENS 4096

/* ---- request: chat completion -> messages ----------------------------------------------------------------- */

typedef struct {
    char *err;
    size_t errsz;
} ctx_t;

static bool is_null(const json_t *v)
{
    return v == NULL || json_is_null(v);
}

/* "data:image/png;base64,AAAA" -> media type and data; 0 or -1 */
static int parse_data_url(const char *url, char *mime, size_t mimesz, const char **data)
{
    const char *semi = strchr(url + 5, ';'), *comma = strchr(url + 5, ',');
    if (semi == NULL || comma == NULL || semi > comma || strncmp(semi, ";base64,", 8) != 0)
        return -1;
    size_t ml = (size_t)(semi - (url + 5));
    if (ml == 0 || ml >= mimesz)
        return -1;
    memcpy(mime, url + 5, ml);
    mime[ml] = '\0';
    *data = comma + 1;
    return 0;
}

/* An OpenAI image_url part -> an Anthropic image block. */
static json_t *image_block(ctx_t *c, const json_t *part, const char *where)
{
    const json_t *iu = json_object_get(part, "image_url");
    const json_t *urlv = json_is_object(iu) ? json_object_get(iu, "url") : iu;
    const char *url = json_string_value(urlv);
    if (url == NULL) {
        tg_xlate_fail(c->err, c->errsz, "%s.image_url.url must be a string (an https URL or a base64 data URL)", where);
        return NULL;
    }
    json_t *src;
    if (strncmp(url, "data:", 5) == 0) {
        char mime[64];
        const char *data;
        if (parse_data_url(url, mime, sizeof(mime), &data) != 0) {
            tg_xlate_fail(c->err, c->errsz, "%s.image_url.url: a data URL must be data:{media type};base64,{data}",
                          where);
            return NULL;
        }
        if (strcmp(mime, "image/jpeg") != 0 && strcmp(mime, "image/png") != 0 && strcmp(mime, "image/gif") != 0 &&
            strcmp(mime, "image/webp") != 0) {
            tg_xlate_fail(c->err, c->errsz,
                          "%s.image_url.url: anthropic takes image/jpeg, image/png, image/gif or image/webp, not %s",
                          where, mime);
            return NULL;
        }
        src = json_pack("{s:s, s:s, s:s}", "type", "base64", "media_type", mime, "data", data);
    } else if (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0) {
        src = json_pack("{s:s, s:s}", "type", "url", "url", url);
    } else {
        tg_xlate_fail(c->err, c->errsz, "%s.image_url.url must be an http(s) URL or a base64 data URL", where);
        return NULL;
    }
    return json_pack("{s:s, s:o}", "type", "image", "source", src);
}

/* Message content (a string or an array of parts) -> an array of Anthropic blocks appended to `blocks`. Only text
 * parts unless `images`. */
static int content_blocks(ctx_t *c, const json_t *content, json_t *blocks, bool images, const char *where)
{
    if (is_null(content))
        return 0;
    if (json_is_string(content)) {
        if (json_string_length(content) != 0)
            json_array_append_new(blocks, json_pack("{s:s, s:O}", "type", "text", "text", content));
        return 0;
    }
    if (!json_is_array(content))
        return tg_xlate_fail(c->err, c->errsz, "%s.content must be a string or an array of content parts", where);
    size_t i;
    const json_t *part;
    json_array_foreach(content, i, part) {
        char pw[96];
        snprintf(pw, sizeof(pw), "%s.content[%zu]", where, i);
        const char *type = json_string_value(json_object_get(part, "type"));
        if (type == NULL)
            return tg_xlate_fail(c->err, c->errsz, "%s.type must be a string", pw);
        if (strcmp(type, "text") == 0 || strcmp(type, "refusal") == 0) {
            const json_t *t = json_object_get(part, type);
            if (!json_is_string(t))
                return tg_xlate_fail(c->err, c->errsz, "%s.%s must be a string", pw, type);
            json_array_append_new(blocks, json_pack("{s:s, s:O}", "type", "text", "text", t));
        } else if (strcmp(type, "image_url") == 0 && images) {
            json_t *b = image_block(c, part, pw);
            if (b == NULL)
                return -1;
            json_array_append_new(blocks, b);
        } else {
            return tg_xlate_fail(c->err, c->errsz,
                                 "%s: content parts of type \"%s\" cannot be sent to anthropic here (text%s are)", pw,
                                 type, images ? " and image_url" : "");
        }
    }
    return 0;
}

/* The text of a system/developer message (a string or text parts). */
static int system_blocks(ctx_t *c, const json_t *m, json_t *system, const char *where)
{
    return content_blocks(c, json_object_get(m, "content"), system, false, where);
}

static int tool_calls_blocks(ctx_t *c, const json_t *calls, json_t *blocks, const char *where)
{
    if (is_null(calls))
        return 0;
    if (!json_is_array(calls))
        return tg_xlate_fail(c->err, c->errsz, "%s.tool_calls must be an array", where);
    size_t i;
    const json_t *tc;
    json_array_foreach(calls, i, tc) {
        const json_t *fn = json_object_get(tc, "function");
        const char *id = json_string_value(json_object_get(tc, "id"));
        const char *name = json_string_value(json_object_get(fn, "name"));
        const json_t *args = json_object_get(fn, "arguments");
        if (id == NULL || name == NULL)
            return tg_xlate_fail(c->err, c->errsz, "%s.tool_calls[%zu] needs an id and a function.name", where, i);
        json_t *input;
        if (is_null(args) || (json_is_string(args) && json_string_length(args) == 0)) {
            input = json_object();
        } else if (json_is_string(args)) {
            input = json_loadb(json_string_value(args), json_string_length(args), JSON_DECODE_ANY, NULL);
            if (!json_is_object(input)) {
                json_decref(input);
                return tg_xlate_fail(c->err, c->errsz,
                                     "%s.tool_calls[%zu].function.arguments must be a JSON object in a string", where,
                                     i);
            }
        } else {
            return tg_xlate_fail(c->err, c->errsz, "%s.tool_calls[%zu].function.arguments must be a string", where,
                                 i);
        }
        json_array_append_new(blocks,
                              json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id", id, "name", name, "input", input));
    }
    return 0;
}

static int translate_messages(ctx_t *c, const json_t *messages, json_t *out_msgs, json_t *system)
{
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return tg_xlate_fail(c->err, c->errsz, "messages must be a non-empty array");
    json_t *tool_results = NULL; /* the user message that collects consecutive tool results */
    size_t i;
    const json_t *m;
    json_array_foreach(messages, i, m) {
        char where[32];
        snprintf(where, sizeof(where), "messages[%zu]", i);
        const char *role = json_string_value(json_object_get(m, "role"));
        if (role == NULL)
            return tg_xlate_fail(c->err, c->errsz, "%s.role must be a string", where);
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            if (system_blocks(c, m, system, where) != 0)
                return -1;
            continue;
        }
        if (strcmp(role, "tool") == 0) {
            const char *id = json_string_value(json_object_get(m, "tool_call_id"));
            if (id == NULL)
                return tg_xlate_fail(c->err, c->errsz, "%s.tool_call_id must be a string", where);
            const json_t *content = json_object_get(m, "content");
            json_t *res = json_pack("{s:s, s:s}", "type", "tool_result", "tool_use_id", id);
            if (json_is_string(content)) {
                json_object_set(res, "content", (json_t *)content);
            } else {
                json_t *blocks = json_array();
                if (content_blocks(c, content, blocks, false, where) != 0) {
                    json_decref(blocks);
                    json_decref(res);
                    return -1;
                }
                json_object_set_new(res, "content", blocks);
            }
            if (tool_results == NULL) {
                tool_results = json_array();
                json_array_append_new(out_msgs, json_pack("{s:s, s:o}", "role", "user", "content", tool_results));
            }
            json_array_append_new(tool_results, res);
            continue;
        }
        tool_results = NULL;
        json_t *blocks = json_array();
        if (strcmp(role, "user") == 0) {
            const json_t *content = json_object_get(m, "content");
            if (json_is_string(content)) { /* kept a plain string: the common case, and exact */
                json_decref(blocks);
                json_array_append_new(out_msgs, json_pack("{s:s, s:O}", "role", "user", "content", content));
                continue;
            }
            if (content_blocks(c, content, blocks, true, where) != 0) {
                json_decref(blocks);
                return -1;
            }
        } else if (strcmp(role, "assistant") == 0) {
            if (content_blocks(c, json_object_get(m, "content"), blocks, false, where) != 0 ||
                tool_calls_blocks(c, json_object_get(m, "tool_calls"), blocks, where) != 0) {
                json_decref(blocks);
                return -1;
            }
            if (!is_null(json_object_get(m, "function_call"))) {
                json_decref(blocks);
                return tg_xlate_fail(c->err, c->errsz, "%s.function_call is the deprecated form: use tool_calls",
                                     where);
            }
        } else {
            json_decref(blocks);
            return tg_xlate_fail(c->err, c->errsz,
                                 "%s.role \"%s\" cannot be sent to anthropic (system, developer, user, assistant and "
                                 "tool can)",
                                 where, role);
        }
        json_array_append_new(out_msgs, json_pack("{s:s, s:o}", "role", role, "content", blocks));
    }
    if (json_array_size(out_msgs) == 0)
        return tg_xlate_fail(c->err, c->errsz, "messages holds only system messages; anthropic needs a user message");
    return 0;
}

static int translate_tools(ctx_t *c, const json_t *tools, json_t *out)
{
    if (!json_is_array(tools))
        return tg_xlate_fail(c->err, c->errsz, "tools must be an array");
    json_t *arr = json_array();
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t) {
        const char *type = json_string_value(json_object_get(t, "type"));
        const json_t *fn = json_object_get(t, "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        if (type == NULL || strcmp(type, "function") != 0 || name == NULL) {
            json_decref(arr);
            return tg_xlate_fail(c->err, c->errsz,
                                 "tools[%zu] must be {\"type\":\"function\",\"function\":{\"name\":...}}; other tool "
                                 "types cannot be sent to anthropic",
                                 i);
        }
        json_t *tool = json_pack("{s:s}", "name", name);
        const json_t *desc = json_object_get(fn, "description");
        if (json_is_string(desc))
            json_object_set(tool, "description", (json_t *)desc);
        const json_t *params = json_object_get(fn, "parameters");
        if (json_is_object(params))
            json_object_set(tool, "input_schema", (json_t *)params);
        else
            json_object_set_new(tool, "input_schema", json_pack("{s:s, s:{}}", "type", "object", "properties"));
        json_array_append_new(arr, tool);
    }
    json_object_set_new(out, "tools", arr);
    return 0;
}

static int translate_tool_choice(ctx_t *c, const json_t *tc, const json_t *parallel, json_t *out)
{
    json_t *choice = NULL;
    if (json_is_string(tc)) {
        const char *s = json_string_value(tc);
        if (strcmp(s, "auto") == 0)
            choice = json_pack("{s:s}", "type", "auto");
        else if (strcmp(s, "none") == 0)
            choice = json_pack("{s:s}", "type", "none");
        else if (strcmp(s, "required") == 0)
            choice = json_pack("{s:s}", "type", "any");
    } else if (json_is_object(tc)) {
        const char *name = json_string_value(json_object_get(json_object_get(tc, "function"), "name"));
        if (name != NULL)
            choice = json_pack("{s:s, s:s}", "type", "tool", "name", name);
    } else if (is_null(tc)) {
        choice = NULL;
    }
    if (choice == NULL && !is_null(tc))
        return tg_xlate_fail(c->err, c->errsz,
                             "tool_choice must be \"auto\", \"none\", \"required\" or {\"type\":\"function\","
                             "\"function\":{\"name\":...}}");
    if (json_is_false(parallel)) {
        if (choice == NULL)
            choice = json_pack("{s:s}", "type", "auto");
        if (strcmp(json_string_value(json_object_get(choice, "type")), "none") != 0)
            json_object_set_new(choice, "disable_parallel_tool_use", json_true());
    }
    if (choice != NULL)
        json_object_set_new(out, "tool_choice", choice);
    return 0;
}

/* Members the translation reads; any other member with a value that is not its default is refused. */
static bool handled_member(const char *k)
{
    static const char *const names[] = {"model",  "messages",       "max_tokens", "max_completion_tokens",
                                        "temperature", "top_p",     "stop",       "stream",
                                        "stream_options", "tools",  "tool_choice", "parallel_tool_calls",
                                        "user",   "n",              "response_format", NULL};
    for (const char *const *n = names; *n != NULL; ++n)
        if (strcmp(*n, k) == 0)
            return true;
    return false;
}

/* A member whose value does nothing (the OpenAI default) may be present: it is left out without loss. */
static bool default_value(const char *k, const json_t *v)
{
    if (is_null(v))
        return true;
    if (strcmp(k, "presence_penalty") == 0 || strcmp(k, "frequency_penalty") == 0)
        return json_is_number(v) && json_number_value(v) == 0;
    if (strcmp(k, "logprobs") == 0 || strcmp(k, "store") == 0)
        return json_is_false(v);
    if (strcmp(k, "logit_bias") == 0 || strcmp(k, "metadata") == 0)
        return json_is_object(v) && json_object_size(v) == 0;
    if (strcmp(k, "service_tier") == 0)
        return json_is_string(v) && (strcmp(json_string_value(v), "auto") == 0 ||
                                     strcmp(json_string_value(v), "default") == 0);
    return false;
}

int tg_xlate_anthropic_request(json_t *req, const char *model, tg_buf_t *out, tg_xlate_req_info_t *info, char *err,
                               size_t errsz)
{
    ctx_t c = {err, errsz};
    const char *k;
    json_t *v;
    json_object_foreach(req, k, v) {
        if (!handled_member(k) && !default_value(k, v))
            return tg_xlate_fail(err, errsz,
                                 "\"%s\" cannot be sent to anthropic: it has no equivalent in the Messages API "
                                 "(leave it out, or call anthropic's native endpoint)",
                                 k);
    }
    json_t *o = json_object(), *system = json_array(), *msgs = json_array();
    int r = -1;
    json_object_set_new(o, "model", json_string(model));

    const json_t *mt = json_object_get(req, "max_completion_tokens");
    if (is_null(mt))
        mt = json_object_get(req, "max_tokens");
    if (is_null(mt)) {
        json_object_set_new(o, "max_tokens", json_integer(ANTHROPIC_DEFAULT_MAX_TOKENS));
    } else if (json_is_integer(mt) && json_integer_value(mt) >= 1) {
        json_object_set(o, "max_tokens", (json_t *)mt);
    } else {
        tg_xlate_fail(err, errsz, "max_tokens / max_completion_tokens must be a whole number of at least 1");
        goto out;
    }
    if (translate_messages(&c, json_object_get(req, "messages"), msgs, system) != 0)
        goto out;
    if (json_array_size(system) == 1)
        json_object_set(o, "system", json_object_get(json_array_get(system, 0), "text"));
    else if (json_array_size(system) > 1)
        json_object_set(o, "system", system);
    json_object_set(o, "messages", msgs);

    if (!is_null(v = json_object_get(req, "temperature"))) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1) {
            tg_xlate_fail(err, errsz, "temperature must be a number from 0 to 1 for anthropic (OpenAI's range goes "
                                      "to 2; anthropic's stops at 1)");
            goto out;
        }
        json_object_set(o, "temperature", v);
    }
    if (!is_null(v = json_object_get(req, "top_p"))) {
        if (!json_is_number(v)) {
            tg_xlate_fail(err, errsz, "top_p must be a number");
            goto out;
        }
        json_object_set(o, "top_p", v);
    }
    if (!is_null(v = json_object_get(req, "stop"))) {
        json_t *seqs = json_array();
        if (json_is_string(v)) {
            json_array_append(seqs, v);
        } else if (json_is_array(v)) {
            size_t i;
            json_t *s;
            json_array_foreach(v, i, s) {
                if (!json_is_string(s)) {
                    json_decref(seqs);
                    tg_xlate_fail(err, errsz, "stop must be a string or an array of strings");
                    goto out;
                }
                json_array_append(seqs, s);
            }
        } else {
            json_decref(seqs);
            tg_xlate_fail(err, errsz, "stop must be a string or an array of strings");
            goto out;
        }
        json_object_set_new(o, "stop_sequences", seqs);
    }
    if (!is_null(v = json_object_get(req, "n")) && !(json_is_integer(v) && json_integer_value(v) == 1)) {
        tg_xlate_fail(err, errsz, "n must be 1 for anthropic: it returns one choice per request");
        goto out;
    }
    if (!is_null(v = json_object_get(req, "response_format"))) {
        const char *type = json_string_value(json_object_get(v, "type"));
        if (type == NULL || strcmp(type, "text") != 0) {
            tg_xlate_fail(err, errsz,
                          "response_format \"%s\" cannot be sent to anthropic: it has no JSON mode; describe the "
                          "format in the prompt or use a tool with an input schema",
                          type != NULL ? type : "?");
            goto out;
        }
    }
    if (!is_null(v = json_object_get(req, "user"))) {
        if (!json_is_string(v)) {
            tg_xlate_fail(err, errsz, "user must be a string");
            goto out;
        }
        json_object_set_new(o, "metadata", json_pack("{s:O}", "user_id", v));
    }
    if (!is_null(v = json_object_get(req, "tools")) && translate_tools(&c, v, o) != 0)
        goto out;
    if (translate_tool_choice(&c, json_object_get(req, "tool_choice"), json_object_get(req, "parallel_tool_calls"), o) !=
        0)
        goto out;
    info->stream = json_is_true(json_object_get(req, "stream"));
    info->include_usage =
        info->stream && json_is_true(json_object_get(json_object_get(req, "stream_options"), "include_usage"));
    if (info->stream)
        json_object_set_new(o, "stream", json_true());
    r = tg_xlate_dump(o, out);
    if (r != 0)
        tg_xlate_fail(err, errsz, "the translated request is too large");
out:
    json_decref(o);
    json_decref(system);
    json_decref(msgs);
    return r;
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

static int64_t usage_field(const json_t *usage, const char *k)
{
    const json_t *v = json_object_get(usage, k);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

int tg_xlate_anthropic_response(json_t *resp, int64_t created, tg_buf_t *out)
{
    const char *id = json_string_value(json_object_get(resp, "id"));
    const char *model = json_string_value(json_object_get(resp, "model"));
    const json_t *content = json_object_get(resp, "content");
    if (id == NULL || !json_is_array(content))
        return -1;
    tg_buf_append_str(out, "{\"id\":\"");
    tg_buf_append_json_escaped(out, id, strlen(id));
    tg_buf_appendf(out, "\",\"object\":\"chat.completion\",\"created\":%lld", (long long)created);
    tg_xlate_put_str(out, true, "model", model != NULL ? model : "", model != NULL ? strlen(model) : 0);
    tg_buf_append_str(out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    /* the text blocks, joined */
    size_t i, ntext = 0, ntools = 0;
    const json_t *b;
    json_array_foreach(content, i, b) {
        const char *type = json_string_value(json_object_get(b, "type"));
        const json_t *t = json_object_get(b, "text");
        if (type != NULL && strcmp(type, "text") == 0 && json_is_string(t)) {
            tg_buf_append_str(out, ntext++ == 0 ? "\"" : "");
            tg_buf_append_json_escaped(out, json_string_value(t), json_string_length(t));
        } else if (type != NULL && strcmp(type, "tool_use") == 0) {
            ntools++;
        }
    }
    tg_buf_append_str(out, ntext != 0 ? "\"" : "null");
    tg_buf_append_str(out, ",\"refusal\":null");
    if (ntools != 0) {
        tg_buf_append_str(out, ",\"tool_calls\":[");
        size_t k = 0;
        json_array_foreach(content, i, b) {
            const char *type = json_string_value(json_object_get(b, "type"));
            if (type == NULL || strcmp(type, "tool_use") != 0)
                continue;
            const char *tid = json_string_value(json_object_get(b, "id"));
            const char *name = json_string_value(json_object_get(b, "name"));
            const json_t *input = json_object_get(b, "input");
            tg_buf_append_str(out, k++ != 0 ? ",{" : "{");
            tg_xlate_put_str(out, false, "id", tid != NULL ? tid : "", tid != NULL ? strlen(tid) : 0);
            tg_buf_append_str(out, ",\"type\":\"function\",\"function\":{");
            tg_xlate_put_str(out, false, "name", name != NULL ? name : "", name != NULL ? strlen(name) : 0);
            char *args = input != NULL ? json_dumps(input, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) : NULL;
            tg_xlate_put_str(out, true, "arguments", args != NULL ? args : "{}", args != NULL ? strlen(args) : 2);
            free(args);
            tg_buf_append_str(out, "}}");
        }
        tg_buf_append_str(out, "]");
    }
    const char *finish = tg_xlate_anthropic_finish(json_string_value(json_object_get(resp, "stop_reason")));
    tg_buf_appendf(out, "},\"logprobs\":null,\"finish_reason\":\"%s\"}]", finish);
    const json_t *usage = json_object_get(resp, "usage");
    if (json_is_object(usage)) {
        tg_buf_append_str(out, ",\"usage\":");
        tg_xlate_put_usage(out, usage_field(usage, "input_tokens"), usage_field(usage, "output_tokens"),
                           usage_field(usage, "cache_read_input_tokens"),
                           usage_field(usage, "cache_creation_input_tokens"));
    }
    return tg_buf_append_str(out, "}") == 0 ? 0 : -1;
}

/* ---- stream: one Anthropic event -> chunks ---------------------------------------------------------------- */

static void take_usage(tg_xlate_stream_t *s, const json_t *usage)
{
    const json_t *v;
    if (!json_is_object(usage))
        return;
    if (json_is_integer(v = json_object_get(usage, "input_tokens")))
        s->input = json_integer_value(v);
    if (json_is_integer(v = json_object_get(usage, "output_tokens")))
        s->output = json_integer_value(v);
    if (json_is_integer(v = json_object_get(usage, "cache_read_input_tokens")))
        s->cache_read = json_integer_value(v);
    if (json_is_integer(v = json_object_get(usage, "cache_creation_input_tokens")))
        s->cache_write = json_integer_value(v);
}

static void copy_str(char *dst, size_t dstsz, const char *src)
{
    if (src == NULL)
        return;
    size_t n = TG_MIN(strlen(src), dstsz - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The OpenAI tool-call index of the content block `index`, or -1. */
static int tool_index(const tg_xlate_stream_t *s, int block)
{
    for (unsigned i = 0; i != s->num_tools; ++i)
        if (s->tool_block[i] == block)
            return (int)i;
    return -1;
}

void tg_xlate_anthropic_event(tg_xlate_stream_t *s, const char *data, size_t len, tg_buf_t *out)
{
    json_t *ev = json_loadb(data, len, 0, NULL);
    const char *type = json_string_value(json_object_get(ev, "type"));
    tg_buf_t d; /* the delta object */
    tg_buf_init(&d, TG_XLATE_MAX_EVENT * 2);
    if (type == NULL) {
        if (ev == NULL) {
            static const char msg[] = "the provider sent an event that is not JSON";
            tg_xlate_emit_stream_error(s, out, "api_error", msg, sizeof(msg) - 1);
        }
        goto out; /* JSON without a type: nothing we know */
    }
    if (strcmp(type, "message_start") == 0) {
        const json_t *msg = json_object_get(ev, "message");
        copy_str(s->id, sizeof(s->id), json_string_value(json_object_get(msg, "id")));
        copy_str(s->model, sizeof(s->model), json_string_value(json_object_get(msg, "model")));
        take_usage(s, json_object_get(msg, "usage"));
        s->role_sent = true;
        static const char delta[] = "{\"role\":\"assistant\",\"content\":\"\"}";
        tg_xlate_emit_chunk(s, out, delta, sizeof(delta) - 1, NULL);
    } else if (strcmp(type, "content_block_start") == 0) {
        const json_t *cb = json_object_get(ev, "content_block");
        const char *cbt = json_string_value(json_object_get(cb, "type"));
        const json_t *idx = json_object_get(ev, "index");
        if (cbt != NULL && strcmp(cbt, "tool_use") == 0 && json_is_integer(idx)) {
            if (s->num_tools == TG_ARRAY_SIZE(s->tool_block)) {
                static const char msg[] = "the answer has more tool calls than the gateway can translate (64)";
                tg_xlate_emit_stream_error(s, out, "api_error", msg, sizeof(msg) - 1);
                goto out;
            }
            s->tool_block[s->num_tools++] = (int)json_integer_value(idx);
            const char *id = json_string_value(json_object_get(cb, "id"));
            const char *name = json_string_value(json_object_get(cb, "name"));
            tg_buf_appendf(&d, "{\"tool_calls\":[{\"index\":%u,", s->num_tools - 1);
            tg_xlate_put_str(&d, false, "id", id != NULL ? id : "", id != NULL ? strlen(id) : 0);
            tg_buf_append_str(&d, ",\"type\":\"function\",\"function\":{");
            tg_xlate_put_str(&d, false, "name", name != NULL ? name : "", name != NULL ? strlen(name) : 0);
            tg_buf_append_str(&d, ",\"arguments\":\"\"}}]}");
            tg_xlate_emit_chunk(s, out, d.base, d.len, NULL);
        } else if (cbt != NULL && strcmp(cbt, "text") == 0) {
            const json_t *t = json_object_get(cb, "text");
            if (json_is_string(t) && json_string_length(t) != 0) {
                tg_buf_append_str(&d, "{");
                tg_xlate_put_str(&d, false, "content", json_string_value(t), json_string_length(t));
                tg_buf_append_str(&d, "}");
                tg_xlate_emit_chunk(s, out, d.base, d.len, NULL);
            }
        }
    } else if (strcmp(type, "content_block_delta") == 0) {
        const json_t *delta = json_object_get(ev, "delta");
        const char *dt = json_string_value(json_object_get(delta, "type"));
        if (dt == NULL)
            goto out;
        if (strcmp(dt, "text_delta") == 0) {
            const json_t *t = json_object_get(delta, "text");
            if (!json_is_string(t))
                goto out;
            tg_buf_append_str(&d, "{");
            tg_xlate_put_str(&d, false, "content", json_string_value(t), json_string_length(t));
            tg_buf_append_str(&d, "}");
            tg_xlate_emit_chunk(s, out, d.base, d.len, NULL);
        } else if (strcmp(dt, "input_json_delta") == 0) {
            const json_t *pj = json_object_get(delta, "partial_json");
            const json_t *idx = json_object_get(ev, "index");
            int k = json_is_integer(idx) ? tool_index(s, (int)json_integer_value(idx)) : -1;
            if (!json_is_string(pj) || k < 0 || json_string_length(pj) == 0)
                goto out;
            tg_buf_appendf(&d, "{\"tool_calls\":[{\"index\":%d,\"function\":{", k);
            tg_xlate_put_str(&d, false, "arguments", json_string_value(pj), json_string_length(pj));
            tg_buf_append_str(&d, "}}]}");
            tg_xlate_emit_chunk(s, out, d.base, d.len, NULL);
        } /* thinking_delta, signature_delta, citations_delta: not part of a chat completion */
    } else if (strcmp(type, "message_delta") == 0) {
        const json_t *delta = json_object_get(ev, "delta");
        take_usage(s, json_object_get(ev, "usage"));
        const json_t *sr = json_object_get(delta, "stop_reason");
        if (json_is_string(sr)) {
            copy_str(s->finish, sizeof(s->finish), tg_xlate_anthropic_finish(json_string_value(sr)));
            tg_xlate_emit_chunk(s, out, "{}", 2, s->finish);
        }
    } else if (strcmp(type, "message_stop") == 0) {
        if (s->info.include_usage) {
            tg_buf_append_str(out, "data: {");
            tg_xlate_put_str(out, false, "id", s->id, strlen(s->id));
            tg_buf_appendf(out, ",\"object\":\"chat.completion.chunk\",\"created\":%lld", (long long)s->created);
            tg_xlate_put_str(out, true, "model", s->model, strlen(s->model));
            tg_buf_append_str(out, ",\"choices\":[],\"usage\":");
            tg_xlate_put_usage(out, s->input < 0 ? 0 : s->input, s->output < 0 ? 0 : s->output,
                               s->cache_read < 0 ? 0 : s->cache_read, s->cache_write < 0 ? 0 : s->cache_write);
            tg_buf_append_str(out, "}\n\n");
        }
        tg_buf_append_str(out, "data: [DONE]\n\n");
        s->done = true;
    } else if (strcmp(type, "error") == 0) {
        const json_t *e = json_object_get(ev, "error");
        const char *et = json_string_value(json_object_get(e, "type"));
        const json_t *m = json_object_get(e, "message");
        if (json_is_string(m))
            tg_xlate_emit_stream_error(s, out, et != NULL ? et : "api_error", json_string_value(m),
                                       json_string_length(m));
        else
            tg_xlate_emit_stream_error(s, out, et != NULL ? et : "api_error", TG_LIT("the provider reported an error"));
    } /* ping and events we do not know: nothing to send */
out:
    tg_buf_free(&d);
    json_decref(ev);
}
