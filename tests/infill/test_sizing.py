import gzip
import json

from infill.sizing import FIXED, corpus_files, data_records, main, measure_sizing, summarize

PY = '''import os


def read(path):
    """Read a file."""
    with open(path) as f:
        return f.read()


def write(path, data):
    if not data:
        raise ValueError("empty")
    with open(path, "w") as f:
        f.write(data)
    return len(data)


def join(*parts):
    return os.path.join(*parts)
'''
JS = "function f(a) {\n  if (a > 1) {\n    return g(a, 2);\n  }\n  return h(a);\n}\n"


def test_summarize_numbers():
    records = [("body", "empty_body", 20, 10), ("body", "empty_body", 5, 10), ("statement", "new_statement", 8, 4)]
    out = summarize(records, max_true=None)
    assert out["n"] == 3 and out["coverage"] == round(2 / 3, 4) and out["median_waste"] == 2.0
    assert out["by_class"]["body"] == {"n": 2, "coverage": 0.5, "median_waste": 1.25}
    assert out["fixed"]["16"]["coverage"] == 1.0 and set(out["fixed"]) == {str(s) for s in FIXED}
    assert summarize(records, max_true=8)["excluded_longer_than_max"] == 2


def test_measure_sizing_on_files(tok):
    out = measure_sizing([("a.py", PY, "python"), ("a.js", JS, "javascript")], tok, per_kind=2)
    assert out["n"] > 5 and 0 <= out["coverage"] <= 1 and out["median_waste"] > 0
    assert {"body", "statement", "arguments"} <= set(out["by_class"])


def test_cli_on_corpus_and_data(tmp_path, tok, capsys, monkeypatch):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text(PY)
    (tmp_path / "src" / "notes.txt").write_text("not code")
    assert [p for p, _, _ in corpus_files(tmp_path / "src")] == [str(tmp_path / "src" / "a.py")]
    data = tmp_path / "data"
    (data / "humaneval-infilling").mkdir(parents=True)
    (data / "safim-python").mkdir()
    rec = {"prompt": "def f(x):\n    ", "suffix": "\n", "canonical_solution": "return x + 1"}
    with gzip.open(data / "humaneval-infilling" / "HumanEval-SingleLineInfilling.jsonl.gz", "wt") as f:
        f.write(json.dumps(rec) + "\n")
    rec = {"eval_prompt": "x = int(input())\nif {{completion}}:\n    print(x)\n", "ground_truth": "x > 1"}
    with gzip.open(data / "safim-python" / "control_completion_python.jsonl.gz", "wt") as f:
        f.write(json.dumps(rec) + "\n")
    classes = sorted(r[0] for r in data_records(data, tok))
    assert classes == ["humaneval/SingleLineInfilling", "safim/control"]

    monkeypatch.setattr("infill.sizing._load_tokenizer", lambda path: tok)
    assert main(["--corpus", str(tmp_path / "src"), "--data", str(data), "--json", "--per-kind", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["corpus"]["n"] > 0 and out["data"]["n"] == 2
    assert "coverage" in out["data"]["by_class"]["safim/control"]
    assert main(["--corpus", str(tmp_path / "src"), "--per-kind", "1"]) == 0
    assert "fixed 16" in capsys.readouterr().out
