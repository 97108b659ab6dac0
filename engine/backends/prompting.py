"""Talking to a chat-tuned diffusion model (DiffusionGemma) in token ids: a tokenizer adapter and the prompts.

A chat model has no FIM sentinels and no suffix slot. Its canvas is the assistant's answer, so fill-in-the-middle is
an instruction: the user turn shows the code around the cursor, and the answer is the code to insert. The answer is
opened for the model ("answer head": the empty thought block the chat template leaves to the model, a ``` fence and
the cursor line's text so far), so the canvas continues the code at the cursor and `finish` cuts at the closing fence.

Layout "spm" puts the suffix first and the prefix last in the user turn: typing only appends to the prompt's
variable part, so a backend reuses its cached prompt up to the cursor line (the same idea as the SPM context).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from engine.tokenizer import SpecialIds

# Control tokens of the Gemma 4 chat format; looked up by name, absent ones are simply not used.
TURN_OPEN, TURN_CLOSE = "<|turn>", "<turn|>"
THOUGHT_SCAFFOLD = "<|channel>thought\n<channel|>"  # empty thought block: the answer proper follows it
_SCAFFOLD_TOKENS = ("<|channel>", "<channel|>")
_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


class ChatTokenizer(Protocol):
    """What the prompts need: our Tokenizer interface plus the model's chat template."""

    vocab_size: int

    @property
    def special(self) -> SpecialIds: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def token_id(self, token: str) -> int | None: ...

    def chat_ids(self, messages: list[dict], add_generation_prompt: bool = True,
                 **template_kwargs: Any) -> list[int]: ...


class HFTokenizer:
    """A transformers tokenizer behind engine.tokenizer.Tokenizer's interface (encode/decode/special/vocab_size).

    DiffusionGemma has no mask token and no FIM sentinels: `special.mask` is the tokenizer's `<mask>` (only a
    placeholder for undecided slots: the model's noise is uniform random tokens), and the FIM fields hold chat control
    tokens, so the sampler bans them from fills like any other control token. `end_ids` are the tokens that end an
    answer (eos, end of turn); backends fold them into `pad`, the sampler's "the text ends here".
    """

    def __init__(self, hf: Any) -> None:
        self.hf = hf
        pad = _first(hf.pad_token_id, hf.eos_token_id, default=-1)
        if pad < 0:
            raise ValueError("tokenizer has neither a pad nor an eos token")
        eos = _first(hf.eos_token_id, default=pad)
        bos = _first(hf.bos_token_id, default=eos)
        turn_open, turn_close = self.token_id(TURN_OPEN), self.token_id(TURN_CLOSE)
        self.special = SpecialIds(
            pad=pad,
            mask=_first(getattr(hf, "mask_token_id", None), hf.unk_token_id, default=pad),
            eos=eos,
            fim_prefix=bos,
            fim_middle=_first(turn_close, default=eos),
            fim_suffix=_first(turn_open, default=bos),
            file_sep=eos,
            rewrite=_first(self.token_id(_SCAFFOLD_TOKENS[0]), default=bos),
        )
        self.end_ids = frozenset(i for i in (eos, turn_close) if i is not None)
        self.vocab_size = len(hf)
        self._all_special = frozenset(hf.all_special_ids) | self.special.all

    @classmethod
    def from_dir(cls, path: str | Path) -> HFTokenizer:
        from transformers import AutoTokenizer  # the `hf` extra

        return cls(AutoTokenizer.from_pretrained(str(path), local_files_only=True))

    def encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=False)) if text else []

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [list(ids) for ids in self.hf(texts, add_special_tokens=False)["input_ids"]] if texts else []

    def decode(self, ids: Sequence[int]) -> str:
        """Text of the ids; special and control tokens are dropped."""
        keep = [int(i) for i in ids if int(i) not in self._all_special]
        return self.hf.decode(keep, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def token_bytes(self, tid: int) -> bytes:
        """The raw bytes one token stands for (specials: empty). Byte-fallback tokens `<0xAB>` are one byte."""
        if tid in self._all_special:
            return b""
        tok = self.hf.convert_ids_to_tokens(int(tid)) or ""
        m = _BYTE_TOKEN.match(tok)
        return bytes([int(m.group(1), 16)]) if m else tok.replace("\u2581", " ").encode("utf-8")

    def token_id(self, token: str) -> int | None:
        """The id of a single token spelled `token`, or None when the vocabulary has no such token."""
        tid = self.hf.convert_tokens_to_ids(token)
        return None if tid is None or tid == self.hf.unk_token_id else int(tid)

    def chat_ids(self, messages: list[dict], add_generation_prompt: bool = True, **template_kwargs: Any) -> list[int]:
        out = self.hf.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt,
                                          **template_kwargs)
        ids = out["input_ids"] if hasattr(out, "keys") else out  # newer transformers return a BatchEncoding
        return [int(i) for i in ids]


def _first(*xs: int | None, default: int) -> int:
    return next((int(x) for x in xs if x is not None), default)


# ---- prompts --------------------------------------------------------------------------------------------------------

INFILL_INSTRUCTION = (
    "You are a code completion engine. Write the code that belongs at the cursor in this {language} file.\n"
    "The file is shown in two parts: first the code after the cursor, then the code before the cursor, which ends "
    "exactly at the cursor.\n"
    "Reply with one code block holding only the text to insert at the cursor: it continues the last line of the code "
    "before the cursor and joins up with the code after the cursor. Do not repeat code that is already there.")
INFILL_INSTRUCTION_PSM = (
    "You are a code completion engine. Write the code that belongs at {marker} in this {language} file.\n"
    "Reply with one code block holding only the text that replaces {marker}: it continues the code before it and "
    "joins up with the code after it. Do not repeat code that is already there.")
REWRITE_INSTRUCTION = (
    "Rewrite the selected code in this {language} file. {task}\n"
    "Reply with one code block holding only the new text for the selection, with the same indentation: it replaces "
    "the selection exactly.")
DEFAULT_TASK = "Fix mistakes and improve it; keep its behaviour, names and style."
CURSOR = "<CURSOR>"


@dataclass(frozen=True)
class PromptConfig:
    layout: str = "spm"  # suffix first, prefix last: typing appends, so the cached prompt stays valid up to the cursor
    fence: bool = True  # open a ``` block in the answer: the model writes code, then closes the block when done
    lead: bool = True  # start the answer with the cursor line's text so far, so the canvas continues that line
    thinking: bool = False  # a thought before the answer would spend canvas slots; completion wants none
    suffix_share: float = 0.25  # share of the token budget the suffix may take (the prefix matters more)

    def __post_init__(self) -> None:
        if self.layout not in ("spm", "psm"):
            raise ValueError(f"unknown prompt layout {self.layout!r}; 'spm' or 'psm'")


class ChatPrompter:
    """Context ids for infill and rewrite on a chat-tuned model; `finish` turns the answer text into the fill."""

    def __init__(self, tok: ChatTokenizer, cfg: PromptConfig | None = None) -> None:
        self.tok = tok
        self.cfg = cfg or PromptConfig()
        has_scaffold = all(tok.token_id(t) is not None for t in _SCAFFOLD_TOKENS)
        self.scaffold = THOUGHT_SCAFFOLD if has_scaffold and not self.cfg.thinking else ""

    def infill(self, prefix: str, suffix: str, language: str | None = None, budget: int | None = None) -> list[int]:
        """Context ids for filling the gap between `prefix` and `suffix`; the canvas is the text at the cursor."""
        prefix, suffix = self.trim(prefix, suffix, budget)
        lang = language or "source"
        if self.cfg.layout == "spm":
            user = (INFILL_INSTRUCTION.format(language=lang) + "\n\nCode after the cursor:\n" + _block(suffix, language)
                    + "\n\nCode before the cursor:\n" + _block(prefix, language))
        else:
            user = (INFILL_INSTRUCTION_PSM.format(marker=CURSOR, language=lang) + "\n\n"
                    + _block(prefix + CURSOR + suffix, language))
        lead = prefix[prefix.rfind("\n") + 1:] if self.cfg.lead else ""
        return self._ids(user, language, lead)

    def rewrite(self, prefix: str, selection: str, suffix: str, instruction: str = "", language: str | None = None,
                budget: int | None = None) -> list[int]:
        """Context ids for rewriting `selection`; the canvas (seeded with the selection) is its replacement."""
        prefix, suffix = self.trim(prefix, suffix, budget)
        user = (REWRITE_INSTRUCTION.format(language=language or "source", task=instruction.strip() or DEFAULT_TASK)
                + "\n\nCode before the selection:\n" + _block(prefix, language)
                + "\n\nSelected code:\n" + _block(selection, language)
                + "\n\nCode after the selection:\n" + _block(suffix, language))
        return self._ids(user, language, "")

    def answer_head(self, language: str | None, lead: str = "") -> str:
        """The answer's opening, given in the context: the canvas continues right after it."""
        fence = f"```{language or ''}\n" if self.cfg.fence else ""
        return self.scaffold + fence + lead

    def finish(self, text: str) -> str:
        """The fill from the answer text: everything before the closing fence (the model's end of the code block)."""
        if not self.cfg.fence:
            return text
        m = re.search(r"(^|\n)[ \t]*```", text)
        return text[: m.start()] if m else text

    def trim(self, prefix: str, suffix: str, budget: int | None) -> tuple[str, str]:
        """Whole lines nearest the cursor within `budget` tokens: the suffix its share, the prefix the rest."""
        if budget is None:
            return prefix, suffix
        suffix = _keep_lines(self.tok, suffix, int(budget * self.cfg.suffix_share), from_end=False)
        prefix = _keep_lines(self.tok, prefix, budget - len(self.tok.encode(suffix)), from_end=True)
        return prefix, suffix

    def _ids(self, user: str, language: str | None, lead: str) -> list[int]:
        messages = [{"role": "user", "content": user}]
        head = self.answer_head(language, lead)
        return self.tok.chat_ids(messages, add_generation_prompt=True, enable_thinking=self.cfg.thinking) + \
            self.tok.encode(head)


def _block(code: str, language: str | None) -> str:
    return f"```{language or ''}\n{code}\n```"


def _keep_lines(tok: ChatTokenizer, text: str, cap: int, from_end: bool) -> str:
    """The most whole lines of `text` nearest the cursor (its end if from_end) that fit in `cap` tokens."""
    if cap <= 0 or not text:
        return ""
    lines = text.splitlines(keepends=True)
    order = lines[::-1] if from_end else lines
    counts = tok.encode_batch(order) if hasattr(tok, "encode_batch") else [tok.encode(x) for x in order]
    kept, total = 0, 0
    while kept < len(order) and total + len(counts[kept]) <= cap:
        total += len(counts[kept])
        kept += 1
    if kept == 0:  # the line at the cursor alone is over the cap: keep its part nearest the cursor
        line = order[0]
        while line and len(tok.encode(line)) > cap:
            line = line[len(line) // 4 + 1:] if from_end else line[: len(line) * 3 // 4]
        return line
    part = order[:kept]
    return "".join(part[::-1] if from_end else part)
