"""What the slow keystrokes are, and whether a fill bound to be refused can be given up early.

    python tools/tail_probe.py --places 16 --json docs/results/tail_probe.json

Types the bench's lines (server.bench.typing_places: real stdlib files, a line typed character by character) through
the server's pipeline in process, with the server's settings (min_confidence: a fill holding a token finalized below
it is refused as unsure). Per keystroke: its forwards, whether its fill was shown or why it was refused, and after
each forward the lowest confidence among the text slots still masked.

Then, for an early give-up rule "after forward F, a fill whose masked text holds a slot below tau stops": how many
fills it cuts, how many of those would have been shown, the forwards saved and the forwards' p50 / p95 after it.
A rule worth having would cut the long refused fills (the p95) and few shown ones.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RULES = [(f, tau) for f in (3, 4, 5, 6) for tau in (0.05, 0.1, 0.2)]
CAPS = range(5, 11)


def record(places: int, keystrokes: int) -> list[dict]:
    import engine.sampler as sampler
    from engine.backend import EmbeddedBackend
    from server import bench, fill
    from server.config import Settings

    backend = EmbeddedBackend(None, device="cpu", threads=1)
    settings = Settings().model_copy(update={"typing_forwards": 0})  # fills uncut: forward_cap simulates the cap
    cfg, tok, pad = settings.sampler(backend=backend), backend.tokenizer, backend.special.pad
    real = sampler._step
    lows: list[float] = []

    def recording(cfg, rules, s, f, rank=0):
        out = real(cfg, rules, s, f, rank)
        if rank == 0:  # the loop's own step, not a draft
            masked = ~out.decided & (out.pick != pad)
            lows.append(round(float(out.conf[masked].min()), 4) if bool(masked.any()) else 1.0)
        return out

    rows = []
    sampler._step = recording  # type: ignore[assignment]
    try:
        for j, (name, text, cursor, code) in enumerate(bench.typing_places(places, keystrokes)):
            session = f"tail-{j}"
            fill.run(backend, fill.plan_cursor(text, cursor, "python", tok, settings.context_budget,
                                               settings.max_tokens), cfg, session)
            for k in range(1, len(code) + 1):
                doc = text[:cursor] + code[:k] + text[cursor:]
                plan = fill.plan_cursor(doc, cursor + k, "python", tok, settings.context_budget, settings.max_tokens)
                lows.clear()
                out = fill.run(backend, plan, cfg, session, **settings.as_you_type())
                why = out.refused(0)
                rows.append({"place": name, "k": k, "nfe": out.stats.nfe, "fill": out.fills[0],
                             "shown": why is None and bool(out.fills[0].strip()),
                             "refused": (why or "").split(":")[0][:60] or None, "lowest_masked": list(lows)})
            backend.drop_session(session)
    finally:
        sampler._step = real  # type: ignore[assignment]
    return rows


def summarize(rows: list[dict]) -> dict:
    from server.bench import pct  # the bench's quantile (nearest rank), so the figures read as the bench's do

    nfe = [r["nfe"] for r in rows]
    long = [r for r in rows if r["nfe"] >= 2 * pct(nfe, 0.5)]
    out: dict = {
        "keystrokes": len(rows), "shown": sum(r["shown"] for r in rows),
        "forwards": {"p50": pct(nfe, 0.5), "p95": pct(nfe, 0.95), "max": max(nfe), "total": sum(nfe)},
        "long": {"at_least_forwards": 2 * pct(nfe, 0.5), "keystrokes": len(long),
                 "shown": sum(r["shown"] for r in long),
                 "refused": dict(collections.Counter(r["refused"] for r in long if r["refused"]).most_common())},
        "early_give_up": [],
    }
    out["forward_cap"] = []  # typingForwards: a fill not done after n forwards is given up (measured with none)
    for n in CAPS:
        cut = [r for r in rows if r["nfe"] > n]
        after = [min(r["nfe"], n) for r in rows]
        out["forward_cap"].append({"max_forwards": n, "cut": len(cut), "shown_lost": sum(r["shown"] for r in cut),
                                   "p50": pct(after, 0.5), "p95": pct(after, 0.95)})
    for f, tau in RULES:
        cut = [i for i, r in enumerate(rows) if len(r["lowest_masked"]) > f and r["lowest_masked"][f - 1] < tau]
        cutset = set(cut)
        after = [f if i in cutset else r["nfe"] for i, r in enumerate(rows)]
        out["early_give_up"].append({
            "after_forward": f, "tau": tau, "cut": len(cut), "shown_lost": sum(rows[i]["shown"] for i in cut),
            "long_cut": sum(rows[i]["nfe"] >= out["long"]["at_least_forwards"] for i in cut),
            "forwards_saved": sum(rows[i]["nfe"] - f for i in cut), "p50": pct(after, 0.5), "p95": pct(after, 0.95)})
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--places", type=int, default=16, help="lines typed (default 16)")
    p.add_argument("--keystrokes", type=int, default=48, help="characters typed per line at most (default 48)")
    p.add_argument("--json", metavar="FILE", help="write the summary and every keystroke here")
    args = p.parse_args()
    rows = record(args.places, args.keystrokes)
    summary = summarize(rows)
    print(json.dumps(summary, indent=1))
    if args.json:
        command = f"python tools/tail_probe.py --places {args.places} --keystrokes {args.keystrokes} --json {args.json}"
        Path(args.json).write_text(json.dumps({"command": command, **summary, "keystrokes_detail": rows}, indent=1)
                                   + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
