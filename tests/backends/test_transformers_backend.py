"""DiffusionGemma through transformers, end to end on CPU: a tiny random checkpoint (conftest.py) loaded through the
real loading path, driven through the Backend seam by engine.sampler and by the model's own loop."""

from __future__ import annotations

import os
import threading

import pytest
import torch

from engine.backend import Backend
from engine.backends.transformers import TransformersBackend, make_backend
from engine.model import ModelLoadError
from engine.sampler import Cancelled, CanvasSpec, autoregressive, denoise_stream, fill
from tests.backends.conftest import CANVAS, STEPS

pytest.importorskip("transformers", minversion="5.11")  # the `hf` extra; the engine modules import it lazily

PREFIX = "def scale(values, k):\n    out = []\n    for v in values:\n        out.append(v * "
SUFFIX = ")\n    return out\n\n\nprint(scale([1, 2], 3))\n"
SELECTION = "out.append(v * k)"


@pytest.fixture(scope="module")
def backend(tiny_dg_dir):
    threads = torch.get_num_threads()
    # DIFFUSION_LS_TEST_DEVICE=cuda runs the same tests on a GPU; a tiny model: one CPU thread is fastest
    be = make_backend("transformers", model_path=str(tiny_dg_dir), threads=1,
                      device=os.environ.get("DIFFUSION_LS_TEST_DEVICE", "cpu"))
    yield be
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ctx(backend):
    return backend.prompter.infill(PREFIX, SUFFIX, "python")


def run(gen):
    """Every state a stream yields, and the stats it returns."""
    states = []
    while True:
        try:
            states.append(next(gen))
        except StopIteration as stop:
            return states, stop.value


def lcp(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_loads_a_local_checkpoint_behind_the_seam(backend, tiny_dg_dir):
    assert isinstance(backend, Backend)
    assert (backend.name, backend.noise, backend.steppable) == ("transformers", "uniform", True)
    assert backend.model_name == tiny_dg_dir.name and backend.canvas_length == CANVAS
    assert backend.params.max_denoising_steps == STEPS and backend.params.entropy_bound == 0.5  # generation_config
    tok, sp = backend.tokenizer, backend.special
    assert (sp.pad, sp.eos, sp.mask) == (0, 1, tok.token_id("<mask>"))  # no mask token in use: uniform noise
    assert sp.fim_middle == tok.token_id("<turn|>") and tok.end_ids == {sp.eos, tok.token_id("<turn|>")}
    text = "def f(x):\n    return x * 2  # naïve ☃\n"
    ids = tok.encode(text)
    assert tok.decode(ids) == text and b"".join(tok.token_bytes(i) for i in ids) == text.encode()
    cfg = backend.sampler_config()
    assert (cfg.strategy, cfg.noise, cfg.eb_gamma, cfg.steps, cfg.block_size) == ("eb", "uniform", 0.5, STEPS, CANVAS)


def test_refuses_what_is_not_a_local_diffusiongemma(tmp_path, tiny_dg_dir):
    with pytest.raises(ModelLoadError, match="not a model directory"):
        TransformersBackend(tmp_path / "missing")
    (tmp_path / "no-weights").mkdir()
    (tmp_path / "no-weights" / "config.json").write_bytes((tiny_dg_dir / "config.json").read_bytes())
    with pytest.raises(ModelLoadError, match="cannot load DiffusionGemma .*model.safetensors"):
        TransformersBackend(tmp_path / "no-weights")  # a .bin (pickle) would not do either: safetensors only
    from transformers import GemmaConfig

    GemmaConfig(vocab_size=64, hidden_size=8, intermediate_size=8, num_hidden_layers=1, num_attention_heads=1,
                num_key_value_heads=1, head_dim=8).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="not DiffusionGemma"):
        TransformersBackend(tmp_path)


def test_infill_prompt_keeps_the_cursor_last(backend, ctx):
    text = backend.tokenizer.hf.decode(ctx)
    assert text.startswith("<bos><|turn>user\n")
    assert text.endswith("<turn|>\n<|turn>model\n<|channel>thought\n<channel|>```python\n        out.append(v * ")
    assert text.index("print(scale([1, 2], 3))") < text.index("def scale(values, k):")  # suffix first (SPM)
    typed = backend.prompter.infill(PREFIX + "k", SUFFIX, "python")
    h1 = backend.prefill(ctx, "typing")
    h2 = backend.prefill(typed, "typing")
    assert h1.reused == 0 and h2.reused == lcp(ctx, typed)
    assert backend.tokenizer.hf.decode(typed[: h2.reused]).endswith(PREFIX)  # a keystroke re-encodes only the tail


def test_prefix_reuse_rewind_and_commit_are_exact(backend, ctx):
    canvas = torch.randint(10, 300, (1, CANVAS), generator=torch.Generator().manual_seed(3))  # (1, C)

    def fresh(ids, name):
        backend.drop_session(name)
        return backend.denoise(backend.prefill(ids, name), canvas)

    typed = backend.prompter.infill(PREFIX + "k", SUFFIX, "python")
    other = ctx[:300] + backend.tokenizer.encode("x = 1\n")  # rewinds far past the sliding window (8)
    block = backend.tokenizer.encode("k)\n    ")
    h = backend.prefill(ctx, "reuse")
    prev = ctx
    for ids in (typed, other, ctx):
        h = backend.prefill(ids, "reuse")
        assert h.reused == lcp(prev, ids) > 0
        prev = ids
        torch.testing.assert_close(backend.denoise(h, canvas), fresh(ids, "fresh"), atol=1e-4, rtol=1e-4)
    h2 = backend.commit(h, block)
    assert (h2.length, h2.reused) == (len(ctx) + len(block), len(ctx))
    torch.testing.assert_close(backend.denoise(h2, canvas), fresh(ctx + block, "fresh"), atol=1e-4, rtol=1e-4)
    h3 = backend.prefill(ctx, "reuse")  # the committed block is rewound, the prompt reused whole
    assert h3.reused == len(ctx)
    torch.testing.assert_close(backend.denoise(h3, canvas), fresh(ctx, "fresh"), atol=1e-4, rtol=1e-4)
    with pytest.raises(RuntimeError, match="prefill again"):
        backend.denoise(h2, canvas)  # its block is gone


def test_self_conditioning_carries_the_previous_forward(backend, ctx):
    from transformers.models.diffusion_gemma.generation_diffusion_gemma import LinearTemperatureScheduleLogitsProcessor

    canvas = torch.randint(10, 300, (1, CANVAS), generator=torch.Generator().manual_seed(4))  # (1, C)
    h = backend.prefill(ctx, "sc")
    first, second = backend.denoise(h, canvas), backend.denoise(h, canvas)
    assert not torch.allclose(first, second)  # same canvas, but conditioned on the first forward's logits
    torch.testing.assert_close(backend.denoise(backend.prefill(ctx, "sc"), canvas), first)  # a new handle: reset
    p = backend.params
    sess = backend._live(h)
    raw = backend._forward(sess, canvas, None)
    processed = LinearTemperatureScheduleLogitsProcessor(p.t_min, p.t_max, p.max_denoising_steps)(
        None, raw, cur_step=p.max_denoising_steps)  # what the model's own loop feeds back after its first step
    expected = backend._for_sampler(backend._forward(sess, canvas, processed))
    torch.testing.assert_close(second, expected)


def test_native_loop_reproduces_generate(backend, ctx):
    h = backend.prefill(ctx, "native")
    spec = CanvasSpec.single(2 * CANVAS, backend.special.mask)
    states, stats = run(backend.native_stream(h, spec, seed=7, max_new=2 * CANVAS))
    torch.manual_seed(7)
    prompt = torch.tensor([ctx], device=backend.device)
    ref = backend.model.generate(prompt, max_new_tokens=2 * CANVAS).sequences[0, len(ctx):].tolist()
    ends = [i for i, t in enumerate(ref) if t in backend.end_ids]
    assert states[-1].done and states[-1].ids == ref[: ends[0] if ends else len(ref)]
    assert len(states) - 1 == stats.nfe and 1 <= stats.blocks <= 2 and stats.nfe <= stats.blocks * STEPS
    for s in states[:-1]:
        assert [t for t, m in zip(s.ids, s.masked, strict=True) if m] == [backend.special.mask] * sum(s.masked)


def test_infill_end_to_end_through_the_sampler(backend, ctx):
    sp = backend.special
    cfg = backend.sampler_config(steps=4, block_size=CANVAS, max_new=12)
    assert cfg.start == 0 and cfg.remask_threshold == 0.02  # its canvas is no length hint; it keeps self-correction
    ids, stats, states = fill(backend, ctx, CanvasSpec.single(12, sp.mask), cfg, session="infill")
    steps = states[:-1]
    assert states[-1].done and states[-1].ids == ids and len(steps) == stats.nfe
    assert stats.blocks in (1, 2) and stats.nfe <= 4 * stats.blocks
    for s in steps:
        width = CANVAS if s.block == 0 else 12 - CANVAS
        assert len(s.ids) == s.block * CANVAS + width and len(s.masked) == len(s.ids)
        assert all(t == sp.mask for t, m in zip(s.ids, s.masked, strict=True) if m)
    assert sum(steps[0].masked) < CANVAS  # the first forward already decided some slots
    assert not set(ids) & set(backend._banned.tolist()) and sp.pad not in ids  # text only: pads cut, no controls
    assert len(ids) == stats.tokens <= 12
    text = backend.tokenizer.decode(ids)
    assert isinstance(backend.prompter.finish(text), str)
    assert backend.prefill(ctx, "infill").reused == len(ctx)  # a committed block is rewound on the next request


def test_rewrite_starts_from_the_selection(backend):
    sp, tok = backend.special, backend.tokenizer
    ctx = backend.prompter.rewrite("    for v in values:\n        ", SELECTION, "\n    return out\n",
                                   "use a comprehension", "python")
    assert tok.hf.decode(ctx).endswith("<|channel>thought\n<channel|>```python\n")
    sel = tok.encode(SELECTION)
    n = len(sel) + 4
    spec = CanvasSpec(sel + [sp.mask] * 4, [False] * n, [(0, n)], decided=[True] * len(sel) + [False] * 4)
    ids, stats, states = fill(backend, ctx, spec, backend.sampler_config(steps=3), session="rewrite")
    first = states[0]
    kept = [i for i in range(len(sel)) if i not in first.remasked]
    assert kept and all(first.ids[i] == sel[i] and not first.masked[i] for i in kept)
    assert len(ids) == n and not set(ids) & set(backend._banned.tolist())  # every slot comes back, pads included
    # the model's own loop with the first three slots pinned: they hold at every forward
    pinned = CanvasSpec(sel + [sp.mask] * 4, [True] * 3 + [False] * (n - 3), [(3, n)],
                        decided=[True] * len(sel) + [False] * 4)
    states, _ = run(backend.native_stream(backend.prefill(ctx, "rewrite"), pinned, seed=1))
    assert all(s.ids[:3] == sel[:3] and not any(s.masked[:3]) for s in states)


def test_cancellation_stops_between_forwards(backend, ctx, monkeypatch):
    forwards = []
    real = backend._forward
    monkeypatch.setattr(backend, "_forward", lambda *a: forwards.append(1) or real(*a))
    stop = threading.Event()
    gen = denoise_stream(backend, backend.prefill(ctx, "cancel"), CanvasSpec.single(CANVAS, backend.special.mask),
                         backend.sampler_config(steps=STEPS), cancel=stop)
    next(gen)
    stop.set()
    with pytest.raises(Cancelled):
        next(gen)
    native = backend.native_stream(backend.prefill(ctx, "cancel"), CanvasSpec.single(CANVAS, backend.special.mask),
                                   cancel=lambda: len(forwards) >= 2)
    next(native)
    with pytest.raises(Cancelled):
        next(native)
    assert len(forwards) == 2  # one forward each, none after the flag
    ids, stats, _ = fill(backend, ctx, CanvasSpec.single(4, backend.special.mask), backend.sampler_config(steps=2),
                         session="cancel")
    assert stats.nfe >= 1  # the session still serves


def test_next_token_logits_and_the_autoregressive_baseline(backend, ctx):
    h = backend.prefill(ctx, "ar")
    v = backend.next_token_logits(h)
    assert v.shape == (backend.vocab_size,) and torch.isfinite(v[backend.special.pad])
    assert torch.isinf(v[backend._banned]).all()
    out, stats = autoregressive(backend, ctx, max_new=3, session="ar")
    assert len(out) == stats.tokens <= 3 and stats.nfe == min(3, len(out) + 1)
