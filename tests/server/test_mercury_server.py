"""The mercury backend end to end: the real server over stdio, its API key in the environment (INCEPTION_API_KEY),
`serverUrl` at a loopback HTTP server replaying Inception's formats (tests/backends/test_mercury.py, REPLAYED, NOT
RECORDED). Inline completion goes to the FIM endpoint and streams one diffusion/canvas notification per streamed
piece; a rewrite goes to a diffusing chat completion and shows each whole-canvas draft as its own notification, each
replacing the last; every API failure fails that request with a message saying what to do, and the server goes on.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.backends import test_mercury as replay
from tests.backends.test_mercury import KEY
from tests.server.conftest import ENV, SERVER, TIMEOUT, Session, check_inline, check_stream, start_session

in_module_loop = pytest.mark.asyncio(loop_scope="module")

PREFIX = "def scale(values, k):\n    out = []\n    for v in values:\n        out.append(v * "
SUFFIX = ")\n    return out\n"
CURSOR = (3, len(PREFIX.splitlines()[-1]))


@pytest.fixture(scope="module")
def fake():
    with replay.running_fake_mercury() as srv:
        yield srv


# the key is in the server's environment, as an editor would pass it; never in settings
@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, server_env={**ENV, "INCEPTION_API_KEY": KEY}),
                    scope="module")
async def mercury_client(lsp_client: LanguageClient, fake):
    lsp_client.session = await start_session(lsp_client, "neovim", {"backend": "mercury", "serverUrl": fake.url,
                                                                     "maxTokens": 16})
    yield
    await lsp_client.shutdown_session()


@pytest.fixture(scope="module")
def mercury(mercury_client: LanguageClient) -> Session:
    return mercury_client.session


@in_module_loop
async def test_fills_and_rewrites_stream_through_the_canvas(mercury: Session, fake):
    r = replay
    fake.error = None
    fake.script = [r.fim_frame("k if k > 0 "), r.fim_frame("else -k"), r.fim_frame("", "stop")]
    uri = mercury.open(PREFIX + SUFFIX)
    fut, _ = mercury.inline(uri, *CURSOR, msg_id="mercury-inline")
    result = await asyncio.wait_for(fut, TIMEOUT)
    notes = mercury.notes("mercury-inline")
    # one notification per streamed change of the text, then the result (the finish frame repeats the text)
    assert [(n["text"], n["masks"], n["done"]) for n in notes] == [
        ("k if k > 0 ", [], False), ("k if k > 0 else -k", [], False), ("k if k > 0 else -k", [], True)]
    check_inline(notes, result, CURSOR, version=1)
    assert result.items[0].insert_text == "k if k > 0 else -k"
    body = fake.bodies("/v1/fim/completions")[-1]
    assert body["prompt"] == PREFIX and body["suffix"] == SUFFIX and body["stream"] is True
    assert 1 <= body["max_tokens"] <= 16 and body["model"] == "mercury-edit-2"

    # a rewrite: three drafts of the whole selection, each one a notification that replaces the one before
    fake.script = r.diffusing(["```python\nv ·· k\n```", "```python\nv * k * 3\n```", "```python\nv * k * 2\n```"])
    line = PREFIX.splitlines()[-1]
    rng = {"start": {"line": 3, "character": line.index("v *")}, "end": {"line": 3, "character": len(line)}}
    got = await mercury.custom("diffusion/rewrite", {"textDocument": {"uri": uri}, "range": rng,
                                                     "instruction": "double it", "mode": "regenerate"})
    assert got["edit"] == {"range": rng, "newText": "v * k * 2"} and got["reason"] is None
    notes = [n for n in mercury.canvas if n["uri"] == uri and n["id"] != "mercury-inline"]
    assert [n["text"] for n in notes] == ["v ·· k", "v * k * 3", "v * k * 2"]
    check_stream(notes, "v * k * 2", rng, version=1)
    body = fake.bodies("/v1/chat/completions")[-1]
    assert body["diffusing"] is True and body["model"] == "mercury-2" and "double it" in body["messages"][0]["content"]

    status = await mercury.status()
    assert (status["backend"], status["model"], status["steppable"], status["serverUrl"], status["loaded"]) == (
        "mercury", "mercury-edit-2 + mercury-2", False, fake.url, True)
    caps = {"streams": False, "instructions": True, "maskToken": False, "nativeInfill": True, "nativeLoop": False}
    assert {k: status["capabilities"][k] for k in caps} == caps
    assert status["nfe"] == 3 and "error" not in status  # three drafts


@in_module_loop
@pytest.mark.parametrize("error, headers, script, expect", [
    ({"error": {"message": "Incorrect API key provided.", "type": "authentication_error"}}, {}, None,
     "refused the API key (401: Incorrect API key provided.); put a valid key in the INCEPTION_API_KEY"),
    ({"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}, {"Retry-After": "12"}, None,
     "rate limited by the Inception API (429: Rate limit reached); retry after 12 s"),
    ({"error": {"message": "overloaded", "type": "overloaded_error"}}, {}, None,
     "the Inception API failed (503: overloaded); the service is overloaded or down, try again shortly"),
    (None, {}, ["{\"choices\": [", "more"], "malformed stream"),
])
async def test_api_failures_fail_the_request_and_the_server_stays_up(mercury: Session, fake, error, headers,
                                                                     script, expect):
    r = replay
    status = {"authentication_error": 401, "rate_limit_error": 429, "overloaded_error": 503}
    fake.error = (status[error["error"]["type"]], error, headers) if error else None
    fake.script = script or []
    uri = mercury.open(PREFIX + SUFFIX, name="err")
    params = types.InlineCompletionParams(
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        text_document=types.TextDocumentIdentifier(uri), position=types.Position(*CURSOR))
    with pytest.raises(JsonRpcException) as failed:
        await asyncio.wait_for(mercury.client.text_document_inline_completion_async(params), TIMEOUT)
    assert "MercuryError" in str(failed.value) and expect in str(failed.value)
    # the server goes on: the next request, with the API back, is answered
    fake.error, fake.script = None, [r.fim_frame("k", "stop")]
    fut, _ = mercury.inline(uri, *CURSOR, msg_id=f"after-{expect[:12]}")
    result = await asyncio.wait_for(fut, TIMEOUT)
    assert result.items[0].insert_text == "k"
    assert (await mercury.status())["loaded"] is True


def test_settings_for_mercury_and_quantization(monkeypatch):
    from server.config import MERCURY_KEY_ENV, parse_settings

    monkeypatch.setenv(MERCURY_KEY_ENV, "sk-env")
    s, problems = parse_settings({"backend": "mercury", "apiKey": "sk-settings"})  # a key in settings is ignored
    assert s.backend_options() == {"api_key": "sk-env", "url": None, "model": None}
    assert problems == ["unknown setting ignored: apiKey"]
    s, _ = parse_settings({"backend": "mercury", "serverUrl": "http://127.0.0.1:9/v1", "serverModel": "mercury-coder"})
    assert s.backend_options() == {"api_key": "sk-env", "url": "http://127.0.0.1:9/v1", "model": "mercury-coder"}
    monkeypatch.delenv(MERCURY_KEY_ENV)
    assert parse_settings({"backend": "mercury"})[0].backend_options()["api_key"] is None  # the backend says why

    s, problems = parse_settings({"backend": "transformers", "modelPath": "/m", "quantization": "bnb-4bit"})
    assert not problems and s.backend_options()["quantization"] == "bnb-4bit"  # refused at load, with the reason
    assert "quantization" not in parse_settings({"backend": "transformers", "modelPath": "/m"})[0].backend_options()
    s, problems = parse_settings({"backend": "transformers", "modelPath": "/m", "quantization": "experts-int4"})
    assert not problems and s.backend_options()["quantization"] == "experts-int4"  # engine.quant: loads
    s, problems = parse_settings({"quantization": "gptq"})
    assert s.quantization == "none" and "quantization" in problems[0]
    s, _ = parse_settings({"backend": "vllm", "modelPath": "/m", "quantization": "quanto-int8"})
    assert any("pre-quantized checkpoint directory" in n for n in s.notes())
    assert parse_settings({"quantization": "bnb-8bit"})[0].backend_key() != parse_settings({})[0].backend_key()
