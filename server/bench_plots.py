"""PNG plots of a `diffusion-ls bench --plot DIR` run (matplotlib, headless)."""

from __future__ import annotations

import math
from pathlib import Path


def _plt():
    try:
        import matplotlib
    except ImportError as exc:
        raise SystemExit("--plot needs matplotlib: pip install 'diffusion-ls[plot]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _machine_line(m: dict) -> str:
    return f"{m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, {m['device']}; {m['model']}"


def finalized_matrix(states: list) -> tuple[list[list[float]], list[tuple[int, int]]]:
    """(rows, remasked): rows[s][i] = the forward at which slot i's current token was finalized, as of forward s
    (NaN while masked); remasked = (forward, slot) pairs re-noised by self-correction. The done state is left out."""
    steps = [s for s in states if not s.done]
    if not steps:
        return [], []
    width = max(len(s.ids) for s in steps)
    since = [math.nan] * width
    rows, remasked = [], []
    for f, s in enumerate(steps, 1):
        for i in range(width):
            masked = i >= len(s.masked) or s.masked[i]
            if masked:
                since[i] = math.nan
            elif math.isnan(since[i]):
                since[i] = f
        rows.append(list(since))
        remasked += [(f, i) for i in s.remasked]
    return rows, remasked


def plot_denoising(path: Path, states: list, tok, machine: dict) -> None:
    """Positions x forwards, each cell coloured by the forward its token was finalized at; x marks re-noising."""
    import numpy as np

    plt = _plt()
    rows, remasked = finalized_matrix(states)
    if not rows:
        return
    m = np.array(rows, dtype=float)  # (forwards, slots)
    final = states[-1].ids if states[-1].done else states[-2].ids
    pad = tok.special.pad
    labels = []
    for i in range(m.shape[1]):
        t = final[i] if i < len(final) else pad
        labels.append("<pad>" if t == pad else repr(tok.decode([t]))[1:-1][:10])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.32 * m.shape[1] + 2), max(3.0, 0.3 * m.shape[0] + 1.8)))
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_bad("#dddddd")  # still masked
    im = ax.imshow(np.ma.masked_invalid(m), aspect="auto", cmap=cmap, interpolation="nearest",
                   extent=(-0.5, m.shape[1] - 0.5, m.shape[0] + 0.5, 0.5))
    for f, i in remasked:
        ax.plot(i, f, "x", color="red", markersize=8, mew=2)
    ax.set_xticks(range(m.shape[1]))
    ax.set_xticklabels(labels, rotation=90, fontsize=7, family="monospace")
    ax.set_ylabel("forward")
    ax.set_xlabel("canvas slot (final token)")
    n_tokens = sum(1 for t in final if t != pad)
    ax.set_title(f"One canvas denoising: {m.shape[1]} slots, {m.shape[0]} forwards, {n_tokens} text tokens\n"
                 f"grey = masked, colour = forward the token was finalized at, x = re-noised", fontsize=9)
    fig.colorbar(im, ax=ax, label="finalized at forward")
    _save(plt, fig, path, machine)


def _save(plt, fig, path: Path, machine: dict) -> None:
    """Sign the figure with the machine it was measured on, write it, free it."""
    fig.text(0.01, 0.005, _machine_line(machine), fontsize=6, color="#666666")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_rss(path: Path, soak: dict) -> None:
    """The server's RSS every 500 requests of a `diffusion-ls soak` run, with the warm-up's end marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    xs, ys = zip(*soak["rss_series_kib"], strict=True)
    ax.plot(xs, [y / 1024 for y in ys], marker="o", markersize=3)
    ax.axhline(soak["rss_warm_kib"] / 1024, color="#999999", linestyle="--", linewidth=0.8, label="after warm-up")
    ax.set_ylim(0, max(ys) / 1024 * 1.15)
    ax.set_xlabel("requests")
    ax.set_ylabel("server RSS (MiB)")
    ax.set_title(f"diffusion-ls soak: {soak['requests']} requests, final / warm RSS {soak['rss_ratio']}")
    ax.legend(loc="lower right", fontsize=8)
    fig.text(0.01, 0.005, f"{soak.get('model', '')}; load average {soak.get('load_avg_1m')}", fontsize=6,
             color="#666666")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_frontier(path: Path, frontier: dict, machine: dict) -> None:
    """Quality against tokens per forward, one point per sampler setting."""
    plt = _plt()
    metric = frontier["metric"]
    pts = [p for p in frontier["points"] if p["tokens_per_forward"] is not None]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    keys = [metric] + [k for k in ("exact_match", "edit_similarity") if k != metric]
    for key, style in zip(keys, ("o-", "s--", "^:"), strict=False):
        xs = [p["tokens_per_forward"] for p in pts]
        ys = [100 * (p[key] or 0.0) for p in pts]
        ax.plot(xs, ys, style, label=key)
    labels: dict[tuple[float, float], list[str]] = {}  # settings that land on the same point share one label
    for p in pts:
        labels.setdefault((p["tokens_per_forward"], 100 * (p[metric] or 0.0)), []).append(p["sampler"])
    for xy, names in labels.items():
        ax.annotate(", ".join(names), xy, fontsize=7, textcoords="offset points", xytext=(4, 4))
    top = max([100 * (p[k] or 0.0) for p in pts for k in keys] + [0.0])
    ax.set_ylim(0, min(100.0, max(10.0, top * 1.2)))
    ax.set_xlabel("tokens finalized per forward")
    ax.set_ylabel("%")
    ax.set_title(f"Quality vs parallelism: {frontier['suite']}, n={frontier['n']}, {frontier['sizing']} sizing",
                 fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(plt, fig, path, machine)


def plot_latency(path: Path, keystroke: dict, machine: dict) -> None:
    """Per-keystroke p50 (p95 as the bar's top) against file size, with and without the context cache."""
    plt = _plt()
    files = keystroke["files"]
    xs = [files[k]["file_tokens"] for k in files]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for key, label, style in (("cache", "context cache", "o-"), ("no_cache", "cache disabled", "s--")):
        p50 = [files[k][key]["p50_ms"] for k in files]
        p95 = [files[k][key]["p95_ms"] for k in files]
        ax.errorbar(xs, p50, yerr=[[0] * len(p50), [b - a for a, b in zip(p50, p95, strict=True)]], fmt=style,
                    capsize=4, label=f"{label} (p50, bar to p95)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs)
    ax.set_xticklabels([str(x) for x in xs])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("file size (tokens)")
    ax.set_ylabel("ms per keystroke")
    ax.set_title("Per-keystroke latency vs file size", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(plt, fig, path, machine)


def write_all(out_dir: Path, demo_states: list, tok, result: dict) -> list[str]:
    """The three plots into out_dir; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    m = result["machine"]
    written = []
    if demo_states:
        p = out_dir / "denoising.png"
        plot_denoising(p, demo_states, tok, m)
        written.append(str(p))
    if result.get("frontier"):
        p = out_dir / "frontier.png"
        plot_frontier(p, result["frontier"], m)
        written.append(str(p))
    p = out_dir / "latency.png"
    plot_latency(p, result["keystroke"], m)
    written.append(str(p))
    return written
