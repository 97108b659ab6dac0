"""`diffusion-ls eval --suite repo --corpus DIR`: completion with and without repository context, as the server does it.

Each folder directly under DIR is a repository. Holes are cut from its files by tree-sitter spans (rest of line,
statement, call arguments, block; infill.sizing.pick_spans, as the heldout suite picks them); the repository's other
files are the indexed workspace (server.workspace, the server's own index and retriever; the file with the hole is
left out, its copy on disk holds the answer) and the files beside it are open documents (their tops in the ring).
Each hole is filled through server.fill, exactly as an inline completion at its start: the same limits, sampler,
token healing, post-processing and guard. Scores: exact match (whole fill and first line), edit similarity, and
identifier match (the fill's identifiers equal the truth's; F1 of the two multisets), with fill latency p50/p95.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from infill import evaluate as ev
from infill.repo_context import identifiers
from server import fill
from server.config import Settings
from server.workspace import Ring, Workspace

KINDS = ("rest_of_line", "statement", "arguments", "body")
PER_KIND = 1  # holes per kind per file: many files rather than many holes of one
OPEN_SIBLINGS = 4  # files beside the hole's own that count as open editor tabs
MAX_MIDDLE_CHARS = 1024  # longer middles (whole bodies) are past what a cursor completion writes


@dataclass
class RepoTask:
    repo: Path
    path: Path
    lang: str
    kind: str
    prefix: str
    suffix: str
    middle: str

    @property
    def task_id(self) -> str:
        return f"{self.path.relative_to(self.repo.parent).as_posix()}:{len(self.prefix)}:{self.kind}"


def repo_tasks(corpus: str | Path, per_kind: int = PER_KIND, kinds: Sequence[str] = KINDS) -> list[RepoTask]:
    """Holes of every repository (folder) under corpus, in a fixed order."""
    from infill.sizing import corpus_files, pick_spans
    from infill.spans import syntax_spans

    root = Path(corpus)
    if not root.is_dir():
        raise ev.EvalError(f"--corpus {corpus} is not a directory")
    tasks = []
    for repo in sorted(p for p in root.iterdir() if p.is_dir()):
        for path, text, lang in corpus_files(repo):
            for span in pick_spans(text, syntax_spans(text, lang), kinds, per_kind):
                middle = text[span.start : span.end]
                if len(middle) <= MAX_MIDDLE_CHARS:
                    tasks.append(RepoTask(repo.resolve(), Path(path).resolve(), lang, span.kind, text[: span.start],
                                          text[span.end :], middle))
    if not tasks:
        raise ev.EvalError(f"no repository folders with source files of a known language under {corpus}")
    return tasks


def identifier_scores(fill_text: str, truth: str) -> tuple[bool, float]:
    """(the identifiers are the same sequence, F1 of the identifier multisets); both empty counts as a match."""
    a, b = identifiers(fill_text), identifiers(truth)
    if not a and not b:
        return True, 1.0
    common = sum((Counter(a) & Counter(b)).values())
    if not common:
        return False, 0.0
    p, r = common / len(a), common / len(b)
    return a == b, 2 * p * r / (p + r)


class Runner:
    """One workspace per repository (indexed once), a fresh ring per hole."""

    def __init__(self, backend: Any, settings: Settings) -> None:
        self.backend, self.settings = backend, settings
        self.workspaces: dict[Path, Workspace] = {}

    def workspace(self, repo: Path) -> Workspace:
        ws = self.workspaces.get(repo)
        if ws is None:
            ws = self.workspaces[repo] = Workspace(roots=[repo])
            ws.index_root(repo)
        return ws

    def run(self, task: RepoTask) -> dict:
        s, backend = self.settings, self.backend
        budget, max_tokens, room = s.limits(backend)
        rbudget = s.repo_budget(backend)
        cfg = s.sampler(backend=backend)
        cfg = replace(cfg, max_new=min(cfg.max_new, max_tokens))
        target = fill.target(backend)
        text, at = task.prefix + task.suffix, len(task.prefix)
        ws = self.workspace(task.repo) if rbudget > 0 else None  # indexed once per repository, not timed per hole
        t0 = time.perf_counter()
        ids: list[int] = []
        used: list = []
        select_ms = 0.0
        if ws is not None:
            ws.ring = Ring()
            siblings = sorted(p for p in task.path.parent.iterdir() if p != task.path and p.suffix == task.path.suffix)
            docs = {}
            for p in siblings[:OPEN_SIBLINGS]:
                docs[str(p)] = p.read_text(encoding="utf-8", errors="replace")
                ws.opened(p, docs[str(p)])
            ws.reindex(task.path, text)  # the hole's file as the user has it: no chunk of it holds the middle
            sel, ids, used = ws.context(task.path, text, at, docs, target, budget, rbudget)
            select_ms = sel.ms
        plan = fill.fit(fill.plan_cursor(text, at, task.lang, target, budget, max_tokens, repo=ids), target, room)
        out = fill.run(backend, plan, cfg, session="repo-eval")
        ms = (time.perf_counter() - t0) * 1e3
        got = out.fills[0]
        id_exact, id_f1 = identifier_scores(got, task.middle)
        # the headroom: names of the truth the file's own context lacks, and whether the chunks used hold them
        tok = target.tok
        spm = plan.canvas.context_ids[len(ids):] if plan.canvas else []
        novel = set(identifiers(task.middle)) - set(identifiers(tok.decode(list(spm)) if spm else text))
        given = set(identifiers("".join(c.text for c in used)))
        return {"task_id": task.task_id, "group": task.kind, "fill": got, "middle": task.middle,
                "exact": got.strip() == task.middle.strip(),
                "first_line_exact": ev.first_line(got) == ev.first_line(task.middle),
                "edit_similarity": round(ev.edit_similarity(got, task.middle), 4),
                "identifier_exact": id_exact, "identifier_f1": round(id_f1, 4),
                "novel_names": bool(novel), "novel_in_context": bool(novel & given),
                "repo_tokens": len(ids), "repo_chunks": [f"{c.kind}:{c.path}:{c.line}" for c in used],
                "context_tokens": len(plan.canvas.context_ids) if plan.canvas else 0, "nfe": out.stats.nfe,
                "refused": out.refused(0),  # the guard's reason when it kept the document's text, else None
                "select_ms": round(select_ms, 2), "ms": round(ms, 1)}


def _mean(xs: Sequence[float]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


def summarize(records: Sequence[dict], breakdown: bool = True) -> dict:
    out: dict[str, Any] = {
        "n": len(records),
        "exact_match": _mean([float(r["exact"]) for r in records]),
        "first_line_exact": _mean([float(r["first_line_exact"]) for r in records]),
        "edit_similarity": _mean([r["edit_similarity"] for r in records]),
        "identifier_exact": _mean([float(r["identifier_exact"]) for r in records]),
        "identifier_f1": _mean([r["identifier_f1"] for r in records]),
        "empty_fills": _mean([float(not r["fill"].strip()) for r in records]),
        "repo_tokens": _mean([r["repo_tokens"] for r in records]),
        # holes whose truth uses a name the file's context lacks; of those, the share whose chunks hold one
        "novel_names": _mean([float(r["novel_names"]) for r in records]),
        "novel_in_context": _mean([float(r["novel_in_context"]) for r in records if r["novel_names"]]),
        "context_tokens": _mean([r["context_tokens"] for r in records]),
        "nfe": _mean([r["nfe"] for r in records]),
        "select_ms_p50": ev._pct([r["select_ms"] for r in records], 0.5),
        "fill_ms_p50": ev._pct([r["ms"] for r in records], 0.5),
        "fill_ms_p95": ev._pct([r["ms"] for r in records], 0.95),
    }
    if breakdown:
        keep = ("n", "exact_match", "first_line_exact", "edit_similarity", "identifier_exact", "identifier_f1")
        out["by_kind"] = {g: {k: v for k, v in summarize([r for r in records if r["group"] == g], False).items()
                              if k in keep} for g in sorted({r["group"] for r in records})}
    return out


def evaluate(backend: Any, tasks: Sequence[RepoTask], settings: Settings,
             on_record: Callable[[dict], None] | None = None) -> dict:
    """Fill and score every task at these settings (repoContextBudget 0: none; unset: the model's)."""
    t0 = time.perf_counter()
    runner = Runner(backend, settings)
    records = []
    for task in tasks:
        rec = runner.run(task)
        records.append(rec)
        if on_record is not None:
            on_record(rec)
    out = {"suite": "repo", **summarize(records), "repo_context_budget": settings.repo_wanted(backend),
           "context_budget": settings.context_budget, "repos": sorted({t.repo.name for t in tasks}),
           "index": {r.name: w.status() | {"roots": [r.name]} for r, w in runner.workspaces.items()},
           "model": getattr(backend, "model_name", type(backend).__name__),
           "elapsed_s": round(time.perf_counter() - t0, 1)}
    return out
