"""Tiny random stand-ins for masked-diffusion code models, saved like real checkpoints.

Dream-Coder, DiffuCoder and Open-dCoder are Qwen2 models trained as diffusion models (attention both ways, the logit
at i predicting token i + 1); LLaDA is a Llama-like mask predictor (no shift). None of their weights are here, so
these are transformers' own Qwen2 and Llama classes at toy size with random weights, a byte-level BPE tokenizer with
a `<|mask|>` token, saved with save_pretrained: the backend's loading path and every forward run for real on CPU.
Their outputs are random tokens: tests assert behaviour, not quality.
"""

from __future__ import annotations

import json

SPECIALS = ["<|endoftext|>", "<|mask|>", "<|im_start|>"]  # eos = pad (Dream), the mask, a control token
EXTRA_VOCAB = 5  # the embedding is larger than the tokenizer, as Qwen's (151936 rows, ~151k tokens)
WORDS = ["def", "return", "self", "for", "in", "if", "else", "print", "value", "    "]


def build_tokenizer(out_dir, mask: bool = True, mask_in_vocab: bool = True):
    """A Qwen-style byte-level BPE (no BOS): eos = pad = <|endoftext|>, mask_token <|mask|>; `mask` False: the
    token is in the vocabulary but not named the mask token; `mask_in_vocab` False: no such token at all."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)}
    merges = []
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    for w in WORDS:  # a few merges, so some tokens span several characters as real ones do
        word = byte_level.pre_tokenize_str(w)[0][0]
        cur = word[0]
        for ch in word[1:]:
            merges.append((cur, ch))
            cur += ch
            vocab.setdefault(cur, len(vocab))
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tk.pre_tokenizer = byte_level
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([t for t in SPECIALS if mask_in_vocab or t != "<|mask|>"])
    hf = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                 mask_token="<|mask|>" if mask else None, additional_special_tokens=["<|im_start|>"])
    hf.save_pretrained(out_dir)
    return hf


def _dims(vocab_size: int) -> dict:
    return dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512)


def build_qwen2(out_dir, tok, seed: int = 0, **config):
    """A Dream/Open-dCoder-shaped model: transformers' Qwen2ForCausalLM, attention made both ways in the checkpoint
    (`is_causal: false`, as Open-dCoder runs it), unit-scale embeddings tied to the head (peaked logits, as a trained
    model has)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(**_dims(len(tok) + EXTRA_VOCAB), tie_word_embeddings=True, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, **config)
    cfg.is_causal = False
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():
        model.model.embed_tokens.weight.normal_(0.0, 1.0)
    model.save_pretrained(out_dir)
    return model


def build_llama(out_dir, tok, seed: int = 1):
    """A LLaDA-shaped model: transformers' LlamaForCausalLM at toy size (LLaDA's own class is remote code)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(**_dims(len(tok) + EXTRA_VOCAB), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        model.model.embed_tokens.weight.normal_(0.0, 1.0)
        model.lm_head.weight.normal_(0.0, 1.0)
    model.save_pretrained(out_dir)
    return model


REMOTE_CONFIG = '''from transformers import Qwen2Config


class DreamConfig(Qwen2Config):
    model_type = "Dream"
'''

REMOTE_MODEL = '''from transformers import Qwen2ForCausalLM

from .configuration_dream import DreamConfig


class DreamModel(Qwen2ForCausalLM):
    """Dream's shape: a Qwen2 whose attention runs both ways, mapped under AutoModel only."""

    config_class = DreamConfig

    def __init__(self, config):
        config.is_causal = False
        super().__init__(config)
        for module in self.modules():
            if hasattr(module, "is_causal"):
                module.is_causal = False
'''


def build_remote_dream(out_dir, tok, seed: int = 2):
    """A checkpoint that ships its model code as Dream's does (model_type "Dream", `auto_map` to AutoModel only, the
    mask id in its config): written here, so trustRemoteCode runs local files only."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(**_dims(len(tok) + EXTRA_VOCAB), tie_word_embeddings=True, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    Qwen2ForCausalLM(cfg).save_pretrained(out_dir)
    (out_dir / "configuration_dream.py").write_text(REMOTE_CONFIG)
    (out_dir / "modeling_dream.py").write_text(REMOTE_MODEL)
    path = out_dir / "config.json"
    data = json.loads(path.read_text())
    data.update(model_type="Dream", architectures=["DreamModel"], mask_token_id=tok.mask_token_id,
                auto_map={"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"})
    path.write_text(json.dumps(data, indent=2))
