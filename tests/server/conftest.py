"""The real server process over stdio (`python -m server.cli serve`) with the shipped model, driven by pytest-lsp.

Two servers for the whole run (session scope: each loads the model once), one per client capability profile:
Neovim and VS Code as pytest-lsp records them, plus the inlineCompletion capability neither profile has. Both start
with a few bad initializationOptions (they fall back to defaults with a message). Tests set the settings they need
first: the placeholder model never predicts "end", so fills are kept short (maxTokens) except where a test needs a
canvas that denoises for a while (large maxTokens, small blockSize), which it then cancels.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

ROOT = Path(__file__).resolve().parents[2]
SERVER = [sys.executable, "-m", "server.cli", "serve"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
TIMEOUT = 120  # seconds: only a hung server hits it
SHORT = {"maxTokens": 8, "blockSize": 32, "steps": 16, "threads": 1, "repoContextBudget": 0}  # fast fills
# A rewrite of BIG with these takes ~30 forwards of a 768-slot canvas (the model ends cursor fills in two or three, and
# a cursor fill that loops is cut): a job that is still denoising when the test acts.
LONG = {"maxTokens": 1024, "strategy": "confidence", "steps": 1024, "threads": 1}
BIG = "def f(values, weights):\n" + "".join(
    f"    total_{i} = compute(values[{i}], weight={i}) + offset_{i % 7}\n" for i in range(40)) + "    return total_0\n"
BIG_BODY = {"start": {"line": 1, "character": 0}, "end": {"line": 41, "character": 0}}
# What both servers start with: two bad values among good ones, and a key the server does not know.
OPTIONS = {"diffusion": {**SHORT, "steps": "many", "strategy": "best", "bogus": 1}}
CONFIG = ClientServerConfig(server_command=SERVER, server_env=ENV)


def plain(obj: Any) -> Any:
    """pygls gives custom messages as namedtuples: back to dicts and lists."""
    if hasattr(obj, "_asdict"):
        return {k: plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def capabilities(profile: str) -> types.ClientCapabilities:
    caps = client_capabilities(profile)
    caps.text_document.inline_completion = types.InlineCompletionClientCapabilities(dynamic_registration=False)
    return caps


class Session:
    """A connected client plus what the server sent it: canvas notifications in arrival order, applyEdit requests."""

    def __init__(self, client: LanguageClient) -> None:
        self.client = client
        self.canvas: list[dict] = []
        self.applied: list[dict] = []
        self._changed = asyncio.Event()
        self._uris = 0
        self.init: types.InitializeResult | None = None

        @client.feature("diffusion/canvas")
        def on_canvas(_client: LanguageClient, params: Any) -> None:
            self.canvas.append(plain(params))
            self._changed.set()

        @client.feature(types.WORKSPACE_APPLY_EDIT)
        def on_apply_edit(_client: LanguageClient, params: types.ApplyWorkspaceEditParams):
            self.applied.append(client.protocol._converter.unstructure(params))
            self._changed.set()
            return types.ApplyWorkspaceEditResult(applied=True)

    @property
    def messages(self) -> list[str]:
        """window/showMessage texts, in order (pytest-lsp's client keeps them)."""
        return [m.message for m in self.client.messages]

    # -- documents ----------------------------------------------------------------------------------------------------

    def open(self, text: str, name: str = "doc", language: str = "python") -> str:
        self._uris += 1
        uri = f"file:///project/{name}_{self._uris}.py"
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)))
        return uri

    def edit(self, uri: str, version: int, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        rng = types.Range(types.Position(*start), types.Position(*end))
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            [types.TextDocumentContentChangePartial(range=rng, text=text)]))

    def configure(self, settings: dict) -> None:
        self.client.workspace_did_change_configuration(types.DidChangeConfigurationParams({"diffusion": settings}))

    # -- requests -----------------------------------------------------------------------------------------------------

    def request(self, method: str, params: Any, msg_id: str) -> tuple[asyncio.Future, dict]:
        """Send a request with a known id; `mark["at"]` is len(canvas) when its response arrived (exactly)."""
        mark: dict = {}
        fut = self.client.protocol.send_request(method, params, msg_id=msg_id)
        fut.add_done_callback(lambda _: mark.setdefault("at", len(self.canvas)))  # runs as the response is read
        return asyncio.wrap_future(fut), mark

    async def raw(self, method: str, params: Any, msg_id: str) -> Any:
        """A request whose result is read as plain JSON, not as the method's lsprotocol type: lsprotocol's hook for
        `(Command | CodeAction)[]` reads every object with a "command" key as a Command, so a CodeAction carrying a
        command would come back mangled."""
        fut = self.client.protocol.send_request(method, params, msg_id=msg_id)
        self.client.protocol._result_types.pop(msg_id, None)
        return plain(await asyncio.wait_for(asyncio.wrap_future(fut), TIMEOUT))

    def inline(self, uri: str, line: int, character: int, msg_id: str, invoked: bool = False
               ) -> tuple[asyncio.Future, dict]:
        kind = types.InlineCompletionTriggerKind.Invoked if invoked else types.InlineCompletionTriggerKind.Automatic
        params = types.InlineCompletionParams(
            context=types.InlineCompletionContext(trigger_kind=kind),
            text_document=types.TextDocumentIdentifier(uri), position=types.Position(line, character))
        return self.request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id)

    def cancel(self, msg_id: str) -> None:
        self.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))

    async def custom(self, method: str, params: dict) -> dict:
        return plain(await asyncio.wait_for(self.client.protocol.send_request_async(method, params), TIMEOUT))

    async def status(self) -> dict:
        return await self.custom("diffusion/status", {})

    # -- waiting ------------------------------------------------------------------------------------------------------

    async def wait_for(self, pred: Callable[[], Any]) -> Any:
        async def loop() -> Any:
            while not (got := pred()):
                self._changed.clear()
                await self._changed.wait()
            return got

        return await asyncio.wait_for(loop(), TIMEOUT)

    async def first_canvas(self, msg_id: str) -> dict:
        return await self.wait_for(lambda: next((n for n in self.canvas if n["id"] == msg_id), None))

    def notes(self, msg_id: str) -> list[dict]:
        return [n for n in self.canvas if n["id"] == msg_id]


async def start_session(client: LanguageClient, profile: str, options: dict) -> Session:
    session = Session(client)
    session.init = await client.initialize_session(types.InitializeParams(
        capabilities=capabilities(profile), initialization_options=options,
        root_uri="file:///project", workspace_folders=[types.WorkspaceFolder("file:///project", "project")]))
    return session


@pytest_lsp.fixture(config=CONFIG, scope="session")
async def neovim_client(lsp_client: LanguageClient):
    lsp_client.session = await start_session(lsp_client, "neovim", OPTIONS)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=CONFIG, scope="session")
async def vscode_client(lsp_client: LanguageClient):
    lsp_client.session = await start_session(lsp_client, "visual-studio-code", OPTIONS)
    yield
    await lsp_client.shutdown_session()


@pytest.fixture(scope="session")
def neovim(neovim_client: LanguageClient) -> Session:
    return neovim_client.session


@pytest.fixture(scope="session")
def vscode(vscode_client: LanguageClient) -> Session:
    return vscode_client.session


def masked_total(note: dict) -> int:
    return sum(b - a for a, b in note["masks"])


def check_stream(notes: list[dict], result_text: str, rng: dict, version: int) -> None:
    """The stream of one request: steps count up, nfe never drops, masked characters shrink (unless the sampler
    re-noised slots at that forward), every range is the result's, the last one is done and equals the result."""
    assert notes, "no diffusion/canvas notification"
    assert [n["step"] for n in notes] == list(range(1, len(notes) + 1))
    assert all(a["nfe"] <= b["nfe"] for a, b in zip(notes, notes[1:], strict=False))
    for a, b in zip(notes[:-1], notes[1:-1], strict=False):
        assert masked_total(b) <= masked_total(a) + b["remasked"], (a, b)
    assert all(not n["done"] for n in notes[:-1])
    assert all(n["version"] == version for n in notes)
    for n in notes[:-1]:
        assert n["range"]["start"] == rng["start"]
        assert n["text"].count("·") >= masked_total(n)
        assert all(n["text"][a:b] == "·" * (b - a) for a, b in n["masks"])
    last = notes[-1]
    assert last["done"] is True and last["masks"] == [] and last["ms"] >= 0  # the server's own time for the request
    assert last["text"] == result_text
    assert last["range"] == rng


def check_inline(notes: list[dict], result: types.InlineCompletionList, cursor: tuple[int, int], version: int) -> str:
    """An inline completion at a cursor ending its line: one item (an empty range at the cursor) or none when the fill
    came out empty (post-processing drops fills that break the syntax); the stream ends with the same text."""
    point = {"line": cursor[0], "character": cursor[1]}
    text = ""
    if result.items:
        (item,) = result.items
        assert item.range == types.Range(types.Position(*cursor), types.Position(*cursor))
        text = item.insert_text
        assert text
    check_stream(notes, text, {"start": point, "end": point}, version)
    return text


@pytest.fixture(scope="session")
def reference():
    """The same pipeline in this process (same model, one thread): the text the server must return."""
    from engine.backend import EmbeddedBackend
    from infill.languages import language_for
    from server import fill
    from server.config import parse_settings

    backend = EmbeddedBackend(threads=1)

    def expect(text: str, offset: int, settings: dict, automatic: bool = True) -> str:
        s, problems = parse_settings(settings)
        assert not problems
        plan = fill.plan_cursor(text, offset, language_for("python"), backend.tokenizer, s.context_budget,
                                s.max_tokens)
        return fill.run(backend, plan, s.sampler(), session=f"ref-{offset}-{len(text)}",
                        **(s.as_you_type() if automatic else {})).fills[0]

    return expect
