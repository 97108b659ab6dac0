"""Chat prompts for a diffusion model without FIM tokens: pure functions over a stand-in tokenizer (one id per
character, Gemma's chat tokens as single ids), so they run without transformers."""

from __future__ import annotations

import pytest

from engine.backends.prompting import CURSOR, ChatPrompter, PromptConfig
from engine.tokenizer import SpecialIds

TOKENS = {"<bos>": 2, "<|turn>": 5, "<turn|>": 6, "<|channel>": 7, "<channel|>": 8}


class CharTokenizer:
    vocab_size = 1000

    def __init__(self, chat_tokens: bool = True) -> None:
        self.tokens = TOKENS if chat_tokens else {"<bos>": 2}
        self.special = SpecialIds(pad=0, mask=4, eos=1, fim_prefix=2, fim_middle=6, fim_suffix=5, file_sep=1,
                                  rewrite=7)

    def encode(self, text: str) -> list[int]:
        ids, i = [], 0
        while i < len(text):
            name = next((n for n in self.tokens if text.startswith(n, i)), None)
            ids.append(self.tokens[name] if name else 100 + ord(text[i]))
            i += len(name) if name else 1
        return ids

    def decode(self, ids: list[int]) -> str:
        names = {v: k for k, v in self.tokens.items()}
        return "".join(names.get(i, chr(i - 100) if i >= 100 else "") for i in ids)

    def token_id(self, token: str) -> int | None:
        return self.tokens.get(token)

    def chat_ids(self, messages, add_generation_prompt=True, **kwargs):
        assert kwargs == {"enable_thinking": False}
        text = "<bos>" + "".join(f"<|turn>user\n{m['content']}<turn|>\n" for m in messages)
        return self.encode(text + ("<|turn>model\n" if add_generation_prompt else ""))


PREFIX = "import os\n\ndef home():\n    return os.environ['HO"
SUFFIX = "ME']\n\nprint(home())\n"


def test_infill_answer_continues_the_cursor_line():
    tok = CharTokenizer()
    text = tok.decode(ChatPrompter(tok).infill(PREFIX, SUFFIX, "python"))
    assert text.endswith("<|turn>model\n<|channel>thought\n<channel|>```python\n    return os.environ['HO")
    user = text[: text.index("<turn|>")]
    after, before = "Code after the cursor:\n```python\nME']", "Code before the cursor:\n```python\nimport"
    assert user.index(after) < user.index(before)
    assert user.rstrip().endswith("return os.environ['HO\n```")  # the prefix is the last thing the user turn holds


def test_layouts_scaffold_and_fence_are_options():
    tok = CharTokenizer()
    psm = tok.decode(ChatPrompter(tok, PromptConfig(layout="psm", fence=False, lead=False)).infill(PREFIX, SUFFIX))
    assert f"os.environ['HO{CURSOR}ME']" in psm and psm.endswith("<channel|>")
    plain = CharTokenizer(chat_tokens=False)  # a template without Gemma 4's thought channel: no scaffold
    assert ChatPrompter(plain).answer_head("go", "x := ") == "```go\nx := "
    assert ChatPrompter(tok, PromptConfig(thinking=True)).scaffold == ""
    with pytest.raises(ValueError, match="layout"):
        PromptConfig(layout="middle")


def test_rewrite_shows_the_selection_and_the_task():
    tok = CharTokenizer()
    text = tok.decode(ChatPrompter(tok).rewrite("x = ", "a+b", "\n", "add spaces", "python"))
    assert "add spaces" in text and "Selected code:\n```python\na+b\n```" in text
    assert text.endswith("<channel|>```python\n")
    assert "Fix mistakes" in tok.decode(ChatPrompter(tok).rewrite("", "a", "", language="python"))


@pytest.mark.parametrize("answer, fill", [
    ("ME']\n```", "ME']"),
    ("x = 1\n    y = 2\n    ```\nprint(3)", "x = 1\n    y = 2"),
    ("```", ""),
    ("no fence yet", "no fence yet"),
])
def test_finish_cuts_at_the_closing_fence(answer, fill):
    assert ChatPrompter(CharTokenizer()).finish(answer) == fill
    assert ChatPrompter(CharTokenizer(), PromptConfig(fence=False)).finish(answer) == answer


def test_trim_keeps_whole_lines_nearest_the_cursor():
    p = ChatPrompter(CharTokenizer())
    prefix = "".join(f"line{i}\n" for i in range(10)) + "cur"
    suffix = "".join(f"after{i}\n" for i in range(10))
    kept_prefix, kept_suffix = p.trim(prefix, suffix, budget=40)
    assert kept_suffix == "after0\n" and len(kept_suffix) <= 10  # a quarter of the budget
    assert kept_prefix == "line5\nline6\nline7\nline8\nline9\ncur" and len(kept_prefix) + len(kept_suffix) == 40
    long_line = p.trim("y" + "x" * 99, "", budget=10)[0]
    assert long_line == "x" * len(long_line) and 0 < len(long_line) <= 10  # an over-long cursor line keeps its end
    assert p.trim(prefix, suffix, None) == (prefix, suffix)
