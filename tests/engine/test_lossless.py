"""Lossless speculative denoising on the shipped model: batches of canvases decode bit for bit as lone canvases, and
fills of real holes are one token per forward's, token for token, in fewer forwards."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

import pytest
import torch

from engine.backend import EmbeddedBackend
from infill import evaluate as ev


@pytest.fixture(scope="module")
def shipped() -> EmbeddedBackend:
    return EmbeddedBackend(exact_batches=True)  # as the server loads it for lossless


def test_a_batch_of_canvases_decodes_each_exactly_as_alone(shipped):
    tok = shipped.tokenizer
    sp = tok.special
    ctx = [sp.fim_suffix] + tok.encode("\n    return total\n") + [sp.fim_prefix] + tok.encode(
        "def mean(xs):\n    total = ") + [sp.fim_middle]
    h = shipped.prefill(ctx, "batch")
    g = torch.Generator().manual_seed(3)
    for C in (1, 5, 8, 16, 23, 32):
        for B in (2, 3, 4):
            canvas = torch.randint(len(sp.all), tok.vocab_size, (B, C), generator=g)  # (B, C)
            canvas[:, C // 2:] = sp.mask  # the shape of a half-denoised canvas
            batch = shipped.denoise(h, canvas, exact=True)  # (B, C, V)
            for i in range(B):
                alone = shipped.denoise(h, canvas[i : i + 1], exact=True)[0]  # (C, V)
                assert torch.equal(batch[i], alone), (C, B, i)
                # without `exact` a lone canvas runs in fewer rows: the same logits, maybe rounded otherwise
                torch.testing.assert_close(shipped.denoise(h, canvas[i : i + 1])[0], alone, atol=1e-3, rtol=1e-4)


def held_out_like(tmp_path: Path, n: int) -> list[ev.Task]:
    """Holes cut by tree-sitter spans from standard-library files (present on every install), as `bench` cuts them."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for name in ("textwrap.py", "shlex.py"):
        shutil.copyfile(stdlib / name, tmp_path / name)
    return ev.spread(ev.heldout_tasks(tmp_path), n)


def assert_same_fills(backend, tasks: list[ev.Task], draft: int = 4) -> None:
    sizing = ev.parse_sizing("syntax")
    one, fast = ev.parse_sampler("one-per-forward:exact"), ev.parse_sampler(f"lossless:{draft}")
    nfe = nfe_one = 0
    for task in tasks:
        a = ev.fill_task(backend, task, sizing, one, session="one")
        b = ev.fill_task(backend, task, sizing, fast, session="lossless")
        assert b.raw == a.raw and b.text == a.text, task.task_id
        assert b.steps == a.steps == a.nfe and b.restarts == a.restarts and b.nfe <= a.nfe, task.task_id
        nfe, nfe_one = nfe + b.nfe, nfe_one + a.nfe
    assert nfe < nfe_one


def test_held_out_like_holes_fill_as_one_per_forward_in_fewer_forwards(shipped, tmp_path):
    assert_same_fills(shipped, held_out_like(tmp_path, 8))


def test_humaneval_holes_fill_as_one_per_forward_in_fewer_forwards(shipped):
    data = ev.default_data_dir()
    if data is None:
        pytest.skip("no evaluation data beside the repository (../shared/data)")
    assert_same_fills(shipped, ev.load_suite("humaneval-single", data, limit=6), draft=3)
