"""Quality against tokens per forward: the `learned` finalizer at several thresholds beside `threshold` and one
token per forward, on HumanEval single-line and held-out holes.

    python tools/finalizer_frontier.py --plot docs/plots/finalizer_frontier.png
    python tools/finalizer_frontier.py --suites heldout --samplers learned:0.9 learned:0.8     (adds to --out)
    python tools/finalizer_frontier.py --separability --suites        (only how well the rules rank slots)

Every point is one `diffusion-ls eval ... --json --threads 1` run, recorded with its exact command; runs already in
--out are kept (a point measured again replaces its old value). Quality and forwards only: no wall-clock figures.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SUITES = {
    "humaneval-single": ["--suite", "humaneval-single", "--limit", "200"],
    "heldout": ["--suite", "heldout", "--corpus", "build/py_heldout/heldout_tree", "--limit", "200"],
}
SAMPLERS = ("one-per-forward", "threshold:0.9", "threshold:0.7", "threshold:0.5", "learned:0.99", "learned:0.97",
            "learned:0.9", "learned:0.7")
KEEP = ("n", "pass@1", "exact_match", "edit_similarity", "syntax_valid", "syntax_valid_raw", "empty_fills",
        "tokens_per_forward", "nfe", "tokens", "restarts", "sampler")


def run(suite: str, sampler: str, model: str | None) -> dict:
    cmd = ["diffusion-ls", "eval", *SUITES[suite], "--sampler", sampler, "--json", "--threads", "1", "--no-progress"]
    if model:
        cmd += ["--model", model]
    got = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if got.returncode:
        raise SystemExit(f"{shlex.join(cmd)} failed: {got.stderr.strip()[-2000:]}")
    result = json.loads(got.stdout)
    return {"suite": suite, "command": shlex.join(cmd), **{k: result.get(k) for k in KEEP}}


def separability(holes: int) -> dict:
    """How well the shipped finalizer and confidence alone tell a slot whose pick is final from one whose pick will
    change: one-per-forward traces of holes cut from this repository's own sources (not the stdlib it was trained on),
    the area under the ROC curve of each score, and precision / recall of the slots at or above each threshold."""
    import torch

    from engine import finalizer as fz
    from engine.backend import EmbeddedBackend
    from infill import evaluate as ev
    from server.finalizer_cli import tasks_from

    torch.set_num_threads(1)
    tasks = tasks_from([ROOT / "engine", ROOT / "infill", ROOT / "server"], holes)
    backend = EmbeddedBackend(threads=1)
    with fz.recording() as recorder:
        for task in tasks:
            ev.fill_task(backend, task, ev.Sizing("syntax"), ev.parse_sampler("one-per-forward"), postprocess=False)
    X = torch.cat([x for x, _y in recorder.blocks])  # (N, F)
    y = torch.cat([y for _x, y in recorder.blocks])  # (N,)
    score = fz.for_backend(backend).score(X)  # (N,)
    conf = X[:, fz.FEATURES.index("confidence")]  # (N,)
    out: dict = {"holes": len(tasks), "rows": len(y), "final_share": round(float(y.mean()), 4),
                 "auc": {"learned": round(fz._auc(score, y), 4), "confidence": round(fz._auc(conf, y), 4),
                         "margin": round(fz._auc(X[:, fz.FEATURES.index("margin")], y), 4)}}
    for name, v in (("learned", score), ("confidence", conf)):
        out[name] = {f"{t:g}": {"precision": round(float(y[v >= t].mean()), 4),
                                "recall": round(float((v >= t)[y > 0].float().mean()), 4)}
                     for t in (0.95, 0.9, 0.8, 0.7, 0.5)}
    return out


def quality(p: dict) -> float:
    """The suite's headline: pass@1 where it executes, exact match otherwise."""
    return p["pass@1"] if p["pass@1"] is not None else p["exact_match"]


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suites = sorted({p["suite"] for p in points})
    fig, axes = plt.subplots(1, len(suites), figsize=(6 * len(suites), 4.2), squeeze=False)
    for ax, suite in zip(axes[0], suites, strict=True):
        mine = [p for p in points if p["suite"] == suite]
        for family, style in (("learned", "o-"), ("threshold", "s--"), ("one-per-forward", "k*")):
            pts = sorted((p for p in mine if p["sampler"].startswith(family)), key=lambda p: p["tokens_per_forward"])
            if pts:
                ax.plot([p["tokens_per_forward"] for p in pts], [100 * quality(p) for p in pts], style, label=family)
                for p in pts:
                    ax.annotate(p["sampler"].partition(":")[2], (p["tokens_per_forward"], 100 * quality(p)),
                                fontsize=7, textcoords="offset points", xytext=(3, 3))
        ax.axvline(2.5, color="grey", lw=0.5, ls=":")
        ax.set_xlabel("tokens per forward")
        ax.set_ylabel("pass@1 (%)" if mine and mine[0]["pass@1"] is not None else "exact match (%)")
        ax.set_title(f"{suite} (n={mine[0]['n'] if mine else 0})")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="docs/results/finalizer_frontier.json")
    p.add_argument("--suites", nargs="*", default=list(SUITES), choices=list(SUITES))
    p.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    p.add_argument("--model", help="model directory (default: the shipped model)")
    p.add_argument("--plot", help="also draw the frontier as a PNG here")
    p.add_argument("--separability", type=int, nargs="?", const=300, metavar="HOLES",
                   help="also measure how well the finalizer and confidence rank slots (see separability)")
    args = p.parse_args()
    from engine import DEFAULT_MODEL_DIR
    from engine import finalizer as fz

    out = ROOT / args.out
    doc = json.loads(out.read_text()) if out.exists() else {"points": []}
    f = fz.load(Path(args.model or DEFAULT_MODEL_DIR) / fz.FILE)
    doc["finalizer"] = {"threshold": f.threshold, "features": list(fz.FEATURES), **f.info}
    for suite in args.suites:
        for sampler in args.samplers:
            point = run(suite, sampler, args.model)
            doc["points"] = [q for q in doc["points"] if (q["suite"], q["sampler"]) != (suite, point["sampler"])]
            doc["points"].append(point)
            doc["points"].sort(key=lambda q: (q["suite"], q["sampler"]))
            out.write_text(json.dumps(doc, indent=1) + "\n")
            print(f"{suite:<17} {point['sampler']:<16} quality {100 * quality(point):5.1f}  "
                  f"tokens/forward {point['tokens_per_forward']}", flush=True)
    if args.separability:
        doc["separability"] = {"command": f"python tools/finalizer_frontier.py --suites --separability "
                                          f"{args.separability}", **separability(args.separability)}
        out.write_text(json.dumps(doc, indent=1) + "\n")
        print(json.dumps(doc["separability"]["auc"]))
    if args.plot:
        plot(doc["points"], ROOT / args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
