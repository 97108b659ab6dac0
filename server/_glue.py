"""Stand-ins for infill/ functions not written yet (build_canvas, canvas_to_text, render_partial, finalize).

Same names and signatures as the infill/ contract, minimal behaviour; server/fill.py imports them from here until
infill/ has them. Delete this module then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from infill.canvas import spm_context
from infill.holes import Hole


@dataclass
class Canvas:
    context_ids: list[int]  # SPM context: [fim_suffix] suffix [fim_prefix] prefix [fim_middle]
    canvas_ids: list[int]  # the slots the sampler denoises
    fixed: list[bool]  # slots that never change (document text between holes)
    hole_slices: list[tuple[int, int]]  # [start, end) slots of each hole
    decided: list[bool] | None = None  # refine mode: slots that start decided (the selection's own tokens)


def build_canvas(text: str, holes: Sequence[Hole], tok, budget: int, mode: str = "infill") -> Canvas:
    """One canvas for holes (sorted, disjoint): masks per hole, the text between holes as fixed slots."""
    sp = tok.special
    first, last = holes[0], holes[-1]
    context = spm_context(text[: first.start], text[last.end :], tok, budget)
    if mode == "refine":
        (hole,) = holes
        ids = tok.encode(text[hole.start : hole.end])
        slack = max(2, len(ids) // 8)  # room for a slightly longer text; pads let it end earlier
        slots = ids + [sp.mask] * slack
        return Canvas(context, slots, [False] * len(slots), [(0, len(slots))], [True] * len(ids) + [False] * slack)
    slots: list[int] = []
    fixed: list[bool] = []
    slices: list[tuple[int, int]] = []
    for i, hole in enumerate(holes):
        slices.append((len(slots), len(slots) + hole.capacity))
        slots += [sp.mask] * hole.capacity
        fixed += [False] * hole.capacity
        if i + 1 < len(holes):
            between = tok.encode(text[hole.end : holes[i + 1].start])
            slots += between
            fixed += [True] * len(between)
    return Canvas(context, slots, fixed, slices)


def canvas_to_text(canvas: Canvas, ids: Sequence[int], tok) -> list[str]:
    """Text per hole of a final canvas (pads dropped); a single hole's ids may have grown past its slice."""
    if len(canvas.hole_slices) == 1:
        return [tok.decode(list(ids))]
    return [tok.decode(list(ids[a:b])) for a, b in canvas.hole_slices]


def render_partial(ids: Sequence[int], masked: Sequence[bool], tok, placeholder: str = "·"
                   ) -> tuple[str, list[tuple[int, int]]]:
    """Text of a partial canvas with each masked slot as `placeholder`, and the masked char ranges (merged)."""
    parts: list[str] = []
    masks: list[tuple[int, int]] = []
    run: list[int] = []
    pos = 0

    def flush() -> None:
        nonlocal pos
        if run:
            t = tok.decode(run)
            parts.append(t)
            pos += len(t)
            run.clear()

    for tid, m in zip(ids, masked):
        if not m:
            run.append(tid)
            continue
        flush()
        if masks and masks[-1][1] == pos:
            masks[-1] = (masks[-1][0], pos + len(placeholder))
        else:
            masks.append((pos, pos + len(placeholder)))
        parts.append(placeholder)
        pos += len(placeholder)
    flush()
    return "".join(parts), masks


def finalize(prefix: str, fill: str, suffix: str, lang: str | None, situation: str) -> str:
    """Post-processing stand-in: the fill as the model wrote it."""
    return fill
