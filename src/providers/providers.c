/*
 * The built-in provider table (reference/cloudflare-ai-gateway.md section 9) and upstream URL building.
 *
 * A new provider is one row here. Host-mapping providers name the path segments they consume and the template
 * variables those fill; tg_provider_build_url substitutes them into the base URL after checking that each value
 * is a plain host label, so a client can never steer the gateway to a host the template does not allow.
 */
#include "tollgate/error.h"
#include "tollgate/provider.h"

static int map_vertex(tg_iovec_t vars[TG_PVAR__COUNT], tg_iovec_t rest, const char **rest_prefix);
static int map_workers_ai(tg_iovec_t vars[TG_PVAR__COUNT], tg_iovec_t rest, const char **rest_prefix);

static const tg_provider_t builtins[] = {
    {"openai", "https://api.openai.com/v1", "authorization", 0, {0}, NULL},
    {"anthropic", "https://api.anthropic.com", "x-api-key", 0, {0}, NULL},
    {"google-ai-studio", "https://generativelanguage.googleapis.com", "x-goog-api-key", 0, {0}, NULL},
    {"google-vertex-ai", "https://{region}-aiplatform.googleapis.com", "authorization", 0, {0}, map_vertex},
    {"aws-bedrock", "https://{service}.{region}.amazonaws.com", "authorization", 2, {TG_PVAR_SERVICE, TG_PVAR_REGION},
     NULL},
    {"azure-openai", "https://{resource}.openai.azure.com/openai/deployments/{deployment}", "api-key", 2,
     {TG_PVAR_RESOURCE, TG_PVAR_DEPLOYMENT}, NULL},
    {"workers-ai", "https://api.cloudflare.com/client/v4/accounts/{account}/ai", "authorization", 0, {0},
     map_workers_ai},
    {"groq", "https://api.groq.com/openai/v1", "authorization", 0, {0}, NULL},
    {"mistral", "https://api.mistral.ai", "authorization", 0, {0}, NULL},
    {"cohere", "https://api.cohere.ai", "authorization", 0, {0}, NULL},
    {"deepseek", "https://api.deepseek.com", "authorization", 0, {0}, NULL},
    {"grok", "https://api.x.ai", "authorization", 0, {0}, NULL},
    {"perplexity-ai", "https://api.perplexity.ai", "authorization", 0, {0}, NULL},
    {"openrouter", "https://openrouter.ai/api", "authorization", 0, {0}, NULL},
    {"huggingface", "https://api-inference.huggingface.co/models", "authorization", 0, {0}, NULL},
    {"replicate", "https://api.replicate.com/v1", "authorization", 0, {0}, NULL},
    {"cerebras", "https://api.cerebras.ai/v1", "authorization", 0, {0}, NULL},
    {"fireworks", "https://api.fireworks.ai/inference/v1", "authorization", 0, {0}, NULL},
    {"elevenlabs", "https://api.elevenlabs.io", "xi-api-key", 0, {0}, NULL},
    {"fal", "https://fal.run", "authorization", 0, {0}, NULL},
    {"cartesia", "https://api.cartesia.ai", "x-api-key", 0, {0}, NULL},
    {"ideogram", "https://api.ideogram.ai", "api-key", 0, {0}, NULL},
    {"deepgram", "https://api.deepgram.com", "authorization", 0, {0}, NULL},
    {"baseten", "https://api.baseten.co", "authorization", 0, {0}, NULL},
    {"parallel", "https://api.parallel.ai", "x-api-key", 0, {0}, NULL},
};

static const char *const var_names[TG_PVAR__COUNT] = {"account", "resource", "deployment", "service", "region"};

/* Bedrock services the aws-bedrock slug may reach; anything else would let a client aim at any AWS host. */
static const char *const bedrock_services[] = {"bedrock-runtime", "bedrock-agent-runtime", "bedrock"};

const tg_provider_t *tg_provider_builtins(size_t *count)
{
    *count = TG_ARRAY_SIZE(builtins);
    return builtins;
}

int tg_provider_find(tg_iovec_t slug)
{
    for (size_t i = 0; i != TG_ARRAY_SIZE(builtins); ++i)
        if (tg_iov_eq(slug, builtins[i].slug, strlen(builtins[i].slug)))
            return (int)i;
    return -1;
}

static bool is_slug_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

bool tg_provider_is_custom_slug(tg_iovec_t slug)
{
    if (!tg_iov_prefix_ci(slug, TG_LIT("custom-")) || slug.len == sizeof("custom-") - 1 || slug.len > 64)
        return false;
    if (memcmp(slug.base, "custom-", 7) != 0)
        return false;
    for (size_t i = 7; i != slug.len; ++i)
        if (!is_slug_char(slug.base[i]))
            return false;
    return true;
}

/* A DNS label: letters, digits, hyphens; not empty; at most 63 bytes. Deployment names also allow '.' and '_'. */
static bool is_host_label(tg_iovec_t v, bool deployment)
{
    if (v.len == 0 || v.len > 63)
        return false;
    for (size_t i = 0; i != v.len; ++i) {
        char c = v.base[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                  (deployment && (c == '.' || c == '_'));
        if (!ok)
            return false;
    }
    return true;
}

static int map_vertex(tg_iovec_t vars[TG_PVAR__COUNT], tg_iovec_t rest, const char **rest_prefix)
{
    (void)rest_prefix;
    /* v1/projects/{project}/locations/{region}/... : the region picks the host */
    static const char marker[] = "/locations/";
    for (size_t i = 0; i + sizeof(marker) - 1 <= rest.len; ++i) {
        if (memcmp(rest.base + i, marker, sizeof(marker) - 1) != 0)
            continue;
        const char *r = rest.base + i + sizeof(marker) - 1, *end = rest.base + rest.len;
        const char *e = memchr(r, '/', (size_t)(end - r));
        vars[TG_PVAR_REGION] = tg_iov(r, (size_t)((e != NULL ? e : end) - r));
        return 0;
    }
    return TG_E_BAD_PATH;
}

static int map_workers_ai(tg_iovec_t vars[TG_PVAR__COUNT], tg_iovec_t rest, const char **rest_prefix)
{
    (void)vars;
    /* model paths (@cf/..., @hf/...) go to the run API; v1/... (OpenAI-compatible) as they are */
    if (rest.len >= 4 && rest.base[0] == '@' && (memcmp(rest.base, "@cf/", 4) == 0 || memcmp(rest.base, "@hf/", 4) == 0))
        *rest_prefix = "run/";
    return 0;
}

const char *tg_provider_check_base_url(const char *url)
{
    const char *host;
    if (strncmp(url, "https://", 8) == 0)
        host = url + 8;
    else if (strncmp(url, "http://", 7) == 0)
        host = url + 7;
    else
        return "base_url must start with http:// or https://";
    if (*host == '\0' || *host == '/' || *host == ':' || *host == '?')
        return "base_url has no host";
    if (strpbrk(url, " \t\r\n#?\"<>\\^`|") != NULL)
        return "base_url contains a character not allowed in a URL (or a query/fragment)";
    for (const char *p = url; (p = strchr(p, '{')) != NULL;) {
        const char *e = strchr(p, '}');
        if (e == NULL)
            return "base_url has an unterminated '{'";
        size_t n = (size_t)(e - p - 1);
        bool known = false;
        for (size_t i = 0; i != TG_PVAR__COUNT; ++i)
            if (strlen(var_names[i]) == n && memcmp(var_names[i], p + 1, n) == 0)
                known = true;
        if (!known)
            return "base_url uses an unknown placeholder (known: {account}, {resource}, {deployment}, {service}, "
                   "{region})";
        p = e + 1;
    }
    return NULL;
}


/* Rejects "." and ".." segments, literal or percent-encoded, anywhere in the path. */
static bool has_dot_segment(tg_iovec_t path)
{
    size_t i = 0;
    while (i <= path.len) {
        size_t j = i;
        while (j < path.len && path.base[j] != '/')
            ++j;
        /* decode the segment's dots: '.', "%2e", "%2E" each count as one dot; anything else ends the check */
        size_t dots = 0, k = i;
        bool only_dots = true;
        while (k < j) {
            if (path.base[k] == '.') {
                ++dots, ++k;
            } else if (k + 2 < j + 1 && j - k >= 3 && path.base[k] == '%' && path.base[k + 1] == '2' &&
                       (path.base[k + 2] == 'e' || path.base[k + 2] == 'E')) {
                ++dots, k += 3;
            } else {
                only_dots = false;
                break;
            }
        }
        if (only_dots && (dots == 1 || dots == 2))
            return true;
        i = j + 1;
    }
    return false;
}

/* Length of a trailing "/vN" (N digits) segment of `base`, including the slash; 0 when there is none. */
static size_t version_suffix(const char *base, size_t len)
{
    size_t i = len;
    while (i != 0 && base[i - 1] >= '0' && base[i - 1] <= '9')
        --i;
    if (i == len || i < 2 || base[i - 1] != 'v' || base[i - 2] != '/')
        return 0;
    return len - (i - 2);
}

int tg_provider_build_url(const tg_provider_t *p, const char *base_url, tg_iovec_t account, tg_iovec_t rest,
                          tg_iovec_t query, tg_buf_t *out)
{
    tg_iovec_t vars[TG_PVAR__COUNT];
    const char *rest_prefix = "";
    memset(vars, 0, sizeof(vars));
    vars[TG_PVAR_ACCOUNT] = account;

    if (has_dot_segment(rest))
        return TG_E_BAD_PATH;
    if (p != NULL) {
        for (unsigned i = 0; i != p->num_path_vars; ++i) {
            if (rest.len == 0)
                return TG_E_BAD_PATH;
            vars[p->path_vars[i]] = tg_iov_split(&rest, '/', NULL);
        }
        if (p->map != NULL && p->map(vars, rest, &rest_prefix) != 0)
            return TG_E_BAD_PATH;
        for (unsigned i = 0; i != TG_PVAR__COUNT; ++i) {
            if (i == TG_PVAR_ACCOUNT || vars[i].base == NULL)
                continue;
            if (!is_host_label(vars[i], i == TG_PVAR_DEPLOYMENT))
                return TG_E_BAD_PATH;
        }
        if (p->num_path_vars != 0 && p->path_vars[0] == TG_PVAR_SERVICE) {
            bool known = false;
            for (size_t i = 0; i != TG_ARRAY_SIZE(bedrock_services); ++i)
                if (tg_iov_eq(vars[TG_PVAR_SERVICE], bedrock_services[i], strlen(bedrock_services[i])))
                    known = true;
            if (!known)
                return TG_E_BAD_PATH;
        }
        /* vertex's "global" location has no regional host */
        if (p->map == map_vertex && tg_iov_eq(vars[TG_PVAR_REGION], TG_LIT("global")) &&
            strcmp(base_url, p->base_url) == 0)
            base_url = "https://aiplatform.googleapis.com";
    }

    /* substitute the template */
    size_t start = out->len;
    for (const char *s = base_url; *s != '\0';) {
        const char *brace = strchr(s, '{');
        if (brace == NULL) {
            if (tg_buf_append_str(out, s) != 0)
                return TG_E_BAD_PATH;
            break;
        }
        if (tg_buf_append(out, s, (size_t)(brace - s)) != 0)
            return TG_E_BAD_PATH;
        const char *close = strchr(brace, '}');
        TG_BUG_ON(close == NULL); /* templates are validated at load */
        size_t n = (size_t)(close - brace - 1);
        size_t vi = 0;
        while (vi != TG_PVAR__COUNT && !(strlen(var_names[vi]) == n && memcmp(var_names[vi], brace + 1, n) == 0))
            ++vi;
        TG_BUG_ON(vi == TG_PVAR__COUNT);
        if (vars[vi].base == NULL || vars[vi].len == 0)
            return TG_E_BAD_PATH;
        if (tg_buf_append(out, vars[vi].base, vars[vi].len) != 0)
            return TG_E_BAD_PATH;
        s = close + 1;
    }
    while (out->len > start && out->base[out->len - 1] == '/')
        --out->len;

    /* "/v1" + "v1/chat" must not become "/v1/v1/chat" */
    size_t vs = version_suffix(out->base + start, out->len - start);
    if (vs != 0 && *rest_prefix == '\0') {
        const char *seg = out->base + out->len - vs + 1;
        size_t seglen = vs - 1;
        if (rest.len >= seglen && memcmp(rest.base, seg, seglen) == 0 && (rest.len == seglen || rest.base[seglen] == '/')) {
            rest.base += seglen;
            rest.len -= seglen;
            if (rest.len != 0) {
                ++rest.base;
                --rest.len;
            }
        }
    }

    if (tg_buf_append(out, "/", 1) != 0 || tg_buf_append_str(out, rest_prefix) != 0 ||
        tg_buf_append(out, rest.base, rest.len) != 0)
        return TG_E_BAD_PATH;
    if (query.len != 0 && (tg_buf_append(out, "?", 1) != 0 || tg_buf_append(out, query.base, query.len) != 0))
        return TG_E_BAD_PATH;
    return 0;
}
