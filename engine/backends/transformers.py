"""DiffusionGemma through transformers (`DiffusionGemmaForBlockDiffusion`, the `hf` extra), behind the Backend seam.

    prefill  model.model.encoder(input_ids, past_key_values=cache)        causal, writes the session's cache
    denoise  model(decoder_input_ids=canvas, past_key_values=cache,       bidirectional over the canvas, reads the
                   self_conditioning_logits=previous forward's logits)    cache, writes nothing
    commit   the encoder again, on the finished block

The model has no mask token (its noise is uniform random tokens) and no suffix slot: the suffix goes in the prompt
(engine.backends.prompting). Its decoder is self-conditioned on the previous forward's logits, scaled by the
temperature the model's own loop would use at that step; the seam has no slot for them, so they live in the handle
(`extra["self_cond"]`) and restart with every new canvas shape or handle. `native_stream` is the model's own loop
(transformers' EntropyBoundSampler) over the same forwards, for fidelity; engine.sampler's loop runs on `denoise`.

Sessions keep every cached position (sliding-window layers record their past), so a prefill reuses the longest
common prefix and a commit can be rewound; the decoder is shown only the window it was trained with.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from engine import memory, quant
from engine.backend import Capabilities, Handle, Seam, fold_ends
from engine.backends.prompting import ChatPrompter, HFTokenizer, PromptConfig
from engine.model import ModelLoadError, check_device
from engine.sampler import Cancelled, CanvasSpec, CanvasState, SamplerConfig, SampleStats, is_cancelled
from engine.tokenizer import SpecialIds


@dataclass(frozen=True)
class DiffusionParams:
    """The model's own sampling settings (generation_config.json; transformers' defaults where it is silent)."""

    max_denoising_steps: int = 48  # forwards per canvas at most
    entropy_bound: float = 0.1  # EB acceptance: sum of accepted entropies (nats) minus the largest stays below this
    t_max: float = 0.8  # temperature at the first forward of a canvas...
    t_min: float = 0.4  # ...falling linearly to this at the last
    stability_threshold: int = 1  # stop once the argmax canvas is unchanged this many forwards...
    confidence_threshold: float = 0.005  # ...and its mean entropy is below this

    @classmethod
    def from_generation_config(cls, gc: Any) -> DiffusionParams:
        sampler = getattr(gc, "sampler_config", None)
        found = {
            "max_denoising_steps": getattr(gc, "max_denoising_steps", None),
            "entropy_bound": getattr(sampler, "entropy_bound", None),
            "t_max": getattr(gc, "t_max", None),
            "t_min": getattr(gc, "t_min", None),
            "stability_threshold": getattr(gc, "stability_threshold", None),
            "confidence_threshold": getattr(gc, "confidence_threshold", None),
        }
        return cls(**{k: v for k, v in found.items() if v is not None})

    def temperature(self, forward: int) -> float:
        """The temperature of the model's loop at a canvas's `forward`-th forward (0-based)."""
        cur_step = max(self.max_denoising_steps - forward, 1)  # the library counts the steps left, N..1
        return self.t_min + (self.t_max - self.t_min) * (cur_step / self.max_denoising_steps)


# transformers' quantizers, by the names the `quantization` setting takes. Each converts only nn.Linear modules whose
# weights are not shared: DiffusionGemma's fused 3-D experts (88% of the weights) and the attention and MLP weights its
# encoder and decoder share all stay bf16, so none shrinks the model enough to matter (tools/moe_memory.py measures
# it; docs/results/moe_memory.json) and the backend refuses them rather than load a model the user expected smaller.
LINEAR_QUANTIZERS = ("bnb-4bit", "bnb-8bit", "quanto-int8", "quanto-int4", "torchao-int8", "torchao-int4")


def refuse_quantization(name: str) -> str:
    """Why a quantizer is refused, and what fits instead."""
    return (f"quantization {name!r} would not shrink DiffusionGemma: transformers' quantizers convert only nn.Linear "
            "modules whose weights are not shared, and its fused 3-D experts (88% of the weights) and the attention "
            "and MLP weights its encoder and decoder share stay bf16 (tools/moe_memory.py measures it). Use "
            "'experts-int4' (the experts quantized here, in process), or backend 'vllm' with a pre-quantized NVFP4 "
            "checkpoint directory as modelPath; `diffusion-ls doctor` shows what fits here")


@dataclass
class _Session:
    cache: Any  # transformers DynamicCache; sliding layers record their past, so it can be cut anywhere
    ids: list[int] = field(default_factory=list)  # the tokens the cache holds, in order


class TransformersBackend(Seam):
    """DiffusionGemma on a local GPU (or CPU), loaded from a local directory only; one KV cache per session (LRU)."""

    name = "transformers"
    capabilities = Capabilities(streams=True, instructions=True, mask_token=False, native_infill=False,
                                native_loop=True)

    def __init__(self, model_path: str | Path, device: str = "cpu", dtype: str = "auto", max_sessions: int = 4,
                 threads: int | None = None, self_conditioning: bool = True,
                 prompt: PromptConfig | None = None, quantization: str = "none") -> None:
        if quantization != "none" and quantization not in quant.SCHEMES:
            raise ModelLoadError(refuse_quantization(quantization) if quantization in LINEAR_QUANTIZERS else
                                 f"unknown quantization {quantization!r}; 'none', "
                                 f"{', '.join(map(repr, quant.SCHEMES))}")
        d = Path(model_path).expanduser()
        if not (d / "config.json").is_file():
            raise ModelLoadError(f"{d} is not a model directory (no config.json); set modelPath to a local "
                                 "DiffusionGemma checkpoint")
        check_device(device)
        try:
            from transformers import AutoConfig, DiffusionGemmaForBlockDiffusion
        except ImportError as exc:
            raise ModelLoadError("the transformers backend needs transformers >= 5.11: pip install "
                                 "'diffusion-ls[hf]'") from exc
        if threads:
            torch.set_num_threads(threads)
        try:
            config = AutoConfig.from_pretrained(d, local_files_only=True)
            if config.model_type != "diffusion_gemma":
                raise ModelLoadError(f"{d} holds a {config.model_type!r} model, not DiffusionGemma")
            # straight onto the GPU when accelerate is there (a 26B checkpoint need not pass through host memory);
            # quantized experts are made from the bf16 weights in host memory first, then moved
            placed = {"device_map": device} if device != "cpu" and importlib.util.find_spec("accelerate") and \
                quantization == "none" else {}
            cls: Any = DiffusionGemmaForBlockDiffusion
            self.model = cls.from_pretrained(str(d), local_files_only=True, use_safetensors=True,  # nothing unpickled
                                             dtype=dtype if dtype == "auto" else getattr(torch, dtype), **placed)
            if quantization != "none":
                quant.quantize_experts(self.model, quantization)
            self.model = self.model.to(device).eval()
            self.tokenizer = HFTokenizer.from_dir(d)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load DiffusionGemma from {d}: {exc}") from exc
        self.prompter = ChatPrompter(self.tokenizer, prompt)
        # the loaded weights' bytes, measured (tied weights once): diffusion/status shows it as the memory estimate
        self.memory_estimate_bytes = memory.weight_bytes(self.model)
        self.memory_format = str(next(self.model.parameters()).dtype).removeprefix("torch.") + \
            (f", {quantization}" if quantization != "none" else "")
        self.params = DiffusionParams.from_generation_config(self.model.generation_config)
        self.model_name = d.name
        self.device = device
        self.max_sessions = max_sessions
        self.self_conditioning = self_conditioning
        self.canvas_length = int(self.model.config.canvas_length or 256)
        self.vocab_size = int(self.model.config.text_config.vocab_size)
        sp = self.tokenizer.special
        self.end_ids = sorted(self.tokenizer.end_ids | {sp.pad})  # all mean "the answer ends here"
        # control tokens, image tokens and ids past the tokenizer's never belong in a fill
        ctrl = set(self.tokenizer.hf.all_special_ids) | sp.all | set(range(len(self.tokenizer.hf), self.vocab_size))
        for key in ("boi_token_id", "eoi_token_id", "image_token_id"):
            if getattr(self.model.config, key, None) is not None:
                ctrl.add(int(getattr(self.model.config, key)))
        self._banned = torch.tensor(sorted(i for i in ctrl if i not in self.end_ids and i < self.vocab_size))
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._lock = threading.RLock()

    @property
    def special(self) -> SpecialIds:
        return self.tokenizer.special

    @property
    def max_context(self) -> int:
        return int(self.model.config.text_config.max_position_embeddings)

    def sampler_config(self, **overrides: Any) -> SamplerConfig:
        """engine.sampler's loop set up as near the model's own as it goes (see native_stream for the differences)."""
        p = self.params
        base = SamplerConfig(strategy="eb", noise="uniform", eb_gamma=p.entropy_bound, steps=p.max_denoising_steps,
                             block_size=self.canvas_length, temperature=0.0, start=0,  # canvas: not a length hint
                             remask_threshold=0.02)
        return replace(base, **overrides)

    # ---- sessions and the cache --------------------------------------------------------------------------------

    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config.get_text_config(decoder=True))
        layers: list[Any] = list(cache.layers)
        for layer in layers:
            if getattr(layer, "is_sliding", False):
                layer.activate_past_recording()  # keep every position: rewinding needs the ones past the window
        return cache

    def _session(self, session: str) -> _Session:
        sess = self._sessions.pop(session, None)
        if sess is None:
            sess = _Session(self._new_cache())
            while len(self._sessions) >= self.max_sessions:
                self._sessions.popitem(last=False)
        self._sessions[session] = sess  # most recently used last
        return sess

    def drop_session(self, session: str) -> None:
        with self._lock:
            self._sessions.pop(session, None)

    def _truncate(self, sess: _Session, n: int) -> None:
        if n >= len(sess.ids):
            return
        if n == 0:
            sess.cache, sess.ids = self._new_cache(), []
            return
        for layer in sess.cache.layers:
            if layer.is_initialized:
                layer.keys, layer.values = layer.keys[:, :, :n], layer.values[:, :, :n]  # (B, H, n, D)
                if hasattr(layer, "cumulative_length"):
                    layer.cumulative_length = n
        del sess.ids[n:]

    def _encode(self, sess: _Session, ids: Sequence[int]) -> None:
        x = torch.tensor([list(ids)], dtype=torch.long, device=self.device)  # (1, T)
        with torch.no_grad():
            self.model.model.encoder(input_ids=x, past_key_values=sess.cache)  # positions follow the cached ones
        sess.ids.extend(int(i) for i in ids)

    @contextlib.contextmanager
    def _windowed(self, sess: _Session) -> Iterator[None]:
        """Show sliding layers only their last window - 1 positions, as the model's own (unrewindable) cache does."""
        saved = []
        layers: list[Any] = list(sess.cache.layers)
        for layer in layers:
            w = int(getattr(layer, "sliding_window", 0) or 0)
            if getattr(layer, "is_sliding", False) and layer.is_initialized and layer.keys.shape[-2] > w - 1:
                saved.append((layer, layer.keys, layer.values))
                layer.keys, layer.values = layer.keys[:, :, -(w - 1):], layer.values[:, :, -(w - 1):]  # (B, H, w-1, D)
        try:
            yield
        finally:
            for layer, k, v in saved:
                layer.keys, layer.values = k, v

    def _live(self, handle: Handle) -> _Session:
        sess = self._sessions.get(handle.session)
        if sess is None or len(sess.ids) < handle.length or handle.state != tuple(sess.ids[:handle.length]):
            raise RuntimeError(f"session {handle.session!r} was evicted or rewound; prefill again")
        self._truncate(sess, handle.length)  # a commit after this handle is undone: the decoder reads the whole cache
        return sess

    # ---- the seam ----------------------------------------------------------------------------------------------

    def prefill(self, context_ids: Sequence[int], session: str = "default") -> Handle:
        if not context_ids:
            raise ValueError("empty context: the prompt is needed")
        t0 = time.perf_counter()
        ids = [int(i) for i in context_ids]
        with self._lock:
            sess = self._session(session)
            n = 0
            for a, b in zip(sess.ids, ids, strict=False):
                if a != b:
                    break
                n += 1
            self._truncate(sess, n)
            if n < len(ids):
                self._encode(sess, ids[n:])
        return Handle(session, len(ids), reused=n, prefill_ms=(time.perf_counter() - t0) * 1e3, state=tuple(ids))

    def denoise(self, handle: Handle, canvas_ids: Tensor, exact: bool = False) -> Tensor:
        """canvas_ids (B, C) -> logits (B, C, V) float32: control tokens -inf, the end tokens folded into pad
        (`exact` asks nothing more: this backend declares no exact batches, so it gets one canvas at a time)."""
        with self._lock:
            sess = self._live(handle)
            sc = handle.extra.get("self_cond")
            if sc is None or sc[0] != tuple(canvas_ids.shape):
                sc = (tuple(canvas_ids.shape), None, 0)  # a new canvas: no self-conditioning at its first forward
            _, prev, k = sc
            raw = self._forward(sess, canvas_ids, prev)  # (B, C, V)
            if self.self_conditioning:
                scaled = (raw / self.params.temperature(k)).to(self.model.model.decoder.embed_tokens.weight.dtype)
                handle.extra["self_cond"] = (tuple(canvas_ids.shape), scaled, k + 1)
        return self._for_sampler(raw)

    def commit(self, handle: Handle, ids: Sequence[int]) -> Handle:
        t0 = time.perf_counter()
        with self._lock:
            sess = self._live(handle)
            self._encode(sess, ids)
            state = tuple(sess.ids)
        return Handle(handle.session, len(state), reused=handle.length, prefill_ms=(time.perf_counter() - t0) * 1e3,
                      state=state)

    def next_token_logits(self, handle: Handle) -> Tensor:
        """(V,) for the position after the context. DiffusionGemma has no next-token head: this is a one-slot canvas
        (a pad as its noise) denoised in one forward, so the autoregressive baseline runs on the same decoder."""
        with self._lock:
            sess = self._live(handle)
            x = torch.full((1, 1), self.special.pad, dtype=torch.long)  # (1, 1)
            return self._for_sampler(self._forward(sess, x, None))[0, 0]  # (V,)

    def _forward(self, sess: _Session, canvas_ids: Tensor, self_cond: Tensor | None) -> Tensor:
        with torch.no_grad(), self._windowed(sess):
            out = self.model(decoder_input_ids=canvas_ids.to(self.device), past_key_values=sess.cache,
                             self_conditioning_logits=self_cond)
        return out.logits.float()  # (B, C, V), softcapped

    def _for_sampler(self, raw: Tensor) -> Tensor:
        return fold_ends(raw, self.special.pad, self.end_ids, self._banned)  # (B, C, V)

    # ---- the model's own loop ----------------------------------------------------------------------------------

    def native_stream(self, handle: Handle, spec: CanvasSpec, cancel: Callable[[], bool] | object | None = None,
                      seed: int | None = 0, max_new: int | None = None
                      ) -> Generator[CanvasState, None, SampleStats]:
        """Fill `spec` with the model's own loop: transformers' EntropyBoundSampler (accept by entropy bound, re-noise
        the rest with fresh random tokens, re-decide every slot at every forward), the linear temperature schedule,
        sampled proposals, self-conditioning, stable-and-confident stopping; the argmax canvas is the result.

        The same CanvasState stream as engine.sampler.denoise_stream (masked = slots re-noised at that forward).
        A growable single hole goes canvas by canvas (each committed) up to `max_new` tokens or the first end token;
        otherwise one canvas: decided slots seed it, fixed slots are pinned. `seed` seeds torch's global RNG, as
        `generate()` uses it: same seed, same tokens as `model.generate` on the same prompt and canvas length.
        """
        from transformers.models.diffusion_gemma.generation_diffusion_gemma import (
            EntropyBoundSampler,
            EntropyBoundSamplerConfig,
            LinearTemperatureScheduleLogitsProcessor,
            StableAndConfidentStoppingCriteria,
        )

        p, sp, t0 = self.params, self.special, time.perf_counter()
        stats = SampleStats(prefill_ms=handle.prefill_ms)
        if seed is not None:
            torch.manual_seed(seed)
        growable = spec.growable
        max_new = max_new or len(spec.slots)
        width = min(len(spec.slots), self.canvas_length) if growable else len(spec.slots)
        temperature: Any = LinearTemperatureScheduleLogitsProcessor(p.t_min, p.t_max, p.max_denoising_steps)
        stop: Any = StableAndConfidentStoppingCriteria(p.stability_threshold, p.confidence_threshold)
        end = torch.tensor(self.end_ids, device=self.device)
        decided = spec.decided or [False] * len(spec.slots)
        out: list[int] = []
        block = 0
        while True:
            sampler: Any = EntropyBoundSampler(EntropyBoundSamplerConfig(entropy_bound=float(p.entropy_bound)), width,
                                               self.vocab_size, p.max_denoising_steps)
            canvas: Tensor = sampler.initialize_canvas(1, torch.device(self.device))  # (1, W) uniform noise
            given = torch.tensor(spec.slots[:width], device=self.device)[None]  # (1, W)
            keep = torch.tensor(spec.fixed[:width], device=self.device)[None]  # (1, W) pinned (none when growable)
            seeded = keep | torch.tensor(decided[:width], device=self.device)[None]  # (1, W)
            canvas = torch.where(seeded, given, canvas)  # (1, W)
            stop.reset()
            sc: Tensor | None = None
            for cur_step in reversed(range(1, p.max_denoising_steps + 1)):
                if is_cancelled(cancel):
                    raise Cancelled()
                with self._lock:
                    raw = self._forward(self._live(handle), canvas, sc)  # (1, W, V)
                logits = temperature(None, raw, cur_step=cur_step)  # (1, W, V)
                probs = torch.softmax(logits, dim=-1, dtype=torch.float32)  # (1, W, V)
                proposal = torch.multinomial(probs.view(-1, probs.shape[-1]), 1).view(1, width)  # (1, W)
                x0 = logits.argmax(-1)  # (1, W)
                canvas = sampler.renoise_canvas(sampler.accept_canvas(canvas, proposal, logits, cur_step), cur_step)
                accepted = sampler.accepted_token_mask  # (1, W)
                canvas, x0 = torch.where(keep, given, canvas), torch.where(keep, given, x0)  # (1, W) pins hold
                accepted = accepted | keep
                done = bool(stop(x0, logits).all())
                sc = logits.to(self.model.model.decoder.embed_tokens.weight.dtype)
                stats.nfe += 1
                ids = torch.where(torch.isin(x0, end), sp.pad, x0)[0]  # (W,)
                conf = probs.gather(-1, x0[..., None])[0, :, 0]  # (W,)
                shown = torch.where(accepted[0], ids, sp.mask)
                yield CanvasState(out + shown.tolist(), [False] * len(out) + (~accepted[0]).tolist(),
                                  [1.0] * len(out) + conf.tolist(), p.max_denoising_steps - cur_step + 1, stats.nfe,
                                  block)
                if done:
                    break
            block += 1
            ids_l = ids.tolist()
            if not growable:
                out = ids_l
                break
            if sp.pad in ids_l:
                out += ids_l[: ids_l.index(sp.pad)]
                break
            out += ids_l
            if len(out) >= max_new:
                out = out[:max_new]
                break
            handle = self.commit(handle, x0[0].tolist())  # the whole argmax canvas joins the context, as generate()
            width = min(width, max_new - len(out))
        stats.blocks = block
        stats.tokens = sum(1 for i, t in enumerate(out) if t != sp.pad and (growable or not spec.fixed[i]))
        stats.finalized = stats.tokens
        stats.elapsed_ms = (time.perf_counter() - t0) * 1e3
        yield CanvasState(out, [False] * len(out), [1.0] * len(out), 0, stats.nfe, block, done=True)
        return stats


def make_backend(kind: str = "transformers", **opts: Any) -> TransformersBackend:
    """The transformers backend from settings: model_path (a local directory), device, dtype, threads, ..."""
    if kind != "transformers":
        raise ValueError(f"engine.backends.transformers makes the 'transformers' backend, not {kind!r}")
    return TransformersBackend(**opts)
