/* test_tasks_gen.c — the generation tasks gsm8k and passkey: GSM8K row counts and gold answers of
 * the real files (skipped when ../shared is absent), malformed JSON Lines as file:line errors,
 * the answer extractor on a table of tricky generations (negatives, decimals, thousands commas,
 * '$', several numbers, "The answer is" vs "####" vs last number), and passkey determinism,
 * code range, hiding and extraction. */
#include "test_tasks_common.h"

static void test_gsm8k_real(void) {
    const char *shared = tp_test_shared_dir("gsm8k real data");
    if (!shared) return;
    char data[4096];
    snprintf(data, sizeof data, "%s/data", shared);
    tfx f;
    tp_err err = {0};
    tp_status st = tfx_open(&f, "gsm8k", "", data, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        TP_CHECK(!strcmp(f.plugin->desc.version, "2"));
        const char *splits[2] = {"train", "eval"};
        const int64_t n[2] = {7473, 1319}, neg[2] = {3, 2};
        for (int s = 0; s < 2; s++) {
            tp_dataset ds;
            st = f.vt->load(f.state, splits[s], &ds, &err);
            TP_CHECKF(st == TP_OK, "%s", err.msg);
            if (st != TP_OK) continue;
            TP_CHECKF(ds.n == n[s], "%s rows %lld", splits[s], (long long)ds.n);
            int64_t negs = 0, commas = 0, bad = 0;
            for (int64_t i = 0; i < ds.n; i++) {
                negs += ds.rows[i].answer[0] == '-';
                commas += strchr(ds.rows[i].answer, ',') != NULL;
                bad += ds.rows[i].label != -1 || ds.rows[i].line != i + 1;
            }
            TP_CHECKF(negs == neg[s], "%s negative answers %lld", splits[s], (long long)negs);
            TP_CHECK(commas == 0 && bad == 0);
            if (s == 1) {
                TP_CHECK(!strcmp(ds.rows[0].answer, "18"));
                /* \u2019 decoded to UTF-8 */
                TP_CHECK(!strncmp(ds.rows[0].text, "Janet\xe2\x80\x99s ducks lay 16 eggs", 27));
                TP_CHECK(!strcmp(ds.rows[146].answer, "2125"));    /* #### 2,125 */
                TP_CHECK(!strcmp(ds.rows[611].answer, "1450000")); /* #### 1,450,000 */
                TP_CHECK(!strcmp(ds.rows[489].answer, "-10"));
            } else {
                TP_CHECK(!strncmp(ds.rows[0].text, "Natalia sold clips to 48", 24));
                TP_CHECK(!strcmp(ds.rows[5715].answer, "-7"));
            }
            f.vt->free_dataset(f.state, &ds);
        }
        tp_task_info info;
        TP_CHECK(f.vt->info(f.state, &info) == TP_OK);
        TP_CHECK(info.is_generation && info.n_labels == 0 &&
                 !strcmp(info.default_scoring, "generate"));
        TP_CHECK(
            !strcmp(info.sender_template, "Question: {text}\nLet me solve this step by step."));
        TP_CHECK(!strcmp(info.receiver_primer, "The answer is"));
    }
    tfx_close(&f);
    st = tfx_open(&f, "gsm8k", "answer=solution,max_train=3", data, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        tp_dataset ds;
        st = f.vt->load(f.state, "train", &ds, &err);
        TP_CHECKF(st == TP_OK, "%s", err.msg);
        if (st == TP_OK) {
            TP_CHECK(ds.n == 3 && strstr(ds.rows[0].answer, "<<48/2=24>>") &&
                     strstr(ds.rows[0].answer, "\n#### 72"));
            f.vt->free_dataset(f.state, &ds);
        }
    }
    tfx_close(&f);
    /* answer = question: the phase-10 auto-encoder target is the question itself */
    st = tfx_open(&f, "gsm8k", "answer=question,max_train=3", data, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        tp_dataset ds;
        st = f.vt->load(f.state, "train", &ds, &err);
        TP_CHECKF(st == TP_OK, "%s", err.msg);
        if (st == TP_OK) {
            TP_CHECK(ds.n == 3);
            for (int64_t i = 0; i < ds.n; i++)
                TP_CHECK(!strcmp(ds.rows[i].answer, ds.rows[i].text));
            f.vt->free_dataset(f.state, &ds);
        }
        /* ... for training only: evaluation rows keep the final answer as gold (version 2) */
        st = f.vt->load(f.state, "eval", &ds, &err);
        TP_CHECKF(st == TP_OK, "%s", err.msg);
        if (st == TP_OK) {
            TP_CHECK(ds.n == 1319 && !strcmp(ds.rows[0].answer, "18") &&
                     !strcmp(ds.rows[611].answer, "1450000"));
            f.vt->free_dataset(f.state, &ds);
        }
    }
    tfx_close(&f);
}

static void test_gsm8k_bad(void) {
    const char *good = "{\"question\": \"q?\", \"answer\": \"a\\n#### 4\"}\n";
    char b[1024];
    snprintf(b, sizeof b, "%s{\"question\": \"q?\"}\n", good);
    tfx_expect_bad("gsm8k", "gs_missing", NULL, "test.jsonl", b, "eval", "",
                   ":2:", "missing field 'answer'");
    snprintf(b, sizeof b, "%s%s{\"question\": \"q?\", \"answer\": 4}\n", good, good);
    tfx_expect_bad("gsm8k", "gs_type", NULL, "test.jsonl", b, "eval", "", ":3:", "not a string");
    snprintf(b, sizeof b, "%s{\"question\": \"q?\", \"answer\": \"no final line\"}\n", good);
    tfx_expect_bad("gsm8k", "gs_hash", NULL, "test.jsonl", b, "eval", "", ":2:", "####");
    snprintf(b, sizeof b, "{\"question\": \"q?\", \"answer\": \"#### four\"}\n");
    tfx_expect_bad("gsm8k", "gs_nan", NULL, "test.jsonl", b, "eval", "",
                   ":1:", "expected a number");
    snprintf(b, sizeof b, "{\"question\": \"q?\", \"answer\": \"#### 4\"}\r\n");
    tfx_expect_bad("gsm8k", "gs_crlf", NULL, "test.jsonl", b, "eval", "", ":1:", "CRLF");
    snprintf(b, sizeof b, "%s{\"question\": \"q\\x\", \"answer\": \"#### 4\"}\n", good);
    tfx_expect_bad("gsm8k", "gs_escape", NULL, "test.jsonl", b, "eval", "", ":2:", "escape");
    snprintf(b, sizeof b, "%s{\"question\": \"q?\", \"answer\": \"#### 4\", \"id\": \"7\"}\n",
             good);
    tfx_expect_bad("gsm8k", "gs_extra", NULL, "test.jsonl", b, "eval", "", ":2:", "unknown field");
    snprintf(b, sizeof b, "%s\n", good);
    tfx_expect_bad("gsm8k", "gs_blank", NULL, "train.jsonl", b, "train", "",
                   ":2:", "expected a JSON object");
    snprintf(b, sizeof b, "{\"question\": \"q?\", \"answer\": \"#### 4\"");
    tfx_expect_bad("gsm8k", "gs_unterminated", NULL, "test.jsonl", b, "eval", "",
                   ":1:", "unterminated");
    snprintf(b, sizeof b, "{\"question\": \"\\ud83d x\", \"answer\": \"#### 4\"}");
    tfx_expect_bad("gsm8k", "gs_surrogate", NULL, "test.jsonl", b, "eval", "", ":1:", "surrogate");
    tfx_expect_bad("gsm8k", "gs_empty", NULL, "test.jsonl", "", "eval", "", ": file is empty",
                   "JSON Lines");
}

static void test_gsm8k_extract(void) {
    tfx f;
    tp_err err = {0};
    char dir[4096];
    tfx_dir(dir, sizeof dir, "gs_extract");
    char opt[4200];
    snprintf(opt, sizeof opt, "dir=%s", dir);
    tp_status st = tfx_open(&f, "gsm8k", opt, NULL, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st != TP_OK || !f.vt->extract) {
        TP_CHECKF(0, "gsm8k has no extract");
        tfx_close(&f);
        return;
    }
    static const struct {
        const char *text, *want; /* want NULL = nothing found */
    } cases[] = {
        {"The answer is 42.", "42"},
        {"So 3 + 4 = 7. The answer is 7", "7"},
        {"the answer is: $1,080.", "1080"},
        {"The answer is -5 degrees, not 3.", "-5"},
        {"The answer is \xe2\x88\x92"
         "12",
         "-12"},
        {"The answer is 3.50 dollars", "3.5"},
        {"The answer is 18.00", "18"},
        {"The answer is 0.25", "0.25"},
        {"The answer is -0", "0"},
        {"First 5 then 6. The answer is 10. Check: 11", "10"},
        {"The answer is unclear. The answer is 9", "9"},
        {"She has 4 apples.\n#### 1,234", "1234"},
        {"#### -3\nbut then 8", "-3"},
        {"#### $5", "5"},
        {"Total: 12 + 30 = 42 apples", "42"},
        {"It costs $2,500 and then $300.75", "300.75"},
        {"between 3-4 hours", "4"},
        {"temperature fell to -7", "-7"},
        {"=-8", "-8"},
        {"(-2) is the value", "-2"},
        {"in 2021, 15 people", "15"},
        {"1,2,3", "3"},
        {"The end.", NULL},
        {"", NULL},
        {"numbers: 12,345,678 total", "12345678"},
        {"It is 5.", "5"},
        {"x=.5", "5"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[64] = "junk";
        int got = f.vt->extract(f.state, cases[i].text, out, sizeof out);
        if (cases[i].want)
            TP_CHECKF(got == 1 && !strcmp(out, cases[i].want),
                      "extract(\"%s\") = %d '%s', want '%s'", cases[i].text, got, out,
                      cases[i].want);
        else
            TP_CHECKF(got == 0 && out[0] == 0, "extract(\"%s\") = %d '%s', want none",
                      cases[i].text, got, out);
    }
    char small[3];
    TP_CHECK(f.vt->extract(f.state, "The answer is 12345", small, sizeof small) == 1 &&
             strlen(small) == 2);
    tfx_close(&f);
}

static void test_passkey(void) {
    tfx f, g;
    tp_err err = {0};
    tp_status st = tfx_open(&f, "passkey", "n_train=50,n_eval=40,filler=5", NULL, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    tp_status st2 = tfx_open(&g, "passkey", "n_train=50,n_eval=40,filler=5", NULL, &err);
    if (st != TP_OK || st2 != TP_OK) {
        tfx_close(&f);
        tfx_close(&g);
        return;
    }
    tp_dataset a, b, t;
    TP_CHECK(f.vt->load(f.state, "eval", &a, &err) == TP_OK);
    TP_CHECK(g.vt->load(g.state, "eval", &b, &err) == TP_OK);
    TP_CHECK(f.vt->load(f.state, "train", &t, &err) == TP_OK);
    TP_CHECK(a.n == 40 && b.n == 40 && t.n == 50);
    int same = 1, differ_train = 0, positions_vary = 0;
    const char *first_at = NULL;
    for (int64_t i = 0; i < a.n; i++) {
        same &=
            !strcmp(a.rows[i].text, b.rows[i].text) && !strcmp(a.rows[i].answer, b.rows[i].answer);
        differ_train |= strcmp(a.rows[i].answer, t.rows[i].answer) != 0;
        const char *ans = a.rows[i].answer;
        TP_CHECKF(strlen(ans) == 5 && ans[0] >= '1' && ans[0] <= '9', "code '%s'", ans);
        char needle[64];
        snprintf(needle, sizeof needle, "The pass key is %s. Remember it. %s is the pass key.", ans,
                 ans);
        const char *at = strstr(a.rows[i].text, needle);
        TP_CHECKF(at != NULL, "row %lld hides no key", (long long)i);
        if (i == 0) first_at = at ? at - a.rows[i].text + a.rows[i].text : NULL;
        if (i > 0 && at && first_at && (at - a.rows[i].text) != (first_at - a.rows[0].text))
            positions_vary = 1;
        TP_CHECK(a.rows[i].label == -1 && a.rows[i].id == i && a.rows[i].line == 0);
        /* 5 filler blocks */
        int blocks = 0;
        for (const char *p = a.rows[i].text; (p = strstr(p, "The grass is green.")); p++) blocks++;
        TP_CHECK(blocks == 5);
    }
    TP_CHECK(same && differ_train && positions_vary);
    TP_CHECK(strstr(a.source, "seed=1234") && strstr(a.source, "split=eval"));
    f.vt->free_dataset(f.state, &a);
    g.vt->free_dataset(g.state, &b);
    f.vt->free_dataset(f.state, &t);
    tp_task_info info;
    TP_CHECK(f.vt->info(f.state, &info) == TP_OK);
    TP_CHECK(info.is_generation && !strcmp(info.default_scoring, "generate") &&
             !strcmp(info.receiver_primer, "The pass key is") &&
             strstr(info.direct_template, "{text}"));
    char out[16];
    TP_CHECK(f.vt->extract(f.state, " 71432. Remember", out, sizeof out) == 1 &&
             !strcmp(out, "71432"));
    TP_CHECK(f.vt->extract(f.state, " 7 1 4 3 2", out, sizeof out) == 1 && !strcmp(out, "7"));
    TP_CHECK(f.vt->extract(f.state, " unknown", out, sizeof out) == 0 && out[0] == 0);
    tfx_close(&f);
    tfx_close(&g);
    /* another seed gives other codes */
    st = tfx_open(&f, "passkey", "n_eval=5,seed=7", NULL, &err);
    st2 = tfx_open(&g, "passkey", "n_eval=5", NULL, &err);
    if (st == TP_OK && st2 == TP_OK) {
        TP_CHECK(f.vt->load(f.state, "eval", &a, &err) == TP_OK);
        TP_CHECK(g.vt->load(g.state, "eval", &b, &err) == TP_OK);
        int diff = 0;
        for (int i = 0; i < 5; i++) diff += strcmp(a.rows[i].answer, b.rows[i].answer) != 0;
        TP_CHECK(diff >= 4);
        f.vt->free_dataset(f.state, &a);
        g.vt->free_dataset(g.state, &b);
    }
    tfx_close(&f);
    tfx_close(&g);
}

TP_TEST_RUN(TP_CASE(test_gsm8k_real), TP_CASE(test_gsm8k_bad), TP_CASE(test_gsm8k_extract),
            TP_CASE(test_passkey))
