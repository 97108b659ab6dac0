#!/usr/bin/env python3
"""How often the guard refuses what it should let through, at the cursor: completions as you type are judged by the
same guard as rewrites and fills (infill/guard.py), and a check that refuses real code costs every user.

    python tools/guard_refusals.py build/lang [--files 150] [--model-holes 150] [--json]

1. real spans: spans of held-out files (rest of line, statement, arguments, expression; shorter than 120 chars) are
   cut out, and each span's own text is judged as the completion at its start; the guard should refuse none (and
   the time it takes is reported: it runs at every keystroke);
2. real completions: for the first `--model-holes` such spans of each of Python and JavaScript, the server's pipeline
   (fill.plan_cursor, fill.run: the shipped model, post-processing, the guard) completes the cut, and every refusal
   is listed with its reason, to be read: a refusal there may be right.

The trees are those of tools/lang_corpus.py (packages not in the training corpus).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infill import guard  # noqa: E402
from infill.spans import syntax_spans  # noqa: E402

KINDS = ("rest_of_line", "statement", "arguments", "expression")
EXT = {"python": "py", "javascript": "js", "typescript": "ts"}
QUIET = ("the answer was empty", "the answer only repeated the code around it",  # no answer to refuse
         "nothing of the answer fits the code around it")


def spans(tree: Path, lang: str, files: int, rng: random.Random, per_file: int) -> list[tuple[str, int, int]]:
    """(text, start, end) of up to `per_file` cursor-like spans in each of `files` files of the tree."""
    paths = sorted(tree.rglob(f"*.{EXT[lang]}"))
    rng.shuffle(paths)
    out = []
    for path in paths[:files]:
        text = path.read_text(encoding="utf-8", errors="replace")
        if len(text) > 60_000:
            continue
        found = [s for s in syntax_spans(text, lang) if s.kind in KINDS and s.end - s.start < 120]
        out += [(text, s.start, s.end) for s in rng.sample(found, min(per_file, len(found)))]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", help="tools/lang_corpus.py's output: one tree per language")
    ap.add_argument("--files", type=int, default=150)
    ap.add_argument("--model-holes", type=int, default=150, help="real completions per language (0: none)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = random.Random(2)
    result: dict = {"command": "python tools/guard_refusals.py " + " ".join(sys.argv[1:]), "real_spans": {},
                    "real_completions": {}}
    cases: dict[str, list] = {}
    for lang in EXT:
        tree = Path(args.corpus) / lang
        if not tree.is_dir():
            continue
        cases[lang] = spans(tree, lang, args.files, rng, 6)
        refused, took = [], []
        for text, a, b in cases[lang]:
            doc, mid = text[:a] + text[b:], text[a:b]
            t0 = time.perf_counter()
            v = guard.check(doc, lang, [guard.Proposal(a, a, mid, mid)])[0]
            took.append((time.perf_counter() - t0) * 1e3)
            if v.reason is not None:
                refused.append({"completion": mid, "reason": v.reason})
        took.sort()
        result["real_spans"][lang] = {"spans": len(cases[lang]), "refused": len(refused), "examples": refused[:10],
                                      "guard_ms": {"p50": round(took[len(took) // 2], 2),
                                                   "p95": round(took[int(0.95 * (len(took) - 1))], 2),
                                                   "max": round(took[-1], 2)} if took else None}
    if args.model_holes:
        from engine.backend import EmbeddedBackend
        from server import fill
        from server.config import Settings

        backend = EmbeddedBackend(threads=1)
        s = Settings()
        budget, max_tokens, _room = s.limits(backend)
        cfg = s.sampler(backend=backend)
        target = fill.target(backend)
        for lang in ("python", "javascript"):
            reasons: collections.Counter = collections.Counter()
            listed, answers, ms = [], 0, 0.0
            for text, a, b in cases.get(lang, [])[: args.model_holes]:
                doc = text[:a] + text[b:]
                plan = fill.plan_cursor(doc, a, lang, target, budget, max_tokens)
                out = fill.run(backend, plan, cfg, session="guard")
                fills = [f for f in out.fills if f.strip()]
                why = out.refused(0)
                if why is None and not fills:
                    continue
                answers += 1
                if why is not None and not why.startswith(QUIET):
                    reasons[why.split(":")[0]] += 1
                    listed.append({"before": doc[max(0, a - 60) : a].splitlines()[-1:], "reason": why})
                t0 = time.perf_counter()
                guard.check(doc, lang, [guard.Proposal(a, a, out.fills[0] or text[a:b], out.fills[0] or text[a:b])])
                ms += (time.perf_counter() - t0) * 1e3
            result["real_completions"][lang] = {"answers": answers, "refused": sum(reasons.values()),
                                                "by_reason": dict(reasons), "refusals": listed,
                                                "guard_ms_mean": round(ms / max(1, answers), 2)}
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for lang, r in result["real_spans"].items():
            print(f"{lang}: {r['refused']} of {r['spans']} real spans refused as completions, guard {r['guard_ms']} ms")
        for lang, r in result["real_completions"].items():
            print(f"{lang}: {r['refused']} of {r['answers']} real completions refused ({r['by_reason']}), guard "
                  f"{r['guard_ms_mean']} ms")
            for x in r["refusals"]:
                print(f"   {x['before']} -> {x['reason']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
