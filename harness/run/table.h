/* table.h — rows x columns of a metric from results.db, mean ± sample std over the runs (seeds)
 * in each cell, with n always shown: what tp.table{} prints. Keys are runs columns (bridge, task,
 * sender, receiver, seed, task_version, bridge_version, status) or paths into the stored config
 * ("bridge.options.tokens", "layer", "eval.scoring"). Only `done` runs count; a cell that mixes
 * scoring schemes is flagged instead of averaged silently. */
#ifndef TP_RUN_TABLE_H
#define TP_RUN_TABLE_H

#include "store/store.h"

typedef struct tp_table_opts {
    const char *rows;       /* key; required */
    const char *cols;       /* key; NULL = one column named after the metric */
    const char *metric;     /* results.metric; NULL = "accuracy" */
    const char *split;      /* NULL = "eval" */
    const char *experiment; /* experiments.name filter, or NULL */
} tp_table_opts;

/* Markdown table into *out (malloc'd). Accuracy-like metrics (in [0,1]) print as percent. */
tp_status tp_table_render(tp_store *s, const tp_table_opts *o, char **out, tp_err *err);

#endif
