#!/usr/bin/env python3
"""Retrieval recall of repository context, without the model: for the repo suite's holes, the share of those whose
truth uses a name the file's own context lacks where the chunks chosen for the cursor (laid out within each budget)
hold such a name. The selection and layout are the server's own (server.workspace, as `eval --suite repo` runs them).

    python tools/repo_recall.py build/lang/python build/lang/go ... [--budgets 128 256 512] [--json]

Each DIR holds repository folders (`tools/lang_corpus.py` builds them). Also the selection's latency per hole.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.backend import EmbeddedBackend  # noqa: E402
from infill.repo_context import identifiers  # noqa: E402
from server import fill  # noqa: E402
from server import repo_eval as rev  # noqa: E402
from server.config import Settings  # noqa: E402
from server.workspace import Ring  # noqa: E402


def recall(corpus: Path, budgets: list[int], backend, settings: Settings, own_file: bool = True) -> dict:
    tasks = rev.repo_tasks(corpus)
    runner = rev.Runner(backend, settings)
    target = fill.target(backend)
    budget, max_tokens, _room = rev.limits(settings, backend)
    hits = dict.fromkeys(budgets, 0)
    missing = 0
    ms: list[float] = []
    for t in tasks:
        ws = runner.workspace(t.repo)
        ws.ring = Ring()
        text, at = t.prefix + t.suffix, len(t.prefix)
        docs = {}
        siblings = sorted(p for p in t.path.parent.iterdir() if p != t.path and p.suffix == t.path.suffix)
        for p in siblings[: rev.OPEN_SIBLINGS]:
            docs[str(p)] = p.read_text(encoding="utf-8", errors="replace")
            ws.opened(p, docs[str(p)])
        ws.reindex(t.path, text)  # the hole's file without its middle, as server.repo_eval does
        shown = fill.shown_lines(target, text, at, budget) if own_file else None
        t0 = time.perf_counter()
        sel = ws.select(t.path, text, at, docs, shown=shown)
        ms.append((time.perf_counter() - t0) * 1e3)
        plan = fill.plan_cursor(text, at, t.lang, target, budget, max_tokens)
        own = target.tok.decode(list(plan.canvas.context_ids)) if plan.canvas else text
        novel = set(identifiers(t.middle)) - set(identifiers(own))
        if not novel:
            continue
        missing += 1
        for b in budgets:
            _ids, used = ws.layout(sel.chunks, target.tok, b)
            hits[b] += bool(novel & set(identifiers("".join(c.text for c in used))))
    ms.sort()
    return {"corpus": str(corpus), "holes": len(tasks), "missing_a_name": missing,
            "chunks_hold_one": {str(b): round(h / missing, 3) if missing else None for b, h in hits.items()},
            "select_ms_p50": round(ms[len(ms) // 2], 2) if ms else None,
            "select_ms_p95": round(ms[int(0.95 * len(ms))], 2) if ms else None}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("corpus", nargs="+", type=Path)
    p.add_argument("--budgets", type=int, nargs="+", default=[128, 256, 512])
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-own-file", action="store_true",
                   help="leave the hole's own file out of the chunks (as the selection did before)")
    args = p.parse_args()
    backend, settings = EmbeddedBackend(threads=1), Settings()
    out = [recall(c, args.budgets, backend, settings, not args.no_own_file) for c in args.corpus]
    if args.json:
        print(json.dumps({"command": "python tools/repo_recall.py " + " ".join(sys.argv[1:]), "results": out},
                         indent=1))
    else:
        for r in out:
            print(f"{r['corpus']}: {r['holes']} holes, {r['missing_a_name']} miss a name; chunks hold one "
                  f"{r['chunks_hold_one']}; select p50 {r['select_ms_p50']} ms, p95 {r['select_ms_p95']} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
