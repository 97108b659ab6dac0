#!/usr/bin/env python3
"""True completions of lines typed half-way, judged by the guard: it should refuse none. Two kinds of place where
trials found the guard refusing correct answers, or where its newer rules could:

    python tools/guard_scans.py build/lang [--files 250] [--json]

1. headers: Python compound-statement headers (`if`, `elif`, `while`, `for`, `with`, `def`, `class`, `except`) of
   the held-out trees and of the standard library, each cut at a random point after a few characters, completed with
   the rest of its own line (the header typed up to its colon; `eli` + `f c != ESCAPE:`);
2. names: identifiers of the held-out Python, JavaScript and TypeScript trees, typed as far as their third character
   or to their end, completed with the rest of their line (a name the user began, which the answer finishes or ends),
   or, at every other place typed to its third character, with the rest of the name alone, in front of the code after
   it on its line;
3. signatures: JavaScript and TypeScript function, method and arrow headers (a parameter list, then the body's `{`),
   each cut at a random point inside its parameter list, completed with the rest of the line.

Each place is one guard.check of the document with the rest of the line cut away; every refusal is listed.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infill import guard  # noqa: E402

HEADER = re.compile(r"(?m)^[ \t]*(?:if|elif|while|for|with|def|class|except)\b[^\n]*:[ \t]*$")
NAME = re.compile(r"(?<![\w.$#])[A-Za-z_]\w{4,}")
SIGNATURE = re.compile(r"(?m)^(?![ \t]*(?:if|for|while|switch|catch|else|do)\b)[^\n(]*\(([^\n()]*)\)[ \t]*"
                       r"(?::[^\n{=]*)?(?:=>[ \t]*)?\{[ \t]*$")
EXT = {"python": ("py",), "javascript": ("js", "mjs"), "typescript": ("ts",)}


def files(root: Path, lang: str) -> list[Path]:
    return sorted(p for ext in EXT[lang] for p in root.rglob(f"*.{ext}") if not p.name.endswith(".d.ts"))


def read(path: Path, limit: int = 80_000) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return text if len(text) <= limit else None


def judge(text: str, at: int, end: int, lang: str) -> str | None:
    """The guard's reason for refusing text[at:end] as the completion at `at` of the document without it, or None."""
    doc = text[:at] + text[end:]
    return guard.check(doc, lang, [guard.Proposal(at, at, text[at:end])])[0].reason


def headers(paths: list[Path], rng: random.Random, per_file: int = 6) -> dict:
    tried, refused = 0, []
    for path in paths:
        text = read(path)
        if text is None:
            continue
        found = list(HEADER.finditer(text))
        for m in rng.sample(found, min(per_file, len(found))):
            line = m.group()
            indent = len(line) - len(line.lstrip())
            for _ in range(2):
                at = m.start() + rng.randint(indent + 3, len(line) - 1)
                tried += 1
                reason = judge(text, at, m.end(), "python")
                if reason is not None:
                    refused.append({"line": line.strip()[:80], "typed": text[m.start() + indent : at],
                                    "reason": reason})
    return {"tried": tried, "refused": len(refused), "examples": refused[:20]}


def sampled(paths: list[tuple[Path, str]], rng: random.Random, per_file: int,
            find: Callable[[str], list[re.Match]]) -> Iterator[tuple[str, str, re.Match]]:
    """(text, lang, match) for up to per_file matches of find(text), drawn at random, in each readable file."""
    for path, lang in paths:
        text = read(path, 60_000)
        if text is None:
            continue
        found = find(text)
        for m in rng.sample(found, min(per_file, len(found))):
            yield text, lang, m


def names(paths: list[tuple[Path, str]], rng: random.Random, per_file: int = 8) -> dict:
    tried, refused = 0, []
    for text, lang, m in sampled(paths, rng, per_file, lambda text: list(NAME.finditer(text))):
        for k in (3, len(m.group())):
            at = m.start() + k
            eol = text.find("\n", at)
            eol = len(text) if eol < 0 else eol
            if not text[at:eol].strip():
                continue
            tried += 1
            # the rest of the line, or (every other place) the rest of the word, the code after it left in place
            end = eol if k == len(m.group()) or tried % 2 else m.end()
            reason = judge(text, at, end, lang)
            if reason is not None:
                refused.append({"lang": lang, "line": text[text.rfind("\n", 0, at) + 1 : eol].strip()[:80],
                                "typed": m.group()[:k], "reason": reason})
    return {"tried": tried, "refused": len(refused), "examples": refused[:20]}


def signature_lists(text: str) -> list[re.Match]:
    """The parameter lists of the text's function headers that hold something."""
    return [m for m in SIGNATURE.finditer(text) if m.group(1).strip()]


def signatures(paths: list[tuple[Path, str]], rng: random.Random, per_file: int = 6) -> dict:
    tried, refused = 0, []
    for text, lang, m in sampled(paths, rng, per_file, signature_lists):
        at = rng.randint(m.start(1), m.end(1))
        tried += 1
        reason = judge(text, at, m.end(), lang)
        if reason is not None:
            refused.append({"lang": lang, "line": m.group().strip()[:80], "typed": text[m.start() : at].strip(),
                            "reason": reason})
    return {"tried": tried, "refused": len(refused), "examples": refused[:20]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", help="the language trees of tools/lang_corpus.py")
    ap.add_argument("--files", type=int, default=250, help="files per scan, drawn at random")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    root = Path(args.corpus)
    stdlib = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    python = files(root / "python", "python") + stdlib
    result = {"command": "python tools/guard_scans.py " + " ".join(sys.argv[1:]),
              "headers": headers(rng.sample(python, min(args.files, len(python))), rng)}
    mixed = [(p, lang) for lang in EXT for p in files(root / lang, lang)]
    result["names"] = names(rng.sample(mixed, min(args.files, len(mixed))), rng)
    scripts = [(p, lang) for p, lang in mixed if lang != "python"]
    result["signatures"] = signatures(rng.sample(scripts, min(args.files, len(scripts))), rng)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for kind in ("headers", "names", "signatures"):
            r = result[kind]
            print(f"{kind}: {r['tried']} true completions judged, {r['refused']} refused")
            for ex in r["examples"]:
                print(f"  {ex}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
