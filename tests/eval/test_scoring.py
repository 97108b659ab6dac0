"""Scoring: pass@1 is decided by executing the program (a wrong fill fails, the canonical one passes), and the text
metrics, suite loading, sizing and sampler specs behave as documented."""

from __future__ import annotations

import pytest

from infill import evaluate as ev

ADD = ev.Task(
    "toy/0", "humaneval-single", "python",
    prefix="def add(a, b):\n    \"\"\"Sum of a and b.\"\"\"\n",
    suffix="",
    middle="    return a + b\n",
    check={"kind": "humaneval", "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n",
           "entry_point": "add"},
)


def test_pass_at_1_is_by_execution_on_a_toy_task():
    assert ev.passes(ADD, "    return a + b\n") is True
    assert ev.passes(ADD, "    return a - b\n") is False
    assert ev.passes(ADD, "    return a +\n") is False  # a syntax error is a failure, not a crash
    assert ev.passes(ADD, "    while True: pass\n", timeout=0.5) is False


def test_humaneval_single_line_canonical_passes_and_wrong_fails(data_dir):
    tasks = ev.load_suite("humaneval-single", data_dir, limit=3)
    assert len(tasks) == 3 and len({t.task_id.split("/L")[0] for t in tasks}) == 3  # spread over problems
    for t in tasks:
        assert ev.score(t, t.middle) == {"passed": True, "exact": True, "edit_similarity": 1.0, "syntax_valid": True}
        indent = t.middle[: len(t.middle) - len(t.middle.lstrip())]
        wrong = ev.score(t, indent + "raise ValueError('wrong')\n")
        assert wrong["passed"] is False and wrong["exact"] is False


def test_safim_block_canonical_passes_its_unit_tests_and_wrong_fails(data_dir):
    tasks = ev.load_suite("safim-block", data_dir, limit=2)
    for t in tasks:
        assert t.check["tests"] and "\r" not in t.prefix + t.middle + t.suffix
        assert ev.passes(t, t.middle) is True
        assert ev.passes(t, "print(0)") is False


def test_safim_api_is_a_syntax_match(data_dir):
    t = ev.load_suite("safim-api", data_dir, limit=1)[0]
    s = ev.score(t, "  " + t.middle + " ")
    assert s["passed"] is None and s["syntax_match"] is True
    assert ev.syntax_match("f(a, b=1)", "f(a,b = 1)") and ev.syntax_match("f((a))", "f(a)")
    assert not ev.syntax_match("f(a)", "g(a)")


def test_santacoder_is_first_line_exact_match_spread_over_languages(data_dir):
    pytest.importorskip("pyarrow")
    tasks = ev.load_suite("santacoder-fim", data_dir, limit=3)
    assert sorted(t.kind for t in tasks) == ["java", "js", "py"]
    t = tasks[0]
    assert ev.score(t, "\n" + t.middle.strip() + "\nmore lines\n")["exact"] is True
    assert ev.score(t, "something else")["exact"] is False


def test_heldout_holes_come_from_tree_sitter_spans(tmp_path):
    (tmp_path / "m.py").write_text("def f(x):\n    y = x + 1\n    if y > 2:\n        return y\n    return g(x, 2)\n")
    tasks = ev.heldout_tasks(tmp_path)
    assert tasks and {t.kind for t in tasks} <= set(ev.HELDOUT_KINDS)
    for t in tasks:
        assert t.prefix + t.middle + t.suffix == (tmp_path / "m.py").read_text()
        assert ev.score(t, t.middle)["syntax_valid"] is True


def test_text_metrics():
    assert ev.edit_similarity("abc", "abc") == 1.0
    assert ev.edit_similarity(" abcd ", "abce") == 0.75
    assert ev.edit_similarity("", "xy") == 0.0
    assert ev.levenshtein("kitten", "sitting") == 3
    assert ev.syntax_valid(ADD, "    return a + b\n") and not ev.syntax_valid(ADD, "    return (a +\n")


def test_spread_takes_evenly_spaced_items():
    assert ev.spread(list(range(10)), 3) == [0, 3, 6]
    assert ev.spread(list(range(3)), 5) == [0, 1, 2]
    assert ev.spread(list(range(3)), None) == [0, 1, 2]


def test_sizing_and_sampler_specs():
    assert str(ev.parse_sizing("fixed:32")) == "fixed:32" and ev.parse_sizing("oracle").mode == "oracle"
    for bad in ("fixed:0", "fixed:x", "big"):
        with pytest.raises(ev.EvalError):
            ev.parse_sizing(bad)
    assert ev.parse_sampler("threshold:0.9").cfg.threshold == 0.9
    one = ev.parse_sampler("one-per-forward").cfg
    assert (one.strategy, one.k) == ("confidence", 1) and one.steps >= 1 << 20
    assert ev.parse_sampler("ar").ar and ev.parse_sampler("eb:0.3").cfg.eb_gamma == 0.3
    spec = ev.parse_sampler("spec:4")
    assert spec.ar and spec.draft == 4 and ev.parse_sampler("spec").draft == 16
    for bad in ("nonsense", "spec:0", "spec:x", "spectrum"):
        with pytest.raises(ev.EvalError):
            ev.parse_sampler(bad)


def test_unknown_suite_and_missing_corpus_are_clear_errors():
    with pytest.raises(ev.EvalError, match="unknown suite"):
        ev.load_suite("mbpp")
    with pytest.raises(ev.EvalError, match="--corpus"):
        ev.load_suite("heldout")


def test_typed_puts_the_start_of_the_middles_first_word_before_the_cursor():
    t = ev.Task("t/0", "toy", "python", "def f(x):\n", "\n", "    return x\n")
    kept = ev.typed([t, ev.Task("t/1", "toy", "python", "a = ", "\n", "(x)"), ev.Task("t/2", "toy", "python", "", "",
                                                                                    "  ab\n")], 2)
    assert [k.task_id for k in kept] == ["t/0"]  # no word first, or a word of only 2 characters: left out
    (k,) = kept
    assert k.prefix == "def f(x):\n    re" and k.middle == "turn x\n" and k.prefix + k.middle == t.prefix + t.middle
    with pytest.raises(ev.EvalError, match="n >= 1"):
        ev.typed([t], 0)


def test_a_summary_splits_its_holes_by_situation_and_into_two_halves():
    """A rule looked for on one half of the holes is checked on the other: odd positions and even ones, in order."""
    records = [{"passed": None, "exact": i == 0, "edit_similarity": i / 10, "syntax_valid": True, "nfe": 2, "tokens": 3,
                "capacity": 8, "fill": "x", "ms": 1.0, "group": "", "situation": "arguments" if i < 3 else "empty_body"}
               for i in range(5)]
    out = ev.summarize("heldout", records, ev.parse_sizing("syntax"), ev.parse_sampler("default"))
    assert out["halves"]["even"]["n"] == 3 and out["halves"]["odd"]["n"] == 2
    assert out["halves"]["even"]["edit_similarity"] == 0.2 and out["halves"]["odd"]["edit_similarity"] == 0.2
    assert out["halves"]["even"]["exact_match"] == round(1 / 3, 4) and out["halves"]["odd"]["exact_match"] == 0.0
    assert {s: v["n"] for s, v in out["by_situation"].items()} == {"arguments": 3, "empty_body": 2}
    assert out["by_situation"]["empty_body"]["edit_similarity"] == 0.35
