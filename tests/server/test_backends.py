"""The `backend` setting end to end: the real server over stdio with DiffusionGemma and masked-diffusion models.

- transformers: a tiny random DiffusionGemma checkpoint (tests/backends/conftest.py builds it) loaded by the server from
  `modelPath`, on CPU: the chat prompt, the EB sampler on uniform noise and the model's own loop (strategy "native")
  all stream diffusion/canvas notifications.
- masked-diffusion: a tiny random Open-dCoder-shaped checkpoint (tests/backends/masked_standin.py), its canvas between
  the prefix and the suffix, exact and with the dual cache: the same streams and ranges as the other backends.
- vllm-remote: the same server switched (workspace/didChangeConfiguration) to a loopback HTTP server replaying the
  SYNTHETIC vLLM responses of tests/backends/test_vllm_remote.py: one notification per committed canvas.

The model is random: fills are garbage that post-processing often drops, so the tests assert the protocol (ranges,
streams, results equal to the last notification), not text.
"""

from __future__ import annotations

import asyncio
import inspect
from concurrent.futures import Future

import pytest
import pytest_lsp
from pytest_lsp import LanguageClient

from engine.model import native_int8
from tests.server.conftest import CONFIG, TIMEOUT, Session, check_inline, check_stream, plain, start_session

pytest.importorskip("transformers", minversion="5.11")  # the `hf` extra

in_module_loop = pytest.mark.asyncio(loop_scope="module")  # the server's client lives in the module's event loop

TINY = {"threads": 1, "maxTokens": 8, "steps": 4}
TEXT = "def scale(values, k):\n    out = []\n    \n    return out\n"  # the cursor on line 2 starts a statement
INLINE_AT = (2, 4)
SELECTED = ((1, 4), (1, 12))  # "out = []"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from tests.backends.conftest import build_model, build_tokenizer

    d = tmp_path_factory.mktemp("diffusiongemma-tiny")
    tok = build_tokenizer(d)
    build_model(d, vocab_size=len(tok) + 3)
    return d


@pytest.fixture(scope="module")
def masked_dir(tmp_path_factory):
    from tests.backends.masked_standin import build_qwen2, build_tokenizer

    d = tmp_path_factory.mktemp("open-dcoder-tiny")
    build_qwen2(d, build_tokenizer(d))
    return d


@pytest.fixture(scope="module")
def dg_options(tiny_dir) -> dict:
    return {"backend": "transformers", "modelPath": str(tiny_dir), **TINY}


# the backends these server tests run on: settings, the model directory's fixture, the strategies to try
BACKENDS = {
    "transformers": ({"backend": "transformers"}, "tiny_dir", (None, "native")),
    "masked-diffusion": ({"backend": "masked-diffusion"}, "masked_dir", (None, "eb")),
    "masked-diffusion-dual": ({"backend": "masked-diffusion", "dualCache": True}, "masked_dir", (None,)),
}


@pytest.fixture(params=list(BACKENDS))
def local(request) -> tuple[dict, object, tuple]:
    """(settings, model directory, strategies) of one backend that loads a local checkpoint."""
    settings, fixture, strategies = BACKENDS[request.param]
    d = request.getfixturevalue(fixture)
    return {**settings, "modelPath": str(d), **TINY}, d, strategies


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def dg_client(lsp_client: LanguageClient, dg_options: dict):
    lsp_client.session = await start_session(lsp_client, "neovim", dg_options)
    yield
    await lsp_client.shutdown_session()


@pytest.fixture(scope="module")
def dg(dg_client: LanguageClient) -> Session:
    return dg_client.session


def use(session: Session, settings: dict) -> None:
    """Switch the server to these settings (a backend whose settings did not change is not reloaded)."""
    session.configure({"strategy": None, "dualCache": None, **settings})  # null: back to the default


@in_module_loop
async def test_local_inline_completion_streams_and_status(dg: Session, local):
    options, model_dir, strategies = local
    use(dg, options)
    uri = dg.open(TEXT)
    for strategy in strategies:
        msg_id = f"inline-{options['backend']}-{options.get('dualCache')}-{strategy}"
        dg.configure({"strategy": strategy})
        fut, _ = dg.inline(uri, *INLINE_AT, msg_id=msg_id)
        result = await asyncio.wait_for(fut, TIMEOUT)
        notes = dg.notes(msg_id)
        assert len(notes) >= 2, notes  # at least one intermediate canvas, then the result
        assert notes[0]["masks"] and "·" in notes[0]["text"]
        if strategy != "native":
            check_inline(notes, result, INLINE_AT, version=1)
        else:  # the model's own loop re-decides every slot at every forward: the masked count may go up and down
            assert [n["step"] for n in notes] == list(range(1, len(notes) + 1))
            assert notes[-1]["done"] and not any(n["done"] for n in notes[:-1])
            assert notes[-1]["text"] == (result.items[0].insert_text if result.items else "")
    status = await dg.status()
    assert (status["backend"], status["model"], status["device"], status["steppable"], status["loaded"]) == (
        options["backend"], model_dir.name, "cpu", True, True)
    assert status["capabilities"]["canvasBetween"] == (options["backend"] == "masked-diffusion")
    assert status["nfe"] >= 1 and "error" not in status
    if options["backend"] == "transformers":  # the loaded weights' memory, measured (engine.memory)
        from transformers import DiffusionGemmaForBlockDiffusion

        from engine.memory import weight_bytes

        loaded = DiffusionGemmaForBlockDiffusion.from_pretrained(model_dir)  # as the server loads it ("auto")
        assert status["memoryEstimateGiB"] == round(weight_bytes(loaded) / 2**30, 3)  # tied weights counted once
        assert status["memoryFormat"] == str(next(loaded.parameters()).dtype).removeprefix("torch.")


@in_module_loop
async def test_local_rewrite_edits_exactly_the_range(dg: Session, local):
    options, _, _ = local
    use(dg, options)
    uri = dg.open(TEXT)
    (a, b), (c, d) = SELECTED
    rng = {"start": {"line": a, "character": b}, "end": {"line": c, "character": d}}
    got = await dg.custom("diffusion/rewrite", {"textDocument": {"uri": uri}, "range": rng,
                                                 "instruction": "use a list comprehension"})
    notes = [n for n in dg.canvas if n["uri"] == uri]
    assert got["version"] == 1
    if got["edit"] is None:  # what a tiny random model writes is mostly not Python: refused, said why, text kept
        assert got["reason"] and notes[-1]["reason"] == got["reason"]
        check_stream(notes, "out = []", rng, version=1)
    else:  # an edit replaces exactly the selection, with the text the stream ended on
        assert got["edit"]["range"] == rng
        check_stream(notes, got["edit"]["newText"], rng, version=1)


@in_module_loop
async def test_a_request_without_params_is_answered(dg: Session):
    """`params` may be left out of a JSON-RPC request: pygls' request type requires the field, so the message failed
    to parse (inside json.loads, never answered); the protocol reads it as null params and diffusion/status takes them.
    """
    proto = dg.client.protocol
    fut: Future = Future()
    proto._request_futures["no-params"] = fut
    body = b'{"jsonrpc": "2.0", "id": "no-params", "method": "diffusion/status"}'
    res = proto.writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    if inspect.isawaitable(res):
        await res
    status = plain(await asyncio.wait_for(asyncio.wrap_future(fut), TIMEOUT))
    assert status["serverVersion"] and "backend" in status


# -- vllm-remote ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_vllm():
    pytest.importorskip("httpx")
    from tests.backends.test_vllm_remote import running_fake_vllm

    with running_fake_vllm() as srv:
        yield srv


@in_module_loop
async def test_the_embedded_model_with_8_bit_products_completes_and_says_so(dg: Session):
    use(dg, {"backend": "embedded", "modelPath": None, "dtype": "int8"})
    uri = dg.open(TEXT)
    fut, _ = dg.inline(uri, *INLINE_AT, msg_id="inline-int8", invoked=True)
    result = await asyncio.wait_for(fut, TIMEOUT)
    check_inline(dg.notes("inline-int8"), result, INLINE_AT, version=1)
    status = await dg.status()
    assert status["backend"] == "embedded" and status["loaded"] and status["memoryFormat"].endswith("+int8"), status
    use(dg, {"dtype": None, "strategy": "lossless"})  # auto keeps batches exact for lossless: no int8
    fut, _ = dg.inline(uri, *INLINE_AT, msg_id="inline-lossless", invoked=True)
    await asyncio.wait_for(fut, TIMEOUT)
    assert dg.notes("inline-lossless")[-1]["done"]  # decoded (here the guard refuses what it wrote: a repeated line)
    status = await dg.status()
    assert status["loaded"] and "int8" not in status["memoryFormat"], status
    use(dg, {"dtype": None})
    fut, _ = dg.inline(uri, *INLINE_AT, msg_id="inline-auto", invoked=True)
    await asyncio.wait_for(fut, TIMEOUT)
    assert dg.notes("inline-auto")[-1]["done"]
    status = await dg.status()
    assert status["memoryFormat"].endswith("+int8") == native_int8("cpu"), status  # auto: int8 where it runs natively


def test_remote_hole_sizing_makes_no_round_trip(fake_vllm):
    """Sizing a hole counts tokens many times per keystroke: with a remote tokenizer, a local estimate does it."""
    from engine.backends.vllm import VLLMRemoteBackend
    from server import fill

    be = VLLMRemoteBackend(fake_vllm.url)
    try:
        target = fill.target(be)
        assert target.sizing is None and not target.steppable and target.extra_slots == fill.CHAT_EXTRA_SLOTS
        before = len(fake_vllm.requests)
        plan = fill.plan_cursor(TEXT, TEXT.index("    \n") + 4, "python", target, 384, 8)
        assert len(fake_vllm.requests) == before  # no /tokenize: the plan holds holes, the backend builds the request
        assert plan.canvas is None and plan.holes[0].capacity <= 8 + fill.CHAT_EXTRA_SLOTS
    finally:
        be.close()


@in_module_loop
async def test_vllm_remote_streams_one_notification_per_chunk(dg: Session, fake_vllm):
    from tests.backends.test_vllm_remote import MODEL, PREFIX, SUFFIX, canvas

    use(dg, {"backend": "vllm-remote", "serverUrl": fake_vllm.url, "maxTokens": 8})
    fake_vllm.script = [canvas("k if k > 0 else ", None), canvas("-k\n```", "stop", tail=(106,))]
    uri = dg.open(PREFIX + SUFFIX)
    cursor = (3, len(PREFIX.splitlines()[-1]))
    fut, _ = dg.inline(uri, *cursor, msg_id="remote-inline")
    result = await asyncio.wait_for(fut, TIMEOUT)
    notes = dg.notes("remote-inline")
    assert [(n["text"], n["masks"], n["done"]) for n in notes] == [
        ("k if k > 0 else ", [], False), ("k if k > 0 else -k", [], True)]  # the fill so far, fence cut
    check_inline(notes, result, cursor, version=1)
    assert result.items[0].insert_text == "k if k > 0 else -k"  # the last chunk's fill
    (body,) = fake_vllm.completions()[-1:]
    assert body["model"] == MODEL and body["max_tokens"] == body["vllm_xargs"]["diffusion_canvas_length"] <= 8 + 4

    fake_vllm.script = [canvas("v * k * 2\n```", "stop", tail=(106,))]
    line = PREFIX.splitlines()[-1]
    rng = {"start": {"line": 3, "character": line.index("v *")}, "end": {"line": 3, "character": len(line)}}
    got = await dg.custom("diffusion/rewrite", {"textDocument": {"uri": uri}, "range": rng})
    assert got["edit"] == {"range": rng, "newText": "v * k * 2"}

    status = await dg.status()
    assert (status["backend"], status["model"], status["steppable"], status["serverUrl"]) == (
        "vllm-remote", MODEL, False, fake_vllm.url)
    assert status["nfe"] == 1  # one canvas


# -- settings ---------------------------------------------------------------------------------------------------------


def test_settings_map_onto_load_backend(monkeypatch):
    from server.config import API_KEY_ENV, parse_settings

    s, problems = parse_settings({"backend": "transformers", "modelPath": "/m", "dtype": "bfloat16", "threads": 2})
    assert problems == [] and s.backend_options() == {"model_path": "/m", "device": "cpu", "dtype": "bfloat16",
                                                      "threads": 2}
    monkeypatch.setenv(API_KEY_ENV, "sk-test")
    s, _ = parse_settings({"backend": "vllm-remote", "serverUrl": "http://gpu:8000", "serverModel": "dg",
                           "pinSuffix": 3})
    assert s.backend_options() == {"url": "http://gpu:8000", "model": "dg", "api_key": "sk-test", "pin_suffix": 3}
    assert parse_settings({"backend": "vllm", "modelPath": "/m"})[0].backend_options() == {"model_path": "/m",
                                                                                         "pin_suffix": 0}
    for raw, missing in (({"backend": "transformers"}, "modelPath"), ({"backend": "vllm-remote"}, "serverUrl")):
        with pytest.raises(ValueError, match=missing):
            parse_settings(raw)[0].backend_options()
    s, problems = parse_settings({"serverUrl": "gpu:8000", "strategy": "native"})
    assert s.server_url is None and "serverUrl" in problems[0]
    assert s.sampler().strategy == "eb" and s.notes()  # the embedded model: "eb", said once
    assert not parse_settings({"strategy": "native", "backend": "transformers", "modelPath": "/m"})[0].notes()
    assert "masked-diffusion model uses 'eb'" in parse_settings(
        {"strategy": "native", "backend": "masked-diffusion", "modelPath": "/m"})[0].notes()[0]
    s, problems = parse_settings({"backend": "masked-diffusion", "modelPath": "/m", "trustRemoteCode": True,
                                  "dualCache": True, "maskTokenId": 151666, "logitShift": False})
    assert problems == [] and s.backend_options() == {
        "model_path": "/m", "device": "cpu", "dtype": "auto", "threads": None, "trust_remote_code": True,
        "dual_cache": True, "mask_token_id": 151666, "logit_shift": False}
    assert parse_settings({"backend": "masked-diffusion", "modelPath": "/m"})[0].backend_options()[
        "trust_remote_code"] is False  # off unless the user turns it on
    assert s.backend_key() != parse_settings({"backend": "masked-diffusion", "modelPath": "/m"})[0].backend_key()
    with pytest.raises(ValueError, match="modelPath"):
        parse_settings({"backend": "masked-diffusion"})[0].backend_options()
