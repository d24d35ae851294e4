/* test_run_trainer.c — the bridge learns, training is deterministic, and gradients of the whole
 * pipeline match finite differences.
 *
 * learns: toy (2 balanced classes, 64 stratified eval rows, so the majority class scores 0.5)
 * with the Perceiver between the two tiny models. Threshold 0.75 = 48/64: under chance
 * (Binomial(64, 0.5)) P(X >= 48) = 3.9e-5, so passing is not luck; a working bridge reaches
 * 0.85-0.95 here. The loss must fall: the mean of the last 30 steps below 0.6 x the first 30.
 * determinism: the same spec twice (two stores) gives bit-identical per-step losses and the same
 * predictions and scores. gradcheck: d loss / d param of bridge parameters (reached only through
 * the frozen receiver) against central differences, for both CE forms.
 * TP_TEST_SLOW: minutes under the sanitizers at -O0, so `make test-asan` leaves it out.
 */
#include <math.h>

#include "run/run_config.h"
#include "run/trainer.h"
#include "run_fixture.h"

static void test_learns(void) {
    fx f;
    TP_CHECK(fx_open(&f, "learn.db"));
    json_t *spec = fx_bridge_spec(300, 1);
    tp_run_result res;
    tp_err err = {0};
    TP_CHECKF(tp_runner_run(f.runner, spec, &res, &err) == TP_OK, "%s", err.msg);
    const double *l;
    int n = tp_runner_last_losses(f.runner, &l);
    TP_CHECK(n == 300);
    double first = 0, last = 0;
    for (int i = 0; i < 30 && n == 300; i++) {
        first += l[i] / 30;
        last += l[n - 30 + i] / 30;
    }
    printf("toy: accuracy %.3f (n %lld, 95%% CI %.3f..%.3f), loss %.3f -> %.3f\n", res.accuracy,
           (long long)res.n, res.ci_low, res.ci_high, first, last);
    TP_CHECK(res.n == 64);
    TP_CHECKF(res.accuracy >= 0.75, "accuracy %.3f below 0.75", res.accuracy);
    TP_CHECKF(last < 0.6 * first, "loss %.3f -> %.3f did not fall", first, last);
    /* what was recorded */
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM runs WHERE status = 'done'") == 1);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM predictions") == 64);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM metrics WHERE name = 'train/loss'") == 300);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM results WHERE metric LIKE 'accuracy%' AND "
                          "ci_method = 'wilson' AND scheme = 'first_token'") == 3);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM artifacts WHERE kind = 'checkpoint' AND "
                          "length(sha256) = 64") == 4);
    TP_CHECK(fx_count(&f, "SELECT COUNT(*) FROM predictions WHERE length(example_hash) = 64 AND "
                          "length(prompt_hash) = 64 AND length(target_hash) = 64") == 64);
    json_decref(spec);
    fx_close(&f);
}

static void test_deterministic(void) {
    double *loss[2] = {0};
    char *p[2] = {0};
    int n[2] = {0};
    for (int k = 0; k < 2; k++) {
        fx f;
        TP_CHECK(fx_open(&f, k ? "det2.db" : "det1.db"));
        json_t *spec = fx_bridge_spec(25, 7);
        json_object_set_new(spec, "scoring", json_string("loglik"));
        tp_run_result res;
        tp_err err = {0};
        TP_CHECKF(tp_runner_run(f.runner, spec, &res, &err) == TP_OK, "%s", err.msg);
        const double *l;
        n[k] = tp_runner_last_losses(f.runner, &l);
        loss[k] = malloc(sizeof(double) * (size_t)(n[k] + 1));
        memcpy(loss[k], l, sizeof(double) * (size_t)n[k]);
        p[k] = fx_preds(&f);
        json_decref(spec);
        fx_close(&f);
    }
    TP_CHECK(n[0] == 25 && n[1] == 25);
    TP_CHECKF(memcmp(loss[0], loss[1], sizeof(double) * 25) == 0, "losses differ bitwise");
    TP_CHECK(p[0] && p[1] && !strcmp(p[0], p[1]));
    for (int k = 0; k < 2; k++) free(loss[k]), free(p[k]);
}

/* Central differences on a few entries of each parameter, relative to the analytic grad. */
static void gradcheck(const char *scoring) {
    fx f;
    TP_CHECK(fx_open(&f, ""));
    json_t *spec = fx_bridge_spec(1, 3);
    json_object_set_new(spec, "scoring", json_string(scoring));
    json_object_set_new(spec, "bridge_options",
                        json_pack("{s:i, s:i, s:i, s:i, s:s}", "tokens", 2, "depth", 1, "heads", 2,
                                  "width", 16, "alpha_init", "0.5"));
    tp_run_cfg cfg;
    tp_err err = {0};
    TP_CHECKF(tp_run_cfg_resolve(f.runner, spec, &cfg, &err) == TP_OK, "%s", err.msg);
    tp_trainer *t = NULL;
    TP_CHECKF(tp_trainer_new(&t, &cfg, &err) == TP_OK, "%s", err.msg);
    if (!t) return;
    int64_t idx[3] = {0, 1, 2};
    double l0;
    TP_CHECKF(tp_trainer_loss_once(t, idx, 3, 1, &l0, &err) == TP_OK, "%s", err.msg);
    tp_params *ps = tp_trainer_params(t);
    /* copy the analytic grads before the perturbed passes overwrite them */
    int checked = 0, bad = 0;
    float *grads[TP_MAX_PARAMS] = {0};
    for (int i = 0; i < ps->n; i++) {
        int64_t n = tp_numel(ps->p[i]);
        grads[i] = calloc((size_t)n, sizeof(float));
        if (ps->p[i]->grad) memcpy(grads[i], ps->p[i]->grad->data, (size_t)n * sizeof(float));
    }
    for (int i = 0; i < ps->n; i++) {
        tp_tensor *p = ps->p[i];
        int64_t n = tp_numel(p);
        float *g = grads[i];
        for (int s = 0; s < 3; s++) {
            int64_t k = (n * s) / 3 + (s * 7) % (n > 7 ? 7 : 1);
            if (k >= n) k = n - 1;
            float *w = (float *)p->data + k, w0 = *w;
            const double h = 1e-2;
            double lp, lm;
            *w = (float)(w0 + h);
            tp_trainer_loss_once(t, idx, 3, 0, &lp, &err);
            *w = (float)(w0 - h);
            tp_trainer_loss_once(t, idx, 3, 0, &lm, &err);
            *w = w0;
            double fd = (lp - lm) / (2 * h), an = g[k];
            double tol = 2e-3 + 0.05 * fabs(fd);
            checked++;
            if (fabs(fd - an) > tol) {
                bad++;
                fprintf(stderr, "%s: %s[%lld]: analytic %.6g vs numeric %.6g\n", scoring, p->name,
                        (long long)k, an, fd);
            }
        }
        free(g);
    }
    printf("%s: %d entries of %d parameters checked, loss %.5f\n", scoring, checked, ps->n, l0);
    TP_CHECK(checked > 30);
    TP_CHECKF(bad == 0, "%d gradient entries differ from finite differences", bad);
    tp_trainer_free(t);
    tp_run_cfg_free(&cfg);
    json_decref(spec);
    fx_close(&f);
}

static void test_gradcheck_first_token(void) {
    gradcheck("first_token");
}

static void test_gradcheck_sequence(void) {
    gradcheck("loglik"); /* trains with the sequence CE over label tokens + EOS */
}

TP_TEST_RUN(TP_CASE(test_learns), TP_CASE(test_deterministic), TP_CASE(test_gradcheck_first_token),
            TP_CASE(test_gradcheck_sequence))
