"""fill.plan_ranges and fill.fit: near holes share a canvas and the model's positions; far ones get their own."""

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


def test_near_placeholders_share_a_canvas_and_far_ones_get_their_own(monkeypatch):
    """Holes with more than JOINT_GAP tokens between them are planned as canvases of their own (a trial's fill-all of
    boltons' strutils.py ran 4 far-apart `pass` bodies in one 1,159-slot canvas: 32 forwards of a second each, and
    every fill came back as junk). Each part is an ordinary one-canvas plan over the same text; holes that share one
    are capped at what they would grow to alone."""
    monkeypatch.setattr(fill, "JOINT_GAP", 64)
    near = "def f{0}(a):\n    ...\n\n\ndef g{0}(a):\n    ...\n\n\n"
    far = "".join(f"    x{j} = compute(a, b, {j})\n" for j in range(12))
    text = near.format(0) + f"def h(a, b):\n{far}    return a\n\n\n" + near.format(1)
    plan = fill.plan_ranges(text, None, "python", TOK, 384, 256)
    assert plan.canvas is None and [len(p.holes) for p in plan.parts] == [2, 2]
    assert [(h.start, h.end) for h in plan.holes] == [(h.start, h.end) for p in plan.parts for h in p.holes]
    assert all(p.canvas is not None and p.text is text and not p.parts for p in plan.parts)
    assert fill.fit(plan, TOK, ROOM).parts == plan.parts  # each already fits
    close = fill.plan_ranges(near.format(0), None, "python", TOK, 384, 256)
    assert not close.parts and len(close.holes) == 2  # one canvas: each sees the other's fill
    assert all(h.capacity <= h.limit for h in close.holes)
    monkeypatch.setattr(fill, "JOINT_GAP", 0)  # the default: the shipped model fills each better alone
    assert [len(p.holes) for p in fill.plan_ranges(near.format(0), None, "python", TOK, 384, 256).parts] == [1, 1]


def test_holes_too_many_for_one_canvas_keep_the_longest_run_that_fits_and_the_rest_go_alone(monkeypatch):
    monkeypatch.setattr(fill, "JOINT_GAP", 64)
    body = "".join(f"    x{j} = f(a, {j})\n" for j in range(5))
    text = "".join(f"def f{i}(a, b):\n{body}    ...\n\n\n" for i in range(fill.MAX_PLACEHOLDERS))
    plan = fill.plan_ranges(text, None, "python", TOK, 384, 256)
    assert not plan.parts and sum(plan.canvas.fixed) > ROOM  # near enough for one canvas, too long for the model
    fitted = fill.fit(plan, TOK, ROOM)
    assert [(h.start, h.end) for h in fitted.holes] == [(h.start, h.end) for h in plan.holes]  # none lost
    assert all(positions(p) <= ROOM for p in fitted.parts)
    sizes = [len(p.holes) for p in fitted.parts]
    assert max(sizes) >= 2 and sizes.count(1) == len(sizes) - 1  # the longest run shares one, the others go alone


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
    assert [(h.start, h.end) for h in plan.holes] == every[: fill.MAX_PLACEHOLDERS]


def test_parts_are_denoised_in_turn_as_if_alone_and_stream_over_the_whole_span():
    """Each part's fills are what that canvas gives on its own (the shipped model, greedy); every partial shows the
    whole span: the parts done with their fills, the one running with its masks, the rest as the document has it."""
    from engine.backend import EmbeddedBackend
    from server.config import Settings

    backend = EmbeddedBackend(threads=1)
    cfg = Settings().sampler(backend=backend)
    far = "".join(f"    total = total + weights[{j}] * values[{j}]\n" for j in range(10))
    text = (f"def mean(values):\n    ...\n\n\ndef weighted(values, weights):\n    total = 0\n{far}    return total\n"
            "\n\ndef spread(values):\n    ...\n")
    plan = fill.fit(fill.plan_ranges(text, None, "python", backend.tokenizer, 384, 256), backend.tokenizer, ROOM)
    assert [len(p.holes) for p in plan.parts] == [1, 1]
    partials: list[fill.Partial] = []
    out = fill.run(backend, plan, cfg, session="parts", on_partial=partials.append)
    alone = [fill.run(backend, p, cfg, session="alone") for p in plan.parts]
    assert out.fills == [o.fills[0] for o in alone]
    assert out.stats.nfe == sum(o.stats.nfe for o in alone)
    start, end = plan.span
    assert out.text == out.fills[0] + text[plan.holes[0].end : plan.holes[1].start] + out.fills[1]
    assert partials and all(p.text.endswith(text[plan.holes[1].end : end]) for p in partials)
    first = [p for p in partials if p.text.endswith(text[plan.holes[0].end : end])]  # the first canvas running
    second = partials[len(first):]
    assert first and second and all(p.text.startswith(alone[0].fills[0]) for p in second)
    for p in partials:
        assert all(set(p.text[a:b]) == {fill.PLACEHOLDER} for a, b in p.masks)
    assert [p.nfe for p in partials] == sorted(p.nfe for p in partials)  # counted over the request


def test_a_rewrite_that_did_not_end_is_refused():
    """From a trial: a rewrite of a function body stopped where it began repeating itself, `return list(data.keys()) -
    set`, parsed and was offered; an answer the sampler stopped is no answer for the code it would replace."""
    from engine.sampler import SampleStats

    text = "def order(data):\n    result = []\n    result.extend(toposort(data))\n    return result\n"
    start, end = text.index("    result = []"), len(text) - 1
    plan = fill.plan_rewrite(text, start, end, "python", TOK, 384, 256, "regenerate")
    stopped = "    return list(data.keys()) - set"
    for cut, why in (("repetition", "it began repeating itself"),
                     ("limit", "the model was still writing at its limit")):
        out = fill._outcome(plan, [stopped], SampleStats(cut=cut))
        assert out.fills == [text[start:end]] and out.reasons == [f"the answer did not end: {why}"]
    assert fill._outcome(plan, [stopped], SampleStats()).reasons == [None]  # ended by the model: the guard's to judge
    cursor = fill.plan_cursor(text, end, "python", TOK, 384, 16)
    assert fill._outcome(cursor, ["  # done"], SampleStats(cut="limit")).reasons == [None]  # a completion may stop


def test_a_word_the_suggestion_list_chose_is_judged_as_the_answers():
    """From a VS Code re-check: with the suggestion list open on `default` (a parameter of another method only) where
    the user had typed `def`, the server completed the list's word with `)`. The guard took `default` as typed by the
    user, so theirs to define; the list offers any word of the file, whatever its scope."""
    from engine.sampler import SampleStats

    typed = ("class M(dict):\n    def get(self, k, default=None):\n        return default\n\n"
             "    def copy(self):\n        return type(self).fromDict(self, def\n")
    at = typed.index("self, def") + len("self, def")
    chosen = typed[:at] + "ault" + typed[at:]  # the list's item `default` in place of the typed `def`
    given = fill.plan_cursor(chosen, at + 4, "python", TOK, 384, 16, given=4)
    out = fill._outcome(given, [")"], SampleStats())
    assert out.fills == [""] and out.reasons == \
        ["the answer uses `default`, which is not defined where it is used (only in another scope)"]
    typed_whole = fill.plan_cursor(chosen, at + 4, "python", TOK, 384, 16)  # typed by the user: theirs
    assert fill._outcome(typed_whole, [")"], SampleStats()).reasons == [None]
    ok = chosen.replace("fromDict(self, default\n", "fromDict(self, default=None\n").replace(
        "    def copy(self):\n", "    def copy(self, default=None):\n")
    at = ok.index("self, default=None\n") + len("self, default")
    plan = fill.plan_cursor(ok[:at] + ok[at + len("=None"):], at, "python", TOK, 384, 16, given=4)
    assert fill._outcome(plan, [")"], SampleStats()).fills == [")"]  # in scope: shown, the list's word not repeated
