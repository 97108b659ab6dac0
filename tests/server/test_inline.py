"""Inline completion over the wire, once per client profile: edit, request, the stream, the result."""

from __future__ import annotations

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.server.conftest import ENV, SERVER, SHORT, Session, check_inline, start_session

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Both profiles start with two bad values among good ones: they fall back to the defaults, with a message.
OPTIONS = {"diffusion": {**SHORT, "steps": "many", "strategy": "best", "bogus": 1}}


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, server_env=ENV), scope="module",
                    params=["neovim", "visual-studio-code"])
async def client(lsp_client: LanguageClient, request):
    lsp_client.session = await start_session(lsp_client, request.param, OPTIONS)
    yield
    await lsp_client.shutdown_session()


@pytest.fixture(scope="module")
def session(client: LanguageClient) -> Session:
    return client.session


async def test_announces_inline_completion_and_rewrite(session: Session):
    caps = session.init.capabilities
    assert isinstance(caps.inline_completion_provider, types.InlineCompletionOptions)
    assert list(caps.execute_command_provider.commands) == ["diffusion.rewrite"]
    assert list(caps.code_action_provider.code_action_kinds) == [types.CodeActionKind.RefactorRewrite]
    assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental
    assert session.init.server_info.name == "diffusion-ls"


async def test_bad_initialization_options_fall_back_with_a_message(session: Session):
    await session.status()  # initialized's messages are sent before any later answer
    texts = [m.message for m in session.client.messages if m.type == types.MessageType.Warning]
    assert any("steps='many'" in t and "using the default 16" in t for t in texts), texts
    assert any("strategy='best'" in t and "using the default 'threshold'" in t for t in texts), texts
    assert any("bogus" in t for t in texts), texts


async def test_inline_completion_after_an_edit(session: Session, reference):
    text = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    ret\n"
    uri = session.open(text)
    session.edit(uri, 2, (5, 7), (5, 7), "urn ")  # line 5: "    return "
    edited = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return \n"

    fut, _ = session.inline(uri, 5, 11, msg_id="inline-1")
    result = await fut
    expected = reference(edited, edited.index("return \n") + len("return "), SHORT)

    assert isinstance(result, types.InlineCompletionList)
    notes = session.notes("inline-1")
    assert all(n["uri"] == uri for n in notes)
    assert check_inline(notes, result, (5, 11), version=2) == expected
    assert len(notes) >= 3  # the canvas was seen denoising, not just its end
    assert notes[0]["masks"] and notes[0]["text"].endswith("·")
