"""The edit guard: edits that would make the code worse are refused with a reason; cheap repairs come first."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

from infill import _syntax
from infill.guard import Proposal, _repeated_phrase, check

DOC = "class Cart:\n    def total(self):\n        ...\n\n    def count(self):\n        return len(self.items)\n"
DOTS = DOC.index("...")
COUNT = DOC.index("    def count")


def one(text: str, start: int, end: int, new: str, raw: str = "", lang: str | None = "python"):
    (v,) = check(text, lang, [Proposal(start, end, new, raw or new)])
    return v


def test_a_fill_that_parses_passes_unchanged():
    v = one(DOC, DOTS, DOTS + 3, "return sum(self.items)")
    assert v.ok and v.text == "return sum(self.items)" and v.repair == ""


def test_emptying_a_placeholder_or_a_selection_is_refused_and_the_text_kept():
    v = one(DOC, DOTS, DOTS + 3, "", raw="")
    assert not v.ok and v.text == "..." and v.reason == "the answer was empty"
    v = one(DOC, COUNT, len(DOC), "   \n", raw="")
    assert v.text == DOC[COUNT:] and "empty" in v.reason


def test_an_empty_fill_says_whether_the_model_wrote_broken_code():
    v = one(DOC, DOTS, DOTS + 3, "", raw="return (1 +")
    assert v.text == "..." and v.reason.startswith("the answer would add parse errors: `return (1 +`")


def test_an_answer_post_processing_emptied_says_whether_it_repeated_the_code():
    text = "".join(f"const v{i} = {i}\n" for i in range(10)) + "function f () {\n  return this.formatted\n}\n"
    at = text.index("this.formatted") + len("this.formatted")
    # a `;` dropped in a file written without them (a VS Code trial was told it had repeated the code)
    assert one(text, at, at, "", raw=";", lang="javascript").reason == \
        "nothing of the answer fits the code around it: `;`"
    assert one(text, at, at, "", raw="this.formatted", lang="javascript").reason == \
        "the answer only repeated the code around it"


def test_a_rewrite_equal_to_the_selection_is_refused():
    v = one(DOC, COUNT, len(DOC), "    def count(self):\n        return len(self.items)\n")
    assert v.reason == "the answer is the same as the text it would replace" and v.text == DOC[COUNT:]


def test_a_rewrite_that_adds_parse_errors_is_refused_with_a_snippet():
    v = one(DOC, COUNT, len(DOC), "    defquantity(self, amount:: int)\n")
    assert v.text == DOC[COUNT:]
    assert v.reason == "the answer would add parse errors: `defquantity(self, amount:: int)`"


def test_an_unclosed_bracket_is_closed_before_the_check():
    v = one(DOC, DOTS, DOTS + 3, "return sum(self.items")
    assert v.ok and v.text == "return sum(self.items)" and v.repair == "brackets"


def test_a_whole_line_rewrite_gets_its_newline_back():
    text = "def f(x):\n    y = x\n    return y\n"
    start, end = text.index("    y"), text.index("    return")
    v = one(text, start, end, "    y = x * 2")
    assert v.ok and v.text == "    y = x * 2\n" and v.repair == "newline"


def test_an_inline_completion_into_broken_code_only_needs_not_to_add_errors():
    text = "if item.\n"  # the user is typing: the document does not parse yet
    at = len("if item.")
    assert one(text, at, at, "quantity > 5:").ok
    v = one(text, at, at, "")
    assert not v.ok and v.text == "" and v.reason == "the answer was empty"


def test_a_completion_whose_own_tokens_do_not_parse_is_refused_though_the_line_was_broken_before():
    # a trial typed `word = re.sub(r"^\w", l` and was offered `ambda m:: m)`: the line's one error moved into the
    # answer, so the error count stayed the same
    text = 'import re\n\n\ndef humanize(word):\n    word = re.sub(r"^\\w", l\n    return word\n'
    at = text.index(", l") + len(", l")
    v = one(text, at, at, "ambda m:: m)")
    assert not v.ok and v.reason == "the answer would add parse errors: `ambda m:: m)`"
    assert one(text, at, at, "ambda m: m.group(0).upper(), word)").ok
    assert one(text, at, at, "ambda m: m").ok  # an answer that stops before its line ends: its tokens parse
    js = "function f(a) {\n  const type = \n  return type;\n}\n"
    at = js.index("= ") + 2
    assert not one(js, at, at, "=> null;", lang="javascript").ok  # a real fill: `type = => null`
    assert one(js, at, at, "typeof a;", lang="javascript").ok


def test_a_completion_that_repeats_the_line_above_is_refused():
    # held-out fills offered `self.errors = errors` again on the line after it, `import sys` after `import sys`
    text = "class C:\n    def __init__(self, errors, atomic):\n        self.errors = errors\n        \n"
    at = len(text) - 1
    v = one(text, at, at, "self.errors = errors")
    assert not v.ok and v.reason == "the answer repeats the line above: `self.errors = errors`"
    assert one(text, at, at, "self.atomic = atomic").ok
    typed = text[:at] + "self.err" + text[at:]  # the line the user began, completed to the one above
    assert not one(typed, at + 8, at + 8, "ors = errors").ok
    assert one(typed, at + 8, at + 8, "or_count = 0").ok
    blank = "import sys\n\n\n"  # blank lines between do not hide the repeat
    assert not one(blank, len(blank) - 1, len(blank) - 1, "import sys").ok
    assert one(blank, len(blank) - 1, len(blank) - 1, "import time").ok


def test_a_completion_that_sets_again_what_the_line_above_set_is_refused():
    # a trial pressed Enter after `isdupval = oldkey is not MISSING` and was offered `isdupval = False`
    text = "def dedup(oldkey, MISSING):\n    isdupval = oldkey is not MISSING\n    \n    return isdupval\n"
    at = text.index("    \n") + 4
    v = one(text, at, at, "isdupval = False")
    assert not v.ok and v.reason == "the answer sets `isdupval` again right after the line above set it"
    assert one(text, at, at, "isdupval = isdupval and oldkey").ok  # reads it: the value above is used
    assert one(text, at, at, "isdupkey = False").ok
    typed = text[:at] + "isdupval = " + text[at:]  # the user wrote the `=`: the value is theirs to ask for
    assert one(typed, at + 11, at + 11, "False").ok
    js = "function f(a) {\n  let n = a.length;\n  \n  return n;\n}\n"
    at = js.index("  \n") + 2
    assert not one(js, at, at, "n = 0;", lang="javascript").ok
    assert one(js, at, at, "n = n + 1;", lang="javascript").ok


def test_a_completion_that_ends_its_statement_with_a_bracket_still_open_is_refused():
    # a trial typed `return Math.floor(this.valueOf() / ` in dayjs and was offered `this.unixTime();`: the `(` stays
    # open, the line was broken before and after alike, and the `;` made it look finished
    js = "class D {\n  unix() {\n    return Math.floor(this.valueOf() / \n  }\n  valueOf() {\n    return 1\n  }\n}\n"
    at = js.index("/ ") + 2
    v = one(js, at, at, "this.unixTime();", lang="javascript")
    assert not v.ok and v.reason == "the answer would add parse errors: `this.unixTime();`"
    assert one(js, at, at, "1000);", lang="javascript").ok
    assert one(js, at, at, "this.unit(1000", lang="javascript").ok  # stops before its line ends: left for the user
    py = "def f(a):\n    return max(a, \n\n\ndef g():\n    return 1\n"
    at = py.index("a, ") + 3
    assert one(py, at, at, "key=len)", lang="python").ok
    assert one(py, at, at, "key=len", lang="python").ok  # an open bracket at the answer's end is not inside it


def test_a_closing_brace_after_a_finished_statement_in_one_big_function_is_judged_on_the_whole_file():
    # dayjs's module is one top-level function: the window around the cursor is cut inside it, broken already, and
    # a `};` offered after `return this.startOf(units); ` closed the function early (Node then refused the file) while
    # leaving the window's count as it was
    methods = "".join(f"  _proto.m{k} = function m{k}(units) {{\n    var other = dayjs(units);\n"
                      f"    return this.startOf(units + {k});\n  }};\n\n" for k in range(200))
    text = "var Dayjs = function () {\n  function Dayjs() {}\n  var _proto = Dayjs.prototype;\n" + methods + \
        "  return Dayjs;\n}();\n\nexport default Dayjs;\n"
    at = text.index("return this.startOf(units + 20);") + len("return this.startOf(units + 20); ")
    assert _syntax.is_big(text) and _syntax.brokenness(text, "javascript")[0] == 0
    start, end = _syntax.window(text, at)  # from the file's start into the function, whose `{` it leaves open
    assert start == 0 and at < end < len(text) and _syntax.brokenness(text[start:end], "javascript")[0] > 0
    v = one(text, at, at, "};", lang="javascript")
    assert not v.ok and v.reason == "the answer would add parse errors: `};`"
    at = text.index("var other = dayjs(units);", at - 80) + len("var other = dayjs(units);")
    assert one(text, at, at, " if (other) other.x();", lang="javascript").ok  # before the return: it runs


def test_a_cursor_fill_that_would_never_run_or_would_leave_code_never_run_is_refused():
    # a trial was offered `return word` on a new line after `return word.lower()`
    text = "def underscore(word):\n    word = word.replace('-', '_')\n    return word.lower()\n    \n\n\ndef f(x):\n" \
        "    if x:\n        return 1\n    y = x + 1\n    \n    print(y)\n\n\ndef g(x):\n    if x:\n        return 1\n" \
        "    \n"
    at = text.index("    \n\n\ndef f") + 4
    v = one(text, at, at, "return word")
    assert not v.ok and v.reason == "the answer would never run: it comes after `return word.lower()`"
    at = len(text) - 1
    assert one(text, at, at, "return 2").ok  # after the `if`'s return, at the end of the function's block: it runs
    at = text.index("    \n    print(y)") + 4
    v = one(text, at, at, "return y")
    assert not v.ok and v.reason == "the answer makes the code after it unreachable: `return y`"
    js = "function f(a) {\n  return a.x;\n  \n}\n"
    at = js.index("  \n}") + 2
    assert not one(js, at, at, "return a;", lang="javascript").ok
    assert one(js, at, at, "// a comment", lang="javascript").ok


def test_fills_that_break_the_file_together_are_refused_from_the_last():
    text = "x = [\n    ...\n]\ny = 1\n...\n"
    a, b = text.index("..."), text.rindex("...")
    vs = check(text, "python", [Proposal(a, a + 3, "1, 2"), Proposal(b, b + 3, "z = 3")])
    assert [v.ok for v in vs] == [True, True]
    vs = check(text, "python", [Proposal(a, a + 3, "1, 2"), Proposal(b, b + 3, "def g(:")])
    assert vs[0].ok and not vs[1].ok and vs[1].text == "..."


def test_an_unknown_language_still_gets_the_empty_and_same_checks():
    assert one("a\nb\n", 0, 1, "", lang=None).text == "a"
    assert one("a\nb\n", 0, 1, "c", lang=None).ok


def test_python_indentation_that_tree_sitter_lets_through_is_refused():
    text = "def f(values):\n    total = 0\n    for v in values:\n        total += v\n    return total\n"
    start, end = text.index("    total = 0"), text.index("    return")
    bad = "    total = 0\n    for v in values:\n        total += v\n       values = []\n"  # one column off
    v = one(text, start, end, bad)
    assert not v.ok and v.reason.startswith("the answer would add parse errors")
    good = "    total = sum(values)\n"
    assert one(text, start, end, good).ok
    broken_before = "def f(:\n    x = 1\n"  # a document that does not compile: only tree-sitter's count decides
    assert one(broken_before, broken_before.index("x = 1"), broken_before.index("x = 1") + 5, "y = 2").ok


def test_garbage_that_joins_an_existing_error_is_refused_though_the_count_stays():
    # a buffer being typed: the class is not closed yet (2 MISSING nodes); tree-sitter folds the garbage into an ERROR
    # node without adding to the count, but that node's bytes grow by more than the edit
    text = "class A {\n  void f() {\n    int x = 1;\n  }\n  /** Docs for g. TODO */\n"
    text += "  void g() {\n    int y = 2;\n  }\n  void h() {\n"
    a, b = text.index("/**"), text.index("*/") + 2
    v = one(text, a, b, " * *\n * @ @ @ @ * *\n * @ @", lang="java")
    assert not v.ok and v.reason == "the answer would add parse errors: `* *`"
    assert one(text, a, b, "/** Docs for g. */", lang="java").ok  # a fill inside the broken text is still fine


def _long_class_file(n_methods: int = 300) -> str:
    """A big file whose code is one long class of documented methods (click's core.py has such classes), of different
    lengths so that a window of fixed size starts at different places in them: in docstrings, in string literals."""
    methods = "".join(
        f"    def get_help_{i}(self, ctx):\n"
        '        """Formats the help into a string and returns it.\n\n'
        "        Calls :meth:`format_help` internally.\n"
        + "        More on it, the *details* (with `code`).\n" * (i % 5)
        + '        """\n'
        "        if ctx.resilient_parsing:\n"
        "            raise TypeError(\n"
        f'                "the help option {i} is not allowed here, it "\n'
        + '                "conflicts with the name of a parameter."\n' * (i % 3)
        + "            )\n"
        "        formatter = ctx.make_formatter()\n"
        f"        return formatter.getvalue().rstrip({i})\n\n"
        for i in range(n_methods))
    return "import sys\n\n\nclass Command:\n" + methods + "\n\ndef main():\n    return 0\n"


def test_a_fill_deep_in_a_long_class_of_a_big_file_is_judged_like_the_whole_file():
    from infill import _syntax
    from infill.postprocess import finalize

    # the window around the cursor finds no unindented line near it; cut at any line it could start inside a string,
    # everything after would parse as broken, and fills that parse "added" errors: every completion there was refused
    whole = _long_class_file()
    for k in range(150, 200):
        typed = f"return formatter.getvalue().rstrip({k})"
        at = whole.index(typed) + len("return formatter.")
        text = whole[:at] + whole[at + len(typed) - len("return formatter."):]  # the user is typing `formatter.`
        assert _syntax.is_big(text)
        start, end = _syntax.window(text, at)
        assert 0 < start < at < end < len(text)
        v = one(text, at, at, "getvalue()")
        assert v.ok and v.text == "getvalue()", (k, v.reason)
        assert finalize(text[:at], "getvalue()", text[at:], "python", "rest_of_line") == "getvalue()", k


def test_a_fill_that_leaves_a_body_with_only_a_comment_is_refused():
    # tree-sitter parses a body of only a comment as an empty block, without an error; Python does not compile it
    # (found with :DiffusionFill on h11's _writers.py: a lone `pass` became ` #` and the file stopped compiling)
    text = "class W:\n    def send(self, data):\n        pass\n\n    def eom(self):\n        pass\n\n\nx = 1\n"
    at = text.rindex("pass")
    for new in ["#", " # done"]:
        v = one(text, at, at + 4, new)
        assert not v.ok and v.text == "pass" and "only a comment" in v.reason, new
    assert one(text, at, at + 4, "return None  # done").ok


def test_a_body_left_with_only_a_comment_is_refused_in_a_long_class_of_a_big_file_too():
    from infill import _syntax

    # the window there starts with an indented method, which Python compiles only as a class body
    whole = _long_class_file()
    cut = whole.index("    def get_help_200(")
    text = whole[:cut] + "    def stub(self):\n        pass\n\n" + whole[cut:]
    at = text.index("pass", cut)
    start, _ = _syntax.window(text, at, at + 4)
    assert text[start] == " "
    v = one(text, at, at + 4, "#")
    assert not v.ok and v.text == "pass", v
    assert one(text, at, at + 4, "return None").ok


def test_a_rewrite_in_a_big_file_whose_window_starts_inside_a_docstring_is_judged_on_the_whole_file():
    # no top-level line or definition within reach before the edit: the window starts inside the docstring, parses as
    # broken already, and an edit that stops the file compiling added no error to it (a trial accepted one)
    from infill import _syntax

    doc = "\n".join(f"    line {i} of a long docstring, with words" for i in range(400))
    text = f'def remap(root):\n    """Remap.\n\n{doc}\n    """\n    # TODO: typecheck?\n    return root\n\n\nx = 1\n'
    start = text.index("# TODO")
    end = text.index("\n", start)
    assert _syntax.is_big(text)
    w0, _ = _syntax.window(text, start, end)
    assert text.index('"""') < w0 < text.rindex('"""')  # the window starts inside the docstring
    v = one(text, start, end, "return visited_item = visit(path, key, value)")
    assert not v.ok and "parse errors" in v.reason
    assert one(text, start, end, "root = list(root)").ok


def test_a_rewrite_to_the_end_of_the_file_keeps_the_final_newline_and_a_body():
    text = "class Bits:\n    def as_int(self):\n        return 1\n\n    def __repr__(self):\n        return 'x'\n"
    start = text.index("    def __repr__")
    v = one(text, start, len(text), "    def asbytes(self):")  # tree-sitter takes a def without a body at the end
    assert not v.ok and "parse errors" in v.reason
    v = one(text, start, len(text), "    def __repr__(self):\n        return 'Bits()'")
    assert v.ok and v.text.endswith("'Bits()'\n") and v.repair == "newline"
    bare = text.rstrip("\n")  # no final newline: a one-line rewrite of the last line, no line break in it anywhere
    at = bare.rindex("return")
    v = one(bare, at, len(bare), "def asbytes(self):")
    assert not v.ok and "parse errors" in v.reason


def test_a_rewrite_that_removes_a_definition_still_used_is_refused_with_the_line():
    text = "def add(a, b):\n    total = a + b\n    return total\n"
    start, end = text.index("    total"), text.index("    return")
    v = one(text, start, end, "    a + b\n")
    assert not v.ok and v.reason == "the answer removes a definition the code still uses: `total` (line 3)"
    assert v.text == text[start:end]
    assert one(text, start, end, "    total = b + a\n").ok  # redefined: fine
    js = "function send(data) {\n  const target = data.buf;\n  let offset = 0;\n  return target[offset];\n}\n"
    start, end = js.index("  const"), js.index("  return")
    v = one(js, start, end, "  let offset = 1;\n", lang="javascript")
    assert not v.ok and v.reason == "the answer removes a definition the code still uses: `target` (line 4)"
    # the line named is the use in the edit's own function, not the first of another function's own `table`
    two = ("def first(db):\n    table = db.open()\n    return table\n\n\n"
           "class Store:\n    def get(self):\n        table = self._read()\n        x = 1\n\n        if not table:\n"
           "            return x\n        return table[0]\n")
    start, end = two.index("        table = self"), two.index("        x = 1")
    v = one(two, start, end, "        y = self._read()\n")
    assert not v.ok and v.reason == "the answer removes a definition the code still uses: `table` (line 11)"
    # names bound several at once: a trial accepted a rewrite of ajv's two destructuring lines (TypeScript, both
    # editors) into one call, while the code below read `it` and `items`
    ts = ("export function code(cxt: KeywordCxt): void {\n  const {parentSchema, it} = cxt\n"
          "  const {items} = parentSchema\n  if (!Array.isArray(items)) {\n"
          "    checkStrictMode(it, '\"additionalItems\" is ignored')\n    return\n  }\n  validate(cxt, items)\n}\n")
    start, end = ts.index("  const {parentSchema"), ts.index("  if (")
    v = one(ts, start, end, "  checkStrictMode(cxt, '\"additionalItems\" is not when \"items\" is not an array')\n",
            lang="typescript")
    assert not v.ok and v.reason.startswith("the answer removes a definition the code still uses: `it`"), v.reason
    assert one(ts, start, end, "  const {parentSchema, it} = cxt\n  const items = parentSchema.items\n",
               lang="typescript").ok  # the same names, bound otherwise
    renamed = "function f(o) {\n  const {a: first, b = 2, ...rest} = o\n  return [first, b, rest]\n}\n"
    start, end = renamed.index("  const"), renamed.index("  return")
    v = one(renamed, start, end, "  const a = o.a\n", lang="javascript")
    assert not v.ok and "`b`" in v.reason, v.reason  # the bound names: first, b, rest (not the key `a`)
    py = "def split(pair):\n    head, tail = pair\n    return head + tail\n"
    start, end = py.index("    head,"), py.index("    return")
    v = one(py, start, end, "    head = pair[0]\n")
    assert not v.ok and v.reason == "the answer removes a definition the code still uses: `tail` (line 3)", v.reason
    # a comment defines nothing, whatever words it has
    words = "def f(check):\n    # TODO: type check, then the function check\n    return check\n"
    start = words.index("    #")
    assert one(words, start, words.index("    return"), "    # later\n").ok
    unused = "def f(x):\n    tmp = x * 2\n    return x\n"  # nothing else uses it: removing it is the rewrite's business
    start, end = unused.index("    tmp"), unused.index("    return")
    assert one(unused, start, end, "    x = x * 2\n").ok


STUBS = ("class Lock:\n    def __enter__(self):\n        pass\n\n    def __exit__(self, *a):\n        pass\n\n\n"
         "def size(items):\n    ...\n\n\ndef helper(x):\n    return x\n")


def test_a_fill_that_reads_a_name_nothing_defines_is_refused():
    """From a trial: fill-all turned `pass` into `____`, which compiles and raises NameError when run."""
    at = STUBS.index("pass")
    v = one(STUBS, at, at + 4, "____")
    assert not v.ok and v.reason == "the answer uses `____`, which nothing in the file defines" and v.text == "pass"
    dots = STUBS.index("...")
    for fine in ("return len(items)", "return helper(items)", "return Lock", "import os\n    return os.sep"):
        assert one(STUBS, dots, dots + 3, fine).ok, fine
    v = one(STUBS, dots, dots + 3, "return count(items)")
    assert v.reason == "the answer uses `count`, which nothing in the file defines"
    # a name the file already reads unbound (a global set elsewhere) is not the edit's doing; a star import can bind any
    assert one(STUBS + "print(count)\n", dots, dots + 3, "return count(items)").ok
    star = "from os.path import *\n"
    assert one(star + STUBS, len(star) + dots, len(star) + dots + 3, "return count(items)").ok
    # a cursor fill too (a trial was offered `self._inv = inv` in an `__init__` without `inv`), and a name the user
    # began typing if the answer finishes it (a trial: `uni` finished as `unique`); one typed whole is the user's, and
    # may be defined further on
    assert one(STUBS, dots + 3, dots + 3, " or count(items)").reason == \
        "the answer uses `count`, which nothing in the file defines"
    typed = STUBS[: dots + 3] + " or cou" + STUBS[dots + 3 :]
    assert one(typed, dots + 10, dots + 10, "nt(items)").reason == \
        "the answer uses `count`, which nothing in the file defines"
    whole = STUBS[: dots + 3] + " or count" + STUBS[dots + 3 :]
    assert one(whole, dots + 12, dots + 12, "(items)").ok


def test_a_name_bound_only_where_the_edit_replaces_is_unbound_after_it():
    """The check skips the edited file's parse for names bound on lines no edit touches; a name whose only binding the
    edit replaces is still found."""
    src = "def g():\n    n = 2\n    return 0\n"
    at = src.index("return 0")
    assert one(src, at, at + 8, "return n").ok, "bound on a line the edit leaves"
    at = src.index("n = 2")
    v = one(src, at, at + 5, "return n")
    assert v.reason == "the answer uses `n`, which nothing in the file defines"
    # an attribute's name is no name of the file: `path.sep`, `os.sep` read no `sep`
    dots = STUBS.index("...")
    assert one("import os\n" + STUBS, 10 + dots, 10 + dots + 3, "return os.sep").ok


def test_a_name_bound_only_in_another_function_is_unbound_where_the_edit_reads_it():
    """From a trial: a rewrite of httpx's port_or_default returned `return url.scheme == other.scheme`, `other` being
    a parameter of the next function only; the old check counted any binding in the file, and it was accepted."""
    src = ("import os\n\nLIMIT = 3\n\n\nclass URL:\n    scheme = 'http'\n\n\n"
           "def port_or_default(url):\n    if url.port is not None:\n        return url.port\n    return None\n\n\n"
           "def same_origin(url, other):\n    total = [n for n in range(LIMIT)]\n"
           "    def inner():\n        return url\n    return url.scheme == other.scheme\n")
    start = src.index("    if url.port")
    end = src.index("\n\n\ndef same_origin")
    v = one(src, start, end, "    return url.scheme == other.scheme")
    assert v.reason == "the answer uses `other`, which is not defined where it is used (only in another scope)"
    for used in ("n", "scheme", "total", "inner"):  # a comprehension's, a class body's, another function's locals
        assert not one(src, start, end, f"    return {used}").ok, used
    # what does reach it: its own parameter, module-level names, imports, builtins
    reach = "    if url.port:\n        return url.port\n    return os.sep + str(LIMIT) + URL.scheme"
    assert one(src, start, end, reach).ok
    # a function's own locals, and an enclosing function's (a closure)
    at = src.index("return url\n")
    assert one(src, at, at + len("return url"), "return other.scheme + str(total)").ok


def test_the_unbound_check_reads_a_file_with_a_stub_body_of_only_a_comment():
    """From a trial: with one body left as only a `# TODO` comment the file does not parse, and the check was off, so
    fill-all wrote `_______` into another placeholder."""
    src = STUBS + "\n\ndef source(self):\n    # TODO: read the file\n"
    dots = src.index("...")
    v = one(src, dots, dots + 3, "_______")
    assert v.reason == "the answer uses `_______`, which nothing in the file defines"
    assert one(src, dots, dots + 3, "return helper(items)").ok
    # the stub is read as `pass` on its comment's line: every other line keeps its number
    module = _syntax.python_module_filled("if x:\n    # c\n\ny = 1\n")
    assert module is not None and [n.lineno for n in module.body] == [1, 4]
    assert _syntax.python_module_filled("def f():\ndef g(): pass\n") is None, "no comment or blank line to fill"


def test_an_edit_python_parses_but_will_not_compile_is_refused():
    """ast.parse takes `return` outside a function and a late `from __future__` import; the compiler does not (a trial
    accepted a rewrite that put the second in the middle of a file)."""
    src = "import os\n\nx = 1\ny = 2\n"
    at = src.index("x = 1")
    assert "parse errors" in one(src, at, at + 5, "return 1").reason
    assert "parse errors" in one(src, at, at + 5, "from __future__ import annotations").reason
    assert one(src, at, at + 5, "x = 3").ok


def test_code_replaced_by_only_a_comment_or_a_stutter_is_refused():
    """From a trial: fill-all turned a deliberate `pass` into four lines of junk comments, and a rewrite gave
    `cur_len += len(chunks[-1])` four times over; both parsed."""
    src = "def f(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total\n"
    at = src.index("total += x")
    end = at + len("total += x")
    v = one(src, at, end, "#\n\n# from the text the the is")
    assert v.reason == "the answer is only a comment: `# from the text the the is`"
    assert one(src, at, end, "total += x  # add it").ok, "code with a comment is code"
    js = "function f() {\n  return 1;\n}\n"
    at = js.index("return 1;")
    assert "only a comment" in one(js, at, at + 9, "// return one", lang="javascript").reason
    assert "only a comment" in one(js, at, at + 9, "/* one */", lang="javascript").reason
    # a comment may replace a comment (a TODO marker), and a cursor fill may be a comment
    todo = "def f():\n    # TODO: sum\n    return 0\n"
    at = todo.index("# TODO")
    assert one(todo, at, at + len("# TODO: sum"), "# sums the list").ok
    assert one(src, src.index("return"), src.index("return"), "# done\n    ").reason != "only a comment"
    at = src.index("total += x")
    assert one(src, at, end, "total += x\n        total += x").reason == "the answer repeats the line `total += x`"
    assert one(src, at, end, "total += x\n        total -= 1").ok
    # a line the replaced text already has twice is the code's own, and closers and blank lines are no stutter
    twice = "def g(it):\n    next(it)\n    next(it)\n    return it\n"
    at = twice.index("    next")
    assert one(twice, at, twice.index("    return"), "    next(it)\n    next(it)\n    print(1)\n").ok
    block = "function g(a) {\n  if (a) {\n    a++;\n  }\n}\n"
    at = block.index("  if")
    assert one(block, at, block.index("}\n}") + 2, "  if (a) {\n    if (a > 1) {\n      a--;\n    }\n  }\n",
               lang="javascript").ok


def test_a_javascript_edit_that_declares_a_name_twice_in_one_block_is_refused():
    """From a trial: a rewrite of three lines of vscode-jsonrpc's semaphore.js gave `const re = this.getNext();` twice.
    It parses; Node refuses the whole file ("Identifier 're' has already been declared")."""
    src = ("class S {\n  f() {\n    this._capacity = capacity;\n    this._active = 0;\n    const next = 1;\n"
           "    return next;\n  }\n}\n")
    at = src.index("this._capacity")
    end = src.index("\n    const next")
    v = one(src, at, end, "const re = this.getNext();\n    const re = this.reject();", lang="javascript")
    assert v.reason == "the answer declares `re` twice in one block, which stops the file from running"
    v = one(src, at, end, "const next = 2;", lang="typescript")
    assert v.reason == "the answer declares `next` twice in one block, which stops the file from running"
    for fine in ("const re = this.getNext();", "{ const next = 2; }", "let [a, b] = [1, 2];\n    a = b;"):
        assert one(src, at, end, fine, lang="javascript").ok, fine
    # a module's imports are declared as `const` is (the seventh trial's TypeScript: a name imported and declared)
    mod = ("import { isNaN } from './isNaN';\nimport debounce from 'debounce';\nimport type { Opts } from './opts';\n\n"
           "export function f(x) {\n  return isNaN(x) && debounce;\n}\n\n")
    end = len(mod)
    for lang in ("javascript", "typescript"):
        for dup, name in (("const isNaN = (x) => x !== x;\n", "isNaN"), ("function debounce(fn) { return fn; }\n",
                          "debounce"), ("import { isNaN } from './other';\n", "isNaN"), ("var debounce = 2;\n",
                                                                                      "debounce")):
            assert one(mod, end, end, dup, lang=lang).reason == \
                f"the answer declares `{name}` twice in one block, which stops the file from running", (lang, dup)
        for fine in ("function g() { const isNaN = 1; return isNaN; }\n", "import { other } from './other';\n",
                     "const Opts = {};\n"):  # another scope; another name; a type-only import beside a value
            assert one(mod, end, end, fine, lang=lang).ok, (lang, fine)
    # what the file already declares twice is not the edit's doing
    twice = src.replace("    return next;", "    const next = 3;\n    return next;")
    at = twice.index("this._capacity")
    assert one(twice, at, twice.index("\n    this._active"), "this._capacity = 2;", lang="javascript").ok


def test_python_is_compiled_past_a_stub_the_file_already_has():
    """A file being written often ends in a stub of only a comment, which Python does not compile; the compile check
    was then off for every edit, and a VS Code e2e rewrite left an `if` with no body (tree-sitter takes it)."""
    src = ("def mean(values):\n    total = sum(values)\n    return total / len(values)\n\n\n"
           "def square(x):\n    # the square of x\n")
    at = src.index("total = sum")
    end = src.index("len(values)") + len("len(values)")
    v = one(src, at, end, "return 0\n    if values is None:\n    values = []")
    assert "parse errors" in v.reason
    assert one(src, at, end, "return sum(values) / len(values)").ok
    # the stub's own body left as a comment by the edit is still the edit's doing
    stub = src.index("# the square")
    assert not one(src, stub, stub + len("# the square of x"), "# x squared\n    if x:\n    # y").ok


def test_an_answer_whose_indentation_runs_away_is_refused():
    """From a trial: a rewrite of three lines of tab-indented JavaScript came back 6, 8, 10 and 22 tabs deep (it
    parses). A line may sit up to three levels past what its brackets open (continuation lines), counted from the
    indentation of the line the edit starts on, in the file's own unit."""
    tabs = "class S {\n\tf(value) {\n\t\tif (value) {\n\t\t\tthis._active--;\n\t\t\tthis.runNext();\n\t\t}\n\t}\n}\n"
    at = tabs.index("\t\t\tthis._active")
    end = tabs.index("this.runNext();") + len("this.runNext();")
    runaway = "\t\t\t\tthis.active = {\n\t\t\t\t\t\tvalue,\n\t\t\t\t\t\t\t\tother,\n\n" + "\t" * 22 + "}"
    v = one(tabs, at, end, runaway, lang="javascript")
    assert v.reason == "the answer's indentation runs away: `other,` is indented far past its brackets"
    fine = "\t\t\tthis.active = {\n\t\t\t\tvalue,\n\t\t\t};\n\t\t\tvalue\n\t\t\t\t\t.resolve(value);"
    assert one(tabs, at, end, fine, lang="javascript").ok
    spaces = tabs.replace("\t", "  ")
    at = spaces.index("      this._active")
    end = spaces.index("this.runNext();") + len("this.runNext();")
    assert one(spaces, at, end, fine.replace("\t", "  "), lang="javascript").ok, "two-space files count in twos"
    assert not one(spaces, at, end, runaway.replace("\t", "  "), lang="javascript").ok


def test_a_javascript_answer_that_assigns_to_a_name_nothing_declares_is_refused():
    """From a trial: a refine of vscode-jsonrpc's semaphore.js turned `this._active = 0;` into `_active = 0;`, a
    ReferenceError in the class's strict code when `new Semaphore(1)` runs."""
    src = "class S {\n  constructor(capacity) {\n    this._capacity = capacity;\n    this._active = 0;\n  }\n}\n"
    at = src.index("this._active = 0;")
    end = at + len("this._active = 0;")
    v = one(src, at, end, "_active = 0;", lang="javascript")
    assert v.reason == "the answer assigns to `_active`, which nothing in the file declares"
    for fine in ("this._active = capacity;", "let _active = 0;", "capacity = 0;", "capacity += 1;",
                 "module.exports = S;", "const f = (x) => x;"):
        assert one(src, at, end, fine, lang="javascript").ok, fine
    assert one(src, at, end, "_active = 0;", lang="python").reason != \
        "the answer assigns to `_active`, which nothing in the file declares", "JavaScript and TypeScript only"


SELF = ("import os\n\n\nclass Doc:\n    def __init__(self):\n        self._source = ''\n\n    @property\n"
        "    def source(self):\n        ...\n\n    def lines(self):\n        pass\n\n\ndef exists(path):\n    ...\n\n\n"
        "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def pop(self):\n        ...\n")


def at_nth(text: str, s: str, n: int) -> int:
    i = -1
    for _ in range(n + 1):
        i = text.index(s, i + 1)
    return i


def test_a_python_fill_that_never_returns_or_defines_its_function_again_is_refused():
    """From a re-check: `return self.source` as the property `source`'s body, `exists` called first thing in `exists`
    (infinite recursion), and a second `def pop(self):` inside `pop`; and `...` filled with a docstring of junk."""
    def fill(n: int, new: str, dots: str = "...") -> str | None:
        at = at_nth(SELF, dots, n)
        return one(SELF, at, at + len(dots), new).reason

    never = "from itself before anything else: it would never return"
    assert fill(0, "return self.source") == f"the answer calls `source` {never}"
    assert fill(0, "return self._source") is None
    assert fill(0, "return self.lines()") is None, "another method of the class"
    assert fill(0, "return self.lines()", "pass") == f"the answer calls `lines` {never}"
    assert fill(1, "return os.path.exists(path) and exists(os.path)") == f"the answer calls `exists` {never}"
    assert fill(1, "if not path:\n        return False\n    return exists(path[1:])") is None, "a base case first"
    assert fill(2, "return self.items()\n\n        def pop(self):\n            self.items()") == \
        "the answer defines `pop` again inside itself"
    assert fill(2, '"""_assert_from_from___"""') == \
        'the answer is only a string: `"""_assert_from_from___"""`'
    assert fill(2, '"""Pop it."""\n        return self.items.pop()') is None
    # from a trial: a rewrite of a method's whole body (its lines, from column 0) into a call of itself
    start = SELF.index("\n", SELF.index("    def pop")) + 1
    assert one(SELF, start, start + len(SELF[start:].split("\n")[0]), "        self.pop()").reason == \
        f"the answer calls `pop` {never}"


def test_a_return_is_judged_dead_by_python_where_the_window_reads_as_broken():
    """From a VS Code trial on shlex.py: `args` at `return [quote(arg) for arg in ]` was refused as coming after
    another function's `return result`: the window around it starts inside the class's indented code, tree-sitter
    reads it as broken, and its returns with it. Where the edited file parses, Python's reading decides."""
    src = (Path(sysconfig.get_paths()["stdlib"]) / "shlex.py").read_text()
    src = src.replace("        return token\n\ndef split(",
                      "        return token\n\n    def __len__(self):\n        return len(self.tokens)\ndef split(")
    i = src.index("\n", src.index("    return ' '.join(quote(arg) for arg in split_command)")) + 1
    src = src[:i] + ('\ndef split_lines(text):\n    """Split *text* into a list of token lists, one per line."""\n'
                     "    result = []\n    for line in text.splitlines():\n        result.append(split(line))\n"
                     '    return result\ndef quote_all(args):\n    """Quote every argument in *args*."""\n'
                     "    return [quote(arg) for arg in ]\n") + src[i:]
    at = src.index("for arg in ]") + len("for arg in ")
    assert one(src, at, at, "args").ok
    done = src.replace("for arg in ]", "for arg in args]")
    after = done.index("\ndef quote_all")  # a statement after that return is still dead code
    assert one(done, after, after, "\n    print(result)").reason == \
        "the answer would never run: it comes after `return result`"


def test_a_javascript_private_name_no_class_declares_or_one_declared_twice_is_refused():
    """From an adversarial trial on VS Code's TypeScript: `this.#syncSchedul` completed as `#syncSchedule` (the class
    has `#syncScheduled`), and a rewrite of `readonly #languageId: string;` as a second `readonly #owner`. Both parse;
    Node refuses either file before it runs. Over 78 real files with private names, no error is found."""
    src = ("class Link {\n  #syncScheduled = false;\n  readonly #owner: Owner;\n  readonly #languageId: string;\n"
           "  constructor(owner: Owner, id: string) {\n    this.#owner = owner;\n    this.#languageId = id;\n  }\n"
           "  get #ready() { return true; }\n  set #ready(v) {}\n  sync() {\n    if (this.#syncSchedul\n  }\n}\n")
    at = src.index("#syncSchedul\n") + len("#syncSchedul")
    for lang in ("typescript", "javascript"):
        if lang == "javascript":  # no type annotations
            src = src.replace(": Owner", "").replace(": string", "").replace("readonly ", "")
            at = src.index("#syncSchedul\n") + len("#syncSchedul")
        assert one(src, at, at, "e) {", lang=lang).reason == \
            "the answer uses `#syncSchedule`, which no class around it declares (the file would not run)"
        assert one(src, at, at, "ed) {", lang=lang).ok
        decl = src.index("#languageId")
        line = src.rindex("\n", 0, decl) + 1
        end = src.index("\n", decl)
        twice = src[line:end].replace("#languageId", "#owner")
        assert one(src, line, end, twice, lang=lang).reason == \
            "the answer declares `#owner` twice in its class (the file would not run)"
    # a private name of the user's own, typed before its declaration: no name of the file starts so
    new = "class A {\n  inc() {\n    this.#tot\n  }\n}\n"
    at = new.index("#tot") + 4
    assert one(new, at, at, "al = 0;", lang="javascript").ok
    # a getter and a setter share a name; `#x in obj` reads one
    ok = "class A {\n  #a = 1;\n  has(o) {\n    return \n  }\n}\n"
    at = ok.index("return ") + len("return ")
    assert one(ok, at, at, "#a in o;", lang="javascript").ok


def test_a_python_definition_that_hides_another_of_its_name_is_refused():
    """From an adversarial trial on heapq.py: `def _siftup_max(heap, pos):` typed as far as `def _` and completed as
    `siftup(heap):`, a second `_siftup` that hides the first (and whose body reads `pos`)."""
    src = ("def _siftdown(heap, startpos, pos):\n    return heap\n\n\ndef _siftup(heap, pos):\n    return pos\n\n\n"
           "def _\n    heap[pos] = heap[0]\n    return pos\n")
    at = src.index("def _\n") + len("def _")
    assert one(src, at, at, "siftup(heap):").reason == \
        "the answer defines `_siftup` again: the file defines it on line 5, and one would hide the other"
    assert one(src, at, at, "siftup_max(heap, pos):").ok
    cls = "class A:\n    @property\n    def x(self):\n        return 1\n\n    \n"
    at = cls.rindex("    \n") + 4
    assert one(cls, at, at, "@x.setter\n    def x(self, v):\n        pass").ok, "a setter is no redefinition"
    assert one(cls, at, at, "def y(self):\n        return 2").ok


def test_a_header_typed_up_to_its_colon_is_judged_as_python_reads_it():
    """From an adversarial trial on fractions.py: `elif floor` completed with `= self.denominator:` (a line Python
    cannot read; the line was broken already, so the count of errors did not rise). And three correct completions of
    a header being typed that were refused (found by cutting 2,342 real headers at random and offering their rest):
    `eli` + `f c != ESCAPE:` read as no elif, `__mro_` + `_', ())):` taken for a misspelling of the user's own
    `__mro_`, and `def _getlongre` + `sp(self):` judged inside the function above."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    src = (stdlib / "fractions.py").read_text()
    at = src.index("elif floor % 2 == 0:") + len("elif floor ")
    doc = src[:at] + src[src.index("\n", at):]
    assert one(doc, at, at, "= self.denominator:").reason == \
        "the answer would add parse errors: `= self.denominator:`"
    assert one(doc, at, at, "% 2 == 0:").ok
    q = (stdlib / "quopri.py").read_text()
    at = q.index("elif c != ESCAPE:") + len("eli")
    eol = q.index("\n", at)
    assert one(q[:at] + q[eol:], at, at, q[at:eol]).ok
    mro = "def f(cls, sub):\n    if cls in getattr(sub, '__mro_\n        return True\n    return False\n"
    at = mro.index("__mro_") + len("__mro_")
    assert one(mro, at, at, "_', ()):").ok
    cls = ("class P:\n    def _getresp(self):\n        return self.line\n\n    def _getlongre\n"
           "        resp = self._getresp()\n        return resp\n")
    at = cls.index("_getlongre") + len("_getlongre")
    assert one(cls, at, at, "sp(self):").ok


def test_a_rewrite_that_puts_code_under_a_return_just_above_it_is_refused():
    """From an adversarial trial on bytes.js: a ternary's branches rewritten as `return s.replace(...);` under `return
    i === 0`, which JavaScript then ends by itself: the new line never runs."""
    src = ("function fmt(str, sep) {\n  return str.split('.').map(function (s, i) {\n    return i === 0\n"
           "      ? s.replace(/x/g, sep)\n      : s\n  }).join('.');\n}\n")
    a = src.index("? s.replace")
    b = src.index("\n  })")
    assert one(src, a, b, "return s.replace(/y/g, '$1');", lang="javascript").reason == \
        "the answer puts code after `return i === 0`, where it never runs"
    assert one(src, a, b, "? s.replace(/y/g, sep)\n      : s", lang="javascript").ok


def test_a_special_method_that_asks_for_itself_is_refused():
    """From a Neovim trial: `return repr(self)` offered as `__repr__`'s body, and `"%s(width=%r)" % (self.width, self)`:
    each calls `__repr__` again, for ever. Over 8,039 special methods of installed packages, the standard library and
    the held-out trees, the rule finds one: lib2to3's Python 2 `__str__`, `return str(self).encode("ascii")`."""
    src = ("class W:\n    def __init__(self, width):\n        self.width = width\n\n    def __repr__(self):\n"
           "        ...\n\n    def __len__(self):\n        ...\n")

    def fill(n: int, new: str) -> str | None:
        at = at_nth(src, "...", n)
        return one(src, at, at + 3, new).reason

    never = "from itself before anything else: it would never return"
    for body in ("return repr(self)", 'return "%s(width=%r)" % (self.width, self)', 'return f"W({self!r})"'):
        assert fill(0, body) == f"the answer calls `__repr__` {never}", body
    assert fill(1, "return len(self)") == f"the answer calls `__len__` {never}"
    for body in ('return f"W({self.width!r})"', 'return "%s(%r)" % (type(self).__name__, self.width)',
                 'return "W(%s)" % self', "return str(self)"):  # str(self): recursion only without a __str__
        assert fill(0, body) is None, body
    assert fill(1, "return len(self.width)") is None


def test_an_answer_that_turns_the_unpacking_after_it_into_arithmetic_is_refused():
    """From a Neovim trial: `break_on_hyphens=` filled with `w.wrap_on` before ` **kwargs)`. It parses: `**` became a
    power."""
    src = ("import textwrap\n\n\ndef wrap(text, width=70, *args, **kwargs):\n"
           "    w = textwrap.TextWrapper(width=width, **kwargs)\n    return w.wrap(text, *args)\n")
    at = src.index("**kwargs)")
    assert one(src, at, at, "break_on_hyphens=w.wrap_on ").reason == \
        "the answer runs into `**kwargs`: `**` then raises to a power instead of unpacking `kwargs`"
    star = src.index("*args)")
    assert one(src, star, star, "width ").reason == \
        "the answer runs into `*args`: `*` then multiplies instead of unpacking `args`"
    for fill in ("break_on_hyphens=True, ", "tabsize=4,\n        "):  # ends where an argument may start
        assert one(src, at, at, fill).ok, fill
    power = "x = 2 ** n\n"
    assert one(power, 5, 5, "0").ok, "a power that was a power before: `20 ** n`"


def test_a_name_with_a_piece_written_twice_is_refused_unless_the_file_has_it():
    """The small model's stutter, from a re-check's refines: `self.subsequent_indent` came back as
    `self.subsequentindentindent`, `.append(arg)` as `appendappend(arg)`. A cursor fill is read with the word it
    continues. Taking 3,197 real spans of the held-out trees as cursor fills at their place, none is refused."""
    src = "class W:\n    def wrap(self, cbuf):\n        return self.subsequent_indent + cbuf\n"
    at = src.index("self.subsequent_indent")
    end = at + len("self.subsequent_indent")
    v = one(src, at, end, "self.subsequentindentindent")
    assert v.reason == "the answer writes part of a name twice: `subsequentindentindent`"
    v = one(src, end, end, "indent")  # a cursor fill after `self.subsequent_indent`
    assert v.reason == "the answer writes part of a name twice: `subsequent_indentindent`"
    cbuf = src.rindex("cbuf")
    assert one(src, cbuf, cbuf + 4, "cbufbuf").reason == "the answer writes part of a name twice: `cbufbuf`"
    assert one(src, cbuf, cbuf + 4, "cbuf.tartar").ok  # a three-letter piece: only when the rest is a name here
    assert one(src + "yadayada = 1\n", cbuf, cbuf + 4, "yadayada").ok  # the file has it
    assert one(src, cbuf, cbuf + 4, "cbuf.findIndex(1)").ok  # `ind`, `Ind`: not the same piece
    assert one(src, cbuf, cbuf + 4, "cbuf.xxxxxxxx").ok  # a run of one letter
    # from a trial: `cls.ver` completed to `cls.version_re_re`, `self._by` to `self._by_node_node`
    py = "class V:\n    version_re = None\n    _by_node = {}\n\n    def f(cls):\n        return cls.ver\n"
    at = py.index("cls.ver") + len("cls.ver")
    assert one(py, at, at, "sion_re_re").reason == "the answer writes part of a name twice: `version_re_re`"
    assert one(py, at, at, "sion_re").ok
    assert one(py, at, at, "sion_re_rest").ok  # `_re` once, then another part
    other = py.replace("version_re = None", "versionxre = None")  # no `version_re` here
    assert one(other, at, at, "sion_re_re").ok


def test_a_name_the_file_has_but_for_one_underscore_or_one_doubled_letter_is_refused():
    # from a trial: `other._c` completed to `other._cmp_precedencekey`, `RAISE: t.Final[OnDupAction] = ` to
    # `OnDupAAction`: AttributeError and NameError when run
    src = ("class V:\n    def _cmp_precedence_key(self):\n        return 1\n\n"
           "    def __lt__(self, other):\n        return other._c\n")
    at = src.index("other._c") + len("other._c")
    v = one(src, at, at, "mp_precedencekey")
    assert v.reason == \
        "the answer writes `_cmp_precedencekey`, which the file does not have; it has `_cmp_precedence_key`"
    assert one(src, at, at, "mp_precedence_key()").ok
    dup = "class OnDupAction:\n    pass\n\n\nRAISE: OnDupAction = \n"
    at = dup.index("= ") + 2
    assert one(dup, at, at, "OnDupAAction()").reason == \
        "the answer writes `OnDupAAction`, which the file does not have; it has `OnDupAction`"
    assert one(dup, at, at, "OnDupAction()").ok
    # what the line defines may look like a name of the file on purpose
    done = dup.replace("= \n", "= OnDupAction()\n")
    assert one(done, len(done), len(done), "OnDup_Action = OnDupAction\n").ok
    assert one(done, len(done), len(done), "def make(on_dupaction=None):\n    return OnDupAction()\n").ok


def test_a_rewrite_that_writes_one_piece_three_times_in_a_row_is_refused():
    # from a trial: a repr's line rewritten as `f"{self.__class__.__name__}({self.__class__.__name__}(...` (it parses)
    src = "class D:\n    def __repr__(self):\n        return f'{self.__class__.__name__}({self.name!r})'\n"
    at = src.index("return f'")
    end = src.index("\n", at)
    stutter = 'return f"{self.__class__.__name__}({self.__class__.__name__}({self.__class__.__name__})"'
    assert one(src, at, end, stutter).reason == \
        "the answer writes `self.__class__.__name__` three times over in one line"
    assert one(src, at, end, "return f'{type(self).__name__}({self.name!r})'").ok
    calls = "return self.get_name(1) or self.get_name(2) or self.get_name(3)"  # the same call, apart: code
    assert _repeated_phrase(calls, "") is None


def test_a_placeholder_filled_with_a_placeholder_is_refused():
    """The VS Code e2e's fill-all turned a `pass` into `...` and reported it filled."""
    src = "class Counter:\n    def inc(self):\n        pass\n"
    at = src.index("pass")
    assert one(src, at, at + 4, "...").reason == "the answer is only a placeholder: `...`"
    assert one(src, at, at + 4, "self.n += 1").ok
    typing = "def f():\n    "
    assert one(typing, len(typing), len(typing), "...").ok  # a cursor fill may write one: a stub being typed


def test_a_placeholder_filled_with_a_new_definition_or_a_placeholder_is_refused():
    """From a re-check: fill-all turned a method's `...` into a nested `async def sync_time(self) -> float:` with a
    `return ...` body, and reported it filled."""
    src = "class Timer:\n    def sync_start(self) -> None:\n        ...\n\n    def stop(self):\n        pass\n"
    at = src.index("...")
    v = one(src, at, at + 3, "async def sync_time(self) -> float:\n            return self.started")
    assert v.reason == "the answer defines `sync_time` where the body goes"
    v = one(src, at, at + 3, "self.started = 0\n        return ...")
    assert v.reason == "the answer still holds a placeholder (`...`)"
    assert one(src, at, at + 3, "self.started = 0").ok
    closure = "def wrapper(*args):\n            return self.stop()\n        return wrapper"
    assert one(src, at, at + 3, closure).ok  # a decorator-like body: the closure is returned


def test_a_python_answer_reading_an_attribute_its_class_never_sets_is_refused():
    """From a re-check: httpx's URLPattern.__eq__ filled as `return self.hostname == other.hostname`; URLPattern has
    no `hostname`. Only a class with no base but `object` and no dynamic attributes is read, and not one that already
    reads attributes it never sets (they come from its subclasses). Taking 1,947 real method bodies of such classes
    (held-out tree and an installed site-packages) as fills of a `pass` in their place, 3 are refused, all of abstract
    bases that read what their subclasses set."""
    src = ("class URLPattern:\n    greeting = 'hi'\n\n    def __init__(self, pattern):\n"
           "        self.pattern = pattern\n        self.host = pattern\n\n    def __eq__(self, other):\n"
           "        pass\n\n    def size(self):\n        return len(self.pattern)\n")
    at = src.index("pass")
    v = one(src, at, at + 4, "return self.hostname == other.hostname")
    assert v.reason == "the answer reads `self.hostname`, which `URLPattern` never sets"
    assert one(src, at, at + 4, "return self.host == other.host and self.size() > 0 and self.greeting").ok
    assert one(src, at, at + 4, "self.hostname = other\n        return self.hostname == other").ok  # it sets it
    assert one(src, at, at + 4, "return self.__class__ is other.__class__").ok  # what every object has
    based = src.replace("class URLPattern:", "class URLPattern(Base):")
    assert one(based, at + 6, at + 10, "return self.hostname == other.hostname").ok  # a base may have it
    abstract = src.replace("return len(self.pattern)", "return len(self.items())")
    assert one(abstract, at, at + 4, "return self.hostname == other.hostname").ok  # it reads what subclasses set
    # a re-check's fill-all: with `__init__` a stub too, the class is still being written, and sets nothing yet
    unwritten = src.replace("self.pattern = pattern\n        self.host = pattern", "...")
    assert one(unwritten, unwritten.index("pass"), unwritten.index("pass") + 4, "return self.pattern == other").ok


def test_a_rewrite_that_drops_the_codes_return_is_refused():
    """From a trial: a rewrite of commander's setOptionValueWithSource dropped `return this;` (method chaining broke)
    and parsed; an answer that still returns, raises or throws somewhere passes."""
    src = ("class C {\n  set(key, value, source) {\n    if (value) {\n      this._values[key] = value;\n    }\n"
           "    this._sources[key] = source;\n    return this;\n  }\n}\n")
    start = src.index("    this._sources")
    end = src.index("  }\n}")
    v = one(src, start, end, "    this._sources[key] = source;\n", lang="javascript")
    assert v.reason == "the answer drops the code's `return this`: it would no longer return there"
    assert one(src, start, end, "    this._sources[key] = source || null;\n    return this;\n", lang="javascript").ok
    assert one(src, start, end, "    throw new Error(key);\n", lang="javascript").ok
    py = "def port(url):\n    if url.port is not None:\n        return url.port\n    return None\n"
    v = one(py, py.index("    if url"), len(py), "    url.port = None\n")
    assert v.reason == "the answer drops the code's `return url.port`: it would no longer return there"
    # replaced code without a return may become anything that parses
    assert one(py, py.index("    if url"), py.index("        return url.port"), "    if url.port:\n").ok
    # a re-check: the fallback return dropped (`return url.port` kept), and `return this` turned into another return
    v = one(py, py.index("        return url.port"), len(py), "        return url.port\n")
    assert v.reason == "the answer drops the code's `return None`: it would no longer return there"
    assert one(py, py.index("        return url.port"), len(py), "        return url.port\n    raise KeyError\n").ok
    v = one(src, start, end, "    return this._values[key];\n", lang="javascript")
    assert v.reason == "the answer no longer does `return this`, which callers chain on"
    assert one(src, start, end, "    this._sources[key] = source || null;\n    return this;\n", lang="javascript").ok


def test_a_rewrite_that_returns_nothing_where_the_code_returned_a_value_is_refused():
    """From a trial on munch: `Munch.get`'s `return d` refined to `return` (5 tests failed once accepted), and
    `return obj` to `return None`; a value for a value passes, as does a bare return the code already had."""
    src = ("def get(self, k, d=None):\n    if k not in self:\n        return d\n    return self[k]\n")
    at = src.index("return d")
    v = one(src, at, at + len("return d"), "return")
    assert v.reason == "the answer drops the value of the code's `return d`: it would return nothing there"
    v = one(src, at, at + len("return d"), "return None")
    assert v.reason == "the answer drops the value of the code's `return d`: it would return nothing there"
    assert one(src, at, at + len("return d"), "return d or None").ok
    bare = "def f(x):\n    if x:\n        return\n    return x\n"
    assert one(bare, bare.index("        return\n"), len(bare), "        return\n    return x + 1\n").ok
    js = "function f(a) {\n  return a.b;\n}\n"
    v = one(js, js.index("return a.b;"), js.index("return a.b;") + len("return a.b;"), "return;", lang="javascript")
    assert v.reason == "the answer drops the value of the code's `return a.b`: it would return nothing there"


def test_a_rewrite_that_turns_a_docstring_into_code_is_refused():
    """From the VS Code e2e's probe of r5: regenerating `mean`'s docstring gave `values = len(values)`, which parses,
    drops the words and overwrites the argument. A docstring for a docstring passes, and a `# TODO` placeholder's fill
    is code."""
    src = 'def mean(values):\n    """Add up the values,\n    then divide."""\n    return sum(values) / len(values)\n'
    start, end = src.index('"""Add'), src.index('divide."""') + len('divide."""')
    v = one(src, start, end, "values = len(values)")
    assert v.reason == "the answer turns a docstring into code: `values = len(values)`"
    assert one(src, start, end, '"""The mean of the values."""').ok
    todo = "def f(x):\n    # TODO\n    return x\n"
    at = todo.index("# TODO")
    assert one(todo, at, at + len("# TODO"), "x = abs(x)").ok


def test_a_parse_error_reason_quotes_the_line_that_breaks():
    """From a re-check: reasons quoted the answer's first line, `return value.lower()`, which parses on its own."""
    src = "def f(value, lower):\n    pass\n"
    at = src.index("pass")
    assert one(src, at, at + 4, "return value.lower()\n    x = = 2").reason == \
        "the answer would add parse errors: `x = = 2`"
    assert one(src, at, at + 4, "return (1 +").reason == "the answer would add parse errors: `return (1 +`"


def test_an_empty_javascript_argument_is_a_parse_error():
    """From a re-check: a rewrite of commander's getOptionValue gave `this.getOptionValueWithSource(, key, undefined)`,
    which tree-sitter reads without an error and Node refuses (`Unexpected token ','`). An array's hole is fine."""
    src = "class C {\n  get(key) {\n    return this._values[key];\n  }\n}\n"
    at = src.index("this._values[key]")
    end = at + len("this._values[key]")
    for bad in ("this.getOptionValueWithSource(, key)", "this.get(key, , 1)"):
        v = one(src, at, end, bad, lang="javascript")
        assert v.reason is not None and v.reason.startswith("the answer would add parse errors"), bad
    assert one(src, at, end, "[key, , 1][0]", lang="javascript").ok
    assert one(src, at, end, "this.get(key,)", lang="typescript").ok
    assert _syntax.count_errors("f(, k);", "typescript") == 1


def test_a_dropped_definition_counts_uses_in_code_only():
    """From a re-check: a rewrite was refused as removing `values`, 'still used' on a comment's line elsewhere."""
    src = ("def get_list(key):\n    values = load(key)\n    return list(values)\n\n\n"
           "def other(self):\n    # all values fitted the encoding.\n    return self.values\n")
    start = src.index("    values = load")
    end = src.index("\n\n\ndef other")
    assert one(src, start, end, "    return list(load(key))").ok  # a comment and an attribute are no use of it
    other = src.replace("return self.values", "return values")  # another function's `values`: not this one
    assert one(other, start, end, "    return list(load(key))").ok
    used = src.replace("    return list(values)", "    n = 1\n    return list(values)")
    v = one(used, used.index("    values = load"), used.index("\n    n = 1"), "    x = load(key)")
    assert v.reason == "the answer removes a definition the code still uses: `values` (line 4)"
    # from a trial: a rewrite of `clsname = ...` dropped the name read in an f-string below; a docstring's words and
    # another class's names are no use of it (a correct rewrite was refused for `version` of another class)
    fmt = ("class B:\n    def __repr__(self):\n        \"\"\"Show the\n        clsname and items.\"\"\"\n"
           "        clsname = type(self).__name__\n        items = dict(self)\n        return f'{clsname}({items})'\n\n"
           "\nclass V:\n    def parse(self, m):\n        kind, clsname = m.groups()\n        return clsname\n")
    at = fmt.index("clsname = type")
    v = one(fmt, at, at + len("clsname = type(self).__name__"), "items = dict(self.items())")
    assert v.reason == "the answer removes a definition the code still uses: `clsname` (line 7)"
    at = fmt.index("kind, clsname")
    assert one(fmt, at, fmt.index("\n", fmt.index("return clsname")), "return m.group(2)").ok


def test_code_after_a_return_that_never_runs_is_refused():
    """From a re-check: a rewrite of commander's _findCommand gave `return this.options.command.length;` and then
    `return this.options.length;`, the second never run. A function declared after a return (hoisted) is fine."""
    src = ("class C {\n  find(name) {\n    if (!name) return undefined;\n"
           "    return this.commands.find((c) => c === name);\n  }\n}\n")
    start = src.index("    if (!name)")
    end = src.index("\n  }\n}")
    twice = "    return this.options.command.length;\n    return this.options.length;"
    v = one(src, start, end, twice, lang="javascript")
    assert v.reason == "the answer has code after `return this.options.command.length;` that never runs"
    assert one(src, start, end, "    if (!name) return null;\n    return this.commands.find((c) => c.name === name);",
               lang="javascript").ok
    assert one(src, start, end, "    return helper(name);\n    function helper(n) { return n; }",
               lang="javascript").ok
    py = "def port(url):\n    if url.port:\n        return url.port\n    return 80\n"
    v = one(py, py.index("    if url"), len(py), "    return url.port\n    x = 80\n    return x\n")
    assert v.reason == "the answer has code after `return url.port` that never runs"


def test_a_completion_of_a_half_typed_line_that_reads_a_new_name_is_refused():
    # from a re-check: `'%s-%s' % (` completed with `version, buildrelease)`; the file did not parse before the answer
    # (the line half typed), and the check had stopped there
    src = "def fmt(version, build):\n    return '%s-%s' % (\n\n\ndef other():\n    return 1\n"
    at = src.index("% (") + 3
    v = one(src, at, at, "version, buildrelease)")
    assert v.reason == "the answer uses `buildrelease`, which nothing in the file defines"
    assert one(src, at, at, "version, build)").ok


def test_a_fill_that_reads_its_property_again_is_refused_though_a_stub_elsewhere_is_only_a_comment():
    # from a re-check: fill-all gave the property `precedence_key` the body `return self.precedence_key` while another
    # body in the file held only `# TODO` (so the file did not parse as it stood)
    src = ("class V:\n    @property\n    def precedence_key(self):\n        ...\n\n"
           "    def later(self):\n        # TODO\n\n    def other(self):\n        return 1\n")
    at = src.index("...")
    assert one(src, at, at + 3, "return self.precedence_key").reason == \
        "the answer calls `precedence_key` from itself before anything else: it would never return"


def test_a_completion_that_stops_short_of_a_name_of_the_file_is_refused():
    # from a re-check: `raise Circ` completed to `raise Circular`; the file has `CircularDependencyError`
    src = "class CircularDependencyError(ValueError):\n    pass\n\n\ndef f(data):\n    if data:\n        raise Circ\n"
    at = src.index("raise Circ") + len("raise Circ")
    assert one(src, at, at, "ular").reason == \
        "the answer writes `Circular`, which the file does not have; it has `CircularDependencyError`"
    assert one(src, at, at, "ularDependencyError(data)").ok
    # JavaScript, from an adversarial trial on bytes.js: `if (!result` closed with `) {`; the file has `results`
    js = ("function parse(val) {\n  var results = /^x$/.exec(val);\n  if (!result\n    return null;\n  }\n"
          "  return results;\n}\n")
    at = js.index("(!result\n") + len("(!result")
    for lang in ("javascript", "typescript"):
        assert one(js, at, at, ") {", lang=lang).reason == \
            "the answer writes `result`, which the file does not have; it has `results`"
        assert one(js, at, at, "s) {", lang=lang).ok
    # what is no read of a name: a word of a line comment (the end of one is still the comment), a string's, an
    # object's key, a name being declared, a re-export
    for before, fill in (("  // the res", "ult is kept"), ("  var s = 'res", "ult';"), ("  var o = { res", "ult: 1 };"),
                         ("  let res", "ult = 1;"), ("export { res", "ult } from './r';")):
        doc = js.replace("  if (!result\n    return null;\n  }\n", "").replace("  return results;", before, 1)
        at = doc.index(before) + len(before)
        assert one(doc, at, at, fill, lang="javascript").ok, before


def test_a_completion_that_reads_a_name_of_another_function_only_is_refused():
    # from a re-check: `self._inv = inv` offered in an `__init__`; `inv` is a parameter of another method only
    src = ("class B:\n    def __init__(self, arg=()):\n        self._fwdm = {}\n        \n        self._invm = {}\n\n"
           "    def _set_inv(self, inv):\n        self._inv = inv\n        return inv\n")
    at = src.index("        \n") + 8
    assert one(src, at, at, "self._inv = inv").reason == \
        "the answer uses `inv`, which is not defined where it is used (only in another scope)"
    assert one(src, at, at, "self._inv = arg").ok


def test_the_scope_check_at_the_cursor_is_not_fooled_by_attributes_or_comments():
    # from a re-check: `'%s.%d' % (ver` completed with `sion, minor)` in a `__str__` that reads `self.minor` (no
    # `minor` there); `inve` completed to `invert`, a word of a comment, where the file's name is `inverted`
    src = ("class V:\n    def __init__(self, version, minor):\n        self.version, self.minor = version, minor\n\n"
           "    def __str__(self):\n        if self.minor:\n            return '%s.%d' % (ver\n        return ''\n")
    at = src.index("(ver") + 4
    assert one(src, at, at, "sion, minor)").reason == \
        "the answer uses `minor`, which is not defined where it is used (only in another scope)"
    # `ver` finished as `version` reads `version`, which `__str__` has not either
    assert one(src, at, at, "sion, self.minor)").reason == \
        "the answer uses `version`, which is not defined where it is used (only in another scope)"
    attr = src.replace("(ver\n", "(self.ver\n")
    at = attr.index("(self.ver") + 9
    assert one(attr, at, at, "sion, self.minor)").ok
    inv = ("def inverted(d):\n    return {v: k for k, v in d.items()}\n\n\n"
           "def update(d):\n    # so invert the mapping on the fly\n    return dict(inve\n")
    at = inv.index("(inve") + 5
    assert one(inv, at, at, "rt)").reason == \
        "the answer writes `invert`, which the file does not have; it has `inverted`"
    assert one(inv, at, at, "rted(d))").ok


def test_a_name_the_user_began_and_the_answer_finishes_is_read_whole():
    # from a trial: `sub(DEF` finished as `DEFAULT_CHARS, text)` (the file has `DEFAULT_SEPARATOR`), `fromDict(self,
    # def` as `default)` (a parameter of other methods only); the fragments the answer wrote looked like nothing
    src = ("DEFAULT_SEPARATOR = '-'\n\n\ndef other(default=None):\n    return default\n\n\n"
           "def clean(text):\n    return PATTERN.sub(DEF\n")
    at = src.index("sub(DEF") + 7
    assert one(src, at, at, "AULT_CHARS, text)").reason == \
        "the answer uses `DEFAULT_CHARS`, which nothing in the file defines"
    assert one(src, at, at, "AULT_SEPARATOR, text)").ok
    arg = src.replace("sub(DEF\n", "sub(text, def\n")
    at = arg.index("def\n") + 3
    assert one(arg, at, at, "ault)").reason == \
        "the answer uses `default`, which is not defined where it is used (only in another scope)"
    assert one(arg, at, at, "ault=1)").ok  # a keyword argument's name is no read


def test_an_answer_that_ends_a_word_short_of_a_name_of_the_file_is_refused():
    # from a trial: `parts = [unesc` closed with `]`; the file's function is `unescape`
    src = "def unescape(s):\n    return s\n\n\ndef parse(parts):\n    parts = [unesc\n    return parts\n"
    at = src.index("[unesc") + 6
    assert one(src, at, at, "]").reason == "the answer writes `unesc`, which the file does not have; it has `unescape`"
    assert one(src, at, at, "ape(p) for p in parts]").ok


def test_a_javascript_completion_that_reads_a_name_the_file_never_names_is_refused():
    # from a trial: `options = opt` finished as `ions.isMerge || defaultIsMerge` (the file's function is
    # `defaultIsMergeableObject`): a ReferenceError when the line runs
    src = ("function defaultIsMergeableObject(value) {\n  return !!value;\n}\n\n"
           "function deepmerge(target, source, options) {\n  options = opt\n  return options;\n}\n")
    at = src.index("= opt") + 5
    v = one(src, at, at, "ions.isMerge || defaultIsMerge", lang="javascript")
    assert v.reason == "the answer uses `defaultIsMerge`, which nothing in the file defines"
    for ok in ("ions || {}", "ions.isMerge || defaultIsMergeableObject", "ions || Object.create(null)",
               "ions.map((item) => item.name)", "ions || { clone: true }"):
        assert one(src, at, at, ok, lang="javascript").ok, ok


def test_a_minified_line_is_read_near_the_edit_only(monkeypatch):
    # from a trial: VS Code's bundled mergeConflictMain.js has a 54 KB line; every read on it looked up its
    # declarations over the whole file, seconds per keystroke. The reads far along the line are the user's, unchanged.
    from infill import guard

    far = ";".join(f"var v{i}=w{i}(v{i - 1})" for i in range(1, 600))
    src = "var v0=1;" + far + ";function f(a){return a}" + far.replace("v", "u") + ";\n"
    at = src.index("return a") + 8
    looked: list[bytes] = []
    real = guard._js_declarations
    monkeypatch.setattr(guard, "_js_declarations", lambda t, d, n: looked.append(n) or real(t, d, n))
    assert one(src, at, at, ".length", lang="javascript").ok
    assert one(src, at, at, " || zzq", lang="javascript").reason == \
        "the answer uses `zzq`, which nothing in the file defines"
    assert looked and len(looked) < 200 and b"w300" not in looked and b"u300" not in looked, looked


def test_a_header_completion_that_leaves_out_a_parameter_the_body_reads_is_refused():
    # from a trial: `(text: strin` + `g) {` dropped `initialText`; `(processLis` + `tener) => {` named the parameter
    # the body reads as `processList`; `def fill` + `_text(self):` dropped `text`
    src = ("class H {\n  createDocument(text: strin\n    const doc = new Doc(text, initialText);\n    return doc;\n"
           "  }\n}\n")
    at = src.index("strin") + 5
    assert one(src, at, at, "g) {", lang="typescript").reason == \
        "the answer's parameters leave out `initialText`, which the function's body reads"
    assert one(src, at, at, "g, initialText: string) {", lang="typescript").ok  # `Doc`: a class from elsewhere
    src = "items.forEach((processLis\n  console.log(processList.length);\n});\n"
    at = src.index("processLis") + 10
    assert one(src, at, at, "tener) => {", lang="javascript").reason == \
        "the answer's parameters leave out `processList`, which the function's body reads"
    assert one(src, at, at, "t) => {", lang="javascript").ok
    # a name destructured with a default (`{ responseHandler = 'json' }`) is declared: a guard scan read it as
    # declared only in another scope
    src = ("function make(opts) {\n  return async (arg, api) => {\n    let { url, responseHandler = 'json' } = arg\n"
           "    if (responseHandl\n      return url\n    }\n  }\n}\n")
    at = src.index("responseHandl\n") + len("responseHandl")
    assert one(src, at, at, "er === 'json') {", lang="typescript").ok
    src = src.replace("(arg, api) => {", "(arg, ap").replace("responseHandl\n", "responseHandler === 'json') {\n")
    at = src.index("(arg, ap") + len("(arg, ap")
    assert one(src, at, at, "i) => {", lang="typescript").ok
    src = ("import re\n\nclass W:\n    def fill\n        return '\\n'.join(self.wrap(text))\n\n\n"
           "def other(text):\n    return text\n")
    at = src.index("def fill") + 8
    for new in ("_text(self):", "(self):"):
        assert one(src, at, at, new).reason == \
            "the answer's parameters leave out `text`, which the function's body reads"
    assert one(src, at, at, "(self, text):").ok
    # a name the file reads unbound elsewhere too, or one a star import may bind, is taken as a global
    assert one(src.replace("    return text\n", "    return text + width\n").replace("wrap(text)", "wrap(width)"),
               at, at, "(self, text):").ok
    assert one("from os import *\n" + src, at + 17, at + 17, "(self):").ok


def test_a_fill_in_front_of_code_that_leaves_the_line_broken_at_the_cursor_is_refused():
    # from a Neovim trial in a minified bundle: `x` typed after `if(` broke the line, and the ghost text `n(e)` left it
    # broken (`if(xn(e)!e||`): the error grew by the fill's size, so no count or size said so
    src = ("function _a(e,r){var t;if(x!e||(re(e)&&(e=e[0]||\"\")))return null;return t}\nfunction re(e){return e}\n"
           "function xn(e){return e}\n")
    at = src.index("if(x") + 4
    assert one(src, at, at, "n(e)", lang="javascript").reason == "the answer would add parse errors: `n(e)`"
    assert one(src, at, at, "||", lang="javascript").ok  # `if(x||!e||`: the line mended
    assert one(src, at, at, "&&", lang="javascript").ok
    py = "def f(items, n):\n    total = le n\n    return total\n"
    at = py.index("le n") + 2
    assert one(py, at, at, "n(items)").reason == "the answer would add parse errors: `n(items)`"
    assert one(py, at, at, "n(items) *").ok


def test_a_kept_tree_is_given_without_parsing():
    from infill import _syntax

    text = "const a = 1\n" * 3 + "// a fresh text " + str(id(object()))
    assert _syntax.parsed(text, "javascript") is None  # nothing parsed: nothing given
    tree = _syntax.parse(text, "javascript")
    kept = _syntax.parsed(text, "javascript")
    assert kept is not None and kept is not tree and str(kept.root_node) == str(tree.root_node)
    assert _syntax.parsed(text, "typescript") is None  # kept by language too


def test_a_completion_that_ends_the_statement_inside_an_open_string_is_refused():
    # from a trial: `escape = '&q` finished as `u;`: the `;` went into the string, which stays open
    src = "function esc(c) {\n  var escape;\n  if (c === 34) {\n    escape = '&q\n  }\n  return escape;\n}\n"
    at = src.index("'&q") + 3
    v = one(src, at, at, "u;", lang="javascript")
    assert v.reason == "the answer ends the statement inside the string it leaves open: `escape = '&qu;`"
    assert one(src, at, at, "uot;';", lang="javascript").ok


def test_a_completion_that_repeats_the_line_below_is_refused():
    src = "def f(items):\n    total = 0\n    for item in items:\n        \n        total += item\n    return total\n"
    at = src.index("        \n") + 8
    assert one(src, at, at, "total += item").reason == "the answer repeats the line below: `total += item`"
    assert one(src, at, at, "print(item)").ok


def test_words_typed_in_a_docstring_are_not_read_as_names():
    src = 'def f():\n    """Return the\n    """\n    return 1\n'
    at = src.index("the") + 3
    assert one(src, at, at, " default section's options.").ok


def test_words_in_a_big_file_are_prose_by_the_whole_file_and_names_by_the_window():
    # a misspelt name of the file (`parse_vallue` for `parse_value`) is refused in code and let be in prose; in a big
    # file the window around the cursor decides, unless it may start inside a string (then the whole file does)
    from infill import _syntax

    doc = "\n".join(f"Line {i} of a long module docstring, with words" for i in range(400))
    body = "".join(f"def f{i}(value):\n    return parse_value(value) + {i}\n\n\n" for i in range(300))
    text = f'"""Remap.\n\n{doc}\nparse value, it says\n"""\n\n\ndef parse_value(v):\n    return v\n\n\n{body}'
    assert _syntax.is_big(text)
    at = text.index("parse value, it") + len("parse ")
    w0, _ = _syntax.window(text, at)
    assert text.index('"""') < w0 < at  # the window starts inside the docstring, at an unindented line of it
    assert one(text, at, at, "vallue").ok  # prose
    typed = "    return parse_value(value) + 250\n"
    line = text.index(typed)
    broken = text[:line] + "    if parse_" + text[line + len(typed) :]  # a line being typed: the window is broken
    at = line + len("    if parse_")
    w0, _ = _syntax.window(broken, at)
    assert w0 > 0 and _syntax.parse(broken[w0 : _syntax.window(broken, at)[1]], "python").root_node.has_error
    assert one(broken, at, at, "vallue:").reason == \
        "the answer writes `parse_vallue`, which the file does not have; it has `parse_value`"
    quoted = text[:line] + '    if parse_\n    s = "parse_"\n' + text[line + len(typed) :]
    at = line + len('    if parse_\n    s = "parse_')
    assert one(quoted, at, at, "vallue").ok  # in a string


def test_a_condition_completed_as_the_one_a_few_lines_below_is_refused():
    # from a trial: `if algo` finished as `if algorithm == 'legacy':`, the `if` two lines below; every call then raised
    src = ("def slugify(text, algorithm='legacy'):\n    if algo\n        raise ValueError(algorithm)\n"
           "    if algorithm == 'legacy':\n        return text\n    return text.lower()\n")
    at = src.index("if algo") + 7
    assert one(src, at, at, "rithm == 'legacy':").reason == \
        "the answer repeats the line below: `if algorithm == 'legacy':`"
    assert one(src, at, at, "rithm not in ('legacy', 'modern'):").ok
    nested = src.replace("    if algorithm == 'legacy':\n        return text\n",
                         "    for x in text:\n        if algorithm == 'legacy':\n            return text\n")
    at = nested.index("if algo") + 7
    assert one(nested, at, at, "rithm == 'legacy':").ok  # another block's test


def test_an_answer_after_blanks_that_leaves_a_word_short_of_a_name_of_the_file_is_refused():
    # from a re-check: a refused answer, Tab put spaces after `return poi`, and the next answer, `if pointer is None
    # else pointer`, was offered with `poi` left unbound (the file's name is `pointer`)
    src = "def resolve(doc, pointer=None):\n    return poi  \n"
    at = src.index("poi  ") + 5
    assert one(src, at, at, "if pointer is None else pointer").reason == \
        "the answer writes `poi`, which the file does not have; it has `pointer`"
    assert one(src.replace("poi  ", "doc  "), at, at, "if pointer is None else pointer").ok


def test_a_docstring_word_is_no_name_a_typed_word_may_stop_at():
    # from a trial: `v = munch` closed with `(v)`; the file's function is `munchify`, and "munch" is only a docstring's
    src = ('def munchify(x):\n    """Turn x into a munch."""\n    return x\n\n\ndef walk(v):\n    v = munch\n'
           '    return v\n')
    at = src.index("= munch") + 7
    assert one(src, at, at, "(v)").reason == \
        "the answer writes `munch`, which the file does not have; it has `munchify`"
    assert one(src, at, at, "ify(v)").ok


# -- from a user trial on furl 2.1.4 and tinycolor2 1.6.0: edits that parsed and broke the code ----------------------

_FRAGMENT = '''\
class Fragment(object):
    def __init__(self, fragment='', strict=False):
        self.strict = strict

        self.load(fragment)

    def load(self, fragment):
        self.path.load('')
        self.query.load('')
        return self

    def __str__(self):
        return 'x'


def build(f):
    return Fragment().load(f)
'''


def test_a_rewrite_that_folds_a_method_into_the_one_above_is_refused():
    src = _FRAGMENT
    start = src.index("\n        self.load(fragment)")
    end = src.index("        self.path.load")
    v = one(src, start, end, "        self.query.load('')\n")
    assert v.reason == "the answer removes `Fragment.load`, which the code still uses (line 17)"  # not its own body
    # nesting it inside __init__ (a refine's answer) loses the method as surely
    body_end = src.index("        return self")
    v = one(src, start, body_end, "\n        self.load(fragment)\n\n        def load(self, fragment):\n"
            "            self.path.load('')\n            self.query.load('')\n")
    assert v.reason == "the answer removes `Fragment.load`, which the code still uses (line 17)"
    # a public method the file does not call may be called by others: renamed, it is refused too; a private one may go
    unused = src.replace("        self.load(fragment)", "        pass").replace("    return Fragment().load(f)",
                                                                              "    return Fragment()")
    v = one(unused, unused.index("\n        pass"), unused.index("        self.path.load"),
            "\n        pass\n\n    def reload(self, fragment):\n")
    assert v.reason == "the answer renames `Fragment.load` to `Fragment.reload`: code that calls it would break"
    private = unused.replace("def load(", "def _load(")
    assert one(private, private.index("\n        pass"), private.index("        self.path.load"),
               "\n        pass\n\n    def _reload(self, fragment):\n").ok
    assert one(src, start, end, "\n        self.load(fragment or '')\n\n    def load(self, fragment):\n").ok


def test_a_rewrite_that_moves_a_definition_outside_it_is_refused():
    src = "class A:\n    def f(self):\n        return 1\n\n    def g(self):\n        return 2\n\n\nx = A().g()\n"
    at = src.index("        return 1\n")
    end = at + len("        return 1\n")
    # a header the edit opens above `def g` makes g a function of f, not a method of A
    v = one(src, at, end, "        x = 1\n\n        def inner():\n            return x\n\n        return inner()\n")
    assert v.ok  # g stays A.g: the new function ends before it
    v = one(src, at, end, "        return 1\n\n\nclass B:\n    pass\n")  # a class at the top: g is B's now
    assert v.reason == "the answer changes the code around it: `A.g` would become `B.g`"


def test_a_rewrite_inside_a_name_that_leaves_a_name_the_file_lacks_is_refused():
    src = "class U:\n    @property\n    def host(self):\n        return self._h\n\n    @host.setter\n" \
          "    def host(self, v):\n        self._h = v\n"
    at = src.index("setter") + 2
    v = one(src, at, at + 2, "f")
    assert v.reason == "the answer turns `setter` into `sefer`, which the file does not have"
    assert one(src, at - 2, at + 4, "getter").ok or True  # a whole name replaced is the other checks' to judge
    assert one(src, at, at + 2, "tt").reason == "the answer is the same as the text it would replace"


def test_a_rewrite_whose_edge_leaves_a_stray_name_on_its_own_line_is_refused():
    src = "def f(x):\n    ret = x + 1\n    return ret\n\n\ny = f(1)\n"
    at = src.index("return ret") + len("return r")
    v = one(src, at, at + 1, "et\n")  # `return ret` + a new line `t` at the module's top level
    assert v.reason == "the answer turns `ret` into `t`, which the file does not have"
    src += "\n\ndef g(xs):\n    return [t for t in xs]\n"  # a `t` elsewhere: the line reads it where nothing binds it
    v = one(src, at, at + 1, "et\n")
    assert v.reason == "the answer uses `t`, which is not defined where it is used (only in another scope)"


def test_a_completion_reading_a_generators_variable_after_it_is_refused():
    src = ("def set(fragment, fragment_path, fragment_args):\n"
           "    if sum(present(p) for p in [fragment_path, fragment_args]) >= 2:\n"
           "        warn('overlap')\n"
           "    provided = [fragme\n"
           "    return provided\n\n\n"
           "def present(v):\n    return v is not None\n\n\ndef warn(s):\n    print(s)\n")
    at = src.index("provided = [fragme") + len("provided = [fragme")
    v = one(src, at, at, "nt(p)]")
    assert v.reason == "the answer uses `p`, which is not defined where it is used (only in another scope)"
    assert one(src, at, at, "nt_path, fragment_args]").ok


def test_a_completion_reading_a_name_of_another_method_is_refused_in_a_big_file():
    body = "".join(f"    def m{i}(self):\n        return {i}\n\n" for i in range(2200))  # past 60k chars
    src = ("class Q:\n    def parse(self, s):\n        msg = 'bad %s' % s\n        return msg\n\n"
           "    def check(self, ok):\n        if not ok:\n            warnings\n        return ok\n\n" + body +
           "\n\nimport warnings\n")
    assert len(src) > 60_000
    at = src.index("            warnings") + len("            warnings")
    v = one(src, at, at, ".warn(msg)")
    assert v.reason == "the answer uses `msg`, which is not defined where it is used (only in another scope)"
    assert one(src, at, at, ".warn('not ok')").ok


def test_a_rewrite_that_opens_a_string_it_does_not_close_is_refused_in_a_broken_buffer():
    src = "def f(:\n    return (1,\nclass \n    x = [}\n\ndef g():\n    return 2\n"
    v = one(src, 0, src.index("class "), '"""\n')
    assert v.reason == "the answer opens a string it does not close: the code after it would be part of it"
    closed = 'x = 1\ns = """\nabc\n'  # a fill that closes what the file left open passes
    assert one(closed, len(closed), len(closed), '"""\n').ok
    go = "package m\n\nfunc f() string {\n\treturn \"a\"\n}\n\nfunc g() int {\n\treturn 1\n}\n"
    assert not one(go, go.index("\treturn \"a\""), go.index("}"), "\treturn `a\n", lang="go").ok


def test_a_javascript_rewrite_that_drops_keys_the_code_reads_or_reads_unknown_names_is_refused():
    src = ("var matchers = {\n"
           "  hsla: new RegExp('hsla' + PERMISSIVE_MATCH4),\n"
           "  hex6: /^#?([0-9a-f]{2})$/,\n"
           "  hex8: /^#?([0-9a-f]{4})$/\n"
           "};\n"
           "var PERMISSIVE_MATCH4 = '[\\\\s|\\\\(]+';\n"
           "function parse(color) {\n"
           "  var match = matchers.hex6.exec(color);\n"
           "  return match || matchers.hex8.exec(color);\n"
           "}\n")
    start, end = src.index("  hex6"), src.index("};")
    v = one(src, start, end, "  hsla: new RegExp('hsv' + PERMISSIVE_MATCH4),\n", lang="javascript")
    assert v.reason == "the answer removes the property `hex6`, which the code still reads (line 8)"
    v = one(src, start, end, "  hex6: /^#?([0-9a-f]{2})$/i,\n  hex8: new RegExp('#' + PERMISSIVE_ATATCH4)\n",
            lang="javascript")
    assert v.reason == "the answer uses `PERMISSIVE_ATATCH4`, which nothing in the file defines"
    assert one(src, start, end, "  hex6: /^#?([0-9a-f]{2})$/i,\n  hex8: /^#?([0-9a-f]{4})$/i\n",
               lang="javascript").ok


def test_a_completion_in_a_file_too_big_to_read_whole_is_read_in_its_window():
    # from a trial: `require('./y')` offered in Python after a 1.4 MB line (the window around it cuts that line)
    src = "x = [" + ", ".join(str(i) for i in range(60_000)) + "]\ny = \n"
    assert len(src) > 200_000
    at = len(src) - 1
    assert one(src, at, at, "require('./y')").reason == "the answer uses `require`, which nothing in the file defines"
    assert one(src, at, at, "len(x)").ok
    many = "".join(f"def f{i}(a):\n    return a + {i}\n\n\n" for i in range(8000)) + "z = \n"
    assert len(many) > 200_000
    at = len(many) - 1
    assert one(many, at, at, "f7(1) + undefined_thing").reason == \
        "the answer uses `undefined_thing`, which nothing in the file defines"
    assert one(many, at, at, "f7(1) + f8(2)").ok


def test_no_edit_is_offered_in_a_binary_document():
    src = "\u00d4\u00f6\x1d\u00f0/\x00{\u0081x = 1\n"
    assert one(src, len(src), len(src), "],\n").reason == "the document holds NUL characters: it is binary, not code"


def test_a_fill_in_prose_that_only_closes_what_nothing_opened_is_refused():
    src = 'def f(x):\n    """Return the square of x\n    """\n    return x * x\n'
    at = src.index("of x") + len("of x")
    assert one(src, at, at, ")").reason == "the answer only closes a bracket nothing opened: `)`"
    opened = src.replace("the square of x", "the square (of x")
    at = opened.index("of x") + len("of x")
    assert one(opened, at, at, ")").ok
    at = src.index("of x") + len("of x")
    assert one(src, at, at, " (a number)").ok


# -- from a second trial (inflection 0.5.1, dequal 2.0.3, klona 2.0.6): edits that parsed and broke the code --------

def test_a_python_rewrite_that_takes_a_binding_away_is_refused():
    src = ("import re\n\n\ndef camelize(string, uppercase_first_letter=True):\n"
           "    if uppercase_first_letter:\n        return re.sub(r'x', 'y', string)\n    return string\n")
    at = src.index("uppercase_first_letter=True")
    v = one(src, at, at + len("uppercase_first_letter=True"), "char=None")
    assert v.reason == "the answer removes a definition the code still uses: `uppercase_first_letter` (line 5)"
    v = one(src, 0, len("import re"), "from __future__ import annotations")
    assert v.reason == "the answer removes a definition the code still uses: `re` (line 6)"
    assert one(src, at, at + len("uppercase_first_letter=True"), "uppercase_first_letter=False").ok


def test_renaming_a_public_function_is_refused_a_private_one_not():
    src = "def tableize(word):\n    return word + 's'\n\n\ndef _helper(x):\n    return x\n"
    v = one(src, 0, len("def tableize(word):"), "def table_name(word):")
    assert v.reason == "the answer renames `tableize` to `table_name`: code that calls it would break"
    at = src.index("def _helper(x):")
    assert one(src, at, at + len("def _helper(x):"), "def _help(x):").ok


def test_a_completion_joined_to_the_name_after_the_cursor_is_refused():
    src = "def f(word):\n    return word.lower()\n"
    at = src.index("lower()")
    v = one(src, at, at, "upper")
    assert v.reason == "the answer turns `lower` into `upperlower`, which the file does not have"
    assert one(src, at, at, "strip().").ok
    doc = 'def f(word):\n    """Return the approximation."""\n    return word\n'
    at = doc.index("approximation") + len("approximat")
    assert one(doc, at, at, "ion is specified.\n").ok  # words in a docstring: prose, not names


def test_a_javascript_edit_reading_a_name_of_another_scope_or_only_a_comment_is_refused():
    src = ("function find(iter, tar, key) {\n  for (key of iter.keys()) {\n    if (dequal(key, tar)) return key;\n"
           "  }\n}\n\nfunction dequal(foo, bar) {\n  return foo === bar;\n}\n\n"
           "// isView: whether x is a typed array view\nexports.dequal = dequal;\n")
    start = src.index("if (dequal(key, tar)) return key;")
    end = start + len("if (dequal(key, tar)) return key;")
    v = one(src, start, end, "if (key === tar) return foo.getTime();", lang="javascript")
    assert v.reason == "the answer uses `foo`, which is not defined where it is used (only in another scope)"
    assert one(src, start, end, "if (dequal(tar, key)) return key;", lang="javascript").ok
    at = src.index("exports.dequal = dequal;")
    v = one(src, at, at + len("exports.dequal = dequal;"), "module.exports = isView;", lang="javascript")
    assert v.reason == "the answer uses `isView`, which nothing in the file defines"
    obj = "function f(x) {\n  return Object.defineProperty(x, 'k', {\n    configurable: true,\n  });\n}\n"
    at = obj.index("configurable: true,")
    v = one(obj, at, at + len("configurable: true,"), "config,", lang="javascript")
    assert v.reason == "the answer uses `config`, which nothing in the file defines"
    ts = ("import { isServer as isServerEnvironment } from './env'\n"
          "const res = function action(arg1, arg2?: string): any {\n  return { name: arg1, isServerEnvironment }\n}\n")
    at = ts.index("name: arg1") + len("name: ")
    assert one(ts, at, at + 4, "arg2", lang="typescript").ok


def test_javascript_that_node_would_refuse_is_refused():
    src = ("function klona(x) {\n  var k, tmp, str = Object.prototype.toString.call(x);\n"
           "  for (k in x) {\n    tmp = x[k];\n  }\n  return tmp;\n}\n")
    at = src.index("  return tmp;")
    v = one(src, at, at, "const tmp = new Date(+x);\n  ", lang="javascript")
    assert v.reason == "the answer declares `tmp` twice in one block, which stops the file from running"
    at = src.index("for (k in x) {")
    v = one(src, at, at + len("for (k in x) {"), "if (typeof x.hasO= 'function') {", lang="javascript")
    # tree-sitter reads `typeof (x.hasO = 'function')`: an assignment as an operator's operand is counted as an error
    assert v.reason == "the answer would add parse errors: `if (typeof x.hasO= 'function') {`"
    v = one(src, src.index("var k, tmp"), src.index("var k, tmp") + len("var k, tmp"), "var k, {}, tmp",
            lang="javascript")
    if shutil.which("node"):  # Node's own parser: tree-sitter reads a pattern with no value
        assert v.reason == "Node rejects the edited file: Missing initializer in destructuring declaration"
    assert one(src, at, at + len("for (k in x) {"), "for (k of Object.keys(x)) {", lang="javascript").ok


def test_a_rewrite_that_leaves_a_local_read_before_it_is_set_is_refused():
    src = ("def ordinal(number):\n    number = abs(int(number))\n    if number % 100 in (11, 12, 13):\n"
           "        return 'th'\n    return 'st'\n")
    v = one(src, src.index("number):"), src.index("number):") + len("number"), "word")
    assert v.reason == "the answer leaves `number` read before the function sets it (line 2)"
    assert one(src, src.index("number):"), src.index("number):") + len("number"), "number, base=10").ok
    loop = ("def f(rules, word):\n    word = word.strip()\n    for rule in rules:\n        word = rule(word)\n"
            "    return word\n")
    at = loop.index("word.strip()")
    v = one(loop, at, at + len("word.strip()"), "rule(word)")
    assert v.reason == "the answer leaves `rule` read before the function sets it (line 2)"
    inside = loop.index("rule(word)")
    assert one(loop, inside, inside + len("rule(word)"), "rule(word).strip()").ok  # in the loop: set by then


def test_a_javascript_read_of_a_name_only_seen_as_a_property_or_a_keyword_is_refused():
    src = "function f(foo, bar) {\n  var len;\n  if (foo.size !== bar.size) return false;\n  return len;\n}\n"
    at = src.index("return len;")
    v = one(src, at, at + len("return len;"), "return size === 0;", lang="javascript")
    assert v.reason == "the answer uses `size`, which nothing in the file defines"
    v = one(src, at, at + len("return len;"), "bar.forEach(tmp => forEach(tmp));", lang="javascript")
    assert v.reason == "the answer uses `forEach`, which nothing in the file defines"
    assert one(src, at, at + len("return len;"), "return foo.size === 0;", lang="javascript").ok


def test_static_type_errors_a_guard_can_see_are_refused():
    py = "def _irregular(singular, plural):\n    return singular + plural\n\n\n_irregular('child', 'children')\n"
    at = py.index("'child'") + 1
    v = one(py, at, at + len("child"), "sex', 'sexes")  # `_irregular('sex', 'sexes', 'children')`
    assert v.reason == "the answer calls `_irregular` with 3 arguments; it takes 2"
    pair = py.index("'child', 'children'")
    v = one(py, pair, pair + len("'child', 'children'"), "'ox' + 's'")
    assert v.reason == "the answer calls `_irregular` with no `plural`, which it needs"
    assert one(py, at, at + len("child"), "person").ok
    js = ("function clone(x) {\n  var tmp;\n  if (x) {\n    tmp = x.slice();\n  }\n"
          "  var keys = { value: x, writable: true };\n  return tmp;\n}\n")
    at = js.index("  if (x) {")
    v = one(js, at, at, "const tmp = new Date(+x);\n", lang="javascript")
    assert v.reason in ("the answer assigns to `tmp`, which is a const",
                        "the answer declares `tmp` twice in one block, which stops the file from running")
    block = js.index("    tmp = x.slice();")
    v = one(js, block, block, "    const tmp = 1;\n", lang="javascript")  # a const of the if block, then `tmp = `
    assert v.reason == "the answer assigns to `tmp`, which is a const"
    at = js.index("writable: true")
    v = one(js, at, at + len("writable: true"), "value: true", lang="javascript")
    assert v.reason == "the answer writes the key `value` twice in one object"
    at = js.index("return tmp;") + len("return ")
    v = one(js, at, at + len("tmp;"), ";", lang="javascript")
    assert v.reason == "the answer drops the value of `return tmp;`"
    assert one(js, at, at + len("tmp;"), "tmp || x;", lang="javascript").ok


def test_names_the_edges_of_an_edit_leave_bare_and_reads_in_an_earlier_loop_are_checked():
    js = "function f(x) {\n  var tmp = new Set;\n  x.forEach(function (val) {\n    tmp.add(val);\n  });\n}\n"
    at = js.index("forEach(function")
    v = one(js, at, at, "forEach(tmp);\n", lang="javascript")  # the old `forEach(` is left bare on its line
    assert v.reason == "the answer uses `forEach`, which nothing in the file defines"
    py = ("def singularize(word):\n    for inflection in UNCOUNTABLES:\n        if re.search(inflection, word):\n"
          "            return word\n    for rule, repl in SINGULARS:\n        word = re.sub(rule, repl, word)\n"
          "    return word\n\n\nimport re\nUNCOUNTABLES, SINGULARS = [], []\n")
    at = py.index("re.search(inflection, word)")
    v = one(py, at, at + len("re.search(inflection, word)"), "re.search(rule, word)")
    assert v.reason == "the answer leaves `rule` read before the function sets it (line 3)"


# -- from a third trial (pyhumps 3.8.0, pytimeparse 1.1.8, deepmerge 4.3.1, fast-deep-equal 3.1.3) -------------------

def test_a_javascript_rewrite_that_drops_a_declaration_still_used_is_refused():
    src = ("function equal(a, b) {\n  var length, i, keys;\n  keys = Object.keys(a);\n  length = keys.length;\n"
           "  for (i = length; i-- !== 0;) {}\n  return true;\n}\n\n"
           "function clone(val, options) {\n  return options.clone ? val.slice() : val;\n}\n")
    at = src.index("var length, i, keys;")
    v = one(src, at, at + len("var length, i, keys;"), "length = a.length;", lang="javascript")
    assert v.reason == "the answer removes the declaration of `i`, which the code still uses (line 5)"
    at = src.index("val, options")
    v = one(src, at, at + len("val"), "value", lang="javascript")
    assert v.reason == "the answer removes the declaration of `val`, which the code still uses (line 10)"
    assert one(src, at, at + len("val"), "val = []", lang="javascript").ok


def test_a_python_completion_that_ends_the_line_early_is_refused():
    src = "def lower(s):\n    return s.lower()\n"
    at = src.index("s.lower()")
    v = one(src, at, at, "s.lower()\n")
    assert v.reason == "the answer ends the line early: `s.lower()` would move to a line of its own"
    doc = 'def f(s):\n    """Convert a string, dict, or list."""\n    return s\n'
    at = doc.index("nvert a")
    assert one(doc, at, at, "nvert a string.\n").ok  # inside a docstring the rest stays in it
    js = "// see src/index.jst for the source\nconst a = 1;\n"
    at = js.index("ndex.jst")
    assert not one(js, at, at, "s array.\n", lang="javascript").ok  # the rest leaves the comment


def test_a_string_argument_rewritten_as_code_is_called_a_string_not_a_docstring():
    src = 'def f(s):\n    return s.replace("-", "_")\n'
    at = src.index('"-"')
    assert one(src, at, at + 3, '-","').reason == 'the answer turns a string into code: `-","`'


# -- from a fourth trial (toposort 1.10, semver 3.0.4, escape-html 1.0.3, object-assign 4.1.1) -----------------------

def test_fourth_trial_edits_that_parse_and_break_the_code_are_refused():
    cls = ("class Version:\n    def __init__(self, minor, build):\n        self._minor, self._build = minor, build\n\n"
           "    @property\n    def minor(self):\n        return self._minor\n\n"
           "    @minor.setter\n    def minor(self, value):\n        self._minor = value\n\n"
           "    @property\n    def build(self):\n        return self._build\n\n"
           "    def __le__(self, other):\n        return self.minor <= other.minor\n\n"
           "    def finalize_version(self):\n        return Version(self.minor, None)\n")
    at = cls.index("@minor.setter")
    v = one(cls, at, at + len("@minor.setter"), "@build.setter")
    assert v.reason == "the answer leaves `build` read before the class sets it (line 9)"
    at = cls.index("    def __le__(self, other):")
    v = one(cls, at, at + len("    def __le__(self, other):"), "    def __lt__(self, other):")
    assert v.reason == "the answer renames `Version.__le__` to `Version.__lt__`: code that calls it would break"
    data = "def f(data):\n    data = {k: set(v) for k, v in data.items()}\n    return data\n"
    at = data.index("{k:")
    assert one(data, at, at, "data.copy() ").reason.startswith("the answer would add parse errors")
    js = ("function assign(target) {\n\tvar from;\n\tvar symbols;\n\tfor (var s = 1; s < arguments.length; s++) {\n"
          "\t\tsymbols = Object.getOwnPropertySymbols(from);\n\t}\n\treturn target;\n}\n")
    at = js.index("var symbols;")
    v = one(js, at, at + len("var"), ";", lang="javascript")
    assert v.reason == "the answer removes the declaration of `symbols`, which the code still uses (line 3)"
    test = "function native() {\n\tvar test2 = {};\n\treturn Object.getOwnPropertyNames(test2);\n}\n"
    at = test.index("(test2)") + 1
    v = one(test, at, at + len("test2"), "test", lang="javascript")
    assert v.reason == "the answer uses `test`, which nothing in the file defines"  # no test runner's global here
    spec = test + "test('native', () => native());\n"
    assert one(spec, at, at + len("test2"), "test", lang="javascript").ok


# -- from a fifth trial (text-unidecode 1.3, is-plain-object 5.0.0) ---------------------------------------------------

def test_fifth_trial_edits_that_break_the_code_are_refused():
    js = ("function isPlainObject(o) {\n  var ctor,prot;\n  ctor = o.constructor;\n  prot = ctor.prototype;\n"
          "  return prot.hasOwnProperty('isPrototypeOf');\n}\n")
    at = js.index("prot = ctor")
    v = one(js, at, at + len("prot"), "type", lang="javascript")
    assert v.reason == "the answer assigns to `type`, which nothing in the file declares"
    at = js.index("  ctor = o.constructor;")
    v = one(js, at, at, "  varconstructor = o.constructor;\n", lang="javascript")
    assert v.reason == "the answer assigns to `varconstructor`, which nothing in the file declares"
    assert one(js, at, at, "  ctor = o && o.constructor;\n", lang="javascript").ok
    loop = "function f(foo) {\n  var len;\n  for (len of foo) {}\n  return len;\n}\n"
    at = loop.index("for (len of foo) {")
    v = one(loop, at, at + len("for (len of foo) {"), "for ( of of foo) {", lang="javascript")
    assert v.reason == "the answer assigns to `of`, which nothing in the file declares"
    py = "# -*- coding: utf-8 -*-\nfrom .data import CODES\n"
    at = py.index("utf")
    v = one(py, at, at + len("utf"), "8")
    assert v.reason == "the answer declares an encoding Python does not know: `8-8`"
    assert one(py, at, at + len("utf-8"), "latin-1").ok


def test_a_name_left_set_only_by_plus_equals_or_read_at_module_level_before_it_is_set_is_refused():
    # from a sixth trial (python-slugify): `truncated = ''` rewritten as `string[max_length] = ''` above `truncated +=
    # word` in a loop (an UnboundLocalError at its first turn), and `__all__ = [...]` rewritten as `text =
    # unidecode.unidecode(text)` at module level, where nothing sets `text` before (a NameError on import)
    src = ("def smart_truncate(string, max_length=0):\n    if not max_length:\n        return string\n"
           "    truncated = ''\n    for word in string.split(' '):\n        if word:\n            truncated += word\n"
           "    return truncated\n")
    at = src.index("truncated = ''")
    assert one(src, at, at + len("truncated"), "string[max_length]").reason == \
        "the answer leaves `truncated` read before the function sets it (line 7)"
    assert one(src, at, at + len("truncated = ''"), "truncated = string[:0]").ok
    mod = "import unidecode\n\nVERSION = '1'\n\n\ndef slugify(text):\n    return unidecode.unidecode(text)\n"
    at = mod.index("VERSION")
    end = mod.index("\n", at) + 1
    assert one(mod, at, end, "text = unidecode.unidecode(text)\n").reason == \
        "the answer leaves `text` read before the module sets it (line 3)"
    assert one(mod, at, end, "VERSION = '2'\n").ok
    assert one(mod, at, end, "TEXT = unidecode.unidecode('x')\nTEXT += '!'\n").ok


def test_a_completion_placing_a_word_only_the_compiler_rejects_there_is_refused():
    # from a sixth trial: `break` on a new line after a try block, in no loop: the parsers take it, compile() does not
    src = "def f(x):\n    try:\n        x = int(x)\n    except Exception:\n        pass\n    \n    return x\n"
    at = src.index("    \n") + 4
    assert not one(src, at, at, "break").ok
    assert one(src, at, at, "x += 1").ok
    looped = ("def f(x):\n    while x:\n        try:\n            x = int(x)\n        except Exception:\n"
              "            pass\n        \n    return x\n")
    at = looped.index("        \n") + 8
    assert one(looped, at, at, "break").ok


def test_javascript_tree_sitter_reads_but_javascript_refuses_counts_as_a_parse_error():
    # from a sixth trial (bytes, fast-equals): a completion `typeof val = val.type== 'number'` after `typeof val =`,
    # and `while (...) {` rewritten as `if (...) {` above its `break`; neither is an error to tree-sitter
    src = "function f(val) {\n  if (typeof val === 'number') {\n    return 1;\n  }\n}\n"
    at = src.index("=== 'number'") + 1
    assert "parse errors" in (one(src, at, at, " val.type=", lang="javascript").reason or "")
    loop = ("function f(it) {\n  while (true) {\n    const r = it.next();\n    if (r.done) {\n      break;\n    }\n"
            "  }\n}\n")
    head = loop.index("while (true) {")
    for lang in ("javascript", "typescript"):
        v = one(loop, head, head + len("while (true) {"), "if (it) {", lang=lang)
        assert v.reason == "the answer would add parse errors: `if (it) {`", lang
        assert one(loop, head, head + len("while (true) {"), "for (;;) {", lang=lang).ok
    for fine in ("a = b = c;", "x = (a = b) + 1;", "out: for (;;) { break out; }", "switch (x) { case 1: break; }",
                 "do { continue; } while (x);"):
        assert _syntax.misplaced(_syntax.parse(fine, "javascript"), "javascript") == [], fine
    assert _syntax.misplaced(_syntax.parse("while (x) { const f = () => { break; }; }", "javascript"),
                             "javascript") != []  # a loop outside the function does not count


def test_names_read_only_in_annotations_count_under_the_annotations_future_import():
    # from the sixth trial: `from collections.abc import Iterable` rewritten as a second `import re`, in a file with
    # `from __future__ import annotations` (whose compiler skips annotations, and symtable with it)
    src = ("from __future__ import annotations\n\nimport re\nfrom collections.abc import Iterable\n\n\n"
           "def slugify(text, stopwords: Iterable[str] = ()):\n    return re.sub('x', '', text)\n")
    at = src.index("from collections")
    end = src.index("\n", at)
    v = one(src, at, end, "import re")
    assert not v.ok and "`Iterable`" in v.reason
    assert one(src, at, end, "from typing import Iterable").ok
    assert _syntax.python_unresolved(src) == set()
    assert _syntax.python_unresolved(src.replace("import Iterable", "import Sequence")) == {"Iterable"}
    # a future import over several lines is left as it is
    assert _syntax._annotations_read("from __future__ import (annotations,\n  division)\n") == \
        "from __future__ import (annotations,\n  division)\n"
    assert _syntax._annotations_read("from __future__ import annotations, division\n") == \
        "from __future__ import division\n"


def test_a_read_in_a_loop_whose_only_setting_there_is_plus_equals_is_a_read_before_set():
    # from the sixth trial: slugify's `truncated = ''` rewritten as `string[max_length] = ''` above a loop reading
    # `len(truncated)` and setting it only by `truncated += ...` (its first turn reads it unset)
    src = ("def smart_truncate(string, max_length):\n    truncated = ''\n    for word in string.split():\n"
           "        next_len = len(truncated) + len(word)\n        if next_len < max_length:\n"
           "            truncated += word\n    if not truncated:\n        truncated = string[:max_length]\n"
           "    return truncated\n")
    at = src.index("truncated = ''")
    assert one(src, at, at + len("truncated"), "string[max_length]").reason == \
        "the answer leaves `truncated` read before the function sets it (line 4)"
    assert one(src, at, at + len("truncated = ''"), "truncated = string[:0]").ok


def test_a_read_every_first_turn_of_a_loop_runs_is_a_read_before_set_one_under_a_branch_is_not():
    # from the seventh trial (docopt): `l = left` rewritten as `self.left = left` above a loop whose first turn runs
    # `matched, l, c = p.match(l, c)`, and `l_ = None` rewritten away above `if l_ == l: break` ... `l_ = l`
    src = ("class Option:\n    def __init__(self, left):\n        l = left\n        c = []\n        while True:\n"
           "            matched, l, c = self.match(l, c)\n            if not matched:\n                break\n"
           "        self.left = l\n")
    at = src.index("l = left")
    assert one(src, at, at + len("l = left"), "self.left = left").reason == \
        "the answer leaves `l` read before the function sets it (line 6)"
    assert one(src, at, at + len("l = left"), "l = list(left)").ok
    src = ("def fix(children):\n    l = children\n    l_ = None\n    while True:\n        l = [c.fix() for c in l]\n"
           "        if l_ == l:\n            break\n        l_ = l\n    return l\n")
    at = src.index("    l_ = None\n")
    assert one(src, at, at + len("    l_ = None\n"), "    l = list(l)\n").reason == \
        "the answer leaves `l_` read before the function sets it (line 6)"
    # a turn after the first may read what an earlier one set, where the read runs only under a branch of the loop
    # (or in a loop inside it, whose body may not run)
    src = ("def pairs(rows):\n    out = []\n    for i, x in enumerate(rows):\n        if i:\n"
           "            out.append(prev)\n        for y in x:\n            out.append(last)\n"
           "        prev = x\n        last = x\n    return out\n")
    at = src.index("prev = x")
    assert one(src, at, at + len("prev = x"), "prev = list(x)").ok
    at = src.index("    out = []\n")
    assert one(src, at, at + len("    out = []\n"), "    out = [None]\n").ok


def test_a_typescript_type_nothing_declares_is_refused():
    # from the sixth trial (fast-equals): rewrites wrote `Set<any, Meta>`, `Object[Any]`, `TypeArray` for `TypedArray`
    src = ("import type { State } from './types';\n\ntype TypedArray = Int8Array | Uint8Array;\n\n"
           "export function areSetsEqual<T>(a: Set<any>, b: Set<any>, state: State<T>): boolean {\n"
           "  return a.size === b.size;\n}\n")
    at = src.index("a: Set<any>")
    end = at + len("a: Set<any>")
    for new, kind in (("a: Set<any, Meta>", "Meta"), ("a: Object[Any]", "Any"), ("a: TypeArray", "TypeArray")):
        assert one(src, at, end, new, lang="typescript").reason == \
            f"the answer uses the type `{kind}`, which nothing in the file declares", new
    for new in ("a: Set<T>", "a: TypedArray", "a: ReadonlySet<State<T>>", "a: Map<string, Date>", "a: NodeJS.Timeout"):
        assert one(src, at, end, new, lang="typescript").ok, new
    declared = "a: Set<K>) {}\nfunction g<K>(x: Set<K>"  # a type parameter the new text declares
    assert not (one(src, at, end, declared, lang="typescript").reason or "").startswith("the answer uses the type")


def test_javascript_const_updates_duplicate_parameters_labels_and_assignments_in_an_if_are_refused():
    # from the sixth trial (fast-equals, bytes)
    src = ("function f(p, state) {\n  let index = p.length;\n  while (index--) {\n    if (!p[index]) {\n"
           "      break;\n    }\n  }\n}\n")
    decl = src.index("let index = p.length;")
    end = decl + len("let index = p.length;")
    for lang in ("javascript", "typescript"):
        assert one(src, decl, end, "const index = p.length;", lang=lang).reason == \
            "the answer assigns to `index`, which is a const"  # `index--` sets it
        assert one(src, decl, end, "let index = p.length - 1;", lang=lang).ok
        cond = src.index("!p[index]")
        assert one(src, cond, cond + len("!p[index]"), "index = 0", lang=lang).reason == \
            "the answer assigns where the `if` tests: `index = 0`"
        assert one(src, cond, cond + len("!p[index]"), "index === 0", lang=lang).ok
        brk = src.index("break;")
        assert "parse errors" in one(src, brk, brk + len("break;"), "break break;", lang=lang).reason
    param = src.index("state")
    assert one(src, param, param + len("state"), "p: number", lang="typescript").reason == \
        "the answer declares `p` twice in one block, which stops the file from running"
    assert one(src, param, param + len("state"), "p", lang="javascript").ok  # a plain function's, outside strict mode
    arrow = "const f = (p, state) => p;\n"
    at = arrow.index("state")
    assert not one(arrow, at, at + len("state"), "p", lang="javascript").ok


def test_a_javascript_completion_writing_a_key_again_or_leaving_an_idle_statement_is_refused():
    # from the sixth trial (bytes): `b: 1,` on a new line of `var map = { b: 1, ... }`, and ` 'NB';\n` after
    # `var unit =`, which left `(options && options.unit) || '';` as a statement of its own that does nothing
    src = ("var map = {\n  b: 1,\n  kb: 1 << 10,\n  \n  mb: 1 << 20,\n};\n\nfunction unitOf(options) {\n"
           "  var unit = (options && options.unit) || '';\n  return map[unit];\n}\n")
    at = src.index("  \n") + 2
    assert one(src, at, at, "b: 1,", lang="javascript").reason == "the answer writes the key `b` twice in one object"
    assert one(src, at, at, "gb: 1 << 30,", lang="javascript").ok
    at = src.index(" (options &&")
    assert one(src, at, at, " 'NB';\n", lang="javascript").reason == \
        "the answer ends the line early: `(options && options.unit) || '';` would move to a line of its own"
    inner = "function g() {}\nfunction f(x) {\n  if (x) { g(); }\n  g(); x;\n}\n"
    at = inner.index("}\n  g()")
    assert one(inner, at, at, "g();\n  ", lang="javascript").ok  # a closing brace moves down: nothing changes
    at = inner.index("x;\n")
    assert one(inner, at, at, "g();\n  ", lang="javascript").ok  # `x;` was a statement of its own already


def test_an_edit_that_takes_all_away_or_lists_an_undefined_name_in_it_is_refused():
    # from the sixth trial (python-slugify): `__all__ = ['slugify', 'smart_truncate']` rewritten as
    # `all__ = ['hught', 'harth']`: `import *` then exports every name
    src = ("import re\n\n__all__ = ['slugify', 'smart_truncate']\n\n\ndef slugify(x):\n    return re.sub('a', '', x)\n"
           "\n\ndef smart_truncate(x):\n    return x\n")
    at = src.index("__all__")
    end = src.index("\n", at)
    assert one(src, at, end, "all__ = ['hught', 'harth']").reason == "the answer removes the module's `__all__`"
    assert one(src, at, end, "__all__ = ['slugify', 'harth']").reason == \
        "the answer lists `harth` in `__all__`, which the module does not define"
    assert one(src, at, end, "__all__ = ['slugify']").ok
    assert one(src, at, end, "__all__ = ('slugify', 'smart_truncate', 're')").ok


def test_a_value_compared_or_indexed_with_itself_or_a_broken_regular_expression_is_refused():
    # from the sixth trial (python-slugify, fast-equals): `if separator not in string:` rewritten as `if max_length <
    # max_length:`, `text = ...` as `words[words] = ...`, a pattern as `r'&(?:(?:[0-0-9]+'` (re.error on import)
    src = ("import re\n\nHEX = re.compile(r'&#x([0-9a-f]+);')\n\n\ndef cut(words, max_length, sep):\n"
           "    if sep not in words:\n        return words\n    text = sep.join(words)\n    return text[:max_length]\n")
    cond = src.index("sep not in words")
    assert one(src, cond, cond + len("sep not in words"), "max_length < max_length").reason == \
        "the answer compares `max_length` with itself"
    assert one(src, cond, cond + len("sep not in words"), "len(words) < max_length").ok
    target = src.index("text[:max_length]")
    assert one(src, target, target + len("text[:max_length]"), "words[words]").reason == \
        "the answer indexes `words` with itself"
    pattern = src.index("r'&#x")
    end = src.index("')", pattern) + 1
    v = one(src, pattern, end, "r'&(?:(?:[0-9]+'")
    assert v.reason is not None and v.reason.startswith("the answer writes a regular expression Python rejects")
    assert one(src, pattern, end, "r'&#([0-9]+);'").ok
    js = "function eq(a, b) {\n  return a.size === b.size;\n}\n"
    at = js.index("b.size")
    assert one(js, at, at + len("b.size"), "a.size", lang="javascript").reason == \
        "the answer compares `a.size` with itself"
    # a name equal to itself or not is the test for NaN, an idiom (`const isNaN = (x) => x !== x;`)
    nan = js.index("a.size === b.size")
    for cmp in ("a !== a", "a === a", "a != a"):
        assert one(js, nan, nan + len("a.size === b.size"), cmp, lang="javascript").ok, cmp
    assert one(src, cond, cond + len("sep not in words"), "max_length != max_length").ok


def test_a_name_read_below_the_last_function_is_read_at_module_level():
    # from guard_refusals' real completions: `main()` under `if __name__ == '__main__':`, below a function whose body
    # ended above it, is a name nothing defines; a local of that function is not defined there either
    src = ('def gobs_program():\n    x = 1\n    while True:\n        print("P", end=" ")\n\n\n'
           'if __name__ == "__main__":\n    \n')
    at = src.index('__":\n    ') + len('__":\n    ')
    assert one(src, at, at, "main()").reason == "the answer uses `main`, which nothing in the file defines"
    assert one(src, at, at, "x()").reason == \
        "the answer uses `x`, which is not defined where it is used (only in another scope)"
    assert one(src, at, at, "gobs_program()").ok


def _big_class(lines_before: str = "") -> str:
    methods = "".join(f"    def m{k}(self, units):\n        other = self.find(units)\n"
                      f"        return other.start(units + {k})\n\n" for k in range(300))
    return lines_before + "import os\n\n\nclass Big:\n" + methods


def test_a_half_typed_line_in_a_big_python_file_is_judged_in_its_window(monkeypatch):
    # a keystroke's fill with brackets, on a line half typed (the window broken already), reads the window after a
    # prefix that parses, not the whole file (a Python bracket closes no block): the answers that break it are
    # still refused
    text = _big_class()
    at = text.index("        return other.start(units + 150)")
    text = text[:at] + "        value = os.path.join(\n" + text[at:]
    at += len("        value = os.path.join(")
    assert _syntax.is_big(text)
    parsed: list[int] = []
    real = _syntax.parse
    monkeypatch.setattr(_syntax, "parse", lambda t, lang: parsed.append(len(t)) or real(t, lang))
    assert one(text, at, at, "other, str(units))").ok
    assert not one(text, at, at, "other, [units)").ok
    # the half-typed line's error swallowed the window: these leave fewer errors in it than there were, and the line,
    # read alone as Python's prompt reads it, can no longer be finished
    for bad in ("other, str(units)))", "other, str(units)) + ]", "other, str(units)) def"):
        assert one(text, at, at, bad).reason == f"the answer would add parse errors: `{bad}`", bad
    assert one(text, at, at, "other,").ok  # one it can still finish
    assert parsed and len(text) not in parsed and len(text) + len("other, str(units))") not in parsed


def test_a_window_that_starts_in_the_module_docstring_is_read_from_the_file_start():
    # inspect.py's module docstring has unindented lines; a window cut at one of them starts in a string, and is read
    # from the file's start to its own end (not the whole file): code is still code, and prose still prose
    doc = '"""A module.\n\n' + "".join(f"Here is line {k} of its docstring: ismodule(), isclass().\n"
                                        for k in range(80)) + '"""\n\n'
    text = _big_class(doc)
    at = text.index("    def m3(self")
    text = text[:at] + "    def extra(self):\n        return os.path.join(\n\n" + text[at:]
    at += len("    def extra(self):\n        return os.path.join(")
    start, _end = _syntax.window(text, at)
    assert 0 < start < text.index('"""\n\n') and _syntax.parse(text[:start], "python").root_node.has_error
    assert one(text, at, at, "self.root, 'x')").ok
    assert not one(text, at, at, "self.root, 'x'))").ok
    at = text.index("Here is line 70") + len("Here is line 70 of its")
    assert one(text, at, at, " own (see below)").ok  # words in the docstring: prose, brackets unbalanced or not


def test_a_line_is_read_alone_only_where_a_statement_starts_on_it():
    # the check reads the cursor's line as Python's prompt would; a line inside brackets, after a backslash or inside
    # a docstring (`r"""` too) is no statement's start, and an answer there is judged as before
    from infill.guard import _statement_starts
    text = ('def f(a,\n      b):\n    r"""Doc (\n    still doc\n    """\n    x = a + \\\n        b\n'
            "    y = {'k': (1,\n          2)}\n    return x\n")
    starts = [_statement_starts(text, 0, i) for i in [0, *(k + 1 for k, c in enumerate(text) if c == "\n")][:-1]]
    assert starts == [True, False, True, False, False, True, False, True, False, True]
    text = "def f(a):\n    total = max(a,\n    return total\n"
    at = text.index("max(a,") + len("max(a,")
    assert one(text, at, at, " 1)").ok  # a continuation line below is not read alone
    assert not one(text, at, at, " 1)) + ]").ok


def test_a_name_assigned_to_itself_is_refused():
    # from a user trial in Neovim: `result = result` offered as you type
    src = "def f(items):\n    result = []\n    for x in items:\n        \n    return result\n"
    at = src.index("items:\n        ") + len("items:\n        ")
    assert one(src, at, at, "result = result").reason == "the answer assigns `result` to itself"
    assert one(src, at, at, "result = result + [x]").ok
    js = "function f(items) {\n  let result = [];\n  \n  return result;\n}\n"
    at = js.index("[];\n  ") + len("[];\n  ")
    assert one(js, at, at, "result = result;", lang="javascript").reason == "the answer assigns `result` to itself"
    assert one(js, at, at, "result.push(items);", lang="javascript").ok


def test_a_big_file_s_names_read_in_two_parts_are_its_names():
    # names_around reads the top-level statement being typed in apart from the rest of the file (kept between
    # keystrokes); what it finds must be what reading the whole file finds, and a cut that does not parse falls back
    from infill import guard
    body = "".join(f"\n\n@decorate\ndef f{k}(a, b=CONST):\n    total = a + b\n    for x in range(a):\n"
                   f"        total += helper{k % 7}(x)\n    return total\n" for k in range(400))
    text = ("import os\nfrom functools import wraps as decorate\nCONST = 3\nif os.name == 'nt':\n    SEP = '\\\\'\n"
            "else:\n    SEP = '/'\n" + body + '\nDOC = """\nnot code: def g(\n"""\n')
    assert len(text) > guard.SPLIT_CHARS
    whole = _syntax.python_names(_syntax.python_module(text))
    for at in (text.index("total += helper3"), text.index("return total", len(text) // 2), text.index("not code"),
               text.index("SEP = '/'"), len(text) - 1):
        names = guard._Errors(text, "python").names_around(at)
        assert isinstance(names, _syntax.PythonNames)
        assert {k: sorted(v) for k, v in names.bound.items()} == {k: sorted(v) for k, v in whole.bound.items()}
        assert names.unbound == whole.unbound
    at = text.index("total += helper3")
    assert guard._top_statement(text, at) is not None  # read in two parts there
    broken = text[:at] + "x = (" + text[at:]  # a line half typed: the file does not parse
    assert guard._Errors(broken, "python").names_around(at) is False
