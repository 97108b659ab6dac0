"""Replay servers on loopback for the remote backends' tests: run one from a thread for the length of a block."""

from __future__ import annotations

import contextlib
import threading
import time
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


def hold(handler: Any) -> bool:
    """Hold a streamed response until the test releases it, writing keep-alives: a closed client shows as a failing
    write within a few attempts. False (and srv.disconnected set) once it has gone."""
    handler.server.release.wait(5)
    for _ in range(100):
        try:
            handler.wfile.write(b": keep-alive\n\n")
            handler.wfile.flush()
        except OSError:
            handler.server.disconnected.set()
            return False
        time.sleep(0.01)
    return True
