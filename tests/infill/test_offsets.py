"""Char <-> UTF-8 byte offsets (tree-sitter speaks bytes, the editor and infill/ speak chars)."""

from __future__ import annotations

import random

from infill._syntax import OffsetMap


def test_offsets_match_utf8_encoding_for_every_char_and_byte():
    rng = random.Random(0)
    alphabet = "ab \n\t_(é€😀λ"  # 1-, 2-, 3- and 4-byte chars
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        m = OffsetMap(text)
        starts = [len(text[:c].encode()) for c in range(len(text) + 1)]
        assert m.n_bytes == len(text.encode())
        assert [m.to_byte(c) for c in range(len(text) + 1)] == starts
        for b in range(m.n_bytes + 1):  # a byte inside a multi-byte char maps to that char's start
            assert m.to_char(b) == max(c for c, s in enumerate(starts) if s <= b)
