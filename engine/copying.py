"""Copying from the context: what followed the same few tokens where the context has them, mixed into a slot's
prediction.

A small model reads names from far context poorly, though the text it should write is often there verbatim: a
definition from another file (repository context), a call a few lines up. A slot whose left neighbours are decided
looks up the longest n-gram they end with in the context ids; the tokens that followed it there form a distribution
q, and the slot's prediction becomes (1 - weight) * p + weight * q (an interpolation as in kNN-LM, with the context
as the datastore). Slots without a match keep the model's prediction. The mixture is a function of the canvas and
the context alone, so every sampler (lossless included) reads it as it reads the model's logits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

ORDERS = (4, 3, 2)  # longest first; one token of agreement matches far too much of any file to copy from


@dataclass
class CopySource:
    """The context ids a canvas may copy from, and the ids just before its first slot."""

    source: Sequence[int]
    lead: Sequence[int]  # the ids right before the canvas (the end of the prefix), in reading order
    _index: CopyIndex | None = field(default=None, repr=False, compare=False)

    def index(self, skip: Collection[int]) -> CopyIndex:
        """The source's index, built once (a grown fill's later blocks share it)."""
        if self._index is None:
            self._index = CopyIndex(self.source, skip)
        return self._index

    def after(self, ids: Sequence[int]) -> CopySource:
        """The same source for a canvas that follows `ids` (a grown fill's next block)."""
        return CopySource(self.source, [*self.lead, *ids][-max(ORDERS):], self._index)


class CopyIndex:
    """n-grams of the source (no `skip` id inside one) -> counts of the id that followed them."""

    def __init__(self, source: Sequence[int], skip: Collection[int]) -> None:
        self.skip = frozenset(skip)
        self.table: dict[tuple[int, ...], Counter[int]] = {}
        ids = list(source)
        for i in range(1, len(ids)):
            nxt = ids[i]
            if nxt in self.skip:
                continue
            for n in ORDERS:
                if i - n < 0:
                    continue
                gram = tuple(ids[i - n : i])
                if self.skip.intersection(gram):
                    continue
                self.table.setdefault(gram, Counter())[nxt] += 1

    def __bool__(self) -> bool:
        return bool(self.table)

    def lookup(self, left: Sequence[int]) -> Counter[int] | None:
        """What followed the longest of `left`'s last ORDERS ids that the source has."""
        for n in ORDERS:
            if len(left) >= n:
                got = self.table.get(tuple(left[-n:]))
                if got:
                    return got
        return None

    def mix(self, logits: Tensor, lead: Sequence[int], x: Tensor, decided: Tensor, slots: Tensor, weight: float
            ) -> Tensor:
        """logits (C, V) with each of `slots` (C,) bool whose left neighbours are decided (`lead` before slot 0) mixed
        with what followed them in the source; a new tensor where any slot changed, else `logits` itself."""
        out = logits
        lead = list(lead)[-max(ORDERS):]
        known = lead + [-1] * len(x)  # -1: undecided, never in the table
        xs, ds = x.tolist(), decided.tolist()
        for j, d in enumerate(ds):
            if d:
                known[len(lead) + j] = xs[j]
        for j in slots.nonzero().flatten().tolist():
            end = len(lead) + j
            left = known[max(0, end - max(ORDERS)) : end]
            n_known = 0  # the decided run just before slot j
            while n_known < len(left) and left[len(left) - 1 - n_known] >= 0:
                n_known += 1
            counts = self.lookup(left[len(left) - n_known :]) if n_known else None
            if not counts:
                continue
            if out is logits:
                out = logits.clone()
            total = sum(counts.values())
            q = torch.zeros(logits.shape[-1], dtype=logits.dtype)  # (V,)
            for t, c in counts.items():
                if 0 <= t < len(q):
                    q[t] = c / total
            p = torch.softmax(logits[j], dim=-1)  # (V,)
            out[j] = torch.log((1 - weight) * p + weight * q)
        return out
