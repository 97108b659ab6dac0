"""Shared fixtures for infill tests: a tokenizer (the shipped one when present, else a small one trained here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # lets `pytest tests/infill` import infill/ and engine/ without an installed package
    sys.path.insert(0, str(ROOT))

from engine.tokenizer import SPECIAL_NAMES, Tokenizer  # noqa: E402

SHIPPED = ROOT / "engine" / "assets" / "model" / "tokenizer.json"

# Specials in id order: the trained tokenizer puts them first, in this order.
SPECIALS = [
    "<|pad|>",
    "<|mask|>",
    "<|endoftext|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|file_sep|>",
    "<|rewrite|>",
]
assert sorted(SPECIALS) == sorted(SPECIAL_NAMES.values())

TRAINING_TEXT = [
    "def add(a, b):\n    return a + b\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n",
    "    def push(self, x):\n        self.items.append(x)\n",
    "for i in range(10):\n    if i % 2 == 0:\n        print(i)\n    else:\n        continue\n",
    "function f(a) {\n  if (a > 1) { return g(a, 2); }\n  const z = () => a;\n}\n",
    'fn main() {\n    let x = vec![1, 2, 3];\n    println!("{:?}", x);\n}\n',
    "int main(void) {\n    for (int i = 0; i < n; i++) { sum += a[i]; }\n    return 0;\n}\n",
    "package main\nfunc f() error {\n\tif err != nil {\n\t\treturn err\n\t}\n\treturn nil\n}\n",
    '# comment\n"""Docstring with words."""\nimport os\nx = {\'key\': [1, 2.5, None, True]}\n',
]


def build_small_tokenizer(path: Path, vocab_size: int = 600) -> Path:
    """Train a tiny byte-level BPE with our 8 specials first (ids 0..7) and save it to path."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    hf.train_from_iterator(TRAINING_TEXT * 4, trainer=trainer)
    hf.save(str(path))
    return path


@pytest.fixture(scope="session")
def tok(tmp_path_factory) -> Tokenizer:
    """The shipped tokenizer if it exists, else a small one trained on a few strings."""
    if SHIPPED.exists():
        return Tokenizer.from_file(SHIPPED)
    return Tokenizer.from_file(build_small_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.json"))
