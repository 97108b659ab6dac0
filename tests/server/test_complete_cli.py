"""`diffusion-ls complete`: locations as compilers print them, the canvas drawing, and the README's first command."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from server import cli
from server.complete_cli import DIM, RESET, Canvas, offset_of, parse_location

DEMO = str(Path(__file__).resolve().parents[2] / "examples" / "demo.py") + ":15:18"


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


def _stream(capsys, *flags: str) -> tuple[list[str], int]:
    assert cli.main(["complete", DEMO, "--stream", "--threads", "1", *flags]) == 0
    lines = capsys.readouterr().out.splitlines()
    states = [ln for ln in lines if ln.startswith("[nfe ")]
    nfe = int(re.match(r"nfe (\d+), ", lines[-1]).group(1))
    return states, nfe


def test_the_readme_command_streams_every_forward_from_a_small_first_canvas(capsys):
    states, nfe = _stream(capsys)
    assert len(states) == nfe >= 1  # one drawn canvas per forward
    assert states[0].count("·") == 8 - 1  # the first canvas: 8 slots (canvasStart), one decided; not the 16 sized
    states, nfe = _stream(capsys, "--canvas-start", "0")
    assert states[0].count("·") == 16 - 1  # the tree-sitter capacity, one slot decided by the first forward


def test_bad_locations_and_settings_are_refused_with_a_message(capsys):
    assert cli.main(["complete", DEMO.replace(":15:", ":99:")]) == 2
    assert "past the end" in capsys.readouterr().err
    assert cli.main(["complete", DEMO, "--canvas-start", "-1"]) == 2
    assert "canvas_start" in capsys.readouterr().err
    assert cli.main(["complete", DEMO, "--threshold", "1.5"]) == 2  # reaches Settings, which bounds it to (0, 1]
    assert "threshold" in capsys.readouterr().err
    assert cli.main(["complete", DEMO, "--root", str(Path(DEMO.split(":")[0]) / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_a_binary_file_is_refused_with_a_message(tmp_path: Path, capsys):
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x97\x00\xff\xfe" * 64)
    assert cli.main(["complete", f"{blob}:1:3"]) == 2
    assert capsys.readouterr().err.strip() == f"diffusion-ls complete: {blob}: not a UTF-8 text file"


def test_repository_context_comes_from_the_files_beside_it_as_in_the_server(tmp_path: Path, capsys):
    (tmp_path / "geometry.py").write_text('def area_of_rectangle(width, height):\n    """The area."""\n'
                                          "    return width * height\n")
    app = tmp_path / "app.py"
    app.write_text("import geometry\n\n\ndef describe(w, h):\n    area = geometry.\n    return area\n")
    assert cli.main(["complete", f"{app}:5:21", "--stream"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("repository context:"))
    assert re.fullmatch(r"repository context: \d+ tokens, \d+ chunks? from 1 file \(geometry\.py; 2 files indexed\)",
                        line), line
    assert cli.main(["complete", f"{app}:5:21", "--stream", "--repo-context", "0"]) == 0
    assert "repository context" not in capsys.readouterr().out
