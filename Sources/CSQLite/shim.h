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

#include <dlfcn.h>

/* The pre-update hook (sqlite3_preupdate_hook) is declared only when SQLite was built with
   SQLITE_ENABLE_PREUPDATE_HOOK, and exists in the library only then. It is looked up at run time, so
   peon-wasm links against any libsqlite3; returns 1 when the hook was installed, 0 when this SQLite has
   none (the caller then fails closed). */
typedef void (*peon_sqlite3_preupdate_callback)(void *context, sqlite3 *db, int op, char const *database,
                                                char const *table, sqlite3_int64 key, sqlite3_int64 newKey);
typedef void *(*peon_sqlite3_preupdate_hook_function)(sqlite3 *, peon_sqlite3_preupdate_callback, void *);

static inline int peon_sqlite3_set_preupdate_hook(sqlite3 *db, peon_sqlite3_preupdate_callback callback, void *context) {
    peon_sqlite3_preupdate_hook_function install =
        (peon_sqlite3_preupdate_hook_function)dlsym(RTLD_DEFAULT, "sqlite3_preupdate_hook");
    if (install == 0) return 0;
    install(db, callback, context);
    return 1;
}
