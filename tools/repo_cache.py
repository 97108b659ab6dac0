"""Prefix-cache reuse per keystroke, with and without repository context (issue 22: the layout must keep it).

Types the first lines of bodies in files of a repository character by character, as an editor sends them; at every
keystroke builds the context as the server does (server.workspace selects, infill.repo_context lays out,
server.fill plans the cursor) and prefills it in the document's session. Reports the share of context tokens the
backend's cache kept (Handle.reused / context length) and the prefill time, per budget.

    python tools/repo_cache.py build/lang/python/h11 --budgets 0 256 --out docs/results/repo_cache.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.backend import EmbeddedBackend  # noqa: E402
from infill.sizing import corpus_files  # noqa: E402
from server import fill  # noqa: E402
from server.workspace import Workspace  # noqa: E402

CONTEXT_BUDGET = 384  # the server's default contextBudget
LINES_PER_FILE = 3  # lines typed per file
MAX_LINE = 40  # characters typed per line at most


def typed_lines(text: str, n: int) -> list[tuple[int, str]]:
    """(offset of a line's first non-blank char, the line's text after it) for n evenly spread indented lines."""
    starts, pos = [], 0
    for line in text.splitlines(keepends=True):
        body = line.strip()
        if line.startswith(("    ", "\t")) and len(body) > 8 and not body.startswith(("#", '"', "'")):
            starts.append((pos + len(line) - len(line.lstrip()), body[:MAX_LINE]))
        pos += len(line)
    return [starts[(i * len(starts)) // n] for i in range(n)] if len(starts) >= n else starts


def measure(backend, repo: Path, budget: int, files: int) -> dict:
    ws = Workspace(roots=[repo.resolve()])
    if budget:
        ws.index_root(repo.resolve())
    tok = backend.tokenizer
    target = fill.target(backend)
    shares, ms, first_ms = [], [], []
    for path, text, lang in list(corpus_files(repo))[:files]:
        path = Path(path).resolve()
        for start, line in typed_lines(text, LINES_PER_FILE):
            end = text.index("\n", start) if "\n" in text[start:] else len(text)
            rest = text[:start] + text[end:]  # the line removed, then typed again one character at a time
            for k in range(len(line) + 1):
                doc = rest[:start] + line[:k] + rest[start:]
                at = start + k
                ids: list[int] = []
                if budget:
                    sel = ws.select(path, doc, at)
                    ids, _ = ws.layout(sel.chunks, tok, budget)
                plan = fill.plan_cursor(doc, at, lang, target, CONTEXT_BUDGET, 64, repo=ids)
                assert plan.canvas is not None
                h = backend.prefill(plan.canvas.context_ids, session=str(path))
                if k == 0:  # the cursor arrived on a new line: not a keystroke
                    first_ms.append(h.prefill_ms)
                    continue
                shares.append(h.reused / len(plan.canvas.context_ids))
                ms.append(h.prefill_ms)
    q = statistics.quantiles(ms, n=20) if len(ms) > 1 else ms * 19
    return {"repo_context_budget": budget, "keystrokes": len(shares),
            "reused_share_mean": round(statistics.mean(shares), 4),
            "reused_share_min": round(min(shares), 4),
            "keystrokes_over_90pct_reused": round(
                sum(s > 0.9 for s in shares) / len(shares), 4),
            "prefill_ms_p50": round(statistics.median(ms), 2), "prefill_ms_p95": round(q[18], 2),
            "new_line_prefill_ms_p50": round(statistics.median(first_ms), 2)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("repo", type=Path)
    p.add_argument("--budgets", type=int, nargs="+", default=[0, 256])
    p.add_argument("--files", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    backend = EmbeddedBackend(threads=a.threads)
    out = {"repo": a.repo.name, "context_budget": CONTEXT_BUDGET, "model": backend.model_name,
           "runs": [measure(backend, a.repo, b, a.files) for b in a.budgets]}
    text = json.dumps(out, indent=1)
    if a.out:
        a.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
