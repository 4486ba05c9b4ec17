/*
 * Process entry: command line, configuration, listening sockets, worker threads, signals.
 *
 * This is the only file with process-wide state. The main thread owns the configuration: it loads it, hands each
 * worker its snapshot, reloads it on SIGHUP and hands out the new one, and on SIGTERM/SIGINT asks every worker to
 * drain, waits for all of them, and frees everything before exiting 0 (so LeakSanitizer sees a clean exit).
 *
 * Every worker gets its own listening socket bound with SO_REUSEPORT, so the kernel spreads connections over the
 * workers with no shared accept lock.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tollgate/cli.h"
#include <uv.h>
#include <arpa/inet.h>
#include "tollgate/config.h"
#include "tollgate/log.h"
#include "tollgate/sqlitedb.h"
#include "tollgate/tgtime.h"
#include "tollgate/worker.h"

typedef struct {
    const char *config_path;
    const char *listen;
    const char *data_dir;
    long workers; /* -1: from config */
    bool no_access_log;
} cli_t;

static cli_t cli = {.workers = -1};
static tg_process_t process;
static uv_signal_t sig_term, sig_int, sig_hup;
static uv_async_t drained_async;
static tg_config_t *current;

static void usage(FILE *fp)
{
    fprintf(fp, "Usage: tollgate [options]\n"
                "       tollgate logs [--data-dir DIR] [--gateway ACCOUNT/ID] [--json] [--limit N] [KEY=VALUE ...]\n"
                "       tollgate stats [--data-dir DIR] [--gateway ACCOUNT/ID] [--json] [group_by=...] [KEY=VALUE ...]\n"
                "\n"
                "A self-hosted AI gateway: provider-native passthrough with the URL shapes of Cloudflare AI Gateway.\n"
                "\n"
                "Options:\n"
                "  --config FILE        read the configuration (JSON with comments; see doc/config.md)\n"
                "  --listen HOST:PORT   listen address (default 127.0.0.1:8787; port 0 picks a free one)\n"
                "  --data-dir DIR       state directory (default ./tollgate-data)\n"
                "  --workers N          worker threads; 0 = one per core (default)\n"
                "  --no-access-log      do not write the per-request line to stderr\n"
                "  --check-config FILE  validate FILE, print every error with line and column, and exit\n"
                "  --version            print the version and exit\n"
                "  --help               print this help and exit\n"
                "\n"
                "Signals: SIGTERM/SIGINT drain and exit; SIGHUP reloads the configuration file.\n"
                "logs and stats read the request logs in DIR/logs.db (doc/logs.md); --help after them for more.\n");
}

/* Applies the command line over a loaded configuration. Returns NULL or an error message. */
static const char *apply_cli(tg_config_t *c)
{
    if (cli.listen != NULL) {
        const char *err = tg_config_set_listen(c, cli.listen);
        if (err != NULL)
            return err;
    }
    if (cli.data_dir != NULL) {
        free(c->data_dir);
        c->data_dir = tg_strdup(cli.data_dir);
    }
    if (cli.workers >= 0)
        c->workers = (unsigned)cli.workers;
    if (cli.no_access_log)
        c->access_log = false;
    return NULL;
}

static tg_config_t *load_config(void)
{
    tg_config_t *c;
    if (cli.config_path != NULL) {
        tg_buf_t errs;
        tg_buf_init(&errs, 1 << 20);
        c = tg_config_load_file(cli.config_path, &errs);
        if (c == NULL) {
            tg_log_write_raw(errs.base, errs.len);
            tg_buf_free(&errs);
            return NULL;
        }
        tg_buf_free(&errs);
    } else {
        c = tg_config_defaults();
    }
    const char *err = apply_cli(c);
    if (err != NULL) {
        tg_log_error("--listen: %s", err);
        tg_config_release(c);
        return NULL;
    }
    return c;
}

static int mkdir_p(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p != '\0'; ++p) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return (mkdir(buf, 0755) != 0 && errno != EEXIST) ? -1 : 0;
}

/* Binds `n` SO_REUSEPORT sockets to the configured address and listens on them here, before any worker starts,
 * so that the address accepts connections as soon as it is announced. Port 0: the first bind picks, the rest
 * follow. */
static int open_listeners(const tg_config_t *c, int *fds, unsigned n, char *bound, size_t boundsz)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof(ss));
    int family = strchr(c->listen_host, ':') != NULL ? AF_INET6 : AF_INET;
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(c->listen_port);
        inet_pton(AF_INET6, c->listen_host, &a->sin6_addr);
        sslen = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(c->listen_port);
        inet_pton(AF_INET, c->listen_host, &a->sin_addr);
        sslen = sizeof(*a);
    }
    for (unsigned i = 0; i != n; ++i)
        fds[i] = -1;
    for (unsigned i = 0; i != n; ++i) {
        int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
            bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, 4096) != 0) {
            tg_log_error("cannot listen on %s: %s", c->listen, strerror(errno));
            if (fd >= 0)
                close(fd);
            for (unsigned j = 0; j != i; ++j)
                close(fds[j]);
            return -1;
        }
        fds[i] = fd;
        if (i == 0) {
            /* learn the port the kernel picked so that every worker binds the same one */
            socklen_t len = sslen;
            getsockname(fd, (struct sockaddr *)&ss, &len);
        }
    }
    uint16_t port = family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    snprintf(bound, boundsz, family == AF_INET6 ? "[%s]:%u" : "%s:%u", c->listen_host, port);
    return 0;
}

static void begin_shutdown(void)
{
    if (atomic_exchange(&process.draining, true))
        return;
    tg_log_info("draining: finishing requests in flight (up to %.1f s), then exiting",
                (double)current->drain_timeout / 1000.0);
    for (unsigned i = 0; i != process.num_workers; ++i)
        tg_worker_post_stop(process.workers + i);
}

static void on_drained_async(uv_async_t *a)
{
    (void)a;
    for (unsigned i = 0; i != process.num_workers; ++i)
        if (!atomic_load(&process.workers[i].drained))
            return;
    /* The signal watchers stay installed, only unreferenced so that the loop can end: closing them would put back
     * the default actions, and a second SIGTERM landing before we ignored it would kill the clean exit (seen in
     * CI when a test's stop() raced the end of the drain). main() ignores the signals once the loop is over. */
    uv_unref((uv_handle_t *)&sig_term);
    uv_unref((uv_handle_t *)&sig_int);
    uv_unref((uv_handle_t *)&sig_hup);
    uv_close((uv_handle_t *)&drained_async, NULL);
    signal(SIGHUP, SIG_IGN);
}

/* cache_invalidate_on_update: a gateway whose settings changed with the reload loses its cache entries. */
static void purge_updated_gateways(const tg_config_t *old, const tg_config_t *c)
{
    for (size_t i = 0; i != c->num_gateways; ++i) {
        const tg_gateway_t *g = c->gateways + i, *was = NULL;
        for (size_t j = 0; j != old->num_gateways && was == NULL; ++j)
            if (strcmp(old->gateways[j].account, g->account) == 0 && strcmp(old->gateways[j].id, g->id) == 0)
                was = old->gateways + j;
        if (was != NULL && (g->cache_invalidate_on_update || was->cache_invalidate_on_update) &&
            !tg_gateway_same_settings(was, g)) {
            int64_t n = tg_cache_purge(process.cache, g->account, g->id, NULL);
            tg_log_info("SIGHUP: gateway %s/%s changed; %lld cache entr%s purged (cache_invalidate_on_update)",
                        g->account, g->id, (long long)n, n == 1 ? "y" : "ies");
        }
    }
}

static void reload(void)
{
    if (cli.config_path == NULL) {
        tg_log_warn("SIGHUP: no --config file to reload; nothing changed");
        return;
    }
    tg_config_t *c = load_config();
    if (c == NULL) {
        atomic_fetch_add(&process.config_reload_failures, 1);
        tg_log_error("SIGHUP: %s is invalid; keeping the running configuration", cli.config_path);
        return;
    }
    if (strcmp(c->listen, current->listen) != 0 || c->workers != current->workers)
        tg_log_warn("SIGHUP: listen and workers take effect on restart only; the other settings apply now");
    if (strcmp(c->data_dir, current->data_dir) != 0)
        tg_log_warn("SIGHUP: data_dir takes effect on restart only");
    for (unsigned i = 0; i != process.num_workers; ++i)
        tg_worker_post_config(process.workers + i, c);
    tg_logstore_set_limits(process.logs, c->log_queue_size, c->log_queue_memory);
    tg_cache_set_limits(process.cache, c->cache_max_memory, c->cache_max_disk);
    purge_updated_gateways(current, c);
    tg_config_release(current);
    current = c;
    atomic_fetch_add(&process.config_reloads, 1);
    tg_log_info("reloaded configuration from %s", cli.config_path);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    if (signum == SIGHUP) {
        if (!atomic_load(&process.draining))
            reload();
        return;
    }
    begin_shutdown();
}

static int check_config(const char *path)
{
    tg_buf_t errs;
    tg_buf_init(&errs, 1 << 20);
    tg_config_t *c = tg_config_load_file(path, &errs);
    if (c == NULL) {
        fwrite(errs.base, 1, errs.len, stderr);
        tg_buf_free(&errs);
        return 1;
    }
    printf("%s: OK (%zu gateway%s, %zu custom provider%s)\n", path, c->num_gateways, c->num_gateways == 1 ? "" : "s",
           c->num_customs, c->num_customs == 1 ? "" : "s");
    tg_config_release(c);
    tg_buf_free(&errs);
    return 0;
}

int main(int argc, char **argv)
{
    enum { OPT_CONFIG = 256, OPT_LISTEN, OPT_DATA_DIR, OPT_WORKERS, OPT_CHECK, OPT_VERSION, OPT_HELP, OPT_NO_LOG };
    static const struct option opts[] = {
        {"config", required_argument, NULL, OPT_CONFIG},     {"listen", required_argument, NULL, OPT_LISTEN},
        {"data-dir", required_argument, NULL, OPT_DATA_DIR}, {"workers", required_argument, NULL, OPT_WORKERS},
        {"check-config", required_argument, NULL, OPT_CHECK}, {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, OPT_HELP},               {"no-access-log", no_argument, NULL, OPT_NO_LOG},
        {NULL, 0, NULL, 0}};
    /* subcommands for people at a terminal */
    if (argc >= 2 && strcmp(argv[1], "logs") == 0)
        return tg_cli_logs(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "stats") == 0)
        return tg_cli_stats(argc - 1, argv + 1);
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_CONFIG:
            cli.config_path = optarg;
            break;
        case OPT_LISTEN:
            cli.listen = optarg;
            break;
        case OPT_DATA_DIR:
            cli.data_dir = optarg;
            break;
        case OPT_WORKERS: {
            uint64_t v;
            if (tg_parse_u64(optarg, strlen(optarg), 256, &v) != 0) {
                fprintf(stderr, "tollgate: --workers must be a number from 0 to 256\n");
                return 2;
            }
            cli.workers = (long)v;
        } break;
        case OPT_CHECK:
            return check_config(optarg);
        case OPT_VERSION:
        {
            printf("tollgate %s (libuv %s, SQLite %s, %s)\n", TG_VERSION, uv_version_string(), sqlite3_libversion(),
                   tg_upstream_curl_version());
        }
            return 0;
        case OPT_HELP:
            usage(stdout);
            return 0;
        case OPT_NO_LOG:
            cli.no_access_log = true;
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "tollgate: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    /* Log records are allocated by the workers and freed in batches: with glibc's default 128 KiB trim threshold
     * every batch (~400 KiB) shrank the worker's heap and the next requests grew it again, a page fault per page
     * (11,700 faults in 4 s at 25k requests/s). 1 MiB of free heap at an arena's top is kept instead. Not more:
     * malloc_trim (which the log writer calls after a second of idleness) does not shrink a thread arena's top, so
     * whatever this allows stays dirty in an idle gateway; at 8 MiB the idle RSS after the benchmark's warm-up moved
     * between 9 and 14 MiB, at 1 MiB 6-7 MiB, for 1,800-4,600 faults in 4 s at 64 connections against 1,700-2,200
     * (bench/RESULTS.md, session 20). */
    mallopt(M_TRIM_THRESHOLD, 1 << 20);
    tg_sqlite_configure();
    current = load_config();
    if (current == NULL)
        return 1;
    if (mkdir_p(current->data_dir) != 0) {
        tg_log_error("cannot create data_dir %s: %s", current->data_dir, strerror(errno));
        tg_config_release(current);
        return 1;
    }

    unsigned n = current->workers != 0 ? current->workers : (unsigned)uv_available_parallelism();
    if (n == 0)
        n = 1;
    int *fds = tg_calloc(n, sizeof(int));
    char bound[128];
    if (open_listeners(current, fds, n, bound, sizeof(bound)) != 0) {
        free(fds);
        tg_config_release(current);
        return 1;
    }

    char err[512];
    process.logs = tg_logstore_open(current->data_dir, current->log_queue_size, current->log_queue_memory, err,
                                    sizeof(err));
    if (process.logs == NULL) {
        tg_log_error("cannot open the log store: %s", err);
        for (unsigned i = 0; i != n; ++i)
            close(fds[i]);
        free(fds);
        tg_config_release(current);
        return 1;
    }

    process.cache = tg_cache_open(current->data_dir, current->cache_max_memory, current->cache_max_disk, err,
                                  sizeof(err));
    if (process.cache == NULL) {
        tg_log_error("cannot open the response cache: %s", err);
        tg_logstore_close(process.logs);
        for (unsigned i = 0; i != n; ++i)
            close(fds[i]);
        free(fds);
        tg_config_release(current);
        return 1;
    }

    uv_loop_t *loop = uv_default_loop();
    process.workers = tg_calloc(n, sizeof(tg_worker_t));
    process.num_workers = n;
    process.start_unix_ms = tg_now_unix_ms();
    atomic_init(&process.draining, false);
    atomic_init(&process.config_reloads, 0);
    atomic_init(&process.config_reload_failures, 0);
    uv_async_init(loop, &drained_async, on_drained_async);
    process.on_worker_drained = &drained_async;
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    uv_signal_init(loop, &sig_hup);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_hup, on_signal, SIGHUP);

    for (unsigned i = 0; i != n; ++i)
        tg_worker_init(process.workers + i, &process, i, fds[i], current);
    for (unsigned i = 0; i != n; ++i) {
        int r = tg_worker_start(process.workers + i);
        if (r != 0) {
            tg_log_error("cannot start worker thread: %s", uv_strerror(r));
            abort();
        }
    }
    free(fds);
    tg_log_info("listening on %s (%u worker%s, data in %s%s)", bound, n, n == 1 ? "" : "s", current->data_dir,
                current->access_log ? "" : ", access log off");

    uv_run(loop, UV_RUN_DEFAULT);
    /* replaces libuv's handlers in one step each: from here a late signal is ignored, never fatal */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);

    for (unsigned i = 0; i != n; ++i)
        tg_worker_join(process.workers + i);
    free(process.workers);
    tg_logstore_close(process.logs); /* writes what is still queued */
    tg_cache_close(process.cache);
    uv_loop_close(loop); /* UV_EBUSY: the signal watchers are left installed on purpose (on_drained_async) */
    tg_config_release(current);
    tg_log_info("stopped");
    return 0;
}
