"""Repository context: chunks of other files laid out as token ids placed before the SPM context.

Layout, per chunk: `<|file_sep|>` + `path\\n` + text (ending in a newline), chunks in the order given reversed, so the
most relevant one sits right before `<|fim_suffix|>` (nearest the code, as RepoCoder and CrossCodeEval place theirs).
The whole part comes before the SPM part and depends only on the chunks chosen, never on the cursor's own line: the
backend's prefix cache then keeps it (and the suffix after it) while the user types.

The pure pieces the server's selection and evaluation share also live here: identifiers of a text, the query lines
around a cursor, line windows, the near-duplicate measure (llama.vim's), and tree-sitter definitions (signatures).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from infill import _syntax
from infill.canvas import TokenizerLike, lf

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MIN_IDENT = 2  # shorter names (i, x, f) match everything: no signal for retrieval
# words of the languages we parse that say nothing about which file a snippet comes from
KEYWORDS = frozenset("""
and as assert async await break case catch class const continue def default defer del do elif else enum except export
extends false final finally fn for from func function go if impl implements import in interface is lambda let match
mod mut new nil none not null or package pass pub raise return self static struct super switch this throw throws
true try type typeof use var void while with yield int str bool float char long short unsigned string
""".split())


@dataclass(frozen=True)
class Chunk:
    """A piece of another file offered as context."""

    path: str  # workspace-relative path, shown to the model on the chunk's first line
    text: str  # whole lines
    kind: str = "snippet"  # "definition", "snippet" (retrieved), "recent" (open / recently edited documents)
    line: int = 0  # first line of text in its file (0-based): ordering ties and dedupe
    score: float = 0.0  # the retriever's score (for reports; the order given is the priority)


def chunk_ids(chunk: Chunk, tok: TokenizerLike) -> list[int]:
    """`<|file_sep|>` path newline text: one chunk, tokenized on its own (so a cache of chunk ids stays exact)."""
    text = lf(chunk.text)  # as the model reads every text (infill.canvas.lf)
    text = text if text.endswith("\n") else text + "\n"
    return [tok.special.file_sep, *tok.encode(f"{chunk.path}\n{text}")]  # type: ignore[attr-defined]


def repo_context(chunks: Sequence[Chunk], tok: TokenizerLike, budget: int,
                 encoded: Sequence[list[int]] | None = None) -> list[int]:
    """Context ids for chunks given best first, within budget tokens (0: none).

    Chunks are taken greedily in the given order; one that does not fit is skipped (a smaller later one may). The
    taken chunks are emitted in reverse, the best last, next to the SPM part. `encoded` may carry chunk_ids of the
    chunks (a caller's cache). Deterministic: serving, evaluation and training share it.
    """
    if budget <= 0 or not chunks:
        return []
    ids = list(encoded) if encoded is not None else [chunk_ids(c, tok) for c in chunks]
    taken: list[list[int]] = []
    used = 0
    for c_ids in ids:
        if used + len(c_ids) <= budget:
            taken.append(c_ids)
            used += len(c_ids)
    return [t for c_ids in reversed(taken) for t in c_ids]


# -- lexical pieces ---------------------------------------------------------------------------------------------------


def identifiers(text: str) -> list[str]:
    """The identifiers of text in order (keywords and one-letter names left out)."""
    return [w for w in _IDENT.findall(text) if len(w) >= MIN_IDENT and w not in KEYWORDS]


def similarity(a: Iterable[str], b: Iterable[str]) -> float:
    """llama.vim's chunk similarity over word sets: 2 |common| / (|a| + |b|); 0 for two empty sets."""
    sa, sb = set(a), set(b)
    if not sa and not sb:
        return 0.0
    return 2 * len(sa & sb) / (len(sa) + len(sb))


def _line_bounds(text: str, offset: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return start, len(text) if end < 0 else end


_WORD_CHARS = string.ascii_letters + string.digits + "_"
NEAR_CHARS = 20_000  # the lines near a cursor are read within this many chars of it, whatever the file's size


def query_text(text: str, offset: int, before: int = 10, after: int = 3) -> str:
    """The lines around a cursor without the cursor's own line: `before` non-blank lines above it and `after` below.

    The cursor line is left out on purpose: typing changes it at every keystroke, and a query that changes picks
    other chunks, which changes the context before the SPM part and throws the whole prefix cache away.
    """
    start, end = _line_bounds(text, offset)
    up, down = text[max(0, start - NEAR_CHARS) : start], text[end + 1 : end + 1 + NEAR_CHARS]
    above = [ln for ln in up.splitlines() if ln.strip()][-before:] if before > 0 else []
    below = [ln for ln in down.splitlines() if ln.strip()][:after] if after > 0 else []
    return "\n".join(above + below)


def names_near(text: str, offset: int, lines_before: int = 5, lines_after: int = 3) -> list[str]:
    """Names used near a cursor, nearest first: the complete words of its line before it (the word being typed is
    left out: it changes at every keystroke), then those of the lines above and below. Each name once."""
    start, end = _line_bounds(text, offset)
    line_before = text[start:offset]
    # the word being typed, by rstrip: a `[A-Za-z0-9_]+$` search tried every start of a long word earlier on the line
    # (a 300k-char string literal: minutes)
    words = identifiers(line_before.rstrip(_WORD_CHARS))[::-1]
    above = text[max(0, start - NEAR_CHARS) : start].splitlines()[-lines_before:] if lines_before > 0 else []
    below = text[end + 1 : end + 1 + NEAR_CHARS].splitlines()[:lines_after] if lines_after > 0 else []
    for ln in reversed(above):
        words += identifiers(ln)[::-1]
    for ln in below:
        words += identifiers(ln)
    return list(dict.fromkeys(words))


def line_windows(text: str, size: int, stride: int) -> list[tuple[int, str]]:
    """(first line, text) of windows of `size` lines every `stride` lines; windows with no identifier are left out."""
    lines = text.splitlines(keepends=True)
    out = []
    for i in range(0, max(1, len(lines) - size + stride), stride):
        w = "".join(lines[i : i + size])
        if identifiers(w):
            out.append((i, w))
    return out


# -- definitions ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Definition:
    name: str
    kind: str  # "function", "class" (classes, structs, interfaces, traits, impls), "type"
    line: int  # 0-based line of its header
    signature: str  # the header up to its body; a class also lists its members' signatures


# node type -> kind, per language family; the body field ends the signature
# `const area = (w, h) => ...`, `var merge = function merge(...)`: a variable whose value is a function or class
_BOUND_VALUES = {"function_expression": "function", "function": "function", "arrow_function": "function",
                 "generator_function": "function", "class": "class"}
_MEMBER_LINES = 12  # a class's signature lists at most this many member headers: enough to call it, not its code
_SIGNATURE_CHARS = 400  # one header longer than this is cut (decorated, many-parameter headers)
_MEMBER_CHARS = 160  # one member's line
_FIELD_NODES = frozenset(("expression_statement", "field_declaration", "public_field_definition",
                          "field_declaration_list", "property_signature", "enum_variant"))


def _header(data: bytes, node) -> str:
    body = node.child_by_field_name("body")
    end = body.start_byte if body is not None else node.end_byte
    head = data[node.start_byte : end].decode("utf-8", "replace").rstrip()
    return head[:_SIGNATURE_CHARS]


def _bound(data: bytes, decl) -> list[Definition]:
    """The functions and classes a JavaScript / TypeScript variable declaration binds, with its header."""
    out = []
    for d in decl.named_children:
        value = d.child_by_field_name("value") if d.type == "variable_declarator" else None
        name = d.child_by_field_name("name") if value is not None else None
        if value is None or name is None or name.type != "identifier" or value.type not in _BOUND_VALUES:
            continue
        body = value.child_by_field_name("body")
        end = body.start_byte if body is not None else value.end_byte
        line_start = data.rfind(b"\n", 0, decl.start_byte) + 1  # from the line's start: `export const f = ...`
        head = data[line_start:end].decode("utf-8", "replace").rstrip().removesuffix("=>").rstrip()
        out.append(Definition(name.text.decode("utf-8", "replace"), _BOUND_VALUES[value.type], decl.start_point[0],
                              head[:_SIGNATURE_CHARS]))
    return out


def definitions(text: str, lang: str | None) -> list[Definition]:
    """Top-level and class-level definitions of a file with their signatures; [] for unknown languages."""
    tree = _syntax.parse(text, lang)
    if tree is None:
        return []
    data = _syntax.encode(text)
    out: list[Definition] = []

    def visit(node, depth: int) -> None:
        for child in node.named_children:
            if child.type in ("lexical_declaration", "variable_declaration"):
                out.extend(_bound(data, child))
                continue
            kind = _syntax.DEF_NODES.get(child.type)
            if kind is None:
                if child.type in ("decorated_definition", "export_statement", "template_declaration") or \
                        child.type.endswith(("_body", "declaration_list", "block")) and depth < 2:
                    visit(child, depth)
                continue
            name = _syntax.definition_name(child)
            if not name:
                continue
            indent = " " * child.start_point[1]
            sig = indent + _header(data, child)
            if kind == "class":
                members = []
                body = child.child_by_field_name("body")
                if body is not None:
                    for m in body.named_children:
                        target = m
                        if m.type == "decorated_definition":
                            target = m.child_by_field_name("definition") or m
                        if _syntax.DEF_NODES.get(target.type) == "function":  # a member's header on one line
                            head = " ".join(_header(data, target).split())
                        elif m.type in _FIELD_NODES and not (m.named_children and m.named_children[0].type ==
                                                             "string"):  # fields, not docstrings
                            head = data[m.start_byte : m.end_byte].decode("utf-8", "replace").split("\n")[0].strip()
                        else:
                            continue
                        members.append(" " * target.start_point[1] + head[:_MEMBER_CHARS])
                if members:
                    sig += "\n" + "\n".join(members[:_MEMBER_LINES])
            out.append(Definition(name, kind, child.start_point[0], sig))
            if depth < 1:
                visit(child, depth + 1)  # methods of a class, functions of an impl block

    visit(tree.root_node, 0)
    return out
