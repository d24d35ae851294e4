/* gsm8k.c — GSM8K grade-school math (Cobbe et al. 2021; STUDY.md "Tasks", phases 1–15, exp007),
 * a generation task scored by the extracted final number.
 *
 * What it adds: a task named "gsm8k" reading the authors' JSON Lines files from
 * <data_dir>/gsm8k/ (or option dir): split "train" = train.jsonl (7,473 rows), split "eval" =
 * test.jsonl (1,319 rows). Each line is one JSON object with exactly the two string fields
 * `question` and `answer` (the worked solution whose last line is `#### N`); `\uXXXX` escapes
 * are decoded to UTF-8. The example text is the question; the gold answer is N normalised (see
 * below) or, with option answer = solution, the whole worked solution as in the file (targets
 * for answer-anchored losses), or with answer = question the question itself (the study's
 * phase-10 auto-encoder target). That option is the training rows' target only: evaluation rows
 * (split "eval") keep N as their gold with answer = question, since a generation is scored
 * against the final answer (with answer = solution the evaluator extracts N from the solution).
 * A line that is not such an object, a missing or non-string field, an unknown field, an answer
 * without `#### N` or with an N that is not a number, a CR (CRLF line endings) or a NUL byte is
 * an error naming file:line.
 *
 * Answer extraction (the `extract` member; the study's rule, in this order):
 *   1. "The answer is N" (case-insensitive, ':' and spaces and '$' may follow; the first such
 *      phrase that is followed by a number),
 *   2. "#### N" (the first one followed by a number),
 *   3. the last number in the text.
 * A number is an optional sign ('-' or U+2212 '−', only where it cannot be a hyphen: at the start
 * or after a space, '(', '$', '=' or ':'), an optional '$', digits with optional thousands commas
 * ("1,080"), and an optional decimal part (a '.' followed by a digit; a sentence's full stop is
 * not one). Normalised: commas and '$' stripped, trailing decimal zeros and a bare '.' removed,
 * "-0" → "0". So "$1,080.00" → "1080", "-3.50" → "-3.5". Exact match compares normalised
 * strings; the gold N is normalised the same way.
 *
 * Task data (versioned with the plugin):
 *   sender template  "Question: {text}\nLet me solve this step by step."
 *   receiver primer  "The answer is"
 *   direct template  the sender template (the text baselines solve it in their own words)
 *   relay prompts    sender: the harness's "Summarize the following text in one sentence.\n
 *                    Text: {text}\nSummary:" (the study does not state its wording);
 *                    receiver: the direct template with the summary as {text}
 *   scoring          generate, 256 new tokens (room for a worked solution)
 * Option max_train keeps the first N training rows (0 = all).
 *
 * Version history: 1 — first version. 2 — answer = question no longer replaces the gold of
 * evaluation rows (version 1 scored phase-10 runs against the last number of the question). */
#define TP_PLUGIN
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <telepathy/plugin.h>
#include <telepathy/task.h>

TP_PLUGIN_DEFINE_API;

/* the text relay's summarise prompt (tp_task_info.relay_sender_template) */
#define TASK_RELAY_SENDER "Summarize the following text in one sentence.\nText: {text}\nSummary:"
#include "task_util.h"

#define API  tp_plugin_api_
#define TASK "gsm8k"

static const char gs_tpl[] = "Question: {text}\nLet me solve this step by step.";

static const tp_option_spec gs_options[] = {
    {"answer", TP_OPT_ENUM, "final", 1, 0, "final|solution|question",
     "gold answer text: final (N after ####), solution (worked solution) or question (phase 10)"},
    {"max_train", TP_OPT_INT, "0", 0, 1e9, NULL, "keep the first N training rows (0 = all)"},
    {"dir", TP_OPT_STRING, "", 1, 0, NULL,
     "directory with train.jsonl and test.jsonl (default <data_dir>/gsm8k)"},
};

typedef struct gs_state {
    char dir[4096];
    int64_t max_train;
    int solution; /* 0 final, 1 solution, 2 question */
} gs_state;

/* ---- numbers -----------------------------------------------------------------------------------
 */

static int gs_digit(char c) {
    return c >= '0' && c <= '9';
}

/* Parses a number at s (after any sign handling by the caller): optional '$', digits with
 * optional comma groups, optional decimal part. Writes the normalised digits (no sign) to out and
 * returns the characters consumed, 0 if no number starts here. */
static size_t gs_number_at(const char *s, char *out, size_t cap) {
    const char *p = s;
    if (*p == '$') p++;
    if (!gs_digit(*p)) return 0;
    size_t k = 0;
    while (gs_digit(*p) ||
           (*p == ',' && gs_digit(p[1]) && gs_digit(p[2]) && gs_digit(p[3]) && !gs_digit(p[4]))) {
        /* a comma only between digit groups of three ("1,080", not "3,4") */
        if (*p != ',' && k + 1 < cap) out[k++] = *p;
        p++;
    }
    if (*p == '.' && gs_digit(p[1])) {
        size_t dot = k;
        if (k + 1 < cap) out[k++] = '.';
        p++;
        while (gs_digit(*p)) {
            if (k + 1 < cap) out[k++] = *p;
            p++;
        }
        while (k > dot + 1 && out[k - 1] == '0') k--;
        if (k == dot + 1) k = dot;
    }
    out[k] = 0;
    /* leading zeros are kept ("007" stays "007"): GSM8K answers have none, and a passkey-like
     * code must not be rewritten */
    return (size_t)(p - s);
}

/* A number starting exactly at text + i (sign allowed where it cannot be a hyphen). Returns the
 * length consumed (0 = none) and the normalised text in out. */
static size_t gs_number(const char *text, size_t i, char *out, size_t cap) {
    const char *s = text + i;
    int neg = 0;
    size_t skip = 0;
    int sign_ok = i == 0 || strchr(" \t\n($=:", text[i - 1]) != NULL;
    if (sign_ok && s[0] == '-') {
        neg = 1;
        skip = 1;
    } else if (sign_ok && (unsigned char)s[0] == 0xE2 && (unsigned char)s[1] == 0x88 &&
               (unsigned char)s[2] == 0x92) { /* U+2212 minus sign */
        neg = 1;
        skip = 3;
    }
    char digits[128];
    size_t n = gs_number_at(s + skip, digits, sizeof digits);
    if (!n) return 0;
    int zero = 1;
    for (const char *d = digits; *d; d++)
        if (*d != '0' && *d != '.') zero = 0;
    snprintf(out, cap, "%s%s", neg && !zero ? "-" : "", digits);
    return skip + n;
}

/* The number right after text + from, skipping only spaces, tabs and ':' ('$' belongs to it). */
static int gs_number_after(const char *text, size_t from, char *out, size_t cap) {
    size_t i = from;
    while (text[i] == ' ' || text[i] == ':' || text[i] == '\t') i++;
    return gs_number(text, i, out, cap) > 0;
}

static const char *gs_stristr(const char *h, const char *n) {
    size_t nl = strlen(n);
    for (; *h; h++) {
        size_t k = 0;
        while (k < nl && h[k] && (h[k] | 0x20) == (n[k] | 0x20)) k++;
        if (k == nl) return h;
    }
    return NULL;
}

static int gs_extract_text(const char *t, char *out, size_t cap) {
    if (!t || cap == 0) return 0;
    char num[128];
    for (const char *p = t; (p = gs_stristr(p, "the answer is")) != NULL; p++)
        if (gs_number_after(t, (size_t)(p - t) + 13, num, sizeof num)) {
            snprintf(out, cap, "%s", num);
            return 1;
        }
    for (const char *p = t; (p = strstr(p, "####")) != NULL; p++)
        if (gs_number_after(t, (size_t)(p - t) + 4, num, sizeof num)) {
            snprintf(out, cap, "%s", num);
            return 1;
        }
    int found = 0;
    size_t len = strlen(t);
    for (size_t i = 0; i < len;) {
        /* a number starts at a digit, '$' or sign not preceded by a digit or a decimal point
         * (no mid-number start; a listed "1,2,3" still gives 3) */
        if (i > 0 && (gs_digit(t[i - 1]) || (t[i - 1] == '.' && i > 1 && gs_digit(t[i - 2])))) {
            i++;
            continue;
        }
        size_t n = gs_number(t, i, num, sizeof num);
        if (n) {
            snprintf(out, cap, "%s", num);
            found = 1;
            i += n;
        } else {
            i++;
        }
    }
    return found;
}

static int gs_extract(void *state, const char *generated, char *out, size_t cap) {
    (void)state;
    if (cap) out[0] = 0;
    return gs_extract_text(generated, out, cap);
}

/* ---- files -------------------------------------------------------------------------------------
 */

static tp_status gs_open(const tp_options *o, const char *data_dir, void **state, tp_err *err) {
    *state = NULL;
    const char *a = API->opt_string(o, "answer");
    int sol;
    if (a && !strcmp(a, "final"))
        sol = 0;
    else if (a && !strcmp(a, "solution"))
        sol = 1;
    else if (a && !strcmp(a, "question"))
        sol = 2; /* the study's phase-10 auto-encoder target: reproduce the question */
    else
        return API->errf(err, TP_EINVAL,
                         TASK ": option answer = '%s': expected final|solution|question",
                         a ? a : "(null)");
    gs_state *s = calloc(1, sizeof *s);
    if (!s) return API->errf(err, TP_ENOMEM, TASK ": out of memory");
    s->solution = sol;
    s->max_train = API->opt_int(o, "max_train");
    tp_status st = tu_resolve_dir(TASK, API->opt_string(o, "dir"), data_dir,
                                  "train.jsonl and test.jsonl", s->dir, sizeof s->dir, err);
    if (st != TP_OK) {
        free(s);
        return st;
    }
    *state = s;
    return TP_OK;
}

static tp_status gs_info(void *state, tp_task_info *out) {
    (void)state;
    memset(out, 0, sizeof *out);
    out->n_labels = 0;
    out->sender_template = gs_tpl;
    out->receiver_primer = "The answer is";
    out->direct_template = gs_tpl;
    /* ABI 1.2 relay prompts: unchanged from before they were task data, so relay
     * runs keep their config hashes */
    out->relay_sender_template = TASK_RELAY_SENDER;
    out->relay_receiver_template = gs_tpl;
    out->default_scoring = "generate";
    out->is_generation = 1;
    out->max_new_tokens = 256;
    return TP_OK;
}

static void gs_free_dataset(void *state, tp_dataset *ds) {
    (void)state;
    tu_free_dataset(ds);
}

static tp_status gs_bad(const char *path, int64_t line, const char *what, tp_err *err) {
    return API->errf(err, TP_EFORMAT, TASK ": %s:%lld: %s", path, (long long)line, what);
}

/* One JSON Lines object (the line p[0..n), NUL-free) -> question, answer (into q, a). */
static const char *gs_object(const char *p, const char *end, char *q, size_t *ql, char *a,
                             size_t *al, char *key) {
    int have_q = 0, have_a = 0;
    p = tu_json_ws(p, end);
    if (p >= end || *p != '{') return "expected a JSON object {\"question\": ..., \"answer\": ...}";
    p = tu_json_ws(p + 1, end);
    while (p < end && *p != '}') {
        size_t kl;
        const char *why = tu_json_string(&p, end, key, &kl);
        if (why) return why;
        p = tu_json_ws(p, end);
        if (p >= end || *p != ':') return "expected ':' after a key";
        p = tu_json_ws(p + 1, end);
        if (p >= end || *p != '"') {
            if (!strcmp(key, "question") || !strcmp(key, "answer")) return "field is not a string";
            return "unknown field (expected exactly question and answer)";
        }
        if (!strcmp(key, "question")) {
            if (have_q) return "field 'question' given twice";
            why = tu_json_string(&p, end, q, ql);
            have_q = 1;
        } else if (!strcmp(key, "answer")) {
            if (have_a) return "field 'answer' given twice";
            why = tu_json_string(&p, end, a, al);
            have_a = 1;
        } else {
            return "unknown field (expected exactly question and answer)";
        }
        if (why) return why;
        p = tu_json_ws(p, end);
        if (p < end && *p == ',')
            p = tu_json_ws(p + 1, end);
        else if (p < end && *p != '}')
            return "expected ',' or '}' after a field";
    }
    if (p >= end) return "unterminated object";
    if (tu_json_ws(p + 1, end) != end) return "text after the object";
    if (!have_q) return "missing field 'question'";
    if (!have_a) return "missing field 'answer'";
    return NULL;
}

static tp_status gs_parse(gs_state *s, const char *path, char *buf, size_t len, int64_t limit,
                          int train, tp_dataset *ds, tp_err *err) {
    /* answer = question is a training target; evaluation still needs the real answer */
    int mode = s->solution == 2 && !train ? 0 : s->solution;
    if (len == 0)
        return API->errf(err, TP_EFORMAT, TASK ": %s: file is empty; expected JSON Lines", path);
    const char *nul = memchr(buf, 0, len);
    char *q = malloc(len + 1), *a = malloc(len + 1), *key = malloc(len + 1);
    if (!q || !a || !key) {
        free(q), free(a), free(key);
        return API->errf(err, TP_ENOMEM, TASK ": out of memory");
    }
    int64_t cap = 0, line = 0;
    tp_status st = TP_OK;
    char *p = buf, *end = buf + len;
    while (p < end && st == TP_OK) {
        if (limit > 0 && ds->n >= limit) break;
        char *eol = memchr(p, '\n', (size_t)(end - p));
        char *next = eol ? eol + 1 : end;
        if (!eol) eol = end;
        line++;
        size_t n = (size_t)(eol - p);
        if (nul && nul >= p && nul < eol) {
            st = gs_bad(path, line, "NUL byte (binary file?)", err);
            break;
        }
        if (memchr(p, '\r', n)) {
            st = gs_bad(path, line, "carriage return (CRLF line endings?); JSON Lines here use LF",
                        err);
            break;
        }
        size_t ql = 0, al = 0;
        const char *why = gs_object(p, eol, q, &ql, a, &al, key);
        if (why) {
            st = gs_bad(path, line, why, err);
            break;
        }
        if (tu_blank(q, ql)) {
            st = gs_bad(path, line, "empty question", err);
            break;
        }
        const char *h = NULL;
        for (const char *x = a; (x = strstr(x, "####")) != NULL; x++) h = x;
        char num[128];
        if (!h) {
            st = gs_bad(path, line, "answer has no final line '#### N'", err);
            break;
        }
        const char *r = h + 4;
        while (*r == ' ') r++;
        size_t used = gs_number(r, 0, num, sizeof num);
        const char *rest = r + used;
        while (*rest == ' ' || *rest == '\n') rest++;
        if (!used || *rest) {
            char msg[160];
            snprintf(msg, sizeof msg, "'#### %.40s': expected a number after ####", r);
            st = gs_bad(path, line, msg, err);
            break;
        }
        const char *gold = mode == 1 ? a : mode == 2 ? q : num;
        size_t gl = mode == 1 ? al : mode == 2 ? ql : strlen(num);
        if (tu_add_row(ds, &cap, q, ql, -1, gold, gl, line) != TP_OK)
            st =
                API->errf(err, TP_ENOMEM, TASK ": out of memory at %s:%lld", path, (long long)line);
        p = next;
    }
    free(q), free(a), free(key);
    if (st == TP_OK && ds->n == 0) st = API->errf(err, TP_EFORMAT, TASK ": %s: no rows", path);
    return st;
}

static tp_status gs_load(void *state, const char *split, tp_dataset *out, tp_err *err) {
    gs_state *s = state;
    memset(out, 0, sizeof *out);
    const char *file = NULL;
    int64_t limit;
    TP_TRY(tu_split_file(TASK, s->dir, split, "train.jsonl", "test.jsonl", s->max_train, out, &file,
                         &limit, err));
    char *buf;
    size_t len;
    TP_TRY(tu_read_file(TASK, out->source, &buf, &len, err));
    tp_status st = gs_parse(s, out->source, buf, len, limit, !strcmp(split, "train"), out, err);
    free(buf);
    if (st != TP_OK) tu_free_dataset(out);
    return st;
}

static void gs_close(void *state) {
    free(state);
}

static const tp_task_vtable gs_vtable = {
    .size = sizeof(tp_task_vtable),
    .open = gs_open,
    .info = gs_info,
    .load = gs_load,
    .free_dataset = gs_free_dataset,
    .extract = gs_extract,
    .close = gs_close,
};

TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *api, tp_plugin_desc *d, tp_err *err) {
    TP_PLUGIN_BIND(api);
    d->abi_version = TP_ABI_VERSION;
    d->size = sizeof *d;
    d->kind = TP_PLUGIN_TASK;
    d->name = TASK;
    d->version = "2";
    d->summary = "GSM8K math word problems (generation; final number after ####) from JSONL";
    d->options = gs_options;
    d->n_options = (int)(sizeof gs_options / sizeof gs_options[0]);
    d->vtable = &gs_vtable;
    d->vtable_size = sizeof gs_vtable;
    (void)err;
    return TP_OK;
}
