"""How far can hole sizing from syntax go? The coverage/waste frontier of the best per-situation rule.

    python tools/sizing_frontier.py --fit build/corpus/train.jsonl --fit-files 400 --test build/corpus/heldout_tree

For every SAFIM-like span cut from a file (as `diffusion-ls sizing` does), it records what a sizing rule could know:
the situation, the token lengths of same-kind spans nearest the cursor (and of those of the same node type), of
spans whose line starts like the cursor's, and of the code lines around it. Then, per group of holes (situation x
which of those are available), it picks the feature and the multiplier that trade coverage against waste best
(a Lagrangian sweep over the fit files: maximise holes with capacity in [true, 2 x true] + lambda x holes covered)
and reports coverage and median waste of each chosen rule on the test files, next to the shipped rule. No rule
found this way is shipped: the report says where the frontier lies.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import DEFAULT_MODEL_DIR  # noqa: E402
from engine.tokenizer import Tokenizer  # noqa: E402
from infill import holes as H  # noqa: E402
from infill.sizing import MEASURED, PER_KIND, SAFIM_LIKE, corpus_files, pick_spans  # noqa: E402
from infill.spans import syntax_spans  # noqa: E402


def records(files, tok) -> list[dict]:
    count = H.token_counter(tok)
    out = []
    for _path, text, lang in files:
        chosen = pick_spans(text, syntax_spans(text, lang), MEASURED, PER_KIND)
        for span, true in zip(chosen, count([text[s.start:s.end] for s in chosen]), strict=True):
            if not 0 < true <= 256:
                continue
            cut, off = text[:span.start] + text[span.end:], span.start
            situation, hint, _indent = H.classify(cut, off, lang)
            if situation not in H.SAMPLE_KIND:
                continue
            spans = syntax_spans(cut, lang)
            kind = H.SAMPLE_KIND[situation]
            near = sorted((s for s in spans if s.kind == kind and not (s.start <= off < s.end and kind != "body")),
                          key=lambda s: (abs(s.start - off), s.start))[:256]
            ls, le = H._line_bounds(cut, off)
            around = [x.strip() for x in (H._prev_code_line(cut, ls), H._next_code_line(cut, le)) if x]
            ctx = H._context_samples(cut, spans, situation, off) if situation in H.CONTEXT_MARGIN else []
            out.append({"cls": span.kind, "sit": situation, "true": true,
                        "near": count([cut[s.start:s.end] for s in near]),
                        "same": [i for i, s in enumerate(near) if hint and s.node == hint],
                        "ctx": count(ctx), "around": count(around),
                        "shipped": H.find_hole(cut, off, lang, tok, spans).capacity})
    return out


def features(r: dict) -> dict[str, float]:
    g, f = r["near"], {"constant": 1.0}
    for k in (3, 10, 20, 256):
        if len(g[:k]) >= 3:
            f[f"median_nearest_{k}"] = statistics.median(g[:k])
            f[f"q90_nearest_{k}"] = H.percentile(g[:k], 0.9)
    same = [g[i] for i in r["same"]]
    if len(same) >= 3:
        f["median_same_node"] = statistics.median(same[:20])
    if r["ctx"]:
        f["median_same_line_start"] = statistics.median(r["ctx"])
        f["max_same_line_start"] = max(r["ctx"])
    if r["around"]:
        f["max_lines_around"] = max(r["around"])
    return {k: v for k, v in f.items() if v > 0}


def group(r: dict) -> tuple:
    return r["sit"], bool(r["ctx"]), len(r["same"]) >= 3, bool(r["around"])


def cov_waste(pairs) -> tuple[float, float]:
    return sum(c >= t for c, t in pairs) / len(pairs), statistics.median(c / t for c, t in pairs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", required=True, help="a .jsonl corpus (tools/build_corpus.py) or a source tree to fit on")
    ap.add_argument("--fit-files", type=int, default=400)
    ap.add_argument("--test", required=True, help="held-out source tree")
    ap.add_argument("--test-files", type=int, default=200)
    args = ap.parse_args()
    tok = Tokenizer.from_file(DEFAULT_MODEL_DIR / "tokenizer.json")
    if args.fit.endswith(".jsonl"):
        recs = [json.loads(line) for line in open(args.fit)]
        random.Random(0).shuffle(recs)
        fit_files = [("", r["text"], r.get("lang", "python"))
                     for r in recs[: args.fit_files] if len(r["text"]) < 200_000]
    else:
        fit_files = list(corpus_files(args.fit, args.fit_files))
    fit, test = records(fit_files, tok), records(list(corpus_files(args.test, args.test_files)), tok)
    fit, test = [r for r in fit if r["cls"] in SAFIM_LIKE], [r for r in test if r["cls"] in SAFIM_LIKE]
    groups = collections.defaultdict(list)
    for r in fit:
        groups[group(r)].append(r)
    mults = [1.05**i for i in range(-40, 80)]
    tables = {}
    for g, rs in groups.items():
        names = [k for k in features(rs[0]) if all(k in features(r) for r in rs)]
        rows = []
        for k in names:
            for m in mults:
                caps = [(max(1, math.ceil(m * features(r)[k])), r["true"]) for r in rs]
                rows.append((k, m, sum(c <= 2 * t for c, t in caps), sum(c >= t for c, t in caps)))
        tables[g] = rows

    def apply(recs, choice):
        pairs = []
        for r in recs:
            k, m = choice.get(group(r), ("", 0.0))[:2]
            f = features(r)
            pairs.append((max(1, math.ceil(m * f[k])) if k in f else r["shipped"], r["true"]))
        return cov_waste(pairs)

    shipped = cov_waste([(r["shipped"], r["true"]) for r in test])
    out = {"n_fit": len(fit), "n_test": len(test), "shipped_rule_test": shipped, "frontier": []}
    for lam in (1.0, 1.5, 2.0, 2.5, 3.0, 4.0):
        choice = {g: max(rows, key=lambda x: x[2] + lam * x[3]) for g, rows in tables.items()}
        out["frontier"].append({"lambda": lam, "fit": apply(fit, choice), "test": apply(test, choice)})
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
