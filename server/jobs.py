"""Engine jobs: one worker thread runs them one at a time; each document has at most one in flight (latest wins).

A job is cancelled by setting its threading.Event, which the sampler checks between forwards, so the engine thread
stops within one forward. Why a job stopped decides the error its request gets:

    client      $/cancelRequest          -> RequestCancelled (-32800), sent by pygls when the task is cancelled
    superseded  a newer request, same doc -> ServerCancelled (-32802)
    modified    the document changed      -> ContentModified (-32801)
    closed      the document was closed   -> ContentModified (-32801)
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

from lsprotocol import types
from pygls.exceptions import JsonRpcException

T = TypeVar("T")

_ids = itertools.count(1)


@dataclass(eq=False)
class Job:
    """One request's engine work for one document version."""

    uri: str
    version: int | None
    request_id: str | int | None  # the JSON-RPC id: `diffusion/canvas` notifications carry it as `id`
    kind: str  # "inline", "infill" or "rewrite"
    cancel_event: threading.Event = field(default_factory=threading.Event)
    reason: str | None = None
    task: asyncio.Task | None = None  # the request's task (its cancellation is a client cancel)
    serial: int = field(default_factory=lambda: next(_ids))
    step: int = 0  # diffusion/canvas notifications sent so far
    started: float = field(default_factory=time.perf_counter)  # when the request's handler made it

    @property
    def id(self) -> str | int:
        """What notifications call this job: the request id, or a serial for requests without one (commands)."""
        return self.request_id if self.request_id is not None else f"job-{self.serial}"

    def cancel(self, reason: str) -> None:
        if not self.cancel_event.is_set():
            self.reason = reason
            self.cancel_event.set()

    @property
    def stopped(self) -> bool:
        """Cancelled for any reason, including a $/cancelRequest pygls has already applied to the task."""
        if self.cancel_event.is_set():
            return True
        cancelling = getattr(self.task, "cancelling", None)  # Python >= 3.11: set the moment cancel() is called
        return bool(cancelling and cancelling())

    def error(self) -> JsonRpcException:
        """The error a request whose job stopped (for a reason other than a client cancel) answers with."""
        if self.reason == "superseded":
            return JsonRpcException(message="superseded by a newer request for this document",
                                    code=types.LSPErrorCodes.ServerCancelled)
        if self.reason == "closed":
            return JsonRpcException(message="the document was closed", code=types.LSPErrorCodes.ContentModified)
        if self.reason == "client":
            return JsonRpcException(message="request cancelled", code=types.LSPErrorCodes.RequestCancelled)
        return JsonRpcException(message=f"the document changed (version {self.version} is outdated)",
                                code=types.LSPErrorCodes.ContentModified)


def _malloc_trim() -> Callable[[], object] | None:
    """glibc's malloc_trim(0), or None where the C library has none (macOS, musl, Windows)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own C library (find_library would run ldconfig)
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


# every this many jobs the engine thread hands the C heap's free pages back to the system: each request's tensors have
# new shapes, and glibc keeps the freed memory between them (0: never)
TRIM_EVERY = 32


class Worker:
    """A single engine thread: jobs queue and run one at a time, off the event loop. `hold`: a context manager each
    job runs inside (the workspace index waits while one runs: it would slow a completion several-fold)."""

    def __init__(self, hold: Callable[[], AbstractContextManager[object]] = nullcontext) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="diffusion-engine")
        self._hold = hold
        self._ran = 0
        self._trim = _malloc_trim() if TRIM_EVERY > 0 else None

    def _held(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            with self._hold():
                return fn(*args)
        finally:
            self._ran += 1
            if self._trim is not None and self._ran % TRIM_EVERY == 0:
                with suppress(RuntimeError):  # a pool shut down takes no more work
                    self._pool.submit(self._trim)  # after this job's answer, not before it (a trim takes 3-4 ms)

    async def run(self, job: Job | None, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args) on the engine thread; if the awaiting task is cancelled, stop the job too."""
        fut = asyncio.get_running_loop().run_in_executor(self._pool, self._held, fn, *args)
        try:
            return await fut
        except asyncio.CancelledError:
            if job is not None:
                job.cancel("client")
            raise

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue fn(*args) behind the running job (fire and forget)."""
        self._pool.submit(self._held, fn, *args)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class Jobs:
    """The in-flight job of each document; starting one supersedes the previous."""

    def __init__(self) -> None:
        self._by_uri: dict[str, Job] = {}

    def start(self, uri: str, version: int | None, request_id: str | int | None, kind: str) -> Job:
        old = self._by_uri.get(uri)
        if old is not None:
            old.cancel("superseded")
        job = Job(uri, version, request_id, kind, task=asyncio.current_task())
        self._by_uri[uri] = job
        return job

    def current(self, uri: str) -> Job | None:
        return self._by_uri.get(uri)

    def finish(self, job: Job) -> None:
        if self._by_uri.get(job.uri) is job:
            del self._by_uri[job.uri]

    def cancel(self, uri: str, reason: str) -> None:
        job = self._by_uri.pop(uri, None)
        if job is not None:
            job.cancel(reason)

    def cancel_all(self, reason: str) -> None:
        for uri in list(self._by_uri):
            self.cancel(uri, reason)
