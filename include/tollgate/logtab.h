/*
 * The table `logs` that the logs API's SQL reads (a virtual table, TEMP, made on each query connection): one row a
 * log record, under the column names the fields had as columns in log layout 3 (`seq`, the fields of logrow.h under
 * tg_logrow_names, then `metadata`, `event_id`, `flags`, `payload`, `feedback`, `score`). It reads main.log_rows.
 *
 * Why a virtual table and not a view over log_rows (as before): a row's packed fields are split once when
 * the row is read, not by a tg_rec() call a field; and this is the one place that knows how rows of log_rows make
 * records, so their layout can change without the logs API's SQL changing. It reads log_rows as the constraints
 * allow: a range of `seq` (a gateway's records, a time window, an id's milliseconds) is a range of the table's keys,
 * `event_id = ?` is its index, and `ORDER BY seq` either way is the table's own order (a list's newest page reads only
 * that page).
 *
 * The fields have no type affinity (as the view's tg_rec() values had none): a number compares equal only to a
 * number; seq, metadata, event_id, flags, payload, feedback and score have log_rows' column types. The table is
 * read-only; changes go to log_rows.
 */
#ifndef TOLLGATE_LOGTAB_H
#define TOLLGATE_LOGTAB_H

#include <sqlite3.h>

#include "tollgate/logrow.h"

/* Registers the module and creates temp.logs on db; an SQLite result code. */
int tg_logtab_create(sqlite3 *db);

/* A field's value (logrow.h) as the result of an SQL function or column. */
void tg_logtab_result(sqlite3_context *ctx, const tg_logrow_value_t *v);

#endif
