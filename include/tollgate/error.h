/*
 * The one error space of Tollgate, from one X-macro table (libuv UV_ERRNO_MAP).
 *
 * Functions return 0 on success or a negative TG_E_* code. Each row names the HTTP status and the gateway error
 * code (SPEC.md section 6) that a request failing with it answers, so an error found deep in a module turns into
 * the right envelope without a second table. Codes 2001..2099 are the reference service's; 2100..2199 are
 * Tollgate's own (HTTP-level faults the reference service does not number); see doc/errors.md.
 *
 * Rows: X(NAME, http_status, gateway_code, default message). http_status 0 marks internal codes that never reach a
 * client.
 */
#ifndef TOLLGATE_ERROR_H
#define TOLLGATE_ERROR_H

#define TG_ERRNO_MAP(X)                                                                                               \
    X(AGAIN, 0, 0, "operation would block")                                                                            \
    X(DECLINED, 0, 0, "not handled here")                                                                              \
    X(TOOBIG, 0, 0, "size limit exceeded")                                                                             \
    X(CLOSED, 0, 0, "connection closed")                                                                               \
    X(CONFIG, 0, 0, "invalid configuration")                                                                           \
    X(IO, 0, 0, "I/O error")                                                                                           \
    X(BAD_REQUEST, 400, 2100, "Malformed HTTP request")                                                               \
    X(URL_TOO_LONG, 414, 2101, "Request URL is too long")                                                             \
    X(HEADERS_TOO_LARGE, 431, 2102, "Request headers are too large")                                                  \
    X(TOO_MANY_HEADERS, 431, 2103, "Too many request headers")                                                        \
    X(BODY_TOO_LARGE, 413, 2104, "Request body is too large")                                                         \
    X(CLIENT_TIMEOUT, 408, 2105, "Request was not received in time")                                                  \
    X(NOT_FOUND, 404, 2106, "No such endpoint")                                                                        \
    X(METHOD_NOT_ALLOWED, 405, 2107, "Method not allowed on this endpoint")                                           \
    X(EXPECTATION_FAILED, 417, 2108, "Unsupported Expect header")                                                     \
    X(BAD_HEADER, 400, 2109, "Malformed request header")                                                              \
    X(BAD_PATH, 400, 2110, "Malformed request path")                                                                  \
    X(DRAINING, 503, 2111, "Server is shutting down")                                                                 \
    X(GATEWAY_NOT_FOUND, 404, 2001, "Gateway not found")                                                              \
    X(RATE_LIMITED, 429, 2003, "Rate limited")                                                                         \
    X(UPSTREAM_UNREACHABLE, 502, 2005, "Failed to get response from provider")                                       \
    X(UPSTREAM_TIMEOUT, 504, 2005, "Provider did not respond in time")                                               \
    X(UPSTREAM_BAD_RESPONSE, 502, 2005, "Provider sent an invalid response")                                         \
    X(INVALID_PROVIDER, 400, 2008, "Invalid provider")                                                                \
    X(UNAUTHORIZED, 401, 2009, "Unauthorized")                                                                         \
    X(BAD_UNIFIED_BODY, 400, 2019, "Chat completion bad format")

enum {
    TG_E__FIRST = -1000,
#define TG_ERR_ENUM(name, status, code, msg) TG_E_##name,
    TG_ERRNO_MAP(TG_ERR_ENUM)
#undef TG_ERR_ENUM
        TG_E__END
};

/* Default message of an error code ("unknown error" for anything else). Never NULL; static storage. */
const char *tg_strerror(int err);
/* Symbolic name without the prefix ("UPSTREAM_TIMEOUT"). Static storage. */
const char *tg_err_name(int err);
/* HTTP status a request failing with `err` answers; 500 for internal codes. */
int tg_err_http_status(int err);
/* Gateway error code for the envelope (SPEC.md section 6); 2000 for internal codes. */
int tg_err_gateway_code(int err);

#endif
