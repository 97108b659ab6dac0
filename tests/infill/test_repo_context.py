"""Repository context layout and its lexical pieces (infill.repo_context), on fixture strings and the real tokenizer."""

from __future__ import annotations

import pytest

from infill.canvas import build_canvas, spm_context
from infill.holes import Hole
from infill.repo_context import Chunk, chunk_ids, definitions, names_near, query_text, repo_context, similarity


@pytest.fixture(scope="module")
def tok():
    from engine.backend import DEFAULT_MODEL_DIR
    from engine.tokenizer import Tokenizer

    return Tokenizer.from_file(DEFAULT_MODEL_DIR / "tokenizer.json")


A = Chunk("lib/a.py", "def alpha(x):\n    return x\n", "definition")
B = Chunk("lib/b.py", "def beta(y):\n    return y * 2\n", "snippet")
C = Chunk("lib/c.py", "def gamma(z):\n" + "    z += 1\n" * 40, "snippet")


def test_a_chunk_is_the_file_separator_its_path_line_and_its_text(tok):
    ids = chunk_ids(A, tok)
    assert ids[0] == tok.special.file_sep
    assert tok.decode(ids[1:]) == "lib/a.py\ndef alpha(x):\n    return x\n"
    assert chunk_ids(Chunk("p.py", "x = 1"), tok)[1:] == tok.encode("p.py\nx = 1\n")  # always ends its line


def test_the_best_chunk_comes_last_next_to_the_spm_part_and_the_budget_holds(tok):
    a, b, c = (chunk_ids(x, tok) for x in (A, B, C))
    assert repo_context([A, B], tok, 10_000) == b + a  # given best first, laid out best last
    assert repo_context([A, B, C], tok, len(a) + len(b)) == b + a  # C does not fit
    assert repo_context([C, A, B], tok, len(a) + len(b)) == b + a  # a chunk that does not fit is skipped, not cut
    assert repo_context([A, B], tok, len(a) + len(b) - 1) == a  # the first that fits, then nothing more
    assert repo_context([A, B], tok, 0) == [] and repo_context([], tok, 100) == []
    assert repo_context([A, B, C], tok, 300) == repo_context([A, B, C], tok, 300)  # deterministic


def test_build_canvas_puts_the_repository_part_before_an_unchanged_spm_context(tok):
    text = "def f(a):\n    return a\n\n\ndef g(b):\n    return \n"
    at = text.index("return \n") + len("return ")
    repo = repo_context([A, B], tok, 200)
    plain = build_canvas(text, [Hole(at, at, "rest_of_line", 8)], tok, 128)
    with_repo = build_canvas(text, [Hole(at, at, "rest_of_line", 8)], tok, 128, repo=repo)
    assert with_repo.context_ids == repo + plain.context_ids
    assert plain.context_ids == spm_context(text[:at], text[at:], tok, 128)
    assert with_repo.canvas_ids == plain.canvas_ids


def test_the_query_leaves_out_the_cursor_line_so_typing_on_it_changes_nothing():
    text = "import os\n\ndef load(path):\n    data = read(path)\n    value = par\n    return value\n"
    at = text.index("par\n") + 3
    q = query_text(text, at)
    assert "value = par" not in q and "data = read(path)" in q and "return value" in q
    typed = text[:at] + "se_conf" + text[at:]
    assert query_text(typed, at + 7) == q


def test_names_near_the_cursor_are_nearest_first_without_the_word_being_typed():
    text = "from lib import helper, other_thing\n\ndef run(items):\n    total = helper(items, lim"
    names = names_near(text, len(text))
    assert names[:3] == ["items", "helper", "total"]  # the cursor line's complete words, nearest first
    assert "lim" not in names and "other_thing" in names  # the typed word changes at every keystroke
    assert "def" not in names  # keywords say nothing


def test_similarity_is_llama_vims_word_overlap():
    assert similarity(["a", "b"], ["a", "b"]) == 1.0
    assert similarity(["a", "b"], ["c"]) == 0.0
    assert similarity(["a", "b", "c", "d"], ["a", "b"]) == pytest.approx(2 * 2 / 6)


def test_definitions_give_signatures_and_class_members():
    py = ('@dataclass\nclass Point:\n    """A point."""\n    x: int\n    y: int\n\n    def norm(self,\n'
          '             order=2) -> float:\n        return 0.0\n\n\ndef distance(a: Point, b: Point) -> float:\n'
          '    return 1.0\n')
    defs = {d.name: d for d in definitions(py, "python")}
    assert defs["distance"].signature == "def distance(a: Point, b: Point) -> float:"
    assert defs["distance"].line == 11 and defs["distance"].kind == "function"
    assert defs["Point"].signature.splitlines() == ["class Point:", "    x: int", "    y: int",
                                                    "    def norm(self, order=2) -> float:"]  # no docstring, no bodies
    assert defs["norm"].signature.startswith("    def norm(self,")
    go = "package m\n\ntype Store struct {\n\tname string\n}\n\nfunc (s *Store) Get(key string) (int, error) {\n" \
         "\treturn 0, nil\n}\n"
    gdefs = {d.name: d for d in definitions(go, "go")}
    assert gdefs["Get"].signature == "func (s *Store) Get(key string) (int, error)"
    assert gdefs["Store"].kind == "type"
    assert definitions("x = 1", None) == []


def test_javascript_variables_bound_to_functions_and_classes_are_definitions():
    js = ("var merge = function merge(target, source) {\n  return target;\n};\nconst area = (w, h) => w * h;\n"
          "let Shape = class Shape { draw() {} };\nconst n = 3;\n")
    assert [(d.name, d.kind, d.line, d.signature) for d in definitions(js, "javascript")] == [
        ("merge", "function", 0, "var merge = function merge(target, source)"),
        ("area", "function", 3, "const area = (w, h)"), ("Shape", "class", 4, "let Shape = class Shape")]
    ts = "export const add = (a: number, b: number): number => {\n  return a + b;\n};\n"
    assert [d.signature for d in definitions(ts, "typescript")] == ["export const add = (a: number, b: number): number"]


def _answers(code: str, seconds: float = 60) -> str:
    """Run `code` in a fresh interpreter and return what it prints; a failure if it has not ended in `seconds` (a
    liveness check, not a speed figure: these inputs took minutes before, inside C regex searches that hold the
    interpreter, so the whole server stopped answering, and no thread of this process could have stopped them)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    try:
        proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not end in {seconds} s: {code}")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_terms_of_a_cursor_after_a_very_long_word_are_read_in_linear_time():
    """A user trial typed `+ os.` after a 300,000-char string literal: two `...$` searches tried every start of the
    word, and the server hung for minutes."""
    out = _answers("from infill.retrieval import cursor_terms\n"
                   "text = 'import os\\n\\nDATA = \"' + 'a' * 300_000 + '\" + os.pa\\n'\n"
                   "t = cursor_terms(text, len(text) - 1, 'python')\n"
                   "print(t.module, t.member, t.names[0], len(t.names[1]))")
    assert out.split() == ["os", "pa", "os", "300000"]  # the words before it on its line, nearest first


def test_imports_of_files_with_many_statements_never_closed_are_read_in_linear_time():
    """A semicolon-free TypeScript file of `export const` lines (a trial's: 29 s a keystroke), and files of
    statements that never close, for every language with a rule."""
    out = _answers("from infill import imports\n"
                   "ts = \"import { a, b } from './ab'\\n\" + ''.join(f'export const v{i} = {i}\\n' for i in "
                   "range(8000))\n"
                   "print([(i.target, i.names) for i in imports.parse(ts, 'typescript')])\n"
                   "for lang, line in (('rust', 'use a::b\\n'), ('go', 'import (\\n'), ('typescript', 'import {\\n'),\n"
                   "                   ('python', 'from x import (\\n'), ('rust', 'pub use x::{\\n')):\n"
                   "    imports.parse(line * (200_000 // len(line)), lang)\n")
    assert out.strip() == "[('./ab', ('a', 'b'))]"
