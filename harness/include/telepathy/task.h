/* task.h — the task plugin vtable. A task is mostly data (STYLE.md, lm-eval): files, split,
 * prompt templates, label words; code only for parsing and answer extraction. Prompts use
 * "{text}" as the placeholder for the example's text. */
#ifndef TELEPATHY_TASK_H
#define TELEPATHY_TASK_H

#include "telepathy/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_example {
    int64_t id;   /* stable index within the split */
    int64_t line; /* 1-based line in the source file (for messages); 0 for synthetic rows */
    char *text;   /* input text */
    int label;    /* class index, or -1 for generation tasks */
    char *answer; /* gold answer text (generation tasks; label word for classification) */
} tp_example;

typedef struct tp_dataset {
    tp_example *rows;
    int64_t n;
    char source[512]; /* file path or "synthetic(seed=..)" */
} tp_dataset;

#define TP_MAX_LABELS 128
typedef struct tp_task_info {
    int n_labels;                        /* 0 for generation tasks */
    const char *labels[TP_MAX_LABELS];   /* canonical label words, dataset order */
    const char *synonyms[TP_MAX_LABELS]; /* extra accepted words "a|b", or NULL */
    const char *sender_template;         /* "Review: {text}\nSentiment (positive or negative):" */
    const char *receiver_primer;         /* text before the soft tokens, e.g. "Sentiment:" */
    const char *direct_template;         /* receiver/sender-direct prompt with the label list */
    const char *default_scoring;         /* "first_token" | "generate" | "loglik" */
    int is_generation;
    int max_new_tokens; /* for generate scoring */
    /* ---- appended in ABI 1.2: the text-relay baseline's prompts are task data. The host
     * zero-fills the whole struct before calling info(), so a task built for 1.1 leaves them
     * NULL and the host falls back: the sender's prompt to the harness default
     * ("Summarize the following text in one sentence.\nText: {text}\nSummary:"), the
     * receiver's to direct_template. ---- */
    const char *relay_sender_template;   /* sender's summarise prompt, {text} = the example */
    const char *relay_receiver_template; /* receiver's prompt with the label list around the
                                          * summary ({text} = the summary); NULL = direct_template.
                                          * The relay without labels reads "{summary}\n<primer>" */
} tp_task_info;

typedef struct tp_task_vtable {
    uint32_t size; /* sizeof(tp_task_vtable) */
    /* data_dir: the [paths] data directory (may be NULL for synthetic tasks) */
    tp_status (*open)(const tp_options *opts, const char *data_dir, void **state, tp_err *err);
    tp_status (*info)(void *state, tp_task_info *out);
    /* split: "train" or "eval". Rows with bad labels are errors naming file:line. */
    tp_status (*load)(void *state, const char *split, tp_dataset *out, tp_err *err);
    void (*free_dataset)(void *state, tp_dataset *ds);
    /* Generation tasks: extracts the answer from generated text into out; returns 1 if found.
     * May be NULL for classification tasks. */
    int (*extract)(void *state, const char *generated, char *out, size_t cap);
    void (*close)(void *state);
} tp_task_vtable;

#ifdef __cplusplus
}
#endif
#endif
