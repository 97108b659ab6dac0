"""Quality of fills on infilling benchmarks: load a suite, fill every hole with a backend, score each fill.

Suites (the shared evaluation data; never trained on) and how a fill is scored:

    humaneval-single|multi|random|random-light   pass@1 by execution: prompt + fill + suffix + test + check(entry)
    safim-block|control                            pass@1 by execution on the stdin/stdout unit tests
    safim-api                                      syntax match: same text without whitespace, or same ast.dump
    santacoder-fim                                 exact match of the first non-empty line (py, js, java)
    heldout                                        holes cut by tree-sitter spans from any source tree (--corpus)

Every suite also gets exact match (stripped), edit similarity (1 - Levenshtein / longer length) and syntax validity
(the filled file parses with no more ERROR/MISSING nodes than with the true middle; `syntax_valid` on the inserted,
post-processed fill, `syntax_valid_raw` on the decoded canvas, since post-processing empties a fill that breaks the
file; `empty_fills` says how often), and every run reports tokens per forward and nfe. Fills are post-processed as
the server does (--no-postprocess scores the raw canvas). Programs run in infill.sandbox, never in this process.

Hole sizing, so its worth is visible:
    oracle   capacity = true middle tokens + 1 (the one pad slot training always puts after a middle that ends in
             the canvas), no growth: the known-length setting of the literature, plus our end-of-fill pad;
    syntax   capacity from infill.holes.find_hole (what the server uses), growing when the sampler allows;
    fixed:N  N slots, no growth (the fixed-length canvas of published diffusion infilling numbers).
"""

from __future__ import annotations

import ast
import gzip
import itertools
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from engine.sampler import CanvasSpec, SamplerConfig, autoregressive, fill, speculative
from infill import _syntax, sandbox
from infill.canvas import build_canvas, heal_text
from infill.holes import Hole, find_hole, indent_unit
from infill.postprocess import finalize

SUITES = (
    "humaneval-single",
    "humaneval-multi",
    "humaneval-random",
    "humaneval-random-light",
    "safim-block",
    "safim-control",
    "safim-api",
    "santacoder-fim",
    "heldout",
)
_FILES = {
    "humaneval-single": "humaneval-infilling/HumanEval-SingleLineInfilling.jsonl.gz",
    "humaneval-multi": "humaneval-infilling/HumanEval-MultiLineInfilling.jsonl.gz",
    "humaneval-random": "humaneval-infilling/HumanEval-RandomSpanInfilling.jsonl.gz",
    "humaneval-random-light": "humaneval-infilling/HumanEval-RandomSpanInfillingLight.jsonl.gz",
    "safim-block": "safim-python/block_completion_python.jsonl.gz",
    "safim-control": "safim-python/control_completion_python.jsonl.gz",
    "safim-api": "safim-python/api_completion_python.jsonl.gz",
    "santacoder-fim": "santacoder-fim/santacoder-fim.parquet",
}
_SANTACODER_LANGS = {"py": "python", "js": "javascript", "java": "java"}
HELDOUT_KINDS = ("rest_of_line", "statement", "expression", "arguments", "control_header", "body")
HELDOUT_PER_KIND = 2  # spans per kind per file: many files rather than many holes of one file
HELDOUT_MAX_TOKENS = 256  # longer middles are left out (the canvas' block-autoregressive range)
ONE_PER_FORWARD_STEPS = 1 << 20  # a step limit never reached: every slot gets its own forward
DEFAULT_BUDGET = 384  # context tokens around the hole (the server's default contextBudget)


class EvalError(ValueError):
    """A suite, sizing or sampler that cannot be run as asked (missing data, bad spec)."""


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def default_data_dir() -> Path | None:
    """`../shared/data` next to the repository, when it exists."""
    d = repo_root().parent / "shared" / "data"
    return d if d.is_dir() else None


# -- tasks ------------------------------------------------------------------------------------------------------------


@dataclass
class Task:
    task_id: str
    suite: str
    lang: str  # our language name (infill.languages)
    prefix: str
    suffix: str
    middle: str  # the true middle
    check: dict = field(default_factory=dict)  # how to score by execution / matching; {} = text metrics only
    kind: str = ""  # heldout: span kind; santacoder: language

    @property
    def executes(self) -> bool:
        return self.check.get("kind") in ("humaneval", "safim")


def _jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _lf(s: str) -> str:
    return s.replace("\r\n", "\n")


def _unit_tests(raw: str | list | None) -> list[dict]:
    tests = json.loads(raw) if isinstance(raw, str) else raw
    return [{"input": t["input"], "output": list(t["output"])} for t in tests or []]


def spread(items: Sequence, limit: int | None) -> list:
    """At most `limit` items evenly spaced over the sequence (the whole of it without a limit): a small --limit
    still covers many problems instead of the first few."""
    if limit is None or limit >= len(items):
        return list(items)
    if limit <= 0:
        return []
    return [items[(i * len(items)) // limit] for i in range(limit)]


_FIRST_WORD = re.compile(r"(\s*)(\w+)")


def typed(tasks: Sequence[Task], n: int) -> list[Task]:
    """The tasks as if the user had typed the first n characters of the middle's first word before asking: the
    cursor n characters into that word (its leading whitespace typed too). Tasks whose middle does not start with a
    word longer than n characters are left out. Prefix + middle + suffix is unchanged, so every check still runs."""
    if n < 1:
        raise EvalError(f"--typed needs n >= 1, not {n}")
    out = []
    for t in tasks:
        m = _FIRST_WORD.match(t.middle)
        if m is None or len(m.group(2)) <= n:
            continue
        cut = len(m.group(1)) + n
        out.append(replace(t, prefix=t.prefix + t.middle[:cut], middle=t.middle[cut:]))
    return out


def load_suite(name: str, data_dir: str | Path | None = None, corpus: str | Path | None = None,
               limit: int | None = None, typed_chars: int = 0) -> list[Task]:
    """The tasks of one suite (evenly spread to `limit`). heldout needs `corpus`; the others the shared data dir.
    typed_chars > 0: the tasks as `typed` makes them (before the spread)."""
    tasks = _load_suite(name, data_dir, corpus, limit if not typed_chars else None)
    return spread(typed(tasks, typed_chars), limit) if typed_chars else tasks


def _load_suite(name: str, data_dir: str | Path | None, corpus: str | Path | None, limit: int | None) -> list[Task]:
    if name not in SUITES:
        raise EvalError(f"unknown suite {name!r}; one of {', '.join(SUITES)}")
    if name == "heldout":
        if corpus is None:
            raise EvalError("the heldout suite needs --corpus DIR (a source tree that is not in the training corpus)")
        return spread(heldout_tasks(corpus), limit)
    data = Path(data_dir) if data_dir is not None else default_data_dir()
    if data is None:
        raise EvalError("no evaluation data: pass --data DIR (the folder holding humaneval-infilling/, safim-python/,"
                        " santacoder-fim/)")
    path = data / _FILES[name]
    if not path.exists():
        raise EvalError(f"{path} does not exist; is --data the shared evaluation data folder?")
    if name.startswith("humaneval"):
        tasks = [Task(r["task_id"], name, "python", r["prompt"], r["suffix"], r["canonical_solution"],
                      {"kind": "humaneval", "test": r["test"], "entry_point": r["entry_point"]})
                 for r in _jsonl_gz(path)]
    elif name.startswith("safim"):
        tasks = []
        for r in _jsonl_gz(path):
            prefix, sep, suffix = _lf(r["eval_prompt"]).partition("{{completion}}")
            if not sep:
                continue
            check = {"kind": "api"} if name == "safim-api" else {"kind": "safim", "tests": _unit_tests(r["unit_tests"])}
            tasks.append(Task(r["task_id"], name, "python", prefix, suffix, _lf(r["ground_truth"]), check))
    else:  # an equal share of the limit per language
        tasks = _santacoder(path)
        langs = sorted({t.kind for t in tasks})
        share = None if limit is None else -(-limit // len(langs))
        per = [spread([t for t in tasks if t.kind == lang], share) for lang in langs]
        tasks = [t for group in itertools.zip_longest(*per) for t in group if t is not None]
    return spread(tasks, limit)


def _santacoder(path: Path) -> list[Task]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # an optional dependency: only this suite needs it
        raise EvalError("the santacoder-fim suite reads parquet: pip install pyarrow") from exc
    rows = pq.read_table(path, columns=["name", "language", "prompt", "suffix", "canonical_solution"]).to_pylist()
    return [Task(r["name"], "santacoder-fim", _SANTACODER_LANGS[r["language"]], r["prompt"], r["suffix"],
                 r["canonical_solution"], {"kind": "first_line"}, kind=r["language"])
            for r in rows if r["language"] in _SANTACODER_LANGS]


def heldout_tasks(corpus: str | Path, tok: object = None, per_kind: int = HELDOUT_PER_KIND,
                  kinds: Sequence[str] = HELDOUT_KINDS, max_files: int | None = None) -> list[Task]:
    """Holes cut from every source file under `corpus`: a few deterministic tree-sitter spans of each kind per file."""
    from infill.sizing import corpus_files, pick_spans
    from infill.spans import syntax_spans

    root = Path(corpus)
    if not root.is_dir():
        raise EvalError(f"--corpus {corpus} is not a directory")
    tasks = []
    for path, text, lang in corpus_files(root, max_files):
        rel = Path(path).relative_to(root).as_posix()
        for span in pick_spans(text, syntax_spans(text, lang), kinds, per_kind):
            middle = text[span.start : span.end]
            if len(middle) > HELDOUT_MAX_TOKENS * 8:  # far past the token cap whatever the tokenizer
                continue
            tasks.append(Task(f"{rel}:{span.start}:{span.kind}", "heldout", lang, text[: span.start],
                              text[span.end :], middle, {}, kind=span.kind))
    if not tasks:
        raise EvalError(f"no source files of a known language under {corpus}")
    return tasks


# -- sizing and samplers ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizing:
    mode: str  # "oracle", "syntax" or "fixed"
    n: int = 0  # fixed: slots

    def __str__(self) -> str:
        return f"fixed:{self.n}" if self.mode == "fixed" else self.mode


def parse_sizing(spec: str) -> Sizing:
    """`oracle`, `syntax` or `fixed:N`."""
    if spec in ("oracle", "syntax"):
        return Sizing(spec)
    if spec.startswith("fixed:"):
        try:
            n = int(spec[6:])
        except ValueError:
            n = 0
        if n >= 1:
            return Sizing("fixed", n)
    raise EvalError(f"bad sizing {spec!r}: oracle, syntax or fixed:N (N >= 1)")


@dataclass(frozen=True)
class Sampler:
    """A decoding method: the diffusion sampler with a config, or the autoregressive baseline (`cfg` then only caps
    the length)."""

    name: str
    cfg: SamplerConfig
    ar: bool = False
    draft: int = 0  # with ar: draft this many tokens per round with the canvas and verify them (`speculative`)

    def as_dict(self) -> dict:
        return {"name": self.name, "autoregressive": self.ar, **({} if self.ar else asdict(self.cfg))}


def one_per_forward(base: SamplerConfig | None = None, exact: bool = False) -> SamplerConfig:
    """One token finalized per forward, most confident first: the baseline the fast samplers are measured against
    (the end, a run of pads, is decided in one forward of its own, never with the text). `exact`: in the arithmetic
    of batches, as `lossless` decodes: the text lossless must give, token for token."""
    return replace(base or SamplerConfig(), strategy="confidence", k=1, steps=ONE_PER_FORWARD_STEPS, end_threshold=0,
                   exact=exact)


def lossless(base: SamplerConfig | None = None, draft: int | None = None) -> SamplerConfig:
    """One token per forward's text, token for token, several of its steps checked in each (batched) forward."""
    cfg = one_per_forward(base)
    return replace(cfg, strategy="lossless", draft=draft or cfg.draft)


def parse_sampler(spec: str, base: SamplerConfig | None = None) -> Sampler:
    """`default`, `one-per-forward[:exact]`, `lossless[:DRAFT]`, `ar`, or STRATEGY[:VALUE]: threshold:T, eb:GAMMA,
    learned:T (the model's finalizer, its own threshold without T), confidence|margin|entropy:K.

    `canonical` fills every hole with its true middle (no model): a check of the harness itself.
    `base` carries the settings the spec does not name (steps, block size, max_new...).
    """
    base = base or SamplerConfig()
    if spec == "default":
        return Sampler(_name(base), base)
    if spec in ("one-per-forward", "one-per-forward:exact"):
        return Sampler(spec, one_per_forward(base, exact=spec.endswith(":exact")))
    if spec == "lossless" or spec.startswith("lossless:"):  # lossless[:DRAFT]: one per forward's text, fewer forwards
        n = spec[9:]
        if n and not (n.isdigit() and int(n) > 0):
            raise EvalError(f"bad sampler {spec!r}: lossless[:DRAFT], DRAFT a positive number of canvases per forward")
        cfg = lossless(base, int(n) if n else None)
        return Sampler(f"lossless:{cfg.draft}", cfg)
    if spec == "ar":
        return Sampler("ar", base, ar=True)
    if spec == "spec" or spec.startswith("spec:"):  # spec[:DRAFT]: autoregressive, drafted by the canvas
        n = spec[5:]
        if n and not (n.isdigit() and int(n) > 0):
            raise EvalError(f"bad sampler {spec!r}: spec[:DRAFT], DRAFT a positive number of tokens")
        return Sampler(f"spec:{int(n or 16)}", base, ar=True, draft=int(n or 16))
    if spec == "canonical":  # no model: the true middles, to check the harness (they should all pass)
        return Sampler("canonical", base)
    strategy, _, value = spec.partition(":")
    try:
        if strategy == "threshold":
            cfg = replace(base, strategy=strategy, threshold=float(value) if value else base.threshold)
        elif strategy == "eb":
            cfg = replace(base, strategy=strategy, eb_gamma=float(value) if value else base.eb_gamma)
        elif strategy == "learned":
            cfg = replace(base, strategy=strategy, learned_threshold=float(value) if value else 0.0)
        elif strategy in ("confidence", "margin", "entropy"):
            cfg = replace(base, strategy=strategy, k=int(value) if value else base.k)
        else:
            raise EvalError(f"bad sampler {spec!r}: default, one-per-forward[:exact], lossless[:DRAFT], ar, "
                            "spec[:DRAFT], threshold[:T], learned[:T], eb[:GAMMA], confidence|margin|entropy[:K]")
    except ValueError as exc:
        raise EvalError(f"bad sampler {spec!r}: {exc}") from exc
    return Sampler(_name(cfg), cfg)


def _name(cfg: SamplerConfig) -> str:
    if cfg.strategy == "lossless":
        return f"lossless:{cfg.draft}"
    if cfg.strategy == "threshold":
        return f"threshold:{cfg.threshold:g}"
    if cfg.strategy == "eb":
        return f"eb:{cfg.eb_gamma:g}"
    if cfg.strategy == "learned":
        return f"learned:{cfg.learned_threshold:g}" if cfg.learned_threshold else "learned"
    return f"{cfg.strategy}:{cfg.k}" if cfg.k else cfg.strategy


# -- filling ----------------------------------------------------------------------------------------------------------


@dataclass
class Fill:
    text: str  # post-processed (what an editor would insert)
    raw: str  # decoded canvas, pads dropped
    situation: str
    capacity: int
    grow: bool
    nfe: int
    tokens: int
    ms: float  # prefill + decoding
    restarts: int = 0  # first canvases denoised again, larger (SamplerConfig.start)
    heal: str = ""  # token healing: the typed text before the hole the canvas spelled again (infill.canvas.heal_text)
    steps: int = 0  # denoising steps (`lossless` takes several a forward)
    canvases: int = 0  # canvases the forwards ran (`lossless`: its batches)
    prefill_ms: float = 0.0  # of ms: the context's prefill (the same whatever the sampler)
    min_confidence: float | None = None  # the lowest probability a text token was finalized with (SampleStats)
    cut: str = ""  # SampleStats.cut: "unsure" when the sampler gave the fill up (SamplerConfig.stop_below)


def fill_task(backend, task: Task, sizing: Sizing, sampler: Sampler, budget: int = DEFAULT_BUDGET,
              postprocess: bool = True, session: str = "eval", heal: bool = True) -> Fill:
    """Fill one task's hole with the backend; contexts are built exactly as the server builds them (token healing
    included, for the diffusion samplers, unless `heal` is False)."""
    tok = backend.tokenizer
    hole = find_hole(task.prefix + task.suffix, len(task.prefix), task.lang, tok)
    cfg = sampler.cfg
    healed = heal_text(task.prefix, tok) if heal and not sampler.ar else ""
    if sizing.mode == "oracle":  # oracle and fixed sizes are the canvas: no smaller first canvas (start 0)
        capacity, grow, cfg = len(tok.encode(healed + task.middle)) + 1, False, replace(cfg, start=0)
    elif sizing.mode == "fixed":
        capacity, grow, cfg = sizing.n, False, replace(cfg, start=0)
    else:
        capacity, grow = min(hole.capacity, cfg.max_new), cfg.grow
    cfg = replace(cfg, grow=grow, max_new=max(cfg.max_new, capacity))
    t0 = time.perf_counter()
    if sampler.name == "canonical":
        return Fill(task.middle, task.middle, hole.situation, capacity, grow, 0, 0, 0.0, 0)
    at = len(task.prefix)
    canvas = build_canvas(task.prefix + task.suffix, [Hole(at, at, hole.situation, capacity)], tok, budget,
                          heal=healed)
    context = canvas.context_ids
    if sampler.ar and sampler.draft:
        ids, stats = speculative(backend, context, cfg.max_new if grow else capacity, sampler.draft, session=session)
    elif sampler.ar:
        ids, stats = autoregressive(backend, context, cfg.max_new if grow else capacity, session=session)
    else:
        spec = CanvasSpec.single(capacity, tok.special.mask, canvas.allowed, hole.limit if grow else None)
        ids, stats, _ = fill(backend, context, spec, cfg, session=session)
    ms = (time.perf_counter() - t0) * 1e3
    raw = canvas.unheal(tok.decode([i for i in ids if i != tok.special.pad]))
    text = raw
    if postprocess:
        text = finalize(task.prefix, raw, task.suffix, task.lang, hole.situation, hole.indent,
                        indent_unit(task.prefix + task.suffix))
    return Fill(text, raw, hole.situation, capacity, grow, stats.nfe, stats.tokens, ms, stats.restarts, canvas.heal,
                stats.steps, stats.canvases, stats.prefill_ms, stats.min_confidence, stats.cut)


# -- scoring ----------------------------------------------------------------------------------------------------------


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def edit_similarity(a: str, b: str) -> float:
    """1 - Levenshtein(a, b) / max(len): 1.0 for equal strings (both stripped first)."""
    a, b = a.strip(), b.strip()
    if not a and not b:
        return 1.0
    return 1.0 - levenshtein(a, b) / max(len(a), len(b))


def first_line(s: str) -> str:
    return next((ln.strip() for ln in s.splitlines() if ln.strip()), "")


def syntax_match(completion: str, truth: str) -> bool:
    """SAFIM's API-call match: equal without whitespace, or the same `ast.dump` as expressions."""
    if "".join(completion.split()) == "".join(truth.split()):
        return True
    try:
        return ast.dump(ast.parse(completion.strip(), mode="eval")) == ast.dump(ast.parse(truth.strip(), mode="eval"))
    except (SyntaxError, ValueError, RecursionError):
        return False


def syntax_valid(task: Task, completion: str) -> bool:
    """The filled file parses with no more ERROR/MISSING nodes than the file with the true middle."""
    ref = _syntax.count_errors(task.prefix + task.middle + task.suffix, task.lang)
    return _syntax.count_errors(task.prefix + completion + task.suffix, task.lang) <= ref


def humaneval_program(task: Task, completion: str) -> str:
    c = task.check
    return task.prefix + completion + task.suffix + "\n" + c["test"] + "\ncheck(" + c["entry_point"] + ")\n"


def _same_token(a: str, b: str) -> bool:
    if a == b or a.lower() == b.lower():  # Codeforces checkers take YES/yes/Yes alike
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-6)  # real-valued answers: the usual 1e-6 tolerance


def _same_output(stdout: str, expected: Iterable[str]) -> bool:
    """Whitespace-separated tokens equal to one of the accepted outputs (case-insensitive words, 1e-6 reals)."""
    got = stdout.split()
    for e in expected:
        want = e.split()
        if len(got) == len(want) and all(_same_token(a, b) for a, b in zip(got, want, strict=True)):
            return True
    return False


def passes(task: Task, completion: str, timeout: float = sandbox.TIMEOUT_S, memory_mb: int = sandbox.MEMORY_MB
           ) -> bool | None:
    """Whether the program with the completion passes the task's tests, run in the sandbox; None: no tests."""
    kind = task.check.get("kind")
    if kind == "humaneval":
        return sandbox.run_python(humaneval_program(task, completion), timeout=timeout, memory_mb=memory_mb).ok
    if kind == "safim":
        tests = task.check["tests"]
        if not tests:
            return None
        code = task.prefix + completion + task.suffix
        for t in tests:
            r = sandbox.run_python(code, stdin=t["input"], timeout=timeout, memory_mb=memory_mb)
            if not r.ok or not _same_output(r.stdout, t["output"]):
                return False
        return True
    return None


def score(task: Task, completion: str, timeout: float = sandbox.TIMEOUT_S, memory_mb: int = sandbox.MEMORY_MB
          ) -> dict:
    """All metrics of one completion: passed (None without tests), exact, edit_similarity, syntax_valid, and
    syntax_match for safim-api."""
    kind = task.check.get("kind")
    if kind == "first_line":
        exact = first_line(completion) == first_line(task.middle)
        es = edit_similarity(first_line(completion), first_line(task.middle))
    else:
        exact = completion.strip() == task.middle.strip()
        es = edit_similarity(completion, task.middle)
    out = {"passed": passes(task, completion, timeout, memory_mb), "exact": exact, "edit_similarity": es,
           "syntax_valid": syntax_valid(task, completion)}
    if kind == "api":
        out["syntax_match"] = syntax_match(completion, task.middle)
    return out


# -- a run ------------------------------------------------------------------------------------------------------------


def _mean(xs: Sequence[float]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


def _pct(xs: Sequence[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return round(s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))], 1)


GATE_THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6)  # 0: every fill shown


def confidence_gate(records: Sequence[dict]) -> list[dict]:
    """What the server's minConfidence would do to these fills, per threshold: the share of non-empty fills still
    shown, their exact match, and the share of the right (exact) non-empty fills among them. [] without confidences.
    A fill the sampler gave up as unsure (`--stop-below`) counts as a non-empty fill refused at every threshold above
    its confidence: the rows from that threshold up are comparable with a run that did not stop."""
    rows = [r for r in records if r.get("min_confidence") is not None
            and (r["fill"].strip() or r.get("cut") == "unsure")]
    if not rows:
        return []
    right = sum(bool(r["exact"]) for r in rows)
    out = []
    for t in GATE_THRESHOLDS:
        shown = [r for r in rows if r["min_confidence"] >= t]
        hit = sum(bool(r["exact"]) for r in shown)
        out.append({"min_confidence": t, "shown": round(len(shown) / len(rows), 3),
                    "exact_match_shown": round(hit / len(shown), 4) if shown else None,
                    "right_kept": round(hit / right, 3) if right else None})
    return out


def summarize(suite: str, records: Sequence[dict], sizing: Sizing, sampler: Sampler, breakdown: bool = True) -> dict:
    """The run's one JSON object (without the run's settings, which the caller adds)."""
    executed = [r["passed"] for r in records if r["passed"] is not None]
    nfe = sum(r["nfe"] for r in records)
    tokens = sum(r["tokens"] for r in records)
    out = {
        "suite": suite,
        "n": len(records),
        "pass@1": _mean([float(p) for p in executed]) if executed else None,
        "n_executed": len(executed),
        "exact_match": _mean([float(r["exact"]) for r in records]),
        "edit_similarity": _mean([r["edit_similarity"] for r in records]),
        "syntax_valid": _mean([float(r["syntax_valid"]) for r in records]),
        "syntax_valid_raw": _mean([float(r["syntax_valid_raw"]) for r in records if "syntax_valid_raw" in r]),
        "tokens_per_forward": round(tokens / nfe, 3) if nfe else None,
        # denoising steps taken and canvases run per (sequential) forward: above 1 with `lossless` only
        "steps_per_forward": round(sum(r.get("steps", 0) for r in records) / nfe, 3) if nfe else None,
        "canvases_per_forward": round(sum(r.get("canvases", 0) for r in records) / nfe, 3) if nfe else None,
        "nfe": _mean([r["nfe"] for r in records]),
        "tokens": _mean([r["tokens"] for r in records]),
        "capacity": _mean([r["capacity"] for r in records]),
        "restarts": _mean([r.get("restarts", 0) for r in records]),
        "empty_fills": _mean([float(not r["fill"].strip()) for r in records]),
        "fill_ms_p50": _pct([r["ms"] for r in records], 0.5),
        "fill_ms_p95": _pct([r["ms"] for r in records], 0.95),
        "nfe_max": max((r["nfe"] for r in records), default=None),  # the worst fill: a runaway shows here
        "fill_ms_max": round(max((r["ms"] for r in records), default=0.0), 1) if records else None,
        "sizing": str(sizing),
        "sampler": sampler.name,
    }
    gate = confidence_gate(records)
    if gate:
        out["confidence_gate"] = gate
    if any("syntax_match" in r for r in records):
        out["syntax_match"] = _mean([float(r["syntax_match"]) for r in records if "syntax_match" in r])
    groups = sorted({r["group"] for r in records if r["group"]})
    if groups and breakdown:
        keep = ("n", "exact_match", "edit_similarity", "syntax_valid", "syntax_valid_raw", "tokens_per_forward")
        by = {}
        for g in groups:
            sub = summarize(suite, [r for r in records if r["group"] == g], sizing, sampler, breakdown=False)
            by[g] = {k: sub[k] for k in keep}
        out["by_" + ("language" if suite == "santacoder-fim" else "kind")] = by
    if breakdown:
        # the situation the hole was sized by, and the holes in two halves (odd and even positions): a rule looked
        # for on one half is checked on the other
        keep = ("n", "pass@1", "exact_match", "edit_similarity", "tokens", "nfe")
        subsets = {s: [r for r in records if r["situation"] == s] for s in sorted({r["situation"] for r in records})}
        out["by_situation"] = {s: {k: summarize(suite, rs, sizing, sampler, breakdown=False)[k] for k in keep}
                               for s, rs in subsets.items()}
        out["halves"] = {name: {k: summarize(suite, records[i::2], sizing, sampler, breakdown=False)[k] for k in keep}
                         for name, i in (("odd", 1), ("even", 0)) if records[i::2]}
    return out


def evaluate(backend, tasks: Sequence[Task], sizing: Sizing, sampler: Sampler, budget: int = DEFAULT_BUDGET,
             postprocess: bool = True, timeout: float = sandbox.TIMEOUT_S, memory_mb: int = sandbox.MEMORY_MB,
             progress: bool | None = None, on_record: Callable[[dict], None] | None = None, heal: bool = True,
             against: Sampler | None = None) -> dict:
    """Fill and score every task; returns the summary (see summarize) plus the run's settings.

    `against`: every hole is also filled by this sampler, in turn with the run's own (which goes first alternates, so
    both see the same machine load): "against" then holds its forwards and time, the run's speedup over it and how
    many raw fills differ (a lossless sampler against the one it reproduces: none).
    """
    from tqdm import tqdm

    records: list[dict] = []
    other: list[Fill] = []
    suite = tasks[0].suite if tasks else ""
    t0 = time.perf_counter()
    load = _load()
    # progress None: a bar only when stderr is a terminal
    bar = tqdm(tasks, desc=suite or "eval", unit="hole", disable=None if progress is None else not progress,
               leave=False, dynamic_ncols=True)
    passed = 0
    for i, task in enumerate(bar):
        if against is not None and i % 2:
            other.append(fill_task(backend, task, sizing, against, budget, postprocess, "eval-against", heal))
        f = fill_task(backend, task, sizing, sampler, budget, postprocess, heal=heal)
        if against is not None and not i % 2:
            other.append(fill_task(backend, task, sizing, against, budget, postprocess, "eval-against", heal))
        s = score(task, f.text, timeout, memory_mb)
        # post-processing empties a fill that breaks the file: the raw canvas says whether the model made valid code
        s["syntax_valid_raw"] = s["syntax_valid"] if f.raw == f.text else syntax_valid(task, f.raw)
        rec = {"task_id": task.task_id, "group": task.kind, "fill": f.text, "raw": f.raw, "middle": task.middle,
               "situation": f.situation, "capacity": f.capacity, "nfe": f.nfe, "tokens": f.tokens,
               "restarts": f.restarts, "heal": f.heal, "steps": f.steps, "canvases": f.canvases, "ms": round(f.ms, 1),
               "prefill_ms": round(f.prefill_ms, 1), "min_confidence": f.min_confidence, "cut": f.cut, **s}
        records.append(rec)
        if on_record is not None:
            on_record(rec)
        passed += bool(s["passed"])
        tpf = sum(r["tokens"] for r in records) / max(1, sum(r["nfe"] for r in records))
        bar.set_postfix(passed=passed, tpf=f"{tpf:.2f}")
    bar.close()
    out = summarize(suite, records, sizing, sampler)
    out.update({
        "sampler_config": sampler.as_dict(),
        "context_budget": budget,
        "postprocess": postprocess,
        "heal": heal,
        "model": getattr(backend, "model_name", type(backend).__name__),
        "sandbox": sandbox.network_isolation() if any(t.executes for t in tasks) else None,
        "elapsed_s": round(time.perf_counter() - t0, 1),
        "load_avg_1m": load,  # the machine's load around the run: its times are wall clock
        "load_avg_1m_end": _load(),
    })
    if against is not None:
        out["against"] = compare(records, other, against, tasks, timeout, memory_mb)
    return out


def _load() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def compare(records: Sequence[dict], other: Sequence[Fill], against: Sampler, tasks: Sequence[Task],
            timeout: float = sandbox.TIMEOUT_S, memory_mb: int = sandbox.MEMORY_MB) -> dict:
    """The run's fills (records) beside another sampler's fills of the same holes, scored the same way (a fill equal
    to the run's takes its score)."""
    scores = [r if f.text == r["fill"] else score(t, f.text, timeout, memory_mb)
              for r, f, t in zip(records, other, tasks, strict=True)]
    executed = [float(x["passed"]) for x in scores if x["passed"] is not None]
    ms, ms_other = sum(r["ms"] for r in records), sum(f.ms for f in other)
    decode, decode_other = ms - sum(r["prefill_ms"] for r in records), ms_other - sum(f.prefill_ms for f in other)
    nfe, nfe_other = sum(r["nfe"] for r in records), sum(f.nfe for f in other)
    return {
        "sampler": against.name,
        "mismatches": sum(r["raw"] != f.raw for r, f in zip(records, other, strict=True)),
        "pass@1": _mean(executed) if executed else None,
        "exact_match": _mean([float(x["exact"]) for x in scores]),
        "edit_similarity": _mean([x["edit_similarity"] for x in scores]),
        "nfe": _mean([f.nfe for f in other]),
        "fill_ms_mean": round(ms_other / len(other), 1) if other else None,
        "fill_ms_mean_self": round(ms / len(records), 1) if records else None,
        "fill_ms_p50": _pct([f.ms for f in other], 0.5),
        "nfe_ratio": round(nfe_other / nfe, 3) if nfe else None,  # its forwards over the run's
        "speedup": round(ms_other / ms, 3) if ms else None,  # its wall clock over the run's (prefill included)
        "decode_speedup": round(decode_other / decode, 3) if decode > 0 else None,  # the same without the prefills
    }
