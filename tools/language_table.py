"""The embedded model's quality per language, rated, from docs/results/lang_<language>.json.

    python tools/language_table.py                 print the markdown table (README.md, MODEL_CARD.md)
    python tools/language_table.py --write         also write engine/assets/model/languages.json
    python tools/language_table.py --check         exit 1 when languages.json is not what --write would write

Every language is measured the same way: held-out holes (rest of line, statement, expression, call arguments,
control header, body) cut by tree-sitter from real code that is not in the training corpus (the trees that
tools/lang_corpus.py builds), 200 holes, default sampler, one thread:

    python tools/lang_corpus.py --out build/lang
    diffusion-ls eval --suite heldout --corpus build/lang/LANGUAGE --limit 200 --json --threads 1 --no-progress \
        > docs/results/lang_LANGUAGE.json

SantaCoder-FIM (Python, JavaScript, Java) is not used: its records leave out the line breaks around the hole (the
prompt ends in `return true;`, the middle is `    }`, the suffix starts with `}`), so prompt + middle + suffix is
not the file it was cut from, and the server's hole sizing and post-processing, which read the file, empty most fills
(62% of 300 holes at the default).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from lang_corpus import SOURCES  # noqa: E402

LANGUAGES = ("python", "javascript", "typescript", "java", "go", "rust", "c", "cpp")
REFERENCE = "python"  # the language the model was trained on most: the others are rated against it
GOOD = (0.85, 0.05)  # edit similarity at least 85% of the reference's, raw syntax validity at most 5 points below
FAIR = (0.70, 0.15)
RULE = ("rated on held-out holes against Python, the language the model was trained on most (so 'good' means as "
        "good as this model gets, not good in absolute terms): good = edit similarity at least 85% of Python's and "
        "raw syntax-valid fills at most 5 points below Python's; fair = at least 70% and at most 15 points below; "
        "weak = anything less")
COMMAND = ("python tools/lang_corpus.py --out build/lang; for each language: diffusion-ls eval --suite heldout "
           "--corpus build/lang/LANGUAGE --limit 200 --json --threads 1 --no-progress > "
           "docs/results/lang_LANGUAGE.json; python tools/language_table.py --write")
NAMES = {"python": "Python", "javascript": "JavaScript", "typescript": "TypeScript", "java": "Java", "go": "Go",
         "rust": "Rust", "c": "C", "cpp": "C++"}


def rate(r: dict, ref: dict) -> str:
    es, raw = r["edit_similarity"], r["syntax_valid_raw"]
    for name, (es_frac, raw_drop) in (("good", GOOD), ("fair", FAIR)):
        if es >= es_frac * ref["edit_similarity"] - 1e-9 and raw >= ref["syntax_valid_raw"] - raw_drop - 1e-9:
            return name
    return "weak"


def suite_name(lang: str) -> str:
    """Where the held-out holes of a language come from."""
    if lang == "python":
        pk = json.loads((ROOT / "tools" / "corpus_manifest.json").read_text())["heldout_packages"]
        return f"held-out packages (PyPI: {', '.join(pk)})"
    where = {"npm": "npm", "deb": "Debian", "debsrc": "Debian source"}[SOURCES[lang][0][0]]
    names = []
    for _, name, *_ in SOURCES[lang]:
        name = name.removeprefix("golang-github-").removeprefix("librust-").removesuffix("-dev")
        if name.endswith("-java"):
            name = name.removeprefix("lib").removesuffix("-java")
        names.append(name)
    return f"held-out packages ({where}: {', '.join(names)})"


def languages(results: Path, model: str | None = None) -> dict:
    """The languages.json object from the results files."""
    recs = {}
    for lang in LANGUAGES:
        f = results / f"lang_{lang}.json"
        if not f.exists():
            raise SystemExit(f"{f} is missing: measure it first (see {Path(__file__).name}'s docstring)")
        recs[lang] = json.loads(f.read_text())
        if recs[lang].get("suite") != "heldout":
            raise SystemExit(f"{f} is not a heldout run")
    models = {r["model"] for r in recs.values()}
    if len(models) != 1 or (model is not None and model not in models):
        raise SystemExit(f"the results are of {sorted(models)}, not of one model {model or ''}".rstrip())
    ref = recs[REFERENCE]
    out = {}
    for lang, r in recs.items():
        out[lang] = {"rating": rate(r, ref), "suite": suite_name(lang), "holes": r["n"],
                     "exact_match": r["exact_match"], "edit_similarity": r["edit_similarity"],
                     "syntax_valid_raw": r["syntax_valid_raw"], "syntax_valid": r["syntax_valid"],
                     "empty_fills": r["empty_fills"]}
    return {"model": models.pop(), "command": COMMAND, "rule": RULE, "languages": out}


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def table(doc: dict) -> str:
    out = ["| language | rating | holes | exact | edit sim. | syntax-valid (raw) | suite |",
           "|---|---|---|---|---|---|---|"]
    for lang, e in doc["languages"].items():
        out.append(f"| {NAMES[lang]} | {e['rating']} | {e['holes']} | {pct(e['exact_match'])} | "
                   f"{pct(e['edit_similarity'])} | {pct(e['syntax_valid_raw'])} | {e['suite']} |")
    return "\n".join(out)


def model_dir_name(model_dir: Path) -> str:
    return json.loads((model_dir / "config.json").read_text()).get("name", model_dir.name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=str(ROOT / "docs" / "results"))
    ap.add_argument("--model-dir", default=str(ROOT / "engine" / "assets" / "model"))
    ap.add_argument("--write", action="store_true", help="write MODEL_DIR/languages.json")
    ap.add_argument("--check", action="store_true", help="exit 1 when MODEL_DIR/languages.json is stale")
    args = ap.parse_args(argv)
    model_dir = Path(args.model_dir)
    doc = languages(Path(args.results), model_dir_name(model_dir))
    text = json.dumps(doc, indent=1) + "\n"
    target = model_dir / "languages.json"
    if args.check:
        if not target.exists() or target.read_text() != text:
            print(f"{target} is not what the results say: python tools/language_table.py --write", file=sys.stderr)
            return 1
        return 0
    print(table(doc))
    if args.write:
        target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
