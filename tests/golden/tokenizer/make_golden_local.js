#!/usr/bin/env node
// make_golden_local.js — golden token ids made on THIS machine, before the GPU machine's Python
// run (make_golden.py) is available. Uses Hugging Face's own Node binding of `tokenizers`
// (npm `tokenizers@0.23.2`: the same Rust core as the Python package 0.23 on the GPU machine)
// and sentencepiece compiled to WebAssembly (npm `@sctg/sentencepiece-js@1.3.3`). Writes the
// same fixture format as make_golden.py (see README.md there), ids and hashes only.
//
// Usage (from the repository root, after extract_texts.py):
//   npm install --prefix /tmp/tok-node tokenizers@0.23.2 @sctg/sentencepiece-js@1.3.3
//   NODE_PATH=/tmp/tok-node/node_modules node tests/golden/tokenizer/make_golden_local.js \
//       .carry/tok tests/golden/tokenizer tests/golden/tokenizer/tiny/*.json
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const { Tokenizer } = require("tokenizers");

const sha = (s) => crypto.createHash("sha256").update(Buffer.from(s, "utf8")).digest("hex");
const sha16 = (s) => sha(s).slice(0, 16); // decodes: a 64-bit prefix is plenty to compare
const [carry, outDir, ...tiny] = process.argv.slice(2);
const textsRaw = fs.readFileSync(path.join(carry, "texts.jsonl"), "utf8");
const texts = textsRaw.split("\n").filter((l) => l.length).map((l) => JSON.parse(l));
const textsSha = sha(textsRaw);

function writeFixture(name, tokenizer, generator, rows, extra) {
  const head = Object.assign({ format: "telepathy-tokenizer-golden", version: 1, name, tokenizer,
                               generator, add_special_tokens: true, n: rows.length,
                               texts_sha256: textsSha }, extra || {});
  const lines = [JSON.stringify(head)].concat(rows.map((r) => JSON.stringify(r)));
  fs.writeFileSync(path.join(outDir, name + ".golden.jsonl"), lines.join("\n") + "\n");
  console.log(`${name}: ${rows.length} texts -> ${path.join(outDir, name + ".golden.jsonl")}`);
}

async function hfRows(file) {
  const tok = Tokenizer.fromFile(file);
  const rows = [];
  for (const t of texts) {
    const enc = await tok.encode(t, null, { addSpecialTokens: true });
    const ids = Array.from(enc.getIds());
    rows.push({ sha256: sha(t), ids, dec: sha16(await tok.decode(ids, true)),
                dec_raw: sha16(await tok.decode(ids, false)) });
  }
  return rows;
}

async function spRows(file) {
  const { SentencePieceProcessor } = require("@sctg/sentencepiece-js");
  const sp = new SentencePieceProcessor();
  await sp.load(file);
  const rows = [];
  for (const t of texts) {
    const ids = [1].concat(Array.from(sp.encodeIds(t))); // sentencepiece has no BOS option here
    rows.push({ sha256: sha(t), ids, dec: sha16(sp.decodeIds(ids.slice(1))) });
  }
  return rows;
}

(async () => {
  const v = require("tokenizers/package.json").version;
  writeFixture("llama31", "llama-3.1-8b/tokenizer.json", `tokenizers ${v} (node binding)`,
               await hfRows(path.join(carry, "llama-3.1-8b/tokenizer.json")));
  const spDir = path.dirname(path.dirname(require.resolve("@sctg/sentencepiece-js")));
  const spv = JSON.parse(fs.readFileSync(path.join(spDir, "package.json"), "utf8")).version;
  writeFixture("mistral_sp", "mistral-7b-instruct-v0.3/tokenizer.model",
               `sentencepiece wasm (@sctg/sentencepiece-js ${spv})`,
               await spRows(path.join(carry, "mistral-7b-instruct-v0.3/tokenizer.model")));
  for (const f of tiny) {
    const name = path.basename(f).replace(/\.json$/, "");
    const fileSha = crypto.createHash("sha256").update(fs.readFileSync(f)).digest("hex");
    // tiny/*.json: written by tp_tokenizer_write_tiny (tiny_*) or derived from one by hand
    writeFixture(name, path.basename(f), `tokenizers ${v} (node binding)`, await hfRows(f),
                 { tokenizer_sha256: fileSha });
  }
})().catch((e) => { console.error(e); process.exit(1); });
