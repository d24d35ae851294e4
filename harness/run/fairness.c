/* fairness.c — the fairness rule's check and its result rows (see fairness.h). */
#include "run/fairness.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/strutil.h"

long tp_template_text_limit(const char *tpl) {
    long best = -2;
    if (!tpl) return -2;
    for (const char *p = tpl; (p = strstr(p, "{text")) != NULL; p++) {
        if (p[5] == '}') {
            if (best == -2) best = -1;
            continue;
        }
        char *end;
        if (strncmp(p + 5, "[:", 2) != 0) continue;
        long n = strtol(p + 7, &end, 10);
        if (end == p + 7 || n < 0 || end[0] != ']' || end[1] != '}') continue;
        if (best < 0 || n < best) best = n;
    }
    return best;
}

static void add(tp_fairness *f, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add(tp_fairness *f, const char *code, const char *fmt, ...) {
    if (f->n >= TP_FAIRNESS_MAX) return;
    tp_strlcpy(f->code[f->n], code, sizeof f->code[f->n]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg[f->n], sizeof f->msg[f->n], fmt, ap);
    va_end(ap);
    f->n++;
}

/* Case-insensitive substring test with '_' and ' ' equal. */
static int mentions(const char *hay, const char *word) {
    size_t wl = strlen(word);
    if (!wl) return 1;
    for (const char *h = hay; *h; h++) {
        size_t k = 0;
        for (; k < wl && h[k]; k++) {
            char a = (char)tolower((unsigned char)h[k]), b = (char)tolower((unsigned char)word[k]);
            if (a == '_') a = ' ';
            if (b == '_') b = ' ';
            if (a != b) break;
        }
        if (k == wl) return 1;
    }
    return 0;
}

/* The first label word that tpl names neither directly nor by a synonym; NULL if all named. */
static const char *missing_label(const tp_task_info *info, const char *tpl) {
    for (int c = 0; c < info->n_labels; c++) {
        if (mentions(tpl, info->labels[c])) continue;
        int found = 0;
        if (info->synonyms[c]) {
            char buf[1024];
            tp_strlcpy(buf, info->synonyms[c], sizeof buf);
            for (char *s = buf, *bar; s && !found; s = bar ? bar + 1 : NULL) {
                bar = strchr(s, '|');
                if (bar) *bar = 0;
                found = mentions(tpl, s);
            }
        }
        if (!found) return info->labels[c];
    }
    return NULL;
}

static void check_text(tp_fairness *f, const char *what, const char *tpl, long bridge) {
    long lim = tp_template_text_limit(tpl);
    if (lim == -2) {
        add(f, "no_text", "%s has no {text} placeholder, so the baseline never sees the example",
            what);
    } else if (lim >= 0 && (bridge < 0 || lim < bridge)) {
        if (bridge < 0)
            add(f, "text_cut",
                "%s shows the first %ld characters of the text; the bridge's sender reads all of "
                "it",
                what, lim);
        else
            add(f, "text_cut",
                "%s shows the first %ld characters of the text; the bridge's sender reads %ld",
                what, lim, bridge);
    }
}

void tp_fairness_check(const tp_run_cfg *cfg, tp_fairness *f) {
    memset(f, 0, sizeof *f);
    if (cfg->kind == TP_KIND_BRIDGE) return;
    const tp_task_info *info = &cfg->info;
    long bridge = tp_template_text_limit(info->sender_template);
    int cls = !info->is_generation && info->n_labels > 0;
    const char *answer_tpl = NULL; /* what the answering model reads */
    if (cfg->kind == TP_KIND_TEXT_RELAY) {
        check_text(f, "the relay sender prompt", cfg->bopts.sender_prompt, bridge);
        if (cls && !cfg->bopts.labels_in_prompt)
            add(f, "relay_no_labels",
                "text_relay without the label list (labels_in_prompt = false): the receiver "
                "must guess the answer space the bridge was trained on");
        else
            answer_tpl = tp_relay_receiver_template_of(info);
    } else {
        check_text(f, "the task's direct prompt", info->direct_template, bridge);
        answer_tpl = info->direct_template;
    }
    if (cls && answer_tpl) {
        const char *miss = missing_label(info, answer_tpl);
        if (miss)
            add(f, "no_label_list",
                "the prompt the answering model reads does not name the label '%s'; a bridge "
                "is trained on every label",
                miss);
    }
}

tp_status tp_fairness_record(tp_store *s, int64_t run_id, const tp_fairness *f, tp_err *err) {
    if (f->n == 0) return TP_OK;
    /* the rows hold the rule codes; the reasons go to the log, where the script's user sees them */
    for (int i = 0; i < f->n; i++)
        tp_log(TP_LOG_WARN, "fairness", "run %lld: %s (%s)", (long long)run_id, f->msg[i],
               f->code[i]);
    if (!s) return TP_OK;
    tp_result_row rows[1 + TP_FAIRNESS_MAX];
    char names[TP_FAIRNESS_MAX][64];
    int n = 0;
    rows[n++] = (tp_result_row){"fairness_warning", (double)f->n, NAN, NAN, NULL, -1, NULL, "eval"};
    for (int i = 0; i < f->n; i++) {
        snprintf(names[i], sizeof names[i], "fairness_warning/%s", f->code[i]);
        rows[n++] = (tp_result_row){names[i], 1.0, NAN, NAN, NULL, -1, NULL, "eval"};
    }
    return tp_store_results_add(s, run_id, rows, n, err);
}
