"""Canvases: the SPM context ids and the canvas slots a backend denoises, and the way back from ids to text."""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from infill.holes import Hole


class TokenizerLike(Protocol):
    """What infill/ needs from engine.tokenizer.Tokenizer."""

    special: object  # has pad, mask, eos, fim_prefix, fim_middle, fim_suffix, file_sep, rewrite (ints)

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


CURSOR_RESERVE = 32  # tokens the cursor's line may grow to before the prefix's first kept line moves
_CHUNK = 64  # lines tokenized per batch at most while looking for a cut: most contexts need one or two batches
_CHARS_PER_TOKEN = 5  # a batch's chars per token still wanted (code runs 3-4 chars a token: one batch mostly does)
MAX_TOKEN_CHARS = 128  # more chars than any token of a code tokenizer spans (ours: 64 bytes at most)


def _encode_many(tok: TokenizerLike, texts: list[str]) -> list[list[int]]:
    batch = getattr(tok, "encode_batch", None)
    return batch(texts) if batch is not None else [tok.encode(t) for t in texts]


def _lines(text: str) -> list[str]:
    """text split after every "\\n" (CRLF stays whole; no other line breaks); "".join(_lines(t)) == t."""
    out, start = [], 0
    while True:
        nl = text.find("\n", start)
        if nl < 0:
            break
        out.append(text[start : nl + 1])
        start = nl + 1
    if start < len(text):
        out.append(text[start:])
    return out


def _lines_near(text: str, cap: int, from_end: bool) -> list[str]:
    """_lines of the part of text a cap-token cut can reach from the hole (its end if from_end, else its start):
    lines farther than cap * MAX_TOKEN_CHARS chars could never be kept, and splitting every line of a big file at
    each keystroke would cost in proportion to its size. Lines kept whole stay whole; a line across the limit is
    dropped (or, alone, cut)."""
    limit = max(0, cap) * MAX_TOKEN_CHARS
    if len(text) <= limit:
        return _lines(text)
    if from_end:
        nl = text.find("\n", len(text) - limit, len(text) - 1)
        return _lines(text[nl + 1 :] if nl >= 0 else text[len(text) - limit :])
    nl = text.rfind("\n", 0, limit)
    return _lines(text[: nl + 1] if nl >= 0 else text[:limit])


def _fit_chars(tok: TokenizerLike, text: str, cap: int, keep_end: bool) -> list[int]:
    """Ids of the longest char cut of text (its end if keep_end, else its start) that encodes to <= cap tokens."""
    lo, hi = 0, len(text)  # number of chars kept: lo fits, hi is the whole text
    best: list[int] = []
    while lo < hi:
        mid = (lo + hi + 1) // 2
        ids = tok.encode(text[len(text) - mid :] if keep_end else text[:mid])
        if len(ids) <= cap:
            lo, best = mid, ids
        else:
            hi = mid - 1
    return best


def _keep_lines(tok: TokenizerLike, lines: list[str], cap: int, from_end: bool) -> list[int]:
    """Ids of the most whole lines nearest the hole that fit in cap tokens.

    from_end=True keeps the last lines (the prefix), else the first lines (the suffix). The line nearest the hole is
    always tried whole first and cut by chars only if it alone overflows cap. Kept text is tokenized on its own.
    """
    return _keep(tok, lines, cap, from_end)[0]


def _keep(tok: TokenizerLike, lines: list[str], cap: int, from_end: bool) -> tuple[list[int], int]:
    """_keep_lines's ids, and how many whole lines they hold (0: the nearest line cut by chars, or nothing)."""
    if cap <= 0 or not lines:
        return [], 0
    # no token spans MAX_TOKEN_CHARS, so a line's part past cap * MAX_TOKEN_CHARS from the hole can never be kept;
    # whole, a minified line of 400k chars would be tokenized again and again
    limit = cap * MAX_TOKEN_CHARS
    order: list[str] = []  # the lines nearest first, as far as the estimate reads them

    def more(chars: int) -> list[str]:  # the next lines, about `chars` chars of them (at least one, at most _CHUNK)
        got: list[str] = []
        while len(order) < len(lines) and len(got) < _CHUNK and (not got or chars > 0):
            ln = lines[-1 - len(order)] if from_end else lines[len(order)]
            ln = (ln[-limit:] if from_end else ln[:limit]) if len(ln) > limit else ln
            order.append(ln)
            got.append(ln)
            chars -= len(ln)
        return got

    # Estimate with per-line counts, nearest first, until the estimate passes cap; each batch about as many lines
    # as the tokens still missing take (a big file's 64 lines cost more to tokenize than the context they fill)
    counts: list[int] = []
    total = 0
    while len(counts) < len(lines) and total <= cap:
        for ids in _encode_many(tok, more((cap - total + 1) * _CHARS_PER_TOKEN)):
            counts.append(len(ids))
            total += len(ids)
    n, est = 0, 0
    while n < len(counts) and est + counts[n] <= cap:
        est += counts[n]
        n += 1
    n = max(n, 1)
    while True:
        kept = order[:n][::-1] if from_end else order[:n]
        ids = tok.encode("".join(kept))
        if len(ids) <= cap:
            return ids, n
        if n == 1:
            return _fit_chars(tok, kept[0], cap, keep_end=from_end), 0
        # Drop the farthest lines until their estimated tokens cover the excess (at least one line).
        excess = len(ids) - cap
        while n > 1 and excess > 0:
            n -= 1
            excess -= counts[n]


def spm_context(prefix: str, suffix: str, tok: TokenizerLike, budget: int, suffix_share: float = 0.25) -> list[int]:
    """`[fim_suffix] suffix [fim_prefix] prefix [fim_middle]` within budget tokens, cut at whole lines.

    The suffix keeps its first lines (nearest the hole) within suffix_share of the budget; the suffix does not depend
    on the prefix, so typing (which grows the prefix) keeps the cached suffix part valid. The prefix gets the rest and
    keeps its last lines; its last (cursor) line is kept whole unless it alone overflows. The ids of each kept part
    equal tokenizing that text on its own. Deterministic: training and serving share it.
    """
    sp = tok.special
    avail = max(0, budget - 3)
    share = int(avail * suffix_share)
    suffix_ids = _keep_lines(tok, _lines_near(suffix, share, from_end=False), share, from_end=False)
    cap = avail - len(suffix_ids)
    return [sp.fim_suffix, *suffix_ids, sp.fim_prefix, *_prefix_ids(tok, _lines_near(prefix, cap, True), cap),
            sp.fim_middle]


def context_lines(text: str, at: int, tok: TokenizerLike, budget: int, suffix_share: float = 0.25,
                  between: bool = False) -> tuple[int, int]:
    """The lines [first, last) of `text` that the context of a hole at `at` keeps, whole or in part (spm_context, or
    around_context when the canvas goes `between`): the rest of the file is what repository context may add from
    it (infill.retrieval)."""
    if between:
        prefix_ids, suffix_ids = around_context(text[:at], text[at:], tok, budget, suffix_share)
    else:
        ids = spm_context(text[:at], text[at:], tok, budget, suffix_share)
        cut = ids.index(tok.special.fim_prefix)
        prefix_ids, suffix_ids = ids[cut + 1 : -1], ids[1:cut]
    kept_prefix, kept_suffix = len(tok.decode(prefix_ids)), len(tok.decode(suffix_ids))
    return text.count("\n", 0, max(0, at - kept_prefix)), text.count("\n", 0, min(len(text), at + kept_suffix)) + 1


def _prefix_ids(tok: TokenizerLike, lines: list[str], cap: int) -> list[int]:
    """The prefix's kept lines. The lines above the cursor's are chosen as if the cursor's line took CURSOR_RESERVE
    tokens, so typing on it does not move the first kept line (which would change every id after the suffix and
    throw the prefix cache away at each keystroke); the lines are then tokenized together, as they always were."""
    if lines and not lines[-1].endswith("\n") and cap > 2 * CURSOR_RESERVE:
        cursor = lines[-1]
        if len(tok.encode(cursor)) <= CURSOR_RESERVE:
            _, n = _keep(tok, lines[:-1], cap - CURSOR_RESERVE, from_end=True)
            ids = tok.encode("".join(lines[len(lines) - 1 - n :]))
            if len(ids) <= cap:
                return ids
    return _keep_lines(tok, lines, cap, from_end=True)


def around_context(prefix: str, suffix: str, tok: TokenizerLike, budget: int, suffix_share: float = 0.25
                   ) -> tuple[list[int], list[int]]:
    """(prefix ids, suffix ids) for a canvas that sits between them in one sequence, as masked-diffusion models infill
    (`prefix [MASK]*n suffix`): no sentinels; the suffix's first lines within suffix_share of the budget, the prefix's
    last lines in the rest, each part tokenized on its own, cut at whole lines as spm_context cuts them."""
    share = int(budget * suffix_share)
    suffix_ids = _keep_lines(tok, _lines_near(suffix, share, from_end=False), share, from_end=False)
    cap = budget - len(suffix_ids)
    prefix_ids = _keep_lines(tok, _lines_near(prefix, cap, from_end=True), cap, from_end=True)
    return prefix_ids, suffix_ids


_WORDISH = re.compile(r" ?\w+")


def heal_text(prefix: str, tok: TokenizerLike) -> str:
    """Token healing: the text a fill at the end of `prefix` should spell again, or "".

    A byte-level BPE spells `    return` as `"   ", " return"`. Typed up to `    ret`, the context would end in the
    token " ret", which the model has seen followed by "urn" almost never: it completes the word badly or not at
    all. So when the cursor's line ends in a word token (an optional space and word characters), that token is taken
    out of the context and the canvas starts where it started, its first slot limited to tokens that begin with it
    (`starting_with`): " return", " returns", " ret"... The fill then re-spells the typed part, which is cut off again
    before it reaches the editor.
    """
    if not hasattr(tok, "starting_with"):  # a tokenizer that cannot list the tokens extending a text cannot heal
        return ""
    line = prefix[max(prefix.rfind("\n") + 1, len(prefix) - 256) :]  # the line's end holds its last token
    if not line or not (line[-1].isalnum() or line[-1] == "_"):
        return ""
    ids = tok.encode(line)
    last = tok.decode(ids[-1:]) if ids else ""
    if not last or not line.endswith(last) or not _WORDISH.fullmatch(last):
        return ""
    return last


# -- canvases for serving ---------------------------------------------------------------------------------------------

MODES = ("fill", "regenerate", "refine")


@dataclass
class Canvas:
    """What a backend denoises: context ids (prefilled once) and canvas slots, some fixed."""

    context_ids: list[int]  # spm_context of the text before the first hole and after the last
    canvas_ids: list[int]  # initial slots: masks (fill, regenerate), the selection's tokens (refine), fixed text
    fixed: list[bool]  # per slot: True = text between holes, never changed by the sampler
    hole_slices: list[tuple[int, int]]  # per hole, its [start, end) slots in canvas_ids
    holes: list[Hole]
    mode: str = "fill"  # one of MODES
    instruction: str = ""  # for backends that take instructions (rewrite); others ignore it
    original_ids: list[list[int]] = field(default_factory=list)  # per hole, the tokens of the text it replaces
    heal: str = ""  # token healing (heal_text): the typed text before the hole that the fill spells again
    allowed: dict[int, list[int]] | None = None  # slot -> the only ids it may take (healing: slot 0)
    suffix_ids: list[int] = field(default_factory=list)  # after the canvas, when it sits between prefix and suffix

    def unheal(self, text: str) -> str:
        """A fill of the (single) hole without the healed text it starts with; "" if it does not start with it."""
        if not self.heal:
            return text
        return text[len(self.heal) :] if text.startswith(self.heal) else ""


def build_canvas(
    text: str,
    holes: Sequence[Hole],
    tok: TokenizerLike,
    budget: int,
    mode: str = "fill",
    instruction: str = "",
    suffix_share: float = 0.25,
    context: Sequence[int] | None = None,
    heal: str = "",
    repo: Sequence[int] = (),
    between: bool = False,
) -> Canvas:
    """The canvas for holes in text (sorted, non-overlapping); budget bounds the context tokens.

    fill / regenerate: every hole is capacity mask slots. refine: a hole starts as the tokens of the text it replaces
    (not fixed: the sampler re-noises the ones it finds unlikely), followed by pad slots up to its capacity. Text
    between holes is fixed tokens inside the canvas, so several holes are denoised together. `context` replaces the
    SPM context (a chat model's prompt, built by its backend's prompter). `heal` (heal_text; one cursor hole in fill
    mode, SPM context, a tokenizer with `starting_with`) is the typed text before the hole the fill spells again.
    `repo` (infill.repo_context) goes before the SPM context: it changes rarely, so the prefix cache keeps it.
    `between`: the canvas goes between the prefix (the context) and the suffix (`suffix_ids`), as masked-diffusion
    models infill, instead of after an SPM context. The text is read with "\n" line endings whatever its own (lf).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if not holes:
        raise ValueError("build_canvas needs at least one hole")
    holes = sorted(holes, key=lambda h: (h.start, h.end))
    for a, b in zip(holes, holes[1:], strict=False):
        if b.start < a.end:
            raise ValueError(f"holes overlap: [{a.start}, {a.end}) and [{b.start}, {b.end})")
    sp = tok.special
    allowed = None
    if heal:
        first = holes[0]
        if mode != "fill" or len(holes) != 1 or first.start != first.end or context is not None:
            raise ValueError("token healing needs a single cursor hole in fill mode with an SPM context")
        if not text[: first.start].endswith(heal):
            raise ValueError(f"the text before the hole does not end with the healed text {heal!r}")
        starting_with = getattr(tok, "starting_with", None)
        if starting_with is None:
            raise ValueError("token healing needs a tokenizer with starting_with()")
        ids = starting_with(heal)
        allowed = {0: ids} if ids else None
        heal = heal if ids else ""
    suffix_ids: list[int] = []
    if context is None and between:  # no sentinels: the model reads the canvas's place from the sequence itself
        prefix_ids, suffix_ids = around_context(lf(text[: holes[0].start - len(heal)]), lf(text[holes[-1].end :]),
                                                tok, budget, suffix_share)
        context = [*repo, *prefix_ids]
    if context is None:
        context = [*repo, *spm_context(lf(text[: holes[0].start - len(heal)]), lf(text[holes[-1].end :]), tok,
                                       budget, suffix_share)]
    canvas: list[int] = []
    fixed: list[bool] = []
    slices: list[tuple[int, int]] = []
    originals: list[list[int]] = []
    for i, hole in enumerate(holes):
        if i:
            between = tok.encode(lf(text[holes[i - 1].end : hole.start]))
            canvas += between
            fixed += [True] * len(between)
        original = tok.encode(lf(text[hole.start : hole.end]))
        originals.append(original)
        if mode == "refine":
            slots = original + [sp.pad] * max(0, hole.capacity - len(original))
        else:
            slots = [sp.mask] * max(1, hole.capacity)
        slices.append((len(canvas), len(canvas) + len(slots)))
        canvas += slots
        fixed += [False] * len(slots)
    return Canvas(list(context), canvas, fixed, slices, list(holes), mode, instruction, originals, heal, allowed,
                  suffix_ids)


def canvas_to_text(canvas: Canvas, ids: Sequence[int], tok: TokenizerLike) -> list[str]:
    """Per-hole text of a filled canvas: pads and masks dropped, nothing after an end-of-text token."""
    sp = tok.special
    out = []
    for start, end in canvas.hole_slices:
        kept = []
        for tid in ids[start:end]:
            if tid == sp.eos:
                break
            if tid not in (sp.pad, sp.mask):
                kept.append(tid)
        out.append(tok.decode(kept))
    if out:
        out[0] = canvas.unheal(out[0])
    return out


def newline_of(text: str) -> str:
    """The document's line ending, as its first line ends: "\r\n" or "\n". The model reads and writes "\n" only
    (build_canvas), and its text goes into a CRLF document with "\r\n" (with_newline)."""
    nl = text.find("\n")
    return "\r\n" if nl > 0 and text[nl - 1] == "\r" else "\n"


def lf(text: str) -> str:
    """text with "\n" line endings, as the model was trained on them."""
    return text.replace("\r\n", "\n") if "\r" in text else text


def with_newline(text: str, nl: str, masks: Sequence[tuple[int, int]] = ()) -> tuple[str, list[tuple[int, int]]]:
    """The model's text (and its masked char ranges) with `nl` line endings."""
    if nl == "\n" or "\n" not in text:
        return text, list(masks)
    text = lf(text)
    breaks = [i for i, ch in enumerate(text) if ch == "\n"]

    def at(i: int) -> int:  # a char offset after the "\r" each earlier line break gains
        return i + bisect.bisect_left(breaks, i)

    return text.replace("\n", nl), [(at(a), at(b)) for a, b in masks]


def render_partial(
    ids: Sequence[int], masked: Sequence[bool], tok: TokenizerLike, placeholder: str = "·"
) -> tuple[str, list[tuple[int, int]]]:
    """Text of a canvas mid-denoising and the [start, end) char ranges of it that are still masked.

    Runs of decided tokens are decoded together (multi-byte chars survive); each masked slot is one placeholder
    char; pads are dropped (so trailing pads are trimmed); adjacent masked slots make one range. A char whose bytes a
    masked slot has yet to finish is left out (it would show as U+FFFD for a frame).
    """
    if len(ids) != len(masked):
        raise ValueError(f"{len(ids)} ids but {len(masked)} mask flags")
    sp = tok.special
    parts: list[str] = []
    ranges: list[tuple[int, int]] = []
    pos = 0
    run: list[int] = []

    def flush(before_mask: bool) -> None:
        nonlocal pos
        if run:
            s = tok.decode(run)
            if parts and ranges and ranges[-1][1] == pos:  # after a masked slot: its bytes may start this char
                s = s.lstrip("\ufffd")
            if before_mask:
                s = s.rstrip("\ufffd")
            parts.append(s)
            pos += len(s)
            run.clear()

    for tid, is_masked in zip(ids, masked, strict=True):
        if is_masked or tid == sp.mask:
            flush(before_mask=True)
            if ranges and ranges[-1][1] == pos:
                ranges[-1] = (ranges[-1][0], pos + len(placeholder))
            else:
                ranges.append((pos, pos + len(placeholder)))
            parts.append(placeholder)
            pos += len(placeholder)
        elif tid != sp.pad:
            run.append(tid)
    flush(before_mask=False)
    return "".join(parts), ranges
