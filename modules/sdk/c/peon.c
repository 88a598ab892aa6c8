/*
 * peon.c: the C guest SDK's wrappers, cabi_realloc and the `run` export glue. See peon.h.
 */
#include "peon.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- memory the host allocates in ----------------------------------------------------------------
 * The host calls this to place every list/string it returns (and the `run` input) in our memory.
 * malloc's alignment (16) covers every alignment the ABI asks for (at most 8). */
__attribute__((export_name("cabi_realloc")))
void *cabi_realloc(void *old_ptr, size_t old_size, size_t align, size_t new_size) {
    (void)old_size;
    if (new_size == 0) {
        return (void *)align; /* a valid, aligned, never-dereferenced pointer for an empty list */
    }
    void *p = realloc(old_ptr, new_size);
    if (p == NULL) {
        __builtin_trap(); /* the host sees a trap, never a wild pointer */
    }
    return p;
}

static void free_list(peon_list list) {
    if (list.len != 0) {
        free(list.ptr);
    }
}

static void take_error(const peon_raw_error *raw, peon_error *err) {
    if (err == NULL) {
        free_list(raw->message);
        return;
    }
    err->code = (peon_error_code)raw->code;
    err->message = malloc(raw->message.len + 1);
    if (err->message != NULL) {
        memcpy(err->message, raw->message.ptr, raw->message.len);
        err->message[raw->message.len] = '\0';
    }
    free_list(raw->message);
}

void peon_free(void *ptr) {
    free(ptr);
}

const char *peon_error_code_name(peon_error_code code) {
    switch (code) {
    case PEON_DENIED: return "denied";
    case PEON_INVALID_ARGUMENT: return "invalid-argument";
    case PEON_NOT_FOUND: return "not-found";
    case PEON_LIMIT_EXCEEDED: return "limit-exceeded";
    case PEON_IO: return "io";
    case PEON_TIMEOUT: return "timeout";
    }
    return "unknown";
}

void peon_error_free(peon_error *err) {
    if (err != NULL) {
        free(err->message);
        err->message = NULL;
    }
}

/* ---- fs ------------------------------------------------------------------------------------------ */

bool peon_fs_read(const char *path, uint8_t **data, size_t *len, peon_error *err) {
    peon_raw_result_list ret;
    peon_raw_fs_read(path, strlen(path), &ret);
    if (ret.is_err) {
        take_error(&ret.val.err, err);
        return false;
    }
    /* Copy into a NUL-terminated buffer so text files can be used as C strings. */
    uint8_t *buf = malloc(ret.val.ok.len + 1);
    if (buf == NULL) {
        __builtin_trap();
    }
    memcpy(buf, ret.val.ok.ptr, ret.val.ok.len);
    buf[ret.val.ok.len] = 0;
    free_list(ret.val.ok);
    *data = buf;
    *len = ret.val.ok.len;
    return true;
}

static bool unit_result(const peon_raw_result_unit *ret, peon_error *err) {
    if (ret->is_err) {
        take_error(&ret->val.err, err);
        return false;
    }
    return true;
}

bool peon_fs_write(const char *path, const void *data, size_t len, peon_error *err) {
    peon_raw_result_unit ret;
    peon_raw_fs_write(path, strlen(path), data, len, &ret);
    return unit_result(&ret, err);
}

bool peon_fs_append(const char *path, const void *data, size_t len, peon_error *err) {
    peon_raw_result_unit ret;
    peon_raw_fs_append(path, strlen(path), data, len, &ret);
    return unit_result(&ret, err);
}

bool peon_fs_remove(const char *path, peon_error *err) {
    peon_raw_result_unit ret;
    peon_raw_fs_remove(path, strlen(path), &ret);
    return unit_result(&ret, err);
}

static char *to_cstring(peon_list s) {
    char *c = malloc(s.len + 1);
    if (c == NULL) {
        __builtin_trap();
    }
    memcpy(c, s.ptr, s.len);
    c[s.len] = '\0';
    return c;
}

bool peon_fs_read_dir(const char *path, char ***names, size_t *count, peon_error *err) {
    peon_raw_result_list ret;
    peon_raw_fs_read_dir(path, strlen(path), &ret);
    if (ret.is_err) {
        take_error(&ret.val.err, err);
        return false;
    }
    peon_list *raw = (peon_list *)ret.val.ok.ptr;
    size_t n = ret.val.ok.len;
    char **out = malloc((n == 0 ? 1 : n) * sizeof(char *));
    if (out == NULL) {
        __builtin_trap();
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = to_cstring(raw[i]);
        free_list(raw[i]);
    }
    if (n != 0) {
        free(raw);
    }
    *names = out;
    *count = n;
    return true;
}

void peon_strings_free(char **strings, size_t count) {
    for (size_t i = 0; i < count; i++) {
        free(strings[i]);
    }
    free(strings);
}

/* ---- http ---------------------------------------------------------------------------------------- */

bool peon_http_send(const char *method, const char *url, const peon_header *headers, size_t headers_len,
                    const void *body, size_t body_len, peon_response *response, peon_error *err) {
    peon_raw_header *raw = malloc((headers_len == 0 ? 1 : headers_len) * sizeof(peon_raw_header));
    if (raw == NULL) {
        __builtin_trap();
    }
    for (size_t i = 0; i < headers_len; i++) {
        raw[i].name = (peon_list){(uint8_t *)headers[i].name, strlen(headers[i].name)};
        raw[i].value = (peon_list){(uint8_t *)headers[i].value, strlen(headers[i].value)};
    }
    peon_raw_result_response ret;
    peon_raw_http_send(method, strlen(method), url, strlen(url), raw, headers_len, body, body_len, &ret);
    free(raw);
    if (ret.is_err) {
        take_error(&ret.val.err, err);
        return false;
    }
    response->status = ret.val.ok.status;
    response->headers = (peon_raw_header *)ret.val.ok.headers.ptr;
    response->headers_len = ret.val.ok.headers.len;
    response->body = ret.val.ok.body.ptr;
    response->body_len = ret.val.ok.body.len;
    return true;
}

void peon_response_free(peon_response *response) {
    for (size_t i = 0; i < response->headers_len; i++) {
        free_list(response->headers[i].name);
        free_list(response->headers[i].value);
    }
    if (response->headers_len != 0) {
        free(response->headers);
    }
    if (response->body_len != 0) {
        free(response->body);
    }
    response->headers_len = 0;
    response->body_len = 0;
}

/* ---- db ------------------------------------------------------------------------------------------ */

peon_value peon_value_null(void) {
    peon_value v;
    memset(&v, 0, sizeof v);
    v.kind = PEON_NULL;
    return v;
}

peon_value peon_value_integer(int64_t i) {
    peon_value v = peon_value_null();
    v.kind = PEON_INTEGER;
    v.val.integer = i;
    return v;
}

peon_value peon_value_real(double d) {
    peon_value v = peon_value_null();
    v.kind = PEON_REAL;
    v.val.real = d;
    return v;
}

peon_value peon_value_text(const char *s) {
    peon_value v = peon_value_null();
    v.kind = PEON_TEXT;
    v.val.text = (peon_list){(uint8_t *)s, strlen(s)};
    return v;
}

bool peon_db_query(const char *db, const char *sql, const peon_value *params, size_t params_len,
                   peon_table *table, peon_error *err) {
    peon_raw_result_rows ret;
    peon_raw_db_query(db, strlen(db), sql, strlen(sql), params, params_len, &ret);
    if (ret.is_err) {
        take_error(&ret.val.err, err);
        return false;
    }
    table->columns = (peon_list *)ret.val.ok.columns.ptr;
    table->column_count = ret.val.ok.columns.len;
    table->rows = (peon_list *)ret.val.ok.rows.ptr;
    table->row_count = ret.val.ok.rows.len;
    return true;
}

bool peon_db_execute(const char *db, const char *sql, const peon_value *params, size_t params_len,
                     uint64_t *changed, peon_error *err) {
    peon_raw_result_u64 ret;
    peon_raw_db_execute(db, strlen(db), sql, strlen(sql), params, params_len, &ret);
    if (ret.is_err) {
        take_error(&ret.val.err, err);
        return false;
    }
    if (changed != NULL) {
        *changed = ret.val.ok;
    }
    return true;
}

const peon_value *peon_table_cell(const peon_table *table, size_t row, size_t column) {
    if (row >= table->row_count) {
        return NULL;
    }
    peon_list r = table->rows[row];
    if (column >= r.len) {
        return NULL;
    }
    return &((const peon_value *)r.ptr)[column];
}

void peon_table_free(peon_table *table) {
    for (size_t i = 0; i < table->column_count; i++) {
        free_list(table->columns[i]);
    }
    if (table->column_count != 0) {
        free(table->columns);
    }
    for (size_t r = 0; r < table->row_count; r++) {
        peon_value *values = (peon_value *)table->rows[r].ptr;
        for (size_t c = 0; c < table->rows[r].len; c++) {
            if (values[c].kind == PEON_TEXT || values[c].kind == PEON_BLOB) {
                free_list(values[c].val.text);
            }
        }
        free_list(table->rows[r]);
    }
    if (table->row_count != 0) {
        free(table->rows);
    }
    table->column_count = 0;
    table->row_count = 0;
}

/* ---- exec ---------------------------------------------------------------------------------------- */

bool peon_exec(const char *program, const char *const *args, size_t args_len, const void *stdin_data,
               size_t stdin_len, peon_output *output, peon_error *err) {
    peon_list *raw = malloc((args_len == 0 ? 1 : args_len) * sizeof(peon_list));
    if (raw == NULL) {
        __builtin_trap();
    }
    for (size_t i = 0; i < args_len; i++) {
        raw[i] = (peon_list){(uint8_t *)args[i], strlen(args[i])};
    }
    peon_raw_result_output ret;
    peon_raw_exec_run(program, strlen(program), raw, args_len, stdin_data, stdin_len, &ret);
    free(raw);
    if (ret.is_err) {
        take_error(&ret.val.err, err);
        return false;
    }
    *output = ret.val.ok;
    return true;
}

void peon_output_free(peon_output *output) {
    free_list(output->out);
    free_list(output->err);
    output->out.len = 0;
    output->err.len = 0;
}

/* ---- log ----------------------------------------------------------------------------------------- */

void peon_log(peon_level level, const char *message) {
    peon_raw_log((int32_t)level, message, strlen(message));
}

/* ---- buffer -------------------------------------------------------------------------------------- */

static void buf_reserve(peon_buf *buf, size_t extra) {
    if (buf->len + extra + 1 <= buf->cap) {
        return;
    }
    size_t cap = buf->cap == 0 ? 256 : buf->cap;
    while (cap < buf->len + extra + 1) {
        cap *= 2;
    }
    char *p = realloc(buf->ptr, cap);
    if (p == NULL) {
        __builtin_trap();
    }
    buf->ptr = p;
    buf->cap = cap;
}

void peon_buf_append(peon_buf *buf, const void *data, size_t len) {
    buf_reserve(buf, len);
    memcpy(buf->ptr + buf->len, data, len);
    buf->len += len;
    buf->ptr[buf->len] = '\0';
}

void peon_buf_puts(peon_buf *buf, const char *s) {
    peon_buf_append(buf, s, strlen(s));
}

/* A small printf: %s %.*s %c %d %i %u %x %zu %zd %ld %lu %lld %llu %%. It is ours instead of libc's
 * vsnprintf because libc's stdio drags in WASI imports (fd_write, fd_seek, fd_close). */
static void buf_unsigned(peon_buf *buf, unsigned long long v, unsigned base) {
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v != 0);
    while (n > 0) {
        peon_buf_append(buf, &digits[--n], 1);
    }
}

static void buf_signed(peon_buf *buf, long long v) {
    if (v < 0) {
        peon_buf_append(buf, "-", 1);
        buf_unsigned(buf, 0ULL - (unsigned long long)v, 10);
    } else {
        buf_unsigned(buf, (unsigned long long)v, 10);
    }
}

void peon_buf_printf(peon_buf *buf, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    for (const char *p = fmt; *p != '\0'; p++) {
        if (*p != '%') {
            const char *next = strchr(p, '%');
            size_t n = next != NULL ? (size_t)(next - p) : strlen(p);
            peon_buf_append(buf, p, n);
            p += n - 1;
            continue;
        }
        p++;
        int precision = -1;
        if (p[0] == '.' && p[1] == '*') {
            precision = va_arg(ap, int);
            p += 2;
        }
        int longs = 0;
        bool size = false;
        while (*p == 'l') {
            longs++;
            p++;
        }
        if (*p == 'z') {
            size = true;
            p++;
        }
        switch (*p) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (s == NULL) {
                s = "(null)";
            }
            size_t n = precision >= 0 ? strnlen(s, (size_t)precision) : strlen(s);
            peon_buf_append(buf, s, n);
            break;
        }
        case 'c': {
            char c = (char)va_arg(ap, int);
            peon_buf_append(buf, &c, 1);
            break;
        }
        case 'd':
        case 'i':
            if (size) {
                buf_signed(buf, (long long)va_arg(ap, ptrdiff_t));
            } else if (longs == 2) {
                buf_signed(buf, va_arg(ap, long long));
            } else if (longs == 1) {
                buf_signed(buf, va_arg(ap, long));
            } else {
                buf_signed(buf, va_arg(ap, int));
            }
            break;
        case 'u':
        case 'x': {
            unsigned base = *p == 'x' ? 16 : 10;
            if (size) {
                buf_unsigned(buf, va_arg(ap, size_t), base);
            } else if (longs == 2) {
                buf_unsigned(buf, va_arg(ap, unsigned long long), base);
            } else if (longs == 1) {
                buf_unsigned(buf, va_arg(ap, unsigned long), base);
            } else {
                buf_unsigned(buf, va_arg(ap, unsigned), base);
            }
            break;
        }
        case '%':
            peon_buf_append(buf, "%", 1);
            break;
        case '\0':
            p--; /* a lone % at the end */
            break;
        default:
            peon_buf_append(buf, p - 1, 2); /* unknown: copy it as it is */
            break;
        }
    }
    va_end(ap);
}

void peon_buf_free(peon_buf *buf) {
    free(buf->ptr);
    buf->ptr = NULL;
    buf->len = 0;
    buf->cap = 0;
}

/* ---- the world export `run` ----------------------------------------------------------------------
 * run: func(input: string) -> result<string, string>
 * core: run(ptr: i32, len: i32) -> i32, the i32 pointing at a 12-byte result area:
 *   @0 u8 tag (0 = ok, 1 = err), @4 string ptr, @8 string len.
 * The host reads it, then calls cabi_post_run with the same pointer so we free the string. */
static struct {
    uint8_t is_err;
    peon_list text;
} run_result;
_Static_assert(sizeof(run_result) == 12, "result<string,string> is 12 bytes");

__attribute__((export_name("run")))
void *peon_export_run(uint8_t *input, size_t input_len) {
    /* The input was allocated by cabi_realloc; make it a C string for the agent. */
    char *text = malloc(input_len + 1);
    if (text == NULL) {
        __builtin_trap();
    }
    memcpy(text, input, input_len);
    text[input_len] = '\0';
    if (input_len != 0) {
        free(input);
    }
    peon_buf out = {0};
    bool ok = peon_run(text, input_len, &out);
    free(text);
    run_result.is_err = ok ? 0 : 1;
    run_result.text = (peon_list){(uint8_t *)out.ptr, out.len};
    return &run_result;
}

__attribute__((export_name("cabi_post_run")))
void peon_export_post_run(void *result) {
    (void)result;
    free(run_result.text.ptr);
    run_result.text = (peon_list){NULL, 0};
}
