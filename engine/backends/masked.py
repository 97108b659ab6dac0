"""Masked-diffusion code models (Dream, Dream-Coder, DiffuCoder, Open-dCoder, LLaDA) through transformers.

These models infill natively: one sequence `prefix [MASK]*n suffix`, full bidirectional attention, the masks predicted
in place. Dream-style models are shifted (the logit at position i predicts token i + 1, the head they kept from the
autoregressive model they started from); LLaDA predicts each token at its own position.

    prefill_around(prefix, suffix)  no forward: with attention both ways the prefix's keys depend on the canvas
    denoise(handle, canvas)         exact (default): one forward over prefix + canvas + suffix
                                    dual cache (Fast-dLLM): a canvas's first forward runs the whole sequence and keeps
                                    the prefix's and suffix's keys/values; later forwards run only the canvas (and the
                                    prefix's last token, whose output predicts the first slot when shifted) against
                                    them. Approximate: those keys saw the canvas as it was at that first forward.
    commit(handle, ids)             the finished block joins the prefix; the next canvas refreshes the cache

Nothing outlives a fill: a new request's prefix and suffix keys would depend on its own canvas, so there is no cache
to reuse across requests and no session state (drop_session has nothing to drop).
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from engine.backend import Capabilities, Handle, Seam, fold_ends
from engine.backends.prompting import HFTokenizer
from engine.model import ModelLoadError, check_device
from engine.tokenizer import SpecialIds

log = logging.getLogger("diffusion_ls.engine")
DUAL_NEEDS_NATIVE = ("dualCache drives the model through transformers' cache API, which only transformers' own model "
                     "classes are known to follow; this checkpoint runs remote code: turn dualCache off")


@dataclass(frozen=True)
class Family:
    """What a model family does when its config and tokenizer do not say."""

    shift: bool  # the logit at i predicts token i + 1
    mask_token: str | None = None  # the mask token's spelling, looked up in the tokenizer
    mask_id: int | None = None  # the mask id, when the tokenizer has no token for it
    end_tokens: tuple[str, ...] = ()  # tokens that end an answer besides eos and pad


FAMILIES = {
    # Dream, Dream-Coder and DiffuCoder (model_type "Dream"): Qwen2.5 weights, shifted, `<|mask|>` (151666)
    "dream": Family(shift=True, mask_token="<|mask|>"),
    # LLaDA: trained from scratch as a mask predictor, no shift; mask 126336 is not in its tokenizer's specials;
    # answers end with <|eot_id|> (126348) as well as <|endoftext|> (126081)
    "llada": Family(shift=False, mask_token="<|mdm_mask|>", mask_id=126336, end_tokens=("<|eot_id|>",)),
    # an autoregressive architecture trained on as a diffusion model (Open-dCoder: a Qwen2 called with
    # is_causal=False): shifted, like Dream, to keep the next-token head
    "causal-lm": Family(shift=True, mask_token="<|mask|>"),
}


def family_of(model_type: str) -> str:
    mt = model_type.lower()
    return "llada" if "llada" in mt else "dream" if "dream" in mt else "causal-lm"


@dataclass(frozen=True)
class Conventions:
    """How one checkpoint is driven, read from its config, generation config and tokenizer."""

    family: str
    mask: int  # the [MASK] id the canvas starts from
    shift: bool  # the logit at i predicts token i + 1 (Dream style); False: token i (LLaDA)
    pad: int  # what the sampler finalizes past the end of the text
    eos: int
    end_ids: frozenset[int]  # every id that ends a fill: folded into `pad` for the sampler
    found: dict[str, str]  # per convention, where it was read ("tokenizer", "config", "family default", "setting")


def _ids(*values: Any) -> list[int]:
    """The ids among config values that may be None, an int or a list of ints."""
    out: list[int] = []
    for v in values:
        if isinstance(v, int) and not isinstance(v, bool):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            out += [int(x) for x in v if isinstance(x, int)]
    return out


def _token(hf: Any, spelled: str | None) -> int | None:
    if not spelled:
        return None
    tid = hf.convert_tokens_to_ids(spelled)
    return None if tid is None or tid == hf.unk_token_id else int(tid)


def resolve(config: Any, generation: Any, hf: Any, vocab_size: int, mask_token_id: int | None = None,
            logit_shift: bool | None = None) -> Conventions:
    """The mask id, shift and end tokens of a checkpoint: settings first, then what the checkpoint says (generation
    config, config, tokenizer), then its family's defaults. Raises ModelLoadError when no mask id can be found."""
    family = family_of(str(getattr(config, "model_type", "") or ""))
    fam = FAMILIES[family]
    found: dict[str, str] = {}
    masks = [("setting", mask_token_id), ("generation_config", getattr(generation, "mask_token_id", None)),
             ("config", getattr(config, "mask_token_id", None)), ("tokenizer", getattr(hf, "mask_token_id", None)),
             (f"{family} default", _token(hf, fam.mask_token)), (f"{family} default", fam.mask_id)]
    mask = next(((where, int(v)) for where, v in masks if isinstance(v, int) and 0 <= v < vocab_size), None)
    if mask is None:
        raise ModelLoadError("no mask token: neither the generation config, the config nor the tokenizer names one; "
                             "set maskTokenId")
    found["mask"] = mask[0]
    shift = fam.shift if logit_shift is None else logit_shift
    found["shift"] = "setting" if logit_shift is not None else f"{family} default"
    eos_ids = _ids(hf.eos_token_id, getattr(generation, "eos_token_id", None), getattr(config, "eos_token_id", None))
    pads = _ids(hf.pad_token_id, getattr(generation, "pad_token_id", None), getattr(config, "pad_token_id", None))
    ends = [i for i in [*eos_ids, *pads, *(_token(hf, t) for t in fam.end_tokens)]
            if i is not None and i != mask[1] and 0 <= i < vocab_size]
    if not ends:
        raise ModelLoadError("no end token: the tokenizer and the config name neither eos nor pad")
    pad = next((i for i in pads if i in ends), ends[0])  # pad = mask (LLaDA keeps them apart; some configs do not)
    eos = next((i for i in eos_ids if i in ends), pad)
    return Conventions(family, mask[1], shift, pad, eos, frozenset(ends), found)


class MaskedTokenizer(HFTokenizer):
    """The checkpoint's tokenizer with the mask, pad and eos the conventions chose (HFTokenizer guesses a chat
    model's); the FIM fields hold its bos/eos, control tokens the sampler never puts in a fill."""

    def __init__(self, hf: Any, conv: Conventions) -> None:
        super().__init__(hf)
        self.special: SpecialIds = replace(self.special, pad=conv.pad, eos=conv.eos, mask=conv.mask)
        self.end_ids = conv.end_ids
        self._all_special = self._all_special | self.special.all | conv.end_ids


def _lead(hf: Any) -> list[int]:
    """The ids the tokenizer puts before a text (LLaDA's BOS; none for Qwen's): the prefix starts with them, as the
    models' own infill code encodes it with add_special_tokens=True."""
    plain = list(hf("x", add_special_tokens=False)["input_ids"])
    full = list(hf("x", add_special_tokens=True)["input_ids"])
    for k in range(len(full) - len(plain) + 1):
        if full[k : k + len(plain)] == plain:
            return [int(i) for i in full[:k]]
    return []


class _Frozen:
    """The prefix's and suffix's keys/values per layer, read by a canvas-only forward and never written: `update`
    returns the cached keys with the canvas's own appended (attention both ways: their order does not matter)."""

    def __init__(self, keys: list[Tensor], values: list[Tensor]) -> None:
        self.keys, self.values = keys, values

    @property
    def length(self) -> int:
        return int(self.keys[0].shape[-2]) if self.keys else 0

    def update(self, key_states: Tensor, value_states: Tensor, layer_idx: int, *args: Any, **kwargs: Any
               ) -> tuple[Tensor, Tensor]:
        return (torch.cat([self.keys[layer_idx], key_states], dim=-2),  # (B, H, K + Q, D)
                torch.cat([self.values[layer_idx], value_states], dim=-2))  # (B, H, K + Q, D)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.length


class MaskedDiffusionBackend(Seam):
    """A Dream/LLaDA-family model from a local directory, its canvas between the prefix and the suffix."""

    name = "masked-diffusion"
    capabilities = Capabilities(streams=True, instructions=False, mask_token=True, native_infill=True,
                                canvas_between=True)

    def __init__(self, model_path: str | Path, device: str = "cpu", dtype: str = "auto", threads: int | None = None,
                 trust_remote_code: bool = False, dual_cache: bool = False, mask_token_id: int | None = None,
                 logit_shift: bool | None = None) -> None:
        d = Path(model_path).expanduser()
        if not (d / "config.json").is_file():
            raise ModelLoadError(f"{d} is not a model directory (no config.json); set modelPath to a local "
                                 "Dream/LLaDA-family checkpoint")
        check_device(device)
        try:
            from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer, GenerationConfig
        except ImportError as exc:
            raise ModelLoadError("the masked-diffusion backend needs transformers: pip install 'diffusion-ls[hf]'") \
                from exc
        if threads:
            torch.set_num_threads(threads)
        if trust_remote_code:
            log.warning("trustRemoteCode is on: the Python files in %s run in this server's process with its rights; "
                        "turn it on only for a checkpoint you trust", d)
        model_type = _model_type(d)
        try:
            config = AutoConfig.from_pretrained(d, local_files_only=True, trust_remote_code=trust_remote_code)
        except ValueError as exc:
            if not trust_remote_code and model_type:
                raise ModelLoadError(f"{d} holds a {model_type!r} model whose code ships with the checkpoint (Dream "
                                     "and LLaDA do): set trustRemoteCode to true if you trust it") from exc
            raise ModelLoadError(f"cannot read the config in {d}: {exc}") from exc
        if dual_cache and not type(config).__module__.startswith("transformers."):  # before gigabytes of weights
            raise ModelLoadError(DUAL_NEEDS_NATIVE)
        auto_map = getattr(config, "auto_map", None) or {}
        # transformers' own causal-LM classes (Open-dCoder is a Qwen2) have a head under AutoModelForCausalLM;
        # Dream's and LLaDA's remote code maps only AutoModel, to a class that has one
        auto: Any = AutoModel if trust_remote_code and "AutoModelForCausalLM" not in auto_map and \
            "AutoModel" in auto_map else AutoModelForCausalLM
        placed = {"device_map": device} if device != "cpu" and _has_accelerate() else {}
        try:
            self.model = auto.from_pretrained(str(d), config=config, local_files_only=True, use_safetensors=True,
                                              trust_remote_code=trust_remote_code,  # nothing unpickled
                                              dtype=dtype if dtype == "auto" else getattr(torch, dtype), **placed)
            self.model = self.model.to(device).eval()
            hf = AutoTokenizer.from_pretrained(str(d), local_files_only=True, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load a masked-diffusion model from {d}: {exc}") from exc
        try:
            generation: Any = GenerationConfig.from_pretrained(str(d), local_files_only=True)
        except OSError:  # no generation_config.json: the config and tokenizer say it all
            generation = None
        head = self.model.get_output_embeddings()
        if head is None:
            raise ModelLoadError(f"{d} loads as {type(self.model).__name__}, which has no output head")
        self.vocab_size = int(head.weight.shape[0])
        self.conventions = resolve(config, generation, hf, self.vocab_size, mask_token_id, logit_shift)
        # transformers' own classes attend causally; a masked-diffusion model attends both ways (as Dream's attention
        # hard-codes and Open-dCoder asks with is_causal=False); remote code is bidirectional by construction
        self._native = type(self.model).__module__.startswith("transformers.")
        if self._native:
            self.model.config.is_causal = False
            for module in self.model.modules():
                if hasattr(module, "is_causal"):
                    module.is_causal = False
        elif dual_cache:
            raise ModelLoadError(DUAL_NEEDS_NATIVE)
        params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5.x
        self._keep_kw = "logits_to_keep" in params
        self.tokenizer = MaskedTokenizer(hf, self.conventions)
        self.lead = _lead(hf)
        self.dual_cache = dual_cache
        self.model_name = d.name
        self.model_dir = d
        self.device = device
        end = sorted(self.conventions.end_ids)
        self.end_ids = end
        # control tokens and ids past the tokenizer's (an embedding padded to a round size) never belong in a fill
        ctrl = set(hf.all_special_ids) | self.special.all | set(range(len(hf), self.vocab_size))
        self._banned = torch.tensor(sorted(i for i in ctrl if i not in end and i < self.vocab_size))
        self._lock = threading.RLock()
        c = self.conventions
        log.info("%s: %s family, mask %d (%s), %s logits (%s), end tokens %s", d.name, c.family, c.mask,
                 c.found["mask"], "shifted" if c.shift else "unshifted", c.found["shift"], end)

    @property
    def special(self) -> SpecialIds:
        return self.tokenizer.special

    @property
    def max_context(self) -> int:
        cfg = self.model.config
        for key in ("max_position_embeddings", "max_sequence_length", "n_positions"):
            if getattr(cfg, key, None):
                return int(getattr(cfg, key))
        return 0

    # ---- the seam ----------------------------------------------------------------------------------------------

    def prefill_around(self, prefix_ids: Sequence[int], suffix_ids: Sequence[int], session: str = "default"
                       ) -> Handle:
        """A context whose canvas goes between `prefix_ids` (after the tokenizer's lead, e.g. BOS) and `suffix_ids`.
        Nothing runs yet: the keys of both depend on the canvas."""
        prefix = tuple(self.lead) + tuple(int(i) for i in prefix_ids)
        return Handle(session, len(prefix), state=(prefix, tuple(int(i) for i in suffix_ids)))

    def prefill(self, context_ids: Sequence[int], session: str = "default") -> Handle:
        """A context with nothing after the canvas (completion at the end of a text)."""
        return self.prefill_around(context_ids, (), session)

    def denoise(self, handle: Handle, canvas_ids: Tensor, exact: bool = False) -> Tensor:
        """canvas_ids (B, C) -> logits (B, C, V) float32 over the canvas slots: control tokens -inf, the end tokens
        folded into pad (`exact` asks nothing more: this backend declares no exact batches, so it gets one canvas).
        With the dual cache, a canvas of a new shape (or a new handle: a committed block) refreshes
        the prefix's and suffix's keys/values with a full forward."""
        canvas = canvas_ids.to(self.device)
        with self._lock, torch.no_grad():
            if not self.dual_cache:
                return self._for_sampler(self.full_logits(handle, canvas))
            kept = handle.extra.get("dual")
            if kept is None or kept[0] != tuple(canvas.shape):
                raw, frozen = self._full(handle, canvas, keep=True)
                handle.extra["dual"] = (tuple(canvas.shape), frozen)
            else:
                raw = self.cached_logits(handle, canvas, kept[1])
            return self._for_sampler(raw)

    def commit(self, handle: Handle, ids: Sequence[int]) -> Handle:
        """The finished block joins the prefix; the next canvas sits after it, the suffix after that."""
        prefix, suffix = _parts(handle)
        new = prefix + tuple(int(i) for i in ids)
        return Handle(handle.session, len(new), reused=handle.length, state=(new, suffix))

    def next_token_logits(self, handle: Handle) -> Tensor:
        """(V,) for the position after the prefix: a one-slot canvas of [MASK], denoised in one forward, so the
        autoregressive baseline runs on the same model."""
        with self._lock, torch.no_grad():
            x = torch.full((1, 1), self.special.mask, dtype=torch.long, device=self.device)  # (1, 1)
            return self._for_sampler(self.full_logits(handle, x))[0, 0]  # (V,)

    def drop_session(self, session: str) -> None:
        """Nothing to drop: no state outlives a fill (see the module's docstring)."""

    # ---- forwards ----------------------------------------------------------------------------------------------

    def sequence(self, handle: Handle, canvas_ids: Tensor) -> Tensor:
        """The model's input for a canvas: prefix, canvas, suffix (B, P + C + S)."""
        prefix, suffix = _parts(handle)
        B = canvas_ids.shape[0]
        pre = torch.tensor([prefix], dtype=torch.long, device=self.device).expand(B, -1)  # (B, P)
        suf = torch.tensor([suffix], dtype=torch.long, device=self.device).expand(B, -1)  # (B, S)
        return torch.cat([pre, canvas_ids.to(self.device), suf], dim=1)  # (B, P + C + S)

    def _sources(self, start: int, width: int, first: int) -> Tensor:
        """For each canvas slot, the index (from `first`, the first position run) of the output that predicts it:
        its own position, or the one before when shifted (the first slot of an empty prefix reads its own, as Dream's
        code does)."""
        pos = torch.arange(start, start + width, device=self.device)  # (C,)
        if self.conventions.shift:
            pos = (pos - 1).clamp_min(0)
        return pos - first  # (C,)

    @torch.no_grad()
    def _run(self, ids: Tensor, first: int, keep: Tensor, cache: Any = None) -> Tensor:
        """Logits (B, len(keep), V) for ids (B, Q) placed at positions first..first+Q-1, every query attending to
        every position (and to `cache`'s); `keep` (K,) are the query indices whose logits are wanted."""
        B, Q = ids.shape
        if not self._native:  # remote code: its own bidirectional attention and positions, the whole sequence
            return self.model(input_ids=ids).logits[:, keep].float()  # (B, K, V)
        past = cache.length if isinstance(cache, _Frozen) else 0
        mask = torch.zeros(B, 1, Q, past + Q, dtype=self.model.dtype, device=self.device)  # (B, 1, Q, past + Q)
        positions = torch.arange(first, first + Q, device=self.device)[None].expand(B, -1)  # (B, Q)
        extra: dict[str, Any] = {self._cache_kw: cache, "use_cache": cache is not None}
        if self._keep_kw:  # the head only where a slot is predicted: a 150k vocabulary over a whole file is costly
            out = self.model(input_ids=ids, position_ids=positions, attention_mask=mask, logits_to_keep=keep,
                             **extra)
            return out.logits.float()  # (B, K, V)
        return self.model(input_ids=ids, position_ids=positions, attention_mask=mask, **extra).logits[:, keep].float()

    def _full(self, handle: Handle, canvas: Tensor, keep: bool = False) -> tuple[Tensor, _Frozen | None]:
        """The exact forward over prefix + canvas + suffix: the canvas's logits (B, C, V) and, with `keep`, the
        prefix's and suffix's keys/values for canvas-only forwards (the prefix's last one left out when shifted: it
        runs again with the canvas, since its output predicts the first slot)."""
        from transformers import DynamicCache

        P, C = handle.length, canvas.shape[1]
        x = self.sequence(handle, canvas)  # (B, L)
        store = DynamicCache() if keep else None
        logits = self._run(x, 0, self._sources(P, C, 0), store)  # (B, C, V)
        if store is None:
            return logits, None
        first = self._first(P)
        layers: list[Any] = list(store.layers)
        keys = [torch.cat([la.keys[:, :, :first], la.keys[:, :, P + C:]], dim=2) for la in layers]  # (B, H, L-Q, D)
        values = [torch.cat([la.values[:, :, :first], la.values[:, :, P + C:]], dim=2) for la in layers]
        return logits, _Frozen(keys, values)

    def full_logits(self, handle: Handle, canvas: Tensor) -> Tensor:
        """Raw logits (B, C, V) of the canvas slots from one forward over the whole sequence (exact)."""
        return self._full(handle, canvas.to(self.device))[0]

    def cached_logits(self, handle: Handle, canvas: Tensor, frozen: _Frozen) -> Tensor:
        """Raw logits (B, C, V) of the canvas slots from a forward of the canvas (and, when shifted, the prefix's last
        token) against the kept prefix and suffix keys/values."""
        P, C = handle.length, canvas.shape[1]
        first = self._first(P)
        prefix = _parts(handle)[0]
        lead = torch.tensor([prefix[first:P]], dtype=torch.long, device=self.device).expand(canvas.shape[0], -1)
        ids = torch.cat([lead, canvas.to(self.device)], dim=1)  # (B, P - first + C)
        return self._run(ids, first, self._sources(P, C, first), frozen)  # (B, C, V)

    def _first(self, prefix_len: int) -> int:
        """The first position a canvas-only forward runs: the prefix's last token too when shifted."""
        return max(prefix_len - 1, 0) if self.conventions.shift else prefix_len

    def _for_sampler(self, raw: Tensor) -> Tensor:
        return fold_ends(raw, self.special.pad, self.end_ids, self._banned)  # (B, C, V)


def _parts(handle: Handle) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(prefix, suffix) ids of a handle this backend made."""
    state: Any = handle.state
    return state[0], state[1]


def _model_type(d: Path) -> str:
    try:
        return str(json.loads((d / "config.json").read_text(encoding="utf-8")).get("model_type", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def _has_accelerate() -> bool:
    import importlib.util

    return importlib.util.find_spec("accelerate") is not None


def make_backend(kind: str = "masked-diffusion", **opts: Any) -> MaskedDiffusionBackend:
    """The masked-diffusion backend from settings: model_path, device, dtype, threads, trust_remote_code,
    dual_cache, mask_token_id, logit_shift."""
    if kind != "masked-diffusion":
        raise ValueError(f"engine.backends.masked makes the 'masked-diffusion' backend, not {kind!r}")
    return MaskedDiffusionBackend(**opts)
