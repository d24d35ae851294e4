/* make_tiny.h — random models in Hugging Face layout (config.json, model.safetensors,
 * tokenizer.json) for the offline demo, the tests and the benchmarks.
 *
 * Weights are N(0, 0.02) from the tensor core's Philox RNG, one stream per tensor, so the same
 * (arch, seed, shape) gives the same bytes on any machine; RMSNorm weights are ones. Tiny shapes
 * are f32; the real shapes are bf16 and written streaming, so memory stays a few MB whatever the
 * model size.
 *
 * Shapes (arch must match the shape's family):
 *   tiny (default)   llama:   hidden 64, 4 layers, 4 heads / 2 KV, inter 172, theta 500000 with
 *                             llama3 rope scaling, byte-level BPE vocab 512
 *                    mistral: hidden 96, 4 layers, 6 heads / 2 KV, inter 256, theta 1e6,
 *                             SentencePiece-style BPE vocab 512
 *                    qwen2:   hidden 64, 3 layers, 4 heads / 1 KV, inter 192, theta 1e6, q/k/v
 *                             bias, tied embeddings, byte-level BPE vocab 512
 *   tiny-bf16        any:     the tiny model stored in bf16 (values = the f32 tiny model's,
 *                             rounded to nearest even), for testing bf16 loading
 *   llama-3.1-8b     llama:   Llama-3.1-8B dimensions (4096, 32 layers, 32/8 heads, 14336,
 *                             vocab 128256, llama3 rope scaling), bf16
 *   llama-1b         llama:   Llama-3.2-1B dimensions (2048, 16 layers, 32/8 heads, 8192, vocab
 *                             128256, tied), bf16 — the "1B-scale" CPU benchmark model
 *   mistral-7b       mistral: Mistral-7B-v0.3 dimensions (4096, 32 layers, 32/8 heads, 14336,
 *                             vocab 32768, theta 1e6), bf16
 * A shape may end in ":N" to keep only N layers (e.g. "llama-3.1-8b:2" for a real-width check
 * that fits anywhere). The tokenizer of a real shape is a small one (ids < its vocab); the
 * config's vocab_size is the real one so the embedding has the real shape. */
#ifndef TP_MODEL_MAKE_TINY_H
#define TP_MODEL_MAKE_TINY_H

#include <stdint.h>

#include "telepathy/status.h"

/* arch: "llama" | "mistral" | "qwen2"; shape: NULL/"" = "tiny". Creates dir (and parents). */
tp_status tp_make_tiny(const char *dir, const char *arch, uint64_t seed, const char *shape,
                       tp_err *err);

#endif
