import pytest

from infill.canvas import (
    Canvas,
    build_canvas,
    canvas_to_text,
    heal_text,
    newline_of,
    render_partial,
    spm_context,
    with_newline,
)
from infill.holes import Hole, find_placeholders, rewrite_hole

SRC = "def a(x):\n    ...\n\n\ndef b(y):\n    ...\n\n\ndef c(z):\n    return z\n"


def test_single_hole_fill(tok):
    text = "x = 1\ny = \nz = 3\n"
    hole = Hole(10, 10, "rest_of_line", 7)
    cv = build_canvas(text, [hole], tok, 256)
    sp = tok.special
    assert cv.context_ids == spm_context(text[:10], text[10:], tok, 256)
    assert cv.canvas_ids == [sp.mask] * 7 and cv.fixed == [False] * 7 and cv.hole_slices == [(0, 7)]
    assert cv.mode == "fill" and cv.original_ids == [[]]


def test_multi_hole_canvas_keeps_fixed_tokens_in_place(tok):
    holes = find_placeholders(SRC, "python", count_tokens=tok)
    assert len(holes) == 2
    cv = build_canvas(SRC, holes, tok, 512)
    sp = tok.special
    (s0, e0), (s1, e1) = cv.hole_slices
    assert s0 == 0 and e0 == holes[0].capacity and e1 - s1 == holes[1].capacity
    between = tok.encode(SRC[holes[0].end : holes[1].start])
    assert cv.canvas_ids[e0:s1] == between and all(cv.fixed[e0:s1]) and not any(cv.fixed[s0:e0] + cv.fixed[s1:e1])
    assert all(cv.canvas_ids[i] == sp.mask for i in range(len(cv.canvas_ids)) if not cv.fixed[i])
    assert cv.context_ids == spm_context(SRC[: holes[0].start], SRC[holes[1].end :], tok, 512)

    # A "model" that writes into every slot: fixed slots must come back untouched, holes decode on their own.
    filled = list(cv.canvas_ids)
    first, second = tok.encode("return x"), tok.encode("return y * 2")
    filled[s0 : s0 + len(first)] = first
    filled[s0 + len(first) : e0] = [sp.pad] * (e0 - s0 - len(first))
    filled[s1 : s1 + len(second)] = second
    filled[s1 + len(second) : e1] = [sp.pad] * (e1 - s1 - len(second))
    assert [filled[i] for i in range(len(filled)) if cv.fixed[i]] == between
    assert canvas_to_text(cv, filled, tok) == ["return x", "return y * 2"]


def test_canvas_to_text_drops_pads_and_stops_at_eos(tok):
    sp = tok.special
    cv = build_canvas("ab", [Hole(1, 1, "expression", 8)], tok, 64)
    ids = tok.encode("x + ") + [sp.pad] + tok.encode("y") + [sp.eos] + tok.encode("zzz")
    ids = (ids + [sp.pad] * 8)[:8]
    assert canvas_to_text(cv, ids, tok) == ["x + y"]


def test_overlapping_or_no_holes_rejected(tok):
    with pytest.raises(ValueError):
        build_canvas("abcdef", [Hole(0, 3, "rewrite", 8), Hole(2, 4, "rewrite", 8)], tok, 64)
    with pytest.raises(ValueError):
        build_canvas("abc", [], tok, 64)
    with pytest.raises(ValueError):
        build_canvas("abc", [Hole(1, 1, "expression", 4)], tok, 64, mode="bogus")


def test_rewrite_modes(tok):
    text = "def f(x):\n    return x+1\n"
    start, end = text.index("return"), len(text) - 1
    hole = rewrite_hole(start, end, text, tok)
    sel = tok.encode(text[start:end])
    sp = tok.special
    regen = build_canvas(text, [hole], tok, 256, mode="regenerate", instruction="use a lambda")
    assert regen.canvas_ids == [sp.mask] * hole.capacity and regen.instruction == "use a lambda"
    assert regen.original_ids == [sel]
    assert regen.context_ids == spm_context(text[:start], text[end:], tok, 256)
    refine = build_canvas(text, [hole], tok, 256, mode="refine")
    assert refine.canvas_ids[: len(sel)] == sel and set(refine.canvas_ids[len(sel) :]) == {sp.pad}
    assert len(refine.canvas_ids) == hole.capacity and not any(refine.fixed)
    assert canvas_to_text(refine, refine.canvas_ids, tok) == [text[start:end]]
    assert isinstance(refine, Canvas)


def test_render_partial(tok):
    sp = tok.special
    a, b = tok.encode("foo("), tok.encode(")")
    ids = a + [sp.mask, sp.mask] + b + [sp.mask] + [sp.pad, sp.pad]
    masked = [False] * len(a) + [True, True] + [False] * len(b) + [True, False, False]
    text, ranges = render_partial(ids, masked, tok)
    assert text == "foo(··)·"
    assert ranges == [(4, 6), (7, 8)]
    for start, end in ranges:
        assert set(text[start:end]) == {"·"}
    text, ranges = render_partial(a + [sp.pad] * 3, [False] * (len(a) + 3), tok, placeholder="_")
    assert (text, ranges) == ("foo(", [])
    # a masked slot holding a decided id is still drawn as masked; multi-char placeholders are supported
    text, ranges = render_partial(b + b, [True, False], tok, placeholder="<>")
    assert (text, ranges) == ("<>)", [(0, 2)])
    with pytest.raises(ValueError):
        render_partial([1, 2], [True], tok)


def test_render_partial_keeps_multibyte_chars_whole(tok):
    ids = tok.encode("s = 'é😀'")
    text, ranges = render_partial(ids, [False] * len(ids), tok)
    assert text == "s = 'é😀'" and ranges == []
    # a slot still masked inside a char's bytes: the char is left out of the frame, never shown as U+FFFD
    assert any("\ufffd" in tok.decode([i]) for i in ids)  # some token holds only part of a char
    for k in range(len(ids)):
        text, ranges = render_partial(ids, [j == k for j in range(len(ids))], tok)
        assert "\ufffd" not in text and len(ranges) == 1, (k, text)


# -- token healing ----------------------------------------------------------------------------------------------------

def _shipped():
    from engine import DEFAULT_MODEL_DIR
    from engine.tokenizer import Tokenizer

    return Tokenizer.from_file(DEFAULT_MODEL_DIR / "tokenizer.json")


def test_heal_text_is_the_word_token_the_cursor_ends():
    tok = _shipped()
    assert heal_text("def f(a):\n    ret", tok) == " ret"  # "    return" is ["   ", " return"]: " ret" is re-spelled
    assert heal_text("for i in ra", tok) == " ra"
    assert heal_text("x = self.assertEq", tok) == "Eq"  # the last token only, not the whole word
    assert heal_text("x = " + "a + " * 100_000 + "ret", tok) == " ret"  # a huge line: only its end is read

    class NoList:  # a tokenizer that cannot list the tokens extending a text (a remote one, a chat model's)
        special, encode, decode = tok.special, tok.encode, tok.decode

    assert heal_text("def f(a):\n    ret", NoList()) == ""
    for prefix in ("def f(a):\n    ", "x = f(", "x = 1\n", "", "s = 'a' ", "x.", "y = 2 +"):
        assert heal_text(prefix, tok) == "", prefix  # not right after a word character: nothing to heal


def test_a_healed_canvas_starts_at_the_word_and_limits_its_first_slot_to_tokens_extending_it():
    tok = _shipped()
    text = "def f(a):\n    ret\n"
    at = text.index("ret") + 3
    cv = build_canvas(text, [Hole(at, at, "rest_of_line", 6)], tok, 256, heal=" ret")
    assert cv.context_ids == spm_context(text[: at - 4], text[at:], tok, 256)  # the context stops before " ret"
    words = [tok.decode([i]) for i in cv.allowed[0]]
    assert " ret" in words and " return" in words and all(w.startswith(" ret") for w in words)
    assert cv.heal == " ret"
    ids = tok.encode(" return a\n")
    assert canvas_to_text(cv, ids + [tok.special.pad] * (6 - len(ids)), tok) == ["urn a\n"]
    assert cv.unheal(" rex") == ""  # a fill that does not re-spell the typed text is not used


def test_healing_needs_one_cursor_hole_in_fill_mode_after_the_healed_text():
    tok = _shipped()
    text = "a = ret\nb = ret\n"
    one, two = Hole(7, 7, "rest_of_line", 4), Hole(15, 15, "rest_of_line", 4)
    with pytest.raises(ValueError, match="single cursor hole"):
        build_canvas(text, [one, two], tok, 256, heal=" ret")
    with pytest.raises(ValueError, match="single cursor hole"):
        build_canvas(text, [Hole(4, 7, "rewrite", 4)], tok, 256, mode="regenerate", heal=" ret")
    with pytest.raises(ValueError, match="does not end with"):
        build_canvas(text, [Hole(6, 6, "rest_of_line", 4)], tok, 256, heal=" ret")


def test_a_line_longer_than_any_cut_could_keep_gives_the_ids_it_gives_whole(tok):
    """Only the part of a long line near the hole is tokenized (no token spans MAX_TOKEN_CHARS): the context is the
    one the whole line would give."""
    from infill.canvas import MAX_TOKEN_CHARS, _fit_chars, _keep_lines

    cap = 40
    line = "x = [" + ", ".join(str(i) for i in range(3 * cap * MAX_TOKEN_CHARS // 4)) + "]\n"
    assert len(line) > cap * MAX_TOKEN_CHARS
    assert _keep_lines(tok, [line], cap, True) == _fit_chars(tok, line, cap, True)
    assert _keep_lines(tok, [line], cap, False) == _fit_chars(tok, line, cap, False)


@pytest.mark.parametrize("from_end", [True, False])
def test_only_the_lines_a_cut_can_reach_are_split_and_the_kept_ids_are_the_same(tok, from_end):
    """A 5 MB file is not split into lines at every request: the part beyond cap * MAX_TOKEN_CHARS chars of the hole
    could never be kept, so leaving it out changes nothing that is kept."""
    from infill.canvas import MAX_TOKEN_CHARS, _keep_lines, _lines, _lines_near

    cap = 6
    text = "".join(f"v{i} = f({i}, {'x' * (i % 9)})\n" for i in range(400))
    assert len(text) > 2 * cap * MAX_TOKEN_CHARS
    near = _lines_near(text, cap, from_end)
    assert len("".join(near)) <= cap * MAX_TOKEN_CHARS < len(text)
    assert all(ln.endswith("\n") for ln in near)  # whole lines only
    assert _keep_lines(tok, near, cap, from_end) == _keep_lines(tok, _lines(text), cap, from_end)
    one = "y = [" + "1, " * (cap * MAX_TOKEN_CHARS) + "]"  # one line longer than the limit: cut, not dropped
    assert _keep_lines(tok, _lines_near(one, cap, from_end), cap, from_end) == _keep_lines(tok, [one], cap, from_end)


def test_a_crlf_document_reads_as_its_lf_twin(tok):
    """The model was trained on "\n" line endings: a CRLF document's context, fixed text between holes and refined
    selection are the ids of the same text with "\n"; its fills and partials take "\r\n" back (with_newline)."""
    src = "def f(x):\n    y = x + 1\n    ...\n\n\ndef g():\n    return f(2)\n"
    crlf = src.replace("\n", "\r\n")
    assert newline_of(src) == "\n" and newline_of(crlf) == "\r\n" and newline_of("one line") == "\n"

    def holes(text):
        a, b = text.index("y = x"), text.index("return")
        return [Hole(a, text.index("\n", a) + 1, "new_statement", 12), Hole(b, b, "new_statement", 6)]

    for mode in ("fill", "refine"):
        got, want = build_canvas(crlf, holes(crlf), tok, 64, mode), build_canvas(src, holes(src), tok, 64, mode)
        assert (got.context_ids, got.canvas_ids, got.fixed) == (want.context_ids, want.canvas_ids, want.fixed)
    text, masks = with_newline("a\n··b\nc", "\r\n", [(2, 4)])
    assert (text, masks) == ("a\r\n··b\r\nc", [(3, 5)]) and text[3:5] == "··"
    assert with_newline("a\r\nb\nc", "\r\n")[0] == "a\r\nb\r\nc"  # never "\r\r\n"
    assert with_newline("a\nb", "\n", [(0, 1)]) == ("a\nb", [(0, 1)])
