"""Does the shipped model know how long a hole is? A probe on its hidden state, measured like the sizing frontier.

    python tools/sizing_probe.py --fit-packages torch matplotlib fontTools pygls lsprotocol \
        --test build/corpus/heldout_tree

For every SAFIM-like span cut from a file (as `diffusion-ls sizing` does), it records the hidden state the encoder
leaves at the <fim_middle> sentinel after prefilling the server's SPM context (serving computes it anyway, so a size
read from it would cost nothing), the hole's situation and its tree-sitter capacity. A small MLP over (hidden state,
situation, log2 capacity) is fit with a pinball loss to quantiles of log2(true length) on the fit files, which must
come from packages in neither the training corpus nor the held-out split (see tools/corpus_packages.txt; the ones
above come with diffusion-ls and its test extras). It reports coverage and median waste of every quantile on the
test files, next to the same MLP without the hidden state and to the shipped rule. Nothing found this way is
shipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import sys
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infill.holes import SITUATIONS  # noqa: E402
from infill.sizing import MEASURED, PER_KIND, SAFIM_LIKE, corpus_files, pick_spans  # noqa: E402

QUANTILES = (0.5, 0.7, 0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 0.96)
BUDGET = 384  # the server's default context budget


def _records(files: list[tuple[str, str, str]]) -> list[tuple[list[float], str, int, int, str]]:
    from engine.backend import EmbeddedBackend
    from infill.canvas import spm_context
    from infill.holes import find_hole, token_counter
    from infill.spans import syntax_spans

    be = EmbeddedBackend(threads=1)
    tok, out = be.tokenizer, []
    count = token_counter(tok)
    for _path, text, lang in files:
        chosen = pick_spans(text, syntax_spans(text, lang), MEASURED, PER_KIND)
        for span, true in zip(chosen, count([text[s.start : s.end] for s in chosen]), strict=True):
            if span.kind not in SAFIM_LIKE or not 0 < true <= 256:
                continue
            cut = text[: span.start] + text[span.end :]
            hole = find_hole(cut, span.start, lang, tok)
            be.prefill(spm_context(cut[: span.start], cut[span.start :], tok, BUDGET), "probe")
            h = be.model.norm(be._last_hidden["probe"])[0].float()  # (dim,) as the output head sees it
            out.append((h.tolist(), hole.situation, hole.capacity, true, span.kind))
    return out


def collect(files: list[tuple[str, str, str]], workers: int) -> list:
    chunks = [files[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        return [r for part in pool.map(_records, chunks) for r in part]


def tensors(recs: list, use_hidden: bool) -> tuple[torch.Tensor, torch.Tensor]:
    h = torch.tensor([r[0] for r in recs])  # (N, dim)
    if not use_hidden:
        h = torch.zeros_like(h)
    sit = torch.zeros(len(recs), len(SITUATIONS))  # (N, S)
    for i, r in enumerate(recs):
        sit[i, SITUATIONS.index(r[1])] = 1.0
    cap = torch.tensor([[math.log2(r[2]) / 4] for r in recs])  # (N, 1)
    return torch.cat([h, sit, cap], 1), torch.tensor([math.log2(r[3]) for r in recs])


def fit(x: torch.Tensor, y: torch.Tensor, epochs: int, hidden: int = 64) -> torch.nn.Module:
    torch.manual_seed(0)
    q = torch.tensor(QUANTILES)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.GELU(), torch.nn.Linear(hidden, len(q)))
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-2)
    for _ in range(epochs):
        for b in torch.randperm(len(y)).split(256):
            e = y[b].unsqueeze(1) - net(x[b])  # (B, Q)
            loss = torch.maximum(q * e, (q - 1) * e).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net


def cov_waste(pairs: list[tuple[int, int]]) -> list[float]:
    return [round(sum(c >= t for c, t in pairs) / len(pairs), 4), round(statistics.median(c / t for c, t in pairs), 3)]


def report(net: torch.nn.Module, x: torch.Tensor, recs: list) -> dict:
    with torch.no_grad():
        p = net(x)  # (N, Q)
    return {str(q): cov_waste([(max(1, math.ceil(2 ** float(p[i, j]) - 1e-6)), r[3]) for i, r in enumerate(recs)])
            for j, q in enumerate(QUANTILES)}


def package_files(name: str, limit: int) -> list[tuple[str, str, str]]:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {name} is not installed")
    files = [f for root in spec.submodule_search_locations for f in corpus_files(root)]
    files.sort(key=lambda f: zlib.crc32(f[0].encode()))  # a spread over the package, the same on every run
    return files[:limit]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit-packages", nargs="+", required=True, help="installed packages in neither split")
    ap.add_argument("--per-package", type=int, default=110, help="fit files per package")
    ap.add_argument("--test", required=True, help="held-out source tree")
    ap.add_argument("--test-files", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    fit_files = [f for name in args.fit_packages for f in package_files(name, args.per_package)]
    fit_recs = collect(fit_files, args.workers)
    test_recs = collect(list(corpus_files(args.test, args.test_files)), args.workers)
    out: dict = {"n_fit": len(fit_recs), "n_test": len(test_recs),
                 "shipped_rule_test": cov_waste([(r[2], r[3]) for r in test_recs])}
    for name, hidden in (("probe_with_hidden_state", True), ("probe_syntax_only", False)):
        net = fit(*tensors(fit_recs, hidden), args.epochs)
        out[name] = report(net, tensors(test_recs, hidden)[0], test_recs)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
