/* slurm.c — plan.json, the sbatch array script and its submission (slurm.h). */
#include "run/slurm.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "run/sweep_sql.h"
#include "util/fsutil.h"
#include "util/strutil.h"

#define PLAN_FORMAT 1

tp_status tp_slurm_write_plan(tp_store *s, const tp_sweep *sw, const char *dir, int include_failed,
                              int *n, tp_err *err) {
    *n = 0;
    const char *sql = "SELECT seq, config_hash, config_json, spec_json, models_json FROM "
                      "sweep_items WHERE sweep_id = ?1 AND (status = 'pending' OR "
                      "(?2 AND status = 'failed')) ORDER BY seq";
    sqlite3_stmt *q;
    TP_TRY(tp_sw_prepare(s, sql, &q, err));
    sqlite3_bind_int64(q, 1, sw->id);
    sqlite3_bind_int(q, 2, include_failed ? 1 : 0);
    json_t *items = json_array();
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        json_t *it =
            json_pack("{s:I, s:s, s:s, s:s, s:s}", "seq", (json_int_t)sqlite3_column_int64(q, 0),
                      "config_hash", (const char *)sqlite3_column_text(q, 1), "config_json",
                      (const char *)sqlite3_column_text(q, 2), "spec_json",
                      (const char *)sqlite3_column_text(q, 3), "models_json",
                      (const char *)sqlite3_column_text(q, 4));
        if (!it || json_array_append_new(items, it) != 0) {
            rc = SQLITE_NOMEM;
            break;
        }
    }
    tp_status st = rc == SQLITE_DONE ? TP_OK : tp_sw_err(s, rc, sql, err);
    sqlite3_finalize(q);
    if (st == TP_OK && json_array_size(items) == 0) {
        json_decref(items);
        return TP_OK;
    }
    json_t *plan = NULL;
    if (st == TP_OK) {
        plan = json_pack("{s:i, s:s, s:{s:s, s:s, s:s?, s:s?}, s:s, s:o}", "format", PLAN_FORMAT,
                         "kind", "telepathy sweep plan", "sweep", "name", sw->name, "uid", sw->uid,
                         "script_path", sw->script_path, "script_sha256", sw->script_sha256,
                         "source_db", tp_store_path(s), "items", items);
        items = NULL;
        if (!plan) st = tp_errf(err, TP_ENOMEM, "submit: out of memory building plan.json");
    }
    json_decref(items);
    char path[4096];
    if (st == TP_OK) st = tp_mkdir_p(dir, err);
    if (st == TP_OK) st = tp_path_join(path, sizeof path, dir, "plan.json", err);
    char *text = st == TP_OK ? json_dumps(plan, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    if (st == TP_OK && !text) st = tp_errf(err, TP_ENOMEM, "submit: out of memory");
    if (st == TP_OK) st = tp_write_file_atomic(path, text, strlen(text), err);
    if (st == TP_OK) *n = (int)json_array_size(json_object_get(plan, "items"));
    free(text);
    json_decref(plan);
    return st;
}

/* 'text' for bash, with embedded single quotes escaped. */
static void sh_quote(char *out, size_t cap, const char *s) {
    size_t j = 0;
    if (cap < 3) {
        if (cap) out[0] = 0;
        return;
    }
    out[j++] = '\'';
    for (const char *p = s; *p && j + 6 < cap; p++) {
        if (*p == '\'') {
            memcpy(out + j, "'\\''", 4);
            j += 4;
        } else {
            out[j++] = *p;
        }
    }
    out[j++] = '\'';
    out[j] = 0;
}

static int has_newline(const char *s) {
    return s && strpbrk(s, "\r\n") != NULL;
}

tp_status tp_slurm_write_script(const tp_slurm_opts *o, const tp_sweep *sw, int n, char *path,
                                size_t cap, tp_err *err) {
    if (n < 1) return tp_errf(err, TP_EINVAL, "submit: nothing to submit (0 tasks)");
    const char *fields[] = {o->partition, o->time,    o->mem,    o->dir,
                            o->telepathy, o->workdir, o->config, o->plugin_path};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        if (has_newline(fields[i]))
            return tp_errf(err, TP_EINVAL, "submit: option value '%s' contains a newline",
                           fields[i]);
    TP_TRY(tp_path_join(path, cap, o->dir, "submit.sbatch", err));
    char logs[4096];
    TP_TRY(tp_path_join(logs, sizeof logs, o->dir, "logs", err));
    TP_TRY(tp_mkdir_p(logs, err));
    size_t bcap = 16384, len = 0;
    char *b = malloc(bcap);
    if (!b) return tp_errf(err, TP_ENOMEM, "submit: out of memory");
#define OUT(...)                                                                                   \
    do {                                                                                           \
        if (len < bcap) len += (size_t)snprintf(b + len, bcap - len, __VA_ARGS__);                 \
    } while (0)
    char q1[4200], q2[4200], q3[4200];
    OUT("#!/bin/bash\n");
    OUT("#SBATCH --job-name=tp-%s\n", sw->name);
    if (o->array_parallel > 0)
        OUT("#SBATCH --array=0-%d%%%d\n", n - 1, o->array_parallel);
    else
        OUT("#SBATCH --array=0-%d\n", n - 1);
    OUT("#SBATCH --ntasks=1\n");
    OUT("#SBATCH --output=%s/task_%%a.log\n", logs);
    OUT("#SBATCH --open-mode=append\n");
    OUT("#SBATCH --requeue\n");
    OUT("#SBATCH --signal=B:USR1@%d\n", o->signal_before_s > 0 ? o->signal_before_s : 120);
    if (o->partition) OUT("#SBATCH --partition=%s\n", o->partition);
    if (o->gpus_per_task > 0) OUT("#SBATCH --gpus-per-task=%d\n", o->gpus_per_task);
    if (o->cpus_per_task > 0) OUT("#SBATCH --cpus-per-task=%d\n", o->cpus_per_task);
    if (o->time) OUT("#SBATCH --time=%s\n", o->time);
    if (o->mem) OUT("#SBATCH --mem=%s\n", o->mem);
    for (int i = 0; o->extra && o->extra[i]; i++) {
        if (has_newline(o->extra[i])) {
            free(b);
            return tp_errf(err, TP_EINVAL, "submit: --sbatch-arg '%s' contains a newline",
                           o->extra[i]);
        }
        OUT("#SBATCH %s\n", o->extra[i]);
    }
    OUT("# written by `telepathy submit` for sweep %s (uid %s): %d configuration(s), one per "
        "task.\n# Each task writes only its own shard; fold them in with:\n"
        "#   telepathy merge %s/shard_*.db --into %s\n",
        sw->name, sw->uid, n, o->dir, "results.db");
    /* half the warning time before the limit, and at most a minute (SIGTERM on preemption is
     * followed by SIGKILL after the cluster's KillWait, often 30 s: a shorter wait is cut short,
     * which is safe) */
    int lead = o->signal_before_s > 0 ? o->signal_before_s : 120;
    int grace = lead / 2 < 60 ? lead / 2 : 60;
    sh_quote(q1, sizeof q1, o->workdir ? o->workdir : ".");
    OUT("cd %s || exit 1\n", q1);
    sh_quote(q1, sizeof q1, o->telepathy);
    OUT("exec %s", q1);
    if (o->config) {
        sh_quote(q2, sizeof q2, o->config);
        OUT(" --config %s", q2);
    }
    if (o->plugin_path) {
        sh_quote(q2, sizeof q2, o->plugin_path);
        OUT(" --plugin-path %s", q2);
    }
    char plan[4200], shard_prefix[4200];
    snprintf(plan, sizeof plan, "%s/plan.json", o->dir);
    snprintf(shard_prefix, sizeof shard_prefix, "%s/shard_", o->dir);
    sh_quote(q2, sizeof q2, plan);
    sh_quote(q3, sizeof q3, shard_prefix);
    OUT(" work --one --plan %s --index \"$SLURM_ARRAY_TASK_ID\" --shard "
        "%s\"$SLURM_ARRAY_TASK_ID\"'.db'"
        " --retries %d --grace %d --worker \"slurm "
        "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\n",
        q2, q3, o->retries, grace);
#undef OUT
    tp_status st = len >= bcap ? tp_errf(err, TP_ERANGE, "submit: the sbatch script is too long")
                               : tp_write_file_atomic(path, b, len, err);
    free(b);
    return st;
}

tp_status tp_slurm_submit(const char *sbatch, const char *script, char *job_id, size_t cap,
                          tp_err *err) {
    char qs[4200], qp[4200], cmd[8600];
    sh_quote(qs, sizeof qs, sbatch && *sbatch ? sbatch : "sbatch");
    sh_quote(qp, sizeof qp, script);
    snprintf(cmd, sizeof cmd, "%s --parsable %s 2>&1", qs, qp);
    FILE *p = popen(cmd, "r");
    if (!p) return tp_errf(err, TP_EIO, "submit: cannot run %s", cmd);
    char out[4096];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int ws = pclose(p);
    size_t l = strlen(out);
    while (l && (out[l - 1] == '\n' || out[l - 1] == '\r' || out[l - 1] == ' ')) out[--l] = 0;
    int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    if (code == 127)
        return tp_errf(err, TP_EIO,
                       "submit: sbatch ('%s') was not found: is Slurm installed here and on PATH? "
                       "(or pass --sbatch PATH); %s is written and can be submitted by hand",
                       sbatch && *sbatch ? sbatch : "sbatch", script);
    if (code != 0)
        return tp_errf(err, TP_EIO,
                       "submit: sbatch failed (exit status %d): %s — nothing was submitted and "
                       "the sweep's items stay pending; fix the options and submit again",
                       code, l ? out : "(no output)");
    /* --parsable: "jobid" or "jobid;cluster", possibly after warning lines */
    const char *line = strrchr(out, '\n');
    line = line ? line + 1 : out;
    size_t d = strspn(line, "0123456789");
    if (d == 0 || (line[d] && line[d] != ';'))
        return tp_errf(err, TP_EFORMAT,
                       "submit: sbatch answered '%s', not a job id (expected --parsable output)",
                       out);
    if (d >= cap) d = cap - 1;
    memcpy(job_id, line, d);
    job_id[d] = 0;
    return TP_OK;
}

static tp_status field_str(const json_t *o, const char *key, const char *file, const char *where,
                           int optional, const char **out, tp_err *err) {
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v && optional) return TP_OK;
    if (!json_is_string(v))
        return tp_errf(err, TP_EFORMAT, "%s: %s%s: expected a string", file, where, key);
    *out = json_string_value(v);
    return TP_OK;
}

tp_status tp_slurm_read_plan_item(const char *plan_path, int index, tp_sweep *sw, tp_sweep_item *it,
                                  int *n_items, tp_err *err) {
    memset(sw, 0, sizeof *sw);
    memset(it, 0, sizeof *it);
    json_error_t je;
    json_t *plan = json_load_file(plan_path, 0, &je);
    if (!plan)
        return tp_errf(err, TP_EFORMAT, "%s:%d: %s (expected the plan.json of `telepathy submit`)",
                       plan_path, je.line, je.text);
    tp_status st = TP_OK;
    json_t *fmt = json_object_get(plan, "format");
    json_t *swj = json_object_get(plan, "sweep");
    json_t *items = json_object_get(plan, "items");
    const char *name = NULL, *uid = NULL, *sp = NULL, *sha = NULL;
    if (!json_is_integer(fmt) || json_integer_value(fmt) != PLAN_FORMAT)
        st = tp_errf(err, TP_EFORMAT, "%s: format: expected %d (written by another telepathy?)",
                     plan_path, PLAN_FORMAT);
    else if (!json_is_object(swj))
        st = tp_errf(err, TP_EFORMAT, "%s: sweep: expected an object", plan_path);
    else if (!json_is_array(items))
        st = tp_errf(err, TP_EFORMAT, "%s: items: expected an array", plan_path);
    if (st == TP_OK) st = field_str(swj, "name", plan_path, "sweep.", 0, &name, err);
    if (st == TP_OK) st = field_str(swj, "uid", plan_path, "sweep.", 0, &uid, err);
    if (st == TP_OK) st = field_str(swj, "script_path", plan_path, "sweep.", 1, &sp, err);
    if (st == TP_OK) st = field_str(swj, "script_sha256", plan_path, "sweep.", 1, &sha, err);
    if (st == TP_OK) st = tp_sweep_name_check(name, err);
    if (st == TP_OK && (strlen(uid) == 0 || strlen(uid) >= sizeof sw->uid))
        st = tp_errf(err, TP_EFORMAT, "%s: sweep.uid: expected 1..32 characters", plan_path);
    if (st == TP_OK) {
        *n_items = (int)json_array_size(items);
        if (index < 0 || index >= *n_items)
            st = tp_errf(err, TP_ERANGE,
                         "%s: item index %d is out of range: the plan has %d "
                         "item(s) (0..%d)",
                         plan_path, index, *n_items, *n_items - 1);
    }
    json_t *x = st == TP_OK ? json_array_get(items, (size_t)index) : NULL;
    char where[64];
    snprintf(where, sizeof where, "items[%d].", index);
    const char *hash = NULL, *cj = NULL, *spec = NULL, *models = NULL;
    if (st == TP_OK && !json_is_object(x))
        st = tp_errf(err, TP_EFORMAT, "%s: items[%d]: expected an object", plan_path, index);
    if (st == TP_OK) st = field_str(x, "config_hash", plan_path, where, 0, &hash, err);
    if (st == TP_OK) st = field_str(x, "config_json", plan_path, where, 0, &cj, err);
    if (st == TP_OK) st = field_str(x, "spec_json", plan_path, where, 0, &spec, err);
    if (st == TP_OK) st = field_str(x, "models_json", plan_path, where, 0, &models, err);
    if (st == TP_OK && strlen(hash) != 64)
        st =
            tp_errf(err, TP_EFORMAT, "%s: %sconfig_hash: expected 64 hex digits", plan_path, where);
    if (st == TP_OK && !json_is_integer(json_object_get(x, "seq")))
        st = tp_errf(err, TP_EFORMAT, "%s: %sseq: expected an integer", plan_path, where);
    if (st == TP_OK) {
        tp_strlcpy(sw->name, name, sizeof sw->name);
        tp_strlcpy(sw->uid, uid, sizeof sw->uid);
        sw->script_path = sp ? tp_strdup(sp) : NULL;
        sw->script_sha256 = sha ? tp_strdup(sha) : NULL;
        it->seq = json_integer_value(json_object_get(x, "seq"));
        tp_strlcpy(it->config_hash, hash, sizeof it->config_hash);
        it->config_json = tp_strdup(cj);
        it->spec_json = tp_strdup(spec);
        it->models_json = tp_strdup(models);
        if (!it->config_json || !it->spec_json || !it->models_json)
            st = tp_errf(err, TP_ENOMEM, "%s: out of memory", plan_path);
    }
    json_decref(plan);
    if (st != TP_OK) {
        tp_sweep_free(sw);
        tp_sweep_item_free(it);
    }
    return st;
}
