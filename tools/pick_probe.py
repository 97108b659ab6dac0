#!/usr/bin/env python3
"""Whether picking among several fills of one hole beats the default fill: the headroom, and the judges we have.

    python tools/pick_probe.py build/lang/python [--limit 200] [--json]

Each held-out hole (`eval --suite heldout`'s) is filled by the default sampler at the default sizing and at fixed
canvases of 2 to 16 slots. Then one fill is picked per hole by:
- oracle: the candidate closest to the truth (the headroom; no tool can know it);
- min confidence: the sampler's lowest finalizing probability (SampleStats.min_confidence), highest wins;
- AR likelihood: the embedded model's next-token head scores each candidate's tokens and its end after the same SPM
  context, summed or per token;
- MBR: the candidate most like the others (edit similarity), as minimum-Bayes-risk decoding picks.
Exact match and edit similarity of each fixed size and of each pick, over pools of sizes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SIZES = ("syntax", "fixed:2", "fixed:4", "fixed:6", "fixed:8", "fixed:12", "fixed:16")
POOLS = {"all": SIZES, "default+16": ("syntax", "fixed:16"), "default+8+16": ("syntax", "fixed:8", "fixed:16"),
         "default+4+8+12+16": ("syntax", "fixed:4", "fixed:8", "fixed:12", "fixed:16")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    from engine.backend import EmbeddedBackend
    from engine.sampler import SamplerConfig
    from infill import evaluate as ev
    from infill.canvas import build_canvas, heal_text
    from infill.holes import Hole, find_hole

    tasks = ev.load_suite("heldout", None, args.corpus, args.limit)
    backend = EmbeddedBackend(None, device="cpu", threads=1)
    tok, sp = backend.tokenizer, backend.special
    sampler = ev.Sampler(ev._name(SamplerConfig()), SamplerConfig())
    ends = [sp.pad, sp.eos]

    def likelihood(context: list[int], ids: list[int]) -> float:
        """log p(ids, then an end) by the next-token head after context: one forward for the whole candidate."""
        with torch.no_grad():
            handle = backend.prefill(context, "pick")
            first = torch.log_softmax(backend.next_token_logits(handle), -1)
            if not ids:
                return float(torch.logsumexp(first[ends], 0))
            logp = torch.log_softmax(backend.verify(handle, ids)[1], -1)
            inner = logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:], dtype=torch.long)].sum()
            return float(first[ids[0]] + inner + torch.logsumexp(logp[-1, ends], 0))

    rows, t0 = [], time.perf_counter()
    for task in tasks:
        hole = find_hole(task.prefix + task.suffix, len(task.prefix), task.lang, tok)
        at = len(task.prefix)
        canvas = build_canvas(task.prefix + task.suffix, [Hole(at, at, hole.situation, 8)], tok, ev.DEFAULT_BUDGET,
                              heal=heal_text(task.prefix, tok))
        row = {"middle": task.middle, "fills": {}}
        for size in SIZES:
            f = ev.fill_task(backend, task, ev.parse_sizing(size), sampler)
            ids = tok.encode(canvas.heal + f.raw) if canvas.heal + f.raw else []
            row["fills"][size] = {"text": f.text, "min_confidence": f.min_confidence,
                                  "loglik": likelihood(canvas.context_ids, ids), "tokens": len(ids)}
        row["truth_loglik"] = likelihood(canvas.context_ids, tok.encode(canvas.heal + task.middle))
        rows.append(row)

    def scores(texts: list[str]) -> dict:
        n = max(1, len(texts))
        return {"exact": round(100 * sum(t.strip() == r["middle"].strip() for t, r in zip(texts, rows)) / n, 1),
                "edit_similarity": round(100 * sum(ev.edit_similarity(t, r["middle"]) for t, r in zip(texts, rows))
                                         / n, 1)}

    def mbr(r: dict, pool: tuple[str, ...]) -> str:
        texts = [r["fills"][s]["text"] for s in pool]
        return texts[max(range(len(pool)), key=lambda i: sum(ev.edit_similarity(texts[i], texts[j])
                                                               for j in range(len(pool)) if j != i))]

    judges = {
        "oracle": lambda r, pool: max((r["fills"][s]["text"] for s in pool), key=lambda t: (
            t.strip() == r["middle"].strip(), ev.edit_similarity(t, r["middle"]))),
        "min_confidence": lambda r, pool: r["fills"][max(pool, key=lambda s: r["fills"][s]["min_confidence"] or -1.0)
                                                     ]["text"],
        "ar_likelihood": lambda r, pool: r["fills"][max(pool, key=lambda s: r["fills"][s]["loglik"])]["text"],
        "ar_likelihood_per_token": lambda r, pool: r["fills"][max(
            pool, key=lambda s: r["fills"][s]["loglik"] / (r["fills"][s]["tokens"] + 1))]["text"],
        "mbr": mbr,
    }
    out = {
        "command": "python tools/pick_probe.py " + " ".join(sys.argv[1:]),
        "holes": len(rows),
        "model": backend.model_name,
        "sizes": {s: scores([r["fills"][s]["text"] for r in rows]) for s in SIZES},
        "picks": {pool: {j: scores([judge(r, sizes) for r in rows]) for j, judge in judges.items()}
                  for pool, sizes in POOLS.items()},
        # how often the head scores the true middle above the default fill: what a likelihood judge can know
        "truth_above_default": round(sum(r["truth_loglik"] > r["fills"]["syntax"]["loglik"] for r in rows)
                                     / max(1, len(rows)), 3),
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        for s, v in out["sizes"].items():
            print(f"{s:12s} exact {v['exact']:5.1f}  edit sim. {v['edit_similarity']:5.1f}")
        for pool, js in out["picks"].items():
            for j, v in js.items():
                print(f"{pool:20s} {j:24s} exact {v['exact']:5.1f}  edit sim. {v['edit_similarity']:5.1f}")
        print(f"the head scores the truth above the default fill for {100 * out['truth_above_default']:.1f}% of holes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
