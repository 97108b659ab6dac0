"""Preallocated KV cache with longest-common-prefix reuse between successive contexts."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class KVCache:
    """Keys and values of every layer for one context, fixed shape, allocated once.

    `tokens` mirrors what positions [0, length) hold, so the next context can reuse the longest common prefix:
    with the suffix-first (SPM) layout, a keystroke only appends to the prefix and re-prefills the tail.
    """

    def __init__(self, n_layers: int, n_heads: int, head_dim: int, max_len: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> None:
        self.max_len = max_len
        self.k: Tensor = torch.zeros(n_layers, 1, n_heads, max_len, head_dim, dtype=dtype, device=device)  # (L,1,H,S,D)
        self.v: Tensor = torch.zeros_like(self.k)  # (L, 1, H, S, D)
        self.length = 0
        self.tokens: list[int] = []

    def ensure(self, end: int) -> None:
        if end > self.max_len:
            raise ValueError(f"context of {end} tokens exceeds the cache capacity {self.max_len}")

    def reusable(self, ids: Sequence[int]) -> int:
        """How many leading tokens of `ids` are already cached."""
        return common_prefix_len(self.tokens[: self.length], ids)

    def truncate(self, n: int) -> None:
        self.length = min(self.length, n)
        del self.tokens[self.length:]

    def record(self, ids: Sequence[int], start: int) -> None:
        """Note that ids now occupy positions start.. (the model wrote their keys and values)."""
        del self.tokens[start:]
        self.tokens.extend(ids)
        self.length = len(self.tokens)

    @property
    def nbytes(self) -> int:
        return self.k.element_size() * self.k.numel() * 2
