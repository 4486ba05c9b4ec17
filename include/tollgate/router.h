/*
 * The request pipeline of a worker: routes a complete request to the handler for its path, and when it is over,
 * writes the access-log line and the request metrics. Today the routes are the operations endpoints (/healthz,
 * /readyz, /metrics) and provider-native passthrough (/v1/{account}/{gateway}/{provider}/...); the unified API,
 * the universal endpoint and the management API join here as handlers of their own.
 *
 * Worker thread only; `data` is the tg_worker_t.
 */
#ifndef TOLLGATE_ROUTER_H
#define TOLLGATE_ROUTER_H

#include "tollgate/config.h"
#include "tollgate/http.h"
#include "tollgate/provider.h"

void tg_router_on_request(tg_req_t *req, void *data);
void tg_router_on_done(tg_req_t *req, void *data);

/* The provider a slug names in `cfg`: a built-in one (*prov set) or a configured custom-{name} (*prov NULL), its
 * base URL template and its slug as a string that lives as long as `cfg`. Returns 0, or -1 for an unknown slug. */
int tg_router_find_provider(const tg_config_t *cfg, tg_iovec_t slug, const tg_provider_t **prov, const char **base_url,
                            const char **slug_out);
/* The request's cf-aig-request-timeout in milliseconds, or the configured first-byte timeout; -1 when malformed. */
int64_t tg_router_request_timeout(const tg_req_t *req);

#endif
