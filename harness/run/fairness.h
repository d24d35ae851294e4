/* fairness.h — the fairness rule (STUDY.md pitfalls: "baselines with less information than the
 * bridge (prompt tuning without the text, relay without the label list)"): every baseline must
 * see at least the information a bridge run of the same task sees. A bridge's sender reads the
 * task's sender template around the whole example text ({text}, or {text[:N]}), and the bridge
 * is trained on the labels, so it knows the answer space. A baseline configuration breaks the
 * rule when
 *   no_text          a prompt the baseline reads has no {text} placeholder (it never sees the
 *                    example);
 *   text_cut         it reads the text cut shorter ({text[:N]}) than the bridge's sender does;
 *   no_label_list    (classification) the prompt the answering model reads does not name every
 *                    label word (or a synonym of it), so it must guess the answer space;
 *   relay_no_labels  text_relay with labels_in_prompt = false (the paper's weaker relay).
 * The check is a pure function of the resolved configuration; the runner records what it finds
 * as result rows of the run (split "eval", scheme ""): `fairness_warning` = the number of
 * broken rules, and `fairness_warning/<code>` = 1 for each. A run without rows kept the rule. */
#ifndef TP_RUN_FAIRNESS_H
#define TP_RUN_FAIRNESS_H

#include "run/run_config.h"
#include "store/store.h"

#define TP_FAIRNESS_MAX 8

typedef struct tp_fairness {
    int n;
    char code[TP_FAIRNESS_MAX][32];
    char msg[TP_FAIRNESS_MAX][512];
} tp_fairness;

void tp_fairness_check(const tp_run_cfg *cfg, tp_fairness *out);

/* Logs each broken rule as a warning and writes the result rows (s may be NULL: log only). */
tp_status tp_fairness_record(tp_store *s, int64_t run_id, const tp_fairness *f, tp_err *err);

/* How much of the text a template shows: -1 all ({text}), N for {text[:N]} (the smallest), -2
 * when it has no placeholder. */
long tp_template_text_limit(const char *tpl);

#endif
