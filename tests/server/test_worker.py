"""The engine thread (server.jobs.Worker): the C heap's free pages go back to the system every TRIM_EVERY jobs, after
the job's answer, on the engine thread, whatever the jobs did."""

from __future__ import annotations

import asyncio
import threading

import pytest

from server import jobs


def test_glibc_malloc_trim_is_found_and_runs():
    trim = jobs._malloc_trim()
    assert trim is not None  # the test machines run glibc
    assert trim() in (0, 1)  # 1: memory was released


def test_the_heap_is_trimmed_every_few_jobs_after_their_answers(monkeypatch: pytest.MonkeyPatch):
    trims: list[str] = []
    monkeypatch.setattr(jobs, "TRIM_EVERY", 3)
    monkeypatch.setattr(jobs, "_malloc_trim", lambda: lambda: trims.append(threading.current_thread().name))
    worker = jobs.Worker()

    def job(i: int) -> int:
        if i == 4:
            raise ValueError("a failing job counts too")
        return i * i

    async def main() -> list[object]:
        out: list[object] = []
        for i in range(7):
            try:
                out.append(await worker.run(None, job, i))
            except ValueError:
                out.append("failed")
        await worker.run(None, lambda: None)  # behind any trim the last job queued
        return out

    assert asyncio.run(main()) == [0, 1, 4, 9, "failed", 25, 36]
    assert len(trims) == 2 and all(name.startswith("diffusion-engine") for name in trims)  # after jobs 3 and 6
    worker.shutdown()
    worker._held(lambda: None)  # a job finishing after shutdown: its trim is not queued, and nothing is raised
