#!/usr/bin/env python3
"""peer_torch.py — the PyTorch + transformers side of `telepathy bench`.

Runs the study's latency cases on the same GPU with the same shapes as the C harness, so the
bench table can show the ratio measured in one invocation:
  sender_encode    Llama-3.1-8B forward over a 67-token prompt, hidden states of layer l
  bridge           Perceiver resampler (depth 2, width 4096, 8 heads, M=16) on those states
  receiver_decode  Mistral-7B one forward over [primer][M soft][target] embeddings, last logits
  end_to_end       the three above in sequence
  receiver_direct  Mistral-7B one forward over an ~80-token text prompt, last logits
  text_relay       sender greedily generates 50 tokens (KV cache), receiver classifies the text
  decode_token     one generated token of the sender at a cache of seq + relay_tokens/2 keys
  train_step       batch-8 bridge forward + receiver forward + backward to the soft tokens
                   (receiver weights frozen) + AdamW step on the bridge
Weights are random bf16 (speed does not depend on their values), built on the GPU from the real
configs. Attention uses sdpa. Times are CUDA-event medians after warm-up. Output: one JSON object
per case on stdout and in --out.
"""
import argparse, json, math, os, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F


def llama31_8b_config():
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                       num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                       rms_norm_eps=1e-5, rope_theta=500000.0, max_position_embeddings=131072,
                       rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                     "high_freq_factor": 4.0,
                                     "original_max_position_embeddings": 8192},
                       tie_word_embeddings=False, attn_implementation="sdpa")


def mistral_7b_config():
    from transformers import MistralConfig
    return MistralConfig(vocab_size=32768, hidden_size=4096, intermediate_size=14336,
                         num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                         rms_norm_eps=1e-5, rope_theta=1000000.0, max_position_embeddings=32768,
                         sliding_window=None, tie_word_embeddings=False, attn_implementation="sdpa")


def build(cfg, layers=None):
    from transformers import AutoModelForCausalLM
    if layers:
        cfg.num_hidden_layers = layers
    torch.manual_seed(0)
    with torch.device("cuda"):
        m = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
    m.eval().requires_grad_(False)
    return m


class Block(nn.Module):
    def __init__(s, d, heads, ffn):
        super().__init__()
        s.ln1, s.ln_kv, s.ln2, s.ln3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        s.cross = nn.MultiheadAttention(d, heads, batch_first=True)
        s.self_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        s.ffn = nn.Sequential(nn.Linear(d, ffn * d), nn.GELU(), nn.Linear(ffn * d, d))

    def forward(s, x, h, pad):
        kv = s.ln_kv(h)
        x = x + s.cross(s.ln1(x), kv, kv, key_padding_mask=pad, need_weights=False)[0]
        y = s.ln2(x)
        x = x + s.self_attn(y, y, y, need_weights=False)[0]
        return x + s.ffn(s.ln3(x))


class Perceiver(nn.Module):
    def __init__(s, d_s=4096, d_r=4096, m=16, depth=2, heads=8, ffn=4):
        super().__init__()
        s.latents = nn.Parameter(torch.randn(m, d_r) * 0.02)
        s.proj = nn.Linear(d_s, d_r) if d_s != d_r else nn.Identity()
        s.blocks = nn.ModuleList([Block(d_r, heads, ffn) for _ in range(depth)])
        s.alpha = nn.Parameter(torch.tensor(0.0027))

    def forward(s, h, mask):
        h = s.proj(h)
        x = s.latents.unsqueeze(0).expand(h.shape[0], -1, -1)
        for b in s.blocks:
            x = b(x, h, mask == 0)
        x = x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6).to(x.dtype)
        return x * s.alpha


def timed(fn, warm=3, iters=10):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


def compiled_rows(a, sender, receiver, bridge, emb, ids, mask, prim, tgt, soft0, ell, cases, save):
    """torch.compile peers (inductor, CUDA graphs through mode reduce-overhead) at batch 1."""
    import torch._dynamo
    torch._dynamo.config.cache_size_limit = 64
    cs = torch.compile(sender.model, mode="reduce-overhead", dynamic=False)
    cr = torch.compile(receiver.model, mode="reduce-overhead", dynamic=False)
    cb = torch.compile(bridge, mode="reduce-overhead", dynamic=False)

    def enc():
        with torch.no_grad():
            return cs(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[ell]

    def dec(soft=None):
        with torch.no_grad():
            soft = soft0 if soft is None else soft
            x = torch.cat([emb(prim), soft, emb(tgt)], 1)
            return receiver.lm_head(cr(inputs_embeds=x).last_hidden_state[:, -1])

    def e2e():
        with torch.no_grad():
            return dec(cb(enc(), mask))

    out = []
    for c, fn in (("sender_encode", enc), ("receiver_decode", dec), ("end_to_end", e2e)):
        if c not in cases:
            continue
        t0 = time.time()
        try:
            for _ in range(3):  # compile + graph capture
                fn()
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            ms = timed(fn, warm=2, iters=a.iters)
        except Exception as e:  # a compile failure must not lose the eager rows
            print(json.dumps(dict(impl="torch_compile", case=c, error=str(e)[:300])), flush=True)
            continue
        row = dict(impl="torch_compile", case=c, batch=1, ms=ms, layers=sender.config.num_hidden_layers,
                   peak_mb=torch.cuda.max_memory_allocated() / 2**20, device=torch.cuda.get_device_name(),
                   compile_s=time.time() - t0)
        out.append(row)
        save(out)
        print(json.dumps(row), flush=True)
    return out


def make_train_step(bridge_fn, model_fn, bridge, receiver, emb, h, mask, prim, tgt, opt):
    """The batch-8 train step (bridge + receiver forward, CE over the target positions, backward,
    clip, AdamW) through bridge_fn / model_fn: the modules themselves or their compiled forms."""
    def step():
        soft = bridge_fn(h, mask)
        x = torch.cat([emb(prim), soft, emb(tgt)], 1)
        out = model_fn(inputs_embeds=x)
        logits = receiver.lm_head(out.last_hidden_state[:, -tgt.shape[1] - 1:-1]).float()
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(bridge.parameters(), 1.0)
        opt.step()
    return step


def compiled_train_row(a, bridge, receiver, emb, h, mask, prim, tgt, opt, save):
    """torch.compile (inductor, default mode: training graphs are not CUDA-graphed) of the bridge
    and the receiver in the batch-8 train step; the loss, clip and AdamW as in eager."""
    t0 = time.time()
    cb = torch.compile(bridge, dynamic=False)
    cr = torch.compile(receiver.model, dynamic=False)

    step = make_train_step(cb, cr, bridge, receiver, emb, h, mask, prim, tgt, opt)

    try:
        for _ in range(3):  # compile
            step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        ms = timed(step, warm=2, iters=a.iters)
    except Exception as e:  # a compile failure must not lose the other rows
        print(json.dumps(dict(impl="torch_compile", case="train_step", error=str(e)[:300])), flush=True)
        return []
    row = dict(impl="torch_compile", case="train_step", batch=h.shape[0], ms=ms,
               layers=receiver.config.num_hidden_layers,
               peak_mb=torch.cuda.max_memory_allocated() / 2**20, device=torch.cuda.get_device_name(),
               compile_s=time.time() - t0)
    save([row])
    print(json.dumps(row), flush=True)
    return [row]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--cases", default="sender_encode,bridge,receiver_decode,end_to_end,receiver_direct,text_relay,train_step,attention,decode_token")
    ap.add_argument("--layers", type=int, default=0, help="truncate both models (smoke runs)")
    ap.add_argument("--sender-layer", type=int, default=16)
    ap.add_argument("--seq", type=int, default=67)
    ap.add_argument("--soft", type=int, default=16)
    ap.add_argument("--relay-tokens", type=int, default=50)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--out", default="")
    ap.add_argument("--compile", action="store_true",
                    help="also time torch.compile (mode reduce-overhead) of sender_encode, "
                         "receiver_decode and end_to_end at batch 1, and (inductor) the train step "
                         "at batch 8 (rows with impl torch_compile; compiling two 8B models takes "
                         "minutes)")
    a = ap.parse_args()
    cases = a.cases.split(",")

    def save(rows):
        """--out after every row (atomically), so a run stopped at the bench's deadline keeps
        what it measured"""
        if a.out:
            with open(a.out + ".tmp", "w") as f:
                json.dump(rows, f, indent=1)
            os.replace(a.out + ".tmp", a.out)

    torch.backends.cuda.matmul.allow_tf32 = True
    sender = build(llama31_8b_config(), a.layers or None)
    receiver = build(mistral_7b_config(), a.layers or None)
    bridge = Perceiver(m=a.soft).cuda().to(torch.bfloat16)
    rows = []
    compile_args = train_args = None
    ell = min(a.sender_layer, sender.config.num_hidden_layers)
    for B in [int(x) for x in a.batches.split(",")]:
        g = torch.Generator(device="cuda").manual_seed(B)
        ids = torch.randint(0, 32000, (B, a.seq), device="cuda", generator=g)
        mask = torch.ones(B, a.seq, device="cuda", dtype=torch.long)
        prim = torch.randint(0, 32000, (B, 4), device="cuda", generator=g)
        tgt = torch.randint(0, 32000, (B, 3), device="cuda", generator=g)
        direct = torch.randint(0, 32000, (B, 80), device="cuda", generator=g)
        emb = receiver.get_input_embeddings()

        def sender_encode():
            with torch.no_grad():
                return sender.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[ell]

        h = sender_encode()

        def run_bridge():
            with torch.no_grad():
                return bridge(h, mask)

        def receiver_decode(soft=None):
            with torch.no_grad():
                soft = run_bridge() if soft is None else soft
                x = torch.cat([emb(prim), soft, emb(tgt)], 1)
                out = receiver.model(inputs_embeds=x)
                return receiver.lm_head(out.last_hidden_state[:, -1])

        soft0 = run_bridge()

        def end_to_end():
            with torch.no_grad():
                hh = sender.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[ell]
                return receiver_decode(bridge(hh, mask))

        def receiver_direct():
            with torch.no_grad():
                out = receiver.model(input_ids=direct)
                return receiver.lm_head(out.last_hidden_state[:, -1])

        def text_relay():
            with torch.no_grad():
                gen = sender.generate(input_ids=ids, attention_mask=mask, max_new_tokens=a.relay_tokens,
                                      min_new_tokens=a.relay_tokens, do_sample=False, pad_token_id=0)
                text = torch.remainder(gen[:, a.seq:], 32000)
                out = receiver.model(input_ids=torch.cat([direct[:, :30], text], 1))
                return receiver.lm_head(out.last_hidden_state[:, -1])

        # decode_token: one generated token at a cache of seq + relay_tokens/2 keys, the cache
        # cropped back after each step (as ours rewinds it)
        L0 = a.seq + a.relay_tokens // 2
        tok = torch.randint(0, 32000, (B, 1), device="cuda", generator=g)
        dcache = None
        if "decode_token" in cases and B <= 8:
            from transformers import DynamicCache
            with torch.no_grad():
                dcache = DynamicCache()
                sender(input_ids=torch.randint(0, 32000, (B, L0), device="cuda", generator=g),
                       past_key_values=dcache, use_cache=True)

        def decode_token():
            with torch.no_grad():
                out = sender(input_ids=tok, past_key_values=dcache, use_cache=True)
                dcache.crop(-1)  # back to L0 keys (a positive max length is deprecated)
                return out.logits[:, -1]

        opt = torch.optim.AdamW(bridge.parameters(), lr=2e-4, weight_decay=0.01)

        train_step = make_train_step(bridge, receiver.model, bridge, receiver, emb, h, mask, prim,
                                     tgt, opt)

        cfg_s = sender.config
        Hq, Hkv = cfg_s.num_attention_heads, cfg_s.num_key_value_heads
        Dh = cfg_s.hidden_size // Hq
        aq = torch.randn(B, Hq, a.seq, Dh, device="cuda", dtype=torch.bfloat16, generator=g)
        ak = torch.randn(B, Hkv, a.seq, Dh, device="cuda", dtype=torch.bfloat16, generator=g)
        av = torch.randn(B, Hkv, a.seq, Dh, device="cuda", dtype=torch.bfloat16, generator=g)
        # GQA expanded outside the timing (transformers' repeat_kv does it inside its forward)
        akr, avr = ak.repeat_interleave(Hq // Hkv, 1), av.repeat_interleave(Hq // Hkv, 1)

        def sdpa_with(backend):
            from torch.nn.attention import sdpa_kernel

            def run():
                with torch.no_grad(), sdpa_kernel([backend]):
                    return F.scaled_dot_product_attention(aq, akr, avr, is_causal=True)
            return run

        from torch.nn.attention import SDPBackend
        attention = sdpa_with(SDPBackend.CUDNN_ATTENTION)  # the "torch" row: cuDNN fused attention
        extra_attn = dict(attention_flash=sdpa_with(SDPBackend.FLASH_ATTENTION),
                          attention_efficient=sdpa_with(SDPBackend.EFFICIENT_ATTENTION))

        fns = dict(sender_encode=sender_encode, bridge=run_bridge, receiver_decode=lambda: receiver_decode(soft0),
                   end_to_end=end_to_end, receiver_direct=receiver_direct, text_relay=text_relay,
                   train_step=train_step, attention=attention, decode_token=decode_token)
        if a.compile and B == 1:  # compiled last: minutes of compiling must not cost eager rows
            compile_args = (a, sender, receiver, bridge, emb, ids, mask, prim, tgt, soft0, ell, cases)
        if a.compile and B == 8 and "train_step" in cases:
            train_args = (a, bridge, receiver, emb, h, mask, prim, tgt, opt)
        for c in cases:
            if c not in fns:  # ours only (bridge_graph)
                continue
            if c == "train_step" and B != 8:
                continue
            if c in ("text_relay", "decode_token") and B > 8:
                continue
            torch.cuda.reset_peak_memory_stats()
            iters = max(3, a.iters // 3) if c == "text_relay" else a.iters
            ms = timed(fns[c], warm=2, iters=iters)
            row = dict(impl="torch", case=c, batch=B, ms=ms, layers=sender.config.num_hidden_layers,
                       peak_mb=torch.cuda.max_memory_allocated() / 2**20, device=torch.cuda.get_device_name())
            rows.append(row)
            save(rows)
            print(json.dumps(row), flush=True)
            if c == "attention":  # the other SDPA backends on the same tensors, for the record
                for name, fn in extra_attn.items():
                    try:
                        ms = timed(fn, warm=2, iters=a.iters)
                    except Exception as e:
                        print(json.dumps(dict(impl="torch", case=name, error=str(e)[:200])), flush=True)
                        continue
                    row = dict(impl="torch", case=name, batch=B, ms=ms, device=torch.cuda.get_device_name())
                    rows.append(row)
                    save(rows)
                    print(json.dumps(row), flush=True)
    if compile_args:
        rows += compiled_rows(*compile_args, save=lambda r: save(rows + r))
    if train_args:
        rows += compiled_train_row(*train_args, save=lambda r: save(rows + r))
    save(rows)


if __name__ == "__main__":
    main()
