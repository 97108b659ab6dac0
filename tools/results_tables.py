"""Print the markdown results tables of MODEL_CARD.md / README.md from the JSON files under docs/results/.

    python tools/results_tables.py docs/results
    python tools/results_tables.py --commands docs/results OUT   (the eval command of every file, writing OUT/<file>)

The per-language table (docs/results/lang_<language>.json, held-out holes of build/lang/<language>, the trees
tools/lang_corpus.py builds) comes last; tools/language_table.py rates it and writes the model's languages.json.

Every figure comes from a file written by `diffusion-ls eval --json` / `diffusion-ls bench --json` (the commands are
listed beside the tables), so the tables are regenerated, never typed in. `--commands` reads each file's own record
(suite, holes, sampler, context budget, sizing, first canvas, typed characters, healing) back into the command that
re-measures it, one per line: `... --commands docs/results build/new | xargs -P 2 -I{} sh -c {}` re-measures them
all, two at a time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROWS = [  # (file, suite label, sampler label, sizing label); "start": the first canvas (SamplerConfig.start)
    ("he_single_default_syntax", "HumanEval single-line", "threshold 0.9, start 8 (default)", "tree-sitter"),
    ("he_single_opf_syntax", "HumanEval single-line", "one token per forward, start 8", "tree-sitter"),
    ("he_single_lossless", "HumanEval single-line", "lossless (one token per forward's text), start 8", "tree-sitter"),
    ("he_single_threshold_syntax", "HumanEval single-line", "threshold 0.7, start 8", "tree-sitter"),
    ("he_single_threshold05", "HumanEval single-line", "threshold 0.5, start 8", "tree-sitter"),
    ("he_single_threshold03", "HumanEval single-line", "threshold 0.3, start 8", "tree-sitter"),
    ("he_single_confidence2", "HumanEval single-line", "two tokens per forward, start 8", "tree-sitter"),
    ("he_single_confidence3", "HumanEval single-line", "three tokens per forward, start 8", "tree-sitter"),
    ("he_single_confidence4", "HumanEval single-line", "four tokens per forward, start 8", "tree-sitter"),
    ("he_single_default_start16", "HumanEval single-line", "threshold 0.9, start 16", "tree-sitter"),
    ("he_single_default_start0", "HumanEval single-line", "threshold 0.9, start 0", "tree-sitter"),
    ("he_single_threshold_start0", "HumanEval single-line", "threshold 0.7, start 0", "tree-sitter"),
    ("he_single_default_oracle", "HumanEval single-line", "threshold 0.9 (default)", "oracle"),
    ("he_single_opf_oracle", "HumanEval single-line", "one token per forward", "oracle"),
    ("he_single_default_fixed32", "HumanEval single-line", "threshold 0.9 (default)", "fixed 32"),
    ("he_single_ar", "HumanEval single-line", "autoregressive (same weights)", "-"),
    ("he_single_spec16", "HumanEval single-line", "speculative, 16-token canvas drafts", "-"),
    ("he_single_spec4", "HumanEval single-line", "speculative, 4-token canvas drafts", "-"),
    ("he_multi_default", "HumanEval multi-line", "threshold 0.9, start 8 (default)", "tree-sitter"),
    ("he_multi_default_start0", "HumanEval multi-line", "threshold 0.9, start 0", "tree-sitter"),
    ("safim_block", "SAFIM-python block", "threshold 0.9, start 8 (default)", "tree-sitter"),
    ("safim_control", "SAFIM-python control", "threshold 0.9, start 8 (default)", "tree-sitter"),
    ("safim_api", "SAFIM-python api", "threshold 0.9, start 8 (default)", "tree-sitter"),
    ("heldout_default", "held-out packages", "threshold 0.9, start 8 (default)", "tree-sitter"),
    ("heldout_opf", "held-out packages", "one token per forward, start 8", "tree-sitter"),
    ("heldout_lossless", "held-out packages", "lossless (one token per forward's text), start 8", "tree-sitter"),
    ("heldout_default_start16", "held-out packages", "threshold 0.9, start 16", "tree-sitter"),
    ("heldout_threshold", "held-out packages", "threshold 0.7, start 8", "tree-sitter"),
    ("heldout_confidence2", "held-out packages", "two tokens per forward, start 8", "tree-sitter"),
    ("he_single_typed1_heal", "HumanEval single-line, 1 char typed", "threshold 0.9, token healing (default)",
     "tree-sitter"),
    ("he_single_typed1_noheal", "HumanEval single-line, 1 char typed", "threshold 0.9, no healing", "tree-sitter"),
    ("he_single_typed2_heal", "HumanEval single-line, 2 chars typed", "threshold 0.9, token healing (default)",
     "tree-sitter"),
    ("he_single_typed2_noheal", "HumanEval single-line, 2 chars typed", "threshold 0.9, no healing", "tree-sitter"),
    ("heldout_typed2_heal", "held-out packages, 2 chars typed", "threshold 0.9, token healing (default)",
     "tree-sitter"),
    ("heldout_typed2_noheal", "held-out packages, 2 chars typed", "threshold 0.9, no healing", "tree-sitter"),
    ("santacoder_typed2_heal", "SantaCoder-FIM py/js/java, 2 chars typed", "threshold 0.9, token healing (default)",
     "tree-sitter"),
    ("santacoder_typed2_noheal", "SantaCoder-FIM py/js/java, 2 chars typed", "threshold 0.9, no healing",
     "tree-sitter"),
]


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def quality(d: Path) -> str:
    out = ["| suite | sampler | sizing | pass@1 | exact | edit sim. | syntax-valid (raw) | empty fills | tokens/forward"
           " | nfe |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, suite, sampler, sizing in ROWS:
        f = d / f"{name}.json"
        if not f.exists() or not f.stat().st_size:
            continue
        r = json.loads(f.read_text())
        out.append(f"| {suite} ({r['n']}) | {sampler} | {sizing} | {pct(r.get('pass@1'))} | {pct(r['exact_match'])} | "
                   f"{pct(r['edit_similarity'])} | {pct(r['syntax_valid'])} ({pct(r.get('syntax_valid_raw'))}) | "
                   f"{pct(r.get('empty_fills'))} | {r['tokens_per_forward']:.2f} | {r['nfe']:.1f} |")
    return "\n".join(out)


def lossless(d: Path) -> str:
    """Runs measured against another sampler hole by hole (`eval --against`): lossless against one token per forward
    (speedup: the other sampler's wall clock over the run's, prefill included, and decoding alone)."""
    out = ["| suite | sampler | against | fills that differ | nfe | nfe against | steps / forward | canvases / forward"
           " | speedup (decoding alone) | load |", "|---|---|---|---|---|---|---|---|---|---|"]
    suites = {name: suite for name, suite, _sampler, _sizing in ROWS}
    for f in sorted(d.glob("*.json")):
        r = json.loads(f.read_text()) if f.stat().st_size else {}
        a = r.get("against") if isinstance(r, dict) else None
        if not a:
            continue
        suite = suites.get(f.stem.split("_vs_")[0], r["suite"])
        load = f"{r['load_avg_1m']} -> {r['load_avg_1m_end']}" if r.get("load_avg_1m") is not None else "-"
        out.append(f"| {suite} ({r['n']}) | {r['sampler']} | {a['sampler']} | {a['mismatches']} | {r['nfe']:.2f} | "
                   f"{a['nfe']:.2f} | {r['steps_per_forward']:.2f} | {r['canvases_per_forward']:.2f} | "
                   f"{a['speedup']:.2f} ({a['decode_speedup']:.2f}) | {load} |")
    return "\n".join(out) if len(out) > 2 else ""


SIZING = [  # (variant of docs/results/sizing_{heldout,he}_<variant>.json, label)
    ("default", "default: start 8, doubled while full, at most 16 tokens"),
    ("previous", "previous default: the same, growing to 32-64 tokens (bodies: maxTokens)"),
    ("previous_start16", "previous, start 16"),
    ("previous_start0", "previous, start at the tree-sitter capacity"),
    ("fixed16", "fixed 16 slots"),
    ("fixed32", "fixed 32 slots"),
    ("oracle", "oracle (true length + 1)"),
]


def sizing(d: Path) -> str:
    """Canvas sizing against fixed canvases: held-out edit similarity (both halves of the holes) and HumanEval
    single-line pass@1, with the tokens and forwards a fill took."""
    out = ["| sizing | held-out edit sim. (holes; odd / even) | exact | tokens | nfe "
           "| HumanEval single-line pass@1 (holes) | exact | tokens | nfe |", "|---|---|---|---|---|---|---|---|---|"]
    for variant, label in SIZING:
        ho, he = d / f"sizing_heldout_{variant}.json", d / f"sizing_he_{variant}.json"
        if not ho.exists() and not he.exists():
            continue
        row = [label]
        for f, first in ((ho, "edit_similarity"), (he, "pass@1")):
            if not f.exists():
                row += ["-"] * 4
                continue
            r = json.loads(f.read_text())
            halves = r.get("halves", {})
            cell = f"{pct(r[first])} ({r['n']}"
            if first == "edit_similarity" and halves:
                cell += f"; {pct(halves['odd'][first])} / {pct(halves['even'][first])}"
            cell += ")"
            row += [cell, pct(r["exact_match"]), f"{r['tokens']:.1f}", f"{r['nfe']:.1f}"]
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out) if len(out) > 2 else ""


def bench(d: Path) -> str:
    f = d / "bench.json"
    if not f.exists():
        return ""
    r = json.loads(f.read_text())
    e, lsp, k = r.get("engine") or {}, r.get("lsp") or {}, r.get("keystroke") or {}
    spread = e.get("spread") or {}
    rows = [
        ("tokens_per_forward", r.get("tokens_per_forward"), None),
        ("speedup_vs_one_per_forward", r.get("speedup_vs_one_per_forward"), spread.get("speedup_vs_one_per_forward")),
        ("speedup_vs_ar", r.get("speedup_vs_ar"), spread.get("speedup_vs_ar")),
        ("speedup_vs_ar_float32", e.get("speedup_vs_ar_float32"), spread.get("speedup_vs_ar_float32")),
        ("lossless_nfe_ratio_vs_one_per_forward", e.get("lossless_nfe_ratio_vs_one_per_forward"),
         spread.get("lossless_nfe_ratio_vs_one_per_forward")),
        ("lossless_speedup_vs_one_per_forward", r.get("lossless_speedup_vs_one_per_forward"),
         spread.get("lossless_speedup_vs_one_per_forward")),
        ("lossless_speedup_vs_ar", e.get("lossless_speedup_vs_ar"), spread.get("lossless_speedup_vs_ar")),
        ("lossless_speedup_vs_ar_float32", e.get("lossless_speedup_vs_ar_float32"),
         spread.get("lossless_speedup_vs_ar_float32")),
        ("lossless_speedup_vs_one_per_forward_exact", e.get("lossless_speedup_vs_one_per_forward_exact"), None),
        ("exact_cost (one per forward, exact / as run)", e.get("exact_cost"), None),
        ("lossless_mismatches", r.get("lossless_mismatches"), None),
        ("context_scaling_8k_over_512", r.get("context_scaling_8k_over_512"), None),
        ("cache_speedup", r.get("cache_speedup"), None),
        ("lsp_overhead_ratio", r.get("lsp_overhead_ratio"), None),
        ("first_state_ms_p50", r.get("first_state_ms_p50"), None),
        ("final_ms_p50 / p95 / max", "/".join(str(lsp.get(x)) for x in ("final_ms_p50", "final_ms_p95",
                                                                         "final_ms_max")), None),
        ("final p95 / p50 (lines typed, keystrokes measured)", None if lsp.get("final_p95_over_p50") is None else
         f"{lsp['final_p95_over_p50']} ({len(lsp.get('places', []))}, "
         f"{lsp.get('keystrokes', 0) - lsp.get('typed_ahead', 0)})", None),
        ("forwards per keystroke p50 / p95", None if lsp.get("nfe_p50") is None else
         f"{lsp['nfe_p50']}/{lsp['nfe_p95']}", None),
        ("repoContextBudget (the server leg)", (r.get("settings") or {}).get("repo_context_budget"), None),
    ]
    for size, entry in (k.get("files") or {}).items():
        c = entry.get("cache") or {}
        rows.append((f"keystroke {size} tokens: p50 / p95 / max ms",
                     "/".join(str(c.get(x)) for x in ("p50_ms", "p95_ms", "max_ms")), None))
    out = [f"| measure ({e.get('holes', '?')} engine holes) | value | 90% interval over the holes |", "|---|---|---|"]
    for name, v, iv in rows:
        if v is None:  # a result from before that figure
            continue
        val = f"{v:.3g}" if isinstance(v, float) else str(v)
        out.append(f"| `{name}` | {val} | {'-'.join(str(x) for x in iv) if iv else ''} |")
    m = r.get("machine", {})
    if m:
        out.append(f"| machine | {m} | |")
    return "\n".join(out)


def commands(d: Path, out: str, extra: str = "") -> list[str]:
    """The eval command that writes each results file again (into `out`), from the file's own record."""
    lines = []
    for f in sorted(d.glob("*.json")):
        r = json.loads(f.read_text())
        if "suite" not in r or "sampler" not in r:  # bench*.json; repo_*.json (written by server.repo_eval)
            continue
        if "code" in r:  # measured on older code (the file says which): the command would measure today's
            continue
        if r.get("command"):  # the file carries its own command
            lines.append(f"{r['command']} {extra}".rstrip() + f" > {out}/{f.name}")
            continue
        cmd = ["diffusion-ls eval", f"--suite {r['suite']}", f"--limit {r['n']}", f"--sampler {r['sampler']}"]
        if r["suite"] == "heldout" and f.stem.startswith("lang_"):  # tools/lang_corpus.py's tree of the language
            cmd.append(f"--corpus build/lang/{f.stem[5:]}")
        elif r["suite"] == "heldout":
            cmd.append("--corpus build/corpus/heldout_tree")
        if r.get("context_budget"):
            cmd.append(f"--budget {r['context_budget']}")
        if r.get("sizing", "syntax") != "syntax":
            cmd.append(f"--sizing {r['sizing']}")
        start = (r.get("sampler_config") or {}).get("start")
        if start is not None and start != 8:
            cmd.append(f"--start {start}")
        if r.get("typed"):
            cmd.append(f"--typed {r['typed']}")
        if r.get("heal") is False:
            cmd.append("--no-heal")
        if r.get("against"):
            cmd.append(f"--against {r['against']['sampler']}")
        if not r.get("postprocess", True):
            cmd.append("--no-postprocess")
        cmd.append(f"--dtype {r.get('dtype', 'float32')}")  # files without it were measured in float32
        lines.append(" ".join(cmd + ["--json --threads 1 --no-progress", extra]).rstrip() + f" > {out}/{f.name}")
    return lines


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--commands":
        print("\n".join(commands(Path(sys.argv[2]), sys.argv[3], " ".join(sys.argv[4:]))))
        sys.exit(0)
    d = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results")
    print(quality(d))
    print()
    if lossless(d):
        print(lossless(d))
        print()
    if sizing(d):
        print(sizing(d))
        print()
    print(bench(d))
    if any(d.glob("lang_*.json")):  # the per-language table (tools/language_table.py)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from language_table import languages, table

        print()
        print(table(languages(d)))
