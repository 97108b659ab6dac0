import pytest

from infill.holes import CLAMP, DEFAULT, Hole, find_hole, find_placeholders, holes_at, indent_unit, rewrite_hole
from infill.spans import syntax_spans


def at(src):
    """(text, offset) of a fixture with the cursor marked by `|`."""
    return src.replace("|", ""), src.index("|")


SITUATIONS = [
    # (language, fixture, situation)
    ("python", "def f(x):\n    |\n\n\ndef g():\n    return 1\n", "empty_body"),
    ("python", "def f(x):\n    # explain\n    |\n\nx = 1\n", "empty_body"),
    ("python", "def f(x):\n    y = 1\n    |\n    return y\n", "new_statement"),
    ("python", "x = compute(|\n", "rest_of_line"),
    ("python", "total = |\n", "rest_of_line"),
    ("python", "y = | + 1\n", "expression"),
    ("python", "y = foo(a, |)\n", "arguments"),
    ("python", "y = foo(|)\n", "arguments"),
    ("python", "if |:\n    pass\n", "control_header"),
    ("python", "for |:\n    pass\n", "control_header"),
    ("python", "while x and |:\n    pass\n", "control_header"),
    ("python", "x = 1\nif x and |\n", "control_header"),  # a header being typed, its `:` still to come
    ("python", "# says |\nx = 1\n", "comment"),
    ("python", 'def f():\n    """Return |"""\n', "comment"),
    ("python", "x = 1\n\n|", "end_of_file"),
    ("javascript", "function f(a) {\n  |\n}\n", "empty_body"),
    ("javascript", "function f(a) {\n  g();\n  |\n  return a;\n}\n", "new_statement"),
    ("javascript", "if (|) {\n  g();\n}\n", "control_header"),
    ("javascript", "const x = g(1, |);\n", "arguments"),
    ("javascript", "const x = |;\n", "expression"),
    ("javascript", "// does |\nf();\n", "comment"),
    ("typescript", "function f(a: number): number {\n  |\n}\n", "empty_body"),
    ("typescript", "let y: number = |\n", "rest_of_line"),
    ("tsx", "const el = <div>{x}</div>;\nconst y = g(|);\n", "arguments"),
    ("go", "package m\n\nfunc f() {\n\t|\n}\n", "empty_body"),
    ("go", "package m\n\nfunc f() {\n\tfor | {\n\t\tg()\n\t}\n}\n", "control_header"),
    ("rust", "fn f() {\n    let x = g(|);\n}\n", "arguments"),
    ("rust", "fn f() {\n    while | {\n        g();\n    }\n}\n", "control_header"),
    ("rust", "fn f() {\n    /// doc |\n    g();\n}\n", "comment"),
    ("java", "class A {\n  void f() {\n    |\n  }\n}\n", "empty_body"),
    ("java", "class A {\n  void f() {\n    for (|) {\n      g();\n    }\n  }\n}\n", "control_header"),
    ("c", "int f(void) {\n  int x = g(|);\n  return x;\n}\n", "arguments"),
    ("c", "int f(void) {\n  /* note | */\n  return 0;\n}\n", "comment"),
    ("cpp", "int f() {\n  if (|) {\n    g();\n  }\n}\n", "control_header"),
    ("cpp", "int f() {\n  int y = x * |;\n}\n", "expression"),
    (None, "some words |\nmore\n", "line"),
]


@pytest.mark.parametrize(("lang", "src", "situation"), SITUATIONS)
def test_situations(tok, lang, src, situation):
    text, offset = at(src)
    hole = find_hole(text, offset, lang, tok)
    assert (hole.start, hole.end, hole.situation) == (offset, offset, situation)
    lo, hi = CLAMP[situation]
    assert lo <= hole.capacity <= hi


def test_empty_body_indent():
    text, offset = at("class K:\n    def f(self):\n        |\n")
    assert find_hole(text, offset, "python").indent == "        "
    text, offset = at("def f():\n|\n")  # cursor not yet indented: the body's indentation is still known
    hole = find_hole(text, offset, "python")
    assert hole.situation == "empty_body" and hole.indent == "    "


def test_capacity_from_same_kind_spans(tok):
    short = "".join(f"def f{i}(x):\n    return x\n\n" for i in range(6))
    long = "".join(
        f"def f{i}(x):\n" + "".join(f"    y{j} = compute(x, {j}) + other(x, {j})\n" for j in range(8)) + "\n"
        for i in range(6)
    )
    text, offset = at(short + "def g(x):\n    |\n")
    small = find_hole(text, offset, "python", tok).capacity
    text, offset = at(long + "def g(x):\n    |\n")
    big = find_hole(text, offset, "python", tok).capacity
    assert CLAMP["empty_body"][0] <= small < big <= CLAMP["empty_body"][1]
    # body lengths of the file: every body is 8 lines of ~13 tokens, so the capacity covers one.
    assert big >= len(tok.encode("".join(f"    y{j} = compute(x, {j}) + other(x, {j})\n" for j in range(8)).strip()))


def test_defaults_without_samples(tok):
    text, offset = at("if |:\n    pass\n")
    assert find_hole(text, offset, "python", tok).capacity == DEFAULT["control_header"]


def test_counter_kinds(tok):
    text, offset = at("x = 1\ny = 2\nz = 3\nw = |\n")
    by_tok = find_hole(text, offset, "python", tok)
    by_fn = find_hole(text, offset, "python", lambda s: len(tok.encode(s)))
    assert by_tok == by_fn
    assert find_hole(text, offset, "python").situation == "rest_of_line"  # no tokenizer: estimated sizes
    with pytest.raises(TypeError):
        find_hole(text, offset, "python", 3)


def test_holes_at_several_cursors(tok):
    src = "def f(x):\n    |\n\ny = g(|)\n"
    first = src.index("|")
    second = src.index("|", first + 1) - 1
    text = src.replace("|", "")
    holes = holes_at(text, [second, first, first], "python", tok)
    assert [(h.start, h.situation) for h in holes] == [(first, "empty_body"), (second, "arguments")]


def test_rewrite_hole(tok):
    text = "def f(x):\n    return x+1\n"
    start, end = text.index("return"), text.index("+1") + 2
    hole = rewrite_hole(start, end, text, tok)
    n = len(tok.encode(text[start:end]))
    assert (hole.start, hole.end, hole.situation) == (start, end, "rewrite")
    assert hole.capacity == max(CLAMP["rewrite"][0], int(n * 1.5 + 8 + 0.999))
    assert hole.indent == "    "
    assert rewrite_hole(3, 3).capacity == CLAMP["rewrite"][0]
    with pytest.raises(ValueError):
        rewrite_hole(5, 3)


def test_a_rewrite_of_whole_lines_belongs_to_the_block_of_its_first_line():
    text = "class A:\n    def f(self):\n        return 1\n"
    start = text.index("    def")  # the selection starts at column 0, its first line indented by 4
    assert rewrite_hole(start, len(text), text).indent == "    "
    assert rewrite_hole(text.index("def"), len(text), text).indent == "    "  # from the first character: the same
    assert rewrite_hole(text.index("return"), len(text), text).indent == "        "


PLACEHOLDERS = """def a():
    ...


def b(x):
    pass


def c(x):
    y = 1
    pass
    # TODO not a placeholder: a note among code, which a fill would replace
    return y


z = 1  # TODO not a placeholder: annotates code


def d(x):
    # TODO: handle the empty case
"""


def test_find_placeholders_python(tok):
    holes = find_placeholders(PLACEHOLDERS, "python", count_tokens=tok)
    got = [(PLACEHOLDERS[h.start : h.end], h.situation) for h in holes]
    assert got == [("...", "empty_body"), ("pass", "empty_body"), ("# TODO: handle the empty case", "empty_body")]
    assert all(isinstance(h, Hole) and h.capacity > 0 for h in holes)
    start = PLACEHOLDERS.index("def b")
    ranged = find_placeholders(PLACEHOLDERS, "python", (start, len(PLACEHOLDERS)), tok)
    assert [PLACEHOLDERS[h.start : h.end] for h in ranged] == ["pass", "# TODO: handle the empty case"]


def test_a_todo_is_a_placeholder_only_as_all_its_body_holds(tok):
    """From a trial: fill-all replaced upstream notes (`# TODO: this is not the best ...` among code) with code, losing
    the note. A TODO marks code left to write when its body holds nothing else (comments aside, and a docstring in
    Python), whatever its line; an inline `/* TODO */` stays one."""
    src = ("class M {\n  has(key) { // TODO: check the map\n  }\n  get(k) {\n    // TODO: cache\n    return 1;\n  }\n"
           "  put(k) {\n    // TODO: put it\n    // in the map\n  }\n}\nfoo(/* TODO */);\n// TODO: a note\n")
    got = [src[h.start : h.end] for h in find_placeholders(src, "javascript", count_tokens=tok)]
    assert got == ["// TODO: check the map", "// TODO: put it", "/* TODO */"]
    py = 'def h():\n    """Doc."""\n    # TODO: write h\n\n\n# TODO: a note\nx = 1\n'
    assert [py[h.start : h.end] for h in find_placeholders(py, "python", count_tokens=tok)] == ["# TODO: write h"]


def test_a_stub_with_a_docstring_is_a_placeholder_at_its_pass(tok):
    """The usual Python stub: a docstring, then `pass`. The `pass` is the placeholder, the docstring stays; a block
    with other statements, or a `pass` that is not last, is code."""
    src = ('class Shape:\n    def area(self):\n        """The area, in square units."""\n        pass\n\n'
           '    def name(self):\n        \'\'\'Its name.\n\n        Lower case.\n        \'\'\'\n        pass\n\n'
           '    def kept(self):\n        """Docs."""\n        x = 1\n        pass\n\n'
           '    def also_kept(self):\n        """Docs."""\n        pass\n        return 1\n')
    holes = find_placeholders(src, "python", count_tokens=tok)
    assert [(src[h.start : h.end], h.situation) for h in holes] == [("pass", "new_statement")] * 2
    assert [src.count("\n", 0, h.start) for h in holes] == [3, 10]


def test_code_meant_to_be_empty_is_not_a_placeholder(tok):
    """From a trial on boltons: fill-all replaced an exception class's `pass` and a doctest's `...` line inside a
    docstring, which split the docstring. A `pass` is a placeholder only as a function's body; `...` never inside a
    string; an `@overload` or abstract method is empty by design."""
    src = ('import abc\nfrom typing import overload\n\n\nclass SlugError(ValueError):\n    pass\n\n\n'
           'try:\n    import zlib\nexcept ImportError:\n    pass\n\n\n'
           'def split(text):\n    """Split.\n\n    >>> for w in split(\'a b\'):\n    ...     print(w)\n    ...\n'
           '    a\n    """\n    ...\n\n\n'
           '@overload\ndef f(x: int) -> int:\n    ...\n\n\n'
           'class Base(abc.ABC):\n    @abc.abstractmethod\n    def run(self):\n        pass\n\n'
           '    def stop(self):\n        pass\n')
    holes = find_placeholders(src, "python", count_tokens=tok)
    assert [(src.count("\n", 0, h.start) + 1, src[h.start : h.end]) for h in holes] == [(23, "..."), (37, "pass")]


def test_find_placeholders_c_like(tok):
    src = "int f(int a) {\n  // TODO\n}\nint g(void) {\n  return /* TODO */;\n}\n"
    holes = find_placeholders(src, "c", count_tokens=tok)
    assert [(src[h.start : h.end], h.situation) for h in holes] == [
        ("// TODO", "empty_body"),
        ("/* TODO */", "expression"),
    ]


def test_find_placeholders_unknown_language():
    src = "step one\n...\n# TODO write more\n"
    holes = find_placeholders(src, None)
    assert [src[h.start : h.end] for h in holes] == ["...", "# TODO write more"]
    assert all(h.situation == "line" for h in holes)


def test_indent_unit():
    assert indent_unit("if x:\n  y\n  if z:\n    w\n") == "  "
    assert indent_unit("if x:\n\ty\n") == "\t"
    assert indent_unit("x = 1\n") == "    "


def _big_python_file(n_funcs: int = 1500) -> str:
    parts = []
    for i in range(n_funcs):
        parts.append(f"def f{i}(a, b):\n    x = a + {i}\n    if x > b:\n        return x\n    return b * {i}\n\n\n")
    return "".join(parts)


def test_a_big_file_is_sized_from_a_window_around_the_cursor():
    from infill import _syntax

    text = _big_python_file()
    assert len(text) > 3 * _syntax.WINDOW_RADIUS
    offset = text.index("    if x > b:", len(text) // 2)
    start, end = _syntax.window(text, offset)
    assert 0 < start < offset - _syntax.WINDOW_RADIUS // 2 and offset + _syntax.WINDOW_RADIUS // 2 < end < len(text)
    assert text[start:].startswith("def ") and text[end:].startswith("def ")  # cut at top-level lines
    # a cursor on an empty line in a body: the same hole as the whole file would give, at the file's offsets
    cut = text[:offset] + text[offset:].split("\n", 1)[1]
    hole = find_hole(cut, offset, "python", None)
    whole = find_hole(cut, offset, "python", None, spans=syntax_spans(cut, "python"))
    assert (hole.start, hole.end, hole.situation, hole.indent) == (offset, offset, whole.situation, whole.indent)
    assert hole.situation == "new_statement"
    # near either end the window reaches the end of the text
    assert _syntax.window(text, 10)[0] == 0 and _syntax.window(text, len(text) - 10)[1] == len(text)
    # a small file is never cut
    assert _syntax.window(text[:1000], 500) == (0, 1000)


def test_a_big_file_with_no_unindented_line_before_the_window_is_cut_from_its_start():
    from infill import _syntax

    # indented code all the way from the top (a fragment, or a file inside one long class): the search back for a
    # top-level line reaches offset 0 and must stop there, not wrap around to the end of the text
    body = "".join(f"    x{i} = compute({i}, value)\n" for i in range(1500))
    text = body + _big_python_file(400)
    offset = text.rfind("\n", 0, int(1.5 * _syntax.WINDOW_RADIUS)) + 1  # between one and two radii from the top
    start, end = _syntax.window(text, offset)
    assert 0 == start < offset < end <= len(text)
    hole = find_hole(text, offset + 4, "python", None)
    assert hole.start == offset + 4


GROWING = [  # (language, fixture, situation, the most tokens its fill may grow to)
    ("python", "def f(x):\n    |\n\n\ndef g():\n    return 1\n", "empty_body", 16),
    ("python", "def f(x):\n    y = 1\n    |\n    return y\n", "new_statement", 16),
    ("python", "total = |\n", "rest_of_line", 16),
    ("python", "y = | + 1\n", "expression", 16),
    ("python", "y = foo(a, |)\n", "arguments", 16),
    ("python", "if |:\n    pass\n", "control_header", 16),
    ("python", "x = 1\n\n|", "end_of_file", 16),
    ("python", "# says |\nx = 1\n", "comment", CLAMP["comment"][1]),
    (None, "some words |\nmore\n", "line", CLAMP["line"][1]),
]


@pytest.mark.parametrize(("lang", "src", "situation", "limit"), GROWING)
def test_every_cursor_fill_is_bounded_code_at_16_tokens(tok, lang, src, situation, limit):
    text, offset = at(src)
    hole = find_hole(text, offset, lang, tok)
    assert (hole.situation, hole.limit) == (situation, limit)


def test_a_body_is_sized_from_its_file_but_grows_no_further_than_a_statement(tok):
    long = "".join(
        f"def f{i}(x):\n" + "".join(f"    y{j} = compute(x, {j}) + other(x, {j})\n" for j in range(8)) + "\n"
        for i in range(6)
    )
    text, offset = at(long + "def g(x):\n    |\n")
    hole = find_hole(text, offset, "python", tok)
    # the capacity still covers a body of the file (a placeholder's canvas, a backend that starts at the capacity);
    # a growing fill from the cursor stops at its limit
    assert hole.situation == "empty_body" and hole.capacity > 64 and hole.limit == 16
    assert rewrite_hole(0, 5, text, tok).limit is None  # a rewrite keeps to its capacity, it never grows


def test_the_server_and_the_eval_size_and_fill_a_cursor_hole_alike():
    """One sizing path: the eval's fill and the server's plan and run give a hole the same canvas, bound and fill
    (the shipped model, greedy, so the fills must be token for token the same)."""
    from engine.backend import EmbeddedBackend
    from infill import evaluate as ev
    from server import fill
    from server.config import Settings

    backend = EmbeddedBackend(threads=1)
    settings = Settings()
    # a hole whose fill outgrows the first canvas (8 slots) with this model: the restart path is shared too
    prefix = "def check(name, value):\n    if not isinstance(value, int):\n        raise "
    suffix = "\n    return value\n"
    task = ev.Task("check", "heldout", "python", prefix, suffix, 'TypeError(f"{name} must be an int")')
    sampler = ev.parse_sampler("default", settings.sampler())
    ours = ev.fill_task(backend, task, ev.parse_sizing("syntax"), sampler, settings.context_budget)
    plan = fill.plan_cursor(prefix + suffix, len(prefix), "python", backend.tokenizer, settings.context_budget,
                            settings.max_tokens)
    assert plan.spec.limit == plan.holes[0].limit == 16
    served = fill.run(backend, plan, settings.sampler(), session="served")
    assert (ours.situation, ours.capacity) == (plan.holes[0].situation, plan.holes[0].capacity)
    assert (ours.nfe, ours.tokens, ours.restarts) == (served.stats.nfe, served.stats.tokens, served.stats.restarts)
    assert ours.text == served.fills[0] and 0 < ours.tokens <= 16


def test_a_minified_line_is_cut_to_the_window_and_sized_without_reading_all_of_it():
    """A line far longer than the window (minified code) does not make the window, nor the line keys of the spans on
    it, as long as itself: whole, a 375k-char line took minutes of sizing and held up every later request."""
    from infill import _syntax

    line = "var x=" + "a.b(c,d)+e[f]*g-h;" * 20_000 + "\n"
    for text, offset in ((line + "var b = a +", len(line) + 11), ("var b = a +\n" + line, 11)):
        start, end = _syntax.window(text, offset)
        assert offset - 2 * _syntax.WINDOW_RADIUS <= start <= offset <= end <= offset + 2 * _syntax.WINDOW_RADIUS
        hole = find_hole(text, offset, "javascript", None)
        assert hole.start == hole.end == offset and hole.capacity > 0


def test_a_stub_whose_docstring_says_it_does_nothing_is_code(tok):
    """From a re-check: pygls' `_apply_none_change` ("Currently does nothing, provided for consistency.") was offered a
    fill that wiped the document on every such change."""
    src = ('class D:\n    def _apply_none_change(self):\n'
           '        """Currently does nothing, provided for consistency."""\n        pass\n\n'
           '    def hook(self):\n        """A no-op hook."""\n        pass\n\n'
           '    def area(self):\n        """The area."""\n        pass\n')
    holes = find_placeholders(src, "python", count_tokens=tok)
    assert [src.count("\n", 0, h.start) + 1 for h in holes] == [12], "only area's pass"

