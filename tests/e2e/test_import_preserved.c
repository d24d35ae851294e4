/* test_import_preserved.c — `import-preserved` on ../shared/preserved (skipped without it): every
 * .json file is read (counted independently here), the published numbers come back through
 * tp_table_render (exp001 93.46 = 815/872, exp005 826/872, exp006 889/1000, exp007 10/500,
 * exp003 layer ablation), predictions and seeds are stored only where the files have them,
 * importing again adds nothing; and on a scratch copy-free folder: an unknown layout, a
 * contradictory accuracy and a lone config.json are errors naming the file. */
#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "run/import_preserved.h"
#include "run/table.h"
#include "tp_test.h"

static int count_json(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb) != 0) continue;
        size_t l = strlen(e->d_name);
        if (S_ISDIR(sb.st_mode))
            n += count_json(p);
        else if (l > 5 && !strcmp(e->d_name + l - 5, ".json"))
            n++;
    }
    closedir(d);
    return n;
}

static long long q1(tp_store *s, const char *sql) {
    sqlite3_stmt *q;
    long long v = -1;
    if (sqlite3_prepare_v2(tp_store_db(s), sql, -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

static char *table(tp_store *s, const char *exp, const char *rows, const char *cols) {
    tp_table_opts o = {0};
    o.rows = rows;
    o.cols = cols;
    o.experiment = exp;
    o.format = "csv";
    char *t = NULL;
    tp_err err = {0};
    TP_CHECKF(tp_table_render(s, &o, &t, &err) == TP_OK, "%s", err.msg);
    return t;
}

static void expect_in(const char *text, const char *want) {
    TP_CHECKF(text && strstr(text, want), "lacks '%s' in:\n%s", want, text ? text : "(null)");
}

static void test_import_shared(void) {
    const char *shared = tp_test_shared_dir("the study's preserved result files");
    if (!shared) return;
    char dir[1024], db[1024];
    snprintf(dir, sizeof dir, "%s/preserved", shared);
    snprintf(db, sizeof db, "%s/study.db", tp_test_tmpdir());
    tp_store *s;
    tp_err err = {0};
    TP_CHECK(tp_store_open(&s, db, TP_STORE_RW, &err) == TP_OK);
    tp_import_report rep;
    TP_CHECKF(tp_import_preserved(s, dir, &rep, &err) == TP_OK, "%s", err.msg);
    int want = count_json(dir);
    TP_CHECKF(rep.files == want && want >= 22, "read %d of %d json files", rep.files, want);
    TP_CHECK(rep.runs > 50 && rep.existing == 0 && rep.predictions > 100);
    TP_CHECK(q1(s, "SELECT COUNT(*) FROM runs WHERE origin <> 'study' OR status <> 'done'") == 0);
    /* every experiment folder became an experiment */
    TP_CHECK(q1(s, "SELECT COUNT(*) FROM experiments") == 8);

    char *t = table(s, "exp001_sst2_signal_check", "bridge", "task");
    expect_in(t, "perceiver,sst2,accuracy,0.934633,,1,?,872,,");
    free(t);
    TP_CHECK(q1(s, "SELECT COUNT(*) FROM results x JOIN runs r ON r.id = x.run_id JOIN "
                   "experiments e ON e.id = r.experiment_id WHERE e.name = "
                   "'exp001_sst2_signal_check' AND x.metric = 'accuracy' AND x.n = 872 AND "
                   "abs(x.value * 872 - 815) < 1e-9") == 1);
    t = table(s, "exp005_sst2_corrected_prompts", "bridge", NULL);
    expect_in(t, "perceiver,accuracy,accuracy,0.947248,,1,?,872,,");
    free(t);
    t = table(s, "exp006_agnews_corrected_prompts", "bridge", "task");
    expect_in(t, "perceiver,agnews,accuracy,0.889,,1,?,1000,,");
    expect_in(t, "receiver_direct,agnews,accuracy,0.705,,1,?,200,,");
    free(t);
    t = table(s, "exp007_gsm8k_latent_cot", "bridge", "bridge.options.tokens");
    expect_in(t, "latent_cot,32,accuracy,0.02,,1,?,500,,");
    free(t);
    /* the exp003 layer ablation by config path: l=0 66.5, 8 88.0, 16 92.0, 24 89.0, 31 94.5 */
    tp_table_opts o = {0};
    o.rows = "layer";
    o.experiment = "exp003_comprehensive_ablations";
    o.format = "md";
    TP_CHECK(tp_table_render(s, &o, &t, &err) == TP_OK);
    expect_in(t, "| 0 | 66.5 (n=1) |");
    expect_in(t, "| 31 | 94.5 (n=1) |");
    free(t);
    /* per-example predictions: 20 samples of exp001, none pretending to be all 872 */
    TP_CHECK(q1(s, "SELECT COUNT(*) FROM predictions p JOIN runs r ON r.id = p.run_id WHERE "
                   "r.source = 'exp001_sst2_signal_check/eval_sst2_results.json'") == 20);
    /* truncated texts get no example hash */
    TP_CHECK(q1(s, "SELECT COUNT(*) FROM predictions WHERE example_hash IS NULL") > 0);
    /* seeds only where named: LoRA seed_42/123/456, few-shot seeds */
    TP_CHECK(q1(s, "SELECT COUNT(*) FROM runs WHERE bridge = 'receiver_lora' AND seed IN (42, "
                   "123, 456)") == 3);
    TP_CHECK(q1(s, "SELECT COUNT(*) FROM runs WHERE source LIKE 'exp001%' AND seed IS NULL") == 1);
    /* latency of the batched benchmark: 5 + 5 + 3 rows */
    TP_CHECK(q1(s, "SELECT COUNT(*) FROM latency l JOIN runs r ON r.id = l.run_id WHERE "
                   "r.bridge = 'latency_benchmark'") == 13);

    tp_import_report rep2;
    TP_CHECK(tp_import_preserved(s, dir, &rep2, &err) == TP_OK);
    TP_CHECK(rep2.runs == 0 && rep2.existing == rep.runs && rep2.files == rep.files);
    tp_store_close(s);
}

static void write(const char *dir, const char *name, const char *text) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_bad_files(void) {
    char dir[1024], db[1024], sub[1100];
    snprintf(dir, sizeof dir, "%s/bad", tp_test_tmpdir());
    snprintf(sub, sizeof sub, "%s/exp1", dir);
    mkdir(dir, 0755);
    mkdir(sub, 0755);
    snprintf(db, sizeof db, "%s/bad.db", tp_test_tmpdir());
    tp_store *s;
    tp_err err = {0};
    TP_CHECK(tp_store_open(&s, db, TP_STORE_RW, &err) == TP_OK);
    tp_import_report rep;
    write(sub, "mystery.json", "{\"hello\": 1}");
    TP_CHECK(tp_import_preserved(s, dir, &rep, &err) == TP_EFORMAT);
    TP_CHECKF(strstr(err.msg, "exp1/mystery.json: no reader for this layout"), "%s", err.msg);
    char p[1200];
    snprintf(p, sizeof p, "%s/mystery.json", sub);
    remove(p);
    write(sub, "eval_sst2_results.json",
          "{\"checkpoint\": \"x\", \"accuracy\": 90.0, \"correct\": 8, \"total\": 10, "
          "\"samples\": []}");
    TP_CHECK(tp_import_preserved(s, dir, &rep, &err) == TP_EFORMAT);
    TP_CHECKF(strstr(err.msg, "accuracy 90% contradicts correct/total = 8/10"), "%s", err.msg);
    write(sub, "eval_sst2_results.json",
          "{\"checkpoint\": \"x\", \"accuracy\": 80.0, \"correct\": 8, \"total\": 10, "
          "\"samples\": [{\"idx\": 0, \"text\": \"t\", \"label\": \"a\"}]}");
    TP_CHECK(tp_import_preserved(s, dir, &rep, &err) == TP_EFORMAT);
    TP_CHECKF(strstr(err.msg, "sample 0: expected"), "%s", err.msg);
    snprintf(p, sizeof p, "%s/eval_sst2_results.json", sub);
    remove(p);
    write(sub, "config.json", "{\"soft_tokens\": 8}");
    TP_CHECK(tp_import_preserved(s, dir, &rep, &err) == TP_EFORMAT);
    TP_CHECKF(strstr(err.msg, "config.json without an eval"), "%s", err.msg);
    snprintf(p, sizeof p, "%s/nothing", tp_test_tmpdir());
    mkdir(p, 0755);
    TP_CHECK(tp_import_preserved(s, p, &rep, &err) == TP_EINVAL);
    TP_CHECK(strstr(err.msg, "no .json files") != NULL);
    tp_store_close(s);
}

TP_TEST_RUN(TP_CASE(test_import_shared), TP_CASE(test_bad_files))
