"""`diffusion-ls safety`: do the edits the server returns ever make code worse? Rewrites and fills on real code.

    diffusion-ls safety --corpus build/lang --limit 320 --json

Holes are cut from every language tree under --corpus as `eval --suite heldout` cuts them (tree-sitter spans: rest of
line, statement, expression, arguments, control header, body). Each hole becomes two requests through the fill
pipeline the server runs (server/fill.py, edit guard included), with the server's limits:
- a rewrite of the span (regenerate and refine in turn),
- a fill: the span replaced by a placeholder (`...` for a Python body, a TODO comment line for other whole-line
  spans) and the document's placeholders filled, or, for a span inside a line, a fill at the cursor.
Every returned edit is then checked here, independently of the guard: applied to the document, it must add no
parse errors, and it must not replace a non-empty range with nothing. Reported: useful answers (edits returned),
refusals by reason, violations (must be 0), and the most forwards and milliseconds of any request.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

from infill import _syntax
from infill.evaluate import heldout_tasks, spread
from infill.holes import placeholder_ranges
from infill.languages import language_for
from server import fill
from server.config import Settings

COMMENT = {"python": "#", "rust": "//", "go": "//", "c": "//", "cpp": "//", "java": "//", "javascript": "//",
           "typescript": "//"}


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", required=True, help="a directory of language trees (or one tree) not in the training "
                   "corpus, e.g. what tools/lang_corpus.py builds")
    p.add_argument("--limit", type=int, default=160, help="holes (each gives a rewrite and a fill request)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "int8"),
                   help="the model's number format (auto: as the server loads it)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def _requests(task, i: int) -> list[tuple[str, str, list[tuple[int, int]] | None, tuple[int, int], str]]:
    """(kind, document text, ranges for plan_ranges (None: every placeholder), the rewrite span, mode)."""
    text = task.prefix + task.middle + task.suffix
    start, end = len(task.prefix), len(task.prefix) + len(task.middle)
    out = [("rewrite", text, None, (start, end), "refine" if i % 2 else "regenerate")]
    line_start = task.prefix.rfind("\n") + 1
    whole_lines = not task.prefix[line_start:].strip() and (task.suffix.startswith("\n") or not task.suffix)
    if whole_lines and task.middle.strip():
        lead = task.middle[: len(task.middle) - len(task.middle.lstrip(" \t"))]  # the span's own indentation
        mark = "..." if task.lang == "python" and task.kind == "body" else f"{COMMENT[task.lang]} TODO"
        doc = task.prefix + lead + mark + task.suffix
        at = len(task.prefix) + len(lead)
        if (at, at + len(mark)) in placeholder_ranges(doc, task.lang):
            out.append(("fill", doc, None, (0, 0), ""))
            return out
    # a span that leaves no placeholder there (a TODO among code is a note, not one): a fill at the cursor
    out.append(("fill", task.prefix + task.suffix, [(start, start)], (0, 0), ""))
    return out


def _violations(text: str, lang: str, edits: list[tuple[int, int, str]]) -> list[str]:
    """What is wrong with these edits of text, checked from scratch (not by the guard's own code)."""
    bad = [f"replaces {text[a:b]!r:.60} with nothing" for a, b, new in edits if a < b and not new.strip()]
    after, pos = [], 0
    for a, b, new in sorted(edits):
        after += [text[pos:a], new]
        pos = b
    after.append(text[pos:])
    if _syntax.count_errors("".join(after), lang) > _syntax.count_errors(text, lang):
        bad.append(f"adds parse errors: {edits!r:.160}")
    return bad


def run(corpus: str, limit: int, threads: int = 1, dtype: str = "auto") -> dict:
    from engine.backend import EmbeddedBackend

    backend = EmbeddedBackend(threads=threads, dtype=dtype)
    settings = Settings()
    budget, max_tokens, room = settings.limits(backend)  # the server's
    cfg = settings.sampler(backend=backend)
    target = fill.target(backend)
    roots = [d for d in sorted(Path(corpus).iterdir()) if d.is_dir() and language_for(d.name)] or [Path(corpus)]
    per_root = -(-limit // len(roots))
    tasks = [t for r in roots for t in spread(heldout_tasks(r), per_root)][:limit]
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    reasons: collections.Counter = collections.Counter()
    problems: list[str] = []
    worst: dict[str, dict] = {}  # per request kind: the request with the most forwards, and the slowest
    for i, task in enumerate(tasks):
        for kind, text, ranges, (a, b), mode in _requests(task, i):
            t0 = time.perf_counter()
            try:
                if kind == "rewrite":
                    plan = fill.plan_rewrite(text, a, b, task.lang, target, budget, max_tokens, mode)
                else:
                    plan = fill.plan_ranges(text, ranges, task.lang, target, budget, max_tokens)
                plan = fill.fit(plan, target, room)
                out = fill.run(backend, plan, cfg, session=f"safety-{i % 4}")
            except ValueError as exc:  # nothing to fill there: the server answers InvalidParams
                counts[kind]["invalid"] += 1
                reasons[f"{kind}: {exc}"[:80]] += 1
                continue
            ms = (time.perf_counter() - t0) * 1e3
            w = worst.setdefault(kind, {"nfe": 0, "ms": 0.0})
            slots = len(plan.canvas.canvas_ids) if plan.canvas else 0
            what = f"{task.task_id} ({', '.join(h.situation for h in plan.holes)}; {slots} slots)"
            if out.stats.nfe > w["nfe"]:
                w.update(nfe=out.stats.nfe, nfe_at=what)
            if ms > w["ms"]:
                w.update(ms=round(ms, 1), ms_at=what)
            edits = [(h.start, h.end, f) for j, (h, f) in enumerate(zip(plan.holes, out.fills, strict=True))
                     if out.refused(j) is None]
            counts[kind]["requests"] += 1
            counts[kind]["holes"] += len(plan.holes)
            counts[kind]["useful"] += len(edits)
            for j in range(len(plan.holes)):
                if (r := out.refused(j)) is not None:
                    counts[kind]["refused"] += 1
                    reasons[f"{kind}: " + r.split(":")[0].split(";")[0]] += 1
            bad = _violations(text, task.lang, edits)
            counts[kind]["violations"] += len(bad)
            problems += [f"{task.task_id} {kind}: {m}" for m in bad]
    return {"corpus": corpus, "holes": len(tasks), "languages": sorted({t.lang for t in tasks}),
            "model": backend.model_name, "dtype": backend.memory_format,
            "requests": {k: dict(v) for k, v in counts.items()},
            "refusals": dict(reasons.most_common()), "violations": problems[:50],
            "max_nfe": max((w["nfe"] for w in worst.values()), default=0),
            "max_ms": max((w["ms"] for w in worst.values()), default=0.0), "worst": worst}


def main(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    summary = run(args.corpus, args.limit, args.threads, args.dtype)
    summary["elapsed_s"] = round(time.perf_counter() - t0, 1)
    if args.json:
        json.dump(summary, sys.stdout, indent=1)
        print()
    else:
        for kind, c in summary["requests"].items():
            print(f"{kind}: {c.get('requests', 0)} requests, {c.get('holes', 0)} holes, {c.get('useful', 0)} edits "
                  f"returned, {c.get('refused', 0)} refused, {c.get('violations', 0)} violations")
        for why, n in summary["refusals"].items():
            print(f"  {n:4d}  {why}")
        for kind, w in summary["worst"].items():
            print(f"{kind}: most forwards {w['nfe']} ({w.get('nfe_at')}), slowest {w['ms']} ms ({w.get('ms_at')})")
    return 1 if summary["violations"] else 0
