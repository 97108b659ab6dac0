"""infill.imports and the retriever's use of it: what a file imports, which workspace files those are, and which
definitions a cursor then gets first."""

from __future__ import annotations

from pathlib import Path

from infill import retrieval
from infill.imports import Import, candidates, parse
from infill.retrieval import Index, cursor_terms


def test_python_imports_with_names_aliases_and_relative_levels():
    text = ("import os, numpy as np\nimport pkg.sub\nfrom . import helpers\nfrom ..core.geometry import (\n"
            "    area,\n    Point as P,\n)\nfrom .util import *  # everything\ndef f():\n    import late\n")
    assert parse(text, "python") == [
        Import(".", ("helpers",)), Import(".helpers", (), "helpers"),  # the name may be a module: `helpers.`
        Import("..core.geometry", ("area", "Point")), Import("..core.geometry.area", (), "area"),
        Import("..core.geometry.Point", (), "P"), Import(".util"),
        Import("os", (), "os"), Import("numpy", (), "np"), Import("pkg.sub"), Import("late", (), "late")]


def test_python_candidates_resolve_relative_to_the_importing_file():
    here = "src/app/views/page.py"
    assert candidates(Import("..core.geometry", ("area",)), "python", here)[0][:2] == [
        "src/app/core/geometry.py", "src/app/core/geometry/__init__.py"]
    files, _ = candidates(Import(".", ("helpers",)), "python", here)
    assert files == ["src/app/views/helpers.py", "src/app/views/__init__.py"]
    assert candidates(Import("pkg.sub"), "python", here)[0][:2] == ["pkg/sub.py", "pkg/sub/__init__.py"]
    assert candidates(Import("....up"), "python", "a/b.py") == ([], [])  # above the workspace: none of its files


def test_javascript_and_typescript_imports():
    text = ("import React from 'react';\nimport Default, { a, b as c } from './lib/util';\n"
            "import * as geo from \"../geometry.js\";\nexport { x } from './x';\nconst fs = require('fs');\n"
            "import type { T } from './types';\n")
    got = parse(text, "typescript")
    assert Import("./lib/util", ("Default", "a", "b")) in got
    assert Import("../geometry.js", (), "geo") in got
    assert Import("./x", ("x",)) in got and Import("./types", ("T",)) in got and Import("fs") in got
    files, _ = candidates(Import("../geometry.js"), "typescript", "src/app/main.ts")
    assert files[:2] == ["src/geometry.js", "src/geometry.ts"]  # TypeScript writes the emitted name
    assert "src/app/lib/util/index.ts" in candidates(Import("./lib/util"), "typescript", "src/app/main.ts")[0]
    assert candidates(Import("react"), "javascript", "src/a.js") == ([], [])  # a dependency: not the workspace's
    common = "var utils = require('./utils');\nconst { merge, assign: copy } = require('./lib/merge');\n"
    assert Import("./utils", (), "utils") in parse(common, "javascript")
    assert Import("./lib/merge", ("merge", "assign")) in parse(common, "javascript")


def test_go_rust_java_and_c_imports():
    go = ('package main\n\nimport (\n\t"fmt"\n\tstore "example.com/app/internal/storage"\n)\n'
          'import "example.com/app/util"\n')
    assert parse(go, "go") == [Import("fmt", (), "fmt"), Import("example.com/app/internal/storage", (), "store"),
                               Import("example.com/app/util", (), "util")]
    rust = "use crate::model::{Point, shapes::Circle};\nuse std::fmt;\npub mod render;\nuse super::io::*;\n"
    got = parse(rust, "rust")
    assert Import("crate::model", ("Point",)) in got and Import("crate::model::shapes", ("Circle",)) in got
    assert Import("mod::render") in got and Import("super::io") in got
    files, _ = candidates(Import("crate::model::shapes", ("Circle",)), "rust", "core/src/app/main.rs")
    assert files[:2] == ["core/src/model/shapes.rs", "core/src/model/shapes/mod.rs"]
    assert candidates(Import("mod::render"), "rust", "src/lib.rs")[0] == ["src/render.rs", "src/render/mod.rs"]
    java = "package a.b;\nimport a.b.util.Strings;\nimport static a.b.util.Maths.clamp;\nimport a.b.model.*;\n"
    assert parse(java, "java") == [Import("a.b.util.Strings"), Import("a.b.util.Maths.clamp", ("clamp",)),
                                   Import("a.b.model.*")]
    assert candidates(Import("a.b.model.*"), "java", "src/a/b/App.java") == ([], ["a/b/model"])
    c = '#include <stdio.h>\n#include "util/strbuf.h"\n'
    assert parse(c, "c") == [Import("<stdio.h"), Import("util/strbuf.h")]
    assert candidates(Import("util/strbuf.h"), "c", "src/main.c")[0] == ["src/util/strbuf.h", "util/strbuf.h"]


def _index(files: dict[str, str]) -> Index:
    index = Index()
    for rel, text in files.items():
        index.add(Path(rel), rel, text, 0.0)
    return index


def _select(index: Index, key: str, text: str, lang: str = "python") -> list:
    return retrieval.select(index, key, cursor_terms(text, len(text), lang), lambda k, line, n: None)


def test_the_imported_files_definition_comes_before_same_named_ones_elsewhere():
    files = {f"pkg/other{i}.py": f"def area(r{i}):\n    return {i}\n" for i in range(5)}  # five more `area`s
    files["pkg/shapes/geometry.py"] = "def area(width, height):\n    return width * height\n"
    index = _index(files)
    text = "from .shapes.geometry import area\n\ntotal = area(w, h)\nx = "
    chunks = _select(index, "pkg/app.py", text)
    assert chunks[0].path == "pkg/shapes/geometry.py" and chunks[0].text == "def area(width, height):"
    # without the import, that definition is one of several and not the first
    plain = _select(index, "pkg/app.py", "total = area(w, h)\nx = ")
    assert plain[0].path != "pkg/shapes/geometry.py"


def test_module_access_lists_the_imported_files_definitions():
    index = _index({"lib/colours.py": "def blend(a, b):\n    pass\n\n\nclass Palette:\n    def add(self, c):\n"
                                      "        pass\n\n\ndef darken(c, by=0.1):\n    pass\n",
                    "lib/noise.py": "def blend(x):\n    pass\n"})
    text = "import lib.colours as colours\n\nresult = colours."
    chunks = _select(index, "app.py", text)
    defs = [c.text.split("\n")[0] for c in chunks if c.kind == "definition"]
    assert defs[:3] == ["def blend(a, b):", "class Palette:", "def darken(c, by=0.1):"]
    assert all(c.path == "lib/colours.py" for c in chunks[:3])


def test_the_member_being_typed_picks_the_modules_definitions_it_begins():
    """From a trial on munch: after `munch.merge_` the context held the module's first definitions in file order, and
    `merge_munches`, defined last, never reached the model."""
    lib = "".join(f"def helper_{i}(x):\n    pass\n\n\n" for i in range(8)) + "def merge_munches(a, b):\n    pass\n"
    index = _index({"lib/munch.py": lib})
    base = "from lib import munch\n\nresult = munch."
    defs = [c.text for c in _select(index, "app.py", base) if c.kind == "definition"]
    assert "def merge_munches(a, b):" not in defs and defs[0] == "def helper_0(x):"  # file order, the first few
    for typed in ("m", "merge_", "merge_munch"):
        defs = [c.text for c in _select(index, "app.py", base + typed) if c.kind == "definition"]
        assert defs[0] == "def merge_munches(a, b):", typed
    assert cursor_terms(base + "merge_", len(base) + 6, "python").member == "merge_"


def test_a_module_imported_by_name_or_twice_gives_its_members_after_its_name():
    index = _index({"pkg/utils.py": "def echo(message):\n    pass\n\n\ndef style(text):\n    pass\n",
                    "pkg/_compat.py": "class _Fixup:\n    def isatty(self):\n        pass\n\n\n"
                                      "def isatty(stream):\n    pass\n"})
    for text in ("from . import utils\n\nutils.", "from .utils import echo\nimport pkg.utils as u\n\nu."):
        defs = [c.text for c in _select(index, "pkg/app.py", text) if c.kind == "definition"]
        assert defs[:2] == ["def echo(message):", "def style(text):"], text
    # the imported function before the method of the same name
    defs = [c.text for c in _select(index, "pkg/app.py", "from ._compat import isatty\n\nisatty(out)\nx = ")]
    assert defs[0] == "def isatty(stream):"


def test_a_go_module_at_the_workspace_root_resolves_by_the_root_folder_name(tmp_path):
    index = Index()
    root = tmp_path / "logrus"
    index.add(root / "entry.go", "entry.go", "package logrus\n\nfunc WithField(key string) *Entry {\n}\n", 0.0)
    text = 'package main\n\nimport log "github.com/sirupsen/logrus"\n\nfunc main() {\n\tlog.'
    key = str(tmp_path / "cmd" / "main.go")
    assert [c.text for c in _select(index, key, text, "go")][:1] == ["func WithField(key string) *Entry"]


def test_resolution_follows_index_changes():
    index = _index({"app/main.go": "package main\n"})
    text = 'package main\n\nimport "example.com/app/geo"\n\nfunc f() {\n\tx := geo.'
    key = "app/main.go"
    assert index.resolve(key, parse(text, "go")) == []
    area = "package geo\n\nfunc Area(w, h int) int {\n\treturn w * h\n}\n"
    index.add(Path("app/geo/area.go"), "app/geo/area.go", area, 0.0)
    got = index.resolve(key, parse(text, "go"))
    assert [k for k, _ in got] == ["app/geo/area.go"]
    assert [c.text for c in _select(index, key, text, "go")][:1] == ["func Area(w, h int) int"]
    index.remove(Path("app/geo/area.go"))
    assert index.resolve(key, parse(text, "go")) == [] and "geo" not in index.by_dir
