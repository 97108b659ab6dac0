#!/usr/bin/env python3
"""Train the byte-level BPE tokenizer used by the infilling model.

    python tools/train_tokenizer.py --corpus build/corpus/train.jsonl \
        --out engine/assets/model/tokenizer.json --vocab-size 8192

* HF ``tokenizers`` BPE over a ByteLevel pre-tokenizer (add_prefix_space=False,
  use_regex=True) with the ByteLevel decoder and no normalizer, so
  ``decode(encode(x)) == x`` exactly for any string (decode with
  ``skip_special_tokens=False``).
* The special tokens get ids 0..7, in this order: see SPECIAL_TOKENS.
* Literal special-token strings inside source text should be encoded as
  ordinary text, so a file that happens to contain ``<|endoftext|>`` cannot
  inject a control token.  ``tokenizers`` does not store that switch in
  tokenizer.json: code that loads the file must set
  ``tok.encode_special_tokens = True`` and insert special ids directly
  (the checks below do the same).
* Trains on a deterministic sample (files ordered by sha256 of their path,
  up to --max-bytes of text) and verifies the round trip on a sample of
  corpus files plus hand-written edge cases, then reports bytes/token.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

SPECIAL_TOKENS = [
    "<|pad|>", "<|mask|>", "<|endoftext|>", "<|fim_prefix|>",
    "<|fim_middle|>", "<|fim_suffix|>", "<|file_sep|>", "<|rewrite|>",
]

EDGE_CASES = [
    "",
    " ",
    "\n",
    "def f(x):\n    return x  # ünïcödé ✓ — “quotes” 日本語 한국어 emoji 🐍🚀👩‍💻\n",
    "line1\r\nline2\r\n\r\n\tindented\twith\ttabs\r\n",
    "nul\x00byte\x00\x00 and \x01\x02\x7f control \x1b[31mred\x1b[0m",
    "\ufeffBOM at start",
    "trailing spaces   \n\n\n        \n    ",
    "mixed \t \t tabs\t\tand spaces    \n\t\t\tdeep",
    "surrogate-free astral: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕏 \U0010ffff \u200b\u200d zero width",
    "special strings as text: <|pad|><|mask|><|endoftext|><|fim_prefix|>"
    "<|fim_middle|><|fim_suffix|><|file_sep|><|rewrite|> <|unknown|>",
    "x = '''" + "a" * 5000 + "'''",
    "    " * 50 + "pass",
    "é" * 1000,
    "\\u00e9 \\n \\t raw escapes",
    "🐍" * 200,
]


def iter_jsonl(path: Path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def load_sample(path: Path, max_bytes: int) -> list[str]:
    docs = [(hashlib.sha256(r["path"].encode()).hexdigest(), r["text"]) for r in iter_jsonl(path)]
    docs.sort(key=lambda d: d[0])
    out, total = [], 0
    for _, text in docs:
        n = len(text.encode("utf-8"))
        if max_bytes and total + n > max_bytes:
            continue
        out.append(text)
        total += n
    return out


def build_tokenizer(texts: list[str], vocab_size: int, min_frequency: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tok


def round_trip_ok(tok, s: str) -> bool:
    ids = tok.encode(s, add_special_tokens=False).ids
    return tok.decode(ids, skip_special_tokens=False) == s


def count_tokens(tok, path: Path, batch: int = 256) -> tuple[int, int, int]:
    """Return (files, bytes, tokens) for a jsonl split."""
    files = nbytes = ntok = 0
    buf: list[str] = []

    def flush():
        nonlocal ntok
        if buf:
            ntok += sum(len(e.ids) for e in tok.encode_batch(buf, add_special_tokens=False))
            buf.clear()

    for r in iter_jsonl(path):
        files += 1
        nbytes += len(r["text"].encode("utf-8"))
        buf.append(r["text"])
        if len(buf) >= batch:
            flush()
    flush()
    return files, nbytes, ntok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Train the byte-level BPE tokenizer.")
    ap.add_argument("--corpus", default="build/corpus/train.jsonl")
    ap.add_argument("--heldout", default=None,
                    help="held-out jsonl for bytes/token (default: heldout.jsonl next to --corpus)")
    ap.add_argument("--out", default="engine/assets/model/tokenizer.json")
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--min-frequency", type=int, default=2)
    ap.add_argument("--max-bytes", type=int, default=60_000_000,
                    help="train on at most this much text (deterministic sample)")
    ap.add_argument("--verify-files", type=int, default=2000)
    ap.add_argument("--verify-only", action="store_true",
                    help="do not train; verify and report on an existing --out")
    ap.add_argument("--count-train", action="store_true",
                    help="also count tokens of the whole training split")
    args = ap.parse_args(argv)

    corpus = Path(args.corpus)
    heldout = Path(args.heldout) if args.heldout else corpus.with_name("heldout.jsonl")
    out = Path(args.out)

    from tokenizers import Tokenizer

    if args.verify_only:
        tok = Tokenizer.from_file(str(out))
    else:
        t0 = time.time()
        texts = load_sample(corpus, args.max_bytes)
        mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
        print(f"training on {len(texts)} files, {mb:.1f} MB, vocab {args.vocab_size}")
        tok = build_tokenizer(texts, args.vocab_size, args.min_frequency)
        del texts
        out.parent.mkdir(parents=True, exist_ok=True)
        tok.save(str(out))
        print(f"trained in {time.time() - t0:.0f}s -> {out}")
        # Reload from disk so everything below checks the saved artefact.
        tok = Tokenizer.from_file(str(out))

    # --- checks -------------------------------------------------------------
    tok.encode_special_tokens = True  # not persisted by tokenizers; see docstring
    errors = []
    for i, s in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(s) != i:
            errors.append(f"special token {s} has id {tok.token_to_id(s)}, expected {i}")

    bad = [s for s in EDGE_CASES if not round_trip_ok(tok, s)]
    if bad:
        errors.append(f"{len(bad)} edge-case strings failed the round trip: {bad[:3]!r}")
    literal = "<|endoftext|>"
    if any(i < len(SPECIAL_TOKENS) for i in tok.encode(literal, add_special_tokens=False).ids):
        errors.append("literal special-token text was encoded as a special id")

    sample = sorted(iter_jsonl(corpus),
                    key=lambda r: hashlib.sha256(("v" + r["path"]).encode()).hexdigest())
    sample = sample[: args.verify_files]
    if heldout.exists():
        sample += list(iter_jsonl(heldout))
    nfail = 0
    for r in sample:
        if not round_trip_ok(tok, r["text"]):
            nfail += 1
            if nfail <= 3:
                print(f"  round trip FAILED: {r['path']}", file=sys.stderr)
    if nfail:
        errors.append(f"{nfail}/{len(sample)} corpus files failed the round trip")
    print(f"round trip: {len(sample) - nfail}/{len(sample)} corpus files, "
          f"{len(EDGE_CASES) - len(bad)}/{len(EDGE_CASES)} edge cases OK")

    vocab = tok.get_vocab_size()
    print(f"vocab size: {vocab}")
    ws = [" " * n for n in (4, 8, 12, 16)] + ["\n" + " " * n for n in (4, 8, 12)]
    byte_enc = {" ": "Ġ", "\n": "Ċ"}
    have = [w for w in ws if tok.token_to_id("".join(byte_enc[c] for c in w)) is not None]
    shown = [w.replace("\n", "\\n") for w in have]
    print(f"whitespace-run tokens present: {shown}")

    if heldout.exists():
        f, b, n = count_tokens(tok, heldout)
        print(f"heldout: {f} files, {b / 1e6:.2f} MB, {n} tokens, {b / max(1, n):.3f} bytes/token")
    if args.count_train:
        f, b, n = count_tokens(tok, corpus)
        print(f"train:   {f} files, {b / 1e6:.2f} MB, {n} tokens, {b / max(1, n):.3f} bytes/token")

    if errors:
        for e in errors:
            print("ERROR:", e, file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
