"""What a file imports, and where those files are in the workspace: pure, regex-based, per language.

The retriever (infill.retrieval) looks the names used near a cursor up first in the files the current file imports:
`from .geometry import area` says which of the workspace's `area`s the cursor means, and `utils.` asks for the
members of that one file. Only imports that can name a workspace file are kept (relative ones, and dotted or slashed
paths a workspace path can end with); a standard library's or a dependency's simply resolves to nothing.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

SCAN_CHARS = 200_000  # imports are read from this much of a file (they sit at its top, bar a few)
# The spans a statement may run over (`(...)`, `{...}`, up to `;`) are bounded: unbounded, a file of many statements
# never closed (10,000 `use a::b` lines with no `;`) is scanned to its end from each of them, seconds a keystroke.
SPAN = 2000
MAX_IMPORTS = 64  # per file: more say little about one cursor, and each costs a lookup


@dataclass(frozen=True)
class Import:
    """One import statement's target, as written (`pkg.mod`, `.mod`, `./util`, `net/http`, `crate::a::b`, `x.h`)."""

    target: str
    names: tuple[str, ...] = ()  # names it brings in (`from m import a, b`; `use m::{A, b}`; `import {a} from`)
    alias: str = ""  # the name the module itself goes by in the file (`import m as z`, Go's package name, `* as z`)


_PY_FROM = re.compile(rf"^[ \t]*from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\([^)]{{0,{SPAN}}}\)|[^\n#;]*)", re.M)
_PY_NAME = r"[\w.]+(?:[ \t]+as[ \t]+\w+)?"  # `a.b` or `a.b as c`
_PY_IMPORT = re.compile(rf"^[ \t]*import[ \t]+({_PY_NAME}(?:[ \t]*,[ \t]*{_PY_NAME})*)", re.M)
# what sits between `import`/`export` and `from`, spelled out (a default name, `* as ns`, `{...}`, `type`): a lazy
# "anything up to from" scanned to the end of the file from every `export` of a file without semicolons (quadratic:
# 28 s for 200 KB of `export const v = 1` lines)
_JS_CLAUSE = rf"(?:type[ \t]+)?(?:[\w$]+[ \t]*,[ \t]*)?(?:\*[ \t]*as[ \t]+[\w$]+|\*|\{{[^}}]{{0,{SPAN}}}\}}|[\w$]+)"
_JS_FROM = re.compile(
    rf"""(?:^|[;\n])[ \t]*(?:import|export)\b[ \t]*({_JS_CLAUSE})[ \t\n]*\bfrom[ \t]*['"]([^'"\n]+)['"]""", re.M)
_JS_BARE = re.compile(r"""(?:\bimport[ \t]*\(?|\brequire[ \t]*\()[ \t]*['"]([^'"\n]+)['"]""")
_JS_REQUIRE = re.compile(  # `const u = require('./u')`, `const {a, b} = require('./u')`
    rf"""\b(?:const|let|var)[ \t]+(\w+|\{{[^}}]{{0,{SPAN}}}\}})[ \t]*=[ \t]*require[ \t]*\([ \t]*['"]([^'"\n]+)['"]""")
_GO_BLOCK = re.compile(rf"^import[ \t]*\(([^)]{{0,{SPAN}}})\)", re.M)
_GO_ONE = re.compile(r"^import[ \t]+((?:[\w.]+[ \t]+)?\"[^\"\n]+\")", re.M)
_GO_SPEC = re.compile(r"(?:([\w.]+)[ \t]+)?\"([^\"\n]+)\"")
_RS_USE = re.compile(rf"^[ \t]*(?:pub(?:\([^)]*\))?[ \t]+)?use[ \t]+([^;]{{1,{SPAN}}});", re.M)
_RS_MOD = re.compile(r"^[ \t]*(?:pub(?:\([^)]*\))?[ \t]+)?mod[ \t]+(\w+)[ \t]*;", re.M)
_JAVA = re.compile(r"^[ \t]*import[ \t]+(?:static[ \t]+)?([\w.]+(?:\.\*)?)[ \t]*;", re.M)
_C_INCLUDE = re.compile(r"^[ \t]*#[ \t]*include[ \t]*([\"<])([^\">\n]+)[\">]", re.M)
_WORD = re.compile(r"[A-Za-z_]\w*")

_JS_EXTS = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".d.ts")
_C_SOURCES = (".c", ".cc", ".cpp", ".cxx", ".h", ".hh", ".hpp", ".hxx")


def parse(text: str, lang: str | None) -> list[Import]:
    """The imports of a file, in order, each once; [] for a language without a rule."""
    text = text[:SCAN_CHARS]
    out: list[Import] = []
    if lang == "python":
        for m in _PY_FROM.finditer(text):
            pairs = [(n, a) for n, a in _as_pairs(m.group(2).strip("() \t\n").replace("\n", " ")) if n != "*"]
            out.append(Import(m.group(1), tuple(n for n, _ in pairs)))
            base = m.group(1) if m.group(1).endswith(".") else m.group(1) + "."
            # `from . import utils`: each name may be a module of its own, used as `utils.`
            out += [Import(base + n, (), a or n) for n, a in pairs]
        for m in _PY_IMPORT.finditer(text):
            for name, alias in _as_pairs(m.group(1)):
                out.append(Import(name, (), alias or (name if "." not in name else "")))
    elif lang in ("javascript", "typescript", "tsx"):
        for m in _JS_FROM.finditer(text):
            out.append(_js_import(m.group(1), m.group(2)))
        for m in _JS_REQUIRE.finditer(text):
            bound = m.group(1)
            if bound.startswith("{"):
                out.append(Import(m.group(2), tuple(n.split(":")[0].strip() for n in bound[1:-1].split(",")
                                                    if _WORD.fullmatch(n.split(":")[0].strip()))))
            else:
                out.append(Import(m.group(2), (), bound))
        for m in _JS_BARE.finditer(text):
            out.append(Import(m.group(1)))
    elif lang == "go":
        specs = [s for b in _GO_BLOCK.finditer(text) for s in _GO_SPEC.finditer(b.group(1))]
        specs += [s for m in _GO_ONE.finditer(text) for s in _GO_SPEC.finditer(m.group(1))]
        for s in specs:
            path = s.group(2)
            alias = s.group(1) or path.rsplit("/", 1)[-1]
            out.append(Import(path, (), "" if alias in ("_", ".") else alias))
    elif lang == "rust":
        for m in _RS_USE.finditer(text):
            out.extend(_rust_use(" ".join(m.group(1).split())))
        for m in _RS_MOD.finditer(text):
            out.append(Import(f"mod::{m.group(1)}"))
    elif lang == "java":
        for m in _JAVA.finditer(text):
            target = m.group(1)
            head, _, last = target.rpartition(".")
            # `import a.b.C;` and `import static a.b.C.member;`: the class's file, the member's name
            out.append(Import(target, (last,) if last and last[0].islower() and last != "*" and head else ()))
    elif lang in ("c", "cpp"):
        for m in _C_INCLUDE.finditer(text):
            out.append(Import(("" if m.group(1) == '"' else "<") + m.group(2).strip()))
    return list(dict.fromkeys(out))[:MAX_IMPORTS]


def _as_pairs(spec: str) -> list[tuple[str, str]]:
    """`a as b, c` -> [(a, b), (c, "")]."""
    out = []
    for part in spec.split(","):
        words = part.split()
        if not words:
            continue
        out.append((words[0], words[2] if len(words) >= 3 and words[1] == "as" else ""))
    return out


def _js_import(clause: str, target: str) -> Import:
    clause = " ".join(clause.replace("type ", " ").split())
    alias = ""
    m = re.search(r"\*\s*as\s+(\w+)", clause)
    if m:
        alias = m.group(1)
    names = []
    braces = re.search(r"\{([^}]*)\}", clause)
    if braces:
        names = [n for n, _ in _as_pairs(braces.group(1))]
    default = re.match(r"\s*(\w+)\s*(?:,|$)", clause)
    if default and default.group(1) not in ("type", "typeof"):
        names.insert(0, default.group(1))
    return Import(target, tuple(n for n in names if _WORD.fullmatch(n)), alias)


def _rust_use(spec: str) -> list[Import]:
    """`crate::a::{B, c::D}` -> the imports of its leaves: (crate::a, B), (crate::a::c, D)."""
    out: list[Import] = []

    def walk(prefix: str, rest: str) -> None:
        rest = rest.strip()
        if "{" in rest and rest.endswith("}"):
            head, _, body = rest.partition("{")
            base = (prefix + "::" if prefix else "") + head.strip().rstrip(":").strip()
            depth, part, parts = 0, "", []
            for ch in body[:-1]:
                depth += ch == "{"
                depth -= ch == "}"
                if ch == "," and depth == 0:
                    parts.append(part)
                    part = ""
                else:
                    part += ch
            parts.append(part)
            for p in parts:
                if p.strip():
                    walk(base.rstrip(":"), p)
            return
        path = (prefix + "::" if prefix else "") + rest.split(" as ")[0].strip()
        module, _, leaf = path.rpartition("::")
        if leaf == "self":
            out.append(Import(module))
        elif leaf == "*":
            out.append(Import(module))
        elif module:
            out.append(Import(module, (leaf,) if _WORD.fullmatch(leaf) else ()))

    walk("", spec)
    return out


def candidates(imp: Import, lang: str | None, current: str) -> tuple[list[str], list[str]]:
    """(file paths, folder paths) an import may name, posix, each either relative to the workspace (resolved from
    `current`, the importing file's workspace path) or a tail a workspace path may end with."""
    here = posixpath.dirname(current)
    t = imp.target
    if lang == "python":
        dots = len(t) - len(t.lstrip("."))
        parts = [p for p in t[dots:].split(".") if p]
        if dots:
            if dots - 1 > (here.count("/") + 1 if here else 0):  # above the workspace's root: not its file
                return [], []
            base = here
            for _ in range(dots - 1):
                base = posixpath.dirname(base)
            mod = posixpath.join(base, *parts) if parts else base
            files = [mod + ".py", posixpath.join(mod, "__init__.py")] if parts else []
            # `from . import a`: a is a module of the folder, or a name of its __init__
            files += [posixpath.join(mod, n + ".py") for n in imp.names] + ([posixpath.join(mod, "__init__.py")]
                                                                           if not parts else [])
            return [posixpath.normpath(f) for f in files], []
        if not parts:
            return [], []
        mod = "/".join(parts)
        return [mod + ".py", mod + "/__init__.py"] + [f"{mod}/{n}.py" for n in imp.names], []
    if lang in ("javascript", "typescript", "tsx"):
        if not t.startswith("."):
            return [], []
        mod = posixpath.normpath(posixpath.join(here, t))
        if posixpath.splitext(mod)[1] in _JS_EXTS:
            stem = posixpath.splitext(mod)[0]  # `./a.js` written for the a.ts beside it (TypeScript's convention)
            return [mod] + [stem + e for e in _JS_EXTS if stem + e != mod], []
        return [mod + e for e in _JS_EXTS] + [f"{mod}/index{e}" for e in _JS_EXTS], []
    if lang == "go":
        return [], [t]
    if lang == "rust":
        parts = t.split("::")
        if parts[0] == "mod":  # `mod x;`: x.rs beside this file, or in the folder of this file's module
            stem = posixpath.splitext(posixpath.basename(current))[0]
            base = here if stem in ("mod", "lib", "main") else posixpath.join(here, stem)
            return [posixpath.join(base, parts[1] + ".rs"), posixpath.join(base, parts[1], "mod.rs")], []
        if parts[0] in ("crate", "self", "super"):
            if parts[0] == "crate":
                base = _rust_src(current)
            else:
                base = here if posixpath.basename(current) in ("mod.rs", "lib.rs", "main.rs") else posixpath.join(
                    here, posixpath.splitext(posixpath.basename(current))[0])
                base = posixpath.dirname(base) if parts[0] == "super" else base
            rest = [p for p in parts[1:] if p not in ("self", "super")]
            files = []
            for n in range(len(rest), 0, -1):  # the longest path that is a file: the rest are items in it
                mod = posixpath.join(base, *rest[:n])
                files += [mod + ".rs", mod + "/mod.rs"]
            if not rest:
                files += [posixpath.join(base, "lib.rs"), posixpath.join(base, "main.rs")]
            return [posixpath.normpath(f) for f in files], []
        return [], []
    if lang == "java":
        if t.endswith(".*"):
            return [], [t[:-2].replace(".", "/")]
        parts = t.split(".")
        # a class's file, or (a static member, an inner class) the one before it
        return ["/".join(parts) + ".java"] + (["/".join(parts[:-1]) + ".java"] if len(parts) > 2 else []), []
    if lang in ("c", "cpp"):
        if t.startswith("<"):
            return [t[1:]], []
        files = [posixpath.normpath(posixpath.join(here, t)), t]
        return files, []
    return [], []


def _rust_src(current: str) -> str:
    """The crate root's folder of a file (the `src` folder above it, else its own folder)."""
    parts = current.split("/")
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "src":
            return "/".join(parts[: i + 1])
    return posixpath.dirname(current)


def companions(current: str, lang: str | None) -> list[str]:
    """Files a C or C++ file goes with without naming them: its header, or its header's sources (same stem)."""
    if lang not in ("c", "cpp"):
        return []
    stem, ext = posixpath.splitext(current)
    return [stem + e for e in _C_SOURCES if e != ext]
