"""A learned finalization rule (after Learn2PD): a tiny classifier says which masked slots already hold their answer.

The sampler computes `features` for every slot at every forward; the `learned` strategy finalizes each masked slot
the classifier scores at least its threshold. The classifier learns from the model's own decoding traces: at each
forward of a fill decoded one token per forward, every masked slot is a row, labelled 1 when its pick then is the
token it finally holds (finalizing it there would not have changed the fill).

Saved as `finalizer.safetensors` beside the model's weights: the tensors, and in the metadata the feature names (the
engine refuses a file made for other features) and the threshold. Nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

FILE = "finalizer.safetensors"
FORMAT = "diffusion-ls-finalizer/1"
FEATURES = (
    "confidence",  # probability of the slot's pick
    "margin",  # top-1 minus top-2 probability
    "entropy",  # of the slot's distribution, nats
    "position",  # slot / (slots - 1): ends are decided differently from the middle
    "distance",  # slots to the nearest decided slot (the context before slot 0 counts as decided), at most DIST_CAP
    "left_decided",  # the slot right before it is decided (slot 0: the context)
    "right_decided",  # the slot right after it is decided (the last slot: no)
    "neighbour_confidence",  # the lower confidence of its undecided neighbours' picks (1: none): two unsure slots
    #                          side by side finalized together are where parallel decoding writes "x x" for "x.y"
    "step",  # forwards taken in this block, at most STEP_CAP
    "decided_frac",  # share of the canvas decided
    "stable",  # consecutive forwards the pick has stayed the same, this one included, at most STABLE_CAP
    "pad",  # the argmax is pad (the end of the fill)
)
DIST_CAP = 16
STEP_CAP = 32
STABLE_CAP = 16


class FinalizerError(ValueError):
    """No usable finalizer for the `learned` strategy: missing, unreadable, or made for other features."""


def features(probs: Tensor, pick: Tensor, argmax: Tensor, decided: Tensor, stable: Tensor, step: int,
             pad: int) -> Tensor:
    """Every slot's features at one forward, in FEATURES order: (C, F).

    probs (C, V) the forward's distributions; pick (C,) the token the sampler would finalize; argmax (C,) the most
    likely token, pad included; decided (C,) bool before this forward's selection; stable (C,) the pick's run length.
    """
    C = probs.shape[0]
    top2 = probs.topk(min(2, probs.shape[1]), dim=-1).values  # (C, 2)
    margin = top2[:, 0] - (top2[:, 1] if top2.shape[1] > 1 else 0.0)  # (C,)
    confidence = probs.gather(1, pick.unsqueeze(1)).squeeze(1)  # (C,)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1)  # (C,)
    pos = torch.arange(C, dtype=torch.float32)  # (C,)
    position = pos / max(C - 1, 1)  # (C,)
    anchors = torch.cat([torch.tensor([-1.0]), pos[decided]])  # (D + 1,): the context, then the decided slots
    distance = (pos[:, None] - anchors[None, :]).abs().min(1).values.clamp(max=DIST_CAP)  # (C,)
    left = torch.cat([torch.ones(1, dtype=torch.bool), decided[:-1]])  # (C,)
    right = torch.cat([decided[1:], torch.zeros(1, dtype=torch.bool)])  # (C,)
    sure = torch.where(decided, 1.0, confidence)  # (C,) a decided slot is no risk to its neighbours
    one = torch.ones(1)
    near = torch.minimum(torch.cat([one, sure[:-1]]), torch.cat([sure[1:], one]))  # (C,)
    share = decided.float().mean() if C else torch.tensor(0.0)
    return torch.stack([
        confidence, margin, entropy, position, distance, left.float(), right.float(), near,
        torch.full((C,), float(min(step, STEP_CAP))), share.expand(C), stable.float().clamp(max=STABLE_CAP),
        (argmax == pad).float(),
    ], dim=1)  # (C, F)


@dataclass
class Finalizer:
    """Standardized features -> a ReLU layer (none for logistic regression) -> one logit."""

    tensors: dict[str, Tensor]  # mean, std (F,); w1 (H, F), b1 (H,) when hidden; w2 (H or F,), b2 (1,)
    threshold: float  # the probability a slot needs, when the strategy names none
    info: dict[str, str] = field(default_factory=dict)  # training figures, kept in the file's metadata

    def score(self, feats: Tensor) -> Tensor:
        """(N, F) -> (N,) the probability that each slot's pick is its final token."""
        t = self.tensors
        h = (feats - t["mean"]) / t["std"]  # (N, F)
        if "w1" in t:
            h = torch.relu(h @ t["w1"].T + t["b1"])  # (N, H)
        return torch.sigmoid(h @ t["w2"] + t["b2"])  # (N,)

    def save(self, path: str | Path) -> None:
        meta = {"format": FORMAT, "features": json.dumps(FEATURES), "threshold": repr(self.threshold), **self.info}
        save_file({k: v.contiguous() for k, v in self.tensors.items()}, str(path), metadata=meta)


def _check(tensors: dict[str, Tensor], meta: dict[str, str], path: Path) -> float:
    """The file's threshold, after checking it fits the engine's features; FinalizerError saying what does not."""
    if meta.get("format") != FORMAT:
        raise FinalizerError(f"{path} is not a diffusion-ls finalizer (format {meta.get('format')!r}, expected "
                             f"{FORMAT!r})")
    try:
        names = tuple(json.loads(meta["features"]))
        threshold = float(meta["threshold"])
    except (KeyError, ValueError, TypeError) as exc:
        raise FinalizerError(f"{path}: unreadable metadata ({exc})") from None
    if names != FEATURES:
        raise FinalizerError(f"{path} was trained on features {list(names)}, the engine computes {list(FEATURES)}")
    n = len(FEATURES)
    shapes: dict[str, tuple[int, ...]] = {"mean": (n,), "std": (n,), "b2": (1,)}
    if "w1" in tensors:
        hidden = tensors["w1"].shape[0]
        shapes.update(w1=(hidden, n), b1=(hidden,), w2=(hidden,))
    else:
        shapes["w2"] = (n,)
    for name, shape in shapes.items():
        if name not in tensors or tuple(tensors[name].shape) != shape:
            got = tuple(tensors[name].shape) if name in tensors else "missing"
            raise FinalizerError(f"{path}: tensor {name} is {got}, expected {shape}")
        if not bool(torch.isfinite(tensors[name]).all()):
            raise FinalizerError(f"{path}: tensor {name} is not finite")
    if not 0 < threshold <= 1 or not bool((tensors["std"] > 0).all()):
        raise FinalizerError(f"{path}: threshold {threshold} outside (0, 1] or a zero feature scale")
    return threshold


def load(path: str | Path) -> Finalizer:
    """Read and check a finalizer file; FinalizerError (never another exception) when it cannot be used."""
    p = Path(path)
    if not p.is_file():
        raise FinalizerError(f"no finalizer at {p}: the 'learned' strategy needs one (make it with "
                             f"`diffusion-ls train-finalizer --out {p.parent}`), or choose another strategy")
    try:
        tensors = {k: v.float() for k, v in load_file(str(p)).items()}
        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise FinalizerError(f"{p} is not a readable safetensors file ({exc}); make it again with "
                             f"`diffusion-ls train-finalizer --out {p.parent}`") from None
    threshold = _check(tensors, meta, p)
    info = {k: v for k, v in meta.items() if k not in ("format", "features", "threshold")}
    return Finalizer(tensors, threshold, info)


_LOADED: dict[tuple[str, int, int], Finalizer] = {}
_LOCK = threading.Lock()


def for_backend(backend: object) -> Finalizer:
    """The finalizer of a backend's model: its `finalizer` attribute when it has one, else `FILE` in its model
    directory (read once per file version). A finalizer is calibrated on one model's confidences: none is borrowed."""
    own = getattr(backend, "finalizer", None)
    if isinstance(own, Finalizer):
        return own
    d = getattr(backend, "model_dir", None)
    if d is None:
        raise FinalizerError(f"the 'learned' strategy needs a finalizer trained on the model; the "
                             f"{getattr(backend, 'name', type(backend).__name__)} backend has none")
    p = Path(d) / FILE
    try:
        st = os.stat(p)
    except OSError:
        return load(p)  # raises with the reason
    key = (str(p), st.st_mtime_ns, st.st_size)
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = load(p)
        return _LOADED[key]


# ---- traces and training --------------------------------------------------------------------------------------------

class Recorder:
    """Collects (features, label) rows from finished canvases; the sampler feeds it inside `recording()`."""

    def __init__(self) -> None:
        self.blocks: list[tuple[Tensor, Tensor]] = []  # one (X (N, F), y (N,)) per finished canvas

    def block(self, steps: Sequence[tuple[Tensor, Tensor, Tensor]], final: Tensor) -> None:
        """steps: (features (n, F), picks (n,), slots (n,)) of the masked slots at each forward; final (C,) ids."""
        if not steps:
            return
        X = torch.cat([f for f, _p, _s in steps])  # (N, F)
        y = torch.cat([(p == final[s]).float() for _f, p, s in steps])  # (N,)
        self.blocks.append((X, y))

    @property
    def rows(self) -> int:
        return sum(len(y) for _x, y in self.blocks)


_RECORDING: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar("finalizer_recording", default=None)


@contextlib.contextmanager
def recording() -> Iterator[Recorder]:
    """Record the traces of every fill this thread runs inside the block (the sampler reads `active()`); a server's
    fills run on its engine thread and are never recorded."""
    rec = Recorder()
    token = _RECORDING.set(rec)
    try:
        yield rec
    finally:
        _RECORDING.reset(token)


def active() -> Recorder | None:
    """The recorder of the innermost `recording()` block around this fill, if any."""
    return _RECORDING.get()


def train(blocks: Sequence[tuple[Tensor, Tensor]], hidden: int = 32, steps: int = 400, lr: float = 1e-2,
          precision: float = 0.95, threshold: float | None = None, seed: int = 0) -> Finalizer:
    """Fit the classifier on traced canvases (every 10th held back to choose the threshold and report).

    Full-batch Adam on binary cross-entropy; hidden 0 is logistic regression. The threshold, unless given, is the
    lowest at which the held-back slots scored above it are right at least `precision` of the time.
    """
    if len(blocks) < 2:
        raise ValueError("too few traced canvases to train a finalizer (need at least 2)")
    val_idx = set(range(0, len(blocks), 10))
    Xt = torch.cat([x for i, (x, _y) in enumerate(blocks) if i not in val_idx])  # (N, F)
    yt = torch.cat([y for i, (_x, y) in enumerate(blocks) if i not in val_idx])  # (N,)
    Xv = torch.cat([x for i, (x, _y) in enumerate(blocks) if i in val_idx])  # (M, F)
    yv = torch.cat([y for i, (_x, y) in enumerate(blocks) if i in val_idx])  # (M,)
    mean, std = Xt.mean(0), Xt.std(0).clamp_min(1e-3)  # (F,) each
    g = torch.Generator().manual_seed(seed)
    n = Xt.shape[1]
    params = {"b2": torch.zeros(1)}
    if hidden:
        params.update(w1=torch.randn(hidden, n, generator=g) / math.sqrt(n), b1=torch.zeros(hidden),
                      w2=torch.randn(hidden, generator=g) / math.sqrt(hidden))
    else:
        params["w2"] = torch.zeros(n)
    for p in params.values():
        p.requires_grad_(True)
    opt = torch.optim.Adam(params.values(), lr=lr)
    model = Finalizer({"mean": mean, "std": std, **params}, 0.5)
    for _ in range(steps):
        opt.zero_grad()
        p = model.score(Xt).clamp(1e-6, 1 - 1e-6)  # (N,)
        F.binary_cross_entropy(p, yt).backward()
        opt.step()
    tensors = {k: v.detach() for k, v in model.tensors.items()}
    model = Finalizer(tensors, 0.5)
    with torch.no_grad():
        pv = model.score(Xv)  # (M,)
    t = threshold if threshold is not None else _threshold_for(pv, yv, precision)
    above = pv >= t
    info = {
        "hidden": str(hidden), "rows_train": str(len(yt)), "rows_validation": str(len(yv)),
        "canvases": str(len(blocks)), "positive_share": f"{float(yt.mean()):.4f}",
        "validation_auc": f"{_auc(pv, yv):.4f}",
        "validation_precision": f"{float(yv[above].mean()) if bool(above.any()) else 1.0:.4f}",
        "validation_recall": f"{float(above[yv > 0].float().mean()) if bool((yv > 0).any()) else 0.0:.4f}",
    }
    return Finalizer(tensors, float(t), info)


def _threshold_for(p: Tensor, y: Tensor, precision: float) -> float:
    """The lowest score whose slots at or above it are right at least `precision` of the time (0.99 if none)."""
    order = torch.argsort(p, descending=True)
    right = torch.cumsum(y[order], 0) / torch.arange(1, len(y) + 1)  # (M,) precision of the top-i
    ok = (right >= precision).nonzero().flatten()
    if not len(ok):
        return 0.99
    return round(min(0.99, max(0.01, float(p[order][int(ok[-1])]))), 3)


def _auc(p: Tensor, y: Tensor) -> float:
    """Area under the ROC curve (rank statistic; ties counted as half)."""
    pos, neg = p[y > 0], p[y <= 0]
    if not len(pos) or not len(neg):
        return float("nan")
    ranks = torch.argsort(torch.argsort(torch.cat([pos, neg]))).float() + 1  # (M,)
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
