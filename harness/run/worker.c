/* worker.c — the sweep worker loop of worker.h: claim, run through the runner, finish; the
 * heartbeat thread that keeps the claim fresh; and the stop signals that release it. */
#include "run/worker.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "run/run.h"
#include "run/sweep_sql.h"
#include "util/log.h"
#include "util/strutil.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    g_stop = sig;
}

void tp_worker_install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* a file size limit (or a full quota) then fails the write with a message naming the db,
     * instead of killing the worker silently */
    signal(SIGXFSZ, SIG_IGN);
}

int tp_worker_stop_requested(void) {
    return g_stop != 0;
}

void tp_worker_request_stop(int sig) {
    g_stop = sig ? sig : SIGTERM;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- heartbeat thread ------------------------------------------------------------------------ */

typedef struct hb_state {
    pthread_mutex_t mu; /* held while an item's claim changes hands (finish vs release) */
    tp_store *s;        /* the thread's own connection */
    double period;
    double grace;
    int64_t item_id; /* 0 = idle */
    char hash[65];
    int quit;
} hb_state;

/* Checkpoints this process has recorded for the item's running run; -1 when it is not running
 * here (finished meanwhile, or not begun yet). */
static int64_t my_checkpoints(hb_state *h) {
    const char *sql = "SELECT r.status = 'running' AND r.host = ?2 AND r.pid = ?3, (SELECT "
                      "count(*) FROM artifacts a WHERE a.run_id = r.id AND a.kind = "
                      "'checkpoint') FROM runs r WHERE r.config_hash = ?1";
    sqlite3_stmt *q;
    tp_err err = {0};
    int64_t n = -1;
    if (tp_sw_prepare(h->s, sql, &q, &err) != TP_OK) return -1;
    sqlite3_bind_text(q, 1, h->hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, tp_sw_host(), -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 3, (int)getpid());
    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0)) n = sqlite3_column_int64(q, 1);
    sqlite3_finalize(q);
    return n;
}

/* The training goes on meanwhile: its next periodic checkpoint, if it comes within the grace
 * period, is what the requeued task resumes from. */
static void wait_for_checkpoint(hb_state *h) {
    if (h->grace <= 0) return;
    int64_t before = my_checkpoints(h);
    if (before < 0) return;
    double t0 = now_s();
    while (now_s() - t0 < h->grace) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        int64_t n = my_checkpoints(h);
        if (n != before) {
            if (n > before)
                fprintf(stderr, "telepathy work: checkpoint written %.1f s after the signal\n",
                        now_s() - t0);
            return;
        }
    }
    fprintf(stderr,
            "telepathy work: no new checkpoint within the %.0f s grace period; the run "
            "resumes from its previous one\n",
            h->grace);
}

/* The run this process is running for the item is `interrupted` (its checkpoints stay
 * recorded, so the next attempt resumes) and the claim goes back to pending. Then the process
 * ends: the main thread may be deep inside a training step. */
static void preempt(hb_state *h) {
    wait_for_checkpoint(h);
    int sig = (int)g_stop;
    char why[256];
    snprintf(why, sizeof why, "signal %d (%s) to worker pid %d on %s: released for a requeued task",
             sig,
             sig == SIGUSR1  ? "SIGUSR1"
             : sig == SIGINT ? "SIGINT"
                             : "SIGTERM",
             (int)getpid(), tp_sw_host());
    const char *sql = "UPDATE runs SET status = 'interrupted', error = ?4, "
                      "ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                      "WHERE config_hash = ?1 AND status = 'running' AND host = ?2 AND pid = ?3";
    sqlite3_stmt *q;
    tp_err err = {0};
    if (tp_sw_prepare(h->s, sql, &q, &err) == TP_OK) {
        sqlite3_bind_text(q, 1, h->hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, tp_sw_host(), -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 3, (int)getpid());
        sqlite3_bind_text(q, 4, why, -1, SQLITE_STATIC);
        if (tp_sw_done(h->s, q, sql, &err) != TP_OK)
            fprintf(stderr, "telepathy work: marking the run interrupted: %s\n", err.msg);
        sqlite3_finalize(q);
    } else {
        fprintf(stderr, "telepathy work: %s\n", err.msg);
    }
    if (tp_sweep_release(h->s, h->item_id, why, &err) != TP_OK)
        fprintf(stderr,
                "telepathy work: releasing the claim: %s (it returns to pending once "
                "its heartbeat goes stale)\n",
                err.msg);
    else
        fprintf(stderr,
                "telepathy work: %s; item %lld is pending again and its run resumes from its "
                "last checkpoint\n",
                why, (long long)h->item_id);
    fflush(stderr);
    _exit(TP_WORKER_EXIT_PREEMPTED);
}

static void *hb_main(void *arg) {
    hb_state *h = arg;
    double last = now_s();
    for (;;) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&h->mu);
        if (h->quit) {
            pthread_mutex_unlock(&h->mu);
            return NULL;
        }
        if (g_stop && h->item_id) preempt(h); /* does not return */
        if (h->item_id && now_s() - last >= h->period) {
            tp_err err = {0};
            if (tp_sweep_heartbeat(h->s, h->item_id, &err) != TP_OK)
                tp_log(TP_LOG_WARN, "sweep", "sweep heartbeat: %s", err.msg);
            last = now_s();
        }
        pthread_mutex_unlock(&h->mu);
    }
}

/* ---- one item ------------------------------------------------------------------------------- */

/* Loads the models the item names (cached by the runner across items) and checks that the spec
 * still resolves to the planned configuration. */
static tp_status prepare(tp_runner *r, const tp_sweep_item *it, json_t **spec, tp_err *err) {
    json_error_t je;
    json_t *models = json_loads(it->models_json, 0, &je);
    if (!json_is_object(models)) {
        json_decref(models);
        return tp_errf(err, TP_EFORMAT, "sweep item %lld: models_json: expected an object (%s)",
                       (long long)it->id, je.text);
    }
    const char *alias;
    json_t *path;
    tp_status st = TP_OK;
    json_object_foreach(models, alias, path) {
        const tp_run_model *m;
        if (!json_is_string(path))
            st = tp_errf(err, TP_EFORMAT, "sweep item %lld: models_json.%s: expected a path",
                         (long long)it->id, alias);
        else
            st = tp_runner_add_model(r, json_string_value(path), alias, &m, err);
        if (st != TP_OK) break;
    }
    json_decref(models);
    TP_TRY(st);
    *spec = json_loads(it->spec_json, 0, &je);
    if (!json_is_object(*spec)) {
        json_decref(*spec);
        *spec = NULL;
        return tp_errf(err, TP_EFORMAT, "sweep item %lld: spec_json line %d: %s", (long long)it->id,
                       je.line, je.text);
    }
    char *canon = NULL, hash[65];
    st = tp_runner_resolve(r, *spec, &canon, hash, err);
    free(canon);
    if (st == TP_OK && strcmp(hash, it->config_hash) != 0)
        st = tp_errf(err, TP_ESTATE,
                     "sweep item %lld: its spec now resolves to config %.12s, not the planned "
                     "%.12s: the code, a plugin version or a model file changed since `telepathy "
                     "plan`; plan the sweep again (under a new name) to run the new configuration",
                     (long long)it->id, hash, it->config_hash);
    if (st != TP_OK) {
        json_decref(*spec);
        *spec = NULL;
    }
    return st;
}

typedef struct wctx {
    const tp_worker_opts *o;
    tp_store *s;
    tp_runner *r;
    hb_state *hb;
    tp_sweep sw;
    tp_worker_stats *stats;
} wctx;

static tp_status run_item(wctx *w, tp_sweep_item *it, tp_err *err) {
    const tp_worker_opts *o = w->o;
    pthread_mutex_lock(&w->hb->mu);
    w->hb->item_id = it->id;
    tp_strlcpy(w->hb->hash, it->config_hash, sizeof w->hb->hash);
    pthread_mutex_unlock(&w->hb->mu);

    tp_log(TP_LOG_INFO, "sweep", "sweep %s: item %lld (seq %lld, config %.12s, attempt %d)",
           w->sw.name, (long long)it->id, (long long)it->seq, it->config_hash, it->attempts);
    double t0 = now_s();
    tp_err rerr = {0};
    json_t *spec = NULL;
    tp_status rs = prepare(w->r, it, &spec, &rerr);
    const char *cls = NULL;
    tp_run_result *res = calloc(1, sizeof *res);
    if (rs == TP_OK && !res) rs = tp_errf(&rerr, TP_ENOMEM, "worker: out of memory");
    if (rs != TP_OK) cls = rs == TP_ESTATE ? "config_drift" : tp_sweep_error_class(rs);
    if (rs == TP_OK) {
        char tb[256];
        snprintf(tb, sizeof tb, "sweep %s item %lld (seq %lld), worker %s pid %d on %s", w->sw.name,
                 (long long)it->id, (long long)it->seq, o->worker ? o->worker : "-", (int)getpid(),
                 tp_sw_host());
        tp_runner_set_traceback(w->r, tb);
        rs = tp_runner_run(w->r, spec, res, &rerr);
        tp_runner_set_traceback(w->r, NULL);
        if (rs != TP_OK) cls = tp_sweep_error_class(rs);
    }
    json_decref(spec);
    tp_sweep_outcome out = {0};
    out.ok = rs == TP_OK;
    out.seconds = now_s() - t0;
    out.run_id = rs == TP_OK ? res->run_id : 0;
    if (rs != TP_OK) {
        tp_err e2 = {0};
        int64_t rid = 0;
        if (tp_store_run_find(w->s, it->config_hash, &rid, NULL, NULL, &e2) == TP_OK)
            out.run_id = rid;
        out.error = rerr.msg;
        out.error_class = cls;
        out.retry = it->attempts <= o->retries;
    }
    if (rs == TP_OK && !strcmp(res->status, "skipped")) out.seconds = NAN;
    pthread_mutex_lock(&w->hb->mu);
    w->hb->item_id = 0;
    tp_status st = tp_sweep_finish(w->s, it->id, &out, err);
    pthread_mutex_unlock(&w->hb->mu);
    if (st == TP_ESTATE) { /* taken over after a stale claim: the new owner records it */
        tp_log(TP_LOG_WARN, "sweep", "%s", err->msg);
        st = TP_OK;
    }
    if (rs == TP_OK) {
        if (!strcmp(res->status, "skipped"))
            w->stats->skipped++;
        else
            w->stats->done++;
        tp_log(TP_LOG_INFO, "sweep", "sweep %s: item %lld %s (run %lld, %.1f s)", w->sw.name,
               (long long)it->id, res->status, (long long)res->run_id, now_s() - t0);
    } else if (out.retry) {
        w->stats->retried++;
        tp_log(TP_LOG_WARN, "sweep",
               "sweep %s: item %lld failed (%s), attempt %d of %d; retrying: %s", w->sw.name,
               (long long)it->id, cls, it->attempts, o->retries + 1, rerr.msg);
    } else {
        w->stats->failed++;
        tp_log(TP_LOG_ERROR, "sweep", "sweep %s: item %lld (config %.12s) failed [%s]: %s",
               w->sw.name, (long long)it->id, it->config_hash, cls, rerr.msg);
        if (o->fail_fast && st == TP_OK) {
            char reason[TP_ERR_MAX + 128];
            snprintf(reason, sizeof reason, "--fail-fast: item %lld (seq %lld) failed: %s",
                     (long long)it->id, (long long)it->seq, rerr.msg);
            st = tp_sweep_stop(w->s, w->sw.id, reason, err);
            w->stats->stopped = 1;
        }
    }
    free(res);
    return st;
}

static tp_status experiment_of(tp_store *s, const tp_sweep *sw, int64_t *id, tp_err *err) {
    *id = 0;
    if (!sw->script_path || !sw->script_sha256) return TP_OK;
    const char *base = strrchr(sw->script_path, '/');
    base = base ? base + 1 : sw->script_path;
    char name[256];
    tp_strlcpy(name, base, sizeof name);
    if (tp_str_ends_with(name, ".lua")) name[strlen(name) - 4] = 0;
    return tp_store_experiment_ensure(s, name, sw->script_path, sw->script_sha256, id, err);
}

/* An exclusive db (a Slurm task's shard) has no other writer: a `running` run in it was left by
 * an earlier attempt of this task, maybe on another node, so the runner may resume it. */
static tp_status interrupt_leftovers(tp_store *s, tp_err *err) {
    const char *sql = "UPDATE runs SET status = 'interrupted', "
                      "ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), "
                      "error = printf('pid %d on %s ended without finishing the run (preempted "
                      "or killed)', pid, host) WHERE status = 'running' AND NOT (host = ?1 AND "
                      "pid = ?2)";
    TP_TRY(tp_sw_begin(s, err));
    sqlite3_stmt *q;
    tp_status st = tp_sw_prepare(s, sql, &q, err);
    if (st == TP_OK) {
        sqlite3_bind_text(q, 1, tp_sw_host(), -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 2, (int)getpid());
        st = tp_sw_done(s, q, sql, err);
        sqlite3_finalize(q);
    }
    if (st == TP_OK) return tp_sw_commit(s, err);
    tp_sw_rollback(s);
    return st;
}

tp_status tp_worker_run(const tp_worker_opts *o, tp_worker_stats *stats, tp_err *err) {
    memset(stats, 0, sizeof *stats);
    wctx w = {0};
    w.o = o;
    w.stats = stats;
    hb_state hb = {0};
    pthread_mutex_init(&hb.mu, NULL);
    hb.period = o->heartbeat_s > 0 ? o->heartbeat_s : 10;
    hb.grace = o->grace_s;
    w.hb = &hb;
    pthread_t th;
    int have_thread = 0;
    tp_status st = tp_store_open(&w.s, o->db_path, TP_STORE_RW, err);
    if (st == TP_OK && o->exclusive) st = interrupt_leftovers(w.s, err);
    if (st == TP_OK) st = tp_sweep_get(w.s, o->sweep, &w.sw, err);
    tp_runner_opts ro = {0};
    char commit[128] = "";
    int dirty = -1;
    if (st == TP_OK) {
        ro.registry = o->registry;
        ro.store = w.s;
        ro.data_dir = o->data_dir;
        ro.progress = o->progress;
        if (tp_source_git_info(commit, sizeof commit, &dirty)) ro.git_commit = commit;
        ro.git_dirty = ro.git_commit ? dirty : -1;
        st = experiment_of(w.s, &w.sw, &ro.experiment_id, err);
    }
    if (st == TP_OK) st = tp_runner_new(&w.r, &ro, err);
    if (st == TP_OK) st = tp_store_open(&hb.s, o->db_path, TP_STORE_RW, err);
    if (st == TP_OK) {
        if (pthread_create(&th, NULL, hb_main, &hb) != 0)
            st = tp_errf(err, TP_ENOMEM, "worker: cannot start the heartbeat thread");
        else
            have_thread = 1;
    }
    int ran = 0;
    while (st == TP_OK) {
        if (g_stop) {
            stats->preempted = 1;
            break;
        }
        if (o->max_items > 0 && ran >= o->max_items) break;
        tp_sweep_claim_opts co = {o->worker, o->stale_s, o->exclusive};
        tp_sweep_item it;
        int got = 0, stopped = 0, requeued = 0;
        st = tp_sweep_claim(w.s, w.sw.id, &co, &it, &got, &stopped, &requeued, err);
        if (st != TP_OK) break;
        stats->requeued += requeued;
        if (requeued)
            tp_log(TP_LOG_WARN, "sweep", "sweep %s: %d stale claim(s) returned to pending",
                   w.sw.name, requeued);
        if (stopped) {
            stats->stopped = 1;
            break;
        }
        if (!got) break;
        ran++;
        st = run_item(&w, &it, err);
        tp_sweep_item_free(&it);
        if (stats->stopped) break;
    }
    if (have_thread) {
        pthread_mutex_lock(&hb.mu);
        hb.quit = 1;
        pthread_mutex_unlock(&hb.mu);
        pthread_join(th, NULL);
    }
    tp_store_close(hb.s);
    pthread_mutex_destroy(&hb.mu);
    tp_runner_free(w.r);
    tp_sweep_free(&w.sw);
    tp_store_close(w.s);
    return st;
}
