"""The masked-diffusion backend end to end on tiny random stand-ins (tests/backends/masked_standin.py): loading, the
mask/shift/special conventions, the `prefix [MASK]*n suffix` layout through server/fill, the dual cache against the
exact forward, fills through our sampler and server/fill.run.

DIFFUSION_LS_TEST_DEVICE=cuda runs the same tests on a GPU (they skip when none is there).
"""

from __future__ import annotations

import logging
import os
import threading
from types import SimpleNamespace

import pytest
import torch

from engine.backend import Backend, InfillBackend
from engine.model import ModelLoadError
from engine.sampler import Cancelled, CanvasSpec, SamplerConfig, autoregressive, denoise_stream, fill
from tests.backends.masked_standin import (
    EXTRA_VOCAB,
    build_llama,
    build_qwen2,
    build_remote_dream,
    build_tokenizer,
)

pytest.importorskip("transformers", minversion="5.11")  # the `hf` extra; the backend imports it lazily

DEVICE = os.environ.get("DIFFUSION_LS_TEST_DEVICE", "cpu")
if DEVICE.startswith("cuda") and not torch.cuda.is_available():
    pytest.skip(f"DIFFUSION_LS_TEST_DEVICE={DEVICE} but no CUDA device is visible", allow_module_level=True)

TEXT = "def scale(values, k):\n    out = []\n    for v in values:\n        \n    return out\n\n\nprint(scale([1], 2))\n"
CURSOR = TEXT.index("        \n") + 8  # an empty loop body


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("open-dcoder-tiny")
    build_qwen2(d, build_tokenizer(d))
    return d


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("llada-tiny")
    build_llama(d, build_tokenizer(d))
    return d


def load(path, **opts):
    from engine.backends.masked import make_backend

    return make_backend("masked-diffusion", model_path=str(path), device=DEVICE, **opts)


@pytest.fixture(scope="module")
def backend(qwen_dir):
    threads = torch.get_num_threads()
    be = load(qwen_dir, threads=1)  # a tiny model: one CPU thread is fastest
    yield be
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dual(qwen_dir):
    return load(qwen_dir, dual_cache=True)


@pytest.fixture(scope="module")
def unshifted(llama_dir):
    return load(llama_dir, logit_shift=False, dual_cache=True)


def run(gen):
    states = []
    while True:
        try:
            states.append(next(gen))
        except StopIteration as stop:
            return states, stop.value


def finite_diff(a, b) -> float:
    """Max abs difference where both are finite (the sampler's -inf slots are equal, and inf - inf is nan)."""
    ok = torch.isfinite(a) & torch.isfinite(b)
    assert torch.equal(ok, torch.isfinite(a) | torch.isfinite(b))  # -inf in the same places
    return float((a[ok] - b[ok]).abs().max())


# -- loading and conventions --------------------------------------------------------------------------------------


def test_loads_a_local_checkpoint_behind_the_seam(backend, qwen_dir):
    assert isinstance(backend, Backend) and isinstance(backend, InfillBackend)
    caps = backend.capabilities
    assert (caps.streams, caps.instructions, caps.mask_token, caps.native_infill, caps.canvas_between) == (
        True, False, True, True, True)
    assert (backend.name, backend.noise, backend.model_name, backend.max_context) == (
        "masked-diffusion", "mask", qwen_dir.name, 512)
    hf = backend.tokenizer.hf
    c = backend.conventions
    assert (c.family, c.shift, c.mask, c.pad, c.eos) == ("causal-lm", True, hf.mask_token_id, hf.eos_token_id,
                                                         hf.eos_token_id)
    assert c.found == {"mask": "tokenizer", "shift": "causal-lm default"} and c.end_ids == {hf.eos_token_id}
    sp = backend.special
    assert (sp.mask, sp.pad, sp.eos) == (c.mask, c.pad, c.eos) and backend.lead == []  # Qwen adds no BOS
    banned = set(backend._banned.tolist())
    control = hf.convert_tokens_to_ids("<|im_start|>")
    assert {control, c.mask} | set(range(len(hf), len(hf) + EXTRA_VOCAB)) <= banned and c.pad not in banned
    text = "def f(x):\n    return x * 2  # naïve ☃\n"
    assert backend.tokenizer.decode(backend.tokenizer.encode(text)) == text


def test_attention_runs_both_ways(backend):
    """The suffix changes the canvas's logits: a causal model would not see it (transformers' Qwen2 is causal until
    the backend turns it round)."""
    tok = backend.tokenizer
    prefix, canvas = tok.encode("x = "), torch.full((1, 3), backend.special.mask)
    a = backend.full_logits(backend.prefill_around(prefix, tok.encode("\nprint(x)\n")), canvas)
    b = backend.full_logits(backend.prefill_around(prefix, tok.encode("\nreturn y\n")), canvas)
    assert float((a - b).abs().max()) > 1e-3


@pytest.mark.parametrize("shift", [True, False])
def test_logits_come_from_the_shifted_or_own_position(qwen_dir, shift):
    """Shifted (Dream): slot j's logits are the output at the position before it; unshifted (LLaDA): its own. Read
    off one plain forward of the whole sequence, independent of the backend's slicing."""
    be = load(qwen_dir, logit_shift=shift)
    tok = be.tokenizer
    h = be.prefill_around(tok.encode("def f(x):\n    "), tok.encode("\n    return y\n"))
    canvas = torch.tensor([[be.special.mask] * 3 + tok.encode("y")[:1] + [be.special.mask] * 2])  # (1, 6)
    x = be.sequence(h, canvas).to(be.device)  # (1, L)
    L, P = x.shape[1], h.length
    with torch.no_grad():
        out = be.model(input_ids=x, attention_mask=torch.zeros(1, 1, L, L, dtype=be.model.dtype,
                                                                device=be.device)).logits.float()  # (1, L, V)
    start = P - 1 if shift else P
    torch.testing.assert_close(be.full_logits(h, canvas), out[:, start : start + 6], atol=1e-5, rtol=1e-5)
    assert be.conventions.found["shift"] == "setting"


def test_conventions_per_family(backend):
    """Settings first, then the generation config, the config, the tokenizer, and the family's defaults."""
    from engine.backends.masked import resolve

    hf, V = backend.tokenizer.hf, backend.vocab_size
    eos, mask = hf.eos_token_id, hf.mask_token_id
    dream = resolve(SimpleNamespace(model_type="Dream", mask_token_id=7), None, hf, V)
    assert (dream.family, dream.mask, dream.shift, dream.found["mask"]) == ("dream", 7, True, "config")
    gen = SimpleNamespace(mask_token_id=9, eos_token_id=[eos, 11], pad_token_id=None)
    c = resolve(SimpleNamespace(model_type="Dream", mask_token_id=7), gen, hf, V)
    assert (c.mask, c.found["mask"], c.end_ids, c.pad) == (9, "generation_config", {eos, 11}, eos)
    no_mask = SimpleNamespace(mask_token_id=None, eos_token_id=eos, pad_token_id=eos, unk_token_id=None,
                              convert_tokens_to_ids=lambda t: None)
    llada = resolve(SimpleNamespace(model_type="llada"), None, no_mask, 126464)
    assert (llada.family, llada.mask, llada.shift, llada.found["mask"]) == ("llada", 126336, False, "llada default")
    assert resolve(SimpleNamespace(model_type="qwen2"), None, hf, V).mask == mask  # the tokenizer's mask_token
    s = resolve(SimpleNamespace(model_type="llada"), None, hf, V, mask_token_id=3, logit_shift=True)
    assert (s.mask, s.shift, s.found) == (3, True, {"mask": "setting", "shift": "setting"})
    with pytest.raises(ModelLoadError, match="maskTokenId"):
        resolve(SimpleNamespace(model_type="qwen2"), None, no_mask, V)  # no mask anywhere: say which setting
    same = SimpleNamespace(mask_token_id=mask, eos_token_id=eos, pad_token_id=mask, unk_token_id=None,
                           convert_tokens_to_ids=lambda t: None)
    c = resolve(SimpleNamespace(model_type="qwen2"), None, same, V)
    assert c.pad == eos and mask not in c.end_ids  # a pad that is the mask id would end every masked slot


def test_refuses_what_it_cannot_load(tmp_path, qwen_dir):
    from engine.backends.masked import MaskedDiffusionBackend

    with pytest.raises(ModelLoadError, match="not a model directory"):
        MaskedDiffusionBackend(tmp_path / "missing")
    bare = tmp_path / "no-weights"
    bare.mkdir()
    for f in qwen_dir.iterdir():
        if not f.name.endswith(".safetensors"):
            (bare / f.name).write_bytes(f.read_bytes())
    with pytest.raises(ModelLoadError, match="cannot load a masked-diffusion model"):
        MaskedDiffusionBackend(bare)  # a .bin (pickle) would not do either: safetensors only
    unnamed = tmp_path / "unnamed-mask"
    unnamed.mkdir()
    tok = build_tokenizer(unnamed, mask=False)  # <|mask|> in the vocabulary, not declared the mask token
    build_qwen2(unnamed, tok)
    be = MaskedDiffusionBackend(unnamed)
    assert (be.special.mask, be.conventions.found["mask"]) == (tok.convert_tokens_to_ids("<|mask|>"),
                                                               "causal-lm default")
    plain = tmp_path / "no-mask"
    plain.mkdir()
    build_qwen2(plain, build_tokenizer(plain, mask=False, mask_in_vocab=False))
    with pytest.raises(ModelLoadError, match="maskTokenId"):
        MaskedDiffusionBackend(plain)
    assert MaskedDiffusionBackend(plain, mask_token_id=5).special.mask == 5


def test_remote_code_only_when_trusted(tmp_path, caplog):
    """A checkpoint shipping its model code (as Dream's and LLaDA's do) is refused until trustRemoteCode is on, and
    turning it on is logged as a warning. The code here is written by the stand-in, so nothing is downloaded."""
    from engine.backends.masked import MaskedDiffusionBackend

    tok = build_tokenizer(tmp_path)
    build_remote_dream(tmp_path, tok)
    with pytest.raises(ModelLoadError, match="trustRemoteCode"):
        MaskedDiffusionBackend(tmp_path)
    with caplog.at_level(logging.WARNING, logger="diffusion_ls.engine"):
        be = MaskedDiffusionBackend(tmp_path, trust_remote_code=True, device=DEVICE)
    assert any(r.levelno == logging.WARNING and "trustRemoteCode is on" in r.getMessage() for r in caplog.records)
    assert type(be.model).__name__ == "DreamModel" and not be._native
    c = be.conventions
    assert (c.family, c.mask, c.shift, c.found["mask"]) == ("dream", tok.mask_token_id, True, "config")
    ids, stats, _ = fill(be, tok.encode("x = "), CanvasSpec.single(4, c.mask), SamplerConfig(start=0, max_new=4))
    assert stats.nfe >= 1 and len(ids) <= 4
    with pytest.raises(ModelLoadError, match="dualCache"):
        MaskedDiffusionBackend(tmp_path, trust_remote_code=True, dual_cache=True)


# -- the layout -----------------------------------------------------------------------------------------------------


def test_fim_layout_is_prefix_masks_suffix(backend):
    from server import fill as fills

    target = fills.target(backend)
    assert target.between and target.prompter is None and target.steppable
    plan = fills.plan_cursor(TEXT, CURSOR, "python", target, 384, 12)
    c, tok, mask = plan.canvas, backend.tokenizer, backend.special.mask
    hole = plan.holes[0]
    assert c.context_ids == tok.encode(TEXT[: hole.start]) and c.suffix_ids == tok.encode(TEXT[hole.end :])
    assert c.canvas_ids == [mask] * hole.capacity and not set(backend.special.all - {mask}) & set(c.context_ids)
    h = backend.prefill_around(c.context_ids, c.suffix_ids)
    seq = backend.sequence(h, torch.tensor([c.canvas_ids]))[0].tolist()
    assert seq == c.context_ids + [mask] * hole.capacity + c.suffix_ids
    small = fills.plan_cursor(TEXT, CURSOR, "python", target, 48, 12).canvas  # the budget cuts whole lines
    before, after = tok.decode(small.context_ids), tok.decode(small.suffix_ids)
    assert len(small.context_ids) + len(small.suffix_ids) <= 48 and len(small.suffix_ids) <= 12  # its share
    assert after == "\n    return out\n\n\n" and TEXT[hole.end :].startswith(after)  # the lines after the hole
    assert TEXT[: hole.start].endswith(before) and TEXT[: hole.start - len(before)].endswith("\n")  # whole lines
    assert before.endswith("for v in values:\n        ") and len(before) < hole.start
    committed = backend.commit(h, tok.encode("out.append(v)"))  # a block joins the prefix; the suffix stays after
    seq = backend.sequence(committed, torch.tensor([[mask] * 2]))[0].tolist()
    assert seq == c.context_ids + tok.encode("out.append(v)") + [mask] * 2 + c.suffix_ids


def test_fit_counts_the_suffix(backend):
    from server import fill as fills

    plan = fills.plan_cursor(TEXT, CURSOR, "python", fills.target(backend), 384, 12)
    c = plan.canvas
    room = len(c.context_ids) + len(c.suffix_ids) + len(c.canvas_ids) - 4
    fitted = fills.fit(plan, fills.target(backend), room).canvas
    assert len(fitted.context_ids) + len(fitted.suffix_ids) + len(fitted.canvas_ids) == room


# -- the dual cache -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["shifted", "unshifted"])
def test_dual_cache_exact_until_the_canvas_changes(dual, unshifted, which):
    """A block's first forward is the exact one (and keeps the prefix's and suffix's keys); a later forward over the
    same canvas matches the exact one to float error; once slots are decided the cached keys are stale and the
    logits drift (Fast-dLLM's approximation, measured here); a committed block refreshes them."""
    be = dual if which == "shifted" else unshifted
    tok, mask = be.tokenizer, be.special.mask
    h = be.prefill_around(tok.encode("def f(values):\n    total = 0\n    "), tok.encode("\n    return total\n"))
    canvas = torch.full((1, 8), mask)  # (1, C)
    first = be.denoise(h, canvas)
    assert finite_diff(first, be._for_sampler(be.full_logits(h, canvas))) == 0.0
    frozen = h.extra["dual"][1]
    assert frozen.length == h.length - (1 if which == "shifted" else 0) + len(h.state[1])
    again = be.cached_logits(h, canvas, frozen)
    assert float((again - be.full_logits(h, canvas)).abs().max()) < 1e-4  # nothing changed: the same logits
    decided = canvas.clone()
    decided[0, :4] = torch.tensor(tok.encode("for v in")[:4])
    drift = float((be.cached_logits(h, decided, frozen) - be.full_logits(h, decided)).abs().max())
    assert drift > 1e-6  # approximate: the prefix and suffix keys still see four masks
    torch.testing.assert_close(be.denoise(h, decided), be._for_sampler(be.cached_logits(h, decided, frozen)))
    wider = torch.full((1, 9), mask)
    assert finite_diff(be.denoise(h, wider), be._for_sampler(be.full_logits(h, wider))) == 0.0  # new shape: refresh
    h2 = be.commit(h, decided[0, :4].tolist())
    assert "dual" not in h2.extra and h2.length == h.length + 4
    assert finite_diff(be.denoise(h2, canvas), be._for_sampler(be.full_logits(h2, canvas))) == 0.0


def test_dual_cache_fill_drift_is_measured(dual, backend):
    """A whole fill with the dual cache, each forward checked against the exact forward on the same canvas: the
    first forward of each canvas is exact, the others within the drift the cached keys allow."""
    tok, mask = dual.tokenizer, dual.special.mask
    ctx = tok.encode("def scale(values, k):\n    return [")
    suffix = tok.encode("]\n")
    diffs: list[tuple[bool, float]] = []
    real = dual.denoise

    def checked(handle, canvas_ids, exact=False):
        fresh = "dual" not in handle.extra or handle.extra["dual"][0] != tuple(canvas_ids.shape)
        got = real(handle, canvas_ids, exact)
        diffs.append((fresh, finite_diff(got, dual._for_sampler(dual.full_logits(handle, canvas_ids)))))
        return got

    dual.denoise = checked  # type: ignore[method-assign]
    try:
        h = dual.prefill_around(ctx, suffix)
        states, stats = run(denoise_stream(dual, h, CanvasSpec.single(12, mask), SamplerConfig(steps=6, block_size=6,
                                                                                               max_new=12, start=0)))
    finally:
        del dual.denoise
    assert len(diffs) == stats.nfe and states[-1].done
    assert all(d == 0.0 for fresh, d in diffs if fresh) and any(fresh for fresh, _ in diffs)
    assert all(d < 1.0 for _, d in diffs)  # stale keys shift logits a little, they do not scramble them


# -- fills ----------------------------------------------------------------------------------------------------------


def test_fill_through_server_fill_run(backend):
    from server import fill as fills

    plan = fills.plan_cursor(TEXT, CURSOR, "python", fills.target(backend), 384, 12)
    partials = []
    cfg = SamplerConfig(max_new=12, steps=8)
    out = fills.run(backend, plan, cfg, session="doc", on_partial=partials.append)
    assert out.stats.nfe == len(partials) >= 1
    assert partials[0].masks and "·" in partials[0].text
    assert len(out.fills) == 1 and isinstance(out.fills[0], str)
    assert out.text == out.fills[0] and (out.refused() is None) == (out.fills[0] != "")  # kept, or refused with why


def test_pad_or_eos_ends_the_fill(backend, monkeypatch):
    """The end tokens are folded into pad, so a model certain that the text ends after two tokens ends the fill
    there (and never shows eos or a control token)."""
    tok, sp = backend.tokenizer, backend.special
    word = tok.encode("out")
    real = backend.full_logits

    def ends_after_two(handle, canvas):
        raw = real(handle, canvas).clone()  # (B, C, V)
        before = handle.length - len(tok.encode("x = "))  # slots already committed ahead of this canvas
        for j in range(canvas.shape[1]):
            raw[:, j, word[0] if before + j < 2 else sp.eos] += 50.0
        return raw

    monkeypatch.setattr(backend, "full_logits", ends_after_two)
    ids, stats, states = fill(backend, tok.encode("x = "), CanvasSpec.single(8, sp.mask), SamplerConfig(start=0))
    assert ids == [word[0], word[0]] and stats.tokens == 2 and states[-1].done


def test_blocks_grow_between_prefix_and_suffix(backend, monkeypatch):
    """A fill longer than a block: each block is committed into the prefix and the next canvas sits between it and
    the suffix (the end token held back here, so the model writes on)."""
    tok, sp = backend.tokenizer, backend.special
    seen = []
    real = backend.full_logits

    def no_end(h, c):
        seen.append(backend.sequence(h, c)[0].tolist())
        raw = real(h, c).clone()  # (B, C, V)
        raw[..., sp.eos] = -50.0
        return raw

    monkeypatch.setattr(backend, "full_logits", no_end)
    ctx, suffix = tok.encode("a = ["), tok.encode("]\n")
    h = backend.prefill_around(ctx, suffix)
    states, stats = run(denoise_stream(backend, h, CanvasSpec.single(8, sp.mask),
                                       SamplerConfig(block_size=4, max_new=8, start=0, steps=4, repeat_rounds=0)))
    out = states[-1].ids
    assert stats.blocks == 2 and len(out) == 8 and stats.nfe == len(seen)
    first = [q for q in seen if len(q) == len(ctx) + 4 + len(suffix)]
    second = [q for q in seen if len(q) == len(ctx) + 8 + len(suffix)]
    assert first and second and len(first) + len(second) == len(seen)
    assert all(q[: len(ctx)] == ctx and q[-len(suffix) :] == suffix for q in seen)
    assert all(q[: len(ctx) + 4] == ctx + out[:4] for q in second)  # the first block committed into the prefix


def test_cancellation_and_the_autoregressive_baseline(backend):
    tok, mask = backend.tokenizer, backend.special.mask
    stop = threading.Event()
    gen = denoise_stream(backend, backend.prefill(tok.encode("x = ")), CanvasSpec.single(6, mask),
                         SamplerConfig(start=0, threshold=1.0), cancel=stop)
    assert sum(next(gen).masked) == 5  # one slot a forward at threshold 1: five forwards left
    stop.set()
    with pytest.raises(Cancelled):
        next(gen)
    v = backend.next_token_logits(backend.prefill(tok.encode("x = ")))
    assert v.shape == (backend.vocab_size,) and torch.isinf(v[backend._banned]).all()
    out, stats = autoregressive(backend, tok.encode("x = "), max_new=3)
    assert len(out) == stats.tokens <= 3 and stats.nfe == min(3, len(out) + 1)


def test_unshifted_fill_with_the_dual_cache(unshifted):
    """The LLaDA-shaped stand-in (no shift, dual cache on) fills through the same loop."""
    tok, mask = unshifted.tokenizer, unshifted.special.mask
    h = unshifted.prefill_around(tok.encode("x = "), tok.encode("\ny = 2\n"))
    states, stats = run(denoise_stream(unshifted, h, CanvasSpec.single(6, mask), SamplerConfig(start=0, max_new=6)))
    assert states[-1].done and len(states) - 1 == stats.nfe and len(states[-1].ids) <= 6
    assert not set(states[-1].ids) & set(unshifted._banned.tolist())
