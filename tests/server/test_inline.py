"""Inline completion over the wire, once per client profile: edit, request, the stream, the result."""

from __future__ import annotations

import ast

import pytest
from lsprotocol import types

from tests.server.conftest import SHORT, Session, check_inline

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(params=["neovim", "vscode"])
def session(request) -> Session:
    return request.getfixturevalue(request.param)


async def test_announces_inline_completion_and_rewrite(session: Session):
    caps = session.init.capabilities
    assert isinstance(caps.inline_completion_provider, types.InlineCompletionOptions)
    assert list(caps.execute_command_provider.commands) == ["diffusion.rewrite"]
    assert list(caps.code_action_provider.code_action_kinds) == [types.CodeActionKind.RefactorRewrite]
    assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental
    assert session.init.server_info.name == "diffusion-ls"


async def test_positions_are_utf16_whatever_the_client_offers_and_hold_after_non_ascii_text(session: Session,
                                                                                              reference):
    """Neovim offers UTF-8 first; the server's documents count UTF-16 code units, so it must say UTF-16. An edit and a
    completion after "ü", "ß" and an emoji (two UTF-16 units) on the cursor's line land where the editor means."""
    assert session.init.capabilities.position_encoding in (None, types.PositionEncodingKind.Utf16)
    session.configure(SHORT)
    text = 'def greet(name):\n    s = "Grüß dich 👋, " + na\n'
    uri = session.open(text)
    session.edit(uri, 2, (1, 29), (1, 29), "me")  # after `na`: UTF-16 column 29 (the emoji takes two units)
    edited = 'def greet(name):\n    s = "Grüß dich 👋, " + name\n'
    fut, _ = session.inline(uri, 1, 31, msg_id="utf16", invoked=True)
    result = await fut
    expected = reference(edited, edited.index("name\n") + len("name"), SHORT, automatic=False)
    assert check_inline(session.notes("utf16"), result, (1, 31), version=2) == expected


async def test_a_crlf_document_completes_as_its_lf_twin_with_crlf_line_endings(session: Session, reference):
    """A Windows file: the model reads it with "\n" (as it was trained), and the completion and every streamed
    canvas go back with "\r\n", never a bare "\n"."""
    session.configure(SHORT)
    text = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    \n"
    uri = session.open(text.replace("\n", "\r\n"))
    result = await session.inline(uri, 5, 4, msg_id="crlf", invoked=True)[0]
    expected = reference(text, text.index("    \n", 40) + 4, SHORT, automatic=False).replace("\n", "\r\n")
    assert expected and [i.insert_text for i in result.items] == [expected]
    notes = session.notes("crlf")
    assert len(notes) >= 2 and all("\n" not in n["text"].replace("\r\n", "") for n in notes)
    assert notes[-1]["text"] == expected


async def test_bad_initialization_options_fall_back_with_a_message(session: Session):
    await session.status()  # initialized's messages are sent before any later answer
    texts = [m.message for m in session.client.messages if m.type == types.MessageType.Warning]
    assert any("steps='many'" in t and "using the default 32" in t for t in texts), texts
    assert any("strategy='best'" in t and "using the default 'threshold'" in t for t in texts), texts
    assert any("bogus" in t for t in texts), texts


async def test_inline_completion_after_an_edit(session: Session, reference):
    session.configure(SHORT)
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


async def test_a_cursor_inside_a_word_gets_the_rest_of_the_word_never_the_typed_part_again(session: Session,
                                                                                             reference):
    """Token healing over the wire: typed up to `    ret`, the canvas re-spells " ret" as its first token, and the
    editor gets (streamed and final) only what comes after the cursor."""
    session.configure(SHORT)
    text = "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    ret\n"
    uri = session.open(text)
    fut, _ = session.inline(uri, 4, 7, msg_id="inline-heal")
    result = await fut
    expected = reference(text, text.index("ret\n") + 3, SHORT)
    notes = session.notes("inline-heal")
    assert check_inline(notes, result, (4, 7), version=1) == expected
    assert expected.startswith("urn ")  # "ret" + "urn s": the typed word completed, not a new one after it
    assert not any(n["text"].startswith(("ret", " ret")) for n in notes)


async def test_typing_the_start_of_a_completion_gets_its_rest_without_denoising_again(session: Session):
    """Editors ask again at every keystroke: typing what the last completion starts with is answered from it (one
    done notification, no forward); another character, or changed settings, denoise again; deleting a typo finds
    the completion made before it."""
    session.configure(SHORT)
    text = "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    ret\n"
    uri = session.open(text)
    full = (await session.inline(uri, 4, 7, msg_id="ahead-1")[0]).items[0].insert_text
    assert len(full) >= 3 and "\n" not in full[:2]
    session.edit(uri, 2, (4, 7), (4, 7), full[0])
    result = await session.inline(uri, 4, 8, msg_id="ahead-2")[0]
    notes = session.notes("ahead-2")
    assert check_inline(notes, result, (4, 8), version=2) == full[1:]
    assert len(notes) == 1 and notes[0]["nfe"] == 0
    session.configure({**SHORT, "steps": 15})  # other settings: the last completion no longer stands
    session.edit(uri, 3, (4, 8), (4, 8), full[1])
    await session.inline(uri, 4, 9, msg_id="ahead-3")[0]
    assert session.notes("ahead-3")[-1]["nfe"] > 0
    session.configure(SHORT)
    session.edit(uri, 4, (4, 9), (4, 9), "\u00a7")  # a character no completion here starts with
    await session.inline(uri, 4, 10, msg_id="ahead-4")[0]
    assert session.notes("ahead-4")[-1]["nfe"] > 0
    session.edit(uri, 5, (4, 9), (4, 10), "")  # the typo deleted: an earlier completion (same settings) stands again
    result = await session.inline(uri, 4, 9, msg_id="ahead-5")[0]
    notes = session.notes("ahead-5")
    assert check_inline(notes, result, (4, 9), version=5) == full[2:]
    assert len(notes) == 1 and notes[0]["nfe"] == 0
    # asked for where a suggestion is showing (a trial's Alt+\ changed nothing on screen): the model runs and streams
    result = await session.inline(uri, 4, 9, msg_id="ahead-6", invoked=True)[0]
    notes = session.notes("ahead-6")
    assert check_inline(notes, result, (4, 9), version=5) == full[2:]  # the sampler is deterministic: the same text
    assert len(notes) > 1 and notes[-1]["nfe"] > 0


async def test_typing_inside_a_word_gets_no_automatic_completion_but_an_explicit_request_fills(session: Session):
    session.configure(SHORT)
    uri = session.open("def total(xs):\n    return sum(xs)\n")
    result = await session.inline(uri, 1, 8, msg_id="word-auto")[0]  # "    ret|urn sum(xs)"
    assert not result.items and session.notes("word-auto") == []  # answered at once: nothing denoised
    await session.inline(uri, 1, 8, msg_id="word-invoked", invoked=True)[0]
    assert session.notes("word-invoked")[-1]["done"] and session.notes("word-invoked")[-1]["nfe"] > 0
    await session.inline(uri, 1, 18, msg_id="word-eol")[0]  # at the line's end: automatic requests fill as before
    assert session.notes("word-eol")[-1]["nfe"] > 0


async def test_a_context_budget_beyond_the_model_is_cut_to_fit(session: Session):
    """contextBudget far above the model's positions: requests in a long file still complete (the budget is cut)."""
    session.configure({**SHORT, "contextBudget": 60000, "maxTokens": 4096})
    body = "".join(f"def f{i}(a, b):\n    return a * {i} + b\n\n\n" for i in range(800))
    uri = session.open(body + "def g(a):\n    return \n")
    line = body.count("\n") + 1
    try:
        result = await session.inline(uri, line, 11, msg_id=f"inline-budget-{uri}")[0]
        assert isinstance(result, types.InlineCompletionList)
        notes = session.notes(f"inline-budget-{uri}")
        assert notes and notes[-1]["done"]
    finally:
        session.configure(SHORT)


async def test_weak_languages_complete_only_when_asked_and_status_says_what_the_model_can_do(session: Session,
                                                                                              tmp_path):
    from engine import DEFAULT_MODEL_DIR

    model = tmp_path / "model"  # the shipped model, with its measured languages saying Go is weak
    model.mkdir()
    for f in DEFAULT_MODEL_DIR.iterdir():
        if f.name != "languages.json":
            (model / f.name).symlink_to(f)
    (model / "languages.json").write_text(
        '{"languages": {"python": {"rating": "good"}, "go": {"rating": "weak"}, "typescript": {"rating": "weak"}}}')
    session.configure({**SHORT, "modelPath": str(model)})
    try:
        uri = session.open("package main\n\nfunc add(a int, b int) int {\n\t\n}\n", language="go")
        asked, _ = session.inline(uri, 3, 1, msg_id="weak-asked", invoked=True)  # waits for the model to load
        await asked
        assert session.notes("weak-asked")[-1]["done"]  # an explicit request fills
        status = await session.status()
        assert status["languages"] == {"python": "good", "go": "weak", "typescript": "weak"}
        assert status["weakLanguages"] == "explicit"
        assert status["capabilities"] == {"streams": True, "instructions": False, "maskToken": True,
                                          "nativeInfill": True, "nativeLoop": False, "canvasBetween": False,
                                          "repoContext": 256}  # the shipped model was trained to read 256 tokens
        auto, _ = session.inline(uri, 3, 1, msg_id="weak-auto")
        assert not (await auto).items and session.notes("weak-auto") == []  # nothing denoised while typing
        tsx = session.open("const add = (a: number, b: number) => \n", language="typescriptreact")
        auto, _ = session.inline(tsx, 0, 39, msg_id="weak-tsx")  # rated as TypeScript (weak in this languages.json)
        assert not (await auto).items and session.notes("weak-tsx") == []
        session.configure({"weakLanguages": "automatic"})
        auto, _ = session.inline(uri, 3, 1, msg_id="weak-automatic")
        await auto
        assert session.notes("weak-automatic")[-1]["done"]
        session.configure({"weakLanguages": "off"})
        asked, _ = session.inline(uri, 3, 1, msg_id="weak-off", invoked=True)
        assert not (await asked).items and session.notes("weak-off") == []
    finally:
        session.configure({"modelPath": None, "weakLanguages": None})


async def test_as_you_type_a_fill_the_model_was_unsure_of_is_not_shown_and_asked_for_it_is(session: Session,
                                                                                          reference):
    """minConfidence: an automatic completion with a token finalized below it is refused with the reason on its last
    canvas (the preview goes away); the same fill asked for (Invoked) is shown; at 0 every fill is shown."""
    text = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return \n"
    offset = text.index("return \n") + len("return ")
    uri = session.open(text)
    session.configure({**SHORT, "minConfidence": 1.0})  # no token is ever finalized at probability 1
    auto = await session.inline(uri, 5, 11, msg_id="unsure-auto")[0]
    done = session.notes("unsure-auto")[-1]
    assert not auto.items and done["done"] and "unsure" in done["reason"] and "minConfidence 1" in done["reason"]
    status = await session.status()
    assert status["minConfidence"] < 1.0
    assert status["tokensPerForward"] is None and status["nfe"] == 1  # no text: no rate (clients showed 0.0 tok/fwd)
    # given up at the forward that finalized its first (unsure) text token, not denoised to the end
    assert done["cut"] == "unsure" and done["nfe"] == 1
    asked = await session.inline(uri, 5, 11, msg_id="unsure-asked", invoked=True)[0]
    expected = reference(text, offset, SHORT, automatic=False)
    assert expected and [i.insert_text for i in asked.items] == [expected]
    assert session.notes("unsure-asked")[-1].get("cut") is None and session.notes("unsure-asked")[-1]["nfe"] > 1
    assert (await session.status())["tokensPerForward"] > 0
    session.configure({**SHORT, "minConfidence": 0})
    shown = await session.inline(uri, 5, 11, msg_id="unsure-off")[0]
    assert [i.insert_text for i in shown.items] == [expected]


async def test_as_you_type_a_fill_not_done_after_typing_forwards_is_not_shown_and_asked_for_it_is(
        session: Session, reference):
    """typingForwards: an automatic completion the model has not finished after that many forwards is given up there,
    with the reason on its last canvas; asked for (Invoked), it runs to its end."""
    text = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return \n"
    offset = text.index("return \n") + len("return ")
    uri = session.open(text)
    session.configure({**SHORT, "minConfidence": 0, "typingForwards": 1})
    auto = await session.inline(uri, 5, 11, msg_id="slow-auto")[0]
    done = session.notes("slow-auto")[-1]
    assert not auto.items and done["done"] and done["cut"] == "forwards" and done["nfe"] == 1
    assert done["reason"] == "the model had not finished it after 1 forwards (typingForwards)"
    asked = await session.inline(uri, 5, 11, msg_id="slow-asked", invoked=True)[0]
    expected = reference(text, offset, {**SHORT, "minConfidence": 0}, automatic=False)
    assert expected and [i.insert_text for i in asked.items] == [expected]
    assert session.notes("slow-asked")[-1]["nfe"] > 1
    session.configure({**SHORT, "minConfidence": 0, "typingForwards": 64})
    shown = await session.inline(uri, 5, 11, msg_id="slow-off")[0]
    assert [i.insert_text for i in shown.items] == [expected]
    session.configure({**SHORT, "typingForwards": None})


async def test_with_a_suggestion_selected_in_the_list_the_completion_goes_on_from_it(session: Session, reference):
    """VS Code shows an inline completion while its suggestion list is open only when the item extends the selected
    suggestion: the fill is made as if that suggestion were typed, and the item replaces the typed word with both."""
    session.configure(SHORT)
    text = "import os\n\n\ndef here():\n    return os.pa\n"
    uri = session.open(text)
    word = types.Range(types.Position(4, 14), types.Position(4, 16))  # "pa", the word typed so far
    params = types.InlineCompletionParams(
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked,
                                              selected_completion_info=types.SelectedCompletionInfo(word, "path")),
        text_document=types.TextDocumentIdentifier(uri), position=types.Position(4, 16))
    fut, _ = session.request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, "selected")
    result = await fut
    chosen = text.replace("os.pa\n", "os.path\n")
    rest = reference(chosen, chosen.index("os.path") + len("os.path"), SHORT, automatic=False)
    assert rest, "the model writes something after `os.path` here"
    [item] = result.items
    assert item.insert_text == "path" + rest and item.insert_text.startswith("path")
    assert (item.range.start.line, item.range.start.character) == (4, 14)
    assert session.notes("selected")[-1]["done"]


async def test_an_answer_that_ends_like_the_rest_of_the_line_is_inserted_and_never_replaces_it(session: Session,
                                                                                              reference):
    """The guard judges the answer inserted at the cursor, so that is the edit returned. The server used to replace
    the rest of the line by an answer ending with it: a trial's `oup(1)` typed before an auto-closed `)` then ate that
    `)`, and accepting left `re.sub(` unclosed."""
    session.configure(SHORT)
    text = "import os\n\n\ndef parent(path):\n    return os.path.dirname(os.path.ab)\n"
    uri = session.open(text)
    at = text.index("os.path.ab") + len("os.path.ab")
    expected = reference(text, at, SHORT, automatic=False)
    assert expected.endswith(")"), expected  # the case: an answer ending as the rest of the line, `)`, does
    fut, _ = session.inline(uri, 4, at - text.index("    return"), msg_id="rest", invoked=True)
    result = await fut
    (item,) = result.items
    cursor = types.Position(4, at - text.index("    return"))
    assert item.range == types.Range(cursor, cursor) and item.insert_text == expected
    accepted = text[:at] + item.insert_text + text[at:]
    ast.parse(accepted)  # balanced: the `)` the answer ends with closes `abspath(`, the line's own closes `dirname(`
