"""The remote vLLM backend's protocol against a real HTTP server on loopback.

SYNTHETIC RESPONSES: no GPU was available to record a real `vllm serve` DiffusionGemma run, so the server below
replays responses built by hand from vLLM's documented OpenAI-compatible formats (/v1/models, /tokenize,
/detokenize, streamed /v1/completions with `return_token_ids`, the `{"error": {...}}` body) and the request
validation of vLLM's `extra_args` for diffusion (vllm/utils/diffusion.py). Its tokenizer is a stand-in (one id
per character, Gemma's special tokens at their Gemma ids). Replace them with recorded ones once a GPU run exists.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from engine.backends.vllm import CanvasRequest, VLLMError, VLLMRemoteBackend, make_backend
from engine.model import ModelLoadError
from engine.sampler import Cancelled
from tests.backends.loopback import hold, serving

pytest.importorskip("httpx")

MODEL = "google/diffusiongemma-26B-A4B-it"
SERVED_CANVAS = 16  # the server's --diffusion-config canvas_length (the real recipe: 256)
SPECIALS = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4, "<|turn>": 105, "<turn|>": 106,
            "<|channel>": 100, "<channel|>": 101}
NAMES = {v: k for k, v in SPECIALS.items()}
PREFIX = "def scale(values, k):\n    out = []\n    for v in values:\n        out.append(v * "
SUFFIX = ")\n    return out\n"


def tokenize(text: str) -> list[int]:
    ids, i = [], 0
    while i < len(text):
        name = next((n for n in SPECIALS if text.startswith(n, i)), None)
        ids.append(SPECIALS[name] if name else 1000 + ord(text[i]))
        i += len(name) if name else 1
    return ids


def detokenize(ids: list[int]) -> str:
    return "".join(NAMES.get(i, chr(i - 1000) if i >= 1000 else "") for i in ids)


def render(messages: list[dict], add_generation_prompt: bool) -> str:
    """Gemma 4's chat format, as the server's chat template renders it."""
    out = "<bos>" + "".join(f"<|turn>{m['role']}\n{m['content']}<turn|>\n" for m in messages)
    return out + ("<|turn>model\n" if add_generation_prompt else "")


def canvas(text: str, finish: str | None, tail: tuple[int, ...] = (), ids: list[int] | None = None) -> dict:
    """One streamed chunk as vLLM sends it for a committed canvas (SYNTHETIC, see the module docstring)."""
    return {"id": "cmpl-synthetic", "object": "text_completion", "created": 1760000000, "model": MODEL,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish, "stop_reason": None,
                         "token_ids": ids if ids is not None else tokenize(text) + list(tail)}], "usage": None}


class FakeVLLM(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[str, dict]] = []
        self.script: list[dict] = []  # the chunks /v1/completions streams
        self.hold_after: int | None = None  # stream this many chunks, then wait for `release`
        self.release = threading.Event()
        self.disconnected = threading.Event()
        self.error: tuple[int, dict] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def completions(self) -> list[dict]:
        return [body for path, body in self.requests if path == "/v1/completions"]


class Handler(BaseHTTPRequestHandler):
    server: FakeVLLM

    def log_message(self, *args) -> None:  # quiet
        pass

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "vllm",
                                                         "max_model_len": 262144}]})
        else:
            self._json(404, {"error": {"message": "Not Found", "type": "NotFoundError", "code": 404}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, body))
        if self.path == "/tokenize":
            text = body["prompt"] if "prompt" in body else render(body["messages"], body["add_generation_prompt"])
            ids = tokenize(text)
            self._json(200, {"count": len(ids), "max_model_len": 262144, "tokens": ids, "token_strs": None})
        elif self.path == "/detokenize":
            self._json(200, {"prompt": detokenize(body["tokens"])})
        elif self.path == "/v1/completions":
            self._complete(body)
        else:
            self._json(404, {"error": {"message": "Not Found", "type": "NotFoundError", "code": 404}})

    def _complete(self, body: dict) -> None:
        xargs = body.get("vllm_xargs") or {}
        width = xargs.get("diffusion_canvas_length")
        if self.server.error:
            return self._json(*self.server.error)
        if width is not None and not 0 < width <= SERVED_CANVAS:  # as vLLM validates extra_args
            return self._json(400, {"error": {"message": "diffusion_canvas_length must be a positive integer no "
                                              "larger than the served canvas.", "type": "BadRequestError",
                                              "param": "extra_args", "code": 400}})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i, chunk in enumerate(self.server.script):
            if i == self.server.hold_after and not hold(self):
                return
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")


def running_fake_vllm() -> contextlib.AbstractContextManager[FakeVLLM]:
    """A FakeVLLM serving on loopback from a thread; released and shut down on exit."""
    return serving(FakeVLLM())


@pytest.fixture
def server():
    with running_fake_vllm() as srv:
        yield srv


@pytest.fixture
def backend(server):
    be = make_backend("vllm-remote", url=server.url, canvas_length=SERVED_CANVAS, vocab_size=2000)
    yield be
    be.close()


def test_infill_streams_one_chunk_per_canvas(server, backend):
    assert (backend.name, backend.model_name, backend.steppable, backend.noise) == (
        "vllm-remote", MODEL, False, "uniform")
    sp = backend.special
    assert (sp.pad, sp.eos, sp.mask, sp.fim_middle) == (0, 1, 4, 106)  # resolved through the server's /tokenize
    server.script = [canvas("k if k > 0 else ", None), canvas("-k\n```", "stop", tail=(106,))]
    chunks = list(backend.infill(PREFIX, SUFFIX, capacity=32, language="python"))
    assert [(c.text, c.canvas, c.done, c.finish_reason) for c in chunks] == [
        ("k if k > 0 else ", 0, False, None), ("-k\n```", 1, True, "stop")]
    assert [c.fill for c in chunks] == ["k if k > 0 else ", "k if k > 0 else -k"]  # the closing fence cut off
    assert chunks[1].token_ids[-1] == 106
    (body,) = server.completions()
    assert body["prompt"] == backend.prompter.infill(PREFIX, SUFFIX, "python")
    prompt = detokenize(body["prompt"])
    assert prompt.startswith("<bos><|turn>user\n") and prompt.index(SUFFIX) < prompt.index("def scale")
    assert prompt.endswith("<turn|>\n<|turn>model\n<|channel>thought\n<channel|>```python\n        out.append(v * ")
    assert (body["model"], body["max_tokens"], body["stream"], body["return_token_ids"]) == (MODEL, 32, True, True)
    assert body["vllm_xargs"] == {"diffusion_canvas_length": SERVED_CANVAS}  # at most the served canvas
    chat = [b for p, b in server.requests if p == "/tokenize" and "messages" in b]
    assert chat and chat[0]["chat_template_kwargs"] == {"enable_thinking": False}


def test_pinned_suffix_holds_the_suffix_start_after_the_hole(server, backend):
    backend.pin_suffix = 3
    hole = [1000 + ord("k")] + [0] * 7  # the hole's text, then pads up to the pinned suffix
    server.script = [canvas("k)\n ", "length", ids=hole + tokenize(")\n "))]
    (chunk,) = backend.infill(PREFIX, SUFFIX, capacity=8, language="python")
    xargs = server.completions()[0]["vllm_xargs"]
    assert xargs["diffusion_canvas_length"] == 11 and xargs["diffusion_pinned"] == [8, 9, 10]
    assert len(xargs["diffusion_seed_canvas"]) == 11 and xargs["diffusion_seed_canvas"][8:] == tokenize(")\n ")
    assert all(0 <= t < 2000 for t in xargs["diffusion_seed_canvas"][:8])  # uniform noise in the hole
    assert server.completions()[0]["max_tokens"] == 11
    assert chunk.fill == "k" and chunk.done  # the pinned suffix is not part of the fill


def test_rewrite_seeds_the_canvas_with_the_selection(server, backend):
    server.script = [canvas("v * k * 2\n```", "stop", tail=(106,))]
    (chunk,) = backend.rewrite("    x = ", "v * k", "\n", capacity=12, instruction="double it", language="python")
    body = server.completions()[0]
    start = tokenize("v * k\n```") + [106]
    assert body["vllm_xargs"]["diffusion_seed_canvas"][: len(start)] == start
    assert body["vllm_xargs"]["diffusion_canvas_length"] == 12 == len(body["vllm_xargs"]["diffusion_seed_canvas"])
    assert "diffusion_pinned" not in body["vllm_xargs"]
    assert "double it" in detokenize(body["prompt"]) and chunk.fill == "v * k * 2"
    backend.narrow_canvas = False  # a server scheduling synchronously takes full-width canvases only
    list(backend.rewrite("    x = ", "v * k", "\n", capacity=12, language="python"))
    xargs = server.completions()[1]["vllm_xargs"]
    assert "diffusion_canvas_length" not in xargs and len(xargs["diffusion_seed_canvas"]) == SERVED_CANVAS


def test_cancel_closes_the_stream_and_the_server_sees_it(server, backend):
    server.script = [canvas("k + ", None), canvas("1\n```", "stop")]
    server.hold_after = 1
    stop = threading.Event()
    chunks = backend.infill(PREFIX, SUFFIX, capacity=32, language="python", cancel=stop)
    assert next(chunks).fill == "k + "
    stop.set()
    with pytest.raises(Cancelled):
        next(chunks)
    server.release.set()
    assert server.disconnected.wait(5)  # vLLM aborts a request whose client went away


def test_server_errors_carry_vllms_message(server, backend):
    with pytest.raises(VLLMError, match="no larger than the served canvas"):
        list(backend.complete(CanvasRequest([2, 105], 64, canvas_length=64)))
    server.error = (500, {"error": {"message": "EngineCore encountered a fatal error.", "type": "InternalServerError",
                                    "code": 500}})
    with pytest.raises(VLLMError, match="500: EngineCore encountered a fatal error"):
        list(backend.infill(PREFIX, SUFFIX, capacity=8))


def test_unreachable_server_and_no_steps(server):
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(ModelLoadError, match="cannot reach"):
        VLLMRemoteBackend(f"http://127.0.0.1:{closed}", timeout=2)
    with pytest.raises(ModelLoadError, match="not 'gemma'"):
        VLLMRemoteBackend(server.url, model="gemma")
    be = VLLMRemoteBackend(server.url, model=MODEL)
    assert be.max_context == 262144
    with pytest.raises(NotImplementedError, match="not steppable"):
        be.prefill([1, 2, 3])
    be.close()


def test_in_process_vllm_needs_vllm(tmp_path):
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ModelLoadError, match="vllm"):
            make_backend("vllm", model_path=tmp_path)
    else:
        pytest.skip("vllm is installed: the in-process backend needs a GPU run, not this test")
