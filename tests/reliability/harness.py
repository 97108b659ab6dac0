"""The client side of the reliability tests: the real server over stdio, driven by server.soak.Wire (a JSON-RPC
client that can send anything and records every message the server sends, in arrival order) from an event loop in a
background thread, so that synchronous tests (hypothesis) can share one server process per module.

The shipped model is a small model in training: every test uses small canvases (server.soak.SMALL).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from server.soak import Wire

# DIFFUSION_LS_SERVER_COMMAND runs another server (an installed `diffusion-ls serve`, a mutant to test the tests)
SERVER_COMMAND = shlex.split(os.environ.get("DIFFUSION_LS_SERVER_COMMAND", "")) or None
TIMEOUT = 300.0  # seconds: only a hung server hits it (the machine may be busy: liveness, not speed)

# What the reliability tests counted, for the summary line at the end of the run (and DIFFUSION_LS_FUZZ_REPORT).
COUNTS: dict[str, Any] = {}


class Loop:
    """An asyncio event loop in a daemon thread: `run(coro)` runs a coroutine there and waits for its result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="reliability-client", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine, timeout: float = TIMEOUT) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Server:
    """One server process and its client, for synchronous tests."""

    def __init__(self, loop: Loop, options: dict | None = None, capabilities: dict | None = None) -> None:
        self.loop = loop
        self.wire = Wire(SERVER_COMMAND)
        self.options = options
        self.capabilities = capabilities

    def start(self, initialize: bool = True) -> Server:
        self.run(self.wire.start())
        if initialize:
            self.run(self.wire.initialize(self.options, self.capabilities, TIMEOUT))
        return self

    def run(self, coro: Coroutine, timeout: float = TIMEOUT) -> Any:
        return self.loop.run(coro, timeout)

    def call(self, method: str, params: Any = None, timeout: float = TIMEOUT) -> dict:
        """Send a request and wait for its raw response."""
        async def go() -> dict:
            return await self.wire.call(method, params, timeout)

        return self.run(go(), timeout + 5)

    def notify(self, method: str, params: Any = None) -> None:
        async def go() -> None:
            self.wire.notify(method, params)

        self.run(go())

    def status(self) -> dict:
        return self.call("diffusion/status", {})["result"]

    def stop(self) -> int | None:
        return self.run(self.wire.close(60), 90)


def count(section: str, **figures: Any) -> None:
    """Add figures to the run's summary (numbers add up across calls)."""
    got = COUNTS.setdefault(section, {})
    for k, v in figures.items():
        got[k] = got.get(k, 0) + v if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def random_model(directory: Path, max_seq_len: int = 4096) -> Path:
    """A randomly initialised model of the engine's architecture, saved as shipped models are: it never chooses to
    end a fill, so its canvases run to maxTokens (the shipped model ends most fills within a few forwards)."""
    from engine import DEFAULT_MODEL_DIR
    from engine.model import DiffusionLM, ModelConfig, save_model
    from engine.tokenizer import Tokenizer

    tok = Tokenizer.from_file(DEFAULT_MODEL_DIR / "tokenizer.json")
    model = DiffusionLM(ModelConfig(vocab_size=tok.vocab_size, dim=64, n_layers=2, n_heads=2, ffn_dim=128,
                                    max_seq_len=max_seq_len))
    model.init_weights(seed=1)
    save_model(model, directory, extra_config={"name": "random-never-ends"})
    shutil.copyfile(DEFAULT_MODEL_DIR / "tokenizer.json", directory / "tokenizer.json")
    return directory
