"""Two-mode model: cached decoder-mode logits equal a full recomputation; safe loading."""

from __future__ import annotations

import shutil

import pytest
import torch

from engine.backend import EmbeddedBackend
from engine.model import ModelLoadError, load_model, two_mode_mask
from engine.model import native_int8 as m_native_int8


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    return EmbeddedBackend(tiny_model_dir, dtype="float32")  # the cache's arithmetic, checked to float32 precision


def reference_logits(model, ctx: list[int], canvas: list[int]) -> torch.Tensor:
    """Full recomputation: one pass over [context | canvas] with the training mask, no cache."""
    ids = torch.tensor([ctx + canvas])
    mask, pos = two_mode_mask(torch.tensor([len(ctx)]), torch.tensor([len(canvas)]), len(ctx), len(canvas))
    with torch.no_grad():
        return model.logits(model(ids, pos, mask))[0, len(ctx):].float()  # (C, V)


def random_ids(n: int, vocab: int, seed: int) -> list[int]:
    return torch.randint(8, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def test_fresh_prefill_matches_full_recomputation(backend):
    v = backend.tokenizer.vocab_size
    ctx, canvas = random_ids(200, v, 0), random_ids(24, v, 1)
    h = backend.prefill(ctx, "fresh")
    got = backend.denoise(h, torch.tensor([canvas]))[0]
    assert h.reused == 0
    assert torch.allclose(got, reference_logits(backend.model, ctx, canvas), atol=1e-4)


def test_prefix_reused_prefill_matches_and_recomputes_only_the_tail(backend):
    v = backend.tokenizer.vocab_size
    ctx, canvas = random_ids(300, v, 2), random_ids(16, v, 3)
    backend.prefill(ctx, "reuse")
    edited = ctx[:250] + [ctx[250] + 1 if ctx[250] + 1 < v else 9] + ctx[251:] + random_ids(3, v, 4)
    h = backend.prefill(edited, "reuse")
    assert h.reused == 250
    got = backend.denoise(h, torch.tensor([canvas]))[0]
    assert torch.allclose(got, reference_logits(backend.model, edited, canvas), atol=1e-4)


def test_committed_block_matches_full_recomputation(backend):
    v = backend.tokenizer.vocab_size
    ctx, block, canvas = random_ids(120, v, 5), random_ids(32, v, 6), random_ids(20, v, 7)
    h = backend.commit(backend.prefill(ctx, "commit"), block)
    assert h.length == 152
    got = backend.denoise(h, torch.tensor([canvas]))[0]
    assert torch.allclose(got, reference_logits(backend.model, ctx + block, canvas), atol=1e-4)


def test_decoder_mode_never_writes_the_cache(backend):
    v = backend.tokenizer.vocab_size
    ctx = random_ids(64, v, 8)
    h = backend.prefill(ctx, "ro")
    cache = backend._caches["ro"]
    before = cache.k[:, :, :, :64].clone()
    backend.denoise(h, torch.tensor([random_ids(16, v, 9)]))
    assert cache.length == 64 and torch.equal(cache.k[:, :, :, :64], before)


def test_canvas_over_the_whole_context_equals_one_over_a_longer_cache(backend):
    """A lone canvas over the cache's whole context attends to it in place (its keys written past the context's end);
    over a cache that holds more than its handle, to a copy. Both give the same logits, bit for bit."""
    v = backend.tokenizer.vocab_size
    ctx, canvas = random_ids(90, v, 10), torch.tensor([random_ids(12, v, 11)])
    h = backend.prefill(ctx, "scratch")
    in_place = backend.denoise(h, canvas)
    assert backend._caches["scratch"].k[:, :, :, 90:102].abs().sum() > 0  # it did write past the context
    backend.commit(h, random_ids(40, v, 12))  # the cache now holds 130 tokens; h still names its first 90
    assert backend._caches["scratch"].length == 130
    assert torch.equal(backend.denoise(h, canvas), in_place)


def test_bfloat16_weights_and_cache_give_the_float32_logits_to_bfloat16_precision(tiny_model_dir, backend):
    bf = EmbeddedBackend(tiny_model_dir, dtype="bfloat16")
    v = bf.tokenizer.vocab_size
    ctx, canvas = random_ids(150, v, 13), torch.tensor([random_ids(16, v, 14)])
    h = bf.prefill(ctx, "bf")
    assert bf.model.tok_emb.weight.dtype == torch.bfloat16 and bf._caches["bf"].k.dtype == torch.bfloat16
    got = bf.denoise(h, canvas)[0]
    want = backend.denoise(backend.prefill(ctx, "fp"), canvas)[0]
    assert got.dtype == torch.float32
    assert (got - want).abs().max() < 0.05 and (got.argmax(-1) == want.argmax(-1)).float().mean() > 0.9


def test_int8_products_give_the_float_logits_to_8_bit_precision(tiny_model_dir, backend):
    q = EmbeddedBackend(tiny_model_dir, dtype="int8")
    assert q.memory_format.endswith("+int8") and q.model.int8_logits is not None
    assert all(set(layer.int8) == {"wqkv", "wo", "w13", "w2"} for layer in q.model.blocks)
    v = q.tokenizer.vocab_size
    ctx, canvases = random_ids(150, v, 13), torch.tensor([random_ids(16, v, 14), random_ids(16, v, 15)])
    got = q.denoise(q.prefill(ctx, "q8"), canvases)
    want = backend.denoise(backend.prefill(ctx, "fp"), canvases)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert (got.softmax(-1) - want.softmax(-1)).abs().max() < 0.05
    assert (got.argmax(-1) == want.argmax(-1)).float().mean() > 0.9
    # a row's 8-bit product depends on the rows beside it (its input is quantized per product): exact decoding never
    # batches canvases then, and each is what it is alone
    assert not q.model.exact_batch(16, 2) and not q.capabilities.exact_batches and q.model.min_rows() == 1
    assert EmbeddedBackend(tiny_model_dir, dtype="bfloat16").capabilities.exact_batches
    alone = q.denoise(q.prefill(ctx, "q8"), canvases[1:], exact=True)[0]
    assert torch.equal(q.denoise(q.prefill(ctx, "q8"), canvases, exact=True)[1], alone)


def test_a_device_torch_cannot_use_here_is_refused_in_words_that_say_what_to_set(tiny_model_dir):
    from engine.model import check_device

    check_device("cpu")
    with pytest.raises(ModelLoadError, match="one of cpu, cuda, cuda:N, mps"):
        check_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match=r"device cuda:1: torch .* sees no CUDA GPU here; set `device` to cpu"):
            EmbeddedBackend(tiny_model_dir, device="cuda:1")
    if not torch.backends.mps.is_available():
        with pytest.raises(ModelLoadError, match="device mps: Apple's Metal is not available here"):
            check_device("mps")


def test_int8_is_the_embedded_model_s_on_the_cpu(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="CPU only"):
        EmbeddedBackend(tiny_model_dir, dtype="int8", device="cuda")
    from server.config import Settings
    with pytest.raises(ValueError, match="dtype int8 is the embedded model's"):
        Settings(backend="transformers", model_path="/x", dtype="int8").backend_options()
    assert Settings(dtype="int8").backend_options()["dtype"] == "int8"


def test_auto_runs_int8_products_where_the_cpu_has_their_kernels_but_not_for_lossless(tiny_model_dir, monkeypatch):
    from engine import backend as b
    from server.config import Settings

    monkeypatch.setattr(b, "native_int8", lambda device="cpu": True)
    auto = EmbeddedBackend(tiny_model_dir)
    assert auto.memory_format.endswith("+int8") and not auto.capabilities.exact_batches
    exact = EmbeddedBackend(tiny_model_dir, exact_batches=True)  # lossless checks its drafts in exact batches
    assert "int8" not in exact.memory_format and exact.capabilities.exact_batches
    assert EmbeddedBackend(tiny_model_dir, dtype="bfloat16").memory_format == "bfloat16"  # asked for: as asked
    from engine import model as m

    def no_kernels(w):
        raise RuntimeError("Didn't find engine for operation quantized::linear_prepack NoQEngine")

    monkeypatch.setattr(m.Int8Weight, "of", staticmethod(no_kernels))  # a torch built without fbgemm
    fallback = EmbeddedBackend(tiny_model_dir)  # auto's choice: the model loads as before, without int8
    assert "int8" not in fallback.memory_format and fallback.capabilities.exact_batches
    assert fallback.model.int8_logits is None and all(not layer.int8 for layer in fallback.model.blocks)
    with pytest.raises(ModelLoadError, match="dtype int8: this torch cannot run 8-bit products"):
        EmbeddedBackend(tiny_model_dir, dtype="int8")  # asked for: said, not hidden
    monkeypatch.undo()
    monkeypatch.setattr(b, "native_int8", lambda device="cpu": False)
    assert "int8" not in EmbeddedBackend(tiny_model_dir).memory_format
    assert not m_native_int8("cuda") and not m_native_int8("mps")

    lossless, default = Settings(strategy="lossless"), Settings()
    assert lossless.backend_options()["exact_batches"] and not default.backend_options()["exact_batches"]
    assert lossless.backend_key() != default.backend_key()  # choosing lossless reloads the model in its format
    assert not Settings(backend="mercury", strategy="lossless").exact_batches()


def test_auto_dtype_is_bfloat16_only_where_the_device_multiplies_it(monkeypatch):
    from engine import model as m

    monkeypatch.setattr(m, "native_bf16", lambda device="cpu": True)
    assert m.compute_dtype("auto") == torch.bfloat16 and m.compute_dtype("float32") == torch.float32
    monkeypatch.setattr(m, "native_bf16", lambda device="cpu": False)
    assert m.compute_dtype("auto") == torch.float32 and m.compute_dtype("bfloat16") == torch.bfloat16
    with pytest.raises(ValueError, match="dtype 'int8'"):
        m.compute_dtype("int8")


def test_sessions_are_evicted_lru(tiny_model_dir):
    b = EmbeddedBackend(tiny_model_dir, max_sessions=2)
    for s in ("a", "b", "c"):
        b.prefill([1, 2, 3], s)
    assert list(b._caches) == ["b", "c"]


def test_roundtrip_save_load_is_exact(tiny_model_dir, tmp_path):
    from engine.model import save_model

    m = load_model(tiny_model_dir)
    save_model(m, tmp_path)
    m2 = load_model(tmp_path)
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), k


def test_truncated_weights_give_a_clear_error(tiny_model_dir, tmp_path):
    shutil.copytree(tiny_model_dir, tmp_path / "m")
    w = tmp_path / "m" / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="truncated or corrupted"):
        load_model(tmp_path / "m")


def test_corrupted_header_and_missing_files_give_clear_errors(tiny_model_dir, tmp_path):
    shutil.copytree(tiny_model_dir, tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(ModelLoadError, match="corrupted"):
        load_model(tmp_path / "m")
    with pytest.raises(ModelLoadError, match="config.json"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "m" / "config.json").write_text('{"model": {"dim": 64, "bogus": 1}}')
    with pytest.raises(ModelLoadError, match="unsupported"):
        load_model(tmp_path / "m")


def test_wrong_tokenizer_is_rejected(tiny_model_dir, tmp_path):
    shutil.copytree(tiny_model_dir, tmp_path / "m")
    (tmp_path / "m" / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="tokenizer"):
        EmbeddedBackend(tmp_path / "m")


def test_a_model_says_how_much_repository_context_it_was_trained_to_read(tiny_model_dir, tmp_path):
    import json

    from engine import DEFAULT_MODEL_DIR
    from engine.model import load_config

    assert EmbeddedBackend(tiny_model_dir).capabilities.repo_context == 0  # never trained with it: off
    shipped = load_config(DEFAULT_MODEL_DIR)
    assert shipped["examples"]["repo_p"] > 0 and shipped["serving"]["repo_context_budget"] > 0
    shutil.copytree(tiny_model_dir, tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**cfg, "serving": {"repo_context_budget": 192}}))
    b = EmbeddedBackend(tmp_path / "m")
    assert b.capabilities.repo_context == 192 and b.capabilities.as_json()["repoContext"] == 192
    assert EmbeddedBackend.capabilities.repo_context == 0  # the class's own capabilities are untouched
    (tmp_path / "m" / "config.json").write_text(json.dumps({**cfg, "serving": {"repo_context_budget": "lots"}}))
    with pytest.raises(ModelLoadError, match="repo_context_budget must be a number"):
        EmbeddedBackend(tmp_path / "m")


def test_a_new_session_reuses_the_memory_of_one_let_go_and_computes_the_same(tiny_model_dir):
    """Evicted and dropped caches are reused for the next new session (allocating a new one each time fragmented the
    heap); what was in them is never read: a reused cache gives what a fresh one gives."""
    fresh = EmbeddedBackend(tiny_model_dir, max_sessions=2)
    b = EmbeddedBackend(tiny_model_dir, max_sessions=2)
    for s in ("a", "b"):
        b.prefill([5, 6, 7, 8, 9, 10], s)
    first = {id(c) for c in b._caches.values()}
    ids = [1, 2, 3, 4]
    h = b.prefill(ids, "c")  # evicts "a": its cache, with another context in it, is "c"'s now
    assert list(b._caches) == ["b", "c"] and id(b._caches["c"]) in first
    canvas = torch.tensor([[fresh.special.mask] * 4])
    want = fresh.denoise(fresh.prefill(ids, "c"), canvas)
    assert torch.equal(b.denoise(h, canvas), want)
    b.drop_session("b")
    b.prefill(ids, "d")
    assert {id(c) for c in b._caches.values()} == first  # "b"'s dropped cache went to "d"
    assert len(b._caches) + len(b._spares) <= 2
    b.drop_session("d")  # a spare now: still memory held, and counted so
    assert b.cache_stats()["sessions"] == 1 and b.cache_stats()["bytes"] == 2 * b.cache_stats()["session_bytes"]
