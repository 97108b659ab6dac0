"""engine/: token ids in, token ids out. The diffusion model, its KV cache, the denoising sampler, the backends."""

from pathlib import Path

ASSETS = Path(__file__).parent / "assets"
DEFAULT_MODEL_DIR = ASSETS / "model"  # the shipped embedded model: config.json, model.safetensors, tokenizer.json
