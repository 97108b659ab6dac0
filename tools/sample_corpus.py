"""A corpus that travels: whole packages' worth of files, each package capped, from tools/build_corpus.py's train.jsonl.

Repository examples (`diffusion-ls train --repo-context P`) draw their chunks from the other files of the example's
package, so a smaller corpus keeps files of every package rather than every other file. Seeded: the same sample every
run. The output is gzip'd JSON lines (what `diffusion-ls train --corpus` reads once gunzip'd).

    python tools/sample_corpus.py build/corpus/train.jsonl build/sample.jsonl.gz --cap 420000 --seed 5   # r5's
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import random


def sample(lines: list[str], cap: int, seed: int) -> tuple[list[str], int]:
    """Per package (sorted), files in a seeded order while their text stays under `cap` characters (a package's
    first file always); then all of them shuffled. Also the characters of text kept."""
    by_package: dict[str, list[tuple[str, int]]] = collections.defaultdict(list)
    for line in lines:
        rec = json.loads(line)
        by_package[rec.get("package", "")].append((line, len(rec["text"])))
    rng = random.Random(seed)
    out, chars = [], 0
    for package in sorted(by_package):
        members = by_package[package][:]
        rng.shuffle(members)
        total = 0
        for line, size in members:
            if total + size > cap and total > 0:
                continue
            out.append(line)
            total += size
        chars += total
    rng.shuffle(out)
    return out, chars


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", help="train.jsonl from tools/build_corpus.py")
    ap.add_argument("out", help="output .jsonl.gz")
    ap.add_argument("--cap", type=int, default=420_000, help="characters of text per package at most")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    with open(args.corpus, encoding="utf-8") as fh:
        picked, chars = sample(fh.readlines(), args.cap, args.seed)
    with gzip.open(args.out, "wt", encoding="utf-8", compresslevel=9) as fh:
        fh.writelines(picked)
    print(f"{len(picked)} files, {chars / 1e6:.1f} MB of text -> {args.out}")


if __name__ == "__main__":
    main()
