/*
 * SDK self-test (C): calls every wrapper of modules/sdk/c/peon.h once and checks what comes
 * back, so a layout mistake in the SDK fails loudly. Input: a scratch folder the grants allow.
 * Run by modules/check.sh under pyhost with grants it writes itself. (Zig and Swift agents use
 * this same C SDK.)
 */
#include "peon.h"

#include <stdlib.h>
#include <string.h>

#define CHECK(cond, what)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            peon_buf_printf(out, "selftest failed: %s", what);                                     \
            return false;                                                                          \
        }                                                                                          \
    } while (0)

bool peon_run(const char *dir, size_t dir_len, peon_buf *out) {
    (void)dir_len;
    peon_error err = {0};
    peon_buf file = {0};
    peon_buf_printf(&file, "%s/a.txt", dir);

    CHECK(peon_fs_write(file.ptr, "hello", 5, &err), "fs write");
    CHECK(peon_fs_append(file.ptr, " world", 6, &err), "fs append");
    uint8_t *data = NULL;
    size_t len = 0;
    CHECK(peon_fs_read(file.ptr, &data, &len, &err), "fs read");
    CHECK(len == 11 && memcmp(data, "hello world", 11) == 0 && data[11] == 0, "fs read content");
    free(data);
    char **names = NULL;
    size_t count = 0;
    CHECK(peon_fs_read_dir(dir, &names, &count, &err), "fs read-dir");
    bool listed = false;
    for (size_t i = 0; i < count; i++) {
        listed = listed || strcmp(names[i], "a.txt") == 0;
    }
    peon_strings_free(names, count);
    CHECK(listed, "fs read-dir lists a.txt");
    CHECK(peon_fs_remove(file.ptr, &err), "fs remove");
    CHECK(!peon_fs_read(file.ptr, &data, &len, &err) && err.code == PEON_NOT_FOUND && err.message != NULL &&
              err.message[0] != '\0',
          "fs read after remove is not-found");
    peon_error_free(&err);
    CHECK(!peon_fs_read("/etc/shadow", &data, &len, &err) && err.code == PEON_DENIED, "fs read outside is denied");
    peon_error_free(&err);
    peon_buf_free(&file);

    peon_value values[5] = {peon_value_integer(-5), peon_value_real(2.5), peon_value_text("h\xc3\xa9llo"),
                            peon_value_null(), peon_value_null()};
    static const uint8_t blob[3] = {0, 1, 255};
    values[3].kind = PEON_BLOB;
    values[3].val.blob = (peon_list){(uint8_t *)blob, 3};
    uint64_t changed = 0;
    CHECK(peon_db_execute("t", "INSERT INTO t (i, r, s, b, n) VALUES (?1, ?2, ?3, ?4, ?5)", values, 5, &changed, &err),
          "db execute");
    CHECK(changed == 1, "db execute changed one row");
    peon_table table = {0};
    peon_value key = peon_value_integer(-5);
    CHECK(peon_db_query("t", "SELECT i, r, s, b, n FROM t WHERE i = ?1", &key, 1, &table, &err), "db query");
    CHECK(table.column_count == 5 && table.columns[2].len == 1 && table.columns[2].ptr[0] == 's', "db columns");
    const peon_value *v0 = peon_table_cell(&table, 0, 0), *v1 = peon_table_cell(&table, 0, 1),
                     *v2 = peon_table_cell(&table, 0, 2), *v3 = peon_table_cell(&table, 0, 3),
                     *v4 = peon_table_cell(&table, 0, 4);
    CHECK(table.row_count == 1 && v4 != NULL && peon_table_cell(&table, 0, 5) == NULL, "db one row of five");
    CHECK(v0->kind == PEON_INTEGER && v0->val.integer == -5, "db integer");
    CHECK(v1->kind == PEON_REAL && v1->val.real == 2.5, "db real");
    CHECK(v2->kind == PEON_TEXT && v2->val.text.len == 6 && memcmp(v2->val.text.ptr, "h\xc3\xa9llo", 6) == 0, "db text");
    CHECK(v3->kind == PEON_BLOB && v3->val.blob.len == 3 && memcmp(v3->val.blob.ptr, blob, 3) == 0, "db blob");
    CHECK(v4->kind == PEON_NULL, "db null");
    peon_table_free(&table);
    CHECK(!peon_db_execute("t", "DROP TABLE t", NULL, 0, &changed, &err) && err.code == PEON_DENIED, "db schema denied");
    peon_error_free(&err);

    peon_header headers[2] = {{"x-one", "1"}, {"content-type", "text/plain"}};
    peon_response response = {0};
    CHECK(peon_http_send("POST", "https://selftest.example/echo", headers, 2, "ping", 4, &response, &err), "http send");
    CHECK(response.status == 200, "http status");
    bool typed = false;
    for (size_t i = 0; i < response.headers_len; i++) {
        typed = typed || (response.headers[i].value.len == 16 && memcmp(response.headers[i].value.ptr, "application/json", 16) == 0);
    }
    CHECK(typed, "http response header");
    CHECK(response.body_len > 0 && memmem(response.body, response.body_len, "\"received\": 4", 13) != NULL, "http body");
    peon_response_free(&response);

    const char *args[] = {"-c"};
    peon_output output = {0};
    CHECK(peon_exec("/usr/bin/wc", args, 1, "abc", 3, &output, &err), "exec wc");
    CHECK(output.code == 0 && output.out.len >= 1 && output.out.ptr[0] == '3' && output.err.len == 0, "exec output");
    peon_output_free(&output);
    const char *sh[] = {"-c", "true"};
    CHECK(!peon_exec("/bin/sh", sh, 2, NULL, 0, &output, &err) && err.code == PEON_DENIED, "exec shell denied");
    peon_error_free(&err);

    peon_log(PEON_DEBUG, "selftest done");
    peon_buf_puts(out, "c sdk selftest ok");
    return true;
}
