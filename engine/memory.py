"""How much memory a DiffusionGemma checkpoint's weights take: measured on a loaded model, or computed from shapes.

DiffusionGemma's encoder and decoder share one stack of weights, and about 88% of the parameters are MoE experts
stored as two fused 3-D tensors per layer (`experts.gate_up_proj` (E, 2I, H), `experts.down_proj` (E, H, I)), not
nn.Linear modules. So what a quantizer does to memory depends on which tensors it converts; this module counts
parameters and bytes per tensor class, so a measurement says exactly which classes stayed bf16.

    classify(name)                 -> the class of a parameter, by its name in transformers' DiffusionGemma
    measure(model)                 -> {class: (params, bytes)} of a loaded model: unique storages only (tied weights
                                      count once), quantized tensor subclasses flattened into their stored parts
    shape_counts(config)           -> {class: params} of the model a config describes, built on the meta device
    estimate(counts, fmt)          -> bytes of those weights in a storage format (FORMATS: bf16, pre-quantized NVFP4,
                                      FP8 per channel, GGUF Q4_0), from each format's definition
    checkpoint_estimate(model_dir) -> (format name, bytes) for a local checkpoint, from its config.json

tools/moe_memory.py measures transformers' quantizers with this and writes the README's table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

GIB = 1024**3
# Tensor classes, in the order tables show them.
CLASSES = ("experts", "attention", "dense_mlp", "router", "embedding", "self_conditioning", "vision", "other")


def classify(name: str) -> str:
    """The class of a parameter or buffer from its name (transformers' DiffusionGemmaForBlockDiffusion naming)."""
    if "vision" in name:  # vision_tower.*, embed_vision.*: the image encoder and its projection
        return "vision"
    if ".experts." in name:
        return "experts"
    if "self_conditioning." in name:
        if name.endswith("norm.weight"):
            return "other"
        return "self_conditioning"
    if "embed_tokens" in name or name.startswith("lm_head"):
        return "embedding"  # the output head is tied to the input embedding
    if "router.proj" in name:
        return "router"
    if ".self_attn." in name and name.rsplit(".", 2)[-2].endswith("_proj"):
        return "attention"
    if ".mlp." in name and "_proj" in name:
        return "dense_mlp"
    return "other"  # norms, router scales, layer scalars, ...


def _stored(t: Tensor) -> Iterator[Tensor]:
    """The plain tensors that hold a (possibly quantized) tensor's data: subclasses (quanto, torchao) are flattened
    with the protocol torch.compile uses (`__tensor_flatten__`), so their int8/uint8 data and scales are all counted."""
    if type(t) not in (Tensor, torch.nn.Parameter) and hasattr(t, "__tensor_flatten__"):
        names, _ = t.__tensor_flatten__()
        for n in names:
            yield from _stored(getattr(t, n))
        return
    yield t
    # bitsandbytes keeps its scales beside the data, not as parameters: Int8Params.SCB (a scale per row) and
    # Params4bit.quant_state (absmax per block, the code book, a nested state for double quantization)
    scb = getattr(t, "SCB", None)
    if isinstance(scb, Tensor):
        yield scb
    state = getattr(t, "quant_state", None)
    while state is not None:
        for v in vars(state).values():
            if isinstance(v, Tensor):
                yield v
        state = getattr(state, "state2", None)


@dataclass
class ClassMeasure:
    params: int = 0  # parameters of this class in the unquantized model (unique)
    bytes: int = 0  # bytes stored for this class now (unique storages)
    tensors: int = 0  # parameters of this class
    bf16: int = 0  # of them, still stored as bf16/fp16/fp32 (not converted)


def measure(model: torch.nn.Module, params: dict[str, int] | None = None) -> dict[str, ClassMeasure]:
    """Bytes per class of a loaded model; `params` (from an unquantized load: a quantizer changes shapes, e.g. packs
    two int4 values per byte) gives the parameter counts to divide by."""
    out = {c: ClassMeasure() for c in CLASSES}
    seen: set[tuple[int, int, str]] = set()  # (storage address, offset, dtype)
    # buffers (embedding scales, layer scalars, rotary tables) are counted as "other", whatever module holds them,
    # except quantized experts' codes and scales (engine.quant keeps them as buffers): those are the experts
    named: list[tuple[str, Tensor]] = [(classify(n), t) for n, t in model.named_parameters(remove_duplicate=False)]
    named += [("experts" if ".experts." in n else "other", t) for n, t in model.named_buffers(remove_duplicate=False)]
    counted: set[int] = set()
    for cls, t in named:
        m = out[cls]
        if id(t) not in counted and isinstance(t, torch.nn.Parameter):
            counted.add(id(t))
            m.tensors += 1
            m.params += t.numel()
            m.bf16 += t.dtype in (torch.bfloat16, torch.float16, torch.float32) and type(t) is torch.nn.Parameter
        for x in _stored(t):
            key = (x.untyped_storage().data_ptr(), int(x.storage_offset()), str(x.dtype))
            if key in seen or x.numel() == 0:
                continue
            seen.add(key)
            m.bytes += x.numel() * x.element_size()
    if params is not None:
        for c, n in params.items():
            out[c].params = n
    return out


def shape_counts(config: Any) -> dict[str, int]:
    """Parameters per class of the DiffusionGemma a config (a DiffusionGemmaConfig or its dict) describes: the real
    transformers classes instantiated on the meta device (no memory, no weights)."""
    from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion

    cfg = config if isinstance(config, DiffusionGemmaConfig) else DiffusionGemmaConfig(**config)
    with torch.device("meta"):
        model = DiffusionGemmaForBlockDiffusion(cfg)
    counts = dict.fromkeys(CLASSES, 0)
    seen: set[int] = set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) not in seen:  # tied: the decoder's weights are the encoder's, the output head the embedding
            seen.add(id(p))
            counts[classify(name)] += p.numel()
    return counts


@dataclass(frozen=True)
class Format:
    """A checkpoint's storage: bits per parameter for each class it converts; the rest stays bf16."""

    name: str
    bits: float  # bits per converted parameter, block scales included
    converts: tuple[str, ...]  # the classes stored in this format
    note: str  # where the format and its coverage come from

    def nbytes(self, counts: dict[str, int]) -> float:
        return sum(n * (self.bits if c in self.converts else 16) / 8 for c, n in counts.items())


_LINEARS = ("experts", "attention", "dense_mlp")
FORMATS = {
    "bf16": Format("bf16", 16, (), "the released checkpoint"),
    # NVFP4: 4-bit e2m1 values + one FP8 (e4m3) scale per 16 values = 4.5 bits (a per-tensor fp32 scale is noise);
    # ModelOpt checkpoints of this architecture keep routers, embeddings/head and the vision tower in bf16
    "nvfp4": Format("NVFP4 (ModelOpt)", 4 + 8 / 16, _LINEARS,
                    "4-bit e2m1 + an e4m3 scale per 16 values; routers, embeddings, vision, self-conditioning bf16"),
    # FP8 per output channel (compressed-tensors FP8_DYNAMIC): 1 byte per weight + a scale per row (rows are >= 704
    # values wide here: < 0.05 bits); the published recipe ignores embeddings, routers, vision, self-conditioning
    "fp8": Format("FP8 per channel (compressed-tensors)", 8 + 16 / 704, _LINEARS,
                  "e4m3 weights + a bf16 scale per output row; embeddings, routers, vision, self-conditioning bf16"),
    # GGUF Q4_0: blocks of 32 weights in 18 bytes (an fp16 scale + 32 nibbles) = 4.5 bits; llama.cpp converts every
    # matrix of the text model (the vision tower goes in a separate mmproj file, not counted)
    # engine.quant's int4 experts (the transformers backend's "experts-int4"): 4 bits + a bf16 scale per 32 values
    "experts-int4": Format("experts-int4 (engine.quant)", 4 + 16 / 32, ("experts",),
                           "int4 codes + a bf16 scale per 32 values, the experts only"),
    "gguf-q4_0": Format("GGUF Q4_0 (llama.cpp)", 18 * 8 / 32,
                        ("experts", "attention", "dense_mlp", "router", "embedding", "self_conditioning"),
                        "18-byte blocks of 32 weights; every text matrix; the vision tower is a separate file"),
}


def estimate(counts: dict[str, int], fmt: str) -> float:
    """Bytes of weights with these class counts in format `fmt` (a FORMATS key)."""
    f = FORMATS[fmt]
    counts = {c: n for c, n in counts.items() if not (fmt == "gguf-q4_0" and c == "vision")}
    return f.nbytes(counts)


def checkpoint_format(config: dict) -> str:
    """The FORMATS key of a checkpoint from its config.json's quantization_config (none: bf16)."""
    q = config.get("quantization_config") or {}
    method = str(q.get("quant_method") or q.get("quant_algo") or "").lower()
    text = json.dumps(q).lower()
    if not q:
        return "bf16"
    if "nvfp4" in text or "fp4" in text:
        return "nvfp4"
    if "fp8" in text or "float8" in text or method == "fp8":
        return "fp8"
    raise ValueError(f"unknown quantization_config (quant_method {method!r}); known: NVFP4, FP8, none")


def checkpoint_estimate(model_dir: str | Path) -> tuple[str, float]:
    """(format, bytes of weights) of a local DiffusionGemma checkpoint, computed from its config.json's shapes."""
    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    fmt = checkpoint_format(config)
    keep = {k: v for k, v in config.items() if k not in ("quantization_config", "architectures", "model_type",
                                                         "transformers_version", "torch_dtype", "dtype")}
    return fmt, estimate(shape_counts(keep), fmt)


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of a loaded model's weights (unique storages: tied weights count once)."""
    return sum(m.bytes for m in measure(model).values())
