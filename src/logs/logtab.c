/*
 * temp.logs: the log records of main.log_rows as a virtual table (include/tollgate/logtab.h).
 *
 * xBestIndex turns the constraints it can use into a plan written in idxStr, one letter an argument: `e` seq = ?,
 * `g` seq >= ?, `G` seq > ?, `l` seq <= ?, `L` seq < ?, `v` event_id = ?; idxNum says whether the rows are to come in
 * the order of seq (ORDERED), which way (DESC), by the event index or not (EVENT), and which of log_rows' columns the
 * query reads (colUsed). xFilter reads log_rows with a statement made for that plan (ascending or descending, by key
 * range or by the event index, selecting only those columns), kept for the next cursor with the same plan. SQLite
 * still checks every constraint itself (none is omitted), so a bound this module cannot narrow exactly (a REAL, a
 * TEXT) only costs rows read, never a wrong answer.
 */
#include "tollgate/logtab.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/common.h"
#include "tollgate/logrow.h"
#include "tollgate/logstore.h"
#include "tollgate/mem.h"

enum {
    COL_SEQ,
    COL_FIRST_FIELD,
    COL_METADATA = COL_FIRST_FIELD + TG_LR_NUM,
    COL_EVENT_ID,
    COL_FLAGS,
    COL_PAYLOAD,
    COL_FEEDBACK,
    COL_SCORE,
    NUM_COLS
};

/* what the inner statements select, in this order */
enum { IN_SEQ, IN_REC, IN_METADATA, IN_EVENT_ID, IN_FLAGS, IN_PAYLOAD, IN_FEEDBACK, IN_SCORE };

#define PLAN_ORDERED 1 /* rows in the order of seq (SQLite counts on it: orderByConsumed) */
#define PLAN_DESC 2
#define PLAN_EVENT 4      /* by the event index */
#define PLAN_COLS_SHIFT 3 /* then a bit for each inner column past seq the query reads (IN_REC ..) */
#define PLAN_COL(in) (1 << (PLAN_COLS_SHIFT + (in)-1))
#define NUM_INNER_COLS 8

/* The inner statements are made for what a query reads (a count reads `rec` alone: each column an inner statement
 * selects is a step of its program a row), and kept for the next cursor with the same plan. */
#define NUM_SPARE 16

typedef struct {
    sqlite3_vtab base;
    sqlite3 *db;
    struct {
        sqlite3_stmt *st; /* a statement no cursor uses, ready for the next */
        int plan;         /* its PLAN_DESC | PLAN_EVENT | columns */
    } spare[NUM_SPARE];
    unsigned next_spare; /* the place the next one takes when all are full */
} logtab_t;

/*
 * A cursor reads the inner statement's rows; a block row (logrow.h) gives its records one after another. In the
 * order of seq descending (merge), a block's records are copied and wait: each is given when it is above the key of
 * the next row still unread (whose records are all at or below its key), so a record that took a key of its own
 * millisecond after the block was written (a late one, a row of its own) comes between the block's records where its
 * key puts it. Blocks of a gateway never overlap (their records' keys come in order), so what waits is one block.
 */
typedef struct {
    sqlite3_vtab_cursor base;
    sqlite3_stmt *st;
    int plan; /* st's: PLAN_DESC | PLAN_EVENT | columns */
    bool eof, row_eof, merge, in_block, split;
    int64_t lo, hi;            /* the records' keys asked for */
    tg_logblock_entry_t *ents; /* a block's records in key order: the current one is ents[at] (plain) or the last */
    size_t nents, cap, at;
    unsigned char **copies; /* (merge) the blocks the entries point into */
    size_t ncopies;
    tg_logrow_value_t v[TG_LR_NUM];
} cursor_t;

static const char *const inner_cols[NUM_INNER_COLS] = {"seq",   "rec",     "metadata", "event_id",
                                                       "flags", "payload", "feedback", "score"};

/* The inner statement of plan (PLAN_DESC, PLAN_EVENT and the columns it reads: those it does not read are NULL). */
static int prepare_inner(sqlite3 *db, int plan, sqlite3_stmt **out)
{
    char sql[512];
    size_t n = (size_t)snprintf(sql, sizeof(sql), "SELECT seq");
    for (int i = 1; i != NUM_INNER_COLS; ++i)
        n += (size_t)snprintf(sql + n, sizeof(sql) - n, ", %s",
                              plan >> (PLAN_COLS_SHIFT + i - 1) & 1 ? inner_cols[i] : "NULL");
    snprintf(sql + n, sizeof(sql) - n, " FROM main.log_rows WHERE %sseq BETWEEN ?1 AND ?2 ORDER BY seq%s",
             plan & PLAN_EVENT ? "event_id = ?3 AND " : "", plan & PLAN_DESC ? " DESC" : "");
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
}

static int tab_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out, char **err)
{
    (void)aux, (void)argc, (void)argv, (void)err;
    tg_buf_t sql;
    tg_buf_init(&sql, 4096);
    tg_buf_append_str(&sql, "CREATE TABLE x(seq INTEGER");
    for (unsigned f = 0; f != TG_LR_NUM; ++f)
        tg_buf_appendf(&sql, ", %s", tg_logrow_names[f]);
    tg_buf_append_str(&sql,
                      ", metadata TEXT, event_id TEXT, flags INTEGER, payload INTEGER, feedback INTEGER, score REAL)");
    int rc = sql.overflowed ? SQLITE_TOOBIG : sqlite3_declare_vtab(db, tg_buf_cstr(&sql));
    tg_buf_free(&sql);
    if (rc != SQLITE_OK)
        return rc;
    logtab_t *t = tg_calloc(1, sizeof(*t));
    t->db = db;
    *out = &t->base;
    return SQLITE_OK;
}

static int tab_disconnect(sqlite3_vtab *vt)
{
    logtab_t *t = (logtab_t *)vt;
    for (int i = 0; i != NUM_SPARE; ++i)
        sqlite3_finalize(t->spare[i].st);
    free(t);
    return SQLITE_OK;
}

static int tab_best_index(sqlite3_vtab *vt, sqlite3_index_info *info)
{
    (void)vt;
    char plan[64];
    size_t np = 0;
    bool lo = false, hi = false, eq = false, event = false;
    for (int i = 0; i != info->nConstraint && np + 1 < sizeof(plan); ++i) {
        const struct sqlite3_index_constraint *c = &info->aConstraint[i];
        if (!c->usable)
            continue;
        char op = 0;
        if (c->iColumn == COL_SEQ || c->iColumn == -1) {
            switch (c->op) {
            case SQLITE_INDEX_CONSTRAINT_EQ:
                op = 'e', eq = true;
                break;
            case SQLITE_INDEX_CONSTRAINT_GE:
                op = 'g', lo = true;
                break;
            case SQLITE_INDEX_CONSTRAINT_GT:
                op = 'G', lo = true;
                break;
            case SQLITE_INDEX_CONSTRAINT_LE:
                op = 'l', hi = true;
                break;
            case SQLITE_INDEX_CONSTRAINT_LT:
                op = 'L', hi = true;
                break;
            default:
                break;
            }
        } else if (c->iColumn == COL_EVENT_ID && c->op == SQLITE_INDEX_CONSTRAINT_EQ && !event) {
            op = 'v', event = true;
        }
        if (op == 0)
            continue;
        plan[np++] = op;
        info->aConstraintUsage[i].argvIndex = (int)np;
    }
    plan[np] = '\0';
    int flags = event ? PLAN_EVENT : 0;
    /* newest first, the lists' order, comes in order (merge); the other way SQLite sorts (a block's records and the
     * late records among them would need a wait as long as TG_LOGBLOCK_SPAN to come in order) */
    if (info->nOrderBy == 1 && (info->aOrderBy[0].iColumn == COL_SEQ || info->aOrderBy[0].iColumn == -1) &&
        info->aOrderBy[0].desc) {
        flags |= PLAN_ORDERED | PLAN_DESC;
        info->orderByConsumed = 1;
    }
    double rows = eq ? 1 : event ? 10 : lo && hi ? 1000 : lo || hi ? 100000 : 1000000;
    info->estimatedRows = (sqlite3_int64)rows;
    info->estimatedCost = rows;
    if (eq)
        info->idxFlags |= SQLITE_INDEX_SCAN_UNIQUE;
    /* the inner columns the query reads: rec and flags always (a block row holds all its records' columns), the
     * others for themselves */
    flags |= PLAN_COL(IN_REC) | PLAN_COL(IN_FLAGS);
    for (int col = 0; col != NUM_COLS; ++col) {
        if ((info->colUsed & ((sqlite3_uint64)1 << TG_MIN(col, 63))) == 0)
            continue;
        if (col >= COL_FIRST_FIELD && col < COL_METADATA)
            flags |= PLAN_COL(IN_REC);
        else if (col >= COL_METADATA)
            flags |= PLAN_COL(IN_METADATA + (col - COL_METADATA));
    }
    info->idxNum = flags;
    info->idxStr = sqlite3_mprintf("%s", plan);
    info->needToFreeIdxStr = 1;
    return info->idxStr != NULL ? SQLITE_OK : SQLITE_NOMEM;
}

static int cur_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out)
{
    (void)vt;
    cursor_t *c = tg_calloc(1, sizeof(*c));
    c->eof = true;
    *out = &c->base;
    return SQLITE_OK;
}

/* The cursor's statement back to its table's spares (a free place, else the one taken longest ago). */
static void cur_release(cursor_t *c)
{
    logtab_t *t = (logtab_t *)c->base.pVtab;
    if (c->st == NULL)
        return;
    sqlite3_reset(c->st);
    sqlite3_clear_bindings(c->st);
    unsigned at = NUM_SPARE;
    for (unsigned i = 0; i != NUM_SPARE && at == NUM_SPARE; ++i)
        if (t->spare[i].st == NULL)
            at = i;
    if (at == NUM_SPARE) {
        at = t->next_spare++ % NUM_SPARE;
        sqlite3_finalize(t->spare[at].st);
    }
    t->spare[at].st = c->st;
    t->spare[at].plan = c->plan;
    c->st = NULL;
}

static void forget_copies(cursor_t *c)
{
    for (size_t i = 0; i != c->ncopies; ++i)
        free(c->copies[i]);
    c->ncopies = 0;
}

static int cur_close(sqlite3_vtab_cursor *cur)
{
    cursor_t *c = (cursor_t *)cur;
    cur_release(c);
    forget_copies(c);
    free(c->copies);
    free(c->ents);
    free(c);
    return SQLITE_OK;
}

/* Narrows [*lo, *hi] by `seq op v`, where it can do so exactly or conservatively (a bound of another type is left to
 * SQLite's own check). */
static void narrow(char op, sqlite3_value *v, int64_t *lo, int64_t *hi)
{
    int type = sqlite3_value_numeric_type(v);
    int64_t a, b; /* the integers x with a <= x <= b that can satisfy `x == v` */
    if (type == SQLITE_INTEGER) {
        a = b = sqlite3_value_int64(v);
    } else if (type == SQLITE_FLOAT) {
        double d = sqlite3_value_double(v);
        if (isnan(d))
            return;
        /* (doubles at or past +-2^63 are past every int64; the int64s nearest them are exact doubles) */
        a = d < -9223372036854775808.0 ? INT64_MIN : d >= 9223372036854775808.0 ? INT64_MAX : (int64_t)floor(d);
        b = d < -9223372036854775808.0 ? INT64_MIN : d >= 9223372036854775808.0 ? INT64_MAX : (int64_t)ceil(d);
    } else {
        return;
    }
    switch (op) {
    case 'e':
        *lo = TG_MAX(*lo, a);
        *hi = TG_MIN(*hi, b);
        break;
    case 'g':
        *lo = TG_MAX(*lo, a);
        break;
    case 'G':
        *lo = TG_MAX(*lo, b == INT64_MAX ? INT64_MAX : b + (a == b));
        break;
    case 'l':
        *hi = TG_MIN(*hi, b);
        break;
    case 'L':
        *hi = TG_MIN(*hi, a == INT64_MIN ? INT64_MIN : a - (a == b));
        break;
    default:
        break;
    }
}

static int inner_error(cursor_t *c, int rc)
{
    logtab_t *t = (logtab_t *)c->base.pVtab;
    sqlite3_free(t->base.zErrMsg);
    t->base.zErrMsg = sqlite3_mprintf("%s", sqlite3_errmsg(t->db));
    c->eof = c->row_eof = true;
    return rc;
}

/* The inner statement's next row (row_eof at the end). */
static int step_row(cursor_t *c)
{
    int rc = sqlite3_step(c->st);
    c->row_eof = rc != SQLITE_ROW;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : inner_error(c, rc);
}

static int64_t row_seq(const cursor_t *c)
{
    return sqlite3_column_int64(c->st, IN_SEQ);
}

static bool row_is_block(const cursor_t *c)
{
    return (sqlite3_column_int64(c->st, IN_FLAGS) & TG_LOGFLAG_BLOCK) != 0;
}

static int by_key(const void *a, const void *b)
{
    int64_t x = ((const tg_logblock_entry_t *)a)->key, y = ((const tg_logblock_entry_t *)b)->key;
    return (x > y) - (x < y);
}

/* Adds the records of the current row (a block) with keys in [lo, hi] to ents, in key order; a copy of the block
 * when they are to outlive the row (merge). */
static void read_block(cursor_t *c)
{
    const void *p = sqlite3_column_blob(c->st, IN_REC);
    size_t n = (size_t)sqlite3_column_bytes(c->st, IN_REC), off = 0, before = c->nents;
    int64_t key = row_seq(c);
    if (p == NULL)
        return;
    if (c->merge) {
        unsigned char *copy = tg_malloc(n);
        memcpy(copy, p, n);
        c->copies = tg_realloc(c->copies, (c->ncopies + 1) * sizeof(*c->copies));
        c->copies[c->ncopies++] = copy;
        p = copy;
    }
    tg_logblock_entry_t e;
    while (tg_logblock_next(p, n, key, &off, &e) == 1) {
        if (e.key < c->lo || e.key > c->hi)
            continue;
        if (c->nents == c->cap) {
            c->cap = c->cap != 0 ? c->cap * 2 : TG_LOGBLOCK_MAX;
            c->ents = tg_realloc(c->ents, c->cap * sizeof(*c->ents));
        }
        c->ents[c->nents++] = e;
    }
    if (c->merge && c->nents == 0)
        forget_copies(c); /* (nothing of it in [lo, hi], nothing waiting: a block at the range's edge) */
    bool sorted = before == 0;
    for (size_t i = 1; i < c->nents && sorted; ++i)
        sorted = by_key(&c->ents[i - 1], &c->ents[i]) < 0;
    if (!sorted) /* (not seen: a block written out of order, or two at once) */
        qsort(c->ents, c->nents, sizeof(*c->ents), by_key);
}

/* From the current inner row on, to the next record to give (or eof). */
static int settle(cursor_t *c)
{
    for (;;) {
        if (c->merge && c->nents != 0 && (c->row_eof || c->ents[c->nents - 1].key > row_seq(c))) {
            c->in_block = true;
            return SQLITE_OK;
        }
        if (c->row_eof) {
            c->eof = true;
            return SQLITE_OK;
        }
        if (row_is_block(c)) {
            read_block(c);
            if (!c->merge && c->nents != 0) {
                c->in_block = true;
                c->at = 0;
                return SQLITE_OK;
            }
        } else if (row_seq(c) >= c->lo && row_seq(c) <= c->hi) {
            c->in_block = false;
            return SQLITE_OK;
        }
        int rc = step_row(c);
        if (rc != SQLITE_OK)
            return rc;
    }
}

static int cur_next(sqlite3_vtab_cursor *cur)
{
    cursor_t *c = (cursor_t *)cur;
    c->split = false;
    if (c->in_block) {
        c->in_block = false;
        if (c->merge) {
            if (--c->nents == 0)
                forget_copies(c);
            return settle(c);
        }
        if (++c->at != c->nents) {
            c->in_block = true;
            return SQLITE_OK;
        }
        c->nents = 0;
    }
    int rc = step_row(c);
    return rc != SQLITE_OK ? rc : settle(c);
}

/* The record the cursor is on, when it is one of a block's. */
static const tg_logblock_entry_t *entry(const cursor_t *c)
{
    return !c->in_block ? NULL : c->merge ? &c->ents[c->nents - 1] : &c->ents[c->at];
}

static int cur_filter(sqlite3_vtab_cursor *cur, int idx_num, const char *idx_str, int argc, sqlite3_value **argv)
{
    cursor_t *c = (cursor_t *)cur;
    logtab_t *t = (logtab_t *)cur->pVtab;
    cur_release(c);
    forget_copies(c);
    c->eof = c->row_eof = true;
    c->in_block = c->split = false;
    c->nents = 0;
    int64_t lo = INT64_MIN, hi = INT64_MAX;
    sqlite3_value *event = NULL;
    for (int i = 0; i != argc && idx_str != NULL && idx_str[i] != '\0'; ++i) {
        if (idx_str[i] == 'v')
            event = argv[i];
        else
            narrow(idx_str[i], argv[i], &lo, &hi);
    }
    if (lo > hi)
        return SQLITE_OK; /* nothing can match */
    c->lo = lo;
    c->hi = hi;
    c->merge = (idx_num & PLAN_ORDERED) != 0 && (idx_num & PLAN_DESC) != 0;
    c->plan = idx_num & ~PLAN_ORDERED & ~(event == NULL ? PLAN_EVENT : 0);
    for (unsigned i = 0; i != NUM_SPARE && c->st == NULL; ++i) {
        if (t->spare[i].st != NULL && t->spare[i].plan == c->plan) {
            c->st = t->spare[i].st;
            t->spare[i].st = NULL;
        }
    }
    if (c->st == NULL) {
        int rc = prepare_inner(t->db, c->plan, &c->st);
        if (rc != SQLITE_OK) {
            sqlite3_free(t->base.zErrMsg);
            t->base.zErrMsg = sqlite3_mprintf("%s", sqlite3_errmsg(t->db));
            c->st = NULL;
            return rc;
        }
    }
    sqlite3_bind_int64(c->st, 1, lo);
    sqlite3_bind_int64(c->st, 2, hi > INT64_MAX - TG_LOGBLOCK_SPAN ? INT64_MAX : hi + TG_LOGBLOCK_SPAN); /* blocks */
    if (c->plan & PLAN_EVENT)
        sqlite3_bind_value(c->st, 3, event);
    c->eof = false;
    int rc = step_row(c);
    return rc != SQLITE_OK ? rc : settle(c);
}

static int cur_eof(sqlite3_vtab_cursor *cur)
{
    return ((cursor_t *)cur)->eof;
}

void tg_logtab_result(sqlite3_context *ctx, const tg_logrow_value_t *v)
{
    switch (v->type) {
    case TG_LRV_INT:
        sqlite3_result_int64(ctx, v->i);
        break;
    case TG_LRV_REAL:
        sqlite3_result_double(ctx, v->d);
        break;
    case TG_LRV_TEXT:
        sqlite3_result_text(ctx, v->s, (int)v->len, SQLITE_TRANSIENT);
        break;
    case TG_LRV_NULL:
        break;
    }
}

static int cur_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col)
{
    cursor_t *c = (cursor_t *)cur;
    const tg_logblock_entry_t *e = entry(c);
    if (col == COL_SEQ) {
        sqlite3_result_int64(ctx, e != NULL ? e->key : row_seq(c));
        return SQLITE_OK;
    }
    if (col >= COL_METADATA && e != NULL) {
        if (col == COL_METADATA && e->metadata != NULL)
            sqlite3_result_text(ctx, e->metadata, (int)e->metadata_len, SQLITE_TRANSIENT);
        else if (col == COL_FLAGS)
            sqlite3_result_int64(ctx, e->flags);
        else if (col == COL_PAYLOAD && e->payload >= 0)
            sqlite3_result_int64(ctx, e->payload);
        return SQLITE_OK; /* (NULL: no event id, feedback nor score in a block) */
    }
    if (col >= COL_METADATA) {
        int i = IN_METADATA + (col - COL_METADATA);
        if (sqlite3_column_type(c->st, i) == SQLITE_TEXT) /* (copied into the result's buffer, which is reused) */
            sqlite3_result_text(ctx, (const char *)sqlite3_column_text(c->st, i), sqlite3_column_bytes(c->st, i),
                                SQLITE_TRANSIENT);
        else
            sqlite3_result_value(ctx, sqlite3_column_value(c->st, i));
        return SQLITE_OK;
    }
    if (!c->split) {
        const void *p = e != NULL ? e->rec : sqlite3_column_blob(c->st, IN_REC);
        size_t n = e != NULL ? e->rec_len : (size_t)sqlite3_column_bytes(c->st, IN_REC);
        if (p != NULL)
            tg_logrow_split(p, n, c->v);
        else
            for (unsigned f = 0; f != TG_LR_NUM; ++f)
                c->v[f].type = TG_LRV_NULL;
        c->split = true;
    }
    tg_logtab_result(ctx, &c->v[col - COL_FIRST_FIELD]);
    return SQLITE_OK;
}

static int cur_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid)
{
    const cursor_t *c = (const cursor_t *)cur;
    const tg_logblock_entry_t *e = entry(c);
    *rowid = e != NULL ? e->key : row_seq(c);
    return SQLITE_OK;
}

static const sqlite3_module logtab_module = {
    .iVersion = 0,
    .xCreate = tab_connect,
    .xConnect = tab_connect,
    .xBestIndex = tab_best_index,
    .xDisconnect = tab_disconnect,
    .xDestroy = tab_disconnect,
    .xOpen = cur_open,
    .xClose = cur_close,
    .xFilter = cur_filter,
    .xNext = cur_next,
    .xEof = cur_eof,
    .xColumn = cur_column,
    .xRowid = cur_rowid,
};

int tg_logtab_create(sqlite3 *db)
{
    int rc = sqlite3_create_module_v2(db, "tg_logs", &logtab_module, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "CREATE VIRTUAL TABLE IF NOT EXISTS temp.logs USING tg_logs", NULL, NULL, NULL);
    return rc;
}
