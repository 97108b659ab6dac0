"""The learned finalization rule: features as specified, the strategy follows its classifier, train-finalizer writes a
file the engine loads, and a missing or corrupt file is a clear error."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace

import pytest
import torch

from engine import finalizer as fz
from engine.backend import EmbeddedBackend
from engine.sampler import CanvasSpec, SamplerConfig, denoise_stream
from infill.evaluate import parse_sampler


def test_features_of_a_hand_made_forward():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.5, 0.5, 0.0],
                          [0.2, 0.6, 0.2], [0.3, 0.3, 0.4], [1.0, 0.0, 0.0]])  # (6, 3); id 2 is the pad
    pick = torch.tensor([0, 0, 1, 1, 2, 0])  # slot 1: pad is most likely, but the sampler would take text
    argmax = probs.max(-1).indices
    decided = torch.tensor([False, False, False, True, False, False])
    stable = torch.tensor([1, 2, 3, 30, 1, 5])
    f = fz.features(probs, pick, argmax, decided, stable, step=3, pad=2)
    assert f.shape == (6, len(fz.FEATURES))
    col = {name: f[:, i].tolist() for i, name in enumerate(fz.FEATURES)}
    assert col["confidence"] == pytest.approx([0.7, 0.1, 0.5, 0.6, 0.4, 1.0])
    assert col["margin"] == pytest.approx([0.5, 0.7, 0.0, 0.4, 0.1, 1.0])
    h = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    assert col["entropy"][0] == pytest.approx(h) and col["entropy"][5] == pytest.approx(0.0, abs=1e-6)
    assert col["position"] == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert col["distance"] == [1, 2, 1, 0, 1, 2]  # the context before slot 0 counts as decided
    assert col["left_decided"] == [1, 0, 0, 0, 1, 0]
    assert col["right_decided"] == [0, 0, 1, 0, 0, 0]
    assert col["neighbour_confidence"] == pytest.approx([0.1, 0.5, 0.1, 0.4, 1.0, 0.4])
    assert col["step"] == [3] * 6
    assert col["decided_frac"] == pytest.approx([1 / 6] * 6)
    assert col["stable"] == [1, 2, 3, fz.STABLE_CAP, 1, 5]
    assert col["pad"] == [0, 1, 0, 0, 1, 0]


def test_recorded_rows_are_labelled_by_the_final_token():
    rec = fz.Recorder()
    feats = torch.zeros(3, len(fz.FEATURES))
    rec.block([(feats, torch.tensor([5, 6, 7]), torch.tensor([0, 1, 2])),
               (feats[:2], torch.tensor([9, 7]), torch.tensor([1, 2]))], final=torch.tensor([5, 9, 8]))
    assert rec.rows == 5
    assert rec.blocks[0][1].tolist() == [1, 0, 0, 1, 0]


def by_position(cut: float) -> fz.Finalizer:
    """A hand-set classifier: a slot passes when its relative position is above `cut`."""
    n = len(fz.FEATURES)
    w = torch.zeros(n)
    w[fz.FEATURES.index("position")] = 1000.0
    return fz.Finalizer({"mean": torch.zeros(n), "std": torch.ones(n), "w2": w, "b2": torch.tensor([-1000.0 * cut])},
                        0.5)


class WithFinalizer:
    """The real backend carrying a hand-set finalizer (engine.finalizer.for_backend prefers it to the file)."""

    def __init__(self, inner: EmbeddedBackend, finalizer: fz.Finalizer | None):
        self.inner = inner
        self.finalizer = finalizer

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    return EmbeddedBackend(tiny_model_dir)


@pytest.fixture()
def ctx(backend):
    tok, sp = backend.tokenizer, backend.special
    return [sp.fim_suffix] + tok.encode("\n    return y\n") + [sp.fim_prefix] + tok.encode("def f(x):\n    y = ") + [
        sp.fim_middle]


def first_states(backend, ctx, cfg, n=8):
    gen = denoise_stream(backend, backend.prefill(ctx, "t"), CanvasSpec.single(n, backend.special.mask), cfg)
    return [s for s in gen if not s.done]


CFG = SamplerConfig(strategy="learned", steps=64, grow=False, start=0, end_threshold=0, max_new=8, block_size=8)


def test_learned_finalizes_the_slots_its_classifier_passes_and_the_most_confident(backend, ctx):
    states = first_states(WithFinalizer(backend, by_position(0.5)), ctx, CFG)
    first = [i for i, m in enumerate(states[0].masked) if not m]
    assert {4, 5, 6, 7} <= set(first)  # positions 4/7.. 7/7 pass
    assert len(set(first) - {4, 5, 6, 7}) == 1  # and the most confident of the others, always one
    assert all(not m for m in states[-1].masked)


class PadFrom(WithFinalizer):
    """...whose model says pad, surely, from slot 4 on."""

    def denoise(self, handle, canvas_ids, exact=False):
        logits = self.inner.denoise(handle, canvas_ids, exact)
        logits[:, 4:, self.inner.special.pad] = 1e4
        return logits


def test_the_classifier_never_decides_the_end(backend, ctx):
    states = first_states(PadFrom(backend, by_position(0.5)), ctx, CFG)
    assert sum(states[0].masked) == 7  # slots 4-7 pass the classifier but are pads: only the most confident goes
    assert states[-1].ids[4:] == [backend.special.pad] * 4


def test_a_classifier_that_passes_nothing_decodes_one_slot_per_forward(backend, ctx):
    states = first_states(WithFinalizer(backend, by_position(2.0)), ctx, CFG)
    masked = [sum(s.masked) for s in states]
    assert masked[0] == 7  # one finalized at the first forward
    assert all(b < a for a, b in zip([8] + masked, masked))


def test_the_threshold_in_the_config_overrides_the_files(backend, ctx):
    clf = by_position(0.5)
    clf.threshold = 1.0  # the file's own would pass nothing...
    states = first_states(WithFinalizer(backend, clf), ctx, replace(CFG, learned_threshold=0.5))
    assert {4, 5, 6, 7} <= {i for i, m in enumerate(states[0].masked) if not m}  # ...the config's passes these


def test_train_finalizer_writes_a_file_the_engine_loads(tmp_path, tiny_model_dir):
    from server.cli import main

    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"mod{i}.py").write_text(
            f"def f{i}(x, y):\n    total = x + y * {i}\n    if total > 10:\n        return total - 1\n"
            f"    return g(total, {i})\n\n\nclass C{i}:\n    def m(self, a):\n        self.a = [a, {i}]\n"
            "        return len(self.a)\n", encoding="utf-8")
    (src / "tests").mkdir()
    (src / "tests" / "test_skipped.py").write_text("def test_x():\n    assert 1\n", encoding="utf-8")
    out = tmp_path / "model"
    rc = main(["train-finalizer", "--out", str(out), "--model", str(tiny_model_dir), "--corpus", str(src),
               "--holes", "8", "--train-steps", "20", "--hidden", "4", "--threads", "1", "--json"])
    assert rc == 0
    f = fz.load(out / fz.FILE)
    assert f.tensors["w1"].shape == (4, len(fz.FEATURES)) and 0 < f.threshold <= 1
    assert int(f.info["holes"]) == 8 and int(f.info["rows_train"]) > 0
    scores = f.score(torch.rand(5, len(fz.FEATURES)))
    assert scores.shape == (5,) and bool(((scores >= 0) & (scores <= 1)).all())


def test_a_corrupt_or_missing_finalizer_is_a_clear_error(tmp_path, tiny_model_dir, ctx):
    d = tmp_path / "model"
    shutil.copytree(tiny_model_dir, d)
    (d / fz.FILE).unlink(missing_ok=True)
    backend = EmbeddedBackend(d)
    with pytest.raises(fz.FinalizerError, match="train-finalizer"):
        first_states(backend, ctx, CFG)
    (d / fz.FILE).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a safetensors header")
    with pytest.raises(fz.FinalizerError, match="not a readable safetensors file"):
        first_states(backend, ctx, CFG)
    other = by_position(0.5)
    other.save(d / fz.FILE)
    from safetensors.torch import load_file, save_file

    meta = {"format": fz.FORMAT, "features": json.dumps(["confidence"]), "threshold": "0.5"}
    save_file(load_file(str(d / fz.FILE)), str(d / fz.FILE), metadata=meta)
    with pytest.raises(fz.FinalizerError, match="trained on features"):
        fz.load(d / fz.FILE)


def test_the_eval_sampler_spec():
    s = parse_sampler("learned:0.7")
    assert (s.name, s.cfg.strategy, s.cfg.learned_threshold) == ("learned:0.7", "learned", 0.7)
    assert parse_sampler("learned").cfg.learned_threshold == 0.0  # the file's own
    with pytest.raises(ValueError):
        SamplerConfig(strategy="learned", learned_threshold=1.5)
