"""Holes: where a fill goes, what kind of code it is (the situation), and how many tokens it gets (capacity).

The cursor's situation is read from a parse of `prefix + PLACEHOLDER + suffix`: an editing buffer is usually broken,
an identifier at the cursor keeps the tree clean. The capacity comes from spans of the same kind in this file (a high
percentile of their token lengths, with a margin), clamped per situation.
"""

from __future__ import annotations

import ast
import math
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from infill import _syntax
from infill.spans import Span, syntax_spans

PLACEHOLDER = "__hole__"

SITUATIONS = (
    "empty_body",
    "new_statement",
    "rest_of_line",
    "expression",
    "arguments",
    "control_header",
    "comment",
    "end_of_file",
    "line",  # unknown language: line-based
    "rewrite",  # an explicit selection
)

# Capacity bounds per situation, in tokens: below the low end a fill cannot finish its construct; above the high end
# a canvas is mostly pads (and the sampler can grow a full canvas block-autoregressively anyway).
CLAMP = {
    "empty_body": (16, 256),
    "new_statement": (8, 64),
    "rest_of_line": (8, 48),
    "expression": (4, 48),
    "arguments": (4, 48),
    "control_header": (4, 32),
    "comment": (8, 64),
    "end_of_file": (16, 256),
    "line": (8, 64),
    "rewrite": (8, 1024),
}
# The most a cursor fill may grow to before it is cut. A fill starts from a small canvas (SamplerConfig.start, 8) and
# is denoised again twice as large while the model writes to its last slot; past 16 tokens (the model filled 8 and then
# 16 slots without ending) this model mostly repeats or drifts, so code holes stop there, bodies included. Comments and
# unknown languages (prose, whole lines) keep the high end of their clamp.
GROW_LIMIT = {
    "empty_body": 16,
    "new_statement": 16,
    "rest_of_line": 16,
    "expression": 16,
    "arguments": 16,
    "control_header": 16,
    "end_of_file": 16,
    "comment": CLAMP["comment"][1],
    "line": CLAMP["line"][1],
}
# Capacity when the file has too few spans of the same kind to measure.
DEFAULT = {
    "empty_body": 96,
    "new_statement": 24,
    "rest_of_line": 16,
    "expression": 16,
    "arguments": 16,
    "control_header": 12,
    "comment": 24,
    "end_of_file": 96,
    "line": 24,
    "rewrite": 64,
}
# The span kind whose lengths size each situation.
SAMPLE_KIND = {
    "empty_body": "body",
    "new_statement": "statement",
    "rest_of_line": "rest_of_line",
    "expression": "expression",
    "arguments": "arguments",
    "control_header": "control_header",
    "comment": "comment",
    "end_of_file": "body",
}
PERCENTILE = 0.9  # of same-kind span lengths: covers most holes
# Factor on that percentile, per situation: fitted so ~90% of the holes cut from CPython stdlib top-level modules are
# covered, checked on stdlib packages kept apart (infill/sizing.py). Mid-line expressions are shorter than the
# expression spans that size them (those include whole calls and comprehensions), hence < 1.
MARGIN = {
    "empty_body": 1.0,
    "new_statement": 1.15,
    "rest_of_line": 1.05,
    "expression": 0.6,
    "arguments": 1.25,
    "control_header": 0.75,
    "comment": 1.0,
    "end_of_file": 1.0,
    "line": 1.1,
}
# Mid-line holes are sized first from spans whose line starts like the cursor's (same last two words before them:
# `self.assertEqual(`, `return `, `for x in`): calls of the same function take arguments of similar length. Factor
# on the longest such span, fitted like MARGIN.
CONTEXT_MARGIN = {"rest_of_line": 1.5, "expression": 1.0, "arguments": 1.25, "control_header": 1.0}
HEADER_END_SLOTS = 2  # control header spans stop before `:` / `{`; a header still being typed needs them too
MIN_SAMPLES = 3  # fewer same-kind spans than this: use DEFAULT
MAX_SAMPLES = 128  # the nearest spans only: bounds the tokenizing per request, and nearby code is more alike
CONTEXT_SAMPLES = 16  # lines starting like the cursor's, nearest first: their longest sizes the hole, so more of them
#                       (a bigger file) would only raise the capacity and the cost
REWRITE_FACTOR, REWRITE_EXTRA = 1.5, 8  # regenerate-mode rewrite capacity: selection tokens * 1.5 + 8


@dataclass(frozen=True)
class Hole:
    start: int  # char offset where the fill goes
    end: int  # char offset where the replaced text ends (== start at a cursor)
    situation: str  # one of SITUATIONS
    capacity: int  # canvas slots for this hole, in tokens
    indent: str = ""  # indentation of the hole's block: later lines of a fill start with it

    @property
    def limit(self) -> int | None:
        """Tokens a growing fill here is cut at (GROW_LIMIT); None (a rewrite, which never grows): maxTokens."""
        return GROW_LIMIT.get(self.situation)


Counter = Callable[[Sequence[str]], list[int]]


def token_counter(count_tokens: object = None) -> Counter:
    """A batch token counter from a tokenizer (has encode / encode_batch), a `str -> int` callable, or None.

    None estimates 1 token per 3.5 UTF-8 bytes (for callers without a tokenizer; sizes are then approximate).
    """
    if count_tokens is None:
        return lambda texts: [math.ceil(len(_syntax.encode(t)) / 3.5) for t in texts]
    batch = getattr(count_tokens, "encode_batch", None)
    if batch is not None:
        return lambda texts: [len(ids) for ids in batch(list(texts))] if texts else []
    encode = getattr(count_tokens, "encode", None)
    if encode is not None:
        return lambda texts: [len(encode(t)) for t in texts]
    if callable(count_tokens):
        return lambda texts: [int(count_tokens(t)) for t in texts]
    raise TypeError(f"count_tokens must be a tokenizer or a callable, not {type(count_tokens).__name__}")


# -- lines ------------------------------------------------------------------------------------------------------------


def _line_bounds(text: str, offset: int) -> tuple[int, int]:
    """(start, end) of the line holding offset; end excludes the line terminator (LF, CRLF or CR)."""
    nl = text.rfind("\n", 0, offset)
    start = max(nl, text.rfind("\r", nl + 1, offset)) + 1
    end = text.find("\n", offset)
    end = len(text) if end < 0 else end
    cr = text.find("\r", offset, end)
    return start, end if cr < 0 else cr


def _leading_ws(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


_COMMENT_ONLY = re.compile(r"^\s*(#|//|/\*|\*)")


def _prev_code_line(text: str, line_start: int) -> str | None:
    """The nearest line before line_start that is neither blank nor only a comment."""
    for line in reversed(text[:line_start].splitlines()):
        if line.strip() and not _COMMENT_ONLY.match(line):
            return line
    return None


def _next_code_line(text: str, line_end: int) -> str | None:
    """The nearest line after line_end that is neither blank nor only a comment."""
    for line in text[line_end:].splitlines():
        if line.strip() and not _COMMENT_ONLY.match(line):
            return line
    return None


INDENT_SCAN_CHARS = 200_000  # the file's indentation is read from its start: all of a big file at every fill would cost
#                               in proportion to its size


def indent_unit(text: str) -> str:
    """The file's indentation step: a tab, or the most common increase in leading spaces (default 4 spaces)."""
    tabs = spaces = 0
    steps: dict[int, int] = {}
    prev = 0
    for line in text[:INDENT_SCAN_CHARS].splitlines():
        if not line.strip():
            continue
        ws = _leading_ws(line)
        if ws.startswith("\t"):
            tabs += 1
            continue
        spaces += 1 if ws else 0
        if len(ws) > prev:
            steps[len(ws) - prev] = steps.get(len(ws) - prev, 0) + 1
        prev = len(ws)
    if tabs > spaces:
        return "\t"
    return " " * max(steps, key=lambda k: (steps[k], -k)) if steps else "    "


# -- situations -------------------------------------------------------------------------------------------------------

_CONTROL_LINE = re.compile(r"^\s*(?:}\s*)?(?:else\s+)?(?:if|elif|while|for|switch|match|foreach)\b")


_CONTROL_TYPES = {  # keyword -> control node type, where the tree cannot tell (the header is still being typed)
    "python": {"if": "if_statement", "elif": "elif_clause", "while": "while_statement", "for": "for_statement"},
    "rust": {"if": "if_expression", "while": "while_expression", "for": "for_expression"},
}


def _control_type(line_prefix: str, lang: str | None) -> str:
    word = re.sub(r"^\s*(}\s*)?(else\s+)?", "", line_prefix).split(" ")[0].split("(")[0]
    return _CONTROL_TYPES.get(lang or "", {}).get(word, f"{word}_statement" if word else "")


def _empty_body(text: str, line_start: int, line_end: int, lang: str | None) -> str | None:
    """Indentation of the header line when the cursor line opens an empty body (python `:` line, `{` ... `}`)."""
    header = _prev_code_line(text, line_start)
    if header is None:
        return None
    nxt = _next_code_line(text, line_end)
    if lang == "python":
        opens = header.split("#")[0].rstrip().endswith(":")
        closed = nxt is None or len(_leading_ws(nxt)) <= len(_leading_ws(header))
    else:
        opens = header.split("//")[0].rstrip().endswith("{")
        closed = nxt is None or nxt.lstrip().startswith("}")
    return _leading_ws(header) if opens and closed else None


def classify(text: str, offset: int, lang: str | None) -> tuple[str, str, str]:
    """(situation, node hint, indent) of a cursor at offset; the hint narrows the spans that size it."""
    line_start, line_end = _line_bounds(text, offset)
    before, after = text[line_start:offset], text[offset:line_end]
    line_indent = _leading_ws(text[line_start:line_end])
    tree = _syntax.parse(text[:offset] + PLACEHOLDER + text[offset:], lang)
    if tree is None:
        return "line", "", line_indent
    b = len(_syntax.encode(text[:offset]))
    ctx = _syntax.context_at(tree, lang, b, b + len(PLACEHOLDER))
    if ctx.in_comment or ctx.in_docstring:
        return "comment", "", line_indent
    if before.strip():
        stripped_after = after.lstrip(" \t")
        control_line = _CONTROL_LINE.match(before)
        if ctx.control or (control_line and (stripped_after[:1] in (":", ")", "{") or not stripped_after)):
            # the header being typed: `if x and |` at the end of the line is a header too (its `:` / `{` to come)
            return "control_header", ctx.control or _control_type(before, lang), line_indent
        if not after.strip():
            return "rest_of_line", "", line_indent
        prev_ch = before.rstrip()[-1:]
        if ctx.in_arguments or (prev_ch in ("(", ",") and stripped_after[:1] in (")", ",")):
            return "arguments", "", line_indent
        return "expression", "", line_indent
    if after.strip():
        return "new_statement", "", before
    header_indent = _empty_body(text, line_start, line_end, lang)
    if header_indent is not None:
        return "empty_body", ctx.body_owner, header_indent + indent_unit(text)
    if not text[offset:].strip():
        return "end_of_file", "", before
    return "new_statement", "", before


# -- capacity ---------------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile of values (nearest rank, deterministic)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _clamp(situation: str, value: float) -> int:
    lo, hi = CLAMP[situation]
    return int(min(hi, max(lo, math.ceil(value))))


def capacity_from_samples(situation: str, lengths: Sequence[int]) -> int:
    """Capacity from token lengths of same-kind spans: percentile * margin, clamped; DEFAULT without samples."""
    if len(lengths) < MIN_SAMPLES:
        return DEFAULT[situation]
    return _clamp(situation, percentile(lengths, PERCENTILE) * MARGIN[situation])


def _samples(text: str, spans: Sequence[Span], situation: str, hint: str, offset: int) -> list[str]:
    """Texts of the same-kind spans (of the hint's node type when there are enough), the MAX_SAMPLES nearest."""
    kind = SAMPLE_KIND[situation]
    chosen = [s for s in spans if s.kind == kind and not (s.start <= offset < s.end and kind != "body")]
    if hint:
        same = [s for s in chosen if s.node == hint]
        if len(same) >= MIN_SAMPLES:
            chosen = same
    if len(chosen) > MAX_SAMPLES:
        chosen = sorted(chosen, key=lambda s: (abs(s.start - offset), s.start))[:MAX_SAMPLES]
    return [text[s.start : s.end] for s in chosen]


_WORD = re.compile(r"[A-Za-z_]\w*|\S")


KEY_CHARS = 256  # a line key reads at most this much of the line before a span: a minified line has thousands of them


def _line_key(text: str, offset: int) -> tuple[str, ...]:
    """The last two words (identifiers or single symbols) of the text before `offset` on its line."""
    start = max(_line_bounds(text, offset)[0], offset - KEY_CHARS)
    return tuple(_WORD.findall(text, start, offset)[-2:])


def _context_samples(text: str, spans: Sequence[Span], situation: str, offset: int) -> list[str]:
    """Same-kind spans elsewhere whose line starts with the same two words before them as the cursor's line."""
    kind = SAMPLE_KIND[situation]
    key = _line_key(text, offset)
    if not key:
        return []
    near = sorted((s for s in spans if s.kind == kind and s.start != offset), key=lambda s: abs(s.start - offset))
    out = []
    for s in near:
        if _line_key(text, s.start) == key:
            out.append(text[s.start : s.end])
            if len(out) >= CONTEXT_SAMPLES:
                break
    return out


def find_hole(
    text: str,
    offset: int,
    lang: str | None,
    count_tokens: object = None,
    spans: Sequence[Span] | None = None,
) -> Hole:
    """The hole at a cursor: its situation and capacity (spans: syntax_spans(text, lang), if already computed).

    In a big file only a window around the cursor is parsed and sampled (_syntax.window), so the cost per request
    stays flat in the file's size.
    """
    if not 0 <= offset <= len(text):
        raise ValueError(f"offset {offset} outside the text (length {len(text)})")
    if spans is None:
        start, end = _syntax.window(text, offset)
        if (start, end) != (0, len(text)):
            hole = find_hole(text[start:end], offset - start, lang, count_tokens, None)
            return Hole(hole.start + start, hole.end + start, hole.situation, hole.capacity, hole.indent)
    situation, hint, indent = classify(text, offset, lang)
    count = token_counter(count_tokens)
    if situation == "line":
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        capacity = capacity_from_samples("line", count(lines))
    else:
        spans = syntax_spans(text, lang, SAMPLE_KIND[situation]) if spans is None else spans
        similar = _context_samples(text, spans, situation, offset) if situation in CONTEXT_MARGIN else []
        if similar:
            capacity = _clamp(situation, max(count(similar)) * CONTEXT_MARGIN[situation])
        else:
            capacity = capacity_from_samples(situation, count(_samples(text, spans, situation, hint, offset)))
        if situation == "control_header" and not text[offset : _line_bounds(text, offset)[1]].strip():
            capacity += HEADER_END_SLOTS  # a header typed at the end of its line: the fill also ends it (`:`, `) {`)
    return Hole(offset, offset, situation, capacity, indent)


def holes_at(text: str, offsets: Sequence[int], lang: str | None, count_tokens: object = None) -> list[Hole]:
    """Holes at several cursors of one text (sorted by offset, duplicates dropped), spans computed once."""
    if _syntax.is_big(text):  # each hole parses its own window
        return [find_hole(text, o, lang, count_tokens) for o in sorted(set(offsets))]
    spans = syntax_spans(text, lang) if lang else []
    return [find_hole(text, o, lang, count_tokens, spans) for o in sorted(set(offsets))]


def rewrite_hole(start: int, end: int, text: str = "", count_tokens: object = None) -> Hole:
    """The hole of an explicit selection [start, end): capacity = selection tokens * 1.5 + 8 (regenerate mode)."""
    if end < start:
        raise ValueError(f"selection end {end} is before its start {start}")
    n = token_counter(count_tokens)([text[start:end]])[0] if text else 0
    capacity = _clamp("rewrite", n * REWRITE_FACTOR + REWRITE_EXTRA)
    line_start, _ = _line_bounds(text, start) if text else (0, 0)
    before = text[line_start:start]
    # a selection of whole lines starts with its own indentation: that is the block the rewrite's lines belong to
    indent = _leading_ws(before + text[start:end]) if not before.strip() else _leading_ws(before)
    return Hole(start, end, "rewrite", capacity, indent)


# -- explicit placeholders --------------------------------------------------------------------------------------------

_TODO = re.compile(r"\bTODO\b")
_COMMENT_LINE = re.compile(r"^(\s*)(#|//|/\*|--|;)\s*TODO\b.*?(\*/)?\s*$")


def _placeholder_ranges(text: str, lang: str | None) -> list[tuple[int, int]]:
    """Char ranges of explicit placeholders: lone `...`, a function body of only `pass` (or a docstring and `pass`),
    a TODO comment that is all its body holds (or an inline `/* TODO */`). Never a `...` inside a string or comment
    (a doctest's continuation line), a `pass` that is a class's or an `except`'s whole body (an empty exception class,
    an error let through on purpose), nor the body of an `@overload` or `@abstractmethod`, which is meant to be
    empty."""
    ranges: list[tuple[int, int]] = []
    tree = _syntax.parse(text, lang)
    omap = _syntax.OffsetMap(text) if tree is not None else None
    pos = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        stripped = body.strip()
        indent = len(body) - len(body.lstrip())
        if stripped in ("...", "…"):
            at = (pos + indent, pos + indent + len(stripped))
            where = None if tree is None or omap is None or lang is None else _syntax.context_at(
                tree, lang, omap.to_byte(at[0]), omap.to_byte(at[1]))
            if where is None or not (where.in_comment or where.in_docstring or _meant_empty(text, at[0], lang)):
                ranges.append(at)
        elif lang is None and _COMMENT_LINE.match(body):
            ranges.append((pos + indent, pos + len(body.rstrip())))
        pos += len(line)
    if tree is not None and omap is not None:
        comments = _syntax.TABLES[lang].comment
        for start_b, end_b, typ in _syntax.nodes_of_type(tree, comments | {"block"}, nested=True):
            start, end = omap.to_char(start_b), omap.to_char(end_b)
            if typ in comments:
                line_start, line_end = _line_bounds(text, start)
                alone = not text[line_start:start].strip() and not text[end:line_end].strip()
                if _TODO.search(text[start:end]) and (text.startswith("/*", start) and not alone
                                                      or _todo_is_body(tree, start_b, comments, lang)):
                    ranges.append((start, end))
            elif lang == "python":
                stub = _python_stub(text, start, end)
                if (stub is not None and _syntax.context_at(tree, lang, omap.to_byte(stub[0]), omap.to_byte(stub[1]))
                        .body_owner == "function_definition" and not _meant_empty(text, stub[0], lang)):
                    ranges.append(stub)
    return sorted(set(ranges))


_BODIES = frozenset({"block", "statement_block", "compound_statement", "class_body", "declaration_list",
                     "field_declaration_list", "interface_body", "enum_body"})


def _todo_is_body(tree, start_byte: int, comments: frozenset[str], lang: str | None) -> bool:
    """Whether a TODO comment alone on its line is all its body holds (comments aside; in Python, a docstring too):
    code left to write, as `pass` is. A TODO among code is a note about that code, and filling it would replace it."""
    node = tree.root_node.descendant_for_byte_range(start_byte, start_byte + 1)
    while node is not None and node.type not in comments:
        node = node.parent
    if node is None or node.parent is None:
        return False
    parent = node.parent
    if lang == "python":  # a body of only comments is no block to tree-sitter: the comment follows `def f():`
        prev = node.prev_named_sibling
        while prev is not None and prev.type in comments:
            prev = prev.prev_named_sibling
        if (prev is not None and prev.text is not None and prev.text.rstrip().endswith(b":")
                and node.start_point[1] > prev.start_point[1]):
            return True
    if parent.type in _BODIES and parent.parent is not None:
        kids = [k for k in parent.named_children if k.type not in comments]
        docstring = lang == "python" and len(kids) == 1 and kids[0].type == "expression_statement" and \
            kids[0].named_child_count == 1 and kids[0].named_children[0].type == "string"
        return not kids or docstring
    return False


_DEF_LINE = re.compile(r"[ \t]*(?:async[ \t]+)?def[ \t]")
_MEANT_EMPTY = re.compile(r"[ \t]*@(?:[\w.]*\.)?(?:overload|abstractmethod|abstractproperty)\b")


def _meant_empty(text: str, at: int, lang: str | None, reach: int = 200) -> bool:
    """Whether the Python function whose body holds `at` is an `@overload` or an abstract method (a stub by design).
    Reads at most `reach` lines up, one at a time: splitting all the text before `at` costs the file's size."""
    if lang != "python":
        return False
    end = text.rfind("\n", 0, at)
    in_decorators = False  # above the `def` line: its decorators
    for _ in range(reach):
        if end < 0:
            return False
        start = text.rfind("\n", 0, end) + 1
        line = text[start:end]
        if not in_decorators:
            in_decorators = bool(_DEF_LINE.match(line))
        elif line.lstrip().startswith("@"):
            if _MEANT_EMPTY.match(line):
                return True
        else:
            return False
        end = start - 1
    return False


def _python_stub(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The `pass` of a Python block that is only `pass`, or a docstring and `pass` (the usual stub)."""
    block = text[start:end]
    if block.strip() == "pass":
        return start, end
    if not block.rstrip().endswith("pass") or not any(q in block for q in ('"', "'")):
        return None
    line_start = text.rfind("\n", 0, start) + 1
    module = _syntax.python_module(textwrap.dedent(text[line_start:end]))
    if module is None:
        return None
    body = module.body
    if (len(body) == 2 and isinstance(body[1], ast.Pass) and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)
            and not _NO_OP.search(body[0].value.value)):
        at = start + len(block.rstrip()) - len("pass")
        return at, at + len("pass")
    return None


# a docstring saying its function does nothing on purpose: its `pass` is the code (pygls' _apply_none_change, "Currently
# does nothing, provided for consistency.", was filled with code that wiped the document)
_NO_OP = re.compile(r"\b(?:does|do|doing) nothing\b|\bno[- ]?op\b|\bintentionally (?:empty|blank|left)\b|"
                    r"\bnothing to do\b|\bfor (?:consistency|compatibility)\b", re.IGNORECASE)


def placeholder_ranges(text: str, lang: str | None, range: tuple[int, int] | None = None  # noqa: A002 (the LSP name)
                       ) -> list[tuple[int, int]]:
    """Char ranges of the placeholders a user left (within range, if given); see _placeholder_ranges."""
    return [(start, end) for start, end in _placeholder_ranges(text, lang)
            if range is None or range[0] <= start and end <= range[1]]


def placeholder_hole(text: str, start: int, end: int, lang: str | None, count_tokens: object = None) -> Hole:
    """The hole of the placeholder text[start:end]: sized as a cursor there with the placeholder gone; replaces it."""
    hole = find_hole(text[:start] + text[end:], start, lang, count_tokens)
    return Hole(start, end, hole.situation, hole.capacity, hole.indent)


def find_placeholders(
    text: str,
    lang: str | None,
    range: tuple[int, int] | None = None,  # noqa: A002 (the LSP name)
    count_tokens: object = None,
) -> list[Hole]:
    """Holes for the placeholders a user left (within range, if given): each replaces its placeholder text."""
    return [placeholder_hole(text, start, end, lang, count_tokens)
            for start, end in placeholder_ranges(text, lang, range)]
