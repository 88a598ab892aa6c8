#include <sqlite3.h>

/* sqlite3_db_config is variadic, which Swift cannot call: one fixed-argument wrapper per option used. */

/* SQLITE_DBCONFIG_DEFENSIVE on: no writes to the schema or shadow tables, no features that corrupt the file. */
static inline int peon_sqlite3_set_defensive(sqlite3 *db) {
    return sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)0);
}

/* SQLITE_DBCONFIG_TRUSTED_SCHEMA off: functions and virtual tables in views and triggers only if innocuous. */
static inline int peon_sqlite3_untrusted_schema(sqlite3 *db) {
    return sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)0);
}
