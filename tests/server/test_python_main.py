"""The VS Code client's way to start the server from `diffusionLs.pythonPath` (settings.ts PYTHON_MAIN), run for real:
a workspace's own `typing.py` or `server/` package must not be imported in place of the standard library or ours (the
working directory is the workspace; `python -m server.cli` put it first on sys.path, and a trial's `typing.py` broke the
start)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SETTINGS_TS = Path(__file__).resolve().parents[2] / "clients" / "vscode" / "src" / "settings.ts"


def python_main() -> str:
    m = re.search(r'export const PYTHON_MAIN =\s*"((?:[^"\\]|\\.)*)";', SETTINGS_TS.read_text())
    assert m, "PYTHON_MAIN not found in settings.ts"
    return m.group(1)


def test_a_workspace_cannot_shadow_the_standard_library_or_the_server(tmp_path: Path) -> None:
    (tmp_path / "typing.py").write_text("def broken(:\n")
    (tmp_path / "server").mkdir()
    (tmp_path / "server" / "__init__.py").write_text("")
    (tmp_path / "server" / "cli.py").write_text("import sys\nprint('the workspace ran')\ndef main():\n    return 7\n")
    python = os.path.abspath(sys.executable)  # not resolved: a virtual environment's python is a link
    run = subprocess.run([python, "-c", python_main(), "--help"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "the workspace ran" not in run.stdout and "diffusion-ls" in run.stdout
    shadowed = subprocess.run([python, "-m", "server.cli", "--help"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
    assert "the workspace ran" in shadowed.stdout or shadowed.returncode != 0, "what the fix is for"


def test_the_server_bounds_onednns_cache_of_compiled_shapes_before_torch_loads() -> None:
    """oneDNN compiles and keeps a primitive per tensor shape (1024 by default); a server sees a new context length on
    most requests, and the cache grew its memory without end in a soak. `serve` bounds it unless the user set it."""
    root = Path(__file__).resolve().parents[2]
    probe = ("import os, sys; import server.serve_cli; "
             "print(os.environ.get('ONEDNN_PRIMITIVE_CACHE_CAPACITY'), 'torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    env["PYTHONPATH"] = str(root)
    run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert run.stdout.split() == ["32", "False"], run.stderr  # set, and torch not loaded yet
    run = subprocess.run([sys.executable, "-c", probe], env={**env, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "500"},
                         capture_output=True, text=True, timeout=60)
    assert run.stdout.split() == ["500", "False"], run.stderr


def test_started_by_an_editor_without_a_command_it_serves_lsp(tmp_path: Path) -> None:
    """A Neovim trial's `cmd = { 'diffusion-ls' }` printed the help and exited: the editor saw a server that was not
    running. With no command and stdin not a terminal, it serves (as rust-analyzer does); in a terminal, the help."""
    def frame(body: str) -> bytes:
        return f"Content-Length: {len(body.encode())}\r\n\r\n{body}".encode()

    messages = frame('{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"processId":null,"rootUri":null,'
                     '"capabilities":{}}}') + frame('{"jsonrpc":"2.0","id":2,"method":"shutdown"}') + \
        frame('{"jsonrpc":"2.0","method":"exit"}')
    run = subprocess.run([os.path.abspath(sys.executable), "-c", python_main()], input=messages, cwd=tmp_path,
                         capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    assert b'"id": 1' in run.stdout or b'"id":1' in run.stdout, run.stdout[:500]
    assert b"inlineCompletionProvider" in run.stdout
    assert b"serving LSP over stdio" in run.stderr
