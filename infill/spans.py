"""Syntax spans of a file by situation class: the holes training cuts out and serving sizes capacities from."""

from __future__ import annotations

import bisect
import zlib
from dataclasses import dataclass

from infill import _syntax

KINDS = ("body", "statement", "rest_of_line", "expression", "arguments", "control_header", "comment")

# rest_of_line cut points: the token *after* one of these starts the span.
_ASSIGN = frozenset("= += -= *= /= //= %= **= >>= <<= &= |= ^= := @= ||= &&= ??= <- =>".split())
_OPEN = frozenset(("(", "[", "{"))
_LEAD_KEYWORDS = frozenset("return yield raise throw await defer go assert del import from let const var".split())


@dataclass(frozen=True, order=True)
class Span:
    start: int  # char offset into the text (inclusive)
    end: int  # char offset into the text (exclusive); start < end always
    kind: str  # one of KINDS
    node: str = ""  # grammar node type it came from (bodies, headers: the owner, e.g. function_definition)


def syntax_spans(text: str, lang: str, kind: str | None = None) -> list[Span]:
    """All spans of text by situation class (or those of one kind), sorted by (start, end, kind); [] for unknown
    languages. One parse."""
    tree = _syntax.parse(text, lang)
    if tree is None:
        return []
    raw = _collect(tree, _syntax.encode(text), _syntax.TABLES[lang], kind)
    omap = _syntax.OffsetMap(text)
    out = set()
    for start_b, end_b, kind_, node in raw:
        if kind is not None and kind_ != kind:
            continue
        start, end = _trim(text, omap.to_char(start_b), omap.to_char(end_b))
        if start < end:
            out.add((start, end, kind_, node))
    return [Span(*t) for t in sorted(out)]  # sorting plain tuples: dataclass comparisons are slow


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _collect(tree, data: bytes, t: _syntax.Tables, kind: str | None = None) -> list[tuple[int, int, str, str]]:
    """(start_byte, end_byte, kind, node type) for every span (rest_of_line ones only when `kind` asks for them or
    for all); one pre-order walk over the tree."""
    out: list[tuple[int, int, str, str]] = []
    leaves: list[tuple[int, int, str]] = []  # every non-comment leaf, in order: rest_of_line cut candidates
    statements: list[tuple[int, int]] = []
    headers: list[tuple[int, int]] = []
    cursor = tree.walk()
    while True:
        node = cursor.node
        typ = node.type
        descend = True
        if typ in t.comment:
            rng = _comment_range(data, node.start_byte, node.end_byte)
            if rng:
                out.append((*rng, "comment", typ))
            descend = False
        elif node.child_count == 0:
            if node.end_byte > node.start_byte:
                leaves.append((node.start_byte, node.end_byte, typ))
        elif typ == "ERROR":
            pass
        else:
            if typ in t.body:
                _body(node, typ, out)
            if typ in t.control:
                rng = _syntax.header_range(node)
                if rng:
                    out.append((*rng, "control_header", typ))
                    headers.append(rng)
            if typ in t.statement and not _in_headers(node.start_byte, headers):
                doc = _docstring(node)
                if doc is not None:
                    out.append((*doc, "comment", "docstring"))
                elif not (t.block_like and node.named_child_count and node.named_children[0].type in t.block_like):
                    out.append((node.start_byte, node.end_byte, "statement", typ))
                    statements.append((node.start_byte, node.end_byte))
            if typ in t.expression:
                out.append((node.start_byte, node.end_byte, "expression", typ))
            if typ in t.arguments or (
                typ == "token_tree" and node.parent is not None and node.parent.type == "macro_invocation"
            ):
                start, end = _syntax.inner_range(node, "(", ")")
                out.append((start, end, "arguments", typ))
        if descend and cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                if kind in (None, "rest_of_line"):
                    out.extend(_rest_of_line(data, statements, leaves))
                return out


def _in_headers(pos: int, headers: list[tuple[int, int]]) -> bool:
    return any(s <= pos < e for s, e in headers[-4:])


def _body(node, typ: str, out: list) -> None:
    parent = node.parent
    owner = parent.type if parent is not None else typ
    if typ == "block" and node.children and node.children[0].type != "{":  # python: the block is the body
        out.append((node.start_byte, node.end_byte, "body", owner))
        return
    start, end = _syntax.inner_range(node, "{", "}")
    out.append((start, end, "body", owner))


def _docstring(node) -> tuple[int, int] | None:
    """Content range of a python docstring statement (first statement of a module/class/def body), else None."""
    if node.type != "expression_statement" or node.named_child_count != 1:
        return None
    string = node.named_children[0]
    if string.type != "string":
        return None
    parent = node.parent
    if parent is None or parent.type not in ("block", "module"):
        return None
    first = next((k for k in parent.named_children if k.type != "comment"), None)
    if first is None or first.id != node.id:
        return None
    kids = string.children
    if len(kids) < 2 or kids[0].type != "string_start" or kids[-1].type != "string_end":
        return None
    return kids[0].end_byte, kids[-1].start_byte


def _comment_range(data: bytes, start: int, end: int) -> tuple[int, int] | None:
    """Content of a comment: without `#`, `//`, `///`, `//!`, `/* */` markers."""
    text = data[start:end]
    if text.startswith(b"/*"):
        s, e = 2, len(text) - 2 if text.endswith(b"*/") and len(text) >= 4 else len(text)
        while s < e and text[s : s + 1] in (b"*", b"!"):
            s += 1
    elif text.startswith(b"//"):
        s, e = 2, len(text)
        while s < e and text[s : s + 1] in (b"/", b"!"):
            s += 1
    elif text.startswith(b"#"):
        s, e = 1, len(text)
        while s < e and text[s : s + 1] == b"!":
            s += 1
    else:
        s, e = 0, len(text)
    while s < e and text[s : s + 1].isspace():
        s += 1
    while e > s and text[e - 1 : e].isspace():
        e -= 1
    return (start + s, start + e) if s < e else None


def _rest_of_line(data: bytes, statements: list[tuple[int, int]], leaves: list[tuple[int, int, str]]) -> list:
    """Several deterministic cut points per statement's first line, each giving a span to the end of that line."""
    out = []
    starts = [lf[0] for lf in leaves]
    for s_start, s_end in statements:
        nl = data.find(b"\n", s_start)
        line_end = min(s_end, len(data) if nl < 0 else nl)  # the statement's part of its first line
        i = bisect.bisect_left(starts, s_start)
        j = bisect.bisect_left(starts, line_end)
        line = leaves[i:j]
        if len(line) < 2:
            continue
        cuts = []
        for k in range(len(line) - 1):
            typ = line[k][2]
            if typ in _ASSIGN or typ in _OPEN or (k == 0 and typ in _LEAD_KEYWORDS):
                cuts.append(k + 1)
        cuts = cuts[:2]  # the first assignment / bracket / keyword of the line
        seed = zlib.crc32(data[s_start:line_end])
        cuts.append(1 + seed % (len(line) - 1))  # and one pseudo-random token boundary
        for k in sorted(set(cuts)):
            out.append((line[k][0], line_end, "rest_of_line", "rest_of_line"))
    return out
