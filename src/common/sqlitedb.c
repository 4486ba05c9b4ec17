/* SQLite set up once for the process, and connections opened alike by the log store and the response cache. */
#include <stdio.h>
#include "tollgate/sqlitedb.h"

void tg_sqlite_configure(void)
{
    /* SQLITE_MISUSE once SQLite is initialised: the setting then stays as it was, which is only slower */
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

sqlite3 *tg_sqlite_open(const char *path, int flags, char *errbuf, size_t errbufsz)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(errbuf, errbufsz, "cannot open %s: %s", path, db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    return db;
}
