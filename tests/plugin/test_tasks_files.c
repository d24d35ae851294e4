/* test_tasks_files.c — the file-backed classification tasks agnews, trec and banking77: row
 * counts, label distributions and known rows of the real files in ../shared/data (skipped with a
 * message when absent), task data (labels, templates, scoring), and every malformed input —
 * bad label, missing column, bad quoting, wrong line endings, empty files — failing with
 * TP_EFORMAT and a message naming file:line. */
#include "test_tasks_common.h"

static int shared_data(char *data, size_t cap, const char *what) {
    const char *shared = tp_test_shared_dir(what);
    if (!shared) return 0;
    snprintf(data, cap, "%s/data", shared);
    return 1;
}

/* Loads split of task (opened with opts on data) and checks n and the class counts. */
static void check_split(const char *task, const char *opts, const char *data, const char *split,
                        int64_t n, int C, const int64_t *want, tp_dataset *keep, tfx *fk) {
    tfx f;
    tp_err err = {0};
    tp_status st = tfx_open(&f, task, opts, data, &err);
    TP_CHECKF(st == TP_OK, "%s: %s", task, err.msg);
    if (st != TP_OK) {
        tfx_close(&f);
        return;
    }
    TP_CHECK(!strcmp(f.plugin->desc.version, "1"));
    tp_dataset ds;
    st = f.vt->load(f.state, split, &ds, &err);
    TP_CHECKF(st == TP_OK, "%s %s: %s", task, split, err.msg);
    if (st == TP_OK) {
        TP_CHECKF(ds.n == n, "%s %s: %lld rows, expected %lld", task, split, (long long)ds.n,
                  (long long)n);
        int64_t cnt[TP_MAX_LABELS];
        tfx_counts(&ds, C, cnt);
        for (int c = 0; c < C && want; c++)
            TP_CHECKF(cnt[c] == want[c], "%s %s: class %d has %lld rows, expected %lld", task,
                      split, c, (long long)cnt[c], (long long)want[c]);
        for (int64_t i = 0; i < ds.n; i++)
            if (ds.rows[i].id != i || ds.rows[i].label < 0 || ds.rows[i].label >= C) {
                TP_CHECKF(0, "%s %s row %lld: id %lld label %d", task, split, (long long)i,
                          (long long)ds.rows[i].id, ds.rows[i].label);
                break;
            }
        if (keep) {
            *keep = ds;
            *fk = f;
            return;
        }
        f.vt->free_dataset(f.state, &ds);
    }
    tfx_close(&f);
}

static void test_agnews_real(void) {
    char data[4096];
    if (!shared_data(data, sizeof data, "agnews real data")) return;
    const int64_t test_counts[4] = {1900, 1900, 1900, 1900};
    tp_dataset ds;
    tfx f;
    memset(&f, 0, sizeof f);
    memset(&ds, 0, sizeof ds);
    check_split("agnews", "", data, "eval", 7600, 4, test_counts, &ds, &f);
    if (f.state) {
        /* HF text = title + " " + description; row 0 is Business */
        TP_CHECK(!strncmp(ds.rows[0].text,
                          "Fears for T N pension after talks Unions representing workers at "
                          "Turner   Newall",
                          80));
        TP_CHECK(ds.rows[0].label == 2 && !strcmp(ds.rows[0].answer, "business"));
        TP_CHECK(ds.rows[0].line == 2 && ds.rows[7599].line == 7601);
        /* the second row is quoted and keeps its backslash escapes */
        TP_CHECK(strstr(ds.rows[1].text, "A second\\team of rocketeers") != NULL);
        TP_CHECK(ds.rows[1].label == 3 && !strcmp(ds.rows[1].answer, "science"));
        f.vt->free_dataset(f.state, &ds);
        tp_task_info info;
        TP_CHECK(f.vt->info(f.state, &info) == TP_OK);
        TP_CHECK(info.n_labels == 4 && !strcmp(info.labels[0], "world") &&
                 !strcmp(info.labels[3], "science") && info.synonyms[3] &&
                 strstr(info.synonyms[3], "sci/tech") && strstr(info.synonyms[3], "technology"));
        TP_CHECK(!strcmp(info.sender_template, "Article: {text[:256]}\nTopic (world, sports, "
                                               "business, or science):"));
        TP_CHECK(!strcmp(info.receiver_primer, "Topic:"));
        TP_CHECK(!strcmp(info.default_scoring, "first_token") && !info.is_generation);
        TP_CHECK(f.vt->extract == NULL);
        tfx_close(&f);
    }
    /* the 5,000-row training sample in Zhang's headerless format */
    const int64_t sample_counts[4] = {1204, 1240, 1291, 1265};
    check_split("agnews", "train_file=train_sample5000.csv", data, "train", 5000, 4, sample_counts,
                NULL, NULL);
    check_split("agnews", "train_file=train_sample5000.csv,max_train=10", data, "train", 10, 4,
                NULL, NULL, NULL);
    /* the full train.csv is not in ../shared/data: the error says which option to set */
    tp_err err = {0};
    tp_status st = tfx_open(&f, "agnews", "", data, &err);
    if (st == TP_OK) {
        st = f.vt->load(f.state, "train", &ds, &err);
        TP_CHECKF(st == TP_EIO && strstr(err.msg, "train.csv") &&
                      strstr(err.msg, "train_file=train_sample5000.csv"),
                  "%d %s", (int)st, err.msg);
        if (st == TP_OK) f.vt->free_dataset(f.state, &ds);
    }
    tfx_close(&f);
    /* old prompt */
    st = tfx_open(&f, "agnews", "prompt=old", data, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        tp_task_info info;
        TP_CHECK(f.vt->info(f.state, &info) == TP_OK);
        TP_CHECK(!strcmp(info.sender_template, "Article: {text[:256]}\nTopic:"));
        TP_CHECK(strstr(info.direct_template, "world, sports, business, or science") != NULL);
    }
    tfx_close(&f);
}

static void test_trec_real(void) {
    char data[4096];
    if (!shared_data(data, sizeof data, "trec real data")) return;
    const int64_t train[6] = {86, 1250, 1162, 1223, 835, 896};
    const int64_t test[6] = {9, 94, 138, 65, 81, 113};
    tp_dataset ds;
    tfx f;
    memset(&f, 0, sizeof f);
    check_split("trec", "", data, "eval", 500, 6, test, &ds, &f);
    if (f.state) {
        TP_CHECK(!strcmp(ds.rows[0].text, "How far is it from Denver to Aspen ?"));
        TP_CHECK(ds.rows[0].label == 5 && !strcmp(ds.rows[0].answer, "NUM"));
        TP_CHECK(ds.rows[2].label == 3 && !strcmp(ds.rows[2].text, "Who was Galileo ?"));
        f.vt->free_dataset(f.state, &ds);
        tp_task_info info;
        TP_CHECK(f.vt->info(f.state, &info) == TP_OK);
        const char *want[6] = {"ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"};
        TP_CHECK(info.n_labels == 6);
        for (int c = 0; c < 6; c++) TP_CHECK(!strcmp(info.labels[c], want[c]));
        TP_CHECK(!strcmp(info.sender_template,
                         "Question: {text}\nCategory (ABBR, ENTY, DESC, HUM, LOC, or NUM):"));
        TP_CHECK(!strcmp(info.receiver_primer, "Question Type: "));
        tfx_close(&f);
    }
    check_split("trec", "", data, "train", 5452, 6, train, &ds, &f);
    if (f.state) {
        /* line 66: the original's 0xF0 byte (UTF-8 "ð" here) is a space, as in HF */
        TP_CHECK(ds.rows[65].line == 66);
        TP_CHECK(!strcmp(ds.rows[65].text,
                         "Which city has the oldest relationship as a sister city with Los "
                         "Angeles ?"));
        f.vt->free_dataset(f.state, &ds);
        tfx_close(&f);
    }
}

static void test_banking77_real(void) {
    char data[4096];
    if (!shared_data(data, sizeof data, "banking77 real data")) return;
    int64_t test[77];
    for (int c = 0; c < 77; c++) test[c] = 40;
    tp_dataset ds;
    tfx f;
    memset(&f, 0, sizeof f);
    check_split("banking77", "", data, "eval", 3080, 77, test, NULL, NULL);
    check_split("banking77", "", data, "train", 10003, 77, NULL, &ds, &f);
    if (f.state) {
        int64_t cnt[77];
        tfx_counts(&ds, 77, cnt);
        int64_t mn = cnt[0], mx = cnt[0];
        for (int c = 1; c < 77; c++) {
            if (cnt[c] < mn) mn = cnt[c];
            if (cnt[c] > mx) mx = cnt[c];
        }
        TP_CHECKF(mn == 35 && mx == 187, "train per-class min %lld max %lld", (long long)mn,
                  (long long)mx);
        TP_CHECKF(cnt[0] == 153 && cnt[76] == 129, "card_arrival %lld, country_support %lld",
                  (long long)cnt[0], (long long)cnt[76]);
        TP_CHECK(!strcmp(ds.rows[0].text, "I am still waiting on my card?"));
        TP_CHECK(ds.rows[0].label == 0 && !strcmp(ds.rows[0].answer, "card_arrival"));
        /* a quoted text with line feeds (CRLF file, LF inside the quotes) is kept byte for byte
         * and the next record's line number accounts for its lines */
        TP_CHECK(!strcmp(ds.rows[1290].text, "\nI can't seem to be able to use my card\n\n\n"));
        TP_CHECKF(ds.rows[1290].line == 1292, "line %lld", (long long)ds.rows[1290].line);
        TP_CHECK(ds.rows[1291].line == 1297);
        f.vt->free_dataset(f.state, &ds);
        tp_task_info info;
        TP_CHECK(f.vt->info(f.state, &info) == TP_OK);
        TP_CHECK(info.n_labels == 77 && !strcmp(info.labels[0], "card_arrival") &&
                 !strcmp(info.labels[76], "country_support"));
        TP_CHECK(info.synonyms[0] && !strcmp(info.synonyms[0], "card arrival"));
        int refund = -1, rev = -1;
        for (int c = 0; c < 77; c++) {
            if (!strcmp(info.labels[c], "Refund_not_showing_up")) refund = c;
            if (!strcmp(info.labels[c], "reverted_card_payment?")) rev = c;
        }
        TP_CHECK(refund >= 0 && rev >= 0);
        if (rev >= 0)
            TP_CHECK(strstr(info.synonyms[rev], "reverted card payment") &&
                     strstr(info.synonyms[rev], "reverted_card_payment|"));
        TP_CHECK(strstr(info.direct_template, "{text}") &&
                 strstr(info.direct_template, "card_arrival, card_linking") &&
                 strstr(info.direct_template, "country_support):"));
        TP_CHECK(!strcmp(info.sender_template, "Query: {text}\nIntent:"));
        TP_CHECK(!strcmp(info.default_scoring, "generate") && info.max_new_tokens == 20);
        tfx_close(&f);
    }
}

static void test_agnews_bad(void) {
    const char *h = "title,description,class\n";
    char b[512];
    snprintf(b, sizeof b, "%sA,b,World\nC,d,Politics\n", h);
    tfx_expect_bad("agnews", "ag_label", NULL, "test.csv", b, "eval", "", ":3:", "Politics");
    snprintf(b, sizeof b, "%sA,b,World\nC,Sports\n", h);
    tfx_expect_bad("agnews", "ag_column", NULL, "test.csv", b, "eval", "", ":3:", "found 2 column");
    snprintf(b, sizeof b, "%sA,b \"quoted\" c,World\n", h);
    tfx_expect_bad("agnews", "ag_quote1", NULL, "test.csv", b, "eval", "", ":2:", "bad quoting");
    snprintf(b, sizeof b, "%s\"A\"x,b,World\n", h);
    tfx_expect_bad("agnews", "ag_quote2", NULL, "test.csv", b, "eval", "", ":2:", "bad quoting");
    snprintf(b, sizeof b, "%sA,b,World\n\"open,b,World\nC,d,Sports\n", h);
    tfx_expect_bad("agnews", "ag_quote3", NULL, "test.csv", b, "eval", "", ":3:", "unterminated");
    snprintf(b, sizeof b, "title,description,class\r\nA,b,World\r\n");
    tfx_expect_bad("agnews", "ag_crlf", NULL, "test.csv", b, "eval", "", ":1:", "CRLF");
    snprintf(b, sizeof b, "%s,,World\n", h);
    tfx_expect_bad("agnews", "ag_empty_text", NULL, "test.csv", b, "eval", "", ":2:", "empty");
    snprintf(b, sizeof b, "\"1\",\"A\",\"b\"\n\"5\",\"C\",\"d\"\n");
    tfx_expect_bad("agnews", "ag_zhang_label", NULL, "train.csv", b, "train", "",
                   ":2:", "class index '5'");
    snprintf(b, sizeof b, "text,label\nA,1\n");
    tfx_expect_bad("agnews", "ag_header", NULL, "test.csv", b, "eval", "",
                   ":1:", "title,description,class");
    tfx_expect_bad("agnews", "ag_header_only", NULL, "test.csv", h, "eval", "", ": no data rows",
                   "header");
    /* a good fixture, both layouts, and the last row without a final newline */
    char dir[4096], p[4300], opt[4400];
    tfx_dir(dir, sizeof dir, "ag_ok");
    snprintf(p, sizeof p, "%s/test.csv", dir);
    tfx_write(p, "title,description,class\n\"T, one\",\"said \"\"hi\"\"\",Sci/Tech\nA,b,Sports");
    snprintf(p, sizeof p, "%s/train.csv", dir);
    tfx_write(p, "\"3\",\"Bank\",\"rates up\"\n");
    snprintf(opt, sizeof opt, "dir=%s", dir);
    tfx f;
    tp_err err = {0};
    tp_status st = tfx_open(&f, "agnews", opt, NULL, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        tp_dataset ds;
        st = f.vt->load(f.state, "eval", &ds, &err);
        TP_CHECKF(st == TP_OK, "%s", err.msg);
        if (st == TP_OK) {
            TP_CHECK(ds.n == 2 && !strcmp(ds.rows[0].text, "T, one said \"hi\"") &&
                     ds.rows[0].label == 3 && !strcmp(ds.rows[1].text, "A b") &&
                     ds.rows[1].label == 1 && ds.rows[1].line == 3);
            f.vt->free_dataset(f.state, &ds);
        }
        st = f.vt->load(f.state, "train", &ds, &err);
        TP_CHECKF(st == TP_OK, "%s", err.msg);
        if (st == TP_OK) {
            TP_CHECK(ds.n == 1 && !strcmp(ds.rows[0].text, "Bank rates up") &&
                     ds.rows[0].label == 2 && !strcmp(ds.rows[0].answer, "business"));
            f.vt->free_dataset(f.state, &ds);
        }
        st = f.vt->load(f.state, "test", &ds, &err);
        TP_CHECK(st == TP_EINVAL && strstr(err.msg, "train or eval"));
    }
    tfx_close(&f);
    st = tfx_open(&f, "agnews", "train_file=../x.csv", "/tmp", &err);
    TP_CHECK(st == TP_EINVAL && strstr(err.msg, "train_file"));
    tfx_close(&f);
    st = tfx_open(&f, "agnews", "", NULL, &err);
    TP_CHECK(st == TP_EINVAL && strstr(err.msg, "no data directory"));
    tfx_close(&f);
}

static void test_trec_bad(void) {
    tfx_expect_bad("trec", "tr_label", NULL, "TREC_10.label", "NUM:dist How far ?\nFOO:x What ?\n",
                   "eval", "", ":2:", "coarse label 'FOO'");
    tfx_expect_bad("trec", "tr_nocolon", NULL, "TREC_10.label", "NUM:dist How far ?\nWhat is it\n",
                   "eval", "", ":2:", "expected 'COARSE:fine question'");
    tfx_expect_bad("trec", "tr_crlf", NULL, "TREC_10.label", "NUM:dist How far ?\r\n", "eval", "",
                   ":1:", "CRLF");
    tfx_expect_bad("trec", "tr_empty_q", NULL, "TREC_10.label", "NUM:dist How ?\nHUM:ind \n",
                   "eval", "", ":2:", "empty question");
    tfx_expect_bad("trec", "tr_nofine", NULL, "TREC_10.label", "NUM: How far ?\n", "eval", "",
                   ":1:", "empty fine label");
    tfx_expect_bad("trec", "tr_blank", NULL, "train_5500.label",
                   "NUM:dist How ?\n\nLOC:x Where ?\n", "train", "", ":2:", "empty line");
    tfx_expect_bad("trec", "tr_lower", NULL, "TREC_10.label", "num:dist How far ?\n", "eval", "",
                   ":1:", "coarse label 'num'");
    tfx_expect_bad("trec", "tr_empty", NULL, "TREC_10.label", "", "eval", "", ": file is empty",
                   "COARSE");
}

static void test_banking77_bad(void) {
    const char *cats_json = "[\"card_arrival\", \"pin_blocked\"]";
    /* a real categories.json has 77 names; build one */
    char cats[4096] = "[";
    for (int c = 0; c < 77; c++)
        snprintf(cats + strlen(cats), sizeof cats - strlen(cats), "%s\"intent_%d\"", c ? ", " : "",
                 c);
    strcat(cats, "]\n");
    const char *files[][2] = {{"categories.json", cats}, {NULL, NULL}};
    const char *h = "text,category\r\n";
    char b[512];
    snprintf(b, sizeof b, "%shello,intent_0\r\nbye,intent_99\r\n", h);
    tfx_expect_bad("banking77", "bk_label", files, "test.csv", b, "eval", "",
                   ":3:", "category 'intent_99'");
    snprintf(b, sizeof b, "%shello,intent_0\r\nbye\r\n", h);
    tfx_expect_bad("banking77", "bk_column", files, "test.csv", b, "eval", "",
                   ":3:", "found 1 column");
    snprintf(b, sizeof b, "%shello,intent_0\nbye,intent_1\r\n", h);
    tfx_expect_bad("banking77", "bk_lf", files, "test.csv", b, "eval", "", ":2:", "LF only");
    snprintf(b, sizeof b, "%s\"a \"b\" c\",intent_0\r\n", h);
    tfx_expect_bad("banking77", "bk_quote", files, "test.csv", b, "eval", "", ":2:", "bad quoting");
    snprintf(b, sizeof b, "%s\"multi\nline\",intent_0\r\nx,Intent_1\r\n", h);
    tfx_expect_bad("banking77", "bk_case", files, "test.csv", b, "eval", "",
                   ":4:", "category 'Intent_1'");
    snprintf(b, sizeof b, "%shello,intent_0\rx\r\n", h);
    tfx_expect_bad("banking77", "bk_cr", files, "test.csv", b, "eval", "",
                   ":2:", "carriage return not followed");
    snprintf(b, sizeof b, "%s ,intent_0\r\n", h);
    tfx_expect_bad("banking77", "bk_empty", files, "test.csv", b, "eval", "", ":2:", "empty text");
    snprintf(b, sizeof b, "text;category\r\n");
    tfx_expect_bad("banking77", "bk_header", files, "train.csv", b, "train", "", ":1:", "header");
    /* categories.json problems are errors at open, naming the file and line */
    const char *bad_cats[][2] = {{"test.csv", "text,category\r\nx,card_arrival\r\n"}, {NULL, NULL}};
    tfx_expect_bad("banking77", "bk_cats_short", bad_cats, "categories.json", cats_json, "eval", "",
                   ":1:", "exactly 77");
    tfx_expect_bad("banking77", "bk_cats_json", bad_cats, "categories.json",
                   "[\n\"a\",\n\"b\"\n\"c\"]", "eval", "", ":4:", "expected ','");
    /* a good fixture: quoted line feeds kept, "" unescaped */
    char dir[4096], p[4300], opt[4400];
    tfx_dir(dir, sizeof dir, "bk_ok");
    snprintf(p, sizeof p, "%s/categories.json", dir);
    tfx_write(p, cats);
    snprintf(p, sizeof p, "%s/test.csv", dir);
    tfx_write(p, "text,category\r\n\"\nsay \"\"x\"\"\",intent_5\r\nplain,intent_76");
    snprintf(opt, sizeof opt, "dir=%s", dir);
    tfx f;
    tp_err err = {0};
    tp_status st = tfx_open(&f, "banking77", opt, NULL, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        tp_dataset ds;
        st = f.vt->load(f.state, "eval", &ds, &err);
        TP_CHECKF(st == TP_OK, "%s", err.msg);
        if (st == TP_OK) {
            TP_CHECK(ds.n == 2 && !strcmp(ds.rows[0].text, "\nsay \"x\"") &&
                     ds.rows[0].label == 5 && ds.rows[1].label == 76 && ds.rows[1].line == 4);
            f.vt->free_dataset(f.state, &ds);
        }
    }
    tfx_close(&f);
}

TP_TEST_RUN(TP_CASE(test_agnews_real), TP_CASE(test_trec_real), TP_CASE(test_banking77_real),
            TP_CASE(test_agnews_bad), TP_CASE(test_trec_bad), TP_CASE(test_banking77_bad))
