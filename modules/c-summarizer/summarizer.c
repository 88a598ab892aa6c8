/*
 * c-summarizer: a report summarizer written in C against the C guest SDK (modules/sdk/c).
 *
 * Input: "REPORTS_DIR SUMMARY_FILE". It lists REPORTS_DIR (fs.read-dir), reads every .md/.txt
 * report in it (fs.read), and writes a Markdown summary to SUMMARY_FILE (fs.write): per report its
 * title (first line), word count and the lines marked "ACTION:". The summary is also the answer.
 * Capabilities used: fs list, fs read, fs write, log.
 */
#include "peon.h"

#include <stdlib.h>
#include <string.h>

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t count_words(const char *text) {
    size_t words = 0;
    bool in_word = false;
    for (const char *p = text; *p != '\0'; p++) {
        bool space = *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r';
        if (!space && !in_word) {
            words++;
        }
        in_word = !space;
    }
    return words;
}

/* Appends one report's section to the summary; returns its number of actions. */
static size_t summarize(peon_buf *summary, const char *name, const char *text) {
    const char *end = strchr(text, '\n');
    size_t title_len = end != NULL ? (size_t)(end - text) : strlen(text);
    const char *title = text;
    while (title_len > 0 && (*title == '#' || *title == ' ')) {
        title++;
        title_len--;
    }
    peon_buf_printf(summary, "## %.*s\n- file: %s\n- words: %zu\n", (int)title_len, title, name,
                    count_words(text));
    size_t actions = 0;
    for (const char *line = text; line != NULL && *line != '\0';) {
        const char *next = strchr(line, '\n');
        size_t len = next != NULL ? (size_t)(next - line) : strlen(line);
        if (len > 7 && memcmp(line, "ACTION:", 7) == 0) {
            const char *what = line + 7;
            size_t what_len = len - 7;
            while (what_len > 0 && *what == ' ') {
                what++;
                what_len--;
            }
            peon_buf_printf(summary, "- action: %.*s\n", (int)what_len, what);
            actions++;
        }
        line = next != NULL ? next + 1 : NULL;
    }
    peon_buf_puts(summary, "\n");
    return actions;
}

bool peon_run(const char *input, size_t input_len, peon_buf *out) {
    (void)input_len;
    char dir[512], summary_path[512];
    const char *space = strchr(input, ' ');
    if (space == NULL || (size_t)(space - input) >= sizeof dir || strlen(space + 1) >= sizeof summary_path ||
        space[1] == '\0') {
        peon_buf_puts(out, "usage: REPORTS_DIR SUMMARY_FILE");
        return false;
    }
    memcpy(dir, input, (size_t)(space - input));
    dir[space - input] = '\0';
    strcpy(summary_path, space + 1);

    peon_error err = {0};
    char **names = NULL;
    size_t count = 0;
    if (!peon_fs_read_dir(dir, &names, &count, &err)) {
        peon_buf_printf(out, "cannot list %s: %s: %s", dir, peon_error_code_name(err.code), err.message);
        peon_error_free(&err);
        return false;
    }
    qsort(names, count, sizeof names[0], compare_names);

    peon_buf summary = {0};
    peon_buf_printf(&summary, "# Summary of %s\n\n", dir);
    size_t reports = 0, actions = 0;
    for (size_t i = 0; i < count; i++) {
        if (!has_suffix(names[i], ".md") && !has_suffix(names[i], ".txt")) {
            continue;
        }
        peon_buf path = {0};
        peon_buf_printf(&path, "%s/%s", dir, names[i]);
        uint8_t *text = NULL;
        size_t len = 0;
        if (peon_fs_read(path.ptr, &text, &len, &err)) {
            actions += summarize(&summary, names[i], (const char *)text);
            reports++;
            free(text);
        } else {
            peon_buf_printf(&summary, "## %s\n- unreadable: %s: %s\n\n", names[i],
                            peon_error_code_name(err.code), err.message);
            peon_error_free(&err);
        }
        peon_buf_free(&path);
    }
    peon_strings_free(names, count);
    peon_buf_printf(&summary, "Total: %zu reports, %zu actions.\n", reports, actions);

    bool ok = peon_fs_write(summary_path, summary.ptr, summary.len, &err);
    if (!ok) {
        peon_buf_printf(out, "cannot write %s: %s: %s", summary_path, peon_error_code_name(err.code),
                        err.message);
        peon_error_free(&err);
    } else {
        peon_buf_append(out, summary.ptr, summary.len);
        peon_log(PEON_INFO, "summary written");
    }
    peon_buf_free(&summary);
    return ok;
}
