"""engine/quant.py: DiffusionGemma's fused experts quantized weight-only, on the tiny random DiffusionGemma loaded
through the real path; the transformers backend's `quantization` setting built on it."""

from __future__ import annotations

import os

import pytest
import torch

from engine import memory, quant

pytest.importorskip("transformers", minversion="5.11")

DEVICE = os.environ.get("DIFFUSION_LS_TEST_DEVICE", "cpu")


@pytest.mark.parametrize("bits, group", [(8, 64), (4, 32), (4, 16)])
def test_rows_round_trip_within_half_a_step(bits, group):
    w = torch.randn(3, 6, 64, generator=torch.Generator().manual_seed(0))  # (E, O, I)
    q, scale = quant.quantize_rows(w, bits, group)
    assert q.shape == (3, 6, 64 if bits == 8 else 32) and scale.shape == (3, 6, 64 // group)
    assert scale.dtype == torch.bfloat16 and q.dtype == (torch.int8 if bits == 8 else torch.uint8)
    back = torch.stack([quant.dequantize(q[e], scale[e], bits, group, torch.float32) for e in range(3)])  # (E, O, I)
    step = scale.float().repeat_interleave(group, dim=-1)  # (E, O, I): one quantization step per value
    # rounding is off by at most half a step, plus the bf16 rounding of the scale itself (2^-8 relative)
    assert ((back - w).abs() <= 0.5 * step + w.abs() * 2**-8 + 1e-6).all()
    with pytest.raises(ValueError, match="does not split into groups"):
        quant.quantize_rows(w[..., :60], bits, 64)
    assert quant.group_for(2816, 32) == 32 and quant.group_for(704, 64) == 64 and quant.group_for(16, 32) == 16


@pytest.fixture(scope="module")
def models(tiny_dg_dir):
    from transformers import DiffusionGemmaForBlockDiffusion

    def load():
        return DiffusionGemmaForBlockDiffusion.from_pretrained(tiny_dg_dir, dtype=torch.bfloat16)

    return load


@pytest.mark.parametrize("scheme, bytes_per_param", [("experts-int8", 1.0), ("experts-int4", 0.5)])
def test_quantized_experts_keep_sharing_shrink_and_track_the_bf16_forward(models, scheme, bytes_per_param):
    ref, model = models(), models()
    params = {c: x.params for c, x in memory.measure(ref).items()}
    assert quant.quantize_experts(model, scheme) == 2
    enc, dec = model.model.encoder.language_model.layers, model.model.decoder.layers
    assert all(a.experts is b.experts and isinstance(a.experts, quant.QuantizedExperts) for a, b in zip(enc, dec))
    m = memory.measure(model, params)
    bits, group = quant.SCHEMES[scheme]
    # the codes plus one bf16 scale per group (toy widths use smaller groups: more scale bytes)
    assert bytes_per_param < m["experts"].bytes / m["experts"].params <= bytes_per_param + 2 * 2 / 16
    for c in ("attention", "dense_mlp", "embedding"):
        assert m[c].bytes == 2 * m[c].params  # untouched
    ids, canvas = torch.tensor([[2, 40, 41, 42, 43]]), torch.tensor([[50, 51, 52, 53]])  # (1, 5), (1, 4)
    with torch.no_grad():
        a = ref(input_ids=ids, decoder_input_ids=canvas).logits.float()  # (1, 4, V)
        b = model(input_ids=ids, decoder_input_ids=canvas).logits.float()  # (1, 4, V)
    assert not torch.equal(a, b)  # the experts really run quantized
    # measured on this random model: int8 moves the logits by ~1% of their spread, int4 by more; argmax mostly kept
    assert (a - b).abs().max() < (0.1 if bits == 8 else 0.5) * (a.max() - a.min())


def test_transformers_backend_loads_with_quantized_experts(tiny_dg_dir):
    from engine.backends.transformers import make_backend
    from engine.sampler import CanvasSpec, denoise_stream

    plain = make_backend("transformers", model_path=str(tiny_dg_dir), dtype="bfloat16", threads=1, device=DEVICE)
    be = make_backend("transformers", model_path=str(tiny_dg_dir), dtype="bfloat16", threads=1, device=DEVICE,
                      quantization="experts-int4")
    assert be.memory_estimate_bytes < plain.memory_estimate_bytes and be.memory_format == "bfloat16, experts-int4"
    assert be.memory_estimate_bytes == memory.weight_bytes(be.model)
    experts = be.model.model.encoder.language_model.layers[0].experts
    assert isinstance(experts, quant.QuantizedExperts) and experts.gate_up_q.device.type == DEVICE.split(":")[0]
    ctx = be.prompter.infill("def f(x):\n    return ", "\n", "python")
    h = be.prefill(ctx, "q")
    spec = CanvasSpec([be.special.mask] * 8, [False] * 8, [(0, 8)])
    states = list(denoise_stream(be, h, spec, be.sampler_config(steps=4)))
    assert states[-1].done and len(states[-1].ids) >= 8
