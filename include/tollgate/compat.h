/*
 * The unified API (SPEC.md section 3): POST /v1/{account}/{gateway}/compat/chat/completions with
 * "model": "{provider}/{model}" reaches any provider with an OpenAI Chat Completions body; POST .../compat/v1/messages
 * does the same for clients of Anthropic's Messages API; POST .../compat/embeddings forwards OpenAI embeddings
 * requests; GET .../compat/models lists the models of the price table under their unified names.
 *
 * The provider prefix picks the upstream; the rest of the string is the model sent there. An OpenAI-shaped
 * provider gets the client's body with only the model's value replaced (every other byte as sent) at its own
 * chat-completions path; a provider with another dialect gets the body translated (xlate.h) and its answer
 * translated back, streamed or whole. The response carries cf-aig-provider and cf-aig-model, the log records the
 * provider and model that served, and caching, logging and timeouts apply as on the provider-native path (the
 * cache key names the unified endpoint, so a translated answer is never served to a native request).
 *
 * Errors of the gateway's own: a body that is not a JSON object with a string "model" of the form
 * "{provider}/{model}" -> 400 code 2019; an unknown provider, or one the unified API cannot reach -> 400 code
 * 2008; a request member the provider cannot honour -> 400 code 2019 naming it. Worker thread only.
 */
#ifndef TOLLGATE_COMPAT_H
#define TOLLGATE_COMPAT_H

#include "tollgate/config.h"
#include "tollgate/http.h"
#include "tollgate/worker.h"

/* Serves a request for `endpoint` (the path after ".../compat/") on gateway `gw`. Takes over `req`. */
void tg_compat_handle(tg_req_t *req, tg_worker_t *w, const tg_gateway_t *gw, tg_iovec_t endpoint);

/* The provider and model of a unified-API model string: "openai/gpt-4o" -> "openai", "gpt-4o"; the model is
 * everything after the first '/' ("workers-ai/@cf/meta/llama-3.1-8b-instruct"). Returns 0, or -1 when there is no
 * '/' or either side is empty. */
int tg_compat_split_model(tg_iovec_t model, tg_iovec_t *provider, tg_iovec_t *name);

#endif
