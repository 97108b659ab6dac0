"""fill.fit: many holes in one canvas share the model's positions."""

from __future__ import annotations

import re

import pytest

from engine import DEFAULT_MODEL_DIR
from engine.tokenizer import Tokenizer
from infill.holes import find_placeholders
from server import fill

TOK = Tokenizer.from_file(DEFAULT_MODEL_DIR / "tokenizer.json")
ROOM = 1536  # the shipped model's positions


def positions(plan: fill.Plan) -> int:
    return len(plan.canvas.context_ids) + len(plan.canvas.canvas_ids)


def test_many_placeholders_share_the_positions():
    text = "".join(f"def f{i}(a, b):\n    ...\n\n\n" for i in range(120))
    holes = [fill._cap(h, 256) for h in find_placeholders(text, "python", None, TOK)]  # plan_ranges takes 32 at most
    plan = fill.plan_holes(text, holes, "python", TOK, 384)
    assert len(plan.holes) == 120 and positions(plan) > ROOM
    fitted = fill.fit(plan, TOK, ROOM)
    assert positions(fitted) <= ROOM
    assert [(h.start, h.end) for h in fitted.holes] == [(h.start, h.end) for h in plan.holes]
    assert all(1 <= h.capacity <= g.capacity for h, g in zip(fitted.holes, plan.holes, strict=True))
    # the text between the holes is still there, fixed, in the same order
    fixed = [t for t, f in zip(fitted.canvas.canvas_ids, fitted.canvas.fixed, strict=True) if f]
    assert fixed == [t for t, f in zip(plan.canvas.canvas_ids, plan.canvas.fixed, strict=True) if f]
    assert fitted.canvas.context_ids == plan.canvas.context_ids


def test_a_plan_that_fits_is_left_alone():
    text = "def f(a):\n    ...\n\n\ndef g(b):\n    ...\n"
    plan = fill.plan_ranges(text, None, "python", TOK, 384, 256)
    assert fill.fit(plan, TOK, ROOM) is plan


def test_holes_too_far_apart_for_one_canvas_keep_the_longest_run_that_fits():
    body = "".join(f"    x{j} = compute(a, b, {j})\n" for j in range(12))
    text = "".join(f"def f{i}(a, b):\n{body}    ...\n\n\n" for i in range(40))
    plan = fill.plan_ranges(text, None, "python", TOK, 384, 256)
    assert sum(plan.canvas.fixed) > ROOM  # no capacity makes all 40 fit
    fitted = fill.fit(plan, TOK, ROOM)
    assert positions(fitted) <= ROOM and len(fitted.holes) >= 2
    kept = [(h.start, h.end) for h in fitted.holes]
    every = [(h.start, h.end) for h in plan.holes]
    assert kept == every[every.index(kept[0]) : every.index(kept[0]) + len(kept)]  # consecutive
    assert sorted(kept + [(h.start, h.end) for h in fitted.dropped]) == every  # the rest are reported, none lost
    alone = fill.plan_ranges(text, [(fitted.dropped[-1].start, fitted.dropped[-1].end)], "python", TOK, 384, 256)
    assert positions(fill.fit(alone, TOK, ROOM)) <= ROOM  # each dropped one fits on its own


def test_a_single_hole_longer_than_the_model_is_left_to_fail():
    text = "def f(a):\n" + "".join(f"    x{j} = compute(a, {j})\n" for j in range(400))
    plan = fill.plan_rewrite(text, 10, len(text), "python", TOK, 384, 8192, "refine")
    assert positions(plan) > ROOM
    assert fill.fit(plan, TOK, ROOM) is plan  # nothing to drop: the engine refuses it, with the reason
    with pytest.raises(ValueError, match=r"the selection is \d+ tokens, more than a rewrite may write \(256"):
        fill.plan_rewrite(text, 10, len(text), "python", TOK, 384, 256, "regenerate")  # written from masks: refused
    assert fill.plan_rewrite(text, 10, len(text), "python", TOK, 384, 256, "refine").holes  # its own tokens: planned


def test_placeholders_past_the_cap_are_left_for_another_request():
    """A trial's fill-all of a 5 MB file sized all 626 placeholders (21 s) to fill 5: only the first MAX_PLACEHOLDERS
    are planned, the rest are reported, none lost."""
    text = "".join(f"def f{i}(a, b):\n    ...\n\n\n" for i in range(fill.MAX_PLACEHOLDERS + 7))
    plan = fill.fit(fill.plan_ranges(text, None, "python", TOK, 384, 256), TOK, ROOM)
    every = [(m.start(), m.end()) for m in re.finditer(r"\.\.\.", text)]
    assert len(plan.later) == 7 and plan.later == every[fill.MAX_PLACEHOLDERS:]
    planned = sorted([(h.start, h.end) for h in plan.holes] + [(h.start, h.end) for h in plan.dropped])
    assert planned == every[: fill.MAX_PLACEHOLDERS]
