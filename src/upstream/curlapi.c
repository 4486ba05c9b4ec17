/*
 * Loading libcurl on first use (curlapi.h).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "curlapi.h"

tg_curl_api_t tg_curl;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *load_error;
static char load_error_buf[512];

static void load(void)
{
    /* the soname of Debian's libcurl4 (and of every libcurl since 7.16) */
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        snprintf(load_error_buf, sizeof(load_error_buf), "cannot load libcurl: %s", dlerror());
        load_error = load_error_buf;
        return;
    }
    static const struct {
        const char *name;
        size_t offset;
    } syms[] = {
#define SYM(field) {"curl_" #field, offsetof(tg_curl_api_t, field)}
        SYM(global_init),       SYM(global_cleanup),   SYM(version),          SYM(easy_init),
        SYM(easy_setopt),       SYM(easy_getinfo),     SYM(easy_cleanup),     SYM(easy_reset),
        SYM(easy_pause),        SYM(easy_strerror),    SYM(multi_init),       SYM(multi_setopt),
        SYM(multi_add_handle),  SYM(multi_remove_handle), SYM(multi_socket_action), SYM(multi_assign),
        SYM(multi_info_read),   SYM(multi_cleanup),
#undef SYM
    };
    tg_curl_api_t api;
    for (size_t i = 0; i != sizeof(syms) / sizeof(syms[0]); ++i) {
        void *f = dlsym(h, syms[i].name);
        if (f == NULL) {
            snprintf(load_error_buf, sizeof(load_error_buf), "libcurl lacks %s", syms[i].name);
            load_error = load_error_buf;
            dlclose(h);
            return;
        }
        memcpy((char *)&api + syms[i].offset, &f, sizeof(f));
    }
    tg_curl = api; /* published by pthread_once's barrier; the handle stays open for the process's life */
}

int tg_curl_load(const char **why)
{
    pthread_once(&once, load);
    if (load_error != NULL) {
        *why = load_error;
        return -1;
    }
    return 0;
}
