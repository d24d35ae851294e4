/* cmd_table.c — `telepathy table`: a paper table from results.db (run/table.h does the work; the
 * same function is tp.table{} in Lua). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_store.h"
#include "run/table.h"

static const char *USAGE =
    "usage: telepathy table --rows KEY [--cols KEY] [--metric M] [--experiment NAME]\n"
    "                       [--vs BASELINE [--test mcnemar|bootstrap|ttest]]\n"
    "                       [--format md|latex|csv] [--split S]\n"
    "                       [--origin harness|study] [--db PATH] [-o FILE]\n"
    "\n"
    "Rows x columns of a metric over the finished runs; each cell is the mean ± sample std over\n"
    "its runs (seeds), with the number of runs always shown as (n=K).\n"
    "  --rows KEY, --cols KEY  a runs column (bridge, task, sender, receiver, seed, task_version,\n"
    "                          origin, ...) or a path into the stored config, e.g.\n"
    "                          bridge.options.tokens, layer, eval.scoring\n"
    "  --metric M              results metric (default accuracy)\n"
    "  --experiment NAME       only runs of that experiment (e.g. exp001_sst2_signal_check)\n"
    "  --vs BASELINE           a row value to test every other cell against: McNemar on the\n"
    "                          paired per-example predictions, Holm-adjusted; * ** *** marks\n"
    "  --test T                mcnemar (default), bootstrap (paired bootstrap of the accuracy\n"
    "                          difference on the same pairs) or ttest (paired t over the seeds a\n"
    "                          cell shares with the baseline)\n"
    "  --format F              md (default), latex (booktabs) or csv (one line per cell)\n"
    "  --split S               results split (default eval)\n"
    "  --origin O              only runs made by the harness, or imported from the study\n"
    "  --db PATH               results database (default: [paths] results)\n"
    "  -o FILE                 write the table to FILE instead of stdout\n"
    "\n"
    "Cells flag what must not be averaged silently: [schemes: a+b], [task versions: 1+2],\n"
    "[fairness: code] (a baseline that sees less than the bridge), [N=...] (runs that scored\n"
    "different numbers of examples).\n";

int tp_cmd_table(int argc, char **argv, tp_cli_env *env) {
    const char *cmd = "table";
    if (tp_cli_wants_help(argc, argv)) {
        fputs(USAGE, stdout);
        return 0;
    }
    tp_table_opts o = {0};
    const char *db = NULL, *outp = NULL;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if ((v = tp_cli_opt(argc, argv, &i, "--db", &missing)))
            db = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--rows", &missing)))
            o.rows = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--cols", &missing)))
            o.cols = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--metric", &missing)))
            o.metric = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--experiment", &missing)))
            o.experiment = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--vs", &missing)))
            o.vs = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--format", &missing)))
            o.format = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--split", &missing)))
            o.split = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--origin", &missing)))
            o.origin = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--test", &missing)))
            o.test = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "-o", &missing)))
            outp = v;
        else if (missing)
            return tp_cli_usage_error(cmd, "option %s needs a value", argv[i]);
        else
            return tp_cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!o.rows) return tp_cli_usage_error(cmd, "--rows KEY is required (e.g. --rows bridge)");
    if (o.format && strcmp(o.format, "md") && strcmp(o.format, "latex") && strcmp(o.format, "csv"))
        return tp_cli_usage_error(cmd, "--format: expected md, latex or csv, got '%s'", o.format);
    if (o.test && strcmp(o.test, "mcnemar") && strcmp(o.test, "bootstrap") &&
        strcmp(o.test, "ttest"))
        return tp_cli_usage_error(cmd, "--test: expected mcnemar, bootstrap or ttest, got '%s'",
                                  o.test);
    if (o.test && !o.vs) return tp_cli_usage_error(cmd, "--test needs --vs BASELINE");
    if (o.origin && strcmp(o.origin, "harness") && strcmp(o.origin, "study"))
        return tp_cli_usage_error(cmd, "--origin: expected harness or study, got '%s'", o.origin);
    tp_err err = {0};
    tp_store *s;
    if (tp_cli_open_ro(env, db, &s, &err) != TP_OK) return tp_cli_fail(cmd, &err);
    char *text = NULL;
    tp_status st = tp_table_render(s, &o, &text, &err);
    tp_store_close(s);
    if (st != TP_OK) return tp_cli_fail(cmd, &err);
    int ret = 0;
    FILE *f = outp ? fopen(outp, "w") : stdout;
    if (!f) {
        fprintf(stderr, "telepathy table: %s: cannot open for writing\n", outp);
        ret = 1;
    } else {
        fputs(text, f);
        if (outp && fclose(f) != 0) {
            fprintf(stderr, "telepathy table: %s: write failed\n", outp);
            ret = 1;
        }
    }
    free(text);
    return ret;
}
