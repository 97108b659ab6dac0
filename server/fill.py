"""The fill pipeline the server and `diffusion-ls complete` share: holes -> canvas -> engine stream -> text.

Everything here runs on the engine thread over a snapshot of the document text (plain str and char offsets): no LSP
types, no event loop. Offsets are turned into LSP positions by the caller, against the live document, after it has
checked the version is still the one the fill was computed for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.backend import Backend
from engine.sampler import CanvasSpec, CanvasState, SampleStats, SamplerConfig, denoise_stream
from infill.holes import Hole, find_hole, find_placeholders, rewrite_hole

from server import _glue

PLACEHOLDER = "·"  # a still-masked slot in streamed text


@dataclass
class Plan:
    """One canvas over a document snapshot."""

    text: str  # the document snapshot
    lang: str | None
    holes: list[Hole]  # sorted, non-overlapping; each replaces text[start:end]
    mode: str  # "infill", "regenerate" or "refine"
    canvas: _glue.Canvas  # context ids, canvas slots, fixed slots, per-hole slot ranges

    @property
    def span(self) -> tuple[int, int]:
        """The document char range the canvas covers: first hole's start to last hole's end."""
        return self.holes[0].start, self.holes[-1].end

    @property
    def spec(self) -> CanvasSpec:
        c = self.canvas
        return CanvasSpec(list(c.canvas_ids), list(c.fixed), list(c.hole_slices), c.decided)

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
        raise ValueError("nothing to fill: no placeholder (`...`, `pass`, TODO) in the given ranges")
    return plan_holes(text, [_cap(h, max_tokens) for h in holes], lang, tok, budget)


def plan_rewrite(text: str, start: int, end: int, lang: str | None, tok, budget: int, max_tokens: int,
                 mode: str = "regenerate") -> Plan:
    """Rewrite [start, end): regenerate from masks, or refine (start from the selection, re-noise what the model
    doubts)."""
    if mode not in ("regenerate", "refine"):
        raise ValueError(f"unknown rewrite mode {mode!r}; 'regenerate' or 'refine'")
    hole = _cap(rewrite_hole(start, end, text, tok), max_tokens)
    return plan_holes(text, [hole], lang, tok, budget, mode)


def plan_holes(text: str, holes: list[Hole], lang: str | None, tok, budget: int, mode: str = "infill") -> Plan:
    canvas = _glue.build_canvas(text, holes, tok, budget, mode)
    return Plan(text, lang, holes, mode, canvas)


def _cap(hole: Hole, max_tokens: int) -> Hole:
    if hole.capacity <= max_tokens:
        return hole
    return Hole(hole.start, hole.end, hole.situation, max_tokens, hole.indent)


def _disjoint(holes: list[Hole]) -> list[Hole]:
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
    if len(plan.holes) > 1 or plan.mode == "refine":
        cfg = _replace(cfg, grow=False)
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
    raw = _glue.canvas_to_text(plan.canvas, final.ids, tok)
    fills = [_glue.finalize(plan.text[: h.start], f, plan.text[h.end :], plan.lang, h.situation)
             for h, f in zip(plan.holes, raw)]
    return Outcome(fills, plan.join(fills), stats)


def render(plan: Plan, state: CanvasState, tok, capacity: int) -> Partial:
    """An intermediate canvas as the span's text: a growable hole shows its not-yet-started slots as masked too."""
    ids, masked = list(state.ids), list(state.masked)
    if len(plan.holes) == 1:
        if len(ids) < capacity:
            ids += [tok.special.mask] * (capacity - len(ids))
            masked += [True] * (capacity - len(masked))
        text, masks = _glue.render_partial(ids, masked, tok, PLACEHOLDER)
        return Partial(text, masks, state.nfe, state.block, len(state.remasked))
    # several holes: each hole's slots rendered on its own, joined by the document's text between the holes
    parts: list[str] = []
    masks = []
    pos = 0
    for i, (a, b) in enumerate(plan.canvas.hole_slices):
        t, m = _glue.render_partial(ids[a:b], masked[a:b], tok, PLACEHOLDER)
        masks += [(s + pos, e + pos) for s, e in m]
        parts.append(t)
        pos += len(t)
        if i + 1 < len(plan.holes):
            parts.append(plan.between(i))
            pos += len(parts[-1])
    return Partial("".join(parts), masks, state.nfe, state.block, len(state.remasked))


def _replace(cfg: SamplerConfig, **kw) -> SamplerConfig:
    from dataclasses import replace

    return replace(cfg, **kw)
