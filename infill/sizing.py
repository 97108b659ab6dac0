"""How well hole capacities fit: cut SAFIM-like spans out of held-out files, size the hole, compare with the truth.

`python -m infill.sizing --corpus DIR` (the server CLI exposes it as `diffusion-ls sizing`) prints coverage
(capacity >= true length) and waste (capacity / true length) per span class, next to fixed capacities 16/32/64.
`--data DIR` runs the same on HumanEval-infilling and SAFIM (python) holes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import zlib
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path

from infill.holes import find_hole, token_counter
from infill.languages import language_for
from infill.spans import Span, syntax_spans

SAFIM_LIKE = ("body", "control_header", "arguments", "statement", "expression")  # the totals are over these
MEASURED = (*SAFIM_LIKE, "rest_of_line")  # rest_of_line is reported on its own (the most common serving hole)
FIXED = (16, 32, 64)
PER_KIND = 4  # spans measured per kind per file: keeps big files from dominating and the run short
MAX_TRUE = 256  # longer middles are filled block-autoregressively (the canvas grows); reported apart
MAX_FILE_CHARS = 200_000

Record = tuple[str, str, int, int]  # (class, situation, capacity, true tokens)


def pick_spans(text: str, spans: Sequence[Span], kinds: Sequence[str], per_kind: int) -> list[Span]:
    """Up to per_kind spans of each kind, chosen by a hash of their text (deterministic, spread over the file)."""
    out = []
    for kind in kinds:
        same = [s for s in spans if s.kind == kind]
        same.sort(key=lambda s: zlib.crc32(f"{s.start}:{text[s.start : s.end]}".encode("utf-8", "surrogatepass")))
        out.extend(same[:per_kind])
    return out


def file_records(path: str, text: str, lang: str, tok: object, per_kind: int = PER_KIND) -> list[Record]:
    """One record per measured span of one file: the span is removed, the hole found at its start."""
    count = token_counter(tok)
    records = []
    chosen = pick_spans(text, syntax_spans(text, lang), MEASURED, per_kind)
    trues = count([text[s.start : s.end] for s in chosen])
    for span, true in zip(chosen, trues, strict=True):
        if true == 0:
            continue
        hole = find_hole(text[: span.start] + text[span.end :], span.start, lang, tok)
        records.append((span.kind, hole.situation, hole.capacity, true))
    return records


def _stats(pairs: Sequence[tuple[int, int]]) -> dict:
    if not pairs:
        return {"n": 0, "coverage": None, "median_waste": None}
    return {
        "n": len(pairs),
        "coverage": round(sum(cap >= true for cap, true in pairs) / len(pairs), 4),
        "median_waste": round(statistics.median(cap / true for cap, true in pairs), 3),
    }


def summarize(
    records: Sequence[Record], max_true: int | None = MAX_TRUE, total_classes: Sequence[str] | None = SAFIM_LIKE
) -> dict:
    """Coverage and median waste in total (over total_classes; None: all), per class, per situation, per fixed size."""
    kept = [r for r in records if max_true is None or r[3] <= max_true]
    classes = sorted({r[0] for r in kept})
    total = [r for r in kept if total_classes is None or r[0] in total_classes]
    out = _stats([(r[2], r[3]) for r in total])
    out["excluded_longer_than_max"] = len(records) - len(kept)
    out["max_true"] = max_true
    out["by_class"] = {c: _stats([(r[2], r[3]) for r in kept if r[0] == c]) for c in classes}
    out["by_situation"] = {s: _stats([(r[2], r[3]) for r in kept if r[1] == s]) for s in sorted({r[1] for r in kept})}
    out["fixed"] = {}
    for size in FIXED:
        entry = _stats([(size, r[3]) for r in total])
        entry["by_class"] = {c: _stats([(size, r[3]) for r in kept if r[0] == c]) for c in classes}
        out["fixed"][str(size)] = entry
    return out


def measure_sizing(
    files: Iterable[tuple[str, str, str]], tok: object, per_kind: int = PER_KIND, max_true: int | None = MAX_TRUE
) -> dict:
    """Sizing quality over (path, text, lang) files: see summarize()."""
    records: list[Record] = []
    for path, text, lang in files:
        records.extend(file_records(path, text, lang, tok, per_kind))
    return summarize(records, max_true)


def corpus_files(root: str | os.PathLike, limit: int | None = None,
                 skip_dirs: Collection[str] = ()) -> Iterator[tuple[str, str, str]]:
    """(path, text, lang) of source files of known languages under root, in sorted order, folders named in
    skip_dirs left out."""
    n = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs)
        for name in sorted(filenames):
            lang = language_for(name)
            path = os.path.join(dirpath, name)
            if lang is None:
                continue
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if not text.strip() or len(text) > MAX_FILE_CHARS:
                continue
            yield path, text, lang
            n += 1
            if limit is not None and n >= limit:
                return


# -- shared evaluation data -------------------------------------------------------------------------------------------


def _jsonl_gz(path: Path) -> Iterator[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def data_records(data_dir: str | os.PathLike, tok: object, limit: int | None = None) -> list[Record]:
    """Records for HumanEval-infilling (prompt + [middle] + suffix) and SAFIM python (eval_prompt's {{completion}})."""
    count = token_counter(tok)
    root = Path(data_dir)
    records: list[Record] = []
    for path in sorted((root / "humaneval-infilling").glob("*.jsonl.gz")):
        cls = "humaneval/" + path.name.split("-")[1].split(".")[0]
        for i, rec in enumerate(_jsonl_gz(path)):
            if limit is not None and i >= limit:
                break
            prefix, suffix, middle = rec["prompt"], rec["suffix"], rec["canonical_solution"]
            true = count([middle])[0]
            if true:
                hole = find_hole(prefix + suffix, len(prefix), "python", tok)
                records.append((cls, hole.situation, hole.capacity, true))
    for path in sorted((root / "safim-python").glob("*.jsonl.gz")):
        cls = "safim/" + path.name.split("_")[0]
        for i, rec in enumerate(_jsonl_gz(path)):
            if limit is not None and i >= limit:
                break
            prefix, _, suffix = rec["eval_prompt"].partition("{{completion}}")
            true = count([rec["ground_truth"]])[0]
            if true:
                hole = find_hole(prefix + suffix, len(prefix), "python", tok)
                records.append((cls, hole.situation, hole.capacity, true))
    return records


# -- CLI --------------------------------------------------------------------------------------------------------------


def _default_tokenizer() -> Path:
    from engine import DEFAULT_MODEL_DIR

    return DEFAULT_MODEL_DIR / "tokenizer.json"


def _load_tokenizer(path: str) -> object:
    from engine.tokenizer import Tokenizer

    return Tokenizer.from_file(path)


def _print_table(title: str, result: dict, out) -> None:
    excluded, max_true = result["excluded_longer_than_max"], result["max_true"]
    print(f"{title}: n={result['n']} in the total (+{excluded} longer than {max_true} left out)", file=out)
    header = f"  {'class':<26}{'n':>6}  {'ours cov/waste':>16}" + "".join(f"  {'fixed ' + str(s):>16}" for s in FIXED)
    print(header, file=out)

    def row(name: str, ours: dict, fixed: list[dict]) -> str:
        def cell(st: dict) -> str:
            return f"{st['coverage']:.1%}/{st['median_waste']:.2f}" if st["n"] else "-"

        return f"  {name:<26}{ours['n']:>6}  {cell(ours):>16}" + "".join(f"  {cell(f):>16}" for f in fixed)

    for cls, st in result["by_class"].items():
        print(row(cls, st, [result["fixed"][str(s)]["by_class"][cls] for s in FIXED]), file=out)
    print(row("ALL", result, [result["fixed"][str(s)] for s in FIXED]), file=out)


def main(argv: Sequence[str] | None = None) -> int:
    """`sizing --corpus DIR [--data DIR] [--json] [--limit N]`: hole-size quality report."""
    ap = argparse.ArgumentParser(prog="diffusion-ls sizing", description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", help="directory of held-out source files")
    ap.add_argument(
        "--data",
        help="eval data dir (humaneval-infilling/, safim-python/); without --corpus: ../shared/data if present",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--limit", type=int, help="at most N corpus files (N records per data file)")
    ap.add_argument("--per-kind", type=int, default=PER_KIND, help="spans measured per kind per file")
    ap.add_argument("--max-true", type=int, default=MAX_TRUE, help="leave out middles longer than this (0: keep all)")
    ap.add_argument("--tokenizer", default=str(_default_tokenizer()), help="tokenizer.json")
    args = ap.parse_args(argv)

    data = args.data
    if data is None and not args.corpus and Path("../shared/data").is_dir():
        data = "../shared/data"
    if not args.corpus and not data:
        ap.error("give --corpus DIR and/or --data DIR")
    from engine.tokenizer import TokenizerError

    try:
        tok = _load_tokenizer(args.tokenizer)
    except TokenizerError as exc:
        print(f"sizing: {exc}", file=sys.stderr)
        return 2
    max_true = args.max_true or None
    result: dict = {}
    if args.corpus:
        files = corpus_files(args.corpus, args.limit)
        result["corpus"] = measure_sizing(files, tok, args.per_kind, max_true)
    if data:
        result["data"] = summarize(data_records(data, tok, args.limit), max_true=None, total_classes=None)
    if args.json:
        print(json.dumps(result["corpus"] if set(result) == {"corpus"} else result, indent=1))
    else:
        for name, res in result.items():
            _print_table(name, res, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
