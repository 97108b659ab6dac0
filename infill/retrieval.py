"""The repository index and the choice of chunks for a cursor: pure and in memory, shared by the server
(server.workspace feeds it from the disk and the editor on a background thread) and by training (infill.training
builds the same context for its examples, so the model learns from what serving gives it).

The index holds tree-sitter definitions (signatures) and line windows for a lexical retriever (BM25's idf over word
sets). It is safe to read while one thread writes: a lock guards the tables, held only for a dictionary update or a
lookup, never while a file is parsed.
"""

from __future__ import annotations

import math
import posixpath
import re
import threading
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from infill import imports as imp
from infill.languages import language_for
from infill.repo_context import (
    Chunk,
    Definition,
    definitions,
    identifiers,
    line_windows,
    names_near,
    query_text,
    similarity,
)

MAX_WINDOWS = 400_000  # line windows at most, all files together
MAX_DEFS_PER_NAME = 4  # `__init__`, `get`, `run` are defined everywhere: a few are enough, the rest say nothing
WINDOW_LINES = 16  # retrieval windows (RepoCoder: 20 lines, stride 10; a 17M model's context is short)
WINDOW_STRIDE = 8
DF_CUTOFF = 0.02  # query words in more than this share of windows (and 256) are skipped: scanning them costs, they
#                   tell little
PICK_DUP = 0.5  # chosen chunks this similar to a better one are dropped (an open file and its indexed window)
MIN_SCORE = 0.15  # snippets scoring less share too little with the cursor's lines to be worth their tokens
SNIPPETS = 6  # candidates returned; the token budget decides how many are used
MODULE_DEFS = 6  # `module.` before the cursor: this many of that imported file's definitions
MATCHES_PER_IMPORT = 2  # an import whose path ends several workspace paths: the nearest few


@dataclass
class _File:
    path: Path
    rel: str
    mtime: float
    windows: list[int]  # window ids
    names: list[str]  # defined names (keys of Index.defs holding this file)
    defs: list[Definition]  # all its definitions, in file order (Index.defs keeps a few per name, across files)


@dataclass
class _Window:
    file: str  # _File key (the absolute path as a string)
    line: int
    size: int  # distinct words


class Index:
    """Definitions and line windows of workspace files; safe to read while one thread writes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.files: dict[str, _File] = {}
        self.windows: list[_Window | None] = []
        self.postings: dict[str, array] = {}  # word -> window ids holding it (dead ids filtered when read)
        self.defs: dict[str, list[tuple[str, Definition]]] = {}  # name -> (file key, definition)
        self.live = 0  # live windows
        self.generation = 0  # bumped by every change: selections cached before it are stale
        self.by_base: dict[str, list[str]] = {}  # file name -> file keys (imports resolve by the path's tail)
        self.by_dir: dict[str, list[str]] = {}  # last folder name -> folders (workspace paths) holding files
        self.dir_files: dict[str, list[str]] = {}  # folder (workspace path) -> file keys
        self._resolved: dict[tuple, tuple[int, list[tuple[str, imp.Import]]]] = {}  # (file, imports) -> files

    def add(self, path: Path, rel: str, text: str, mtime: float) -> bool:
        """Index (or index again) one file from its text; False when the window cap is reached."""
        lang = language_for(path.name)
        defs = definitions(text, lang) if lang else []
        wins = line_windows(text, WINDOW_LINES, WINDOW_STRIDE)
        words = [set(identifiers(w)) for _, w in wins]  # parsed and split outside the lock
        key = str(path)
        with self.lock:
            self._remove(key)
            if self.live + len(wins) > MAX_WINDOWS:
                return False
            ids = []
            for (line, _), ws in zip(wins, words, strict=True):
                wid = len(self.windows)
                self.windows.append(_Window(key, line, len(ws)))
                ids.append(wid)
                for w in ws:
                    self.postings.setdefault(w, array("I")).append(wid)
            self.live += len(ids)
            names = []
            for d in defs:
                same = self.defs.setdefault(d.name, [])
                if len(same) < MAX_DEFS_PER_NAME:
                    same.append((key, d))
                    names.append(d.name)
            self.files[key] = _File(path, rel, mtime, ids, names, defs)
            folder = posixpath.dirname(rel)
            self.by_base.setdefault(posixpath.basename(rel), []).append(key)
            if folder not in self.dir_files:
                self.by_dir.setdefault(posixpath.basename(folder), []).append(folder)
            self.dir_files.setdefault(folder, []).append(key)
            self.generation += 1
        return True

    def remove(self, path: Path) -> None:
        with self.lock:
            self._remove(str(path))
            self.generation += 1

    def _remove(self, key: str) -> None:
        old = self.files.pop(key, None)
        if old is None:
            return
        for wid in old.windows:
            self.windows[wid] = None
        self.live -= len(old.windows)
        base, folder = posixpath.basename(old.rel), posixpath.dirname(old.rel)
        _drop(self.by_base, base, key)
        _drop(self.dir_files, folder, key)
        if folder not in self.dir_files:
            _drop(self.by_dir, posixpath.basename(folder), folder)
        for name in set(old.names):
            kept = [(k, d) for k, d in self.defs.get(name, ()) if k != key]
            if kept:
                self.defs[name] = kept
            else:
                self.defs.pop(name, None)
        if len(self.windows) > 2 * self.live + 1024:  # mostly dead ids: rebuild the postings without them
            self._compact()

    def _compact(self) -> None:
        remap: dict[int, int] = {}
        kept: list[_Window | None] = []
        for wid, w in enumerate(self.windows):
            if w is not None:
                remap[wid] = len(kept)
                kept.append(w)
        self.windows = kept
        for f in self.files.values():
            f.windows = [remap[w] for w in f.windows]
        self.postings = {k: array("I", (remap[i] for i in v if i in remap)) for k, v in self.postings.items()}
        self.postings = {k: v for k, v in self.postings.items() if v}

    def stats(self) -> dict:
        with self.lock:
            return {"files": len(self.files), "windows": self.live, "names": len(self.defs),
                    "postings": sum(len(v) for v in self.postings.values())}

    def idf(self, word: str) -> float:
        n = max(1, self.live)
        df = len(self.postings.get(word, ()))
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def search(self, query: Iterable[str], exclude: str | None, k: int) -> list[tuple[float, str, int]]:
        """(score, file key, line) of the k windows holding the largest share of the query's weight (BM25's idf over
        word sets: 1.0 holds every query word), the file `exclude` left out."""
        q = set(query)
        with self.lock:
            n = max(1, self.live)
            total = sum(self.idf(w) for w in q) or 1.0
            scores: dict[int, float] = {}
            for w in q:
                post = self.postings.get(w)
                if post is None or len(post) > max(256, DF_CUTOFF * n):
                    continue
                weight = self.idf(w) / total
                for wid in post:
                    scores[wid] = scores.get(wid, 0.0) + weight
            ranked = []
            for wid, s in scores.items():
                win = self.windows[wid]
                if win is None or win.file == exclude:
                    continue
                ranked.append((s, win.size, win.file, win.line))
        ranked.sort(key=lambda r: (-r[0], r[1], r[2], r[3]))  # equal scores: the shorter window says it more densely
        return [(s, f, line) for s, _, f, line in ranked[:k]]

    def lookup(self, name: str, exclude: str | None) -> list[tuple[str, Definition]]:
        with self.lock:
            return [(k, d) for k, d in self.defs.get(name, ()) if k != exclude]

    def rel(self, key: str) -> str:
        f = self.files.get(key)
        return f.rel if f is not None else key

    def file_defs(self, key: str) -> list[Definition]:
        with self.lock:
            f = self.files.get(key)
            return f.defs if f is not None else []

    def resolve(self, key: str, imports: Sequence[imp.Import]) -> list[tuple[str, imp.Import]]:
        """(file key, import) of the workspace files the file `key` imports, in import order: a file once for each
        import that names it (`from .utils import echo` and `import pkg.utils as u` both say something of it)."""
        if not imports:
            return []
        memo = (key, tuple(imports))
        got = self._resolved.get(memo)
        if got is not None and got[0] == self.generation:
            return got[1]
        lang = language_for(key)
        current = self.rel(key)
        out: list[tuple[str, imp.Import]] = []
        with self.lock:
            for i in imports:
                files, folders = imp.candidates(i, lang, current)
                found = self._match_files(files, current) + [k for d in self._match_folders(folders, current)
                                                             for k in self.dir_files.get(d, ())]
                out += [(k, i) for k in dict.fromkeys(found) if k != key]
            for c in imp.companions(current, lang):  # C: the header of this source (or the sources of this header)
                out += [(k, imp.Import(c)) for k in self._match_files([c], current)[:1] if k != key]
        self._resolved[memo] = (self.generation, out)
        if len(self._resolved) > 64:
            self._resolved.pop(next(iter(self._resolved)))
        return out

    def _match_files(self, paths: Sequence[str], current: str) -> list[str]:
        """Keys of the files whose workspace path is one of `paths`, or else ends with one (the nearest few to
        `current` first); the first path that matches decides."""
        for p in paths:
            keys = self.by_base.get(posixpath.basename(p), ())
            exact = [k for k in keys if self.files[k].rel == p]
            if exact:
                return exact
            tail = [k for k in keys if self.files[k].rel.endswith("/" + p.lstrip("./"))] if not p.startswith(
                "..") else []
            if tail:
                return sorted(tail, key=lambda k: -_shared(self.files[k].rel, current))[:MATCHES_PER_IMPORT]
        return []

    def _match_folders(self, folders: Sequence[str], current: str) -> list[str]:
        """Workspace folders that are one of `folders`, end with one, or (a module path: `github.com/x/y/pkg` for
        the folder `pkg` of a workspace rooted at the module) that one ends with."""
        out = []
        for f in folders:
            found = [d for d in self.by_dir.get(posixpath.basename(f), ())
                     if d and (d == f or d.endswith("/" + f) or f.endswith("/" + d))]
            if not found and "" in self.dir_files:  # a module at the workspace's root, its folder named as the repo is
                root = Path(self.dir_files[""][0]).parent.name
                found = [""] if root and root == posixpath.basename(f) else []
            out += sorted(found, key=lambda d: -_shared(d + "/", current))[:MATCHES_PER_IMPORT]
        return out


# -- the choice of chunks ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Terms:
    """What a selection reads of a cursor. Equal terms give an equal selection, so a caller may reuse its last one;
    none of them changes while the user types a word (its own line's words count only once complete), but for the
    member typed after `module.`, which picks among that module's definitions."""

    names: tuple[str, ...]  # names used near it, nearest first
    query: tuple[str, ...]  # the identifiers of its lines
    imports: tuple[imp.Import, ...]  # what its file imports
    module: str = ""  # the name right before `.` and the word being typed (`utils.pa`): maybe an imported module
    member: str = ""  # the word being typed after it (`pa`)


_MEMBER_ACCESS = re.compile(r"([A-Za-z_]\w*)\s*(?:\.|::|->)\s*(\w*)$")


MEMBER_CHARS = 256  # `module.member` is read from at most this much of the line before the cursor: searched from
#                     every start of a 300k-char word, the pattern took minutes and held the interpreter


def cursor_terms(text: str, offset: int, lang: str | None) -> Terms:
    """The terms of a cursor at `offset` of `text` in a file of language `lang`."""
    start = max(text.rfind("\n", 0, offset) + 1, offset - MEMBER_CHARS)
    m = _MEMBER_ACCESS.search(text, start, offset)
    return Terms(tuple(names_near(text, offset)), tuple(identifiers(query_text(text, offset))),
                 tuple(imp.parse(text, lang)), m.group(1) if m else "", m.group(2) if m else "")


def hidden(shown: tuple[int, int] | None, line: int, size: int) -> bool:
    """Whether lines [line, line + size) of a cursor's own file lie outside the `shown` lines its context holds
    (None: the own file is left out, so nothing of it counts as hidden)."""
    return shown is not None and (line + size <= shown[0] or line >= shown[1])


def select(index: Index, key: str, terms: Terms, window_text: Callable[[str, int, int], str | None],
           recent: Sequence[tuple[Chunk, frozenset[str]]] = (), k: int = SNIPPETS,
           shown: tuple[int, int] | None = None) -> list[Chunk]:
    """Chunks for a cursor with these terms in the file `key`, best first: definitions of the names used near it
    (its own file's first, then those of the files it imports: the import says which of the workspace's `area`s it
    means) interleaved with the snippets most similar to its lines (index windows, and `recent` chunks with their
    words). `shown`: the lines [first, last) of its own file that the context holds already; the rest of the file is
    a source like any other (most names a hole lacks are defined elsewhere in its own file). None: its own file is
    left out. `window_text(file key, line, lines)` gives a window's text (None: gone)."""
    own: dict[str, list[Definition]] = {}
    if shown is not None:
        for d in index.file_defs(key):
            if hidden(shown, d.line, d.signature.count("\n") + 1):
                own.setdefault(d.name, []).append(d)
    imported = index.resolve(key, terms.imports)
    taken: dict[str, set[str]] = {}  # imported file -> the names imported from it by name
    for fkey, i in imported:
        taken.setdefault(fkey, set()).update(i.names)
    # name -> (rank, file, definition) in imported files: what is imported by name first, then the rest of the
    # file's top level, then its members (a method named as the imported function says less)
    named: dict[str, list[tuple[int, str, Definition]]] = {}
    for fkey, names in taken.items():
        for d in index.file_defs(fkey):
            rank = 2 if d.signature[:1].isspace() else 0 if d.name in names else 1
            named.setdefault(d.name, []).append((rank, fkey, d))
    defs: list[Chunk] = []
    if terms.module:  # `module.`: the top-level definitions of the file that module is
        fkey = next((k for k, i in imported if i.alias == terms.module), None)
        if fkey is not None:
            top = [d for d in index.file_defs(fkey) if not d.signature[:1].isspace()]
            # those the typed member begins first (`munch.merge_`: merge_munches, defined last), else file order
            top.sort(key=lambda d: not (terms.member and d.name.startswith(terms.member)))
            defs += [Chunk(index.rel(fkey), d.signature, "definition", d.line) for d in top[:MODULE_DEFS]]
    for name in terms.names:
        for d in own.get(name, ()):
            defs.append(Chunk(index.rel(key), d.signature, "definition", d.line))
        for _, fkey, d in sorted(named.get(name, ()), key=lambda t: t[0]):
            defs.append(Chunk(index.rel(fkey), d.signature, "definition", d.line))
        for fkey, d in index.lookup(name, key):
            defs.append(Chunk(index.rel(fkey), d.signature, "definition", d.line))
        if len(defs) >= k:
            break
    scored: list[tuple[float, Chunk]] = []
    for score, fkey, line in (index.search(terms.query, key, k) if shown is None else
                              index.search(terms.query, None, 2 * k)):  # the shown part of the own file goes
        if score < MIN_SCORE or fkey == key and not hidden(shown, line, WINDOW_LINES):
            continue
        body = window_text(fkey, line, WINDOW_LINES)
        if body:
            scored.append((score, Chunk(index.rel(fkey), body, "snippet", line, round(score, 3))))
    qset = set(terms.query)
    total = sum(index.idf(w) for w in qset) or 1.0
    for chunk, words in recent:
        s = sum(index.idf(w) for w in qset & words) / total
        if s >= MIN_SCORE:
            scored.append((s, Chunk(chunk.path, chunk.text, "recent", chunk.line, round(s, 3))))
    scored.sort(key=lambda t: (-t[0], t[1].path, t[1].line))
    snippets: list[Chunk] = []
    seen: list[set[str]] = []
    for _, c in scored:
        ws = set(identifiers(c.text))
        if any(similarity(ws, o) > PICK_DUP for o in seen):
            continue
        seen.append(ws)
        snippets.append(c)
        if len(snippets) >= k:
            break
    return [c for pair in _interleave(_dedupe(defs), snippets) for c in pair]


def _drop(table: dict[str, list[str]], k: str, v: str) -> None:
    vs = table.get(k)
    if vs is not None and v in vs:
        vs.remove(v)
        if not vs:
            del table[k]


def _shared(a: str, b: str) -> int:
    """Leading folders two workspace paths share."""
    n = 0
    for x, y in zip(a.split("/")[:-1], b.split("/")[:-1], strict=False):
        if x != y:
            break
        n += 1
    return n


def _dedupe(chunks: Iterable[Chunk]) -> list[Chunk]:
    seen, out = set(), []
    for c in chunks:
        if (c.path, c.line) not in seen:
            seen.add((c.path, c.line))
            out.append(c)
    return out


def _interleave(a: list[Chunk], b: list[Chunk]) -> list[tuple[Chunk, ...]]:
    out: list[tuple[Chunk, ...]] = []
    for i in range(max(len(a), len(b))):
        out.append(tuple(x[i] for x in (a, b) if i < len(x)))
    return out
