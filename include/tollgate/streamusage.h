/*
 * Usage for OpenAI-shaped streams that did not ask for it.
 *
 * An OpenAI chat completion streamed without stream_options.include_usage carries no token counts at all, so the
 * log would have none. For the providers known to accept the option, the gateway asks for it
 * (tg_streamusage_inject) and then takes out of the stream what the client did not ask for
 * (tg_streamusage_strip_*): the extra final chunk ("choices": [] with the usage) and the "usage": null member
 * that every other chunk then carries. The client receives, byte for byte, the stream it would have received
 * without the option; the usage parser sees the provider's stream as it came.
 *
 * The strip filter holds at most one SSE event at a time (events are what the client parses anyway, so no
 * event is delayed past its own end); an event larger than TG_STREAMUSAGE_MAX_EVENT makes it give up and pass
 * everything through unchanged. Worker thread only.
 */
#ifndef TOLLGATE_STREAMUSAGE_H
#define TOLLGATE_STREAMUSAGE_H

#include "tollgate/buf.h"
#include "tollgate/mem.h"

#define TG_STREAMUSAGE_MAX_EVENT (1u << 20)

/* Does `provider` (a built-in slug) accept stream_options.include_usage on chat completions? */
bool tg_streamusage_provider_ok(const char *provider);

/*
 * If `body` is a chat completion request with "stream": true that does not ask for usage, sets *out to a copy
 * (in `pool`) that does, and returns true. Otherwise returns false and leaves *out alone. Only the option is
 * added or changed; every other byte of the body stays as it was.
 */
bool tg_streamusage_inject(tg_mem_pool_t *pool, tg_iovec_t body, tg_iovec_t *out);

typedef struct st_tg_streamusage_strip_t {
    tg_buf_t event;   /* the event being collected */
    size_t scanned;   /* bytes of `event` already searched for its end */
    bool passthrough; /* gave up (an oversized event): bytes go through as they are */
} tg_streamusage_strip_t;

void tg_streamusage_strip_init(tg_streamusage_strip_t *f);
void tg_streamusage_strip_dispose(tg_streamusage_strip_t *f);
/* Feeds the provider's bytes; appends what the client must receive to `out`. */
void tg_streamusage_strip_feed(tg_streamusage_strip_t *f, const char *p, size_t n, tg_buf_t *out);
/* The stream ended: appends whatever is held (an unterminated last event, unchanged). */
void tg_streamusage_strip_finish(tg_streamusage_strip_t *f, tg_buf_t *out);

#endif
