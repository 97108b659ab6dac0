"""The fill pipeline the server and `diffusion-ls complete` share: holes -> canvas -> engine stream -> text.

Everything here runs on the engine thread over a snapshot of the document text (plain str and char offsets): no LSP
types, no event loop. Offsets are turned into LSP positions by the caller, against the live document, after it has
checked the version is still the one the fill was computed for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from engine.backend import Backend
from engine.sampler import CanvasSpec, CanvasState, SamplerConfig, SampleStats, denoise_stream
from infill.canvas import Canvas, build_canvas, canvas_to_text, render_partial
from infill.holes import Hole, find_hole, find_placeholders, indent_unit, rewrite_hole
from infill.postprocess import finalize

PLACEHOLDER = "·"  # a still-masked slot in streamed text


@dataclass
class Plan:
    """One canvas over a document snapshot."""

    text: str  # the document snapshot
    lang: str | None
    holes: list[Hole]  # sorted, non-overlapping; each replaces text[start:end]
    mode: str  # "fill", "regenerate" or "refine"
    canvas: Canvas  # context ids, canvas slots, fixed slots, per-hole slot ranges

    @property
    def span(self) -> tuple[int, int]:
        """The document char range the canvas covers: first hole's start to last hole's end."""
        return self.holes[0].start, self.holes[-1].end

    @property
    def spec(self) -> CanvasSpec:
        c = self.canvas
        # refine: the selection's tokens (and the pads after them) start decided; the sampler re-noises doubtful ones
        decided = [True] * len(c.canvas_ids) if self.mode == "refine" else None
        return CanvasSpec(list(c.canvas_ids), list(c.fixed), list(c.hole_slices), decided)

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
    remasked: int  # slots re-noised by this forward (self-correction): the masked total may grow by this much


@dataclass
class Outcome:
    fills: list[str]  # final text per hole, post-processed
    text: str  # the span's new text: fills joined with the text between holes
    stats: SampleStats


# -- plans ------------------------------------------------------------------------------------------------------------


def plan_cursor(text: str, offset: int, lang: str | None, tok, budget: int, max_tokens: int) -> Plan:
    """A single hole at a cursor, sized by its situation (capped at max_tokens)."""
    hole = find_hole(text, offset, lang, tok)
    return plan_holes(text, [_cap(hole, max_tokens)], lang, tok, budget)


def plan_ranges(text: str, ranges: Sequence[tuple[int, int]] | None, lang: str | None, tok, budget: int,
                max_tokens: int) -> Plan:
    """Several holes in one canvas: each empty range is a cursor hole; a non-empty range gives the placeholders it
    holds (`...`, `pass`, TODO comments) or, holding none, is itself a hole; no ranges: every placeholder in the file.
    """
    holes: list[Hole] = []
    if ranges is None:
        holes = find_placeholders(text, lang, None, tok)
    else:
        for start, end in ranges:
            if start == end:
                holes.append(find_hole(text, start, lang, tok))
                continue
            inside = find_placeholders(text, lang, (start, end), tok)
            holes.extend(inside or [rewrite_hole(start, end, text, tok)])
    holes = _disjoint(sorted(holes, key=lambda h: (h.start, h.end)))
    if not holes:
        where = "the document" if ranges is None else "the given ranges"
        raise ValueError(f"nothing to fill: no placeholder (`...`, `pass`, a TODO comment) in {where}")
    return plan_holes(text, [_cap(h, max_tokens) for h in holes], lang, tok, budget)


def plan_rewrite(text: str, start: int, end: int, lang: str | None, tok, budget: int, max_tokens: int,
                 mode: str = "regenerate", instruction: str = "") -> Plan:
    """Rewrite [start, end): regenerate from masks, or refine (start from the selection, re-noise what the model
    doubts)."""
    if mode not in ("regenerate", "refine"):
        raise ValueError(f"unknown rewrite mode {mode!r}; 'regenerate' or 'refine'")
    hole = _cap(rewrite_hole(start, end, text, tok), max_tokens)
    return plan_holes(text, [hole], lang, tok, budget, mode, instruction)


def plan_holes(text: str, holes: list[Hole], lang: str | None, tok, budget: int, mode: str = "fill",
               instruction: str = "") -> Plan:
    canvas = build_canvas(text, holes, tok, budget, mode, instruction)
    return Plan(text, lang, holes, mode, canvas)


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
        on_partial: Callable[[Partial], None] | None = None) -> Outcome:
    """Prefill, denoise (calling on_partial after every forward), post-process. Raises Cancelled when cancelled."""
    tok = backend.tokenizer
    spec = plan.spec
    if len(plan.holes) > 1 or plan.mode != "fill":  # only a cursor hole grows; a rewrite keeps to its capacity
        cfg = replace(cfg, grow=False)
    handle = backend.prefill(plan.canvas.context_ids, session=session)
    stream = denoise_stream(backend, handle, spec, cfg, cancel)
    final: CanvasState | None = None
    while True:
        try:
            state = next(stream)
        except StopIteration as stop:
            stats: SampleStats = stop.value
            break
        if state.done:
            final = state
        elif on_partial is not None:
            on_partial(render(plan, state, tok, len(spec.slots)))
    assert final is not None
    canvas = plan.canvas
    if spec.growable:  # a single hole's final ids are its text, possibly grown past the capacity
        canvas = replace(canvas, hole_slices=[(0, len(final.ids))])
    raw = canvas_to_text(canvas, final.ids, tok)
    unit = indent_unit(plan.text)
    fills = [finalize(plan.text[: h.start], f, plan.text[h.end :], plan.lang, h.situation, h.indent, unit)
             for h, f in zip(plan.holes, raw, strict=True)]
    return Outcome(fills, plan.join(fills), stats)


def render(plan: Plan, state: CanvasState, tok, capacity: int) -> Partial:
    """An intermediate canvas as the span's text: a growable hole shows its not-yet-started slots as masked too."""
    ids, masked = list(state.ids), list(state.masked)
    if len(plan.holes) == 1:
        if len(ids) < capacity:
            ids += [tok.special.mask] * (capacity - len(ids))
            masked += [True] * (capacity - len(masked))
        text, masks = render_partial(ids, masked, tok, PLACEHOLDER)
        return Partial(text, masks, state.nfe, state.block, len(state.remasked))
    # several holes: each hole's slots rendered on its own, joined by the document's text between the holes
    parts: list[str] = []
    masks = []
    pos = 0
    for i, (a, b) in enumerate(plan.canvas.hole_slices):
        t, m = render_partial(ids[a:b], masked[a:b], tok, PLACEHOLDER)
        masks += [(s + pos, e + pos) for s, e in m]
        parts.append(t)
        pos += len(t)
        if i + 1 < len(plan.holes):
            parts.append(plan.between(i))
            pos += len(parts[-1])
    return Partial("".join(parts), masks, state.nfe, state.block, len(state.remasked))

