"""Faults, through the real server: a model directory that is missing, truncated, corrupted, pickled, has the wrong
tokenizer or an unsupported config (built in a temporary directory from the shipped model's files). Each gives a clear
error -- window/showMessage, window/logMessage, the request's error, diffusion/status -- that says what to do; the
server stays up and serves again once `modelPath` is fixed. An exception in the engine during a job (a canvas longer
than the model's positions, a real limit, not a test hook) fails that request only.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from engine import DEFAULT_MODEL_DIR
from server.soak import REQUEST_FAILED, SMALL
from tests.reliability.harness import Server, count

INVALID_PARAMS = -32602

ERROR, WARNING = 1, 2  # LSP MessageType


class Unpickled:
    """Unpickling this creates its marker file: proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _copy(dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        shutil.copyfile(DEFAULT_MODEL_DIR / name, dst / name)
    return dst


def _no_weights(d: Path) -> None:
    (d / "model.safetensors").unlink()


def _truncated(d: Path) -> None:
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])


def _bad_header(d: Path) -> None:
    data = bytearray((d / "model.safetensors").read_bytes())
    data[:8] = b"\xff" * 8  # the header length: far past the file's end
    (d / "model.safetensors").write_bytes(bytes(data))


def _nan(d: Path) -> None:
    state = load_file(str(d / "model.safetensors"))
    name = sorted(state)[0]
    state[name] = state[name].clone().fill_(float("nan"))
    save_file(state, str(d / "model.safetensors"))


def _pickled(d: Path) -> None:
    marker = d / "UNPICKLED"
    blob = pickle.dumps({"tok_emb.weight": Unpickled(marker)})
    (d / "model.safetensors").write_bytes(blob)
    (d / "pytorch_model.bin").write_bytes(blob)  # a loader falling back to torch.load would run it


def _tokenizer_without_specials(d: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(d / "tokenizer.json"))


def _tokenizer_too_big(d: Path) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    tok.add_tokens([f"extra_token_{i}" for i in range(300)])  # more ids than the model's embedding has
    tok.save(str(d / "tokenizer.json"))


def _tokenizer_not_json(d: Path) -> None:
    (d / "tokenizer.json").write_text("{ this is not a tokenizer")


def _config(edit) -> callable:
    def apply(d: Path) -> None:
        cfg = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps(edit(cfg)))

    return apply


def _config_not_json(d: Path) -> None:
    (d / "config.json").write_text("model: small\n")


# (name, how to break a copy of the shipped model (None: no directory at all), what the message must say)
FAULTS = [
    ("missing", None, "does not exist"),
    ("no-weights", _no_weights, "no weights file"),
    ("truncated", _truncated, "truncated or corrupted"),
    ("bad-header", _bad_header, "truncated or corrupted"),
    ("nan-weights", _nan, "non-finite values"),
    ("pickled", _pickled, "truncated or corrupted"),
    ("tokenizer-without-specials", _tokenizer_without_specials, "has no special token"),
    ("tokenizer-too-big", _tokenizer_too_big, "wrong tokenizer.json"),
    ("tokenizer-not-json", _tokenizer_not_json, "cannot read tokenizer file"),
    ("config-unknown-keys", _config(lambda c: {**c, "model": {**c["model"], "n_experts": 8}}),
     "unsupported model config keys"),
    ("config-no-model", _config(lambda c: {"name": "x"}), "has no 'model' section"),
    ("config-wrong-shape", _config(lambda c: {**c, "model": {**c["model"], "dim": 2 * c["model"]["dim"]}}),
     "do not match config"),
    ("config-not-json", _config_not_json, "cannot read"),
]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("broken_models")
    out = {}
    for name, breaker, _ in FAULTS:
        d = root / name
        if breaker is not None:
            breaker(_copy(d))
        out[name] = d
    return out


@pytest.fixture(scope="module")
def server(shared_server: Server):
    yield shared_server
    shared_server.notify("workspace/didChangeConfiguration", {"settings": {"diffusion": {**SMALL, "modelPath": None}}})


def _fill(server: Server, uri: str, text: str, line: int, character: int) -> dict:
    return server.call("textDocument/inlineCompletion", {"textDocument": {"uri": uri}, "context": {"triggerKind": 2},
                                                         "position": {"line": line, "character": character}})


@pytest.mark.parametrize("fault", [f[0] for f in FAULTS])
def test_a_broken_model_is_reported_with_what_to_do_and_the_server_stays_up(server: Server, model_dirs, fault):
    phrase = next(p for n, _, p in FAULTS if n == fault)
    w = server.wire
    seen = len(w.log)
    uri = f"file:///faults/{fault}.py"
    server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                            "text": "def f(x):\n    \n"}})
    server.notify("workspace/didChangeConfiguration", {"settings": {"diffusion": {
        **SMALL, "modelPath": str(model_dirs[fault])}}})
    got = _fill(server, uri, "", 1, 4)

    error = got["error"]
    assert error["code"] == REQUEST_FAILED
    assert "could not load the" in error["message"] and phrase in error["message"], error
    assert "set `modelPath` to a model directory" in error["message"]  # what to do
    shown = [p["message"] for _, p in w.notes("window/showMessage", seen) if p["type"] == ERROR]
    assert any(phrase in m and "modelPath" in m for m in shown), shown
    logged = [p["message"] for _, p in w.notes("window/logMessage", seen) if p["type"] == ERROR]
    assert any(phrase in m for m in logged), logged
    status = server.status()
    assert status["loaded"] is False and phrase in status["error"], status
    assert not (model_dirs[fault] / "UNPICKLED").exists()  # nothing was unpickled
    assert w.alive

    server.notify("workspace/didChangeConfiguration", {"settings": {"diffusion": {**SMALL, "modelPath": None}}})
    got = _fill(server, uri, "", 1, 4)
    assert "result" in got, got  # fixed: serving again
    for item in got["result"]["items"]:
        assert item["range"]["start"] == {"line": 1, "character": 4}
    assert server.status()["loaded"] is True and "error" not in server.status()
    server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    count("faults", model_faults=1)


def test_an_engine_exception_fails_that_request_only(server: Server):
    """A refine of a selection longer than the embedded model's positions (its tokens are the canvas): the engine
    raises during that job; the request fails with the reason, the next ones are served. Regenerated from masks, the
    same selection is longer than a fill may write: refused with the reason before any forward. A contextBudget past
    the positions is cut to fit; of 120 placeholders close together the first 32 share them, the rest are kept for
    another request; and placeholders too far apart to share a canvas are each filled in one of their own."""
    w = server.wire
    seen = len(w.log)
    server.notify("workspace/didChangeConfiguration", {"settings": {"diffusion": {**SMALL, "contextBudget": 6000}}})
    body = "".join(f"    x{j} = compute(a, b, {j})\n" for j in range(12))
    many = "".join(f"def f{i}(a, b):\n{body}    ...\n\n\n" for i in range(6))
    long_text = "".join(f"def f{i}(a, b):\n    return a * {i} + b\n\n\n" for i in range(400))
    big, small, holes = "file:///faults/long.py", "file:///faults/short.py", "file:///faults/many.py"
    for uri, text in ((big, long_text), (small, "def g(x):\n    \n"), (holes, many)):
        server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                                "text": text}})

    whole = {"start": {"line": 0, "character": 0}, "end": {"line": long_text.count("\n"), "character": 0}}
    got = server.call("diffusion/rewrite", {"textDocument": {"uri": big}, "range": whole, "mode": "refine"})
    error = got["error"]
    assert error["code"] == REQUEST_FAILED and "the fill failed" in error["message"]
    assert "beyond the model's max_seq_len 1536" in error["message"], error
    logged = [p["message"] for _, p in w.notes("window/logMessage", seen) if p["type"] == ERROR]
    assert any(m.startswith("rewrite for file:///faults/long.py v1 failed") for m in logged), logged
    seen = len(w.log)
    got = server.call("diffusion/rewrite", {"textDocument": {"uri": big}, "range": whole, "mode": "regenerate"})
    error = got["error"]
    assert error["code"] == INVALID_PARAMS, error
    assert re.fullmatch(r"the selection is \d+ tokens, more than a rewrite may write \(\d+, maxTokens\): select less",
                        error["message"]), error
    assert not [p for _, p in w.notes("window/logMessage", seen) if p["type"] == ERROR]  # the user's to fix

    seen = len(w.log)
    got = server.call("diffusion/infill", {"textDocument": {"uri": holes}})  # 6 placeholders, far apart
    res = got.get("result") or {}
    assert len(res.get("edits", [])) + len(res.get("kept", [])) == 6, got
    assert not [k for k in res["kept"] if "canvas" in k["reason"]], res["kept"]  # none left out for its distance
    ranges = {json.dumps(p["range"]) for _, p in w.notes("diffusion/canvas", seen)}
    assert len(ranges) == 1, ranges  # every canvas of the request is drawn over the whole span

    got = _fill(server, small, "", 1, 4)  # another request: served
    assert "result" in got, got
    for item in got["result"]["items"]:
        assert item["range"]["start"] == {"line": 1, "character": 4}
    status = server.status()
    assert status["loaded"] is True and "error" not in status and w.alive

    got = _fill(server, big, long_text, long_text.count("\n"), 0)  # a budget past the positions: cut, served
    assert "result" in got, got
    close = "file:///faults/close.py"
    server.notify("textDocument/didOpen", {"textDocument": {"uri": close, "languageId": "python", "version": 1,
                                                            "text": "".join(f"def g{i}(a):\n    ...\n\n\n"
                                                                            for i in range(120))}})
    got = server.call("diffusion/infill", {"textDocument": {"uri": close}})  # the first 32 are filled, the rest kept
    assert "result" in got, got
    # every placeholder is answered, as an edit or kept with a reason
    res = got["result"]
    assert len(res["edits"]) + len(res["kept"]) == 120 and all(k["reason"] for k in res["kept"]), got
    later = [k for k in res["kept"] if k["reason"].startswith("past the first 32 placeholders one request fills")]
    assert [k["range"]["start"]["line"] for k in later] == [4 * i + 1 for i in range(32, 120)], later
    server.notify("textDocument/didClose", {"textDocument": {"uri": close}})
    server.notify("workspace/didChangeConfiguration", {"settings": {"diffusion": {**SMALL, "contextBudget": None}}})
    for uri in (big, small, holes):
        server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
