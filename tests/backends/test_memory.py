"""engine/memory.py and tools/moe_memory.py: weights counted per tensor class on the tiny DiffusionGemma (the real
transformers classes, loaded through `from_pretrained`), what transformers' quantizers do to it, and the 26B's shapes
against the published totals."""

from __future__ import annotations

import json

import pytest
import torch

from engine import memory

pytest.importorskip("transformers", minversion="5.11")


@pytest.fixture(scope="module")
def bf16(tiny_dg_dir):
    from transformers import DiffusionGemmaForBlockDiffusion

    return DiffusionGemmaForBlockDiffusion.from_pretrained(tiny_dg_dir, dtype=torch.bfloat16)


def test_tied_weights_count_once_and_every_class_is_found(bf16):
    m = memory.measure(bf16)
    unique = {p.data_ptr(): p for p in bf16.parameters()}  # parameters() already drops tied duplicates
    assert sum(x.params for x in m.values()) == sum(p.numel() for p in unique.values())
    # the decoder shares the encoder's stack: experts are counted once, as 2 fused tensors per layer
    assert m["experts"].tensors == 2 * 2 and m["experts"].params == 2 * (2 * 32 * 32 + 2 * 32 * 16)
    assert m["embedding"].tensors == 1  # lm_head is tied to embed_tokens
    assert all(m[c].params > 0 for c in memory.CLASSES)
    assert all(m[c].bytes == 2 * m[c].params for c in memory.CLASSES if c != "other")  # bf16: 2 bytes each
    assert memory.weight_bytes(bf16) == sum(x.bytes for x in m.values())


def test_linear_quantizers_leave_experts_and_shared_weights_in_bf16(tiny_dg_dir, bf16):
    """The reason the `quantization` setting refuses them: they convert only Linear modules with untied weights."""
    pytest.importorskip("optimum.quanto")
    from transformers import DiffusionGemmaForBlockDiffusion, QuantoConfig

    params = {c: x.params for c, x in memory.measure(bf16).items()}
    q = DiffusionGemmaForBlockDiffusion.from_pretrained(tiny_dg_dir, dtype=torch.bfloat16, device_map="cpu",
                                                        quantization_config=QuantoConfig(weights="int8"))
    m = memory.measure(q, params)
    for c in ("experts", "attention", "dense_mlp", "embedding", "router"):
        assert m[c].bf16 == m[c].tensors and m[c].bytes == 2 * m[c].params, c  # untouched
    assert m["self_conditioning"].bf16 == 0  # only the decoder's own Linears (and the vision tower's) convert
    assert m["self_conditioning"].bytes < 1.2 * m["self_conditioning"].params  # int8 + a scale per row


def test_26b_shapes_match_the_published_totals():
    from tools.moe_memory import CONFIG_26B, PUBLISHED

    counts = memory.shape_counts(CONFIG_26B)
    text = sum(counts.values()) - counts["vision"]
    assert abs(text / 1e9 - PUBLISHED["total_b"]) < 0.1  # the card's 25.2B
    assert abs(counts["experts"] / 1e9 - PUBLISHED["experts_b"]) < 0.1  # RedHat's 22.8B
    assert counts["experts"] / sum(counts.values()) > 0.87
    bf16 = memory.estimate(counts, "bf16")
    assert bf16 == 2 * sum(counts.values())
    nvfp4 = memory.estimate(counts, "nvfp4")
    converted = counts["experts"] + counts["attention"] + counts["dense_mlp"]
    assert nvfp4 == converted * 4.5 / 8 + (sum(counts.values()) - converted) * 2
    assert nvfp4 / memory.GIB < 24 * 0.9 - 1  # fits one 24 GB GPU with vLLM's buffers


def test_checkpoint_formats_from_config(tmp_path):
    from tools.moe_memory import CONFIG_26B

    assert memory.checkpoint_format({}) == "bf16"
    assert memory.checkpoint_format({"quantization_config": {"quant_method": "modelopt", "quant_algo": "NVFP4"}}) \
        == "nvfp4"
    ct = {"quant_method": "compressed-tensors", "config_groups": {"group_0": {"weights": {"type": "float",
                                                                                          "num_bits": 8}}},
          "format": "float-quantized"}
    assert memory.checkpoint_format({"quantization_config": ct | {"format": "float8"}}) == "fp8"
    with pytest.raises(ValueError, match="unknown quantization_config"):
        memory.checkpoint_format({"quantization_config": {"quant_method": "awq", "bits": 4}})
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "diffusion_gemma", **CONFIG_26B,
                                                      "quantization_config": {"quant_algo": "NVFP4"}}))
    fmt, nbytes = memory.checkpoint_estimate(tmp_path)
    assert fmt == "nvfp4" and nbytes == memory.estimate(memory.shape_counts(CONFIG_26B), "nvfp4")


def test_the_tool_measures_and_tables(tmp_path):
    """tools/moe_memory.py end to end on the tiny widths: every quantizer installed here measured or its error kept."""
    from tools import moe_memory

    out, readme = tmp_path / "m.json", tmp_path / "README.md"
    readme.write_text(f"# x\n{moe_memory.README_START}\nold table\n{moe_memory.README_END}\nafter\n")
    assert moe_memory.main(["--widths", "tiny", "--out", str(out), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old table" not in text and text.endswith(f"{moe_memory.README_END}\nafter\n")
    assert "| NVFP4 (ModelOpt) | vLLM, pre-quantized checkpoint |" in text
    data = json.loads(out.read_text())
    rows = {r["option"]: r for r in data["table"]}
    assert rows["bf16"]["measured"] and rows["bf16"]["forward"] == "ok"
    assert abs(rows["bf16"]["bytes"] - 2 * data["check"]["total_b"] * 1e9) / rows["bf16"]["bytes"] < 0.01
    for name in ("quanto-int8", "bnb-8bit", "torchao-int8"):
        r = rows.get(name, {})
        if "bytes" in r:  # installed: shrinks by a few percent at most
            assert 0.9 * rows["bf16"]["bytes"] < r["bytes"] < rows["bf16"]["bytes"]
            assert r["bf16_share"] > 0.9
    assert rows["NVFP4 (ModelOpt)"]["fits_24"] and not rows["bf16"]["fits_24"]


def test_transformers_backend_refuses_quantizers_that_would_not_shrink_it_and_reports_its_memory(tiny_dg_dir, bf16):
    from engine.backends.transformers import LINEAR_QUANTIZERS, make_backend
    from engine.model import ModelLoadError

    for name in LINEAR_QUANTIZERS:
        with pytest.raises(ModelLoadError, match=f"quantization '{name}' would not shrink DiffusionGemma: .* backend "
                                                 "'vllm' with a pre-quantized NVFP4 checkpoint"):
            make_backend("transformers", model_path=str(tiny_dg_dir), quantization=name)
    with pytest.raises(ModelLoadError, match="unknown quantization 'int3'"):
        make_backend("transformers", model_path=str(tiny_dg_dir), quantization="int3")
    be = make_backend("transformers", model_path=str(tiny_dg_dir), dtype="bfloat16", threads=1)
    assert be.memory_estimate_bytes == memory.weight_bytes(bf16) and be.memory_format == "bfloat16"
