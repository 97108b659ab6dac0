"""The shipped tokenizer round-trips any text exactly and has every special the engine needs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine import DEFAULT_MODEL_DIR
from engine.tokenizer import Tokenizer

TOK = Tokenizer.from_file(DEFAULT_MODEL_DIR / "tokenizer.json")

CASES = [
    "def f(x):\n\treturn x  # tab\n",
    "line one\r\nline two\r\n\r\n",
    "emoji 🙂 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢, CJK 漢字, combining e\u0301",
    "nul\x00byte and \x7f and \u2028 separator",
    "<|mask|> <|pad|> typed by a user stays text",
    "",
    " " * 17 + "\n" * 3,
]


def test_roundtrip_fixed_cases():
    for s in CASES:
        assert TOK.decode(TOK.encode(s)) == s


def test_user_text_never_becomes_a_special_token():
    ids = TOK.encode("<|mask|><|fim_middle|>")
    assert not set(ids) & TOK.special.all


def test_specials_are_distinct():
    assert len(TOK.special.all) == 8


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_roundtrip_any_unicode(s):
    assert TOK.decode(TOK.encode(s)) == s


def test_token_bytes_concatenate_to_utf8():
    s = "naïve → 🙂\r\n\tx"
    assert b"".join(TOK.token_bytes(t) for t in TOK.encode(s)) == s.encode("utf-8")


def test_starting_with_lists_every_token_that_extends_a_text():
    ids = TOK.starting_with(" ret")
    words = {TOK.decode([i]) for i in ids}
    assert {" ret", " return"} <= words and all(w.startswith(" ret") for w in words)
    every = [i for i in range(TOK.vocab_size) if TOK.token_bytes(i).startswith(b" ret")]
    assert sorted(ids) == every
    assert not set(ids) & TOK.special.all
    assert TOK.starting_with("\U0001d518\U0001d518\U0001d518") == []  # nothing that long: an empty list
    for text in ("", " ", "re", "_", "\n", "é", "zzzz", "    "):  # in id order, as a scan of the vocabulary lists them
        want = text.encode()
        assert TOK.starting_with(text) == [i for i in range(TOK.vocab_size) if (b := TOK.token_bytes(i))
                                           and b.startswith(want)], text
