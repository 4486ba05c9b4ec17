/*
 * SQLite as the gateway's stores use it (the log store, the response cache): the process-wide settings, and opening
 * a connection the same way for both. A connection is used by one thread at a time (opened NOMUTEX).
 */
#ifndef TOLLGATE_SQLITEDB_H
#define TOLLGATE_SQLITEDB_H

#include <stddef.h>
#include <sqlite3.h>

/* Process-wide settings for every database of the process: no allocation statistics, whose global mutex and
 * counters SQLite otherwise takes on every allocation it makes. Call once, before any database is opened (later it
 * changes nothing). */
void tg_sqlite_configure(void);

/* Opens `path` with `flags` (SQLITE_OPEN_READONLY, or _READWRITE with or without _CREATE) and a 5 s busy timeout.
 * NULL with "cannot open PATH: reason" in errbuf on failure. */
sqlite3 *tg_sqlite_open(const char *path, int flags, char *errbuf, size_t errbufsz);

#endif
