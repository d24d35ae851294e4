#!/usr/bin/env python3
"""realwidth.py — the real-width golden check: a Llama with Llama-3.1-8B's layer shapes (width
4096, 32/8 heads, intermediate 14336, llama3 RoPE scaling) but 2 layers and a 1024-token vocab,
random bf16 weights, run by HF transformers in f32 on the CPU at positions past 8192.

Usage: python3 realwidth.py MODEL_DIR
Writes MODEL_DIR/{config.json, model.safetensors (bf16, ~0.9 GB), golden.bin}; golden.bin has the
format of make_golden.py with arrays:
  ids, mask, pos i32 [2,12]   row 0: positions 8186..8197 (crossing 8192), no padding;
                              row 1: left-padded (4 pads), positions 16380 + cumsum(mask) - 1
  logits f32 [2,12,V], hidden f32 [3,2,12,4096] (hidden_states 0..2)
  grad_targets i32 [2], grad_loss f32 [1], grad_embeds f32 [2,12,4096], rope_inv_freq f32 [64]
      loss = mean_b CE(logits[b, 11], grad_targets[b]) with inputs_embeds requiring grad
Then tests/model/test_transformer_realwidth (our CPU build) compares against it; see
realwidth.sh for the whole device run.
"""
import copy
import os
import sys

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_golden as mg  # noqa: E402


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: realwidth.py MODEL_DIR")
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    torch.set_num_threads(os.cpu_count() or 1)
    mg.log(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    model = mg.build(LlamaConfig, LlamaForCausalLM,
                     dict(vocab_size=1024, hidden_size=4096, intermediate_size=14336,
                          num_hidden_layers=2, num_attention_heads=32, num_key_value_heads=8,
                          hidden_act="silu", max_position_embeddings=131072, rms_norm_eps=1e-5,
                          tie_word_embeddings=False, attention_bias=False, bos_token_id=1,
                          eos_token_id=2, pad_token_id=0),
                     dict(rope_type="llama3", rope_theta=500000.0, factor=8.0,
                          low_freq_factor=1.0, high_freq_factor=4.0,
                          original_max_position_embeddings=8192))
    mg.randomise(model, 4096, 0.02, torch.bfloat16)
    g = torch.Generator().manual_seed(5)
    B, T = 2, 12
    ids = torch.randint(3, 1024, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, :4] = 0
    ids[1, :4] = 0
    pos = torch.zeros(B, T, dtype=torch.long)
    pos[0] = torch.arange(8186, 8186 + T)
    p1 = mask[1].cumsum(-1) - 1
    pos[1] = torch.where(mask[1] == 1, 16380 + p1, torch.ones_like(p1))
    tgt = torch.randint(3, 1024, (B,), generator=g)
    with torch.no_grad():
        o = model(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True)
    emb = model.get_input_embeddings()(ids).detach().clone().requires_grad_(True)
    lg = model(inputs_embeds=emb, attention_mask=mask, position_ids=pos).logits
    loss = F.cross_entropy(lg[:, T - 1], tgt)
    loss.backward()
    save = copy.deepcopy(model).to(torch.bfloat16)
    try:
        save.save_pretrained(d, safe_serialization=True)
    except TypeError:
        save.save_pretrained(d)
    mg.write_golden(os.path.join(d, "golden.bin"),
                    [("ids", ids), ("mask", mask), ("pos", pos), ("logits", o.logits),
                     ("hidden", torch.stack(o.hidden_states)), ("grad_targets", tgt),
                     ("grad_loss", loss.detach()[None]), ("grad_embeds", emb.grad),
                     ("rope_inv_freq", mg.rope_inv_freq(model))])
    mg.log(f"wrote {d}: loss {loss.item():.6f}, logits |max| {o.logits.abs().max().item():.4f}")


if __name__ == "__main__":
    main()
