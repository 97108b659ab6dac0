import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infill.document import Document, Position, PositionError

# Text that exercises every conversion: astral chars (surrogate pairs in UTF-16), CRLF, lone CR, tabs, lone surrogates.
ALPHABET = st.one_of(
    st.sampled_from(["a", "é", "€", "😀", "𝄞", "\t", " ", "\n", "\r", "\r\n", "\ud800", "\udfff", "x"]),
    st.characters(codec="utf-8"),
)
TEXT = st.lists(ALPHABET, max_size=40).map("".join)


def reference_position(text, offset):
    """Independent LSP position: lines end at \\r\\n | \\r | \\n, characters count UTF-16 code units."""
    starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]
    line = max(i for i, s in enumerate(starts) if s <= offset)
    return Position(line, len(text[starts[line] : offset].encode("utf-16-le", "surrogatepass")) // 2)


def inside_crlf(text, offset):
    return 0 < offset < len(text) and text[offset - 1] == "\r" and text[offset] == "\n"


@settings(max_examples=150, deadline=None)
@given(TEXT)
def test_positions_round_trip(text):
    doc = Document("file:///t.txt", text, 1)
    for offset in range(len(text) + 1):
        pos = doc.position_at(offset)
        if inside_crlf(text, offset):
            assert doc.offset_at(pos) == offset - 1
            continue
        assert pos == reference_position(text, offset)
        assert doc.offset_at(pos) == offset
        b = doc.byte_at(offset)
        assert b == len(text[:offset].encode("utf-8", "surrogatepass"))
        assert doc.offset_at_byte(b) == offset


@settings(max_examples=60, deadline=None)
@given(TEXT, st.integers(0, 50), st.integers(0, 200))
def test_offset_at_clamps_character_and_rejects_lines(text, line, character):
    doc = Document("file:///t.txt", text, 1)
    if line >= doc.line_count:
        with pytest.raises(PositionError):
            doc.offset_at(Position(line, character))
        return
    try:
        offset = doc.offset_at(Position(line, character))
    except PositionError:  # only a character inside a surrogate pair may be refused
        units = 0
        for ch in doc.line_text(line):
            if units == character - 1 and ord(ch) > 0xFFFF:
                return
            units += 2 if ord(ch) > 0xFFFF else 1
        raise
    assert doc.position_at(offset).line == line
    assert doc.position_at(offset).character <= character


def test_fixed_conversions():
    doc = Document("file:///a.py", 'x = "😀"\r\nif x:\r\ty\n', 1)
    assert [doc.line_text(i) for i in range(doc.line_count)] == ['x = "😀"', "if x:", "\ty", ""]
    assert doc.offset_at(Position(0, 7)) == 6  # after the emoji: 2 UTF-16 units, 1 str char
    assert doc.offset_at(Position(0, 99)) == 7  # past the end of the line: the line's end
    assert doc.offset_at(Position(2, 1)) == 16  # a tab is one unit
    assert doc.position_at(8) == Position(0, 8)  # between \r and \n: end of line 0
    assert doc.byte_at(7) == 10
    with pytest.raises(PositionError, match="surrogate"):
        doc.offset_at(Position(0, 6))
    with pytest.raises(PositionError):
        doc.offset_at(Position(4, 0))
    with pytest.raises(PositionError):
        doc.position_at(len(doc.text) + 1)
    with pytest.raises(PositionError):
        doc.offset_at(Position(0, -1))


def test_language_from_id_or_uri():
    assert Document("file:///a.rs", "", 1).language == "rust"
    assert Document("file:///a", "", 1, "typescriptreact").language == "tsx"
    doc = Document("file:///a.txt", "hello", 1, "plaintext")
    assert doc.language is None and doc.tree_sexp() == "" and doc.error_count() == 0


PY = '''import os


def f(a, b):
    """Doc 😀."""
    if a > b:
        return [x * 2 for x in range(a)]
    return os.path.join("é", str(b))


class K:
    def g(self):
        pass
'''
C = "int f(int a) {\n  if (a > 1) { return g(a); }\n  for (int i = 0; i < a; i++) { s += h(i); }\n  return s;\n}\n"
INSERTS = st.sampled_from(["", "x", " ", "\n", "😀", "(", ")", ":", "\n    ", "if x:\n", "{", "}", "é;", "\r\n", "'''"])


@pytest.mark.parametrize(("uri", "source"), [("file:///a.py", PY), ("file:///a.c", C)])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_incremental_parse_equals_fresh_parse(uri, source, data):
    doc = Document(uri, source, 0)
    doc.tree()  # parsed now: every edit below reaches a tree, reparsed incrementally when asked for
    for version in range(1, 6):
        n = len(doc.text)
        start = data.draw(st.integers(0, n))
        end = data.draw(st.integers(start, min(n, start + 12)))
        while inside_crlf(doc.text, start):
            start -= 1
        while inside_crlf(doc.text, end):
            end += 1
        rng = type("R", (), {"start": doc.position_at(start), "end": doc.position_at(end)})()
        new = data.draw(INSERTS)
        expected = doc.text[:start] + new + doc.text[end:]
        doc.apply_change(rng, new, version)
        assert doc.text == expected and doc.version == version
        fresh = Document(uri, expected, version)
        if fresh.error_count() == 0:
            assert doc.tree_sexp() == fresh.tree_sexp()
        else:  # tree-sitter's error recovery may build another (equally valid) broken tree when it reuses old nodes
            assert doc.error_count() > 0


def test_full_replace():
    doc = Document("file:///a.py", "x = (", 1)
    assert doc.error_count() > 0
    doc.apply_change(None, "x = 1\n", 2)
    assert doc.error_count() == 0 and doc.version == 2 and doc.text == "x = 1\n"
    assert doc.tree_sexp().startswith("(module (expression_statement (assignment")


BREAKS = st.text(alphabet=["a", "b", "\r", "\n", "😀", " "], max_size=12)


@settings(max_examples=200, deadline=None)
@given(source=BREAKS, edits=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 6), BREAKS), max_size=8))
def test_the_line_index_after_edits_is_the_one_a_fresh_document_builds(source, edits):
    """Only the lines an edit touches are rescanned: a CR and an LF it brings together (or parts) included."""
    doc = Document("file:///notes.txt", source, 0)
    for version, (at, length, new) in enumerate(edits, 1):
        start = min(at, len(doc.text))
        end = min(start + length, len(doc.text))
        while inside_crlf(doc.text, start):
            start -= 1
        while inside_crlf(doc.text, end):
            end += 1
        rng = type("R", (), {"start": doc.position_at(start), "end": doc.position_at(end)})()
        doc.apply_change(rng, new, version)
        fresh = Document("file:///notes.txt", doc.text, version)
        assert doc.line_count == fresh.line_count
        lines = [fresh.line_text(i) for i in range(fresh.line_count)]
        assert [doc.line_text(i) for i in range(doc.line_count)] == lines
        assert all(doc.position_at(o) == fresh.position_at(o) for o in range(len(doc.text) + 1))


def test_parse_reuses_a_text_s_tree_and_each_caller_owns_its_copy(monkeypatch):
    """A request parses one window several times: the tree is kept by text, and a caller that edits its tree (as
    Document does, to reparse incrementally) does not change what the next caller of the same text gets."""
    from infill import _syntax

    text = "def f(x):\n    return x + 1\n"
    first = _syntax.parse(text, "python")
    assert first is not None
    sexp = str(first.root_node)
    first.edit(start_byte=0, old_end_byte=3, new_end_byte=0, start_point=(0, 0), old_end_point=(0, 3),
               new_end_point=(0, 0))
    again = _syntax.parse(text, "python")
    assert again is not None and again is not first and str(again.root_node) == sexp
    assert not again.root_node.has_changes
    # bounded by the text it holds: past the bound the oldest text is parsed afresh
    monkeypatch.setattr(_syntax, "PARSE_CACHE_CHARS", 3 * len(text))
    calls = []
    parser = _syntax.parser_for("python")
    monkeypatch.setattr(_syntax, "parser_for", lambda lang: _Counting(parser, calls))
    others = [text + f"y{i} = {i}\n" for i in range(4)]
    for other in others:
        _syntax.parse(other, "python")
    _syntax.parse(others[-1], "python")
    assert len(calls) == 4  # the newest is kept
    _syntax.parse(others[0], "python")
    assert len(calls) == 5  # the oldest was dropped


class _Counting:
    def __init__(self, parser, calls: list) -> None:
        self.parser, self.calls = parser, calls

    def parse(self, data: bytes, *old):
        self.calls.append(data)
        return self.parser.parse(data, *old)
