/* cpu_backend.c — the CPU reference backend table (ops.def order). Views have no entry: they
 * are metadata (see tape.c); ACCUM and the optimiser ops have no backward. */
#include "core/cpu.h"

#define FB(name)                                                                                   \
    { tp_cpu_##name##_fwd, tp_cpu_##name##_bwd }

static const tp_backend_fns cpu_table = {
    .name = "cpu",
    .op =
        {
            [TP_OP_COPY] = FB(copy),
            [TP_OP_ACCUM] = {tp_cpu_accum_fwd, NULL},
            [TP_OP_CONCAT] = FB(concat),
            [TP_OP_ADD] = FB(add),
            [TP_OP_SUB] = FB(sub),
            [TP_OP_MUL] = FB(mul),
            [TP_OP_SCALE] = FB(scale),
            [TP_OP_ADD_SCALAR] = FB(add_scalar),
            [TP_OP_SILU] = FB(silu),
            [TP_OP_GELU] = FB(gelu),
            [TP_OP_TANH] = FB(tanh),
            [TP_OP_SWIGLU] = FB(swiglu),
            [TP_OP_DROPOUT] = FB(dropout),
            [TP_OP_MATMUL] = FB(matmul),
            [TP_OP_EMBEDDING] = FB(embedding),
            [TP_OP_RMSNORM] = FB(rmsnorm),
            [TP_OP_LAYERNORM] = FB(layernorm),
            [TP_OP_L2NORM] = FB(l2norm),
            [TP_OP_ROPE] = FB(rope),
            [TP_OP_ATTENTION] = FB(attention),
            [TP_OP_SOFTMAX] = FB(softmax),
            [TP_OP_LOG_SOFTMAX] = FB(log_softmax),
            [TP_OP_SUM] = FB(sum),
            [TP_OP_POOL] = FB(pool),
            [TP_OP_CROSS_ENTROPY] = FB(cross_entropy),
            [TP_OP_VQ] = FB(vq),
            [TP_OP_EXP] = FB(exp),
            [TP_OP_LN] = FB(ln),
            [TP_OP_SIGMOID] = FB(sigmoid),
            [TP_OP_RELU] = FB(relu),
            [TP_OP_DIV] = FB(div),
            [TP_OP_ADAMW] = {tp_cpu_adamw_fwd, NULL},
            [TP_OP_SUMSQ] = {tp_cpu_sumsq_fwd, NULL},
            [TP_OP_ARGMAX] = {tp_cpu_argmax_fwd, NULL},
        },
    .host_accessible = 1,
};

const tp_backend_fns *tp_backend_cpu(void) {
    return &cpu_table;
}
