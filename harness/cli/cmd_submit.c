/* cmd_submit.c — `telepathy submit --sweep NAME --slurm`: writes a submission directory (plan,
 * sbatch array script, logs) for the sweep's pending configurations and submits it with sbatch
 * (run/slurm.h). */
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_store.h"
#include "plugin/config.h"
#include "run/slurm.h"
#include "util/fsutil.h"
#include "util/strutil.h"

static const char *USAGE =
    "usage: telepathy submit --sweep NAME --slurm [--partition P] [--gpus-per-task N]\n"
    "                        [--time T] [--array-parallel K] [--cpus-per-task N] [--mem M]\n"
    "                        [--dir DIR] [--retries N] [--include-failed] [--sbatch-arg ARG]...\n"
    "                        [--sbatch PATH] [--dry-run] [--force] [--db PATH]\n"
    "\n"
    "Submits the sweep's pending configurations as one Slurm job array, one configuration per\n"
    "task. Task i runs `telepathy work --one` on item i of DIR/plan.json and writes only its own\n"
    "shard DIR/shard_i.db (many SQLite writers over NFS are unsafe). The array is requeue-able\n"
    "and gets SIGUSR1 before its time limit: the worker releases the configuration and the\n"
    "requeued task resumes it from its last checkpoint. When the array is done:\n"
    "    telepathy merge DIR/shard_*.db --into results.db\n"
    "  --partition P        Slurm partition (default: the cluster's default)\n"
    "  --gpus-per-task N    GPUs per task (default 1; 0 asks for none)\n"
    "  --time T             time limit per task (Slurm syntax, e.g. 2:00:00)\n"
    "  --array-parallel K   at most K tasks at once (--array=0-N%K)\n"
    "  --dir DIR            submission directory on a filesystem the nodes share (default:\n"
    "                       sweeps/NAME-<UTC time> next to results.db)\n"
    "  --include-failed     also submit the configurations that failed\n"
    "  --sbatch-arg ARG     one more #SBATCH line (repeatable), e.g. --sbatch-arg=--qos=low\n"
    "  --sbatch PATH        the sbatch program (default: sbatch on PATH)\n"
    "  --dry-run            write DIR but do not submit\n"
    "  --force              submit even while an earlier array of this sweep (found under\n"
    "                       sweeps/NAME-*/job_id next to results.db) is still in squeue\n"
    "\n"
    "exit status: 0 submitted (or nothing pending), 1 failed (sbatch's message shown; nothing is\n"
    "marked, the items stay pending), 2 usage error\n";

/* An earlier submission of this sweep (default directories next to the db) whose array Slurm
 * still knows: submitting again would run its configurations twice (merge would keep one, but
 * the GPU hours are gone). Returns 1 and names it in err; 0 when none or squeue is absent. */
static int still_queued(const char *db_dir, const char *sweep, tp_err *err) {
    char pat[PATH_MAX + 160];
    snprintf(pat, sizeof pat, "%s/sweeps/%s-*/job_id", db_dir, sweep);
    glob_t g;
    if (glob(pat, 0, NULL, &g) != 0) return 0;
    int busy = 0;
    for (size_t i = 0; i < g.gl_pathc && !busy; i++) {
        FILE *f = fopen(g.gl_pathv[i], "r");
        char job[64] = "";
        if (f) {
            if (!fgets(job, sizeof job, f)) job[0] = 0;
            fclose(f);
        }
        job[strspn(job, "0123456789")] = 0;
        if (!job[0]) continue;
        char cmd[160], line[64];
        snprintf(cmd, sizeof cmd, "squeue -h -j %s -o %%i 2>/dev/null", job);
        FILE *p = popen(cmd, "r");
        if (!p) continue;
        if (fgets(line, sizeof line, p)) {
            busy = 1;
            tp_errf(err, TP_ESTATE,
                    "sweep %s: job array %s (%s) is still queued or running; merge its shards "
                    "when it ends, or pass --force to submit the pending configurations again",
                    sweep, job, g.gl_pathv[i]);
        }
        pclose(p);
    }
    globfree(&g);
    return busy;
}

static int int_opt(const char *cmd, const char *opt, const char *v, int lo, int *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > INT_MAX)
        return tp_cli_usage_error(cmd, "%s '%s': expected an integer >= %d", opt, v, lo);
    *out = (int)x;
    return 0;
}

int tp_cmd_submit(int argc, char **argv, tp_cli_env *env) {
    const char *cmd = "submit";
    if (tp_cli_wants_help(argc, argv)) {
        fputs(USAGE, stdout);
        return 0;
    }
    tp_slurm_opts o = {0};
    o.gpus_per_task = 1;
    const char *sweep = NULL, *db = NULL, *dir = NULL, *sbatch = NULL;
    int slurm = 0, dry = 0, include_failed = 0, force = 0, rc = 0, nextra = 0;
    const char **extra = calloc((size_t)argc + 1, sizeof *extra);
    tp_store *s = NULL;
    tp_sweep sw = {0};
    if (!extra) return 1;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if ((v = tp_cli_opt(argc, argv, &i, "--sweep", &missing)))
            sweep = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--db", &missing)))
            db = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--dir", &missing)))
            dir = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--partition", &missing)))
            o.partition = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--time", &missing)))
            o.time = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--mem", &missing)))
            o.mem = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--sbatch-arg", &missing)))
            extra[nextra++] = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--sbatch", &missing)))
            sbatch = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--gpus-per-task", &missing))) {
            if ((rc = int_opt(cmd, "--gpus-per-task", v, 0, &o.gpus_per_task))) goto out;
        } else if ((v = tp_cli_opt(argc, argv, &i, "--cpus-per-task", &missing))) {
            if ((rc = int_opt(cmd, "--cpus-per-task", v, 1, &o.cpus_per_task))) goto out;
        } else if ((v = tp_cli_opt(argc, argv, &i, "--array-parallel", &missing))) {
            if ((rc = int_opt(cmd, "--array-parallel", v, 1, &o.array_parallel))) goto out;
        } else if ((v = tp_cli_opt(argc, argv, &i, "--retries", &missing))) {
            if ((rc = int_opt(cmd, "--retries", v, 0, &o.retries))) goto out;
        } else if (missing) {
            rc = tp_cli_usage_error(cmd, "option %s needs a value", argv[i]);
            goto out;
        } else if (!strcmp(argv[i], "--slurm"))
            slurm = 1;
        else if (!strcmp(argv[i], "--dry-run"))
            dry = 1;
        else if (!strcmp(argv[i], "--include-failed"))
            include_failed = 1;
        else if (!strcmp(argv[i], "--force"))
            force = 1;
        else {
            rc = tp_cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
            goto out;
        }
    }
    if (!sweep) {
        rc = tp_cli_usage_error(cmd, "missing --sweep NAME");
        goto out;
    }
    if (!slurm) {
        rc = tp_cli_usage_error(cmd, "say where to submit: --slurm (the only scheduler supported; "
                                     "on one host use `telepathy work --gpus ...`)");
        goto out;
    }
    tp_err err = {0};
    const char *path;
    if (tp_cli_db_path(env, db, &path, &err) != TP_OK ||
        tp_store_open(&s, path, TP_STORE_RW, &err) != TP_OK ||
        tp_sweep_get(s, sweep, &sw, &err) != TP_OK) {
        rc = tp_cli_fail(cmd, &err);
        goto out;
    }
    char dbuf[PATH_MAX], abs_dir[PATH_MAX], exe[PATH_MAX], cwd[PATH_MAX], cfg[PATH_MAX];
    char tmp[PATH_MAX];
    tp_strlcpy(tmp, path, sizeof tmp);
    char *slash = strrchr(tmp, '/');
    if (slash)
        *slash = 0;
    else
        strcpy(tmp, ".");
    if (!force && !dry && still_queued(tmp, sweep, &err)) {
        rc = tp_cli_fail(cmd, &err);
        goto out;
    }
    if (!dir) {
        char stamp[32];
        time_t t = time(NULL);
        struct tm tmv;
        strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", gmtime_r(&t, &tmv));
        snprintf(dbuf, sizeof dbuf, "%s/sweeps/%s-%s", tmp, sweep, stamp);
        /* two submissions within a second get their own directories */
        for (int k = 2; tp_dir_exists(dbuf) && k < 1000; k++)
            snprintf(dbuf, sizeof dbuf, "%s/sweeps/%s-%s-%d", tmp, sweep, stamp, k);
        dir = dbuf;
    }
    if (tp_mkdir_p(dir, &err) != TP_OK || !realpath(dir, abs_dir)) {
        if (!err.msg[0]) tp_errf(&err, TP_EIO, "%s: cannot resolve the directory", dir);
        rc = tp_cli_fail(cmd, &err);
        goto out;
    }
    int n = 0;
    if (tp_slurm_write_plan(s, &sw, abs_dir, include_failed, &n, &err) != TP_OK) {
        rc = tp_cli_fail(cmd, &err);
        goto out;
    }
    if (n == 0) {
        printf("sweep %s: nothing pending%s; nothing submitted\n", sweep,
               include_failed ? " or failed" : " (--include-failed resubmits failures)");
        rmdir(abs_dir);
        goto out;
    }
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (el <= 0 || !getcwd(cwd, sizeof cwd)) {
        tp_errf(&err, TP_EIO, "cannot find my own binary or the working directory");
        rc = tp_cli_fail(cmd, &err);
        goto out;
    }
    exe[el] = 0;
    o.dir = abs_dir;
    o.telepathy = exe;
    o.workdir = cwd;
    const char *cpath = env->config_path ? env->config_path : getenv("TELEPATHY_CONFIG");
    if (cpath && realpath(cpath, cfg)) o.config = cfg;
    /* the tasks must find the plugins this host found, whatever their environment */
    struct tp_config *c;
    if (tp_cli_config(env, &c, &err) == TP_OK) {
        const char *pp = tp_config_get(c, "paths.plugins");
        if (pp && *pp) o.plugin_path = pp;
    }
    extra[nextra] = NULL;
    o.extra = extra;
    char script[PATH_MAX + 32];
    if (tp_slurm_write_script(&o, &sw, n, script, sizeof script, &err) != TP_OK) {
        rc = tp_cli_fail(cmd, &err);
        goto out;
    }
    if (dry) {
        printf("sweep %s: %d configuration(s); wrote %s (not submitted: --dry-run)\n", sweep, n,
               script);
        goto out;
    }
    char job[64];
    if (tp_slurm_submit(sbatch, script, job, sizeof job, &err) != TP_OK) {
        rc = tp_cli_fail(cmd, &err);
        goto out;
    }
    char jf[PATH_MAX + 16], line[80];
    snprintf(jf, sizeof jf, "%s/job_id", abs_dir);
    snprintf(line, sizeof line, "%s\n", job);
    if (tp_write_file_atomic(jf, line, strlen(line), &err) != TP_OK)
        fprintf(stderr, "telepathy submit: warning: %s\n", err.msg);
    printf("sweep %s: submitted %d configuration(s) as Slurm job array %s (%s)\n", sweep, n, job,
           abs_dir);
    printf("when it is done: telepathy merge %s/shard_*.db --into %s\n", abs_dir, path);
out:
    tp_sweep_free(&sw);
    tp_store_close(s);
    free(extra);
    return rc;
}
