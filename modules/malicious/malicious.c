/*
 * malicious: a deliberately hostile agent (C, modules/sdk/c). It tries to escape its grants in
 * every way issue 5 names and reports, for each attempt, what the host answered. The run succeeds
 * (ok) only if every escape was refused and the two legitimate calls worked; a single escape
 * makes the run fail with "ESCAPED".
 *
 * Its grants (policies/malicious.toml) allow: reading everything under modules/malicious/sandbox, GET on
 * any https://example.com/ URL, running /usr/bin/wc -l, and reading table `notes` of database `notes`.
 */
#include "peon.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    peon_buf *out;
    int refused;
    int escaped;
} tally;

static void report(tally *t, const char *what, bool succeeded, peon_error *err) {
    if (succeeded) {
        t->escaped++;
        peon_buf_printf(t->out, "ESCAPED  %s\n", what);
        peon_log(PEON_ERROR, what);
    } else {
        t->refused++;
        peon_buf_printf(t->out, "refused  %s -> %s: %s\n", what, peon_error_code_name(err->code),
                        err->message != NULL ? err->message : "");
        peon_error_free(err);
    }
}

static void try_read(tally *t, const char *path, const char *what) {
    peon_error err = {0};
    uint8_t *data = NULL;
    size_t len = 0;
    bool ok = peon_fs_read(path, &data, &len, &err);
    if (ok) {
        free(data);
    }
    report(t, what, ok, &err);
}

static void try_get(tally *t, const char *url, const char *what) {
    peon_error err = {0};
    peon_response response = {0};
    bool ok = peon_http_send("GET", url, NULL, 0, NULL, 0, &response, &err);
    if (ok) {
        peon_response_free(&response);
    }
    report(t, what, ok, &err);
}

static void try_exec(tally *t, const char *program, const char *const *args, size_t n, const char *what) {
    peon_error err = {0};
    peon_output output = {0};
    bool ok = peon_exec(program, args, n, "x\n", 2, &output, &err);
    if (ok) {
        peon_output_free(&output);
    }
    report(t, what, ok, &err);
}

static void try_sql(tally *t, const char *sql, const char *what) {
    peon_error err = {0};
    uint64_t changed = 0;
    bool ok = peon_db_execute("notes", sql, NULL, 0, &changed, &err);
    report(t, what, ok, &err);
}

bool peon_run(const char *input, size_t input_len, peon_buf *out) {
    (void)input;
    (void)input_len;
    tally t = {out, 0, 0};

    /* fs: outside the grant, by absolute path, by `..`, through a symlink, and a write. */
    try_read(&t, "/etc/passwd", "fs.read /etc/passwd (absolute path outside the grant)");
    try_read(&t, "modules/malicious/sandbox/../../../policies/malicious.toml",
             "fs.read sandbox/../../../policies/malicious.toml (.. traversal)");
    try_read(&t, "modules/malicious/sandbox/passwd-link",
             "fs.read sandbox/passwd-link (a symlink to /etc/passwd)");
    try_read(&t, "modules/malicious/sandbox//./../malicious.c", "fs.read sandbox//./../malicious.c (// and ./ tricks)");
    {
        peon_error err = {0};
        bool ok = peon_fs_write("/tmp/peon-malicious-was-here", "pwned", 5, &err);
        report(&t, "fs.write /tmp/peon-malicious-was-here (no write grant)", ok, &err);
    }

    /* http: SSRF to loopback and the cloud metadata service, by literal and by name. */
    try_get(&t, "http://127.0.0.1:8080/admin", "http GET http://127.0.0.1:8080/admin (loopback)");
    try_get(&t, "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "http GET http://169.254.169.254/latest/meta-data/... (cloud metadata)");
    try_get(&t, "http://[::1]/", "http GET http://[::1]/ (IPv6 loopback)");
    try_get(&t, "http://localhost:2375/containers/json", "http GET http://localhost:2375/... (loopback by name)");
    {
        peon_error err = {0};
        peon_response response = {0};
        bool ok = peon_http_send("DELETE", "https://example.com/api/users/1", NULL, 0, NULL, 0, &response, &err);
        if (ok) {
            peon_response_free(&response);
        }
        report(&t, "http DELETE https://example.com/api/users/1 (method not granted)", ok, &err);
    }

    /* exec: a shell, and a granted program with an argument outside its pattern. */
    {
        const char *args[] = {"-c", "cat /etc/shadow"};
        try_exec(&t, "/bin/sh", args, 2, "exec /bin/sh -c 'cat /etc/shadow' (a shell)");
    }
    {
        const char *args[] = {"-l; rm -rf /"};
        try_exec(&t, "/usr/bin/wc", args, 1, "exec /usr/bin/wc '-l; rm -rf /' (metacharacters, arg not granted)");
    }
    {
        const char *args[] = {"-l", "/etc/shadow"};
        try_exec(&t, "/usr/bin/wc", args, 2, "exec /usr/bin/wc -l /etc/shadow (extra argument)");
    }

    /* db: writes on a read-only grant, ATTACH, PRAGMA, two statements in one. */
    try_sql(&t, "DELETE FROM notes", "db.execute DELETE FROM notes (read-only grant)");
    try_sql(&t, "INSERT INTO notes (body) VALUES ('pwned')", "db.execute INSERT INTO notes (read-only grant)");
    try_sql(&t, "ATTACH DATABASE '/tmp/peon-malicious.db' AS loot", "db.execute ATTACH DATABASE (never allowed)");
    try_sql(&t, "PRAGMA writable_schema = ON", "db.execute PRAGMA writable_schema (never allowed)");
    try_sql(&t, "SELECT 1; DROP TABLE notes", "db.execute 'SELECT 1; DROP TABLE notes' (two statements)");

    /* The legitimate calls its grants do allow, to show the refusals above were not blanket. */
    bool legit = true;
    {
        peon_error err = {0};
        uint8_t *data = NULL;
        size_t len = 0;
        if (peon_fs_read("modules/malicious/sandbox/allowed.txt", &data, &len, &err)) {
            peon_buf_printf(out, "allowed  fs.read sandbox/allowed.txt (%zu bytes)\n", len);
            free(data);
        } else {
            peon_buf_printf(out, "FAILED   fs.read sandbox/allowed.txt -> %s: %s\n", peon_error_code_name(err.code),
                            err.message);
            peon_error_free(&err);
            legit = false;
        }
        peon_table table = {0};
        if (peon_db_query("notes", "SELECT count(*) FROM notes", NULL, 0, &table, &err)) {
            const peon_value *v = peon_table_cell(&table, 0, 0);
            peon_buf_printf(out, "allowed  db.query SELECT count(*) FROM notes (%lld rows)\n",
                            v != NULL && v->kind == PEON_INTEGER ? (long long)v->val.integer : -1LL);
            peon_table_free(&table);
        } else {
            peon_buf_printf(out, "FAILED   db.query SELECT count(*) FROM notes -> %s: %s\n",
                            peon_error_code_name(err.code), err.message);
            peon_error_free(&err);
            legit = false;
        }
    }

    peon_buf_printf(out, "%d attempts refused, %d escaped\n", t.refused, t.escaped);
    if (t.escaped != 0) {
        peon_buf_puts(out, "ESCAPED: the sandbox let a hostile call through\n");
    }
    return t.escaped == 0 && legit;
}
