"""DiffusionGemma 26B's weight memory per way of running it: transformers' quantizers measured, checkpoints computed.

    python tools/moe_memory.py                 measure on a real-width model, write docs/results/moe_memory.json,
                                               print the README's table (markdown); --readme README.md writes it there
    python tools/moe_memory.py --widths tiny   the same on the tests' tiny widths (fast; per-row scale overheads
                                               are then far larger than at the real widths)

1. Measured (CPU): a random DiffusionGemma with the 26B's real layer widths (hidden 2816, 16 heads, head dims 256/512,
   dense MLP 2112, experts 704 wide, the vision tower's widths) but 2 layers (one sliding, one full attention), 4
   experts and a small vocabulary is saved as safetensors and loaded back through `from_pretrained` in bf16 and with
   each quantizer installed here (transformers' QuantoConfig, BitsAndBytesConfig, TorchAoConfig), and in bf16 then
   with its experts quantized by engine.quant (experts-int8, experts-int4; their logits' drift from bf16 is kept in
   the JSON). Bytes are counted
   per tensor class (engine.memory: unique storages, quantized data and scales), with how many tensors of each class
   stayed bf16, and one forward checks that the quantized model still runs. A quantizer that fails is reported with
   its error.
2. Computed: the 26B's parameters per class come from the published config (CONFIG_26B below), built with
   transformers' own classes on the meta device; each measured quantizer's bytes per parameter, class by class,
   times those counts is its memory; pre-quantized checkpoints (NVFP4 for vLLM, FP8 per channel, GGUF Q4_0 for
   llama.cpp) follow their formats' definitions (engine.memory.FORMATS).

Weights only: the KV cache, activations and vLLM's buffers come on top (see vllm_buffers below).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.memory import CLASSES, FORMATS, GIB, estimate, measure, shape_counts  # noqa: E402
from engine.quant import SCHEMES, quantize_experts  # noqa: E402

OUT = ROOT / "docs" / "results" / "moe_memory.json"

# google/diffusiongemma-26B-A4B-it's config.json (huggingface.co/google/diffusiongemma-26B-A4B-it): the text values
# as copies of that file give them (they match Gemma 4 26B-A4B's, whose backbone it is); the vision tower's widths
# are Gemma 4 26B's. The script checks the result against the model card's published totals (PUBLISHED).
CONFIG_26B: dict[str, Any] = {
    "text_config": {
        "vocab_size": 262_144, "hidden_size": 2816, "intermediate_size": 2112, "num_hidden_layers": 30,
        "num_attention_heads": 16, "num_key_value_heads": 8, "num_global_key_value_heads": 2, "head_dim": 256,
        "global_head_dim": 512, "sliding_window": 1024, "num_experts": 128, "top_k_experts": 8,
        "moe_intermediate_size": 704, "max_position_embeddings": 262_144,
    },
    "vision_config": {"model_type": "gemma4_vision", "hidden_size": 1152, "intermediate_size": 4304,
                      "num_hidden_layers": 27, "num_attention_heads": 16, "num_key_value_heads": 16, "head_dim": 72},
    "canvas_length": 256,
}
# Published totals the computed counts are checked against: the model card (25.2B total, 3.8B active) and RedHat's
# FP8-dynamic card (experts 22.8B of ~25.8B).
PUBLISHED = {"total_b": 25.2, "experts_b": 22.8}
README_START = "<!-- tools/moe_memory.py --readme README.md writes this table -->"  # the README's table is between
README_END = "<!-- end of tools/moe_memory.py's table -->"  # these two lines
GPU_GIB = 24  # the consumer GPU the table is about (RTX 4090 / 5090 class)
VLLM_UTILIZATION = 0.9  # vLLM's --gpu-memory-utilization: the share of the GPU it may take


def vllm_buffers(max_num_seqs: int = 4, canvas: int = 256, vocab: int = 262_144) -> int:
    """vLLM's self-conditioning buffers for DiffusionGemma: max_num_seqs x canvas x vocab fp32 (the recipe's
    reason for --max-num-seqs 4)."""
    return max_num_seqs * canvas * vocab * 4


def measure_config(widths: str) -> dict:
    """The DiffusionGemma config measured on: the 26B's widths with few layers and experts, or the tests' tiny one."""
    if widths == "tiny":
        text = {"vocab_size": 512, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16, "global_head_dim": 16,
                "num_global_key_value_heads": 1, "sliding_window": 8, "num_experts": 2, "top_k_experts": 1,
                "moe_intermediate_size": 16}
        vision = {"model_type": "gemma4_vision", "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                  "num_attention_heads": 1, "num_key_value_heads": 1, "head_dim": 16, "patch_size": 4,
                  "position_embedding_size": 16}
    else:
        text = {**CONFIG_26B["text_config"], "vocab_size": 4096, "num_hidden_layers": 2, "num_experts": 4,
                "top_k_experts": 2, "max_position_embeddings": 4096}
        vision = {**CONFIG_26B["vision_config"], "num_hidden_layers": 1}
    text |= {"layer_types": ["sliding_attention", "full_attention"], "pad_token_id": 0, "eos_token_id": 1,
             "bos_token_id": 2}
    v = text["vocab_size"]
    return {"text_config": text, "vision_config": vision, "canvas_length": 8, "boi_token_id": v - 3,
            "eoi_token_id": v - 2, "image_token_id": v - 1}


def quantizers() -> dict[str, Any]:
    """name -> a transformers quantization config, for every quantizer whose package imports here (else its error)."""
    import transformers as tf

    out: dict[str, Any] = {}
    for name, make in (
        ("quanto-int8", lambda: tf.QuantoConfig(weights="int8")),
        ("quanto-int4", lambda: tf.QuantoConfig(weights="int4")),
        ("bnb-8bit", lambda: tf.BitsAndBytesConfig(load_in_8bit=True)),
        ("bnb-4bit", lambda: tf.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")),
        ("torchao-int8", lambda: tf.TorchAoConfig(quant_type=_ao("Int8WeightOnlyConfig")())),
        ("torchao-int4", lambda: tf.TorchAoConfig(quant_type=_ao("Int4WeightOnlyConfig")(group_size=128))),
    ):
        try:
            out[name] = make()
        except Exception as exc:  # the package is missing or refuses this machine: say so in the table
            out[name] = exc
    return out


def _ao(name: str) -> Any:
    """A torchao config class that quantizes a bf16 Linear on this machine: transformers only reports a failed
    conversion as "issues during automatic conversion", so one small Linear is tried first for the real reason."""
    import torchao.quantization as q

    cls = getattr(q, name)

    def make(**kw: Any) -> Any:
        cfg = cls(**kw)
        q.quantize_(torch.nn.Sequential(torch.nn.Linear(256, 256, bias=False)).to(torch.bfloat16), cfg)
        return cfg

    return make


def measure_all(widths: str) -> dict:
    """Build, save, and load the measured model with each quantizer; bytes per class and what stayed bf16."""
    from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion

    cfg = DiffusionGemmaConfig(**measure_config(widths))
    torch.manual_seed(0)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        DiffusionGemmaForBlockDiffusion(cfg).to(torch.bfloat16).save_pretrained(d)
        base = DiffusionGemmaForBlockDiffusion.from_pretrained(d, dtype=torch.bfloat16)
        ref = measure(base)
        params = {c: m.params for c, m in ref.items()}
        results["bf16"] = _row(ref, _forward(base, cfg), 0.0)
        del base
        for name, qc in quantizers().items():
            if isinstance(qc, Exception):
                results[name] = {"error": f"{type(qc).__name__}: {qc}"[:400]}
                continue
            t0 = time.perf_counter()
            try:
                model = DiffusionGemmaForBlockDiffusion.from_pretrained(d, dtype=torch.bfloat16,
                                                                        quantization_config=qc, device_map="cpu")
            except Exception as exc:  # e.g. a kernel package the quantizer needs is not there
                results[name] = {"error": f"{type(exc).__name__}: {exc}"[:400]}
                continue
            results[name] = _row(measure(model, params), _forward(model, cfg), time.perf_counter() - t0)
            del model
        for name in SCHEMES:  # engine.quant: the fused experts themselves, after a bf16 load
            t0 = time.perf_counter()
            model = DiffusionGemmaForBlockDiffusion.from_pretrained(d, dtype=torch.bfloat16)
            quantize_experts(model, name)
            results[name] = _row(measure(model, params), _forward(model, cfg), time.perf_counter() - t0)
            results[name]["error_vs_bf16"] = _drift(model, d, cfg)
            del model
    return {"widths": widths, "config": measure_config(widths), "results": results}


def _drift(model: Any, d: str, cfg: Any) -> dict:
    """How far the quantized model's logits are from the bf16 model's on one forward (random weights: a harder case
    for rounding than trained ones, and no measure of a real model's quality)."""
    from transformers import DiffusionGemmaForBlockDiffusion

    ref = DiffusionGemmaForBlockDiffusion.from_pretrained(d, dtype=torch.bfloat16)
    with torch.no_grad():
        ids, canvas = torch.tensor([[2, 10, 11, 12]]), torch.tensor([[20, 21, 22, 23]])  # (1, 4) each
        a = ref(input_ids=ids, decoder_input_ids=canvas).logits.float()  # (1, 4, V)
        b = model(input_ids=ids, decoder_input_ids=canvas).logits.float()  # (1, 4, V)
    return {"max_abs_logit": round(float((a - b).abs().max()), 4), "logit_std": round(float(a.std()), 4),
            "argmax_agree": round(float((a.argmax(-1) == b.argmax(-1)).float().mean()), 4)}


def _forward(model: Any, cfg: Any) -> str:
    """One encoder + decoder forward: "ok" or the error (a quantized model that cannot run is no option)."""
    try:
        with torch.no_grad():
            ids = torch.tensor([[2, 10, 11, 12]])  # (1, 4)
            canvas = torch.tensor([[20, 21, 22, 23]])  # (1, 4)
            out = model(input_ids=ids, decoder_input_ids=canvas)
        return "ok" if torch.isfinite(out.logits.float()).all() else "non-finite logits"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:200]


def _row(m: dict, forward: str, seconds: float) -> dict:
    return {"forward": forward, "load_s": round(seconds, 2),
            "classes": {c: {"params": x.params, "bytes": x.bytes, "tensors": x.tensors, "bf16_tensors": x.bf16,
                            "bytes_per_param": round(x.bytes / x.params, 4) if x.params else None}
                        for c, x in m.items()}}


def table(measured: dict) -> tuple[list[dict], dict]:
    """The 26B's rows: measured quantizers scaled class by class, pre-quantized formats computed."""
    counts = shape_counts(CONFIG_26B)
    total = sum(counts.values())
    rows = []
    for name, r in measured["results"].items():
        if "error" in r:
            rows.append({"option": name, "how": "transformers, in process", "error": r["error"]})
            continue
        per = {c: r["classes"][c]["bytes_per_param"] or 2.0 for c in CLASSES}
        nbytes = sum(counts[c] * per[c] for c in CLASSES)
        stayed = sum(counts[c] for c in CLASSES if per[c] >= 1.99)  # classes the quantizer left in bf16
        how = ("transformers or vLLM, the released checkpoint" if name == "bf16" else
               "transformers backend, `quantization` (engine.quant)" if name in SCHEMES else "transformers, in process")
        rows.append({"option": name, "how": how, "bytes": nbytes, "forward": r["forward"],
                     "bf16_share": stayed / total, "measured": True})
    for key in ("nvfp4", "fp8", "gguf-q4_0"):
        f = FORMATS[key]
        how = {"nvfp4": "vLLM, pre-quantized checkpoint", "fp8": "vLLM, pre-quantized checkpoint",
               "gguf-q4_0": "llama.cpp's diffusion CLI, GGUF"}[key]
        stayed = sum(counts[c] for c in CLASSES if c not in f.converts and not (key == "gguf-q4_0" and c == "vision"))
        rows.append({"option": f.name, "how": how, "bytes": estimate(counts, key), "bf16_share": stayed / total,
                     "measured": False, "note": f.note})
    for row in rows:
        if "bytes" in row:
            extra = vllm_buffers() if row["how"].startswith("vLLM") else 0
            row["gib"] = row["bytes"] / GIB
            row["fits_24"] = (row["bytes"] + extra) / GIB <= GPU_GIB * VLLM_UTILIZATION
    check = {"total_b": total / 1e9, "text_b": (total - counts["vision"]) / 1e9, "experts_b": counts["experts"] / 1e9,
             "experts_share": counts["experts"] / total, "published": PUBLISHED, "counts": counts,
             "vllm_buffers_gib": vllm_buffers() / GIB}
    return rows, check


def markdown(rows: list[dict], check: dict, widths: str) -> str:
    lines = [f"DiffusionGemma 26B-A4B: {check['total_b']:.2f}B parameters computed from the published config "
             f"(text {check['text_b']:.2f}B; the card says {PUBLISHED['total_b']}B), experts "
             f"{check['experts_b']:.2f}B = {check['experts_share']:.0%} (RedHat's card: {PUBLISHED['experts_b']}B).",
             "",
             f"| option | runs with | weights (GiB) | left in bf16 | fits one {GPU_GIB} GB GPU | how we know |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['option']} | {r['how']} | - | - | - | failed here: {r['error'][:120]} |")
            continue
        how = (f"measured ({widths} widths), forward {r['forward']}" if r["measured"] else "computed from the format")
        lines.append(f"| {r['option']} | {r['how']} | {r['gib']:.1f} | {r['bf16_share']:.0%} | "
                     f"{'yes' if r['fits_24'] else 'no'} | {how} |")
    lines += ["", f"Weights only. vLLM adds {check['vllm_buffers_gib']:.1f} GiB of self-conditioning buffers "
              f"(--max-num-seqs 4), counted in the fits column with --gpu-memory-utilization {VLLM_UTILIZATION}; "
              "KV cache and activations come on top."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--widths", choices=("real", "tiny"), default="real")
    p.add_argument("--out", type=Path, default=OUT, help="where the measurements go (JSON)")
    p.add_argument("--readme", type=Path, default=None, help="also replace the table in this README")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    measured = measure_all(args.widths)
    rows, check = table(measured)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"measured": measured, "table": rows, "check": check}, indent=1) + "\n",
                        encoding="utf-8")
    text = markdown(rows, check, args.widths)
    print(text)
    if args.readme:
        readme = args.readme.read_text(encoding="utf-8")
        start, end = readme.index(README_START) + len(README_START), readme.index(README_END)
        args.readme.write_text(readme[:start] + "\n" + text + "\n" + readme[end:], encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
