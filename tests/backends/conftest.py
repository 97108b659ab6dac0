"""A tiny, randomly initialised DiffusionGemma (and a tiny Gemma-style tokenizer) saved like a real checkpoint.

The real checkpoint is 26B parameters and is not available here; this one has the same architecture (encoder and
decoder, sliding and full attention layers, MoE, self-conditioning) at toy size, so the loading path and every
forward of the backend run for real on CPU. Its outputs are random tokens: tests assert behaviour, not quality.
"""

from __future__ import annotations

import string

import pytest

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{{ m['content'] }}<turn|>\n{% endfor %}{% if add_generation_prompt %}<|turn>model\n{% endif %}"
)
CHAT_SPECIALS = ["<|turn>", "<turn|>", "<|channel>", "<channel|>"]
CANVAS = 8  # the tiny model's canvas_length (the real one: 256)
STEPS = 6  # max_denoising_steps in the tiny model's generation_config.json (the real one: 48)
WINDOW = 8  # sliding window of the tiny model: small, so prompts overflow it and the window logic is exercised


def build_tokenizer(out_dir):
    """A Gemma-style tokenizer (BPE over characters with byte fallback) with the Gemma 4 chat tokens."""
    from transformers import GemmaTokenizer

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    for t in CHAT_SPECIALS:
        vocab[t] = len(vocab)
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for ch in "\u2581" + string.ascii_letters + string.digits + string.punctuation:
        vocab.setdefault(ch, len(vocab))
    merges = [("\u2581", "\u2581")]  # one merge: indentation as pairs of spaces, as real tokenizers have
    vocab["\u2581\u2581"] = len(vocab)
    tok = GemmaTokenizer(vocab=vocab, merges=merges, extra_special_tokens=CHAT_SPECIALS)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(out_dir)
    return tok


def build_model(out_dir, vocab_size: int):
    import torch
    from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion
    from transformers.models.diffusion_gemma.generation_diffusion_gemma import (
        DiffusionGemmaGenerationConfig,
        EntropyBoundSamplerConfig,
    )

    cfg = DiffusionGemmaConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, global_head_dim=16,
                         num_global_key_value_heads=1, sliding_window=WINDOW,
                         layer_types=["sliding_attention", "full_attention"], num_experts=2, top_k_experts=1,
                         moe_intermediate_size=16, max_position_embeddings=4096, pad_token_id=0, eos_token_id=1,
                         bos_token_id=2),
        vision_config=dict(model_type="gemma4_vision", hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=1, num_key_value_heads=1, head_dim=16, patch_size=4,
                           position_embedding_size=16),
        canvas_length=CANVAS, boi_token_id=vocab_size - 3, eoi_token_id=vocab_size - 2, image_token_id=vocab_size - 1)
    torch.manual_seed(0)
    model = DiffusionGemmaForBlockDiffusion(cfg).eval()
    with torch.no_grad():  # embeddings (tied to the output head) at unit scale: peaked logits, as a trained model has
        model.lm_head.weight.normal_(0.0, 1.0)
    model.generation_config = DiffusionGemmaGenerationConfig(  # few steps: the tests' forwards stay cheap
        max_denoising_steps=STEPS, sampler_config=EntropyBoundSamplerConfig(entropy_bound=0.5), t_min=0.4, t_max=0.8,
        stability_threshold=1, confidence_threshold=0.005)
    model.save_pretrained(out_dir)


@pytest.fixture(scope="session")
def tiny_dg_dir(tmp_path_factory):
    pytest.importorskip("transformers", minversion="5.11")
    d = tmp_path_factory.mktemp("diffusiongemma-tiny")
    tok = build_tokenizer(d)
    build_model(d, vocab_size=len(tok) + 3)  # + image tokens, as the real vocabulary has them past the text ones
    return d
