"""Fuzzing the real server over stdio with hypothesis: random documents (Unicode with astral characters and lone
surrogates, CRLF / LF / CR mixes, tabs, NUL bytes, empty files, unknown languages), random didChange streams
(incremental ranges in and out of bounds, full replacements), positions and ranges in and out of bounds, request /
cancel storms over several documents at once, settings changed mid-flight (valid and invalid), params of the wrong
shape; and a 10 MB file.

Each example is a *program*: operations over up to three documents, sent to one server process (shared by the
reliability tests) without waiting for answers, except where the program sleeps or waits for a fill to stream before
cancelling it. A third of the programs run on a randomly initialised model, which never ends a fill, so that edits,
cancels and new requests land mid-stream (the shipped model ends most fills within a few forwards). The client keeps
its own view of each document (text, version, and whether the server can still be in sync with it: a change that
cannot apply puts it out of sync until it is reopened or replaced whole), and after the program checks the ordered log
of everything the server sent:

- liveness: every request is answered within TIMEOUT with a well-formed JSON-RPC response: a result, or an error
  with an expected code; the process is alive after every program. An InternalError response, a fill that failed in
  the engine, or pygls' "Error in server" message is a crash.
- no stale edit: a diffusion/infill or diffusion/rewrite result (and a rewrite command's workspace/applyEdit) carries
  the version the document had when the request was sent; no request is answered with a non-empty result, or streams a
  diffusion/canvas, after the server acknowledged a later change to its document; none for a document the server
  cannot be in sync with. "Acknowledged" is observable: after every notification the client sends a fence
  (diffusion/status, answered at once and in order); a fence's answer arriving before a request's answer means the
  server had applied the change before it answered.
- cancellation: no diffusion/canvas for a request after its answer, nor after the fence following its $/cancelRequest.
- the stream: a request's notifications carry its uri and version, steps count 1, 2, ...; a result is preceded by
  exactly one `done` notification, equal to it; an error by none.
- positions: a result's ranges are valid in the text the request was sent for; an inline item starts at the
  request's position; a rewrite replaces exactly the requested range.

Budget: DIFFUSION_LS_FUZZ_EXAMPLES programs (default 100, derandomized, no shrinking: a bounded CI run); set it (e.g.
2000) for a long random run with shrinking, which also fills in the 10 MB file (tens of seconds of hole finding per
request there). DIFFUSION_LS_FUZZ_REPORT=path writes the figures as JSON.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from infill._syntax import count_errors
from infill.document import Document, PositionError
from infill.languages import language_for
from server.soak import (
    CONTENT_MODIFIED,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    REQUEST_CANCELLED,
    REQUEST_FAILED,
    SERVER_CANCELLED,
    SMALL,
    Call,
    Wire,
)
from tests.reliability.harness import TIMEOUT, Server, count, random_model

LONG = bool(os.environ.get("DIFFUSION_LS_FUZZ_EXAMPLES"))
EXAMPLES = int(os.environ.get("DIFFUSION_LS_FUZZ_EXAMPLES") or 100)
EXPECTED_ERRORS = {INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, REQUEST_CANCELLED, CONTENT_MODIFIED,
                   SERVER_CANCELLED, REQUEST_FAILED}
COMMAND = "workspace/executeCommand"


# -- strategies -------------------------------------------------------------------------------------------------------

FRAGMENTS = [
    "def f(x):\n    ", "    return x\n", "class A:\n    pass\n", "if x:\n", "    ...\n", "# TODO: fill\n",
    "function g(a) {\n  \n}\n", "fn main() {\n    let x = 1;\n}\n", "x = [1, 2,", '"unterminated', "\t", "    ",
    "\r\n", "\r", "\n", "\n\n", "\x00", "é", "中文", "😀", "𝔘𝔫", "\U0010ffff", "\ufeff", "·", "\ud800",
]
texts = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=24).map("".join)
LANGUAGES = ["python", "python", "javascript", "typescript", "rust", "go", "c", "plaintext", "", "klingon"]
EXTENSIONS = [".py", ".js", ".rs", "", ".xyz"]
# (kind, a, b): resolved against the client's view of the text when the operation runs
POS_KINDS = ["in"] * 8 + ["eol", "past", "neg", "huge", "pair"]
positions = st.tuples(st.sampled_from(POS_KINDS), st.integers(0, 1 << 20), st.integers(0, 1 << 20))
ranges = st.tuples(positions, positions)
# edits are mostly in range (a change that cannot apply puts the document out of sync until it is reopened)
EDIT_KINDS = ["in"] * 30 + ["eol"] * 3 + ["past", "neg", "pair"]
edit_ranges = st.tuples(*[st.tuples(st.sampled_from(EDIT_KINDS), st.integers(0, 1 << 20), st.integers(0, 1 << 20))
                          for _ in range(2)])


@dataclass(frozen=True)
class Op:
    kind: str
    doc: int = 0
    args: Any = None


def op(kind: str, doc_st=st.integers(0, 2), args=st.none()):
    return st.builds(Op, st.just(kind), doc_st, args)


SETTINGS = [
    {}, {"strategy": "confidence"}, {"strategy": "eb"}, {"strategy": "margin", "steps": 2},
    {"threshold": 0.3, "maxTokens": 4}, {"blockSize": 4, "maxTokens": 12, "steps": 2},
    # invalid values: each falls back to its default (canvas sizes stay valid: the defaults are large canvases)
    {"steps": 0}, {"device": "gpu"}, {"strategy": 7, "threshold": 2.0}, {"contextBudget": 3, "debounceMs": -1},
    {"languages": ["rust", "go"]}, {"logLevel": "loud", "bogus": True}, {"contextBudget": 64},
]
configs = st.one_of(
    st.sampled_from(range(len(SETTINGS))).map(lambda i: ("push", i)),
    st.sampled_from([("nested", 0), ("pull", 0), ("not-an-object", 0), ("missing-model", 0), ("slow-model", 0)]),
)
BAD = ["inline-no-position", "inline-line-str", "inline-neg", "rewrite-mode", "infill-ranges-str", "status-no-params",
       "command-args", "unknown-method", "no-text-document", "change-neg", "change-no-version"]

operations = st.one_of(
    op("inline", args=positions), op("inline", args=positions), op("inline", args=positions),
    op("infill", args=st.one_of(positions.map(lambda p: ("pos", p)), st.lists(ranges, max_size=3).map(
        lambda r: ("ranges", r)), st.just(("all", None)))),
    op("rewrite", args=st.tuples(ranges, st.sampled_from(["regenerate", "refine"]))),
    op("command", args=ranges), op("action", args=ranges),
    op("change", args=st.lists(st.tuples(st.one_of(st.none(), edit_ranges), texts), min_size=1, max_size=3)),
    op("change", args=st.lists(st.tuples(edit_ranges, st.sampled_from(["x", "", "\n", "😀", "\r\n  "])),
                               min_size=1, max_size=2)),
    op("typing", args=st.tuples(positions, st.text(min_size=1, max_size=6), st.booleans(), st.booleans())),
    op("typing", args=st.tuples(positions, st.text(alphabet="abc (){}:\n\t😀é", min_size=1, max_size=6),
                                st.booleans(), st.booleans())),
    op("cancel", args=st.integers(0, 50)), op("cancel", args=st.integers(0, 50)),
    op("cancel-streaming", args=st.tuples(positions, st.sampled_from([0.0, 0.02, 0.2]))),
    op("sleep", args=st.sampled_from([0.0, 0.005, 0.05, 0.3])),
    op("configure", args=configs), op("close"), op("reopen", args=texts), op("status"),
    op("bad", args=st.sampled_from(BAD)),
)
documents = st.lists(st.tuples(texts, st.sampled_from(LANGUAGES), st.sampled_from(EXTENSIONS),
                               st.integers(0, 1000)), min_size=1, max_size=3)
# a third of the programs start on the model that never ends: its canvases stream for many forwards, so edits, cancels
# and new requests land while a fill is still denoising
programs = st.tuples(documents, st.lists(operations, min_size=1, max_size=30 if LONG else 12),
                     st.sampled_from([False, False, True]))
SLOW: dict[str, str] = {}  # "modelPath": the random model's directory (set by the module fixture)
SLOW_CANVAS = {"maxTokens": 48, "blockSize": 8, "steps": 8}


# -- the client's view ------------------------------------------------------------------------------------------------


def utf16_len(s: str) -> int:
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


@dataclass
class ClientDoc:
    uri: str
    language: str
    version: int = 0
    text: str = ""
    open: bool = False
    synced: bool = True  # False once a change could not apply: the server must refuse fills until reopened

    def model(self) -> Document:
        return Document("untitled:view", self.text, self.version, None)  # no language: positions only, no parse

    def position(self, spec: tuple) -> dict:
        kind, a, b = spec
        m = self.model()
        line = a % m.line_count
        width = utf16_len(m.line_text(line))
        if kind == "in":
            return {"line": line, "character": b % (width + 1)}
        if kind == "eol":
            return {"line": line, "character": width + 1 + b % 5}
        if kind == "past":
            return {"line": m.line_count + a % 3, "character": b % 3}
        if kind == "neg":
            return {"line": -1, "character": 0} if b % 2 else {"line": line, "character": -1 - b % 3}
        if kind == "pair":  # inside an astral character where there is one
            text = m.line_text(line)
            units = 0
            for ch in text:
                if ord(ch) > 0xFFFF:
                    return {"line": line, "character": units + 1}
                units += 2 if ord(ch) > 0xFFFF else 1
            return {"line": line, "character": b % (width + 1)}
        return {"line": (1 << 31) - 1 if b % 2 else 1 << 53, "character": 0}  # huge

    def range(self, spec: tuple) -> dict:
        return {"start": self.position(spec[0]), "end": self.position(spec[1])}

    def apply(self, rng: dict | None, text: str) -> None:
        """Apply a change as the server does (the same Document rules); one that cannot apply desyncs."""
        if rng is None:
            self.text, self.synced = text, True
            return
        m = self.model()
        try:
            m.apply_change(_Range(rng), text)
        except (PositionError, ValueError):
            self.synced = False
            return
        self.text = m.text


class _P:
    def __init__(self, d: dict) -> None:
        self.line, self.character = d["line"], d["character"]


class _Range:
    def __init__(self, d: dict) -> None:
        self.start, self.end = _P(d["start"]), _P(d["end"])


def valid_position(text: str, pos: Any) -> bool:
    """pos is an exact position in text: the line exists, the character is within it, not inside a pair."""
    if not (isinstance(pos, dict) and isinstance(pos.get("line"), int) and isinstance(pos.get("character"), int)):
        return False
    m = Document("untitled:view", text, None, None)
    if not 0 <= pos["line"] < m.line_count or not 0 <= pos["character"] <= utf16_len(m.line_text(pos["line"])):
        return False
    try:
        m.offset_at(_P(pos))
    except PositionError:
        return False
    return True


def normalized(text: str, pos: dict) -> dict | None:
    """Where the server puts pos (a character past the line's end is the end); None if it is refused."""
    m = Document("untitled:view", text, None, None)
    try:
        p = m.position_at(m.offset_at(_P(pos)))
    except (PositionError, TypeError):
        return None
    return {"line": p.line, "character": p.character}


# -- running a program ------------------------------------------------------------------------------------------------


@dataclass
class Sent:
    """A request of the program, with the client's view when it was sent."""

    call: Call
    kind: str
    doc: ClientDoc | None = None
    version: int | None = None
    text: str = ""
    synced: bool = True
    open: bool = True
    expect: dict = field(default_factory=dict)  # normalized positions the result must have


@dataclass
class Run:
    wire: Wire
    docs: list[ClientDoc]
    sent: list[Sent] = field(default_factory=list)
    fences: list[tuple[int, Call]] = field(default_factory=list)  # (send position, fence)
    changes: list[tuple[int, str]] = field(default_factory=list)  # (send position, uri): changes, opens, closes
    cancels: list[tuple[int, Any]] = field(default_factory=list)  # (send position, request id)
    start: int = 0  # log index where this program began

    def fence(self) -> None:
        call = self.wire.request("diffusion/status", {})
        self.fences.append((call.sent, call))

    def request(self, kind: str, method: str, params: Any, doc: ClientDoc | None, **expect: Any) -> None:
        call = self.wire.request(method, params)
        self.sent.append(Sent(call, kind, doc, doc.version if doc else None, doc.text if doc else "",
                              doc.synced if doc else True, doc.open if doc else True, expect))

    def notify(self, method: str, params: Any, uri: str | None = None) -> None:
        seq = self.wire.notify(method, params)
        if uri is not None:
            self.changes.append((seq, uri))
        self.fence()


def _ref(doc: ClientDoc) -> dict:
    return {"uri": doc.uri}


async def execute(wire: Wire, program: tuple, tag: int) -> Run:
    docs_spec, ops, slow = program
    docs = [ClientDoc(f"file:///fuzz/{tag}/doc{i}{ext}", lang) for i, (_, lang, ext, _) in enumerate(docs_spec)]
    run = Run(wire, docs, start=len(wire.log))
    if slow:
        _configure(run, "slow-model", 0)
    for doc, (text, _, _, version) in zip(docs, docs_spec, strict=True):
        _open(run, doc, text, version)
    for o in ops:
        doc = docs[o.doc % len(docs)]
        await _step(run, o, doc)
    await wire.wait_all([s.call for s in run.sent] + [f for _, f in run.fences], TIMEOUT)
    for doc in docs:
        if doc.open:
            doc.open = False
            run.notify("textDocument/didClose", {"textDocument": _ref(doc)}, doc.uri)
    wire.configuration = SMALL
    run.notify("workspace/didChangeConfiguration", {"settings": {"diffusion": {**SMALL, "languages": None,
                                                                               "modelPath": None}}})
    await wire.wait_all([f for _, f in run.fences], TIMEOUT)
    return run


def _open(run: Run, doc: ClientDoc, text: str, version: int) -> None:
    doc.text, doc.version, doc.open, doc.synced = text, version, True, True
    run.notify("textDocument/didOpen", {"textDocument": {"uri": doc.uri, "languageId": doc.language,
                                                         "version": version, "text": text}}, doc.uri)


async def _step(run: Run, o: Op, doc: ClientDoc) -> None:
    w = run.wire
    if o.kind == "inline":
        pos = doc.position(o.args)
        run.request("inline", "textDocument/inlineCompletion", {
            "textDocument": _ref(doc), "position": pos, "context": {"triggerKind": 2}}, doc,
            position=normalized(doc.text, pos))
    elif o.kind == "infill":
        what, arg = o.args
        params: dict = {"textDocument": _ref(doc)}
        if what == "pos":
            params["position"] = doc.position(arg)
        elif what == "ranges":
            params["ranges"] = [doc.range(r) for r in arg]
        run.request("infill", "diffusion/infill", params, doc)
    elif o.kind == "rewrite":
        rng = doc.range(o.args[0])
        run.request("rewrite", "diffusion/rewrite", {"textDocument": _ref(doc), "range": rng, "mode": o.args[1]},
                    doc, start=normalized(doc.text, rng["start"]), end=normalized(doc.text, rng["end"]))
    elif o.kind == "command":
        rng = doc.range(o.args)
        run.request("command", COMMAND, {"command": "diffusion.rewrite", "arguments": [
            {"textDocument": _ref(doc), "range": rng}]}, doc,
            start=normalized(doc.text, rng["start"]), end=normalized(doc.text, rng["end"]))
    elif o.kind == "action":
        run.request("action", "textDocument/codeAction", {"textDocument": _ref(doc), "range": doc.range(o.args),
                                                          "context": {"diagnostics": []}}, doc)
    elif o.kind == "change":
        if doc.open:
            doc.version += 1
        changes = []
        for rspec, text in o.args:
            rng = None if rspec is None else doc.range(rspec)
            changes.append({"text": text} if rng is None else {"range": rng, "text": text})
            if doc.open:
                doc.apply(rng, text)
        run.notify("textDocument/didChange", {"textDocument": {"uri": doc.uri, "version": doc.version},
                                              "contentChanges": changes}, doc.uri)
    elif o.kind == "typing":  # an editor: a keystroke, a request at the new cursor, maybe cancel the previous one;
        spec, keys, cancel, trailing = o.args  # maybe a last keystroke before the debounce fires (no request)
        pos = doc.position(spec)
        if not doc.open or normalized(doc.text, pos) is None:
            return
        prev = None
        for k, ch in enumerate(keys):
            pos = normalized(doc.text, pos)
            doc.version += 1
            doc.apply({"start": pos, "end": pos}, ch)
            run.notify("textDocument/didChange", {"textDocument": {"uri": doc.uri, "version": doc.version},
                                                  "contentChanges": [{"range": {"start": pos, "end": pos},
                                                                      "text": ch}]}, doc.uri)
            m = doc.model()
            after = m.position_at(m.offset_at(_P(pos)) + len(ch))
            pos = {"line": after.line, "character": after.character}
            if trailing and k == len(keys) - 1 and len(keys) > 1:
                break
            if cancel and prev is not None:
                run.cancels.append((run.wire.cancel(prev.call.id), prev.call.id))
            run.request("inline", "textDocument/inlineCompletion", {
                "textDocument": _ref(doc), "position": pos, "context": {"triggerKind": 2}}, doc,
                position=normalized(doc.text, pos))
            prev = run.sent[-1]
    elif o.kind == "cancel-streaming":  # cancel a fill once it streams, then listen for what still comes
        spec, linger = o.args
        since = len(w.log)
        run.request("inline", "textDocument/inlineCompletion", {
            "textDocument": _ref(doc), "position": doc.position(spec), "context": {"triggerKind": 2}}, doc,
            position=normalized(doc.text, doc.position(spec)))
        call = run.sent[-1].call
        await w.until(lambda: call.future.done() or any(p.get("id") == call.id for _, p in w.notes(
            "diffusion/canvas", since)), TIMEOUT)
        run.cancels.append((w.cancel(call.id), call.id))
        run.fence()
        await asyncio.sleep(linger)
    elif o.kind == "cancel":
        fills = [s for s in run.sent if s.kind != "bad"]
        rid = fills[o.args % len(fills)].call.id if fills else f"no-such-request-{o.args}"
        seq = w.cancel(rid)
        run.cancels.append((seq, rid))
        run.fence()
    elif o.kind == "sleep":
        await asyncio.sleep(o.args)
    elif o.kind == "configure":
        _configure(run, *o.args)
    elif o.kind == "close":
        if doc.open:
            doc.open = False
            run.notify("textDocument/didClose", {"textDocument": _ref(doc)}, doc.uri)
    elif o.kind == "reopen":
        if doc.open:
            run.notify("textDocument/didClose", {"textDocument": _ref(doc)}, doc.uri)
        _open(run, doc, o.args, doc.version + 1)
    elif o.kind == "status":
        run.fence()
    elif o.kind == "bad":
        _bad(run, o.args, doc)


def _configure(run: Run, how: str, i: int) -> None:
    base = {**SMALL, "languages": None, "modelPath": None}
    if how == "push":
        settings_ = {**base, **SETTINGS[i]}
    elif how == "nested":
        settings_ = {"diffusion": base}
    elif how == "missing-model":  # loading fails: fills fail with a message until a later change restores it
        settings_ = {**base, "modelPath": "no-such-model-directory"}
    elif how == "slow-model":  # a model that never ends a fill: long streams
        settings_ = {**base, **SLOW_CANVAS, **SLOW}
    elif how == "not-an-object":  # every setting falls back to its default: restore the small canvas at once
        run.notify("workspace/didChangeConfiguration", {"settings": ["not", "an", "object"]})
        settings_ = base
    else:  # an empty push: the server pulls the section with workspace/configuration
        run.wire.configuration = base
        settings_ = None
    run.notify("workspace/didChangeConfiguration", {"settings": settings_})


def _bad(run: Run, what: str, doc: ClientDoc) -> None:
    """Params of the wrong shape: requests must be answered (with an error), notifications must not hurt."""
    ref = _ref(doc)
    inline = {"textDocument": ref, "context": {"triggerKind": 2}}
    requests = {
        "inline-no-position": ("textDocument/inlineCompletion", inline),
        "inline-line-str": ("textDocument/inlineCompletion", {**inline, "position": {"line": "1", "character": 0}}),
        "inline-neg": ("textDocument/inlineCompletion", {**inline, "position": {"line": -5, "character": -1}}),
        "rewrite-mode": ("diffusion/rewrite", {"textDocument": ref, "mode": "shout", "range": doc.range(
            (("in", 0, 0), ("in", 0, 3)))}),
        "infill-ranges-str": ("diffusion/infill", {"textDocument": ref, "ranges": "all of them"}),
        "status-no-params": ("diffusion/status", None),
        "command-args": (COMMAND, {"command": "diffusion.rewrite", "arguments": [1, 2]}),
        "unknown-method": ("diffusion/frobnicate", {"x": 1}),
        "no-text-document": ("diffusion/infill", {"position": {"line": 0, "character": 0}}),
    }
    if what in requests:
        method, params = requests[what]
        run.request("bad", method, params, None)
    elif what == "change-neg":  # a change the server cannot read: the document is out of sync from here
        if doc.open:
            doc.version += 1
            doc.synced = False
        run.notify("textDocument/didChange", {"textDocument": {"uri": doc.uri, "version": doc.version},
                                              "contentChanges": [{"range": {"start": {"line": -1, "character": 0},
                                                                            "end": {"line": 0, "character": 0}},
                                                                  "text": "x"}]}, doc.uri)
    else:  # change-no-version: also unreadable
        if doc.open:
            doc.synced = False
        run.notify("textDocument/didChange", {"textDocument": {"uri": doc.uri}, "contentChanges": [{"text": "x"}]},
                   doc.uri)


# -- the checks -------------------------------------------------------------------------------------------------------


@dataclass
class Verdict:
    requests: int = 0
    fences: int = 0
    results: int = 0
    errors: int = 0
    crashes: int = 0
    stale_edits: int = 0
    harmful_edits: int = 0  # an edit that adds parse errors or deletes a selection / placeholder without replacement
    stale_notes: int = 0
    notes_after_cancel: int = 0
    hangs: int = 0
    canvas_notes: int = 0
    codes: dict = field(default_factory=dict)  # error code -> how many
    problems: list[str] = field(default_factory=list)

    def fail(self, counter: str, msg: str) -> None:
        setattr(self, counter, getattr(self, counter) + 1)
        self.problems.append(msg)


def well_formed(call: Call) -> str | None:
    r = call.response
    if r is None:
        return "no response"
    if r.get("jsonrpc") != "2.0" or r.get("id") != call.id or ("result" in r) == ("error" in r):
        return f"malformed response {r!r:.300}"
    e = r.get("error")
    if e is not None and not (isinstance(e.get("code"), int) and isinstance(e.get("message"), str)):
        return f"malformed error {e!r:.300}"
    return None


def non_empty(s: Sent) -> bool:
    res = s.call.result
    if s.kind == "inline":
        return bool(res and res.get("items"))
    if s.kind == "infill":
        return bool(res and res.get("edits"))
    return s.kind in ("rewrite", "command") and res is not None


def check(run: Run, v: Verdict) -> None:
    by_id = {s.call.id: s for s in run.sent}
    fence_acks = sorted((seq, f.answered) for seq, f in run.fences if f.answered is not None)
    v.fences += len(run.fences)

    def ack_after(seq: int) -> int | None:
        """Log index of the first fence answer for a fence sent after message `seq`."""
        got = [a for s, a in fence_acks if s > seq]
        return min(got) if got else None

    for seq, f in run.fences:
        if f.answered is None:
            v.fail("hangs", f"fence sent at {seq} unanswered")
        elif well_formed(f) or f.error:
            v.fail("crashes", f"fence answered badly: {f.response!r:.300}")

    notes = [(i, p) for i, p in run.wire.notes("diffusion/canvas", run.start)]
    v.canvas_notes += len(notes)
    for _, p in notes:
        if p.get("id") not in by_id:
            v.fail("stale_notes", f"canvas for a request not of this program: {p!r:.200}")
    for _, p in run.wire.notes("window/showMessage", run.start):
        if p.get("type") == 1 and "Error in server" in p.get("message", ""):
            v.fail("crashes", f"pygls reported an error: {p['message']}")
    for _, p in run.wire.notes("window/logMessage", run.start):
        msg = p.get("message", "")
        if p.get("type") == 1 and any(msg.startswith(f"{k} for ") and " failed: " in msg
                                      for k in ("inline", "infill", "rewrite")):
            v.fail("crashes", f"the engine failed: {msg[:500]}")

    for s in run.sent:
        v.requests += 1
        c = s.call
        if c.answered is None:
            v.fail("hangs", f"{c.method} id {c.id} unanswered")
            continue
        bad = well_formed(c)
        if bad:
            v.fail("crashes", f"{c.method}: {bad}")
            continue
        if c.error:
            v.errors += 1
            v.codes[str(c.error["code"])] = v.codes.get(str(c.error["code"]), 0) + 1
            if c.error["code"] == INTERNAL_ERROR or c.error["code"] not in EXPECTED_ERRORS:
                v.fail("crashes", f"{c.method} {c.params!r:.300} -> {c.error!r:.600}")
        else:
            v.results += 1
        mine = [(i, p) for i, p in notes if p.get("id") == c.id]
        _check_request(run, s, mine, ack_after, v)

    for i, edit in run.wire.edits:  # workspace/applyEdit from rewrite commands
        if i < run.start:
            continue
        for dc in edit.get("edit", {}).get("documentChanges") or []:
            uri, version = dc["textDocument"]["uri"], dc["textDocument"].get("version")
            owners = [s for s in run.sent if s.kind == "command" and s.doc and s.doc.uri == uri
                      and s.call.answered is not None and s.call.answered > i]
            if not owners:
                v.fail("stale_edits", f"applyEdit for {uri} that no pending rewrite command asked for")
                continue
            owner = min(owners, key=lambda s: s.call.answered)
            if version != owner.version:
                v.fail("stale_edits", f"applyEdit for {uri} at version {version}, sent at {owner.version}")
            ack = _change_ack(run, owner, ack_after)
            if ack is not None and ack < i:
                v.fail("stale_edits", f"applyEdit for {uri} after a change to it was acknowledged")


def _change_ack(run: Run, s: Sent, ack_after) -> int | None:
    """Log index where the server had acknowledged the first change to s's document sent after s."""
    if s.doc is None:
        return None
    later = [seq for seq, uri in run.changes if uri == s.doc.uri and seq > s.call.sent]
    acks = [a for a in (ack_after(seq) for seq in later) if a is not None]
    return min(acks) if acks else None


def _check_request(run: Run, s: Sent, mine: list, ack_after, v: Verdict) -> None:
    c = s.call
    ack = _change_ack(run, s, ack_after)
    res = c.result
    if c.error is None and non_empty(s):
        if ack is not None and ack < c.answered:
            v.fail("stale_edits", f"{c.method} id {c.id} answered with a result after a change was acknowledged")
        if not s.synced or not s.open:
            v.fail("stale_edits", f"{c.method} id {c.id} has a result for a document the server cannot be in sync "
                                  f"with (synced={s.synced}, open={s.open}): {res!r:.300}")
    if s.kind in ("infill", "rewrite", "command") and isinstance(res, dict) and "version" in res:
        if res["version"] != s.version:
            v.fail("stale_edits", f"{c.method} id {c.id} result for version {res['version']}, sent at {s.version}")
    if c.error is None and s.kind in ("inline", "infill", "rewrite", "command"):
        _check_positions(s, v)

    # the stream
    for i, p in mine:
        if i > c.answered:
            v.fail("stale_notes", f"canvas for id {c.id} after its answer")
        if ack is not None and i > ack:
            v.fail("stale_notes", f"canvas for id {c.id} after a change to its document was acknowledged")
        cancelled = [seq for seq, rid in run.cancels if rid == c.id]
        cack = [a for a in (ack_after(seq) for seq in cancelled) if a is not None]
        if cack and i > min(cack):
            v.fail("notes_after_cancel", f"canvas for id {c.id} after its cancel was acknowledged")
        if s.doc is not None and (p.get("uri") != s.doc.uri or p.get("version") != s.version):
            v.fail("stale_notes", f"canvas for id {c.id} names {p.get('uri')} v{p.get('version')}, sent for "
                                  f"{s.doc.uri} v{s.version}")
    steps = [p.get("step") for _, p in mine]
    if steps != list(range(1, len(steps) + 1)):
        v.fail("stale_notes", f"canvas steps for id {c.id}: {steps}")
    done = [p for _, p in mine if p.get("done")]
    if c.error is not None and done:
        v.fail("stale_notes", f"id {c.id} failed ({c.error.get('code')}) after a done canvas")
    if c.error is None and s.kind in ("inline", "infill", "rewrite", "command"):
        if not mine and not non_empty(s):
            pass  # nothing was filled (completion is off for the language): no stream, an empty result
        elif len(done) != 1 or not mine[-1][1].get("done"):
            v.fail("stale_notes", f"id {c.id}: {len(done)} done canvas notes for a result")
        else:
            expected = _result_text(s)
            if expected is not None and done[0].get("text") != expected:
                v.fail("stale_notes", f"id {c.id}: done canvas {done[0].get('text')!r} != result {expected!r}")


def _result_text(s: Sent) -> str | None:
    res = s.call.result or {}
    if s.kind == "inline":
        items = res.get("items") or []
        return items[0]["insertText"] if items else ""
    if s.kind in ("rewrite", "command"):  # refused: the last canvas is the selection as it is
        return res["edit"]["newText"] if res.get("edit") else None
    edits = res.get("edits") or []
    return edits[0]["newText"] if len(edits) == 1 else None


def _check_positions(s: Sent, v: Verdict) -> None:
    res, c = s.call.result, s.call
    text = s.text
    if s.kind == "inline":
        if not isinstance(res, dict) or not isinstance(res.get("items"), list):
            v.fail("crashes", f"inline result is not a list: {res!r:.200}")
            return
        for item in res["items"]:
            rng = item.get("range") or {}
            if not isinstance(item.get("insertText"), str) or not item["insertText"]:
                v.fail("crashes", f"inline item without text: {item!r:.200}")
            if not (valid_position(text, rng.get("start")) and valid_position(text, rng.get("end"))):
                v.fail("stale_edits", f"inline id {c.id} range {rng} is not in the text it was asked for")
            elif rng["start"] != s.expect.get("position") or rng["end"]["line"] != rng["start"]["line"]:
                v.fail("stale_edits", f"inline id {c.id} range {rng} is not at the cursor {s.expect.get('position')}")
            else:
                _check_harm(s, [{"range": rng, "newText": item["insertText"]}], v)
    elif s.kind in ("rewrite", "command"):
        if (res or {}).get("edit") is None:
            if not (res or {}).get("reason"):
                v.fail("crashes", f"{c.method} id {c.id}: no edit and no reason: {res!r:.200}")
            return
        edit = (res or {}).get("edit") or {}
        _check_harm(s, [edit], v)
        rng = edit.get("range") or {}
        if rng.get("start") != s.expect.get("start") or rng.get("end") != s.expect.get("end"):
            v.fail("stale_edits", f"{c.method} id {c.id} replaces {rng}, asked {s.expect}")
        if not isinstance(edit.get("newText"), str):
            v.fail("crashes", f"rewrite without text: {res!r:.200}")
    elif s.kind == "infill":
        edits = (res or {}).get("edits")
        if not isinstance(edits, list) or not isinstance(res.get("version"), int):
            v.fail("crashes", f"infill result malformed: {res!r:.200}")
            return
        last = None
        for e in edits:
            rng = e.get("range") or {}
            if not (valid_position(text, rng.get("start")) and valid_position(text, rng.get("end"))):
                v.fail("stale_edits", f"infill id {c.id} edit {rng} is not in the text it was asked for")
                return
            key = (rng["start"]["line"], rng["start"]["character"])
            if last is not None and key < last:
                v.fail("stale_edits", f"infill id {c.id} edits overlap or are unsorted: {edits!r:.300}")
            last = (rng["end"]["line"], rng["end"]["character"])
        _check_harm(s, edits, v)


def _check_harm(s: Sent, edits: list[dict], v: Verdict) -> None:
    """The edit guard's promise, checked on the text the request was made for: no returned edit deletes a non-empty
    range without replacement, and the edits applied add no parse errors."""
    if s.doc is None or not s.synced:
        return
    view = Document("untitled:view", s.text, None, None)
    try:
        spans = sorted((*view.range_offsets(_Range(e["range"])), e["newText"]) for e in edits)
    except (PositionError, KeyError, TypeError):
        return  # reported as a stale edit
    for a, b, new in spans:
        if a < b and not new.strip():
            v.fail("harmful_edits", f"id {s.call.id} replaces {s.text[a:b]!r:.80} with nothing")
    after, pos = [], 0
    for a, b, new in spans:
        after += [s.text[pos:a], new]
        pos = b
    after.append(s.text[pos:])
    lang = language_for(s.doc.language)
    if count_errors("".join(after), lang) > count_errors(s.text, lang):
        v.fail("harmful_edits", f"id {s.call.id}: the edits {spans!r:.200} add parse errors")


# -- the tests --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(shared_server: Server, tmp_path_factory):
    SLOW["modelPath"] = str(random_model(tmp_path_factory.mktemp("random_model")))
    return shared_server


TOTAL = Verdict()


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not LONG,
          database=settings().database if LONG else None,
          phases=tuple(Phase) if LONG else (Phase.explicit, Phase.generate),
          suppress_health_check=list(HealthCheck))
@given(program=programs)
def test_fuzz_programs(server: Server, program):
    """Random programs: the server stays up, answers everything, never returns a stale edit."""
    tag = TOTAL.requests + TOTAL.fences + 1
    run = server.run(execute(server.wire, program, tag), TIMEOUT * 2)
    v = Verdict()
    check(run, v)
    if not server.wire.alive:
        v.fail("crashes", "the server died: " + "\n".join(list(server.wire.stderr_tail)[-30:]))
    for k in ("requests", "fences", "results", "errors", "crashes", "stale_edits", "harmful_edits", "stale_notes",
              "notes_after_cancel", "hangs", "canvas_notes"):
        setattr(TOTAL, k, getattr(TOTAL, k) + getattr(v, k))
    count("fuzz", programs=1, requests=v.requests, fences=v.fences, results=v.results, errors=v.errors,
          canvas_notes=v.canvas_notes, crashes=v.crashes, hangs=v.hangs, stale_edits=v.stale_edits,
          harmful_edits=v.harmful_edits,
          stale_notes=v.stale_notes, notes_after_cancel=v.notes_after_cancel)
    count("fuzz errors by code", **v.codes)
    assert not v.problems, "\n".join(v.problems[:20])


def test_fuzz_counted_something():
    """The fuzz run above really exercised the server (and its figures are in the summary)."""
    assert TOTAL.requests > EXAMPLES and TOTAL.results > 0 and TOTAL.canvas_notes > 0, TOTAL
    assert TOTAL.crashes == TOTAL.stale_edits == TOTAL.harmful_edits == TOTAL.hangs == 0, TOTAL


def test_garbage_on_the_wire_is_survived(server: Server):
    """Bodies that are not JSON, not objects, or not JSON-RPC: nothing to answer, but the next request is answered."""
    w = server.wire

    async def go() -> None:
        for body in (b"{not json", b"[1, 2, 3]", b'"a string"', b"null", b'{"id": 5}', b'{"jsonrpc": "2.0"}',
                     b'{"jsonrpc": "1.0", "id": 99, "method": "diffusion/status"}', "\u00e9\x00".encode(),
                     b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "diffusion/status", "params": {}}'):
            w.send_body(body)
        got = await w.call("diffusion/status", {}, TIMEOUT)
        assert got["result"]["serverVersion"]

    server.run(go())
    assert w.alive


def test_request_with_bad_params_is_answered_with_invalid_params(server: Server):
    """pygls drops a request whose params do not fit their type; the client would wait forever."""
    w = server.wire
    uri = "file:///fuzz/bad-params.py"
    server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                            "text": "x = 1\n"}})
    got = server.call("textDocument/inlineCompletion", {"textDocument": {"uri": uri}, "context": {"triggerKind": 2},
                                                        "position": {"line": -1, "character": 0}})
    assert got["error"]["code"] == INVALID_PARAMS and "textDocument/inlineCompletion" in got["error"]["message"]
    got = server.call("textDocument/inlineCompletion", {"textDocument": {"uri": uri}, "context": {"triggerKind": 2},
                                                        "position": {"line": "one", "character": 0}})
    assert got["error"]["code"] == INVALID_PARAMS and "position" in got["error"]["message"]
    assert "result" in server.call("diffusion/status")  # params left out: null params
    server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert w.alive


def test_a_change_that_cannot_apply_stops_fills_until_reopened(server: Server):
    """An out-of-range change leaves the server's text unlike the editor's: fills are refused, with what to do."""
    uri = "file:///fuzz/desync.py"
    text = "def f(x):\n    return x\n"
    server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                            "text": text}})
    server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
        {"range": {"start": {"line": 9, "character": 0}, "end": {"line": 9, "character": 0}}, "text": "y = 2\n"}]})
    ask = {"textDocument": {"uri": uri}, "position": {"line": 1, "character": 4}, "context": {"triggerKind": 2}}
    got = server.call("textDocument/inlineCompletion", ask)
    assert got["error"]["code"] == REQUEST_FAILED
    assert "out of sync" in got["error"]["message"] and "reopen" in got["error"]["message"]
    server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 3},
                                             "contentChanges": [{"text": text}]})  # the whole text: in sync again
    got = server.call("textDocument/inlineCompletion", ask)
    assert "result" in got, got
    for item in got["result"]["items"]:
        assert item["range"]["start"] == {"line": 1, "character": 4}
    server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})


def _big_text(size: int) -> str:
    chunk = "def helper_{i}(x, y):\n    '''Add things.'''\n    total = x + y * {i}\r\n    return total\n\n\n"
    parts, n, i = [], 0, 0
    while n < size:
        parts.append(chunk.format(i=i) if i % 97 else chunk.format(i=i).replace("things", "thïngs 😀\t"))
        n += len(parts[-1])
        i += 1
    return "".join(parts)


def test_a_10_mb_file(server: Server):
    """A 10 MB file: opened, edited at its start, middle and end, rewritten near its end, asked out of range; the
    server answers everything, at the right positions and versions. (With DIFFUSION_LS_FUZZ_EXAMPLES set, also an
    inline completion in the middle: tens of seconds of hole finding over the whole file.)"""
    text = _big_text(10_000_000)
    uri = "file:///fuzz/big.py"
    server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                            "text": text}})
    m = Document("untitled:view", text, 1, None)  # the client's view, changed as the server changes its own
    lines = m.line_count
    version = 1
    for line in (0, lines // 2, lines - 1):
        version += 1
        pos = {"line": line, "character": 0}
        rng = {"start": pos, "end": pos}
        server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                                 "contentChanges": [{"range": rng, "text": "# edited\n"}]})
        m.apply_change(_Range(rng), "# edited\n")
    got = server.call("textDocument/inlineCompletion", {"textDocument": {"uri": uri}, "context": {"triggerKind": 2},
                                                        "position": {"line": lines + 5, "character": 0}})
    assert got["error"]["code"] == INVALID_PARAMS
    last = m.position_at(m.text.rindex("    return total")).line
    rng = {"start": {"line": last, "character": 4}, "end": {"line": last, "character": 16}}  # "return total"
    got = server.call("diffusion/rewrite", {"textDocument": {"uri": uri}, "range": rng})
    res = got["result"]  # an edit of exactly the range, or none and the guard's reason
    assert res["version"] == version and (res["edit"]["range"] == rng if res["edit"] else res["reason"]), got
    if LONG:
        after = m.position_at(m.text.index("    total = ", len(m.text) // 2) + 4)
        mid = {"line": after.line, "character": after.character}
        got = server.call("textDocument/inlineCompletion", {"textDocument": {"uri": uri}, "position": mid,
                                                            "context": {"triggerKind": 2}})
        for item in got["result"]["items"]:
            assert item["range"]["start"] == mid
    server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert server.status()["loaded"] and server.wire.alive
    count("fuzz", big_file_mb=round(len(text) / 1e6, 1))
