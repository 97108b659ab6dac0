"""`diffusion-ls eval` and `diffusion-ls bench` on the shipped model: tiny runs, one JSON object with the keys the
README and issue promise. Numbers are not asserted (tests check behaviour; the benchmark measures speed)."""

from __future__ import annotations

import json

import pytest

from server import cli

EVAL_KEYS = {"suite", "n", "pass@1", "exact_match", "edit_similarity", "syntax_valid", "tokens_per_forward", "nfe",
             "sizing", "sampler"}
BENCH_KEYS = {"machine", "tokens_per_forward", "speedup_vs_one_per_forward", "speedup_vs_ar",
              "context_scaling_8k_over_512", "cache_speedup", "lsp_overhead_ratio", "first_state_ms_p50",
              "final_ms_p50", "engine", "keystroke", "lsp"}


def run_json(capsys, argv: list[str]) -> dict:
    assert cli.main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, "--json prints exactly one line"
    return json.loads(out[0])


def test_eval_humaneval_single_json(capsys, data_dir):
    r = run_json(capsys, ["eval", "--suite", "humaneval-single", "--limit", "2", "--sizing", "oracle", "--json",
                          "--data", str(data_dir), "--threads", "1", "--no-progress"])
    assert EVAL_KEYS <= set(r)
    assert r["suite"] == "humaneval-single" and r["n"] == 2 and r["n_executed"] == 2
    assert r["sizing"] == "oracle" and r["sampler"] == "threshold:0.9"  # the server's default strategy
    assert r["sampler_config"]["start"] == 8 and r["restarts"] == 0  # an oracle canvas is never restarted
    assert 0.0 <= r["pass@1"] <= 1.0 and r["nfe"] >= 1 and r["tokens_per_forward"] > 0
    assert r["nfe_max"] >= r["nfe"] and r["fill_ms_max"] >= r["fill_ms_p95"]  # the worst fill is reported


def test_eval_lossless_against_one_per_forward_fills_the_same_in_fewer_forwards(capsys, data_dir):
    r = run_json(capsys, ["eval", "--suite", "humaneval-single", "--limit", "3", "--sampler", "lossless",
                          "--against", "one-per-forward:exact", "--json", "--data", str(data_dir), "--threads", "1",
                          "--no-progress"])
    a = r["against"]
    assert r["sampler"] == "lossless:3" and a["sampler"] == "one-per-forward:exact" and a["mismatches"] == 0
    assert r["nfe"] < a["nfe"] and a["nfe_ratio"] > 1 and r["canvases_per_forward"] >= r["steps_per_forward"] > 1
    assert r["steps_per_forward"] * r["nfe"] == pytest.approx(a["nfe"], rel=0.01)  # one per forward's steps, all
    assert r["load_avg_1m"] is not None and a["speedup"] > 0 and a["decode_speedup"] > 0
    assert (a["pass@1"], a["exact_match"], a["edit_similarity"]) == (r["pass@1"], r["exact_match"],
                                                                     r["edit_similarity"])  # the same fills


def test_eval_canonical_fills_pass_by_execution(capsys, data_dir):
    r = run_json(capsys, ["eval", "--suite", "safim-block", "--limit", "2", "--sampler", "canonical", "--json",
                          "--data", str(data_dir), "--no-progress"])
    assert r["pass@1"] == 1.0 and r["exact_match"] == 1.0 and r["syntax_valid"] == 1.0


def test_eval_heldout_on_a_source_tree(capsys, tmp_path):
    (tmp_path / "a.py").write_text("import os\n\n\ndef f(x):\n    y = os.path.join(x, 'a')\n    return y\n")
    r = run_json(capsys, ["eval", "--suite", "heldout", "--corpus", str(tmp_path), "--limit", "2", "--sizing",
                          "fixed:4", "--sampler", "one-per-forward", "--json", "--threads", "1", "--no-progress"])
    assert EVAL_KEYS <= set(r) and r["n"] == 2 and r["pass@1"] is None
    assert r["tokens_per_forward"] <= 1.0 and r["sizing"] == "fixed:4" and "by_kind" in r


def test_eval_typed_holes_are_healed_and_recorded(capsys, data_dir, tmp_path):
    recs = tmp_path / "r.jsonl"
    argv = ["eval", "--suite", "humaneval-single", "--typed", "2", "--limit", "2", "--json", "--data", str(data_dir),
            "--threads", "1", "--no-progress", "--records", str(recs)]
    r = run_json(capsys, argv)
    assert r["n"] == 2 and r["typed"] == 2 and r["heal"] is True
    rows = [json.loads(line) for line in recs.read_text().splitlines()]
    assert all(row["heal"] and row["heal"].strip().isidentifier() for row in rows)  # the typed word's last token
    r = run_json(capsys, [*argv, "--no-heal"])
    assert r["heal"] is False and all(not json.loads(line)["heal"] for line in recs.read_text().splitlines())


def test_eval_bad_options_exit_2(capsys):
    assert cli.main(["eval", "--suite", "heldout"]) == 2
    assert "--corpus" in capsys.readouterr().err
    assert cli.main(["eval", "--suite", "heldout", "--corpus", ".", "--sizing", "huge"]) == 2
    assert cli.main(["eval", "--suite", "humaneval-single", "--typed", "-1"]) == 2


@pytest.mark.slow
def test_bench_quick_json_through_the_server(capsys, tmp_path):
    r = run_json(capsys, ["bench", "--quick", "--json", "--holes", "1", "--keystrokes", "1", "--max-tokens", "4",
                          "--threads", "1", "--no-progress", "--repo-context", "0"])
    assert BENCH_KEYS <= set(r)
    assert r["settings"]["repo_context_budget"] == 0  # the server leg without repository context, as asked
    assert r["machine"]["cores"] >= 1 and r["machine"]["torch_threads"] == 1 and r["machine"]["device"] == "cpu"
    assert set(r["keystroke"]["files"]) == {"512", "2048", "8192"}
    assert "error" not in r["lsp"], r["lsp"]
    assert len(r["lsp"]["places"]) == 1 and r["lsp"]["keystrokes"] >= 1 and r["lsp"]["final_ms_max"] > 0
    assert r["lsp_overhead_ratio"] > 0 and r["first_state_ms_p50"] <= r["final_ms_p50"]
    e = r["engine"]
    assert e["one_per_forward"]["tokens_per_forward"] <= 1.0 and e["ar"]["tokens_per_forward"] <= 1.0
    assert r["lossless_mismatches"] == e["lossless_mismatches"] == 0  # one token per forward's fills, exactly
    assert e["lossless"]["nfe"] <= e["one_per_forward"]["nfe"] and e["lossless"]["steps_per_forward"] >= 1


def test_results_commands_re_measure_each_record_with_its_own_settings(capsys, data_dir, tmp_path):
    """tools/results_tables.py --commands reads a results file back into the eval command that wrote it."""
    import importlib.util
    import shlex
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "tools" / "results_tables.py"
    spec = importlib.util.spec_from_file_location("results_tables", path)
    assert spec and spec.loader
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    first = run_json(capsys, ["eval", "--suite", "humaneval-single", "--typed", "2", "--no-heal", "--start", "0",
                              "--sizing", "fixed:16", "--sampler", "threshold:0.7", "--budget", "200", "--limit", "2",
                              "--json", "--against", "lossless:2",
                              "--data", str(data_dir), "--threads", "1", "--no-progress"])
    (tmp_path / "x.json").write_text(json.dumps(first))
    (line,) = tables.commands(tmp_path, "OUT", f"--data {data_dir}")
    words = shlex.split(line)
    assert words[:2] == ["diffusion-ls", "eval"] and words[-2:] == [">", "OUT/x.json"]
    again = run_json(capsys, words[1:-2])
    keys = ("suite", "n", "sampler", "sizing", "typed", "heal", "context_budget", "sampler_config", "exact_match",
            "nfe")
    assert {k: again[k] for k in keys} == {k: first[k] for k in keys}
    assert again["against"]["sampler"] == "lossless:2" and again["against"]["nfe"] == first["against"]["nfe"]


def test_bench_types_whole_lines_at_places_spread_over_the_source_files():
    from server.bench import source_files, typing_places

    sources = dict(source_files())
    places = typing_places(8, 48)
    assert len(places) == 8 and len({name.split(":")[0] for name, *_ in places}) >= min(6, len(sources))
    for name, text, cursor, code in places:
        path, line = name.split(":")
        original = sources[path].splitlines(keepends=True)[int(line) - 1]
        assert text[:cursor].endswith("\n" + original[: len(original) - len(original.lstrip())])  # at the indent
        assert original.strip().startswith(code) and 0 < len(code) <= 48
        assert text[:cursor] + original.strip() + text[cursor:] == sources[path]  # the line typed gives the file back


def test_bench_types_each_character_where_the_cursor_is():
    """The LSP leg's didChange positions, applied by the server's own Document, give the text the in-process
    reference completes: typing at the end of an indented blank line stays on that line."""
    from infill.document import Document
    from server.bench import keystroke

    text = "def f(x):\n    \n    return x\n"
    cursor, code = text.index("    \n") + 4, "if x:"
    doc = Document("file:///t.py", text, 1, "python")
    for k in range(1, len(code) + 1):
        pos, at = keystroke(text, cursor, code, k)
        doc.apply_change(_Range(pos, pos), code[k - 1])
        assert doc.text == text[:cursor] + code[:k] + text[cursor:]
        assert doc.offset_at(_Pos(**at)) == cursor + k


class _Pos:
    def __init__(self, line: int, character: int) -> None:
        self.line, self.character = line, character


class _Range:
    def __init__(self, start: dict, end: dict) -> None:
        self.start, self.end = _Pos(**start), _Pos(**end)


def test_bench_typed_files_differ_only_in_code_far_from_the_typed_line():
    from engine import DEFAULT_MODEL_DIR
    from engine.tokenizer import Tokenizer
    from infill.holes import find_hole
    from server.bench import SIZES, spread, typed_file

    tok = Tokenizer.from_file(DEFAULT_MODEL_DIR / "tokenizer.json")
    files = {size: typed_file(tok, size) for size in SIZES}
    small_text, small_at, code = files[SIZES[0]]
    for size, (text, at, typed) in files.items():
        assert typed == code
        assert 0.8 * size <= len(tok.encode(text)) <= 1.5 * size
        # the small file's lines around the cursor are there, unchanged
        assert text[at - 300 : at + 300] == small_text[small_at - 300 : small_at + 300]
        doc = text[:at] + code[:3] + text[at:]
        assert find_hole(doc, at + 3, "python", tok).situation != "comment"  # still code: no string left open
    assert spread([2.0, 2.0, 2.0, 4.0], [1.0] * 4) == [2.0, 3.5] and spread([1.0], [1.0]) is None


def test_repo_suite_reports_whether_the_chunks_hold_the_names_the_file_lacks(capsys, tmp_path):
    repo = tmp_path / "corpus" / "shop"
    repo.mkdir(parents=True)
    (repo / "pricing.py").write_text(
        "def discounted_total(items, rate):\n    return sum(i.price for i in items) * (1 - rate)\n")
    (repo / "cart.py").write_text(
        "from pricing import discounted_total\n\n\nclass Cart:\n    def __init__(self):\n        self.items = []\n\n"
        "    def total(self, rate):\n        value = discounted_total(self.items, rate)\n        return value\n")
    records = tmp_path / "records.jsonl"
    r = run_json(capsys, ["eval", "--suite", "repo", "--corpus", str(tmp_path / "corpus"), "--repo-context", "128",
                          "--json", "--threads", "1", "--no-progress", "--records", str(records)])
    assert r["n"] >= 1 and 0 <= r["novel_names"] <= 1
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    assert all(isinstance(x["novel_names"], bool) and isinstance(x["novel_in_context"], bool) for x in rows)
    assert all(x["novel_names"] or not x["novel_in_context"] for x in rows)
