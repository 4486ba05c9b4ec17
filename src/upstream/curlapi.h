/*
 * libcurl, loaded when first needed.
 *
 * libcurl brings OpenSSL, GnuTLS, Kerberos and more with it: about 4 MiB of resident pages once the dynamic linker
 * has relocated them, which is most of an idle gateway's memory. Cleartext upstreams never need it (h1.c), so
 * libcurl is opened with dlopen on the first request that does (TLS, HTTP/2, a proxy), and curl.c calls it through
 * this table. Including this header instead of <curl/curl.h> keeps curl.c written against libcurl's own names.
 */
#ifndef TOLLGATE_UPSTREAM_CURLAPI_H
#define TOLLGATE_UPSTREAM_CURLAPI_H

#define CURL_DISABLE_TYPECHECK /* the type-checking macros would wrap the names redirected below */
#include <curl/curl.h>
#include <stddef.h>

typedef struct st_tg_curl_api_t {
    CURLcode (*global_init)(long flags);
    void (*global_cleanup)(void);
    char *(*version)(void);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *curl, CURLoption option, ...);
    CURLcode (*easy_getinfo)(CURL *curl, CURLINFO info, ...);
    void (*easy_cleanup)(CURL *curl);
    void (*easy_reset)(CURL *curl);
    CURLcode (*easy_pause)(CURL *handle, int bitmask);
    const char *(*easy_strerror)(CURLcode code);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_setopt)(CURLM *multi_handle, CURLMoption option, ...);
    CURLMcode (*multi_add_handle)(CURLM *multi_handle, CURL *curl_handle);
    CURLMcode (*multi_remove_handle)(CURLM *multi_handle, CURL *curl_handle);
    CURLMcode (*multi_socket_action)(CURLM *multi_handle, curl_socket_t s, int ev_bitmask, int *running_handles);
    CURLMcode (*multi_assign)(CURLM *multi_handle, curl_socket_t sockfd, void *sockp);
    CURLMsg *(*multi_info_read)(CURLM *multi_handle, int *msgs_in_queue);
    CURLMcode (*multi_cleanup)(CURLM *multi_handle);
} tg_curl_api_t;

extern tg_curl_api_t tg_curl;

/* Opens libcurl once (any thread; later calls return the first result). 0, or -1 with the reason in *why. */
int tg_curl_load(const char **why);

/* curl.h defines these three as function-like macros (to count arguments); ours replace them */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init (*tg_curl.global_init)
#define curl_global_cleanup (*tg_curl.global_cleanup)
#define curl_version (*tg_curl.version)
#define curl_easy_init (*tg_curl.easy_init)
#define curl_easy_setopt (*tg_curl.easy_setopt)
#define curl_easy_getinfo (*tg_curl.easy_getinfo)
#define curl_easy_cleanup (*tg_curl.easy_cleanup)
#define curl_easy_reset (*tg_curl.easy_reset)
#define curl_easy_pause (*tg_curl.easy_pause)
#define curl_easy_strerror (*tg_curl.easy_strerror)
#define curl_multi_init (*tg_curl.multi_init)
#define curl_multi_setopt (*tg_curl.multi_setopt)
#define curl_multi_add_handle (*tg_curl.multi_add_handle)
#define curl_multi_remove_handle (*tg_curl.multi_remove_handle)
#define curl_multi_socket_action (*tg_curl.multi_socket_action)
#define curl_multi_assign (*tg_curl.multi_assign)
#define curl_multi_info_read (*tg_curl.multi_info_read)
#define curl_multi_cleanup (*tg_curl.multi_cleanup)

#endif
