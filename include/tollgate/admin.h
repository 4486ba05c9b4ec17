/*
 * Operations endpoints: GET /healthz (the process is alive), GET /readyz (it accepts traffic; 503 while
 * draining), GET /metrics (Prometheus text, summed over all workers); and the management API under /client/v4/
 * (logs and analytics, src/admin/logs_api.c; doc/logs.md). Worker thread only.
 */
#ifndef TOLLGATE_ADMIN_H
#define TOLLGATE_ADMIN_H

#include "tollgate/http.h"
#include "tollgate/worker.h"

/* Answers the request if its path is an operations endpoint and returns 0; TG_E_DECLINED otherwise. */
int tg_admin_handle_ops(tg_req_t *req, tg_worker_t *w);
/* Answers the request if its path is under /client/v4/ and returns 0; TG_E_DECLINED otherwise. */
int tg_admin_handle_api(tg_req_t *req, tg_worker_t *w);

#endif
