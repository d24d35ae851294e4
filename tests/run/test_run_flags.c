/* test_run_flags.c — the trainer's support for bridges and losses beyond plain soft tokens
 * (bridge.h / loss.h, ABI 1.1), each through a real run between the tiny models on `toy`:
 *   CLASSIFIER (linear_probe): no receiver; class_logits trained with ce, predicted by argmax and
 *     recorded under the scheme "classifier"; it learns toy (>= 48/64: P = 3.9e-5 under chance),
 *     also with the whitening normalizer, whose statistics come from calibrate() on the first N
 *     training examples; a loss that needs soft tokens is refused by name (recorded failed);
 *   RECEIVER_TEXT (prompt_tuning): the receiver reads [primer][soft][the task's direct prompt] —
 *     shown by a max_receiver_len that fits the perceiver's input but not one with the text;
 *   NEEDS_TARGET (diffusion, flow mode) and TARGET_EMB (anchor): receiver embeddings of the
 *     target text reach the bridge and the loss; `target` is part of the config identity;
 *   ANSWER_IDS (bow): the sender-tokenised answer reaches the loss.
 * Every run logs its loss terms per step. */
#include "run_fixture.h"

static json_t *spec(const char *bridge, int steps) {
    json_t *s = fx_bridge_spec(steps, 1);
    json_object_set_new(s, "bridge", json_string(bridge));
    json_object_del(s, "bridge_options");
    return s;
}

/* A small DiT and a short eval: the flow-path checks need the plumbing, not the accuracy. */
static json_t *diffusion_spec(void) {
    json_t *s = spec("diffusion", 4);
    json_object_set_new(s, "losses", json_pack("{s:i}", "flow_match", 1));
    json_object_set_new(s, "bridge_options",
                        json_pack("{s:i, s:i, s:i, s:i, s:i}", "tokens", 4, "width", 32, "depth", 1,
                                  "heads", 4, "steps", 2));
    json_object_set_new(s, "task_options", json_pack("{s:i, s:i}", "n_train", 64, "n_eval", 16));
    return s;
}

static int run_ok(fx *f, json_t *s, tp_run_result *res, const char *what) {
    tp_err err = {0};
    tp_status st = tp_runner_run(f->runner, s, res, &err);
    TP_CHECKF(st == TP_OK, "%s: %s", what, err.msg);
    if (st == TP_OK)
        printf("%-22s acc %.3f (%s) loss %.4f -> %.4f\n", what, res->accuracy, res->scheme,
               res->first_loss, res->final_loss);
    json_decref(s);
    return st == TP_OK;
}

static void test_classifier(void) {
    fx f;
    TP_CHECK(fx_open(&f, "probe.db"));
    tp_run_result res;
    json_t *s = spec("linear_probe", 400);
    json_object_set_new(s, "losses", json_pack("{s:i}", "ce", 1));
    json_object_set_new(s, "lr", json_real(3e-2));
    json_object_set_new(s, "bridge_options", json_pack("{s:s}", "pool", "mean"));
    if (run_ok(&f, s, &res, "linear_probe")) {
        TP_CHECK(!strcmp(res.scheme, "classifier") && res.n == 64);
        TP_CHECKF(res.accuracy >= 0.75, "probe accuracy %.3f", res.accuracy);
    }
    s = spec("linear_probe", 150);
    json_object_set_new(s, "losses", json_pack("{s:i}", "ce", 1));
    json_object_set_new(s, "lr", json_real(3e-2));
    json_object_set_new(s, "bridge_options",
                        json_pack("{s:s, s:s, s:i}", "pool", "mean", "normalizer", "whiten",
                                  "normalizer_examples", 64));
    if (run_ok(&f, s, &res, "linear_probe+whiten"))
        TP_CHECKF(res.accuracy >= 0.75, "whitened probe accuracy %.3f", res.accuracy);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM results WHERE metric = 'accuracy' AND "
                          "scheme = 'classifier'") == 2);
    /* default losses include diversity, which needs soft tokens a classifier does not make */
    s = spec("linear_probe", 2);
    tp_err err = {0};
    TP_CHECK(tp_runner_run(f.runner, s, &res, &err) == TP_EUNSUP);
    TP_CHECKF(strstr(err.msg, "loss 'diversity' needs soft tokens, but bridge 'linear_probe' is "
                              "a classifier"),
              "%s", err.msg);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM runs WHERE status = 'failed' AND error LIKE "
                          "'%is a classifier%'") == 1);
    json_decref(s);
    fx_close(&f);
}

static void test_receiver_text(void) {
    fx f;
    TP_CHECK(fx_open(&f, "pt.db"));
    tp_run_result res;
    /* toy prompts are ~30+ receiver tokens: 24 positions hold [primer][4 soft][answer] only */
    json_t *s = spec("perceiver", 2);
    json_object_set_new(s, "bridge_options",
                        json_pack("{s:i, s:i, s:i}", "tokens", 4, "depth", 1, "heads", 4));
    json_object_set_new(s, "max_receiver_len", json_integer(24));
    json_object_set_new(s, "task_options", json_pack("{s:i, s:i}", "n_train", 64, "n_eval", 16));
    run_ok(&f, s, &res, "perceiver (24 pos)");
    s = spec("prompt_tuning", 2);
    json_object_set_new(s, "bridge_options", json_pack("{s:i}", "tokens", 4));
    json_object_set_new(s, "max_receiver_len", json_integer(24));
    tp_err err = {0};
    TP_CHECK(tp_runner_run(f.runner, s, &res, &err) == TP_ERANGE);
    TP_CHECKF(strstr(err.msg, "exceeds max_receiver_len 24"), "%s", err.msg);
    json_decref(s);
    s = spec("prompt_tuning", 5);
    json_object_set_new(s, "bridge_options", json_pack("{s:i}", "tokens", 4));
    json_object_set_new(s, "task_options", json_pack("{s:i, s:i}", "n_train", 64, "n_eval", 16));
    if (run_ok(&f, s, &res, "prompt_tuning")) TP_CHECK(res.n == 16 && res.steps == 5);
    fx_close(&f);
}

static void test_targets_and_answers(void) {
    fx f;
    TP_CHECK(fx_open(&f, "targets.db"));
    tp_run_result res;
    json_t *s = diffusion_spec();
    run_ok(&f, s, &res, "diffusion flow");
    s = diffusion_spec();
    json_object_set_new(s, "target", json_string("question"));
    run_ok(&f, s, &res, "diffusion flow (question)");
    TP_CHECK(fx_count(&f, "SELECT COUNT(DISTINCT config_hash) FROM runs WHERE status = 'done'") ==
             2);
    const char *losses[] = {"anchor", "bow"};
    for (int i = 0; i < 2; i++) {
        s = spec("perceiver", 4);
        json_object_set_new(s, "bridge_options",
                            json_pack("{s:i, s:i, s:i}", "tokens", 4, "depth", 1, "heads", 4));
        json_object_set_new(s, "losses", json_pack("{s:i, s:i}", "ce", 1, losses[i], 1));
        json_object_set_new(s, "task_options",
                            json_pack("{s:i, s:i}", "n_train", 64, "n_eval", 16));
        run_ok(&f, s, &res, losses[i]);
        char sql[200];
        snprintf(sql, sizeof sql,
                 "SELECT COUNT(*) FROM metrics WHERE name = 'train/loss/%s' AND value > 0",
                 losses[i]);
        TP_CHECKF(fx_count(&f, sql) == 4, "%s: no positive loss terms logged", losses[i]);
    }
    fx_close(&f);
}

TP_TEST_RUN(TP_CASE(test_classifier), TP_CASE(test_receiver_text),
            TP_CASE(test_targets_and_answers))
