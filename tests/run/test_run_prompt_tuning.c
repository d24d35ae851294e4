/* test_run_prompt_tuning.c — the prompt-tuning baseline (plugins/bridges/prompt_tuning.c,
 * flag RECEIVER_TEXT) trained through the real trainer between the two tiny models
 * (tests/run/run_fixture.h): its soft prompt steers how the frozen receiver reads each
 * example's text.
 *
 * What is tested: on a fixed balanced batch of 8 toy examples (n_train = batch = 8, so every
 * step sees the same 4 + 4 examples), the task loss (ce only) falls below ln 2. A soft prompt
 * is the same for every example, so a receiver that did not read the text would give every
 * example the same two label probabilities, and a balanced batch's CE is then >= ln 2 = 0.693;
 * below it, the prompt has moved the receiver's example-dependent (text-dependent) outputs
 * toward the labels. Seen (seeds 1-4, M 16, lr 3e-3): 0.69 at the start, 0.615-0.62 from step
 * ~120 on (a plateau: the prompt's reach into this receiver is small).
 *
 * What is NOT tested, and why: that prompt tuning learns held-out toy above chance, as the
 * other bridges do in test_run_bridges_toy.c. It does not, and no honest setting found makes
 * it. Why (an explanation from the weight scale, not a measurement): the tiny receiver is
 * random (weights N(0, 0.02), RMSNorm before every block), so its attention logits stay small
 * (near-uniform attention) and its label logits are close to a fixed random bag-of-tokens
 * readout of the context. A soft prefix sits before the text (causal: it cannot see it) and
 * can add an offset to that readout and damp it, but hardly change which keywords count for
 * which label. Measured on held-out toy (64 rows, 300 steps unless said):
 *   M 4, lr 2e-3: 0.55; M 4, lr 2e-2 / 0.1 / 0.3: 0.52 / 0.52 / 0.50;
 *   length 5 (keywords a larger share of the text), M 16 or 64, lr 1e-2 or 0.1: 0.50;
 *   length 5, M 4, lr 1e-2, receiver seeds 2-7 (make-tiny mistral): 0.50-0.55;
 *   length 5, M 16, lr 3e-3, 1,200 steps: 0.66 (ce + diversity 0.1: 0.80 -> 0.74);
 *   the trained stories260K (llama2.c, imported) as receiver, M 4, lr 3e-3 / 3e-2: 0.52 / 0.55.
 *   make-tiny llama or qwen2 (tied embeddings) as receiver, seeds 1 and 3, M 16, lr 3e-3,
 *   ce only: 0.50-0.52 (ce 0.70 -> 0.68-0.70);
 * Receiver seeds 8 and 9, whose own readout separates the eval rows best (best-threshold
 * accuracy of receiver_direct's scores 0.83 / 0.72, chosen in-sample), still give 0.45-0.48.
 * A receiver trained on toy text would be needed; the harness has no receiver fine-tuning (by
 * design: the models are frozen). TP_TEST_SLOW: ~15 s optimised. */
#include <math.h>

#include "run_fixture.h"

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

TP_TEST_RUN(TP_CASE(test_prompt_tuning_steers_text_reading))
