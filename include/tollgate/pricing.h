/*
 * Prices and cost: the table shipped in data/pricing.json (compiled into the binary), merged with the config
 * file's "pricing" key, and the arithmetic that turns a usage report into US dollars.
 *
 * A table is built once per config snapshot and is immutable afterwards, so any thread may read it.
 *
 * Cost rule (as the reference service's custom costs): cached prompt tokens are priced at the cached rate and
 * written ones at the cache-write rate, and neither is counted again at the input rate; a missing cached or
 * cache-write rate is the input rate. A usage report with no prompt count has no cost (-1, logged as null),
 * which is not the same as 0.
 */
#ifndef TOLLGATE_PRICING_H
#define TOLLGATE_PRICING_H

#include "tollgate/buf.h"
#include "tollgate/usage.h"

/* USD per token. */
typedef struct st_tg_price_t {
    double input, output, cached_input, cache_write;
} tg_price_t;

typedef struct st_tg_pricing_t tg_pricing_t;

/* The shipped table. NULL (and a message in errs) only if the embedded data is broken. */
tg_pricing_t *tg_pricing_builtin(tg_buf_t *errs);
void tg_pricing_free(tg_pricing_t *t);
/* Sets one model's price (USD per token), replacing any earlier one. */
void tg_pricing_set(tg_pricing_t *t, const char *provider, const char *model, const tg_price_t *price);
/* Makes `provider` use `target`'s models ("azure-openai" -> "openai"). */
void tg_pricing_alias(tg_pricing_t *t, const char *provider, const char *target);

/*
 * The price of `model` at `provider`: the exact name first, then the name without what providers add to it —
 * a "models/" prefix, a date suffix (-2024-08-06, -20241022), "-latest", a Bedrock region prefix ("us.") — and,
 * for openrouter, "vendor/model" looked up at that vendor. False when nothing matches: the cost is unknown.
 */
bool tg_pricing_find(const tg_pricing_t *t, const char *provider, const char *model, tg_price_t *out);

/* The table's entries in (provider, model) order, for listing: the provider and model of entry i < count.
 * Aliased providers have no entries of their own. */
size_t tg_pricing_count(const tg_pricing_t *t);
void tg_pricing_entry(const tg_pricing_t *t, size_t i, const char **provider, const char **model);

/* The cost of `u` at `p` in USD, or -1 when the usage has no prompt count. */
double tg_cost(const tg_price_t *p, const tg_usage_t *u);

/*
 * Parses a cf-aig-custom-cost header: {"per_token_in":n,"per_token_out":n,"per_cache_read_token":n,
 * "per_cache_write_token":n} (USD per token; the two cache rates optional). Returns 0, or -1 with a reason.
 */
int tg_pricing_parse_custom(tg_iovec_t value, tg_price_t *out, const char **why);

#endif
