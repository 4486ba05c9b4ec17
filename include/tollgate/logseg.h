/*
 * Payload segments of the log store: the heads and bodies of log records, kept out of SQLite in append-only files
 * under data_dir/log-payloads/, one series of files per gateway.
 *
 * Why: a body stored in a SQLite row is copied into the row, into its page, into the WAL, checksummed, and copied
 * again by the checkpoint; appended to a file it is written once, in large writes. On the benchmark machine that
 * took a record's cost on the writer thread from ~6 us to ~2 (bench/RESULTS.md). The row keeps everything that is
 * filtered, sorted or added up, and a reference to its payload.
 *
 * Format. A segment is the file "{gw}-{n}.seg" (gw the gateway's number in the store, n counting up from 1). It is a
 * sequence of records, each a 32-byte header followed by its parts:
 *
 *     "TGP1" | u64 seq | u32 request head | u32 response head | u32 request body | u32 response body | u32 0
 *
 * little-endian lengths, then the four parts back to back, then an 8-byte trailer, ~seq. `seq` is the log row the
 * payload belongs to: a read checks the header and the trailer, so a reference into a file that lost its tail in a
 * crash (zeros), a payload cut short, or a file replaced is detected rather than served. A reference is
 * n << 36 | offset of the header.
 *
 * Writing (one thread: the log writer): tg_logseg_reserve tells where a payload will be (so its row can be written
 * first), tg_logseg_stage copies it into the staging buffer, tg_logseg_flush writes what is staged in as few write()
 * calls as the staging buffer allows (small writes into a growing file cost several times
 * more on ext4 than one large one), tg_logseg_sync makes it durable. A flush that leaves a segment holding
 * TG_LOGSEG_MAX bytes or more closes it; the next record opens the next one.
 *
 * Reading and freeing (any thread): tg_logseg_read copies one part; tg_logseg_punch deallocates a record's bytes
 * (a deleted log's payload really goes). A segment whose records are all deleted is unlinked by the writer.
 */
#ifndef TOLLGATE_LOGSEG_H
#define TOLLGATE_LOGSEG_H

#include "tollgate/buf.h"
#include "tollgate/common.h"

#define TG_LOGSEG_DIR "log-payloads"
#define TG_LOGSEG_HEADER 32
#define TG_LOGSEG_TRAILER 8
#define TG_LOGSEG_MAX (64u << 20) /* a segment is closed once it holds this much (tg_logseg_max) */
#define TG_LOGSEG_STAGE (1u << 20)  /* bytes staged before a write (a multiple of the 4 KiB block) */
#define TG_LOGSEG_DIRECT_MIN (64u << 10) /* a group this large is written with O_DIRECT */

/* TG_LOGSEG_MAX; the unit tests make it small to see segments come and go */
extern uint64_t tg_logseg_max;

enum { TG_LOGSEG_REQ_HEAD, TG_LOGSEG_RESP_HEAD, TG_LOGSEG_REQ_BODY, TG_LOGSEG_RESP_BODY, TG_LOGSEG_PARTS };

static inline int64_t tg_logseg_ref(uint64_t n, uint64_t off)
{
    return (int64_t)(n << 36 | off);
}
static inline uint64_t tg_logseg_ref_n(int64_t ref)
{
    return (uint64_t)ref >> 36;
}
static inline uint64_t tg_logseg_ref_off(int64_t ref)
{
    return (uint64_t)ref & ((UINT64_C(1) << 36) - 1);
}

/* "{dir}/{gw}-{n}.seg" into out; -1 when it does not fit. `dir` is data_dir/log-payloads. */
int tg_logseg_path(char *out, size_t outsz, const char *dir, unsigned gw, uint64_t n);

/* ---- writing ---------------------------------------------------------------------------------------------- */

typedef struct st_tg_logseg_writer_t {
    const char *dir;
    unsigned gw;
    uint64_t n;       /* the open segment (0: none yet) */
    int fd, dfd;      /* buffered and O_DIRECT descriptors of it; -1 when closed (dfd: or not supported) */
    uint64_t size;    /* bytes in the file, plus what is reserved */
    uint64_t flushed; /* bytes in the file as of the last good flush */
    uint64_t pos;     /* where the next write goes */
    bool group_direct; /* this group is written with O_DIRECT (tg_logseg_begin) */
    bool failed;      /* a write failed since the last flush */
} tg_logseg_writer_t;

/* The writer thread's staging buffer: TG_LOGSEG_STAGE bytes, aligned for O_DIRECT. */
typedef struct st_tg_logseg_stage_t {
    char *base;
    size_t len;
} tg_logseg_stage_t;

/* Allocates the buffer if it has none; 0 or -1. */
int tg_logseg_stage_init(tg_logseg_stage_t *st);
void tg_logseg_stage_free(tg_logseg_stage_t *st);

/* A writer for gateway `gw` whose first segment will be number `next_n`. Opens nothing yet. */
void tg_logseg_writer_init(tg_logseg_writer_t *w, const char *dir, unsigned gw, uint64_t next_n);
/*
 * Starts a group of records whose payloads take `total` bytes: they are reserved, staged and flushed before the next
 * group. Opens a segment when none is open. A group of TG_LOGSEG_DIRECT_MIN bytes or more is written with O_DIRECT,
 * starting on a block boundary (smaller ones are buffered, so a quiet gateway's records are not padded to blocks).
 * Returns 0, or -1 when no segment could be opened (logged).
 */
int tg_logseg_begin(tg_logseg_writer_t *w, uint64_t total);
/* The bytes a payload of these parts takes in a segment. */
uint64_t tg_logseg_size(const tg_iovec_t parts[TG_LOGSEG_PARTS]);
/* Reserves `total` bytes (tg_logseg_size) at the end of the group; returns their reference, or -1 when no segment is
 * open (tg_logseg_begin failed). Every reservation is then staged, in the same order. */
int64_t tg_logseg_reserve(tg_logseg_writer_t *w, uint64_t total);
/* Stages the payload of row `seq` into the next reservation. `stage` is shared by the thread's writers: flush one
 * group before beginning another. What is staged reaches the file at tg_logseg_flush, or sooner when the buffer
 * fills. */
void tg_logseg_stage(tg_logseg_writer_t *w, tg_logseg_stage_t *stage, uint64_t seq,
                     const tg_iovec_t parts[TG_LOGSEG_PARTS]);
/* Writes what is staged. Returns 0, or -1 when a write failed: everything appended since the last good flush is
 * lost (the file is cut back to that point) and the references to it must not be kept. */
int tg_logseg_flush(tg_logseg_writer_t *w, tg_logseg_stage_t *stage);
/* Gives back the reservations made since the last flush (their payloads will not be staged). */
void tg_logseg_abandon(tg_logseg_writer_t *w);
/* fdatasync of the open segment. */
void tg_logseg_sync(tg_logseg_writer_t *w);
/* Closes the open segment (after a flush). */
void tg_logseg_close(tg_logseg_writer_t *w);

/* ---- reading and freeing ---------------------------------------------------------------------------------- */

/*
 * Appends part `part` of the payload at `ref` (row `seq` of gateway `gw`) to `out`. Returns 0, or -1 with a message
 * in err when the segment is gone, the header does not match, or the part does not fit `out`.
 */
int tg_logseg_read(const char *dir, unsigned gw, int64_t ref, uint64_t seq, int part, tg_buf_t *out, char *err,
                   size_t errsz);
/* Deallocates the payload at `ref` of row `seq` (its bytes read back as zeros, its blocks are freed). The file stays
 * open in `p` for the next payload of the same segment: punch in segment order, then tg_logseg_punch_done. Returns 0
 * or -1 (the segment or the payload is not there). */
typedef struct st_tg_logseg_punch_t {
    int fd; /* -1 to start */
    unsigned gw;
    uint64_t n;
} tg_logseg_punch_t;
int tg_logseg_punch(tg_logseg_punch_t *p, const char *dir, unsigned gw, int64_t ref, uint64_t seq);
void tg_logseg_punch_done(tg_logseg_punch_t *p);

#endif
