"""Training examples built from source files by the same canvas code the server uses.

Each example cuts a middle out of a file (a tree-sitter span of one of the situation classes, or a random span),
lays the rest out suffix-first with `spm_context`, and turns the middle into a canvas: middle tokens followed by pad
slots up to a random capacity, so the model learns to end early. Long middles are split block-autoregressively: part
of the middle is already committed into the context, the canvas holds the next block.

With `repo_p`, an example also gets repository context before its SPM part: chunks of the other files of its package,
chosen by infill.retrieval and laid out by infill.repo_context exactly as the server chooses and lays them out for a
cursor, so the model learns to read (and copy from) what serving gives it.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.tokenizer import Tokenizer
from engine.train import Example
from infill import retrieval
from infill.canvas import context_lines, spm_context
from infill.repo_context import repo_context
from infill.spans import Span, syntax_spans

# How often each situation class is drawn: short, local holes dominate what users type.
KIND_WEIGHTS = {
    "rest_of_line": 3.0,
    "expression": 2.0,
    "arguments": 2.0,
    "statement": 2.0,
    "control_header": 1.0,
    "body": 1.0,
    "comment": 0.3,
}


@dataclass(frozen=True)
class ExampleConfig:
    max_middle: int = 256  # longest middle, in tokens (issue: 1..256)
    block: int = 32  # canvas block size (the sampler's default): longer middles are split into committed blocks
    min_budget: int = 96  # context budgets are drawn in [min, max] so both short and long contexts are seen
    max_budget: int = 640  # equals the server's default context budget
    random_span_p: float = 0.25  # share of random (non-syntax) spans
    commit_p: float = 0.25  # share of examples with part of the middle already committed into the context
    rewrite_p: float = 0.1  # share of rewrite examples (canvas starts from a corrupted copy)
    all_pad_p: float = 0.03  # middle fully committed: the canvas is all pads (teaches "the fill is over")
    whole_line_p: float = 0.5  # a span that starts a line also takes its indentation and, ending one, its newline
    free_capacity_p: float = 0.5  # share of ending canvases whose capacity is drawn up to the block, whatever the
    #                               fill's length (the server's canvases grow past short fills: 8 -> 16 -> 32; r4 on,
    #                               r1-r3 trained with 0)
    repo_p: float = 0.0  # share of examples with repository context (other files of the same package)
    repo_budget: int = 512  # its budget is drawn in [64, repo_budget]: the server's repoContextBudget is one setting
    repo_files: int = 300  # files indexed per package at most (a seeded sample; repository examples come from it)
    repo_stay: int = 128  # repository examples drawn from one package before the next: an index costs seconds


@dataclass(frozen=True)
class SourceFile:
    text: str
    lang: str
    path: str = ""  # path in its package (shown to the model on a chunk's first line)
    package: str = ""  # files of one package are each other's repository


def _random_span(text: str, rng: random.Random) -> Span | None:
    lines = text.splitlines(keepends=True)
    if len(lines) < 3:
        return None
    i = rng.randrange(len(lines))
    starts = [0]
    for ln in lines:
        starts.append(starts[-1] + len(ln))
    n = 1 if rng.random() < 0.6 else rng.randint(2, 6)
    line = lines[i]
    indent = len(line) - len(line.lstrip())
    lo = starts[i] + (rng.randint(indent, max(indent, len(line.rstrip("\r\n")))) if rng.random() < 0.5 else indent)
    hi = starts[min(len(lines), i + n)]
    hi -= len(lines[min(len(lines), i + n) - 1]) - len(lines[min(len(lines), i + n) - 1].rstrip("\r\n"))
    return Span(lo, hi, "random") if hi > lo else None


def whole_lines(text: str, span: Span, rng: random.Random, p: float) -> Span:
    """The span grown to whole lines, with probability p for each end: the start back over the line's indentation
    (when only whitespace precedes it), the end over the line break (when only whitespace follows it).

    Holes cut at a line's first column (HumanEval and SAFIM holes; a cursor at column 0 of a blank line in a block)
    start the fill with its indentation and end it with a newline; spans from the syntax tree never do, so without
    this the model never learns to write either.
    """
    start, end = span.start, span.end
    line_start = text.rfind("\n", 0, start) + 1
    if start > line_start and not text[line_start:start].strip(" \t") and rng.random() < p:
        start = line_start
    nl = text.find("\n", end)
    if nl >= 0 and not text[end:nl].strip(" \t\r") and rng.random() < p:
        end = nl + 1
    return span if (start, end) == (span.start, span.end) else Span(start, end, span.kind, span.node)


class ExampleStream:
    """An endless, seeded stream of Examples over a list of source files."""

    def __init__(self, files: Sequence[SourceFile], tok: Tokenizer, cfg: ExampleConfig = ExampleConfig(),
                 seed: int = 0) -> None:
        if not files:
            raise ValueError("no source files to train on")
        self.files = files
        self.tok = tok
        self.cfg = cfg
        self.rng = random.Random(seed)
        self._spans: dict[int, list[Span]] = {}
        self._packages: dict[str, list[int]] = {}
        for i, f in enumerate(files):
            self._packages.setdefault(f.package, []).append(i)
        self._indexes: OrderedDict[str, tuple[retrieval.Index, dict[str, list[str]], list[int]]] = OrderedDict()
        self._repo_pkg, self._repo_left = "", 0
        self._repo_ok = any(len(m) >= 2 for m in self._packages.values())  # else no file has a repository
        self._weights = [min(len(f.text), 20_000) for f in files]  # long files count more, but not without bound
        self._cum: list[float] = []
        acc = 0.0
        for w in self._weights:
            acc += w
            self._cum.append(acc)

    def _pick_file(self) -> int:
        import bisect

        return min(len(self.files) - 1, bisect.bisect(self._cum, self.rng.random() * self._cum[-1]))

    def _spans_of(self, i: int) -> list[Span]:
        if i not in self._spans:
            try:
                self._spans[i] = [s for s in syntax_spans(self.files[i].text, self.files[i].lang) if s.end > s.start]
            except Exception:  # a grammar that chokes on a file: random spans only
                self._spans[i] = []
        return self._spans[i]

    def _pick_span(self, i: int) -> Span | None:
        spans = self._spans_of(i)
        if spans and self.rng.random() >= self.cfg.random_span_p:
            w = [KIND_WEIGHTS.get(s.kind, 0.5) for s in spans]
            span: Span | None = self.rng.choices(spans, weights=w)[0]
        else:
            span = _random_span(self.files[i].text, self.rng)
        return None if span is None else whole_lines(self.files[i].text, span, self.rng, self.cfg.whole_line_p)

    def _index(self, package: str) -> tuple[retrieval.Index, dict[str, list[str]], list[int]]:
        """The package's index, its files' lines by file key, and the files indexed (built once; the last few
        packages kept)."""
        got = self._indexes.get(package)
        if got is not None:
            self._indexes.move_to_end(package)
            return got
        members = self._packages.get(package, [])
        if len(members) > self.cfg.repo_files:  # a seeded sample: the same files for a package in every run
            members = sorted(random.Random(package).sample(members, self.cfg.repo_files))
        index, lines = retrieval.Index(), {}
        for j in members:
            f = self.files[j]
            key = f.path or f"file{j}"
            index.add(Path(key), key, f.text, 0.0)
            lines[key] = f.text.splitlines(keepends=True)
        self._indexes[package] = (index, lines, members)
        while len(self._indexes) > 4:
            self._indexes.popitem(last=False)
        return self._indexes[package]

    def _pick_repo_file(self) -> int | None:
        """A file for a repository example: from the package of the moment (changed every repo_stay examples, to
        a package of the file a plain draw gives), among the files its index holds."""
        if self._repo_left <= 0:
            i = self._pick_file()
            if len(self._packages.get(self.files[i].package, ())) < 2:
                return None
            self._repo_pkg, self._repo_left = self.files[i].package, self.cfg.repo_stay
        self._repo_left -= 1
        members = self._index(self._repo_pkg)[2]
        return self.rng.choices(members, weights=[self._weights[j] for j in members])[0]

    def repo_ids(self, i: int, text: str, span: Span, budget: int, context_budget: int, suffix_share: float
                 ) -> list[int]:
        """Repository context for a hole of file i, as the server builds it for a cursor at the hole's start: the
        document as the user sees it (the middle not written yet), the part of it the file context (spm_context of
        `context_budget`, `suffix_share`) leaves out included. Meanwhile the index holds that document for the file,
        so no chunk of it holds the middle."""
        f = self.files[i]
        if len(self._packages.get(f.package, ())) < 2:
            return []
        index, lines, _ = self._index(f.package)
        key = f.path or f"file{i}"
        doc = text[:span.start] + text[span.end:]
        own = doc.splitlines(keepends=True)

        def window(k: str, line: int, size: int) -> str | None:
            return "".join((own if k == key else lines.get(k, []))[line:line + size]) or None

        shown = context_lines(doc, span.start, self.tok, context_budget, suffix_share)
        index.add(Path(key), key, doc, 0.0)
        try:
            chunks = retrieval.select(index, key, retrieval.cursor_terms(doc, span.start, f.lang), window,
                                      shown=shown)
        finally:
            index.add(Path(key), key, f.text, 0.0)
        return repo_context(chunks, self.tok, budget)

    def make(self, text: str, span: Span, repo_of: int | None = None) -> Example | None:
        """The example for a span of text; with repo_of (the file's index in files), with repository context."""
        cfg, rng, sp = self.cfg, self.rng, self.tok.special
        middle = self.tok.encode(text[span.start:span.end])
        if not middle or len(middle) > cfg.max_middle:
            return None
        budget = rng.randint(cfg.min_budget, cfg.max_budget)
        share = rng.uniform(0.1, 0.5)
        repo = [] if repo_of is None else self.repo_ids(repo_of, text, span, rng.randint(64, max(64, cfg.repo_budget)),
                                                        budget, share)
        ctx = repo + spm_context(text[:span.start], text[span.end:], self.tok, budget, suffix_share=share)
        m = len(middle)
        r = rng.random()
        if r < cfg.all_pad_p:
            k = m
        elif r < cfg.all_pad_p + cfg.commit_p and m > 1:
            k = rng.randint(1, m - 1)
        else:
            k = 0
        rem = m - k
        if rem >= cfg.block:  # a full block: no pad, the sampler commits it and goes on
            target = middle[k:k + cfg.block]
        else:  # the middle ends in this canvas: pads after it, capacity at least one slot more than the rest
            free = cfg.free_capacity_p > 0 and rng.random() < cfg.free_capacity_p  # p = 0 draws nothing, as r1-r3
            hi = cfg.block if free else min(cfg.block, 2 * rem + 8)
            cap = rng.randint(rem + 1, max(rem + 1, hi))
            target = middle[k:] + [sp.pad] * (cap - rem)
        return Example(context=ctx + middle[:k], target=target, rewrite=k == 0 and rng.random() < cfg.rewrite_p)

    def __iter__(self) -> Iterator[Example]:
        return self

    def __next__(self) -> Example:
        while True:
            repo = self._repo_ok and self.cfg.repo_p > 0 and self.rng.random() < self.cfg.repo_p
            i = self._pick_repo_file() if repo else self._pick_file()
            if i is None:
                continue
            span = self._pick_span(i)
            if span is None:
                continue
            ex = self.make(self.files[i].text, span, i if repo else None)
            if ex is not None:
                return ex


class MixedStream:
    """Examples from `main` with a seeded share drawn from `mix` instead: fine-tuning on one repository keeps seeing
    general code, so what the model knew of other code is not all overwritten by a few hundred steps on a few files."""

    def __init__(self, main: Iterator[Example], mix: Iterator[Example], share: float, seed: int = 0) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"mix share {share} is not in [0, 1]")
        self.main, self.mix, self.share = main, mix, share
        self.rng = random.Random(seed)

    def __iter__(self) -> Iterator[Example]:
        return self

    def __next__(self) -> Example:
        return next(self.mix if self.rng.random() < self.share else self.main)
