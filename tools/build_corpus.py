#!/usr/bin/env python3
"""Build the reproducible, permissively licensed source-code training corpus.

Sources
  * the standard library of the running CPython interpreter (PSF-2.0), minus
    its test suites;
  * pinned PyPI packages (tools/corpus_packages.txt), fetched with
    ``pip download --no-deps`` into a cache directory (wheel preferred, sdist
    when no wheel exists);
  * optionally pinned npm packages (``npm pack``).

Every package's license is read from its own metadata; anything that is not
clearly permissive is excluded.  Files are filtered (size, minified/generated,
vendored code, evaluation-suite contamination), exactly deduplicated and
near-deduplicated (MinHash with one-permutation hashing + LSH over 5-token
shingles), then split by package into ``train`` and ``heldout``.

Outputs (under --out, default build/corpus):
  train.jsonl, heldout.jsonl   one JSON object per file:
                               {"path", "lang", "package", "license", "text"}
  heldout_tree/                the held-out files as a source tree
  archives/                    download cache
and the manifest (default tools/corpus_manifest.json).

Only the standard library is used.  Output is deterministic for a given
interpreter version and package list.

    python tools/build_corpus.py --out build/corpus
"""

from __future__ import annotations

import argparse
import email.parser
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------
# licenses

PERMISSIVE = {
    "MIT", "MIT-0", "BSD-2-Clause", "BSD-3-Clause", "BSD-3-Clause-Clear", "BSD",
    "0BSD", "Apache-2.0", "ISC", "PSF-2.0", "Python-2.0", "Unlicense",
}
# Normalise common non-SPDX spellings found in metadata.
LICENSE_ALIASES = {
    "mit": "MIT", "mit license": "MIT", "expat": "MIT", "expat license": "MIT",
    "mit-0": "MIT-0",
    "bsd": "BSD", "bsd license": "BSD", "new bsd": "BSD-3-Clause",
    "new bsd license": "BSD-3-Clause", "modified bsd": "BSD-3-Clause",
    "bsd-3-clause": "BSD-3-Clause", "3-clause bsd": "BSD-3-Clause",
    "bsd 3-clause": "BSD-3-Clause", "bsd-2-clause": "BSD-2-Clause",
    "2-clause bsd": "BSD-2-Clause", "simplified bsd": "BSD-2-Clause",
    "0bsd": "0BSD",
    "apache-2.0": "Apache-2.0", "apache 2.0": "Apache-2.0",
    "apache license 2.0": "Apache-2.0", "apache license, version 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0", "apache": "Apache-2.0",
    "apache 2": "Apache-2.0", "apache-2": "Apache-2.0",
    "isc": "ISC", "isc license": "ISC", "isc license (iscl)": "ISC",
    "psf": "PSF-2.0", "psf-2.0": "PSF-2.0", "psf license": "PSF-2.0",
    "python software foundation license": "PSF-2.0", "python-2.0": "Python-2.0",
    "unlicense": "Unlicense", "the unlicense": "Unlicense",
    "the unlicense (unlicense)": "Unlicense",
}
CLASSIFIER_LICENSES = {
    "MIT License": "MIT",
    "MIT No Attribution License (MIT-0)": "MIT-0",
    "BSD License": "BSD",
    "Apache Software License": "Apache-2.0",
    "ISC License (ISCL)": "ISC",
    "Python Software Foundation License": "PSF-2.0",
    "The Unlicense (Unlicense)": "Unlicense",
    "Zero-Clause BSD (0BSD)": "0BSD",
}
# Substrings marking a license we must not use.
NON_PERMISSIVE_MARKERS = (
    "gpl", "general public license", "mpl", "mozilla", "epl", "eclipse",
    "cddl", "afl", "academic free", "artistic", "public domain", "cc-by",
    "creative commons", "sspl", "commons clause", "proprietary", "zope",
    "eupl", "osl",
)
# Recognisable phrases of full license texts, for the LICENSE-file fallback.
LICENSE_TEXT_MARKERS = (
    ("GNU GENERAL PUBLIC LICENSE", "GPL"),
    ("GNU LESSER GENERAL PUBLIC LICENSE", "LGPL"),
    ("GNU AFFERO GENERAL PUBLIC LICENSE", "AGPL"),
    ("Mozilla Public License", "MPL"),
    ("Apache License", "Apache-2.0"),
    ("Permission is hereby granted, free of charge", "MIT"),
    ("Redistribution and use in source and binary forms", "BSD"),
    ("Permission to use, copy, modify, and/or distribute", "ISC"),
    ("This is free and unencumbered software released into the public domain",
     "Unlicense"),
)


def _norm_license_token(tok: str) -> str:
    t = tok.strip().strip("()").strip()
    return LICENSE_ALIASES.get(t.lower(), t)


def spdx_is_permissive(expr: str) -> bool:
    """Evaluate a (simple) SPDX expression: OR = any branch, AND = all parts."""
    expr = expr.replace("(", " ").replace(")", " ")
    branches = re.split(r"\s+OR\s+|\s+or\s+", expr)
    for br in branches:
        parts = [p for p in re.split(r"\s+AND\s+|\s+and\s+", br) if p.strip()]
        parts = [re.split(r"\s+WITH\s+", p)[0] for p in parts]
        if parts and all(_norm_license_token(p) in PERMISSIVE for p in parts):
            return True
    return False


def pick_permissive_branch(expr: str) -> str:
    """Return the SPDX id(s) of the first fully permissive OR-branch."""
    expr2 = expr.replace("(", " ").replace(")", " ")
    for br in re.split(r"\s+OR\s+|\s+or\s+", expr2):
        parts = [_norm_license_token(re.split(r"\s+WITH\s+", p)[0])
                 for p in re.split(r"\s+AND\s+|\s+and\s+", br) if p.strip()]
        if parts and all(p in PERMISSIVE for p in parts):
            return " AND ".join(parts)
    return expr


def license_from_text(text: str) -> list[str]:
    found = []
    head = text[:20000]
    for marker, lic in LICENSE_TEXT_MARKERS:
        if marker.lower() in head.lower():
            found.append(lic)
    return found


def decide_license(meta_expr: str | None, meta_license: str | None,
                   classifiers: list[str], license_texts: list[str]):
    """Return (spdx or None, evidence string, reason-if-rejected)."""
    evidence = []
    if meta_expr:
        evidence.append(f"License-Expression: {meta_expr}")
        if spdx_is_permissive(meta_expr):
            return pick_permissive_branch(meta_expr), "; ".join(evidence), None
        return None, "; ".join(evidence), f"non-permissive expression {meta_expr!r}"

    ids = []
    bad = []
    for c in classifiers:
        if not c.startswith("License ::"):
            continue
        leaf = c.split("::")[-1].strip()
        evidence.append(f"Classifier: {leaf}")
        if leaf in CLASSIFIER_LICENSES:
            ids.append(CLASSIFIER_LICENSES[leaf])
        elif leaf in ("OSI Approved",):
            continue
        else:
            bad.append(leaf)

    lic = (meta_license or "").strip()
    if lic and lic.upper() != "UNKNOWN":
        short = lic if len(lic) < 120 and "\n" not in lic else None
        evidence.append("License: " + (short if short else lic[:60].replace("\n", " ") + "..."))
        if short is not None:
            if spdx_is_permissive(short):
                ids.append(pick_permissive_branch(short))
            elif _norm_license_token(short) in PERMISSIVE:
                ids.append(_norm_license_token(short))
            elif any(m in short.lower() for m in NON_PERMISSIVE_MARKERS):
                bad.append(short)
            else:
                # Unknown short string: fall back to the texts below.
                license_texts = [short] + license_texts
        else:
            license_texts = [lic] + license_texts

    if bad:
        return None, "; ".join(evidence), f"non-permissive/ambiguous license {bad!r}"
    if ids:
        uniq = sorted(set(ids))
        return " OR ".join(uniq), "; ".join(evidence), None

    # Last resort: the bundled license file(s).
    text_ids = []
    for t in license_texts:
        text_ids.extend(license_from_text(t))
    if text_ids:
        evidence.append("license file: " + ",".join(sorted(set(text_ids))))
        if all(t in PERMISSIVE for t in text_ids):
            return " AND ".join(sorted(set(text_ids))), "; ".join(evidence), None
        return None, "; ".join(evidence), f"license file mentions {sorted(set(text_ids))}"
    return None, "; ".join(evidence), "no license information"


# --------------------------------------------------------------------------
# package list


@dataclass
class PackageSpec:
    source: str  # "pypi" | "npm"
    name: str
    version: str
    heldout: bool = False
    license_override: str | None = None


def read_package_list(path: Path) -> list[PackageSpec]:
    specs: list[PackageSpec] = []
    seen = set()
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        toks = line.split()
        head, opts = toks[0], toks[1:]
        if head.startswith("npm:"):
            body = head[4:]
            at = body.rfind("@")
            if at <= 0:
                raise SystemExit(f"{path}:{lineno}: expected npm:NAME@VERSION")
            spec = PackageSpec("npm", body[:at], body[at + 1:])
        else:
            if "==" not in head:
                raise SystemExit(f"{path}:{lineno}: expected NAME==VERSION")
            name, ver = head.split("==", 1)
            spec = PackageSpec("pypi", canonical(name), ver)
        for o in opts:
            if o == "heldout":
                spec.heldout = True
            elif o.startswith("license="):
                spec.license_override = o.split("=", 1)[1]
            else:
                raise SystemExit(f"{path}:{lineno}: unknown option {o!r}")
        key = (spec.source, spec.name)
        if key in seen:
            raise SystemExit(f"{path}:{lineno}: duplicate package {spec.name}")
        seen.add(key)
        specs.append(spec)
    return specs


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --------------------------------------------------------------------------
# fetching

PIP_WHEEL_ARGS = [
    "--only-binary", ":all:", "--python-version", "3.11", "--implementation", "cp",
    "--abi", "cp311", "--abi", "abi3", "--abi", "none", "--platform", "manylinux_2_28_x86_64",
    "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64", "--platform", "any",
]


def _archive_matches(fname: str, spec: PackageSpec) -> bool:
    low = fname.lower()
    if spec.source == "npm":
        base = spec.name.lstrip("@").replace("/", "-")
        return low == f"{base}-{spec.version}.tgz".lower()
    stem = re.sub(r"[-_.]+", "_", spec.name)
    m = re.match(r"^(.+?)-(" + re.escape(spec.version.lower()) + r")(-.+\.whl|\.tar\.gz|\.zip)$", low)
    return bool(m) and re.sub(r"[-_.]+", "_", m.group(1)) == stem


def find_archive(cache: Path, spec: PackageSpec) -> Path | None:
    if not cache.is_dir():
        return None
    hits = sorted(p for p in cache.iterdir() if _archive_matches(p.name, spec))
    # Prefer wheels over sdists when both are present.
    hits.sort(key=lambda p: (not p.name.endswith(".whl"), p.name))
    return hits[0] if hits else None


def fetch(cache: Path, spec: PackageSpec, offline: bool) -> Path:
    got = find_archive(cache, spec)
    if got or offline:
        if not got:
            raise RuntimeError("not in cache (offline)")
        return got
    cache.mkdir(parents=True, exist_ok=True)
    if spec.source == "npm":
        cmd = ["npm", "pack", f"{spec.name}@{spec.version}", "--silent",
               "--pack-destination", str(cache)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("npm pack failed: " + r.stderr.strip()[-300:])
    else:
        base = [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                "--disable-pip-version-check", "-d", str(cache)]
        req = f"{spec.name}=={spec.version}"
        r = subprocess.run(base + PIP_WHEEL_ARGS + [req], capture_output=True, text=True)
        if r.returncode != 0:
            r = subprocess.run(base + ["--no-binary", ":all:", req],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError("pip download failed: " + r.stderr.strip()[-300:])
    got = find_archive(cache, spec)
    if not got:
        raise RuntimeError("download finished but archive not found in cache")
    return got


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------
# archive reading


def iter_archive(path: Path):
    """Yield (member_name, bytes) for regular files of a wheel/zip/tarball."""
    name = path.name
    if name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(path) as z:
            for info in sorted(z.infolist(), key=lambda i: i.filename):
                if info.is_dir():
                    continue
                yield info.filename, (lambda i=info: z.read(i)), info.file_size
    else:
        with tarfile.open(path, "r:*") as t:
            members = sorted((m for m in t.getmembers() if m.isfile()), key=lambda m: m.name)
            for m in members:
                yield m.name, (lambda m=m: t.extractfile(m).read()), m.size


def read_metadata(path: Path, source: str):
    """Return (meta_expr, meta_license, classifiers, license_texts, strip_prefix)."""
    meta_raw = None
    license_texts: list[str] = []
    strip_prefix = ""
    if source == "npm":
        strip_prefix = "package/"
        with tarfile.open(path, "r:*") as t:
            for m in t.getmembers():
                if not m.isfile():
                    continue
                parts = m.name.split("/")
                if len(parts) == 2 and parts[1] == "package.json":
                    strip_prefix = parts[0] + "/"
                    pj = json.loads(t.extractfile(m).read().decode("utf-8"))
                    lic = pj.get("license")
                    if isinstance(lic, dict):
                        lic = lic.get("type")
                    if not lic and isinstance(pj.get("licenses"), list) and pj["licenses"]:
                        lic = " OR ".join(str(x.get("type")) for x in pj["licenses"])
                    meta_raw = lic
                elif len(parts) == 2 and re.match(r"(?i)licen[cs]e", parts[1]):
                    license_texts.append(t.extractfile(m).read().decode("utf-8", "replace"))
        return meta_raw, None, [], license_texts, strip_prefix

    if path.name.endswith(".whl"):
        with zipfile.ZipFile(path) as z:
            for n in sorted(z.namelist()):
                parts = n.split("/")
                if parts[0].endswith(".dist-info"):
                    if n.endswith(".dist-info/METADATA"):
                        meta_raw = z.read(n).decode("utf-8", "replace")
                    elif re.search(r"(?i)(licen[cs]e|copying)", parts[-1]):
                        license_texts.append(z.read(n).decode("utf-8", "replace"))
    else:
        with tarfile.open(path, "r:*") as t:
            for m in sorted(t.getmembers(), key=lambda m: m.name):
                if not m.isfile():
                    continue
                parts = m.name.split("/")
                if len(parts) == 2 and parts[1] == "PKG-INFO":
                    meta_raw = t.extractfile(m).read().decode("utf-8", "replace")
                    strip_prefix = parts[0] + "/"
                elif len(parts) == 2 and re.match(r"(?i)(licen[cs]e|copying)", parts[1]):
                    license_texts.append(t.extractfile(m).read().decode("utf-8", "replace"))
        if not strip_prefix:
            strip_prefix = ""
    md = email.parser.Parser().parsestr(meta_raw or "")
    return (md.get("License-Expression"), md.get("License"),
            md.get_all("Classifier") or [], license_texts, strip_prefix)


# --------------------------------------------------------------------------
# file filtering

LANG_BY_EXT = {".py": "python", ".js": "javascript", ".mjs": "javascript",
               ".cjs": "javascript", ".ts": "typescript", ".mts": "typescript",
               ".cts": "typescript"}
SKIP_DIRS = {"__pycache__", "site-packages", "_vendor", "vendor", "vendored",
             "_vendored", "third_party", "thirdparty", "third-party", "extern",
             "_extern", "node_modules", "bower_components", ".git", "dist-packages"}
STDLIB_SKIP_DIRS = {"test", "tests", "idle_test", "lib-dynload"}
EVAL_MARKERS = ("human_eval", "humaneval", "human-eval", "safim", "santacoder")
CONTAM_STRINGS = ("def has_close_elements(", "HumanEval")
# Generated-code markers: in a comment among the first lines, or a docstring
# sentence saying the file is generated, or an upper-case DO NOT EDIT banner.
GEN_COMMENT_RE = re.compile(
    r"(?i)(auto[- ]?generated|\bgenerated\b.{0,40}\bby\b|@generated|do not edit|"
    r"code generated by)")
GEN_DOC_RE = re.compile(
    r"(?i)this (file|code|module|table)( is| was| has been)? (automatically |auto-?)?generated"
    r"|\bDO NOT EDIT\b(?! THIS LINE)")
GEN_HEADER_LINES = 10
MAX_FILE_BYTES = 200 * 1024
MIN_FILE_BYTES = 32
MAX_LINE_CHARS = 1000
MAX_AVG_LINE = 200


def path_reason(rel: str, source: str) -> str | None:
    """Reason to skip a path (relative to the package root), or None."""
    parts = rel.split("/")
    if source == "stdlib" and parts[0] in ("site-packages", "dist-packages"):
        return "not_source"  # third-party installs, not the stdlib
    ext = os.path.splitext(parts[-1])[1].lower()
    if ext not in LANG_BY_EXT:
        return "not_source"
    if source != "npm" and ext != ".py":
        return "not_source"
    if parts[-1].endswith((".d.ts", ".d.mts", ".d.cts")):
        return "not_source"  # declaration files only
    if parts[-1].endswith((".min.js", ".min.mjs", "-min.js")) or ".bundle." in parts[-1]:
        return "minified"
    if parts[-1].endswith(("_pb2.py", "_pb2_grpc.py")):
        return "generated"
    low = rel.lower()
    if any(m in low for m in EVAL_MARKERS):
        return "eval_contamination"
    dirs = parts[:-1]
    if any(d in SKIP_DIRS for d in dirs):
        return "vendored"
    if any(d.endswith((".dist-info", ".egg-info")) for d in dirs):
        return "not_source"
    if any(d.endswith(".data") for d in dirs[:1]):
        return "not_source"
    if source == "npm" and any(d in ("dist", "umd", "min", "bundle", "bundles", "cdn") for d in dirs):
        return "minified"
    if source == "stdlib":
        if any(d in STDLIB_SKIP_DIRS for d in dirs):
            return "stdlib_tests"
        if "/".join(dirs[:2]) == "lib2to3/tests" or "/".join(dirs[:2]) == "idlelib/idle_test":
            return "stdlib_tests"
        if dirs and dirs[0].startswith("config-"):
            return "not_source"
    return None


def normalize_text(raw: bytes) -> str | None:
    if b"\x00" in raw:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n")


def is_generated(text: str, lines: list[str]) -> bool:
    for line in lines[:GEN_HEADER_LINES]:
        st = line.strip()
        if st.startswith(("#", "//", "/*", "*")) and GEN_COMMENT_RE.search(st):
            return True
    m = GEN_DOC_RE.search(text[:1000])
    if not m:
        return False
    g = m.group(0)
    return g.isupper() if g.lower().startswith("do not edit") else True


def content_reason(text: str) -> str | None:
    nbytes = len(text.encode("utf-8"))
    if nbytes > MAX_FILE_BYTES:
        return "too_large"
    if len(text.strip()) < MIN_FILE_BYTES:
        return "too_small"
    lines = text.split("\n")
    if max(len(l) for l in lines) > MAX_LINE_CHARS:
        return "long_lines"
    if len(text) / max(1, len(lines)) > MAX_AVG_LINE:
        return "long_lines"
    if is_generated(text, lines):
        return "generated"
    if any(s in text for s in CONTAM_STRINGS):
        return "eval_contamination"
    return None


# --------------------------------------------------------------------------
# dedup

TOKEN_RE = re.compile(r"\w+|[^\w\s]")
NUM_PERM = 128          # one-permutation-hashing bins
BANDS, ROWS = 32, 4     # LSH: 32 bands x 4 rows (candidate threshold ~0.42)
NEAR_DUP_JACCARD = 0.85
SHINGLE = 5
MASK64 = (1 << 64) - 1


def exact_key(text: str) -> str:
    norm = "\n".join(l.rstrip() for l in text.split("\n") if l.strip())
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()


class MinHasher:
    def __init__(self):
        self._tok_cache: dict[str, int] = {}

    def signature(self, text: str) -> tuple[int, ...] | None:
        cache = self._tok_cache
        ids = []
        for t in TOKEN_RE.findall(text):
            v = cache.get(t)
            if v is None:
                v = zlib.crc32(t.encode("utf-8"))
                if len(cache) < 2_000_000:
                    cache[t] = v
            ids.append(v)
        if len(ids) < SHINGLE:
            return None
        # Tuple hashes of ints are deterministic (no PYTHONHASHSEED salting).
        shingles = set(zip(*(ids[i:] for i in range(SHINGLE))))
        mins = [MASK64] * NUM_PERM
        for s in shingles:
            h = (hash(s) * 0x9E3779B97F4A7C15) & MASK64
            b = h & (NUM_PERM - 1)
            v = h >> 7
            if v < mins[b]:
                mins[b] = v
        # Densify empty bins (rotation) so small files still get full signatures.
        if MASK64 in mins:
            filled = [i for i, v in enumerate(mins) if v != MASK64]
            for i in range(NUM_PERM):
                if mins[i] == MASK64:
                    j = next((k for k in filled if k > i), filled[0])
                    mins[i] = mins[j] ^ (((j - i) % NUM_PERM) * 0x5851F42D4C957F2D & MASK64)
        return tuple(mins)


class NearDupIndex:
    def __init__(self):
        self.buckets: dict[tuple, list[int]] = {}
        self.sigs: list[tuple[int, ...]] = []

    def query_and_add(self, sig) -> bool:
        """True if sig is a near duplicate of an indexed doc; otherwise index it."""
        keys = [(b, sig[b * ROWS:(b + 1) * ROWS]) for b in range(BANDS)]
        seen = set()
        for k in keys:
            for j in self.buckets.get(k, ()):
                if j in seen:
                    continue
                seen.add(j)
                other = self.sigs[j]
                same = sum(1 for a, b in zip(sig, other) if a == b)
                if same / NUM_PERM >= NEAR_DUP_JACCARD:
                    return True
        idx = len(self.sigs)
        self.sigs.append(sig)
        for k in keys:
            self.buckets.setdefault(k, []).append(idx)
        return False


# --------------------------------------------------------------------------
# main


@dataclass
class PkgResult:
    spec: PackageSpec
    license: str | None = None
    license_evidence: str = ""
    archive: str | None = None
    sha256: str | None = None
    excluded: str | None = None
    files: list = field(default_factory=list)  # (rel_path, text)
    counts: dict = field(default_factory=dict)


def collect_stdlib(res: PkgResult):
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for p in sorted(stdlib.rglob("*.py")):
        rel = p.relative_to(stdlib).as_posix()
        r = path_reason(rel, "stdlib")
        if r:
            if r != "not_source":
                res.counts[r] = res.counts.get(r, 0) + 1
            continue
        if p.is_symlink() or not p.is_file():
            continue
        res.files.append((rel, p.read_bytes()))


NPM_DATA_DIRS = {"locale", "locales", "i18n", "l10n"}


def npm_reason(rel: str, members: set[str], has_ts_src: bool) -> str | None:
    """Extra rules for npm packages: prefer original sources over builds."""
    parts = rel.split("/")
    if any(d in NPM_DATA_DIRS for d in parts[:-1]):
        return "i18n_data"
    stem, ext = os.path.splitext(rel)
    if has_ts_src and not (parts[0] == "src" and ext in (".ts", ".mts", ".cts")):
        return "compiled_output"  # the package ships its TypeScript sources
    if ext == ".cjs" and (stem + ".js" in members or stem + ".mjs" in members):
        return "compiled_output"  # CommonJS twin of an ES module build
    return None


def collect_archive(res: PkgResult, path: Path, strip_prefix: str):
    def rel_of(name: str) -> str | None:
        rel = name[len(strip_prefix):] if strip_prefix and name.startswith(strip_prefix) else name
        if not rel or rel.startswith("/") or ".." in rel.split("/"):
            return None
        return rel

    members = set()
    if res.spec.source == "npm":
        members = {rel_of(n) for n, _, _ in iter_archive(path)} - {None}
    has_ts_src = any(
        m.startswith("src/") and m.endswith(".ts") and not m.endswith(".d.ts") for m in members)
    for name, read, size in iter_archive(path):
        rel = rel_of(name)
        if rel is None:
            continue
        r = path_reason(rel, res.spec.source)
        if r is None and res.spec.source == "npm":
            r = npm_reason(rel, members, has_ts_src)
        if r:
            if r != "not_source":
                res.counts[r] = res.counts.get(r, 0) + 1
            continue
        if size > MAX_FILE_BYTES:
            res.counts["too_large"] = res.counts.get("too_large", 0) + 1
            continue
        res.files.append((rel, read()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="build/corpus", help="output directory")
    ap.add_argument("--packages", default=str(ROOT / "tools" / "corpus_packages.txt"))
    ap.add_argument("--manifest", default=str(ROOT / "tools" / "corpus_manifest.json"))
    ap.add_argument("--cache", default=None, help="archive cache (default OUT/archives)")
    ap.add_argument("--offline", action="store_true", help="use only cached archives")
    ap.add_argument("--no-stdlib", action="store_true")
    ap.add_argument("--max-package-bytes", type=int, default=6_000_000,
                    help="cap on kept bytes per PyPI package (0 = no cap)")
    ap.add_argument("--max-npm-package-bytes", type=int, default=3_000_000,
                    help="cap on kept bytes per npm package (0 = no cap)")
    ap.add_argument("--no-npm", action="store_true", help="skip npm packages")
    args = ap.parse_args(argv)

    out = Path(args.out)
    cache = Path(args.cache) if args.cache else out / "archives"
    out.mkdir(parents=True, exist_ok=True)
    specs = read_package_list(Path(args.packages))
    if args.no_npm:
        specs = [s for s in specs if s.source != "npm"]
    # Archive hashes recorded by a previous build: a changed archive for the
    # same pinned version is reported (the corpus would no longer reproduce).
    previous = {}
    try:
        for p in json.loads(Path(args.manifest).read_text()).get("packages", []):
            if p.get("sha256"):
                previous[(p["source"], p["name"], p["version"])] = (p["archive"], p["sha256"])
    except (OSError, ValueError):
        pass

    results: list[PkgResult] = []
    if not args.no_stdlib:
        ver = ".".join(map(str, sys.version_info[:3]))
        res = PkgResult(PackageSpec("stdlib", "cpython-stdlib", ver), license="PSF-2.0",
                        license_evidence="CPython standard library")
        collect_stdlib(res)
        results.append(res)

    for spec in specs:
        res = PkgResult(spec)
        results.append(res)
        if canonical(spec.name) in ("human-eval", "humaneval", "safim", "santacoder"):
            res.excluded = "evaluation suite"
            continue
        try:
            arc = fetch(cache, spec, args.offline)
        except Exception as e:  # noqa: BLE001 - report and continue
            res.excluded = f"fetch failed: {e}"
            print(f"  ! {spec.name}=={spec.version}: {res.excluded}", file=sys.stderr)
            continue
        res.archive = arc.name
        res.sha256 = sha256_file(arc)
        prev = previous.get((spec.source, spec.name, spec.version))
        if prev and prev != (res.archive, res.sha256):
            print(f"  ! {spec.name}=={spec.version}: archive differs from the manifest "
                  f"({prev[0]} {prev[1][:12]} -> {res.archive} {res.sha256[:12]})",
                  file=sys.stderr)
        expr, lic, cls, texts, strip = read_metadata(arc, spec.source)
        if spec.source == "npm":
            lic_id, ev, why = (None, f"package.json license: {expr}", None)
            if expr and spdx_is_permissive(expr):
                lic_id = pick_permissive_branch(expr)
            else:
                lic_id, ev2, why = decide_license(None, expr, [], texts)
                ev = ev + "; " + ev2
        else:
            lic_id, ev, why = decide_license(expr, lic, cls, texts)
        res.license_evidence = ev
        if spec.license_override:
            res.license = spec.license_override
            res.license_evidence = (ev + "; " if ev else "") + "override in package list"
            if not spdx_is_permissive(spec.license_override):
                res.excluded = f"override license {spec.license_override} not permissive"
                continue
        elif lic_id is None:
            res.excluded = f"license: {why}"
            print(f"  - {spec.name}: excluded ({res.excluded})", file=sys.stderr)
            continue
        else:
            res.license = lic_id
        collect_archive(res, arc, strip)

    # Order for dedup priority: held-out first (so train never keeps a copy of
    # a held-out file), then the stdlib, then packages in list order.
    def prio(r: PkgResult):
        return (0 if r.spec.heldout else 1 if r.spec.source == "stdlib" else 2)
    ordered = sorted(results, key=prio)  # stable: keeps list order within groups

    seen_exact: set[str] = set()
    hasher = MinHasher()
    index = NearDupIndex()
    totals = {"exact_dup": 0, "near_dup": 0}
    kept: list[dict] = []
    for res in ordered:
        if res.excluded:
            continue
        cap = {"stdlib": 0, "npm": args.max_npm_package_bytes}.get(
            res.spec.source, args.max_package_bytes)
        files = res.files
        if cap:
            # Deterministic pseudo-random order so a capped package is sampled
            # across its modules rather than alphabetically truncated.
            files = sorted(files, key=lambda f: hashlib.sha256(f[0].encode()).hexdigest())
        nbytes = 0
        split = "heldout" if res.spec.heldout else "train"
        recs = []
        for rel, raw in files:
            text = normalize_text(raw)
            if text is None:
                res.counts["binary_or_not_utf8"] = res.counts.get("binary_or_not_utf8", 0) + 1
                continue
            r = content_reason(text)
            if r:
                res.counts[r] = res.counts.get(r, 0) + 1
                continue
            size = len(text.encode("utf-8"))
            if cap and nbytes + size > cap:
                res.counts["package_cap"] = res.counts.get("package_cap", 0) + 1
                continue
            k = exact_key(text)
            if k in seen_exact:
                res.counts["exact_dup"] = res.counts.get("exact_dup", 0) + 1
                totals["exact_dup"] += 1
                continue
            seen_exact.add(k)
            sig = hasher.signature(text)
            if sig is not None and index.query_and_add(sig):
                res.counts["near_dup"] = res.counts.get("near_dup", 0) + 1
                totals["near_dup"] += 1
                continue
            nbytes += size
            ext = os.path.splitext(rel)[1].lower()
            recs.append({"path": f"{res.spec.name}/{rel}", "lang": LANG_BY_EXT[ext],
                         "package": res.spec.name, "license": res.license,
                         "text": text, "_split": split})
        res.files = []  # free raw bytes
        res.counts["kept_files"] = len(recs)
        res.counts["kept_bytes"] = nbytes
        kept.extend(recs)
        print(f"  {res.spec.name:<22} {split:<7} {len(recs):>5} files "
              f"{nbytes / 1e6:7.2f} MB  {res.license}", file=sys.stderr)

    # Write outputs, sorted by path for determinism.
    kept.sort(key=lambda r: r["path"])
    tree = out / "heldout_tree"
    if tree.exists():
        shutil.rmtree(tree)
    split_stats = {"train": {"files": 0, "bytes": 0}, "heldout": {"files": 0, "bytes": 0}}
    fhs = {s: open(out / f"{s}.jsonl.tmp", "w", encoding="utf-8") for s in split_stats}
    try:
        for r in kept:
            split = r.pop("_split")
            fhs[split].write(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n")
            split_stats[split]["files"] += 1
            split_stats[split]["bytes"] += len(r["text"].encode("utf-8"))
            if split == "heldout":
                dest = tree / r["path"]
                dest.parent.mkdir(parents=True, exist_ok=True)
                with open(dest, "w", encoding="utf-8", newline="") as f:
                    f.write(r["text"])
    finally:
        for f in fhs.values():
            f.close()
    for s in split_stats:
        os.replace(out / f"{s}.jsonl.tmp", out / f"{s}.jsonl")

    filter_counts: dict[str, int] = {}
    for res in results:
        for k, v in res.counts.items():
            if k not in ("kept_files", "kept_bytes"):
                filter_counts[k] = filter_counts.get(k, 0) + v
    manifest = {
        "description": "Training corpus of permissively licensed source code; "
                       "built by tools/build_corpus.py from tools/corpus_packages.txt",
        "python": ".".join(map(str, sys.version_info[:3])),
        "settings": {
            "max_file_bytes": MAX_FILE_BYTES, "max_line_chars": MAX_LINE_CHARS,
            "max_avg_line_chars": MAX_AVG_LINE, "max_package_bytes": args.max_package_bytes,
            "max_npm_package_bytes": args.max_npm_package_bytes,
            "near_dup": {"method": "minhash-oph+lsh", "shingle_tokens": SHINGLE,
                         "num_perm": NUM_PERM, "bands": BANDS, "rows": ROWS,
                         "jaccard_threshold": NEAR_DUP_JACCARD},
            "permissive_licenses": sorted(PERMISSIVE),
        },
        "heldout_packages": sorted(r.spec.name for r in results if r.spec.heldout and not r.excluded),
        "totals": {
            "train_files": split_stats["train"]["files"],
            "train_bytes": split_stats["train"]["bytes"],
            "heldout_files": split_stats["heldout"]["files"],
            "heldout_bytes": split_stats["heldout"]["bytes"],
            "packages_used": sum(1 for r in results if not r.excluded),
            "packages_excluded": sum(1 for r in results if r.excluded),
        },
        "filter_counts": dict(sorted(filter_counts.items())),
        "packages": [
            {
                "name": r.spec.name, "version": r.spec.version, "source": r.spec.source,
                "license": r.license, "license_evidence": r.license_evidence,
                "archive": r.archive, "sha256": r.sha256,
                "split": None if r.excluded else ("heldout" if r.spec.heldout else "train"),
                "excluded": r.excluded,
                "files_kept": r.counts.get("kept_files", 0),
                "bytes_kept": r.counts.get("kept_bytes", 0),
                "filtered": {k: v for k, v in sorted(r.counts.items())
                             if k not in ("kept_files", "kept_bytes")},
            }
            for r in sorted(results, key=lambda r: (r.spec.source, r.spec.name))
        ],
    }
    mpath = Path(args.manifest)
    mpath.parent.mkdir(parents=True, exist_ok=True)
    mpath.write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")

    print("\ncorpus summary")
    for s, st in split_stats.items():
        print(f"  {s:<8} {st['files']:>7} files  {st['bytes'] / 1e6:8.2f} MB")
    print(f"  heldout packages: {', '.join(manifest['heldout_packages'])}")
    print("  excluded packages: "
          + (", ".join(f"{r.spec.name} ({r.excluded})" for r in results if r.excluded) or "none"))
    print(f"  exact dups removed: {totals['exact_dup']}, near dups removed: {totals['near_dup']}")
    print(f"  filter counts: {json.dumps(manifest['filter_counts'])}")
    print(f"  manifest: {mpath}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
