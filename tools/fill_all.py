#!/usr/bin/env python3
"""Fill-all against the code it replaced: short function bodies of held-out files are turned into `pass`, then every
placeholder of the file is filled in one request, through the server's pipeline (fill.plan_ranges, fit, run: the
guard included). Each variant is a JOINT_GAP, the most tokens of text between two placeholders that share a canvas:
`one` never splits (every placeholder in one canvas, as long as it fits the model), `near` lets placeholders with at
most 64 tokens between them share one, `alone` gives every placeholder a canvas of its own (the default,
fill.JOINT_GAP 0, is `alone` but for placeholders with nothing between them). Scores per placeholder against the
body it replaced: returned (not refused by the guard), exact, edit similarity (a refused fill counts as empty), and
the request's time and forwards.

    python tools/fill_all.py build/lang/python --files 25 [--json]

The files are those of tools/lang_corpus.py's held-out trees (never the training corpus); at most 4 bodies of at
most 6 lines each are stubbed per file, chosen with a fixed seed. Variants run one after another on each file.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.backend import EmbeddedBackend  # noqa: E402
from infill.evaluate import edit_similarity  # noqa: E402
from infill.holes import placeholder_ranges  # noqa: E402
from server import fill  # noqa: E402
from server.config import Settings  # noqa: E402

VARIANTS = {"one": 10**9, "near": 64, "alone": -1}


def stubbed(src: str, rng: random.Random) -> tuple[str, list[str]] | None:
    """src with up to 4 short function bodies replaced by `pass` (a docstring stays), and the bodies in file order."""
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return None
    lines = src.splitlines(keepends=True)
    fns = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
           and n.end_lineno is not None and n.end_lineno - n.body[0].lineno < 6
           and not (len(n.body) == 1 and isinstance(n.body[0], ast.Pass | ast.Expr))]
    if len(fns) < 2:
        return None
    truths = {}
    for fn in sorted(rng.sample(fns, min(4, len(fns))), key=lambda f: -f.lineno):
        first = fn.body[0]
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and len(fn.body) > 1:
            first = fn.body[1]  # the docstring stays: a stub with its docstring, as people leave them
        start = first.lineno - 1
        if lines[start][: first.col_offset].strip():  # a body on the def's line
            continue
        truths[fn.lineno] = "".join(lines[start : fn.end_lineno]).strip()
        lines[start : fn.end_lineno] = [lines[start][: first.col_offset] + "pass\n"]
    return "".join(lines), [truths[k] for k in sorted(truths)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", help="a held-out Python tree (tools/lang_corpus.py)")
    ap.add_argument("--files", type=int, default=25)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    variants = {k: v for k, v in VARIANTS.items() if k in args.variants}
    backend = EmbeddedBackend(threads=args.threads)
    s = Settings()
    budget, max_tokens, room = s.limits(backend)  # the server's
    cfg = s.sampler(backend=backend)
    target = fill.target(backend)
    rng = random.Random(0)
    default = fill.JOINT_GAP
    rows: dict[str, list[dict]] = {v: [] for v in variants}
    ms: dict[str, list[float]] = {v: [] for v in variants}
    nfe: dict[str, int] = dict.fromkeys(variants, 0)
    files = 0
    for path in sorted(Path(args.corpus).rglob("*.py")):
        got = stubbed(path.read_text(encoding="utf-8", errors="replace"), rng)
        if got is None:
            continue
        text, truths = got
        spans = placeholder_ranges(text, "python")
        if len(spans) != len(truths) or len(spans) < 2:  # the file had placeholders of its own
            continue
        for name, gap in variants.items():
            fill.JOINT_GAP = gap
            t0 = time.perf_counter()
            plan = fill.fit(fill.plan_ranges(text, None, "python", target, budget, max_tokens), target, room)
            out = fill.run(backend, plan, cfg, session=name)
            ms[name].append((time.perf_counter() - t0) * 1e3)
            nfe[name] += out.stats.nfe
            fills = {h.start: (f if out.refused(i) is None else None)
                     for i, (h, f) in enumerate(zip(plan.holes, out.fills, strict=True))}
            for (a, _), truth in zip(spans, truths, strict=True):
                f = fills.get(a)
                rows[name].append({"returned": f is not None, "exact": (f or "").strip() == truth,
                                   "edit_similarity": edit_similarity((f or "").strip(), truth)})
        files += 1
        print(f"{path.name}: {len(spans)} placeholders; ms " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in ms.items()),
              file=sys.stderr, flush=True)
        if files >= args.files:
            break
    fill.JOINT_GAP = default
    result = {"corpus": args.corpus, "files": files, "placeholders": len(next(iter(rows.values()))),
              "default_joint_gap": default,
              "model": backend.model_name, "command": "python tools/fill_all.py " + " ".join(sys.argv[1:]),
              "variants": {}}
    for name, r in rows.items():
        n = len(r) or 1
        t = sorted(ms[name])
        result["variants"][name] = {
            "joint_gap": variants[name], "returned": round(sum(x["returned"] for x in r) / n, 4),
            "exact": round(sum(x["exact"] for x in r) / n, 4),
            "edit_similarity": round(sum(x["edit_similarity"] for x in r) / n, 4),
            "request_ms_p50": round(t[len(t) // 2], 1) if t else None, "request_ms_max": round(t[-1], 1) if t else None,
            "ms_total": round(sum(t), 1), "nfe_total": nfe[name]}
    if args.json:
        print(json.dumps(result))
    else:
        for name, v in result["variants"].items():
            print(f"{name:<8} returned {v['returned']:.1%}  exact {v['exact']:.1%}  "
                  f"edit sim. {v['edit_similarity']:.3f}  request p50 {v['request_ms_p50']} ms, "
                  f"max {v['request_ms_max']} ms, nfe {v['nfe_total']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
