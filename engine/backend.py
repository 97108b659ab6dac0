"""The seam every model sits behind, and the embedded model's implementation of it.

    prefill(context_ids, session) -> Handle     encoder mode: causal, writes the session's KV cache (prefix reuse)
    denoise(handle, canvas_ids, exact) -> logits  decoder mode: bidirectional canvas over the cache, writes nothing
    commit(handle, ids)           -> Handle     encoder mode: a finished block joins the context
    verify(handle, ids)  -> Handle, logits      encoder mode, the next-token logits after each id (embedded model
                                                only: speculative decoding checks a canvas draft with them)
    prefill_around(prefix, suffix) -> Handle    a canvas between a prefix and a suffix in one sequence (masked-diffusion
                                                models: capabilities.canvas_between)
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from engine import DEFAULT_MODEL_DIR
from engine.cache import KVCache
from engine.model import DiffusionLM, ModelLoadError, check_device, compute_dtype, load_config, load_model, native_int8
from engine.tokenizer import SpecialIds, Tokenizer, TokenizerError

log = logging.getLogger("diffusion_ls.engine")


@dataclass
class Handle:
    """A prefilled context: `length` positions of `session`'s cache are valid for decoding."""

    session: str
    length: int
    reused: int = 0  # positions taken from the cache instead of recomputed
    prefill_ms: float = 0.0
    state: object = None  # backend-specific (e.g. a transformers cache object)
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; server/ and infill/ read these instead of probing the backend's attributes."""

    streams: bool  # every forward can be observed (intermediate canvases stream); False: one per committed canvas
    instructions: bool  # follows a natural-language instruction (a chat model with a `prompter`)
    mask_token: bool  # noise is a mask token; False: random-token (uniform) noise, as DiffusionGemma
    native_infill: bool  # infills prefix + suffix in one canvas (SPM); False: through a chat prompt
    native_loop: bool = False  # has its own denoising loop (`native_stream`, the "native" strategy)
    # the canvas sits between the prefix and the suffix in one sequence (Dream/LLaDA infill: prefix, masks, suffix;
    # `prefill_around`); False: after the whole context (our SPM layout, a chat prompt)
    canvas_between: bool = False
    # denoise gives every canvas of a batch exactly the logits it gets alone (no state kept between forwards): the
    # `lossless` strategy checks its drafts in batches; without it, that strategy runs one canvas per forward
    exact_batches: bool = False
    # tokens of repository context (other files' chunks before the file context) the model was trained to read: the
    # default repoContextBudget. 0: none; such chunks are noise to a model never trained with them
    repo_context: int = 0

    def as_json(self) -> dict[str, bool | int]:
        return {"streams": self.streams, "instructions": self.instructions, "maskToken": self.mask_token,
                "nativeInfill": self.native_infill, "nativeLoop": self.native_loop,
                "canvasBetween": self.canvas_between, "repoContext": self.repo_context}


class Seam:
    """What a backend derives from its capabilities, so that each declares them once."""

    capabilities: Capabilities

    @property
    def steppable(self) -> bool:
        return self.capabilities.streams

    @property
    def noise(self) -> str:
        """The sampler's noise: "mask" where the model has a mask token, else random tokens ("uniform")."""
        return "mask" if self.capabilities.mask_token else "uniform"


def fold_ends(raw: Tensor, pad: int, end_ids: Sequence[int], banned: Tensor | Sequence[int]) -> Tensor:
    """A foreign model's logits (B, C, V) as the sampler reads them, on the CPU: its pad is "the fill ends here", so
    every end token (eos, end of turn, pad) is folded into it; control tokens are banned."""
    logits = raw.clone()  # (B, C, V)
    logits[..., pad] = torch.logsumexp(raw[..., list(end_ids)], dim=-1)  # (B, C): any end token = "ends here"
    logits[..., [i for i in end_ids if i != pad]] = -math.inf
    logits[..., banned] = -math.inf
    return logits.cpu()


@runtime_checkable
class Backend(Protocol):
    name: str  # "embedded", "transformers", "vllm-remote", ...
    model_name: str
    device: str
    tokenizer: Tokenizer
    capabilities: Capabilities
    noise: str  # "mask" (a mask token exists) or "uniform" (random-token noise, as DiffusionGemma)
    steppable: bool  # capabilities.streams

    @property
    def special(self) -> SpecialIds: ...

    def prefill(self, context_ids: Sequence[int], session: str = "default") -> Handle: ...

    def denoise(self, handle: Handle, canvas_ids: Tensor, exact: bool = False) -> Tensor:
        """Logits (B, C, V) of B canvases over the handle's context. `exact` (with capabilities.exact_batches): each
        canvas's logits are bit for bit those it gets alone, and alone as in a batch."""
        ...

    def commit(self, handle: Handle, ids: Sequence[int]) -> Handle: ...

    def next_token_logits(self, handle: Handle) -> Tensor: ...

    def drop_session(self, session: str) -> None: ...


@runtime_checkable
class InfillBackend(Backend, Protocol):
    """A backend whose canvas goes between a prefix and a suffix (`capabilities.canvas_between`)."""

    def prefill_around(self, prefix_ids: Sequence[int], suffix_ids: Sequence[int], session: str = "default"
                       ) -> Handle: ...


class EmbeddedBackend(Seam):
    """Our own two-mode model on CPU (or GPU), one preallocated KV cache per session (LRU-evicted)."""

    name = "embedded"
    capabilities = Capabilities(streams=True, instructions=False, mask_token=True, native_infill=True,
                                exact_batches=True)

    def __init__(self, model_dir: str | Path | None = None, device: str = "cpu", max_sessions: int = 4,
                 threads: int | None = None, dtype: str = "auto", exact_batches: bool = False) -> None:
        """dtype `auto`: int8 products where the CPU runs them natively (native_int8), the rest in bfloat16 where
        the device multiplies it natively, else float32; `exact_batches` (lossless asks for it) keeps `auto` off
        int8, whose batches of canvases are not exact."""
        d = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
        if not d.is_dir():
            raise ModelLoadError(f"model directory {d} does not exist; set modelPath or reinstall diffusion-ls")
        # a 4M-parameter model gains little past a few threads, and an editor's machine is busy with other work:
        # by default use half the cores, at most 4 (oversubscribed torch threads stall each other badly)
        torch.set_num_threads(threads or max(1, min(4, (os.cpu_count() or 2) // 2)))
        self.model_dir = d
        # the products' weights in 8 bits, the rest as `auto` (DiffusionLM.quantize_int8)
        int8 = dtype == "int8" or (dtype == "auto" and not exact_batches and native_int8(device))
        if int8 and device != "cpu":
            raise ModelLoadError(f"dtype int8 runs on the CPU only, not on {device}")
        check_device(device)
        self.dtype = compute_dtype("auto" if int8 else dtype, device)
        self.model: DiffusionLM = load_model(d, device=device, dtype=self.dtype)
        self.memory_format = str(self.dtype).removeprefix("torch.")  # what diffusion/status reports
        self.memory_estimate_bytes = sum(p.numel() * p.element_size() for p in self.model.parameters())
        if int8:
            try:
                self.model.quantize_int8()
            except RuntimeError as exc:  # torch without fbgemm's kernels: asked for, say so; auto's choice, go without
                if dtype == "int8":
                    raise ModelLoadError(f"dtype int8: this torch cannot run 8-bit products here ({exc})") from exc
                log.warning("dtype auto: 8-bit products failed (%s); the model runs in %s", exc, self.dtype)
                int8 = False
        if int8:
            self.memory_format += "+int8"
            # a row's 8-bit product depends on its batch: no batch of canvases is exact (lossless decodes one a step)
            self.capabilities = replace(self.capabilities, exact_batches=False)
            self.memory_estimate_bytes += sum(p.numel() for n, p in self.model.named_parameters()
                                              if n.endswith(("wqkv.weight", "wo.weight", "w13.weight", "w2.weight"))
                                              or n == "tok_emb.weight")
        try:
            self.tokenizer = Tokenizer.from_file(d / "tokenizer.json")
        except TokenizerError as exc:
            raise ModelLoadError(str(exc)) from exc
        if self.tokenizer.vocab_size > self.model.cfg.vocab_size:
            raise ModelLoadError(f"tokenizer has {self.tokenizer.vocab_size} tokens but the model only "
                                 f"{self.model.cfg.vocab_size}: wrong tokenizer.json for {d}")
        self.config = load_config(d)
        self.model_name = self.config.get("name", d.name)
        serving = self.config.get("serving") or {}  # what the model was trained for, written when it was shipped
        try:
            repo_context = max(0, int(serving.get("repo_context_budget", 0)))
        except (AttributeError, TypeError, ValueError):
            raise ModelLoadError(f"{d / 'config.json'}: serving.repo_context_budget must be a number of tokens, not "
                                 f"{serving!r}") from None
        self.capabilities = replace(self.capabilities, repo_context=repo_context)
        self.device = device
        self.max_sessions = max_sessions
        self._caches: OrderedDict[str, KVCache] = OrderedDict()
        # caches let go (evicted or dropped), kept for the next new session: sessions + spares <= max_sessions, and a
        # newly opened document does not allocate and zero 18 MiB again
        self._spares: list[KVCache] = []
        self._lock = threading.Lock()
        self._last_hidden: dict[str, Tensor] = {}

    @property
    def special(self) -> SpecialIds:
        return self.tokenizer.special

    @property
    def max_context(self) -> int:
        return self.model.cfg.max_seq_len

    def _cache(self, session: str) -> KVCache:
        cache = self._caches.pop(session, None)
        if cache is None:
            while not self._spares and len(self._caches) >= self.max_sessions:
                old, spare = self._caches.popitem(last=False)  # the least recently used makes room
                self._last_hidden.pop(old, None)
                self._spares.append(spare)
            cache = self._spares.pop() if self._spares else self.model.new_cache()
            cache.truncate(0)  # a reused one's old keys and values are past its length: never read
        self._caches[session] = cache  # most recently used last
        return cache

    def drop_session(self, session: str) -> None:
        with self._lock:
            cache = self._caches.pop(session, None)
            self._last_hidden.pop(session, None)
            if cache is not None:
                self._spares.append(cache)

    def cache_bytes(self) -> int:
        """The memory of the context caches: the sessions' and the spares kept for the next new session."""
        return sum(c.nbytes for c in (*tuple(self._caches.values()), *tuple(self._spares)))

    def cache_stats(self) -> dict:
        """The context caches held now, and the LRU's bounds; safe from any thread (reads a snapshot, no lock)."""
        caches = tuple(self._caches.values())  # copied in C under the GIL: no torn read while the engine thread evicts
        spares = tuple(self._spares)
        cfg = self.model.cfg
        per = 2 * cfg.n_layers * cfg.n_heads * cfg.max_seq_len * cfg.head_dim * self.model.tok_emb.weight.element_size()
        return {"sessions": len(caches), "bytes": sum(c.nbytes for c in caches + spares),  # spares are memory held too
                "max_sessions": self.max_sessions, "session_bytes": per}

    def _encode(self, cache: KVCache, session: str, ids: Sequence[int], start: int, every: bool = False) -> Tensor:
        """Run ids through encoder mode into the cache; the last hidden state (1, dim), or every one (1, T, dim)."""
        x = torch.tensor([list(ids)], dtype=torch.long, device=self.device)  # (1, T)
        h = self.model.encode(x, cache, start, every=every)
        self._last_hidden[session] = h[:, -1] if every else h  # (1, dim)
        cache.record(ids, start)
        return h

    def _append(self, handle: Handle, ids: Sequence[int], every: bool) -> tuple[Handle, Tensor]:
        """commit / verify, under the lock: ids after the handle's context (rewinding what came after it)."""
        cache = self._caches[handle.session]
        cache.truncate(handle.length)
        cache.ensure(handle.length + len(ids))
        h = self._encode(cache, handle.session, ids, handle.length, every)
        return Handle(handle.session, handle.length + len(ids), reused=handle.length), h

    def prefill(self, context_ids: Sequence[int], session: str = "default") -> Handle:
        if not context_ids:
            raise ValueError("empty context: at least the <fim_middle> sentinel is needed")
        t0 = time.perf_counter()
        with self._lock:
            cache = self._cache(session)
            cache.ensure(len(context_ids))
            n = min(cache.reusable(context_ids), len(context_ids) - 1)  # recompute >= 1 token: fresh last hidden
            cache.truncate(n)
            self._encode(cache, session, context_ids[n:], n)
        return Handle(session, len(context_ids), reused=n, prefill_ms=(time.perf_counter() - t0) * 1e3)

    def denoise(self, handle: Handle, canvas_ids: Tensor, exact: bool = False) -> Tensor:
        """canvas_ids: (B, C), B canvases over the one cached context, read only -> logits (B, C, V) in float32;
        with `exact`, each canvas's exactly as denoised alone (DiffusionLM.decode)."""
        with self._lock:
            cache = self._caches.get(handle.session)
            if cache is None or cache.length < handle.length:
                raise RuntimeError(f"session {handle.session!r} was evicted or rewound; prefill again")
            return self.model.decode(canvas_ids.to(self.device), cache, handle.length, exact)

    def commit(self, handle: Handle, ids: Sequence[int]) -> Handle:
        with self._lock:
            return self._append(handle, ids, every=False)[0]

    def verify(self, handle: Handle, ids: Sequence[int]) -> tuple[Handle, Tensor]:
        """Commit `ids` after the handle's context and return the next-token logits after each of them (T, V):
        one causal forward checks a whole draft. A later prefill/commit/verify from an earlier handle rewinds."""
        with self._lock, torch.no_grad():  # the head's weights would otherwise record a graph for a backward
            new, h = self._append(handle, ids, every=True)  # h: (1, T, dim)
            return new, self.model.logits(h[0]).float()  # (T, V)

    def next_token_logits(self, handle: Handle) -> Tensor:
        """Next-token logits (V,) after the handle's context: the autoregressive baseline decodes with these."""
        with self._lock, torch.no_grad():
            cache = self._caches[handle.session]
            if cache.length != handle.length or handle.session not in self._last_hidden:
                raise RuntimeError("next_token_logits needs the handle of the latest prefill/commit")
            return self.model.logits(self._last_hidden[handle.session])[0].float()  # (V,)
