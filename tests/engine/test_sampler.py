"""The denoising loop: fixed tokens stay, step limits hold, seeds repeat, cancellation is prompt, nfe is exact."""

from __future__ import annotations

import math
import threading
from dataclasses import replace

import pytest
import torch

from engine.backend import EmbeddedBackend
from engine.sampler import (
    STRATEGIES,
    Cancelled,
    CanvasSpec,
    SamplerConfig,
    denoise_stream,
    fill,
    first_sizes,
    repeated_tail,
)


class CountingBackend:
    """The real embedded backend, counting forwards and optionally steering the logits (pad at chosen slots)."""

    def __init__(self, inner: EmbeddedBackend, pad_from: int | None = None):
        self.inner = inner
        self.forwards = 0
        self.pad_from = pad_from

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def denoise(self, handle, canvas_ids, exact=False):
        self.forwards += 1
        logits = self.inner.denoise(handle, canvas_ids, exact)
        if self.pad_from is not None:  # make pad the most likely token from this slot on
            logits[:, self.pad_from:, self.inner.special.pad] = 1e4
        return logits


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    return EmbeddedBackend(tiny_model_dir, exact_batches=True)  # the lossless tests check batches exactly


@pytest.fixture()
def ctx(backend):
    tok = backend.tokenizer
    sp = tok.special
    return [sp.fim_suffix] + tok.encode("\n    return y\n") + [sp.fim_prefix] + tok.encode("def f(x):\n    y = ") + [
        sp.fim_middle]


def run(backend, ctx, spec, cfg, cancel=None):
    states = []
    gen = denoise_stream(backend, backend.prefill(ctx, "t"), spec, cfg, cancel)
    try:
        while True:
            states.append(next(gen))
    except StopIteration as stop:
        return states, stop.value


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_finalizes_at_least_one_per_step_and_ends_in_the_limit(backend, ctx, strategy):
    cfg = SamplerConfig(strategy=strategy, steps=6, block_size=12, max_new=12, grow=False, remask_threshold=0,
                        start=0)
    counting = CountingBackend(backend)
    states, stats = run(counting, ctx, CanvasSpec.single(12, backend.special.mask), cfg)
    masked = [sum(s.masked) for s in states[:-1]]
    assert all(b < a for a, b in zip([12] + masked, masked)), masked  # >= 1 finalized per forward
    assert stats.nfe == counting.forwards == len(states) - 1 <= 6
    assert states[-1].done and not any(states[-1].masked)


def test_fixed_slots_never_change(backend, ctx):
    sp = backend.special
    tok = backend.tokenizer
    mid = tok.encode(" + 1\n    z = ")
    slots = [sp.mask] * 5 + mid + [sp.mask] * 5
    fixed = [False] * 5 + [True] * len(mid) + [False] * 5
    spec = CanvasSpec(slots, fixed, holes=[(0, 5), (5 + len(mid), 10 + len(mid))])
    states, _ = run(backend, ctx, spec, SamplerConfig(steps=4))
    for s in states:
        assert s.ids[5:5 + len(mid)] == mid


def test_same_seed_same_result_and_temperature_sampling_is_seeded(backend, ctx):
    spec = lambda: CanvasSpec.single(10, backend.special.mask)  # noqa: E731
    for cfg in (SamplerConfig(max_new=10, grow=False), SamplerConfig(max_new=10, grow=False, temperature=1.0, seed=7)):
        a, _, _ = fill(backend, ctx, spec(), cfg, session="a")
        b, _, _ = fill(backend, ctx, spec(), cfg, session="b")
        assert a == b


@pytest.mark.parametrize("strategy", ["confidence", "lossless"])
def test_cancellation_stops_within_one_forward(backend, ctx, strategy):
    counting = CountingBackend(backend)
    cancel = threading.Event()
    cfg = SamplerConfig(strategy="confidence", k=1, steps=64, block_size=32, max_new=32, grow=False)
    if strategy == "lossless":  # between its batched forwards too
        _, cfg = one_per_forward_and_lossless(SamplerConfig(block_size=32, max_new=32, grow=False))
    gen = denoise_stream(counting, counting.prefill(ctx, "c"), CanvasSpec.single(32, backend.special.mask), cfg, cancel)
    next(gen)
    next(gen)
    cancel.set()
    with pytest.raises(Cancelled):
        next(gen)
    assert counting.forwards == 2


def test_pads_grow_only_from_the_right_end_and_are_trimmed(backend, ctx):
    counting = CountingBackend(backend, pad_from=6)
    cfg = SamplerConfig(strategy="threshold", threshold=0.5, block_size=16, max_new=64)
    states, stats = run(counting, ctx, CanvasSpec.single(16, backend.special.mask), cfg)
    sp = backend.special
    for s in states[:-1]:
        ids = [i for i, m in zip(s.ids, s.masked) if not m]
        if sp.pad in ids:  # once a pad is decided, nothing decided after it is text
            first = s.ids.index(sp.pad)
            assert all(t == sp.pad for t, m in zip(s.ids[first:], s.masked[first:]) if not m)
    assert len(states[-1].ids) == 6 and sp.pad not in states[-1].ids
    assert stats.tokens == 6 and stats.blocks == 1


def steered(backend, text: dict[int, list[int]], pad_from: int) -> CountingBackend:
    """Slots given one id (sure) or several ids (a tie, so unsure), and pads sure from `pad_from` on."""
    counting = CountingBackend(backend)

    def steer(handle, canvas_ids, exact=False, _inner=counting.denoise):
        logits = _inner(handle, canvas_ids, exact)
        for slot, ids in text.items():
            logits[:, slot, ids] = 1e4
        logits[:, pad_from:, backend.special.pad] = 1e4
        return logits

    counting.denoise = steer
    return counting


@pytest.mark.parametrize("end_threshold, forwards", [(0.9, 2), (0.0, 3)])
def test_a_sure_end_is_decided_with_the_text_that_completes_it(backend, ctx, end_threshold, forwards):
    """Slot 1 is sure (forward 1), slot 0 a tie (forward 2); the pads after slot 1, sure all along, are decided in
    forward 2 with slot 0, instead of a third forward of their own (end_threshold 0)."""
    x, y, z = (backend.tokenizer.encode(c)[0] for c in "xyz")
    counting = steered(backend, {0: [x, y], 1: [z]}, pad_from=2)
    cfg = SamplerConfig(block_size=6, max_new=6, grow=False, start=0, end_threshold=end_threshold)
    states, stats = run(counting, ctx, CanvasSpec.single(6, backend.special.mask), cfg)
    assert states[0].masked == [True, False, True, True, True, True]
    assert stats.nfe == counting.forwards == forwards
    assert states[-1].ids[1] == z and states[-1].ids[0] in (x, y) and len(states[-1].ids) == 2


def test_the_end_is_not_decided_beside_text_decided_in_the_same_forward(backend, ctx):
    """Both text slots are sure at forward 1: the pads after them wait for a forward that sees that text."""
    x, z = (backend.tokenizer.encode(c)[0] for c in "xz")
    counting = steered(backend, {0: [x], 1: [z]}, pad_from=2)
    cfg = SamplerConfig(block_size=6, max_new=6, grow=False, start=0)
    states, stats = run(counting, ctx, CanvasSpec.single(6, backend.special.mask), cfg)
    assert states[0].masked == [False, False, True, True, True, True]
    assert stats.nfe == 2 and states[-1].ids == [x, z]


def test_one_per_forward_never_decides_the_end_with_the_text():
    from infill.evaluate import one_per_forward

    assert one_per_forward().end_threshold == 0 and SamplerConfig().end_threshold > 0


def test_pad_is_never_finalized_inside_the_text(backend, ctx):
    counting = CountingBackend(backend)

    def steer(handle, canvas_ids, exact=False, _inner=counting.denoise):
        logits = _inner(handle, canvas_ids, exact)
        logits[:, 2, backend.special.pad] = 1e4  # the model "wants" a pad in the middle of the text
        return logits

    counting.denoise = steer
    cfg = SamplerConfig(block_size=8, max_new=8, grow=False)
    states, _ = run(counting, ctx, CanvasSpec.single(8, backend.special.mask), cfg)
    for s in states:  # slot 2 never becomes a pad: text (slots 3..7) follows it
        assert s.masked[2] or s.ids[2] != backend.special.pad
    assert len(states[-1].ids) == 8 and backend.special.pad not in states[-1].ids


def test_block_autoregressive_growth_commits_blocks(backend, ctx):
    counting = CountingBackend(backend)
    cfg = SamplerConfig(block_size=8, max_new=20, steps=4, repeat_rounds=0)  # the random model repeats one token
    states, stats = run(counting, ctx, CanvasSpec.single(8, backend.special.mask), cfg)
    assert stats.cut == "limit"
    assert stats.blocks == 3 and len(states[-1].ids) == 20  # 8 + 8 + 4: grew past its capacity to max_new
    blocks = [s.block for s in states[:-1]]
    assert blocks == sorted(blocks)
    # earlier blocks stay as committed while later ones denoise
    first_block = states[-1].ids[:8]
    assert all(s.ids[:8] == first_block for s in states[:-1] if s.block >= 1)


def test_first_canvas_sizes_start_small_and_double():
    cfg = SamplerConfig(start=8, block_size=32, max_new=256)
    assert first_sizes(48, cfg) == [8, 16, 32]  # then block-autoregressive growth, as before
    assert first_sizes(4, cfg) == [4, 8, 16, 32]  # a capacity below start is the first size; growth may go past it
    assert first_sizes(12, replace(cfg, grow=False)) == [8, 12]  # without growth the capacity is the ceiling
    assert first_sizes(48, replace(cfg, start=0)) == [32]  # start 0: the sized capacity's first block
    assert first_sizes(48, replace(cfg, max_new=5)) == [5]
    with pytest.raises(ValueError, match="start"):
        SamplerConfig(start=-1)


def test_a_first_canvas_written_to_its_last_slot_is_denoised_again_twice_as_large(backend, ctx):
    counting = CountingBackend(backend)

    def no_pad(handle, canvas_ids, exact=False, _inner=counting.denoise):
        logits = _inner(handle, canvas_ids, exact)
        logits[:, :, backend.special.pad] = -1e4  # the model never wants to end here
        return logits

    counting.denoise = no_pad
    cfg = SamplerConfig(strategy="confidence", k=4, steps=64, start=4, block_size=16, max_new=24, repeat_rounds=0)
    states, stats = run(counting, ctx, CanvasSpec.single(40, backend.special.mask), cfg)
    sizes = [len(s.ids) for s in states[:-1] if s.block == 0]
    assert sizes == sorted(sizes) and {4, 8, 16} == set(sizes)  # 4, then 8, then the full block
    assert stats.restarts == 2 and stats.blocks == 2  # the 16-slot block, then 8 grown slots up to max_new
    assert len(states[-1].ids) == 24 and stats.nfe == counting.forwards


def test_a_first_canvas_is_given_up_at_the_first_forward_that_puts_text_in_its_last_slots(backend, ctx):
    counting = CountingBackend(backend)
    word = backend.tokenizer.encode(" x")[0]

    def sure_of_the_last_slot(handle, canvas_ids, exact=False, _inner=counting.denoise):
        logits = _inner(handle, canvas_ids, exact)
        logits[:, -1, word] = 1e4  # text in the last slot, so sure it is finalized first
        return logits

    counting.denoise = sure_of_the_last_slot
    cfg = SamplerConfig(strategy="confidence", k=1, steps=64, start=8, block_size=16, max_new=16, grow=False)
    states, stats = run(counting, ctx, CanvasSpec.single(16, backend.special.mask), cfg)
    assert [len(s.ids) for s in states[:-1]].count(8) == 1  # one forward on the 8-slot canvas, then 16 slots
    # the text the 8-slot canvas wrote (its last slot) starts decided in the 16-slot one: 15 slots left to denoise
    first16 = next(s for s in states if len(s.ids) == 16)
    assert first16.ids[7] == word and not first16.masked[7] and sum(first16.masked) == 16 - 2
    assert stats.restarts == 1 and stats.nfe == counting.forwards == 1 + 15
    assert len(states[-1].ids) == 16 and states[-1].ids[7] == states[-1].ids[-1] == word


def test_a_first_canvas_the_model_ends_early_is_kept(backend, ctx):
    counting = CountingBackend(backend, pad_from=3)
    cfg = SamplerConfig(start=8, block_size=32, max_new=64)
    states, stats = run(counting, ctx, CanvasSpec.single(48, backend.special.mask), cfg)
    assert stats.restarts == 0 and all(len(s.ids) == 8 for s in states[:-1])
    assert len(states[-1].ids) == 3


def test_a_limited_slot_takes_only_its_allowed_ids_on_every_first_canvas(backend, ctx):
    counting = CountingBackend(backend)
    tok = backend.tokenizer
    allowed = tok.starting_with(" ret")
    best = tok.encode(" x")[0]

    def want_x(handle, canvas_ids, exact=False, _inner=counting.denoise):
        logits = _inner(handle, canvas_ids, exact)
        logits[:, :, best] = 1e4  # every slot, the first included, "wants" " x"; nothing wants to end
        logits[:, :, backend.special.pad] = -1e4
        return logits

    counting.denoise = want_x
    cfg = SamplerConfig(start=4, block_size=8, max_new=12)
    states, stats = run(counting, ctx, CanvasSpec.single(12, backend.special.mask, {0: allowed}), cfg)
    assert stats.restarts >= 1  # the constraint holds on the 4-slot canvas and on the larger ones after it
    for s in states:
        assert s.masked[0] or s.ids[0] in allowed
    first = next(s for s in states if s.step == 1)  # the first forward decides the limited slot, and only it (the
    assert not first.masked[0] and all(first.masked[1:]), first  # others are predicted once it is known); larger
    assert all(s.ids[0] == first.ids[0] for s in states)  # canvases start with it, as they start with all its text
    assert states[-1].ids[0] in allowed and states[-1].ids[1:] == [best] * 11  # the next block is not limited
    plain, _ = run(backend, ctx, CanvasSpec.single(6, backend.special.mask, {0: [], 99: [best]}), cfg)
    assert plain[-1].ids == run(backend, ctx, CanvasSpec.single(6, backend.special.mask), cfg)[0][-1].ids


def test_the_default_never_renoises_a_decided_slot(backend, ctx):
    a, b = backend.tokenizer.encode(" x")[0], backend.tokenizer.encode(" y")[0]

    def flipping() -> CountingBackend:  # slot 0's best token flips between " x" and " y" at every forward
        counting = CountingBackend(backend)

        def flip(handle, canvas_ids, exact=False, _inner=counting.denoise):
            logits = _inner(handle, canvas_ids, exact)
            logits[:, 0, a if counting.forwards % 2 else b] = 1e4
            return logits

        counting.denoise = flip
        return counting

    spec = CanvasSpec.single(6, backend.special.mask)
    _, stats = run(flipping(), ctx, spec, SamplerConfig(max_new=6, start=0))
    assert SamplerConfig().remask_threshold == 0 and stats.remasked == 0
    _, stats = run(flipping(), ctx, spec, SamplerConfig(max_new=6, start=0, remask_threshold=0.5))
    assert stats.remasked >= 1  # with self-correction on, the flipped slot is re-noised


def test_self_correction_is_bounded(backend, ctx):
    cfg = SamplerConfig(strategy="confidence", k=1, steps=30, remask_threshold=1.0, max_remask=3, max_new=12,
                        grow=False)
    states, stats = run(backend, ctx, CanvasSpec.single(12, backend.special.mask), cfg)
    assert stats.remasked <= 3
    assert states[-1].done


def test_refine_mode_renoises_unlikely_tokens_only(backend, ctx):
    tok = backend.tokenizer
    given = tok.encode("x + 1")
    spec = CanvasSpec(list(given), [False] * len(given), [(0, len(given))], decided=[True] * len(given))
    cfg = SamplerConfig(refine_threshold=0.0, max_new=len(given))  # nothing is unlikely enough: text kept as is
    states, stats = run(backend, ctx, spec, cfg)
    assert states[-1].ids == given and stats.remasked == 0


def test_uniform_noise_runs(backend, ctx):
    cfg = SamplerConfig(noise="uniform", strategy="eb", max_new=8, grow=False)
    states, stats = run(backend, ctx, CanvasSpec.single(8, backend.special.mask), cfg)
    assert states[-1].done and stats.nfe >= 1


def test_bad_sampler_config_is_rejected():
    with pytest.raises(ValueError, match="strategy"):
        SamplerConfig(strategy="nope")
    with pytest.raises(ValueError, match="noise"):
        SamplerConfig(noise="gaussian")
    with pytest.raises(ValueError):
        SamplerConfig(steps=0)
    with pytest.raises(ValueError, match="end_threshold"):
        SamplerConfig(end_threshold=1.5)


def test_autoregressive_baseline_counts_one_forward_per_token(backend, ctx):
    from engine.sampler import autoregressive

    out, stats = autoregressive(backend, ctx, 7)
    assert len(out) <= 7 and stats.nfe == len(out) + (len(out) < 7)
    assert torch.is_tensor(backend.next_token_logits(backend.prefill(ctx, "ar")))


def test_verify_gives_the_next_token_logits_after_every_committed_token(backend, ctx):
    ids = backend.tokenizer.encode("x + 1")
    h, logits = backend.verify(backend.prefill(ctx, "v"), ids)
    assert logits.shape == (len(ids), backend.tokenizer.vocab_size) and h.length == len(ctx) + len(ids)
    # inference only: no graph for a backward is kept behind the head's logits
    assert not logits.requires_grad and not backend.next_token_logits(h).requires_grad
    one = backend.prefill(ctx, "one")
    for i, t in enumerate(ids):  # one token at a time through the cache: the same logits
        one = backend.commit(one, [t])
        assert torch.allclose(backend.next_token_logits(one), logits[i], atol=1e-4)


class OracleDrafter:
    """The real backend, but its canvas predicts the given text: every draft is what the next-token head says."""

    def __init__(self, inner: EmbeddedBackend, text: list[int], prompt_len: int):
        self.inner, self.text, self.prompt_len = inner, text, prompt_len

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def denoise(self, handle, canvas_ids, exact=False):
        logits = self.inner.denoise(handle, canvas_ids, exact)
        at = handle.length - self.prompt_len  # tokens of the text already in the cache
        for j in range(canvas_ids.shape[1]):
            want = self.text[at + j] if at + j < len(self.text) else self.inner.special.pad
            logits[0, j, want] = 1e4
        return logits


def test_speculative_decoding_is_the_autoregressive_text_in_fewer_forwards_when_drafts_are_right(backend, ctx):
    from engine.sampler import autoregressive, speculative

    ar, ar_stats = autoregressive(backend, ctx, 24)
    spec, stats = speculative(backend, ctx, 24, draft=8)  # a random model: drafts mostly rejected, same text
    assert spec == ar and stats.tokens == len(ar)
    right, fast = speculative(OracleDrafter(backend, ar, len(ctx)), ctx, 24, draft=8)
    assert right == ar
    assert fast.finalized == len(ar) - fast.blocks  # every drafted token kept: all but each round's head token
    assert fast.nfe == 2 * fast.blocks < ar_stats.nfe
    short, _ = speculative(backend, ctx, 5, draft=8)
    assert short == ar[:5]


def test_repeated_tail_cuts_a_loop_after_its_first_round_and_leaves_code_alone():
    loop = [7, 8, 9, 10]
    assert repeated_tail([1, 2, 3] + loop * 4) == 3 + 4  # the text before the loop and one round
    assert repeated_tail([1, 2, 3] + loop * 2) is None  # two rounds: a pattern, not yet a loop
    assert repeated_tail([5, 6] + [0, 1] * 3) is None  # "0, 0, 0": three short rounds are code
    assert repeated_tail([5] + [4] * 12) == 2
    assert repeated_tail(list(range(40))) is None and repeated_tail([]) is None


def test_a_growing_fill_that_loops_is_cut_and_one_past_its_limit_stops(backend, ctx):
    def looping(period):  # the model writes the same `period` tokens over and over and never ends
        counting = CountingBackend(backend)

        def steer(handle, canvas_ids, exact=False, _inner=counting.denoise):
            logits = _inner(handle, canvas_ids, exact)
            logits[:, :, backend.special.pad] = -1e4
            pos = torch.arange(logits.shape[1]) + sum(len(x) for x in committed)
            logits[0, torch.arange(logits.shape[1]), 300 + pos % period] = 1e4
            return logits

        committed: list[list[int]] = []
        commit = counting.commit

        def remember(handle, ids):
            committed.append(list(ids))
            return commit(handle, ids)

        counting.denoise, counting.commit = steer, remember
        return counting

    cfg = SamplerConfig(block_size=8, max_new=64, start=0)
    states, stats = run(looping(3), ctx, CanvasSpec.single(8, backend.special.mask), cfg)
    assert stats.cut == "repetition" and states[-1].ids == [300, 301, 302]
    states, stats = run(looping(64), ctx, CanvasSpec.single(8, backend.special.mask, limit=20), cfg)
    assert stats.cut == "limit" and len(states[-1].ids) == 20  # the hole's limit, not max_new (64)


# ---- lossless speculative denoising: one token per forward's steps, several checked per (batched) forward ----------

def one_per_forward_and_lossless(cfg: SamplerConfig, draft: int = 4) -> tuple[SamplerConfig, SamplerConfig]:
    from infill.evaluate import one_per_forward

    one = one_per_forward(cfg, exact=True)
    return one, replace(one, strategy="lossless", draft=draft)


def assert_lossless(make_backend, ctx, make_spec, cfg: SamplerConfig, draft: int = 4):
    """Both decodings of the same canvas: the same result, blocks, restarts and cut; lossless takes one-per-forward's
    steps (every canvas it shows is one that one-per-forward shows, in order) in at most as many forwards."""
    one, fast = one_per_forward_and_lossless(cfg, draft)
    a, b = make_backend(), make_backend()
    ref, ref_stats = run(a, ctx, make_spec(), one)
    got, stats = run(b, ctx, make_spec(), fast)
    assert got[-1].ids == ref[-1].ids
    assert (stats.blocks, stats.restarts, stats.cut) == (ref_stats.blocks, ref_stats.restarts, ref_stats.cut)
    assert stats.steps == ref_stats.steps == ref_stats.nfe and stats.finalized == ref_stats.finalized
    assert stats.nfe == b.forwards <= ref_stats.nfe == a.forwards
    shown = [(s.ids, s.masked, s.block) for s in ref[:-1]]
    at = 0
    for s in got[:-1]:
        at = shown.index((s.ids, s.masked, s.block), at) + 1  # ValueError: a canvas one per forward never shows
    assert ref_stats.canvases == ref_stats.nfe and stats.nfe <= stats.canvases <= draft * stats.nfe
    return stats, ref_stats


def left_to_right(backend, n_text: int, tokens: list[int], head: bool = False) -> CountingBackend:
    """A model sure of `n_text` tokens, less sure slot by slot from the left, then pads: its order never changes, so
    every drafted step is right; with `head`, its next-token head is sure of the first token too."""
    counting = CountingBackend(backend)

    def steer(handle, canvas_ids, exact=False, _inner=counting.denoise):
        logits = _inner(handle, canvas_ids, exact)
        for j in range(logits.shape[1]):
            logits[:, j, tokens[j % len(tokens)] if j < n_text else backend.special.pad] = 12.0 - j
        return logits

    def next_token(handle):
        logits = backend.next_token_logits(handle).clone()  # (V,)
        if head:
            logits[tokens[0]] = 1e4
        return logits

    counting.denoise, counting.next_token_logits = steer, next_token
    return counting


@pytest.mark.parametrize("head", [False, True])
def test_lossless_takes_a_whole_draft_per_forward_when_every_draft_is_right(backend, ctx, head):
    tokens = [backend.tokenizer.encode(c)[0] for c in "abcde"]
    cfg = SamplerConfig(block_size=8, max_new=8, grow=False, start=0)
    stats, ref = assert_lossless(lambda: left_to_right(backend, 5, tokens, head), ctx,
                                 lambda: CanvasSpec.single(8, backend.special.mask), cfg)
    assert ref.nfe == 6  # five text slots, then the end (three pads) in a forward of its own
    if head:  # the head's guess of slot 0 is right: the first forward takes slots 0 and 1, the next slots 2-4 and
        assert stats.nfe == 2 and stats.canvases == 2 + 4  # the end
    else:  # slot 0 (the head's guess, wrong, is checked too); slots 1-4 (four canvases); the end
        assert stats.nfe == 3 and stats.canvases == 2 + 4 + 1


@pytest.mark.parametrize("draft", [1, 2, 3, 8])
def test_lossless_ties_between_slots_and_tokens_resolve_as_one_per_forward(backend, ctx, draft):
    x, y, z = (backend.tokenizer.encode(c)[0] for c in "xyz")
    cfg = SamplerConfig(block_size=8, max_new=8, grow=False, start=0)
    stats, _ = assert_lossless(lambda: steered(backend, {0: [x, y], 1: [z], 2: [z], 3: [y]}, pad_from=4), ctx,
                               lambda: CanvasSpec.single(8, backend.special.mask), cfg, draft)
    if draft == 1:
        assert stats.canvases == stats.nfe == stats.steps


def test_lossless_decides_pads_only_at_the_end_as_one_per_forward(backend, ctx):
    assert_lossless(lambda: CountingBackend(backend, pad_from=6), ctx,
                    lambda: CanvasSpec.single(16, backend.special.mask), SamplerConfig(block_size=16, max_new=16))


def test_lossless_grows_block_by_block_and_restarts_first_canvases_as_one_per_forward(backend, ctx):
    cfg = SamplerConfig(block_size=8, max_new=20, start=0, repeat_rounds=0)
    stats, _ = assert_lossless(lambda: CountingBackend(backend), ctx,
                               lambda: CanvasSpec.single(8, backend.special.mask), cfg)
    assert stats.blocks == 3 and stats.cut == "limit"

    def no_end():
        counting = CountingBackend(backend)

        def steer(handle, canvas_ids, exact=False, _inner=counting.denoise):
            logits = _inner(handle, canvas_ids, exact)
            logits[:, :, backend.special.pad] = -1e4  # the model never wants to end: every first canvas is too small
            return logits

        counting.denoise = steer
        return counting

    cfg = SamplerConfig(start=4, block_size=16, max_new=24, repeat_rounds=0)
    stats, _ = assert_lossless(no_end, ctx, lambda: CanvasSpec.single(40, backend.special.mask), cfg)
    assert stats.restarts == 2 and stats.blocks == 2


def test_lossless_keeps_token_healings_allowed_first_slot(backend, ctx):
    allowed = backend.tokenizer.starting_with(" ret")
    best = backend.tokenizer.encode(" x")[0]

    def want_x():
        counting = CountingBackend(backend)

        def steer(handle, canvas_ids, exact=False, _inner=counting.denoise):
            logits = _inner(handle, canvas_ids, exact)
            logits[:, :, best] += 5.0  # every slot, the first included, leans to " x"
            return logits

        counting.denoise = steer
        return counting

    cfg = SamplerConfig(start=4, block_size=8, max_new=12)
    assert_lossless(want_x, ctx, lambda: CanvasSpec.single(12, backend.special.mask, {0: allowed}), cfg)


def test_lossless_renoises_and_refines_as_one_per_forward(backend, ctx):
    x, y, z = (backend.tokenizer.encode(c)[0] for c in "xyz")

    def second_thoughts():  # slot 0 is sure of " x" while slot 1 is open, and of " y" once slot 1 is decided
        counting = CountingBackend(backend)

        def steer(handle, canvas_ids, exact=False, _inner=counting.denoise):
            logits = _inner(handle, canvas_ids, exact)
            open_ = canvas_ids[:, 1] == backend.special.mask  # (B,)
            logits[:, 0, x] = torch.where(open_, 20.0, -20.0)
            logits[:, 0, y] = torch.where(open_, -20.0, 20.0)
            logits[:, 1, z] = 10.0
            return logits

        counting.denoise = steer
        return counting

    cfg = SamplerConfig(block_size=6, max_new=6, grow=False, start=0, remask_threshold=0.5, max_remask=3)
    stats, _ = assert_lossless(second_thoughts, ctx, lambda: CanvasSpec.single(6, backend.special.mask), cfg)
    assert stats.remasked == 1  # slot 0 re-noised once, the same step as one per forward
    given = backend.tokenizer.encode("x + 1 if y else z")
    spec = lambda: CanvasSpec(list(given), [False] * len(given), [(0, len(given))],  # noqa: E731
                              decided=[True] * len(given))
    assert_lossless(lambda: CountingBackend(backend), ctx, spec, replace(cfg, refine_threshold=0.5))


def test_lossless_runs_one_canvas_per_forward_where_batches_are_not_exact(backend, ctx):
    from engine.backend import Capabilities

    class Stateful(CountingBackend):  # e.g. self-conditioning: a forward depends on the one before
        capabilities = Capabilities(streams=True, instructions=False, mask_token=True, native_infill=True)

    stats, ref = assert_lossless(lambda: Stateful(backend), ctx, lambda: CanvasSpec.single(8, backend.special.mask),
                                 SamplerConfig(block_size=8, max_new=8, grow=False, start=0))
    assert stats.nfe == stats.canvases == ref.nfe


def test_lossless_config_is_greedy_and_one_token_a_step():
    with pytest.raises(ValueError, match="lossless"):
        SamplerConfig(strategy="lossless", temperature=0.5)
    with pytest.raises(ValueError, match="lossless"):
        SamplerConfig(strategy="lossless", k=2)
    with pytest.raises(ValueError, match="draft"):
        SamplerConfig(strategy="lossless", draft=0)


def scripted(backend, script):
    """A backend whose every forward says the same of each slot: script(C)[i] = (token, p) puts p on that token and
    the rest on another word; the slots past the script are sure pads."""
    counting = CountingBackend(backend)
    pad, other = backend.special.pad, backend.tokenizer.encode(" y")[0]

    def denoise(handle, canvas_ids, exact=False, _inner=counting.denoise):
        logits = _inner(handle, canvas_ids, exact)  # (B, C, V)
        logits[:] = -1e4
        logits[:, :, pad] = 0.0
        for i, (token, p) in enumerate(script(canvas_ids.shape[1])):
            logits[:, i, pad] = -1e4
            logits[:, i, token], logits[:, i, other] = math.log(p), math.log(1 - p)
        return logits

    counting.denoise = denoise
    return counting


def test_min_confidence_is_the_least_sure_text_token_of_the_result(backend, ctx):
    a, b, c = (backend.tokenizer.encode(w)[0] for w in (" a", " b", " c"))
    sure = scripted(backend, lambda C: [(a, 0.95), (b, 0.6), (c, 0.99)])
    cfg = SamplerConfig(start=0, grow=False, block_size=8, max_new=8)
    states, stats = run(sure, ctx, CanvasSpec.single(8, backend.special.mask), cfg)
    assert states[-1].ids[:3] == [a, b, c]
    assert stats.min_confidence == pytest.approx(0.6, abs=1e-3)
    _, stats = run(scripted(backend, lambda C: []), ctx, CanvasSpec.single(8, backend.special.mask), cfg)
    assert stats.tokens == 0 and stats.min_confidence is None  # no text: nothing to be unsure of


def test_a_larger_canvas_starts_with_the_text_the_smaller_one_wrote_and_its_confidence(backend, ctx):
    a = backend.tokenizer.encode(" a")[0]
    # the 4-slot canvas: text, less sure from left to right (given up when slot 2 holds text); the 8-slot one: text
    # at 0.9 in six slots, then the end
    s = scripted(backend, lambda C: [(a, 0.7), (a, 0.65), (a, 0.6), (a, 0.55)] if C == 4 else [(a, 0.9)] * 6)
    cfg = SamplerConfig(strategy="confidence", k=1, steps=64, start=4, block_size=8, max_new=8)
    states, stats = run(s, ctx, CanvasSpec.single(8, backend.special.mask), cfg)
    first8 = next(st for st in states if len(st.ids) == 8)
    assert first8.masked[:3] == [False] * 3  # slots 0-2, written on the 4-slot canvas, were not denoised again
    assert stats.restarts == 1 and states[-1].ids == [a] * 6
    assert stats.nfe == 3 + 3  # three forwards on 4 slots, three for the rest (the end decided with the last text)
    assert stats.min_confidence == pytest.approx(0.6, abs=1e-3)  # the carried text is the result's: its doubt counts


def test_a_larger_canvas_does_not_start_with_the_end_the_smaller_one_decided(backend, ctx):
    a = backend.tokenizer.encode(" a")[0]
    # the 4-slot canvas, every slot at least 0.1 sure decided at once: text in slots 0-2 and its end in slot 3; its
    # text reached its last two slots, so it is given up, and the 8-slot canvas writes five slots of text
    s = scripted(backend, lambda C: [(a, 0.99)] * (3 if C == 4 else 5))
    cfg = SamplerConfig(strategy="threshold", threshold=0.1, start=4, block_size=8, max_new=8)
    states, stats = run(s, ctx, CanvasSpec.single(8, backend.special.mask), cfg)
    assert states[0].ids[3] == backend.special.pad and not states[0].masked[3]
    assert stats.restarts == 1 and states[-1].ids == [a] * 5  # no end carried into slot 3




def test_stop_below_gives_a_fill_up_at_its_first_unsure_token(backend, ctx):
    """A fill the caller will refuse as unsure (SamplerConfig.stop_below) ends at the forward that finalizes its unsure
    token, with no text and cut "unsure"; a stop_below under every token's confidence changes nothing."""
    a, b, c = (backend.tokenizer.encode(w)[0] for w in (" a", " b", " c"))
    script = lambda C: [(a, 0.95), (b, 0.55), (c, 0.99)]  # noqa: E731  (one a forward: c, a, b, then the end)
    cfg = SamplerConfig(strategy="confidence", k=1, steps=64, start=0, grow=False, block_size=8, max_new=8,
                        end_threshold=0)
    full, full_stats = run(scripted(backend, script), ctx, CanvasSpec.single(8, backend.special.mask), cfg)
    assert full[-1].ids == [a, b, c] and full_stats.cut == ""
    states, stats = run(scripted(backend, script), ctx, CanvasSpec.single(8, backend.special.mask),
                        replace(cfg, stop_below=0.6))
    assert states[-1].done and states[-1].ids == [] and stats.cut == "unsure" and stats.tokens == 0
    assert stats.min_confidence == pytest.approx(0.55, abs=1e-3)
    assert stats.nfe == 3 < full_stats.nfe  # b was the third token decided; the end took a forward of its own
    _, low = run(scripted(backend, script), ctx, CanvasSpec.single(8, backend.special.mask),
                 replace(cfg, stop_below=0.5))
    assert low.cut == "" and low.nfe == full_stats.nfe


def test_stop_below_is_for_a_cursor_fill_only(backend, ctx):
    """Several holes (or a rewrite) end with every hole's text for the caller to split: they are never given up."""
    a, b = (backend.tokenizer.encode(w)[0] for w in (" a", " b"))
    two = lambda: CanvasSpec([backend.special.mask, a, backend.special.mask], [False, True, False],  # noqa: E731
                             [(0, 1), (2, 3)])
    cfg = SamplerConfig(start=0, grow=False, block_size=8, max_new=8)
    s = scripted(backend, lambda C: [(b, 0.55), (a, 0.99), (b, 0.55)])
    states, stats = run(s, ctx, two(), replace(cfg, stop_below=0.6))
    assert states[-1].ids == [b, a, b] and stats.cut == ""


def test_max_forwards_gives_up_a_fill_not_done_by_then(backend, ctx):
    """A cursor fill still masked after SamplerConfig.max_forwards forwards ends there with no text and cut
    "forwards"; one done within them is unchanged; several holes (or a rewrite) are never cut."""
    a, b, c = (backend.tokenizer.encode(w)[0] for w in (" a", " b", " c"))
    script = lambda C: [(a, 0.95), (b, 0.55), (c, 0.99)]  # noqa: E731  (one a forward: c, a, b, then the end)
    cfg = SamplerConfig(strategy="confidence", k=1, steps=64, start=0, grow=False, block_size=8, max_new=8,
                        end_threshold=0)
    full, full_stats = run(scripted(backend, script), ctx, CanvasSpec.single(8, backend.special.mask), cfg)
    assert full[-1].ids == [a, b, c] and full_stats.nfe == 4
    states, stats = run(scripted(backend, script), ctx, CanvasSpec.single(8, backend.special.mask),
                        replace(cfg, max_forwards=3))
    assert states[-1].done and states[-1].ids == [] and stats.cut == "forwards" and stats.nfe == 3
    assert stats.tokens == 0
    same, same_stats = run(scripted(backend, script), ctx, CanvasSpec.single(8, backend.special.mask),
                           replace(cfg, max_forwards=4))
    assert same[-1].ids == [a, b, c] and same_stats.cut == "" and same_stats.nfe == 4
    two = CanvasSpec([backend.special.mask, a, backend.special.mask], [False, True, False], [(0, 1), (2, 3)])
    states, stats = run(scripted(backend, lambda C: [(b, 0.55), (a, 0.99), (c, 0.6)]), ctx, two,
                        replace(cfg, max_forwards=1))
    assert states[-1].ids == [b, a, c] and stats.cut == "" and stats.nfe == 2
    with pytest.raises(ValueError, match="max_forwards"):
        SamplerConfig(max_forwards=-1)


def test_a_drafted_alternative_takes_the_ranked_slot_and_a_forced_step_has_none(backend):
    """tools/lossless_tree.py drafts trees with `rank`: the rank-th most confident slot instead of the first."""
    from engine.sampler import _Forecast, _Rules, _Slots, _step

    sp, V, C = backend.special, backend.tokenizer.vocab_size, 4
    word = backend.tokenizer.encode(" y")[0]
    probs = torch.full((C, V), 1e-6)
    for slot, p in enumerate((0.6, 0.3, 0.9, 0.5)):  # by confidence: slots 2, 0, 3, 1
        probs[slot, word] = p
    x0 = torch.full((C,), word)
    f = _Forecast(probs, x0, x0)
    cfg = SamplerConfig(strategy="lossless", k=1, end_threshold=0)
    banned = torch.tensor(sorted(sp.all - {sp.pad}))

    def taken(rank, allowed=None):
        rules = _Rules(sp, [(0, C)], torch.zeros(C, dtype=torch.bool), False, banned, allowed)
        rules.prepare(torch.log(probs).unsqueeze(0).clone())
        s = _Slots(torch.full((C,), sp.mask), torch.zeros(C, dtype=torch.bool), 0, 0, torch.zeros(C))
        return _step(cfg, rules, s, f, rank).decided.nonzero().flatten().tolist()

    assert [taken(r) for r in range(5)] == [[2], [0], [3], [1], [2]]  # past the candidates: the first again
    assert taken(1, allowed={1: [word]}) == [1]  # a limited slot is decided first, whatever the rank
