"""`diffusion-ls complete`: locations as compilers print them, and the canvas drawing (no model needed)."""

from __future__ import annotations

import io

import pytest

from server.complete_cli import DIM, RESET, Canvas, offset_of, parse_location


def test_locations_are_one_based_and_files_may_hold_colons():
    assert parse_location("src/a.py:12:9") == (__import__("pathlib").Path("src/a.py"), 12, 9)
    assert parse_location("C:/x/a.py:1:1")[1:] == (1, 1)
    for bad in ("a.py", "a.py:1", "a.py:0:1", "a.py:x:1"):
        with pytest.raises(ValueError):
            parse_location(bad)
    text = "ab\r\ncdé\nlast"
    assert offset_of(text, 1, 1) == 0
    assert offset_of(text, 1, 99) == 2  # past the end of a CRLF line: its end, before "\r"
    assert offset_of(text, 2, 3) == text.index("é")
    assert offset_of(text, 3, 5) == len(text)
    with pytest.raises(ValueError, match="line 4 is past the end"):
        offset_of(text, 4, 1)


def test_the_canvas_is_one_line_per_forward_off_a_terminal_and_redrawn_dimmed_on_one():
    out = io.StringIO()
    Canvas(out, tty=False).draw("x = ··", [(4, 6)], 1)
    assert out.getvalue() == "[nfe 1] 'x = ··'\n"

    out = io.StringIO()
    canvas = Canvas(out, tty=True)
    canvas.draw("a·\nb", [(1, 2)], 1)
    canvas.draw("ab\nb", [], 2)
    assert out.getvalue() == f"a{DIM}·{RESET}\nb\n" + "\x1b[2F\x1b[J" + "ab\nb\n"
