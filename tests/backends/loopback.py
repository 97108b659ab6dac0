"""Replay servers on loopback for the remote backends' tests: run one from a thread for the length of a block."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def serving(srv: Any) -> Iterator[Any]:
    """srv (an http.server on 127.0.0.1 with a `release` event that unblocks held responses) served from a thread;
    released and shut down on exit."""
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()
