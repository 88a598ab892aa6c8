/*
 * peon.h: the C guest SDK for peon-wasm (wit/peon.wit, package peon:host@0.1.0, world `agent`).
 *
 * Two layers:
 *   1. `peon_raw_*`: the host imports declared exactly as the Component Model canonical ABI lowers
 *      them for a core module (the same core signatures and memory layouts wit-bindgen generates).
 *      Use these if you write your own bindings; the `_Static_assert`s below pin every layout.
 *   2. `peon_*`: convenient wrappers that copy strings in, hand back malloc'd results and turn
 *      `result<_, error>` into `bool` plus a `peon_error`.
 *
 * The agent defines one function, `peon_run` (see the bottom of this file); peon.c exports `run`,
 * `cabi_post_run` and `cabi_realloc` for it. Build with clang for wasm32 (see modules/build.sh):
 * no WASI import is needed or produced.
 *
 * Ownership: every pointer the host returns was allocated in this module by `cabi_realloc`
 * (which is `malloc`/`realloc`), so results are released with `free` or the `peon_*_free` helpers.
 */
#ifndef PEON_H
#define PEON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PEON_IMPORT(module, name) __attribute__((import_module(module), import_name(name)))

/* ---- types (interface `types`) ----------------------------------------------------------------- */

/** `enum error-code`: stored as one byte, passed flat as i32. */
typedef enum peon_error_code {
    PEON_DENIED = 0,
    PEON_INVALID_ARGUMENT = 1,
    PEON_NOT_FOUND = 2,
    PEON_LIMIT_EXCEEDED = 3,
    PEON_IO = 4,
    PEON_TIMEOUT = 5,
} peon_error_code;

/** A `list<u8>` or a `string` in memory: (ptr, len), 8 bytes, align 4. */
typedef struct peon_list {
    uint8_t *ptr;
    size_t len;
} peon_list;

/** `record error { code: error-code, message: string }`: code @0 (u8), message @4; size 12, align 4. */
typedef struct peon_raw_error {
    uint8_t code;
    peon_list message;
} peon_raw_error;

/** `result<list<u8>, error>` and `result<list<string>, error>`: tag @0, payload @4; size 16. */
typedef struct peon_raw_result_list {
    uint8_t is_err;
    union {
        peon_list ok;
        peon_raw_error err;
    } val;
} peon_raw_result_list;

/** `result<_, error>`: tag @0, error @4; size 16. */
typedef struct peon_raw_result_unit {
    uint8_t is_err;
    union {
        peon_raw_error err;
    } val;
} peon_raw_result_unit;

/* ---- http --------------------------------------------------------------------------------------- */

/** `record header { name: string, value: string }`: size 16, align 4. */
typedef struct peon_raw_header {
    peon_list name;
    peon_list value;
} peon_raw_header;

/** `record response { status: u16, headers: list<header>, body: list<u8> }`: @0, @4, @12; size 20. */
typedef struct peon_raw_response {
    uint16_t status;
    peon_list headers; /* of peon_raw_header */
    peon_list body;
} peon_raw_response;

/** `result<response, error>`: tag @0, payload @4; size 24. */
typedef struct peon_raw_result_response {
    uint8_t is_err;
    union {
        peon_raw_response ok;
        peon_raw_error err;
    } val;
} peon_raw_result_response;

/* ---- db ----------------------------------------------------------------------------------------- */

typedef enum peon_value_kind {
    PEON_NULL = 0,
    PEON_INTEGER = 1,
    PEON_REAL = 2,
    PEON_TEXT = 3,
    PEON_BLOB = 4,
} peon_value_kind;

/** `variant value`: tag @0 (u8), payload @8 (s64 | f64 | string | list<u8>); size 16, align 8. */
typedef struct peon_value {
    uint8_t kind; /* peon_value_kind */
    union {
        int64_t integer;
        double real;
        peon_list text;
        peon_list blob;
    } val;
} peon_value;

/** `record rows { columns: list<string>, rows: list<list<value>> }`: @0, @8; size 16, align 4. */
typedef struct peon_rows {
    peon_list columns; /* of peon_list (strings) */
    peon_list rows;    /* of peon_list (of peon_value) */
} peon_rows;

/** `result<rows, error>`: tag @0, payload @4; size 20. */
typedef struct peon_raw_result_rows {
    uint8_t is_err;
    union {
        peon_rows ok;
        peon_raw_error err;
    } val;
} peon_raw_result_rows;

/** `result<u64, error>`: tag @0, payload @8 (u64 needs align 8); size 24, align 8. */
typedef struct peon_raw_result_u64 {
    uint8_t is_err;
    union {
        uint64_t ok;
        peon_raw_error err;
    } val;
} peon_raw_result_u64;

/* ---- exec --------------------------------------------------------------------------------------- */

/** `record output { code: s32, stdout: list<u8>, stderr: list<u8> }`: @0, @4, @12; size 20. */
typedef struct peon_output {
    int32_t code;
    peon_list out;
    peon_list err;
} peon_output;

/** `result<output, error>`: tag @0, payload @4; size 24. */
typedef struct peon_raw_result_output {
    uint8_t is_err;
    union {
        peon_output ok;
        peon_raw_error err;
    } val;
} peon_raw_result_output;

/* ---- the layouts, pinned (wasm32) --------------------------------------------------------------- */
#ifdef __wasm32__
_Static_assert(sizeof(peon_raw_error) == 12 && _Alignof(peon_raw_error) == 4, "error layout");
_Static_assert(offsetof(peon_raw_error, message) == 4, "error.message @4");
_Static_assert(sizeof(peon_raw_result_list) == 16 && offsetof(peon_raw_result_list, val) == 4, "result<list,error>");
_Static_assert(sizeof(peon_raw_result_unit) == 16 && offsetof(peon_raw_result_unit, val) == 4, "result<_,error>");
_Static_assert(sizeof(peon_raw_header) == 16, "header");
_Static_assert(sizeof(peon_raw_response) == 20 && offsetof(peon_raw_response, headers) == 4 &&
               offsetof(peon_raw_response, body) == 12, "response");
_Static_assert(sizeof(peon_raw_result_response) == 24 && offsetof(peon_raw_result_response, val) == 4, "result<response,error>");
_Static_assert(sizeof(peon_value) == 16 && _Alignof(peon_value) == 8 && offsetof(peon_value, val) == 8, "value");
_Static_assert(sizeof(peon_rows) == 16 && offsetof(peon_rows, rows) == 8, "rows");
_Static_assert(sizeof(peon_raw_result_rows) == 20 && offsetof(peon_raw_result_rows, val) == 4, "result<rows,error>");
_Static_assert(sizeof(peon_raw_result_u64) == 24 && offsetof(peon_raw_result_u64, val) == 8, "result<u64,error>");
_Static_assert(sizeof(peon_output) == 20 && offsetof(peon_output, err) == 12, "output");
_Static_assert(sizeof(peon_raw_result_output) == 24 && offsetof(peon_raw_result_output, val) == 4, "result<output,error>");
#endif

/* ---- layer 1: the imports as the canonical ABI lowers them ---------------------------------------
 * Every string/list parameter is (ptr, len); a result that flattens to more than one value is
 * written to `ret`, a caller-provided area, and the core function returns nothing.                 */

/* fs.read(path) -> result<list<u8>, error>          core: (i32 i32 i32) -> () */
PEON_IMPORT("peon:host/fs@0.1.0", "read")
void peon_raw_fs_read(const char *path, size_t path_len, peon_raw_result_list *ret);
/* fs.write(path, data) -> result<_, error>           core: (i32 i32 i32 i32 i32) -> () */
PEON_IMPORT("peon:host/fs@0.1.0", "write")
void peon_raw_fs_write(const char *path, size_t path_len, const uint8_t *data, size_t data_len,
                       peon_raw_result_unit *ret);
/* fs.append(path, data) -> result<_, error>          core: (i32 i32 i32 i32 i32) -> () */
PEON_IMPORT("peon:host/fs@0.1.0", "append")
void peon_raw_fs_append(const char *path, size_t path_len, const uint8_t *data, size_t data_len,
                        peon_raw_result_unit *ret);
/* fs.read-dir(path) -> result<list<string>, error>  core: (i32 i32 i32) -> () */
PEON_IMPORT("peon:host/fs@0.1.0", "read-dir")
void peon_raw_fs_read_dir(const char *path, size_t path_len, peon_raw_result_list *ret);
/* fs.remove(path) -> result<_, error>                core: (i32 i32 i32) -> () */
PEON_IMPORT("peon:host/fs@0.1.0", "remove")
void peon_raw_fs_remove(const char *path, size_t path_len, peon_raw_result_unit *ret);

/* http.send(req) -> result<response, error>: the request record flattens to 8 i32
 * (method, url, headers, body as (ptr, len) each)   core: (i32 x 9) -> () */
PEON_IMPORT("peon:host/http@0.1.0", "send")
void peon_raw_http_send(const char *method, size_t method_len, const char *url, size_t url_len,
                        const peon_raw_header *headers, size_t headers_len, const uint8_t *body,
                        size_t body_len, peon_raw_result_response *ret);

/* db.query(database, sql, params) -> result<rows, error>   core: (i32 x 7) -> () */
PEON_IMPORT("peon:host/db@0.1.0", "query")
void peon_raw_db_query(const char *db, size_t db_len, const char *sql, size_t sql_len,
                       const peon_value *params, size_t params_len, peon_raw_result_rows *ret);
/* db.execute(database, sql, params) -> result<u64, error>  core: (i32 x 7) -> () */
PEON_IMPORT("peon:host/db@0.1.0", "execute")
void peon_raw_db_execute(const char *db, size_t db_len, const char *sql, size_t sql_len,
                         const peon_value *params, size_t params_len, peon_raw_result_u64 *ret);

/* exec.run(program, args, stdin) -> result<output, error>   core: (i32 x 7) -> () */
PEON_IMPORT("peon:host/exec@0.1.0", "run")
void peon_raw_exec_run(const char *program, size_t program_len, const peon_list *args, size_t args_len,
                       const uint8_t *stdin_data, size_t stdin_len, peon_raw_result_output *ret);

/* log.log(level, message)                            core: (i32 i32 i32) -> () */
PEON_IMPORT("peon:host/log@0.1.0", "log")
void peon_raw_log(int32_t level, const char *message, size_t message_len);

/* ---- layer 2: convenient wrappers ---------------------------------------------------------------- */

/** A refusal or failure from the host. `message` is NUL-terminated and owned: release with
 *  `peon_error_free`. */
typedef struct peon_error {
    peon_error_code code;
    char *message;
} peon_error;

/** Releases memory the SDK handed out (file contents from peon_fs_read, ...): `free`, for FFI users. */
void peon_free(void *ptr);

/** The name of an error code ("denied", "not-found", ...). */
const char *peon_error_code_name(peon_error_code code);
/** Releases an error's message (safe on a zeroed or already-freed error). */
void peon_error_free(peon_error *err);

/* Each wrapper returns true on success. On failure it returns false and, if `err` is not NULL,
 * fills it (release with peon_error_free). Paths and other strings are NUL-terminated C strings. */

/** Reads a whole file into a malloc'd buffer (NUL-terminated for convenience; `*len` excludes it). */
bool peon_fs_read(const char *path, uint8_t **data, size_t *len, peon_error *err);
bool peon_fs_write(const char *path, const void *data, size_t len, peon_error *err);
bool peon_fs_append(const char *path, const void *data, size_t len, peon_error *err);
/** Lists a directory: `*names` is a malloc'd array of `*count` malloc'd C strings
 *  (release with peon_strings_free). */
bool peon_fs_read_dir(const char *path, char ***names, size_t *count, peon_error *err);
bool peon_fs_remove(const char *path, peon_error *err);
void peon_strings_free(char **strings, size_t count);

/** A header for requests, as C strings. */
typedef struct peon_header {
    const char *name;
    const char *value;
} peon_header;

/** An HTTP response as the host returned it (release with peon_response_free). */
typedef struct peon_response {
    uint16_t status;
    peon_raw_header *headers;
    size_t headers_len;
    uint8_t *body;
    size_t body_len;
} peon_response;

bool peon_http_send(const char *method, const char *url, const peon_header *headers, size_t headers_len,
                    const void *body, size_t body_len, peon_response *response, peon_error *err);
void peon_response_free(peon_response *response);

/** Value constructors for db parameters (the strings are borrowed, not copied). */
peon_value peon_value_null(void);
peon_value peon_value_integer(int64_t v);
peon_value peon_value_real(double v);
peon_value peon_value_text(const char *s);

/** Query results: `columns[i]` and `rows[r][c]` (release with peon_rows_free). */
typedef struct peon_table {
    peon_list *columns;
    size_t column_count;
    peon_list *rows; /* each a list of peon_value */
    size_t row_count;
} peon_table;

bool peon_db_query(const char *db, const char *sql, const peon_value *params, size_t params_len,
                   peon_table *table, peon_error *err);
bool peon_db_execute(const char *db, const char *sql, const peon_value *params, size_t params_len,
                     uint64_t *changed, peon_error *err);
/** The value at (row, column), or NULL when out of range. */
const peon_value *peon_table_cell(const peon_table *table, size_t row, size_t column);
void peon_table_free(peon_table *table);

/** Runs a program (no shell) with NUL-terminated arguments; output buffers are malloc'd
 *  (release with peon_output_free). */
bool peon_exec(const char *program, const char *const *args, size_t args_len, const void *stdin_data,
               size_t stdin_len, peon_output *output, peon_error *err);
void peon_output_free(peon_output *output);

typedef enum peon_level { PEON_DEBUG = 0, PEON_INFO = 1, PEON_WARN = 2, PEON_ERROR = 3 } peon_level;
void peon_log(peon_level level, const char *message);

/* ---- growable text buffer, for building the answer ---------------------------------------------- */
typedef struct peon_buf {
    char *ptr;
    size_t len;
    size_t cap;
} peon_buf;

void peon_buf_append(peon_buf *buf, const void *data, size_t len);
void peon_buf_puts(peon_buf *buf, const char *s);
/** Appends formatted text: %s %.*s %c %d %i %u %x with l, ll or z, and %% (no widths). */
void peon_buf_printf(peon_buf *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void peon_buf_free(peon_buf *buf);

/* ---- the agent's entry point --------------------------------------------------------------------
 * Defined by the agent. `input` is the run input (NUL-terminated, `input_len` bytes). Append the
 * answer to `out` and return true for `ok(answer)`, or append an error message and return false
 * for `err(message)`. peon.c exports it as the world export `run: func(input: string) ->
 * result<string, string>` (core `run(i32 i32) -> i32` plus `cabi_post_run(i32)`). */
bool peon_run(const char *input, size_t input_len, peon_buf *out);

#ifdef __cplusplus
}
#endif
#endif /* PEON_H */
