"""An open text document: LSP (UTF-16) positions <-> str offsets <-> UTF-8 bytes, and an incrementally parsed tree."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Protocol

import tree_sitter

from infill import _syntax
from infill.languages import language_for

_EOL = re.compile(r"\r\n|\r|\n")  # LSP: "\n", "\r\n" and "\r" all end a line


class PositionError(ValueError):
    """A position or offset outside the document (the server answers it with an LSP error)."""


@dataclass(frozen=True)
class Position:
    line: int  # zero-based line
    character: int  # zero-based UTF-16 code unit offset in the line (LSP's default position encoding)


class PositionLike(Protocol):
    line: int
    character: int


class RangeLike(Protocol):
    start: PositionLike
    end: PositionLike


def _utf16_len(s: str) -> int:
    """UTF-16 code units of s (astral chars count 2; lone surrogates 1)."""
    return len(s) + sum(1 for ch in s if ord(ch) > 0xFFFF) if not s.isascii() else len(s)


class Document:
    """Text, version and language of one open document, with exact position conversion and a private parse tree."""

    def __init__(self, uri: str, text: str, version: int | None = None, language: str | None = None) -> None:
        self.uri = uri
        self.version = version
        self.language = language_for(language) or language_for(uri)  # our name, or None (line-based holes)
        self._set_text(text)
        # parsed when first asked for, then edited and reparsed incrementally when asked again: requests parse their
        # own window of the text (infill._syntax.window), and a reparse at every keystroke grows with the file
        self._tree: tree_sitter.Tree | None = None
        self._stale = True

    # -- text and lines -------------------------------------------------------------------------------------------

    def _set_text(self, text: str) -> None:
        self.text = text
        self._bytes: bytes | None = None
        starts, ends = [0], []
        for m in _EOL.finditer(text):
            ends.append(m.start())
            starts.append(m.end())
        ends.append(len(text))
        self._line_starts = starts  # char offset where each line starts
        self._line_ends = ends  # char offset of each line's terminator (or the end of the text)

    def _splice(self, start: int, end: int, new: str) -> None:
        """Replace [start, end) with `new`, rescanning only the lines the edit touches for line breaks (rebuilding the
        whole index would cost in proportion to the file at every keystroke). The rescan starts a char before the edit
        and ends a char after it, so a CR and an LF the edit brings together (or apart) are seen."""
        old, starts, ends = self.text, self._line_starts, self._line_ends
        text = old[:start] + new + old[end:]
        delta = len(new) - (end - start)
        a = bisect.bisect_right(starts, max(0, start - 1)) - 1  # the first line touched
        b = bisect.bisect_right(starts, min(len(old), end + 1)) - 1  # the last line touched (old numbering)
        last = b + 1 >= len(starts)
        hi = len(text) if last else starts[b + 1] + delta  # the start of the line after b (after its terminator)
        breaks = list(_EOL.finditer(text, starts[a], hi))
        self.text, self._bytes = text, None
        self._line_starts = starts[: a + 1] + [m.end() for m in breaks] + [x + delta for x in starts[b + 2 :]]
        self._line_ends = (ends[:a] + [m.start() for m in breaks]
                           + ([len(text)] if last else [x + delta for x in ends[b + 1 :]]))

    @property
    def line_count(self) -> int:
        return len(self._line_starts)

    def line_text(self, line: int) -> str:
        """Text of line, without its terminator."""
        self._check_line(line)
        return self.text[self._line_starts[line] : self._line_ends[line]]

    def _check_line(self, line: int) -> None:
        if not 0 <= line < len(self._line_starts):
            raise PositionError(f"line {line} is outside the document ({len(self._line_starts)} lines)")

    # -- positions ------------------------------------------------------------------------------------------------

    def offset_at(self, position: PositionLike) -> int:
        """Char offset of an LSP position.

        A character past the end of its line means the line's end (as the LSP spec says); a line outside the
        document, a negative value, or a character between the two halves of a surrogate pair raise PositionError.
        """
        line, character = position.line, position.character
        if character < 0:
            raise PositionError(f"negative character {character} at line {line}")
        self._check_line(line)
        start, end = self._line_starts[line], self._line_ends[line]
        if self.text.isascii() or self.text[start:end].isascii():
            return min(start + character, end)
        units = 0
        for i in range(start, end):
            if units >= character:
                if units > character:
                    raise PositionError(f"position {line}:{character} splits a surrogate pair")
                return i
            units += 2 if ord(self.text[i]) > 0xFFFF else 1
        if units > character:
            raise PositionError(f"position {line}:{character} splits a surrogate pair")
        return end

    def position_at(self, offset: int) -> Position:
        """LSP position of a char offset (0 <= offset <= len(text)); inside a CRLF it is the end of that line."""
        if not 0 <= offset <= len(self.text):
            raise PositionError(f"offset {offset} is outside the document (length {len(self.text)})")
        line = bisect.bisect_right(self._line_starts, offset) - 1
        start = self._line_starts[line]
        return Position(line, _utf16_len(self.text[start : min(offset, self._line_ends[line])]))

    def range_offsets(self, rng: RangeLike) -> tuple[int, int]:
        """(start, end) char offsets of an LSP range; end before start raises PositionError."""
        start, end = self.offset_at(rng.start), self.offset_at(rng.end)
        if end < start:
            raise PositionError(f"range end {end} is before its start {start}")
        return start, end

    # -- bytes (tree-sitter works in UTF-8 bytes) -----------------------------------------------------------------

    @property
    def data(self) -> bytes:
        if self._bytes is None:
            self._bytes = _syntax.encode(self.text)
        return self._bytes

    def byte_at(self, offset: int) -> int:
        """UTF-8 byte offset of a char offset."""
        if not 0 <= offset <= len(self.text):
            raise PositionError(f"offset {offset} is outside the document (length {len(self.text)})")
        return offset if self.text.isascii() else len(_syntax.encode(self.text[:offset]))

    def offset_at_byte(self, byte: int) -> int:
        """Char offset of a UTF-8 byte offset (which must fall on a char boundary)."""
        data = self.data
        if not 0 <= byte <= len(data):
            raise PositionError(f"byte {byte} is outside the document ({len(data)} bytes)")
        try:
            return len(data[:byte].decode("utf-8", "surrogatepass"))
        except UnicodeDecodeError as exc:
            raise PositionError(f"byte {byte} is inside a character") from exc

    def _point(self, byte: int) -> tuple[int, int]:
        """tree-sitter point of a byte offset: rows count "\\n" only, columns are bytes."""
        data = self.data
        row = data.count(b"\n", 0, byte)
        return row, byte - (data.rfind(b"\n", 0, byte) + 1)

    # -- edits ----------------------------------------------------------------------------------------------------

    def apply_change(self, rng: RangeLike | None, text: str, version: int | None = None) -> None:
        """Apply one didChange content change (rng None: full replace); the tree, if parsed, is told of the edit and
        reparsed incrementally when next asked for (`tree`)."""
        if rng is None:
            self._set_text(text)
            self._tree = None
        else:
            start, end = self.range_offsets(rng)
            if self._tree is None:
                self._splice(start, end, text)
            else:  # the tree learns of the edit now (cheap), and is reparsed when next asked for
                start_b, old_end_b = self.byte_at(start), self.byte_at(end)
                start_pt, old_end_pt = self._point(start_b), self._point(old_end_b)
                self._splice(start, end, text)
                new_end_b = start_b + len(_syntax.encode(text))
                self._tree.edit(
                    start_byte=start_b,
                    old_end_byte=old_end_b,
                    new_end_byte=new_end_b,
                    start_point=start_pt,
                    old_end_point=old_end_pt,
                    new_end_point=self._point(new_end_b),
                )
        self._stale = True
        if version is not None:
            self.version = version

    # -- syntax (plain data only) ---------------------------------------------------------------------------------

    def tree(self) -> tree_sitter.Tree | None:
        """The current parse tree (None for line-based languages), reparsed incrementally after edits."""
        if self._stale:
            self._tree = _syntax.parse(self.text, self.language, self._tree)
            self._stale = False
        return self._tree

    def tree_sexp(self) -> str:
        """S-expression of the current tree ("" for line-based languages): for tests and debugging."""
        tree = self.tree()
        return str(tree.root_node) if tree is not None else ""

    def error_count(self) -> int:
        """ERROR + MISSING nodes in the current tree."""
        return _syntax.error_count(self.tree())
