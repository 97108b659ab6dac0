"""Jobs over the wire (Neovim profile): cancellation, supersession, edits while denoising, the event loop staying
responsive, rewrite / infill / code action, bad positions, bad settings, a model that does not load."""

from __future__ import annotations

import asyncio

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams, JsonRpcRequestCancelled

from tests.server.conftest import BIG, BIG_BODY, LONG, SHORT, Session, check_inline, check_stream

pytestmark = pytest.mark.asyncio(loop_scope="session")

BODY = "def f(x):\n    \n"  # the cursor (1, 4) opens an empty body


def long_rewrite(session: Session, uri: str, msg_id: str) -> tuple:
    """A rewrite of BIG's body with LONG settings: still denoising when its first canvas arrives."""
    return session.request("diffusion/rewrite", {"textDocument": {"uri": uri}, "range": BIG_BODY}, msg_id=msg_id)


@pytest.fixture
def session(neovim: Session) -> Session:
    return neovim


def rng(a: tuple[int, int], b: tuple[int, int]) -> dict:
    return {"start": {"line": a[0], "character": a[1]}, "end": {"line": b[0], "character": b[1]}}


def code_action_params(uri: str, a: tuple[int, int], b: tuple[int, int]) -> types.CodeActionParams:
    selection = types.Range(types.Position(*a), types.Position(*b))
    return types.CodeActionParams(types.TextDocumentIdentifier(uri), selection, types.CodeActionContext(diagnostics=[]))


def before(session: Session, msg_id: str, index: int) -> bool:
    """Every notification for msg_id arrived before session.canvas[index]."""
    return all(n["id"] != msg_id for n in session.canvas[index:])


async def test_status_is_answered_while_denoising_and_cancel_stops_the_stream(session: Session):
    session.configure(LONG)
    uri = session.open(BIG + BODY)
    fut, mark = long_rewrite(session, uri, "long-1")
    await session.first_canvas("long-1")

    status = await session.status()  # the event loop answers while the engine thread denoises
    assert not fut.done()
    assert status["loaded"] is True and status["backend"] == "embedded" and status["device"] == "cpu"
    assert status["model"] and "error" not in status

    session.cancel("long-1")
    with pytest.raises(JsonRpcRequestCancelled) as err:
        await fut
    assert err.value.code == -32800
    assert not any(n["done"] for n in session.notes("long-1"))

    session.configure(SHORT)  # the next job runs once the cancelled one has left the engine thread
    after, _ = session.inline(uri, 43, 4, msg_id="after-cancel")
    result = await after
    check_inline(session.notes("after-cancel"), result, (43, 4), version=1)
    assert before(session, "long-1", mark["at"])  # nothing for the cancelled request after its answer


async def test_a_new_request_for_the_document_supersedes_the_running_one(session: Session):
    session.configure(LONG)
    uri = session.open(BIG + BODY)
    old, old_mark = long_rewrite(session, uri, "sup-old")
    await session.first_canvas("sup-old")
    session.configure(SHORT)
    new, _ = session.inline(uri, 43, 4, msg_id="sup-new")

    with pytest.raises(JsonRpcException) as err:
        await old
    assert err.value.code == types.LSPErrorCodes.ServerCancelled
    result = await new
    first_new = session.canvas.index(session.notes("sup-new")[0])
    assert before(session, "sup-old", first_new) and before(session, "sup-old", old_mark["at"])
    check_inline(session.notes("sup-new"), result, (43, 4), version=1)


async def test_an_edit_while_denoising_drops_the_result_for_the_old_version(session: Session):
    session.configure(LONG)
    uri = session.open(BIG + BODY)  # BODY's empty line is line 43
    old, old_mark = long_rewrite(session, uri, "edit-old")
    await session.first_canvas("edit-old")
    session.edit(uri, 2, (43, 4), (43, 4), "return ")

    with pytest.raises(JsonRpcException) as err:
        await old
    assert err.value.code == types.LSPErrorCodes.ContentModified
    assert all(n["version"] == 1 and not n["done"] for n in session.notes("edit-old"))

    session.configure(SHORT)
    new, _ = session.inline(uri, 43, 11, msg_id="edit-new")
    result = await new
    assert before(session, "edit-old", old_mark["at"])
    check_inline(session.notes("edit-new"), result, (43, 11), version=2)


async def test_a_canvas_delay_holds_each_intermediate_canvas_and_a_cancel_ends_the_wait(session: Session):
    loop = asyncio.get_running_loop()
    session.configure({**SHORT, "canvasDelayMs": 300})
    try:
        uri = session.open(BODY)
        fut, _ = session.inline(uri, 1, 4, msg_id="held")
        await session.first_canvas("held")
        t0 = loop.time()
        result = await fut
        held = sum(not n["done"] for n in session.notes("held"))
        assert held >= 1 and loop.time() - t0 >= 0.3 * held - 0.05  # each intermediate canvas, the first one too
        check_inline(session.notes("held"), result, (1, 4), version=1)

        session.configure({**LONG, "canvasDelayMs": 10_000})
        uri = session.open(BIG + BODY)
        fut, mark = long_rewrite(session, uri, "held-long")
        await session.first_canvas("held-long")
        t0 = loop.time()
        session.cancel("held-long")
        with pytest.raises(JsonRpcRequestCancelled):
            await fut
        assert loop.time() - t0 < 5  # not the 10 s the canvas was to be held
        assert len(session.notes("held-long")) == 1 and before(session, "held-long", mark["at"])
    finally:
        session.configure({**SHORT, "canvasDelayMs": 0})


async def test_a_position_out_of_range_is_a_clear_error_and_the_server_keeps_working(session: Session):
    session.configure(SHORT)
    uri = session.open("x = 1\n")
    fut, _ = session.inline(uri, 99, 0, msg_id="oor")
    with pytest.raises(JsonRpcInvalidParams) as err:
        await fut
    assert "99:0" in err.value.message and "line 99 is outside the document (2 lines)" in err.value.message
    with pytest.raises(JsonRpcInvalidParams) as err:
        await session.custom("diffusion/infill", {"textDocument": {"uri": "file:///nowhere.py"},
                                                  "position": {"line": 0, "character": 0}})
    assert "is not open" in err.value.message

    fut, _ = session.inline(uri, 1, 0, msg_id="oor-after")
    result = await fut
    check_inline(session.notes("oor-after"), result, (1, 0), version=1)


async def test_rewrite_returns_an_edit_for_exactly_the_selection(session: Session):
    session.configure(SHORT)
    # an expression the shipped model answers, in both modes, with one the guard lets through (a statement there was
    # answered with a return, which left the function's own return never run; `a + b` regenerated is `a + b` again,
    # refused as the same text)
    uri = session.open("def add(a, b):\n    return a+b\n")
    selection = rng((1, 11), (1, 14))  # "a+b"
    for mode in ("regenerate", "refine"):
        fut, _ = session.request("diffusion/rewrite", {"textDocument": {"uri": uri}, "range": selection,
                                                       "mode": mode}, msg_id=f"rewrite-{mode}")
        result = await fut
        edit = result.edit
        assert result.version == 1
        assert (edit.range.start.line, edit.range.start.character) == (1, 11)
        assert (edit.range.end.line, edit.range.end.character) == (1, 14)
        check_stream(session.notes(f"rewrite-{mode}"), edit.newText, selection, version=1)

    fut, _ = session.request("diffusion/rewrite", {"textDocument": {"uri": uri}, "range": rng((1, 11), (1, 11))},
                             msg_id="rewrite-empty")
    with pytest.raises(JsonRpcInvalidParams):
        await fut


async def test_a_rewrite_in_a_crlf_document_is_its_lf_twins_with_crlf_line_endings(session: Session):
    """Refine two whole lines of a Windows file: the same answer as for the "\n" file, with "\r\n" (a refined
    selection the model keeps as it is is refused as unchanged, not returned with its line endings changed)."""
    session.configure({**SHORT, "maxTokens": 64})
    text = "def add(a, b):\n    total = a + b\n    return total\n\n\ndef mul(a, b):\n    return a * b\n"
    got = {}
    for name, doc in (("lf", text), ("crlf", text.replace("\n", "\r\n"))):
        uri = session.open(doc, name=f"rewrite-{name}")
        for mode in ("refine", "regenerate"):
            fut, _ = session.request("diffusion/rewrite", {"textDocument": {"uri": uri}, "range": rng((1, 0), (3, 0)),
                                                           "mode": mode}, msg_id=f"{name}-{mode}")
            result = await fut
            got[name, mode] = (result.edit.newText if result.edit else None, result.reason)
            if name == "crlf":
                texts = [n["text"] for n in session.notes(f"{name}-{mode}")]
                assert texts and all("\n" not in t.replace("\r\n", "") for t in texts), [
                    (i, t) for i, t in enumerate(texts) if "\n" in t.replace("\r\n", "")]
    for mode in ("refine", "regenerate"):
        lf_text, lf_reason = got["lf", mode]
        assert got["crlf", mode] == (lf_text.replace("\n", "\r\n") if lf_text else None, lf_reason), mode


async def test_rewrite_code_action_runs_the_command_which_applies_the_edit(session: Session):
    session.configure({**SHORT, "dtype": "bfloat16"})  # rewrites the line (int8 writes it again: refused, as below)
    uri = session.open("def add(a, b):\n    total = a + b\n    return total\n")
    selection = rng((1, 4), (1, 17))  # "total = a + b"
    actions = await session.raw(types.TEXT_DOCUMENT_CODE_ACTION, code_action_params(uri, (1, 4), (1, 17)),
                                msg_id="actions")
    assert [a["title"] for a in actions] == ["Diffusion: rewrite selection", "Diffusion: refine selection"]
    assert [a["kind"] for a in actions] == ["refactor.rewrite", "refactor.rewrite"]
    command = actions[0]["command"]
    assert command["command"] == "diffusion.rewrite"
    assert command["arguments"] == [{"textDocument": {"uri": uri}, "range": selection, "mode": "regenerate"}]

    result = await session.raw(types.WORKSPACE_EXECUTE_COMMAND, types.ExecuteCommandParams(
        command["command"], arguments=command["arguments"]), msg_id="run-rewrite")
    assert result["applied"] is True and result["version"] == 1, result
    (applied,) = session.applied
    (edit,) = applied["edit"]["changes"][uri]  # Neovim has no documentChanges: a plain changes map
    assert edit["range"] == selection
    assert edit == result["edit"] and edit["newText"] not in ("", "total = a + b")
    check_stream(session.notes("run-rewrite"), edit["newText"], selection, version=1)

    assert await session.raw(types.TEXT_DOCUMENT_CODE_ACTION, code_action_params(uri, (2, 11), (2, 11)),
                             msg_id="no-actions") == []


async def test_a_rewrite_the_guard_refuses_is_not_applied_and_the_user_is_told_why(session: Session):
    session.configure(SHORT)
    uri = session.open("def add(a, b):\n    total = a + b\n    return total\n")
    selection = rng((2, 11), (2, 16))  # "total": the shipped model writes it again
    args = [{"textDocument": {"uri": uri}, "range": selection, "mode": "regenerate"}]
    applied_before = len(session.applied)
    result = await session.raw(types.WORKSPACE_EXECUTE_COMMAND, types.ExecuteCommandParams(
        "diffusion.rewrite", arguments=args), msg_id="refused")
    assert result == {"applied": False, "edit": None, "version": 1,
                      "reason": "the answer is the same as the text it would replace"}
    assert len(session.applied) == applied_before  # no workspace/applyEdit was sent
    assert session.messages[-1] == f"diffusion-ls: rewrite refused: {result['reason']}"
    notes = session.notes("refused")
    check_stream(notes, "total", selection, version=1)  # the last canvas is the selection as it is
    assert notes[-1]["reason"] == result["reason"]
    direct = await session.custom("diffusion/rewrite", args[0])
    assert direct["edit"] is None and direct["reason"] == result["reason"]
    status = await session.custom("diffusion/status", {})
    assert status["lastRefused"] == result["reason"]  # a status bar can say the last fill was refused, and why


async def test_infill_fills_every_placeholder_a_canvas_each(session: Session):
    """Filled alone, in a file of nothing but stubs, the model writes `...` again (refused as the same text): the
    placeholders here sit among code."""
    session.configure(SHORT)
    text = ("def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    ...\n\n\ndef mul(a, b):\n    return a * b\n\n\n"
            "def div(a, b):\n    ...\n")
    uri = session.open(text)
    fut, _ = session.request("diffusion/infill", {"textDocument": {"uri": uri}}, msg_id="multi")
    result = await fut
    assert result.version == 1
    first, second = result.edits
    assert (first.range.start.line, first.range.start.character, first.range.end.character) == (5, 4, 7)
    assert (second.range.start.line, second.range.start.character, second.range.end.character) == (13, 4, 7)
    between = "\n\n\ndef mul(a, b):\n    return a * b\n\n\ndef div(a, b):\n    "
    check_stream(session.notes("multi"), first.newText + between + second.newText, rng((5, 4), (13, 7)), version=1)
    assert all(between in n["text"] for n in session.notes("multi"))  # the text between holes shows as is

    # on the blank line after sub's stub (at the start of `def mul`'s line the model writes `def add(a, b):` again,
    # refused: a def with no body)
    fut, _ = session.request("diffusion/infill", {"textDocument": {"uri": uri},
                                                  "position": {"line": 6, "character": 0}}, msg_id="at-cursor")
    (edit,) = (await fut).edits
    assert (edit.range.start.line, edit.range.start.character, edit.range.end.line, edit.range.end.character) == (
        6, 0, 6, 0)


async def test_a_bad_setting_falls_back_to_its_default_with_a_message(session: Session):
    session.configure({**SHORT, "maxTokens": -5, "device": "gpu"})
    await session.status()  # a pushed change is adopted (and reported) before the next message is handled
    warnings = [m.message for m in session.client.messages if m.type == types.MessageType.Warning]
    assert any("maxTokens=-5" in w and "using the default 256" in w for w in warnings), warnings
    assert any("device='gpu'" in w and "using the default 'cpu'" in w for w in warnings), warnings
    problems = (await session.status())["settingsProblems"]  # :checkhealth lists them
    assert any("maxTokens=-5" in p for p in problems) and any("device='gpu'" in p for p in problems), problems

    # an empty push: the server pulls the `diffusion` section with workspace/configuration
    session.client.set_configuration({**SHORT, "steps": 0}, section="diffusion")
    shown = session.client.wait_for_notification(types.WINDOW_SHOW_MESSAGE)
    session.client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    message = await asyncio.wait_for(shown, 60)
    assert message.type == types.MessageType.Warning
    assert "steps=0" in message.message and "using the default 32" in message.message
    session.configure(SHORT)
    assert "settingsProblems" not in await session.status()  # good settings again: none listed


async def test_a_language_outside_the_allow_list_gets_no_fill(session: Session):
    session.configure({**SHORT, "languages": ["rust", "go"]})
    uri = session.open("x = 1\n")
    fut, _ = session.inline(uri, 1, 0, msg_id="off")
    assert list((await fut).items) == []
    fut, _ = session.request("diffusion/infill", {"textDocument": {"uri": uri},
                                                  "position": {"line": 1, "character": 0}}, msg_id="off-infill")
    with pytest.raises(JsonRpcException) as err:
        await fut
    assert err.value.code == types.LSPErrorCodes.RequestFailed and "`languages` setting" in err.value.message
    assert session.notes("off") == [] and session.notes("off-infill") == []
    session.configure({**SHORT, "languages": None})


async def test_a_model_that_does_not_load_is_reported_and_requests_fail_clearly(session: Session, tmp_path):
    session.configure({**SHORT, "modelPath": str(tmp_path / "missing")})
    uri = session.open("x = 1\n")
    fut, _ = session.inline(uri, 1, 0, msg_id="no-model")
    with pytest.raises(JsonRpcException) as err:
        await fut
    assert err.value.code == types.LSPErrorCodes.RequestFailed
    assert "could not load the model" in err.value.message and "does not exist" in err.value.message
    errors = [m.message for m in session.client.messages if m.type == types.MessageType.Error]
    assert any("could not load the model" in e and "modelPath" in e for e in errors), errors
    status = await session.status()
    assert status["loaded"] is False and "does not exist" in status["error"]

    session.configure({**SHORT, "modelPath": None})  # back to the shipped model
    fut, _ = session.inline(uri, 1, 0, msg_id="model-back")
    result = await fut
    check_inline(session.notes("model-back"), result, (1, 0), version=1)
    assert (await session.status())["loaded"] is True

    # the shipped model with a setting it cannot run with: the hint names that setting, not modelPath (a trial)
    session.configure({**SHORT, "dtype": "int8", "device": "cuda"})
    fut, _ = session.inline(uri, 1, 0, msg_id="int8-cuda")
    with pytest.raises(JsonRpcException) as err:
        await fut
    assert "dtype int8 runs on the CPU only" in err.value.message
    said = [m.message for m in session.client.messages if m.type == types.MessageType.Error][-1]
    assert "check `device` and `dtype`" in said and "modelPath" not in said, said
    # a device this machine does not have: said in those words, not torch's (a VS Code trial got "pin_memory=True
    # requires a CUDA or other accelerator backend")
    import torch

    if not torch.cuda.is_available():
        session.configure({**SHORT, "dtype": None, "device": "cuda"})
        fut, _ = session.inline(uri, 1, 0, msg_id="no-cuda")
        with pytest.raises(JsonRpcException) as err:
            await fut
        assert "device cuda: torch" in err.value.message and "sees no CUDA GPU here; set `device` to cpu" in \
            err.value.message and ".." not in err.value.message, err.value.message
        status = await session.status()  # not the figures of the fills before, which another model made
        assert status["lastLatencyMs"] is None and status["nfe"] is None, status
    session.configure({**SHORT, "dtype": None, "device": None})  # null: back to the default
    fut, _ = session.inline(uri, 1, 0, msg_id="cpu-back")
    await fut
    assert session.notes("cpu-back")[-1]["done"] and (await session.status())["loaded"] is True
