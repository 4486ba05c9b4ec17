/*
 * The price table (pricing.h): a sorted array of (provider, model) -> price, plus provider aliases.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include "tollgate/pricing.h"

/* data/pricing.json, embedded at build time (scripts/embed.sh) */
extern const unsigned char tg_pricing_json[];
extern const size_t tg_pricing_json_len;

typedef struct {
    char *provider, *model;
    tg_price_t price;
} entry_t;

typedef struct {
    char *provider, *target;
} alias_t;

struct st_tg_pricing_t {
    entry_t *entries;
    size_t n, cap;
    alias_t *aliases;
    size_t num_aliases;
};

static int cmp_key(const char *pa, const char *ma, const char *pb, const char *mb)
{
    int c = strcmp(pa, pb);
    return c != 0 ? c : strcmp(ma, mb);
}

/* Index of the first entry not less than (provider, model). */
static size_t lower_bound(const tg_pricing_t *t, const char *provider, const char *model)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_key(t->entries[mid].provider, t->entries[mid].model, provider, model) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void tg_pricing_set(tg_pricing_t *t, const char *provider, const char *model, const tg_price_t *price)
{
    size_t i = lower_bound(t, provider, model);
    if (i < t->n && cmp_key(t->entries[i].provider, t->entries[i].model, provider, model) == 0) {
        t->entries[i].price = *price;
        return;
    }
    if (t->n == t->cap) {
        t->cap = t->cap != 0 ? t->cap * 2 : 256;
        t->entries = tg_realloc(t->entries, t->cap * sizeof(*t->entries));
    }
    memmove(t->entries + i + 1, t->entries + i, (t->n - i) * sizeof(*t->entries));
    t->entries[i] = (entry_t){tg_strdup(provider), tg_strdup(model), *price};
    t->n++;
}

size_t tg_pricing_count(const tg_pricing_t *t)
{
    return t->n;
}

void tg_pricing_entry(const tg_pricing_t *t, size_t i, const char **provider, const char **model)
{
    *provider = t->entries[i].provider;
    *model = t->entries[i].model;
}

void tg_pricing_alias(tg_pricing_t *t, const char *provider, const char *target)
{
    for (size_t i = 0; i != t->num_aliases; ++i) {
        if (strcmp(t->aliases[i].provider, provider) == 0) {
            free(t->aliases[i].target);
            t->aliases[i].target = tg_strdup(target);
            return;
        }
    }
    t->aliases = tg_realloc(t->aliases, (t->num_aliases + 1) * sizeof(*t->aliases));
    t->aliases[t->num_aliases++] = (alias_t){tg_strdup(provider), tg_strdup(target)};
}

void tg_pricing_free(tg_pricing_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i != t->n; ++i) {
        free(t->entries[i].provider);
        free(t->entries[i].model);
    }
    for (size_t i = 0; i != t->num_aliases; ++i) {
        free(t->aliases[i].provider);
        free(t->aliases[i].target);
    }
    free(t->entries);
    free(t->aliases);
    free(t);
}

static const char *resolve_alias(const tg_pricing_t *t, const char *provider)
{
    for (int hops = 0; hops < 4; ++hops) {
        const char *next = NULL;
        for (size_t i = 0; i != t->num_aliases && next == NULL; ++i)
            if (strcmp(t->aliases[i].provider, provider) == 0)
                next = t->aliases[i].target;
        if (next == NULL)
            break;
        provider = next;
    }
    return provider;
}

static bool find_exact(const tg_pricing_t *t, const char *provider, const char *model, tg_price_t *out)
{
    size_t i = lower_bound(t, provider, model);
    if (i < t->n && cmp_key(t->entries[i].provider, t->entries[i].model, provider, model) == 0) {
        *out = t->entries[i].price;
        return true;
    }
    return false;
}

static bool all_digits(const char *p, size_t n)
{
    for (size_t i = 0; i != n; ++i)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return true;
}

/* Strips one provider decoration from the end of name[0..*len): a date, "-latest". True when it did. */
static bool strip_suffix(const char *name, size_t *len)
{
    size_t n = *len;
    /* -YYYY-MM-DD */
    if (n > 11 && name[n - 11] == '-' && name[n - 6] == '-' && name[n - 3] == '-' && all_digits(name + n - 10, 4) &&
        all_digits(name + n - 5, 2) && all_digits(name + n - 2, 2)) {
        *len = n - 11;
        return true;
    }
    /* -YYYYMMDD */
    if (n > 9 && name[n - 9] == '-' && all_digits(name + n - 8, 8) && name[n - 8] == '2') {
        *len = n - 9;
        return true;
    }
    if (n > 7 && memcmp(name + n - 7, "-latest", 7) == 0) {
        *len = n - 7;
        return true;
    }
    return false;
}

static bool find_normalised(const tg_pricing_t *t, const char *provider, const char *model, tg_price_t *out)
{
    if (find_exact(t, provider, model, out))
        return true;
    if (strncmp(model, "models/", 7) == 0)
        model += 7;
    /* Bedrock cross-region inference profiles: "us.anthropic.claude-..." */
    static const char *const regions[] = {"us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au."};
    for (size_t i = 0; i != TG_ARRAY_SIZE(regions); ++i)
        if (strncmp(model, regions[i], strlen(regions[i])) == 0 && strchr(model + strlen(regions[i]), '.') != NULL)
            model += strlen(regions[i]);
    char name[256];
    size_t len = strlen(model);
    if (len >= sizeof(name))
        return false;
    memcpy(name, model, len + 1);
    if (find_exact(t, provider, name, out))
        return true;
    while (strip_suffix(name, &len)) {
        name[len] = '\0';
        if (find_exact(t, provider, name, out))
            return true;
    }
    /* a family's name without the "-latest" the table lists it by ("mistral-large") */
    if (len + 7 < sizeof(name)) {
        memcpy(name + len, "-latest", 8);
        if (find_exact(t, provider, name, out))
            return true;
    }
    return false;
}

/* An aggregator's spelling of a version, "claude-3.5-sonnet" or "claude-sonnet-4.5", as its vendor writes it
 * ("claude-3-5-sonnet"): a dot between digits becomes a dash. False when there is none, or the name is too long. */
static bool dashed_version(const char *model, char *out, size_t outsz)
{
    size_t n = strlen(model);
    bool changed = false;
    if (n >= outsz)
        return false;
    for (size_t i = 0; i <= n; ++i) {
        bool dot = model[i] == '.' && i != 0 && model[i - 1] >= '0' && model[i - 1] <= '9' && model[i + 1] >= '0' &&
                   model[i + 1] <= '9';
        out[i] = dot ? '-' : model[i];
        changed |= dot;
    }
    return changed;
}

bool tg_pricing_find(const tg_pricing_t *t, const char *provider, const char *model, tg_price_t *out)
{
    if (t == NULL || provider == NULL || model == NULL || model[0] == '\0')
        return false;
    /* a provider that uses another's table (azure-openai: openai's) may still have entries of its own, from the
     * config: those come first */
    if (find_normalised(t, provider, model, out))
        return true;
    const char *target = resolve_alias(t, provider);
    if (target != provider && find_normalised(t, target, model, out))
        return true;
    provider = target;
    /* openrouter and other aggregators: "openai/gpt-4o" is openai's gpt-4o */
    const char *slash = strchr(model, '/');
    if (strcmp(provider, "openrouter") == 0 && slash != NULL) {
        static const struct {
            const char *vendor, *provider;
        } vendors[] = {{"openai", "openai"},         {"anthropic", "anthropic"}, {"google", "google-ai-studio"},
                       {"mistralai", "mistral"},     {"deepseek", "deepseek"},   {"x-ai", "grok"},
                       {"perplexity", "perplexity-ai"}, {"cohere", "cohere"}};
        for (size_t i = 0; i != TG_ARRAY_SIZE(vendors); ++i)
            if ((size_t)(slash - model) == strlen(vendors[i].vendor) &&
                memcmp(model, vendors[i].vendor, (size_t)(slash - model)) == 0) {
                const char *vendor = resolve_alias(t, vendors[i].provider);
                char dashed[256];
                return find_normalised(t, vendor, slash + 1, out) ||
                       (dashed_version(slash + 1, dashed, sizeof(dashed)) && find_normalised(t, vendor, dashed, out));
            }
    }
    return false;
}

double tg_cost(const tg_price_t *p, const tg_usage_t *u)
{
    if (u->input < 0)
        return -1;
    int64_t cached = u->cached, write = u->cache_write;
    int64_t plain = u->input - cached - write;
    if (plain < 0)
        plain = 0;
    int64_t out = u->output > 0 ? u->output : 0;
    return (double)plain * p->input + (double)cached * p->cached_input + (double)write * p->cache_write +
           (double)out * p->output;
}

/* ---- the shipped table ------------------------------------------------------------------------------------ */

static bool price_field(json_t *o, const char *key, double *out)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL)
        return false;
    *out = json_number_value(v) / 1e6;
    return true;
}

tg_pricing_t *tg_pricing_builtin(tg_buf_t *errs)
{
    tg_pricing_t *t = tg_calloc(1, sizeof(*t));
    json_error_t jerr;
    json_t *root = json_loadb((const char *)tg_pricing_json, tg_pricing_json_len, 0, &jerr);
    if (!json_is_object(root)) {
        tg_buf_appendf(errs, "data/pricing.json:%d:%d: %s\n", jerr.line, jerr.column, jerr.text);
        json_decref(root);
        tg_pricing_free(t);
        return NULL;
    }
    const char *provider, *model;
    json_t *models, *p;
    json_object_foreach(root, provider, models)
    {
        if (provider[0] == '_')
            continue;
        if (json_is_string(models)) {
            tg_pricing_alias(t, provider, json_string_value(models));
            continue;
        }
        json_object_foreach(models, model, p)
        {
            tg_price_t price = {0, 0, 0, 0};
            price_field(p, "input", &price.input);
            price_field(p, "output", &price.output);
            if (!price_field(p, "cached_input", &price.cached_input))
                price.cached_input = price.input;
            if (!price_field(p, "cache_write", &price.cache_write))
                price.cache_write = price.input;
            tg_pricing_set(t, provider, model, &price);
        }
    }
    json_decref(root);
    return t;
}

/* ---- cf-aig-custom-cost ----------------------------------------------------------------------------------- */

int tg_pricing_parse_custom(tg_iovec_t value, tg_price_t *out, const char **why)
{
    json_error_t jerr;
    json_t *o = json_loadb(value.base, value.len, JSON_REJECT_DUPLICATES, &jerr);
    int rc = -1;
    if (!json_is_object(o)) {
        *why = "must be a JSON object such as {\"per_token_in\":0.000001,\"per_token_out\":0.000002}";
        goto out;
    }
    static const char *const keys[] = {"per_token_in", "per_token_out", "per_cache_read_token",
                                       "per_cache_write_token"};
    double v[4];
    bool have[4] = {false, false, false, false};
    const char *key;
    json_t *x;
    json_object_foreach(o, key, x)
    {
        size_t k = 0;
        while (k != 4 && strcmp(key, keys[k]) != 0)
            ++k;
        if (k == 4) {
            *why = "has an unknown key (allowed: per_token_in, per_token_out, per_cache_read_token, "
                   "per_cache_write_token)";
            goto out;
        }
        if (!json_is_number(x) || !isfinite(json_number_value(x)) || json_number_value(x) < 0) {
            *why = "prices must be non-negative numbers (USD per token)";
            goto out;
        }
        v[k] = json_number_value(x);
        have[k] = true;
    }
    if (!have[0] || !have[1]) {
        *why = "needs both per_token_in and per_token_out";
        goto out;
    }
    out->input = v[0];
    out->output = v[1];
    out->cached_input = have[2] ? v[2] : v[0];
    out->cache_write = have[3] ? v[3] : v[0];
    rc = 0;
out:
    json_decref(o);
    return rc;
}
