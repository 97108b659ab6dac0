"""One denoising loop; selection strategies are small functions it calls.

Every forward yields a CanvasState (so editors can show the canvas denoising live); the generator returns
SampleStats with `nfe` (forwards) and tokens per forward. Cancellation is checked between forwards.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import torch
from torch import Tensor

from engine import finalizer as fz
from engine.backend import Backend, Handle
from engine.tokenizer import SpecialIds

STRATEGIES = ("confidence", "margin", "entropy", "threshold", "eb", "lossless", "learned")


class Cancelled(Exception):
    """The job's cancellation flag was set; raised between forwards."""


class _Unsure(Exception):
    """A text token was finalized below SamplerConfig.stop_below: the fill ends there (denoise_stream)."""

    def __init__(self, least: float) -> None:
        super().__init__(least)
        self.least = least


@dataclass(frozen=True)
class SamplerConfig:
    strategy: str = "threshold"  # every slot at least `threshold` confident, and always the most confident one: with
    #                              the shipped model as good as one slot per forward in ~36% fewer forwards
    steps: int = 32  # the step limit per block: past it every remaining slot is finalized at once
    k: int = 0  # top-k strategies: tokens per forward (0 = spread the block evenly over `steps`)
    threshold: float = 0.9  # `threshold`: finalize every slot at least this confident (always >= 1 per forward);
    #                         lower values finalize more per forward and lose quality (0.7: HumanEval 19.5 -> 17.5)
    learned_threshold: float = 0.0  # `learned`: finalize every slot the model's finalizer (engine.finalizer) scores
    #                                 at least this (always >= 1 per forward); 0: the threshold saved with it
    eb_gamma: float = 0.5  # `eb`: accept lowest-entropy slots while their summed entropy (nats) stays below this
    draft: int = 3  # `lossless` (the text of `confidence` with k=1, in fewer forwards): canvases per forward, the
    #                 current one and the next steps' as drafted; held-out holes took 1.53x fewer forwards with 2,
    #                 1.67x with 3, 1.71x with 4, in about the same CPU time (a batch costs its rows)
    draft_rows: int = 64  # ...while the batch stays within this many rows (slots x canvases): past 16 rows a CPU
    #                       forward costs per row (3 canvases of 8 slots: 1.28x one, 2 of 32: 1.45x, 3 of 32: 1.9x)
    noise: str = "mask"  # "mask" (a mask token) or "uniform" (random tokens, as DiffusionGemma)
    remask_threshold: float = 0.0  # self-correction: re-noise a finalized slot whose probability fell below this;
    #                                off by default: at 0.02 the r2 model moved tokens back and forth between slots
    #                                and lost quality (HumanEval 15.5 -> 14.5 pass@1, held-out raw syntax 96.5 -> 91%)
    max_remask: int = 4  # ...at most this many times per block, so the loop cannot oscillate
    pad_confidence: float = 0.2  # pads' confidence is scaled by this when choosing what to finalize: < 1 decides
    #                              text before the end, so a weak model's early pad guesses cannot cut fills short
    refine_threshold: float = 0.2  # rewrite/refine: given tokens below this probability are re-noised first
    end_threshold: float = 0.9  # when every slot left after a forward's selection is a pad at least this likely,
    #                             following text decided in an earlier forward, the end is decided in that forward
    #                             instead of one of its own (0: never; HumanEval 6.8 -> 6.1 forwards, same scores)
    block_size: int = 32  # block-autoregressive: longer holes are denoised block by block, committed in between
    max_new: int = 256  # hard cap on a grown fill
    grow: bool = True  # a single hole whose canvas fills up without ending gets another block
    repeat_rounds: int = 3  # a growing fill whose end is one piece of text this many times over is looping, not
    #                         writing code: it is cut after the first round (repeated_tail; 0: never)
    start: int = 8  # a single growable hole's first canvas (0: its sized capacity), doubled up to block_size (or the
    #                 capacity, without grow) while the model writes text into its last two slots: small models read a
    #                 canvas's size as a length hint (r1-r3 were trained with capacity <= 2 * length + 8, r4 half the
    #                 time), and the shipped one still scores best from a small start (HumanEval 19.5; 16: 15.5)
    exact: bool = False  # forwards round alike alone and in a batch (engine.model.DiffusionLM.decode), at a cost on
    #                      small canvases: `lossless` always; one token per forward with it is lossless's reference
    # a fill whose text gets a token finalized below this probability is given up at that forward (SampleStats.cut
    # "unsure"): a caller that refuses such fills (fill.run's min_confidence) spends no more forwards on them; 0: never
    stop_below: float = 0.0
    # a fill not done after this many forwards is given up (SampleStats.cut "forwards"): as you type, such a fill is
    # rarely shown and holds the next keystroke's answer back (fill.run's max_forwards); 0: never
    max_forwards: int = 0
    temperature: float = 0.0  # 0 = argmax (deterministic); > 0 samples with the seeded generator
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; one of {', '.join(STRATEGIES)}")
        if self.noise not in ("mask", "uniform"):
            raise ValueError(f"unknown noise {self.noise!r}; 'mask' or 'uniform'")
        if not 0 <= self.end_threshold <= 1:
            raise ValueError("end_threshold must be in [0, 1]")
        if self.steps < 1 or self.block_size < 1:
            raise ValueError("steps and block_size must be >= 1")
        if self.start < 0:
            raise ValueError("start must be >= 0 (0: the sized capacity)")
        if self.draft < 1 or self.draft_rows < 1:
            raise ValueError("draft and draft_rows must be >= 1 (1: one canvas per forward)")
        if not 0 <= self.stop_below <= 1:
            raise ValueError("stop_below must be in [0, 1] (0: never)")
        if self.max_forwards < 0:
            raise ValueError("max_forwards must be >= 0 (0: no limit)")
        if not 0 <= self.learned_threshold <= 1:
            raise ValueError("learned_threshold must be in [0, 1] (0: the finalizer's own)")
        if self.strategy == "lossless" and (self.temperature > 0 or self.k > 1):
            raise ValueError("lossless decodes as confidence with k=1: greedy (temperature 0), k 0 or 1")


@dataclass
class CanvasSpec:
    """The initial canvas: `slots` ids, which are `fixed` (never change), which start `decided` (refine mode).

    `holes` are [start, end) slot ranges whose text may end early with pads (pads grow from each hole's right end).
    A canvas with exactly one hole and no fixed slots may be denoised block by block and grow.
    """

    slots: list[int]
    fixed: list[bool]
    holes: list[tuple[int, int]]
    decided: list[bool] | None = None
    allowed: dict[int, list[int]] | None = None  # slot -> the only ids it may take (token healing's first slot)
    limit: int | None = None  # a growable hole never grows past this many tokens (its kind's cap); None: max_new

    @classmethod
    def single(cls, capacity: int, mask_id: int, allowed: dict[int, list[int]] | None = None,
               limit: int | None = None) -> CanvasSpec:
        return cls([mask_id] * capacity, [False] * capacity, [(0, capacity)], allowed=allowed, limit=limit)

    @property
    def growable(self) -> bool:
        return len(self.holes) == 1 and not any(self.fixed) and self.decided is None


@dataclass
class CanvasState:
    ids: list[int]  # the whole middle so far (committed blocks + this block); undecided slots hold the mask id
    masked: list[bool]  # which slots are still undecided
    confidence: list[float]  # per slot: probability of its current token at the last forward
    step: int  # steps taken in this block (one a forward, except `lossless`)
    nfe: int  # forwards so far, all blocks
    block: int
    done: bool = False
    remasked: list[int] = field(default_factory=list)  # slots re-noised at this forward (self-correction)


class _OutOfForwards(Exception):
    """A fill used SamplerConfig.max_forwards forwards and is not done: it ends there (denoise_stream)."""


@dataclass
class SampleStats:
    nfe: int = 0  # forwards, one after the other (a batch of canvases is one forward)
    tokens: int = 0  # text tokens in the result (pads excluded)
    steps: int = 0  # denoising steps: one per forward, except `lossless`, whose forwards may each take several
    canvases: int = 0  # canvases the forwards ran (`lossless`: the batch sizes summed)
    finalized: int = 0  # slot finalizations, pads and re-finalizations included
    blocks: int = 0
    remasked: int = 0
    restarts: int = 0  # first canvases denoised again, larger, because the model filled them to the last slot
    # why a fill was stopped before the model ended it: "limit" or "repetition" (a growing fill), "unsure" (a text
    # token below SamplerConfig.stop_below) or "forwards" (SamplerConfig.max_forwards spent): with these two the
    # result is empty, not to be shown
    cut: str = ""
    # the lowest probability a text token of the result had when it was finalized (None: no text, or a loop that does
    # not say): a fill the model was unsure of has one low, and is right much less often (README, confidence gate)
    min_confidence: float | None = None
    prefill_ms: float = 0.0
    elapsed_ms: float = 0.0

    @property
    def tokens_per_forward(self) -> float:
        return self.tokens / self.nfe if self.nfe else 0.0

    @property
    def steps_per_forward(self) -> float:
        return self.steps / self.nfe if self.nfe else 0.0


# ---- selection strategies: (probs, x0, conf, candidates, k) -> transfer_index ----------------------------------

def _topk(score: Tensor, candidates: Tensor, k: int) -> Tensor:
    score = torch.where(candidates, score, torch.full_like(score, -math.inf))
    idx = torch.topk(score, min(k, int(candidates.sum()))).indices
    out = torch.zeros_like(candidates)
    out[idx] = True
    return out


def _entropy(probs: Tensor) -> Tensor:
    return -(probs * probs.clamp_min(1e-12).log()).sum(-1)  # (C,)


def select(cfg: SamplerConfig, probs: Tensor, conf: Tensor, candidates: Tensor, k: int,
           learned: Tensor | None = None) -> Tensor:
    """Which candidate slots to finalize at this forward; at least one when any candidate exists. `learned`: (C,)
    bool, the slots the finalizer passes (the `learned` strategy)."""
    if cfg.strategy in ("confidence", "lossless"):
        return _topk(conf, candidates, k)
    if cfg.strategy == "margin":
        top2 = probs.topk(2, dim=-1).values  # (C, 2)
        return _topk(top2[:, 0] - top2[:, 1], candidates, k)
    if cfg.strategy == "entropy":
        return _topk(-_entropy(probs), candidates, k)
    if cfg.strategy == "threshold":
        transfer_index = candidates & (conf >= cfg.threshold)
        return transfer_index | _topk(conf, candidates, 1)
    if cfg.strategy == "learned":
        assert learned is not None  # _step scores the slots
        return (candidates & learned) | _topk(conf, candidates, 1)
    # eb: entropy-bound acceptance, lowest entropy first, while the running sum stays under gamma
    ent = torch.where(candidates, _entropy(probs), torch.full_like(conf, math.inf))
    order = torch.argsort(ent)
    cum = torch.cumsum(ent[order].nan_to_num(posinf=1e9), 0)
    n = max(1, int((cum <= cfg.eb_gamma).sum()))
    out = torch.zeros_like(candidates)
    out[order[: min(n, int(candidates.sum()))]] = True
    return out


# ---- the loop -----------------------------------------------------------------------------------------------------

def _pad_runs(x: Tensor, x0_any: Tensor, decided: Tensor, holes: Sequence[tuple[int, int]], pad: int) -> Tensor:
    """Slots where a pad may be finalized: the run, from each hole's right end, of pads and would-be pads."""
    ok = torch.zeros_like(decided)
    for a, b in holes:
        j = b - 1
        while j >= a and ((decided[j] and x[j] == pad) or (not decided[j] and x0_any[j] == pad)):
            ok[j] = True
            j -= 1
    return ok


def _sure_end(rest: Tensor, decided: Tensor, end_run: Tensor, p_pad: Tensor, holes: Sequence[tuple[int, int]],
              threshold: float) -> bool:
    """Whether the slots left after a forward's selection (`rest`) can be decided as the end at once: each is a pad of
    its hole's right-end run (`end_run`), at least `threshold` likely, and each hole's run follows a text slot
    decided in an earlier forward (`decided`, before this one), so the end is never guessed beside a text token
    decided in the same forward, nor for a hole with no text yet."""
    if not bool((end_run & (p_pad >= threshold))[rest].all()):
        return False
    for a, b in holes:
        left = rest[a:b].nonzero().flatten()
        if len(left) and not (int(left[0]) > a and bool(decided[a + int(left[0]) - 1])):
            return False
    return True


def _limits(allowed: dict[int, list[int]] | None, C: int, V: int, device: torch.device) -> list[tuple[int, Tensor]]:
    out = []
    for slot, ids in (allowed or {}).items():
        ids = [i for i in ids if 0 <= i < V]
        if 0 <= slot < C and ids:  # an empty set would leave the slot nothing: it is not limited then
            ok = torch.zeros(V, dtype=torch.bool, device=device)  # (V,)
            ok[ids] = True
            out.append((slot, ok))
    return out


def _pick(probs: Tensor, cfg: SamplerConfig, gen: torch.Generator) -> Tensor:
    if cfg.temperature > 0:
        return torch.multinomial(probs, 1, generator=gen).squeeze(1)  # (C,)
    return probs.max(-1).indices  # (C,): argmax's first maximum, ~3x faster than argmax on a CPU



def is_cancelled(cancel: Callable[[], bool] | object | None) -> bool:
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())  # type: ignore[operator]


@dataclass(frozen=True)
class _Slots:
    """One canvas of a block between forwards: all a step reads of the past, and what it says of its own forward."""

    x: Tensor  # (C,) ids; the model sees only the decided ones (the rest are noise)
    decided: Tensor  # (C,) bool
    remask_left: int  # self-correction's budget left in this block
    step: int  # steps taken in this block
    conf: Tensor  # (C,) the confidence of each slot's prediction at the forward of the step that made this canvas
    remasked: tuple[int, ...] = ()  # slots that step re-noised
    finalized: int = 0  # slots that step finalized
    pick: Tensor | None = None  # (C,) what each slot would take at that step's forward (None: no forward yet)
    stable: Tensor | None = None  # (C,) forwards in a row each slot's pick has stayed the same (the finalizer reads it)
    least: float | None = None  # the lowest confidence a text slot was finalized with so far (None: no text yet)

    @property
    def done(self) -> bool:
        return bool(self.decided.all()) and not self.remasked

    def same(self, other: _Slots) -> bool:
        """The same canvas with the same future: a drafted step is the real one when this holds."""
        return (torch.equal(self.x, other.x) and torch.equal(self.decided, other.decided)
                and self.remask_left == other.remask_left)


@dataclass
class _Rules:
    """What every step of one block reads and never changes (the token limits are set at the block's first forward,
    when the vocabulary size is known)."""

    special: SpecialIds
    holes: Sequence[tuple[int, int]]
    fixed: Tensor  # (C,) bool
    refine: bool  # a rewrite: given slots below refine_threshold are re-noised at the first step
    banned: Tensor  # control tokens never appear in a fill
    allowed: dict[int, list[int]] | None
    limits: list[tuple[int, Tensor]] | None = None  # (slot, (V,) bool: the ids it may take)
    limited_slots: Tensor | None = None  # (C,) bool: the slots `limits` covers
    finalizer: fz.Finalizer | None = None  # the `learned` strategy's classifier
    learned_threshold: float = 1.0  # ...and the score a slot needs
    trace: list[tuple[Tensor, Tensor, Tensor]] | None = None  # a traced fill: (features, picks, slots) per forward

    def prepare(self, logits: Tensor) -> Tensor:
        """Mask what no slot may take, in place: logits (B, C, V)."""
        logits[..., self.banned] = -math.inf
        if self.limits is None:
            C, V = logits.shape[-2:]
            self.limits = _limits(self.allowed, C, V, logits.device)
            self.limited_slots = torch.zeros(C, dtype=torch.bool)  # (C,)
            self.limited_slots[[slot for slot, _ok in self.limits]] = True
        for slot, ok in self.limits:
            logits[:, slot] = torch.where(ok, logits[:, slot], -math.inf)  # (B, V)
        return logits


@dataclass(frozen=True)
class _Forecast:
    """What one forward's logits say of every slot, whatever the canvas they are read against."""

    probs: Tensor  # (C, V)
    x0_any: Tensor  # (C,) each slot's pick
    x0_text: Tensor  # (C,) each slot's pick but pad


def _forecast(cfg: SamplerConfig, logits: Tensor, pad: int, gen: torch.Generator) -> _Forecast:
    probs = torch.softmax(logits / max(cfg.temperature, 1e-6) if cfg.temperature > 0 else logits, dim=-1)  # (C, V)
    x0_any = _pick(probs, cfg, gen)  # (C,)
    no_pad_logits = logits.clone()  # (C, V)
    no_pad_logits[:, pad] = -math.inf
    x0_text = _pick(torch.softmax(no_pad_logits / max(cfg.temperature, 1e-6) if cfg.temperature > 0
                                  else no_pad_logits, dim=-1), cfg, gen)  # (C,)
    return _Forecast(probs, x0_any, x0_text)


def _step(cfg: SamplerConfig, rules: _Rules, s: _Slots, f: _Forecast, rank: int = 0) -> _Slots:
    """One step of the loop on one forward's forecast: what the strategy finalizes and, with self-correction,
    re-noises. Greedy, it depends on the canvas and the forecast alone: `lossless` drafts the next steps by running it
    on a previous forward's forecast, and takes them by running it on each drafted canvas's own. `rank` > 0 drafts an
    alternative: the rank-th most confident slot instead of the first (the same step where the choice is forced)."""
    sp, holes = rules.special, rules.holes
    x, decided, step = s.x, s.decided, s.step
    assert rules.limited_slots is not None  # set by prepare()
    probs, x0_any = f.probs, f.x0_any
    pad_ok = _pad_runs(x, x0_any, decided, holes, sp.pad)
    x0 = torch.where(pad_ok, x0_any, f.x0_text)  # (C,): pads only in the right-end runs
    end_run = pad_ok & (x0_any == sp.pad)  # (C,): the slots that would be the end if decided now
    conf = probs.gather(1, x0.unsqueeze(1)).squeeze(1)  # (C,)
    conf = torch.where(x0 == sp.pad, conf * cfg.pad_confidence, conf)  # (C,)
    stable = (torch.ones_like(x0) if s.pick is None or s.stable is None
              else torch.where(x0 == s.pick, s.stable + 1, 1))  # (C,)
    # self-correction: re-noise finalized slots the model no longer believes (bounded), refine mode's first pass
    remask_left = s.remask_left
    p_cur = probs.gather(1, x.unsqueeze(1)).squeeze(1)  # (C,)
    if rules.refine and step == 0:
        low = decided & ~rules.fixed & (p_cur < cfg.refine_threshold)  # (C,)
    elif remask_left > 0 and cfg.remask_threshold > 0:
        low = decided & ~rules.fixed & (p_cur < cfg.remask_threshold) & (x != x0)  # (C,)
        low &= torch.cumsum(low.long(), 0) <= remask_left
        remask_left -= int(low.sum())
    else:
        low = torch.zeros_like(decided)  # (C,)
    remasked = tuple(low.nonzero().flatten().tolist())
    decided = decided & ~low  # (C,)
    candidates = ~decided  # (C,)
    n_left = int(candidates.sum())
    finalized = 0
    learned = None
    if n_left and (rules.finalizer is not None or rules.trace is not None):
        # text slots only: the end stays with the pad rules, since pads decided early fix the fill's length before
        # its text is written (and traces never hold the canvases given up for a larger one)
        text = candidates & (x0 != sp.pad)  # (C,)
        feats = fz.features(probs, x0, x0_any, decided, stable, step, sp.pad)  # (C, F)
        if rules.trace is not None:
            rules.trace.append((feats[text], x0[text], text.nonzero().flatten()))
        if rules.finalizer is not None:
            learned = text & (rules.finalizer.score(feats) >= rules.learned_threshold)  # (C,)
    if n_left:
        steps_left = max(1, cfg.steps - step)
        limited = candidates & rules.limited_slots  # (C,)
        if steps_left == 1:  # the step limit: finalize everything now
            transfer_index = candidates
        elif bool(limited.any()):  # limited slots first, alone: the model only learns what they hold (the word
            transfer_index = limited  # the user started, for healing) once they are decided
        elif bool(end_run[candidates].all()):  # only the end is left: decide it at once
            transfer_index = candidates
        else:
            k = 1 if cfg.strategy == "lossless" else cfg.k or math.ceil(n_left / steps_left)
            transfer_index = select(cfg, probs, conf, candidates, k, learned)
            if rank and k == 1 and rank < n_left:
                order = torch.argsort(torch.where(candidates, conf, -math.inf), descending=True, stable=True)
                transfer_index = torch.zeros_like(candidates)
                transfer_index[order[rank]] = True
        rest = candidates & ~transfer_index  # (C,)
        if cfg.end_threshold > 0 and bool(rest.any()) and _sure_end(
                rest, decided, end_run, probs[:, sp.pad], holes, cfg.end_threshold):
            transfer_index = candidates  # the end with the text: it would take a forward of its own
        x = torch.where(transfer_index, x0, x)  # (C,)
        decided = decided | transfer_index  # (C,)
        finalized = int(transfer_index.sum())
    least = s.least
    wrote = transfer_index & (x != sp.pad) if n_left else None  # (C,): the text this step finalized
    if wrote is not None and bool(wrote.any()):
        worst = float(conf[wrote].min())
        least = worst if least is None else min(least, worst)
    return _Slots(x, decided, remask_left, step + 1, conf, remasked, finalized, x0, stable, least)


def _head_guess(backend: Backend, handle: Handle, rules: _Rules, s: _Slots) -> _Slots | None:
    """A canvas's first step as the next-token head of the same weights sees it: slot 0, right after the context,
    takes the head's token. It drafts a first forward, which has no earlier forward to draft with (one per forward
    mostly starts with slot 0, and with the head's token: 51 of 61 HumanEval holes, 30 of 60 held-out ones)."""
    if bool(s.decided[0]) or rules.refine:
        return None
    try:
        logits = backend.next_token_logits(handle).clone()  # (V,)
    except (RuntimeError, KeyError, NotImplementedError):  # a backend without a head, or a handle rewound since
        return None
    logits[rules.banned] = -math.inf
    ids = (rules.allowed or {}).get(0)
    if ids:  # token healing's first slot takes only these
        ok = torch.zeros_like(logits, dtype=torch.bool)  # (V,)
        ok[[i for i in ids if 0 <= i < len(ok)]] = True
        logits = torch.where(ok, logits, -math.inf)  # (V,)
    token = int(logits.max(-1).indices)
    if token == rules.special.pad:  # the end is decided as a whole run: not one slot's step
        return None
    x, decided = s.x.clone(), s.decided.clone()  # (C,) each
    x[0], decided[0] = token, True
    return _Slots(x, decided, s.remask_left, s.step + 1, s.conf)


def denoise_block(backend: Backend, handle: Handle, spec: CanvasSpec, cfg: SamplerConfig, stats: SampleStats,
                  prior: list[int], block: int, gen: torch.Generator,
                  cancel: Callable[[], bool] | object | None = None,
                  give_up: Callable[[Tensor, Tensor], bool] | None = None, carried: _Slots | None = None,
                  trail: list[_Slots] | None = None) -> Generator[CanvasState, None, list[int] | None]:
    """Denoise one canvas over a prefilled context; yields after each forward, returns the final slot ids, or None as
    soon as a step leaves a canvas `give_up(x, decided)` is true of. `trail` collects the canvas after every step.
    `carried`: the last canvas of a smaller one this one replaces, given up when its text reached its end: that text
    starts decided here, in the same slots (the model wrote it before it ran out of room; denoising it again took a
    third of a typed line's forwards), and the confidence it was finalized with counts. Its end, if any, does not.

    `lossless` runs, in each forward, the current canvas and the canvases of the next `draft - 1` steps as one batch:
    the steps are drafted on the last forward's logits (every slot was predicted there), then taken one by one on
    each canvas's own logits for as long as each step lands on the next drafted canvas. The steps are those of one
    token per forward (confidence order), the forwards fewer. A backend whose batches are not exact runs one canvas.
    The first forward has no logits to draft with: the next-token head drafts its first step.
    """
    sp = backend.special
    C = len(spec.slots)
    x = torch.tensor(spec.slots, dtype=torch.long)  # (C,)
    fixed = torch.tensor(spec.fixed, dtype=torch.bool)  # (C,)
    decided = fixed.clone() if spec.decided is None else fixed | torch.tensor(spec.decided, dtype=torch.bool)  # (C,)
    rules = _Rules(sp, spec.holes, fixed, spec.decided is not None,
                   torch.tensor(sorted(sp.all - {sp.pad}), dtype=torch.long), spec.allowed)
    if cfg.strategy == "learned":  # FinalizerError before any forward when the model has no usable finalizer
        rules.finalizer = fz.for_backend(backend)
        rules.learned_threshold = cfg.learned_threshold or rules.finalizer.threshold
    recorder = fz.active()
    if recorder is not None and cfg.strategy != "lossless":  # lossless's drafted steps are not forwards
        rules.trace = []
    if carried is not None:
        n = len(carried.x)
        text = carried.decided & (carried.x != sp.pad)  # (n,)
        x[:n] = torch.where(text, carried.x, x[:n])
        decided[:n] |= text
    s = _Slots(x, decided, cfg.max_remask, 0, torch.zeros(C), least=carried.least if carried is not None else None)
    # uniform noise: random ids above the specials (ours come first; elsewhere a stray special is merely noise)
    noise = torch.randint(len(sp.all), backend.tokenizer.vocab_size, (C,), generator=gen)  # (C,)
    fill = torch.full_like(x, sp.mask) if cfg.noise == "mask" else noise  # (C,)
    batches = cfg.strategy == "lossless" and backend.capabilities.exact_batches
    draft = min(cfg.draft, max(1, cfg.draft_rows // C)) if batches else 1
    exact = cfg.exact or cfg.strategy == "lossless"
    stale: _Forecast | None = None  # the last forward's, which drafts the next steps
    while True:
        if is_cancelled(cancel):
            raise Cancelled()
        if cfg.max_forwards and stats.nfe >= cfg.max_forwards:
            raise _OutOfForwards()
        chain = [s]  # the current canvas, then the drafted steps' canvases
        if stale is None and draft > 1:  # the first forward of a canvas: the next-token head drafts its first step
            guess = _head_guess(backend, handle, rules, s)
            if guess is not None:
                chain.append(guess)
        while stale is not None and len(chain) < draft:
            nxt = _step(cfg, rules, chain[-1], stale)
            if nxt.done or (give_up is not None and give_up(nxt.x, nxt.decided)):
                break  # nothing after it to check
            chain.append(nxt)
        canvas_ids = torch.stack([torch.where(c.decided, c.x, fill) for c in chain])  # (B, C)
        logits = rules.prepare(backend.denoise(handle, canvas_ids, exact).float())  # (B, C, V)
        stats.nfe += 1
        stats.canvases += len(chain)
        remasked: list[int] = []
        stop = False
        for i in range(len(chain)):
            if i and not s.same(chain[i]):  # the draft went elsewhere: its later canvases are not the loop's
                break
            stale = _forecast(cfg, logits[i], sp.pad, gen)
            prev, s = s, _step(cfg, rules, s, stale)
            # text finalized by this step below stop_below (earlier text never was: it would have stopped there)
            unsure = s.least is not None and s.least != prev.least and s.least < cfg.stop_below
            if trail is not None:
                trail.append(s)
            stats.steps += 1
            stats.finalized += s.finalized
            stats.remasked += len(s.remasked)
            remasked += s.remasked
            stop = give_up is not None and give_up(s.x, s.decided)
            if s.done or stop or unsure:
                break
        shown = torch.where(s.decided, s.x, torch.full_like(s.x, sp.mask))  # (C,)
        yield CanvasState(prior + shown.tolist(), [False] * len(prior) + (~s.decided).tolist(),
                          [1.0] * len(prior) + torch.where(s.decided, s.conf, 0.0).tolist(), s.step, stats.nfe,
                          block, remasked=[len(prior) + r for r in remasked])
        if unsure:  # even in a first canvas a larger one may replace: its unsure token is the likely end of it too
            assert s.least is not None
            raise _Unsure(s.least)
        if stop:
            return None
        if s.done:
            if rules.trace is not None and recorder is not None:
                recorder.block(rules.trace, s.x)
            low = s.least  # a canvas given up for a larger one counts only through what it carried into it
            if low is not None:
                stats.min_confidence = low if stats.min_confidence is None else min(stats.min_confidence, low)
            return s.x.tolist()


def denoise_stream(backend: Backend, handle: Handle, spec: CanvasSpec, cfg: SamplerConfig,
                   cancel: Callable[[], bool] | object | None = None) -> Generator[CanvasState, None, SampleStats]:
    """Fill `spec` over the prefilled `handle`. Yields every intermediate canvas; the last state has done=True.

    A growable single hole longer than `block_size` is denoised block by block: each finished block is committed
    to the cache in encoder mode and the next block starts; it stops at the first pad or at `max_new` tokens.
    Its first canvas is `cfg.start` slots when that is smaller than the capacity, denoised again twice as large
    while the model writes text up to its last slot (see `first_sizes`).
    """
    t0 = time.perf_counter()
    sp = backend.special
    stats = SampleStats(prefill_ms=handle.prefill_ms)
    gen = torch.Generator().manual_seed(cfg.seed)
    out: list[int] = []
    if not spec.growable:  # several holes or a rewrite: stop_below and max_forwards are for a cursor fill, which
        cfg = replace(cfg, stop_below=0.0, max_forwards=0)  # ends with nothing
        whole = yield from denoise_block(backend, handle, spec, cfg, stats, [], 0, gen, cancel)
        assert whole is not None  # no give_up: the block always ends
        out = whole
        stats.blocks = 1
    else:
        if spec.limit is not None:
            cfg = replace(cfg, max_new=max(1, min(cfg.max_new, spec.limit)))
        capacity = min(len(spec.slots), cfg.max_new)
        firsts = first_sizes(capacity, cfg)
        trail: list[_Slots] = []  # the steps of the last first canvas given up
        block = 0
        try:
            while True:
                if block == 0:
                    size = firsts.pop(0)
                else:
                    size = min(cfg.block_size, cfg.max_new - len(out))
                    if len(out) < capacity:  # the sized capacity first; growth past it comes in whole blocks
                        size = min(size, capacity - len(out))
                piece = CanvasSpec.single(size, sp.mask, spec.allowed if block == 0 else None)
                if block == 0 and firsts:
                    got = yield from _first_canvas(backend, handle, piece, cfg, stats, gen, cancel, trail)
                    if got is None:
                        stats.restarts += 1  # text up to the last slot: the model wants more room than this canvas
                        continue
                else:
                    got = yield from denoise_block(backend, handle, piece, cfg, stats, out, block, gen, cancel,
                                                   carried=trail[-1] if block == 0 and trail else None)
                    assert got is not None  # no give_up: the block always ends
                ids = got
                block += 1
                ended = sp.pad in ids
                out = out + (ids[: ids.index(sp.pad)] if ended else ids)
                cut = repeated_tail(out, cfg.repeat_rounds) if cfg.repeat_rounds else None
                if cut is not None:  # a degenerate loop: keep its first round, stop growing
                    out, stats.cut = out[:cut], "repetition"
                    break
                if ended:
                    break
                if len(out) >= cfg.max_new or (len(out) >= capacity and not cfg.grow):
                    stats.cut = "limit" if cfg.grow else ""
                    break
                handle = backend.commit(handle, ids)
        except _Unsure as unsure:  # not to be shown: what was decided by then is not a result either
            out, stats.cut = [], "unsure"
            stats.min_confidence = unsure.least if stats.min_confidence is None else min(stats.min_confidence,
                                                                                        unsure.least)
        except _OutOfForwards:
            out, stats.cut = [], "forwards"
        stats.blocks = block
    fixed = spec.fixed if not spec.growable else []
    stats.tokens = sum(1 for i, t in enumerate(out) if t != sp.pad and not (i < len(fixed) and fixed[i]))
    stats.elapsed_ms = (time.perf_counter() - t0) * 1e3
    # the final canvas: for a single hole the text ids (pads cut); for several holes every slot, pads included,
    # so the caller can split it back into holes
    yield CanvasState(out, [False] * len(out), [1.0] * len(out), 0, stats.nfe, stats.blocks, done=True)
    return stats


REPEAT_MIN_TOKENS = 12  # the repeated rounds together span at least this many tokens ("0, 0, 0" is code, not a loop)
REPEAT_MAX_PERIOD = 48


def repeated_tail(ids: Sequence[int], rounds: int = 3, min_tokens: int = REPEAT_MIN_TOKENS,
                  max_period: int = REPEAT_MAX_PERIOD) -> int | None:
    """Where to cut ids when they end in one piece repeated `rounds` or more times (spanning >= min_tokens): the
    length that keeps the text before the loop and its first round. None when the end does not repeat."""
    n = len(ids)
    for p in range(1, min(max_period, n // rounds) + 1):
        span = p
        while span < n and ids[n - 1 - span] == ids[n - 1 - span + p]:
            span += 1
        # ids[n - span:] is periodic with period p; whole rounds in it:
        if span // p >= rounds and span >= min_tokens:
            return n - span + p
    return None


def _first_canvas(backend: Backend, handle: Handle, piece: CanvasSpec, cfg: SamplerConfig, stats: SampleStats,
                  gen: torch.Generator, cancel: Callable[[], bool] | object | None, trail: list[_Slots]
                  ) -> Generator[CanvasState, None, list[int] | None]:
    """Denoise a first canvas that a larger one may replace: None as soon as one of its last two slots is text.

    Pads only grow from the right end, so text there means the fill takes at least all but one slot: the model
    wants more room than this canvas, and the forwards left on it would be wasted. `trail`: in, the steps of the
    smaller canvas this one replaces, whose last canvas's text this one starts with; out, this canvas's.
    """
    size, pad = len(piece.slots), backend.special.pad

    def text_at_the_end(x: Tensor, decided: Tensor) -> bool:
        return bool((decided[-2:] & (x[-2:] != pad)).any())

    carried = trail[-1] if trail else None
    trail.clear()
    ids = yield from denoise_block(backend, handle, piece, cfg, stats, [], 0, gen, cancel, text_at_the_end, carried,
                                   trail)
    if ids is None or sum(1 for t in ids if t != pad) >= size - 1:
        return None
    return ids


def first_sizes(capacity: int, cfg: SamplerConfig) -> list[int]:
    """The first canvas sizes a growable hole of `capacity` slots tries, in order: `cfg.start` (or the capacity when
    smaller), doubled up to `block_size` (with grow) or to the capacity (without). start 0: the usual first block."""
    usual = max(1, min(cfg.block_size, cfg.max_new, capacity))
    if not cfg.start:
        return [usual]
    top = max(usual, min(cfg.block_size, cfg.max_new)) if cfg.grow else usual
    sizes = [min(cfg.start, usual)]
    while sizes[-1] < top:
        sizes.append(min(2 * sizes[-1], top))
    return sizes


def fill(backend: Backend, context_ids: Sequence[int], spec: CanvasSpec, cfg: SamplerConfig,
         session: str = "default", cancel: object | None = None) -> tuple[list[int], SampleStats, list[CanvasState]]:
    """Prefill and run the loop to the end: (final ids, stats, every state). For the CLI, tests and benchmarks."""
    handle = backend.prefill(context_ids, session)
    states: list[CanvasState] = []
    gen = denoise_stream(backend, handle, spec, cfg, cancel)
    while True:
        try:
            states.append(next(gen))
        except StopIteration as stop:
            return states[-1].ids, stop.value, states


def _head_banned(sp: SpecialIds) -> Tensor:
    """Ids the next-token head may never emit in a fill: the control tokens but pad and eos (which end it)."""
    return torch.tensor(sorted(sp.all - {sp.pad, sp.eos}), dtype=torch.long)


def autoregressive(backend: Backend, context_ids: Sequence[int], max_new: int, session: str = "default",
                   cancel: object | None = None) -> tuple[list[int], SampleStats]:
    """The true AR baseline: one token per forward through the cache, greedy, until pad/eos or max_new."""
    t0 = time.perf_counter()
    sp = backend.special
    handle = backend.prefill(context_ids, session)
    stats = SampleStats(prefill_ms=handle.prefill_ms)
    banned = _head_banned(sp)
    out: list[int] = []
    while len(out) < max_new:
        if is_cancelled(cancel):
            raise Cancelled()
        if out:  # one forward per token: the previous token joins the cache, its hidden state gives the next
            handle = backend.commit(handle, out[-1:])
        logits = backend.next_token_logits(handle).clone()  # (V,)
        stats.nfe += 1
        logits[banned] = -math.inf
        tid = int(logits.argmax())
        if tid in (sp.pad, sp.eos):
            break
        out.append(tid)
    stats.tokens = len(out)
    stats.elapsed_ms = (time.perf_counter() - t0) * 1e3
    return out, stats


class VerifyingBackend(Backend, Protocol):
    """A backend whose encoder mode returns the next-token logits after every committed token (the embedded one)."""

    def verify(self, handle: Handle, ids: Sequence[int]) -> tuple[Handle, Tensor]: ...


def speculative(backend: VerifyingBackend, context_ids: Sequence[int], max_new: int, draft: int = 16,
                session: str = "default", cancel: object | None = None) -> tuple[list[int], SampleStats]:
    """Greedy autoregressive decoding, drafted by the diffusion canvas: the same text as `autoregressive`, in fewer
    forwards when the drafts are good.

    Each round: one decoder-mode forward denoises a `draft`-slot canvas after the text so far (all slots at once,
    argmax, cut at its first pad); one encoder-mode forward (`verify`) runs the draft causally and gives the
    next-token logits after each draft token. The longest draft prefix the next-token head agrees with is kept, plus
    the head's own next token, which opens the next round's canvas as a given slot. Stops at pad/eos or max_new.
    In the stats, `blocks` counts rounds and `finalized` the draft tokens kept.
    """
    t0 = time.perf_counter()
    sp = backend.special
    handle = backend.prefill(context_ids, session)
    stats = SampleStats(prefill_ms=handle.prefill_ms)
    banned = _head_banned(sp)
    stop = (sp.pad, sp.eos)
    before = backend.next_token_logits(handle).clone()  # (V,) predicts the first token: prefill computed it
    before[banned] = -math.inf
    out: list[int] = []
    given = int(before.argmax())  # the next token, decided by the head but not yet in the cache
    while given not in stop and len(out) < max_new:
        if is_cancelled(cancel):
            raise Cancelled()
        out.append(given)
        room = min(draft, max_new - len(out))
        guess: list[int] = []
        if room > 0:
            canvas = torch.tensor([[given] + [sp.mask] * room], dtype=torch.long)  # (1, 1 + room)
            logits = backend.denoise(handle, canvas)[0, 1:].float()  # (room, V)
            stats.nfe += 1
            logits[:, banned] = -math.inf
            guess = logits.argmax(-1).tolist()
            if sp.pad in guess:
                guess = guess[: guess.index(sp.pad)]
        full, after = backend.verify(handle, [given] + guess)  # after[j]: next-token logits after token j
        stats.nfe += 1
        after[:, banned] = -math.inf
        pred = after.argmax(-1).tolist()  # (1 + len(guess),)
        kept = 0
        while kept < len(guess) and pred[kept] == guess[kept]:
            kept += 1
        stats.finalized += kept
        stats.blocks += 1
        out.extend(guess[:kept])
        handle = replace(full, length=handle.length + 1 + kept, reused=handle.length)
        given = pred[kept]
    stats.tokens = len(out)
    stats.elapsed_ms = (time.perf_counter() - t0) * 1e3
    return out, stats
