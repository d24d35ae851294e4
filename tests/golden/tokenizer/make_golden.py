#!/usr/bin/env python3
"""make_golden.py — golden token ids from the Python reference libraries (GPU machine).

Inputs (carried in .carry/tok/, written by extract_texts.py here):
  texts.jsonl, bench_sst2.jsonl, llama-3.1-8b/tokenizer.json,
  mistral-7b-instruct-v0.3/tokenizer.model
and the committed tiny tokenizers in tests/golden/tokenizer/tiny/*.json.
Outputs into $OUT (copy the *.golden.jsonl files into tests/golden/tokenizer/):
  llama31.golden.jsonl        HF `tokenizers` on the Llama 3.1 tokenizer.json
  mistral_sp.golden.jsonl     `sentencepiece` on the Mistral v0.3 tokenizer.model (BOS + ids)
  mistral_hf.golden.jsonl     transformers' fast tokenizer built from that tokenizer.model
                              (what LlamaTokenizerFast / AutoTokenizer give; legacy default)
  mistral_hf_nonlegacy.golden.jsonl  the same with legacy=False, when transformers accepts it
  mistral_hf_tokenizer.json   the tokenizer.json transformers derived (for inspection / tests)
  tiny_*.golden.jsonl         HF `tokenizers` on each tiny tokenizer (proves they load in HF)
  bench_hf.json               HF tokenizers single-threaded on the 10,000 SST-2 sentences
  report.txt                  versions, differences between sentencepiece and transformers
Fixture format: line 1 a header object (format "telepathy-tokenizer-golden", version 1, name,
tokenizer, generator, add_special_tokens, n, texts_sha256[, tokenizer_sha256]); then one object
per text: sha256 (of the UTF-8 text), ids (with BOS, add_special_tokens=True), dec / dec_raw
(first 16 hex digits of sha256 of decode(ids, skip_special_tokens=True / False)).

Usage: OUT=/some/dir python3 tests/golden/tokenizer/make_golden.py [.carry/tok] [tiny dir]
"""
import glob
import hashlib
import json
import os
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
CARRY = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", ".carry", "tok")
TINY = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "tiny")
OUT = os.environ.get("OUT") or sys.exit("make_golden.py: set OUT to the output folder")
os.makedirs(OUT, exist_ok=True)
report = []


def log(*a):
    s = " ".join(str(x) for x in a)
    print(s, flush=True)
    report.append(s)


def sha(s):
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def read_jsonl(p):
    with open(p, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


raw = open(os.path.join(CARRY, "texts.jsonl"), "rb").read()
texts_sha = hashlib.sha256(raw).hexdigest()
texts = read_jsonl(os.path.join(CARRY, "texts.jsonl"))
log(f"{len(texts)} texts, sha256 {texts_sha}")


def write_fixture(name, tokenizer, generator, rows, extra=None):
    head = {"format": "telepathy-tokenizer-golden", "version": 1, "name": name,
            "tokenizer": tokenizer, "generator": generator, "add_special_tokens": True,
            "n": len(rows), "texts_sha256": texts_sha}
    head.update(extra or {})
    with open(os.path.join(OUT, name + ".golden.jsonl"), "w", encoding="utf-8") as f:
        f.write(json.dumps(head, separators=(",", ":")) + "\n")
        for r in rows:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")
    log(f"{name}: {len(rows)} rows")


def hf_rows(tok):
    rows = []
    for t in texts:
        ids = tok.encode(t, add_special_tokens=True).ids
        rows.append({"sha256": sha(t), "ids": ids,
                     "dec": sha(tok.decode(ids, skip_special_tokens=True))[:16],
                     "dec_raw": sha(tok.decode(ids, skip_special_tokens=False))[:16]})
    return rows


import tokenizers  # noqa: E402

log("tokenizers", tokenizers.__version__)
llama = tokenizers.Tokenizer.from_file(os.path.join(CARRY, "llama-3.1-8b/tokenizer.json"))
write_fixture("llama31", "llama-3.1-8b/tokenizer.json", f"tokenizers {tokenizers.__version__}",
              hf_rows(llama))

for f in sorted(glob.glob(os.path.join(TINY, "*.json"))):
    name = os.path.basename(f)[:-5]
    fsha = hashlib.sha256(open(f, "rb").read()).hexdigest()
    write_fixture(name, os.path.basename(f), f"tokenizers {tokenizers.__version__}",
                  hf_rows(tokenizers.Tokenizer.from_file(f)), {"tokenizer_sha256": fsha})

# ---- benchmark: HF tokenizers, one thread, same sentences as the C benchmark --------------
bench = read_jsonl(os.path.join(CARRY, "bench_sst2.jsonl"))
res = {"n_sentences": len(bench), "tokenizers": tokenizers.__version__}
for _ in range(2):  # warm-up pass fills HF's word cache like ours
    t0 = time.perf_counter()
    n_tok = sum(len(llama.encode(s, add_special_tokens=True).ids) for s in bench)
    res.setdefault("encode_loop_s", []).append(time.perf_counter() - t0)
res["n_tokens"] = n_tok
t0 = time.perf_counter()
llama.encode_batch(bench, add_special_tokens=True)
res["encode_batch_1thread_s"] = time.perf_counter() - t0
t0 = time.perf_counter()
tokenizers.Tokenizer.from_file(os.path.join(CARRY, "llama-3.1-8b/tokenizer.json"))
res["load_s"] = time.perf_counter() - t0
try:
    res["cpu"] = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
except Exception:
    pass
json.dump(res, open(os.path.join(OUT, "bench_hf.json"), "w"), indent=1)
log("bench:", json.dumps(res))

# ---- Mistral: sentencepiece and transformers --------------------------------------------
model = os.path.join(CARRY, "mistral-7b-instruct-v0.3/tokenizer.model")
sp_ids = None
try:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=model)
    rows, sp_ids = [], []
    for t in texts:
        ids = [sp.bos_id()] + sp.encode(t)
        sp_ids.append(ids)
        rows.append({"sha256": sha(t), "ids": ids, "dec": sha(sp.decode(ids[1:]))[:16]})
    write_fixture("mistral_sp", "mistral-7b-instruct-v0.3/tokenizer.model",
                  f"sentencepiece {spm.__version__}", rows)
except Exception as e:  # keep going: the other fixtures are still useful
    log("sentencepiece failed:", repr(e))


def transformers_fixture(name, legacy):
    import transformers
    from transformers import AutoTokenizer

    d = os.path.join(OUT, "_mistral_model_dir")
    os.makedirs(d, exist_ok=True)
    import shutil

    shutil.copyfile(model, os.path.join(d, "tokenizer.model"))
    cfg = {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
           "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False}
    if legacy is not None:
        cfg["legacy"] = legacy
    json.dump(cfg, open(os.path.join(d, "tokenizer_config.json"), "w"))
    tok = AutoTokenizer.from_pretrained(d)
    log(f"{name}: {type(tok).__name__}, transformers {transformers.__version__}, legacy={legacy}")
    backend = getattr(tok, "backend_tokenizer", None) or getattr(tok, "_tokenizer", None)
    if backend is not None and legacy is None:
        backend.save(os.path.join(OUT, "mistral_hf_tokenizer.json"))
        j = json.loads(backend.to_str())
        log("  normalizer:", json.dumps(j.get("normalizer")))
        log("  pre_tokenizer:", json.dumps(j.get("pre_tokenizer")))
        log("  decoder:", json.dumps(j.get("decoder")))
        log("  added tokens:", len(j.get("added_tokens", [])))
    rows, diffs = [], 0
    for i, t in enumerate(texts):
        ids = tok(t, add_special_tokens=True)["input_ids"]
        kw = {"clean_up_tokenization_spaces": False}
        rows.append({"sha256": sha(t), "ids": ids,
                     "dec": sha(tok.decode(ids, skip_special_tokens=True, **kw))[:16],
                     "dec_raw": sha(tok.decode(ids, skip_special_tokens=False, **kw))[:16]})
        if sp_ids is not None and ids != sp_ids[i]:
            diffs += 1
            if diffs <= 20:
                log(f"  differs from sentencepiece on text {i} {t[:60]!r}: {ids[:20]} vs {sp_ids[i][:20]}")
    log(f"  {name}: {diffs} texts differ from sentencepiece")
    write_fixture(name, "mistral-7b-instruct-v0.3/tokenizer.model",
                  f"transformers {transformers.__version__} {type(tok).__name__} legacy={legacy}",
                  rows)


for name, legacy in [("mistral_hf", None), ("mistral_hf_nonlegacy", False)]:
    try:
        transformers_fixture(name, legacy)
    except Exception as e:
        import traceback

        log(f"{name} failed:", repr(e))
        traceback.print_exc()

open(os.path.join(OUT, "report.txt"), "w").write("\n".join(report) + "\n")
