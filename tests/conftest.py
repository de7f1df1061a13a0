"""Shared fixtures: real data from ../shared/data, read in place.

Tests that need it skip with a clear reason when the folder is absent
(e.g. on a user's machine that only cloned the repo).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from app.paths import SHARED_DATA  # noqa: E402


def shared(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test when it is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"test data not found: {path} (the shared data folder is absent)")
    return path


@pytest.fixture
def shared_data():
    return shared
