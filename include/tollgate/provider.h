/*
 * Provider registry: which upstream a provider slug stands for and how a provider-native path maps onto it.
 *
 * A provider is a row of static data plus an optional mapping hook (nginx upstream ops, kept to what passthrough
 * needs today; usage extraction and error shapes join the table with the logs and unified-API work). Base URLs are
 * templates: `{name}` placeholders are filled from the request, so one mechanism covers the reference service's
 * host mappings:
 *
 *   azure-openai      {resource}/{deployment}/tail  -> https://{resource}.openai.azure.com/openai/deployments/{deployment}/tail
 *   aws-bedrock       {service}/{region}/tail       -> https://{service}.{region}.amazonaws.com/tail
 *   google-vertex-ai  v1/projects/p/locations/{region}/... -> https://{region}-aiplatform.googleapis.com/v1/...
 *   workers-ai        @cf/model                     -> https://api.cloudflare.com/client/v4/accounts/{account}/ai/run/@cf/model
 *
 * A configured base_url override is a template too, so tests can point a host-mapping provider at a stand-in and
 * still see the variables land in the path. Pure functions; any thread.
 */
#ifndef TOLLGATE_PROVIDER_H
#define TOLLGATE_PROVIDER_H

#include "tollgate/buf.h"
#include "tollgate/common.h"

/* Template variables a base URL may use. */
enum {
    TG_PVAR_ACCOUNT,    /* the gateway's account */
    TG_PVAR_RESOURCE,   /* azure-openai: first path segment */
    TG_PVAR_DEPLOYMENT, /* azure-openai: second path segment */
    TG_PVAR_SERVICE,    /* aws-bedrock: first path segment */
    TG_PVAR_REGION,     /* aws-bedrock: second segment; google-vertex-ai: from locations/{region} */
    TG_PVAR__COUNT
};

typedef struct st_tg_provider_t {
    const char *slug;
    /* Default upstream base URL template, without a trailing slash. */
    const char *base_url;
    /* The header the provider reads its credential from (lower case), for documentation and cache keys. */
    const char *auth_header;
    /* Number of leading path segments consumed into variables (azure, bedrock), and which variables they fill. */
    unsigned num_path_vars;
    unsigned path_vars[2];
    /* Optional extra mapping run after the consumed segments: may fill variables from the rest of the path
     * (`rest`: after the consumed segments, no leading slash) and name a static prefix to put before it
     * (workers-ai: "run/" before "@cf/..."). Returns 0 or TG_E_BAD_PATH. */
    int (*map)(tg_iovec_t vars[TG_PVAR__COUNT], tg_iovec_t rest, const char **rest_prefix);
} tg_provider_t;

/* The built-in providers (SPEC.md section 3), in a fixed order: an index is stable for the life of the process. */
const tg_provider_t *tg_provider_builtins(size_t *count);
/* Index of a built-in slug, or -1. */
int tg_provider_find(tg_iovec_t slug);
/* True for "custom-{slug}" with a non-empty slug of [a-z0-9_-]. */
bool tg_provider_is_custom_slug(tg_iovec_t slug);

/*
 * Validates a base URL template for configuration: http:// or https://, a host, only known placeholders.
 * Returns NULL when valid, else a static message saying what is wrong.
 */
const char *tg_provider_check_base_url(const char *url);

/*
 * Builds the upstream URL for a provider-native request into `out` (appended, not NUL-terminated).
 *
 * `p` is the provider (NULL for a custom provider, which has no variables or hook), `base_url` the template to use
 * (the override or p->base_url), `account` the gateway's account, `rest` the path after the provider slug without
 * its leading slash (may be empty), `query` the query string without '?' (may be empty). The rest is appended
 * verbatim, never decoded; when the base URL already ends in a version segment such as "/v1" and the rest starts
 * with the same segment, it is not repeated ("/openai/v1/chat/completions" and "/openai/chat/completions" reach the
 * same URL). Returns 0, or TG_E_BAD_PATH when the path lacks the segments the provider needs, a variable holds
 * characters a host name cannot, or a segment is "." or ".." (which would climb out of the base path).
 */
int tg_provider_build_url(const tg_provider_t *p, const char *base_url, tg_iovec_t account, tg_iovec_t rest,
                          tg_iovec_t query, tg_buf_t *out);

#endif
