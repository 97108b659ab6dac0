#!/usr/bin/env python3
"""What the guard costs a keystroke in big files, with the rest of the keystroke around it.

    python tools/guard_time.py [--min-chars 50000] [--json]
    python tools/guard_time.py --scripts FILE.js FILE.ts ... [--json]

Types the benchmark's lines (server.bench.typing_places: real standard-library files, a line typed character by
character) whose files have at least --min-chars characters, through the server's pipeline in process (fill.plan_cursor,
fill.run with the as-you-type settings), and times each keystroke and the guard's part of it (infill.guard.check).
Prints p50 / p95 / max of both. The guard reads the file around the cursor at every keystroke: its cost must stay flat
in the file's size.

With --scripts, the guard alone (no model) on each JavaScript or TypeScript file given: after 20 statement keywords
drawn at random (seeded; minified code's too), three answers each (`this.`, `options.length;`, `foo(bar);`), p50 /
p95 / max per file.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--min-chars", type=int, default=50_000)
    ap.add_argument("--places", type=int, default=16)
    ap.add_argument("--keystrokes", type=int, default=48)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--scripts", nargs="+", metavar="FILE", help="time the guard alone on these JS/TS files")
    args = ap.parse_args()
    if args.scripts:
        return scripts(args.scripts, args.json)

    from engine.backend import EmbeddedBackend
    from infill import guard
    from server import bench, fill
    from server.config import Settings

    backend = EmbeddedBackend(None, device="cpu", threads=1)
    gc.collect()  # as the server does once the model is loaded: its objects stay out of later collections
    gc.freeze()
    settings = Settings()
    tok, cfg = backend.tokenizer, settings.sampler(backend=backend)
    real, spent = guard.check, []

    def timed(*a, **k):
        t0 = time.perf_counter()
        try:
            return real(*a, **k)
        finally:
            spent.append((time.perf_counter() - t0) * 1e3)

    fill.guard.check = timed  # fill calls guard.check through its module
    places = [p for p in bench.typing_places(args.places, args.keystrokes) if len(p[1]) >= args.min_chars]
    rows = []
    for name, text, cursor, code in places:
        plan = fill.plan_cursor(text, cursor, "python", tok, settings.context_budget, settings.max_tokens)
        fill.run(backend, plan, cfg, name, **settings.as_you_type())  # the file's first request: prefill, not timed
        for k in range(1, len(code) + 1):
            doc = text[:cursor] + code[:k] + text[cursor:]
            spent.clear()
            t0 = time.perf_counter()
            plan = fill.plan_cursor(doc, cursor + k, "python", tok, settings.context_budget, settings.max_tokens)
            fill.run(backend, plan, cfg, name, **settings.as_you_type())
            rows.append(((time.perf_counter() - t0) * 1e3, sum(spent)))
        backend.drop_session(name)

    out = {"command": "python tools/guard_time.py " + " ".join(sys.argv[1:]), "places": [p[0] for p in places],
           "file_chars": {p[0]: len(p[1]) for p in places}, "keystrokes": len(rows),
           "guard_ms": pct([g for _, g in rows]), "keystroke_ms": pct([k for k, _ in rows])}
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"{len(rows)} keystrokes in {', '.join(out['places'])}")
        print(f"guard ms {out['guard_ms']}, keystroke ms {out['keystroke_ms']}")
    return 0


def pct(values: list[float]) -> dict:
    v = sorted(values)
    return {"p50": round(v[len(v) // 2], 1), "p95": round(v[int(0.95 * (len(v) - 1))], 1), "max": round(v[-1], 1)}


def scripts(paths: list[str], as_json: bool) -> int:
    import random
    import re

    from infill import guard

    out: dict = {"command": "python tools/guard_time.py " + " ".join(sys.argv[1:]), "files": {}}
    for path in paths:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        lang = "typescript" if path.endswith((".ts", ".tsx")) else "javascript"
        # after a statement's keyword, on its own line or (minified) after a `;`, `{` or `}`
        starts = [m.end() for m in re.finditer(r"(?:[;{}]|\n[ \t]*)(?:const|let|var|return)[ \t]", text)]
        starts = random.Random(1).sample(starts, min(20, len(starts)))
        times = []
        for at in starts:
            for answer in ("this.", "options.length;", "foo(bar);"):
                t0 = time.perf_counter()
                guard.check(text, lang, [guard.Proposal(at, at, answer, answer)])
                times.append((time.perf_counter() - t0) * 1e3)
        out["files"][path] = {"chars": len(text), "checks": len(times), **(pct(times) if times else {})}
    if as_json:
        print(json.dumps(out, indent=1))
    else:
        for path, r in out["files"].items():
            print(f"{path} ({r['chars']} chars, {r['checks']} checks): guard ms {r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
