/* cmd_merge.c — `telepathy merge SHARD... [--into results.db]`: folds the shard databases of a
 * Slurm submission into results.db by config hash, one transaction per shard (run/merge.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_store.h"
#include "run/merge.h"
#include "run/sweep.h"

static const char *USAGE =
    "usage: telepathy merge SHARD.db... [--into PATH] [--sweep NAME]\n"
    "\n"
    "Folds shard databases (what the tasks of `telepathy submit --slurm` write) into the results\n"
    "db, by config hash: a configuration already done there is not copied again, so merging\n"
    "twice is harmless; a done run replaces a failed or interrupted one; a run a killed task left\n"
    "unfinished stays pending in the sweep. Each shard is one transaction: an interrupted merge\n"
    "leaves the db consistent, and merging again completes it.\n"
    "  --into PATH    the results db (default: --db, else [paths] results)\n"
    "  --sweep NAME   refuse shards of any other sweep\n"
    "\n"
    "exit status: 0 every shard merged, 1 a shard was refused or failed (the others merged),\n"
    "2 usage error\n";

int tp_cmd_merge(int argc, char **argv, tp_cli_env *env) {
    const char *cmd = "merge";
    if (tp_cli_wants_help(argc, argv)) {
        fputs(USAGE, stdout);
        return 0;
    }
    const char *into = NULL, *sweep = NULL;
    const char **shards = calloc((size_t)argc + 1, sizeof *shards);
    if (!shards) return 1;
    int n = 0, rc = 0;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if ((v = tp_cli_opt(argc, argv, &i, "--into", &missing)) ||
            (v = tp_cli_opt(argc, argv, &i, "--db", &missing)))
            into = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--sweep", &missing)))
            sweep = v;
        else if (missing) {
            rc = tp_cli_usage_error(cmd, "option %s needs a value", argv[i]);
            goto out;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            rc = tp_cli_usage_error(cmd, "unknown option '%s'", argv[i]);
            goto out;
        } else
            shards[n++] = argv[i];
    }
    if (n == 0) {
        rc = tp_cli_usage_error(cmd, "no shard given (telepathy merge DIR/shard_*.db)");
        goto out;
    }
    tp_err err = {0};
    if (sweep && tp_sweep_name_check(sweep, &err) != TP_OK) {
        rc = tp_cli_usage_error(cmd, "--sweep: %s", err.msg);
        goto out;
    }
    const char *path;
    tp_store *s = NULL;
    if (tp_cli_db_path(env, into, &path, &err) != TP_OK ||
        tp_store_open(&s, path, TP_STORE_RW, &err) != TP_OK) {
        rc = tp_cli_fail(cmd, &err);
        goto out;
    }
    tp_merge_stats tot = {0};
    int merged = 0;
    for (int i = 0; i < n; i++) {
        tp_merge_stats ms;
        if (tp_merge_shard(s, shards[i], sweep, &ms, &err) != TP_OK) {
            fprintf(stderr, "telepathy merge: %s\n", err.msg);
            rc = 1;
            continue;
        }
        merged++;
        printf("%s: %d run(s) added, %d replaced, %d already there; %d sweep item(s) updated\n",
               shards[i], ms.runs_added, ms.runs_replaced, ms.runs_skipped, ms.items_updated);
        tot.runs_added += ms.runs_added;
        tot.runs_replaced += ms.runs_replaced;
        tot.runs_skipped += ms.runs_skipped;
    }
    printf("merged %d of %d shard(s) into %s: %d run(s) added, %d replaced, %d already there\n",
           merged, n, path, tot.runs_added, tot.runs_replaced, tot.runs_skipped);
    tp_store_close(s);
out:
    free(shards);
    return rc;
}
