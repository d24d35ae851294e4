/* test_run_bad_input.c — bad configurations and data fail with a clear error that is recorded on
 * the failed run, and the runner goes on with the next configuration: an unknown label in a data
 * row (file:line), an empty dataset, a sender layer beyond the sender's depth, M <= 0 soft tokens,
 * a receiver prompt longer than the receiver's max positions. */
#include <sys/stat.h>

#include "run_fixture.h"

static void write_file(const char *dir, const char *name, const char *text) {
    char p[900];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

typedef struct bad_case {
    const char *what;
    json_t *spec;
    const char *want;
} bad_case;

static const char dev[] = "sentence\tlabel\nfine film \t1\nawful film \t0\n";

static void test_bad_inputs(void) {
    fx f;
    TP_CHECK(fx_open(&f, "bad.db"));
    char bad_label[700], empty[700];
    snprintf(bad_label, sizeof bad_label, "%s/sst2_bad_label", tp_test_tmpdir());
    snprintf(empty, sizeof empty, "%s/sst2_empty", tp_test_tmpdir());
    write_file(bad_label, "train.tsv", "sentence\tlabel\na good movie \t1\na bad movie \t2\n");
    write_file(bad_label, "dev.tsv", dev);
    write_file(empty, "train.tsv", "");
    write_file(empty, "dev.tsv", dev);
    /* a primer of ~5000 words cannot fit the tiny receiver's 4096 positions */
    size_t plen = 5000 * 6 + 1;
    char *primer = malloc(plen);
    primer[0] = 0;
    for (int i = 0; i < 5000; i++) strcat(primer, "topic ");

    bad_case cases[5];
    int n = 0;
    json_t *s = fx_bridge_spec(2, 1);
    json_object_set_new(s, "task", json_string("sst2"));
    json_object_set_new(s, "task_options", json_pack("{s:s}", "dir", bad_label));
    cases[n++] = (bad_case){"unknown label", s, "train.tsv:3: label '2'"};
    s = fx_bridge_spec(2, 1);
    json_object_set_new(s, "task", json_string("sst2"));
    json_object_set_new(s, "task_options", json_pack("{s:s}", "dir", empty));
    cases[n++] = (bad_case){"empty dataset", s, "train.tsv: file is empty"};
    s = fx_bridge_spec(2, 1);
    json_object_set_new(s, "layer", json_integer(9));
    cases[n++] = (bad_case){"layer > N", s, "layer = 9: the sender"};
    s = fx_bridge_spec(2, 1);
    json_object_set_new(json_object_get(s, "bridge_options"), "tokens", json_integer(0));
    cases[n++] = (bad_case){"M <= 0", s, "tokens"};
    s = fx_bridge_spec(2, 1);
    json_object_set_new(s, "primer", json_string(primer));
    cases[n++] = (bad_case){"prompt too long", s, "max_position_embeddings 4096"};

    for (int i = 0; i < n; i++) {
        tp_run_result res;
        tp_err err = {0};
        tp_status st = tp_runner_run(f.runner, cases[i].spec, &res, &err);
        printf("%s: %s\n", cases[i].what, err.msg);
        TP_CHECKF(st != TP_OK, "%s: accepted", cases[i].what);
        TP_CHECKF(strstr(err.msg, cases[i].want), "%s: '%s' lacks '%s'", cases[i].what, err.msg,
                  cases[i].want);
        /* recorded on a failed run with the same message */
        sqlite3_stmt *q = NULL;
        int found = 0;
        sqlite3_prepare_v2(tp_store_db(f.store),
                           "SELECT error FROM runs WHERE status = 'failed' AND instr(error, ?) > 0",
                           -1, &q, NULL);
        sqlite3_bind_text(q, 1, cases[i].want, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW) found = 1;
        sqlite3_finalize(q);
        TP_CHECKF(found, "%s: no failed run records '%s'", cases[i].what, cases[i].want);
        json_decref(cases[i].spec);
    }
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM runs WHERE status = 'failed'") == n);
    /* ... and the next configuration runs */
    s = fx_bridge_spec(2, 1);
    tp_run_result res;
    tp_err err = {0};
    TP_CHECKF(tp_runner_run(f.runner, s, &res, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM runs WHERE status = 'done'") == 1);
    json_decref(s);
    free(primer);
    fx_close(&f);
}

TP_TEST_RUN(TP_CASE(test_bad_inputs))
