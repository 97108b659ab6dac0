"""`diffusion-ls safety`: rewrites and fills through the server's pipeline on real code, every edit checked."""

from __future__ import annotations

import json

from server import safety
from server.cli import main


def test_violations_are_found_from_scratch():
    text = "def f(x):\n    return x\n"
    at = text.index("return")
    assert safety._violations(text, "python", [(at, at + 6, "return")]) == []
    assert safety._violations(text, "python", [(at, len(text) - 1, "")]) == ["replaces 'return x' with nothing"]
    assert safety._violations(text, "python", [(at, at + 6, "return (")])[0].startswith("adds parse errors")


def test_safety_on_real_code_returns_no_harmful_edit(tmp_path, capsys):
    tree = tmp_path / "python" / "pkg"
    tree.mkdir(parents=True)
    # code nobody here wrote would do too; a small module keeps the test quick
    (tree / "shapes.py").write_text(
        "import math\n\n\nclass Circle:\n    def __init__(self, r):\n        self.r = r\n\n"
        "    def area(self):\n        return math.pi * self.r ** 2\n\n"
        "    def scaled(self, k):\n        if k <= 0:\n            raise ValueError('k must be positive')\n"
        "        return Circle(self.r * k)\n")
    assert main(["safety", "--corpus", str(tmp_path), "--limit", "4", "--json", "--dtype", "bfloat16"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["violations"] == [] and out["languages"] == ["python"] and out["holes"] == 4
    assert out["dtype"] == "bfloat16"  # the format it ran in is part of the result
    rewrite, fill = out["requests"]["rewrite"], out["requests"]["fill"]
    assert rewrite["requests"] == 4 and rewrite["useful"] + rewrite.get("refused", 0) == rewrite["holes"]
    assert fill["requests"] == 4 and fill["useful"] + fill.get("refused", 0) == fill["holes"]
    assert sum(out["refusals"].values()) == rewrite.get("refused", 0) + fill.get("refused", 0)
    assert out["max_nfe"] >= 1 and out["max_ms"] > 0
