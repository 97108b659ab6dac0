"""tools/language_table.py: the per-language ratings and the model's languages.json come from docs/results, and
tools/results_tables.py reads the per-language files back into their commands."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def lt():
    return load("language_table")


def record(es: float, raw: float, model: str = "m", n: int = 200) -> dict:
    return {"suite": "heldout", "n": n, "exact_match": 0.1, "edit_similarity": es, "syntax_valid": 1.0,
            "syntax_valid_raw": raw, "empty_fills": 0.0, "model": model, "sampler": "threshold:0.9",
            "context_budget": 384, "sizing": "syntax", "sampler_config": {"start": 8}, "typed": 0, "heal": True,
            "postprocess": True}


def write(d: Path, recs: dict[str, dict]) -> None:
    for lang, r in recs.items():
        (d / f"lang_{lang}.json").write_text(json.dumps(r))


def test_rating_rule_is_relative_to_python(lt, tmp_path):
    recs = {lang: record(0.40, 0.94) for lang in lt.LANGUAGES}
    recs["javascript"] = record(0.34, 0.89)  # 85% of Python's edit similarity, 5 points below: good
    recs["typescript"] = record(0.339, 0.94)  # just under 85%: fair
    recs["go"] = record(0.40, 0.78)  # 16 points below: weak, whatever the edit similarity
    recs["rust"] = record(0.27, 0.94)  # under 70%: weak
    write(tmp_path, recs)
    doc = lt.languages(tmp_path, "m")
    rating = {k: v["rating"] for k, v in doc["languages"].items()}
    assert rating["python"] == "good" and rating["javascript"] == "good" and rating["typescript"] == "fair"
    assert rating["go"] == "weak" and rating["rust"] == "weak"
    assert doc["model"] == "m" and doc["rule"] and doc["command"]
    assert set(doc["languages"]) == set(lt.LANGUAGES)
    e = doc["languages"]["go"]
    assert {"rating", "suite", "holes", "exact_match", "edit_similarity", "syntax_valid_raw"} <= set(e)
    assert e["holes"] == 200 and e["syntax_valid_raw"] == 0.78
    table = lt.table(doc)
    assert table.count("\n") == 1 + len(lt.LANGUAGES)  # header, rule, one row per language


def test_results_of_another_model_are_refused(lt, tmp_path):
    write(tmp_path, {lang: record(0.4, 0.9) for lang in lt.LANGUAGES})
    with pytest.raises(SystemExit):
        lt.languages(tmp_path, "another-model")


def test_commands_cut_the_holes_from_the_languages_tree(tmp_path):
    tables = load("results_tables")
    (tmp_path / "lang_go.json").write_text(json.dumps(record(0.3, 0.8)))
    (line,) = tables.commands(tmp_path, "OUT")
    assert "--suite heldout" in line and "--corpus build/lang/go" in line and line.endswith("> OUT/lang_go.json")


def test_shipped_languages_json_matches_the_results(lt):
    """engine/assets/model/languages.json is what `python tools/language_table.py --write` makes of docs/results."""
    assert lt.main(["--check"]) == 0
