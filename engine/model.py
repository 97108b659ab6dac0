"""A small two-mode diffusion transformer, as DiffusionGemma.

*Encoder mode* runs context tokens with causal attention and writes the KV cache (it also gives next-token logits,
so the same weights can decode autoregressively). *Decoder mode* runs only the canvas tokens, bidirectional among
themselves, attending to the cached context and never writing it: a denoising step costs O(canvas), not O(file).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from engine.cache import KVCache


class ModelLoadError(RuntimeError):
    """A model directory is missing, truncated, corrupted or does not match its config."""


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 8192  # byte-level BPE trained on the corpus: small vocab keeps the output projection cheap
    dim: int = 384  # the shipped model: the largest whose 32-slot canvas forwards in ~35 ms on one laptop core
    n_layers: int = 8  # depth helps code more than width at this scale
    n_heads: int = 6  # head_dim 64: the SDPA kernels' sweet spot
    ffn_dim: int = 1024  # SwiGLU hidden, ~8/3 * dim rounded to a multiple of 64
    max_seq_len: int = 1536  # context budget + canvas; RoPE tables are built this long
    rope_theta: float = 10000.0  # standard RoPE base: contexts are short
    norm_eps: float = 1e-6  # RMSNorm epsilon

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ModelLoadError(f"unsupported model config keys: {sorted(unknown)}")
        return cls(**d)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rope_tables(cfg: ModelConfig, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, device=device).float() / cfg.head_dim))
    t = torch.arange(cfg.max_seq_len, device=device).float()
    freqs = torch.outer(t, inv)  # (S, D/2)
    return freqs.cos(), freqs.sin()


@dataclass(frozen=True)
class Int8Weight:
    """A weight as 8-bit integers per output channel, packed for fbgemm: a product reads a quarter of float32's bytes
    and half of bfloat16's, and a forward here is bound by reading its weights. Its input is quantized per product
    (dynamic quantization), so a row's result depends on the other rows of its batch."""

    packed: Any  # torch.ops.quantized.linear_prepack's
    shape: tuple[int, int]  # (N, K), as the weight's
    dtype: torch.dtype  # the activations' (the model's other weights')

    @staticmethod
    def of(w: Tensor) -> Int8Weight:
        wf = w.detach().float()
        scale = (wf.abs().amax(1) / 127).clamp_min(1e-12).double()  # (N,)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch marks its quantized tensors deprecated; the CPU kernels remain
            q = torch.quantize_per_channel(wf, scale, torch.zeros(w.shape[0], dtype=torch.long), 0, torch.qint8)
            packed = torch.ops.quantized.linear_prepack(q, None)
        return Int8Weight(packed, (w.shape[0], w.shape[1]), w.dtype)


def _mm(x: Tensor, w: Tensor | Int8Weight, rows: int = 0, logits: bool = False) -> Tensor:
    """x (B, T, K) by the weight w (N, K) -> (B, T, N) as one matrix product (a layer as nn.Linear runs it, the
    logits as `x @ w.T`), of at least `rows` rows: zero rows are added below that (see DiffusionLM.min_rows)."""
    B, T, K = x.shape
    flat = x
    if B * T < rows:
        flat = x.new_zeros(rows, K)  # (rows, K)
        flat[: B * T] = x.reshape(B * T, K)
    if isinstance(w, Int8Weight):
        out = torch.ops.quantized.linear_dynamic(flat.float(), w.packed).to(x.dtype)
    else:
        out = flat @ w.T if logits else F.linear(flat, w)  # (B, T, N) | (rows, N)
    return out if B * T >= rows else out[: B * T].view(B, T, -1)  # (B, T, N)


def _like(t: Tensor, w: Tensor | Int8Weight) -> Tensor:
    """t as an input of a product by w: w's dtype and device (an Int8Weight's input is in the activations' dtype)."""
    return t.to(w) if isinstance(w, Tensor) else t.to(w.dtype)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    # x: (B, H, T, D); cos/sin: (B or 1, 1, T, D/2)
    x1, x2 = x.float().chunk(2, dim=-1)  # (B, H, T, D/2) each
    out = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (B, H, T, D)
    return out.type_as(x)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.wqkv = nn.Linear(cfg.dim, 3 * cfg.dim, bias=False)
        self.wo = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.w13 = nn.Linear(cfg.dim, 2 * cfg.ffn_dim, bias=False)
        self.w2 = nn.Linear(cfg.ffn_dim, cfg.dim, bias=False)
        self.int8: dict[str, Int8Weight] = {}  # DiffusionLM.quantize_int8: the products' weights, by name

    def w(self, name: str) -> Tensor | Int8Weight:
        """The weight a product of `name` (wqkv, wo, w13, w2) multiplies by."""
        return self.int8.get(name) or getattr(self, name).weight

    def qkv(self, x: Tensor, cos: Tensor, sin: Tensor, rows: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        B, T, _ = x.shape
        qkv = _mm(self.attn_norm(x), self.w("wqkv"), rows)  # (B, T, 3 * dim)
        q, k, v = qkv.view(B, T, 3, self.cfg.n_heads, self.cfg.head_dim).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, D) each
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def finish(self, x: Tensor, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool = False,
               rows: int = 0) -> Tensor:
        B, T, _ = x.shape
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)  # (B, H, T, D)
        x = x + _mm(a.transpose(1, 2).reshape(B, T, self.cfg.dim), self.w("wo"), rows)  # (B, T, dim)
        gate, up = _mm(self.ffn_norm(x), self.w("w13"), rows).chunk(2, dim=-1)  # (B, T, ffn) each
        return x + _mm(F.silu(gate) * up, self.w("w2"), rows)  # (B, T, dim)


class DiffusionLM(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.rope_cos: Tensor
        self.rope_sin: Tensor
        self._rows: dict[int, int] = {}  # torch threads -> min_rows
        self._batching: dict[tuple[int, int, int], bool] = {}  # (slots, batch, threads) -> one product is exact
        self.int8_logits: Int8Weight | None = None  # quantize_int8
        self.init_buffers()

    # ---- set-up -------------------------------------------------------------------------------------------------

    def init_buffers(self) -> None:
        """(Re)build the non-persistent RoPE tables on the parameters' device (idempotent; needed after meta load)."""
        device = self.tok_emb.weight.device
        cos, sin = rope_tables(self.cfg, None if device.type == "meta" else device)
        self.register_buffer("rope_cos", cos, persistent=False)  # (S, D/2)
        self.register_buffer("rope_sin", sin, persistent=False)  # (S, D/2)

    def init_weights(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        std = 0.02
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                nn.init.ones_(p)
            else:
                s = std / math.sqrt(2 * self.cfg.n_layers) if name.endswith(("wo.weight", "w2.weight")) else std
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=g) * s)

    @property
    def blocks(self) -> list[Block]:
        return cast(list[Block], list(self.layers))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _rope(self, pos: Tensor) -> tuple[Tensor, Tensor]:
        # pos: (B, T) or (T,) absolute positions -> (B|1, 1, T, D/2)
        if pos.dim() == 1:
            pos = pos.unsqueeze(0)
        if int(pos.max()) >= self.cfg.max_seq_len:
            raise ValueError(f"position {int(pos.max())} beyond the model's max_seq_len {self.cfg.max_seq_len}")
        return self.rope_cos[pos].unsqueeze(1), self.rope_sin[pos].unsqueeze(1)

    def logits(self, h: Tensor, rows: int = 0) -> Tensor:
        if rows or self.int8_logits is not None:
            x = self.norm(h)
            flat = x.reshape(-1, 1, x.shape[-1]) if x.dim() != 3 else x  # _mm's (B, T, dim)
            return _mm(flat, self.int8_logits or self.tok_emb.weight, rows, logits=True).view(*x.shape[:-1], -1)
        return self.norm(h) @ self.tok_emb.weight.T  # tied embeddings: (..., V)

    def quantize_int8(self) -> None:
        """Every product's weight (the layers' and the logits', tied to the embeddings) as 8-bit integers per
        output channel (Int8Weight); the embeddings' lookup, norms and attention stay in the model's dtype. All or
        nothing: a failure (torch without the kernels) leaves the model as it was."""
        layers = [{name: Int8Weight.of(getattr(layer, name).weight) for name in ("wqkv", "wo", "w13", "w2")}
                  for layer in self.blocks]
        logits = Int8Weight.of(self.tok_emb.weight)
        for layer, weights in zip(self.blocks, layers, strict=True):
            layer.int8 = weights
        self.int8_logits = logits

    # ---- training: one pass over [context | canvas] with the two-mode mask ----------------------------------------

    def forward(self, ids: Tensor, pos: Tensor, mask: Tensor) -> Tensor:
        """ids, pos: (B, T); mask: (B, 1, T, T) bool, True = may attend. Returns hidden states (B, T, dim)."""
        x = self.tok_emb(ids)  # (B, T, dim)
        cos, sin = self._rope(pos)
        for layer in self.blocks:
            q, k, v = layer.qkv(x, cos, sin)
            x = layer.finish(x, q, k, v, mask)
        return x

    # ---- encoder mode: causal over new context tokens, writes the cache --------------------------------------------

    @torch.no_grad()
    def encode(self, ids: Tensor, cache: KVCache, start: int, every: bool = False) -> Tensor:
        """Append `ids` (1, T) at positions start.. to the cache; returns the last hidden state (1, dim), or with
        `every` the hidden state of every new position (1, T, dim)."""
        T = ids.shape[1]
        end = start + T
        cache.ensure(end)
        x = self.tok_emb(ids)  # (1, T, dim)
        cos, sin = self._rope(torch.arange(start, end, device=ids.device))
        # query i (absolute start+i) sees keys 0..start+i
        mask = torch.ones(T, end, dtype=torch.bool, device=ids.device).tril(diagonal=start)  # (T, end)
        for li, layer in enumerate(self.blocks):
            q, k, v = layer.qkv(x, cos, sin)
            cache.k[li, :, :, start:end] = k
            cache.v[li, :, :, start:end] = v
            ks, vs = cache.k[li, :, :, :end], cache.v[li, :, :, :end]  # (1, H, end, D)
            x = layer.finish(x, q, ks, vs, None if start == 0 else mask, causal=start == 0)
        cache.length = end
        return x if every else x[:, -1]  # (1, T, dim) | (1, dim)

    # ---- decoder mode: bidirectional canvas reading the cache, never writing it ------------------------------------

    @torch.no_grad()
    def decode(self, canvas: Tensor, cache: KVCache, ctx_len: int, exact: bool = False) -> Tensor:
        """canvas: (B, C) ids at positions ctx_len..ctx_len+C-1 over cache[:ctx_len]. Returns logits (B, C, V).

        `exact`: each canvas's bit for bit as decoded alone, and alone as in any batch (a lossless sampler checks its
        drafts in batches; see `min_rows`, `exact_batch`). It costs: a lone small canvas runs padded to `min_rows`
        rows (one thread: 16, two: 64), so fills that do not compare batches leave it off."""
        B, C = canvas.shape
        if exact and B > 1 and not self.exact_batch(C, B):  # this device rounds a batch differently: one at a time
            return torch.cat([self.decode(canvas[i : i + 1], cache, ctx_len, exact) for i in range(B)])  # (B, C, V)
        rows = self.min_rows() if exact else 0
        x = self.tok_emb(canvas)  # (B, C, dim)
        cos, sin = self._rope(torch.arange(ctx_len, ctx_len + C, device=canvas.device))
        # a lone canvas over the cache's whole context writes its keys and values past the context's end, where
        # nothing is kept, and attends to the cache in place: no copy of the context's keys at every layer
        scratch = B == 1 and cache.length == ctx_len and ctx_len + C <= cache.max_len
        for li, layer in enumerate(self.blocks):
            q, k, v = layer.qkv(x, cos, sin, rows)
            if scratch:
                cache.k[li, :, :, ctx_len : ctx_len + C] = k
                cache.v[li, :, :, ctx_len : ctx_len + C] = v
                ks, vs = cache.k[li, :, :, : ctx_len + C], cache.v[li, :, :, : ctx_len + C]  # (1, H, ctx + C, D)
            else:
                ck = cache.k[li, :, :, :ctx_len].expand(B, -1, -1, -1)  # (B, H, ctx, D)
                cv = cache.v[li, :, :, :ctx_len].expand(B, -1, -1, -1)
                ks, vs = torch.cat([ck, k], dim=2), torch.cat([cv, v], dim=2)  # (B, H, ctx + C, D)
            x = layer.finish(x, q, ks, vs, None, rows=rows)
        return self.logits(x, rows).float()  # (B, C, V)

    def _weights(self) -> list[tuple[Tensor | Int8Weight, bool]]:
        """One weight of every shape decode multiplies by, and whether it is the logits' (`x @ w.T`)."""
        layer = self.blocks[0]
        return [(layer.w(name), False) for name in ("wqkv", "wo", "w13", "w2")] + \
            [(self.int8_logits or self.tok_emb.weight, True)]

    @torch.no_grad()
    def min_rows(self) -> int:
        """The fewest rows decode's matrix products run with (zero rows are added to a smaller canvas). BLAS kernels
        change with the row count: MKL takes another, differently rounded one below 16 rows, so a lone 8-slot canvas
        would round unlike the same canvas in a batch. Found once per thread count: the smallest power of two whose
        products round every row as a product eight times as tall does (64 at most)."""
        if self.int8_logits is not None:  # each product quantized as a whole: no padding makes a row exact
            return 1
        threads = torch.get_num_threads()
        if threads not in self._rows:
            g = torch.Generator().manual_seed(0)
            rows = 1
            while rows < 64:
                tall = [(_like(torch.randn(8 * rows, w.shape[1], generator=g), w), w, lg) for w, lg in self._weights()]
                if all(torch.equal(_mm(x[None, :rows], w, logits=lg)[0], _mm(x[None], w, logits=lg)[0, :rows])
                       for x, w, lg in tall):
                    break
                rows *= 2
            self._rows[threads] = rows
        return self._rows[threads]

    @torch.no_grad()
    def exact_batch(self, C: int, B: int) -> bool:
        """Whether B canvases of C slots run as one product per weight give every canvas exactly its logits alone
        (attention runs per canvas anyway); probed once per shape and thread count."""
        key = (C, B, torch.get_num_threads())
        if key not in self._batching:
            g = torch.Generator().manual_seed(0)
            rows = self.min_rows()
            self._batching[key] = all(
                torch.equal(_mm(x, w, rows, lg)[i], _mm(x[i : i + 1], w, rows, lg)[0])
                for w, lg in self._weights()
                for x in [_like(torch.randn(B, C, w.shape[1], generator=g), w)]  # (B, C, K)
                for i in range(B))
        return self._batching[key]

    def new_cache(self, max_len: int | None = None) -> KVCache:
        p = self.tok_emb.weight
        return KVCache(self.cfg.n_layers, self.cfg.n_heads, self.cfg.head_dim, max_len or self.cfg.max_seq_len,
                       dtype=p.dtype, device=p.device)


def two_mode_mask(ctx_len: Tensor, canvas_len: Tensor, T_ctx: int, T_canvas: int) -> tuple[Tensor, Tensor]:
    """Training mask and positions for rows laid out as [left pad | context | canvas | right pad].

    ctx_len, canvas_len: (B,). Context rows are left-padded to T_ctx, canvases right-padded to T_canvas.
    Returns mask (B, 1, T, T) bool and positions (B, T).
    """
    T = T_ctx + T_canvas
    idx = torch.arange(T, device=ctx_len.device)
    ctx_start = (T_ctx - ctx_len).unsqueeze(1)  # (B, 1)
    is_ctx = (idx >= ctx_start) & (idx < T_ctx)  # (B, T)
    is_can = (idx >= T_ctx) & (idx < T_ctx + canvas_len.unsqueeze(1))  # (B, T)
    q_ctx, k_ctx = is_ctx.unsqueeze(2), is_ctx.unsqueeze(1)  # (B, T, 1), (B, 1, T)
    q_can, k_can = is_can.unsqueeze(2), is_can.unsqueeze(1)
    causal = idx.unsqueeze(0) <= idx.unsqueeze(1)  # (T, T): key <= query
    mask = (q_ctx & k_ctx & causal) | (q_can & (k_ctx | k_can))  # (B, T, T)
    mask = mask | torch.eye(T, dtype=torch.bool, device=ctx_len.device)  # padding rows attend to themselves: no NaN
    pos = ((is_ctx | is_can).long().cumsum(1) - 1).clamp(min=0)  # (B, T)
    return mask.unsqueeze(1), pos


# ---- safetensors I/O: no pickle anywhere ------------------------------------------------------------------------

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def save_model(model: DiffusionLM, directory: str | Path, dtype: torch.dtype = torch.float32,
               extra_config: dict | None = None) -> None:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(d / WEIGHTS), metadata={"format": "pt", "arch": "diffusion-ls-two-mode"})
    (d / CONFIG).write_text(json.dumps({"model": asdict(model.cfg), **(extra_config or {})}, indent=2) + "\n")


def load_config(directory: str | Path) -> dict:
    path = Path(directory) / CONFIG
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelLoadError(f"no {CONFIG} in model directory {directory}") from exc
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def native_bf16(device: str = "cpu") -> bool:
    """Whether the device multiplies bfloat16 in hardware: a GPU that says so, or a CPU with AVX512-BF16 or AMX (x86)
    or BF16 (Arm), read from Linux's cpuinfo (elsewhere: no). Without it torch emulates bfloat16 products."""
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device != "cpu":
        return False
    try:
        info = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    flags = {f for line in info.splitlines() if line.startswith(("flags", "Features")) for f in line.split()}
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def check_device(device: str) -> None:
    """Raise ModelLoadError, saying what to set, when torch cannot run on `device` here (without it, the first tensor
    placed there fails with torch's own words: "pin_memory=True requires a CUDA or other accelerator backend")."""
    if device == "cpu":
        return
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            build = " (a CPU build)" if torch.version.cuda is None else ""
            raise ModelLoadError(f"device {device}: torch {torch.__version__}{build} sees no CUDA GPU here; set "
                                 "`device` to cpu (diffusion-ls doctor lists the devices)")
        index = int(device.split(":")[1]) if ":" in device and device.split(":")[1].isdigit() else 0
        if index >= torch.cuda.device_count():
            raise ModelLoadError(f"device {device}: there are {torch.cuda.device_count()} CUDA GPU(s), numbered from 0")
        return
    if device == "mps":
        if not torch.backends.mps.is_available():
            raise ModelLoadError("device mps: Apple's Metal is not available here; set `device` to cpu")
        return
    raise ModelLoadError(f"device {device!r}: one of cpu, cuda, cuda:N, mps")


def native_int8(device: str = "cpu") -> bool:
    """Whether `auto` runs the embedded model's products in 8 bits (DiffusionLM.quantize_int8): a CPU that torch's
    fbgemm kernels run on with AVX2 or AVX-512 (x86); elsewhere they are missing or slower than the float product."""
    return (device == "cpu" and "fbgemm" in torch.backends.quantized.supported_engines
            and torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"))


def compute_dtype(name: str, device: str = "cpu") -> torch.dtype:
    """The weights' dtype for a setting: float32, bfloat16, or auto (bfloat16 where the device multiplies it in
    hardware: half the bytes a forward reads, and a forward here is bound by reading its weights)."""
    if name == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    if name not in DTYPES:
        raise ValueError(f"dtype {name!r}: one of auto, {', '.join(DTYPES)}")
    return DTYPES[name]


def load_model(directory: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32) -> DiffusionLM:
    """Build the model, then assign the safetensors weights (no pickle). Built on the CPU, not the meta device: the
    meta device's init runs torch's Python reference ops, whose first use imports torch._dynamo (0.9 s of every
    server start, against 0.1 s of plain init that the weights then replace)."""
    cfg_all = load_config(directory)
    if "model" not in cfg_all:
        raise ModelLoadError(f"{Path(directory) / CONFIG} has no 'model' section")
    cfg = ModelConfig.from_dict(cfg_all["model"])
    path = Path(directory) / WEIGHTS
    if not path.is_file():
        raise ModelLoadError(f"no weights file {path}")
    try:
        state = load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"weights file {path} is truncated or corrupted ({exc}); reinstall or retrain it") from exc
    model = DiffusionLM(cfg)
    state = {k: v.to(dtype) for k, v in state.items()}
    for k, v in state.items():
        if not torch.isfinite(v).all():
            raise ModelLoadError(f"weights file {path} holds non-finite values in {k}: corrupted")
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"weights in {path} do not match config {cfg}: {exc}") from exc
    model.init_buffers()
    return model.eval()
