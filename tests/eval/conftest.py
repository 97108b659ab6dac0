"""Shared fixtures for evaluation and benchmark tests: the repo on sys.path, the shared evaluation data when present."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # lets `pytest tests/eval` import infill/, engine/ and server/ without installing
    sys.path.insert(0, str(ROOT))

from infill.evaluate import default_data_dir  # noqa: E402


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared evaluation data (../shared/data beside the repository); tests that need it skip without it."""
    d = default_data_dir()
    if d is None:
        pytest.skip("no evaluation data beside the repository (../shared/data)")
    return d
