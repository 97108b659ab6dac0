"""How far drafting can take `lossless`: trees of drafted steps, simulated over one token per forward's own steps.

    python tools/lossless_tree.py --json docs/results/lossless_tree.json

`lossless` checks a chain of drafted steps in each forward: the last forward's forecast drafts the next steps, and a
drafted canvas is confirmed when it is the canvas one token per forward reaches. A tree drafts alternatives too: the
second or third most confident slot instead of the first (`_step`'s `rank`). Which drafts one token per forward
confirms depends only on its own steps, so every tree is scored on the same recorded steps without running it:
  - the steps: one token per forward decodes each hole; every step's canvas and forecast is recorded;
  - a simulated forward at step t runs the current canvas and the tree drafted from step t-1's forecast, and takes
    steps while the next real canvas is a drafted child of the last one taken;
  - a block's first forward has no forecast to draft with and takes one step under every tree (the real sampler
    drafts it with the next-token head or the smaller canvas's steps, the same for every tree).
Also counted: for each step, which alternative drafted from the previous forecast was the real one ("rank r"), the
same slot with another token ("token"), or another slot with a token the forecast did not predict ("changed mind").
Forwards only, no wall clock: on a CPU a forward costs its rows, so wider trees are slower there.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TREES: dict[str, list[tuple[int, ...]]] = {  # each a set of paths of ranks from the current canvas
    "chain 2 (lossless:2)": [(0,)],
    "chain 3 (lossless, the default)": [(0,), (0, 0)],
    "chain 4": [(0,), (0, 0), (0, 0, 0)],
    "width 2, then 1": [(0,), (1,), (0, 0)],
    "width 3, then 1": [(0,), (1,), (2,), (0, 0)],
    "width 3, then 2": [(0,), (1,), (2,), (0, 0), (0, 1), (1, 0)],
    "7 drafts, depth 3": [(0,), (1,), (2,), (0, 0), (0, 1), (1, 0), (0, 0, 0)],
    "10 drafts, depth 3": [(0,), (1,), (2,), (3,), (0, 0), (0, 1), (1, 0), (0, 0, 0), (0, 0, 1), (0, 1, 0)],
    "15 drafts, depth 4": [(0,), (1,), (2,), (3,), (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0), (0, 0, 0),
                           (0, 0, 1), (0, 1, 0), (1, 0, 0), (0, 0, 0, 0)],
}
SUITES = (("heldout", "build/lang/python", 120), ("heldout", "build/lang/javascript", 80),
          ("humaneval-single", None, 120))


def record(backend, suites: Sequence[tuple[str, str | None, int]]) -> list[tuple]:
    """One token per forward on every hole; each block's run of steps: (cfg, rules, canvases S_0..S_n, forecasts
    F_0..F_n-1), S_i+1 being the step from S_i on F_i."""
    import engine.sampler as sampler
    from infill.evaluate import fill_task, heldout_tasks, load_suite, parse_sampler, parse_sizing

    real = sampler._step
    calls: list[tuple] = []

    def recording(cfg, rules, s, f, rank=0):
        out = real(cfg, rules, s, f, rank)
        calls.append((cfg, rules, s, f, out))
        return out

    runs: list[tuple] = []
    for suite, corpus, limit in suites:
        tasks = (heldout_tasks(corpus, backend.tokenizer) if suite == "heldout" else load_suite(suite))[:limit]
        for task in tasks:
            calls.clear()
            sampler._step = recording  # type: ignore[assignment]
            try:
                fill_task(backend, task, parse_sizing("syntax"), parse_sampler("one-per-forward"))
            finally:
                sampler._step = real  # type: ignore[assignment]
            run = None
            for cfg, rules, s, f, out in calls:
                if run is not None and run[2][-1] is s:
                    run[2].append(out)
                    run[3].append(f)
                else:
                    run = (cfg, rules, [s, out], [f])
                    runs.append(run)
    return runs


def drafts(step, cfg, rules, canvas, forecast, paths: Sequence[tuple[int, ...]]) -> dict[tuple[int, ...], object]:
    nodes: dict[tuple[int, ...], object] = {(): canvas}
    for path in sorted(paths, key=len):
        parent = nodes.get(path[:-1])
        if parent is None or parent.done:
            continue
        d = step(cfg, rules, parent, forecast, path[-1])
        if not any(len(q) == len(path) and q[:-1] == path[:-1] and d.same(nodes[q]) for q in nodes):
            nodes[path] = d  # an alternative that is the same step as a sibling (a forced choice) is not a canvas
    return nodes


def simulate(runs: list[tuple], paths: Sequence[tuple[int, ...]]) -> dict:
    import engine.sampler as sampler

    forwards = canvases = steps = 0
    for cfg, rules, S, F in runs:
        n, t = len(F), 0
        while t < n:
            forwards += 1
            if t == 0:  # nothing to draft with
                t, steps, canvases = 1, steps + 1, canvases + 1
                continue
            nodes = drafts(sampler._step, cfg, rules, S[t], F[t - 1], paths)
            canvases += len(nodes)
            path: tuple[int, ...] = ()
            taken = 1  # the forward's own step, always
            while t + taken < n:
                child = next((q for q in nodes if len(q) == len(path) + 1 and q[:-1] == path
                              and nodes[q].same(S[t + taken])), None)
                if child is None:
                    break
                path, taken = child, taken + 1
            t, steps = t + taken, steps + taken
    return {"forwards": forwards, "steps": steps, "canvases_per_forward": round(canvases / forwards, 2),
            "steps_per_forward": round(steps / forwards, 3)}


def misses(runs: list[tuple], ranks: int = 8) -> dict:
    import engine.sampler as sampler

    kinds: collections.Counter[str] = collections.Counter()
    for cfg, rules, S, F in runs:
        for t in range(1, len(F)):
            real = S[t + 1]
            kind = "changed mind"
            for r in range(ranks):
                if sampler._step(cfg, rules, S[t], F[t - 1], r).same(real):
                    kind = f"rank {r}"
                    break
            else:
                new = real.decided & ~S[t].decided
                first = sampler._step(cfg, rules, S[t], F[t - 1])
                if bool((new == (first.decided & ~S[t].decided)).all()):
                    kind = "token"
                elif int(new.sum()) > 1:
                    kind = "several slots"
            kinds[kind] += 1
    total = sum(kinds.values())
    return {"steps": total, **{k: round(v / total, 3) for k, v in sorted(kinds.items())}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", metavar="FILE", help="write the results here")
    p.add_argument("--model", default=None)
    a = p.parse_args()
    import torch

    from engine.backend import EmbeddedBackend

    torch.set_num_threads(1)
    backend = EmbeddedBackend(a.model, device="cpu", threads=1, exact_batches=True)
    runs = record(backend, SUITES)
    base = sum(len(F) for _, _, _, F in runs)
    out: dict = {"command": "python tools/lossless_tree.py" + (f" --json {a.json}" if a.json else ""),
                 "suites": [{"suite": s, "corpus": c, "holes": n} for s, c, n in SUITES],
                 "one_per_forward_forwards": base, "blocks": len(runs), "drafted_from_last_forecast": misses(runs),
                 "trees": {}}
    print(f"{len(runs)} blocks, {base} steps (one per forward's forwards)")
    print("drafted from the last forecast:", out["drafted_from_last_forecast"])
    for name, paths in TREES.items():
        r = simulate(runs, paths)
        r["nfe_ratio_vs_one_per_forward"] = round(base / r["forwards"], 3)
        out["trees"][name] = r
        print(f"{name:32s} canvases/forward {r['canvases_per_forward']:5.2f}  fewer forwards "
              f"{r['nfe_ratio_vs_one_per_forward']:.3f}x")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
