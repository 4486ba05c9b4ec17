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

#include "tollgate/http.h"

void tg_router_on_request(tg_req_t *req, void *data);
void tg_router_on_done(tg_req_t *req, void *data);

#endif
