"""Weight-only quantization of DiffusionGemma's fused MoE experts: what transformers' quantizers leave in bf16.

The experts are 88% of DiffusionGemma's weights, stored per layer as two 3-D tensors (`gate_up_proj` (E, 2I, H),
`down_proj` (E, H, I)) inside a module that indexes them per expert; transformers' quantizers convert nn.Linear only
and skip them (tools/moe_memory.py measures it). Here each expert's matrix is quantized row by row in groups of
`group` input values (round to nearest, symmetric, one bf16 scale per group), kept packed, and dequantized one expert
at a time inside the experts' own loop, so a forward holds at most one expert's bf16 copy:

    int8: 8 bits a weight + 16 / group for the scale            (group 64: 8.25 bits)
    int4: two weights a byte, 4 bits + 16 / group for the scale (group 32: 4.5 bits, as GGUF Q4_0 and NVFP4)

The encoder and decoder share their experts, so one quantized module replaces both layers' (sharing is kept).
Everything else (attention, dense MLP, embeddings, vision tower) stays as loaded.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

SCHEMES = {"experts-int8": (8, 64), "experts-int4": (4, 32)}  # name -> (bits, group size)


def group_for(width: int, group: int) -> int:
    """The group size used for rows `width` wide: `group`, or its largest divisor that divides the width (the 26B's
    widths, 2816 and 704, take 32 and 64 whole; toy models are narrower)."""
    return math.gcd(width, group)


def quantize_rows(w: Tensor, bits: int, group: int) -> tuple[Tensor, Tensor]:
    """(E, O, I) float -> packed codes (E, O, I) int8 or (E, O, I // 2) uint8, and scales (E, O, I // group) bf16;
    `group` must divide I (see group_for)."""
    E, O, I = w.shape
    if I % group or (bits == 4 and I % 2):
        raise ValueError(f"input width {I} does not split into groups of {group}")
    qmax = 2 ** (bits - 1) - 1  # symmetric: int8 in [-127, 127], int4 in [-7, 7]
    g = w.float().reshape(E, O, I // group, group)  # (E, O, G, group)
    scale = g.abs().amax(-1, keepdim=True).clamp_min(1e-12) / qmax  # (E, O, G, 1)
    q = torch.round(g / scale).clamp(-qmax, qmax).to(torch.int8).reshape(E, O, I)  # (E, O, I)
    if bits == 4:
        u = (q + 8).to(torch.uint8)  # (E, O, I) in [1, 15]
        q = (u[..., 0::2] | (u[..., 1::2] << 4)).contiguous()  # (E, O, I // 2): two codes a byte
    return q, scale.squeeze(-1).to(torch.bfloat16)  # (E, O, G)


def dequantize(q: Tensor, scale: Tensor, bits: int, group: int, dtype: torch.dtype) -> Tensor:
    """One expert's matrix back: q (O, I) or (O, I // 2), scale (O, G) -> (O, I) in `dtype`."""
    if bits == 4:
        lo, hi = (q & 0xF).to(torch.int8) - 8, (q >> 4).to(torch.int8) - 8  # (O, I // 2) each
        q = torch.stack((lo, hi), dim=-1).reshape(q.shape[0], -1)  # (O, I)
    O, I = q.shape
    w = q.reshape(O, I // group, group).to(dtype) * scale[..., None].to(dtype)  # (O, G, group)
    return w.reshape(O, I)


class QuantizedExperts(nn.Module):
    """A drop-in for transformers' DiffusionGemmaTextExperts with its two fused tensors quantized."""

    def __init__(self, experts: Any, bits: int, group: int) -> None:
        super().__init__()
        gate_up: Tensor = experts.gate_up_proj.data  # (E, 2I, H)
        down: Tensor = experts.down_proj.data  # (E, H, I)
        self.num_experts: int = int(experts.num_experts)
        self.act_fn: Any = experts.act_fn
        self.bits = bits
        self.dtype: torch.dtype = gate_up.dtype  # the compute dtype: dequantized weights come back in it
        # each tensor's rows are its input width long: hidden (gate_up) and the expert's width (down)
        self.groups = {"gate_up": group_for(gate_up.shape[-1], group), "down": group_for(down.shape[-1], group)}
        gu, gu_s = quantize_rows(gate_up, bits, self.groups["gate_up"])
        dn, dn_s = quantize_rows(down, bits, self.groups["down"])
        self.register_buffer("gate_up_q", gu)  # (E, 2I, H) or (E, 2I, H // 2)
        self.register_buffer("gate_up_scale", gu_s)  # (E, 2I, H // group)
        self.register_buffer("down_q", dn)  # (E, H, I) or (E, H, I // 2)
        self.register_buffer("down_scale", dn_s)  # (E, H, I // group)

    def _w(self, name: str, e: Tensor) -> Tensor:
        q: Tensor = getattr(self, f"{name}_q")[e]
        s: Tensor = getattr(self, f"{name}_scale")[e]
        return dequantize(q, s, self.bits, self.groups[name], self.dtype)

    def forward(self, hidden_states: Tensor, top_k_index: Tensor, top_k_weights: Tensor) -> Tensor:
        """The same routing loop as transformers' experts: each expert hit by some token runs on those tokens."""
        final = torch.zeros_like(hidden_states)  # (T, H)
        with torch.no_grad():
            mask = nn.functional.one_hot(top_k_index, num_classes=self.num_experts + 1).permute(2, 1, 0)  # (E+1, k, T)
            hit = torch.greater(mask.sum(dim=(-1, -2)), 0).nonzero()  # (n, 1)
        for e in hit[:, 0]:
            if e == self.num_experts:
                continue
            pos, tok = torch.where(mask[e])
            x = hidden_states[tok]  # (t, H)
            gate, up = nn.functional.linear(x, self._w("gate_up", e)).chunk(2, dim=-1)  # (t, I) each
            y = nn.functional.linear(self.act_fn(gate) * up, self._w("down", e))  # (t, H)
            final.index_add_(0, tok, (y * top_k_weights[tok, pos, None]).to(final.dtype))
        return final


def quantize_experts(model: Any, scheme: str) -> int:
    """Replace every layer's experts (encoder and decoder share them) with QuantizedExperts; returns how many."""
    bits, group = SCHEMES[scheme]
    encoder = model.model.encoder.language_model.layers
    decoder = model.model.decoder.layers
    for enc, dec in zip(encoder, decoder, strict=True):
        if enc.experts.gate_up_proj is not dec.experts.gate_up_proj:
            raise ValueError("the encoder's and decoder's experts are not shared: not a DiffusionGemma checkpoint?")
        q = QuantizedExperts(enc.experts, bits, group)
        enc.experts = dec.experts = q  # one module for both: the weights stay shared
    return len(encoder)
