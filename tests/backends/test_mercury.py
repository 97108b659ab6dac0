"""The mercury backend (Inception's hosted API) against a real HTTP server on loopback that replays the API's format.

REPLAYED, NOT RECORDED: no key for the public API is used here (tests never leave this machine), so the server below
replays frames built from the documented formats: the FIM endpoint's OpenAI text-completion stream
(`choices[0].text` deltas, `[DONE]`), chat completions with `diffusing: true` whose `delta.content` is the whole
current draft (`diffusion_meta: {diffusion_content, diffusion_progress}`, a last frame with `finish_reason`, then an
empty delta and `[DONE]`, as third-party clients describe it), and OpenAI's error envelope (401, 429 with
Retry-After, 5xx). Variants the docs leave open (where `diffusion_meta` sits, frames without it, a server that ignores
`diffusing` and streams deltas) are replayed too, since the parser must take them all.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from engine.backends.mercury import MercuryBackend, MercuryError, code_block, make_backend, trim
from engine.model import ModelLoadError
from engine.sampler import Cancelled
from tests.backends.loopback import hold, serving

pytest.importorskip("httpx")

KEY = "sk-test-mercury"
PREFIX = "def scale(values, k):\n    out = []\n    for v in values:\n        out.append(v * "
SUFFIX = ")\n    return out\n"


def fim_frame(text: str, finish: str | None = None) -> dict:
    """One streamed frame of /v1/fim/completions (OpenAI text-completion chunk)."""
    return {"id": "cmpl-replay", "object": "text_completion", "created": 1760000000, "model": "mercury-edit-2",
            "choices": [{"index": 0, "text": text, "finish_reason": finish}]}


def chat_frame(content: str | None, finish: str | None = None, progress: float | None = None,
               where: str = "chunk") -> dict:
    """One streamed frame of a diffusing chat completion: `content` is the whole current draft. `where` puts
    diffusion_meta on the chunk, the choice or the delta, or leaves it out ("none")."""
    delta = {} if content is None else {"role": "assistant", "content": content}
    choice: dict = {"index": 0, "delta": delta, "finish_reason": finish}
    frame: dict = {"id": "chatcmpl-replay", "object": "chat.completion.chunk", "created": 1760000000,
                   "model": "mercury-2", "choices": [choice]}
    if progress is not None:
        meta = {"diffusion_content": True, "diffusion_progress": progress}
        {"chunk": frame, "choice": choice, "delta": delta}.get(where, {})["diffusion_meta"] = meta
    return frame


def diffusing(drafts: list[str], where: str = "chunk") -> list:
    """A diffusing stream: each draft replaces the one before; the last with finish_reason, then an empty delta."""
    n = len(drafts)
    frames: list = [chat_frame(d, None if i + 1 < n else "stop", (i + 1) / n, where) for i, d in enumerate(drafts)]
    return frames + [chat_frame(None)]


class FakeMercury(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[str, dict, dict]] = []  # (path, body, headers)
        self.script: list = []  # frames to stream: dicts are sent as JSON, str raw after "data: "
        self.done = True  # end the stream with data: [DONE]
        self.error: tuple[int, dict, dict] | None = None  # (status, body, headers) instead of a stream
        self.delay = 0.0  # seconds before answering (a hung API)
        self.hold_after: int | None = None  # stream this many frames, then wait for `release`
        self.release = threading.Event()
        self.disconnected = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def bodies(self, path: str) -> list[dict]:
        return [b for p, b, _ in self.requests if p == path]


class Handler(BaseHTTPRequestHandler):
    server: FakeMercury

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, body, {k.lower(): v for k, v in self.headers.items()}))
        if self.server.delay:
            time.sleep(self.server.delay)
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            return self._json(401, {"error": {"message": "Incorrect API key provided.", "type":
                                              "authentication_error", "param": None, "code": "invalid_api_key"}})
        if self.server.error:
            status, err, headers = self.server.error
            return self._json(status, err, headers)
        if self.path not in ("/v1/fim/completions", "/v1/chat/completions"):
            return self._json(404, {"error": {"message": "Not Found", "type": "invalid_request_error"}})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i, frame in enumerate(self.server.script):
            if i == self.server.hold_after and not hold(self):
                return
            data = frame if isinstance(frame, str) else json.dumps(frame)
            try:
                self.wfile.write(f"data: {data}\n\n".encode())
                self.wfile.flush()
            except OSError:  # the client gave up on a broken stream
                return
        if self.server.done:
            with contextlib.suppress(OSError):
                self.wfile.write(b"data: [DONE]\n\n")

    def _json(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def running_fake_mercury() -> contextlib.AbstractContextManager[FakeMercury]:
    """A FakeMercury serving on loopback from a thread; released and shut down on exit."""
    return serving(FakeMercury())


@pytest.fixture
def server():
    with running_fake_mercury() as srv:
        yield srv


@pytest.fixture
def backend(server):
    be = make_backend("mercury", api_key=KEY, url=server.url, timeout=5)
    yield be
    be.close()


def test_infill_posts_fim_and_appends_the_streamed_text(server, backend):
    assert (backend.name, backend.steppable, backend.prompter, backend.tokenizer.remote) == (
        "mercury", False, None, True)
    caps = backend.capabilities
    assert (caps.streams, caps.instructions, caps.mask_token, caps.native_infill) == (False, True, False, True)
    server.script = [fim_frame("k if k "), fim_frame(""), fim_frame("> 0 else -k"), fim_frame("", "stop")]
    chunks = list(backend.infill(PREFIX, SUFFIX, capacity=24, language="python"))
    assert [(c.fill, c.canvas, c.done, c.finish_reason) for c in chunks] == [
        ("k if k ", 0, False, None), ("k if k > 0 else -k", 1, False, None), ("k if k > 0 else -k", 2, True, "stop")]
    assert all(c.token_ids is None for c in chunks)  # text only: nothing to count as tokens
    ((path, body, headers),) = server.requests
    assert path == "/v1/fim/completions" and headers["authorization"] == f"Bearer {KEY}"
    assert body == {"model": "mercury-edit-2", "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 24, "stream": True}


def test_infill_sends_a_placeholder_for_a_blank_suffix_and_trims_to_the_budget(server, backend):
    server.script = [fim_frame("return x\n", "stop")]
    prefix = "".join(f"x{i} = {i}\n" for i in range(200))
    (chunk,) = backend.infill(prefix, "\n\n", capacity=8, budget=40)
    body = server.bodies("/v1/fim/completions")[0]
    assert body["suffix"] == "<|endoftext|>" and chunk.fill == "return x\n" and chunk.done
    assert prefix.endswith(body["prompt"]) and body["prompt"].startswith("x") and len(body["prompt"]) < 40 * 4
    assert trim("a\n" * 10, "b\n" * 10, None) == ("a\n" * 10, "b\n" * 10)


@pytest.mark.parametrize("where", ["chunk", "choice", "delta"])
def test_rewrite_shows_each_diffusing_snapshot_replacing_the_last(server, backend, where):
    drafts = ["```python\nv ·· k ·\n```", "```python\nv * k * 2\n```", "```python\nv * k * 2\n```"]
    server.script = diffusing(drafts, where)
    chunks = list(backend.rewrite("    x = ", "v * k", "\n", capacity=12, instruction="double it", language="python"))
    # one Chunk per new draft (the repeated last draft comes as the finish frame); snapshots replace, never append
    assert [(c.fill, c.done) for c in chunks] == [("v ·· k ·", False), ("v * k * 2", False), ("v * k * 2", True)]
    assert chunks[-1].finish_reason == "stop"
    body = server.bodies("/v1/chat/completions")[0]
    assert (body["model"], body["stream"], body["diffusing"], body["reasoning_effort"]) == (
        "mercury-2", True, True, "instant")
    (msg,) = body["messages"]
    assert msg["role"] == "user" and "double it" in msg["content"] and "```python\nv * k\n```" in msg["content"]
    assert body["max_tokens"] >= 12


def test_rewrite_reads_deltas_and_unmarked_snapshots_defensively(server, backend):
    # a server that ignored `diffusing`: plain deltas, no diffusion_meta anywhere -> appended
    server.script = [chat_frame("```py\nv * "), chat_frame("k * 2\n```"), chat_frame(None, "stop")]
    chunks = list(backend.rewrite("", "v * k", "", capacity=8))
    assert [c.fill for c in chunks] == ["v * ", "v * k * 2", "v * k * 2"] and chunks[-1].done
    # snapshots whose later frames lost their diffusion_meta: once snapshots came, a frame replaces the text
    server.script = [chat_frame("```py\nv + k\n```", progress=0.5), chat_frame("```py\nv * k * 2\n```"),
                     chat_frame("", "stop")]
    chunks = list(backend.rewrite("", "v * k", "", capacity=8))
    assert [c.fill for c in chunks] == ["v + k", "v * k * 2", "v * k * 2"]
    # [DONE] without any finish_reason still ends the request with the text so far
    server.script = [chat_frame("```py\nv * 3\n```", progress=1.0)]
    chunks = list(backend.rewrite("", "v * k", "", capacity=8))
    assert [(c.fill, c.done, c.finish_reason) for c in chunks] == [("v * 3", False, None), ("v * 3", True, None)]
    assert code_block("no fence at all\n") == "no fence at all" and code_block("```js\nlet a") == "let a"


def test_model_settings_pick_the_models(server):
    be = MercuryBackend(KEY, url=server.url, model="mercury-coder")
    assert (be.fim_model, be.chat_model, be.model_name) == ("mercury-coder", "mercury-coder", "mercury-coder")
    be.close()
    be = MercuryBackend(KEY, url=server.url)
    assert be.model_name == "mercury-edit-2 + mercury-2" and be.url == server.url and be.max_context == 32_000
    be.close()


@pytest.mark.parametrize("status, body, headers, match", [
    (401, None, {}, r"refused the API key \(401: Incorrect API key provided.\); put a valid key in the "
                    r"INCEPTION_API_KEY"),
    (429, {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}, {"Retry-After": "7"},
     r"rate limited by the Inception API \(429: Rate limit reached\); retry after 7 s"),
    (503, {"error": {"message": "The engine is currently overloaded", "type": "overloaded_error"}}, {},
     r"failed \(503: The engine is currently overloaded\); the service is overloaded or down, try again shortly"),
    (500, {"detail": "oops"}, {}, r"failed \(500"),
    (400, {"error": {"message": "model not found", "type": "invalid_request_error"}}, {},
     r"rejected the request \(400: model not found\); check `serverModel`"),
])
def test_http_errors_say_what_to_do(server, status, body, headers, match):
    be = make_backend("mercury", api_key=KEY if status != 401 else "sk-wrong", url=server.url, timeout=5)
    if body is not None:
        server.error = (status, body, headers)
    with pytest.raises(MercuryError, match=match):
        list(be.infill(PREFIX, SUFFIX, capacity=8))
    with pytest.raises(MercuryError, match=match):
        list(be.rewrite("", "x", "", capacity=8))
    be.close()


def test_broken_streams_fail_with_a_clear_message(server, backend):
    server.script = [fim_frame("k + "), "{not json"]
    with pytest.raises(MercuryError, match=r"malformed stream from .*/fim/completions \(not JSON: '{not json'\); try"):
        list(backend.infill(PREFIX, SUFFIX, capacity=8))
    server.script, server.done = [], True
    with pytest.raises(MercuryError, match="closed the stream without a completion"):
        list(backend.infill(PREFIX, SUFFIX, capacity=8))
    server.script = [{"error": {"message": "upstream reset", "type": "server_error"}}]
    with pytest.raises(MercuryError, match="error mid-stream: upstream reset"):
        list(backend.rewrite("", "x", "", capacity=8))
    server.script = [fim_frame("k + 1", None)]
    server.done = False  # the connection just ends: the text so far is the answer
    assert [c.fill for c in backend.infill(PREFIX, SUFFIX, capacity=8)][-1] == "k + 1"


def test_timeout_and_unreachable_server(server):
    be = make_backend("mercury", api_key=KEY, url=server.url, timeout=0.3)
    server.delay = 1.0
    with pytest.raises(MercuryError, match=r"did not answer within 0.3 s .*check the network"):
        list(be.infill(PREFIX, SUFFIX, capacity=8))
    be.close()
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    be = make_backend("mercury", api_key=KEY, url=f"http://127.0.0.1:{closed}/v1", timeout=2)
    with pytest.raises(MercuryError, match="cannot reach the Inception API"):
        list(be.infill(PREFIX, SUFFIX, capacity=8))
    be.close()


def test_cancel_closes_the_stream_and_the_server_sees_it(server, backend):
    server.script = [fim_frame("k + "), fim_frame("1", "stop")]
    server.hold_after = 1
    stop = threading.Event()
    chunks = backend.infill(PREFIX, SUFFIX, capacity=8, cancel=stop)
    assert next(chunks).fill == "k + "
    stop.set()
    with pytest.raises(Cancelled):
        next(chunks)
    server.release.set()
    assert server.disconnected.wait(5)


def test_no_key_no_backend_and_no_steps(server):
    with pytest.raises(ModelLoadError, match="INCEPTION_API_KEY"):
        make_backend("mercury", api_key=None, url=server.url)
    be = make_backend("mercury", api_key=KEY, url=server.url)
    with pytest.raises(NotImplementedError, match="not steppable"):
        be.prefill([1, 2, 3])
    be.close()
