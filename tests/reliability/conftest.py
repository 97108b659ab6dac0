"""Fixtures of the reliability tests (harness.py has the client side), and their figures in the run's summary."""

from __future__ import annotations

import json
import os

import pytest

from server.soak import SMALL
from tests.reliability.harness import COUNTS, Loop, Server


@pytest.fixture(scope="session")
def loop():
    lp = Loop()
    yield lp
    lp.close()


@pytest.fixture(scope="session")
def shared_server(loop):
    """One server with small canvases for the fuzz, fault and loading tests (each module leaves it as it found it:
    small canvases, the shipped model, no open documents)."""
    srv = Server(loop, {"diffusion": SMALL}).start()
    srv.wire.configuration = SMALL
    yield srv
    srv.stop()


def pytest_terminal_summary(terminalreporter) -> None:
    if not COUNTS:
        return
    terminalreporter.write_sep("-", "reliability figures")
    for section, figures in COUNTS.items():
        terminalreporter.write_line(f"{section}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    path = os.environ.get("DIFFUSION_LS_FUZZ_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(COUNTS, f, indent=2)
