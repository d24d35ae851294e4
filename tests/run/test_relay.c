/* test_relay.c — the text-relay baseline end to end on the tiny models: the sender's greedy
 * summary is exactly what tp_generate gives for the relay prompt, the receiver reads the task's
 * direct prompt (label list) around it, or "{summary}\n<primer>" without labels; the run is
 * recorded as its own kind with one prediction per row; labels_in_prompt is part of the config
 * identity, and the label-less relay carries the fairness warning rows; each example's summary is
 * stored as predictions.output and the relay's two halves as latency rows; bad baseline_options
 * are errors naming the key. */
#include <ctype.h>
#include <limits.h>
#include <math.h>

#include "model/generate.h"
#include "run/batch.h"
#include "run/relay.h"
#include "run/run_config.h"
#include "run_fixture.h"

static json_t *relay_spec(int labels) {
    return json_pack("{s:s, s:s, s:s, s:s, s:{s:i, s:i}, s:{s:b, s:i}, s:s, s:i}", "baseline",
                     "text_relay", "sender", "tiny_llama", "receiver", "tiny_mistral", "task",
                     "toy", "task_options", "n_train", 32, "n_eval", 8, "baseline_options",
                     "labels_in_prompt", labels, "summary_tokens", 6, "scoring", "first_token",
                     "eval_batch", 4);
}

/* The summary computed independently: relay prompt -> sender tokens -> greedy -> decode, trim. */
static char *reference_summary(const tp_run_cfg *c, const char *text) {
    char *prompt = tp_fill_template(c->bopts.sender_prompt, text);
    tp_model *m = c->sender->m;
    int32_t *ids = NULL;
    int n = 0;
    tp_err err = {0};
    char *out = NULL;
    if (tp_tokenizer_encode(m->tok, prompt, c->sender_bos, &ids, &n, &err) == TP_OK) {
        tp_gen_cfg g = tp_gen_defaults(m);
        g.max_new_tokens = c->bopts.summary_tokens;
        g.greedy = 1;
        tp_gen_in in = {.batch = 1, .len = n, .ids = ids, .embeds = NULL, .mask = NULL};
        tp_gen_out go = {0};
        if (tp_generate(m, &in, &g, &go, &err) == TP_OK)
            tp_tokenizer_decode(m->tok, go.tokens, go.n_tokens[0], 1, &out, &err);
        tp_gen_out_free(&go);
    }
    TP_CHECKF(out != NULL, "reference summary: %s", err.msg);
    free(ids);
    free(prompt);
    if (out) {
        size_t a = 0, l = strlen(out);
        while (a < l && isspace((unsigned char)out[a])) a++;
        while (l > a && isspace((unsigned char)out[l - 1])) l--;
        memmove(out, out + a, l - a);
        out[l - a] = 0;
    }
    return out;
}

static void test_relay_pieces(void) {
    fx f;
    TP_CHECK(fx_open(&f, ""));
    json_t *spec = relay_spec(1);
    tp_run_cfg c;
    tp_err err = {0};
    tp_status st = tp_run_cfg_resolve(f.runner, spec, &c, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        TP_CHECK(c.kind == TP_KIND_TEXT_RELAY && c.bopts.labels_in_prompt &&
                 c.bopts.summary_tokens == 6);
        TP_CHECK(strstr(c.canon, "\"kind\":\"text_relay\"") &&
                 strstr(c.canon, "\"labels_in_prompt\":true") &&
                 strstr(c.canon, "\"summary_tokens\":6") && strstr(c.canon, "Summarize"));
        tp_relay *rl = NULL;
        st = tp_relay_new(&rl, &c, &err);
        TP_CHECKF(st == TP_OK, "%s", err.msg);
        if (st == TP_OK) {
            TP_CHECK(!strcmp(tp_relay_receiver_template(rl), c.info.direct_template));
            const tp_task_vtable *tv = c.task->desc.vtable;
            tp_dataset ds;
            TP_CHECK(tv->load(c.task_state, "eval", &ds, &err) == TP_OK);
            const tp_example *rows[3] = {&ds.rows[0], &ds.rows[1], &ds.rows[2]};
            tp_scorer sc;
            tp_relay_scorer(rl, &sc);
            TP_CHECK(sc.m == c.receiver->m && sc.prefix != NULL);
            tp_eval_out o;
            st = tp_score(&sc, tp_relay_ctx(rl), rows, 3, &o, &err);
            TP_CHECKF(st == TP_OK, "%s", err.msg);
            if (st == TP_OK) {
                const char *const *sum;
                int ns = tp_relay_last_summaries(rl, &sum);
                /* eval_batch 4 > 3 rows: one batch, so all three summaries are the last */
                TP_CHECK(ns == 3);
                for (int i = 0; i < ns; i++) {
                    char *ref = reference_summary(&c, rows[i]->text);
                    TP_CHECKF(ref && !strcmp(ref, sum[i]), "row %d: batched '%s' vs alone '%s'", i,
                              sum[i], ref ? ref : "(null)");
                    free(ref);
                    /* the per-example log the prediction rows read (predictions.output) */
                    const char *kept = tp_relay_summary_of(rl, rows[i]);
                    TP_CHECK(kept && !strcmp(kept, sum[i]));
                    TP_CHECK(o.pred[i] >= 0 && o.pred[i] < c.info.n_labels);
                }
                TP_CHECK(tp_relay_summary_of(rl, &ds.rows[3]) == NULL);
                double mean, sd;
                int maxb;
                TP_CHECK(tp_relay_latency(rl, &mean, &sd, &maxb) == 1 && mean >= 0 && maxb == 3 &&
                         isnan(sd));
                printf("summary[0]: '%s'\n", ns ? sum[0] : "");
                tp_eval_out_free(&o);
            }
            tv->free_dataset(c.task_state, &ds);
        }
        tp_relay_free(rl);
    }
    tp_run_cfg_free(&c);
    json_decref(spec);
    /* without the label list the receiver reads the summary and the task's primer */
    spec = relay_spec(0);
    st = tp_run_cfg_resolve(f.runner, spec, &c, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    if (st == TP_OK) {
        tp_relay *rl = NULL;
        TP_CHECK(tp_relay_new(&rl, &c, &err) == TP_OK);
        if (rl) TP_CHECK(!strcmp(tp_relay_receiver_template(rl), "{text}\nTopic:"));
        tp_relay_free(rl);
    }
    tp_run_cfg_free(&c);
    json_decref(spec);
    fx_close(&f);
}

static void test_relay_runs(void) {
    fx f;
    TP_CHECK(fx_open(&f, "relay.db"));
    tp_run_result a, b, a2;
    tp_err err = {0};
    json_t *s1 = relay_spec(1), *s0 = relay_spec(0);
    tp_status st = tp_runner_run(f.runner, s1, &a, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    st = tp_runner_run(f.runner, s0, &b, &err);
    TP_CHECKF(st == TP_OK, "%s", err.msg);
    TP_CHECK(a.n == 8 && b.n == 8 && strcmp(a.config_hash, b.config_hash) != 0);
    TP_CHECK(!strcmp(a.scheme, "first_token"));
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM runs WHERE bridge = 'text_relay' AND status = "
                          "'done' AND sender = 'tiny_llama' AND receiver = 'tiny_mistral'") == 2);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM predictions WHERE run_id = %lld",
             (long long)a.run_id);
    TP_CHECK(fx_count(&f, sql) == 8);
    /* the summaries are stored per example (predictions.output): the sender prompt does not
     * depend on labels_in_prompt, so both relays stored the same summary for each example */
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM predictions p JOIN predictions q ON p.example_id = "
             "q.example_id AND p.split = q.split WHERE p.run_id = %lld AND q.run_id = %lld AND "
             "p.output IS NOT NULL AND p.output = q.output",
             (long long)a.run_id, (long long)b.run_id);
    TP_CHECK(fx_count(&f, sql) == 8);
    /* and the relay's latency: the sender's summary and the receiver's part, per batch */
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM latency WHERE run_id = %lld AND ((stage = "
             "'text_relay_summary' AND seq_len = 6) OR stage = 'text_relay_receiver') AND ms >= 0 "
             "AND reps >= 1 AND batch >= 1 AND device = 'cpu'",
             (long long)a.run_id);
    TP_CHECK(fx_count(&f, sql) == 2);
    /* other kinds store no output */
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM predictions p JOIN runs r ON r.id = p.run_id "
                          "WHERE r.bridge != 'text_relay' AND p.output IS NOT NULL") == 0);
    /* per-class accuracy rows for the relay too */
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM results WHERE run_id = %lld AND metric LIKE 'accuracy/%%'",
             (long long)a.run_id);
    TP_CHECK(fx_count(&f, sql) == 2);
    /* the fairness rule: only the label-less relay is flagged */
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM results WHERE run_id = %lld AND metric LIKE "
             "'fairness_warning%%'",
             (long long)a.run_id);
    TP_CHECK(fx_count(&f, sql) == 0);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM results WHERE run_id = %lld AND split = 'eval' AND "
             "((metric = 'fairness_warning' AND value = 1) OR (metric = "
             "'fairness_warning/relay_no_labels' AND value = 1))",
             (long long)b.run_id);
    TP_CHECK(fx_count(&f, sql) == 2);
    /* same config again: skipped, same result */
    st = tp_runner_run(f.runner, s1, &a2, &err);
    TP_CHECK(st == TP_OK && !strcmp(a2.status, "skipped") && a2.run_id == a.run_id &&
             a2.n_correct == a.n_correct);
    json_decref(s1);
    json_decref(s0);
    fx_close(&f);
}

static void expect_err(fx *f, json_t *spec, const char *what) {
    tp_run_result res;
    tp_err err = {0};
    tp_status st = tp_runner_run(f->runner, spec, &res, &err);
    TP_CHECKF(st != TP_OK && strstr(err.msg, what), "expected an error with '%s', got %d '%s'",
              what, (int)st, err.msg);
    json_decref(spec);
}

static void test_relay_errors(void) {
    fx f;
    TP_CHECK(fx_open(&f, "relay_err.db"));
    json_t *s = relay_spec(1);
    json_object_set_new(json_object_get(s, "baseline_options"), "labels", json_true());
    expect_err(&f, s, "baseline_options.labels is not an option of text_relay");
    s = relay_spec(1);
    json_object_set_new(json_object_get(s, "baseline_options"), "summary_tokens", json_integer(0));
    expect_err(&f, s, "summary_tokens");
    s = relay_spec(1);
    json_object_set_new(json_object_get(s, "baseline_options"), "sender_prompt",
                        json_string("no placeholder"));
    expect_err(&f, s, "{text}");
    s = relay_spec(1);
    json_object_del(s, "sender");
    expect_err(&f, s, "'sender'");
    s = json_pack("{s:s, s:s, s:s, s:{s:i}}", "baseline", "receiver_direct", "receiver",
                  "tiny_mistral", "task", "toy", "baseline_options", "k", 3);
    expect_err(&f, s, "no meaning for receiver_direct");
    s = relay_spec(1);
    json_object_set_new(s, "baseline", json_string("relay"));
    expect_err(&f, s, "text_relay or fewshot");
    fx_close(&f);
}

TP_TEST_RUN(TP_CASE(test_relay_pieces), TP_CASE(test_relay_runs), TP_CASE(test_relay_errors))
