#!/usr/bin/env python3
"""extract_texts.py — picks the texts the tokenizer golden tests run on, deterministically.

Reads ../shared/data (SST-2, AG News, TREC, Banking77, GSM8K) and writes, into OUT (default
.carry/tok/ at the repository root, which git ignores — the texts are never committed):
  texts.jsonl       one JSON string per line: real sentences (fixed strides over the files,
                    >= 2,000 of them) followed by hand-written edge cases
  bench_sst2.jsonl  the first 10,000 SST-2 training sentences (the tokenizer benchmark)
  sources.json      how many texts came from where (for the report)
and copies the tokenizer files from ../shared/models/tokenizers into OUT so the GPU machine,
which has no ../shared, finds everything in one carried folder.

Usage: extract_texts.py [--shared DIR] [--out DIR] [--no-copy]
The C test runs this too and checks each text's sha256 against the committed fixtures.
"""
import argparse
import csv
import io
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))


def sst2(shared):
    out = []
    with open(os.path.join(shared, "data/sst2/dev.tsv"), encoding="utf-8", newline="") as f:
        rows = f.read().split("\n")[1:]
    dev = [r.split("\t")[0] for r in rows if r]
    out += dev  # all 872, with GLUE's trailing space kept (HF keeps it too)
    with open(os.path.join(shared, "data/sst2/train.tsv"), encoding="utf-8", newline="") as f:
        rows = f.read().split("\n")[1:]
    train = [r.split("\t")[0] for r in rows if r]
    out += train[::100]
    return out, train[:10000]


def agnews(shared):
    with open(os.path.join(shared, "data/agnews/test.csv"), encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["title"] + " " + r["description"] for r in rows[::20]]


def trec(shared):
    with open(os.path.join(shared, "data/trec/TREC_10.label"), encoding="utf-8", newline="") as f:
        lines = [l for l in f.read().split("\n") if l]
    return [l.split(" ", 1)[1] for l in lines]


def banking77(shared):
    with open(os.path.join(shared, "data/banking77/test.csv"), encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows[::10]]


def gsm8k(shared):
    out = []
    with open(os.path.join(shared, "data/gsm8k/test.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(l) for l in f if l.strip()]
    for r in rows[::10]:
        out.append(r["question"])
        out.append(r["answer"])
    return out


EDGE = [
    "", " ", "  ", "\n", "\n\n\n", "\t", " \t \n ", "\r\n", "a\r\nb", "hello\n\n\n  world",
    "Hello world", " Hello world", "Hello world ", "Hello   world", "Hello\tworld", "Hello\n world",
    "trailing spaces   ", "   leading spaces", "x\n \n \ny", "a  \n  b", "end with newline\n",
    "tabs\t\t\tand\t spaces", "\u00a0non-breaking\u00a0space", "ideographic\u3000space",
    "thin\u2009space", "mongolian\u180evowel separator", "line\u2028separator", "nel\u0085char",
    "12345", "1234567890", "3.14159", "1,000,000", "-42", "2024-11-23", "0x1F", "१२३ ٣٤٥ ௧௨",
    "I'M HERE", "DON'T", "she'S", "they'll", "we'VE", "it'd", "'s", "x'S y", "o'neill's",
    "caf\u00e9", "cafe\u0301 (combining acute)", "na\u00efve r\u00e9sum\u00e9", "\u00c5ngstr\u00f6m",
    "\u01c5 titlecase", "stra\u00dfe", "\u0130stanbul", "\u017fs long s: it'\u017f",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", "\u4e2d\u6587\u5206\u8bcd\u6d4b\u8bd5\u3002",
    "\ud55c\uad6d\uc5b4 \ubb38\uc7a5", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "\u0939\u093f\u0928\u094d\u0926\u0940 \u092a\u093e\u0920", "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22",
    "\u05e2\u05d1\u05e8\u05d9\u05ea", "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac",
    "\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442",
    "emoji \U0001f600\U0001f389", "\U0001f468\u200d\U0001f469\u200d\U0001f467 family",
    "\U0001f44d\U0001f3fd skin tone", "\U0001f1eb\U0001f1f7 flag", "\u2764\ufe0f heart",
    "zero\u200bwidth\u200cjoiners\u200d", "math \u2211 \u222b \u221e \u2248 \u2260",
    "\U0001d54f\U0001d560\U0001d55d double-struck", "\U00020000 cjk ext b", "\ue000 private use",
    "control \x01\x02\x7f chars", "bell\x07", "del\x7fete", "a" * 300, "ab" * 200,
    "supercalifragilisticexpialidocious" * 10, "Pneumonoultramicroscopicsilicovolcanoconiosis",
    "x" * 1000, "\u00e9" * 150, "\U0001f600" * 40, "1" * 100, "-" * 80, "=" * 33 + ">",
    "<|begin_of_text|>", "<|begin_of_text|>Hello", "Hi<|eot_id|>there", "<|end_of_text|>",
    "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>", "<|reserved_special_token_5|>",
    "<|not_a_token|>", "<s>", "</s>", "<unk>", "<s>[INST] What is 2+2? [/INST]", "[INST]hi[/INST]",
    "[INST] hello", "text [/INST] more", "[TOOL_CALLS] x", "[control_8]", "<0x41>", "<pad>",
    "\u2581already\u2581metaspaced", "\u2581", "Ġhello", "ĠĠ", "URL: https://example.com/a?b=c&d=e#f",
    "email me: a.b@c.de", "def f(x):\n    return x ** 2  # square\n", "if (a && b) { c++; }",
    "C:\\path\\to\\file.txt", "$100.00 & 50% off!!!", "...???!!!", "\"quoted\" 'single'",
    "\u201csmart quotes\u201d \u2018too\u2019", "em\u2014dash en\u2013dash", "\u00bd \u00bc \u2153",
    "<<48/2=24>> #### 72", "Mixed \u65e5\u672cEnglish\u6587\u5b57123abc",
    "    indented code\n\tmore", "A.B.C.", "e.g. i.e. etc.", "Mr. Smith's car", "rock 'n' roll",
    # decomposed / compatibility forms (NFC normalizers change these)
    "e\u0301t\u00e9 nai\u0308ve", "\u212bngstr\u00f6m \u2126hm", "\u1100\u1161\u11a8 \u1112\u1161\u11ab",
    "a\u0323\u0301 e\u0301\u0323 o\u031b\u0300", "\u0041\u030a\u0301", "\ufb01 ligature \u2460",
    "\u0915\u093c \u0928\u093c", "\u30ab\u3099 \u304b\u3099",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(ROOT, ".carry", "tok"))
    ap.add_argument("--no-copy", action="store_true", help="do not copy tokenizer files")
    a = ap.parse_args()
    shared = os.path.normpath(a.shared)
    if not os.path.isdir(os.path.join(shared, "data")):
        sys.exit(f"extract_texts.py: {shared}/data not found (pass --shared DIR)")
    os.makedirs(a.out, exist_ok=True)
    s_texts, bench = sst2(shared)
    parts = [("sst2", s_texts), ("agnews", agnews(shared)), ("trec", trec(shared)),
             ("banking77", banking77(shared)), ("gsm8k", gsm8k(shared))]
    texts, sources = [], {}
    for name, items in parts:
        sources[name] = len(items)
        texts += items
    sources["real_total"] = len(texts)
    sources["edge"] = len(EDGE)
    texts += EDGE
    with open(os.path.join(a.out, "texts.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for t in texts:
            f.write(json.dumps(t, ensure_ascii=True) + "\n")
    with open(os.path.join(a.out, "bench_sst2.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for t in bench:
            f.write(json.dumps(t, ensure_ascii=True) + "\n")
    with open(os.path.join(a.out, "sources.json"), "w") as f:
        json.dump(sources, f, indent=1)
    if not a.no_copy:
        tk = os.path.join(shared, "models", "tokenizers")
        for sub, name in [("llama-3.1-8b", "tokenizer.json"),
                          ("mistral-7b-instruct-v0.3", "tokenizer.model")]:
            dst = os.path.join(a.out, sub)
            os.makedirs(dst, exist_ok=True)
            shutil.copyfile(os.path.join(tk, sub, name), os.path.join(dst, name))
    print(f"extract_texts.py: {len(texts)} texts ({sources['real_total']} real, {len(EDGE)} edge), "
          f"{len(bench)} bench sentences -> {a.out}")


if __name__ == "__main__":
    main()
