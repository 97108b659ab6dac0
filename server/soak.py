"""`python -m server.soak`: type into a few documents through the real server over stdio for a bounded number of
requests; report memory, latency drift and the engine's context-cache bounds.

    python -m server.soak --requests 10000 [--json] [--documents 4] [--churn 50] [--seed 0]
    diffusion-ls soak --requests 10000 --json                   # the same

What it does, per request: one keystroke (an incremental didChange) in one of `--documents` files, then
textDocument/inlineCompletion at the new cursor. Now and then it types on before the answer came (and cancels the old
request, as an editor does), asks for a rewrite or an infill instead, or opens a fresh document, fills in it and later
closes it (`--churn`), so the engine sees far more documents than its per-document context caches (LRU) hold.

What it reports: the server's RSS after the warm-up (the first tenth of the requests) and at the end, and their ratio
(goal <= 1.2), RSS every 500 requests (a leak climbs steadily; an allocator grows in steps) and split by kind of
mapping (brk heap, anonymous, files); p95 latency of the first and the last tenth of the measured requests and their
ratio (drift); the largest `cacheSessions` / `cacheBytes` `diffusion/status` showed against the backend's limit;
errors by code; whether the server died. Latencies are wall-clock on a possibly busy machine: the load average is
reported next to them.

The JSON-RPC client here (`Wire`) is also what tests/reliability drives the server with: it can send anything,
including bytes that are not JSON, and records every message the server sends in arrival order.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SERVER = [sys.executable, "-m", "server.cli", "serve"]
# Small canvases: the shipped model is a small one in training; a soak measures the server, not the model.
SMALL = {"maxTokens": 16, "blockSize": 16, "steps": 8, "threads": 1}

# JSON-RPC / LSP error codes a well-behaved server answers with
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603
SERVER_NOT_INITIALIZED = -32002
REQUEST_CANCELLED, CONTENT_MODIFIED, SERVER_CANCELLED, REQUEST_FAILED = -32800, -32801, -32802, -32803


class ServerDied(ConnectionError):
    """The server closed its stdout (exited or crashed) before answering."""


@dataclass(eq=False)
class Call:
    """One request: what was sent, and (once answered) the raw response and where it sits in the arrival log."""

    id: int | str
    method: str
    params: Any
    sent: int  # position in the send order of every message this client wrote
    t_sent: float
    future: asyncio.Future = field(repr=False)
    answered: int | None = None  # index of the response in Wire.log
    t_answered: float | None = None

    @property
    def response(self) -> dict | None:
        return self.future.result() if self.future.done() and not self.future.exception() else None

    @property
    def result(self) -> Any:
        r = self.response
        return None if r is None else r.get("result")

    @property
    def error(self) -> dict | None:
        r = self.response
        return None if r is None else r.get("error")

    @property
    def latency_ms(self) -> float | None:
        return None if self.t_answered is None else (self.t_answered - self.t_sent) * 1e3


class Wire:
    """JSON-RPC 2.0 over a language server's stdio: requests, notifications, raw bytes, and a log of every message the
    server sends, in arrival order. Responses are never raised: a Call's future holds the response dict, whatever it
    says. Requests from the server are answered: workspace/configuration with `configuration`, workspace/applyEdit with
    `apply_edits` (recorded in `edits`), anything else with null."""

    def __init__(self, cmd: list[str] | None = None, env: dict | None = None, cwd: str | Path | None = None) -> None:
        self.cmd = cmd or SERVER
        self.env = env if env is not None else server_env()
        self.cwd = str(cwd or ROOT)
        self.proc: asyncio.subprocess.Process | None = None
        self.log: list[dict] = []  # every message from the server, in arrival order
        self.sent = 0  # messages written so far (Call.sent is a position in this order)
        self.calls: dict[int | str, Call] = {}
        self.edits: list[tuple[int, dict]] = []  # (log index, workspace/applyEdit params)
        self.configuration: dict | None = None
        self.apply_edits = False
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=200)
        self.eof = False
        self.keep_canvas = True  # False: diffusion/canvas notifications are only counted (long runs)
        self.canvas_seen = 0
        self._ids = itertools.count(1)
        self._arrived = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and not self.eof

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.cmd, cwd=self.cwd, env=self.env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, limit=1 << 20)
        self._tasks = [asyncio.ensure_future(self._read()), asyncio.ensure_future(self._drain_stderr())]

    # -- sending ------------------------------------------------------------------------------------------------------

    def send_bytes(self, data: bytes) -> None:
        """Write raw bytes (framing included) to the server's stdin."""
        assert self.proc is not None and self.proc.stdin is not None
        if self.proc.stdin.is_closing():
            raise ServerDied("the server's stdin is closed")
        self.proc.stdin.write(data)
        self.sent += 1

    def send_body(self, body: bytes) -> None:
        """One framed message with this body (which need not be valid JSON)."""
        self.send_bytes(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def send(self, msg: dict) -> int:
        """Frame and write one message; returns its position in the send order."""
        self.send_body(json.dumps(msg, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        return self.sent

    def request(self, method: str, params: Any = None, id: int | str | None = None) -> Call:
        rid = next(self._ids) if id is None else id
        fut = asyncio.get_running_loop().create_future()
        msg: dict = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        call = Call(rid, method, params, self.sent + 1, time.perf_counter(), fut)
        self.calls[rid] = call
        if self.eof:
            fut.set_exception(ServerDied("the server is gone"))
            return call
        self.send(msg)
        return call

    def notify(self, method: str, params: Any = None) -> int:
        msg: dict = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        return self.send(msg)

    def cancel(self, rid: int | str) -> int:
        return self.notify("$/cancelRequest", {"id": rid})

    async def call(self, method: str, params: Any = None, timeout: float = 120) -> dict:
        """Send a request and wait for its response dict."""
        return await self.wait(self.request(method, params), timeout)

    async def wait(self, call: Call, timeout: float = 120) -> dict:
        return await asyncio.wait_for(asyncio.shield(call.future), timeout)

    async def wait_all(self, calls: list[Call], timeout: float = 120) -> None:
        """Wait until every call is answered (or the server died); TimeoutError if one is not within timeout."""
        if calls:
            await asyncio.wait_for(asyncio.gather(*(asyncio.shield(c.future) for c in calls),
                                                  return_exceptions=True), timeout)

    async def until(self, pred, timeout: float = 120) -> Any:
        """Wait until pred() is truthy (re-checked after every message); returns its value."""
        async def loop() -> Any:
            while not (got := pred()):
                if self.eof:
                    raise ServerDied("the server is gone")
                self._arrived.clear()
                await self._arrived.wait()
            return got

        return await asyncio.wait_for(loop(), timeout)

    # -- the session --------------------------------------------------------------------------------------------------

    async def initialize(self, options: dict | None = None, capabilities: dict | None = None,
                         timeout: float = 120) -> dict:
        caps = capabilities if capabilities is not None else default_capabilities()
        got = await self.call("initialize", {"processId": os.getpid(), "rootUri": None, "capabilities": caps,
                                             "initializationOptions": options}, timeout)
        self.notify("initialized", {})
        return got

    async def close(self, timeout: float = 30) -> int | None:
        """shutdown + exit; the exit code (the process is killed if it does not go in time)."""
        if self.proc is None:
            return None
        try:
            if self.alive:
                await self.call("shutdown", None, timeout)
                self.notify("exit")
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except (asyncio.TimeoutError, ConnectionError, OSError):
            return await self.kill()
        finally:
            for t in self._tasks:
                t.cancel()

    async def kill(self) -> int | None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        return self.proc.returncode if self.proc else None

    # -- the log ------------------------------------------------------------------------------------------------------

    def notes(self, method: str | None = None, since: int = 0) -> list[tuple[int, dict]]:
        """(log index, params) of the server's notifications (of one method), from log index `since`."""
        return [(i, m.get("params")) for i, m in enumerate(self.log[since:], since)
                if "id" not in m and (method is None or m.get("method") == method)]

    def messages(self, kind: int | None = None, method: str = "window/showMessage") -> list[str]:
        """Texts of window/showMessage (or logMessage) notifications, of one MessageType."""
        return [p["message"] for _, p in self.notes(method) if kind is None or p.get("type") == kind]

    # -- reading ------------------------------------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        stdout = self.proc.stdout
        try:
            while True:
                length = None
                while True:
                    line = await stdout.readline()
                    if not line:
                        return
                    if line in (b"\r\n", b"\n"):
                        break
                    name, _, value = line.decode("ascii", "replace").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                if length is None:
                    raise ValueError("a message without Content-Length")
                self._dispatch(json.loads(await stdout.readexactly(length)))
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self.eof = True
            for call in self.calls.values():
                if not call.future.done():
                    call.future.set_exception(ServerDied(f"the server exited before answering {call.method}"))
                    call.future.exception()  # retrieved: no warning
            self._arrived.set()

    def _dispatch(self, msg: dict) -> None:
        if msg.get("method") == "diffusion/canvas":
            self.canvas_seen += 1
            if not self.keep_canvas:
                self._arrived.set()
                return
        index = len(self.log)
        self.log.append(msg)
        if "method" not in msg:  # a response (or a malformed message, kept in the log for the checks)
            call = self.calls.get(msg.get("id"))  # type: ignore[arg-type]
            if call is not None and not call.future.done():
                call.answered, call.t_answered = index, time.perf_counter()
                call.future.set_result(msg)
        elif "id" in msg:  # a request from the server
            result: Any = None
            if msg["method"] == "workspace/configuration":
                items = (msg.get("params") or {}).get("items", [])
                result = [self.configuration for _ in items]
            elif msg["method"] == "workspace/applyEdit":
                self.edits.append((index, msg.get("params") or {}))
                result = {"applied": self.apply_edits}
                if not self.apply_edits:
                    result["failureReason"] = "this client does not apply edits"
            self.send({"jsonrpc": "2.0", "id": msg["id"], "result": result})
        self._arrived.set()

    async def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.stderr_tail.append(line.decode("utf-8", "replace").rstrip())


def server_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def default_capabilities() -> dict:
    """An editor that takes inline completions and versioned workspace edits."""
    return {"textDocument": {"inlineCompletion": {"dynamicRegistration": False},
                             "synchronization": {"dynamicRegistration": False}},
            "workspace": {"configuration": True, "workspaceEdit": {"documentChanges": True}},
            "window": {"showMessage": {}}}


def rss_kib(pid: int) -> int | None:
    """Resident set size of a process in KiB (Linux /proc; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def memory_map(pid: int) -> dict[str, int] | None:
    """RSS of a process by kind of mapping, in KiB: the brk heap, anonymous mappings (thread arenas, big
    allocations), files (code, the model's weights when mapped). Linux /proc; None elsewhere."""
    out = {"heap_kib": 0, "anon_kib": 0, "file_kib": 0}
    kind = "anon_kib"
    try:
        with open(f"/proc/{pid}/smaps", encoding="utf-8", errors="replace") as f:
            for line in f:
                head = line.split()
                if not head:
                    continue
                if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):  # a mapping's first line
                    name = head[5] if len(head) > 5 else ""
                    kind = "heap_kib" if name == "[heap]" else "anon_kib" if not name or name.startswith("[") \
                        else "file_kib"
                elif head[0] == "Rss:":
                    out[kind] += int(head[1])
    except OSError:
        return None
    return out


def children(pid: int) -> list[int]:
    """Pids of the live child processes of pid (Linux /proc; [] elsewhere)."""
    out = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ...
        if len(fields) > 1 and fields[1] == str(pid):
            out.append(int(name))
    return out


def pct(xs: list[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of xs, rounded to 0.1."""
    if not xs:
        return None
    s = sorted(xs)
    return round(s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))], 1)


# -- the soak ---------------------------------------------------------------------------------------------------------

# What gets typed: plain Python, one character per keystroke (newlines included).
TYPED = '''    total = 0
    for item in items:
        if item is None:
            continue
        total += len(str(item))
    return total
'''


def seed_text(k: int) -> str:
    """The k-th document: a few functions, the cursor goes into the body of the last one."""
    funcs = "".join(f"def helper_{k}_{i}(x, y):\n    return x * {i} + y\n\n\n" for i in range(4 + k % 5))
    return f"import os\nimport sys\n\n\n{funcs}def measure_{k}(items):\n"


@dataclass
class Doc:
    uri: str
    text: str
    version: int
    base: str  # the text before typing started: typing restarts from it when TYPED is used up
    typed: int = 0  # characters of TYPED typed so far

    @property
    def cursor(self) -> dict:
        line = self.text.count("\n")
        return {"line": line, "character": len(self.text) - (self.text.rfind("\n") + 1)}


class Soak:
    def __init__(self, requests: int, documents: int = 4, churn: int = 50, keep_open: int = 8, seed: int = 0,
                 options: dict | None = None, timeout: float = 120, progress: bool = False) -> None:
        self.n = requests
        self.n_docs = documents
        self.churn = churn
        self.keep_open = keep_open
        self.rng = random.Random(seed)
        self.options = {**SMALL, **(options or {})}
        self.timeout = timeout
        self.progress = progress
        self.wire = Wire()
        self.wire.keep_canvas = False
        self.docs: list[Doc] = []
        self.opened = 0
        self.churned: collections.deque[Doc] = collections.deque()
        self.calls: list[Call] = []
        self.measured: list[float] = []  # latency of each answered, uncancelled inline completion after warm-up
        self.cache: dict[str, Any] = {"sessions_max": 0, "bytes_max": 0, "limit_sessions": None}
        self.stale = 0
        self.rss: dict[str, int | None] = {}
        self.rss_max = 0
        self.rss_series: list[tuple[int, int | None]] = []  # (requests so far, RSS KiB) every 500 requests
        self.maps: dict[str, Any] = {}
        self.failure: str | None = None  # why the run stopped early (the server died or hung)

    def open(self, text: str) -> Doc:
        self.opened += 1
        doc = Doc(f"file:///soak/doc_{self.opened}.py", text, 1, text)
        self.wire.notify("textDocument/didOpen", {"textDocument": {
            "uri": doc.uri, "languageId": "python", "version": 1, "text": text}})
        return doc

    def type_key(self, doc: Doc) -> None:
        if doc.typed >= len(TYPED):  # used up: back to the original text in one full replacement
            doc.text, doc.typed, doc.version = doc.base, 0, doc.version + 1
            self.wire.notify("textDocument/didChange", {"textDocument": {"uri": doc.uri, "version": doc.version},
                                                        "contentChanges": [{"text": doc.text}]})
            return
        pos = doc.cursor
        ch = TYPED[doc.typed]
        doc.text += ch
        doc.typed += 1
        doc.version += 1
        self.wire.notify("textDocument/didChange", {
            "textDocument": {"uri": doc.uri, "version": doc.version},
            "contentChanges": [{"range": {"start": pos, "end": pos}, "text": ch}]})

    def ask(self, doc: Doc, i: int) -> Call:
        """An inline completion at the cursor, or (now and then) a rewrite of the last line or an infill."""
        ref = {"uri": doc.uri}
        if i % 29 == 11 and doc.cursor["line"] > 0:
            line = doc.cursor["line"] - 1
            width = len(doc.text.split("\n")[line])
            if width:
                return self.wire.request("diffusion/rewrite", {"textDocument": ref, "range": {
                    "start": {"line": line, "character": 0}, "end": {"line": line, "character": width}}})
        if i % 31 == 17:
            return self.wire.request("diffusion/infill", {"textDocument": ref, "position": doc.cursor})
        return self.wire.request("textDocument/inlineCompletion", {
            "textDocument": ref, "position": doc.cursor, "context": {"triggerKind": 2}})

    async def status(self) -> dict:
        st = (await self.wire.call("diffusion/status", {}, self.timeout)).get("result") or {}
        self.cache["sessions_max"] = max(self.cache["sessions_max"], st.get("cacheSessions") or 0)
        self.cache["bytes_max"] = max(self.cache["bytes_max"], st.get("cacheBytes") or 0)
        if st.get("cacheMaxSessions") is not None:
            self.cache["limit_sessions"] = st["cacheMaxSessions"]
            self.cache["session_bytes"] = st.get("cacheSessionBytes")
        return st

    async def churn_once(self) -> None:
        """A fresh document: a fill in it; the one opened keep_open churns ago is closed."""
        doc = self.open(seed_text(self.opened))
        self.churned.append(doc)
        self.type_key(doc)
        call = self.ask(doc, 0)
        self.calls.append(call)
        await self.wire.wait(call, self.timeout)
        if len(self.churned) > self.keep_open:
            old = self.churned.popleft()
            self.wire.notify("textDocument/didClose", {"textDocument": {"uri": old.uri}})

    async def run(self) -> dict:
        w = self.wire
        t0 = time.perf_counter()
        await w.start()
        await w.initialize(self.options, timeout=self.timeout)
        self.docs = [self.open(seed_text(k)) for k in range(self.n_docs)]
        warmup = max(1, self.n // 10)
        pending: Call | None = None
        final: dict = {}
        try:
            for i in range(self.n):
                if i == warmup:
                    await self.status()
                    self.rss["warm_kib"] = rss_kib(w.pid)
                    self.maps["warm"] = memory_map(w.pid)
                doc = self.rng.choice(self.docs)
                self.type_key(doc)
                if pending is not None:  # typed on before the answer: the editor cancels the old request
                    w.cancel(pending.id)
                    await w.wait(pending, self.timeout)
                    pending = None
                call = self.ask(doc, i)
                self.calls.append(call)
                if i % 9 == 4:  # the next keystroke comes before this answer
                    pending = call
                else:
                    await w.wait(call, self.timeout)
                    self.check(call, doc)
                    if i >= warmup and call.method == "textDocument/inlineCompletion" and call.error is None:
                        self.measured.append(call.latency_ms or 0.0)
                if self.churn and i % self.churn == self.churn - 1:
                    await self.churn_once()
                if i % 100 == 99:
                    await self.status()
                    self.rss_max = max(self.rss_max, rss_kib(w.pid) or 0)
                    if i % 500 == 499:
                        self.rss_series.append((i + 1, rss_kib(w.pid)))
                    if self.progress:
                        print(f"soak: {i + 1}/{self.n} requests, rss {rss_kib(w.pid)} KiB", file=sys.stderr)
            if pending is not None:
                await w.wait(pending, self.timeout)
            final = await self.status()
            self.rss["end_kib"] = rss_kib(w.pid)
            self.maps["end"] = memory_map(w.pid)
        except (ServerDied, asyncio.TimeoutError) as exc:
            self.failure = f"{type(exc).__name__}: {exc}; server stderr: " + " | ".join(list(w.stderr_tail)[-20:])
        finally:
            code = await w.close()
        return self.report(final, code, time.perf_counter() - t0)

    def check(self, call: Call, doc: Doc) -> None:
        """A result must be for the version the request was sent at (nothing was typed in between here)."""
        res = call.result
        if isinstance(res, dict) and "version" in res and res["version"] != doc.version:
            self.stale += 1

    def report(self, final: dict, exit_code: int | None, wall: float) -> dict:
        errors = collections.Counter(str(c.error.get("code")) for c in self.calls if c.error)
        lost = sum(1 for c in self.calls if not c.future.done() or c.future.exception())
        engine_failures = sum(1 for _, p in self.wire.notes("window/logMessage") if p.get("type") == 1
                              and " failed: " in p.get("message", ""))
        dec = max(1, len(self.measured) // 10)
        first, last = pct(self.measured[:dec], 0.95), pct(self.measured[-dec:], 0.95)
        warm, end = self.rss.get("warm_kib"), self.rss.get("end_kib")
        limit = self.cache.get("limit_sessions")
        per = self.cache.get("session_bytes")
        return {
            "requests": len(self.calls),
            "answered": len(self.calls) - lost,
            "results": sum(1 for c in self.calls if c.response is not None and c.error is None),
            "canvas_notifications": self.wire.canvas_seen,
            "errors": dict(errors),
            "crashes": int(self.failure is not None or exit_code != 0) + errors.get(str(INTERNAL_ERROR), 0)
                       + engine_failures,
            "failure": self.failure,
            "unanswered": lost,
            "stale": self.stale,
            "exit_code": exit_code,
            "documents_opened": self.opened,
            "rss_warm_kib": warm,
            "rss_end_kib": end,
            "rss_ratio": round(end / warm, 3) if warm and end else None,
            "rss_max_kib": max(self.rss_max, end or 0) or None,
            "rss_series_kib": self.rss_series,
            "memory_map": self.maps,
            "latency_ms": {"p50": pct(self.measured, 0.5), "p95": pct(self.measured, 0.95),
                           "p95_first_decile": first, "p95_last_decile": last,
                           "p95_drift": round(last / first, 3) if first and last else None},
            "cache": {"sessions_max": self.cache["sessions_max"], "bytes_max": self.cache["bytes_max"],
                      "limit_sessions": limit, "session_bytes": per,
                      "within_bounds": None if limit is None else (
                          self.cache["sessions_max"] <= limit and (per is None or
                                                                   self.cache["bytes_max"] <= limit * per)),
                      "end": {k: final.get(k) for k in ("cacheSessions", "cacheBytes")}},
            "wall_s": round(wall, 1),
            "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "model": final.get("model"),
        }


def soak(requests: int, **kw: Any) -> dict:
    """Run a soak of `requests` requests against a fresh server; the report as a dict."""
    return asyncio.run(Soak(requests, **kw).run())


def text_report(r: dict) -> str:
    lat, cache = r["latency_ms"], r["cache"]
    return "\n".join([
        f"requests {r['requests']} (answered {r['answered']}, results {r['results']}), errors {r['errors'] or 'none'}",
        f"crashes {r['crashes']}, stale results {r['stale']}, exit code {r['exit_code']}"
        + (f" ({r['failure']})" if r["failure"] else ""),
        f"RSS after warm-up {r['rss_warm_kib']} KiB, at the end {r['rss_end_kib']} KiB: ratio {r['rss_ratio']} "
        f"(goal <= 1.2); at most {r['rss_max_kib']} KiB",
        f"latency p50 {lat['p50']} ms, p95 {lat['p95']} ms; p95 first decile {lat['p95_first_decile']} ms, last "
        f"{lat['p95_last_decile']} ms: drift {lat['p95_drift']}",
        f"context caches: at most {cache['sessions_max']} sessions / {cache['bytes_max']} bytes (limit "
        f"{cache['limit_sessions']} sessions) over {r['documents_opened']} documents; within bounds: "
        f"{cache['within_bounds']}",
        f"{r['wall_s']} s wall, load average {r['load_avg_1m']}, model {r['model']}",
    ])


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--requests", type=int, default=10_000, help="requests to send (default 10000)")
    p.add_argument("--documents", type=int, default=4, help="documents typed into round-robin")
    p.add_argument("--churn", type=int, default=50,
                   help="every N requests open a fresh document and fill in it (0: never)")
    p.add_argument("--keep-open", type=int, default=8, help="churned documents kept open before closing")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=120, help="seconds a request may take before it counts as hung")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--progress", action="store_true", help="progress on stderr every 100 requests")
    p.add_argument("--plot", metavar="PNG", help="also draw the RSS-every-500 curve into this PNG (matplotlib)")


def main(args: argparse.Namespace) -> int:
    r = soak(args.requests, documents=args.documents, churn=args.churn, keep_open=args.keep_open, seed=args.seed,
             timeout=args.timeout, progress=args.progress)
    print(json.dumps(r, indent=2) if args.json else text_report(r))
    if args.plot:
        from server.bench_plots import plot_rss

        plot_rss(Path(args.plot), r)
    return 0 if r["crashes"] == 0 and r["unanswered"] == 0 and r["stale"] == 0 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m server.soak", description=__doc__.split("\n\n")[0])
    configure(parser)
    sys.exit(main(parser.parse_args()))
