"""The fill pipeline the server and `diffusion-ls complete` share: holes -> canvas -> engine stream -> text.

Everything here runs on the engine thread over a snapshot of the document text (plain str and char offsets): no LSP
types, no event loop. Offsets are turned into LSP positions by the caller, against the live document, after it has
checked the version is still the one the fill was computed for.

Backends differ in four ways, all read off the backend (`target(backend)`):
- a chat model (DiffusionGemma: the backend has a `prompter`) gets its prompt as the context instead of the SPM
  context, a few more canvas slots (its answer closes a code block), and its answer cut at that block's end;
- a backend that is not `steppable` (vLLM runs the whole loop) gets text requests (`infill` / `rewrite`) and streams
  one Chunk per committed canvas: no canvas is built here;
- a masked-diffusion model (Dream, LLaDA: `capabilities.canvas_between`) gets its canvas between the prefix and the
  suffix, `prefix [MASK]*n suffix`, instead of after an SPM context;
- a remote tokenizer is never used to size holes (a round trip per count, per keystroke): infill's character-based
  estimate sizes them instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from engine.backend import Backend, InfillBackend
from engine.sampler import (
    Cancelled,
    CanvasSpec,
    CanvasState,
    SamplerConfig,
    SampleStats,
    denoise_stream,
    first_sizes,
    is_cancelled,
)
from infill import guard
from infill.canvas import (
    Canvas,
    build_canvas,
    canvas_to_text,
    context_lines,
    heal_text,
    lf,
    newline_of,
    render_partial,
    with_newline,
)
from infill.holes import (
    Hole,
    find_hole,
    indent_unit,
    placeholder_hole,
    placeholder_ranges,
    rewrite_hole,
    token_counter,
)
from infill.postprocess import finalize

PLACEHOLDER = "·"  # a still-masked slot in streamed text
CHAT_EXTRA_SLOTS = 4  # a chat model's answer ends its code block ("\n```", end of turn) inside the canvas


@dataclass(frozen=True)
class Target:
    """How plans are laid out for one backend. The plan functions take a Target or, as before, a tokenizer (an SPM
    canvas sized with that tokenizer)."""

    tok: Any  # the tokenizer the canvas is made of
    sizing: Any = None  # what hole capacities are counted with; None: infill's character estimate
    prompter: Any = None  # a chat model's prompter: it builds the context (engine.backends.prompting.ChatPrompter)
    steppable: bool = True  # False: the backend runs the whole loop on text requests; no canvas is built
    extra_slots: int = 0  # canvas slots added to every hole
    between: bool = False  # the canvas goes between the prefix and the suffix (capabilities.canvas_between)

    @property
    def heals(self) -> bool:
        """Token healing (infill.canvas.heal_text) works on our own SPM canvases, in a loop we run (it limits the
        first slot); heal_text itself needs a tokenizer that lists the tokens starting with a text."""
        return self.steppable and self.prompter is None

    @classmethod
    def of(cls, backend: Backend) -> Target:
        tok, caps = backend.tokenizer, backend.capabilities
        prompter = backend.prompter if caps.instructions else None  # type: ignore[attr-defined]  # chat models have one
        return cls(tok, None if getattr(tok, "remote", False) else tok, prompter, caps.streams,
                   CHAT_EXTRA_SLOTS if prompter is not None else 0, caps.canvas_between)


def target(backend: Any) -> Target:
    """How to lay out plans for this backend."""
    return Target.of(backend)


def _target(tok: Any) -> Target:
    return tok if isinstance(tok, Target) else Target(tok, tok)


@dataclass
class Plan:
    """One canvas over a document snapshot."""

    text: str  # the document snapshot
    lang: str | None
    holes: list[Hole]  # sorted, non-overlapping; each replaces text[start:end]
    mode: str  # "fill", "regenerate" or "refine"
    canvas: Canvas | None  # context ids, canvas slots, fixed slots, per-hole slot ranges (None: not steppable)
    budget: int = 0  # context tokens (a backend that builds its own requests trims its prompt to this)
    instruction: str = ""  # rewrite: what to do with the selection (chat models)
    prompter: Any = None  # a chat model's prompter: its answer is cut with `finish`
    repo: list[int] = field(default_factory=list)  # repository context ids before the SPM part (infill.repo_context)
    later: list[tuple[int, int]] = field(default_factory=list)  # placeholders past MAX_PLACEHOLDERS, not planned
    # holes that do not share a canvas (JOINT_GAP): a plan of one canvas each, denoised in turn; `canvas` is then None
    parts: list[Plan] = field(default_factory=list)
    # a cursor plan: chars just before its hole that the editor's suggestion list put there, not the user; the guard
    # reads them as the answer's (a list offers any word of the file, whatever its scope)
    given: int = 0

    @property
    def span(self) -> tuple[int, int]:
        """The document char range the canvas covers: first hole's start to last hole's end."""
        return self.holes[0].start, self.holes[-1].end

    @property
    def spec(self) -> CanvasSpec:
        c = self.canvas
        if c is None:
            raise ValueError("this plan has no canvas: its backend is not steppable")
        # refine: the selection's tokens (and the pads after them) start decided; the sampler re-noises doubtful ones
        decided = [True] * len(c.canvas_ids) if self.mode == "refine" else None
        limit = self.holes[0].limit if len(self.holes) == 1 else None  # only a single cursor hole grows
        return CanvasSpec(list(c.canvas_ids), list(c.fixed), list(c.hole_slices), decided, c.allowed, limit)

    @property
    def newline(self) -> str:
        """The document's line ending: the model's "\n" become this in what the plan's fills and partials show."""
        return newline_of(self.text)

    def between(self, i: int) -> str:
        """Document text between hole i and hole i + 1."""
        return self.text[self.holes[i].end : self.holes[i + 1].start]

    def join(self, fills: Sequence[str]) -> str:
        """The span's new text: the fills with the document text between them."""
        parts = []
        for i, f in enumerate(fills):
            parts.append(f)
            if i + 1 < len(fills):
                parts.append(self.between(i))
        return "".join(parts)


@dataclass
class Partial:
    """An intermediate canvas as text, for streaming."""

    text: str  # the span's text so far; masked slots are PLACEHOLDER characters
    masks: list[tuple[int, int]]  # [start, end) char ranges of `text` still masked
    nfe: int
    block: int
    # slots re-noised by this forward (self-correction), or a later part's first masked slots: the masked total may grow
    # by this much
    remasked: int


@dataclass
class Outcome:
    fills: list[str]  # final text per hole: post-processed and guarded (a refused hole keeps the document's text)
    text: str  # the span's new text: fills joined with the text between holes
    stats: SampleStats
    reasons: list[str | None] = field(default_factory=list)  # per hole: why its fill was refused; None: it passed
    reused: int = 0  # context tokens the backend's prefix cache kept (Handle.reused)

    def refused(self, i: int = 0) -> str | None:
        """Why hole i keeps the document's text (infill.guard), or None when its fill is an edit to return."""
        return self.reasons[i] if i < len(self.reasons) else None


# -- plans ------------------------------------------------------------------------------------------------------------


def plan_cursor(text: str, offset: int, lang: str | None, tok, budget: int, max_tokens: int,
                heal: bool = True, repo: Sequence[int] = (), given: int = 0) -> Plan:
    """A single hole at a cursor, sized by its situation (capped at max_tokens). With `heal`, a cursor right after a
    word token gets token healing where the backend allows it (infill.canvas.heal_text). `given`: see Plan."""
    t = _target(tok)
    hole = find_hole(text, offset, lang, t.sizing)
    healed = heal_text(text[: hole.start], t.tok) if heal and t.heals else ""
    return replace(plan_holes(text, [_cap(hole, max_tokens)], lang, t, budget, heal=healed, repo=repo), given=given)


MAX_PLACEHOLDERS = 32  # one request fills the first this many: sizing and filling each costs
# Holes with at most this many tokens of text between them share a canvas (each sees the others' fills); the others
# get a canvas each, with their own context. Text between holes is canvas too, paid for at every forward; and with the
# shipped model even near placeholders are filled better alone (README, Fill-all; tools/fill_all.py).
JOINT_GAP = 0


def shown_lines(target: Target, text: str, at: int, budget: int) -> tuple[int, int] | None:
    """The lines of `text` that the file context of a cursor at `at` holds (infill.canvas.context_lines), as the
    target lays it out; None where the backend builds its own requests (the server cannot tell)."""
    return context_lines(text, at, target.tok, budget, between=target.between) if target.steppable else None


def plan_ranges(text: str, ranges: Sequence[tuple[int, int]] | None, lang: str | None, tok, budget: int,
                max_tokens: int, repo: Sequence[int] = ()) -> Plan:
    """Several holes in one canvas: each empty range is a cursor hole; a non-empty range gives the placeholders it
    holds (`...`, `pass`, TODO comments) or, holding none, is itself a hole; no ranges: every placeholder in the file.
    Placeholders past the first MAX_PLACEHOLDERS are left for another request (Plan.later).
    """
    t = _target(tok)
    holes: list[Hole] = []
    every = placeholder_ranges(text, lang) if ranges is None or any(a != b for a, b in ranges) else []
    spans: list[tuple[int, int]] = every if ranges is None else []
    for start, end in ranges or ():
        if start == end:
            holes.append(find_hole(text, start, lang, t.sizing))
            continue
        inside = [(a, b) for a, b in every if start <= a and b <= end]
        if inside:
            spans += inside
        else:
            holes.append(rewrite_hole(start, end, text, t.sizing))
    spans = sorted(set(spans))
    holes += [placeholder_hole(text, start, end, lang, t.sizing) for start, end in spans[:MAX_PLACEHOLDERS]]
    holes = [_cap(h, max_tokens) for h in _disjoint(sorted(holes, key=lambda h: (h.start, h.end)))]
    if not holes:
        where = "the document" if ranges is None else "the given ranges"
        raise ValueError(f"nothing to fill: no placeholder (`...`, `pass`, a TODO comment) in {where}")
    runs = _near(text, holes, t) if t.steppable else [holes]
    # a canvas of several holes does not grow: each gets at most what a hole of its kind grows to alone (GROW_LIMIT);
    # sized by the syntax, four empty bodies took 795 slots, filled in hundreds of forwards
    runs = [r if len(r) == 1 else [replace(h, capacity=min(h.capacity, h.limit or h.capacity)) for h in r]
            for r in runs]
    holes = [h for r in runs for h in r]
    if len(runs) == 1:
        plan = plan_holes(text, holes, lang, t, budget, repo=repo)
    else:
        parts = [plan_holes(text, run, lang, t, budget, repo=repo) for run in runs]
        plan = Plan(text, lang, holes, "fill", None, budget, repo=list(repo), parts=parts)
    return replace(plan, later=spans[MAX_PLACEHOLDERS:])


def _near(text: str, holes: list[Hole], t: Target) -> list[list[Hole]]:
    """The holes in runs whose neighbours have at most JOINT_GAP tokens of text between them."""
    gaps = token_counter(t.sizing)([text[a.end : b.start] for a, b in zip(holes, holes[1:])])
    runs = [[holes[0]]]
    for h, gap in zip(holes[1:], gaps, strict=True):
        if gap <= JOINT_GAP:
            runs[-1].append(h)
        else:
            runs.append([h])
    return runs


def plan_rewrite(text: str, start: int, end: int, lang: str | None, tok, budget: int, max_tokens: int,
                 mode: str = "regenerate", instruction: str = "", repo: Sequence[int] = ()) -> Plan:
    """Rewrite [start, end): regenerate from masks, or refine (start from the selection, re-noise what the model
    doubts)."""
    if mode not in ("regenerate", "refine"):
        raise ValueError(f"unknown rewrite mode {mode!r}; 'regenerate' or 'refine'")
    t = _target(tok)
    if mode == "regenerate" and 0 <= start <= end <= len(text):
        # written anew from masks, a selection longer than a fill may write would come back cut short, or as something
        # else entirely (refine starts from the selection's own tokens: only the model's positions bound it)
        n = token_counter(t.sizing)([text[start:end]])[0]
        if n > max_tokens:
            raise ValueError(f"the selection is {n} tokens, more than a rewrite may write ({max_tokens}, maxTokens): "
                             "select less")
    hole = _cap(rewrite_hole(start, end, text, t.sizing), max_tokens)
    return plan_holes(text, [hole], lang, t, budget, mode, instruction, repo=repo)


def plan_holes(text: str, holes: list[Hole], lang: str | None, tok, budget: int, mode: str = "fill",
               instruction: str = "", heal: str = "", repo: Sequence[int] = ()) -> Plan:
    """The plan for these holes: tok is a Target (or a tokenizer: an SPM canvas); heal, repo: see build_canvas (a chat
    model's prompt takes no repository context)."""
    t = _target(tok)
    if t.extra_slots:
        holes = [replace(h, capacity=h.capacity + t.extra_slots) for h in holes]
    canvas = None
    if t.steppable:
        context = _chat_context(t.prompter, text, holes, lang, mode, instruction, budget) if t.prompter else None
        canvas = build_canvas(text, holes, t.tok, budget, mode, instruction, context=context, heal=heal,
                              repo=() if t.prompter else repo, between=t.between)
    return Plan(text, lang, holes, mode, canvas, budget, instruction, t.prompter, list(repo))


def fit(plan: Plan, tok, room: int) -> Plan:
    """The plan with its holes' capacities shrunk (in proportion, at least one slot each) so that the context and the
    canvas fit in `room` model positions: many placeholders filled at once share what the model has. Unchanged when
    it already fits. When even one slot per hole cannot fit (the text between the holes is too long), the longest run
    of consecutive holes that can keeps the canvas and every other hole gets one of its own (Plan.parts); a single
    hole that cannot fit is left for the engine to refuse, with the reason."""
    parts = [q for p in plan.parts or [plan] for q in _fit(p, tok, room)]
    if not plan.parts and len(parts) == 1:
        return parts[0]
    if len(parts) == len(plan.parts) and all(a is b for a, b in zip(parts, plan.parts, strict=True)):
        return plan  # every part fits as it is
    parts.sort(key=lambda p: p.holes[0].start)
    return replace(plan, holes=[h for p in parts for h in p.holes], canvas=None, parts=parts)


def _fit(plan: Plan, tok, room: int) -> list[Plan]:
    """fit for a plan of one canvas: the fitted plan, and one plan for each hole that could not share its canvas."""
    c = plan.canvas
    if c is None or room <= 0:
        return [plan]
    over = len(c.context_ids) + len(c.canvas_ids) + len(c.suffix_ids) - room
    if over <= 0:
        return [plan]
    t = _target(tok)
    caps = [h.capacity - t.extra_slots for h in plan.holes]  # plan_holes adds the extra slots again
    target = sum(caps) - over
    if target < len(caps):
        keep = _fitting_run(plan, t, room)
        if keep is None or keep[1] - keep[0] == len(plan.holes):
            return [plan]
        i, j = keep
        kept = plan_holes(plan.text, plan.holes[i:j], plan.lang, t, plan.budget, plan.mode, plan.instruction,
                          c.heal, plan.repo)
        alone = [plan_holes(plan.text, [h], plan.lang, t, plan.budget, plan.mode, plan.instruction, c.heal, plan.repo)
                 for h in plan.holes[:i] + plan.holes[j:]]
        return [q for p in [kept, *alone] for q in ([p] if _fits(p, room) else _fit(p, tok, room))]
    new = [max(1, cap * target // sum(caps)) for cap in caps]
    while sum(new) > target:  # the floor of 1 can leave a few slots over: take them from the largest holes
        i = max(range(len(new)), key=new.__getitem__)
        new[i] -= 1
    holes = [replace(h, capacity=n) for h, n in zip(plan.holes, new, strict=True)]
    return [replace(plan_holes(plan.text, holes, plan.lang, t, plan.budget, plan.mode, plan.instruction, c.heal,
                               plan.repo), later=plan.later, given=plan.given)]


def _fits(plan: Plan, room: int) -> bool:
    c = plan.canvas
    return c is None or len(c.context_ids) + len(c.canvas_ids) + len(c.suffix_ids) <= room


def _fitting_run(plan: Plan, t: Target, room: int) -> tuple[int, int] | None:
    """[i, j): the most consecutive holes whose canvas, one slot each, fits in room beside the plan's context (the
    first such run; a run's own context can be longer: `fit` checks the run's plan again); None for a single hole."""
    holes = plan.holes
    if len(holes) < 2 or plan.canvas is None:
        return None
    context = len(plan.canvas.context_ids)
    between = [len(t.tok.encode(plan.between(k))) for k in range(len(holes) - 1)]
    best, i, used = None, 0, 1  # holes[i:j] use `used` positions: one slot each and the text between them
    for j in range(1, len(holes) + 1):
        if j > i + 1:
            used += between[j - 2] + 1
        while i < j - 1 and context + used > room:
            used -= between[i] + 1
            i += 1
        if context + used <= room and (best is None or j - i > best[1] - best[0]):
            best = (i, j)
    return best or (0, 1)  # not even one hole beside this context: the first alone, with its own


def _chat_context(prompter: Any, text: str, holes: Sequence[Hole], lang: str | None, mode: str, instruction: str,
                  budget: int) -> list[int]:
    """A chat model's prompt: the code around the span (infill), or the selection and what to do with it (rewrite).
    Several holes: the text between them is fixed canvas tokens, so the prompt is the one around the whole span."""
    prefix, suffix = text[: holes[0].start], text[holes[-1].end :]
    if mode == "fill":
        return prompter.infill(prefix, suffix, lang, budget)
    return prompter.rewrite(prefix, text[holes[0].start : holes[-1].end], suffix, instruction, lang, budget)


def _cap(hole: Hole, max_tokens: int) -> Hole:
    if hole.capacity <= max_tokens:
        return hole
    return Hole(hole.start, hole.end, hole.situation, max_tokens, hole.indent)


def _disjoint(holes: list[Hole]) -> list[Hole]:
    """Sorted holes without overlaps: a hole overlapping the one before, or a cursor at its end, is dropped."""
    out: list[Hole] = []
    for h in holes:
        if not out or h.start >= out[-1].end and (h.start > out[-1].end or h.start != h.end):
            out.append(h)
    return out


# -- running ----------------------------------------------------------------------------------------------------------


def run(backend: Backend, plan: Plan, cfg: SamplerConfig, session: str, cancel: object | None = None,
        on_partial: Callable[[Partial], None] | None = None, native: bool = False,
        min_confidence: float = 0.0, max_forwards: int = 0) -> Outcome:
    """Prefill, denoise (calling on_partial after every forward), post-process. Raises Cancelled when cancelled.

    min_confidence: a cursor fill with a text token finalized below this probability is refused (automatic
    completions: a guess the model was unsure of is mostly wrong, and shown as you type it is noise).
    max_forwards: a cursor fill not done after this many forwards is refused (automatic completions: 0, no limit).

    native: denoise with the backend's own loop (`native_stream`, DiffusionGemma's) where it has one. A backend that
    is not steppable runs its own loop on text requests: on_partial is called once per committed canvas but the last.
    """
    if plan.parts and backend.capabilities.streams:
        return _run_parts(backend, plan, cfg, session, cancel, on_partial, native)
    if plan.canvas is None or not backend.capabilities.streams:
        return _run_requests(backend, plan, cancel, on_partial)
    raw, stats, reused = _denoise(backend, plan, cfg, session, cancel, on_partial, native, min_confidence,
                                  max_forwards)
    return replace(_outcome(plan, raw, stats, min_confidence), reused=reused)


def _denoise(backend: Backend, plan: Plan, cfg: SamplerConfig, session: str, cancel: object | None,
             on_partial: Callable[[Partial], None] | None, native: bool,
             min_confidence: float, max_forwards: int = 0) -> tuple[list[str], SampleStats, int]:
    """One canvas through the engine: each hole's raw text (not yet post-processed), the stats, the cached tokens."""
    assert plan.canvas is not None
    tok = backend.tokenizer
    spec = plan.spec
    grows = len(plan.holes) == 1 and plan.mode == "fill"  # only a cursor hole grows; a rewrite keeps to its capacity
    if not grows:  # a rewrite's capacity comes from its selection: that canvas is the length hint, no smaller start
        cfg = replace(cfg, grow=False, start=0)
    else:  # a fill that will be refused as unsure stops at its unsure token
        cfg = replace(cfg, stop_below=min_confidence, max_forwards=max_forwards)
    if backend.capabilities.canvas_between:  # one sequence, prefix [MASK]*n suffix: the backend places the canvas
        handle = cast(InfillBackend, backend).prefill_around(plan.canvas.context_ids, plan.canvas.suffix_ids, session)
    else:
        handle = backend.prefill(plan.canvas.context_ids, session=session)
    native_stream = backend.native_stream if native and backend.capabilities.native_loop else None  # type: ignore[attr-defined]
    if native_stream is not None:
        max_new = max(cfg.max_new, len(spec.slots)) if grows else len(spec.slots)
        if grows and spec.limit is not None:
            max_new = min(max_new, max(spec.limit, len(spec.slots)))
        stream = native_stream(handle, spec, cancel, seed=cfg.seed, max_new=max_new)
    else:
        stream = denoise_stream(backend, handle, spec, cfg, cancel)
    final: CanvasState | None = None
    # the slots a partial shows: a growable hole starts from its first canvas (SamplerConfig.start), not its capacity
    shown = first_sizes(len(spec.slots), cfg)[0] if spec.growable and native_stream is None else len(spec.slots)
    while True:
        try:
            state = next(stream)
        except StopIteration as stop:
            stats: SampleStats = stop.value
            break
        if state.done:
            final = state
        elif on_partial is not None:
            on_partial(render(plan, state, tok, shown))
    assert final is not None
    canvas = plan.canvas
    if spec.growable:  # a single hole's final ids are its text, possibly grown past the capacity
        canvas = replace(canvas, hole_slices=[(0, len(final.ids))])
    raw = canvas_to_text(canvas, final.ids, tok)
    if plan.prompter is not None:  # a chat model's answer: the code block's text
        raw = [plan.prompter.finish(r) for r in raw]
    return raw, stats, handle.reused


def _run_parts(backend: Backend, plan: Plan, cfg: SamplerConfig, session: str, cancel: object | None,
               on_partial: Callable[[Partial], None] | None, native: bool) -> Outcome:
    """A plan of several canvases, denoised one after another; the fills are then post-processed and guarded
    together, as one edit. A partial shows the whole span: the fills so far, the canvas running, the rest as is."""
    raw: list[str] = []
    total, reused = SampleStats(), 0
    start = plan.span[0]
    for part in plan.parts:
        if is_cancelled(cancel):  # the engine checks between forwards; a part's prefill comes before its first
            raise Cancelled()
        done = [(h.start, h.end, with_newline(f, plan.newline)[0]) for h, f in zip(plan.holes, raw, strict=False)]
        head = _splice(plan.text, start, part.span[0], done)

        fresh = [bool(raw)]  # a later part's first canvas: its masked slots are new noise in the span

        def show(p: Partial, part: Plan = part, head: str = head, fresh: list[bool] = fresh) -> None:
            assert on_partial is not None
            text = head + p.text + plan.text[part.span[1] : plan.span[1]]
            masks = [(a + len(head), b + len(head)) for a, b in p.masks]
            new = sum(b - a for a, b in p.masks) if fresh[0] else 0
            fresh[0] = False
            on_partial(Partial(text, masks, total.nfe + p.nfe, total.blocks + p.block, p.remasked + new))

        texts, stats, kept = _denoise(backend, part, cfg, session, cancel, show if on_partial else None, native, 0.0)
        raw += texts
        reused += kept
        _add(total, stats)
    return replace(_outcome(plan, raw, total), reused=reused)


def _splice(text: str, start: int, end: int, edits: Sequence[tuple[int, int, str]]) -> str:
    """text[start:end] with the sorted, non-overlapping edits (a, b, new) inside it made."""
    out, pos = [], start
    for a, b, new in edits:
        out += [text[pos:a], new]
        pos = b
    out.append(text[pos:end])
    return "".join(out)


def _add(total: SampleStats, stats: SampleStats) -> None:
    """Count one canvas's stats into a request's."""
    for name in ("nfe", "tokens", "steps", "canvases", "finalized", "blocks", "remasked", "restarts", "prefill_ms",
                 "elapsed_ms"):
        setattr(total, name, getattr(total, name) + getattr(stats, name))
    total.cut = total.cut or stats.cut
    if stats.min_confidence is not None:
        least = total.min_confidence
        total.min_confidence = stats.min_confidence if least is None else min(least, stats.min_confidence)


CUT_WHY = {"limit": "the model was still writing at its limit", "repetition": "it began repeating itself"}


def _outcome(plan: Plan, raw: Sequence[str], stats: SampleStats, min_confidence: float = 0.0) -> Outcome:
    """Post-process each hole's text, then guard it (infill.guard): what could make the code worse is refused, and
    a cursor fill the model was less sure of than `min_confidence` (see run)."""
    unit = indent_unit(plan.text)
    nl = plan.newline
    text = plan.text if nl == "\n" else lf(plan.text)  # post-processing reads the fill against the text around it
    fills = []
    for h, f in zip(plan.holes, raw, strict=True):
        start, end = h.start, h.end
        if nl != "\n":  # the hole in the "\n" text
            start, end = start - plan.text.count("\r\n", 0, start), end - plan.text.count("\r\n", 0, end)
        done = finalize(text[:start], lf(f), text[end:], plan.lang, h.situation, h.indent, unit)
        fills.append(with_newline(done, nl)[0])
    if plan.given and len(plan.holes) == 1 and plan.holes[0].start == plan.holes[0].end:
        # judged as the answer's own text at the cursor the user left, on the document without the list's word
        at, g = plan.holes[0].start, plan.given
        word = plan.text[at - g : at]
        v = guard.check(plan.text[: at - g] + plan.text[at:], plan.lang,
                        [guard.Proposal(at - g, at - g, word + fills[0], word + raw[0])])[0]
        fills, reasons = ([v.text[g:]] if v.ok and v.text.startswith(word) else [""]), [v.reason]
    else:
        verdicts = guard.check(plan.text, plan.lang, [guard.Proposal(h.start, h.end, f, r)
                                                      for h, f, r in zip(plan.holes, fills, raw, strict=True)])
        fills, reasons = [v.text for v in verdicts], [v.reason for v in verdicts]
    # a rewrite that did not end is no answer: stopped at its limit, or where it began repeating itself (a trial's
    # rewrite of a function body came back as `return list(data.keys()) - set`); fills are bounded by their hole kind
    if plan.mode != "fill" and len(plan.holes) == 1 and reasons[0] is None and stats.cut in CUT_WHY:
        h = plan.holes[0]
        fills[0], reasons[0] = plan.text[h.start : h.end], f"the answer did not end: {CUT_WHY[stats.cut]}"
    least = stats.min_confidence
    # a fill the sampler gave up on as unsure (stop_below) has no text: its reason is the doubt, not the emptiness
    if (plan.mode == "fill" and len(plan.holes) == 1 and least is not None and least < min_confidence
            and (stats.cut == "unsure" or (reasons[0] is None and fills[0]))):
        h = plan.holes[0]
        fills[0] = plan.text[h.start : h.end]
        reasons[0] = f"the model was unsure of it (a token at {least:.2f}, under minConfidence {min_confidence:g})"
    elif plan.mode == "fill" and len(plan.holes) == 1 and stats.cut == "forwards":
        h = plan.holes[0]
        fills[0] = plan.text[h.start : h.end]
        reasons[0] = f"the model had not finished it after {stats.nfe} forwards (typingForwards)"
    return Outcome(fills, plan.join(fills), stats, reasons)


def _run_requests(backend: Any, plan: Plan, cancel: object | None,
                  on_partial: Callable[[Partial], None] | None) -> Outcome:
    """A backend that runs its own loop (vLLM): one `infill` / `rewrite` request per hole, a Chunk per committed canvas.

    Every chunk but the very last is a Partial (the fills so far, nothing masked), so a caller that ends with the
    result sends one notification per chunk. nfe and blocks count canvases: vLLM does not report its forwards.
    """
    t0 = time.perf_counter()
    stats = SampleStats()
    pad = backend.special.pad
    fills: list[str] = []
    for i, h in enumerate(plan.holes):
        prefix, suffix = plan.text[: h.start], plan.text[h.end :]
        if plan.mode == "fill":
            chunks = backend.infill(prefix, suffix, h.capacity, plan.lang, plan.budget, cancel=cancel)
        else:
            chunks = backend.rewrite(prefix, plan.text[h.start : h.end], suffix, h.capacity, plan.instruction,
                                     plan.lang, plan.budget, cancel=cancel)
        text = ""
        for chunk in chunks:
            text = chunk.fill
            stats.nfe += 1
            stats.blocks += 1
            stats.tokens += sum(1 for t in chunk.token_ids or [] if t != pad)
            if on_partial is not None and not (chunk.done and i + 1 == len(plan.holes)):
                rest = [plan.text[x.start : x.end] for x in plan.holes[i + 1 :]]  # holes to come keep their text
                on_partial(Partial(plan.join([*fills, text, *rest]), [], stats.nfe, stats.blocks, 0))
        fills.append(text)
    stats.finalized = stats.tokens
    stats.elapsed_ms = (time.perf_counter() - t0) * 1e3
    return _outcome(plan, fills, stats)


def render(plan: Plan, state: CanvasState, tok, capacity: int) -> Partial:
    """An intermediate canvas as the span's text: a growable hole shows its not-yet-started slots as masked too; a chat
    model's answer is cut where its code block closes."""
    p = _render(plan, state, tok, capacity)
    if plan.prompter is None:
        return p
    text = plan.prompter.finish(p.text)
    if len(text) == len(p.text):
        return p
    return replace(p, text=text, masks=[(a, min(b, len(text))) for a, b in p.masks if a < len(text)])


def _render(plan: Plan, state: CanvasState, tok, capacity: int) -> Partial:
    ids, masked = list(state.ids), list(state.masked)
    if len(plan.holes) == 1:
        if len(ids) < capacity:
            ids += [tok.special.mask] * (capacity - len(ids))
            masked += [True] * (capacity - len(masked))
        text, masks = render_partial(ids, masked, tok, PLACEHOLDER)
        heal = plan.canvas.heal if plan.canvas is not None else ""
        if heal and text.startswith(heal):  # the typed part the fill spells again is already in the document
            text, masks = text[len(heal) :], [(a - len(heal), b - len(heal)) for a, b in masks]
        text, masks = with_newline(text, plan.newline, masks)
        return Partial(text, masks, state.nfe, state.block, len(state.remasked))
    # several holes: each hole's slots rendered on its own, joined by the document's text between the holes
    assert plan.canvas is not None
    parts: list[str] = []
    masks = []
    pos = 0
    for i, (a, b) in enumerate(plan.canvas.hole_slices):
        t, m = render_partial(ids[a:b], masked[a:b], tok, PLACEHOLDER)
        t, m = with_newline(t, plan.newline, m)
        masks += [(s + pos, e + pos) for s, e in m]
        parts.append(t)
        pos += len(t)
        if i + 1 < len(plan.holes):
            parts.append(plan.between(i))
            pos += len(parts[-1])
    return Partial("".join(parts), masks, state.nfe, state.block, len(state.remasked))
