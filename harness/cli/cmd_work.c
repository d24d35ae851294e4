/* cmd_work.c — `telepathy work`: run a planned sweep's items. One worker in this process, one
 * worker process per listed GPU (--gpus 0,1,cpu: each child sees one device through
 * CUDA_VISIBLE_DEVICES, all share results.db in WAL mode), or, for a Slurm array task, exactly
 * one item of a submission's plan.json into the task's own shard (--one). run/worker.h. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli_store.h"
#include "plugin/config.h"
#include "run/slurm.h"
#include "run/worker.h"

static const char *USAGE =
    "usage: telepathy work --sweep NAME [--db PATH] [--gpus LIST] [--retries N] [--fail-fast]\n"
    "                      [--heartbeat S] [--stale S] [--grace S] [--worker LABEL]\n"
    "                      [--set k=v ...]\n"
    "       telepathy work --one --plan DIR/plan.json [--index I] --shard DIR/shard_I.db\n"
    "                      [--retries N]\n"
    "\n"
    "Claims the sweep's pending configurations one at a time (atomically: two workers never run\n"
    "the same one), runs each like tp.run{} would, and marks it done or failed. Models are loaded\n"
    "once per worker and reused. Keeps going after a failure unless --fail-fast.\n"
    "  --gpus LIST     one worker process per entry, e.g. 0,1,2,3 (each sees only its GPU through\n"
    "                  CUDA_VISIBLE_DEVICES) or cpu,cpu (CPU workers); all share results.db\n"
    "  --retries N     run a failed configuration up to N more times (default 0)\n"
    "  --fail-fast     the first configuration that fails for good stops the whole sweep\n"
    "  --heartbeat S   heartbeat period in seconds (default 10)\n"
    "  --stale S       a claim whose heartbeat is older than S seconds returns to pending\n"
    "                  (default 120; a dead worker on this host is noticed at once)\n"
    "  --grace S       on SIGTERM / SIGUSR1, let the training run up to S more seconds to write\n"
    "                  its next checkpoint before releasing (default 0; Slurm tasks get 60)\n"
    "  --one           Slurm array task mode (what `telepathy submit` writes): run item I of\n"
    "                  --plan (default I = $SLURM_ARRAY_TASK_ID) into the shard db --shard\n"
    "SIGTERM / SIGUSR1 / SIGINT: after --grace, the running configuration is marked interrupted\n"
    "(its checkpoints are kept), its claim returns to pending, and the worker exits with 75.\n"
    "\n"
    "exit status: 0 every claimed configuration is done, 1 some failed or the db failed,\n"
    "2 usage error, 75 stopped by a signal\n";

typedef struct work_args {
    const char *sweep, *db, *gpus, *worker, *plan, *shard, *index;
    int retries, fail_fast, one;
    double heartbeat, stale, grace;
    const char **sets;
    int nsets;
} work_args;

static int parse_num(const char *cmd, const char *opt, const char *v, double lo, double *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || d < lo)
        return tp_cli_usage_error(cmd, "%s '%s': expected a number >= %g", opt, v, lo);
    *out = d;
    return 0;
}

static volatile sig_atomic_t g_parent_sig;
static void parent_signal(int sig) {
    g_parent_sig = sig;
}

typedef struct spawn {
    const work_args *a;
    tp_cli_env *env;
    char exe[PATH_MAX], db[PATH_MAX];
    char rbuf[32], hbuf[64], sbuf[64], gbuf[64];
} spawn;

/* Starts a single-worker child for device dev; returns its pid or -1. */
static pid_t start_worker(const spawn *sp, const char *dev) {
    const work_args *a = sp->a;
    char label[64];
    snprintf(label, sizeof label, "%s%s", strcmp(dev, "cpu") ? "gpu " : "", dev);
    const char *args[96];
    int k = 0;
    args[k++] = sp->exe;
    if (sp->env->config_path) args[k++] = "--config", args[k++] = sp->env->config_path;
    if (sp->env->plugin_path) args[k++] = "--plugin-path", args[k++] = sp->env->plugin_path;
    if (sp->env->quiet) args[k++] = "-q";
    args[k++] = "work";
    args[k++] = "--sweep", args[k++] = a->sweep;
    args[k++] = "--db", args[k++] = sp->db;
    args[k++] = "--worker", args[k++] = label;
    args[k++] = "--retries", args[k++] = sp->rbuf;
    args[k++] = "--heartbeat", args[k++] = sp->hbuf;
    args[k++] = "--stale", args[k++] = sp->sbuf;
    args[k++] = "--grace", args[k++] = sp->gbuf;
    if (a->fail_fast) args[k++] = "--fail-fast";
    for (int i = 0; i < a->nsets && k < 90; i++) args[k++] = "--set", args[k++] = a->sets[i];
    args[k] = NULL;
    fflush(NULL);
    pid_t p = fork();
    if (p < 0) {
        fprintf(stderr, "telepathy work: fork: %s\n", strerror(errno));
        return -1;
    }
    if (p == 0) {
        setenv("CUDA_VISIBLE_DEVICES", strcmp(dev, "cpu") ? dev : "", 1);
        signal(SIGTERM, SIG_DFL);
        signal(SIGUSR1, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        execv(sp->exe, (char *const *)args);
        fprintf(stderr, "telepathy work: exec %s: %s\n", sp->exe, strerror(errno));
        _exit(127);
    }
    return p;
}

/* --gpus: a child per entry, each exec'ing this binary as a single worker; signals are
 * forwarded to them, and a worker killed by a signal nobody sent through us is replaced (twice
 * at most per slot) so its released item still gets run. */
static int spawn_workers(const work_args *a, const char *db, tp_cli_env *env) {
    const char *cmd = "work";
    spawn sp = {.a = a, .env = env};
    ssize_t n = readlink("/proc/self/exe", sp.exe, sizeof sp.exe - 1);
    if (n <= 0) return fprintf(stderr, "telepathy work: cannot find my own binary\n"), 1;
    sp.exe[n] = 0;
    if (!realpath(db, sp.db)) snprintf(sp.db, sizeof sp.db, "%s", db);
    snprintf(sp.rbuf, sizeof sp.rbuf, "%d", a->retries);
    snprintf(sp.hbuf, sizeof sp.hbuf, "%g", a->heartbeat);
    snprintf(sp.sbuf, sizeof sp.sbuf, "%g", a->stale);
    snprintf(sp.gbuf, sizeof sp.gbuf, "%g", a->grace);
    char *list = strdup(a->gpus);
    if (!list) return 1;
    enum { MAXW = 64 };
    char *dev[MAXW];
    int nw = 0;
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (nw == MAXW || (strcmp(t, "cpu") && strspn(t, "0123456789") != strlen(t))) {
            int r = tp_cli_usage_error(cmd,
                                       "--gpus: '%s': expected at most %d GPU indices or "
                                       "'cpu', comma-separated",
                                       t, MAXW);
            free(list);
            return r;
        }
        dev[nw++] = t;
    }
    if (nw == 0) {
        free(list);
        return tp_cli_usage_error(cmd, "--gpus: empty list");
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = parent_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    pid_t pids[MAXW] = {0};
    int respawns[MAXW] = {0}, codes[MAXW] = {0}, forwarded = 0, alive = 0;
    for (int i = 0; i < nw; i++)
        if ((pids[i] = start_worker(&sp, dev[i])) > 0)
            alive++;
        else
            codes[i] = 1;
    while (alive > 0) {
        int ws;
        pid_t p = waitpid(-1, &ws, 0);
        if (p < 0) {
            if (errno != EINTR) break;
            if (g_parent_sig && !forwarded) {
                for (int i = 0; i < nw; i++)
                    if (pids[i] > 0) kill(pids[i], g_parent_sig);
                forwarded = 1;
            }
            continue;
        }
        int slot = -1;
        for (int i = 0; i < nw; i++)
            if (pids[i] == p) slot = i;
        if (slot < 0) continue;
        alive--;
        pids[slot] = 0;
        codes[slot] = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
        if (WIFSIGNALED(ws) && !g_parent_sig && respawns[slot] < 2) {
            fprintf(stderr,
                    "telepathy work: worker %d (%s) was killed by signal %d; its claim returns to "
                    "pending; starting a new worker in its place\n",
                    slot, dev[slot], WTERMSIG(ws));
            respawns[slot]++;
            if ((pids[slot] = start_worker(&sp, dev[slot])) > 0) alive++;
        }
    }
    int rc = 0;
    for (int i = 0; i < nw; i++) {
        if (codes[i] == TP_WORKER_EXIT_PREEMPTED && rc == 0) rc = TP_WORKER_EXIT_PREEMPTED;
        if (codes[i] != 0 && codes[i] != TP_WORKER_EXIT_PREEMPTED) rc = 1;
        if (codes[i] != 0)
            fprintf(stderr, "telepathy work: worker %d (%s) exited with status %d\n", i, dev[i],
                    codes[i]);
    }
    if (g_parent_sig && rc == 0) rc = TP_WORKER_EXIT_PREEMPTED;
    free(list);
    return rc;
}

/* --one: the plan item becomes the only item of the shard's copy of the sweep. */
static tp_status seed_shard(const char *plan, int index, const char *shard, char *sweep, size_t cap,
                            tp_err *err) {
    tp_sweep psw, sw = {0};
    tp_sweep_item it;
    int n;
    TP_TRY(tp_slurm_read_plan_item(plan, index, &psw, &it, &n, err));
    tp_store *s = NULL;
    tp_status st = tp_store_open(&s, shard, TP_STORE_RW, err);
    if (st == TP_OK)
        st = tp_sweep_ensure(s, psw.name, psw.uid, psw.script_path, psw.script_sha256, &sw, err);
    int added;
    if (st == TP_OK)
        st = tp_sweep_plan_add(s, sw.id, it.config_hash, it.config_json, it.spec_json,
                               it.models_json, &added, err);
    if (st == TP_OK) snprintf(sweep, cap, "%s", psw.name);
    if (st != TP_OK) tp_err_prefix(err, "shard %s", shard);
    tp_store_close(s);
    tp_sweep_free(&sw);
    tp_sweep_free(&psw);
    tp_sweep_item_free(&it);
    return st;
}

/* A write that failed for lack of space reads "disk I/O error" when a file size limit, not
 * ENOSPC, stopped it: say what to do either way. */
static int fail_hint(const char *cmd, tp_err *err) {
    if (strstr(err->msg, "disk I/O error") || strstr(err->msg, "disk is full")) {
        char was[TP_ERR_MAX];
        snprintf(was, sizeof was, "%s", err->msg);
        tp_errf(err, err->code,
                "%.800s — the disk, quota or file size limit is full? Free space and run it "
                "again: the configuration's claim is taken back and nothing recorded is lost",
                was);
    }
    return tp_cli_fail(cmd, err);
}

int tp_cmd_work(int argc, char **argv, tp_cli_env *env) {
    const char *cmd = "work";
    if (tp_cli_wants_help(argc, argv)) {
        fputs(USAGE, stdout);
        return 0;
    }
    work_args a = {0};
    a.heartbeat = 10;
    a.stale = 120;
    a.sets = calloc((size_t)argc + 1, sizeof *a.sets);
    if (!a.sets) return 1;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        double d;
        if ((v = tp_cli_opt(argc, argv, &i, "--sweep", &missing)))
            a.sweep = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--db", &missing)))
            a.db = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--gpus", &missing)))
            a.gpus = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--worker", &missing)))
            a.worker = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--plan", &missing)))
            a.plan = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--shard", &missing)))
            a.shard = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--index", &missing)))
            a.index = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--set", &missing)))
            a.sets[a.nsets++] = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--retries", &missing))) {
            if ((rc = parse_num(cmd, "--retries", v, 0, &d))) goto out;
            a.retries = (int)d;
        } else if ((v = tp_cli_opt(argc, argv, &i, "--heartbeat", &missing))) {
            if ((rc = parse_num(cmd, "--heartbeat", v, 0.05, &a.heartbeat))) goto out;
        } else if ((v = tp_cli_opt(argc, argv, &i, "--grace", &missing))) {
            if ((rc = parse_num(cmd, "--grace", v, 0, &a.grace))) goto out;
        } else if ((v = tp_cli_opt(argc, argv, &i, "--stale", &missing))) {
            if ((rc = parse_num(cmd, "--stale", v, 0.1, &a.stale))) goto out;
        } else if (missing) {
            rc = tp_cli_usage_error(cmd, "option %s needs a value", argv[i]);
            goto out;
        } else if (!strcmp(argv[i], "--fail-fast"))
            a.fail_fast = 1;
        else if (!strcmp(argv[i], "--one"))
            a.one = 1;
        else {
            rc = tp_cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
            goto out;
        }
    }
    if (a.one) {
        if (!a.plan || !a.shard) {
            rc = tp_cli_usage_error(cmd, "--one needs --plan DIR/plan.json and --shard FILE.db");
            goto out;
        }
        if (a.gpus || a.sweep || a.db) {
            rc = tp_cli_usage_error(cmd, "--one runs one plan item into its shard; it takes no "
                                         "--gpus, --sweep or --db");
            goto out;
        }
        if (!a.index) a.index = getenv("SLURM_ARRAY_TASK_ID");
        if (!a.index) {
            rc = tp_cli_usage_error(cmd, "--one needs --index I (or $SLURM_ARRAY_TASK_ID)");
            goto out;
        }
    } else if (!a.sweep) {
        rc = tp_cli_usage_error(cmd, "missing --sweep NAME");
        goto out;
    } else if (a.plan || a.shard || a.index) {
        rc = tp_cli_usage_error(cmd, "--plan, --shard and --index go with --one");
        goto out;
    }
    /* before the shard is first written: SIGXFSZ must fail a write, not kill the task */
    if (!a.gpus) tp_worker_install_signals();
    tp_err err = {0};
    struct tp_config *c;
    if (tp_cli_config(env, &c, &err) != TP_OK) {
        rc = tp_cli_fail(cmd, &err);
        goto out;
    }
    for (int i = 0; i < a.nsets; i++)
        if (tp_config_set_arg(c, a.sets[i], &err) != TP_OK) {
            rc = tp_cli_usage_error(cmd, "--set %s: %s", a.sets[i], err.msg);
            goto out;
        }
    const char *db = a.shard;
    char sweep[TP_SWEEP_NAME_MAX];
    if (a.one) {
        char *end;
        long idx = strtol(a.index, &end, 10);
        if (end == a.index || *end || idx < 0 || idx > INT_MAX) {
            rc = tp_cli_usage_error(cmd, "--index '%s': expected a task index >= 0", a.index);
            goto out;
        }
        if (seed_shard(a.plan, (int)idx, a.shard, sweep, sizeof sweep, &err) != TP_OK) {
            rc = fail_hint(cmd, &err);
            goto out;
        }
        a.sweep = sweep;
    } else if (tp_cli_db_path(env, a.db, &db, &err) != TP_OK) {
        rc = tp_cli_fail(cmd, &err);
        goto out;
    }
    if (a.gpus) {
        rc = spawn_workers(&a, db, env);
        goto out;
    }
    struct tp_registry *reg;
    if (tp_cli_registry(env, &reg, &err) != TP_OK) {
        rc = tp_cli_fail(cmd, &err);
        goto out;
    }
    char label[64];
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
    if (!a.worker) {
        snprintf(label, sizeof label, "%s%s", cvd && *cvd ? "gpu " : "cpu", cvd ? cvd : "");
        a.worker = label;
    }
    tp_worker_opts o = {0};
    o.db_path = db;
    o.sweep = a.sweep;
    o.registry = reg;
    const char *data = tp_config_get(c, "paths.data");
    o.data_dir = data && *data ? data : NULL;
    o.worker = a.worker;
    o.max_items = a.one ? 1 : 0;
    o.retries = a.retries;
    o.fail_fast = a.fail_fast;
    o.heartbeat_s = a.heartbeat;
    o.grace_s = a.grace;
    o.stale_s = a.stale;
    o.exclusive = a.one;
    o.progress = 0;
    tp_worker_stats ws;
    tp_status st = tp_worker_run(&o, &ws, &err);
    fprintf(stderr,
            "telepathy work (%s, pid %d): %d done, %d already done, %d failed, %d retried%s%s\n",
            a.worker, (int)getpid(), ws.done, ws.skipped, ws.failed, ws.retried,
            ws.stopped ? "; the sweep is stopped (--fail-fast)" : "",
            ws.preempted ? "; stopped by a signal" : "");
    if (st != TP_OK)
        rc = fail_hint(cmd, &err);
    else if (ws.preempted)
        rc = TP_WORKER_EXIT_PREEMPTED;
    else
        rc = ws.failed || ws.stopped ? 1 : 0;
out:
    free(a.sets);
    return rc;
}
