#!/usr/bin/env python3
"""make_golden.py — golden fixtures for the C transformer, from Hugging Face transformers.

Runs on the GPU machine (torch 2.11, transformers 5.17; the computation itself runs on its CPU in
f32, so no TF32 or GPU kernel choice can blur the reference). Builds three tiny random models,
saves each with save_pretrained (safetensors) and records what the C engine must reproduce:

  llama   LlamaForCausalLM, llama3 rope scaling (theta 5e5, factor 8, orig 8192), saved f32,
          plus a long-position check (position_ids from 8190 and from 100000)
  mistral MistralForCausalLM, sliding_window 4 (sequences of 10, so the window matters),
          head_dim 24 != hidden/heads, saved bf16 (weights are bf16-exact, math in f32)
  qwen2   Qwen2ForCausalLM, q/k/v bias, one KV head, tied embeddings, saved f16 and sharded
          (max_shard_size 64KB: model-0000k-of-0000n.safetensors + model.safetensors.index.json)

Usage:  python3 make_golden.py OUT_DIR       (on the device: python3 tests/golden/models/make_golden.py $OUT)
Writes: OUT_DIR/<name>/{config.json, model*.safetensors [+ index], golden.bin}, OUT_DIR/summary.txt.

golden.bin format (little-endian; llm.c habit of a magic + version):
  char[4]  magic "TPGD"
  u32      version = 1
  u32      n_arrays
  n_arrays times:
    u32 name_len, name bytes (UTF-8, no NUL)
    u32 dtype (0 = f32, 3 = i32; the tp_dtype numbering)
    u32 ndim, i64 dims[ndim]
    data, row-major, prod(dims) * 4 bytes
Arrays (B batch, T time, V vocab, D width, L = num_hidden_layers):
  right_ids i32 [B,T], right_mask i32 [B,T]          right-padded batch, HF default positions
  right_logits f32 [B,T,V], right_hidden f32 [L+1,B,T,D]   (hidden_states[l], l = 0..L)
  left_ids, left_mask, left_pos i32 [B,T]              left-padded batch, mask-derived positions
  left_logits f32 [B,T,V], left_hidden f32 [L+1,B,T,D]
  grad_targets i32 [B], grad_last i32 [B], grad_loss f32 [1], grad_embeds f32 [B,T,D]
      loss = mean_b CE(logits[b, grad_last[b]], grad_targets[b]) on the right-padded batch fed as
      inputs_embeds; grad_embeds = d loss / d inputs_embeds
  gen_ids, gen_mask i32 [Bg,Tg]  left-padded prompts
  gen_noeos i32 [Bg,G]   greedy continuation (model.generate, no EOS), G = max_new_tokens
  gen_eos_id i32 [1], gen_eos i32 [Bg,G2]   same with that EOS (finished rows padded with pad id 0)
  gen_margin f32 [1]     smallest top1 - top2 logit gap seen while decoding (ties would be luck)
  rope_inv_freq f32 [Dh/2]   transformers' RoPE frequencies (after llama3 scaling)
  (llama only) long_ids, long_pos i32 [2,6], long_logits f32 [2,6,V]: positions 8190..8195
      (across the original 8192 context) and 100000..100005
Only positions where the mask is 1 are meaningful in logits / hidden states: HF gives a fully
masked query row a uniform attention, the C engine gives it zeros.
"""
import array
import copy
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F
import transformers
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM)

MAGIC = b"TPGD"
VERSION = 1
PAD = 0
B, T = 3, 10
LENS = [10, 7, 4]
GEN_LENS = [5, 3]
MAX_NEW = 8

log_lines = []


def log(*a):
    s = " ".join(str(x) for x in a)
    print(s, flush=True)
    log_lines.append(s)


def write_golden(path, arrays):
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<II", VERSION, len(arrays)))
        for name, t in arrays:
            t = t.detach().cpu().contiguous()
            if t.dtype in (torch.int64, torch.int32, torch.bool):
                code, t = 3, t.to(torch.int32)
            else:
                code, t = 0, t.to(torch.float32)
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)))
            f.write(nb)
            f.write(struct.pack("<II", code, t.dim()))
            for d in t.shape:
                f.write(struct.pack("<q", d))
            f.write(array.array("i" if code == 3 else "f", t.flatten().tolist()).tobytes())


def llama3_inv_freq(head_dim, theta, factor, lo, hi, orig):
    inv = [theta ** (-(2 * i) / head_dim) for i in range(head_dim // 2)]
    if factor is None:
        return inv
    low_wl, high_wl = orig / lo, orig / hi
    out = []
    for f in inv:
        wl = 2 * math.pi / f
        if wl < high_wl:
            out.append(f)
        elif wl > low_wl:
            out.append(f / factor)
        else:
            s = (orig / wl - lo) / (hi - lo)
            out.append((1 - s) * f / factor + s * f)
    return out


def build(cls_cfg, cls_model, common, rope):
    """Builds the model, trying the transformers 5 (rope_parameters) then the 4.x (rope_theta +
    rope_scaling) config form; keeps the first whose inv_freq matches the formula."""
    hd = common.get("head_dim") or common["hidden_size"] // common["num_attention_heads"]
    want = llama3_inv_freq(hd, rope["rope_theta"], rope.get("factor"), rope.get("low_freq_factor"),
                           rope.get("high_freq_factor"),
                           rope.get("original_max_position_embeddings"))
    forms = []
    rp = dict(rope)
    forms.append(dict(rope_parameters=rp))
    legacy = dict(rope_theta=rope["rope_theta"])
    if rope.get("rope_type", "default") != "default":
        legacy["rope_scaling"] = {k: v for k, v in rope.items() if k != "rope_theta"}
    forms.append(legacy)
    last = None
    for form in forms:
        try:
            cfg = cls_cfg(**common, **form, attn_implementation="eager")
            model = cls_model(cfg).eval()
        except Exception as e:  # a form this transformers version refuses
            last = e
            log(f"  config form {list(form)} refused: {e!r}")
            continue
        log(f"  attention implementation: {getattr(model.config, '_attn_implementation', '?')}")
        rot = [m for m in model.modules() if isinstance(getattr(m, "inv_freq", None),
                                                         torch.Tensor)]
        if not rot:
            raise SystemExit("no module with an inv_freq buffer: cannot verify RoPE; "
                             "update make_golden.py for this transformers version")
        inv = rot[0].inv_freq.double().tolist()
        if len(inv) != len(want):
            log(f"  config form {list(form)}: {len(inv)} frequencies, expected {len(want)}")
            last = RuntimeError("inv_freq length")
            continue
        err = max(abs(a - b) / abs(b) for a, b in zip(inv, want))
        if err < 1e-5:
            log(f"  config form {list(form)} ok (inv_freq rel err {err:.2e})")
            return model
        log(f"  config form {list(form)}: inv_freq mismatch {err:.2e}; trying the next")
        last = RuntimeError("inv_freq mismatch")
    raise SystemExit(f"could not build {cls_model.__name__} with the requested RoPE: {last}")


def rope_inv_freq(model):
    """The float32 inv_freq transformers uses (its pow may differ from libm's by an ulp, which
    matters at large positions; the C test reports any difference)."""
    rot = [m for m in model.modules() if isinstance(getattr(m, "inv_freq", None), torch.Tensor)]
    return rot[0].inv_freq.detach().float().cpu()


def randomise(model, seed, std, store_dtype):
    """Deterministic weights, exact in the stored dtype; frozen (only inputs get gradients)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.requires_grad_(False)
            if "norm" in name:
                v = 1.0 + 0.1 * torch.randn(p.shape, generator=g)
            elif name.endswith("bias"):
                v = 0.1 * torch.randn(p.shape, generator=g)
            else:
                v = std * torch.randn(p.shape, generator=g)
            # weights are exact in the stored dtype, so f32 math on both sides sees the same values
            p.copy_(v.to(store_dtype).to(torch.float32))


def batches(vocab, seed):
    g = torch.Generator().manual_seed(seed)
    seqs = [torch.randint(3, vocab, (n,), generator=g) for n in LENS]
    r_ids = torch.full((B, T), PAD, dtype=torch.long)
    r_mask = torch.zeros((B, T), dtype=torch.long)
    l_ids, l_mask = r_ids.clone(), r_mask.clone()
    for b, s in enumerate(seqs):
        n = len(s)
        r_ids[b, :n], r_mask[b, :n] = s, 1
        l_ids[b, T - n:], l_mask[b, T - n:] = s, 1
    l_pos = l_mask.cumsum(-1) - 1
    l_pos.masked_fill_(l_mask == 0, 1)  # what HF generate does for pads
    gens = [torch.randint(3, vocab, (n,), generator=g) for n in GEN_LENS]
    tg = max(GEN_LENS)
    g_ids = torch.full((len(gens), tg), PAD, dtype=torch.long)
    g_mask = torch.zeros_like(g_ids)
    for b, s in enumerate(gens):
        g_ids[b, tg - len(s):], g_mask[b, tg - len(s):] = s, 1
    tgt = torch.randint(3, vocab, (B,), generator=g)
    return r_ids, r_mask, l_ids, l_mask, l_pos, g_ids, g_mask, tgt


def manual_greedy(model, ids, mask, n_new, eos):
    """Full-recompute greedy with mask-derived positions: the reference HF generate must match."""
    ids, mask = ids.clone(), mask.clone()
    done = torch.zeros(ids.shape[0], dtype=torch.bool)
    out, margin = [], float("inf")
    for _ in range(n_new):
        pos = mask.cumsum(-1) - 1
        pos.masked_fill_(mask == 0, 1)
        with torch.no_grad():
            lg = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1]
        top = lg.topk(2, dim=-1).values
        for b in range(ids.shape[0]):
            if not done[b]:
                margin = min(margin, float(top[b, 0] - top[b, 1]))
        nxt = lg.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
        out.append(nxt)
        if eos is not None:
            done = done | (nxt == eos)
        ids = torch.cat([ids, nxt[:, None]], 1)
        mask = torch.cat([mask, torch.ones_like(nxt)[:, None]], 1)
        if eos is not None and bool(done.all()):
            break
    return torch.stack(out, 1), margin


def hf_generate(model, ids, mask, eos):
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = PAD
    model.generation_config.bos_token_id = None
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=MAX_NEW,
                             do_sample=False, eos_token_id=eos, pad_token_id=PAD)
    return out[:, ids.shape[1]:]


def record(name, model, out_dir, seed, store_dtype, long_check, shard=False):
    cfg = model.config
    vocab, L = cfg.vocab_size, cfg.num_hidden_layers
    r_ids, r_mask, l_ids, l_mask, l_pos, g_ids, g_mask, tgt = batches(vocab, seed + 1)
    arrays = []
    with torch.no_grad():
        o = model(input_ids=r_ids, attention_mask=r_mask, output_hidden_states=True)
        assert len(o.hidden_states) == L + 1, len(o.hidden_states)
        arrays += [("right_ids", r_ids), ("right_mask", r_mask), ("right_logits", o.logits),
                   ("right_hidden", torch.stack(o.hidden_states))]
        o = model(input_ids=l_ids, attention_mask=l_mask, position_ids=l_pos,
                  output_hidden_states=True)
        arrays += [("left_ids", l_ids), ("left_mask", l_mask), ("left_pos", l_pos),
                   ("left_logits", o.logits), ("left_hidden", torch.stack(o.hidden_states))]
    # gradient of a CE loss at the last real position w.r.t. inputs_embeds
    emb = model.get_input_embeddings()(r_ids).detach().clone().requires_grad_(True)
    logits = model(inputs_embeds=emb, attention_mask=r_mask).logits
    last = r_mask.sum(-1) - 1
    loss = F.cross_entropy(logits[torch.arange(B), last], tgt)
    loss.backward()
    arrays += [("grad_targets", tgt), ("grad_last", last), ("grad_loss", loss.detach()[None]),
               ("grad_embeds", emb.grad)]
    # greedy generation, first without EOS, then with an EOS the model really emits
    noeos = hf_generate(model, g_ids, g_mask, None)
    ref, margin = manual_greedy(model, g_ids, g_mask, MAX_NEW, None)
    if not torch.equal(noeos, ref):
        log(f"  WARNING {name}: model.generate {noeos.tolist()} != manual greedy {ref.tolist()}")
    eos = int(noeos[0, 3])
    with_eos = hf_generate(model, g_ids, g_mask, eos)
    ref2, _ = manual_greedy(model, g_ids, g_mask, MAX_NEW, eos)
    if not torch.equal(with_eos, ref2):
        log(f"  WARNING {name}: generate with eos {with_eos.tolist()} != manual {ref2.tolist()}")
    arrays += [("gen_ids", g_ids), ("gen_mask", g_mask), ("gen_noeos", noeos),
               ("gen_eos_id", torch.tensor([eos])), ("gen_eos", with_eos),
               ("gen_margin", torch.tensor([margin]))]
    log(f"  {name}: greedy {noeos.tolist()}, eos {eos} -> {with_eos.tolist()}, "
        f"min top1-top2 margin {margin:.4g}")
    if margin < 1e-3:
        log(f"  WARNING {name}: greedy margin {margin} is too small for a stable golden")
    arrays.append(("rope_inv_freq", rope_inv_freq(model)))
    if long_check:
        g = torch.Generator().manual_seed(seed + 7)
        ids = torch.randint(3, vocab, (2, 6), generator=g)
        pos = torch.stack([torch.arange(8190, 8196), torch.arange(100000, 100006)])
        with torch.no_grad():
            lg = model(input_ids=ids, position_ids=pos).logits
        arrays += [("long_ids", ids), ("long_pos", pos), ("long_logits", lg)]
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    save = copy.deepcopy(model).to(store_dtype)
    kw = dict(max_shard_size="64KB") if shard else {}  # HF's own sharded layout + index.json
    try:
        save.save_pretrained(d, safe_serialization=True, **kw)
    except TypeError:  # transformers 5 always writes safetensors
        save.save_pretrained(d, **kw)
    if shard and not os.path.exists(os.path.join(d, "model.safetensors.index.json")):
        log(f"  WARNING {name}: save_pretrained did not shard; the sharded path is not covered")
    for extra in ("generation_config.json",):
        p = os.path.join(d, extra)
        if os.path.exists(p):
            os.remove(p)  # the C engine reads config.json only; keep the fixture minimal
    write_golden(os.path.join(d, "golden.bin"), arrays)
    sizes = {f: os.path.getsize(os.path.join(d, f)) for f in sorted(os.listdir(d))}
    log(f"  {name}: wrote {sizes}")


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: make_golden.py OUT_DIR")
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    torch.use_deterministic_algorithms(True)
    log(f"torch {torch.__version__}, transformers {transformers.__version__}")
    base = dict(vocab_size=256, hidden_size=64, intermediate_size=112, num_hidden_layers=2,
                hidden_act="silu", max_position_embeddings=131072, bos_token_id=1,
                eos_token_id=2, pad_token_id=PAD, initializer_range=0.02)

    log("llama")
    llama = build(LlamaConfig, LlamaForCausalLM,
                  dict(base, num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
                       tie_word_embeddings=False, attention_bias=False),
                  dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                       high_freq_factor=4.0, original_max_position_embeddings=8192))
    randomise(llama, 11, 0.08, torch.float32)
    record("llama", llama, out_dir, 100, torch.float32, True)

    log("mistral")
    mistral = build(MistralConfig, MistralForCausalLM,
                    dict(base, num_attention_heads=4, num_key_value_heads=2, head_dim=24,
                         rms_norm_eps=1e-6, sliding_window=4, tie_word_embeddings=False,
                         max_position_embeddings=4096),
                    dict(rope_type="default", rope_theta=1000000.0))
    randomise(mistral, 12, 0.08, torch.bfloat16)
    record("mistral", mistral, out_dir, 200, torch.bfloat16, False)

    log("qwen2")
    qwen = build(Qwen2Config, Qwen2ForCausalLM,
                 dict(base, num_attention_heads=4, num_key_value_heads=1, rms_norm_eps=1e-6,
                      tie_word_embeddings=True, use_sliding_window=False,
                      max_position_embeddings=4096),
                 dict(rope_type="default", rope_theta=10000.0))
    randomise(qwen, 13, 0.08, torch.float16)
    record("qwen2", qwen, out_dir, 300, torch.float16, False, shard=True)

    total = 0
    for root, _, files in os.walk(out_dir):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    log(f"total fixture bytes: {total}")
    with open(os.path.join(out_dir, "summary.txt"), "w") as f:
        f.write("\n".join(log_lines) + "\n")


if __name__ == "__main__":
    main()
