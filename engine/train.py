"""Training loop: masked diffusion on the canvas plus a dense next-token loss on the causal context.

Examples arrive as plain data (built by infill/, so training sees exactly the canvases serving sees). The objective:
- canvas (decoder mode, bidirectional): MDLM / LLaDA masked diffusion, mask ratio t ~ U(eps, 1), cross-entropy on
  the masked slots weighted 1/t; rewrite examples also corrupt slots with random tokens (uniform-state noise);
- context (encoder mode, causal): next-token cross-entropy on every context token (and the first middle token),
  which makes every token of compute count and gives an autoregressive baseline from the same weights.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor

from engine.model import DiffusionLM, ModelConfig, load_model, native_bf16, save_model, two_mode_mask
from engine.tokenizer import SpecialIds


@dataclass(frozen=True)
class Example:
    context: list[int]  # SPM context ids ending in <fim_middle> (plus any committed middle tokens)
    target: list[int]  # the clean canvas: middle tokens, then pad slots up to the canvas capacity
    rewrite: bool = False  # start the canvas from a corrupted copy of the target (select-and-rewrite)


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 24  # ~8k tokens a step: the most 2 cores turn over in a few seconds
    lr: float = 2e-3  # small models take a high peak rate; tuned on short runs
    min_lr_frac: float = 0.1  # cosine floor
    warmup: int = 100  # steps of linear warm-up
    total_steps: int = 3000  # the cosine horizon; training can stop earlier and resume
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    mask_eps: float = 0.05  # t ~ U(eps, 1): avoid 1/t blowing up
    ar_weight: float = 1.0  # weight of the next-token loss on the context
    certainty: float = 0.0  # weight of certainty forcing: the entropy of masked slots the model already gets right
    bf16: bool = True  # autocast where it is fast (bf16_fast): GPUs, CPUs with AVX512-BF16 (1.5x there)
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 100
    device: str = "cpu"
    total_minutes: float | None = None  # when set, the cosine horizon is training time instead of total_steps
    workers: int = 0  # processes that build and collate examples (a GPU needs many to stay busy)


def collate(batch: list[Example], special: SpecialIds, vocab_size: int, cfg: TrainConfig,
            rng: torch.Generator) -> dict[str, Tensor]:
    """Left-pad contexts, right-pad canvases, apply the diffusion noise. Everything the loss needs, as tensors."""
    B = len(batch)
    T_ctx = max(len(e.context) for e in batch)
    T_can = max(len(e.target) for e in batch)
    ids = torch.full((B, T_ctx + T_can), special.pad, dtype=torch.long)
    targets = torch.full((B, T_ctx + T_can), -100, dtype=torch.long)  # -100: no loss
    weights = torch.zeros(B, T_ctx + T_can)
    ctx_len = torch.tensor([len(e.context) for e in batch])
    can_len = torch.tensor([len(e.target) for e in batch])
    t = cfg.mask_eps + (1 - cfg.mask_eps) * torch.rand(B, generator=rng)  # (B,) mask ratio
    for i, e in enumerate(batch):
        c = torch.tensor(e.context, dtype=torch.long)
        x0 = torch.tensor(e.target, dtype=torch.long)
        s = T_ctx - len(e.context)
        ids[i, s:T_ctx] = c
        # next-token targets on the context; the last context token predicts the first clean middle token
        targets[i, s:T_ctx - 1] = c[1:]
        targets[i, T_ctx - 1] = x0[0]
        weights[i, s:T_ctx] = cfg.ar_weight / len(e.context)
        mask_index = torch.rand(len(x0), generator=rng) < t[i]
        if not mask_index.any():
            mask_index[torch.randint(len(x0), (1,), generator=rng)] = True
        xt = torch.where(mask_index, torch.full_like(x0, special.mask), x0)
        noisy = mask_index.clone()
        if e.rewrite:  # uniform-state corruption of some unmasked slots: the model learns to spot and fix them
            # (random ids above the specials, which our tokenizer puts first)
            swap = (~mask_index) & (torch.rand(len(x0), generator=rng) < 0.3)
            xt = torch.where(swap, torch.randint(len(special.all), vocab_size, x0.shape, generator=rng), xt)
            noisy |= swap
        ids[i, T_ctx:T_ctx + len(x0)] = xt
        targets[i, T_ctx:T_ctx + len(x0)] = torch.where(noisy, x0, torch.full_like(x0, -100))
        weights[i, T_ctx:T_ctx + len(x0)] = noisy.float() / (t[i] * len(x0))
    # the (B, T, T) mask is built where the model runs (see with_mask): it is large and cheap to make
    return {"ids": ids, "ctx_len": ctx_len, "can_len": can_len, "targets": targets, "weights": weights,
            "T_ctx": torch.tensor(T_ctx)}


def with_mask(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """Add the two-mode attention mask and positions, on the batch's device."""
    T_ctx = int(batch["T_ctx"])
    mask, pos = two_mode_mask(batch["ctx_len"], batch["can_len"], T_ctx, batch["ids"].shape[1] - T_ctx)
    return {**batch, "mask": mask, "pos": pos}


def bucketed(examples: Iterator[Example], batch_size: int, rng: random.Random,
             pool: int = 8) -> Iterator[list[Example]]:
    """Batches of similar context length (rows are padded to the longest): draw `pool` batches, sort, shuffle."""
    while True:
        buf = sorted((next(examples) for _ in range(batch_size * pool)), key=lambda e: len(e.context) + len(e.target))
        chunks = [buf[i:i + batch_size] for i in range(0, len(buf), batch_size)]
        rng.shuffle(chunks)
        yield from chunks


class BatchStream(torch.utils.data.IterableDataset):
    """Collated batches from `make_examples(seed)`; each DataLoader worker draws its own seeded example stream."""

    def __init__(self, make_examples: Callable[[int], Iterator[Example]], special: SpecialIds, vocab_size: int,
                 cfg: TrainConfig, seed: int) -> None:
        self.make_examples, self.special, self.vocab_size, self.cfg, self.seed = (
            make_examples, special, vocab_size, cfg, seed)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        info = torch.utils.data.get_worker_info()
        seed = self.seed if info is None else self.seed * 1009 + info.id + 1  # in-process: the seed as given
        rng = torch.Generator().manual_seed(seed)
        batches = bucketed(self.make_examples(seed), self.cfg.batch_size, random.Random(seed))
        for b in batches:
            yield collate(b, self.special, self.vocab_size, self.cfg, rng)


def loss_fn(model: DiffusionLM, batch: dict[str, Tensor], certainty: float = 0.0) -> tuple[Tensor, dict[str, float]]:
    """Next-token loss on the context plus the diffusion loss on the canvas, and with `certainty` > 0 certainty
    forcing (dParallel): the entropy of each noised slot whose argmax is already the target, weighted like its
    cross-entropy. It makes the model confident where it is right, so a threshold sampler finalizes more slots per
    forward; wrong slots get only the cross-entropy."""
    h = model(batch["ids"], batch["pos"], batch["mask"])  # (B, T, dim)
    logp = F.log_softmax(model.logits(h).float(), dim=-1)  # (B, T, V): the CE's, and certainty forcing's
    ce = F.nll_loss(logp.flatten(0, 1), batch["targets"].flatten(), reduction="none", ignore_index=-100)
    ce = ce.view_as(batch["weights"])  # (B, T)
    T_ctx = int(batch["T_ctx"])
    w = batch["weights"]
    B = w.shape[0]
    ar = (ce[:, :T_ctx] * w[:, :T_ctx]).sum() / B
    diff = (ce[:, T_ctx:] * w[:, T_ctx:]).sum() / B
    n_masked = max(1, int((batch["targets"][:, T_ctx:] != -100).sum()))
    raw_diff = float(ce[:, T_ctx:].detach().sum()) / n_masked
    parts = {"ar": float(ar.detach()), "diff": float(diff.detach()), "diff_ce": raw_diff}
    if certainty <= 0:
        return ar + diff, parts
    can = logp[:, T_ctx:]  # (B, T_can, V)
    entropy = -(can.exp() * can).sum(-1)
    right = can.argmax(-1) == batch["targets"][:, T_ctx:]
    cf = (entropy * right * w[:, T_ctx:]).sum() / B
    parts["certainty"] = float(cf.detach())
    return ar + diff + certainty * cf, parts


def lr_at(step: int, cfg: TrainConfig, seconds: float = 0.0) -> float:
    """Linear warm-up, then cosine to min_lr_frac over total_steps (or over total_minutes of training time)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.total_minutes:
        p = min(1.0, seconds / (cfg.total_minutes * 60))
    else:
        p = min(1.0, (step - cfg.warmup) / max(1, cfg.total_steps - cfg.warmup))
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))


@dataclass
class TrainState:
    step: int = 0
    tokens: int = 0
    seconds: float = 0.0
    skipped: int = 0  # steps whose gradient was not finite (their update was dropped)
    history: list[dict] = field(default_factory=list)


def _save_checkpoint(model: DiffusionLM, opt: torch.optim.Optimizer, state: TrainState, out: Path,
                     extra: dict) -> None:
    """Weights as safetensors, optimizer moments as safetensors, counters as JSON: nothing is pickled."""
    tmp = out / "ckpt.tmp"
    save_model(model, tmp, extra_config=extra)
    opt_tensors = {}
    for pname, p in model.named_parameters():
        st = opt.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in st:
                opt_tensors[f"{pname}.{key}"] = st[key].contiguous()
        if "step" in st:
            opt_tensors[f"{pname}.step"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(1)
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps(asdict(state)))
    final = out / "ckpt"
    if final.exists():
        old = out / "ckpt.old"
        if old.exists():
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
        final.rename(old)
    tmp.rename(final)


def _load_checkpoint(model: DiffusionLM, opt: torch.optim.Optimizer, ckpt: Path) -> TrainState:
    loaded = load_model(ckpt)
    model.load_state_dict(loaded.state_dict())
    opt_tensors = load_file(str(ckpt / "optimizer.safetensors"))
    for pname, p in model.named_parameters():
        if f"{pname}.exp_avg" in opt_tensors:
            opt.state[p] = {
                "exp_avg": opt_tensors[f"{pname}.exp_avg"].to(p.device),
                "exp_avg_sq": opt_tensors[f"{pname}.exp_avg_sq"].to(p.device),
                # fused AdamW (on a GPU) keeps its step counters on the device
                "step": opt_tensors[f"{pname}.step"].reshape(()).clone().to(p.device if p.is_cuda else "cpu"),
            }
    return TrainState(**json.loads((ckpt / "state.json").read_text()))


def train(model_cfg: ModelConfig, cfg: TrainConfig, examples: Iterator[Example] | Callable[[int], Iterator[Example]],
          special: SpecialIds, out: str | Path,
          max_steps: int | None = None, max_minutes: float | None = None, init_from: str | Path | None = None,
          extra_config: dict | None = None, progress: bool = True) -> TrainState:
    """Train (or resume from out/ckpt) until max_steps or max_minutes. Checkpoints to out/ckpt; returns the state.

    `examples` is an example iterator, or a function from a seed to one (needed with cfg.workers > 0).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    if init_from is not None:
        model = load_model(init_from)
        model_cfg = model.cfg
    else:
        model = DiffusionLM(model_cfg)
        model.init_weights(cfg.seed)
    model.to(device).train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95),
                            fused=cuda or None)
    state = TrainState()
    if (out / "ckpt" / "state.json").exists():
        state = _load_checkpoint(model, opt, out / "ckpt")
        print(f"resumed from {out / 'ckpt'} at step {state.step}", file=sys.stderr)
    extra = {"train": asdict(cfg), **(extra_config or {})}
    random.seed(cfg.seed + state.step)
    # the end: max_steps more steps; else the schedule's horizon (training time with total_minutes, else total_steps)
    stop_step = state.step + max_steps if max_steps is not None else None if cfg.total_minutes else cfg.total_steps

    def progress_frac() -> float:
        if stop_step is not None:
            return state.step / max(1, stop_step)
        return state.seconds / (60 * (cfg.total_minutes or 1))

    t_start = time.time()
    log = open(out / "train_log.jsonl", "a")
    bf16 = cfg.bf16 and bf16_fast(device)
    dtype = torch.bfloat16 if bf16 else torch.float32
    make_examples: Callable[[int], Iterator[Example]]
    if isinstance(examples, Iterator):
        given = examples

        def make_examples(_seed: int) -> Iterator[Example]:  # an iterator is used as it is
            return given
    else:
        make_examples = examples
    stream = BatchStream(make_examples, special, model_cfg.vocab_size, cfg, cfg.seed + state.step)
    batches: Iterator[dict[str, Tensor]] = iter(stream)
    if not isinstance(examples, Iterator) and cfg.workers > 0:  # workers need a factory: each its own stream
        batches = iter(torch.utils.data.DataLoader(stream, batch_size=None, num_workers=cfg.workers,
                                                   pin_memory=cuda, prefetch_factor=4, persistent_workers=False))
    while progress_frac() < 1:
        if max_minutes is not None and time.time() - t_start > max_minutes * 60:
            break
        t0 = time.time()
        batch = with_mask({k: v.to(device, non_blocking=True) for k, v in next(batches).items()})
        lr = lr_at(state.step, cfg, state.seconds)
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast(device.type, dtype=dtype, enabled=bf16):
            loss, parts = loss_fn(model, batch, cfg.certainty)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
        if math.isfinite(gnorm):
            opt.step()
        else:  # an overflowing batch (bf16) would turn every weight into NaN: drop its update instead
            opt.zero_grad(set_to_none=True)
            state.skipped += 1
        state.step += 1
        n_tok = int(batch["ids"].numel())
        state.tokens += n_tok
        dt = time.time() - t0
        state.seconds += dt
        rec = {"step": state.step, "loss": float(loss.detach()), **parts, "gnorm": gnorm,
               "lr": lr, "tok_s": n_tok / dt, "tokens": state.tokens}
        log.write(json.dumps(rec) + "\n")
        if progress and (state.step % cfg.log_every == 0 or state.step == 1):
            done = min(1.0, progress_frac())
            bar = "#" * int(30 * done) + "-" * (30 - int(30 * done))
            of = f"/{stop_step}" if stop_step else ""
            print(f"[{bar}] step {state.step}{of} loss {float(loss.detach()):.3f} ar {parts['ar']:.3f} "
                  f"diff_ce {parts['diff_ce']:.3f} {n_tok / dt:.0f} tok/s", file=sys.stderr, flush=True)
            log.flush()
        if state.step % cfg.ckpt_every == 0:
            _save_checkpoint(model, opt, state, out, extra)
    _save_checkpoint(model, opt, state, out, extra)
    log.close()
    return state


def bf16_fast(device: torch.device) -> bool:
    """Whether bf16 autocast speeds training up here: a GPU with bf16, or a CPU with native bf16 (AVX512-BF16, AMX).
    Elsewhere the CPU emulates it, many times slower than float32."""
    return native_bf16(str(device))


def set_threads() -> None:
    n = int(os.environ.get("DIFFUSION_LS_THREADS", "0")) or os.cpu_count() or 1
    torch.set_num_threads(n)
