"""`diffusion-ls eval`: quality of fills on an infilling benchmark, scored by execution where the suite has tests.

    diffusion-ls eval --suite humaneval-single --limit 100 --sizing oracle
    diffusion-ls eval --suite heldout --corpus path/to/tree --sampler one-per-forward --json
    diffusion-ls eval --suite humaneval-single --limit 100 --sampler lossless --against one-per-forward:exact
    diffusion-ls eval --suite repo --corpus path/to/packages --repo-context 0     (server.repo_eval)

The work is infill.evaluate's; this module parses options, loads the model and prints.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import replace

from engine.sampler import SamplerConfig
from infill import evaluate as ev
from infill import sandbox
from server.config import Settings


def configure(p: argparse.ArgumentParser) -> None:
    s = Settings()
    p.add_argument("--suite", required=True, choices=(*ev.SUITES, "repo"),
                   help="benchmark to run (repo: each folder of --corpus a repository, filled as the server does)")
    p.add_argument("--data", help="evaluation data folder (humaneval-infilling/, safim-python/, santacoder-fim/); "
                                  "default: ../shared/data beside the repository, when it exists")
    p.add_argument("--corpus", help="heldout: a source tree not in the training corpus to cut holes from")
    p.add_argument("--limit", type=int, help="at most N holes, evenly spread over the suite")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--sampler", default="default",
                   help="default | one-per-forward[:exact] | lossless[:DRAFT] | ar | spec[:DRAFT] | threshold[:T]"
                        " | eb[:GAMMA] | learned[:T] (the model's finalizer.safetensors)"
                        " | confidence|margin|entropy[:K]"
                        " | canonical (true middles: checks the harness)")
    p.add_argument("--against", metavar="SAMPLER",
                   help="also fill every hole with this sampler, in turn with --sampler: its forwards and time, the "
                        "speedup over it and how many fills differ (lossless against one-per-forward:exact: none)")
    p.add_argument("--sizing", default="syntax", help="oracle | syntax | fixed:N (default: syntax, as the server)")
    p.add_argument("--steps", type=int, default=s.steps, help="sampler step limit per block")
    p.add_argument("--block-size", type=int, default=s.block_size, help="canvas block size")
    p.add_argument("--stop-below", type=float, default=0.0, metavar="P",
                   help="give a fill up at its first text token finalized below P (as the server does for completions "
                        "as you type at minConfidence P); its confidence_gate rows from P up stay comparable")
    p.add_argument("--start", type=int, default=SamplerConfig().start,
                   help="first canvas of a syntax-sized hole, doubled while the model fills it to the last slot "
                        "(0: the sized capacity)")
    p.add_argument("--max-new", type=int, default=s.max_tokens, help="cap on a grown fill, in tokens")
    p.add_argument("--budget", type=int, default=s.context_budget, help="context tokens around the hole")
    p.add_argument("--model", help="model directory (default: the shipped model)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "int8"),
                   help="the embedded model's weights (default auto: bfloat16 where the device multiplies it natively)")
    p.add_argument("--timeout", type=float, default=sandbox.TIMEOUT_S, help="seconds per program / unit test")
    p.add_argument("--memory-mb", type=int, default=sandbox.MEMORY_MB, help="address-space limit per program")
    p.add_argument("--no-postprocess", action="store_true", help="score the raw canvas text")
    p.add_argument("--typed", type=int, default=0, metavar="N",
                   help="as if the first N characters of the middle's first word were typed (holes mid-word)")
    p.add_argument("--no-heal", action="store_true", help="no token healing (a hole right after a word token)")
    p.add_argument("--records", metavar="FILE", help="also write one JSON line per hole (fill, truth, metrics)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--repo-context", type=int, default=s.repo_context_budget, metavar="TOKENS",
                   help="repo: repoContextBudget, tokens of other files' chunks before the SPM context (0: none; "
                        "default: the model's, 256 for the shipped one)")


def _embedded(args: argparse.Namespace, *samplers: ev.Sampler | None):
    """The embedded model the options name, or None after saying why it cannot load. A sampler that decodes in the
    arithmetic of batches (lossless, one-per-forward:exact) keeps `auto` off int8, as the server does for lossless."""
    from engine.backend import EmbeddedBackend
    from engine.model import ModelLoadError

    exact = any(s is not None and (s.cfg.exact or s.cfg.strategy == "lossless") for s in samplers)
    try:
        return EmbeddedBackend(args.model, device=args.device, threads=args.threads, dtype=args.dtype,
                               exact_batches=exact)
    except ModelLoadError as exc:
        print(f"diffusion-ls eval: {exc}", file=sys.stderr)
        return None


def main(args: argparse.Namespace) -> int:
    if args.suite == "repo":
        return repo_main(args)
    try:
        sizing = ev.parse_sizing(args.sizing)
        base = replace(SamplerConfig(), steps=args.steps, block_size=args.block_size, max_new=args.max_new,
                       start=args.start, stop_below=args.stop_below)
        sampler = ev.parse_sampler(args.sampler, base)
        against = ev.parse_sampler(args.against, base) if args.against else None
        tasks = ev.load_suite(args.suite, args.data, args.corpus, args.limit, args.typed)
    except (ev.EvalError, ValueError) as exc:
        print(f"diffusion-ls eval: {exc}", file=sys.stderr)
        return 2
    backend = _embedded(args, sampler, against)
    if backend is None:
        return 2
    if "learned" in (sampler.cfg.strategy, against.cfg.strategy if against else ""):
        from engine.finalizer import FinalizerError, for_backend

        try:
            for_backend(backend)
        except FinalizerError as exc:
            print(f"diffusion-ls eval: {exc}", file=sys.stderr)
            return 2
    out = open(args.records, "w", encoding="utf-8") if args.records else None  # noqa: SIM115 (closed below)

    def write(record: dict) -> None:
        if out is not None:
            out.write(json.dumps(record) + "\n")

    try:
        result = ev.evaluate(backend, tasks, sizing, sampler, args.budget, not args.no_postprocess, args.timeout,
                             args.memory_mb, progress=False if args.no_progress else None, on_record=write,
                             heal=not args.no_heal, against=against)
    finally:
        if out is not None:
            out.close()
    result["typed"] = args.typed
    result["dtype"] = backend.memory_format
    if args.json:
        print(json.dumps(result))
    else:
        print(report(result))
    return 0


def repo_main(args: argparse.Namespace) -> int:
    """The repo suite: server.repo_eval with the server's settings but for the options given."""
    from server import repo_eval

    try:
        tasks = ev.spread(repo_eval.repo_tasks(args.corpus or ""), args.limit)
        settings = Settings(steps=args.steps, block_size=args.block_size, max_tokens=args.max_new,
                            context_budget=args.budget, repo_context_budget=args.repo_context,
                            canvas_start=args.start, threads=args.threads)
    except (ev.EvalError, ValueError) as exc:
        print(f"diffusion-ls eval: {exc}", file=sys.stderr)
        return 2
    backend = _embedded(args)
    if backend is None:
        return 2
    with open(args.records, "w", encoding="utf-8") if args.records else contextlib.nullcontext() as out:
        write = (lambda r: out.write(json.dumps(r) + "\n")) if out is not None else None
        result = repo_eval.evaluate(backend, tasks, settings, on_record=write)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"repo: n={result['n']}  repoContext={result['repo_context_budget']}  model={result['model']}\n"
              f"  exact {_pct(result['exact_match'])}  first-line exact {_pct(result['first_line_exact'])}  "
              f"edit-sim {_pct(result['edit_similarity'])}  identifier exact {_pct(result['identifier_exact'])}  "
              f"identifier F1 {_pct(result['identifier_f1'])}  empty {_pct(result['empty_fills'])}\n"
              f"  fill p50 {result['fill_ms_p50']} ms  p95 {result['fill_ms_p95']} ms  repo tokens "
              f"{result['repo_tokens']}  ({result['elapsed_s']} s)")
        for name, g in result["by_kind"].items():
            print(f"  {name:<16} n={g['n']:<5} exact {_pct(g['exact_match'])}  edit-sim {_pct(g['edit_similarity'])}"
                  f"  identifier F1 {_pct(g['identifier_f1'])}")
    return 0


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def report(r: dict) -> str:
    """A few readable lines of one run."""
    lines = [
        f"{r['suite']}: n={r['n']}  sizing={r['sizing']}  sampler={r['sampler']}  model={r['model']}",
        f"  pass@1 {_pct(r['pass@1'])}  exact {_pct(r['exact_match'])}  edit-sim {_pct(r['edit_similarity'])}  "
        f"syntax-valid {_pct(r['syntax_valid'])} (raw canvas {_pct(r['syntax_valid_raw'])})  "
        f"empty {_pct(r['empty_fills'])}"
        + (f"  syntax-match {_pct(r['syntax_match'])}" if "syntax_match" in r else ""),
        f"  tokens/forward {r['tokens_per_forward']}  nfe {r['nfe']}  tokens {r['tokens']}  capacity {r['capacity']}  "
        f"fill p50 {r['fill_ms_p50']} ms  p95 {r['fill_ms_p95']} ms  ({r['elapsed_s']} s)",
    ]
    if r.get("against"):
        a = r["against"]
        lines.append(f"  against {a['sampler']}: pass@1 {_pct(a['pass@1'])}  exact {_pct(a['exact_match'])}  edit-sim "
                     f"{_pct(a['edit_similarity'])}, nfe {a['nfe']} ({a['nfe_ratio']}x the forwards), fill mean "
                     f"{a['fill_ms_mean']} ms vs {a['fill_ms_mean_self']} ms (speedup {a['speedup']}x, decoding alone "
                     f"{a['decode_speedup']}x), "
                     f"{a['mismatches']} fills differ")
    if r.get("confidence_gate"):  # what the server's minConfidence does to automatic completions
        lines.append("  minConfidence: " + "  ".join(
            f"{g['min_confidence']:g} shows {_pct(g['shown'])} (exact {_pct(g['exact_match_shown'])}, keeps "
            f"{_pct(g['right_kept'])} of the right ones)" for g in r["confidence_gate"]))
    for key in ("by_language", "by_kind"):
        for name, g in r.get(key, {}).items():
            lines.append(f"  {name:<16} n={g['n']:<5} exact {_pct(g['exact_match'])}  edit-sim "
                         f"{_pct(g['edit_similarity'])}  syntax-valid {_pct(g['syntax_valid'])}")
    return "\n".join(lines)
