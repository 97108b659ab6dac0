"""Shared fixtures: the repository root on sys.path, a small random two-mode model in the shipped format."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

# Tests use small models: one thread avoids oversubscribing a shared machine (and its spin-wait stalls).
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised model of the engine's architecture, saved exactly as shipped models are."""
    from engine import DEFAULT_MODEL_DIR
    from engine.model import DiffusionLM, ModelConfig, save_model
    from engine.tokenizer import Tokenizer

    d = tmp_path_factory.mktemp("tiny_model")
    tok = Tokenizer.from_file(DEFAULT_MODEL_DIR / "tokenizer.json")
    model = DiffusionLM(ModelConfig(vocab_size=tok.vocab_size, dim=64, n_layers=2, n_heads=2, ffn_dim=128,
                                    max_seq_len=1024))
    model.init_weights(seed=1)
    save_model(model, d, extra_config={"name": "tiny-random-test"})
    shutil.copyfile(DEFAULT_MODEL_DIR / "tokenizer.json", d / "tokenizer.json")
    if (DEFAULT_MODEL_DIR / "finalizer.safetensors").exists():  # the `learned` strategy's classifier, as shipped
        shutil.copyfile(DEFAULT_MODEL_DIR / "finalizer.safetensors", d / "finalizer.safetensors")
    return d
