/* cmd_replay.c — `telepathy replay RUN_ID`: re-run a stored run from its recorded configuration
 * into a separate results db and print old vs new (run/replay.h). */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_store.h"
#include "plugin/config.h"
#include "run/replay.h"

static const char *USAGE =
    "usage: telepathy replay RUN_ID [--db PATH] [--into PATH] [--sender DIR] [--receiver DIR]\n"
    "                        [--strict]\n"
    "\n"
    "Rebuilds the run's stored configuration, checks the plugin versions and .so hashes, the\n"
    "model weight fingerprints, the data (example hashes) and the code commit (a warning for\n"
    "each mismatch), re-runs it, and prints the original and the replay side by side: accuracy,\n"
    "training losses and predictions compared bit for bit, McNemar on the paired outcomes.\n"
    "  --db PATH       results database holding the run (default: [paths] results)\n"
    "  --into PATH     record the replay in this db (default: a temporary db, removed after)\n"
    "  --sender DIR    load the sender (or a sender-direct baseline's model) from DIR instead\n"
    "                  of the stored path\n"
    "  --receiver DIR  the same for the receiver\n"
    "  --strict        exit 1 unless the replay is bit-identical\n";

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int git_commit(char *out, size_t cap, int *dirty) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "git -C '%s' rev-parse HEAD 2>/dev/null", TP_SOURCE_DIR);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    int ok = fgets(out, (int)cap, p) != NULL;
    pclose(p);
    if (!ok) return 0;
    out[strcspn(out, "\r\n")] = 0;
    snprintf(cmd, sizeof cmd, "git -C '%s' status --porcelain --untracked-files=no 2>/dev/null",
             TP_SOURCE_DIR);
    p = popen(cmd, "r");
    char line[8];
    *dirty = p && fgets(line, sizeof line, p) != NULL;
    if (p) pclose(p);
    return out[0] != 0;
}

static void warn(void *ctx, const char *msg) {
    (void)ctx;
    fprintf(stderr, "telepathy replay: warning: %s\n", msg);
}

int tp_cmd_replay(int argc, char **argv, tp_cli_env *env) {
    const char *cmd = "replay";
    if (tp_cli_wants_help(argc, argv)) {
        fputs(USAGE, stdout);
        return 0;
    }
    const char *db = NULL, *into = NULL, *id_s = NULL;
    tp_replay_opts o = {0};
    int strict = 0;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if ((v = tp_cli_opt(argc, argv, &i, "--db", &missing)))
            db = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--into", &missing)))
            into = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--sender", &missing)))
            o.sender_path = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--receiver", &missing)))
            o.receiver_path = v;
        else if (missing)
            return tp_cli_usage_error(cmd, "option %s needs a value", argv[i]);
        else if (!strcmp(argv[i], "--strict"))
            strict = 1;
        else if (argv[i][0] == '-')
            return tp_cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else if (!id_s)
            id_s = argv[i];
        else
            return tp_cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!id_s) return tp_cli_usage_error(cmd, "RUN_ID is required");
    char *end;
    long long id = strtoll(id_s, &end, 10);
    if (end == id_s || *end || id < 1)
        return tp_cli_usage_error(cmd, "RUN_ID: expected a positive integer, got '%s'", id_s);
    tp_err err = {0};
    tp_config *cfg;
    struct tp_registry *reg;
    if (tp_cli_config(env, &cfg, &err) != TP_OK || tp_cli_registry(env, &reg, &err) != TP_OK)
        return tp_cli_fail(cmd, &err);
    tp_store *src;
    if (tp_cli_open_ro(env, db, &src, &err) != TP_OK) return tp_cli_fail(cmd, &err);
    char tmpdir[] = "/tmp/telepathy-replay-XXXXXX", tmpdb[64];
    if (!into) {
        if (!mkdtemp(tmpdir)) {
            tp_store_close(src);
            fprintf(stderr, "telepathy replay: cannot create a temporary directory\n");
            return 1;
        }
        snprintf(tmpdb, sizeof tmpdb, "%s/results.db", tmpdir);
        into = tmpdb;
    }
    char commit[128];
    int dirty = -1;
    o.src = src;
    o.run_id = id;
    o.reg = reg;
    o.into = into;
    const char *data = tp_config_get(cfg, "paths.data");
    o.data_dir = data && data[0] ? data : NULL;
    o.git_commit = git_commit(commit, sizeof commit, &dirty) ? commit : NULL;
    o.git_dirty = o.git_commit ? dirty : -1;
    o.warn = warn;
    tp_replay_report rep;
    tp_status st = tp_replay(&o, &rep, &err);
    tp_store_close(src);
    if (into == tmpdb) nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (st != TP_OK) return tp_cli_fail(cmd, &err);
    tp_replay_print(&rep, id, stdout);
    if (into != tmpdb)
        printf("replay recorded in %s (run %lld)\n", into, (long long)rep.new_run_id);
    if (rep.warnings) printf("%d warning(s) above\n", rep.warnings);
    return strict && !rep.identical ? 1 : 0;
}
