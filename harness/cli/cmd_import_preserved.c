/* cmd_import_preserved.c — `telepathy import-preserved DIR`: the study's preserved result files
 * into results.db as runs of origin `study` (run/import_preserved.h). */
#include <stdio.h>
#include <string.h>

#include "cli/cli_store.h"
#include "run/import_preserved.h"

static const char *USAGE =
    "usage: telepathy import-preserved DIR [--db PATH]\n"
    "\n"
    "Reads every .json file under DIR (the study's preserved results, e.g. ../shared/preserved)\n"
    "into results.db as runs of origin 'study': accuracies (with Wilson intervals where the\n"
    "counts are given), per-class accuracies, per-example predictions where the file has them,\n"
    "the file's settings as the run config, logged losses and latencies. Each top folder is an\n"
    "experiment (telepathy table --experiment exp001_sst2_signal_check ...). A file no reader\n"
    "recognises is an error; importing again adds nothing.\n"
    "  --db PATH   results database (default: [paths] results; created if missing)\n";

int tp_cmd_import_preserved(int argc, char **argv, tp_cli_env *env) {
    const char *cmd = "import-preserved";
    if (tp_cli_wants_help(argc, argv)) {
        fputs(USAGE, stdout);
        return 0;
    }
    const char *db = NULL, *dir = NULL;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if ((v = tp_cli_opt(argc, argv, &i, "--db", &missing)))
            db = v;
        else if (missing)
            return tp_cli_usage_error(cmd, "option %s needs a value", argv[i]);
        else if (argv[i][0] == '-' && argv[i][1])
            return tp_cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else if (!dir)
            dir = argv[i];
        else
            return tp_cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!dir) return tp_cli_usage_error(cmd, "DIR (the preserved results folder) is required");
    tp_err err = {0};
    const char *path;
    if (tp_cli_db_path(env, db, &path, &err) != TP_OK) return tp_cli_fail(cmd, &err);
    tp_store *s;
    if (tp_store_open(&s, path, TP_STORE_RW, &err) != TP_OK) return tp_cli_fail(cmd, &err);
    tp_import_report rep;
    tp_status st = tp_import_preserved(s, dir, &rep, &err);
    tp_store_close(s);
    if (st != TP_OK) return tp_cli_fail(cmd, &err);
    printf("read %d files: %d runs added, %d already there, %d predictions -> %s\n", rep.files,
           rep.runs, rep.existing, rep.predictions, path);
    return 0;
}
