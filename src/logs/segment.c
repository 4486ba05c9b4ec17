/*
 * Payload segments of the log store (logseg.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>
#include "tollgate/log.h"
#include "tollgate/logseg.h"

static const char magic[4] = {'T', 'G', 'P', '1'};

uint64_t tg_logseg_max = TG_LOGSEG_MAX;

int tg_logseg_path(char *out, size_t outsz, const char *dir, unsigned gw, uint64_t n)
{
    int len = snprintf(out, outsz, "%s/%u-%llu.seg", dir, gw, (unsigned long long)n);
    return len > 0 && (size_t)len < outsz ? 0 : -1;
}

static void put_u32(char *p, uint32_t v)
{
    for (int i = 0; i != 4; ++i)
        p[i] = (char)(v >> (8 * i));
}

static void put_u64(char *p, uint64_t v)
{
    for (int i = 0; i != 8; ++i)
        p[i] = (char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

/* ---- writing ---------------------------------------------------------------------------------------------- */

#define BLOCK 4096 /* O_DIRECT's alignment of offsets, lengths and memory */

void tg_logseg_writer_init(tg_logseg_writer_t *w, const char *dir, unsigned gw, uint64_t next_n)
{
    memset(w, 0, sizeof(*w));
    w->dir = dir;
    w->gw = gw;
    w->n = next_n - 1;
    w->fd = w->dfd = -1;
}

int tg_logseg_stage_init(tg_logseg_stage_t *st)
{
    st->len = 0;
    if (st->base == NULL && posix_memalign((void **)&st->base, BLOCK, TG_LOGSEG_STAGE) != 0) {
        st->base = NULL;
        return -1;
    }
    return 0;
}

void tg_logseg_stage_free(tg_logseg_stage_t *st)
{
    free(st->base);
    st->base = NULL;
    st->len = 0;
}

/* Opens segment n + 1 (a new file: an existing one is never appended to, so a tail torn by a crash stays where it
 * is). Returns 0 or -1 (logged). */
static int open_next(tg_logseg_writer_t *w)
{
    char path[4096];
    for (int tries = 0; tries != 1000; ++tries) {
        w->n++;
        if (tg_logseg_path(path, sizeof(path), w->dir, w->gw, w->n) != 0) {
            tg_log_error("log store: the payload directory's path is too long");
            return -1;
        }
        w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (w->fd >= 0) {
            /* large flushes bypass the page cache: payloads are written once and rarely read, and fresh page-cache
             * pages for every byte cost the writer more than the copy (bench/RESULTS.md); a file system without
             * O_DIRECT gets buffered writes only */
            w->dfd = open(path, O_WRONLY | O_CLOEXEC | O_DIRECT);
            w->size = w->flushed = 0;
            int dfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* the file's name survives a crash too */
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
            return 0;
        }
        if (errno != EEXIST)
            break;
    }
    tg_log_error("log store: cannot create %s: %s", path, strerror(errno));
    return -1;
}

/* Writes p[0..n) at the write position, through the direct descriptor in a direct group; -1 on an error (logged). */
static int write_out(tg_logseg_writer_t *w, const char *p, size_t n)
{
    int fd = w->group_direct ? w->dfd : w->fd;
    while (n != 0) {
        ssize_t k = pwrite(fd, p, n, (off_t)w->pos);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            tg_log_error("log store: cannot write payload segment %u-%llu: %s", w->gw, (unsigned long long)w->n,
                         k < 0 ? strerror(errno) : "no progress");
            if (w->group_direct && k < 0 && errno == EINVAL && w->dfd >= 0) {
                /* the file system or device refuses these direct writes (a larger sector, say): buffered from now */
                close(w->dfd);
                w->dfd = -1;
            }
            return -1;
        }
        p += k;
        n -= (size_t)k;
        w->pos += (uint64_t)k;
    }
    return 0;
}

int tg_logseg_begin(tg_logseg_writer_t *w, uint64_t total)
{
    if (w->fd < 0 && open_next(w) != 0)
        return -1;
    w->group_direct = total >= TG_LOGSEG_DIRECT_MIN && w->dfd >= 0;
    if (w->group_direct) /* a direct group starts on a block boundary (the bytes skipped stay a hole) */
        w->size = w->flushed = (w->size + BLOCK - 1) & ~(uint64_t)(BLOCK - 1);
    w->pos = w->size;
    return 0;
}

int tg_logseg_flush(tg_logseg_writer_t *w, tg_logseg_stage_t *stage)
{
    if (w->fd >= 0 && !w->failed && stage->len != 0) {
        size_t n = stage->len;
        if (w->group_direct) { /* whole blocks: the tail is padded, and the next group starts past it */
            size_t padded = (n + BLOCK - 1) & ~(size_t)(BLOCK - 1);
            memset(stage->base + n, 0, padded - n);
            n = padded;
        }
        if (write_out(w, stage->base, n) != 0)
            w->failed = true;
    }
    stage->len = 0;
    w->group_direct = false;
    if (w->fd < 0)
        return -1;
    if (!w->failed) {
        w->flushed = w->size;
        if (w->size >= tg_logseg_max) { /* full: the next record opens the next segment */
            tg_logseg_sync(w);
            tg_logseg_close(w);
        }
        return 0;
    }
    /* cut what this flush covers back off, so the file ends with a whole record */
    w->failed = false;
    w->size = w->flushed;
    if (ftruncate(w->fd, (off_t)w->flushed) != 0)
        tg_logseg_close(w); /* the next record starts a new segment */
    return -1;
}

uint64_t tg_logseg_size(const tg_iovec_t parts[TG_LOGSEG_PARTS])
{
    uint64_t total = TG_LOGSEG_HEADER + TG_LOGSEG_TRAILER;
    for (int i = 0; i != TG_LOGSEG_PARTS; ++i)
        total += parts[i].len;
    return total;
}

int64_t tg_logseg_reserve(tg_logseg_writer_t *w, uint64_t total)
{
    if (w->fd < 0)
        return -1;
    int64_t ref = tg_logseg_ref(w->n, w->size);
    w->size += total;
    return ref;
}

/* Copies p[0..n) into the stage, writing the stage out each time it fills (whole stages: block multiples). */
static void stage_bytes(tg_logseg_writer_t *w, tg_logseg_stage_t *stage, const char *p, size_t n)
{
    while (n != 0) {
        size_t k = TG_MIN(n, TG_LOGSEG_STAGE - stage->len);
        memcpy(stage->base + stage->len, p, k);
        stage->len += k;
        p += k;
        n -= k;
        if (stage->len == TG_LOGSEG_STAGE) {
            if (w->fd >= 0 && !w->failed && write_out(w, stage->base, stage->len) != 0)
                w->failed = true;
            stage->len = 0;
        }
    }
}

void tg_logseg_stage(tg_logseg_writer_t *w, tg_logseg_stage_t *stage, uint64_t seq,
                     const tg_iovec_t parts[TG_LOGSEG_PARTS])
{
    char head[TG_LOGSEG_HEADER];
    memcpy(head, magic, 4);
    put_u64(head + 4, seq);
    for (int i = 0; i != TG_LOGSEG_PARTS; ++i)
        put_u32(head + 12 + 4 * i, (uint32_t)parts[i].len);
    put_u32(head + 28, 0);
    stage_bytes(w, stage, head, sizeof(head));
    for (int i = 0; i != TG_LOGSEG_PARTS; ++i)
        stage_bytes(w, stage, parts[i].base, parts[i].len);
    char tail[TG_LOGSEG_TRAILER];
    put_u64(tail, ~seq);
    stage_bytes(w, stage, tail, sizeof(tail));
}

void tg_logseg_abandon(tg_logseg_writer_t *w)
{
    w->size = w->flushed;
    w->group_direct = false;
}

void tg_logseg_sync(tg_logseg_writer_t *w)
{
    if (w->fd >= 0 && fdatasync(w->fd) != 0)
        tg_log_warn("log store: fdatasync of payload segment %u-%llu: %s", w->gw, (unsigned long long)w->n,
                    strerror(errno));
}

void tg_logseg_close(tg_logseg_writer_t *w)
{
    if (w->fd >= 0)
        close(w->fd);
    if (w->dfd >= 0)
        close(w->dfd);
    w->fd = w->dfd = -1;
    w->size = w->flushed = 0;
    w->failed = false;
}

/* ---- reading and freeing ---------------------------------------------------------------------------------- */

static ssize_t pread_all(int fd, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? -1 : (ssize_t)got;
        got += (size_t)k;
    }
    return (ssize_t)got;
}

/* Opens the segment of `ref` and checks the header there against `seq`; fills len[]. Returns the fd or -1. */
/* Reads the header at `ref` and checks it is row `seq`'s; fills len[]. Returns 0 or -1. */
static int read_header(int fd, int64_t ref, uint64_t seq, uint32_t len[TG_LOGSEG_PARTS])
{
    unsigned char head[TG_LOGSEG_HEADER];
    if (pread_all(fd, head, sizeof(head), tg_logseg_ref_off(ref)) != (ssize_t)sizeof(head) ||
        memcmp(head, magic, 4) != 0 || get_u64(head + 4) != seq)
        return -1;
    for (int i = 0; i != TG_LOGSEG_PARTS; ++i)
        len[i] = get_u32(head + 12 + 4 * i);
    return 0;
}

static int open_record(const char *dir, unsigned gw, int64_t ref, uint64_t seq, int flags, uint32_t len[TG_LOGSEG_PARTS],
                       char *err, size_t errsz)
{
    char path[4096];
    if (tg_logseg_path(path, sizeof(path), dir, gw, tg_logseg_ref_n(ref)) != 0) {
        snprintf(err, errsz, "the payload directory's path is too long");
        return -1;
    }
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errsz, "its payload segment %u-%llu is gone (%s)", gw, (unsigned long long)tg_logseg_ref_n(ref),
                 strerror(errno));
        return -1;
    }
    if (read_header(fd, ref, seq, len) != 0) {
        snprintf(err, errsz, "its payload is not in segment %u-%llu (lost when the gateway stopped before it reached "
                             "the disk?)",
                 gw, (unsigned long long)tg_logseg_ref_n(ref));
        close(fd);
        return -1;
    }
    uint64_t end = tg_logseg_ref_off(ref) + TG_LOGSEG_HEADER;
    for (int i = 0; i != TG_LOGSEG_PARTS; ++i)
        end += len[i];
    /* the trailer: the payload was written out to its end (a write cut short by a crash leaves zeros there) */
    unsigned char tail[TG_LOGSEG_TRAILER];
    if (pread_all(fd, tail, sizeof(tail), end) != (ssize_t)sizeof(tail) || get_u64(tail) != ~seq) {
        snprintf(err, errsz, "its payload in segment %u-%llu is cut short (lost when the gateway stopped before it "
                             "reached the disk?)",
                 gw, (unsigned long long)tg_logseg_ref_n(ref));
        close(fd);
        return -1;
    }
    return fd;
}

int tg_logseg_read(const char *dir, unsigned gw, int64_t ref, uint64_t seq, int part, tg_buf_t *out, char *err,
                   size_t errsz)
{
    uint32_t len[TG_LOGSEG_PARTS];
    int fd = open_record(dir, gw, ref, seq, O_RDONLY, len, err, errsz);
    if (fd < 0)
        return -1;
    uint64_t off = tg_logseg_ref_off(ref) + TG_LOGSEG_HEADER;
    for (int i = 0; i != part; ++i)
        off += len[i];
    int rc = -1;
    if (tg_buf_reserve(out, len[part]) != 0) {
        snprintf(err, errsz, "its payload is larger than this reader takes (%u bytes)", len[part]);
    } else if (pread_all(fd, out->base + out->len, len[part], off) != (ssize_t)len[part]) {
        snprintf(err, errsz, "its payload in segment %u-%llu is cut short", gw,
                 (unsigned long long)tg_logseg_ref_n(ref));
    } else {
        out->len += len[part];
        rc = 0;
    }
    close(fd);
    return rc;
}

int tg_logseg_punch(tg_logseg_punch_t *p, const char *dir, unsigned gw, int64_t ref, uint64_t seq)
{
    uint64_t n = tg_logseg_ref_n(ref);
    if (p->fd >= 0 && (p->gw != gw || p->n != n)) {
        close(p->fd);
        p->fd = -1;
    }
    if (p->fd < 0) {
        char path[4096];
        if (tg_logseg_path(path, sizeof(path), dir, gw, n) != 0 || (p->fd = open(path, O_RDWR | O_CLOEXEC)) < 0)
            return -1;
        p->gw = gw;
        p->n = n;
    }
    uint32_t len[TG_LOGSEG_PARTS];
    if (read_header(p->fd, ref, seq, len) != 0)
        return -1; /* not this record's payload (any more): nothing to free */
    uint64_t total = TG_LOGSEG_HEADER + TG_LOGSEG_TRAILER;
    for (int i = 0; i != TG_LOGSEG_PARTS; ++i)
        total += len[i];
    int rc = fallocate(p->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)tg_logseg_ref_off(ref), (off_t)total);
    if (rc != 0) { /* a file system without hole punching: overwrite with zeros instead */
        static const char zeros[4096];
        uint64_t off = tg_logseg_ref_off(ref), left = total;
        rc = 0;
        while (left != 0 && rc == 0) {
            size_t k = (size_t)TG_MIN(left, sizeof(zeros));
            rc = pwrite(p->fd, zeros, k, (off_t)off) == (ssize_t)k ? 0 : -1;
            off += k;
            left -= k;
        }
    }
    return rc;
}

void tg_logseg_punch_done(tg_logseg_punch_t *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
}
