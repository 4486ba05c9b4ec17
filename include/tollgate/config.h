/*
 * Configuration: the JSON file of SPEC.md section 2 (with // and block comments and "env:NAME" values), turned into
 * an immutable, reference-counted snapshot.
 *
 * A snapshot is never modified after loading. Workers hold a reference for as long as they use it (a request takes
 * one at its start), and SIGHUP swaps in a new snapshot, so a reload never changes the settings under a request in
 * flight (h2o's config, the cache entries of h2o cache.h). Loading runs on the main thread only; retain and release
 * are thread-safe.
 *
 * Errors name the file, line, column and key ("tollgate.json:12:5: unknown key \"colect_logs\" in gateways[0]"),
 * as h2o_configurator_errprintf does, and loading reports every error it finds, not just the first.
 */
#ifndef TOLLGATE_CONFIG_H
#define TOLLGATE_CONFIG_H

#include <stdatomic.h>
#include "tollgate/buf.h"
#include "tollgate/common.h"
#include "tollgate/pricing.h"
#include "tollgate/provider.h"

typedef enum { TG_RL_FIXED, TG_RL_SLIDING } tg_rl_technique_t;
typedef enum { TG_LOGS_DELETE_OLDEST, TG_LOGS_STOP_INSERTING } tg_log_strategy_t;

/* A gateway, with the field names of the reference service's management API. */
typedef struct st_tg_gateway_t {
    char *account;
    char *id;
    bool collect_logs;
    uint32_t cache_ttl; /* seconds; 0 = off unless a request asks */
    bool cache_invalidate_on_update;
    int64_t rate_limiting_limit;    /* -1 = null */
    int64_t rate_limiting_interval; /* seconds; -1 = null */
    tg_rl_technique_t rate_limiting_technique;
    bool authentication;
    int64_t log_management; /* max records; -1 = null (no cap) */
    tg_log_strategy_t log_management_strategy;
} tg_gateway_t;

/* True when two gateways' settings (everything but account and id) are the same. */
bool tg_gateway_same_settings(const tg_gateway_t *a, const tg_gateway_t *b);

/* A custom provider ("custom-{slug}"), or the base_url override of a built-in one. */
typedef struct st_tg_provider_conf_t {
    char *slug;
    char *base_url;
    int builtin_index; /* index into tg_provider_builtins(), or -1 for custom-{slug} */
} tg_provider_conf_t;

typedef struct st_tg_config_t {
    atomic_int _refcnt;
    char *source; /* the file it was read from, or "(built-in defaults)" */

    char *listen;      /* "host:port" as written */
    char *listen_host; /* host part, brackets removed for IPv6 */
    uint16_t listen_port;
    unsigned workers; /* 0 = one per core */
    char *data_dir;
    char *admin_token; /* NULL when not set */
    bool access_log;
    bool upstream_fast_http1; /* cleartext upstreams use the lean HTTP/1.1 client (false: libcurl for all) */
    char *upstream_ca_file;   /* PEM bundle to verify upstream TLS with, instead of the system's; NULL = system */

    /* limits on what a client may send (SPEC.md section 6: every one answers a 4xx) */
    uint64_t max_request_body;
    uint32_t max_header_size; /* request line + headers, bytes */
    uint32_t max_headers;
    uint32_t max_url_length;
    uint32_t max_connections;     /* per process; split across workers */
    uint32_t max_response_buffer; /* bytes queued for one slow client before the upstream is paused */

    /* timeouts, in milliseconds */
    uint64_t client_header_timeout; /* first byte to end of headers */
    uint64_t client_body_timeout;   /* between two reads of the body */
    uint64_t keepalive_timeout;     /* idle between requests */
    uint64_t send_timeout;          /* a client that does not read what we have queued */
    uint64_t upstream_connect_timeout;
    uint64_t upstream_first_byte_timeout; /* request sent to first response byte; cf-aig-request-timeout overrides */
    uint64_t upstream_idle_timeout;       /* between two reads of an upstream body */
    uint64_t drain_timeout;               /* SIGTERM: how long in-flight requests get to finish */

    /* request logs (doc/logs.md) */
    uint32_t log_queue_size;   /* records waiting for the writer before new ones are dropped (and counted) */
    uint64_t log_queue_memory; /* bytes of bodies waiting for the writer, same rule */
    uint64_t log_max_body;     /* a request or response body larger than this is not stored (the record says so) */
    tg_pricing_t *pricing;     /* the shipped price table merged with "pricing" */

    /* the response cache (doc/cache.md) */
    uint64_t cache_max_memory; /* the in-memory tier's bytes (LRU) */
    uint64_t cache_max_disk;   /* the persistent tier's bytes (oldest evicted first) */
    uint64_t cache_max_entry;  /* an answer larger than this is relayed but not stored */

    /* every built-in provider's effective base URL, indexed like tg_provider_builtins() */
    char **builtin_base_urls;
    size_t num_builtins;
    /* custom providers, sorted by slug */
    tg_provider_conf_t *customs;
    size_t num_customs;
    /* gateways, sorted by (account, id) */
    tg_gateway_t *gateways;
    size_t num_gateways;
} tg_config_t;

/*
 * Loads and validates a config file. On success returns a snapshot with one reference. On failure returns NULL
 * and appends to `errs` one line per problem, each "file:line:col: message" (or "file: message" when the file
 * cannot be read).
 */
tg_config_t *tg_config_load_file(const char *path, tg_buf_t *errs);
/* Same, from text in memory; `name` stands for the file name in messages. */
tg_config_t *tg_config_load_text(const char *text, size_t len, const char *name, tg_buf_t *errs);
/* The configuration with no file: 127.0.0.1:8787, ./tollgate-data, gateway local/default, public base URLs. */
tg_config_t *tg_config_defaults(void);

/* Reference counting; the last release frees the snapshot. Any thread. */
tg_config_t *tg_config_retain(tg_config_t *c);
void tg_config_release(tg_config_t *c);

/* Gateway lookup by account and id; NULL when the config has no such gateway. */
const tg_gateway_t *tg_config_find_gateway(const tg_config_t *c, tg_iovec_t account, tg_iovec_t id);
/* Custom provider lookup by full slug ("custom-acme"); NULL when not configured. */
const tg_provider_conf_t *tg_config_find_custom(const tg_config_t *c, tg_iovec_t slug);

/* Sets listen_host/listen_port from "host:port" ("[::1]:8787" for IPv6). Returns NULL or a static error message. */
const char *tg_config_set_listen(tg_config_t *c, const char *listen);

#endif
