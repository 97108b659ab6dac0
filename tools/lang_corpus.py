#!/usr/bin/env python3
"""Build the per-language held-out source trees that measure the embedded model in each language.

    python tools/lang_corpus.py --out build/lang                 (every language)
    python tools/lang_corpus.py --out build/lang go rust          (some of them)

then, per language, `diffusion-ls eval --suite heldout --corpus build/lang/LANGUAGE --limit 200 --json --threads 1
--no-progress > docs/results/lang_LANGUAGE.json`, and `python tools/language_table.py` for the table and
engine/assets/model/languages.json.

Every tree is real code nobody here wrote, from permissively licensed packages that are NOT in the training corpus
(tools/corpus_manifest.json; the build refuses a package whose name is there):
  * python       the corpus's own held-out split (boltons, click, h11), built by tools/build_corpus.py;
  * javascript,  npm packages (`npm pack NAME@VERSION`), their hand-written sources only (no dist/ builds, no
    typescript  declaration files);
  * go, rust     Debian's golang-*-dev / librust-*-dev packages (`apt-get download`), which carry the sources
                 (/usr/share/gocode, /usr/share/cargo/registry);
  * c, cpp, java Debian source packages (`apt-get source --download-only`, needs a deb-src line), the upstream
                 tarball. The .h headers of a C++ project are kept as .hpp, so that they are parsed as C++.
Library code only: tests, examples, benchmarks, docs, vendored and generated files are left out, and so are minified
files and files over 200 KB. At most --max-files files per package (evenly spread over its sorted paths), so that one
large package does not make up the whole language. The trees are for evaluation only, never for training.
Writes OUT/LANGUAGE/PACKAGE/... and OUT/manifest.json (package, version, license and where it was read, files,
bytes). Downloads are cached in OUT/archives.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import build_corpus as bc  # noqa: E402  (the corpus builder's license and generated-file rules)

# language -> [(kind, name, version, license, the text the license is read from must contain, subdirs kept)]
# kind: npm (registry tarball), deb (Debian binary package), debsrc (Debian source package, upstream tarball)
SOURCES: dict[str, list[tuple[str, str, str, str, str, tuple[str, ...]]]] = {
    "javascript": [
        ("npm", "ws", "8.23.1", "MIT", "MIT", ("lib",)),
        ("npm", "qs", "6.17.1", "BSD-3-Clause", "BSD-3-Clause", ("lib",)),
        ("npm", "moment", "2.31.0", "MIT", "MIT", ("src/lib",)),
        ("npm", "jquery", "4.0.0", "MIT", "MIT", ("src",)),
        ("npm", "handlebars", "4.7.10", "MIT", "MIT", ("lib",)),
        ("npm", "three", "0.187.0", "MIT", "MIT", ("src",)),
    ],
    "typescript": [
        ("npm", "mobx", "7.1.3", "MIT", "MIT", ("src",)),
        ("npm", "redux", "5.0.1", "MIT", "MIT", ("src",)),
        ("npm", "@reduxjs/toolkit", "2.16.0", "MIT", "MIT", ("src",)),
        ("npm", "@tanstack/query-core", "5.108.4", "MIT", "MIT", ("src",)),
        ("npm", "@trpc/server", "11.25.2", "MIT", "MIT", ("src",)),
        ("npm", "effect", "4.1.0", "MIT", "MIT", ("src",)),
    ],
    "go": [
        ("deb", "golang-github-spf13-cobra-dev", "1.6.1-1", "Apache-2.0", "Apache-2.0", ()),
        ("deb", "golang-github-pkg-errors-dev", "0.9.1-2", "BSD-2-Clause", "BSD-2-clause", ()),
        ("deb", "golang-github-sirupsen-logrus-dev", "1.9.0-1", "MIT", "Expat", ()),
        ("deb", "golang-github-gorilla-mux-dev", "1.8.0-1", "BSD-3-Clause", "BSD-3-clause", ()),
        ("deb", "golang-github-google-go-cmp-dev", "0.5.9-1", "BSD-3-Clause", "BSD-3-clause", ()),
        ("deb", "golang-github-burntsushi-toml-dev", "1.2.0-2", "MIT", "Expat", ()),
        ("deb", "golang-github-spf13-pflag-dev", "1.0.6~git20210604-d5e0c0615ace-1", "BSD-3-Clause",
         "BSD-3-clause", ()),
        ("deb", "golang-github-google-uuid-dev", "1.3.0-1", "BSD-3-Clause", "BSD-3-clause", ()),
    ],
    "rust": [
        ("deb", "librust-anyhow-dev", "1.0.69-1", "MIT OR Apache-2.0", "Apache-2.0", ()),
        ("deb", "librust-semver-dev", "1.0.14-1", "MIT OR Apache-2.0", "Apache-2.0", ()),
        ("deb", "librust-regex-syntax-dev", "0.6.27-1", "MIT OR Apache-2.0", "Apache-2.0", ()),
        ("deb", "librust-serde-json-dev", "1.0.87-1", "MIT OR Apache-2.0", "Apache-2.0", ()),
        ("deb", "librust-bytes-dev", "1.2.1-1", "MIT", "MIT", ()),
        ("deb", "librust-smallvec-dev", "1.9.0-1", "MIT OR Apache-2.0", "Apache-2.0", ()),
        ("deb", "librust-indexmap-dev", "1.9.2-1", "MIT OR Apache-2.0", "Apache-2.0", ()),
        ("deb", "librust-log-dev", "0.4.17-3", "MIT OR Apache-2.0", "Apache-2.0", ()),
    ],
    "c": [
        ("debsrc", "jansson", "2.14-2", "MIT", "Expat", ("src",)),
        ("debsrc", "libyaml", "0.2.5-1", "MIT", "Expat", ("src", "include")),
        ("debsrc", "expat", "2.5.0-1+deb12u2", "MIT", "MIT", ("expat/lib", "lib")),
        ("debsrc", "cjson", "1.7.15-1+deb12u4", "MIT", "MIT", ("cJSON.c", "cJSON.h", "cJSON_Utils.c",
                                                                  "cJSON_Utils.h")),
        ("debsrc", "libuv1", "1.44.2-1+deb12u1", "MIT", "Expat", ("src", "include")),
        ("debsrc", "zlib", "1:1.2.13.dfsg-1", "Zlib", "Zlib", ("",)),
    ],
    "cpp": [
        ("debsrc", "fmtlib", "9.1.0+ds1-2", "MIT", "Expat", ("src", "include")),
        ("debsrc", "pugixml", "1.13-0.2", "MIT", "Expat", ("src",)),
        ("debsrc", "leveldb", "1.23-4", "BSD-3-Clause", "BSD-3-clause", ("db", "table", "util", "include")),
        ("debsrc", "re2", "20220601+dfsg-1", "BSD-3-Clause", "BSD-3-google", ("re2",)),
        ("debsrc", "snappy", "1.1.9-3", "BSD-3-Clause", "BSD-3-Clause", ("",)),
        ("debsrc", "yaml-cpp", "0.7.0+dfsg-8", "MIT", "X11", ("src", "include")),
    ],
    "java": [
        ("debsrc", "libcommons-lang3-java", "3.12.0-2+deb12u1", "Apache-2.0", "Apache-2.0", ("src/main",)),
        ("debsrc", "jsoup", "1.15.3-1", "MIT", "MIT", ("src/main",)),
        ("debsrc", "commons-io", "2.11.0-2", "Apache-2.0", "Apache-2.0", ("src/main",)),
        ("debsrc", "libcommons-collections4-java", "4.2-1", "Apache-2.0", "Apache-2.0", ("src/main",)),
    ],
}
LANGUAGES = ("python", *SOURCES)

EXTENSIONS = {
    "javascript": (".js", ".mjs", ".cjs"),
    "typescript": (".ts", ".mts", ".cts"),
    "go": (".go",),
    "rust": (".rs",),
    "c": (".c", ".h"),
    "cpp": (".cc", ".cpp", ".cxx", ".hpp", ".hh", ".h"),
    "java": (".java",),
}
# Debian binary packages: where the sources are inside the package
DEB_ROOTS = {"go": "usr/share/gocode/src/", "rust": "usr/share/cargo/registry/"}
SKIP_DIRS = {"test", "tests", "testing", "testdata", "__tests__", "__mocks__", "spec", "specs", "example",
             "examples", "bench", "benches", "benchmark", "benchmarks", "doc", "docs", "vendor", "third_party",
             "thirdparty", "fuzz", "fuzzing", "dist", "build", "min", "locale", "locales", "i18n", "debian",
             ".github", "node_modules", "cmake", "ci", "contrib", "tools", "scripts"}
MAX_FILES = 25


def skip_path(rel: str, lang: str) -> bool:
    parts = rel.split("/")
    name = parts[-1]
    if not name.endswith(EXTENSIONS[lang]) or name.endswith((".d.ts", ".d.mts", ".d.cts")) or name.startswith("."):
        return True
    if name.endswith(("_test.go", ".min.js", ".test.ts", ".spec.ts", ".test.js", ".spec.js")) or ".bundle." in name:
        return True
    stem = name.rsplit(".", 1)[0].lower()
    if stem.startswith("test") or any(w in stem for w in ("_test", "-test", "unittest", "benchmark", "fuzz")):
        return True
    return any(d.lower() in SKIP_DIRS for d in parts[:-1])


def text_ok(data: bytes) -> str | None:
    """The file's text, or None when it is not kept (binary, too large or small, minified, generated)."""
    if not bc.MIN_FILE_BYTES <= len(data) <= bc.MAX_FILE_BYTES:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text.splitlines() or [""]
    if max(len(ln) for ln in lines) > bc.MAX_LINE_CHARS or len(text) / len(lines) > bc.MAX_AVG_LINE:
        return None
    head = "\n".join(lines[: bc.GEN_HEADER_LINES])
    if bc.GEN_COMMENT_RE.search(head) or bc.GEN_DOC_RE.search(text[:4000]):
        return None
    return text


def run(cmd: list[str], cwd: Path) -> None:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr.strip()}")


def fetch(kind: str, name: str, version: str, cache: Path) -> Path:
    """The downloaded archive (npm tarball, .deb, or the source package's upstream tarball), cached."""
    cache.mkdir(parents=True, exist_ok=True)
    if kind == "npm":
        want = cache / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
        if not want.exists():
            run(["npm", "pack", "--silent", f"{name}@{version}"], cache)
        return want
    plain = version.split(":", 1)[-1]
    if kind == "deb":
        found = sorted(cache.glob(f"{name}_*.deb"))
        if not found:
            run(["apt-get", "download", f"{name}={version}"], cache)
            found = sorted(cache.glob(f"{name}_*.deb"))
        if not found:
            raise SystemExit(f"apt-get download {name}={version} left no .deb in {cache}")
        return found[0]
    upstream = plain.rsplit("-", 1)[0]
    if not (cache / f"{name}_{plain}.dsc").exists():
        run(["apt-get", "source", "--download-only", f"{name}={version}"], cache)
    found = sorted(p for p in cache.glob(f"{name}_{upstream}.orig.tar.*") if not p.name.endswith(".asc"))
    if not found:
        raise SystemExit(f"no upstream tarball of {name} {version} in {cache}")
    return found[0]


def deb_members(path: Path) -> dict[str, bytes]:
    """The files of a .deb (its data.tar), by path."""
    out = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(path)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(out)) as tf:
        return {m.name.removeprefix("./"): tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}


def tar_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tf:
        return {m.name.removeprefix("./"): tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}


def strip_top(members: dict[str, bytes]) -> dict[str, bytes]:
    """Paths relative to the archive's single top folder (package/, name-1.2/), when it has one."""
    tops = {p.split("/", 1)[0] for p in members}
    if len(tops) == 1 and all("/" in p for p in members):
        return {p.split("/", 1)[1]: d for p, d in members.items()}
    return members


def package_files(lang: str, kind: str, name: str, version: str, evidence: str, subdirs: tuple[str, ...],
                  cache: Path, max_files: int = MAX_FILES) -> tuple[dict[str, str], str]:
    """(relative path -> text) of one package's kept files, and where its license was read."""
    archive = fetch(kind, name, version, cache)
    if kind == "deb":
        members = deb_members(archive)
        license_text = next((d.decode("utf-8", "replace") for p, d in members.items()
                             if p == f"usr/share/doc/{name}/copyright"), "")
        where = f"usr/share/doc/{name}/copyright"
        root = DEB_ROOTS[lang]
        members = {p[len(root):]: d for p, d in members.items() if p.startswith(root)}
    elif kind == "debsrc":
        members = strip_top(tar_members(archive))
        debian = sorted(cache.glob(f"{name}_{version.split(':', 1)[-1]}.debian.tar.*"))
        license_text = ""
        if debian:
            license_text = tar_members(debian[0]).get("debian/copyright", b"").decode("utf-8", "replace")
        where = "debian/copyright"
    else:
        members = strip_top(tar_members(archive))
        meta = json.loads(members.get("package.json", b"{}"))
        license_text = str(meta.get("license", ""))
        where = "package.json license"
        if bc.LICENSE_ALIASES.get(license_text.lower(), license_text) not in bc.PERMISSIVE:
            raise SystemExit(f"{name}: license {license_text!r} is not permissive")
    if evidence not in license_text:
        raise SystemExit(f"{name}: {where} does not say {evidence!r}")
    kept: dict[str, str] = {}
    for rel, data in sorted(members.items()):
        if subdirs and subdirs != ("",) and not any(rel == s or rel.startswith(s.rstrip("/") + "/") for s in subdirs):
            continue
        if skip_path(rel, lang):
            continue
        text = text_ok(data)
        if text is None:
            continue
        if lang == "cpp" and rel.endswith(".h"):  # a C++ project's header: C++, not C
            rel = rel[:-2] + ".hpp"
            if rel in members:
                continue
        kept[rel] = text
    paths = sorted(kept)
    if len(paths) > max_files:
        paths = [paths[(i * len(paths)) // max_files] for i in range(max_files)]
    return {p: kept[p] for p in paths}, f"{where}: {evidence}"


def build_python(out: Path) -> dict:
    """The corpus's held-out split, built by tools/build_corpus.py from the `heldout` lines of the package list."""
    lines = [ln for ln in (ROOT / "tools" / "corpus_packages.txt").read_text().splitlines()
             if ln.split("#")[0].split()[1:2] == ["heldout"]]
    work = out / "python_build"
    work.mkdir(parents=True, exist_ok=True)
    (work / "packages.txt").write_text("\n".join(lines) + "\n")
    run([sys.executable, str(ROOT / "tools" / "build_corpus.py"), "--out", str(work), "--packages",
         str(work / "packages.txt"), "--manifest", str(work / "manifest.json"), "--no-stdlib", "--no-npm",
         "--cache", str(out / "archives")], ROOT)
    dest = out / "python"
    if dest.exists():
        import shutil

        shutil.rmtree(dest)
    os.replace(work / "heldout_tree", dest)
    manifest = json.loads((work / "manifest.json").read_text())
    return {p["name"]: {"source": p["source"], "version": p["version"], "license": p["license"],
                        "license_evidence": p["license_evidence"], "files": p["files_kept"],
                        "bytes": p["bytes_kept"]} for p in manifest["packages"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="build/lang", help="output folder (one tree per language)")
    ap.add_argument("--max-files", type=int, default=MAX_FILES, help="files kept per package at most")
    ap.add_argument("languages", nargs="*", help=f"languages to build (default: all of {', '.join(LANGUAGES)})")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    trained = {p["name"].lower() for p in json.loads((ROOT / "tools" / "corpus_manifest.json").read_text())["packages"]
               if p.get("split") == "train"}
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    for lang in args.languages or LANGUAGES:
        if lang not in LANGUAGES:
            raise SystemExit(f"unknown language {lang!r}: one of {', '.join(LANGUAGES)}")
        if lang == "python":
            manifest["python"] = build_python(out)
        else:
            dest = out / lang
            if dest.exists():
                import shutil

                shutil.rmtree(dest)
            manifest[lang] = {}
            for kind, name, version, lic, evidence, subdirs in SOURCES[lang]:
                if name.lower() in trained or name.split("/")[-1].lower() in trained:
                    raise SystemExit(f"{name} is in the training corpus (tools/corpus_manifest.json)")
                files, where = package_files(lang, kind, name, version, evidence, subdirs, out / "archives",
                                             args.max_files)
                for rel, text in files.items():
                    p = dest / name.lstrip("@").replace("/", "-") / rel
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_text(text, encoding="utf-8")
                manifest[lang][name] = {"source": "npm" if kind == "npm" else f"debian {kind}", "version": version,
                                        "license": lic, "license_evidence": where, "files": len(files),
                                        "bytes": sum(len(t.encode()) for t in files.values())}
        pk = manifest[lang]
        print(f"{lang:<11} {len(pk)} packages, {sum(p['files'] for p in pk.values())} files, "
              f"{sum(p['bytes'] for p in pk.values()) / 1e6:.2f} MB")
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
