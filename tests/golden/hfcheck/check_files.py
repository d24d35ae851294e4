#!/usr/bin/env python3
"""check_files.py — checks, with Hugging Face's own libraries, the model directories the harness
writes (`telepathy make-tiny`, `telepathy import-llama2c`), and records golden data for the C
tests. Run on the GPU machine (transformers, tokenizers, safetensors installed; CPU is enough).

Input:  IN_DIR (argument 1) holding model directories written by the harness:
          stories/             telepathy import-llama2c stories260K.bin tok512.bin IN_DIR/stories
          llama/ mistral/ qwen2/   telepathy make-tiny IN_DIR/<arch> --arch <arch> --seed 1
Output: $OUT/hf_check.json — per model: loaded by transformers (config values as HF sees them),
        safetensors metadata, tokenizer ids of fixed sentences from HF `tokenizers`, greedy
        continuation of the stories model from BOS (ids and text), logits of a fixed id sequence;
        $OUT/hf_check.log. Exit status 1 if any check failed.

The sentences are written here (not taken from ../shared), so the ids may be committed.
"""
import json
import os
import sys
import traceback

SENTENCES = [
    "Once upon a time, there was a little girl named Lily.",
    "She loved to play outside in the park with her dog, Max!",
    "The cat sat on the mat.",
    "  two leading spaces and a trailing one ",
    "Numbers: 12345 and 3.14159; symbols #@$%^&*()",
    "Tom said, \"I am happy.\"\nThen he ran home.",
    "accents: café naïve résumé — and emoji 🙂",
    "",
]
STORIES_PREFIX = "Once upon a time, there was a little girl named Lily."


def main():
    in_dir = sys.argv[1] if len(sys.argv) > 1 else "hfcheck"
    out_dir = os.environ.get("OUT", ".")
    os.makedirs(out_dir, exist_ok=True)
    log = open(os.path.join(out_dir, "hf_check.log"), "w")

    def say(*a):
        msg = " ".join(str(x) for x in a)
        print(msg)
        log.write(msg + "\n")
        log.flush()

    import torch
    import transformers
    from safetensors import safe_open
    from tokenizers import Tokenizer

    say("transformers", transformers.__version__, "torch", torch.__version__)
    report = {"transformers": transformers.__version__, "models": {}}
    failures = 0
    for name in ["stories", "llama", "mistral", "qwen2"]:
        d = os.path.join(in_dir, name)
        if not os.path.isdir(d):
            say("SKIP", name, "(no directory)")
            continue
        r = {}
        try:
            with safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
                r["st_metadata"] = f.metadata()
                r["st_tensors"] = len(list(f.keys()))
            cfg = transformers.AutoConfig.from_pretrained(d)
            r["config"] = {
                k: getattr(cfg, k, None)
                for k in [
                    "model_type", "vocab_size", "hidden_size", "intermediate_size",
                    "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                    "head_dim", "rms_norm_eps", "max_position_embeddings",
                    "tie_word_embeddings", "sliding_window", "bos_token_id", "eos_token_id",
                ]
            }
            rp = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None)
            r["config"]["rope"] = rp if isinstance(rp, dict) else str(rp)
            model = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
            model.eval()
            tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
            r["ids"] = [tok.encode(s, add_special_tokens=False).ids for s in SENTENCES]
            r["decoded"] = [tok.decode(ids) for ids in r["ids"]]
            ids = torch.tensor([[cfg.bos_token_id] + r["ids"][0][:15]])
            with torch.no_grad():
                logits = model(input_ids=ids).logits[0]
            r["probe_ids"] = ids[0].tolist()
            r["probe_logits_last"] = logits[-1].tolist()
            r["probe_argmax"] = logits.argmax(-1).tolist()
            if name == "stories":
                with torch.no_grad():
                    gen = model.generate(
                        torch.tensor([[1]]), max_new_tokens=48, do_sample=False,
                        pad_token_id=0, eos_token_id=None)
                gids = gen[0, 1:].tolist()
                text = tok.decode(gids)
                r["greedy_ids"] = gids
                r["greedy_text"] = text
                ok = text.startswith(STORIES_PREFIX)
                say("stories greedy:", repr(text))
                if not ok:
                    failures += 1
                    say("FAIL stories: greedy text does not start with", repr(STORIES_PREFIX))
            say("ok  ", name, json.dumps(r["config"]))
            r["ok"] = True
        except Exception as e:  # noqa: BLE001 — every failure is reported, none hidden
            failures += 1
            r["ok"] = False
            r["error"] = "".join(traceback.format_exception(e))
            say("FAIL", name, r["error"])
        report["models"][name] = r
    report["sentences"] = SENTENCES
    with open(os.path.join(out_dir, "hf_check.json"), "w") as f:
        json.dump(report, f, indent=1, ensure_ascii=False)
    say("failures:", failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
