"""shutdown / exit as the LSP spec says, each on its own server process: after `shutdown` every request is answered
with InvalidRequest; `exit` ends the process with code 0 after a shutdown and 1 without one, even while the engine
thread is in the middle of a long canvas; closing stdin ends it too; nothing is left behind (the process and any
child it started are gone).

The long canvas needs a model that never chooses to end: the shipped model finishes a fill in a few forwards, so these
tests load a randomly initialised model of the same architecture, saved as shipped models are, through `modelPath`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.soak import INVALID_REQUEST, REQUEST_CANCELLED, SMALL, children
from tests.reliability.harness import TIMEOUT, Server, random_model

# a canvas that keeps the engine thread busy for a long while (thousands of forwards, until it is stopped); the random
# model is unsure of every token, and minConfidence would give an automatic fill up at its first one (typingForwards,
# at its 7th forward)
LONG = {"maxTokens": 4000, "blockSize": 4, "steps": 4, "threads": 1, "minConfidence": 0, "typingForwards": 0}
BODY = "def f(x):\n    \n"


@pytest.fixture(scope="module")
def long_options(tmp_path_factory) -> dict:
    """Settings for a fill that goes on: a random model (it never predicts the end) with room for 4000 tokens."""
    d = random_model(tmp_path_factory.mktemp("random_model"))
    return {"diffusion": {**LONG, "modelPath": str(d)}}


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _start_long_job(srv: Server, uri: str = "file:///shutdown/a.py"):
    """Open a document and start a long fill; returns its call once the first canvas was streamed."""
    srv.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                         "text": BODY}})

    async def go():
        call = srv.wire.request("textDocument/inlineCompletion", {
            "textDocument": {"uri": uri}, "context": {"triggerKind": 2}, "position": {"line": 1, "character": 4}})
        await srv.wire.until(lambda: any(p.get("id") == call.id for _, p in srv.wire.notes("diffusion/canvas")),
                             TIMEOUT)
        return call

    return srv.run(go())


def _exit_code(srv: Server) -> int:
    async def go():
        srv.wire.notify("exit")
        return await srv.wire.proc.wait()

    return srv.run(go(), 60)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="children are found through /proc")
def test_shutdown_answers_later_requests_with_invalid_request_and_exit_is_0(loop, long_options):
    srv = Server(loop, long_options).start()
    pid = srv.wire.pid
    job = _start_long_job(srv)
    kids = children(pid)

    assert job.answered is None  # still denoising
    got = srv.call("shutdown")
    assert got == {"jsonrpc": "2.0", "id": got["id"], "result": None}
    answer = srv.run(srv.wire.wait(job, TIMEOUT))  # the in-flight fill is stopped, not left hanging
    assert answer["error"]["code"] in (REQUEST_CANCELLED, -32801), answer
    for method, params in (("diffusion/status", {}), ("textDocument/inlineCompletion", {
            "textDocument": {"uri": "file:///shutdown/a.py"}, "position": {"line": 1, "character": 4},
            "context": {"triggerKind": 2}}), ("shutdown", None), ("diffusion/frobnicate", {})):
        got = srv.call(method, params, 60)
        assert got["error"]["code"] == INVALID_REQUEST and "shutdown" in got["error"]["message"], (method, got)
    srv.notify("textDocument/didChange", {"textDocument": {"uri": "file:///shutdown/a.py", "version": 2},
                                          "contentChanges": [{"text": "x"}]})  # a notification: ignored

    assert _exit_code(srv) == 0
    assert _gone(pid) and all(_gone(k) for k in kids)


def test_exit_without_shutdown_is_1_even_mid_canvas(loop, long_options):
    srv = Server(loop, long_options).start()
    pid = srv.wire.pid
    job = _start_long_job(srv)
    kids = children(pid)
    assert _exit_code(srv) == 1
    assert job.answered is None  # it was still denoising when the process ended
    assert _gone(pid) and all(_gone(k) for k in kids)


def test_closing_stdin_ends_the_server(loop):
    srv = Server(loop).start(initialize=False)
    pid = srv.wire.pid
    got = srv.call("initialize", {"processId": None, "rootUri": None, "capabilities": {},
                                  "initializationOptions": {"diffusion": SMALL}})
    assert got["result"]["serverInfo"]["name"] == "diffusion-ls"  # (no `initialized`: the model need not load)

    async def go():
        srv.wire.proc.stdin.close()
        return await srv.wire.proc.wait()

    assert srv.run(go(), 60) == 1  # no shutdown first: as an exit without shutdown
    assert _gone(pid)


def test_an_editor_that_quits_with_answers_in_flight_leaves_no_error(long_options, tmp_path):
    """`:qa!` mid-fill: the editor closes its end of the pipe while canvases and answers are still being written. They
    are dropped with one line in the log, not four tracebacks, and closing stdin then ends the server."""
    import json
    import subprocess
    import threading
    import time

    from server.soak import ROOT, SERVER, server_env

    def frame(obj: dict) -> bytes:
        body = json.dumps(obj).encode()
        return b"Content-Length: %d\r\n\r\n" % len(body) + body

    log = tmp_path / "server.log"
    proc = subprocess.Popen([*SERVER, "--log-file", str(log), "--log-level", "debug"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=server_env(), cwd=ROOT)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "processId": None, "rootUri": None, "capabilities": {}, "initializationOptions": long_options}}))
    proc.stdin.flush()
    header = proc.stdout.readline()  # the initialize answer: the server is up
    assert header.startswith(b"Content-Length")
    uri = "file:///quit/a.py"
    for msg in ({"method": "initialized", "params": {}},
                {"method": "textDocument/didOpen", "params": {"textDocument": {
                    "uri": uri, "languageId": "python", "version": 1, "text": BODY}}},
                *({"id": i, "method": "textDocument/inlineCompletion", "params": {
                    "textDocument": {"uri": uri}, "context": {"triggerKind": 2},
                    "position": {"line": 1, "character": 4}}} for i in range(2, 5))):
        proc.stdin.write(frame({"jsonrpc": "2.0", **msg}))
    proc.stdin.flush()

    def read_until_a_canvas() -> None:  # then close our end, as an editor that quits does
        seen = b""
        while b"diffusion/canvas" not in seen:
            chunk = proc.stdout.read1(65536)  # type: ignore[union-attr]
            if not chunk:
                break
            seen = seen[-64:] + chunk
        proc.stdout.close()  # type: ignore[union-attr]

    reader = threading.Thread(target=read_until_a_canvas, daemon=True)
    reader.start()
    reader.join(120)
    assert not reader.is_alive(), "no canvas was streamed"
    time.sleep(1.0)  # canvases go on being written to the closed pipe
    proc.stdin.close()
    assert proc.wait(60) == 1  # no shutdown first
    stderr = proc.stderr.read().decode("utf-8", "replace")
    assert "Traceback" not in stderr and "ERROR" not in stderr, stderr[-2000:]
    text = log.read_text()
    assert " ERROR " not in text, text[-3000:]
    assert text.count("the client closed the connection") == 1
