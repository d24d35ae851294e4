/* task_util.h — the file plumbing the file-backed task plugins share (sst2, agnews, trec,
 * banking77, gsm8k): resolve the data directory and a split's file, read a whole file, append
 * rows, free a dataset, and a
 * strict RFC-4180 CSV record reader that names file:line in every error. Header-only with static
 * functions because a plugin links nothing of the host (each .so gets its own copy); it needs
 * TP_PLUGIN_DEFINE_API (tp_plugin_api_) declared before it is included. */
#ifndef TP_TASK_UTIL_H
#define TP_TASK_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <telepathy/plugin.h>
#include <telepathy/task.h>

/* not every plugin uses every helper */
#define TU_UNUSED __attribute__((unused))

/* <opt_dir> if set, else <data_dir>/<task>; it must be a directory. files: what it must hold. */
static TU_UNUSED tp_status tu_resolve_dir(const char *task, const char *opt_dir,
                                          const char *data_dir, const char *files, char *out,
                                          size_t cap, tp_err *err) {
    int n;
    if (opt_dir && opt_dir[0])
        n = snprintf(out, cap, "%s", opt_dir);
    else if (data_dir && data_dir[0])
        n = snprintf(out, cap, "%s/%s", data_dir, task);
    else
        return tp_plugin_api_->errf(err, TP_EINVAL,
                                    "%s: no data directory: set [paths] data in telepathy.ini "
                                    "(files in <data>/%s/) or the task option dir",
                                    task, task);
    if (n < 0 || (size_t)n >= cap)
        return tp_plugin_api_->errf(err, TP_EINVAL, "%s: data directory path is too long", task);
    struct stat sb;
    if (stat(out, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return tp_plugin_api_->errf(err, TP_EIO,
                                    "%s: data directory '%s' not found; it must hold %s "
                                    "(option dir changes where it looks)",
                                    task, out, files);
    return TP_OK;
}

/* The file of a split: "train" -> train_file with *limit = max_train, "eval" -> eval_file with
 * *limit = 0 (all rows); its path <dir>/<file> goes into out->source. */
static TU_UNUSED tp_status tu_split_file(const char *task, const char *dir, const char *split,
                                         const char *train_file, const char *eval_file,
                                         int64_t max_train, tp_dataset *out, const char **file,
                                         int64_t *limit, tp_err *err) {
    *limit = 0;
    if (split && !strcmp(split, "train")) {
        *file = train_file;
        *limit = max_train;
    } else if (split && !strcmp(split, "eval")) {
        *file = eval_file;
    } else {
        return tp_plugin_api_->errf(err, TP_EINVAL, "%s: split '%s': expected train or eval", task,
                                    split ? split : "(null)");
    }
    int n = snprintf(out->source, sizeof out->source, "%s/%s", dir, *file);
    if (n < 0 || (size_t)n >= sizeof out->source)
        return tp_plugin_api_->errf(err, TP_EINVAL, "%s: path %s/%s is too long", task, dir, *file);
    return TP_OK;
}

/* Reads the whole file into a NUL-terminated buffer (*buf malloc'd); hint (or NULL) ends the
 * message when the file cannot be opened. */
static TU_UNUSED tp_status tu_read_file_hint(const char *task, const char *path, const char *hint,
                                             char **buf, size_t *len, tp_err *err) {
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return tp_plugin_api_->errf(err, TP_EIO, "%s: cannot open %s: %s%s", task, path,
                                    strerror(errno), hint ? hint : "");
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap + 1);
    while (b) {
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        char *nb = realloc(b, cap * 2 + 1);
        if (!nb) {
            free(b);
            b = NULL;
            break;
        }
        b = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!b) return tp_plugin_api_->errf(err, TP_ENOMEM, "%s: out of memory reading %s", task, path);
    if (bad) {
        free(b);
        return tp_plugin_api_->errf(err, TP_EIO, "%s: read error on %s", task, path);
    }
    b[n] = 0;
    *buf = b;
    *len = n;
    return TP_OK;
}

/* Reads the whole file into a NUL-terminated buffer (*buf malloc'd). */
static TU_UNUSED tp_status tu_read_file(const char *task, const char *path, char **buf, size_t *len,
                                        tp_err *err) {
    return tu_read_file_hint(task, path, NULL, buf, len, err);
}

static TU_UNUSED void tu_free_dataset(tp_dataset *ds) {
    if (!ds) return;
    for (int64_t i = 0; i < ds->n; i++) {
        free(ds->rows[i].text);
        free(ds->rows[i].answer);
    }
    free(ds->rows);
    ds->rows = NULL;
    ds->n = 0;
}

/* Appends a row with copies of text[0..tlen) and answer[0..alen); TP_ENOMEM on failure. */
static TU_UNUSED tp_status tu_add_row(tp_dataset *ds, int64_t *cap, const char *text, size_t tlen,
                                      int label, const char *answer, size_t alen, int64_t line) {
    if (ds->n == *cap) {
        int64_t nc = *cap ? *cap * 2 : 1024;
        tp_example *nr = realloc(ds->rows, (size_t)nc * sizeof *nr);
        if (!nr) return TP_ENOMEM;
        ds->rows = nr;
        *cap = nc;
    }
    tp_example *e = &ds->rows[ds->n];
    e->text = malloc(tlen + 1);
    e->answer = malloc(alen + 1);
    if (!e->text || !e->answer) {
        free(e->text);
        free(e->answer);
        return TP_ENOMEM;
    }
    memcpy(e->text, text, tlen);
    e->text[tlen] = 0;
    memcpy(e->answer, answer, alen);
    e->answer[alen] = 0;
    e->id = ds->n;
    e->line = line;
    e->label = label;
    ds->n++;
    return TP_OK;
}

/* ---- CSV (RFC 4180) -------------------------------------------------------------------------- */

#define TU_CSV_MAX_FIELDS 16

/* A reader over a whole file in memory. Records end with "\n" (crlf = 0) or "\r\n" (crlf = 1);
 * the other ending, a lone CR, a quote inside an unquoted field, text after a closing quote, an
 * unterminated quote and a NUL byte are errors naming path:line. Quoted fields may span lines
 * (their line breaks are kept byte for byte). Field texts point into the reader's scratch
 * buffer and stay valid until the next call. */
typedef struct tu_csv {
    const char *task, *path;
    const char *p, *end;
    int64_t line; /* line of the next character */
    int crlf;
    char *scratch;
    char *field[TU_CSV_MAX_FIELDS];
    size_t flen[TU_CSV_MAX_FIELDS];
    int quoted[TU_CSV_MAX_FIELDS];
    int nf;
    int64_t rec_line; /* first line of the last record */
} tu_csv;

static TU_UNUSED tp_status tu_csv_init(tu_csv *c, const char *task, const char *path,
                                       const char *buf, size_t len, int crlf, tp_err *err) {
    memset(c, 0, sizeof *c);
    c->task = task;
    c->path = path;
    c->p = buf;
    c->end = buf + len;
    c->line = 1;
    c->crlf = crlf;
    c->scratch = malloc(len + TU_CSV_MAX_FIELDS + 1);
    if (!c->scratch) return tp_plugin_api_->errf(err, TP_ENOMEM, "%s: out of memory", task);
    return TP_OK;
}

static TU_UNUSED void tu_csv_free(tu_csv *c) {
    free(c->scratch);
    c->scratch = NULL;
}

static TU_UNUSED tp_status tu_csv_bad(tu_csv *c, int64_t line, const char *what, tp_err *err) {
    return tp_plugin_api_->errf(err, TP_EFORMAT, "%s: %s:%lld: %s", c->task, c->path,
                                (long long)line, what);
}

/* The record terminator at c->p (or end of file): consumes it. 1 = record ended, 0 = not. */
static TU_UNUSED tp_status tu_csv_eol(tu_csv *c, int *ended, tp_err *err) {
    *ended = 0;
    if (c->p >= c->end) {
        *ended = 1;
        return TP_OK;
    }
    if (*c->p == '\r') {
        if (!c->crlf)
            return tu_csv_bad(c, c->line, "carriage return (CRLF line endings?); this file uses LF",
                              err);
        if (c->p + 1 >= c->end || c->p[1] != '\n')
            return tu_csv_bad(c, c->line, "carriage return not followed by a line feed", err);
        c->p += 2;
        c->line++;
        *ended = 1;
    } else if (*c->p == '\n') {
        if (c->crlf)
            return tu_csv_bad(c, c->line,
                              "line ends with LF only; this file uses CRLF line endings", err);
        c->p++;
        c->line++;
        *ended = 1;
    }
    return TP_OK;
}

/* Reads the next record; *eof = 1 (and nothing read) at the end of the file. */
static TU_UNUSED tp_status tu_csv_next(tu_csv *c, int *eof, tp_err *err) {
    *eof = 0;
    c->nf = 0;
    if (c->p >= c->end) {
        *eof = 1;
        return TP_OK;
    }
    c->rec_line = c->line;
    char *o = c->scratch;
    for (;;) {
        if (c->nf == TU_CSV_MAX_FIELDS) return tu_csv_bad(c, c->rec_line, "too many columns", err);
        int k = c->nf++;
        c->field[k] = o;
        c->quoted[k] = 0;
        if (c->p < c->end && *c->p == '"') {
            int64_t open_line = c->line;
            c->quoted[k] = 1;
            c->p++;
            for (;;) {
                if (c->p >= c->end) {
                    char msg[160];
                    snprintf(msg, sizeof msg,
                             "unterminated quoted field (opened on line %lld; bad quoting)",
                             (long long)open_line);
                    return tu_csv_bad(c, open_line, msg, err);
                }
                char ch = *c->p;
                if (ch == 0) return tu_csv_bad(c, c->line, "NUL byte (binary file?)", err);
                if (ch == '"') {
                    if (c->p + 1 < c->end && c->p[1] == '"') {
                        *o++ = '"';
                        c->p += 2;
                        continue;
                    }
                    c->p++;
                    break;
                }
                if (ch == '\n') c->line++;
                *o++ = ch;
                c->p++;
            }
            if (c->p < c->end && *c->p != ',' && *c->p != '\n' && *c->p != '\r')
                return tu_csv_bad(c, c->line,
                                  "bad quoting: text after a closing quote (a quote inside a "
                                  "quoted field must be doubled)",
                                  err);
        } else {
            while (c->p < c->end && *c->p != ',' && *c->p != '\n' && *c->p != '\r') {
                if (*c->p == '"')
                    return tu_csv_bad(c, c->line,
                                      "bad quoting: a quote inside an unquoted field (quote the "
                                      "whole field and double the quote)",
                                      err);
                if (*c->p == 0) return tu_csv_bad(c, c->line, "NUL byte (binary file?)", err);
                *o++ = *c->p++;
            }
        }
        c->flen[k] = (size_t)(o - c->field[k]);
        *o++ = 0;
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        int ended;
        TP_TRY(tu_csv_eol(c, &ended, err));
        if (ended) return TP_OK;
    }
}

/* 1 if s[0..n) is only blanks. */
static TU_UNUSED int tu_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') return 0;
    return 1;
}

/* ---- JSON strings (categories.json, JSON Lines) ---------------------------------------------- */

static TU_UNUSED const char *tu_json_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static TU_UNUSED int tu_hex4(const char *p, const char *end, unsigned *out) {
    if (end - p < 4) return 0;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char h = p[i];
        v <<= 4;
        if (h >= '0' && h <= '9')
            v |= (unsigned)(h - '0');
        else if (h >= 'a' && h <= 'f')
            v |= (unsigned)(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F')
            v |= (unsigned)(h - 'A' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}

/* Decodes the JSON string starting at *pp (which must be '"') into out (capacity >= the raw
 * length + 1; UTF-8 is never longer than its escapes) and advances *pp past it. Returns NULL on
 * success, else what was wrong. \uXXXX escapes (surrogate pairs included) become UTF-8. */
static TU_UNUSED const char *tu_json_string(const char **pp, const char *end, char *out,
                                            size_t *olen) {
    const char *p = *pp;
    if (p >= end || *p != '"') return "expected a string";
    p++;
    size_t k = 0;
    for (;;) {
        if (p >= end) return "unterminated string";
        unsigned char ch = (unsigned char)*p++;
        if (ch == '"') break;
        if (ch < 0x20) return "control character inside a string (must be escaped)";
        if (ch != '\\') {
            out[k++] = (char)ch;
            continue;
        }
        if (p >= end) return "unterminated escape";
        char e = *p++;
        unsigned cp;
        switch (e) {
        case '"':
            out[k++] = '"';
            continue;
        case '\\':
            out[k++] = '\\';
            continue;
        case '/':
            out[k++] = '/';
            continue;
        case 'b':
            out[k++] = '\b';
            continue;
        case 'f':
            out[k++] = '\f';
            continue;
        case 'n':
            out[k++] = '\n';
            continue;
        case 'r':
            out[k++] = '\r';
            continue;
        case 't':
            out[k++] = '\t';
            continue;
        case 'u':
            if (!tu_hex4(p, end, &cp)) return "bad \\u escape (expected 4 hex digits)";
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !tu_hex4(p + 2, end, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return "unpaired UTF-16 surrogate in a \\u escape";
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return "unpaired UTF-16 surrogate in a \\u escape";
            }
            if (cp == 0) return "\\u0000 inside a string";
            if (cp < 0x80) {
                out[k++] = (char)cp;
            } else if (cp < 0x800) {
                out[k++] = (char)(0xC0 | (cp >> 6));
                out[k++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                out[k++] = (char)(0xE0 | (cp >> 12));
                out[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                out[k++] = (char)(0x80 | (cp & 0x3F));
            } else {
                out[k++] = (char)(0xF0 | (cp >> 18));
                out[k++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                out[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                out[k++] = (char)(0x80 | (cp & 0x3F));
            }
            continue;
        default:
            return "unknown escape in a string";
        }
    }
    out[k] = 0;
    *olen = k;
    *pp = p;
    return NULL;
}

#endif
