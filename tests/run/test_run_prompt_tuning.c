/* test_run_prompt_tuning.c — the prompt-tuning baseline (plugins/bridges/prompt_tuning.c,
 * flag RECEIVER_TEXT) trained through the real trainer: its soft prompt steers how the frozen
 * receiver reads each example's text, and on a receiver whose attention is content-dependent it
 * learns held-out toy.
 *
 * Test 1 (the fixture's receiver, make-tiny mistral seed 2, weights N(0, 0.02)): on a fixed
 * balanced batch of 8 toy examples (n_train = batch = 8, so every step sees the same 4 + 4
 * examples), the task loss (ce only) falls below ln 2. A soft prompt is the same for every
 * example, so a receiver that did not read the text would give every example the same two label
 * probabilities, and a balanced batch's CE is then >= ln 2 = 0.693; below it, the prompt has
 * moved the receiver's example-dependent (text-dependent) outputs toward the labels. Seen (seeds
 * 1-4, M 16, lr 3e-3): 0.69 at the start, 0.615-0.62 from step ~120 on (a plateau).
 *
 * On that receiver held-out toy stays at chance, whatever the setting. Measured on held-out toy
 * (64 rows, 300 steps unless said):
 *   M 4, lr 2e-3: 0.55; M 4, lr 2e-2 / 0.1 / 0.3: 0.52 / 0.52 / 0.50;
 *   length 5 (keywords a larger share of the text), M 16 or 64, lr 1e-2 or 0.1: 0.50;
 *   length 5, M 4, lr 1e-2, receiver seeds 2-7 (make-tiny mistral): 0.50-0.55;
 *   length 5, M 16, lr 3e-3, 1,200 steps: 0.66 (ce + diversity 0.1: 0.80 -> 0.74);
 *   the trained stories260K (llama2.c, imported) as receiver, M 4, lr 3e-3 / 3e-2: 0.52 / 0.55.
 *   make-tiny llama or qwen2 (tied embeddings) as receiver, seeds 1 and 3, M 16, lr 3e-3,
 *   ce only: 0.50-0.52 (ce 0.70 -> 0.68-0.70);
 *   receiver seeds 8 and 9, whose own readout separates the eval rows best (best-threshold
 *   accuracy of receiver_direct's scores 0.83 / 0.72, chosen in-sample): 0.45-0.48.
 *
 * Why, and test 2: the weight scale. With N(0, 0.02) weights and RMSNorm before every block,
 * the attention logits q.k / sqrt(d_head) have a spread of ~0.04 (d 96, d_head 16; it grows as
 * std^2), so every head attends near-uniformly: a text token's state gets the same mix of the
 * prefix whatever the token is, and the prefix cannot change which words count for which label
 * (an explanation from the scale, borne out by the table below, not measured inside the model). The
 * same receiver with every weight matrix x5 (N(0, 0.1); RMSNorm weights stay ones; built here by
 * rescaling make-tiny's tensors, nothing else changed) has logits of spread ~1: sharp,
 * content-dependent attention, and the prompt learns toy. Held-out accuracy of 64 rows (toy
 * defaults: length 12, noise 0.3, 2 classes; n_train 256, batch 8, M 16, ce only, lr 3e-3, 300
 * steps unless said; "x k" = the receiver's weights times k): x5, run seeds 1 / 2 / 3: 0.984 /
 * 0.922 / 0.969 (ce 0.55-0.66 -> 0.03-0.13) x5, receiver seeds 3 / 4 (run seed 1):        0.984 /
 * 0.938 x5, 200 steps, run seeds 1 / 2 / 3:           0.922 / 0.828 / 0.922 x5, receiver_direct (no
 * prompt) seeds 2 / 3:  0.500 / 0.625 x5, 1 step (the untrained prompt):            0.500 x2 / x3 /
 * x10 (run seed 1):                   0.734 / 0.938 / 0.891 x5 on q/k/v/o/MLP only (embeddings,
 * lm_head at 0.02): 0.953 / 0.828 / 0.922 (seeds 1-3), receiver seeds 3 / 4: 0.953 / 0.703 (0.891
 * at lr 1e-2); x3 there: 0.906; x10: 0.625; x20: 0.516 (presumably too sharp: near one-hot
 * attention passes little gradient) The test asserts >= 0.75 (48 of 64) for run seed 1 on receiver
 * seed 2, and that the same receiver without the prompt (receiver_direct) is at least 0.15 below
 * it, so the accuracy is the prompt's doing. A receiver trained on toy text would be the other way
 * out; the harness has no receiver fine-tuning (by design: the models are frozen). TP_TEST_SLOW:
 * ~33 s optimised (test 2: ~20 s). */
#include <math.h>

#include "model/safetensors.h"
#include "run_fixture.h"
#include "util/fsutil.h"

static void test_prompt_tuning_steers_text_reading(void) {
    fx f;
    TP_CHECK(fx_open(&f, "prompt_tuning.db"));
    json_t *spec = fx_bridge_spec(160, 1);
    json_object_set_new(spec, "bridge", json_string("prompt_tuning"));
    json_object_set_new(spec, "bridge_options", json_pack("{s:i}", "tokens", 16));
    json_object_set_new(spec, "task_options", json_pack("{s:i, s:i}", "n_train", 8, "n_eval", 8));
    json_object_set_new(spec, "losses", json_pack("{s:i}", "ce", 1)); /* no diversity term */
    json_object_set_new(spec, "lr", json_real(3e-3));
    json_object_set_new(spec, "eval_batch", json_integer(8));
    tp_run_result res;
    tp_err err = {0};
    tp_status st = tp_runner_run(f.runner, spec, &res, &err);
    TP_CHECKF(st == TP_OK, "prompt_tuning: %s", err.msg);
    if (st == TP_OK) {
        const double *l;
        int n = tp_runner_last_losses(f.runner, &l);
        TP_CHECK(n == 160);
        double first = 0, last = 0;
        for (int i = 0; i < 10 && n == 160; i++) first += l[i] / 10;
        for (int i = 0; i < 30 && n == 160; i++) last += l[n - 30 + i] / 30;
        printf("prompt_tuning on a fixed batch of 8: loss %.3f -> %.3f (ln 2 = %.3f)\n", first,
               last, log(2.0));
        TP_CHECKF(last < first - 0.04, "loss %.3f -> %.3f did not fall by 0.04", first, last);
        TP_CHECKF(last < log(2.0) - 0.04, "loss %.3f did not fall below ln 2 - 0.04 = %.3f", last,
                  log(2.0) - 0.04);
    }
    json_decref(spec);
    fx_close(&f);
}

/* Copies a model dir (config.json, tokenizer.json, f32 model.safetensors) to dst with every
 * tensor except the RMSNorm weights multiplied by k. */
static int scaled_copy(const char *src, const char *dst, float k, tp_err *err) {
    tp_st_model *m = NULL;
    if (tp_st_open(&m, src, err) != TP_OK || tp_mkdir_p(dst, err) != TP_OK) {
        tp_st_close(m);
        return 0;
    }
    tp_st_writer *w = tp_st_writer_new();
    int n = tp_st_count(m), ok = w != NULL;
    float **bufs = calloc((size_t)n, sizeof *bufs);
    ok = ok && bufs;
    for (int i = 0; i < n && ok; i++) {
        const tp_st_tensor *t = tp_st_at(m, i);
        size_t ne = t->nbytes / sizeof(float);
        ok = t->dtype == TP_F32 && (bufs[i] = malloc(t->nbytes)) != NULL &&
             tp_st_read_f32(t, bufs[i], ne, err) == TP_OK;
        if (ok && !strstr(t->name, "norm"))
            for (size_t j = 0; j < ne; j++) bufs[i][j] *= k;
        ok = ok && tp_st_writer_add(w, t->name, TP_F32, t->ndim, t->shape, bufs[i], err) == TP_OK;
    }
    char p[700], q[700];
    snprintf(p, sizeof p, "%s/model.safetensors", dst);
    ok = ok && tp_st_writer_meta(w, "format", "pt", err) == TP_OK &&
         tp_st_writer_write(w, p, err) == TP_OK;
    tp_st_writer_free(w);
    for (int i = 0; i < n && bufs; i++) free(bufs[i]);
    free(bufs);
    tp_st_close(m);
    const char *files[] = {"config.json", "tokenizer.json"};
    for (int i = 0; i < 2 && ok; i++) {
        char *data = NULL;
        size_t len = 0;
        snprintf(p, sizeof p, "%s/%s", src, files[i]);
        snprintf(q, sizeof q, "%s/%s", dst, files[i]);
        ok = tp_read_file(p, &data, &len, err) == TP_OK &&
             tp_write_file_atomic(q, data, len, err) == TP_OK;
        free(data);
    }
    return ok;
}

static void test_prompt_tuning_learns_toy_on_sharp_receiver(void) {
    fx f;
    TP_CHECK(fx_open(&f, "prompt_tuning_sharp.db"));
    char src[700], dst[700];
    tp_err err = {0};
    snprintf(src, sizeof src, "%s/models/receiver", tp_test_tmpdir()); /* made by fx_open */
    snprintf(dst, sizeof dst, "%s/models/receiver_x5", tp_test_tmpdir());
    int made = scaled_copy(src, dst, 5.0f, &err);
    TP_CHECKF(made, "receiver x5: %s", err.msg);
    const tp_run_model *m;
    TP_CHECK(made && tp_runner_add_model(f.runner, dst, "sharp_mistral", &m, &err) == TP_OK);

    json_t *spec = fx_bridge_spec(300, 1);
    json_object_set_new(spec, "receiver", json_string("sharp_mistral"));
    json_object_set_new(spec, "bridge", json_string("prompt_tuning"));
    json_object_set_new(spec, "bridge_options", json_pack("{s:i}", "tokens", 16));
    json_object_set_new(spec, "losses", json_pack("{s:i}", "ce", 1));
    json_object_set_new(spec, "lr", json_real(3e-3));
    tp_run_result res;
    tp_status st = tp_runner_run(f.runner, spec, &res, &err);
    TP_CHECKF(st == TP_OK, "prompt_tuning: %s", err.msg);
    double acc = st == TP_OK ? res.accuracy : 0;
    if (st == TP_OK) {
        printf("prompt_tuning on the x5 receiver: held-out toy %.3f (%lld/%lld), loss %.3f -> "
               "%.3f\n",
               acc, (long long)res.n_correct, (long long)res.n, res.first_loss, res.final_loss);
        TP_CHECK(res.n == 64);
        TP_CHECKF(acc >= 0.75, "held-out toy %.3f < 0.75", acc);
    }
    json_decref(spec);

    /* the same receiver reading the same direct prompt without the learned prefix */
    spec = json_pack("{s:s, s:s, s:s, s:{s:i, s:i}}", "baseline", "receiver_direct", "receiver",
                     "sharp_mistral", "task", "toy", "task_options", "n_train", 256, "n_eval", 64);
    st = tp_runner_run(f.runner, spec, &res, &err);
    TP_CHECKF(st == TP_OK, "receiver_direct: %s", err.msg);
    if (st == TP_OK) {
        printf("receiver_direct on the x5 receiver: %.3f\n", res.accuracy);
        TP_CHECKF(res.accuracy <= acc - 0.15,
                  "receiver_direct %.3f is within 0.15 of prompt_tuning's %.3f: the prompt did "
                  "not make the difference",
                  res.accuracy, acc);
    }
    json_decref(spec);
    fx_close(&f);
}

TP_TEST_RUN(TP_CASE(test_prompt_tuning_steers_text_reading),
            TP_CASE(test_prompt_tuning_learns_toy_on_sharp_receiver))
