/*
 * OpenAI Chat Completions and embeddings (the client's dialect) <-> Google AI Studio generateContent,
 * streamGenerateContent (alt=sse) and batchEmbedContents (xlate.h; the mapping is listed in doc/unified-api.md).
 * Written like anthropic.c: the input read as a flat document, the output written directly, values copied verbatim
 * where the dialects agree (strings with their escapes, numbers, tool and response schemas, function arguments).
 *
 * Tool call ids: Google's function calls carry no id the client must echo, but a thinking model's call may carry a
 * thoughtSignature that must come back with the call in the history. The signature rides in the id the client
 * sees ("call_{k}__ts_{signature as base64url}"), so a conversation keeps it without the client knowing; a tool
 * result names its function through the id of the call it answers.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include "internal.h"

#define TO_GOOGLE "google-ai-studio"
#define SIG_MARK "__ts_"
#define MAX_CANDIDATES 8
#define GOOGLE_MAX_BATCH 100 /* requests in one batchEmbedContents call */

/* ---- request: chat completion -> generateContent ------------------------------------------------------------ */

typedef struct {
    const tg_jdoc_t *d;
    tg_buf_t *out;
    char *err;
    size_t errsz;
    tg_buf_t tmp; /* an unescaped string being looked at */
    /* the tool calls of the assistant messages read so far, by id (open addressing over SipHash with a key drawn
     * for the request, so that no set of ids chosen in advance can pile up in one run; a later call of the same id
     * replaces an earlier one, so a result answers the latest call of its id) */
    struct call_slot {
        tg_iovec_t id;  /* raw content */
        uint64_t hash;
        uint32_t name;  /* node */
        uint32_t order; /* of the call in its assistant message */
    } *calls;
    size_t calls_cap;
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
} req_t;

static struct call_slot *call_slot(req_t *r, tg_iovec_t id)
{
    unsigned char h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const unsigned char *)id.base, id.len, r->hash_key);
    uint64_t hash;
    memcpy(&hash, h, sizeof(hash));
    size_t i = (size_t)hash & (r->calls_cap - 1);
    while (r->calls[i].id.base != NULL &&
           !(r->calls[i].hash == hash && tg_iov_eq(r->calls[i].id, id.base, id.len)))
        i = (i + 1) & (r->calls_cap - 1);
    r->calls[i].hash = hash;
    return &r->calls[i];
}

/* Makes room for every tool call of the request (counted once, on the first assistant message with calls). */
static void calls_init(req_t *r, uint32_t messages)
{
    if (r->calls != NULL)
        return;
    size_t n = 0;
    EACH(r->d, messages, m) {
        uint32_t tc = tg_jdoc_get(r->d, m, "tool_calls");
        if (is_type(r->d, tc, TG_JSON_ARRAY))
            n += r->d->nodes[tc].count;
    }
    r->calls_cap = 16;
    while (r->calls_cap < 2 * n)
        r->calls_cap *= 2;
    r->calls = tg_calloc(r->calls_cap, sizeof(*r->calls));
    if (sodium_init() < 0)
        tg_fatal(__FILE__, __LINE__, "sodium_init failed");
    randombytes_buf(r->hash_key, sizeof(r->hash_key));
}

/* The signature carried in tool call id `idv` (the part after the mark, base64url -> base64) into r->tmp; false when
 * the id carries none (or nothing that is base64). */
static bool signature_of(req_t *r, uint32_t idv)
{
    tg_iovec_t raw = tg_jdoc_str_raw(r->d, idv);
    if (memmem(raw.base, raw.len, SIG_MARK, sizeof(SIG_MARK) - 1) == NULL && memchr(raw.base, '\\', raw.len) == NULL)
        return false; /* the usual case: no mark, no escape that could spell one */
    tg_buf_t id;
    tg_buf_init(&id, raw.len + 1);
    const char *m = NULL;
    if (tg_jdoc_str(r->d, idv, &id) == 0 && id.len != 0)
        m = memmem(id.base, id.len, SIG_MARK, sizeof(SIG_MARK) - 1);
    r->tmp.len = 0;
    for (const char *p = m != NULL ? m + sizeof(SIG_MARK) - 1 : NULL; p != NULL && p != id.base + id.len; ++p) {
        char c = *p == '-' ? '+' : *p == '_' ? '/' : *p;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/')) {
            m = NULL; /* not ours */
            break;
        }
        tg_buf_append(&r->tmp, &c, 1);
    }
    tg_buf_free(&id);
    if (m == NULL || r->tmp.len % 4 == 1) /* a base64 text is never 1 past a multiple of 4 */
        return false;
    while (r->tmp.len % 4 != 0)
        tg_buf_append(&r->tmp, "=", 1);
    return r->tmp.len != 0;
}

/* An image or file given as a URL: inlineData for a base64 data URL, fileData for an http(s) URL whose path ends in
 * a known image type (Google needs the media type, which the URL must therefore say). */
static int url_part(req_t *r, uint32_t urlv, const char *where, const char *field)
{
    const tg_jdoc_t *d = r->d;
    r->tmp.len = 0;
    if (tg_jdoc_str(d, urlv, &r->tmp) != 0)
        return tg_xlate_fail(r->err, r->errsz, "%s.%s must be a string", where, field);
    tg_iovec_t url = tg_iov(r->tmp.base != NULL ? r->tmp.base : "", r->tmp.len);
    if (tg_iov_prefix_ci(url, TG_LIT("data:"))) {
        tg_iovec_t mime, data;
        if (tg_xlate_parse_data_url(url, &mime, &data) != 0)
            return tg_xlate_fail(r->err, r->errsz, "%s.%s: a data URL must be data:{media type};base64,{data}", where,
                                 field);
        put(r->out, "{\"inlineData\":{\"mimeType\":\"");
        tg_buf_append_json_escaped(r->out, mime.base, mime.len);
        put(r->out, "\",\"data\":\"");
        tg_buf_append_json_escaped(r->out, data.base, data.len);
        put(r->out, "\"}}");
        return 0;
    }
    if (!tg_iov_prefix_ci(url, TG_LIT("https://")) && !tg_iov_prefix_ci(url, TG_LIT("http://")))
        return tg_xlate_fail(r->err, r->errsz, "%s.%s must be an http(s) URL or a base64 data URL", where, field);
    static const struct {
        const char *ext, *mime;
    } types[] = {{".png", "image/png"},   {".jpg", "image/jpeg"},  {".jpeg", "image/jpeg"}, {".gif", "image/gif"},
                 {".webp", "image/webp"}, {".heic", "image/heic"}, {".heif", "image/heif"}};
    size_t end = 0;
    while (end != url.len && url.base[end] != '?' && url.base[end] != '#')
        ++end;
    const char *mime = NULL;
    for (size_t i = 0; i != TG_ARRAY_SIZE(types) && mime == NULL; ++i) {
        size_t n = strlen(types[i].ext);
        if (end >= n && strncasecmp(url.base + end - n, types[i].ext, n) == 0)
            mime = types[i].mime;
    }
    if (mime == NULL)
        return tg_xlate_fail(r->err, r->errsz,
                             "%s.%s: google-ai-studio needs the image's media type, and this URL's path does not end "
                             "in .png, .jpg, .jpeg, .gif, .webp, .heic or .heif; send it as a base64 data URL",
                             where, field);
    put(r->out, "{\"fileData\":{\"mimeType\":\"");
    put(r->out, mime);
    put(r->out, "\",\"fileUri\":");
    put_iov(r->out, tg_jdoc_raw(d, urlv));
    put(r->out, "}}");
    return 0;
}

/* Message content (a string or an array of parts) as Google parts, each preceded by a comma unless it is the first
 * (*n counts them). Text only unless `media` (images, audio, files). Empty texts are left out (Google refuses
 * them). */
static int content_parts(req_t *r, uint32_t content, bool media, const char *where, unsigned *n)
{
    const tg_jdoc_t *d = r->d;
    if (tg_jdoc_is_null(d, content))
        return 0;
    if (is_type(d, content, TG_JSON_STRING)) {
        if (d->nodes[content].end - d->nodes[content].start > 2) {
            put(r->out, (*n)++ != 0 ? ",{\"text\":" : "{\"text\":");
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
                continue;
            put(r->out, (*n)++ != 0 ? ",{\"text\":" : "{\"text\":");
            put_iov(r->out, tg_jdoc_raw(d, t));
            put(r->out, "}");
            continue;
        }
        if (media && tg_jdoc_str_eq(d, type, "image_url")) {
            uint32_t iu = tg_jdoc_get(d, part, "image_url");
            if ((*n)++ != 0)
                put(r->out, ",");
            if (url_part(r, is_type(d, iu, TG_JSON_OBJECT) ? tg_jdoc_get(d, iu, "url") : iu, pw, "image_url.url") != 0)
                return -1;
            continue;
        }
        if (media && tg_jdoc_str_eq(d, type, "input_audio")) {
            uint32_t ia = tg_jdoc_get(d, part, "input_audio");
            uint32_t data = tg_jdoc_get(d, ia, "data"), format = tg_jdoc_get(d, ia, "format");
            if (!is_type(d, data, TG_JSON_STRING) || !is_type(d, format, TG_JSON_STRING))
                return tg_xlate_fail(r->err, r->errsz, "%s.input_audio needs data and format", pw);
            put(r->out, (*n)++ != 0 ? ",{\"inlineData\":{\"mimeType\":\"audio/" : "{\"inlineData\":{\"mimeType\":\"audio/");
            put_iov(r->out, tg_jdoc_str_raw(d, format));
            put(r->out, "\",\"data\":");
            put_iov(r->out, tg_jdoc_raw(d, data));
            put(r->out, "}}");
            continue;
        }
        if (media && tg_jdoc_str_eq(d, type, "file")) {
            uint32_t fd = tg_jdoc_get(d, tg_jdoc_get(d, part, "file"), "file_data");
            if (!is_type(d, fd, TG_JSON_STRING))
                return tg_xlate_fail(r->err, r->errsz,
                                     "%s.file: google-ai-studio takes a file as file_data (a base64 data URL); file_id "
                                     "names a file stored with OpenAI",
                                     pw);
            if ((*n)++ != 0)
                put(r->out, ",");
            if (url_part(r, fd, pw, "file.file_data") != 0)
                return -1;
            continue;
        }
        if (!is_type(d, type, TG_JSON_STRING))
            return tg_xlate_fail(r->err, r->errsz, "%s.type must be a string", pw);
        tg_iovec_t t = tg_jdoc_str_raw(d, type);
        return tg_xlate_fail(r->err, r->errsz, "%s: content parts of type \"%.*s\" cannot be sent to google-ai-studio "
                                               "here (text%s are)",
                             pw, (int)TG_MIN(t.len, 64), t.base, media ? ", image_url, input_audio and file" : "");
    }
    return 0;
}

/* An assistant message's tool_calls as functionCall parts (continuing the part list, *n counts them), each
 * remembered by id for the results that follow. */
static int call_parts(req_t *r, uint32_t messages, uint32_t calls, const char *where, unsigned *n)
{
    const tg_jdoc_t *d = r->d;
    if (tg_jdoc_is_null(d, calls))
        return 0;
    if (!is_type(d, calls, TG_JSON_ARRAY))
        return tg_xlate_fail(r->err, r->errsz, "%s.tool_calls must be an array", where);
    calls_init(r, messages);
    size_t i = 0;
    EACH(d, calls, tc) {
        uint32_t fn = tg_jdoc_get(d, tc, "function");
        uint32_t id = tg_jdoc_get(d, tc, "id"), name = tg_jdoc_get(d, fn, "name"), args = tg_jdoc_get(d, fn, "arguments");
        if (!is_type(d, id, TG_JSON_STRING) || !is_type(d, name, TG_JSON_STRING))
            return tg_xlate_fail(r->err, r->errsz, "%s.tool_calls[%zu] needs an id and a function.name", where, i);
        struct call_slot *slot = call_slot(r, tg_jdoc_str_raw(d, id));
        slot->id = tg_jdoc_str_raw(d, id);
        slot->name = name;
        slot->order = (uint32_t)i;
        put(r->out, (*n)++ != 0 ? ",{\"functionCall\":{\"name\":" : "{\"functionCall\":{\"name\":");
        put_iov(r->out, tg_jdoc_raw(d, name));
        put(r->out, ",\"args\":");
        r->tmp.len = 0;
        if (tg_jdoc_is_null(d, args)) {
            put(r->out, "{}");
        } else if (tg_jdoc_str(d, args, &r->tmp) != 0) {
            return tg_xlate_fail(r->err, r->errsz, "%s.tool_calls[%zu].function.arguments must be a string", where, i);
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
        if (signature_of(r, id)) {
            put(r->out, ",\"thoughtSignature\":\"");
            tg_buf_append(r->out, r->tmp.base, r->tmp.len);
            put(r->out, "\"");
        }
        put(r->out, "}");
        ++i;
    }
    return 0;
}

/* The call that tool message m answers (by its tool_call_id), or NULL with the refusal. */
static const struct call_slot *answered_call(req_t *r, uint32_t m, const char *where)
{
    const tg_jdoc_t *d = r->d;
    uint32_t id = tg_jdoc_get(d, m, "tool_call_id");
    if (!is_type(d, id, TG_JSON_STRING)) {
        tg_xlate_fail(r->err, r->errsz, "%s.tool_call_id must be a string", where);
        return NULL;
    }
    tg_iovec_t idr = tg_jdoc_str_raw(d, id);
    const struct call_slot *slot = r->calls != NULL ? call_slot(r, idr) : NULL;
    if (slot == NULL || slot->id.base == NULL) {
        tg_xlate_fail(r->err, r->errsz,
                      "%s.tool_call_id \"%.*s\" answers no tool call of an earlier assistant message; "
                      "google-ai-studio needs the name of the function it answers",
                      where, (int)TG_MIN(idr.len, 64), idr.base);
        return NULL;
    }
    return slot;
}

/* A tool message -> a functionResponse part: {"name": the call's function, "response": {"output": the text}}. */
static int result_part(req_t *r, uint32_t m, uint32_t name, const char *where)
{
    const tg_jdoc_t *d = r->d;
    uint32_t content = tg_jdoc_get(d, m, "content");
    put(r->out, "{\"functionResponse\":{\"name\":");
    put_iov(r->out, tg_jdoc_raw(d, name));
    put(r->out, ",\"response\":{\"output\":\"");
    if (is_type(d, content, TG_JSON_STRING)) {
        put_iov(r->out, tg_jdoc_str_raw(d, content));
    } else if (is_type(d, content, TG_JSON_ARRAY)) {
        size_t i = 0;
        EACH(d, content, part) { /* text parts, joined: raw contents concatenate into one valid literal */
            uint32_t t = tg_jdoc_get(d, part, "text");
            if (!tg_jdoc_str_eq(d, tg_jdoc_get(d, part, "type"), "text") || !is_type(d, t, TG_JSON_STRING))
                return tg_xlate_fail(r->err, r->errsz, "%s.content[%zu]: a tool result holds text parts only", where,
                                     i);
            put_iov(r->out, tg_jdoc_str_raw(d, t));
            ++i;
        }
    } else if (!tg_jdoc_is_null(d, content)) {
        return tg_xlate_fail(r->err, r->errsz, "%s.content must be a string or an array of text parts", where);
    }
    put(r->out, "\"}}}");
    return 0;
}

typedef struct {
    uint32_t message, name;
    uint32_t order; /* of the call answered, in its assistant message */
    size_t seq;     /* of the message in the run */
} result_t;

static int by_call_order(const void *a, const void *b)
{
    const result_t *x = a, *y = b;
    return x->order != y->order ? (x->order < y->order ? -1 : 1) : (x->seq < y->seq ? -1 : x->seq > y->seq);
}

/* A run of tool messages, from `first` (messages[index]) on, as the parts of one user turn. Google matches
 * responses to calls by position, not id (it gave none), so they go in the order of the calls they answer, whatever
 * the order the client sent them in. */
static int results(req_t *r, uint32_t first, size_t index)
{
    const tg_jdoc_t *d = r->d;
    size_t n = 0;
    for (uint32_t m = first; m != NONE && tg_jdoc_str_eq(d, tg_jdoc_get(d, m, "role"), "tool"); m = d->nodes[m].next)
        ++n;
    result_t *v = tg_malloc(n * sizeof(*v));
    size_t k = 0;
    int rc = 0;
    for (uint32_t m = first; k != n; m = d->nodes[m].next, ++k) {
        char where[32];
        tg_xlate_where(where, sizeof(where), "", "messages", index + k);
        const struct call_slot *slot = answered_call(r, m, where);
        if (slot == NULL) {
            rc = -1;
            break;
        }
        v[k] = (result_t){m, slot->name, slot->order, k};
    }
    if (rc == 0) {
        qsort(v, n, sizeof(*v), by_call_order);
        for (k = 0; k != n && rc == 0; ++k) {
            char where[32];
            tg_xlate_where(where, sizeof(where), "", "messages", index + v[k].seq);
            if (k != 0)
                put(r->out, ",");
            rc = result_part(r, v[k].message, v[k].name, where);
        }
    }
    free(v);
    return rc;
}

static bool is_system_role(const tg_jdoc_t *d, uint32_t role)
{
    return tg_jdoc_str_eq(d, role, "system") || tg_jdoc_str_eq(d, role, "developer");
}

/* An assistant message with no text and no tool call: left out (Google refuses a turn with no parts). */
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
            return false;
    }
    return true;
}

static int contents(req_t *r, uint32_t messages)
{
    const tg_jdoc_t *d = r->d;
    put(r->out, "{\"contents\":[");
    unsigned nmsg = 0;
    bool in_results = false; /* a user turn of function responses is open */
    size_t i = 0;
    EACH(d, messages, m) {
        char where[32];
        tg_xlate_where(where, sizeof(where), "", "messages", i++);
        uint32_t role = tg_jdoc_get(d, m, "role");
        if (!is_type(d, role, TG_JSON_STRING))
            return tg_xlate_fail(r->err, r->errsz, "%s.role must be a string", where);
        if (is_system_role(d, role))
            continue; /* in systemInstruction */
        if (tg_jdoc_str_eq(d, role, "tool")) {
            if (in_results)
                continue; /* written with the first of its run */
            put(r->out, nmsg++ != 0 ? ",{\"role\":\"user\",\"parts\":[" : "{\"role\":\"user\",\"parts\":[");
            in_results = true;
            if (results(r, m, i - 1) != 0)
                return -1;
            continue;
        }
        if (in_results) {
            put(r->out, "]}");
            in_results = false;
        }
        bool user = tg_jdoc_str_eq(d, role, "user");
        if (!user && !tg_jdoc_str_eq(d, role, "assistant")) {
            tg_iovec_t rv = tg_jdoc_str_raw(d, role);
            return tg_xlate_fail(r->err, r->errsz,
                                 "%s.role \"%.*s\" cannot be sent to google-ai-studio (system, developer, user, "
                                 "assistant and tool can)",
                                 where, (int)TG_MIN(rv.len, 64), rv.base);
        }
        if (!user && !tg_jdoc_is_null(d, tg_jdoc_get(d, m, "function_call")))
            return tg_xlate_fail(r->err, r->errsz, "%s.function_call is the deprecated form: use tool_calls", where);
        if (!user && empty_assistant(d, m))
            continue;
        put(r->out, nmsg++ != 0 ? ",{\"role\":" : "{\"role\":");
        put(r->out, user ? "\"user\",\"parts\":[" : "\"model\",\"parts\":[");
        unsigned n = 0;
        if (content_parts(r, tg_jdoc_get(d, m, "content"), user, where, &n) != 0)
            return -1;
        if (!user && call_parts(r, messages, tg_jdoc_get(d, m, "tool_calls"), where, &n) != 0)
            return -1;
        if (n == 0)
            put(r->out, "{\"text\":\"\"}"); /* an empty user turn: Google says what it thinks of it */
        put(r->out, "]}");
    }
    if (in_results)
        put(r->out, "]}");
    put(r->out, "]");
    if (nmsg == 0)
        return tg_xlate_fail(r->err, r->errsz,
                             "messages holds only system messages; google-ai-studio needs a user message");
    return 0;
}

/* "systemInstruction": the text of every system and developer message, one part each. */
static int system_instruction(req_t *r, uint32_t messages)
{
    const tg_jdoc_t *d = r->d;
    unsigned n = 0;
    size_t i = 0;
    size_t mark = r->out->len;
    put(r->out, ",\"systemInstruction\":{\"parts\":[");
    EACH(d, messages, m) {
        char where[32];
        tg_xlate_where(where, sizeof(where), "", "messages", i++);
        if (is_system_role(d, tg_jdoc_get(d, m, "role")) &&
            content_parts(r, tg_jdoc_get(d, m, "content"), false, where, &n) != 0)
            return -1;
    }
    if (n == 0)
        r->out->len = mark;
    else
        put(r->out, "]}");
    return 0;
}

static int tools(req_t *r, uint32_t tools)
{
    const tg_jdoc_t *d = r->d;
    if (!is_type(d, tools, TG_JSON_ARRAY))
        return tg_xlate_fail(r->err, r->errsz, "tools must be an array");
    if (d->nodes[tools].count == 0)
        return 0;
    put(r->out, ",\"tools\":[{\"functionDeclarations\":[");
    size_t i = 0;
    EACH(d, tools, t) {
        uint32_t fn = tg_jdoc_get(d, t, "function");
        uint32_t name = tg_jdoc_get(d, fn, "name");
        if (!tg_jdoc_str_eq(d, tg_jdoc_get(d, t, "type"), "function") || !is_type(d, name, TG_JSON_STRING))
            return tg_xlate_fail(r->err, r->errsz,
                                 "tools[%zu] must be {\"type\":\"function\",\"function\":{\"name\":...}}; other tool "
                                 "types cannot be sent to google-ai-studio",
                                 i);
        put(r->out, i++ != 0 ? ",{\"name\":" : "{\"name\":");
        put_iov(r->out, tg_jdoc_raw(d, name));
        uint32_t desc = tg_jdoc_get(d, fn, "description"), params = tg_jdoc_get(d, fn, "parameters");
        if (is_type(d, desc, TG_JSON_STRING)) {
            put(r->out, ",\"description\":");
            put_iov(r->out, tg_jdoc_raw(d, desc));
        }
        if (is_type(d, params, TG_JSON_OBJECT)) { /* JSON Schema as it is (parameters takes only OpenAPI's subset) */
            put(r->out, ",\"parametersJsonSchema\":");
            put_iov(r->out, tg_jdoc_raw(d, params));
        } else if (!tg_jdoc_is_null(d, params)) {
            return tg_xlate_fail(r->err, r->errsz, "tools[%zu].function.parameters must be a JSON Schema object", i - 1);
        }
        put(r->out, "}");
    }
    put(r->out, "]}]");
    return 0;
}

static int tool_config(req_t *r, uint32_t tc, uint32_t tools_v, uint32_t parallel)
{
    const tg_jdoc_t *d = r->d;
    bool has_tools = is_type(d, tools_v, TG_JSON_ARRAY) && d->nodes[tools_v].count != 0;
    if (is_type(d, parallel, TG_JSON_FALSE) && has_tools && !tg_jdoc_str_eq(d, tc, "none"))
        return tg_xlate_fail(r->err, r->errsz,
                             "parallel_tool_calls false cannot be sent to google-ai-studio: it has no switch for one "
                             "call at a time (leave it out)");
    const char *mode = NULL;
    uint32_t name = NONE;
    if (tg_jdoc_str_eq(d, tc, "auto"))
        mode = "AUTO";
    else if (tg_jdoc_str_eq(d, tc, "none"))
        mode = "NONE";
    else if (tg_jdoc_str_eq(d, tc, "required"))
        mode = "ANY";
    else if (is_type(d, tc, TG_JSON_OBJECT) &&
             is_type(d, name = tg_jdoc_get(d, tg_jdoc_get(d, tc, "function"), "name"), TG_JSON_STRING))
        mode = "ANY";
    else if (!tg_jdoc_is_null(d, tc))
        return tg_xlate_fail(r->err, r->errsz,
                             "tool_choice must be \"auto\", \"none\", \"required\" or {\"type\":\"function\","
                             "\"function\":{\"name\":...}}");
    if (mode == NULL || !has_tools)
        return 0; /* with no function declared, there is nothing to choose from */
    put(r->out, ",\"toolConfig\":{\"functionCallingConfig\":{\"mode\":\"");
    put(r->out, mode);
    put(r->out, "\"");
    if (name != NONE) {
        put(r->out, ",\"allowedFunctionNames\":[");
        put_iov(r->out, tg_jdoc_raw(d, name));
        put(r->out, "]");
    }
    put(r->out, "}}");
    return 0;
}

/* The generationConfig members, each with a leading comma, into g. */
static int generation_config(req_t *r, tg_buf_t *g)
{
    const tg_jdoc_t *d = r->d;
    uint32_t v;
    double x;
    int64_t n;
    v = tg_jdoc_get(d, 0, "max_completion_tokens");
    if (tg_jdoc_is_null(d, v))
        v = tg_jdoc_get(d, 0, "max_tokens");
    if (!tg_jdoc_is_null(d, v)) {
        if (tg_jdoc_int(d, v, &n) != 0 || n < 1)
            return tg_xlate_fail(r->err, r->errsz,
                                 "max_tokens / max_completion_tokens must be a whole number of at least 1");
        put(g, ",\"maxOutputTokens\":");
        put_iov(g, tg_jdoc_raw(d, v));
    }
    static const struct {
        const char *from, *to;
        double min, max;
    } numbers[] = {{"temperature", "temperature", 0, 2},
                   {"top_p", "topP", 0, 1},
                   {"presence_penalty", "presencePenalty", -2, 2},
                   {"frequency_penalty", "frequencyPenalty", -2, 2}};
    for (size_t i = 0; i != TG_ARRAY_SIZE(numbers); ++i) {
        if (tg_jdoc_is_null(d, v = tg_jdoc_get(d, 0, numbers[i].from)))
            continue;
        if (tg_jdoc_number(d, v, &x) != 0 || x < numbers[i].min || x > numbers[i].max)
            return tg_xlate_fail(r->err, r->errsz, "%s must be a number from %g to %g", numbers[i].from,
                                 numbers[i].min, numbers[i].max);
        put(g, ",\"");
        put(g, numbers[i].to);
        put(g, "\":");
        put_iov(g, tg_jdoc_raw(d, v));
    }
    if (!tg_jdoc_is_null(d, v = tg_jdoc_get(d, 0, "seed"))) {
        if (tg_jdoc_int(d, v, &n) != 0)
            return tg_xlate_fail(r->err, r->errsz, "seed must be a whole number");
        put(g, ",\"seed\":");
        put_iov(g, tg_jdoc_raw(d, v));
    }
    if (!tg_jdoc_is_null(d, v = tg_jdoc_get(d, 0, "stop"))) {
        if (is_type(d, v, TG_JSON_STRING)) {
            put(g, ",\"stopSequences\":[");
            put_iov(g, tg_jdoc_raw(d, v));
            put(g, "]");
        } else {
            if (!tg_xlate_all_strings(d, v))
                return tg_xlate_fail(r->err, r->errsz, "stop must be a string or an array of strings");
            put(g, ",\"stopSequences\":");
            put_iov(g, tg_jdoc_raw(d, v));
        }
    }
    if (!tg_jdoc_is_null(d, v = tg_jdoc_get(d, 0, "n"))) {
        if (tg_jdoc_int(d, v, &n) != 0 || n < 1 || n > MAX_CANDIDATES)
            return tg_xlate_fail(r->err, r->errsz, "n must be a whole number from 1 to 8 for google-ai-studio");
        if (n > 1) {
            put(g, ",\"candidateCount\":");
            put_iov(g, tg_jdoc_raw(d, v));
        }
    }
    uint32_t rf = tg_jdoc_get(d, 0, "response_format");
    if (!tg_jdoc_is_null(d, rf)) {
        uint32_t type = tg_jdoc_get(d, rf, "type");
        if (tg_jdoc_str_eq(d, type, "json_object")) {
            put(g, ",\"responseMimeType\":\"application/json\"");
        } else if (tg_jdoc_str_eq(d, type, "json_schema")) {
            uint32_t s = tg_jdoc_get(d, tg_jdoc_get(d, rf, "json_schema"), "schema");
            if (!is_type(d, s, TG_JSON_OBJECT))
                return tg_xlate_fail(r->err, r->errsz, "response_format.json_schema.schema must be a JSON Schema object");
            put(g, ",\"responseMimeType\":\"application/json\",\"responseJsonSchema\":");
            put_iov(g, tg_jdoc_raw(d, s));
        } else if (!tg_jdoc_str_eq(d, type, "text")) {
            return tg_xlate_fail(r->err, r->errsz,
                                 "response_format.type must be \"text\", \"json_object\" or \"json_schema\"");
        }
    }
    return 0;
}

static const char *const handled_members[] = {
    "model",          "messages",      "max_tokens",  "max_completion_tokens", "temperature",      "top_p",
    "presence_penalty", "frequency_penalty", "seed",   "stop",                  "n",                "stream",
    "stream_options", "tools",         "tool_choice", "parallel_tool_calls",   "response_format", NULL};

static bool default_value(const tg_jdoc_t *d, tg_iovec_t k, uint32_t v)
{
    if (tg_jdoc_is_null(d, v))
        return true;
    if (tg_iov_eq(k, TG_LIT("logprobs")) || tg_iov_eq(k, TG_LIT("store")))
        return is_type(d, v, TG_JSON_FALSE);
    if (tg_iov_eq(k, TG_LIT("logit_bias")) || tg_iov_eq(k, TG_LIT("metadata")))
        return is_type(d, v, TG_JSON_OBJECT) && d->nodes[v].count == 0;
    if (tg_iov_eq(k, TG_LIT("service_tier")))
        return tg_jdoc_str_eq(d, v, "auto") || tg_jdoc_str_eq(d, v, "default");
    return false;
}

static int request_body(req_t *r, tg_xlate_req_info_t *info)
{
    const tg_jdoc_t *d = r->d;
    if (tg_xlate_check_members(d, handled_members, NULL, default_value,
                               TO_GOOGLE ": generateContent has no equivalent (leave it out, or call "
                                         "google-ai-studio's native endpoint)",
                               r->err, r->errsz) != 0)
        return -1;
    uint32_t messages = tg_jdoc_get(d, 0, "messages");
    if (!is_type(d, messages, TG_JSON_ARRAY) || d->nodes[messages].count == 0)
        return tg_xlate_fail(r->err, r->errsz, "messages must be a non-empty array");
    if (contents(r, messages) != 0 || system_instruction(r, messages) != 0)
        return -1;
    uint32_t v = tg_jdoc_get(d, 0, "tools");
    if (!tg_jdoc_is_null(d, v) && tools(r, v) != 0)
        return -1;
    if (tool_config(r, tg_jdoc_get(d, 0, "tool_choice"), v, tg_jdoc_get(d, 0, "parallel_tool_calls")) != 0)
        return -1;
    tg_buf_t g;
    tg_buf_init(&g, d->len + 4096);
    int rc = generation_config(r, &g);
    if (rc == 0 && g.len != 0) {
        put(r->out, ",\"generationConfig\":{");
        tg_buf_append(r->out, g.base + 1, g.len - 1);
        put(r->out, "}");
    }
    tg_buf_free(&g);
    if (rc != 0)
        return -1;
    put(r->out, "}");
    info->stream = is_type(d, tg_jdoc_get(d, 0, "stream"), TG_JSON_TRUE);
    info->include_usage =
        info->stream && is_type(d, tg_jdoc_get(d, tg_jdoc_get(d, 0, "stream_options"), "include_usage"), TG_JSON_TRUE);
    return !r->out->overflowed ? 0 : tg_xlate_fail(r->err, r->errsz, "the translated request is too large");
}

int tg_xlate_google_request(const tg_jdoc_t *d, tg_buf_t *out, tg_xlate_req_info_t *info, char *err, size_t errsz)
{
    req_t r = {.d = d, .out = out, .err = err, .errsz = errsz};
    tg_buf_init(&r.tmp, d->len + 4);
    size_t mark = out->len;
    int rc = request_body(&r, info);
    tg_buf_free(&r.tmp);
    free(r.calls);
    if (rc != 0)
        out->len = mark;
    return rc;
}

/* ---- embeddings: OpenAI embeddings -> batchEmbedContents ---------------------------------------------------- */

static const char *const embed_members[] = {"model", "input", "dimensions", "encoding_format", NULL};

int tg_xlate_google_embeddings(const tg_jdoc_t *d, const char *model, tg_buf_t *out, tg_xlate_req_info_t *info,
                               char *err, size_t errsz)
{
    if (tg_xlate_check_members(d, embed_members, NULL, default_value,
                               TO_GOOGLE ": batchEmbedContents has no equivalent (leave it out)", err, errsz) != 0)
        return -1;
    uint32_t input = tg_jdoc_get(d, 0, "input"), v;
    bool one = is_type(d, input, TG_JSON_STRING);
    if (!one && (!tg_xlate_all_strings(d, input) || d->nodes[input].count == 0))
        return tg_xlate_fail(err, errsz,
                             "input must be a string or a non-empty array of strings for google-ai-studio (arrays of "
                             "tokens are OpenAI's own)");
    if (!one && d->nodes[input].count > GOOGLE_MAX_BATCH)
        return tg_xlate_fail(err, errsz,
                             "input holds %u texts; google-ai-studio embeds at most %d in one call "
                             "(batchEmbedContents): send them in several requests",
                             d->nodes[input].count, GOOGLE_MAX_BATCH);
    int64_t dims = 0;
    if (!tg_jdoc_is_null(d, v = tg_jdoc_get(d, 0, "dimensions")) && (tg_jdoc_int(d, v, &dims) != 0 || dims < 1))
        return tg_xlate_fail(err, errsz, "dimensions must be a whole number of at least 1");
    v = tg_jdoc_get(d, 0, "encoding_format");
    info->base64 = tg_jdoc_str_eq(d, v, "base64");
    if (!tg_jdoc_is_null(d, v) && !info->base64 && !tg_jdoc_str_eq(d, v, "float"))
        return tg_xlate_fail(err, errsz, "encoding_format must be \"float\" or \"base64\"");
    info->embeddings = true;
    info->model = model;
    size_t mark = out->len;
    put(out, "{\"requests\":[");
    unsigned k = 0;
    for (uint32_t s = one ? input : d->nodes[input].child; s != NONE; s = one ? NONE : d->nodes[s].next) {
        put(out, k++ != 0 ? ",{\"model\":\"models/" : "{\"model\":\"models/");
        tg_buf_append_json_escaped(out, model, strlen(model));
        put(out, "\",\"content\":{\"parts\":[{\"text\":");
        put_iov(out, tg_jdoc_raw(d, s));
        put(out, "}]}");
        if (dims != 0) {
            put(out, ",\"outputDimensionality\":");
            tg_buf_append_int(out, dims);
        }
        put(out, "}");
    }
    put(out, "]}");
    if (out->overflowed) {
        out->len = mark;
        return tg_xlate_fail(err, errsz, "the translated request is too large");
    }
    return 0;
}

static void put_base64(tg_buf_t *out, const unsigned char *p, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        q[0] = a[v >> 18 & 63];
        q[1] = a[v >> 12 & 63];
        q[2] = i + 1 < n ? a[v >> 6 & 63] : '=';
        q[3] = i + 2 < n ? a[v & 63] : '=';
        tg_buf_append(out, q, 4);
    }
}

static int embeddings_response(const tg_jdoc_t *d, const tg_xlate_req_info_t *info, tg_buf_t *out)
{
    uint32_t embs = tg_jdoc_get(d, 0, "embeddings");
    if (!is_type(d, embs, TG_JSON_ARRAY))
        return -1;
    put(out, "{\"object\":\"list\",\"data\":[");
    unsigned k = 0;
    tg_buf_t raw;
    tg_buf_init(&raw, 2 * d->len + 16); /* float32s: 4 bytes for a number of at least 1 byte and a comma */
    EACH(d, embs, e) {
        uint32_t values = tg_jdoc_get(d, e, "values");
        if (!is_type(d, values, TG_JSON_ARRAY)) {
            tg_buf_free(&raw);
            return -1;
        }
        put(out, k != 0 ? ",{\"object\":\"embedding\",\"index\":" : "{\"object\":\"embedding\",\"index\":");
        tg_buf_append_int(out, k++);
        put(out, ",\"embedding\":");
        if (!info->base64) {
            put_iov(out, tg_jdoc_raw(d, values));
        } else {
            raw.len = 0;
            EACH(d, values, x) {
                double f;
                if (tg_jdoc_number(d, x, &f) != 0) {
                    tg_buf_free(&raw);
                    return -1;
                }
                float g = (float)f;
                uint32_t u;
                memcpy(&u, &g, 4);
                unsigned char le[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                                       (unsigned char)(u >> 24)};
                tg_buf_append(&raw, le, 4);
            }
            if (raw.overflowed) {
                tg_buf_free(&raw);
                return -1;
            }
            put(out, "\"");
            put_base64(out, (const unsigned char *)raw.base, raw.len);
            put(out, "\"");
        }
        put(out, "}");
    }
    tg_buf_free(&raw);
    put(out, "],\"model\":\"");
    if (info->model != NULL)
        tg_buf_append_json_escaped(out, info->model, strlen(info->model));
    /* batchEmbedContents reports no token counts: the usage OpenAI's clients expect is there, with zeros */
    put(out, "\",\"usage\":{\"prompt_tokens\":0,\"total_tokens\":0}}");
    return out->overflowed ? -1 : 0;
}

/* ---- answer: generateContent -> chat.completion ------------------------------------------------------------ */

/* OpenAI's finish_reason for a Google finishReason; a stop with function calls is "tool_calls". */
static const char *finish_of(const tg_jdoc_t *d, uint32_t fr, bool called)
{
    if (tg_jdoc_str_eq(d, fr, "MAX_TOKENS"))
        return "length";
    static const char *const filtered[] = {"SAFETY",    "RECITATION",          "BLOCKLIST",
                                           "PROHIBITED_CONTENT", "SPII",      "IMAGE_SAFETY",
                                           "IMAGE_PROHIBITED_CONTENT"};
    for (size_t i = 0; i != TG_ARRAY_SIZE(filtered); ++i)
        if (tg_jdoc_str_eq(d, fr, filtered[i]))
            return "content_filter";
    return called ? "tool_calls" : "stop"; /* STOP, and reasons OpenAI has no name for */
}

/* The id the client sees for function call k of a candidate: Google's id when it gave one, else call_{k}; with the
 * thoughtSignature appended (base64url) when the part carries one. As the raw content of a JSON string. */
static void put_call_id(tg_buf_t *out, const tg_jdoc_t *d, uint32_t part, unsigned k)
{
    uint32_t gid = tg_jdoc_get(d, tg_jdoc_get(d, part, "functionCall"), "id");
    if (is_type(d, gid, TG_JSON_STRING) && d->nodes[gid].end - d->nodes[gid].start > 2) {
        put_iov(out, tg_jdoc_str_raw(d, gid));
    } else {
        put(out, "call_");
        tg_buf_append_int(out, k);
    }
    uint32_t sig = tg_jdoc_get(d, part, "thoughtSignature");
    if (!is_type(d, sig, TG_JSON_STRING))
        return;
    tg_buf_t b; /* the signature unescaped; only base64 goes into the id */
    tg_buf_init(&b, d->nodes[sig].end - d->nodes[sig].start);
    bool ok = tg_jdoc_str(d, sig, &b) == 0 && b.len != 0;
    for (size_t i = 0; ok && i != b.len; ++i) {
        char c = b.base[i];
        ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
             (c == '=' && i + 2 >= b.len);
    }
    if (ok) {
        put(out, SIG_MARK);
        for (size_t i = 0; i != b.len && b.base[i] != '='; ++i) {
            char c = b.base[i] == '+' ? '-' : b.base[i] == '/' ? '_' : b.base[i];
            tg_buf_append(out, &c, 1);
        }
    }
    tg_buf_free(&b);
}

static bool is_answer_text(const tg_jdoc_t *d, uint32_t part, uint32_t *t)
{
    *t = tg_jdoc_get(d, part, "text");
    return is_type(d, *t, TG_JSON_STRING) && !is_type(d, tg_jdoc_get(d, part, "thought"), TG_JSON_TRUE);
}

static void put_usage(tg_buf_t *out, int64_t prompt, int64_t completion, int64_t total, int64_t cached,
                      int64_t reasoning)
{
    put(out, "{\"prompt_tokens\":");
    tg_buf_append_int(out, prompt);
    put(out, ",\"completion_tokens\":");
    tg_buf_append_int(out, completion);
    put(out, ",\"total_tokens\":");
    tg_buf_append_int(out, total >= 0 ? total : prompt + completion);
    put(out, ",\"prompt_tokens_details\":{\"cached_tokens\":");
    tg_buf_append_int(out, cached);
    put(out, "},\"completion_tokens_details\":{\"reasoning_tokens\":");
    tg_buf_append_int(out, reasoning);
    put(out, "}}");
}

/* usageMetadata's counts: the prompt (cached tokens included), the answer (thoughts included, as OpenAI counts
 * reasoning), the total when given (else -1) */
typedef struct {
    int64_t prompt, completion, total, cached, reasoning;
} usage_t;

static usage_t usage_of(const tg_jdoc_t *d, uint32_t um)
{
    usage_t u;
    u.prompt = tg_jdoc_int_or(d, tg_jdoc_get(d, um, "promptTokenCount"), 0);
    u.reasoning = tg_jdoc_int_or(d, tg_jdoc_get(d, um, "thoughtsTokenCount"), 0);
    u.completion = tg_jdoc_int_or(d, tg_jdoc_get(d, um, "candidatesTokenCount"), 0) + u.reasoning;
    u.cached = tg_jdoc_int_or(d, tg_jdoc_get(d, um, "cachedContentTokenCount"), 0);
    u.total = tg_jdoc_int_or(d, tg_jdoc_get(d, um, "totalTokenCount"), -1);
    return u;
}

static bool blocked(const tg_jdoc_t *d)
{
    return is_type(d, tg_jdoc_get(d, tg_jdoc_get(d, 0, "promptFeedback"), "blockReason"), TG_JSON_STRING);
}

int tg_xlate_google_response(const tg_jdoc_t *d, const tg_xlate_req_info_t *info, int64_t created, tg_buf_t *out)
{
    if (info != NULL && info->embeddings)
        return embeddings_response(d, info, out);
    uint32_t cands = tg_jdoc_get(d, 0, "candidates"), um = tg_jdoc_get(d, 0, "usageMetadata");
    if (!is_type(d, cands, TG_JSON_ARRAY) && !blocked(d) && !is_type(d, um, TG_JSON_OBJECT))
        return -1;
    uint32_t rid = tg_jdoc_get(d, 0, "responseId");
    put(out, "{\"id\":\"");
    if (is_type(d, rid, TG_JSON_STRING))
        put_iov(out, tg_jdoc_str_raw(d, rid));
    else
        put(out, "chatcmpl-google");
    put(out, "\",\"object\":\"chat.completion\",\"created\":");
    tg_buf_append_int(out, created);
    put(out, ",\"model\":\"");
    put_iov(out, tg_xlate_str_raw(d, tg_jdoc_get(d, 0, "modelVersion")));
    put(out, "\",\"choices\":[");
    unsigned k = 0;
    if (is_type(d, cands, TG_JSON_ARRAY))
        EACH(d, cands, c) {
            uint32_t parts = tg_jdoc_get(d, tg_jdoc_get(d, c, "content"), "parts");
            put(out, k != 0 ? ",{\"index\":" : "{\"index\":");
            tg_buf_append_int(out, tg_jdoc_int_or(d, tg_jdoc_get(d, c, "index"), k));
            ++k;
            put(out, ",\"message\":{\"role\":\"assistant\",\"content\":");
            unsigned ntext = 0, ncalls = 0;
            if (is_type(d, parts, TG_JSON_ARRAY))
                EACH(d, parts, p) {
                    uint32_t t;
                    if (is_answer_text(d, p, &t)) {
                        put(out, ntext++ == 0 ? "\"" : "");
                        put_iov(out, tg_jdoc_str_raw(d, t));
                    } else if (is_type(d, tg_jdoc_get(d, p, "functionCall"), TG_JSON_OBJECT)) {
                        ncalls++;
                    }
                }
            put(out, ntext != 0 ? "\",\"refusal\":null" : "null,\"refusal\":null");
            if (ncalls != 0) {
                put(out, ",\"tool_calls\":[");
                unsigned j = 0;
                EACH(d, parts, p) {
                    uint32_t fc = tg_jdoc_get(d, p, "functionCall");
                    if (!is_type(d, fc, TG_JSON_OBJECT))
                        continue;
                    put(out, j != 0 ? ",{\"id\":\"" : "{\"id\":\"");
                    put_call_id(out, d, p, j++);
                    put(out, "\",\"type\":\"function\",\"function\":{\"name\":\"");
                    put_iov(out, tg_xlate_str_raw(d, tg_jdoc_get(d, fc, "name")));
                    put(out, "\",\"arguments\":\"");
                    uint32_t args = tg_jdoc_get(d, fc, "args");
                    tg_iovec_t raw = args != NONE ? tg_jdoc_raw(d, args) : tg_iov(TG_LIT("{}"));
                    tg_buf_append_json_escaped(out, raw.base, raw.len);
                    put(out, "\"}}");
                }
                put(out, "]");
            }
            put(out, "},\"logprobs\":null,\"finish_reason\":\"");
            put(out, finish_of(d, tg_jdoc_get(d, c, "finishReason"), ncalls != 0));
            put(out, "\"}");
        }
    if (k == 0) /* the prompt was blocked: no candidate */
        put(out, blocked(d) ? "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,\"refusal\":null},"
                              "\"logprobs\":null,\"finish_reason\":\"content_filter\"}"
                            : "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,\"refusal\":null},"
                              "\"logprobs\":null,\"finish_reason\":\"stop\"}");
    put(out, "]");
    if (is_type(d, um, TG_JSON_OBJECT)) {
        usage_t u = usage_of(d, um);
        put(out, ",\"usage\":");
        put_usage(out, u.prompt, u.completion, u.total, u.cached, u.reasoning);
    }
    put(out, "}");
    return out->overflowed ? -1 : 0;
}

/* ---- stream: one streamGenerateContent event -> chunks ----------------------------------------------------- */

static void start_candidate(tg_xlate_stream_t *s, tg_buf_t *out, unsigned idx)
{
    if (s->cand_started & (1u << idx))
        return;
    s->cand_started |= (uint8_t)(1u << idx);
    static const char delta[] = "{\"role\":\"assistant\",\"content\":\"\"}";
    tg_xlate_emit_chunk_at(s, out, idx, delta, sizeof(delta) - 1, NULL);
}

static void finish_candidate(tg_xlate_stream_t *s, tg_buf_t *out, unsigned idx, const char *finish)
{
    if (s->cand_finished & (1u << idx))
        return;
    s->cand_finished |= (uint8_t)(1u << idx);
    if (idx == 0)
        snprintf(s->finish, sizeof(s->finish), "%s", finish);
    tg_xlate_emit_chunk_at(s, out, idx, "{}", 2, finish);
}

static void candidate(tg_xlate_stream_t *s, const tg_jdoc_t *d, uint32_t c, unsigned pos, tg_buf_t *out,
                      tg_buf_t *dl)
{
    int64_t idx = tg_jdoc_int_or(d, tg_jdoc_get(d, c, "index"), pos);
    if (idx < 0 || idx >= MAX_CANDIDATES) {
        tg_xlate_emit_stream_error(s, out, "api_error", TG_LIT("the answer has more candidates than the gateway "
                                                               "translates (8)"));
        return;
    }
    unsigned i = (unsigned)idx;
    start_candidate(s, out, i);
    uint32_t parts = tg_jdoc_get(d, tg_jdoc_get(d, c, "content"), "parts");
    if (is_type(d, parts, TG_JSON_ARRAY))
        EACH(d, parts, p) {
            uint32_t t, fc = tg_jdoc_get(d, p, "functionCall");
            dl->len = 0;
            if (is_answer_text(d, p, &t) && d->nodes[t].end - d->nodes[t].start > 2) {
                put(dl, "{\"content\":");
                put_iov(dl, tg_jdoc_raw(d, t));
                put(dl, "}");
                tg_xlate_emit_chunk_at(s, out, i, dl->base, dl->len, NULL);
            } else if (is_type(d, fc, TG_JSON_OBJECT)) {
                if (s->cand_tools[i] == 64) {
                    tg_xlate_emit_stream_error(s, out, "api_error",
                                               TG_LIT("the answer has more tool calls than the gateway translates (64)"));
                    return;
                }
                unsigned k = s->cand_tools[i]++;
                put(dl, "{\"tool_calls\":[{\"index\":");
                tg_buf_append_int(dl, k);
                put(dl, ",\"id\":\"");
                put_call_id(dl, d, p, k);
                put(dl, "\",\"type\":\"function\",\"function\":{\"name\":\"");
                put_iov(dl, tg_xlate_str_raw(d, tg_jdoc_get(d, fc, "name")));
                put(dl, "\",\"arguments\":\"");
                uint32_t args = tg_jdoc_get(d, fc, "args");
                tg_iovec_t raw = args != NONE ? tg_jdoc_raw(d, args) : tg_iov(TG_LIT("{}"));
                tg_buf_append_json_escaped(dl, raw.base, raw.len);
                put(dl, "\"}}]}");
                tg_xlate_emit_chunk_at(s, out, i, dl->base, dl->len, NULL);
            }
        }
    uint32_t fr = tg_jdoc_get(d, c, "finishReason");
    if (is_type(d, fr, TG_JSON_STRING))
        finish_candidate(s, out, i, finish_of(d, fr, s->cand_tools[i] != 0));
}

static void event(tg_xlate_stream_t *s, const tg_jdoc_t *d, tg_buf_t *out, tg_buf_t *dl)
{
    uint32_t e = tg_jdoc_get(d, 0, "error");
    if (!tg_jdoc_is_null(d, e)) {
        tg_buf_t m;
        tg_buf_init(&m, TG_XLATE_MAX_EVENT);
        if (tg_jdoc_str(d, tg_jdoc_get(d, e, "message"), &m) != 0 || m.len == 0)
            tg_buf_append(&m, TG_LIT("the provider reported an error"));
        tg_xlate_emit_stream_error(s, out, "api_error", m.base, m.len);
        tg_buf_free(&m);
        return;
    }
    if (!s->started) {
        s->started = true;
        tg_xlate_keep_raw(s->id, sizeof(s->id), d, tg_jdoc_get(d, 0, "responseId"));
        if (s->id[0] == '\0')
            snprintf(s->id, sizeof(s->id), "chatcmpl-google");
        tg_xlate_keep_raw(s->model, sizeof(s->model), d, tg_jdoc_get(d, 0, "modelVersion"));
    }
    uint32_t um = tg_jdoc_get(d, 0, "usageMetadata");
    if (is_type(d, um, TG_JSON_OBJECT)) { /* cumulative: the last one counts */
        usage_t u = usage_of(d, um);
        s->input = u.prompt;
        s->output = u.completion;
        s->total = u.total;
        s->cache_read = u.cached;
        s->reasoning = u.reasoning;
    }
    uint32_t cands = tg_jdoc_get(d, 0, "candidates");
    unsigned pos = 0;
    if (is_type(d, cands, TG_JSON_ARRAY))
        EACH(d, cands, c) {
            if (s->done)
                return;
            candidate(s, d, c, pos++, out, dl);
        }
    if (pos == 0 && blocked(d)) {
        start_candidate(s, out, 0);
        finish_candidate(s, out, 0, "content_filter");
    }
}

void tg_xlate_google_event(tg_xlate_stream_t *s, const char *data, size_t len, tg_buf_t *out)
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

void tg_xlate_google_end(tg_xlate_stream_t *s, tg_buf_t *out)
{
    /* Google's stream just ends: it was whole when every candidate that started said why it finished */
    if (s->cand_finished == 0 || (s->cand_started & ~s->cand_finished) != 0)
        return;
    if (s->info.include_usage) {
        put(out, "data: {\"id\":\"");
        put(out, s->id);
        put(out, "\",\"object\":\"chat.completion.chunk\",\"created\":");
        tg_buf_append_int(out, s->created);
        put(out, ",\"model\":\"");
        put(out, s->model);
        put(out, "\",\"choices\":[],\"usage\":");
        put_usage(out, s->input < 0 ? 0 : s->input, s->output < 0 ? 0 : s->output, s->total,
                  s->cache_read < 0 ? 0 : s->cache_read, s->reasoning < 0 ? 0 : s->reasoning);
        put(out, "}\n\n");
    }
    put(out, "data: [DONE]\n\n");
    s->done = true;
}
