"""Byte-level BPE tokenizer: a thin wrapper over HF `tokenizers` with the FIM specials the engine needs."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer

# Names of the special tokens, as trained into the tokenizer file (tools/train_tokenizer.py).
SPECIAL_NAMES = {
    "pad": "<|pad|>",
    "mask": "<|mask|>",
    "eos": "<|endoftext|>",
    "fim_prefix": "<|fim_prefix|>",
    "fim_middle": "<|fim_middle|>",
    "fim_suffix": "<|fim_suffix|>",
    "file_sep": "<|file_sep|>",
    "rewrite": "<|rewrite|>",
}


class TokenizerError(ValueError):
    """The tokenizer file is missing, unreadable, or lacks a special token the engine needs."""


@dataclass(frozen=True)
class SpecialIds:
    pad: int  # fills canvas slots past the end of the text: lets the model end early inside its capacity
    mask: int  # a canvas slot not yet decided (masked-diffusion noise)
    eos: int  # end of a document / of an autoregressive fill
    fim_prefix: int  # sentinel before the prefix text (SPM layout: suffix first, then prefix)
    fim_middle: int  # sentinel after the prefix: the canvas follows it
    fim_suffix: int  # sentinel before the suffix text
    file_sep: int  # separates files packed into one training sequence
    rewrite: int  # marks the original text of a rewrite selection in the context

    @property
    def all(self) -> frozenset[int]:
        return frozenset(vars(self).values())


class Tokenizer:
    """Encode text to ids and back, exactly: `decode(encode(s)) == s` for any string."""

    def __init__(self, hf: HFTokenizer) -> None:
        self.hf = hf
        # special-token text typed by a user is text, not a control token (not saved in tokenizer.json: set it here)
        self.hf.encode_special_tokens = True
        ids = {}
        for field, name in SPECIAL_NAMES.items():
            tid = hf.token_to_id(name)
            if tid is None:
                raise TokenizerError(f"tokenizer has no special token {name!r}; train it with tools/train_tokenizer.py")
            ids[field] = tid
        self.special = SpecialIds(**ids)
        self.vocab_size = hf.get_vocab_size(with_added_tokens=True)
        # every token's bytes in byte order, and their ids, built on the first starting_with(): the tokens that start
        # with a text are one run of that order, found by bisection instead of a scan of the vocabulary per keystroke
        self._sorted: tuple[list[bytes], list[int]] | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> Tokenizer:
        try:
            hf = HFTokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise TokenizerError(f"cannot read tokenizer file {path}: {exc}") from exc
        return cls(hf)

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(_scrub(text), add_special_tokens=False, is_pretokenized=False).ids if text else []

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.hf.encode_batch([_scrub(t) for t in texts], add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        """Text of the ids; special tokens are dropped."""
        return self.hf.decode([i for i in ids if i not in self.special.all], skip_special_tokens=False)

    def token_bytes(self, tid: int) -> bytes:
        """The raw bytes one token stands for (specials: empty)."""
        if tid in self.special.all:
            return b""
        return _byte_level_to_bytes(self.hf.id_to_token(tid) or "")

    def starting_with(self, text: str) -> list[int]:
        """Ids of the tokens whose text starts with `text` (token healing: the first slot of a fill that continues a
        word the user is typing must re-spell that word's last token, or extend it)."""
        if self._sorted is None:
            pairs = sorted((b, i) for i in range(self.vocab_size) if (b := self.token_bytes(i)))
            self._sorted = [b for b, _ in pairs], [i for _, i in pairs]
        keys, ids = self._sorted
        want = text.encode("utf-8", "surrogatepass")
        lo = hi = bisect.bisect_left(keys, want)
        while hi < len(keys) and keys[hi].startswith(want):
            hi += 1
        return sorted(ids[lo:hi])


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _scrub(text: str) -> str:
    """Lone surrogates (an editor buffer may hold them; `tokenizers` refuses them) as U+FFFD, one char for one."""
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)


def _build_byte_decoder() -> dict[str, int]:
    # GPT-2's byte <-> unicode table, used by the ByteLevel pre-tokenizer.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


_BYTE_DECODER = _build_byte_decoder()


def _byte_level_to_bytes(token: str) -> bytes:
    return bytes(_BYTE_DECODER[ch] for ch in token if ch in _BYTE_DECODER)
