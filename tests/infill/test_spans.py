import pytest

from infill.spans import KINDS, Span, syntax_spans

PY = '''def f(a, b=2):
    """Doc string."""
    # note here
    if a > 1 and b:
        return g(a)[0].x
    for i, j in zip(a, b):
        x += [k for k in i]
    while True:
        pass
'''


def texts(src, lang, kind):
    return [src[s.start : s.end] for s in syntax_spans(src, lang) if s.kind == kind]


def test_python_spans_by_kind():
    assert texts(PY, "python", "body")[0].startswith('"""Doc string."""')
    assert texts(PY, "python", "body")[0].endswith("pass")
    assert "return g(a)[0].x" in texts(PY, "python", "body")
    assert texts(PY, "python", "comment") == ["Doc string.", "note here"]
    assert texts(PY, "python", "control_header") == ["a > 1 and b", "i, j in zip(a, b)", "True"]
    assert texts(PY, "python", "arguments") == ["a", "a, b"]
    assert texts(PY, "python", "statement") == ["return g(a)[0].x", "x += [k for k in i]", "pass"]
    expr = texts(PY, "python", "expression")
    assert {"g(a)", "g(a)[0]", "g(a)[0].x", "zip(a, b)", "[k for k in i]", "a > 1 and b"} <= set(expr)
    rol = texts(PY, "python", "rest_of_line")
    assert "g(a)[0].x" in rol  # after `return`
    assert "[k for k in i]" in rol  # after `+=`


def test_spans_sorted_valid_deterministic():
    spans = syntax_spans(PY, "python")
    assert spans == sorted(spans, key=lambda s: (s.start, s.end, s.kind, s.node))
    assert spans == syntax_spans(PY, "python")
    assert all(0 <= s.start < s.end <= len(PY) and s.kind in KINDS for s in spans)
    for s in spans:  # never starts or ends in whitespace
        assert not PY[s.start].isspace() and not PY[s.end - 1].isspace()


def test_spans_char_offsets_non_ascii():
    src = 'x = f("é😀", 1)  # ünï 😀\n'
    args = [s for s in syntax_spans(src, "python") if s.kind == "arguments"]
    assert [src[s.start : s.end] for s in args] == ['"é😀", 1']
    assert texts(src, "python", "comment") == ["ünï 😀"]


def test_unknown_language():
    assert syntax_spans("x = 1\n", "cobol") == []


def test_span_is_frozen_plain_data():
    s = Span(1, 2, "body")
    with pytest.raises(AttributeError):
        s.start = 3  # type: ignore[misc]


CASES = {
    "javascript": (
        "function f(a) {\n  // c\n  if (a > 1) { return g(a, 2); }\n  for (let i = 0; i < 3; i++) x.y(i);\n}\n",
        {
            "control_header": ["a > 1", "let i = 0; i < 3; i++"],
            "arguments": ["a, 2", "i"],
            "comment": ["c"],
            "statement": ["return g(a, 2);", "x.y(i);"],
        },
    ),
    "typescript": (
        "function f(a: number): number {\n  while (a < 3) { a = g(a); }\n  return a;\n}\n",
        {"control_header": ["a < 3"], "arguments": ["a"], "statement": ["a = g(a);", "return a;"]},
    ),
    "go": (
        "package m\nfunc f(a int) int {\n\tif err := g(a); err != nil {\n\t\treturn 1\n\t}\n\treturn 0\n}\n",
        {
            "control_header": ["err := g(a); err != nil"],
            "statement": ["return 1", "return 0"],
            "body": ["if err := g(a); err != nil {\n\t\treturn 1\n\t}\n\treturn 0", "return 1"],
        },
    ),
    "rust": (
        "fn f(a: i32) -> i32 {\n    // c\n    let x = g(a);\n    for i in 0..3 { h(i); }\n    x\n}\n",
        {
            "control_header": ["i in 0..3"],
            "statement": ["let x = g(a);", "h(i);"],
            "comment": ["c"],
            "arguments": ["a", "i"],
        },
    ),
    "java": (
        "class A {\n  int f(int a) {\n    if (a > 1) return g(a);\n    return 0;\n  }\n}\n",
        {"control_header": ["a > 1"], "statement": ["return g(a);", "return 0;"], "arguments": ["a"]},
    ),
    "c": (
        "int f(int a) {\n  /* c */\n  for (int i = 0; i < a; i++) { s += h(i); }\n  return s;\n}\n",
        {"control_header": ["int i = 0; i < a; i++"], "statement": ["s += h(i);", "return s;"], "comment": ["c"]},
    ),
    "cpp": (
        "int f(int a) {\n  if (a > 1) { return g(a); }\n  for (auto x : v) { h(x); }\n  return 0;\n}\n",
        {"control_header": ["a > 1", "auto x : v"], "statement": ["return g(a);", "h(x);", "return 0;"]},
    ),
}


@pytest.mark.parametrize("lang", sorted(CASES))
def test_c_like_spans(lang):
    src, expected = CASES[lang]
    for kind, want in expected.items():
        assert texts(src, lang, kind) == want, kind
    assert texts(src, lang, "body")  # every fixture has a function body
    assert texts(src, lang, "rest_of_line")
