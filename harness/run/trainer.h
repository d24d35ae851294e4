/* trainer.h — one bridge run's training loop (DESIGN.md "The data path"): sender forward without
 * grad at layer l, bridge forward, receiver input [primer][M soft][target] as embeddings,
 * receiver forward with the tape, weighted sum of the loss plugins, backward to the soft tokens
 * and the bridge parameters, global-norm clipping, AdamW with the schedule, periodic quick eval,
 * checkpoints (recorded as artifacts with sha256) and resume from the last one.
 *
 * Generation tasks (gsm8k, passkey): the target is the example's answer text as it continues the
 * primer, then EOS ([primer][M soft][answer], -100 elsewhere), trained with the sequence CE; the
 * scorer generates and the runner extracts (gen_eval.h). Classifier bridges and losses that need
 * label first tokens are refused there. The bridge_out's scalar metrics are logged per step as
 * bridge/<name> (alpha, vq_perplexity, vq_dead_codes, fsq_unique, t_mean, ...).
 *
 * Determinism: parameter init draws from Philox streams of the run seed (in the bridge), the
 * data order of epoch e is a Philox permutation of (seed, e), so the batch of step s is a pure
 * function of (seed, s) and a resumed run sees exactly the batches the uninterrupted one saw.
 * Checkpoints also hold the bridge's hidden state (bridge.h state_size/save_state/load_state:
 * a dropout RNG position, EMA weights, usage counters), so a resume continues bit-identically
 * with dropout and EMA too; a checkpoint lacking a state the bridge keeps, or holding one of
 * another size, is an error naming the file. */
#ifndef TP_RUN_TRAINER_H
#define TP_RUN_TRAINER_H

#include "run/evaluator.h"
#include "run/run_config.h"

typedef struct tp_trainer tp_trainer;

/* Hooks the runner supplies for recording; any may be NULL. */
typedef struct tp_train_sink {
    void *user;
    tp_status (*metrics)(void *user, const char *const *names, const double *values,
                         const int64_t *steps, int n, tp_err *err);
    /* a checkpoint file was written (path, step) */
    tp_status (*checkpoint)(void *user, const char *path, int step, tp_err *err);
    /* quick evaluation at step (every cfg->eval_every steps) */
    tp_status (*quick_eval)(void *user, int step, double *accuracy, tp_err *err);
} tp_train_sink;

tp_status tp_trainer_new(tp_trainer **out, tp_run_cfg *cfg, tp_err *err);
void tp_trainer_free(tp_trainer *t);

/* Loads a checkpoint written by this trainer for the same config; training continues after its
 * step. prior_losses[0..step) are the totals logged before the interruption (from the store). */
tp_status tp_trainer_resume(tp_trainer *t, const char *ckpt_path, const double *prior_losses,
                            int n_prior, int *step, tp_err *err);

/* Trains from the current step to cfg->steps. ckpt_dir: where step_<s>.safetensors go (created). */
tp_status tp_trainer_train(tp_trainer *t, const char *ckpt_dir, const tp_train_sink *sink,
                           int progress, tp_err *err);

/* A scorer whose prefix is the trained bridge's [primer][soft tokens] (eval mode). */
void tp_trainer_scorer(tp_trainer *t, tp_scorer *s);
tp_ctx *tp_trainer_ctx(tp_trainer *t);

/* Total loss per step so far ([0, steps_done)). */
int tp_trainer_losses(const tp_trainer *t, const double **losses);

/* Test hook: the total loss of one batch (rows idx[0..B)) in training mode, and its backward, so
 * a gradient check can perturb parameters. Grads are zeroed first. */
tp_status tp_trainer_loss_once(tp_trainer *t, const int64_t *idx, int B, int do_backward,
                               double *loss, tp_err *err);
tp_params *tp_trainer_params(tp_trainer *t);

#endif
