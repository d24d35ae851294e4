#!/usr/bin/env python3
"""perceiver_ref.py — a second, dependency-free reference for tests/plugin/test_perceiver.c.

The perceiver bridge of STUDY.md written again in plain Python floats (float64), with
torch.nn.MultiheadAttention's semantics spelled out (q/k/v/out projections with biases, heads
as contiguous column blocks, scale 1/sqrt(head_dim), padded keys excluded), LayerNorm eps 1e-5
on the queries only, exact-erf GELU, RMS-normalise (eps 1e-6) x alpha. Gradients are central
finite differences in float64 (step 1e-6), accurate to ~1e-9 on these tiny shapes. Writes
perceiver_ref_<config>.safetensors in the layout perceiver_golden.py (the PyTorch reference)
uses. Needs nothing but Python 3; takes ~40 s. Usage:
    python3 tests/plugin/golden/perceiver_ref.py [OUT_DIR]   (default: this script's folder)
"""
import json
import math
import os
import random
import struct
import sys

CONFIGS = {
    # name: (d_s, d_r, options, B, T, lens)
    "direct": (6, 8, dict(tokens=3, depth=2, heads=2, ffn_mult=2, width=0, alpha=0.7), 2, 5, [5, 3]),
    "projected": (6, 8, dict(tokens=2, depth=1, heads=2, ffn_mult=2, width=4, alpha=0.5), 3, 4,
                  [2, 4, 1]),
}


def linear(rows, w, b, n_out, n_in):
    return [[sum(w[o * n_in + i] * x[i] for i in range(n_in)) + b[o] for o in range(n_out)]
            for x in rows]


def layernorm(x, w, b):
    n = len(x)
    mean = sum(x) / n
    var = sum((t - mean) ** 2 for t in x) / n
    r = 1 / math.sqrt(var + 1e-5)
    return [(x[i] - mean) * r * w[i] + b[i] for i in range(n)]


def attention(q_in, kv_in, key_mask, p, pre, width, heads):
    dh = width // heads
    q = linear(q_in, p[pre + ".q.weight"], p[pre + ".q.bias"], width, width)
    k = linear(kv_in, p[pre + ".k.weight"], p[pre + ".k.bias"], width, width)
    v = linear(kv_in, p[pre + ".v.weight"], p[pre + ".v.bias"], width, width)
    out = [[0.0] * width for _ in q_in]
    for t in range(len(q_in)):
        for h in range(heads):
            cols = range(h * dh, (h + 1) * dh)
            keys = [s for s in range(len(kv_in)) if key_mask is None or key_mask[s] != 0]
            score = {s: sum(q[t][c] * k[s][c] for c in cols) / math.sqrt(dh) for s in keys}
            top = max(score.values())
            e = {s: math.exp(score[s] - top) for s in keys}
            z = sum(e.values())
            for c in cols:
                out[t][c] = sum(e[s] / z * v[s][c] for s in keys)
    return linear(out, p[pre + ".out.weight"], p[pre + ".out.bias"], width, width)


def add(a, b):
    return [[x + y for x, y in zip(ra, rb)] for ra, rb in zip(a, b)]


def forward(p, d_s, d_r, o, h, mask):
    w = o["width"] or d_r
    m = o["tokens"]
    soft = []
    for b in range(len(h)):
        kv = linear(h[b], p["input_proj.weight"], p["input_proj.bias"], w, d_s) if d_s != w else h[b]
        x = [p["latents"][i * w:(i + 1) * w] for i in range(m)]
        for i in range(o["depth"]):
            pre = f"blocks.{i}"
            xn = [layernorm(r, p[pre + ".ln1.weight"], p[pre + ".ln1.bias"]) for r in x]
            x = add(x, attention(xn, kv, mask[b], p, pre + ".cross", w, o["heads"]))
            xn = [layernorm(r, p[pre + ".ln2.weight"], p[pre + ".ln2.bias"]) for r in x]
            x = add(x, attention(xn, xn, None, p, pre + ".self", w, o["heads"]))
            xn = [layernorm(r, p[pre + ".ln3.weight"], p[pre + ".ln3.bias"]) for r in x]
            f = o["ffn_mult"] * w
            hid = linear(xn, p[pre + ".ffn.0.weight"], p[pre + ".ffn.0.bias"], f, w)
            hid = [[0.5 * u * (1 + math.erf(u / math.sqrt(2))) for u in r] for r in hid]
            x = add(x, linear(hid, p[pre + ".ffn.2.weight"], p[pre + ".ffn.2.bias"], w, f))
        if w != d_r:
            x = linear(x, p["output_proj.weight"], p["output_proj.bias"], d_r, w)
        soft.append([[t * p["alpha"][0] / math.sqrt(sum(u * u for u in r) / len(r) + 1e-6)
                      for t in r] for r in x])
    return soft


def shapes_of(d_s, d_r, o):
    w = o["width"] or d_r
    f = o["ffn_mult"] * w
    s = {"latents": [o["tokens"], w]}
    if d_s != w:
        s["input_proj.weight"], s["input_proj.bias"] = [w, d_s], [w]
    for i in range(o["depth"]):
        pre = f"blocks.{i}"
        for ln in ("ln1", "ln2", "ln3"):
            s[f"{pre}.{ln}.weight"], s[f"{pre}.{ln}.bias"] = [w], [w]
        for att in ("cross", "self"):
            for part in ("q", "k", "v", "out"):
                s[f"{pre}.{att}.{part}.weight"], s[f"{pre}.{att}.{part}.bias"] = [w, w], [w]
        s[pre + ".ffn.0.weight"], s[pre + ".ffn.0.bias"] = [f, w], [f]
        s[pre + ".ffn.2.weight"], s[pre + ".ffn.2.bias"] = [w, f], [w]
    if w != d_r:
        s["output_proj.weight"], s["output_proj.bias"] = [d_r, w], [d_r]
    s["alpha"] = [1]
    return s


def flat(x):
    while x and isinstance(x[0], list):
        x = [v for row in x for v in row]
    return x


def write_safetensors(path, tensors, shapes, meta):
    header, data = {}, b""
    for name in sorted(tensors):
        raw = struct.pack("<%df" % len(tensors[name]), *tensors[name])
        header[name] = {"dtype": "F32", "shape": shapes[name],
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    header["__metadata__"] = meta
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as fp:
        fp.write(struct.pack("<Q", len(text)) + text + data)


def make(name, d_s, d_r, o, batch, steps, lens, out_dir):
    rng = random.Random(5)
    uni = lambda n, a: [a * (2 * rng.random() - 1) for _ in range(n)]
    shapes = shapes_of(d_s, d_r, o)
    p = {k: uni(math.prod(s), 0.6) for k, s in shapes.items()}
    p["alpha"] = [o["alpha"]]
    for k in p:  # LayerNorm weights near 1, not all equal
        if ".ln" in k and k.endswith("weight"):
            p[k] = [1 + 0.2 * t for t in p[k]]
    h = [[uni(d_s, 1.5) for _ in range(steps)] for _ in range(batch)]
    mask = [[1.0 if t < n else 0.0 for t in range(steps)] for n in lens]
    soft = forward(p, d_s, d_r, o, h, mask)
    r = [[uni(d_r, 1.0) for _ in range(o["tokens"])] for _ in range(batch)]
    rf = flat(r)

    def loss():
        return sum(a * b for a, b in zip(flat(forward(p, d_s, d_r, o, h, mask)), rf))

    grads = {}
    for k in p:
        g = []
        for i in range(len(p[k])):
            keep = p[k][i]
            p[k][i] = keep + 1e-6
            lp = loss()
            p[k][i] = keep - 1e-6
            lm = loss()
            p[k][i] = keep
            g.append((lp - lm) / 2e-6)
        grads["grad." + k] = g
    tensors = {**p, **grads, "input.h": flat(h), "input.mask": flat(mask), "input.r": rf,
               "output.soft": flat(soft)}
    all_shapes = {**shapes, **{"grad." + k: v for k, v in shapes.items()},
                  "input.h": [batch, steps, d_s], "input.mask": [batch, steps],
                  "input.r": [batch, o["tokens"], d_r], "output.soft": [batch, o["tokens"], d_r]}
    opts = (f"tokens={o['tokens']},depth={o['depth']},heads={o['heads']},"
            f"ffn_mult={o['ffn_mult']},width={o['width']},alpha_init={o['alpha']}")
    meta = {"options": opts, "d_sender": str(d_s), "d_receiver": str(d_r),
            "reference": "perceiver_ref.py (pure Python float64, finite-difference gradients)"}
    path = os.path.join(out_dir, f"perceiver_ref_{name}.safetensors")
    write_safetensors(path, tensors, all_shapes, meta)
    print(path)


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    for cname, (d_s, d_r, o, b, t, lens) in CONFIGS.items():
        make(cname, d_s, d_r, o, b, t, lens, out)
