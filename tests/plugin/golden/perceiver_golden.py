#!/usr/bin/env python3
"""perceiver_golden.py — golden values for tests/plugin/test_perceiver.c from PyTorch.

An independent implementation of the perceiver bridge as STUDY.md describes it, built from
torch.nn.MultiheadAttention / LayerNorm / GELU (the modules the study's PyTorch code used), run in
float64 on the CPU. For each configuration it writes one safetensors file holding:
  <param name>        every parameter under the C plugin's names (MHA in_proj split into q/k/v)
  input.h, input.mask, input.r   sender states [B,T,d_s], mask [B,T] (1 = token), weights [B,M,d_r]
  output.soft         the soft tokens [B,M,d_r]
  grad.<param name>   d sum(soft * r) / d param
and metadata: options (the plugin's k=v list), d_sender, d_receiver.
Values are stored as F32 (computed in float64). Parameters are perturbed from their init so
LayerNorm weights are not all 1 and attention is not uniform.

The committed perceiver_torch_*.safetensors were written with Debian 12's python3-torch 1.13
(CPU, float64; `apt-get install python3-torch`, then /usr/bin/python3). Any torch version should
reproduce them to float32 rounding, since the random draws only set the test point.

Run (anywhere with torch; the safetensors package is optional):
    OUT=/some/dir python3 tests/plugin/golden/perceiver_golden.py
then copy $OUT/perceiver_torch_*.safetensors into tests/plugin/golden/.
"""
import json
import os
import struct

import torch
from torch import nn

try:
    from safetensors.torch import save_file
except ImportError:  # e.g. Debian's python3-torch without python3-safetensors

    def save_file(tensors, path, metadata=None):
        """The safetensors layout for F32 tensors: u64 header length, JSON header, raw data."""
        header, chunks, off = {}, [], 0
        for name in sorted(tensors):
            raw = tensors[name].numpy().astype("<f4").tobytes()
            header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                            "data_offsets": [off, off + len(raw)]}
            chunks.append(raw)
            off += len(raw)
        if metadata:
            header["__metadata__"] = metadata
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * ((8 - len(text) % 8) % 8)
        with open(path, "wb") as fp:
            fp.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))

CONFIGS = {
    # name: (d_s, d_r, options, B, T, lens)
    "direct": (6, 8, dict(tokens=3, depth=2, heads=2, ffn_mult=2, width=0, alpha=0.7), 2, 5, [5, 3]),
    "projected": (6, 8, dict(tokens=2, depth=1, heads=2, ffn_mult=2, width=4, alpha=0.5), 3, 4,
                  [2, 4, 1]),
}


class Block(nn.Module):
    def __init__(self, w, heads, ffn_mult):
        super().__init__()
        self.ln1 = nn.LayerNorm(w)
        self.cross = nn.MultiheadAttention(w, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(w)
        self.self_attn = nn.MultiheadAttention(w, heads, batch_first=True)
        self.ln3 = nn.LayerNorm(w)
        self.ffn = nn.Sequential(nn.Linear(w, ffn_mult * w), nn.GELU(), nn.Linear(ffn_mult * w, w))

    def forward(self, x, kv, pad):
        q = self.ln1(x)  # only the queries are normed; keys/values are the sender states
        x = x + self.cross(q, kv, kv, key_padding_mask=pad, need_weights=False)[0]
        q = self.ln2(x)
        x = x + self.self_attn(q, q, q, need_weights=False)[0]
        return x + self.ffn(self.ln3(x))


class Perceiver(nn.Module):
    def __init__(self, d_s, d_r, tokens, depth, heads, width, ffn_mult, alpha):
        super().__init__()
        w = width or d_r
        self.latents = nn.Parameter(torch.randn(tokens, w) * 0.02)
        self.input_proj = nn.Linear(d_s, w) if d_s != w else None
        self.blocks = nn.ModuleList(Block(w, heads, ffn_mult) for _ in range(depth))
        self.output_proj = nn.Linear(w, d_r) if w != d_r else None
        self.alpha = nn.Parameter(torch.tensor([float(alpha)]))

    def forward(self, h, mask):
        kv = self.input_proj(h) if self.input_proj is not None else h
        x = self.latents.unsqueeze(0).expand(h.shape[0], -1, -1)
        pad = mask == 0  # True = ignore
        for b in self.blocks:
            x = b(x, kv, pad)
        if self.output_proj is not None:
            x = self.output_proj(x)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.alpha


def c_names(model):
    """(C name, tensor getter) pairs: MHA in_proj rows [0:w] q, [w:2w] k, [2w:3w] v."""
    out = []
    for name, p in model.named_parameters():
        parts = name.split(".")
        if len(parts) >= 3 and parts[0] == "blocks" and parts[2] in ("cross", "self_attn"):
            pre = f"blocks.{parts[1]}.{'cross' if parts[2] == 'cross' else 'self'}"
            leaf = ".".join(parts[3:])
            w = p.shape[0] // 3 if leaf.startswith("in_proj") else None
            if leaf == "in_proj_weight" or leaf == "in_proj_bias":
                kind = "weight" if leaf.endswith("weight") else "bias"
                for i, qkv in enumerate("qkv"):
                    out.append((f"{pre}.{qkv}.{kind}", p, slice(i * w, (i + 1) * w)))
            elif leaf.startswith("out_proj."):
                out.append((f"{pre}.out.{leaf.split('.')[1]}", p, None))
            else:
                raise SystemExit(f"unexpected parameter {name}")
        else:
            out.append((name, p, None))
    return out


def main():
    out_dir = os.environ.get("OUT", ".")
    os.makedirs(out_dir, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    for cname, (d_s, d_r, o, B, T, lens) in CONFIGS.items():
        torch.manual_seed(1234)
        m = Perceiver(d_s, d_r, o["tokens"], o["depth"], o["heads"], o["width"], o["ffn_mult"],
                      o["alpha"])
        with torch.no_grad():
            for name, p in m.named_parameters():
                if name == "alpha":
                    continue
                scale = 3.0 if "in_proj_weight" in name else 1.0  # sharpen attention
                p.mul_(scale).add_(0.05 * (2 * torch.rand_like(p) - 1))
        h = 1.5 * (2 * torch.rand(B, T, d_s) - 1)
        mask = torch.tensor([[1.0 if t < n else 0.0 for t in range(T)] for n in lens])
        soft = m(h, mask)
        r = 2 * torch.rand_like(soft) - 1
        (soft * r).sum().backward()
        tensors = {"input.h": h, "input.mask": mask, "input.r": r, "output.soft": soft.detach()}
        for name, p, sl in c_names(m):
            v, g = (p.detach(), p.grad) if sl is None else (p.detach()[sl], p.grad[sl])
            tensors[name] = v
            tensors["grad." + name] = g
        tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()}
        opts = (f"tokens={o['tokens']},depth={o['depth']},heads={o['heads']},"
                f"ffn_mult={o['ffn_mult']},width={o['width']},alpha_init={o['alpha']}")
        meta = {"options": opts, "d_sender": str(d_s), "d_receiver": str(d_r),
                "torch": torch.__version__}
        path = os.path.join(out_dir, f"perceiver_torch_{cname}.safetensors")
        save_file(tensors, path, metadata=meta)
        print(f"{path}: {len(tensors)} tensors, soft {list(soft.shape)}")


if __name__ == "__main__":
    main()
