/* table.h — rows x columns of a metric from results.db: what `telepathy table` and tp.table{}
 * print (Markdown, LaTeX with booktabs, or CSV). Keys are runs columns (bridge, task, sender,
 * receiver, seed, task_version, bridge_version, status, origin, ...), `experiment` (its name) or
 * paths into the stored config ("bridge.options.tokens", "layer", "eval.scoring"). Only `done` runs
 * count.
 *
 * Each cell collapses its runs (seeds): mean ± sample std, with the number of runs always shown
 * as (n=K). Fidelity guards, visible in the cell: runs scored with different schemes or by
 * different task versions are flagged ([schemes: a+b], [task versions: 1+2]), a run carrying a
 * stored fairness warning (results rows fairness_warning/<code>, run/fairness.h) is flagged
 * [fairness: code], and when runs score different numbers of examples the cell says [N=...]
 * (a table whose runs all score the same number says so below it), and two runs of a cell with
 * the same seed are flagged [seed S used twice]. CSV lists every cell's seeds.
 *
 * With `vs` = a value of the row key (e.g. "receiver_direct"), every other cell is tested
 * against the baseline row's cell of the same column: McNemar on the paired per-example
 * predictions (matched by example hash, else example id), each run paired with the baseline run
 * of the same seed (else the baseline's first run); all p-values of the table are Holm-adjusted
 * and a cell's mark uses its largest adjusted p: * < 0.05, ** < 0.01, *** < 0.001. A cell
 * without paired predictions says [no paired predictions]. Other tests (`test`): "bootstrap" =
 * the paired bootstrap of the accuracy difference on the same pairs (p from 10,000 seeded
 * resamples); "ttest" = the paired t-test of the cell's per-seed values against the baseline
 * cell's runs of the same seeds (one test per cell, needs 2 shared seeds). */
#ifndef TP_RUN_TABLE_H
#define TP_RUN_TABLE_H

#include <stddef.h>

#include "store/store.h"

typedef struct tp_table_opts {
    const char *rows;       /* key; required */
    const char *cols;       /* key; NULL = one column named after the metric */
    const char *metric;     /* results.metric; NULL = "accuracy" */
    const char *split;      /* NULL = "eval" */
    const char *experiment; /* experiments.name filter, or NULL */
    const char *origin;     /* runs.origin filter ("harness" | "study"), or NULL = all */
    const char *vs;         /* baseline: a value of the row key, or NULL = no tests */
    const char *format;     /* "md" (NULL) | "latex" | "csv" */
    const char *test;       /* with vs: "mcnemar" (NULL) | "bootstrap" | "ttest" */
} tp_table_opts;

/* The table as text into *out (malloc'd). Metrics whose values all lie in [0, 1] print as
 * percent in md/latex; CSV holds one line per cell with the raw values. */
tp_status tp_table_render(tp_store *s, const tp_table_opts *o, char **out, tp_err *err);

/* The SQL expression of a key over `runs r` (joined with `experiments e`): a runs column,
 * "experiment", or json_extract of a config path (characters checked, never pasted raw). */
tp_status tp_table_key_sql(const char *key, char *out, size_t cap, tp_err *err);

#endif
