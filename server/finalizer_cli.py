"""`diffusion-ls train-finalizer`: decode holes with the model, learn from its traces which slots to finalize.

    diffusion-ls train-finalizer --threads 1                      the shipped model's, from Python's stdlib holes
    diffusion-ls train-finalizer --out path/to/model --corpus src/ --holes 200 --threads 1

Holes are cut, as the heldout suite cuts them, from source trees that are not evaluation sets (default: the running
Python's standard library without its tests), filled exactly as `eval` fills them with the traced sampler (default
one token per forward), and every masked slot at every forward becomes a row (engine.finalizer). The classifier is
written to `<out>/finalizer.safetensors`, where the `learned` strategy finds it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import sysconfig
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from engine import DEFAULT_MODEL_DIR
from engine import finalizer as fz
from engine.sampler import SamplerConfig
from infill import evaluate as ev

# never traced: test suites (evaluation-like code), installed packages (the training corpus came from PyPI)
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "node_modules", ".git"}


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=str(DEFAULT_MODEL_DIR),
                   help="model directory to write finalizer.safetensors into (default: the shipped model)")
    p.add_argument("--model", help="model whose traces to learn from (default: --out)")
    p.add_argument("--corpus", action="append",
                   help="source tree to cut holes from, repeatable (default: this Python's standard library); "
                        "never an evaluation set")
    p.add_argument("--holes", type=int, default=1000, help="holes to decode, spread over the files")
    p.add_argument("--sampler", default="one-per-forward",
                   help="the decoding traced (eval's --sampler syntax; not lossless)")
    p.add_argument("--hidden", type=int, default=32, help="hidden units (0: logistic regression)")
    p.add_argument("--train-steps", type=int, default=400, help="full-batch Adam steps")
    p.add_argument("--precision", type=float, default=0.95,
                   help="the saved threshold: the lowest at which held-back slots scored above it are right this "
                        "often")
    p.add_argument("--threshold", type=float, help="save this threshold instead")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def default_corpus() -> list[Path]:
    return [Path(sysconfig.get_paths()["stdlib"])]


def source_files(roots: Sequence[Path]) -> Iterator[tuple[str, str, str]]:
    """(path, text, lang) of the source files under roots, test folders, test files and installed packages skipped."""
    from infill.sizing import corpus_files

    for root in roots:
        for path, text, lang in corpus_files(root, skip_dirs=SKIP_DIRS):
            name = os.path.basename(path)
            if not (name.startswith("test_") or name.endswith("_test.py")):
                yield path, text, lang


def tasks_from(roots: Sequence[Path], holes: int) -> list[ev.Task]:
    """Holes cut as the heldout suite cuts them (a few spans of each kind per file), spread to `holes`."""
    from infill.sizing import pick_spans
    from infill.spans import syntax_spans

    tasks = []
    for path, text, lang in source_files(roots):
        for span in pick_spans(text, syntax_spans(text, lang), ev.HELDOUT_KINDS, 1):
            middle = text[span.start : span.end]
            if middle.strip() and len(middle) <= ev.HELDOUT_MAX_TOKENS * 8:
                tasks.append(ev.Task(f"{path}:{span.start}:{span.kind}", "trace", lang, text[: span.start],
                                     text[span.end :], middle, kind=span.kind))
    return ev.spread(tasks, holes)


def main(args: argparse.Namespace) -> int:
    from engine.backend import EmbeddedBackend
    from engine.model import ModelLoadError

    out = Path(args.out)
    roots = [Path(c) for c in args.corpus] if args.corpus else default_corpus()
    try:
        sampler = ev.parse_sampler(args.sampler, replace(SamplerConfig()))
        if sampler.ar or sampler.cfg.strategy in ("lossless", "learned") or sampler.name == "canonical":
            raise ev.EvalError(f"--sampler {args.sampler}: trace a diffusion sampler that takes one step a forward")
        missing = [str(r) for r in roots if not r.is_dir()]
        if missing:
            raise ev.EvalError(f"--corpus {', '.join(missing)}: not a directory")
        tasks = tasks_from(roots, args.holes)
        if not tasks:
            raise ev.EvalError(f"no holes in {', '.join(map(str, roots))}")
        backend = EmbeddedBackend(args.model or out, device=args.device, threads=args.threads)
    except (ev.EvalError, ValueError, ModelLoadError) as exc:
        print(f"diffusion-ls train-finalizer: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    with fz.recording() as recorder:
        for task in tasks:
            ev.fill_task(backend, task, ev.Sizing("syntax"), sampler, postprocess=False, session="trace")
    traced_s = time.perf_counter() - t0
    try:
        model = fz.train(recorder.blocks, hidden=args.hidden, steps=args.train_steps,
                         precision=args.precision, threshold=args.threshold)
    except ValueError as exc:
        print(f"diffusion-ls train-finalizer: {exc}", file=sys.stderr)
        return 2
    model.info.update(traced="one-per-forward" if sampler.name == "one-per-forward" else sampler.name,
                      holes=str(len(tasks)), corpus=", ".join(r.name for r in roots))
    out.mkdir(parents=True, exist_ok=True)
    path = out / fz.FILE
    model.save(path)
    fz.load(path)  # what the engine will read: checked now, not at the first fill
    result = {"path": str(path), "threshold": model.threshold, **model.info, "traced_s": round(traced_s, 1),
              "elapsed_s": round(time.perf_counter() - t0, 1)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"wrote {path}: threshold {model.threshold:g}, validation AUC {model.info['validation_auc']}, "
              f"precision {model.info['validation_precision']}, recall {model.info['validation_recall']} "
              f"({model.info['rows_train']} rows from {len(tasks)} holes, {result['elapsed_s']} s)")
    return 0
